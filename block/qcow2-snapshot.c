/*
 * QCOW2 internal snapshot table: parsing and serialising entries (every field, extra data
 * kept verbatim) and snapshot create / apply / delete / list.
 *
 * Ordering as everywhere (docs/qcow2.md): references are counted before anything on disk
 * points through them, and dropped only after nothing does any more.
 */
#include <errno.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"

/* QEMU's limit on one entry's extra data (QCOW_MAX_SNAPSHOT_EXTRA_DATA). */
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024

void qcow2_snapshot_clear(Qcow2Snapshot *sn)
{
    g_free(sn->id_str);
    g_free(sn->name);
    g_free(sn->extra);
    memset(sn, 0, sizeof(*sn));
}

bool qcow2_snapshot_parse(const uint8_t *buf, size_t len, Qcow2Snapshot *sn, size_t *used)
{
    memset(sn, 0, sizeof(*sn));
    if (len < 40) {
        return false;
    }
    sn->l1_table_offset = qcow2_ld64(buf);
    sn->l1_size = qcow2_ld32(buf + 8);
    uint16_t id_len = qcow2_ld16(buf + 12);
    uint16_t name_len = qcow2_ld16(buf + 14);
    sn->date_sec = qcow2_ld32(buf + 16);
    sn->date_nsec = qcow2_ld32(buf + 20);
    sn->vm_clock_nsec = qcow2_ld64(buf + 24);
    sn->vm_state_size = qcow2_ld32(buf + 32);
    sn->extra_len = qcow2_ld32(buf + 36);
    size_t need = 40 + (size_t)sn->extra_len + id_len + name_len;
    if (sn->extra_len > QCOW2_MAX_SNAPSHOT_EXTRA || need > len) {
        return false;
    }
    sn->extra = g_memdup2(buf + 40, sn->extra_len);
    if (sn->extra_len >= 8) {
        sn->vm_state_size = qcow2_ld64(buf + 40);
    }
    if (sn->extra_len >= 16) {
        sn->disk_size = qcow2_ld64(buf + 48);
    }
    sn->id_str = g_strndup((const char *)buf + 40 + sn->extra_len, id_len);
    sn->name = g_strndup((const char *)buf + 40 + sn->extra_len + id_len, name_len);
    *used = (need + 7) & ~(size_t)7;
    return true;
}

/*
 * Reads one entry at off: its fixed part, then exactly the extra data, id and name it
 * announces.  Nothing past the entry is read (the padding to 8 bytes neither): a bad
 * sector or the end of the file right after the table must not fail it, as in qemu-img.
 */
static int read_snapshot_entry(BDRVQcow2State *s, uint64_t off, Qcow2Snapshot *sn,
                               size_t *used)
{
    uint8_t fixed[40];
    int ret = bdrv_pread(s->bs->file, off, sizeof(fixed), fixed);
    if (ret < 0) {
        return ret;
    }
    uint32_t extra_len = qcow2_ld32(fixed + 36);
    if (extra_len > QCOW2_MAX_SNAPSHOT_EXTRA) {
        return -EIO;
    }
    size_t len = sizeof(fixed) + extra_len + qcow2_ld16(fixed + 12) + qcow2_ld16(fixed + 14);
    uint8_t *buf = g_malloc(len);
    memcpy(buf, fixed, sizeof(fixed));
    ret = bdrv_pread(s->bs->file, off + sizeof(fixed), len - sizeof(fixed),
                     buf + sizeof(fixed));
    if (ret == 0 && !qcow2_snapshot_parse(buf, len, sn, used)) {
        ret = -EIO;
    }
    g_free(buf);
    return ret;
}

int qcow2_read_snapshots(BDRVQcow2State *s, GArray **out)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(Qcow2Snapshot));
    *out = a;
    uint64_t off = s->h.snapshots_offset;
    for (uint32_t i = 0; i < s->h.nb_snapshots; i++) {
        Qcow2Snapshot sn;
        size_t used;
        int ret = read_snapshot_entry(s, off, &sn, &used);
        if (ret < 0) {
            return ret;
        }
        g_array_append_val(a, sn);
        off += used;
    }
    return 0;
}

void qcow2_snapshots_free(GArray *a)
{
    for (guint i = 0; a && i < a->len; i++) {
        qcow2_snapshot_clear(&g_array_index(a, Qcow2Snapshot, i));
    }
    if (a) {
        g_array_free(a, TRUE);
    }
}

/* ---- create / apply / delete ---- */

static size_t snapshot_entry_len(const Qcow2Snapshot *sn)
{
    return (40 + sn->extra_len + strlen(sn->id_str) + strlen(sn->name) + 7) & ~(size_t)7;
}

uint64_t qcow2_snapshot_table_len(const GArray *a)
{
    uint64_t len = 0;
    for (guint i = 0; i < a->len; i++) {
        len += snapshot_entry_len(&g_array_index(a, Qcow2Snapshot, i));
    }
    return len;
}

static size_t snapshot_serialize(const Qcow2Snapshot *sn, uint8_t *p)
{
    size_t id_len = strlen(sn->id_str), name_len = strlen(sn->name);
    size_t len = snapshot_entry_len(sn);
    memset(p, 0, len);
    qcow2_st64(p, sn->l1_table_offset);
    qcow2_st32(p + 8, sn->l1_size);
    qcow2_st16(p + 12, id_len);
    qcow2_st16(p + 14, name_len);
    qcow2_st32(p + 16, sn->date_sec);
    qcow2_st32(p + 20, sn->date_nsec);
    qcow2_st64(p + 24, sn->vm_clock_nsec);
    qcow2_st32(p + 32, sn->vm_state_size > UINT32_MAX ? 0 : sn->vm_state_size);
    qcow2_st32(p + 36, sn->extra_len);
    memcpy(p + 40, sn->extra, sn->extra_len);
    memcpy(p + 40 + sn->extra_len, sn->id_str, id_len);
    memcpy(p + 40 + sn->extra_len + id_len, sn->name, name_len);
    return len;
}

/* Writes the table to new clusters, switches the header to it, then frees the old one. */
static int write_snapshot_table(BDRVQcow2State *s, GArray *a)
{
    size_t total = qcow2_snapshot_table_len(a);
    uint64_t old_off = s->h.snapshots_offset, old_len = 0;
    if (s->h.nb_snapshots) {
        GArray *old = NULL;
        if (qcow2_read_snapshots(s, &old) == 0) {
            old_len = qcow2_snapshot_table_len(old);
        }
        qcow2_snapshots_free(old);
    }
    int64_t off = 0;
    int ret = 0;
    if (total) {
        off = qcow2_alloc_clusters(s, (total + s->cluster_size - 1) >> s->cluster_bits);
        if (off < 0) {
            return off;
        }
        uint8_t *buf = g_malloc0(total);
        size_t pos = 0;
        for (guint i = 0; i < a->len; i++) {
            pos += snapshot_serialize(&g_array_index(a, Qcow2Snapshot, i), buf + pos);
        }
        ret = qcow2_flush_caches(s);
        if (ret == 0) {
            ret = qcow2_meta_pwrite(s, QCOW2_OL_SNAPSHOT_TABLE, off, total, buf, true);
        }
        g_free(buf);
        if (ret < 0) {
            return ret;
        }
    }
    uint8_t hdr[12];
    qcow2_st32(hdr, a->len);
    qcow2_st64(hdr + 4, off);
    ret = bdrv_pwrite_sync(s->bs->file, 60, 12, hdr);
    if (ret < 0) {
        return ret;
    }
    s->h.nb_snapshots = a->len;
    s->h.snapshots_offset = off;
    /* The new table is in use: failing to free the old one only leaks it (check -r
     * leaks repairs that), so callers see the switch as done. */
    if (old_len) {
        qcow2_update_refcount(s, old_off, old_len, -1);
    }
    return 0;
}

/* Adds delta to every L2 table an L1 table references and to every cluster they reference. */
static int update_tree(BDRVQcow2State *s, const uint64_t *l1, uint32_t l1_size, int64_t delta)
{
    uint8_t *tbl = g_malloc(s->cluster_size);
    int ret = 0;
    for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        uint8_t *t;
        ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
        if (ret < 0) {
            break;
        }
        memcpy(tbl, t, s->cluster_size);
        for (uint64_t j = 0; j < (1ull << s->l2_bits) && ret == 0; j++) {
            ret = qcow2_ref_l2e(s, qcow2_ld64(tbl + j * s->l2e_size), delta);
        }
        if (ret == 0) {
            ret = qcow2_update_refcount(s, l2, s->cluster_size, delta);
        }
    }
    g_free(tbl);
    return ret;
}

/* Sets OFLAG_COPIED on the active tables exactly where the refcount is 1. */
static int fix_copied(BDRVQcow2State *s)
{
    int ret = 0;
    for (uint32_t i = 0; i < s->l1_size && ret == 0; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        uint64_t rc;
        ret = qcow2_get_refcount(s, l2 >> s->cluster_bits, &rc);
        if (ret < 0) {
            break;
        }
        uint64_t want = rc == 1 ? s->l1[i] | QCOW2_OFLAG_COPIED : s->l1[i] & ~QCOW2_OFLAG_COPIED;
        if (want != s->l1[i]) {
            s->l1[i] = want;
            ret = qcow2_write_l1_entry(s, i);
        }
        for (uint64_t j = 0; j < (1ull << s->l2_bits) && ret == 0; j++) {
            uint8_t *t;
            ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
            if (ret < 0) {
                break;
            }
            uint64_t l2e = qcow2_ld64(t + j * s->l2e_size);
            uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
            if ((l2e & QCOW2_OFLAG_COMPRESSED) || !host) {
                continue;
            }
            ret = qcow2_get_refcount(s, host >> s->cluster_bits, &rc);
            if (ret < 0) {
                break;
            }
            uint64_t w = rc == 1 ? l2e | QCOW2_OFLAG_COPIED : l2e & ~QCOW2_OFLAG_COPIED;
            if (w != l2e) {
                ret = qcow2_set_l2e(s, l2, j, w, NULL);
            }
        }
    }
    return ret < 0 ? ret : qcow2_flush_caches(s);
}

int qcow2_read_l1(BDRVQcow2State *s, uint64_t off, uint32_t n, uint64_t **out)
{
    uint64_t *l1 = g_new0(uint64_t, MAX(n, 1));
    int ret = n ? bdrv_pread(s->bs->file, off, n * 8ull, l1) : 0;
    for (uint32_t i = 0; i < n; i++) {
        l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    *out = l1;
    return ret;
}

/*
 * Removes snapshot i of the table a (as read from the image; lock held): the table stops
 * naming it first, then its references go, then OFLAG_COPIED follows the new refcounts.
 */
static int drop_snapshot(BDRVQcow2State *s, GArray *a, guint i)
{
    Qcow2Snapshot sn = g_array_index(a, Qcow2Snapshot, i);
    uint64_t *sl1 = NULL;
    g_array_remove_index(a, i);
    int ret = qcow2_read_l1(s, sn.l1_table_offset, sn.l1_size, &sl1);
    if (ret == 0) {
        ret = write_snapshot_table(s, a);
    }
    if (ret == 0) {
        ret = update_tree(s, sl1, sn.l1_size, -1);
    }
    if (ret == 0 && sn.l1_size) {
        ret = qcow2_update_refcount(s, sn.l1_table_offset, sn.l1_size * 8ull, -1);
    }
    if (ret == 0) {
        ret = fix_copied(s);
    }
    qcow2_snapshot_clear(&sn);
    g_free(sl1);
    return ret;
}

static int find_snapshot(GArray *a, const char *id_or_name)
{
    for (guint i = 0; i < a->len; i++) {
        if (!strcmp(g_array_index(a, Qcow2Snapshot, i).id_str, id_or_name)) {
            return i;
        }
    }
    for (guint i = 0; i < a->len; i++) {
        if (!strcmp(g_array_index(a, Qcow2Snapshot, i).name, id_or_name)) {
            return i;
        }
    }
    return -1;
}

/*
 * Undoes a snapshot create that failed before the table named it: the active tree's
 * extra references and the L1 copy go again (best effort: what fails stays a leak).
 */
static int unref_snapshot_tree(BDRVQcow2State *s, bool tree_refd, int64_t l1off)
{
    int ret = tree_refd ? update_tree(s, s->l1, s->l1_size, -1) : 0;
    if (l1off > 0) {
        int r = qcow2_update_refcount(s, l1off, s->l1_size * 8ull, -1);
        ret = ret < 0 ? ret : r;
    }
    return ret < 0 ? ret : qcow2_flush_caches(s);
}

/*
 * Internal snapshots would share data clusters, which an external data file cannot do
 * (one guest offset, one place): create and apply refuse them as qemu-img does (-ENOTSUP,
 * in its words).  Delete needs no rule: such an image has no snapshot to delete.
 */
bool qcow2_snapshot_create(BlockDriverState *bs, BlockSnapshotInfo *info, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    bool ok = false;
    int ret;
    if (qcow2_has_data_file(s)) {
        error_setg(errp, "Could not create snapshot '%s': %d (%s)", info->name, -ENOTSUP,
                   g_strerror(ENOTSUP));
        return false;
    }
    /* The table stores both lengths in 16 bits: a longer string would be written cut
     * short and leave the table unreadable (every caller reaches this: sen-img snapshot,
     * QMP blockdev-snapshot-internal-sync, savevm). */
    if (strlen(info->name) > UINT16_MAX ||
        (info->id_str && strlen(info->id_str) > UINT16_MAX)) {
        error_setg(errp, "%s: snapshot %s of %zu bytes is longer than qcow2 allows (%u)",
                   bs->filename, strlen(info->name) > UINT16_MAX ? "name" : "ID",
                   strlen(info->name) > UINT16_MAX ? strlen(info->name)
                                                   : strlen(info->id_str),
                   UINT16_MAX);
        return false;
    }
    qcow2_lock_exclusive(s);
    ret = qcow2_read_snapshots(s, &a);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not read the snapshot table", bs->filename);
        goto out;
    }
    if (find_snapshot(a, info->name) >= 0) {
        error_setg(errp, "%s: a snapshot named '%s' already exists", bs->filename, info->name);
        goto out;
    }
    unsigned next_id = 1;
    for (guint i = 0; i < a->len; i++) {
        next_id = MAX(next_id, (unsigned)atoi(g_array_index(a, Qcow2Snapshot, i).id_str) + 1);
    }
    ret = qcow2_flush_caches(s);
    /* Refcounts of the whole tree first, then the L1 copy, then the table that names it. */
    bool tree_refd = false, in_table = false;
    if (ret == 0) {
        ret = update_tree(s, s->l1, s->l1_size, 1);
        tree_refd = ret == 0;
    }
    int64_t l1off = 0;
    if (ret == 0 && s->l1_size) {
        l1off = qcow2_alloc_clusters(s, (s->l1_size * 8ull + s->cluster_size - 1) >>
                                            s->cluster_bits);
        ret = l1off < 0 ? l1off : 0;
    }
    if (ret == 0 && s->l1_size) {
        uint64_t *be = g_new(uint64_t, s->l1_size);
        for (uint32_t i = 0; i < s->l1_size; i++) {
            be[i] = GUINT64_TO_BE(s->l1[i] & ~QCOW2_OFLAG_COPIED);
        }
        ret = qcow2_flush_caches(s);
        if (ret == 0) {
            ret = qcow2_meta_pwrite(s, QCOW2_OL_INACTIVE_L1, l1off, s->l1_size * 8ull, be,
                                    true);
        }
        g_free(be);
    }
    if (ret == 0) {
        Qcow2Snapshot sn = {
            .l1_table_offset = l1off, .l1_size = s->l1_size,
            .id_str = info->id_str ? g_strdup(info->id_str) : g_strdup_printf("%u", next_id),
            .name = g_strdup(info->name), .date_sec = info->date_sec,
            .date_nsec = info->date_nsec, .vm_clock_nsec = info->vm_clock_nsec,
            .vm_state_size = info->vm_state_size, .extra_len = 24,
            .extra = g_malloc0(24),
        };
        qcow2_st64(sn.extra, info->vm_state_size);
        qcow2_st64(sn.extra + 8, bs->total_size);
        qcow2_st64(sn.extra + 16, info->icount ? info->icount : (uint64_t)-1);
        g_array_append_val(a, sn);
        ret = write_snapshot_table(s, a);
        in_table = ret == 0;
    }
    if (ret == 0) {
        ret = fix_copied(s);
    }
    if (ret == 0) {
        /* The snapshot owns the VM state savevm wrote; the active image lets go. */
        ret = qcow2_vmstate_drop(s, info->vm_state_size);
    }
    if (ret < 0) {
        /* A failed create leaves no snapshot behind (the caller, savevm too, goes on as
         * if there were none), at worst leaked clusters. */
        int undo = in_table ? drop_snapshot(s, a, a->len - 1)
                            : unref_snapshot_tree(s, tree_refd, l1off);
        error_setg_errno(errp, -ret, "%s: could not create snapshot '%s'%s", bs->filename,
                         info->name, undo < 0 && in_table ? " (it is left in the image)" : "");
        goto out;
    }
    ok = true;
out:
    qcow2_snapshots_free(a);
    g_mutex_unlock(&s->lock);
    return ok;
}


bool qcow2_snapshot_goto(BlockDriverState *bs, const char *id, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    uint64_t *sl1 = NULL, *old = NULL;
    bool ok = false;
    if (qcow2_has_data_file(s)) {
        error_setg(errp, "Could not apply snapshot '%s': Failed to load snapshot: %s", id,
                   g_strerror(ENOTSUP));
        return false;
    }
    qcow2_lock_exclusive(s);
    int ret = qcow2_read_snapshots(s, &a);
    int i = ret < 0 ? -1 : find_snapshot(a, id);
    if (i < 0) {
        error_setg(errp, "%s: snapshot '%s' not found", bs->filename, id);
        goto out;
    }
    Qcow2Snapshot *sn = &g_array_index(a, Qcow2Snapshot, i);
    /* The active L1 never shrinks, so it normally covers every snapshot's L1. */
    if (sn->l1_size > s->l1_size) {
        error_setg(errp, "%s: snapshot '%s' has a larger L1 table than the image (grow the "
                   "image first)", bs->filename, id);
        goto out;
    }
    /* Without the extra-data field the snapshot has the current size (as QEMU reads it). */
    uint64_t sn_size = sn->disk_size ? sn->disk_size : (uint64_t)bs->total_size;
    if (sn_size != (uint64_t)bs->total_size && !qcow2_bitmaps_can_resize(s, sn_size, errp)) {
        goto out;
    }
    /* Every granule may read differently now (a crash later leaves in_use set). */
    qcow2_bitmaps_mark_dirty(s, 0, bs->total_size);
    ret = qcow2_read_l1(s, sn->l1_table_offset, sn->l1_size, &sl1);
    if (ret == 0 && sn->l1_size < s->l1_size) {
        /* A snapshot from before the image grew: the rest of the active L1 is empty. */
        sl1 = g_renew(uint64_t, sl1, s->l1_size);
        memset(sl1 + sn->l1_size, 0, (s->l1_size - sn->l1_size) * 8ull);
    }
    /* New references first, then the switch of the active L1, then the old ones go. */
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    if (ret == 0) {
        ret = update_tree(s, sl1, sn->l1_size, 1);
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    if (ret == 0) {
        uint64_t *be = g_new(uint64_t, MAX(s->l1_size, 1));
        for (uint32_t j = 0; j < s->l1_size; j++) {
            be[j] = GUINT64_TO_BE(sl1[j] & ~QCOW2_OFLAG_COPIED);
        }
        ret = s->l1_size ? qcow2_meta_pwrite(s, QCOW2_OL_ACTIVE_L1, s->h.l1_table_offset,
                                             s->l1_size * 8ull, be, true) : 0;
        g_free(be);
    }
    if (ret == 0) {
        old = s->l1;
        s->l1 = sl1;
        sl1 = NULL;
        for (uint32_t j = 0; j < s->l1_size; j++) {
            s->l1[j] &= ~QCOW2_OFLAG_COPIED;
        }
        /* The active L2 tables are now the snapshot's: the index is rebuilt (the L1 write
         * above invalidates it as well; this keeps it where the in-memory L1 changes). */
        qcow2_overlap_invalidate(s);
        ret = update_tree(s, old, s->l1_size, -1);
    }
    if (ret == 0) {
        ret = fix_copied(s);
    }
    if (ret == 0 && sn_size != (uint64_t)bs->total_size) {
        /* The size follows the snapshot, last: a crash before leaves the data applied at
         * the old size, which reads past the snapshot's end as unallocated. */
        uint8_t be[8];
        qcow2_st64(be, sn_size);
        ret = qcow2_flush_caches(s);
        if (ret == 0) {
            ret = bdrv_pwrite_sync(s->bs->file, 24, 8, be);
        }
        if (ret == 0) {
            s->h.size = sn_size;
            bs->total_size = sn_size;
            qcow2_bitmaps_resize(s, sn_size);
            qcow2_bitmaps_mark_dirty(s, 0, sn_size);
        }
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not apply snapshot '%s'", bs->filename, id);
        goto out;
    }
    ok = true;
out:
    g_free(sl1);
    g_free(old);
    qcow2_snapshots_free(a);
    g_mutex_unlock(&s->lock);
    return ok;
}

/* QEMU's find_snapshot_by_id_and_name: with both, the one entry that has both. */
static int find_snapshot_by(GArray *a, const char *id, const char *name)
{
    for (guint i = 0; i < a->len; i++) {
        const Qcow2Snapshot *sn = &g_array_index(a, Qcow2Snapshot, i);
        if ((!id || !strcmp(sn->id_str, id)) && (!name || !strcmp(sn->name, name))) {
            return i;
        }
    }
    return -1;
}

bool qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name,
                             Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    uint64_t *sl1 = NULL;
    bool ok = false;
    g_assert(id || name);
    /* Nothing may be written through the switched L1: it is the snapshot's. */
    if (!s->read_only) {
        error_setg(errp, "Device is not readonly");
        return false;
    }
    qcow2_lock_exclusive(s);
    int ret = qcow2_read_snapshots(s, &a);
    int i = ret < 0 ? -1 : find_snapshot_by(a, id, name);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the snapshot table");
        goto out;
    }
    if (i < 0) {
        error_setg(errp, "Can't find snapshot");
        goto out;
    }
    const Qcow2Snapshot *sn = &g_array_index(a, Qcow2Snapshot, i);
    ret = qcow2_read_l1(s, sn->l1_table_offset, sn->l1_size, &sl1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to load snapshot L1 table");
        goto out;
    }
    /* The L1 keeps its size: entries past the snapshot's read as unallocated, those past
     * the active one are beyond the disk (the size stays the active image's, as QEMU's
     * load_tmp leaves it). */
    uint64_t *l1 = g_new0(uint64_t, MAX(s->l1_size, 1));
    memcpy(l1, sl1, MIN(s->l1_size, sn->l1_size) * 8ull);
    g_free(s->l1);
    s->l1 = l1;
    /* The index of the active metadata named the old L2 tables. */
    qcow2_overlap_invalidate(s);
    ok = true;
out:
    g_free(sl1);
    qcow2_snapshots_free(a);
    g_mutex_unlock(&s->lock);
    return ok;
}

bool qcow2_snapshot_delete(BlockDriverState *bs, const char *id, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    bool ok = false;
    qcow2_lock_exclusive(s);
    int ret = qcow2_read_snapshots(s, &a);
    int i = ret < 0 ? -1 : find_snapshot(a, id);
    if (i < 0) {
        error_setg(errp, "%s: snapshot '%s' not found", bs->filename, id);
        goto out;
    }
    ret = drop_snapshot(s, a, i);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not delete snapshot '%s'", bs->filename, id);
        goto out;
    }
    ok = true;
out:
    qcow2_snapshots_free(a);
    g_mutex_unlock(&s->lock);
    return ok;
}

GPtrArray *qcow2_snapshot_list(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    g_mutex_lock(&s->lock);
    int ret = qcow2_read_snapshots(s, &a);
    g_mutex_unlock(&s->lock);
    if (ret < 0) {
        qcow2_snapshots_free(a);
        error_setg_errno(errp, -ret, "%s: could not read the snapshot table", bs->filename);
        return NULL;
    }
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)block_snapshot_info_free);
    for (guint i = 0; i < a->len; i++) {
        Qcow2Snapshot *sn = &g_array_index(a, Qcow2Snapshot, i);
        BlockSnapshotInfo *info = g_new0(BlockSnapshotInfo, 1);
        info->id_str = g_strdup(sn->id_str);
        info->name = g_strdup(sn->name);
        info->vm_state_size = sn->vm_state_size;
        info->date_sec = sn->date_sec;
        info->date_nsec = sn->date_nsec;
        info->vm_clock_nsec = sn->vm_clock_nsec;
        info->icount = sn->extra_len >= 24 ? qcow2_ld64(sn->extra + 16) : (uint32_t)-1;
        g_ptr_array_add(out, info);
    }
    qcow2_snapshots_free(a);
    return out;
}
