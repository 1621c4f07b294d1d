/*
 * The live-migration hand-over of a shared image (bdrv_inactivate / bdrv_activate,
 * docs/migration.md "Shared storage"), with two nodes on one qcow2 file standing for
 * the source and the destination process.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "sen/block.h"
#include "block-test-util.h"

#define MiB (1024 * 1024)

static char *test_dir;

static char *new_image(const char *name)
{
    char *path = g_build_filename(test_dir, name, NULL);
    block_test_create("qcow2", path, "size=64M,cluster_size=65536");
    return path;
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 13 + seed + (i >> 12));
    }
}

static void write_pattern(BlockDriverState *bs, int64_t off, size_t len, uint8_t seed)
{
    g_autofree uint8_t *buf = g_malloc(len);
    fill(buf, len, seed);
    g_assert_cmpint(bdrv_pwrite(bs, off, len, buf), ==, 0);
}

static void check_pattern(BlockDriverState *bs, int64_t off, size_t len, uint8_t seed)
{
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    fill(want, len, seed);
    g_assert_cmpint(bdrv_pread(bs, off, len, got), ==, 0);
    g_assert_true(memcmp(want, got, len) == 0);
}

static void activate(BlockDriverState *bs)
{
    Error *err = NULL;
    if (!bdrv_activate(bs, &err)) {
        g_error("activate: %s", error_get_pretty(err));
    }
}

static void inactivate(BlockDriverState *bs)
{
    Error *err = NULL;
    if (!bdrv_inactivate(bs, &err)) {
        g_error("inactivate: %s", error_get_pretty(err));
    }
}

/* Source writes after the destination opened; hand-over; the destination writes new
 * clusters; the source closes last: every byte reads back and the image is clean. */
static void test_handover(void)
{
    g_autofree char *path = new_image("handover.qcow2");
    BlockDriverState *src = block_test_open(path, "qcow2", BDRV_O_RDWR);
    write_pattern(src, 0, 1 * MiB, 1);
    BlockDriverState *dst = block_test_open(path, "qcow2", BDRV_O_RDWR | BDRV_O_INACTIVE);
    /* Inactive: writes refused; the source goes on with clusters dst has not seen. */
    g_assert_cmpint(bdrv_pwrite(dst, 0, 512, "x"), ==, -EPERM);
    /* Reads are allowed and fill dst's caches (L2 table, refcounts) with what becomes
     * stale: the activation must drop them. */
    g_autofree uint8_t *zeroes = g_malloc(4 * MiB);
    g_assert_cmpint(bdrv_pread(dst, 8 * MiB, 3 * MiB, zeroes), ==, 0);
    write_pattern(src, 8 * MiB, 3 * MiB, 2);
    write_pattern(src, 32 * MiB, 1 * MiB, 7);

    inactivate(src);
    g_assert_cmpint(bdrv_pwrite(src, 0, 512, "x"), ==, -EPERM);
    g_assert_cmpint(bdrv_pwrite_zeroes(src, 0, 65536, 0), ==, -EPERM);
    g_assert_cmpint(bdrv_pdiscard(src, 0, 65536), ==, -EPERM);
    activate(dst);
    check_pattern(dst, 0, 1 * MiB, 1);
    check_pattern(dst, 8 * MiB, 3 * MiB, 2);
    check_pattern(dst, 32 * MiB, 1 * MiB, 7);
    write_pattern(dst, 20 * MiB, 4 * MiB, 3);
    write_pattern(dst, 512 * 1024, 1 * MiB, 4);

    struct stat before, after;
    g_assert_cmpint(g_stat(path, &before), ==, 0);
    bdrv_unref(src); /* no flush, no trim of its grown tail */
    g_assert_cmpint(g_stat(path, &after), ==, 0);
    g_assert_cmpint(after.st_size, ==, before.st_size);
    g_assert_cmpint(after.st_mtim.tv_nsec, ==, before.st_mtim.tv_nsec);
    g_assert_cmpint(after.st_mtim.tv_sec, ==, before.st_mtim.tv_sec);
    bdrv_unref(dst);

    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    check_pattern(bs, 0, 512 * 1024, 1);
    check_pattern(bs, 512 * 1024, 1 * MiB, 4);
    check_pattern(bs, 8 * MiB, 3 * MiB, 2);
    check_pattern(bs, 20 * MiB, 4 * MiB, 3);
    check_pattern(bs, 32 * MiB, 1 * MiB, 7);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(path);
}

/* A failed migration: the source takes the image back and writes it as before. */
static void test_take_back(void)
{
    g_autofree char *path = new_image("take-back.qcow2");
    BlockDriverState *src = block_test_open(path, "qcow2", BDRV_O_RDWR);
    write_pattern(src, 0, 2 * MiB, 5);
    inactivate(src);
    inactivate(src); /* already inactive: nothing to do */
    g_assert_cmpint(bdrv_pwrite(src, 0, 512, "x"), ==, -EPERM);
    activate(src);
    activate(src);
    write_pattern(src, 4 * MiB, 2 * MiB, 6);
    check_pattern(src, 0, 2 * MiB, 5);
    block_test_check_clean(src);
    bdrv_unref(src);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-block-handover-XXXXXX", NULL);
    g_test_add_func("/block-handover/handover", test_handover);
    g_test_add_func("/block-handover/take-back", test_take_back);
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
