/*
 * ICH9 LPC bridge (8086:2918 at 00:1f.0), the ISA bridge of -M q35 as QEMU models it.
 *
 * Guests and firmware find the chipset by these IDs and read its configuration
 * registers; the devices behind it (RTC, i8042, COM ports, the ACPI PM block) are the
 * board's ISA devices.  What the registers hold:
 *   0x40 PMBASE  0x601: the ACPI PM block at 0x600 (QEMU's q35 default), I/O space bit;
 *   0x44 ACPI_CNTL 0x80: ACPI enabled (SCI on IRQ 9);
 *   0x60-0x63, 0x68-0x6b PIRQA-H routing: 0x80 (not routed to the 8259) at reset;
 *   0xf0 RCBA 0xfed1c001.
 * The guest may write PMBASE, ACPI_CNTL and the PIRQ registers (firmware does), but the
 * PM block stays at 0x600 and INTx stays on IOAPIC pins 16-23 (docs/machines.md).
 */
#include "hw/core/device-list.h"
#include "sen/pci.h"
#include "sen/vmstate.h"

#define ICH9_LPC_PMBASE      0x40
#define ICH9_LPC_ACPI_CNTL   0x44
#define ICH9_LPC_PIRQA_ROUT  0x60
#define ICH9_LPC_PIRQE_ROUT  0x68
#define ICH9_LPC_RCBA        0xf0

#define ICH9_PMBASE_DEFAULT  0x601   /* 0x600 | I/O space */
#define ICH9_ACPI_EN         0x80
#define ICH9_PIRQ_DISABLED   0x80
#define ICH9_RCBA_DEFAULT    0xfed1c001u

typedef struct Ich9Lpc {
    PCIDevice pci;
} Ich9Lpc;

static void lpc_init_registers(Ich9Lpc *s)
{
    uint8_t *c = s->pci.config, *w = s->pci.wmask;

    pci_set_long(c + ICH9_LPC_PMBASE, ICH9_PMBASE_DEFAULT);
    pci_set_word(w + ICH9_LPC_PMBASE, 0xff80);        /* 128-byte aligned I/O base */
    c[ICH9_LPC_ACPI_CNTL] = ICH9_ACPI_EN;
    w[ICH9_LPC_ACPI_CNTL] = 0x87;                     /* ACPI_EN, SCI IRQ select */
    for (int i = 0; i < 4; i++) {
        c[ICH9_LPC_PIRQA_ROUT + i] = ICH9_PIRQ_DISABLED;
        c[ICH9_LPC_PIRQE_ROUT + i] = ICH9_PIRQ_DISABLED;
        w[ICH9_LPC_PIRQA_ROUT + i] = 0x8f;
        w[ICH9_LPC_PIRQE_ROUT + i] = 0x8f;
    }
    pci_set_long(c + ICH9_LPC_RCBA, ICH9_RCBA_DEFAULT);
}

static bool lpc_realize(DeviceState *dev, Machine *m, Error **errp)
{
    Ich9Lpc *s = (Ich9Lpc *)dev;

    if (!pci_device_realize(&s->pci, m, errp)) {
        return false;
    }
    pci_set_ids(&s->pci, 0x8086, 0x2918, 0x1af4, 0x1100, 2);
    pci_set_class(&s->pci, 0x060100); /* ISA bridge */
    pci_set_intx_pin(&s->pci, 0);
    /* Multi-function, as on QEMU (SATA and SMBus would be 1f.2 and 1f.3). */
    s->pci.config[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL | 0x80;
    lpc_init_registers(s);
    return true;
}

static void lpc_reset(DeviceState *dev)
{
    Ich9Lpc *s = (Ich9Lpc *)dev;
    pci_device_reset(&s->pci);
    lpc_init_registers(s);
}

static void lpc_unrealize(DeviceState *dev)
{
    pci_device_unrealize(&((Ich9Lpc *)dev)->pci);
}

static const VMStateField lpc_fields[] = {
    VMSTATE_PCI_DEVICE(pci, Ich9Lpc),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc lpc_vmsd = {
    .name = "ich9-lpc",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = lpc_fields,
};

static const PropertyDef lpc_props[] = {
    DEFINE_PCI_PROPS(Ich9Lpc, pci),
    { .name = NULL },
};

const DeviceClass ich9_lpc_class = {
    .name = "ich9-lpc",
    .desc = "ICH9 LPC/ISA bridge 8086:2918 (the q35 board creates it at 1f.0)",
    .instance_size = sizeof(Ich9Lpc),
    .props = lpc_props,
    .user_creatable = false,
    .realize = lpc_realize,
    .reset = lpc_reset,
    .unrealize = lpc_unrealize,
    .vmsd = &lpc_vmsd,
};
