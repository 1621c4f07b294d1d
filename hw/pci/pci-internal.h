/* Private to hw/pci: the bus object and the MSI/MSI-X hooks pci.c calls. */
#ifndef SEN_HW_PCI_INTERNAL_H
#define SEN_HW_PCI_INTERNAL_H

#include "accel/accel.h"
#include "sen/log.h"
#include "sen/pci.h"

struct PCIBus {
    char *name;
    Machine *m;
    PCIDevice *devs[256];
    unsigned pirq_count[4];  /* asserted INTx pins per GSI PCI_INTX_GSI_BASE + i */
    const PCIIOMMUOps *iommu_ops; /* pci_bus_set_iommu, NULL = none */
    void *iommu_opaque;
    RateLimit rl;
};

PCIBus *pci_bus_new(Machine *m, const char *name);
void pci_bus_free(PCIBus *bus);
/* Places d on bus at devfn (-1: first free slot, function 0) and sets up config space. */
bool pci_device_attach(PCIDevice *d, Machine *m, PCIBus *bus, int devfn, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Log a guest error for d through the bus's rate limit. */
#define pci_guest_error(d, fmt, ...) \
    log_guest_error(&(d)->bus->rl, "%s: " fmt, (d)->qdev.cls->name, ##__VA_ARGS__)

/* pci-rom.c: romfile=/rombar= after attach (config space exists); the ROM BAR's decoded
 * address (PCI_BAR_UNMAPPED when off); the image freed at unrealize. */
bool pci_rom_load(PCIDevice *d, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
uint64_t pci_rom_decoded_address(const PCIDevice *d);
void pci_rom_free(PCIDevice *d);

/* msix.c: BAR accesses inside the table/PBA (true = handled). */
bool msix_bar_read(PCIDevice *d, int bar, uint64_t off, unsigned size, uint64_t *val);
bool msix_bar_write(PCIDevice *d, int bar, uint64_t off, unsigned size, uint64_t val);
/* After a config write that touched [addr, addr+len). */
void msix_config_written(PCIDevice *d, uint32_t addr, unsigned len);
void msix_reset(PCIDevice *d);
void msix_free(PCIDevice *d);

/* Migration: MSI-X table and PBA (msix_vmsd over MSIXState); before saving, fold
 * signals waiting in detached irqfds into the PBA; after loading, re-route vectors. */
extern const VMStateDesc msix_vmsd;
void msix_pre_save(PCIDevice *d);
void msix_post_load(PCIDevice *d);

/* msi.c */
void msi_config_written(PCIDevice *d, uint32_t addr, unsigned len);
void msi_reset(PCIDevice *d);
void msi_free(PCIDevice *d);

static inline bool pci_ranges_overlap(uint32_t a, unsigned alen, uint32_t b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

#endif
