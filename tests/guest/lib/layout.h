/* Constants shared by the assembly and C parts of the guest kit. */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_CODE32 0x18

#define GUEST_MAX_CPUS  512 /* AP stacks: 4 KiB each, in .bss */
#define BOOT_STACK_SIZE 16384
#define AP_STACK_SHIFT  12
#define AP_STACK_SIZE   (1 << AP_STACK_SHIFT)

/* Where the AP trampoline is copied; the SIPI vector is its page number. */
#define AP_TRAMPOLINE_ADDR 0x8000

#endif
