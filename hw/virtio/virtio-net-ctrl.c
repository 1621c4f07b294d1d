/*
 * virtio-net-pci's control queue: rx mode, MAC table and address, VLAN filter, the number
 * of queue pairs and the announce acknowledgement (see virtio-net.c for the device).
 */
#include <string.h>
#include "hw/virtio/virtio-net-internal.h"
#include "sen/iov.h"

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
void virtio_net_set_pairs(VirtIONet *n, unsigned pairs)
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
    virtio_net_set_pairs(n, pairs);
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_announce(VirtIONet *n, uint8_t cmd, size_t len)
{
    if (cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK || len != 0 || !n->announce_pending) {
        return VIRTIO_NET_ERR;
    }
    virtio_net_announce_done(n);
    return VIRTIO_NET_OK;
}

void virtio_net_handle_ctrl(VirtIODevice *vdev, VirtQueue *vq)
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
            size_t len = iov_to_buf(e->out_sg, e->out_num, 0, buf, e->out_len);
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
        iov_from_buf(e->in_sg, e->in_num, e->in_len - 1, &ack, 1);
        virtqueue_push(vq, e, 1);
        virtqueue_element_free(e);
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(vdev, vq);
    }
}
