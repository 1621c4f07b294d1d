/*
 * virtio-blk-pci (virtio 1.x, 5.2): read, write, flush, discard, write-zeroes and get-id
 * on a BlockBackend, with one or more request queues.
 *
 * Requests are asynchronous: a queue handler (vCPU exit or ioeventfd on the main loop)
 * only validates and submits; the block layer completes them on the main loop, where the
 * status byte is written and the buffer handed back.  A vCPU never waits for the disk.
 * With iothread=ID the ioeventfds and the completions are handled on that I/O thread
 * instead (still under the VM lock for device state), so they never wait for the main
 * loop.
 *
 * Reads and writes popped in one notification that continue each other on the disk are
 * merged into one block request (as QEMU's virtio-blk does): a driver streaming large
 * requests then costs one submission, one completion, one VM-lock round and at most one
 * interrupt per run instead of per request.  Flush, discard and write-zeroes first submit
 * what is queued, so they are never reordered before an earlier write.
 *
 * At most x-max-bytes-in-flight bytes of reads and writes are in the block layer at a
 * time; later calls wait in the device's list, in order, and each completion starts what
 * then fits.  A driver that keeps more than that in flight finds the disk still busy with
 * the rest of its requests while it handles the completions and refills the queue,
 * instead of all of them finishing at once and the disk idling until the driver catches
 * up.  The default bound is far above what a disk needs to stream at full speed.
 *
 * A request outlives neither the device's state nor a reset in a way the guest could
 * notice: it carries the device generation at submission, and a completion for an older
 * generation (device reset meanwhile) or for an unrealized device only frees memory.
 *
 * A request the block layer fails gets the drive's werror= (writes, flushes, discards,
 * write-zeroes) or rerror= (reads) action, per guest request also inside a merge, as
 * QEMU's virtio-blk: report (I/O error status), ignore (OK status) or stop.  A stopped
 * request is held, not completed: the VM stops (io-error) and the next start retries the
 * held requests in the order they failed, each on its own, before the queues' held kicks
 * are replayed.  A reset drops them (the driver forgets them too); a migration or
 * snapshot carries them (subsection virtio-blk-pci/held) and the destination retries them.
 */
#include <errno.h>
#include <string.h>
#include "hw/virtio/virtio-pci.h"
#include "sen/block.h"
#include "sen/device.h"
#include "sen/iov.h"
#include "sen/vmstate.h"
#include "monitor/qapi-generated.h"

#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_WZ_UNMAP 1

/* Config space offsets (struct virtio_blk_config). */
enum {
    CFG_CAPACITY = 0x00, CFG_SEG_MAX = 0x0c, CFG_BLK_SIZE = 0x14, CFG_NUM_QUEUES = 0x22,
    CFG_MAX_DISCARD_SECTORS = 0x24, CFG_MAX_DISCARD_SEG = 0x28, CFG_DISCARD_ALIGN = 0x2c,
    CFG_MAX_WZ_SECTORS = 0x30, CFG_MAX_WZ_SEG = 0x34, CFG_WZ_MAY_UNMAP = 0x38,
    CFG_SIZE = 0x3c,
};

#define BLK_QUEUE_SIZE     256
#define BLK_MAX_QUEUES     64
#define BLK_MAX_DZ_SECTORS 0x400000u /* per discard / write-zeroes request (2 GiB) */
/* A merged request stays within what one preadv/io_submit takes (UIO_MAXIOV buffers)
 * and within a size the host splits anyway, so a merge never costs a bounce or a retry. */
#define BLK_MERGE_MAX_IOV   1024
/* Half the default bytes in flight, so one merged request is on the disk while the
 * driver refills behind the other. */
#define BLK_MERGE_MAX_BYTES (16u << 20)

typedef struct VirtIOBlk VirtIOBlk;
typedef struct BlkReq BlkReq;

/* One block-layer call prepared under the VM lock and made by blk_submit_pending, maybe
 * after the lock was dropped. */
typedef enum BlkIoOp { BLK_IO_READ, BLK_IO_WRITE, BLK_IO_FLUSH, BLK_IO_DISCARD,
                       BLK_IO_WRITE_ZEROES } BlkIoOp;

typedef struct BlkIo {
    struct BlkIo *next;  /* in VirtIOBlk's pending list */
    BlkIoOp op;
    int flags;
    uint64_t offset;
    uint64_t bytes;      /* discard / write-zeroes */
    uint64_t data_bytes; /* what iov holds: counted against x-max-bytes-in-flight */
    const struct iovec *iov;
    int niov;
    BlockCompletionFunc *cb;
    void *opaque;        /* the BlkReq or BlkMerge that contains this */
} BlkIo;

/* Reads and writes popped but not yet submitted (one notification's worth). */
typedef struct BlkBatch {
    BlkReq *reqs[BLK_QUEUE_SIZE];
    unsigned n;
    int niov;
    uint64_t bytes;
} BlkBatch;

/* Finished requests and merges are kept for reuse (up to these many), so a driver that
 * streams requests costs no allocation per request once the pools have grown. */
#define BLK_POOL_MAX_REQS   (2 * BLK_QUEUE_SIZE)
#define BLK_POOL_MAX_MERGES 32
/* Data buffers a request carries without an allocation (a driver's request is usually
 * one or a few guest-contiguous buffers). */
#define BLK_REQ_INLINE_IOV  8

/* What in-flight requests point at; lives until the last of them completed.  Also owns
 * the pools, so requests still in flight after unrealize are recycled into live memory. */
typedef struct BlkShared {
    int refcnt;          /* VM lock */
    Machine *m;
    VirtIOBlk *dev;      /* NULL once unrealized */
    BlkReq *free_reqs;   /* VM lock; linked through BlkReq.next_free */
    unsigned nr_free_reqs;
    struct BlkMerge *free_merges; /* VM lock; linked through BlkMerge.next_free */
    unsigned nr_free_merges;
} BlkShared;

struct VirtIOBlk {
    VirtIOPCIProxy proxy; /* first: the instance is a PCI device */
    VirtIODevice vdev;
    /* properties */
    char *drive;
    char *serial;
    char *iothread;
    bool share_rw;       /* QEMU's share-rw: other processes may write the image too */
    char *werror, *rerror; /* BlockdevOnError names; auto: the drive's -drive setting */
    uint16_t num_queues;
    uint64_t max_inflight_bytes; /* 0: no bound */

    BlockBackend *blk;
    bool read_only;
    uint64_t capacity;   /* sectors of 512 bytes */
    unsigned generation; /* bumped by reset: completions of older requests are dropped */
    BlkShared *shared;
    BlkBatch batch;      /* scratch of blk_handle_queue (VM lock), too big for a stack */
    /* Block calls in notification order, not made yet: appended under the VM lock, taken
     * (all at once) by blk_submit_pending with or without it. */
    GMutex pending_lock;
    BlkIo *pending_head, **pending_tail;
    /* Threads between taking the list and their last block call (pending_lock): a reset
     * waits for them, so no call of an older generation starts once it returned. */
    unsigned submitting;
    GCond submitted_cond;
    /* Data bytes of the calls taken from the list and not completed yet (pending_lock). */
    uint64_t inflight_bytes;
    /* Requests that failed with action stop, in failure order (VM lock): they keep their
     * element and reference until the next start retries them or a reset drops them. */
    BlkReq *held_head, **held_tail;
    void *start_hook;    /* machine_add_start_hook: blk_retry_held */
    /* Migration of the held requests: (queue << 16) | head of each, in order, between
     * pre_save and post_save / pre_load and post_load of the "held" subsection. */
    uint32_t *held_ids;
    uint32_t nr_held_ids;
};

struct BlkReq {
    BlkShared *sh;
    unsigned generation;
    unsigned queue;
    VirtQueueElement *elem;
    struct iovec *iov;   /* data buffers (header and status byte cut off) */
    int niov;
    uint32_t used_len;   /* bytes written into in buffers on success */
    bool is_read;        /* for BLOCK_IO_ERROR's operation and rerror/werror */
    BlkIoOp op;          /* its block call, to make it again after a stop */
    uint64_t offset;     /* reads and writes: the disk range, for merging */
    uint64_t bytes;
    BlkReq *next_free;   /* in BlkShared.free_reqs */
    BlkReq *next_held;   /* in VirtIOBlk.held_head */
    bool loaded;         /* held, came with a migration: not parsed, holds no reference */
    BlkIo io;            /* its block call when it is not part of a merge */
    struct iovec iov_inline[BLK_REQ_INLINE_IOV]; /* iov when it fits */
};

/* Adjacent requests submitted as one; every member completes with its status. */
typedef struct BlkMerge {
    BlkShared *sh;
    unsigned n;
    struct BlkMerge *next_free;          /* in BlkShared.free_merges */
    BlkIo io;
    struct iovec iov[BLK_MERGE_MAX_IOV]; /* the members' buffers, neighbours joined */
    BlkReq *reqs[BLK_QUEUE_SIZE];
} BlkMerge;

/* Status returned by blk_submit for a read or write left in the batch. */
#define BLK_QUEUED 0xfe

static void shared_unref(BlkShared *sh)
{
    if (--sh->refcnt == 0) {
        while (sh->free_reqs) {
            BlkReq *r = sh->free_reqs;
            sh->free_reqs = r->next_free;
            g_free(r);
        }
        while (sh->free_merges) {
            BlkMerge *mg = sh->free_merges;
            sh->free_merges = mg->next_free;
            g_free(mg);
        }
        g_free(sh);
    }
}

/* A zeroed request from the pool (VM lock). */
static BlkReq *blk_req_alloc(BlkShared *sh)
{
    BlkReq *r = sh->free_reqs;

    if (!r) {
        return g_new0(BlkReq, 1);
    }
    sh->free_reqs = r->next_free;
    sh->nr_free_reqs--;
    /* Only the header needs clearing: iov_inline is written before it is read. */
    memset(r, 0, offsetof(BlkReq, iov_inline));
    return r;
}

static BlkMerge *blk_merge_alloc(BlkShared *sh)
{
    BlkMerge *mg = sh->free_merges;

    if (!mg) {
        return g_new(BlkMerge, 1);
    }
    sh->free_merges = mg->next_free;
    sh->nr_free_merges--;
    return mg;
}

static void blk_merge_free(BlkShared *sh, BlkMerge *mg)
{
    if (sh->nr_free_merges >= BLK_POOL_MAX_MERGES) {
        g_free(mg);
        return;
    }
    mg->next_free = sh->free_merges;
    sh->free_merges = mg;
    sh->nr_free_merges++;
}

/* Points r->iov at the bytes [skip, skip + len) of iov, inside r when they fit. */
static void blk_req_set_iov(BlkReq *r, const struct iovec *iov, unsigned n, size_t skip,
                            size_t len)
{
    r->iov = n <= BLK_REQ_INLINE_IOV ? r->iov_inline : g_new(struct iovec, MAX(n, 1));
    r->niov = (int)virtio_iov_slice(r->iov, iov, n, skip, len);
}

/* Writes the status byte (the last in byte) and hands the element back, without an
 * interrupt: the caller notifies once for everything it pushed. */
static void blk_req_push(VirtIOBlk *s, BlkReq *r, uint8_t status)
{
    VirtQueueElement *e = r->elem;
    const struct iovec *last = &e->in_sg[e->in_num - 1];
    VirtQueue *vq = &s->vdev.vqs[r->queue];

    ((uint8_t *)last->iov_base)[last->iov_len - 1] = status;
    guest_mem_mark_dirty(s->vdev.mem, e->in_gpa[e->in_num - 1] + last->iov_len - 1, 1);
    virtqueue_push(vq, e, status == VIRTIO_BLK_S_OK ? r->used_len : 1);
}

static void blk_req_finish(VirtIOBlk *s, BlkReq *r, uint8_t status)
{
    blk_req_push(s, r, status);
    virtio_queue_notify_driver(&s->vdev, &s->vdev.vqs[r->queue]);
}

/* Hands r back to the pool of sh (VM lock); sh must still hold r's reference. */
static void blk_req_free(BlkShared *sh, BlkReq *r)
{
    virtqueue_element_free(r->elem);
    if (r->iov != r->iov_inline) {
        g_free(r->iov);
    }
    if (sh->nr_free_reqs >= BLK_POOL_MAX_REQS) {
        g_free(r);
        return;
    }
    r->next_free = sh->free_reqs;
    sh->free_reqs = r;
    sh->nr_free_reqs++;
}

static uint8_t blk_status_of(int ret)
{
    return ret == 0 ? VIRTIO_BLK_S_OK : ret == -ENOTSUP ? VIRTIO_BLK_S_UNSUPP
                                                       : VIRTIO_BLK_S_IOERR;
}

static void blk_hold(VirtIOBlk *s, BlkReq *r)
{
    r->next_held = NULL;
    *s->held_tail = r;
    s->held_tail = &r->next_held;
    machine_held_add(s->shared->m, 1);
}

/*
 * The result ret of a request of the live generation (VM lock): pushes it with its
 * status and returns true (the caller notifies and frees), or holds it under the action
 * stop and returns false.  A failure the driver asked for (-ENOTSUP: an unsupported
 * operation) is no disk error and always reported.
 */
static bool blk_req_result(VirtIOBlk *s, BlkReq *r, int ret)
{
    uint8_t status = blk_status_of(ret);

    if (ret < 0 && ret != -ENOTSUP) {
        BlockErrorAction action = blk_get_error_action(s->blk, r->is_read, -ret);
        if (action == BLOCK_ERROR_ACTION_STOP) {
            blk_hold(s, r); /* before the event: a cont that follows it finds r */
        } else if (action == BLOCK_ERROR_ACTION_IGNORE) {
            status = VIRTIO_BLK_S_OK;
        }
        blk_error_action(s->blk, action, r->is_read, -ret);
        if (action == BLOCK_ERROR_ACTION_STOP) {
            return false;
        }
    }
    blk_req_push(s, r, status);
    return true;
}

static void blk_submit_pending(VirtIOBlk *s);

/* A call taken by blk_submit_pending completed: its bytes leave the bound. */
static void blk_io_retire(VirtIOBlk *s, const BlkIo *io)
{
    g_mutex_lock(&s->pending_lock);
    s->inflight_bytes -= io->data_bytes;
    g_mutex_unlock(&s->pending_lock);
}

/*
 * After a completion dropped the VM lock: starts the calls that waited for room.  s is
 * still there: unrealize runs on the main thread, after the I/O threads stopped
 * (machine_destroy), and completions that run later find sh->dev cleared.
 */
static void blk_io_refill(VirtIOBlk *s)
{
    if (s) {
        blk_submit_pending(s);
    }
}

static void blk_req_done(void *opaque, int ret)
{
    BlkReq *r = opaque;
    BlkShared *sh = r->sh;
    Machine *m = sh->m;

    machine_lock(m);
    VirtIOBlk *s = sh->dev;
    if (s) {
        blk_io_retire(s, &r->io);
    }
    if (s && s->generation == r->generation) {
        if (!blk_req_result(s, r, ret)) {
            machine_unlock(m); /* held, with its reference */
            blk_io_refill(s);
            return;
        }
        virtio_queue_notify_driver(&s->vdev, &s->vdev.vqs[r->queue]);
    }
    blk_req_free(sh, r);
    shared_unref(sh);
    machine_unlock(m);
    blk_io_refill(s);
}

/* Gives mg and its members back to the pools and drops their references (VM lock). */
static void blk_merge_release(BlkShared *sh, BlkMerge *mg)
{
    /* The last unref may free sh and its pools: give everything back first. */
    unsigned n = mg->n;
    for (unsigned i = 0; i < n; i++) {
        blk_req_free(sh, mg->reqs[i]);
    }
    blk_merge_free(sh, mg);
    for (unsigned i = 0; i < n; i++) {
        shared_unref(sh);
    }
}

/* A merged request finished: every member gets its result, the driver one interrupt. */
static void blk_merge_done(void *opaque, int ret)
{
    BlkMerge *mg = opaque;
    BlkShared *sh = mg->sh;
    Machine *m = sh->m;

    machine_lock(m);
    VirtIOBlk *s = sh->dev;
    if (s) {
        blk_io_retire(s, &mg->io);
    }
    bool live = s && s->generation == mg->reqs[0]->generation;
    unsigned n = 0, queue = mg->reqs[0]->queue;
    /* Members that are not held go back to the pool; the merge is reused at once.  The
     * last unref may free sh and its pools: give everything back first. */
    for (unsigned i = 0; i < mg->n; i++) {
        BlkReq *r = mg->reqs[i];
        if (live && !blk_req_result(s, r, ret)) {
            continue;
        }
        blk_req_free(sh, r);
        n++;
    }
    if (live && n) {
        virtio_queue_notify_driver(&s->vdev, &s->vdev.vqs[queue]);
    }
    blk_merge_free(sh, mg);
    for (unsigned i = 0; i < n; i++) {
        shared_unref(sh);
    }
    machine_unlock(m);
    blk_io_refill(s);
}

/* Appends io to the calls blk_submit_pending makes (VM lock); io->bytes and io->flags
 * (discard / write-zeroes) are set by the caller beforehand.  data_bytes is what iov
 * holds, which the caller already knows (the request's or the batch's bytes). */
static void blk_queue_io(VirtIOBlk *s, BlkIo *io, BlkIoOp op, uint64_t offset,
                         const struct iovec *iov, int niov, uint64_t data_bytes,
                         BlockCompletionFunc *cb, void *opaque)
{
    io->next = NULL;
    io->op = op;
    io->offset = offset;
    io->iov = iov;
    io->niov = niov;
    io->data_bytes = data_bytes;
    io->cb = cb;
    io->opaque = opaque;
    g_mutex_lock(&s->pending_lock);
    *s->pending_tail = io;
    s->pending_tail = &io->next;
    g_mutex_unlock(&s->pending_lock);
}

/*
 * Makes the block calls the queue handlers prepared, in their order.  Called with the
 * VM lock held (the handler itself, when it runs from a vCPU exit or a test) or, from the
 * ioeventfd path, right after the transport dropped it (kick_unlocked): io_submit pins
 * and maps up to 32 MiB of guest pages per merged request, and vCPUs must not wait for
 * that.  The calls themselves touch no device state; every request already holds its
 * reference on BlkShared.  A reset drops the calls not taken yet and waits for a
 * submission under way (blk_vdev_reset), so none of an older generation starts after it.
 * Two threads may each take a part of the list: requests in flight together have no
 * order in virtio-blk, and a flush only covers writes that already completed.
 *
 * Only the calls that fit under x-max-bytes-in-flight are taken (always at least one when
 * nothing is in flight, however big); the rest stay first in the list, and the
 * completion that makes room calls this again.  So what waits always has a call in
 * flight that will start it, also while blk_drain waits for the backend.
 */
static void blk_submit_pending(VirtIOBlk *s)
{
    g_mutex_lock(&s->pending_lock);
    BlkIo *io = s->pending_head, **rest = &s->pending_head;
    while (*rest && (s->inflight_bytes == 0 || !s->max_inflight_bytes ||
                     s->inflight_bytes + (*rest)->data_bytes <= s->max_inflight_bytes)) {
        s->inflight_bytes += (*rest)->data_bytes;
        rest = &(*rest)->next;
    }
    if (rest == &s->pending_head) {
        g_mutex_unlock(&s->pending_lock);
        return;
    }
    /* Cut the taken calls off the list. */
    s->pending_head = *rest;
    if (!*rest) {
        s->pending_tail = &s->pending_head;
    }
    *rest = NULL;
    s->submitting++;
    g_mutex_unlock(&s->pending_lock);

    /* The calls taken together reach the kernel together (aio=native: one io_submit). */
    blk_io_plug(s->blk);
    while (io) {
        BlkIo *next = io->next; /* io may complete (and be reused) once submitted */
        switch (io->op) {
        case BLK_IO_READ:
            blk_aio_preadv(s->blk, io->offset, io->iov, io->niov, 0, io->cb, io->opaque);
            break;
        case BLK_IO_WRITE:
            blk_aio_pwritev(s->blk, io->offset, io->iov, io->niov, 0, io->cb, io->opaque);
            break;
        case BLK_IO_FLUSH:
            blk_aio_flush(s->blk, io->cb, io->opaque);
            break;
        case BLK_IO_DISCARD:
            blk_aio_pdiscard(s->blk, io->offset, io->bytes, io->cb, io->opaque);
            break;
        case BLK_IO_WRITE_ZEROES:
            blk_aio_pwrite_zeroes(s->blk, io->offset, io->bytes, io->flags, io->cb,
                                  io->opaque);
            break;
        }
        io = next;
    }
    blk_io_unplug(s->blk);
    g_mutex_lock(&s->pending_lock);
    if (--s->submitting == 0) {
        g_cond_broadcast(&s->submitted_cond);
    }
    g_mutex_unlock(&s->pending_lock);
}

/* Gives back a prepared call that will never be made, with its requests (VM lock). */
static void blk_io_cancel(BlkShared *sh, BlkIo *io)
{
    if (io->cb == blk_merge_done) {
        blk_merge_release(sh, io->opaque);
        return;
    }
    blk_req_free(sh, io->opaque);
    shared_unref(sh);
}

/* Queues the batched reads or writes: one alone as it is, several as one request over
 * the concatenation of their buffers. */
static void blk_batch_flush(VirtIOBlk *s, BlkBatch *b)
{
    if (b->n == 0) {
        return;
    }
    BlkReq *first = b->reqs[0];
    BlkIoOp op = first->is_read ? BLK_IO_READ : BLK_IO_WRITE;
    if (b->n == 1) {
        blk_queue_io(s, &first->io, op, first->offset, first->iov, first->niov,
                     first->bytes, blk_req_done, first);
        b->n = 0;
        return;
    }
    BlkMerge *mg = blk_merge_alloc(first->sh);
    int niov = 0;

    mg->sh = first->sh;
    mg->n = b->n;
    for (unsigned i = 0; i < b->n; i++) {
        BlkReq *r = b->reqs[i];
        mg->reqs[i] = r;
        for (int k = 0; k < r->niov; k++) {
            struct iovec *prev = niov ? &mg->iov[niov - 1] : NULL;
            /* Guest buffers that follow each other in host memory become one. */
            if (prev && (uint8_t *)prev->iov_base + prev->iov_len == r->iov[k].iov_base) {
                prev->iov_len += r->iov[k].iov_len;
            } else {
                mg->iov[niov++] = r->iov[k];
            }
        }
    }
    blk_account_merged(s->blk, !first->is_read, mg->n);
    blk_queue_io(s, &mg->io, op, first->offset, mg->iov, niov, b->bytes, blk_merge_done,
                 mg);
    b->n = 0;
}

/* Queues a read or write, first submitting the batch when r does not continue it. */
static void blk_batch_add(VirtIOBlk *s, BlkBatch *b, BlkReq *r)
{
    if (b->n) {
        BlkReq *last = b->reqs[b->n - 1];
        if (b->n == G_N_ELEMENTS(b->reqs) || r->is_read != last->is_read ||
            r->offset != last->offset + last->bytes ||
            b->niov + r->niov > BLK_MERGE_MAX_IOV ||
            b->bytes + r->bytes > BLK_MERGE_MAX_BYTES) {
            blk_batch_flush(s, b);
        }
    }
    if (b->n == 0) {
        b->niov = 0;
        b->bytes = 0;
    }
    b->reqs[b->n++] = r;
    b->niov += r->niov;
    b->bytes += r->bytes;
}

/* Makes the block call of a held request again, on its own (VM lock).  A discard or
 * write-zeroes still has its range and flags in r->io (blk_queue_io keeps them). */
static void blk_requeue(VirtIOBlk *s, BlkReq *r)
{
    switch (r->op) {
    case BLK_IO_READ:
    case BLK_IO_WRITE:
        blk_queue_io(s, &r->io, r->op, r->offset, r->iov, r->niov, r->bytes, blk_req_done,
                     r);
        break;
    case BLK_IO_FLUSH:
        blk_queue_io(s, &r->io, r->op, 0, NULL, 0, 0, blk_req_done, r);
        break;
    case BLK_IO_DISCARD:
    case BLK_IO_WRITE_ZEROES:
        blk_queue_io(s, &r->io, r->op, r->io.offset, NULL, 0, 0, blk_req_done, r);
        break;
    }
}

static uint8_t blk_submit(VirtIOBlk *s, BlkBatch *b, BlkReq *r);

/* A held request that came with a migration: parsed as a new one, then made alone. */
static void blk_restart_loaded(VirtIOBlk *s, BlkReq *r)
{
    BlkBatch *b = &s->batch;

    b->n = 0;
    r->loaded = false;
    uint8_t status = blk_submit(s, b, r);
    if (status == BLK_QUEUED) {
        blk_requeue(s, r);
    } else if (status != 0xff) {
        blk_req_finish(s, r, status);
        blk_req_free(s->shared, r);
    }
}

/* The VM runs again (cont, a cancelled migration, a destination that loaded them): the
 * held requests are retried in the order they failed.  Main thread, VM lock not held. */
static void blk_retry_held(void *opaque)
{
    VirtIOBlk *s = opaque;
    Machine *m = s->shared->m;

    machine_lock(m);
    BlkReq *r = s->held_head;
    s->held_head = NULL;
    s->held_tail = &s->held_head;
    while (r) {
        BlkReq *next = r->next_held;
        machine_held_add(m, -1);
        if (r->loaded) {
            blk_restart_loaded(s, r);
        } else {
            blk_requeue(s, r);
        }
        r = next;
    }
    machine_unlock(m);
    blk_submit_pending(s);
}

/* Forgets the held requests (VM lock): a reset, or the device goes away. */
static void blk_drop_held(VirtIOBlk *s)
{
    BlkReq *r = s->held_head;

    s->held_head = NULL;
    s->held_tail = &s->held_head;
    while (r) {
        BlkReq *next = r->next_held;
        bool ref = !r->loaded;
        machine_held_add(s->shared->m, -1);
        blk_req_free(s->shared, r);
        if (ref) {
            shared_unref(s->shared);
        }
        r = next;
    }
}

/* Within the disk, and the disk has a medium: after a fatal corruption ejected the
 * node, every request fails here without reaching it (QEMU finds a length of 0). */
static bool range_ok(VirtIOBlk *s, uint64_t sector, uint64_t bytes)
{
    return sector <= s->capacity && bytes / 512 <= s->capacity - sector &&
           blk_is_inserted(s->blk);
}

/* Discard / write-zeroes: one segment {le64 sector, le32 num_sectors, le32 flags}. */
static uint8_t blk_submit_dz(VirtIOBlk *s, BlkReq *r, uint32_t type)
{
    VirtQueueElement *e = r->elem;
    struct { uint64_t sector; uint32_t num; uint32_t flags; } seg;
    uint32_t allowed = type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WZ_UNMAP : 0;

    if (e->out_len - 16 != sizeof(seg)) {
        return VIRTIO_BLK_S_UNSUPP; /* we offer max_*_seg = 1 */
    }
    iov_to_buf(e->out_sg, e->out_num, 16, &seg, sizeof(seg));
    if (seg.flags & ~allowed) {
        return VIRTIO_BLK_S_UNSUPP;
    }
    if (s->read_only || seg.num > BLK_MAX_DZ_SECTORS) {
        return VIRTIO_BLK_S_IOERR;
    }
    if (!range_ok(s, seg.sector, (uint64_t)seg.num * 512)) {
        blk_account_invalid(s->blk, type == VIRTIO_BLK_T_DISCARD ? BLOCK_REQ_DISCARD
                                                                 : BLOCK_REQ_WRITE);
        return VIRTIO_BLK_S_IOERR;
    }
    r->used_len = 1;
    r->sh->refcnt++;
    /* Before queueing: another thread may take it from the list at once. */
    r->io.bytes = (uint64_t)seg.num * 512;
    r->io.flags = (seg.flags & VIRTIO_BLK_WZ_UNMAP) ? BDRV_REQ_MAY_UNMAP : 0;
    r->op = type == VIRTIO_BLK_T_DISCARD ? BLK_IO_DISCARD : BLK_IO_WRITE_ZEROES;
    blk_queue_io(s, &r->io, r->op, seg.sector * 512, NULL, 0, 0, blk_req_done, r);
    return 0xff; /* in flight */
}

/* Starts r; returns a status to complete it with now, 0xff when it is in flight, or
 * BLK_QUEUED when it is a read or write to add to the batch. */
static uint8_t blk_submit(VirtIOBlk *s, BlkBatch *b, BlkReq *r)
{
    VirtQueueElement *e = r->elem;
    struct { uint32_t type; uint32_t ioprio; uint64_t sector; } hdr;
    size_t len;

    iov_to_buf(e->out_sg, e->out_num, 0, &hdr, sizeof(hdr));
    switch (hdr.type) {
    case VIRTIO_BLK_T_IN:
        len = e->in_len - 1;
        if (len % 512 || !range_ok(s, hdr.sector, len)) {
            blk_account_invalid(s->blk, BLOCK_REQ_READ);
            return VIRTIO_BLK_S_IOERR;
        }
        blk_req_set_iov(r, e->in_sg, e->in_num, 0, len);
        r->used_len = e->in_len;
        r->is_read = true;
        r->op = BLK_IO_READ;
        r->offset = hdr.sector * 512;
        r->bytes = len;
        r->sh->refcnt++;
        return BLK_QUEUED;
    case VIRTIO_BLK_T_OUT:
        len = e->out_len - sizeof(hdr);
        if (s->read_only) {
            return VIRTIO_BLK_S_IOERR;
        }
        if (len % 512 || !range_ok(s, hdr.sector, len)) {
            blk_account_invalid(s->blk, BLOCK_REQ_WRITE);
            return VIRTIO_BLK_S_IOERR;
        }
        blk_req_set_iov(r, e->out_sg, e->out_num, sizeof(hdr), len);
        r->used_len = 1;
        r->op = BLK_IO_WRITE;
        r->offset = hdr.sector * 512;
        r->bytes = len;
        r->sh->refcnt++;
        return BLK_QUEUED;
    case VIRTIO_BLK_T_FLUSH:
        blk_batch_flush(s, b); /* covers the writes queued before it */
        r->used_len = 1;
        r->op = BLK_IO_FLUSH;
        r->sh->refcnt++;
        blk_queue_io(s, &r->io, BLK_IO_FLUSH, 0, NULL, 0, 0, blk_req_done, r);
        return 0xff;
    case VIRTIO_BLK_T_GET_ID: {
        char id[VIRTIO_BLK_ID_BYTES] = { 0 };
        /* 5.2.6: 20 bytes, NUL-padded; no terminator when exactly 20 long. */
        if (s->serial) {
            memcpy(id, s->serial, MIN(strlen(s->serial), sizeof(id)));
        }
        len = MIN(e->in_len - 1, sizeof(id));
        iov_from_buf(e->in_sg, e->in_num, 0, id, len);
        r->used_len = len + 1;
        return VIRTIO_BLK_S_OK;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        blk_batch_flush(s, b); /* may overlap a queued write: keep the order */
        return blk_submit_dz(s, r, hdr.type);
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

static bool blk_handle_one(VirtIOBlk *s, VirtQueue *vq, BlkBatch *b, VirtQueueElement *e)
{
    BlkReq *r;
    uint8_t status;

    if (e->out_len < 16) {
        virtio_error(&s->vdev, "queue %u: request %u has a %zu-byte header, want 16",
                     vq->index, e->head, e->out_len);
        virtqueue_element_free(e);
        return false;
    }
    if (e->in_len < 1) {
        virtio_error(&s->vdev, "queue %u: request %u has no writable status byte",
                     vq->index, e->head);
        virtqueue_element_free(e);
        return false;
    }
    r = blk_req_alloc(s->shared);
    r->sh = s->shared;
    r->generation = s->generation;
    r->queue = vq->index;
    r->elem = e;
    status = blk_submit(s, b, r);
    if (status == BLK_QUEUED) {
        blk_batch_add(s, b, r);
    } else if (status != 0xff) {
        blk_req_finish(s, r, status);
        blk_req_free(s->shared, r);
    }
    return true;
}

static void blk_handle_queue(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBlk *s = (VirtIOBlk *)((uint8_t *)vdev - offsetof(VirtIOBlk, vdev));
    VirtQueueElement *e;
    BlkBatch *b = &s->batch;

    /* Kicks are pointless while we drain the ring; re-check after re-enabling them so
     * a buffer added in between is not missed.  What is batched is submitted, also when
     * the device broke half-way: here, or by blk_kick_unlocked once the transport has
     * dropped the VM lock. */
    b->n = 0;
    do {
        virtqueue_set_notification(vq, false);
        while ((e = virtqueue_pop(vq))) {
            if (!blk_handle_one(s, vq, b, e)) {
                goto out;
            }
        }
        virtqueue_set_notification(vq, true);
    } while (!virtqueue_empty(vq));
out:
    blk_batch_flush(s, b);
    if (!vdev->kick_unlocked_follows) {
        blk_submit_pending(s);
    }
}

static void blk_kick_unlocked(VirtIODevice *vdev)
{
    blk_submit_pending((VirtIOBlk *)((uint8_t *)vdev - offsetof(VirtIOBlk, vdev)));
}

static void blk_vdev_reset(VirtIODevice *vdev)
{
    VirtIOBlk *s = (VirtIOBlk *)((uint8_t *)vdev - offsetof(VirtIOBlk, vdev));

    /* In-flight requests finish in the block layer but no longer touch the rings. */
    s->generation++;
    /*
     * Calls prepared for the ioeventfd path but not made yet would start after the reset
     * (kick_unlocked runs once the VM lock is dropped, so a vCPU can reset in between):
     * a read would then fill a buffer the driver may have reused.  They are dropped, and
     * a submission already under way is waited for; it never needs the VM lock, which
     * this thread holds.
     */
    g_mutex_lock(&s->pending_lock);
    BlkIo *io = s->pending_head;
    s->pending_head = NULL;
    s->pending_tail = &s->pending_head;
    while (s->submitting) {
        g_cond_wait(&s->submitted_cond, &s->pending_lock);
    }
    g_mutex_unlock(&s->pending_lock);
    while (io) {
        BlkIo *next = io->next;
        blk_io_cancel(s->shared, io);
        io = next;
    }
    blk_drop_held(s);
}

static const VirtIODeviceOps blk_ops = {
    .reset = blk_vdev_reset,
    .kick_unlocked = blk_kick_unlocked,
};

static void virtio_blk_reset(DeviceState *dev)
{
    VirtIOBlk *s = (VirtIOBlk *)dev;
    virtio_pci_reset(&s->proxy);
}

static void set_cfg32(VirtIOBlk *s, unsigned off, uint32_t v)
{
    memcpy(s->vdev.config + off, &v, 4);
}

static void virtio_blk_unrealize(DeviceState *dev);

/* block_resize: the new capacity, then a config-change interrupt (5.2.6.2). */
static void virtio_blk_resized(void *opaque)
{
    VirtIOBlk *s = opaque;
    int64_t len = blk_getlength(s->blk);

    if (len < 0) {
        return;
    }
    s->capacity = (uint64_t)len / 512;
    memcpy(s->vdev.config + CFG_CAPACITY, &s->capacity, 8);
    virtio_config_changed(&s->vdev);
}

/* A werror / rerror property: any BlockdevOnError name, auto included (QEMU's words). */
static bool blk_parse_on_error_prop(const char *prop, const char *value, BlockdevOnError *out,
                                    Error **errp)
{
    if (!blockdev_on_error_parse(value, out)) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'", prop, value);
        return false;
    }
    return true;
}

static bool virtio_blk_realize(DeviceState *dev, Machine *m, Error **errp)
{
    VirtIOBlk *s = (VirtIOBlk *)dev;
    BlockdevOnError werror, rerror;
    uint64_t features;
    int64_t len;

    if (!s->drive) {
        error_setg(errp, "drive= is required (the id of a -drive or -blockdev)");
        return false;
    }
    if (s->num_queues < 1 || s->num_queues > BLK_MAX_QUEUES) {
        error_setg(errp, "num-queues=%u: must be 1 to %u", s->num_queues, BLK_MAX_QUEUES);
        return false;
    }
    if (!blk_parse_on_error_prop("werror", s->werror, &werror, errp) ||
        !blk_parse_on_error_prop("rerror", s->rerror, &rerror, errp)) {
        return false;
    }
    if (s->serial && strlen(s->serial) > VIRTIO_BLK_ID_BYTES) {
        error_setg(errp, "serial=%s: longer than %u characters", s->serial,
                   VIRTIO_BLK_ID_BYTES);
        return false;
    }
    s->blk = block_find_backend(m, s->drive);
    if (!s->blk) {
        error_setg(errp, "drive=%s: no -drive or -blockdev with that id", s->drive);
        return false;
    }
    /* The image locks of a guest disk (docs/image-locking.md). */
    if (!blk_set_device_perm(s->blk, s->share_rw, errp)) {
        s->blk = NULL;
        return false;
    }
    /* As QEMU's blkconf_apply_backend_options: a property that is not auto replaces
     * the drive's setting. */
    if (rerror != BLOCKDEV_ON_ERROR_AUTO || werror != BLOCKDEV_ON_ERROR_AUTO) {
        blk_set_on_error(s->blk,
                         rerror != BLOCKDEV_ON_ERROR_AUTO ? rerror
                                                          : blk_get_on_error(s->blk, true),
                         werror != BLOCKDEV_ON_ERROR_AUTO ? werror
                                                          : blk_get_on_error(s->blk, false));
    }
    if (s->iothread) {
        IOThread *t = machine_find_iothread(m, s->iothread);
        if (!t) {
            error_setg(errp, "iothread=%s: no -object iothread with that id", s->iothread);
            return false;
        }
        if (blk_in_flight(s->blk)) {
            error_setg(errp, "drive=%s: requests in flight, cannot move it to iothread=%s",
                       s->drive, s->iothread);
            return false;
        }
        /* Completions (native AIO, worker pool) and the queue notifiers both go there. */
        blk_set_context(s->blk, iothread_context(t));
        s->proxy.notify_ctx = iothread_context(t);
    }
    len = blk_getlength(s->blk);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "drive=%s: cannot get its size", s->drive);
        return false;
    }
    s->capacity = (uint64_t)len / 512;
    s->read_only = blk_is_read_only(s->blk);
    if (!pci_device_realize(&s->proxy.pci, m, errp)) {
        return false;
    }

    features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
               (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_MQ);
    if (s->read_only) {
        features |= 1ull << VIRTIO_BLK_F_RO;
    } else {
        features |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
    }
    virtio_init(&s->vdev, "virtio-blk", VIRTIO_ID_BLOCK, &blk_ops, m->mem, features,
                CFG_SIZE, s->num_queues);
    for (unsigned i = 0; i < s->num_queues; i++) {
        virtio_add_queue(&s->vdev, i, BLK_QUEUE_SIZE, blk_handle_queue);
    }
    memcpy(s->vdev.config + CFG_CAPACITY, &s->capacity, 8);
    set_cfg32(s, CFG_SEG_MAX, BLK_QUEUE_SIZE - 2); /* header and status take two */
    set_cfg32(s, CFG_BLK_SIZE, 512);
    memcpy(s->vdev.config + CFG_NUM_QUEUES, &s->num_queues, 2);
    set_cfg32(s, CFG_MAX_DISCARD_SECTORS, BLK_MAX_DZ_SECTORS);
    set_cfg32(s, CFG_MAX_DISCARD_SEG, 1);
    set_cfg32(s, CFG_DISCARD_ALIGN, 1);
    set_cfg32(s, CFG_MAX_WZ_SECTORS, BLK_MAX_DZ_SECTORS);
    set_cfg32(s, CFG_MAX_WZ_SEG, 1);
    s->vdev.config[CFG_WZ_MAY_UNMAP] = 1;

    g_mutex_init(&s->pending_lock);
    g_cond_init(&s->submitted_cond);
    s->pending_tail = &s->pending_head;
    s->held_tail = &s->held_head;
    s->shared = g_new0(BlkShared, 1);
    s->shared->refcnt = 1;
    s->shared->m = m;
    s->shared->dev = s;
    blk_iostatus_enable(s->blk);
    /* Before the transport's own: held requests are retried before the kicks that came
     * while the VM was stopped. */
    s->start_hook = machine_add_start_hook(m, blk_retry_held, s);
    if (!virtio_pci_realize(&s->proxy, &s->vdev, m, 0x010000, errp)) {
        virtio_blk_unrealize(dev); /* the registry only unrealizes realized devices */
        return false;
    }
    blk_set_resize_cb(s->blk, virtio_blk_resized, s);
    return true;
}

static void virtio_blk_unrealize(DeviceState *dev)
{
    VirtIOBlk *s = (VirtIOBlk *)dev;

    if (s->blk) {
        blk_set_resize_cb(s->blk, NULL, NULL);
    }
    if (s->start_hook) {
        machine_remove_start_hook(s->shared->m, s->start_hook);
        s->start_hook = NULL;
    }
    virtio_pci_unrealize(&s->proxy);
    virtio_cleanup(&s->vdev);
    if (s->shared) {
        /* What waits for room starts now, unbounded: no completion could start it once
         * the requests lose their device below. */
        s->max_inflight_bytes = 0;
        blk_submit_pending(s);
        blk_drop_held(s);
        g_clear_pointer(&s->held_ids, g_free); /* a load that failed half-way */
        g_mutex_clear(&s->pending_lock);
        g_cond_clear(&s->submitted_cond);
        /* Requests still in the block layer complete later (block_cleanup drains them)
         * and only free themselves. */
        s->shared->dev = NULL;
        shared_unref(s->shared);
        s->shared = NULL;
    }
}

/* ---- migration ---- */

/* Requests in flight were drained before the save (vmstate_drain_all), so the rings and
 * indices and the held requests (below) are all there is; the disk contents travel
 * outside (shared storage, or a block migration). */
static bool virtio_blk_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIOBlk *s = opaque;
    uint64_t capacity;
    memcpy(&capacity, s->vdev.config + CFG_CAPACITY, 8);
    if (capacity != s->capacity) {
        error_setg(errp, "drive=%s: the source's disk has %" G_GUINT64_FORMAT " sectors, "
                   "this one %" G_GUINT64_FORMAT, s->drive, capacity, s->capacity);
        return false;
    }
    return true;
}

static const VMStateField virtio_blk_fields[] = {
    VMSTATE_VIRTIO_PCI(proxy, VirtIOBlk),
    VMSTATE_END_OF_LIST(),
};

/*
 * Requests held after an error (werror/rerror=stop) travel in the "held" subsection, as
 * QEMU sends them in its virtio-blk state: queue and head of each, in order.  They were
 * popped, so the queues count them in use; the rings are saved as if they were not (the
 * virtqueue refuses to save requests in flight), and the destination walks each chain
 * again from the descriptor table and retries the request when its VM runs.
 */
#define BLK_HELD_MAX (BLK_MAX_QUEUES * BLK_QUEUE_SIZE)

static bool virtio_blk_pre_save(void *opaque, Error **errp)
{
    VirtIOBlk *s = opaque;

    s->nr_held_ids = 0;
    if (!s->held_head) {
        return true;
    }
    s->held_ids = g_new(uint32_t, BLK_HELD_MAX);
    for (BlkReq *r = s->held_head; r; r = r->next_held) {
        g_assert(s->nr_held_ids < BLK_HELD_MAX); /* each holds one of the queues' entries */
        s->held_ids[s->nr_held_ids++] = (uint32_t)r->queue << 16 | r->elem->head;
        s->vdev.vqs[r->queue].inuse--;
    }
    return true;
}

static void virtio_blk_post_save(void *opaque)
{
    VirtIOBlk *s = opaque;

    for (BlkReq *r = s->held_head; r; r = r->next_held) {
        s->vdev.vqs[r->queue].inuse++;
    }
    g_clear_pointer(&s->held_ids, g_free);
    s->nr_held_ids = 0;
}

static bool blk_held_needed(void *opaque)
{
    return ((VirtIOBlk *)opaque)->held_head != NULL;
}

static bool blk_held_pre_load(void *opaque, Error **errp)
{
    VirtIOBlk *s = opaque;

    g_free(s->held_ids);
    s->held_ids = g_new(uint32_t, BLK_HELD_MAX);
    return true;
}

/* After the rings (the fields come first): each id becomes a held request again. */
static bool blk_held_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIOBlk *s = opaque;
    bool ok = true;

    /* Each (queue, head) at most once: a head held twice would be completed twice to
     * the driver and count twice in use (a hostile stream could push a queue's count in
     * use past its size). */
    g_autofree uint8_t *seen = g_malloc0(BLK_HELD_MAX / 8);

    blk_drop_held(s); /* loadvm reset the device already; nothing of before may stay */
    for (uint32_t i = 0; i < s->nr_held_ids; i++) {
        unsigned queue = s->held_ids[i] >> 16, head = s->held_ids[i] & 0xffff;
        unsigned bit = queue * BLK_QUEUE_SIZE + head;
        if (queue < s->num_queues && head < BLK_QUEUE_SIZE &&
            (seen[bit / 8] & (1u << (bit % 8)))) {
            error_setg(errp, "drive=%s: held request %u (queue %u, head %u) is held "
                       "twice", s->drive, i, queue, head);
            ok = false;
            break;
        }
        VirtQueueElement *e = queue < s->num_queues && head < BLK_QUEUE_SIZE
                                  ? virtqueue_map_head(&s->vdev.vqs[queue], head)
                                  : NULL;
        if (!e || e->out_len < 16 || e->in_len < 1) {
            error_setg(errp, "drive=%s: held request %u (queue %u, head %u) is not a "
                       "valid request of this device", s->drive, i, queue, head);
            if (e) {
                virtqueue_element_free(e);
            }
            ok = false;
            break;
        }
        BlkReq *r = blk_req_alloc(s->shared);
        r->sh = s->shared;
        r->generation = s->generation;
        r->queue = queue;
        r->elem = e;
        r->loaded = true;
        blk_hold(s, r);
        seen[bit / 8] |= 1u << (bit % 8);
    }
    if (!ok) {
        /* Those before the bad one must not run either: a cont after a failed loadvm
         * would retry requests of a half-loaded state. */
        blk_drop_held(s);
    }
    g_clear_pointer(&s->held_ids, g_free);
    s->nr_held_ids = 0;
    return ok;
}

static const VMStateField blk_held_fields[] = {
    { .name = "ids", .type = VMS_U32, .offset = offsetof(VirtIOBlk, held_ids),
      .size = sizeof(uint32_t), .num = BLK_HELD_MAX,
      .count_offset = offsetof(VirtIOBlk, nr_held_ids),
      .flags = VMS_F_POINTER | VMS_F_COUNTED },
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc blk_held_vmsd = {
    .name = "virtio-blk-pci/held",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = blk_held_fields,
    .needed = blk_held_needed,
    .pre_load = blk_held_pre_load,
    .post_load = blk_held_post_load,
};

static const VMStateDesc *const virtio_blk_subsections[] = { &blk_held_vmsd, NULL };

static const VMStateDesc virtio_blk_vmsd = {
    .name = "virtio-blk-pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_blk_fields,
    .subsections = virtio_blk_subsections,
    .pre_save = virtio_blk_pre_save,
    .post_save = virtio_blk_post_save,
    .post_load = virtio_blk_post_load,
};

static const PropertyDef virtio_blk_props[] = {
    DEFINE_PCI_PROPS(VirtIOBlk, proxy.pci),
    DEFINE_PROP("drive", PROP_STRING, VirtIOBlk, drive, NULL,
                "id of the -drive / node-name of the -blockdev to use"),
    DEFINE_PROP("serial", PROP_STRING, VirtIOBlk, serial, NULL,
                "disk serial number (GET_ID, up to 20 characters)"),
    DEFINE_PROP("num-queues", PROP_U16, VirtIOBlk, num_queues, "1", "request queues"),
    DEFINE_PROP("share-rw", PROP_BOOL, VirtIOBlk, share_rw, "off",
                "let other processes write the image too (shared disks)"),
    DEFINE_PROP("werror", PROP_STRING, VirtIOBlk, werror, "auto",
                "on a failed write: report, ignore, enospc, stop or auto (the drive's)"),
    DEFINE_PROP("rerror", PROP_STRING, VirtIOBlk, rerror, "auto",
                "on a failed read: report, ignore, enospc, stop or auto (the drive's)"),
    DEFINE_PROP("iothread", PROP_STRING, VirtIOBlk, iothread, NULL,
                "id of the -object iothread that handles the queues and completions"),
    DEFINE_PROP("x-max-bytes-in-flight", PROP_SIZE, VirtIOBlk, max_inflight_bytes, "32M",
                "bytes of reads and writes in the block layer at once; more wait in order "
                "(0: no bound)"),
    { .name = NULL },
};

const DeviceClass virtio_blk_pci_class = {
    .name = "virtio-blk-pci",
    .desc = "virtio block device",
    .instance_size = sizeof(VirtIOBlk),
    .props = virtio_blk_props,
    .user_creatable = true,
    .realize = virtio_blk_realize,
    .reset = virtio_blk_reset,
    .unrealize = virtio_blk_unrealize,
    .vmsd = &virtio_blk_vmsd,
    .fw_name = "scsi", /* QEMU's bootorder path: /pci@i0cf8/scsi@SLOT/disk@0,0 */
    .fw_suffix = "/disk@0,0",
};
