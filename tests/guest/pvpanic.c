/*
 * pvpanic: reads the supported events (panicked | crash loaded), reports a crash kernel
 * loaded (the VM runs on), then a panic.  What happens after the panic is the VMM's
 * -action panic=: the guest passes only if it still runs (panic=none); under pause or
 * shutdown tests/functional/test_pvpanic.py watches the run state and events instead.
 */
#include "lib/guest.h"

#define PVPANIC_PORT 0x505

void guest_main(void)
{
    uint8_t events = inb(PVPANIC_PORT);

    guest_printf("pvpanic: events 0x%x\n", events);
    GUEST_CHECK(events == 3, "pvpanic reports panicked and crash loaded (0x%x)", events);
    outb(PVPANIC_PORT, 2);
    guest_printf("pvpanic: crash loaded reported\n");
    outb(PVPANIC_PORT, 1);
    guest_printf("pvpanic: still running after the panic\n");
    guest_pass();
}
