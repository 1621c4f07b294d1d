/*
 * fw_cfg_io from outside: the legacy port interface (0x510/0x511) and the DMA interface
 * (0x514/0x518) with descriptors placed in guest RAM, as SeaBIOS and Linux use them.
 */
#include <string.h>
#include <unistd.h>
#include "libqtest.h"

#define SEL 0x510
#define DATA 0x511
#define DMA_HI 0x514
#define DMA_LO 0x518

#define DESC_ADDR 0x1000
#define BUF_ADDR 0x2000

static void fw_select(QTestState *s, uint16_t key)
{
    qtest_outw(s, SEL, key);
}

static void fw_read(QTestState *s, void *buf, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        p[i] = qtest_inb(s, DATA);
    }
}

static uint32_t fw_read32(QTestState *s, uint16_t key)
{
    uint8_t b[4];
    fw_select(s, key);
    fw_read(s, b, 4);
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t fw_read64(QTestState *s, uint16_t key)
{
    uint8_t b[8];
    uint64_t v = 0;
    fw_select(s, key);
    fw_read(s, b, 8);
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | b[i];
    }
    return v;
}

/* Finds name in the file directory; returns its select key and size. */
static bool fw_find_file(QTestState *s, const char *name, uint16_t *key, uint32_t *size)
{
    uint8_t cnt[4];
    fw_select(s, 0x19);
    fw_read(s, cnt, 4);
    uint32_t n = (uint32_t)cnt[0] << 24 | cnt[1] << 16 | cnt[2] << 8 | cnt[3];
    g_assert_cmpuint(n, <=, 0x20);
    char prev[57] = "";
    bool found = false;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t e[64];
        fw_read(s, e, 64);
        char fname[57] = { 0 };
        memcpy(fname, e + 8, 56);
        /* Sorted by name, as QEMU lists them. */
        g_assert_cmpint(strcmp(prev, fname), <, 0);
        strcpy(prev, fname);
        if (strcmp(fname, name) == 0) {
            *size = (uint32_t)e[0] << 24 | e[1] << 16 | e[2] << 8 | e[3];
            *key = (uint16_t)(e[4] << 8 | e[5]);
            found = true;
        }
    }
    return found;
}

static uint32_t bswap32(uint32_t v)
{
    return __builtin_bswap32(v);
}

/* Writes the descriptor at DESC_ADDR, starts it, returns the control word left there. */
static uint32_t fw_dma(QTestState *s, uint32_t control, uint32_t length, uint64_t addr)
{
    qtest_writel(s, DESC_ADDR, bswap32(control));
    qtest_writel(s, DESC_ADDR + 4, bswap32(length));
    qtest_writeq(s, DESC_ADDR + 8, __builtin_bswap64(addr));
    qtest_outl(s, DMA_HI, bswap32(0));
    qtest_outl(s, DMA_LO, bswap32(DESC_ADDR));
    return bswap32(qtest_readl(s, DESC_ADDR));
}

static void test_legacy(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-m 256M -smp 2,maxcpus=4");
    char sig[5] = { 0 };
    fw_select(s, 0x00);
    fw_read(s, sig, 4);
    g_assert_cmpstr(sig, ==, "QEMU");
    /* Past the end of an item reads give 0. */
    g_assert_cmphex(qtest_inb(s, DATA), ==, 0);
    /* Traditional interface and DMA. */
    g_assert_cmphex(fw_read32(s, 0x01), ==, 3);
    g_assert_cmphex(fw_read64(s, 0x03), ==, 256ULL << 20);
    g_assert_cmphex(fw_read32(s, 0x05) & 0xffff, ==, 2);
    g_assert_cmphex(fw_read32(s, 0x0f) & 0xffff, ==, 4);
    g_assert_cmphex(fw_read32(s, 0x8002), ==, 1);
    /* Re-selecting rewinds. */
    fw_select(s, 0x00);
    g_assert_cmphex(qtest_inb(s, DATA), ==, 'Q');
    /* An item that does not exist reads as zeroes; so do out-of-range selectors. */
    fw_select(s, 0x1f);
    g_assert_cmphex(qtest_inb(s, DATA), ==, 0);
    fw_select(s, 0x7fff);
    g_assert_cmphex(qtest_inb(s, DATA), ==, 0);
    /* Writes through the data port are ignored (QEMU >= 2.4). */
    fw_select(s, 0x00);
    qtest_outb(s, DATA, 'X');
    fw_select(s, 0x00);
    g_assert_cmphex(qtest_inb(s, DATA), ==, 'Q');
    qtest_quit(s);
}

static void test_files(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("fw-cfg-test-XXXXXX", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(g_file_set_contents(path, "file contents\n", -1, NULL));
    close(fd);
    QTestState *s = qtest_initf("-m 128M -fw_cfg opt/sen/str,string=hello "
                                "-fw_cfg name=opt/sen/file,file=%s", path);
    uint16_t key;
    uint32_t size;
    g_assert_true(fw_find_file(s, "opt/sen/str", &key, &size));
    g_assert_cmpuint(size, ==, 5); /* no NUL, as QEMU */
    g_assert_cmpuint(key, >=, 0x20);
    char buf[32] = { 0 };
    fw_select(s, key);
    fw_read(s, buf, size);
    g_assert_cmpstr(buf, ==, "hello");

    g_assert_true(fw_find_file(s, "opt/sen/file", &key, &size));
    g_assert_cmpuint(size, ==, 14);
    memset(buf, 0, sizeof(buf));
    fw_select(s, key);
    fw_read(s, buf, size);
    g_assert_cmpstr(buf, ==, "file contents\n");

    /* etc/e820 of 128 MiB: RAM from 0, entries of 20 bytes. */
    g_assert_true(fw_find_file(s, "etc/e820", &key, &size));
    g_assert_cmpuint(size % 20, ==, 0);
    g_assert_cmpuint(size, >=, 20);
    uint8_t e[20];
    fw_select(s, key);
    fw_read(s, e, 20);
    uint64_t addr = 0, len = 0;
    for (int i = 7; i >= 0; i--) {
        addr = addr << 8 | e[i];
        len = len << 8 | e[8 + i];
    }
    g_assert_cmphex(addr, ==, 0);
    g_assert_cmphex(len, ==, 128ULL << 20);
    g_assert_cmpuint(e[16], ==, 1);
    g_assert_false(fw_find_file(s, "opt/none", &key, &size));
    qtest_quit(s);
    unlink(path);
}

static void test_dma(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-m 128M -fw_cfg opt/sen/str,string=hello-dma");
    /* The DMA register reads as "QEMU CFG" (big-endian). */
    g_assert_cmphex(qtest_inl(s, DMA_HI), ==, 0x554d4551); /* bytes Q E M U */
    g_assert_cmphex(qtest_inl(s, DMA_LO), ==, 0x47464320); /* bytes ' ' C F G */

    /* Select + read the signature. */
    qtest_memset(s, BUF_ADDR, 0xaa, 16);
    g_assert_cmphex(fw_dma(s, 0x08 | 0x02, 4, BUF_ADDR), ==, 0);
    char sig[5] = { 0 };
    qtest_memread(s, BUF_ADDR, sig, 4);
    g_assert_cmpstr(sig, ==, "QEMU");
    g_assert_cmphex(qtest_readb(s, BUF_ADDR + 4), ==, 0xaa); /* not one byte more */

    /* A file by key: skip 6 bytes, then read past the end (zero-filled). */
    uint16_t key;
    uint32_t size;
    g_assert_true(fw_find_file(s, "opt/sen/str", &key, &size));
    g_assert_cmphex(fw_dma(s, (uint32_t)key << 16 | 0x08 | 0x04, 6, 0), ==, 0);
    qtest_memset(s, BUF_ADDR, 0xaa, 16);
    g_assert_cmphex(fw_dma(s, 0x02, 8, BUF_ADDR), ==, 0);
    char buf[9] = { 0 };
    qtest_memread(s, BUF_ADDR, buf, 8);
    g_assert_cmpmem(buf, 8, "dma\0\0\0\0\0", 8);
    g_assert_cmphex(qtest_readb(s, BUF_ADDR + 8), ==, 0xaa);

    /* The legacy and DMA interfaces share the position. */
    fw_select(s, key);
    g_assert_cmphex(fw_dma(s, 0x02, 2, BUF_ADDR), ==, 0);
    g_assert_cmphex(qtest_inb(s, DATA), ==, 'l');

    /* A buffer outside guest RAM: error bit, nothing written anywhere else. */
    g_assert_cmphex(fw_dma(s, 0x08 | 0x02, 4, 0xf0000000ULL), ==, 0x01);
    /* A buffer straddling the end of RAM: error. */
    g_assert_cmphex(fw_dma(s, 0x08 | 0x02, 4, (128ULL << 20) - 2), ==, 0x01);
    /* No item is writable. */
    g_assert_cmphex(fw_dma(s, 0x08 | 0x10, 4, BUF_ADDR), ==, 0x01);
    /* No operation bit: nothing happens, success. */
    g_assert_cmphex(fw_dma(s, 0, 4, BUF_ADDR), ==, 0);

    /* A descriptor outside RAM is ignored: the device and Sen carry on. */
    qtest_outl(s, DMA_HI, bswap32(0xffffffff));
    qtest_outl(s, DMA_LO, bswap32(0xfffffff8));
    g_assert_cmphex(fw_read32(s, 0x01), ==, 3);
    /* A huge read into RAM is bounded by RAM: error, no crash. */
    g_assert_cmphex(fw_dma(s, 0x08 | 0x02, 0xffffffff, BUF_ADDR), ==, 0x01);
    qtest_quit(s);
}

/* bootindex= and -boot strict=on become QEMU's "bootorder" file: OpenFirmware paths,
 * lowest index first, then HALT, NUL-terminated. */
static void test_bootorder(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("fw-cfg-disk-XXXXXX", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 1 << 20), ==, 0);
    close(fd);
    QTestState *s = qtest_initf(
        "-boot strict=on "
        "-drive file=%s,format=raw,if=none,id=a,readonly=on "
        "-drive file=%s,format=raw,if=none,id=b,readonly=on "
        "-drive file=%s,format=raw,if=none,id=c,readonly=on "
        "-device virtio-blk-pci,drive=a,addr=3,bootindex=7 "
        "-device virtio-blk-pci,drive=b,addr=5.0 "
        "-device virtio-blk-pci,drive=c,addr=4,bootindex=2", path, path, path);
    uint16_t key;
    uint32_t size;
    g_assert_true(fw_find_file(s, "bootorder", &key, &size));
    static const char want[] = "/pci@i0cf8/scsi@4/disk@0,0\n/pci@i0cf8/scsi@3/disk@0,0\nHALT";
    g_assert_cmpuint(size, ==, sizeof(want));
    char buf[sizeof(want)];
    fw_select(s, key);
    fw_read(s, buf, size);
    g_assert_cmpmem(buf, size, want, sizeof(want));
    qtest_quit(s);

    /* No bootindex, no strict: an empty file, as QEMU. */
    s = qtest_init("");
    g_assert_true(fw_find_file(s, "bootorder", &key, &size));
    g_assert_cmpuint(size, ==, 0);
    qtest_quit(s);
    unlink(path);
}

/* Reads file name into a new buffer; fails the test when it is absent. */
static uint8_t *fw_read_file(QTestState *s, const char *name, uint32_t *size)
{
    uint16_t key;
    g_assert_true(fw_find_file(s, name, &key, size));
    uint8_t *buf = g_malloc0(*size + 1);
    fw_select(s, key);
    fw_read(s, buf, *size);
    return buf;
}

/* -option-rom: the image as genroms/<basename>, and in bootorder as /rom@genroms/<name>
 * at its bootindex among the devices'. */
static void test_option_rom(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *disk = NULL;
    uint8_t img[1024] = { 0x55, 0xaa, 2 };
    for (size_t i = 3; i < sizeof(img); i++) {
        img[i] = (uint8_t)(i * 7);
    }
    g_autofree char *rom = qtest_write_tmp_file("fw-cfg-XXXXXX.rom", img, sizeof(img));
    int fd = g_file_open_tmp("fw-cfg-disk-XXXXXX", &disk, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 1 << 20), ==, 0);
    close(fd);
    QTestState *s = qtest_initf(
        "-drive file=%s,format=raw,if=none,id=a,readonly=on "
        "-device virtio-blk-pci,drive=a,addr=3,bootindex=2 "
        "-option-rom %s,bootindex=1", disk, rom);
    g_autofree char *base = g_path_get_basename(rom);
    g_autofree char *name = g_strdup_printf("genroms/%s", base);
    uint32_t size;
    g_autofree uint8_t *got = fw_read_file(s, name, &size);
    g_assert_cmpmem(got, size, img, sizeof(img));
    g_autofree char *order = (char *)fw_read_file(s, "bootorder", &size);
    g_autofree char *want = g_strdup_printf("/rom@%s\n/pci@i0cf8/scsi@3/disk@0,0", name);
    g_assert_cmpuint(size, ==, strlen(want) + 1);
    g_assert_cmpstr(order, ==, want);
    qtest_quit(s);
    unlink(rom);
    unlink(disk);
}

/* romfile=,rombar=0: the ROM goes to firmware as genroms/<basename>, as in QEMU. */
static void test_pci_rom_without_bar(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    uint8_t img[600] = { 0x55, 0xaa, 2 };
    for (size_t i = 3; i < sizeof(img); i++) {
        img[i] = (uint8_t)(i * 3);
    }
    g_autofree char *rom = qtest_write_tmp_file("fw-cfg-pci-XXXXXX.rom", img, sizeof(img));
    QTestState *s = qtest_initf("-device pci-testdev,romfile=%s,rombar=0", rom);
    g_autofree char *base = g_path_get_basename(rom);
    g_autofree char *name = g_strdup_printf("genroms/%s", base);
    uint32_t size;
    g_autofree uint8_t *got = fw_read_file(s, name, &size);
    g_assert_cmpmem(got, size, img, sizeof(img));
    qtest_quit(s);
    unlink(rom);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * -bios with -kernel: a (hand-made) bzImage goes into fw_cfg's kernel items as QEMU puts
 * it there for linuxboot_dma.bin: setup code at 0x10000 with the header patched (command
 * line pointer, loader type, heap, initrd), the protected-mode part for 1 MiB, the
 * command line for 0x20000, the initrd page-aligned below initrd_addr_max and the ACPI
 * area at the top of RAM; the ROM as genroms/linuxboot_dma.bin, first in bootorder.
 */
static void test_kernel_items(void)
{
    static const char seabios[] = "/usr/share/seabios/bios-256k.bin";
    static const char rom[] = "/usr/share/qemu/linuxboot_dma.bin";
    if (!qtest_have_sen()) {
        return;
    }
    if (access(seabios, R_OK) != 0 || access(rom, R_OK) != 0) {
        g_test_skip("needs Debian's seabios and qemu-system-data packages");
        return;
    }
    enum { SETUP = 2 * 512, PROT = 4096, INITRD = 5000 };
    static uint8_t img[SETUP + PROT];
    memset(img, 0, sizeof(img));
    img[0x1f1] = 1;                        /* setup_sects: (1 + 1) * 512 bytes */
    memcpy(img + 0x202, "HdrS", 4);
    img[0x206] = 0x0f, img[0x207] = 0x02;  /* protocol 2.15 */
    img[0x211] = 0x01;                     /* LOADED_HIGH */
    img[0x22c] = 0xff, img[0x22d] = 0xff, img[0x22e] = 0xff, img[0x22f] = 0x7f;
    img[0x239] = 0x08;                     /* cmdline_size 2048 */
    for (size_t i = SETUP; i < sizeof(img); i++) {
        img[i] = (uint8_t)(i * 13 + 1);
    }
    static uint8_t rd[INITRD];
    memset(rd, 0x7e, sizeof(rd));
    g_autofree char *kpath = qtest_write_tmp_file("fw-cfg-bzImage-XXXXXX", img, sizeof(img));
    g_autofree char *rdpath = qtest_write_tmp_file("fw-cfg-initrd-XXXXXX", rd, sizeof(rd));
    static const char cmdline[] = "console=ttyS0 root=/dev/vda";
    QTestState *s = qtest_initf("-m 128M -bios %s -kernel %s -initrd %s -append '%s'",
                                seabios, kpath, rdpath, cmdline);

    g_assert_cmphex(fw_read32(s, 0x07), ==, 0x100000);       /* KERNEL_ADDR */
    g_assert_cmpuint(fw_read32(s, 0x08), ==, PROT);          /* KERNEL_SIZE */
    uint8_t *prot = g_malloc(PROT);
    fw_select(s, 0x11);                                      /* KERNEL_DATA */
    fw_read(s, prot, PROT);
    g_assert_cmpmem(prot, PROT, img + SETUP, PROT);
    g_free(prot);

    g_assert_cmphex(fw_read32(s, 0x16), ==, 0x10000);        /* SETUP_ADDR */
    g_assert_cmpuint(fw_read32(s, 0x17), ==, SETUP);         /* SETUP_SIZE */
    uint8_t setup[SETUP];
    fw_select(s, 0x18);                                      /* SETUP_DATA */
    fw_read(s, setup, SETUP);
    /* 128 MiB, less QEMU's 0x28000 bytes for ACPI, less the initrd, page-aligned. */
    uint32_t initrd_addr = (0x8000000 - 0x28000 - 1 - INITRD) & ~0xfffu;
    g_assert_cmphex(le32(setup + 0x228), ==, 0x20000);       /* cmd_line_ptr */
    g_assert_cmphex(setup[0x210], ==, 0xb0);                 /* type_of_loader: QEMU */
    g_assert_cmphex(setup[0x211], ==, 0x81);                 /* + CAN_USE_HEAP */
    g_assert_cmphex(setup[0x224] | setup[0x225] << 8, ==, 0x20000 - 0x10000 - 0x200);
    g_assert_cmphex(le32(setup + 0x218), ==, initrd_addr);   /* ramdisk_image */
    g_assert_cmpuint(le32(setup + 0x21c), ==, INITRD);       /* ramdisk_size */
    setup[0x228] = setup[0x229] = setup[0x22a] = 0;          /* all else as in the file */
    setup[0x210] = setup[0x224] = setup[0x225] = 0;
    setup[0x211] = 0x01;
    memset(setup + 0x218, 0, 8);
    g_assert_cmpmem(setup, SETUP, img, SETUP);

    g_assert_cmphex(fw_read32(s, 0x0a), ==, initrd_addr);    /* INITRD_ADDR */
    g_assert_cmpuint(fw_read32(s, 0x0b), ==, INITRD);        /* INITRD_SIZE */
    uint8_t *got = g_malloc(INITRD);
    fw_select(s, 0x12);
    fw_read(s, got, INITRD);
    g_assert_cmpmem(got, INITRD, rd, INITRD);
    g_free(got);

    g_assert_cmphex(fw_read32(s, 0x13), ==, 0x20000);        /* CMDLINE_ADDR */
    g_assert_cmpuint(fw_read32(s, 0x14), ==, sizeof(cmdline)); /* with its NUL */
    char line[sizeof(cmdline)];
    fw_select(s, 0x15);
    fw_read(s, line, sizeof(line));
    g_assert_cmpmem(line, sizeof(line), cmdline, sizeof(cmdline));

    uint32_t size;
    g_autofree uint8_t *romdata = fw_read_file(s, "genroms/linuxboot_dma.bin", &size);
    g_autofree gchar *want_rom = NULL;
    gsize want_len;
    g_assert_true(g_file_get_contents(rom, &want_rom, &want_len, NULL));
    g_assert_cmpmem(romdata, size, want_rom, want_len);
    g_autofree char *order = (char *)fw_read_file(s, "bootorder", &size);
    g_assert_cmpstr(order, ==, "/rom@genroms/linuxboot_dma.bin");
    qtest_quit(s);
    unlink(kpath);
    unlink(rdpath);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/fw_cfg/legacy", test_legacy);
    g_test_add_func("/fw_cfg/files", test_files);
    g_test_add_func("/fw_cfg/dma", test_dma);
    g_test_add_func("/fw_cfg/bootorder", test_bootorder);
    g_test_add_func("/fw_cfg/option-rom", test_option_rom);
    g_test_add_func("/fw_cfg/pci-rom-without-bar", test_pci_rom_without_bar);
    g_test_add_func("/fw_cfg/kernel", test_kernel_items);
    return g_test_run();
}
