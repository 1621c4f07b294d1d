/*
 * libFuzzer harness for the ACPI PM block (hw/acpi/piix4-pm.c): the input is a list of
 * 6-byte operations (port read/write of any width at any offset of the PM block, GPE0 and
 * APM ports, or a step of the virtual clock), run against one acpi-pm on a fake machine.
 * Nothing may crash, and what the guest can read must stay architectural: a 24-bit PM
 * timer, only the PM1 enable bits that exist, SLP_EN never read back.
 *
 * Built with -fsanitize=fuzzer under clang; with another compiler a small main() below
 * feeds seeded random inputs instead so the harness still runs in `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include "sen/device.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/timer.h"
#include "fuzz-random.h"

static const struct { uint16_t base, len; } ranges[] = {
    { 0x600, 0x40 },  /* PM1 event/control, PM timer, and the rest of the block */
    { 0xafe0, 4 },    /* GPE0 */
    { 0xb2, 2 },      /* APM control/status */
};

static void fail(const char *what, uint64_t v)
{
    fprintf(stderr, "acpi-pm-fuzz: %s (0x%llx)\n", what, (unsigned long long)v);
    abort();
}

static Machine *fuzz_machine(void)
{
    /* One machine for the process; each input starts from a device reset. */
    static Machine *m;
    if (!m) {
        Error *err = NULL;
        m = g_new0(Machine, 1);
        g_mutex_init(&m->lock);
        m->pio = io_space_new("pio");
        m->clock = virt_clock_new(true);
        if (!device_create(m, "acpi-pm", NULL, "acpi-pm-fuzz", &err)) {
            fail(error_get_pretty(err), 0);
        }
    }
    return m;
}

static void check_invariants(Machine *m)
{
    uint64_t v;
    io_space_read(m->pio, 0x608, 4, &v);
    if (v >> 24) {
        fail("PM timer wider than 24 bits", v);
    }
    io_space_read(m->pio, 0x602, 2, &v);
    if (v & ~0x0721ull) {
        fail("PM1 enable has bits that do not exist", v);
    }
    io_space_read(m->pio, 0x604, 2, &v);
    if (v & 0x2000) {
        fail("SLP_EN reads back", v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned widths[] = { 1, 2, 4, 8 };
    Machine *m = fuzz_machine();

    machine_lock(m);
    device_reset_all(m);
    for (size_t i = 0; i + 6 <= size; i += 6) {
        const uint8_t *op = data + i;
        unsigned r = op[1] % G_N_ELEMENTS(ranges);
        /* Mostly inside the range, sometimes straddling its end. */
        uint64_t off = op[2] % (ranges[r].len + 4u);
        unsigned w = widths[op[0] >> 6];
        uint64_t value = (uint64_t)op[3] | (uint64_t)op[4] << 8 | (uint64_t)op[5] << 16 |
                         (uint64_t)op[5] << 40;
        uint64_t v;
        switch (op[0] & 3) {
        case 0:
            io_space_read(m->pio, ranges[r].base + off, w, &v);
            break;
        case 1:
            io_space_write(m->pio, ranges[r].base + off, w, value);
            break;
        case 2: /* up to ~16 s of virtual time, so carries and wraps happen */
            virt_clock_step(m->clock, (int64_t)(value & 0xffffff) * 1000);
            break;
        default:
            check_invariants(m);
            break;
        }
    }
    check_invariants(m);
    machine_unlock(m);
    /* A guest S5 or reset only raises a request; forget it for the next input. */
    m->shutdown_requested = m->reset_requested = 0;
    return 0;
}

#ifndef SEN_LIBFUZZER
int main(int argc, char **argv)
{
    unsigned runs = fuzz_random_inputs(argc, argv, 5000, 0xac91, 6 * 64);
    printf("acpi-pm-fuzz: %u random inputs\n", runs);
    return 0;
}
#endif
