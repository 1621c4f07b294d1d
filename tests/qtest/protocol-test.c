/*
 * The qtest protocol itself: every command's reply format, memory and port semantics
 * (RAM, unassigned MMIO and ports), the manual clock, the log, and hostile input: garbage
 * lines, huge numbers, over-long lines, binary bytes.  Sen must answer each line and
 * keep going.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "libqtest.h"

static void assert_reply(QTestState *s, const char *cmd, const char *expect)
{
    g_autofree char *r = qtest_cmd(s, "%s", cmd);
    if (strcmp(r, expect) != 0) {
        g_error("'%s': got '%s', expected '%s'", cmd, r, expect);
    }
}

static void assert_fail(QTestState *s, const char *cmd)
{
    g_autofree char *r = qtest_cmd(s, "%s", cmd);
    if (!g_str_has_prefix(r, "FAIL")) {
        g_error("'%s': got '%s', expected FAIL", cmd, r);
    }
}

static void test_memory(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-m 64M");

    qtest_writeb(s, 0x1000, 0x12);
    qtest_writew(s, 0x1002, 0x3456);
    qtest_writel(s, 0x1004, 0x789abcde);
    qtest_writeq(s, 0x1008, 0x0123456789abcdefULL);
    g_assert_cmphex(qtest_readb(s, 0x1000), ==, 0x12);
    g_assert_cmphex(qtest_readw(s, 0x1002), ==, 0x3456);
    g_assert_cmphex(qtest_readl(s, 0x1004), ==, 0x789abcde);
    g_assert_cmphex(qtest_readq(s, 0x1008), ==, 0x0123456789abcdefULL);
    /* Little-endian layout, as an x86 guest sees it. */
    assert_reply(s, "read 0x1000 4", "OK 0x12005634");
    assert_reply(s, "readw 0x1000", "OK 0x0000000000000012");
    assert_reply(s, "endianness", "OK little");

    /* write: short data is zero-filled up to SIZE. */
    assert_reply(s, "write 0x2000 4 0xaabb", "OK");
    assert_reply(s, "read 0x2000 4", "OK 0xaabb0000");
    assert_reply(s, "write 0x2000 0 0x", "OK");
    /* Crossing pages and large buffers, through both encodings. */
    size_t len = 100000;
    g_autofree uint8_t *buf = g_malloc(len);
    g_autofree uint8_t *back = g_malloc(len);
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 31 + 7);
    }
    qtest_memwrite(s, 0x10ff1, buf, len);
    qtest_memread(s, 0x10ff1, back, len);
    g_assert_cmpmem(buf, len, back, len);
    memset(back, 0, len);
    qtest_bufwrite(s, 0x80003, buf, len);
    qtest_bufread(s, 0x80003, back, len);
    g_assert_cmpmem(buf, len, back, len);
    assert_reply(s, "b64write 0x3000 2 AQID", "OK"); /* 3 bytes given, 2 written */
    assert_reply(s, "read 0x3000 3", "OK 0x010200");

    qtest_memset(s, 0x5000, 0xcd, 3 * 4096);
    assert_reply(s, "read 0x5ffe 4", "OK 0xcdcdcdcd");
    assert_reply(s, "memset 0x5000 0 0x11", "OK");
    assert_reply(s, "readb 0x5000", "OK 0x00000000000000cd");

    /* Outside RAM nothing is mapped: reads are all-ones, writes vanish. */
    assert_reply(s, "readl 0xfec00000000", "OK 0x00000000ffffffff");
    assert_reply(s, "writel 0xfec00000000 0x0", "OK");
    assert_reply(s, "readq 0xfffffffffffffff8", "OK 0xffffffffffffffff");
    assert_reply(s, "read 0xfffffffffffffffe 2", "OK 0xffff");
    /* Straddling the end of RAM: the RAM part is RAM, the rest all-ones. */
    assert_reply(s, "writeb 0x3ffffff 0x42", "OK");
    assert_reply(s, "read 0x3fffffe 3", "OK 0x0042ff");
    assert_reply(s, "memset 0x3ffff00 0x1000 0x77", "OK");
    assert_reply(s, "readb 0x3ffffff", "OK 0x0000000000000077");
    qtest_quit(s);
}

static void test_ports_and_clock(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init(NULL);

    /* An unassigned port reads all-ones of the access width. */
    assert_reply(s, "inb 0x2f0", "OK 0x00ff");
    assert_reply(s, "inw 0x2f0", "OK 0xffff");
    assert_reply(s, "inl 0x2f0", "OK 0xffffffff");
    assert_reply(s, "outl 0x2f0 0xffffffffffff", "OK");

    g_assert_cmpint(qtest_clock_step(s, 0), ==, 0);
    g_assert_cmpint(qtest_clock_step(s, 1000), ==, 1000);
    g_assert_cmpint(qtest_clock_set(s, 5000), ==, 5000);
    /* Time never goes back. */
    g_assert_cmpint(qtest_clock_set(s, 10), ==, 5000);
    assert_reply(s, "clock_step 0x10", "OK 5016");
    /* Huge steps saturate instead of wrapping. */
    assert_reply(s, "clock_step 9223372036854775807", "OK 9223372036854775807");
    assert_reply(s, "clock_step 5", "OK 9223372036854775807");
    assert_reply(s, "clock_step", "OK 9223372036854775807");

    assert_reply(s, "irq_intercept_in ioapic", "OK");
    assert_reply(s, "irq_intercept_in /machine/ioapic", "OK");
    assert_reply(s, "irq_intercept_out /machine/unattached/device[0]", "OK");
    assert_fail(s, "irq_intercept_in nosuchdevice");
    qtest_quit(s);
}

static void test_garbage(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init(NULL);
    static const char *const bad[] = {
        "",
        "   ",
        "module_load block curl",
        "frobnicate 1 2 3",
        "outb",
        "outb 0x80",
        "outb 0x80 1 2",
        "outb 0x10000 1",
        "outb -1 1",
        "outb 0x80 0x1g",
        "outb 99999999999999999999999999 1",
        "inb 0x80 extra",
        "inl zz",
        "readq",
        "readb 0x",
        "readl 18446744073709551616",
        "writeb 0x1000",
        "read 0x1000 0",
        "read 0x1000 0x100000000",
        "read 0x1000 -1",
        "b64read 0 0",
        "write 0x1000 4 aabb",
        "write 0x1000 4 0xzz",
        "write 0x1000 0xffffffffffffffff 0x00",
        "write 0xfec00000000 0x7fffffff 0x00",
        "memset 0xfec00000000 0xffffffffffffffff 0",
        "memset 0 0xffffffffffffffff 0",
        "clock_step -5",
        "clock_step 1 2",
        "clock_step 18446744073709551615",
        "clock_set",
        "clock_set abc",
        "irq_intercept_in",
        "set_irq_in ioapic unnamed-gpio-in 4 1",
        "OK",
        "IRQ raise 4",
        "\x01\x02\x7f\xff\xfe",
        "outb\t0x80\t\t",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        assert_fail(s, bad[i]);
    }
    /* The unknown-command reply names the command, as QEMU's does. */
    assert_reply(s, "frobnicate", "FAIL Unknown command 'frobnicate'");
    /* Tabs, repeated blanks and CRLF are accepted between words. */
    assert_reply(s, "outb \t 0x80   0x1\r", "OK");
    /* b64 garbage decodes to something (glib skips bad characters); never crashes. */
    g_free(qtest_cmd(s, "b64write 0x1000 16 !!!@@@###"));

    /* Many commands in one write, answered in order. */
    GString *burst = g_string_new(NULL);
    for (int i = 0; i < 500; i++) {
        g_string_append_printf(burst, "%s\n", i % 2 ? "bogus" : "outb 0x80 0x1");
    }
    qtest_send_line(s, burst->str);
    g_string_free(burst, TRUE);
    for (int i = 0; i < 500; i++) {
        g_autofree char *r = qtest_recv_reply(s);
        g_assert_nonnull(r);
        g_assert_cmpstr(r, ==, i % 2 ? "FAIL Unknown command 'bogus'" : "OK");
    }

    /* An over-long line is answered with one FAIL, then the protocol goes on. */
    size_t huge = 5 * 1024 * 1024;
    char *line = g_malloc(huge + 1);
    memset(line, 'a', huge);
    line[huge] = 0;
    qtest_send_line(s, line);
    g_free(line);
    g_autofree char *r = qtest_recv_reply(s);
    g_assert_nonnull(r);
    g_assert_true(g_str_has_prefix(r, "FAIL"));

    /* A huge but legal write line. */
    GString *big = g_string_new("write 0x100000 0x80000 0x");
    for (int i = 0; i < 0x80000; i++) {
        g_string_append(big, "5a");
    }
    assert_reply(s, big->str, "OK");
    g_string_free(big, TRUE);
    assert_reply(s, "readl 0x17fffc", "OK 0x000000005a5a5a5a");

    /* Random bytes, newline-separated: every line gets exactly one reply. */
    GRand *rnd = g_rand_new_with_seed(1234);
    for (int i = 0; i < 300; i++) {
        char junk[64];
        int n = g_rand_int_range(rnd, 1, sizeof(junk));
        for (int j = 0; j < n; j++) {
            char c;
            do {
                c = (char)g_rand_int_range(rnd, 1, 256);
            } while (c == '\n');
            junk[j] = c;
        }
        junk[n] = 0;
        g_free(qtest_cmd(s, "%s", junk));
    }
    g_rand_free(rnd);

    g_assert_cmphex(qtest_inb(s, 0x2f0), ==, 0xff);
    qtest_quit(s);
}

static void test_log(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *dir = g_dir_make_tmp("sen-qtest-log-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qtest.log", NULL);
    QTestState *s = qtest_initf("-qtest-log %s", path);
    qtest_outb(s, 0x80, 0x42);
    assert_fail(s, "nonsense");
    qtest_quit(s);

    g_autofree char *log = NULL;
    g_assert_true(g_file_get_contents(path, &log, NULL, NULL));
    g_assert_nonnull(strstr(log, "] outb 0x80 0x42\n"));
    g_assert_nonnull(strstr(log, "[R +"));
    g_assert_nonnull(strstr(log, "[S +"));
    g_assert_nonnull(strstr(log, "] FAIL Unknown command 'nonsense'\n"));
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qtest-protocol/memory", test_memory);
    g_test_add_func("/qtest-protocol/ports-and-clock", test_ports_and_clock);
    g_test_add_func("/qtest-protocol/garbage", test_garbage);
    g_test_add_func("/qtest-protocol/log", test_log);
    return g_test_run();
}
