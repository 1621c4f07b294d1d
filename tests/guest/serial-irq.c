/*
 * COM1 interrupt through the IOAPIC: pin 4 -> vector, IER THRE + MCR OUT2.  The handler
 * records IIR, which must say "THR empty"; reading it clears that interrupt.  A second
 * round sends a byte, so the interrupt must rise again once the byte has left.
 */
#include "lib/guest.h"

#define COM1 0x3f8
#define SERIAL_VECTOR 0x44
#define COM1_PIN 4
#define IIR_NO_INT 0x01
#define IIR_THRE 0x02

static volatile uint32_t irqs;
static volatile uint8_t iir_seen[4];

static void serial_irq(IntrFrame *f)
{
    (void)f;
    uint8_t iir = inb(COM1 + 2);
    if (irqs < 4) {
        iir_seen[irqs] = iir;
    }
    irqs++;
    lapic_eoi();
}

static bool wait_irqs(uint32_t n)
{
    for (unsigned i = 0; i < 200000 && irqs < n; i++) {
        sti();
        guest_io_delay();
    }
    cli();
    return irqs >= n;
}

void guest_main(void)
{
    pic_disable();
    lapic_enable();
    guest_printf("ioapic: id %u, %u pins\n", ioapic_read(0) >> 24, ioapic_max_pins());
    GUEST_CHECK(ioapic_max_pins() > COM1_PIN, "ioapic has pin %u", COM1_PIN);
    idt_set_handler(SERIAL_VECTOR, serial_irq);
    ioapic_route(COM1_PIN, SERIAL_VECTOR, lapic_id());
    uint32_t lo = ioapic_read(0x10 + 2 * COM1_PIN);
    GUEST_CHECK((lo & 0x1ffff) == SERIAL_VECTOR, "redirection entry reads back (0x%x)", lo);

    /* Nothing is printed while THRE interrupts are on: output would raise more. */
    uint8_t iir_idle = inb(COM1 + 2);
    outb(COM1 + 4, 0x0b); /* DTR | RTS | OUT2 */
    outb(COM1 + 1, 0x02); /* IER: THR empty */
    bool first = wait_irqs(1);
    uint8_t iir_after = inb(COM1 + 2);
    uint32_t n_first = irqs;
    outb(COM1, '.');      /* THR full, then empty again: a new THRE interrupt */
    bool second = wait_irqs(n_first + 1);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 4, 0x03);
    ioapic_mask(COM1_PIN);

    guest_printf("\nIIR before 0x%x, in handler 0x%x, after 0x%x; %u interrupts\n",
                 iir_idle, iir_seen[0], iir_after, irqs);
    GUEST_CHECK(iir_idle & IIR_NO_INT, "no interrupt pending before IER was set");
    GUEST_CHECK(first, "THRE interrupt arrived on vector 0x%x", SERIAL_VECTOR);
    GUEST_CHECK((iir_seen[0] & 0x0f) == IIR_THRE, "IIR in the handler shows THRE (0x%x)",
                iir_seen[0]);
    GUEST_CHECK(iir_after & IIR_NO_INT, "reading IIR cleared the THRE interrupt");
    GUEST_CHECK(second, "a transmitted byte raised THRE again");
    GUEST_CHECK((iir_seen[1] & 0x0f) == IIR_THRE, "second IIR shows THRE (0x%x)", iir_seen[1]);
    guest_printf("serial irq ok\n");
    guest_pass();
}
