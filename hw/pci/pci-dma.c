/*
 * Device DMA and interrupt messages as they leave a PCI device: both pass the bus's IOMMU
 * hook (include/sen/pci.h, PCIIOMMUOps) when one is set, so an IOMMU model sees every
 * DMA (translate) and every MSI / MSI-X / IOAPIC message (remap_msi) before guest memory
 * or the accelerator does.
 */
#include <string.h>
#include "hw/pci/pci-internal.h"

void pci_bus_set_iommu(PCIBus *bus, const PCIIOMMUOps *ops, void *opaque)
{
    bus->iommu_ops = ops;
    bus->iommu_opaque = ops ? opaque : NULL;
}

bool pci_bus_has_iommu(const PCIBus *bus)
{
    return bus->iommu_ops != NULL;
}

uint16_t pci_requester_id(const PCIDevice *d)
{
    return d->devfn; /* bus 0 */
}

/* One contiguous guest-physical piece of [iova, iova+len): false on an IOMMU fault. */
static bool dma_piece(PCIDevice *d, uint64_t iova, uint64_t len, bool is_write,
                      uint64_t *gpa, uint64_t *piece)
{
    const PCIIOMMUOps *ops = d->bus ? d->bus->iommu_ops : NULL;

    if (!ops || !ops->translate) {
        *gpa = iova;
        *piece = len;
        return true;
    }
    if (!ops->translate(d->bus->iommu_opaque, pci_requester_id(d), iova, len, is_write, gpa,
                        piece)) {
        return false;
    }
    /* A piece of 0 would never finish; more than asked would copy past buf. */
    return *piece > 0 && *piece <= len;
}

static bool dma_rw(PCIDevice *d, uint64_t iova, void *buf, size_t len, bool is_write)
{
    uint8_t *p = buf;

    if (len == 0) {
        return true;
    }
    if (!d->config || !(pci_get_word(d->config + PCI_COMMAND) & PCI_COMMAND_MASTER)) {
        return false; /* bus mastering off: the device cannot start a transaction */
    }
    if (iova + len - 1 < iova) {
        return false; /* wraps the 64-bit space */
    }
    while (len) {
        uint64_t gpa, piece;
        if (!dma_piece(d, iova, len, is_write, &gpa, &piece)) {
            return false;
        }
        /* A piece may span adjacent RAM regions: the copy goes region by region. */
        bool ok = is_write ? guest_mem_write(d->m->mem, gpa, p, piece)
                           : guest_mem_read(d->m->mem, gpa, p, piece);
        if (!ok) {
            return false;
        }
        p += piece;
        iova += piece;
        len -= piece;
    }
    return true;
}

bool pci_dma_read(PCIDevice *d, uint64_t iova, void *buf, size_t len)
{
    return dma_rw(d, iova, buf, len, false);
}

bool pci_dma_write(PCIDevice *d, uint64_t iova, const void *buf, size_t len)
{
    /* dma_rw does not write through buf when is_write. */
    return dma_rw(d, iova, (void *)buf, len, true);
}

bool pci_bus_remap_msi(PCIBus *bus, uint16_t sid, uint64_t *addr, uint32_t *data)
{
    if (!bus || !bus->iommu_ops || !bus->iommu_ops->remap_msi) {
        return true;
    }
    return bus->iommu_ops->remap_msi(bus->iommu_opaque, sid, addr, data);
}

void pci_device_send_msi(PCIDevice *d, uint64_t addr, uint32_t data)
{
    if (!pci_bus_remap_msi(d->bus, pci_requester_id(d), &addr, &data)) {
        return; /* blocked: the IOMMU recorded the fault */
    }
    pci_send_msi(d->m, addr, data);
}
