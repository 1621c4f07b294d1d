/*
 * -netdev socket: a private network between VMs without root, as QEMU's.
 *
 * listen=[host]:port / connect=host:port: one TCP stream carrying frames, each behind a
 * 4-byte big-endian length (QEMU's format, so Sen and QEMU VMs can share a link).
 * mcast=group:port[,localaddr=addr]: every VM on the group sees every frame (UDP
 * multicast, looped back so VMs on one host meet).
 * udp=host:port,localaddr=host:port: one frame per UDP datagram between two endpoints
 * (each VM binds its localaddr and sends to the other's), QEMU's point-to-point form.
 *
 * Nothing blocks: sends are non-blocking and a stream whose peer does not keep up keeps
 * at most SOCKET_OUT_MAX bytes before frames are dropped and counted; reads go straight
 * to net_send, which queues or drops at the NIC.  Sources run with the VM lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "net/net-internal.h"

#define SOCKET_OUT_MAX (1024 * 1024)

typedef struct NetSocket {
    NetClientState *nc;
    Machine *m;
    bool stream;
    int listen_fd;           /* listen=: waiting for the other VM, -1 otherwise */
    int fd;                  /* the connection or the UDP socket, -1 = none yet */
    guint listen_src, fd_src, out_src;
    struct sockaddr_in dgram_dst; /* mcast, udp: where frames go */
    GByteArray *in;          /* stream bytes not yet a whole frame */
    GByteArray *out;         /* stream bytes not yet written */
    uint64_t tx_dropped;
} NetSocket;

static void socket_close_conn(NetSocket *s)
{
    if (s->fd_src) {
        g_source_remove(s->fd_src);
        s->fd_src = 0;
    }
    if (s->out_src) {
        g_source_remove(s->out_src);
        s->out_src = 0;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    g_byte_array_set_size(s->in, 0);
    g_byte_array_set_size(s->out, 0);
}

static gboolean socket_writable(gint fd, GIOCondition cond, gpointer opaque);

static void socket_flush_out(NetSocket *s)
{
    while (s->out->len) {
        ssize_t n = send(s->fd, s->out->data, s->out->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!s->out_src) {
                s->out_src = g_unix_fd_add(s->fd, G_IO_OUT, socket_writable, s);
            }
            return;
        }
        if (n <= 0) {
            socket_close_conn(s); /* the other side went away: wait for a new one */
            return;
        }
        g_byte_array_remove_range(s->out, 0, (guint)n);
    }
    if (s->out_src) {
        g_source_remove(s->out_src);
        s->out_src = 0;
    }
}

static gboolean socket_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    NetSocket *s = opaque;

    machine_lock(s->m);
    s->out_src = 0;
    socket_flush_out(s);
    machine_unlock(s->m);
    return G_SOURCE_REMOVE;
}

static gboolean socket_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    NetSocket *s = opaque;
    uint8_t buf[NET_MAX_FRAME];
    gboolean keep = G_SOURCE_CONTINUE;

    machine_lock(s->m);
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        goto out;
    }
    if (!s->stream) {
        if (n > 0) {
            net_send_buf(s->nc, buf, (size_t)n);
        }
        goto out;
    }
    if (n <= 0) {
        s->fd_src = 0; /* removed by returning REMOVE */
        socket_close_conn(s);
        keep = G_SOURCE_REMOVE;
        goto out;
    }
    g_byte_array_append(s->in, buf, (guint)n);
    while (s->in->len >= 4) {
        uint32_t len = (uint32_t)s->in->data[0] << 24 | (uint32_t)s->in->data[1] << 16 |
                       (uint32_t)s->in->data[2] << 8 | s->in->data[3];
        if (len == 0 || len > NET_MAX_FRAME) {
            /* Not our framing: drop the connection rather than guess. */
            s->fd_src = 0;
            socket_close_conn(s);
            keep = G_SOURCE_REMOVE;
            goto out;
        }
        if (s->in->len < 4 + len) {
            break;
        }
        net_send_buf(s->nc, s->in->data + 4, len);
        g_byte_array_remove_range(s->in, 0, 4 + len);
    }
out:
    machine_unlock(s->m);
    return keep;
}

static void socket_start_conn(NetSocket *s, int fd)
{
    s->fd = fd;
    s->fd_src = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, socket_readable, s);
}

static gboolean socket_accept(gint lfd, GIOCondition cond, gpointer opaque)
{
    NetSocket *s = opaque;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        return G_SOURCE_CONTINUE;
    }
    machine_lock(s->m);
    socket_close_conn(s); /* a new peer replaces the old one, as in QEMU */
    socket_start_conn(s, fd);
    machine_unlock(s->m);
    return G_SOURCE_CONTINUE;
}

static ssize_t socket_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    NetSocket *s = nc->opaque;
    size_t len = iov_size(iov, iovcnt);

    if (s->fd < 0) {
        s->tx_dropped++;
        return (ssize_t)len; /* nobody connected yet */
    }
    if (!s->stream) {
        struct msghdr msg = { .msg_name = &s->dgram_dst, .msg_namelen = sizeof(s->dgram_dst),
                              .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
        if (sendmsg(s->fd, &msg, MSG_DONTWAIT) < 0) {
            s->tx_dropped++;
        }
        return (ssize_t)len;
    }
    if (s->out->len + 4 + len > SOCKET_OUT_MAX) {
        s->tx_dropped++;
        return (ssize_t)len;
    }
    uint8_t hdr[4] = { len >> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff };
    g_byte_array_append(s->out, hdr, 4);
    for (int i = 0; i < iovcnt; i++) {
        g_byte_array_append(s->out, iov[i].iov_base, (guint)iov[i].iov_len);
    }
    if (!s->out_src) {
        socket_flush_out(s);
    }
    return (ssize_t)len;
}

static void socket_cleanup(NetClientState *nc)
{
    NetSocket *s = nc->opaque;

    socket_close_conn(s);
    if (s->listen_src) {
        g_source_remove(s->listen_src);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    g_byte_array_free(s->in, TRUE);
    g_byte_array_free(s->out, TRUE);
    g_free(s);
}

static const NetClientInfo socket_info = {
    .type = "socket",
    .receive = socket_receive,
    .cleanup = socket_cleanup,
};

/* "host:port" (host may be empty for listen=) into an IPv4 address. */
static bool parse_hostport(const char *what, const char *key, const char *v, bool host_optional,
                           struct sockaddr_in *sa, Error **errp)
{
    const char *colon = strrchr(v, ':');
    char *end;

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (!colon) {
        error_setg(errp, "%s: %s=%s: want host:port", what, key, v);
        return false;
    }
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || port > 65535) {
        error_setg(errp, "%s: %s=%s: bad port", what, key, v);
        return false;
    }
    sa->sin_port = htons((uint16_t)port);
    g_autofree char *host = g_strndup(v, colon - v);
    if (!*host) {
        if (!host_optional) {
            error_setg(errp, "%s: %s=%s: host missing", what, key, v);
            return false;
        }
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
        return true;
    }
    struct addrinfo hints = { .ai_family = AF_INET }, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        error_setg(errp, "%s: %s=%s: unknown host '%s'", what, key, v, host);
        return false;
    }
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return true;
}

static bool socket_init(Machine *m, const char *id, Keyval *opts, const char *what,
                        GPtrArray *queues, Error **errp)
{
    const char *listen_s = keyval_get(opts, "listen");
    const char *connect_s = keyval_get(opts, "connect");
    const char *mcast_s = keyval_get(opts, "mcast");
    const char *udp_s = keyval_get(opts, "udp");
    const char *local_s = keyval_get(opts, "localaddr");
    struct sockaddr_in sa, local = { .sin_family = AF_INET };
    int one = 1;

    if (!keyval_check_all_used(opts, what, errp)) {
        return false;
    }
    if (!!listen_s + !!connect_s + !!mcast_s + !!udp_s != 1) {
        error_setg(errp, "%s: exactly one of listen=, connect=, mcast= or udp= is needed",
                   what);
        return false;
    }
    if (local_s && !mcast_s && !udp_s) {
        error_setg(errp, "%s: localaddr= goes only with mcast= or udp=", what);
        return false;
    }
    if (udp_s && !local_s) {
        error_setg(errp, "%s: udp= needs localaddr=host:port (the address to bind)", what);
        return false;
    }
    const char *key = listen_s ? "listen" : connect_s ? "connect" : mcast_s ? "mcast" : "udp";
    const char *addr = listen_s ? listen_s : connect_s ? connect_s : mcast_s ? mcast_s : udp_s;
    if (!parse_hostport(what, key, addr, !!listen_s, &sa, errp)) {
        return false;
    }
    /* localaddr is an interface address for mcast=, a host:port to bind for udp=. */
    if (udp_s && !parse_hostport(what, "localaddr", local_s, true, &local, errp)) {
        return false;
    }
    if (mcast_s && local_s && !inet_aton(local_s, &local.sin_addr)) {
        error_setg(errp, "%s: localaddr=%s: not an IPv4 address", what, local_s);
        return false;
    }

    NetSocket *s = g_new0(NetSocket, 1);
    s->m = m;
    s->fd = s->listen_fd = -1;
    s->in = g_byte_array_new();
    s->out = g_byte_array_new();
    s->stream = listen_s || connect_s;
    s->nc = net_client_new(m, &socket_info, "socket", id, 0);
    s->nc->opaque = s;
    g_ptr_array_add(queues, s->nc); /* freed through cleanup from here on */

    int fd = socket(AF_INET, (s->stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: socket", what);
        return false;
    }
    if (listen_s) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
            error_setg_errno(errp, errno, "%s: cannot listen on %s", what, listen_s);
            close(fd);
            return false;
        }
        s->listen_fd = fd;
        s->listen_src = g_unix_fd_add(fd, G_IO_IN, socket_accept, s);
        net_client_set_info_str(s->nc, "socket: wait connection on %s", listen_s);
    } else if (connect_s) {
        /* Blocking, before the VM runs, as QEMU: the listener must be there already. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            error_setg_errno(errp, errno, "%s: cannot connect to %s", what, connect_s);
            close(fd);
            return false;
        }
        g_unix_set_fd_nonblocking(fd, TRUE, NULL);
        socket_start_conn(s, fd);
        net_client_set_info_str(s->nc, "socket: connect to %s", connect_s);
    } else if (udp_s) {
        if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
            error_setg_errno(errp, errno, "%s: cannot bind localaddr=%s", what, local_s);
            close(fd);
            return false;
        }
        g_unix_set_fd_nonblocking(fd, TRUE, NULL);
        s->dgram_dst = sa;
        socket_start_conn(s, fd);
        net_client_set_info_str(s->nc, "socket: udp=%s", udp_s);
    } else {
        struct ip_mreq mreq = { .imr_multiaddr = sa.sin_addr, .imr_interface = local.sin_addr };
        struct sockaddr_in bind_sa = sa;
        unsigned char loop = 1;
        if (!IN_MULTICAST(ntohl(sa.sin_addr.s_addr))) {
            error_setg(errp, "%s: mcast=%s: not a multicast address", what, mcast_s);
            close(fd);
            return false;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&bind_sa, sizeof(bind_sa)) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) < 0 ||
            (local_s && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &local.sin_addr,
                                   sizeof(local.sin_addr)) < 0)) {
            error_setg_errno(errp, errno, "%s: cannot join %s", what, mcast_s);
            close(fd);
            return false;
        }
        g_unix_set_fd_nonblocking(fd, TRUE, NULL);
        s->dgram_dst = sa;
        socket_start_conn(s, fd);
        net_client_set_info_str(s->nc, "socket: mcast=%s", mcast_s);
    }
    return true;
}

const NetBackend net_socket_backend = {
    .type = "socket",
    .init = socket_init,
};
