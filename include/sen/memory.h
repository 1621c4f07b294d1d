/*
 * Guest memory and the two I/O address spaces (port I/O and MMIO).
 *
 * Guest RAM is one host mapping per memory backend (MAP_NORESERVE by default: nothing is
 * spent until touched; include/sen/hostmem.h) that the machine splits into regions at guest-physical addresses.  Every access a device
 * or loader makes goes through guest_mem_read/write/fill/map, which check that [gpa,
 * gpa+len) is guest RAM; writes mark pages dirty for migration.  Copies may run from one
 * region into the next adjacent one (NUMA nodes' backends end to end), as on hardware;
 * a pointer (guest_mem_map*) covers one region only, and guest_mem_map_piece() gives the
 * pieces to callers that can take several (iovecs).  A gap or ROM in a write refuses
 * the whole access and touches nothing.
 *
 * IoSpace is a sorted set of non-overlapping ranges, each with read/write handlers that see
 * only the offset inside their range.  Accesses to unassigned addresses read as all-ones
 * and writes are dropped, as on a PC.
 */
#ifndef SEN_MEMORY_H
#define SEN_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sen/error.h"

/* ---- guest RAM ---- */

typedef struct RamRegion {
    uint64_t gpa;  /* guest-physical start */
    uint64_t size;
    uint8_t *hva;  /* host mapping of gpa */
    uint64_t backing_offset; /* in the backing space (backings end to end); ROM: unused */
    unsigned backing;        /* which backing (one per NUMA node with its memdev) */
    bool readonly; /* ROM (firmware): its own mapping outside the backing, loaded by the
                    * board; the guest cannot write it and migration need not send it
                    * (the destination loads the same firmware) */
} RamRegion;

/* Most memory backends guest RAM can be made of (QEMU's MAX_NODES). */
#define MEM_MAX_BACKINGS 128

typedef struct GuestMemory GuestMemory;

/* Creates the backing (memfd, sparse) of backing_size bytes; no regions yet. */
GuestMemory *guest_mem_new(uint64_t backing_size, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The same from a host memory backend (sen/hostmem.h: -object memory-backend-*). */
typedef struct MemBackendConfig MemBackendConfig;
GuestMemory *guest_mem_new_backend(const MemBackendConfig *cfg, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Several backends end to end (NUMA nodes' memdevs, in node order): backing offsets
 * count across them, and a region crossing from one into the next is split in two. */
GuestMemory *guest_mem_new_backends(const MemBackendConfig *const *cfgs, unsigned n,
                                    Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void guest_mem_free(GuestMemory *gm);
/* Maps [backing_offset, +size) of the backing at gpa.  Regions must not overlap. */
bool guest_mem_add_region(GuestMemory *gm, uint64_t gpa, uint64_t size,
                          uint64_t backing_offset, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* A read-only region (firmware ROM) of size bytes at gpa, zero-filled, with its own
 * memory; fill it with guest_mem_load_rom().  Guest and device writes to it are dropped. */
bool guest_mem_add_rom(GuestMemory *gm, uint64_t gpa, uint64_t size, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Copies data into [gpa, gpa+len) of one ROM region; false when that is not ROM. */
bool guest_mem_load_rom(GuestMemory *gm, uint64_t gpa, const void *data, uint64_t len);
unsigned guest_mem_region_count(const GuestMemory *gm);
const RamRegion *guest_mem_region(const GuestMemory *gm, unsigned i);
/* Index of the region holding all of [gpa, gpa+len) (RAM or ROM), or -1. */
int guest_mem_region_index(const GuestMemory *gm, uint64_t gpa, uint64_t len);
uint64_t guest_mem_backing_size(const GuestMemory *gm);
/* The fd of the backing when there is one backing and it has one, else -1. */
int guest_mem_backing_fd(const GuestMemory *gm);
/* The same, only when RAM is a shared mapping of it in 4 KiB pages, so that pwrite() at
 * a region's backing_offset lands in guest RAM (migration loads RAM that way: page
 * cache writes skip zeroing pages first, as a fault would); else -1. */
int guest_mem_shared_backing_fd(const GuestMemory *gm);
/* Whether all guest RAM is private anonymous memory, where a page the process never
 * touched (neither present nor swapped in /proc/self/pagemap) reads as zero. */
bool guest_mem_is_private_anonymous(const GuestMemory *gm);
/* Page size of the host memory behind guest RAM (4 KiB, or the largest huge page size). */
uint64_t guest_mem_host_page_size(const GuestMemory *gm);
/* Gives [gpa, gpa+len) back to the host (balloon): it reads as zeroes afterwards and is
 * marked dirty.  False when the range is not RAM or not aligned to the host page size. */
bool guest_mem_discard(GuestMemory *gm, uint64_t gpa, uint64_t len);

/* true iff [gpa, gpa+len) is RAM or ROM: one region, or adjacent regions end to end with
 * no gap (len 0 is never valid). */
bool guest_mem_is_ram(const GuestMemory *gm, uint64_t gpa, uint64_t len);
/* Host pointer for [gpa, gpa+len) or NULL when not entirely RAM (ROM included: the
 * pointer is writable).  The caller must call guest_mem_mark_dirty() for what it writes
 * through the pointer.  guest_mem_read reads ROM; guest_mem_write/fill refuse it. */
void *guest_mem_map(GuestMemory *gm, uint64_t gpa, uint64_t len);
/* The same for memory a device writes into (DMA): NULL for ROM as well. */
void *guest_mem_map_writable(GuestMemory *gm, uint64_t gpa, uint64_t len);
/* The first piece of [gpa, gpa+len) that one region holds: its host pointer, and in
 * *piece its length (up to len, to the end of the region holding gpa).  NULL (and *piece
 * 0) when gpa is not RAM, or is ROM and writable is set.  The next piece starts at gpa +
 * *piece; a caller builds one iovec per piece. */
void *guest_mem_map_piece(GuestMemory *gm, uint64_t gpa, uint64_t len, bool writable,
                          uint64_t *piece);
/* Copies across adjacent regions; false (nothing copied) when any byte is not RAM, or
 * for write/fill not writable RAM. */
bool guest_mem_read(GuestMemory *gm, uint64_t gpa, void *buf, uint64_t len);
bool guest_mem_write(GuestMemory *gm, uint64_t gpa, const void *buf, uint64_t len);
bool guest_mem_fill(GuestMemory *gm, uint64_t gpa, int byte, uint64_t len);
/* Records a device write for migration (in each region it covers); a no-op until dirty
 * logging is enabled. */
void guest_mem_mark_dirty(GuestMemory *gm, uint64_t gpa, uint64_t len);
/*
 * Device-side dirty log (migration/ram.c combines it with the accelerator's): start
 * clears it and turns recording on; take ORs the pages recorded in RAM region `region`
 * into bitmap (bit n = 4 KiB page n of the region, unsigned long words), sets bit w of
 * summary (unless NULL) for every word w it ORed bits into, and clears them.  A take
 * costs what was written since the last one, not the size of RAM.  Any thread.
 */
void guest_mem_dirty_log_start(GuestMemory *gm);
void guest_mem_dirty_log_stop(GuestMemory *gm);
void guest_mem_dirty_log_take(GuestMemory *gm, unsigned region, unsigned long *bitmap,
                              unsigned long *summary);

/* ---- port I/O and MMIO dispatch ---- */

typedef struct IoOps {
    /* size is 1, 2, 4 or 8; offset is relative to the range base. */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t value);
} IoOps;

typedef struct IoSpace IoSpace;

IoSpace *io_space_new(const char *name); /* name: "pio" or "mmio", used in errors */
void io_space_free(IoSpace *io);
/* Fails naming owner and the range if it overlaps an existing one. */
bool io_space_add(IoSpace *io, uint64_t base, uint64_t len, const IoOps *ops, void *opaque,
                  const char *owner, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void io_space_del(IoSpace *io, uint64_t base);
/* Return false when nothing is mapped at addr (read then yields all-ones). */
bool io_space_read(IoSpace *io, uint64_t addr, unsigned size, uint64_t *value);
bool io_space_write(IoSpace *io, uint64_t addr, unsigned size, uint64_t value);

#endif
