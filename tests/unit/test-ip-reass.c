/*
 * net/ip-reass.c: the guest's IPv4 fragments made whole before libslirp, which crashes
 * on a last fragment it holds no queue for (libslirp 4.7.0).
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "net/net-internal.h"
#include "slirp-test-util.h"

#define SEC 1000000000LL

/* The reassembly's clock: what the calls below set. */
static int64_t now_ns;

static int64_t test_clock(void *opaque)
{
    return now_ns;
}

static IpReass *reass_new(void)
{
    now_ns = 0;
    return ip_reass_new(test_clock, NULL);
}

/* A fragment of the UDP datagram `whole` (a frame from slirp_test_udp_frame): IP payload
 * bytes [off, off + n), MF when more follow; its length. */
static size_t fragment(uint8_t *f, const uint8_t *whole, size_t whole_len, size_t off,
                       size_t n, uint16_t id)
{
    size_t payload = whole_len - SLIRP_TEST_UDP;
    bool more = off + n < payload;

    memcpy(f, whole, SLIRP_TEST_UDP);
    memcpy(f + SLIRP_TEST_UDP, whole + SLIRP_TEST_UDP + off, n);
    f[SLIRP_TEST_ETH + 2] = (uint8_t)((20 + n) >> 8);
    f[SLIRP_TEST_ETH + 3] = (uint8_t)(20 + n);
    f[SLIRP_TEST_ETH + 4] = (uint8_t)(id >> 8);
    f[SLIRP_TEST_ETH + 5] = (uint8_t)id;
    uint16_t frag = (uint16_t)((more ? 0x2000 : 0) | off / 8);
    f[SLIRP_TEST_ETH + 6] = (uint8_t)(frag >> 8);
    f[SLIRP_TEST_ETH + 7] = (uint8_t)frag;
    slirp_test_ip_csum(f);
    return SLIRP_TEST_UDP + n;
}

static size_t datagram(uint8_t *f, size_t n, uint16_t dport)
{
    uint8_t payload[4000];

    g_assert_cmpuint(n, <=, sizeof(payload));
    for (size_t i = 0; i < n; i++) {
        payload[i] = (uint8_t)(i * 7 + 3);
    }
    return slirp_test_udp_frame(f, 5000, dport, 64, payload, n);
}

/* Fragments [a, b) of `whole` cut at 1480-byte pieces, in the order of `order`. */
static int feed(IpReass *ir, const uint8_t *whole, size_t len, const unsigned *order,
                unsigned n, uint16_t id, int64_t now, const uint8_t **out, size_t *out_len)
{
    uint8_t f[1600];
    int last = -1;

    for (unsigned i = 0; i < n; i++) {
        size_t off = order[i] * 1480, payload = len - SLIRP_TEST_UDP;
        size_t fl = fragment(f, whole, len, off, MIN(1480, payload - off), id);
        now_ns = now;
        last = ip_reass_input(ir, f, fl, out, out_len);
        g_assert_cmpint(last, !=, IP_REASS_NOT_FRAGMENT);
        if (i + 1 < n) {
            g_assert_cmpint(last, ==, IP_REASS_TAKEN);
        }
    }
    return last;
}

static void assert_whole(const uint8_t *whole, size_t len, const uint8_t *out, size_t out_len)
{
    g_assert_cmpuint(out_len, ==, len);
    g_assert_cmpmem(out + SLIRP_TEST_UDP, len - SLIRP_TEST_UDP, whole + SLIRP_TEST_UDP,
                    len - SLIRP_TEST_UDP);
    g_assert_cmphex(out[SLIRP_TEST_ETH + 6] & 0x3f, ==, 0);
    g_assert_cmphex(out[SLIRP_TEST_ETH + 7], ==, 0);
    g_assert_cmphex(slirp_test_csum(out + SLIRP_TEST_ETH, 20, 0), ==, 0);
    g_assert_cmpmem(out, SLIRP_TEST_ETH, whole, SLIRP_TEST_ETH);
}

static void test_orders(void)
{
    static const unsigned orders[][3] = { { 0, 1, 2 }, { 2, 1, 0 }, { 1, 2, 0 }, { 2, 0, 1 } };
    uint8_t whole[4100];
    size_t len = datagram(whole, 4000, 9);
    const uint8_t *out;
    size_t out_len;
    IpReass *ir = reass_new();

    for (unsigned i = 0; i < G_N_ELEMENTS(orders); i++) {
        g_assert_cmpint(feed(ir, whole, len, orders[i], 3, (uint16_t)(100 + i), 0, &out,
                             &out_len), ==, IP_REASS_DONE);
        assert_whole(whole, len, out, out_len);
    }
    /* Not a fragment: left alone. */
    g_assert_cmpint(ip_reass_input(ir, whole, len, &out, &out_len), ==,
                    IP_REASS_NOT_FRAGMENT);
    g_assert_cmpuint(ip_reass_dropped(ir), ==, 0);
    ip_reass_free(ir);
}

/* What crashes libslirp 4.7.0 is held here, never completed. */
static void test_lone_and_repeated_last(void)
{
    uint8_t whole[4100];
    size_t len = datagram(whole, 4000, 9);
    const uint8_t *out;
    size_t out_len;
    IpReass *ir = reass_new();
    static const unsigned last[] = { 2 }, all[] = { 0, 1, 2 };

    g_assert_cmpint(feed(ir, whole, len, last, 1, 7, 0, &out, &out_len), ==, IP_REASS_TAKEN);
    g_assert_cmpint(feed(ir, whole, len, all, 3, 8, 0, &out, &out_len), ==, IP_REASS_DONE);
    /* The last fragment again after the datagram completed: a new, incomplete one. */
    g_assert_cmpint(feed(ir, whole, len, last, 1, 8, 0, &out, &out_len), ==, IP_REASS_TAKEN);
    ip_reass_free(ir);
}

static void test_contradictions(void)
{
    uint8_t whole[4100], f[1600];
    size_t len = datagram(whole, 4000, 9);
    const uint8_t *out;
    size_t out_len;
    IpReass *ir = reass_new();

    /* Two different ends: the datagram is dropped, its other pieces never complete it. */
    size_t fl = fragment(f, whole, len, 1480, 1480, 3);
    f[SLIRP_TEST_ETH + 6] &= ~0x20; /* "the last one", ending at 2960 */
    slirp_test_ip_csum(f);
    g_assert_cmpint(ip_reass_input(ir, f, fl, &out, &out_len), ==, IP_REASS_TAKEN);
    static const unsigned last[] = { 2 }, head[] = { 0 };
    g_assert_cmpint(feed(ir, whole, len, last, 1, 3, 0, &out, &out_len), ==, IP_REASS_TAKEN);
    /* What is left of it: a new datagram, waiting for its middle. */
    g_assert_cmpint(feed(ir, whole, len, head, 1, 3, 0, &out, &out_len), ==, IP_REASS_TAKEN);
    g_assert_cmpuint(ip_reass_dropped(ir), ==, 1);

    /* MF with a length that is not a multiple of 8, and a bad header checksum. */
    fl = fragment(f, whole, len, 0, 1480, 4);
    f[SLIRP_TEST_ETH + 3] -= 1;
    slirp_test_ip_csum(f);
    g_assert_cmpint(ip_reass_input(ir, f, fl - 1, &out, &out_len), ==, IP_REASS_TAKEN);
    fl = fragment(f, whole, len, 0, 1480, 5);
    f[SLIRP_TEST_ETH + 10] ^= 1;
    g_assert_cmpint(ip_reass_input(ir, f, fl, &out, &out_len), ==, IP_REASS_TAKEN);
    /* Longer than the frame says. */
    fl = fragment(f, whole, len, 0, 1480, 6);
    g_assert_cmpint(ip_reass_input(ir, f, fl - 8, &out, &out_len), ==, IP_REASS_TAKEN);
    /* Past 64 KiB. */
    fl = fragment(f, whole, len, 0, 1480, 7);
    f[SLIRP_TEST_ETH + 6] = 0x1f; /* offset 0x1fff * 8 */
    f[SLIRP_TEST_ETH + 7] = 0xff;
    slirp_test_ip_csum(f);
    g_assert_cmpint(ip_reass_input(ir, f, fl, &out, &out_len), ==, IP_REASS_TAKEN);
    g_assert_cmpuint(ip_reass_dropped(ir), ==, 5);
    ip_reass_free(ir);
}

static void test_expiry_and_eviction(void)
{
    uint8_t whole[4100];
    size_t len = datagram(whole, 4000, 9);
    const uint8_t *out;
    size_t out_len;
    IpReass *ir = reass_new();
    static const unsigned first[] = { 0 }, rest[] = { 1, 2 };

    /* 30 s after its first fragment a datagram is gone. */
    g_assert_cmpint(feed(ir, whole, len, first, 1, 1, 0, &out, &out_len), ==, IP_REASS_TAKEN);
    g_assert_cmpint(feed(ir, whole, len, rest, 2, 1, 30 * SEC, &out, &out_len), ==,
                    IP_REASS_TAKEN);
    g_assert_cmpuint(ip_reass_dropped(ir), ==, 1);
    /* Within: completes. */
    g_assert_cmpint(feed(ir, whole, len, first, 1, 2, 40 * SEC, &out, &out_len), ==,
                    IP_REASS_TAKEN);
    g_assert_cmpint(feed(ir, whole, len, rest, 2, 2, 69 * SEC, &out, &out_len), ==,
                    IP_REASS_DONE);
    /* 17 in progress: the oldest made room for the newest. */
    for (uint16_t id = 10; id < 27; id++) {
        g_assert_cmpint(feed(ir, whole, len, first, 1, id, 70 * SEC + id, &out, &out_len),
                        ==, IP_REASS_TAKEN);
    }
    g_assert_cmpint(feed(ir, whole, len, rest, 2, 10, 71 * SEC, &out, &out_len), ==,
                    IP_REASS_TAKEN);
    g_assert_cmpint(feed(ir, whole, len, rest, 2, 26, 71 * SEC, &out, &out_len), ==,
                    IP_REASS_DONE);
    ip_reass_free(ir);
}

/* Through the user netdev: the frame that ends a VMM on plain libslirp 4.7.0 is survived,
 * and a fragmented datagram to the host alias reaches the host whole. */
static void test_user_netdev(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int host = slirp_test_host_socket(&port);
    uint8_t whole[4100], f[1600], got[4100];
    size_t len = datagram(whole, 4000, port);

    slirp_rig_setup(&r, NULL);
    size_t fl = fragment(f, whole, len, 2960, 1048, 77); /* a lone last fragment */
    slirp_rig_send(&r, f, fl);
    for (size_t off = 0; off < 4008; off += 1480) {
        fl = fragment(f, whole, len, off, MIN(1480, 4008 - off), 78);
        slirp_rig_send(&r, f, fl);
    }
    ssize_t n = recv(host, got, sizeof(got), 0);
    g_assert_cmpint(n, ==, 4000);
    g_assert_cmpmem(got, 4000, whole + SLIRP_TEST_DATA, 4000);
    slirp_rig_teardown(&r);
    close(host);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ip-reass/orders", test_orders);
    g_test_add_func("/ip-reass/lone-and-repeated-last", test_lone_and_repeated_last);
    g_test_add_func("/ip-reass/contradictions", test_contradictions);
    g_test_add_func("/ip-reass/expiry-and-eviction", test_expiry_and_eviction);
    g_test_add_func("/ip-reass/user-netdev", test_user_netdev);
    return g_test_run();
}
