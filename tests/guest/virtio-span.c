/*
 * virtio-blk buffers across the seam between two NUMA nodes' memory backends
 * (run-guest.py --numa: -m 64M as two 32 MiB memdevs, so the VMM has two RAM regions
 * meeting at 32 MiB; the guest sees one stretch of RAM, as on hardware).  Requests whose
 * data or header straddle the seam must work and the data must arrive intact: write
 * sectors 600-607 from a 4 KiB buffer across the seam, read them back into another
 * buffer across it, read them again with the request header across it, and (host-side,
 * run-guest.py) find the pattern on the disk.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define SPAN_SECTOR 600

static uint8_t pat(unsigned i)
{
    return (uint8_t)(i * 11 + (i >> 9) * 3 + 0x42); /* must match span_pattern() */
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    uint64_t seam_mb = 0;
    GUEST_CHECK(cmdline_get_uint("seam_mb", &seam_mb) && seam_mb >= 16,
                "NUMA seam at %lu MiB", seam_mb);
    uintptr_t seam = (uintptr_t)seam_mb << 20;
    /* Fixed addresses around the seam, above everything the kit allocates. */
    uint8_t *probe = guest_alloc(64, 64, false);
    GUEST_CHECK(probe && (uintptr_t)probe + (64u << 10) < seam - 0x4000,
                "the seam lies above the kit's allocations (%p)", probe);
    /* Data buffers across the seam; later a request whose header (bytes 4-19 of the
     * request) runs from 8 bytes below it.  One at a time: they overlap. */
    uint8_t *wbuf = (uint8_t *)(seam - 1536), *rbuf = (uint8_t *)(seam - 2900);
    VirtioBlkReq *r = guest_alloc(sizeof(*r), 64, true);
    uint8_t *low = guest_alloc(4096, 4096, false);
    GUEST_CHECK(r && low, "request and buffer allocated");

    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs assigned");
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd), "virtio-blk found");
    GUEST_CHECK(virtio_init(&vd, VIRTIO_BLK_F_FLUSH) && virtio_setup_queue(&vd, 0, 16, 0),
                "virtio-blk initialised");
    virtio_driver_ok(&vd);

    for (unsigned i = 0; i < 4096; i++) {
        wbuf[i] = pat(i);
    }
    VirtioBuf w = { wbuf, 4096, false };
    uint8_t st = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, SPAN_SECTOR, &w, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "write of sectors 600-607 from a buffer across the "
                "seam (status %u)", st);

    memset(rbuf, 0, 4096);
    uint32_t used = 0;
    VirtioBuf rd = { rbuf, 4096, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, SPAN_SECTOR, &rd, 1, false, &used);
    unsigned bad = 4096;
    for (unsigned i = 0; i < 4096 && bad == 4096; i++) {
        if (rbuf[i] != pat(i)) {
            bad = i;
        }
    }
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && bad == 4096,
                "read back across the seam intact (status %u, used %u, first bad byte %u)", st,
                used, bad);

    VirtioBlkReq *rs = (VirtioBlkReq *)(seam - 12);
    memset(rs, 0, sizeof(*rs));
    memset(low, 0, 4096);
    VirtioBuf rl = { low, 4096, true };
    st = vblk_request(&vd, rs, VIRTIO_BLK_T_IN, SPAN_SECTOR, &rl, 1, false, &used);
    bad = 4096;
    for (unsigned i = 0; i < 4096 && bad == 4096; i++) {
        if (low[i] != pat(i)) {
            bad = i;
        }
    }
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && bad == 4096,
                "read with the request header across the seam (status %u, first bad byte %u)",
                st, bad);
    virtio_reset(&vd);
    guest_printf("virtio-span ok\n");
    guest_pass();
}
