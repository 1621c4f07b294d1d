/*
 * isa-serial (16550A) at COM1 from outside: transmitted bytes reach the chardev, scratch
 * and divisor registers, loopback, and received bytes from a socket chardev with the
 * IRQ 4 line following IER, MCR.OUT2 and RBR reads.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "libqtest.h"

#define COM1 0x3f8
#define COM1_IRQ 4

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

static char *make_tmpdir(void)
{
    GError *err = NULL;
    char *dir = g_dir_make_tmp("sen-serial-XXXXXX", &err);
    g_assert_no_error(err);
    return dir;
}

static void test_output_to_file(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *dir = make_tmpdir();
    g_autofree char *out = g_build_filename(dir, "com1.out", NULL);
    QTestState *s = qtest_initf("-serial file:%s", out);

    g_assert_cmphex(qtest_inb(s, COM1 + LSR), ==, LSR_THRE | LSR_TEMT);
    const char *msg = "Hello, Sen!\n";
    for (const char *p = msg; *p; p++) {
        qtest_outb(s, COM1 + RBR_THR, (uint8_t)*p);
        /* Transmission is instantaneous: THR is empty again at once. */
        g_assert_cmphex(qtest_inb(s, COM1 + LSR) & (LSR_THRE | LSR_TEMT), ==,
                        LSR_THRE | LSR_TEMT);
    }
    /* Loopback keeps bytes inside the UART. */
    qtest_outb(s, COM1 + MCR, MCR_LOOP);
    qtest_outb(s, COM1 + RBR_THR, 'X');
    qtest_quit(s);

    g_autofree char *got = NULL;
    g_assert_true(g_file_get_contents(out, &got, NULL, NULL));
    g_assert_cmpstr(got, ==, msg);
    unlink(out);
    rmdir(dir);
}

static void test_registers(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-serial null");

    for (unsigned v = 0; v < 256; v += 51) {
        qtest_outb(s, COM1 + SCR, v);
        g_assert_cmphex(qtest_inb(s, COM1 + SCR), ==, v);
    }
    /* DLAB maps the divisor latch over RBR/THR and IER. */
    qtest_outb(s, COM1 + IER, 0x05);
    qtest_outb(s, COM1 + LCR, 0x83);
    qtest_outb(s, COM1 + 0, 0x0c); /* 9600 baud */
    qtest_outb(s, COM1 + 1, 0x00);
    g_assert_cmphex(qtest_inb(s, COM1 + 0), ==, 0x0c);
    g_assert_cmphex(qtest_inb(s, COM1 + 1), ==, 0x00);
    g_assert_cmphex(qtest_inb(s, COM1 + LCR), ==, 0x83);
    qtest_outb(s, COM1 + LCR, 0x03);
    g_assert_cmphex(qtest_inb(s, COM1 + IER), ==, 0x05);
    qtest_outb(s, COM1 + LCR, 0x80);
    g_assert_cmphex(qtest_inb(s, COM1 + 0), ==, 0x0c);
    qtest_outb(s, COM1 + LCR, 0x03);
    qtest_quit(s);
}

static void test_loopback(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-serial null");
    qtest_irq_intercept_in(s, "ioapic");

    qtest_outb(s, COM1 + IER, 0x01);
    qtest_outb(s, COM1 + MCR, MCR_LOOP | MCR_OUT2);
    g_assert_cmphex(qtest_inb(s, COM1 + LSR) & LSR_DR, ==, 0);
    qtest_outb(s, COM1 + RBR_THR, 0x5a);
    g_assert_cmphex(qtest_inb(s, COM1 + LSR) & LSR_DR, ==, LSR_DR);
    g_assert_cmphex(qtest_inb(s, COM1 + IIR_FCR) & 0x0f, ==, 0x04); /* data available */
    /* In loopback OUT2 is internal: the interrupt does not reach the pin. */
    g_assert_false(qtest_get_irq(s, COM1_IRQ));
    g_assert_cmphex(qtest_inb(s, COM1 + RBR_THR), ==, 0x5a);
    g_assert_cmphex(qtest_inb(s, COM1 + LSR) & LSR_DR, ==, 0);
    g_assert_cmphex(qtest_inb(s, COM1 + IIR_FCR) & 0x0f, ==, 0x01); /* none */

    /* Modem outputs loop back to the inputs: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
    qtest_outb(s, COM1 + MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2);
    g_assert_cmphex(qtest_inb(s, COM1 + MSR) & 0xf0, ==, 0xf0);
    qtest_outb(s, COM1 + MCR, MCR_LOOP | MCR_RTS);
    g_assert_cmphex(qtest_inb(s, COM1 + MSR) & 0xf0, ==, 0x10);
    qtest_quit(s);
}

static bool wait_irq(QTestState *s, unsigned gsi, bool level)
{
    for (int i = 0; i < 500; i++) {
        if (qtest_get_irq(s, gsi) == level) {
            return true;
        }
        g_usleep(10 * 1000);
    }
    return false;
}

static void test_socket_rx_irq(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    g_autofree char *dir = make_tmpdir();
    g_autofree char *path = g_build_filename(dir, "com1.sock", NULL);
    int lfd = qtest_unix_listen(path);
    QTestState *s = qtest_initf("-chardev socket,id=com1,path=%s -serial chardev:com1",
                                path);
    int fd = qtest_unix_accept(lfd, 30000);
    g_assert_cmpint(fd, >=, 0);
    close(lfd);
    qtest_irq_intercept_in(s, "ioapic");

    /* Receive interrupt enabled and OUT2 gating the line to the PIC/IOAPIC. */
    qtest_outb(s, COM1 + IER, 0x01);
    qtest_outb(s, COM1 + MCR, MCR_OUT2 | MCR_DTR | MCR_RTS);
    g_assert_false(qtest_get_irq(s, COM1_IRQ));
    g_assert_cmpint(send(fd, "x", 1, MSG_NOSIGNAL), ==, 1);
    g_assert_true(wait_irq(s, COM1_IRQ, true));
    g_assert_cmphex(qtest_inb(s, COM1 + LSR) & LSR_DR, ==, LSR_DR);
    g_assert_cmphex(qtest_inb(s, COM1 + IIR_FCR) & 0x0f, ==, 0x04);
    g_assert_cmphex(qtest_inb(s, COM1 + RBR_THR), ==, 'x');
    g_assert_false(qtest_get_irq(s, COM1_IRQ));

    /* Without OUT2 the UART still has data but the line stays low. */
    qtest_outb(s, COM1 + MCR, MCR_DTR | MCR_RTS);
    g_assert_cmpint(send(fd, "y", 1, MSG_NOSIGNAL), ==, 1);
    for (int i = 0; i < 500 && !(qtest_inb(s, COM1 + LSR) & LSR_DR); i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmphex(qtest_inb(s, COM1 + LSR) & LSR_DR, ==, LSR_DR);
    g_assert_false(qtest_get_irq(s, COM1_IRQ));
    qtest_outb(s, COM1 + MCR, MCR_OUT2);
    g_assert_true(qtest_get_irq(s, COM1_IRQ));
    g_assert_cmphex(qtest_inb(s, COM1 + RBR_THR), ==, 'y');
    g_assert_false(qtest_get_irq(s, COM1_IRQ));

    /* With the FIFO on, a burst arrives in order. */
    qtest_outb(s, COM1 + IIR_FCR, 0x07);
    g_assert_cmpint(send(fd, "abc", 3, MSG_NOSIGNAL), ==, 3);
    char got[4] = { 0 };
    for (int n = 0; n < 3;) {
        if (qtest_inb(s, COM1 + LSR) & LSR_DR) {
            got[n++] = (char)qtest_inb(s, COM1 + RBR_THR);
        } else {
            g_usleep(5 * 1000);
        }
    }
    g_assert_cmpstr(got, ==, "abc");

    /* And the guest's output comes out of the socket. */
    qtest_outb(s, COM1 + RBR_THR, 'O');
    qtest_outb(s, COM1 + RBR_THR, 'K');
    char out[2];
    size_t have = 0;
    while (have < 2) {
        ssize_t n = recv(fd, out + have, 2 - have, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        g_assert_cmpint(n, >, 0);
        have += n;
    }
    g_assert_cmpmem(out, 2, "OK", 2);

    qtest_quit(s);
    close(fd);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/serial/output-to-file", test_output_to_file);
    g_test_add_func("/serial/registers", test_registers);
    g_test_add_func("/serial/loopback", test_loopback);
    g_test_add_func("/serial/socket-rx-irq", test_socket_rx_irq);
    return g_test_run();
}
