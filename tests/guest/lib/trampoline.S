/*
 * Real-mode start for application processors.  smp_start_aps() copies the bytes between
 * ap_trampoline_start and ap_trampoline_end to AP_TRAMPOLINE_ADDR; the SIPI starts the AP
 * there with CS = AP_TRAMPOLINE_ADDR >> 4, IP = 0.  Only CS-relative references are
 * allowed here; everything after protected mode is in entry.S.
 */
#include "layout.h"

    .section .rodata, "a"
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl ap_gdt_ptr - ap_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $SEL_CODE32, $ap_entry32
    .balign 4
ap_gdt_ptr:
    .word 4 * 8 - 1
    .long gdt
ap_trampoline_end:
    .code64

    .section .note.GNU-stack, "", @progbits
