/*
 * The metadata-overlap index (block/qcow2-overlap.c): adding, removing and querying
 * cluster ranges, and the overlap-check option parsing.  The write-path behaviour is
 * tested end to end in tests/functional/interop/test_qcow2_overlap.py.
 */
#include <glib.h>

#include "block/qcow2.h"
#include "sen/keyval.h"

static void test_index_add_query(void)
{
    Qcow2OlIndex idx = { 0 };
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 0, 100, ~0u), ==, 0);
    qcow2_ol_index_add(&idx, 10, 3, QCOW2_OL_ACTIVE_L1);   /* 10..12 */
    qcow2_ol_index_add(&idx, 5, 1, QCOW2_OL_ACTIVE_L2);    /* 5, inserted before */
    qcow2_ol_index_add(&idx, 100, 1, QCOW2_OL_REFCOUNT_BLOCK);
    g_assert_cmpuint(idx.n, ==, 3); /* ranges, not clusters */
    /* Ranges that touch, and ranges that only border. */
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 4, 1, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 6, 4, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 4, 2, ~0u), ==, QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 12, 1, ~0u), ==, QCOW2_OL_ACTIVE_L1);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 13, 87, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 13, 88, ~0u), ==, QCOW2_OL_REFCOUNT_BLOCK);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 101, UINT32_MAX, ~0u), ==, 0);
    /* The mask: an ignored type is no hit, the next cluster in range still is. */
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 0, 11, ~QCOW2_OL_ACTIVE_L2), ==,
                     QCOW2_OL_ACTIVE_L1);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 0, 10, ~QCOW2_OL_ACTIVE_L2), ==, 0);
    /* One cluster holding two types (a corrupt image): both are kept. */
    qcow2_ol_index_add(&idx, 11, 1, QCOW2_OL_REFCOUNT_TABLE);
    g_assert_cmpuint(idx.n, ==, 5); /* 10..12 split in three */
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 11, 1, ~QCOW2_OL_ACTIVE_L1), ==,
                     QCOW2_OL_REFCOUNT_TABLE);
    qcow2_ol_index_clear(&idx);
    g_assert_cmpuint(idx.n, ==, 0);
}

static void test_index_remove(void)
{
    Qcow2OlIndex idx = { 0 };
    qcow2_ol_index_add(&idx, 0, 1, QCOW2_OL_MAIN_HEADER);
    qcow2_ol_index_add(&idx, 20, 10, QCOW2_OL_ACTIVE_L1);
    qcow2_ol_index_add(&idx, 25, 1, QCOW2_OL_ACTIVE_L2);
    qcow2_ol_index_add(&idx, 40, 1, QCOW2_OL_ACTIVE_L2);
    qcow2_ol_index_remove(&idx, 22, 5, QCOW2_OL_ACTIVE_L1); /* 22..26 */
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 22, 3, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 25, 1, ~0u), ==, QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 21, 1, ~0u), ==, QCOW2_OL_ACTIVE_L1);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 27, 1, ~0u), ==, QCOW2_OL_ACTIVE_L1);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 40, 1, ~0u), ==, QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(idx.n, ==, 5);
    qcow2_ol_index_remove(&idx, 0, 1000, QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 25, 1, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 30, 100, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 0, 1, ~0u), ==, QCOW2_OL_MAIN_HEADER);
    g_assert_cmpuint(idx.n, ==, 3);
    qcow2_ol_index_clear(&idx);
}

/* Many random additions against a plain bitmap as the reference. */
static void test_index_random(void)
{
    enum { N = 4096 };
    static unsigned ref[N];
    Qcow2OlIndex idx = { 0 };
    GRand *r = g_rand_new_with_seed(7);
    memset(ref, 0, sizeof(ref));
    for (int i = 0; i < 3000; i++) {
        uint64_t n = g_rand_int_range(r, 1, g_rand_boolean(r) ? 8 : 300);
        uint64_t c = g_rand_int_range(r, 0, N - n);
        unsigned type = 1u << g_rand_int_range(r, 0, QCOW2_OL_NB);
        if (g_rand_boolean(r)) {
            qcow2_ol_index_add(&idx, c, n, type);
            for (uint64_t k = c; k < c + n; k++) {
                ref[k] |= type;
            }
        } else {
            qcow2_ol_index_remove(&idx, c, n, type);
            for (uint64_t k = c; k < c + n; k++) {
                ref[k] &= ~type;
            }
        }
    }
    for (uint64_t c = 0; c < N; c++) {
        g_assert_cmpuint(qcow2_ol_index_query(&idx, c, 1, ~0u), ==, ref[c]);
    }
    /* Queries of several clusters agree with the reference too; then a table of a
     * million clusters is one range, split where another type lies inside it. */
    for (uint64_t c = 0; c + 16 < N; c += 16) {
        bool any = false;
        for (uint64_t k = c; k < c + 16; k++) {
            any |= ref[k] != 0;
        }
        g_assert_cmpuint(!!qcow2_ol_index_query(&idx, c, 16, ~0u), ==, any);
    }
    qcow2_ol_index_clear(&idx);
    qcow2_ol_index_add(&idx, 1000, 1u << 20, QCOW2_OL_INACTIVE_L1);
    qcow2_ol_index_add(&idx, 5000, 1, QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(idx.n, ==, 3);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 5000, 1, ~QCOW2_OL_INACTIVE_L1), ==,
                     QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 999, 1, ~0u), ==, 0);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 1000 + (1u << 20), 1, ~0u), ==, 0);
    g_rand_free(r);
    qcow2_ol_index_clear(&idx);
}

static unsigned parse(const char *str, bool ok)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(str, NULL, &err);
    g_assert_nonnull(kv);
    unsigned mask = 12345;
    g_assert_cmpint(qcow2_overlap_parse_opts(kv, "t", &mask, &err), ==, ok);
    if (!ok) {
        g_assert_nonnull(err);
        error_free(err);
    }
    keyval_free(kv);
    return mask;
}

static void test_options(void)
{
    unsigned mask = 0;
    g_assert_true(qcow2_overlap_parse_opts(NULL, "t", &mask, NULL));
    g_assert_cmpuint(mask, ==, QCOW2_OL_CACHED); /* QEMU's default */
    g_assert_cmpuint(parse("x=1", true), ==, QCOW2_OL_CACHED);
    g_assert_cmpuint(parse("overlap-check=none", true), ==, 0);
    g_assert_cmpuint(parse("overlap-check=constant", true), ==, QCOW2_OL_CONSTANT);
    g_assert_cmpuint(parse("overlap-check=all", true), ==, QCOW2_OL_ALL);
    g_assert_cmpuint(parse("overlap-check.template=all", true), ==, QCOW2_OL_ALL);
    g_assert_cmpuint(parse("overlap-check=none,overlap-check.active-l2=on", true), ==,
                     QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(parse("overlap-check.main-header=off", true), ==,
                     QCOW2_OL_CACHED & ~QCOW2_OL_MAIN_HEADER);
    g_assert_cmpuint(QCOW2_OL_CACHED & QCOW2_OL_INACTIVE_L2, ==, 0);
    parse("overlap-check=bogus", false);
    parse("overlap-check=all,overlap-check.template=none", false);
    parse("overlap-check.refcount-block=perhaps", false);
}

/* qcow2-check.c records bitmap tables under a type bit past the QCOW2_OL_* ones. */
static void test_index_type_past_ol_nb(void)
{
    const unsigned extra = 1u << QCOW2_OL_NB;
    Qcow2OlIndex idx = { 0 };
    qcow2_ol_index_add(&idx, 10, 4, QCOW2_OL_ACTIVE_L2);
    qcow2_ol_index_add(&idx, 12, 4, extra);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 15, 1, ~0u), ==, extra);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 12, 1, ~0u), ==, extra | QCOW2_OL_ACTIVE_L2);
    qcow2_ol_index_remove(&idx, 0, 100, QCOW2_OL_ACTIVE_L2);
    g_assert_cmpuint(qcow2_ol_index_query(&idx, 10, 10, ~0u), ==, extra);
    qcow2_ol_index_clear(&idx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2-overlap/index-add-query", test_index_add_query);
    g_test_add_func("/qcow2-overlap/index-remove", test_index_remove);
    g_test_add_func("/qcow2-overlap/index-random", test_index_random);
    g_test_add_func("/qcow2-overlap/index-type-past-ol-nb", test_index_type_past_ol_nb);
    g_test_add_func("/qcow2-overlap/options", test_options);
    return g_test_run();
}
