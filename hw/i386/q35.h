/*
 * What -M q35 changes in the PC board (hw/i386/pc.c builds both): the RAM split around
 * the MMCONFIG window, and the PCI set-up firmware would do, for a direct kernel boot.
 */
#ifndef SEN_HW_I386_Q35_H
#define SEN_HW_I386_Q35_H

#include <stdint.h>
#include "sen/machine.h"

/* As QEMU's q35: RAM below 4 GiB stops at 2 GiB when the guest has 2.75 GiB or more,
 * else all of it is below 4 GiB (the window at 0xb0000000 stays clear). */
void q35_ram_split(uint64_t ram_size, uint64_t *below_4g, uint64_t *above_4g);

/* Start of the 32-bit window q35_pci_assign_resources places memory BARs in. */
#define Q35_PCI_MMIO_BASE  0xc0000000ULL
#define Q35_PCI_MMIO_END   0xfec00000ULL   /* the IOAPIC and LAPIC pages follow */
#define Q35_PCI_IO_BASE    0xc000
#define Q35_PCI_IO_END     0x10000

/*
 * What SeaBIOS's PCI set-up does, for a direct kernel boot where no firmware runs: every
 * BAR of every device on pci.0 gets an address (memory BARs in the 32-bit window, largest
 * first, naturally aligned; I/O BARs from 0xc000), I/O and memory decoding are enabled
 * and the interrupt line register holds the IOAPIC pin the device's INTx reaches.  A BAR
 * that does not fit is left unassigned.  Called after every device reset (VM lock held).
 */
void q35_pci_assign_resources(Machine *m);

#endif
