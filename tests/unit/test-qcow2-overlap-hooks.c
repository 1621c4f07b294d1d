/*
 * The metadata-overlap index follows metadata that image operations move (the index
 * itself is tested in test-qcow2-overlap.c, the write path end to end in
 * tests/functional/interop/test_qcow2_overlap.py).
 */
#include <errno.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "block-test-util.h"

static char *test_dir;

static void snapshot_or_die(BlockDriverState *bs, const char *name)
{
    block_test_snapshot(bs, &(BlockSnapshotInfo){ .name = (char *)name });
}

static int check(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    g_mutex_lock(&s->lock);
    int ret = qcow2_overlap_check(s, 0, off, len);
    g_mutex_unlock(&s->lock);
    return ret;
}

/*
 * Applying a snapshot onto an empty active L1 of one entry: the L2 table it brings in is
 * active metadata at once (it was missing from the index, which had been built from the
 * empty L1 and saw nothing freed).
 */
static void test_goto_one_entry_l1(void)
{
    g_autofree char *path = g_build_filename(test_dir, "goto.qcow2", NULL);
    block_test_create("qcow2", path, "size=4194304");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    BDRVQcow2State *s = bs->opaque;
    g_assert_cmpuint(s->l1_size, ==, 1);
    snapshot_or_die(bs, "empty");
    uint8_t data[4096];
    memset(data, 0x5a, sizeof(data));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(data), data), ==, 0);
    uint64_t l2 = s->l1[0] & QCOW2_L1E_OFFSET_MASK;
    g_assert_cmpuint(l2, !=, 0);
    snapshot_or_die(bs, "full");
    block_test_snapshot_goto(bs, "empty");
    g_assert_cmpuint(s->l1[0], ==, 0);
    /* A write somewhere harmless brings the index up to date with the empty L1. */
    g_assert_cmpint(check(s, 1ull << 40, 512), ==, 0);
    block_test_snapshot_goto(bs, "full");
    g_assert_cmpuint(s->l1[0] & QCOW2_L1E_OFFSET_MASK, ==, l2);
    g_assert_cmpint(check(s, l2, 512), ==, -EIO);
    bdrv_unref(bs);
    g_unlink(path);
}

/*
 * Reading VM state from a snapshot swaps the snapshot's L1 in for the read.  A dirty L2
 * table evicted meanwhile is written back through the overlap check; the index, stale,
 * was rebuilt from the swapped-in L1 and kept (same L1 size) after the swap back: the
 * active L2 tables went unprotected.
 */
static void test_load_vmstate_swap(void)
{
    g_autofree char *path = g_build_filename(test_dir, "vmstate.qcow2", NULL);
    const uint64_t span = 512ull << 20; /* one L1 entry at 64 KiB clusters */
    g_autofree char *opts = g_strdup_printf("size=%" G_GUINT64_FORMAT, 6 * span);
    block_test_create("qcow2", path, opts);
    Keyval *kv = block_keyval_new();
    block_keyval_add(kv, "l2-cache-size", "262144"); /* 4 tables */
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(path, kv, "qcow2", BDRV_O_RDWR, &err);
    g_assert_nonnull(bs);
    BDRVQcow2State *s = bs->opaque;
    uint8_t data[4096];
    memset(data, 0x5a, sizeof(data));
    for (int i = 0; i < 6; i++) {
        g_assert_cmpint(bdrv_pwrite(bs, i * span, sizeof(data), data), ==, 0);
    }
    g_assert_cmpint(bdrv_save_vmstate(bs, data, 0, sizeof(data)), ==, 0);
    BlockSnapshotInfo sn = { .name = (char *)"s", .vm_state_size = sizeof(data) };
    g_assert_true(bs->drv->snapshot_create(bs, &sn, &err));
    /* Each write copies its L2 table (shared with the snapshot): new, dirty tables. */
    for (int i = 0; i < 6; i++) {
        g_assert_cmpint(bdrv_pwrite(bs, i * span, sizeof(data), data), ==, 0);
    }
    /* Flushed, then dirtied by new data clusters only: the cache holds 4 dirty tables. */
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    for (int i = 0; i < 6; i++) {
        g_assert_cmpint(bdrv_pwrite(bs, i * span + (1 << 20), sizeof(data), data), ==, 0);
    }
    uint64_t l2 = s->l1[5] & QCOW2_L1E_OFFSET_MASK;
    qcow2_overlap_invalidate(s); /* as after any metadata move */
    uint8_t back[4096];
    g_assert_cmpint(bdrv_load_vmstate(bs, "s", back, 0, sizeof(back)), ==, 0);
    g_assert_cmpmem(back, sizeof(back), data, sizeof(data));
    g_assert_cmpint(check(s, l2, 512), ==, -EIO);
    bdrv_unref(bs);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-qcow2-overlap-hooks-XXXXXX", NULL);
    g_test_add_func("/qcow2-overlap-hooks/goto-one-entry-l1", test_goto_one_entry_l1);
    g_test_add_func("/qcow2-overlap-hooks/load-vmstate-swap", test_load_vmstate_swap);
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
