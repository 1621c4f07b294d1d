/*
 * What every direct-boot loader shares: the list of images in guest RAM (kept for reset),
 * the boot GDT, the identity page tables, and a bounds-checked ELF reader.
 *
 * Every offset and size read from a kernel file is checked against the file length
 * before use, with overflow-safe arithmetic: a corrupt image is an error, never a crash.
 */
#include <elf.h>
#include <string.h>
#include "hw/i386/boot.h"
#include "sen/host-file.h"

static void blob_free(gpointer p)
{
    BootBlob *blob = p;
    if (blob->data) {
        g_bytes_unref(blob->data);
    }
    g_free(blob->what);
    g_free(blob);
}

void boot_ctx_init(BootCtx *b, GuestMemory *mem, uint64_t below_4g, uint64_t above_4g)
{
    *b = (BootCtx){ .mem = mem, .below_4g = below_4g, .above_4g = above_4g };
    b->e820_count = e820_build(below_4g, above_4g, b->e820);
    b->blobs = g_ptr_array_new_with_free_func(blob_free);
}

void boot_ctx_clear(BootCtx *b)
{
    if (b->blobs) {
        g_ptr_array_free(b->blobs, TRUE);
        b->blobs = NULL;
    }
}

static void blob_write(BootCtx *b, const BootBlob *blob)
{
    bool ok;
    if (b->capture) {
        return;
    }
    if (blob->data) {
        ok = guest_mem_write(b->mem, blob->gpa, g_bytes_get_data(blob->data, NULL),
                             blob->len);
    } else {
        ok = guest_mem_fill(b->mem, blob->gpa, 0, blob->len);
    }
    /* Checked when the blob was added and RAM never shrinks. */
    g_assert(ok);
}

/* The first blob already loaded that overlaps gpa..gpa+len-1, or NULL. */
static const BootBlob *blob_overlapping(const BootCtx *b, uint64_t gpa, uint64_t len)
{
    for (guint i = 0; b->blobs && i < b->blobs->len; i++) {
        const BootBlob *o = g_ptr_array_index(b->blobs, i);
        if (gpa < o->gpa + o->len && o->gpa < gpa + len) {
            return o;
        }
    }
    return NULL;
}

bool boot_range_free(const BootCtx *b, uint64_t gpa, uint64_t len)
{
    return blob_overlapping(b, gpa, len) == NULL;
}

static bool add_blob(BootCtx *b, uint64_t gpa, uint64_t len, GBytes *data,
                     const char *what, Error **errp)
{
    if (len == 0) {
        return true;
    }
    if (gpa + len < gpa || !guest_mem_is_ram(b->mem, gpa, len)) {
        error_setg(errp, "%s at 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER "x is not "
                   "inside guest RAM (%" G_GUINT64_FORMAT " MiB below 4 GiB)", what, gpa,
                   gpa + len - 1, b->below_4g >> 20);
        return false;
    }
    const BootBlob *o = blob_overlapping(b, gpa, len);
    if (o) {
        error_setg(errp, "%s at 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER "x "
                   "overlaps %s at 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER "x",
                   what, gpa, gpa + len - 1, o->what, o->gpa, o->gpa + o->len - 1);
        return false;
    }
    BootBlob *blob = g_new0(BootBlob, 1);
    blob->gpa = gpa;
    blob->len = len;
    blob->data = data ? g_bytes_ref(data) : NULL;
    blob->what = g_strdup(what);
    g_ptr_array_add(b->blobs, blob);
    blob_write(b, blob);
    return true;
}

bool boot_add_bytes(BootCtx *b, uint64_t gpa, GBytes *data, const char *what, Error **errp)
{
    return add_blob(b, gpa, g_bytes_get_size(data), data, what, errp);
}

bool boot_add_copy(BootCtx *b, uint64_t gpa, const void *data, size_t len,
                   const char *what, Error **errp)
{
    g_autoptr(GBytes) bytes = g_bytes_new(data, len);
    return add_blob(b, gpa, len, bytes, what, errp);
}

bool boot_add_zero(BootCtx *b, uint64_t gpa, uint64_t len, const char *what, Error **errp)
{
    return add_blob(b, gpa, len, NULL, what, errp);
}

void boot_restore(BootCtx *b)
{
    for (guint i = 0; i < b->blobs->len; i++) {
        blob_write(b, g_ptr_array_index(b->blobs, i));
    }
}

uint64_t boot_blobs_end(const BootCtx *b)
{
    uint64_t end = 0;
    for (guint i = 0; i < b->blobs->len; i++) {
        const BootBlob *blob = g_ptr_array_index(b->blobs, i);
        end = MAX(end, blob->gpa + blob->len);
    }
    return end;
}

bool boot_place_top(uint64_t lo, uint64_t hi, uint64_t len, uint64_t *addr)
{
    if (hi < len) {
        return false;
    }
    uint64_t a = (hi - len) & ~0xfffULL;
    if (a < lo) {
        return false;
    }
    *addr = a;
    return true;
}

/* ---- GDT and page tables ---- */

/* Flat 4 GiB descriptors, accessed bit set so the CPU never writes the GDT. */
#define GDT_CODE32 0x00cf9b000000ffffULL
#define GDT_CODE64 0x00af9b000000ffffULL
#define GDT_DATA   0x00cf93000000ffffULL

bool boot_write_gdt(BootCtx *b, bool long64, CpuBootState *bsp, Error **errp)
{
    uint8_t gdt[4 * 8] = { 0 };
    boot_st64(gdt + BOOT_SEL_CS32, GDT_CODE32);
    boot_st64(gdt + BOOT_SEL_CS, long64 ? GDT_CODE64 : GDT_CODE32);
    boot_st64(gdt + BOOT_SEL_DS, GDT_DATA);
    if (!boot_add_copy(b, BOOT_GDT_ADDR, gdt, sizeof(gdt), "boot GDT", errp)) {
        return false;
    }
    bsp->gdt_base = BOOT_GDT_ADDR;
    bsp->gdt_limit = sizeof(gdt) - 1;
    bsp->cs = BOOT_SEL_CS;
    bsp->ds = BOOT_SEL_DS;
    return true;
}

#define PTE_P   0x1ULL
#define PTE_RW  0x2ULL
#define PTE_PS  0x80ULL

bool boot_write_page_tables(BootCtx *b, CpuBootState *bsp, Error **errp)
{
    /* PML4, PDPT, then 4 page directories of 512 2-MiB pages each. */
    const size_t pages = 6;
    g_autofree uint8_t *pt = g_malloc0(pages * 4096);
    const uint64_t pdpt = BOOT_PAGETABLE_ADDR + 4096;
    const uint64_t pd = BOOT_PAGETABLE_ADDR + 2 * 4096;

    boot_st64(pt, pdpt | PTE_P | PTE_RW);
    for (unsigned i = 0; i < 4; i++) {
        boot_st64(pt + 4096 + i * 8, (pd + i * 4096) | PTE_P | PTE_RW);
    }
    for (unsigned i = 0; i < 4 * 512; i++) {
        boot_st64(pt + 2 * 4096 + i * 8, ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_PS);
    }
    if (!boot_add_copy(b, BOOT_PAGETABLE_ADDR, pt, pages * 4096, "boot page tables", errp)) {
        return false;
    }
    bsp->cr3 = BOOT_PAGETABLE_ADDR;
    return true;
}

/* ---- ELF ---- */

/* The fields of one program header, from either class. */
typedef struct ElfPhdr {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz;
} ElfPhdr;

typedef struct ElfInfo {
    bool is64;
    uint64_t entry;
    uint64_t phoff;
    uint32_t phentsize, phnum;
} ElfInfo;

bool boot_elf_is_x86(const uint8_t *img, size_t len)
{
    if (len < EI_NIDENT + 4 || memcmp(img, ELFMAG, SELFMAG) != 0 ||
        img[EI_DATA] != ELFDATA2LSB) {
        return false;
    }
    uint16_t machine = boot_ld16(img + 18);
    if (img[EI_CLASS] == ELFCLASS32) {
        return len >= sizeof(Elf32_Ehdr) && (machine == EM_386 || machine == EM_X86_64);
    }
    if (img[EI_CLASS] == ELFCLASS64) {
        return len >= sizeof(Elf64_Ehdr) && machine == EM_X86_64;
    }
    return false;
}

static bool elf_info(const uint8_t *img, size_t len, ElfInfo *ei)
{
    if (!boot_elf_is_x86(img, len)) {
        return false;
    }
    ei->is64 = img[EI_CLASS] == ELFCLASS64;
    if (ei->is64) {
        ei->entry = boot_ld64(img + offsetof(Elf64_Ehdr, e_entry));
        ei->phoff = boot_ld64(img + offsetof(Elf64_Ehdr, e_phoff));
        ei->phentsize = boot_ld16(img + offsetof(Elf64_Ehdr, e_phentsize));
        ei->phnum = boot_ld16(img + offsetof(Elf64_Ehdr, e_phnum));
    } else {
        ei->entry = boot_ld32(img + offsetof(Elf32_Ehdr, e_entry));
        ei->phoff = boot_ld32(img + offsetof(Elf32_Ehdr, e_phoff));
        ei->phentsize = boot_ld16(img + offsetof(Elf32_Ehdr, e_phentsize));
        ei->phnum = boot_ld16(img + offsetof(Elf32_Ehdr, e_phnum));
    }
    size_t min = ei->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    if (ei->phnum == 0 || ei->phentsize < min || ei->phoff > len ||
        (uint64_t)ei->phnum * ei->phentsize > len - ei->phoff) {
        return false;
    }
    return true;
}

static ElfPhdr elf_phdr(const uint8_t *img, const ElfInfo *ei, unsigned i)
{
    const uint8_t *p = img + ei->phoff + (uint64_t)i * ei->phentsize;
    ElfPhdr ph;
    if (ei->is64) {
        ph.type = boot_ld32(p + offsetof(Elf64_Phdr, p_type));
        ph.offset = boot_ld64(p + offsetof(Elf64_Phdr, p_offset));
        ph.vaddr = boot_ld64(p + offsetof(Elf64_Phdr, p_vaddr));
        ph.paddr = boot_ld64(p + offsetof(Elf64_Phdr, p_paddr));
        ph.filesz = boot_ld64(p + offsetof(Elf64_Phdr, p_filesz));
        ph.memsz = boot_ld64(p + offsetof(Elf64_Phdr, p_memsz));
    } else {
        ph.type = boot_ld32(p + offsetof(Elf32_Phdr, p_type));
        ph.offset = boot_ld32(p + offsetof(Elf32_Phdr, p_offset));
        ph.vaddr = boot_ld32(p + offsetof(Elf32_Phdr, p_vaddr));
        ph.paddr = boot_ld32(p + offsetof(Elf32_Phdr, p_paddr));
        ph.filesz = boot_ld32(p + offsetof(Elf32_Phdr, p_filesz));
        ph.memsz = boot_ld32(p + offsetof(Elf32_Phdr, p_memsz));
    }
    return ph;
}

static bool range_in_file(uint64_t off, uint64_t size, size_t len)
{
    return off <= len && size <= len - off;
}

bool boot_elf_find_note(const uint8_t *img, size_t len, const char *name, uint32_t type,
                        const uint8_t **desc, uint32_t *desc_len)
{
    ElfInfo ei;
    if (!elf_info(img, len, &ei)) {
        return false;
    }
    size_t namelen = strlen(name) + 1;
    for (unsigned i = 0; i < ei.phnum; i++) {
        ElfPhdr ph = elf_phdr(img, &ei, i);
        if (ph.type != PT_NOTE || !range_in_file(ph.offset, ph.filesz, len)) {
            continue;
        }
        const uint8_t *p = img + ph.offset;
        uint64_t left = ph.filesz;
        while (left >= 12) {
            uint64_t nsz = boot_ld32(p), dsz = boot_ld32(p + 4);
            uint32_t ntype = boot_ld32(p + 8);
            uint64_t nsz_pad = (nsz + 3) & ~3ULL, dsz_pad = (dsz + 3) & ~3ULL;
            if (nsz_pad > left - 12 || dsz_pad > left - 12 - nsz_pad) {
                break; /* truncated note: ignore the rest of this segment */
            }
            if (ntype == type && nsz == namelen && memcmp(p + 12, name, namelen) == 0) {
                *desc = p + 12 + nsz_pad;
                *desc_len = (uint32_t)dsz;
                return true;
            }
            p += 12 + nsz_pad + dsz_pad;
            left -= 12 + nsz_pad + dsz_pad;
        }
    }
    return false;
}

bool boot_elf_load(BootCtx *b, const char *path, GBytes *image, uint64_t *low,
                   uint64_t *high, uint64_t *entry, Error **errp)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(image, &len);
    ElfInfo ei;
    if (!elf_info(img, len, &ei)) {
        error_setg(errp, "could not load kernel '%s': bad ELF header or program headers",
                   path);
        return false;
    }
    uint64_t lo = UINT64_MAX, hi = 0, phys_entry = ei.entry;
    for (unsigned i = 0; i < ei.phnum; i++) {
        ElfPhdr ph = elf_phdr(img, &ei, i);
        if (ph.type != PT_LOAD || ph.memsz == 0) {
            continue;
        }
        if (!range_in_file(ph.offset, ph.filesz, len)) {
            error_setg(errp, "could not load kernel '%s': segment %u (offset 0x%"
                       G_GINT64_MODIFIER "x, 0x%" G_GINT64_MODIFIER "x bytes) lies beyond "
                       "the end of the file (%zu bytes)", path, i, ph.offset, ph.filesz,
                       len);
            return false;
        }
        if (ph.filesz > ph.memsz || ph.paddr + ph.memsz < ph.paddr) {
            error_setg(errp, "could not load kernel '%s': segment %u has a bad size", path,
                       i);
            return false;
        }
        g_autofree char *what = g_strdup_printf("kernel segment %u", i);
        g_autoptr(GBytes) part = g_bytes_new_from_bytes(image, ph.offset, ph.filesz);
        if (!boot_add_bytes(b, ph.paddr, part, what, errp) ||
            !boot_add_zero(b, ph.paddr + ph.filesz, ph.memsz - ph.filesz, what, errp)) {
            error_prepend(errp, "could not load kernel '%s': ", path);
            return false;
        }
        lo = MIN(lo, ph.paddr);
        hi = MAX(hi, ph.paddr + ph.memsz);
        /* Images linked at a virtual address (p_vaddr != p_paddr) give a virtual entry. */
        if (ei.entry >= ph.vaddr && ei.entry - ph.vaddr < ph.memsz) {
            phys_entry = ph.paddr + (ei.entry - ph.vaddr);
        }
    }
    if (hi == 0) {
        error_setg(errp, "could not load kernel '%s': no loadable segment", path);
        return false;
    }
    *low = lo;
    *high = hi;
    *entry = phys_entry;
    return true;
}

/* ---- choosing the loader ---- */

BootKind boot_detect(const uint8_t *img, size_t len)
{
    if (len >= 0x208 && boot_ld32(img + 0x202) == 0x53726448 /* "HdrS" */) {
        return BOOT_KIND_LINUX;
    }
    /* Multiboot before PVH, as QEMU: an ELF may carry both (our guest kit does). */
    if (multiboot_find_header(img, len) >= 0) {
        return BOOT_KIND_MULTIBOOT;
    }
    const uint8_t *desc;
    uint32_t dlen;
    if (boot_elf_find_note(img, len, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &desc, &dlen)) {
        return BOOT_KIND_PVH;
    }
    return BOOT_KIND_UNKNOWN;
}

GBytes *boot_file_read(const char *what, const char *path, uint64_t max, Error **errp)
{
    GBytes *data = host_file_read(path, max, errp);
    if (!data) {
        error_prepend(errp, "could not load %s '%s': ", what, path);
    }
    return data;
}

/* A file larger than the guest's RAM cannot be loaded into it. */
static GBytes *read_file(const BootCtx *b, const char *what, const char *path, Error **errp)
{
    return boot_file_read(what, path, b->below_4g + b->above_4g, errp);
}

/* A multiboot magic whose checksum is wrong, for a better error message. */
static long bad_multiboot_header(const uint8_t *img, size_t len)
{
    for (size_t off = 0; off + 4 <= MIN(len, (size_t)MULTIBOOT_SEARCH); off += 4) {
        if (boot_ld32(img + off) == MULTIBOOT_HEADER_MAGIC) {
            return (long)off;
        }
    }
    return -1;
}

bool boot_kernel_load(BootCtx *b, const char *kernel_path, const char *initrd,
                      const char *cmdline, CpuBootState *bsp, Error **errp)
{
    g_autoptr(GBytes) kernel = read_file(b, "kernel", kernel_path, errp);
    if (!kernel) {
        return false;
    }
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    BootKind kind = boot_detect(img, len);

    if (kind == BOOT_KIND_MULTIBOOT) {
        return boot_multiboot_load(b, kernel_path, kernel, initrd, cmdline, bsp, errp);
    }
    if (kind == BOOT_KIND_UNKNOWN) {
        long bad = bad_multiboot_header(img, len);
        if (bad >= 0) {
            error_setg(errp, "could not load kernel '%s': multiboot header at offset 0x%lx "
                       "has a bad checksum", kernel_path, bad);
        } else {
            error_setg(errp, "could not load kernel '%s': not a Linux bzImage, PVH ELF or "
                       "multiboot image", kernel_path);
        }
        return false;
    }
    g_autoptr(GBytes) rd = NULL;
    if (initrd && !(rd = read_file(b, "initrd", initrd, errp))) {
        return false;
    }
    if (kind == BOOT_KIND_LINUX) {
        return boot_linux_load(b, kernel_path, kernel, rd, initrd, cmdline, bsp, errp);
    }
    return boot_pvh_load(b, kernel_path, kernel, rd, initrd, cmdline, bsp, errp);
}
