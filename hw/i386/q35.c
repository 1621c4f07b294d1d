/*
 * -M q35 board specifics; the rest of the machine is hw/i386/pc.c.  See q35.h.
 */
#include <inttypes.h>
#include "hw/i386/q35.h"
#include "sen/hw/pc.h"
#include "sen/pci.h"

void q35_ram_split(uint64_t ram_size, uint64_t *below_4g, uint64_t *above_4g)
{
    uint64_t lowmem = ram_size >= PCI_ECAM_BASE ? 0x80000000ULL : PCI_ECAM_BASE;
    *below_4g = MIN(ram_size, lowmem);
    *above_4g = ram_size - *below_4g;
}

typedef struct BarSlot {
    PCIDevice *dev;
    int nr;
    uint64_t size;
    unsigned type;
} BarSlot;

static void collect_bars(PCIDevice *d, void *opaque)
{
    GArray *bars = opaque;
    for (int n = 0; n < PCI_NUM_BARS; n++) {
        if (d->bars[n].size) {
            BarSlot b = { d, n, d->bars[n].size, d->bars[n].type };
            g_array_append_val(bars, b);
        }
    }
}

static gint larger_first(gconstpointer a, gconstpointer b)
{
    const BarSlot *x = a, *y = b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

/* Next naturally aligned address of size bytes at or above *next, below end. */
static bool take(uint64_t *next, uint64_t end, uint64_t size, uint64_t *addr)
{
    uint64_t a = (*next + size - 1) & ~(size - 1);
    if (a < *next || a + size > end) {
        return false;
    }
    *addr = a;
    *next = a + size;
    return true;
}

static void enable_device(PCIDevice *d, void *opaque)
{
    PCIBus *bus = opaque;
    uint16_t cmd = pci_get_word(d->config + PCI_COMMAND);
    bool io = false, mem = false;
    for (int n = 0; n < PCI_NUM_BARS; n++) {
        io |= d->bars[n].size && d->bars[n].type == PCI_BAR_IO;
        mem |= d->bars[n].size && d->bars[n].type != PCI_BAR_IO;
    }
    cmd |= (io ? PCI_COMMAND_IO : 0) | (mem ? PCI_COMMAND_MEMORY : 0);
    pci_bus_config_write(bus, d->devfn, PCI_COMMAND, cmd, 2);
    uint8_t pin = d->config[PCI_INTERRUPT_PIN];
    if (pin >= 1 && pin <= 4) {
        pci_bus_config_write(bus, d->devfn, PCI_INTERRUPT_LINE, pci_intx_gsi(d->devfn, pin),
                             1);
    }
}

void q35_pci_assign_resources(Machine *m)
{
    PCIBus *bus = pci_bus_find(m, PCI_HOST_BUS_NAME);
    if (!bus) {
        return;
    }
    g_autoptr(GArray) bars = g_array_new(FALSE, FALSE, sizeof(BarSlot));
    pci_bus_foreach(bus, collect_bars, bars);
    g_array_sort(bars, larger_first);

    uint64_t mem_next = Q35_PCI_MMIO_BASE, io_next = Q35_PCI_IO_BASE;
    for (guint i = 0; i < bars->len; i++) {
        const BarSlot *b = &g_array_index(bars, BarSlot, i);
        uint64_t addr;
        bool ok = b->type == PCI_BAR_IO ? take(&io_next, Q35_PCI_IO_END, b->size, &addr)
                                        : take(&mem_next, Q35_PCI_MMIO_END, b->size, &addr);
        if (!ok) {
            /* What firmware does too: the device works without that BAR or not at all,
             * so say which one. */
            warn_report("q35: no room for BAR%d (%" PRIu64 " bytes) of %s%s%s at %02x.%x "
                        "in the PCI %s window; left unassigned", b->nr, b->size,
                        b->dev->qdev.cls->name, b->dev->qdev.id ? " id=" : "",
                        b->dev->qdev.id ? b->dev->qdev.id : "",
                        PCI_DEVFN_SLOT(b->dev->devfn), PCI_DEVFN_FUNC(b->dev->devfn),
                        b->type == PCI_BAR_IO ? "I/O" : "memory");
            continue;
        }
        uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * b->nr;
        pci_bus_config_write(bus, b->dev->devfn, reg, (uint32_t)addr, 4);
        if (b->type == PCI_BAR_MEM64) {
            pci_bus_config_write(bus, b->dev->devfn, reg + 4, (uint32_t)(addr >> 32), 4);
        }
    }
    pci_bus_foreach(bus, enable_device, bus);
}
