/*
 * Reading a vCPU for humans: `info registers`-style dumps and the report printed when KVM
 * cannot continue (internal error, entry failure), with the instruction bytes at RIP
 * found by walking the guest's own page tables.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include "accel/kvm/kvm-internal.h"

#define CR0_PG (1ULL << 31)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LMA (1ULL << 10)

#define PTE_P (1ULL << 0)
#define PTE_PS (1ULL << 7)
#define PTE_ADDR_MASK 0x000ffffffffff000ULL

enum { CODE_BYTES = 16 };

static bool read_pte64(GuestMemory *gm, uint64_t table, unsigned idx, uint64_t *pte)
{
    return guest_mem_read(gm, (table & PTE_ADDR_MASK) + idx * 8ULL, pte, 8) && (*pte & PTE_P);
}

/* PAE and 4/5-level walks share one loop: `levels` tables of 512 entries below the
 * top, whose index width depends on the mode. */
static bool walk64(GuestMemory *gm, uint64_t table, unsigned levels, uint64_t la,
                   uint64_t *phys)
{
    for (unsigned level = levels; level >= 1; level--) {
        unsigned shift = 12 + 9 * (level - 1);
        uint64_t pte;
        if (!read_pte64(gm, table, (la >> shift) & 0x1ff, &pte)) {
            return false;
        }
        if (level == 1 || ((level == 2 || level == 3) && (pte & PTE_PS))) {
            uint64_t page = 1ULL << shift;
            *phys = (pte & PTE_ADDR_MASK & ~(page - 1)) | (la & (page - 1));
            return true;
        }
        table = pte;
    }
    return false;
}

bool kvm_translate(GuestMemory *gm, uint64_t cr0, uint64_t cr3, uint64_t cr4, uint64_t efer,
                   uint64_t linear, uint64_t *phys)
{
    if (!(cr0 & CR0_PG)) {
        *phys = linear & 0xffffffffULL;
        return true;
    }
    if (efer & EFER_LMA) {
        return walk64(gm, cr3, (cr4 & CR4_LA57) ? 5 : 4, linear, phys);
    }
    linear &= 0xffffffffULL;
    if (cr4 & CR4_PAE) {
        uint64_t pdpte;
        if (!guest_mem_read(gm, (cr3 & 0xffffffe0ULL) + ((linear >> 30) & 3) * 8, &pdpte, 8) ||
            !(pdpte & PTE_P)) {
            return false;
        }
        return walk64(gm, pdpte, 2, linear, phys);
    }
    uint32_t pde, pte;
    if (!guest_mem_read(gm, (cr3 & 0xfffff000ULL) + ((linear >> 22) & 0x3ff) * 4, &pde, 4) ||
        !(pde & PTE_P)) {
        return false;
    }
    if ((pde & PTE_PS) && (cr4 & CR4_PSE)) {
        /* 4 MiB page; PSE-36 puts physical bits 32+ in PDE bits 13-20. */
        *phys = (pde & 0xffc00000ULL) | ((uint64_t)((pde >> 13) & 0xff) << 32) |
                (linear & 0x3fffff);
        return true;
    }
    if (!guest_mem_read(gm, (pde & 0xfffff000ULL) + ((linear >> 12) & 0x3ff) * 4, &pte, 4) ||
        !(pte & PTE_P)) {
        return false;
    }
    *phys = (pte & 0xfffff000ULL) | (linear & 0xfff);
    return true;
}

static const char *mp_state_name(uint32_t s)
{
    switch (s) {
    case KVM_MP_STATE_RUNNABLE:
        return "runnable";
    case KVM_MP_STATE_UNINITIALIZED:
        return "waiting for SIPI";
    case KVM_MP_STATE_INIT_RECEIVED:
        return "INIT received";
    case KVM_MP_STATE_HALTED:
        return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED:
        return "SIPI received";
    default:
        return "other";
    }
}

static void dump_seg(FILE *out, const char *name, const struct kvm_segment *s)
{
    fprintf(out, "%-3s=%04x %016llx %08x type=%x dpl=%u%s%s%s%s%s%s\n", name, s->selector,
            (unsigned long long)s->base, s->limit, s->type, s->dpl, s->present ? " P" : "",
            s->s ? " S" : "", s->db ? " DB" : "", s->l ? " L" : "", s->g ? " G" : "",
            s->unusable ? " unusable" : "");
}

static void dump_regs(FILE *out, const struct kvm_regs *r, const struct kvm_sregs *sr)
{
    fprintf(out, "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
            "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
            "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
            "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
            "RIP=%016llx RFL=%08llx CPL=%u\n",
            r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp, r->r8, r->r9,
            r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags, sr->cs.dpl);
    dump_seg(out, "ES", &sr->es);
    dump_seg(out, "CS", &sr->cs);
    dump_seg(out, "SS", &sr->ss);
    dump_seg(out, "DS", &sr->ds);
    dump_seg(out, "FS", &sr->fs);
    dump_seg(out, "GS", &sr->gs);
    dump_seg(out, "LDT", &sr->ldt);
    dump_seg(out, "TR", &sr->tr);
    fprintf(out, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n",
            (unsigned long long)sr->gdt.base, sr->gdt.limit,
            (unsigned long long)sr->idt.base, sr->idt.limit);
    fprintf(out, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n"
            "EFER=%016llx APIC_BASE=%016llx\n",
            sr->cr0, sr->cr2, sr->cr3, sr->cr4, sr->efer, sr->apic_base);
}

void kvm_vcpu_dump(KvmVcpu *v, FILE *out)
{
    struct kvm_regs r;
    struct kvm_sregs sr;
    struct kvm_mp_state mp = { 0 };

    if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sr) < 0) {
        fprintf(out, "CPU#%u: cannot read registers: %s\n", v->index, g_strerror(errno));
        return;
    }
    bool have_mp = ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0;
    fprintf(out, "CPU#%u (APIC id %u%s%s)\n", v->index, v->apic_id,
            have_mp ? ", " : "", have_mp ? mp_state_name(mp.mp_state) : "");
    dump_regs(out, &r, &sr);
}

void kvm_vcpu_report_failure(KvmVcpu *v, const char *what, FILE *out)
{
    struct kvm_regs r;
    struct kvm_sregs sr;
    GuestMemory *gm = v->s->m->mem;

    fprintf(out, "sen: vCPU %u: %s\n", v->index, what);
    if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sr) < 0) {
        fprintf(out, "sen: vCPU %u: cannot read registers: %s\n", v->index,
                g_strerror(errno));
        return;
    }
    bool code64 = (sr.efer & EFER_LMA) && sr.cs.l;
    uint64_t linear = code64 ? r.rip : (sr.cs.base + r.rip) & 0xffffffffULL;
    fprintf(out, "sen: vCPU %u: RIP=%016llx CS base=%016llx (linear %016llx)\n", v->index,
            r.rip, (unsigned long long)sr.cs.base, (unsigned long long)linear);

    GString *code = g_string_new(NULL);
    for (unsigned i = 0; i < CODE_BYTES; i++) {
        uint64_t pa;
        uint8_t byte;
        if (!gm || !kvm_translate(gm, sr.cr0, sr.cr3, sr.cr4, sr.efer, linear + i, &pa) ||
            !guest_mem_read(gm, pa, &byte, 1)) {
            g_string_append(code, i ? " (then not in RAM)" : " not in RAM");
            break;
        }
        g_string_append_printf(code, " %02x", byte);
    }
    fprintf(out, "sen: vCPU %u: code at RIP:%s\n", v->index, code->str);
    g_string_free(code, TRUE);
    fprintf(out, "CPU#%u (APIC id %u)\n", v->index, v->apic_id);
    dump_regs(out, &r, &sr);
    fflush(out);
}

static void dump_one(KvmVcpu *v, void *opaque)
{
    kvm_vcpu_dump(v, opaque);
}

void kvm_dump_state(Machine *m, FILE *out)
{
    KvmState *s = kvm_state(m);
    for (unsigned i = 0; s && i < s->nr_vcpus; i++) {
        if (s->vcpus[i].fd >= 0) {
            kvm_vcpu_with_registers(&s->vcpus[i], dump_one, out);
        }
    }
    fflush(out);
}
