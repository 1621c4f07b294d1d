/*
 * CRC-32C: see crc32c.h.
 *
 * The arithmetic: the register is a polynomial over GF(2) in the reflected bit order
 * (bit 31 is the coefficient of x^0).  Feeding a zero byte multiplies it by x^8 modulo
 * the Castagnoli polynomial P, so feeding n zero bytes is one multiplication by
 * x^(8n) mod P.  Lane joins use a table of x^(64k) mod P for every lane length the
 * three-lane loop uses, so a join costs two multiplications.
 */
#include <stdbool.h>
#include <string.h>
#include <glib.h>
#include "migration/crc32c.h"

#define CRC32C_POLY 0x82f63b78u  /* P, reflected */
#define X0 0x80000000u           /* the polynomial 1 */

/* Lanes are at most this many 8-byte words: long enough that joins cost nothing,
 * short enough that the three lanes' sources and destinations stay in the L1 cache's
 * prefetch streams. */
#define LANE_WORDS_MAX 512

static uint32_t crc_table[256];
/* lane_shift[k] = x^(64k) mod P, 0 <= k <= LANE_WORDS_MAX */
static uint32_t lane_shift[LANE_WORDS_MAX + 1];
/* pow2_shift[i] = x^(8 * 2^i) mod P: feeding 2^i zero bytes */
static uint32_t pow2_shift[64];

/* a(x) * b(x) mod P, both reflected. */
static uint32_t gf2_mul(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    for (uint32_t bit = X0; bit && a; bit >>= 1) {
        if (a & bit) {
            prod ^= b;
            a ^= bit;
        }
        /* b *= x */
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
    }
    return prod;
}

static void crc32c_init(void)
{
    static gsize once;
    if (!g_once_init_enter(&once)) {
        return;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        }
        crc_table[i] = c;
    }
    uint32_t x64 = X0;
    for (int i = 0; i < 64; i++) {
        x64 = (x64 & 1) ? (x64 >> 1) ^ CRC32C_POLY : x64 >> 1;
    }
    lane_shift[0] = X0;
    for (int k = 1; k <= LANE_WORDS_MAX; k++) {
        lane_shift[k] = gf2_mul(lane_shift[k - 1], x64);
    }
    uint32_t x8 = X0;
    for (int i = 0; i < 8; i++) {
        x8 = (x8 & 1) ? (x8 >> 1) ^ CRC32C_POLY : x8 >> 1;
    }
    pow2_shift[0] = x8;
    for (int i = 1; i < 64; i++) {
        pow2_shift[i] = gf2_mul(pow2_shift[i - 1], pow2_shift[i - 1]);
    }
    g_once_init_leave(&once, 1);
}

uint32_t mig_crc32c_shift(uint32_t crc, uint64_t len)
{
    crc32c_init();
    for (int i = 0; len && crc; i++, len >>= 1) {
        if (len & 1) {
            crc = gf2_mul(pow2_shift[i], crc);
        }
    }
    return crc;
}

/* ---- portable ---- */

static uint32_t crc_soft(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (dst) {
            dst[i] = p[i];
        }
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

/* ---- SSE4.2 ---- */

#if defined(__x86_64__)
#define TARGET_SSE42 __attribute__((target("sse4.2")))

/* One lane; dst may be NULL.  always_inline so that the copy test folds away. */
static inline __attribute__((always_inline)) TARGET_SSE42 uint64_t
lane1(uint64_t c, uint8_t *dst, const uint8_t *p, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (dst) {
            memcpy(dst + i, &v, 8);
        }
        c = __builtin_ia32_crc32di(c, v);
    }
    for (; i < len; i++) {
        if (dst) {
            dst[i] = p[i];
        }
        c = __builtin_ia32_crc32qi((uint32_t)c, p[i]);
    }
    return c;
}

static inline __attribute__((always_inline)) TARGET_SSE42 uint32_t
crc_sse42(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len)
{
    uint64_t a = crc;
    /* Three lanes of `words` 8-byte words each: A (carrying the running CRC), B and C
     * from zero; then A||B||C = shift(shift(A) ^ B) ^ C with one table entry. */
    while (len >= 3 * 8 * 8) {
        size_t words = MIN(len / 24, (size_t)LANE_WORDS_MAX);
        size_t lane = words * 8;
        const uint8_t *pb = p + lane, *pc = p + 2 * lane;
        uint64_t b = 0, c = 0;
        for (size_t i = 0; i < lane; i += 8) {
            uint64_t va, vb, vc;
            memcpy(&va, p + i, 8);
            memcpy(&vb, pb + i, 8);
            memcpy(&vc, pc + i, 8);
            if (dst) {
                memcpy(dst + i, &va, 8);
                memcpy(dst + lane + i, &vb, 8);
                memcpy(dst + 2 * lane + i, &vc, 8);
            }
            a = __builtin_ia32_crc32di(a, va);
            b = __builtin_ia32_crc32di(b, vb);
            c = __builtin_ia32_crc32di(c, vc);
        }
        uint32_t k = lane_shift[words];
        a = gf2_mul(gf2_mul((uint32_t)a, k) ^ (uint32_t)b, k) ^ (uint32_t)c;
        p += 3 * lane;
        if (dst) {
            dst += 3 * lane;
        }
        len -= 3 * lane;
    }
    return (uint32_t)lane1(a, dst, p, len);
}

TARGET_SSE42 static uint32_t crc_sse42_nocopy(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc_sse42(crc, NULL, p, len);
}

TARGET_SSE42 static uint32_t crc_sse42_copy(uint32_t crc, uint8_t *dst, const uint8_t *p,
                                            size_t len)
{
    return crc_sse42(crc, dst, p, len);
}

static bool have_sse42(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#endif

uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc32c_init();
#if defined(__x86_64__)
    if (have_sse42()) {
        return crc_sse42_nocopy(crc, buf, len);
    }
#endif
    return crc_soft(crc, NULL, buf, len);
}

uint32_t mig_crc32c_copy(uint32_t crc, void *dst, const void *buf, size_t len)
{
    crc32c_init();
#if defined(__x86_64__)
    if (have_sse42()) {
        return crc_sse42_copy(crc, dst, buf, len);
    }
#endif
    return crc_soft(crc, dst, buf, len);
}
