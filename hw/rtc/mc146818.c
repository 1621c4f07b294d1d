/*
 * MC146818 real-time clock and CMOS RAM ("mc146818rtc"), as on every PC at ports 0x70/0x71.
 *
 * Time model: the guest's wall clock is the virtual clock plus an offset (offset_ns), fixed
 * from the host's UTC time at realize and re-fixed whenever the guest sets the time.  So
 * under the qtest accelerator time only moves with clock_step, and under KVM it stops while
 * the VM is paused.  While the clock is halted (SET in register B, or the divider held in
 * reset) the time registers are plain bytes in cmos[]; while it runs they are computed on
 * every read, so no timer ticks once a second for an idle guest.
 *
 * Interrupt flags (register C) are kept lazily: an update-ended or alarm flag is derived on
 * a register C read from the seconds that passed since the last check, a periodic flag
 * from the 32 kHz ticks that passed.  Timers exist only while the matching interrupt is
 * enabled and the IRQ line is low, to raise it on time: while it is high nothing the guest
 * can see changes until it reads register C, which re-arms them.  So a stalled guest (or
 * a test stepping the clock by years) costs one timer event, not one per tick.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "sen/device.h"
#include "sen/hw/isa.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

enum {
    RTC_SECONDS = 0x00,
    RTC_SECONDS_ALARM = 0x01,
    RTC_MINUTES = 0x02,
    RTC_MINUTES_ALARM = 0x03,
    RTC_HOURS = 0x04,
    RTC_HOURS_ALARM = 0x05,
    RTC_DAY_OF_WEEK = 0x06,
    RTC_DAY_OF_MONTH = 0x07,
    RTC_MONTH = 0x08,
    RTC_YEAR = 0x09,
    RTC_REG_A = 0x0a,
    RTC_REG_B = 0x0b,
    RTC_REG_C = 0x0c,
    RTC_REG_D = 0x0d,
    RTC_CENTURY = 0x32,
    RTC_CMOS_SIZE = 128,
};

#define REG_A_UIP 0x80
#define REG_A_DV_MASK 0x70
#define REG_A_RS_MASK 0x0f

#define REG_B_SET 0x80
#define REG_B_PIE 0x40
#define REG_B_AIE 0x20
#define REG_B_UIE 0x10
#define REG_B_SQWE 0x08
#define REG_B_DM 0x04 /* binary instead of BCD */
#define REG_B_24H 0x02

/* Register C flags sit at the same bit positions as their enables in register B. */
#define REG_C_IRQF 0x80
#define REG_C_PF 0x40
#define REG_C_AF 0x20
#define REG_C_UF 0x10
#define REG_C_FLAGS (REG_C_PF | REG_C_AF | REG_C_UF)

#define REG_D_VRT 0x80

#define RTC_BASE_HZ 32768
/* UIP reads 1 during the 244 us before each update. */
#define RTC_UIP_WINDOW_NS 244000LL
/* About 136 years either side of 1970: guest nanoseconds fit in int64. */
#define RTC_MAX_SECS ((int64_t)1 << 32)

typedef struct RtcState {
    DeviceState parent;
    uint32_t iobase;
    uint32_t irq_num;
    uint32_t base_year;

    Machine *m;
    IrqLine irq;
    bool irq_level;
    bool io_mapped;

    uint8_t cmos[RTC_CMOS_SIZE];
    uint8_t index;

    int64_t offset_ns;       /* guest wall clock (ns since the epoch) - virtual clock */
    int64_t checked_sec;     /* last guest second whose UF/AF flags are accounted for */
    int64_t periodic_last;   /* last periodic tick index whose PF is accounted for */

    Timer *periodic_timer;
    Timer *update_timer;     /* update-ended and alarm interrupts */

    RateLimit rl;
} RtcState;

/* ---- arithmetic helpers ---- */

static int64_t rtc_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* floor(ns * 32768 / 1e9) without overflow for any non-negative virtual clock value. */
static int64_t rtc_ns_to_ticks(int64_t ns)
{
    return (int64_t)(((__int128)ns * RTC_BASE_HZ) / NS_PER_SEC);
}

/* The first virtual-clock nanosecond at which tick `ticks` has happened (may exceed
 * int64: the caller then arms no timer). */
static __int128 rtc_ticks_to_ns(int64_t ticks)
{
    __int128 num = (__int128)ticks * NS_PER_SEC;
    return (num + RTC_BASE_HZ - 1) / RTC_BASE_HZ;
}

static uint8_t rtc_to_reg(const RtcState *s, int v)
{
    if (s->cmos[RTC_REG_B] & REG_B_DM) {
        return (uint8_t)v;
    }
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* Garbage BCD from the guest yields garbage numbers, which timegm() normalises. */
static int rtc_from_reg(const RtcState *s, uint8_t v)
{
    if (s->cmos[RTC_REG_B] & REG_B_DM) {
        return v;
    }
    return ((v >> 4) & 0x0f) * 10 + (v & 0x0f);
}

static int rtc_hour_from_reg(const RtcState *s, uint8_t v)
{
    if (s->cmos[RTC_REG_B] & REG_B_24H) {
        return rtc_from_reg(s, v);
    }
    int h = rtc_from_reg(s, v & 0x7f) % 12;
    return (v & 0x80) ? h + 12 : h;
}

static uint8_t rtc_hour_to_reg(const RtcState *s, int hour)
{
    if (s->cmos[RTC_REG_B] & REG_B_24H) {
        return rtc_to_reg(s, hour);
    }
    int h = hour % 12;
    return rtc_to_reg(s, h == 0 ? 12 : h) | (hour >= 12 ? 0x80 : 0);
}

/* ---- the clock ---- */

static bool rtc_running(const RtcState *s)
{
    /* Divider settings above 010 are test modes or the divider reset. */
    return !(s->cmos[RTC_REG_B] & REG_B_SET) &&
           (s->cmos[RTC_REG_A] & REG_A_DV_MASK) <= 0x20;
}

/*
 * A test may set the virtual clock to any value: guest time then saturates instead of
 * wrapping, and a saturated clock no longer advances (so it arms no update timer).
 */
static bool rtc_guest_ns_checked(const RtcState *s, int64_t *ns)
{
    if (__builtin_add_overflow(virt_clock_get_ns(s->m->clock), s->offset_ns, ns)) {
        *ns = s->offset_ns > 0 ? INT64_MAX : INT64_MIN;
        return false;
    }
    return true;
}

static int64_t rtc_guest_ns(const RtcState *s)
{
    int64_t ns;
    rtc_guest_ns_checked(s, &ns);
    return ns;
}

static bool rtc_is_time_reg(uint8_t reg)
{
    switch (reg) {
    case RTC_SECONDS:
    case RTC_MINUTES:
    case RTC_HOURS:
    case RTC_DAY_OF_WEEK:
    case RTC_DAY_OF_MONTH:
    case RTC_MONTH:
    case RTC_YEAR:
    case RTC_CENTURY:
        return true;
    default:
        return false;
    }
}

/* Fills the time registers of regs[] (in the current format) from a guest second. */
static void rtc_time_to_regs(const RtcState *s, int64_t secs, uint8_t *regs)
{
    struct tm tm;
    time_t t = (time_t)secs;

    if (!gmtime_r(&t, &tm)) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_mday = 1;
        tm.tm_year = 70;
    }
    int year = tm.tm_year + 1900 - (int)s->base_year;
    if (year < 0) {
        year = 0;
    }
    regs[RTC_SECONDS] = rtc_to_reg(s, tm.tm_sec);
    regs[RTC_MINUTES] = rtc_to_reg(s, tm.tm_min);
    regs[RTC_HOURS] = rtc_hour_to_reg(s, tm.tm_hour);
    regs[RTC_DAY_OF_WEEK] = rtc_to_reg(s, tm.tm_wday + 1);
    regs[RTC_DAY_OF_MONTH] = rtc_to_reg(s, tm.tm_mday);
    regs[RTC_MONTH] = rtc_to_reg(s, tm.tm_mon + 1);
    regs[RTC_YEAR] = rtc_to_reg(s, year % 100);
    regs[RTC_CENTURY] = rtc_to_reg(s, (year / 100) % 100);
}

/* The guest second the time registers in cmos[] describe (day of week is ignored). */
static int64_t rtc_regs_to_time(const RtcState *s)
{
    struct tm tm = { 0 };

    tm.tm_sec = rtc_from_reg(s, s->cmos[RTC_SECONDS]);
    tm.tm_min = rtc_from_reg(s, s->cmos[RTC_MINUTES]);
    tm.tm_hour = rtc_hour_from_reg(s, s->cmos[RTC_HOURS]);
    tm.tm_mday = rtc_from_reg(s, s->cmos[RTC_DAY_OF_MONTH]);
    tm.tm_mon = rtc_from_reg(s, s->cmos[RTC_MONTH]) - 1;
    tm.tm_year = rtc_from_reg(s, s->cmos[RTC_YEAR]) +
                 rtc_from_reg(s, s->cmos[RTC_CENTURY]) * 100 + (int)s->base_year - 1900;
    return (int64_t)timegm(&tm);
}

/* Copies the running time into cmos[], e.g. before the clock halts. */
static void rtc_latch(RtcState *s)
{
    rtc_time_to_regs(s, rtc_floor_div(rtc_guest_ns(s), NS_PER_SEC), s->cmos);
}

/* Starts the clock at the time in cmos[], at the very start of that second. */
static void rtc_restart(RtcState *s)
{
    int64_t secs = rtc_regs_to_time(s);
    /* Keeps guest time in nanoseconds inside int64 whatever the guest wrote. */
    secs = CLAMP(secs, -RTC_MAX_SECS, RTC_MAX_SECS);
    s->offset_ns = secs * NS_PER_SEC - virt_clock_get_ns(s->m->clock);
    s->checked_sec = secs;
}

/* ---- interrupts ---- */

/* The periodic interrupt period in 32 kHz ticks, 0 when off. */
static int64_t rtc_periodic_ticks(const RtcState *s)
{
    unsigned rs = s->cmos[RTC_REG_A] & REG_A_RS_MASK;

    if (rs == 0 || (s->cmos[RTC_REG_A] & REG_A_DV_MASK) > 0x20) {
        return 0;
    }
    /* With a 32.768 kHz time base, rates 1 and 2 repeat rates 8 and 9. */
    if (rs <= 2) {
        rs += 7;
    }
    return (int64_t)1 << (rs - 1);
}

static int64_t rtc_periodic_index(const RtcState *s, int64_t period)
{
    if (!period) {
        return 0;
    }
    return rtc_ns_to_ticks(virt_clock_get_ns(s->m->clock)) / period;
}

/* An alarm register as a binary value, -1 for don't-care, -2 when it can never match. */
static int rtc_alarm_field(const RtcState *s, uint8_t reg, int limit)
{
    uint8_t raw = s->cmos[reg];

    if ((raw & 0xc0) == 0xc0) {
        return -1;
    }
    int v = reg == RTC_HOURS_ALARM ? rtc_hour_from_reg(s, raw) : rtc_from_reg(s, raw);
    return v < limit ? v : -2;
}

/* The first guest second after `after` whose time of day matches the alarm, or -1. */
static int64_t rtc_next_alarm(const RtcState *s, int64_t after)
{
    int as = rtc_alarm_field(s, RTC_SECONDS_ALARM, 60);
    int am = rtc_alarm_field(s, RTC_MINUTES_ALARM, 60);
    int ah = rtc_alarm_field(s, RTC_HOURS_ALARM, 24);

    if (as == -2 || am == -2 || ah == -2) {
        return -1;
    }
    int64_t t = after + 1;
    int64_t first_minute = rtc_floor_div(t, 60);
    /* Walking minutes finds any match within a day plus one minute. */
    for (int64_t i = 0; i <= 24 * 60; i++) {
        int64_t minute = first_minute + i;
        int64_t minute_of_day = minute - rtc_floor_div(minute, 24 * 60) * 24 * 60;
        if ((ah >= 0 && minute_of_day / 60 != ah) || (am >= 0 && minute_of_day % 60 != am)) {
            continue;
        }
        int64_t cand = as < 0 ? MAX(minute * 60, t) : minute * 60 + as;
        if (cand >= t) {
            return cand;
        }
    }
    return -1;
}

/* Brings UF/AF/PF up to date with the clock. */
static void rtc_account_flags(RtcState *s)
{
    int64_t period = rtc_periodic_ticks(s);

    if (period) {
        int64_t idx = rtc_periodic_index(s, period);
        if (idx != s->periodic_last) {
            s->cmos[RTC_REG_C] |= REG_C_PF;
            s->periodic_last = idx;
        }
    }
    if (!rtc_running(s)) {
        return;
    }
    int64_t now_sec = rtc_floor_div(rtc_guest_ns(s), NS_PER_SEC);
    if (now_sec > s->checked_sec) {
        s->cmos[RTC_REG_C] |= REG_C_UF;
        int64_t alarm = rtc_next_alarm(s, s->checked_sec);
        if (alarm >= 0 && alarm <= now_sec) {
            s->cmos[RTC_REG_C] |= REG_C_AF;
        }
        s->checked_sec = now_sec;
    }
}

/* IRQF and the line follow the enabled flags. */
static void rtc_update_irq(RtcState *s)
{
    uint8_t c = s->cmos[RTC_REG_C] & REG_C_FLAGS;

    if (c & s->cmos[RTC_REG_B] & REG_C_FLAGS) {
        c |= REG_C_IRQF;
    }
    s->cmos[RTC_REG_C] = c;
    bool level = c & REG_C_IRQF;
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(&s->irq, level);
    }
}

/*
 * Arms a timer, or none when the deadline lies beyond the int64 clock.  Deadlines are
 * always after now once the flags are accounted, so a callback never re-arms itself for
 * the current instant (which would loop forever in virt_clock_set).
 */
static void rtc_timer_arm(Timer *t, __int128 at)
{
    if (at > INT64_MAX) {
        timer_del(t);
    } else {
        timer_mod(t, (int64_t)MAX(at, (__int128)0));
    }
}

static void rtc_rearm_periodic(RtcState *s)
{
    int64_t period = rtc_periodic_ticks(s);

    if (period && (s->cmos[RTC_REG_B] & REG_B_PIE) && !s->irq_level) {
        rtc_timer_arm(s->periodic_timer, rtc_ticks_to_ns((s->periodic_last + 1) * period));
    } else {
        timer_del(s->periodic_timer);
    }
}

static void rtc_rearm_update(RtcState *s)
{
    int64_t next = -1, now_ns;

    if (rtc_running(s) && rtc_guest_ns_checked(s, &now_ns)) {
        if ((s->cmos[RTC_REG_B] & REG_B_UIE) && !s->irq_level) {
            next = s->checked_sec + 1;
        }
        /* The alarm also while the line is high, until its flag is up: it must still
         * end an ACPI S3 sleep (rtc_update_cb).  Once per alarm at most. */
        if ((s->cmos[RTC_REG_B] & REG_B_AIE) &&
            (!s->irq_level || !(s->cmos[RTC_REG_C] & REG_C_AF))) {
            int64_t alarm = rtc_next_alarm(s, s->checked_sec);
            if (alarm >= 0 && (next < 0 || alarm < next)) {
                next = alarm;
            }
        }
    }
    if (next >= 0) {
        rtc_timer_arm(s->update_timer, (__int128)next * NS_PER_SEC - s->offset_ns);
    } else {
        timer_del(s->update_timer);
    }
}

/* Arms exactly the timers the enabled interrupts need. */
static void rtc_rearm(RtcState *s)
{
    rtc_rearm_periodic(s);
    rtc_rearm_update(s);
}

static void rtc_periodic_cb(void *opaque)
{
    RtcState *s = opaque;

    rtc_account_flags(s);
    rtc_update_irq(s);
    /* Only the periodic timer: the alarm search is not redone thousands of times a second. */
    rtc_rearm_periodic(s);
}

static void rtc_update_cb(void *opaque)
{
    RtcState *s = opaque;

    rtc_account_flags(s);
    rtc_update_irq(s);
    /* An enabled alarm ends an ACPI S3 sleep (if the PM block allows RTC wake-ups);
     * the machine ignores it while the guest is awake. */
    if (s->cmos[RTC_REG_C] & s->cmos[RTC_REG_B] & REG_C_AF) {
        machine_request_wakeup(s->m, WAKEUP_REASON_RTC);
    }
    rtc_rearm_update(s);
}

/* ---- register access ---- */

static uint8_t rtc_read_reg(RtcState *s, uint8_t reg)
{
    if (rtc_is_time_reg(reg) && rtc_running(s)) {
        uint8_t regs[RTC_CMOS_SIZE];
        rtc_time_to_regs(s, rtc_floor_div(rtc_guest_ns(s), NS_PER_SEC), regs);
        return regs[reg];
    }
    switch (reg) {
    case RTC_REG_A: {
        uint8_t v = s->cmos[RTC_REG_A] & ~REG_A_UIP;
        if (rtc_running(s)) {
            int64_t ns = rtc_guest_ns(s);
            int64_t subsec = ns - rtc_floor_div(ns, NS_PER_SEC) * NS_PER_SEC;
            if (subsec >= NS_PER_SEC - RTC_UIP_WINDOW_NS) {
                v |= REG_A_UIP;
            }
        }
        return v;
    }
    case RTC_REG_C: {
        /* Reading C acknowledges every flag and releases the IRQ line. */
        rtc_account_flags(s);
        rtc_update_irq(s);
        uint8_t v = s->cmos[RTC_REG_C];
        s->cmos[RTC_REG_C] = 0;
        rtc_update_irq(s);
        rtc_rearm(s);
        return v;
    }
    case RTC_REG_D:
        return REG_D_VRT;
    default:
        return s->cmos[reg];
    }
}

static void rtc_write_reg(RtcState *s, uint8_t reg, uint8_t val)
{
    bool was_running = rtc_running(s);

    if (rtc_is_time_reg(reg)) {
        if (was_running) {
            /* One register changes; the others keep the current time. */
            rtc_latch(s);
            s->cmos[reg] = val;
            rtc_restart(s);
            rtc_rearm(s);
        } else {
            s->cmos[reg] = val;
        }
        return;
    }
    switch (reg) {
    case RTC_REG_A: {
        int64_t old_period = rtc_periodic_ticks(s);
        rtc_account_flags(s);
        if (was_running) {
            rtc_latch(s);
        }
        s->cmos[RTC_REG_A] = val & ~REG_A_UIP;
        int64_t period = rtc_periodic_ticks(s);
        if (period && period != old_period) {
            /* A new rate starts counting now; no PF for ticks of the old one. */
            s->periodic_last = rtc_periodic_index(s, period);
        }
        if (!was_running && rtc_running(s)) {
            rtc_restart(s);
        }
        rtc_rearm(s);
        break;
    }
    case RTC_REG_B:
        rtc_account_flags(s);
        if (was_running) {
            rtc_latch(s);
        }
        if (val & REG_B_SET) {
            /* As on the chip: SET aborts the update cycle and clears UIE. */
            val &= ~REG_B_UIE;
        }
        s->cmos[RTC_REG_B] = val;
        if (!was_running && rtc_running(s)) {
            rtc_restart(s);
        }
        rtc_update_irq(s);
        rtc_rearm(s);
        break;
    case RTC_SECONDS_ALARM:
    case RTC_MINUTES_ALARM:
    case RTC_HOURS_ALARM:
        s->cmos[reg] = val;
        rtc_rearm(s);
        break;
    case RTC_REG_C:
    case RTC_REG_D:
        log_guest_error(&s->rl, "mc146818rtc: write 0x%02x to read-only register 0x%02x",
                        val, reg);
        break;
    default:
        s->cmos[reg] = val;
        break;
    }
}

static uint8_t rtc_io_read_byte(RtcState *s, uint64_t offset)
{
    if (offset == 0) {
        /* The index register is write-only on a PC. */
        return 0xff;
    }
    return rtc_read_reg(s, s->index);
}

static void rtc_io_write_byte(RtcState *s, uint64_t offset, uint8_t val)
{
    if (offset == 0) {
        /* Bit 7 masks NMI on a PC; there is no NMI source to mask here. */
        s->index = val & 0x7f;
    } else {
        rtc_write_reg(s, s->index, val);
    }
}

/* Wider accesses act as consecutive byte accesses, as the ISA bus splits them. */
static uint64_t rtc_io_read(void *opaque, uint64_t offset, unsigned size)
{
    RtcState *s = opaque;
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        uint8_t b = offset + i < 2 ? rtc_io_read_byte(s, offset + i) : 0xff;
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static void rtc_io_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    RtcState *s = opaque;

    for (unsigned i = 0; i < size && offset + i < 2; i++) {
        rtc_io_write_byte(s, offset + i, (uint8_t)(value >> (8 * i)));
    }
}

static const IoOps rtc_io_ops = {
    .read = rtc_io_read,
    .write = rtc_io_write,
};

/* ---- board interface (include/sen/hw/isa.h) ---- */

extern const DeviceClass mc146818rtc_class;

static RtcState *rtc_from_dev(DeviceState *dev)
{
    g_assert(dev && dev->cls == &mc146818rtc_class);
    return (RtcState *)dev;
}

void rtc_set_cmos(DeviceState *dev, uint8_t reg, uint8_t value)
{
    rtc_write_reg(rtc_from_dev(dev), reg & 0x7f, value);
}

uint8_t rtc_get_cmos(DeviceState *dev, uint8_t reg)
{
    RtcState *s = rtc_from_dev(dev);

    reg &= 0x7f;
    /* Without the read side effect of register C. */
    return reg == RTC_REG_C ? s->cmos[RTC_REG_C] : rtc_read_reg(s, reg);
}

/* ---- reset, realize ---- */

/* The RESET pin: interrupt enables and flags clear; time, format and RAM are kept. */
static void rtc_reset(DeviceState *dev)
{
    RtcState *s = (RtcState *)dev;

    s->cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE);
    s->cmos[RTC_REG_C] = 0;
    rtc_update_irq(s);
    rtc_rearm(s);
}

/* ---- migration ---- */

static bool rtc_post_load(void *opaque, int version_id, Error **errp)
{
    RtcState *s = opaque;
    if (s->index >= RTC_CMOS_SIZE) {
        error_setg(errp, "index register 0x%x out of range", s->index);
        return false;
    }
    /* The flags in register C decide the line; the timers follow the enables.  Deadlines
     * are on the virtual clock, which continues from the source's reading. */
    bool level = s->cmos[RTC_REG_C] & REG_C_IRQF;
    s->irq_level = level;
    irq_set_level(&s->irq, level);
    rtc_rearm(s);
    return true;
}

static const VMStateField rtc_fields[] = {
    VMSTATE_UINT8_ARRAY(cmos, RtcState, RTC_CMOS_SIZE),
    VMSTATE_UINT8(index, RtcState),
    VMSTATE_INT64(offset_ns, RtcState),
    VMSTATE_INT64(checked_sec, RtcState),
    VMSTATE_INT64(periodic_last, RtcState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc rtc_vmsd = {
    .name = "mc146818rtc",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = rtc_fields,
    .post_load = rtc_post_load,
};

static bool rtc_realize(DeviceState *dev, Machine *m, Error **errp)
{
    RtcState *s = (RtcState *)dev;

    if (s->iobase > 0xfffe) {
        error_setg(errp, "mc146818rtc: iobase=0x%x: beyond the 16-bit I/O space", s->iobase);
        return false;
    }
    if (s->irq_num > 23) {
        error_setg(errp, "mc146818rtc: irq=%u: must be an IOAPIC pin (0-23)", s->irq_num);
        return false;
    }
    if (s->base_year > 9999) {
        error_setg(errp, "mc146818rtc: base_year=%u: must be below 10000", s->base_year);
        return false;
    }
    s->m = m;
    s->irq = machine_irq(m, s->irq_num);
    s->cmos[RTC_REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
    s->cmos[RTC_REG_B] = REG_B_24H;
    s->cmos[RTC_REG_C] = 0;
    s->cmos[RTC_REG_D] = REG_D_VRT;

    s->periodic_timer = timer_new(m->clock, rtc_periodic_cb, s);
    s->update_timer = timer_new(m->clock, rtc_update_cb, s);

    /* Starts from the host's UTC time, at a whole second so tests see exact seconds. */
    rtc_time_to_regs(s, (int64_t)time(NULL), s->cmos);
    rtc_restart(s);
    s->periodic_last = rtc_periodic_index(s, rtc_periodic_ticks(s));

    if (!io_space_add(m->pio, s->iobase, 2, &rtc_io_ops, s, "mc146818rtc", errp)) {
        return false;
    }
    s->io_mapped = true;
    return true;
}

static void rtc_unrealize(DeviceState *dev)
{
    RtcState *s = (RtcState *)dev;

    if (s->io_mapped) {
        io_space_del(s->m->pio, s->iobase);
    }
    if (s->periodic_timer) {
        timer_free(s->periodic_timer);
    }
    if (s->update_timer) {
        timer_free(s->update_timer);
    }
}

static const PropertyDef rtc_props[] = {
    DEFINE_PROP("iobase", PROP_U32, RtcState, iobase, "0x70", "index port (data at +1)"),
    DEFINE_PROP("irq", PROP_U32, RtcState, irq_num, "8", "interrupt line (GSI)"),
    DEFINE_PROP("base_year", PROP_U32, RtcState, base_year, "0",
                "year that register value 0 (century and year) stands for"),
    { .name = NULL },
};

const DeviceClass mc146818rtc_class = {
    .name = "mc146818rtc",
    .desc = "MC146818 real-time clock with 128 bytes of CMOS RAM",
    .instance_size = sizeof(RtcState),
    .props = rtc_props,
    .user_creatable = false,
    .realize = rtc_realize,
    .reset = rtc_reset,
    .unrealize = rtc_unrealize,
    .vmsd = &rtc_vmsd,
};
