/* PCI configuration access, BAR assignment, capabilities and MSI-X (see pci.h). */
#include "pci.h"

#define PCI_CONFIG_ADDR 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_SIZE 16

static void pci_select(const PciDev *d, uint8_t off)
{
    outl(PCI_CONFIG_ADDR, 0x80000000u | ((uint32_t)d->bus << 16) | ((uint32_t)d->dev << 11) |
                              ((uint32_t)d->fn << 8) | (off & 0xfc));
}

uint32_t pci_cfg_read32(const PciDev *d, uint8_t off)
{
    pci_select(d, off);
    return inl(PCI_CONFIG_DATA);
}

uint16_t pci_cfg_read16(const PciDev *d, uint8_t off)
{
    pci_select(d, off);
    return inw(PCI_CONFIG_DATA + (off & 2));
}

uint8_t pci_cfg_read8(const PciDev *d, uint8_t off)
{
    pci_select(d, off);
    return inb(PCI_CONFIG_DATA + (off & 3));
}

void pci_cfg_write32(const PciDev *d, uint8_t off, uint32_t v)
{
    pci_select(d, off);
    outl(PCI_CONFIG_DATA, v);
}

void pci_cfg_write16(const PciDev *d, uint8_t off, uint16_t v)
{
    pci_select(d, off);
    outw(PCI_CONFIG_DATA + (off & 2), v);
}

void pci_cfg_write8(const PciDev *d, uint8_t off, uint8_t v)
{
    pci_select(d, off);
    outb(PCI_CONFIG_DATA + (off & 3), v);
}

unsigned pci_scan_bus0(PciDev *devs, unsigned max)
{
    unsigned n = 0;
    for (uint8_t dev = 0; dev < 32; dev++) {
        for (uint8_t fn = 0; fn < 8; fn++) {
            PciDev d = { .bus = 0, .dev = dev, .fn = fn };
            uint32_t id = pci_cfg_read32(&d, PCI_VENDOR_ID);
            if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
                if (fn == 0) {
                    break; /* no function 0: no device */
                }
                continue;
            }
            d.vendor = id & 0xffff;
            d.device = id >> 16;
            d.class_rev = pci_cfg_read32(&d, 0x08);
            if (n < max) {
                devs[n++] = d;
            }
            if (fn == 0 && !(pci_cfg_read8(&d, PCI_HEADER_TYPE) & 0x80)) {
                break; /* single-function device */
            }
        }
    }
    return n;
}

/* Sizes BAR i; returns how many BAR slots it occupies (2 for 64-bit), 1 if absent. */
static unsigned pci_size_bar(PciDev *d, unsigned i)
{
    uint8_t off = PCI_BAR0 + 4 * i;
    PciBar *b = &d->bar[i];
    uint32_t orig = pci_cfg_read32(d, off);
    pci_cfg_write32(d, off, 0xffffffffu);
    uint32_t lo = pci_cfg_read32(d, off);
    pci_cfg_write32(d, off, orig);
    *b = (PciBar){ 0 };
    if (lo == 0 || lo == 0xffffffffu) {
        return 1;
    }
    if (lo & 1) {
        b->io = true;
        b->size = (uint16_t)(~(lo & ~3u) + 1);
        return 1;
    }
    uint64_t mask = lo & ~0xfu;
    if (((lo >> 1) & 3) == 2 && i < 5) {
        uint32_t orig_hi = pci_cfg_read32(d, off + 4);
        pci_cfg_write32(d, off + 4, 0xffffffffu);
        uint32_t hi = pci_cfg_read32(d, off + 4);
        pci_cfg_write32(d, off + 4, orig_hi);
        mask |= (uint64_t)hi << 32;
        b->is64 = true;
    } else {
        mask |= 0xffffffff00000000ull;
    }
    b->size = ~mask + 1;
    return b->is64 ? 2 : 1;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

bool pci_assign_bars(PciDev *devs, unsigned n)
{
    uint64_t mmio = PCI_MMIO_BASE;
    uint32_t io = PCI_IO_BASE;
    for (unsigned k = 0; k < n; k++) {
        PciDev *d = &devs[k];
        if ((pci_cfg_read8(d, PCI_HEADER_TYPE) & 0x7f) != 0) {
            continue;
        }
        uint16_t cmd = pci_cfg_read16(d, PCI_COMMAND);
        /* No decoding while the BARs hold the all-ones sizing pattern. */
        pci_cfg_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
        for (unsigned i = 0; i < 6;) {
            unsigned slots = pci_size_bar(d, i);
            PciBar *b = &d->bar[i];
            uint8_t off = PCI_BAR0 + 4 * i;
            if (b->size && b->io) {
                uint32_t a = (uint32_t)align_up(io, b->size);
                if (a + b->size > 0x10000) {
                    guest_printf("pci %02x.%x: no I/O space for BAR%u (%lu bytes)\n", d->dev,
                                 d->fn, i, b->size);
                    return false;
                }
                b->addr = a;
                io = a + (uint32_t)b->size;
                pci_cfg_write32(d, off, a);
            } else if (b->size) {
                uint64_t a = align_up(mmio, b->size < 4096 ? 4096 : b->size);
                if (a + b->size > PCI_MMIO_END) {
                    guest_printf("pci %02x.%x: no MMIO space for BAR%u (%lu bytes)\n", d->dev,
                                 d->fn, i, b->size);
                    return false;
                }
                b->addr = a;
                mmio = a + b->size;
                pci_cfg_write32(d, off, (uint32_t)a);
                if (b->is64) {
                    pci_cfg_write32(d, off + 4, 0);
                }
            }
            i += slots;
        }
        pci_cfg_write16(d, PCI_COMMAND,
                        cmd | PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    }
    return true;
}

uint8_t pci_find_cap(const PciDev *d, uint8_t id, uint8_t after)
{
    if (!(pci_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
        return 0;
    }
    uint8_t p = after ? pci_cfg_read8(d, after + 1) : pci_cfg_read8(d, PCI_CAP_PTR);
    /* 48 capabilities fill the 192 bytes after the header: more means a loop. */
    for (unsigned n = 0; n < 48 && p >= 0x40; n++) {
        p &= 0xfc;
        if (pci_cfg_read8(d, p) == id) {
            return p;
        }
        p = pci_cfg_read8(d, p + 1);
    }
    return 0;
}

static uintptr_t pci_msix_table(PciDev *d, uint8_t cap)
{
    uint32_t t = pci_cfg_read32(d, cap + 4);
    PciBar *b = &d->bar[t & 7];
    if ((t & 7) > 5 || !b->addr || b->io) {
        return 0;
    }
    return (uintptr_t)(b->addr + (t & ~7u));
}

unsigned pci_msix_enable(PciDev *d)
{
    uint8_t cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
    if (!cap) {
        return 0;
    }
    uintptr_t table = pci_msix_table(d, cap);
    if (!table) {
        return 0;
    }
    uint16_t ctrl = pci_cfg_read16(d, cap + 2);
    unsigned size = (ctrl & 0x7ff) + 1;
    pci_cfg_write16(d, cap + 2, ctrl | MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    for (unsigned i = 0; i < size; i++) {
        mmio_write32(table + i * MSIX_ENTRY_SIZE + 12, 1);
    }
    pci_cfg_write16(d, cap + 2, (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL);
    /* MSI-X replaces INTx: keep the pin quiet. */
    pci_cfg_write16(d, PCI_COMMAND, pci_cfg_read16(d, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE);
    return size;
}

bool pci_msix_route(PciDev *d, unsigned entry, uint8_t vector, uint32_t apic_id)
{
    uint8_t cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
    if (!cap) {
        return false;
    }
    uintptr_t table = pci_msix_table(d, cap);
    if (!table || entry > (pci_cfg_read16(d, cap + 2) & 0x7ffu)) {
        return false;
    }
    uintptr_t e = table + entry * MSIX_ENTRY_SIZE;
    mmio_write32(e + 0, 0xfee00000u | (apic_id << 12));
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vector);
    mmio_write32(e + 12, 0);
    return true;
}

void pci_msix_disable(PciDev *d)
{
    uint8_t cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
    if (cap) {
        pci_cfg_write16(d, cap + 2, pci_cfg_read16(d, cap + 2) & ~MSIX_CTRL_ENABLE);
    }
}
