/*
 * The qcow2 vm-state area (savevm): state written past the virtual disk is captured by
 * the next snapshot, survives writes to the active image and a reopen, reads back after
 * snapshot_goto, and leaves the image consistent (our checker here; qemu-img check in
 * tests/functional/test_savevm.py).  Small clusters make the state span several L1
 * entries, so the L1 table has to grow.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "block-test-util.h"

static char *test_dir;

static char *tmp_path(const char *name)
{
    return g_build_filename(test_dir, name, NULL);
}

/* qemu-img (the QCOW2 oracle) agrees the image is clean, when it is installed. */
static void qemu_img_check(const char *path)
{
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    if (!qemu_img) {
        g_test_message("qemu-img not installed: only our own check ran on %s", path);
        return;
    }
    const char *argv[] = { qemu_img, "check", "-q", path, NULL };
    g_autofree char *out = NULL, *err = NULL;
    gint status = -1;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, NULL));
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("qemu-img check %s: %s%s", path, out, err);
    }
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    GRand *r = g_rand_new_with_seed(seed);
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)g_rand_int(r);
    }
    g_rand_free(r);
}

static void snapshot(BlockDriverState *bs, const char *name, uint64_t vm_state_size)
{
    BlockSnapshotInfo sn = { .name = (char *)name, .vm_state_size = vm_state_size,
                             .date_sec = 1700000000, .vm_clock_nsec = 123456789 };
    block_test_snapshot(bs, &sn);
}

typedef struct VmCase {
    const char *opts;     /* create options after size= */
    uint64_t span;        /* bytes one L1 entry maps */
} VmCase;

static void test_roundtrip(gconstpointer opaque)
{
    const VmCase *c = opaque;
    g_autofree char *path = tmp_path("vmstate.qcow2");
    const size_t disk = 40000 * 512ull, state_len = 100 * 1024 + 7;
    g_autofree uint8_t *state1 = g_malloc(state_len);
    g_autofree uint8_t *state2 = g_malloc(state_len);
    g_autofree uint8_t *back = g_malloc(state_len);
    uint8_t data[4096], got[4096];

    g_autofree char *opts = g_strdup_printf("size=20480000,%s", c->opts);
    block_test_create("qcow2", path, opts);
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    g_assert_true(bdrv_can_snapshot(bs));
    BlockDriverInfo bdi;
    g_assert_cmpint(bdrv_get_info(bs, &bdi), ==, 0);
    g_assert_cmpint(bdi.vm_state_offset, ==, (disk + c->span - 1) / c->span * c->span);

    fill(data, sizeof(data), 1);
    g_assert_cmpint(bdrv_pwrite(bs, 8192, sizeof(data), data), ==, 0);
    fill(state1, state_len, 2);
    /* In two pieces, as the migration stream writes it. */
    g_assert_cmpint(bdrv_save_vmstate(bs, state1, 0, 5000), ==, 0);
    g_assert_cmpint(bdrv_save_vmstate(bs, state1 + 5000, 5000, state_len - 5000), ==, 0);
    snapshot(bs, "one", state_len);
    block_test_check_clean(bs);
    /* The vm-state area never changes the disk the guest sees. */
    g_assert_cmpint(bdrv_getlength(bs), ==, disk);

    /* A second state and new disk data: the first snapshot keeps its own. */
    fill(state2, state_len, 3);
    g_assert_cmpint(bdrv_save_vmstate(bs, state2, 0, state_len), ==, 0);
    uint8_t other[4096];
    fill(other, sizeof(other), 4);
    g_assert_cmpint(bdrv_pwrite(bs, 8192, sizeof(other), other), ==, 0);
    snapshot(bs, "two", state_len);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    qemu_img_check(path);

    bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    GPtrArray *list = bs->drv->snapshot_list(bs, NULL);
    g_assert_cmpint(list->len, ==, 2);
    BlockSnapshotInfo *sn = g_ptr_array_index(list, 0);
    g_assert_cmpuint(sn->vm_state_size, ==, state_len);
    g_assert_cmpuint(sn->vm_clock_nsec, ==, 123456789);
    g_ptr_array_free(list, TRUE);

    /* Straight from the snapshots, without applying them (by name and by id). */
    g_assert_cmpint(bdrv_load_vmstate(bs, "one", back, 0, state_len), ==, 0);
    g_assert_true(memcmp(back, state1, state_len) == 0);
    g_assert_cmpint(bdrv_load_vmstate(bs, "2", back, 7, state_len - 7), ==, 0);
    g_assert_true(memcmp(back, state2 + 7, state_len - 7) == 0);
    g_assert_cmpint(bdrv_load_vmstate(bs, "three", back, 0, 16), ==, -ENOENT);
    /* ... and the active image is still the one written last. */
    g_assert_cmpint(bdrv_pread(bs, 8192, sizeof(got), got), ==, 0);
    g_assert_true(memcmp(got, other, sizeof(other)) == 0);

    block_test_snapshot_goto(bs, "one");
    g_assert_cmpint(bdrv_load_vmstate(bs, NULL, back, 0, state_len), ==, 0);
    g_assert_true(memcmp(back, state1, state_len) == 0);
    g_assert_cmpint(bdrv_pread(bs, 8192, sizeof(got), got), ==, 0);
    g_assert_true(memcmp(got, data, sizeof(data)) == 0);
    block_test_snapshot_goto(bs, "two");
    g_assert_cmpint(bdrv_load_vmstate(bs, NULL, back, 0, state_len), ==, 0);
    g_assert_true(memcmp(back, state2, state_len) == 0);
    g_assert_cmpint(bdrv_pread(bs, 8192, sizeof(got), got), ==, 0);
    g_assert_true(memcmp(got, other, sizeof(other)) == 0);
    block_test_check_clean(bs);

    /* Deleting both gives every vm-state cluster back. */
    g_assert_true(bs->drv->snapshot_delete(bs, "one", NULL));
    g_assert_true(bs->drv->snapshot_delete(bs, "two", NULL));
    block_test_check_clean(bs);
    bdrv_unref(bs);
    qemu_img_check(path);
    g_unlink(path);
}

static void test_refused(void)
{
    g_autofree char *raw = tmp_path("vmstate.raw");
    g_autofree char *q = tmp_path("vmstate-ro.qcow2");
    uint8_t buf[16] = { 0 };

    block_test_create("raw", raw, "size=1048576");
    BlockDriverState *bs = block_test_open(raw, "raw", BDRV_O_RDWR);
    g_assert_false(bdrv_can_snapshot(bs));
    g_assert_cmpint(bdrv_save_vmstate(bs, buf, 0, sizeof(buf)), ==, -ENOTSUP);
    g_assert_cmpint(bdrv_load_vmstate(bs, NULL, buf, 0, sizeof(buf)), ==, -ENOTSUP);
    g_assert_cmpint(bdrv_drop_vmstate(bs, sizeof(buf)), ==, -ENOTSUP);
    bdrv_unref(bs);

    block_test_create("qcow2", q, "size=1048576");
    bs = block_test_open(q, "qcow2", 0);
    g_assert_false(bdrv_can_snapshot(bs));
    g_assert_cmpint(bdrv_save_vmstate(bs, buf, 0, sizeof(buf)), ==, -EPERM);
    bdrv_unref(bs);

    bs = block_test_open(q, "qcow2", BDRV_O_RDWR);
    g_assert_cmpint(bdrv_save_vmstate(bs, buf, -1, sizeof(buf)), ==, -EINVAL);
    g_assert_cmpint(bdrv_save_vmstate(bs, buf, INT64_MAX, 2), ==, -EINVAL);
    g_assert_cmpint(bdrv_save_vmstate(bs, buf, INT64_MAX - 16, 16), ==, -EFBIG);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(raw);
    g_unlink(q);
}

/* A savevm that failed before its snapshot: the state it wrote is freed again, and the
 * next snapshot records and owns only its own. */
static void test_drop(void)
{
    g_autofree char *path = tmp_path("vmstate-drop.qcow2");
    const size_t len = 300 * 1024 + 5;
    g_autofree uint8_t *state = g_malloc(len);
    g_autofree uint8_t *back = g_malloc(len);
    g_autofree uint8_t *zero = g_malloc0(len);

    block_test_create("qcow2", path, "size=4194304");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    fill(state, len, 7);
    g_assert_cmpint(bdrv_save_vmstate(bs, state, 0, len), ==, 0);
    g_assert_cmpint(bdrv_load_vmstate(bs, NULL, back, 0, len), ==, 0);
    g_assert_cmpmem(back, len, state, len);
    g_assert_cmpint(bdrv_drop_vmstate(bs, -1), ==, -EINVAL);
    g_assert_cmpint(bdrv_drop_vmstate(bs, len), ==, 0);
    g_assert_cmpint(bdrv_load_vmstate(bs, NULL, back, 0, len), ==, 0);
    g_assert_cmpmem(back, len, zero, len);
    block_test_check_clean(bs);
    /* A disk-only snapshot now carries no leftover state. */
    snapshot(bs, "after", 0);
    g_assert_cmpint(bdrv_load_vmstate(bs, "after", back, 0, len), ==, 0);
    g_assert_cmpmem(back, len, zero, len);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    qemu_img_check(path);

    bs = block_test_open(path, "qcow2", 0);
    g_assert_cmpint(bdrv_drop_vmstate(bs, len), ==, -EPERM);
    bdrv_unref(bs);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-qcow2-vmstate-XXXXXX", NULL);
    /* 512-byte clusters: one L1 entry spans 32 KiB, so 100 KiB of state needs 4 more
     * L1 entries; extended L2 entries (subclusters) with 16 KiB clusters; the default
     * cluster size with 64-bit refcounts. */
    static const VmCase cases[] = {
        { "cluster_size=512", 512ull * 64 },
        { "cluster_size=16384,extended_l2=on", 16384ull * 1024 },
        { "cluster_size=65536,refcount_bits=64", 65536ull * 8192 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/qcow2-vmstate/roundtrip/%s",
                                                cases[i].opts);
        g_test_add_data_func(name, &cases[i], test_roundtrip);
    }
    g_test_add_func("/qcow2-vmstate/refused", test_refused);
    g_test_add_func("/qcow2-vmstate/drop", test_drop);
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
