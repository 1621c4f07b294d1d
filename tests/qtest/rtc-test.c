/*
 * The MC146818 RTC from outside: time registers in BCD/binary and 12/24 h, time advancing
 * exactly with the virtual clock, the periodic, alarm and update-ended interrupts on
 * IRQ 8, register C acknowledgement, reset, and the CMOS bytes the board fills.
 */
#include <string.h>
#include "libqtest.h"

#define RTC_IRQ 8

enum {
    SECONDS = 0x00,
    SECONDS_ALARM = 0x01,
    MINUTES = 0x02,
    MINUTES_ALARM = 0x03,
    HOURS = 0x04,
    HOURS_ALARM = 0x05,
    DAY_OF_WEEK = 0x06,
    DAY = 0x07,
    MONTH = 0x08,
    YEAR = 0x09,
    REG_A = 0x0a,
    REG_B = 0x0b,
    REG_C = 0x0c,
    REG_D = 0x0d,
    CENTURY = 0x32,
};

#define REG_B_SET 0x80
#define REG_B_PIE 0x40
#define REG_B_AIE 0x20
#define REG_B_UIE 0x10
#define REG_B_DM 0x04
#define REG_B_24H 0x02
#define REG_C_IRQF 0x80
#define REG_C_PF 0x40
#define REG_C_AF 0x20
#define REG_C_UF 0x10

#define NS_PER_SEC 1000000000LL
#define NS_PER_MS 1000000LL

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

typedef struct RtcTime {
    uint8_t sec, min, hour, dow, day, month, year, century;
} RtcTime;

static void rtc_read_time(QTestState *s, RtcTime *t)
{
    t->sec = cmos_read(s, SECONDS);
    t->min = cmos_read(s, MINUTES);
    t->hour = cmos_read(s, HOURS);
    t->dow = cmos_read(s, DAY_OF_WEEK);
    t->day = cmos_read(s, DAY);
    t->month = cmos_read(s, MONTH);
    t->year = cmos_read(s, YEAR);
    t->century = cmos_read(s, CENTURY);
}

/* Sets the time with SET held, the way a guest OS does; reg_b is the format to use. */
static void rtc_set_time(QTestState *s, uint8_t reg_b, const RtcTime *t)
{
    cmos_write(s, REG_B, reg_b | REG_B_SET);
    cmos_write(s, SECONDS, t->sec);
    cmos_write(s, MINUTES, t->min);
    cmos_write(s, HOURS, t->hour);
    cmos_write(s, DAY_OF_WEEK, t->dow);
    cmos_write(s, DAY, t->day);
    cmos_write(s, MONTH, t->month);
    cmos_write(s, YEAR, t->year);
    cmos_write(s, CENTURY, t->century);
    cmos_write(s, REG_B, reg_b);
}

static void assert_time(QTestState *s, uint8_t hour, uint8_t min, uint8_t sec)
{
    g_assert_cmphex(cmos_read(s, HOURS), ==, hour);
    g_assert_cmphex(cmos_read(s, MINUTES), ==, min);
    g_assert_cmphex(cmos_read(s, SECONDS), ==, sec);
}

static void assert_date(QTestState *s, uint8_t century, uint8_t year, uint8_t month,
                        uint8_t day, uint8_t dow)
{
    g_assert_cmphex(cmos_read(s, CENTURY), ==, century);
    g_assert_cmphex(cmos_read(s, YEAR), ==, year);
    g_assert_cmphex(cmos_read(s, MONTH), ==, month);
    g_assert_cmphex(cmos_read(s, DAY), ==, day);
    g_assert_cmphex(cmos_read(s, DAY_OF_WEEK), ==, dow);
}

static QTestState *rtc_start(void)
{
    return qtest_init("-m 128M");
}

static void test_power_on_state(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    g_assert_cmphex(cmos_read(s, REG_A), ==, 0x26);
    g_assert_cmphex(cmos_read(s, REG_B), ==, REG_B_24H);
    g_assert_cmphex(cmos_read(s, REG_C), ==, 0);
    g_assert_cmphex(cmos_read(s, REG_D), ==, 0x80);
    /* The host's date, in BCD: a plausible century and month. */
    uint8_t century = cmos_read(s, CENTURY);
    g_assert(century == 0x20 || century == 0x21);
    uint8_t month = cmos_read(s, MONTH);
    g_assert(month >= 0x01 && month <= 0x12);
    qtest_quit(s);
}

static void test_bcd_24h(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    /* Monday 2011-02-28 23:59:58, the eve of a month change in a non-leap year. */
    RtcTime t = { 0x58, 0x59, 0x23, 2, 0x28, 0x02, 0x11, 0x20 };
    rtc_set_time(s, REG_B_24H, &t);
    RtcTime r;
    rtc_read_time(s, &r);
    g_assert_cmpmem(&r, sizeof(r), &t, sizeof(t));

    qtest_clock_step(s, NS_PER_SEC);
    assert_time(s, 0x23, 0x59, 0x59);
    qtest_clock_step(s, NS_PER_SEC);
    assert_time(s, 0x00, 0x00, 0x00);
    assert_date(s, 0x20, 0x11, 0x03, 0x01, 3);
    qtest_quit(s);
}

static void test_binary_mode(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    /* Sunday 1999-12-31 23:59:59 in binary: the century rolls over. */
    RtcTime t = { 59, 59, 23, 6, 31, 12, 99, 19 };
    rtc_set_time(s, REG_B_24H | REG_B_DM, &t);
    assert_time(s, 23, 59, 59);
    qtest_clock_step(s, NS_PER_SEC);
    assert_time(s, 0, 0, 0);
    assert_date(s, 20, 0, 1, 1, 7); /* 2000-01-01 was a Saturday */

    /* Switching the running clock to BCD shows the same time in BCD at once. */
    cmos_write(s, REG_B, REG_B_24H);
    qtest_clock_step(s, 12 * NS_PER_SEC);
    assert_time(s, 0x00, 0x00, 0x12);
    assert_date(s, 0x20, 0x00, 0x01, 0x01, 7);
    qtest_quit(s);
}

static void test_12h_mode(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    /* 11:59:59 PM (BCD 0x11 with the PM bit) on 2020-02-28 (leap year). */
    RtcTime t = { 0x59, 0x59, 0x80 | 0x11, 6, 0x28, 0x02, 0x20, 0x20 };
    rtc_set_time(s, 0, &t);
    qtest_clock_step(s, NS_PER_SEC);
    assert_time(s, 0x12, 0x00, 0x00); /* 12 AM */
    assert_date(s, 0x20, 0x20, 0x02, 0x29, 7);

    /* 11:59:59 AM -> 12:00:00 PM */
    t = (RtcTime){ 0x59, 0x59, 0x11, 1, 0x01, 0x03, 0x20, 0x20 };
    rtc_set_time(s, 0, &t);
    qtest_clock_step(s, NS_PER_SEC);
    assert_time(s, 0x80 | 0x12, 0x00, 0x00);

    /* The same instant read in 24-hour mode is 12. */
    cmos_write(s, REG_B, REG_B_24H);
    assert_time(s, 0x12, 0x00, 0x00);
    /* 12-hour binary: 1 PM is 0x81. */
    qtest_clock_step(s, 3600 * NS_PER_SEC);
    cmos_write(s, REG_B, REG_B_DM);
    assert_time(s, 0x80 | 1, 0, 0);
    qtest_quit(s);
}

static void test_advance_exactly(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    RtcTime t = { 0x09, 0x08, 0x07, 2, 0x06, 0x05, 0x24, 0x20 };
    rtc_set_time(s, REG_B_24H, &t);

    /* Just under a second changes nothing; UIP announces the coming update. */
    qtest_clock_step(s, NS_PER_SEC - 100000);
    assert_time(s, 0x07, 0x08, 0x09);
    g_assert_cmphex(cmos_read(s, REG_A) & 0x80, ==, 0x80);
    qtest_clock_step(s, 100000);
    g_assert_cmphex(cmos_read(s, REG_A) & 0x80, ==, 0);
    assert_time(s, 0x07, 0x08, 0x10);

    /* 1 h 2 min 5 s later to the second. */
    qtest_clock_step(s, 3725 * NS_PER_SEC);
    assert_time(s, 0x08, 0x10, 0x15);

    /* A day and a bit: the date follows. */
    qtest_clock_step(s, (86400 + 45) * NS_PER_SEC);
    assert_time(s, 0x08, 0x11, 0x00);
    assert_date(s, 0x20, 0x24, 0x05, 0x07, 3);
    qtest_quit(s);
}

static void test_set_halts_updates(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    RtcTime t = { 0x30, 0x15, 0x10, 2, 0x06, 0x05, 0x24, 0x20 };
    rtc_set_time(s, REG_B_24H, &t);

    qtest_clock_step(s, 5 * NS_PER_SEC);
    cmos_write(s, REG_B, REG_B_24H | REG_B_SET);
    assert_time(s, 0x10, 0x15, 0x35); /* latched when SET went up */
    qtest_clock_step(s, 5 * NS_PER_SEC);
    qtest_clock_step(s, 5 * NS_PER_SEC);
    assert_time(s, 0x10, 0x15, 0x35);
    g_assert_cmphex(cmos_read(s, REG_A) & 0x80, ==, 0);

    /* Writing one register while running moves the clock to the new value. */
    cmos_write(s, REG_B, REG_B_24H);
    cmos_write(s, MINUTES, 0x45);
    qtest_clock_step(s, 2 * NS_PER_SEC);
    assert_time(s, 0x10, 0x45, 0x37);

    /* The divider held in reset (DV = 11x) stops time too. */
    cmos_write(s, REG_A, 0x66);
    qtest_clock_step(s, 10 * NS_PER_SEC);
    assert_time(s, 0x10, 0x45, 0x37);
    cmos_write(s, REG_A, 0x26);
    qtest_clock_step(s, NS_PER_SEC);
    assert_time(s, 0x10, 0x45, 0x38);
    qtest_quit(s);
}

/* Counts periodic interrupts in one second of virtual time at the given rate select. */
static int count_periodic(QTestState *s, uint8_t rs)
{
    cmos_write(s, REG_A, 0x20 | rs);
    cmos_write(s, REG_B, REG_B_24H | REG_B_PIE);
    cmos_read(s, REG_C);
    int64_t end = qtest_clock_step(s, 0) + NS_PER_SEC;
    int count = 0;
    for (;;) {
        int64_t now = qtest_clock_step_next(s);
        if (now > end) {
            break;
        }
        if (!qtest_get_irq(s, RTC_IRQ)) {
            continue; /* another device's timer */
        }
        /* UF shows too when a second passed: updates happen without UIE. */
        uint8_t c = cmos_read(s, REG_C);
        g_assert_cmphex(c & (REG_C_IRQF | REG_C_PF), ==, REG_C_IRQF | REG_C_PF);
        g_assert(!qtest_get_irq(s, RTC_IRQ));
        count++;
    }
    cmos_write(s, REG_B, REG_B_24H);
    return count;
}

static void test_periodic(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    qtest_irq_intercept_in(s, "ioapic");

    /* Rate 15: 2 Hz, a tick every 500 ms counted from when the rate was set. */
    cmos_write(s, REG_A, 0x2f);
    cmos_write(s, REG_B, REG_B_24H | REG_B_PIE);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    qtest_clock_step(s, 499 * NS_PER_MS);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    qtest_clock_step(s, NS_PER_MS);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    /* The line stays up until register C is read. */
    qtest_clock_step(s, 200 * NS_PER_MS);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    g_assert_cmphex(cmos_read(s, REG_C), ==, REG_C_IRQF | REG_C_PF);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    g_assert_cmphex(cmos_read(s, REG_C), ==, 0);
    qtest_clock_step(s, 300 * NS_PER_MS);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    cmos_read(s, REG_C);
    cmos_write(s, REG_B, REG_B_24H);

    g_assert_cmpint(count_periodic(s, 6), ==, 1024);
    g_assert_cmpint(count_periodic(s, 3), ==, 8192);
    /* Rates 1 and 2 repeat 8 and 9 with a 32.768 kHz time base. */
    g_assert_cmpint(count_periodic(s, 1), ==, 256);
    g_assert_cmpint(count_periodic(s, 2), ==, 128);
    g_assert_cmpint(count_periodic(s, 0xf), ==, 2);

    /* Without PIE no interrupt, but PF still shows in register C. */
    cmos_write(s, REG_A, 0x2f);
    cmos_read(s, REG_C);
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    g_assert_cmphex(cmos_read(s, REG_C) & (REG_C_IRQF | REG_C_PF), ==, REG_C_PF);

    /* Rate 0 stops them. */
    cmos_write(s, REG_A, 0x20);
    cmos_write(s, REG_B, REG_B_24H | REG_B_PIE);
    cmos_read(s, REG_C);
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    g_assert_cmphex(cmos_read(s, REG_C) & REG_C_PF, ==, 0);
    qtest_quit(s);
}

static void test_alarm(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    qtest_irq_intercept_in(s, "ioapic");
    RtcTime t = { 0x00, 0x00, 0x12, 2, 0x06, 0x05, 0x24, 0x20 };
    rtc_set_time(s, REG_B_24H, &t);

    cmos_write(s, HOURS_ALARM, 0x12);
    cmos_write(s, MINUTES_ALARM, 0x00);
    cmos_write(s, SECONDS_ALARM, 0x05);
    cmos_write(s, REG_B, REG_B_24H | REG_B_AIE);
    cmos_read(s, REG_C);

    qtest_clock_step(s, 4 * NS_PER_SEC);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    uint8_t c = cmos_read(s, REG_C);
    g_assert_cmphex(c & (REG_C_IRQF | REG_C_AF), ==, REG_C_IRQF | REG_C_AF);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    /* Once a day only: nothing in the next hour. */
    qtest_clock_step(s, 3600 * NS_PER_SEC);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    g_assert_cmphex(cmos_read(s, REG_C) & REG_C_AF, ==, 0);

    /* Don't-care hours and minutes: every minute at second 30.  Now 13:00:05. */
    cmos_write(s, HOURS_ALARM, 0xc0);
    cmos_write(s, MINUTES_ALARM, 0xff);
    cmos_write(s, SECONDS_ALARM, 0x30);
    qtest_clock_step(s, 24 * NS_PER_SEC);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    assert_time(s, 0x13, 0x00, 0x30);
    cmos_read(s, REG_C);
    qtest_clock_step(s, 59 * NS_PER_SEC);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    assert_time(s, 0x13, 0x01, 0x30);
    cmos_read(s, REG_C);

    /* All don't-care: every second.  In binary mode too. */
    cmos_write(s, REG_B, REG_B_24H | REG_B_DM | REG_B_AIE);
    cmos_write(s, SECONDS_ALARM, 0xc0);
    cmos_read(s, REG_C);
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    qtest_quit(s);
}

static void test_update_ended(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    qtest_irq_intercept_in(s, "ioapic");
    RtcTime t = { 0x00, 0x00, 0x12, 2, 0x06, 0x05, 0x24, 0x20 };
    rtc_set_time(s, REG_B_24H, &t);

    cmos_write(s, REG_B, REG_B_24H | REG_B_UIE);
    cmos_read(s, REG_C);
    qtest_clock_step(s, NS_PER_SEC / 2);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    qtest_clock_step(s, NS_PER_SEC / 2);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    /* PF is set too: the default 1024 Hz rate runs without PIE. */
    g_assert_cmphex(cmos_read(s, REG_C) & ~REG_C_PF, ==, REG_C_IRQF | REG_C_UF);
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    /* The next one exactly a second later, found by stepping to the next deadline. */
    g_assert_cmpint(qtest_clock_step_next(s), ==, 2 * NS_PER_SEC);
    g_assert(qtest_get_irq(s, RTC_IRQ));
    cmos_read(s, REG_C);

    /* SET clears UIE, as on the chip. */
    cmos_write(s, REG_B, REG_B_24H | REG_B_UIE | REG_B_SET);
    g_assert_cmphex(cmos_read(s, REG_B), ==, REG_B_24H | REG_B_SET);
    qtest_quit(s);
}

static void test_reset(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    qtest_irq_intercept_in(s, "ioapic");
    RtcTime t = { 0, 0, 12, 2, 6, 5, 24, 20 };
    rtc_set_time(s, REG_B_24H | REG_B_DM, &t);
    cmos_write(s, 0x50, 0xa5);
    cmos_write(s, REG_B, REG_B_24H | REG_B_DM | REG_B_UIE | REG_B_PIE);
    qtest_clock_step(s, NS_PER_SEC);
    g_assert(qtest_get_irq(s, RTC_IRQ));

    /* A system reset (keyboard controller pulse) reaches the RTC's RESET pin. */
    qtest_outb(s, 0x64, 0xfe);
    /* Sen acts on the reset request after the command: give it a moment. */
    for (int i = 0; i < 200 && qtest_get_irq(s, RTC_IRQ); i++) {
        g_usleep(10 * 1000);
    }
    g_assert(!qtest_get_irq(s, RTC_IRQ));
    g_assert_cmphex(cmos_read(s, REG_B), ==, REG_B_24H | REG_B_DM);
    g_assert_cmphex(cmos_read(s, REG_C), ==, 0);
    g_assert_cmphex(cmos_read(s, 0x50), ==, 0xa5);
    g_assert_cmphex(cmos_read(s, SECONDS), ==, 0x01);
    qtest_quit(s);
}

static void test_cmos_memory(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    /* RAM above 16 MiB in 64 KiB units: (128 - 16) MiB = 0x0700. */
    unsigned above16 = cmos_read(s, 0x34) | cmos_read(s, 0x35) << 8;
    g_assert_cmphex(above16, ==, 0x0700);

    /* The NVRAM bytes are plain memory (0x32 is the century, so it is skipped). */
    for (unsigned reg = 0x38; reg < 0x80; reg++) {
        cmos_write(s, reg, (uint8_t)(reg * 7 + 1));
    }
    for (unsigned reg = 0x38; reg < 0x80; reg++) {
        g_assert_cmphex(cmos_read(s, reg), ==, (uint8_t)(reg * 7 + 1));
    }
    /* Bit 7 of the index (NMI mask) does not change the register selected. */
    cmos_write(s, 0x80 | 0x40, 0x5a);
    g_assert_cmphex(cmos_read(s, 0x40), ==, 0x5a);
    /* C and D are read-only. */
    cmos_write(s, REG_D, 0);
    g_assert_cmphex(cmos_read(s, REG_D), ==, 0x80);
    qtest_quit(s);
}

/* Random register writes, formats and clock jumps: the RTC must keep answering. */
static void test_fuzz_registers(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = rtc_start();
    qtest_irq_intercept_in(s, "ioapic");
    GRand *rnd = g_rand_new_with_seed(0x146818);
    for (int i = 0; i < 3000; i++) {
        uint8_t reg = (uint8_t)g_rand_int_range(rnd, 0, 0x100);
        uint8_t val = (uint8_t)g_rand_int_range(rnd, 0, 0x100);
        switch (g_rand_int_range(rnd, 0, 4)) {
        case 0:
            cmos_write(s, reg & 0x0f, val);
            break;
        case 1:
            cmos_write(s, reg, val);
            break;
        case 2:
            cmos_read(s, reg);
            break;
        default:
            qtest_clock_step(s, (int64_t)g_rand_int_range(rnd, 0, 1 << 30) *
                                    g_rand_int_range(rnd, 1, 4));
            break;
        }
    }
    g_rand_free(rnd);
    /* Every periodic rate and alarm still works after a jump to the far future. */
    qtest_clock_set(s, INT64_MAX / 2);
    cmos_write(s, REG_B, REG_B_24H | REG_B_PIE | REG_B_AIE | REG_B_UIE);
    cmos_write(s, REG_A, 0x23);
    for (int i = 0; i < 100; i++) {
        qtest_clock_step_next(s);
        cmos_read(s, REG_C);
    }
    qtest_clock_set(s, INT64_MAX);
    cmos_read(s, REG_C);
    cmos_read(s, SECONDS);
    qtest_outw(s, 0x70, 0x550b);
    g_assert_cmphex(qtest_inw(s, 0x70), ==, 0x55ff);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rtc/power-on-state", test_power_on_state);
    g_test_add_func("/rtc/bcd-24h", test_bcd_24h);
    g_test_add_func("/rtc/binary", test_binary_mode);
    g_test_add_func("/rtc/12h", test_12h_mode);
    g_test_add_func("/rtc/advance-exactly", test_advance_exactly);
    g_test_add_func("/rtc/set-halts-updates", test_set_halts_updates);
    g_test_add_func("/rtc/periodic", test_periodic);
    g_test_add_func("/rtc/alarm", test_alarm);
    g_test_add_func("/rtc/update-ended", test_update_ended);
    g_test_add_func("/rtc/reset", test_reset);
    g_test_add_func("/rtc/cmos-memory", test_cmos_memory);
    g_test_add_func("/rtc/fuzz-registers", test_fuzz_registers);
    return g_test_run();
}
