/* virtio-net client for guest-kit images (see virtio-net.h). */
#include "guest.h"
#include "virtio-net.h"

static bool post_rx(GuestNet *n, unsigned i)
{
    VirtioBuf b = { n->rx[i], GNET_BUF_SIZE, true };
    int head = virtq_add(&n->vd.vq[0], &b, 1);

    if (head < 0) {
        return false;
    }
    n->rx_of_head[head] = (int)i;
    return true;
}

bool gnet_init(GuestNet *n, const PciDev *devs, unsigned ndevs, unsigned nth, uint64_t extra)
{
    if (!virtio_pci_find(devs, ndevs, VIRTIO_ID_NET, nth, &n->vd)) {
        guest_printf("virtio-net %u: not found\n", nth);
        return false;
    }
    if (!virtio_init(&n->vd, VIRTIO_NET_F_MAC | extra)) {
        return false;
    }
    if (!virtio_setup_queue(&n->vd, 0, GNET_RX_BUFS, 0) ||
        !virtio_setup_queue(&n->vd, 1, 16, 0)) {
        guest_printf("virtio-net %u: queue setup failed\n", nth);
        return false;
    }
    for (unsigned i = 0; i < 6; i++) {
        n->mac[i] = virtio_cfg_read8(&n->vd, i);
    }
    for (unsigned i = 0; i < 256; i++) {
        n->rx_of_head[i] = -1;
    }
    n->tx = guest_alloc(GNET_BUF_SIZE, 64, true);
    for (unsigned i = 0; i < GNET_RX_BUFS; i++) {
        n->rx[i] = guest_alloc(GNET_BUF_SIZE, 64, false);
        if (!n->rx[i] || !post_rx(n, i)) {
            guest_printf("virtio-net %u: cannot post rx buffer %u\n", nth, i);
            return false;
        }
    }
    virtio_driver_ok(&n->vd);
    virtq_kick(&n->vd.vq[0]);
    return n->tx != 0;
}

bool gnet_send(GuestNet *n, const void *frame, unsigned len)
{
    uint32_t id, used;

    if (len + VIRTIO_NET_HDR_LEN > GNET_BUF_SIZE) {
        return false;
    }
    memset(n->tx, 0, VIRTIO_NET_HDR_LEN);
    memcpy(n->tx + VIRTIO_NET_HDR_LEN, frame, len);
    VirtioBuf b = { n->tx, VIRTIO_NET_HDR_LEN + len, false };
    if (virtq_add(&n->vd.vq[1], &b, 1) < 0) {
        return false;
    }
    virtq_kick(&n->vd.vq[1]);
    if (!virtq_wait(&n->vd.vq[1], &id, &used, 200000)) {
        return false;
    }
    n->tx_frames++;
    return true;
}

int gnet_recv(GuestNet *n, void *buf, unsigned max, unsigned delays)
{
    uint32_t id, len;

    if (!virtq_wait(&n->vd.vq[0], &id, &len, delays)) {
        return -1;
    }
    if (id >= 256 || n->rx_of_head[id] < 0 || len < VIRTIO_NET_HDR_LEN ||
        len > GNET_BUF_SIZE) {
        guest_fail("virtio-net: bad used rx element id %u len %u", id, len);
    }
    unsigned i = (unsigned)n->rx_of_head[id];
    unsigned flen = len - VIRTIO_NET_HDR_LEN;
    memcpy(buf, n->rx[i] + VIRTIO_NET_HDR_LEN, flen < max ? flen : max);
    n->rx_of_head[id] = -1;
    post_rx(n, i);
    virtq_kick(&n->vd.vq[0]);
    n->rx_frames++;
    return (int)flen;
}

bool gnet_link_up(GuestNet *n)
{
    return virtio_cfg_read16(&n->vd, 6) & 1;
}

uint16_t inet_csum(const void *data, unsigned len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;

    for (unsigned i = 0; i + 1 < len; i += 2) {
        sum += get16(p + i);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

void eth_fill(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
}

unsigned arp_build(uint8_t *f, uint16_t op, const uint8_t src_mac[6], uint32_t src_ip,
                   const uint8_t dst_mac[6], uint32_t dst_ip)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t zero[6] = { 0 };
    uint8_t *a = f + ETH_HLEN;

    eth_fill(f, op == 1 ? bcast : dst_mac, src_mac, ETH_P_ARP);
    put16(a, 1);          /* Ethernet */
    put16(a + 2, ETH_P_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, src_mac, 6);
    put32(a + 14, src_ip);
    memcpy(a + 18, op == 1 ? zero : dst_mac, 6);
    put32(a + 24, dst_ip);
    return ETH_HLEN + 28;
}

unsigned udp_build(uint8_t *f, const uint8_t dst_mac[6], const uint8_t src_mac[6],
                   uint32_t src_ip, uint16_t sport, uint32_t dst_ip, uint16_t dport,
                   unsigned payload_len)
{
    uint8_t *ip = f + ETH_HLEN, *udp = ip + IP_HLEN;

    eth_fill(f, dst_mac, src_mac, ETH_P_IP);
    memset(ip, 0, IP_HLEN);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(IP_HLEN + UDP_HLEN + payload_len));
    ip[8] = 64;  /* TTL */
    ip[9] = 17;  /* UDP */
    put32(ip + 12, src_ip);
    put32(ip + 16, dst_ip);
    put16(ip + 10, inet_csum(ip, IP_HLEN));
    put16(udp, sport);
    put16(udp + 2, dport);
    put16(udp + 4, (uint16_t)(UDP_HLEN + payload_len));
    put16(udp + 6, 0);
    return ETH_HLEN + IP_HLEN + UDP_HLEN + payload_len;
}

bool arp_answer(GuestNet *n, const uint8_t *f, unsigned len, uint32_t ip)
{
    uint8_t reply[64];

    if (len < ETH_HLEN + 28 || get16(f + 12) != ETH_P_ARP || get16(f + ETH_HLEN + 6) != 1 ||
        get32(f + ETH_HLEN + 24) != ip) {
        return false;
    }
    unsigned rl = arp_build(reply, 2, n->mac, ip, f + ETH_HLEN + 8, get32(f + ETH_HLEN + 14));
    gnet_send(n, reply, rl);
    return true;
}
