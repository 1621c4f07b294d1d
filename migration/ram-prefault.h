/*
 * Destination: faults guest RAM in a bounded distance ahead of the RAM records being
 * received, on another thread, so that the kernel's zeroing of fresh pages runs in
 * parallel with the socket reads instead of in front of each of them.
 */
#ifndef SEN_MIGRATION_RAM_PREFAULT_H
#define SEN_MIGRATION_RAM_PREFAULT_H

#include <stdint.h>
#include "sen/memory.h"

typedef struct RamPrefault RamPrefault;

/* Starts the thread; NULL (and nothing to do) when RAM would not gain from it: not
 * private anonymous memory, or host pages larger than the window. */
RamPrefault *ram_prefault_start(GuestMemory *gm);
/* A data record for region ri ending at byte end (from the region's start) is being
 * read: fault in what follows it.  Any thread; pf may be NULL. */
void ram_prefault_note(RamPrefault *pf, unsigned ri, uint64_t end);
/* Stops the thread.  Chunks it faulted in where no page received data (written: per
 * region, one bit per 4 KiB page that holds data) are given back, so RAM the stream
 * did not fill stays unallocated.  Call after every record is loaded. */
void ram_prefault_stop(RamPrefault *pf, unsigned long *const *written);

#endif
