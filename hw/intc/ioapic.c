/*
 * Userspace IOAPIC (82093AA-style, version 0x20 with the EOI register), for
 * -machine kernel-irqchip=split; see include/sen/hw/ioapic.h.
 *
 * Registers (MMIO page at 0xfec00000): IOREGSEL at 0x00, IOWIN at 0x10, EOI at 0x40.
 * Indirect registers: 0x00 ID (bits 24-27), 0x01 version 0x00170020 (24 entries),
 * 0x02 arbitration, 0x10 + 2n / 0x11 + 2n redirection entry n low / high dword.
 *
 * A redirection entry becomes an MSI message the way QEMU's IOAPIC forms it: address
 * 0xfee00000 | entry[63:48] << 4 | dest_mode << 2, data = vector | delivery_mode << 8 |
 * trigger << 15.  For a compatibility-format entry this is the usual destination id in
 * address bits 19:12; for a remappable-format entry (VT-d, bit 48 set) it carries the
 * interrupt index and format bits exactly where the IOMMU looks for them in an MSI.
 *
 * Pin levels are logical (asserted = 1) whatever the polarity bit says, as in QEMU's
 * model: the polarity bit is stored and read back only.
 *
 * Edge pins deliver on a rising edge while unmasked.  Level pins deliver while asserted,
 * unmasked and without remote IRR, and set remote IRR; the guest's EOI of the delivered
 * vector (KVM_EXIT_IOAPIC_EOI, or the EOI register) clears it.  For level entries the
 * accelerator also gets the message as GSI route `pin`, which is how KVM knows which
 * vectors must exit on EOI.
 */
#include <string.h>
#include "hw/core/device-list.h"
#include "accel/accel.h"
#include "sen/hw/ioapic.h"
#include "sen/log.h"
#include "sen/pci.h"
#include "sen/vmstate.h"

#define IOAPIC_MMIO_SIZE   0x1000
#define IOAPIC_REG_SELECT  0x00
#define IOAPIC_REG_WINDOW  0x10
#define IOAPIC_REG_EOI     0x40

#define IOAPIC_ID          0x00
#define IOAPIC_VERSION     0x01
#define IOAPIC_ARB         0x02
#define IOAPIC_REDTBL      0x10
#define IOAPIC_VERSION_VAL (0x20 | (IOAPIC_NUM_PINS - 1) << 16)

#define RTE_VECTOR         0xffULL
#define RTE_DELIV_MODE     (7ULL << 8)
#define RTE_DEST_MODE      (1ULL << 11)
#define RTE_DELIV_STATUS   (1ULL << 12)
#define RTE_POLARITY       (1ULL << 13)
#define RTE_REMOTE_IRR     (1ULL << 14)
#define RTE_TRIGGER_LEVEL  (1ULL << 15)
#define RTE_MASKED         (1ULL << 16)
#define RTE_RO_BITS        (RTE_DELIV_STATUS | RTE_REMOTE_IRR)
/* Writable: vector..trigger, mask, and bits 48-63 (destination / remappable index). */
#define RTE_RW_BITS        ((0x1ffffULL & ~RTE_RO_BITS) | (0xffffULL << 48))

#define MSI_ADDR_BASE      0xfee00000ULL

struct IOAPICState {
    DeviceState qdev;
    uint8_t id_prop;         /* ioapic-id= property: the board gives the MADT's id */

    Machine *m;
    PCIBus *bus;             /* whose IOMMU remaps our messages; NULL on a board without PCI */
    bool mmio_mapped;
    uint32_t id;             /* ID register (bits 24-27) */
    uint32_t ioregsel;
    uint32_t irr;            /* pin levels as devices drive them */
    uint64_t rte[IOAPIC_NUM_PINS];
    uint8_t sent_vector[IOAPIC_NUM_PINS]; /* vector of the last delivery (after remap) */
    RateLimit rl;
};

/* ---- messages ---- */

static void rte_message(uint64_t rte, uint64_t *addr, uint32_t *data)
{
    *addr = MSI_ADDR_BASE | ((rte >> 48) & 0xffff) << 4 | ((rte >> 11) & 1) << 2;
    *data = (uint32_t)(rte & RTE_VECTOR) | (uint32_t)((rte >> 8) & 7) << 8 |
            (uint32_t)((rte >> 15) & 1) << 15;
}

/* The message for pin after the IOMMU, or false when the IOMMU blocks it. */
static bool pin_message(IOAPICState *s, unsigned pin, uint64_t *addr, uint32_t *data)
{
    rte_message(s->rte[pin], addr, data);
    return pci_bus_remap_msi(s->bus, PCI_IOAPIC_SOURCE_ID, addr, data);
}

/* Level entries as accelerator GSI routes (KVM: which vectors exit on EOI). */
static void update_route(IOAPICState *s, unsigned pin)
{
    const AccelOps *ops = s->m->accel;
    uint64_t addr = 0;
    uint32_t data = 0;

    if (!s->m->accel_up || !ops || !ops->set_ioapic_route) {
        return;
    }
    uint64_t rte = s->rte[pin];
    bool valid = !(rte & RTE_MASKED) && (rte & RTE_TRIGGER_LEVEL) &&
                 pin_message(s, pin, &addr, &data);
    ops->set_ioapic_route(s->m, pin, valid, addr, data);
}

static void deliver(IOAPICState *s, unsigned pin)
{
    uint64_t addr;
    uint32_t data;

    if (!pin_message(s, pin, &addr, &data)) {
        return; /* blocked by the IOMMU, which recorded the fault */
    }
    s->sent_vector[pin] = data & 0xff;
    if (s->rte[pin] & RTE_TRIGGER_LEVEL) {
        s->rte[pin] |= RTE_REMOTE_IRR;
    }
    pci_send_msi(s->m, addr, data);
}

/* Delivers pin if its state asks for it now (level: asserted, unmasked, no remote IRR). */
static void service_level(IOAPICState *s, unsigned pin)
{
    uint64_t rte = s->rte[pin];
    if ((rte & RTE_TRIGGER_LEVEL) && (s->irr & (1u << pin)) && !(rte & RTE_MASKED) &&
        !(rte & RTE_REMOTE_IRR)) {
        deliver(s, pin);
    }
}

void ioapic_set_irq(IOAPICState *s, unsigned pin, int level)
{
    if (!s || pin >= IOAPIC_NUM_PINS) {
        return;
    }
    uint32_t bit = 1u << pin;
    bool was = s->irr & bit;
    if (level) {
        s->irr |= bit;
    } else {
        s->irr &= ~bit;
    }
    uint64_t rte = s->rte[pin];
    if (rte & RTE_TRIGGER_LEVEL) {
        service_level(s, pin);
    } else if (level && !was && !(rte & RTE_MASKED)) {
        deliver(s, pin);
    }
}

void ioapic_eoi(IOAPICState *s, uint8_t vector)
{
    if (!s) {
        return;
    }
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
        uint64_t rte = s->rte[pin];
        if (!(rte & RTE_TRIGGER_LEVEL) || !(rte & RTE_REMOTE_IRR) ||
            ((rte & RTE_VECTOR) != vector && s->sent_vector[pin] != vector)) {
            continue;
        }
        s->rte[pin] &= ~RTE_REMOTE_IRR;
        service_level(s, pin);
    }
}

/* ---- registers ---- */

static uint32_t indirect_read(IOAPICState *s)
{
    uint32_t sel = s->ioregsel & 0xff;
    switch (sel) {
    case IOAPIC_ID:
    case IOAPIC_ARB:
        return s->id;
    case IOAPIC_VERSION:
        return IOAPIC_VERSION_VAL;
    default:
        if (sel >= IOAPIC_REDTBL && sel < IOAPIC_REDTBL + 2 * IOAPIC_NUM_PINS) {
            uint64_t rte = s->rte[(sel - IOAPIC_REDTBL) / 2];
            return (sel & 1) ? (uint32_t)(rte >> 32) : (uint32_t)rte;
        }
        return UINT32_MAX;
    }
}

static void indirect_write(IOAPICState *s, uint32_t val)
{
    uint32_t sel = s->ioregsel & 0xff;
    if (sel == IOAPIC_ID) {
        s->id = val & 0x0f000000;
        return;
    }
    if (sel < IOAPIC_REDTBL || sel >= IOAPIC_REDTBL + 2 * IOAPIC_NUM_PINS) {
        return; /* version, arbitration and unassigned registers are read-only */
    }
    unsigned pin = (sel - IOAPIC_REDTBL) / 2;
    uint64_t old = s->rte[pin], new;
    if (sel & 1) {
        new = (old & 0xffffffffULL) | (uint64_t)val << 32;
    } else {
        new = (old & 0xffffffff00000000ULL) | val;
    }
    new = (new & RTE_RW_BITS) | (old & RTE_RO_BITS);
    if (!(new & RTE_TRIGGER_LEVEL)) {
        new &= ~RTE_REMOTE_IRR; /* remote IRR is meaningless for edge entries */
    }
    s->rte[pin] = new;
    update_route(s, pin);
    service_level(s, pin); /* unmasking an asserted level pin delivers it */
}

static uint64_t ioapic_read(void *opaque, uint64_t off, unsigned size)
{
    IOAPICState *s = opaque;
    if (size != 4) {
        return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
    }
    switch (off) {
    case IOAPIC_REG_SELECT:
        return s->ioregsel;
    case IOAPIC_REG_WINDOW:
        return indirect_read(s);
    default:
        return UINT32_MAX;
    }
}

static void ioapic_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    IOAPICState *s = opaque;
    if (size != 4) {
        log_guest_error(&s->rl, "ioapic: %u-byte write at 0x%x ignored (dword only)", size,
                        (unsigned)off);
        return;
    }
    switch (off) {
    case IOAPIC_REG_SELECT:
        s->ioregsel = (uint32_t)val & 0xff;
        break;
    case IOAPIC_REG_WINDOW:
        indirect_write(s, (uint32_t)val);
        break;
    case IOAPIC_REG_EOI:
        ioapic_eoi(s, (uint8_t)val);
        break;
    default:
        break;
    }
}

static const IoOps ioapic_ops = { .read = ioapic_read, .write = ioapic_write };

/* ---- lifecycle ---- */

static void ioapic_reset(DeviceState *dev)
{
    IOAPICState *s = (IOAPICState *)dev;
    s->id = (uint32_t)(s->id_prop & 0x0f) << 24;
    s->ioregsel = 0;
    s->irr = 0;
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
        s->rte[pin] = RTE_MASKED;
        s->sent_vector[pin] = 0;
        update_route(s, pin);
    }
}

static bool ioapic_post_load(void *opaque, int version_id, Error **errp)
{
    IOAPICState *s = opaque;
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
        s->rte[pin] &= RTE_RW_BITS | RTE_RO_BITS;
        update_route(s, pin);
    }
    s->id &= 0x0f000000;
    s->ioregsel &= 0xff;
    s->irr &= (1u << IOAPIC_NUM_PINS) - 1;
    return true;
}

static const VMStateField ioapic_fields[] = {
    VMSTATE_UINT32(id, IOAPICState),
    VMSTATE_UINT32(ioregsel, IOAPICState),
    VMSTATE_UINT32(irr, IOAPICState),
    VMSTATE_UINT64_ARRAY(rte, IOAPICState, IOAPIC_NUM_PINS),
    VMSTATE_UINT8_ARRAY(sent_vector, IOAPICState, IOAPIC_NUM_PINS),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc ioapic_vmsd = {
    .name = "ioapic",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = ioapic_fields,
    .post_load = ioapic_post_load,
};

static bool ioapic_realize(DeviceState *dev, Machine *m, Error **errp)
{
    IOAPICState *s = (IOAPICState *)dev;

    if (m->ioapic) {
        error_setg(errp, "this machine already has an IOAPIC");
        return false;
    }
    if (s->id_prop > 0x0f) {
        error_setg(errp, "ioapic-id=%u: the IOAPIC id is 4 bits (0-15)", s->id_prop);
        return false;
    }
    s->m = m;
    /* Found once here, not per interrupt: the board creates the PCI host first. */
    s->bus = pci_bus_find(m, PCI_HOST_BUS_NAME);
    if (!io_space_add(m->mmio, IOAPIC_BASE, IOAPIC_MMIO_SIZE, &ioapic_ops, s, "ioapic",
                      errp)) {
        return false;
    }
    s->mmio_mapped = true;
    m->ioapic = s;
    ioapic_reset(dev);
    return true;
}

static void ioapic_unrealize(DeviceState *dev)
{
    IOAPICState *s = (IOAPICState *)dev;
    if (s->m && s->m->ioapic == s) {
        s->m->ioapic = NULL;
    }
    if (s->mmio_mapped) {
        io_space_del(s->m->mmio, IOAPIC_BASE);
    }
}

static const PropertyDef ioapic_props[] = {
    DEFINE_PROP("ioapic-id", PROP_U8, IOAPICState, id_prop, "0",
                "IOAPIC id register value (0-15)"),
    { .name = NULL },
};

const DeviceClass ioapic_class = {
    .name = "ioapic",
    .desc = "userspace IOAPIC for kernel-irqchip=split (the board creates it)",
    .instance_size = sizeof(IOAPICState),
    .props = ioapic_props,
    .user_creatable = false,
    .realize = ioapic_realize,
    .reset = ioapic_reset,
    .unrealize = ioapic_unrealize,
    .vmsd = &ioapic_vmsd,
};
