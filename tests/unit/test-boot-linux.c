/*
 * Linux bzImage direct boot (hw/i386/boot-linux.c): a synthetic image built here, and the
 * stock Debian kernel when scripts/build-test-guest.sh has fetched it.  Every field the
 * boot protocol defines is read back from guest memory.
 */
#include <glob.h>
#include <string.h>
#include <glib.h>
#include "hw/i386/boot.h"
#include "boot-test-util.h"

#define BP 0x7000ULL

/* ---- a synthetic bzImage ---- */

typedef struct FakeKernel {
    uint16_t version;
    bool relocatable;
    bool kernel64;
    uint32_t cmdline_size;
    uint32_t initrd_addr_max;
    uint64_t pref_address;
    uint32_t init_size;
    size_t payload;
} FakeKernel;

static const FakeKernel default_kernel = {
    .version = 0x020f, .relocatable = true, .kernel64 = true, .cmdline_size = 2047,
    .initrd_addr_max = 0x7fffffff, .pref_address = 16 * MiB, .init_size = 4 * MiB,
    .payload = 64 * 1024,
};

/* setup_sects = 1: 1 KiB of setup, then the "protected-mode kernel" (a byte pattern). */
static GBytes *make_bzimage(const FakeKernel *k)
{
    size_t setup = 1024, len = setup + k->payload;
    uint8_t *img = g_malloc0(len);
    img[0x1f1] = 1;
    boot_st16(img + 0x1fe, 0xaa55);
    img[0x200] = 0xeb;
    img[0x201] = 0x66; /* header ends at 0x268 */
    memcpy(img + 0x202, "HdrS", 4);
    boot_st16(img + 0x206, k->version);
    boot_st16(img + 0x20e, 0x1234);  /* kernel_version: must be copied as is */
    img[0x211] = 0x01;               /* LOADED_HIGH */
    boot_st32(img + 0x214, 0x100000);
    boot_st32(img + 0x22c, k->initrd_addr_max);
    boot_st32(img + 0x230, 2 * MiB);
    img[0x234] = k->relocatable;
    img[0x235] = 21;
    boot_st16(img + 0x236, k->kernel64 ? 0x3 : 0);
    boot_st32(img + 0x238, k->cmdline_size);
    boot_st64(img + 0x258, k->pref_address);
    boot_st32(img + 0x260, k->init_size);
    for (size_t i = setup; i < len; i++) {
        img[i] = (uint8_t)(i * 7 + 3);
    }
    return g_bytes_new_take(img, len);
}

static GBytes *make_initrd(size_t len)
{
    uint8_t *d = g_malloc(len);
    for (size_t i = 0; i < len; i++) {
        d[i] = (uint8_t)(i ^ 0x5a);
    }
    return g_bytes_new_take(d, len);
}

/* ---- checks shared by the synthetic and the real kernel ---- */

static void check_boot(BootTestFixture *f, GBytes *kernel, GBytes *initrd, const char *cmdline,
                       uint64_t expect_load)
{
    size_t len;
    const uint8_t *img = g_bytes_get_data(kernel, &len);
    uint16_t version = boot_ld16(img + 0x206);
    size_t hdr_end = 0x202 + img[0x201];
    size_t setup = ((img[0x1f1] ? img[0x1f1] : 4) + 1) * 512;

    /* setup header copied, except the fields the loader owns */
    for (size_t off = 0x1f1; off < hdr_end; off++) {
        bool loader_field = off == 0x1fa || off == 0x1fb ||        /* vid_mode */
                            (off >= 0x210 && off < 0x21f + 1) ||  /* loader..ramdisk */
                            off == 0x224 || off == 0x225 ||        /* heap_end_ptr */
                            (off >= 0x228 && off < 0x22c) ||       /* cmd_line_ptr */
                            (off >= 0x23c && off < 0x248) ||       /* hardware_subarch */
                            (off >= 0x250 && off < 0x258);         /* setup_data */
        if (!loader_field) {
            g_assert_cmphex(bt_rd8(f, BP + off), ==, img[off]);
        }
    }
    g_assert_cmphex(bt_rd8(f, BP + 0x210), ==, 0xff);             /* type_of_loader */
    g_assert_cmphex(bt_rd8(f, BP + 0x211), ==, img[0x211] | 0x80); /* CAN_USE_HEAP */
    g_assert_cmphex(bt_rd16(f, BP + 0x224), ==, 0xfe00);           /* heap_end_ptr */
    g_assert_cmphex(bt_rd16(f, BP + 0x1fa), ==, 0xffff);           /* vid_mode */
    g_assert_cmphex(bt_rd32(f, BP + 0x23c), ==, 0);                /* hardware_subarch */
    g_assert_cmphex(bt_rd64(f, BP + 0x250), ==, 0);                /* setup_data */
    g_assert_cmphex(bt_rd32(f, BP + 0x214), ==, expect_load);      /* code32_start */

    /* command line */
    uint32_t cmd = bt_rd32(f, BP + 0x228);
    g_assert_cmphex(cmd, <, 0xa0000);
    bt_assert_mem(f, cmd, cmdline, strlen(cmdline) + 1);
    g_assert_cmpuint(strlen(cmdline), <=, boot_ld32(img + 0x238));

    /* initrd */
    uint32_t rd_addr = bt_rd32(f, BP + 0x218), rd_size = bt_rd32(f, BP + 0x21c);
    if (initrd) {
        size_t ilen;
        const uint8_t *idata = g_bytes_get_data(initrd, &ilen);
        g_assert_cmpuint(rd_size, ==, ilen);
        g_assert_cmphex(rd_addr & 0xfff, ==, 0);
        g_assert_cmphex((uint64_t)rd_addr + rd_size - 1, <=, boot_ld32(img + 0x22c));
        g_assert_cmphex((uint64_t)rd_addr + rd_size, <=, f->b.below_4g);
        g_assert_cmphex(rd_addr, >=, expect_load + MAX(len - setup,
                                         version >= 0x20a ? boot_ld32(img + 0x260) : 0));
        bt_assert_mem(f, rd_addr, idata, ilen);
    } else {
        g_assert_cmphex(rd_addr, ==, 0);
        g_assert_cmphex(rd_size, ==, 0);
    }

    /* e820 */
    g_assert_cmpuint(bt_rd8(f, BP + 0x1e8), ==, f->b.e820_count);
    for (unsigned i = 0; i < f->b.e820_count; i++) {
        g_assert_cmphex(bt_rd64(f, BP + 0x2d0 + i * 20), ==, f->b.e820[i].addr);
        g_assert_cmphex(bt_rd64(f, BP + 0x2d0 + i * 20 + 8), ==, f->b.e820[i].size);
        g_assert_cmphex(bt_rd32(f, BP + 0x2d0 + i * 20 + 16), ==, f->b.e820[i].type);
    }

    /* kernel bytes at the load address */
    bt_assert_mem(f, expect_load, img + setup, len - setup);

    /* CPU state, GDT and (64-bit) page tables */
    bool k64 = version >= 0x20c && (boot_ld16(img + 0x236) & 1);
    g_assert_cmphex(f->bsp.rsi, ==, BP);
    g_assert_cmphex(f->bsp.cs, ==, 0x10);
    g_assert_cmphex(f->bsp.ds, ==, 0x18);
    g_assert_cmphex(f->bsp.gdt_limit, >=, 0x1f);
    uint64_t cs = bt_rd64(f, f->bsp.gdt_base + 0x10), ds = bt_rd64(f, f->bsp.gdt_base + 0x18);
    g_assert_cmphex(ds, ==, 0x00cf93000000ffffULL);
    if (k64) {
        g_assert_cmpint(f->bsp.mode, ==, CPU_BOOT_LONG64);
        g_assert_cmphex(f->bsp.rip, ==, expect_load + 0x200);
        g_assert_cmphex(cs, ==, 0x00af9b000000ffffULL);
        uint64_t pml4 = f->bsp.cr3;
        g_assert_cmphex(pml4 & 0xfff, ==, 0);
        uint64_t pdpt = bt_rd64(f, pml4) & ~0xfffULL;
        g_assert_cmphex(bt_rd64(f, pml4) & 3, ==, 3);
        for (uint64_t gb = 0; gb < 4; gb++) {
            uint64_t pde = bt_rd64(f, pdpt + gb * 8);
            g_assert_cmphex(pde & 3, ==, 3);
            for (uint64_t i = 0; i < 512; i += 37) {
                uint64_t pte = bt_rd64(f, (pde & ~0xfffULL) + i * 8);
                g_assert_cmphex(pte, ==, ((gb << 30) + (i << 21)) | 0x83);
            }
        }
        /* boot_params, the command line and the kernel are identity-mapped */
        g_assert_cmphex(expect_load + len, <, 1ULL << 32);
    } else {
        g_assert_cmpint(f->bsp.mode, ==, CPU_BOOT_PROT32);
        g_assert_cmphex(f->bsp.rip, ==, expect_load);
        g_assert_cmphex(cs, ==, 0x00cf9b000000ffffULL);
    }
}

static bool load(BootTestFixture *f, GBytes *kernel, GBytes *initrd, const char *cmdline,
                 Error **errp)
{
    return boot_linux_load(&f->b, "bzImage", kernel, initrd, "initrd.img", cmdline,
                           &f->bsp, errp);
}

static void test_synthetic64(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 64 * MiB, 0);
    f.b.acpi_rsdp = 0xf8000; /* the board's RSDP is announced in acpi_rsdp_addr */
    g_autoptr(GBytes) k = make_bzimage(&default_kernel);
    g_autoptr(GBytes) rd = make_initrd(10000);
    g_assert_cmpint(boot_detect(g_bytes_get_data(k, NULL), g_bytes_get_size(k)), ==,
                    BOOT_KIND_LINUX);
    g_assert_true(load(&f, k, rd, "console=ttyS0 panic=-1", &err));
    bt_assert_no_error(err);
    check_boot(&f, k, rd, "console=ttyS0 panic=-1", 16 * MiB);
    g_assert_cmphex(bt_rd64(&f, BP + 0x070), ==, 0xf8000);
    /* highest page that fits */
    g_assert_cmphex(bt_rd32(&f, BP + 0x218), ==, (64 * MiB - 10000) & ~0xfffULL);
    bt_free(&f);
}

static void test_not_relocatable(void)
{
    BootTestFixture f;
    Error *err = NULL;
    FakeKernel kd = default_kernel;
    kd.relocatable = false;
    bt_init(&f, 64 * MiB, 0);
    g_autoptr(GBytes) k = make_bzimage(&kd);
    g_assert_true(load(&f, k, NULL, NULL, &err));
    bt_assert_no_error(err);
    check_boot(&f, k, NULL, "", 1 * MiB);
    bt_free(&f);
}

/* RAM too small for the preferred address: load at 1 MiB. */
static void test_small_ram(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 16 * MiB, 0);
    FakeKernel kd = default_kernel;
    kd.init_size = 1 * MiB;
    g_autoptr(GBytes) k = make_bzimage(&kd);
    g_assert_true(load(&f, k, NULL, "x", &err));
    bt_assert_no_error(err);
    check_boot(&f, k, NULL, "x", 1 * MiB);
    bt_free(&f);
}

static void test_protocol32(void)
{
    BootTestFixture f;
    Error *err = NULL;
    FakeKernel kd = default_kernel;
    kd.version = 0x020a;
    kd.kernel64 = false;
    bt_init(&f, 64 * MiB, 0);
    g_autoptr(GBytes) k = make_bzimage(&kd);
    g_autoptr(GBytes) rd = make_initrd(5000);
    g_assert_true(load(&f, k, rd, "root=/dev/vda", &err));
    bt_assert_no_error(err);
    check_boot(&f, k, rd, "root=/dev/vda", 16 * MiB);
    bt_free(&f);
}

static void test_initrd_addr_max(void)
{
    BootTestFixture f;
    Error *err = NULL;
    FakeKernel kd = default_kernel;
    kd.initrd_addr_max = 0x1fffffff;
    bt_init(&f, 1024 * MiB, 0);
    g_autoptr(GBytes) k = make_bzimage(&kd);
    g_autoptr(GBytes) rd = make_initrd(3 * 4096 + 1);
    g_assert_true(load(&f, k, rd, "", &err));
    bt_assert_no_error(err);
    check_boot(&f, k, rd, "", 16 * MiB);
    g_assert_cmphex(bt_rd32(&f, BP + 0x218), ==, 0x20000000 - 4 * 4096);
    bt_free(&f);
}

/* ram above 4 GiB: the e820 table has it, the initrd stays below the hole */
static void test_above_4g(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 0xe0000000ULL + 64 * MiB, 0);
    g_autoptr(GBytes) k = make_bzimage(&default_kernel);
    g_autoptr(GBytes) rd = make_initrd(4096);
    g_assert_true(load(&f, k, rd, "", &err));
    bt_assert_no_error(err);
    check_boot(&f, k, rd, "", 16 * MiB);
    g_assert_cmpuint(f.b.e820_count, ==, 6);
    bt_free(&f);
}

static void expect_error(GBytes *k, GBytes *rd, const char *cmdline, uint64_t ram,
                         const char *needle)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, ram, 0);
    g_assert_false(load(&f, k, rd, cmdline, &err));
    bt_assert_error(err, needle);
    bt_free(&f);
}

static void test_errors(void)
{
    FakeKernel kd = default_kernel;
    kd.version = 0x0205;
    g_autoptr(GBytes) old = make_bzimage(&kd);
    expect_error(old, NULL, "", 64 * MiB, "2.05 is too old");

    g_autoptr(GBytes) k = make_bzimage(&default_kernel);
    g_autoptr(GBytes) big = make_initrd(60 * MiB);
    expect_error(k, big, "", 64 * MiB, "could not load initrd 'initrd.img'");

    kd = default_kernel;
    kd.cmdline_size = 10;
    g_autoptr(GBytes) small_cmd = make_bzimage(&kd);
    expect_error(small_cmd, NULL, "console=ttyS0", 64 * MiB, "accepts at most 10");

    /* truncated: only the setup sectors */
    g_autoptr(GBytes) trunc = g_bytes_new_from_bytes(k, 0, 1024);
    expect_error(trunc, NULL, "", 64 * MiB, "truncated");
    g_autoptr(GBytes) tiny = g_bytes_new_from_bytes(k, 0, 0x208);
    expect_error(tiny, NULL, "", 64 * MiB, "'bzImage'");

    /* kernel larger than RAM */
    kd = default_kernel;
    kd.payload = 3 * MiB;
    g_autoptr(GBytes) huge = make_bzimage(&kd);
    expect_error(huge, NULL, "", 2 * MiB, "not inside guest RAM");
}

/* Every truncation and single-byte corruption of the header: an error or a boot, no crash
 * (run under ASan/valgrind to make this a memory-safety check). */
static void test_corrupt(void)
{
    BootTestFixture f;
    bt_init(&f, 32 * MiB, 0);
    g_autoptr(GBytes) k = make_bzimage(&default_kernel);
    size_t len;
    const uint8_t *img = g_bytes_get_data(k, &len);
    for (size_t cut = 0; cut < 1100; cut += 7) {
        Error *err = NULL;
        bt_reset(&f);
        g_autoptr(GBytes) t = g_bytes_new_from_bytes(k, 0, cut);
        if (!load(&f, t, NULL, "", &err)) {
            g_assert_nonnull(err);
            error_free(err);
        }
    }
    for (size_t off = 0x1f1; off < 0x268; off++) {
        Error *err = NULL;
        bt_reset(&f);
        g_autofree uint8_t *bad = g_memdup2(img, len);
        bad[off] ^= 0xff;
        g_autoptr(GBytes) t = g_bytes_new(bad, len);
        if (!load(&f, t, NULL, "", &err)) {
            g_assert_nonnull(err);
            error_free(err);
        }
    }
    bt_free(&f);
}

/* A reset puts back what the guest overwrote. */
static void test_restore(void)
{
    BootTestFixture f;
    Error *err = NULL;
    bt_init(&f, 64 * MiB, 0);
    g_autoptr(GBytes) k = make_bzimage(&default_kernel);
    g_autoptr(GBytes) rd = make_initrd(8192);
    g_assert_true(load(&f, k, rd, "a=b", &err));
    bt_assert_no_error(err);
    g_assert_true(guest_mem_fill(f.mem, 0, 0xcc, 64 * MiB));
    boot_restore(&f.b);
    check_boot(&f, k, rd, "a=b", 16 * MiB);
    bt_free(&f);
}

/* ---- the stock Debian kernel ---- */

static char *find_real_kernel(void)
{
    const char *env = g_getenv("SEN_TEST_GUEST_KERNEL");
    if (env && *env) {
        return g_strdup(env);
    }
    g_autofree char *cache = g_getenv("SEN_CACHE_DIR")
        ? g_strdup(g_getenv("SEN_CACHE_DIR"))
        : g_build_filename(g_get_home_dir(), ".cache", "sen", NULL);
    g_autofree char *pattern = g_build_filename(cache, "test-guest", "*", "boot",
                                                "vmlinuz-*", NULL);
    glob_t g;
    char *found = NULL;
    if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        found = g_strdup(g.gl_pathv[g.gl_pathc - 1]);
    }
    globfree(&g);
    return found;
}

static void test_real_kernel(void)
{
    g_autofree char *path = find_real_kernel();
    if (!path) {
        g_test_skip("no stock kernel: set SEN_TEST_GUEST_KERNEL or run "
                    "scripts/build-test-guest.sh");
        return;
    }
    BootTestFixture f;
    Error *err = NULL;
    gchar *data;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    g_autoptr(GBytes) k = g_bytes_new_take(data, len);
    const uint8_t *img = (const uint8_t *)data;
    g_assert_cmpint(boot_detect(img, len), ==, BOOT_KIND_LINUX);

    bt_init(&f, 512 * MiB, 0);
    g_autoptr(GBytes) rd = make_initrd(1 * MiB + 123);
    const char *cmdline = "console=ttyS0 panic=-1 noxsave";
    g_assert_true(boot_linux_load(&f.b, path, k, rd, "initrd", cmdline, &f.bsp, &err));
    bt_assert_no_error(err);
    uint64_t pref = boot_ld64(img + 0x258);
    g_test_message("%s: protocol %x, pref_address 0x%" G_GINT64_MODIFIER "x, init_size "
                   "0x%x", path, boot_ld16(img + 0x206), pref, boot_ld32(img + 0x260));
    check_boot(&f, k, rd, cmdline, img[0x234] ? pref : 1 * MiB);
    g_assert_cmpint(f.bsp.mode, ==, CPU_BOOT_LONG64); /* every x86-64 kernel since 3.8 */
    bt_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot-linux/synthetic-64bit", test_synthetic64);
    g_test_add_func("/boot-linux/not-relocatable", test_not_relocatable);
    g_test_add_func("/boot-linux/small-ram", test_small_ram);
    g_test_add_func("/boot-linux/protocol-32bit", test_protocol32);
    g_test_add_func("/boot-linux/initrd-addr-max", test_initrd_addr_max);
    g_test_add_func("/boot-linux/above-4g", test_above_4g);
    g_test_add_func("/boot-linux/errors", test_errors);
    g_test_add_func("/boot-linux/corrupt", test_corrupt);
    g_test_add_func("/boot-linux/reset-restores", test_restore);
    g_test_add_func("/boot-linux/debian-kernel", test_real_kernel);
    return g_test_run();
}
