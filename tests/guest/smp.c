/*
 * Brings up every AP with INIT-SIPI-SIPI; each prints a line and checks in.  The expected
 * CPU count comes from the firmware tables (MP table, else ACPI MADT); when the command
 * line also says cpus=N, both must agree, so a VMM that creates too few vCPUs and
 * describes only those still fails.
 */
#include "lib/guest.h"

static volatile uint32_t cpus_up = 1;
static volatile uint32_t apic_ids[GUEST_MAX_CPUS];

static void ap_main(unsigned index)
{
    uint32_t id = lapic_id();
    guest_printf("cpu %u (apic id %u) up\n", index, id);
    apic_ids[index] = id;
    __asm__ volatile("lock incl %0" : "+m"(cpus_up)::"memory");
}

void guest_main(void)
{
    const char *source;
    unsigned expected = firmware_count_cpus(&source);
    uint64_t cmdline_cpus;
    bool have_cmdline = cmdline_get_uint("cpus", &cmdline_cpus);
    guest_printf("firmware tables (%s) describe %u cpus\n", source, expected);
    if (have_cmdline) {
        guest_printf("command line says cpus=%lu\n", cmdline_cpus);
        if (expected) {
            GUEST_CHECK(expected == cmdline_cpus, "%s agrees with cpus=%lu", source,
                        cmdline_cpus);
        }
        expected = (unsigned)cmdline_cpus;
    }
    if (!expected) {
        guest_fail("no MP table, no MADT and no cpus= on the command line: "
                   "cannot tell how many CPUs to expect");
    }
    if (expected > GUEST_MAX_CPUS) {
        guest_fail("%u cpus expected, the kit supports %u", expected, GUEST_MAX_CPUS);
    }

    pic_disable();
    lapic_enable();
    apic_ids[0] = lapic_id();
    guest_printf("cpu 0 (apic id %u) up (BSP)\n", apic_ids[0]);
    smp_start_aps(ap_main);

    /* Bounded wait: ~8 µs per iteration under emulation, >= 1 µs on hardware. */
    for (unsigned i = 0; i < 400000 && cpus_up < expected; i++) {
        guest_io_delay();
    }
    guest_delay(2000); /* let a surplus CPU show up too */
    uint32_t n = cpus_up;
    GUEST_CHECK(n == expected, "%u of %u cpus checked in", n, expected);
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < i; j++) {
            if (apic_ids[i] == apic_ids[j]) {
                guest_fail("cpus %u and %u share apic id %u", j, i, apic_ids[i]);
            }
        }
    }
    guest_printf("ok: apic ids are distinct\n");
    guest_printf("smp ok: %u cpus\n", n);
    guest_pass();
}
