/*
 * System reset through the i8042.  The first boot leaves a marker in CMOS NVRAM (which a
 * reset keeps) and dirties an initialised variable; the second boot must find the marker
 * and a freshly loaded image.
 */
#include "lib/guest.h"

/* Not used by QEMU's or SeaBIOS's CMOS layout; see docs/guest-kit.md. */
#define CMOS_MARKER_REG 0x4f
#define MARKER 0xa5

static volatile uint32_t image_word = 0x1234abcd;

void guest_main(void)
{
    uint8_t m = cmos_read(CMOS_MARKER_REG);
    if (m != MARKER) {
        guest_printf("reset: first boot (cmos[0x%x] = 0x%x), writing the marker\n",
                     CMOS_MARKER_REG, m);
        cmos_write(CMOS_MARKER_REG, MARKER);
        GUEST_CHECK(cmos_read(CMOS_MARKER_REG) == MARKER, "marker reads back");
        image_word = 0xdeadbeef;
        guest_printf("reset: pulsing the i8042 reset line\n");
        /* Wait for the controller's input buffer to drain, then command 0xfe. */
        for (unsigned i = 0; i < 10000 && (inb(0x64) & 2); i++) {
        }
        outb(0x64, 0xfe);
        guest_delay(100000);
        guest_fail("still running after the i8042 reset command");
    }
    guest_printf("reset: second boot, marker found\n");
    cmos_write(CMOS_MARKER_REG, 0);
    GUEST_CHECK(cmos_read(CMOS_MARKER_REG) == 0, "marker cleared");
    GUEST_CHECK(image_word == 0x1234abcd, "image reloaded on reset (0x%x)", image_word);
    guest_printf("reset ok\n");
    guest_pass();
}
