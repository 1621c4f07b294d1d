/*
 * virtio-net-pci's self-announce and migration state (see virtio-net.c for the device).
 */
#include <inttypes.h>
#include <string.h>
#include "hw/virtio/virtio-net-internal.h"

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

void virtio_net_announce_round(void *opaque)
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
        virtio_net_store_status(n);
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

void virtio_net_nic_announce(NetClientState *nc, const NetAnnounceParams *p)
{
    NetQueuePair *q = nc->opaque;
    net_announce_start(q->n, p);
}

/* The driver acked (or the device was reset): the guest's announcement is done. */
void virtio_net_announce_done(VirtIONet *n)
{
    n->announce_pending = false;
    virtio_net_store_status(n);
}

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
        virtio_net_rx_publish(&n->qp[i]);
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
    virtio_net_store_status(n);
    virtio_net_cfg_store_le16(n, CFG_MAX_PAIRS, (uint16_t)n->max_pairs);
    virtio_net_set_pairs(n, n->curr_pairs);
    if (vdev->status & VIRTIO_STATUS_FEATURES_OK) {
        virtio_net_apply_features(n, vdev->guest_features);
    }
    virtio_net_update_link(n);
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

const VMStateDesc virtio_net_vmsd = {
    .name = "virtio-net-pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_net_fields,
    .subsections = virtio_net_subsections,
    .pre_save = virtio_net_pre_save,
    .pre_load = virtio_net_pre_load,
    .post_load = virtio_net_post_load,
};
