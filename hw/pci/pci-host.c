/*
 * The PCI host bridges: i440fx-like (8086:1237 at 00.0, -M pc) and the Q35 MCH (8086:29c0,
 * -M q35; QEMU's "mch"), which differ only in their IDs.  Both have these config paths:
 * type-1 (address latch at 0xcf8, data at 0xcfc-0xcff) and an ECAM (MMCONFIG) window at
 * PCI_ECAM_BASE, 1 MiB per bus, 4 KiB per function.
 *
 * The ECAM base is reported read-only in host-bridge config register 0x60 (base | 1) the
 * way Q35's PCIEXBAR does; ACPI's MCFG table (issue 9) will advertise it to Linux.  When
 * RAM reaches PCI_ECAM_BASE (over 2.75 GiB below 4 GiB) there is no window and the
 * register reads 0: RAM would shadow it.
 */
#include "hw/core/device-list.h"
#include "hw/pci/pci-internal.h"
#include "sen/vmstate.h"

#define CF8_PORT     0xcf8
#define CFC_PORT     0xcfc
#define CF8_ENABLE   0x80000000u
/* The PIIX reset control register shares the address latch's dword: a byte at 0xcf9.
 * Bit 2 resets the system (bit 1 asks for a hard reset, which is all Sen has). */
#define RCR_OFFSET   1
#define RCR_SYS_RST  0x02
#define RCR_RESET_CPU 0x04

typedef struct PciHost {
    PCIDevice pci;        /* the bridge itself, 00.0 */
    PCIBus *bus;
    Machine *m;
    uint32_t cf8;
    uint8_t rcr;          /* reset control register (0xcf9) */
    bool ecam;
    bool pio_cf8, pio_cfc; /* what realize registered */
} PciHost;

PCIBus *pci_bus_find(Machine *m, const char *name)
{
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *dev = g_ptr_array_index(m->devices, i);
        if (dev->cls == &i440fx_pcihost_class || dev->cls == &q35_pcihost_class) {
            PciHost *h = (PciHost *)dev;
            if (h->bus && !g_strcmp0(h->bus->name, name)) {
                return h->bus;
            }
        }
    }
    return NULL;
}

/* What a read of nothing returns, for any access width. */
static uint64_t all_ones(unsigned size)
{
    return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
}

/* ---- type-1 ---- */

static uint64_t cf8_read(void *opaque, uint64_t off, unsigned size)
{
    PciHost *h = opaque;
    /* Only a dword access at 0xcf8 is the address latch; a byte at 0xcf9 is the PIIX
     * reset control register. */
    if (off == RCR_OFFSET && size == 1) {
        return h->rcr;
    }
    return off == 0 && size == 4 ? h->cf8 : all_ones(size);
}

static void cf8_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    PciHost *h = opaque;
    if (off == 0 && size == 4) {
        h->cf8 = (uint32_t)val;
    } else if (off == RCR_OFFSET && size == 1) {
        if (val & RCR_RESET_CPU) {
            machine_request_reset(h->m, SHUTDOWN_CAUSE_GUEST_RESET);
            return;
        }
        h->rcr = val & RCR_SYS_RST;
    }
}

static bool cf8_target(PciHost *h, uint64_t off, unsigned size, uint8_t *devfn,
                       uint32_t *reg)
{
    if (!(h->cf8 & CF8_ENABLE) || ((h->cf8 >> 16) & 0xff) != 0 || off + size > 4 ||
        size > 4) {
        return false;
    }
    *devfn = (h->cf8 >> 8) & 0xff;
    /* As QEMU (config_reg | (addr & 3)): the latch's low two bits count, so a guest that
     * latches register 2 and reads a word at 0xcfc (kvm-unit-tests' pci_config_readw)
     * reads register 2, not 0. */
    *reg = (h->cf8 & 0xff) | (uint32_t)off;
    return true;
}

static uint64_t cfc_read(void *opaque, uint64_t off, unsigned size)
{
    PciHost *h = opaque;
    uint8_t devfn;
    uint32_t reg;
    if (!cf8_target(h, off, size, &devfn, &reg)) {
        return all_ones(size);
    }
    return pci_bus_config_read(h->bus, devfn, reg, size);
}

static void cfc_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    PciHost *h = opaque;
    uint8_t devfn;
    uint32_t reg;
    if (cf8_target(h, off, size, &devfn, &reg)) {
        pci_bus_config_write(h->bus, devfn, reg, (uint32_t)val, size);
    }
}

static const IoOps cf8_ops = { .read = cf8_read, .write = cf8_write };
static const IoOps cfc_ops = { .read = cfc_read, .write = cfc_write };

/* ---- ECAM ---- */

static bool ecam_target(uint64_t off, unsigned size, uint8_t *devfn, uint32_t *reg)
{
    /* Only bus 0 exists; an access must stay inside one function's 4 KiB. */
    if ((off >> 20) != 0 || size > 4 || (off & 0xfff) + size > 0x1000) {
        return false;
    }
    *devfn = (off >> 12) & 0xff;
    *reg = off & 0xfff;
    return true;
}

static uint64_t ecam_read(void *opaque, uint64_t off, unsigned size)
{
    PciHost *h = opaque;
    uint8_t devfn;
    uint32_t reg;
    if (!ecam_target(off, size, &devfn, &reg)) {
        return all_ones(size);
    }
    return pci_bus_config_read(h->bus, devfn, reg, size);
}

static void ecam_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    PciHost *h = opaque;
    uint8_t devfn;
    uint32_t reg;
    if (ecam_target(off, size, &devfn, &reg)) {
        pci_bus_config_write(h->bus, devfn, reg, (uint32_t)val, size);
    }
}

static const IoOps ecam_ops = { .read = ecam_read, .write = ecam_write };

static bool ram_overlaps_ecam(Machine *m)
{
    for (unsigned i = 0; m->mem && i < guest_mem_region_count(m->mem); i++) {
        const RamRegion *r = guest_mem_region(m->mem, i);
        if (r->gpa < PCI_ECAM_BASE + PCI_ECAM_SIZE && PCI_ECAM_BASE < r->gpa + r->size) {
            return true;
        }
    }
    return false;
}

/* ---- the device ---- */

static void pcihost_unrealize(DeviceState *dev)
{
    PciHost *h = (PciHost *)dev;
    Machine *m = h->pci.m;

    if (m) {
        if (h->ecam) {
            io_space_del(m->mmio, PCI_ECAM_BASE);
        }
        if (h->pio_cfc) {
            io_space_del(m->pio, CFC_PORT);
        }
        if (h->pio_cf8) {
            io_space_del(m->pio, CF8_PORT);
        }
    }
    pci_device_unrealize(&h->pci);
    pci_bus_free(h->bus);
    h->bus = NULL;
}

static bool pcihost_realize_ids(DeviceState *dev, Machine *m, uint16_t device_id,
                                uint8_t revision, Error **errp)
{
    PciHost *h = (PciHost *)dev;

    if (pci_bus_find(m, PCI_HOST_BUS_NAME)) {
        error_setg(errp, "this machine already has a PCI host bridge");
        return false;
    }
    h->m = m;
    h->bus = pci_bus_new(m, PCI_HOST_BUS_NAME);
    if (!pci_device_attach(&h->pci, m, h->bus, PCI_DEVFN(0, 0), errp)) {
        goto fail;
    }
    /* Subsystem 1af4:1100 as on QEMU: SeaBIOS (qemu_detect) and guests key on it. */
    pci_set_ids(&h->pci, 0x8086, device_id, 0x1af4, 0x1100, revision);
    pci_set_class(&h->pci, 0x060000); /* host bridge */
    pci_set_intx_pin(&h->pci, 0);
    if (!io_space_add(m->pio, CF8_PORT, 4, &cf8_ops, h, "PCI config address", errp)) {
        goto fail;
    }
    h->pio_cf8 = true;
    if (!io_space_add(m->pio, CFC_PORT, 4, &cfc_ops, h, "PCI config data", errp)) {
        goto fail;
    }
    h->pio_cfc = true;
    if (!ram_overlaps_ecam(m)) {
        if (!io_space_add(m->mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, &ecam_ops, h,
                          "PCI ECAM (MMCONFIG)", errp)) {
            goto fail;
        }
        h->ecam = true;
        pci_set_long(h->pci.config + PCI_HOST_ECAM_REG, (uint32_t)PCI_ECAM_BASE | 1);
    }
    return true;
fail:
    /* The registry frees a device whose realize failed without calling unrealize. */
    pcihost_unrealize(dev);
    return false;
}

static bool pcihost_realize(DeviceState *dev, Machine *m, Error **errp)
{
    return pcihost_realize_ids(dev, m, 0x1237, 2, errp);
}

/* Q35 MCH: QEMU's has no capabilities either (a conventional PCI function on bus 0). */
static bool q35_pcihost_realize(DeviceState *dev, Machine *m, Error **errp)
{
    return pcihost_realize_ids(dev, m, 0x29c0, 0, errp);
}

static void pcihost_reset(DeviceState *dev)
{
    PciHost *h = (PciHost *)dev;
    h->cf8 = 0;
    h->rcr = 0;
    pci_device_reset(&h->pci);
}

static const VMStateField pcihost_fields[] = {
    VMSTATE_PCI_DEVICE(pci, PciHost),
    VMSTATE_UINT32(cf8, PciHost),
    VMSTATE_UINT8(rcr, PciHost),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc pcihost_vmsd = {
    .name = "i440fx-pcihost",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = pcihost_fields,
};

static const PropertyDef pcihost_props[] = {
    { .name = NULL },
};

const DeviceClass i440fx_pcihost_class = {
    .name = "i440fx-pcihost",
    .desc = "i440FX-like PCI host bridge (CF8/CFC and ECAM config access)",
    .instance_size = sizeof(PciHost),
    .props = pcihost_props,
    .user_creatable = false,
    .realize = pcihost_realize,
    .reset = pcihost_reset,
    .unrealize = pcihost_unrealize,
    .vmsd = &pcihost_vmsd,
};

static const VMStateDesc q35_pcihost_vmsd = {
    .name = "q35-pcihost",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = pcihost_fields,
};

const DeviceClass q35_pcihost_class = {
    .name = "q35-pcihost",
    .desc = "Q35 MCH host bridge 8086:29c0 (CF8/CFC and ECAM config access)",
    .instance_size = sizeof(PciHost),
    .props = pcihost_props,
    .user_creatable = false,
    .realize = q35_pcihost_realize,
    .reset = pcihost_reset,
    .unrealize = pcihost_unrealize,
    .vmsd = &q35_pcihost_vmsd,
};
