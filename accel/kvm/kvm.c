/*
 * The KVM accelerator: the VM, its capabilities, memory slots, the in-kernel irqchip and
 * PIT, and the AccelOps table.  vCPUs live in kvm-vcpu.c, CPUID/MSRs in kvm-cpuid.c.
 *
 * Teardown (destroy) is the reverse of init and copes with an init that stopped half-way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* accel.h uses FILE */
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "accel/accel.h"
#include "accel/kvm/kvm-internal.h"
#include "sen/hw/cpu-models.h"

#define KVM_API_VERSION_EXPECTED 12

typedef struct KvmCap {
    int cap;
    const char *name;
} KvmCap;

#define CAP(x) { KVM_CAP_##x, "KVM_CAP_" #x }
static const KvmCap kvm_required_caps[] = {
    CAP(IRQCHIP), CAP(USER_MEMORY), CAP(IRQ_ROUTING), CAP(IRQFD), CAP(IOEVENTFD),
    CAP(SET_TSS_ADDR), CAP(SET_IDENTITY_MAP_ADDR), CAP(PIT2), CAP(PIT_STATE2),
    CAP(EXT_CPUID), CAP(MP_STATE), CAP(IMMEDIATE_EXIT), CAP(NR_MEMSLOTS),
};
#undef CAP

static int kvm_open(Error **errp)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        return fd;
    }
    switch (errno) {
    case ENOENT:
        error_setg(errp, "/dev/kvm: No such file or directory — is the kvm module loaded?");
        break;
    case EACCES:
        error_setg(errp, "/dev/kvm: Permission denied — add the user to the 'kvm' group");
        break;
    default:
        error_setg_errno(errp, errno, "/dev/kvm");
        break;
    }
    return -1;
}

static int kvm_check_cap(KvmState *s, int cap)
{
    int r = ioctl(s->kvm_fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

static bool kvm_check_host(KvmState *s, Error **errp)
{
    int version = ioctl(s->kvm_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION_EXPECTED) {
        error_setg(errp, "/dev/kvm: KVM API version %d, Sen needs %d", version,
                   KVM_API_VERSION_EXPECTED);
        return false;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(kvm_required_caps); i++) {
        if (!kvm_check_cap(s, kvm_required_caps[i].cap)) {
            error_setg(errp, "/dev/kvm: this kernel lacks %s, which Sen needs",
                       kvm_required_caps[i].name);
            return false;
        }
    }
    s->have_xcrs = kvm_check_cap(s, KVM_CAP_XCRS);
    s->have_debugregs = kvm_check_cap(s, KVM_CAP_DEBUGREGS);
    s->have_vcpu_events = kvm_check_cap(s, KVM_CAP_VCPU_EVENTS);
    s->have_readonly_mem = kvm_check_cap(s, KVM_CAP_READONLY_MEM);
    s->have_xsave = kvm_check_cap(s, KVM_CAP_XSAVE);
    s->xsave_size = MAX((size_t)kvm_check_cap(s, KVM_CAP_XSAVE2), sizeof(struct kvm_xsave));

    int mmap_size = ioctl(s->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < (int)sizeof(struct kvm_run)) {
        error_setg(errp, "/dev/kvm: bad vCPU mmap size %d", mmap_size);
        return false;
    }
    s->run_size = mmap_size;
    return true;
}

static bool kvm_check_smp(KvmState *s, const MachineConfig *cfg, Error **errp)
{
    unsigned cpus = MAX(cfg->smp_cpus, 1);
    unsigned maxcpus = MAX(cfg->smp_maxcpus, cpus);
    int max = kvm_check_cap(s, KVM_CAP_MAX_VCPUS);
    if (max <= 0) {
        max = kvm_check_cap(s, KVM_CAP_NR_VCPUS);
    }
    if (max <= 0) {
        max = 4; /* what the KVM API documents when neither capability exists */
    }
    if (maxcpus > (unsigned)max) {
        error_setg(errp, "-smp %u: KVM supports at most %d vCPUs", maxcpus, max);
        return false;
    }
    int max_id = kvm_check_cap(s, KVM_CAP_MAX_VCPU_ID);
    if (max_id > 0 && maxcpus > (unsigned)max_id) {
        error_setg(errp, "-smp %u: KVM supports APIC ids below %d only", maxcpus, max_id);
        return false;
    }
    kvm_topo_from_config(&s->topo, cfg);
    s->nr_vcpus = cpus;
    return true;
}

static bool kvm_get_supported_cpuid(KvmState *s, Error **errp)
{
    for (unsigned nent = 64; nent <= 4096; nent *= 2) {
        g_autofree struct kvm_cpuid2 *c =
            g_malloc0(sizeof(*c) + nent * sizeof(struct kvm_cpuid_entry2));
        c->nent = nent;
        if (ioctl(s->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            /* KVM emulates the TSC-deadline timer without listing it in the table. */
            static const char *const tsc_deadline[] = { "tsc-deadline", NULL };
            const MachineConfig *cfg = s->m->cfg;
            s->supported_cpuid = g_new(struct kvm_cpuid_entry2, c->nent);
            memcpy(s->supported_cpuid, c->entries, c->nent * sizeof(c->entries[0]));
            s->nr_supported_cpuid = cpu_model_apply(
                s->supported_cpuid, c->nent, cfg->cpu_model ? cfg->cpu_model : "host",
                cfg->cpu_features,
                kvm_check_cap(s, KVM_CAP_TSC_DEADLINE_TIMER) > 0 ? tsc_deadline : NULL);
            return true;
        }
        if (errno != E2BIG) {
            break;
        }
    }
    error_setg_errno(errp, errno, "/dev/kvm: KVM_GET_SUPPORTED_CPUID failed");
    return false;
}

static bool kvm_create_vm(KvmState *s, Error **errp)
{
    do {
        s->vm_fd = ioctl(s->kvm_fd, KVM_CREATE_VM, 0);
    } while (s->vm_fd < 0 && errno == EINTR);
    if (s->vm_fd < 0) {
        error_setg_errno(errp, errno, "/dev/kvm: cannot create a VM (KVM_CREATE_VM)");
        return false;
    }
    /* Intel needs three pages for real-mode emulation and an identity page table; put
     * them just below the BIOS, where a PC has no RAM. */
    uint64_t identity = KVM_IDENTITY_MAP_ADDR;
    if (ioctl(s->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0 ||
        ioctl(s->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot place the TSS and identity map pages");
        return false;
    }
    return true;
}

/*
 * Created after the initial memory slots: once an irqchip exists, every memslot change
 * waits for a grace period of the VM's SRCU readers (measured here: 5-10 ms per slot
 * instead of 0.1 ms), which would be paid at every start-up for nothing.
 */
static bool kvm_create_irqchip(KvmState *s, Error **errp)
{
    if (s->m->cfg->irqchip_split) {
        /* LAPICs in KVM; GSIs 0-23 are left to the userspace IOAPIC's MSI routes.  No
         * PIC, and KVM refuses its PIT without one: the board adds a userspace i8254
         * (hw/timer/i8254.c; docs/machines.md). */
        struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
        if (ioctl(s->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
            error_setg_errno(errp, errno, "KVM: kernel-irqchip=split: KVM_CAP_SPLIT_IRQCHIP");
            return false;
        }
        s->split_irqchip = true;
        return true;
    }
    if (ioctl(s->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot create the in-kernel irqchip");
        return false;
    }
    if (s->m->cfg->no_pit) {
        return true; /* -machine pit=off */
    }
    /* The dummy speaker gives port 0x61 (PIT channel 2 gate and output) in the kernel:
     * guests calibrate the TSC against it. */
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (ioctl(s->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot create the in-kernel PIT");
        return false;
    }
    s->has_pit = true;
    /* lost_tick_policy=discard: ticks the guest missed are dropped, not re-injected. */
    struct kvm_reinject_control rc = { .pit_reinject = s->m->cfg->pit_discard ? 0 : 1 };
    if (ioctl(s->vm_fd, KVM_REINJECT_CONTROL, &rc) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot set the PIT lost-tick policy");
        return false;
    }
    return true;
}

static bool kvm_add_slots(KvmState *s, GuestMemory *gm, Error **errp)
{
    unsigned n = gm ? guest_mem_region_count(gm) : 0;
    unsigned max = kvm_check_cap(s, KVM_CAP_NR_MEMSLOTS);
    long page = sysconf(_SC_PAGESIZE);

    if (n > max) {
        error_setg(errp, "guest RAM has %u regions, KVM allows %u memory slots", n, max);
        return false;
    }
    s->slots = g_new0(KvmSlot, MAX(n, 1));
    for (unsigned i = 0; i < n; i++) {
        const RamRegion *r = guest_mem_region(gm, i);
        KvmSlot *slot = &s->slots[i];
        if ((r->gpa | r->size | (uintptr_t)r->hva) & (page - 1)) {
            error_setg(errp, "RAM region at 0x%" G_GINT64_MODIFIER "x (size 0x%"
                       G_GINT64_MODIFIER "x) is not page-aligned", (guint64)r->gpa,
                       (guint64)r->size);
            return false;
        }
        /* ROM: guest writes exit as MMIO and are dropped there (handle_mmio).  Without
         * read-only slots the guest could write its firmware copy, as on a board whose
         * shadow RAM is left writable; nothing outside the ROM is at stake. */
        uint32_t flags = r->readonly && s->have_readonly_mem ? KVM_MEM_READONLY : 0;
        *slot = (KvmSlot){ .slot = i, .flags = flags, .gpa = r->gpa, .size = r->size,
                           .hva = r->hva };
        struct kvm_userspace_memory_region mr = {
            .slot = slot->slot, .flags = slot->flags, .guest_phys_addr = slot->gpa,
            .memory_size = slot->size, .userspace_addr = (uintptr_t)slot->hva,
        };
        if (ioctl(s->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
            error_setg_errno(errp, errno, "KVM: cannot map RAM at 0x%" G_GINT64_MODIFIER
                             "x (size 0x%" G_GINT64_MODIFIER "x)", (guint64)r->gpa,
                             (guint64)r->size);
            return false;
        }
        s->nr_slots++;
    }
    return true;
}

/* The irqchip and PIT as KVM created them: their power-on state for every reset. */
static bool kvm_capture_irqchip(KvmState *s, Error **errp)
{
    if (s->split_irqchip) {
        return true; /* nothing in the kernel but the LAPICs, reset with the vCPUs */
    }
    s->reset_pic[0].chip_id = KVM_IRQCHIP_PIC_MASTER;
    s->reset_pic[1].chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s->reset_ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    if (ioctl(s->vm_fd, KVM_GET_IRQCHIP, &s->reset_pic[0]) < 0 ||
        ioctl(s->vm_fd, KVM_GET_IRQCHIP, &s->reset_pic[1]) < 0 ||
        ioctl(s->vm_fd, KVM_GET_IRQCHIP, &s->reset_ioapic) < 0 ||
        (s->has_pit && ioctl(s->vm_fd, KVM_GET_PIT2, &s->reset_pit) < 0)) {
        error_setg_errno(errp, errno, "KVM: cannot read the irqchip/PIT state");
        return false;
    }
    return true;
}

static bool kvm_reset_irqchip(KvmState *s, Error **errp)
{
    if (s->split_irqchip) {
        return true;
    }
    struct kvm_irqchip chips[3] = { s->reset_pic[0], s->reset_pic[1], s->reset_ioapic };
    struct kvm_pit_state2 pit = s->reset_pit;
    for (unsigned i = 0; i < G_N_ELEMENTS(chips); i++) {
        if (ioctl(s->vm_fd, KVM_SET_IRQCHIP, &chips[i]) < 0) {
            error_setg_errno(errp, errno, "KVM: cannot reset irqchip %u", chips[i].chip_id);
            return false;
        }
    }
    if (s->has_pit && ioctl(s->vm_fd, KVM_SET_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot reset the PIT");
        return false;
    }
    return true;
}

static void kvm_destroy(Machine *m)
{
    KvmState *s = kvm_state(m);
    if (!s) {
        return;
    }
    kvm_set_throttle(m, 0);
    if (s->vcpus) {
        kvm_vcpus_quit(s);
        for (unsigned i = 0; i < s->nr_vcpus; i++) {
            kvm_vcpu_destroy(&s->vcpus[i]);
        }
    }
    if (s->vm_fd >= 0) {
        close(s->vm_fd);
    }
    if (s->kvm_fd >= 0) {
        close(s->kvm_fd);
    }
    g_free(s->vcpus);
    if (s->slots) {
        kvm_dirty_ring_free(s);
    }
    g_free(s->slots);
    g_free(s->msrs);
    g_free(s->feature_msrs);
    g_free(s->supported_cpuid);
    kvm_irq_routes_free(s);
    g_mutex_clear(&s->ctl_lock);
    g_mutex_clear(&s->dirty_lock);
    g_cond_clear(&s->ctl_cond);
    g_free(s);
    m->accel_state = NULL;
}

static bool kvm_init(Machine *m, Error **errp)
{
    KvmState *s = g_new0(KvmState, 1);
    s->m = m;
    s->vm_fd = -1;
    g_mutex_init(&s->ctl_lock);
    g_mutex_init(&s->dirty_lock);
    g_cond_init(&s->ctl_cond);
    m->accel_state = s;

    s->kvm_fd = kvm_open(errp);
    if (s->kvm_fd < 0 || !kvm_check_host(s, errp) || !kvm_check_smp(s, m->cfg, errp) ||
        !kvm_get_supported_cpuid(s, errp) || !kvm_read_feature_msrs(s, errp) ||
        !kvm_create_vm(s, errp) || !kvm_add_slots(s, m->mem, errp) ||
        !kvm_dirty_ring_enable(s, errp) || !kvm_create_irqchip(s, errp) || !kvm_capture_irqchip(s, errp)) {
        goto fail;
    }
    s->vcpus = g_new0(KvmVcpu, s->nr_vcpus);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        s->vcpus[i].fd = -1;
    }
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (!kvm_vcpu_create(s, i, errp)) {
            goto fail;
        }
    }
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (!kvm_vcpu_start_thread(&s->vcpus[i], errp)) {
            goto fail;
        }
    }
    return true;

fail:
    kvm_destroy(m);
    return false;
}

static bool kvm_reset_cpus(Machine *m, const CpuBootState *bsp, Error **errp)
{
    KvmState *s = kvm_state(m);

    g_mutex_lock(&s->ctl_lock);
    bool running = s->running;
    g_mutex_unlock(&s->ctl_lock);
    if (running) {
        error_setg(errp, "KVM: vCPUs must be paused for a reset");
        return false;
    }
    if (!kvm_reset_irqchip(s, errp)) {
        return false;
    }
    /* Back to back so that the TSC writes (0 on every vCPU) land within KVM's
     * synchronization window. */
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (!kvm_vcpu_reset(&s->vcpus[i], i == 0 ? bsp : NULL, errp)) {
            return false;
        }
    }
    kvm_vcpus_clear_stopped(s);
    return true;
}

static void kvm_resume(Machine *m)
{
    kvm_vcpus_resume(kvm_state(m));
}

static void kvm_pause(Machine *m)
{
    if (kvm_state(m)) {
        kvm_vcpus_pause(kvm_state(m));
    }
}

const AccelOps kvm_accel_ops = {
    .name = "kvm",
    .manual_clock = false,
    .init = kvm_init,
    .reset_cpus = kvm_reset_cpus,
    .resume = kvm_resume,
    .pause = kvm_pause,
    .set_irq = kvm_set_irq,
    .dump_state = kvm_dump_state,
    .destroy = kvm_destroy,
    .signal_msi = kvm_signal_msi,
    .add_msi_route = kvm_add_msi_route,
    .update_msi_route = kvm_update_msi_route,
    .release_msi_route = kvm_release_msi_route,
    .set_ioapic_route = kvm_set_ioapic_route,
    .irqfd_assign = kvm_irqfd_assign,
    .ioeventfd_assign = kvm_ioeventfd_assign,
    .state_save = kvm_state_save,
    .state_load = kvm_state_load,
    .dirty_log_start = kvm_dirty_log_start,
    .dirty_log_stop = kvm_dirty_log_stop,
    .dirty_log_harvest = kvm_dirty_log_harvest,
    .dirty_log_sync = kvm_dirty_log_sync,
    .set_throttle = kvm_set_throttle,
};
