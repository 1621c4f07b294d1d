/* i8042 (hw/misc/i8042.c) through ports 0x60/0x64: probing replies and guest resets. */
#include <stdio.h>
#include <glib.h>
#include "accel/accel.h"
#include "sen/device.h"
#include "sen/machine.h"

typedef struct FakeAccel {
    int level[16];
} FakeAccel;

static void fake_set_irq(Machine *m, unsigned gsi, int level)
{
    ((FakeAccel *)m->accel_state)->level[gsi] = level;
}

static const AccelOps fake_accel = {
    .name = "fake",
    .set_irq = fake_set_irq,
};

static Machine *setup(void)
{
    Machine *m = g_new0(Machine, 1);
    Error *err = NULL;
    g_mutex_init(&m->lock);
    m->pio = io_space_new("pio");
    m->devices = g_ptr_array_new();
    m->accel = &fake_accel;
    m->accel_state = g_new0(FakeAccel, 1);
    m->accel_up = true;
    g_assert_nonnull(device_create(m, "i8042", NULL, "i8042", &err));
    return m;
}

static void teardown(Machine *m)
{
    device_destroy_all(m);
    g_ptr_array_unref(m->devices);
    io_space_free(m->pio);
    g_free(m->accel_state);
    g_mutex_clear(&m->lock);
    g_free(m);
}

static uint8_t inb(Machine *m, uint16_t port)
{
    uint64_t v = 0;
    g_assert_true(io_space_read(m->pio, port, 1, &v));
    return v;
}

static void outb(Machine *m, uint16_t port, uint8_t v)
{
    g_assert_true(io_space_write(m->pio, port, 1, v));
}

static int kbd_irq(Machine *m)
{
    return ((FakeAccel *)m->accel_state)->level[1];
}

static void test_selftest(void)
{
    Machine *m = setup();
    g_assert_cmphex(inb(m, 0x64) & 0x01, ==, 0);  /* nothing queued */
    g_assert_cmphex(inb(m, 0x64) & 0x04, ==, 0x04); /* system flag */
    outb(m, 0x64, 0xaa);
    g_assert_cmphex(inb(m, 0x64) & 0x09, ==, 0x09); /* OBF, last write was a command */
    g_assert_cmpint(kbd_irq(m), ==, 1);
    g_assert_cmphex(inb(m, 0x60), ==, 0x55);
    g_assert_cmphex(inb(m, 0x64) & 0x01, ==, 0);
    g_assert_cmpint(kbd_irq(m), ==, 0);
    outb(m, 0x64, 0xab);
    g_assert_cmphex(inb(m, 0x60), ==, 0x00);
    teardown(m);
}

static void test_command_byte(void)
{
    Machine *m = setup();
    outb(m, 0x64, 0x20);
    uint8_t ctr = inb(m, 0x60);
    g_assert_cmphex(ctr & 0x04, ==, 0x04);
    outb(m, 0x64, 0x60);
    outb(m, 0x60, 0x44); /* interrupts off */
    outb(m, 0x64, 0x20);
    g_assert_cmpint(kbd_irq(m), ==, 0);
    g_assert_cmphex(inb(m, 0x60), ==, 0x44);
    outb(m, 0x64, 0xad);
    outb(m, 0x64, 0x20);
    g_assert_cmphex(inb(m, 0x60), ==, 0x54);
    outb(m, 0x64, 0xae);
    outb(m, 0x64, 0x20);
    g_assert_cmphex(inb(m, 0x60), ==, 0x44);

    /* A keyboard reset is acknowledged and passes its self-test. */
    outb(m, 0x60, 0xff);
    g_assert_cmphex(inb(m, 0x60), ==, 0xfa);
    g_assert_cmphex(inb(m, 0x60), ==, 0xaa);
    /* Aux loopback: the byte comes back flagged as from the aux port. */
    outb(m, 0x64, 0xd3);
    outb(m, 0x60, 0x5a);
    g_assert_cmphex(inb(m, 0x64) & 0x21, ==, 0x21);
    g_assert_cmphex(inb(m, 0x60), ==, 0x5a);
    g_assert_cmpint(m->reset_requested, ==, 0);
    teardown(m);
}

static void test_reset_pulse(void)
{
    Machine *m = setup();
    outb(m, 0x64, 0xff); /* pulses nothing */
    g_assert_cmpint(m->reset_requested, ==, 0);
    outb(m, 0x64, 0xfe);
    g_assert_cmpint(m->reset_requested, ==, SHUTDOWN_CAUSE_GUEST_RESET);
    teardown(m);
}

static void test_reset_output_port(void)
{
    Machine *m = setup();
    outb(m, 0x64, 0xd0);
    uint8_t out = inb(m, 0x60);
    g_assert_cmphex(out & 0x03, ==, 0x03);
    outb(m, 0x64, 0xd1);
    outb(m, 0x60, out); /* bit 0 still set: no reset */
    g_assert_cmpint(m->reset_requested, ==, 0);
    outb(m, 0x64, 0xd1);
    outb(m, 0x60, out & ~1);
    g_assert_cmpint(m->reset_requested, ==, SHUTDOWN_CAUSE_GUEST_RESET);
    teardown(m);
}

static void test_overflow_and_junk(void)
{
    Machine *m = setup();
    /* A guest flooding commands never crashes or grows the queue without bound. */
    for (int i = 0; i < 100; i++) {
        outb(m, 0x64, 0x20);
    }
    for (int i = 0; i < 0x100; i++) {
        if ((i & 0xf0) != 0xf0 && i != 0x60 && (i & 0xf0) != 0xd0) {
            outb(m, 0x64, i);
        }
    }
    int n = 0;
    while ((inb(m, 0x64) & 1) && n < 1000) {
        inb(m, 0x60);
        n++;
    }
    g_assert_cmpint(n, <=, 16);
    g_assert_cmpint(m->reset_requested, ==, 0);
    teardown(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/i8042/selftest", test_selftest);
    g_test_add_func("/i8042/command-byte", test_command_byte);
    g_test_add_func("/i8042/reset-pulse", test_reset_pulse);
    g_test_add_func("/i8042/reset-output-port", test_reset_output_port);
    g_test_add_func("/i8042/overflow", test_overflow_and_junk);
    return g_test_run();
}
