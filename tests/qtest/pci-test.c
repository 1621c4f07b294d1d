/*
 * The PCI host bridge and pci-testdev from outside: config space through CF8/CFC and
 * ECAM, BAR sizing, mapping and unmapping, as a guest's enumeration does it.
 */
#include <string.h>
#include <unistd.h>
#include "libqtest.h"

#define ECAM 0xb0000000ULL

/* 0xcf9 (PIIX reset control): bit 1 is kept, bit 2 resets the machine (with -no-reboot
 * that ends Sen cleanly), and the address latch at 0xcf8 is unaffected. */
static void test_reset_control(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-no-reboot");
    g_assert_cmphex(qtest_inb(s, 0xcf9), ==, 0);
    qtest_outl(s, 0xcf8, 0x80000000);
    qtest_outb(s, 0xcf9, 0x0a);
    g_assert_cmphex(qtest_inb(s, 0xcf9), ==, 0x02);
    g_assert_cmphex(qtest_inl(s, 0xcf8), ==, 0x80000000);
    /* Host bridge identity as QEMU's, subsystem included (SeaBIOS checks it). */
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0x2c), ==, 0x11001af4);
    qtest_send_line(s, "outb 0xcf9 0x06");
    g_assert_cmpint(qtest_wait_exit(s, 30000), ==, 0);
}

static void test_enumerate(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pci-testdev,addr=3 -device pci-testdev,id=t2");
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0), ==, 0x12378086);
    g_assert_cmphex(qtest_pci_cfg_readw(s, 0, 0x0a), ==, 0x0600);       /* host bridge */
    g_assert_cmphex(qtest_readl(s, ECAM), ==, 0x12378086);
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0x60), ==, ECAM | 1);
    /* the second device took the first free slot, 1 */
    unsigned found = 0;
    for (unsigned slot = 0; slot < 32; slot++) {
        uint32_t id = qtest_pci_cfg_readl(s, slot << 3, 0);
        if (id == 0x00051b36) {
            found |= 1u << slot;
        } else if (slot) {
            g_assert_cmphex(id, ==, 0xffffffff);
        }
    }
    g_assert_cmphex(found, ==, (1u << 1) | (1u << 3));
    /* The latch's low bits select bytes too, as on QEMU: register 2 latched, a word read
     * at 0xcfc is the device id (kvm-unit-tests reads config space this way). */
    qtest_outl(s, 0xcf8, 0x80000000u | (3 << 3) << 8 | 0x02);
    g_assert_cmphex(qtest_inw(s, 0xcfc), ==, 0x0005);
    qtest_outl(s, 0xcf8, 0x80000000u | (3 << 3) << 8 | 0x01);
    g_assert_cmphex(qtest_inb(s, 0xcfc), ==, 0x1b);
    qtest_quit(s);
}

static void test_bars(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-device pci-testdev,addr=4.0");
    const unsigned df = 4 << 3;

    qtest_pci_cfg_writel(s, df, 0x10, 0xffffffff);
    g_assert_cmphex(qtest_pci_cfg_readl(s, df, 0x10), ==, 0xfffff000);   /* 4 KiB memory */
    qtest_pci_cfg_writel(s, df, 0x14, 0xffffffff);
    g_assert_cmphex(qtest_pci_cfg_readl(s, df, 0x14), ==, 0xffffff01);   /* 256 bytes of I/O */
    g_assert_cmphex(qtest_pci_cfg_readl(s, df, 0x18), ==, 0);            /* nothing else */

    qtest_pci_cfg_writel(s, df, 0x10, 0xe0000000);
    qtest_pci_cfg_writel(s, df, 0x14, 0xc000);
    g_assert_cmphex(qtest_readl(s, 0xe0000000), ==, 0xffffffff); /* decoding off */
    qtest_pci_cfg_writel(s, df, 0x04, 0x3);                               /* I/O + memory */
    qtest_writel(s, 0xe0000010, 0xdeadbeef);
    g_assert_cmphex(qtest_readl(s, 0xe0000010), ==, 0xdeadbeef);
    g_assert_cmphex(qtest_readw(s, 0xe0000012), ==, 0xdead);
    qtest_outl(s, 0xc004, 0x12345678);
    g_assert_cmphex(qtest_inl(s, 0xc004), ==, 0x12345678);
    g_assert_cmphex(qtest_readl(s, ECAM + (df << 12) + 0x10), ==, 0xe0000000);

    /* move BAR0 through ECAM, then disable memory decoding */
    qtest_writel(s, ECAM + (df << 12) + 0x10, 0xe0010000);
    g_assert_cmphex(qtest_readl(s, 0xe0000010), ==, 0xffffffff);
    g_assert_cmphex(qtest_readl(s, 0xe0010010), ==, 0xdeadbeef);
    qtest_pci_cfg_writel(s, df, 0x04, 0x1);
    g_assert_cmphex(qtest_readl(s, 0xe0010010), ==, 0xffffffff);
    g_assert_cmphex(qtest_inl(s, 0xc004), ==, 0x12345678);
    qtest_quit(s);
}

static void test_clash(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    /* Refused at start-up, naming the input: Sen exits with status 1 and no connection
     * is needed to see that. */
    const char *sen = qtest_sen_binary();
    g_autofree char *err = NULL;
    int status = 0;
    const char *argv[] = { sen, "-accel", "qtest", "-qtest", "stdio", "-nodefaults",
                           "-display", "none", "-machine", "pc",
                           "-device", "pci-testdev,addr=2",
                           "-device", "pci-testdev,addr=2.0", NULL };
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                               NULL, NULL, &err, &status, NULL));
    g_assert_false(g_spawn_check_wait_status(status, NULL));
    g_assert_nonnull(strstr(err, "addr=2.0: slot 2 function 0 on pci.0 is already in use"));
}

static char *write_rom(size_t len)
{
    g_autofree uint8_t *img = g_malloc(len);
    for (size_t i = 0; i < len; i++) {
        img[i] = (uint8_t)(i * 13 + 5);
    }
    img[0] = 0x55;
    img[1] = 0xaa;
    return qtest_write_tmp_file("pci-rom-XXXXXX.rom", img, len);
}

/* romfile=: the expansion ROM BAR at 0x30 sizes to the image's power of two, decodes only
 * with memory decoding and its enable bit on, reads the image (0xff past its end) and
 * drops writes. */
static void test_rom_bar(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *rom = write_rom(3000);
    QTestState *s = qtest_initf("-device pci-testdev,addr=4,romfile=%s", rom);
    const unsigned df = 4 << 3;
    const uint64_t at = 0xe0100000;

    qtest_pci_cfg_writel(s, df, 0x30, 0xffffffff);
    g_assert_cmphex(qtest_pci_cfg_readl(s, df, 0x30), ==, 0xfffff001);   /* 4 KiB */
    qtest_pci_cfg_writel(s, df, 0x30, (uint32_t)at | 1);
    g_assert_cmphex(qtest_readl(s, at), ==, 0xffffffff);                  /* decoding off */
    qtest_pci_cfg_writel(s, df, 0x04, 0x2);
    g_assert_cmphex(qtest_readl(s, at), ==, (3 * 13 + 5) << 24 | (2 * 13 + 5) << 16 | 0xaa55);
    g_assert_cmphex(qtest_readb(s, at + 2999), ==, (uint8_t)(2999 * 13 + 5));
    g_assert_cmphex(qtest_readl(s, at + 3000), ==, 0xffffffff);          /* past the image */
    g_assert_cmphex(qtest_readl(s, at + 4092), ==, 0xffffffff);
    qtest_writel(s, at + 8, 0);
    g_assert_cmphex(qtest_readb(s, at + 8), ==, (uint8_t)(8 * 13 + 5));  /* read-only */
    qtest_pci_cfg_writel(s, df, 0x30, (uint32_t)at);                      /* enable bit off */
    g_assert_cmphex(qtest_readl(s, at), ==, 0xffffffff);
    qtest_quit(s);

    /* rombar=0 (firmware gets it through fw_cfg) and romfile= (none): no ROM BAR. */
    const char *no_bar[] = { "romfile=%s,rombar=0", "romfile=" };
    for (size_t i = 0; i < G_N_ELEMENTS(no_bar); i++) {
        g_autofree char *props = g_strdup_printf(no_bar[i], rom);
        s = qtest_initf("-device pci-testdev,addr=4,%s", props);
        qtest_pci_cfg_writel(s, df, 0x30, 0xffffffff);
        g_assert_cmphex(qtest_pci_cfg_readl(s, df, 0x30), ==, 0);
        qtest_quit(s);
    }
    unlink(rom);
}

static void expect_start_error(const char *device, const char *msg)
{
    const char *argv[] = { qtest_sen_binary(), "-accel", "qtest", "-qtest", "stdio",
                           "-nodefaults", "-display", "none", "-device", device, NULL };
    g_autofree char *err = NULL;
    int status = 0;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                               NULL, NULL, &err, &status, NULL));
    g_assert_false(g_spawn_check_wait_status(status, NULL));
    if (!strstr(err, msg)) {
        g_error("expected '%s' in: %s", msg, err);
    }
}

static void test_rom_errors(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    expect_start_error("pci-testdev,romfile=/nonexistent/x.rom",
                       "-device pci-testdev,romfile=/nonexistent/x.rom: romfile=/nonexistent/"
                       "x.rom: could not load '/nonexistent/x.rom': No such file or directory");
    expect_start_error("pci-testdev,romfile=no-such-sen-test.rom",
                       "could not load '/usr/share/qemu/no-such-sen-test.rom'");
    g_autofree char *rom = write_rom(64);
    g_autofree char *bad = g_strdup_printf("pci-testdev,romfile=%s,rombar=2", rom);
    expect_start_error(bad, "rombar=2: expected 0 or 1");
    unlink(rom);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/enumerate", test_enumerate);
    g_test_add_func("/pci/reset-control", test_reset_control);
    g_test_add_func("/pci/bars", test_bars);
    g_test_add_func("/pci/clash", test_clash);
    g_test_add_func("/pci/rom-bar", test_rom_bar);
    g_test_add_func("/pci/rom-errors", test_rom_errors);
    return g_test_run();
}
