/*
 * KVM state for migration: AccelOps.state_save / state_load.
 *
 * Sections (docs/migration-format.md):
 *   "kvm-vm"  the in-kernel PIC (master, slave), IOAPIC, PIT, the KVM clock, TSC rate;
 *   "cpu.N"   per vCPU: general registers, special registers (+ PDPTRs with SREGS2),
 *             FPU and XSAVE area, XCRs, MSRs, LAPIC, pending events, MP state, debug
 *             registers.
 * Kernel ABI structs travel as opaque buffers: their layout is fixed by the KVM API on
 * x86-64, and both ends are x86-64 KVM.
 *
 * Before reading a vCPU, a KVM_RUN with immediate_exit completes an I/O the vCPU exited
 * for (the value of an IN lands in RAX and RIP moves on only then; KVM's API says this
 * pending part of an exit is invisible to the state ioctls).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include "accel/accel.h"
#include "accel/kvm/kvm-internal.h"
#include "sen/vmstate.h"

/* Largest XSAVE area a stream may carry (AMX tiles make it ~11 KiB today). */
#define KVM_STATE_XSAVE_MAX (64 * 1024)
/* MSRs migrated per vCPU at most (the list below, with room for additions). */
#define KVM_STATE_MSRS_MAX 128

/*
 * The MSRs whose values belong to the guest and that KVM lets userspace set: what QEMU
 * migrates for a KVM guest without nested virtualization or PMU.  EFER and the APIC base
 * travel in sregs.  Filtered by what the host lists (KVM_GET_MSR_INDEX_LIST).
 */
static const uint32_t kvm_state_msrs[] = {
    0x10,        /* IA32_TSC */
    0x3b,        /* IA32_TSC_ADJUST */
    0x48,        /* IA32_SPEC_CTRL */
    0x174, 0x175, 0x176, /* IA32_SYSENTER_CS/ESP/EIP */
    0x1a0,       /* IA32_MISC_ENABLE */
    0x1d9,       /* IA32_DEBUGCTL */
    0x277,       /* IA32_CR_PAT */
    0x2ff,       /* MTRRdefType */
    0x250, 0x258, 0x259, /* fixed-range MTRRs */
    0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
    0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, /* variable MTRRs 0-3 */
    0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f, /* variable MTRRs 4-7 */
    0xda0,       /* IA32_XSS */
    0xc0000081,  /* STAR */
    0xc0000082,  /* LSTAR */
    0xc0000083,  /* CSTAR */
    0xc0000084,  /* SYSCALL_MASK (FMASK) */
    0xc0000102,  /* KERNEL_GS_BASE */
    0xc0000103,  /* TSC_AUX */
    0x11, 0x12,  /* KVM wall clock / system time (old numbers) */
    0x4b564d00, 0x4b564d01, /* KVM wall clock / system time */
    0x4b564d02,  /* KVM async PF enable */
    0x4b564d03,  /* KVM steal time */
    0x4b564d04,  /* KVM PV EOI */
    0x4b564d05,  /* KVM poll control */
    0x4b564d06,  /* KVM async PF interrupt */
};
#define MSR_IA32_TSC_DEADLINE 0x6e0 /* set after the LAPIC, which must be in that mode */

typedef struct KvmMsrValue {
    uint32_t index;
    uint64_t value;
} KvmMsrValue;

/* One vCPU's state as it travels; filled from / written to the vCPU fd. */
typedef struct KvmCpuState {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    bool pdptrs_valid;               /* from KVM_GET_SREGS2 (PAE paging) */
    uint64_t pdptrs[4];
    struct kvm_fpu fpu;
    uint32_t xsave_len;              /* 0: the source had no XSAVE */
    uint8_t *xsave;
    bool have_xcrs;
    struct kvm_xcrs xcrs;
    uint32_t nr_msrs;
    KvmMsrValue msrs[KVM_STATE_MSRS_MAX];
    uint64_t tsc_deadline;
    struct kvm_lapic_state lapic;
    bool have_events;
    struct kvm_vcpu_events events;
    uint32_t mp_state;
    bool have_debugregs;
    struct kvm_debugregs debugregs;
} KvmCpuState;

static const VMStateField msr_fields[] = {
    VMSTATE_UINT32(index, KvmMsrValue),
    VMSTATE_UINT64(value, KvmMsrValue),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc msr_vmsd = {
    .name = "msr", .version_id = 1, .minimum_version_id = 1, .fields = msr_fields,
};

static bool cpu_pdptrs_needed(void *opaque)
{
    return ((KvmCpuState *)opaque)->pdptrs_valid;
}

static const VMStateField cpu_pdptrs_fields[] = {
    VMSTATE_BOOL(pdptrs_valid, KvmCpuState),
    VMSTATE_UINT64_ARRAY(pdptrs, KvmCpuState, 4),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc cpu_pdptrs_vmsd = {
    .name = "cpu/pdptrs", .version_id = 1, .minimum_version_id = 1,
    .fields = cpu_pdptrs_fields, .needed = cpu_pdptrs_needed,
};

static const VMStateDesc *const cpu_subsections[] = { &cpu_pdptrs_vmsd, NULL };

static const VMStateField cpu_fields[] = {
    VMSTATE_BUFFER(regs, KvmCpuState),
    VMSTATE_BUFFER(sregs, KvmCpuState),
    VMSTATE_BUFFER(fpu, KvmCpuState),
    { .name = "xsave", .type = VMS_U8, .offset = offsetof(KvmCpuState, xsave), .size = 1,
      .num = KVM_STATE_XSAVE_MAX, .count_offset = offsetof(KvmCpuState, xsave_len),
      .flags = VMS_F_POINTER | VMS_F_COUNTED },
    VMSTATE_BOOL(have_xcrs, KvmCpuState),
    VMSTATE_BUFFER(xcrs, KvmCpuState),
    VMSTATE_STRUCT_VARRAY(msrs, KvmCpuState, nr_msrs, KVM_STATE_MSRS_MAX, msr_vmsd,
                          KvmMsrValue),
    VMSTATE_UINT64(tsc_deadline, KvmCpuState),
    VMSTATE_BUFFER(lapic, KvmCpuState),
    VMSTATE_BOOL(have_events, KvmCpuState),
    VMSTATE_BUFFER(events, KvmCpuState),
    VMSTATE_UINT32(mp_state, KvmCpuState),
    VMSTATE_BOOL(have_debugregs, KvmCpuState),
    VMSTATE_BUFFER(debugregs, KvmCpuState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc cpu_vmsd = {
    .name = "cpu", .version_id = 1, .minimum_version_id = 1, .fields = cpu_fields,
    .subsections = cpu_subsections,
};

/* The VM-wide in-kernel devices. */
typedef struct KvmVmState {
    struct kvm_irqchip pic_master, pic_slave, ioapic;
    struct kvm_pit_state2 pit;
    uint64_t clock;                  /* KVM_GET_CLOCK: kvmclock nanoseconds */
    uint32_t tsc_khz;                /* 0: unknown */
    /* kernel-irqchip=split: only the LAPICs are in KVM (their state is per vCPU); the
     * chip and PIT buffers above stay zero and the IOAPIC travels as Sen's "ioapic"
     * device.  Saved in a subsection only then, so streams without it are unchanged. */
    uint8_t split_irqchip;
} KvmVmState;

static bool vm_split_needed(void *opaque)
{
    return ((KvmVmState *)opaque)->split_irqchip != 0;
}

static const VMStateField vm_split_fields[] = {
    VMSTATE_UINT8(split_irqchip, KvmVmState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc vm_split_vmsd = {
    .name = "kvm-vm/split-irqchip", .version_id = 1, .minimum_version_id = 1,
    .fields = vm_split_fields, .needed = vm_split_needed,
};

static const VMStateDesc *const vm_subsections[] = { &vm_split_vmsd, NULL };

static const VMStateField vm_fields[] = {
    VMSTATE_BUFFER(pic_master, KvmVmState),
    VMSTATE_BUFFER(pic_slave, KvmVmState),
    VMSTATE_BUFFER(ioapic, KvmVmState),
    VMSTATE_BUFFER(pit, KvmVmState),
    VMSTATE_UINT64(clock, KvmVmState),
    VMSTATE_UINT32(tsc_khz, KvmVmState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc vm_vmsd = {
    .name = "kvm-vm", .version_id = 1, .minimum_version_id = 1, .fields = vm_fields,
    .subsections = vm_subsections,
};

static bool have_cap(KvmState *s, int cap)
{
    return ioctl(s->kvm_fd, KVM_CHECK_EXTENSION, cap) > 0;
}

static bool vcpu_ioctl(KvmVcpu *v, unsigned long req, void *arg, const char *name,
                       Error **errp)
{
    if (ioctl(v->fd, req, arg) < 0) {
        error_setg_errno(errp, errno, "vCPU %u: %s failed", v->index, name);
        return false;
    }
    return true;
}

static bool vm_ioctl(KvmState *s, unsigned long req, void *arg, const char *name,
                     Error **errp)
{
    if (ioctl(s->vm_fd, req, arg) < 0) {
        error_setg_errno(errp, errno, "KVM: %s failed", name);
        return false;
    }
    return true;
}

/* ---- save ---- */

/* Finishes the I/O of the vCPU's last exit without running guest code (see top). */
static bool vcpu_complete_io(KvmVcpu *v, Error **errp)
{
    KvmState *s = v->s;
    g_mutex_lock(&s->ctl_lock);
    bool parked = v->parked || !v->thread_started;
    g_mutex_unlock(&s->ctl_lock);
    if (!parked) {
        error_setg(errp, "vCPU %u: still running (pause the VM before saving its state)",
                   v->index);
        return false;
    }
    v->run->immediate_exit = 1;
    int r = ioctl(v->fd, KVM_RUN, 0);
    if (r == 0 || errno != EINTR) {
        error_setg_errno(errp, r == 0 ? EBUSY : errno, "vCPU %u: completing its last "
                         "exit before saving", v->index);
        return false;
    }
    return true;
}

static bool get_msrs(KvmVcpu *v, KvmCpuState *c, Error **errp)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[1];
    } one;
    c->nr_msrs = 0;
    /* One at a time: an MSR the host lists but cannot read for this vCPU is left out
     * rather than failing the migration (it then keeps its reset value). */
    for (unsigned i = 0; i < G_N_ELEMENTS(kvm_state_msrs); i++) {
        if (!kvm_msr_supported(v->s, kvm_state_msrs[i])) {
            continue;
        }
        memset(&one, 0, sizeof(one));
        one.h.nmsrs = 1;
        one.e[0].index = kvm_state_msrs[i];
        if (ioctl(v->fd, KVM_GET_MSRS, &one) == 1) {
            c->msrs[c->nr_msrs++] = (KvmMsrValue){ one.e[0].index, one.e[0].data };
        }
    }
    c->tsc_deadline = 0;
    if (kvm_msr_supported(v->s, MSR_IA32_TSC_DEADLINE)) {
        memset(&one, 0, sizeof(one));
        one.h.nmsrs = 1;
        one.e[0].index = MSR_IA32_TSC_DEADLINE;
        if (ioctl(v->fd, KVM_GET_MSRS, &one) != 1) {
            error_setg_errno(errp, errno, "vCPU %u: reading the TSC deadline", v->index);
            return false;
        }
        c->tsc_deadline = one.e[0].data;
    }
    return true;
}

static bool get_sregs(KvmVcpu *v, KvmCpuState *c, Error **errp)
{
    if (!vcpu_ioctl(v, KVM_GET_SREGS, &c->sregs, "KVM_GET_SREGS", errp)) {
        return false;
    }
    c->pdptrs_valid = false;
    if (have_cap(v->s, KVM_CAP_SREGS2)) {
        struct kvm_sregs2 s2;
        if (!vcpu_ioctl(v, KVM_GET_SREGS2, &s2, "KVM_GET_SREGS2", errp)) {
            return false;
        }
        if (s2.flags & KVM_SREGS2_FLAGS_PDPTRS_VALID) {
            c->pdptrs_valid = true;
            memcpy(c->pdptrs, s2.pdptrs, sizeof(c->pdptrs));
        }
    }
    return true;
}

static bool get_fpu(KvmVcpu *v, KvmCpuState *c, Error **errp)
{
    KvmState *s = v->s;
    if (!vcpu_ioctl(v, KVM_GET_FPU, &c->fpu, "KVM_GET_FPU", errp)) {
        return false;
    }
    c->xsave_len = 0;
    if (s->have_xsave && s->xsave_size <= KVM_STATE_XSAVE_MAX) {
        bool v2 = s->xsave_size > sizeof(struct kvm_xsave);
        if (!vcpu_ioctl(v, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, c->xsave,
                        v2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", errp)) {
            return false;
        }
        c->xsave_len = (uint32_t)s->xsave_size;
    }
    c->have_xcrs = s->have_xcrs && ioctl(v->fd, KVM_GET_XCRS, &c->xcrs) == 0;
    return true;
}

static bool vcpu_get_state(KvmVcpu *v, KvmCpuState *c, Error **errp)
{
    KvmState *s = v->s;
    struct kvm_mp_state mp;

    if (!vcpu_complete_io(v, errp) ||
        !vcpu_ioctl(v, KVM_GET_REGS, &c->regs, "KVM_GET_REGS", errp) ||
        !get_sregs(v, c, errp) || !get_fpu(v, c, errp) || !get_msrs(v, c, errp) ||
        !vcpu_ioctl(v, KVM_GET_LAPIC, &c->lapic, "KVM_GET_LAPIC", errp) ||
        !vcpu_ioctl(v, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", errp)) {
        return false;
    }
    c->mp_state = mp.mp_state;
    c->have_events = s->have_vcpu_events;
    if (c->have_events &&
        !vcpu_ioctl(v, KVM_GET_VCPU_EVENTS, &c->events, "KVM_GET_VCPU_EVENTS", errp)) {
        return false;
    }
    c->have_debugregs = s->have_debugregs;
    if (c->have_debugregs &&
        !vcpu_ioctl(v, KVM_GET_DEBUGREGS, &c->debugregs, "KVM_GET_DEBUGREGS", errp)) {
        return false;
    }
    return true;
}

static bool vm_get_state(KvmState *s, KvmVmState *vs, Error **errp)
{
    vs->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    vs->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    vs->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    struct kvm_clock_data clock;
    memset(&clock, 0, sizeof(clock));
    vs->split_irqchip = s->split_irqchip;
    if (!s->split_irqchip &&
        (!vm_ioctl(s, KVM_GET_IRQCHIP, &vs->pic_master, "KVM_GET_IRQCHIP (PIC master)",
                   errp) ||
        !vm_ioctl(s, KVM_GET_IRQCHIP, &vs->pic_slave, "KVM_GET_IRQCHIP (PIC slave)", errp) ||
        !vm_ioctl(s, KVM_GET_IRQCHIP, &vs->ioapic, "KVM_GET_IRQCHIP (IOAPIC)", errp) ||
         !vm_ioctl(s, KVM_GET_PIT2, &vs->pit, "KVM_GET_PIT2", errp))) {
        return false;
    }
    if (!vm_ioctl(s, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK", errp)) {
        return false;
    }
    vs->clock = clock.clock;
    int khz = s->nr_vcpus ? ioctl(s->vcpus[0].fd, KVM_GET_TSC_KHZ, 0) : -1;
    vs->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
    return true;
}

bool kvm_state_save(Machine *m, VMStateOut *out, Error **errp)
{
    KvmState *s = kvm_state(m);
    g_autofree KvmVmState *vs = g_new0(KvmVmState, 1);
    if (!vm_get_state(s, vs, errp) || !vmstate_save_section(out, "kvm-vm", &vm_vmsd, vs,
                                                            errp)) {
        return false;
    }
    g_autofree KvmCpuState *c = g_new0(KvmCpuState, 1);
    g_autofree uint8_t *xsave = g_malloc0(KVM_STATE_XSAVE_MAX);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        memset(c, 0, sizeof(*c));
        c->xsave = xsave;
        g_autofree char *name = g_strdup_printf("cpu.%u", i);
        if (!vcpu_get_state(&s->vcpus[i], c, errp) ||
            !vmstate_save_section(out, name, &cpu_vmsd, c, errp)) {
            return false;
        }
    }
    return true;
}

/* ---- load ---- */

static bool set_msr_list(KvmVcpu *v, const KvmMsrValue *vals, unsigned n, Error **errp)
{
    g_autofree struct kvm_msrs *msrs =
        g_malloc0(sizeof(*msrs) + MAX(n, 1) * sizeof(struct kvm_msr_entry));
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!kvm_msr_supported(v->s, vals[i].index)) {
            if (vals[i].value == 0) {
                continue; /* the power-on value: nothing is lost */
            }
            error_setg(errp, "vCPU %u: MSR 0x%" PRIx32 " (value 0x%" PRIx64 ") is not "
                       "supported by this host's KVM", v->index, vals[i].index,
                       vals[i].value);
            return false;
        }
        msrs->entries[k].index = vals[i].index;
        msrs->entries[k].data = vals[i].value;
        k++;
    }
    msrs->nmsrs = k;
    int r = ioctl(v->fd, KVM_SET_MSRS, msrs);
    if (r < 0) {
        error_setg_errno(errp, errno, "vCPU %u: KVM_SET_MSRS failed", v->index);
        return false;
    }
    if ((unsigned)r != k) {
        error_setg(errp, "vCPU %u: KVM refused value 0x%" PRIx64 " for MSR 0x%" PRIx32,
                   v->index, (uint64_t)msrs->entries[r].data, msrs->entries[r].index);
        return false;
    }
    return true;
}

static bool set_sregs(KvmVcpu *v, const KvmCpuState *c, Error **errp)
{
    if (c->pdptrs_valid && have_cap(v->s, KVM_CAP_SREGS2)) {
        /* PAE paging: the PDPTRs the CPU loaded may differ from memory by now. */
        struct kvm_sregs2 s2;
        memset(&s2, 0, sizeof(s2));
        memcpy(&s2, &c->sregs, offsetof(struct kvm_sregs2, flags));
        s2.flags = KVM_SREGS2_FLAGS_PDPTRS_VALID;
        memcpy(s2.pdptrs, c->pdptrs, sizeof(s2.pdptrs));
        return vcpu_ioctl(v, KVM_SET_SREGS2, &s2, "KVM_SET_SREGS2", errp);
    }
    struct kvm_sregs sregs = c->sregs;
    return vcpu_ioctl(v, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", errp);
}

static bool set_fpu(KvmVcpu *v, const KvmCpuState *c, Error **errp)
{
    KvmState *s = v->s;
    if (c->xsave_len && s->have_xsave) {
        if (c->xsave_len > s->xsave_size) {
            error_setg(errp, "vCPU %u: the source's XSAVE area has %" PRIu32 " bytes, this "
                       "host's KVM holds %zu", v->index, c->xsave_len, s->xsave_size);
            return false;
        }
        g_autofree uint8_t *buf = g_malloc0(s->xsave_size);
        memcpy(buf, c->xsave, c->xsave_len);
        if (!vcpu_ioctl(v, KVM_SET_XSAVE, buf, "KVM_SET_XSAVE", errp)) {
            return false;
        }
    } else {
        struct kvm_fpu fpu = c->fpu;
        if (!vcpu_ioctl(v, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp)) {
            return false;
        }
    }
    if (c->have_xcrs && v->s->have_xcrs) {
        struct kvm_xcrs xcrs = c->xcrs;
        if (xcrs.nr_xcrs > KVM_MAX_XCRS) {
            error_setg(errp, "vCPU %u: %" PRIu32 " XCRs, at most %d exist", v->index,
                       xcrs.nr_xcrs, KVM_MAX_XCRS);
            return false;
        }
        return vcpu_ioctl(v, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", errp);
    }
    return true;
}

/* The order follows the dependencies: SREGS (EFER, APIC base) before MSRs and LAPIC, the
 * LAPIC before its TSC deadline and the MP state, events last but debug registers. */
static bool vcpu_set_state(KvmVcpu *v, const KvmCpuState *c, Error **errp)
{
    KvmState *s = v->s;
    struct kvm_regs regs = c->regs;
    struct kvm_lapic_state lapic = c->lapic;
    struct kvm_mp_state mp = { .mp_state = c->mp_state };

    if (!set_sregs(v, c, errp) || !vcpu_ioctl(v, KVM_SET_REGS, &regs, "KVM_SET_REGS", errp) ||
        !set_fpu(v, c, errp) || !set_msr_list(v, c->msrs, c->nr_msrs, errp) ||
        !vcpu_ioctl(v, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", errp)) {
        return false;
    }
    if (c->tsc_deadline) {
        KvmMsrValue dl = { MSR_IA32_TSC_DEADLINE, c->tsc_deadline };
        if (!set_msr_list(v, &dl, 1, errp)) {
            return false;
        }
    }
    if (!vcpu_ioctl(v, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", errp)) {
        return false;
    }
    if (c->have_events && s->have_vcpu_events) {
        struct kvm_vcpu_events ev = c->events;
        ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
        if (!vcpu_ioctl(v, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", errp)) {
            return false;
        }
    }
    if (c->have_debugregs && s->have_debugregs) {
        struct kvm_debugregs dr = c->debugregs;
        if (!vcpu_ioctl(v, KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS", errp)) {
            return false;
        }
    }
    return true;
}

static bool vm_set_state(KvmState *s, KvmVmState *vs, Error **errp)
{
    if (s->split_irqchip) {
        return true; /* no chip or PIT in KVM; the IOAPIC is a Sen device */
    }
    /* A stream cannot redirect which chip an ioctl writes. */
    vs->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    vs->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    vs->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    if (!vm_ioctl(s, KVM_SET_IRQCHIP, &vs->pic_master, "KVM_SET_IRQCHIP (PIC master)",
                  errp) ||
        !vm_ioctl(s, KVM_SET_IRQCHIP, &vs->pic_slave, "KVM_SET_IRQCHIP (PIC slave)", errp) ||
        !vm_ioctl(s, KVM_SET_IRQCHIP, &vs->ioapic, "KVM_SET_IRQCHIP (IOAPIC)", errp) ||
        !vm_ioctl(s, KVM_SET_PIT2, &vs->pit, "KVM_SET_PIT2", errp)) {
        return false;
    }
    return true;
}

/* After the vCPUs: the kvmclock MSRs are in place when the clock is set. */
static bool vm_set_clock(KvmState *s, const KvmVmState *vs, Error **errp)
{
    struct kvm_clock_data clock;
    memset(&clock, 0, sizeof(clock));
    clock.clock = vs->clock;
    return vm_ioctl(s, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK", errp);
}

/* A guest keeps its TSC rate across hosts when KVM can scale it; otherwise warn, as the
 * guest's timekeeping will drift. */
static void vm_set_tsc_khz(KvmState *s, const KvmVmState *vs)
{
    int here = s->nr_vcpus ? ioctl(s->vcpus[0].fd, KVM_GET_TSC_KHZ, 0) : -1;
    if (!vs->tsc_khz || here <= 0 || (uint32_t)here == vs->tsc_khz) {
        return;
    }
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (ioctl(s->vcpus[i].fd, KVM_SET_TSC_KHZ, (unsigned long)vs->tsc_khz) < 0) {
            warn_report("the source's TSC runs at %" PRIu32 " kHz, this host's at %d kHz "
                        "and KVM cannot scale it: guest time may drift", vs->tsc_khz, here);
            return;
        }
    }
}

bool kvm_state_load(Machine *m, VMStateIn *in, Error **errp)
{
    KvmState *s = kvm_state(m);
    g_mutex_lock(&s->ctl_lock);
    bool running = s->running;
    g_mutex_unlock(&s->ctl_lock);
    if (running) {
        error_setg(errp, "KVM: vCPUs must be paused to load their state");
        return false;
    }
    g_autofree KvmVmState *vs = g_new0(KvmVmState, 1);
    if (!vmstate_load_section(in, "kvm-vm", &vm_vmsd, vs, errp)) {
        return false;
    }
    if (!vs->split_irqchip != !s->split_irqchip) {
        error_setg(errp, "device state: the source ran with kernel-irqchip=%s, this machine "
                   "with kernel-irqchip=%s (they must match)",
                   vs->split_irqchip ? "split" : "on", s->split_irqchip ? "split" : "on");
        return false;
    }
    vm_set_tsc_khz(s, vs);
    g_autofree KvmCpuState *c = g_new0(KvmCpuState, 1);
    g_autofree uint8_t *xsave = g_malloc0(KVM_STATE_XSAVE_MAX);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        memset(c, 0, sizeof(*c));
        c->xsave = xsave;
        g_autofree char *name = g_strdup_printf("cpu.%u", i);
        if (!vmstate_load_section(in, name, &cpu_vmsd, c, errp) ||
            !vcpu_set_state(&s->vcpus[i], c, errp)) {
            return false;
        }
    }
    if (!vm_set_state(s, vs, errp) || !vm_set_clock(s, vs, errp)) {
        return false;
    }
    /* A vCPU that had stopped (triple fault, internal error) on the source starts
     * afresh from the loaded state. */
    kvm_vcpus_clear_stopped(s);
    return true;
}
