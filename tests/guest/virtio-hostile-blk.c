/*
 * A hostile driver on virtio-blk (runner --disk): a read into a device-readable buffer,
 * a read-only status byte, a header shorter than 16 bytes, a read of 100 bytes, a write
 * at sector 2^62, a discard range that wraps past the end.  The device must answer each
 * with an error status, NEEDS_RESET, or silence; never write a read-only buffer (canaries
 * must survive) and never report success for a request it cannot have done.  After every
 * case a reset device must write and read back a sector.  Last, a reset with 16 reads
 * in flight must complete and leave rings and buffers alone afterwards.  The runner checks that
 * the image did not grow and its host pattern is intact.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

typedef enum { OUT_NEEDS_RESET, OUT_IGNORED, OUT_USED } Outcome;

static VirtioDev vd;
static VirtioBlkReq *r;
static uint8_t *buf;

static void fresh(void)
{
    if (!virtio_init(&vd, VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_FLUSH) ||
        !virtio_setup_queue(&vd, 0, 16, 0)) {
        guest_fail("virtio-blk does not come back after a reset (status 0x%x)",
                   virtio_get_status(&vd));
    }
    virtio_driver_ok(&vd);
}

static Outcome observe(void)
{
    Virtq *vq = &vd.vq[0];
    for (unsigned i = 0; i < 20000; i++) {
        if (virtio_get_status(&vd) & VIRTIO_STATUS_NEEDS_RESET) {
            return OUT_NEEDS_RESET;
        }
        if (vq->used->idx != vq->last_used) {
            return OUT_USED;
        }
        guest_io_delay();
    }
    return OUT_IGNORED;
}

static void set_desc(unsigned i, void *addr, uint32_t len, uint16_t flags)
{
    vd.vq[0].desc[i] = (VirtqDesc){ .addr = (uintptr_t)addr, .len = len, .flags = flags,
                                    .next = i + 1 };
}

static void submit(void)
{
    virtq_publish(&vd.vq[0], 0);
    virtq_kick(&vd.vq[0]);
}

static bool canary_ok(const uint8_t *p, unsigned len, uint8_t v)
{
    for (unsigned i = 0; i < len; i++) {
        if (p[i] != v) {
            return false;
        }
    }
    return true;
}

/* Judges one case (`status` is where the device should have put its answer, `ok_allowed`
 * whether success is a valid answer), then checks a reset device still works. */
static void judge(const char *what, volatile uint8_t *status, bool ok_allowed)
{
    Outcome o = observe();
    static const char *const names[] = { "NEEDS_RESET", "ignored", "used" };
    uint8_t st = *status;
    guest_printf("hostile: %s: %s (status 0x%x)\n", what, names[o], st);
    if (o == OUT_USED && st == VIRTIO_BLK_S_OK && !ok_allowed) {
        guest_fail("%s: the device reported success", what);
    }
    if (!virtio_reset(&vd)) {
        guest_fail("%s: the device does not reset (status 0x%x)", what, virtio_get_status(&vd));
    }
    fresh();
    for (unsigned i = 0; i < 512; i++) {
        buf[i] = (uint8_t)(i ^ 0x96);
    }
    VirtioBuf w = { buf, 512, false };
    uint8_t s1 = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, 1000, &w, 1, false, NULL);
    memset(buf + 512, 0, 512);
    VirtioBuf rd = { buf + 512, 512, true };
    uint8_t s2 = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 1000, &rd, 1, false, NULL);
    GUEST_CHECK(s1 == VIRTIO_BLK_S_OK && s2 == VIRTIO_BLK_S_OK && memcmp(buf, buf + 512, 512) == 0,
                "after '%s' the reset device writes and reads", what);
    virtio_reset(&vd);
    fresh();
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd), "virtio-blk found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    r = guest_alloc(sizeof(*r), 64, true);
    buf = guest_alloc(8192, 4096, false);
    fresh();
    uint64_t cap = virtio_cfg_read64(&vd, 0);
    guest_printf("features 0x%lx, capacity %lu\n", vd.features, cap);
    uint8_t *canary = buf + 4096;
    VirtioBlkHdr *hdr = (VirtioBlkHdr *)(buf + 6016);
    VirtioBlkRange *range = (VirtioBlkRange *)(buf + 6048);
    /* Not r->status: the recovery requests in judge() use that one. */
    volatile uint8_t *status = buf + 6000;

    /* A read whose data buffer the device may not write. */
    memset(canary, 0xc5, 512);
    *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_IN, .sector = 100 };
    *status = 0xff;
    set_desc(0, hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT);
    set_desc(1, canary, 512, VIRTQ_DESC_F_NEXT);
    set_desc(2, (void *)status, 1, VIRTQ_DESC_F_WRITE);
    submit();
    judge("read into a read-only buffer", status, true);
    GUEST_CHECK(canary_ok(canary, 512, 0xc5), "the read-only data buffer was not written");

    /* The status byte itself is device-readable. */
    *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_IN, .sector = 0 };
    *status = 0xee;
    set_desc(0, hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT);
    set_desc(1, buf, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
    set_desc(2, (void *)status, 1, 0);
    submit();
    judge("read-only status byte", status, false);
    GUEST_CHECK(*status == 0xee, "the read-only status byte was not written (0x%x)", *status);

    *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_IN, .sector = 0 };
    *status = 0xff;
    set_desc(0, hdr, 8, VIRTQ_DESC_F_NEXT);
    set_desc(1, buf, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
    set_desc(2, (void *)status, 1, VIRTQ_DESC_F_WRITE);
    submit();
    judge("8-byte request header", status, false);

    *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_IN, .sector = 0 };
    *status = 0xff;
    set_desc(0, hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT);
    set_desc(1, buf, 100, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
    set_desc(2, (void *)status, 1, VIRTQ_DESC_F_WRITE);
    submit();
    judge("read of 100 bytes", status, false);

    *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_OUT, .sector = 1ull << 62 };
    *status = 0xff;
    set_desc(0, hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT);
    set_desc(1, buf, 512, VIRTQ_DESC_F_NEXT);
    set_desc(2, (void *)status, 1, VIRTQ_DESC_F_WRITE);
    submit();
    judge("write at sector 2^62", status, false);

    *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_OUT, .sector = cap - 1 };
    *status = 0xff;
    set_desc(0, hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT);
    set_desc(1, buf, 1024, VIRTQ_DESC_F_NEXT);
    set_desc(2, (void *)status, 1, VIRTQ_DESC_F_WRITE);
    submit();
    judge("write across the end of the disk", status, false);

    if (vd.features & VIRTIO_BLK_F_DISCARD) {
        *range = (VirtioBlkRange){ .sector = cap - 1, .num_sectors = 0xffffffffu };
        *hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_DISCARD };
        *status = 0xff;
        set_desc(0, hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT);
        set_desc(1, range, sizeof(*range), VIRTQ_DESC_F_NEXT);
        set_desc(2, (void *)status, 1, VIRTQ_DESC_F_WRITE);
        submit();
        judge("discard past the end", status, false);
    }
    /* Reset with reads in flight: once the status reads 0 the device must not touch the
     * rings or the buffers any more (a late completion would land in freed memory). */
    uint8_t *big = guest_alloc(16 * 65536, 4096, false);
    VirtioBlkReq *many = guest_alloc(16 * sizeof(VirtioBlkReq), 64, true);
    GUEST_CHECK(big && many, "buffers for 16 x 64 KiB reads");
    for (unsigned i = 0; i < 16; i++) {
        many[i].hdr = (VirtioBlkHdr){ .type = VIRTIO_BLK_T_IN, .sector = i * 128 };
        many[i].status = 0xff;
        VirtioBuf b[3] = { { &many[i].hdr, sizeof(many[i].hdr), false },
                           { big + i * 65536, 65536, true },
                           { &many[i].status, 1, true } };
        virtq_add_indirect(&vd.vq[0], many[i].table, b, 3);
    }
    virtq_kick(&vd.vq[0]);
    GUEST_CHECK(virtio_reset(&vd), "reset with 16 reads in flight completes");
    volatile VirtqUsed *used = vd.vq[0].used;
    memset((void *)used, 0x5a, 6 + 8 * vd.vq[0].size);
    for (unsigned i = 0; i < 16; i++) {
        memset(big + i * 65536, 0x5a, 512);
        many[i].status = 0x5a;
    }
    for (unsigned i = 0; i < 20000; i++) {
        guest_io_delay();
    }
    bool still = canary_ok((const uint8_t *)used, 6 + 8 * vd.vq[0].size, 0x5a);
    for (unsigned i = 0; i < 16; i++) {
        still &= canary_ok(big + i * 65536, 512, 0x5a) && many[i].status == 0x5a;
    }
    GUEST_CHECK(still, "nothing written into the rings or buffers after the reset");
    fresh();
    for (unsigned i = 0; i < 512; i++) {
        buf[i] = (uint8_t)(i ^ 0x96);
    }
    VirtioBuf w = { buf, 512, false };
    GUEST_CHECK(vblk_request(&vd, r, VIRTIO_BLK_T_OUT, 1000, &w, 1, false, NULL) ==
                    VIRTIO_BLK_S_OK,
                "the device works after that reset");
    guest_printf("virtio-hostile-blk ok\n");
    guest_pass();
}
