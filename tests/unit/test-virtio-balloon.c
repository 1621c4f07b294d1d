/*
 * hw/virtio/virtio-balloon.c through its PCI transport, on the hand-built machine of
 * virtio-test-util: inflated PFNs really free guest RAM (they read back as zero, the
 * memfd shrinks), hostile PFN lists (outside RAM, odd lengths) are survived, and the
 * config space follows the spec (num_pages is the device's, actual the driver's).
 */
#include <string.h>
#include <sys/stat.h>
#include "virtio-test-util.h"
#include "sen/hw/virtio-balloon.h"

#define PAGE 4096u
#define CFG(off) (0x2000 + (off)) /* device config inside BAR 4 */
#define PFN_GPA 0x20000ull        /* where the driver puts its PFN array */

typedef struct {
    VirtioTestMachine vt;
    VirtIOBalloon *b;
} Fixture;

static void setup(Fixture *f)
{
    Error *err = NULL;
    char *argv[] = { "sen", "-m", "4M", NULL };
    vt_init(&f->vt, 3, argv);
    f->vt.dev = (PCIDevice *)vt_add_device(&f->vt, "virtio-balloon-pci", NULL, &err);
    vt_check_no_error(err);
    f->b = virtio_balloon_find(&f->vt.m);
    g_assert_nonnull(f->b);
    uint64_t features = vt_blk_driver_init(&f->vt); /* generic: queue 0 = inflate */
    g_assert_true(features & (1ull << 1));          /* STATS_VQ offered */
    g_assert_false(features & (1ull << 5));         /* reporting only when asked */
}

static void inflate(Fixture *f, const uint32_t *pfns, uint32_t bytes)
{
    memcpy(f->vt.ram + PFN_GPA, pfns, bytes);
    vt_set_desc(&f->vt, 0, PFN_GPA, bytes, 0);
    uint16_t before = vt_used_idx(&f->vt);
    vt_kick(&f->vt);
    g_assert_cmpuint(vt_used_idx(&f->vt), ==, (uint16_t)(before + 1));
}

static uint64_t memfd_bytes(Fixture *f)
{
    struct stat st;
    g_assert_cmpint(fstat(guest_mem_backing_fd(f->vt.m.mem), &st), ==, 0);
    return (uint64_t)st.st_blocks * 512;
}

static void test_inflate_frees_pages(void)
{
    Fixture f;
    setup(&f);
    memset(f.vt.ram + 0x100000, 0xaa, 8 * PAGE);
    /* The request's own pages (PFN list, descriptors) exist before we count. */
    memset(f.vt.ram + PFN_GPA, 0, PAGE);
    vt_set_desc(&f.vt, 0, PFN_GPA, 0, 0);
    uint64_t before = memfd_bytes(&f);
    /* Six pages: two runs, one PFN outside RAM between them, one far beyond 4 GiB. */
    uint32_t pfns[] = { 0x100, 0x101, 0x102, 0xfffff, 0x105, 0x104, 0xffffffffu };
    inflate(&f, pfns, sizeof(pfns));
    /* Measured before reading: a read of a hole in shared memory allocates it again. */
    g_assert_cmpuint(memfd_bytes(&f), <=, before - 5 * PAGE);
    for (unsigned p = 0; p < 8; p++) {
        uint8_t want = (p == 3 || p >= 6) ? 0xaa : 0;
        g_assert_cmpuint(f.vt.ram[0x100000 + p * PAGE], ==, want);
        g_assert_cmpuint(f.vt.ram[0x100000 + p * PAGE + PAGE - 1], ==, want);
    }
    vt_done(&f.vt);
}

static void test_odd_length_list(void)
{
    Fixture f;
    setup(&f);
    memset(f.vt.ram + 0x200000, 0x55, 2 * PAGE);
    /* Six bytes: one whole PFN and half of another; the half is ignored. */
    uint32_t pfns[2] = { 0x200, 0x201 };
    inflate(&f, pfns, 6);
    g_assert_cmpuint(f.vt.ram[0x200000], ==, 0);
    g_assert_cmpuint(f.vt.ram[0x201000], ==, 0x55);
    /* An empty buffer is a no-op, not an error. */
    inflate(&f, pfns, 0);
    vt_done(&f.vt);
}

static void test_config_space(void)
{
    Fixture f;
    setup(&f);
    uint64_t ram = 4u << 20;
    g_assert_cmpuint(virtio_balloon_actual(f.b), ==, ram);
    virtio_balloon_set_target(f.b, ram - 64 * PAGE);
    g_assert_cmpuint(vt_rd(&f.vt, CFG(0), 4), ==, 64);
    /* The driver cannot move the target. */
    vt_wr(&f.vt, CFG(0), 4, 7);
    g_assert_cmpuint(vt_rd(&f.vt, CFG(0), 4), ==, 64);
    vt_wr(&f.vt, CFG(4), 4, 64);
    g_assert_cmpuint(virtio_balloon_actual(f.b), ==, ram - 64 * PAGE);
    /* A driver claiming more than the RAM does not underflow the answer. */
    vt_wr(&f.vt, CFG(4), 4, 0xffffffffu);
    g_assert_cmpuint(virtio_balloon_actual(f.b), ==, 0);
    /* Targets beyond the RAM mean "all of it"; zero pages in the balloon. */
    virtio_balloon_set_target(f.b, UINT64_MAX);
    g_assert_cmpuint(vt_rd(&f.vt, CFG(0), 4), ==, 0);
    /* Device reset: actual back to 0, the target stays for the next driver. */
    virtio_balloon_set_target(f.b, ram / 2);
    vt_wr(&f.vt, CC_STATUS, 1, 0);
    g_assert_cmpuint(vt_rd(&f.vt, CFG(4), 4), ==, 0);
    g_assert_cmpuint(vt_rd(&f.vt, CFG(0), 4), ==, ram / 2 / PAGE);
    g_assert_cmpuint(virtio_balloon_actual(f.b), ==, ram);
    vt_done(&f.vt);
}

static void test_no_stats_before_the_guest_sends_them(void)
{
    Fixture f;
    setup(&f);
    uint64_t stats[BALLOON_S_NR];
    bool valid[BALLOON_S_NR];
    g_assert_cmpint(virtio_balloon_stats(f.b, stats, valid), ==, 0);
    for (unsigned i = 0; i < BALLOON_S_NR; i++) {
        g_assert_false(valid[i]);
    }
    vt_done(&f.vt);
}

/* ---- the stats and reporting queues, driven by hand (the util drives queue 0 only) ---- */

#define QRING(q) (0x40000ull + (q) * 0x3000ull) /* desc, avail, used: one page each */

typedef struct QDriver {
    Fixture f;
    uint16_t avail[4];
} QDriver;

static void qdriver_init(QDriver *d, const char *props)
{
    Error *err = NULL;
    char *argv[] = { "sen", "-m", "4M", NULL };
    VirtioTestMachine *vt = &d->f.vt;
    memset(d->avail, 0, sizeof(d->avail));
    vt_init(vt, 3, argv);
    vt->dev = (PCIDevice *)vt_add_device(vt, "virtio-balloon-pci", props, &err);
    vt_check_no_error(err);
    d->f.b = virtio_balloon_find(&vt->m);
    vt_map_bar4(vt);
    vt_wr(vt, CC_STATUS, 1, 0);
    vt_wr(vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t features = 0;
    for (unsigned sel = 0; sel < 2; sel++) {
        vt_wr(vt, CC_DFSELECT, 4, sel);
        features |= vt_rd(vt, CC_DF, 4) << (32 * sel);
    }
    for (unsigned sel = 0; sel < 2; sel++) {
        vt_wr(vt, CC_GFSELECT, 4, sel);
        vt_wr(vt, CC_GF, 4, (uint32_t)(features >> (32 * sel)));
    }
    vt_wr(vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK);
    unsigned queues = vt_rd(vt, CC_NUM_QUEUES, 2);
    for (unsigned q = 0; q < queues; q++) {
        vt_wr(vt, CC_Q_SELECT, 2, q);
        vt_wr(vt, CC_Q_SIZE, 2, VT_QSIZE);
        vt_wr(vt, CC_Q_DESC, 8, QRING(q));
        vt_wr(vt, CC_Q_AVAIL, 8, QRING(q) + 0x1000);
        vt_wr(vt, CC_Q_USED, 8, QRING(q) + 0x2000);
        memset(vt->ram + QRING(q), 0, 0x3000);
        vt_wr(vt, CC_Q_ENABLE, 2, 1);
    }
    vt_wr(vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

/* One buffer in queue q at descriptor `desc`, made available and notified. */
static void qdriver_add(QDriver *d, unsigned q, unsigned desc, uint64_t gpa, uint32_t len,
                        bool write)
{
    VirtioTestMachine *vt = &d->f.vt;
    VirtqDesc dsc = { .addr = gpa, .len = len, .flags = write ? VIRTQ_DESC_F_WRITE : 0 };
    memcpy(vt->ram + QRING(q) + 16 * desc, &dsc, sizeof(dsc));
    uint16_t *avail = (uint16_t *)(vt->ram + QRING(q) + 0x1000);
    avail[2 + d->avail[q] % VT_QSIZE] = (uint16_t)desc;
    __atomic_store_n(&avail[1], ++d->avail[q], __ATOMIC_RELEASE);
    vt_wr(vt, 0x3000 + 4 * q, 2, q);
}

static uint16_t qdriver_used(QDriver *d, unsigned q)
{
    return *(uint16_t *)(d->f.vt.ram + QRING(q) + 0x2000 + 2);
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
    p[0] = (uint8_t)tag;
    p[1] = (uint8_t)(tag >> 8);
    for (unsigned i = 0; i < 8; i++) {
        p[2 + i] = (uint8_t)(val >> (8 * i));
    }
}

static void test_stats_queue(void)
{
    QDriver d;
    qdriver_init(&d, NULL);
    uint8_t *buf = d.f.vt.ram + 0x30000;
    put_stat(buf, BALLOON_S_MEMFREE, 123 << 20);
    put_stat(buf + 10, BALLOON_S_MEMTOT, 4 << 20);
    put_stat(buf + 20, 999, 7); /* a tag from the future: skipped */
    qdriver_add(&d, 2, 0, 0x30000, 35, false); /* and 5 stray bytes: ignored */
    g_assert_cmpuint(qdriver_used(&d, 2), ==, 0); /* the device keeps the buffer */

    uint64_t stats[BALLOON_S_NR];
    bool valid[BALLOON_S_NR];
    g_assert_cmpint(virtio_balloon_stats(d.f.b, stats, valid), >, 0);
    g_assert_true(valid[BALLOON_S_MEMFREE] && valid[BALLOON_S_MEMTOT]);
    g_assert_false(valid[BALLOON_S_SWAP_IN]);
    g_assert_cmpuint(stats[BALLOON_S_MEMFREE], ==, 123 << 20);
    g_assert_cmpuint(stats[BALLOON_S_MEMTOT], ==, 4 << 20);
    /* Asking for statistics handed the buffer back for a refill. */
    g_assert_cmpuint(qdriver_used(&d, 2), ==, 1);

    /* The refill, then a second buffer while the device holds one: a broken driver. */
    qdriver_add(&d, 2, 1, 0x30000, 10, false);
    g_assert_false(vt_rd(&d.f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    qdriver_add(&d, 2, 2, 0x30000, 10, false);
    g_assert_true(vt_rd(&d.f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    vt_done(&d.f.vt);
}

static void test_free_page_reporting(void)
{
    QDriver d;
    qdriver_init(&d, "free-page-reporting=on");
    g_assert_cmpuint(vt_rd(&d.f.vt, CC_NUM_QUEUES, 2), ==, 4);
    memset(d.f.vt.ram + 0x100000, 0x77, 4 * PAGE);
    /* An unaligned block: only the page wholly inside it is given back. */
    qdriver_add(&d, 3, 0, 0x100800, 2 * PAGE, true);
    g_assert_cmpuint(qdriver_used(&d, 3), ==, 1);
    g_assert_cmpuint(d.f.vt.ram[0x100800], ==, 0x77);
    g_assert_cmpuint(d.f.vt.ram[0x101000], ==, 0);
    g_assert_cmpuint(d.f.vt.ram[0x101fff], ==, 0);
    g_assert_cmpuint(d.f.vt.ram[0x102000], ==, 0x77);
    /* A block beyond RAM is walked no further than the queue allows: device broken,
     * nothing discarded, the VMM alive. */
    qdriver_add(&d, 3, 1, 0x10000000, PAGE, true);
    g_assert_cmpuint(d.f.vt.ram[0x103000], ==, 0x77);
    vt_done(&d.f.vt);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-balloon/inflate-frees-pages", test_inflate_frees_pages);
    g_test_add_func("/virtio-balloon/odd-length-list", test_odd_length_list);
    g_test_add_func("/virtio-balloon/config-space", test_config_space);
    g_test_add_func("/virtio-balloon/no-stats-yet", test_no_stats_before_the_guest_sends_them);
    g_test_add_func("/virtio-balloon/stats-queue", test_stats_queue);
    g_test_add_func("/virtio-balloon/free-page-reporting", test_free_page_reporting);
    return g_test_run();
}
