/* The keyboard controller's reset pulse (0xfe to port 0x64) resets the machine; with
 * -no-reboot that is a clean exit. */
#include "libqtest.h"

static void test_reset_no_reboot(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-no-reboot");
    qtest_send_line(s, "outb 0x64 0xfe");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 0);
}

static void test_reset_reboots(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init(NULL);
    qtest_outb(s, 0x64, 0xfe);
    /* Sen resets and keeps serving the protocol. */
    g_usleep(50 * 1000);
    g_assert_cmphex(qtest_readb(s, 0x1000), ==, qtest_readb(s, 0x1000));
    qtest_quit(s);
}

static void test_status_port(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init(NULL);
    /* Self-test command 0xaa answers 0x55 in the output buffer (status bit 0). */
    qtest_outb(s, 0x64, 0xaa);
    g_assert_cmphex(qtest_inb(s, 0x64) & 0x01, ==, 0x01);
    g_assert_cmphex(qtest_inb(s, 0x60), ==, 0x55);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/i8042/reset-no-reboot", test_reset_no_reboot);
    g_test_add_func("/i8042/reset-reboots", test_reset_reboots);
    g_test_add_func("/i8042/self-test", test_status_port);
    return g_test_run();
}
