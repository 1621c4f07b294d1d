/*
 * The PCI expansion ROM BAR (config 0x30): -device ...,romfile=FILE[,rombar=0|1].
 *
 * With rombar=1 (the default) the image is shown in the ROM BAR, where firmware sizes,
 * maps and copies it like on real hardware; with rombar=0 the BAR reads 0 and the board
 * hands the image to firmware through fw_cfg instead (pc_pci_roms_setup), as QEMU does.
 * The ROM is read-only: writes to it are dropped.
 */
#include <string.h>
#include "hw/pci/pci-internal.h"
#include "sen/host-file.h"

/* Generous for any option ROM image; keeps a typo'd path from being read whole. */
#define PCI_ROM_MAX_SIZE (16 * 1024 * 1024)
/* The ROM BAR decodes in 2 KiB units (bits 10..1 are reserved). */
#define PCI_ROM_MIN_SIZE 2048

static uint64_t rom_read(void *opaque, uint64_t off, unsigned size)
{
    PCIDevice *d = opaque;
    size_t len;
    const uint8_t *data = g_bytes_get_data(d->rom_data, &len);
    uint64_t val = 0;

    /* Past the image, up to the power-of-two BAR size, reads as 0xff (erased flash). */
    for (unsigned i = 0; i < size; i++) {
        uint8_t b = off + i < len ? data[off + i] : 0xff;
        val |= (uint64_t)b << (8 * i);
    }
    return val;
}

static const IoOps rom_ops = {
    .read = rom_read,
};

/* Where QEMU looks for a romfile named without a directory ("efi-virtio.rom"). */
static char *pci_rom_path(const char *romfile)
{
    if (strchr(romfile, '/')) {
        return g_strdup(romfile);
    }
    return g_build_filename(HOST_QEMU_DATADIR, romfile, NULL);
}

bool pci_rom_load(PCIDevice *d, Error **errp)
{
    if (!d->romfile || !*d->romfile) {
        return true; /* romfile= (empty): no ROM, as in QEMU */
    }
    if (d->rombar > 1) {
        error_setg(errp, "rombar=%u: expected 0 or 1", d->rombar);
        return false;
    }
    if (d->config[PCI_HEADER_TYPE] & 0x7f) {
        error_setg(errp, "romfile=%s: only a type-0 (non-bridge) function has an "
                   "expansion ROM here", d->romfile);
        return false;
    }
    g_autofree char *path = pci_rom_path(d->romfile);
    d->rom_data = host_file_read(path, PCI_ROM_MAX_SIZE, errp);
    if (!d->rom_data) {
        error_prepend(errp, "romfile=%s: could not load '%s': ", d->romfile, path);
        return false;
    }
    size_t len = g_bytes_get_size(d->rom_data);
    if (len == 0) {
        error_setg(errp, "romfile=%s: '%s' is empty", d->romfile, path);
        g_clear_pointer(&d->rom_data, g_bytes_unref);
        return false;
    }
    if (!d->rombar) {
        return true; /* firmware gets it through fw_cfg; the BAR stays read-only zero */
    }
    uint64_t size = PCI_ROM_MIN_SIZE;
    while (size < len) {
        size <<= 1;
    }
    d->rom.size = size;
    d->rom.type = PCI_BAR_MEM32;
    d->rom.ops = &rom_ops;
    d->rom.opaque = d;
    d->rom.addr = PCI_BAR_UNMAPPED;
    d->rom.dev = d;
    d->rom.nr = PCI_ROM_SLOT;
    pci_set_long(d->wmask + PCI_ROM_ADDRESS,
                 ((uint32_t)~(size - 1) & PCI_ROM_ADDRESS_MASK) | PCI_ROM_ADDRESS_ENABLE);
    return true;
}

/* Where the ROM BAR decodes now: memory decoding and the BAR's own enable bit on. */
uint64_t pci_rom_decoded_address(const PCIDevice *d)
{
    uint32_t reg = pci_get_long(d->config + PCI_ROM_ADDRESS);
    uint64_t addr = reg & PCI_ROM_ADDRESS_MASK;

    if (!d->rom.size || !(pci_get_word(d->config + PCI_COMMAND) & PCI_COMMAND_MEMORY) ||
        !(reg & PCI_ROM_ADDRESS_ENABLE) || addr == 0 ||
        addr + d->rom.size - 1 >= UINT32_MAX) {
        return PCI_BAR_UNMAPPED;
    }
    return addr;
}

void pci_rom_free(PCIDevice *d)
{
    g_clear_pointer(&d->rom_data, g_bytes_unref);
    d->rom.size = 0;
}

GBytes *pci_rom_for_fw_cfg(const PCIDevice *d)
{
    return d->rombar == 0 && d->rom_data ? d->rom_data : NULL;
}
