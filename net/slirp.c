/*
 * -netdev user: NAT through libslirp, as QEMU's user networking.
 *
 * The guest sees 10.0.2.0/24 (net=), the gateway 10.0.2.2 (host=), a DNS relay at
 * 10.0.2.3 (dns=) and a DHCP server handing out 10.0.2.15 onwards (dhcpstart=).
 * hostfwd= rules forward host ports to the guest.
 *
 * libslirp is not thread-safe: every call into it is made with the VM lock held (tx
 * from a vCPU exit or an ioeventfd handler, and our main-loop source, which takes the
 * lock around fill and poll).  Its sockets are polled by one GSource that asks slirp for
 * its descriptors before every main-loop iteration; its timers are virtual-clock timers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <slirp/libslirp.h>
#include "net/net-internal.h"
#include "sen/iov.h"
#include "sen/log.h"

/* Socket polls one dispatch makes at most (libslirp takes one datagram per poll). */
#define SLIRP_POLL_ROUNDS 64

typedef struct NetSlirp NetSlirp;

typedef struct SlirpSource {
    GSource base;
    NetSlirp *s;
} SlirpSource;

typedef struct SlirpUdpFwd {
    struct in_addr host_addr, guest_addr;
    int host_port, guest_port;
} SlirpUdpFwd;

typedef struct SlirpTimer {
    NetSlirp *s;
    Timer *timer;
    SlirpTimerId id;
    void *cb_opaque;
} SlirpTimer;

struct NetSlirp {
    NetClientState *nc;
    Machine *m;
    Slirp *slirp;
    GSource *src;
    GArray *pollfds;          /* of GPollFD, registered with src */
    GArray *fill;             /* of GPollFD, what slirp asked for in this prepare */
    GArray *polled;           /* the array slirp_get_revents reads: pollfds or fill */
    gint64 deadline;          /* slirp's next timeout (monotonic us), -1 none */
    /*
     * Whether the main loop may be waiting on what our last prepare asked for: set by
     * prepare (VM lock held), cleared once the poll returned (check, dispatch) and by
     * the wake-up that ends it.  A frame handed to slirp while it is set, from any
     * thread (a vCPU exit, another source's prepare), may have opened a socket or moved
     * a timer that poll does not watch, so it wakes the loop; a frame at any other time
     * needs nothing, since the next prepare asks slirp afresh before the loop blocks
     * (every dispatch, ours and the tx path's).  Callers hold the VM lock, so a frame
     * either precedes the next prepare or sees the flag it sets; check clears it
     * without the lock, hence the atomic accesses.  This replaced a thread comparison
     * that skipped the wake-up on the loop's thread even inside that window, and woke
     * the loop for every frame from other threads.
     */
    bool poll_pending;
    struct in_addr dhcp_start;
    /* Guest UDP to the host alias, sent in batches (net/slirp-udp.c); NULL with
     * restrict=on, ipv4=off or dns= equal to host=. */
    SlirpUdp *udp;
    IpReass *reass;           /* the guest's IPv4 fragments, made whole before libslirp */
    GArray *udp_fwds;         /* of SlirpUdpFwd: the udp hostfwd rules, for removal */
    RateLimit rl;
    /* A frame the NIC hands over in pieces is gathered here (VM lock held), not in a
     * 64 KiB stack frame per call; a frame in one piece goes to slirp as it is. */
    uint8_t gather[NET_MAX_FRAME];
    /* strings SlirpConfig points at, alive as long as slirp */
    char *hostname, *domainname, *tftp, *bootfile;
    char **dnssearch;
};

/* ---- callbacks from libslirp (VM lock held) ---- */

static ssize_t slirp_cb_send(const void *buf, size_t len, void *opaque)
{
    NetSlirp *s = opaque;
    net_send_buf(s->nc, buf, len); /* a frame the NIC cannot take is queued or dropped */
    return (ssize_t)len;
}

static void slirp_cb_guest_error(const char *msg, void *opaque)
{
    NetSlirp *s = opaque;
    log_guest_error(&s->rl, "-netdev user,id=%s: %s", s->nc->name, msg);
}

static int64_t slirp_cb_clock_ns(void *opaque)
{
    NetSlirp *s = opaque;
    return virt_clock_get_ns(s->m->clock);
}

static void slirp_timer_fire(void *opaque)
{
    SlirpTimer *t = opaque;
    slirp_handle_timer(t->s->slirp, t->id, t->cb_opaque);
}

static void *slirp_cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    NetSlirp *s = opaque;
    SlirpTimer *t = g_new0(SlirpTimer, 1);

    t->s = s;
    t->id = id;
    t->cb_opaque = cb_opaque;
    t->timer = timer_new(s->m->clock, slirp_timer_fire, t);
    return t;
}

static void slirp_cb_timer_free(void *timer, void *opaque)
{
    SlirpTimer *t = timer;
    timer_free(t->timer);
    g_free(t);
}

static void slirp_cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    SlirpTimer *t = timer;
    timer_mod(t->timer, expire_ms * 1000000);
}

static void slirp_cb_register_fd(int fd, void *opaque)
{
    /* Descriptors are collected afresh before every poll (slirp_src_prepare). */
}

static void slirp_cb_notify(void *opaque)
{
    NetSlirp *s = opaque;
    g_main_context_wakeup(s->m->ctx);
}

static const SlirpCb slirp_callbacks = {
    .send_packet = slirp_cb_send,
    .guest_error = slirp_cb_guest_error,
    .clock_get_ns = slirp_cb_clock_ns,
    .timer_free = slirp_cb_timer_free,
    .timer_mod = slirp_cb_timer_mod,
    .register_poll_fd = slirp_cb_register_fd,
    .unregister_poll_fd = slirp_cb_register_fd,
    .notify = slirp_cb_notify,
    .timer_new_opaque = slirp_cb_timer_new_opaque,
};

/* ---- the main-loop source ---- */

/*
 * glib wakes the whole loop up (an eventfd write) whenever a source adds or removes a
 * poll descriptor or changes its ready time, so doing that on every prepare made the
 * main loop spin at 100% CPU while a user netdev existed.  prepare therefore lets slirp
 * fill a scratch array and touches the registered descriptors only when the set changed
 * (a socket opened or closed, or slirp now wants POLLOUT), and returns slirp's timeout
 * through *timeout; check reports that deadline as readiness so its timers still run.
 */

static int slirp_add_poll(int fd, int events, void *opaque)
{
    NetSlirp *s = opaque;
    GPollFD pfd = { .fd = fd };

    pfd.events = ((events & SLIRP_POLL_IN) ? G_IO_IN : 0) |
                 ((events & SLIRP_POLL_OUT) ? G_IO_OUT : 0) |
                 ((events & SLIRP_POLL_PRI) ? G_IO_PRI : 0) |
                 ((events & SLIRP_POLL_ERR) ? G_IO_ERR : 0) |
                 ((events & SLIRP_POLL_HUP) ? G_IO_HUP : 0);
    g_array_append_val(s->fill, pfd);
    return (int)s->fill->len - 1;
}

static int slirp_get_revents(int idx, void *opaque)
{
    NetSlirp *s = opaque;
    int ev = 0;

    if (idx < 0 || (guint)idx >= s->polled->len) {
        return 0;
    }
    gushort r = g_array_index(s->polled, GPollFD, idx).revents;
    ev |= (r & G_IO_IN) ? SLIRP_POLL_IN : 0;
    ev |= (r & G_IO_OUT) ? SLIRP_POLL_OUT : 0;
    ev |= (r & G_IO_PRI) ? SLIRP_POLL_PRI : 0;
    ev |= (r & G_IO_ERR) ? SLIRP_POLL_ERR : 0;
    ev |= (r & G_IO_HUP) ? SLIRP_POLL_HUP : 0;
    return ev;
}

static void slirp_src_unpoll(GSource *src, NetSlirp *s)
{
    for (guint i = 0; i < s->pollfds->len; i++) {
        g_source_remove_poll(src, &g_array_index(s->pollfds, GPollFD, i));
    }
    g_array_set_size(s->pollfds, 0);
}

static bool slirp_fill_unchanged(NetSlirp *s)
{
    if (s->fill->len != s->pollfds->len) {
        return false;
    }
    for (guint i = 0; i < s->fill->len; i++) {
        GPollFD *a = &g_array_index(s->fill, GPollFD, i);
        GPollFD *b = &g_array_index(s->pollfds, GPollFD, i);
        if (a->fd != b->fd || a->events != b->events) {
            return false;
        }
    }
    return true;
}

static gboolean slirp_src_prepare(GSource *src, gint *timeout)
{
    NetSlirp *s = ((SlirpSource *)src)->s;
    uint32_t ms = UINT32_MAX;

    g_array_set_size(s->fill, 0);
    machine_lock(s->m);
    slirp_pollfds_fill(s->slirp, &ms, slirp_add_poll, s);
    if (!net_peer_has_room(s->nc)) {
        /* The NIC's queue is full: reading sockets now would only drop what we read.
         * Their input waits in the kernel until a flush makes room (slirp_peer_ready). */
        for (guint i = 0; i < s->fill->len; i++) {
            g_array_index(s->fill, GPollFD, i).events &= ~(G_IO_IN | G_IO_PRI);
        }
    }
    /* A prepare that reports the source ready makes glib poll without waiting. */
    __atomic_store_n(&s->poll_pending, ms != 0, __ATOMIC_RELAXED);
    machine_unlock(s->m);
    if (!slirp_fill_unchanged(s)) {
        slirp_src_unpoll(src, s);
        GArray *t = s->pollfds;
        s->pollfds = s->fill;
        s->fill = t;
        /* The array no longer grows until the set changes: its elements stay put. */
        for (guint i = 0; i < s->pollfds->len; i++) {
            g_source_add_poll(src, &g_array_index(s->pollfds, GPollFD, i));
        }
    }
    /* slirp's own timeouts (TCP fast/slow timers). */
    s->deadline = ms == UINT32_MAX ? -1 : g_source_get_time(src) + (gint64)ms * 1000;
    *timeout = ms == UINT32_MAX ? -1 : (gint)MIN(ms, (uint32_t)G_MAXINT);
    return ms == 0;
}

static gboolean slirp_src_check(GSource *src)
{
    NetSlirp *s = ((SlirpSource *)src)->s;

    /* The poll returned: the next prepare comes before the next poll. */
    __atomic_store_n(&s->poll_pending, false, __ATOMIC_RELAXED);
    for (guint i = 0; i < s->pollfds->len; i++) {
        if (g_array_index(s->pollfds, GPollFD, i).revents) {
            return TRUE;
        }
    }
    return s->deadline >= 0 && g_source_get_time(src) >= s->deadline;
}

/* Another poll of slirp's sockets without waiting; whether one has input. */
static bool slirp_poll_again(NetSlirp *s)
{
    uint32_t ms = UINT32_MAX;
    bool input = false;

    g_array_set_size(s->fill, 0);
    slirp_pollfds_fill(s->slirp, &ms, slirp_add_poll, s);
    if (g_poll((GPollFD *)s->fill->data, s->fill->len, 0) <= 0) {
        return false;
    }
    for (guint i = 0; i < s->fill->len; i++) {
        input |= (g_array_index(s->fill, GPollFD, i).revents &
                  (G_IO_IN | G_IO_PRI | G_IO_HUP | G_IO_ERR)) != 0;
    }
    return input;
}

static gboolean slirp_src_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    NetSlirp *s = ((SlirpSource *)src)->s;

    machine_lock(s->m);
    /* Also when prepare found us ready and glib skipped check. */
    __atomic_store_n(&s->poll_pending, false, __ATOMIC_RELAXED);
    net_burst_begin(s->nc); /* the NIC publishes what this dispatch brings at once */
    s->polled = s->pollfds;
    slirp_pollfds_poll(s->slirp, 0, slirp_get_revents, s);
    /*
     * libslirp reads at most one datagram per socket per poll, so a stream of them would
     * cost a whole main-loop iteration (every source's prepare and check, a wake-up)
     * each.  While input keeps coming and the NIC or its queue takes frames, poll again here;
     * the bound keeps the other sources served.  A full NIC queue ends the burst early:
     * the rest waits in the kernel's socket buffers.
     */
    s->polled = s->fill;
    for (unsigned round = 1; round < SLIRP_POLL_ROUNDS && net_peer_has_room(s->nc) &&
                             slirp_poll_again(s);
         round++) {
        slirp_pollfds_poll(s->slirp, 0, slirp_get_revents, s);
    }
    s->polled = s->pollfds;
    net_burst_end(s->nc);
    machine_unlock(s->m);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs slirp_source_funcs = {
    .prepare = slirp_src_prepare,
    .check = slirp_src_check,
    .dispatch = slirp_src_dispatch,
};

/* ---- the net client ---- */

/*
 * Called with the VM lock held after slirp's sockets or timers may have changed: wakes
 * the main loop if it may be waiting on an older poll set (see poll_pending).  One
 * wake-up serves the rest of the iteration: the eventfd stays readable until the poll,
 * so later frames skip the write.  A plain load first: the common case (frames from a
 * dispatch) costs no atomic read-modify-write.
 */
static void slirp_wake_loop(NetSlirp *s)
{
    if (__atomic_load_n(&s->poll_pending, __ATOMIC_RELAXED) &&
        __atomic_exchange_n(&s->poll_pending, false, __ATOMIC_RELAXED)) {
        g_main_context_wakeup(s->m->ctx);
    }
}

/* The frame in iov gathered into buf, unless it is one piece already; its length. */
static const uint8_t *slirp_frame(const struct iovec *iov, int iovcnt, uint8_t *buf,
                                  size_t *len)
{
    if (iovcnt == 1) {
        *len = MIN(iov[0].iov_len, (size_t)NET_MAX_FRAME);
        return iov[0].iov_base; /* slirp_input copies it into an mbuf anyway */
    }
    *len = iov_to_buf(iov, (unsigned)iovcnt, 0, buf, NET_MAX_FRAME);
    return buf;
}

static ssize_t slirp_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    NetSlirp *s = nc->opaque;
    size_t len;
    const uint8_t *frame = slirp_frame(iov, iovcnt, s->gather, &len);
    size_t taken = len;

    switch (ip_reass_input(s->reass, frame, len, &frame, &len)) {
    case IP_REASS_TAKEN:
        return (ssize_t)taken;
    case IP_REASS_DONE:
    case IP_REASS_NOT_FRAGMENT:
        break;
    }
    if (s->udp) {
        if (slirp_udp_input(s->udp, frame, len)) {
            return (ssize_t)taken;
        }
        slirp_udp_flush(s->udp); /* the guest's frames leave in the order it sent them */
    }
    slirp_input(s->slirp, frame, (int)len);
    /* slirp may have opened a socket or moved a timer: the loop may need to poll anew. */
    slirp_wake_loop(s);
    return (ssize_t)taken;
}

/* The NIC's queue has room again: poll the sockets for input in the next iteration. */
static void slirp_peer_ready(NetClientState *nc)
{
    NetSlirp *s = nc->opaque;

    if (s->udp) {
        slirp_udp_peer_ready(s->udp);
    }
    slirp_wake_loop(s);
}

SlirpUdp *net_slirp_udp(NetClientState *nc)
{
    return ((NetSlirp *)nc->opaque)->udp;
}

/* The NIC's tx batch ends: send the datagrams slirp_udp_input queued. */
static void slirp_flush_nc(NetClientState *nc)
{
    NetSlirp *s = nc->opaque;

    if (s->udp) {
        slirp_udp_flush(s->udp);
    }
}

static void slirp_cleanup_nc(NetClientState *nc)
{
    NetSlirp *s = nc->opaque;

    if (s->src) {
        slirp_src_unpoll(s->src, s);
        g_source_destroy(s->src);
        g_source_unref(s->src);
    }
    slirp_udp_free(s->udp);
    ip_reass_free(s->reass);
    if (s->slirp) {
        slirp_cleanup(s->slirp);
    }
    g_array_free(s->udp_fwds, TRUE);
    g_array_free(s->pollfds, TRUE);
    g_array_free(s->fill, TRUE);
    g_free(s->hostname);
    g_free(s->domainname);
    g_free(s->tftp);
    g_free(s->bootfile);
    g_strfreev(s->dnssearch);
    g_free(s);
}

static const NetClientInfo slirp_info = {
    .type = "user",
    .receive = slirp_receive,
    .peer_ready = slirp_peer_ready,
    .flush = slirp_flush_nc,
    .cleanup = slirp_cleanup_nc,
};

/* ---- hostfwd rules ---- */

/* Splits off the text up to sep (exclusive); false when sep is missing. */
static bool take_until(const char **p, char sep, char *out, size_t outlen)
{
    const char *end = strchr(*p, sep);

    if (!end || (size_t)(end - *p) >= outlen) {
        return false;
    }
    memcpy(out, *p, end - *p);
    out[end - *p] = '\0';
    *p = end + 1;
    return true;
}

static bool parse_port(const char *str, int *port)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(str, &end, 10);
    if (!*str || *end || errno || v < 0 || v > 65535) {
        return false;
    }
    *port = (int)v;
    return true;
}

/* The protocol field of a forwarding rule: "tcp" or empty (tcp), or "udp". */
static bool parse_proto(const char *str, int *is_udp)
{
    if (!strcmp(str, "tcp") || !str[0]) {
        *is_udp = 0;
        return true;
    }
    if (!strcmp(str, "udp")) {
        *is_udp = 1;
        return true;
    }
    return false;
}

/* slirp_hostfwd_fd's scan of libslirp's descriptors for a rule's bound socket. */
typedef struct SlirpFdScan {
    NetSlirp *s;
    struct in_addr addr;
    int port;
    int found;
} SlirpFdScan;

/*
 * Notes fd if it is the UDP socket bound to the rule's address and port, and gives
 * libslirp as its index the one fd has in the set our source registered (-1 if none, as
 * for a socket created since): a dispatch later in this main-loop iteration reads that
 * set's poll results with the indices libslirp stored.
 */
static int slirp_scan_poll(int fd, int events, void *opaque)
{
    SlirpFdScan *scan = opaque;
    GArray *reg = scan->s->pollfds;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    int type;
    socklen_t tlen = sizeof(type);

    if (scan->found < 0 &&
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_DGRAM &&
        getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 && sa.sin_family == AF_INET &&
        sa.sin_port == htons(scan->port) && sa.sin_addr.s_addr == scan->addr.s_addr) {
        scan->found = fd;
    }
    for (guint i = 0; i < reg->len; i++) {
        if (g_array_index(reg, GPollFD, i).fd == fd) {
            return (int)i;
        }
    }
    return -1;
}

/*
 * The socket libslirp just bound for a udp hostfwd rule: the UDP one among those it polls
 * bound to the rule's address and port; -1 if none is (an ephemeral port 0).  The
 * guest's datagrams from the rule's guest endpoint to the alias are sent from it by
 * net/slirp-udp.c, as libslirp would.  Asks libslirp for its descriptors as a prepare
 * does, but keeps the indices it stores those of the registered set: this may run (a
 * monitor command) between the loop's poll and slirp's dispatch, which would otherwise
 * hand one socket's readiness to another (and libslirp's sockets block on a read).
 */
static int slirp_hostfwd_fd(NetSlirp *s, struct in_addr addr, int port)
{
    uint32_t ms = UINT32_MAX;
    SlirpFdScan scan = { s, addr, port, -1 };

    if (port != 0) {
        slirp_pollfds_fill(s->slirp, &ms, slirp_scan_poll, &scan);
    }
    return scan.found;
}

/* "[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport" (QEMU's syntax and errors). */
static bool slirp_hostfwd(NetSlirp *s, const char *rule, Error **errp)
{
    const char *p = rule;
    char buf[256];
    const char *why;
    struct in_addr host_addr = { .s_addr = INADDR_ANY }, guest_addr = s->dhcp_start;
    int is_udp, host_port, guest_port;

    if (!take_until(&p, ':', buf, sizeof(buf))) {
        why = "No : separators";
        goto fail;
    }
    if (!parse_proto(buf, &is_udp)) {
        why = "Bad protocol name";
        goto fail;
    }
    if (!take_until(&p, ':', buf, sizeof(buf))) {
        why = "Missing : separator";
        goto fail;
    }
    if (buf[0] && !inet_aton(buf, &host_addr)) {
        why = "Bad host address";
        goto fail;
    }
    if (!take_until(&p, '-', buf, sizeof(buf)) || !parse_port(buf, &host_port)) {
        why = "Bad host port";
        goto fail;
    }
    if (!take_until(&p, ':', buf, sizeof(buf))) {
        why = "Missing guest address";
        goto fail;
    }
    if (buf[0] && !inet_aton(buf, &guest_addr)) {
        why = "Bad guest address";
        goto fail;
    }
    if (!parse_port(p, &guest_port) || guest_port == 0) {
        why = "Bad guest port";
        goto fail;
    }
    if (slirp_add_hostfwd(s->slirp, is_udp, host_addr, host_port, guest_addr,
                          guest_port) < 0) {
        why = "Could not set up host forwarding rule";
        goto fail;
    }
    if (is_udp) {
        SlirpUdpFwd f = { host_addr, guest_addr, host_port, guest_port };
        g_array_append_val(s->udp_fwds, f);
        if (s->udp) {
            slirp_udp_reserve(s->udp, guest_addr, (uint16_t)guest_port,
                              slirp_hostfwd_fd(s, host_addr, host_port), true);
        }
    }
    return true;

fail:
    error_setg(errp, "Invalid host forwarding rule '%s' (%s)", rule, why);
    return false;
}

/* ---- creation ---- */

static bool parse_addr(Keyval *opts, const char *what, const char *key, const char *def,
                       struct in_addr *out, Error **errp)
{
    const char *v = keyval_get(opts, key);

    if (!v) {
        v = def;
    }
    if (!inet_aton(v, out)) {
        error_setg(errp, "%s: %s=%s: not an IPv4 address", what, key, v);
        return false;
    }
    return true;
}

/* net=ADDR[/MASK|/BITS] */
static bool parse_net(const char *what, const char *v, struct in_addr *net,
                      struct in_addr *mask, Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(v, "/", 2);
    uint32_t bits = 24;

    if (!inet_aton(parts[0], net)) {
        goto bad;
    }
    if (parts[1]) {
        char *end;
        if (strchr(parts[1], '.')) {
            if (!inet_aton(parts[1], mask)) {
                goto bad;
            }
            return true;
        }
        errno = 0;
        bits = strtoul(parts[1], &end, 10);
        if (!*parts[1] || *end || errno || bits < 1 || bits > 32) {
            goto bad;
        }
    } else {
        /* Class default, as QEMU: 8, 16 or 24 bits by the first octet. */
        uint32_t a = ntohl(net->s_addr);
        bits = (a >> 31) == 0 ? 8 : (a >> 30) == 2 ? 16 : 24;
    }
    mask->s_addr = htonl(bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits));
    return true;
bad:
    error_setg(errp, "%s: net=%s: not a network (ADDR[/MASK])", what, v);
    return false;
}

static bool in_net(struct in_addr a, struct in_addr net, struct in_addr mask)
{
    return (a.s_addr & mask.s_addr) == (net.s_addr & mask.s_addr);
}

static bool slirp_backend_init(Machine *m, const char *id, Keyval *opts, const char *what,
                               GPtrArray *queues, Error **errp)
{
    SlirpConfig cfg = { .version = 4, .in_enabled = true, .enable_emu = false };
    struct in_addr net = { 0 }, mask = { 0 };
    bool restricted, ipv4, ipv6;
    char net_default[32], host_default[32], dhcp_default[32], dns_default[32];
    const char *v;

    if (!keyval_get_bool(opts, what, "restrict", false, &restricted, errp) ||
        !keyval_get_bool(opts, what, "ipv4", true, &ipv4, errp) ||
        !keyval_get_bool(opts, what, "ipv6", true, &ipv6, errp)) {
        return false;
    }
    if (!ipv4 && !ipv6) {
        error_setg(errp, "%s: ipv4=off and ipv6=off leave no network", what);
        return false;
    }
    if (!parse_net(what, (v = keyval_get(opts, "net")) ? v : "10.0.2.0/24", &net, &mask,
                   errp)) {
        return false;
    }
    /* Defaults follow the network: .2 host, .3 DNS, .15 first DHCP lease. */
    uint32_t base = ntohl(net.s_addr & mask.s_addr);
    struct in_addr a;
    a.s_addr = htonl(base | 2);
    g_strlcpy(host_default, inet_ntoa(a), sizeof(host_default));
    a.s_addr = htonl(base | 3);
    g_strlcpy(dns_default, inet_ntoa(a), sizeof(dns_default));
    a.s_addr = htonl(base | 15);
    g_strlcpy(dhcp_default, inet_ntoa(a), sizeof(dhcp_default));
    a.s_addr = htonl(base);
    g_strlcpy(net_default, inet_ntoa(a), sizeof(net_default));

    NetSlirp *s = g_new0(NetSlirp, 1);
    s->m = m;
    s->pollfds = g_array_new(FALSE, TRUE, sizeof(GPollFD));
    s->fill = g_array_new(FALSE, TRUE, sizeof(GPollFD));
    s->polled = s->pollfds;
    s->udp_fwds = g_array_new(FALSE, FALSE, sizeof(SlirpUdpFwd));
    s->reass = ip_reass_new(slirp_cb_clock_ns, s);
    NetClientState *nc = net_client_new(m, &slirp_info, "user", id, 0);
    nc->opaque = s;
    s->nc = nc;
    g_ptr_array_add(queues, nc); /* freed through cleanup from here on */

    if (!parse_addr(opts, what, "host", host_default, &cfg.vhost, errp) ||
        !parse_addr(opts, what, "dhcpstart", dhcp_default, &s->dhcp_start, errp) ||
        !parse_addr(opts, what, "dns", dns_default, &cfg.vnameserver, errp)) {
        return false;
    }
    const char *bad = !in_net(cfg.vhost, net, mask) ? "host" :
                      !in_net(s->dhcp_start, net, mask) ? "dhcpstart" :
                      !in_net(cfg.vnameserver, net, mask) ? "dns" : NULL;
    if (bad) {
        error_setg(errp, "%s: %s= is not in the network %s", what, bad, net_default);
        return false;
    }
    s->hostname = g_strdup(keyval_get(opts, "hostname"));
    s->domainname = g_strdup(keyval_get(opts, "domainname"));
    s->tftp = g_strdup(keyval_get(opts, "tftp"));
    s->bootfile = g_strdup(keyval_get(opts, "bootfile"));
    if ((v = keyval_get(opts, "dnssearch"))) {
        s->dnssearch = g_strsplit(v, ":", -1);
    }
    /* hostfwd= may repeat: every occurrence is a rule. */
    GPtrArray *fwds = g_ptr_array_new();
    for (guint i = 0; i < opts->pairs->len; i++) {
        KeyvalPair *kp = g_ptr_array_index(opts->pairs, i);
        if (strcmp(kp->key, "hostfwd") == 0) {
            kp->used = true;
            g_ptr_array_add(fwds, kp->value);
        }
    }
    if (!keyval_check_all_used(opts, what, errp)) {
        g_ptr_array_free(fwds, TRUE);
        return false;
    }

    cfg.restricted = restricted;
    cfg.in_enabled = ipv4;
    cfg.vnetwork = net;
    cfg.vnetmask = mask;
    cfg.in6_enabled = ipv6;
    inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
    cfg.vprefix_len = 64;
    inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
    inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
    cfg.vhostname = s->hostname;
    cfg.vdomainname = s->domainname;
    cfg.tftp_path = s->tftp;
    cfg.bootfile = s->bootfile;
    cfg.vdhcp_start = s->dhcp_start;
    cfg.vdnssearch = (const char **)s->dnssearch;
    s->slirp = slirp_new(&cfg, &slirp_callbacks, s);
    if (!s->slirp) {
        error_setg(errp, "%s: libslirp refused the configuration", what);
        g_ptr_array_free(fwds, TRUE);
        return false;
    }
    /* Not with dns= at the gateway's address: libslirp sends what goes there to the
     * host's resolver (port 53 only), not to 127.0.0.1 as net/slirp-udp.c would. */
    if (!restricted && ipv4 && cfg.vnameserver.s_addr != cfg.vhost.s_addr) {
        s->udp = slirp_udp_new(m, nc, net, mask, cfg.vhost);
    }
    for (guint i = 0; i < fwds->len; i++) {
        if (!slirp_hostfwd(s, g_ptr_array_index(fwds, i), errp)) {
            error_prepend(errp, "%s: ", what);
            g_ptr_array_free(fwds, TRUE);
            return false;
        }
    }
    g_ptr_array_free(fwds, TRUE);

    s->src = g_source_new(&slirp_source_funcs, sizeof(SlirpSource));
    ((SlirpSource *)s->src)->s = s;
    g_source_set_name(s->src, "slirp");
    /* A non-recursive source has its descriptors taken out of the poll set and put back
     * around every dispatch (two eventfd writes and a read each time); dispatch never
     * runs the main loop itself, so it cannot be re-entered. */
    g_source_set_can_recurse(s->src, TRUE);
    g_source_attach(s->src, m->ctx);
    net_client_set_info_str(nc, "net=%s,restrict=%s", net_default,
                            restricted ? "on" : "off");
    return true;
}

const NetBackend net_user_backend = {
    .type = "user",
    .init = slirp_backend_init,
};

/* ---- HMP hostfwd_add / hostfwd_remove ---- */

/* "[netdev_id] rule": the user netdev named, or the first one; *rule gets a copy of the
 * rule word (the caller frees it). */
static NetSlirp *slirp_for_args(Machine *m, const char *args, char **rule, Error **errp)
{
    g_auto(GStrv) words = g_strsplit_set(args, " \t", -1);
    const char *w[3];
    unsigned n = 0;

    for (char **p = words; *p && n < 3; p++) {
        if (**p) {
            w[n++] = *p;
        }
    }
    if (n == 0 || n > 2) {
        error_setg(errp, "expected [netdev_id] rule");
        return NULL;
    }
    NetClientState *nc = n == 2 ? net_find_backend(m, w[0], "user") :
                                  net_find_backend(m, NULL, "user");
    if (!nc) {
        if (n == 2) {
            error_setg(errp, "'%s' is not a user-mode network device", w[0]);
        } else {
            error_setg(errp, "no user-mode network device");
        }
        return NULL;
    }
    *rule = g_strdup(w[n - 1]);
    return nc->opaque;
}

bool net_slirp_hostfwd_add(Machine *m, const char *args, Error **errp)
{
    g_autofree char *rule = NULL;
    NetSlirp *s = slirp_for_args(m, args, &rule, errp);

    return s && slirp_hostfwd(s, rule, errp);
}

bool net_slirp_hostfwd_remove(Machine *m, const char *args, Error **errp)
{
    g_autofree char *rule = NULL;
    const char *p;
    NetSlirp *s = slirp_for_args(m, args, &rule, errp);
    char buf[256];
    struct in_addr host_addr = { .s_addr = INADDR_ANY };
    int is_udp, port;

    if (!s) {
        return false;
    }
    /* "[tcp|udp]:[hostaddr]:hostport" */
    p = rule;
    if (!take_until(&p, ':', buf, sizeof(buf))) {
        goto fail;
    }
    if (!parse_proto(buf, &is_udp)) {
        goto fail;
    }
    if (!take_until(&p, ':', buf, sizeof(buf)) || (buf[0] && !inet_aton(buf, &host_addr)) ||
        !parse_port(p, &port)) {
        goto fail;
    }
    if (slirp_remove_hostfwd(s->slirp, is_udp, host_addr, port) < 0) {
        error_setg(errp, "host forwarding rule for %s not found", rule);
        return false;
    }
    /* libslirp removed the first rule with that host address and port: so do we. */
    for (guint i = 0; is_udp && i < s->udp_fwds->len; i++) {
        SlirpUdpFwd *f = &g_array_index(s->udp_fwds, SlirpUdpFwd, i);
        if (f->host_addr.s_addr == host_addr.s_addr && f->host_port == port) {
            if (s->udp) {
                slirp_udp_reserve(s->udp, f->guest_addr, (uint16_t)f->guest_port, -1,
                                  false);
            }
            g_array_remove_index(s->udp_fwds, i);
            break;
        }
    }
    return true;
fail:
    error_setg(errp, "invalid format: %s (want [tcp|udp]:[hostaddr]:hostport)", rule);
    return false;
}

/* ---- migration: libslirp's own state ---- */

static ssize_t state_write(const void *buf, size_t len, void *opaque)
{
    g_byte_array_append(opaque, buf, (guint)len);
    return (ssize_t)len;
}

typedef struct StateReader {
    const uint8_t *p;
    size_t left;
} StateReader;

static ssize_t state_read(void *buf, size_t len, void *opaque)
{
    StateReader *r = opaque;
    size_t n = MIN(len, r->left);

    memcpy(buf, r->p, n);
    r->p += n;
    r->left -= n;
    return (ssize_t)n;
}

int net_slirp_state_save(NetClientState *nc, GByteArray *out)
{
    NetSlirp *s = nc->opaque;

    slirp_state_save(s->slirp, state_write, out);
    return slirp_state_version();
}

bool net_slirp_state_load(NetClientState *nc, int version, const uint8_t *data, size_t len,
                          Error **errp)
{
    NetSlirp *s = nc->opaque;
    g_autoptr(GByteArray) own = g_byte_array_new();

    /* libslirp saves sockets only for guestfwd= rules, which Sen does not have: a state
     * with any (a non-zero first byte) or of another length than this libslirp's own is
     * not one Sen wrote, and libslirp's loader is not made for hostile input. */
    slirp_state_save(s->slirp, state_write, own);
    if (version != slirp_state_version() || len != own->len || data[0] != 0) {
        error_setg(errp, "netdev %s: the user network state (libslirp version %d, %zu "
                   "bytes) is not what this libslirp writes (version %d, %u bytes)",
                   nc->name, version, len, slirp_state_version(), own->len);
        return false;
    }
    StateReader r = { data, len };
    if (slirp_state_load(s->slirp, version, state_read, &r) < 0 || r.left) {
        error_setg(errp, "netdev %s: libslirp refused the user network state", nc->name);
        return false;
    }
    return true;
}
