/*
 * PCI for guest-kit images: type-1 config access (0xCF8/0xCFC), bus 0 enumeration, BAR
 * sizing and assignment, capability walking and MSI-X.  There is no firmware we can rely
 * on (Sen has none, qboot assigns BARs its own way), so pci_assign_bars() gives every
 * function on bus 0 fresh addresses from one allocator: MMIO from 0xe0000000, I/O from
 * 0xc000.  Only bus 0 and header type 0 are handled.
 */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "guest.h"

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VENDOR 0x09

#define PCI_MMIO_BASE 0xe0000000u
#define PCI_MMIO_END 0xfe000000u /* below the IOAPIC */
#define PCI_IO_BASE 0xc000u

typedef struct {
    uint64_t addr; /* 0 = not implemented */
    uint64_t size;
    bool io;
    bool is64;
} PciBar;

typedef struct {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint32_t class_rev; /* class code << 8 | revision */
    PciBar bar[6];
} PciDev;

uint32_t pci_cfg_read32(const PciDev *d, uint8_t off);
uint16_t pci_cfg_read16(const PciDev *d, uint8_t off);
uint8_t pci_cfg_read8(const PciDev *d, uint8_t off);
void pci_cfg_write32(const PciDev *d, uint8_t off, uint32_t v);
void pci_cfg_write16(const PciDev *d, uint8_t off, uint16_t v);
void pci_cfg_write8(const PciDev *d, uint8_t off, uint8_t v);

/* Scans bus 0 (all functions of multi-function devices) into devs; returns the count. */
unsigned pci_scan_bus0(PciDev *devs, unsigned max);
/* Sizes and (re)assigns the BARs of every function on bus 0, then enables decoding and
 * bus mastering on them.  Fills devs[i].bar; false if an allocator ran out. */
bool pci_assign_bars(PciDev *devs, unsigned n);
/* Offset of the first capability with this id at or after offset `from` in the list
 * (0 = the start), 0 if none.  Bounded, so a looping list cannot hang the guest. */
uint8_t pci_find_cap(const PciDev *d, uint8_t id, uint8_t after);

/* MSI-X: enables the function's table with every vector masked; returns the table size
 * (0 if the function has no MSI-X or its table BAR is not assigned). */
unsigned pci_msix_enable(PciDev *d);
/* Routes table entry `entry` to LAPIC vector `vector` on `apic_id` (fixed, edge) and
 * unmasks it. */
bool pci_msix_route(PciDev *d, unsigned entry, uint8_t vector, uint32_t apic_id);
void pci_msix_disable(PciDev *d);

/* Narrow MMIO accessors (guest.h has the 32-bit ones). */
static inline uint8_t mmio_read8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }

#endif
