/*
 * The DMA Remapping Reporting table (Intel VT-d specification, chapter 8) for one
 * remapping unit, laid out as QEMU's q35 gives it: the header's host address width and
 * flags, then one DRHD that covers every PCI device (INCLUDE_PCI_ALL) and names the IOAPIC
 * in a device scope, so that the guest knows which source-id its interrupts carry.
 */
#include "hw/acpi/acpi-build.h"

#define DMAR_REVISION            1
#define DMAR_F_INTR_REMAP        (1u << 0)
#define DMAR_F_X2APIC_OPT_OUT    (1u << 1)
#define DMAR_TYPE_DRHD           0
#define DRHD_SIZE                16
#define DRHD_F_INCLUDE_PCI_ALL   1u
#define SCOPE_TYPE_IOAPIC        3
#define SCOPE_IOAPIC_SIZE        8      /* header 6 + one (device, function) path */

uint32_t acpi_build_dmar(AcpiTables *t, const AcpiBuildConfig *cfg)
{
    const AcpiDmarConfig *d = cfg->dmar;
    uint32_t start = acpi_table_begin(t, "DMAR", DMAR_REVISION);
    unsigned flags = (d->intr_remap ? DMAR_F_INTR_REMAP : 0) |
                     (d->x2apic_opt_out ? DMAR_F_X2APIC_OPT_OUT : 0);
    acpi_put(t, d->host_aw - 1, 1);          /* host address width, N - 1 */
    acpi_put(t, flags, 1);
    acpi_put(t, 0, 8);                       /* reserved (10 bytes) */
    acpi_put(t, 0, 2);

    acpi_put(t, DMAR_TYPE_DRHD, 2);
    acpi_put(t, DRHD_SIZE + SCOPE_IOAPIC_SIZE, 2);
    acpi_put(t, DRHD_F_INCLUDE_PCI_ALL, 1);
    acpi_put(t, 0, 1);                       /* size: one 4 KiB register page */
    acpi_put(t, 0, 2);                       /* PCI segment */
    acpi_put(t, d->base, 8);

    acpi_put(t, SCOPE_TYPE_IOAPIC, 1);
    acpi_put(t, SCOPE_IOAPIC_SIZE, 1);
    acpi_put(t, 0, 2);                       /* reserved */
    acpi_put(t, cfg->ioapic_id, 1);          /* enumeration id: the MADT's IOAPIC id */
    acpi_put(t, d->ioapic_sid >> 8, 1);      /* start bus */
    acpi_put(t, (d->ioapic_sid >> 3) & 0x1f, 1);
    acpi_put(t, d->ioapic_sid & 7, 1);
    acpi_table_end(t, start);
    return start;
}
