/*
 * Discard and write-zeroes leave the same L2 entries as QEMU 7.2, checked against the
 * oracle: qemu-img/qemu-io build one image holding every kind of cluster (data,
 * preallocated zero, plain zero, unallocated, compressed), qemu-io runs an operation on
 * one copy and our block layer the same operation on another, and `qemu-img map
 * --output=json` (which shows zero flags, kept host offsets and backing fall-through)
 * must print the same for both.  Skipped when qemu-img or qemu-io is not installed.
 */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "sen/block.h"
#include "block-test-util.h"

typedef struct DiscardCase {
    const char *name;
    const char *create_opts; /* qemu-img create -o */
    int backing;             /* 0: none, 1: written all over, 2: written in its first 128k */
    bool compressed;         /* the setup writes a compressed cluster */
    const char *op;          /* qemu-io command: "discard", "write -z" or "write -z -u" */
    uint64_t off, len;
    const char *size;        /* of the image; 1M when NULL */
} DiscardCase;

static char *test_dir;
static char *qemu_img, *qemu_io;

/* Runs argv (NULL-terminated) and returns its stdout; fails the test when it fails. */
static char *run_tool(const char *const *argv)
{
    char *out = NULL, *err = NULL;
    int status;
    g_autoptr(GError) e = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, &e));
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("%s %s failed: %s%s", argv[0], argv[1], out, err);
    }
    g_free(err);
    return out;
}

static void qemu_io_cmds(const char *path, const char *const *cmds)
{
    for (; *cmds; cmds++) {
        const char *argv[] = { qemu_io, "-f", "qcow2", "-c", *cmds, path, NULL };
        g_free(run_tool(argv));
    }
}

static char *map_json(const char *path)
{
    const char *argv[] = { qemu_img, "map", "-f", "qcow2", "--output=json", path, NULL };
    return run_tool(argv);
}

/* The image every case starts from: 64 KiB clusters of each kind, then unallocated. */
static void build_image(const DiscardCase *c, const char *path, const char *base)
{
    if (c->backing) {
        const char *mk[] = { qemu_img, "create", "-q", "-f", "qcow2", base, "1M", NULL };
        g_free(run_tool(mk));
        const char *fill[] = { c->backing == 2 ? "write -P 0x5a 0 128k" : "write -P 0x5a 0 1M",
                               NULL };
        qemu_io_cmds(base, fill);
    }
    g_autoptr(GPtrArray) create = g_ptr_array_new();
    const char *head[] = { qemu_img, "create", "-q", "-f", "qcow2", "-o", c->create_opts };
    for (size_t i = 0; i < G_N_ELEMENTS(head); i++) {
        g_ptr_array_add(create, (char *)head[i]);
    }
    if (c->backing) {
        const char *b[] = { "-b", base, "-F", "qcow2" };
        for (size_t i = 0; i < G_N_ELEMENTS(b); i++) {
            g_ptr_array_add(create, (char *)b[i]);
        }
    }
    g_ptr_array_add(create, (char *)path);
    g_ptr_array_add(create, (char *)(c->size ? c->size : "1M"));
    g_ptr_array_add(create, NULL);
    g_free(run_tool((const char *const *)create->pdata));
    const char *setup[] = {
        "write -P 0x11 0 64k",               /* cluster 0: data */
        "write -P 0x22 64k 64k",             /* cluster 1: data, then preallocated zero */
        "write -z 64k 64k",
        "write -z 128k 64k",                 /* cluster 2: plain zero */
        /* cluster 3: unallocated */
        c->compressed ? "write -c -P 0x33 256k 64k" : "write -P 0x33 256k 64k",
        "write -z -u 384k 64k",              /* cluster 6: zero then written in part */
        "write -P 0x44 384k 4k",
        NULL,
    };
    qemu_io_cmds(path, setup);
}

static void test_discard_like_qemu(gconstpointer data)
{
    const DiscardCase *c = data;
    if (!qemu_img || !qemu_io) {
        g_test_skip("qemu-img/qemu-io (Debian qemu-utils) not installed: no oracle");
        return;
    }
    g_autofree char *orig = g_build_filename(test_dir, "orig.qcow2", NULL);
    g_autofree char *base = g_build_filename(test_dir, "base.qcow2", NULL);
    g_autofree char *theirs = g_build_filename(test_dir, "qemu.qcow2", NULL);
    g_autofree char *ours = g_build_filename(test_dir, "sen.qcow2", NULL);
    build_image(c, orig, base);
    g_autofree char *img = NULL;
    gsize img_len;
    g_assert_true(g_file_get_contents(orig, &img, &img_len, NULL));
    g_assert_true(g_file_set_contents(theirs, img, img_len, NULL));
    g_assert_true(g_file_set_contents(ours, img, img_len, NULL));

    g_autofree char *cmd = g_strdup_printf("%s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                           c->op, c->off, c->len);
    const char *cmds[] = { cmd, NULL };
    qemu_io_cmds(theirs, cmds);

    BlockDriverState *bs = block_test_open(ours, "qcow2", BDRV_O_RDWR | BDRV_O_UNMAP);
    if (!strcmp(c->op, "discard")) {
        g_assert_cmpint(bdrv_pdiscard(bs, c->off, c->len), ==, 0);
    } else {
        int flags = strstr(c->op, "-u") ? BDRV_REQ_MAY_UNMAP : 0;
        g_assert_cmpint(bdrv_pwrite_zeroes(bs, c->off, c->len, flags), ==, 0);
    }
    block_test_check_clean(bs);
    bdrv_unref(bs);

    g_autofree char *want = map_json(theirs);
    g_autofree char *got = map_json(ours);
    g_assert_cmpstr(got, ==, want);
    const char *check[] = { qemu_img, "check", "-q", "-f", "qcow2", ours, NULL };
    g_free(run_tool(check));
    const char *cmp[] = { qemu_img, "compare", "-q", "-f", "qcow2", "-F", "qcow2",
                          ours, theirs, NULL };
    g_free(run_tool(cmp));
    g_unlink(orig);
    g_unlink(base);
    g_unlink(theirs);
    g_unlink(ours);
}

static const DiscardCase cases[] = {
    { "v3/discard", "compat=1.1", 0, true, "discard", 0, 512 << 10 },
    { "v3/write-zeroes", "compat=1.1", 0, true, "write -z", 0, 512 << 10 },
    { "v3/write-zeroes-unmap", "compat=1.1", 0, true, "write -z -u", 0, 512 << 10 },
    { "v3/discard-all", "compat=1.1", 0, true, "discard", 0, 1 << 20 },
    { "v3-backing/discard", "compat=1.1", 1, true, "discard", 0, 512 << 10 },
    { "v3-backing/write-zeroes", "compat=1.1", 1, true, "write -z", 0, 512 << 10 },
    { "v3-backing/write-zeroes-unmap", "compat=1.1", 1, true, "write -z -u", 0, 512 << 10 },
    { "v2/discard", "compat=0.10", 0, true, "discard", 0, 512 << 10 },
    { "v2-backing/discard", "compat=0.10", 1, true, "discard", 0, 512 << 10 },
    { "extl2/discard", "extended_l2=on", 0, true, "discard", 0, 512 << 10 },
    { "extl2/write-zeroes", "extended_l2=on", 0, true, "write -z", 0, 512 << 10 },
    { "extl2/write-zeroes-unmap", "extended_l2=on", 0, true, "write -z -u", 0, 512 << 10 },
    { "extl2-backing/discard", "extended_l2=on", 1, true, "discard", 0, 512 << 10 },
    /* Partial clusters: QEMU zeroes a whole cluster that already reads as zeroes. */
    { "v3/write-zeroes-partial", "compat=1.1", 0, true, "write -z", 68 << 10, 272 << 10 },
    { "v3/write-zeroes-unmap-partial", "compat=1.1", 0, true, "write -z -u", 4 << 10,
      400 << 10 },
    { "v3-backing/write-zeroes-partial", "compat=1.1", 1, true, "write -z", 68 << 10,
      272 << 10 },
    { "v3/discard-partial", "compat=1.1", 0, true, "discard", 4 << 10, 400 << 10 },
    /* A disk whose last cluster is partial: it counts whole at the end of the disk. */
    { "v3-unaligned-size/discard-to-end", "compat=1.1", 0, true, "discard", 900 << 10,
      100 << 10, "1000k" },
    { "v3-unaligned-size/write-zeroes-to-end", "compat=1.1", 0, true, "write -z", 970 << 10,
      30 << 10, "1000k" },
    { "v3-unaligned-size/write-zeroes-unmap-to-end", "compat=1.1", 0, true, "write -z -u",
      0, 1000 << 10, "1000k" },
    /* Extended L2: partial clusters are zeroed by subclusters. */
    { "extl2/write-zeroes-partial", "extended_l2=on", 0, true, "write -z", 68 << 10,
      272 << 10 },
    { "extl2/write-zeroes-subcluster-parts", "extended_l2=on", 0, true, "write -z -u",
      (60 << 10) + 100, 70 << 10 },
    { "extl2/write-zeroes-in-one-subcluster", "extended_l2=on", 0, true, "write -z",
      (200 << 10) + 100, 1000 },
    { "extl2-sparse-backing/write-zeroes-partial", "extended_l2=on", 2, true, "write -z",
      (100 << 10) + 512, 300 << 10 },
    { "v3-sparse-backing/write-zeroes-partial", "compat=1.1", 2, true, "write -z", 68 << 10,
      272 << 10 },
    { "v3-sparse-backing/write-zeroes-unallocated-head", "compat=1.1", 2, true, "write -z",
      200 << 10, 100 << 10 },
    { "v3-sparse-backing/write-zeroes-data-head", "compat=1.1", 2, true, "write -z -u",
      100 << 10, 100 << 10 },
    { "v3/write-zeroes-across-border", "compat=1.1", 0, true, "write -z", 180 << 10,
      20 << 10 },
    { "v3/write-zeroes-to-disk-end", "compat=1.1", 0, true, "write -z -u", 900 << 10,
      124 << 10 },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-qcow2-discard-XXXXXX", NULL);
    g_assert_nonnull(test_dir);
    qemu_img = g_find_program_in_path("qemu-img");
    qemu_io = g_find_program_in_path("qemu-io");
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/qcow2-discard/%s", cases[i].name);
        g_test_add_data_func(name, &cases[i], test_discard_like_qemu);
    }
    int ret = g_test_run();
    g_rmdir(test_dir);
    return ret;
}
