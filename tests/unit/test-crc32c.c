/*
 * Each CRC-32C implementation of migration/crc32c.c on its own.  mig_crc32c() runs the
 * best one this CPU has, so the stream tests reach only that one; the others (the
 * three-lane crc32 instruction on a CPU without PCLMULQDQ, the table elsewhere) would go
 * untested on the hosts that build Sen.  This file includes the source to call them.
 */
#include <glib.h>
#include "migration/crc32c.c"
#include "crc32c-ref.h"

typedef struct Impl {
    const char *name;
    uint32_t (*nocopy)(uint32_t crc, const uint8_t *p, size_t len);
    uint32_t (*copy)(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len);
} Impl;

static uint32_t soft_nocopy(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc_soft(crc, NULL, p, len);
}

static const Impl soft = { "table", soft_nocopy, crc_soft };
#if defined(__x86_64__)
static const Impl sse42 = { "sse4.2", crc_sse42_nocopy, crc_sse42_copy };
static const Impl pclmul = { "pclmul", crc_pclmul_nocopy, crc_pclmul_copy };
#endif

/* One case: equal to the reference, the copy exact and nothing written outside it. */
static void check(const Impl *impl, const uint8_t *src, uint8_t *dst, size_t dst_size,
                  size_t len, uint32_t crc)
{
    uint32_t want = crc32c_ref(crc, src, len);
    g_assert_cmphex(impl->nocopy(crc, src, len), ==, want);
    memset(dst - 1, 0xa5, dst_size);
    g_assert_cmphex(impl->copy(crc, dst, src, len), ==, want);
    g_assert_cmpmem(dst, len, src, len);
    g_assert_cmphex(dst[-1], ==, 0xa5);
    for (size_t i = len; i < dst_size - 1; i++) {
        g_assert_cmphex(dst[i], ==, 0xa5);
    }
}

/*
 * Every length 0..300 at every alignment and at random offsets, then lengths around the
 * three-lane path's boundaries (3 lanes of up to 512 words) and the folding's 64-byte
 * steps, with random data and starting CRCs.
 */
static void test_impl(gconstpointer opaque)
{
    const Impl *impl = opaque;
    enum { SLACK = 64, BIG = 3 * 8 * 512 * 2 + 100 };
    g_autofree uint8_t *src = g_malloc(BIG + SLACK);
    g_autofree uint8_t *dst = g_malloc(BIG + 2 * SLACK);
    for (size_t i = 0; i < BIG + SLACK; i++) {
        src[i] = (uint8_t)g_test_rand_int();
    }
    for (size_t len = 0; len <= 300; len++) {
        for (unsigned k = 0; k < 20; k++) {
            size_t off = k < 16 ? k : (size_t)g_test_rand_int_range(0, SLACK);
            size_t doff = 1 + (size_t)g_test_rand_int_range(0, SLACK);
            check(impl, src + off, dst + doff, len + SLACK, len, g_test_rand_int());
        }
    }
    static const size_t lens[] = {
        511, 512, 513, 575, 576, 577, 4095, 4096, 4097, 12287, 12288, 12289,
        3 * 8 * 512 - 1, 3 * 8 * 512, 3 * 8 * 512 + 1, BIG,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
        for (size_t off = 0; off < 3; off++) {
            check(impl, src + off, dst + 1 + off, lens[i] + SLACK, lens[i],
                  g_test_rand_int());
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    crc32c_init();
    g_test_add_data_func("/crc32c/table", &soft, test_impl);
#if defined(__x86_64__)
    if (have_sse42()) {
        g_test_add_data_func("/crc32c/sse4.2", &sse42, test_impl);
    }
    if (have_pclmul()) {
        g_test_add_data_func("/crc32c/pclmul", &pclmul, test_impl);
    }
#endif
    return g_test_run();
}
