/*
 * Torn pages on the destination: see ram-torn.h.
 */
#include <glib.h>
#include "migration/page-bits.h"
#include "migration/ram-torn.h"

struct RamTorn {
    unsigned nr;
    uint64_t *pages;
    unsigned long **map;
};

RamTorn *ram_torn_new(unsigned nr_regions, const uint64_t *pages)
{
    RamTorn *t = g_new0(RamTorn, 1);
    t->nr = nr_regions;
    t->pages = g_memdup2(pages, nr_regions * sizeof(*pages));
    t->map = g_new0(unsigned long *, nr_regions);
    for (unsigned i = 0; i < nr_regions; i++) {
        t->map[i] = g_new0(unsigned long, bitmap_words(pages[i]));
    }
    return t;
}

void ram_torn_free(RamTorn *t)
{
    if (!t) {
        return;
    }
    for (unsigned i = 0; i < t->nr; i++) {
        g_free(t->map[i]);
    }
    g_free(t->map);
    g_free(t->pages);
    g_free(t);
}

void ram_torn_set(RamTorn *t, unsigned region, uint64_t first, uint64_t n, bool torn)
{
    g_assert(region < t->nr && first <= t->pages[region] && n <= t->pages[region] - first);
    bitmap_assign_atomic(t->map[region], first, n, torn);
}

uint64_t ram_torn_count(const RamTorn *t, unsigned *region, uint64_t *page)
{
    uint64_t count = 0;
    for (unsigned i = 0; i < t->nr; i++) {
        for (uint64_t w = 0; w < bitmap_words(t->pages[i]); w++) {
            unsigned long v = __atomic_load_n(&t->map[i][w], __ATOMIC_RELAXED);
            if (v && !count) {
                *region = i;
                *page = w * BITS_PER_WORD + (uint64_t)__builtin_ctzl(v);
            }
            count += (uint64_t)__builtin_popcountl(v);
        }
    }
    return count;
}
