/*
 * virtio-net-pci (virtio 1.x, 5.1): queue pairs (rx 2n, tx 2n+1) and a control queue
 * last, on a -netdev backend.
 *
 * Rx: a frame from the backend fills one rx buffer chain (or, with MRG_RXBUF, several,
 * published together so the driver never sees a partial frame).  Only the bytes the
 * guest's buffers hold are written: a frame that does not fit is dropped and counted.
 * With no buffers posted, can_receive says no, so the frame waits in the net queue
 * (bounded, then dropped and counted) until the driver kicks the rx queue; the main loop
 * never waits for the guest.
 *
 * Tx: each chain is a 12-byte header and a frame; with a vnet_hdr backend (tap) the
 * header travels with it (checksum/TSO offload), otherwise it is stripped and no offload
 * is offered.  One kick handles at most TX_BURST frames, then yields to the main loop.
 *
 * The control queue implements rx mode, MAC table and address, VLAN filter, the number
 * of queue pairs and the announce acknowledgement, as Linux uses them.
 *
 * While the VM is stopped (paused, migrating, saved) the NIC touches no guest memory:
 * frames from the backend wait in the net queue and a tx burst in progress waits, so the
 * state a migration saves is the state the destination continues from.  After loading,
 * the destination announces the MAC (RARP rounds, and the guest's own announcement with
 * GUEST_ANNOUNCE), see "---- announce ----".
 */
#include <inttypes.h>
#include <string.h>
#include <linux/if_tun.h>
#include "hw/virtio/virtio-pci.h"
#include "sen/device.h"
#include "sen/net.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

#define VIRTIO_NET_F_CSUM          0
#define VIRTIO_NET_F_GUEST_CSUM    1
#define VIRTIO_NET_F_MAC           5
#define VIRTIO_NET_F_GUEST_TSO4    7
#define VIRTIO_NET_F_GUEST_TSO6    8
#define VIRTIO_NET_F_GUEST_ECN     9
#define VIRTIO_NET_F_HOST_TSO4     11
#define VIRTIO_NET_F_HOST_TSO6     12
#define VIRTIO_NET_F_HOST_ECN      13
#define VIRTIO_NET_F_MRG_RXBUF     15
#define VIRTIO_NET_F_STATUS        16
#define VIRTIO_NET_F_CTRL_VQ       17
#define VIRTIO_NET_F_CTRL_RX       18
#define VIRTIO_NET_F_CTRL_VLAN     19
#define VIRTIO_NET_F_CTRL_RX_EXTRA 20
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ            22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23

#define VIRTIO_NET_S_LINK_UP  1
#define VIRTIO_NET_S_ANNOUNCE 2

#define VIRTIO_NET_CTRL_RX          0
#define VIRTIO_NET_CTRL_MAC         1
#define VIRTIO_NET_CTRL_VLAN        2
#define VIRTIO_NET_CTRL_ANNOUNCE    3
#define VIRTIO_NET_CTRL_MQ          4
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK 0
#define VIRTIO_NET_OK  0
#define VIRTIO_NET_ERR 1

enum { CFG_MAC = 0, CFG_STATUS = 6, CFG_MAX_PAIRS = 8, CFG_SIZE = 10 };

#define NET_QUEUE_SIZE   256
#define MAC_TABLE_SIZE   64
#define MAX_VLAN         4096
#define TX_BURST         256
/* Rx elements a burst fills before it publishes them anyway: the driver can work on
 * those while the rest come (vhost-net batches its used updates likewise). */
#define RX_PUBLISH_BATCH 32
#define USER_STATE_MAX   1024  /* libslirp's state: 131 bytes in version 4 */

typedef struct VirtIONet VirtIONet;

typedef struct NetQueuePair {
    VirtIONet *n;
    unsigned index;
    NetClientState *nc;      /* our end; its peer is the backend queue */
    VirtQueue *rx, *tx;
    guint tx_more;           /* idle source continuing a tx burst, 0 = none */
    unsigned rx_unpublished; /* used rx elements filled in a burst, not yet in used idx */
    bool tx_held;            /* the burst stopped with the VM; the start hook resumes it */
} NetQueuePair;

struct VirtIONet {
    VirtIOPCIProxy proxy;    /* first: the instance is a PCI device */
    VirtIODevice vdev;
    /* properties */
    char *netdev;
    char *mac_str;
    bool mq;
    bool mrg_rxbuf;
    bool csum;
    bool guest_csum;
    bool guest_announce;

    Machine *m;
    uint8_t mac[6];
    uint32_t max_pairs, curr_pairs;
    NetQueuePair qp[NET_MAX_QUEUES];
    VirtQueue *ctrl;
    bool vnet_hdr;           /* the backend exchanges NetVnetHdr with us */
    bool link_up;            /* what the config status shows */
    bool nic_link_down;      /* migration: set_link off on the NIC itself (pre_save) */

    /* receive filter (control queue): rx mode and table sizes live in `rx`, which
     * query-rx-filter reads as it is; rx.uni / rx.multi point at the tables here */
    NetRxFilter rx;
    uint8_t uni[MAC_TABLE_SIZE][6], multi[MAC_TABLE_SIZE][6];
    uint32_t vlans[MAX_VLAN / 32];

    uint64_t rx_dropped;     /* too big for the buffers, or the device was not ready */
    uint64_t tx_dropped;

    /* self-announce after a migration */
    Timer *announce_timer;   /* next round, on the virtual clock (runs with the VM) */
    NetAnnounceParams announce; /* the running announcement's pacing */
    unsigned announce_rounds; /* rounds still to send */
    bool announce_pending;   /* VIRTIO_NET_S_ANNOUNCE shown until the driver acks */

    /* migration: the state of a user backend (libslirp's), subsection user-net */
    uint32_t user_state_version, user_state_len;
    uint8_t user_state[USER_STATE_MAX];
    void *start_hook;        /* machine_add_start_hook handle */
};

static inline VirtIONet *to_net(VirtIODevice *vdev)
{
    return (VirtIONet *)((uint8_t *)vdev - offsetof(VirtIONet, vdev));
}

static bool has(VirtIONet *n, unsigned bit)
{
    return virtio_has_feature(&n->vdev, bit);
}

/* ---- link status ---- */

/* The config space is little-endian (virtio 1.x), whatever the host is. */
static void cfg_store_le16(VirtIONet *n, unsigned off, uint16_t v)
{
    n->vdev.config[off] = (uint8_t)v;
    n->vdev.config[off + 1] = (uint8_t)(v >> 8);
}

static void net_store_status(VirtIONet *n)
{
    cfg_store_le16(n, CFG_STATUS, (n->link_up ? VIRTIO_NET_S_LINK_UP : 0) |
                                  (n->announce_pending ? VIRTIO_NET_S_ANNOUNCE : 0));
}

static void net_update_link(VirtIONet *n)
{
    NetClientState *nc = n->qp[0].nc;
    bool up = !nc->link_down && nc->peer && !nc->peer->link_down;

    if (up == n->link_up) {
        return;
    }
    n->link_up = up;
    net_store_status(n);
    if (n->vdev.status & VIRTIO_STATUS_DRIVER_OK) {
        virtio_config_changed(&n->vdev);
    }
}

static void nic_link_changed(NetClientState *nc)
{
    NetQueuePair *q = nc->opaque;
    net_update_link(q->n);
}

/* ---- rx ---- */

static bool rx_filter_ok(VirtIONet *n, const uint8_t *f, size_t len)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

    if (len < 14) {
        return false;
    }
    if (n->rx.promisc) {
        return true;
    }
    if (has(n, VIRTIO_NET_F_CTRL_VLAN) && len >= 16 && f[12] == 0x81 && f[13] == 0x00) {
        unsigned vid = ((f[14] << 8) | f[15]) & 0xfff;
        if (!(n->vlans[vid >> 5] & (1u << (vid & 31)))) {
            return false;
        }
    }
    if (f[0] & 1) {
        if (memcmp(f, bcast, 6) == 0) {
            return !n->rx.nobcast;
        }
        if (n->rx.nomulti) {
            return false;
        }
        if (n->rx.allmulti || n->rx.multi_overflow) {
            return true;
        }
        for (unsigned i = 0; i < n->rx.n_multi; i++) {
            if (memcmp(f, n->multi[i], 6) == 0) {
                return true;
            }
        }
        return false;
    }
    if (n->rx.nouni) {
        return false;
    }
    if (n->rx.alluni || n->rx.uni_overflow || memcmp(f, n->mac, 6) == 0) {
        return true;
    }
    for (unsigned i = 0; i < n->rx.n_uni; i++) {
        if (memcmp(f, n->uni[i], 6) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether rx frames go to the guest at all (else they are dropped, not queued). */
static bool rx_active(NetQueuePair *q)
{
    VirtIONet *n = q->n;
    return (n->vdev.status & VIRTIO_STATUS_DRIVER_OK) && !n->vdev.broken &&
           q->index < n->curr_pairs && q->rx->enabled;
}

static bool nic_can_receive(NetClientState *nc)
{
    NetQueuePair *q = nc->opaque;

    if (!rx_active(q)) {
        return true; /* receive drops it */
    }
    if (virtqueue_empty(q->rx)) {
        /* Ask for a kick when buffers come, then look again in case they just did. */
        virtqueue_set_notification(q->rx, true);
        if (virtqueue_empty(q->rx)) {
            return false;
        }
    }
    if (q->rx->notification) {
        /* Buffers are there: no kicks while we use them (once, not per frame). */
        virtqueue_set_notification(q->rx, false);
    }
    return true;
}

/* Makes the filled rx elements visible to the driver and interrupts it once. */
static void rx_publish(NetQueuePair *q)
{
    if (q->rx_unpublished) {
        virtqueue_flush(q->rx, q->rx_unpublished);
        q->rx_unpublished = 0;
        virtio_queue_notify_driver(&q->n->vdev, q->rx);
    }
}

/* The backend's burst ended (net_burst_end): publish what it brought. */
static void nic_burst_end(NetClientState *nc)
{
    rx_publish(nc->opaque);
}

/* Copies [skip, skip + len) of src into dst at dst_off; returns the bytes copied. */
static size_t iov_copy(const struct iovec *dst, unsigned dn, size_t dst_off,
                       const struct iovec *src, int sn, size_t skip, size_t len)
{
    size_t done = 0;

    for (int i = 0; i < sn && done < len; i++) {
        if (skip >= src[i].iov_len) {
            skip -= src[i].iov_len;
            continue;
        }
        size_t c = MIN(src[i].iov_len - skip, len - done);
        size_t w = virtio_iov_from_buf(dst, dn, dst_off + done,
                                       (uint8_t *)src[i].iov_base + skip, c);
        done += w;
        if (w < c) {
            break;
        }
        skip = 0;
    }
    return done;
}

static ssize_t nic_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    NetQueuePair *q = nc->opaque;
    VirtIONet *n = q->n;
    size_t size = net_iov_size(iov, iovcnt);
    size_t hdr_in = nc->vnet_hdr ? NET_VNET_HDR_LEN : 0;  /* header from the backend */
    NetVnetHdr hdr = { 0 };
    uint8_t head[18];
    VirtQueueElement *elems[VIRTQUEUE_MAX_SIZE];
    unsigned ne = 0;

    if (!rx_active(q) || size <= hdr_in) {
        n->rx_dropped++;
        return (ssize_t)size;
    }
    size_t frame_len = size - hdr_in;
    size_t head_len = MIN(frame_len, sizeof(head));
    struct iovec hv = { .iov_base = head, .iov_len = head_len };
    iov_copy(&hv, 1, 0, iov, iovcnt, hdr_in, head_len);
    if (!rx_filter_ok(n, head, frame_len)) {
        return (ssize_t)size; /* filtered out, as the guest asked */
    }
    if (hdr_in) {
        struct iovec h = { .iov_base = &hdr, .iov_len = NET_VNET_HDR_LEN };
        iov_copy(&h, 1, 0, iov, iovcnt, 0, NET_VNET_HDR_LEN);
    }

    /* Gather enough buffers for header + frame before writing anything. */
    size_t need = NET_VNET_HDR_LEN + frame_len, have = 0;
    while (have < need) {
        if (ne == G_N_ELEMENTS(elems) || (ne && !has(n, VIRTIO_NET_F_MRG_RXBUF))) {
            goto too_big;
        }
        VirtQueueElement *e = virtqueue_pop(q->rx);
        if (!e) {
            if (n->vdev.broken) {
                goto drop_popped;
            }
            /* Not enough buffers now: put back what we took, wait for a kick. */
            while (ne) {
                virtqueue_unpop(q->rx, elems[--ne]);
            }
            virtqueue_set_notification(q->rx, true);
            return 0;
        }
        elems[ne++] = e;
        if (e->in_len == 0 || (ne == 1 && e->in_len < NET_VNET_HDR_LEN)) {
            virtio_error(&n->vdev, "rx buffer %u of %zu bytes cannot hold a header",
                         e->head, e->in_len);
            goto drop_popped;
        }
        have += e->in_len;
    }

    hdr.num_buffers = (uint16_t)ne;
    size_t frame_off = 0;
    for (unsigned i = 0; i < ne; i++) {
        VirtQueueElement *e = elems[i];
        size_t off = 0, room = e->in_len;
        if (i == 0) {
            virtio_iov_from_buf(e->in_sg, e->in_num, 0, &hdr, NET_VNET_HDR_LEN);
            off = NET_VNET_HDR_LEN;
        }
        size_t c = MIN(room - off, frame_len - frame_off);
        iov_copy(e->in_sg, e->in_num, off, iov, iovcnt, hdr_in + frame_off, c);
        frame_off += c;
        /* After the elements of earlier frames of this burst, still unpublished. */
        virtqueue_fill(q->rx, e, (uint32_t)(off + c), q->rx_unpublished + i);
    }
    for (unsigned i = 0; i < ne; i++) {
        virtqueue_element_free(elems[i]);
    }
    /* In a burst the used index moves (and the driver hears) once per RX_PUBLISH_BATCH
     * elements and at its end: fewer stores to the line the driver polls, and one
     * interrupt instead of one per frame. */
    q->rx_unpublished += ne;
    if (!nc->burst || q->rx_unpublished >= RX_PUBLISH_BATCH) {
        rx_publish(q);
    }
    return (ssize_t)size;

too_big:
    /* The guest's buffers cannot hold this frame: never write past them; drop it. */
    while (ne) {
        virtqueue_unpop(q->rx, elems[--ne]);
    }
    n->rx_dropped++;
    return (ssize_t)size;
drop_popped:
    while (ne) {
        virtqueue_element_free(elems[--ne]);
    }
    n->rx_dropped++;
    return (ssize_t)size;
}

static void net_handle_rx(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *n = to_net(vdev);
    NetQueuePair *q = &n->qp[vq->index / 2];

    /* New buffers: deliver what waited, and let a backend that paused read again. */
    net_client_flush(q->nc);
}

/* ---- tx ---- */

static gboolean tx_continue(gpointer opaque);

static void net_tx_burst(NetQueuePair *q)
{
    VirtIONet *n = q->n;
    VirtQueueElement *e;
    unsigned done = 0;
    bool more = false;

    for (;;) {
        virtqueue_set_notification(q->tx, false);
        while (done < TX_BURST && (e = virtqueue_pop(q->tx))) {
            if (e->out_len < NET_VNET_HDR_LEN || e->in_num) {
                virtio_error(&n->vdev, "tx request %u: %zu readable bytes and %u writable "
                             "buffers (want a 12-byte header, nothing writable)",
                             e->head, e->out_len, e->in_num);
                virtqueue_element_free(e);
                goto publish; /* the requests before it did complete: tell the driver */
            }
            /* The backend takes the header only when it speaks vnet_hdr. */
            size_t skip = q->nc->vnet_hdr ? 0 : NET_VNET_HDR_LEN;
            struct iovec iov[VIRTQUEUE_MAX_SEGS];
            int cnt = (int)virtio_iov_slice(iov, e->out_sg, e->out_num, skip,
                                            e->out_len - skip);
            if (!net_send(q->nc, iov, cnt)) {
                n->tx_dropped++;
            }
            virtqueue_push(q->tx, e, 0);
            virtqueue_element_free(e);
            done++;
        }
        if (done >= TX_BURST) {
            more = !virtqueue_empty(q->tx);
            break;
        }
        virtqueue_set_notification(q->tx, true);
        if (virtqueue_empty(q->tx)) {
            break;
        }
    }
publish:
    if (done) {
        virtio_queue_notify_driver(&n->vdev, q->tx);
    }
    if (more && !q->tx_more) {
        /* Let the main loop breathe; the rest follows from an idle source. */
        q->tx_more = g_idle_add(tx_continue, q);
    } else if (!more) {
        virtqueue_set_notification(q->tx, true);
    }
}

static gboolean tx_continue(gpointer opaque)
{
    NetQueuePair *q = opaque;
    Machine *m = q->n->m;

    machine_lock(m);
    q->tx_more = 0;
    if (!machine_devices_active(m)) {
        q->tx_held = true; /* no guest memory changes behind a saved state */
    } else if (!q->n->vdev.broken && q->tx->enabled) {
        net_tx_burst(q);
    }
    machine_unlock(m);
    return G_SOURCE_REMOVE;
}

static void net_handle_tx(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *n = to_net(vdev);
    net_tx_burst(&n->qp[vq->index / 2]);
}

/* ---- control queue ---- */

/* Command data is little-endian (virtio 1.x), whatever the host is. */
static uint16_t ld_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t ld_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint8_t ctrl_rx(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    bool *flags[] = { &n->rx.promisc, &n->rx.allmulti, &n->rx.alluni, &n->rx.nomulti,
                      &n->rx.nouni, &n->rx.nobcast };

    if (len != 1 || cmd >= G_N_ELEMENTS(flags) ||
        (cmd >= 2 && !has(n, VIRTIO_NET_F_CTRL_RX_EXTRA))) {
        return VIRTIO_NET_ERR;
    }
    *flags[cmd] = data[0] != 0;
    return VIRTIO_NET_OK;
}

/* One table of a MAC_TABLE_SET: le32 entries, then entries * 6 bytes. */
static bool mac_table_parse(const uint8_t **p, size_t *left, uint8_t (*table)[6],
                            unsigned *count, bool *overflow)
{
    uint32_t entries;

    if (*left < 4) {
        return false;
    }
    entries = ld_le32(*p);
    *p += 4;
    *left -= 4;
    if (entries > *left / 6) {
        return false;
    }
    *overflow = entries > MAC_TABLE_SIZE;
    *count = *overflow ? 0 : entries;
    memcpy(table, *p, (size_t)*count * 6);
    *p += (size_t)entries * 6;
    *left -= (size_t)entries * 6;
    return true;
}

static uint8_t ctrl_mac(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    if (cmd == 1) { /* ADDR_SET */
        if (len != 6 || !has(n, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
            return VIRTIO_NET_ERR;
        }
        memcpy(n->mac, data, 6);
        memcpy(n->vdev.config + CFG_MAC, n->mac, 6);
        return VIRTIO_NET_OK;
    }
    if (cmd != 0) {
        return VIRTIO_NET_ERR;
    }
    /* TABLE_SET: unicast then multicast; applied only when both parse. */
    uint8_t uni[MAC_TABLE_SIZE][6], multi[MAC_TABLE_SIZE][6];
    unsigned nu, nm;
    bool ou, om;
    if (!mac_table_parse(&data, &len, uni, &nu, &ou) ||
        !mac_table_parse(&data, &len, multi, &nm, &om) || len) {
        return VIRTIO_NET_ERR;
    }
    memcpy(n->uni, uni, sizeof(uni));
    memcpy(n->multi, multi, sizeof(multi));
    n->rx.n_uni = nu;
    n->rx.n_multi = nm;
    n->rx.uni_overflow = ou;
    n->rx.multi_overflow = om;
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_vlan(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    uint16_t vid;

    if (len != 2 || cmd > 1) {
        return VIRTIO_NET_ERR;
    }
    vid = ld_le16(data);
    if (vid >= MAX_VLAN) {
        return VIRTIO_NET_ERR;
    }
    if (cmd == 0) {
        n->vlans[vid >> 5] |= 1u << (vid & 31);
    } else {
        n->vlans[vid >> 5] &= ~(1u << (vid & 31));
    }
    return VIRTIO_NET_OK;
}

/* The guest uses this many queue pairs: a multiqueue backend steers only to those. */
static void net_set_pairs(VirtIONet *n, unsigned pairs)
{
    n->curr_pairs = pairs;
    for (unsigned i = 0; n->max_pairs > 1 && i < n->max_pairs; i++) {
        NetClientState *peer = n->qp[i].nc->peer;
        if (peer && peer->info->queue_enable) {
            peer->info->queue_enable(peer, i < pairs);
        }
    }
}

static uint8_t ctrl_mq(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    uint16_t pairs;

    if (cmd != 0 || len != 2 || !has(n, VIRTIO_NET_F_MQ)) {
        return VIRTIO_NET_ERR;
    }
    pairs = ld_le16(data);
    if (pairs < 1 || pairs > n->max_pairs) {
        return VIRTIO_NET_ERR;
    }
    net_set_pairs(n, pairs);
    return VIRTIO_NET_OK;
}

static void net_announce_done(VirtIONet *n);

static uint8_t ctrl_announce(VirtIONet *n, uint8_t cmd, size_t len)
{
    if (cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK || len != 0 || !n->announce_pending) {
        return VIRTIO_NET_ERR;
    }
    net_announce_done(n);
    return VIRTIO_NET_OK;
}

static void net_handle_ctrl(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *n = to_net(vdev);
    VirtQueueElement *e;
    bool pushed = false;

    while ((e = virtqueue_pop(vq))) {
        uint8_t buf[4 + 6 * (MAC_TABLE_SIZE + 1) * 2 + 16];
        uint8_t ack = VIRTIO_NET_ERR;

        if (e->out_len < 2 || e->in_len < 1) {
            virtio_error(vdev, "control request %u: %zu readable and %zu writable bytes",
                         e->head, e->out_len, e->in_len);
            virtqueue_element_free(e);
            break;
        }
        /* Larger commands than any valid one get an error ack, not a bigger buffer. */
        if (e->out_len <= sizeof(buf)) {
            size_t len = virtio_iov_to_buf(e->out_sg, e->out_num, 0, buf, e->out_len);
            const uint8_t *data = buf + 2;
            len -= 2;
            switch (buf[0]) {
            case VIRTIO_NET_CTRL_RX:
                ack = has(n, VIRTIO_NET_F_CTRL_RX) ? ctrl_rx(n, buf[1], data, len)
                                                   : VIRTIO_NET_ERR;
                break;
            case VIRTIO_NET_CTRL_MAC:
                ack = ctrl_mac(n, buf[1], data, len);
                break;
            case VIRTIO_NET_CTRL_VLAN:
                ack = has(n, VIRTIO_NET_F_CTRL_VLAN) ? ctrl_vlan(n, buf[1], data, len)
                                                     : VIRTIO_NET_ERR;
                break;
            case VIRTIO_NET_CTRL_MQ:
                ack = ctrl_mq(n, buf[1], data, len);
                break;
            case VIRTIO_NET_CTRL_ANNOUNCE:
                ack = has(n, VIRTIO_NET_F_GUEST_ANNOUNCE) ? ctrl_announce(n, buf[1], len)
                                                          : VIRTIO_NET_ERR;
                break;
            default:
                break;
            }
        }
        virtio_iov_from_buf(e->in_sg, e->in_num, e->in_len - 1, &ack, 1);
        virtqueue_push(vq, e, 1);
        virtqueue_element_free(e);
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(vdev, vq);
    }
}

/* ---- VM stopped: the NIC holds still ---- */

/* While the VM is stopped frames wait in the net queue (bounded): writing them into
 * guest RAM would change memory and rings behind the state a migration saves. */
static bool nic_can_receive_running(NetClientState *nc)
{
    NetQueuePair *q = nc->opaque;
    return machine_devices_active(q->n->m) && nic_can_receive(nc);
}

static ssize_t nic_receive_running(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    NetQueuePair *q = nc->opaque;
    return machine_devices_active(q->n->m) ? nic_receive(nc, iov, iovcnt) : 0;
}

/* Start hook (main thread, VM lock not held): deliver what waited, finish held bursts. */
static void net_vm_started(void *opaque)
{
    VirtIONet *n = opaque;

    machine_lock(n->m);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetQueuePair *q = &n->qp[i];
        net_client_flush(q->nc);
        if (q->tx_held) {
            q->tx_held = false;
            if (!n->vdev.broken && q->tx->enabled) {
                net_tx_burst(q);
            }
        }
    }
    machine_unlock(n->m);
}

/* ---- announce ---- */

/*
 * After a migration (post_load) the destination sends rounds paced as
 * net_announce_defaults (5 rounds, 50 ms, 150 ms, 250 ms ... apart; announce-self
 * chooses its own) on the virtual clock, so they start when the VM runs.  Each
 * round sends QEMU's RARP frame from our MAC on every queue pair's link, as QEMU's
 * announce-self does for every NIC, and, when the driver negotiated GUEST_ANNOUNCE (with
 * the control queue), sets VIRTIO_NET_S_ANNOUNCE and raises a config interrupt: the guest
 * then sends gratuitous ARPs for its addresses and acks with VIRTIO_NET_CTRL_ANNOUNCE_ACK,
 * which clears the bit.  A round finding the bit still set does not notify again.
 */
static bool guest_announces(VirtIONet *n)
{
    return (n->vdev.status & VIRTIO_STATUS_DRIVER_OK) &&
           has(n, VIRTIO_NET_F_GUEST_ANNOUNCE) && has(n, VIRTIO_NET_F_CTRL_VQ);
}

static void net_announce_round(void *opaque)
{
    VirtIONet *n = opaque;
    uint8_t frame[NET_ANNOUNCE_FRAME_LEN];

    if (!n->announce_rounds) {
        return;
    }
    net_announce_rarp(frame, n->mac);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        net_nic_send_frame(n->qp[i].nc, frame, sizeof(frame));
    }
    if (guest_announces(n) && !n->announce_pending) {
        n->announce_pending = true;
        net_store_status(n);
        virtio_config_changed(&n->vdev);
    }
    n->announce_rounds--;
    if (n->announce_rounds) {
        unsigned done = n->announce.rounds - n->announce_rounds - 1;
        timer_mod(n->announce_timer, virt_clock_get_ns(n->m->clock) +
                                     net_announce_delay_ns(&n->announce, done));
    }
}

/* A new announcement replaces one still running. */
static void net_announce_start(VirtIONet *n, const NetAnnounceParams *p)
{
    if (!n->announce_timer) {
        return; /* a machine without a clock (unit tests): nothing to pace rounds with */
    }
    n->announce = *p;
    n->announce_rounds = p->rounds;
    if (p->rounds) {
        timer_mod(n->announce_timer, virt_clock_get_ns(n->m->clock));
    } else {
        timer_del(n->announce_timer);
    }
}

static void nic_announce(NetClientState *nc, const NetAnnounceParams *p)
{
    NetQueuePair *q = nc->opaque;
    net_announce_start(q->n, p);
}

/* The driver acked (or the device was reset): the guest's announcement is done. */
static void net_announce_done(VirtIONet *n)
{
    n->announce_pending = false;
    net_store_status(n);
}

/* ---- virtio ops ---- */

static void net_rx_filter_reset(VirtIONet *n)
{
    /* QEMU's reset state: promiscuous until the driver says otherwise. */
    n->rx.promisc = true;
    n->rx.allmulti = n->rx.alluni = n->rx.nomulti = n->rx.nouni = n->rx.nobcast = false;
    n->rx.n_uni = n->rx.n_multi = 0;
    n->rx.uni_overflow = n->rx.multi_overflow = false;
    memset(n->vlans, 0, sizeof(n->vlans));
}

static void net_vdev_reset(VirtIODevice *vdev)
{
    VirtIONet *n = to_net(vdev);

    net_rx_filter_reset(n);
    net_set_pairs(n, 1);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        net_client_purge(n->qp[i].nc);
        if (n->qp[i].tx_more) {
            g_source_remove(n->qp[i].tx_more);
            n->qp[i].tx_more = 0;
        }
        n->qp[i].tx_held = false;
        n->qp[i].rx_unpublished = 0; /* the rings are gone with the reset */
    }
    memcpy(n->vdev.config + CFG_MAC, n->mac, 6);
    net_announce_done(n); /* RARP rounds still due keep going: the MAC moved all the same */
}

static void net_config_write(VirtIODevice *vdev, uint32_t offset, unsigned size)
{
    VirtIONet *n = to_net(vdev);

    /* The config space is read-only for a VERSION_1 driver: undo the store. */
    memcpy(vdev->config + CFG_MAC, n->mac, 6);
    net_store_status(n);
    cfg_store_le16(n, CFG_MAX_PAIRS, (uint16_t)n->max_pairs);
}

static void net_set_status(VirtIODevice *vdev, uint8_t status)
{
    VirtIONet *n = to_net(vdev);

    if (!(status & VIRTIO_STATUS_DRIVER_OK)) {
        return;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        net_client_flush(n->qp[i].nc);
    }
}

/* The negotiated guest offloads go to a vnet_hdr backend (tap), which then may hand us
 * partial checksums and large segments; without CTRL_VLAN every VLAN passes. */
static void net_apply_features(VirtIONet *n, uint64_t features)
{
    unsigned tun = 0;

    if (!(features & (1ull << VIRTIO_NET_F_CTRL_VLAN))) {
        memset(n->vlans, 0xff, sizeof(n->vlans));
    }
    if (features & (1ull << VIRTIO_NET_F_GUEST_CSUM)) {
        tun |= TUN_F_CSUM;
        tun |= (features & (1ull << VIRTIO_NET_F_GUEST_TSO4)) ? TUN_F_TSO4 : 0;
        tun |= (features & (1ull << VIRTIO_NET_F_GUEST_TSO6)) ? TUN_F_TSO6 : 0;
        tun |= (features & (1ull << VIRTIO_NET_F_GUEST_ECN)) ? TUN_F_TSO_ECN : 0;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetClientState *peer = n->qp[i].nc->peer;
        if (peer && peer->info->set_offload && n->vnet_hdr) {
            peer->info->set_offload(peer, tun);
        }
    }
}

static bool net_features_ok(VirtIODevice *vdev, uint64_t features)
{
    net_apply_features(to_net(vdev), features);
    return true;
}

static const VirtIODeviceOps net_ops = {
    .reset = net_vdev_reset,
    .config_write = net_config_write,
    .set_status = net_set_status,
    .features_ok = net_features_ok,
};

/* ---- net client of the NIC ---- */

static bool nic_has_vnet_hdr(NetClientState *nc)
{
    return true; /* the NIC always speaks it; the backend decides */
}

static void nic_rx_filter_query(NetClientState *nc, NetRxFilter *out)
{
    NetQueuePair *q = nc->opaque;
    VirtIONet *n = q->n;

    *out = n->rx;
    memcpy(out->mac, n->mac, 6);
    out->vlan_filtering = has(n, VIRTIO_NET_F_CTRL_VLAN);
    out->vlans = g_array_new(FALSE, FALSE, sizeof(int));
    for (int vid = 0; out->vlan_filtering && vid < MAX_VLAN; vid++) {
        if (n->vlans[vid >> 5] & (1u << (vid & 31))) {
            g_array_append_val(out->vlans, vid);
        }
    }
}

static const NetClientInfo nic_info = {
    .type = "nic",
    .receive = nic_receive_running,
    .can_receive = nic_can_receive_running,
    .burst_end = nic_burst_end,
    .link_changed = nic_link_changed,
    .has_vnet_hdr = nic_has_vnet_hdr,
};

/* ---- migration ---- */

/*
 * The section: the virtio-pci transport (PCI config, registers, features, config space,
 * every queue's rings and indices), the MAC (the driver may have set it), the queue
 * pairs in use, set_link on the NIC, the rx filter and whether the guest owes an
 * announce ack.  Not migrated: frames waiting in the net queues (the VM is stopped, so
 * they are just more frames lost in transit) and the drop counters.  Backends carry no
 * state (tap, bridge, socket), except a user backend: libslirp's own state (DHCP leases,
 * IP id; not the NAT connections) rides in the user-net subsection, as QEMU migrates it
 * (docs/networking.md#migration).
 */

/* The backend if it is a user network (libslirp), else NULL. */
static NetClientState *user_backend(VirtIONet *n)
{
    NetClientState *peer = n->qp[0].nc->peer;
    return peer && strcmp(peer->info->type, "user") == 0 ? peer : NULL;
}

static bool virtio_net_pre_save(void *opaque, Error **errp)
{
    VirtIONet *n = opaque;
    NetClientState *user = user_backend(n);

    n->user_state_len = 0;
    if (user) {
        g_autoptr(GByteArray) st = g_byte_array_new();
        n->user_state_version = (uint32_t)net_slirp_state_save(user, st);
        if (st->len > USER_STATE_MAX) {
            error_setg(errp, "netdev %s: %u bytes of user network state, more than the "
                       "%d the section holds", user->name, st->len, USER_STATE_MAX);
            return false;
        }
        memcpy(n->user_state, st->data, st->len);
        n->user_state_len = st->len;
    }
    n->nic_link_down = n->qp[0].nc->link_down;
    /* A backend's rx burst ends within one main-loop callback, so nothing is left
     * unpublished here; if it were, the used index saved would lag the ring in RAM. */
    for (unsigned i = 0; i < n->max_pairs; i++) {
        rx_publish(&n->qp[i]);
    }
    return true;
}

/* A section without the user-net subsection must not leave an earlier load's behind. */
static bool virtio_net_pre_load(void *opaque, Error **errp)
{
    VirtIONet *n = opaque;
    n->user_state_len = 0;
    return true;
}

static bool virtio_net_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIONet *n = opaque;
    VirtIODevice *vdev = &n->vdev;
    const char *id = n->qp[0].nc->name;
    NetClientState *user = user_backend(n);

    if (n->curr_pairs < 1 || n->curr_pairs > n->max_pairs ||
        (n->curr_pairs > 1 && !has(n, VIRTIO_NET_F_MQ))) {
        error_setg(errp, "virtio-net %s: the source uses %" PRIu32 " queue pairs, this "
                   "device has %" PRIu32 "%s", id, n->curr_pairs, n->max_pairs,
                   has(n, VIRTIO_NET_F_MQ) ? "" : " and no multiqueue negotiated");
        return false;
    }
    if ((n->rx.uni_overflow && n->rx.n_uni) || (n->rx.multi_overflow && n->rx.n_multi)) {
        error_setg(errp, "virtio-net %s: a MAC table both overflowed and holds entries",
                   id);
        return false;
    }
    if (n->announce_pending && !has(n, VIRTIO_NET_F_GUEST_ANNOUNCE)) {
        error_setg(errp, "virtio-net %s: an announce is pending without GUEST_ANNOUNCE",
                   id);
        return false;
    }
    /* The source's NAT state goes to a user backend here; another backend has no use
     * for it (the device set must match, not the backends). */
    if (n->user_state_len && user &&
        !net_slirp_state_load(user, (int)n->user_state_version, n->user_state,
                              n->user_state_len, errp)) {
        return false;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        n->qp[i].nc->link_down = n->nic_link_down;
    }
    /* What the guest last saw, then this host's link: a change is a config interrupt. */
    n->link_up = vdev->config[CFG_STATUS] & VIRTIO_NET_S_LINK_UP;
    memcpy(vdev->config + CFG_MAC, n->mac, 6);
    net_store_status(n);
    cfg_store_le16(n, CFG_MAX_PAIRS, (uint16_t)n->max_pairs);
    net_set_pairs(n, n->curr_pairs);
    if (vdev->status & VIRTIO_STATUS_FEATURES_OK) {
        net_apply_features(n, vdev->guest_features);
    }
    net_update_link(n);
    net_announce_start(n, &net_announce_defaults);
    return true;
}

static const VMStateField rx_mode_fields[] = {
    VMSTATE_BOOL(promisc, NetRxFilter),
    VMSTATE_BOOL(allmulti, NetRxFilter),
    VMSTATE_BOOL(alluni, NetRxFilter),
    VMSTATE_BOOL(nomulti, NetRxFilter),
    VMSTATE_BOOL(nouni, NetRxFilter),
    VMSTATE_BOOL(nobcast, NetRxFilter),
    VMSTATE_BOOL(uni_overflow, NetRxFilter),
    VMSTATE_BOOL(multi_overflow, NetRxFilter),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc rx_mode_vmsd = {
    .name = "virtio-net-rx-mode",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = rx_mode_fields,
};

static bool user_net_needed(void *opaque)
{
    return ((VirtIONet *)opaque)->user_state_len > 0;
}

static const VMStateField user_net_fields[] = {
    VMSTATE_UINT32(user_state_version, VirtIONet),
    VMSTATE_VARRAY(user_state, VirtIONet, user_state_len, USER_STATE_MAX, VMS_U8),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc user_net_vmsd = {
    .name = "virtio-net-pci/user-net",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = user_net_fields,
    .needed = user_net_needed,
};

static const VMStateDesc *const virtio_net_subsections[] = { &user_net_vmsd, NULL };

static const VMStateField virtio_net_fields[] = {
    VMSTATE_VIRTIO_PCI(proxy, VirtIONet),
    VMSTATE_UINT8_ARRAY(mac, VirtIONet, 6),
    VMSTATE_UINT32(curr_pairs, VirtIONet),
    VMSTATE_BOOL(nic_link_down, VirtIONet),
    VMSTATE_STRUCT(rx, VirtIONet, rx_mode_vmsd, NetRxFilter),
    VMSTATE_VARRAY(uni, VirtIONet, rx.n_uni, MAC_TABLE_SIZE, VMS_BUFFER),
    VMSTATE_VARRAY(multi, VirtIONet, rx.n_multi, MAC_TABLE_SIZE, VMS_BUFFER),
    VMSTATE_UINT32_ARRAY(vlans, VirtIONet, MAX_VLAN / 32),
    VMSTATE_BOOL(announce_pending, VirtIONet),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc virtio_net_vmsd = {
    .name = "virtio-net-pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_net_fields,
    .subsections = virtio_net_subsections,
    .pre_save = virtio_net_pre_save,
    .pre_load = virtio_net_pre_load,
    .post_load = virtio_net_post_load,
};

/* ---- device ---- */

static void virtio_net_reset(DeviceState *dev)
{
    VirtIONet *n = (VirtIONet *)dev;
    virtio_pci_reset(&n->proxy);
}

static void virtio_net_unrealize(DeviceState *dev);

static unsigned nic_index(Machine *m)
{
    GPtrArray *nics = net_nics(m);
    unsigned idx = 0;

    for (guint i = 0; i < nics->len; i++) {
        NetClientState *nc = g_ptr_array_index(nics, i);
        idx += strcmp(nc->model, "virtio-net-pci") == 0;
    }
    return idx;
}

static bool virtio_net_realize(DeviceState *dev, Machine *m, Error **errp)
{
    VirtIONet *n = (VirtIONet *)dev;
    GPtrArray *backend = NULL;
    uint64_t features;

    n->m = m;
    if (n->mac_str && !net_parse_mac(n->mac_str, n->mac)) {
        error_setg(errp, "mac=%s: not a MAC address (want xx:xx:xx:xx:xx:xx)", n->mac_str);
        return false;
    }
    if (n->mac_str && (n->mac[0] & 1)) {
        error_setg(errp, "mac=%s: a multicast address cannot be a NIC's", n->mac_str);
        return false;
    }
    if (n->netdev) {
        backend = net_netdev_find(m, n->netdev);
        if (!backend) {
            error_setg(errp, "netdev=%s: no -netdev with that id", n->netdev);
            return false;
        }
        for (guint i = 0; i < backend->len; i++) {
            NetClientState *b = g_ptr_array_index(backend, i);
            if (b->peer) {
                error_setg(errp, "netdev=%s: already in use by %s", n->netdev,
                           b->peer->name);
                return false;
            }
        }
        if (backend->len > 1 && !n->mq) {
            error_setg(errp, "netdev=%s has %u queues: add mq=on", n->netdev, backend->len);
            return false;
        }
    }
    if (!pci_device_realize(&n->proxy.pci, m, errp)) {
        return false;
    }
    if (!n->mac_str) {
        net_default_mac(m, n->mac);
    }
    n->max_pairs = backend ? MAX(backend->len, 1) : 1;

    /* Our clients first, so the backend's vnet_hdr answer is known for the features. */
    g_autofree char *name = dev->id ? g_strdup(dev->id) :
                            g_strdup_printf("virtio-net-pci.%u", nic_index(m));
    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetQueuePair *q = &n->qp[i];
        q->n = n;
        q->index = i;
        q->nc = net_client_new(m, &nic_info, "virtio-net-pci", name, i);
        q->nc->opaque = q;
        q->nc->is_nic = true;
        q->nc->rx_filter_query = nic_rx_filter_query;
        q->nc->announce = nic_announce;
        net_client_set_info_str(q->nc, "model=virtio-net-pci,macaddr=%02x:%02x:%02x:%02x:"
                                "%02x:%02x", n->mac[0], n->mac[1], n->mac[2], n->mac[3],
                                n->mac[4], n->mac[5]);
        if (backend) {
            net_link(q->nc, g_ptr_array_index(backend, i));
        }
    }
    n->vnet_hdr = n->qp[0].nc->vnet_hdr;
    net_set_pairs(n, 1); /* until the driver asks for more */
    net_nic_register(m, n->qp[0].nc);

    features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) |
               (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |
               (1ull << VIRTIO_NET_F_CTRL_VLAN) | (1ull << VIRTIO_NET_F_CTRL_RX_EXTRA) |
               (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR);
    if (n->mrg_rxbuf) {
        features |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
    }
    if (n->max_pairs > 1) {
        features |= 1ull << VIRTIO_NET_F_MQ;
    }
    if (n->guest_announce) {
        features |= 1ull << VIRTIO_NET_F_GUEST_ANNOUNCE;
    }
    if (n->vnet_hdr) {
        if (n->csum) {
            features |= (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4) |
                        (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN);
        }
        if (n->guest_csum) {
            features |= (1ull << VIRTIO_NET_F_GUEST_CSUM) |
                        (1ull << VIRTIO_NET_F_GUEST_TSO4) |
                        (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN);
        }
    }
    virtio_init(&n->vdev, "virtio-net", VIRTIO_ID_NET, &net_ops, m->mem, features, CFG_SIZE,
                n->max_pairs * 2 + 1);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        n->qp[i].rx = virtio_add_queue(&n->vdev, 2 * i, NET_QUEUE_SIZE, net_handle_rx);
        n->qp[i].tx = virtio_add_queue(&n->vdev, 2 * i + 1, NET_QUEUE_SIZE, net_handle_tx);
    }
    n->ctrl = virtio_add_queue(&n->vdev, 2 * n->max_pairs, 64, net_handle_ctrl);
    uint16_t pairs = (uint16_t)n->max_pairs;
    memcpy(n->vdev.config + CFG_MAC, n->mac, 6);
    memcpy(n->vdev.config + CFG_MAX_PAIRS, &pairs, 2);
    net_update_link(n); /* the config status starts at 0: link down */
    n->rx.uni = (const uint8_t (*)[6])n->uni;
    n->rx.multi = (const uint8_t (*)[6])n->multi;
    net_rx_filter_reset(n);
    if (m->clock) {
        n->announce_timer = timer_new(m->clock, net_announce_round, n);
    }
    n->start_hook = machine_add_start_hook(m, net_vm_started, n);
    if (!virtio_pci_realize(&n->proxy, &n->vdev, m, 0x020000, errp)) {
        virtio_net_unrealize(dev); /* the registry only unrealizes realized devices */
        return false;
    }
    return true;
}

static void virtio_net_unrealize(DeviceState *dev)
{
    VirtIONet *n = (VirtIONet *)dev;

    if (n->start_hook) {
        machine_remove_start_hook(n->m, n->start_hook);
        n->start_hook = NULL;
    }
    g_clear_pointer(&n->announce_timer, timer_free);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (n->qp[i].tx_more) {
            g_source_remove(n->qp[i].tx_more);
            n->qp[i].tx_more = 0;
        }
    }
    if (n->qp[0].nc) {
        net_nic_unregister(n->m, n->qp[0].nc);
    }
    virtio_pci_unrealize(&n->proxy);
    virtio_cleanup(&n->vdev);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        net_client_free(n->qp[i].nc); /* the backend stays, without a peer */
        n->qp[i].nc = NULL;
    }
}

static const PropertyDef virtio_net_props[] = {
    DEFINE_PCI_PROPS(VirtIONet, proxy.pci),
    DEFINE_PROP("netdev", PROP_STRING, VirtIONet, netdev, NULL,
                "id of the -netdev backend (none: the link is down)"),
    DEFINE_PROP("mac", PROP_STRING, VirtIONet, mac_str, NULL,
                "MAC address (default 52:54:00:12:34:56, then 57, ...)"),
    DEFINE_PROP("mq", PROP_BOOL, VirtIONet, mq, "off",
                "multiqueue: one queue pair per backend queue (tap queues=N)"),
    DEFINE_PROP("mrg_rxbuf", PROP_BOOL, VirtIONet, mrg_rxbuf, "on",
                "mergeable rx buffers"),
    DEFINE_PROP("csum", PROP_BOOL, VirtIONet, csum, "on",
                "offer tx checksum/TSO offload (vnet_hdr backends: tap)"),
    DEFINE_PROP("guest_csum", PROP_BOOL, VirtIONet, guest_csum, "on",
                "offer rx checksum/TSO offload (vnet_hdr backends: tap)"),
    DEFINE_PROP("guest_announce", PROP_BOOL, VirtIONet, guest_announce, "on",
                "after a migration, ask the guest to announce itself (GUEST_ANNOUNCE)"),
    { .name = NULL },
};

const DeviceClass virtio_net_pci_class = {
    .name = "virtio-net-pci",
    .desc = "virtio network device",
    .instance_size = sizeof(VirtIONet),
    .props = virtio_net_props,
    .user_creatable = true,
    .realize = virtio_net_realize,
    .reset = virtio_net_reset,
    .unrealize = virtio_net_unrealize,
    .vmsd = &virtio_net_vmsd,
};
