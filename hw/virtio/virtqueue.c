/*
 * Split virtqueues (virtio 1.x, 2.7): the only place that walks descriptor chains.
 *
 * The driver owns the descriptor table and the avail ring and may change them at any time,
 * also while we read them: every descriptor is copied once into a local and only the copy
 * is checked and used (no double fetch).  Any violation marks the device broken through
 * virtio_error(); nothing the guest writes can make us touch memory outside guest RAM,
 * loop, or allocate without bound.
 */
#include <string.h>
#include "sen/virtio.h"
#include "sen/vmstate.h"

/* Ring layout (2.7.6 / 2.7.8): avail = u16 flags, idx, ring[num], used_event;
 * used = u16 flags, idx, then {u32 id, u32 len}[num], then u16 avail_event. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 1
#define AVAIL_RING 2
#define USED_RING_OFF 4

static inline uint64_t desc_size(uint16_t num) { return 16ull * num; }
static inline uint64_t avail_size(uint16_t num) { return 6ull + 2ull * num; }
static inline uint64_t used_size(uint16_t num) { return 6ull + 8ull * num; }

static inline uint16_t *used_flags(VirtQueue *vq) { return (uint16_t *)vq->used; }
static inline uint16_t *used_idx_ptr(VirtQueue *vq) { return (uint16_t *)(vq->used + 2); }
static inline uint32_t *used_elem(VirtQueue *vq, uint16_t i)
{
    return (uint32_t *)(vq->used + USED_RING_OFF + 8u * i);
}
static inline uint16_t *avail_event_ptr(VirtQueue *vq)
{
    return (uint16_t *)(vq->used + USED_RING_OFF + 8u * vq->num);
}

static void mark_used_dirty(VirtQueue *vq, uint64_t off, uint64_t len)
{
    guest_mem_mark_dirty(vq->vdev->mem, vq->used_gpa + off, len);
}

/* Acquire: the ring entries the idx covers must be read after the idx itself. */
static inline uint16_t read_avail_idx(VirtQueue *vq)
{
    return __atomic_load_n(&vq->avail[AVAIL_IDX], __ATOMIC_ACQUIRE);
}

/*
 * One copy of a descriptor the guest may be rewriting.  The compiler barrier keeps the
 * compiler from re-reading guest memory instead of the copy after it was checked.  memcpy
 * because an indirect table need not be aligned.
 */
static inline void read_desc(const VirtqDesc *table, unsigned i, VirtqDesc *out)
{
    memcpy(out, &table[i], sizeof(*out));
    __asm__ __volatile__("" ::: "memory");
}

/*
 * Why a ring could not be mapped.  Each ring is used through one pointer, so it must lie
 * inside one guest RAM region; a ring across two adjacent regions (which Linux never
 * allocates: its ring pages are naturally aligned blocks of one node) is refused with
 * its own message rather than called "outside guest RAM".
 */
static const char *rings_where(VirtQueue *vq)
{
    GuestMemory *mem = vq->vdev->mem;
    uint16_t num = vq->num;
    if (guest_mem_is_ram(mem, vq->desc_gpa, desc_size(num)) &&
        guest_mem_is_ram(mem, vq->avail_gpa, avail_size(num)) &&
        guest_mem_is_ram(mem, vq->used_gpa, used_size(num))) {
        return "crosses from one guest RAM region into the next, or the used ring is in ROM";
    }
    return "outside guest RAM";
}

bool virtqueue_enable(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;
    uint16_t num = vq->num;

    if (vdev->broken) {
        return false;
    }
    if (num == 0 || num > vq->num_max || (num & (num - 1))) {
        virtio_error(vdev, "queue %u: size %u is not a power of two up to %u", vq->index, num,
                     vq->num_max);
        return false;
    }
    /* Alignments of 2.7 make the ring fields naturally aligned for our atomic accesses. */
    if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
        virtio_error(vdev, "queue %u: misaligned ring (desc 0x%" G_GINT64_MODIFIER "x avail 0x%"
                     G_GINT64_MODIFIER "x used 0x%" G_GINT64_MODIFIER "x)", vq->index,
                     vq->desc_gpa, vq->avail_gpa, vq->used_gpa);
        return false;
    }
    vq->desc = guest_mem_map(vdev->mem, vq->desc_gpa, desc_size(num));
    vq->avail = guest_mem_map(vdev->mem, vq->avail_gpa, avail_size(num));
    vq->used = guest_mem_map_writable(vdev->mem, vq->used_gpa, used_size(num));
    if (!vq->desc || !vq->avail || !vq->used) {
        virtio_error(vdev, "queue %u: ring %s (desc 0x%" G_GINT64_MODIFIER "x avail 0x%"
                     G_GINT64_MODIFIER "x used 0x%" G_GINT64_MODIFIER "x, size %u)", vq->index,
                     rings_where(vq), vq->desc_gpa, vq->avail_gpa, vq->used_gpa, num);
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
        return false;
    }
    vq->last_avail_idx = 0;
    vq->avail_known = 0;
    vq->used_idx = 0;
    vq->inuse = 0;
    vq->signalled_used_valid = false;
    vq->enabled = true;
    virtqueue_set_notification(vq, true);
    return true;
}

void virtqueue_reset(VirtQueue *vq)
{
    vq->enabled = false;
    vq->num = vq->num_max;
    vq->vector = VIRTIO_NO_VECTOR;
    vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    vq->last_avail_idx = 0;
    vq->avail_known = 0;
    vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->notification = true;
    vq->inuse = 0;
}

static bool vq_usable(VirtQueue *vq)
{
    return vq->enabled && !vq->vdev->broken;
}

/*
 * Entries the driver has made available beyond last_avail_idx: the count known from the
 * last read of avail->idx while it lasts, else a fresh read.  A count above the queue size
 * is a broken driver: it is returned (not empty, so the caller pops and pop reports it)
 * but not kept.
 *
 * With EVENT_IDX and notifications on, every pop moved avail_event; a fresh read that
 * shows nothing is our "kick me" decision.  The avail_event store must be visible before
 * that read, or a driver that posts a buffer and reads the old avail_event in between
 * skips its kick while we see the old index (store-load reordering, allowed on x86):
 * the buffer waits forever.  So look again after a full barrier, pairing with the
 * driver's between writing avail->idx and reading avail_event.
 */
static uint16_t avail_pending(VirtQueue *vq)
{
    if (!vq->avail_known) {
        uint16_t n = (uint16_t)(read_avail_idx(vq) - vq->last_avail_idx);
        if (!n && vq->notification &&
            virtio_has_feature(vq->vdev, VIRTIO_F_RING_EVENT_IDX)) {
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            n = (uint16_t)(read_avail_idx(vq) - vq->last_avail_idx);
        }
        if (n > vq->num) {
            return n;
        }
        vq->avail_known = n;
    }
    return vq->avail_known;
}

bool virtqueue_empty(VirtQueue *vq)
{
    if (!vq_usable(vq)) {
        return true;
    }
    return avail_pending(vq) == 0;
}

typedef struct ChainWalk ChainWalk;
struct ChainWalk {
    struct iovec iov[VIRTQUEUE_MAX_SEGS]; /* outs first, then ins (the order is enforced) */
    uint64_t gpa[VIRTQUEUE_MAX_SEGS];
    VirtqDesc indirect[VIRTQUEUE_MAX_SEGS]; /* an indirect table no one pointer covers */
    unsigned out_num, in_num;
    size_t out_len, in_len;
};

/*
 * Adds one descriptor's buffer to w: one iovec per guest RAM region it covers (a buffer
 * may run from one region into the next adjacent one, e.g. across two NUMA nodes'
 * memdevs), all counted against VIRTQUEUE_MAX_SEGS.
 */
static bool walk_add(VirtQueue *vq, ChainWalk *w, const VirtqDesc *d)
{
    VirtIODevice *vdev = vq->vdev;
    bool writable = d->flags & VIRTQ_DESC_F_WRITE;
    uint64_t gpa = d->addr, left = d->len;

    if (d->len == 0) {
        return true; /* legal and carries nothing */
    }
    if (!writable && w->in_num) {
        virtio_error(vdev, "queue %u: device-readable descriptor after a writable one",
                     vq->index);
        return false;
    }
    while (left) {
        unsigned n = w->out_num + w->in_num;
        uint64_t piece;
        void *p;
        if (n >= VIRTQUEUE_MAX_SEGS) {
            virtio_error(vdev, "queue %u: more than %u buffers in one request (counting one "
                         "per guest RAM region a buffer covers)", vq->index,
                         VIRTQUEUE_MAX_SEGS);
            return false;
        }
        /* A writable buffer in ROM would let the guest rewrite its firmware through us. */
        p = guest_mem_map_piece(vdev->mem, gpa, left, writable, &piece);
        if (!p) { /* a piece lies inside one region, so it cannot wrap */
            virtio_error(vdev, "queue %u: %s buffer 0x%" G_GINT64_MODIFIER "x+0x%x outside "
                         "guest RAM", vq->index, writable ? "writable" : "readable", d->addr,
                         d->len);
            return false;
        }
        w->iov[n].iov_base = p;
        w->iov[n].iov_len = piece;
        w->gpa[n] = gpa;
        if (writable) {
            w->in_num++;
        } else {
            w->out_num++;
        }
        gpa += piece;
        left -= piece;
    }
    if (writable) {
        w->in_len += d->len;
    } else {
        w->out_len += d->len;
    }
    return true;
}

/* Walks the chain at head into w; false (device broken) on any violation. */
static bool walk_chain(VirtQueue *vq, uint16_t head, ChainWalk *w)
{
    VirtIODevice *vdev = vq->vdev;
    const VirtqDesc *table = vq->desc;
    unsigned table_size = vq->num;
    unsigned idx = head, count = 0;
    VirtqDesc d;

    read_desc(table, idx, &d);
    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
        if (!virtio_has_feature(vdev, VIRTIO_F_INDIRECT_DESC)) {
            virtio_error(vdev, "queue %u: indirect descriptor without INDIRECT_DESC",
                         vq->index);
            return false;
        }
        if (d.flags & VIRTQ_DESC_F_NEXT) {
            virtio_error(vdev, "queue %u: indirect descriptor %u also has NEXT", vq->index,
                         idx);
            return false;
        }
        if (d.len == 0 || d.len % sizeof(VirtqDesc) ||
            d.len / sizeof(VirtqDesc) > VIRTQUEUE_MAX_SEGS) {
            virtio_error(vdev, "queue %u: indirect table length %u is not a multiple of 16 "
                         "up to %u entries", vq->index, d.len, VIRTQUEUE_MAX_SEGS);
            return false;
        }
        table = guest_mem_map(vdev->mem, d.addr, d.len);
        if (!table && guest_mem_read(vdev->mem, d.addr, w->indirect, d.len)) {
            table = w->indirect; /* it spans adjacent RAM regions: walk a copy */
        }
        if (!table) {
            virtio_error(vdev, "queue %u: indirect table 0x%" G_GINT64_MODIFIER
                         "x+0x%x outside guest RAM", vq->index, d.addr, d.len);
            return false;
        }
        table_size = d.len / sizeof(VirtqDesc);
        idx = 0;
        read_desc(table, idx, &d);
    }
    for (;;) {
        /* Every index is below table_size, so a chain longer than the table has a loop. */
        if (++count > table_size) {
            virtio_error(vdev, "queue %u: descriptor chain at head %u loops or is longer "
                         "than %u", vq->index, head, table_size);
            return false;
        }
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            virtio_error(vdev, "queue %u: indirect flag inside a chain (head %u)", vq->index,
                         head);
            return false;
        }
        if (!walk_add(vq, w, &d)) {
            return false;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
            return true;
        }
        idx = d.next;
        if (idx >= table_size) {
            virtio_error(vdev, "queue %u: next index %u beyond table of %u (head %u)",
                         vq->index, idx, table_size, head);
            return false;
        }
        read_desc(table, idx, &d);
    }
}

/* Lays the walked chain out as e, its pieces in iov and the in pieces' addresses in gpa. */
static void element_fill(VirtQueueElement *e, const ChainWalk *w, uint16_t head,
                         struct iovec *iov, uint64_t *gpa)
{
    *e = (VirtQueueElement){
        .head = head, .out_num = w->out_num, .in_num = w->in_num,
        .out_sg = iov, .in_sg = iov + w->out_num, .in_gpa = gpa,
        .out_len = w->out_len, .in_len = w->in_len,
    };
    memcpy(iov, w->iov, (w->out_num + w->in_num) * sizeof(struct iovec));
    memcpy(gpa, w->gpa + w->out_num, w->in_num * sizeof(uint64_t));
}

static VirtQueueElement *element_new(const ChainWalk *w, uint16_t head)
{
    unsigned n = w->out_num + w->in_num;
    VirtQueueElement *e = g_malloc(sizeof(*e) + n * sizeof(struct iovec) +
                                   w->in_num * sizeof(uint64_t));
    struct iovec *iov = (struct iovec *)(e + 1);

    element_fill(e, w, head, iov, (uint64_t *)(iov + n));
    return e;
}

/*
 * Walks the next request into vq->walk without taking it; returns its head, or -1 when
 * there is none or the chain is malformed (the device is then broken).
 */
static int peek_chain(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;
    uint16_t pending, head;
    ChainWalk *w;

    if (!vq_usable(vq)) {
        return -1;
    }
    pending = avail_pending(vq);
    if (!pending) {
        return -1;
    }
    if (pending > vq->num) {
        virtio_error(vdev, "queue %u: avail index moved from %u to %u, more than size %u",
                     vq->index, vq->last_avail_idx,
                     (uint16_t)(vq->last_avail_idx + pending), vq->num);
        return -1;
    }
    head = __atomic_load_n(&vq->avail[AVAIL_RING + vq->last_avail_idx % vq->num],
                           __ATOMIC_RELAXED);
    if (head >= vq->num) {
        virtio_error(vdev, "queue %u: head index %u beyond size %u", vq->index, head,
                     vq->num);
        return -1;
    }
    /* The walk state is ~40 KiB: too big for the stack of every thread that may pop, and
     * worth keeping rather than allocating for every request. */
    if (!vq->walk) {
        vq->walk = g_malloc(sizeof(*vq->walk));
    }
    w = vq->walk;
    w->out_num = w->in_num = 0;
    w->out_len = w->in_len = 0;
    return walk_chain(vq, head, w) ? head : -1;
}

/* Takes the request peek_chain walked. */
static void take_chain(VirtQueue *vq)
{
    vq->last_avail_idx++;
    vq->avail_known--;
    vq->inuse++;
    if (virtio_has_feature(vq->vdev, VIRTIO_F_RING_EVENT_IDX) && vq->notification) {
        __atomic_store_n(avail_event_ptr(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
        mark_used_dirty(vq, USED_RING_OFF + 8u * vq->num, 2);
    }
}

/*
 * The three pops in one: the next request laid out in s when it has up to
 * VIRTQUEUE_SMALL_SEGS pieces (and s is given), else allocated, or with long_stays left
 * in the ring (NULL).
 */
static VirtQueueElement *pop_chain(VirtQueue *vq, VirtQueueSmallElement *s, bool long_stays)
{
    int head = peek_chain(vq);
    const ChainWalk *w = vq->walk;

    if (head < 0) {
        return NULL;
    }
    bool small = s && w->out_num + w->in_num <= VIRTQUEUE_SMALL_SEGS;
    if (!small && long_stays) {
        return NULL; /* stays in the ring for virtqueue_pop */
    }
    take_chain(vq);
    if (!small) {
        return element_new(w, (uint16_t)head);
    }
    element_fill(&s->e, w, (uint16_t)head, s->sg, s->gpa);
    return &s->e;
}

VirtQueueElement *virtqueue_map_head(VirtQueue *vq, unsigned head)
{
    if (!vq_usable(vq) || head >= vq->num) {
        return NULL;
    }
    if (!vq->walk) {
        vq->walk = g_malloc(sizeof(*vq->walk));
    }
    ChainWalk *w = vq->walk;
    w->out_num = w->in_num = 0;
    w->out_len = w->in_len = 0;
    if (!walk_chain(vq, (uint16_t)head, w)) {
        return NULL;
    }
    vq->inuse++;
    return element_new(w, (uint16_t)head);
}

VirtQueueElement *virtqueue_pop(VirtQueue *vq)
{
    return pop_chain(vq, NULL, false);
}

bool virtqueue_pop_small(VirtQueue *vq, VirtQueueSmallElement *s)
{
    return pop_chain(vq, s, true) != NULL;
}

VirtQueueElement *virtqueue_pop_into(VirtQueue *vq, VirtQueueSmallElement *s)
{
    return pop_chain(vq, s, false);
}

void virtqueue_element_release(VirtQueueElement *elem, VirtQueueSmallElement *s)
{
    if (elem != &s->e) {
        virtqueue_element_free(elem);
    }
}

void virtqueue_cleanup(VirtQueue *vq)
{
    g_free(vq->walk);
    vq->walk = NULL;
}

void virtqueue_unpop_small(VirtQueue *vq)
{
    vq->last_avail_idx--;
    vq->avail_known++;
    vq->inuse--;
}

void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem)
{
    virtqueue_unpop_small(vq);
    virtqueue_element_free(elem);
}

void virtqueue_element_free(VirtQueueElement *elem)
{
    g_free(elem);
}

void virtqueue_fill(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len,
                    unsigned offset)
{
    uint16_t slot;
    size_t left;
    uint32_t *ue;

    if (!vq_usable(vq)) {
        return; /* reset or broken meanwhile: the driver no longer expects this buffer */
    }
    if (len > elem->in_len) {
        len = elem->in_len;
    }
    left = len;
    for (unsigned i = 0; i < elem->in_num && left; i++) {
        size_t n = MIN(left, elem->in_sg[i].iov_len);
        guest_mem_mark_dirty(vq->vdev->mem, elem->in_gpa[i], n);
        left -= n;
    }
    slot = (uint16_t)(vq->used_idx + offset) % vq->num;
    ue = used_elem(vq, slot);
    __atomic_store_n(&ue[0], (uint32_t)elem->head, __ATOMIC_RELAXED);
    __atomic_store_n(&ue[1], len, __ATOMIC_RELAXED);
    mark_used_dirty(vq, USED_RING_OFF + 8u * slot, 8);
}

void virtqueue_flush(VirtQueue *vq, unsigned count)
{
    if (!vq_usable(vq)) {
        return;
    }
    vq->used_idx += count;
    /* Release: the driver must see the elements (and the data written into the buffers)
     * before it sees the index that covers them. */
    __atomic_store_n(used_idx_ptr(vq), vq->used_idx, __ATOMIC_RELEASE);
    mark_used_dirty(vq, 2, 2);
    vq->inuse = vq->inuse > count ? vq->inuse - count : 0;
}

void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len)
{
    virtqueue_fill(vq, elem, len, 0);
    virtqueue_flush(vq, 1);
}

void virtqueue_set_notification(VirtQueue *vq, bool enable)
{
    VirtIODevice *vdev = vq->vdev;

    vq->notification = enable;
    if (!vq->enabled) {
        return;
    }
    if (virtio_has_feature(vdev, VIRTIO_F_RING_EVENT_IDX)) {
        /* Disabling leaves avail_event behind, so the driver stops crossing it. */
        if (enable) {
            __atomic_store_n(avail_event_ptr(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
            mark_used_dirty(vq, USED_RING_OFF + 8u * vq->num, 2);
        }
    } else {
        uint16_t f = __atomic_load_n(used_flags(vq), __ATOMIC_RELAXED);
        f = enable ? (f & ~VIRTQ_USED_F_NO_NOTIFY) : (f | VIRTQ_USED_F_NO_NOTIFY);
        __atomic_store_n(used_flags(vq), f, __ATOMIC_RELAXED);
        mark_used_dirty(vq, 0, 2);
    }
    if (enable) {
        /* The caller re-checks the avail idx after enabling; the store above must be
         * visible before that load or a driver that just looked at the old value would
         * skip its kick and we would miss the buffer. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

bool virtqueue_should_notify(VirtQueue *vq)
{
    uint16_t old, new, event;
    bool valid;

    if (!vq->enabled) {
        return false;
    }
    /* Our used idx store must be visible before we read the driver's suppression state,
     * pairing with the driver's barrier between writing it and reading used idx. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!virtio_has_feature(vq->vdev, VIRTIO_F_RING_EVENT_IDX)) {
        return !(__atomic_load_n(&vq->avail[AVAIL_FLAGS], __ATOMIC_RELAXED) &
                 VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    old = vq->signalled_used;
    valid = vq->signalled_used_valid;
    new = vq->used_idx;
    vq->signalled_used = new;
    vq->signalled_used_valid = true;
    if (!valid) {
        return true;
    }
    event = __atomic_load_n(&vq->avail[AVAIL_RING + vq->num], __ATOMIC_RELAXED);
    /* 2.7.7.2: interrupt iff used_event lies in [old, new). */
    return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

unsigned virtio_iov_slice(struct iovec *dst, const struct iovec *src, unsigned n,
                          size_t skip, size_t len)
{
    unsigned k = 0;

    for (unsigned i = 0; i < n && len; i++) {
        if (skip >= src[i].iov_len) {
            skip -= src[i].iov_len;
            continue;
        }
        size_t c = MIN(src[i].iov_len - skip, len);
        dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[k].iov_len = c;
        k++;
        len -= c;
        skip = 0;
    }
    return k;
}

/* ---- migration ---- */

static bool virtqueue_pre_save(void *opaque, Error **errp)
{
    VirtQueue *vq = opaque;
    if (vq->inuse) {
        error_setg(errp, "%s queue %u: %u requests in flight (the device was not drained)",
                   vq->vdev->name, vq->index, vq->inuse);
        return false;
    }
    return true;
}

static bool virtqueue_post_load(void *opaque, int version_id, Error **errp)
{
    VirtQueue *vq = opaque;
    VirtIODevice *vdev = vq->vdev;
    uint16_t num = vq->num;

    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    vq->inuse = 0;
    vq->avail_known = 0; /* last_avail_idx came from the stream: read the index afresh */
    if (!vq->enabled) {
        return true;
    }
    if (!vq->num_max || num == 0 || num > vq->num_max || (num & (num - 1))) {
        error_setg(errp, "queue %u: size %u is not a power of two up to %u", vq->index, num,
                   vq->num_max);
        return false;
    }
    if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
        error_setg(errp, "queue %u: misaligned ring", vq->index);
        return false;
    }
    vq->desc = guest_mem_map(vdev->mem, vq->desc_gpa, desc_size(num));
    vq->avail = guest_mem_map(vdev->mem, vq->avail_gpa, avail_size(num));
    vq->used = guest_mem_map_writable(vdev->mem, vq->used_gpa, used_size(num));
    if (!vq->desc || !vq->avail || !vq->used) {
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
        error_setg(errp, "queue %u: ring outside guest RAM", vq->index);
        return false;
    }
    return true;
}

static const VMStateField virtqueue_fields[] = {
    VMSTATE_UINT16(num, VirtQueue),
    VMSTATE_UINT16(vector, VirtQueue),
    VMSTATE_UINT64(desc_gpa, VirtQueue),
    VMSTATE_UINT64(avail_gpa, VirtQueue),
    VMSTATE_UINT64(used_gpa, VirtQueue),
    VMSTATE_BOOL(enabled, VirtQueue),
    VMSTATE_UINT16(last_avail_idx, VirtQueue),
    VMSTATE_UINT16(used_idx, VirtQueue),
    VMSTATE_UINT16(signalled_used, VirtQueue),
    VMSTATE_BOOL(signalled_used_valid, VirtQueue),
    VMSTATE_BOOL(notification, VirtQueue),
    VMSTATE_END_OF_LIST(),
};

const VMStateDesc virtqueue_vmsd = {
    .name = "virtqueue",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtqueue_fields,
    .pre_save = virtqueue_pre_save,
    .post_load = virtqueue_post_load,
};
