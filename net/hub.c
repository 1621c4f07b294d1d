/*
 * -netdev hubport,id=,hubid=N[,netdev=ID]: a hub joins every port with the same hubid;
 * a frame a port receives from its peer goes out of every other port of the hub, like
 * QEMU's hubs behind -net.  netdev= links the port straight to another backend.
 */
#include <string.h>
#include "net/net-internal.h"

typedef struct NetHubPort {
    NetClientState *nc;
    unsigned hubid;
} NetHubPort;

static ssize_t hubport_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    NetHubPort *hp = nc->opaque;
    GPtrArray *ports = net_hub_ports(nc->m);

    for (guint i = 0; i < ports->len; i++) {
        NetHubPort *other = g_ptr_array_index(ports, i);
        if (other != hp && other->hubid == hp->hubid) {
            net_send(other->nc, iov, iovcnt);
        }
    }
    return (ssize_t)iov_size(iov, iovcnt);
}

static void hubport_cleanup(NetClientState *nc)
{
    NetHubPort *hp = nc->opaque;

    g_ptr_array_remove(net_hub_ports(nc->m), hp);
    g_free(hp);
}

static const NetClientInfo hubport_info = {
    .type = "hubport",
    .receive = hubport_receive,
    .cleanup = hubport_cleanup,
};

static bool hubport_init(Machine *m, const char *id, Keyval *opts, const char *what,
                         GPtrArray *queues, Error **errp)
{
    uint64_t hubid;
    const char *peer_id = keyval_get(opts, "netdev");
    NetClientState *peer = NULL;

    if (!keyval_has(opts, "hubid")) {
        error_setg(errp, "%s: Parameter 'hubid' is missing", what);
        return false;
    }
    if (!keyval_get_u64(opts, what, "hubid", 0, &hubid, errp) ||
        !keyval_check_all_used(opts, what, errp)) {
        return false;
    }
    if (hubid > G_MAXINT32) {
        error_setg(errp, "%s: hubid=%" G_GUINT64_FORMAT ": out of range", what, hubid);
        return false;
    }
    if (peer_id) {
        GPtrArray *q = net_netdev_find(m, peer_id);
        if (!q) {
            error_setg(errp, "%s: netdev=%s: no such netdev", what, peer_id);
            return false;
        }
        peer = g_ptr_array_index(q, 0);
        if (peer->peer) {
            error_setg(errp, "%s: netdev=%s: already in use by %s", what, peer_id,
                       peer->peer->name);
            return false;
        }
    }
    NetHubPort *hp = g_new0(NetHubPort, 1);
    hp->hubid = (unsigned)hubid;
    hp->nc = net_client_new(m, &hubport_info, "hubport", id, 0);
    hp->nc->opaque = hp;
    net_client_set_info_str(hp->nc, "hubid=%u", hp->hubid);
    g_ptr_array_add(net_hub_ports(m), hp);
    g_ptr_array_add(queues, hp->nc);
    if (peer) {
        net_link(hp->nc, peer);
    }
    return true;
}

const NetBackend net_hubport_backend = {
    .type = "hubport",
    .init = hubport_init,
};
