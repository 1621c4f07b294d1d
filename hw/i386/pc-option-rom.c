/*
 * Option ROMs for the firmware, as QEMU's pc hands them over: each one is an fw_cfg file
 * "genroms/<basename>", which SeaBIOS copies into the option ROM area (0xc0000 upwards)
 * and runs at POST.  The images come from -option-rom and, for a -kernel loaded by the
 * firmware, from QEMU's linuxboot_dma.bin / multiboot_dma.bin (pc-fw-kernel.c).
 */
#include <string.h>
#include "hw/i386/boot.h"
#include "sen/host-file.h"
#include "sen/hw/fw_cfg.h"
#include "sen/pci.h"

/*
 * SeaBIOS places genroms between 0xc0000 and its own code at 0xe0000, so 128 KiB is the
 * most any option ROM can have on this board; QEMU takes anything and SeaBIOS then fails
 * with "No space for vga rom"/"ROM ... too large" at POST, so refusing it early is kinder.
 */
#define OPTION_ROM_MAX_SIZE (128 * 1024)

/* The image at path, checked to be an option ROM that fits the option ROM area. */
static GBytes *pc_option_rom_read(const char *path, Error **errp)
{
    g_autoptr(GBytes) data = host_file_read(path, OPTION_ROM_MAX_SIZE, errp);
    if (!data) {
        error_prepend(errp, "Could not open option rom '%s': ", path);
        return NULL;
    }
    size_t len;
    const uint8_t *buf = g_bytes_get_data(data, &len);
    /* Firmware skips an image without the signature: say so instead of booting on. */
    if (len < 3 || buf[0] != 0x55 || buf[1] != 0xaa) {
        error_setg(errp, "option rom '%s' is not an option ROM: it does not start with "
                   "the bytes 0x55 0xAA and a size byte", path);
        return NULL;
    }
    return g_steal_pointer(&data);
}

char *pc_option_rom_fw_name(const char *path)
{
    g_autofree char *base = g_path_get_basename(path);
    return g_strdup_printf("genroms/%s", base);
}

bool pc_option_rom_add(FwCfgState *fw, const char *path, Error **errp)
{
    g_autoptr(GBytes) data = pc_option_rom_read(path, errp);
    if (!data) {
        return false;
    }
    g_autofree char *name = pc_option_rom_fw_name(path);
    return fw_cfg_add_file(fw, name, data, errp);
}

typedef struct PciRomWalk {
    FwCfgState *fw;
    Error *err;
} PciRomWalk;

static void add_pci_rom(PCIDevice *d, void *opaque)
{
    PciRomWalk *w = opaque;
    GBytes *rom = pci_rom_for_fw_cfg(d);
    if (!rom || w->err) {
        return;
    }
    g_autofree char *name = pc_option_rom_fw_name(d->romfile);
    if (g_bytes_get_size(rom) > OPTION_ROM_MAX_SIZE) {
        error_setg(&w->err, "romfile=%s,rombar=0: too large for the option ROM area "
                   "(%zu bytes, at most %d)", d->romfile, g_bytes_get_size(rom),
                   OPTION_ROM_MAX_SIZE);
    } else if (fw_cfg_add_file(w->fw, name, rom, &w->err)) {
        return;
    }
    error_prepend(&w->err, "-device %s: ", d->qdev.cls->name);
}

bool pc_pci_roms_setup(FwCfgState *fw, Machine *m, Error **errp)
{
    PCIBus *bus = pci_bus_find(m, PCI_HOST_BUS_NAME);
    PciRomWalk w = { .fw = fw };
    if (bus) {
        pci_bus_foreach(bus, add_pci_rom, &w);
    }
    if (w.err) {
        error_propagate(errp, w.err);
        return false;
    }
    return true;
}

bool pc_option_roms_setup(FwCfgState *fw, const MachineConfig *cfg, Error **errp)
{
    for (guint i = 0; cfg->option_roms && i < cfg->option_roms->len; i++) {
        const OptionRomConfig *r = g_ptr_array_index(cfg->option_roms, i);
        if (!pc_option_rom_add(fw, r->path, errp)) {
            error_prepend(errp, "%s: ", r->optstr);
            return false;
        }
    }
    return true;
}
