/*
 * A modern (virtio 1.x) virtio-pci driver for guest-kit images: capability parsing,
 * status handshake and feature negotiation (VERSION_1 required), split virtqueues in
 * guest RAM, notification, used-ring polling, MSI-X per queue.  Physical = virtual
 * addresses (the kit identity-maps 4 GiB).  Event index is never negotiated, so the
 * device always interrupts and the driver always notifies.
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "pci.h"

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTIO_MSI_NO_VECTOR 0xffff
#define VIRTIO_MAX_QUEUES 8

typedef struct {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VirtqDesc; /* naturally aligned, as the spec lays it out */

typedef struct {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
} VirtqAvail; /* naturally aligned, as the spec lays it out */

typedef struct {
    uint32_t id;
    uint32_t len;
} VirtqUsedElem; /* naturally aligned, as the spec lays it out */

typedef struct {
    uint16_t flags;
    uint16_t idx;
    VirtqUsedElem ring[];
} VirtqUsed; /* naturally aligned, as the spec lays it out */

_Static_assert(sizeof(VirtqDesc) == 16, "virtq descriptor layout");
_Static_assert(sizeof(VirtqUsedElem) == 8, "virtq used element layout");

/* One buffer of a request: device-readable unless `write`. */
typedef struct {
    void *addr;
    uint32_t len;
    bool write;
} VirtioBuf;

typedef struct {
    uint16_t index, size;
    volatile VirtqDesc *desc;
    volatile VirtqAvail *avail;
    volatile VirtqUsed *used;
    uint16_t free_head, num_free;
    uint16_t last_used;
    uintptr_t notify; /* where to write the queue index */
    uint16_t msix_vector;
} Virtq;

typedef struct {
    PciDev pci;
    uintptr_t common, isr, device, notify_base;
    uint32_t notify_mult;
    uint64_t device_features, features;
    unsigned msix_entries; /* 0: no MSI-X */
    bool intx;             /* set before virtio_init: leave MSI-X off, use the INTx pin */
    Virtq vq[VIRTIO_MAX_QUEUES];
} VirtioDev;

/* Bump allocator over guest RAM above the image; never freed.  `zero` clears the block
 * (slow at emulated CPL0: skip it for large data buffers).  NULL when RAM runs out. */
void *guest_alloc(size_t size, size_t align, bool zero);

/* The `nth` (0-based) modern virtio-pci function of this type among devs, with its BARs
 * already assigned; false if absent or its capabilities are incomplete. */
bool virtio_pci_find(const PciDev *devs, unsigned n, unsigned type, unsigned nth,
                     VirtioDev *vd);
/* Resets, acknowledges, negotiates `wanted` & offered (VERSION_1 must be offered) and
 * sets FEATURES_OK; enables MSI-X if the function has it (unless vd->intx, which turns
 * MSI-X off and INTx on).  Prints why it fails. */
bool virtio_init(VirtioDev *vd, uint64_t wanted);
/* Sets up queue q with at most max_size entries (0: the device's maximum) and routes it to
 * LAPIC `vector` through MSI-X entry q+1 (vector 0: no interrupt). */
bool virtio_setup_queue(VirtioDev *vd, unsigned q, unsigned max_size, uint8_t vector);
void virtio_driver_ok(VirtioDev *vd);
uint8_t virtio_get_status(VirtioDev *vd);
/* Writes 0 to the status and waits (bounded) for it to read back 0. */
bool virtio_reset(VirtioDev *vd);
uint8_t virtio_read_isr(VirtioDev *vd);

uint8_t virtio_cfg_read8(VirtioDev *vd, unsigned off);
uint16_t virtio_cfg_read16(VirtioDev *vd, unsigned off);
uint32_t virtio_cfg_read32(VirtioDev *vd, unsigned off);
uint64_t virtio_cfg_read64(VirtioDev *vd, unsigned off);

/* Adds a chain of n buffers (readable ones first, as the spec requires) and publishes it
 * in the avail ring; returns the head, or -1 if the queue lacks free descriptors. */
int virtq_add(Virtq *vq, const VirtioBuf *bufs, unsigned n);
/* Same request through one indirect descriptor; `table` holds n VirtqDesc. */
int virtq_add_indirect(Virtq *vq, VirtqDesc *table, const VirtioBuf *bufs, unsigned n);
/* Publishes an arbitrary head (hostile tests build their own descriptors). */
void virtq_publish(Virtq *vq, uint16_t head);
void virtq_kick(Virtq *vq);
/* Takes one used element if there is one, returning its chain to the free list. */
bool virtq_poll(Virtq *vq, uint32_t *id, uint32_t *len);
/* Polls for up to `delays` guest_io_delay() periods. */
bool virtq_wait(Virtq *vq, uint32_t *id, uint32_t *len, unsigned delays);

#endif
