/*
 * The migration byte stream: see stream.h.
 *
 * Writes of headers and records are checksummed while they are copied into the buffer
 * (one pass over the bytes: mig_crc32c_copy).  Page data is not copied at all
 * (mig_put_data): the buffer's pending bytes and the caller's memory go to the socket
 * together in one writev.  Such data is outside the stream's
 * CRC: guest RAM may change between any checksum and the kernel's copy, so RAM records
 * carry a checksum of their own data (docs/migration-format.md).
 *
 * Readers fill a buffer for headers and small records; page data of a large record is
 * read straight into its place (readv: the data, then a few KiB of what follows into
 * the buffer) and checksummed there while it is hot in the cache.  mig_get_chunk hands
 * out pieces of the buffer for callers that pwrite the data anyway.
 *
 * A writer over an fd sends from a thread of its own (MigWriter): while it writes one
 * batch (the kernel's copy out of guest RAM), the owner checksums the pages of the next
 * one, so the two passes over a page's bytes overlap instead of adding up.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>
#include <glib.h>
#include "migration/crc32c.h"
#include "migration/stream.h"

/* A reader's buffer: what a fill() may pull through it (see MIG_READ_AHEAD). */
#define MIG_STREAM_BUF (256 * 1024)
/* A writer's buffer: headers and small records; page data is referenced (iov). */
#define MIG_WRITE_BUF (256 * 1024)
/* Referenced data is sent once this much is pending, or the iovec array is full: large
 * enough for few system calls, small enough that the pages are still in the cache
 * from their checksum and the guest has had little time to change them since. */
#define MIG_SEND_BATCH (1024 * 1024)
#define MIG_SEND_IOV 64
/* The rate limit is enforced per window: short enough for a smooth rate, long enough
 * that the sleep granularity does not matter. */
#define RATE_WINDOW_US 50000

/* The background writer of an fd stream.  lock guards the fields marked [lock]; cond
 * is broadcast when a batch was taken, written, or the thread should stop. */
typedef struct MigWriter {
    GThread *thread;
    GMutex lock;
    GCond cond;
    struct iovec *iov;        /* [lock] being written; NULL when idle */
    unsigned niov;            /* [lock] */
    bool quit;                /* [lock] */
    char *error;              /* [lock] the write failure */
    int failed;               /* atomic: error is set (a lock-free check for the owner) */
    int fd;
} MigWriter;

struct MigStream {
    int fd;
    MigWriter *writer;        /* fd writers: sends full batches in the background */
    uint8_t *spare;           /* the buffer the writer has or had, swapped with buf */
    struct iovec *spare_iov;  /* likewise for iov */
    const MigStreamOps *ops;  /* instead of fd when set */
    void *ops_opaque;
    bool writing;
    uint8_t *buf;
    size_t len;   /* writer: bytes pending; reader: bytes buffered */
    size_t pos;   /* reader: next byte to consume */
    /* writer: what the next send writes, in order: pieces of buf and referenced data
     * (mig_put_data).  buf[seg_start, len) is pending but not yet in iov. */
    struct iovec *iov;        /* MIG_SEND_IOV entries */
    unsigned niov;
    size_t seg_start;
    size_t iov_bytes;
    uint32_t crc; /* of everything sent / consumed so far (before the final inversion) */
    uint64_t bytes;
    char *error;

    uint64_t rate_limit;
    int64_t window_start;
    uint64_t window_bytes;
};

/* Writes iov[0, niov) completely with writev; 0 or an errno (EPIPE for no progress). */
static int writev_all(int fd, struct iovec *iov, unsigned niov)
{
    while (niov) {
        if (!iov->iov_len) {
            iov++;
            niov--;
            continue;
        }
        ssize_t n = writev(fd, iov, (int)MIN(niov, (unsigned)IOV_MAX));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? errno : EPIPE;
        }
        size_t done = (size_t)n;
        while (done && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            niov--;
        }
        if (done) {
            iov->iov_base = (uint8_t *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* ---- the background writer ---- */

static gpointer writer_thread(gpointer opaque)
{
    MigWriter *w = opaque;

    g_mutex_lock(&w->lock);
    for (;;) {
        while (!w->iov && !w->quit) {
            g_cond_wait(&w->cond, &w->lock);
        }
        if (!w->iov) {
            break;
        }
        struct iovec *iov = w->iov;
        unsigned niov = w->niov;
        g_mutex_unlock(&w->lock);
        int err = writev_all(w->fd, iov, niov);
        g_mutex_lock(&w->lock);
        if (err && !w->error) {
            w->error = g_strdup_printf("write to the migration stream failed: %s",
                                       g_strerror(err));
            g_atomic_int_set(&w->failed, 1);
        }
        w->iov = NULL;
        g_cond_broadcast(&w->cond);
    }
    g_mutex_unlock(&w->lock);
    return NULL;
}

/* Waits until the writer has written what it was given; moves its failure (if any)
 * into the stream. */
static void writer_wait(MigStream *s)
{
    MigWriter *w = s->writer;
    g_mutex_lock(&w->lock);
    while (w->iov) {
        g_cond_wait(&w->cond, &w->lock);
    }
    if (w->error && !s->error) {
        s->error = g_strdup(w->error);
    }
    g_mutex_unlock(&w->lock);
}

/* Hands the batch to the (idle) writer and continues in the other buffer and iovecs. */
static void writer_submit(MigStream *s)
{
    MigWriter *w = s->writer;
    g_mutex_lock(&w->lock);
    w->iov = s->iov;
    w->niov = s->niov;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
    struct iovec *iov = s->spare_iov;
    s->spare_iov = s->iov;
    s->iov = iov;
    uint8_t *buf = s->spare;
    s->spare = s->buf;
    s->buf = buf;
}

static void writer_free(MigStream *s)
{
    MigWriter *w = s->writer;
    g_mutex_lock(&w->lock);
    w->quit = true;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
    g_thread_join(w->thread);
    g_free(w->error);
    g_mutex_clear(&w->lock);
    g_cond_clear(&w->cond);
    g_free(w);
    s->writer = NULL;
}

/* ---- life cycle ---- */

static MigStream *mig_stream_new(int fd, bool writing)
{
    MigStream *s = g_new0(MigStream, 1);
    s->fd = fd;
    s->writing = writing;
    s->buf = g_malloc(writing ? MIG_WRITE_BUF : MIG_STREAM_BUF);
    if (writing) {
        s->iov = g_new(struct iovec, MIG_SEND_IOV);
    }
    s->crc = 0xffffffffu;
    return s;
}

MigStream *mig_stream_new_writer(int fd)
{
    MigStream *s = mig_stream_new(fd, true);
    MigWriter *w = g_new0(MigWriter, 1);
    w->fd = fd;
    g_mutex_init(&w->lock);
    g_cond_init(&w->cond);
    w->thread = g_thread_new("mig-writer", writer_thread, w);
    s->writer = w;
    s->spare = g_malloc(MIG_WRITE_BUF);
    s->spare_iov = g_new(struct iovec, MIG_SEND_IOV);
    return s;
}

MigStream *mig_stream_new_reader(int fd)
{
    return mig_stream_new(fd, false);
}

MigStream *mig_stream_new_ops(const MigStreamOps *ops, void *opaque, bool writing)
{
    MigStream *s = mig_stream_new(-1, writing);
    s->ops = ops;
    s->ops_opaque = opaque;
    return s;
}

/* read(2)/write(2) on the fd or through the ops (which return -errno: made errno). */
static ssize_t stream_read(MigStream *s, void *buf, size_t len)
{
    if (!s->ops) {
        return read(s->fd, buf, len);
    }
    ssize_t n = s->ops->read(s->ops_opaque, buf, len);
    if (n < 0) {
        errno = (int)-n;
        return -1;
    }
    return n;
}

/*
 * Reads up to len bytes into p and, once p is full, up to tail_len more into tail: one
 * system call fills the caller's memory and brings the next few bytes (a record
 * header) along.  Through the ops (no readv) only p is filled.
 */
static ssize_t stream_read_split(MigStream *s, void *p, size_t len, void *tail,
                                 size_t tail_len)
{
    if (s->ops) {
        return stream_read(s, p, len);
    }
    struct iovec iov[2] = {
        { .iov_base = p, .iov_len = len },
        { .iov_base = tail, .iov_len = tail_len },
    };
    return readv(s->fd, iov, 2);
}

static ssize_t stream_write(MigStream *s, const void *buf, size_t len)
{
    if (!s->ops) {
        return write(s->fd, buf, len);
    }
    ssize_t n = s->ops->write(s->ops_opaque, buf, len);
    if (n < 0) {
        errno = (int)-n;
        return -1;
    }
    return n;
}

void mig_stream_free(MigStream *s)
{
    if (!s) {
        return;
    }
    if (s->writer) {
        /* What is pending but not flushed is dropped, as without the writer. */
        writer_wait(s);
        writer_free(s);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    g_free(s->spare);
    g_free(s->spare_iov);
    g_free(s->iov);
    g_free(s->buf);
    g_free(s->error);
    g_free(s);
}

int mig_stream_fd(const MigStream *s)
{
    return s->fd;
}

void mig_stream_set_rate_limit(MigStream *s, uint64_t bytes_per_sec)
{
    s->rate_limit = bytes_per_sec;
    s->window_start = g_get_monotonic_time();
    s->window_bytes = 0;
}

uint64_t mig_stream_bytes(const MigStream *s)
{
    return s->bytes;
}

void mig_stream_set_error(MigStream *s, const char *fmt, ...)
{
    if (s->error) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    s->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

bool mig_stream_failed(const MigStream *s)
{
    return s->error != NULL || (s->writer && g_atomic_int_get(&s->writer->failed));
}

bool mig_stream_check(const MigStream *s, Error **errp)
{
    if (s->error) {
        error_setg(errp, "%s", s->error);
        return false;
    }
    if (s->writer && g_atomic_int_get(&s->writer->failed)) {
        g_mutex_lock(&s->writer->lock);
        error_setg(errp, "%s", s->writer->error);
        g_mutex_unlock(&s->writer->lock);
        return false;
    }
    return true;
}

/* ---- writing ---- */

/* Sleeps out the rest of the window once its budget is spent. */
static void rate_limit_account(MigStream *s, size_t n)
{
    if (!s->rate_limit) {
        return;
    }
    s->window_bytes += n;
    uint64_t budget = s->rate_limit * RATE_WINDOW_US / G_USEC_PER_SEC;
    int64_t now = g_get_monotonic_time();
    if (now - s->window_start >= RATE_WINDOW_US) {
        s->window_start = now;
        s->window_bytes = 0;
    } else if (s->window_bytes >= budget) {
        /* Until the bytes are due, which may be past the window's end: a buffer larger
         * than the budget (a low limit, or one shared by multifd channels) must not
         * raise the rate to a buffer per window. */
        int64_t due = s->window_start +
                      (int64_t)(s->window_bytes * G_USEC_PER_SEC / s->rate_limit);
        if (due > now) {
            g_usleep(due - now);
        }
        s->window_start = g_get_monotonic_time();
        s->window_bytes = 0;
    }
}

/* Adds buf[seg_start, len) to the iovecs: it goes before what is referenced next. */
static void close_segment(MigStream *s)
{
    if (s->len > s->seg_start) {
        s->iov[s->niov++] = (struct iovec){ s->buf + s->seg_start, s->len - s->seg_start };
        s->iov_bytes += s->len - s->seg_start;
        s->seg_start = s->len;
    }
}

/* Writes iov[0, niov) completely: writev over an fd, one write per piece otherwise. */
static void write_iov(MigStream *s, struct iovec *iov, unsigned niov)
{
    int err = 0;
    if (!s->ops) {
        err = writev_all(s->fd, iov, niov);
    }
    for (unsigned i = 0; s->ops && i < niov && !err; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len) {
            ssize_t n = stream_write(s, p, len);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                err = n < 0 ? errno : EPIPE;
                break;
            }
            p += n;
            len -= (size_t)n;
        }
    }
    if (err) {
        mig_stream_set_error(s, "write to the migration stream failed: %s",
                             g_strerror(err));
    }
}

/*
 * Sends everything pending: the buffer and the data referenced in between.  A full
 * batch goes to the writer thread; one that must be written before this returns (wait:
 * a flush, a checksum) is written here once the writer is idle, which saves two thread
 * switches at every sync point (and in the downtime).
 */
static void flush_buffer(MigStream *s, bool wait)
{
    if (s->writer) {
        writer_wait(s);
    }
    close_segment(s);
    if (s->niov && !s->error) {
        size_t bytes = s->iov_bytes;
        if (s->writer && !wait) {
            writer_submit(s);
        } else {
            write_iov(s, s->iov, s->niov);
        }
        rate_limit_account(s, bytes);
    }
    s->niov = 0;
    s->iov_bytes = 0;
    s->len = s->seg_start = 0;
}

void mig_stream_flush(MigStream *s)
{
    flush_buffer(s, true);
}

/* Copies len bytes into the buffer (into the CRC too when with_crc), sending each
 * buffer that fills. */
static void put_copied(MigStream *s, const uint8_t *p, size_t len, bool with_crc)
{
    s->bytes += len;
    while (len && !s->error) {
        size_t n = MIN(len, MIG_WRITE_BUF - s->len);
        if (with_crc) {
            s->crc = mig_crc32c_copy(s->crc, s->buf + s->len, p, n);
        } else {
            memcpy(s->buf + s->len, p, n);
        }
        s->len += n;
        p += n;
        len -= n;
        if (s->len == MIG_WRITE_BUF) {
            flush_buffer(s, false);
        }
    }
}

void mig_put_buf(MigStream *s, const void *buf, size_t len)
{
    put_copied(s, buf, len, true);
}

void mig_put_data(MigStream *s, const void *data, size_t len)
{
    if (s->error || !len) {
        return;
    }
    if (s->ops) {
        /* No writev behind the ops (savevm, VM stopped): through the buffer. */
        put_copied(s, data, len, false);
        return;
    }
    s->bytes += len;
    close_segment(s);
    s->iov[s->niov++] = (struct iovec){ (void *)data, len };
    s->iov_bytes += len;
    /* Room for the next record: its header segment and its data. */
    if (s->iov_bytes >= MIG_SEND_BATCH || s->niov + 2 > MIG_SEND_IOV) {
        flush_buffer(s, false);
    }
}

void mig_put_u8(MigStream *s, uint8_t v)
{
    mig_put_buf(s, &v, 1);
}

void mig_put_be32(MigStream *s, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    mig_put_buf(s, &v, 4);
}

void mig_put_be64(MigStream *s, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    mig_put_buf(s, &v, 8);
}

void mig_put_checksum(MigStream *s)
{
    uint32_t crc = GUINT32_TO_BE(~s->crc);
    if (s->len + 4 > MIG_WRITE_BUF) {
        flush_buffer(s, false);
    }
    /* Into the buffer without touching the CRC, and sent before this returns. */
    if (!s->error) {
        memcpy(s->buf + s->len, &crc, 4);
        s->len += 4;
    }
    s->bytes += 4;
    flush_buffer(s, true);
}

/* ---- reading ---- */

/*
 * Reads at least one byte into the buffer; false (error set) at EOF or failure.  It
 * reads as much as the socket has, up to max: fewer system calls, and
 * mig_get_chunk() hands page data out of the buffer without another copy.
 */
static bool fill(MigStream *s, size_t max)
{
    if (s->error) {
        return false;
    }
    s->len = s->pos = 0;
    for (;;) {
        ssize_t n = stream_read(s, s->buf, max);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            mig_stream_set_error(s, "read from the migration stream failed: %s",
                                 g_strerror(errno));
            return false;
        }
        if (n == 0) {
            mig_stream_set_error(s, "the migration stream ended early (truncated after "
                                 "%" G_GUINT64_FORMAT " bytes)", s->bytes);
            return false;
        }
        s->len = n;
        return true;
    }
}

/* Reads of at least this much go straight into the caller's memory when the buffer is
 * empty (no copy through the buffer). */
#define MIG_READ_DIRECT (64 * 1024)
/*
 * What such a read brings into the buffer past the caller's bytes.  Small on purpose:
 * enough for the next record's header (and the device/END records), while the next
 * record's page data is left in the socket for its own direct read.  A full buffer here
 * would pull almost all of the next record through the buffer and cost every page a
 * second copy; that is what made a busy destination slower still.
 */
#define MIG_READ_AHEAD 4096

/*
 * Touches every page of [p, p + len), which the read is about to overwrite anyway, so
 * that first-touch faults on fresh memory (a destination's guest RAM: zeroing a huge
 * page each) are taken here and not inside the read, where the socket is locked and
 * incoming segments and window updates wait behind the fault.
 */
static void prefault(uint8_t *p, size_t len)
{
    for (size_t off = 0; off < len; off += 4096) {
        ((volatile uint8_t *)p)[off] = 0;
    }
    if (len) {
        ((volatile uint8_t *)p)[len - 1] = 0;
    }
}

/* Copies len bytes, adding them to *crc unless it is NULL (while copying them out of
 * the buffer: one pass over the bytes instead of two). */
static void get_raw(MigStream *s, uint8_t *p, size_t len, uint32_t *crc)
{
    while (len && !s->error) {
        if (s->pos == s->len) {
            if (len >= MIG_READ_DIRECT) {
                /* Large: straight into the destination, the next header into buf. */
                s->len = s->pos = 0;
                prefault(p, len);
                ssize_t n = stream_read_split(s, p, len, s->buf, MIG_READ_AHEAD);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n < 0) {
                    mig_stream_set_error(s, "read from the migration stream failed: %s",
                                         g_strerror(errno));
                } else if (n == 0) {
                    mig_stream_set_error(s, "the migration stream ended early (truncated "
                                         "after %" G_GUINT64_FORMAT " bytes)", s->bytes);
                } else {
                    size_t mine = MIN((size_t)n, len);
                    if (crc) {
                        *crc = mig_crc32c(*crc, p, mine);
                    }
                    p += mine;
                    len -= mine;
                    s->bytes += mine;
                    s->len = (size_t)n - mine; /* read ahead: consumed from buf later */
                }
                continue;
            }
            /* A header or small record: read only a little past it.  Filling the whole
             * buffer here would pull the next record's page data through it (a second
             * copy), and every record after it too, each one's rest being short. */
            if (!fill(s, MIN((size_t)MIG_STREAM_BUF, MAX(len, (size_t)MIG_READ_AHEAD)))) {
                break;
            }
        }
        size_t n = MIN(len, s->len - s->pos);
        if (crc) {
            *crc = mig_crc32c_copy(*crc, p, s->buf + s->pos, n);
        } else {
            memcpy(p, s->buf + s->pos, n);
        }
        s->pos += n;
        s->bytes += n;
        p += n;
        len -= n;
    }
    if (len) {
        memset(p, 0, len);
    }
}

void mig_get_buf(MigStream *s, void *buf, size_t len)
{
    get_raw(s, buf, len, &s->crc);
}

void mig_get_data(MigStream *s, void *buf, size_t len)
{
    get_raw(s, buf, len, NULL);
}

size_t mig_get_chunk(MigStream *s, const void **p, size_t max)
{
    *p = NULL;
    if (!max || (s->pos == s->len && !fill(s, MIG_STREAM_BUF))) {
        return 0;
    }
    size_t n = MIN(max, s->len - s->pos);
    *p = s->buf + s->pos;
    s->pos += n;
    s->bytes += n;
    return n;
}

uint8_t mig_get_u8(MigStream *s)
{
    uint8_t v;
    mig_get_buf(s, &v, 1);
    return v;
}

uint32_t mig_get_be32(MigStream *s)
{
    uint32_t v;
    mig_get_buf(s, &v, 4);
    return GUINT32_FROM_BE(v);
}

uint64_t mig_get_be64(MigStream *s)
{
    uint64_t v;
    mig_get_buf(s, &v, 8);
    return GUINT64_FROM_BE(v);
}

bool mig_get_checksum_ok(MigStream *s)
{
    uint32_t expect = ~s->crc;
    uint32_t v;
    get_raw(s, (uint8_t *)&v, 4, NULL);
    if (s->error) {
        return false;
    }
    if (GUINT32_FROM_BE(v) != expect) {
        mig_stream_set_error(s, "the migration stream is corrupt (checksum 0x%08x, computed "
                             "0x%08x)", GUINT32_FROM_BE(v), expect);
        return false;
    }
    return true;
}
