/*
 * The VT-d unit from a guest driver's seat (-M q35,kernel-irqchip=split -device
 * intel-iommu,intremap=on -device edu; run-guest.py adds these for this test): find the
 * unit and the IOAPIC's device scope through the ACPI DMAR table, map a 2 MiB superpage for edu with a context entry,
 * enable queued invalidation and translation, DMA through the mapping both ways, take a
 * DMA fault with its fault-event interrupt and fault record, complete a wait descriptor
 * with its invalidation-event interrupt, then remap edu's MSI through an IRTE and see an
 * interrupt blocked once the entry is gone.  Runs under Sen and QEMU alike.
 */
#include "lib/guest.h"
#include "lib/pci.h"

#define ROOT       0x1000000ul
#define CTX        (ROOT + 0x1000)
#define PT3        (ROOT + 0x2000)
#define PT2        (ROOT + 0x3000)
#define QUEUE      (ROOT + 0x4000)
#define IRT        (ROOT + 0x5000)
#define STATUS     (ROOT + 0x6000)
#define BUF        0x2000000ul   /* 2 MiB aligned: what iova 0x200000.. maps to */
#define IOVA       0x200000ul

#define FAULT_VEC  0x50
#define INV_VEC    0x51
#define MSI_VEC    0x52

/* registers */
#define VER        0x00
#define CAP        0x08
#define GCMD       0x18
#define GSTS       0x1c
#define RTADDR     0x20
#define FSTS       0x34
#define FECTL      0x38
#define FEDATA     0x3c
#define FEADDR     0x40
#define FEUADDR    0x44
#define IQT        0x88
#define IQA        0x90
#define ICS        0x9c
#define IECTL      0xa0
#define IEDATA     0xa4
#define IEADDR     0xa8
#define IEUADDR    0xac
#define IRTA       0xb8
#define TE         (1u << 31)
#define SRTP       (1u << 30)
#define QIE        (1u << 26)
#define IRE        (1u << 25)
#define SIRTP      (1u << 24)

/* edu */
#define EDU_INTR_STATUS 0x24
#define EDU_INTR_RAISE  0x60
#define EDU_INTR_ACK    0x64
#define EDU_DMA_SRC     0x80
#define EDU_DMA_DST     0x88
#define EDU_DMA_CNT     0x90
#define EDU_DMA_CMD     0x98
#define EDU_BUF         0x40000

static uintptr_t vtd, edu;
static unsigned qtail;
static volatile unsigned faults, invs, msis;

static uint32_t rd32(unsigned off) { return mmio_read32(vtd + off); }
static void wr32(unsigned off, uint32_t v) { mmio_write32(vtd + off, v); }
static uint64_t rd64(unsigned off) { return rd32(off) | (uint64_t)rd32(off + 4) << 32; }
static void wr64(unsigned off, uint64_t v)
{
    wr32(off, (uint32_t)v);
    wr32(off + 4, (uint32_t)(v >> 32));
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* One global-command bit on (the persistent ones kept), waiting for its status. */
static bool gcmd_on(uint32_t bit)
{
    wr32(GCMD, (rd32(GSTS) & (TE | QIE | IRE)) | bit);
    for (unsigned i = 0; i < 100000; i++) {
        if (rd32(GSTS) & bit) {
            return true;
        }
        guest_io_delay();
    }
    return false;
}

static void put64(uintptr_t addr, uint64_t v) { *(volatile uint64_t *)phys_ptr(addr) = v; }
static uint32_t get32(uintptr_t addr) { return *(volatile uint32_t *)phys_ptr(addr); }

/* Queues one descriptor and a status-writing wait behind it; true once it completed. */
static bool invalidate(uint64_t lo, uint64_t hi, uint32_t token)
{
    put64(QUEUE + qtail * 16, lo);
    put64(QUEUE + qtail * 16 + 8, hi);
    qtail = (qtail + 1) % 256;
    put64(QUEUE + qtail * 16, 5 | 1 << 5 | (uint64_t)token << 32);
    put64(QUEUE + qtail * 16 + 8, STATUS);
    qtail = (qtail + 1) % 256;
    wr64(IQT, qtail << 4);
    for (unsigned i = 0; i < 100000; i++) {
        if (get32(STATUS) == token) {
            return true;
        }
        guest_io_delay();
    }
    return false;
}

/* Starts an edu transfer and waits until the engine is idle (QEMU runs it on a timer). */
static bool edu_dma(uint64_t src, uint64_t dst, uint32_t cnt, uint32_t cmd)
{
    mmio_write32(edu + EDU_DMA_SRC, (uint32_t)src);
    mmio_write32(edu + EDU_DMA_SRC + 4, (uint32_t)(src >> 32));
    mmio_write32(edu + EDU_DMA_DST, (uint32_t)dst);
    mmio_write32(edu + EDU_DMA_DST + 4, (uint32_t)(dst >> 32));
    mmio_write32(edu + EDU_DMA_CNT, cnt);
    mmio_write32(edu + EDU_DMA_CNT + 4, 0);
    mmio_write32(edu + EDU_DMA_CMD, cmd);
    for (unsigned i = 0; i < 400000; i++) {
        if (!(mmio_read32(edu + EDU_DMA_CMD) & 1)) {
            return true;
        }
        guest_io_delay();
    }
    return false;
}

/* Waits (interrupts on) for *count to reach n, at most `loops` I/O delays. */
static bool wait_count(volatile unsigned *count, unsigned n, unsigned loops)
{
    for (unsigned i = 0; i < loops && *count < n; i++) {
        sti();
        guest_io_delay();
    }
    cli();
    return *count >= n;
}

static void fault_irq(IntrFrame *f) { (void)f; faults++; lapic_eoi(); }
static void inv_irq(IntrFrame *f) { (void)f; invs++; lapic_eoi(); }
static void msi_irq(IntrFrame *f)
{
    (void)f;
    msis++;
    mmio_write32(edu + EDU_INTR_ACK, mmio_read32(edu + EDU_INTR_STATUS));
    lapic_eoi();
}

static void find_unit(void)
{
    const uint8_t *dmar = find_acpi_table("DMAR");
    GUEST_CHECK(dmar != NULL, "ACPI has a DMAR table");
    const uint8_t *drhd = dmar + 48;
    unsigned drhd_len = drhd[2] | drhd[3] << 8;
    /* Sen covers every device with INCLUDE_PCI_ALL; QEMU 7.2 lists them in scopes. */
    GUEST_CHECK((dmar[37] & 1) && drhd[0] == 0 && drhd_len >= 16,
                "DMAR: interrupt remapping flag 0x%x, a DRHD (flags 0x%x, %u bytes)", dmar[37],
                drhd[4], drhd_len);
    vtd = (uintptr_t)ld64(drhd + 8);
    const uint8_t *ioapic = NULL;
    for (unsigned off = 16; off + 6 <= drhd_len && drhd[off + 1] >= 6; off += drhd[off + 1]) {
        if (drhd[off] == 3) {
            ioapic = drhd + off;
        }
    }
    /* Sen names it f0:1f.0 as Intel chipsets do, QEMU ff:00.0. */
    GUEST_CHECK(ioapic != NULL && vtd == 0xfed90000u,
                "DRHD at 0x%lx names the IOAPIC (%02x:%02x.%x)", (unsigned long)vtd,
                ioapic ? ioapic[5] : 0, ioapic ? ioapic[6] : 0, ioapic ? ioapic[7] : 0);
    uint64_t cap = rd64(CAP);
    GUEST_CHECK(((rd32(VER) >> 4) & 0xf) >= 1 && (cap & (2u << 8)) && (cap >> 34 & 1),
                "version 0x%x, 39-bit tables and 2 MiB pages (cap 0x%lx)", rd32(VER),
                (unsigned long)cap);
}

static PciDev *find_edu(PciDev *devs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (devs[i].vendor == 0x1234 && devs[i].device == 0x11e8) {
            return &devs[i];
        }
    }
    return NULL;
}

void guest_main(void)
{
    static PciDev devs[32];
    pic_disable();
    lapic_enable();
    idt_set_handler(FAULT_VEC, fault_irq);
    idt_set_handler(INV_VEC, inv_irq);
    idt_set_handler(MSI_VEC, msi_irq);
    find_unit();

    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs assigned");
    PciDev *d = find_edu(devs, n);
    GUEST_CHECK(d != NULL, "edu found");
    uint16_t bdf = (uint16_t)(d->bus << 8 | d->dev << 3 | d->fn);
    edu = (uintptr_t)d->bar[0].addr;
    pci_cfg_write16(d, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

    memset(phys_ptr(ROOT), 0, 0x7000);
    put64(ROOT + d->bus * 16, CTX | 1);
    put64(CTX + (bdf & 0xff) * 16, PT3 | 1);               /* multi-level, faults on */
    put64(CTX + (bdf & 0xff) * 16 + 8, 1 | 1 << 8);        /* 39-bit, domain 1 */
    put64(PT3, PT2 | 3);
    put64(PT2 + 8, BUF | 1 << 7 | 3);                      /* iova 2 MiB: a 2 MiB page */

    uint32_t me = lapic_id();
    wr32(FEDATA, FAULT_VEC);
    wr32(FEADDR, 0xfee00000u | me << 12);
    wr32(FEUADDR, 0);
    wr32(FECTL, 0);
    wr32(IEDATA, INV_VEC);
    wr32(IEADDR, 0xfee00000u | me << 12);
    wr32(IEUADDR, 0);
    wr32(IECTL, 0);
    wr64(IQA, QUEUE);                                       /* 256 descriptors */
    wr64(IQT, 0);
    GUEST_CHECK(gcmd_on(QIE), "queued invalidation on");
    wr64(RTADDR, ROOT);
    GUEST_CHECK(gcmd_on(SRTP), "root table set");
    GUEST_CHECK(invalidate(1 | 1 << 4, 0, 1) && invalidate(2 | 1 << 4, 0, 2),
                "global context and IOTLB invalidation completed (wait status written)");
    GUEST_CHECK(gcmd_on(TE), "translation on");

    /* RAM -> edu -> RAM through the superpage. */
    *(volatile uint32_t *)phys_ptr(BUF + 0x1234) = 0xfeedc0de;
    *(volatile uint32_t *)phys_ptr(BUF + 0x1ff000) = 0;
    GUEST_CHECK(edu_dma(IOVA + 0x1234, EDU_BUF, 4, 1) &&
                    edu_dma(EDU_BUF, IOVA + 0x1ff000, 4, 3),
                "edu DMA both ways finished");
    GUEST_CHECK(get32(BUF + 0x1ff000) == 0xfeedc0de && rd32(FSTS) == 0,
                "DMA went through the 2 MiB mapping (0x%x), no fault (fsts 0x%x)",
                get32(BUF + 0x1ff000), rd32(FSTS));

    /* An unmapped iova: blocked, recorded, fault event. */
    unsigned frcd = ((rd64(CAP) >> 24) & 0x3ff) * 16;
    edu_dma(0x5000, EDU_BUF, 4, 1);
    GUEST_CHECK(wait_count(&faults, 1, 200000), "fault event interrupt");
    uint64_t hi = rd64(frcd + 8);
    GUEST_CHECK((rd32(FSTS) & 2) && (hi >> 63) && ((hi >> 32) & 0xff) == 6 &&
                    (hi & 0xffff) == bdf && (rd64(frcd) & ~0xffful) == 0x5000,
                "fault recorded: reason 0x%x, source %x, address 0x%lx",
                (unsigned)((hi >> 32) & 0xff), (unsigned)(hi & 0xffff),
                (unsigned long)rd64(frcd));
    wr32(frcd + 12, 0x80000000u);
    GUEST_CHECK(rd32(FSTS) == 0, "fault record cleared");

    /* A wait descriptor with the interrupt flag. */
    put64(QUEUE + qtail * 16, 5 | 1 << 4);
    put64(QUEUE + qtail * 16 + 8, 0);
    qtail++;
    wr64(IQT, qtail << 4);
    GUEST_CHECK(wait_count(&invs, 1, 200000) && (rd32(ICS) & 1), "invalidation event interrupt, IWC");
    wr32(ICS, 1);

    /* Interrupt remapping: edu's MSI names IRTE 5. */
    wr64(IRTA, IRT | 7);                                    /* 256 entries, xAPIC */
    GUEST_CHECK(gcmd_on(SIRTP), "interrupt remapping table set");
    put64(IRT + 5 * 16, 1 | (uint64_t)MSI_VEC << 16 | (uint64_t)(me << 8) << 32);
    put64(IRT + 5 * 16 + 8, bdf | 1ul << 18);               /* source-id checked */
    GUEST_CHECK(invalidate(4 | 1 << 4, 0, 3), "interrupt entry cache invalidated");
    GUEST_CHECK(gcmd_on(IRE), "interrupt remapping on");
    uint8_t cap = pci_find_cap(d, 0x05, 0);
    GUEST_CHECK(cap != 0, "edu has MSI");
    bool is64 = pci_cfg_read16(d, cap + 2) & 0x80;
    pci_cfg_write32(d, cap + 4, 0xfee00000u | 1 << 4 | 5 << 5);
    if (is64) {
        pci_cfg_write32(d, cap + 8, 0);
    }
    pci_cfg_write16(d, cap + (is64 ? 12 : 8), 0);
    pci_cfg_write16(d, cap + 2, pci_cfg_read16(d, cap + 2) | 1);
    mmio_write32(edu + EDU_INTR_RAISE, 1);
    GUEST_CHECK(wait_count(&msis, 1, 200000), "remapped MSI arrived at vector 0x%x", MSI_VEC);

    /* The entry gone (and invalidated): the MSI is blocked. */
    put64(IRT + 5 * 16, 0);
    invalidate(4 | 1 << 4, 0, 4);
    mmio_write32(edu + EDU_INTR_RAISE, 1);
    /* Long enough for a delivered MSI: edu raises it synchronously in both VMMs. */
    bool got = wait_count(&msis, 2, 5000);
    GUEST_CHECK(!got, "MSI blocked without its IRTE");
    mmio_write32(edu + EDU_INTR_ACK, mmio_read32(edu + EDU_INTR_STATUS));
    guest_pass();
}
