/*
 * QCOW2 metadata: header/extension codec, refcount entries of every width, L2 entry and
 * compressed descriptor decoding, compression round trips, and a randomised read/write
 * run through the block layer checked against a shadow copy and the image checker.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "sen/keyval.h"

static void test_header_roundtrip(void)
{
    Qcow2Header h = {
        .magic = QCOW2_MAGIC, .version = 3, .cluster_bits = 16, .size = 1ull << 30,
        .l1_size = 2, .l1_table_offset = 3 << 16, .refcount_table_offset = 1 << 16,
        .refcount_table_clusters = 1, .refcount_order = 4,
        .header_length = QCOW2_V3_HEADER_LEN_CT, .compression_type = 1,
        .incompatible_features = QCOW2_INCOMPAT_COMPRESSION,
        .compatible_features = QCOW2_COMPAT_LAZY_REFCOUNTS,
    };
    Qcow2Extensions ext = { .backing_fmt = (char *)"raw" };
    uint8_t buf[65536];
    size_t len = qcow2_header_build(&h, &ext, "base.img", buf, sizeof(buf));
    g_assert_cmpuint(len, >, 112);
    g_assert_cmpmem(buf + h.backing_file_offset, 8, "base.img", 8);

    Qcow2Header p;
    Qcow2Extensions pe;
    Error *err = NULL;
    g_assert_true(qcow2_header_parse(buf, sizeof(buf), "t", &p, &err));
    g_assert_true(memcmp(&p, &h, sizeof(p)) == 0);
    g_assert_true(qcow2_ext_parse(&p, buf, sizeof(buf), "t", &pe, &err));
    g_assert_cmpstr(pe.backing_fmt, ==, "raw");
    g_assert_cmpstr(qcow2_feature_name(&pe, 0, 4), ==, "extended L2 entries");
    g_assert_cmpstr(qcow2_feature_name(&pe, 1, 0), ==, "lazy refcounts");
    g_assert_true(qcow2_header_check_features(&p, &pe, "t", &err));
    qcow2_ext_clear(&pe);
}

/* Each corruption of a valid header must be refused with a message, never crash. */
static void test_header_bad(void)
{
    static const struct {
        unsigned off, width;
        uint64_t val;
        const char *msg;
    } cases[] = {
        { 0, 4, 0x12345678, "bad magic" },
        { 4, 4, 4, "version 4" },
        { 20, 4, 8, "cluster size" },
        { 20, 4, 22, "cluster size" },
        { 96, 4, 7, "refcount order" },
        { 100, 4, 108, "header length" },
        { 100, 4, 96, "header length" },
        { 32, 4, 1, "encrypted" },
        { 36, 4, 0, "too small" },
        { 36, 4, 0x1000000, "too large" },
        { 40, 8, 0x1234, "L1 table offset" },
        { 48, 8, 0, "refcount table offset" },
        { 56, 4, 0, "refcount table size" },
        { 104, 1, 1, "compression type 1 without" },
        { 104, 1, 9, "unknown compression type" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Qcow2Header h = {
            .magic = QCOW2_MAGIC, .version = 3, .cluster_bits = 16, .size = 1ull << 30,
            .l1_size = 2, .l1_table_offset = 3 << 16, .refcount_table_offset = 1 << 16,
            .refcount_table_clusters = 1, .refcount_order = 4,
            .header_length = QCOW2_V3_HEADER_LEN_CT,
        };
        uint8_t buf[4096];
        g_assert_cmpuint(qcow2_header_build(&h, NULL, NULL, buf, sizeof(buf)), >, 0);
        uint8_t *p = buf + cases[i].off;
        switch (cases[i].width) {
        case 1: *p = cases[i].val; break;
        case 4: qcow2_st32(p, cases[i].val); break;
        default: qcow2_st64(p, cases[i].val); break;
        }
        Qcow2Header out;
        Error *err = NULL;
        g_assert_false(qcow2_header_parse(buf, sizeof(buf), "img.qcow2", &out, &err));
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg) ||
            !strstr(error_get_pretty(err), "img.qcow2")) {
            g_error("case %zu: '%s' lacks '%s'", i, error_get_pretty(err), cases[i].msg);
        }
        error_free(err);
    }
    /* Truncated buffers and truncated extension areas. */
    uint8_t buf[4096] = { 0 };
    Qcow2Header h;
    Error *err = NULL;
    for (size_t len = 0; len < QCOW2_V3_HEADER_LEN; len += 13) {
        g_assert_false(qcow2_header_parse(buf, len, "x", &h, &err));
        error_free(err);
        err = NULL;
    }
}

static void test_unknown_feature(void)
{
    Qcow2Header h = {
        .magic = QCOW2_MAGIC, .version = 3, .cluster_bits = 16, .size = 1 << 20,
        .l1_size = 1, .l1_table_offset = 3 << 16, .refcount_table_offset = 1 << 16,
        .refcount_table_clusters = 1, .refcount_order = 4,
        .header_length = QCOW2_V3_HEADER_LEN_CT,
        .incompatible_features = 1ull << 9,
    };
    Qcow2Extensions ext = { 0 };
    Error *err = NULL;
    g_assert_false(qcow2_header_check_features(&h, &ext, "x.qcow2", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Unknown incompatible feature: 9"));
    error_free(err);
    err = NULL;
    Qcow2FeatureName fn = { .type = 0, .bit = 9, .name = "frobnication" };
    ext.features = &fn;
    ext.nb_features = 1;
    g_assert_false(qcow2_header_check_features(&h, &ext, "x.qcow2", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "frobnication"));
    error_free(err);
}

static void test_ext_bad(void)
{
    Qcow2Header h = {
        .magic = QCOW2_MAGIC, .version = 3, .cluster_bits = 9, .size = 1 << 20,
        .l1_size = 32, .l1_table_offset = 3 << 9, .refcount_table_offset = 1 << 9,
        .refcount_table_clusters = 1, .refcount_order = 4,
        .header_length = QCOW2_V3_HEADER_LEN_CT,
    };
    uint8_t buf[512];
    g_assert_cmpuint(qcow2_header_build(&h, NULL, NULL, buf, sizeof(buf)), >, 0);
    /* An extension whose length runs past the cluster. */
    qcow2_st32(buf + 112, 0x12345678);
    qcow2_st32(buf + 116, 1000);
    Qcow2Extensions ext;
    Error *err = NULL;
    g_assert_false(qcow2_ext_parse(&h, buf, sizeof(buf), "x", &ext, &err));
    error_free(err);
    err = NULL;
    /* Unknown extensions are kept verbatim. */
    qcow2_st32(buf + 116, 5);
    memcpy(buf + 120, "hello\0\0\0", 8);
    qcow2_st64(buf + 128, 0);
    g_assert_true(qcow2_ext_parse(&h, buf, sizeof(buf), "x", &ext, &err));
    g_assert_cmpuint(ext.unknown->len, ==, 1);
    Qcow2RawExt *r = &g_array_index(ext.unknown, Qcow2RawExt, 0);
    g_assert_cmpuint(r->type, ==, 0x12345678);
    g_assert_cmpmem(r->data, r->len, "hello", 5);
    qcow2_ext_clear(&ext);
}

static void test_refcount_entries(void)
{
    for (unsigned order = 0; order <= 6; order++) {
        uint8_t blk[512];
        uint64_t n = sizeof(blk) * 8 >> order;
        uint64_t max = qcow2_refcount_max(order);
        memset(blk, 0, sizeof(blk));
        for (uint64_t i = 0; i < n; i++) {
            qcow2_refcount_set(blk, i, order, (i * 0x9e3779b97f4a7c15ull) & max);
        }
        for (uint64_t i = 0; i < n; i++) {
            g_assert_cmphex(qcow2_refcount_get(blk, i, order), ==,
                            (i * 0x9e3779b97f4a7c15ull) & max);
        }
        /* Setting one entry leaves its neighbours alone. */
        qcow2_refcount_set(blk, 5, order, max);
        g_assert_cmphex(qcow2_refcount_get(blk, 4, order), ==, (4 * 0x9e3779b97f4a7c15ull) & max);
        g_assert_cmphex(qcow2_refcount_get(blk, 6, order), ==, (6 * 0x9e3779b97f4a7c15ull) & max);
    }
    /* On-disk layout: sub-byte entries from the low bit, wide ones big-endian. */
    uint8_t b[16] = { 0 };
    qcow2_refcount_set(b, 1, 0, 1);
    g_assert_cmphex(b[0], ==, 0x02);
    memset(b, 0, sizeof(b));
    qcow2_refcount_set(b, 1, 2, 0xa);
    g_assert_cmphex(b[0], ==, 0xa0);
    memset(b, 0, sizeof(b));
    qcow2_refcount_set(b, 1, 4, 0x1234);
    g_assert_cmphex(b[2], ==, 0x12);
    g_assert_cmphex(b[3], ==, 0x34);
}

static void test_l2_entries(void)
{
    g_assert_cmpint(qcow2_l2e_type(0, 3), ==, QCOW2_CLUSTER_UNALLOCATED);
    g_assert_cmpint(qcow2_l2e_type(1, 3), ==, QCOW2_CLUSTER_ZERO_PLAIN);
    g_assert_cmpint(qcow2_l2e_type(1, 2), ==, QCOW2_CLUSTER_UNALLOCATED);
    g_assert_cmpint(qcow2_l2e_type(0x10000 | 1, 3), ==, QCOW2_CLUSTER_ZERO_ALLOC);
    g_assert_cmpint(qcow2_l2e_type(QCOW2_OFLAG_COPIED | 0x10000, 3), ==,
                    QCOW2_CLUSTER_NORMAL);
    g_assert_cmpint(qcow2_l2e_type(QCOW2_OFLAG_COMPRESSED | 0x1234, 3), ==,
                    QCOW2_CLUSTER_COMPRESSED);

    uint64_t host = 0x30000;
    uint64_t bm = (1ull << 0) | (1ull << (32 + 1)) | (1ull << 3) | (1ull << (32 + 3));
    g_assert_cmpint(qcow2_l2e_subcluster_type(host, bm, 0), ==, QCOW2_SC_NORMAL);
    g_assert_cmpint(qcow2_l2e_subcluster_type(host, bm, 1), ==, QCOW2_SC_ZERO_ALLOC);
    g_assert_cmpint(qcow2_l2e_subcluster_type(host, bm, 2), ==, QCOW2_SC_UNALLOCATED_ALLOC);
    g_assert_cmpint(qcow2_l2e_subcluster_type(host, bm, 3), ==, QCOW2_SC_INVALID);
    g_assert_cmpint(qcow2_l2e_subcluster_type(0, 1ull << 33, 1), ==, QCOW2_SC_ZERO_PLAIN);
    g_assert_cmpint(qcow2_l2e_subcluster_type(0, 0, 7), ==, QCOW2_SC_UNALLOCATED_PLAIN);
    g_assert_cmpint(qcow2_l2e_subcluster_type(0, 1, 0), ==, QCOW2_SC_INVALID);
    g_assert_cmpint(qcow2_l2e_subcluster_type(QCOW2_OFLAG_COMPRESSED | 5, 0, 0), ==,
                    QCOW2_SC_COMPRESSED);
    g_assert_cmpint(qcow2_l2e_subcluster_type(QCOW2_OFLAG_COMPRESSED | 5, 1, 0), ==,
                    QCOW2_SC_INVALID);
}

static void test_compressed_descriptor(void)
{
    for (unsigned cb = 9; cb <= 21; cb++) {
        uint64_t cs = 1ull << cb;
        uint64_t offs[] = { 0x200, 0x12345, 0x7fffffe01ull, (1ull << 40) + 77 };
        for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
            for (uint64_t len = 1; len <= cs; len = len * 3 + 1) {
                uint64_t l2e = qcow2_compressed_l2e(offs[i], len, cb);
                g_assert_true(l2e & QCOW2_OFLAG_COMPRESSED);
                g_assert_false(l2e & QCOW2_OFLAG_COPIED);
                g_assert_cmphex(qcow2_compressed_offset(l2e, cb), ==, offs[i]);
                uint64_t got = qcow2_compressed_len(l2e, cb);
                /* Covers the data and ends on the sector boundary after it. */
                g_assert_cmpuint(got, >=, len);
                g_assert_cmpuint((offs[i] + got) % 512, ==, 0);
                g_assert_cmpuint(got - len, <, 512);
            }
        }
    }
}

static void test_compression(void)
{
    for (int type = 0; type <= 1; type++) {
        size_t cs = 65536;
        uint8_t *src = g_malloc(cs), *cmp = g_malloc(cs + 512), *out = g_malloc(cs);
        for (size_t i = 0; i < cs; i++) {
            src[i] = (i / 100) ^ (i % 7);
        }
        ssize_t n = qcow2_compress(type, cmp, cs, src, cs);
        g_assert_cmpint(n, >, 0);
        g_assert_cmpint(n, <, (ssize_t)cs);
        /* Sector padding after the stream must be ignored. */
        memset(cmp + n, 0xa5, 511);
        g_assert_cmpint(qcow2_decompress(type, out, cs, cmp, n + 511), ==, 0);
        g_assert_cmpmem(out, cs, src, cs);
        /* Truncated or garbage input fails cleanly. */
        g_assert_cmpint(qcow2_decompress(type, out, cs, cmp, n / 2), <, 0);
        memset(cmp, 0xff, 64);
        g_assert_cmpint(qcow2_decompress(type, out, cs, cmp, n), <, 0);
        /* Incompressible data does not fit in a smaller buffer. */
        for (size_t i = 0; i < cs; i++) {
            src[i] = g_random_int();
        }
        g_assert_cmpint(qcow2_compress(type, cmp, cs - 512, src, cs), ==, -ENOSPC);
        g_free(src);
        g_free(cmp);
        g_free(out);
    }
}

/* ---- bitmaps (qcow2-bitmap.c's pure helpers) ---- */

static Qcow2Bitmap *new_bitmap(const char *name, uint32_t flags, unsigned gbits,
                               uint64_t toff, uint32_t tsize)
{
    Qcow2Bitmap *bm = g_new0(Qcow2Bitmap, 1);
    bm->name = g_strdup(name);
    bm->flags = flags;
    bm->granularity_bits = gbits;
    bm->table_offset = toff;
    bm->table_size = tsize;
    return bm;
}

static void free_bitmap(gpointer p)
{
    Qcow2Bitmap *bm = p;
    g_free(bm->name);
    g_free(bm->bits);
    g_free(bm);
}

static void test_bitmap_dir_roundtrip(void)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(free_bitmap);
    g_ptr_array_add(a, new_bitmap("b0", QCOW2_BME_AUTO, 16, 0x30000, 1));
    g_ptr_array_add(a, new_bitmap("a-longer-name", QCOW2_BME_IN_USE, 9, 0x40000, 1));
    uint8_t *dir;
    uint64_t size = qcow2_bitmap_dir_build(a, &dir);
    g_assert_cmpuint(size, ==, 32 + 40); /* entries padded to 8 bytes */
    Error *err = NULL;
    /* 64 MiB disk, 64 KiB clusters: one table entry covers 2^19 granules. */
    GPtrArray *b = qcow2_bitmap_dir_parse(dir, size, 2, 65536, 64 << 20, &err);
    g_assert_null(err);
    g_assert_nonnull(b);
    g_assert_cmpuint(b->len, ==, 2);
    Qcow2Bitmap *x = g_ptr_array_index(b, 1);
    g_assert_cmpstr(x->name, ==, "a-longer-name");
    g_assert_cmpuint(x->flags, ==, QCOW2_BME_IN_USE);
    g_assert_cmpuint(x->granularity_bits, ==, 9);
    g_assert_cmpuint(x->table_offset, ==, 0x40000);
    g_ptr_array_free(b, TRUE);

    /* The count must match the extension both ways. */
    g_assert_null(qcow2_bitmap_dir_parse(dir, size, 1, 65536, 64 << 20, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "More bitmaps found"));
    g_clear_pointer(&err, error_free);
    g_assert_null(qcow2_bitmap_dir_parse(dir, size, 3, 65536, 64 << 20, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Less bitmaps found"));
    g_clear_pointer(&err, error_free);
    /* Cut short: broken. */
    g_assert_null(qcow2_bitmap_dir_parse(dir, size - 8, 2, 65536, 64 << 20, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Broken bitmap directory");
    g_clear_pointer(&err, error_free);
    /* A consistent bitmap whose table cannot cover the disk breaks the constraints; an
     * in_use one may (stale after a resize). */
    g_assert_null(qcow2_bitmap_dir_parse(dir, size, 2, 65536, 1ull << 40, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Bitmap 'b0' doesn't satisfy the constraints");
    g_clear_pointer(&err, error_free);
    g_free(dir);
    g_ptr_array_free(a, TRUE);
}

static void test_bitmap_ext(void)
{
    uint8_t d[24] = { 0 };
    Qcow2BitmapExt e;
    Error *err = NULL;
    qcow2_st32(d, 2);
    qcow2_st64(d + 8, 72);
    qcow2_st64(d + 16, 0x20000);
    g_assert_true(qcow2_bitmap_ext_parse(d, 24, 65536, &e, &err));
    g_assert_cmpuint(e.nb, ==, 2);
    g_assert_cmpuint(e.dir_size, ==, 72);
    g_assert_cmpuint(e.dir_offset, ==, 0x20000);
    g_assert_false(qcow2_bitmap_ext_parse(d, 16, 65536, &e, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "bitmaps_ext: Invalid extension length");
    g_clear_pointer(&err, error_free);
    qcow2_st64(d + 8, 64ull << 20);
    g_assert_false(qcow2_bitmap_ext_parse(d, 24, 65536, &e, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "exceeds the maximum supported size"));
    g_clear_pointer(&err, error_free);
    qcow2_st64(d + 8, 72);
    qcow2_st32(d, 65536);
    g_assert_false(qcow2_bitmap_ext_parse(d, 24, 65536, &e, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "exceeding the QEMU supported maximum"));
    g_clear_pointer(&err, error_free);
}

static void test_bitmap_bits(void)
{
    Qcow2Bitmap bm = { .granularity_bits = 16, .nb_bits = 130 };
    bm.bits = g_new0(uint64_t, 3);
    qcow2_bitmap_set_range(&bm, 65535, 2); /* granules 0 and 1 */
    g_assert_cmphex(bm.bits[0], ==, 3);
    qcow2_bitmap_set_range(&bm, 63 << 16, 3 << 16); /* 63..65: across a word */
    g_assert_cmphex(bm.bits[0], ==, 0x8000000000000003ull);
    g_assert_cmphex(bm.bits[1], ==, 3);
    qcow2_bitmap_set_range(&bm, 128ull << 16, 100ull << 20); /* clipped at the end */
    g_assert_cmphex(bm.bits[2], ==, 3);
    g_assert_cmpuint(qcow2_bitmap_count(&bm), ==, 7);
    qcow2_bitmap_set_range(&bm, 0, 0); /* empty: nothing */
    g_assert_cmpuint(qcow2_bitmap_count(&bm), ==, 7);
    g_free(bm.bits);
    /* Table entries: one per cluster of bitmap data (8 * cluster granules each). */
    g_assert_cmpuint(qcow2_bitmap_table_size(64 << 20, 16, 65536), ==, 1);
    g_assert_cmpuint(qcow2_bitmap_table_size(1ull << 40, 9, 512), ==, 524288);
    g_assert_cmpuint(qcow2_bitmap_table_size(1, 31, 512), ==, 1);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2/header/roundtrip", test_header_roundtrip);
    g_test_add_func("/qcow2/header/bad", test_header_bad);
    g_test_add_func("/qcow2/header/unknown-feature", test_unknown_feature);
    g_test_add_func("/qcow2/header/extensions", test_ext_bad);
    g_test_add_func("/qcow2/refcount/entries", test_refcount_entries);
    g_test_add_func("/qcow2/l2/entries", test_l2_entries);
    g_test_add_func("/qcow2/l2/compressed", test_compressed_descriptor);
    g_test_add_func("/qcow2/compression", test_compression);
    g_test_add_func("/qcow2/bitmaps/directory", test_bitmap_dir_roundtrip);
    g_test_add_func("/qcow2/bitmaps/extension", test_bitmap_ext);
    g_test_add_func("/qcow2/bitmaps/bits", test_bitmap_bits);
    return g_test_run();
}
