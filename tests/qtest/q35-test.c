/*
 * -M q35 from outside: the MCH (8086:29c0) at 00:0.0 and the ICH9 LPC bridge (8086:2918)
 * at 00:1f.0 as a guest's enumeration sees them through ECAM and CF8/CFC, the LPC's
 * PMBASE and the PM timer behind it; -M pc keeps its i440FX.
 */
#include "libqtest.h"

#define ECAM 0xb0000000ULL
#define LPC_DEVFN (0x1f << 3)

static uint32_t ecam_readl(QTestState *s, unsigned devfn, unsigned reg)
{
    return qtest_readl(s, ECAM + ((uint64_t)devfn << 12) + reg);
}

static void test_enumerate(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    QTestState *s = qtest_init("-M q35 -m 256");
    /* host bridge: MCH, class 0600, MMCONFIG at 0xb0000000 in PCIEXBAR */
    g_assert_cmphex(ecam_readl(s, 0, 0), ==, 0x29c08086);
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0), ==, 0x29c08086);
    g_assert_cmphex(ecam_readl(s, 0, 8) >> 8, ==, 0x060000);
    g_assert_cmphex(ecam_readl(s, 0, 0x60), ==, ECAM | 1);
    /* LPC at 1f.0: ISA bridge, multi-function header, PMBASE 0x600, ACPI enabled */
    g_assert_cmphex(ecam_readl(s, LPC_DEVFN, 0), ==, 0x29188086);
    g_assert_cmphex(qtest_pci_cfg_readl(s, LPC_DEVFN, 0), ==, 0x29188086);
    g_assert_cmphex(ecam_readl(s, LPC_DEVFN, 8) >> 8, ==, 0x060100);
    g_assert_cmphex((ecam_readl(s, LPC_DEVFN, 0x0c) >> 16) & 0xff, ==, 0x80);
    g_assert_cmphex(ecam_readl(s, LPC_DEVFN, 0x40), ==, 0x601);
    g_assert_cmphex(ecam_readl(s, LPC_DEVFN, 0x44) & 0xff, ==, 0x80);
    g_assert_cmphex(ecam_readl(s, LPC_DEVFN, 0x2c), ==, 0x11001af4);
    /* the PM timer at PMBASE + 8 counts at 3.579545 MHz: 1 ms = 3579 ticks */
    uint32_t t0 = qtest_inl(s, 0x608) & 0xffffff;
    qtest_clock_step(s, 1000000);
    uint32_t t1 = qtest_inl(s, 0x608) & 0xffffff;
    g_assert_cmpuint((t1 - t0) & 0xffffff, >=, 3578);
    g_assert_cmpuint((t1 - t0) & 0xffffff, <=, 3581);
    /* ICH9 SMI_EN at PMBASE + 0x30 reads APMC_EN: "no SMM" for firmware */
    g_assert_cmphex(qtest_inl(s, 0x630), ==, 0x20);
    /* nothing else on bus 0 without -device */
    for (unsigned slot = 1; slot < 0x1f; slot++) {
        g_assert_cmphex(ecam_readl(s, slot << 3, 0), ==, 0xffffffff);
    }
    qtest_quit(s);
}

static void test_alias_and_pc(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    QTestState *s = qtest_init("-M pc-q35-7.2");
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0), ==, 0x29c08086);
    qtest_quit(s);
    s = qtest_init("-M pc");
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0), ==, 0x12378086);
    g_assert_cmphex(qtest_pci_cfg_readl(s, LPC_DEVFN, 0), ==, 0xffffffff);
    g_assert_cmphex(qtest_inl(s, 0x630), ==, 0);           /* PIIX4 block: nothing there */
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/q35/enumerate", test_enumerate);
    g_test_add_func("/q35/alias-and-pc", test_alias_and_pc);
    return g_test_run();
}
