/*
 * The edu device from outside (-accel qtest): identification, liveness, factorial with
 * its interrupt, interrupt raise/ack on INTx and MSI, DMA both ways into guest RAM, and
 * the transfers it must refuse (outside the buffer, outside the DMA mask, bus mastering
 * off) without touching RAM or hanging the command register.
 */
#include <string.h>
#include "libqtest.h"

#define BAR     0xe0000000ULL
#define SLOT    3
#define DEVFN   (SLOT << 3)
#define GSI     (16 + SLOT % 4)   /* INTA of slot 3 */

static QTestState *start(const char *machine)
{
    QTestState *s = qtest_initf("-M %s -m 128 -device edu,addr=%x", machine, SLOT);
    qtest_pci_cfg_writel(s, DEVFN, 0x10, (uint32_t)BAR);
    qtest_pci_cfg_writel(s, DEVFN, 0x04, 0x0006); /* memory + bus master */
    qtest_irq_intercept_in(s, "ioapic");
    return s;
}

static void test_registers(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    QTestState *s = start("q35");
    g_assert_cmphex(qtest_pci_cfg_readl(s, DEVFN, 0x00), ==, 0x11e81234);
    g_assert_cmphex(qtest_pci_cfg_readl(s, DEVFN, 0x08) & 0xff, ==, 0x10);      /* revision */
    g_assert_cmphex(qtest_pci_cfg_readl(s, DEVFN, 0x3c) >> 8 & 0xff, ==, 1);    /* INTA */
    qtest_pci_cfg_writel(s, DEVFN, 0x10, 0xffffffff);
    g_assert_cmphex(qtest_pci_cfg_readl(s, DEVFN, 0x10), ==, 0xfff00000);       /* 1 MiB BAR */
    qtest_pci_cfg_writel(s, DEVFN, 0x10, (uint32_t)BAR);

    g_assert_cmphex(qtest_readl(s, BAR + 0x00), ==, 0x010000ed);
    qtest_writel(s, BAR + 0x04, 0x12345678);
    g_assert_cmphex(qtest_readl(s, BAR + 0x04), ==, ~0x12345678u);
    g_assert_cmphex(qtest_readw(s, BAR + 0x04), ==, 0xffff);   /* only 4-byte access */

    qtest_writel(s, BAR + 0x08, 5);
    g_assert_cmpuint(qtest_readl(s, BAR + 0x08), ==, 120);
    qtest_writel(s, BAR + 0x08, 12);
    g_assert_cmpuint(qtest_readl(s, BAR + 0x08), ==, 479001600);
    qtest_writel(s, BAR + 0x08, 0xffffffff);                  /* no 4-billion-step loop */
    g_assert_cmpuint(qtest_readl(s, BAR + 0x08), ==, 0);
    g_assert_cmphex(qtest_readl(s, BAR + 0x20), ==, 0);

    /* factorial interrupt on INTx */
    g_assert_false(qtest_get_irq(s, GSI));
    qtest_writel(s, BAR + 0x20, 0x80);
    qtest_writel(s, BAR + 0x08, 3);
    g_assert_true(qtest_get_irq(s, GSI));
    g_assert_cmphex(qtest_readl(s, BAR + 0x24), ==, 0x1);
    /* raise another bit; the line stays up until every bit is acknowledged */
    qtest_writel(s, BAR + 0x60, 0x40);
    g_assert_cmphex(qtest_readl(s, BAR + 0x24), ==, 0x41);
    qtest_writel(s, BAR + 0x64, 0x1);
    g_assert_true(qtest_get_irq(s, GSI));
    qtest_writel(s, BAR + 0x64, 0x40);
    g_assert_false(qtest_get_irq(s, GSI));
    /* INTx disable in the command register masks the line */
    qtest_pci_cfg_writel(s, DEVFN, 0x04, 0x0406);
    qtest_writel(s, BAR + 0x60, 0x2);
    g_assert_false(qtest_get_irq(s, GSI));
    qtest_writel(s, BAR + 0x64, 0x2);
    qtest_quit(s);
}

static void test_msi(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    QTestState *s = start("pc");
    /* find the MSI capability */
    unsigned cap = qtest_pci_cfg_readl(s, DEVFN, 0x34) & 0xff;
    while (cap && (qtest_pci_cfg_readl(s, DEVFN, cap) & 0xff) != 0x05) {
        cap = (qtest_pci_cfg_readl(s, DEVFN, cap) >> 8) & 0xff;
    }
    g_assert_cmpuint(cap, !=, 0);
    /* qtest's accelerator stores an MSI's data at its address: aim it at RAM */
    qtest_pci_cfg_writel(s, DEVFN, cap + 4, 0x30000);
    qtest_pci_cfg_writel(s, DEVFN, cap + 8, 0);
    qtest_pci_cfg_writel(s, DEVFN, cap + 12, 0x4567);
    qtest_pci_cfg_writel(s, DEVFN, cap, (qtest_pci_cfg_readl(s, DEVFN, cap) & 0xffff) | 1u << 16);   /* MSI enable */
    qtest_writel(s, 0x30000, 0);
    qtest_writel(s, BAR + 0x60, 0x8);
    g_assert_cmphex(qtest_readl(s, 0x30000), ==, 0x4567);
    g_assert_false(qtest_get_irq(s, GSI));                          /* not INTx */
    qtest_writel(s, BAR + 0x64, 0x8);
    g_assert_cmphex(qtest_readl(s, BAR + 0x24), ==, 0);
    qtest_quit(s);
}

static void dma(QTestState *s, uint64_t src, uint64_t dst, uint64_t cnt, uint32_t cmd)
{
    qtest_writeq(s, BAR + 0x80, src);
    qtest_writeq(s, BAR + 0x88, dst);
    qtest_writeq(s, BAR + 0x90, cnt);
    qtest_writel(s, BAR + 0x98, cmd);
    /* done before the write returns; a refused transfer must not stay "running" */
    g_assert_cmphex(qtest_readl(s, BAR + 0x98) & 1, ==, 0);
}

static void test_dma(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    QTestState *s = start("q35");
    uint8_t pattern[256], back[256], zero[256] = { 0 };
    for (unsigned i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)(i ^ 0x5a);
    }
    qtest_memwrite(s, 0x100000, pattern, sizeof(pattern));
    /* RAM -> buffer at offset 0x100, then buffer -> RAM elsewhere, with the interrupt */
    dma(s, 0x100000, 0x40100, sizeof(pattern), 0x1);
    dma(s, 0x40100, 0x200010, sizeof(pattern), 0x1 | 0x2 | 0x4);
    qtest_memread(s, 0x200010, back, sizeof(back));
    g_assert_cmpmem(back, sizeof(back), pattern, sizeof(pattern));
    g_assert_cmphex(qtest_readl(s, BAR + 0x24), ==, 0x100);
    g_assert_true(qtest_get_irq(s, GSI));
    qtest_writel(s, BAR + 0x64, 0x100);

    /* refused: past the 4 KiB buffer, below it, beyond the 28-bit mask, count 0 */
    qtest_memwrite(s, 0x300000, zero, sizeof(zero));
    dma(s, 0x40f80, 0x300000, 0x100, 0x3);
    dma(s, 0x3ff00, 0x300000, 0x100, 0x3);
    dma(s, 0x40000, 0x10000000, 0x10, 0x3);
    dma(s, 0x40000, 0xffffffffffffff00ULL, 0x100, 0x3);
    dma(s, 0x40000, 0x300000, 0, 0x3);
    dma(s, 0x40000, 0x300000, 0xffffffffffffffffULL, 0x3);
    qtest_memread(s, 0x300000, back, sizeof(back));
    g_assert_cmpmem(back, sizeof(back), zero, sizeof(zero));
    /* outside guest RAM (128 MiB) but inside the mask: refused by the bus */
    dma(s, 0x40000, 0x8000000, 0x10, 0x3);
    /* bus mastering off: nothing moves */
    qtest_pci_cfg_writel(s, DEVFN, 0x04, 0x0002);
    dma(s, 0x40100, 0x300000, 0x10, 0x3);
    qtest_memread(s, 0x300000, back, sizeof(back));
    g_assert_cmpmem(back, sizeof(back), zero, sizeof(zero));
    g_assert_cmphex(qtest_readl(s, BAR + 0x24), ==, 0);  /* no completion interrupt */
    qtest_quit(s);
}

static void test_bad_options(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    g_autofree char *out = NULL, *err = NULL;
    int status;
    const char *bin = qtest_sen_binary();
    /* a mask narrower than the buffer, and a slot already taken */
    const char *argv1[] = { bin, "-accel", "qtest", "-device", "edu,dma_mask=0x123", NULL };
    g_assert_true(g_spawn_sync(NULL, (char **)argv1, NULL, 0, NULL, NULL, &out, &err, &status,
                               NULL));
    g_assert_cmpint(status, !=, 0);
    g_assert_nonnull(strstr(err, "dma_mask=0x123"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    const char *argv2[] = { bin, "-accel", "qtest", "-M", "q35", "-device", "edu,addr=1f",
                            NULL };
    g_assert_true(g_spawn_sync(NULL, (char **)argv2, NULL, 0, NULL, NULL, &out, &err, &status,
                               NULL));
    g_assert_cmpint(status, !=, 0);
    g_assert_nonnull(strstr(err, "already in use by ich9-lpc"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    /* q35 has 30 free slots (00 is the MCH, 1f the LPC): the 31st edu finds none */
    GPtrArray *args = g_ptr_array_new();
    g_ptr_array_add(args, (char *)bin);
    g_ptr_array_add(args, "-accel");
    g_ptr_array_add(args, "qtest");
    g_ptr_array_add(args, "-M");
    g_ptr_array_add(args, "q35");
    for (int i = 0; i < 31; i++) {
        g_ptr_array_add(args, "-device");
        g_ptr_array_add(args, "edu");
    }
    g_ptr_array_add(args, NULL);
    g_assert_true(g_spawn_sync(NULL, (char **)args->pdata, NULL, 0, NULL, NULL, &out, &err,
                               &status, NULL));
    g_ptr_array_free(args, TRUE);
    g_assert_cmpint(status, !=, 0);
    g_assert_nonnull(strstr(err, "is full"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/edu/registers", test_registers);
    g_test_add_func("/edu/msi", test_msi);
    g_test_add_func("/edu/dma", test_dma);
    g_test_add_func("/edu/bad-options", test_bad_options);
    return g_test_run();
}
