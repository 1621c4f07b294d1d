/*
 * virtio-net to a host address: ARP for host_ip= (from the command line, as 0x hex) from
 * guest_ip= until the host answers.  Used by tests/functional/test_net_tap.py, where the
 * host side is a TAP interface the test configured in its own network namespace.
 */
#include "lib/guest.h"
#include "lib/virtio-net.h"

#define SECOND 125000

static GuestNet net;
static uint8_t rx[GNET_BUF_SIZE], tx[64];
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    uint64_t host_ip, guest_ip;
    bool answered = false;

    GUEST_CHECK(cmdline_get_uint("host_ip", &host_ip) && cmdline_get_uint("guest_ip", &guest_ip),
                "host_ip=0x%lx guest_ip=0x%lx", host_ip, guest_ip);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(gnet_init(&net, devs, n, 0, 0), "virtio-net up");
    unsigned flen = arp_build(tx, 1, net.mac, (uint32_t)guest_ip, bcast, (uint32_t)host_ip);
    for (unsigned round = 0; round < 3000 && !answered; round++) {
        gnet_send(&net, tx, flen);
        int len = gnet_recv(&net, rx, sizeof(rx), SECOND / 10);
        while (len > 0 && !answered) {
            answered = len >= ETH_HLEN + 28 && get16(rx + 12) == ETH_P_ARP &&
                       get16(rx + ETH_HLEN + 6) == 2 &&
                       get32(rx + ETH_HLEN + 14) == (uint32_t)host_ip;
            len = gnet_recv(&net, rx, sizeof(rx), 0);
        }
    }
    GUEST_CHECK(answered, "ARP reply from the host address");
    guest_printf("net-arp ok\n");
    guest_pass();
}
