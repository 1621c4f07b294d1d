/*
 * A guest that keeps writing its disk across a live migration
 * (tests/functional/test_migration_blk_guest.py): numbered 512-byte blocks, block k at
 * sector 8k, one request at a time, every ~10 ms.  A block counts as acknowledged when
 * the device completed its write with status OK.  When 'v' arrives on COM1 (sent to the
 * destination after the migration) it writes a few more blocks there, flushes, and reads
 * every acknowledged block back: each must hold its own number and pattern.  The host
 * then checks the image too.  CPL0 work stays tiny: 64 words filled or compared per
 * block.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define SECOND 125000 /* guest_io_delay() periods in about a second on any host */
#define MAX_BLOCKS 4096 /* sectors 0..32760: inside the test's 64 MiB disk */
#define AFTER 16        /* blocks written on the destination before the check */
#define MAGIC 0x53454e424c4b4d47ull /* "SENBLKMG" */
#define BALLAST (1u << 20)

/* Must match block_words() in test_migration_blk_guest.py. */
static uint64_t word(uint32_t k, unsigned i)
{
    return i == 0 ? MAGIC : i == 1 ? k : (uint64_t)k * 0x9e3779b97f4a7c15ull + i;
}

static bool console_has(char c)
{
    return (inb(0x3fd) & 1) && inb(0x3f8) == c;
}

static uint8_t write_block(VirtioDev *vd, VirtioBlkReq *r, uint64_t *buf, uint32_t k)
{
    for (unsigned i = 0; i < 64; i++) {
        buf[i] = word(k, i);
    }
    VirtioBuf wr = { buf, 512, false };
    return vblk_request(vd, r, VIRTIO_BLK_T_OUT, (uint64_t)k * 8, &wr, 1, false, NULL);
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    VirtioBlkReq *r = guest_alloc(sizeof(*r), 64, true);
    uint64_t *buf = guest_alloc(512, 4096, false);
    GUEST_CHECK(r && buf, "buffers allocated");
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd), "virtio-blk found");
    GUEST_CHECK(virtio_init(&vd, VIRTIO_BLK_F_FLUSH) && virtio_setup_queue(&vd, 0, 8, 0),
                "virtio-blk initialised");
    virtio_driver_ok(&vd);
    GUEST_CHECK(vd.features & VIRTIO_BLK_F_FLUSH, "the disk offers FLUSH");
    /* Pages that are not zero, so that a bandwidth-limited pre-copy takes a while and
     * the test can see writes happen during it: one word per page is enough. */
    uint64_t *ballast = guest_alloc(BALLAST, 4096, false);
    GUEST_CHECK(ballast, "%u MiB of ballast", BALLAST >> 20);
    for (unsigned p = 0; p < BALLAST / 8; p += 512) {
        ballast[p] = MAGIC + p;
    }

    /* acked: blocks 0..acked-1 were written and completed with OK. */
    uint32_t acked = 0;
    guest_printf("blk-migrate: writing\n");
    while (!console_has('v')) {
        if (acked < MAX_BLOCKS) {
            uint8_t st = write_block(&vd, r, buf, acked);
            if (st != VIRTIO_BLK_S_OK) {
                guest_fail("write of block %u: status %u", acked, st);
            }
            acked++;
        }
        guest_delay(SECOND / 100);
    }
    uint32_t before = acked;
    for (unsigned i = 0; i < AFTER && acked < MAX_BLOCKS; i++, acked++) {
        uint8_t st = write_block(&vd, r, buf, acked);
        if (st != VIRTIO_BLK_S_OK) {
            guest_fail("write of block %u on the destination: status %u", acked, st);
        }
    }
    uint8_t st = vblk_request(&vd, r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "flush: status %u", st);
    for (uint32_t k = 0; k < acked; k++) {
        for (unsigned i = 0; i < 64; i++) {
            buf[i] = 0;
        }
        VirtioBuf rd = { buf, 512, true };
        st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, (uint64_t)k * 8, &rd, 1, false, NULL);
        if (st != VIRTIO_BLK_S_OK) {
            guest_fail("read of block %u: status %u", k, st);
        }
        for (unsigned i = 0; i < 64; i++) {
            if (buf[i] != word(k, i)) {
                guest_fail("block %u word %u: 0x%lx, want 0x%lx", k, i, buf[i], word(k, i));
            }
        }
    }
    guest_printf("blk-migrate: %u blocks before the check, %u in all, read back\n", before,
                 acked);
    guest_pass();
}
