/*
 * The qcow2 vm-state area (savevm): QEMU keeps a VM's saved state inside the image, in
 * guest offsets past the virtual disk, starting at the first L1 entry the disk does not
 * use ("l1_vm_state_index", docs/interop/qcow2.txt "Snapshots").  Writes there go through
 * the normal cluster allocation of the active L1 table, which grows to cover them; the
 * next snapshot_create copies that L1, so the snapshot owns the state, and then the
 * active image drops its references (the state belongs to the snapshot, and keeping it
 * would only cost copy-on-write later).  Loading reads the same offsets after
 * snapshot_goto made the snapshot's L1 the active one.  The disk size never changes.
 */
#include <errno.h>
#include <string.h>
#include "sen/block.h"
#include "block/qcow2.h"

uint64_t qcow2_vm_state_offset_for(const BDRVQcow2State *s, uint64_t disk_size)
{
    uint64_t span = s->cluster_size << s->l2_bits;
    return (disk_size + span - 1) / span * span;
}

uint64_t qcow2_vm_state_offset(const BDRVQcow2State *s)
{
    return qcow2_vm_state_offset_for(s, s->h.size);
}

/*
 * Makes the active L1 table at least need entries (lock held, no data I/O in flight):
 * the new table is written first, one header write switches to it, then the old one is
 * freed, so a crash leaves either table valid.
 */
static int grow_l1(BDRVQcow2State *s, uint64_t need)
{
    if (need <= s->l1_size) {
        return 0;
    }
    if (need * 8 > QCOW2_MAX_L1_BYTES) {
        return -EFBIG;
    }
    uint64_t *l1 = g_new0(uint64_t, need);
    uint64_t *be = g_new0(uint64_t, need);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        l1[i] = s->l1[i];
        be[i] = GUINT64_TO_BE(s->l1[i]);
    }
    int64_t off = qcow2_alloc_clusters(s, (need * 8 + s->cluster_size - 1) >>
                                              s->cluster_bits);
    int ret = off < 0 ? (int)off : qcow2_flush_caches(s);
    if (ret == 0) {
        ret = qcow2_meta_pwrite(s, QCOW2_OL_ACTIVE_L1, off, need * 8, be, true);
    }
    if (ret == 0) {
        uint8_t hdr[12];
        qcow2_st32(hdr, (uint32_t)need);
        qcow2_st64(hdr + 4, (uint64_t)off);
        ret = bdrv_pwrite_sync(s->bs->file, 36, sizeof(hdr), hdr);
    }
    if (ret == 0) {
        uint64_t old_off = s->h.l1_table_offset, old_len = s->l1_size * 8ull;
        g_free(s->l1);
        s->l1 = g_steal_pointer(&l1);
        s->l1_size = (uint32_t)need;
        s->h.l1_size = (uint32_t)need;
        s->h.l1_table_offset = (uint64_t)off;
        ret = old_len ? qcow2_update_refcount(s, old_off, old_len, -1) : 0;
    } else if (off > 0) {
        qcow2_update_refcount(s, (uint64_t)off, need * 8, -1);
    }
    g_free(l1);
    g_free(be);
    return ret;
}

static int qcow2_vmstate_range(uint64_t start, int64_t pos, int64_t bytes, uint64_t *off)
{
    /* Guest offsets of an L2 entry are limited to 2^56 (QCOW2_L2E_OFFSET_MASK). */
    if ((uint64_t)pos > (1ull << 56) - start ||
        (uint64_t)bytes > (1ull << 56) - start - (uint64_t)pos) {
        return -EFBIG;
    }
    *off = start + (uint64_t)pos;
    return 0;
}

int qcow2_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off;
    if (s->read_only) {
        return -EPERM;
    }
    if (qcow2_has_data_file(s)) {
        return -ENOTSUP; /* no internal snapshots, so no vm state (as QEMU) */
    }
    qcow2_lock_exclusive(s);
    int ret = qcow2_vmstate_range(qcow2_vm_state_offset(s), pos, bytes, &off);
    if (ret == 0) {
        uint64_t span = s->cluster_size << s->l2_bits;
        ret = grow_l1(s, (off + (uint64_t)bytes + span - 1) / span);
    }
    if (ret == 0) {
        ret = qcow2_write_guest(s, off, (uint64_t)bytes, buf);
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

/*
 * Reads through a snapshot's L1 table without applying the snapshot: under the exclusive
 * lock (no data I/O in flight, none can start) the active L1 is swapped for the
 * snapshot's for a locked read, which never drops the lock, and swapped back.
 */
static int load_from_snapshot(BDRVQcow2State *s, const char *snapshot, void *buf,
                              int64_t pos, int64_t bytes)
{
    GArray *a = NULL;
    int ret = qcow2_read_snapshots(s, &a);
    const Qcow2Snapshot *sn = NULL;
    for (guint i = 0; ret == 0 && !sn && i < a->len; i++) {
        if (strcmp(g_array_index(a, Qcow2Snapshot, i).id_str, snapshot) == 0) {
            sn = &g_array_index(a, Qcow2Snapshot, i);
        }
    }
    for (guint i = 0; ret == 0 && !sn && i < a->len; i++) {
        if (strcmp(g_array_index(a, Qcow2Snapshot, i).name, snapshot) == 0) {
            sn = &g_array_index(a, Qcow2Snapshot, i);
        }
    }
    if (ret == 0 && !sn) {
        ret = -ENOENT;
    }
    uint64_t off = 0;
    if (ret == 0) {
        /* The area follows the disk size the snapshot was taken at. */
        ret = qcow2_vmstate_range(qcow2_vm_state_offset_for(s, sn->disk_size ? sn->disk_size
                                                                          : s->h.size),
                                  pos, bytes, &off);
    }
    if (ret == 0 && (uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        ret = -EIO;
    }
    uint64_t *l1 = NULL;
    if (ret == 0) {
        ret = qcow2_read_l1(s, sn->l1_table_offset, sn->l1_size, &l1);
    }
    if (ret == 0) {
        uint64_t *active = s->l1;
        uint32_t active_size = s->l1_size;
        s->l1 = l1;
        s->l1_size = sn->l1_size;
        ret = qcow2_read_data(s, off, (uint64_t)bytes, buf);
        s->l1 = active;
        s->l1_size = active_size;
        /* A table evicted during the read went through the overlap check, which may have
         * rebuilt the index from the snapshot's L1. */
        qcow2_overlap_invalidate(s);
    }
    g_free(l1);
    qcow2_snapshots_free(a);
    return ret;
}

int qcow2_load_vmstate(BlockDriverState *bs, const char *snapshot, void *buf, int64_t pos,
                       int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off;
    int ret;
    if (snapshot) {
        qcow2_lock_exclusive(s);
        ret = load_from_snapshot(s, snapshot, buf, pos, bytes);
        g_mutex_unlock(&s->lock);
        return ret;
    }
    g_mutex_lock(&s->lock);
    ret = qcow2_vmstate_range(qcow2_vm_state_offset(s), pos, bytes, &off);
    if (ret == 0) {
        ret = qcow2_read_guest(s, off, (uint64_t)bytes, buf);
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

int qcow2_vmstate_drop(BDRVQcow2State *s, uint64_t size)
{
    if (!size) {
        return 0;
    }
    uint64_t clusters = (size + s->cluster_size - 1) >> s->cluster_bits;
    return qcow2_zero_clusters(s, qcow2_vm_state_offset(s), clusters, QCOW2_DISCARD_FULL);
}

/* BlockDriver.drop_vmstate: a failed savevm's state goes, as a snapshot would take it. */
int qcow2_drop_vmstate(BlockDriverState *bs, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->read_only) {
        return -EPERM;
    }
    uint64_t off;
    qcow2_lock_exclusive(s);
    int ret = qcow2_vmstate_range(qcow2_vm_state_offset(s), 0, bytes, &off);
    if (ret == 0) {
        ret = qcow2_vmstate_drop(s, (uint64_t)bytes);
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    g_mutex_unlock(&s->lock);
    return ret;
}
