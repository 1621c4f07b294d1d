/*
 * The refcount rebuild of check -r all writes its new blocks and table through the
 * metadata-overlap check (qcow2-rebuild.c).  The rebuild trusts the counts its caller
 * passes; here they are crafted, as a miscount would make them, so that its placement
 * lands on an L2 table.  (check itself, end to end: tests/functional/interop.)
 */
#include <errno.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "block-test-util.h"

static char *test_dir;

/* An image with one data cluster, so one L2 table; returns that table's offset. */
static BlockDriverState *open_with_l2(const char *name, char **path, uint64_t *l2)
{
    *path = g_build_filename(test_dir, name, NULL);
    block_test_create("qcow2", *path, "size=4194304");
    BlockDriverState *bs = block_test_open(*path, "qcow2", BDRV_O_RDWR);
    BDRVQcow2State *s = bs->opaque;
    uint8_t data[4096];
    memset(data, 0x5a, sizeof(data));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(data), data), ==, 0);
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    *l2 = s->l1[0] & QCOW2_L1E_OFFSET_MASK;
    g_assert_cmpuint(*l2, !=, 0);
    return bs;
}

/* Counts calling every cluster of the file in use but the one at off. */
static uint64_t *counts_all_but(BDRVQcow2State *s, uint64_t off, uint64_t *nb)
{
    int64_t len = bdrv_getlength(s->bs->file);
    g_assert_cmpint(len, >, 0);
    *nb = ((uint64_t)len + s->cluster_size - 1) >> s->cluster_bits;
    uint64_t *refs = g_new(uint64_t, *nb);
    for (uint64_t i = 0; i < *nb; i++) {
        refs[i] = 1;
    }
    refs[off >> s->cluster_bits] = 0;
    return refs;
}

static int rebuild(BDRVQcow2State *s, uint64_t **refs, uint64_t *nb)
{
    g_mutex_lock(&s->lock);
    int ret = qcow2_rebuild_refcounts(s, refs, nb, NULL);
    g_mutex_unlock(&s->lock);
    return ret;
}

/* Counts missing the active L2 table: the first free cluster is the table, the new
 * refcount block would go there.  The write is refused, the table kept, the header
 * still names the old refcount table and the image is marked corrupt. */
static void test_refuses_l2(void)
{
    g_autofree char *path = NULL;
    uint64_t l2, nb;
    BlockDriverState *bs = open_with_l2("l2.qcow2", &path, &l2);
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *before = g_malloc(s->cluster_size);
    g_autofree uint8_t *after = g_malloc(s->cluster_size);
    g_assert_cmpint(bdrv_pread(s->bs->file, l2, s->cluster_size, before), ==, 0);
    uint64_t reftable = s->h.refcount_table_offset;
    g_autofree uint64_t *refs = counts_all_but(s, l2, &nb);
    g_assert_cmpint(rebuild(s, &refs, &nb), ==, -EIO);
    g_assert_cmpint(bdrv_pread(s->bs->file, l2, s->cluster_size, after), ==, 0);
    g_assert_cmpmem(after, s->cluster_size, before, s->cluster_size);
    g_assert_cmpuint(s->h.refcount_table_offset, ==, reftable);
    g_assert_true(s->read_only);
    g_assert_true(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    bdrv_unref(bs);
    g_unlink(path);
}

/* An L1 entry cleared as check clears one pointing past the end: no cluster is freed,
 * so an index built before still names the L2 table.  The counts rightly find it free;
 * the rebuild puts its block there and must not refuse that. */
static void test_cleared_l1_entry(void)
{
    g_autofree char *path = NULL;
    uint64_t l2, nb;
    BlockDriverState *bs = open_with_l2("cleared.qcow2", &path, &l2);
    BDRVQcow2State *s = bs->opaque;
    uint64_t reftable = s->h.refcount_table_offset;
    g_mutex_lock(&s->lock);
    /* A write somewhere harmless builds the index, with the L2 table in it. */
    g_assert_cmpint(qcow2_overlap_check(s, 0, 1ull << 40, 512), ==, 0);
    s->l1[0] = 0;
    g_assert_cmpint(qcow2_write_l1_entry(s, 0), ==, 0);
    g_mutex_unlock(&s->lock);
    g_autofree uint64_t *refs = counts_all_but(s, l2, &nb);
    g_assert_cmpint(rebuild(s, &refs, &nb), ==, 0);
    g_assert_false(s->read_only);
    /* The new block is where the table was, and the header names the new table. */
    g_assert_cmpuint(s->reftable[0] & QCOW2_REFT_OFFSET_MASK, ==, l2);
    g_assert_cmpuint(s->h.refcount_table_offset, !=, reftable);
    bdrv_unref(bs);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-qcow2-rebuild-write-XXXXXX", NULL);
    g_test_add_func("/qcow2-rebuild-write/refuses-l2", test_refuses_l2);
    g_test_add_func("/qcow2-rebuild-write/cleared-l1-entry", test_cleared_l1_entry);
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
