/*
 * QCOW2 reference counts: entry encoding for every refcount width, lookups through the
 * refcount table, updates through the refcount block cache, and cluster allocation.
 *
 * Ordering (see docs/qcow2.md): a new refcount block is written and synced before the
 * refcount table entry that points at it; a grown refcount table is complete and synced
 * before the header switches to it; the old table is freed last.  A crash anywhere in
 * between leaves at most leaked clusters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"

uint64_t qcow2_refcount_get(const uint8_t *block, uint64_t idx, unsigned order)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        /* Sub-byte entries are packed from the least significant bit of each byte. */
        unsigned bits = 1u << order;
        unsigned per_byte = 8 / bits;
        unsigned shift = (idx % per_byte) * bits;
        return (block[idx / per_byte] >> shift) & ((1u << bits) - 1);
    }
    case 3:
        return block[idx];
    case 4:
        return qcow2_ld16(block + idx * 2);
    case 5:
        return qcow2_ld32(block + idx * 4);
    default:
        return qcow2_ld64(block + idx * 8);
    }
}

void qcow2_refcount_set(uint8_t *block, uint64_t idx, unsigned order, uint64_t value)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        unsigned bits = 1u << order;
        unsigned per_byte = 8 / bits;
        unsigned shift = (idx % per_byte) * bits;
        uint8_t mask = ((1u << bits) - 1) << shift;
        block[idx / per_byte] = (block[idx / per_byte] & ~mask) | ((value << shift) & mask);
        break;
    }
    case 3:
        block[idx] = value;
        break;
    case 4:
        qcow2_st16(block + idx * 2, value);
        break;
    case 5:
        qcow2_st32(block + idx * 4, value);
        break;
    default:
        qcow2_st64(block + idx * 8, value);
        break;
    }
}

int qcow2_refcount_init(BDRVQcow2State *s)
{
    s->refblock_bits = s->cluster_bits + 3 - s->h.refcount_order;
    s->reftable_size = s->h.refcount_table_clusters * s->cluster_size / 8;
    s->reftable = g_new0(uint64_t, s->reftable_size);
    int ret = bdrv_pread(s->bs->file, s->h.refcount_table_offset, s->reftable_size * 8,
                         s->reftable);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < s->reftable_size; i++) {
        s->reftable[i] = GUINT64_FROM_BE(s->reftable[i]);
    }
    qcow2_reftable_scan_used(s);
    return 0;
}

void qcow2_reftable_scan_used(BDRVQcow2State *s)
{
    qcow2_overlap_invalidate(s); /* the table was loaded or replaced */
    s->reftable_used = 0;
    for (uint64_t i = 0; i < s->reftable_size; i++) {
        if (s->reftable[i]) {
            s->reftable_used = i + 1;
        }
    }
}

/* A refcount table entry naming a block inside a cluster: corrupt (QEMU's words). */
static int refblock_unaligned(BDRVQcow2State *s, uint64_t rb, uint64_t rt)
{
    qcow2_signal_corruption(s, true, -1, -1,
                            "Refblock offset %#" PRIx64 " unaligned (reftable index: %#" PRIx64
                            ")", rb, rt);
    return -EIO;
}

int qcow2_get_refcount(BDRVQcow2State *s, uint64_t cluster, uint64_t *rc)
{
    uint64_t rt = cluster >> s->refblock_bits;
    *rc = 0;
    if (rt >= s->reftable_size) {
        return 0;
    }
    uint64_t rb = s->reftable[rt] & QCOW2_REFT_OFFSET_MASK;
    if (!rb) {
        return 0;
    }
    if (rb % s->cluster_size) {
        return refblock_unaligned(s, rb, rt);
    }
    uint8_t *blk;
    int ret = qcow2_cache_get(s->rb_cache, rb, false, &blk);
    if (ret < 0) {
        return ret;
    }
    *rc = qcow2_refcount_get(blk, cluster & ((1ull << s->refblock_bits) - 1),
                             s->h.refcount_order);
    return 0;
}

static int write_reftable_entry(BDRVQcow2State *s, uint64_t rt)
{
    return qcow2_meta_write_entry(s, QCOW2_OL_REFCOUNT_TABLE,
                                  s->h.refcount_table_offset + rt * 8, s->reftable[rt],
                                  QCOW2_OL_REFCOUNT_BLOCK,
                                  s->reftable[rt] & QCOW2_REFT_OFFSET_MASK);
}

/*
 * A new refcount block for range rt, written at cluster p and flushed before the refcount
 * table points at it.  When p lies in range rt (a range without a block is all free) the
 * block counts itself; otherwise the caller has already raised p's refcount in its own
 * range, and the flush below makes that durable first.
 */
static int create_refblock_at(BDRVQcow2State *s, uint64_t rt, uint64_t p)
{
    uint64_t off = p << s->cluster_bits;
    int ret = qcow2_cache_flush(s->rb_cache);
    if (ret < 0) {
        return ret;
    }
    uint8_t *blk;
    ret = qcow2_cache_get(s->rb_cache, off, true, &blk);
    if (ret < 0) {
        return ret;
    }
    if (p >> s->refblock_bits == rt) {
        qcow2_refcount_set(blk, p & ((1ull << s->refblock_bits) - 1), s->h.refcount_order, 1);
    }
    qcow2_cache_mark_dirty(s->rb_cache, off);
    ret = qcow2_cache_flush(s->rb_cache);
    if (ret < 0) {
        return ret;
    }
    s->reftable[rt] = off;
    s->reftable_used = MAX(s->reftable_used, rt + 1);
    s->alloc_end = MAX(s->alloc_end, p + 1);
    return write_reftable_entry(s, rt);
}

/* Takes the first free cluster at or after *q (beyond a pending run), giving its range a
 * block first if it has none, and raises its refcount. */
static int take_cluster_after(BDRVQcow2State *s, uint64_t *q, uint64_t *out)
{
    for (;; (*q)++) {
        uint64_t rt = *q >> s->refblock_bits;
        if (rt >= s->reftable_size) {
            return -EIO; /* the caller sized the table for this */
        }
        if (!(s->reftable[rt] & QCOW2_REFT_OFFSET_MASK)) {
            int ret = create_refblock_at(s, rt, *q);
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        uint64_t rc;
        int ret = qcow2_get_refcount(s, *q, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc) {
            continue;
        }
        ret = qcow2_update_refcount(s, *q << s->cluster_bits, s->cluster_size, 1);
        if (ret < 0) {
            return ret;
        }
        *out = (*q)++;
        return 0;
    }
}

static int grow_reftable(BDRVQcow2State *s, uint64_t need);

/*
 * Gives every range that [start, start+n) touches a refcount block without taking any
 * cluster of the run: a block placed at the first cluster of its range would split every
 * run longer than one range covers (large L1 tables with small clusters), so ranges that
 * begin inside the run get their block after it.  Returns 1 when blocks were made.
 */
static int cover_run(BDRVQcow2State *s, uint64_t start, uint64_t n)
{
    uint64_t first_rt = start >> s->refblock_bits, last_rt = (start + n - 1) >> s->refblock_bits;
    uint64_t missing = 0;
    for (uint64_t rt = first_rt; rt <= last_rt; rt++) {
        missing += rt >= s->reftable_size || !(s->reftable[rt] & QCOW2_REFT_OFFSET_MASK);
    }
    if (!missing) {
        return 0;
    }
    /* Blocks go at most `missing` + 1 clusters past the run (one range boundary). */
    uint64_t need = ((start + n + missing + 1) >> s->refblock_bits) + 1;
    if (need > s->reftable_size) {
        int ret = grow_reftable(s, need);
        return ret < 0 ? ret : 1;
    }
    uint64_t q = start + n;
    for (uint64_t rt = first_rt; rt <= last_rt; rt++) {
        if (s->reftable[rt] & QCOW2_REFT_OFFSET_MASK) {
            continue; /* made by take_cluster_after for an earlier range */
        }
        uint64_t lo = rt << s->refblock_bits;
        int ret;
        if (lo < start) {
            ret = create_refblock_at(s, rt, lo);
        } else {
            uint64_t p;
            ret = take_cluster_after(s, &q, &p);
            if (ret == 0 && !(s->reftable[rt] & QCOW2_REFT_OFFSET_MASK)) {
                ret = create_refblock_at(s, rt, p);
            } else if (ret == 0) {
                /* Taking p gave rt its own block (rt straddles the run's end): p is
                 * allocated for nothing; give it back. */
                ret = qcow2_update_refcount(s, p << s->cluster_bits, s->cluster_size, -1);
            }
        }
        if (ret < 0) {
            return ret;
        }
    }
    return 1;
}

/*
 * One past the last cluster that may hold anything: where new metadata goes when no free
 * cluster will do, as QEMU puts it at the end of the allocated data.  alloc_end counts only
 * this session's allocations, so the file's length bounds what was there before; but a
 * grown-ahead tail (qcow2_prealloc_ahead) holds nothing but clusters allocated since,
 * all below alloc_end, so there the length before the first grow step is the bound.
 * Using the grown length would leave the tail's free clusters as a gap before the new
 * refcount table until they are reused (and keep the trim at close from shrinking).
 */
static uint64_t data_end_cluster(BDRVQcow2State *s)
{
    int64_t len = bdrv_getlength(s->bs->file);
    if (s->prealloc_end && len >= 0 && (uint64_t)len <= s->prealloc_end) {
        len = MIN((uint64_t)len, s->prealloc_from);
    }
    uint64_t c = len > 0 ? ((uint64_t)len + s->cluster_size - 1) >> s->cluster_bits : 0;
    return MAX(c, s->alloc_end);
}

/*
 * Replaces the refcount table with one of at least `need` entries, placed past the end of
 * the data (data_end_cluster) together with new refcount blocks for the clusters it and
 * they occupy.
 */
static int grow_reftable(BDRVQcow2State *s, uint64_t need)
{
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t entries = MAX(need, s->reftable_size + s->reftable_size / 2);
    uint64_t m = (entries + per_cluster - 1) / per_cluster;
    entries = m * per_cluster;
    if (m * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
        return -EFBIG;
    }
    uint64_t first = data_end_cluster(s);
    uint64_t *nt = g_new0(uint64_t, entries);
    memcpy(nt, s->reftable, s->reftable_size * 8);
    /* k new blocks right after the table; iterate until they cover themselves too. */
    uint64_t k = 0;
    for (;;) {
        uint64_t last = first + m + k - 1, cnt = 0;
        for (uint64_t rt = first >> s->refblock_bits; rt <= last >> s->refblock_bits; rt++) {
            cnt += !(rt < s->reftable_size && s->reftable[rt]);
        }
        if (cnt <= k) {
            break;
        }
        k = cnt;
    }
    uint64_t end = first + m + k;
    if ((end - 1) >> s->refblock_bits >= entries) {
        g_free(nt);
        return grow_reftable(s, ((end - 1) >> s->refblock_bits) + 1 + per_cluster);
    }
    uint64_t next_block = first + m;
    int ret = 0;
    uint8_t *blk = g_malloc(s->cluster_size);
    ret = qcow2_cache_flush(s->rb_cache);
    for (uint64_t rt = first >> s->refblock_bits;
         ret == 0 && rt <= (end - 1) >> s->refblock_bits; rt++) {
        uint64_t lo = MAX(first, rt << s->refblock_bits);
        uint64_t hi = MIN(end, (rt + 1) << s->refblock_bits);
        if (rt < s->reftable_size && s->reftable[rt]) {
            /* Existing block: count the new clusters through the cache. */
            ret = qcow2_update_refcount(s, lo << s->cluster_bits,
                                        (hi - lo) << s->cluster_bits, 1);
            continue;
        }
        memset(blk, 0, s->cluster_size);
        for (uint64_t c = lo; c < hi; c++) {
            qcow2_refcount_set(blk, c & ((1ull << s->refblock_bits) - 1),
                               s->h.refcount_order, 1);
        }
        nt[rt] = next_block << s->cluster_bits;
        ret = qcow2_meta_pwrite(s, QCOW2_OL_REFCOUNT_BLOCK, nt[rt], s->cluster_size, blk,
                                false);
        next_block++;
    }
    g_free(blk);
    if (ret == 0) {
        ret = qcow2_cache_flush(s->rb_cache);
    }
    uint64_t *be = NULL;
    if (ret == 0) {
        be = g_new(uint64_t, entries);
        for (uint64_t i = 0; i < entries; i++) {
            be[i] = GUINT64_TO_BE(nt[i]);
        }
        ret = qcow2_meta_pwrite(s, QCOW2_OL_REFCOUNT_TABLE, first << s->cluster_bits,
                                m * s->cluster_size, be, true);
        g_free(be);
    }
    if (ret == 0) {
        ret = qcow2_write_reftable_location(s, first << s->cluster_bits, m);
    }
    if (ret < 0) {
        g_free(nt);
        return ret;
    }
    uint64_t old_off = s->h.refcount_table_offset;
    uint64_t old_len = s->h.refcount_table_clusters * s->cluster_size;
    g_free(s->reftable);
    s->reftable = nt;
    s->reftable_size = entries;
    qcow2_reftable_scan_used(s);
    s->h.refcount_table_offset = first << s->cluster_bits;
    s->h.refcount_table_clusters = m;
    s->alloc_end = MAX(s->alloc_end, end);
    return qcow2_update_refcount(s, old_off, old_len, -1);
}

int qcow2_write_reftable_location(BDRVQcow2State *s, uint64_t offset, uint32_t clusters)
{
    uint8_t hdr[12];
    qcow2_st64(hdr, offset);
    qcow2_st32(hdr + 8, clusters);
    return bdrv_pwrite_sync(s->bs->file, 48, sizeof(hdr), hdr);
}

int qcow2_update_refcount(BDRVQcow2State *s, uint64_t off, uint64_t len, int64_t delta)
{
    if (!len) {
        return 0;
    }
    uint64_t first = off >> s->cluster_bits;
    uint64_t last = (off + len - 1) >> s->cluster_bits;
    uint64_t max = qcow2_refcount_max(s->h.refcount_order);
    if (delta < 0) {
        /* A freed cluster may be handed out again: stop packing compressed data there,
         * and if it held metadata, the overlap index must forget it. */
        s->free_byte_offset = 0;
        qcow2_overlap_note_free(s, first, last - first + 1);
    }
    for (uint64_t c = first; c <= last; c++) {
        uint64_t rt = c >> s->refblock_bits;
        int ret;
        if (rt >= s->reftable_size) {
            return -EIO;
        }
        /* Callers make sure the blocks exist (qcow2_alloc_clusters), so a missing one
         * means the image references a cluster no refcount covers. */
        if (!(s->reftable[rt] & QCOW2_REFT_OFFSET_MASK)) {
            return -EIO;
        }
        uint64_t rb = s->reftable[rt] & QCOW2_REFT_OFFSET_MASK;
        if (rb % s->cluster_size) {
            return refblock_unaligned(s, rb, rt);
        }
        uint8_t *blk;
        ret = qcow2_cache_get(s->rb_cache, rb, false, &blk);
        if (ret < 0) {
            return ret;
        }
        uint64_t idx = c & ((1ull << s->refblock_bits) - 1);
        uint64_t v = qcow2_refcount_get(blk, idx, s->h.refcount_order);
        if ((delta < 0 && v < (uint64_t)-delta) || (delta > 0 && max - v < (uint64_t)delta)) {
            return delta < 0 ? -EIO : -ERANGE;
        }
        v += delta;
        qcow2_refcount_set(blk, idx, s->h.refcount_order, v);
        qcow2_cache_mark_dirty(s->rb_cache, rb);
        if (v == 0 && c < s->free_hint) {
            s->free_hint = c;
        }
        if (delta > 0) {
            s->alloc_end = MAX(s->alloc_end, c + 1);
        }
    }
    return 0;
}

int64_t qcow2_alloc_clusters(BDRVQcow2State *s, uint64_t n)
{
    for (int attempt = 0; attempt < 64; attempt++) {
        /* first_free: the lowest free cluster seen; a run too short for n leaves it. */
        uint64_t start = s->free_hint, run = 0, c = start, first_free = UINT64_MAX;
        while (run < n) {
            uint64_t rc;
            int ret = qcow2_get_refcount(s, c, &rc);
            if (ret < 0) {
                return ret;
            }
            if (rc) {
                run = 0;
                start = c + 1;
            } else {
                run++;
                first_free = MIN(first_free, c);
            }
            c++;
            if (c >> (62 - s->cluster_bits)) {
                return -EFBIG;
            }
        }
        /* Make sure every range touched has a refcount block (none placed inside the
         * run), then search again: a grown table may have landed in the run. */
        int covered = cover_run(s, start, n);
        if (covered < 0) {
            return covered;
        }
        if (covered) {
            continue;
        }
        int ret = qcow2_update_refcount(s, start << s->cluster_bits, n << s->cluster_bits, 1);
        if (ret < 0) {
            return ret;
        }
        /* Everything from the hint up to first_free is in use: never scan it again. */
        s->free_hint = first_free == start ? start + n : first_free;
        return (int64_t)(start << s->cluster_bits);
    }
    return -EIO;
}
