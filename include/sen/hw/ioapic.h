/*
 * The userspace IOAPIC (hw/intc/ioapic.c) of -machine kernel-irqchip=split: the LAPICs
 * stay in KVM, the IOAPIC is a Sen device at 0xfec00000 that turns pin changes into MSI
 * messages.  Every message passes the PCI bus's IOMMU hook (pci_bus_remap_msi with
 * PCI_IOAPIC_SOURCE_ID) before it reaches the accelerator, so an IOMMU can remap it.
 *
 * The board creates it (device "ioapic") and points m->ioapic at it; irq_set_level()
 * then drives its pins instead of the accelerator's, and the accelerator reports guest
 * EOIs of level-triggered vectors with ioapic_eoi().  VM lock held for all of these.
 */
#ifndef SEN_HW_IOAPIC_H
#define SEN_HW_IOAPIC_H

#include <stdint.h>
#include "sen/machine.h"

#define IOAPIC_BASE      0xfec00000ULL
#define IOAPIC_NUM_PINS  24

typedef struct IOAPICState IOAPICState;

/* Pin level from a device (GSI = pin); pins >= IOAPIC_NUM_PINS are ignored. */
void ioapic_set_irq(IOAPICState *s, unsigned pin, int level);
/* A vCPU's LAPIC EOI'd vector: ends remote IRR of the level pins that sent it and
 * delivers again those still asserted. */
void ioapic_eoi(IOAPICState *s, uint8_t vector);

#endif
