/*
 * Rebuilding the refcount structure from counted references (qemu-img check -r all when
 * a referenced cluster has no refcount, i.e. its refcount block is missing or its table
 * entry is broken): per-cluster updates cannot repair that, as there is no block to
 * update.  New refcount blocks go into free clusters (first free first), the new table
 * into the first run of free clusters long enough (as qemu-img places them); all are
 * written and flushed before the header points at the
 * table, so a crash before the switch leaves the old structure and a few unreferenced
 * clusters.  The old table and blocks are then leaks the caller frees, as QEMU does.
 *
 * A table entry the check could not repair may reference a cluster past the end of the
 * file (or past what was counted when check grew the file over a refcount block): it is
 * counted nowhere, yet in use.  The rebuild grows the file, so such a cluster must not
 * become one of its new blocks (qemu-img 7.2 does put one there, and its check after the
 * rebuild then fails "rebuilt refcount structure is still broken"): the caller passes
 * those references, the new clusters go around them, and every one the rebuilt range
 * comes to cover gets its refcount like any counted cluster.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "block/qcow2.h"
#include "sen/block.h"

typedef struct Rebuild {
    BDRVQcow2State *s;
    uint64_t *refs;     /* counted references, one per cluster */
    uint64_t nb;        /* clusters refs covers */
    uint64_t hint;      /* no free cluster below this */
    const GArray *beyond; /* of Qcow2BeyondRef: references at or past nb */
} Rebuild;

/* i, or if references beyond refs cover cluster i, the end of the furthest of them. */
static uint64_t rebuild_beyond_end(const Rebuild *r, uint64_t i)
{
    uint64_t end = i;
    for (guint k = 0; r->beyond && k < r->beyond->len; k++) {
        const Qcow2BeyondRef *b = &g_array_index(r->beyond, Qcow2BeyondRef, k);
        if (b->first <= i && i < b->end) {
            end = MAX(end, b->end);
        }
    }
    return end;
}

/* The first cluster at or after i that is not in use: counted, or referenced beyond
 * what refs covers. */
static uint64_t rebuild_next_free(const Rebuild *r, uint64_t i)
{
    for (;;) {
        if (i < r->nb) {
            if (!r->refs[i]) {
                return i;
            }
            i++;
        } else {
            uint64_t end = rebuild_beyond_end(r, i);
            if (end == i) {
                return i;
            }
            i = end;
        }
    }
}

/* Extends refs to nb clusters; the references beyond it now covered are counted. */
static void rebuild_grow(Rebuild *r, uint64_t nb)
{
    if (nb <= r->nb) {
        return;
    }
    r->refs = g_renew(uint64_t, r->refs, nb);
    memset(r->refs + r->nb, 0, (nb - r->nb) * sizeof(uint64_t));
    for (guint k = 0; r->beyond && k < r->beyond->len; k++) {
        const Qcow2BeyondRef *b = &g_array_index(r->beyond, Qcow2BeyondRef, k);
        for (uint64_t i = MAX(b->first, r->nb); i < MIN(b->end, nb); i++) {
            r->refs[i]++;
        }
    }
    r->nb = nb;
}

/* Takes the first free cluster, past the end if none is free. */
static uint64_t rebuild_alloc(Rebuild *r)
{
    r->hint = rebuild_next_free(r, r->hint);
    rebuild_grow(r, r->hint + 1);
    r->refs[r->hint] = 1;
    return r->hint;
}

/*
 * The first run of m free clusters (possibly reaching past what refs covers), as
 * qemu-img places the new table: a table after the last used cluster would leave the
 * free clusters before it as a hole and make the image end later than needed.
 */
static uint64_t rebuild_find_run(const Rebuild *r, uint64_t m)
{
    uint64_t start = rebuild_next_free(r, r->hint);
    for (uint64_t i = start; i < start + m; i++) {
        uint64_t next = rebuild_next_free(r, i);
        if (next != i) {
            start = i = next;
        }
    }
    return start;
}

static bool range_used(const Rebuild *r, uint64_t rt)
{
    uint64_t lo = rt << r->s->refblock_bits;
    uint64_t hi = MIN(r->nb, (rt + 1) << r->s->refblock_bits);
    for (uint64_t i = lo; i < hi; i++) {
        if (r->refs[i]) {
            return true;
        }
    }
    return false;
}

/* Gives every range with a used cluster a block; blocks placed in ranges that had none
 * need one too, so repeat until nothing changes.  *table grows to cover the ranges. */
static void rebuild_place_blocks(Rebuild *r, uint64_t **table, uint64_t *entries)
{
    bool changed = true;
    while (changed) {
        changed = false;
        uint64_t ranges = ((r->nb - 1) >> r->s->refblock_bits) + 1;
        if (ranges > *entries) {
            *table = g_renew(uint64_t, *table, ranges);
            memset(*table + *entries, 0, (ranges - *entries) * sizeof(uint64_t));
            *entries = ranges;
        }
        for (uint64_t rt = 0; rt < ranges; rt++) {
            if (!(*table)[rt] && range_used(r, rt)) {
                (*table)[rt] = rebuild_alloc(r) << r->s->cluster_bits;
                changed = true;
            }
        }
    }
}

/*
 * Writes a new refcount block or the new table through the overlap check, so that a
 * miscount placing one on an L1/L2 table, the snapshot table or L1s or the bitmap
 * directory fails (image marked corrupt) instead of destroying it.  The refcount types
 * are ignored: the old table and blocks are what the rebuild replaces, and a broken
 * table entry (the reason for the rebuild) names clusters that are no refcount block.
 */
static int rebuild_write(BDRVQcow2State *s, uint64_t off, uint64_t len, const void *buf)
{
    int ret = qcow2_overlap_check(s, QCOW2_OL_REFCOUNT_TABLE | QCOW2_OL_REFCOUNT_BLOCK,
                                  off, len);
    return ret < 0 ? ret : bdrv_pwrite(s->bs->file, off, len, buf);
}

int qcow2_rebuild_refcounts(BDRVQcow2State *s, uint64_t **refs, uint64_t *nb,
                            const GArray *beyond)
{
    Rebuild r = { .s = s, .refs = *refs, .nb = *nb, .beyond = beyond };
    uint64_t per_cluster = s->cluster_size / 8, max = qcow2_refcount_max(s->h.refcount_order);
    uint64_t *table = NULL, entries = 0, t0 = 0, m = 0;

    rebuild_grow(&r, 1);
    /* The table goes after everything in use, its clusters counted; the blocks its
     * clusters need may add ranges, and so a bigger table: move it until it fits. */
    for (;;) {
        rebuild_place_blocks(&r, &table, &entries);
        uint64_t need = (entries + per_cluster - 1) / per_cluster;
        if (m >= need) {
            break;
        }
        for (uint64_t i = 0; i < m; i++) {
            r.refs[t0 + i]--;
        }
        if (need * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
            g_free(table);
            *refs = r.refs;
            *nb = r.nb;
            return -EFBIG;
        }
        m = need;
        t0 = rebuild_find_run(&r, m);
        rebuild_grow(&r, t0 + m);
        for (uint64_t i = 0; i < m; i++) {
            r.refs[t0 + i] = 1;
        }
    }

    /* Check's repairs clear L1 entries (an entry pointing past the end) without
     * freeing a cluster, which leaves the index naming the L2 table they pointed to:
     * refreshed from the tables as they are now, it cannot refuse a cluster the counts
     * found free. */
    qcow2_overlap_invalidate(s);
    int ret = 0;
    uint8_t *blk = g_malloc(s->cluster_size);
    for (uint64_t rt = 0; ret == 0 && rt < entries; rt++) {
        if (!table[rt]) {
            continue;
        }
        memset(blk, 0, s->cluster_size);
        uint64_t lo = rt << s->refblock_bits;
        for (uint64_t i = lo; i < MIN(r.nb, (rt + 1) << s->refblock_bits); i++) {
            /* A count past the width's maximum is kept at the maximum: the cluster then
             * is never freed, the safe side. */
            qcow2_refcount_set(blk, i - lo, s->h.refcount_order, MIN(r.refs[i], max));
        }
        ret = rebuild_write(s, table[rt], s->cluster_size, blk);
    }
    g_free(blk);
    uint64_t tsize = m * per_cluster;
    uint64_t *be = g_new0(uint64_t, tsize);
    for (uint64_t i = 0; i < entries; i++) {
        be[i] = GUINT64_TO_BE(table[i]);
    }
    if (ret == 0) {
        ret = rebuild_write(s, t0 << s->cluster_bits, m * s->cluster_size, be);
    }
    g_free(be);
    if (ret == 0) {
        ret = bdrv_flush(s->bs->file);
    }
    if (ret == 0) {
        ret = qcow2_write_reftable_location(s, t0 << s->cluster_bits, (uint32_t)m);
        if (ret < 0) {
            /* The header write or its flush failed: the file may name the new table or
             * the old one, both whole on the disk (the new one was flushed first), so a
             * new check -r all repairs either (leaks, or the damage it found), as after
             * qemu-img's "ERROR setting reftable".  This open keeps the old one in
             * memory, which may no longer be the file's: it writes nothing more. */
            fprintf(stderr, "ERROR setting the refcount table: %s\n", g_strerror(-ret));
            s->read_only = true;
        }
    }
    if (ret == 0) {
        /* Cached blocks are the old ones (or, at the new blocks' offsets, clusters that
         * were free and hold nothing valid): drop both. */
        for (uint64_t i = 0; i < s->reftable_size; i++) {
            if (s->reftable[i] & QCOW2_REFT_OFFSET_MASK) {
                qcow2_cache_discard(s->rb_cache, s->reftable[i] & QCOW2_REFT_OFFSET_MASK);
            }
        }
        for (uint64_t i = 0; i < entries; i++) {
            if (table[i]) {
                qcow2_cache_discard(s->rb_cache, table[i]);
            }
        }
        g_free(s->reftable);
        s->reftable = g_renew(uint64_t, table, tsize);
        memset(s->reftable + entries, 0, (tsize - entries) * sizeof(uint64_t));
        table = NULL;
        s->reftable_size = tsize;
        qcow2_reftable_scan_used(s);
        s->h.refcount_table_offset = t0 << s->cluster_bits;
        s->h.refcount_table_clusters = m;
        s->free_hint = 0;
        s->alloc_end = MAX(s->alloc_end, r.nb);
    }
    g_free(table);
    *refs = r.refs;
    *nb = r.nb;
    return ret;
}
