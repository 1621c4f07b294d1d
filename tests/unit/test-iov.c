/*
 * util/iov.c: iov_size of every prefix of a vector with empty pieces; iov_from_buf,
 * iov_to_buf and iov_memset at every offset and length over a
 * vector with empty pieces, against a flat model of the vector; what lies past its end is
 * not copied (the return says how much was), and no byte outside the pieces changes.
 * Then the inline fast path of a constant size: inside the first piece, and crossing it.
 */
#include <stdint.h>
#include <string.h>
#include <glib.h>
#include "sen/iov.h"

/* Pieces of 3, 0, 5, 1 and 7 bytes (16 in all), each followed by a guard byte. */
static const size_t piece_len[] = { 3, 0, 5, 1, 7 };
#define NPIECES G_N_ELEMENTS(piece_len)
#define TOTAL 16
#define GUARD 0xee

typedef struct Vec {
    uint8_t mem[TOTAL + NPIECES];
    struct iovec iov[NPIECES];
} Vec;

static void vec_init(Vec *v, uint8_t fill)
{
    size_t at = 0;

    memset(v->mem, GUARD, sizeof(v->mem));
    for (size_t i = 0; i < NPIECES; i++) {
        v->iov[i] = (struct iovec){ .iov_base = v->mem + at, .iov_len = piece_len[i] };
        memset(v->mem + at, fill, piece_len[i]);
        at += piece_len[i] + 1;
    }
}

/* The vector's bytes, in order, into flat; asserts every guard byte is intact. */
static void vec_flatten(const Vec *v, uint8_t *flat)
{
    size_t at = 0, k = 0;

    for (size_t i = 0; i < NPIECES; i++) {
        memcpy(flat + k, v->mem + at, piece_len[i]);
        k += piece_len[i];
        at += piece_len[i];
        g_assert_cmphex(v->mem[at++], ==, GUARD);
    }
    g_assert_cmpuint(k, ==, TOTAL);
}

static size_t expect_copied(size_t offset, size_t bytes)
{
    return offset >= TOTAL ? 0 : MIN(bytes, TOTAL - offset);
}

static void test_from_buf(void)
{
    uint8_t src[TOTAL + 8], flat[TOTAL], want[TOTAL];

    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (uint8_t)(0x10 + i);
    }
    for (size_t off = 0; off <= TOTAL + 2; off++) {
        for (size_t bytes = 0; bytes <= TOTAL + 4; bytes++) {
            Vec v;
            vec_init(&v, 0);
            size_t n = expect_copied(off, bytes);
            g_assert_cmpuint(iov_from_buf(v.iov, NPIECES, off, src, bytes), ==, n);
            vec_flatten(&v, flat);
            memset(want, 0, sizeof(want));
            if (n) {
                memcpy(want + off, src, n);
            }
            g_assert_cmpmem(flat, TOTAL, want, TOTAL);
        }
    }
}

static void test_to_buf(void)
{
    uint8_t flat[TOTAL], dst[TOTAL + 8], want[TOTAL + 8];
    Vec v;

    vec_init(&v, 0);
    for (size_t i = 0; i < NPIECES; i++) {
        for (size_t j = 0; j < piece_len[i]; j++) {
            ((uint8_t *)v.iov[i].iov_base)[j] = (uint8_t)(0x40 + 8 * i + j);
        }
    }
    vec_flatten(&v, flat);
    for (size_t off = 0; off <= TOTAL + 2; off++) {
        for (size_t bytes = 0; bytes <= TOTAL + 4; bytes++) {
            size_t n = expect_copied(off, bytes);
            memset(dst, 0xaa, sizeof(dst));
            memset(want, 0xaa, sizeof(want));
            if (n) {
                memcpy(want, flat + off, n);
            }
            g_assert_cmpuint(iov_to_buf(v.iov, NPIECES, off, dst, bytes), ==, n);
            g_assert_cmpmem(dst, sizeof(dst), want, sizeof(want));
        }
    }
}

static void test_memset(void)
{
    uint8_t flat[TOTAL], want[TOTAL];

    for (size_t off = 0; off <= TOTAL + 2; off++) {
        for (size_t bytes = 0; bytes <= TOTAL + 4; bytes++) {
            Vec v;
            vec_init(&v, 0x11);
            size_t n = expect_copied(off, bytes);
            g_assert_cmpuint(iov_memset(v.iov, NPIECES, off, 0x5c, bytes), ==, n);
            vec_flatten(&v, flat);
            memset(want, 0x11, sizeof(want));
            if (n) {
                memset(want + off, 0x5c, n);
            }
            g_assert_cmpmem(flat, TOTAL, want, TOTAL);
        }
    }
}

/* Every prefix of the vector, empty pieces included, sums its pieces' lengths; no pieces
 * at all is 0 (and the array is not read). */
static void test_size(void)
{
    Vec v;
    size_t want = 0;

    vec_init(&v, 0);
    g_assert_cmpuint(iov_size(NULL, 0), ==, 0);
    for (size_t n = 1; n <= NPIECES; n++) {
        want += piece_len[n - 1];
        g_assert_cmpuint(iov_size(v.iov, n), ==, want);
    }
    g_assert_cmpuint(want, ==, TOTAL);
}

/* No pieces at all: nothing copied, nothing touched. */
static void test_empty_vector(void)
{
    uint8_t buf[4] = { 1, 2, 3, 4 };

    g_assert_cmpuint(iov_from_buf(NULL, 0, 0, buf, sizeof(buf)), ==, 0);
    g_assert_cmpuint(iov_to_buf(NULL, 0, 0, buf, sizeof(buf)), ==, 0);
    g_assert_cmpuint(iov_memset(NULL, 0, 0, 0, sizeof(buf)), ==, 0);
    g_assert_cmpuint(buf[0], ==, 1);
}

/*
 * A constant size takes the inline path when it fits the first piece at offset, the loop
 * otherwise: both give the loop's result.
 */
static void test_constant_size(void)
{
    uint8_t flat[TOTAL];
    uint32_t word = 0x04030201, got = 0;
    uint16_t half = 0xbbaa;
    Vec v;

    vec_init(&v, 0);
    /* 2 bytes at 1: inside the 3-byte first piece. */
    g_assert_cmpuint(iov_from_buf(v.iov, NPIECES, 1, &half, sizeof(half)), ==, 2);
    /* 4 bytes at 2: the last byte of the first piece, then the third piece. */
    g_assert_cmpuint(iov_from_buf(v.iov, NPIECES, 2, &word, sizeof(word)), ==, 4);
    vec_flatten(&v, flat);
    uint8_t want[TOTAL] = { 0, 0xaa, 0x01, 0x02, 0x03, 0x04 };
    g_assert_cmpmem(flat, TOTAL, want, TOTAL);

    g_assert_cmpuint(iov_to_buf(v.iov, NPIECES, 2, &got, sizeof(got)), ==, 4);
    g_assert_cmphex(got, ==, word);
    got = 0;
    g_assert_cmpuint(iov_to_buf(v.iov, NPIECES, 0, &got, 3), ==, 3);
    g_assert_cmphex(got, ==, 0x01aa00);
    /* Offset exactly at the end of the first piece with nothing to copy. */
    g_assert_cmpuint(iov_to_buf(v.iov, NPIECES, 3, &got, 0), ==, 0);
    /* Past the end: the constant size does not fit, nothing is copied. */
    got = 0x12345678;
    g_assert_cmpuint(iov_to_buf(v.iov, 1, 0, &got, sizeof(got)), ==, 3);
    g_assert_cmphex(got, ==, 0x1201aa00);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iov/size", test_size);
    g_test_add_func("/iov/from-buf", test_from_buf);
    g_test_add_func("/iov/to-buf", test_to_buf);
    g_test_add_func("/iov/memset", test_memset);
    g_test_add_func("/iov/empty-vector", test_empty_vector);
    g_test_add_func("/iov/constant-size", test_constant_size);
    return g_test_run();
}
