/*
 * 256 interrupt stubs, 16 bytes apart (the IDT entry for vector v points at
 * isr_stubs + 16 * v).  Each pushes a dummy error code where the CPU pushes none, then the
 * vector, and joins isr_common, which saves the registers as an IntrFrame (guest.h) and
 * calls intr_dispatch(frame).
 */
    .section .text
    .code64
    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    mov %rsp, %rdi
    mov %rsp, %rbx            /* callee-saved: the frame survives the call */
    and $-16, %rsp            /* the ABI wants a 16-byte aligned stack at the call */
    call intr_dispatch
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp             /* vector and error code */
    iretq

    .section .note.GNU-stack, "", @progbits
