/*
 * A guest that keeps using its network across a migration: from 10.0.2.15 it ARPs for
 * the gateway 10.0.2.2 every ~50 ms and counts the replies (slirp answers on -netdev user;
 * tests/functional/test_net_migrate.py answers on a -netdev socket link it serves).  Once
 * replies come it prints "net-migrate: exchanging"; when 'v' arrives on COM1 (sent to the
 * destination after the migration) it needs three fresh replies, through the migrated
 * rings, to pass.
 */
#include "lib/guest.h"
#include "lib/virtio-net.h"

#define GUEST_IP IP4(10, 0, 2, 15)
#define GW_IP IP4(10, 0, 2, 2)
#define SECOND 125000 /* guest_io_delay() periods in about a second on any host */
#define WANT 3

static GuestNet net;
static uint8_t rx[GNET_BUF_SIZE], tx[64];
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static bool is_gw_reply(const uint8_t *f, int len)
{
    return len >= ETH_HLEN + 28 && get16(f + 12) == ETH_P_ARP &&
           get16(f + ETH_HLEN + 6) == 2 && get32(f + ETH_HLEN + 14) == GW_IP &&
           memcmp(f + ETH_HLEN + 18, net.mac, 6) == 0;
}

/* One ARP request, then ~50 ms of receiving; the number of gateway replies seen. */
static unsigned exchange(void)
{
    unsigned replies = 0;
    unsigned flen = arp_build(tx, 1, net.mac, GUEST_IP, bcast, GW_IP);

    if (!gnet_send(&net, tx, flen)) {
        guest_fail("the device never took an ARP request back");
    }
    for (unsigned t = 0; t < 5; t++) {
        int len = gnet_recv(&net, rx, sizeof(rx), SECOND / 100);
        if (len < 0) {
            continue;
        }
        if (arp_answer(&net, rx, (unsigned)len, GUEST_IP)) {
            continue;
        }
        replies += is_gw_reply(rx, len);
    }
    return replies;
}

static bool console_has(char c)
{
    return (inb(0x3fd) & 1) && inb(0x3f8) == c;
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32), before = 0, after = 0;

    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(gnet_init(&net, devs, n, 0, 0), "virtio-net up, MAC "
                "%02x:%02x:%02x:%02x:%02x:%02x", net.mac[0], net.mac[1], net.mac[2],
                net.mac[3], net.mac[4], net.mac[5]);
    /* Up to ~60 s to hear the gateway: the count is generous for emulated hosts. */
    for (unsigned round = 0; round < 1200 && before < WANT; round++) {
        before += exchange();
    }
    GUEST_CHECK(before >= WANT, "%u ARP replies from 10.0.2.2", before);
    guest_printf("net-migrate: exchanging\n");
    while (!console_has('v')) {
        exchange();
    }
    guest_printf("net-migrate: verifying\n");
    for (unsigned round = 0; round < 1200 && after < WANT; round++) {
        after += exchange();
    }
    GUEST_CHECK(after >= WANT, "%u ARP replies from 10.0.2.2 after the migration", after);
    guest_printf("net-migrate ok\n");
    guest_pass();
}
