/*
 * Page bitmaps of migration/ram.c and ram-torn.c: one bit per guest page, 64 per word.
 */
#ifndef SEN_MIGRATION_PAGE_BITS_H
#define SEN_MIGRATION_PAGE_BITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BITS_PER_WORD 64u

static inline size_t bitmap_words(uint64_t pages)
{
    return (pages + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

/*
 * Sets (set) or clears bits [first, first+n) a word at a time, atomically: multifd
 * channel threads load different pages whose bits can share a word.  A clear reads the
 * word first: on the destination it is almost always a no-op, and a plain read does not
 * take the cache line from the other channels.
 */
static inline void bitmap_assign_atomic(unsigned long *map, uint64_t first, uint64_t n,
                                        bool set)
{
    while (n) {
        unsigned shift = first % BITS_PER_WORD;
        uint64_t room = BITS_PER_WORD - shift;
        unsigned bits = (unsigned)(n < room ? n : room);
        unsigned long mask = bits == BITS_PER_WORD ? ~0ul : ((1ul << bits) - 1) << shift;
        unsigned long *word = &map[first / BITS_PER_WORD];
        if (set) {
            __atomic_fetch_or(word, mask, __ATOMIC_RELAXED);
        } else if (__atomic_load_n(word, __ATOMIC_RELAXED) & mask) {
            __atomic_fetch_and(word, ~mask, __ATOMIC_RELAXED);
        }
        first += bits;
        n -= bits;
    }
}

#endif
