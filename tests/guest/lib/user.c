/* User mode (CPL3) for the guest kit: see user.h. */
#include "guest.h"
#include "user.h"

#define SEL_UDATA 0x23 /* GDT entry 4, RPL 3 */
#define SEL_UCODE 0x2b /* GDT entry 5, RPL 3 */
#define SEL_TSS   0x30 /* GDT entries 6-7 */
#define PTE_USER  0x4ull

typedef struct {
    uint32_t reserved0;
    uint64_t rsp0, rsp1, rsp2;
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
} __attribute__((packed)) Tss;

extern uint64_t pml4[512];
extern uint64_t gdt[4];

static uint64_t user_gdt[8] __attribute__((aligned(16)));
static Tss tss __attribute__((aligned(16)));
/* Where exceptions from user mode run (TSS.RSP0). */
static uint8_t trap_stack[8192] __attribute__((aligned(16)));
static uint8_t user_stack[65536] __attribute__((aligned(16)));
/* Kernel stack pointer saved by user_enter, with the callee-saved registers below it. */
uint64_t user_saved_rsp;

uint64_t user_enter(uint64_t (*fn)(void *), void *arg, uint64_t stack_top);
void user_leave(uint64_t result) __attribute__((noreturn));
void user_return_stub(void);

/*
 * user_enter(fn, arg, stack_top): saves the callee-saved registers and rsp, then irets
 * to fn at CPL3 with rdi = arg, rsp = stack_top - 8 (where user_return_stub sits as the
 * return address), RFLAGS = 2 (interrupts off).
 * user_leave(result): back on the saved kernel stack, returns result from user_enter.
 */
__asm__(
    "    .text\n"
    "    .globl user_enter, user_leave, user_return_stub\n"
    "user_enter:\n"
    "    push %rbx\n    push %rbp\n    push %r12\n    push %r13\n    push %r14\n    push %r15\n"
    "    mov %rsp, user_saved_rsp(%rip)\n"
    "    lea user_return_stub(%rip), %rax\n"
    "    mov %rax, -8(%rdx)\n"
    "    sub $8, %rdx\n"
    "    pushq $0x23\n"       /* SS */
    "    pushq %rdx\n"        /* RSP */
    "    pushq $2\n"          /* RFLAGS */
    "    pushq $0x2b\n"       /* CS */
    "    pushq %rdi\n"        /* RIP = fn */
    "    mov %rsi, %rdi\n"
    "    iretq\n"
    "user_return_stub:\n"
    "    ud2\n"
    "user_leave:\n"
    "    mov user_saved_rsp(%rip), %rsp\n"
    "    mov %rdi, %rax\n"
    "    pop %r15\n    pop %r14\n    pop %r13\n    pop %r12\n    pop %rbp\n    pop %rbx\n"
    "    ret\n");

static void user_trap(IntrFrame *f)
{
    if ((f->cs & 3) != 3) {
        guest_fail("exception %lu in kernel mode at RIP 0x%lx (error code 0x%lx)", f->vector,
                   f->rip, f->error_code);
    }
    if (f->vector == 6 && f->rip == (uintptr_t)user_return_stub) {
        user_leave(f->rax);
    }
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    guest_fail("exception %lu in user mode at RIP 0x%lx (error code 0x%lx, CR2 0x%lx)",
               f->vector, f->rip, f->error_code, cr2);
}

void user_init(void)
{
    /* The boot identity map (PML4[0] -> PDPT[0..3] -> 2 MiB pages), user-accessible. */
    pml4[0] |= PTE_USER;
    uint64_t *pdpt = phys_ptr(pml4[0] & ~0xfffull);
    for (unsigned i = 0; i < 4; i++) {
        pdpt[i] |= PTE_USER;
        uint64_t *pd = phys_ptr(pdpt[i] & ~0xfffull);
        for (unsigned j = 0; j < 512; j++) {
            pd[j] |= PTE_USER;
        }
    }
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3)::"memory");

    for (unsigned i = 0; i < 4; i++) {
        user_gdt[i] = gdt[i];
    }
    user_gdt[4] = 0x00cff2000000ffffull; /* data, DPL 3 */
    user_gdt[5] = 0x00affa000000ffffull; /* 64-bit code, DPL 3 */
    uint64_t base = (uintptr_t)&tss, limit = sizeof(tss) - 1;
    user_gdt[6] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                  (((base >> 24) & 0xff) << 56);
    user_gdt[7] = base >> 32;
    tss.rsp0 = (uintptr_t)(trap_stack + sizeof(trap_stack));
    tss.iomap_base = sizeof(tss);
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) ptr = { sizeof(user_gdt) - 1, (uintptr_t)user_gdt };
    __asm__ volatile("lgdt %0; ltr %w1" ::"m"(ptr), "r"(SEL_TSS) : "memory");
    idt_set_handler(6, user_trap);
    idt_set_handler(13, user_trap);
    idt_set_handler(14, user_trap);
}

uint64_t user_call(uint64_t (*fn)(void *arg), void *arg)
{
    return user_enter(fn, arg, (uintptr_t)(user_stack + sizeof(user_stack)));
}
