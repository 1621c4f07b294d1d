/*
 * The userspace i8254 of kernel-irqchip=split from outside: counting at 1.193182 MHz of
 * virtual time in modes 2, 3 and 0, the counter latch holding its value, read-back
 * status, LSB-only access, channel 2's gate and OUT through port 0x61, and accesses it
 * ignores.
 */
#include "libqtest.h"

#define NS_PER_TICK_X1000 838096 /* 1e12 / 1193182, rounded up: n ticks = n * this / 1000 */

static uint16_t latch_read(QTestState *s, unsigned ch)
{
    qtest_outb(s, 0x43, (uint8_t)(ch << 6));           /* counter latch */
    uint8_t lo = qtest_inb(s, 0x40 + ch);
    uint8_t hi = qtest_inb(s, 0x40 + ch);
    return (uint16_t)(lo | hi << 8);
}

static void step_ticks(QTestState *s, unsigned ticks)
{
    qtest_clock_step(s, (int64_t)ticks * NS_PER_TICK_X1000 / 1000 + 1);
}

static void test_counting(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    QTestState *s = qtest_init("-M pc,kernel-irqchip=split");
    /* channel 0, LSB then MSB, mode 2, count 0 = 65536 */
    qtest_outb(s, 0x43, 0x34);
    qtest_outb(s, 0x40, 0);
    qtest_outb(s, 0x40, 0);
    step_ticks(s, 1193);                                   /* 1 ms */
    g_assert_cmpuint(latch_read(s, 0), ==, 65536 - 1193);
    /* a latched count stays while time passes, until both bytes are read */
    qtest_outb(s, 0x43, 0x00);
    step_ticks(s, 100);
    g_assert_cmpuint(qtest_inb(s, 0x40), ==, (65536 - 1193) & 0xff);
    step_ticks(s, 100);
    g_assert_cmpuint(qtest_inb(s, 0x40), ==, (65536 - 1193) >> 8);
    g_assert_cmpuint(latch_read(s, 0), ==, 65536 - 1393);
    /* mode 2 reloads: after the full period plus 7 ticks the counter is 7 below again */
    qtest_outb(s, 0x43, 0x34);
    qtest_outb(s, 0x40, 100);
    qtest_outb(s, 0x40, 0);
    step_ticks(s, 207);
    g_assert_cmpuint(latch_read(s, 0), ==, 93);
    /* read-back status of channel 0: OUT high, LSB/MSB access, mode 2, binary */
    qtest_outb(s, 0x43, 0xe2);
    g_assert_cmphex(qtest_inb(s, 0x40), ==, 0xb4);

    /* channel 1, mode 3 counts by twos */
    qtest_outb(s, 0x43, 0x76);
    qtest_outb(s, 0x41, 100);
    qtest_outb(s, 0x41, 0);
    step_ticks(s, 10);
    g_assert_cmpuint(latch_read(s, 1), ==, 80);
    /* LSB-only access: the count is one byte, reads return the low byte */
    qtest_outb(s, 0x43, 0x50);                             /* channel 1, LSB, mode 0 */
    qtest_outb(s, 0x41, 200);
    step_ticks(s, 50);
    qtest_outb(s, 0x43, 0x40);
    g_assert_cmpuint(qtest_inb(s, 0x41), ==, 150);

    /* channel 2 through port 0x61: gate on, mode 0 for 1193 ticks, OUT goes high */
    qtest_outb(s, 0x61, 0x01);
    qtest_outb(s, 0x43, 0xb0);
    qtest_outb(s, 0x42, 1193 & 0xff);
    qtest_outb(s, 0x42, 1193 >> 8);
    g_assert_cmphex(qtest_inb(s, 0x61) & 0x21, ==, 0x01);  /* gate set, OUT low */
    step_ticks(s, 1192);
    g_assert_cmphex(qtest_inb(s, 0x61) & 0x20, ==, 0);
    step_ticks(s, 2);
    g_assert_cmphex(qtest_inb(s, 0x61) & 0x20, ==, 0x20);
    /* the gate's rising edge starts channel 2 again */
    qtest_outb(s, 0x61, 0x00);
    qtest_outb(s, 0x61, 0x03);
    g_assert_cmphex(qtest_inb(s, 0x61) & 0x23, ==, 0x03);  /* speaker bit kept, OUT low */

    /* word accesses and reads of the control port are ignored */
    qtest_outw(s, 0x40, 0x1234);
    g_assert_cmphex(qtest_inw(s, 0x40), ==, 0xffff);
    g_assert_cmphex(qtest_inb(s, 0x43), ==, 0xff);
    qtest_quit(s);
}

static void test_only_with_split(void)
{
    if (!qtest_have_sen()) {
        g_test_skip("no sen binary");
        return;
    }
    /* kernel-irqchip=on: the PIT is KVM's (absent under qtest); pit=off: none at all */
    QTestState *s = qtest_init("-M pc");
    g_assert_cmphex(qtest_inb(s, 0x61), ==, 0xff);
    qtest_quit(s);
    s = qtest_init("-M q35,kernel-irqchip=split,pit=off");
    g_assert_cmphex(qtest_inb(s, 0x40), ==, 0xff);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/i8254/counting", test_counting);
    g_test_add_func("/i8254/only-with-split", test_only_with_split);
    return g_test_run();
}
