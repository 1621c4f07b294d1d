/*
 * -device intel-iommu from outside (-M q35, -accel qtest): the registers at 0xfed90000 as
 * a driver programs them (kvm-unit-tests' order), a queued-invalidation wait descriptor
 * writing its status into guest RAM, a queue error, and the start-up errors that name the
 * bad property.
 */
#include <string.h>
#include <unistd.h>
#include "libqtest.h"

#define VTD        0xfed90000ULL
#define VER        0x00
#define CAP        0x08
#define ECAP       0x10
#define GCMD       0x18
#define GSTS       0x1c
#define RTADDR     0x20
#define FSTS       0x34
#define IQH        0x80
#define IQT        0x88
#define IQA        0x90
#define IRTA       0xb8

#define G_TE       (1u << 31)
#define G_SRTP     (1u << 30)
#define G_QIE      (1u << 26)
#define G_IRE      (1u << 25)
#define G_SIRTP    (1u << 24)

#define ROOT       0x100000ULL
#define IRT        0x101000ULL
#define QUEUE      0x102000ULL
#define STATUS     0x103000ULL

static void gcmd_or(QTestState *s, uint32_t bit)
{
    qtest_writel(s, VTD + GCMD, qtest_readl(s, VTD + GSTS) | bit);
}

static void test_registers(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-M q35 -m 256 -device intel-iommu");
    g_assert_cmphex(qtest_readl(s, VTD + VER), ==, 0x10);
    uint64_t cap = qtest_readq(s, VTD + CAP);
    g_assert_cmphex(cap & (0x1fULL << 8), ==, 2ULL << 8);       /* SAGAW: 39-bit */
    g_assert_cmphex(cap & (3ULL << 34), ==, 3ULL << 34);        /* 2 MiB, 1 GiB pages */
    uint64_t ecap = qtest_readq(s, VTD + ECAP);
    g_assert_true(ecap & 2);                                    /* QI */
    g_assert_true(ecap & 8);                                    /* IR: auto, no irqchip */
    g_assert_cmphex(qtest_readl(s, VTD + GSTS), ==, 0);

    gcmd_or(s, G_QIE);
    qtest_writeq(s, VTD + RTADDR, ROOT);
    gcmd_or(s, G_SRTP);
    qtest_writeq(s, VTD + IRTA, IRT | 0xf);
    gcmd_or(s, G_SIRTP);
    gcmd_or(s, G_TE);
    gcmd_or(s, G_IRE);
    g_assert_cmphex(qtest_readl(s, VTD + GSTS), ==,
                    G_TE | G_SRTP | G_QIE | G_IRE | G_SIRTP);
    g_assert_cmphex(qtest_readq(s, VTD + RTADDR), ==, ROOT);
    g_assert_cmphex(qtest_readq(s, VTD + IRTA), ==, IRT | 0xf);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    qtest_quit(s);

    /* intremap=off,aw-bits=48: no IR, both table depths. */
    s = qtest_init("-M q35 -m 256 -device intel-iommu,intremap=off,aw-bits=48");
    g_assert_false(qtest_readq(s, VTD + ECAP) & 8);
    g_assert_cmphex(qtest_readq(s, VTD + CAP) & (0x1fULL << 8), ==, 6ULL << 8);
    qtest_quit(s);
}

static void put_desc(QTestState *s, unsigned slot, uint64_t lo, uint64_t hi)
{
    qtest_writeq(s, QUEUE + slot * 16, lo);
    qtest_writeq(s, QUEUE + slot * 16 + 8, hi);
}

static void test_queue(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_init("-M q35 -m 256 -device intel-iommu");
    qtest_writeq(s, VTD + IQA, QUEUE);
    qtest_writeq(s, VTD + IQT, 0);
    gcmd_or(s, G_QIE);
    put_desc(s, 0, 2 | 1 << 4, 0);                              /* global IOTLB */
    put_desc(s, 1, 5 | 1 << 5 | 0x600dULL << 32, STATUS);       /* wait, status write */
    qtest_writeq(s, VTD + IQT, 2 << 4);
    g_assert_cmphex(qtest_readq(s, VTD + IQH), ==, 2 << 4);
    g_assert_cmphex(qtest_readl(s, STATUS), ==, 0x600d);

    /* An unsupported descriptor (device-IOTLB): IQE, IQH stays on it. */
    put_desc(s, 2, 3, 0);
    qtest_writeq(s, VTD + IQT, 3 << 4);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 1 << 4);
    g_assert_cmphex(qtest_readq(s, VTD + IQH), ==, 2 << 4);
    /* Replaced by a wait and IQE cleared: the queue runs on. */
    put_desc(s, 2, 5 | 1 << 5 | 0xbeefULL << 32, STATUS);
    qtest_writel(s, VTD + FSTS, 1 << 4);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    g_assert_cmphex(qtest_readq(s, VTD + IQH), ==, 3 << 4);
    g_assert_cmphex(qtest_readl(s, STATUS), ==, 0xbeef);
    qtest_quit(s);
}

/* accel "qtest" or "kvm" (only the IOAPIC question needs a real irqchip). */
/* ---- with the edu device: its DMA and MSIs pass the unit ---- */

#define EDU_BAR    0xe0000000ULL
#define EDU_SLOT   3
#define EDU_SID    (EDU_SLOT << 3)
#define CTX        0x104000ULL
#define PT3        0x105000ULL
#define PT2        0x106000ULL
#define PT1        0x107000ULL
#define PAGE0      0x200000ULL   /* iova 0 */
#define PAGE1      0x201000ULL   /* iova 0x1000, read-only */
#define FE_ADDR    0x30000ULL    /* qtest delivers an MSI as a write into RAM */
#define FEADDR     0x40
#define FEDATA     0x3c
#define FECTL      0x38
#define FRCD       0x220

/* edu DMA: cmd 1 = RAM -> buffer, 3 = buffer -> RAM. */
static void edu_dma(QTestState *s, uint64_t src, uint64_t dst, uint64_t cnt, uint32_t cmd)
{
    qtest_writeq(s, EDU_BAR + 0x80, src);
    qtest_writeq(s, EDU_BAR + 0x88, dst);
    qtest_writeq(s, EDU_BAR + 0x90, cnt);
    qtest_writel(s, EDU_BAR + 0x98, cmd);
}

static uint32_t fault_reason(QTestState *s)
{
    uint64_t hi = qtest_readq(s, VTD + FRCD + 8);
    g_assert_true(hi >> 63);
    g_assert_cmphex(hi & 0xffff, ==, EDU_SID);
    qtest_writel(s, VTD + FRCD + 12, 0x80000000u);   /* clear F */
    return (hi >> 32) & 0xff;
}

static void test_edu(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_initf("-M q35 -m 256 -device intel-iommu -device edu,addr=%x",
                                EDU_SLOT);
    qtest_pci_cfg_writel(s, EDU_SID, 0x10, (uint32_t)EDU_BAR);
    qtest_pci_cfg_writel(s, EDU_SID, 0x04, 0x0006);                       /* memory + bus master */
    /* Tables: bus 0 -> devfn 3.0 -> 3 levels; iova 0 -> PAGE0 rw, 0x1000 -> PAGE1 ro. */
    qtest_writeq(s, ROOT, CTX | 1);
    qtest_writeq(s, CTX + EDU_SID * 16, PT3 | 1);
    qtest_writeq(s, CTX + EDU_SID * 16 + 8, 1 | 7 << 8);   /* AW 39-bit, domain 7 */
    qtest_writeq(s, PT3, PT2 | 3);
    qtest_writeq(s, PT2, PT1 | 3);
    qtest_writeq(s, PT1, PAGE0 | 3);
    qtest_writeq(s, PT1 + 8, PAGE1 | 1);
    qtest_writeq(s, VTD + RTADDR, ROOT);
    gcmd_or(s, G_SRTP);
    gcmd_or(s, G_TE);
    qtest_writel(s, VTD + FEADDR, (uint32_t)FE_ADDR);
    qtest_writel(s, VTD + FEDATA, 0x77);
    qtest_writel(s, VTD + FECTL, 0);

    /* iova 0..3 -> buffer -> iova 4..7, as kvm-unit-tests does. */
    qtest_writel(s, PAGE0, 0x12345678);
    edu_dma(s, 0, 0x40000, 4, 1);
    edu_dma(s, 0x40000, 4, 4, 3);
    g_assert_cmphex(qtest_readl(s, PAGE0 + 4), ==, 0x12345678);
    g_assert_cmphex(qtest_readl(s, 4), ==, 0);             /* not guest-physical 4 */
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    /* A read crossing into the read-only page is fine, a write into it faults (5). */
    edu_dma(s, 0xff8, 0x40000, 16, 1);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    qtest_writel(s, FE_ADDR, 0);
    edu_dma(s, 0x40000, 0x1000, 4, 3);
    g_assert_cmphex(qtest_readl(s, PAGE1), ==, 0);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 1 << 1);     /* PPF */
    g_assert_cmphex(qtest_readq(s, VTD + FRCD), ==, 0x1000);
    g_assert_cmpuint(fault_reason(s), ==, 5);
    g_assert_cmphex(qtest_readl(s, FE_ADDR), ==, 0x77);          /* the fault event */
    /* Not mapped: read fault (6). */
    edu_dma(s, 0x5000, 0x40000, 4, 1);
    g_assert_cmpuint(fault_reason(s), ==, 6);

    /* Interrupt remapping: edu's MSI in remappable format, handle 1. */
    qtest_writeq(s, VTD + IRTA, IRT | 7);
    gcmd_or(s, G_SIRTP);
    gcmd_or(s, G_IRE);
    qtest_writeq(s, IRT + 16, 1 | 0x42 << 16);
    qtest_writeq(s, IRT + 24, EDU_SID | 1 << 18);          /* SVT 1: full source-id */
    unsigned cap = qtest_pci_cfg_readl(s, EDU_SID, 0x34) & 0xff;
    while (cap && (qtest_pci_cfg_readl(s, EDU_SID, cap) & 0xff) != 0x05) {
        cap = (qtest_pci_cfg_readl(s, EDU_SID, cap) >> 8) & 0xff;
    }
    g_assert_cmpuint(cap, !=, 0);
    qtest_pci_cfg_writel(s, EDU_SID, cap + 4, 0xfee00000u | 1 << 4 | 1 << 5);
    qtest_pci_cfg_writel(s, EDU_SID, cap + 8, 0);
    qtest_pci_cfg_writel(s, EDU_SID, cap + 12, 0);
    qtest_pci_cfg_writel(s, EDU_SID, cap, (qtest_pci_cfg_readl(s, EDU_SID, cap) & 0xffff) | 1u << 16);
    qtest_writel(s, EDU_BAR + 0x60, 1);                    /* raise: remapped, no fault */
    qtest_writel(s, EDU_BAR + 0x64, 1);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    qtest_writeq(s, IRT + 24, (EDU_SID + 1) | 1 << 18);    /* another device's entry */
    qtest_writel(s, EDU_BAR + 0x60, 1);
    qtest_writel(s, EDU_BAR + 0x64, 1);
    g_assert_cmphex(qtest_readq(s, VTD + FRCD) >> 48, ==, 1);    /* the IRTE index */
    g_assert_cmpuint(fault_reason(s), ==, 0x26);
    qtest_writeq(s, IRT + 16, 0);                          /* not present */
    qtest_writel(s, EDU_BAR + 0x60, 1);
    qtest_writel(s, EDU_BAR + 0x64, 1);
    g_assert_cmpuint(fault_reason(s), ==, 0x22);
    qtest_quit(s);
}

/*
 * DMA across the seam between two NUMA nodes' memdevs (128 MiB each, so Sen's RAM has
 * two regions meeting at SEAM): iova 0 and 0x1000 map the pages just below and just
 * above it, a run the walker hands back as one piece, which must still reach both
 * regions, in both directions.
 */
#define SEAM 0x8000000ULL

static void test_edu_numa_seam(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    QTestState *s = qtest_initf("-M q35 -m 256 -object memory-backend-ram,id=m0,size=128M "
                                "-object memory-backend-ram,id=m1,size=128M "
                                "-numa node,memdev=m0 -numa node,memdev=m1 "
                                "-device intel-iommu -device edu,addr=%x", EDU_SLOT);
    qtest_pci_cfg_writel(s, EDU_SID, 0x10, (uint32_t)EDU_BAR);
    qtest_pci_cfg_writel(s, EDU_SID, 0x04, 0x0006);
    qtest_writeq(s, ROOT, CTX | 1);
    qtest_writeq(s, CTX + EDU_SID * 16, PT3 | 1);
    qtest_writeq(s, CTX + EDU_SID * 16 + 8, 1 | 7 << 8);
    qtest_writeq(s, PT3, PT2 | 3);
    qtest_writeq(s, PT2, PT1 | 3);
    qtest_writeq(s, PT1, (SEAM - 0x1000) | 3);
    qtest_writeq(s, PT1 + 8, SEAM | 3);
    qtest_writeq(s, VTD + RTADDR, ROOT);
    gcmd_or(s, G_SRTP);
    gcmd_or(s, G_TE);

    /* RAM -> device across the seam, back into RAM below it. */
    qtest_writeq(s, SEAM - 8, 0x1122334455667788ULL);
    qtest_writeq(s, SEAM, 0x99aabbccddeeff00ULL);
    edu_dma(s, 0xff8, 0x40000, 16, 1);
    edu_dma(s, 0x40000, 0x100, 16, 3);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    g_assert_cmphex(qtest_readq(s, SEAM - 0x1000 + 0x100), ==, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readq(s, SEAM - 0x1000 + 0x108), ==, 0x99aabbccddeeff00ULL);
    /* Device -> RAM across the seam: both halves land. */
    qtest_writeq(s, SEAM - 0x1000 + 0x200, 0x0102030405060708ULL);
    edu_dma(s, 0x200, 0x40010, 8, 1);
    edu_dma(s, 0x40010, 0xffc, 8, 3);
    g_assert_cmphex(qtest_readl(s, VTD + FSTS), ==, 0);
    g_assert_cmphex(qtest_readl(s, SEAM - 4), ==, 0x05060708);
    g_assert_cmphex(qtest_readl(s, SEAM), ==, 0x01020304);
    qtest_quit(s);
}

/* device2: a second -device, or NULL. */
static void expect_refused2(const char *accel, const char *machine, const char *device,
                            const char *device2, const char *msg)
{
    const char *sen = qtest_sen_binary();
    g_autofree char *err = NULL;
    int status = 0;
    const char *argv[] = { sen, "-accel", accel, "-qtest", "stdio", "-nodefaults",
                           "-display", "none", "-machine", machine, "-device", device,
                           device2 ? "-device" : NULL, device2, NULL };
    if (!strcmp(accel, "kvm")) {
        argv[3] = "-name";  /* no qtest socket with KVM */
        argv[4] = "vtd-test";
    }
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                               NULL, NULL, &err, &status, NULL));
    g_assert_false(g_spawn_check_wait_status(status, NULL));
    if (!strstr(err, msg)) {
        g_test_message("stderr: %s", err);
        g_assert_not_reached();
    }
}

static void expect_refused(const char *accel, const char *machine, const char *device,
                           const char *msg)
{
    expect_refused2(accel, machine, device, NULL, msg);
}

static void test_errors(void)
{
    if (!qtest_have_sen()) {
        return;
    }
    /* These are refused while the machine is built, before anything runs. */
    expect_refused("qtest", "pc", "intel-iommu",
                   "-device intel-iommu: intel-iommu is only supported by the q35 machine");
    if (access("/dev/kvm", R_OK | W_OK) == 0) {
        expect_refused("kvm", "q35", "intel-iommu,intremap=on",
                       "-device intel-iommu,intremap=on: Interrupt Remapping cannot work "
                       "with kernel-irqchip=on, please use 'split|off'.");
    } else {
        g_test_message("no usable /dev/kvm: the kernel-irqchip=on case is not checked");
    }
    expect_refused("qtest", "q35", "intel-iommu,intremap=off,eim=on",
                   "eim=on cannot be selected without intremap=on");
    expect_refused("qtest", "q35", "intel-iommu,aw-bits=40",
                   "-device intel-iommu,aw-bits=40: Supported values for aw-bits are: 39, 48");
    expect_refused("qtest", "q35", "intel-iommu,intremap=maybe",
                   "Parameter 'intremap' does not accept value 'maybe'");
    expect_refused2("qtest", "q35", "intel-iommu", "intel-iommu,id=second",
                    "-device intel-iommu,id=second: Sen does not support multiple vIOMMUs "
                    "for x86");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/intel-iommu/registers", test_registers);
    g_test_add_func("/intel-iommu/queue", test_queue);
    g_test_add_func("/intel-iommu/edu", test_edu);
    g_test_add_func("/intel-iommu/edu-numa-seam", test_edu_numa_seam);
    g_test_add_func("/intel-iommu/errors", test_errors);
    return g_test_run();
}
