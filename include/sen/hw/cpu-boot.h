/*
 * The state a boot loader leaves the boot CPU in.  Loaders (hw/i386/boot-*.c) write their
 * GDT and page tables into guest RAM and describe them here; the accelerator turns this
 * into registers.  Every field the loader does not set is the architectural reset value.
 */
#ifndef SEN_HW_CPU_BOOT_H
#define SEN_HW_CPU_BOOT_H

#include <stdint.h>

typedef enum CpuBootMode {
    CPU_BOOT_RESET,   /* architectural reset: real mode at F000:FFF0 (firmware) */
    CPU_BOOT_PROT32,  /* 32-bit protected mode, paging off, flat 4 GiB segments */
    CPU_BOOT_LONG64,  /* 64-bit long mode, paging on with cr3 */
    CPU_BOOT_REAL16,  /* real mode at cs:rip (cs is a paragraph: base = cs << 4), the
                       * rest as after reset: an ACPI S3 resume at the waking vector */
} CpuBootMode;

typedef struct CpuBootState {
    CpuBootMode mode;
    uint64_t rip, rsp;
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t rflags;          /* 0 -> 0x2 */
    uint64_t cr3;             /* LONG64: PML4 address */
    uint64_t gdt_base;        /* PROT32/LONG64: GDT written by the loader */
    uint16_t gdt_limit;
    uint16_t cs, ds;          /* selectors into that GDT (ds also for es/fs/gs/ss);
                               * REAL16: cs is the real-mode code segment */
} CpuBootState;

#endif
