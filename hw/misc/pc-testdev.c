/*
 * pc-testdev: the ISA test device kvm-unit-tests drives (QEMU's "pc-testdev" interface).
 *
 *   0xe0-0xe3   a scratch register: reads return the last value written (any width)
 *   0xe4-0xe7   write a guest-physical address: the host mapping of that page is
 *               write-protected and restored, which makes KVM drop its shadow/EPT entry
 *               for it (tests of TLB and page-table invalidation rely on this)
 *   0x2000+n    write v: drive ISA interrupt line n (0..23) to level v
 *   0xff000000  64 KiB of scratch MMIO (emulated accesses, e.g. rep ins into MMIO)
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include "sen/device.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/vmstate.h"

#define PC_TESTDEV_IOPORT     0xe0
#define PC_TESTDEV_FLUSH_PAGE 0xe4
#define PC_TESTDEV_IRQ_BASE   0x2000
#define PC_TESTDEV_IRQ_LINES  24
#define PC_TESTDEV_IOMEM      0xff000000ull
#define PC_TESTDEV_IOMEM_LEN  0x10000

typedef struct PcTestdevState {
    DeviceState parent;
    Machine *m;
    RateLimit rl;
    uint32_t ioport_data;
    uint8_t iomem[PC_TESTDEV_IOMEM_LEN];
    unsigned mapped; /* how many of the four ranges are in place, for unrealize */
} PcTestdevState;

static uint64_t size_mask(unsigned size)
{
    return size >= 8 ? UINT64_MAX : (1ull << (size * 8)) - 1;
}

static uint64_t ioport_read(void *opaque, uint64_t offset, unsigned size)
{
    PcTestdevState *s = opaque;

    return s->ioport_data & size_mask(size);
}

static void ioport_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    PcTestdevState *s = opaque;

    s->ioport_data = (uint32_t)value;
}

static uint64_t zero_read(void *opaque, uint64_t offset, unsigned size)
{
    return 0;
}

static void flush_page_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    PcTestdevState *s = opaque;
    /* The backing's page size: a 4 KiB mprotect inside a huge page fails. */
    uint64_t page = guest_mem_host_page_size(s->m->mem);
    uint64_t gpa = value & ~(page - 1);
    void *hva = guest_mem_map(s->m->mem, gpa, page);

    if (!hva) {
        return; /* not RAM: nothing to flush */
    }
    /* Dropping and restoring write access invalidates KVM's mappings of the page
     * through the MMU notifier; the contents stay as they were. */
    if (mprotect(hva, (size_t)page, PROT_READ) != 0 ||
        mprotect(hva, (size_t)page, PROT_READ | PROT_WRITE) != 0) {
        log_guest_error(&s->rl, "pc-testdev: flushing page 0x%" PRIx64 " failed: %s", gpa,
                        g_strerror(errno));
    }
}

static void irq_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    PcTestdevState *s = opaque;
    IrqLine irq = machine_irq(s->m, (unsigned)offset);

    irq_set_level(&irq, value ? 1 : 0);
}

static uint64_t iomem_read(void *opaque, uint64_t offset, unsigned size)
{
    PcTestdevState *s = opaque;
    uint64_t v = 0;

    if (offset + size <= sizeof(s->iomem)) {
        memcpy(&v, s->iomem + offset, size); /* little-endian host, as the guest */
    }
    return v;
}

static void iomem_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    PcTestdevState *s = opaque;

    if (offset + size <= sizeof(s->iomem)) {
        memcpy(s->iomem + offset, &value, size);
    }
}

static const IoOps ioport_ops = { .read = ioport_read, .write = ioport_write };
static const IoOps flush_page_ops = { .read = zero_read, .write = flush_page_write };
static const IoOps irq_ops = { .read = zero_read, .write = irq_write };
static const IoOps iomem_ops = { .read = iomem_read, .write = iomem_write };

static void pc_testdev_unrealize(DeviceState *dev)
{
    PcTestdevState *s = (PcTestdevState *)dev;

    if (s->mapped > 3) {
        io_space_del(s->m->mmio, PC_TESTDEV_IOMEM);
    }
    if (s->mapped > 2) {
        io_space_del(s->m->pio, PC_TESTDEV_IRQ_BASE);
    }
    if (s->mapped > 1) {
        io_space_del(s->m->pio, PC_TESTDEV_FLUSH_PAGE);
    }
    if (s->mapped > 0) {
        io_space_del(s->m->pio, PC_TESTDEV_IOPORT);
    }
    s->mapped = 0;
}

static bool pc_testdev_realize(DeviceState *dev, Machine *m, Error **errp)
{
    PcTestdevState *s = (PcTestdevState *)dev;
    struct {
        IoSpace *space;
        uint64_t base, len;
        const IoOps *ops;
    } ranges[] = {
        { m->pio, PC_TESTDEV_IOPORT, 4, &ioport_ops },
        { m->pio, PC_TESTDEV_FLUSH_PAGE, 4, &flush_page_ops },
        { m->pio, PC_TESTDEV_IRQ_BASE, PC_TESTDEV_IRQ_LINES, &irq_ops },
        { m->mmio, PC_TESTDEV_IOMEM, PC_TESTDEV_IOMEM_LEN, &iomem_ops },
    };

    s->m = m;
    for (unsigned i = 0; i < G_N_ELEMENTS(ranges); i++) {
        if (!io_space_add(ranges[i].space, ranges[i].base, ranges[i].len, ranges[i].ops, s,
                          "pc-testdev", errp)) {
            pc_testdev_unrealize(dev);
            return false;
        }
        s->mapped = i + 1;
    }
    return true;
}

static void pc_testdev_reset(DeviceState *dev)
{
    PcTestdevState *s = (PcTestdevState *)dev;

    s->ioport_data = 0;
    memset(s->iomem, 0, sizeof(s->iomem));
}

static const PropertyDef pc_testdev_props[] = {
    { .name = NULL },
};

static const VMStateField pc_testdev_fields[] = {
    VMSTATE_UINT32(ioport_data, PcTestdevState),
    VMSTATE_UINT8_ARRAY(iomem, PcTestdevState, PC_TESTDEV_IOMEM_LEN),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc pc_testdev_vmsd = {
    .name = "pc-testdev",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = pc_testdev_fields,
};

const DeviceClass pc_testdev_class = {
    .name = "pc-testdev",
    .desc = "ISA test device for kvm-unit-tests (ports 0xe0-0xe7, IRQ lines at 0x2000)",
    .instance_size = sizeof(PcTestdevState),
    .props = pc_testdev_props,
    .user_creatable = true,
    .realize = pc_testdev_realize,
    .reset = pc_testdev_reset,
    .unrealize = pc_testdev_unrealize,
    .vmsd = &pc_testdev_vmsd,
};
