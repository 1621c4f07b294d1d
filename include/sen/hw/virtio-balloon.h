/*
 * virtio-balloon-pci (hw/virtio/virtio-balloon.c): what the monitor needs of it.
 *
 * The guest gives pages back by PFN (inflate queue); Sen returns them to the host
 * (guest_mem_discard: MADV_DONTNEED, or a punched hole for shared memory).  Deflating
 * needs no host action: a page given back reads as zeroes when the guest touches it again.
 * Sizes here are bytes of guest RAM, as QMP's `balloon` and `query-balloon` count them.
 */
#ifndef SEN_HW_VIRTIO_BALLOON_H
#define SEN_HW_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/machine.h"

/* Statistics tags (virtio 1.x 5.5.6.3, plus the ones Linux adds). */
enum {
    BALLOON_S_SWAP_IN, BALLOON_S_SWAP_OUT, BALLOON_S_MAJFLT, BALLOON_S_MINFLT,
    BALLOON_S_MEMFREE, BALLOON_S_MEMTOT, BALLOON_S_AVAIL, BALLOON_S_CACHES,
    BALLOON_S_HTLB_PGALLOC, BALLOON_S_HTLB_PGFAIL, BALLOON_S_NR
};

typedef struct VirtIOBalloon VirtIOBalloon;

/* The machine's balloon device, or NULL. */
VirtIOBalloon *virtio_balloon_find(Machine *m);
/* Asks the guest to leave it `target` bytes of RAM (clamped to the RAM size). */
void virtio_balloon_set_target(VirtIOBalloon *b, uint64_t target);
/* RAM the guest has left after inflating (RAM size minus the balloon). */
uint64_t virtio_balloon_actual(const VirtIOBalloon *b);
/*
 * The last statistics the guest reported: stats[tag] for each tag with valid[tag] set;
 * returns the g_get_real_time() of that report, 0 if none yet.  Asks the guest for a
 * fresh report as a side effect.
 */
int64_t virtio_balloon_stats(VirtIOBalloon *b, uint64_t stats[BALLOON_S_NR],
                             bool valid[BALLOON_S_NR]);

#endif
