/*
 * qcow2 refcount width change (sen-img amend -o refcount_bits=N), as qemu-img does it:
 * every refcount is copied into a new refcount table and new refcount blocks of the new
 * width, which also count the clusters of those new structures themselves.  Like
 * qemu-img, they go into clusters the old refcounts call free (holes in the data, then
 * the free tail of the file) before the file grows.  They are written and flushed while
 * the header still points at the old ones; one header write then switches
 * refcount_order, refcount_table_offset and refcount_table_clusters together, and only
 * after that are the old table and blocks freed.  A crash before the switch leaves the
 * old image valid (the new clusters are free in it); a crash after it leaves at worst the
 * old structures leaked.
 */
#include <errno.h>
#include <inttypes.h>

#include "block/qcow2.h"
#include "sen/block.h"

/* What the old refcounts say: how far they reach, which new ranges they touch. */
typedef struct RefScan {
    uint64_t end;         /* one past the last cluster with a non-zero refcount */
    GArray *used_ranges;  /* of gboolean, per range of the new width below `end` */
    GArray *holes;        /* of uint64_t: free clusters below `end`, ascending */
} RefScan;

/* Free clusters remembered for the new structures: 8 MiB of indexes at most (more holes
 * than that are left unused, which costs file size, never correctness). */
#define REFWIDTH_MAX_HOLES (1u << 20)

static bool range_used(const RefScan *rs, uint64_t r)
{
    return r < rs->used_ranges->len && g_array_index(rs->used_ranges, gboolean, r);
}

/*
 * Keeps the holes below the end whose new range holds data anyway: a new structure
 * there needs no refcount block of its own, so placing it never changes the plan's
 * block count.
 */
static void keep_useful_holes(RefScan *rs, unsigned new_bits)
{
    guint kept = 0;
    for (guint i = 0; i < rs->holes->len; i++) {
        uint64_t c = g_array_index(rs->holes, uint64_t, i);
        if (c < rs->end && range_used(rs, c >> new_bits)) {
            g_array_index(rs->holes, uint64_t, kept++) = c;
        }
    }
    g_array_set_size(rs->holes, kept);
}

/*
 * Reads every old refcount; refuses when one does not fit new_order (naming the first
 * such cluster, in qemu-img's words) before anything is written.
 */
static bool scan_refcounts(BDRVQcow2State *s, unsigned new_order, RefScan *rs, Error **errp)
{
    unsigned new_bits = s->cluster_bits + 3 - new_order;
    uint64_t per_block = 1ull << s->refblock_bits, max = qcow2_refcount_max(new_order);
    rs->end = 0;
    rs->used_ranges = g_array_new(false, true, sizeof(gboolean));
    rs->holes = g_array_new(false, false, sizeof(uint64_t));
    for (uint64_t rt = 0; rt < s->reftable_used; rt++) {
        uint64_t rb = s->reftable[rt] & QCOW2_REFT_OFFSET_MASK;
        if (!rb) {
            continue;
        }
        uint8_t *blk;
        int ret = rb % s->cluster_size ? -EIO : qcow2_cache_get(s->rb_cache, rb, false, &blk);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "%s: could not read the refcount block at %#"
                             PRIx64, s->bs->filename, rb);
            return false;
        }
        for (uint64_t i = 0; i < per_block; i++) {
            uint64_t v = qcow2_refcount_get(blk, i, s->h.refcount_order);
            uint64_t c = rt * per_block + i;
            if (!v) {
                if (rs->holes->len < REFWIDTH_MAX_HOLES) {
                    g_array_append_val(rs->holes, c);
                }
                continue;
            }
            if (v > max) {
                error_setg(errp, "Cannot decrease refcount entry width to %u bits: Cluster "
                           "at offset %#" PRIx64 " has a refcount of %" PRIu64,
                           1u << new_order, c << s->cluster_bits, v);
                return false;
            }
            uint64_t r = c >> new_bits;
            if (r >= rs->used_ranges->len) {
                g_array_set_size(rs->used_ranges, r + 1);
            }
            g_array_index(rs->used_ranges, gboolean, r) = true;
            rs->end = c + 1;
        }
    }
    keep_useful_holes(rs, new_bits);
    return true;
}

static void refscan_free(RefScan *rs)
{
    g_array_free(rs->used_ranges, true);
    g_array_free(rs->holes, true);
}

/* Where the new structures go and how big they are. */
typedef struct NewLayout {
    unsigned bits;        /* log2 of entries per new refcount block */
    uint64_t table;       /* cluster index of the new table (table_clusters in a row) */
    uint64_t table_clusters;
    GArray *blocks;       /* of uint64_t: cluster indexes of the new blocks, ascending */
    uint64_t tail_end;    /* one past the new clusters placed from the old end on */
} NewLayout;

/* Whether new range r needs a refcount block: it holds old data or new tail clusters. */
static bool range_needs_block(const RefScan *rs, const NewLayout *l, uint64_t r)
{
    if (range_used(rs, r)) {
        return true;
    }
    uint64_t lo = r << l->bits, hi = (r + 1) << l->bits;
    return lo < l->tail_end && hi > rs->end;
}

/*
 * Places a table of `table` clusters and `blocks` blocks: the table in the first run of
 * holes long enough, else at the old end; blocks in the remaining holes, then after the
 * old end (and the table, if it went there).
 */
static void place(const RefScan *rs, uint64_t table, uint64_t blocks, NewLayout *l)
{
    const uint64_t *h = (const uint64_t *)rs->holes->data;
    guint nh = rs->holes->len, run = nh;
    for (guint i = 0; table && i + table <= nh; i++) {
        if (h[i + table - 1] == h[i] + table - 1) {
            run = i;
            break;
        }
    }
    uint64_t next = rs->end;
    l->table_clusters = table;
    if (run < nh) {
        l->table = h[run];
    } else {
        l->table = next;
        next += table;
    }
    g_array_set_size(l->blocks, 0);
    for (guint i = 0; i < nh && l->blocks->len < blocks; i++) {
        if (run < nh && i >= run && i < run + table) {
            continue;
        }
        g_array_append_val(l->blocks, h[i]);
    }
    while (l->blocks->len < blocks) {
        g_array_append_val(l->blocks, next);
        next++;
    }
    l->tail_end = next;
}

/*
 * The new blocks need refcounts too, which may need more blocks and a bigger table: grow
 * both until they cover everything including themselves.  Placements in holes add no
 * range, and a bigger table or more blocks only lengthen the run past the old end, so
 * the needed counts never shrink and the loop stops at the exact fixed point.
 */
static void plan_layout(BDRVQcow2State *s, unsigned new_order, const RefScan *rs,
                        NewLayout *l)
{
    l->bits = s->cluster_bits + 3 - new_order;
    l->blocks = g_array_new(false, false, sizeof(uint64_t));
    uint64_t table = 1, blocks = 0;
    for (;;) {
        place(rs, table, blocks, l);
        uint64_t end = MAX(rs->end, l->tail_end);
        uint64_t ranges = ((end - 1) >> l->bits) + 1, need = 0;
        for (uint64_t r = 0; r < ranges; r++) {
            need += range_needs_block(rs, l, r);
        }
        uint64_t need_table = (ranges * 8 + s->cluster_size - 1) / s->cluster_size;
        if (need == blocks && need_table == table) {
            return;
        }
        blocks = MAX(need, blocks);
        table = MAX(need_table, table);
    }
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_new_cluster(const NewLayout *l, uint64_t c)
{
    return (c >= l->table && c < l->table + l->table_clusters) ||
           g_array_binary_search(l->blocks, &c, cmp_u64, NULL);
}

/* Writes the new blocks and table (not yet referenced by the header) and flushes them. */
static int write_new_structures(BDRVQcow2State *s, unsigned new_order, const RefScan *rs,
                                const NewLayout *l, uint64_t *nt)
{
    uint64_t per_block = 1ull << l->bits, end = MAX(rs->end, l->tail_end);
    uint8_t *blk = g_malloc(s->cluster_size);
    int ret = 0;
    guint next = 0;
    for (uint64_t r = 0; ret == 0 && r <= (end - 1) >> l->bits; r++) {
        if (!range_needs_block(rs, l, r)) {
            continue;
        }
        memset(blk, 0, s->cluster_size);
        for (uint64_t i = 0; ret == 0 && i < per_block; i++) {
            uint64_t c = (r << l->bits) + i, v = 0;
            if (c < rs->end) {
                ret = qcow2_get_refcount(s, c, &v);
            }
            /* A new cluster was free in the old refcounts (a hole or past the end). */
            v += is_new_cluster(l, c);
            qcow2_refcount_set(blk, i, new_order, v);
        }
        if (next == l->blocks->len) {
            ret = -EIO; /* the plan has a block for every range that needs one */
            break;
        }
        nt[r] = g_array_index(l->blocks, uint64_t, next++) << s->cluster_bits;
        if (ret == 0) {
            ret = qcow2_meta_pwrite(s, QCOW2_OL_REFCOUNT_BLOCK, nt[r], s->cluster_size, blk,
                                    false);
        }
    }
    g_free(blk);
    uint64_t entries = l->table_clusters * s->cluster_size / 8;
    if (ret == 0) {
        uint64_t *be = g_new(uint64_t, entries);
        for (uint64_t i = 0; i < entries; i++) {
            be[i] = GUINT64_TO_BE(nt[i]);
        }
        ret = qcow2_meta_pwrite(s, QCOW2_OL_REFCOUNT_TABLE, l->table << s->cluster_bits,
                                l->table_clusters * s->cluster_size, be, false);
        g_free(be);
    }
    return ret == 0 ? bdrv_flush(s->bs->file) : ret;
}

/* After the switch: the driver uses the new structures, and frees the old ones. */
static int adopt_and_free_old(BDRVQcow2State *s, const NewLayout *l, uint64_t *nt,
                              uint64_t old_table_off, uint64_t old_table_clusters)
{
    uint64_t *old = s->reftable, old_size = s->reftable_size;
    for (uint64_t rt = 0; rt < old_size; rt++) {
        if (old[rt] & QCOW2_REFT_OFFSET_MASK) {
            qcow2_cache_discard(s->rb_cache, old[rt] & QCOW2_REFT_OFFSET_MASK);
        }
    }
    s->reftable = nt;
    s->reftable_size = l->table_clusters * s->cluster_size / 8;
    s->refblock_bits = l->bits;
    qcow2_reftable_scan_used(s);
    s->alloc_end = MAX(s->alloc_end, l->tail_end);
    s->free_hint = 0;
    s->free_byte_offset = 0;
    int ret = qcow2_update_refcount(s, old_table_off, old_table_clusters * s->cluster_size,
                                    -1);
    for (uint64_t rt = 0; ret == 0 && rt < old_size; rt++) {
        uint64_t rb = old[rt] & QCOW2_REFT_OFFSET_MASK;
        ret = rb ? qcow2_update_refcount(s, rb, s->cluster_size, -1) : 0;
    }
    g_free(old);
    return ret == 0 ? qcow2_flush_caches(s) : ret;
}

static bool change_refcount_order(BDRVQcow2State *s, unsigned new_order, Error **errp)
{
    const char *name = s->bs->filename;
    int ret = qcow2_flush_caches(s);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not flush the metadata caches", name);
        return false;
    }
    RefScan rs;
    if (!scan_refcounts(s, new_order, &rs, errp)) {
        refscan_free(&rs);
        return false;
    }
    int64_t file_len = bdrv_getlength(s->bs->file);
    if (file_len < 0) {
        refscan_free(&rs);
        error_setg_errno(errp, (int)-file_len, "%s: could not get the file length", name);
        return false;
    }
    NewLayout l;
    plan_layout(s, new_order, &rs, &l);
    if (l.table_clusters * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
        refscan_free(&rs);
        g_array_free(l.blocks, true);
        error_setg(errp, "%s: the refcount table for refcount_bits=%u would exceed %u "
                   "bytes", name, 1u << new_order, QCOW2_MAX_REFTABLE_BYTES);
        return false;
    }
    uint64_t *nt = g_new0(uint64_t, l.table_clusters * s->cluster_size / 8);
    ret = write_new_structures(s, new_order, &rs, &l, nt);
    refscan_free(&rs);
    Qcow2Header old = s->h;
    if (ret == 0) {
        s->h.refcount_order = new_order;
        s->h.refcount_table_offset = l.table << s->cluster_bits;
        s->h.refcount_table_clusters = l.table_clusters;
        ret = qcow2_write_header(s);
    }
    if (ret < 0) {
        /* The header still describes the old structures: drop the new ones again. */
        s->h = old;
        g_free(nt);
        g_array_free(l.blocks, true);
        Error *ignored = NULL;
        if (!bdrv_truncate(s->bs->file, file_len, true, &ignored)) {
            error_free(ignored);
        }
        error_setg_errno(errp, -ret, "%s: could not write the new refcount structures",
                         name);
        return false;
    }
    ret = adopt_and_free_old(s, &l, nt, old.refcount_table_offset,
                             old.refcount_table_clusters);
    g_array_free(l.blocks, true);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: refcount_bits changed, but freeing the old "
                         "refcount structures failed (they are leaked)", name);
        return false;
    }
    return true;
}

bool qcow2_amend_refcount_bits(BlockDriverState *bs, unsigned bits, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    unsigned order = __builtin_ctz(bits);
    if (s->h.version < 3 && bits != 16) {
        error_setg(errp, "Refcount widths other than 16 bits require compatibility level "
                   "1.1 or above (use compat=1.1 or greater)");
        return false;
    }
    if (order == s->h.refcount_order) {
        return true;
    }
    qcow2_lock_exclusive(s);
    bool ok = change_refcount_order(s, order, errp);
    g_mutex_unlock(&s->lock);
    return ok;
}
