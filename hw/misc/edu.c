/*
 * edu (1234:11e8 rev 0x10): QEMU's educational PCI device, used by kvm-unit-tests to
 * drive DMA and interrupts through an IOMMU.  Register facts from QEMU's
 * docs/specs/edu.txt; BAR0 is 1 MiB of MMIO:
 *
 *   0x00 RO  identification 0x010000ed (version 1.0)
 *   0x04 RW  liveness: reads back the bitwise inverse of the last write
 *   0x08 RW  factorial: a write (while not computing) stores n! (mod 2^32)
 *   0x20 RW  status: 0x01 computing (RO), 0x80 raise interrupt 0x01 after a factorial
 *   0x24 RO  interrupt status     0x60 WO raise (OR into status)  0x64 WO ack (clear bits)
 *   0x80 RW  DMA source  0x88 RW DMA destination  0x90 RW DMA count (4- or 8-byte access)
 *   0x98 RW  DMA command: 0x01 start, 0x02 direction (1: device buffer -> RAM),
 *            0x04 raise interrupt 0x100 when done
 *
 * Interrupt: INTx pin A, or MSI (one vector) once the guest enables it; the line stays
 * asserted while the interrupt status is non-zero.  The DMA buffer is 4 KiB at 0x40000 of
 * the device's own address space; the other side is a bus address (through the IOMMU,
 * pci_dma_*) that must fit in dma_mask (28 bits by default).
 *
 * Unlike QEMU's model, which computes in a thread and delays DMA by a 100 ms timer, both
 * complete before the register write returns (a guest polls the same bits either way),
 * and a transfer outside the buffer or the mask is refused with a guest-error line
 * instead of aborting the VMM (QEMU's edu calls abort() there).
 */
#include <inttypes.h>
#include <string.h>
#include "hw/core/device-list.h"
#include "sen/log.h"
#include "sen/pci.h"
#include "sen/vmstate.h"

#define EDU_BAR_SIZE      (1u << 20)
#define EDU_ID            0x010000edu

#define EDU_REG_ID        0x00
#define EDU_REG_ALIVE     0x04
#define EDU_REG_FACT      0x08
#define EDU_REG_STATUS    0x20
#define EDU_REG_INTR      0x24
#define EDU_REG_RAISE     0x60
#define EDU_REG_ACK       0x64
#define EDU_REG_DMA_SRC   0x80
#define EDU_REG_DMA_DST   0x88
#define EDU_REG_DMA_CNT   0x90
#define EDU_REG_DMA_CMD   0x98

#define EDU_STATUS_COMPUTING 0x01
#define EDU_STATUS_IRQFACT   0x80

#define EDU_DMA_RUN       0x1
#define EDU_DMA_TO_RAM    0x2
#define EDU_DMA_IRQ       0x4

#define EDU_FACT_IRQ      0x001
#define EDU_DMA_IRQ_BIT   0x100

#define EDU_DMA_START     0x40000
#define EDU_DMA_SIZE      4096

typedef struct EduState {
    PCIDevice pci;
    uint64_t dma_mask;       /* property: bus addresses the DMA engine can drive */

    uint32_t addr4;          /* liveness register (stored inverted on read) */
    uint32_t fact;
    uint32_t status;
    uint32_t irq_status;
    uint64_t dma_src, dma_dst, dma_cnt, dma_cmd;
    uint8_t dma_buf[EDU_DMA_SIZE];
    RateLimit rl;
} EduState;

/* ---- interrupts ---- */

static void edu_raise_irq(EduState *s, uint32_t bits)
{
    s->irq_status |= bits;
    if (!s->irq_status) {
        return;
    }
    if (msi_enabled(&s->pci)) {
        msi_notify(&s->pci, 0);
    } else {
        pci_set_irq(&s->pci, 1);
    }
}

static void edu_lower_irq(EduState *s, uint32_t bits)
{
    s->irq_status &= ~bits;
    if (!s->irq_status && !msi_enabled(&s->pci)) {
        pci_set_irq(&s->pci, 0);
    }
}

/* ---- factorial ---- */

/* n! mod 2^32: from 34! on there are 32 factors of two, so the product is 0. */
static uint32_t factorial_mod32(uint32_t n)
{
    if (n >= 34) {
        return 0;
    }
    uint32_t r = 1;
    for (uint32_t i = 2; i <= n; i++) {
        r *= i;
    }
    return r;
}

static void edu_write_fact(EduState *s, uint32_t n)
{
    if (s->status & EDU_STATUS_COMPUTING) {
        return;
    }
    s->fact = factorial_mod32(n);
    if (s->status & EDU_STATUS_IRQFACT) {
        edu_raise_irq(s, EDU_FACT_IRQ);
    }
}

/* ---- DMA ---- */

/* [addr, addr + len) inside [start, start + size). */
static bool in_range(uint64_t addr, uint64_t len, uint64_t start, uint64_t size)
{
    return addr >= start && len <= size && addr - start <= size - len;
}

static void edu_dma_run(EduState *s)
{
    bool to_ram = s->dma_cmd & EDU_DMA_TO_RAM;
    uint64_t buf_addr = to_ram ? s->dma_src : s->dma_dst;
    uint64_t bus_addr = to_ram ? s->dma_dst : s->dma_src;
    uint64_t len = s->dma_cnt;
    bool ok = false;

    if (len == 0 || !in_range(buf_addr, len, EDU_DMA_START, EDU_DMA_SIZE)) {
        log_guest_error(&s->rl, "edu: DMA of %" PRIu64 " bytes at buffer address 0x%" PRIx64
                        " is outside the buffer (0x%x, %u bytes): refused", len, buf_addr,
                        EDU_DMA_START, EDU_DMA_SIZE);
    } else if ((bus_addr & ~s->dma_mask) || ((bus_addr + len - 1) & ~s->dma_mask) ||
               bus_addr + len - 1 < bus_addr) {
        log_guest_error(&s->rl, "edu: DMA address 0x%" PRIx64 "+%" PRIu64 " is outside the "
                        "DMA mask 0x%" PRIx64 ": refused", bus_addr, len, s->dma_mask);
    } else {
        uint8_t *buf = s->dma_buf + (buf_addr - EDU_DMA_START);
        ok = to_ram ? pci_dma_write(&s->pci, bus_addr, buf, len)
                    : pci_dma_read(&s->pci, bus_addr, buf, len);
        if (!ok) {
            log_guest_error(&s->rl, "edu: DMA %s bus address 0x%" PRIx64 "+%" PRIu64
                            " failed (bus mastering off, IOMMU fault or not RAM)",
                            to_ram ? "to" : "from", bus_addr, len);
        }
    }
    /* Done either way, so a polling guest never hangs; the interrupt only on success. */
    s->dma_cmd &= ~(uint64_t)EDU_DMA_RUN;
    if (ok && (s->dma_cmd & EDU_DMA_IRQ)) {
        edu_raise_irq(s, EDU_DMA_IRQ_BIT);
    }
}

/* ---- registers ---- */

static uint64_t edu_read(void *opaque, uint64_t off, unsigned size)
{
    EduState *s = opaque;
    uint64_t ones = size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;

    /* As QEMU's: 4-byte accesses everywhere, 8-byte ones from the DMA registers on. */
    if (size != 4 && !(size == 8 && off >= EDU_REG_DMA_SRC)) {
        return ones;
    }
    switch (off) {
    case EDU_REG_ID:
        return EDU_ID;
    case EDU_REG_ALIVE:
        return (uint32_t)~s->addr4;
    case EDU_REG_FACT:
        return s->fact;
    case EDU_REG_STATUS:
        return s->status;
    case EDU_REG_INTR:
        return s->irq_status;
    case EDU_REG_DMA_SRC:
        return s->dma_src & ones;
    case EDU_REG_DMA_DST:
        return s->dma_dst & ones;
    case EDU_REG_DMA_CNT:
        return s->dma_cnt & ones;
    case EDU_REG_DMA_CMD:
        return s->dma_cmd & ones;
    default:
        return ones;
    }
}

static void edu_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    EduState *s = opaque;

    if (size != 4 && !(size == 8 && off >= EDU_REG_DMA_SRC)) {
        return;
    }
    switch (off) {
    case EDU_REG_ALIVE:
        s->addr4 = (uint32_t)val;
        break;
    case EDU_REG_FACT:
        edu_write_fact(s, (uint32_t)val);
        break;
    case EDU_REG_STATUS:
        s->status = (s->status & ~EDU_STATUS_IRQFACT) | ((uint32_t)val & EDU_STATUS_IRQFACT);
        break;
    case EDU_REG_RAISE:
        edu_raise_irq(s, (uint32_t)val);
        break;
    case EDU_REG_ACK:
        edu_lower_irq(s, (uint32_t)val);
        break;
    case EDU_REG_DMA_SRC:
        s->dma_src = val;
        break;
    case EDU_REG_DMA_DST:
        s->dma_dst = val;
        break;
    case EDU_REG_DMA_CNT:
        s->dma_cnt = val;
        break;
    case EDU_REG_DMA_CMD:
        if (!(val & EDU_DMA_RUN) || (s->dma_cmd & EDU_DMA_RUN)) {
            break; /* only a start while idle does anything, as QEMU's */
        }
        s->dma_cmd = val;
        edu_dma_run(s);
        break;
    default:
        break;
    }
}

static const IoOps edu_ops = { .read = edu_read, .write = edu_write };

/* ---- lifecycle ---- */

static void edu_reset(DeviceState *dev)
{
    EduState *s = (EduState *)dev;
    s->addr4 = s->fact = s->status = s->irq_status = 0;
    s->dma_src = s->dma_dst = s->dma_cnt = s->dma_cmd = 0;
    memset(s->dma_buf, 0, sizeof(s->dma_buf));
    pci_device_reset(&s->pci);
}

static const VMStateField edu_fields[] = {
    VMSTATE_PCI_DEVICE(pci, EduState),
    VMSTATE_UINT32(addr4, EduState),
    VMSTATE_UINT32(fact, EduState),
    VMSTATE_UINT32(status, EduState),
    VMSTATE_UINT32(irq_status, EduState),
    VMSTATE_UINT64(dma_src, EduState),
    VMSTATE_UINT64(dma_dst, EduState),
    VMSTATE_UINT64(dma_cnt, EduState),
    VMSTATE_UINT64(dma_cmd, EduState),
    VMSTATE_UINT8_ARRAY(dma_buf, EduState, EDU_DMA_SIZE),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc edu_vmsd = {
    .name = "edu",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = edu_fields,
};

static bool edu_realize(DeviceState *dev, Machine *m, Error **errp)
{
    EduState *s = (EduState *)dev;

    if (s->dma_mask < EDU_DMA_SIZE - 1 || (s->dma_mask & (s->dma_mask + 1))) {
        error_setg(errp, "dma_mask=0x%" PRIx64 ": expected 2^n - 1 of at least 0xfff",
                   s->dma_mask);
        return false;
    }
    if (!pci_device_realize(&s->pci, m, errp)) {
        return false;
    }
    pci_set_ids(&s->pci, 0x1234, 0x11e8, 0x1af4, 0x1100, 0x10);
    pci_set_class(&s->pci, 0x00ff00); /* unclassified, as QEMU's */
    pci_set_intx_pin(&s->pci, 1);
    if (!pci_register_bar(&s->pci, 0, PCI_BAR_MEM32, EDU_BAR_SIZE, &edu_ops, s, errp) ||
        !msi_init(&s->pci, 1, true, false, errp)) {
        pci_device_unrealize(&s->pci);
        return false;
    }
    return true;
}

static void edu_unrealize(DeviceState *dev)
{
    pci_device_unrealize(&((EduState *)dev)->pci);
}

static const PropertyDef edu_props[] = {
    DEFINE_PCI_PROPS(EduState, pci),
    DEFINE_PROP("dma_mask", PROP_U64, EduState, dma_mask, "0xfffffff",
                "bus addresses the DMA engine reaches (2^n - 1; default 28 bits)"),
    { .name = NULL },
};

const DeviceClass edu_class = {
    .name = "edu",
    .desc = "QEMU's educational PCI device 1234:11e8 (factorial, interrupts, DMA)",
    .instance_size = sizeof(EduState),
    .props = edu_props,
    .user_creatable = true,
    .realize = edu_realize,
    .reset = edu_reset,
    .unrealize = edu_unrealize,
    .vmsd = &edu_vmsd,
};
