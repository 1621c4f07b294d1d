/*
 * PCI bus behaviour seen from the guest, on a modern virtio-rng function: absent
 * functions read all-ones; read-only IDs; byte/word/dword config reads agree; the
 * capability list is well formed and ends; a BAR sized with all-ones keeps its type bits;
 * turning memory decoding off cuts the BAR off; moving a BAR moves the device; MSI-X
 * table entries read back and the PBA is clear.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

/* device_feature word 1 through the common config: only the device answers with bit 0
 * (VERSION_1) set and not all-ones; unassigned space reads 0 or all-ones. */
static uint32_t feature_hi(uintptr_t common)
{
    mmio_write32(common + 0x00, 1);
    return mmio_read32(common + 0x04);
}

static bool is_device(uint32_t v)
{
    return v != 0xffffffffu && (v & 1);
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    for (unsigned i = 0; i < n; i++) {
        guest_printf("pci %02x.%x %04x:%04x class %06x\n", devs[i].dev, devs[i].fn,
                     devs[i].vendor, devs[i].device, devs[i].class_rev >> 8);
    }
    GUEST_CHECK(n >= 2 && devs[0].dev == 0 && devs[0].fn == 0 &&
                    (devs[0].class_rev >> 8) == 0x060000,
                "00.0 is a host bridge");
    uint8_t empty = 31;
    for (unsigned i = 0; i < n; i++) {
        if (devs[i].dev == empty) {
            empty--;
        }
    }
    PciDev absent = { .dev = empty };
    GUEST_CHECK(pci_cfg_read32(&absent, 0) == 0xffffffffu, "absent slot %u reads all-ones",
                empty);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs assigned");
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_RNG, 0, &vd), "virtio-rng at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    PciDev *d = &vd.pci;

    uint32_t id = pci_cfg_read32(d, 0);
    pci_cfg_write32(d, 0, 0x12345678);
    GUEST_CHECK(pci_cfg_read32(d, 0) == id, "vendor/device ids are read-only (0x%x)", id);
    uint32_t cls = pci_cfg_read32(d, 8);
    bool agree = pci_cfg_read16(d, 0) == (id & 0xffff) && pci_cfg_read16(d, 2) == id >> 16 &&
                 pci_cfg_read8(d, 1) == ((id >> 8) & 0xff) && pci_cfg_read8(d, 3) == id >> 24 &&
                 pci_cfg_read8(d, 0xb) == cls >> 24 && pci_cfg_read8(d, 0xa) == ((cls >> 16) & 0xff);
    GUEST_CHECK(agree, "byte, word and dword config reads agree");

    uint16_t status = pci_cfg_read16(d, PCI_STATUS);
    pci_cfg_write16(d, PCI_STATUS, 0xffff);
    GUEST_CHECK(pci_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST,
                "status keeps the capability bit after a write (0x%x)", status);

    unsigned caps = 0, vendor_caps = 0;
    bool sane = true, msix = false;
    uint8_t p = pci_cfg_read8(d, PCI_CAP_PTR);
    while (p && caps < 48) {
        sane &= p >= 0x40 && (p & 3) == 0;
        uint8_t cid = pci_cfg_read8(d, p);
        vendor_caps += cid == PCI_CAP_ID_VENDOR;
        msix |= cid == PCI_CAP_ID_MSIX;
        caps++;
        p = pci_cfg_read8(d, p + 1);
    }
    GUEST_CHECK(sane && p == 0 && msix && vendor_caps >= 4,
                "capability list: %u entries, %u virtio, MSI-X, terminated", caps, vendor_caps);

    /* BAR 4: the virtio register window (64-bit memory in both VMMs). */
    unsigned bar = 0;
    for (unsigned i = 0; i < 6; i++) {
        if (d->bar[i].addr && d->bar[i].addr <= vd.common &&
            vd.common < d->bar[i].addr + d->bar[i].size) {
            bar = i;
        }
    }
    uint8_t off = PCI_BAR0 + 4 * bar;
    uint32_t orig = pci_cfg_read32(d, off);
    uint16_t cmd = pci_cfg_read16(d, PCI_COMMAND);
    pci_cfg_write16(d, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
    pci_cfg_write32(d, off, 0xffffffffu);
    uint32_t sized = pci_cfg_read32(d, off);
    pci_cfg_write32(d, off, orig);
    uint64_t size = d->bar[bar].size;
    GUEST_CHECK((sized & 0xf) == (orig & 0xf) && (sized & ~0xfu) == (uint32_t)~(size - 1) &&
                    size >= 4096 && (size & (size - 1)) == 0,
                "BAR%u sizes as 0x%x (%lu bytes, type bits 0x%x kept)", bar, sized, size,
                orig & 0xf);
    uint32_t off_value = feature_hi(vd.common);
    pci_cfg_write16(d, PCI_COMMAND, cmd);
    uint32_t on_value = feature_hi(vd.common);
    GUEST_CHECK(!is_device(off_value) && is_device(on_value),
                "memory decoding off hides the BAR (0x%x), on shows it (0x%x)", off_value,
                on_value);

    uintptr_t old_common = vd.common;
    uintptr_t moved = PCI_MMIO_BASE + 0x08000000;
    uintptr_t new_common = moved + (old_common - d->bar[bar].addr);
    pci_cfg_write32(d, off, (uint32_t)moved | (orig & 0xf));
    uint32_t at_new = feature_hi(new_common), at_old = feature_hi(old_common);
    pci_cfg_write32(d, off, orig);
    uint32_t back = feature_hi(old_common);
    GUEST_CHECK(is_device(at_new) && !is_device(at_old) && is_device(back),
                "moving BAR%u to 0x%lx moves the device (new 0x%x, old 0x%x, back 0x%x)", bar,
                (unsigned long)moved, at_new, at_old, back);

    uint8_t cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
    uint32_t tbl = pci_cfg_read32(d, cap + 4), pba = pci_cfg_read32(d, cap + 8);
    uintptr_t table = (uintptr_t)(d->bar[tbl & 7].addr + (tbl & ~7u));
    uintptr_t pbap = (uintptr_t)(d->bar[pba & 7].addr + (pba & ~7u));
    GUEST_CHECK(pci_msix_enable(d) >= 2, "MSI-X enabled");
    pci_msix_route(d, 1, 0x77, lapic_id());
    mmio_write32(table + 16 + 12, 1); /* masked again: nothing may be delivered */
    GUEST_CHECK(mmio_read32(table + 16) == (0xfee00000u | (lapic_id() << 12)) &&
                    mmio_read32(table + 16 + 8) == 0x77 && (mmio_read32(table + 16 + 12) & 1),
                "MSI-X entry 1 reads back (address, data, mask)");
    GUEST_CHECK(mmio_read32(pbap) == 0, "PBA clear (0x%x)", mmio_read32(pbap));
    pci_msix_disable(d);
    guest_printf("pci ok\n");
    guest_pass();
}
