/*
 * file_posix_map (block/file-posix.c): the read-only page-cache view sen-img convert
 * writes from.  A program that ignores the image's locks may shrink the file under it;
 * touching the lost pages then faults with SIGBUS, which must end the process with a
 * message and status 1 (as a failed read ends sen-img), not a core dump.
 */
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/block-internal.h"

static char *test_dir;

static char *make_file(const char *name, size_t len)
{
    char *path = g_build_filename(test_dir, name, NULL);
    g_autofree char *data = g_malloc(len);
    memset(data, 0xa5, len);
    g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
    return path;
}

static void test_view_reads_file(void)
{
    g_autofree char *path = make_file("view", 1 << 20);
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(path, NULL, "file", 0, &err);
    g_assert_null(err);
    FilePosixMap m;
    const uint8_t *d = file_posix_map(bs, 4096 + 7, 65536, &m);
    g_assert_nonnull(d);
    g_assert_cmpuint(d[0], ==, 0xa5);
    g_assert_cmpuint(d[65535], ==, 0xa5);
    file_posix_unmap(&m);
    /* Past the end: no view, the caller reads. */
    g_assert_null(file_posix_map(bs, (1 << 20) - 10, 20, &m));
    bdrv_unref(bs);
}

static void test_shrunk_file_exits_cleanly(void)
{
    if (g_test_subprocess()) {
        g_autofree char *path = make_file("shrink", 1 << 20);
        Error *err = NULL;
        BlockDriverState *bs = bdrv_open(path, NULL, "file", 0, &err);
        g_assert_null(err);
        FilePosixMap m;
        const volatile uint8_t *d = file_posix_map(bs, 0, 1 << 20, &m);
        g_assert_nonnull(d);
        g_assert_cmpint(truncate(path, 0), ==, 0);
        (void)d[512 * 1024];  /* the page is gone: SIGBUS */
        _exit(0);             /* not reached */
    }
    g_test_trap_subprocess(NULL, 10 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*an image file shrank while it was being read*");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-file-map-XXXXXX", NULL);
    g_test_add_func("/file-posix-map/view-reads-file", test_view_reads_file);
    g_test_add_func("/file-posix-map/shrunk-file-exits-cleanly", test_shrunk_file_exits_cleanly);
    int ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", test_dir);
    if (system(cmd) != 0) {
        g_printerr("could not remove %s\n", test_dir);
    }
    return ret;
}
