/*
 * Multiboot (version 1) direct boot, as QEMU's -kernel does it: a header with a valid
 * checksum in the first 8 KiB; the image is an ELF (loaded at p_paddr) unless header flag
 * 16 gives the a.out-kludge addresses.  -initrd lists the modules ("file args,file2",
 * ",," a literal comma); each is loaded page-aligned after the kernel, and its whole
 * string (file name plus arguments) becomes the module's string.
 *
 * Memory: multiboot_info at BOOT_MBI_ADDR, followed by the memory map (the e820 table),
 * the module list and all strings (command line "<kernel path> <append>", module
 * strings, the boot loader name), when it ends below BOOT_LOWMEM_END.  A block too large
 * for that, or a kernel loaded over that spot (kvm-unit-tests' realmode test sits at
 * 0x8000-0xa86b), puts the block after the last module instead: QEMU writes it there
 * anyway and lets it clobber the image, Sen never overwrites what it loaded.
 */
#include <string.h>
#include "hw/i386/boot.h"

#define MB_FLAG_PAGE_ALIGN 0x00000001u
#define MB_FLAG_VIDEO      0x00000004u
#define MB_FLAG_AOUT_KLUDGE 0x00010000u

/* multiboot_info.flags */
#define MBI_MEMORY       (1u << 0)
#define MBI_BOOT_DEVICE  (1u << 1)
#define MBI_CMDLINE      (1u << 2)
#define MBI_MODS         (1u << 3)
#define MBI_MMAP         (1u << 6)
#define MBI_LOADER_NAME  (1u << 9)

/* multiboot_info field offsets */
#define MBI_FLAGS        0
#define MBI_MEM_LOWER    4
#define MBI_MEM_UPPER    8
#define MBI_BOOTDEV      12
#define MBI_CMDLINE_PTR  16
#define MBI_MODS_COUNT   20
#define MBI_MODS_ADDR    24
#define MBI_MMAP_LENGTH  44
#define MBI_MMAP_ADDR    48
#define MBI_LOADER_PTR   64
#define MBI_SIZE         88

#define MOD_ENTRY_SIZE   16
#define MMAP_ENTRY_SIZE  24 /* a 4-byte size field (20) + base, length, type */
#define BOOT_DEVICE_NONE 0x8000ffffu /* first hard disk, no partition, as QEMU */
#define PAGE_ALIGN(x)    (((x) + 0xfffULL) & ~0xfffULL)

long multiboot_find_header(const uint8_t *img, size_t len)
{
    size_t end = MIN(len, (size_t)MULTIBOOT_SEARCH);
    for (size_t off = 0; off + 12 <= end; off += 4) {
        uint32_t magic = boot_ld32(img + off);
        if (magic == MULTIBOOT_HEADER_MAGIC &&
            (uint32_t)(magic + boot_ld32(img + off + 4) + boot_ld32(img + off + 8)) == 0) {
            return (long)off;
        }
    }
    return -1;
}

char **multiboot_split_modules(const char *spec)
{
    GPtrArray *mods = g_ptr_array_new();
    GString *cur = g_string_new(NULL);
    for (const char *p = spec; p && *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(mods, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    if (spec && *spec) {
        g_ptr_array_add(mods, g_string_free(cur, FALSE));
    } else {
        g_string_free(cur, TRUE);
    }
    g_ptr_array_add(mods, NULL);
    return (char **)g_ptr_array_free(mods, FALSE);
}

/* The a.out kludge: the header's addresses say which file bytes go where. */
static bool load_aout(BootCtx *b, const char *path, GBytes *kernel, size_t hdr,
                      uint64_t *end, uint64_t *entry, Error **errp)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    if (hdr + 32 > len) {
        error_setg(errp, "could not load kernel '%s': multiboot header truncated", path);
        return false;
    }
    uint32_t header_addr = boot_ld32(img + hdr + 12);
    uint32_t load_addr = boot_ld32(img + hdr + 16);
    uint32_t load_end = boot_ld32(img + hdr + 20);
    uint32_t bss_end = boot_ld32(img + hdr + 24);
    *entry = boot_ld32(img + hdr + 28);

    if (header_addr < load_addr || header_addr - load_addr > hdr) {
        error_setg(errp, "could not load kernel '%s': multiboot load_addr 0x%x does not "
                   "fit header_addr 0x%x at file offset 0x%zx", path, load_addr,
                   header_addr, hdr);
        return false;
    }
    size_t text = hdr - (header_addr - load_addr);
    uint64_t load_size;
    if (load_end) {
        if (load_end < load_addr || load_end - load_addr > len - text) {
            error_setg(errp, "could not load kernel '%s': multiboot load_end_addr 0x%x "
                       "is outside the file (%zu bytes)", path, load_end, len);
            return false;
        }
        load_size = load_end - load_addr;
    } else {
        load_size = len - text;
    }
    uint64_t mem_size = load_size;
    if (bss_end) {
        if (bss_end < load_addr + load_size) {
            error_setg(errp, "could not load kernel '%s': multiboot bss_end_addr 0x%x "
                       "is below the end of the loaded image", path, bss_end);
            return false;
        }
        mem_size = bss_end - load_addr;
    }
    g_autofree char *what = g_strdup_printf("kernel '%s'", path);
    g_autoptr(GBytes) part = g_bytes_new_from_bytes(kernel, text, load_size);
    if (!boot_add_bytes(b, load_addr, part, what, errp) ||
        !boot_add_zero(b, load_addr + load_size, mem_size - load_size, what, errp)) {
        error_prepend(errp, "could not load kernel '%s': ", path);
        return false;
    }
    *end = load_addr + mem_size;
    return true;
}

/* Appends s with its NUL to the info block, returning its offset in the block. */
static uint32_t add_string(GByteArray *info, const char *s)
{
    uint32_t off = info->len;
    g_byte_array_append(info, (const guint8 *)s, strlen(s) + 1);
    return off;
}

/* Where the info block goes: QEMU's spot when it is free, else after the modules. */
static uint64_t multiboot_info_base(const BootCtx *b, uint64_t len, uint64_t after_modules)
{
    if (BOOT_MBI_ADDR + len <= BOOT_LOWMEM_END && boot_range_free(b, BOOT_MBI_ADDR, len)) {
        return BOOT_MBI_ADDR;
    }
    return after_modules;
}

bool boot_multiboot_load(BootCtx *b, const char *path, GBytes *kernel, const char *modules,
                         const char *cmdline, CpuBootState *bsp, Error **errp)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    long hdr = multiboot_find_header(img, len);
    uint64_t end, entry, low;

    if (hdr < 0) {
        error_setg(errp, "could not load kernel '%s': no multiboot header", path);
        return false;
    }
    uint32_t flags = boot_ld32(img + hdr + 4);
    if (flags & MB_FLAG_AOUT_KLUDGE) {
        if (!load_aout(b, path, kernel, hdr, &end, &entry, errp)) {
            return false;
        }
    } else if (!boot_elf_is_x86(img, len)) {
        error_setg(errp, "could not load kernel '%s': multiboot image is not an ELF file "
                   "and its header has no load addresses (flag 16)", path);
        return false;
    } else if (!boot_elf_load(b, path, kernel, &low, &end, &entry, errp)) {
        return false;
    }
    if (entry >= PC_4G) {
        error_setg(errp, "could not load kernel '%s': multiboot entry point 0x%"
                   G_GINT64_MODIFIER "x is not a 32-bit address", path, entry);
        return false;
    }

    g_auto(GStrv) mods = multiboot_split_modules(modules);
    unsigned nmods = g_strv_length(mods);
    uint64_t mod_addr = PAGE_ALIGN(end);
    size_t mmap_off = MBI_SIZE;
    size_t mods_off = mmap_off + b->e820_count * MMAP_ENTRY_SIZE;
    GByteArray *info = g_byte_array_new();
    g_byte_array_set_size(info, mods_off + nmods * MOD_ENTRY_SIZE);
    memset(info->data, 0, info->len);

    g_autofree char *full_cmdline = g_strdup_printf("%s %s", path, cmdline ? cmdline : "");
    uint32_t cmdline_off = add_string(info, full_cmdline);
    uint32_t loader_off = add_string(info, "sen");
    g_autofree uint32_t *mod_str_off = g_new0(uint32_t, nmods + 1);

    for (unsigned i = 0; i < nmods; i++) {
        g_autofree char *file = g_strdup(mods[i]);
        char *space = strchr(file, ' ');
        if (space) {
            *space = '\0';
        }
        g_autoptr(GBytes) bytes = boot_file_read("multiboot module", file,
                                                 b->below_4g + b->above_4g, errp);
        if (!bytes) {
            g_byte_array_unref(info);
            return false;
        }
        size_t size = g_bytes_get_size(bytes);
        g_autofree char *what = g_strdup_printf("multiboot module '%s'", file);
        if (!boot_add_bytes(b, mod_addr, bytes, what, errp)) {
            error_prepend(errp, "could not load multiboot module '%s': ", file);
            g_byte_array_unref(info);
            return false;
        }
        uint8_t *e = info->data + mods_off + i * MOD_ENTRY_SIZE;
        boot_st32(e, (uint32_t)mod_addr);
        boot_st32(e + 4, (uint32_t)(mod_addr + size));
        mod_str_off[i] = add_string(info, mods[i]);
        mod_addr = PAGE_ALIGN(mod_addr + size);
    }

    uint64_t base = multiboot_info_base(b, info->len, mod_addr);
    for (unsigned i = 0; i < nmods; i++) {
        boot_st32(info->data + mods_off + i * MOD_ENTRY_SIZE + 8,
                  (uint32_t)(base + mod_str_off[i]));
    }

    for (unsigned i = 0; i < b->e820_count; i++) {
        uint8_t *e = info->data + mmap_off + i * MMAP_ENTRY_SIZE;
        boot_st32(e, MMAP_ENTRY_SIZE - 4);
        boot_st64(e + 4, b->e820[i].addr);
        boot_st64(e + 12, b->e820[i].size);
        boot_st32(e + 20, b->e820[i].type);
    }

    uint8_t *mbi = info->data;
    boot_st32(mbi + MBI_FLAGS, MBI_MEMORY | MBI_BOOT_DEVICE | MBI_CMDLINE | MBI_MODS |
                               MBI_MMAP | MBI_LOADER_NAME);
    boot_st32(mbi + MBI_MEM_LOWER, 640);
    boot_st32(mbi + MBI_MEM_UPPER, (uint32_t)(MAX(b->below_4g, BOOT_HIGH_ADDR) / 1024 - 1024));
    boot_st32(mbi + MBI_BOOTDEV, BOOT_DEVICE_NONE);
    boot_st32(mbi + MBI_CMDLINE_PTR, (uint32_t)(base + cmdline_off));
    boot_st32(mbi + MBI_MODS_COUNT, nmods);
    boot_st32(mbi + MBI_MODS_ADDR, nmods ? (uint32_t)(base + mods_off) : 0);
    boot_st32(mbi + MBI_MMAP_LENGTH, b->e820_count * MMAP_ENTRY_SIZE);
    boot_st32(mbi + MBI_MMAP_ADDR, (uint32_t)(base + mmap_off));
    boot_st32(mbi + MBI_LOADER_PTR, (uint32_t)(base + loader_off));

    bool ok = true;
    /* multiboot_info_base() only picks BOOT_MBI_ADDR when the block fits below
     * BOOT_LOWMEM_END; a larger one goes after the modules. */
    if (base + info->len > PC_4G) {
        error_setg(errp, "could not load kernel '%s': no room below 4 GiB for the "
                   "multiboot information after the modules", path);
        ok = false;
    } else if (!boot_add_copy(b, base, info->data, info->len, "multiboot info", errp) ||
               !boot_write_gdt(b, false, bsp, errp)) {
        error_prepend(errp, "could not load kernel '%s': ", path);
        ok = false;
    }
    g_byte_array_unref(info);
    if (!ok) {
        return false;
    }
    bsp->mode = CPU_BOOT_PROT32;
    bsp->rip = entry;
    bsp->rax = MULTIBOOT_BOOTLOADER_MAGIC;
    bsp->rbx = base;
    bsp->rsp = BOOT_STACK_TOP;
    return true;
}
