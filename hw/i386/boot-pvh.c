/*
 * PVH direct boot (Xen's x86/HVM direct boot ABI, which Linux's CONFIG_PVH implements):
 * an ELF kernel whose XEN_ELFNOTE_PHYS32_ENTRY note names a 32-bit entry point.  The
 * loader places the PT_LOAD segments at their physical addresses and enters in 32-bit
 * protected mode, paging off, with %ebx pointing at struct hvm_start_info.
 *
 * Memory: hvm_start_info at BOOT_INFO_ADDR, followed by the module list (the -initrd as
 * the one module) and the e820 map; command line at BOOT_CMDLINE_ADDR; the initrd
 * page-aligned at the top of RAM below 4 GiB.
 */
#include <string.h>
#include "hw/i386/boot.h"

#define START_INFO_MAGIC   0x336ec578u
#define START_INFO_VERSION 1
#define START_INFO_SIZE    56
#define MODLIST_ENTRY_SIZE 32
#define MEMMAP_ENTRY_SIZE  24
#define MODLIST_OFFSET     64
#define MEMMAP_OFFSET      (MODLIST_OFFSET + MODLIST_ENTRY_SIZE)

/* The 32-bit entry point from the note (4- or 8-byte descriptor). */
static bool pvh_entry(const uint8_t *img, size_t len, uint64_t *entry)
{
    const uint8_t *desc;
    uint32_t dlen;
    if (!boot_elf_find_note(img, len, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &desc, &dlen)) {
        return false;
    }
    if (dlen == 4) {
        *entry = boot_ld32(desc);
    } else if (dlen == 8) {
        *entry = boot_ld64(desc);
    } else {
        *entry = UINT64_MAX;
    }
    return true;
}

bool boot_pvh_load(BootCtx *b, const char *path, GBytes *kernel, GBytes *initrd,
                   const char *initrd_path, const char *cmdline, CpuBootState *bsp,
                   Error **errp)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    uint64_t entry, low, high, elf_entry;
    cmdline = cmdline ? cmdline : "";

    if (!pvh_entry(img, len, &entry)) {
        error_setg(errp, "could not load kernel '%s': no PVH entry note (Xen, type %d)",
                   path, XEN_ELFNOTE_PHYS32_ENTRY);
        return false;
    }
    if (entry >= PC_4G) {
        error_setg(errp, "could not load kernel '%s': PVH entry point is not a 32-bit "
                   "address", path);
        return false;
    }
    if (!boot_elf_load(b, path, kernel, &low, &high, &elf_entry, errp)) {
        return false;
    }

    uint8_t info[MEMMAP_OFFSET + E820_MAX_ENTRIES * MEMMAP_ENTRY_SIZE] = { 0 };
    boot_st32(info + 0, START_INFO_MAGIC);
    boot_st32(info + 4, START_INFO_VERSION);
    boot_st64(info + 24, BOOT_CMDLINE_ADDR);
    boot_st64(info + 32, b->acpi_rsdp);      /* rsdp_paddr */
    boot_st64(info + 40, BOOT_INFO_ADDR + MEMMAP_OFFSET);
    boot_st32(info + 48, b->e820_count);
    for (unsigned i = 0; i < b->e820_count; i++) {
        uint8_t *e = info + MEMMAP_OFFSET + i * MEMMAP_ENTRY_SIZE;
        boot_st64(e, b->e820[i].addr);
        boot_st64(e + 8, b->e820[i].size);
        boot_st32(e + 16, b->e820[i].type);
    }

    if (initrd && g_bytes_get_size(initrd) > 0) {
        uint64_t size = g_bytes_get_size(initrd), addr;
        if (!boot_place_top(high, b->below_4g, size, &addr)) {
            error_setg(errp, "could not load initrd '%s': %" G_GUINT64_FORMAT " bytes do "
                       "not fit between the kernel's end (0x%" G_GINT64_MODIFIER "x) and "
                       "0x%" G_GINT64_MODIFIER "x; give the guest more memory (-m)",
                       initrd_path, size, high, b->below_4g);
            return false;
        }
        g_autofree char *what = g_strdup_printf("initrd '%s'", initrd_path);
        if (!boot_add_bytes(b, addr, initrd, what, errp)) {
            return false;
        }
        boot_st32(info + 12, 1);
        boot_st64(info + 16, BOOT_INFO_ADDR + MODLIST_OFFSET);
        boot_st64(info + MODLIST_OFFSET, addr);
        boot_st64(info + MODLIST_OFFSET + 8, size);
    }

    size_t cmdline_len = strlen(cmdline);
    if (cmdline_len >= BOOT_LOWMEM_END - BOOT_CMDLINE_ADDR) {
        error_setg(errp, "-append: the command line is %zu bytes, at most %u are supported",
                   cmdline_len, (unsigned)(BOOT_LOWMEM_END - BOOT_CMDLINE_ADDR - 1));
        return false;
    }
    if (!boot_add_copy(b, BOOT_CMDLINE_ADDR, cmdline, cmdline_len + 1,
                       "kernel command line", errp) ||
        !boot_add_copy(b, BOOT_INFO_ADDR, info, sizeof(info), "hvm_start_info", errp) ||
        !boot_write_gdt(b, false, bsp, errp)) {
        error_prepend(errp, "could not load kernel '%s': ", path);
        return false;
    }
    bsp->mode = CPU_BOOT_PROT32;
    bsp->rip = entry;
    bsp->rbx = BOOT_INFO_ADDR;
    bsp->rsp = BOOT_STACK_TOP;
    return true;
}
