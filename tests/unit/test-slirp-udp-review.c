/*
 * net/slirp-udp.c, findings of its review: each test shows one behaviour that differed
 * from libslirp 4.7's (Debian 12's) or hurt the host, through a user netdev with a fake
 * NIC and real host sockets on 127.0.0.1.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <glib.h>
#include "net/net-internal.h"
#include "sen/net.h"
#include "sen/timer.h"
#include "slirp-test-util.h"

/* The guest (10.0.2.15:sport) sends four bytes with that TOS to 10.0.2.2:dport. */
static void guest_send(SlirpRig *r, uint16_t sport, uint16_t dport, uint8_t tos)
{
    uint8_t f[SLIRP_TEST_DATA + 4];
    size_t len = slirp_test_udp_frame(f, sport, dport, 64, "xxxx", 4);

    slirp_test_set_tos(f, tos);
    slirp_rig_send(r, f, len);
}

/* The flows left after 50 ms, when those idle for 20 ms close. */
static unsigned flows_after_idle(SlirpRig *r)
{
    g_usleep(50 * 1000);
    slirp_rig_udp_expire_idle(r, 20 * 1000, 20 * 1000);
    return slirp_rig_udp_stats(r).flows;
}

/*
 * dns= naming the gateway's address: libslirp sends what goes to that address to the
 * host's resolver (port 53 only; other ports are refused, the guest gets "network
 * unreachable"), not to 127.0.0.1, so Sen's path (which sends to 127.0.0.1) must leave
 * that address to libslirp.
 */
static void test_dns_at_gateway_stays_libslirp(void)
{
    SlirpRig r = { 0 };

    slirp_rig_setup(&r, NULL);
    g_assert_nonnull(net_slirp_udp(r.user));
    slirp_rig_teardown(&r);

    memset(&r, 0, sizeof(r));
    slirp_rig_setup(&r, "dns=10.0.2.2");
    g_assert_null(net_slirp_udp(r.user));
    slirp_rig_teardown(&r);
}

/*
 * The TOS of replies: libslirp 4.7 keeps the guest's first datagram's (its DNS rule,
 * IPTOS_LOWDELAY for port 53, never matches a new UDP socket: udp_tos() runs before the
 * socket has a foreign port), also for a guest port 53.
 */
static void test_reply_tos_is_the_guests(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    char buf[64];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    const uint8_t *f;
    size_t len;

    slirp_rig_setup(&r, NULL);
    guest_send(&r, 53, port, 0x28);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
    g_assert_cmpint(n, ==, 4);
    g_assert_cmpint(sendto(fd, buf, n, 0, (struct sockaddr *)&from, flen), ==, n);
    g_assert_true(slirp_rig_wait(&r, r.frames->len + 1, 3000));
    g_assert_cmpuint(r.udp, ==, 1);
    f = slirp_rig_frame(&r, r.frames->len - 1, &len);
    g_assert_cmpuint(len, >=, SLIRP_TEST_DATA);
    g_assert_cmpuint(f[SLIRP_TEST_ETH + 1], ==, 0x28); /* the IP header's TOS */
    g_assert_cmpuint(f[SLIRP_TEST_UDP + 2] << 8 | f[SLIRP_TEST_UDP + 3], ==, 53);
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * A flow paused (the NIC's queue full) whose socket has a pending error but nothing in
 * its error queue (the ICMP error found the receive buffer full, so the kernel set only
 * sk_err): poll reports POLLERR even with no events asked for, and the source must not
 * be dispatched again and again (100% CPU of the main loop until the guest reads).
 */
static void test_paused_flow_error_does_not_spin(void)
{
    SlirpRig r = { 0 };
    uint16_t port, closed;
    int fd = slirp_test_host_socket(&port);
    int gone = slirp_test_host_socket(&closed);
    char buf[1000] = { 0 };
    struct sockaddr_in flow;
    socklen_t flen = sizeof(flow);
    unsigned dispatches = 0;

    close(gone); /* nobody listens on 127.0.0.1:closed */
    slirp_rig_setup(&r, NULL);
    guest_send(&r, 4000, port, 0);
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
    guest_send(&r, 4000, closed, 0);
    g_usleep(20 * 1000);
    for (unsigned i = 0; i < 200; i++) {
        dispatches += g_main_context_iteration(r.m.ctx, FALSE);
    }
    g_assert_cmpuint(dispatches, <=, 2);

    r.nic_full = false;
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * Idle expiry follows the virtual clock, as libslirp's (its curtime is the clock Sen
 * gives it): a VM stopped for longer than the idle time keeps its guest endpoints' host
 * ports.
 */
static void test_expiry_stops_with_the_vm(void)
{
    SlirpRig r = { .realtime_clock = true };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    char buf[16];

    slirp_rig_setup(&r, NULL);
    guest_send(&r, 4001, port, 0);
    g_assert_cmpint(recv(fd, buf, sizeof(buf), 0), ==, 4);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 1);

    machine_lock(&r.m);
    virt_clock_stop(r.m.clock); /* the VM stops */
    machine_unlock(&r.m);
    g_assert_cmpuint(flows_after_idle(&r), ==, 1);

    machine_lock(&r.m);
    virt_clock_start(r.m.clock);
    machine_unlock(&r.m);
    g_assert_cmpuint(flows_after_idle(&r), ==, 0);
    close(fd);
    slirp_rig_teardown(&r);
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
    int fd = slirp_test_host_socket(&unused);
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
    SlirpRig r = { 0 };
    Error *err = NULL;
    uint16_t p1 = slirp_test_free_port(), p2 = slirp_test_free_port(), unused;
    int fd = slirp_test_host_socket(&unused);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(p1) };
    GPollFD fds[64];
    gint prio, timeout;
    g_autofree char *opts = g_strdup_printf("hostfwd=udp:127.0.0.1:%u-:5555", p1);

    slirp_rig_setup(&r, opts);

    /* One iteration by hand: the rule's socket has input when the loop polls. */
    g_assert_true(g_main_context_acquire(r.m.ctx));
    g_main_context_prepare(r.m.ctx, &prio);
    int n = g_main_context_query(r.m.ctx, prio, &timeout, fds, G_N_ELEMENTS(fds));
    g_assert_cmpint(n, <=, (int)G_N_ELEMENTS(fds));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(sendto(fd, "hi", 2, 0, (struct sockaddr *)&to, sizeof(to)), ==, 2);
    g_assert_cmpint(g_poll(fds, n, 1000), >, 0);
    g_assert_true(g_main_context_check(r.m.ctx, prio, fds, n));
    g_autofree char *rule = g_strdup_printf("udp:127.0.0.1:%u-:6666", p2);
    machine_lock(&r.m);
    g_assert_true(net_slirp_hostfwd_add(&r.m, rule, &err));
    machine_unlock(&r.m);
    g_assert_null(err);
    LateSend late = { p2, 1500 * 1000 };
    GThread *th = g_thread_new("late", late_send, &late);
    gint64 start = g_get_monotonic_time();
    g_main_context_dispatch(r.m.ctx);
    gint64 took = g_get_monotonic_time() - start;
    g_main_context_release(r.m.ctx);
    g_thread_join(th);
    g_assert_cmpint(took, <, 500 * 1000);
    g_assert_cmpuint(r.udp, >=, 1); /* "hi" reached the guest side */

    close(fd);
    slirp_rig_teardown(&r);
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
