/* pc-testdev: the scratch port, the IRQ lines and the scratch MMIO kvm-unit-tests use. */
#include "libqtest.h"

static void test_ioport(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pc-testdev");
    g_assert_cmphex(qtest_inl(s, 0xe0), ==, 0);
    qtest_outl(s, 0xe0, 0x12345678);
    g_assert_cmphex(qtest_inl(s, 0xe0), ==, 0x12345678);
    /* Narrow reads see the low bytes; a narrow write replaces the whole register. */
    g_assert_cmphex(qtest_inw(s, 0xe0), ==, 0x5678);
    g_assert_cmphex(qtest_inb(s, 0xe0), ==, 0x78);
    qtest_outb(s, 0xe0, 0x9a);
    g_assert_cmphex(qtest_inl(s, 0xe0), ==, 0x9a);
    /* The flush-page port takes any address, RAM or not, and reads as 0. */
    qtest_outl(s, 0xe4, 0x1000);
    qtest_outl(s, 0xe4, 0xfffff000);
    g_assert_cmphex(qtest_inl(s, 0xe4), ==, 0);
    /* Without the device the port is unassigned. */
    qtest_quit(s);
    s = qtest_init("");
    g_assert_cmphex(qtest_inl(s, 0xe0), ==, 0xffffffff);
    qtest_quit(s);
}

static void test_irq_lines(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pc-testdev");
    qtest_irq_intercept_in(s, "ioapic");
    g_assert_false(qtest_get_irq(s, 10));
    qtest_outb(s, 0x2000 + 10, 1);
    g_assert_true(qtest_get_irq(s, 10));
    qtest_outb(s, 0x2000 + 10, 0);
    g_assert_false(qtest_get_irq(s, 10));
    qtest_outb(s, 0x2000 + 23, 1);
    g_assert_true(qtest_get_irq(s, 23));
    qtest_quit(s);
}

static void test_iomem(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pc-testdev");
    qtest_writel(s, 0xff000000, 0xdeadbeef);
    qtest_writeq(s, 0xff00fff8, 0x0123456789abcdefull);
    g_assert_cmphex(qtest_readl(s, 0xff000000), ==, 0xdeadbeef);
    g_assert_cmphex(qtest_readb(s, 0xff000001), ==, 0xbe);
    g_assert_cmphex(qtest_readq(s, 0xff00fff8), ==, 0x0123456789abcdefull);
    /* Past the 64 KiB window: unassigned. */
    g_assert_cmphex(qtest_readl(s, 0xff010000), ==, 0xffffffff);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pc-testdev/ioport", test_ioport);
    g_test_add_func("/pc-testdev/irq-lines", test_irq_lines);
    g_test_add_func("/pc-testdev/iomem", test_iomem);
    return g_test_run();
}
