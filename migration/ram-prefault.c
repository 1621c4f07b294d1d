/*
 * Prefaulting the destination's guest RAM ahead of the stream.
 *
 * The destination's RAM is empty when a load starts, so every huge page the stream
 * fills is first zeroed by the kernel on its first touch: for a busy guest the largest
 * share of the destination's CPU, and all of it on the thread that also reads the
 * socket.  Here a second thread takes those faults (MADV_POPULATE_WRITE, which leaves
 * the contents alone) up to RAM_PREFAULT_AHEAD past the newest data record, so the
 * reader finds its pages present.  The stream is sent in address order per pass, so
 * the window is where the next records land.
 *
 * Thin guests stay thin: the window is bounded, and when the load ends every chunk
 * this thread faulted in without any page of it receiving data (it holds zeroes only)
 * is discarded again.
 */
#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "migration/ram-prefault.h"
#include "migration/ram.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Granule of the faulting and of the final discard: a transparent huge page. */
#define RAM_PREFAULT_CHUNK (2u << 20)
/* How far past the newest data record RAM is faulted in. */
#define RAM_PREFAULT_AHEAD (8u << 20)

#define BITS_PER_WORD 64u

typedef struct PrefaultRegion {
    const RamRegion *r;
    uint64_t first_chunk;       /* chunk index (hva / CHUNK) of the region's start */
    uint64_t nr_chunks;
    unsigned long *faulted;     /* chunks this thread faulted in */
} PrefaultRegion;

struct RamPrefault {
    GuestMemory *gm;
    GThread *thread;
    GMutex lock;
    GCond cond;
    /* Under lock: the newest note and whether the thread sleeps waiting for one. */
    unsigned note_ri;
    uint64_t note_end;
    uint64_t note_seq;
    bool sleeping;
    bool quit;
    /* Atomic, published by the thread: RAM of region covered_ri is faulted in up to
     * covered_end; a note well inside that neither locks nor wakes the thread. */
    unsigned covered_ri;
    uint64_t covered_end;
    bool populate_works;        /* MADV_POPULATE_WRITE (Linux 5.14); else a write a page */
    unsigned nr_regions;
    PrefaultRegion *regions;    /* guest_mem_region numbering; r NULL for ROM */
};

static bool test_bit(const unsigned long *map, uint64_t i)
{
    return __atomic_load_n(&map[i / BITS_PER_WORD], __ATOMIC_RELAXED) &
           (1ul << (i % BITS_PER_WORD));
}

/* Faults in [p, p + len) for writing without changing a byte (the reader may be
 * filling part of it at the same time). */
static void populate(RamPrefault *pf, uint8_t *p, size_t len)
{
    if (pf->populate_works) {
        if (madvise(p, len, MADV_POPULATE_WRITE) == 0) {
            return;
        }
        if (errno == EINVAL) {
            pf->populate_works = false; /* an older kernel */
        } else {
            return; /* out of memory and the like: the reader's own fault reports it */
        }
    }
    for (size_t off = 0; off < len; off += MIG_PAGE_SIZE) {
        __atomic_fetch_or(p + off, 0, __ATOMIC_RELAXED);
    }
}

/* Faults in the chunks of region pr that overlap [from, to) (byte offsets) and are not
 * faulted yet. */
static void prefault_range(RamPrefault *pf, PrefaultRegion *pr, uint64_t from, uint64_t to)
{
    const RamRegion *r = pr->r;
    uintptr_t base = (uintptr_t)r->hva;

    for (uint64_t c = (base + from) / RAM_PREFAULT_CHUNK;
         c * RAM_PREFAULT_CHUNK < base + to; c++) {
        uint64_t i = c - pr->first_chunk;
        if (test_bit(pr->faulted, i)) {
            continue;
        }
        uintptr_t start = MAX(c * RAM_PREFAULT_CHUNK, base);
        uintptr_t end = MIN((c + 1) * RAM_PREFAULT_CHUNK, base + r->size);
        populate(pf, (uint8_t *)start, end - start);
        pr->faulted[i / BITS_PER_WORD] |= 1ul << (i % BITS_PER_WORD);
    }
}

static gpointer prefault_thread(gpointer opaque)
{
    RamPrefault *pf = opaque;
    uint64_t seen = 0, done = 0;
    unsigned cur_ri = UINT_MAX;

    g_mutex_lock(&pf->lock);
    while (!pf->quit) {
        if (pf->note_seq == seen) {
            pf->sleeping = true;
            g_cond_wait(&pf->cond, &pf->lock);
            pf->sleeping = false;
            continue;
        }
        seen = pf->note_seq;
        unsigned ri = pf->note_ri;
        uint64_t end = pf->note_end;
        g_mutex_unlock(&pf->lock);

        PrefaultRegion *pr = &pf->regions[ri];
        /* A new region or a jump (the next pass, or multifd channels far apart):
         * restart the window at the note. */
        if (ri != cur_ri || end + RAM_PREFAULT_AHEAD < done || end > done) {
            cur_ri = ri;
            done = end;
        }
        uint64_t to = MIN(end + RAM_PREFAULT_AHEAD, pr->r->size);
        if (done < to) {
            prefault_range(pf, pr, done, to);
            done = to;
        }
        __atomic_store_n(&pf->covered_ri, ri, __ATOMIC_RELAXED);
        __atomic_store_n(&pf->covered_end, done, __ATOMIC_RELAXED);
        g_mutex_lock(&pf->lock);
    }
    g_mutex_unlock(&pf->lock);
    return NULL;
}

RamPrefault *ram_prefault_start(GuestMemory *gm)
{
    if (!guest_mem_is_private_anonymous(gm) || guest_mem_shared_backing_fd(gm) >= 0 ||
        guest_mem_host_page_size(gm) > RAM_PREFAULT_CHUNK || getenv("SEN_MIGRATION_NO_PREFAULT")) {
        return NULL;
    }
    RamPrefault *pf = g_new0(RamPrefault, 1);
    pf->gm = gm;
    pf->populate_works = true;
    pf->covered_ri = UINT_MAX;
    pf->nr_regions = guest_mem_region_count(gm);
    pf->regions = g_new0(PrefaultRegion, pf->nr_regions);
    for (unsigned i = 0; i < pf->nr_regions; i++) {
        const RamRegion *r = guest_mem_region(gm, i);
        if (r->readonly || !r->size) {
            continue;
        }
        PrefaultRegion *pr = &pf->regions[i];
        uintptr_t base = (uintptr_t)r->hva;
        pr->r = r;
        pr->first_chunk = base / RAM_PREFAULT_CHUNK;
        pr->nr_chunks = (base + r->size - 1) / RAM_PREFAULT_CHUNK - pr->first_chunk + 1;
        pr->faulted = g_new0(unsigned long, (pr->nr_chunks + BITS_PER_WORD - 1) / BITS_PER_WORD);
    }
    g_mutex_init(&pf->lock);
    g_cond_init(&pf->cond);
    pf->thread = g_thread_new("mig-prefault", prefault_thread, pf);
    return pf;
}

void ram_prefault_note(RamPrefault *pf, unsigned ri, uint64_t end)
{
    if (!pf || ri >= pf->nr_regions || !pf->regions[ri].r) {
        return;
    }
    /* Half a window still ahead of the reader: let the thread sleep (one wake-up per
     * half window instead of one per record).  The two loads may race with the
     * thread's stores: a wrong guess costs a wake-up or a later refill, never data. */
    if (__atomic_load_n(&pf->covered_ri, __ATOMIC_RELAXED) == ri &&
        end + RAM_PREFAULT_AHEAD / 2 <= __atomic_load_n(&pf->covered_end, __ATOMIC_RELAXED)) {
        return;
    }
    g_mutex_lock(&pf->lock);
    pf->note_ri = ri;
    pf->note_end = end;
    pf->note_seq++;
    if (pf->sleeping) {
        g_cond_signal(&pf->cond);
    }
    g_mutex_unlock(&pf->lock);
}

/* Whether any page of [from, to) (byte offsets in the region) holds data. */
static bool any_written(const unsigned long *written, uint64_t from, uint64_t to)
{
    for (uint64_t p = from / MIG_PAGE_SIZE; p < (to + MIG_PAGE_SIZE - 1) / MIG_PAGE_SIZE; p++) {
        if (test_bit(written, p)) {
            return true;
        }
    }
    return false;
}

void ram_prefault_stop(RamPrefault *pf, unsigned long *const *written)
{
    if (!pf) {
        return;
    }
    g_mutex_lock(&pf->lock);
    pf->quit = true;
    g_cond_signal(&pf->cond);
    g_mutex_unlock(&pf->lock);
    g_thread_join(pf->thread);

    for (unsigned ri = 0; ri < pf->nr_regions; ri++) {
        PrefaultRegion *pr = &pf->regions[ri];
        if (!pr->r) {
            continue;
        }
        uintptr_t base = (uintptr_t)pr->r->hva;
        for (uint64_t i = 0; i < pr->nr_chunks; i++) {
            if (!test_bit(pr->faulted, i)) {
                continue;
            }
            uintptr_t start = MAX((pr->first_chunk + i) * RAM_PREFAULT_CHUNK, base);
            uintptr_t end = MIN((pr->first_chunk + i + 1) * RAM_PREFAULT_CHUNK,
                                base + pr->r->size);
            if (!any_written(written[ri], start - base, end - base)) {
                /* Zeroes only.  A partial chunk at a region's edge may not be
                 * discardable (alignment): it then stays, still reading as zero. */
                guest_mem_discard(pf->gm, pr->r->gpa + (start - base), end - start);
            }
        }
        g_free(pr->faulted);
    }
    g_free(pf->regions);
    g_mutex_clear(&pf->lock);
    g_cond_clear(&pf->cond);
    g_free(pf);
}
