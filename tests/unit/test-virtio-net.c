/*
 * virtio-net-pci (hw/virtio/virtio-net.c) over a hand-built Machine: the driver side is
 * this test writing rings in guest RAM, the backend side a net client of the test's own
 * linked to the NIC.  Rx header and length, a frame too big for the buffers (dropped,
 * nothing written past them), mergeable rx buffers, tx without the header for a backend
 * without vnet_hdr, and the control queue: rx mode, MAC table, its malformed forms, and
 * commands the device did not offer.  Migration: the device's state through
 * vmstate_save_all / vmstate_load_all into a second machine (rx filter, MAC, VLANs, rings
 * continue), the announce after loading (RARP rounds, GUEST_ANNOUNCE and its ack),
 * corrupt sections refused without touching the device, and no guest memory written
 * while the VM is stopped.  Direct rx: a backend reading into the guest's buffers.
 */
#include <string.h>
#include <glib.h>
#include "sen/net.h"
#include "sen/runstate.h"
#include "sen/timer.h"
#include "sen/vmstate.h"
#include "virtio-test-util.h"

#define F_MAC           (1ull << 5)
#define F_MRG_RXBUF     (1ull << 15)
#define F_STATUS        (1ull << 16)
#define F_CTRL_VQ       (1ull << 17)
#define F_CTRL_RX       (1ull << 18)
#define F_CTRL_VLAN     (1ull << 19)
#define F_CTRL_RX_EXTRA (1ull << 20)
#define F_GUEST_ANNOUNCE (1ull << 21)
#define F_CTRL_MAC_ADDR (1ull << 23)
#define F_VERSION_1     (1ull << 32)

#define HDR_LEN  12
#define QS       16                            /* entries of every queue we set up */
#define RING(q)  (0x10000ull + (q) * 0x4000)   /* desc; avail at +0x1000, used at +0x2000 */
#define BUF(i)   (0x40000ull + (i) * 0x1000)   /* buffer i, one page each */
#define RXQ 0
#define TXQ 1
#define CTRLQ 2

static const uint8_t nic_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

typedef struct Fixture {
    VirtioTestMachine vt;
    NetClientState *nic, *peer;   /* peer: the backend this test plays */
    GPtrArray *sent;              /* of GByteArray*: frames the NIC sent to the backend */
    uint16_t avail[3];
    uint16_t next_desc[3];
    const uint8_t *mac;           /* the NIC's MAC as the driver set it */
    bool user;                    /* the peer is a -netdev user (libslirp), not ours */
} Fixture;

static ssize_t peer_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    Fixture *f = nc->opaque;
    GByteArray *b = g_byte_array_new();

    for (int i = 0; i < iovcnt; i++) {
        g_byte_array_append(b, iov[i].iov_base, iov[i].iov_len);
    }
    g_ptr_array_add(f->sent, b);
    return (ssize_t)b->len;
}

static const NetClientInfo peer_info = { .type = "test", .receive = peer_receive };

/* Machine, NIC and the test's backend; the VM counts as running. */
/* user: the NIC's backend is a -netdev user,restrict=on instead of the test's client. */
static void fixture_setup_on(Fixture *f, bool user)
{
    Error *err = NULL;
    char *argv[] = { "sen", NULL };

    memset(f, 0, sizeof(*f));
    vt_init(&f->vt, 1, argv);
    f->vt.m.clock = virt_clock_new(true);
    f->vt.m.runstate = RUN_STATE_RUNNING;
    f->vt.dev = (PCIDevice *)vt_add_device(&f->vt, "virtio-net-pci", NULL, &err);
    vt_check_no_error(err);
    g_assert_nonnull(f->vt.dev);
    GPtrArray *nics = net_nics(&f->vt.m);
    g_assert_cmpuint(nics->len, ==, 1);
    f->nic = g_ptr_array_index(nics, 0);
    f->user = user;
    if (user) {
        g_autoptr(Keyval) kv = keyval_parse("type=user,id=u0,restrict=on", NULL, &err);
        vt_check_no_error(err);
        g_assert_true(net_netdev_add(&f->vt.m, kv, "test user netdev", &err));
        vt_check_no_error(err);
        f->peer = g_ptr_array_index(net_netdev_find(&f->vt.m, "u0"), 0);
    } else {
        f->peer = net_client_new(&f->vt.m, &peer_info, "test", "peer", 0);
        f->peer->opaque = f;
    }
    net_link(f->nic, f->peer);
    f->sent = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    f->mac = nic_mac;
}

static void fixture_setup(Fixture *f)
{
    fixture_setup_on(f, false);
}

static void fixture_driver(Fixture *f, uint64_t want)
{
    /* The driver: reset, features, three queues (rx, tx, control), DRIVER_OK. */
    vt_map_bar4(&f->vt);
    vt_wr(&f->vt, CC_STATUS, 1, 0);
    vt_wr(&f->vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vt_wr(&f->vt, CC_DFSELECT, 4, 0);
    uint64_t offered = vt_rd(&f->vt, CC_DF, 4);
    vt_wr(&f->vt, CC_DFSELECT, 4, 1);
    offered |= vt_rd(&f->vt, CC_DF, 4) << 32;
    uint64_t features = offered & (want | F_VERSION_1);
    g_assert_cmphex(features, ==, want | F_VERSION_1); /* all offered */
    vt_wr(&f->vt, CC_GFSELECT, 4, 0);
    vt_wr(&f->vt, CC_GF, 4, (uint32_t)features);
    vt_wr(&f->vt, CC_GFSELECT, 4, 1);
    vt_wr(&f->vt, CC_GF, 4, features >> 32);
    vt_wr(&f->vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmpuint(vt_rd(&f->vt, CC_NUM_QUEUES, 2), ==, 3);
    for (unsigned q = 0; q < 3; q++) {
        vt_wr(&f->vt, CC_Q_SELECT, 2, q);
        vt_wr(&f->vt, CC_Q_SIZE, 2, QS);
        vt_wr(&f->vt, CC_Q_DESC, 8, RING(q));
        vt_wr(&f->vt, CC_Q_AVAIL, 8, RING(q) + 0x1000);
        vt_wr(&f->vt, CC_Q_USED, 8, RING(q) + 0x2000);
        memset(f->vt.ram + RING(q), 0, 0x3000);
        vt_wr(&f->vt, CC_Q_ENABLE, 2, 1);
    }
    vt_wr(&f->vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    g_assert_false(vt_rd(&f->vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void fixture_init(Fixture *f, uint64_t want)
{
    fixture_setup(f);
    fixture_driver(f, want);
}

static void fixture_done(Fixture *f)
{
    g_ptr_array_free(f->sent, TRUE);
    vt_done(&f->vt);            /* the NIC goes first: the peer loses its link */
    if (!f->user) {
        net_client_free(f->peer); /* a netdev's queue goes with net_cleanup */
    }
    net_cleanup(&f->vt.m);
    virt_clock_free(f->vt.m.clock);
}

typedef struct {
    uint64_t addr;
    uint32_t len;
    bool write;
} Buf;

/* Makes a chain of n buffers available on queue q and notifies it. */
static void post(Fixture *f, unsigned q, const Buf *bufs, unsigned n)
{
    uint8_t *ram = f->vt.ram;
    uint16_t head = f->next_desc[q];

    for (unsigned k = 0; k < n; k++) {
        unsigned i = (head + k) % QS;
        VirtqDesc d = { .addr = bufs[k].addr, .len = bufs[k].len,
                        .flags = (bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
                                 (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0),
                        .next = (uint16_t)((i + 1) % QS) };
        memcpy(ram + RING(q) + 16 * i, &d, sizeof(d));
    }
    f->next_desc[q] = (head + n) % QS;
    uint16_t *avail = (uint16_t *)(ram + RING(q) + 0x1000);
    avail[2 + f->avail[q] % QS] = head;
    __atomic_store_n(&avail[1], ++f->avail[q], __ATOMIC_RELEASE);
    vt_wr(&f->vt, 0x3000 + 4 * q, 2, q); /* notify (NOTIFY_MULT 4) */
}

static uint16_t used_idx(Fixture *f, unsigned q)
{
    return __atomic_load_n((uint16_t *)(f->vt.ram + RING(q) + 0x2002), __ATOMIC_ACQUIRE);
}

static void used_elem(Fixture *f, unsigned q, unsigned n, uint32_t *id, uint32_t *len)
{
    const uint8_t *e = f->vt.ram + RING(q) + 0x2004 + 8 * (n % QS);
    memcpy(id, e, 4);
    memcpy(len, e + 4, 4);
}

/* A frame of len bytes to dst, its payload bytes counting up from seed. */
static GByteArray *frame(const uint8_t dst[6], unsigned len, uint8_t seed)
{
    GByteArray *b = g_byte_array_sized_new(len);
    g_byte_array_set_size(b, len);
    memcpy(b->data, dst, 6);
    memcpy(b->data + 6, "\x02\x00\x00\x00\x00\x99", 6);
    b->data[12] = 0x88;
    b->data[13] = 0xb5;
    for (unsigned i = 14; i < len; i++) {
        b->data[i] = (uint8_t)(seed + i);
    }
    return b;
}

static void send_to_nic(Fixture *f, const uint8_t dst[6], unsigned len, uint8_t seed)
{
    g_autoptr(GByteArray) b = frame(dst, len, seed);
    net_send_buf(f->peer, b->data, b->len);
}

static void test_rx_tx(void)
{
    Fixture f;
    uint32_t id, len;

    fixture_init(&f, F_MAC | F_STATUS);
    Buf rx = { BUF(0), 2048, true };
    post(&f, RXQ, &rx, 1);
    send_to_nic(&f, nic_mac, 100, 7);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    used_elem(&f, RXQ, 0, &id, &len);
    g_assert_cmpuint(len, ==, HDR_LEN + 100);
    uint16_t num_buffers;
    memcpy(&num_buffers, f.vt.ram + BUF(0) + 10, 2);
    g_assert_cmpuint(num_buffers, ==, 1);
    g_autoptr(GByteArray) want = frame(nic_mac, 100, 7);
    g_assert_cmpmem(f.vt.ram + BUF(0) + HDR_LEN, 100, want->data, 100);

    /* tx: header and frame in separate buffers; the backend gets the frame alone. */
    memset(f.vt.ram + BUF(1), 0, HDR_LEN);
    g_autoptr(GByteArray) out = frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 300, 3);
    memcpy(f.vt.ram + BUF(2), out->data, out->len);
    Buf tx[2] = { { BUF(1), HDR_LEN, false }, { BUF(2), 300, false } };
    post(&f, TXQ, tx, 2);
    g_assert_cmpuint(used_idx(&f, TXQ), ==, 1);
    g_assert_cmpuint(f.sent->len, ==, 1);
    GByteArray *got = g_ptr_array_index(f.sent, 0);
    g_assert_cmpmem(got->data, got->len, out->data, out->len);
    fixture_done(&f);
}

/* tx: a frame in more pieces than the NIC's per-frame storage holds (an indirect table of
 * 21) is allocated by the pop and still goes out whole, beside a two-piece frame in the
 * same kick. */
static void test_tx_long_chain(void)
{
    Fixture f;
    enum { PIECES = VIRTQUEUE_SMALL_SEGS + 4, PIECE = 16 };
    const uint64_t table = BUF(8), data = BUF(9);

    fixture_init(&f, F_MAC | (1ull << VIRTIO_F_INDIRECT_DESC));
    g_autoptr(GByteArray) out = frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff",
                                      (PIECES - 1) * PIECE, 5);
    memset(f.vt.ram + data, 0, HDR_LEN);
    for (unsigned k = 0; k < PIECES; k++) {
        /* every piece 32 bytes from the last: no two merge into one */
        uint64_t addr = data + 32 * k;
        uint32_t len = k ? PIECE : HDR_LEN;
        if (k) {
            memcpy(f.vt.ram + addr, out->data + (k - 1) * PIECE, PIECE);
        }
        VirtqDesc d = { .addr = addr, .len = len,
                        .flags = k + 1 < PIECES ? VIRTQ_DESC_F_NEXT : 0,
                        .next = (uint16_t)(k + 1) };
        memcpy(f.vt.ram + table + 16 * k, &d, sizeof(d));
    }
    /* The indirect descriptor, then a short frame behind it, in one kick. */
    uint8_t *ram = f.vt.ram;
    VirtqDesc ind = { .addr = table, .len = 16 * PIECES, .flags = VIRTQ_DESC_F_INDIRECT };
    memcpy(ram + RING(TXQ), &ind, sizeof(ind));
    memset(ram + BUF(1), 0, HDR_LEN);
    g_autoptr(GByteArray) small = frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 60, 9);
    memcpy(ram + BUF(1) + HDR_LEN, small->data, small->len);
    VirtqDesc one = { .addr = BUF(1), .len = HDR_LEN + 60 };
    memcpy(ram + RING(TXQ) + 16, &one, sizeof(one));
    uint16_t *avail = (uint16_t *)(ram + RING(TXQ) + 0x1000);
    avail[2] = 0;
    avail[3] = 1;
    __atomic_store_n(&avail[1], 2, __ATOMIC_RELEASE);
    vt_wr(&f.vt, 0x3000 + 4 * TXQ, 2, TXQ);

    g_assert_false(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    g_assert_cmpuint(used_idx(&f, TXQ), ==, 2);
    g_assert_cmpuint(f.sent->len, ==, 2);
    GByteArray *got = g_ptr_array_index(f.sent, 0);
    g_assert_cmpmem(got->data, got->len, out->data, out->len);
    got = g_ptr_array_index(f.sent, 1);
    g_assert_cmpmem(got->data, got->len, small->data, small->len);
    fixture_done(&f);
}

static void test_rx_too_big(void)
{
    Fixture f;
    uint32_t id, len;

    fixture_init(&f, F_MAC);
    /* 60 bytes of buffer, a canary right behind it. */
    memset(f.vt.ram + BUF(0), 0xcc, 128);
    Buf rx = { BUF(0), 60, true };
    post(&f, RXQ, &rx, 1);
    send_to_nic(&f, nic_mac, 100, 1);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);
    for (unsigned i = 0; i < 128; i++) {
        g_assert_cmphex(f.vt.ram[BUF(0) + i], ==, 0xcc);
    }
    /* The buffer stays posted for a frame that fits. */
    send_to_nic(&f, nic_mac, 40, 1);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    used_elem(&f, RXQ, 0, &id, &len);
    g_assert_cmpuint(len, ==, HDR_LEN + 40);
    for (unsigned i = HDR_LEN + 40; i < 128; i++) {
        g_assert_cmphex(f.vt.ram[BUF(0) + i], ==, 0xcc);
    }
    fixture_done(&f);
}

static void test_mrg_rxbuf(void)
{
    Fixture f;
    uint32_t id, len;

    fixture_init(&f, F_MAC | F_MRG_RXBUF);
    for (unsigned i = 0; i < 3; i++) {
        Buf rx = { BUF(i), 512, true };
        post(&f, RXQ, &rx, 1);
    }
    send_to_nic(&f, nic_mac, 1200, 9);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 3);
    uint16_t num_buffers;
    memcpy(&num_buffers, f.vt.ram + BUF(0) + 10, 2);
    g_assert_cmpuint(num_buffers, ==, 3);
    g_autoptr(GByteArray) got = g_byte_array_new();
    for (unsigned i = 0; i < 3; i++) {
        used_elem(&f, RXQ, i, &id, &len);
        g_assert_cmpuint(id, ==, i);
        g_assert_cmpuint(len, ==, i < 2 ? 512 : HDR_LEN + 1200 - 1024);
        unsigned skip = i == 0 ? HDR_LEN : 0;
        g_byte_array_append(got, f.vt.ram + BUF(i) + skip, len - skip);
    }
    g_autoptr(GByteArray) want = frame(nic_mac, 1200, 9);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);
    fixture_done(&f);
}

/* With MRG_RXBUF and too few buffers for a frame, the frame waits (nothing is used, the
 * buffers taken go back) and the device asks for a kick; the next buffer's kick brings
 * it, spread over all three. */
static void test_mrg_rxbuf_waits_for_buffers(void)
{
    Fixture f;

    fixture_init(&f, F_MAC | F_MRG_RXBUF);
    for (unsigned i = 0; i < 2; i++) {
        Buf rx = { BUF(i), 512, true };
        post(&f, RXQ, &rx, 1);
    }
    send_to_nic(&f, nic_mac, 1200, 9);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);
    Buf rx = { BUF(2), 512, true };
    post(&f, RXQ, &rx, 1);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 3);
    uint16_t num_buffers;
    memcpy(&num_buffers, f.vt.ram + BUF(0) + 10, 2);
    g_assert_cmpuint(num_buffers, ==, 3);
    fixture_done(&f);
}

/* Frames a backend delivers in a burst reach the driver together when it ends: the
 * used index does not move and no interrupt comes before, then all are there in order
 * with one interrupt; a frame outside a burst is published at once as before. */
static void test_rx_burst(void)
{
    Fixture f;
    uint32_t id, len;

    fixture_init(&f, F_MAC);
    (void)vt_rd(&f.vt, 0x1000, 1);                      /* clear the ISR */
    for (unsigned i = 0; i < 4; i++) {
        Buf rx = { BUF(i), 2048, true };
        post(&f, RXQ, &rx, 1);
    }
    net_burst_begin(f.peer);
    for (unsigned i = 0; i < 3; i++) {
        send_to_nic(&f, nic_mac, 100 + i, (uint8_t)i);
    }
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);
    g_assert_cmphex(vt_rd(&f.vt, 0x1000, 1) & 1, ==, 0);
    net_burst_end(f.peer);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 3);
    g_assert_cmphex(vt_rd(&f.vt, 0x1000, 1) & 1, ==, 1);
    for (unsigned i = 0; i < 3; i++) {
        used_elem(&f, RXQ, i, &id, &len);
        g_assert_cmpuint(id, ==, i);
        g_assert_cmpuint(len, ==, HDR_LEN + 100 + i);
        g_autoptr(GByteArray) want = frame(nic_mac, 100 + i, (uint8_t)i);
        g_assert_cmpmem(f.vt.ram + BUF(i) + HDR_LEN, 100 + i, want->data, 100 + i);
    }
    send_to_nic(&f, nic_mac, 60, 9);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 4);
    fixture_done(&f);
}

/* A bad tx request after good ones in the same kick: the good ones are completed and
 * the driver is interrupted for them, then the device needs a reset. */
static void test_tx_bad_mid_batch(void)
{
    Fixture f;

    fixture_init(&f, F_MAC | F_STATUS);
    (void)vt_rd(&f.vt, 0x1000, 1);                      /* clear the ISR */
    memset(f.vt.ram + BUF(1), 0, HDR_LEN);
    g_autoptr(GByteArray) out = frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 60, 3);
    memcpy(f.vt.ram + BUF(2), out->data, out->len);
    uint8_t *ram = f.vt.ram;
    uint16_t *avail = (uint16_t *)(ram + RING(TXQ) + 0x1000);
    /* Two good chains (descriptors 0-1 and 2-3), then one with a writable buffer (4-5),
     * made available together with one notify. */
    for (unsigned c = 0; c < 3; c++) {
        VirtqDesc h = { .addr = BUF(1), .len = HDR_LEN, .flags = VIRTQ_DESC_F_NEXT,
                        .next = (uint16_t)(2 * c + 1) };
        VirtqDesc d = { .addr = BUF(2), .len = 60, .flags = c == 2 ? VIRTQ_DESC_F_WRITE : 0 };
        memcpy(ram + RING(TXQ) + 16 * (2 * c), &h, sizeof(h));
        memcpy(ram + RING(TXQ) + 16 * (2 * c + 1), &d, sizeof(d));
        avail[2 + c] = (uint16_t)(2 * c);
    }
    __atomic_store_n(&avail[1], 3, __ATOMIC_RELEASE);
    vt_wr(&f.vt, 0x3000 + 4 * TXQ, 2, TXQ);
    g_assert_cmpuint(f.sent->len, ==, 2);
    g_assert_cmpuint(used_idx(&f, TXQ), ==, 2);
    uint8_t isr = (uint8_t)vt_rd(&f.vt, 0x1000, 1);
    g_assert_cmphex(isr & 1, ==, 1);                     /* the queue interrupt came */
    g_assert_true(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    fixture_done(&f);
}

/*
 * tx to a backend that keeps the frames to write as a batch (tap's io_uring ring): the
 * NIC brackets its burst (the backend sees batched), and the driver gets a buffer back
 * in the used ring only after the flush that says the backend is done with it.  The
 * backend here keeps only pointers into guest memory and reads them at the flush.
 */
typedef struct BatchPeer {
    Fixture *f;
    struct iovec held[8];
    unsigned nheld, flushes;
} BatchPeer;

static ssize_t batch_peer_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    BatchPeer *p = nc->opaque;

    g_assert_true(nc->batched);
    g_assert_cmpint(iovcnt, ==, 1);
    g_assert_cmpuint(p->nheld, <, G_N_ELEMENTS(p->held));
    p->held[p->nheld++] = iov[0];
    return (ssize_t)iov[0].iov_len;
}

static void batch_peer_flush(NetClientState *nc)
{
    BatchPeer *p = nc->opaque;

    /* None of the held frames' buffers is the driver's yet. */
    g_assert_cmpuint(used_idx(p->f, TXQ), ==, p->f->sent->len);
    for (unsigned i = 0; i < p->nheld; i++) {
        GByteArray *b = g_byte_array_new();
        g_byte_array_append(b, p->held[i].iov_base, p->held[i].iov_len);
        g_ptr_array_add(p->f->sent, b);
    }
    p->nheld = 0;
    p->flushes++;
}

static const NetClientInfo batch_peer_info = {
    .type = "test-batch", .receive = batch_peer_receive, .flush = batch_peer_flush,
};

static void test_tx_batch_flushed_before_used(void)
{
    Fixture f;
    BatchPeer p = { .f = &f };

    fixture_init(&f, F_MAC | F_STATUS);
    f.peer->info = &batch_peer_info;
    f.peer->opaque = &p;
    uint8_t *ram = f.vt.ram;
    uint16_t *avail = (uint16_t *)(ram + RING(TXQ) + 0x1000);
    /* Three chains (header and frame each, frame c in BUF(2 + c)), one notify. */
    for (unsigned c = 0; c < 3; c++) {
        g_autoptr(GByteArray) out = frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 80,
                                          (uint8_t)(c * 40));
        memset(ram + BUF(1), 0, HDR_LEN);
        memcpy(ram + BUF(2 + c), out->data, out->len);
        VirtqDesc h = { .addr = BUF(1), .len = HDR_LEN, .flags = VIRTQ_DESC_F_NEXT,
                        .next = (uint16_t)(2 * c + 1) };
        VirtqDesc d = { .addr = BUF(2 + c), .len = 80 };
        memcpy(ram + RING(TXQ) + 16 * (2 * c), &h, sizeof(h));
        memcpy(ram + RING(TXQ) + 16 * (2 * c + 1), &d, sizeof(d));
        avail[2 + c] = (uint16_t)(2 * c);
    }
    __atomic_store_n(&avail[1], 3, __ATOMIC_RELEASE);
    vt_wr(&f.vt, 0x3000 + 4 * TXQ, 2, TXQ);
    g_assert_cmpuint(p.flushes, >=, 1);
    g_assert_cmpuint(p.nheld, ==, 0);
    g_assert_false(f.peer->batched);
    g_assert_cmpuint(used_idx(&f, TXQ), ==, 3);
    g_assert_cmpuint(f.sent->len, ==, 3);
    for (unsigned c = 0; c < 3; c++) {
        g_autoptr(GByteArray) want = frame((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 80,
                                           (uint8_t)(c * 40));
        GByteArray *got = g_ptr_array_index(f.sent, c);
        g_assert_cmpmem(got->data, got->len, want->data, want->len);
    }
    fixture_done(&f);
}

/* One control command (no data buffer when len is 0); returns the ack byte the device
 * wrote (0xee: none). */
static uint8_t ctrl(Fixture *f, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
    uint16_t before = used_idx(f, CTRLQ);
    uint8_t *ram = f->vt.ram;

    ram[BUF(10)] = cls;
    ram[BUF(10) + 1] = cmd;
    if (len) {
        memcpy(ram + BUF(11), data, len);
    }
    ram[BUF(12)] = 0xee;
    Buf b[3] = { { BUF(10), 2, false }, { BUF(11), (uint32_t)len, false },
                 { BUF(12), 1, true } };
    if (!len) {
        b[1] = b[2];
    }
    post(f, CTRLQ, b, len ? 3 : 2);
    g_assert_cmpuint(used_idx(f, CTRLQ), ==, (uint16_t)(before + 1));
    return ram[BUF(12)];
}

static bool delivered(Fixture *f, const uint8_t dst[6])
{
    uint16_t before = used_idx(f, RXQ);
    Buf rx = { BUF(0), 2048, true };

    post(f, RXQ, &rx, 1);
    send_to_nic(f, dst, 64, 0);
    if (used_idx(f, RXQ) != before) {
        return true;
    }
    /* Filtered: take the buffer back with a frame that passes (the NIC's own MAC). */
    send_to_nic(f, f->mac, 64, 0);
    g_assert_cmpuint(used_idx(f, RXQ), ==, (uint16_t)(before + 1));
    return false;
}

static void test_ctrl_rx_filter(void)
{
    static const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 0x01 };
    static const uint8_t other2[6] = { 0x02, 0, 0, 0, 0, 0x02 };
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0, 0, 0x01 };
    Fixture f;
    uint8_t on = 1, off = 0;

    fixture_init(&f, F_MAC | F_CTRL_VQ | F_CTRL_RX | F_CTRL_RX_EXTRA);
    /* Reset state is promiscuous (QEMU's). */
    g_assert_true(delivered(&f, other));
    g_assert_cmpuint(ctrl(&f, 0, 0, &off, 1), ==, 0); /* PROMISC off */
    g_assert_false(delivered(&f, other));
    g_assert_true(delivered(&f, nic_mac));
    g_assert_true(delivered(&f, bcast));
    g_assert_false(delivered(&f, mcast));

    /* MAC_TABLE_SET: unicast [other], multicast [mcast]. */
    uint8_t table[4 + 6 + 4 + 6];
    uint32_t one = 1;
    memcpy(table, &one, 4);
    memcpy(table + 4, other, 6);
    memcpy(table + 10, &one, 4);
    memcpy(table + 14, mcast, 6);
    g_assert_cmpuint(ctrl(&f, 1, 0, table, sizeof(table)), ==, 0);
    g_assert_true(delivered(&f, other));
    g_assert_false(delivered(&f, other2));
    g_assert_true(delivered(&f, mcast));

    /* A table claiming more entries than it carries: refused, the old one stays. */
    uint32_t many = 1000;
    memcpy(table, &many, 4);
    g_assert_cmpuint(ctrl(&f, 1, 0, table, sizeof(table)), ==, 1);
    g_assert_true(delivered(&f, other));

    NetRxFilter rf = { 0 };
    f.nic->rx_filter_query(f.nic, &rf);
    g_assert_false(rf.promisc);
    g_assert_cmpuint(rf.n_uni, ==, 1);
    g_assert_cmpmem(rf.uni[0], 6, other, 6);
    g_assert_cmpuint(rf.n_multi, ==, 1);
    g_array_unref(rf.vlans);

    g_assert_cmpuint(ctrl(&f, 0, 5, &on, 1), ==, 0); /* NOBCAST (RX_EXTRA) */
    g_assert_false(delivered(&f, bcast));
    g_assert_cmpuint(ctrl(&f, 0, 1, &on, 1), ==, 0); /* ALLMULTI */
    g_assert_true(delivered(&f, (const uint8_t *)"\x01\x00\x5e\x00\x00\x77"));

    /* Unknown command, a wrong length, and MQ, which was not offered: errors. */
    g_assert_cmpuint(ctrl(&f, 0, 9, &on, 1), ==, 1);
    g_assert_cmpuint(ctrl(&f, 0, 0, table, 2), ==, 1);
    uint16_t pairs = 1;
    g_assert_cmpuint(ctrl(&f, 4, 0, &pairs, 2), ==, 1);
    g_assert_false(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    fixture_done(&f);
}

/* ---- migration ---- */

static const uint8_t other_mac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t other2_mac[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const uint8_t mcast_mac[6] = { 0x01, 0x00, 0x5e, 0, 0, 0x01 };
static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

#define F_MIGRATE (F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX | F_CTRL_RX_EXTRA | F_CTRL_VLAN | \
                   F_CTRL_MAC_ADDR | F_GUEST_ANNOUNCE)

/* Promiscuous off, broadcasts off, tables [other] / [mcast], VLAN 5, MAC new_mac. */
static void drive_filter(Fixture *f)
{
    uint8_t off = 0, on = 1;
    uint8_t table[4 + 6 + 4 + 6] = { 1, 0, 0, 0 };
    uint8_t vid[2] = { 5, 0 };

    memcpy(table + 4, other_mac, 6);
    table[10] = 1;
    memcpy(table + 14, mcast_mac, 6);
    g_assert_cmpuint(ctrl(f, 0, 0, &off, 1), ==, 0);
    g_assert_cmpuint(ctrl(f, 0, 5, &on, 1), ==, 0);
    g_assert_cmpuint(ctrl(f, 1, 0, table, sizeof(table)), ==, 0);
    g_assert_cmpuint(ctrl(f, 2, 0, vid, 2), ==, 0);
    g_assert_cmpuint(ctrl(f, 1, 1, new_mac, 6), ==, 0);
    f->mac = new_mac;
}

static GByteArray *save_machine(Fixture *f)
{
    GByteArray *blob = g_byte_array_new();
    Error *err = NULL;
    if (!vmstate_save_all(&f->vt.m, blob, &err)) {
        g_error("save: %s", error_get_pretty(err));
    }
    return blob;
}

/* B continues A: its RAM, its device state, and the driver's ring counters. */
static void load_machine(Fixture *b, Fixture *a, const GByteArray *blob)
{
    Error *err = NULL;
    memcpy(b->vt.ram, a->vt.ram, VT_RAM_SIZE);
    if (!vmstate_load_all(&b->vt.m, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    memcpy(b->avail, a->avail, sizeof(a->avail));
    memcpy(b->next_desc, a->next_desc, sizeof(a->next_desc));
}

static unsigned rarps_sent(Fixture *f, const uint8_t mac[6])
{
    unsigned n = 0;
    for (guint i = 0; i < f->sent->len; i++) {
        GByteArray *b = g_ptr_array_index(f->sent, i);
        static const uint8_t rarp_head[10] = { 0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3 };
        g_assert_cmpuint(b->len, ==, 60);
        g_assert_cmpmem(b->data, 6, "\xff\xff\xff\xff\xff\xff", 6);
        g_assert_cmpmem(b->data + 6, 6, mac, 6);
        g_assert_cmpmem(b->data + 12, 10, rarp_head, 10);
        g_assert_cmpmem(b->data + 22, 6, mac, 6);
        g_assert_cmpmem(b->data + 32, 6, mac, 6);
        n++;
    }
    return n;
}

static uint16_t cfg_status(Fixture *f)
{
    return (uint16_t)vt_rd(&f->vt, 0x2000 + 6, 2);
}

static void clock_step_ms(Fixture *f, int64_t ms)
{
    virt_clock_step(f->vt.m.clock, ms * 1000 * 1000);
}

static void test_migrate_round_trip(void)
{
    Fixture a, b;

    fixture_init(&a, F_MIGRATE);
    drive_filter(&a);
    g_assert_true(delivered(&a, other_mac));   /* one rx buffer used, on A */
    g_autoptr(GByteArray) blob = save_machine(&a);
    clock_step_ms(&a, 2000);
    g_assert_cmpuint(a.sent->len, ==, 0);      /* the source does not announce */

    fixture_setup(&b);
    load_machine(&b, &a, blob);
    b.mac = new_mac;
    fixture_done(&a);

    /* The filter, MAC and VLANs came along: query-rx-filter reads the same. */
    NetRxFilter rf = { 0 };
    b.nic->rx_filter_query(b.nic, &rf);
    g_assert_false(rf.promisc);
    g_assert_true(rf.nobcast);
    g_assert_cmpmem(rf.mac, 6, new_mac, 6);
    g_assert_cmpuint(rf.n_uni, ==, 1);
    g_assert_cmpmem(rf.uni[0], 6, other_mac, 6);
    g_assert_cmpuint(rf.n_multi, ==, 1);
    g_assert_cmpmem(rf.multi[0], 6, mcast_mac, 6);
    g_assert_true(rf.vlan_filtering);
    g_assert_cmpuint(rf.vlans->len, ==, 1);
    g_assert_cmpint(g_array_index(rf.vlans, int, 0), ==, 5);
    g_array_unref(rf.vlans);
    for (unsigned i = 0; i < 6; i++) {
        g_assert_cmphex(vt_rd(&b.vt, 0x2000 + i, 1), ==, new_mac[i]);
    }

    /* Announce: the first round as soon as the clock runs, five in all, 0.8 s. */
    clock_step_ms(&b, 0);
    g_assert_cmpuint(rarps_sent(&b, new_mac), ==, 1);
    g_assert_cmphex(cfg_status(&b), ==, 1 | 2);  /* LINK_UP | ANNOUNCE */
    g_assert_cmphex(vt_rd(&b.vt, 0x1000, 1) & 2, ==, 2);  /* config change in the ISR */
    clock_step_ms(&b, 49);
    g_assert_cmpuint(rarps_sent(&b, new_mac), ==, 1);
    clock_step_ms(&b, 1);
    g_assert_cmpuint(rarps_sent(&b, new_mac), ==, 2);
    clock_step_ms(&b, 750);
    g_assert_cmpuint(rarps_sent(&b, new_mac), ==, 5);
    clock_step_ms(&b, 5000);
    g_assert_cmpuint(rarps_sent(&b, new_mac), ==, 5);
    g_assert_cmpuint(ctrl(&b, 3, 0, NULL, 0), ==, 0);   /* ANNOUNCE_ACK */
    g_assert_cmphex(cfg_status(&b), ==, 1);
    g_assert_cmpuint(ctrl(&b, 3, 0, NULL, 0), ==, 1);   /* nothing left to ack */
    g_ptr_array_set_size(b.sent, 0);

    /* The rings continue where A left them, with A's filter. */
    g_assert_true(delivered(&b, other_mac));
    g_assert_true(delivered(&b, new_mac));
    g_assert_false(delivered(&b, other2_mac));
    g_assert_false(delivered(&b, (const uint8_t *)"\xff\xff\xff\xff\xff\xff"));
    g_assert_true(delivered(&b, mcast_mac));
    g_assert_cmpuint(used_idx(&b, RXQ), ==, 6);
    g_assert_false(vt_rd(&b.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    fixture_done(&b);
}

/* Without GUEST_ANNOUNCE the RARP rounds alone; the status never shows ANNOUNCE. */
static void test_migrate_announce_rarp_only(void)
{
    Fixture a, b;

    fixture_init(&a, F_MAC | F_STATUS);
    g_autoptr(GByteArray) blob = save_machine(&a);
    fixture_setup(&b);
    load_machine(&b, &a, blob);
    fixture_done(&a);
    clock_step_ms(&b, 1000);
    g_assert_cmpuint(rarps_sent(&b, nic_mac), ==, 5);
    g_assert_cmphex(cfg_status(&b), ==, 1);
    fixture_done(&b);
}

/* set_link off on the NIC travels: the destination's link is down too, its status shows
 * it, and a NIC whose link is down announces nothing. */
static void test_migrate_link_down(void)
{
    Fixture a, b;

    fixture_init(&a, F_MAC | F_STATUS);
    net_client_set_link(a.nic, false);
    g_assert_cmphex(cfg_status(&a), ==, 0);
    g_autoptr(GByteArray) blob = save_machine(&a);
    fixture_setup(&b);
    g_assert_false(b.nic->link_down);
    load_machine(&b, &a, blob);
    fixture_done(&a);
    g_assert_true(b.nic->link_down);
    g_assert_cmphex(cfg_status(&b), ==, 0);
    clock_step_ms(&b, 1000);
    g_assert_cmpuint(b.sent->len, ==, 0);
    net_client_set_link(b.nic, true);
    g_assert_cmphex(cfg_status(&b), ==, 1);
    fixture_done(&b);
}

/* Offset of the data of top-level record `name` in a payload (record = u8 namelen |
 * name | u32 len | data). */
static size_t record_data(const GByteArray *p, const char *name, uint32_t *len)
{
    size_t pos = 0, nl = strlen(name);
    while (pos < p->len) {
        uint8_t l = p->data[pos];
        uint32_t dl;
        memcpy(&dl, p->data + pos + 1 + l, 4);
        if (l == nl && memcmp(p->data + pos + 1, name, nl) == 0) {
            *len = GUINT32_FROM_LE(dl);
            return pos + 1 + l + 4;
        }
        pos += 1 + l + 4 + GUINT32_FROM_LE(dl);
    }
    g_error("no record %s", name);
}

static const VMStateDesc *net_vmsd(Fixture *f)
{
    return f->vt.dev->qdev.cls->vmsd;
}

/* Loads a tampered payload into B's device: refused with `want`, B as it was. */
static void refuse_payload(Fixture *b, const GByteArray *p, const char *want)
{
    Error *err = NULL;
    g_assert_false(vmstate_load_payload(net_vmsd(b), b->vt.dev, 1, p->data, p->len,
                                        "virtio-net-pci.0", &err));
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), want)) {
        g_error("want '%s' in: %s", want, error_get_pretty(err));
    }
    error_free(err);
}

static void test_migrate_corrupt_refused(void)
{
    Fixture a, b;
    Error *err = NULL;
    uint32_t len;

    fixture_init(&a, F_MIGRATE);
    drive_filter(&a);
    g_autoptr(GByteArray) good = g_byte_array_new();
    g_assert_true(vmstate_save_payload(net_vmsd(&a), a.vt.dev, good, &err));
    fixture_setup(&b);

    /* A MAC table count beyond the 64 entries (the bytes are not there either). */
    g_autoptr(GByteArray) p = g_byte_array_new();
    g_byte_array_append(p, good->data, good->len);
    size_t at = record_data(p, "uni", &len);
    p->data[at] = 65;
    refuse_payload(&b, p, "uni");

    /* A bool that is not 0 or 1, and a truncated payload. */
    g_byte_array_set_size(p, 0);
    g_byte_array_append(p, good->data, good->len);
    at = record_data(p, "announce_pending", &len);
    p->data[at] = 7;
    refuse_payload(&b, p, "announce_pending");
    g_byte_array_set_size(p, 0);
    g_byte_array_append(p, good->data, good->len - 3);
    refuse_payload(&b, p, "truncated");

    /* The codec checks a whole payload before writing: B's device took none of it,
     * still the reset filter and MAC. */
    NetRxFilter rf = { 0 };
    b.nic->rx_filter_query(b.nic, &rf);
    g_assert_true(rf.promisc);
    g_assert_cmpmem(rf.mac, 6, nic_mac, 6);
    g_assert_cmpuint(rf.n_uni, ==, 0);
    g_array_unref(rf.vlans);

    /* More queue pairs than the device has: post_load refuses (the values are written
     * by then; the destination exits on any load error). */
    g_byte_array_set_size(p, 0);
    g_byte_array_append(p, good->data, good->len);
    at = record_data(p, "curr_pairs", &len);
    g_assert_cmpuint(len, ==, 4);
    p->data[at] = 2;
    refuse_payload(&b, p, "the source uses 2 queue pairs, this device has 1");

    /* The untouched payload loads. */
    g_assert_true(vmstate_load_payload(net_vmsd(&b), b.vt.dev, 1, good->data, good->len,
                                       "virtio-net-pci.0", &err));
    g_assert_null(err);
    fixture_done(&a);
    fixture_done(&b);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A DHCPDISCOVER from mac through the tx queue; returns the address the user network's
 * DHCPOFFER (into a posted rx buffer) gives, host order. */
static uint32_t dhcp_offer(Fixture *f, const uint8_t mac[6])
{
    uint8_t *fr = f->vt.ram + BUF(2), *ip = fr + 14, *udp = ip + 20, *bp = udp + 8;
    const unsigned bootp_len = 300, len = 14 + 20 + 8 + bootp_len;

    Buf rx = { BUF(5), 2048, true };
    post(f, RXQ, &rx, 1);
    uint16_t before = used_idx(f, RXQ);
    memset(f->vt.ram + BUF(1), 0, HDR_LEN);
    memset(fr, 0, len);
    memset(fr, 0xff, 6);
    memcpy(fr + 6, mac, 6);
    fr[12] = 0x08;
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + 8 + bootp_len) >> 8);
    ip[3] = (uint8_t)(20 + 8 + bootp_len);
    ip[8] = 64;
    ip[9] = 17;
    memset(ip + 16, 0xff, 4);
    uint32_t sum = 0;
    for (unsigned i = 0; i < 20; i += 2) {
        sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = ~((sum & 0xffff) + (sum >> 16)) & 0xffff;
    ip[10] = (uint8_t)(sum >> 8);
    ip[11] = (uint8_t)sum;
    udp[1] = 68;
    udp[3] = 67;
    udp[4] = (uint8_t)((8 + bootp_len) >> 8);
    udp[5] = (uint8_t)(8 + bootp_len);
    bp[0] = 1;                                    /* BOOTREQUEST, Ethernet */
    bp[1] = 1;
    bp[2] = 6;
    memcpy(bp + 4, mac + 2, 4);                   /* xid */
    bp[10] = 0x80;                                /* answer by broadcast */
    memcpy(bp + 28, mac, 6);
    memcpy(bp + 236, "\x63\x82\x53\x63\x35\x01\x01\xff", 8);  /* cookie, DISCOVER */
    Buf tx[2] = { { BUF(1), HDR_LEN, false }, { BUF(2), len, false } };
    post(f, TXQ, tx, 2);
    for (unsigned i = 0; i < 100 && used_idx(f, RXQ) == before; i++) {
        g_main_context_iteration(f->vt.m.ctx, FALSE);
    }
    g_assert_cmpuint(used_idx(f, RXQ), ==, (uint16_t)(before + 1));
    const uint8_t *offer = f->vt.ram + BUF(5) + HDR_LEN;
    g_assert_cmpmem(offer + 42 + 28, 6, mac, 6);  /* the reply is for this client */
    return get_be32(offer + 42 + 16);            /* yiaddr */
}

/* The user network's DHCP leases travel (libslirp's state, as QEMU migrates it): on the
 * destination a new client gets the next address, the migrated one keeps its own. */
static void test_migrate_user_net_leases(void)
{
    static const uint8_t mac_x[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0a };
    static const uint8_t mac_y[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0b };
    Fixture a, b;

    fixture_setup_on(&a, true);
    fixture_driver(&a, F_MAC | F_STATUS);
    g_assert_cmphex(dhcp_offer(&a, mac_x), ==, 0x0a00020f);
    g_autoptr(GByteArray) blob = save_machine(&a);
    g_assert_nonnull(memmem(blob->data, blob->len, "virtio-net-pci/user-net", 23));
    fixture_setup_on(&b, true);
    load_machine(&b, &a, blob);
    fixture_done(&a);
    g_assert_cmphex(dhcp_offer(&b, mac_y), ==, 0x0a000210);
    g_assert_cmphex(dhcp_offer(&b, mac_x), ==, 0x0a00020f);
    fixture_done(&b);

    /* A destination whose NIC is on another backend drops the NAT state. */
    fixture_setup_on(&a, true);
    fixture_driver(&a, F_MAC | F_STATUS);
    g_autoptr(GByteArray) blob2 = save_machine(&a);
    fixture_setup(&b);
    load_machine(&b, &a, blob2);
    fixture_done(&b);

    /* A libslirp state Sen would not write (a guestfwd socket first, or another
     * length) never reaches libslirp's loader. */
    Error *err = NULL;
    g_autoptr(GByteArray) p = g_byte_array_new();
    g_assert_true(vmstate_save_payload(net_vmsd(&a), a.vt.dev, p, &err));
    uint8_t *st = memmem(p->data, p->len, "\x0auser_state", 11);
    g_assert_nonnull(st);
    uint32_t count;
    memcpy(&count, st + 11 + 4, 4);
    g_assert_cmpuint(GUINT32_FROM_LE(count), ==, 131);   /* libslirp state version 4 */
    st[11 + 4 + 4] = 42;
    fixture_setup_on(&b, true);
    refuse_payload(&b, p, "is not what this libslirp writes");
    fixture_done(&a);
    fixture_done(&b);
}

/* While the VM is stopped a frame waits in the net queue, nothing is written to guest
 * memory; the start delivers it. */
static void test_stopped_vm_holds_rx(void)
{
    Fixture f;

    fixture_init(&f, F_MAC | F_STATUS);
    Buf rx = { BUF(0), 2048, true };
    post(&f, RXQ, &rx, 1);
    memset(f.vt.ram + BUF(0), 0xcc, 64);
    f.vt.m.runstate = RUN_STATE_FINISH_MIGRATE;
    send_to_nic(&f, nic_mac, 100, 7);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);
    g_assert_cmphex(f.vt.ram[BUF(0)], ==, 0xcc);
    g_assert_cmpuint(f.nic->incoming.length, ==, 1);
    f.vt.m.runstate = RUN_STATE_RUNNING;
    machine_run_start_hooks(&f.vt.m);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    g_autoptr(GByteArray) want = frame(nic_mac, 100, 7);
    g_assert_cmpmem(f.vt.ram + BUF(0) + HDR_LEN, 100, want->data, 100);
    fixture_done(&f);
}

static bool peer_has_vnet_hdr(NetClientState *nc)
{
    return true;
}

static const NetClientInfo peer_vnet_info = {
    .type = "test-vnet", .receive = peer_receive, .has_vnet_hdr = peer_has_vnet_hdr,
};

/* The NIC with a backend that reads with a NetVnetHdr (tap), the rx filter on, and the
 * features in more. */
static void fixture_direct_with(Fixture *f, uint64_t more)
{
    fixture_setup(f);
    f->peer->info = &peer_vnet_info;
    net_link(f->nic, f->peer);
    fixture_driver(f, F_MAC | F_CTRL_VQ | F_CTRL_RX | more);
}

static void fixture_direct(Fixture *f)
{
    fixture_direct_with(f, 0);
}

/* What a backend reading with a NetVnetHdr (tap) puts into the iovecs the NIC lent it:
 * the header (flags, gso_type bytes as given) and the frame; returns the bytes. */
static size_t direct_read(const struct iovec *iov, int n, uint8_t flags, const GByteArray *fr)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    uint8_t hdr[HDR_LEN] = { flags, 0 };
    size_t off = 0;

    g_byte_array_append(b, hdr, sizeof(hdr));
    g_byte_array_append(b, fr->data, fr->len);
    for (int i = 0; i < n && off < b->len; i++) {
        size_t c = MIN(iov[i].iov_len, b->len - off);
        memcpy(iov[i].iov_base, b->data + off, c);
        off += c;
    }
    g_assert_cmpuint(off, ==, b->len);
    return off;
}

/* A backend reads frames straight into the guest's rx buffer (net_peer_rx_direct_get
 * and _done): the header the backend read stays but for num_buffers 1, the frame spans
 * the chain's pieces, and a burst publishes together; a read that brought nothing
 * gives the buffer back unused; a frame the rx filter refuses is not delivered and its
 * buffer takes the next frame; no buffers or no vnet_hdr: nothing is lent. */
static void test_rx_direct(void)
{
    Fixture f;
    struct iovec iov[8];
    uint32_t id, len;
    uint8_t off = 0;

    fixture_direct(&f);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0); /* no buffers yet */

    Buf chain[2] = { { BUF(0), 20, true }, { BUF(1), 300, true } };
    post(&f, RXQ, chain, 2);
    Buf single = { BUF(2), 2048, true };
    post(&f, RXQ, &single, 1);
    net_burst_begin(f.peer);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 1), ==, 0); /* too many pieces */
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 2);
    g_assert_cmpuint(iov[0].iov_len, ==, 20);
    g_assert_cmpuint(iov[1].iov_len, ==, 300);
    g_autoptr(GByteArray) fr = frame(nic_mac, 200, 5);
    net_peer_rx_direct_done(f.peer, direct_read(iov, 2, 1, fr));
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);                   /* the burst goes on */
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    memset(f.vt.ram + BUF(2), 0xcc, 64);
    net_peer_rx_direct_done(f.peer, 0);                            /* the read got nothing */
    g_assert_cmphex(f.vt.ram[BUF(2)], ==, 0xcc);
    net_burst_end(f.peer);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    used_elem(&f, RXQ, 0, &id, &len);
    g_assert_cmpuint(id, ==, 0);
    g_assert_cmpuint(len, ==, HDR_LEN + 200);
    g_assert_cmpuint(f.vt.ram[BUF(0)], ==, 1);                    /* the backend's flags */
    uint16_t num_buffers;
    memcpy(&num_buffers, f.vt.ram + BUF(0) + 10, 2);
    g_assert_cmpuint(num_buffers, ==, 1);
    g_assert_cmpmem(f.vt.ram + BUF(0) + HDR_LEN, 8, fr->data, 8);
    g_assert_cmpmem(f.vt.ram + BUF(1), 192, fr->data + 8, 192);

    /* Filtered out: the same buffer is lent again and takes the next frame. */
    g_assert_cmpuint(ctrl(&f, 0, 0, &off, 1), ==, 0);             /* PROMISC off */
    g_autoptr(GByteArray) other = frame((const uint8_t *)"\x02\0\0\0\0\x01", 80, 2);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(2));
    net_peer_rx_direct_done(f.peer, direct_read(iov, 1, 0, other));
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(2));
    g_autoptr(GByteArray) mine = frame(nic_mac, 70, 3);
    net_peer_rx_direct_done(f.peer, direct_read(iov, 1, 0, mine));
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 2);                   /* no burst: at once */
    used_elem(&f, RXQ, 1, &id, &len);
    g_assert_cmpuint(id, ==, 2);
    g_assert_cmpuint(len, ==, HDR_LEN + 70);
    g_assert_cmpmem(f.vt.ram + BUF(2) + HDR_LEN, 70, mine->data, 70);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0); /* none left */

    /* A backend saying it read more than it was lent: nothing published, the buffer
     * neither leaked nor lost to the driver, lent again for the next frame. */
    Buf last = { BUF(3), 2048, true };
    post(&f, RXQ, &last, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    net_peer_rx_direct_done(f.peer, 2049);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 2);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(3));
    net_peer_rx_direct_done(f.peer, 0);

    /* A backend without the header gets no buffers lent: it sends through receive(). */
    f.peer->info = &peer_info;
    net_link(f.nic, f.peer);
    post(&f, RXQ, &single, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0);
    fixture_done(&f);
}

/* Several frames' buffers lent at once (a batch of reads): each get lends the next
 * buffer in the ring's order; taken oldest first; a frame the filter refuses leaves its
 * buffer lent, and giving the rest back returns it and every later one untouched, so the
 * next gets lend the same buffers again in the same order; nothing is lent twice. */
static void test_rx_direct_many(void)
{
    Fixture f;
    struct iovec iov[8];
    uint32_t id, len;
    uint8_t off = 0;

    fixture_direct(&f);
    g_assert_cmpuint(ctrl(&f, 0, 0, &off, 1), ==, 0);             /* PROMISC off */
    g_assert_false(net_peer_rx_direct_take(f.peer, 100));          /* nothing lent */
    for (unsigned i = 0; i < 4; i++) {
        Buf b = { BUF(i), 2048, true };
        post(&f, RXQ, &b, 1);
    }
    g_autoptr(GByteArray) mine = frame(nic_mac, 100, 4);
    g_autoptr(GByteArray) other = frame((const uint8_t *)"\x02\0\0\0\0\x01", 80, 2);
    struct iovec lent[4];
    net_burst_begin(f.peer);
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
        g_assert_true(iov[0].iov_base == f.vt.ram + BUF(i));
        lent[i] = iov[0];
    }
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0); /* all four lent */
    size_t n0 = direct_read(&lent[0], 1, 0, mine);
    size_t n1 = direct_read(&lent[1], 1, 0, other);
    direct_read(&lent[2], 1, 0, mine);
    g_assert_true(net_peer_rx_direct_take(f.peer, n0));
    g_assert_false(net_peer_rx_direct_take(f.peer, n1));           /* filtered out */
    net_peer_rx_direct_return(f.peer);
    net_burst_end(f.peer);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    used_elem(&f, RXQ, 0, &id, &len);
    g_assert_cmpuint(id, ==, 0);
    g_assert_cmpuint(len, ==, HDR_LEN + 100);

    /* Given back: buffers 1..3 again, in order. */
    for (unsigned i = 1; i < 4; i++) {
        g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
        g_assert_true(iov[0].iov_base == f.vt.ram + BUF(i));
        lent[i] = iov[0];
    }
    g_assert_true(net_peer_rx_direct_take(f.peer, direct_read(&lent[1], 1, 0, mine)));
    g_assert_true(net_peer_rx_direct_take(f.peer, direct_read(&lent[2], 1, 0, mine)));
    g_assert_false(net_peer_rx_direct_take(f.peer, 0));            /* the read got nothing */
    net_peer_rx_direct_return(f.peer);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 3);
    used_elem(&f, RXQ, 1, &id, &len);
    g_assert_cmpuint(id, ==, 1);
    used_elem(&f, RXQ, 2, &id, &len);
    g_assert_cmpuint(id, ==, 2);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(3));
    net_peer_rx_direct_done(f.peer, direct_read(iov, 1, 0, mine));
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 4);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0); /* none left */
    fixture_done(&f);
}

/* The backend (fixture_direct's) sends fr the copying way, behind a zero header. */
static void send_vnet(Fixture *f, const GByteArray *fr)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    uint8_t hdr[HDR_LEN] = { 0 };

    g_byte_array_append(b, hdr, sizeof(hdr));
    g_byte_array_append(b, fr->data, fr->len);
    net_send_buf(f->peer, b->data, b->len);
}

/* Posts one 2048-byte rx buffer, the n-th posted: at BUF(n % QS), its descriptor n % QS
 * (one descriptor each, so post() hands them out in that order). */
static void post_rx_numbered(Fixture *f, unsigned n)
{
    Buf b = { BUF(n % QS), 2048, true };
    post(f, RXQ, &b, 1);
}

/*
 * A thousand batches of lending, each a different mix: k buffers lent, t of them taken
 * (the next frame refused by the filter, or its read empty), the rest given back.  Each
 * lend is the next buffer not yet used, in the ring's order, never one twice; every used
 * entry is a buffer taken, once, in order; and after it all the queue is as a fresh one:
 * nothing in flight (the device state saves), the next buffer lent is the oldest one
 * posted and not used, and a frame through the copying path lands there.
 */
static void test_rx_direct_many_cycles(void)
{
    Fixture f;
    struct iovec iov[8], lent[5];
    unsigned posted = 0, used = 0;
    uint32_t id, len;
    uint8_t off = 0;

    fixture_direct(&f);
    g_assert_cmpuint(ctrl(&f, 0, 0, &off, 1), ==, 0); /* PROMISC off */
    g_autoptr(GByteArray) mine = frame(nic_mac, 100, 4);
    g_autoptr(GByteArray) other = frame(other_mac, 80, 2);
    for (unsigned c = 0; c < 1000; c++) {
        unsigned k = 1 + c % 5, t = (c / 5) % (k + 1);
        while (posted - used < 12) {
            post_rx_numbered(&f, posted++);
        }
        net_burst_begin(f.peer);
        for (unsigned i = 0; i < k; i++) {
            g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
            g_assert_true(iov[0].iov_base == f.vt.ram + BUF((used + i) % QS));
            g_assert_cmpuint(iov[0].iov_len, ==, 2048);
            lent[i] = iov[0];
        }
        for (unsigned i = 0; i < t; i++) {
            g_assert_true(net_peer_rx_direct_take(f.peer, direct_read(&lent[i], 1, 0, mine)));
        }
        if (t < k) {
            /* What stops the taking: a refused frame, or a read that got nothing. */
            size_t n = c % 2 ? direct_read(&lent[t], 1, 0, other) : 0;
            g_assert_false(net_peer_rx_direct_take(f.peer, n));
        }
        net_peer_rx_direct_return(f.peer);
        net_burst_end(f.peer);
        for (unsigned i = 0; i < t; i++) {
            used_elem(&f, RXQ, used + i, &id, &len);
            g_assert_cmpuint(id, ==, (used + i) % QS);
            g_assert_cmpuint(len, ==, HDR_LEN + 100);
        }
        used += t;
        g_assert_cmpuint(used_idx(&f, RXQ), ==, (uint16_t)used);
    }
    g_assert_false(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    g_autoptr(GByteArray) blob = save_machine(&f); /* refused with anything in flight */
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(used % QS));
    net_peer_rx_direct_return(f.peer);
    g_autoptr(GByteArray) fr = frame(nic_mac, 90, 6);
    send_vnet(&f, fr);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, (uint16_t)(used + 1));
    used_elem(&f, RXQ, used, &id, &len);
    g_assert_cmpuint(id, ==, used % QS);
    g_assert_cmpuint(len, ==, HDR_LEN + 90);
    fixture_done(&f);
}

/*
 * The guest's ring as a hostile driver leaves it, for lending: a buffer that only holds
 * the header is not lent (the copying path deals with it); a descriptor the driver
 * rewrites after its buffer was lent and given back is read again at the next lend (the
 * new buffer lent, never the old one); one rewritten to point outside guest RAM lends
 * nothing and marks the device broken, with nothing left lent and nothing published; so
 * does what a frame read into a buffer over the queue's own rings leaves there; a chain
 * in more pieces than a lend holds is not lent and waits for the copying path.
 */
static void test_rx_direct_hostile_ring(void)
{
    Fixture f;
    struct iovec iov[8];

    fixture_direct(&f);
    Buf hdr_only = { BUF(0), HDR_LEN, true };
    post(&f, RXQ, &hdr_only, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0);
    g_assert_false(net_peer_rx_direct_take(f.peer, 100));          /* nothing lent */
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);
    fixture_done(&f);

    fixture_direct(&f);
    Buf b = { BUF(1), 2048, true };
    post(&f, RXQ, &b, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(1));
    net_peer_rx_direct_return(f.peer);
    VirtqDesc d = { .addr = BUF(5), .len = 100, .flags = VIRTQ_DESC_F_WRITE };
    memcpy(f.vt.ram + RING(RXQ), &d, sizeof(d));                   /* descriptor 0 */
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_assert_true(iov[0].iov_base == f.vt.ram + BUF(5));
    g_assert_cmpuint(iov[0].iov_len, ==, 100);
    net_peer_rx_direct_return(f.peer);
    d.addr = 1ull << 40;                                           /* far beyond RAM */
    memcpy(f.vt.ram + RING(RXQ), &d, sizeof(d));
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0);
    g_assert_true(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    g_assert_false(net_peer_rx_direct_take(f.peer, 100));          /* nothing lent */
    net_peer_rx_direct_return(f.peer);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 0);
    fixture_done(&f);

    /* A buffer over the rx queue's own avail ring (two pages, the used ring's too):
     * the frame read into it overwrites both rings; the take publishes it all the same
     * (the used entry goes in after the frame), and what the next lend finds there (the
     * header's zero bytes as the avail index) is checked as any driver's ring: an index
     * gone back breaks the device, nothing is lent, nothing written outside RAM. */
    fixture_direct(&f);
    Buf over = { RING(RXQ) + 0x1000, 0x2000, true };
    post(&f, RXQ, &over, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 1);
    g_autoptr(GByteArray) big = frame(nic_mac, 0x1800, 0x77);
    g_assert_true(net_peer_rx_direct_take(f.peer, direct_read(iov, 1, 0, big)));
    net_peer_rx_direct_return(f.peer);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0);
    g_assert_true(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    g_assert_false(net_peer_rx_direct_take(f.peer, 100));          /* nothing lent */
    fixture_done(&f);

    /* A chain in more pieces than a lend holds (VIRTQUEUE_SMALL_SEGS + 4, through an
     * indirect table): not lent, left in the ring, the device not broken; a frame sent
     * the copying way lands in it. */
    enum { PIECES = VIRTQUEUE_SMALL_SEGS + 4, PIECE = 64 };
    fixture_direct_with(&f, 1ull << VIRTIO_F_INDIRECT_DESC);
    for (unsigned k = 0; k < PIECES; k++) {
        VirtqDesc p = { .addr = BUF(9) + 128 * k, .len = PIECE,
                        .flags = VIRTQ_DESC_F_WRITE |
                                 (k + 1 < PIECES ? VIRTQ_DESC_F_NEXT : 0),
                        .next = (uint16_t)(k + 1) };
        memcpy(f.vt.ram + BUF(8) + 16 * k, &p, sizeof(p));
    }
    Buf ind = { BUF(8), 16 * PIECES, false };
    post(&f, RXQ, &ind, 1);
    VirtqDesc *d0 = (VirtqDesc *)(f.vt.ram + RING(RXQ));
    d0->flags = VIRTQ_DESC_F_INDIRECT;
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0);
    g_assert_cmpint(net_peer_rx_direct_get(f.peer, iov, 8), ==, 0);
    g_assert_false(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    g_autoptr(GByteArray) fr = frame(nic_mac, 300, 3);
    send_vnet(&f, fr);
    g_assert_cmpuint(used_idx(&f, RXQ), ==, 1);
    uint32_t id, len;
    used_elem(&f, RXQ, 0, &id, &len);
    g_assert_cmpuint(len, ==, HDR_LEN + 300);
    /* The second piece holds the frame from where the first (header first) left off. */
    g_assert_cmpmem(f.vt.ram + BUF(9) + 128, PIECE, fr->data + PIECE - HDR_LEN, PIECE);
    fixture_done(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-net/rx-tx", test_rx_tx);
    g_test_add_func("/virtio-net/tx-long-chain", test_tx_long_chain);
    g_test_add_func("/virtio-net/rx-too-big", test_rx_too_big);
    g_test_add_func("/virtio-net/mrg-rxbuf", test_mrg_rxbuf);
    g_test_add_func("/virtio-net/mrg-rxbuf-waits-for-buffers",
                    test_mrg_rxbuf_waits_for_buffers);
    g_test_add_func("/virtio-net/rx-burst", test_rx_burst);
    g_test_add_func("/virtio-net/tx-bad-mid-batch", test_tx_bad_mid_batch);
    g_test_add_func("/virtio-net/tx-batch-flushed-before-used",
                    test_tx_batch_flushed_before_used);
    g_test_add_func("/virtio-net/ctrl-rx-filter", test_ctrl_rx_filter);
    g_test_add_func("/virtio-net/migrate-round-trip", test_migrate_round_trip);
    g_test_add_func("/virtio-net/migrate-announce-rarp-only", test_migrate_announce_rarp_only);
    g_test_add_func("/virtio-net/migrate-corrupt-refused", test_migrate_corrupt_refused);
    g_test_add_func("/virtio-net/migrate-link-down", test_migrate_link_down);
    g_test_add_func("/virtio-net/migrate-user-net-leases", test_migrate_user_net_leases);
    g_test_add_func("/virtio-net/stopped-vm-holds-rx", test_stopped_vm_holds_rx);
    g_test_add_func("/virtio-net/rx-direct", test_rx_direct);
    g_test_add_func("/virtio-net/rx-direct-many", test_rx_direct_many);
    g_test_add_func("/virtio-net/rx-direct-many-cycles", test_rx_direct_many_cycles);
    g_test_add_func("/virtio-net/rx-direct-hostile-ring", test_rx_direct_hostile_ring);
    return g_test_run();
}
