/*
 * pci-testdev (1b36:0005, as QEMU's): a PCI device with nothing behind it but scratch
 * registers, for tests of PCI enumeration and BAR mapping (and issue 9's ACPI tables).
 * BAR0: 4 KiB memory, BAR1: 256 bytes of I/O; both read back what was last written
 * (little-endian), and are cleared by reset.
 */
#include <string.h>
#include "hw/core/device-list.h"
#include "sen/pci.h"
#include "sen/vmstate.h"

#define TESTDEV_MEM_SIZE 4096
#define TESTDEV_IO_SIZE  256

typedef struct PciTestDev {
    PCIDevice pci;
    uint8_t mem[TESTDEV_MEM_SIZE];
    uint8_t io[TESTDEV_IO_SIZE];
} PciTestDev;

static uint64_t scratch_read(const uint8_t *buf, size_t len, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size && off + i < len; i++) {
        v |= (uint64_t)buf[off + i] << (8 * i);
    }
    return v;
}

static void scratch_write(uint8_t *buf, size_t len, uint64_t off, unsigned size, uint64_t v)
{
    for (unsigned i = 0; i < size && off + i < len; i++) {
        buf[off + i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t mem_read(void *opaque, uint64_t off, unsigned size)
{
    PciTestDev *s = opaque;
    return scratch_read(s->mem, sizeof(s->mem), off, size);
}

static void mem_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
    PciTestDev *s = opaque;
    scratch_write(s->mem, sizeof(s->mem), off, size, v);
}

static uint64_t io_read(void *opaque, uint64_t off, unsigned size)
{
    PciTestDev *s = opaque;
    return scratch_read(s->io, sizeof(s->io), off, size);
}

static void io_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
    PciTestDev *s = opaque;
    scratch_write(s->io, sizeof(s->io), off, size, v);
}

static const IoOps mem_ops = { .read = mem_read, .write = mem_write };
static const IoOps io_ops = { .read = io_read, .write = io_write };

static void testdev_reset(DeviceState *dev)
{
    PciTestDev *s = (PciTestDev *)dev;
    memset(s->mem, 0, sizeof(s->mem));
    memset(s->io, 0, sizeof(s->io));
    pci_device_reset(&s->pci);
}

static void testdev_unrealize(DeviceState *dev)
{
    pci_device_unrealize(&((PciTestDev *)dev)->pci);
}

static bool testdev_realize(DeviceState *dev, Machine *m, Error **errp)
{
    PciTestDev *s = (PciTestDev *)dev;

    if (!pci_device_realize(&s->pci, m, errp)) {
        return false;
    }
    pci_set_ids(&s->pci, 0x1b36, 0x0005, 0x1af4, 0x1100, 0);
    pci_set_class(&s->pci, 0x00ff00); /* unclassified */
    pci_set_intx_pin(&s->pci, 0);
    if (!pci_register_bar(&s->pci, 0, PCI_BAR_MEM32, TESTDEV_MEM_SIZE, &mem_ops, s, errp) ||
        !pci_register_bar(&s->pci, 1, PCI_BAR_IO, TESTDEV_IO_SIZE, &io_ops, s, errp)) {
        pci_device_unrealize(&s->pci);
        return false;
    }
    return true;
}

static const VMStateField testdev_fields[] = {
    VMSTATE_PCI_DEVICE(pci, PciTestDev),
    VMSTATE_UINT8_ARRAY(mem, PciTestDev, TESTDEV_MEM_SIZE),
    VMSTATE_UINT8_ARRAY(io, PciTestDev, TESTDEV_IO_SIZE),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc testdev_vmsd = {
    .name = "pci-testdev",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = testdev_fields,
};

static const PropertyDef testdev_props[] = {
    DEFINE_PCI_PROPS(PciTestDev, pci),
    { .name = NULL },
};

const DeviceClass pci_testdev_class = {
    .name = "pci-testdev",
    .desc = "PCI test device (1b36:0005): scratch memory and I/O BARs",
    .instance_size = sizeof(PciTestDev),
    .props = testdev_props,
    .user_creatable = true,
    .realize = testdev_realize,
    .reset = testdev_reset,
    .unrealize = testdev_unrealize,
    .vmsd = &testdev_vmsd,
};
