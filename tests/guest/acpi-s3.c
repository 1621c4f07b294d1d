/*
 * ACPI S3 (suspend to RAM) as an OS uses it, the way kvm-unit-tests' s3 test does: put a
 * real-mode resume stub in low memory and its address in the FACS firmware waking
 * vector, let the RTC alarm (every second, interrupt on) wake the machine through
 * PM1_EN.RTC_EN, and write \_S3_'s SLP_TYP with SLP_EN.  The guest must stop there; on
 * wake-up the boot CPU starts in real mode at the vector.  The stub checks that RAM was
 * kept (a marker written before sleeping) and that PM1 status shows WAK_STS and RTC_STS,
 * then reports through COM1 and isa-debug-exit itself: the 64-bit kit is gone by then.
 * Under Sen the board jumps to the vector (direct boot); under QEMU SeaBIOS does, seeing
 * the CMOS shutdown status 0xFE (tests/guest/run-guest.py runs it with SeaBIOS).
 *
 * With host_wake=1 on the command line no alarm is armed and RTC wake-ups stay off: the
 * guest sleeps until the host wakes it (QMP system_wakeup, the power button), which the
 * guest sees as WAK_STS | PWRBTN_STS (tests/functional/test_acpi_s3.py).
 */
#include "lib/guest.h"

#define PM1_PWRBTN       0x0100
#define PM1_RTC_EN       0x0400
#define PM1_WAK_STS      0x8000
#define PM1_CNT_SCI_EN   0x0001
#define PM1_CNT_SLP_EN   0x2000
#define STUB_ADDR        0x1000  /* where kvm-unit-tests puts it: SeaBIOS leaves it alone */
/* The stub's inputs: marker (4 bytes), PM1 status port, the PM1 status bits it wants.  Beside the stub: SeaBIOS's S3
 * resume path uses memory just below 0x1000. */
#define PARAM_ADDR       0x1400
#define RAM_MARKER       0x53334f4bu

/* Real mode, entered at CS = STUB_ADDR >> 4, IP = 0: data is addressed through CS. */
extern const char s3_stub_start[], s3_stub_end[];
__asm__(
    ".pushsection .rodata\n"
    ".code16\n"
    "s3_stub_start:\n"
    "    cli\n"
    "    mov %cs, %ax\n"
    "    mov %ax, %ds\n"
    "    xor %ax, %ax\n"
    "    mov %ax, %es\n"
    "    mov $(s3_msg_ram - s3_stub_start), %si\n"
    "    cmpl $0x53334f4b, %es:0x1400\n"
    "    jne 2f\n"
    "    mov %es:0x1404, %dx\n"
    "    in %dx, %ax\n"
    "    mov $(s3_msg_sts - s3_stub_start), %si\n"
    "    mov %es:0x1406, %bx\n"
    "    and %bx, %ax\n"
    "    cmp %bx, %ax\n"
    "    jne 2f\n"
    "    mov $(s3_msg_ok - s3_stub_start), %si\n"
    "    call 5f\n"
    "    mov $0x10, %al\n"          /* GUEST_EXIT_PASS */
    "    jmp 3f\n"
    "2:  call 5f\n"
    "    mov $0x11, %al\n"          /* GUEST_EXIT_FAIL */
    "3:  mov $0x501, %dx\n"          /* isa-debug-exit: default port, then 0xf4 */
    "    out %al, %dx\n"
    "    out %al, $0xf4\n"
    "4:  hlt\n"
    "    jmp 4b\n"
    /* Prints the NUL-terminated string at ds:si on COM1. */
    "5:  mov $0x3f8, %dx\n"
    "6:  lodsb\n"
    "    test %al, %al\n"
    "    jz 7f\n"
    "    out %al, %dx\n"
    "    jmp 6b\n"
    "7:  ret\n"
    "s3_msg_ram: .asciz \"FAIL: acpi-s3: RAM was not kept across S3\\n\"\n"
    "s3_msg_sts: .asciz \"FAIL: acpi-s3: PM1 status lacks WAK_STS or the wake source\\n\"\n"
    "s3_msg_ok: .asciz \"acpi-s3: resumed at the waking vector, RAM kept, WAK_STS and the "
    "wake source set\\nPASS\\n\"\n"
    "s3_stub_end:\n"
    ".code64\n"
    ".popsection\n");

/* SLP_TYPa of a \_Sx_ package in the DSDT: Name(_S3_, Package(n) { typ_a, ... }). */
static int find_sleep_type(const uint8_t *dsdt, const char *name)
{
    uint32_t len = *(const uint32_t *)(dsdt + 4);
    for (uint32_t i = 36; i + 8 < len; i++) {
        if (memcmp(dsdt + i, name, 4) || dsdt[i + 4] != 0x12) {
            continue;
        }
        const uint8_t *p = dsdt + i + 5;
        p += 1 + (p[0] >> 6); /* PkgLength */
        p++;                  /* NumElements */
        if (p[0] == 0x00 || p[0] == 0x01) {
            return p[0];
        }
        if (p[0] == 0x0a) {
            return p[1];
        }
    }
    return -1;
}

static uint8_t rtc_in(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static void rtc_out(uint8_t reg, uint8_t val)
{
    outb(0x70, reg);
    outb(0x71, val);
}

void guest_main(void)
{
    const uint8_t *fadt = find_acpi_table("FACP");
    GUEST_CHECK(fadt != NULL, "FADT found");
    uint8_t *facs = phys_ptr(*(const uint32_t *)(fadt + 36));
    const uint8_t *dsdt = phys_ptr(*(const uint32_t *)(fadt + 40));
    GUEST_CHECK(!memcmp(facs, "FACS", 4), "FACS at 0x%x", *(const uint32_t *)(fadt + 36));
    uint16_t pm1_evt = (uint16_t)*(const uint32_t *)(fadt + 56);
    uint16_t pm1_cnt = (uint16_t)*(const uint32_t *)(fadt + 64);
    int s3 = find_sleep_type(dsdt, "_S3_");
    GUEST_CHECK(s3 >= 0 && s3 < 8, "DSDT has \\_S3_ (SLP_TYP %d)", s3);

    size_t stub_len = (size_t)(s3_stub_end - s3_stub_start);
    GUEST_CHECK(STUB_ADDR + stub_len <= PARAM_ADDR, "resume stub fits (%u bytes)",
                (unsigned)stub_len);
    memcpy(phys_ptr(STUB_ADDR), s3_stub_start, stub_len);
    *(volatile uint32_t *)phys_ptr(PARAM_ADDR) = RAM_MARKER;
    *(volatile uint16_t *)phys_ptr(PARAM_ADDR + 4) = pm1_evt;
    uint64_t host_wake = 0;
    cmdline_get_uint("host_wake", &host_wake);
    *(volatile uint16_t *)phys_ptr(PARAM_ADDR + 6) =
        PM1_WAK_STS | (host_wake ? PM1_PWRBTN : PM1_RTC_EN);
    *(volatile uint32_t *)(facs + 12) = STUB_ADDR;
    guest_printf("acpi-s3: stub at 0x%x, PM1 at 0x%x/0x%x, SLP_TYP %d\n", STUB_ADDR,
                 pm1_evt, pm1_cnt, s3);

    outw(pm1_evt, 0xffff);              /* clear stale status */
    if (!host_wake) {
        outw(pm1_evt + 2, PM1_RTC_EN);
        /* The alarm on the next second boundary: every field "don't care". */
        while (!(rtc_in(0x0a) & 0x80)) {
        }
        while (rtc_in(0x0a) & 0x80) {
        }
        rtc_in(0x0c);
        rtc_out(0x01, 0xc0);
        rtc_out(0x03, 0xc0);
        rtc_out(0x05, 0xc0);
        rtc_out(0x0b, rtc_in(0x0b) | 0x20);
    }

    guest_printf("acpi-s3: entering S3\n");
    outw(pm1_cnt, (uint16_t)((inw(pm1_cnt) & PM1_CNT_SCI_EN) | (s3 << 10) | PM1_CNT_SLP_EN));
    /* A few seconds of emulated loop (a sleeping machine never gets past it); a host
     * wake-up may come much later, so then wait for ever. */
    for (volatile unsigned long i = 0; host_wake || i < 5000000; i++) {
    }
    guest_fail("still running after the S3 write");
}
