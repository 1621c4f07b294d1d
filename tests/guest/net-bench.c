/*
 * Throughput guest for tests/bench/net: UDP frames to and from a host peer through
 * virtio-net, for each frame size a tx phase (the guest sends `tx_frames=` frames as fast
 * as the device takes them) and an rx phase (the host sends for a while, the guest counts
 * until a stop frame).  The host times the phases from the lines printed at their
 * boundaries; the guest has no clock it could trust.
 *
 * Guest kernel code is emulated at ~1M instructions/s on the development host, so the
 * set-up (PCI, virtio, one ARP exchange with the peer so it learns our MAC) runs at CPL0
 * and the per-frame loops run at CPL3, natively: there the cost of a frame is the VMM's.
 * The loops poll the used rings (no interrupts) and notify only when the device has not
 * set VIRTQ_USED_F_NO_NOTIFY, as a real driver does.
 *
 * Command line: guest_ip= peer_ip= (0x hex), port= (UDP port on both sides),
 * tx_frames= (per size).  Frames carry "SENB" and a kind byte (0 data, 1 stop).
 */
#include "lib/guest.h"
#include "lib/user.h"
#include "lib/virtio-net.h"

#define QSIZE 256
#define BUF_SIZE 2048
#define SECOND 125000
#define MAGIC "SENB"
#define KIND_OFF (ETH_HLEN + IP_HLEN + UDP_HLEN + 4)
#define VIRTQ_USED_F_NO_NOTIFY 1
/* Polls without progress that end a phase: seconds at native CPL3 speed. */
#define IDLE_POLLS 4000000000ull

static VirtioDev vd;
static uint8_t mac[6], peer_mac[6];
static uint32_t guest_ip, peer_ip;
static uint16_t port;
static uint8_t *rx_buf[QSIZE];   /* by descriptor head: each rx buffer keeps its head */
static uint8_t *tx_buf;          /* one frame every tx descriptor points at */
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void notify(Virtq *vq)
{
    barrier();
    if (!(vq->used->flags & VIRTQ_USED_F_NO_NOTIFY)) {
        virtq_kick(vq);
    }
}

static bool post_rx(unsigned head)
{
    VirtioBuf b = { rx_buf[head], BUF_SIZE, true };
    /* A freed single descriptor goes to the head of the free list, so it comes back. */
    return virtq_add(&vd.vq[0], &b, 1) == (int)head;
}

/* ---- set-up at CPL0 ---- */

static void send_frame_cpl0(unsigned len)
{
    uint32_t id, used;
    VirtioBuf b = { tx_buf, VIRTIO_NET_HDR_LEN + len, false };

    if (virtq_add(&vd.vq[1], &b, 1) < 0) {
        guest_fail("bench: tx queue full at set-up");
    }
    virtq_kick(&vd.vq[1]);
    if (!virtq_wait(&vd.vq[1], &id, &used, SECOND)) {
        guest_fail("bench: the device never took a set-up frame");
    }
}

/* ARPs for the peer until it answers: the peer learns our MAC, we learn its. */
static void arp_peer(void)
{
    uint8_t *f = tx_buf + VIRTIO_NET_HDR_LEN;
    unsigned flen = arp_build(f, 1, mac, guest_ip, bcast, peer_ip);

    memset(tx_buf, 0, VIRTIO_NET_HDR_LEN);
    for (unsigned round = 0; round < 100; round++) {
        send_frame_cpl0(flen);
        for (unsigned t = 0; t < SECOND / 10; t++) {
            uint32_t id, len;
            if (!virtq_poll(&vd.vq[0], &id, &len)) {
                guest_io_delay();
                continue;
            }
            if (id >= QSIZE || len < VIRTIO_NET_HDR_LEN || len > BUF_SIZE) {
                guest_fail("bench: bad used rx element id %u len %u", id, len);
            }
            const uint8_t *r = rx_buf[id] + VIRTIO_NET_HDR_LEN;
            bool reply = len >= VIRTIO_NET_HDR_LEN + ETH_HLEN + 28 &&
                         get16(r + 12) == ETH_P_ARP && get16(r + ETH_HLEN + 6) == 2 &&
                         get32(r + ETH_HLEN + 14) == peer_ip;
            if (reply) {
                memcpy(peer_mac, r + ETH_HLEN + 8, 6);
            }
            post_rx(id);
            virtq_kick(&vd.vq[0]);
            if (reply) {
                return;
            }
        }
    }
    guest_fail("bench: no ARP reply from the peer");
}

/* ---- the loops at CPL3 ---- */

typedef struct {
    uint64_t frames, len;    /* tx: frames to send; both: the frame length */
    uint64_t got, bytes;     /* rx: data frames and their bytes */
    uint64_t other;          /* rx: frames that were not the peer's (ARP, IPv6 ...) */
    uint64_t last_other_len;
} Phase;

static uint64_t tx_loop(void *arg)
{
    Phase *p = arg;
    Virtq *vq = &vd.vq[1];
    uint64_t sent = 0, done = 0, idle = 0;
    uint32_t id, used;
    VirtioBuf b = { tx_buf, VIRTIO_NET_HDR_LEN + (uint32_t)p->len, false };

    while (done < p->frames) {
        while (virtq_poll(vq, &id, &used)) {
            done++;
            idle = 0;
        }
        unsigned added = 0;
        while (sent < p->frames && virtq_add(vq, &b, 1) >= 0) {
            sent++;
            added++;
        }
        if (added) {
            notify(vq);
        }
        /* A device that stopped taking frames ends the phase after seconds. */
        if (++idle > IDLE_POLLS) {
            return 1;
        }
    }
    return 0;
}

static uint64_t rx_loop(void *arg)
{
    Phase *p = arg;
    Virtq *vq = &vd.vq[0];
    uint64_t idle = 0;
    uint32_t id, len;

    for (;;) {
        unsigned reposted = 0;
        while (virtq_poll(vq, &id, &len)) {
            if (id >= QSIZE || len < VIRTIO_NET_HDR_LEN || len > BUF_SIZE) {
                return 1;
            }
            const uint8_t *f = rx_buf[id] + VIRTIO_NET_HDR_LEN;
            unsigned flen = len - VIRTIO_NET_HDR_LEN;
            /* Frames of another phase (a late stop frame) are not this one's. */
            bool ours = flen == p->len && get16(f + 12) == ETH_P_IP &&
                        f[ETH_HLEN + 9] == 17 && get16(f + ETH_HLEN + IP_HLEN + 2) == port &&
                        memcmp(f + KIND_OFF - 4, MAGIC, 4) == 0;
            uint8_t kind = ours ? f[KIND_OFF] : 0xff;
            if (!ours) {
                p->other++;
                p->last_other_len = flen;
            }
            if (kind == 0) {
                p->got++;
                p->bytes += flen;
            }
            post_rx(id);
            reposted++;
            if (kind == 1) {
                notify(vq);
                return 0;
            }
            idle = 0;
        }
        if (reposted) {
            notify(vq);
        }
        /* No clock here: a long silence (seconds of native polling) ends the phase. */
        if (++idle > IDLE_POLLS) {
            return 2;
        }
    }
}

static unsigned build_udp(unsigned frame_len)
{
    uint8_t *f = tx_buf + VIRTIO_NET_HDR_LEN;
    unsigned payload = frame_len - (ETH_HLEN + IP_HLEN + UDP_HLEN);

    memset(tx_buf, 0, VIRTIO_NET_HDR_LEN);
    memcpy(f + ETH_HLEN + IP_HLEN + UDP_HLEN, MAGIC, 4);
    f[KIND_OFF] = 0;
    return udp_build(f, peer_mac, mac, guest_ip, port, peer_ip, port, payload);
}

void guest_main(void)
{
    static PciDev devs[32];
    static const unsigned sizes[] = { 60, 1514 };
    uint64_t gip = 0, pip = 0, uport = 0, tx_frames = 100000;

    if (!cmdline_get_uint("guest_ip", &gip) || !cmdline_get_uint("peer_ip", &pip) ||
        !cmdline_get_uint("port", &uport) || uport == 0 || uport > 65535) {
        guest_fail("bench: needs guest_ip=0x.. peer_ip=0x.. port=N on the command line");
    }
    cmdline_get_uint("tx_frames", &tx_frames);
    guest_ip = (uint32_t)gip;
    peer_ip = (uint32_t)pip;
    port = (uint16_t)uport;

    unsigned n = pci_scan_bus0(devs, 32);
    if (!pci_assign_bars(devs, n) || !virtio_pci_find(devs, n, VIRTIO_ID_NET, 0, &vd) ||
        !virtio_init(&vd, VIRTIO_NET_F_MAC) || !virtio_setup_queue(&vd, 0, QSIZE, 0) ||
        !virtio_setup_queue(&vd, 1, QSIZE, 0) || vd.vq[0].size != QSIZE) {
        guest_fail("bench: no usable virtio-net with %u-entry queues", QSIZE);
    }
    for (unsigned i = 0; i < 6; i++) {
        mac[i] = virtio_cfg_read8(&vd, i);
    }
    tx_buf = guest_alloc(BUF_SIZE, 64, true);
    for (unsigned i = 0; i < QSIZE; i++) {
        rx_buf[i] = guest_alloc(BUF_SIZE, 64, false);
        if (!rx_buf[i] || !post_rx(i)) {
            guest_fail("bench: cannot post rx buffer %u", i);
        }
    }
    virtio_driver_ok(&vd);
    virtq_kick(&vd.vq[0]);
    arp_peer();
    user_init();
    guest_printf("bench: peer %02x:%02x:%02x:%02x:%02x:%02x, %lu tx frames per size\n",
                 peer_mac[0], peer_mac[1], peer_mac[2], peer_mac[3], peer_mac[4], peer_mac[5],
                 tx_frames);

    for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        Phase tx = { .frames = tx_frames, .len = build_udp(sizes[s]) };
        guest_printf("bench: tx %u start\n", sizes[s]);
        if (user_call(tx_loop, &tx) != 0) {
            guest_fail("bench: tx %u: the device stopped taking frames", sizes[s]);
        }
        guest_printf("bench: tx %u done %lu frames\n", sizes[s], tx.frames);

        Phase rx = { .len = sizes[s] };
        guest_printf("bench: rx %u ready\n", sizes[s]);
        uint64_t r = user_call(rx_loop, &rx);
        if (r == 1) {
            guest_fail("bench: bad used rx element");
        }
        if (r == 2) {
            guest_fail("bench: rx %u: no stop frame (got %lu frames)", sizes[s], rx.got);
        }
        guest_printf("bench: rx %u got %lu frames %lu bytes\n", sizes[s], rx.got, rx.bytes);
        if (rx.other) {
            guest_printf("bench: rx %u: %lu other frames, the last of %lu bytes\n", sizes[s],
                         rx.other, rx.last_other_len);
        }
    }
    if (virtio_get_status(&vd) & VIRTIO_STATUS_NEEDS_RESET) {
        guest_fail("bench: the device needs a reset");
    }
    guest_pass();
}
