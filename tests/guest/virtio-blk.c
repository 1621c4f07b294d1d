/*
 * virtio-blk through the modern virtio-pci transport, on a raw image the runner made
 * (run-guest.py --disk): it pre-filled sector 100 with a host pattern and sectors 300-301
 * with 0xee, and checks afterwards, host-side, that the sectors written here hold the
 * guest pattern and that the write-zeroes range is zero.  Writes use a one-descriptor
 * chain, a multi-descriptor chain with uneven pieces, and an indirect table; reads come
 * back through a different split.  Also flush, discard, get-id, an unsupported request
 * type, a read beyond the end, and MSI-X interrupts for completions.  The disk has
 * num-queues=2: a read on queue 1 must work too.  A second, read-only disk (serial
 * sen-guest-ro, a host pattern in sector 0) must offer RO, read, and refuse writes.
 * The disks are told apart by their get-id serial, not by slot order.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define BLK_VECTOR 0x50
#define DISK_SECTORS_DEFAULT 16384 /* run-guest.py --disk: 8 MiB */

static volatile uint32_t irqs;

static void blk_irq(IntrFrame *f)
{
    (void)f;
    irqs++;
    lapic_eoi();
}

/* Must match guest_pattern() in run-guest.py. */
static uint8_t pat(uint64_t sector, unsigned i)
{
    return (uint8_t)(sector * 7 + (i / 512) * 7 + (i % 512) * 13 + 0x21);
}

static void fill(uint8_t *buf, uint64_t sector, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        buf[i] = pat(sector, i);
    }
}

static bool check(const uint8_t *buf, uint64_t sector, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        if (buf[i] != pat(sector, i)) {
            guest_printf("sector %lu byte %u: 0x%x, want 0x%x\n", sector + i / 512, i % 512,
                         buf[i], pat(sector, i));
            return false;
        }
    }
    return true;
}

/* The virtio-blk function whose get-id starts with `serial`: a throw-away initialisation
 * with one small queue asks each in turn; the device is left reset. */
static bool find_blk(const PciDev *devs, unsigned n, const char *serial, VirtioDev *vd,
                     VirtioBlkReq *r, uint8_t *buf)
{
    for (unsigned nth = 0; nth < 4 && virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, nth, vd); nth++) {
        if (!virtio_init(vd, 0) || !virtio_setup_queue(vd, 0, 8, 0)) {
            continue;
        }
        virtio_driver_ok(vd);
        memset(buf, 0, 21);
        VirtioBuf id = { buf, 20, true };
        r->queue = 0;
        uint8_t st = vblk_request(vd, r, VIRTIO_BLK_T_GET_ID, 0, &id, 1, false, NULL);
        virtio_reset(vd);
        if (st == VIRTIO_BLK_S_OK && memcmp(buf, serial, strlen(serial)) == 0) {
            return true;
        }
    }
    return false;
}

static void read_only_disk(const PciDev *devs, unsigned n, VirtioBlkReq *r, uint8_t *buf)
{
    static VirtioDev ro;
    GUEST_CHECK(find_blk(devs, n, "sen-guest-ro", &ro, r, buf), "read-only disk found at %02x.%x",
                ro.pci.dev, ro.pci.fn);
    GUEST_CHECK(virtio_init(&ro, VIRTIO_BLK_F_RO | VIRTIO_BLK_F_FLUSH) &&
                    virtio_setup_queue(&ro, 0, 8, 0),
                "read-only disk initialised");
    virtio_driver_ok(&ro);
    GUEST_CHECK(ro.features & VIRTIO_BLK_F_RO, "read-only disk offers RO");
    r->queue = 0;
    VirtioBuf rd = { buf, 512, true };
    uint8_t st = vblk_request(&ro, r, VIRTIO_BLK_T_IN, 0, &rd, 1, false, NULL);
    bool ok = true;
    for (unsigned i = 0; i < 512; i++) {
        ok &= buf[i] == (uint8_t)(i * 5 + 0x3c);
    }
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && ok, "read-only disk: sector 0 has the host pattern");
    memset(buf, 0x77, 512);
    VirtioBuf wr = { buf, 512, false };
    st = vblk_request(&ro, r, VIRTIO_BLK_T_OUT, 0, &wr, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP,
                "read-only disk refuses a write (status %u)", st);
    virtio_reset(&ro);
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    guest_printf("pci: %u functions on bus 0\n", n);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs assigned");
    VirtioBlkReq *r = guest_alloc(sizeof(*r), 64, true);
    uint8_t *buf = guest_alloc(8192, 4096, false);
    uint8_t *buf2 = guest_alloc(8192, 4096, false);
    GUEST_CHECK(r && buf && buf2, "buffers allocated");
    GUEST_CHECK(find_blk(devs, n, "sen-guest-disk", &vd, r, buf), "virtio-blk found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    uint64_t want = VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES |
                    VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_SEG_MAX | VIRTIO_F_INDIRECT_DESC |
                    VIRTIO_BLK_F_MQ;
    GUEST_CHECK(virtio_init(&vd, want), "features negotiated: device 0x%lx, driver 0x%lx",
                vd.device_features, vd.features);
    GUEST_CHECK(vd.msix_entries >= 3, "MSI-X table with %u entries", vd.msix_entries);
    GUEST_CHECK((vd.features & VIRTIO_BLK_F_MQ) && virtio_cfg_read16(&vd, 34) == 2,
                "MQ with num_queues %u", virtio_cfg_read16(&vd, 34));

    pic_disable();
    lapic_enable();
    idt_set_handler(BLK_VECTOR, blk_irq);
    GUEST_CHECK(virtio_setup_queue(&vd, 0, 64, BLK_VECTOR), "queue 0 set up, size %u",
                vd.vq[0].size);
    GUEST_CHECK(virtio_setup_queue(&vd, 1, 16, BLK_VECTOR), "queue 1 set up, size %u",
                vd.vq[1].size);
    virtio_driver_ok(&vd);
    sti();

    uint64_t sectors = DISK_SECTORS_DEFAULT;
    cmdline_get_uint("disk_sectors", &sectors);
    uint64_t cap = virtio_cfg_read64(&vd, 0);
    GUEST_CHECK(cap == sectors, "capacity %lu sectors", cap);

    uint32_t used;

    /* get-id */
    memset(buf, 0, 20);
    VirtioBuf id = { buf, 20, true };
    uint8_t st = vblk_request(&vd, r, VIRTIO_BLK_T_GET_ID, 0, &id, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && memcmp(buf, "sen-guest-disk", 15) == 0,
                "get-id: status %u, id '%s'", st, (char *)buf);

    /* The host pattern in sector 100 proves reads come from the file. */
    VirtioBuf rd = { buf, 512, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 100, &rd, 1, false, &used);
    bool host_ok = true;
    for (unsigned i = 0; i < 512; i++) {
        host_ok &= buf[i] == (uint8_t)(i * 3 + 0x5a);
    }
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && host_ok, "read sector 100: host pattern (used len %u)",
                used);

    /* One data descriptor. */
    fill(buf, 0, 512);
    VirtioBuf w0 = { buf, 512, false };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, 0, &w0, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "write sector 0");
    memset(buf2, 0, 512);
    VirtioBuf r0 = { buf2, 512, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 0, &r0, 1, false, &used);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && check(buf2, 0, 512), "read back sector 0 (used %u)",
                used);

    /* Sectors 10-17 in three uneven pieces, read back in two. */
    fill(buf, 10, 4096);
    VirtioBuf wm[3] = { { buf, 512, false }, { buf + 512, 2560, false },
                        { buf + 3072, 1024, false } };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, 10, wm, 3, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "write sectors 10-17 from a 5-descriptor chain");
    memset(buf2, 0, 4096);
    VirtioBuf rm[2] = { { buf2, 2048, true }, { buf2 + 2048, 2048, true } };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 10, rm, 2, false, &used);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && check(buf2, 10, 4096),
                "read back sectors 10-17 in two pieces (used %u)", used);

    /* Sectors 40-47 through an indirect table of eight 512-byte pieces. */
    bool indirect = vd.features & VIRTIO_F_INDIRECT_DESC;
    GUEST_CHECK(indirect, "device offers INDIRECT_DESC");
    fill(buf, 40, 4096);
    VirtioBuf wi[8];
    for (unsigned i = 0; i < 8; i++) {
        wi[i] = (VirtioBuf){ buf + 512 * i, 512, false };
    }
    st = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, 40, wi, 8, true, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "indirect write of sectors 40-47");
    memset(buf2, 0, 4096);
    VirtioBuf ri = { buf2, 4096, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 40, &ri, 1, true, &used);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && check(buf2, 40, 4096),
                "indirect read back of sectors 40-47 (used %u)", used);

    r->queue = 1;
    memset(buf2, 0, 4096);
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 10, &ri, 1, false, &used);
    r->queue = 0;
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && check(buf2, 10, 4096),
                "read of sectors 10-17 on queue 1 (used %u)", used);

    GUEST_CHECK(vd.features & VIRTIO_BLK_F_FLUSH, "device offers FLUSH");
    st = vblk_request(&vd, r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "flush");

    GUEST_CHECK(vd.features & VIRTIO_BLK_F_WRITE_ZEROES, "device offers WRITE_ZEROES");
    r->range = (VirtioBlkRange){ .sector = 300, .num_sectors = 2 };
    VirtioBuf wz = { &r->range, sizeof(r->range), false };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_WRITE_ZEROES, 0, &wz, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "write-zeroes sectors 300-301");
    memset(buf2, 0xaa, 1024);
    VirtioBuf rz = { buf2, 1024, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, 300, &rz, 1, false, NULL);
    bool zero = true;
    for (unsigned i = 0; i < 1024; i++) {
        zero &= buf2[i] == 0;
    }
    GUEST_CHECK(st == VIRTIO_BLK_S_OK && zero, "sectors 300-301 read back as zeroes");

    GUEST_CHECK(vd.features & VIRTIO_BLK_F_DISCARD, "device offers DISCARD");
    r->range = (VirtioBlkRange){ .sector = 512, .num_sectors = 8 };
    VirtioBuf dc = { &r->range, sizeof(r->range), false };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_DISCARD, 0, &dc, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_OK, "discard sectors 512-519");

    st = vblk_request(&vd, r, 0x7f, 0, NULL, 0, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_UNSUPP, "request type 0x7f: UNSUPP (%u)", st);
    VirtioBuf rb = { buf2, 512, true };
    st = vblk_request(&vd, r, VIRTIO_BLK_T_IN, cap, &rb, 1, false, NULL);
    GUEST_CHECK(st == VIRTIO_BLK_S_IOERR, "read at sector %lu (the end): IOERR (%u)", cap, st);

    for (unsigned i = 0; i < 10000 && irqs == 0; i++) {
        guest_io_delay();
    }
    cli();
    GUEST_CHECK(irqs > 0, "%u completion interrupts through MSI-X", irqs);
    GUEST_CHECK(!(virtio_get_status(&vd) & VIRTIO_STATUS_NEEDS_RESET), "no NEEDS_RESET");
    read_only_disk(devs, n, r, buf);
    guest_printf("virtio-blk ok\n");
    guest_pass();
}
