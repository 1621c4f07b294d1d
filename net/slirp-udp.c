/*
 * -netdev user: the guest's UDP to the host alias (10.0.2.2, host=), sent by Sen itself
 * in batches instead of one libslirp sendto(2) each.
 *
 * libslirp sends every guest datagram with its own sendto plus a setsockopt for its TTL.
 * On a host where a system call and a trip through the loopback stack cost microseconds
 * (mitigations), that bounded a guest's UDP stream to the host, in Sen as in QEMU.  For
 * datagrams to the host alias this file does libslirp's job the same way -- one host
 * socket per guest (address, port), bound by the kernel on first use, sending to
 * 127.0.0.1 with the guest's TTL less one; replies to the guest from the alias (from any
 * other sender as they came); ICMP errors the host gets back as ICMP to the guest; idle
 * sockets closed after libslirp's 240 s (10 s after a DNS answer) -- and what one
 * virtio-net tx burst brings goes out together when the burst ends: consecutive datagrams
 * of one flow to one port with one TTL and size as one UDP GSO send (UDP_SEGMENT: one pass
 * through the stack for up to 64 datagrams, the kernel cuts them), the others one sendmsg
 * each.
 *
 * A guest address and port a udp hostfwd rule forwards to is answered, as libslirp does,
 * from the rule's socket: libslirp's own, which the caller finds and lends (libslirp
 * keeps reading it and closes it when the rule goes).
 *
 * Everything else stays libslirp's: DHCP, TFTP, DNS and other destinations, IP options
 * (it strips them), TTL 1 (it answers time exceeded), bad checksums (it drops them),
 * restrict=on and dns= at the alias (the caller does not use this path then), a guest
 * endpoint two hostfwd rules name.  Fragments never come here: net/ip-reass.c makes the
 * guest's datagrams whole first.  What a guest can see differently from libslirp (a
 * port talking to the alias and elsewhere uses two host ports, the ICMP source, drops on
 * a full socket) is listed in docs/networking.md.
 *
 * All under the VM lock: input and flush from the tx path, the sockets' sources (main
 * loop) take it.  Flows are freed only on the main loop (idle sweep, cleanup).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "net/net-internal.h"
#include "sen/error.h"
#include "sen/timer.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define IP_HLEN 20
#define UDP_HLEN 8
#define FLOWS_MAX 256          /* more guest ports than this go through libslirp */
#define FLOW_IDLE_US (240 * G_USEC_PER_SEC) /* libslirp's SO_EXPIRE */
/* libslirp's SO_EXPIREFAST: a socket whose last datagram in was a DNS answer (from port
 * 53) closes this soon after it; a lookup's socket is not kept for minutes. */
#define FLOW_DNS_IDLE_US (10 * G_USEC_PER_SEC)
#define SWEEP_SECONDS 5  /* a DNS flow closes 10-15 s after its answer */
#define QUEUE_MAX 64           /* datagrams of one burst sent together */
#define QUEUE_BYTES (256 * 1024)
#define GSO_SEGS_MAX 64        /* UDP_MAX_SEGMENTS of kernels before 6.1 */
#define UDP_PAYLOAD_MAX (65535 - IP_HLEN - UDP_HLEN)
#define READS_PER_DISPATCH 64
#define GUEST_MTU 1500         /* libslirp's if_mtu: replies are fragmented to it */
#define PORT_BOOTP 67
#define PORT_TFTP 69

int slirp_udp_test_gso_errno;

typedef struct UdpFlow {
    SlirpUdp *u;
    struct in_addr guest_addr;
    uint16_t guest_port;       /* network order */
    uint8_t guest_mac[6];
    /* Of replies: the first datagram's, as libslirp 4.7 (its IPTOS_LOWDELAY rule for
     * DNS never matches a new UDP socket: udp_tos() runs before the foreign port is set). */
    uint8_t tos;
    bool paused;               /* not reading: the NIC had no room */
    bool borrowed;             /* fd is a hostfwd rule's, libslirp's to read and close */
    int fd;
    GSource *src;
    gpointer tag;
    gint64 last_used;          /* virtual-clock us */
    bool dns_answered;         /* the last datagram in came from port 53 (none out since) */
} UdpFlow;

typedef struct UdpQueued {
    UdpFlow *flow;
    uint16_t dport;            /* network order */
    uint8_t ttl;
    uint32_t off, len;         /* the payload, in queue_buf */
} UdpQueued;

struct SlirpUdp {
    Machine *m;
    NetClientState *nc;
    struct in_addr net, mask, host;
    uint8_t host_mac[6];
    GHashTable *flows;         /* flow_key -> UdpFlow */
    UdpFlow *last;             /* the flow of the previous datagram */
    GHashTable *reserved;      /* flow_key -> the hostfwd rules naming that endpoint */
    GSource *sweep;
    unsigned paused;
    bool gso_off;
    uint16_t ip_id;
    uint64_t sent, dropped, gso_sends;
    unsigned nq;
    size_t qbytes;
    UdpQueued q[QUEUE_MAX];
    uint8_t queue_buf[QUEUE_BYTES];
    uint8_t rx_buf[UDP_PAYLOAD_MAX + 1];
    uint8_t out[IP_HLEN + UDP_HLEN + UDP_PAYLOAD_MAX]; /* a reply datagram */
    uint8_t frame[NET_ETH_HLEN + GUEST_MTU];
};

/* Address and port in one pointer-sized key (x86-64 hosts only: 48 bits). */
G_STATIC_ASSERT(sizeof(gsize) >= 8);
static gpointer flow_key(struct in_addr addr, uint16_t port)
{
    return GSIZE_TO_POINTER((gsize)ntohl(addr.s_addr) << 16 | port);
}

/*
 * Idle time is counted on the VM's virtual clock, as libslirp's (the clock Sen gives it),
 * so a stopped VM keeps its guest endpoints' host ports as it keeps libslirp's.
 */
static gint64 udp_now_us(SlirpUdp *u)
{
    return virt_clock_get_ns(u->m->clock) / 1000;
}

/* ---- frames to the guest ---- */

static void put_eth(SlirpUdp *u, uint8_t *f, const uint8_t *dst_mac)
{
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, u->host_mac, 6);
    f[12] = 0x08;
    f[13] = 0x00;
}

static void put_ip(uint8_t *ip, uint8_t tos, uint16_t total, uint16_t id,
                   uint16_t frag, uint8_t ttl, uint8_t proto, struct in_addr src,
                   struct in_addr dst)
{
    uint16_t csum;

    ip[0] = 0x45;
    ip[1] = tos;
    net_st_be16(ip + 2, total);
    net_st_be16(ip + 4, id);
    net_st_be16(ip + 6, frag);
    ip[8] = ttl;
    ip[9] = proto;
    memset(ip + 10, 0, 2);
    memcpy(ip + 12, &src, 4);
    memcpy(ip + 16, &dst, 4);
    csum = inet_csum_fold(inet_csum_add(0, ip, IP_HLEN));
    memcpy(ip + 10, &csum, 2);
}

/*
 * Sends the IP payload in u->out + IP_HLEN (len bytes, a UDP or ICMP message) to the
 * flow's guest, in fragments of at most the guest MTU as libslirp's ip_output.
 */
static void send_to_guest(SlirpUdp *u, UdpFlow *fl, uint8_t proto, uint8_t tos,
                          uint8_t ttl, struct in_addr src, size_t len)
{
    const size_t room = (GUEST_MTU - IP_HLEN) & ~(size_t)7;
    uint16_t id = u->ip_id++;

    size_t off = 0;

    do {
        size_t n = MIN(len - off, room);
        bool more = off + n < len;
        uint8_t *ip = u->frame + NET_ETH_HLEN;

        put_eth(u, u->frame, fl->guest_mac);
        put_ip(ip, tos, (uint16_t)(IP_HLEN + n), id,
               (uint16_t)((more ? 0x2000 : 0) | off / 8), ttl, proto, src,
               fl->guest_addr);
        memcpy(ip + IP_HLEN, u->out + IP_HLEN + off, n);
        net_send_buf(u->nc, u->frame, NET_ETH_HLEN + IP_HLEN + n);
        off += n;
    } while (off < len);
}

/* A datagram a host socket of the flow received from `from`. */
static void deliver_reply(SlirpUdp *u, UdpFlow *fl, const struct sockaddr_in *from,
                          size_t len)
{
    struct in_addr src = from->sin_addr;
    uint8_t *udp = u->out + IP_HLEN;
    uint16_t csum;

    /* As libslirp's sotranslate_in: the host itself answers as the alias. */
    if (src.s_addr == htonl(INADDR_LOOPBACK)) {
        src = u->host;
    }
    memcpy(udp, &from->sin_port, 2);
    memcpy(udp + 2, &fl->guest_port, 2);
    net_st_be16(udp + 4, (uint16_t)(UDP_HLEN + len));
    memset(udp + 6, 0, 2);
    memcpy(udp + UDP_HLEN, u->rx_buf, len);
    csum = inet_csum_fold(inet_csum_add(
        inet_csum_pseudo(src, fl->guest_addr, IPPROTO_UDP, (uint16_t)(UDP_HLEN + len)),
        udp, UDP_HLEN + len));
    if (csum == 0) {
        csum = 0xffff;
    }
    memcpy(udp + 6, &csum, 2);
    send_to_guest(u, fl, IPPROTO_UDP, fl->tos, 64, src, UDP_HLEN + len);
}

/*
 * An ICMP error about a datagram the flow sent to the alias's dport: to the guest from
 * the alias, quoting the datagram's IP and UDP headers (RFC 792's header + 64 bits),
 * TOS and TTL as libslirp's icmp_send_error.
 */
static void deliver_icmp(SlirpUdp *u, UdpFlow *fl, uint8_t type, uint8_t code,
                         uint16_t dport, size_t payload_len)
{
    uint8_t *icmp = u->out + IP_HLEN;
    uint8_t *quote = icmp + 8;
    uint16_t csum;

    memset(icmp, 0, 8);
    icmp[0] = type;
    icmp[1] = code;
    put_ip(quote, 0, (uint16_t)MIN(IP_HLEN + UDP_HLEN + payload_len, 65535), 0, 0, 64,
           IPPROTO_UDP, fl->guest_addr, u->host);
    memcpy(quote + IP_HLEN, &fl->guest_port, 2);
    memcpy(quote + IP_HLEN + 2, &dport, 2);
    net_st_be16(quote + IP_HLEN + 4, (uint16_t)MIN(UDP_HLEN + payload_len, 65535));
    memset(quote + IP_HLEN + 6, 0, 2);
    csum = inet_csum_fold(inet_csum_add(0, icmp, 8 + IP_HLEN + UDP_HLEN));
    memcpy(icmp + 2, &csum, 2);
    send_to_guest(u, fl, IPPROTO_ICMP, 0xc0, 255, u->host, 8 + IP_HLEN + UDP_HLEN);
}

/* ---- host sockets ---- */

static void flow_free(UdpFlow *fl)
{
    SlirpUdp *u = fl->u;

    if (u->last == fl) {
        u->last = NULL;
    }
    if (fl->paused) {
        u->paused--;
    }
    if (!fl->borrowed) {
        g_source_destroy(fl->src);
        g_source_unref(fl->src);
        close(fl->fd);
    }
    g_free(fl);
}

static void flow_pause(UdpFlow *fl, bool pause)
{
    if (fl->paused != pause && !fl->borrowed) {
        fl->paused = pause;
        fl->u->paused += pause ? 1 : -1;
        g_source_modify_unix_fd(fl->src, fl->tag, pause ? 0 : G_IO_IN | G_IO_ERR);
    }
}

/*
 * ICMP errors the kernel queued for the socket (IP_RECVERR), each to the guest; then the
 * socket's pending error is cleared.  An ICMP error that found the receive buffer full
 * sets that error without queueing anything, and poll reports POLLERR for it even with
 * no events asked for: a paused flow (whose recvmsg would clear it) would otherwise be
 * dispatched in every main-loop iteration until the guest reads.
 */
static void flow_read_errors(SlirpUdp *u, UdpFlow *fl)
{
    int err;
    socklen_t errlen = sizeof(err);

    for (unsigned i = 0; i < READS_PER_DISPATCH; i++) {
        union {
            char buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
                                sizeof(struct sockaddr_in))];
            struct cmsghdr align;
        } ctrl;
        struct sockaddr_in dst;
        struct iovec iov = { .iov_base = u->rx_buf, .iov_len = sizeof(u->rx_buf) };
        struct msghdr mh = {
            .msg_name = &dst, .msg_namelen = sizeof(dst),
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf),
        };
        ssize_t n = recvmsg(fl->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);

        if (n < 0) {
            break;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            struct sock_extended_err ee;
            if (c->cmsg_level != SOL_IP || c->cmsg_type != IP_RECVERR ||
                c->cmsg_len < CMSG_LEN(sizeof(ee))) {
                continue;
            }
            memcpy(&ee, CMSG_DATA(c), sizeof(ee));
            /* As libslirp: "unreachable" and "time exceeded" reach the guest. */
            if (ee.ee_origin == SO_EE_ORIGIN_ICMP && mh.msg_namelen >= sizeof(dst) &&
                (ee.ee_type == 3 || ee.ee_type == 11)) {
                deliver_icmp(u, fl, ee.ee_type, ee.ee_code, dst.sin_port, (size_t)n);
            }
        }
    }
    getsockopt(fl->fd, SOL_SOCKET, SO_ERROR, &err, &errlen);
}

static gboolean flow_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    UdpFlow *fl = data;
    SlirpUdp *u = fl->u;
    GIOCondition cond = g_source_query_unix_fd(src, fl->tag);

    machine_lock(u->m);
    if (g_source_is_destroyed(src)) {
        machine_unlock(u->m);
        return G_SOURCE_REMOVE;
    }
    net_burst_begin(u->nc); /* the NIC publishes what this brings at once */
    if (cond & G_IO_ERR) {
        flow_read_errors(u, fl);
    }
    for (unsigned i = 0; i < READS_PER_DISPATCH; i++) {
        if (!net_peer_has_room(u->nc)) {
            flow_pause(fl, true); /* the rest waits in the socket: slirp_udp_peer_ready */
            break;
        }
        struct sockaddr_in from;
        struct iovec iov = { .iov_base = u->rx_buf, .iov_len = sizeof(u->rx_buf) };
        struct msghdr mh = {
            .msg_name = &from, .msg_namelen = sizeof(from),
            .msg_iov = &iov, .msg_iovlen = 1,
        };
        ssize_t n = recvmsg(fl->fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
                errno == ENETUNREACH) {
                continue; /* an error reported through the error queue */
            }
            break;
        }
        fl->last_used = udp_now_us(fl->u);
        fl->dns_answered = from.sin_port == htons(53);
        if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > UDP_PAYLOAD_MAX ||
            mh.msg_namelen < sizeof(from) || from.sin_family != AF_INET) {
            continue;
        }
        deliver_reply(u, fl, &from, (size_t)n);
    }
    net_burst_end(u->nc);
    machine_unlock(u->m);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs flow_source_funcs = {
    .dispatch = flow_dispatch,
};

static UdpFlow *flow_new(SlirpUdp *u, struct in_addr addr, uint16_t port, uint8_t tos)
{
    int on = 1;
    int fd;

    if (g_hash_table_size(u->flows) >= FLOWS_MAX) {
        return NULL;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return NULL;
    }
    /* ICMP errors are reported to an unconnected socket only with IP_RECVERR. */
    setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof(on));

    UdpFlow *fl = g_new0(UdpFlow, 1);
    fl->u = u;
    fl->fd = fd;
    fl->guest_addr = addr;
    fl->guest_port = port;
    fl->tos = tos;
    fl->last_used = udp_now_us(fl->u);
    fl->src = g_source_new(&flow_source_funcs, sizeof(GSource));
    g_source_set_callback(fl->src, NULL, fl, NULL);
    g_source_set_name(fl->src, "slirp-udp");
    g_source_set_can_recurse(fl->src, TRUE);
    fl->tag = g_source_add_unix_fd(fl->src, fd, G_IO_IN | G_IO_ERR);
    g_source_attach(fl->src, u->m->ctx);
    g_hash_table_insert(u->flows, flow_key(addr, port), fl);
    return fl;
}

typedef struct ExpireBefore {
    gint64 any, dns_answered;  /* flows last used before these go */
} ExpireBefore;

static gboolean expire_one(gpointer key, gpointer value, gpointer opaque)
{
    UdpFlow *fl = value;
    const ExpireBefore *before = opaque;

    if (fl->borrowed ||
        fl->last_used > (fl->dns_answered ? before->dns_answered : before->any)) {
        return FALSE;
    }
    flow_free(fl);
    return TRUE;
}

void slirp_udp_expire_idle(SlirpUdp *u, gint64 idle_us, gint64 dns_idle_us)
{
    gint64 now = udp_now_us(u);
    ExpireBefore before = { now - idle_us, now - dns_idle_us };

    g_hash_table_foreach_remove(u->flows, expire_one, &before);
}

static gboolean sweep(gpointer opaque)
{
    SlirpUdp *u = opaque;

    machine_lock(u->m);
    slirp_udp_expire_idle(u, FLOW_IDLE_US, FLOW_DNS_IDLE_US);
    machine_unlock(u->m);
    return G_SOURCE_CONTINUE;
}

/* ---- datagrams from the guest ---- */

static void icmp_unreach_net(SlirpUdp *u, const UdpQueued *q)
{
    /* As libslirp when sendto fails: "network unreachable" to the guest. */
    deliver_icmp(u, q->flow, 3, 0, q->dport, q->len);
}

static bool send_error_is_drop(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR;
}

/*
 * sendmsg, once more when it failed otherwise than for a full socket: an ICMP error
 * about an earlier datagram leaves its error pending on the socket (IP_RECVERR), and
 * the next send returns it (clearing it) without sending -- it is not this datagram's,
 * whose send then succeeds; the ICMP itself waits in the error queue for
 * flow_read_errors.  A real error fails again.
 */
static ssize_t flow_sendmsg(int fd, const struct msghdr *mh)
{
    ssize_t n = sendmsg(fd, mh, MSG_DONTWAIT);

    if (n < 0 && !send_error_is_drop(errno)) {
        n = sendmsg(fd, mh, MSG_DONTWAIT);
    }
    return n;
}

/*
 * Sends q[0..n) (one flow, port and TTL) in one sendmsg: as one UDP GSO send (all as long
 * as q[0] but the last, which may be shorter) when gso, else n must be 1.  Returns the
 * sendmsg result, errno set on failure.  MSG_DONTWAIT (flow_sendmsg): a borrowed hostfwd
 * socket is libslirp's, maybe blocking; a full send buffer drops, never stalls the vCPU
 * or I/O thread.
 */
static ssize_t send_queued(SlirpUdp *u, const UdpQueued *q, unsigned n, bool gso)
{
    struct sockaddr_in to = {
        .sin_family = AF_INET,
        .sin_port = q->dport,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    struct iovec iov[GSO_SEGS_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctrl = { 0 };
    struct msghdr mh = {
        .msg_name = &to, .msg_namelen = sizeof(to),
        .msg_iov = iov, .msg_iovlen = n,
        .msg_control = ctrl.buf,
        .msg_controllen = gso ? sizeof(ctrl.buf) : CMSG_SPACE(sizeof(int)),
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    int ttl = q->ttl;

    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = u->queue_buf + q[i].off;
        iov[i].iov_len = q[i].len;
    }
    c->cmsg_level = SOL_IP;
    c->cmsg_type = IP_TTL;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &ttl, sizeof(int));
    if (gso) {
        uint16_t seg = (uint16_t)q->len;
        c = CMSG_NXTHDR(&mh, c);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &seg, sizeof(seg));
        if (slirp_udp_test_gso_errno) {
            errno = slirp_udp_test_gso_errno;
            return -1;
        }
    }
    q->flow->last_used = udp_now_us(u);
    q->flow->dns_answered = false;
    return flow_sendmsg(q->flow->fd, &mh);
}

static void send_one(SlirpUdp *u, const UdpQueued *q)
{
    if (send_queued(u, q, 1, false) >= 0) {
        u->sent++;
    } else if (send_error_is_drop(errno)) {
        u->dropped++;
    } else {
        icmp_unreach_net(u, q);
    }
}

/*
 * q[0..n) as one UDP GSO send.  False when the kernel cannot segment here: the caller
 * sends them one by one, and so does every later flush.
 */
static bool send_gso(SlirpUdp *u, const UdpQueued *q, unsigned n)
{
    if (send_queued(u, q, n, true) >= 0) {
        u->sent += n;
        u->gso_sends++;
        return true;
    }
    if (send_error_is_drop(errno)) {
        u->dropped += n;
        return true;
    }
    if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP) {
        warn_report("-netdev user,id=%s: UDP segmentation offload refused (%s); sending "
                    "datagrams one by one", u->nc->name, strerror(errno));
        u->gso_off = true;
    }
    return false; /* one by one: each gets its own error or ICMP */
}

/* How many datagrams from q[0] one GSO send can take (1: none to combine). */
static unsigned gso_run(const UdpQueued *q, unsigned left)
{
    unsigned n = 1;
    size_t total = q->len;

    if (q->len == 0) {
        return 1;
    }
    while (n < left && n < GSO_SEGS_MAX) {
        const UdpQueued *b = &q[n];
        if (b->flow != q->flow || b->dport != q->dport || b->ttl != q->ttl ||
            b->len == 0 || b->len > q->len || total + b->len > UDP_PAYLOAD_MAX) {
            break;
        }
        n++;
        total += b->len;
        if (b->len < q->len) {
            break; /* only the last segment may be shorter */
        }
    }
    return n;
}

void slirp_udp_flush(SlirpUdp *u)
{
    for (unsigned i = 0; i < u->nq;) {
        unsigned n = u->gso_off ? 1 : gso_run(&u->q[i], u->nq - i);

        if (n < 2 || !send_gso(u, &u->q[i], n)) {
            for (unsigned k = 0; k < n; k++) {
                send_one(u, &u->q[i + k]);
            }
        }
        i += n;
    }
    u->nq = 0;
    u->qbytes = 0;
}

bool slirp_udp_input(SlirpUdp *u, const uint8_t *f, size_t len)
{
    struct in_addr src, dst;

    if (len < NET_ETH_HLEN + IP_HLEN + UDP_HLEN || net_ld_be16(f + 12) != NET_ETH_P_IP) {
        return false;
    }
    const uint8_t *ip = f + NET_ETH_HLEN;
    size_t total = net_ld_be16(ip + 2);
    /* IPv4 without options, not a fragment, UDP, TTL left after our hop. */
    if (ip[0] != 0x45 || total < IP_HLEN + UDP_HLEN || total > len - NET_ETH_HLEN ||
        (net_ld_be16(ip + 6) & 0x3fff) || ip[9] != IPPROTO_UDP || ip[8] <= 1) {
        return false;
    }
    memcpy(&src, ip + 12, 4);
    memcpy(&dst, ip + 16, 4);
    if (dst.s_addr != u->host.s_addr || src.s_addr == u->host.s_addr ||
        (src.s_addr & u->mask.s_addr) != (u->net.s_addr & u->mask.s_addr)) {
        return false;
    }
    const uint8_t *udp = ip + IP_HLEN;
    size_t ulen = net_ld_be16(udp + 4);
    uint16_t sport = net_ld_be16(udp), dport = net_ld_be16(udp + 2);
    if (ulen < UDP_HLEN || ulen > total - IP_HLEN || sport == 0 || dport == 0 ||
        dport == PORT_BOOTP || dport == PORT_TFTP) {
        return false;
    }
    if (inet_csum_fold(inet_csum_add(0, ip, IP_HLEN)) != 0) {
        return false;
    }
    if ((udp[6] | udp[7]) &&
        inet_csum_fold(inet_csum_add(inet_csum_pseudo(src, dst, IPPROTO_UDP,
                                                      (uint16_t)ulen),
                                     udp, ulen)) != 0) {
        return false;
    }

    size_t plen = ulen - UDP_HLEN;
    if (u->nq == QUEUE_MAX || u->qbytes + plen > QUEUE_BYTES) {
        slirp_udp_flush(u);
    }
    UdpFlow *fl = u->last;
    if (!fl || fl->guest_addr.s_addr != src.s_addr || fl->guest_port != htons(sport)) {
        gpointer key = flow_key(src, htons(sport));
        fl = g_hash_table_lookup(u->flows, key);
        if (!fl) {
            if (g_hash_table_contains(u->reserved, key)) {
                return false; /* a hostfwd rule's, whose socket we could not borrow */
            }
            fl = flow_new(u, src, htons(sport), ip[1]);
            if (!fl) {
                return false; /* too many flows or no socket: libslirp's then */
            }
        }
        u->last = fl;
    }
    memcpy(fl->guest_mac, f + 6, 6);

    UdpQueued *q = &u->q[u->nq++];
    q->flow = fl;
    q->dport = htons(dport);
    q->ttl = ip[8] - 1;
    q->off = (uint32_t)u->qbytes;
    q->len = (uint32_t)plen;
    memcpy(u->queue_buf + u->qbytes, udp + UDP_HLEN, plen);
    u->qbytes += plen;
    if (!u->nc->batched) {
        slirp_udp_flush(u);
    }
    return true;
}

/* ---- set-up ---- */

void slirp_udp_reserve(SlirpUdp *u, struct in_addr guest_addr, uint16_t guest_port,
                       int fd, bool reserve)
{
    gpointer key = flow_key(guest_addr, htons(guest_port));
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(u->reserved, key));
    UdpFlow *fl = g_hash_table_lookup(u->flows, key);

    /* What the endpoint sent through us so far came from another host port: from now
     * on libslirp answers from the rule's, so must we (or leave it to libslirp). */
    if (fl) {
        g_hash_table_remove(u->flows, key);
        flow_free(fl);
    }
    n = reserve ? n + 1 : n ? n - 1 : 0;
    if (n) {
        g_hash_table_insert(u->reserved, key, GUINT_TO_POINTER(n));
    } else {
        g_hash_table_remove(u->reserved, key);
    }
    if (reserve && n == 1 && fd >= 0) {
        fl = g_new0(UdpFlow, 1);
        fl->u = u;
        fl->fd = fd;
        fl->borrowed = true;
        fl->guest_addr = guest_addr;
        fl->guest_port = htons(guest_port);
        g_hash_table_insert(u->flows, key, fl);
    }
}

static void resume_one(gpointer key, gpointer value, gpointer data)
{
    flow_pause(value, false);
}

void slirp_udp_peer_ready(SlirpUdp *u)
{
    if (u->paused) {
        g_hash_table_foreach(u->flows, resume_one, NULL);
    }
}

void slirp_udp_stats(SlirpUdp *u, SlirpUdpStats *st)
{
    st->flows = g_hash_table_size(u->flows);
    st->sent = u->sent;
    st->dropped = u->dropped;
    st->gso_sends = u->gso_sends;
    st->gso_off = u->gso_off;
}

SlirpUdp *slirp_udp_new(Machine *m, NetClientState *nc, struct in_addr net,
                        struct in_addr mask, struct in_addr host)
{
    SlirpUdp *u = g_new0(SlirpUdp, 1);

    u->m = m;
    u->nc = nc;
    u->net = net;
    u->mask = mask;
    u->host = host;
    /* libslirp numbers its datagrams to the guest from 0 too: half the id space apart, a
     * guest does not mix the fragments of theirs and ours for 32768 datagrams. */
    u->ip_id = 0x8000;
    /* libslirp's own MAC: 52:55 and the alias's address. */
    u->host_mac[0] = 0x52;
    u->host_mac[1] = 0x55;
    memcpy(u->host_mac + 2, &host, 4);
    u->flows = g_hash_table_new(g_direct_hash, g_direct_equal);
    u->reserved = g_hash_table_new(g_direct_hash, g_direct_equal);
    u->sweep = g_timeout_source_new_seconds(SWEEP_SECONDS);
    g_source_set_callback(u->sweep, sweep, u, NULL);
    g_source_attach(u->sweep, m->ctx);
    return u;
}

static gboolean free_one(gpointer key, gpointer value, gpointer data)
{
    flow_free(value);
    return TRUE;
}

void slirp_udp_free(SlirpUdp *u)
{
    if (!u) {
        return;
    }
    slirp_udp_flush(u);
    g_hash_table_foreach_remove(u->flows, free_one, NULL);
    g_hash_table_destroy(u->flows);
    g_hash_table_destroy(u->reserved);
    g_source_destroy(u->sweep);
    g_source_unref(u->sweep);
    g_free(u);
}
