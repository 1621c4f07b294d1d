/* The Intel MP 1.4 table (hw/i386/mptable.c), parsed back the way a guest reads it. */
#include <string.h>
#include <glib.h>
#include "hw/i386/boot.h"

#define BASE 0xf0000u

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    while (len--) {
        s += *p++;
    }
    return s;
}

static void check_table(unsigned ncpus)
{
    Error *err = NULL;
    g_autoptr(GBytes) t = mptable_build(ncpus, BASE, &err);
    g_assert_null(err);
    g_assert_nonnull(t);
    size_t len;
    const uint8_t *p = g_bytes_get_data(t, &len);

    /* floating pointer */
    g_assert_cmpmem(p, 4, "_MP_", 4);
    g_assert_cmpuint(sum(p, 16), ==, 0);
    g_assert_cmphex(boot_ld32(p + 4), ==, BASE + 16);
    g_assert_cmpuint(p[8], ==, 1);
    g_assert_cmpuint(p[9], ==, 4);
    g_assert_cmpuint(p[11], ==, 0); /* a configuration table follows */

    /* configuration table */
    const uint8_t *c = p + 16;
    uint16_t clen = boot_ld16(c + 4);
    g_assert_cmpmem(c, 4, "PCMP", 4);
    g_assert_cmpuint(16 + clen, ==, len);
    g_assert_cmpuint(sum(c, clen), ==, 0);
    g_assert_cmpuint(c[6], ==, 4);
    g_assert_cmphex(boot_ld32(c + 36), ==, 0xfee00000u);

    unsigned count = boot_ld16(c + 34), cpus = 0, buses = 0, ioapics = 0, lints = 0;
    bool irq_seen[16] = { false };
    const uint8_t *e = c + 44, *end = c + clen;
    for (unsigned i = 0; i < count; i++) {
        g_assert_true(e < end);
        switch (e[0]) {
        case 0: /* processor */
            g_assert_cmpuint(e[1], ==, cpus);
            g_assert_cmpuint(e[3] & 1, ==, 1);
            g_assert_cmpuint(!!(e[3] & 2), ==, cpus == 0);
            cpus++;
            e += 20;
            break;
        case 1: /* bus */
            g_assert_cmpuint(e[1], ==, 0);
            g_assert_cmpmem(e + 2, 6, "ISA   ", 6);
            buses++;
            e += 8;
            break;
        case 2: /* IOAPIC */
            g_assert_cmpuint(e[1], ==, ncpus);
            g_assert_cmpuint(e[3] & 1, ==, 1);
            g_assert_cmphex(boot_ld32(e + 4), ==, 0xfec00000u);
            ioapics++;
            e += 8;
            break;
        case 3: /* I/O interrupt */
            g_assert_cmpuint(e[1], ==, 0);
            g_assert_cmpuint(e[4], ==, 0);
            g_assert_cmpuint(e[5], <, 16);
            g_assert_cmpuint(e[5], !=, 2);
            g_assert_false(irq_seen[e[5]]);
            irq_seen[e[5]] = true;
            g_assert_cmpuint(e[6], ==, ncpus);
            g_assert_cmpuint(e[7], ==, e[5] == 0 ? 2 : e[5]);
            e += 8;
            break;
        case 4: /* local interrupt */
            if (e[1] == 3) { /* ExtINT on the BSP's LINT0 */
                g_assert_cmpuint(e[6], ==, 0);
                g_assert_cmpuint(e[7], ==, 0);
            } else {
                g_assert_cmpuint(e[1], ==, 1); /* NMI on every LINT1 */
                g_assert_cmpuint(e[6], ==, 0xff);
                g_assert_cmpuint(e[7], ==, 1);
            }
            lints++;
            e += 8;
            break;
        default:
            g_assert_not_reached();
        }
    }
    g_assert_true(e == end);
    g_assert_cmpuint(cpus, ==, ncpus);
    g_assert_cmpuint(buses, ==, 1);
    g_assert_cmpuint(ioapics, ==, 1);
    g_assert_cmpuint(lints, ==, 2);
    for (unsigned irq = 0; irq < 16; irq++) {
        g_assert_cmpuint(irq_seen[irq], ==, irq != 2);
    }
}

static void test_one_cpu(void) { check_table(1); }
static void test_two_cpus(void) { check_table(2); }
static void test_64_cpus(void) { check_table(64); }
static void test_max_cpus(void) { check_table(MPTABLE_MAX_CPUS); }

static void test_bad_count(void)
{
    Error *err = NULL;
    g_assert_null(mptable_build(0, BASE, &err));
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    g_assert_null(mptable_build(MPTABLE_MAX_CPUS + 1, BASE, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "255 CPUs"));
    error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mptable/1-cpu", test_one_cpu);
    g_test_add_func("/mptable/2-cpus", test_two_cpus);
    g_test_add_func("/mptable/64-cpus", test_64_cpus);
    g_test_add_func("/mptable/max-cpus", test_max_cpus);
    g_test_add_func("/mptable/bad-count", test_bad_count);
    return g_test_run();
}
