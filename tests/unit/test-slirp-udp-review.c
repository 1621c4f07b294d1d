/*
 * net/slirp-udp.c, findings of its review: each test shows one behaviour that differed
 * from libslirp 4.7's (Debian 12's) or hurt the host, through a user netdev with a fake
 * NIC and real host sockets on 127.0.0.1.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <glib.h>
#include "net/net-internal.h"
#include "sen/keyval.h"
#include "sen/net.h"
#include "sen/timer.h"

#define FRAME_HDRS (14 + 20 + 8)

typedef struct Rig {
    Machine m;
    GPtrArray *queues;
    NetClientState *user, *nic;
    bool nic_full;            /* the guest posted no rx buffers */
    unsigned udp;             /* UDP frames the guest side got */
    uint8_t last[2048];       /* the last of them (its first bytes) */
} Rig;

static bool rig_nic_can_receive(NetClientState *nc)
{
    return !((Rig *)nc->opaque)->nic_full;
}

static ssize_t rig_nic_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    Rig *r = nc->opaque;
    size_t len = net_iov_size(iov, iovcnt);
    const uint8_t *f = iov[0].iov_base;

    if (iov[0].iov_len >= 24 && f[12] == 0x08 && f[13] == 0x00 && f[14 + 9] == 17) {
        r->udp++;
        memcpy(r->last, f, MIN(iov[0].iov_len, sizeof(r->last)));
    }
    return (ssize_t)len;
}

static const NetClientInfo rig_nic_info = {
    .type = "test",
    .receive = rig_nic_receive,
    .can_receive = rig_nic_can_receive,
};

/* A user netdev with opts ("ipv6=off" at least) linked to the fake NIC. */
static void rig_setup(Rig *r, const char *opts, bool manual_clock)
{
    Error *err = NULL;

    g_mutex_init(&r->m.lock);
    r->m.ctx = g_main_context_new();
    r->m.clock = virt_clock_new(manual_clock);
    r->queues = g_ptr_array_new();
    g_autoptr(Keyval) kv = keyval_parse(opts, NULL, &err);
    g_assert_null(err);
    g_assert_true(net_user_backend.init(&r->m, "u0", kv, "-netdev user,id=u0", r->queues,
                                        &err));
    g_assert_null(err);
    r->user = g_ptr_array_index(r->queues, 0);
    r->nic = net_client_new(NULL, &rig_nic_info, "test", "nic", 0);
    r->nic->opaque = r;
    net_link(r->nic, r->user);
}

static void rig_teardown(Rig *r)
{
    net_client_free(r->nic);
    net_client_free(r->user);
    g_ptr_array_free(r->queues, TRUE);
    virt_clock_free(r->m.clock);
    g_main_context_unref(r->m.ctx);
    g_mutex_clear(&r->m.lock);
}

static uint16_t csum16(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/* The guest (10.0.2.15:sport) sends len bytes to 10.0.2.2:dport (no UDP checksum). */
static void guest_send(Rig *r, uint16_t sport, uint16_t dport, uint8_t tos, size_t len)
{
    uint8_t f[FRAME_HDRS + 1500] = {
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
        0x45, tos, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2,
    };
    uint8_t *udp = f + 14 + 20;

    g_assert_cmpuint(len, <=, 1500);
    f[16] = (uint8_t)((20 + 8 + len) >> 8);
    f[17] = (uint8_t)(20 + 8 + len);
    uint16_t sum = csum16(f + 14, 20);
    f[24] = sum >> 8;
    f[25] = sum & 0xff;
    udp[0] = sport >> 8;
    udp[1] = sport & 0xff;
    udp[2] = dport >> 8;
    udp[3] = dport & 0xff;
    udp[4] = (uint8_t)((8 + len) >> 8);
    udp[5] = (uint8_t)(8 + len);
    memset(udp + 8, 'x', len);
    machine_lock(&r->m);
    g_assert_true(net_send_buf(r->nic, f, FRAME_HDRS + len));
    machine_unlock(&r->m);
}

/* A UDP socket on 127.0.0.1 (a receive timeout of 5 s); its port in *port. */
static int host_socket(uint16_t *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    struct timeval tv = { .tv_sec = 5 };
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    g_assert_cmpint(fd, >=, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &alen), ==, 0);
    g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), ==, 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static unsigned rig_flows(Rig *r)
{
    SlirpUdpStats st;

    machine_lock(&r->m);
    slirp_udp_stats(net_slirp_udp(r->user), &st);
    machine_unlock(&r->m);
    return st.flows;
}

/*
 * dns= naming the gateway's address: libslirp sends what goes to that address to the
 * host's resolver (port 53 only; other ports are refused, the guest gets "network
 * unreachable"), not to 127.0.0.1, so Sen's path (which sends to 127.0.0.1) must leave
 * that address to libslirp.
 */
static void test_dns_at_gateway_stays_libslirp(void)
{
    Rig r = { 0 };

    rig_setup(&r, "ipv6=off", true);
    g_assert_nonnull(net_slirp_udp(r.user));
    rig_teardown(&r);

    memset(&r, 0, sizeof(r));
    rig_setup(&r, "ipv6=off,dns=10.0.2.2", true);
    g_assert_null(net_slirp_udp(r.user));
    rig_teardown(&r);
}

/*
 * The TOS of replies: libslirp 4.7 keeps the guest's first datagram's (its DNS rule,
 * IPTOS_LOWDELAY for port 53, never matches a new UDP socket: udp_tos() runs before the
 * socket has a foreign port), also for a guest port 53.
 */
static void test_reply_tos_is_the_guests(void)
{
    Rig r = { 0 };
    uint16_t port;
    int fd = host_socket(&port);
    char buf[64];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);

    rig_setup(&r, "ipv6=off", true);
    guest_send(&r, 53, port, 0x28, 4);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
    g_assert_cmpint(n, ==, 4);
    g_assert_cmpint(sendto(fd, buf, n, 0, (struct sockaddr *)&from, flen), ==, n);
    for (gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
         r.udp == 0 && g_get_monotonic_time() < end;) {
        g_main_context_iteration(r.m.ctx, FALSE);
        g_usleep(1000);
    }
    g_assert_cmpuint(r.udp, ==, 1);
    g_assert_cmpuint(r.last[14 + 1], ==, 0x28); /* the IP header's TOS */
    g_assert_cmpuint(r.last[14 + 20 + 2] << 8 | r.last[14 + 20 + 3], ==, 53);
    close(fd);
    rig_teardown(&r);
}

/*
 * A flow paused (the NIC's queue full) whose socket has a pending error but nothing in
 * its error queue (the ICMP error found the receive buffer full, so the kernel set only
 * sk_err): poll reports POLLERR even with no events asked for, and the source must not
 * be dispatched again and again (100% CPU of the main loop until the guest reads).
 */
static void test_paused_flow_error_does_not_spin(void)
{
    Rig r = { 0 };
    uint16_t port, closed;
    int fd = host_socket(&port);
    int gone = host_socket(&closed);
    char buf[1000] = { 0 };
    struct sockaddr_in flow;
    socklen_t flen = sizeof(flow);
    unsigned dispatches = 0;

    close(gone); /* nobody listens on 127.0.0.1:closed */
    rig_setup(&r, "ipv6=off", true);
    guest_send(&r, 4000, port, 0, 4);
    g_assert_cmpint(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&flow, &flen), ==,
                    4);

    /* The guest reads nothing: the NIC's queue fills up. */
    r.nic_full = true;
    machine_lock(&r.m);
    for (unsigned i = 0; i < NET_QUEUE_LIMIT; i++) {
        net_send_buf(r.user, buf, 60);
    }
    g_assert_false(net_peer_has_room(r.user));
    machine_unlock(&r.m);
    /* The flow pauses at its first input and the host fills its receive buffer. */
    g_assert_cmpint(sendto(fd, buf, 100, 0, (struct sockaddr *)&flow, flen), ==, 100);
    for (unsigned i = 0; i < 100 && g_main_context_iteration(r.m.ctx, FALSE); i++) {
    }
    for (unsigned i = 0; i < 4000; i++) {
        g_assert_cmpint(sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&flow, flen), ==,
                        (ssize_t)sizeof(buf));
    }
    /* Port unreachable for this one: no room to queue the error, only sk_err is set. */
    guest_send(&r, 4000, closed, 0, 4);
    g_usleep(20 * 1000);
    for (unsigned i = 0; i < 200; i++) {
        dispatches += g_main_context_iteration(r.m.ctx, FALSE);
    }
    g_assert_cmpuint(dispatches, <=, 2);

    r.nic_full = false;
    close(fd);
    rig_teardown(&r);
}

/*
 * Idle expiry follows the virtual clock, as libslirp's (its curtime is the clock Sen
 * gives it): a VM stopped for longer than the idle time keeps its guest endpoints' host
 * ports.
 */
static void test_expiry_stops_with_the_vm(void)
{
    Rig r = { 0 };
    uint16_t port;
    int fd = host_socket(&port);
    char buf[16];

    rig_setup(&r, "ipv6=off", false);
    guest_send(&r, 4001, port, 0, 4);
    g_assert_cmpint(recv(fd, buf, sizeof(buf), 0), ==, 4);
    g_assert_cmpuint(rig_flows(&r), ==, 1);

    machine_lock(&r.m);
    virt_clock_stop(r.m.clock); /* the VM stops */
    machine_unlock(&r.m);
    g_usleep(50 * 1000);
    machine_lock(&r.m);
    slirp_udp_expire_idle(net_slirp_udp(r.user), 20 * 1000);
    machine_unlock(&r.m);
    g_assert_cmpuint(rig_flows(&r), ==, 1);

    machine_lock(&r.m);
    virt_clock_start(r.m.clock);
    machine_unlock(&r.m);
    g_usleep(50 * 1000);
    machine_lock(&r.m);
    slirp_udp_expire_idle(net_slirp_udp(r.user), 20 * 1000);
    machine_unlock(&r.m);
    g_assert_cmpuint(rig_flows(&r), ==, 0);
    close(fd);
    rig_teardown(&r);
}

/* A port on 127.0.0.1 nobody uses now. */
static uint16_t free_port(void)
{
    uint16_t port;

    close(host_socket(&port));
    return port;
}

typedef struct LateSend {
    uint16_t port;
    gint64 delay_us;
} LateSend;

/* Sends one datagram to 127.0.0.1:port after the delay (unblocks a blocking read). */
static gpointer late_send(gpointer opaque)
{
    LateSend *l = opaque;
    uint16_t unused;
    int fd = host_socket(&unused);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(l->port) };

    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_usleep(l->delay_us);
    g_assert_cmpint(sendto(fd, "late", 4, 0, (struct sockaddr *)&to, sizeof(to)), ==, 4);
    close(fd);
    return NULL;
}

/*
 * hostfwd_add of a udp rule from the monitor, between the main loop's poll and slirp's
 * dispatch in one iteration: finding the rule's socket must not renumber libslirp's
 * descriptors, or that dispatch reads the poll results of the set prepare registered
 * with the new numbers: the new rule's socket got the readiness of an older one, and
 * libslirp read it (its sockets block), stopping the main loop until a datagram came
 * to the new port.
 */
static void test_hostfwd_add_between_poll_and_dispatch(void)
{
    Machine m = { 0 };
    Error *err = NULL;
    uint16_t p1 = free_port(), p2 = free_port(), unused;
    int fd = host_socket(&unused);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(p1) };
    GPollFD fds[64];
    gint prio, timeout;
    static const uint8_t arp[42] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,            /* Ethernet/IPv4, request */
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15,    /* from the guest */
        0, 0, 0, 0, 0, 0, 10, 0, 2, 2,                       /* who has 10.0.2.2 */
    };

    g_mutex_init(&m.lock);
    m.ctx = g_main_context_new();
    m.clock = virt_clock_new(true);
    g_autofree char *opts =
        g_strdup_printf("type=user,id=u0,ipv6=off,hostfwd=udp:127.0.0.1:%u-:5555", p1);
    g_autoptr(Keyval) kv = keyval_parse(opts, NULL, &err);
    g_assert_null(err);
    g_assert_true(net_netdev_add(&m, kv, "-netdev", &err));
    g_assert_null(err);
    Rig r = { 0 };
    r.user = g_ptr_array_index(net_netdev_find(&m, "u0"), 0);
    r.nic = net_client_new(NULL, &rig_nic_info, "test", "nic", 0);
    r.nic->opaque = &r;
    net_link(r.nic, r.user);
    for (unsigned i = 0; i < 100 && g_main_context_iteration(m.ctx, FALSE); i++) {
    }
    machine_lock(&m);
    g_assert_true(net_send_buf(r.nic, arp, sizeof(arp))); /* slirp learns our MAC */
    machine_unlock(&m);

    /* One iteration by hand: the rule's socket has input when the loop polls. */
    g_assert_true(g_main_context_acquire(m.ctx));
    g_main_context_prepare(m.ctx, &prio);
    int n = g_main_context_query(m.ctx, prio, &timeout, fds, G_N_ELEMENTS(fds));
    g_assert_cmpint(n, <=, (int)G_N_ELEMENTS(fds));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(sendto(fd, "hi", 2, 0, (struct sockaddr *)&to, sizeof(to)), ==, 2);
    g_assert_cmpint(g_poll(fds, n, 1000), >, 0);
    g_assert_true(g_main_context_check(m.ctx, prio, fds, n));
    g_autofree char *rule = g_strdup_printf("udp:127.0.0.1:%u-:6666", p2);
    machine_lock(&m);
    g_assert_true(net_slirp_hostfwd_add(&m, rule, &err));
    machine_unlock(&m);
    g_assert_null(err);
    LateSend late = { p2, 1500 * 1000 };
    GThread *th = g_thread_new("late", late_send, &late);
    gint64 start = g_get_monotonic_time();
    g_main_context_dispatch(m.ctx);
    gint64 took = g_get_monotonic_time() - start;
    g_main_context_release(m.ctx);
    g_thread_join(th);
    g_assert_cmpint(took, <, 500 * 1000);
    g_assert_cmpuint(r.udp, >=, 1); /* "hi" reached the guest side */

    close(fd);
    net_client_free(r.nic);
    net_cleanup(&m);
    virt_clock_free(m.clock);
    g_main_context_unref(m.ctx);
    g_mutex_clear(&m.lock);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/slirp-udp-review/dns-at-gateway-stays-libslirp",
                    test_dns_at_gateway_stays_libslirp);
    g_test_add_func("/slirp-udp-review/reply-tos-is-the-guests", test_reply_tos_is_the_guests);
    g_test_add_func("/slirp-udp-review/paused-flow-error-does-not-spin",
                    test_paused_flow_error_does_not_spin);
    g_test_add_func("/slirp-udp-review/expiry-stops-with-the-vm",
                    test_expiry_stops_with_the_vm);
    g_test_add_func("/slirp-udp-review/hostfwd-add-between-poll-and-dispatch",
                    test_hostfwd_add_between_poll_and_dispatch);
    return g_test_run();
}
