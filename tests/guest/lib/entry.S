/*
 * Boot entry for guest-kit images: a multiboot v1 header and a Xen PVH note both lead to
 * 32-bit protected mode with paging off; from there we build identity page tables for the
 * first 4 GiB (2 MiB pages), enter long mode and call guest_start().  Application
 * processors arrive from the real-mode trampoline (trampoline.S) at ap_entry32 and take
 * the same path on the already built tables.
 */
#include "layout.h"

#define MB_MAGIC      0x1badb002
#define MB_FLAGS      0x00000003 /* page-align modules, provide memory info */
#define MB_BOOT_MAGIC 0x2badb002
#define MSR_EFER      0xc0000080

#ifndef GUEST_NO_MULTIBOOT
/* Must lie in the first 8 KiB of the file: the linker script puts it first. */
    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
#endif

/* XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical entry point for a PVH boot. */
    .section .note.Xen, "a"
    .balign 4
    .long 4          /* name size, "Xen\0" */
    .long 4          /* descriptor size */
    .long 18         /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start

    .section .data
    .balign 4
    .globl boot_proto_raw, boot_info_raw, ap_next_index
boot_proto_raw: .long 0 /* BOOT_MULTIBOOT / BOOT_PVH, 0 = entered with an unknown magic */
boot_info_raw:  .long 0 /* multiboot info or hvm_start_info, physical */
ap_next_index:  .long 1 /* APs take 1, 2, ... with lock xadd */

    .balign 8
    .globl gdt, gdt_ptr
gdt:
    .quad 0
    .quad 0x00af9a000000ffff /* SEL_CODE64 */
    .quad 0x00cf92000000ffff /* SEL_DATA */
    .quad 0x00cf9a000000ffff /* SEL_CODE32 */
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

    .section .bss
    .balign 4096
    .globl pml4
pml4:   .space 4096
pdpt:   .space 4096
pd:     .space 4 * 4096
    .balign 16
boot_stack: .space BOOT_STACK_SIZE
boot_stack_top:
    .globl ap_stacks
ap_stacks: .space GUEST_MAX_CPUS * AP_STACK_SIZE

/* Enables PAE and long mode on the shared tables and far-jumps to \target (64-bit). */
.macro ENTER_LONG target
    mov %cr4, %eax
    or $0x20, %eax            /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $0x100, %eax           /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax      /* PG | PE */
    mov %eax, %cr0
    ljmp $SEL_CODE64, $\target
.endm

    .section .text.entry, "ax"
    .code32
    .globl _start, pvh_start
_start:                       /* multiboot: EAX = magic, EBX = info */
    cli
    xor %edx, %edx
    cmp $MB_BOOT_MAGIC, %eax
    jne 1f
    mov $1, %edx              /* BOOT_MULTIBOOT */
    jmp 1f
pvh_start:                    /* PVH: EBX = hvm_start_info */
    cli
    mov $2, %edx              /* BOOT_PVH */
1:
    /* The loader need not zero .bss again after a reset; the tables must start empty. */
    cld
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
    mov %edx, boot_proto_raw
    mov %ebx, boot_info_raw

    lgdt gdt_ptr
    ljmp $SEL_CODE32, $2f
2:  mov $SEL_DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs

    /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages. */
    mov $pdpt + 3, %eax
    mov %eax, pml4
    mov $pd + 3, %eax
    xor %ecx, %ecx
3:  mov %eax, pdpt(, %ecx, 8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 3b
    xor %ecx, %ecx
4:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax            /* present, writable, 2 MiB */
    cmp $1536, %ecx           /* 3 GiB and up is MMIO (APICs): uncached */
    jb 5f
    or $0x18, %eax
5:  mov %eax, pd(, %ecx, 8)
    mov %ecx, %eax
    shr $11, %eax             /* bits 32+ of the address */
    mov %eax, pd + 4(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 4b

    ENTER_LONG bsp_long

    .globl ap_entry32
ap_entry32:                   /* from the trampoline, CS = SEL_CODE32 */
    mov $SEL_DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    ENTER_LONG ap_long

    .code64
bsp_long:
    mov $SEL_DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    call guest_start
    jmp halt_forever

ap_long:
    mov $SEL_DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $1, %eax
    lock xadd %eax, ap_next_index
    cmp $GUEST_MAX_CPUS, %eax
    jae halt_forever          /* more CPUs than stacks: park without one */
    mov %eax, %edi
    lea 1(%rax), %rcx
    shl $AP_STACK_SHIFT, %rcx
    lea ap_stacks(%rcx), %rsp
    xor %ebp, %ebp
    call ap_start
halt_forever:
    cli
    hlt
    jmp halt_forever

    .section .note.GNU-stack, "", @progbits
