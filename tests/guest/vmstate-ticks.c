/*
 * A guest that is migrated while it runs (tests/unit/test-vmstate-guest.c stops it half
 * way, moves its RAM and device state into a fresh Sen, and lets it finish there).  It
 * counts LAPIC timer ticks on every CPU (each LAPIC's own state; the APs sit in hlt
 * between ticks) and RTC periodic interrupts (the RTC and the IOAPIC's redirection),
 * requires each CPU's TSC to move forward at every tick, and keeps re-checking a memory
 * pattern it wrote; with a virtio-rng-pci it also reads entropy at every report, which
 * needs the queue (ioeventfd kick, used ring) and its MSI-X interrupt (irqfd route) to
 * work on both sides.  It passes after TICKS_TOTAL ticks of the BSP when every AP kept
 * ticking too.  A
 * state lost on the way shows as a hang (no more interrupts), an exception, a restart
 * (the banner again) or a failed check.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define TIMER_VECTOR 0x40
#define RTC_VECTOR 0x41
#define RNG_VECTOR 0x42
#define RNG_BYTES 32
#define LVT_PERIODIC (1u << 17)
#define DIV_16 0x3
#define TIMER_COUNT 250000   /* x16 bus cycles: 4 ms with KVM's 1 GHz APIC bus */
#define TICKS_TOTAL 400
#define REPORT_EVERY 20
#define PATTERN_WORDS 8192

static volatile uint32_t ticks, rtc_ticks;          /* the BSP's ticks */
static volatile uint32_t cpu_ticks[GUEST_MAX_CPUS];  /* by APIC id */
static volatile uint64_t last_tsc[GUEST_MAX_CPUS];
static volatile bool tsc_backwards;
static volatile uint32_t cpus_up = 1;
static uint32_t bsp_id;
static VirtioDev rng;
static bool have_rng;
static uint8_t *rng_buf;
static volatile uint32_t rng_irqs;
static uint32_t rng_irqs_seen, rng_fills;
static unsigned rng_failures;
static uint32_t ap_seen[GUEST_MAX_CPUS];
static uint8_t ap_quiet[GUEST_MAX_CPUS];
static unsigned ap_stalls;

/* An AP whose timer (or whole state) got lost stops ticking while the BSP goes on.  One
 * quiet report interval is forgiven (a host too busy to run that vCPU thread). */
static void check_aps(void)
{
    for (unsigned id = 0; id < GUEST_MAX_CPUS; id++) {
        uint32_t now = cpu_ticks[id];
        if (id == bsp_id || (!now && !ap_seen[id])) {
            continue;
        }
        ap_quiet[id] = now == ap_seen[id] ? ap_quiet[id] + 1 : 0;
        if (ap_quiet[id] >= 2) {
            guest_printf("cpu with apic id %u did not tick for two reports (%u)\n", id, now);
            ap_stalls++;
        }
        ap_seen[id] = now;
    }
}
static uint64_t pattern[PATTERN_WORDS];

static inline uint64_t read_tsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static void timer_irq(IntrFrame *f)
{
    (void)f;
    uint32_t id = lapic_id() % GUEST_MAX_CPUS;
    uint64_t t = read_tsc();
    if (t <= last_tsc[id]) {
        tsc_backwards = true;
    }
    last_tsc[id] = t;
    cpu_ticks[id]++;
    if (id == bsp_id) {
        ticks++;
    }
    lapic_eoi();
}

static void rtc_irq(IntrFrame *f)
{
    (void)f;
    (void)cmos_read(0x0c); /* acknowledges: the RTC lowers its line */
    rtc_ticks++;
    lapic_eoi();
}

static void rng_irq(IntrFrame *f)
{
    (void)f;
    rng_irqs++;
    lapic_eoi();
}

static void rng_setup(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    if (!virtio_pci_find(devs, n, VIRTIO_ID_RNG, 0, &rng)) {
        return; /* run without one */
    }
    GUEST_CHECK(virtio_init(&rng, 0), "virtio-rng features negotiated");
    idt_set_handler(RNG_VECTOR, rng_irq);
    GUEST_CHECK(virtio_setup_queue(&rng, 0, 16, RNG_VECTOR), "virtio-rng queue set up");
    virtio_driver_ok(&rng);
    rng_buf = guest_alloc(RNG_BYTES, 64, true);
    have_rng = true;
}

/* The interrupt of the previous fill must have come in the meantime; then fill again. */
static void rng_check(void)
{
    if (!have_rng) {
        return;
    }
    if (rng_fills && rng_irqs == rng_irqs_seen) {
        guest_printf("no virtio-rng interrupt since the last report\n");
        rng_failures++;
    }
    rng_irqs_seen = rng_irqs;
    VirtioBuf b = { rng_buf, RNG_BYTES, true };
    int head = virtq_add(&rng.vq[0], &b, 1);
    uint32_t id, len;
    if (head < 0) {
        guest_printf("virtio-rng queue full\n");
        rng_failures++;
        return;
    }
    virtq_kick(&rng.vq[0]);
    if (!virtq_wait(&rng.vq[0], &id, &len, 200000) || id != (uint32_t)head || !len) {
        guest_printf("virtio-rng request %d did not complete\n", head);
        rng_failures++;
        return;
    }
    rng_fills++;
}

static uint64_t pattern_word(unsigned i)
{
    return 0x9e3779b97f4a7c15ull * (i + 1) ^ 0x5e4;
}

static void check_pattern(void)
{
    for (unsigned i = 0; i < PATTERN_WORDS; i++) {
        if (pattern[i] != pattern_word(i)) {
            guest_fail("pattern word %u is 0x%llx", i, (unsigned long long)pattern[i]);
        }
    }
}

static void start_timer(void)
{
    last_tsc[lapic_id() % GUEST_MAX_CPUS] = read_tsc();
    lapic_write(LAPIC_TIMER_DIV, DIV_16);
    lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR | LVT_PERIODIC);
    lapic_write(LAPIC_TIMER_INIT, TIMER_COUNT);
}

static void ap_main(unsigned index)
{
    (void)index;
    start_timer();
    __asm__ volatile("lock incl %0" : "+m"(cpus_up)::"memory");
    for (;;) {
        sti_hlt();
    }
}

void guest_main(void)
{
    guest_printf("vmstate-ticks: start\n");
    for (unsigned i = 0; i < PATTERN_WORDS; i++) {
        pattern[i] = pattern_word(i);
    }
    pic_disable();
    lapic_enable();
    bsp_id = lapic_id() % GUEST_MAX_CPUS;
    rng_setup();
    idt_set_handler(TIMER_VECTOR, timer_irq);
    idt_set_handler(RTC_VECTOR, rtc_irq);
    const char *source;
    unsigned cpus = firmware_count_cpus(&source);
    GUEST_CHECK(cpus >= 1 && cpus <= GUEST_MAX_CPUS, "%u cpus (%s)", cpus, source);
    if (cpus > 1) {
        smp_start_aps(ap_main);
        for (unsigned i = 0; i < 400000 && cpus_up < cpus; i++) {
            guest_io_delay();
        }
        GUEST_CHECK(cpus_up == cpus, "%u of %u cpus ticking", cpus_up, cpus);
    }

    cmos_write(0x0a, 0x2a);                          /* 64 Hz periodic */
    cmos_write(0x0b, (uint8_t)(cmos_read(0x0b) | 0x40)); /* PIE */
    (void)cmos_read(0x0c);
    ioapic_route(8, RTC_VECTOR, lapic_id());

    start_timer();

    uint32_t reported = 0;
    while (ticks < TICKS_TOTAL) {
        sti_hlt();
        cli();
        if (ticks / REPORT_EVERY != reported) {
            reported = ticks / REPORT_EVERY;
            check_pattern();
            check_aps();
            rng_check();
            guest_printf("tick %u rtc %u\n", reported * REPORT_EVERY, rtc_ticks);
        }
    }
    lapic_write(LAPIC_TIMER_INIT, 0);
    GUEST_CHECK(!tsc_backwards, "the TSC only moved forward on every cpu");
    GUEST_CHECK(ap_stalls == 0, "every AP kept ticking");
    if (have_rng) {
        GUEST_CHECK(rng_failures == 0, "%u virtio-rng reads, each completed with an "
                    "interrupt", rng_fills);
    }
    GUEST_CHECK(rtc_ticks > 10, "RTC periodic interrupts kept coming (%u)", rtc_ticks);
    check_pattern();
    guest_pass();
}
