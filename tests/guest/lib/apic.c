/* Local APIC, IOAPIC and CMOS helpers. */
#include "guest.h"

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_ENABLE (1u << 11)

void lapic_enable(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE) || (base & 0xfffff000) != LAPIC_BASE) {
        wrmsr(MSR_APIC_BASE, (base & 0xfff) | APIC_BASE_ENABLE | LAPIC_BASE);
    }
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, 0x100 | LAPIC_SPURIOUS_VECTOR);
}

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

bool lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_lo)
{
    lapic_write(LAPIC_ICR_HI, dest_apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr_lo);
    for (unsigned i = 0; i < 10000; i++) {
        if (!(lapic_read(LAPIC_ICR_LO) & ICR_PENDING)) {
            return true;
        }
        guest_io_delay();
    }
    return false;
}

uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(IOAPIC_BASE, reg);
    return mmio_read32(IOAPIC_BASE + 0x10);
}

void ioapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

unsigned ioapic_max_pins(void)
{
    return ((ioapic_read(1) >> 16) & 0xff) + 1;
}

void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest_apic_id)
{
    ioapic_write(0x11 + 2 * pin, dest_apic_id << 24);
    ioapic_write(0x10 + 2 * pin, vector);
}

void ioapic_mask(unsigned pin)
{
    ioapic_write(0x10 + 2 * pin, 1u << 16);
}

/* Bit 7 of the index port disables NMI; keep it set while we touch NVRAM. */
uint8_t cmos_read(uint8_t reg)
{
    outb(0x70, 0x80 | reg);
    return inb(0x71);
}

void cmos_write(uint8_t reg, uint8_t v)
{
    outb(0x70, 0x80 | reg);
    outb(0x71, v);
}
