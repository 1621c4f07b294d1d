/*
 * -device intel-iommu: the VT-d unit (intel-iommu.c, intel-iommu-walk.c) on a Q35 board.
 * Its registers sit at VTD_BASE_ADDR; it hooks the PCI bus (include/sen/pci.h) so every
 * device DMA is translated and, with intremap=on, every MSI and IOAPIC message is
 * remapped; the board's ACPI build asks it for the DMAR table (intel_iommu_dmar_config).
 *
 * Properties as QEMU's: intremap=on|off|auto, eim=on|off|auto, aw-bits=39|48,
 * caching-mode (only off), device-iotlb (only off).  See docs/iommu.md.
 */
#include <string.h>
#include "hw/acpi/acpi-build.h"
#include "hw/core/device-list.h"
#include "hw/i386/intel-iommu.h"
#include "sen/hw/intel-iommu.h"
#include "sen/pci.h"
#include "sen/vmstate.h"

typedef struct IntelIommu {
    DeviceState qdev;
    /* properties */
    char *intremap;      /* on|off|auto */
    char *eim;           /* on|off|auto */
    uint8_t aw_bits;
    bool caching_mode;
    bool device_iotlb;

    Machine *m;
    PCIBus *bus;
    bool mmio_added;
    VtdState vtd;
} IntelIommu;

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned size)
{
    return vtd_reg_read(&((IntelIommu *)opaque)->vtd, off, size);
}

static void mmio_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
    vtd_reg_write(&((IntelIommu *)opaque)->vtd, off, size, v);
}

static const IoOps mmio_ops = { .read = mmio_read, .write = mmio_write };

static bool hook_translate(void *opaque, uint16_t bdf, uint64_t iova, uint64_t len,
                           bool is_write, uint64_t *gpa, uint64_t *contig)
{
    return vtd_translate(&((IntelIommu *)opaque)->vtd, bdf, iova, len, is_write, gpa, contig);
}

static bool hook_remap_msi(void *opaque, uint16_t sid, uint64_t *addr, uint32_t *data)
{
    return vtd_remap_msi(&((IntelIommu *)opaque)->vtd, sid, addr, data);
}

/* With intremap=off interrupts do not pass the unit (and MSI-X keeps its irqfds). */
static const PCIIOMMUOps dma_only_ops = { .translate = hook_translate };
static const PCIIOMMUOps dma_and_ir_ops = { .translate = hook_translate,
                                            .remap_msi = hook_remap_msi };

static void send_msi(void *opaque, uint64_t addr, uint32_t data)
{
    pci_send_msi(((IntelIommu *)opaque)->m, addr, data);
}

/* on|off|auto (QEMU's OnOffAuto): 1, 0, -1. */
static bool parse_on_off_auto(const char *name, const char *v, int *out, Error **errp)
{
    if (!keyval_parse_on_off_auto(v, out)) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'", name, v);
        return false;
    }
    return true;
}

static bool decide_config(IntelIommu *s, Machine *m, VtdConfig *cfg, Error **errp)
{
    int intremap, eim;
    if (!parse_on_off_auto("intremap", s->intremap, &intremap, errp) ||
        !parse_on_off_auto("eim", s->eim, &eim, errp)) {
        return false;
    }
    if (s->aw_bits != 39 && s->aw_bits != 48) {
        error_setg(errp, "Supported values for aw-bits are: 39, 48");
        return false;
    }
    if (s->caching_mode) {
        error_setg(errp, "caching-mode=on is not supported by Sen's intel-iommu");
        return false;
    }
    if (s->device_iotlb) {
        error_setg(errp, "device-iotlb=on is not supported by Sen's intel-iommu");
        return false;
    }
    /* Remapping needs Sen to see every message: not with KVM's own IOAPIC
     * (kernel-irqchip=on); fine with split, and with qtest's no irqchip at all.  auto:
     * remapping wherever it can work, as QEMU. */
    bool ir_possible = m->cfg->accel != ACCEL_KVM || m->cfg->irqchip_split;
    cfg->intremap = intremap < 0 ? ir_possible : intremap;
    if (cfg->intremap && !ir_possible) {
        error_setg(errp, "Interrupt Remapping cannot work with kernel-irqchip=on, "
                   "please use 'split|off'.");
        return false;
    }
    if (eim == 1 && !cfg->intremap) {
        error_setg(errp, "eim=on cannot be selected without intremap=on");
        return false;
    }
    cfg->eim = eim < 0 ? cfg->intremap : eim;
    cfg->aw_bits = s->aw_bits;
    return true;
}

static IntelIommu *find_iommu(Machine *m)
{
    return (IntelIommu *)device_find_class(m, &intel_iommu_class);
}

static void iommu_unrealize(DeviceState *dev)
{
    IntelIommu *s = (IntelIommu *)dev;
    if (s->bus) {
        pci_bus_set_iommu(s->bus, NULL, NULL);
        s->bus = NULL;
    }
    if (s->mmio_added) {
        io_space_del(s->m->mmio, VTD_BASE_ADDR);
        s->mmio_added = false;
    }
}

static bool iommu_realize(DeviceState *dev, Machine *m, Error **errp)
{
    IntelIommu *s = (IntelIommu *)dev;
    VtdConfig cfg;

    s->m = m;
    if (g_strcmp0(m->cfg->machine_type, "q35") != 0) {
        error_setg(errp, "intel-iommu is only supported by the q35 machine (-M q35)");
        return false;
    }
    if (!decide_config(s, m, &cfg, errp)) {
        return false;
    }
    PCIBus *bus = pci_bus_find(m, PCI_HOST_BUS_NAME);
    if (!bus) {
        error_setg(errp, "this machine has no PCI bus");
        return false;
    }
    if (pci_bus_has_iommu(bus) || find_iommu(m)) {
        error_setg(errp, "Sen does not support multiple vIOMMUs for x86");
        return false;
    }
    vtd_init(&s->vtd, &cfg, m->mem, send_msi, s);
    if (!io_space_add(m->mmio, VTD_BASE_ADDR, VTD_MMIO_SIZE, &mmio_ops, s, "intel-iommu",
                      errp)) {
        return false;
    }
    s->mmio_added = true;
    s->bus = bus;
    pci_bus_set_iommu(bus, cfg.intremap ? &dma_and_ir_ops : &dma_only_ops, s);
    return true;
}

static void iommu_reset(DeviceState *dev)
{
    vtd_reset(&((IntelIommu *)dev)->vtd);
}

bool intel_iommu_dmar_config(Machine *m, AcpiDmarConfig *out)
{
    IntelIommu *s = find_iommu(m);
    if (!s || !s->bus) {
        return false;
    }
    *out = (AcpiDmarConfig){
        .base = VTD_BASE_ADDR,
        .host_aw = s->vtd.cfg.aw_bits,
        .intr_remap = s->vtd.cfg.intremap,
        .x2apic_opt_out = s->vtd.cfg.intremap && !s->vtd.cfg.eim,
        .ioapic_sid = PCI_IOAPIC_SOURCE_ID,
    };
    return true;
}

/* ---- migration: the registers and what the global command latched ---- */

/* The event registers keep the names they had as separate members, so streams stay the same. */
#define EVENT_FIELD(name, f) \
    VMSTATE_FIELD_(name, VMS_U32, IntelIommu, f, sizeof(uint32_t), 0, 0, NULL, 0)

static const VMStateField vtd_fields[] = {
    VMSTATE_UINT32(vtd.gsts, IntelIommu),
    VMSTATE_UINT64(vtd.rtaddr, IntelIommu),
    VMSTATE_UINT64(vtd.ccmd, IntelIommu),
    VMSTATE_UINT32(vtd.fsts, IntelIommu),
    EVENT_FIELD("vtd.fectl", vtd.fault_ev.ctl),
    EVENT_FIELD("vtd.fedata", vtd.fault_ev.data),
    EVENT_FIELD("vtd.feaddr", vtd.fault_ev.addr),
    EVENT_FIELD("vtd.feuaddr", vtd.fault_ev.uaddr),
    VMSTATE_UINT64(vtd.iqh, IntelIommu),
    VMSTATE_UINT64(vtd.iqt, IntelIommu),
    VMSTATE_UINT64(vtd.iqa, IntelIommu),
    VMSTATE_UINT32(vtd.ics, IntelIommu),
    EVENT_FIELD("vtd.iectl", vtd.inv_ev.ctl),
    EVENT_FIELD("vtd.iedata", vtd.inv_ev.data),
    EVENT_FIELD("vtd.ieaddr", vtd.inv_ev.addr),
    EVENT_FIELD("vtd.ieuaddr", vtd.inv_ev.uaddr),
    VMSTATE_UINT64(vtd.irta, IntelIommu),
    VMSTATE_UINT64(vtd.iva, IntelIommu),
    VMSTATE_UINT64(vtd.iotlb, IntelIommu),
    VMSTATE_UINT64_ARRAY(vtd.frcd[0], IntelIommu, 2 * VTD_NR_FRCD) /* rows end to end */,
    VMSTATE_UINT64(vtd.root_table, IntelIommu),
    VMSTATE_UINT64(vtd.irt, IntelIommu),
    VMSTATE_UINT32(vtd.irt_entries, IntelIommu),
    VMSTATE_BOOL(vtd.irt_eime, IntelIommu),
    VMSTATE_UINT64(vtd.iq_base, IntelIommu),
    VMSTATE_UINT32(vtd.iq_entries, IntelIommu),
    VMSTATE_END_OF_LIST(),
};

/* A stream from another configuration must not leave values this unit cannot hold. */
static bool vtd_post_load(void *opaque, int version_id, Error **errp)
{
    (void)version_id;
    if (!vtd_state_valid(&((IntelIommu *)opaque)->vtd)) {
        error_setg(errp, "intel-iommu: invalid queue head, queue or remapping table size");
        return false;
    }
    return true;
}

static const VMStateDesc intel_iommu_vmsd = {
    .name = "intel-iommu",
    .version_id = 1,
    .fields = vtd_fields,
    .post_load = vtd_post_load,
};

static const PropertyDef intel_iommu_props[] = {
    DEFINE_PROP("intremap", PROP_STRING, IntelIommu, intremap, "auto",
                "interrupt remapping: on|off|auto (auto: on with kernel-irqchip=split)"),
    DEFINE_PROP("eim", PROP_STRING, IntelIommu, eim, "auto",
                "extended interrupt mode (x2APIC): on|off|auto"),
    DEFINE_PROP("aw-bits", PROP_U8, IntelIommu, aw_bits, "39",
                "address width: 39 (3-level tables) or 48 (4-level)"),
    DEFINE_PROP("caching-mode", PROP_BOOL, IntelIommu, caching_mode, "off",
                "caching mode (only off)"),
    DEFINE_PROP("device-iotlb", PROP_BOOL, IntelIommu, device_iotlb, "off",
                "device IOTLB / ATS (only off)"),
    { .name = NULL },
};

const DeviceClass intel_iommu_class = {
    .name = "intel-iommu",
    .desc = "Intel VT-d DMA and interrupt remapping unit (q35)",
    .instance_size = sizeof(IntelIommu),
    .props = intel_iommu_props,
    .user_creatable = true,
    .realize = iommu_realize,
    .reset = iommu_reset,
    .unrealize = iommu_unrealize,
    .vmsd = &intel_iommu_vmsd,
};
