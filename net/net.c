/*
 * Net clients, the links between them, their bounded queues, and the machine's netdevs
 * (see include/sen/net.h for the model).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "net/net-internal.h"
#include "sen/device.h"
#include "sen/iov.h"

typedef struct NetPacket {
    size_t len;
    uint8_t data[];
} NetPacket;

typedef struct Netdev {
    char *id;
    char *type;
    GPtrArray *queues;      /* of NetClientState*, owned */
} Netdev;

struct NetState {
    GPtrArray *netdevs;     /* of Netdev* in creation order */
    GPtrArray *nics;        /* of NetClientState* (a NIC's first queue), not owned */
    unsigned mac_index;     /* NICs given a default MAC so far */
    GPtrArray *hub_ports;   /* see net/hub.c */
};

static const NetBackend *const net_backends[] = {
    &net_user_backend,
    &net_hubport_backend,
    &net_socket_backend,
    &net_tap_backend,
    &net_bridge_backend,
    NULL,
};

static NetState *net_state(Machine *m)
{
    if (!m->net) {
        m->net = g_new0(NetState, 1);
        m->net->netdevs = g_ptr_array_new();
        m->net->nics = g_ptr_array_new();
        m->net->hub_ports = g_ptr_array_new();
    }
    return m->net;
}

/* ---- clients ---- */

NetClientState *net_client_new(Machine *m, const NetClientInfo *info, const char *model,
                               const char *name, unsigned queue_index)
{
    NetClientState *nc = g_new0(NetClientState, 1);

    nc->info = info;
    nc->m = m;
    nc->model = g_strdup(model);
    nc->name = g_strdup(name);
    nc->queue_index = queue_index;
    g_queue_init(&nc->incoming);
    return nc;
}

void net_client_set_info_str(NetClientState *nc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_free(nc->info_str);
    nc->info_str = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

void net_link(NetClientState *a, NetClientState *b)
{
    a->peer = b;
    b->peer = a;
    /* The header travels only when both ends speak it. */
    bool hdr = a->info->has_vnet_hdr && b->info->has_vnet_hdr && a->info->has_vnet_hdr(a) &&
               b->info->has_vnet_hdr(b);
    a->vnet_hdr = b->vnet_hdr = hdr;
}

void net_client_purge(NetClientState *nc)
{
    NetPacket *p;

    while ((p = g_queue_pop_head(&nc->incoming))) {
        g_free(p);
    }
    nc->incoming_bytes = 0;
}

void net_client_free(NetClientState *nc)
{
    if (!nc) {
        return;
    }
    if (nc->peer) {
        NetClientState *peer = nc->peer;
        peer->peer = NULL;
        peer->vnet_hdr = false;
        peer->batched = false;
        net_client_purge(peer);
        if (peer->info->link_changed) {
            peer->info->link_changed(peer);
        }
    }
    net_client_purge(nc);
    if (nc->info->cleanup) {
        nc->info->cleanup(nc);
    }
    g_free(nc->name);
    g_free(nc->model);
    g_free(nc->info_str);
    g_free(nc);
}

static bool queue_full(NetClientState *rx)
{
    return rx->incoming.length >= NET_QUEUE_LIMIT || rx->incoming_bytes >= NET_QUEUE_BYTES;
}

bool net_send(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    NetClientState *peer = nc->peer;
    size_t len = iov_size(iov, iovcnt);

    if (nc->link_down || !peer || peer->link_down || len == 0 || len > NET_MAX_FRAME) {
        return false;
    }
    if (g_queue_is_empty(&peer->incoming) &&
        (!peer->info->can_receive || peer->info->can_receive(peer))) {
        ssize_t r = peer->info->receive(peer, iov, iovcnt);
        if (r != 0) {
            return r > 0;
        }
    }
    /* The receiver cannot take it now: keep it (bounded), in order. */
    peer->sender_waiting = true;
    if (queue_full(peer)) {
        peer->rx_dropped++;
        return false;
    }
    NetPacket *p = g_malloc(sizeof(*p) + len);
    p->len = len;
    iov_to_buf(iov, iovcnt, 0, p->data, len);
    g_queue_push_tail(&peer->incoming, p);
    peer->incoming_bytes += len;
    return true;
}

static void burst_enter(NetClientState *rx)
{
    rx->burst++;
}

static void burst_leave(NetClientState *rx)
{
    if (rx->burst && --rx->burst == 0 && rx->info->burst_end) {
        rx->info->burst_end(rx);
    }
}

void net_burst_begin(NetClientState *nc)
{
    if (nc->peer) {
        burst_enter(nc->peer);
    }
}

void net_burst_end(NetClientState *nc)
{
    if (nc->peer) {
        burst_leave(nc->peer);
    }
}

void net_send_batch_begin(NetClientState *nc)
{
    if (nc->peer) {
        nc->peer->batched = true;
    }
}

void net_send_flush(NetClientState *nc)
{
    NetClientState *peer = nc->peer;

    if (peer && peer->batched && peer->info->flush) {
        peer->info->flush(peer);
    }
}

void net_send_batch_end(NetClientState *nc)
{
    net_send_flush(nc);
    if (nc->peer) {
        nc->peer->batched = false;
    }
}

bool net_send_buf(NetClientState *nc, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return net_send(nc, &iov, 1);
}

bool net_peer_can_take(NetClientState *nc)
{
    NetClientState *peer = nc->peer;

    if (!peer || peer->link_down || nc->link_down) {
        return true; /* frames are dropped at once: keep reading so the backend drains */
    }
    if (!g_queue_is_empty(&peer->incoming) ||
        (peer->info->can_receive && !peer->info->can_receive(peer))) {
        peer->sender_waiting = true;
        return false;
    }
    return true;
}

int net_peer_rx_direct_get(NetClientState *nc, struct iovec *iov, int max)
{
    NetClientState *peer = nc->peer;

    if (!peer || !peer->info->rx_direct_get || !nc->vnet_hdr || nc->link_down ||
        peer->link_down || !g_queue_is_empty(&peer->incoming)) {
        return 0;
    }
    return peer->info->rx_direct_get(peer, iov, max);
}

bool net_peer_rx_direct_take(NetClientState *nc, size_t len)
{
    return nc->peer->info->rx_direct_take(nc->peer, len);
}

void net_peer_rx_direct_return(NetClientState *nc)
{
    nc->peer->info->rx_direct_return(nc->peer);
}

void net_peer_rx_direct_done(NetClientState *nc, size_t len)
{
    if (!net_peer_rx_direct_take(nc, len)) {
        net_peer_rx_direct_return(nc);
    }
}

bool net_peer_has_room(NetClientState *nc)
{
    NetClientState *peer = nc->peer;

    if (!peer || peer->link_down || nc->link_down) {
        return true; /* frames are dropped at once: keep reading so the backend drains */
    }
    if (queue_full(peer)) {
        peer->sender_waiting = true;
        return false;
    }
    return true;
}

void net_client_flush(NetClientState *nc)
{
    NetPacket *p;

    /* What waited goes to the receiver as one burst. */
    burst_enter(nc);
    while ((p = g_queue_peek_head(&nc->incoming))) {
        struct iovec iov = { .iov_base = p->data, .iov_len = p->len };
        if ((nc->info->can_receive && !nc->info->can_receive(nc)) ||
            nc->info->receive(nc, &iov, 1) == 0) {
            break;
        }
        g_queue_pop_head(&nc->incoming);
        nc->incoming_bytes -= p->len;
        g_free(p);
    }
    burst_leave(nc);
    /* The sender stopped at a full queue: it may fill what this flush freed. */
    if (nc->sender_waiting && nc->peer && !queue_full(nc)) {
        nc->sender_waiting = false;
        if (nc->peer->info->peer_ready) {
            nc->peer->info->peer_ready(nc->peer);
        }
    }
}

void net_client_set_link(NetClientState *nc, bool up)
{
    nc->link_down = !up;
    if (nc->info->link_changed) {
        nc->info->link_changed(nc);
    }
    /* QEMU tells both ends, so a NIC shows the backend's state and vice versa. */
    if (nc->peer && nc->peer->info->link_changed) {
        nc->peer->info->link_changed(nc->peer);
    }
}

/* ---- netdevs ---- */

const NetBackend *net_backend_find(const char *type)
{
    for (unsigned i = 0; net_backends[i]; i++) {
        if (strcmp(net_backends[i]->type, type) == 0) {
            return net_backends[i];
        }
    }
    return NULL;
}

const char *net_backend_names(void)
{
    static char names[128];

    if (!names[0]) {
        for (unsigned i = 0; net_backends[i]; i++) {
            g_strlcat(names, i ? ", " : "", sizeof(names));
            g_strlcat(names, net_backends[i]->type, sizeof(names));
        }
    }
    return names;
}

static Netdev *netdev_lookup(NetState *ns, const char *id, guint *index)
{
    for (guint i = 0; i < ns->netdevs->len; i++) {
        Netdev *nd = g_ptr_array_index(ns->netdevs, i);
        if (strcmp(nd->id, id) == 0) {
            if (index) {
                *index = i;
            }
            return nd;
        }
    }
    return NULL;
}

GPtrArray *net_netdev_find(Machine *m, const char *id)
{
    Netdev *nd = m->net ? netdev_lookup(m->net, id, NULL) : NULL;
    return nd ? nd->queues : NULL;
}

NetClientState *net_find_backend(Machine *m, const char *id, const char *type)
{
    for (guint i = 0; m->net && i < m->net->netdevs->len; i++) {
        Netdev *nd = g_ptr_array_index(m->net->netdevs, i);
        if ((!id || strcmp(nd->id, id) == 0) && strcmp(nd->type, type) == 0 &&
            nd->queues->len) {
            return g_ptr_array_index(nd->queues, 0);
        }
    }
    return NULL;
}

static void netdev_free(Netdev *nd)
{
    for (guint i = 0; i < nd->queues->len; i++) {
        net_client_free(g_ptr_array_index(nd->queues, i));
    }
    g_ptr_array_free(nd->queues, TRUE);
    g_free(nd->id);
    g_free(nd->type);
    g_free(nd);
}

bool net_netdev_add(Machine *m, Keyval *opts, const char *what, Error **errp)
{
    NetState *ns = net_state(m);
    const char *type = keyval_get(opts, "type");
    const char *id = keyval_get(opts, "id");

    if (!type || !*type) {
        error_setg(errp, "%s: Parameter 'type' is missing", what);
        return false;
    }
    const NetBackend *be = net_backend_find(type);
    if (!be) {
        error_setg(errp, "%s: Parameter 'type' does not accept value '%s' (Sen has: %s)",
                   what, type, net_backend_names());
        return false;
    }
    if (!id || !*id) {
        error_setg(errp, "%s: Parameter 'id' is missing", what);
        return false;
    }
    /* Ids Sen makes itself for -nic start with "__org.qemu." as QEMU's do. */
    if (!id_wellformed(id) && !g_str_has_prefix(id, "__org.qemu.nic")) {
        error_setg(errp, "%s: Parameter 'id' expects an identifier", what);
        return false;
    }
    if (netdev_lookup(ns, id, NULL)) {
        error_setg(errp, "%s: Duplicate ID '%s' for netdev", what, id);
        return false;
    }
    if (!net_refuse_unsupported(type, opts, what, errp)) {
        return false;
    }
    GPtrArray *queues = g_ptr_array_new();
    if (!be->init(m, id, opts, what, queues, errp)) {
        for (guint i = 0; i < queues->len; i++) {
            net_client_free(g_ptr_array_index(queues, i));
        }
        g_ptr_array_free(queues, TRUE);
        return false;
    }
    Netdev *nd = g_new0(Netdev, 1);
    nd->id = g_strdup(id);
    nd->type = g_strdup(type);
    nd->queues = queues;
    g_ptr_array_add(ns->netdevs, nd);
    return true;
}

bool net_netdev_del(Machine *m, const char *id, Error **errp)
{
    guint index;
    Netdev *nd = m->net ? netdev_lookup(m->net, id, &index) : NULL;

    if (!nd) {
        error_setg(errp, "Device '%s' not found", id);
        return false;
    }
    g_ptr_array_remove_index(m->net->netdevs, index);
    netdev_free(nd); /* a NIC on it loses its peer: its link goes down */
    return true;
}

void net_nic_register(Machine *m, NetClientState *nc)
{
    g_ptr_array_add(net_state(m)->nics, nc);
}

void net_nic_unregister(Machine *m, NetClientState *nc)
{
    if (m->net) {
        g_ptr_array_remove(m->net->nics, nc);
    }
}

GPtrArray *net_hub_ports(Machine *m)
{
    return net_state(m)->hub_ports;
}

GPtrArray *net_nics(Machine *m)
{
    return net_state(m)->nics;
}

GPtrArray *net_clients_named(Machine *m, const char *name)
{
    NetState *ns = net_state(m);
    GPtrArray *r = g_ptr_array_new();

    for (guint i = 0; i < ns->nics->len; i++) {
        NetClientState *nc = g_ptr_array_index(ns->nics, i);
        if (strcmp(nc->name, name) == 0) {
            g_ptr_array_add(r, nc);
        }
    }
    Netdev *nd = netdev_lookup(ns, name, NULL);
    for (guint i = 0; nd && i < nd->queues->len; i++) {
        g_ptr_array_add(r, g_ptr_array_index(nd->queues, i));
    }
    return r;
}

void net_default_mac(Machine *m, uint8_t mac[6])
{
    NetState *ns = net_state(m);
    static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

    memcpy(mac, base, 6);
    mac[5] = (uint8_t)(0x56 + ns->mac_index++);
}

bool net_parse_mac(const char *str, uint8_t mac[6])
{
    unsigned v[6];
    char end;

    if (strlen(str) != 17 ||
        sscanf(str, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &end) != 6) {
        return false;
    }
    for (unsigned i = 0; i < 6; i++) {
        if (!g_ascii_isxdigit(str[3 * i]) || !g_ascii_isxdigit(str[3 * i + 1]) ||
            (i < 5 && str[3 * i + 2] != ':')) {
            return false;
        }
        mac[i] = (uint8_t)v[i];
    }
    return true;
}

/* ---- machine creation and teardown ---- */

bool net_init_netdevs(Machine *m, Error **errp)
{
    const MachineConfig *cfg = m->cfg;

    net_state(m);
    for (guint i = 0; cfg->netdevs && i < cfg->netdevs->len; i++) {
        NetdevConfig *nd = g_ptr_array_index(cfg->netdevs, i);
        if (!net_netdev_add(m, nd->opts, nd->optstr, errp)) {
            return false;
        }
    }
    return true;
}

bool net_create_nics(Machine *m, Error **errp)
{
    const MachineConfig *cfg = m->cfg;

    for (guint i = 0; cfg->nics && i < cfg->nics->len; i++) {
        DeviceConfig *d = g_ptr_array_index(cfg->nics, i);
        if (!device_create(m, d->driver, d->props, d->optstr, errp)) {
            return false;
        }
    }
    return true;
}

void net_cleanup(Machine *m)
{
    NetState *ns = m->net;

    if (!ns) {
        return;
    }
    for (guint i = ns->netdevs->len; i-- > 0;) {
        netdev_free(g_ptr_array_index(ns->netdevs, i));
    }
    g_ptr_array_free(ns->netdevs, TRUE);
    g_ptr_array_free(ns->nics, TRUE);
    g_ptr_array_free(ns->hub_ports, TRUE);
    g_free(ns);
    m->net = NULL;
}

/* ---- info network ---- */

static void info_client(GString *out, const char *indent, NetClientState *nc)
{
    g_string_append_printf(out, "%s%s: index=%u,type=%s,%s%s\r\n", indent, nc->name,
                           nc->queue_index, nc->is_nic ? "nic" : nc->info->type,
                           nc->info_str ? nc->info_str : "",
                           nc->link_down ? " (link down)" : "");
}

void net_info_network(Machine *m, GString *out)
{
    NetState *ns = net_state(m);

    for (guint i = 0; i < ns->nics->len; i++) {
        NetClientState *nc = g_ptr_array_index(ns->nics, i);
        info_client(out, "", nc);
        if (nc->peer) {
            info_client(out, " \\ ", nc->peer);
        }
    }
    for (guint i = 0; i < ns->netdevs->len; i++) {
        Netdev *nd = g_ptr_array_index(ns->netdevs, i);
        for (guint q = 0; q < nd->queues->len; q++) {
            NetClientState *nc = g_ptr_array_index(nd->queues, q);
            if (!nc->peer || !nc->peer->is_nic) {
                info_client(out, "", nc);
            }
        }
    }
}
