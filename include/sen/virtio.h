/*
 * Virtio (1.x) device core and split virtqueues, independent of the transport.
 *
 * A device model embeds a VirtIODevice, fills in its ops, features and config space and
 * adds its queues; a transport (hw/virtio/virtio-pci.c) maps the driver's register
 * accesses onto virtio_set_status / virtio_set_features / the VirtQueue fields and
 * delivers interrupts through the notify hook.
 *
 * Guest input is never trusted: every descriptor chain is walked in virtqueue.c only,
 * bounds-checked against guest RAM, the queue size and a maximum chain length.  A
 * malformed chain (loop, address outside RAM, bad index, an indirect table where none is
 * allowed, ...) marks the device broken: status gets DEVICE_NEEDS_RESET, a config
 * interrupt is raised, one rate-limited line is logged and every queue stops until the
 * driver resets the device.  The VMM keeps running.
 *
 * Locking: all of this runs under the VM lock (vCPU exit, ioeventfd handler and block
 * completions all take it).  Barriers in virtqueue.c order our accesses against the
 * driver running concurrently on other vCPUs.
 */
#ifndef SEN_VIRTIO_H
#define SEN_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib.h>
#include "sen/log.h"
#include "sen/memory.h"

/* ---- constants from the virtio 1.x specification ---- */

#define VIRTIO_STATUS_ACKNOWLEDGE        0x01
#define VIRTIO_STATUS_DRIVER             0x02
#define VIRTIO_STATUS_DRIVER_OK          0x04
#define VIRTIO_STATUS_FEATURES_OK        0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED             0x80

#define VIRTIO_F_INDIRECT_DESC   28
#define VIRTIO_F_RING_EVENT_IDX  29
#define VIRTIO_F_VERSION_1       32

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

#define VIRTIO_NO_VECTOR 0xffff

/* Virtio device IDs (the PCI device ID is 0x1040 + id). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4

/* Largest queue we offer, and the most buffers one request may have (direct or indirect). */
#define VIRTQUEUE_MAX_SIZE 1024
#define VIRTQUEUE_MAX_SEGS 1024

/* Guest-visible ring layouts (little-endian; Sen only runs on x86 hosts). */
typedef struct VirtqDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VirtqDesc;

typedef struct VirtQueue VirtQueue;
typedef struct VirtIODevice VirtIODevice;

/* ---- virtqueues ---- */

/*
 * One request popped from a queue.  out_sg are the buffers the driver filled (device
 * reads), in_sg the ones the device fills; both point straight into guest RAM.  Each
 * iovec lies inside one RAM region.  Devices must not write through out_sg.
 */
typedef struct VirtQueueElement {
    uint16_t head;        /* descriptor index handed back in the used ring */
    unsigned out_num;
    unsigned in_num;
    struct iovec *out_sg;
    struct iovec *in_sg;
    uint64_t *in_gpa;     /* guest address of each in_sg, to mark written pages dirty */
    size_t out_len;       /* total bytes in out_sg */
    size_t in_len;        /* total bytes in in_sg */
} VirtQueueElement;

/*
 * A request popped without allocating (virtqueue_pop_small), for a per-request hot path
 * whose chains are short, such as a virtio-net rx buffer: the element and its pieces
 * live in the caller's storage.
 */
#define VIRTQUEUE_SMALL_SEGS 16
typedef struct VirtQueueSmallElement {
    VirtQueueElement e;
    struct iovec sg[VIRTQUEUE_SMALL_SEGS];
    uint64_t gpa[VIRTQUEUE_SMALL_SEGS];
} VirtQueueSmallElement;

/* Called when the driver notifies the queue (VM lock held). */
typedef void VirtQueueHandler(VirtIODevice *vdev, VirtQueue *vq);

struct VirtQueue {
    VirtIODevice *vdev;
    uint16_t index;
    uint16_t num_max;        /* what the device offers */
    /* Set by the transport while the queue is disabled. */
    uint16_t num;            /* queue size chosen by the driver (power of 2 for split) */
    uint16_t vector;         /* MSI-X vector or VIRTIO_NO_VECTOR */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    bool enabled;            /* queue_enable written 1 and the rings mapped */

    /* Host views of the rings, valid while enabled (guest RAM never moves). */
    VirtqDesc *desc;
    uint16_t *avail;         /* flags, idx, ring[num], used_event */
    uint8_t *used;           /* flags, idx, ring[num] of {id, len}, avail_event */

    uint16_t last_avail_idx; /* next avail entry we will pop */
    /* Avail entries beyond last_avail_idx seen at our last read of avail->idx: while some
     * are left, pop and empty do not read that index again (a line the driver writes for
     * every buffer it posts; each read from our core costs its next write a miss). */
    uint16_t avail_known;
    uint16_t used_idx;       /* our copy of used->idx */
    uint16_t signalled_used; /* used_idx when we last decided about an interrupt */
    bool signalled_used_valid;
    bool notification;       /* driver notifications wanted */
    unsigned inuse;          /* popped but not yet pushed */
    VirtQueueHandler *handler;
    /* virtqueue_pop's ~24 KiB descriptor walk state, allocated at the first pop and kept
     * until virtio_cleanup (one pop at a time per queue: the VM lock). */
    struct ChainWalk *walk;
};

/*
 * Maps the rings after the driver enabled the queue.  false (device marked broken) when
 * the size is not a power of two up to num_max or a ring is misaligned or outside RAM.
 */
bool virtqueue_enable(VirtQueue *vq);
/* Forgets rings and indices (device reset or queue reset). */
void virtqueue_reset(VirtQueue *vq);
/* Frees what the queue allocated for itself (virtio_cleanup calls it). */
void virtqueue_cleanup(VirtQueue *vq);
/* true when no request is waiting (also for a disabled queue or broken device). */
bool virtqueue_empty(VirtQueue *vq);
/*
 * Takes the next request, or NULL when there is none or the chain is malformed (then the
 * device is broken and every later pop returns NULL until reset).
 */
VirtQueueElement *virtqueue_pop(VirtQueue *vq);
/*
 * virtqueue_pop into s (s->e is the element; never pass it to virtqueue_element_free):
 * false when there is no request, the chain is malformed (device broken), or it has more
 * than VIRTQUEUE_SMALL_SEGS pieces (then it stays in the ring for virtqueue_pop).
 */
bool virtqueue_pop_small(VirtQueue *vq, VirtQueueSmallElement *s);
/*
 * virtqueue_pop that needs no allocation for the usual short chain: the element is &s->e
 * when the chain has up to VIRTQUEUE_SMALL_SEGS pieces, else allocated as by
 * virtqueue_pop; NULL as virtqueue_pop.  Release it with virtqueue_element_release.
 */
VirtQueueElement *virtqueue_pop_into(VirtQueue *vq, VirtQueueSmallElement *s);
/* Frees elem unless it is &s->e (an element of virtqueue_pop_into). */
void virtqueue_element_release(VirtQueueElement *elem, VirtQueueSmallElement *s);
/*
 * The element of a request the device took before a migration and sends in its state
 * (virtio-blk's held requests): the chain at head walked again from the descriptor table
 * the guest cannot have changed meanwhile, counted in use.  NULL when the queue is not
 * usable, head is beyond it or the chain is malformed (the device is then broken).
 */
VirtQueueElement *virtqueue_map_head(VirtQueue *vq, unsigned head);
/* Puts a popped element back so the next pop returns it again (device out of resources). */
void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem);
/* The same for the last virtqueue_pop_small's element (nothing to free). */
void virtqueue_unpop_small(VirtQueue *vq);
/* Hands elem back with len bytes written into in_sg (marks those bytes dirty), and makes
 * it visible in the used ring.  Does not notify: call virtio_queue_notify_driver. */
void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len);
/* The two halves of virtqueue_push, for a reply spanning several elements (a mergeable
 * virtio-net rx frame): fill places elem at used slot used_idx + offset unpublished;
 * flush publishes count filled slots at once. */
void virtqueue_fill(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len,
                    unsigned offset);
void virtqueue_flush(VirtQueue *vq, unsigned count);
void virtqueue_element_free(VirtQueueElement *elem);
/* Ask the driver (not) to notify us of new buffers: used flags or avail_event. */
void virtqueue_set_notification(VirtQueue *vq, bool enable);
/* Whether the driver wants an interrupt for what was pushed since the last call. */
bool virtqueue_should_notify(VirtQueue *vq);

/* Points dst (room for n entries) at the bytes [skip, skip + len) of src[0..n); returns
 * the entries used.  No data is copied. */
unsigned virtio_iov_slice(struct iovec *dst, const struct iovec *src, unsigned n,
                          size_t skip, size_t len);

/* ---- devices ---- */

typedef struct VirtIODeviceOps {
    /* Device-specific reset (queues and status are reset by the core). May be NULL. */
    void (*reset)(VirtIODevice *vdev);
    /* Driver wrote config space bytes [offset, +size) (already stored). May be NULL. */
    void (*config_write)(VirtIODevice *vdev, uint32_t offset, unsigned size);
    /* Status changed (after the core updated it), e.g. to start on DRIVER_OK. May be NULL. */
    void (*set_status)(VirtIODevice *vdev, uint8_t status);
    /* Features accepted (FEATURES_OK set); may refuse them. May be NULL. */
    bool (*features_ok)(VirtIODevice *vdev, uint64_t features);
    /* Runs right after the transport dropped the VM lock following a queue handler it ran
     * with kick_unlocked_follows set (the ioeventfd path): the device makes slow host
     * calls its handler prepared (io_submit) without holding up vCPUs.  Must not touch
     * state the VM lock guards.  May be NULL. */
    void (*kick_unlocked)(VirtIODevice *vdev);
} VirtIODeviceOps;

/* How the core asks the transport for an interrupt: vector is the queue's or the config
 * vector; ISR bits are already set. */
typedef void VirtIONotify(void *opaque, uint16_t vector);

struct VirtIODevice {
    const char *name;           /* "virtio-blk", for log lines */
    uint16_t device_id;         /* VIRTIO_ID_* */
    const VirtIODeviceOps *ops;
    GuestMemory *mem;

    uint64_t host_features;     /* offered (VERSION_1 is always added) */
    uint64_t guest_features;    /* accepted by the driver */
    uint8_t status;
    uint8_t isr;
    bool broken;                /* NEEDS_RESET: no queue processing until reset */
    /* Set by the transport (VM lock) while a queue handler runs that ops->kick_unlocked
     * will follow; otherwise the handler finishes its work itself. */
    bool kick_unlocked_follows;
    uint16_t config_vector;
    uint8_t config_generation;
    uint8_t *config;            /* device config space, config_len bytes, device-owned */
    uint32_t config_len;

    unsigned num_queues;
    VirtQueue *vqs;

    VirtIONotify *notify;       /* set by the transport */
    void *notify_opaque;
    RateLimit rl;               /* for guest errors of this device */
};

/* Sets up the core: name, id, ops, features, config size and number of queues. */
void virtio_init(VirtIODevice *vdev, const char *name, uint16_t device_id,
                 const VirtIODeviceOps *ops, GuestMemory *mem, uint64_t host_features,
                 uint32_t config_len, unsigned num_queues);
void virtio_cleanup(VirtIODevice *vdev);
/* Queue n offers up to num_max entries and runs handler on driver notifications. */
VirtQueue *virtio_add_queue(VirtIODevice *vdev, unsigned n, uint16_t num_max,
                            VirtQueueHandler *handler);
static inline bool virtio_has_feature(const VirtIODevice *vdev, unsigned bit)
{
    return (vdev->guest_features >> bit) & 1;
}

/* Full device reset (status 0 written or system reset). */
void virtio_reset(VirtIODevice *vdev);
/* The driver writes the status register (0 resets). */
void virtio_set_status(VirtIODevice *vdev, uint8_t status);
/* The driver writes its feature bits (ignored once FEATURES_OK is set); unknown bits are
 * dropped. */
void virtio_set_features(VirtIODevice *vdev, uint64_t features);
/* The driver kicks queue n (out-of-range n is logged and ignored). */
void virtio_queue_kick(VirtIODevice *vdev, unsigned n);
/* Interrupt the driver for vq if it wants one (sets ISR bit 0). */
void virtio_queue_notify_driver(VirtIODevice *vdev, VirtQueue *vq);
/* The device changed its config space: bump the generation and raise a config interrupt. */
void virtio_config_changed(VirtIODevice *vdev);
/* Reads and clears the ISR (the read side effect of the ISR capability). */
uint8_t virtio_isr_read_clear(VirtIODevice *vdev);
/* Config space accessors for the transport (out-of-range reads return 0). */
uint64_t virtio_config_read(VirtIODevice *vdev, uint32_t offset, unsigned size);
void virtio_config_write(VirtIODevice *vdev, uint32_t offset, unsigned size, uint64_t val);

/* ---- migration ---- */

typedef struct VMStateDesc VMStateDesc;
/* A queue's driver-visible state: size, vector, ring addresses, enable, indices, event
 * index bookkeeping.  Saving fails while requests are in flight (drain first); loading
 * checks the size and maps the rings again without touching the indices. */
extern const VMStateDesc virtqueue_vmsd;
/* The device core: negotiated features, status, ISR, config vector and generation,
 * device config space, every queue.  Loading refuses features the device does not
 * offer. */
extern const VMStateDesc virtio_device_vmsd;

/* A guest error: log one rate-limited line, mark the device NEEDS_RESET, tell the
 * driver with a config interrupt. */
void virtio_error(VirtIODevice *vdev, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#endif
