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

    if (!s || s->split_irqchip) {
        return; /* split: the board's IOAPIC takes the lines (irq_set_level) */
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

/* ---- MSI routes, irqfd, ioeventfd ---- */

/* GSIs from KVM_IRQCHIP_GSIS up carry MSI routes; KVM's default table stops at 1024. */
#define KVM_MSI_GSI_MAX 1024

typedef struct KvmIrqRoutes {
    /* In use and, when used, the message; index = GSI - KVM_IRQCHIP_GSIS. */
    bool used[KVM_MSI_GSI_MAX - KVM_IRQCHIP_GSIS];
    uint64_t addr[KVM_MSI_GSI_MAX - KVM_IRQCHIP_GSIS];
    uint32_t data[KVM_MSI_GSI_MAX - KVM_IRQCHIP_GSIS];
    /* kernel-irqchip=split: the userspace IOAPIC's pins as MSI routes, GSI = pin. */
    bool pin_valid[KVM_IRQCHIP_GSIS];
    uint64_t pin_addr[KVM_IRQCHIP_GSIS];
    uint32_t pin_data[KVM_IRQCHIP_GSIS];
    RateLimit rl;
} KvmIrqRoutes;

void kvm_irq_routes_free(KvmState *s)
{
    g_clear_pointer(&s->irq_routes, g_free);
}

void kvm_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    KvmState *s = kvm_state(m);
    struct kvm_msi msi = {
        .address_lo = (uint32_t)addr,
        .address_hi = (uint32_t)(addr >> 32),
        .data = data,
    };

    if (!s) {
        return;
    }
    /* EINVAL: KVM refused the message; EPERM (KVM's -1): no APIC matches its
     * destination; 0: blocked by the guest's own state.  All are the guest's business. */
    if (ioctl(s->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 && errno != EINVAL && errno != EPERM) {
        if (!s->irq_routes) {
            s->irq_routes = g_new0(KvmIrqRoutes, 1);
        }
        log_guest_error(&s->irq_routes->rl, "KVM_SIGNAL_MSI %#" G_GINT64_MODIFIER "x: %s",
                        addr, g_strerror(errno));
    }
}

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so every change re-sends it: the PC
 * wiring KVM installs by default (GSIs 0-15 to the PIC pair and the IOAPIC, 16-23 to the
 * IOAPIC) followed by every MSI route in use.
 */
static bool commit_routes(KvmState *s, Error **errp)
{
    KvmIrqRoutes *r = s->irq_routes;
    unsigned max = 16 * 2 + KVM_IRQCHIP_GSIS + G_N_ELEMENTS(r->used);
    g_autofree struct kvm_irq_routing *tbl =
        g_malloc0(sizeof(*tbl) + max * sizeof(struct kvm_irq_routing_entry));
    unsigned n = 0;

    for (unsigned gsi = 0; s->split_irqchip && gsi < KVM_IRQCHIP_GSIS; gsi++) {
        if (r->pin_valid[gsi]) {
            tbl->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
                .u.msi = { .address_lo = (uint32_t)r->pin_addr[gsi],
                           .address_hi = (uint32_t)(r->pin_addr[gsi] >> 32),
                           .data = r->pin_data[gsi] },
            };
        }
    }
    for (unsigned gsi = 0; !s->split_irqchip && gsi < KVM_IRQCHIP_GSIS; gsi++) {
        if (gsi < 16) {
            tbl->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
                                                   : KVM_IRQCHIP_PIC_SLAVE,
                               .pin = gsi % 8 },
            };
        }
        tbl->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi },
        };
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(r->used); i++) {
        if (r->used[i]) {
            tbl->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = KVM_IRQCHIP_GSIS + i, .type = KVM_IRQ_ROUTING_MSI,
                .u.msi = { .address_lo = (uint32_t)r->addr[i],
                           .address_hi = (uint32_t)(r->addr[i] >> 32),
                           .data = r->data[i] },
            };
        }
    }
    tbl->nr = n;
    if (ioctl(s->vm_fd, KVM_SET_GSI_ROUTING, tbl) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_GSI_ROUTING (%u entries)", n);
        return false;
    }
    return true;
}

int kvm_add_msi_route(Machine *m, uint64_t addr, uint32_t data, Error **errp)
{
    KvmState *s = kvm_state(m);
    if (!s->irq_routes) {
        s->irq_routes = g_new0(KvmIrqRoutes, 1);
    }
    KvmIrqRoutes *r = s->irq_routes;
    for (unsigned i = 0; i < G_N_ELEMENTS(r->used); i++) {
        if (!r->used[i]) {
            r->used[i] = true;
            r->addr[i] = addr;
            r->data[i] = data;
            if (!commit_routes(s, errp)) {
                r->used[i] = false;
                return -1;
            }
            return (int)(KVM_IRQCHIP_GSIS + i);
        }
    }
    error_setg(errp, "all %u MSI routes are in use", (unsigned)G_N_ELEMENTS(r->used));
    return -1;
}

static KvmIrqRoutes *route_check(KvmState *s, int gsi)
{
    KvmIrqRoutes *r = s->irq_routes;
    if (!r || gsi < KVM_IRQCHIP_GSIS || gsi >= KVM_MSI_GSI_MAX ||
        !r->used[gsi - KVM_IRQCHIP_GSIS]) {
        return NULL;
    }
    return r;
}

bool kvm_update_msi_route(Machine *m, int gsi, uint64_t addr, uint32_t data, Error **errp)
{
    KvmState *s = kvm_state(m);
    KvmIrqRoutes *r = route_check(s, gsi);
    if (!r) {
        error_setg(errp, "GSI %d is not an MSI route", gsi);
        return false;
    }
    unsigned i = (unsigned)gsi - KVM_IRQCHIP_GSIS;
    if (r->addr[i] == addr && r->data[i] == data) {
        return true;
    }
    r->addr[i] = addr;
    r->data[i] = data;
    return commit_routes(s, errp);
}

void kvm_set_ioapic_route(Machine *m, unsigned pin, bool valid, uint64_t addr, uint32_t data)
{
    KvmState *s = kvm_state(m);
    if (!s || !s->split_irqchip || pin >= KVM_IRQCHIP_GSIS) {
        return;
    }
    if (!s->irq_routes) {
        s->irq_routes = g_new0(KvmIrqRoutes, 1);
    }
    KvmIrqRoutes *r = s->irq_routes;
    if (r->pin_valid[pin] == valid && (!valid || (r->pin_addr[pin] == addr &&
                                                  r->pin_data[pin] == data))) {
        return;
    }
    r->pin_valid[pin] = valid;
    r->pin_addr[pin] = addr;
    r->pin_data[pin] = data;
    Error *err = NULL;
    if (!commit_routes(s, &err)) {
        log_guest_error(&r->rl, "IOAPIC pin %u: %s", pin, error_get_pretty(err));
        error_free(err);
    }
}

void kvm_release_msi_route(Machine *m, int gsi)
{
    KvmState *s = kvm_state(m);
    KvmIrqRoutes *r = route_check(s, gsi);
    if (r) {
        Error *err = NULL;
        r->used[gsi - KVM_IRQCHIP_GSIS] = false;
        if (!commit_routes(s, &err)) {
            warn_report("%s", error_get_pretty(err));
            error_free(err);
        }
    }
}

bool kvm_irqfd_assign(Machine *m, int fd, int gsi, bool assign, Error **errp)
{
    KvmState *s = kvm_state(m);
    struct kvm_irqfd irqfd = {
        .fd = (uint32_t)fd,
        .gsi = (uint32_t)gsi,
        .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
    };
    if (ioctl(s->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        error_setg_errno(errp, errno, "KVM_IRQFD %s fd %d GSI %d",
                         assign ? "assign" : "deassign", fd, gsi);
        return false;
    }
    return true;
}

bool kvm_ioeventfd_assign(Machine *m, bool mmio, uint64_t addr, unsigned len, bool match,
                          uint64_t datamatch, int fd, bool assign, Error **errp)
{
    KvmState *s = kvm_state(m);
    struct kvm_ioeventfd io = {
        .datamatch = datamatch,
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = (mmio ? 0 : KVM_IOEVENTFD_FLAG_PIO) |
                 (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
                 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    if (ioctl(s->vm_fd, KVM_IOEVENTFD, &io) < 0) {
        error_setg_errno(errp, errno, "KVM_IOEVENTFD %s %s %#" G_GINT64_MODIFIER "x+%u",
                         assign ? "assign" : "deassign", mmio ? "mmio" : "pio", addr, len);
        return false;
    }
    return true;
}
