/* IDT, exception reporting, and interrupt dispatch to per-vector handlers. */
#include "guest.h"

typedef struct {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed)) IdtEntry;

extern char isr_stubs[];
void intr_dispatch(IntrFrame *f);

static IdtEntry idt[256] __attribute__((aligned(16)));
static IntrHandler handlers[256];

static const char *const exception_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
    "coprocessor overrun", "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
    "#GP general protection", "#PF page fault", "reserved", "#MF x87 error",
    "#AC alignment check", "#MC machine check", "#XM SIMD error", "#VE virtualization",
    "#CP control protection",
};

void idt_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t addr = (uintptr_t)isr_stubs + 16 * v;
        idt[v] = (IdtEntry){
            .off_lo = (uint16_t)addr,
            .sel = SEL_CODE64,
            .type = 0x8e, /* present, DPL 0, 64-bit interrupt gate */
            .off_mid = (uint16_t)(addr >> 16),
            .off_hi = (uint32_t)(addr >> 32),
        };
    }
}

void idt_load(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) ptr = { sizeof(idt) - 1, (uintptr_t)idt };
    __asm__ volatile("lidt %0" ::"m"(ptr));
}

void idt_set_handler(uint8_t vector, IntrHandler h)
{
    handlers[vector] = h;
}

static void report_exception(IntrFrame *f)
{
    /* A fault while reporting (say, in the APIC read) must not recurse forever. */
    static volatile uint32_t reporting;
    if (__atomic_exchange_n(&reporting, 1, __ATOMIC_SEQ_CST)) {
        guest_exit(GUEST_EXIT_FAIL);
    }
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    const char *name = exception_names[f->vector] ? exception_names[f->vector] : "reserved";
    guest_fail("exception %lu (%s) on apic id %u: error code 0x%lx, RIP 0x%lx, CS 0x%lx, "
               "RFLAGS 0x%lx, RSP 0x%lx, CR2 0x%lx, RAX 0x%lx RBX 0x%lx RCX 0x%lx RDX 0x%lx",
               f->vector, name, lapic_id(), f->error_code, f->rip, f->cs, f->rflags, f->rsp,
               cr2, f->rax, f->rbx, f->rcx, f->rdx);
}

void intr_dispatch(IntrFrame *f)
{
    /* An exception is a failure unless a test claimed its vector (lib/user.c does, to
     * come back from user mode). */
    if (f->vector < 32 && !handlers[f->vector]) {
        report_exception(f);
    }
    IntrHandler h = handlers[f->vector];
    if (h) {
        h(f);
        return;
    }
    /* Spurious LAPIC interrupts and the masked PIC's spurious IRQ 7/15 need no EOI. */
    if (f->vector == LAPIC_SPURIOUS_VECTOR || f->vector == 0x27 || f->vector == 0x2f) {
        return;
    }
    guest_fail("unexpected interrupt vector 0x%lx at RIP 0x%lx", f->vector, f->rip);
}

void pic_disable(void)
{
    /* ICW1..ICW4: edge, cascade, vector bases 0x20/0x28, slave on IRQ 2, 8086 mode. */
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, 0x20);
    outb(0xa1, 0x28);
    outb(0x21, 0x04);
    outb(0xa1, 0x02);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}
