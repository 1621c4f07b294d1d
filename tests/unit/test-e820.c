/* The PC memory split and e820 map (hw/i386/e820.c). */
#include <glib.h>
#include "hw/i386/boot.h"
#include "sen/hw/pc.h"

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)

static void test_ram_split(void)
{
    uint64_t lo, hi;
    pc_ram_split(128 * MiB, &lo, &hi);
    g_assert_cmphex(lo, ==, 128 * MiB);
    g_assert_cmphex(hi, ==, 0);
    pc_ram_split(0xdfffffffULL, &lo, &hi);
    g_assert_cmphex(lo, ==, 0xdfffffffULL);
    g_assert_cmphex(hi, ==, 0);
    pc_ram_split(0xe0000000ULL, &lo, &hi);
    g_assert_cmphex(lo, ==, 0xc0000000ULL);
    g_assert_cmphex(hi, ==, 0x20000000ULL);
    pc_ram_split(8 * GiB, &lo, &hi);
    g_assert_cmphex(lo, ==, 3 * GiB);
    g_assert_cmphex(hi, ==, 5 * GiB);
}

static void check_entry(const E820Entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
    g_assert_cmphex(e->addr, ==, addr);
    g_assert_cmphex(e->size, ==, size);
    g_assert_cmpuint(e->type, ==, type);
}

static void test_small(void)
{
    E820Entry e[E820_MAX_ENTRIES];
    unsigned n = e820_build(128 * MiB, 0, e);
    g_assert_cmpuint(n, ==, 6);
    check_entry(&e[0], 0, 0x9fc00, E820_TYPE_RAM);
    check_entry(&e[1], 0x9fc00, 0x400, E820_TYPE_RESERVED);
    check_entry(&e[2], 0xe0000, 0x20000, E820_TYPE_RESERVED); /* ACPI, BIOS, MP table */
    check_entry(&e[3], 1 * MiB, 127 * MiB, E820_TYPE_RAM);
    check_entry(&e[4], 0xb0000000, 0x10000000, E820_TYPE_RESERVED); /* PCI ECAM */
    check_entry(&e[5], 0xfeffc000, 0x4000, E820_TYPE_RESERVED);
}

static void test_above_4g(void)
{
    E820Entry e[E820_MAX_ENTRIES];
    uint64_t lo, hi;
    pc_ram_split(6 * GiB, &lo, &hi);
    unsigned n = e820_build(lo, hi, e);
    g_assert_cmpuint(n, ==, 6);
    check_entry(&e[3], 1 * MiB, 3 * GiB - 1 * MiB, E820_TYPE_RAM);
    check_entry(&e[5], 4 * GiB, 3 * GiB, E820_TYPE_RAM);
}

/* Whatever the size: sorted, no overlap, RAM adds up to the guest's RAM. */
static void test_invariants(void)
{
    static const uint64_t sizes[] = { 2 * MiB, 16 * MiB, 1 * GiB, 0xdfffffffULL,
                                      0xe0000000ULL, 4 * GiB, 64 * GiB };
    for (unsigned s = 0; s < G_N_ELEMENTS(sizes); s++) {
        E820Entry e[E820_MAX_ENTRIES];
        uint64_t lo, hi, ram = 0;
        pc_ram_split(sizes[s], &lo, &hi);
        unsigned n = e820_build(lo, hi, e);
        g_assert_cmpuint(n, <=, E820_MAX_ENTRIES);
        for (unsigned i = 0; i < n; i++) {
            g_assert_cmpuint(e[i].size, >, 0);
            if (i > 0) {
                g_assert_cmphex(e[i - 1].addr + e[i - 1].size, <=, e[i].addr);
            }
            if (e[i].type == E820_TYPE_RAM) {
                ram += e[i].size;
            }
        }
        /* Only the 0x9fc00..1 MiB hole is not reported as RAM. */
        g_assert_cmphex(ram, ==, sizes[s] - (1 * MiB - 0x9fc00));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/e820/ram-split", test_ram_split);
    g_test_add_func("/e820/small", test_small);
    g_test_add_func("/e820/above-4g", test_above_4g);
    g_test_add_func("/e820/invariants", test_invariants);
    return g_test_run();
}
