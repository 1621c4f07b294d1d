/*
 * Firmware boot on the PC: the BIOS image (-bios, or SeaBIOS by default) and what the
 * board tells it about booting.
 *
 * As on QEMU's pc, the whole image is ROM ending at 4 GiB (the reset vector is its last 16
 * bytes) and its last 128 KiB also appear at 0xe0000-0xfffff, where real-mode code runs.
 * That low copy is RAM filled with the image at every reset: the i440FX PAM registers,
 * which on QEMU switch 0xc0000-0xfffff between ROM and RAM, are not modelled, so the
 * area is always RAM.  SeaBIOS copies itself there anyway (make_bios_writable) and
 * needs it writable; unlike QEMU the area is not write-protected again after POST.
 */
#include <string.h>
#include "hw/i386/boot.h"
#include "sen/hw/fw_cfg.h"
#include "sen/device.h"
#include "sen/hw/pc.h"
#include "sen/pci.h"

#define BIOS_MAX_SIZE   (16 * 1024 * 1024) /* keeps the ROM clear of the LAPIC/IOAPIC */
#define BIOS_ALIGN      0x10000            /* QEMU requires whole 64 KiB units */
#define ISA_BIOS_SIZE   0x20000
#define ISA_BIOS_END    0x100000ULL

GBytes *pc_firmware_load(BootCtx *b, GuestMemory *mem, const char *path, Error **errp)
{
    g_autoptr(GBytes) image = boot_file_read("PC BIOS", path, BIOS_MAX_SIZE, errp);
    if (!image) {
        return NULL;
    }
    size_t len;
    const uint8_t *buf = g_bytes_get_data(image, &len);
    if (len == 0 || len % BIOS_ALIGN || len > BIOS_MAX_SIZE) {
        error_setg(errp, "could not load PC BIOS '%s': its size (%zu bytes) must be a "
                   "non-zero multiple of 64 KiB, at most 16 MiB", path, (size_t)len);
        return NULL;
    }
    if (!guest_mem_add_rom(mem, PC_4G - len, len, errp)) {
        error_prepend(errp, "PC BIOS '%s': ", path);
        return NULL;
    }
    guest_mem_load_rom(mem, PC_4G - len, buf, len);

    size_t isa = MIN(len, ISA_BIOS_SIZE);
    g_autoptr(GBytes) low = g_bytes_new_from_bytes(image, len - isa, isa);
    g_autofree char *what = g_strdup_printf("PC BIOS '%s' (ISA BIOS area)", path);
    if (!boot_add_bytes(b, ISA_BIOS_END - isa, low, what, errp)) {
        return NULL;
    }
    return g_steal_pointer(&image);
}

void pc_firmware_reload(GuestMemory *mem, GBytes *image)
{
    size_t len;
    const uint8_t *data = g_bytes_get_data(image, &len);
    guest_mem_load_rom(mem, PC_4G - len, data, len);
}

/* QEMU's boot_device2nibble: the CMOS codes SeaBIOS and older BIOSes read. */
static uint8_t boot_nibble(char c)
{
    switch (c) {
    case 'a':
    case 'b':
        return 1; /* floppy */
    case 'c':
        return 2; /* hard disk */
    case 'd':
        return 3; /* CD-ROM */
    case 'n':
        return 4; /* network */
    }
    return 0;
}

void pc_cmos_boot_order(const char *order, uint8_t *reg3d, uint8_t *reg38)
{
    uint8_t n[3] = { 0 };
    for (unsigned i = 0; order && order[i] && i < 3; i++) {
        n[i] = boot_nibble(order[i]);
    }
    *reg3d = (uint8_t)(n[1] << 4 | n[0]);
    *reg38 = (uint8_t)(n[2] << 4); /* bit 0 clear: floppy boot signature check on */
}

bool pc_fw_cfg_boot(FwCfgState *fw, const MachineConfig *cfg, Error **errp)
{
    fw_cfg_add_i16(fw, FW_CFG_BOOT_MENU, cfg->boot_menu);
    if (cfg->boot_menu && cfg->boot_menu_wait >= 0) {
        uint16_t wait = GUINT16_TO_LE((uint16_t)cfg->boot_menu_wait);
        if (!fw_cfg_add_file_copy(fw, "etc/boot-menu-wait", &wait, sizeof(wait), errp)) {
            return false;
        }
    }
    /* As QEMU: always present, -1 (never reboot after a failed boot) by default. */
    uint32_t fail_wait = GUINT32_TO_LE((uint32_t)(int32_t)cfg->boot_reboot_timeout);
    if (!fw_cfg_add_file_copy(fw, "etc/boot-fail-wait", &fail_wait, sizeof(fail_wait),
                              errp)) {
        return false;
    }
    return true;
}

/* One line of the bootorder file. */
typedef struct BootEntry {
    int32_t bootindex;
    char *path;
} BootEntry;

static void boot_entry_free(gpointer p)
{
    BootEntry *e = p;
    g_free(e->path);
    g_free(e);
}

static gint boot_entry_cmp(gconstpointer a, gconstpointer b)
{
    const BootEntry *x = *(BootEntry *const *)a, *y = *(BootEntry *const *)b;
    return x->bootindex < y->bootindex ? -1 : x->bootindex > y->bootindex;
}

static void boot_entry_add(GPtrArray *list, int32_t bootindex, char *path)
{
    BootEntry *e = g_new0(BootEntry, 1);
    e->bootindex = bootindex;
    e->path = path;
    g_ptr_array_add(list, e);
}

static bool bootindex_used(GPtrArray *list, int32_t bootindex)
{
    for (guint i = 0; i < list->len; i++) {
        if (((BootEntry *)g_ptr_array_index(list, i))->bootindex == bootindex) {
            return true;
        }
    }
    return false;
}

/* QEMU's OpenFirmware path of a device on the i440FX bus: /pci@i0cf8/NAME@SLOT[,FN]SUFFIX */
static char *pc_fw_dev_path(DeviceState *dev)
{
    const PCIDevice *pci = (const PCIDevice *)dev;
    unsigned slot = PCI_DEVFN_SLOT(pci->devfn), fn = PCI_DEVFN_FUNC(pci->devfn);
    g_autofree char *func = fn ? g_strdup_printf(",%x", fn) : g_strdup("");
    return g_strdup_printf("/pci@i0cf8/%s@%x%s%s", dev->cls->fw_name, slot, func,
                           dev->cls->fw_suffix ? dev->cls->fw_suffix : "");
}

GBytes *pc_bootorder(Machine *m, const char *kernel_rom, Error **errp)
{
    g_autoptr(GPtrArray) boot = g_ptr_array_new_with_free_func(boot_entry_free);
    /* A kernel loaded by firmware boots first, as QEMU gives its ROM bootindex 0. */
    if (kernel_rom) {
        boot_entry_add(boot, 0, g_strdup_printf("/rom@%s", kernel_rom));
    }
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *dev = g_ptr_array_index(m->devices, i);
        if (dev->cls->fw_name && dev->bootindex >= 0) {
            boot_entry_add(boot, dev->bootindex, pc_fw_dev_path(dev));
        }
    }
    const GPtrArray *roms = m->cfg->option_roms;
    for (guint i = 0; roms && i < roms->len; i++) {
        const OptionRomConfig *r = g_ptr_array_index(roms, i);
        if (r->bootindex < 0) {
            continue;
        }
        /* The same check device.c makes between devices (QEMU's check_boot_index). */
        if (bootindex_used(boot, r->bootindex) && !(kernel_rom && r->bootindex == 0)) {
            error_setg(errp, "%s: The bootindex %d has already been used", r->optstr,
                       r->bootindex);
            return NULL;
        }
        g_autofree char *name = pc_option_rom_fw_name(r->path);
        boot_entry_add(boot, r->bootindex, g_strdup_printf("/rom@%s", name));
    }
    /* Stable: the kernel's ROM stays ahead of anything else with bootindex 0. */
    g_ptr_array_sort(boot, boot_entry_cmp);
    GString *list = g_string_new(NULL);
    for (guint i = 0; i < boot->len; i++) {
        const BootEntry *e = g_ptr_array_index(boot, i);
        g_string_append_printf(list, "%s%s", list->len ? "\n" : "", e->path);
    }
    /* strict=on: nothing outside the list may boot. */
    if (m->cfg->boot_strict) {
        g_string_append_printf(list, "%sHALT", list->len ? "\n" : "");
    }
    /* With its NUL, as QEMU; an empty list is an empty file. */
    GBytes *b = g_bytes_new(list->str, list->len ? list->len + 1 : 0);
    g_string_free(list, true);
    return b;
}
