/*
 * One 4 KiB write to the first virtio-blk disk at 1 MiB, then a read of it back; prints
 * each status and whether the read found the written bytes.  tests/functional/
 * test_block_werror.py puts the disk's image on a full filesystem, so that the write
 * fails with ENOSPC, and checks what each werror= action makes of it, under Sen and
 * QEMU: report (status 1), ignore (status 0, the bytes never reached the disk), stop
 * (the VM stops with the request held; the test frees space and continues the VM, and
 * the retried write completes with status 0 and the bytes read back).  Then it prints
 * "blk-werror: done" and halts, so that the test collects the events before it ends the
 * VMM.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define SECTOR ((1ull << 20) / 512)
#define LEN 4096

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs assigned");
    VirtioBlkReq *r = guest_alloc(sizeof(*r), 64, true);
    uint8_t *buf = guest_alloc(LEN, 4096, false);
    GUEST_CHECK(r && buf, "buffers allocated");
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd), "virtio-blk found");
    GUEST_CHECK(virtio_init(&vd, 0) && virtio_setup_queue(&vd, 0, 8, 0), "virtio-blk set up");
    virtio_driver_ok(&vd);
    r->queue = 0;

    for (unsigned i = 0; i < LEN; i++) {
        buf[i] = (uint8_t)(i * 7 + 3);
    }
    VirtioBuf out = { buf, LEN, false };
    uint8_t st = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, SECTOR, &out, 1, false, NULL);
    guest_printf("blk-werror: write status %u\n", st);

    memset(buf, 0, LEN);
    VirtioBuf in = { buf, LEN, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, SECTOR, &in, 1, false, NULL);
    bool same = true;
    for (unsigned i = 0; i < LEN; i++) {
        same = same && buf[i] == (uint8_t)(i * 7 + 3);
    }
    guest_printf("blk-werror: read status %u, data %s\n", st, same ? "written" : "not written");
    guest_printf("blk-werror: done\n");
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
