/*
 * Multiboot v1 direct boot (hw/i386/boot-multiboot.c) on images built here: the a.out
 * kludge, 32- and 64-bit ELF, modules from -initrd, the info structure, broken images.
 */
#include <elf.h>
#include <string.h>
#include <glib.h>
#include "hw/i386/boot.h"
#include "boot-test-util.h"

#define MBI 0x9000ULL

static void put_header(uint8_t *p, uint32_t flags)
{
    boot_st32(p, MULTIBOOT_HEADER_MAGIC);
    boot_st32(p + 4, flags);
    boot_st32(p + 8, -(MULTIBOOT_HEADER_MAGIC + flags));
}

/* a.out kludge: 0x3000-byte file loaded at 1 MiB, header at 0x40, bss to 0x110000. */
#define AOUT_LEN 0x3000
static GBytes *make_aout_at(uint32_t load_addr, uint32_t load_end, uint32_t bss_end,
                           uint32_t header_addr)
{
    uint8_t *img = g_malloc0(AOUT_LEN);
    for (size_t i = 0; i < AOUT_LEN; i++) {
        img[i] = (uint8_t)(i * 3 + 7);
    }
    uint8_t *h = img + 0x40;
    put_header(h, 0x00010003);
    boot_st32(h + 12, header_addr);
    boot_st32(h + 16, load_addr);
    boot_st32(h + 20, load_end);
    boot_st32(h + 24, bss_end);
    boot_st32(h + 28, load_addr + 0x80);
    return g_bytes_new_take(img, AOUT_LEN);
}

static GBytes *make_aout(uint32_t load_end, uint32_t bss_end, uint32_t header_addr)
{
    return make_aout_at(0x100000, load_end, bss_end, header_addr);
}

/* One PT_LOAD at file offset 0x1000 (where the multiboot header is), paddr 2 MiB. */
static GBytes *make_elf(bool is64)
{
    size_t len = 0x2000;
    uint8_t *img = g_malloc0(len);
    for (size_t i = 0x1000; i < len; i++) {
        img[i] = (uint8_t)(i * 5);
    }
    put_header(img + 0x1000, 0x3);
    /* the 64-bit kernel is linked high and loaded low, as Linux-style kernels are */
    uint64_t high = is64 ? 0xffffffff80000000ULL : 0;
    const BootTestPhdr ph = { .type = PT_LOAD, .offset = 0x1000, .vaddr = high + 0x200000,
                              .paddr = 0x200000, .filesz = 0x1000, .memsz = 0x2000 };
    bt_put_elf(img, is64, high + 0x200100, &ph, 1);
    return g_bytes_new_take(img, len);
}

static void check_info(BootTestFixture *f, uint64_t mbi, const char *cmdline,
                       uint64_t kernel_end, const char *const *mod_strings,
                       GBytes *const *mod_data)
{
    g_assert_cmpint(f->bsp.mode, ==, CPU_BOOT_PROT32);
    g_assert_cmphex(f->bsp.rax, ==, 0x2badb002);
    g_assert_cmphex(f->bsp.rbx, ==, mbi);
    g_assert_cmphex(bt_rd64(f, f->bsp.gdt_base + f->bsp.cs), ==, 0x00cf9b000000ffffULL);

    uint32_t flags = bt_rd32(f, mbi);
    g_assert_cmphex(flags, ==, (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
    g_assert_cmpuint(bt_rd32(f, mbi + 4), ==, 640);
    g_assert_cmpuint(bt_rd32(f, mbi + 8), ==, f->b.below_4g / 1024 - 1024);
    g_assert_cmphex(bt_rd32(f, mbi + 12), ==, 0x8000ffff);
    g_autofree char *cmd = bt_rdstr(f, bt_rd32(f, mbi + 16));
    g_assert_cmpstr(cmd, ==, cmdline);
    g_autofree char *name = bt_rdstr(f, bt_rd32(f, mbi + 64));
    g_assert_cmpstr(name, ==, "sen");

    /* memory map: the e820 table with 4-byte size fields */
    uint32_t mmap_len = bt_rd32(f, mbi + 44), mmap = bt_rd32(f, mbi + 48);
    g_assert_cmpuint(mmap_len, ==, f->b.e820_count * 24);
    for (unsigned i = 0; i < f->b.e820_count; i++) {
        uint64_t e = mmap + i * 24;
        g_assert_cmpuint(bt_rd32(f, e), ==, 20);
        g_assert_cmphex(bt_rd64(f, e + 4), ==, f->b.e820[i].addr);
        g_assert_cmphex(bt_rd64(f, e + 12), ==, f->b.e820[i].size);
        g_assert_cmpuint(bt_rd32(f, e + 20), ==, f->b.e820[i].type);
    }

    unsigned nmods = mod_strings ? g_strv_length((char **)mod_strings) : 0;
    g_assert_cmpuint(bt_rd32(f, mbi + 20), ==, nmods);
    uint32_t mods = bt_rd32(f, mbi + 24);
    uint64_t prev_end = kernel_end;
    for (unsigned i = 0; i < nmods; i++) {
        uint32_t start = bt_rd32(f, mods + i * 16), end = bt_rd32(f, mods + i * 16 + 4);
        size_t len;
        const uint8_t *data = g_bytes_get_data(mod_data[i], &len);
        g_assert_cmphex(start & 0xfff, ==, 0);
        g_assert_cmphex(start, >=, prev_end);
        g_assert_cmpuint(end - start, ==, len);
        g_autofree uint8_t *buf = g_malloc(len + 1);
        g_assert_true(guest_mem_read(f->mem, start, buf, len));
        g_assert_true(memcmp(buf, data, len) == 0);
        g_autofree char *s = bt_rdstr(f, bt_rd32(f, mods + i * 16 + 8));
        g_assert_cmpstr(s, ==, mod_strings[i]);
        prev_end = end;
    }
}

static void test_aout_modules(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 64 * MiB, BT_GARBAGE | BT_TMPDIR);
    g_autoptr(GBytes) k = make_aout(0, 0x110000, 0x100040);
    const uint8_t *img = g_bytes_get_data(k, NULL);
    g_autofree char *kpath = bt_write_file(&f, "kernel", img, AOUT_LEN);
    g_autofree uint8_t *m1 = g_malloc(5000);
    memset(m1, 0x42, 5000);
    g_autofree char *p1 = bt_write_file(&f, "mod1", m1, 5000);
    g_autofree char *p2 = bt_write_file(&f, "mod,2", "xyz", 3);
    g_autofree char *spec = g_strdup_printf("%s arg1 arg2,%s/mod,,2", p1, f.dir);
    g_autofree char *s1 = g_strdup_printf("%s arg1 arg2", p1);

    g_assert_cmpint(boot_detect(img, AOUT_LEN), ==, BOOT_KIND_MULTIBOOT);
    g_assert_true(boot_kernel_load(&f.b, kpath, spec, "console=ttyS0", &f.bsp, &err));
    bt_assert_no_error(err);
    g_assert_cmphex(f.bsp.rip, ==, 0x100080);

    uint8_t buf[AOUT_LEN];
    g_assert_true(guest_mem_read(f.mem, 0x100000, buf, AOUT_LEN));
    g_assert_true(memcmp(buf, img, AOUT_LEN) == 0);
    g_assert_true(guest_mem_read(f.mem, 0x100000 + AOUT_LEN, buf, AOUT_LEN));
    for (size_t i = 0; i < AOUT_LEN; i++) {
        g_assert_cmpuint(buf[i], ==, 0); /* bss */
    }
    g_autofree char *cmdline = g_strdup_printf("%s console=ttyS0", kpath);
    const char *strings[] = { s1, p2, NULL };
    g_autoptr(GBytes) d1 = g_bytes_new(m1, 5000);
    g_autoptr(GBytes) d2 = g_bytes_new("xyz", 3);
    GBytes *data[] = { d1, d2 };
    check_info(&f, MBI, cmdline, 0x110000, strings, data);

    g_assert_true(guest_mem_fill(f.mem, 0, 0, 64 * MiB));
    boot_restore(&f.b);
    check_info(&f, MBI, cmdline, 0x110000, strings, data);
    bt_free(&f);
}

static void test_aout_load_end(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 16 * MiB, BT_GARBAGE | BT_TMPDIR);
    g_autoptr(GBytes) k = make_aout(0x102000, 0, 0x100040);
    g_assert_true(boot_multiboot_load(&f.b, "k", k, NULL, NULL, &f.bsp, &err));
    bt_assert_no_error(err);
    uint8_t buf[0x2000];
    g_assert_true(guest_mem_read(f.mem, 0x100000, buf, sizeof(buf)));
    g_assert_true(memcmp(buf, g_bytes_get_data(k, NULL), sizeof(buf)) == 0);
    uint8_t after;
    g_assert_true(guest_mem_read(f.mem, 0x102000, &after, 1));
    g_assert_cmpuint(after, ==, 0xff); /* nothing loaded past load_end, no bss */
    check_info(&f, MBI, "k ", 0x102000, NULL, NULL);
    bt_free(&f);
}

/* A kernel over QEMU's info spot (kvm-unit-tests' realmode.flat is at 0x8000-0xa86b):
 * the info goes after the modules and the image stays intact. */
static void test_info_moves_off_the_kernel(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 16 * MiB, BT_GARBAGE | BT_TMPDIR);
    g_autoptr(GBytes) k = make_aout_at(0x8000, 0, 0, 0x8040);
    g_autofree char *p1 = bt_write_file(&f, "m", "module", 6);
    g_assert_true(boot_multiboot_load(&f.b, "low", k, p1, "a", &f.bsp, &err));
    bt_assert_no_error(err);
    bt_assert_mem(&f, 0x8000, g_bytes_get_data(k, NULL), AOUT_LEN);
    const char *strings[] = { p1, NULL };
    g_autoptr(GBytes) d1 = g_bytes_new("module", 6);
    GBytes *data[] = { d1 };
    /* kernel to 0xb000, the module page at 0xb000, the info on the next page */
    check_info(&f, 0xc000, "low a", 0x8000 + AOUT_LEN, strings, data);
    bt_free(&f);
}

static void check_elf(bool is64)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 32 * MiB, BT_GARBAGE | BT_TMPDIR);
    g_autoptr(GBytes) k = make_elf(is64);
    g_assert_cmpint(boot_detect(g_bytes_get_data(k, NULL), g_bytes_get_size(k)), ==,
                    BOOT_KIND_MULTIBOOT);
    g_autofree char *p1 = bt_write_file(&f, "m", "module", 6);
    g_assert_true(boot_multiboot_load(&f.b, "kern.elf", k, p1, "x=1", &f.bsp, &err));
    bt_assert_no_error(err);
    g_assert_cmphex(f.bsp.rip, ==, 0x200100);
    uint8_t buf[0x2000];
    g_assert_true(guest_mem_read(f.mem, 0x200000, buf, sizeof(buf)));
    g_assert_true(memcmp(buf, (const uint8_t *)g_bytes_get_data(k, NULL) + 0x1000,
                         0x1000) == 0);
    for (size_t i = 0x1000; i < 0x2000; i++) {
        g_assert_cmpuint(buf[i], ==, 0);
    }
    const char *strings[] = { p1, NULL };
    g_autoptr(GBytes) d1 = g_bytes_new("module", 6);
    GBytes *data[] = { d1 };
    check_info(&f, MBI, "kern.elf x=1", 0x202000, strings, data);
    bt_free(&f);
}

static void test_elf32(void) { check_elf(false); }
static void test_elf64(void) { check_elf(true); }

static void test_split(void)
{
    g_auto(GStrv) a = multiboot_split_modules("a b,c");
    g_assert_cmpuint(g_strv_length(a), ==, 2);
    g_assert_cmpstr(a[0], ==, "a b");
    g_assert_cmpstr(a[1], ==, "c");
    g_auto(GStrv) b = multiboot_split_modules("x,,y,,,z");
    g_assert_cmpuint(g_strv_length(b), ==, 2);
    g_assert_cmpstr(b[0], ==, "x,y,");
    g_assert_cmpstr(b[1], ==, "z");
    g_auto(GStrv) c = multiboot_split_modules("");
    g_assert_cmpuint(g_strv_length(c), ==, 0);
    g_auto(GStrv) d = multiboot_split_modules(NULL);
    g_assert_cmpuint(g_strv_length(d), ==, 0);
}

static void expect_error(BootTestFixture *f, const char *kpath, const char *mods,
                         const char *needle)
{
    Error *err = NULL;
    g_assert_false(boot_kernel_load(&f->b, kpath, mods, NULL, &f->bsp, &err));
    bt_assert_error(err, needle);
}

static void test_errors(void)
{
    BootTestFixture f;
    bt_init(&f, 32 * MiB, BT_GARBAGE | BT_TMPDIR);

    g_autoptr(GBytes) k = make_aout(0, 0, 0x100040);
    g_autofree uint8_t *bad = g_memdup2(g_bytes_get_data(k, NULL), AOUT_LEN);
    bad[0x48] ^= 1; /* checksum */
    g_autofree char *p = bt_write_file(&f, "badsum", bad, AOUT_LEN);
    expect_error(&f, p, NULL, "bad checksum");

    g_autofree char *good = bt_write_file(&f, "good", g_bytes_get_data(k, NULL), AOUT_LEN);
    g_autofree char *missing = g_build_filename(f.dir, "nothere", NULL);
    g_autofree char *spec = g_strdup_printf("%s some args", missing);
    expect_error(&f, good, spec, "could not load multiboot module");
    boot_ctx_clear(&f.b);
    boot_ctx_init(&f.b, f.mem, f.b.below_4g, 0);

    g_autoptr(GBytes) long_end = make_aout(0x100000 + AOUT_LEN + 1, 0, 0x100040);
    g_autofree char *p2 = bt_write_file(&f, "longend", g_bytes_get_data(long_end, NULL),
                                     AOUT_LEN);
    expect_error(&f, p2, NULL, "load_end_addr");

    g_autoptr(GBytes) hdr_low = make_aout(0, 0, 0x0ffff0);
    g_autofree char *p3 = bt_write_file(&f, "hdrlow", g_bytes_get_data(hdr_low, NULL),
                                     AOUT_LEN);
    expect_error(&f, p3, NULL, "load_addr");

    g_autoptr(GBytes) small_bss = make_aout(0, 0x100100, 0x100040);
    g_autofree char *p4 = bt_write_file(&f, "smallbss", g_bytes_get_data(small_bss, NULL),
                                     AOUT_LEN);
    expect_error(&f, p4, NULL, "bss_end_addr");

    /* no a.out addresses and not an ELF */
    uint8_t raw[64] = { 0 };
    put_header(raw + 8, 0x3);
    g_autofree char *p5 = bt_write_file(&f, "raw", raw, sizeof(raw));
    expect_error(&f, p5, NULL, "not an ELF file");

    /* a kernel that loads over QEMU's info spot: the info moves to after it */
    g_autoptr(GBytes) low = NULL;
    uint8_t *img = g_malloc0(0x1000);
    uint8_t *h = img + 0x40;
    put_header(h, 0x00010000);
    boot_st32(h + 12, 0x9040);
    boot_st32(h + 16, 0x9000);
    boot_st32(h + 28, 0x9000);
    low = g_bytes_new_take(img, 0x1000);
    g_autofree char *p6 = bt_write_file(&f, "low", g_bytes_get_data(low, NULL), 0x1000);
    Error *err = NULL;
    boot_ctx_clear(&f.b);
    boot_ctx_init(&f.b, f.mem, f.b.below_4g, 0);
    g_assert_true(boot_kernel_load(&f.b, p6, NULL, NULL, &f.bsp, &err));
    bt_assert_no_error(err);
    g_assert_cmphex(f.bsp.rbx, ==, 0xa000);

    /* the header beyond the first 8 KiB is not found */
    g_autofree uint8_t *far = g_malloc0(0x3000);
    put_header(far + 0x2000, 0x00010000);
    g_assert_cmpint(boot_detect(far, 0x3000), ==, BOOT_KIND_UNKNOWN);
    bt_free(&f);
}

static void test_corrupt(void)
{
    BootTestFixture f;
    bt_init(&f, 16 * MiB, BT_GARBAGE | BT_TMPDIR);
    g_autoptr(GBytes) k = make_elf(false);
    size_t len;
    const uint8_t *img = g_bytes_get_data(k, &len);
    for (size_t off = 0; off < 0x80; off++) {
        for (unsigned bit = 0; bit < 8; bit += 2) {
            Error *err = NULL;
            bt_reset(&f);
            g_autofree uint8_t *bad = g_memdup2(img, len);
            bad[off] ^= 1u << bit;
            g_autoptr(GBytes) t = g_bytes_new(bad, len);
            if (!boot_multiboot_load(&f.b, "k", t, NULL, NULL, &f.bsp, &err)) {
                error_free(err);
            }
        }
    }
    g_autoptr(GBytes) a = make_aout(0, 0x110000, 0x100040);
    for (size_t cut = 0x4c; cut < 0x80; cut++) {
        Error *err = NULL;
        bt_reset(&f);
        g_autoptr(GBytes) t = g_bytes_new_from_bytes(a, 0, cut);
        if (!boot_multiboot_load(&f.b, "k", t, NULL, NULL, &f.bsp, &err)) {
            error_free(err);
        }
    }
    bt_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot-multiboot/aout-modules", test_aout_modules);
    g_test_add_func("/boot-multiboot/aout-load-end", test_aout_load_end);
    g_test_add_func("/boot-multiboot/info-moves-off-the-kernel",
                    test_info_moves_off_the_kernel);
    g_test_add_func("/boot-multiboot/elf32", test_elf32);
    g_test_add_func("/boot-multiboot/elf64", test_elf64);
    g_test_add_func("/boot-multiboot/split-modules", test_split);
    g_test_add_func("/boot-multiboot/errors", test_errors);
    g_test_add_func("/boot-multiboot/corrupt", test_corrupt);
    return g_test_run();
}
