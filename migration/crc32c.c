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
#if defined(__x86_64__)
#include <immintrin.h>
#endif
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
/* Carry-less multiplication folding (fold_*): the constants x^(d + 63) and x^(d - 1)
 * mod P for a fold over d = 512 and d = 128 bits, as 64-bit reflected operands. */
static uint64_t fold512[2], fold128[2];

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

/*
 * x^e mod P as an operand of pclmulqdq: a reflected register bit i is x^(63-i), so the
 * degree-31 remainder goes into the upper half.
 */
static uint64_t fold_constant(unsigned e)
{
    uint32_t v = X0;
    while (e--) {
        v = (v & 1) ? (v >> 1) ^ CRC32C_POLY : v >> 1;
    }
    return (uint64_t)v << 32;
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
    fold512[0] = fold_constant(512 + 63);
    fold512[1] = fold_constant(512 - 1);
    fold128[0] = fold_constant(128 + 63);
    fold128[1] = fold_constant(128 - 1);
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

/* ---- PCLMULQDQ ---- */

/*
 * Folding: a 128-bit register R holds 16 message bytes as a polynomial (first bit
 * highest).  With 16 more bytes N after a gap of d - 128 bits, R * x^d + N has the
 * same CRC; R * x^d is congruent to lo(R) * (x^(d+64) mod P) + hi(R) * (x^d mod P),
 * two 64x32-bit carry-less products that fit 128 bits.  pclmulqdq on reflected
 * operands yields the product times x^-1, hence the constants' exponents minus one.
 * Four registers fold 64 bytes a step (the multiplier's latency is covered), are
 * folded into one, and its 16 bytes go through the crc32 instruction from zero (the
 * incoming CRC was XORed into the first bytes, as a reflected CRC allows).
 */
#define TARGET_PCLMUL __attribute__((target("sse4.2,pclmul")))

static inline __attribute__((always_inline)) TARGET_PCLMUL __m128i
fold_16(__m128i r, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(r, k, 0x00),
                                       _mm_clmulepi64_si128(r, k, 0x11)), next);
}

/* 16 bytes from p, also stored to dst (when not NULL) at off. */
static inline __attribute__((always_inline)) TARGET_PCLMUL __m128i
load_16(uint8_t *dst, const uint8_t *p, size_t off)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(p + off));
    if (dst) {
        _mm_storeu_si128((__m128i *)(dst + off), v);
    }
    return v;
}

static inline __attribute__((always_inline)) TARGET_PCLMUL uint32_t
crc_pclmul(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len)
{
    if (len < 64) {
        return (uint32_t)lane1(crc, dst, p, len);
    }
    const __m128i k512 = _mm_loadu_si128((const __m128i *)fold512);
    const __m128i k128 = _mm_loadu_si128((const __m128i *)fold128);
    __m128i r0 = _mm_xor_si128(load_16(dst, p, 0), _mm_cvtsi32_si128((int)crc));
    __m128i r1 = load_16(dst, p, 16), r2 = load_16(dst, p, 32), r3 = load_16(dst, p, 48);
    size_t i = 64;
    for (; i + 64 <= len; i += 64) {
        r0 = fold_16(r0, k512, load_16(dst, p, i));
        r1 = fold_16(r1, k512, load_16(dst, p, i + 16));
        r2 = fold_16(r2, k512, load_16(dst, p, i + 32));
        r3 = fold_16(r3, k512, load_16(dst, p, i + 48));
    }
    r1 = fold_16(r0, k128, r1);
    r2 = fold_16(r1, k128, r2);
    r3 = fold_16(r2, k128, r3);
    for (; i + 16 <= len; i += 16) {
        r3 = fold_16(r3, k128, load_16(dst, p, i));
    }
    uint64_t c = __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(r3));
    c = __builtin_ia32_crc32di(c, (uint64_t)_mm_extract_epi64(r3, 1));
    return (uint32_t)lane1(c, dst ? dst + i : NULL, p + i, len - i);
}

TARGET_PCLMUL static uint32_t crc_pclmul_nocopy(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc_pclmul(crc, NULL, p, len);
}

TARGET_PCLMUL static uint32_t crc_pclmul_copy(uint32_t crc, uint8_t *dst, const uint8_t *p,
                                              size_t len)
{
    return crc_pclmul(crc, dst, p, len);
}

static bool have_pclmul(void)
{
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}
#endif

uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc32c_init();
#if defined(__x86_64__)
    if (have_pclmul()) {
        return crc_pclmul_nocopy(crc, buf, len);
    }
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
    if (have_pclmul()) {
        return crc_pclmul_copy(crc, dst, buf, len);
    }
    if (have_sse42()) {
        return crc_sse42_copy(crc, dst, buf, len);
    }
#endif
    return crc_soft(crc, dst, buf, len);
}
