/* host_file_read: whole files up to a limit, refused by size before being read. */
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include "sen/host-file.h"

static char *tmpdir;

static char *write_file(const char *name, size_t len)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_autofree char *data = g_malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        data[i] = (char)(i * 7 + 1);
    }
    g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
    return path;
}

static void expect_error(const char *path, uint64_t max, const char *msg)
{
    Error *err = NULL;
    GBytes *b = host_file_read(path, max, &err);
    g_assert_null(b);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static void test_reads_whole_file(void)
{
    g_autofree char *path = write_file("four-k", 4096);
    Error *err = NULL;
    /* At the limit exactly is still fine. */
    g_autoptr(GBytes) b = host_file_read(path, 4096, &err);
    g_assert_null(err);
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);
    g_assert_cmpuint(len, ==, 4096);
    for (size_t i = 0; i < len; i++) {
        g_assert_cmpuint(d[i], ==, (uint8_t)(i * 7 + 1));
    }
}

static void test_empty_file(void)
{
    g_autofree char *path = write_file("empty", 0);
    Error *err = NULL;
    g_autoptr(GBytes) b = host_file_read(path, 10, &err);
    g_assert_null(err);
    g_assert_cmpuint(g_bytes_get_size(b), ==, 0);
}

static void test_too_large_by_size(void)
{
    g_autofree char *path = write_file("big", 4097);
    expect_error(path, 4096, "too large (4097 bytes, at most 4096)");
}

static void test_endless_device(void)
{
    /* No size to check: read stops one byte past the limit. */
    expect_error("/dev/zero", 1 << 20, "too large (more than 1048576 bytes)");
}

static void test_missing_and_directory(void)
{
    g_autofree char *missing = g_build_filename(tmpdir, "missing", NULL);
    expect_error(missing, 100, "No such file or directory");
    expect_error(tmpdir, 100, "Is a directory");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("sen-host-file-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/host-file/reads-whole-file", test_reads_whole_file);
    g_test_add_func("/host-file/empty-file", test_empty_file);
    g_test_add_func("/host-file/too-large-by-size", test_too_large_by_size);
    g_test_add_func("/host-file/endless-device", test_endless_device);
    g_test_add_func("/host-file/missing-and-directory", test_missing_and_directory);
    int ret = g_test_run();
    for (const char *const *n = (const char *const[]){ "four-k", "empty", "big", NULL }; *n;
         n++) {
        g_autofree char *path = g_build_filename(tmpdir, *n, NULL);
        remove(path);
    }
    remove(tmpdir);
    return ret;
}
