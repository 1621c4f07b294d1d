/*
 * Touches the sector at 512 MiB of the first virtio-blk disk: read, write, write again,
 * read, then reads sector 0 (healthy and unallocated in the test's images), and prints
 * each status.  (The corruption is not put at sector 0: QEMU reads that itself when the
 * device is created, to guess a geometry, before a QMP client could hear of it.)
 * tests/functional/test_block_corrupted.py gives it a qcow2 image crafted so that these
 * accesses find the image corrupt (an L2 entry aimed at the L1 table, an unaligned L2
 * table offset) and compares the events Sen and QEMU send; the statuses show what the
 * guest saw (after a fatal corruption QEMU fails every request, sector 0's too).  Then
 * it prints "blk-corrupt: done" and halts, so that the test collects the events before
 * it ends the VMM (QEMU drops events still queued when isa-debug-exit ends it).
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define SECTOR ((512ull << 20) / 512)

static uint8_t access_sector(VirtioDev *vd, VirtioBlkReq *r, uint8_t *buf, uint32_t type,
                             uint64_t sector)
{
    VirtioBuf data = { buf, 512, type == VIRTIO_BLK_T_IN };
    uint8_t st = vblk_request(vd, r, type, sector, &data, 1, false, NULL);
    guest_printf("blk-corrupt: %s sector %lu: status %u\n",
                 type == VIRTIO_BLK_T_IN ? "read" : "write", (unsigned long)sector, st);
    return st;
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs assigned");
    VirtioBlkReq *r = guest_alloc(sizeof(*r), 64, true);
    uint8_t *buf = guest_alloc(4096, 4096, false);
    GUEST_CHECK(r && buf, "buffers allocated");
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd), "virtio-blk found");
    GUEST_CHECK(virtio_init(&vd, 0) && virtio_setup_queue(&vd, 0, 8, 0), "virtio-blk set up");
    virtio_driver_ok(&vd);
    r->queue = 0;
    access_sector(&vd, r, buf, VIRTIO_BLK_T_IN, SECTOR);
    memset(buf, 0x5a, 512);
    access_sector(&vd, r, buf, VIRTIO_BLK_T_OUT, SECTOR);
    access_sector(&vd, r, buf, VIRTIO_BLK_T_OUT, SECTOR);
    access_sector(&vd, r, buf, VIRTIO_BLK_T_IN, SECTOR);
    access_sector(&vd, r, buf, VIRTIO_BLK_T_IN, 0);
    guest_printf("blk-corrupt: done\n");
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
