/*
 * Linux bzImage direct boot (Documentation/arch/x86/boot.rst): the loader does what the
 * kernel's real-mode setup code would have done and enters the protected-mode kernel
 * directly, through the 64-bit entry (load address + 0x200) when the kernel has one, else
 * through the 32-bit entry at code32_start.
 *
 * Memory: boot_params ("zero page") at BOOT_INFO_ADDR, command line at BOOT_CMDLINE_ADDR,
 * kernel at 1 MiB or its preferred address, initrd page-aligned at the top of what both
 * RAM and the kernel's initrd_addr_max allow, above everything the kernel may use while
 * decompressing (load address + init_size).
 */
#include <string.h>
#include "hw/i386/boot.h"

/* Setup header fields: offsets inside the image's first sector and inside boot_params. */
#define HDR_SETUP_SECTS     0x1f1
#define HDR_VID_MODE        0x1fa
#define HDR_JUMP_OFFSET     0x201 /* the header ends at 0x202 + this byte */
#define HDR_MAGIC           0x202 /* "HdrS" */
#define HDR_VERSION         0x206
#define HDR_TYPE_OF_LOADER  0x210
#define HDR_LOADFLAGS       0x211
#define HDR_CODE32_START    0x214
#define HDR_RAMDISK_IMAGE   0x218
#define HDR_RAMDISK_SIZE    0x21c
#define HDR_HEAP_END_PTR    0x224
#define HDR_CMD_LINE_PTR    0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGN    0x230
#define HDR_RELOCATABLE     0x234
#define HDR_XLOADFLAGS      0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_HW_SUBARCH      0x23c
#define HDR_HW_SUBARCH_DATA 0x240
#define HDR_SETUP_DATA      0x250
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE       0x260
#define HDR_MIN_END         0x23c /* through cmdline_size (protocol 2.06) */
#define HDR_MAX_END         0x290 /* edd_mbr_sig_buffer follows the header */

#define BP_SIZE        4096
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE  0x2d0
#define BP_E820_MAX    128

#define LOADED_HIGH   0x01
#define CAN_USE_HEAP  0x80
#define XLF_KERNEL_64 0x01

#define LOADER_UNDEFINED 0xff
#define VID_MODE_NORMAL  0xffff
/* Where the end of a 64 KiB real-mode setup segment would be, minus 0x200. */
#define HEAP_END_PTR     0xfe00
#define OLDEST_PROTOCOL  0x206

static bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

/* Load address of the protected-mode kernel and the end of what it may touch early. */
static void choose_load_addr(const uint8_t *img, uint16_t version, uint64_t below_4g,
                             uint64_t kernel_len, uint64_t *load, uint64_t *end)
{
    uint64_t need = kernel_len, pref = 0;
    bool relocatable = img[HDR_RELOCATABLE] != 0;

    *load = BOOT_HIGH_ADDR;
    if (version >= 0x20a) {
        /* pref_address is the kernel's LOAD_PHYSICAL_ADDR: where it decompresses to even
         * when loaded lower, so it bounds the initrd in both cases. */
        pref = boot_ld64(img + HDR_PREF_ADDRESS);
        need = MAX(need, boot_ld32(img + HDR_INIT_SIZE));
        uint32_t align = boot_ld32(img + HDR_KERNEL_ALIGN);
        if (relocatable && pref >= BOOT_HIGH_ADDR && is_pow2(align) &&
            pref % align == 0 && pref < below_4g && need <= below_4g - pref) {
            *load = pref;
        }
    }
    *end = MAX(*load, pref) + need;
}

bool boot_linux_load(BootCtx *b, const char *path, GBytes *kernel, GBytes *initrd,
                     const char *initrd_path, const char *cmdline, CpuBootState *bsp,
                     Error **errp)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    cmdline = cmdline ? cmdline : "";

    if (len < HDR_MAX_END || boot_ld32(img + HDR_MAGIC) != 0x53726448) {
        error_setg(errp, "could not load kernel '%s': not a Linux bzImage (no setup header)",
                   path);
        return false;
    }
    uint16_t version = boot_ld16(img + HDR_VERSION);
    if (version < OLDEST_PROTOCOL) {
        error_setg(errp, "could not load kernel '%s': Linux boot protocol %u.%02u is too "
                   "old (2.06 or later is needed)", path, version >> 8, version & 0xff);
        return false;
    }
    if (!(img[HDR_LOADFLAGS] & LOADED_HIGH)) {
        error_setg(errp, "could not load kernel '%s': not a bzImage (a zImage loaded below "
                   "1 MiB is not supported)", path);
        return false;
    }
    unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
    size_t setup_size = (setup_sects + 1) * 512;
    size_t hdr_end = 0x202 + img[HDR_JUMP_OFFSET];
    if (setup_size >= len) {
        error_setg(errp, "could not load kernel '%s': the setup code (%zu bytes) is not "
                   "followed by a kernel (file is %zu bytes; truncated?)", path, setup_size,
                   len);
        return false;
    }
    if (hdr_end < HDR_MIN_END || hdr_end > HDR_MAX_END || hdr_end > setup_size) {
        error_setg(errp, "could not load kernel '%s': corrupt setup header (ends at 0x%zx)",
                   path, hdr_end);
        return false;
    }
    uint64_t kernel_len = len - setup_size;
    uint64_t load, kernel_end;
    choose_load_addr(img, version, b->below_4g, kernel_len, &load, &kernel_end);

    uint32_t cmdline_max = boot_ld32(img + HDR_CMDLINE_SIZE);
    size_t cmdline_len = strlen(cmdline);
    if (cmdline_len > cmdline_max ||
        cmdline_len >= BOOT_LOWMEM_END - BOOT_CMDLINE_ADDR) {
        error_setg(errp, "-append: the command line is %zu bytes, kernel '%s' accepts at "
                   "most %u", cmdline_len, path, MIN(cmdline_max,
                   (uint32_t)(BOOT_LOWMEM_END - BOOT_CMDLINE_ADDR - 1)));
        return false;
    }

    uint8_t *bp = g_malloc0(BP_SIZE);
    g_autoptr(GBytes) bp_bytes = g_bytes_new_take(bp, BP_SIZE);
    memcpy(bp + HDR_SETUP_SECTS, img + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
    bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
    bp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
    boot_st16(bp + HDR_HEAP_END_PTR, HEAP_END_PTR);
    boot_st16(bp + HDR_VID_MODE, VID_MODE_NORMAL);
    boot_st32(bp + HDR_CODE32_START, (uint32_t)load);
    boot_st32(bp + HDR_CMD_LINE_PTR, BOOT_CMDLINE_ADDR);
    boot_st32(bp + HDR_HW_SUBARCH, 0);
    boot_st64(bp + HDR_HW_SUBARCH_DATA, 0);
    boot_st64(bp + HDR_SETUP_DATA, 0);

    boot_st64(bp + BP_ACPI_RSDP_ADDR, b->acpi_rsdp);

    unsigned n = MIN(b->e820_count, BP_E820_MAX);
    bp[BP_E820_ENTRIES] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = bp + BP_E820_TABLE + i * 20;
        boot_st64(e, b->e820[i].addr);
        boot_st64(e + 8, b->e820[i].size);
        boot_st32(e + 16, b->e820[i].type);
    }

    g_autoptr(GBytes) payload = g_bytes_new_from_bytes(kernel, setup_size, kernel_len);
    g_autofree char *what = g_strdup_printf("kernel '%s'", path);
    if (!boot_add_bytes(b, load, payload, what, errp)) {
        error_prepend(errp, "could not load kernel '%s': ", path);
        return false;
    }

    if (initrd && g_bytes_get_size(initrd) > 0) {
        uint64_t size = g_bytes_get_size(initrd);
        uint64_t limit = MIN((uint64_t)boot_ld32(img + HDR_INITRD_ADDR_MAX) + 1, b->below_4g);
        uint64_t addr;
        if (!boot_place_top(kernel_end, limit, size, &addr)) {
            error_setg(errp, "could not load initrd '%s': %" G_GUINT64_FORMAT " bytes do "
                       "not fit between the kernel's end (0x%" G_GINT64_MODIFIER "x) and "
                       "0x%" G_GINT64_MODIFIER "x; give the guest more memory (-m)",
                       initrd_path, size, kernel_end, limit);
            return false;
        }
        g_autofree char *iwhat = g_strdup_printf("initrd '%s'", initrd_path);
        if (!boot_add_bytes(b, addr, initrd, iwhat, errp)) {
            return false;
        }
        boot_st32(bp + HDR_RAMDISK_IMAGE, (uint32_t)addr);
        boot_st32(bp + HDR_RAMDISK_SIZE, (uint32_t)size);
    }

    bool long64 = version >= 0x20c && (boot_ld16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64);
    if (!boot_add_copy(b, BOOT_CMDLINE_ADDR, cmdline, cmdline_len + 1,
                       "kernel command line", errp) ||
        !boot_add_bytes(b, BOOT_INFO_ADDR, bp_bytes, "boot_params", errp) ||
        !boot_write_gdt(b, long64, bsp, errp) ||
        (long64 && !boot_write_page_tables(b, bsp, errp))) {
        return false;
    }

    /* %esi/%rsi = boot_params; %ebp, %edi, %ebx must be zero (they are after reset). */
    bsp->rsi = BOOT_INFO_ADDR;
    bsp->rsp = BOOT_STACK_TOP;
    if (long64) {
        bsp->mode = CPU_BOOT_LONG64;
        bsp->rip = load + 0x200;
    } else {
        bsp->mode = CPU_BOOT_PROT32;
        bsp->rip = load;
    }
    return true;
}
