/*
 * The "file" protocol: a host file or block device.
 *
 * cache.direct=on opens with O_DIRECT; requests whose offset, length or buffers do not
 * meet the alignment go through an aligned bounce buffer (read-modify-write for writes,
 * serialised so two partial writes into one block cannot lose each other's data).
 * aio=native submits aligned reads and writes with libaio and reaps them from an eventfd
 * watched in the node's GMainContext; while plugged (bdrv_io_plug) it queues them and
 * submits the batch with one io_submit at the unplug.  Everything else runs synchronously
 * on the block layer's worker pool (aio=threads).
 * locking=on|off|auto takes QEMU's image locks (block/file-lock.c) for what the node's
 * users need (set_perm).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <libaio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "block/block-internal.h"
#include "sen/iov.h"
#include "sen/os.h"

enum {
    MEM_ALIGN = 4096,
    AIO_MAX_EVENTS = 256,
    /* At most this many plugged requests wait for the unplug; a full batch goes at once
     * (QEMU's default aio-max-batch for linux-aio is 32). */
    AIO_MAX_BATCH = 32,
};

#define ROUND_UP(n, a) (((n) + (a) - 1) / (a) * (a))

typedef struct FilePosixState {
    int fd;
    bool is_blockdev;
    unsigned align;          /* offset/length alignment O_DIRECT needs, 1 without it */
    GMutex rmw_lock;         /* serialises bounce-buffer writes */

    GMutex aio_lock;         /* guards set-up of the fields below, and the batch */
    io_context_t aio_ctx;
    int aio_efd;             /* -1 until the first native request */
    BlockFdWatch aio_watch;  /* aio_efd in bs->ctx */
    int aio_inflight;        /* atomic */
    int aio_plugged;         /* aio_lock: bdrv_io_plug depth */
    int aio_nqueued;         /* aio_lock: iocbs held back while plugged */
    struct iocb *aio_queue[AIO_MAX_BATCH];
    unsigned aio_submit_calls; /* atomic: io_submit calls (tests) */

    bool use_lock;           /* locking=on, or auto where the host has OFD locks */
    int auto_ro_errno;       /* why auto-read-only=on opened read-only, or 0 */
    FileLockState lock;      /* what fd holds; main thread (graph changes) only */
} FilePosixState;

typedef struct FilePosixAio {
    struct iocb iocb;
    BlockRequest *req;
} FilePosixAio;

/* ---- plain I/O loops ---- */

/* Drops the first n bytes from v[first..niov) after a short transfer; returns the new
 * first element. */
static int fp_iov_consume(struct iovec *v, int niov, int first, size_t n)
{
    while (n > 0 && first < niov) {
        size_t take = MIN(n, v[first].iov_len);
        v[first].iov_base = (uint8_t *)v[first].iov_base + take;
        v[first].iov_len -= take;
        n -= take;
        if (v[first].iov_len == 0) {
            first++;
        }
    }
    return first;
}

/* Reads all of [offset, offset+bytes) into iov; bytes past the end of file read as zero. */
static int fp_do_preadv(int fd, int64_t offset, int64_t bytes, const struct iovec *iov,
                        int niov)
{
    g_autofree struct iovec *v = g_memdup2(iov, sizeof(*iov) * niov);
    int64_t done = 0;
    int first = 0;

    while (done < bytes) {
        ssize_t n = preadv(fd, v + first, niov - first, offset + done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            iov_memset(iov, niov, done, 0, bytes - done);
            return 0;
        }
        done += n;
        first = fp_iov_consume(v, niov, first, n);
    }
    return 0;
}

static int fp_do_pwritev(int fd, int64_t offset, int64_t bytes, const struct iovec *iov,
                         int niov)
{
    g_autofree struct iovec *v = g_memdup2(iov, sizeof(*iov) * niov);
    int64_t done = 0;
    int first = 0;

    while (done < bytes) {
        ssize_t n = pwritev(fd, v + first, niov - first, offset + done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -ENOSPC;
        }
        done += n;
        first = fp_iov_consume(v, niov, first, n);
    }
    return 0;
}

static bool fp_is_aligned(const FilePosixState *s, int64_t offset, int64_t bytes,
                          const struct iovec *iov, int niov)
{
    if (s->align <= 1) {
        return true;
    }
    if ((offset | bytes) & (s->align - 1)) {
        return false;
    }
    for (int i = 0; i < niov; i++) {
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (s->align - 1)) {
            return false;
        }
    }
    return true;
}

static void *fp_bounce_alloc(size_t len)
{
    void *p = NULL;
    return posix_memalign(&p, MEM_ALIGN, MAX(len, 1)) == 0 ? p : NULL;
}

/* ---- driver ---- */

static int fp_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     const struct iovec *iov, int niov, int flags)
{
    FilePosixState *s = bs->opaque;

    if (fp_is_aligned(s, offset, bytes, iov, niov)) {
        return fp_do_preadv(s->fd, offset, bytes, iov, niov);
    }
    int64_t start = offset & ~(int64_t)(s->align - 1);
    int64_t end = ROUND_UP(offset + bytes, (int64_t)s->align);
    uint8_t *buf = fp_bounce_alloc(end - start);
    if (!buf) {
        return -ENOMEM;
    }
    struct iovec biov = { .iov_base = buf, .iov_len = end - start };
    int ret = fp_do_preadv(s->fd, start, end - start, &biov, 1);
    if (ret == 0) {
        iov_from_buf(iov, niov, 0, buf + (offset - start), bytes);
    }
    free(buf);
    return ret;
}

static int fp_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      const struct iovec *iov, int niov, int flags)
{
    FilePosixState *s = bs->opaque;
    int ret;

    if (fp_is_aligned(s, offset, bytes, iov, niov)) {
        ret = fp_do_pwritev(s->fd, offset, bytes, iov, niov);
    } else {
        int64_t start = offset & ~(int64_t)(s->align - 1);
        int64_t end = ROUND_UP(offset + bytes, (int64_t)s->align);
        uint8_t *buf = fp_bounce_alloc(end - start);
        struct iovec biov = { .iov_base = buf, .iov_len = s->align };
        struct stat st;

        if (!buf) {
            return -ENOMEM;
        }
        bool head = start < offset;

        g_mutex_lock(&s->rmw_lock);
        ret = fstat(s->fd, &st) < 0 ? -errno : 0;
        /* Head and tail blocks keep the bytes around the request. */
        if (ret == 0 && head) {
            ret = fp_do_preadv(s->fd, start, s->align, &biov, 1);
        }
        if (ret == 0 && offset + bytes < end && !(head && end - s->align == start)) {
            biov.iov_base = buf + (end - start) - s->align;
            ret = fp_do_preadv(s->fd, end - s->align, s->align, &biov, 1);
        }
        if (ret == 0) {
            iov_to_buf(iov, niov, 0, buf + (offset - start), bytes);
            biov.iov_base = buf;
            biov.iov_len = end - start;
            ret = fp_do_pwritev(s->fd, start, end - start, &biov, 1);
        }
        /* The aligned tail must not make the file longer than the request did. */
        if (ret == 0 && !s->is_blockdev && end > st.st_size &&
            ftruncate(s->fd, MAX(st.st_size, offset + bytes)) < 0) {
            ret = -errno;
        }
        g_mutex_unlock(&s->rmw_lock);
        free(buf);
    }
    if (ret == 0 && (flags & BDRV_REQ_FUA) && !(bs->open_flags & BDRV_O_NO_FLUSH) &&
        fdatasync(s->fd) < 0) {
        ret = -errno;
    }
    return ret;
}

static int fp_flush(BlockDriverState *bs)
{
    FilePosixState *s = bs->opaque;

    if (bs->open_flags & BDRV_O_NO_FLUSH) {
        return 0;
    }
    return fdatasync(s->fd) < 0 ? -errno : 0;
}

static int fp_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    FilePosixState *s = bs->opaque;

    if (s->is_blockdev) {
        uint64_t range[2] = { offset, bytes };
        return ioctl(s->fd, BLKDISCARD, range) < 0 && errno != EOPNOTSUPP ? -errno : 0;
    }
    if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, bytes) < 0) {
        /* Discard is advisory: a file system without holes just keeps the data. */
        return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno;
    }
    return 0;
}

static int fp_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int flags)
{
    FilePosixState *s = bs->opaque;
    struct stat st;

    if (s->is_blockdev) {
        return -ENOTSUP;
    }
    /* Only punching a hole needs the size (it keeps it); qcow2 zeroes every cluster it
     * allocates for a partial write through the plain path, so no fstat there. */
    if ((flags & BDRV_REQ_MAY_UNMAP) && fstat(s->fd, &st) == 0 &&
        fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, bytes) == 0) {
        if (offset + bytes > st.st_size && ftruncate(s->fd, offset + bytes) < 0) {
            return -errno;
        }
        return 0;
    }
    if (fallocate(s->fd, FALLOC_FL_ZERO_RANGE, offset, bytes) == 0) {
        return 0;
    }
    return errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL ? -ENOTSUP : -errno;
}

static bool fp_truncate(BlockDriverState *bs, int64_t size, bool shrink, Error **errp)
{
    FilePosixState *s = bs->opaque;

    if (s->is_blockdev) {
        if (size > bs->total_size) {
            error_setg(errp, "'%s': cannot grow a block device", bs->filename);
            return false;
        }
        return true;
    }
    if (ftruncate(s->fd, size) < 0) {
        error_setg_errno(errp, errno, "'%s': failed to resize to %" PRId64 " bytes",
                         bs->filename, size);
        return false;
    }
    bs->total_size = size;
    return true;
}

static int fp_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    FilePosixState *s = bs->opaque;
    int ret = BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    off_t data, hole;

    *pnum = bytes;
    if (map) {
        *map = offset;
    }
    if (file) {
        *file = bs;
    }
    if (s->is_blockdev) {
        return ret;
    }
    data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID; /* a hole up to the end */
    }
    if (data < 0) {
        return ret; /* no SEEK_DATA: say data, which is always safe */
    }
    if (data > offset) {
        *pnum = MIN(bytes, data - offset);
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
    }
    hole = lseek(s->fd, offset, SEEK_HOLE);
    if (hole > offset) {
        *pnum = MIN(bytes, hole - offset);
    }
    return ret;
}

int64_t file_posix_allocated_size(BlockDriverState *bs)
{
    FilePosixState *s = bs->opaque;
    struct stat st;

    return fstat(s->fd, &st) < 0 ? -errno : (int64_t)st.st_blocks * 512;
}

/*
 * A view's pages past the file's end fault with SIGBUS: only when another program,
 * ignoring the image's locks, shrinks the file under a reader.  The process cannot carry
 * on (the faulting copy has no error path), so while any view is mapped a SIGBUS on an
 * address ends it with a message and exit status 1, as a failed read would end
 * sen-img, instead of a core dump.  Other SIGBUS faults keep the default action.
 */
static gint file_posix_maps_live;
static char file_posix_sigbus_msg[160];

static void file_posix_sigbus(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    if (info->si_code == BUS_ADRERR && g_atomic_int_get(&file_posix_maps_live) > 0) {
        ssize_t r = write(STDERR_FILENO, file_posix_sigbus_msg, strlen(file_posix_sigbus_msg));
        (void)r;
        _exit(1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void file_posix_sigbus_install(void)
{
    static gsize done;
    if (g_once_init_enter(&done)) {
        snprintf(file_posix_sigbus_msg, sizeof(file_posix_sigbus_msg),
                 "%s: an image file shrank while it was being read (a program that "
                 "ignores image locks changed it)\n", program_invocation_short_name);
        struct sigaction sa = { .sa_sigaction = file_posix_sigbus, .sa_flags = SA_SIGINFO };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
        g_once_init_leave(&done, 1);
    }
}

const uint8_t *file_posix_map(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              FilePosixMap *m)
{
    FilePosixState *s = bs->opaque;
    int64_t page = getpagesize();
    struct stat st;

    m->base = NULL;
    m->len = 0;
    if (bs->drv != &bdrv_file || s->align > 1 ||
        (bs->open_flags & BDRV_O_FORCE_SHARE) || offset < 0 || bytes <= 0 ||
        fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode) || offset + bytes > st.st_size) {
        return NULL;
    }
    int64_t start = offset / page * page;
    size_t len = offset + bytes - start;
    /* MAP_POPULATE: one call fills the page table instead of a fault per 64 KiB. */
    file_posix_sigbus_install();
    g_atomic_int_inc(&file_posix_maps_live);
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, s->fd, start);
    if (p == MAP_FAILED) {
        g_atomic_int_dec_and_test(&file_posix_maps_live);
        return NULL;
    }
    m->base = p;
    m->len = len;
    return (const uint8_t *)p + (offset - start);
}

void file_posix_unmap(FilePosixMap *m)
{
    if (m->base) {
        munmap(m->base, m->len);
        g_atomic_int_dec_and_test(&file_posix_maps_live);
        m->base = NULL;
        m->len = 0;
    }
}

int file_posix_copy_range(BlockDriverState *src, int64_t src_off, BlockDriverState *dst,
                          int64_t dst_off, int64_t bytes)
{
    if (!src || !dst || src->drv != &bdrv_file || dst->drv != &bdrv_file) {
        return -ENOTSUP;
    }
    FilePosixState *s = src->opaque, *d = dst->opaque;
    if (s->align > 1 || d->align > 1) {
        return -ENOTSUP;
    }
    loff_t in = src_off, out = dst_off;
    while (bytes > 0) {
        ssize_t n = copy_file_range(s->fd, &in, d->fd, &out, (size_t)bytes, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        bytes -= n;
    }
    return 0;
}

/* ---- libaio ---- */

static gboolean fp_aio_reap(gint fd, GIOCondition cond, gpointer opaque)
{
    FilePosixState *s = opaque;
    struct io_event events[64];
    struct timespec zero = { 0, 0 };
    uint64_t count;

    if (read(s->aio_efd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        return G_SOURCE_CONTINUE;
    }
    /* The eventfd read above consumed the count of every completion so far; one that
     * lands after it counts again and wakes us again, so a short batch means we are
     * done and another io_getevents would only return 0. */
    for (int n = G_N_ELEMENTS(events); n == G_N_ELEMENTS(events);) {
        n = io_getevents(s->aio_ctx, 0, G_N_ELEMENTS(events), events, &zero);
        for (int i = 0; i < n; i++) {
            FilePosixAio *aio = events[i].data;
            BlockRequest *req = aio->req;
            long res = (long)events[i].res;
            int ret = 0;

            if (res < 0) {
                ret = res;
            } else if (res < req->bytes) {
                if (req->type == BLOCK_REQ_READ) {
                    iov_memset(req->iov, req->niov, res, 0, req->bytes - res);
                } else {
                    ret = -ENOSPC;
                }
            }
            g_free(aio);
            g_atomic_int_add(&s->aio_inflight, -1);
            bdrv_request_complete(req, ret);
        }
    }
    return G_SOURCE_CONTINUE;
}

/*
 * Submits the held-back iocbs, oldest first, with as few io_submit calls as the kernel
 * takes them in; aio_lock held.  One the kernel refuses completes with its error (later,
 * in bs->ctx: its submitter has returned already) and the rest are tried again.
 */
static void fp_aio_submit_queued_locked(BlockDriverState *bs, FilePosixState *s)
{
    int done = 0;

    while (done < s->aio_nqueued) {
        int ret = io_submit(s->aio_ctx, s->aio_nqueued - done, s->aio_queue + done);
        g_atomic_int_inc((gint *)&s->aio_submit_calls);
        if (ret > 0) {
            done += ret;
            continue;
        }
        if (ret == -EINTR) {
            continue;
        }
        FilePosixAio *aio = s->aio_queue[done]->data;
        g_atomic_int_add(&s->aio_inflight, -1);
        bdrv_complete_in(bs->ctx, aio->req, ret < 0 ? ret : -EIO);
        g_free(aio);
        done++;
    }
    s->aio_nqueued = 0;
}

static void fp_io_plug(BlockDriverState *bs)
{
    FilePosixState *s = bs->opaque;

    g_mutex_lock(&s->aio_lock);
    s->aio_plugged++;
    g_mutex_unlock(&s->aio_lock);
}

static void fp_io_unplug(BlockDriverState *bs)
{
    FilePosixState *s = bs->opaque;

    g_mutex_lock(&s->aio_lock);
    g_assert(s->aio_plugged > 0);
    if (--s->aio_plugged == 0 && s->aio_nqueued) {
        fp_aio_submit_queued_locked(bs, s);
    }
    g_mutex_unlock(&s->aio_lock);
}

unsigned file_posix_aio_submit_calls(BlockDriverState *bs)
{
    FilePosixState *s = bs->opaque;
    return g_atomic_int_get((gint *)&s->aio_submit_calls);
}

/* Sets up the io context and the eventfd watch in bs->ctx; aio_lock held. */
static int fp_aio_setup_locked(BlockDriverState *bs, FilePosixState *s)
{
    if (s->aio_efd < 0) {
        int ret = io_setup(AIO_MAX_EVENTS, &s->aio_ctx);
        if (ret < 0) {
            return ret;
        }
        s->aio_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->aio_efd < 0) {
            io_destroy(s->aio_ctx);
            return -errno;
        }
    }
    /* Not re-entered: io_getevents from a nested iteration would complete requests the
     * outer dispatch already took, out of order. */
    block_fd_watch_attach(&s->aio_watch, s->aio_efd, bs->ctx, fp_aio_reap, s, false);
    return 0;
}

static int fp_aio_submit(BlockDriverState *bs, BlockRequest *req)
{
    FilePosixState *s = bs->opaque;
    int ret;

    if (!(bs->open_flags & BDRV_O_NATIVE_AIO) ||
        (req->type != BLOCK_REQ_READ && req->type != BLOCK_REQ_WRITE) ||
        (req->flags & BDRV_REQ_FUA) || req->bytes == 0 ||
        !fp_is_aligned(s, req->offset, req->bytes, req->iov, req->niov)) {
        return -ENOTSUP;
    }
    g_mutex_lock(&s->aio_lock);
    ret = fp_aio_setup_locked(bs, s);
    if (ret < 0) {
        g_mutex_unlock(&s->aio_lock);
        return -ENOTSUP;
    }
    /* A full ring falls back to the worker pool rather than blocking the submitter. */
    if (g_atomic_int_add(&s->aio_inflight, 1) >= AIO_MAX_EVENTS) {
        g_atomic_int_add(&s->aio_inflight, -1);
        g_mutex_unlock(&s->aio_lock);
        return -ENOTSUP;
    }

    FilePosixAio *aio = g_new0(FilePosixAio, 1);
    struct iocb *cbs[1] = { &aio->iocb };
    aio->req = req;
    if (req->type == BLOCK_REQ_READ) {
        io_prep_preadv(&aio->iocb, s->fd, req->iov, req->niov, req->offset);
    } else {
        io_prep_pwritev(&aio->iocb, s->fd, req->iov, req->niov, req->offset);
    }
    io_set_eventfd(&aio->iocb, s->aio_efd);
    aio->iocb.data = aio;
    if (s->aio_plugged) {
        s->aio_queue[s->aio_nqueued++] = &aio->iocb;
        if (s->aio_nqueued == AIO_MAX_BATCH) {
            fp_aio_submit_queued_locked(bs, s);
        }
        g_mutex_unlock(&s->aio_lock);
        return 0;
    }
    /* Unplugged, nothing is held back (the last unplug submitted it): no overtaking. */
    g_mutex_unlock(&s->aio_lock);
    ret = io_submit(s->aio_ctx, 1, cbs);
    g_atomic_int_inc((gint *)&s->aio_submit_calls);
    if (ret != 1) {
        g_free(aio);
        g_atomic_int_add(&s->aio_inflight, -1);
        return -ENOTSUP;
    }
    return 0;
}

/* ---- open/close/create ---- */

/* locking=on|off|auto (QEMU's OnOffAuto: 1, 0, -1; auto: on where the host has OFD
 * locks). */
static bool fp_parse_locking(BlockDriverState *bs, Keyval *opts, int *locking,
                             Error **errp)
{
    const char *v = keyval_has(opts, "locking") ? keyval_get(opts, "locking") : NULL;

    if (!keyval_parse_on_off_auto(v, locking)) {
        error_setg(errp, "'%s': locking=%s: expected 'on', 'off' or 'auto'", bs->filename,
                   v);
        return false;
    }
    return true;
}

static bool fp_set_perm(BlockDriverState *bs, uint64_t perm, uint64_t shared, Error **errp)
{
    FilePosixState *s = bs->opaque;

    if ((perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED)) && bs->read_only) {
        /* A writer above a node that auto-read-only opened read-only: the host's
         * answer, as QEMU gives it. */
        if (s->auto_ro_errno) {
            error_setg_errno(errp, s->auto_ro_errno, "Could not open '%s'", bs->filename);
        } else {
            error_setg(errp, "Block node is read-only");
        }
        return false;
    }
    if (!s->use_lock) {
        return true;
    }
    return file_lock_apply(s->fd, &s->lock, perm, shared, bs->filename, errp);
}

/* The smallest length O_DIRECT reads accept; 4096 when the file is too short to tell. */
static unsigned fp_probe_alignment(int fd)
{
    void *buf = fp_bounce_alloc(MEM_ALIGN);
    unsigned align = MEM_ALIGN;

    if (!buf) {
        return MEM_ALIGN;
    }
    for (unsigned a = 512; a < MEM_ALIGN; a <<= 1) {
        ssize_t n = pread(fd, buf, a, 0);
        if (n == (ssize_t)a) {
            align = a;
            break;
        }
        if (n >= 0) {
            break; /* short file: the answer is not reliable */
        }
    }
    free(buf);
    return align;
}

static bool fp_open(BlockDriverState *bs, Keyval *opts, int flags, Error **errp)
{
    FilePosixState *s = bs->opaque;
    int oflags = O_CLOEXEC | ((flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY);
    int locking;
    struct stat st;

    if (!fp_parse_locking(bs, opts, &locking, errp)) {
        return false;
    }
    bool use_lock = locking != 0; /* auto: until the fd shows no OFD locks */
    if ((flags & BDRV_O_NATIVE_AIO) && !(flags & BDRV_O_NOCACHE)) {
        error_setg(errp, "'%s': aio=native was specified, but it requires cache.direct=on "
                   "(cache=none or cache=directsync)", bs->filename);
        return false;
    }
    if (flags & BDRV_O_NOCACHE) {
        oflags |= O_DIRECT;
    }
    s->fd = os_open(bs->filename, oflags); /* also /dev/fdset/N (-add-fd) */
    if (s->fd < 0 && (flags & BDRV_O_RDWR) && (flags & BDRV_O_AUTO_RDONLY) &&
        (errno == EACCES || errno == EPERM || errno == EROFS)) {
        /* auto-read-only=on: what the host lets us have, as QEMU does. */
        int err = errno;
        s->fd = os_open(bs->filename, (oflags & ~O_RDWR) | O_RDONLY);
        if (s->fd >= 0) {
            s->auto_ro_errno = err;
            bs->read_only = true;
            g_atomic_int_and(&bs->open_flags, ~BDRV_O_RDWR);
        }
    }
    if (s->fd < 0 && errno == EINVAL && (flags & BDRV_O_NOCACHE)) {
        error_setg(errp, "Could not open '%s': cache.direct=on (O_DIRECT) is not supported "
                   "by its file system", bs->filename);
        return false;
    }
    if (s->fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", bs->filename);
        return false;
    }
    if (fstat(s->fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        error_setg(errp, "Could not open '%s': not a regular file or block device",
                   bs->filename);
        file_lock_close(s->fd);
        return false;
    }
    s->is_blockdev = S_ISBLK(st.st_mode);
    s->align = 1;
    if (s->is_blockdev) {
        uint64_t size = 0;
        int ssz = 512;
        if (ioctl(s->fd, BLKGETSIZE64, &size) < 0) {
            error_setg_errno(errp, errno, "'%s': cannot get the device size", bs->filename);
            file_lock_close(s->fd);
            return false;
        }
        bs->total_size = size;
        if ((flags & BDRV_O_NOCACHE) && ioctl(s->fd, BLKSSZGET, &ssz) == 0 && ssz > 0) {
            s->align = ssz;
        }
    } else {
        bs->total_size = st.st_size;
        if (flags & BDRV_O_NOCACHE) {
            s->align = fp_probe_alignment(s->fd);
        }
    }
    bs->request_alignment = s->align;
    if (use_lock && !file_lock_host_has_ofd()) {
        /* QEMU's fallback and words: locking=on takes POSIX locks, auto none. */
        if (locking == 1) {
            warn_report("File lock requested but OFD locking syscall is unavailable, "
                        "falling back to POSIX file locks");
            fputs("Due to the implementation, locks can be lost unexpectedly.\n", stderr);
            s->lock.posix = true;
        } else {
            use_lock = false;
        }
    } else if (use_lock && !file_lock_supported(s->fd)) {
        if (locking == 1) {
            error_setg(errp, "'%s': locking=on: the host does not support OFD locks on "
                       "this file", bs->filename);
            file_lock_close(s->fd);
            return false;
        }
        use_lock = false;
    }
    s->use_lock = use_lock; /* the locks follow in set_perm, once the users are known */
    s->aio_efd = -1;
    g_mutex_init(&s->rmw_lock);
    g_mutex_init(&s->aio_lock);
    return true;
}

static void fp_close(BlockDriverState *bs)
{
    FilePosixState *s = bs->opaque;

    block_fd_watch_detach(&s->aio_watch);
    if (s->aio_efd >= 0) {
        io_destroy(s->aio_ctx);
        close(s->aio_efd);
    }
    g_mutex_clear(&s->rmw_lock);
    g_mutex_clear(&s->aio_lock);
    file_lock_close(s->fd); /* drops its locks */
    s->fd = -1;
    s->use_lock = false;
    s->lock = (FileLockState){ 0 };
}

/* A new fd in the mode of flags; its locks are the old fd's (copied before the old one
 * closes, so another process never finds the image unlocked), and set_perm moves them
 * to what the node's users take in the new mode.  Main thread, no requests in flight. */
static bool fp_reopen(BlockDriverState *bs, int flags, Error **errp)
{
    FilePosixState *s = bs->opaque;
    int oflags = O_CLOEXEC | ((flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY);

    if (flags & BDRV_O_NOCACHE) {
        oflags |= O_DIRECT;
    }
    int fd = os_open(bs->filename, oflags);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", bs->filename);
        return false;
    }
    struct stat old_st, st;
    if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        error_setg(errp, "Could not open '%s': not a regular file or block device",
                   bs->filename);
        file_lock_close(fd);
        return false;
    }
    /* The name may now lead to another file (replaced on disk): nobody looked for
     * conflicts on its bytes yet, so they are taken as a new holder would (QEMU copies
     * them blindly).  A conflict keeps the node on its old file, locks and all. */
    bool same = fstat(s->fd, &old_st) == 0 && old_st.st_dev == st.st_dev &&
                old_st.st_ino == st.st_ino;
    if (s->use_lock && same && !file_lock_copy(fd, &s->lock, errp)) {
        file_lock_close(fd);
        return false;
    }
    if (s->use_lock && !same) {
        FileLockState l = { .posix = s->lock.posix };
        if (!file_lock_apply(fd, &l, s->lock.perm, ~s->lock.unshared, bs->filename,
                             errp)) {
            file_lock_close(fd);
            return false;
        }
    }
    /* POSIX locks are the process's: closing the old fd drops them all, and
     * file_lock_close takes them again through the new one (and the other holders'). */
    file_lock_close(s->fd);
    s->fd = fd;
    s->auto_ro_errno = 0;
    if (S_ISREG(st.st_mode)) {
        bs->total_size = st.st_size;
    }
    return true;
}

static bool fp_create(const char *filename, Keyval *opts, Error **errp)
{
    uint64_t size;
    const char *prealloc = keyval_get(opts, "preallocation");
    int fd, err = 0;

    if (!keyval_get_size(opts, filename, "size", 0, &size, errp)) {
        return false;
    }
    if (prealloc && strcmp(prealloc, "off") != 0 && strcmp(prealloc, "falloc") != 0 &&
        strcmp(prealloc, "full") != 0) {
        error_setg(errp, "'%s': preallocation=%s: expected off, falloc or full", filename,
                   prealloc);
        return false;
    }
    fd = open(filename, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not create '%s'", filename);
        return false;
    }
    if (ftruncate(fd, size) < 0) {
        err = errno;
    } else if (prealloc && strcmp(prealloc, "falloc") == 0 && size &&
               posix_fallocate(fd, 0, size) != 0) {
        err = EIO;
    } else if (prealloc && strcmp(prealloc, "full") == 0) {
        g_autofree uint8_t *zero = g_malloc0(1 << 20);
        for (uint64_t off = 0; off < size && !err; off += 1 << 20) {
            size_t n = MIN(size - off, (uint64_t)1 << 20);
            if (pwrite(fd, zero, n, off) != (ssize_t)n) {
                err = errno ? errno : EIO;
            }
        }
    }
    file_lock_close(fd); /* the file may be open in this process (POSIX locks) */
    if (err) {
        error_setg_errno(errp, err, "Could not resize '%s' to %" PRIu64 " bytes", filename,
                         size);
        return false;
    }
    return keyval_check_all_used(opts, filename, errp);
}

const BlockDriver bdrv_file = {
    .format_name = "file",
    .is_protocol = true,
    .instance_size = sizeof(FilePosixState),
    .open = fp_open,
    .close = fp_close,
    .preadv = fp_preadv,
    .pwritev = fp_pwritev,
    .aio_submit = fp_aio_submit,
    .io_plug = fp_io_plug,
    .io_unplug = fp_io_unplug,
    .flush = fp_flush,
    .pdiscard = fp_pdiscard,
    .pwrite_zeroes = fp_pwrite_zeroes,
    .truncate = fp_truncate,
    .block_status = fp_block_status,
    .create = fp_create,
    .set_perm = fp_set_perm,
    .reopen = fp_reopen,
};
