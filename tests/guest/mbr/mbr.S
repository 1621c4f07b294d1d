/*
 * A boot sector for firmware-boot tests: the BIOS loads it at 0x7c00 from the first disk
 * and jumps to it in real mode.  It prints through COM1, checks the boot drive (DL), reads
 * sectors 1-2 with INT 13h extensions (LBA), prints sector 1 (a NUL-terminated line the
 * test wrote) and checks that sector 2 is all 0x5a, then exits through isa-debug-exit at
 * 0x501: 0x10 = pass (status 33), 0x11 = fail (status 35), as the rest of the guest kit.
 * Built as a flat 512-byte image (tests/guest/meson.build); no BIOS output routine is used,
 * so the lines appear the same with and without the firmware's serial console.
 */
    .code16
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    cld
    sti
    mov %dl, boot_drive

    mov $msg_hello, %si
    call puts
    cmpb $0x80, boot_drive
    jne fail_drive
    mov $msg_drive, %si
    call puts

    mov $0x42, %ah              /* extended read: DS:SI -> disk address packet */
    mov boot_drive, %dl
    mov $dap, %si
    int $0x13
    jc fail_read

    mov $0x8000, %si            /* sector 1: the line the test put there */
    call puts
    mov $0x8200, %di            /* sector 2: 512 bytes of 0x5a */
    mov $512, %cx
    mov $0x5a, %al
    repe scasb
    jne fail_pattern
    mov $msg_ok, %si
    call puts
    mov $0x10, %al
    jmp exit

fail_drive:
    mov $msg_bad_drive, %si
    jmp fail
fail_read:
    mov $msg_bad_read, %si
    jmp fail
fail_pattern:
    mov $msg_bad_pattern, %si
fail:
    call puts
    mov $0x11, %al
exit:
    mov $0x501, %dx
    out %al, %dx
1:  hlt
    jmp 1b

/* Prints the NUL-terminated string at DS:SI. */
puts:
    lodsb
    test %al, %al
    jz 2f
    call putc
    jmp puts
2:  ret

/* Writes AL to COM1 once the transmitter holding register is empty. */
putc:
    push %ax
    mov $0x3fd, %dx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    pop %ax
    mov $0x3f8, %dx
    out %al, %dx
    ret

boot_drive:
    .byte 0
    .p2align 2
dap:                            /* INT 13h AH=42h disk address packet */
    .byte 0x10, 0               /* size, reserved */
    .word 2                     /* sectors */
    .word 0x8000, 0             /* buffer offset, segment */
    .quad 1                     /* first LBA */

msg_hello:       .asciz "mbr: running from the boot sector\r\n"
msg_drive:       .asciz "mbr: boot drive 0x80\r\n"
msg_ok:          .asciz "mbr: sector 2 holds the 0x5a pattern\r\nmbr ok\r\n"
msg_bad_drive:   .asciz "FAIL: mbr: boot drive is not 0x80\r\n"
msg_bad_read:    .asciz "FAIL: mbr: INT 13h read of sectors 1-2 failed\r\n"
msg_bad_pattern: .asciz "FAIL: mbr: sector 2 is not all 0x5a\r\n"

    .org 510
    .word 0xaa55
