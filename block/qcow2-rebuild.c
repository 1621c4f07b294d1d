/*
 * Rebuilding the refcount structure from counted references (qemu-img check -r all when
 * a referenced cluster has no refcount, i.e. its refcount block is missing or its table
 * entry is broken): per-cluster updates cannot repair that, as there is no block to
 * update.  New refcount blocks go into free clusters (first free first), the new table
 * into the first run of free clusters long enough (as qemu-img places them); all are
 * written and flushed before the header points at the
 * table, so a crash before the switch leaves the old structure and a few unreferenced
 * clusters.  The old table and blocks are then leaks the caller frees, as QEMU does.
 */
#include <errno.h>
#include <string.h>

#include "block/qcow2.h"
#include "sen/block.h"

typedef struct Rebuild {
    BDRVQcow2State *s;
    uint64_t *refs;     /* counted references, one per cluster */
    uint64_t nb;        /* clusters refs covers */
    uint64_t hint;      /* no free cluster below this */
} Rebuild;

static void rebuild_grow(Rebuild *r, uint64_t nb)
{
    if (nb > r->nb) {
        r->refs = g_renew(uint64_t, r->refs, nb);
        memset(r->refs + r->nb, 0, (nb - r->nb) * sizeof(uint64_t));
        r->nb = nb;
    }
}

/* Takes the first free cluster (refs 0), past the end if none is free. */
static uint64_t rebuild_alloc(Rebuild *r)
{
    while (r->hint < r->nb && r->refs[r->hint]) {
        r->hint++;
    }
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
    uint64_t start = r->hint, len = 0;
    for (uint64_t i = r->hint; i < r->nb && len < m; i++) {
        if (r->refs[i]) {
            start = i + 1;
            len = 0;
        } else {
            len++;
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

int qcow2_rebuild_refcounts(BDRVQcow2State *s, uint64_t **refs, uint64_t *nb)
{
    Rebuild r = { .s = s, .refs = *refs, .nb = MAX(*nb, 1) };
    uint64_t per_cluster = s->cluster_size / 8, max = qcow2_refcount_max(s->h.refcount_order);
    uint64_t *table = NULL, entries = 0, t0 = 0, m = 0;

    rebuild_grow(&r, *nb ? *nb : 1);
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
        ret = bdrv_pwrite(s->bs->file, table[rt], s->cluster_size, blk);
    }
    g_free(blk);
    uint64_t tsize = m * per_cluster;
    uint64_t *be = g_new0(uint64_t, tsize);
    for (uint64_t i = 0; i < entries; i++) {
        be[i] = GUINT64_TO_BE(table[i]);
    }
    if (ret == 0) {
        ret = bdrv_pwrite(s->bs->file, t0 << s->cluster_bits, m * s->cluster_size, be);
    }
    g_free(be);
    if (ret == 0) {
        ret = bdrv_flush(s->bs->file);
    }
    if (ret == 0) {
        ret = qcow2_write_reftable_location(s, t0 << s->cluster_bits, (uint32_t)m);
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
