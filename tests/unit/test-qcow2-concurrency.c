/*
 * QCOW2 under concurrent requests: reader threads keep reading (through the fast path
 * that leaves the lock early, qcow2_read_guest_unlock) while the main thread runs
 * exclusive operations (write-zeroes, which waits for unlocked data I/O to drain) and
 * rewrites next to them.  Every read must see its cluster's pattern and nothing may
 * hang: a lost wake-up of the exclusive waiter shows up as the test's timeout.
 */
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "sen/block.h"
#include "block-test-util.h"

enum {
    CLUSTER = 65536,
    READ_CLUSTERS = 32,    /* clusters the readers check: [0, 32) */
    CHURN_CLUSTERS = 32,   /* clusters the main thread zeroes and rewrites: [32, 64) */
    READERS = 6,
    ROUNDS = 3000,
};

typedef struct Reader {
    BlockDriverState *bs;
    GThread *thread;
    gint *stop;
    unsigned seed;
    unsigned reads, bad;
} Reader;

static uint8_t pattern_of(unsigned cluster)
{
    return 0x40 + cluster;
}

static gpointer reader_run(gpointer opaque)
{
    Reader *r = opaque;
    uint8_t buf[4096];
    GRand *rnd = g_rand_new_with_seed(r->seed);

    while (!g_atomic_int_get(r->stop)) {
        unsigned cl = g_rand_int_range(rnd, 0, READ_CLUSTERS);
        /* 4 KiB at a 512-byte step inside the cluster: one piece of one data cluster. */
        uint64_t steps = (CLUSTER - sizeof(buf)) / 512;
        uint64_t in = (uint64_t)g_rand_int_range(rnd, 0, steps) * 512;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        int ret = bdrv_preadv(r->bs, (uint64_t)cl * CLUSTER + in, sizeof(buf), &iov, 1, 0);
        r->reads++;
        for (size_t i = 0; i < sizeof(buf); i++) {
            if (ret < 0 || buf[i] != pattern_of(cl)) {
                r->bad++;
                break;
            }
        }
    }
    g_rand_free(rnd);
    return NULL;
}

static void write_pattern(BlockDriverState *bs, unsigned cl)
{
    g_autofree uint8_t *buf = g_malloc(CLUSTER);
    memset(buf, pattern_of(cl), CLUSTER);
    g_assert_cmpint(bdrv_pwrite(bs, (uint64_t)cl * CLUSTER, CLUSTER, buf), ==, 0);
}

static void test_reads_during_exclusive_ops(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-test-qcow2-conc-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "img.qcow2", NULL);
    g_autofree char *opts = g_strdup_printf("size=%d,cluster_size=%d",
                                            (READ_CLUSTERS + CHURN_CLUSTERS) * CLUSTER,
                                            CLUSTER);
    block_test_create("qcow2", path, opts);
    BlockDriverState *bs = block_test_open(path, "qcow2", BDRV_O_RDWR);
    for (unsigned cl = 0; cl < READ_CLUSTERS + CHURN_CLUSTERS; cl++) {
        write_pattern(bs, cl);
    }

    gint stop = 0;
    Reader readers[READERS];
    for (unsigned i = 0; i < READERS; i++) {
        readers[i] = (Reader){ .bs = bs, .stop = &stop, .seed = 1234 + i };
        readers[i].thread = g_thread_new("reader", reader_run, &readers[i]);
    }
    GRand *rnd = g_rand_new_with_seed(99);
    for (unsigned round = 0; round < ROUNDS; round++) {
        unsigned cl = READ_CLUSTERS + g_rand_int_range(rnd, 0, CHURN_CLUSTERS);
        g_assert_cmpint(bdrv_pwrite_zeroes(bs, (uint64_t)cl * CLUSTER, CLUSTER, 0), ==, 0);
        write_pattern(bs, cl);
    }
    g_rand_free(rnd);
    g_atomic_int_set(&stop, 1);
    unsigned reads = 0;
    for (unsigned i = 0; i < READERS; i++) {
        g_thread_join(readers[i].thread);
        g_assert_cmpuint(readers[i].bad, ==, 0);
        reads += readers[i].reads;
    }
    g_assert_cmpuint(reads, >, 0);
    for (unsigned cl = READ_CLUSTERS; cl < READ_CLUSTERS + CHURN_CLUSTERS; cl++) {
        uint8_t b;
        g_assert_cmpint(bdrv_pread(bs, (uint64_t)cl * CLUSTER + CLUSTER - 1, 1, &b), ==, 0);
        g_assert_cmpuint(b, ==, pattern_of(cl));
    }
    block_test_check_clean(bs);
    bdrv_unref(bs);
    g_unlink(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2-concurrency/reads-during-exclusive-ops",
                    test_reads_during_exclusive_ops);
    return g_test_run();
}
