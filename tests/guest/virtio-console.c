/*
 * virtio-console (port 0, no MULTIPORT): a greeting goes out on the transmit queue to a
 * socket chardev; run-guest.py echoes it back and the receive queue must deliver the
 * same bytes (possibly split over several buffers).
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define RX_BUFS 8
#define RX_LEN 64

static const char greeting[] = "hello from virtio-console\n";

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_CONSOLE, 0, &vd),
                "virtio-console found at %02x.%x", vd.pci.dev, vd.pci.fn);
    GUEST_CHECK(virtio_init(&vd, 0), "features negotiated: 0x%lx", vd.features);
    GUEST_CHECK(virtio_setup_queue(&vd, 0, 16, 0) && virtio_setup_queue(&vd, 1, 16, 0),
                "receive and transmit queues set up");
    uint8_t *rx = guest_alloc(RX_BUFS * RX_LEN, 64, true);
    for (unsigned i = 0; i < RX_BUFS; i++) {
        VirtioBuf b = { rx + i * RX_LEN, RX_LEN, true };
        virtq_add(&vd.vq[0], &b, 1);
    }
    virtio_driver_ok(&vd);
    virtq_kick(&vd.vq[0]);

    char *tx = guest_alloc(sizeof(greeting), 64, false);
    memcpy(tx, greeting, sizeof(greeting) - 1);
    VirtioBuf t = { tx, sizeof(greeting) - 1, false };
    virtq_add(&vd.vq[1], &t, 1);
    virtq_kick(&vd.vq[1]);
    uint32_t id, len;
    GUEST_CHECK(virtq_wait(&vd.vq[1], &id, &len, 200000), "transmit buffer used");

    char got[64];
    unsigned have = 0;
    for (unsigned i = 0; i < 400000 && have < sizeof(greeting) - 1; i++) {
        if (virtq_poll(&vd.vq[0], &id, &len)) {
            if (id >= RX_BUFS || len > RX_LEN) {
                guest_fail("receive queue returned id %u, len %u", id, len);
            }
            for (unsigned k = 0; k < len && have < sizeof(got); k++) {
                got[have++] = rx[id * RX_LEN + k];
            }
            VirtioBuf b = { rx + id * RX_LEN, RX_LEN, true };
            virtq_add(&vd.vq[0], &b, 1);
            virtq_kick(&vd.vq[0]);
        } else {
            guest_io_delay();
        }
    }
    GUEST_CHECK(have == sizeof(greeting) - 1 && memcmp(got, greeting, have) == 0,
                "echo came back (%u bytes)", have);
    guest_printf("virtio-console ok\n");
    guest_pass();
}
