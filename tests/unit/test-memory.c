/* Guest memory bounds and I/O dispatch (softmmu/memory.c). */
#include <glib.h>
#include <string.h>
#include "sen/memory.h"

#define PAGE 4096ULL
#define HIGH 0x100000000ULL

/* 2 pages at 0 and 1 page at 4 GiB, from one 3-page backing. */
static GuestMemory *two_regions(void)
{
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new(3 * PAGE, &err);
    g_assert_null(err);
    g_assert_true(guest_mem_add_region(gm, 0, 2 * PAGE, 0, &err));
    g_assert_true(guest_mem_add_region(gm, HIGH, PAGE, 2 * PAGE, &err));
    return gm;
}

static void test_bounds(void)
{
    GuestMemory *gm = two_regions();
    uint8_t buf[16] = { 1, 2, 3 };

    g_assert_true(guest_mem_is_ram(gm, 0, 2 * PAGE));
    g_assert_false(guest_mem_is_ram(gm, 0, 2 * PAGE + 1));
    g_assert_false(guest_mem_is_ram(gm, 2 * PAGE, 1));
    g_assert_false(guest_mem_is_ram(gm, 0, 0));
    /* A range that would wrap around 2^64 must never be accepted. */
    g_assert_false(guest_mem_is_ram(gm, PAGE, UINT64_MAX));
    g_assert_false(guest_mem_is_ram(gm, UINT64_MAX, 2));
    /* Two regions adjacent in the backing are not one guest range. */
    g_assert_false(guest_mem_is_ram(gm, 2 * PAGE - 8, 16));

    g_assert_true(guest_mem_write(gm, HIGH + PAGE - 3, buf, 3));
    g_assert_false(guest_mem_write(gm, HIGH + PAGE - 3, buf, 4));
    uint8_t out[3] = { 0 };
    g_assert_true(guest_mem_read(gm, HIGH + PAGE - 3, out, 3));
    g_assert_cmpmem(out, 3, buf, 3);
    g_assert_null(guest_mem_map(gm, HIGH - 1, 2));
    g_assert_true(guest_mem_fill(gm, 0, 0xab, 2 * PAGE));
    g_assert_cmpuint(((uint8_t *)guest_mem_map(gm, 2 * PAGE - 1, 1))[0], ==, 0xab);
    guest_mem_free(gm);
}

static void test_overlap_rejected(void)
{
    Error *err = NULL;
    GuestMemory *gm = two_regions();
    g_assert_false(guest_mem_add_region(gm, PAGE, PAGE, 0, &err));
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    g_assert_false(guest_mem_add_region(gm, 0x200000, 4 * PAGE, 0, &err));
    g_assert_nonnull(err);
    error_free(err);
    guest_mem_free(gm);
}

/* Firmware ROM: readable, loadable by the board, never writable by devices. */
static void test_rom(void)
{
    Error *err = NULL;
    GuestMemory *gm = two_regions();
    const uint64_t rom = HIGH - 2 * PAGE;
    uint8_t code[4] = { 0xea, 0x5b, 0xe0, 0x00 }, out[4] = { 0 };

    g_assert_true(guest_mem_add_rom(gm, rom, 2 * PAGE, &err));
    g_assert_null(err);
    g_assert_cmpuint(guest_mem_region_count(gm), ==, 3);
    g_assert_true(guest_mem_region(gm, 2)->readonly);
    g_assert_false(guest_mem_region(gm, 0)->readonly);
    g_assert_true(guest_mem_load_rom(gm, HIGH - 16, code, sizeof(code)));
    g_assert_true(guest_mem_read(gm, HIGH - 16, out, sizeof(out)));
    g_assert_cmpmem(out, 4, code, 4);
    /* Device writes and fills are refused and leave the ROM as it was. */
    g_assert_false(guest_mem_write(gm, HIGH - 16, "XXXX", 4));
    g_assert_false(guest_mem_fill(gm, rom, 0, PAGE));
    g_assert_true(guest_mem_read(gm, HIGH - 16, out, sizeof(out)));
    g_assert_cmpmem(out, 4, code, 4);
    /* load_rom is for ROM only, and only inside it. */
    g_assert_false(guest_mem_load_rom(gm, 0, code, sizeof(code)));
    g_assert_false(guest_mem_load_rom(gm, HIGH - 2, code, sizeof(code)));
    /* Overlaps, misalignment and wrap-around are rejected. */
    g_assert_false(guest_mem_add_rom(gm, PAGE, PAGE, &err));
    error_free(err);
    err = NULL;
    g_assert_false(guest_mem_add_rom(gm, 0x100000, 100, &err));
    error_free(err);
    err = NULL;
    g_assert_false(guest_mem_add_rom(gm, UINT64_MAX - PAGE + 1, 2 * PAGE, &err));
    error_free(err);
    guest_mem_free(gm);
}

/*
 * Adjacent regions, as NUMA nodes' backends end to end make them: R0 at 0 and R1 at PAGE
 * (R1 comes BEFORE R0 in the backing, so a single memcpy across the seam would land in the
 * wrong place), ROM at 2*PAGE, a gap, R2 at 4*PAGE (the last region).
 */
#define SPAN_ROM (2 * PAGE)
#define SPAN_R2 (4 * PAGE)

static GuestMemory *adjacent_regions(void)
{
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new(3 * PAGE, &err);
    g_assert_nonnull(gm);
    g_assert_true(guest_mem_add_region(gm, 0, PAGE, 2 * PAGE, &err));
    g_assert_true(guest_mem_add_region(gm, PAGE, PAGE, 0, &err));
    g_assert_true(guest_mem_add_rom(gm, SPAN_ROM, PAGE, &err));
    g_assert_true(guest_mem_add_region(gm, SPAN_R2, PAGE, PAGE, &err));
    g_assert_null(err);
    return gm;
}

static void test_span_copy(void)
{
    GuestMemory *gm = adjacent_regions();
    uint8_t pattern[64], out[64];
    for (unsigned i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)(i * 7 + 1);
    }
    /* 24 bytes in R0, 40 in R1: each piece in its own region's host memory. */
    g_assert_true(guest_mem_write(gm, PAGE - 24, pattern, sizeof(pattern)));
    g_assert_cmpmem(guest_mem_map(gm, PAGE - 24, 24), 24, pattern, 24);
    g_assert_cmpmem(guest_mem_map(gm, PAGE, 40), 40, pattern + 24, 40);
    g_assert_cmpmem((uint8_t *)guest_mem_region(gm, 1)->hva, 40, pattern + 24, 40);
    memset(out, 0, sizeof(out));
    g_assert_true(guest_mem_read(gm, PAGE - 24, out, sizeof(out)));
    g_assert_cmpmem(out, sizeof(out), pattern, sizeof(pattern));
    /* Fill across the seam: exactly the range, nothing around it. */
    g_assert_true(guest_mem_fill(gm, PAGE - 3, 0xee, 6));
    g_assert_true(guest_mem_read(gm, PAGE - 4, out, 8));
    g_assert_cmpmem(out, 8, "\x8d\xee\xee\xee\xee\xee\xee\xbe", 8);
    /* All of R0 and R1 at once, and a read running on into the ROM. */
    g_assert_true(guest_mem_is_ram(gm, 0, 3 * PAGE));
    g_assert_true(guest_mem_fill(gm, 0, 0x11, 2 * PAGE));
    g_assert_true(guest_mem_read(gm, 2 * PAGE - 2, out, 4));
    g_assert_cmpmem(out, 4, "\x11\x11\0\0", 4);
    /* A pointer never spans; the piece-wise map gives the part one region holds. */
    uint64_t piece = 99;
    g_assert_null(guest_mem_map(gm, PAGE - 8, 16));
    g_assert_null(guest_mem_map_writable(gm, PAGE - 8, 16));
    uint8_t *p = guest_mem_map_piece(gm, PAGE - 8, 16, true, &piece);
    g_assert_true(p == (uint8_t *)guest_mem_map(gm, PAGE - 8, 8));
    g_assert_cmpuint(piece, ==, 8);
    p = guest_mem_map_piece(gm, PAGE, 8, true, &piece);
    g_assert_true(p == guest_mem_region(gm, 1)->hva);
    g_assert_cmpuint(piece, ==, 8);
    g_assert_nonnull(guest_mem_map_piece(gm, SPAN_ROM, 8, false, &piece));
    g_assert_null(guest_mem_map_piece(gm, SPAN_ROM, 8, true, &piece));
    g_assert_cmpuint(piece, ==, 0);
    g_assert_null(guest_mem_map_piece(gm, 3 * PAGE, 8, false, &piece));
    g_assert_null(guest_mem_map_piece(gm, 0, 0, false, &piece));
    guest_mem_free(gm);
}

static void test_span_refused(void)
{
    GuestMemory *gm = adjacent_regions();
    uint8_t buf[16], out[16];
    memset(buf, 0x5a, sizeof(buf));

    g_assert_true(guest_mem_fill(gm, 0, 0x11, 2 * PAGE));
    /* RAM into ROM: the write is refused as a whole, the RAM part is left as it was. */
    g_assert_false(guest_mem_write(gm, SPAN_ROM - 8, buf, 16));
    g_assert_false(guest_mem_fill(gm, SPAN_ROM - 8, 0, 16));
    g_assert_true(guest_mem_read(gm, SPAN_ROM - 8, out, 8));
    g_assert_cmpmem(out, 8, "\x11\x11\x11\x11\x11\x11\x11\x11", 8);
    /* ROM into the gap, RAM into the gap, the gap into R2: refused, nothing copied. */
    memset(out, 0x77, sizeof(out));
    g_assert_false(guest_mem_is_ram(gm, 3 * PAGE - 8, 16));
    g_assert_false(guest_mem_read(gm, 3 * PAGE - 8, out, 16));
    g_assert_false(guest_mem_read(gm, SPAN_R2 - 8, out, 16));
    g_assert_false(guest_mem_write(gm, SPAN_R2 - 8, buf, 16));
    g_assert_cmpuint(out[0], ==, 0x77);
    /* A span ending past the last region; one that wraps 2^64. */
    g_assert_true(guest_mem_write(gm, SPAN_R2 + PAGE - 8, buf, 8));
    g_assert_false(guest_mem_write(gm, SPAN_R2 + PAGE - 8, buf, 9));
    g_assert_false(guest_mem_read(gm, SPAN_R2 + PAGE - 8, out, 9));
    g_assert_false(guest_mem_is_ram(gm, SPAN_R2, UINT64_MAX));
    g_assert_false(guest_mem_read(gm, PAGE - 8, out, UINT64_MAX));
    g_assert_false(guest_mem_fill(gm, UINT64_MAX - 3, 0, 8));
    g_assert_false(guest_mem_is_ram(gm, PAGE, 0));
    /* Discard across the seam gives both pages back; into ROM it is refused. */
    g_assert_false(guest_mem_discard(gm, PAGE, 2 * PAGE));
    g_assert_true(guest_mem_discard(gm, 0, 2 * PAGE));
    g_assert_true(guest_mem_read(gm, PAGE - 4, out, 8));
    g_assert_cmpmem(out, 8, "\0\0\0\0\0\0\0\0", 8);
    guest_mem_free(gm);
}

/* A write across the seam is logged in both regions' dirty logs, each at its own page. */
static void test_span_dirty(void)
{
    GuestMemory *gm = adjacent_regions();
    unsigned long bm0 = 0, bm1 = 0;
    uint8_t buf[8] = { 0 };

    guest_mem_dirty_log_start(gm);
    g_assert_true(guest_mem_write(gm, PAGE - 4, buf, sizeof(buf)));
    guest_mem_dirty_log_take(gm, 0, &bm0, NULL);
    guest_mem_dirty_log_take(gm, 1, &bm1, NULL);
    g_assert_cmphex(bm0, ==, 1);
    g_assert_cmphex(bm1, ==, 1);
    bm0 = bm1 = 0;
    guest_mem_mark_dirty(gm, PAGE - 1, 2);
    guest_mem_dirty_log_take(gm, 0, &bm0, NULL);
    guest_mem_dirty_log_take(gm, 1, &bm1, NULL);
    g_assert_cmphex(bm0 & bm1, ==, 1);
    guest_mem_free(gm);
}

static void test_sparse_backing(void)
{
    /* 64 GiB of guest RAM must be cheap to create: nothing is touched. */
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new(64ULL << 30, &err);
    g_assert_nonnull(gm);
    g_assert_true(guest_mem_add_region(gm, 0, 64ULL << 30, 0, &err));
    g_assert_true(guest_mem_write(gm, (64ULL << 30) - 8, "sen-ram", 8));
    guest_mem_free(gm);
}

typedef struct Recorder {
    uint64_t last_offset, last_value;
    unsigned last_size, writes;
} Recorder;

static uint64_t rec_read(void *opaque, uint64_t offset, unsigned size)
{
    return 0x1000 + offset;
}

static void rec_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    Recorder *r = opaque;
    r->last_offset = offset;
    r->last_size = size;
    r->last_value = value;
    r->writes++;
}

static const IoOps rec_ops = { .read = rec_read, .write = rec_write };

/* The device-side dirty log that migration merges with the accelerator's. */
static void test_dirty_log(void)
{
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new(4 << 20, &err);
    unsigned long bm[2][(2 << 20) / 4096 / 64];
    unsigned long sum[2] = { 0 }; /* bit w: word w of bm[i] got bits */
    uint8_t buf[8] = { 1 };

    g_assert_nonnull(gm);
    g_assert_true(guest_mem_add_region(gm, 0, 2 << 20, 0, &err));
    g_assert_true(guest_mem_add_region(gm, 0x100000000ull, 2 << 20, 2 << 20, &err));
    /* Not logging: writes leave no trace. */
    g_assert_true(guest_mem_write(gm, 0x3000, buf, 1));
    guest_mem_dirty_log_start(gm);
    g_assert_true(guest_mem_write(gm, 0x5ffc, buf, 8));        /* pages 5 and 6 */
    g_assert_true(guest_mem_fill(gm, 0x100000000ull + 0x10000, 0, 1)); /* region 1 page 16 */
    guest_mem_mark_dirty(gm, 0x1fffff, 1);                      /* last page */
    guest_mem_mark_dirty(gm, 0x200000, 1);                      /* not RAM: ignored */
    memset(bm, 0, sizeof(bm));
    guest_mem_dirty_log_take(gm, 0, bm[0], &sum[0]);
    guest_mem_dirty_log_take(gm, 1, bm[1], &sum[1]);
    guest_mem_dirty_log_take(gm, 7, bm[1], &sum[1]);            /* no such region */
    g_assert_cmphex(bm[0][0], ==, (1ul << 5) | (1ul << 6));
    g_assert_cmphex(bm[0][7], ==, 1ul << 63);
    g_assert_cmphex(bm[1][0], ==, 1ul << 16);
    /* The summary names exactly the words that got bits. */
    g_assert_cmphex(sum[0], ==, (1ul << 0) | (1ul << 7));
    g_assert_cmphex(sum[1], ==, 1ul << 0);
    /* Taking clears. */
    memset(bm, 0, sizeof(bm));
    sum[0] = 0;
    guest_mem_dirty_log_take(gm, 0, bm[0], &sum[0]);
    g_assert_cmphex(bm[0][0] | bm[0][7], ==, 0);
    g_assert_cmphex(sum[0], ==, 0);
    /* A page written again after a take is taken again (its summary bit came back). */
    guest_mem_mark_dirty(gm, 0x5000, 1);
    guest_mem_dirty_log_take(gm, 0, bm[0], NULL);
    g_assert_cmphex(bm[0][0], ==, 1ul << 5);
    bm[0][0] = 0;
    /* A range over several words: pages 63 to 128, the bits and summary of each word. */
    guest_mem_mark_dirty(gm, 0x3f000, 0x42000);
    sum[0] = 0;
    guest_mem_dirty_log_take(gm, 0, bm[0], &sum[0]);
    g_assert_cmphex(bm[0][0], ==, 1ul << 63);
    g_assert_cmphex(bm[0][1], ==, ~0ul);
    g_assert_cmphex(bm[0][2], ==, 1ul);
    g_assert_cmphex(bm[0][3], ==, 0);
    g_assert_cmphex(sum[0], ==, 7);
    memset(bm, 0, sizeof(bm));
    /* Inside one word, not from its start. */
    guest_mem_mark_dirty(gm, 0x4b000, 0x3000);
    guest_mem_dirty_log_take(gm, 0, bm[0], NULL);
    g_assert_cmphex(bm[0][1], ==, 7ul << 11);
    bm[0][1] = 0;
    /* A discard changes the contents (to zeroes): pages 8 and 9 are sent again. */
    g_assert_true(guest_mem_discard(gm, 0x8000, 0x2000));
    guest_mem_dirty_log_take(gm, 0, bm[0], NULL);
    g_assert_cmphex(bm[0][0], ==, 3ul << 8);
    bm[0][0] = 0;
    guest_mem_dirty_log_stop(gm);
    g_assert_true(guest_mem_write(gm, 0x3000, buf, 1));
    guest_mem_dirty_log_take(gm, 0, bm[0], NULL);
    g_assert_cmphex(bm[0][0], ==, 0);
    guest_mem_free(gm);
}

static void test_io_dispatch(void)
{
    IoSpace *io = io_space_new("I/O port");
    Recorder a = { 0 }, b = { 0 };
    Error *err = NULL;
    uint64_t v;

    g_assert_true(io_space_add(io, 0x3f8, 8, &rec_ops, &a, "serial", &err));
    g_assert_true(io_space_add(io, 0x70, 2, &rec_ops, &b, "rtc", &err));
    g_assert_false(io_space_add(io, 0x3fc, 8, &rec_ops, &b, "clash", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "serial"));
    g_assert_nonnull(strstr(error_get_pretty(err), "clash"));
    error_free(err);

    g_assert_true(io_space_write(io, 0x3fb, 1, 0x83));
    g_assert_cmpuint(a.last_offset, ==, 3);
    g_assert_cmpuint(a.last_value, ==, 0x83);
    g_assert_cmpuint(b.writes, ==, 0);
    g_assert_true(io_space_read(io, 0x71, 1, &v));
    g_assert_cmpuint(v, ==, 0x1001);

    /* Unassigned: reads all-ones of the access size, writes dropped. */
    g_assert_false(io_space_read(io, 0x80, 2, &v));
    g_assert_cmpuint(v, ==, 0xffff);
    g_assert_false(io_space_read(io, 0x400, 8, &v));
    g_assert_cmphex(v, ==, ~0ULL);
    g_assert_false(io_space_write(io, 0x3f7, 1, 0));

    io_space_del(io, 0x3f8);
    g_assert_false(io_space_write(io, 0x3f8, 1, 0));
    io_space_free(io);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/memory/bounds", test_bounds);
    g_test_add_func("/memory/overlap-rejected", test_overlap_rejected);
    g_test_add_func("/memory/sparse-backing", test_sparse_backing);
    g_test_add_func("/memory/rom", test_rom);
    g_test_add_func("/memory/io-dispatch", test_io_dispatch);
    g_test_add_func("/memory/dirty-log", test_dirty_log);
    g_test_add_func("/memory/span-copy", test_span_copy);
    g_test_add_func("/memory/span-refused", test_span_refused);
    g_test_add_func("/memory/span-dirty", test_span_dirty);
    return g_test_run();
}
