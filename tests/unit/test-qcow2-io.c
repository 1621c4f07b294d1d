/*
 * QCOW2 through the block layer: random writes of random sizes checked against a shadow
 * copy, across cluster sizes, refcount widths, extended L2 and a backing file; the image
 * must read back identically after a reopen and pass our checker with no leaks/errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "sen/buffer-is-zero.h"
#include "block-test-util.h"

#define DATA_FILE "sen-test-qcow2-io.data"

typedef struct IoCase {
    const char *opts;
    uint64_t size;
    bool backing;
} IoCase;

/* One directory per process: with fixed names in /tmp, two runs at once (two build trees
 * on one machine) overwrite each other's images. */
static char *test_dir;

static char *tmp_path(const char *name)
{
    return g_build_filename(test_dir, name, NULL);
}

static void test_io(gconstpointer data)
{
    const IoCase *c = data;
    g_autofree char *path = tmp_path("sen-test-qcow2-io.qcow2");
    g_autofree char *base = tmp_path("sen-test-qcow2-base.qcow2");
    uint8_t *shadow = g_malloc0(c->size);
    GRand *r = g_rand_new_with_seed(42);

    if (c->backing) {
        g_autofree char *o = g_strdup_printf("size=%" G_GUINT64_FORMAT, c->size);
        block_test_create("qcow2", base, o);
        BlockDriverState *b = block_test_open(base, "qcow2", BDRV_O_RDWR);
        for (uint64_t i = 0; i < c->size; i++) {
            shadow[i] = i * 7 + 3;
        }
        g_assert_cmpint(bdrv_pwrite(b, 0, c->size / 2, shadow), ==, 0);
        memset(shadow + c->size / 2, 0, c->size - c->size / 2);
        bdrv_unref(b);
        g_autofree char *o2 = g_strdup_printf("%s,backing_file=%s,backing_fmt=qcow2",
                                              c->opts, base);
        block_test_create("qcow2", path, o2);
    } else {
        block_test_create("qcow2", path, c->opts);
    }
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    g_assert_cmpint(bs->total_size, ==, c->size);
    uint8_t *buf = g_malloc(256 * 1024);
    for (int i = 0; i < 300; i++) {
        uint64_t len = g_rand_int_range(r, 1, 200 * 1024);
        uint64_t off = g_rand_int_range(r, 0, c->size - len);
        int op = g_rand_int_range(r, 0, 8);
        if (op == 6) {
            int flags = g_rand_boolean(r) ? BDRV_REQ_MAY_UNMAP : 0;
            g_assert_cmpint(bdrv_pwrite_zeroes(bs, off, len, flags), ==, 0);
            memset(shadow + off, 0, len);
        } else if (op == 7) {
            /* Discard drops whole clusters only; they read as zeroes afterwards. */
            uint64_t cs = ((BDRVQcow2State *)bs->opaque)->cluster_size;
            uint64_t a = (off + cs - 1) / cs * cs, b = (off + len) / cs * cs;
            g_assert_cmpint(bs->drv->pdiscard(bs, off, len), ==, 0);
            if (b > a) {
                memset(shadow + a, 0, b - a);
            }
        } else if (op < 3) {
            for (uint64_t j = 0; j < len; j++) {
                buf[j] = g_rand_int(r);
            }
            g_assert_cmpint(bdrv_pwrite(bs, off, len, buf), ==, 0);
            memcpy(shadow + off, buf, len);
        } else {
            g_assert_cmpint(bdrv_pread(bs, off, len, buf), ==, 0);
            g_assert_cmpmem(buf, len, shadow + off, len);
        }
    }
    block_test_check_clean(bs);
    bdrv_unref(bs);

    bs = block_test_open(path, "qcow2", 0);
    uint8_t *all = g_malloc(c->size);
    g_assert_cmpint(bdrv_pread(bs, 0, c->size, all), ==, 0);
    g_assert_cmpmem(all, c->size, shadow, c->size);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_autofree char *data_path = tmp_path(DATA_FILE);
    if (strstr(c->opts, "data_file_raw=on")) {
        /* A raw data file is the disk as the guest sees it, without the metadata. */
        g_autofree char *raw = NULL;
        gsize raw_len = 0;
        g_assert_true(g_file_get_contents(data_path, &raw, &raw_len, NULL));
        g_assert_cmpmem(raw, raw_len, shadow, c->size);
    }
    g_free(all);
    g_free(buf);
    g_free(shadow);
    g_rand_free(r);
    g_unlink(path);
    g_unlink(base);
    g_unlink(data_path);
}


/*
 * The data-file open option (QEMU's data-file BlockdevRef, here data-file.filename=)
 * finds a data file that moved; without it the name in the header is used and its
 * absence is an error naming it; an image without a data file refuses the option.
 */
static void test_data_file_option(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-df.qcow2");
    g_autofree char *data = tmp_path("sen-test-qcow2-df.data");
    g_autofree char *moved = tmp_path("sen-test-qcow2-df-moved.data");
    uint8_t buf[4096], back[4096];
    Error *err = NULL;

    block_test_create("qcow2", path, "size=1M,data_file=sen-test-qcow2-df.data");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    memset(buf, 0x5c, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(buf), buf), ==, 0);
    bdrv_unref(bs);
    g_assert_cmpint(g_rename(data, moved), ==, 0);

    g_assert_null(bdrv_open(path, NULL, "qcow2", 0, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "sen-test-qcow2-df.data"));
    error_free(g_steal_pointer(&err));

    Keyval *kv = block_keyval_new();
    block_keyval_add(kv, "data-file.filename", moved);
    bs = bdrv_open(path, kv, "qcow2", 0, &err);
    g_assert_null(err);
    g_assert_cmpint(bdrv_pread(bs, 0, sizeof(back), back), ==, 0);
    g_assert_cmpmem(back, sizeof(back), buf, sizeof(buf));
    block_test_check_clean(bs);
    bdrv_unref(bs);

    g_autofree char *plain = tmp_path("sen-test-qcow2-df-plain.qcow2");
    block_test_create("qcow2", plain, "size=1M");
    kv = block_keyval_new();
    block_keyval_add(kv, "data-file.filename", moved);
    g_assert_null(bdrv_open(plain, kv, "qcow2", 0, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'data-file' can only be set"));
    error_free(err);
    g_unlink(path);
    g_unlink(moved);
    g_unlink(plain);
}

/*
 * A data file that is the image file itself would let guest writes at guest offsets
 * rewrite the image's header and tables: a writable open refuses it.
 */
static void test_data_file_is_image(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-dfself.qcow2");
    Error *err = NULL;

    block_test_create("qcow2", path, "size=1M,data_file=sen-test-qcow2-dfself.qcow2");
    g_assert_null(bdrv_open(path, NULL, "qcow2", BDRV_O_RDWR, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "is the image file itself"));
    error_free(err);
    BlockDriverState *bs = block_test_open(path, "qcow2", 0);
    bdrv_unref(bs);
    g_unlink(path);
}

static int64_t allocated_bytes(const char *path)
{
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    return (int64_t)st.st_blocks * 512;
}

/*
 * With discard=unmap, clusters a discard or an unmapping write-zeroes drops from a data
 * file image give their blocks in the data file back; they read as zeroes.
 */
static void test_data_file_unmap(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-dfu.qcow2");
    g_autofree char *data = tmp_path("sen-test-qcow2-dfu.data");
    g_autofree uint8_t *buf = g_malloc(1 << 20);

    /* The blocks given back are what the test sees: the file system must punch holes. */
    memset(buf, 1, 1 << 20);
    g_assert_true(g_file_set_contents(data, (const char *)buf, 1 << 20, NULL));
    int fd = open(data, O_RDWR);
    g_assert_cmpint(fd, >=, 0);
    bool punched = fsync(fd) == 0 &&
                   fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20) == 0;
    close(fd);
    if (!punched || allocated_bytes(data) >= 1 << 20) {
        g_unlink(data);
        g_test_skip("the test directory's file system does not punch holes");
        return;
    }

    block_test_create("qcow2", path, "size=4M,data_file=sen-test-qcow2-dfu.data");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR | BDRV_O_UNMAP);
    memset(buf, 0x77, 1 << 20);
    g_assert_cmpint(bdrv_pwrite(bs, 0, 1 << 20, buf), ==, 0);
    g_assert_cmpint(bdrv_pwrite(bs, 2 << 20, 1 << 20, buf), ==, 0);
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    int64_t full = allocated_bytes(data);
    g_assert_cmpint(full, >=, 2 << 20);

    g_assert_cmpint(bdrv_pwrite_zeroes(bs, 0, 1 << 20, BDRV_REQ_MAY_UNMAP), ==, 0);
    int64_t after_zero = allocated_bytes(data);
    g_assert_cmpint(after_zero, <=, full - (1 << 20));
    g_assert_cmpint(bdrv_pdiscard(bs, 2 << 20, 1 << 20), ==, 0);
    g_assert_cmpint(allocated_bytes(data), <=, after_zero - (1 << 20));

    g_assert_cmpint(bdrv_pread(bs, 0, 1 << 20, buf), ==, 0);
    g_assert_true(buffer_is_zero(buf, 1 << 20));
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(path);
    g_unlink(data);
}

/*
 * A snapshot create that fails part-way (here: the image file may not grow, so the L1
 * copy cannot be written) leaves no snapshot and no extra references: the image checks
 * clean, OFLAG_COPIED included, and in-place writes keep working.
 */
static void test_snapshot_create_fails_cleanly(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-snapfail.qcow2");
    block_test_create("qcow2", path, "size=4M,cluster_size=4096");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    memset(buf, 0x3c, 1 << 20);
    g_assert_cmpint(bdrv_pwrite(bs, 0, 1 << 20, buf), ==, 0);
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    /* Guest writes grew the file ahead (qcow2_prealloc_ahead); closing trims it, so the
     * snapshot's clusters lie past the end again. */
    bdrv_unref(bs);
    bs = block_test_open(path, "qcow2", BDRV_O_RDWR);

    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    struct rlimit old, lim;
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
    lim = old;
    lim.rlim_cur = st.st_size;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
    BlockSnapshotInfo sn = { .name = (char *)"s1" };
    Error *err = NULL;
    bool created = bs->drv->snapshot_create(bs, &sn, &err);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
    signal(SIGXFSZ, old_handler);
    g_assert_false(created);
    g_assert_nonnull(strstr(error_get_pretty(err), "could not create snapshot 's1'"));
    error_free(err);

    GPtrArray *list = bs->drv->snapshot_list(bs, &err);
    g_assert_nonnull(list);
    g_assert_cmpuint(list->len, ==, 0);
    g_ptr_array_free(list, TRUE);
    block_test_check_clean(bs);
    memset(buf, 0x4d, 4096);
    g_assert_cmpint(bdrv_pwrite(bs, 8192, 4096, buf), ==, 0);
    bdrv_unref(bs);
    bs = block_test_open(path, "qcow2", 0);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(path);
}

/*
 * A partial write into a new cluster of the tail the file grew ahead (qcow2_prealloc_ahead)
 * skips the zeroing, the tail reading zeroes already; one into a cluster freed there and
 * reused still zeroes it, or the rest of the cluster would show the old bytes.  With data
 * "tmpfs" on /dev/shm, whose fallocate has no ZERO_RANGE: the file is not grown and the
 * writes extend it themselves.
 */
static void test_grow_ahead_partial_writes(gconstpointer data)
{
    bool tmpfs = data != NULL;
    struct statfs sf;
    if (tmpfs && (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC)) {
        g_test_skip("no tmpfs at /dev/shm");
        return;
    }
    g_autofree char *name = g_strdup_printf("sen-test-qcow2-growpart-%d.qcow2", (int)getpid());
    g_autofree char *path = tmpfs ? g_build_filename("/dev/shm", name, NULL) : tmp_path(name);
    const uint64_t cs = 65536;
    block_test_create("qcow2", path, "size=64M");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR | BDRV_O_UNMAP);
    g_autofree uint8_t *buf = g_malloc(cs), *want = g_malloc0(cs);
    memset(buf, 0xaa, cs);
    g_assert_cmpint(bdrv_pwrite(bs, 0, cs, buf), ==, 0);
    /* Its host cluster goes back to the free space, in the grown tail. */
    g_assert_cmpint(bdrv_pdiscard(bs, 0, cs), ==, 0);
    for (int round = 0; round < 2; round++) {
        for (uint64_t c = 1; c <= 4; c++) {
            memset(buf, 0x10 * c + round, 4096);
            g_assert_cmpint(bdrv_pwrite(bs, (c << 20) + 4096 * c, 4096, buf), ==, 0);
        }
        for (uint64_t c = 1; c <= 4; c++) {
            memset(want, 0, cs);
            memset(want + 4096 * c, 0x10 * c + round, 4096);
            g_assert_cmpint(bdrv_pread(bs, c << 20, cs, buf), ==, 0);
            g_assert_cmpmem(buf, cs, want, cs);
        }
        g_assert_cmpint(bdrv_pread(bs, 0, cs, buf), ==, 0);
        g_assert_true(buffer_is_zero(buf, cs));
        block_test_check_clean(bs);
        GStatBuf st;
        g_assert_cmpint(g_stat(path, &st), ==, 0);
        g_assert_true(!tmpfs || st.st_size < QCOW2_PREALLOC_STEP);
        /* Again after a reopen: the trimmed file, grown anew. */
        bdrv_unref(bs);
        bs = block_test_open(path, "qcow2", round ? 0 : BDRV_O_RDWR | BDRV_O_UNMAP);
        if (!round) {
            g_assert_cmpint(bdrv_pwrite_zeroes(bs, 1 << 20, 4 << 20, BDRV_REQ_MAY_UNMAP),
                            ==, 0);
        }
    }
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(path);
}

/*
 * Reads into many buffers (as virtio-blk passes guest pages) return what single-buffer
 * reads return, over runs of data clusters stored back to back (one vectored transfer),
 * runs broken by zero, unallocated and backing clusters, and iovecs longer than the read.
 */
static void test_scattered_reads(gconstpointer data)
{
    const char *opts = data;
    g_autofree char *path = tmp_path("sen-test-qcow2-sg.qcow2");
    g_autofree char *base = tmp_path("sen-test-qcow2-sg-base.qcow2");
    const uint64_t size = 4 << 20;
    GRand *r = g_rand_new_with_seed(7);
    uint8_t *shadow = g_malloc(size), *got = g_malloc(size), *buf = g_malloc(size);

    block_test_create("qcow2", base, "size=4M");
    BlockDriverState *b = block_test_open(base, "qcow2", BDRV_O_RDWR);
    for (uint64_t i = 0; i < size; i++) {
        shadow[i] = i * 13 + 1;
    }
    g_assert_cmpint(bdrv_pwrite(b, 0, size, shadow), ==, 0);
    bdrv_unref(b);
    g_autofree char *o = g_strdup_printf("%s,backing_file=%s,backing_fmt=qcow2", opts, base);
    block_test_create("qcow2", path, o);
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    /* One long run written at once (clusters back to back), then holes of each kind. */
    for (uint64_t i = 0; i < 2 << 20; i++) {
        buf[i] = g_rand_int(r);
    }
    g_assert_cmpint(bdrv_pwrite(bs, 256 << 10, 2 << 20, buf), ==, 0);
    memcpy(shadow + (256 << 10), buf, 2 << 20);
    g_assert_cmpint(bdrv_pwrite_zeroes(bs, 1 << 20, 64 << 10, 0), ==, 0);
    memset(shadow + (1 << 20), 0, 64 << 10);
    g_assert_cmpint(bdrv_pwrite(bs, 3 << 20, 100 << 10, buf), ==, 0);
    memcpy(shadow + (3 << 20), buf, 100 << 10);

    for (int i = 0; i < 200; i++) {
        uint64_t len = g_rand_int_range(r, 2, 300 << 10);
        uint64_t off = g_rand_int_range(r, 0, size - len);
        struct iovec iov[64];
        int niov = 0;
        uint64_t given = 0;
        bool longer = g_rand_int_range(r, 0, 8) == 0;
        while (given < len && niov < 63) {
            uint64_t n = MIN(len - given, (uint64_t)g_rand_int_range(r, 1, 16 << 10));
            iov[niov++] = (struct iovec){ .iov_base = got + given, .iov_len = n };
            given += n;
        }
        if (given < len || longer) {
            iov[niov++] = (struct iovec){ .iov_base = got + given,
                                          .iov_len = len - given + (longer ? 512 : 0) };
        }
        memset(got, 0xee, len + 512);
        g_assert_cmpint(bdrv_preadv(bs, off, len, iov, niov, 0), ==, 0);
        g_assert_cmpmem(got, len, shadow + off, len);
        g_assert_cmpint(got[len], ==, 0xee); /* nothing past the read */
    }
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_free(shadow);
    g_free(got);
    g_free(buf);
    g_rand_free(r);
    g_unlink(path);
    g_unlink(base);
}

static void test_dirty_open(void)
{
    /* A leaked cluster plus the dirty bit: a read-write open repairs it. */
    g_autofree char *path = tmp_path("sen-test-qcow2-dirty.qcow2");
    block_test_create("qcow2", path, "size=1M,cluster_size=4096,lazy_refcounts=on");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    BDRVQcow2State *s = bs->opaque;
    int64_t leaked = qcow2_alloc_clusters(s, 1);
    g_assert_cmpint(leaked, >, 0);
    /* Inside the file: a refcount past its end is no leak (as for qemu-img). */
    uint8_t junk[4096] = { 0 };
    g_assert_cmpint(bdrv_pwrite(bs->file, leaked, sizeof(junk), junk), ==, 0);
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    BlockCheckResult res;
    g_assert_cmpint(bs->drv->check(bs, &res, BDRV_FIX_NONE), ==, 0);
    g_assert_cmpint(res.leaks, ==, 1);
    bdrv_unref(bs);
    FILE *f = fopen(path, "r+b");
    uint8_t one[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
    g_assert_nonnull(f);
    g_assert_cmpint(fseek(f, 72, SEEK_SET), ==, 0);
    g_assert_cmpint(fwrite(one, 1, 8, f), ==, 8);
    fclose(f);
    bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    s = bs->opaque;
    g_assert_false(s->h.incompatible_features & QCOW2_INCOMPAT_DIRTY);
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(path);
}

/* A snapshot name the table's 16-bit length cannot hold is refused, table untouched. */
static void test_snapshot_name_too_long(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-longname.qcow2");
    block_test_create("qcow2", path, "size=1M");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    g_autofree char *name = g_malloc(70001);
    memset(name, 'n', 70000);
    name[70000] = 0;
    BlockSnapshotInfo sn = { .name = name };
    Error *err = NULL;
    g_assert_false(bs->drv->snapshot_create(bs, &sn, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "snapshot name of 70000 bytes is longer"));
    error_free(err);
    err = NULL;
    name[65535] = 0;  /* the longest the format holds */
    g_assert_true(bs->drv->snapshot_create(bs, &sn, &err));
    GPtrArray *list = bs->drv->snapshot_list(bs, &err);
    g_assert_nonnull(list);
    g_assert_cmpuint(list->len, ==, 1);
    g_ptr_array_unref(list);
    bdrv_unref(bs);
    bs = block_test_open(path, "qcow2", BDRV_O_RDWR | BDRV_O_CHECK);
    list = bs->drv->snapshot_list(bs, &err);
    g_assert_cmpuint(list->len, ==, 1);
    g_ptr_array_unref(list);
    bdrv_unref(bs);
    g_unlink(path);
}

/*
 * Hostile images (100 per run): random byte flips in the metadata clusters of a real
 * image.  Opening may fail; whatever opens must survive reads, writes, discards and a
 * check (with repair) without crashing or hanging.
 */
static void test_corrupt_images(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-corrupt.qcow2");
    g_autofree char *base = tmp_path("sen-test-qcow2-corrupt-base.qcow2");
    block_test_create("qcow2", path, "size=2M,cluster_size=512");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    uint8_t *buf = g_malloc(2 << 20);
    for (size_t i = 0; i < (2u << 20); i++) {
        buf[i] = i % 251;
    }
    g_assert_cmpint(bdrv_pwrite(bs, 0, 1 << 20, buf), ==, 0);
    BlockSnapshotInfo sn = { .name = (char *)"snap" };
    Error *err = NULL;
    g_assert_true(bs->drv->snapshot_create(bs, &sn, &err));
    g_assert_cmpint(bdrv_pwrite(bs, 4096, 8192, buf), ==, 0);
    bdrv_unref(bs);
    gchar *orig;
    gsize len;
    g_assert_true(g_file_get_contents(path, &orig, &len, NULL));
    GRand *r = g_rand_new_with_seed(1234);
    unsigned opened = 0;
    for (int it = 0; it < 100; it++) {
        gchar *img = g_memdup2(orig, len);
        int flips = g_rand_int_range(r, 1, 8);
        for (int f = 0; f < flips; f++) {
            /* Mostly the metadata at the start (header, tables), sometimes anywhere. */
            size_t at = g_rand_boolean(r) ? g_rand_int_range(r, 0, 8 * 512)
                                          : g_rand_int_range(r, 0, len);
            img[at] = g_rand_boolean(r) ? (gchar)g_rand_int(r) : img[at] ^ (1 << (f % 8));
        }
        g_assert_true(g_file_set_contents(base, img, len, NULL));
        g_free(img);
        bs = bdrv_open(base, NULL, "qcow2", BDRV_O_RDWR | BDRV_O_CHECK, &err);
        if (!bs) {
            error_free(err);
            err = NULL;
            continue;
        }
        opened++;
        int64_t size = MIN(bs->total_size, 4 << 20);
        for (int k = 0; k < 4 && size > 0; k++) {
            int64_t off = g_rand_int_range(r, 0, size) & ~511;
            int64_t n = MIN(size - off, 64 * 1024);
            (void)bdrv_pread(bs, off, n, buf);
            (void)bdrv_pwrite(bs, off, MIN(n, 3000), buf);
            (void)bdrv_pwrite_zeroes(bs, off, n, 0);
            (void)bs->drv->pdiscard(bs, off, n);
        }
        BlockCheckResult res;
        (void)bs->drv->check(bs, &res, g_rand_boolean(r) ? BDRV_FIX_LEAKS | BDRV_FIX_ERRORS
                                                         : BDRV_FIX_NONE);
        bdrv_unref(bs);
    }
    g_test_message("%u of 100 corrupted images opened", opened);
    g_rand_free(r);
    g_free(orig);
    g_free(buf);
    g_unlink(path);
    g_unlink(base);
}

/* An L2 entry aimed at the L1 table: the write is refused and the image marked corrupt. */
static void test_overlap_protection(void)
{
    g_autofree char *path = tmp_path("sen-test-qcow2-overlap.qcow2");
    block_test_create("qcow2", path, "size=1M,cluster_size=4096");
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    BDRVQcow2State *s = bs->opaque;
    uint8_t buf[4096];
    memset(buf, 0x5a, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(buf), buf), ==, 0);
    g_assert_cmpint(bdrv_flush(bs), ==, 0);
    uint64_t l2 = s->l1[0] & QCOW2_L1E_OFFSET_MASK, l1 = s->h.l1_table_offset;
    bdrv_unref(bs);
    uint8_t e[8];
    qcow2_st64(e, l1 | QCOW2_OFLAG_COPIED);
    FILE *f = fopen(path, "r+b");
    g_assert_nonnull(f);
    g_assert_cmpint(fseek(f, l2, SEEK_SET), ==, 0);
    g_assert_cmpint(fwrite(e, 1, 8, f), ==, 8);
    fclose(f);
    bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    g_assert_cmpint(bdrv_pwrite(bs, 0, 512, buf), ==, -EIO);
    bdrv_unref(bs);
    Error *err = NULL;
    g_assert_null(bdrv_open(path, NULL, "qcow2", BDRV_O_RDWR, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "corrupt"));
    error_free(err);
    bs = block_test_open(path, "qcow2", 0);
    s = bs->opaque;
    g_assert_true(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT);
    bdrv_unref(bs);
    g_unlink(path);
}

int main(int argc, char **argv)
{
    static const IoCase cases[] = {
        { "size=8M", 8 << 20, false },
        { "size=4M,cluster_size=512", 4 << 20, false },
        { "size=4M,cluster_size=512,refcount_bits=1", 4 << 20, false },
        { "size=4M,cluster_size=1024,refcount_bits=64", 4 << 20, false },
        { "size=6M,cluster_size=4096,refcount_bits=2", 6 << 20, false },
        { "size=6M,cluster_size=4096,compat=0.10", 6 << 20, false },
        { "size=6M,cluster_size=4096,refcount_bits=8", 6 << 20, false },
        { "size=6M,cluster_size=2M", 6 << 20, false },
        { "size=8M,cluster_size=65536,extended_l2=on", 8 << 20, true },
        { "size=8M,cluster_size=16384,extended_l2=on", 8 << 20, false },
        { "size=4M,cluster_size=4096", 4 << 20, true },
        { "size=3M,cluster_size=512,refcount_bits=4", 3 << 20, true },
        /* External data files (the name resolves against the image's directory). */
        { "size=8M,data_file=" DATA_FILE, 8 << 20, false },
        { "size=4M,cluster_size=512,data_file=" DATA_FILE ",data_file_raw=on", 4 << 20, false },
        { "size=6M,cluster_size=4096,data_file=" DATA_FILE, 6 << 20, true },
        { "size=8M,cluster_size=65536,extended_l2=on,data_file=" DATA_FILE, 8 << 20, true },
    };
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-test-qcow2-io-XXXXXX", NULL);
    g_assert_nonnull(test_dir);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/qcow2-io/%s%s", cases[i].opts,
                                                cases[i].backing ? ",backing" : "");
        g_test_add_data_func(name, &cases[i], test_io);
    }
    g_test_add_data_func("/qcow2-io/scattered-reads/64k", "cluster_size=65536",
                         test_scattered_reads);
    g_test_add_data_func("/qcow2-io/scattered-reads/4k", "cluster_size=4096",
                         test_scattered_reads);
    g_test_add_data_func("/qcow2-io/scattered-reads/extl2", "extended_l2=on",
                         test_scattered_reads);
    g_test_add_data_func("/qcow2-io/grow-ahead-partial-writes", NULL,
                         test_grow_ahead_partial_writes);
    g_test_add_data_func("/qcow2-io/grow-ahead-partial-writes/tmpfs", "tmpfs",
                         test_grow_ahead_partial_writes);
    g_test_add_func("/qcow2-io/dirty-open-repairs", test_dirty_open);
    g_test_add_func("/qcow2-io/corrupt-images", test_corrupt_images);
    g_test_add_func("/qcow2-io/snapshot-name-too-long", test_snapshot_name_too_long);
    g_test_add_func("/qcow2-io/overlap-protection", test_overlap_protection);
    g_test_add_func("/qcow2-io/data-file-option", test_data_file_option);
    g_test_add_func("/qcow2-io/data-file-unmap", test_data_file_unmap);
    g_test_add_func("/qcow2-io/data-file-is-image", test_data_file_is_image);
    g_test_add_func("/qcow2-io/snapshot-create-fails-cleanly",
                    test_snapshot_create_fails_cleanly);
    int rc = g_test_run();
    /* Tests unlink their images; whatever a failure left behind stays for inspection. */
    g_rmdir(test_dir);
    g_free(test_dir);
    return rc;
}
