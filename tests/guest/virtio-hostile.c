/*
 * A hostile driver on virtio-rng: descriptor chains that loop, point outside guest RAM or
 * across its end, link beyond the queue size, an avail index that jumps by more than the
 * queue size, a bad indirect table and a read-only buffer for the device to write.  The
 * device must refuse each (NEEDS_RESET, status bit 0x40) or ignore it (no used element,
 * or one with length 0), never write into the read-only buffer, and a reset must bring it
 * back.  Outside RAM a device may also treat the buffer as unassigned memory (QEMU writes
 * into the void and uses the chain), but it must not alias it into RAM: the far address
 * has the low bits of a canary buffer, which must survive.  After every case, after every case a well-formed request returns entropy.  That the VMM survives
 * is proven by the test reaching its end.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define QSIZE 8
#define FAR_AWAY 0x10000000000ull /* 1 TiB: no RAM or MMIO there */

typedef enum { OUT_NEEDS_RESET, OUT_IGNORED, OUT_USED } Outcome;

static VirtioDev vd;
static uint8_t *buf;
static uint64_t ram_end;

static void fresh(void)
{
    if (!virtio_init(&vd, VIRTIO_F_INDIRECT_DESC) || !virtio_setup_queue(&vd, 0, QSIZE, 0)) {
        guest_fail("virtio-rng does not come back after a reset (status 0x%x)",
                   virtio_get_status(&vd));
    }
    virtio_driver_ok(&vd);
}

static Outcome observe(uint32_t *len)
{
    Virtq *vq = &vd.vq[0];
    *len = 0;
    for (unsigned i = 0; i < 5000; i++) {
        if (virtio_get_status(&vd) & VIRTIO_STATUS_NEEDS_RESET) {
            return OUT_NEEDS_RESET;
        }
        if (vq->used->idx != vq->last_used) {
            *len = vq->used->ring[vq->last_used % vq->size].len;
            return OUT_USED;
        }
        guest_io_delay();
    }
    return OUT_IGNORED;
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    vd.vq[0].desc[i] = (VirtqDesc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* Judges one case, then resets the device and checks that a good request works. */
static void judge(const char *what, uint32_t max_used_len)
{
    uint32_t len;
    Outcome o = observe(&len);
    static const char *const names[] = { "NEEDS_RESET", "ignored", "used" };
    guest_printf("hostile: %s: %s (used len %u)\n", what, names[o], len);
    if (o == OUT_USED && len > max_used_len) {
        guest_fail("%s: the device used the chain and reported %u bytes written", what, len);
    }
    if (!virtio_reset(&vd)) {
        guest_fail("%s: the device does not reset (status 0x%x)", what, virtio_get_status(&vd));
    }
    fresh();
    memset(buf, 0, 64);
    VirtioBuf b = { buf, 64, true };
    int head = virtq_add(&vd.vq[0], &b, 1);
    virtq_kick(&vd.vq[0]);
    uint32_t id;
    bool done = head >= 0 && virtq_wait(&vd.vq[0], &id, &len, 200000);
    unsigned nonzero = 0;
    for (unsigned i = 0; i < 64; i++) {
        nonzero += buf[i] != 0;
    }
    GUEST_CHECK(done && len > 0 && nonzero > 0, "after '%s' the reset device works (%u bytes)",
                what, len);
    if (!virtio_reset(&vd)) {
        guest_fail("the device does not reset after a good request");
    }
    fresh();
}

static void submit(uint16_t head)
{
    virtq_publish(&vd.vq[0], head);
    virtq_kick(&vd.vq[0]);
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_RNG, 0, &vd), "virtio-rng found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    uint64_t ram_mb = 64;
    cmdline_get_uint("ram_mb", &ram_mb);
    ram_end = ram_mb << 20;
    buf = guest_alloc(4096, 4096, false);
    VirtqDesc *table = guest_alloc(4096, 4096, true);
    fresh();
    guest_printf("features 0x%lx, queue size %u, RAM ends at 0x%lx\n", vd.features,
                 vd.vq[0].size, ram_end);
    uint16_t qs = vd.vq[0].size;

    set_desc(0, (uintptr_t)buf, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, (uintptr_t)buf + 16, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    submit(0);
    judge("looping chain", 0);

    uint8_t *alias = buf + 1024;
    memset(alias, 0x3c, 64);
    set_desc(0, FAR_AWAY + (uintptr_t)alias, 64, VIRTQ_DESC_F_WRITE, 0);
    submit(0);
    judge("descriptor outside RAM", UINT32_MAX);
    set_desc(0, ram_end - 16, 4096, VIRTQ_DESC_F_WRITE, 0);
    submit(0);
    judge("descriptor across the end of RAM", UINT32_MAX);
    bool kept = true;
    for (unsigned i = 0; i < 64; i++) {
        kept &= alias[i] == 0x3c;
    }
    GUEST_CHECK(kept, "a buffer 1 TiB up was not aliased into RAM");

    set_desc(0, (uintptr_t)buf, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, qs + 3);
    submit(0);
    judge("next beyond the queue size", 0);

    /* All ring slots name a good descriptor, but the index claims more than fit. */
    set_desc(0, (uintptr_t)buf, 16, VIRTQ_DESC_F_WRITE, 0);
    vd.vq[0].avail->idx = qs + 5;
    virtq_kick(&vd.vq[0]);
    judge("avail index jump", 0);

    if (vd.features & VIRTIO_F_INDIRECT_DESC) {
        table[0] = (VirtqDesc){ .addr = (uintptr_t)buf, .len = 16, .flags = VIRTQ_DESC_F_WRITE };
        set_desc(0, (uintptr_t)table, 20, VIRTQ_DESC_F_INDIRECT, 0);
        submit(0);
        judge("indirect table of 20 bytes", 0);
        table[0] = (VirtqDesc){ .addr = (uintptr_t)buf, .len = 16,
                                .flags = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, .next = 0 };
        set_desc(0, (uintptr_t)table, 16, VIRTQ_DESC_F_INDIRECT, 0);
        submit(0);
        judge("indirect chain looping on itself", 0);
    } else {
        guest_printf("hostile: INDIRECT_DESC not offered, indirect cases skipped\n");
    }

    /* The device may only write device-writable buffers: the canary must survive. */
    uint8_t *canary = buf + 2048;
    memset(canary, 0xc5, 64);
    set_desc(0, (uintptr_t)canary, 64, 0, 0);
    submit(0);
    judge("read-only buffer", 0);
    bool intact = true;
    for (unsigned i = 0; i < 64; i++) {
        intact &= canary[i] == 0xc5;
    }
    GUEST_CHECK(intact, "the read-only buffer was not written");
    guest_printf("virtio-hostile ok\n");
    guest_pass();
}
