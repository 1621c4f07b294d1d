/*
 * pvpanic: a read returns the supported events; a write of 1 (panicked) does what
 * -action panic= says; 2 (crash loaded) only reports.  The QMP events and run states are
 * checked by tests/functional/test_pvpanic.py; here the exit statuses (no monitor).
 */
#include "libqtest.h"

static void test_read_events(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pvpanic");
    g_assert_cmphex(qtest_inb(s, 0x505), ==, 0x3);
    g_assert_cmphex(qtest_inb(s, 0x506), ==, 0xff); /* one port only */
    qtest_quit(s);

    s = qtest_init("-device pvpanic,ioport=0x520,events=1");
    g_assert_cmphex(qtest_inb(s, 0x520), ==, 0x1);
    g_assert_cmphex(qtest_inb(s, 0x505), ==, 0xff);
    qtest_quit(s);
}

/* QEMU 7.2's default, panic=shutdown: GUEST_PANICKED poweroff, then Sen exits with 0. */
static void test_panic_default_shuts_down(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pvpanic");
    qtest_send_line(s, "outb 0x505 0x1");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 0);
}

static void test_panic_exit_failure(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pvpanic -action panic=exit-failure");
    qtest_send_line(s, "outb 0x505 0x1");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 1);
}

/* panic=none and crash-loaded: the VM runs on and ends normally when asked. */
static void test_runs_on(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pvpanic -action panic=none");
    qtest_outb(s, 0x505, 0x1);
    qtest_outb(s, 0x505, 0x2);
    qtest_outb(s, 0x505, 0x4); /* unknown: logged, ignored */
    g_assert_cmphex(qtest_inb(s, 0x505), ==, 0x3);
    qtest_quit(s);

    s = qtest_init("-device pvpanic");
    qtest_outb(s, 0x505, 0x2);
    g_assert_cmphex(qtest_inb(s, 0x505), ==, 0x3);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvpanic/read-events", test_read_events);
    g_test_add_func("/pvpanic/panic-default-shuts-down", test_panic_default_shuts_down);
    g_test_add_func("/pvpanic/panic-exit-failure", test_panic_exit_failure);
    g_test_add_func("/pvpanic/runs-on", test_runs_on);
    return g_test_run();
}
