/* isa-debug-exit: a guest write ends Sen with (value << 1) | 1, QEMU's convention. */
#include "libqtest.h"

static void test_exit_code(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device isa-debug-exit,iobase=0xf4,iosize=4");
    /* Outside the device's range nothing happens. */
    qtest_outb(s, 0xf8, 0x5);
    g_assert_cmphex(qtest_inb(s, 0xf8), ==, 0xff);
    /* The reply may or may not arrive before Sen exits: do not wait for it. */
    qtest_send_line(s, "outb 0xf4 0x5");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 11);
}

static void test_exit_zero(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device isa-debug-exit,iobase=0xf4,iosize=4");
    /* Any port of the 4-byte range and any width. */
    qtest_send_line(s, "outw 0xf6 0x0");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 1);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/debug-exit/exit-code", test_exit_code);
    g_test_add_func("/debug-exit/exit-zero", test_exit_zero);
    return g_test_run();
}
