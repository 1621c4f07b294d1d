/*
 * QCOW2 dirty bitmaps through the driver (the pure helpers are in test-qcow2.c, the
 * interop with qemu-img in tests/functional/interop/test_qcow2_bitmaps.py):
 *  - a write marks the bitmaps when it completes, so a clear that runs while its data is
 *    in flight cannot drop its mark (the image's file node is wrapped by a driver that
 *    holds the data write until the test has cleared the bitmap);
 *  - the bits of one image's bitmaps stay within QCOW2_BITMAPS_MAX_MEM;
 *  - non-persistent bitmaps live through a reopen of the driver.
 */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "block-test-util.h"

static char *test_dir;

/* ---- a file node whose next write waits for the test ---- */

typedef struct Gate {
    GMutex lock;
    GCond cond;
    bool armed;    /* the next write stops at the gate */
    bool entered;  /* a write is held */
    bool released; /* the test let it go */
    const BlockDriver *real;
} Gate;

static Gate gate;
static BlockDriver gated_drv;

/* A write: held while the gate is armed. */
static void gate_pass(void)
{
    g_mutex_lock(&gate.lock);
    if (gate.armed) {
        gate.armed = false;
        gate.entered = true;
        g_cond_broadcast(&gate.cond);
        while (!gate.released) {
            g_cond_wait(&gate.cond, &gate.lock);
        }
    }
    g_mutex_unlock(&gate.lock);
}

static int gated_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                         const struct iovec *iov, int niov, int flags)
{
    gate_pass();
    return gate.real->pwritev(bs, offset, bytes, iov, niov, flags);
}

static int gated_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    gate_pass();
    return gate.real->pwrite_zeroes(bs, offset, bytes, flags);
}

static void gate_install(BlockDriverState *file)
{
    gate.real = file->drv;
    gated_drv = *file->drv;
    gated_drv.pwritev = gated_pwritev;
    gated_drv.pwrite_zeroes = gate.real->pwrite_zeroes ? gated_pwrite_zeroes : NULL;
    gated_drv.aio_submit = NULL; /* every write through pwritev */
    file->drv = &gated_drv;
}

static void gate_remove(BlockDriverState *file)
{
    file->drv = gate.real;
}

static void gate_arm(void)
{
    g_mutex_lock(&gate.lock);
    gate.armed = true;
    gate.entered = gate.released = false;
    g_mutex_unlock(&gate.lock);
}

static void gate_wait_entered(void)
{
    g_mutex_lock(&gate.lock);
    while (!gate.entered) {
        g_cond_wait(&gate.cond, &gate.lock);
    }
    g_mutex_unlock(&gate.lock);
}

static void gate_release(void)
{
    g_mutex_lock(&gate.lock);
    gate.released = true;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
}

/* ---- helpers ---- */

static void bitmap_req(BlockDriverState *bs, const BlockBitmapReq *req)
{
    Error *err = NULL;
    if (!bdrv_bitmap_op(bs, req, &err)) {
        g_error("bitmap op %d on '%s': %s", req->action, req->name, error_get_pretty(err));
    }
}

static void bitmap_op(BlockDriverState *bs, BlockBitmapAction action, const char *name,
                      bool persistent)
{
    bitmap_req(bs, &(BlockBitmapReq){ .action = action, .name = name,
                                      .persistent = persistent });
}

static void bitmap_add(BlockDriverState *bs, const char *name, uint32_t granularity,
                       bool persistent)
{
    bitmap_req(bs, &(BlockBitmapReq){ .action = BLOCK_BITMAP_ADD, .name = name,
                                      .granularity = granularity, .persistent = persistent });
}

/* The dirty bytes of bitmap name (-1: no such bitmap). */
static int64_t bitmap_count(BlockDriverState *bs, const char *name)
{
    GPtrArray *list = bdrv_bitmap_list(bs);
    int64_t count = -1;
    for (guint i = 0; i < list->len; i++) {
        BlockBitmapInfo *info = g_ptr_array_index(list, i);
        if (!strcmp(info->name, name)) {
            count = info->count;
        }
    }
    g_ptr_array_free(list, TRUE);
    return count;
}

/* ---- a clear between the start and the end of a write ---- */

typedef struct Writer {
    BlockDriverState *bs;
    int op; /* 0 write, 1 write-zeroes */
    int ret;
} Writer;

static gpointer writer_run(gpointer opaque)
{
    Writer *w = opaque;
    uint8_t buf[4096];
    memset(buf, 0xa5, sizeof(buf));
    w->ret = w->op == 0 ? bdrv_pwrite(w->bs, 65536, sizeof(buf), buf)
                        : bdrv_pwrite_zeroes(w->bs, 65536, sizeof(buf), 0);
    return NULL;
}

static void clear_during_write(int op, const char *opts, bool persistent)
{
    g_autofree char *path = g_build_filename(test_dir, "race.qcow2", NULL);
    block_test_create("qcow2", path, opts);
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    BlockDriverState *file = ((BDRVQcow2State *)bs->opaque)->data_file;
    /* Allocated beforehand: the held write is a pure data write, run without the lock. */
    uint8_t buf[65536];
    memset(buf, 0x11, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 65536, sizeof(buf), buf), ==, 0);
    bitmap_op(bs, BLOCK_BITMAP_ADD, "b", persistent);
    gate_install(file);

    gate_arm();
    Writer w = { .bs = bs, .op = op, .ret = -1 };
    GThread *t = g_thread_new("writer", writer_run, &w);
    gate_wait_entered();
    /* The backup tool's turn: it has copied what the bitmap said, and clears it. */
    bitmap_op(bs, BLOCK_BITMAP_CLEAR, "b", false);
    gate_release();
    g_thread_join(t);
    g_assert_cmpint(w.ret, ==, 0);
    /* The write reached the disk after the clear: the next backup must copy it. */
    g_assert_cmpint(bitmap_count(bs, "b"), ==, 65536);

    gate_remove(file);
    bdrv_unref(bs);
    g_unlink(path);
}

static void test_clear_during_write(void)
{
    clear_during_write(0, "size=1M", true);
}

static void test_clear_during_write_transient(void)
{
    clear_during_write(0, "size=1M", false);
}

/* With a raw external data file write-zeroes writes the zeroes there, without the lock. */
static void test_clear_during_write_zeroes(void)
{
    g_autofree char *data = g_build_filename(test_dir, "race.raw", NULL);
    g_autofree char *opts = g_strdup_printf("size=1M,data_file=%s,data_file_raw=on", data);
    clear_during_write(1, opts, true);
    g_unlink(data);
}

/*
 * Adding bitmaps stops where their bits would take more than QCOW2_BITMAPS_MAX_MEM
 * together (transient ones count too: QMP could add them without end otherwise).
 * A 1 TiB disk at 512-byte granules: 256 MiB of bits each (allocated, never touched).
 */
static void test_add_past_the_memory_limit(void)
{
    g_autofree char *path = g_build_filename(test_dir, "big.qcow2", NULL);
    block_test_create("qcow2", path, "size=1T");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    uint64_t each = (1ull << 40) / 512 / 8;
    unsigned fit = QCOW2_BITMAPS_MAX_MEM / each;
    g_assert_cmpuint(fit, ==, 8);
    for (unsigned i = 0; i < fit; i++) {
        g_autofree char *name = g_strdup_printf("t%u", i);
        bitmap_add(bs, name, 512, i % 2);
    }
    Error *err = NULL;
    BlockBitmapReq req = { .action = BLOCK_BITMAP_ADD, .name = "one-more", .granularity = 512 };
    g_assert_false(bdrv_bitmap_op(bs, &req, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Bitmap 'one-more' would take the bitmaps of this node past the 2048 MiB "
                    "of memory allowed for one image");
    g_clear_pointer(&err, error_free);
    /* Removing one makes room again. */
    bitmap_op(bs, BLOCK_BITMAP_REMOVE, "t0", false);
    bitmap_add(bs, "one-more", 512, false);
    g_assert_cmpint(bitmap_count(bs, "one-more"), ==, 0);
    /* Growing the disk grows them all: refused past the limit, before any allocation. */
    g_assert_false(bdrv_truncate(bs, 2ll << 40, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err),
                            ": The bitmaps would need 4096 MiB of memory at the new size, "
                            "more than the 2048 MiB allowed for one image"));
    g_clear_pointer(&err, error_free);
    g_assert_cmpint(bs->total_size, ==, 1ll << 40);
    bdrv_unref(bs);
    g_unlink(path);
}

/*
 * Non-persistent bitmaps live through the driver's close and open again, as in QEMU
 * (where they belong to the node): the hand-over of a migration that then fails
 * (inactivate, activate), and a reopen read-write.
 */
static void test_transient_kept_across_reopen(void)
{
    g_autofree char *path = g_build_filename(test_dir, "reopen.qcow2", NULL);
    block_test_create("qcow2", path, "size=1M");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    bitmap_add(bs, "t", 65536, false);
    bitmap_add(bs, "p", 65536, true);
    uint8_t buf[512] = { 1 };
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(buf), buf), ==, 0);
    g_assert_cmpint(bitmap_count(bs, "t"), ==, 65536);

    Error *err = NULL;
    g_assert_true(bdrv_inactivate(bs, &err));
    g_assert_true(bdrv_activate(bs, &err));
    g_assert_null(err);
    g_assert_cmpint(bitmap_count(bs, "t"), ==, 65536);
    g_assert_cmpint(bitmap_count(bs, "p"), ==, 65536);
    /* Still recording. */
    g_assert_cmpint(bdrv_pwrite(bs, 3 * 65536, sizeof(buf), buf), ==, 0);
    g_assert_cmpint(bitmap_count(bs, "t"), ==, 2 * 65536);

    GPtrArray *list = bdrv_bitmap_list(bs);
    g_assert_cmpuint(list->len, ==, 2);
    for (guint i = 0; i < list->len; i++) {
        BlockBitmapInfo *info = g_ptr_array_index(list, i);
        g_assert_true(info->recording);
        g_assert_false(info->inconsistent);
        g_assert_cmpint(info->persistent, ==, !strcmp(info->name, "p"));
    }
    g_ptr_array_free(list, TRUE);
    bdrv_unref(bs);

    /* Gone with the node: a new open has only the persistent one. */
    bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    g_assert_cmpint(bitmap_count(bs, "t"), ==, -1);
    g_assert_cmpint(bitmap_count(bs, "p"), ==, 2 * 65536);
    bdrv_unref(bs);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_mutex_init(&gate.lock);
    g_cond_init(&gate.cond);
    test_dir = g_dir_make_tmp("sen-test-qcow2-bitmaps-XXXXXX", NULL);
    g_test_add_func("/qcow2-bitmaps/clear-during-write", test_clear_during_write);
    g_test_add_func("/qcow2-bitmaps/clear-during-write/transient",
                    test_clear_during_write_transient);
    g_test_add_func("/qcow2-bitmaps/clear-during-write-zeroes", test_clear_during_write_zeroes);
    g_test_add_func("/qcow2-bitmaps/add-past-the-memory-limit", test_add_past_the_memory_limit);
    g_test_add_func("/qcow2-bitmaps/transient-kept-across-reopen",
                    test_transient_kept_across_reopen);
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
