/*
 * Streaming benchmark guest for tests/bench/blk: keeps `depth` requests of `req_kb` KiB
 * in flight on virtio-blk queue 0, first writing the whole disk (bench_mb MiB) once, then
 * reading it `passes` times.  It prints a line at each phase boundary and the host times
 * the gaps; the guest has no clock it could trust.  Polls the used ring (no interrupts):
 * guest kernel code is emulated on this host, so the fewer instructions per request the
 * more the figure measures the VMM.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define MAX_DEPTH 128

typedef struct {
    VirtioBlkHdr hdr;
    VirtqDesc table[3];
    uint8_t status;
    uint8_t *data;
} Slot;

static VirtioDev vd;
static Slot slots[MAX_DEPTH];
static int16_t head_slot[1024];

static void submit(Slot *s, unsigned idx, uint32_t type, uint64_t sector, uint32_t bytes,
                   bool indirect)
{
    s->hdr = (VirtioBlkHdr){ .type = type, .sector = sector };
    s->status = 0xff;
    VirtioBuf b[3] = { { &s->hdr, sizeof(s->hdr), false },
                       { s->data, bytes, type == VIRTIO_BLK_T_IN },
                       { &s->status, 1, true } };
    int head = indirect ? virtq_add_indirect(&vd.vq[0], s->table, b, 3)
                        : virtq_add(&vd.vq[0], b, 3);
    if (head < 0 || head >= 1024) {
        guest_fail("bench: no room in the queue for request %u", idx);
    }
    head_slot[head] = idx;
}

/* Streams `total` requests over the disk, wrapping; returns false on a device error. */
static void stream(uint32_t type, uint64_t total, unsigned depth, uint32_t bytes,
                   uint64_t disk_sectors, bool indirect)
{
    uint64_t next_sector = 0, submitted = 0, done = 0;
    uint32_t step = bytes / 512;
    for (unsigned i = 0; i < depth && submitted < total; i++, submitted++) {
        submit(&slots[i], i, type, next_sector, bytes, indirect);
        next_sector = (next_sector + step) % disk_sectors;
    }
    virtq_kick(&vd.vq[0]);
    while (done < total) {
        uint32_t id, len;
        bool any = false;
        while (virtq_poll(&vd.vq[0], &id, &len)) {
            any = true;
            if (id >= 1024 || head_slot[id] < 0) {
                guest_fail("bench: used id %u is not in flight", id);
            }
            unsigned si = head_slot[id];
            head_slot[id] = -1;
            if (slots[si].status != VIRTIO_BLK_S_OK) {
                guest_fail("bench: request on slot %u failed with status %u", si,
                           slots[si].status);
            }
            done++;
            if (submitted < total) {
                submit(&slots[si], si, type, next_sector, bytes, indirect);
                next_sector = (next_sector + step) % disk_sectors;
                submitted++;
            }
        }
        if (any) {
            virtq_kick(&vd.vq[0]);
        }
        if (virtio_get_status(&vd) & VIRTIO_STATUS_NEEDS_RESET) {
            guest_fail("bench: device needs a reset");
        }
    }
}

void guest_main(void)
{
    static PciDev devs[32];
    uint64_t depth = 64, req_kb = 1024, passes = 2;
    cmdline_get_uint("depth", &depth);
    cmdline_get_uint("req_kb", &req_kb);
    cmdline_get_uint("passes", &passes);
    if (depth > MAX_DEPTH || depth == 0 || req_kb == 0 || req_kb > 4096) {
        guest_fail("bench: bad depth=%lu or req_kb=%lu", depth, req_kb);
    }
    unsigned n = pci_scan_bus0(devs, 32);
    if (!pci_assign_bars(devs, n) || !virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd) ||
        !virtio_init(&vd, VIRTIO_F_INDIRECT_DESC) || !virtio_setup_queue(&vd, 0, 256, 0)) {
        guest_fail("bench: no usable virtio-blk");
    }
    virtio_driver_ok(&vd);
    bool indirect = vd.features & VIRTIO_F_INDIRECT_DESC;
    if (!indirect && depth * 3 > vd.vq[0].size) {
        depth = vd.vq[0].size / 3;
    }
    uint32_t bytes = req_kb * 1024;
    for (unsigned i = 0; i < depth; i++) {
        slots[i].data = guest_alloc(bytes, 4096, false);
        if (!slots[i].data) {
            guest_fail("bench: no RAM for %lu x %u bytes", depth, bytes);
        }
    }
    for (unsigned i = 0; i < 1024; i++) {
        head_slot[i] = -1;
    }
    uint64_t sectors = virtio_cfg_read64(&vd, 0);
    uint64_t per_pass = sectors * 512 / bytes;
    guest_printf("bench: %lu requests of %u KiB in flight, queue %u, %s, disk %lu MiB\n", depth,
                 bytes / 1024, vd.vq[0].size, indirect ? "indirect" : "direct",
                 sectors >> 11);
    guest_printf("bench: write start\n");
    stream(VIRTIO_BLK_T_OUT, per_pass, depth, bytes, sectors, indirect);
    guest_printf("bench: write done %lu MiB\n", per_pass * bytes >> 20);
    stream(VIRTIO_BLK_T_IN, per_pass * passes, depth, bytes, sectors, indirect);
    guest_printf("bench: read done %lu MiB\n", per_pass * passes * bytes >> 20);
    guest_pass();
}
