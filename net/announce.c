/*
 * Self-announce: after a migration the VM's NICs sit behind a different host port, so
 * the destination tells the network where their MAC addresses are now.  As QEMU does
 * (net/announce.c, announce-self), each NIC sends a few RARP frames from its MAC to the
 * broadcast address; switches and bridges learn the new port from the source address.
 * A NIC whose driver can announce itself (virtio-net GUEST_ANNOUNCE) also asks the guest
 * to send gratuitous ARPs, which carry the IP addresses a RARP cannot.
 */
#include <string.h>
#include "net/net-internal.h"

#define ETH_P_RARP         0x8035
#define ARP_HTYPE_ETH      1
#define ARP_PTYPE_IP       0x0800
#define ARP_OP_REQUEST_REV 3

const NetAnnounceParams net_announce_defaults = {
    .initial_ms = 50, .max_ms = 550, .step_ms = 100, .rounds = 5,
};

int64_t net_announce_delay_ns(const NetAnnounceParams *p, unsigned round)
{
    int64_t ms = p->initial_ms + (int64_t)round * p->step_ms;
    return MIN(ms, p->max_ms) * 1000 * 1000;
}

size_t net_announce_rarp(uint8_t buf[NET_ANNOUNCE_FRAME_LEN], const uint8_t mac[6])
{
    memset(buf, 0, NET_ANNOUNCE_FRAME_LEN); /* zero addresses and padding to 60 bytes */
    memset(buf, 0xff, 6);
    memcpy(buf + 6, mac, 6);
    net_st_be16(buf + 12, ETH_P_RARP);
    net_st_be16(buf + 14, ARP_HTYPE_ETH);
    net_st_be16(buf + 16, ARP_PTYPE_IP);
    buf[18] = 6;
    buf[19] = 4;
    net_st_be16(buf + 20, ARP_OP_REQUEST_REV);
    memcpy(buf + 22, mac, 6);  /* sender hardware address; sender IP stays 0 */
    memcpy(buf + 32, mac, 6);  /* target hardware address; target IP stays 0 */
    return NET_ANNOUNCE_FRAME_LEN;
}

bool net_nic_send_frame(NetClientState *nc, const void *frame, size_t len)
{
    /* A vnet_hdr link (tap) carries a header before every frame: no offload here. */
    NetVnetHdr hdr = { 0 };
    struct iovec iov[2] = {
        { .iov_base = &hdr, .iov_len = NET_VNET_HDR_LEN },
        { .iov_base = (void *)frame, .iov_len = len },
    };
    return nc->vnet_hdr ? net_send(nc, iov, 2) : net_send(nc, iov + 1, 1);
}

bool net_announce_self(Machine *m, const NetAnnounceParams *p, const char *const *interfaces,
                       Error **errp)
{
    GPtrArray *nics = net_nics(m);

    for (const char *const *name = interfaces; name && *name; name++) {
        bool found = false;
        for (guint i = 0; i < nics->len && !found; i++) {
            NetClientState *nc = g_ptr_array_index(nics, i);
            found = strcmp(nc->name, *name) == 0 && nc->announce;
        }
        if (!found) {
            error_setg(errp, "announce-self: interface '%s' is not a NIC of this VM", *name);
            return false;
        }
    }
    for (guint i = 0; i < nics->len; i++) {
        NetClientState *nc = g_ptr_array_index(nics, i);
        bool wanted = !interfaces || !interfaces[0];
        for (const char *const *name = interfaces; !wanted && *name; name++) {
            wanted = strcmp(nc->name, *name) == 0;
        }
        if (wanted && nc->announce) {
            nc->announce(nc, p);
        }
    }
    return true;
}
