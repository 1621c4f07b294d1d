/*
 * CPUID and MSR set-up of KVM vCPUs.
 *
 * The CPUID table is what KVM_GET_SUPPORTED_CPUID offers ("-cpu host" minus what this
 * host cannot honour), with the topology fields rewritten from -smp so that every vCPU
 * sees its own APIC id.  The topology arithmetic is pure so that it is unit-tested
 * without KVM.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include "accel/kvm/kvm-internal.h"

#define MSR_IA32_TSC               0x10
#define MSR_IA32_FEATURE_CONTROL   0x3a
#define MSR_IA32_TSC_ADJUST        0x3b
#define MSR_IA32_ARCH_CAPABILITIES 0x10a
#define MSR_IA32_SYSENTER_CS       0x174
#define MSR_IA32_SYSENTER_ESP      0x175
#define MSR_IA32_SYSENTER_EIP      0x176
#define MSR_IA32_MISC_ENABLE       0x1a0
#define MSR_IA32_DEBUGCTL          0x1d9
#define MSR_IA32_CR_PAT            0x277
#define MSR_IA32_TSC_DEADLINE      0x6e0
#define MSR_KVM_WALL_CLOCK         0x11
#define MSR_KVM_SYSTEM_TIME        0x12
#define MSR_KVM_WALL_CLOCK_NEW     0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW    0x4b564d01
#define MSR_KVM_ASYNC_PF_EN        0x4b564d02
#define MSR_KVM_STEAL_TIME         0x4b564d03
#define MSR_KVM_PV_EOI_EN          0x4b564d04
#define MSR_KVM_POLL_CONTROL       0x4b564d05
#define MSR_KVM_ASYNC_PF_INT       0x4b564d06
#define MSR_STAR                   0xc0000081
#define MSR_LSTAR                  0xc0000082
#define MSR_CSTAR                  0xc0000083
#define MSR_SYSCALL_MASK           0xc0000084
#define MSR_KERNEL_GS_BASE         0xc0000102

#define MISC_ENABLE_FAST_STRING    (1ULL << 0)
#define PAT_POWER_ON               0x0007040600070406ULL

#define CPUID_1_ECX_HYPERVISOR     (1u << 31)
#define CPUID_1_EDX_HTT            (1u << 28)
#define CPUID_7_EDX_ARCH_CAPS      (1u << 29)
/* KVM_FEATURE_MSI_EXT_DEST_ID and KVM_FEATURE_HC_MAP_GPA_RANGE need VMM support Sen does
 * not have (15-bit MSI destinations, the map-GPA hypercall exit). */
#define KVM_PV_FEATURES_UNSUPPORTED ((1u << 15) | (1u << 16))

enum { TOPO_LEVEL_INVALID = 0, TOPO_LEVEL_SMT = 1, TOPO_LEVEL_CORE = 2, TOPO_LEVEL_DIE = 5 };

/* ---- topology arithmetic (pure) ---- */

unsigned kvm_topo_width(unsigned count)
{
    return count <= 1 ? 0 : 32 - (unsigned)__builtin_clz(count - 1);
}

unsigned kvm_topo_core_shift(const KvmTopology *t)
{
    return kvm_topo_width(t->threads);
}

unsigned kvm_topo_die_shift(const KvmTopology *t)
{
    return kvm_topo_core_shift(t) + kvm_topo_width(t->cores);
}

unsigned kvm_topo_pkg_shift(const KvmTopology *t)
{
    return kvm_topo_die_shift(t) + kvm_topo_width(t->dies);
}

void kvm_topo_from_config(KvmTopology *t, const MachineConfig *cfg)
{
    t->sockets = MAX(cfg->smp_sockets, 1);
    t->dies = MAX(cfg->smp_dies, 1);
    t->cores = MAX(cfg->smp_cores, 1);
    t->threads = MAX(cfg->smp_threads, 1);
    unsigned want = MAX(MAX(cfg->smp_cpus, cfg->smp_maxcpus), 1);
    unsigned per_socket = t->dies * t->cores * t->threads;
    if (t->sockets * per_socket < want) {
        /* The command-line parser validates -smp; a hand-built config may not. */
        t->sockets = (want + per_socket - 1) / per_socket;
    }
}

struct kvm_cpuid_entry2 *kvm_cpuid_find(struct kvm_cpuid_entry2 *e, unsigned n,
                                        uint32_t function, uint32_t index)
{
    for (unsigned i = 0; i < n; i++) {
        if (e[i].function == function &&
            (!(e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e[i].index == index)) {
            return &e[i];
        }
    }
    return NULL;
}

static void cpuid_add(GArray *a, uint32_t function, uint32_t index, uint32_t eax,
                      uint32_t ebx, uint32_t ecx, uint32_t edx)
{
    struct kvm_cpuid_entry2 e = {
        .function = function, .index = index, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        .eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx,
    };
    g_array_append_val(a, e);
}

/* Leaf 4: how many APIC ids share each cache and how many cores a package holds. */
static void cpuid_fix_cache_leaf(struct kvm_cpuid_entry2 *e, const KvmTopology *t)
{
    if ((e->eax & 0x1f) == 0) {
        return; /* no more caches */
    }
    unsigned level = (e->eax >> 5) & 7;
    unsigned core_shift = kvm_topo_core_shift(t), pkg_shift = kvm_topo_pkg_shift(t);
    uint32_t sharing = (1u << (level <= 2 ? core_shift : pkg_shift)) - 1;
    uint32_t cores = (1u << (pkg_shift - core_shift)) - 1;
    e->eax = (e->eax & 0x3fff) | (MIN(sharing, 0xfffu) << 14) | (MIN(cores, 63u) << 26);
}

/* Leaf 0xB (and 0x1F with a die level): one subleaf per level, then an invalid one. */
static void cpuid_add_topology_leaf(GArray *a, uint32_t leaf, const KvmTopology *t,
                                    uint32_t apic_id)
{
    unsigned total = t->dies * t->cores * t->threads;
    unsigned sub = 0;

    cpuid_add(a, leaf, sub, kvm_topo_core_shift(t), t->threads,
              (TOPO_LEVEL_SMT << 8) | sub, apic_id);
    sub++;
    if (leaf == 0x1f && t->dies > 1) {
        cpuid_add(a, leaf, sub, kvm_topo_die_shift(t), t->cores * t->threads,
                  (TOPO_LEVEL_CORE << 8) | sub, apic_id);
        sub++;
        cpuid_add(a, leaf, sub, kvm_topo_pkg_shift(t), total, (TOPO_LEVEL_DIE << 8) | sub,
                  apic_id);
        sub++;
    } else {
        /* Leaf 0xB has no die level: the core level reaches up to the package. */
        cpuid_add(a, leaf, sub, kvm_topo_pkg_shift(t), total, (TOPO_LEVEL_CORE << 8) | sub,
                  apic_id);
        sub++;
    }
    cpuid_add(a, leaf, sub, 0, 0, (TOPO_LEVEL_INVALID << 8) | sub, apic_id);
}

struct kvm_cpuid_entry2 *kvm_cpuid_build(const struct kvm_cpuid_entry2 *supported,
                                         unsigned n, const KvmTopology *t,
                                         uint32_t apic_id, unsigned *out_n)
{
    GArray *a = g_array_sized_new(FALSE, TRUE, sizeof(struct kvm_cpuid_entry2), n + 8);
    uint32_t max_basic = 0;

    for (unsigned i = 0; i < n; i++) {
        if (supported[i].function == 0xb || supported[i].function == 0x1f) {
            continue; /* rebuilt below from -smp */
        }
        if (supported[i].function == 0) {
            max_basic = supported[i].eax;
        }
        g_array_append_val(a, supported[i]);
    }

    unsigned pkg_shift = kvm_topo_pkg_shift(t);
    unsigned addressable = MIN(1u << pkg_shift, 255u);
    unsigned total = t->dies * t->cores * t->threads;

    for (unsigned i = 0; i < a->len; i++) {
        struct kvm_cpuid_entry2 *e = &g_array_index(a, struct kvm_cpuid_entry2, i);
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0xffff) | (addressable << 16) | ((apic_id & 0xff) << 24);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            if (addressable > 1) {
                e->edx |= CPUID_1_EDX_HTT;
            } else {
                e->edx &= ~CPUID_1_EDX_HTT;
            }
            break;
        case 4:
            cpuid_fix_cache_leaf(e, t);
            break;
        case 7:
            if (e->index == 0) {
                /* This host's KVM reports ARCH_CAPABILITIES but then refuses the
                 * non-zero MSR 0x10a value a guest would be promised. */
                e->edx &= ~CPUID_7_EDX_ARCH_CAPS;
            }
            break;
        case 0x80000008:
            if (e->ecx) {
                /* AMD: cores per package (NC) and the APIC-id core width. */
                e->ecx = (e->ecx & ~0xf0ffu) | (pkg_shift << 12) | (MIN(total, 256u) - 1);
            }
            break;
        case 0x40000001:
            e->eax &= ~KVM_PV_FEATURES_UNSUPPORTED;
            break;
        default:
            break;
        }
    }
    if (max_basic >= 0xb) {
        cpuid_add_topology_leaf(a, 0xb, t, apic_id);
    }
    if (max_basic >= 0x1f) {
        cpuid_add_topology_leaf(a, 0x1f, t, apic_id);
    }
    *out_n = a->len;
    return (struct kvm_cpuid_entry2 *)g_array_free(a, FALSE);
}

unsigned kvm_msr_list_remove(uint32_t *indices, unsigned n, uint32_t msr)
{
    unsigned out = 0;
    for (unsigned i = 0; i < n; i++) {
        if (indices[i] != msr) {
            indices[out++] = indices[i];
        }
    }
    return out;
}

/* ---- vCPU set-up through KVM ---- */

bool kvm_vcpu_setup_cpuid(KvmVcpu *v, Error **errp)
{
    KvmState *s = v->s;
    unsigned n;
    g_autofree struct kvm_cpuid_entry2 *e =
        kvm_cpuid_build(s->supported_cpuid, s->nr_supported_cpuid, &s->topo, v->apic_id, &n);
    g_autofree struct kvm_cpuid2 *c =
        g_malloc0(sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
    c->nent = n;
    memcpy(c->entries, e, n * sizeof(*e));
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
        error_setg_errno(errp, errno, "vCPU %u: KVM_SET_CPUID2 failed", v->index);
        return false;
    }
    if (s->nr_feature_msrs) {
        g_autofree struct kvm_msrs *msrs =
            g_malloc0(sizeof(*msrs) + s->nr_feature_msrs * sizeof(struct kvm_msr_entry));
        msrs->nmsrs = s->nr_feature_msrs;
        memcpy(msrs->entries, s->feature_msrs,
               s->nr_feature_msrs * sizeof(struct kvm_msr_entry));
        int r = ioctl(v->fd, KVM_SET_MSRS, msrs);
        if (r < 0 || (unsigned)r != s->nr_feature_msrs) {
            error_setg(errp, "vCPU %u: KVM refused feature MSR 0x%x", v->index,
                       s->feature_msrs[r < 0 ? 0 : r].index);
            return false;
        }
    }
    return true;
}

/* Reads a system-wide MSR list ioctl (index or feature list) into a new array. */
static uint32_t *kvm_get_msr_list(int kvm_fd, unsigned long req, unsigned *n, Error **errp)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    if (ioctl(kvm_fd, req, &probe) < 0 && errno != E2BIG) {
        error_setg_errno(errp, errno, "/dev/kvm: cannot read the MSR list");
        return NULL;
    }
    g_autofree struct kvm_msr_list *l =
        g_malloc0(sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
    l->nmsrs = probe.nmsrs;
    if (ioctl(kvm_fd, req, l) < 0) {
        error_setg_errno(errp, errno, "/dev/kvm: cannot read the MSR list");
        return NULL;
    }
    *n = l->nmsrs;
    uint32_t *out = g_new(uint32_t, l->nmsrs ? l->nmsrs : 1);
    memcpy(out, l->indices, l->nmsrs * sizeof(uint32_t));
    return out;
}

bool kvm_read_feature_msrs(KvmState *s, Error **errp)
{
    s->msrs = kvm_get_msr_list(s->kvm_fd, KVM_GET_MSR_INDEX_LIST, &s->nr_msrs, errp);
    if (!s->msrs) {
        return false;
    }
    /* Never promise MSR 0x10a: see the CPUID leaf 7 note. */
    s->nr_msrs = kvm_msr_list_remove(s->msrs, s->nr_msrs, MSR_IA32_ARCH_CAPABILITIES);
    if (ioctl(s->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_MSR_FEATURES) <= 0) {
        return true;
    }
    unsigned n;
    g_autofree uint32_t *idx =
        kvm_get_msr_list(s->kvm_fd, KVM_GET_MSR_FEATURE_INDEX_LIST, &n, errp);
    if (!idx) {
        return false;
    }
    n = kvm_msr_list_remove(idx, n, MSR_IA32_ARCH_CAPABILITIES);
    s->feature_msrs = g_new0(struct kvm_msr_entry, n ? n : 1);
    s->nr_feature_msrs = 0;
    for (unsigned i = 0; i < n; i++) {
        /* One at a time: a feature this kernel lists but cannot read is just left out. */
        struct {
            struct kvm_msrs h;
            struct kvm_msr_entry e;
        } one = { .h.nmsrs = 1, .e.index = idx[i] };
        if (ioctl(s->kvm_fd, KVM_GET_MSRS, &one) == 1) {
            s->feature_msrs[s->nr_feature_msrs++] = one.e;
        }
    }
    return true;
}

bool kvm_msr_supported(const KvmState *s, uint32_t msr)
{
    for (unsigned i = 0; i < s->nr_msrs; i++) {
        if (s->msrs[i] == msr) {
            return true;
        }
    }
    return false;
}

bool kvm_vcpu_reset_msrs(KvmVcpu *v, Error **errp)
{
    /* Power-on values.  The paravirtual ones switch off kvmclock, async page faults,
     * steal time and PV EOI, so KVM stops writing into guest memory the guest (before a
     * reboot) pointed it at. */
    static const struct { uint32_t index; uint64_t value; } reset_msrs[] = {
        { MSR_IA32_TSC_ADJUST, 0 },
        { MSR_IA32_TSC, 0 },
        { MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
        { MSR_IA32_FEATURE_CONTROL, 0 },
        { MSR_IA32_SYSENTER_CS, 0 },
        { MSR_IA32_SYSENTER_ESP, 0 },
        { MSR_IA32_SYSENTER_EIP, 0 },
        { MSR_IA32_DEBUGCTL, 0 },
        { MSR_IA32_CR_PAT, PAT_POWER_ON },
        { MSR_IA32_TSC_DEADLINE, 0 },
        { MSR_STAR, 0 },
        { MSR_LSTAR, 0 },
        { MSR_CSTAR, 0 },
        { MSR_SYSCALL_MASK, 0 },
        { MSR_KERNEL_GS_BASE, 0 },
        { MSR_KVM_SYSTEM_TIME, 0 },
        { MSR_KVM_SYSTEM_TIME_NEW, 0 },
        /* 0 is "no wall clock structure": KVM writes nothing. */
        { MSR_KVM_WALL_CLOCK, 0 },
        { MSR_KVM_WALL_CLOCK_NEW, 0 },
        { MSR_KVM_ASYNC_PF_EN, 0 },
        { MSR_KVM_ASYNC_PF_INT, 0 },
        { MSR_KVM_STEAL_TIME, 0 },
        { MSR_KVM_PV_EOI_EN, 0 },
        { MSR_KVM_POLL_CONTROL, 1 },
    };
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[G_N_ELEMENTS(reset_msrs)];
    } msrs;
    memset(&msrs, 0, sizeof(msrs));
    unsigned n = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(reset_msrs); i++) {
        if (kvm_msr_supported(v->s, reset_msrs[i].index)) {
            msrs.e[n].index = reset_msrs[i].index;
            msrs.e[n].data = reset_msrs[i].value;
            n++;
        }
    }
    msrs.h.nmsrs = n;
    int r = ioctl(v->fd, KVM_SET_MSRS, &msrs);
    if (r < 0) {
        error_setg_errno(errp, errno, "vCPU %u: KVM_SET_MSRS failed", v->index);
        return false;
    }
    if ((unsigned)r != n) {
        error_setg(errp, "vCPU %u: KVM refused the reset value 0x%" G_GINT64_MODIFIER
                   "x of MSR 0x%x", v->index, (guint64)msrs.e[r].data, msrs.e[r].index);
        return false;
    }
    return true;
}
