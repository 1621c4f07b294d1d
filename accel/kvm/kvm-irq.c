/*
 * Interrupt lines into the in-kernel irqchip.  KVM's default routing sends GSIs 0-15 to
 * both the PIC pair and the IOAPIC and 16-23 to the IOAPIC only, which is the PC wiring
 * Sen's board assumes.
 */
#include <errno.h>
#include <sys/ioctl.h>
#include "accel/kvm/kvm-internal.h"

#define KVM_IRQCHIP_GSIS 24

void kvm_set_irq(Machine *m, unsigned gsi, int level)
{
    KvmState *s = kvm_state(m);
    struct kvm_irq_level irq = { .irq = gsi, .level = level ? 1 : 0 };

    if (!s) {
        return;
    }
    if (gsi >= KVM_IRQCHIP_GSIS) {
        /* A board bug, not a guest action: say so once instead of on every edge. */
        if (!s->warned_bad_gsi) {
            s->warned_bad_gsi = true;
            warn_report("interrupt line %u does not exist (GSIs are 0-%u)", gsi,
                        KVM_IRQCHIP_GSIS - 1);
        }
        return;
    }
    if (ioctl(s->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
        warn_report("KVM_IRQ_LINE %u: %s", gsi, g_strerror(errno));
    }
}
