/*
 * Torn pages on the destination: see ram-torn.h.
 */
#include <glib.h>
#include "migration/ram-torn.h"

#define BITS_PER_WORD 64u

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
        t->map[i] = g_new0(unsigned long, (pages[i] + BITS_PER_WORD - 1) / BITS_PER_WORD);
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
    unsigned long *map = t->map[region];
    while (n) {
        unsigned shift = first % BITS_PER_WORD;
        unsigned bits = (unsigned)MIN(n, (uint64_t)(BITS_PER_WORD - shift));
        unsigned long mask = bits == BITS_PER_WORD ? ~0ul : ((1ul << bits) - 1) << shift;
        unsigned long *word = &map[first / BITS_PER_WORD];
        if (torn) {
            __atomic_fetch_or(word, mask, __ATOMIC_RELAXED);
        } else if (__atomic_load_n(word, __ATOMIC_RELAXED) & mask) {
            /* Clearing is the common case and almost always a no-op: read first. */
            __atomic_fetch_and(word, ~mask, __ATOMIC_RELAXED);
        }
        first += bits;
        n -= bits;
    }
}

uint64_t ram_torn_count(const RamTorn *t, unsigned *region, uint64_t *page)
{
    uint64_t count = 0;
    for (unsigned i = 0; i < t->nr; i++) {
        uint64_t words = (t->pages[i] + BITS_PER_WORD - 1) / BITS_PER_WORD;
        for (uint64_t w = 0; w < words; w++) {
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
