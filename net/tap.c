/*
 * -netdev tap: a Linux TAP interface (ifname=, or an inherited fd=), as QEMU's.
 *
 * With IFF_VNET_HDR the 12-byte virtio-net header travels with every frame, so the NIC
 * can offer checksum/TSO offload (TUNSETOFFLOAD follows what the guest accepted).
 * script=/downscript= run a program with the interface name after creation / before
 * close (QEMU's defaults /etc/qemu-ifup, /etc/qemu-ifdown; "no" for none).
 * queues=N opens the TAP N times with IFF_MULTI_QUEUE: N backend queues for a NIC with mq=on,
 * the kernel spreading flows over the queues the NIC has enabled (TUNSETQUEUE).
 * Reads stop while the NIC cannot take frames (no rx buffers) and resume on peer_ready,
 * so the kernel queue, not Sen, holds the backlog; writes never block (a full tap queue
 * drops the frame).
 *
 * Where io_uring is usable (net/tap-ring.c), frames move in batches, one io_uring_enter
 * each instead of one readv/writev per frame: the NIC's tx burst (net_send_batch) is
 * written out when the NIC flushes it, before it gives the guest's buffers back; rx reads
 * as many frames at a time as the last batch brought (twice over, up to 64), each
 * straight into a guest buffer the NIC lends (bounce buffers where it lends none, or
 * behind a buffer too small for the frame).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include "net/net-internal.h"
#include "sen/iov.h"
#include "sen/log.h"

#define TAP_READ_BURST 64
#define TAP_DIRECT_IOV 16   /* pieces of a guest rx buffer read into directly */
/* A ring rx bounce buffer: the largest frame a TAP hands out (MTU 65535 with Ethernet
 * and 802.1Q headers, or a 64 KiB GSO segment) behind its header.  A read that fills
 * one may have been cut: it is dropped. */
#define TAP_BOUNCE_SIZE (NET_VNET_HDR_LEN + NET_MAX_FRAME + 64)
#define TAP_RX_BATCH_MIN 4

typedef struct NetTap {
    NetClientState *nc;
    Machine *m;
    int fd;
    GSource *src;            /* watches fd for frames while the NIC can take them */
    bool vnet_hdr;
    bool multi_queue;        /* opened with IFF_MULTI_QUEUE: queue_enable applies */
    RateLimit rl;            /* for queue_enable failures (the guest picks the pairs) */
    char ifname[IFNAMSIZ];
    char *downscript;
    uint64_t tx_dropped;
    uint64_t rx_dropped;     /* cut by the bounce buffer (ring reads) */
    TapRing *ring;           /* io_uring batches, NULL: one system call per frame */
    uint8_t *rx_bounce;      /* TAP_RING_ENTRIES bounce buffers, made at first use */
    unsigned rx_batch;       /* reads the next ring batch asks for */
} NetTap;

static gboolean tap_readable(gint fd, GIOCondition cond, gpointer opaque);
static void tap_flush(NetClientState *nc);

static void tap_read_poll(NetTap *s, bool on)
{
    if (on && !s->src) {
        GSource *src = g_unix_fd_source_new(s->fd, G_IO_IN);
        g_source_set_callback(src, (GSourceFunc)(void (*)(void))tap_readable, s, NULL);
        /* glib takes a non-recursive source's fd out of the poll set and puts it back
         * around every dispatch: two eventfd writes and a read per burst.  tap_readable
         * never runs the main loop itself, so re-entry cannot happen. */
        g_source_set_can_recurse(src, TRUE);
        g_source_attach(src, s->m->ctx);
        s->src = src;
    } else if (!on && s->src) {
        g_source_destroy(s->src);
        g_source_unref(s->src);
        s->src = NULL;
    }
}

/*
 * Reads one frame for the NIC: straight into the guest's rx buffer when the NIC lends
 * one (no bounce copy), with buf behind it for what does not fit; a frame that did
 * not fit, or came with no buffer lent, goes from buf through net_send.  Returns what
 * readv returned.
 */
static ssize_t tap_read_frame(NetTap *s, uint8_t *buf, size_t buf_size)
{
    struct iovec iov[TAP_DIRECT_IOV + 1];
    int lent = net_peer_rx_direct_get(s->nc, iov, TAP_DIRECT_IOV);
    size_t room = iov_size(iov, lent);
    size_t behind = MIN(room, buf_size);

    /* What misses the guest's buffer lands in buf at its offset in the frame, so a frame
     * bigger than that buffer only needs the guest's part copied in front, not the rest
     * moved behind it.  readv returns no more than the iovecs hold (the TAP cuts a longer
     * frame), so n > room only when room < buf_size, and then n <= buf_size. */
    iov[lent] = (struct iovec){ .iov_base = buf + behind, .iov_len = buf_size - behind };
    ssize_t n = readv(s->fd, iov, lent + 1);
    if (lent && n > 0 && (size_t)n <= room) {
        net_peer_rx_direct_done(s->nc, (size_t)n);
        return n;
    }
    if (lent && n > 0) {
        /* Bigger than the guest's buffer: the lent pieces, whole, go in front of the
         * rest. */
        iov_to_buf(iov, lent, 0, buf, room);
    }
    if (lent) {
        net_peer_rx_direct_done(s->nc, 0);
    }
    if (n > 0) {
        net_send_buf(s->nc, buf, (size_t)n);
    }
    return n;
}

/* A frame read into a bounce buffer goes into the guest buffer the NIC lends when it
 * fits (no allocation, the buffer popped without one), else through net_send, which
 * spreads it over mergeable buffers or queues it. */
static void tap_deliver(NetTap *s, const uint8_t *buf, size_t len)
{
    struct iovec iov[TAP_DIRECT_IOV];
    int lent = net_peer_rx_direct_get(s->nc, iov, TAP_DIRECT_IOV);

    if (lent && iov_size(iov, lent) >= len) {
        iov_from_buf(iov, lent, 0, buf, len);
        net_peer_rx_direct_done(s->nc, len);
        return;
    }
    if (lent) {
        net_peer_rx_direct_done(s->nc, 0);
    }
    net_send_buf(s->nc, buf, len);
}

/* A ring read's iovecs: the guest buffers the NIC lent for it (room bytes; none when it
 * lent nothing), then the bounce buffer from room on, so a frame bigger than the guest's
 * buffer lands at its own offset there, as in tap_read_frame. */
typedef struct TapRxSlot {
    struct iovec iov[TAP_DIRECT_IOV + 1];
    int lent;                /* pieces of guest buffer in front */
    size_t room;             /* bytes they hold */
} TapRxSlot;

static void tap_rx_slot_set(TapRxSlot *t, uint8_t *bounce, int lent)
{
    size_t behind;

    t->lent = lent;
    t->room = iov_size(t->iov, lent);
    behind = MIN(t->room, TAP_BOUNCE_SIZE);
    t->iov[lent] = (struct iovec){ .iov_base = bounce + behind,
                                   .iov_len = TAP_BOUNCE_SIZE - behind };
}

/* tap_read_burst through the ring: batches of reads, each one io_uring_enter, straight
 * into guest buffers while the NIC lends them.  Lent buffers are taken in order; from the
 * first frame that cannot be (a read that got nothing with a frame after it, a frame
 * bigger than its buffer, one the NIC refuses) the rest of the batch goes back through
 * the bounce buffers: what the kernel wrote into later lent buffers is copied out before
 * the NIC gets them back, then delivered by copy, in order. */
static bool tap_read_burst_ring(NetTap *s)
{
    TapRxSlot slot[TAP_RING_ENTRIES];
    struct iovec *iovs[TAP_RING_ENTRIES];
    int iovcnt[TAP_RING_ENTRIES];
    uint8_t *bufs[TAP_RING_ENTRIES];
    ssize_t lens[TAP_RING_ENTRIES];
    unsigned total = 0;
    bool full = false;

    /* The reads share the ring with the writes: none may wait unsubmitted in front of
     * them (a NIC does not read while it sends, but nothing else would stop it). */
    tap_flush(s->nc);
    if (!s->rx_bounce) {
        /* Untouched pages cost no memory: small frames use the first page of each. */
        s->rx_bounce = g_malloc((size_t)TAP_RING_ENTRIES * TAP_BOUNCE_SIZE);
    }
    for (unsigned i = 0; i < TAP_RING_ENTRIES; i++) {
        bufs[i] = s->rx_bounce + (size_t)i * TAP_BOUNCE_SIZE;
        iovs[i] = slot[i].iov;
    }
    net_burst_begin(s->nc);
    while (total < TAP_READ_BURST) {
        if (!net_peer_can_take(s->nc)) {
            full = true;
            break;
        }
        unsigned n = MIN(s->rx_batch, TAP_READ_BURST - total), lent = 0, got = 0;
        for (; lent < n; lent++) {
            int k = net_peer_rx_direct_get(s->nc, slot[lent].iov, TAP_DIRECT_IOV);
            if (!k) {
                break;
            }
            tap_rx_slot_set(&slot[lent], bufs[lent], k);
        }
        if (lent) {
            n = lent; /* no more than the guest has buffers for: the kernel keeps the rest */
        }
        for (unsigned i = lent; i < n; i++) {
            tap_rx_slot_set(&slot[i], bufs[i], 0);
        }
        for (unsigned i = 0; i < n; i++) {
            iovcnt[i] = slot[i].lent + 1;
        }
        if (!tap_ring_read(s->ring, iovs, iovcnt, n, lens)) {
            if (lent) {
                net_peer_rx_direct_return(s->nc);
            }
            break;
        }
        /* In the order read (a frame that came while the batch ran may follow an
         * EAGAIN: still in order). */
        bool taking = lent > 0;
        unsigned bounced = taking ? n : 0;  /* the first frame not taken */
        for (unsigned i = 0; i < n; i++) {
            TapRxSlot *t = &slot[i];
            ssize_t len = lens[i];
            got += len > 0;
            if (taking && len > 0 && (size_t)len <= t->room) {
                if (net_peer_rx_direct_take(s->nc, (size_t)len)) {
                    continue;
                }
                lens[i] = 0; /* refused (the guest's filter, a runt): dropped there */
            }
            if (taking) {
                taking = false;
                bounced = i;
            }
            if (lens[i] >= TAP_BOUNCE_SIZE) {
                s->rx_dropped++; /* may have been cut */
                lens[i] = 0;
            } else if (lens[i] > 0 && t->lent) {
                /* Out of the lent buffer before the NIC gets it back (what did not fit
                 * is behind it in the bounce buffer already). */
                iov_to_buf(t->iov, t->lent, 0, bufs[i], MIN((size_t)lens[i], t->room));
            }
        }
        if (lent) {
            net_peer_rx_direct_return(s->nc);
        }
        for (unsigned i = bounced; i < n; i++) {
            if (lens[i] > 0) {
                tap_deliver(s, bufs[i], (size_t)lens[i]);
            }
        }
        total += got;
        /* The next batch asks for twice what this one brought: a backlog is met with
         * big batches, a trickle costs few EAGAIN reads. */
        s->rx_batch = CLAMP(got * 2, TAP_RX_BATCH_MIN, TAP_RING_ENTRIES);
        if (got < n) {
            break; /* drained */
        }
    }
    net_burst_end(s->nc);
    return full;
}

/* Reads up to TAP_READ_BURST frames into the NIC (VM lock held); true when it stopped
 * because the NIC is full. */
static bool tap_read_burst(NetTap *s)
{
    uint8_t buf[NET_VNET_HDR_LEN + NET_MAX_FRAME];
    bool full = false;

    if (tap_ring_usable(s->ring)) {
        return tap_read_burst_ring(s);
    }
    net_burst_begin(s->nc);
    for (unsigned i = 0; i < TAP_READ_BURST; i++) {
        if (!net_peer_can_take(s->nc)) {
            full = true;
            break;
        }
        if (tap_read_frame(s, buf, sizeof(buf)) <= 0) {
            break;
        }
    }
    net_burst_end(s->nc);
    return full;
}

static gboolean tap_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    NetTap *s = opaque;

    machine_lock(s->m);
    if (tap_read_burst(s)) {
        /* The NIC is full: leave the rest in the kernel until it has room. */
        tap_read_poll(s, false);
    }
    machine_unlock(s->m);
    return G_SOURCE_CONTINUE; /* when removed above, glib drops it all the same */
}

/*
 * The guest posted buffers (its kick flushed the NIC, VM lock held): read what waits in
 * the kernel now, in the same wake-up as the kick, rather than in a later main-loop
 * iteration once the fd is polled again; watch the fd only if the NIC still has room.
 */
static void tap_peer_ready(NetClientState *nc)
{
    NetTap *s = nc->opaque;

    if (!tap_read_burst(s)) {
        tap_read_poll(s, true);
    }
}

/* Writes out the frames the ring holds (the NIC's batch reached net_send_flush). */
static void tap_flush(NetClientState *nc)
{
    NetTap *s = nc->opaque;

    if (s->ring) {
        s->tx_dropped += tap_ring_flush(s->ring);
    }
}

static ssize_t tap_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    /* Frames without a header (not from a NIC) get this one; it outlives any batch. */
    static const NetVnetHdr zero_hdr;
    NetTap *s = nc->opaque;
    struct iovec v[1 + 64];
    size_t len = iov_size(iov, iovcnt);
    size_t hdr_len = s->vnet_hdr && !nc->vnet_hdr ? NET_VNET_HDR_LEN : 0;
    int n = 0;

    if (iovcnt > 64) {
        s->tx_dropped++;
        return (ssize_t)len;
    }
    if (nc->batched && tap_ring_usable(s->ring)) {
        /* The sender keeps the frame's memory until net_send_flush: queue it. */
        if (tap_ring_queue_write(s->ring, iov, iovcnt, &zero_hdr, hdr_len)) {
            return (ssize_t)len;
        }
        tap_flush(nc); /* the batch is full: write it out, then start the next */
        if (tap_ring_queue_write(s->ring, iov, iovcnt, &zero_hdr, hdr_len)) {
            return (ssize_t)len;
        }
    }
    tap_flush(nc); /* frames queued before this one go first */
    if (hdr_len) {
        v[n].iov_base = (void *)&zero_hdr;
        v[n++].iov_len = NET_VNET_HDR_LEN;
    }
    memcpy(&v[n], iov, sizeof(*iov) * iovcnt);
    n += iovcnt;
    if (writev(s->fd, v, n) < 0) {
        s->tx_dropped++; /* EAGAIN: the interface queue is full; drop, never block */
    }
    return (ssize_t)len;
}

static bool tap_has_vnet_hdr(NetClientState *nc)
{
    return ((NetTap *)nc->opaque)->vnet_hdr;
}

static void tap_set_offload(NetClientState *nc, unsigned tun_flags)
{
    NetTap *s = nc->opaque;
    ioctl(s->fd, TUNSETOFFLOAD, (unsigned long)tun_flags); /* old kernels: no offload */
}

static void tap_queue_enable(NetClientState *nc, bool on)
{
    NetTap *s = nc->opaque;
    struct ifreq ifr = { .ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE };

    if (s->multi_queue && ioctl(s->fd, TUNSETQUEUE, &ifr) < 0 && errno != EINVAL) {
        /* EINVAL: already in that state.  Anything else leaves the kernel steering as
         * it was, which costs frames but nothing else. */
        log_guest_error(&s->rl, "-netdev tap,ifname=%s: queue %u: TUNSETQUEUE: %s",
                        s->ifname, nc->queue_index, g_strerror(errno));
    }
}

static bool run_script(const char *script, const char *ifname, Error **errp)
{
    char *argv[] = { (char *)script, (char *)ifname, NULL };
    gint status;
    GError *gerr = NULL;

    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                      &status, &gerr)) {
        error_setg(errp, "could not launch network script %s: %s", script, gerr->message);
        g_error_free(gerr);
        return false;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        error_setg(errp, "network script %s failed with status %d", script, status);
        return false;
    }
    return true;
}

static void tap_cleanup(NetClientState *nc)
{
    NetTap *s = nc->opaque;

    tap_read_poll(s, false);
    tap_flush(nc);
    tap_ring_free(s->ring);
    g_free(s->rx_bounce);
    if (s->downscript) {
        Error *err = NULL;
        if (!run_script(s->downscript, s->ifname, &err)) {
            error_report_err(err);
        }
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    g_free(s->downscript);
    g_free(s);
}

static const NetClientInfo tap_info = {
    .type = "tap",
    .receive = tap_receive,
    .peer_ready = tap_peer_ready,
    .flush = tap_flush,
    .has_vnet_hdr = tap_has_vnet_hdr,
    .set_offload = tap_set_offload,
    .queue_enable = tap_queue_enable,
    .cleanup = tap_cleanup,
};

/* Opens /dev/net/tun as a TAP named ifname (empty: the kernel names it). */
int net_tap_open(const char *ifname, bool want_vnet_hdr, bool multi_queue, bool *vnet_hdr,
                 char *name_out, const char *what, Error **errp)
{
    struct ifreq ifr = { 0 };
    unsigned features = 0;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: could not open /dev/net/tun", what);
        return -1;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (multi_queue ? IFF_MULTI_QUEUE : 0);
    *vnet_hdr = false;
    if (want_vnet_hdr && ioctl(fd, TUNGETFEATURES, &features) == 0 &&
        (features & IFF_VNET_HDR)) {
        ifr.ifr_flags |= IFF_VNET_HDR;
        *vnet_hdr = true;
    }
    g_strlcpy(ifr.ifr_name, ifname ? ifname : "", IFNAMSIZ);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        error_setg_errno(errp, errno, "%s: could not configure /dev/net/tun (%s)", what,
                         ifname ? ifname : "any name");
        close(fd);
        return -1;
    }
    if (*vnet_hdr) {
        int sz = NET_VNET_HDR_LEN;
        if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
            error_setg_errno(errp, errno, "%s: TUNSETVNETHDRSZ", what);
            close(fd);
            return -1;
        }
    }
    g_strlcpy(name_out, ifr.ifr_name, IFNAMSIZ);
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    return fd;
}

bool net_tap_attach(Machine *m, const char *id, int fd, bool vnet_hdr, bool multi_queue,
                    const char *ifname, const char *downscript, GPtrArray *queues)
{
    NetTap *s = g_new0(NetTap, 1);

    s->m = m;
    s->fd = fd;
    s->vnet_hdr = vnet_hdr;
    g_strlcpy(s->ifname, ifname, sizeof(s->ifname));
    s->downscript = g_strdup(downscript);
    s->multi_queue = multi_queue;
    s->nc = net_client_new(m, &tap_info, "tap", id, queues->len);
    s->nc->opaque = s;
    net_client_set_info_str(s->nc, "ifname=%s,script=%s,downscript=%s", s->ifname,
                            "no", downscript ? downscript : "no");
    g_ptr_array_add(queues, s->nc);
    tap_read_poll(s, true);
    return true;
}

void net_tap_enable_ring(NetClientState *nc)
{
    NetTap *s = nc->opaque;

    if (!s->ring) {
        s->ring = tap_ring_new(s->fd);
        s->rx_batch = TAP_RX_BATCH_MIN;
    }
}

bool net_tap_has_ring(NetClientState *nc)
{
    return tap_ring_usable(((NetTap *)nc->opaque)->ring);
}

static bool tap_init(Machine *m, const char *id, Keyval *opts, const char *what,
                     GPtrArray *queues, Error **errp)
{
    const char *ifname = keyval_get(opts, "ifname");
    const char *fd_s = keyval_get(opts, "fd");
    const char *script = keyval_get(opts, "script");
    const char *downscript = keyval_get(opts, "downscript");
    bool vhost, want_hdr;
    char name[IFNAMSIZ] = "";
    uint64_t nq;
    int fd;

    if (!keyval_get_bool(opts, what, "vhost", false, &vhost, errp) ||
        !keyval_get_bool(opts, what, "vnet_hdr", true, &want_hdr, errp) ||
        !keyval_get_u64(opts, what, "queues", 1, &nq, errp) ||
        !keyval_check_all_used(opts, what, errp)) {
        return false;
    }
    if (nq < 1 || nq > NET_MAX_QUEUES) {
        error_setg(errp, "%s: queues=%" G_GUINT64_FORMAT ": want 1 to %d", what, nq,
                   NET_MAX_QUEUES);
        return false;
    }
    if (vhost) {
        error_setg(errp, "%s: vhost=on is not supported by Sen (use vhost=off)", what);
        return false;
    }
    if (ifname && strlen(ifname) >= IFNAMSIZ) {
        error_setg(errp, "%s: ifname=%s: longer than %d characters", what, ifname,
                   IFNAMSIZ - 1);
        return false;
    }
    script = script ? script : "/etc/qemu-ifup";
    downscript = downscript ? downscript : "/etc/qemu-ifdown";
    if (fd_s) {
        uint64_t v;
        Error *local = NULL;
        if (ifname || keyval_has(opts, "script") || nq > 1) {
            error_setg(errp, "%s: fd= goes without ifname=, script= and queues=", what);
            return false;
        }
        if (!parse_uint(fd_s, &v, &local) || v > G_MAXINT || fcntl((int)v, F_GETFD) < 0) {
            error_free(local);
            error_setg(errp, "%s: fd=%s: not an open file descriptor", what, fd_s);
            return false;
        }
        struct ifreq ifr = { 0 };
        fd = (int)v;
        want_hdr = false;
        if (ioctl(fd, TUNGETIFF, &ifr) == 0) {
            g_strlcpy(name, ifr.ifr_name, sizeof(name));
            if (ifr.ifr_flags & IFF_VNET_HDR) {
                int sz = NET_VNET_HDR_LEN;
                want_hdr = ioctl(fd, TUNSETVNETHDRSZ, &sz) == 0;
            }
        }
        g_unix_set_fd_nonblocking(fd, TRUE, NULL);
        if (!net_tap_attach(m, id, fd, want_hdr, false, name, NULL, queues)) {
            return false;
        }
        net_tap_enable_ring(g_ptr_array_index(queues, queues->len - 1));
        return true;
    }
    /* Every queue is open before the script runs and anything is attached, so a
     * failure closes fds and leaves no half-made netdev. */
    bool hdr, mq = nq > 1;
    int fds[NET_MAX_QUEUES];
    unsigned opened = 0;
    for (; opened < nq; opened++) {
        char qname[IFNAMSIZ]; /* queues after the first join the interface the first made */
        fds[opened] = net_tap_open(opened ? name : ifname, want_hdr, mq, &hdr,
                                   opened ? qname : name, what, errp);
        if (fds[opened] < 0) {
            goto fail;
        }
    }
    if (strcmp(script, "no") != 0 && *script) {
        Error *err = NULL;
        if (!run_script(script, name, &err)) {
            error_propagate(errp, err);
            error_prepend(errp, "%s: ", what);
            goto fail;
        }
    }
    for (unsigned i = 0; i < nq; i++) {
        /* The downscript runs once, when queue 0 goes. */
        net_tap_attach(m, id, fds[i], hdr, mq, name,
                       i == 0 && strcmp(downscript, "no") != 0 && *downscript ? downscript
                                                                             : NULL,
                       queues);
        net_tap_enable_ring(g_ptr_array_index(queues, queues->len - 1));
    }
    return true;

fail:
    while (opened) {
        close(fds[--opened]);
    }
    return false;
}

const NetBackend net_tap_backend = {
    .type = "tap",
    .init = tap_init,
};
