/*
 * Corruption found at run time reaches the block layer's corruption sink (the VMM turns
 * it into BLOCK_IMAGE_CORRUPTED; tests/functional/test_block_corrupted.py compares that
 * with QEMU): QEMU's message, offset and size, fatal only on a writable image, once per
 * image except that a fatal report still follows non-fatal ones.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "block-test-util.h"

static char *test_dir;

typedef struct Report {
    char *node_name, *msg;
    int64_t offset, size;
    bool fatal;
} Report;

static void collect(void *opaque, const BlockCorruption *c)
{
    Report *r = g_new0(Report, 1);
    r->node_name = g_strdup(c->node_name);
    r->msg = g_strdup(c->msg);
    r->offset = c->offset;
    r->size = c->size;
    r->fatal = c->fatal;
    g_ptr_array_add(opaque, r);
}

static void report_free(gpointer p)
{
    Report *r = p;
    g_free(r->node_name);
    g_free(r->msg);
    g_free(r);
}

static const BlockEventSink collect_sink = { .corruption = collect };

static GPtrArray *reports_start(void)
{
    GPtrArray *reports = g_ptr_array_new_with_free_func(report_free);
    bdrv_set_event_sink(&collect_sink, reports);
    return reports;
}

static void reports_end(GPtrArray *reports)
{
    bdrv_set_event_sink(NULL, NULL);
    g_ptr_array_free(reports, TRUE);
}

static BlockDriverState *new_image(const char *name, char **path)
{
    *path = g_build_filename(test_dir, name, NULL);
    block_test_create("qcow2", *path, "size=4194304");
    return block_test_open(*path, "qcow2", BDRV_O_RDWR);
}

/* A write over the active L1 table: refused, reported once with the access, and the
 * image is marked corrupt (the bit, read-only). */
static void test_overlap_reports_once(void)
{
    g_autofree char *path = NULL;
    BlockDriverState *bs = new_image("overlap.qcow2", &path);
    BDRVQcow2State *s = bs->opaque;
    GPtrArray *reports = reports_start();
    uint64_t l1 = s->h.l1_table_offset;

    g_mutex_lock(&s->lock);
    g_assert_cmpint(qcow2_overlap_check(s, 0, l1 + 512, 1024), ==, -EIO);
    g_assert_cmpint(qcow2_overlap_check(s, 0, l1, 512), ==, -EIO);
    g_mutex_unlock(&s->lock);
    g_assert_cmpuint(reports->len, ==, 1);
    Report *r = g_ptr_array_index(reports, 0);
    g_assert_cmpstr(r->msg, ==,
                    "Preventing invalid write on metadata (overlaps with active L1 table)");
    g_assert_cmpstr(r->node_name, ==, bs->node_name);
    g_assert_cmpint(r->offset, ==, (int64_t)l1 + 512);
    g_assert_cmpint(r->size, ==, 1024);
    g_assert_true(r->fatal);
    g_assert_true(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    g_assert_true(s->read_only);
    reports_end(reports);
    bdrv_unref(bs);
    g_unlink(path);
}

/* QEMU's rule: on a read-only image nothing is fatal; non-fatal reports come once, but a
 * fatal one still follows them, once. */
static void test_fatal_follows_non_fatal(void)
{
    g_autofree char *path = NULL;
    BlockDriverState *bs = new_image("rules.qcow2", &path);
    BDRVQcow2State *s = bs->opaque;
    GPtrArray *reports = reports_start();

    g_mutex_lock(&s->lock);
    s->read_only = true;
    qcow2_signal_corruption(s, true, -1, -1, "first %d", 1);
    qcow2_signal_corruption(s, false, -1, -1, "second");
    s->read_only = false;
    qcow2_signal_corruption(s, true, 4096, 512, "third");
    qcow2_signal_corruption(s, true, -1, -1, "fourth");
    g_mutex_unlock(&s->lock);
    g_assert_cmpuint(reports->len, ==, 2);
    Report *r = g_ptr_array_index(reports, 0);
    g_assert_cmpstr(r->msg, ==, "first 1");
    g_assert_false(r->fatal);
    g_assert_cmpint(r->offset, ==, -1);
    r = g_ptr_array_index(reports, 1);
    g_assert_cmpstr(r->msg, ==, "third");
    g_assert_true(r->fatal);
    g_assert_cmpint(r->offset, ==, 4096);
    g_assert_cmpint(r->size, ==, 512);
    reports_end(reports);
    bdrv_unref(bs);
    g_unlink(path);
}

/* An L1 entry naming an L2 table inside a cluster: reads and writes fail and report it
 * in QEMU's words (no access offset). */
static void test_unaligned_l2_reported(void)
{
    g_autofree char *path = NULL;
    BlockDriverState *bs = new_image("l2.qcow2", &path);
    BDRVQcow2State *s = bs->opaque;
    uint8_t data[512];
    memset(data, 0x5a, sizeof(data));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(data), data), ==, 0);
    GPtrArray *reports = reports_start();

    g_mutex_lock(&s->lock);
    uint64_t l2 = (s->l1[0] & QCOW2_L1E_OFFSET_MASK) + 512;
    s->l1[0] = l2 | QCOW2_OFLAG_COPIED;
    g_mutex_unlock(&s->lock);
    g_assert_cmpint(bdrv_pread(bs, 0, sizeof(data), data), ==, -EIO);
    g_assert_cmpuint(reports->len, ==, 1);
    Report *r = g_ptr_array_index(reports, 0);
    g_autofree char *want = g_strdup_printf("L2 table offset %#" PRIx64 " unaligned "
                                            "(L1 index: 0)", l2);
    g_assert_cmpstr(r->msg, ==, want);
    g_assert_cmpint(r->offset, ==, -1);
    g_assert_cmpint(r->size, ==, -1);
    g_assert_true(r->fatal);
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(data), data), <, 0);
    g_assert_cmpuint(reports->len, ==, 1);
    reports_end(reports);
    bdrv_unref(bs);
    g_unlink(path);
}

/* A compressed entry in an image whose data lives in an external data file (the format
 * forbids it): the read fails and reports it in QEMU's words. */
static void test_compressed_with_data_file_reported(void)
{
    g_autofree char *path = g_build_filename(test_dir, "df.qcow2", NULL);
    g_autofree char *data = g_build_filename(test_dir, "df.data", NULL);
    block_test_create("qcow2", path, "size=4194304,data_file=df.data");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    BDRVQcow2State *s = bs->opaque;
    uint8_t buf[512];
    memset(buf, 0x5a, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(buf), buf), ==, 0);
    GPtrArray *reports = reports_start();

    g_mutex_lock(&s->lock);
    uint64_t l2 = qcow2_l2_offset(s, 0);
    g_assert_cmpint(qcow2_set_l2e(s, (int64_t)l2, 0, QCOW2_OFLAG_COMPRESSED | 0x50000, NULL),
                    ==, 0);
    g_mutex_unlock(&s->lock);
    g_assert_cmpint(bdrv_pread(bs, 0, sizeof(buf), buf), ==, -EIO);
    g_assert_cmpuint(reports->len, ==, 1);
    Report *r = g_ptr_array_index(reports, 0);
    g_autofree char *want = g_strdup_printf("Compressed cluster entry found in image with "
                                            "external data file (L2 offset: %#" PRIx64
                                            ", L2 index: 0)", l2);
    g_assert_cmpstr(r->msg, ==, want);
    g_assert_true(r->fatal);
    reports_end(reports);
    bdrv_unref(bs);
    g_unlink(path);
    g_unlink(data);
}

/* The header's incompatible features as the file holds them. */
static uint64_t file_incompat_bits(const char *path)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    g_assert_cmpuint(len, >=, 80);
    return qcow2_ld64((const uint8_t *)data + 72);
}

/* A check that repairs (-r leaks or -r all) and leaves nothing wrong clears the corrupt
 * bit and makes the image writable again; a check without repairs leaves it (QEMU's
 * rule). */
static void test_repair_clears_corrupt_bit(void)
{
    g_autofree char *path = NULL;
    BlockDriverState *bs = new_image("repair.qcow2", &path);
    BDRVQcow2State *s = bs->opaque;
    GPtrArray *reports = reports_start();
    g_mutex_lock(&s->lock);
    g_assert_cmpint(qcow2_overlap_check(s, 0, s->h.l1_table_offset, 512), ==, -EIO);
    g_assert_true(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    BlockCheckResult res;
    g_assert_cmpint(qcow2_check(bs, &res, BDRV_FIX_NONE), ==, 0);
    g_assert_true(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    g_assert_true(s->read_only);
    g_assert_cmpint(qcow2_check(bs, &res, BDRV_FIX_LEAKS), ==, 0);
    g_assert_false(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    g_assert_false(s->read_only);
    g_assert_false(file_incompat_bits(path) & QCOW2_INCOMPAT_CORRUPT);
    /* Reported again: the bit is gone, so a new corruption is news. */
    g_assert_cmpint(qcow2_overlap_check(s, 0, s->h.l1_table_offset, 512), ==, -EIO);
    g_mutex_unlock(&s->lock);
    g_assert_cmpuint(reports->len, ==, 2);
    g_assert_true(file_incompat_bits(path) & QCOW2_INCOMPAT_CORRUPT);
    reports_end(reports);
    bdrv_unref(bs);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-qcow2-corrupt-XXXXXX", NULL);
    g_test_add_func("/qcow2-corrupt/overlap-reports-once", test_overlap_reports_once);
    g_test_add_func("/qcow2-corrupt/fatal-follows-non-fatal", test_fatal_follows_non_fatal);
    g_test_add_func("/qcow2-corrupt/unaligned-l2-reported", test_unaligned_l2_reported);
    g_test_add_func("/qcow2-corrupt/repair-clears-corrupt-bit", test_repair_clears_corrupt_bit);
    g_test_add_func("/qcow2-corrupt/compressed-with-data-file-reported",
                    test_compressed_with_data_file_reported);
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
