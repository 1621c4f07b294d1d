/*
 * The ACPI PM block of a PIIX4 ("acpi-pm"), at the I/O ports QEMU's pc board uses, so a
 * guest finds it where the FADT says (hw/acpi/acpi-build.c):
 *   0x600  PM1a status (write 1 to clear) and enable
 *   0x604  PM1a control: SCI_EN, SLP_TYP + SLP_EN (S3 = suspend to RAM, S5 = soft off)
 *   0x608  PM timer: 3.579545 MHz, 24 bits, on the virtual clock
 *   0xafe0 GPE0 status and enable (no GPE sources yet)
 *   0xb2   APM control: ACPI_ENABLE (0xf1) / ACPI_DISABLE (0xf0) set or clear SCI_EN,
 *          0xb3 a scratch status byte, as the FADT's SMI_CMD announces
 * The SCI is IRQ 9, level-triggered active high: it is held high while SCI_EN is set and
 * an enabled status bit is set.
 *
 * S3 (docs/acpi.md): SLP_TYP 1 + SLP_EN asks the machine to suspend.  While it sleeps an
 * RTC alarm wakes it if PM1_EN.RTC_EN is set, a PM timer carry if PM1_EN.TMR_EN is set
 * (the machine's wake-up mask follows those bits), as do QMP system_wakeup and the power
 * button.  The wake-up resets this block
 * like every device, then sets WAK_STS and the status of what woke the guest.
 *
 * The timer-carry status (TMR_STS, set each time bit 23 of the counter flips) is kept
 * lazily: it is derived from the clock whenever status is read, and a timer runs only
 * while the guest enabled its interrupt and the bit is still clear.
 */
#include "hw/acpi/acpi-build.h"
#include "sen/device.h"
#include "sen/hw/acpi.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

/* PM1 status / enable bits (enables sit at their status bit's position). */
#define PM1_TMR       (1u << 0)
#define PM1_BM        (1u << 4)
#define PM1_GBL       (1u << 5)
#define PM1_PWRBTN    (1u << 8)
#define PM1_SLPBTN    (1u << 9)
#define PM1_RTC       (1u << 10)
#define PM1_WAK       (1u << 15)
#define PM1_STS_MASK  (PM1_TMR | PM1_BM | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_WAK)
#define PM1_EN_MASK   (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)
/* PM1 control */
#define PM1_CNT_SCI_EN   (1u << 0)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP  (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN   (1u << 13)   /* write-only: reads as 0 */
#define PM1_CNT_MASK     (PM1_CNT_SCI_EN | (1u << 1) | (1u << 2) | PM1_CNT_SLP_TYP)

#define PM_TMR_BITS   24
#define PM_TMR_MASK   ((1u << PM_TMR_BITS) - 1)
#define PM_TMR_CARRY  (1u << (PM_TMR_BITS - 1))

/* Offsets in the 0x600 block. */
#define REG_PM1_STS   0x00
#define REG_PM1_EN    0x02
#define REG_PM1_CNT   0x04
#define REG_PM_TMR    0x08
#define REG_END       0x0c
/* ICH9 (-M q35): SMI_EN, whose APMC_EN bit set at reset is how QEMU tells firmware that
 * there is no SMM (SeaBIOS then skips its SMM set-up, which would wait for an SMI that
 * Sen never delivers). */
#define REG_ICH9_SMI_EN       0x30
#define ICH9_SMI_EN_APMC_EN   0x20

typedef struct AcpiPmState {
    DeviceState parent;
    bool ich9;              /* ich9= property: the block is ICH9's (SMI_EN, see above) */
    Machine *m;
    IrqLine sci;
    Timer *tmr_timer;       /* raises TMR_STS on time while TMR_EN is set */
    bool pm_mapped, gpe_mapped, apm_mapped;

    uint16_t pm1_sts, pm1_en, pm1_cnt;
    uint16_t gpe_sts, gpe_en;
    uint8_t apm_cnt, apm_sts;
    int64_t tmr_next_ns;    /* when bit 23 of the counter flips next */
    RateLimit rl;
} AcpiPmState;

/* ---- PM timer ---- */

static uint32_t tmr_ticks(int64_t ns)
{
    return (uint32_t)(((__int128)ns * ACPI_PM_TIMER_HZ) / NS_PER_SEC);
}

static void tmr_compute_next(AcpiPmState *s, int64_t now)
{
    unsigned __int128 ticks = ((__int128)now * ACPI_PM_TIMER_HZ) / NS_PER_SEC;
    unsigned __int128 next = (ticks | (PM_TMR_CARRY - 1)) + 1;
    s->tmr_next_ns = (int64_t)((next * NS_PER_SEC + ACPI_PM_TIMER_HZ - 1) /
                               ACPI_PM_TIMER_HZ);
}

/* Brings TMR_STS up to date with the clock reading now. */
static void tmr_account_at(AcpiPmState *s, int64_t now)
{
    if (now >= s->tmr_next_ns) {
        s->pm1_sts |= PM1_TMR;
        tmr_compute_next(s, now);
    }
}

static void tmr_account(AcpiPmState *s)
{
    tmr_account_at(s, virt_clock_get_ns(s->m->clock));
}

static void update_sci(AcpiPmState *s)
{
    bool level = (s->pm1_cnt & PM1_CNT_SCI_EN) &&
                 ((s->pm1_sts & s->pm1_en & PM1_EN_MASK) || (s->gpe_sts & s->gpe_en));
    irq_set_level(&s->sci, level);
    /* A carry can only matter while its interrupt is enabled and not yet pending. */
    if ((s->pm1_en & PM1_TMR) && !(s->pm1_sts & PM1_TMR)) {
        timer_mod(s->tmr_timer, s->tmr_next_ns);
    } else {
        timer_del(s->tmr_timer);
    }
}

static void tmr_expired(void *opaque)
{
    AcpiPmState *s = opaque;
    tmr_account(s);
    update_sci(s);
    /* An enabled carry ends an S3 sleep too (as QEMU's PM timer wake-up). */
    machine_request_wakeup(s->m, WAKEUP_REASON_PMTIMER);
}

/* ---- PM1 block ---- */

/* The registers as bytes, sampled once so a multi-byte read is consistent: one clock
 * reading serves both TMR_STS and the counter (the guest's clocksource reads PM_TMR
 * often). */
static void pm_snapshot(AcpiPmState *s, uint8_t regs[REG_END])
{
    int64_t now = virt_clock_get_ns(s->m->clock);
    tmr_account_at(s, now);
    uint32_t tmr = tmr_ticks(now) & PM_TMR_MASK;
    uint16_t cnt = s->pm1_cnt & ~PM1_CNT_SLP_EN;
    const uint64_t words[] = { s->pm1_sts, s->pm1_en, cnt, 0 };
    for (unsigned i = 0; i < 8; i++) {
        regs[i] = (uint8_t)(words[i / 2] >> (8 * (i % 2)));
    }
    for (unsigned i = 0; i < 4; i++) {
        regs[REG_PM_TMR + i] = (uint8_t)(tmr >> (8 * i));
    }
}

static uint64_t pm_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPmState *s = opaque;
    uint8_t regs[REG_END];
    uint64_t v = 0;

    pm_snapshot(s, regs);
    for (unsigned i = 0; i < size; i++) {
        uint64_t at = offset + i;
        uint8_t byte = at < REG_END ? regs[at] : 0;
        if (s->ich9 && at == REG_ICH9_SMI_EN) {
            byte = ICH9_SMI_EN_APMC_EN;
        }
        v |= (uint64_t)byte << (8 * i);
    }
    return v;
}

/* The bytes of a write that land in the 16-bit register at reg: value and mask. */
static bool pm_write_part(uint64_t offset, unsigned size, uint64_t value, unsigned reg,
                          uint16_t *val, uint16_t *mask)
{
    *val = 0;
    *mask = 0;
    for (unsigned i = 0; i < 2; i++) {
        uint64_t at = reg + i;
        if (at >= offset && at < offset + size) {
            *val |= (uint16_t)(((value >> (8 * (at - offset))) & 0xff) << (8 * i));
            *mask |= (uint16_t)(0xff << (8 * i));
        }
    }
    return *mask != 0;
}

static void pm_sleep(AcpiPmState *s, unsigned slp_typ)
{
    if (slp_typ == ACPI_SLP_TYP_S5) {
        machine_request_shutdown(s->m, SHUTDOWN_CAUSE_GUEST_SHUTDOWN, 0);
        return;
    }
    if (slp_typ == ACPI_SLP_TYP_S3) {
        machine_request_suspend(s->m);
        return;
    }
    log_guest_error(&s->rl, "acpi-pm: sleep type %u is not supported (S3 = %u, S5 = %u)",
                    slp_typ, ACPI_SLP_TYP_S3, ACPI_SLP_TYP_S5);
}

/* The RTC alarm and the timer carry may end an S3 sleep exactly while the guest enables
 * their events. */
static void pm_set_en(AcpiPmState *s, uint16_t en)
{
    s->pm1_en = en & PM1_EN_MASK;
    machine_set_wakeup_enabled(s->m, WAKEUP_REASON_RTC, s->pm1_en & PM1_RTC);
    machine_set_wakeup_enabled(s->m, WAKEUP_REASON_PMTIMER, s->pm1_en & PM1_TMR);
}

static void pm_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    AcpiPmState *s = opaque;
    uint16_t val, mask;

    if (pm_write_part(offset, size, value, REG_PM1_STS, &val, &mask)) {
        tmr_account(s); /* a carry that already happened is cleared too */
        s->pm1_sts &= ~(val & mask & PM1_STS_MASK);
    }
    if (pm_write_part(offset, size, value, REG_PM1_EN, &val, &mask)) {
        pm_set_en(s, (s->pm1_en & ~mask) | (val & mask));
    }
    if (pm_write_part(offset, size, value, REG_PM1_CNT, &val, &mask)) {
        uint16_t cnt = (s->pm1_cnt & ~mask) | (val & mask);
        s->pm1_cnt = cnt & PM1_CNT_MASK;
        if (cnt & PM1_CNT_SLP_EN) {
            pm_sleep(s, (cnt & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT);
        }
    }
    update_sci(s);
}

static const IoOps pm_ops = { .read = pm_read, .write = pm_write };

/* ---- GPE0 ---- */

static uint64_t gpe_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPmState *s = opaque;
    uint64_t regs = s->gpe_sts | (uint32_t)s->gpe_en << 16;
    uint64_t v = offset < ACPI_GPE0_LEN ? regs >> (8 * offset) : 0;
    return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

static void gpe_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    AcpiPmState *s = opaque;
    uint16_t val, mask;

    if (pm_write_part(offset, size, value, 0, &val, &mask)) {
        s->gpe_sts &= ~(val & mask);
    }
    if (pm_write_part(offset, size, value, 2, &val, &mask)) {
        s->gpe_en = (s->gpe_en & ~mask) | (val & mask);
    }
    update_sci(s);
}

static const IoOps gpe_ops = { .read = gpe_read, .write = gpe_write };

/* ---- APM control / status (0xb2, 0xb3) ---- */

static uint64_t apm_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPmState *s = opaque;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        uint64_t at = offset + i;
        uint8_t b = at == 0 ? s->apm_cnt : at == 1 ? s->apm_sts : 0;
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static void apm_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    AcpiPmState *s = opaque;
    for (unsigned i = 0; i < size; i++) {
        uint64_t at = offset + i;
        uint8_t b = (uint8_t)(value >> (8 * i));
        if (at == 1) {
            s->apm_sts = b;
        } else if (at == 0) {
            /* On a PIIX4 this write is an SMI; the SMM handler switches ACPI mode. */
            s->apm_cnt = b;
            if (b == ACPI_ENABLE_CMD) {
                s->pm1_cnt |= PM1_CNT_SCI_EN;
            } else if (b == ACPI_DISABLE_CMD) {
                s->pm1_cnt &= ~PM1_CNT_SCI_EN;
            }
        }
    }
    update_sci(s);
}

static const IoOps apm_ops = { .read = apm_read, .write = apm_write };

/* ---- migration ---- */

/* The PM timer counts the virtual clock, which continues from the source's reading; the
 * next carry and the SCI follow from the registers. */
static bool acpi_pm_post_load(void *opaque, int version_id, Error **errp)
{
    AcpiPmState *s = opaque;
    pm_set_en(s, s->pm1_en);
    update_sci(s);
    return true;
}

static const VMStateField acpi_pm_fields[] = {
    VMSTATE_UINT16(pm1_sts, AcpiPmState),
    VMSTATE_UINT16(pm1_en, AcpiPmState),
    VMSTATE_UINT16(pm1_cnt, AcpiPmState),
    VMSTATE_UINT16(gpe_sts, AcpiPmState),
    VMSTATE_UINT16(gpe_en, AcpiPmState),
    VMSTATE_UINT8(apm_cnt, AcpiPmState),
    VMSTATE_UINT8(apm_sts, AcpiPmState),
    VMSTATE_INT64(tmr_next_ns, AcpiPmState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc acpi_pm_vmsd = {
    .name = "acpi-pm",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = acpi_pm_fields,
    .post_load = acpi_pm_post_load,
};

/* ---- board interface ---- */

static void acpi_pm_reset(DeviceState *dev)
{
    AcpiPmState *s = (AcpiPmState *)dev;

    s->pm1_sts = s->pm1_cnt = 0;
    pm_set_en(s, 0);
    s->gpe_sts = s->gpe_en = 0;
    s->apm_cnt = s->apm_sts = 0;
    tmr_compute_next(s, virt_clock_get_ns(s->m->clock));
    update_sci(s);
}

static void acpi_pm_unrealize(DeviceState *dev);

static bool acpi_pm_realize(DeviceState *dev, Machine *m, Error **errp)
{
    AcpiPmState *s = (AcpiPmState *)dev;

    s->m = m;
    s->sci = machine_irq(m, ACPI_SCI_IRQ);
    s->tmr_timer = timer_new(m->clock, tmr_expired, s);
    if (!(s->pm_mapped = io_space_add(m->pio, ACPI_PM_BASE, ACPI_PM_SIZE, &pm_ops, s,
                                      "acpi-pm", errp)) ||
        !(s->gpe_mapped = io_space_add(m->pio, ACPI_GPE0_BASE, ACPI_GPE0_LEN, &gpe_ops, s,
                                       "acpi-pm GPE0", errp)) ||
        !(s->apm_mapped = io_space_add(m->pio, ACPI_SMI_CMD, 2, &apm_ops, s,
                                       "acpi-pm APM control", errp))) {
        acpi_pm_unrealize(dev);
        return false;
    }
    acpi_pm_reset(dev);
    return true;
}

static void acpi_pm_unrealize(DeviceState *dev)
{
    AcpiPmState *s = (AcpiPmState *)dev;

    if (s->apm_mapped) {
        io_space_del(s->m->pio, ACPI_SMI_CMD);
    }
    if (s->gpe_mapped) {
        io_space_del(s->m->pio, ACPI_GPE0_BASE);
    }
    if (s->pm_mapped) {
        io_space_del(s->m->pio, ACPI_PM_BASE);
    }
    s->pm_mapped = s->gpe_mapped = s->apm_mapped = false;
    if (s->tmr_timer) {
        timer_free(s->tmr_timer);
        s->tmr_timer = NULL;
    }
}

static const PropertyDef acpi_pm_props[] = {
    DEFINE_PROP("ich9", PROP_BOOL, AcpiPmState, ich9, NULL,
                "ICH9 flavour (-M q35): SMI_EN reads APMC_EN, i.e. no SMM"),
    { .name = NULL },
};

const DeviceClass acpi_pm_class = {
    .name = "acpi-pm",
    .desc = "PIIX4-compatible ACPI PM block (PM timer, PM1, GPE0, power button, S3, S5)",
    .instance_size = sizeof(AcpiPmState),
    .props = acpi_pm_props,
    .realize = acpi_pm_realize,
    .reset = acpi_pm_reset,
    .unrealize = acpi_pm_unrealize,
    .vmsd = &acpi_pm_vmsd,
};

static AcpiPmState *acpi_pm_find(Machine *m)
{
    return (AcpiPmState *)device_find_class(m, &acpi_pm_class);
}

bool acpi_pm_press_power_button(Machine *m)
{
    AcpiPmState *s = acpi_pm_find(m);
    if (!s) {
        return false;
    }
    if (m->runstate == RUN_STATE_SUSPENDED) {
        /* The power button is a wake source in every sleeping state (ACPI 4.8.3.1);
         * the wake-up sets PWRBTN_STS after the reset. */
        machine_request_wakeup(m, WAKEUP_REASON_OTHER);
        return true;
    }
    s->pm1_sts |= PM1_PWRBTN;
    update_sci(s);
    return true;
}

void acpi_pm_wakeup(Machine *m, WakeupReason reason)
{
    AcpiPmState *s = acpi_pm_find(m);
    if (!s) {
        return;
    }
    /* As QEMU: WAK_STS always, plus the status of the source; a host wake-up (QMP
     * system_wakeup) looks like the power button to the guest. */
    uint16_t sts = PM1_WAK;
    if (reason == WAKEUP_REASON_RTC) {
        sts |= PM1_RTC;
    } else if (reason == WAKEUP_REASON_PMTIMER) {
        sts |= PM1_TMR;
    } else if (reason == WAKEUP_REASON_OTHER) {
        sts |= PM1_PWRBTN;
    }
    s->pm1_sts |= sts;
    update_sci(s);
}
