/*
 * virtio-net client for guest-kit images: raw Ethernet frames, polled (no interrupts),
 * no TCP/IP stack.  Rx buffers are posted once and re-posted after each frame; tx waits
 * for the device to hand the buffer back.  Helpers for the few protocols the tests speak
 * (ARP, IPv4, UDP, ICMP echo, DHCP) build and check frames in place.
 */
#ifndef GUEST_VIRTIO_NET_H
#define GUEST_VIRTIO_NET_H

#include "virtio.h"

#define VIRTIO_NET_F_MAC (1ull << 5)
#define VIRTIO_NET_F_MRG_RXBUF (1ull << 15)
#define VIRTIO_NET_F_STATUS (1ull << 16)
#define VIRTIO_NET_HDR_LEN 12
#define GNET_RX_BUFS 32
#define GNET_BUF_SIZE 2048 /* header + a 1514-byte frame, rounded up */

typedef struct {
    VirtioDev vd;
    uint8_t mac[6];
    uint8_t *rx[GNET_RX_BUFS];
    int rx_of_head[256];       /* rx buffer index by descriptor head */
    uint8_t *tx;
    uint32_t rx_frames, tx_frames;
} GuestNet;

/* Finds the nth virtio-net function, negotiates VERSION_1 + MAC (+ `extra` offered bits),
 * sets up rx (queue 0) and tx (queue 1), posts the rx buffers, DRIVER_OK. */
bool gnet_init(GuestNet *n, const PciDev *devs, unsigned ndevs, unsigned nth, uint64_t extra);
/* Sends one frame (a zero virtio header is prepended); false if the device never took it. */
bool gnet_send(GuestNet *n, const void *frame, unsigned len);
/* Next received frame (header stripped) into buf, at most max bytes; its length, or -1
 * when none came within `delays` guest_io_delay() periods. */
int gnet_recv(GuestNet *n, void *buf, unsigned max, unsigned delays);
/* Link status bit of the config space (VIRTIO_NET_F_STATUS). */
bool gnet_link_up(GuestNet *n);

/* ---- protocol helpers (network byte order on the wire) ---- */
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IP_HLEN 20
#define UDP_HLEN 8

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}
#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

uint16_t inet_csum(const void *data, unsigned len);
/* Ethernet header at f. */
void eth_fill(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type);
/* An ARP request (op 1) or reply (op 2); returns the frame length (42). */
unsigned arp_build(uint8_t *f, uint16_t op, const uint8_t src_mac[6], uint32_t src_ip,
                   const uint8_t dst_mac[6], uint32_t dst_ip);
/* IPv4 header (checksummed) + UDP header (checksum 0) around payload already at
 * f + 42; returns the frame length. */
unsigned udp_build(uint8_t *f, const uint8_t dst_mac[6], const uint8_t src_mac[6],
                   uint32_t src_ip, uint16_t sport, uint32_t dst_ip, uint16_t dport,
                   unsigned payload_len);
/* If f (len bytes) is an ARP request for `ip`, answers it; returns true if it was one. */
bool arp_answer(GuestNet *n, const uint8_t *f, unsigned len, uint32_t ip);

#endif
