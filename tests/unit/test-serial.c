/*
 * isa-serial (hw/char/serial-16550.c) driven through its port range, with a fake
 * accelerator that records interrupt line levels and a manual virtual clock.
 */
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "accel/accel.h"
#include "sen/chardev.h"
#include "sen/device.h"
#include "sen/machine.h"

#define COM1 0x3f8
enum { RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR };
#define FCR IIR
#define DLL RBR
#define DLM IER

typedef struct FakeAccel {
    int level[24];
    int changes[24];
} FakeAccel;

static void fake_set_irq(Machine *m, unsigned gsi, int level)
{
    FakeAccel *fa = m->accel_state;
    g_assert_cmpuint(gsi, <, 24);
    if (fa->level[gsi] != level) {
        fa->changes[gsi]++;
    }
    fa->level[gsi] = level;
}

static const AccelOps fake_accel = {
    .name = "fake",
    .set_irq = fake_set_irq,
};

static Machine *machine_new_fake(void)
{
    Machine *m = g_new0(Machine, 1);
    g_mutex_init(&m->lock);
    m->pio = io_space_new("pio");
    m->clock = virt_clock_new(true);
    m->chardevs = g_ptr_array_new();
    m->devices = g_ptr_array_new();
    m->accel = &fake_accel;
    m->accel_state = g_new0(FakeAccel, 1);
    m->accel_up = true;
    return m;
}

static void machine_free_fake(Machine *m)
{
    device_destroy_all(m);
    for (guint i = 0; i < m->chardevs->len; i++) {
        chardev_free(g_ptr_array_index(m->chardevs, i));
    }
    g_ptr_array_unref(m->chardevs);
    g_ptr_array_unref(m->devices);
    virt_clock_free(m->clock);
    io_space_free(m->pio);
    g_free(m->accel_state);
    g_mutex_clear(&m->lock);
    g_free(m);
}

static int irq_level(Machine *m, unsigned gsi)
{
    return ((FakeAccel *)m->accel_state)->level[gsi];
}

static DeviceState *create(Machine *m, const char *driver, const char *opts)
{
    Error *err = NULL;
    Keyval *kv = opts ? keyval_parse(opts, NULL, &err) : NULL;
    g_assert_true(!opts || kv);
    DeviceState *dev = device_create(m, driver, kv, opts ? opts : driver, &err);
    if (!dev) {
        g_error("%s", error_get_pretty(err));
    }
    keyval_free(kv);
    return dev;
}

static char *create_fails(Machine *m, const char *driver, const char *opts)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(opts, NULL, &err);
    g_assert_nonnull(kv);
    g_assert_null(device_create(m, driver, kv, opts, &err));
    g_assert_nonnull(err);
    keyval_free(kv);
    char *msg = g_strdup(error_get_pretty(err));
    error_free(err);
    return msg;
}

static uint8_t inb(Machine *m, unsigned reg)
{
    uint64_t v = 0;
    g_assert_true(io_space_read(m->pio, COM1 + reg, 1, &v));
    return v;
}

static void outb(Machine *m, unsigned reg, uint8_t v)
{
    g_assert_true(io_space_write(m->pio, COM1 + reg, 1, v));
}

static void test_reset_values(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);
    g_assert_cmphex(inb(m, IER), ==, 0);
    g_assert_cmphex(inb(m, IIR), ==, 0x01);
    g_assert_cmphex(inb(m, LCR), ==, 0);
    g_assert_cmphex(inb(m, MCR), ==, 0);
    g_assert_cmphex(inb(m, LSR), ==, 0x60);
    g_assert_cmphex(inb(m, MSR), ==, 0xb0);
    outb(m, SCR, 0x5a);
    g_assert_cmphex(inb(m, SCR), ==, 0x5a);
    g_assert_cmpint(irq_level(m, 4), ==, 0);

    /* A system reset brings everything back. */
    outb(m, IER, 0x0f);
    outb(m, MCR, 0x1f);
    device_reset_all(m);
    g_assert_cmphex(inb(m, IER), ==, 0);
    g_assert_cmphex(inb(m, MCR), ==, 0);
    machine_free_fake(m);
}

static void test_dlab(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);
    outb(m, IER, 0x05);
    outb(m, LCR, 0x83);
    outb(m, DLL, 0x01);
    outb(m, DLM, 0x02);
    g_assert_cmphex(inb(m, DLL), ==, 0x01);
    g_assert_cmphex(inb(m, DLM), ==, 0x02);
    outb(m, LCR, 0x03);
    g_assert_cmphex(inb(m, IER), ==, 0x05);
    g_assert_cmphex(inb(m, LCR), ==, 0x03);
    /* Upper IER bits do not exist. */
    outb(m, IER, 0xff);
    g_assert_cmphex(inb(m, IER), ==, 0x0f);
    machine_free_fake(m);
}

static void test_transmit_to_file(void)
{
    Machine *m = machine_new_fake();
    g_autofree char *dir = g_dir_make_tmp("sen-serial-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "out", NULL);
    ChardevConfig cc = { .id = "ser0", .kind = CHARDEV_FILE, .path = path };
    Error *err = NULL;
    Chardev *chr = chardev_new(&cc, &m->lock, &err);
    g_assert_nonnull(chr);
    g_ptr_array_add(m->chardevs, chr);
    create(m, "isa-serial", "chardev=ser0");

    for (const char *p = "Hello, serial\n"; *p; p++) {
        g_assert_cmphex(inb(m, LSR) & 0x60, ==, 0x60);
        outb(m, RBR, *p);
        g_assert_cmphex(inb(m, LSR) & 0x60, ==, 0x60); /* empty again at once */
    }
    machine_free_fake(m);
    g_autofree char *data = NULL;
    g_assert_true(g_file_get_contents(path, &data, NULL, NULL));
    g_assert_cmpstr(data, ==, "Hello, serial\n");
    g_unlink(path);
    g_rmdir(dir);
}

static void test_loopback(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);

    /* MCR outputs appear on MSR inputs: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
    outb(m, MCR, 0x10);
    uint8_t msr = inb(m, MSR);
    g_assert_cmphex(msr & 0xf0, ==, 0x00);
    g_assert_cmphex(msr & 0x0f, ==, 0x0b); /* DCTS, DDSR, DDCD: all dropped */
    g_assert_cmphex(inb(m, MSR), ==, 0x00); /* deltas clear on read */
    outb(m, MCR, 0x1f);
    g_assert_cmphex(inb(m, MSR), ==, 0xfb);
    outb(m, MCR, 0x1b); /* OUT1 off: RI trailing edge */
    g_assert_cmphex(inb(m, MSR), ==, 0xb4);
    outb(m, MCR, 0x11);
    g_assert_cmphex(inb(m, MSR), ==, 0x29); /* DSR only; CTS and DCD fell */

    /* Transmitted bytes come back in. */
    outb(m, RBR, 'x');
    g_assert_cmphex(inb(m, LSR), ==, 0x61);
    g_assert_cmphex(inb(m, RBR), ==, 'x');
    g_assert_cmphex(inb(m, LSR), ==, 0x60);

    /* Without FIFO a second byte overruns the first. */
    outb(m, RBR, '1');
    outb(m, RBR, '2');
    g_assert_cmphex(inb(m, LSR), ==, 0x63);
    g_assert_cmphex(inb(m, LSR), ==, 0x61); /* OE cleared by the read */
    g_assert_cmphex(inb(m, RBR), ==, '2');

    /* Leaving loopback restores the modem inputs of an idle null-modem peer. */
    outb(m, MCR, 0x00);
    g_assert_cmphex(inb(m, MSR) & 0xf0, ==, 0xb0);
    machine_free_fake(m);
}

static void test_fifo(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);
    outb(m, MCR, 0x10);
    outb(m, FCR, 0x07);
    g_assert_cmphex(inb(m, IIR) & 0xc0, ==, 0xc0);

    for (int i = 0; i < 17; i++) {
        outb(m, RBR, 'A' + i);
    }
    g_assert_cmphex(inb(m, LSR), ==, 0x63); /* the 17th byte overran */
    for (int i = 0; i < 16; i++) {
        g_assert_cmphex(inb(m, LSR) & 1, ==, 1);
        g_assert_cmphex(inb(m, RBR), ==, 'A' + i);
    }
    g_assert_cmphex(inb(m, LSR), ==, 0x60);

    /* Receiver FIFO reset drops pending bytes. */
    outb(m, RBR, 'z');
    outb(m, FCR, 0x03);
    g_assert_cmphex(inb(m, LSR) & 1, ==, 0);

    /* Disabling the FIFO clears the FIFO bits of IIR. */
    outb(m, FCR, 0x00);
    g_assert_cmphex(inb(m, IIR), ==, 0x01);
    machine_free_fake(m);
}

static void test_trigger_and_timeout(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);
    outb(m, MCR, 0x10);
    outb(m, LCR, 0x03); /* 8N1: 10 bits a character */
    outb(m, FCR, 0xc1); /* trigger level 14 */
    outb(m, IER, 0x01);
    for (int i = 0; i < 3; i++) {
        outb(m, RBR, 'a' + i);
    }
    g_assert_cmphex(inb(m, IIR), ==, 0xc1); /* below the trigger level */
    /* At 9600 baud 8N1 one character is ~1.04 ms: 4 of them time out. */
    virt_clock_step(m->clock, 3 * 1000 * 1000);
    g_assert_cmphex(inb(m, IIR), ==, 0xc1);
    virt_clock_step(m->clock, 2 * 1000 * 1000);
    g_assert_cmphex(inb(m, IIR), ==, 0xcc);
    g_assert_cmphex(inb(m, RBR), ==, 'a'); /* a read clears the timeout */
    g_assert_cmphex(inb(m, IIR), ==, 0xc1);
    for (int i = 0; i < 11; i++) {
        outb(m, RBR, 'd' + i);
    }
    g_assert_cmphex(inb(m, IIR), ==, 0xc1); /* 13 bytes */
    outb(m, RBR, 'o');
    g_assert_cmphex(inb(m, IIR), ==, 0xc4); /* 14: trigger level reached */
    inb(m, RBR);
    g_assert_cmphex(inb(m, IIR), ==, 0xc1);

    /* Trigger levels 1, 4, 8 */
    const uint8_t fcr[3] = { 0x07, 0x47, 0x87 };
    const int level[3] = { 1, 4, 8 };
    for (int t = 0; t < 3; t++) {
        outb(m, FCR, fcr[t]);
        for (int i = 0; i < level[t] - 1; i++) {
            outb(m, RBR, 'x');
        }
        g_assert_cmphex(inb(m, IIR), ==, 0xc1);
        outb(m, RBR, 'x');
        g_assert_cmphex(inb(m, IIR), ==, 0xc4);
    }
    machine_free_fake(m);
}

static void test_iir_priority(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);
    outb(m, MCR, 0x10);  /* loopback: CTS, DSR drop -> modem status deltas */
    outb(m, IER, 0x0f);  /* THRE is raised by enabling it with THR empty */
    outb(m, RBR, '1');
    outb(m, RBR, '2');   /* overrun */
    g_assert_cmphex(inb(m, IIR), ==, 0x06); /* line status first */
    inb(m, LSR);
    g_assert_cmphex(inb(m, IIR), ==, 0x04); /* then received data */
    inb(m, RBR);
    g_assert_cmphex(inb(m, IIR), ==, 0x02); /* then THR empty; reading IIR clears it */
    g_assert_cmphex(inb(m, IIR), ==, 0x00); /* then modem status */
    inb(m, MSR);
    g_assert_cmphex(inb(m, IIR), ==, 0x01);

    /* Masked sources do not show. */
    outb(m, IER, 0x00);
    outb(m, RBR, '3');
    g_assert_cmphex(inb(m, IIR), ==, 0x01);
    machine_free_fake(m);
}

static void test_irq_line(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", NULL);

    /* Pending THRE, but OUT2 clear: the PC's line stays low. */
    outb(m, IER, 0x02);
    g_assert_cmpint(irq_level(m, 4), ==, 0);
    outb(m, MCR, 0x08);
    g_assert_cmpint(irq_level(m, 4), ==, 1);
    g_assert_cmphex(inb(m, IIR), ==, 0x02);
    g_assert_cmpint(irq_level(m, 4), ==, 0);
    outb(m, RBR, 'x');  /* THR empty again after the byte left */
    g_assert_cmpint(irq_level(m, 4), ==, 1);
    outb(m, IER, 0x00);
    g_assert_cmpint(irq_level(m, 4), ==, 0);
    outb(m, IER, 0x02);
    g_assert_cmpint(irq_level(m, 4), ==, 1);
    /* Loopback disconnects the interrupt from the line. */
    outb(m, MCR, 0x18);
    g_assert_cmpint(irq_level(m, 4), ==, 0);
    outb(m, MCR, 0x08);
    g_assert_cmpint(irq_level(m, 4), ==, 1);
    device_reset_all(m);
    g_assert_cmpint(irq_level(m, 4), ==, 0);
    machine_free_fake(m);
}

static void test_props(void)
{
    Machine *m = machine_new_fake();
    create(m, "isa-serial", "index=1");
    g_assert_cmphex(inb(m, 0x2f8 - COM1 + LSR), ==, 0x60);
    outb(m, 0x2f8 - COM1 + IER, 0x02);
    outb(m, 0x2f8 - COM1 + MCR, 0x08);
    g_assert_cmpint(irq_level(m, 3), ==, 1);
    create(m, "isa-serial", "index=2,iobase=0x200,irq=5");
    uint64_t v;
    g_assert_true(io_space_read(m->pio, 0x205, 1, &v));
    g_assert_cmphex(v, ==, 0x60);

    g_autofree char *e1 = create_fails(m, "isa-serial", "index=4");
    g_assert_nonnull(strstr(e1, "index"));
    g_autofree char *e2 = create_fails(m, "isa-serial", "chardev=nope");
    g_assert_nonnull(strstr(e2, "'nope'"));
    g_autofree char *e3 = create_fails(m, "isa-serial", "index=1");
    g_assert_nonnull(strstr(e3, "isa-serial")); /* range already taken */
    g_assert_cmpuint(m->devices->len, ==, 2);
    machine_free_fake(m);
}

/* Input from a socket chardev into the FIFO, with flow control when it is full. */
static void test_receive_from_chardev(void)
{
    Machine *m = machine_new_fake();
    g_autofree char *dir = g_dir_make_tmp("sen-serial-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "sock", NULL);
    ChardevConfig cc = { .id = "s", .kind = CHARDEV_SOCKET, .path = path, .server = true };
    Error *err = NULL;
    Chardev *chr = chardev_new(&cc, &m->lock, &err);
    g_assert_nonnull(chr);
    g_ptr_array_add(m->chardevs, chr);
    create(m, "isa-serial", "chardev=s");
    outb(m, FCR, 0x01);
    outb(m, IER, 0x01);
    outb(m, MCR, 0x08);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(connect(c, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    char msg[24];
    for (int i = 0; i < 24; i++) {
        msg[i] = 'a' + i;
    }
    g_assert_cmpint(write(c, msg, sizeof(msg)), ==, sizeof(msg));

    GString *got = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (got->len < sizeof(msg) && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        machine_lock(m);
        if (inb(m, LSR) & 1) {
            g_assert_cmpint(irq_level(m, 4), ==, 1);
            g_string_append_c(got, inb(m, RBR));
        } else {
            g_assert_cmpint(irq_level(m, 4), ==, 0);
        }
        machine_unlock(m);
    }
    g_assert_cmpmem(got->str, got->len, msg, sizeof(msg));
    g_string_free(got, TRUE);
    close(c);
    machine_free_fake(m);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/serial/reset-values", test_reset_values);
    g_test_add_func("/serial/dlab", test_dlab);
    g_test_add_func("/serial/transmit", test_transmit_to_file);
    g_test_add_func("/serial/loopback", test_loopback);
    g_test_add_func("/serial/fifo", test_fifo);
    g_test_add_func("/serial/trigger-timeout", test_trigger_and_timeout);
    g_test_add_func("/serial/iir-priority", test_iir_priority);
    g_test_add_func("/serial/irq-line", test_irq_line);
    g_test_add_func("/serial/props", test_props);
    g_test_add_func("/serial/receive", test_receive_from_chardev);
    return g_test_run();
}
