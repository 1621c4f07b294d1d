/*
 * Batched reads and writes on a tap fd through io_uring: one io_uring_enter(2) for a
 * batch of frames instead of one readv/writev(2) each.  On hosts where every system call
 * entry and exit is expensive (retpolines, SRSO "Safe RET"), that call is most of what a
 * frame costs the VMM beyond the kernel's own network path.
 *
 * Everything a batch does completes inside the io_uring_enter that submits it: every
 * request carries RWF_NOWAIT, so a tap with nothing to read (or a full queue) answers
 * EAGAIN at once instead of leaving a request armed in the kernel.  No request outlives
 * tap_ring_flush / tap_ring_read, so the memory they name (guest buffers, bounce
 * buffers, the iovecs) only has to stay valid until those return, no completion ever
 * arrives later on another thread, and the ring needs no event source of its own.
 *
 * The ring is made before -sandbox installs its filter, and only readv/writev on its one
 * registered file, the tap, may be submitted to it (IORING_REGISTER_RESTRICTIONS):
 * seccomp does not see the operations a ring performs, so io_uring_setup is not on the
 * allow-list and a ring could not do more than read(2)/write(2) on the tap.  Without liburing at build time,
 * with io_uring disabled (kernel.io_uring_disabled), refused (seccomp, containers) or too
 * old for RWF_NOWAIT, tap_ring_new returns NULL and the tap makes one call per frame.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "sen-config.h"
#include "net/net-internal.h"
#include "sen/error.h"
#include "sen/os.h"

#ifdef CONFIG_LIBURING
#include <liburing.h>

#define TAP_RING_FILE 0  /* the tap fd's index among the ring's registered files */

struct TapRing {
    struct io_uring ring;
    int fd;
    bool unusable;               /* RWF_NOWAIT refused (EOPNOTSUPP/EINVAL), or requests
                                  * stuck in the SQ: one call per frame from now on */
    unsigned queued;             /* writes prepared, not yet submitted */
    struct iovec iov[TAP_RING_ENTRIES][TAP_RING_IOV];
    int iovcnt[TAP_RING_ENTRIES];
};

TapRing *tap_ring_new(int fd)
{
    /* readv/writev on the registered tap fd only: every request must name it by its
     * index (IOSQE_FIXED_FILE), which also spares the kernel a file lookup per frame. */
    struct io_uring_restriction res[] = {
        { .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
        { .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
        { .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_FIXED_FILE },
        { .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
    };
    TapRing *r;

    if (os_sandbox_installed()) {
        return NULL;
    }
    r = g_new0(TapRing, 1);
    r->fd = fd;
    /* Disabled until the restrictions are in: they can only be registered before. */
    if (io_uring_queue_init(TAP_RING_ENTRIES, &r->ring, IORING_SETUP_R_DISABLED) < 0) {
        g_free(r);
        return NULL;
    }
    /* io_uring_register(2) directly: Debian's liburing 2.3 lacks the wrappers for
     * these in its symbol map. */
    if (io_uring_register(r->ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res,
                          G_N_ELEMENTS(res)) < 0 ||
        io_uring_register(r->ring.ring_fd, IORING_REGISTER_FILES, &r->fd, 1) < 0 ||
        io_uring_register(r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
        io_uring_queue_exit(&r->ring);
        g_free(r);
        return NULL;
    }
    return r;
}

void tap_ring_free(TapRing *r)
{
    if (r) {
        io_uring_queue_exit(&r->ring);
        g_free(r);
    }
}

bool tap_ring_usable(TapRing *r)
{
    return r && !r->unusable;
}

/* Test hooks (see net-internal.h): a kernel that takes fewer requests than offered, one
 * that then refuses the rest, reads that find nothing while later ones find a frame. */
unsigned tap_ring_test_short_submit;
bool tap_ring_test_submit_fails;
uint64_t tap_ring_test_eagain;

/* Hands the kernel the first k prepared requests only (see tap_ring_test_short_submit). */
static int ring_submit_short(TapRing *r, unsigned k)
{
    struct io_uring_sq *sq = &r->ring.sq;

    io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    sq->sqe_head = sq->sqe_tail;
    return io_uring_enter(r->ring.ring_fd, k, 0, 0, NULL);
}

/* Submits everything prepared and returns only once every request the kernel took has
 * its completion in the CQ: none may still be in flight when this returns, or it would
 * touch guest or bounce memory later and its completion would be taken for a later
 * batch's.  RWF_NOWAIT makes that one io_uring_enter; a kernel that takes fewer requests
 * than offered, or returns from the wait early (a signal while a request was punted),
 * gets more calls.  Returns the number submitted; fewer than n: the rest are stuck in
 * the SQ and the ring must not be used again (a later submit would replay them). */
static unsigned ring_submit_all(TapRing *r, unsigned n)
{
    unsigned submitted = 0;
    bool failed = false;
    int ret;

    if (tap_ring_test_short_submit && tap_ring_test_short_submit < n) {
        ret = ring_submit_short(r, tap_ring_test_short_submit);
        tap_ring_test_short_submit = 0;
        submitted = ret > 0 ? (unsigned)ret : 0;
        failed = tap_ring_test_submit_fails;
        tap_ring_test_submit_fails = false;
    }
    while (!failed && submitted < n) {
        ret = io_uring_submit_and_wait(&r->ring, n - submitted);
        if (ret == -EINTR || ret == -EAGAIN || ret == -EBUSY) {
            continue;
        }
        if (ret <= 0) {
            break;
        }
        submitted += (unsigned)ret;
    }
    while (io_uring_cq_ready(&r->ring) < submitted) {
        struct io_uring_cqe *cqe;
        ret = io_uring_wait_cqe_nr(&r->ring, &cqe, submitted);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -ETIME && ret != -EBUSY) {
            /* Returning would leave requests writing into memory about to be reused. */
            error_report("tap: io_uring wait failed: %s", strerror(-ret));
            abort();
        }
    }
    if (submitted < n) {
        r->unusable = true;
    }
    return submitted;
}

bool tap_ring_queue_write(TapRing *r, const struct iovec *iov, int iovcnt,
                          const void *hdr, size_t hdr_len)
{
    unsigned slot = r->queued;
    int n = 0;

    /* An unusable ring may hold requests the kernel never took (ring_submit_all): any
     * later submission would hand them over, into memory long given back. */
    if (r->unusable || slot == TAP_RING_ENTRIES || iovcnt + 1 > TAP_RING_IOV) {
        return false;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        return false;
    }
    if (hdr_len) {
        r->iov[slot][n++] = (struct iovec){ .iov_base = (void *)hdr, .iov_len = hdr_len };
    }
    memcpy(&r->iov[slot][n], iov, iovcnt * sizeof(*iov));
    n += iovcnt;
    r->iovcnt[slot] = n;
    io_uring_prep_writev(sqe, TAP_RING_FILE, r->iov[slot], n, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    sqe->rw_flags = RWF_NOWAIT;
    sqe->user_data = slot;
    r->queued++;
    return true;
}

unsigned tap_ring_queued(TapRing *r)
{
    return r->queued;
}

unsigned tap_ring_flush(TapRing *r)
{
    unsigned n = r->queued, dropped = 0, seen = 0, head;
    struct io_uring_cqe *cqe;

    if (!n) {
        return 0;
    }
    r->queued = 0;
    /* Those the kernel did not take are lost (counted below), not written later: the
     * ring is not used again after that. */
    ring_submit_all(r, n);
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        unsigned slot = (unsigned)cqe->user_data;
        if (slot >= n) {
            /* not ours: cannot happen, the ring is this tap's alone */
        } else if (cqe->res == -EOPNOTSUPP || cqe->res == -EINVAL) {
            /* A kernel without RWF_NOWAIT for this file: write this one the old way
             * (its iovecs are still here) and make no more batches. */
            r->unusable = true;
            dropped += writev(r->fd, r->iov[slot], r->iovcnt[slot]) < 0;
        } else if (cqe->res < 0 ||
                   (size_t)cqe->res != iov_size(r->iov[slot], r->iovcnt[slot])) {
            /* EAGAIN: the interface queue is full (dropped, never waited for); a short
             * write sent part of a frame, which is no frame either. */
            dropped++;
        }
        seen++;
    }
    io_uring_cq_advance(&r->ring, seen);
    return dropped + (n - MIN(seen, n));
}

unsigned tap_ring_read(TapRing *r, struct iovec *const *iov, const int *iovcnt, unsigned n,
                       ssize_t *lens)
{
    unsigned seen = 0, made = 0, head;
    uint64_t skip = tap_ring_test_eagain;
    struct io_uring_cqe *cqe;

    tap_ring_test_eagain = 0;
    n = MIN(n, TAP_RING_ENTRIES);
    for (unsigned i = 0; i < n; i++) {
        lens[i] = -EAGAIN;  /* reads not made or not taken: the caller stops there */
    }
    if (r->unusable) {
        return 0; /* see tap_ring_queue_write */
    }
    for (unsigned i = 0; i < n; i++) {
        if (skip & (1ull << i)) {
            continue; /* test hook: as a read that found the tap empty */
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (!sqe) {
            n = i;  /* the SQ is full (only if writes were left queued): read fewer */
            break;
        }
        int cnt = MIN(iovcnt[i], TAP_RING_IOV);
        memcpy(r->iov[i], iov[i], cnt * sizeof(struct iovec));
        io_uring_prep_readv(sqe, TAP_RING_FILE, r->iov[i], cnt, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        sqe->rw_flags = RWF_NOWAIT;
        sqe->user_data = i;
        made++;
    }
    /* Reads not taken keep -EAGAIN (the caller stops there); those taken are consumed. */
    unsigned submitted = ring_submit_all(r, made);
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (cqe->user_data < n) {
            lens[cqe->user_data] = cqe->res;
        }
        if (cqe->res == -EOPNOTSUPP || cqe->res == -EINVAL) {
            r->unusable = true;
        }
        seen++;
    }
    io_uring_cq_advance(&r->ring, seen);
    return submitted;
}

#else /* !CONFIG_LIBURING */

/* The tests set these whether or not there is a ring. */
unsigned tap_ring_test_short_submit;
bool tap_ring_test_submit_fails;
uint64_t tap_ring_test_eagain;

TapRing *tap_ring_new(int fd)
{
    return NULL;
}

void tap_ring_free(TapRing *r)
{
}

bool tap_ring_usable(TapRing *r)
{
    return false;
}

bool tap_ring_queue_write(TapRing *r, const struct iovec *iov, int iovcnt,
                          const void *hdr, size_t hdr_len)
{
    return false;
}

unsigned tap_ring_queued(TapRing *r)
{
    return 0;
}

unsigned tap_ring_flush(TapRing *r)
{
    return 0;
}

unsigned tap_ring_read(TapRing *r, struct iovec *const *iov, const int *iovcnt, unsigned n,
                       ssize_t *lens)
{
    return 0;
}

#endif
