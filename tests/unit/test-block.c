/*
 * Block layer core: raw on file-posix through BlockBackend, checked against the host file
 * with plain syscalls; O_DIRECT with unaligned buffers; libaio and worker-pool paths with
 * many requests in flight; probing and the probed-raw protection; option errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib.h>
#include "sen/block.h"
#include "block/block-internal.h"
#include "sen/config.h"
#include "sen/device.h"
#include "sen/machine.h"

#define IMG_SIZE (4 * 1024 * 1024)

typedef struct Fixture {
    char *dir;
    char *path;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("sen-test-block-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->path = g_build_filename(f->dir, "disk.img", NULL);

    /* A non-sparse image with a known pattern: byte i is (i * 7 + i / 4096) & 0xff. */
    g_autofree uint8_t *buf = g_malloc(IMG_SIZE);
    for (size_t i = 0; i < IMG_SIZE; i++) {
        buf[i] = (i * 7 + i / 4096) & 0xff;
    }
    g_assert_true(g_file_set_contents(f->path, (char *)buf, IMG_SIZE, NULL));
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static uint8_t pattern(size_t i)
{
    return (i * 7 + i / 4096) & 0xff;
}

/* What the host file holds at [off, off+len). */
static uint8_t *host_read(Fixture *f, off_t off, size_t len)
{
    uint8_t *buf = g_malloc0(len);
    int fd = open(f->path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, off), ==, (ssize_t)len);
    close(fd);
    return buf;
}

static int64_t host_blocks(Fixture *f)
{
    struct stat st;
    g_assert_cmpint(stat(f->path, &st), ==, 0);
    return st.st_blocks;
}

static Keyval *opts_of(const char *str)
{
    Keyval *kv = block_keyval_new();
    g_auto(GStrv) parts = g_strsplit(str, ",", -1);

    for (int i = 0; parts[i] && *parts[i]; i++) {
        g_auto(GStrv) kvp = g_strsplit(parts[i], "=", 2);
        block_keyval_add(kv, kvp[0], kvp[1]);
    }
    return kv;
}

static BlockBackend *open_blk(Fixture *f, const char *opts, const char *format, int flags,
                              bool write_cache)
{
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(f->path, opts ? opts_of(opts) : NULL, format, flags,
                                     &err);
    if (!bs) {
        g_error("open %s (%s): %s", f->path, opts, error_get_pretty(err));
    }
    return blk_new("drive0", bs, write_cache);
}

/* Opening must fail with a message containing every string of want. */
static void expect_open_error(const char *path, const char *opts, const char *format,
                              const char *want1, const char *want2)
{
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(path, opts ? opts_of(opts) : NULL, format, BDRV_O_RDWR,
                                     &err);
    g_assert_null(bs);
    g_assert_nonnull(err);
    const char *msg = error_get_pretty(err);
    if (!strstr(msg, want1) || (want2 && !strstr(msg, want2))) {
        g_error("error '%s' lacks '%s' / '%s'", msg, want1, want2 ? want2 : "");
    }
    error_free(err);
}

static void test_raw_rw(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, NULL, "raw", BDRV_O_RDWR, true);
    char msg[] = "hello, disk";
    char back[sizeof(msg)];
    BlockAcctStats st;

    g_assert_cmpint(blk_getlength(blk), ==, IMG_SIZE);
    g_assert_cmpint(blk_pwrite(blk, 5000, sizeof(msg), msg), ==, 0);
    g_assert_cmpint(blk_pread(blk, 5000, sizeof(back), back), ==, 0);
    g_assert_cmpstr(back, ==, msg);
    g_assert_cmpint(blk_flush(blk), ==, 0);

    g_autofree uint8_t *host = host_read(f, 4990, 40);
    g_assert_cmpint(host[9], ==, pattern(4999));
    g_assert_cmpmem(host + 10, sizeof(msg), msg, sizeof(msg));
    g_assert_cmpint(host[10 + sizeof(msg)], ==, pattern(5000 + sizeof(msg)));

    /* Beyond the end: refused, counted as invalid, file untouched. */
    g_assert_cmpint(blk_pwrite(blk, IMG_SIZE - 4, 8, "12345678"), ==, -EIO);
    g_assert_cmpint(blk_pread(blk, -1, 1, back), ==, -EIO);
    blk_get_stats(blk, &st);
    g_assert_cmpuint(st.wr_operations, ==, 1);
    g_assert_cmpuint(st.wr_bytes, ==, sizeof(msg));
    g_assert_cmpuint(st.rd_operations, ==, 1);
    g_assert_cmpuint(st.flush_operations, ==, 1);
    g_assert_cmpuint(st.invalid_wr_operations, ==, 1);
    g_assert_cmpuint(st.invalid_rd_operations, ==, 1);
    g_assert_cmpint(st.wr_highest_offset, ==, 5000 + sizeof(msg));
    blk_unref(blk);

    struct stat sb;
    g_assert_cmpint(stat(f->path, &sb), ==, 0);
    g_assert_cmpint(sb.st_size, ==, IMG_SIZE);
}

static void test_discard_and_zeroes(Fixture *f, gconstpointer data)
{
    /* Without discard=unmap a discard is accepted and changes nothing. */
    BlockBackend *blk = open_blk(f, NULL, "raw", BDRV_O_RDWR, true);
    g_assert_cmpint(blk_pdiscard(blk, 65536, 65536), ==, 0);
    g_autofree uint8_t *kept = host_read(f, 65536, 16);
    g_assert_cmpint(kept[3], ==, pattern(65539));
    blk_unref(blk);

    blk = open_blk(f, "discard=unmap", "raw", BDRV_O_RDWR, true);
    int64_t before = host_blocks(f);
    g_assert_cmpint(blk_pdiscard(blk, 1024 * 1024, 1024 * 1024), ==, 0);
    g_assert_cmpint(host_blocks(f), <, before);
    g_autofree uint8_t *hole = host_read(f, 1024 * 1024, 1024 * 1024);
    g_assert_true(memchr(hole, 1, 1024 * 1024) == NULL);
    for (size_t i = 0; i < 1024 * 1024; i++) {
        g_assert_cmpint(hole[i], ==, 0);
    }

    /* write_zeroes, plain and unmapping, with unaligned edges. */
    g_assert_cmpint(blk_pwrite_zeroes(blk, 100, 1000, 0), ==, 0);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 3 * 1024 * 1024 + 10, 200000,
                                      BDRV_REQ_MAY_UNMAP), ==, 0);
    g_autofree uint8_t *z1 = host_read(f, 99, 1002);
    g_assert_cmpint(z1[0], ==, pattern(99));
    g_assert_cmpint(z1[1001], ==, pattern(1100));
    for (int i = 1; i <= 1000; i++) {
        g_assert_cmpint(z1[i], ==, 0);
    }
    g_autofree uint8_t *z2 = host_read(f, 3 * 1024 * 1024 + 9, 200002);
    g_assert_cmpint(z2[0], ==, pattern(3 * 1024 * 1024 + 9));
    g_assert_cmpint(z2[200001], ==, pattern(3 * 1024 * 1024 + 200010));
    for (int i = 1; i <= 200000; i++) {
        g_assert_cmpint(z2[i], ==, 0);
    }
    blk_unref(blk);
}

static void test_detect_zeroes(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "discard=unmap,detect-zeroes=unmap", "raw",
                                 BDRV_O_RDWR, true);
    g_autofree uint8_t *zero = g_malloc0(1024 * 1024);
    int64_t before = host_blocks(f);

    g_assert_cmpint(blk_pwrite(blk, 0, 1024 * 1024, zero), ==, 0);
    /* Turned into an unmapping write_zeroes: the range became a hole. */
    g_assert_cmpint(host_blocks(f), <, before);
    g_autofree uint8_t *host = host_read(f, 0, 1024 * 1024);
    g_assert_cmpmem(host, 1024 * 1024, zero, 1024 * 1024);
    BlockAcctStats st;
    blk_get_stats(blk, &st);
    g_assert_cmpuint(st.wr_operations, ==, 1);
    blk_unref(blk);
}

static void test_direct_unaligned(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "cache.direct=on", "raw", BDRV_O_RDWR, false);
    g_autofree uint8_t *raw = g_malloc(70000);
    uint8_t *buf = raw + 3; /* deliberately misaligned guest buffer */

    if (blk_bs(blk)->file->request_alignment <= 1) {
        g_test_skip("O_DIRECT alignment not detected on this file system");
        blk_unref(blk);
        return;
    }
    for (int i = 0; i < 60000; i++) {
        buf[i] = i % 251;
    }
    /* Unaligned offset, length and buffer; two requests sharing a block at each end. */
    g_assert_cmpint(blk_pwrite(blk, 1001, 60000, buf), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 500, 501, buf + 1000), ==, 0);
    g_autofree uint8_t *host = host_read(f, 0, 65536);
    g_assert_cmpint(host[499], ==, pattern(499));
    g_assert_cmpmem(host + 500, 501, buf + 1000, 501);
    g_assert_cmpmem(host + 1001, 60000, buf, 60000);
    g_assert_cmpint(host[61001], ==, pattern(61001));

    memset(raw, 0, 70000);
    g_assert_cmpint(blk_pread(blk, 777, 61000, raw + 1), ==, 0);
    g_assert_cmpmem(raw + 1, 61000, host + 777, 61000);

    /* Request past the old end of the raw node is refused; the file keeps its size. */
    struct stat sb;
    g_assert_cmpint(stat(f->path, &sb), ==, 0);
    g_assert_cmpint(sb.st_size, ==, IMG_SIZE);
    blk_unref(blk);
}

/* ---- many requests in flight ---- */

typedef struct AioCounter {
    int pending;
    int errors;
} AioCounter;

static void aio_done(void *opaque, int ret)
{
    AioCounter *c = opaque;
    c->pending--;
    if (ret < 0) {
        c->errors++;
    }
}

static void wait_all(AioCounter *c)
{
    while (c->pending > 0) {
        g_main_context_iteration(NULL, true);
    }
}

static void run_many(Fixture *f, const char *opts, int nreq, size_t len, bool aligned)
{
    BlockBackend *blk = open_blk(f, opts, "raw", BDRV_O_RDWR, true);
    uint8_t **bufs = g_new0(uint8_t *, nreq);
    struct iovec *iov = g_new0(struct iovec, nreq * 2);
    AioCounter c = { 0 };
    size_t stride = IMG_SIZE / nreq;

    for (int i = 0; i < nreq; i++) {
        g_assert_cmpint(posix_memalign((void **)&bufs[i], 4096, len + 4096), ==, 0);
        uint8_t *p = bufs[i] + (aligned ? 0 : 1);
        for (size_t j = 0; j < len; j++) {
            p[j] = (uint8_t)(i * 31 + j);
        }
        /* Two iovec pieces per request, as a device's scatter-gather list. */
        iov[2 * i] = (struct iovec){ p, len / 2 };
        iov[2 * i + 1] = (struct iovec){ p + len / 2, len - len / 2 };
        c.pending++;
        blk_aio_pwritev(blk, i * stride + (aligned ? 0 : 3), &iov[2 * i], 2, 0, aio_done,
                        &c);
    }
    g_assert_cmpint(c.pending, ==, nreq); /* never completed inside the call */
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);
    c.pending = 1;
    blk_aio_flush(blk, aio_done, &c);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);

    for (int i = 0; i < nreq; i++) {
        g_autofree uint8_t *host = host_read(f, i * stride + (aligned ? 0 : 3), len);
        g_assert_cmpmem(host, len, bufs[i] + (aligned ? 0 : 1), len);
        memset(bufs[i], 0, len + 4096);
    }
    for (int i = 0; i < nreq; i++) {
        c.pending++;
        blk_aio_preadv(blk, i * stride + (aligned ? 0 : 3), &iov[2 * i], 2, 0, aio_done, &c);
    }
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);
    for (int i = 0; i < nreq; i++) {
        uint8_t *p = bufs[i] + (aligned ? 0 : 1);
        for (size_t j = 0; j < len; j++) {
            g_assert_cmpint(p[j], ==, (uint8_t)(i * 31 + j));
        }
    }

    /* Out of range and read-only errors arrive through the callback too. */
    c.pending = 1;
    blk_aio_preadv(blk, IMG_SIZE, &iov[0], 1, 0, aio_done, &c);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 1);

    BlockAcctStats st;
    blk_get_stats(blk, &st);
    g_assert_cmpuint(st.wr_operations, ==, nreq);
    g_assert_cmpuint(st.rd_operations, ==, nreq);
    g_assert_cmpuint(st.invalid_rd_operations, ==, 1);
    blk_unref(blk);
    for (int i = 0; i < nreq; i++) {
        free(bufs[i]);
    }
    g_free(bufs);
    g_free(iov);
}

static void test_aio_native(Fixture *f, gconstpointer data)
{
    run_many(f, "cache.direct=on,aio=native", 64, 65536, true);
}

/* More completions than one reap takes at a time (64): every one must still arrive. */
static void test_aio_native_many(Fixture *f, gconstpointer data)
{
    run_many(f, "cache.direct=on,aio=native", 128, 8192, true);
}

static void test_aio_native_unaligned(Fixture *f, gconstpointer data)
{
    run_many(f, "cache.direct=on,aio=native", 32, 5000, false);
}

/*
 * Plugged aio=native requests reach the kernel together at the last unplug: one io_submit
 * for a batch, a full batch (32) at once, nested plugs submit at the outer unplug; none
 * completes inside a call, and every one lands.
 */
static void test_aio_native_plug(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "cache.direct=on,aio=native", "raw", BDRV_O_RDWR, true);
    BlockDriverState *file = blk_bs(blk)->file;
    enum { N = 40, LEN = 4096 };
    g_autofree uint8_t *buf = NULL;
    struct iovec iov[N];
    AioCounter c = { 0 };

    g_assert_cmpint(posix_memalign((void **)&buf, 4096, N * LEN), ==, 0);
    for (int i = 0; i < N; i++) {
        memset(buf + i * LEN, 0x40 + i, LEN);
        iov[i] = (struct iovec){ buf + i * LEN, LEN };
    }
    unsigned calls = file_posix_aio_submit_calls(file);
    blk_io_plug(blk);
    blk_io_plug(blk);
    for (int i = 0; i < N; i++) {
        c.pending++;
        blk_aio_pwritev(blk, i * 2 * LEN, &iov[i], 1, 0, aio_done, &c);
    }
    /* The first 32 went as one batch; the other 8 wait for the outer unplug. */
    g_assert_cmpuint(file_posix_aio_submit_calls(file), ==, calls + 1);
    blk_io_unplug(blk);
    g_assert_cmpuint(file_posix_aio_submit_calls(file), ==, calls + 1);
    g_assert_cmpint(c.pending, ==, N);
    blk_io_unplug(blk);
    g_assert_cmpuint(file_posix_aio_submit_calls(file), ==, calls + 2);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);
    for (int i = 0; i < N; i++) {
        g_autofree uint8_t *host = host_read(f, i * 2 * LEN, LEN);
        g_assert_cmpmem(host, LEN, buf + i * LEN, LEN);
    }

    /* Reads of adjacent blocks: one call for the batch, each gets its own bytes. */
    memset(buf, 0, N * LEN);
    calls = file_posix_aio_submit_calls(file);
    blk_io_plug(blk);
    for (int i = 0; i < 8; i++) {
        c.pending++;
        blk_aio_preadv(blk, (i + 600) * LEN, &iov[i], 1, 0, aio_done, &c);
    }
    g_assert_cmpuint(file_posix_aio_submit_calls(file), ==, calls);
    blk_io_unplug(blk);
    g_assert_cmpuint(file_posix_aio_submit_calls(file), ==, calls + 1);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);
    for (int i = 0; i < 8; i++) {
        for (size_t j = 0; j < LEN; j++) {
            g_assert_cmpint(buf[i * LEN + j], ==, pattern((i + 600) * LEN + j));
        }
    }
    /* Unplugged, each request goes at once. */
    calls = file_posix_aio_submit_calls(file);
    c.pending++;
    blk_aio_preadv(blk, 0, &iov[0], 1, 0, aio_done, &c);
    g_assert_cmpuint(file_posix_aio_submit_calls(file), ==, calls + 1);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);
    blk_unref(blk);
}

static void test_aio_threads(Fixture *f, gconstpointer data)
{
    run_many(f, "aio=threads", 128, 20000, false);
}

static void test_aio_writethrough(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "cache.direct=on", "raw", BDRV_O_RDWR, false);
    AioCounter c = { 0 };
    g_autofree uint8_t *buf = g_malloc(4096);
    struct iovec iov = { buf, 4096 };

    memset(buf, 0x5a, 4096);
    g_assert_false(blk_enable_write_cache(blk));
    for (int i = 0; i < 8; i++) {
        c.pending++;
        blk_aio_pwritev(blk, i * 8192, &iov, 1, 0, aio_done, &c);
    }
    blk_drain(blk);
    g_assert_cmpint(c.pending, ==, 0);
    g_assert_cmpint(c.errors, ==, 0);
    g_autofree uint8_t *host = host_read(f, 7 * 8192, 4096);
    g_assert_cmpmem(host, 4096, buf, 4096);
    blk_unref(blk);
}

/* Closing a backend with requests in flight waits for them: every callback runs first. */
static void test_unref_drains(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "cache.direct=on,aio=native", "raw", BDRV_O_RDWR, true);
    g_autofree uint8_t *buf = NULL;
    AioCounter c = { 0 };
    struct iovec iov;

    g_assert_cmpint(posix_memalign((void **)&buf, 4096, 65536), ==, 0);
    memset(buf, 0x77, 65536);
    iov = (struct iovec){ buf, 65536 };
    for (int i = 0; i < 48; i++) {
        c.pending++;
        if (i % 3 == 2) {
            blk_aio_flush(blk, aio_done, &c);
        } else {
            blk_aio_pwritev(blk, i * 65536, &iov, 1, 0, aio_done, &c);
        }
    }
    blk_unref(blk);
    g_assert_cmpint(c.pending, ==, 0);
    g_assert_cmpint(c.errors, ==, 0);
    g_autofree uint8_t *host = host_read(f, 46 * 65536, 65536);
    g_assert_cmpmem(host, 65536, buf, 65536);
}

/* Completions run in the backend's context: here an I/O thread's own loop. */
typedef struct IoThread {
    GMainContext *ctx;
    GMainLoop *loop;
    GThread *thread;
    AioCounter c;
    GMutex lock;
    GCond cond;
    bool wrong_thread;
} IoThread;

static gpointer iothread_run(gpointer opaque)
{
    IoThread *t = opaque;
    g_main_context_push_thread_default(t->ctx);
    g_main_loop_run(t->loop);
    g_main_context_pop_thread_default(t->ctx);
    return NULL;
}

static void iothread_done(void *opaque, int ret)
{
    IoThread *t = opaque;

    g_mutex_lock(&t->lock);
    if (g_thread_self() != t->thread) {
        t->wrong_thread = true;
    }
    t->c.pending--;
    t->c.errors += ret < 0;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);
}

static void test_iothread_context(Fixture *f, gconstpointer data)
{
    const char *modes[] = { "cache.direct=on,aio=native", "aio=threads" };

    for (size_t m = 0; m < G_N_ELEMENTS(modes); m++) {
        BlockBackend *blk = open_blk(f, modes[m], "raw", BDRV_O_RDWR, false);
        IoThread t = { 0 };
        g_autofree uint8_t *buf = NULL;
        struct iovec iov;

        g_assert_cmpint(posix_memalign((void **)&buf, 4096, 8192), ==, 0);
        memset(buf, 0x3c, 8192);
        iov = (struct iovec){ buf, 8192 };
        g_mutex_init(&t.lock);
        g_cond_init(&t.cond);
        t.ctx = g_main_context_new();
        t.loop = g_main_loop_new(t.ctx, false);
        blk_set_context(blk, t.ctx);
        t.thread = g_thread_new("iothread", iothread_run, &t);

        g_mutex_lock(&t.lock);
        for (int i = 0; i < 32; i++) {
            t.c.pending++;
            blk_aio_pwritev(blk, i * 8192, &iov, 1, 0, iothread_done, &t);
        }
        while (t.c.pending) {
            g_cond_wait(&t.cond, &t.lock);
        }
        g_mutex_unlock(&t.lock);
        g_assert_false(t.wrong_thread);
        g_assert_cmpint(t.c.errors, ==, 0);

        g_main_loop_quit(t.loop);
        g_main_context_wakeup(t.ctx);
        g_thread_join(t.thread);
        blk_set_context(blk, NULL);
        blk_unref(blk);
        g_main_loop_unref(t.loop);
        g_main_context_unref(t.ctx);
        g_mutex_clear(&t.lock);
        g_cond_clear(&t.cond);
        g_autofree uint8_t *host = host_read(f, 31 * 8192, 8192);
        g_assert_cmpmem(host, 8192, buf, 8192);
    }
}

/* ---- probing, read-only, options ---- */

static void test_probe_raw(Fixture *f, gconstpointer data)
{
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(f->path, NULL, NULL, 0, &err);

    g_assert_nonnull(bs);
    g_assert_cmpstr(bs->drv->format_name, ==, "raw");
    g_assert_true(bs->probed);
    g_assert_true(bs->read_only);
    bdrv_unref(bs);

    /* A probed raw image accepts ordinary writes to sector 0 ... */
    BlockBackend *blk = open_blk(f, NULL, NULL, BDRV_O_RDWR, true);
    uint8_t sector[512];
    memset(sector, 0xab, sizeof(sector));
    g_assert_true(blk_bs(blk)->probed);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, sector), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 10, 4, "abcd"), ==, 0);

    /* ... but never one that would make it probe as another format next time. */
    if (!bdrv_find_format("qcow2")) {
        blk_unref(blk);
        g_test_skip("no qcow2 driver to probe as: the refusal itself is not exercised");
        return;
    }
    uint8_t qcow[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
    g_assert_cmpint(blk_pwrite(blk, 0, 512, qcow), ==, -EPERM);
    g_assert_cmpint(blk_pwrite(blk, 0, 8, qcow), ==, -EPERM); /* partial sector too */
    AioCounter c = { 1, 0 };
    struct iovec iov = { qcow, 512 };
    blk_aio_pwritev(blk, 0, &iov, 1, 0, aio_done, &c);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 1);
    g_autofree uint8_t *host = host_read(f, 0, 4);
    g_assert_cmpint(host[0], ==, 0xab);
    blk_unref(blk);

    /* With format=raw given explicitly the guest may write anything. */
    blk = open_blk(f, NULL, "raw", BDRV_O_RDWR, true);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, qcow), ==, 0);
    blk_unref(blk);
}

static void test_read_only(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "read-only=on", "raw", BDRV_O_RDWR, true);
    g_autofree uint8_t *buf = g_malloc0(4096);
    AioCounter c = { 1, 0 };
    struct iovec iov = { buf, 4096 };

    g_assert_true(blk_is_read_only(blk));
    g_assert_cmpint(blk_pwrite(blk, 0, 4096, buf), ==, -EPERM);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 0, 4096, 0), ==, -EPERM);
    g_assert_cmpint(blk_pdiscard(blk, 0, 4096), ==, -EPERM);
    blk_aio_pwritev(blk, 0, &iov, 1, 0, aio_done, &c);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 1);
    g_assert_cmpint(blk_pread(blk, 0, 4096, buf), ==, 0);
    g_assert_cmpint(buf[1], ==, pattern(1));
    g_assert_cmpint(blk_flush(blk), ==, 0);
    blk_unref(blk);

    /* A file we may not write: read-only works, read-write fails naming it. */
    g_assert_cmpint(chmod(f->path, 0444), ==, 0);
    if (access(f->path, W_OK) == 0) {
        g_test_message("running as root: permission check skipped");
        return;
    }
    expect_open_error(f->path, NULL, "raw", "Could not open", f->path);
}

static void test_raw_window(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, "offset=4096,size=8192", "raw", BDRV_O_RDWR, true);

    g_assert_cmpint(blk_getlength(blk), ==, 8192);
    g_assert_cmpint(blk_pwrite(blk, 0, 4, "WXYZ"), ==, 0);
    AioCounter c = { 1, 0 };
    struct iovec iov = { "abcd", 4 };
    blk_aio_pwritev(blk, 100, &iov, 1, 0, aio_done, &c);
    wait_all(&c);
    g_assert_cmpint(c.errors, ==, 0);
    BlockAcctStats st;
    blk_get_stats(blk, &st);
    g_assert_cmpint(st.wr_highest_offset, ==, 104); /* guest offsets, not the file's */
    g_autofree uint8_t *host2 = host_read(f, 4096 + 100, 4);
    g_assert_cmpmem(host2, 4, "abcd", 4);
    g_assert_cmpint(blk_pwrite(blk, 8190, 4, "WXYZ"), ==, -EIO);
    g_autofree uint8_t *host = host_read(f, 4096, 4);
    g_assert_cmpmem(host, 4, "WXYZ", 4);
    Error *err = NULL;
    g_assert_false(bdrv_truncate(blk_bs(blk), 16384, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "fixed-size"));
    error_free(err);
    blk_unref(blk);
}

static void test_truncate_and_status(Fixture *f, gconstpointer data)
{
    BlockBackend *blk = open_blk(f, NULL, "raw", BDRV_O_RDWR, true);
    Error *err = NULL;
    int64_t pnum;

    g_assert_true(bdrv_truncate(blk_bs(blk), IMG_SIZE * 2, false, &err));
    g_assert_cmpint(blk_getlength(blk), ==, IMG_SIZE * 2);
    int ret = bdrv_block_status(blk_bs(blk), IMG_SIZE, IMG_SIZE, &pnum, NULL, NULL);
    g_assert_cmpint(ret, >=, 0);
    g_assert_true(ret & BDRV_BLOCK_ZERO);
    ret = bdrv_block_status(blk_bs(blk), 0, IMG_SIZE, &pnum, NULL, NULL);
    g_assert_true(ret & BDRV_BLOCK_DATA);
    g_assert_false(bdrv_truncate(blk_bs(blk), 4096, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "shrink"));
    error_free(err);
    err = NULL;
    g_assert_true(bdrv_truncate(blk_bs(blk), 4096, true, &err));
    blk_unref(blk);
    struct stat sb;
    g_assert_cmpint(stat(f->path, &sb), ==, 0);
    g_assert_cmpint(sb.st_size, ==, 4096);
}

static void test_bad_options(Fixture *f, gconstpointer data)
{
    expect_open_error("/nonexistent/sen.img", NULL, "raw", "Could not open",
                      "/nonexistent/sen.img");
    expect_open_error("/nonexistent/sen.img", NULL, NULL, "No such file", NULL);
    expect_open_error(f->path, NULL, "qcow9", "unknown format 'qcow9'", f->path);
    expect_open_error(f->path, "foo=1", "raw", "invalid parameter 'foo'", f->path);
    expect_open_error(f->path, "cache.direct=maybe", "raw", "cache.direct", "maybe");
    expect_open_error(f->path, "aio=fast", "raw", "aio=fast", NULL);
    expect_open_error(f->path, "aio=native", "raw", "aio=native", "cache.direct=on");
    expect_open_error(f->path, "discard=sometimes", "raw", "discard=sometimes", NULL);
    expect_open_error(f->path, "detect-zeroes=unmap", "raw", "detect-zeroes=unmap",
                      "discard=unmap");
    expect_open_error(f->path, "offset=8M", "raw", "offset", "beyond");
    expect_open_error(f->path, "size=1000", "raw", "size=1000", "512");
    expect_open_error(f->path, "file.bogus=1", "raw", "invalid parameter 'bogus'", NULL);
}

static void test_bad_options_protocol_ok(Fixture *f, gconstpointer data)
{
    /* Opening the protocol alone works and reports the file's size. */
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(f->path, NULL, "file", 0, &err);
    g_assert_nonnull(bs);
    g_assert_cmpint(bdrv_getlength(bs), ==, IMG_SIZE);
    bdrv_unref(bs);
}

/* JSON node options flatten to the dotted keys bdrv_open reads; bad JSON is refused. */
static void test_keyval_from_json(Fixture *f, gconstpointer data)
{
    Error *err = NULL;
    g_autoptr(Keyval) kv = block_keyval_from_json(
        "{\"driver\": \"raw\", \"read-only\": true, \"size\": 4096, "
        "\"file\": {\"driver\": \"file\", \"filename\": \"a,b\", "
        "\"cache\": {\"direct\": false}}}", "test", &err);
    g_assert_nonnull(kv);
    g_assert_cmpstr(keyval_get(kv, "driver"), ==, "raw");
    g_assert_cmpstr(keyval_get(kv, "read-only"), ==, "on");
    g_assert_cmpstr(keyval_get(kv, "size"), ==, "4096");
    g_assert_cmpstr(keyval_get(kv, "file.filename"), ==, "a,b");
    g_assert_cmpstr(keyval_get(kv, "file.cache.direct"), ==, "off");
    static const struct {
        const char *json, *want;
    } bad[] = {
        { "{\"driver\": ", "test: JSON parse error" },
        { "[\"raw\"]", "test: the JSON form must be an object" },
        { "{\"file\": {\"x\": [1]}}", "test: 'file.x': expected a string" },
        { "{\"x\": null}", "test: 'x': expected" },
        { "{\"x\": 1.5}", "test: 'x': expected" },
        { "{\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\"}, \"driver\": \"raw\"}",
          "test: JSON parse error: duplicate object key" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_null(block_keyval_from_json(bad[i].json, "test", &err));
        g_assert_nonnull(err);
        if (!g_str_has_prefix(error_get_pretty(err), bad[i].want)) {
            g_error("%s: '%s' lacks '%s'", bad[i].json, error_get_pretty(err), bad[i].want);
        }
        g_clear_pointer(&err, error_free);
    }
}

/* json:{...} names open the node they describe; explicit options win; errors name them. */
static void test_json_filename(Fixture *f, gconstpointer data)
{
    Error *err = NULL;
    g_autofree char *name = g_strdup_printf(
        "json:{\"driver\": \"raw\", \"offset\": 512, "
        "\"file\": {\"filename\": \"%s\"}}", f->path);
    BlockDriverState *bs = bdrv_open(name, opts_of("size=1024"), NULL, 0, &err);
    if (!bs) {
        g_error("open %s: %s", name, error_get_pretty(err));
    }
    g_assert_cmpstr(bs->drv->format_name, ==, "raw");
    g_assert_cmpstr(bs->filename, ==, f->path);
    g_assert_cmpint(bdrv_getlength(bs), ==, 1024);
    g_assert_true(bs->read_only);
    bdrv_unref(bs);

    g_autofree char *bogus = g_strdup_printf(
        "json:{\"driver\": \"raw\", \"bogus\": 1, "
        "\"file\": {\"filename\": \"%s\"}}", f->path);
    expect_open_error(bogus, NULL, NULL, "invalid parameter 'bogus'", bogus);
    expect_open_error("json:{\"driver\": ", NULL, NULL, "JSON parse error",
                      "'json:{\"driver\": '");
    expect_open_error("json:{\"driver\": \"raw\", "
                      "\"file\": {\"filename\": \"/nonexistent\"}}",
                      NULL, NULL, "Could not open '/nonexistent'", "json:{");
    expect_open_error(name, NULL, "qcow2", "driver=raw conflicts with format=qcow2", NULL);
}

/* -drive / -blockdev from the command line to backends, without a VM. */
static void test_machine_drives(Fixture *f, gconstpointer data)
{
    g_autofree char *drive = g_strdup_printf("file=%s,if=none,id=d0,format=raw,cache=none",
                                             f->path);
    g_autofree char *bd1 = g_strdup_printf("{\"driver\": \"file\", \"node-name\": \"f1\", "
                                           "\"filename\": \"%s\", \"read-only\": true}",
                                           f->path);
    char *argv[] = { "sen", "-drive", drive, "-blockdev", bd1, "-blockdev",
                     "driver=raw,node-name=r1,file=f1,read-only=on", NULL };
    bool exit_early = false;
    Error *err = NULL;
    MachineConfig *cfg = cmdline_parse(G_N_ELEMENTS(argv) - 1, argv, &exit_early, &err);

    if (!cfg) {
        g_error("cmdline: %s", error_get_pretty(err));
    }
    g_assert_cmpint(cfg->drives->len, ==, 3);
    Machine *m = g_new0(Machine, 1);
    m->cfg = cfg;
    if (!block_init_drives(m, &err)) {
        g_error("block_init_drives: %s", error_get_pretty(err));
    }
    BlockBackend *d0 = block_find_backend(m, "d0");
    g_assert_nonnull(d0);
    g_assert_true(blk_enable_write_cache(d0));
    g_assert_true(blk_bs(d0)->file->open_flags & BDRV_O_NOCACHE);
    g_assert_cmpint(blk_getlength(d0), ==, IMG_SIZE);
    BlockBackend *r1 = block_find_backend(m, "r1");
    g_assert_nonnull(r1);
    g_assert_true(blk_is_read_only(r1));
    g_assert_true(blk_bs(r1)->file == blk_bs(block_find_backend(m, "f1")));
    g_assert_null(block_find_backend(m, "nope"));
    char buf[8];
    g_assert_cmpint(blk_pread(r1, 4096, 8, buf), ==, 0);
    g_assert_cmpint((uint8_t)buf[0], ==, pattern(4096));
    g_autoptr(GPtrArray) all = block_backends(m);
    g_assert_cmpint(all->len, ==, 3);
    block_cleanup(m);
    machine_config_free(cfg);
    g_free(m);
}

/* -drive if=virtio is a virtio-blk-pci device on the drive, or a clear error without one. */
static void test_if_virtio(Fixture *f, gconstpointer data)
{
    g_autofree char *drive = g_strdup_printf("file=%s,if=virtio,format=raw", f->path);
    char *argv[] = { "sen", "-drive", drive, NULL };
    bool exit_early = false;
    Error *err = NULL;
    MachineConfig *cfg = cmdline_parse(G_N_ELEMENTS(argv) - 1, argv, &exit_early, &err);

    if (!device_class_find("virtio-blk-pci")) {
        g_assert_null(cfg);
        g_assert_nonnull(strstr(error_get_pretty(err), "virtio-blk is not available yet"));
        error_free(err);
        return;
    }
    g_assert_nonnull(cfg);
    const DriveConfig *d = g_ptr_array_index(cfg->drives, 0);
    g_assert_cmpstr(d->id, ==, "virtio0");
    g_assert_cmpint(cfg->devices->len, ==, 1);
    DeviceConfig *dev = g_ptr_array_index(cfg->devices, 0);
    g_assert_cmpstr(dev->driver, ==, "virtio-blk-pci");
    g_assert_cmpstr(keyval_get(dev->props, "drive"), ==, "virtio0");
    machine_config_free(cfg);
}

/* One name space for drive ids and node names: each clash has QEMU's message. */
static void test_name_claim(void)
{
    static const struct {
        BlockNameHolder want, held;
        const char *msg;  /* NULL: the claim succeeds */
    } cases[] = {
        { BLOCK_NAME_NODE, BLOCK_NAME_FREE, NULL },
        { BLOCK_NAME_DRIVE, BLOCK_NAME_FREE, NULL },
        { BLOCK_NAME_NODE, BLOCK_NAME_NODE, "Duplicate nodes with node-name='x'" },
        { BLOCK_NAME_NODE, BLOCK_NAME_DRIVE, "node-name=x is conflicting with a device id" },
        { BLOCK_NAME_DRIVE, BLOCK_NAME_NODE,
          "Device name 'x' conflicts with an existing node name" },
        { BLOCK_NAME_DRIVE, BLOCK_NAME_DRIVE, "Duplicate ID 'x' for drive" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Error *err = NULL;
        bool ok = block_name_claim("x", cases[i].want, cases[i].held, &err);
        g_assert_cmpint(ok, ==, cases[i].msg == NULL);
        g_assert_cmpstr(err ? error_get_pretty(err) : NULL, ==, cases[i].msg);
        error_free(err);
    }
}

#define ADD(name, fn) \
    g_test_add("/block/" name, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("raw-rw", test_raw_rw);
    ADD("discard-and-zeroes", test_discard_and_zeroes);
    ADD("detect-zeroes", test_detect_zeroes);
    ADD("direct-unaligned", test_direct_unaligned);
    ADD("aio-native", test_aio_native);
    ADD("aio-native-many", test_aio_native_many);
    ADD("aio-native-unaligned", test_aio_native_unaligned);
    ADD("aio-native-plug", test_aio_native_plug);
    ADD("aio-threads", test_aio_threads);
    ADD("aio-writethrough", test_aio_writethrough);
    ADD("unref-drains", test_unref_drains);
    ADD("iothread-context", test_iothread_context);
    ADD("probe-raw", test_probe_raw);
    ADD("read-only", test_read_only);
    ADD("raw-window", test_raw_window);
    ADD("truncate-and-status", test_truncate_and_status);
    ADD("bad-options", test_bad_options);
    ADD("protocol-only", test_bad_options_protocol_ok);
    ADD("keyval-from-json", test_keyval_from_json);
    ADD("json-filename", test_json_filename);
    ADD("machine-drives", test_machine_drives);
    ADD("if-virtio", test_if_virtio);
    g_test_add_func("/block/name-claim", test_name_claim);
    return g_test_run();
}
