/*
 * virtio-net on -netdev user (slirp), raw Ethernet only: DHCP hands out 10.0.2.15, the
 * gateway 10.0.2.2 answers ARP and ICMP echo, and UDP datagrams the host sends to a
 * hostfwd port reach a UDP echo here and go back (run-guest.py --net user checks them);
 * then a datagram from a port no rule names reaches the host, which answers it.
 */
#include "lib/guest.h"
#include "lib/virtio-net.h"

#define GUEST_IP IP4(10, 0, 2, 15)
#define GW_IP IP4(10, 0, 2, 2)
#define ECHO_PORT 7777
#define OWN_PORT 7778 /* no hostfwd rule names it: user networking opens a socket of its own */
#define OWN_MSG "sen-own-flow"
#define OWN_REPLY "sen-own-reply"
#define ECHOES 3
#define XID 0x5e4e7001u
#define SECOND 125000 /* guest_io_delay() periods in about a second on any host */

static GuestNet net;
static uint8_t rx[GNET_BUF_SIZE], tx[GNET_BUF_SIZE];
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static uint32_t my_ip; /* 0 until DHCP */
static uint8_t gw_mac[6];
static uint32_t client_ip; /* the host's echo client, as the guest sees it */
static uint16_t client_port;

/* Receives until match() accepts a frame or about `seconds` pass; answers ARP for us. */
static int recv_until(bool (*match)(const uint8_t *f, int len), unsigned seconds)
{
    for (unsigned t = 0; t < seconds * 100; t++) {
        int len = gnet_recv(&net, rx, sizeof(rx), SECOND / 100);
        if (len < 0) {
            continue;
        }
        if (my_ip && arp_answer(&net, rx, (unsigned)len, my_ip)) {
            continue;
        }
        if (match(rx, len)) {
            return len;
        }
    }
    return -1;
}

/* ---- DHCP ---- */

static unsigned dhcp_build(uint8_t type, uint32_t requested)
{
    uint8_t *b = tx + ETH_HLEN + IP_HLEN + UDP_HLEN;
    unsigned o = 240;

    memset(b, 0, 300);
    b[0] = 1; /* BOOTREQUEST */
    b[1] = 1;
    b[2] = 6;
    put32(b + 4, XID);
    put16(b + 10, 0x8000); /* answer by broadcast: we have no address yet */
    memcpy(b + 28, net.mac, 6);
    put32(b + 236, 0x63825363);
    b[o++] = 53; b[o++] = 1; b[o++] = type;
    if (requested) {
        b[o++] = 50; b[o++] = 4; put32(b + o, requested); o += 4;
        b[o++] = 54; b[o++] = 4; put32(b + o, GW_IP); o += 4;
    }
    b[o++] = 55; b[o++] = 3; b[o++] = 1; b[o++] = 3; b[o++] = 6;
    b[o++] = 255;
    return udp_build(tx, bcast, net.mac, 0, 68, 0xffffffffu, 67, 300);
}

static int dhcp_type(const uint8_t *f, int len)
{
    const uint8_t *b = f + ETH_HLEN + IP_HLEN + UDP_HLEN;
    int blen = len - (ETH_HLEN + IP_HLEN + UDP_HLEN);

    if (len < ETH_HLEN + IP_HLEN + UDP_HLEN + 240 || get16(f + 12) != ETH_P_IP ||
        f[ETH_HLEN + 9] != 17 || get16(f + ETH_HLEN + IP_HLEN + 2) != 68 || b[0] != 2 ||
        get32(b + 4) != XID) {
        return -1;
    }
    for (int o = 240; o + 2 < blen && b[o] != 255;) {
        if (b[o] == 0) {
            o++;
            continue;
        }
        if (b[o] == 53) {
            return b[o + 2];
        }
        o += 2 + b[o + 1];
    }
    return -1;
}

static bool is_offer(const uint8_t *f, int len) { return dhcp_type(f, len) == 2; }
static bool is_ack(const uint8_t *f, int len) { return dhcp_type(f, len) == 5; }

static uint32_t yiaddr(const uint8_t *f)
{
    return get32(f + ETH_HLEN + IP_HLEN + UDP_HLEN + 16);
}

/* ---- ARP, ICMP ---- */

static uint8_t gw_mac[6];

static bool is_gw_arp_reply(const uint8_t *f, int len)
{
    return len >= ETH_HLEN + 28 && get16(f + 12) == ETH_P_ARP &&
           get16(f + ETH_HLEN + 6) == 2 && get32(f + ETH_HLEN + 14) == GW_IP &&
           get32(f + ETH_HLEN + 24) == GUEST_IP;
}

static bool is_echo_reply(const uint8_t *f, int len)
{
    const uint8_t *ip = f + ETH_HLEN, *icmp = ip + IP_HLEN;

    return len >= ETH_HLEN + IP_HLEN + 8 + 32 && get16(f + 12) == ETH_P_IP && ip[9] == 1 &&
           get32(ip + 12) == GW_IP && icmp[0] == 0 && get16(icmp + 4) == 0x5e4 &&
           get16(icmp + 6) == 1 && memcmp(icmp + 8, "sen guest kit ping payload 0123", 32) == 0;
}

static unsigned icmp_echo_build(void)
{
    uint8_t *ip = tx + ETH_HLEN, *icmp = ip + IP_HLEN;

    eth_fill(tx, gw_mac, net.mac, ETH_P_IP);
    memset(ip, 0, IP_HLEN);
    ip[0] = 0x45;
    put16(ip + 2, IP_HLEN + 8 + 32);
    ip[8] = 64;
    ip[9] = 1;
    put32(ip + 12, GUEST_IP);
    put32(ip + 16, GW_IP);
    put16(ip + 10, inet_csum(ip, IP_HLEN));
    memset(icmp, 0, 8);
    icmp[0] = 8;
    put16(icmp + 4, 0x5e4);
    put16(icmp + 6, 1);
    memcpy(icmp + 8, "sen guest kit ping payload 0123", 32);
    put16(icmp + 2, inet_csum(icmp, 8 + 32));
    return ETH_HLEN + IP_HLEN + 8 + 32;
}

/* ---- UDP echo ---- */

static bool is_echo_request(const uint8_t *f, int len)
{
    const uint8_t *ip = f + ETH_HLEN, *udp = ip + IP_HLEN;

    return len >= ETH_HLEN + IP_HLEN + UDP_HLEN && get16(f + 12) == ETH_P_IP &&
           ip[0] == 0x45 && ip[9] == 17 && get32(ip + 16) == GUEST_IP &&
           get16(udp + 2) == ECHO_PORT && get16(udp + 4) >= UDP_HLEN &&
           get16(udp + 4) <= len - ETH_HLEN - IP_HLEN;
}

/* The host client's answer to our datagram from OWN_PORT. */
static bool is_own_reply(const uint8_t *f, int len)
{
    const uint8_t *ip = f + ETH_HLEN, *udp = ip + IP_HLEN;
    const unsigned n = sizeof(OWN_REPLY) - 1;

    return len >= (int)(ETH_HLEN + IP_HLEN + UDP_HLEN + n) && get16(f + 12) == ETH_P_IP &&
           ip[0] == 0x45 && ip[9] == 17 && get32(ip + 12) == client_ip &&
           get32(ip + 16) == GUEST_IP && get16(udp) == client_port &&
           get16(udp + 2) == OWN_PORT && get16(udp + 4) == UDP_HLEN + n &&
           memcmp(udp + UDP_HLEN, OWN_REPLY, n) == 0;
}

static void udp_echo(int len)
{
    const uint8_t *ip = rx + ETH_HLEN, *udp = ip + IP_HLEN;
    unsigned plen = get16(udp + 4) - UDP_HLEN;

    memcpy(tx + ETH_HLEN + IP_HLEN + UDP_HLEN, udp + UDP_HLEN, plen);
    unsigned flen = udp_build(tx, rx + 6, net.mac, GUEST_IP, ECHO_PORT, get32(ip + 12),
                              get16(udp), plen);
    (void)len;
    memcpy(gw_mac, rx + 6, 6);
    client_ip = get32(ip + 12);
    client_port = get16(udp);
    gnet_send(&net, tx, flen);
    guest_printf("udp echo: %u bytes from %u.%u.%u.%u:%u\n", plen, ip[12], ip[13], ip[14],
                 ip[15], get16(udp));
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    int len;

    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(gnet_init(&net, devs, n, 0, VIRTIO_NET_F_STATUS), "virtio-net up, MAC "
                "%02x:%02x:%02x:%02x:%02x:%02x", net.mac[0], net.mac[1], net.mac[2],
                net.mac[3], net.mac[4], net.mac[5]);
    GUEST_CHECK(gnet_link_up(&net), "link is up");

    unsigned flen = dhcp_build(1, 0);
    GUEST_CHECK(gnet_send(&net, tx, flen), "DHCPDISCOVER sent");
    len = recv_until(is_offer, 10);
    GUEST_CHECK(len > 0 && yiaddr(rx) == GUEST_IP, "DHCPOFFER of 10.0.2.15");
    flen = dhcp_build(3, GUEST_IP);
    GUEST_CHECK(gnet_send(&net, tx, flen), "DHCPREQUEST sent");
    len = recv_until(is_ack, 10);
    GUEST_CHECK(len > 0 && yiaddr(rx) == GUEST_IP, "DHCP gives 10.0.2.15");
    my_ip = GUEST_IP;

    flen = arp_build(tx, 1, net.mac, GUEST_IP, bcast, GW_IP);
    GUEST_CHECK(gnet_send(&net, tx, flen), "ARP request for 10.0.2.2 sent");
    len = recv_until(is_gw_arp_reply, 10);
    GUEST_CHECK(len > 0, "ARP reply from 10.0.2.2");
    memcpy(gw_mac, rx + ETH_HLEN + 8, 6);

    flen = icmp_echo_build();
    GUEST_CHECK(gnet_send(&net, tx, flen), "ICMP echo request to 10.0.2.2 sent");
    len = recv_until(is_echo_reply, 10);
    GUEST_CHECK(len > 0, "ICMP echo reply from 10.0.2.2");

    guest_printf("net-user: udp echo ready on port %u\n", ECHO_PORT);
    unsigned echoed = 0;
    while (echoed < ECHOES) {
        len = recv_until(is_echo_request, 30);
        if (len < 0) {
            guest_fail("no UDP datagram for the echo port after %u", echoed);
        }
        udp_echo(len);
        echoed++;
    }
    GUEST_CHECK(echoed == ECHOES, "%u UDP datagrams echoed through hostfwd", echoed);

    /* A datagram to the host from a port no rule names, and the host's answer to it. */
    memcpy(tx + ETH_HLEN + IP_HLEN + UDP_HLEN, OWN_MSG, sizeof(OWN_MSG) - 1);
    flen = udp_build(tx, gw_mac, net.mac, GUEST_IP, OWN_PORT, client_ip, client_port,
                     sizeof(OWN_MSG) - 1);
    GUEST_CHECK(gnet_send(&net, tx, flen), "datagram from port %u sent", OWN_PORT);
    GUEST_CHECK(recv_until(is_own_reply, 30) > 0, "the host answered port %u", OWN_PORT);
    guest_printf("net-user ok\n");
    guest_pass();
}
