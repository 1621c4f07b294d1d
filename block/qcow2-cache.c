/*
 * Metadata table cache (L2 tables, refcount blocks): a fixed number of cluster-sized slots,
 * least recently used evicted first, dirty slots written back on eviction and flush.
 *
 * Crash consistency: a cache may depend on another (L2 on refcount blocks).  Before any
 * dirty slot of the dependent cache reaches the disk, the cache it depends on is flushed
 * and the file synced, so an on-disk L2 entry never points at a cluster whose refcount is
 * not yet on disk: a crash can leak clusters but never leave a live one unreferenced.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"

typedef struct Qcow2CacheSlot {
    uint64_t offset; /* 0 = empty */
    uint64_t lru;
    bool dirty;
    uint8_t *data;
} Qcow2CacheSlot;

struct Qcow2Cache {
    BDRVQcow2State *s;
    Qcow2Cache *depends;
    unsigned n;
    uint64_t clock;
    Qcow2CacheSlot *slots;
};

Qcow2Cache *qcow2_cache_new(BDRVQcow2State *s, unsigned entries, Qcow2Cache *depends)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    c->s = s;
    c->depends = depends;
    c->n = MAX(entries, 2u);
    c->slots = g_new0(Qcow2CacheSlot, c->n);
    for (unsigned i = 0; i < c->n; i++) {
        c->slots[i].data = g_malloc(s->cluster_size);
    }
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    for (unsigned i = 0; i < c->n; i++) {
        g_free(c->slots[i].data);
    }
    g_free(c->slots);
    g_free(c);
}

/* What the cache's tables are, for the overlap check of their write-back.  The L2 cache
 * also holds snapshots' tables (amend and check walk them), so its write-back ignores
 * both L2 types: in mode all, writing a snapshot's own table was refused as a hit. */
static unsigned cache_type(const Qcow2Cache *c)
{
    return c == c->s->rb_cache ? QCOW2_OL_REFCOUNT_BLOCK
                               : QCOW2_OL_ACTIVE_L2 | QCOW2_OL_INACTIVE_L2;
}

static int cache_write_slot(Qcow2Cache *c, Qcow2CacheSlot *sl)
{
    if (!sl->dirty) {
        return 0;
    }
    if (c->depends) {
        int ret = qcow2_cache_flush(c->depends);
        if (ret < 0) {
            return ret;
        }
    }
    int ret = qcow2_meta_pwrite(c->s, cache_type(c), sl->offset, c->s->cluster_size, sl->data,
                                false);
    if (ret < 0) {
        return ret;
    }
    sl->dirty = false;
    return 0;
}

int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, bool fresh, uint8_t **out)
{
    Qcow2CacheSlot *victim = NULL;
    if (offset % c->s->cluster_size) {
        /* Callers check the table offsets they read; this catches any they miss. */
        qcow2_signal_corruption(c->s, true, -1, -1,
                                "Cannot get entry from %s cache: Offset %#" PRIx64
                                " is unaligned", c == c->s->l2_cache ? "L2 table" :
                                "refcount block", offset);
        return -EIO;
    }
    for (unsigned i = 0; i < c->n; i++) {
        Qcow2CacheSlot *sl = &c->slots[i];
        if (sl->offset == offset) {
            sl->lru = ++c->clock;
            if (fresh) {
                memset(sl->data, 0, c->s->cluster_size);
            }
            *out = sl->data;
            return 0;
        }
        if (!victim || sl->lru < victim->lru) {
            victim = sl;
        }
    }
    int ret = cache_write_slot(c, victim);
    if (ret < 0) {
        return ret;
    }
    victim->offset = 0;
    if (fresh) {
        memset(victim->data, 0, c->s->cluster_size);
    } else {
        ret = bdrv_pread(c->s->bs->file, offset, c->s->cluster_size, victim->data);
        if (ret < 0) {
            return ret;
        }
    }
    victim->offset = offset;
    victim->lru = ++c->clock;
    *out = victim->data;
    return 0;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, uint64_t offset)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->slots[i].offset == offset) {
            c->slots[i].dirty = true;
        }
    }
}

int qcow2_cache_flush(Qcow2Cache *c)
{
    bool any = false;
    for (unsigned i = 0; i < c->n; i++) {
        any |= c->slots[i].dirty;
    }
    if (!any) {
        return 0;
    }
    if (c->depends) {
        int ret = qcow2_cache_flush(c->depends);
        if (ret < 0) {
            return ret;
        }
    }
    for (unsigned i = 0; i < c->n; i++) {
        if (c->slots[i].dirty) {
            int ret = qcow2_meta_pwrite(c->s, cache_type(c), c->slots[i].offset,
                                        c->s->cluster_size, c->slots[i].data, false);
            if (ret < 0) {
                return ret;
            }
            c->slots[i].dirty = false;
        }
    }
    return bdrv_flush(c->s->bs->file);
}

void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->slots[i].offset == offset) {
            c->slots[i].offset = 0;
            c->slots[i].dirty = false;
            c->slots[i].lru = 0;
        }
    }
}
