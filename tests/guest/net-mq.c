/*
 * virtio-net multiqueue on a multi-queue TAP (tests/functional/test_net_tap.py runs it
 * with queues=2, mq=on): the device offers MQ with two pairs; the control queue refuses
 * 0 and 3 pairs and takes 2; an ARP request sent on pair 1's tx queue is answered.  Then
 * the host sends FLOWS UDP datagrams from as many source ports (the kernel spreads flows
 * over the TAP's queues by hash): at 2 pairs some arrive on rx queue 2, and back at 1
 * pair all of them arrive on rx queue 0, so the TAP stopped steering to the queue the
 * guest no longer uses.  host_ip= and guest_ip= (0x hex) come from the command line.
 *
 * migrate=1 (tests/functional/test_net_migrate.py): once both pairs are in use the guest
 * prints "net-mq: migrate" and waits for 'v' on COM1, sent to the destination after a
 * live migration; there an ARP request on each pair must be answered before the rest
 * runs, so every queue pair's state (ring addresses, indices, the pair count) arrived.
 */
#include "lib/guest.h"
#include "lib/virtio-net.h"

#define F_CTRL_VQ (1ull << 17)
#define F_MQ (1ull << 22)
#define QS 16
#define RX_BUFS 8
#define SECOND 125000
#define FLOWS 32
#define FLOW_PORT 5555

static VirtioDev vd;
static uint8_t mac[6];
static uint8_t *rx_buf[2][QS];
static uint8_t *tx_buf, *ctrl_buf;
static uint32_t host_ip, guest_ip;
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void post_rx(unsigned pair, unsigned i)
{
    VirtioBuf b = { rx_buf[pair][i], GNET_BUF_SIZE, true };
    if (virtq_add(&vd.vq[2 * pair], &b, 1) != (int)i) {
        guest_fail("rx queue %u: buffer %u did not get descriptor %u", 2 * pair, i, i);
    }
}

/* Takes the next used buffer of rx pair rp: returns its frame (past the virtio-net header),
 * its descriptor in *id and the frame's length in *flen, or NULL when none is used. Hand the
 * buffer back with rx_recycle() once the frame is read. */
static const uint8_t *rx_next(unsigned rp, uint32_t *id, uint32_t *flen)
{
    uint32_t len;

    if (!virtq_poll(&vd.vq[2 * rp], id, &len)) {
        return NULL;
    }
    if (*id >= RX_BUFS || len < VIRTIO_NET_HDR_LEN) {
        guest_fail("rx queue %u: bad used element %u len %u", 2 * rp, *id, len);
    }
    *flen = len - VIRTIO_NET_HDR_LEN;
    return rx_buf[rp][*id] + VIRTIO_NET_HDR_LEN;
}

static bool console_has(char c)
{
    return (inb(0x3fd) & 1) && inb(0x3f8) == c;
}

static void rx_recycle(unsigned rp, uint32_t id)
{
    post_rx(rp, id);
    virtq_kick(&vd.vq[2 * rp]);
}

/* VIRTIO_NET_CTRL_MQ / VQ_PAIRS_SET; returns the ack (0 OK, 1 ERR). */
static uint8_t set_pairs(uint16_t pairs)
{
    Virtq *cq = &vd.vq[4];
    uint32_t id, len;

    ctrl_buf[0] = 4;
    ctrl_buf[1] = 0;
    memcpy(ctrl_buf + 2, &pairs, 2);
    ctrl_buf[8] = 0xee;
    VirtioBuf b[2] = { { ctrl_buf, 4, false }, { ctrl_buf + 8, 1, true } };
    if (virtq_add(cq, b, 2) < 0) {
        guest_fail("control queue full");
    }
    virtq_kick(cq);
    if (!virtq_wait(cq, &id, &len, SECOND)) {
        guest_fail("no answer to VQ_PAIRS_SET %u", pairs);
    }
    return ctrl_buf[8];
}

/* Sends an ARP request for the host on pair `pair`; returns the rx queue (0 or 2) the
 * reply came on, or -1 after about a second per try, three tries. */
static int arp_on_pair(unsigned pair)
{
    unsigned flen = arp_build(tx_buf + VIRTIO_NET_HDR_LEN, 1, mac, guest_ip, bcast, host_ip);
    uint32_t id, len, rlen;

    memset(tx_buf, 0, VIRTIO_NET_HDR_LEN);
    for (unsigned attempt = 0; attempt < 3; attempt++) {
        VirtioBuf b = { tx_buf, VIRTIO_NET_HDR_LEN + flen, false };
        Virtq *tq = &vd.vq[2 * pair + 1];
        if (virtq_add(tq, &b, 1) < 0) {
            guest_fail("tx queue %u full", 2 * pair + 1);
        }
        virtq_kick(tq);
        if (!virtq_wait(tq, &id, &len, SECOND)) {
            guest_fail("tx queue %u: the device never took the frame", 2 * pair + 1);
        }
        for (unsigned t = 0; t < SECOND / 4; t++) {
            for (unsigned rp = 0; rp < 2; rp++) {
                const uint8_t *f = rx_next(rp, &id, &rlen);
                if (!f) {
                    continue;
                }
                bool reply = rlen >= ETH_HLEN + 28 && get16(f + 12) == ETH_P_ARP &&
                             get16(f + ETH_HLEN + 6) == 2 && get32(f + ETH_HLEN + 14) == host_ip;
                rx_recycle(rp, id);
                if (reply) {
                    return (int)(2 * rp);
                }
            }
            guest_io_delay();
        }
    }
    return -1;
}

/* Counts the host's datagrams to FLOW_PORT on each rx queue until FLOWS came or about
 * half a second (of delays; longer where guest code is emulated) passed without one. */
static void count_flows(unsigned counts[2])
{
    uint32_t id, flen;
    unsigned quiet = 0;

    counts[0] = counts[1] = 0;
    while (counts[0] + counts[1] < FLOWS && quiet < SECOND / 2) {
        bool any = false;
        for (unsigned rp = 0; rp < 2; rp++) {
            const uint8_t *f = rx_next(rp, &id, &flen);
            if (!f) {
                continue;
            }
            if (flen >= ETH_HLEN + IP_HLEN + UDP_HLEN && get16(f + 12) == ETH_P_IP &&
                f[ETH_HLEN + 9] == 17 && get16(f + ETH_HLEN + IP_HLEN + 2) == FLOW_PORT) {
                counts[rp]++;
            }
            rx_recycle(rp, id);
            any = true;
        }
        if (any) {
            quiet = 0;
        } else {
            quiet++;
            guest_io_delay();
        }
    }
}

void guest_main(void)
{
    static PciDev devs[32];
    uint64_t hip, gip;

    GUEST_CHECK(cmdline_get_uint("host_ip", &hip) && cmdline_get_uint("guest_ip", &gip),
                "host_ip=0x%lx guest_ip=0x%lx", hip, gip);
    host_ip = (uint32_t)hip;
    guest_ip = (uint32_t)gip;
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_NET, 0, &vd), "virtio-net found");
    GUEST_CHECK(virtio_init(&vd, VIRTIO_NET_F_MAC | F_CTRL_VQ | F_MQ) &&
                (vd.features & F_CTRL_VQ) && (vd.features & F_MQ),
                "MQ and the control queue negotiated");
    unsigned max_pairs = virtio_cfg_read16(&vd, 8);
    GUEST_CHECK(max_pairs == 2, "max_virtqueue_pairs %u", max_pairs);
    for (unsigned q = 0; q < 5; q++) {
        if (!virtio_setup_queue(&vd, q, QS, 0)) {
            guest_fail("queue %u setup failed", q);
        }
    }
    for (unsigned i = 0; i < 6; i++) {
        mac[i] = virtio_cfg_read8(&vd, i);
    }
    tx_buf = guest_alloc(GNET_BUF_SIZE, 64, true);
    ctrl_buf = guest_alloc(64, 64, true);
    for (unsigned p = 0; p < 2; p++) {
        for (unsigned i = 0; i < RX_BUFS; i++) {
            rx_buf[p][i] = guest_alloc(GNET_BUF_SIZE, 64, false);
            post_rx(p, i);
        }
    }
    virtio_driver_ok(&vd);
    virtq_kick(&vd.vq[0]);
    virtq_kick(&vd.vq[2]);

    GUEST_CHECK(set_pairs(3) == 1, "3 pairs refused");
    GUEST_CHECK(set_pairs(0) == 1, "0 pairs refused");
    GUEST_CHECK(set_pairs(2) == 0, "2 pairs taken");
    int q = arp_on_pair(1);
    GUEST_CHECK(q >= 0, "ARP request on pair 1 answered (on rx queue %d)", q);
    uint64_t migrate = 0;
    if (cmdline_get_uint("migrate", &migrate) && migrate) {
        guest_printf("net-mq: migrate\n");
        while (!console_has('v')) {
            guest_io_delay();
        }
        for (unsigned pair = 0; pair < 2; pair++) {
            q = arp_on_pair(pair);
            GUEST_CHECK(q >= 0, "after the migration: ARP request on pair %u answered (on "
                        "rx queue %d)", pair, q);
        }
    }
    unsigned counts[2];
    guest_printf("net-mq: send %u flows\n", FLOWS);
    count_flows(counts);
    GUEST_CHECK(counts[0] + counts[1] == FLOWS && counts[1] > 0,
                "2 pairs: %u flows on rx queue 0, %u on rx queue 2", counts[0], counts[1]);
    GUEST_CHECK(set_pairs(1) == 0, "back to 1 pair");
    guest_printf("net-mq: send %u flows\n", FLOWS);
    count_flows(counts);
    GUEST_CHECK(counts[0] == FLOWS && counts[1] == 0,
                "1 pair: %u flows on rx queue 0, %u on rx queue 2", counts[0], counts[1]);
    for (unsigned round = 0; round < 4; round++) {
        q = arp_on_pair(0);
        GUEST_CHECK(q == 0, "ARP request %u on pair 0 answered on rx queue 0 (%d)", round, q);
    }
    GUEST_CHECK(!(virtio_get_status(&vd) & VIRTIO_STATUS_NEEDS_RESET), "no NEEDS_RESET");
    guest_printf("net-mq ok\n");
    guest_pass();
}
