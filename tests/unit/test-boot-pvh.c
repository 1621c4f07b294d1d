/*
 * PVH direct boot (hw/i386/boot-pvh.c) on ELF images built here: the note, segment
 * loading, hvm_start_info with its module and memory map, and broken images.
 */
#include <elf.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "hw/i386/boot.h"
#include "boot-test-util.h"

#define INFO 0x7000ULL
#define SEG_OFF 0x1000
#define SEG_FILESZ 0x2000
#define SEG_MEMSZ 0x5000
#define SEG_PADDR 0x100000ULL
#define ENTRY 0x100010ULL

typedef struct FakeElf {
    bool is64;
    uint32_t note_type;
    uint32_t desc_size;     /* 4 or 8 */
    uint64_t entry;
    uint64_t paddr;
    uint64_t seg_offset;
} FakeElf;

static const FakeElf default_elf = {
    .is64 = true, .note_type = XEN_ELFNOTE_PHYS32_ENTRY, .desc_size = 8, .entry = ENTRY,
    .paddr = SEG_PADDR, .seg_offset = SEG_OFF,
};

/* ELF header, PT_LOAD (0x2000 bytes of pattern + bss), PT_NOTE with the Xen note. */
static GBytes *make_elf(const FakeElf *e)
{
    size_t len = SEG_OFF + SEG_FILESZ, note_off = 0x200;
    uint8_t *img = g_malloc0(len);
    uint8_t *n = img + note_off;
    boot_st32(n, 4);
    boot_st32(n + 4, e->desc_size);
    boot_st32(n + 8, e->note_type);
    memcpy(n + 12, "Xen", 4);
    if (e->desc_size == 8) {
        boot_st64(n + 16, e->entry);
    } else {
        boot_st32(n + 16, (uint32_t)e->entry);
    }
    size_t note_len = 16 + ((e->desc_size + 3) & ~3u);

    const BootTestPhdr ph[2] = {
        { .type = PT_LOAD, .offset = e->seg_offset,
          .vaddr = e->is64 ? 0xffffffff80000000ULL : 0, .paddr = e->paddr,
          .filesz = SEG_FILESZ, .memsz = SEG_MEMSZ },
        { .type = PT_NOTE, .offset = note_off, .filesz = note_len },
    };
    bt_put_elf(img, e->is64, e->is64 ? 0xffffffff81000000ULL : 0xc0000000, ph, 2);
    for (size_t i = SEG_OFF; i < len; i++) {
        img[i] = (uint8_t)(i * 13 + 1);
    }
    return g_bytes_new_take(img, len);
}

static void check_pvh(BootTestFixture *f, GBytes *kernel, GBytes *initrd, const char *cmdline)
{
    const uint8_t *img = g_bytes_get_data(kernel, NULL);

    g_assert_cmpint(f->bsp.mode, ==, CPU_BOOT_PROT32);
    g_assert_cmphex(f->bsp.rip, ==, ENTRY);
    g_assert_cmphex(f->bsp.rbx, ==, INFO);
    g_assert_cmphex(f->bsp.cs, ==, 0x10);
    g_assert_cmphex(bt_rd64(f, f->bsp.gdt_base + f->bsp.cs), ==, 0x00cf9b000000ffffULL);
    g_assert_cmphex(bt_rd64(f, f->bsp.gdt_base + f->bsp.ds), ==, 0x00cf93000000ffffULL);

    /* segment bytes and zeroed bss */
    uint8_t seg[SEG_MEMSZ];
    g_assert_true(guest_mem_read(f->mem, SEG_PADDR, seg, sizeof(seg)));
    g_assert_true(memcmp(seg, img + SEG_OFF, SEG_FILESZ) == 0);
    for (size_t i = SEG_FILESZ; i < SEG_MEMSZ; i++) {
        g_assert_cmpuint(seg[i], ==, 0);
    }

    /* hvm_start_info */
    g_assert_cmphex(bt_rd32(f, INFO), ==, 0x336ec578);
    g_assert_cmpuint(bt_rd32(f, INFO + 4), ==, 1);
    g_assert_cmpuint(bt_rd32(f, INFO + 8), ==, 0);
    uint64_t cmd = bt_rd64(f, INFO + 24);
    g_autofree char *got = g_malloc0(strlen(cmdline) + 1);
    g_assert_true(guest_mem_read(f->mem, cmd, got, strlen(cmdline) + 1));
    g_assert_cmpstr(got, ==, cmdline);
    g_assert_cmphex(bt_rd64(f, INFO + 32), ==, f->b.acpi_rsdp); /* rsdp_paddr */

    uint64_t memmap = bt_rd64(f, INFO + 40);
    g_assert_cmpuint(bt_rd32(f, INFO + 48), ==, f->b.e820_count);
    for (unsigned i = 0; i < f->b.e820_count; i++) {
        g_assert_cmphex(bt_rd64(f, memmap + i * 24), ==, f->b.e820[i].addr);
        g_assert_cmphex(bt_rd64(f, memmap + i * 24 + 8), ==, f->b.e820[i].size);
        g_assert_cmpuint(bt_rd32(f, memmap + i * 24 + 16), ==, f->b.e820[i].type);
        g_assert_cmpuint(bt_rd32(f, memmap + i * 24 + 20), ==, 0);
    }

    if (!initrd) {
        g_assert_cmpuint(bt_rd32(f, INFO + 12), ==, 0);
        return;
    }
    size_t ilen;
    const uint8_t *idata = g_bytes_get_data(initrd, &ilen);
    g_assert_cmpuint(bt_rd32(f, INFO + 12), ==, 1);
    uint64_t mod = bt_rd64(f, INFO + 16);
    uint64_t paddr = bt_rd64(f, mod), size = bt_rd64(f, mod + 8);
    g_assert_cmpuint(size, ==, ilen);
    g_assert_cmphex(paddr & 0xfff, ==, 0);
    g_assert_cmphex(paddr, >=, SEG_PADDR + SEG_MEMSZ);
    g_assert_cmphex(paddr + size, <=, f->b.below_4g);
    g_assert_cmphex(bt_rd64(f, mod + 16), ==, 0); /* cmdline_paddr */
    g_autofree uint8_t *buf = g_malloc(ilen);
    g_assert_true(guest_mem_read(f->mem, paddr, buf, ilen));
    g_assert_true(memcmp(buf, idata, ilen) == 0);
}

static void test_elf64(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 64 * MiB, BT_GARBAGE);
    f.b.acpi_rsdp = 0xf8000; /* the board's RSDP is announced in rsdp_paddr */
    g_autoptr(GBytes) k = make_elf(&default_elf);
    g_autoptr(GBytes) rd = g_bytes_new_static("initrd bytes", 12);
    g_assert_cmpint(boot_detect(g_bytes_get_data(k, NULL), g_bytes_get_size(k)), ==,
                    BOOT_KIND_PVH);
    g_assert_true(boot_pvh_load(&f.b, "vmlinux", k, rd, "rd", "console=ttyS0", &f.bsp,
                                &err));
    bt_assert_no_error(err);
    check_pvh(&f, k, rd, "console=ttyS0");
    g_assert_cmphex(bt_rd64(&f, INFO + 32), ==, 0xf8000);
    /* reset restores what the guest scribbled over */
    g_assert_true(guest_mem_fill(f.mem, 0, 0xee, 64 * MiB));
    boot_restore(&f.b);
    check_pvh(&f, k, rd, "console=ttyS0");
    bt_free(&f);
}

static void test_elf32(void)
{
    BootTestFixture f;
    Error *err = NULL;
    FakeElf e = default_elf;
    e.is64 = false;
    e.desc_size = 4;
    bt_init(&f, 32 * MiB, BT_GARBAGE);
    g_autoptr(GBytes) k = make_elf(&e);
    g_assert_cmpint(boot_detect(g_bytes_get_data(k, NULL), g_bytes_get_size(k)), ==,
                    BOOT_KIND_PVH);
    g_assert_true(boot_pvh_load(&f.b, "vmlinux", k, NULL, NULL, NULL, &f.bsp, &err));
    bt_assert_no_error(err);
    check_pvh(&f, k, NULL, "");
    g_assert_cmphex(bt_rd64(&f, INFO + 32), ==, 0); /* no ACPI: rsdp_paddr 0 */
    bt_free(&f);
}

static void expect_error(GBytes *k, const char *needle)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 64 * MiB, BT_GARBAGE);
    g_assert_false(boot_pvh_load(&f.b, "vmlinux", k, NULL, NULL, "", &f.bsp, &err));
    bt_assert_error(err, needle);
    bt_free(&f);
}

static void test_errors(void)
{
    FakeElf e = default_elf;
    e.note_type = 17;
    g_autoptr(GBytes) no_note = make_elf(&e);
    g_assert_cmpint(boot_detect(g_bytes_get_data(no_note, NULL),
                                g_bytes_get_size(no_note)), ==, BOOT_KIND_UNKNOWN);
    expect_error(no_note, "no PVH entry note");

    e = default_elf;
    e.desc_size = 2;
    g_autoptr(GBytes) bad_desc = make_elf(&e);
    expect_error(bad_desc, "not a 32-bit address");

    e = default_elf;
    e.seg_offset = 0x10000;
    g_autoptr(GBytes) beyond = make_elf(&e);
    expect_error(beyond, "beyond the end of the file");

    e = default_elf;
    e.paddr = 0x7ff00000;
    g_autoptr(GBytes) outside = make_elf(&e);
    expect_error(outside, "not inside guest RAM");

    e = default_elf;
    e.paddr = 0x7000; /* on top of hvm_start_info */
    g_autoptr(GBytes) overlap = make_elf(&e);
    expect_error(overlap, "overlaps");
}

/* Truncations and byte flips in the headers: errors, never a crash. */
static void test_corrupt(void)
{
    BootTestFixture f;
    bt_init(&f, 16 * MiB, BT_GARBAGE);
    g_autoptr(GBytes) k = make_elf(&default_elf);
    size_t len;
    const uint8_t *img = g_bytes_get_data(k, &len);
    for (size_t cut = 0; cut < len; cut += 5) {
        Error *err = NULL;
        bt_reset(&f);
        g_autoptr(GBytes) t = g_bytes_new_from_bytes(k, 0, cut);
        boot_detect(g_bytes_get_data(t, NULL), cut);
        if (!boot_pvh_load(&f.b, "vmlinux", t, NULL, NULL, "", &f.bsp, &err)) {
            error_free(err);
        }
    }
    for (size_t off = 0; off < 0x220; off++) {
        for (unsigned bit = 0; bit < 8; bit += 3) {
            Error *err = NULL;
            bt_reset(&f);
            g_autofree uint8_t *bad = g_memdup2(img, len);
            bad[off] ^= 1u << bit;
            g_autoptr(GBytes) t = g_bytes_new(bad, len);
            boot_detect(bad, len);
            if (!boot_pvh_load(&f.b, "vmlinux", t, NULL, NULL, "", &f.bsp, &err)) {
                error_free(err);
            }
        }
    }
    bt_free(&f);
}

/* From files, through the detection QEMU's -kernel does. */
static void test_from_file(void)
{
    BootTestFixture f;
    Error *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("sen-pvh-XXXXXX", NULL);
    g_autofree char *kpath = g_build_filename(dir, "vmlinux", NULL);
    g_autofree char *rpath = g_build_filename(dir, "initrd", NULL);
    g_autofree char *junk = g_build_filename(dir, "junk", NULL);
    g_autoptr(GBytes) k = make_elf(&default_elf);
    g_assert_true(g_file_set_contents(kpath, g_bytes_get_data(k, NULL),
                                      g_bytes_get_size(k), NULL));
    g_assert_true(g_file_set_contents(rpath, "0123456789", 10, NULL));
    g_assert_true(g_file_set_contents(junk, "hello world", 11, NULL));

    bt_init(&f, 64 * MiB, BT_GARBAGE);
    g_assert_true(boot_kernel_load(&f.b, kpath, rpath, "a b c", &f.bsp, &err));
    bt_assert_no_error(err);
    g_autoptr(GBytes) rd = g_bytes_new_static("0123456789", 10);
    check_pvh(&f, k, rd, "a b c");
    bt_free(&f);

    bt_init(&f, 64 * MiB, BT_GARBAGE);
    g_assert_false(boot_kernel_load(&f.b, junk, NULL, NULL, &f.bsp, &err));
    g_assert_nonnull(strstr(error_get_pretty(err),
                            "not a Linux bzImage, PVH ELF or multiboot image"));
    g_assert_nonnull(strstr(error_get_pretty(err), junk));
    error_free(err);
    err = NULL;
    g_autofree char *missing = g_build_filename(dir, "missing", NULL);
    g_assert_false(boot_kernel_load(&f.b, kpath, missing, NULL, &f.bsp, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "could not load initrd"));
    error_free(err);
    bt_free(&f);

    g_unlink(kpath);
    g_unlink(rpath);
    g_unlink(junk);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot-pvh/elf64", test_elf64);
    g_test_add_func("/boot-pvh/elf32", test_elf32);
    g_test_add_func("/boot-pvh/errors", test_errors);
    g_test_add_func("/boot-pvh/corrupt", test_corrupt);
    g_test_add_func("/boot-pvh/from-file", test_from_file);
    return g_test_run();
}
