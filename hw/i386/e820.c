/*
 * The PC's e820 memory map, as QEMU's pc board with its firmware reports it: conventional
 * memory up to the EBDA, the BIOS area (0xe0000-0xfffff: ACPI tables, MP table) reserved,
 * RAM from 1 MiB to the PCI hole, the PCI ECAM window (when it exists: RAM ends below it)
 * reserved as Linux wants for the MCFG table, the page KVM uses for its TSS and identity
 * map reserved, and RAM above 4 GiB.  All three boot
 * kinds hand the guest this one table.
 */
#include "hw/i386/boot.h"
#include "sen/hw/pc.h"
#include "sen/pci.h"

#define EBDA_START      0x9fc00ULL
#define LOWMEM_END      0xa0000ULL
#define BIOS_START      0xe0000ULL /* ACPI tables (direct boot), then BIOS and MP table */
#define HIGHMEM_START   0x100000ULL
#define KVM_PAGES_START 0xfeffc000ULL /* KVM's identity map + TSS (3 pages), as QEMU */
#define KVM_PAGES_SIZE  0x4000ULL

/* The i440fx split: above PC_LOWMEM_LIMIT the 32-bit PCI hole starts at 3 GiB. */
void pc_ram_split(uint64_t ram_size, uint64_t *below_4g, uint64_t *above_4g)
{
    uint64_t low = ram_size >= PC_LOWMEM_LIMIT ? PC_PCI_HOLE_START : ram_size;
    *below_4g = low;
    *above_4g = ram_size - low;
}

static unsigned add(E820Entry *out, unsigned n, uint64_t addr, uint64_t size, uint32_t type)
{
    if (size == 0) {
        return n;
    }
    out[n] = (E820Entry){ .addr = addr, .size = size, .type = type };
    return n + 1;
}

unsigned e820_build(uint64_t below_4g, uint64_t above_4g, E820Entry *out)
{
    unsigned n = 0;

    n = add(out, n, 0, MIN(below_4g, EBDA_START), E820_TYPE_RAM);
    n = add(out, n, EBDA_START, LOWMEM_END - EBDA_START, E820_TYPE_RESERVED);
    n = add(out, n, BIOS_START, HIGHMEM_START - BIOS_START, E820_TYPE_RESERVED);
    if (below_4g > HIGHMEM_START) {
        n = add(out, n, HIGHMEM_START, below_4g - HIGHMEM_START, E820_TYPE_RAM);
    }
    if (below_4g <= PCI_ECAM_BASE) {
        n = add(out, n, PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_TYPE_RESERVED);
    }
    n = add(out, n, KVM_PAGES_START, KVM_PAGES_SIZE, E820_TYPE_RESERVED);
    n = add(out, n, PC_4G, above_4g, E820_TYPE_RAM);
    return n;
}
