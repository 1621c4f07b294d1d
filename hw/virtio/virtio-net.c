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
 * The control queue (virtio-net-ctrl.c) implements rx mode, MAC table and address, VLAN
 * filter, the number of queue pairs and the announce acknowledgement, as Linux uses them.
 *
 * While the VM is stopped (paused, migrating, saved) the NIC touches no guest memory:
 * frames from the backend wait in the net queue and a tx burst in progress waits, so the
 * state a migration saves is the state the destination continues from.  After loading,
 * the destination announces the MAC (RARP rounds, and the guest's own announcement with
 * GUEST_ANNOUNCE), see "---- announce ----" in virtio-net-migration.c, which also holds
 * the migration description.  virtio-net-internal.h holds the state shared by the files.
 */
#include <string.h>
#include <linux/if_tun.h>
#include "hw/virtio/virtio-net-internal.h"
#include "sen/iov.h"

/* ---- link status ---- */

/* The config space is little-endian (virtio 1.x), whatever the host is. */
void virtio_net_cfg_store_le16(VirtIONet *n, unsigned off, uint16_t v)
{
    n->vdev.config[off] = (uint8_t)v;
    n->vdev.config[off + 1] = (uint8_t)(v >> 8);
}

void virtio_net_store_status(VirtIONet *n)
{
    virtio_net_cfg_store_le16(n, CFG_STATUS, (n->link_up ? VIRTIO_NET_S_LINK_UP : 0) |
                                  (n->announce_pending ? VIRTIO_NET_S_ANNOUNCE : 0));
}

void virtio_net_update_link(VirtIONet *n)
{
    NetClientState *nc = n->qp[0].nc;
    bool up = !nc->link_down && nc->peer && !nc->peer->link_down;

    if (up == n->link_up) {
        return;
    }
    n->link_up = up;
    virtio_net_store_status(n);
    if (n->vdev.status & VIRTIO_STATUS_DRIVER_OK) {
        virtio_config_changed(&n->vdev);
    }
}

static void nic_link_changed(NetClientState *nc)
{
    NetQueuePair *q = nc->opaque;
    virtio_net_update_link(q->n);
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
/* Moves vq's used index over the *unpublished elements filled since; true if any. */
static bool used_publish(VirtQueue *vq, unsigned *unpublished)
{
    if (!*unpublished) {
        return false;
    }
    virtqueue_flush(vq, *unpublished);
    *unpublished = 0;
    return true;
}

void virtio_net_rx_publish(NetQueuePair *q)
{
    if (used_publish(q->rx, &q->rx_unpublished)) {
        virtio_queue_notify_driver(&q->n->vdev, q->rx);
    }
}

/* The backend's burst ended (net_burst_end): publish what it brought. */
static void nic_burst_end(NetClientState *nc)
{
    virtio_net_rx_publish(nc->opaque);
}

/* ne more rx elements are filled (virtqueue_fill after the unpublished ones). */
static void rx_filled(NetQueuePair *q, unsigned ne)
{
    /* In a burst the used index moves (and the driver hears) once per USED_PUBLISH_BATCH
     * elements and at its end: fewer stores to the line the driver polls, and one
     * interrupt instead of one per frame. */
    q->rx_unpublished += ne;
    if (!q->nc->burst || q->rx_unpublished >= USED_PUBLISH_BATCH) {
        virtio_net_rx_publish(q);
    }
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
        size_t w =
            iov_from_buf(dst, dn, dst_off + done, (uint8_t *)src[i].iov_base + skip, c);
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
    size_t size = iov_size(iov, iovcnt);
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
    iov_to_buf(iov, iovcnt, hdr_in, head, head_len);
    if (!rx_filter_ok(n, head, frame_len)) {
        return (ssize_t)size; /* filtered out, as the guest asked */
    }
    if (hdr_in) {
        iov_to_buf(iov, iovcnt, 0, &hdr, NET_VNET_HDR_LEN);
    }

    /* Gather enough buffers for header + frame before writing anything. */
    size_t need = NET_VNET_HDR_LEN + frame_len, have = 0;
    while (have < need) {
        if (ne == G_N_ELEMENTS(elems) || (ne && !has(n, VIRTIO_NET_F_MRG_RXBUF))) {
            goto too_big;
        }
        VirtQueueElement *e = virtqueue_pop(q->rx);
        if (!e && !n->vdev.broken) {
            /* Ask for a kick when buffers come, then look again: one the driver posted
             * before it could see the request brings no kick (as in nic_can_receive). */
            virtqueue_set_notification(q->rx, true);
            e = virtqueue_pop(q->rx);
        }
        if (!e) {
            if (n->vdev.broken) {
                goto drop_popped;
            }
            /* Not enough buffers now: put back what we took, wait for the kick. */
            while (ne) {
                virtqueue_unpop(q->rx, elems[--ne]);
            }
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
            iov_from_buf(e->in_sg, e->in_num, 0, &hdr, NET_VNET_HDR_LEN);
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
    rx_filled(q, ne);
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

/*
 * Direct rx (tap): the backend reads header and frame straight into rx buffers it
 * borrows, several frames' at a time (one buffer each, whatever MRG_RXBUF says: a frame
 * bigger than its buffer comes back through nic_receive, which spreads it).  The kernel
 * writes no further than the iovecs we hand out, which are the elements', bounds-checked
 * by virtqueue_pop.  Lent buffers are taken oldest first; one not taken stays lent until
 * the backend gives all the rest back with it (rx_direct_return): the buffers are the
 * queue's last pops, so giving them back is stepping the avail index back over them,
 * which cannot skip one in the middle.
 */
static int nic_rx_direct_get(NetClientState *nc, struct iovec *iov, int max)
{
    NetQueuePair *q = nc->opaque;

    if (!nc->vnet_hdr || q->rx_lent_count == NET_RX_DIRECT_MAX ||
        !machine_devices_active(q->n->m) || !rx_active(q)) {
        return 0;
    }
    if (!q->rx_lent) {
        q->rx_lent = g_new(VirtQueueSmallElement, NET_RX_DIRECT_MAX);
    }
    VirtQueueSmallElement *s =
        &q->rx_lent[(q->rx_lent_first + q->rx_lent_count) % NET_RX_DIRECT_MAX];
    if (!virtqueue_pop_small(q->rx, s)) {
        return 0;
    }
    /* Too small for the header, or in more pieces than the backend takes: the copying
     * path handles it (and reports a bad buffer). */
    if (s->e.in_len <= NET_VNET_HDR_LEN || s->e.in_num > (unsigned)max) {
        virtqueue_unpop_small(q->rx);
        return 0;
    }
    memcpy(iov, s->e.in_sg, s->e.in_num * sizeof(*iov));
    q->rx_lent_count++;
    return (int)s->e.in_num;
}

static bool nic_rx_direct_take(NetClientState *nc, size_t len)
{
    NetQueuePair *q = nc->opaque;
    VirtIONet *n = q->n;
    uint8_t head[18];
    uint16_t one = 1;

    if (!q->rx_lent_count) {
        return false; /* nothing was lent */
    }
    VirtQueueElement *e = &q->rx_lent[q->rx_lent_first].e;
    if (len <= NET_VNET_HDR_LEN || len > e->in_len) {
        /* Nothing read, a runt, or more than was lent (a backend bug): the buffer stays
         * the device's. */
        n->rx_dropped += len != 0;
        return false;
    }
    size_t frame_len = len - NET_VNET_HDR_LEN;
    iov_to_buf(e->in_sg, e->in_num, NET_VNET_HDR_LEN, head, MIN(frame_len, sizeof(head)));
    if (!rx_filter_ok(n, head, frame_len)) {
        /* Filtered out, as the guest asked: the buffer is still the device's, the next
         * frame overwrites it. */
        return false;
    }
    /* One buffer holds the frame; the rest of the header is the backend's, as in
     * nic_receive. */
    iov_from_buf(e->in_sg, e->in_num, offsetof(NetVnetHdr, num_buffers), &one, sizeof(one));
    virtqueue_fill(q->rx, e, (uint32_t)len, q->rx_unpublished);
    q->rx_lent_first = (q->rx_lent_first + 1) % NET_RX_DIRECT_MAX;
    q->rx_lent_count--;
    rx_filled(q, 1);
    return true;
}

/*
 * A buffer given back may hold what the kernel read into it (a frame copied out of it
 * after a hole in the batch, one bigger than it, one the filter refused).  Its pages are
 * not marked dirty for migration, and need not be: the buffer is still the device's (in
 * the avail ring, never in the used ring), so the driver does not read it until a later
 * fill publishes it, and that fill marks what it wrote (virtqueue_fill).  A migration
 * that carries over the page as it was before the read loses nothing the guest may see.
 */
static void nic_rx_direct_return(NetClientState *nc)
{
    NetQueuePair *q = nc->opaque;

    for (; q->rx_lent_count; q->rx_lent_count--) {
        virtqueue_unpop_small(q->rx);
    }
    q->rx_lent_first = 0;
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

/* The frames sent so far leave (net_send_flush: the backend may have kept them to write
 * as one batch) before their buffers go back to the driver in the used ring. */
static bool tx_publish(NetQueuePair *q, unsigned *unpublished)
{
    net_send_flush(q->nc);
    return used_publish(q->tx, unpublished);
}

static void net_tx_burst(NetQueuePair *q)
{
    VirtIONet *n = q->n;
    VirtQueueElement *e;
    /* A frame's chain (header and frame, one or two buffers) is laid out here: no
     * allocation per frame.  A longer chain is allocated by the pop. */
    VirtQueueSmallElement small;
    unsigned done = 0, unpublished = 0;
    bool more = false;

    /* The guest's buffers stay the device's until tx_publish: the backend may keep
     * referring to them meanwhile. */
    net_send_batch_begin(q->nc);
    for (;;) {
        virtqueue_set_notification(q->tx, false);
        while (done < TX_BURST && (e = virtqueue_pop_into(q->tx, &small))) {
            if (e->out_len < NET_VNET_HDR_LEN || e->in_num) {
                /* The requests before it did complete: publish them while the queue
                 * still works. */
                tx_publish(q, &unpublished);
                virtio_error(&n->vdev, "tx request %u: %zu readable bytes and %u writable "
                             "buffers (want a 12-byte header, nothing writable)",
                             e->head, e->out_len, e->in_num);
                virtqueue_element_release(e, &small);
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
            /* The used index moves once per USED_PUBLISH_BATCH requests and at the end of
             * the burst, as for rx: fewer stores to the line the polling driver reads. */
            virtqueue_fill(q->tx, e, 0, unpublished++);
            virtqueue_element_release(e, &small);
            if (unpublished == USED_PUBLISH_BATCH) {
                tx_publish(q, &unpublished);
            }
            done++;
        }
        if (done >= TX_BURST) {
            more = !virtqueue_empty(q->tx);
            if (!more) {
                /* Kicks on, then look again: a frame posted since that look while they
                 * were off brought none. */
                virtqueue_set_notification(q->tx, true);
                more = !virtqueue_empty(q->tx);
            }
            break;
        }
        virtqueue_set_notification(q->tx, true);
        if (virtqueue_empty(q->tx)) {
            break;
        }
    }
publish:
    tx_publish(q, &unpublished);
    net_send_batch_end(q->nc);
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
    virtio_net_set_pairs(n, 1);
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
    /* RARP rounds still due keep going: the MAC moved all the same */
    virtio_net_announce_done(n);
}

static void net_config_write(VirtIODevice *vdev, uint32_t offset, unsigned size)
{
    VirtIONet *n = to_net(vdev);

    /* The config space is read-only for a VERSION_1 driver: undo the store. */
    memcpy(vdev->config + CFG_MAC, n->mac, 6);
    virtio_net_store_status(n);
    virtio_net_cfg_store_le16(n, CFG_MAX_PAIRS, (uint16_t)n->max_pairs);
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
void virtio_net_apply_features(VirtIONet *n, uint64_t features)
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
    virtio_net_apply_features(to_net(vdev), features);
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
    .rx_direct_get = nic_rx_direct_get,
    .rx_direct_take = nic_rx_direct_take,
    .rx_direct_return = nic_rx_direct_return,
    .link_changed = nic_link_changed,
    .has_vnet_hdr = nic_has_vnet_hdr,
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
        q->nc->announce = virtio_net_nic_announce;
        net_client_set_info_str(q->nc, "model=virtio-net-pci,macaddr=%02x:%02x:%02x:%02x:"
                                "%02x:%02x", n->mac[0], n->mac[1], n->mac[2], n->mac[3],
                                n->mac[4], n->mac[5]);
        if (backend) {
            net_link(q->nc, g_ptr_array_index(backend, i));
        }
    }
    n->vnet_hdr = n->qp[0].nc->vnet_hdr;
    virtio_net_set_pairs(n, 1); /* until the driver asks for more */
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
    n->ctrl = virtio_add_queue(&n->vdev, 2 * n->max_pairs, 64, virtio_net_handle_ctrl);
    memcpy(n->vdev.config + CFG_MAC, n->mac, 6);
    virtio_net_cfg_store_le16(n, CFG_MAX_PAIRS, (uint16_t)n->max_pairs);
    virtio_net_update_link(n); /* the config status starts at 0: link down */
    n->rx.uni = (const uint8_t (*)[6])n->uni;
    n->rx.multi = (const uint8_t (*)[6])n->multi;
    net_rx_filter_reset(n);
    if (m->clock) {
        n->announce_timer = timer_new(m->clock, virtio_net_announce_round, n);
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
        g_clear_pointer(&n->qp[i].rx_lent, g_free);
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
