/*
 * The ACPI PM block (hw/acpi/piix4-pm.c) from outside, at the ports the FADT announces:
 * PM timer rate on the virtual clock, PM1 status write-1-to-clear and enable masks, the
 * SCI (IRQ 9, level) following SCI_EN and enabled status bits, ACPI enable through the
 * APM port, GPE0, S5 powering off, S3 suspend with the RTC alarm as wake source, and
 * the PIIX reset control register at 0xcf9.
 */
#include "libqtest.h"

#define PM1_STS   0x600
#define PM1_EN    0x602
#define PM1_CNT   0x604
#define PM_TMR    0x608
#define GPE0_STS  0xafe0
#define GPE0_EN   0xafe2
#define SMI_CMD   0xb2
#define RCR       0xcf9
#define SCI       9

#define TMR_STS   0x0001
#define PWRBTN    0x0100
#define RTC_STS   0x0400
#define WAK_STS   0x8000
#define SCI_EN    0x0001
#define SLP_EN    0x2000
#define PM_HZ     3579545
#define NS        1000000000LL

static QTestState *start(void)
{
    QTestState *s = qtest_init("-M pc");
    qtest_irq_intercept_in(s, "ioapic");
    return s;
}

/* Ticks in ns of virtual time, exactly as the device rounds them. */
static uint32_t ticks_at(int64_t ns)
{
    return (uint32_t)(((__int128)ns * PM_HZ / NS) & 0xffffff);
}

static void test_timer_rate(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    int64_t t0 = qtest_clock_step(s, 0);
    g_assert_cmphex(qtest_inl(s, PM_TMR), ==, ticks_at(t0));
    int64_t t1 = qtest_clock_step(s, NS);
    uint32_t v = qtest_inl(s, PM_TMR);
    g_assert_cmphex(v, ==, ticks_at(t1));
    g_assert_cmpuint((v - ticks_at(t0)) & 0xffffff, ==, PM_HZ);
    /* 24 bits: after ~4.7 s the counter wraps. */
    for (int i = 0; i < 6; i++) {
        qtest_clock_step(s, NS);
        g_assert_cmphex(qtest_inl(s, PM_TMR) & 0xff000000u, ==, 0);
    }
    /* A 16-bit read returns the low half of the same counter. */
    int64_t t2 = qtest_clock_step(s, 0);
    g_assert_cmphex(qtest_inw(s, PM_TMR), ==, ticks_at(t2) & 0xffff);
    qtest_quit(s);
}

static void test_pm1_registers(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    g_assert_cmphex(qtest_inw(s, PM1_EN), ==, 0);
    g_assert_cmphex(qtest_inw(s, PM1_CNT), ==, 0); /* ACPI mode off after reset */
    qtest_outw(s, PM1_EN, 0xffff);
    g_assert_cmphex(qtest_inw(s, PM1_EN), ==, 0x0721); /* TMR GBL PWRBTN SLPBTN RTC */
    /* A dword write at 0x600 reaches status (low half) and enable (high half). */
    qtest_outl(s, PM1_STS, 0x01000000);
    g_assert_cmphex(qtest_inw(s, PM1_EN), ==, 0x0100);
    g_assert_cmphex(qtest_inl(s, PM1_STS) >> 16, ==, 0x0100);

    /* The timer carry: bit 23 flips every 2^23 ticks (~2.34 s). */
    qtest_outw(s, PM1_STS, 0xffff);
    g_assert_cmphex(qtest_inw(s, PM1_STS) & TMR_STS, ==, 0);
    qtest_clock_step(s, 3 * NS);
    g_assert_cmphex(qtest_inw(s, PM1_STS) & TMR_STS, ==, TMR_STS);
    qtest_outw(s, PM1_STS, 0);                 /* writing 0 clears nothing */
    g_assert_cmphex(qtest_inw(s, PM1_STS) & TMR_STS, ==, TMR_STS);
    qtest_outw(s, PM1_STS, TMR_STS);           /* writing 1 clears */
    g_assert_cmphex(qtest_inw(s, PM1_STS) & TMR_STS, ==, 0);

    /* SLP_EN is write-only; SLP_TYP and SCI_EN read back.  Type 3 is no sleep state
     * of this board: nothing happens and Sen keeps answering. */
    qtest_outw(s, PM1_CNT, (3 << 10) | SLP_EN | SCI_EN);
    g_assert_cmphex(qtest_inw(s, PM1_CNT), ==, (3 << 10) | SCI_EN);

    /* GPE0: enable read-write, status write-1-to-clear (nothing sets it yet). */
    qtest_outw(s, GPE0_EN, 0x00ff);
    g_assert_cmphex(qtest_inw(s, GPE0_EN), ==, 0x00ff);
    g_assert_cmphex(qtest_inl(s, GPE0_STS), ==, 0x00ff0000);
    qtest_outw(s, GPE0_STS, 0xffff);
    g_assert_cmphex(qtest_inw(s, GPE0_STS), ==, 0);
    qtest_quit(s);
}

static void test_sci(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    qtest_outw(s, PM1_STS, 0xffff);
    qtest_outw(s, PM1_EN, TMR_STS);
    qtest_clock_step(s, 3 * NS);              /* a carry: TMR_STS set */
    g_assert_false(qtest_get_irq(s, SCI));    /* but ACPI mode is off */

    qtest_outb(s, SMI_CMD, 0xf1);             /* ACPI_ENABLE */
    g_assert_cmphex(qtest_inw(s, PM1_CNT) & SCI_EN, ==, SCI_EN);
    g_assert_cmphex(qtest_inb(s, SMI_CMD), ==, 0xf1);
    g_assert_true(qtest_get_irq(s, SCI));     /* level: stays up until cleared */
    qtest_outw(s, PM1_STS, TMR_STS);
    g_assert_false(qtest_get_irq(s, SCI));

    /* The next carry raises the line by itself, from a timer, within 2^23 ticks. */
    qtest_clock_step(s, 2400000000LL);
    g_assert_true(qtest_get_irq(s, SCI));
    qtest_outw(s, PM1_EN, 0);                 /* masked: the line drops */
    g_assert_false(qtest_get_irq(s, SCI));
    qtest_outw(s, PM1_EN, TMR_STS);
    g_assert_true(qtest_get_irq(s, SCI));
    qtest_outb(s, SMI_CMD, 0xf0);             /* ACPI_DISABLE */
    g_assert_cmphex(qtest_inw(s, PM1_CNT) & SCI_EN, ==, 0);
    g_assert_false(qtest_get_irq(s, SCI));
    qtest_quit(s);
}

/* Reads PM1_EN until it is value (a reset is carried out by the main loop). */
static bool wait_pm1_en(QTestState *s, uint16_t value)
{
    for (int i = 0; i < 1000; i++) {
        if (qtest_inw(s, PM1_EN) == value) {
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

static void test_reset_port(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    qtest_outb(s, RCR, 0x02);                 /* hard-reset flag only: stored */
    g_assert_cmphex(qtest_inb(s, RCR), ==, 0x02);
    g_assert_cmphex(qtest_inl(s, 0xcf8), ==, 0); /* the address latch is untouched */
    qtest_outw(s, PM1_EN, PWRBTN);
    qtest_outb(s, RCR, 0x06);                 /* reset: devices go back to power-on */
    g_assert_true(wait_pm1_en(s, 0));
    g_assert_cmphex(qtest_inb(s, RCR), ==, 0);
    qtest_quit(s);
}

static void test_s5_powers_off(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    qtest_outb(s, SMI_CMD, 0xf1);
    /* SLP_TYP 0 is \_S5_ on this board; the reply may not arrive before the exit. */
    qtest_send_line(s, "outw 0x604 0x2001");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 0);
}

static uint8_t cmos_read(QTestState *s, uint8_t reg)
{
    qtest_outb(s, 0x70, reg);
    return qtest_inb(s, 0x71);
}

static void cmos_write(QTestState *s, uint8_t reg, uint8_t val)
{
    qtest_outb(s, 0x70, reg);
    qtest_outb(s, 0x71, val);
}

/* Polls CMOS reg until it holds value (suspend and wake-up run in the main loop). */
static bool wait_cmos(QTestState *s, uint8_t reg, uint8_t value)
{
    for (int i = 0; i < 1000; i++) {
        if (cmos_read(s, reg) == value) {
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

static bool wait_pm1_sts(QTestState *s, uint16_t bits)
{
    for (int i = 0; i < 1000; i++) {
        if ((qtest_inw(s, PM1_STS) & bits) == bits) {
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

/* Arms the RTC alarm for every second (all fields "don't care") with its interrupt on,
 * as kvm-unit-tests' s3 test does, and enters S3 (SLP_TYP 1, the \_S3_ value). */
static void suspend_with_alarm(QTestState *s, uint16_t pm1_en)
{
    qtest_outb(s, SMI_CMD, 0xf1);
    qtest_outw(s, PM1_STS, 0xffff);
    qtest_outw(s, PM1_EN, pm1_en);
    cmos_read(s, 0x0c);
    cmos_write(s, 0x01, 0xc0);
    cmos_write(s, 0x03, 0xc0);
    cmos_write(s, 0x05, 0xc0);
    cmos_write(s, 0x0b, cmos_read(s, 0x0b) | 0x20);
    g_assert_cmphex(cmos_read(s, 0x0f), ==, 0);
    qtest_outw(s, PM1_CNT, (1 << 10) | SLP_EN | SCI_EN);
    /* Suspended: QEMU's RTC marks the coming reset as an S3 resume for firmware. */
    g_assert_true(wait_cmos(s, 0x0f, 0xfe));
}

static void test_s3_rtc_wakeup(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    suspend_with_alarm(s, RTC_STS);
    /* Devices keep their state while asleep, the clock runs on: the alarm fires. */
    g_assert_cmphex(qtest_inw(s, PM1_EN), ==, RTC_STS);
    qtest_clock_step(s, 1100000000LL);
    g_assert_true(wait_pm1_sts(s, WAK_STS));
    /* Woken by a reset that kept RAM: PM1 as after reset plus WAK_STS and RTC_STS,
     * the RTC's interrupt enables off, the shutdown status left for firmware (no
     * -kernel here, so Sen does not resume the guest itself). */
    g_assert_cmphex(qtest_inw(s, PM1_STS) & ~TMR_STS, ==, WAK_STS | RTC_STS);
    g_assert_cmphex(qtest_inw(s, PM1_EN), ==, 0);
    g_assert_cmphex(qtest_inw(s, PM1_CNT), ==, 0);
    g_assert_cmphex(cmos_read(s, 0x0b) & 0x20, ==, 0);
    g_assert_cmphex(cmos_read(s, 0x0f), ==, 0xfe);
    qtest_outw(s, PM1_STS, WAK_STS | RTC_STS);
    g_assert_cmphex(qtest_inw(s, PM1_STS) & (WAK_STS | RTC_STS), ==, 0);

    /* A second sleep works the same way. */
    cmos_write(s, 0x0f, 0);
    suspend_with_alarm(s, RTC_STS);
    qtest_clock_step(s, 1100000000LL);
    g_assert_true(wait_pm1_sts(s, WAK_STS | RTC_STS));
    qtest_quit(s);
}

/* Without PM1_EN.RTC_EN the alarm only raises IRQ 8: the guest sleeps on. */
static void test_s3_alarm_masked(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    suspend_with_alarm(s, 0);
    qtest_clock_step(s, 2100000000LL);
    g_assert_true(qtest_get_irq(s, 8));
    g_usleep(100000);
    g_assert_cmphex(qtest_inw(s, PM1_STS) & WAK_STS, ==, 0);
    /* Still asleep: enabling the RTC wake-up now lets the next alarm end it. */
    cmos_read(s, 0x0c);
    qtest_outw(s, PM1_EN, RTC_STS);
    qtest_clock_step(s, 1100000000LL);
    g_assert_true(wait_pm1_sts(s, WAK_STS | RTC_STS));
    qtest_quit(s);
}

/* An alarm wakes the guest even when IRQ 8 is already high from an update interrupt the
 * guest never acknowledged. */
static void test_s3_alarm_with_irq_pending(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    qtest_outb(s, SMI_CMD, 0xf1);
    qtest_outw(s, PM1_STS, 0xffff);
    qtest_outw(s, PM1_EN, RTC_STS);
    cmos_read(s, 0x0c);
    /* Seconds alarm 3 s from now (BCD), any minute and hour; update interrupts on. */
    uint8_t sec = cmos_read(s, 0x00);
    unsigned bin = (unsigned)(sec >> 4) * 10 + (sec & 0xf);
    unsigned at = (bin + 3) % 60;
    cmos_write(s, 0x01, (uint8_t)(((at / 10) << 4) | (at % 10)));
    cmos_write(s, 0x03, 0xc0);
    cmos_write(s, 0x05, 0xc0);
    cmos_write(s, 0x0b, cmos_read(s, 0x0b) | 0x30);
    qtest_clock_step(s, 1000000000LL);
    g_assert_true(qtest_get_irq(s, 8));       /* UF pending, not acknowledged */
    qtest_outw(s, PM1_CNT, (1 << 10) | SLP_EN | SCI_EN);
    g_assert_true(wait_cmos(s, 0x0f, 0xfe));
    g_assert_cmphex(qtest_inw(s, PM1_STS) & WAK_STS, ==, 0);
    qtest_clock_step(s, 3000000000LL);
    g_assert_true(wait_pm1_sts(s, WAK_STS | RTC_STS));
    qtest_quit(s);
}

/* A PM timer carry with PM1_EN.TMR_EN ends the sleep too; the guest sees TMR_STS. */
static void test_s3_pm_timer_wakeup(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = start();
    qtest_outb(s, SMI_CMD, 0xf1);
    qtest_outw(s, PM1_STS, 0xffff);
    qtest_outw(s, PM1_EN, TMR_STS);
    qtest_outw(s, PM1_STS, 0xffff);
    qtest_outw(s, PM1_CNT, (1 << 10) | SLP_EN | SCI_EN);
    g_assert_true(wait_cmos(s, 0x0f, 0xfe));
    g_assert_cmphex(qtest_inw(s, PM1_STS) & WAK_STS, ==, 0);
    qtest_clock_step(s, 2400000000LL);        /* the next carry, within 2^23 ticks */
    g_assert_true(wait_pm1_sts(s, WAK_STS | TMR_STS));
    g_assert_cmphex(qtest_inw(s, PM1_EN), ==, 0);
    qtest_quit(s);
}

/* -machine acpi=off (and -no-acpi): no PM block at all, as QEMU's pc without ACPI. */
static void test_acpi_off(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    static const char *const lines[] = { "-machine pc,acpi=off", "-no-acpi" };
    for (unsigned i = 0; i < G_N_ELEMENTS(lines); i++) {
        QTestState *s = qtest_init(lines[i]);
        g_assert_cmphex(qtest_inl(s, PM_TMR), ==, 0xffffffff);
        g_assert_cmphex(qtest_inw(s, PM1_CNT), ==, 0xffff);
        g_assert_cmphex(qtest_inw(s, GPE0_STS), ==, 0xffff);
        qtest_quit(s);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi-pm/timer-rate", test_timer_rate);
    g_test_add_func("/acpi-pm/pm1-registers", test_pm1_registers);
    g_test_add_func("/acpi-pm/sci", test_sci);
    g_test_add_func("/acpi-pm/reset-port", test_reset_port);
    g_test_add_func("/acpi-pm/s5-powers-off", test_s5_powers_off);
    g_test_add_func("/acpi-pm/s3-rtc-wakeup", test_s3_rtc_wakeup);
    g_test_add_func("/acpi-pm/s3-alarm-masked", test_s3_alarm_masked);
    g_test_add_func("/acpi-pm/s3-pm-timer-wakeup", test_s3_pm_timer_wakeup);
    g_test_add_func("/acpi-pm/s3-alarm-with-irq-pending", test_s3_alarm_with_irq_pending);
    g_test_add_func("/acpi-pm/acpi-off", test_acpi_off);
    return g_test_run();
}
