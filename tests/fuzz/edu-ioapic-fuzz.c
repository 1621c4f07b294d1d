/*
 * libFuzzer harness for the edu device (hw/misc/edu.c), the userspace IOAPIC
 * (hw/intc/ioapic.c) and the userspace PIT (hw/timer/i8254.c) on one fake machine: 1 MiB of guest RAM, a PCI bus, edu at 00:03.0
 * with its BAR at 0xe0000000, and the IOAPIC driving no accelerator.  The input is a list
 * of 8-byte operations: edu register reads/writes of any width (DMA included), config
 * writes (command register, MSI capability), IOAPIC register accesses, pin levels and
 * EOIs.  Nothing may crash or touch memory outside guest RAM (ASan), and the edu DMA
 * start bit never stays set after a command write.
 *
 * Built with -fsanitize=fuzzer under clang; with another compiler a small main() below
 * feeds seeded random inputs instead so the harness still runs in `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include "sen/device.h"
#include "sen/hw/ioapic.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/pci.h"
#include "sen/timer.h"
#include "fuzz-random.h"

#define EDU_BAR   0xe0000000ULL
#define EDU_DEVFN (3 << 3)

static void fail(const char *what, uint64_t v)
{
    fprintf(stderr, "edu-ioapic-fuzz: %s (0x%llx)\n", what, (unsigned long long)v);
    abort();
}

static void must(DeviceState *dev, Error *err)
{
    if (!dev) {
        fail(error_get_pretty(err), 0);
    }
}

static Machine *fuzz_machine(void)
{
    static Machine *m;
    if (!m) {
        Error *err = NULL;
        m = g_new0(Machine, 1);
        g_mutex_init(&m->lock);
        m->pio = io_space_new("pio");
        m->mmio = io_space_new("mmio");
        m->clock = virt_clock_new(true);
        m->mem = guest_mem_new(1 << 20, &err);
        if (!m->mem || !guest_mem_add_region(m->mem, 0, 1 << 20, 0, &err)) {
            fail(error_get_pretty(err), 0);
        }
        must(device_create(m, "i440fx-pcihost", NULL, "fuzz", &err), err);
        Keyval *kv = keyval_parse("addr=3", NULL, &err);
        must(device_create(m, "edu", kv, "fuzz", &err), err);
        keyval_free(kv);
        must(device_create(m, "ioapic", NULL, "fuzz", &err), err);
        must(device_create(m, "i8254", NULL, "fuzz", &err), err);
    }
    return m;
}

static void cfg_write(Machine *m, uint32_t reg, unsigned w, uint32_t v)
{
    PCIBus *bus = pci_bus_find(m, PCI_HOST_BUS_NAME);
    pci_bus_config_write(bus, EDU_DEVFN, reg, v, w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned widths[] = { 1, 2, 4, 8 };
    Machine *m = fuzz_machine();

    machine_lock(m);
    device_reset_all(m);
    cfg_write(m, PCI_BASE_ADDRESS_0, 4, (uint32_t)EDU_BAR);
    cfg_write(m, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    for (size_t i = 0; i + 8 <= size; i += 8) {
        const uint8_t *op = data + i;
        unsigned w = widths[(op[0] >> 4) & 3];
        /* registers sit at multiples of 4 up to 0xa0; mostly hit them */
        uint64_t off = (op[0] & 0x80) ? op[1] : (uint64_t)(op[1] % 0x28) * 4;
        uint64_t value = fuzz_le(op + 2, 6);
        if (op[1] & 1) {
            value = (value & 0xfff) | 0x40000; /* a plausible DMA buffer address */
        }
        uint64_t v;
        switch (op[0] & 7) {
        case 0:
            io_space_read(m->mmio, EDU_BAR + off, w, &v);
            break;
        case 1:
        case 2:
            io_space_write(m->mmio, EDU_BAR + off, w, value);
            if (off == 0x98 && w >= 4) {
                /* (the BAR may be unmapped by a command-register write) */
                if (io_space_read(m->mmio, EDU_BAR + 0x98, 4, &v) && (v & 1)) {
                    fail("edu DMA still running after its command write", v);
                }
            }
            break;
        case 3: /* command register or somewhere in the capability list */
            cfg_write(m, op[1] < 0x40 ? PCI_COMMAND : op[1] & 0xfc, 4, (uint32_t)value);
            break;
        case 4:
            io_space_write(m->mmio, IOAPIC_BASE + (op[1] & 0x4c), 4, value);
            break;
        case 5:
            io_space_read(m->mmio, IOAPIC_BASE + (op[1] & 0x4c), w, &v);
            break;
        case 6:
            ioapic_set_irq(m->ioapic, op[1] % 30, op[2] & 1);
            break;
        default:
            if (!(op[1] & 0x80)) {
                ioapic_eoi(m->ioapic, op[1]);
            } else if (op[1] & 0x40) { /* PIT ports 0x40-0x43 and 0x61, or time passes */
                uint16_t port = (op[1] & 0x20) ? 0x61 : 0x40 + (op[2] & 3);
                if (op[1] & 0x10) {
                    io_space_write(m->pio, port, w, value >> 8);
                } else {
                    io_space_read(m->pio, port, w, &v);
                }
            } else {
                virt_clock_step(m->clock, (int64_t)(value & 0xfffff));
            }
            break;
        }
    }
    machine_unlock(m);
    return 0;
}

#ifndef SEN_LIBFUZZER
int main(int argc, char **argv)
{
    unsigned runs = fuzz_random_inputs(argc, argv, 5000, 0xed0, 8 * 64);
    printf("edu-ioapic-fuzz: %u random inputs\n", runs);
    return 0;
}
#endif
