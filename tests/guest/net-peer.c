/*
 * Two VMs on one private network (-netdev socket): each broadcasts frames of a local
 * experimental EtherType carrying its MAC until it has heard a frame from another MAC,
 * then keeps sending for a while so the other side hears it too.  Run in pairs by
 * tests/functional/test_net_socket.py.
 */
#include "lib/guest.h"
#include "lib/virtio-net.h"

#define ETH_P_SEN 0x88b5
#define SECOND 125000

static GuestNet net;
static uint8_t rx[GNET_BUF_SIZE], tx[64];
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    uint8_t other[6] = { 0 };
    bool heard = false;

    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(gnet_init(&net, devs, n, 0, 0), "virtio-net up, MAC "
                "%02x:%02x:%02x:%02x:%02x:%02x", net.mac[0], net.mac[1], net.mac[2],
                net.mac[3], net.mac[4], net.mac[5]);
    eth_fill(tx, bcast, net.mac, ETH_P_SEN);
    memcpy(tx + ETH_HLEN, "sen-peer", 8);
    memcpy(tx + ETH_HLEN + 8, net.mac, 6);
    /* Up to 3000 rounds of 0.1 s or less to meet the other VM, then 20 more of sending
     * for its sake (a round is much shorter on a fast host: the count is generous). */
    for (unsigned round = 0, after = 0; round < 3000 && after < 20; round++) {
        gnet_send(&net, tx, 60);
        int len = gnet_recv(&net, rx, sizeof(rx), SECOND / 10);
        while (len > 0) {
            if (len >= ETH_HLEN + 14 && get16(rx + 12) == ETH_P_SEN &&
                memcmp(rx + ETH_HLEN, "sen-peer", 8) == 0 &&
                memcmp(rx + ETH_HLEN + 8, net.mac, 6) != 0 && !heard) {
                heard = true;
                memcpy(other, rx + ETH_HLEN + 8, 6);
            }
            len = gnet_recv(&net, rx, sizeof(rx), 0);
        }
        after += heard;
    }
    GUEST_CHECK(heard, "heard the peer %02x:%02x:%02x:%02x:%02x:%02x", other[0], other[1],
                other[2], other[3], other[4], other[5]);
    guest_printf("net-peer ok\n");
    guest_pass();
}
