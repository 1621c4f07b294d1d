/*
 * net/net.c without a VM: a sender and a receiver that refuses frames while it "has no
 * rx buffers".  Frames wait in order up to NET_QUEUE_LIMIT (and NET_QUEUE_BYTES), the
 * rest are dropped and counted (the sender never blocks), a flush delivers them as one
 * burst and tells the sender to go on, and freeing one end leaves the other without a
 * peer.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <glib.h>
#include <glib-unix.h>
#include "net/net-internal.h"
#include "sen/keyval.h"
#include "sen/net.h"
#include "sen/timer.h"
#include "slirp-test-util.h"

typedef struct Sink {
    bool accept;
    GArray *got;          /* first byte of every frame taken */
    unsigned peer_ready;
    unsigned link_changes;
    int budget;           /* > 0: frames taken before refusing again (0: no limit) */
    unsigned bursts;      /* burst_end calls */
    unsigned got_at_burst_end;
} Sink;

static ssize_t sink_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    Sink *s = nc->opaque;
    if (!s->accept) {
        return 0;
    }
    if (s->budget > 0 && --s->budget == 0) {
        s->accept = false;
    }
    g_array_append_val(s->got, ((uint8_t *)iov[0].iov_base)[0]);
    return (ssize_t)iov[0].iov_len;
}

static bool sink_can_receive(NetClientState *nc)
{
    return ((Sink *)nc->opaque)->accept;
}

static void sink_peer_ready(NetClientState *nc)
{
    ((Sink *)nc->opaque)->peer_ready++;
}

static void sink_link_changed(NetClientState *nc)
{
    ((Sink *)nc->opaque)->link_changes++;
}

static void sink_burst_end(NetClientState *nc)
{
    Sink *s = nc->opaque;
    s->bursts++;
    s->got_at_burst_end = s->got->len;
}

static const NetClientInfo sink_info = {
    .type = "test",
    .receive = sink_receive,
    .can_receive = sink_can_receive,
    .peer_ready = sink_peer_ready,
    .burst_end = sink_burst_end,
    .link_changed = sink_link_changed,
};

/* A client of the test's own kind, info with opaque, on the other end of peer (if any). */
static NetClientState *test_client_new(const NetClientInfo *info, const char *name,
                                       void *opaque, NetClientState *peer)
{
    NetClientState *nc = net_client_new(NULL, info, "test", name, 0);

    nc->opaque = opaque;
    if (peer) {
        net_link(peer, nc);
    }
    return nc;
}

/* Writes n 60-byte frames into fd, numbered from first in their first byte. */
static void write_numbered(int fd, unsigned first, unsigned n)
{
    uint8_t frame[60] = { 0 };

    for (unsigned i = first; i < first + n; i++) {
        frame[0] = (uint8_t)i;
        g_assert_cmpint(write(fd, frame, sizeof(frame)), ==, sizeof(frame));
    }
}

/* The sink took n frames, numbered 0 to n - 1 (mod 256), in that order. */
static void assert_numbered(const Sink *s, unsigned n)
{
    g_assert_cmpuint(s->got->len, ==, n);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpuint(g_array_index(s->got, uint8_t, i), ==, (uint8_t)i);
    }
}

/* Runs what is ready in ctx, without waiting, until nothing is. */
static void loop_drain(GMainContext *ctx)
{
    while (g_main_context_iteration(ctx, FALSE)) {
    }
}

/* Runs ctx without waiting, 100 rounds at most, until *count reaches want. */
static void loop_until(GMainContext *ctx, const guint *count, guint want)
{
    for (unsigned i = 0; i < 100 && *count < want; i++) {
        g_main_context_iteration(ctx, FALSE);
    }
}

static void test_queue_bounded_and_ordered(void)
{
    Sink a = { .accept = true, .got = g_array_new(FALSE, FALSE, 1) };
    Sink b = { .accept = false, .got = g_array_new(FALSE, FALSE, 1) };
    NetClientState *tx = test_client_new(&sink_info, "tx", &a, NULL);
    NetClientState *rx = test_client_new(&sink_info, "rx", &b, tx);

    uint8_t frame[60] = { 0 };
    unsigned sent = NET_QUEUE_LIMIT + 44, ok = 0;
    for (unsigned i = 0; i < sent; i++) {
        frame[0] = (uint8_t)i;
        ok += net_send_buf(tx, frame, sizeof(frame));
    }
    g_assert_cmpuint(ok, ==, NET_QUEUE_LIMIT);
    g_assert_cmpuint(rx->incoming.length, ==, NET_QUEUE_LIMIT);
    g_assert_cmpuint(rx->rx_dropped, ==, 44);
    g_assert_cmpuint(b.got->len, ==, 0);
    g_assert_false(net_peer_can_take(tx));

    /* Still no buffers: a flush keeps everything. */
    net_client_flush(rx);
    g_assert_cmpuint(rx->incoming.length, ==, NET_QUEUE_LIMIT);
    g_assert_cmpuint(a.peer_ready, ==, 0);

    b.accept = true;
    unsigned bursts = b.bursts;
    net_client_flush(rx);
    assert_numbered(&b, NET_QUEUE_LIMIT);
    g_assert_cmpuint(a.peer_ready, ==, 1);
    g_assert_true(net_peer_can_take(tx));
    /* What waited went to the receiver as one burst, ended after the last frame. */
    g_assert_cmpuint(b.bursts, ==, bursts + 1);
    g_assert_cmpuint(b.got_at_burst_end, ==, NET_QUEUE_LIMIT);

    /* Empty frames and frames over NET_MAX_FRAME never travel. */
    g_assert_false(net_send_buf(tx, frame, 0));

    /* A link down drops at the sender; freeing one end tells the other. */
    net_client_set_link(tx, false);
    g_assert_false(net_send_buf(tx, frame, sizeof(frame)));
    net_client_set_link(tx, true);
    g_assert_true(net_send_buf(tx, frame, sizeof(frame)));
    unsigned changes = b.link_changes;
    net_client_free(tx);
    g_assert_null(rx->peer);
    g_assert_cmpuint(b.link_changes, ==, changes + 1);
    net_client_free(rx);
    g_array_free(a.got, TRUE);
    g_array_free(b.got, TRUE);
}

/* The queue is bounded in bytes too (big frames), net_peer_has_room says when it is
 * full (slirp stops polling its sockets then), and a flush that frees room tells the
 * sender even when frames still wait (the NIC filled up again meanwhile). */
static void test_queue_bytes_and_room(void)
{
    Sink a = { .accept = true, .got = g_array_new(FALSE, FALSE, 1) };
    Sink b = { .accept = false, .got = g_array_new(FALSE, FALSE, 1) };
    NetClientState *tx = test_client_new(&sink_info, "tx", &a, NULL);
    NetClientState *rx = test_client_new(&sink_info, "rx", &b, tx);
    g_autofree uint8_t *big = g_malloc0(NET_MAX_FRAME);
    unsigned fit = NET_QUEUE_BYTES / NET_MAX_FRAME;

    g_assert_cmpuint(fit, <, NET_QUEUE_LIMIT);
    for (unsigned i = 0; i < fit; i++) {
        g_assert_true(net_peer_has_room(tx));
        big[0] = (uint8_t)i;
        g_assert_true(net_send_buf(tx, big, NET_MAX_FRAME));
    }
    g_assert_false(net_peer_has_room(tx));
    g_assert_false(net_send_buf(tx, big, NET_MAX_FRAME));
    g_assert_cmpuint(rx->rx_dropped, ==, 1);
    g_assert_cmpuint(rx->incoming.length, ==, fit);

    /* The receiver takes 3 and is full again: room for 3, the sender hears of it. */
    b.accept = true;
    b.budget = 3;
    net_client_flush(rx);
    g_assert_cmpuint(b.got->len, ==, 3);
    g_assert_cmpuint(rx->incoming.length, ==, fit - 3);
    g_assert_cmpuint(a.peer_ready, ==, 1);
    g_assert_true(net_peer_has_room(tx));
    g_assert_false(net_peer_can_take(tx));  /* the receiver itself is still full */

    b.accept = true;
    b.budget = 0;
    net_client_flush(rx);
    g_assert_cmpuint(b.got->len, ==, fit);
    for (unsigned i = 0; i < fit; i++) {
        g_assert_cmpuint(g_array_index(b.got, uint8_t, i), ==, (uint8_t)i);
    }
    g_assert_true(net_peer_can_take(tx));
    net_client_free(tx);
    net_client_free(rx);
    g_array_free(a.got, TRUE);
    g_array_free(b.got, TRUE);
}

/* A sender's burst: the receiver hears burst_end once, when the outermost one ends,
 * after every frame of it; frames outside a burst need no burst_end. */
static void test_burst(void)
{
    Sink a = { .accept = true, .got = g_array_new(FALSE, FALSE, 1) };
    Sink b = { .accept = true, .got = g_array_new(FALSE, FALSE, 1) };
    NetClientState *tx = test_client_new(&sink_info, "tx", &a, NULL);
    NetClientState *rx = test_client_new(&sink_info, "rx", &b, tx);
    uint8_t frame[60] = { 0 };

    g_assert_true(net_send_buf(tx, frame, sizeof(frame)));
    g_assert_cmpuint(b.bursts, ==, 0);

    net_burst_begin(tx);
    net_burst_begin(tx);         /* nested: a flush inside a backend's burst */
    for (unsigned i = 0; i < 5; i++) {
        g_assert_true(net_send_buf(tx, frame, sizeof(frame)));
    }
    net_burst_end(tx);
    g_assert_cmpuint(b.bursts, ==, 0);
    g_assert_true(net_send_buf(tx, frame, sizeof(frame)));
    net_burst_end(tx);
    g_assert_cmpuint(b.bursts, ==, 1);
    g_assert_cmpuint(b.got_at_burst_end, ==, 7);
    g_assert_cmpuint(rx->burst, ==, 0);

    /* An end without a begin (the peer changed in between) does not underflow. */
    net_burst_end(tx);
    g_assert_cmpuint(rx->burst, ==, 0);
    g_assert_cmpuint(b.bursts, ==, 1);
    net_client_free(tx);
    net_client_free(rx);
    g_array_free(a.got, TRUE);
    g_array_free(b.got, TRUE);
}

/*
 * net/tap.c over a socketpair standing in for the TAP fd: a NIC without buffers stops
 * the reads (the frames stay in the kernel); the flush after the guest's kick reads them
 * at once, in that same call, not in a later main-loop iteration; then the fd is
 * watched again.
 */
/* Whether a tap here could batch through io_uring (net/tap-ring.c). */
static bool ring_available(void)
{
    int fds[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), ==, 0);
    TapRing *r = tap_ring_new(fds[0]);
    tap_ring_free(r);
    close(fds[0]);
    close(fds[1]);
    return r != NULL;
}

/* Turns on the tap's io_uring batches when ring; false (the test skipped) when the host
 * or the build has none. */
static bool tap_use_ring(NetClientState *tap, bool ring)
{
    if (!ring) {
        return true;
    }
    net_tap_enable_ring(tap);
    if (!net_tap_has_ring(tap)) {
        g_test_skip("no io_uring here (built without liburing, or the kernel refused it)");
        return false;
    }
    return true;
}

/*
 * A tap over a socketpair standing in for the TAP fd (fds[0] the tap's, fds[1] the
 * "kernel" side), with the machine's lock and context set up; with ring its io_uring
 * batches on.  False (the test skipped) when ring is asked for and there is none; *tap is
 * set either way and is freed by the caller.
 */
static bool fake_tap_new(Machine *m, GPtrArray *queues, int fds[2], bool vnet_hdr,
                         bool ring, NetClientState **tap)
{
    g_mutex_init(&m->lock);
    m->ctx = g_main_context_default();
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), ==, 0);
    g_assert_true(g_unix_set_fd_nonblocking(fds[0], TRUE, NULL));
    g_assert_true(net_tap_attach(m, "t0", fds[0], vnet_hdr, false, "faketap", NULL, queues));
    *tap = g_ptr_array_index(queues, 0);
    return tap_use_ring(*tap, ring);
}

/* Frees what fake_tap_new set up (the tap closes fds[0]). */
static void fake_tap_free(Machine *m, GPtrArray *queues, int fds[2], NetClientState *tap)
{
    net_client_free(tap);
    close(fds[1]);
    g_ptr_array_free(queues, TRUE);
    g_mutex_clear(&m->lock);
}

static void test_tap_reads_on_peer_ready(gconstpointer ring)
{
    Machine m = { 0 };
    Sink b = { .accept = false, .got = g_array_new(FALSE, FALSE, 1) };
    GPtrArray *queues = g_ptr_array_new();
    int fds[2];

    NetClientState *tap;
    if (!fake_tap_new(&m, queues, fds, false, ring, &tap)) {
        goto out;
    }
    NetClientState *nic = test_client_new(&sink_info, "nic", &b, tap);

    write_numbered(fds[1], 0, 3);
    loop_drain(m.ctx);
    g_assert_cmpuint(b.got->len, ==, 0);
    g_assert_cmpuint(nic->incoming.length, ==, 0);   /* left in the kernel, not queued */

    b.accept = true;
    net_client_flush(nic);
    assert_numbered(&b, 3);
    write_numbered(fds[1], 3, 1);
    loop_until(m.ctx, &b.got->len, 4);
    assert_numbered(&b, 4);
    net_client_free(nic);
out:
    fake_tap_free(&m, queues, fds, tap);
    g_array_free(b.got, TRUE);
}

/*
 * A NIC that lends rx buffers for tap to read into, as virtio-net does: up to
 * LEND_SLOTS frames' buffers at a time, each one or two pieces (piece_len), taken oldest
 * first; the rest given back together.  A frame that fits lands there, with nothing
 * copied; one that does not arrives whole and in order through receive().  It refuses
 * (as virtio-net's rx filter) a frame whose header's first byte is REFUSE_MARK.
 */
#define LEND_SLOTS 8
#define REFUSE_MARK 0xee

typedef struct LendingNic {
    size_t piece_len[2];  /* the second 0: one piece */
    uint8_t *mem;         /* LEND_SLOTS buffers of piece_len[0] + piece_len[1] bytes */
    unsigned first, count;                     /* lent now, oldest first */
    unsigned lent, taken, returned, refused;   /* buffers, over the test */
    GByteArray *direct;   /* frames taken from the lent buffers, one after another */
    GByteArray *copied;   /* what receive() got */
    GString *order;       /* 'd' per frame taken, 'c' per frame through receive() */
} LendingNic;

static void lender_init(LendingNic *l, size_t piece0, size_t piece1)
{
    *l = (LendingNic){ .piece_len = { piece0, piece1 },
                       .mem = g_malloc0(LEND_SLOTS * (piece0 + piece1)),
                       .direct = g_byte_array_new(), .copied = g_byte_array_new(),
                       .order = g_string_new("") };
}

static void lender_free(LendingNic *l)
{
    g_assert_cmpuint(l->count, ==, 0); /* nothing left lent */
    g_assert_cmpuint(l->lent, ==, l->taken + l->returned);
    g_free(l->mem);
    g_byte_array_free(l->direct, TRUE);
    g_byte_array_free(l->copied, TRUE);
    g_string_free(l->order, TRUE);
}

static uint8_t *lend_slot(LendingNic *l, unsigned i)
{
    return l->mem + (size_t)(i % LEND_SLOTS) * (l->piece_len[0] + l->piece_len[1]);
}

static int lend_get(NetClientState *nc, struct iovec *iov, int max)
{
    LendingNic *l = nc->opaque;
    int n = l->piece_len[1] ? 2 : 1;

    if (l->count == LEND_SLOTS) {
        return 0;
    }
    g_assert_cmpint(max, >=, n);
    uint8_t *b = lend_slot(l, l->first + l->count);
    iov[0] = (struct iovec){ .iov_base = b, .iov_len = l->piece_len[0] };
    iov[1] = (struct iovec){ .iov_base = b + l->piece_len[0], .iov_len = l->piece_len[1] };
    l->count++;
    l->lent++;
    return n;
}

static bool lend_take(NetClientState *nc, size_t len)
{
    LendingNic *l = nc->opaque;
    uint8_t *b = lend_slot(l, l->first);

    g_assert_cmpuint(l->count, >, 0);
    g_assert_cmpuint(len, <=, l->piece_len[0] + l->piece_len[1]);
    if (!len || b[0] == REFUSE_MARK) {
        l->refused += len != 0;
        return false;
    }
    g_byte_array_append(l->direct, b, len);
    g_string_append_c(l->order, 'd');
    l->first = (l->first + 1) % LEND_SLOTS;
    l->count--;
    l->taken++;
    return true;
}

static void lend_return(NetClientState *nc)
{
    LendingNic *l = nc->opaque;
    l->returned += l->count;
    l->count = 0;
}

static ssize_t lend_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    LendingNic *l = nc->opaque;
    g_assert_cmpuint(l->count, ==, 0); /* nothing may come while buffers are lent */
    for (int i = 0; i < iovcnt; i++) {
        g_byte_array_append(l->copied, iov[i].iov_base, iov[i].iov_len);
    }
    g_string_append_c(l->order, 'c');
    return (ssize_t)iov_size(iov, iovcnt);
}

static bool lend_has_vnet_hdr(NetClientState *nc)
{
    return true;
}

static const NetClientInfo lending_info = {
    .type = "test-lending", .receive = lend_receive, .has_vnet_hdr = lend_has_vnet_hdr,
    .rx_direct_get = lend_get, .rx_direct_take = lend_take, .rx_direct_return = lend_return,
};

/* Three frames waiting (one too big for the 20 + 80 byte buffers between two that fit):
 * the small ones land in lent buffers, the big one comes whole through receive(), in
 * order.  Through the ring all three are read in one batch into lent buffers: the big
 * one spills into its bounce buffer, so it and the frame after it (copied out of its lent
 * buffer before that goes back) are delivered by copy. */
static void test_tap_reads_into_lent_buffer(gconstpointer ring)
{
    Machine m = { 0 };
    LendingNic l;
    GPtrArray *queues = g_ptr_array_new();
    uint8_t small[NET_VNET_HDR_LEN + 60], big[NET_VNET_HDR_LEN + 300];
    int fds[2];

    lender_init(&l, 20, 80);
    for (unsigned i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 3 + 1);
        if (i < sizeof(small)) {
            small[i] = (uint8_t)(i * 5 + 2);
        }
    }
    NetClientState *tap;
    if (!fake_tap_new(&m, queues, fds, true, ring, &tap)) {
        goto out;
    }
    NetClientState *nic = test_client_new(&lending_info, "nic", &l, tap);
    g_assert_true(tap->vnet_hdr);

    g_assert_cmpint(write(fds[1], small, sizeof(small)), ==, sizeof(small));
    g_assert_cmpint(write(fds[1], big, sizeof(big)), ==, sizeof(big));
    g_assert_cmpint(write(fds[1], small, sizeof(small)), ==, sizeof(small));
    loop_until(m.ctx, &l.copied->len, sizeof(big));
    loop_until(m.ctx, &l.direct->len, 2 * sizeof(small));
    /* Both small frames in the lent pieces, the big one whole through receive(). */
    g_assert_cmpstr(l.order->str, ==, "dcd");
    g_assert_cmpmem(l.direct->data, sizeof(small), small, sizeof(small));
    g_assert_cmpmem(l.direct->data + sizeof(small), sizeof(small), small, sizeof(small));
    g_assert_cmpmem(l.copied->data, l.copied->len, big, sizeof(big));
    g_assert_cmpuint(l.taken, ==, 2);
    if (ring) {
        /* One batch of four lent (the first batch's size): the first taken, the other
         * three given back, then one lent per frame delivered by copy (the big one's
         * given back again). */
        g_assert_cmpuint(l.lent, ==, 6);
        g_assert_cmpuint(l.returned, ==, 4);
    } else {
        /* Lent for each frame and for the read that found the socket empty; given back
         * for the big frame and for that read. */
        g_assert_cmpuint(l.lent, ==, 4);
        g_assert_cmpuint(l.returned, ==, 2);
    }
    net_client_free(nic);
out:
    fake_tap_free(&m, queues, fds, tap);
    lender_free(&l);
}

/* A tap over a socketpair batching through its ring, a LendingNic its peer. */
typedef struct LendRig {
    Machine m;
    LendingNic l;
    GPtrArray *queues;
    int fds[2];
    NetClientState *tap, *nic;
} LendRig;

/* False (the test skipped) when there is no ring; lend_rig_free either way. */
static bool lend_rig_new(LendRig *r, size_t piece0, size_t piece1)
{
    memset(r, 0, sizeof(*r));
    r->queues = g_ptr_array_new();
    lender_init(&r->l, piece0, piece1);
    if (!fake_tap_new(&r->m, r->queues, r->fds, true, true, &r->tap)) {
        return false;
    }
    r->nic = test_client_new(&lending_info, "nic", &r->l, r->tap);
    return true;
}

static void lend_rig_free(LendRig *r)
{
    if (r->nic) {
        net_client_free(r->nic);
    }
    fake_tap_free(&r->m, r->queues, r->fds, r->tap);
    lender_free(&r->l);
}

/* Frame f of a test: len bytes (header and frame) made from f. */
static void frame_fill(uint8_t *b, size_t len, unsigned f)
{
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)(i * 7 + f * 31 + 1);
    }
}

/* Frame f of a test into the tap: made (frame_fill), then written. */
static void lend_rig_write(LendRig *r, uint8_t *b, size_t len, unsigned f)
{
    frame_fill(b, len, f);
    g_assert_cmpint(write(r->fds[1], b, len), ==, (ssize_t)len);
}

/* Through the ring, a frame the NIC refuses (its rx filter) in the middle of a batch read
 * into lent buffers: it is dropped, and the frames read after it into later lent buffers
 * are copied out before those go back, then delivered in order. */
static void test_tap_ring_refused_in_batch(void)
{
    LendRig r;
    uint8_t fr[4][NET_VNET_HDR_LEN + 60];

    if (lend_rig_new(&r, 200, 0)) {
        for (unsigned f = 0; f < 4; f++) {
            frame_fill(fr[f], sizeof(fr[f]), f);
            fr[f][0] = f == 1 ? REFUSE_MARK : 0;
            g_assert_cmpint(write(r.fds[1], fr[f], sizeof(fr[f])), ==, sizeof(fr[f]));
        }
        loop_until(r.m.ctx, &r.l.direct->len, 3 * sizeof(fr[0]));
        g_assert_cmpstr(r.l.order->str, ==, "ddd");
        g_assert_cmpuint(r.l.refused, ==, 1);
        g_assert_cmpmem(r.l.direct->data, sizeof(fr[0]), fr[0], sizeof(fr[0]));
        g_assert_cmpmem(r.l.direct->data + sizeof(fr[0]), sizeof(fr[0]), fr[2],
                        sizeof(fr[0]));
        g_assert_cmpmem(r.l.direct->data + 2 * sizeof(fr[0]), sizeof(fr[0]), fr[3],
                        sizeof(fr[0]));
    }
    lend_rig_free(&r);
}

/*
 * Through the ring, a read of a batch that found nothing while a later one found a frame
 * (one came while the batch ran; made here with tap_ring_test_eagain): the frame before
 * the hole is taken in place; those after it, read into later lent buffers (one of them
 * bigger than its buffer), are copied out before the buffers go back and arrive whole and
 * in order, as does the frame the next batch reads; nothing stays lent.
 */
static void test_tap_ring_hole_in_batch(void)
{
    static const size_t len[4] = { NET_VNET_HDR_LEN + 60, NET_VNET_HDR_LEN + 70,
                                   NET_VNET_HDR_LEN + 150, NET_VNET_HDR_LEN + 80 };
    uint8_t fr[4][NET_VNET_HDR_LEN + 150];
    LendRig r;

    if (lend_rig_new(&r, 20, 80)) {
        for (unsigned f = 0; f < 4; f++) {
            lend_rig_write(&r, fr[f], len[f], f);
        }
        /* The first batch: four reads into four lent buffers, the second finds nothing. */
        tap_ring_test_eagain = 1u << 1;
        size_t want = len[0] + len[1] + len[2] + len[3];
        for (unsigned i = 0; i < 100 && r.l.direct->len + r.l.copied->len < want; i++) {
            g_main_context_iteration(r.m.ctx, FALSE);
        }
        g_assert_cmpuint(r.l.direct->len + r.l.copied->len, ==, want);
        g_assert_cmpuint(tap_ring_test_eagain, ==, 0); /* the hook was used */
        g_assert_true(net_tap_has_ring(r.tap));
        g_assert_cmpstr(r.l.order->str, ==, "ddcd");
        g_assert_cmpmem(r.l.direct->data, len[0], fr[0], len[0]);
        g_assert_cmpmem(r.l.direct->data + len[0], len[1], fr[1], len[1]);
        g_assert_cmpmem(r.l.direct->data + len[0] + len[1], len[3], fr[3], len[3]);
        g_assert_cmpmem(r.l.copied->data, r.l.copied->len, fr[2], len[2]);
        /* Four lent, the first taken, three given back; one lent per frame delivered by
         * copy (the big one's given back); the next batch of six (twice the three the
         * first brought) takes the last frame and gives five back. */
        g_assert_cmpuint(r.l.lent, ==, 4 + 2 + 6);
        g_assert_cmpuint(r.l.returned, ==, 3 + 1 + 5);
    }
    lend_rig_free(&r);
}

/*
 * Through the ring, a kernel that takes two of a batch's four reads and refuses the rest
 * (tap_ring_test_short_submit, tap_ring_test_submit_fails): the two frames read into lent
 * buffers are taken, the other two buffers go back untouched, the ring is no longer used,
 * and the frames still waiting come one read each, in order; nothing stays lent.
 */
static void test_tap_ring_rx_fails_mid_batch(void)
{
    uint8_t fr[6][NET_VNET_HDR_LEN + 60];
    LendRig r;

    if (lend_rig_new(&r, 20, 80)) {
        for (unsigned f = 0; f < 6; f++) {
            lend_rig_write(&r, fr[f], sizeof(fr[f]), f);
        }
        tap_ring_test_short_submit = 2;
        tap_ring_test_submit_fails = true;
        loop_until(r.m.ctx, &r.l.direct->len, sizeof(fr));
        g_assert_cmpuint(tap_ring_test_short_submit, ==, 0); /* the hook was used */
        g_assert_false(tap_ring_test_submit_fails);
        g_assert_false(net_tap_has_ring(r.tap));
        g_assert_cmpstr(r.l.order->str, ==, "dddddd");
        g_assert_cmpmem(r.l.direct->data, r.l.direct->len, fr, sizeof(fr));
        /* The batch lent four and gave two back; then one per frame and one for the read
         * that found the socket empty, given back. */
        g_assert_cmpuint(r.l.lent, ==, 4 + 4 + 1);
        g_assert_cmpuint(r.l.returned, ==, 2 + 1);
    }
    lend_rig_free(&r);
}

/*
 * Through the ring, a backlog of 40 frames: each is read straight into a lent buffer and
 * taken there, and buffers go back only when the backlog runs dry (at most one batch's
 * worth; 4 of 44 here), not a lend and a give-back per frame.
 */
static void test_tap_ring_backlog_lends_once(void)
{
    uint8_t fr[40][NET_VNET_HDR_LEN + 60];
    LendRig r;

    if (lend_rig_new(&r, 200, 0)) {
        for (unsigned f = 0; f < G_N_ELEMENTS(fr); f++) {
            lend_rig_write(&r, fr[f], sizeof(fr[f]), f);
        }
        loop_until(r.m.ctx, &r.l.direct->len, sizeof(fr));
        g_assert_cmpmem(r.l.direct->data, r.l.direct->len, fr, sizeof(fr));
        g_assert_cmpuint(r.l.taken, ==, G_N_ELEMENTS(fr));
        g_assert_cmpuint(r.l.returned, <=, LEND_SLOTS);
    }
    lend_rig_free(&r);
}

#define BIG_LEND (128 * 1024) /* an rx buffer bigger than tap's bounce buffer */

/*
 * A real TAP (root, in a network namespace of its own) at its largest MTU, 65521: an
 * 802.1Q frame that size (65539 bytes; the kernel lets a tag exceed the MTU) and its
 * header are longer than tap's bounce buffer (header + NET_MAX_FRAME).  Into a lent
 * guest buffer bigger than both it is read whole and directly, nothing copied through
 * (or past) the bounce buffer; the small frame after it follows the same way, through
 * the io_uring ring (ring) too.
 */
static void test_tap_long_frame_into_big_buffer(gconstpointer ring)
{
    if (!g_test_subprocess()) {
        if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0) {
            g_test_skip("needs root and /dev/net/tun");
            return;
        }
        if (ring && !ring_available()) {
            g_test_skip("no io_uring here (built without liburing, or the kernel refused "
                        "it)");
            return;
        }
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        return;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        g_test_skip("cannot make a network namespace");
        return;
    }
    /* No IPv6 on the new interface: the kernel would send it DAD/MLD frames of its own. */
    FILE *f = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");
    if (f) {
        fputs("1", f);
        fclose(f);
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    g_assert_cmpint(fd, >=, 0);
    struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
    g_strlcpy(ifr.ifr_name, "senbig0", IFNAMSIZ);
    g_assert_cmpint(ioctl(fd, TUNSETIFF, &ifr), ==, 0);
    int sz = NET_VNET_HDR_LEN;
    g_assert_cmpint(ioctl(fd, TUNSETVNETHDRSZ, &sz), ==, 0);
    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    ifr.ifr_mtu = 65521; /* the TAP's max_mtu: 65535 less the Ethernet header */
    g_assert_cmpint(ioctl(ctl, SIOCSIFMTU, &ifr), ==, 0);
    ifr.ifr_flags = IFF_UP;
    g_assert_cmpint(ioctl(ctl, SIOCSIFFLAGS, &ifr), ==, 0);
    g_assert_cmpint(ioctl(ctl, SIOCGIFINDEX, &ifr), ==, 0);
    close(ctl);

    Machine m = { 0 };
    LendingNic l;
    lender_init(&l, BIG_LEND, 0);
    GPtrArray *queues = g_ptr_array_new();
    g_mutex_init(&m.lock);
    m.ctx = g_main_context_default();
    g_assert_true(net_tap_attach(&m, "t0", fd, true, false, "senbig0", NULL, queues));
    NetClientState *tap = g_ptr_array_index(queues, 0);
    if (ring) {
        net_tap_enable_ring(tap);
        g_assert_true(net_tap_has_ring(tap));
    }
    NetClientState *nic = test_client_new(&lending_info, "nic", &l, tap);

    /* Into the TAP from the host side: the long tagged frame, then a small one. */
    int ps = socket(AF_PACKET, SOCK_RAW, 0);
    g_assert_cmpint(ps, >=, 0);
    struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifr.ifr_ifindex,
                              .sll_halen = 6 };
    size_t big_len = 14 + 4 + 65521, small_len = 60;
    g_assert_cmpuint(NET_VNET_HDR_LEN + big_len, >, NET_VNET_HDR_LEN + NET_MAX_FRAME);
    g_autofree uint8_t *big = g_malloc(big_len);
    uint8_t small[60];
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i * 7 + 3);
    }
    big[12] = 0x81; /* 802.1Q */
    big[13] = 0x00;
    for (size_t i = 0; i < small_len; i++) {
        small[i] = (uint8_t)(i * 5 + 2);
    }
    g_assert_cmpint(sendto(ps, big, big_len, 0, (struct sockaddr *)&to, sizeof(to)), ==,
                    (ssize_t)big_len);
    g_assert_cmpint(sendto(ps, small, small_len, 0, (struct sockaddr *)&to, sizeof(to)), ==,
                    (ssize_t)small_len);
    size_t want = 2 * NET_VNET_HDR_LEN + big_len + small_len;
    for (unsigned i = 0; i < 2000 && l.direct->len < want; i++) {
        g_main_context_iteration(m.ctx, FALSE);
        g_usleep(1000);
    }
    g_assert_cmpuint(l.copied->len, ==, 0);
    g_assert_cmpuint(l.direct->len, ==, want);
    g_assert_cmpmem(l.direct->data + NET_VNET_HDR_LEN, big_len, big, big_len);
    g_assert_cmpmem(l.direct->data + 2 * NET_VNET_HDR_LEN + big_len, small_len, small,
                    small_len);

    close(ps);
    net_client_free(tap);
    net_client_free(nic);
    g_ptr_array_free(queues, TRUE);
    g_assert_cmpstr(l.order->str, ==, "dd");
    lender_free(&l);
    g_mutex_clear(&m.lock);
}

/* A NIC (a sink) on a tap through the ring over a socketpair (fds[1] is the wire), for
 * the tx tests; false, the test skipped, when the host has no io_uring. */
typedef struct TxRig {
    Machine m;
    Sink a;
    GPtrArray *queues;
    int fds[2];
    NetClientState *tap, *nic;
} TxRig;

static bool tx_rig_new(TxRig *r)
{
    *r = (TxRig){ .a = { .accept = true, .got = g_array_new(FALSE, FALSE, 1) },
                  .queues = g_ptr_array_new() };
    if (!fake_tap_new(&r->m, r->queues, r->fds, false, true, &r->tap)) {
        return false;
    }
    r->nic = test_client_new(&sink_info, "nic", &r->a, r->tap);
    return true;
}

static void tx_rig_free(TxRig *r)
{
    if (r->nic) {
        net_client_free(r->nic);
    }
    fake_tap_free(&r->m, r->queues, r->fds, r->tap);
    g_array_free(r->a.got, TRUE);
}

/* The next frame on the wire is 60 bytes starting with byte first. */
static void tx_expect(TxRig *r, uint8_t first)
{
    uint8_t got[128];

    g_assert_cmpint(recv(r->fds[1], got, sizeof(got), MSG_DONTWAIT), ==, 60);
    g_assert_cmpuint(got[0], ==, first);
}

/*
 * tap tx through the ring (a socketpair stands in for the TAP): the frames a NIC sends
 * between net_send_batch_begin and net_send_flush are not written yet (their memory stays
 * the sender's until then) and leave in order at the flush; a batch longer than the ring
 * goes out whole and in order; a frame sent outside a batch is written at once.
 */
static void test_tap_ring_tx_batch(void)
{
    TxRig r;
    static uint8_t frames[100][60];
    uint8_t got[128];

    if (!tx_rig_new(&r)) {
        goto out;
    }
    NetClientState *nic = r.nic, *tap = r.tap;
    for (unsigned i = 0; i < G_N_ELEMENTS(frames); i++) {
        memset(frames[i], (int)i, sizeof(frames[i]));
    }

    net_send_batch_begin(nic);
    g_assert_true(tap->batched);
    for (unsigned i = 0; i < 3; i++) {
        g_assert_true(net_send_buf(nic, frames[i], sizeof(frames[i])));
    }
    g_assert_cmpint(recv(r.fds[1], got, sizeof(got), MSG_DONTWAIT), ==, -1);
    g_assert_cmpint(errno, ==, EAGAIN);
    net_send_flush(nic);
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpint(recv(r.fds[1], got, sizeof(got), MSG_DONTWAIT), ==, 60);
        g_assert_cmpuint(got[0], ==, i);
        g_assert_cmpuint(got[59], ==, i);
    }
    g_assert_cmpint(recv(r.fds[1], got, sizeof(got), MSG_DONTWAIT), ==, -1);

    for (unsigned i = 3; i < G_N_ELEMENTS(frames); i++) {   /* more than the ring holds */
        g_assert_true(net_send_buf(nic, frames[i], sizeof(frames[i])));
    }
    net_send_batch_end(nic);
    g_assert_false(tap->batched);
    for (unsigned i = 3; i < G_N_ELEMENTS(frames); i++) {
        tx_expect(&r, (uint8_t)i);
    }
    g_assert_cmpint(recv(r.fds[1], got, sizeof(got), MSG_DONTWAIT), ==, -1);

    g_assert_true(net_send_buf(nic, frames[7], sizeof(frames[7])));
    tx_expect(&r, 7);
out:
    tx_rig_free(&r);
}

/*
 * The ring itself over a socketpair whose send buffer fills after a few frames: the
 * frames that fit arrive whole, header first, in order; the rest are dropped and
 * counted (EAGAIN, never waited for); after the reader drained, the next batch goes out.
 */
static void test_tap_ring_tx_full_drops(void)
{
    static const uint8_t hdr[NET_VNET_HDR_LEN] = { 0xaa, 0xbb };
    uint8_t frames[40][200], got[512];
    int fds[2], sndbuf = 4096;
    unsigned read = 0;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), ==, 0);
    g_assert_true(g_unix_set_fd_nonblocking(fds[0], TRUE, NULL));
    g_assert_cmpint(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), ==,
                    0);
    TapRing *r = tap_ring_new(fds[0]);
    if (!r) {
        g_test_skip("no io_uring here (built without liburing, or the kernel refused it)");
        goto out;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(frames); i++) {
        struct iovec iov[2] = { { frames[i], 100 }, { frames[i] + 100, 100 } };
        memset(frames[i], (int)i, sizeof(frames[i]));
        g_assert_true(tap_ring_queue_write(r, iov, 2, hdr, sizeof(hdr)));
    }
    g_assert_cmpuint(tap_ring_queued(r), ==, G_N_ELEMENTS(frames));
    unsigned dropped = tap_ring_flush(r);
    g_assert_cmpuint(tap_ring_queued(r), ==, 0);
    while (recv(fds[1], got, sizeof(got), MSG_DONTWAIT) == sizeof(hdr) + 200) {
        g_assert_cmpmem(got, sizeof(hdr), hdr, sizeof(hdr));
        g_assert_cmpuint(got[sizeof(hdr)], ==, read);
        g_assert_cmpuint(got[sizeof(hdr) + 199], ==, read);
        read++;
    }
    g_assert_cmpuint(read, >, 0);
    g_assert_cmpuint(dropped, >, 0);
    g_assert_cmpuint(read + dropped, ==, G_N_ELEMENTS(frames));

    struct iovec one = { frames[5], 200 };
    g_assert_true(tap_ring_queue_write(r, &one, 1, NULL, 0));
    g_assert_cmpuint(tap_ring_flush(r), ==, 0);
    g_assert_cmpint(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), ==, 200);
    g_assert_cmpuint(got[0], ==, 5);
    g_assert_true(tap_ring_usable(r));
    tap_ring_free(r);
out:
    close(fds[0]);
    close(fds[1]);
}

/*
 * A kernel that takes only part of a batch in one io_uring_enter (it may stop early): the
 * rest must be submitted in the same flush, in order, never left in the SQ to be written
 * by a later flush (after the sender reused the memory) nor counted dropped and sent.
 */
static void test_tap_ring_tx_short_submit(void)
{
    uint8_t frames[5][100], got[256];
    int fds[2];
    unsigned read = 0;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), ==, 0);
    g_assert_true(g_unix_set_fd_nonblocking(fds[0], TRUE, NULL));
    TapRing *r = tap_ring_new(fds[0]);
    if (!r) {
        g_test_skip("no io_uring here (built without liburing, or the kernel refused it)");
        goto out;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(frames); i++) {
        struct iovec iov = { frames[i], sizeof(frames[i]) };
        memset(frames[i], (int)i, sizeof(frames[i]));
        g_assert_true(tap_ring_queue_write(r, &iov, 1, NULL, 0));
    }
    tap_ring_test_short_submit = 2;
    g_assert_cmpuint(tap_ring_flush(r), ==, 0);
    g_assert_cmpuint(tap_ring_test_short_submit, ==, 0);
    while (recv(fds[1], got, sizeof(got), MSG_DONTWAIT) == sizeof(frames[0])) {
        g_assert_cmpuint(got[0], ==, read);
        read++;
    }
    g_assert_cmpuint(read, ==, G_N_ELEMENTS(frames));
    /* The next batch is exactly itself. */
    struct iovec one = { frames[3], sizeof(frames[3]) };
    g_assert_true(tap_ring_queue_write(r, &one, 1, NULL, 0));
    g_assert_cmpuint(tap_ring_flush(r), ==, 0);
    g_assert_cmpint(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), ==, sizeof(frames[3]));
    g_assert_cmpuint(got[0], ==, 3);
    g_assert_cmpint(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), <, 0);
    tap_ring_free(r);
out:
    close(fds[0]);
    close(fds[1]);
}

/*
 * A ring whose kernel took two of four reads and refused the rest: those two are left in
 * its submission queue, naming memory the caller has since given back (a guest's rx
 * buffers).  Nothing may submit them later: the ring takes no more requests (a write
 * queued or a read asked for is refused, so no io_uring_enter flushes the queue), and
 * the frames the two reads would have taken stay in the socket for the caller's
 * readv.
 */
static void test_tap_ring_failed_takes_nothing_more(void)
{
    uint8_t bufs[4][100], frame[60] = { 0 };
    struct iovec v[4], *iov[4];
    int cnt[4] = { 1, 1, 1, 1 }, fds[2];
    ssize_t lens[4];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), ==, 0);
    g_assert_true(g_unix_set_fd_nonblocking(fds[0], TRUE, NULL));
    TapRing *r = tap_ring_new(fds[0]);
    if (!r) {
        g_test_skip("no io_uring here (built without liburing, or the kernel refused it)");
        goto out;
    }
    write_numbered(fds[1], 0, 4);
    for (unsigned i = 0; i < 4; i++) {
        v[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
        iov[i] = &v[i];
    }
    tap_ring_test_short_submit = 2;
    tap_ring_test_submit_fails = true;
    g_assert_cmpuint(tap_ring_read(r, iov, cnt, 4, lens), ==, 2);
    g_assert_cmpint(lens[0], ==, 60);
    g_assert_cmpint(lens[1], ==, 60);
    g_assert_cmpint(lens[2], ==, -EAGAIN);
    g_assert_false(tap_ring_usable(r));
    memset(bufs[2], 0xaa, sizeof(bufs[2]));
    struct iovec one = { frame, sizeof(frame) };
    g_assert_false(tap_ring_queue_write(r, &one, 1, NULL, 0));
    g_assert_cmpuint(tap_ring_flush(r), ==, 0);
    g_assert_cmpuint(tap_ring_read(r, iov, cnt, 1, lens), ==, 0);
    g_assert_cmphex(bufs[2][0], ==, 0xaa);                  /* never read into */
    for (unsigned i = 2; i < 4; i++) {
        g_assert_cmpint(read(fds[0], frame, sizeof(frame)), ==, sizeof(frame));
        g_assert_cmpuint(frame[0], ==, i);
    }
    tap_ring_free(r);
out:
    close(fds[0]);
    close(fds[1]);
}

/*
 * tap tx through the ring when the flush of a full batch fails part-way (the kernel takes
 * two of its 64 writes, refuses the rest): the frame that found the batch full goes out
 * by writev, as does every later one; the 62 refused are counted dropped and never sent
 * later, even once the sender has reused their memory.
 */
static void test_tap_ring_tx_flush_fails(void)
{
    TxRig r;
    static uint8_t frames[TAP_RING_ENTRIES + 2][60];
    uint8_t got[128];

    if (!tx_rig_new(&r)) {
        goto out;
    }
    NetClientState *nic = r.nic, *tap = r.tap;
    for (unsigned i = 0; i < G_N_ELEMENTS(frames); i++) {
        memset(frames[i], (int)i, sizeof(frames[i]));
    }
    net_send_batch_begin(nic);
    for (unsigned i = 0; i < TAP_RING_ENTRIES; i++) {
        g_assert_true(net_send_buf(nic, frames[i], sizeof(frames[i])));
    }
    tap_ring_test_short_submit = 2;
    tap_ring_test_submit_fails = true;
    g_assert_true(net_send_buf(nic, frames[64], sizeof(frames[64])));
    g_assert_false(net_tap_has_ring(tap));
    for (unsigned i = 2; i < TAP_RING_ENTRIES; i++) {
        memset(frames[i], 0xee, sizeof(frames[i])); /* the sender's again */
    }
    g_assert_true(net_send_buf(nic, frames[65], sizeof(frames[65])));
    net_send_batch_end(nic);
    static const uint8_t want[] = { 0, 1, 64, 65 };
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        tx_expect(&r, want[i]);
    }
    g_assert_cmpint(recv(r.fds[1], got, sizeof(got), MSG_DONTWAIT), ==, -1);
out:
    tx_rig_free(&r);
}

/*
 * tap rx through the ring when the NIC fills up in the middle of a batch: the frames
 * read past its last buffer wait in the NIC's queue (in order, none dropped), the rest
 * stay in the kernel; once the NIC has buffers again every frame arrives, in order.
 */
static void test_tap_ring_rx_nic_fills_up(void)
{
    Machine m = { 0 };
    Sink b = { .accept = true, .budget = 2, .got = g_array_new(FALSE, FALSE, 1) };
    GPtrArray *queues = g_ptr_array_new();
    int fds[2];

    NetClientState *tap;
    if (!fake_tap_new(&m, queues, fds, false, true, &tap)) {
        goto out;
    }
    NetClientState *nic = test_client_new(&sink_info, "nic", &b, tap);

    write_numbered(fds[1], 0, 8);
    loop_until(m.ctx, &nic->incoming.length, 1);
    loop_drain(m.ctx);
    g_assert_cmpuint(b.got->len, ==, 2);
    g_assert_cmpuint(nic->incoming.length, >, 0);  /* read in the same batch: queued */
    g_assert_cmpuint(b.got->len + nic->incoming.length, <, 8); /* the rest: in the kernel */
    g_assert_cmpuint(nic->rx_dropped, ==, 0);

    b.accept = true;
    net_client_flush(nic);
    loop_until(m.ctx, &b.got->len, 8);
    assert_numbered(&b, 8);
    net_client_free(nic);
out:
    fake_tap_free(&m, queues, fds, tap);
    g_array_free(b.got, TRUE);
}

/*
 * -netdev user and the main loop: a frame handed to slirp while the loop waits on the
 * poll set slirp's prepare gave it wakes the loop, so the socket the frame opened is
 * polled now, not after slirp's timeout (up to a second).  The frame is a UDP datagram
 * to the gateway, which slirp sends to a host socket on 127.0.0.1 that echoes it at once;
 * the test measures how long the echo takes to reach the guest side.  The frame comes
 * from another thread (a vCPU exit, where there is no ioeventfd) while the loop sleeps,
 * or from a source the loop's own thread prepares after slirp's.
 */
typedef struct UserEcho {
    SlirpRig r;
    int echo_fd;
    uint8_t frame[SLIRP_TEST_DATA + 4];
} UserEcho;

static void user_echo_setup(UserEcho *u)
{
    uint16_t port;

    /* The host side, where slirp sends what goes to 10.0.2.2. */
    u->echo_fd = slirp_test_host_socket(&port);
    slirp_test_udp_frame(u->frame, 5555, port, 64, "ping", 4);
    slirp_rig_setup(&u->r, NULL);
}

/* Hands the UDP frame to slirp (VM lock held, as the NIC does), then echoes it. */
static void user_echo_send(UserEcho *u)
{
    char buf[64];
    struct sockaddr_in from;
    socklen_t fromlen = sizeof(from);

    slirp_rig_send(&u->r, u->frame, sizeof(u->frame));
    ssize_t n = recvfrom(u->echo_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                         &fromlen);
    g_assert_cmpint(n, >, 0);
    g_assert_cmpint(sendto(u->echo_fd, buf, n, 0, (struct sockaddr *)&from, fromlen), ==, n);
}

/* Runs the loop until the echo reaches the guest side; how long that took (us). */
static gint64 user_echo_wait(UserEcho *u)
{
    gint64 start = g_get_monotonic_time();

    while (u->r.udp == 0 && g_get_monotonic_time() - start < 3 * G_USEC_PER_SEC) {
        g_main_context_iteration(u->r.m.ctx, TRUE);
    }
    g_assert_cmpuint(u->r.udp, ==, 1);
    return g_get_monotonic_time() - start;
}

static void user_echo_teardown(UserEcho *u)
{
    close(u->echo_fd);
    slirp_rig_teardown(&u->r);
}

static gpointer user_echo_send_later(gpointer opaque)
{
    g_usleep(100 * 1000); /* the loop is asleep in its poll by now */
    user_echo_send(opaque);
    return NULL;
}

static void test_user_frame_from_other_thread_wakes_loop(void)
{
    UserEcho u = { 0 };

    user_echo_setup(&u);
    GThread *th = g_thread_new("vcpu", user_echo_send_later, &u);
    gint64 took = user_echo_wait(&u);
    g_thread_join(th);
    g_assert_cmpint(took, <, 600 * 1000); /* 100 ms of it the thread's sleep */
    user_echo_teardown(&u);
}

typedef struct LateSender {
    GSource base;
    UserEcho *u;
    bool sent;
} LateSender;

static gboolean late_sender_prepare(GSource *src, gint *timeout)
{
    LateSender *l = (LateSender *)src;

    *timeout = -1;
    if (!l->sent) {
        l->sent = true;
        user_echo_send(l->u);
    }
    return FALSE;
}

static gboolean late_sender_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs late_sender_funcs = {
    .prepare = late_sender_prepare,
    .dispatch = late_sender_dispatch,
};

static void test_user_frame_after_prepare_wakes_loop(void)
{
    UserEcho u = { 0 };

    user_echo_setup(&u);
    /* Attached after slirp's source at the same priority: prepared after it. */
    GSource *late = g_source_new(&late_sender_funcs, sizeof(LateSender));
    ((LateSender *)late)->u = &u;
    g_source_attach(late, u.r.m.ctx);
    g_assert_cmpint(user_echo_wait(&u), <, 600 * 1000); /* not slirp's 1 s timeout */
    g_source_destroy(late);
    g_source_unref(late);
    user_echo_teardown(&u);
}

static void test_parse_mac(void)
{
    uint8_t mac[6];

    g_assert_true(net_parse_mac("52:54:00:ab:CD:ef", mac));
    g_assert_cmpuint(mac[4], ==, 0xcd);
    g_assert_false(net_parse_mac("52:54:00:ab:cd", mac));
    g_assert_false(net_parse_mac("52:54:00:ab:cd:ef:", mac));
    g_assert_false(net_parse_mac("52-54-00-ab-cd-ef", mac));
    g_assert_false(net_parse_mac("5:254:00:ab:cd:ef", mac));
    g_assert_false(net_parse_mac("52:54:00:ab:cd:eg", mac));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/net/queue-bounded-and-ordered", test_queue_bounded_and_ordered);
    g_test_add_func("/net/queue-bytes-and-room", test_queue_bytes_and_room);
    g_test_add_func("/net/burst", test_burst);
    for (int ring = 0; ring < 2; ring++) {
        const char *how = ring ? "ring" : "syscalls";
        g_autofree char *a = g_strdup_printf("/net/tap-reads-on-peer-ready/%s", how);
        g_autofree char *b = g_strdup_printf("/net/tap-reads-into-lent-buffer/%s", how);
        g_autofree char *c = g_strdup_printf("/net/tap-long-frame-into-big-buffer/%s", how);
        g_test_add_data_func(a, GINT_TO_POINTER(ring), test_tap_reads_on_peer_ready);
        g_test_add_data_func(b, GINT_TO_POINTER(ring), test_tap_reads_into_lent_buffer);
        g_test_add_data_func(c, GINT_TO_POINTER(ring), test_tap_long_frame_into_big_buffer);
    }
    g_test_add_func("/net/tap-ring/tx-batch", test_tap_ring_tx_batch);
    g_test_add_func("/net/tap-ring/tx-short-submit", test_tap_ring_tx_short_submit);
    g_test_add_func("/net/tap-ring/tx-full-drops", test_tap_ring_tx_full_drops);
    g_test_add_func("/net/tap-ring/rx-nic-fills-up", test_tap_ring_rx_nic_fills_up);
    g_test_add_func("/net/tap-ring/rx-refused-in-batch", test_tap_ring_refused_in_batch);
    g_test_add_func("/net/tap-ring/rx-hole-in-batch", test_tap_ring_hole_in_batch);
    g_test_add_func("/net/tap-ring/rx-fails-mid-batch", test_tap_ring_rx_fails_mid_batch);
    g_test_add_func("/net/tap-ring/rx-backlog-lends-once", test_tap_ring_backlog_lends_once);
    g_test_add_func("/net/tap-ring/tx-flush-fails", test_tap_ring_tx_flush_fails);
    g_test_add_func("/net/tap-ring/failed-takes-nothing-more",
                    test_tap_ring_failed_takes_nothing_more);
    g_test_add_func("/net/user-frame-from-other-thread-wakes-loop",
                    test_user_frame_from_other_thread_wakes_loop);
    g_test_add_func("/net/user-frame-after-prepare-wakes-loop",
                    test_user_frame_after_prepare_wakes_loop);
    g_test_add_func("/net/parse-mac", test_parse_mac);
    return g_test_run();
}
