/*
 * A virtio-balloon driver for the guest kit, driven by the host over QMP
 * (tests/functional/test_balloon.py): it dirties a test region, reports part of it free
 * (free page reporting, when offered), then follows the host's target, inflating with
 * pages of the region and deflating them again, writing "actual" after every step.
 * Pages coming back from the balloon must read as zeroes (the host gave them back to its
 * kernel); the test passes once the host asked for everything back.
 *
 * Without a host to drive it the guest waits (bounded) and fails, so this image is run
 * only by the functional test, never by run-guest.py.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define VIRTIO_ID_BALLOON 5
#define F_STATS_VQ (1ull << 1)
#define F_REPORTING (1ull << 5)
#define CFG_NUM_PAGES 0
#define CFG_ACTUAL 4

#define PAGE 4096u
#define REGION_MIB 80u       /* dirtied at start; inflate and reporting take pages here */
#define REPORT_MIB 16u       /* reported free when the device offers reporting */
#define BATCH 256u           /* PFNs per inflate/deflate request (1 MiB) */
#define STAT_MEMTOT 5
#define STAT_MEMFREE 4

static uint8_t *region;
static unsigned pool_first;   /* first page of the region usable for the balloon */
static unsigned pool_pages;
static uint32_t actual;       /* pages in the balloon: pool pages [pool_first, +actual) */
static uint32_t pfns[BATCH] __attribute__((aligned(64)));

static void cfg_write32(VirtioDev *vd, unsigned off, uint32_t v)
{
    mmio_write32(vd->device + off, v);
}

static void request(Virtq *vq, void *buf, uint32_t len, bool write)
{
    VirtioBuf b = { buf, len, write };
    int head = virtq_add(vq, &b, 1);
    if (head < 0) {
        guest_fail("queue %u full", vq->index);
    }
    virtq_kick(vq);
    uint32_t id, used_len;
    if (!virtq_wait(vq, &id, &used_len, 2000000) || id != (uint32_t)head) {
        guest_fail("queue %u: request not completed", vq->index);
    }
}

static uint64_t page_pfn(unsigned page)
{
    return ((uintptr_t)region + (uint64_t)page * PAGE) / PAGE;
}

static void inflate(VirtioDev *vd, uint32_t n)
{
    if (actual + n > pool_pages) {
        guest_fail("host asked for %u pages, the test region has %u", actual + n, pool_pages);
    }
    for (uint32_t i = 0; i < n; i++) {
        pfns[i] = (uint32_t)page_pfn(pool_first + actual + i);
    }
    request(&vd->vq[0], pfns, n * 4, false);
    actual += n;
    cfg_write32(vd, CFG_ACTUAL, actual);
}

static void deflate(VirtioDev *vd, uint32_t n)
{
    actual -= n;
    for (uint32_t i = 0; i < n; i++) {
        pfns[i] = (uint32_t)page_pfn(pool_first + actual + i);
    }
    request(&vd->vq[1], pfns, n * 4, false);
    cfg_write32(vd, CFG_ACTUAL, actual);
    /* The pages were dirtied before inflating; the host discarded them since. */
    for (uint32_t i = 0; i < n; i += 64) {
        uint32_t v = *(volatile uint32_t *)(region + (uint64_t)(pool_first + actual + i) * PAGE);
        if (v != 0) {
            guest_fail("deflated page %u reads 0x%x, not zero: the host kept it",
                       pool_first + actual + i, v);
        }
    }
}

static void dirty_region(void)
{
    for (unsigned p = 0; p < REGION_MIB * 256; p++) {
        *(volatile uint32_t *)(region + (uint64_t)p * PAGE) = 0x5e000000u | p;
    }
}

/* Free page reporting: the first REPORT_MIB of the region, in 4 MiB blocks as Linux does. */
static void report_free(VirtioDev *vd)
{
    for (unsigned mib = 0; mib < REPORT_MIB; mib += 4) {
        request(&vd->vq[3], region + (uint64_t)mib * 256 * PAGE, 4u << 20, true);
    }
    guest_printf("balloon: reported %u MiB free\n", REPORT_MIB);
    for (unsigned p = 0; p < REPORT_MIB * 256; p += 256) {
        uint32_t v = *(volatile uint32_t *)(region + (uint64_t)p * PAGE);
        GUEST_CHECK(v == 0, "reported page %u reads zero (0x%x)", p, v);
    }
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    static uint8_t stats[2 * 10] __attribute__((aligned(16)));
    unsigned n = pci_scan_bus0(devs, 32);

    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BALLOON, 0, &vd),
                "virtio-balloon found at %02x.%x", vd.pci.dev, vd.pci.fn);
    GUEST_CHECK(virtio_init(&vd, F_STATS_VQ | F_REPORTING), "features negotiated: 0x%lx",
                vd.features);
    bool reporting = vd.features & F_REPORTING;
    unsigned queues = reporting ? 4 : 3;
    for (unsigned q = 0; q < queues; q++) {
        GUEST_CHECK(virtio_setup_queue(&vd, q, 16, 0), "queue %u set up", q);
    }
    virtio_driver_ok(&vd);

    /* One statistics buffer stays with the device (5.5.6.3). */
    uint64_t memtot = 0;
    for (unsigned i = 0; i < boot_info.nr_mem; i++) {
        if (boot_info.mem[i].type == 1) {
            memtot += boot_info.mem[i].len;
        }
    }
    uint64_t vals[2] = { memtot, (uint64_t)REGION_MIB << 20 };
    uint16_t tags[2] = { STAT_MEMTOT, STAT_MEMFREE };
    for (unsigned i = 0; i < 2; i++) {
        stats[i * 10] = (uint8_t)tags[i];
        stats[i * 10 + 1] = 0;
        for (unsigned b = 0; b < 8; b++) {
            stats[i * 10 + 2 + b] = (uint8_t)(vals[i] >> (8 * b));
        }
    }
    VirtioBuf sb = { stats, sizeof(stats), false };
    GUEST_CHECK(virtq_add(&vd.vq[2], &sb, 1) >= 0, "stats buffer queued");
    virtq_kick(&vd.vq[2]);

    region = guest_alloc((size_t)REGION_MIB << 20, 1 << 21, false);
    GUEST_CHECK(region != NULL, "%u MiB test region at 0x%lx", REGION_MIB,
                (unsigned long)(uintptr_t)region);
    dirty_region();
    guest_printf("balloon: dirtied %u MiB\n", REGION_MIB);
    pool_first = 0;
    if (reporting) {
        report_free(&vd);
        pool_first = REPORT_MIB * 256;
    }
    pool_pages = REGION_MIB * 256 - pool_first;
    guest_printf("balloon: ready, %u pages to give\n", pool_pages);

    bool inflated = false;
    /* ~8 µs a delay under emulation: a bound of minutes, never a hang. */
    for (unsigned spins = 0; spins < 20000000; spins++) {
        uint32_t target = virtio_cfg_read32(&vd, CFG_NUM_PAGES);
        if (target > actual) {
            uint32_t step = target - actual < BATCH ? target - actual : BATCH;
            inflate(&vd, step);
            if (actual == target) {
                guest_printf("balloon: inflated to %u pages\n", actual);
            }
            inflated = true;
        } else if (target < actual) {
            uint32_t step = actual - target < BATCH ? actual - target : BATCH;
            deflate(&vd, step);
            if (actual == target) {
                guest_printf("balloon: deflated to %u pages\n", actual);
            }
        } else if (inflated && actual == 0) {
            guest_printf("balloon ok\n");
            guest_pass();
        } else {
            guest_delay(50);
        }
    }
    guest_fail("the host never asked for the memory back");
}
