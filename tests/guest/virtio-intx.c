/*
 * virtio INTx fallback, on virtio-rng with MSI-X off: a completion must raise the
 * function's INTx line as a level interrupt on some IOAPIC pin (which one is the board's
 * business, so every candidate pin is routed to its own vector and the handler records
 * which fired), ISR bit 0 must be set in the handler, and reading ISR must lower the line:
 * once the handler has run, the interrupts stop (no storm) until the next completion.
 * A stray re-delivery with ISR 0 is tolerated (QEMU under KVM gives one: the EOI can race
 * the deassert), a stream of them is not.  The interrupt-line register is only printed:
 * qboot's value (11) does not even match the pin QEMU uses (10), and Sen has no firmware.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define VEC_BASE 0x60
#define IOAPIC_LEVEL (1u << 15)

/* Not the PIT (0, 2), COM1 (4), RTC (8) or the i8042 (1, 12). */
static const uint8_t candidates[] = { 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23 };

static VirtioDev vd;
static volatile uint32_t irqs;
static volatile int pin_seen = -1;
static volatile uint8_t isr_seen;
static volatile bool other_pin;
static volatile uint32_t per_pin[24];
static volatile uint8_t isr_log[8];

static void intx_irq(IntrFrame *f)
{
    int pin = (int)f->vector - VEC_BASE;
    per_pin[pin]++;
    if (pin_seen < 0) {
        pin_seen = pin;
    } else if (pin != pin_seen) {
        other_pin = true;
    }
    uint8_t isr = virtio_read_isr(&vd); /* lowers the line */
    isr_seen |= isr;
    if (irqs < 8) {
        isr_log[irqs] = isr;
    }
    if (++irqs > 1000) {
        ioapic_mask(pin); /* the line never went down: stop the storm, fail later */
    }
    lapic_eoi();
}

static bool rng_request(uint8_t *buf)
{
    VirtioBuf b = { buf, 32, true };
    int head = virtq_add(&vd.vq[0], &b, 1);
    virtq_kick(&vd.vq[0]);
    uint32_t id, len;
    return head >= 0 && virtq_wait(&vd.vq[0], &id, &len, 200000) && len > 0;
}

/* Interrupts on until the count reaches n (bounded). */
static void wait_for(uint32_t n)
{
    for (unsigned i = 0; i < 100000 && irqs < n; i++) {
        sti();
        guest_io_delay();
    }
    cli();
}

/* Interrupts on for a while, so stray or repeated interrupts have time to arrive. */
static void quiet(void)
{
    for (unsigned i = 0; i < 2000; i++) {
        sti();
        guest_io_delay();
    }
    cli();
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_RNG, 0, &vd), "virtio-rng found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    vd.intx = true;
    GUEST_CHECK(virtio_init(&vd, 0) && virtio_setup_queue(&vd, 0, 8, 0),
                "initialised without MSI-X");
    uint8_t line = pci_cfg_read8(&vd.pci, 0x3c), ipin = pci_cfg_read8(&vd.pci, 0x3d);
    guest_printf("interrupt pin %u, line %u\n", ipin, line);
    GUEST_CHECK(ipin >= 1 && ipin <= 4, "the function has an INTx pin (INT%c)", 'A' + ipin - 1);

    pic_disable();
    lapic_enable();
    unsigned pins = ioapic_max_pins();
    for (unsigned i = 0; i < sizeof(candidates); i++) {
        if (candidates[i] < pins) {
            idt_set_handler(VEC_BASE + candidates[i], intx_irq);
            ioapic_write(0x11 + 2 * candidates[i], lapic_id() << 24);
            ioapic_write(0x10 + 2 * candidates[i], IOAPIC_LEVEL | (VEC_BASE + candidates[i]));
        }
    }
    virtio_driver_ok(&vd);
    uint8_t *buf = guest_alloc(64, 64, false);

    GUEST_CHECK(rng_request(buf), "first request completed");
    wait_for(1);
    quiet();
    uint32_t first = irqs;
    guest_printf("after the first request: %u interrupts, first on pin %d, ISR %x %x\n", irqs,
                 pin_seen, isr_log[0], isr_log[1]);
    for (unsigned p = 0; p < 24; p++) {
        if (per_pin[p]) {
            guest_printf("  pin %u: %u\n", p, per_pin[p]);
        }
    }
    GUEST_CHECK(first >= 1 && pin_seen >= 0, "INTx arrived on IOAPIC pin %d", pin_seen);
    GUEST_CHECK(isr_log[0] & 1, "ISR showed a queue interrupt (0x%x)", isr_log[0]);
    quiet();
    GUEST_CHECK(first <= 2 && irqs == first && (first == 1 || isr_log[1] == 0),
                "reading ISR lowered the line: %u interrupt(s), then quiet", first);
    uint32_t redir = ioapic_read(0x10 + 2 * pin_seen);
    GUEST_CHECK(!(redir & (1u << 14)), "remote IRR clear after the EOI (0x%x)", redir);

    isr_seen = 0;
    GUEST_CHECK(rng_request(buf), "second request completed");
    wait_for(first + 1);
    quiet();
    uint32_t second = irqs - first;
    GUEST_CHECK(second >= 1 && second <= 2 && !other_pin && (isr_seen & 1),
                "second completion: %u more interrupt(s) on the same pin", second);
    for (unsigned i = 0; i < sizeof(candidates); i++) {
        if (candidates[i] < pins) {
            ioapic_mask(candidates[i]);
        }
    }
    guest_printf("virtio-intx ok\n");
    guest_pass();
}
