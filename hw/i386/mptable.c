/*
 * Intel MultiProcessor Specification 1.4 table, for guests that find CPUs and the IOAPIC
 * without ACPI (Linux with X86_MPPARSE, small test kernels).
 *
 * Layout at base: the 16-byte floating pointer, then the configuration table: header,
 * one processor entry per vCPU (APIC id = index, BSP = 0), the ISA bus, the IOAPIC
 * (id = nr_cpus), I/O interrupt entries for ISA IRQs 0-15 and the two local interrupts.
 * ISA IRQ 0 goes to IOAPIC pin 2 and source IRQ 2 (the cascade) is left out, as SeaBIOS
 * does for QEMU's pc, so the guest sees the same routing as under QEMU.
 * With PCI (mptable_build_pci) a PCI bus entry follows the ISA one and each device's INTx
 * pin gets an I/O interrupt entry (source = slot << 2 | pin - 1) to its IOAPIC pin.
 */
#include <string.h>
#include "hw/i386/boot.h"

#define MPF_SIZE        16
#define MPC_HEADER_SIZE 44
#define MPC_CPU_SIZE    20
#define MPC_ENTRY_SIZE  8

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT, MP_NMI, MP_SMI, MP_EXTINT };

#define MP_SPEC_REV      4    /* 1.4 */
#define LAPIC_VERSION    0x14
#define IOAPIC_VERSION   0x11 /* what KVM's in-kernel IOAPIC reports */
#define CPU_ENABLED      0x01
#define CPU_BOOTPROCESSOR 0x02
#define CPU_SIGNATURE    0x600          /* family 6: only printed by guests */
#define CPU_FEATURES     ((1u << 0) | (1u << 9)) /* FPU, APIC */
/* Linux looks a PCI device's INTx up by comparing its PCI bus number with the MP bus id
 * (IO_APIC_get_PCI_irq_vector), so PCI bus 0 must be MP bus 0 and ISA comes after it, as
 * in SeaBIOS's table.  Without PCI, ISA is bus 0. */
#define PCI_BUS_ID       0
#define IRQ_ACTIVE_HIGH_LEVEL 0x0d /* polarity 01 (high), trigger 11 (level) */
#define ALL_LAPICS       0xff

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

static uint8_t *put_intsrc(uint8_t *p, uint8_t entry, uint8_t irqtype, uint8_t srcbus,
                           uint8_t srcirq, uint8_t dst_id, uint8_t dst_pin)
{
    p[0] = entry;
    p[1] = irqtype;
    boot_st16(p + 2, 0); /* polarity and trigger conform to the bus */
    p[4] = srcbus;
    p[5] = srcirq;
    p[6] = dst_id;
    p[7] = dst_pin;
    return p + MPC_ENTRY_SIZE;
}

static GBytes *build(unsigned nr_cpus, uint32_t base, bool pci, const MptablePciIrq *irqs,
                     unsigned nr_irqs, Error **errp)
{
    if (nr_cpus == 0 || nr_cpus > MPTABLE_MAX_CPUS) {
        error_setg(errp, "MP table: %u CPUs: must be 1 to %u", nr_cpus, MPTABLE_MAX_CPUS);
        return NULL;
    }
    if (nr_irqs > 256) {
        error_setg(errp, "MP table: %u PCI interrupt pins: at most 256", nr_irqs);
        return NULL;
    }
    const unsigned nr_buses = pci ? 2 : 1;
    const unsigned nr_intsrc = 15 + nr_irqs; /* ISA IRQs 0-15 except the cascade, PCI */
    const size_t table_len = MPC_HEADER_SIZE + nr_cpus * MPC_CPU_SIZE +
                             MPC_ENTRY_SIZE * (nr_buses + 1 + nr_intsrc + 2);
    const size_t total = MPF_SIZE + table_len;
    uint8_t *buf = g_malloc0(total);
    uint8_t *mpf = buf, *mpc = buf + MPF_SIZE;
    uint8_t ioapic_id = (uint8_t)nr_cpus;

    memcpy(mpf, "_MP_", 4);
    boot_st32(mpf + 4, base + MPF_SIZE);
    mpf[8] = 1; /* length in 16-byte units */
    mpf[9] = MP_SPEC_REV;
    /* feature bytes 1-5 stay 0: a configuration table is present, virtual wire mode */

    memcpy(mpc, "PCMP", 4);
    boot_st16(mpc + 4, (uint16_t)table_len);
    mpc[6] = MP_SPEC_REV;
    memcpy(mpc + 8, "SEN     ", 8);
    memcpy(mpc + 16, "SEN PC      ", 12);
    boot_st16(mpc + 34, (uint16_t)(nr_cpus + nr_buses + 1 + nr_intsrc + 2));
    boot_st32(mpc + 36, MPTABLE_LAPIC_ADDR);

    uint8_t *p = mpc + MPC_HEADER_SIZE;
    for (unsigned i = 0; i < nr_cpus; i++) {
        p[0] = MP_PROCESSOR;
        p[1] = (uint8_t)i;
        p[2] = LAPIC_VERSION;
        p[3] = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0);
        boot_st32(p + 4, CPU_SIGNATURE);
        boot_st32(p + 8, CPU_FEATURES);
        p += MPC_CPU_SIZE;
    }

    const uint8_t isa_bus = pci ? PCI_BUS_ID + 1 : 0;
    if (pci) {
        p[0] = MP_BUS;
        p[1] = PCI_BUS_ID;
        memcpy(p + 2, "PCI   ", 6);
        p += MPC_ENTRY_SIZE;
    }
    p[0] = MP_BUS;
    p[1] = isa_bus;
    memcpy(p + 2, "ISA   ", 6);
    p += MPC_ENTRY_SIZE;

    p[0] = MP_IOAPIC;
    p[1] = ioapic_id;
    p[2] = IOAPIC_VERSION;
    p[3] = 1; /* enabled */
    boot_st32(p + 4, MPTABLE_IOAPIC_ADDR);
    p += MPC_ENTRY_SIZE;

    for (unsigned irq = 0; irq < 16; irq++) {
        if (irq == 2) {
            continue;
        }
        p = put_intsrc(p, MP_INTSRC, MP_INT, isa_bus, irq, ioapic_id, irq == 0 ? 2 : irq);
    }
    for (unsigned i = 0; i < nr_irqs; i++) {
        uint8_t src = (uint8_t)(((irqs[i].devfn >> 3) << 2) | ((irqs[i].pin - 1) & 3));
        p = put_intsrc(p, MP_INTSRC, MP_INT, PCI_BUS_ID, src, ioapic_id, irqs[i].gsi);
        boot_st16(p - MPC_ENTRY_SIZE + 2, IRQ_ACTIVE_HIGH_LEVEL);
    }
    p = put_intsrc(p, MP_LINTSRC, MP_EXTINT, isa_bus, 0, 0, 0);       /* 8259 -> BSP LINT0 */
    p = put_intsrc(p, MP_LINTSRC, MP_NMI, isa_bus, 0, ALL_LAPICS, 1); /* NMI -> every LINT1 */
    g_assert(p == buf + total);

    mpc[7] = checksum(mpc, table_len);
    mpf[10] = checksum(mpf, MPF_SIZE);
    return g_bytes_new_take(buf, total);
}

GBytes *mptable_build(unsigned nr_cpus, uint32_t base, Error **errp)
{
    return build(nr_cpus, base, false, NULL, 0, errp);
}

GBytes *mptable_build_pci(unsigned nr_cpus, uint32_t base, const MptablePciIrq *irqs,
                          unsigned nr_irqs, Error **errp)
{
    return build(nr_cpus, base, true, irqs, nr_irqs, errp);
}
