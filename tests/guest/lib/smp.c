/* Application-processor start-up: INIT-SIPI-SIPI to all other CPUs. */
#include "guest.h"

extern char ap_trampoline_start[], ap_trampoline_end[];
void ap_start(unsigned index);

static volatile ApEntry ap_entry_fn;

void ap_start(unsigned index)
{
    idt_load();
    lapic_enable();
    ap_entry_fn(index);
    smp_park();
}

void smp_park(void)
{
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

void smp_start_aps(ApEntry fn)
{
    ap_entry_fn = fn;
    memcpy(phys_ptr(AP_TRAMPOLINE_ADDR), ap_trampoline_start,
           (size_t)(ap_trampoline_end - ap_trampoline_start));
    barrier();
    /* The MP spec's sequence: INIT, 10 ms, SIPI, 200 µs, SIPI.  The waits are port reads
     * (≥ 1 µs each), generous on real hardware and harmless under emulation. */
    if (!lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_INIT | ICR_ASSERT | ICR_LEVEL)) {
        guest_fail("INIT IPI stayed pending in the ICR");
    }
    guest_delay(2000);
    for (int i = 0; i < 2; i++) {
        if (!lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_STARTUP | (AP_TRAMPOLINE_ADDR >> 12))) {
            guest_fail("STARTUP IPI stayed pending in the ICR");
        }
        guest_delay(200);
    }
}
