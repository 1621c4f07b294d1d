/*
 * -kernel with -bios: the firmware loads the kernel, as QEMU always does on its pc.
 *
 * The board puts the images into fw_cfg's kernel items (QEMU's docs/specs/fw_cfg.txt:
 * KERNEL_*, INITRD_*, CMDLINE_*, SETUP_*) and adds the option ROM QEMU uses to boot them,
 * from Debian's qemu-system-data (/usr/share/qemu): linuxboot_dma.bin for a Linux bzImage,
 * multiboot_dma.bin for a multiboot kernel.  SeaBIOS runs the ROM (bootorder puts it
 * first), the ROM reads the items through fw_cfg DMA and jumps into the kernel.
 *
 * Sen's default for -kernel stays the direct boot (docs/boot.md), which skips the
 * firmware and its seconds of POST; this path is for users who ask for firmware.
 */
#include <string.h>
#include "hw/i386/boot.h"
#include "sen/host-file.h"
#include "sen/hw/fw_cfg.h"


/* Linux: QEMU's addresses for a protocol >= 2.02 kernel (x86_load_linux). */
#define LINUX_REAL_ADDR     0x10000  /* setup code and boot_params */
#define LINUX_CMDLINE_ADDR  0x20000
#define LINUX_PROT_ADDR     0x100000
/* What firmware keeps at the top of RAM below 4 GiB for ACPI: the initrd stays under it
 * (QEMU's pc acpi_data_size). */
#define LINUX_ACPI_DATA_SIZE 0x28000

#define HDR_SETUP_SECTS    0x1f1
#define HDR_MAGIC          0x202
#define HDR_VERSION        0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS      0x211
#define HDR_RAMDISK_IMAGE  0x218
#define HDR_RAMDISK_SIZE   0x21c
#define HDR_HEAP_END_PTR   0x224
#define HDR_CMD_LINE_PTR   0x228
#define HDR_INITRD_MAX     0x22c
#define HDR_CMDLINE_SIZE   0x238
#define LOADED_HIGH        0x01
#define CAN_USE_HEAP       0x80
#define LOADER_QEMU        0xb0 /* QEMU's type_of_loader, which kernels know */

/* multiboot_info: where the firmware's loader writes the e820 map (mmap_addr must be
 * 16-byte aligned: the ROM addresses it as a real-mode segment). */
#define MB_MMAP_ADDR       0x8000
#define MBI_MMAP_LENGTH    44
#define MBI_MMAP_ADDR      48

static bool fw_kernel_linux(FwCfgState *fw, const MachineConfig *cfg, GBytes *kernel,
                            uint64_t below_4g, Error **errp)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    const char *path = cfg->kernel;
    uint16_t version = boot_ld16(img + HDR_VERSION);

    if (len < 0x240 || version < 0x202 || !(img[HDR_LOADFLAGS] & LOADED_HIGH)) {
        error_setg(errp, "could not load kernel '%s': firmware boot needs a bzImage of boot "
                   "protocol 2.02 or later (this one: %u.%02u)", path, version >> 8,
                   version & 0xff);
        return false;
    }
    size_t setup_size = ((size_t)(img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4) + 1) * 512;
    if (setup_size >= len) {
        error_setg(errp, "could not load kernel '%s': its setup code (%zu bytes) is not "
                   "followed by a kernel", path, setup_size);
        return false;
    }
    const char *append = cfg->append ? cfg->append : "";
    size_t cmdline_size = strlen(append) + 1;
    uint32_t cmdline_max = version >= 0x206 ? boot_ld32(img + HDR_CMDLINE_SIZE) : 255;
    if (strlen(append) > cmdline_max) {
        error_setg(errp, "-append: the kernel '%s' takes at most %u bytes of command line",
                   path, cmdline_max);
        return false;
    }
    g_autofree uint8_t *setup = g_memdup2(img, setup_size);
    boot_st32(setup + HDR_CMD_LINE_PTR, LINUX_CMDLINE_ADDR);
    setup[HDR_TYPE_OF_LOADER] = LOADER_QEMU;
    setup[HDR_LOADFLAGS] |= CAN_USE_HEAP;
    boot_st16(setup + HDR_HEAP_END_PTR, LINUX_CMDLINE_ADDR - LINUX_REAL_ADDR - 0x200);

    if (cfg->initrd) {
        g_autoptr(GBytes) rd = boot_file_read("initrd", cfg->initrd, cfg->ram_size, errp);
        if (!rd) {
            return false;
        }
        uint64_t max = version >= 0x203 ? boot_ld32(img + HDR_INITRD_MAX) : 0x37ffffff;
        max = MIN(max, below_4g - LINUX_ACPI_DATA_SIZE - 1);
        uint64_t size = g_bytes_get_size(rd);
        if (size >= max - LINUX_PROT_ADDR) {
            error_setg(errp, "-initrd %s: the initrd (%" G_GUINT64_FORMAT " bytes) does not "
                       "fit below 0x%" G_GINT64_MODIFIER "x", cfg->initrd, size, max);
            return false;
        }
        uint64_t addr = (max - size) & ~0xfffULL;
        boot_st32(setup + HDR_RAMDISK_IMAGE, (uint32_t)addr);
        boot_st32(setup + HDR_RAMDISK_SIZE, (uint32_t)size);
        fw_cfg_add_i32(fw, FW_CFG_INITRD_ADDR, (uint32_t)addr);
        fw_cfg_add_i32(fw, FW_CFG_INITRD_SIZE, (uint32_t)size);
        fw_cfg_add_bytes(fw, FW_CFG_INITRD_DATA, rd);
    }
    fw_cfg_add_i32(fw, FW_CFG_CMDLINE_ADDR, LINUX_CMDLINE_ADDR);
    fw_cfg_add_i32(fw, FW_CFG_CMDLINE_SIZE, (uint32_t)cmdline_size);
    fw_cfg_add_string(fw, FW_CFG_CMDLINE_DATA, append);
    fw_cfg_add_i32(fw, FW_CFG_SETUP_ADDR, LINUX_REAL_ADDR);
    fw_cfg_add_i32(fw, FW_CFG_SETUP_SIZE, (uint32_t)setup_size);
    fw_cfg_add_copy(fw, FW_CFG_SETUP_DATA, setup, setup_size);
    g_autoptr(GBytes) prot = g_bytes_new_from_bytes(kernel, setup_size, len - setup_size);
    fw_cfg_add_i32(fw, FW_CFG_KERNEL_ADDR, LINUX_PROT_ADDR);
    fw_cfg_add_i32(fw, FW_CFG_KERNEL_SIZE, (uint32_t)(len - setup_size));
    fw_cfg_add_bytes(fw, FW_CFG_KERNEL_DATA, prot);
    return true;
}

/*
 * Multiboot: Sen's own loader lays the kernel, modules and multiboot info out in a
 * capturing BootCtx (nothing is written to RAM); the info block becomes the INITRD item
 * at its address, everything else one KERNEL image from its lowest to its highest byte.
 */
/* The fw_cfg items from what Sen's multiboot loader captured in cap. */
static bool multiboot_items(FwCfgState *fw, const char *path, const BootCtx *cap,
                            const CpuBootState *bsp, Error **errp)
{
    const BootBlob *info = NULL;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (guint i = 0; i < cap->blobs->len; i++) {
        const BootBlob *blob = g_ptr_array_index(cap->blobs, i);
        if (blob->gpa == bsp->rbx) {
            info = blob;
        } else if (blob->gpa != BOOT_GDT_ADDR) { /* the ROM brings its own GDT */
            lo = MIN(lo, blob->gpa);
            hi = MAX(hi, blob->gpa + blob->len);
        }
    }
    /* The ROM copies the info block in real mode and the image in protected mode. */
    if (!info || info->gpa + info->len > BOOT_LOWMEM_END || (info->gpa & 0xf) ||
        info->gpa < MB_MMAP_ADDR + 0x1000) {
        error_setg(errp, "could not load kernel '%s': the multiboot information does not "
                   "fit at 0x9000-0x9fbff, where the firmware's loader expects it", path);
        return false;
    }
    if (lo < BOOT_HIGH_ADDR || hi > PC_4G) {
        error_setg(errp, "could not load kernel '%s': firmware boot loads multiboot images "
                   "between 1 MiB and 4 GiB (this one: 0x%" G_GINT64_MODIFIER "x-0x%"
                   G_GINT64_MODIFIER "x)", path, lo, hi - 1);
        return false;
    }
    g_autofree uint8_t *image = g_malloc0(hi - lo);
    for (guint i = 0; i < cap->blobs->len; i++) {
        const BootBlob *blob = g_ptr_array_index(cap->blobs, i);
        if (blob != info && blob->gpa != BOOT_GDT_ADDR && blob->data) {
            memcpy(image + (blob->gpa - lo), g_bytes_get_data(blob->data, NULL), blob->len);
        }
    }
    g_autofree uint8_t *mbi = g_memdup2(g_bytes_get_data(info->data, NULL), info->len);
    /* The ROM asks the firmware for the e820 map (INT 15h) and writes it here. */
    boot_st32(mbi + MBI_MMAP_ADDR, MB_MMAP_ADDR);
    boot_st32(mbi + MBI_MMAP_LENGTH, 0);
    fw_cfg_add_i32(fw, FW_CFG_KERNEL_ENTRY, (uint32_t)bsp->rip);
    fw_cfg_add_i32(fw, FW_CFG_KERNEL_ADDR, (uint32_t)lo);
    fw_cfg_add_i32(fw, FW_CFG_KERNEL_SIZE, (uint32_t)(hi - lo));
    fw_cfg_add_copy(fw, FW_CFG_KERNEL_DATA, image, hi - lo);
    fw_cfg_add_i32(fw, FW_CFG_INITRD_ADDR, (uint32_t)info->gpa);
    fw_cfg_add_i32(fw, FW_CFG_INITRD_SIZE, (uint32_t)info->len);
    fw_cfg_add_copy(fw, FW_CFG_INITRD_DATA, mbi, info->len);
    return true;
}

/*
 * Multiboot: Sen's own loader lays the kernel, modules and multiboot info out in a
 * capturing BootCtx (nothing is written to RAM); the info block becomes the INITRD item
 * at its address, everything else one KERNEL image from its lowest to its highest byte.
 */
static bool fw_kernel_multiboot(FwCfgState *fw, const MachineConfig *cfg, GBytes *kernel,
                                GuestMemory *mem, uint64_t below_4g, uint64_t above_4g,
                                Error **errp)
{
    BootCtx cap;
    CpuBootState bsp = { 0 };

    boot_ctx_init(&cap, mem, below_4g, above_4g);
    cap.capture = true;
    bool ok = boot_multiboot_load(&cap, cfg->kernel, kernel, cfg->initrd, cfg->append, &bsp,
                                  errp) &&
              multiboot_items(fw, cfg->kernel, &cap, &bsp, errp);
    boot_ctx_clear(&cap);
    return ok;
}

bool pc_fw_kernel_load(FwCfgState *fw, const MachineConfig *cfg, GuestMemory *mem,
                       uint64_t below_4g, uint64_t above_4g, const char **rom,
                       Error **errp)
{
    g_autoptr(GBytes) kernel = boot_file_read("kernel", cfg->kernel, cfg->ram_size, errp);
    if (!kernel) {
        return false;
    }
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    const char *rom_file, *rom_name;
    bool ok;

    /* QEMU's order: bzImage, then multiboot; Sen's fw_cfg always offers DMA. */
    switch (boot_detect(img, len)) {
    case BOOT_KIND_LINUX:
        rom_file = HOST_QEMU_DATADIR "/linuxboot_dma.bin";
        rom_name = "genroms/linuxboot_dma.bin";
        ok = fw_kernel_linux(fw, cfg, kernel, below_4g, errp);
        break;
    case BOOT_KIND_MULTIBOOT:
        rom_file = HOST_QEMU_DATADIR "/multiboot_dma.bin";
        rom_name = "genroms/multiboot_dma.bin";
        ok = fw_kernel_multiboot(fw, cfg, kernel, mem, below_4g, above_4g, errp);
        break;
    default:
        error_setg(errp, "could not load kernel '%s': with -bios, Sen boots a Linux bzImage "
                   "or a multiboot kernel through the firmware (a PVH-only ELF needs QEMU's "
                   "pvh.bin, which Sen does not use yet)", cfg->kernel);
        return false;
    }
    if (!ok) {
        return false;
    }
    if (!pc_option_rom_add(fw, rom_file, errp)) {
        error_prepend(errp, "-kernel with -bios needs QEMU's option ROM (Debian package "
                      "qemu-system-data): ");
        return false;
    }
    *rom = rom_name;
    return true;
}
