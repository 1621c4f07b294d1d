/*
 * net/slirp-udp.c, -netdev user's own path for guest UDP to the host alias: a user
 * netdev with a fake NIC (slirp-test-util.h) as the guest side and real UDP sockets on
 * 127.0.0.1 as the host side.  Frames go in with the VM lock held, as a NIC sends them;
 * replies come out of main-loop iterations.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <glib.h>
#include "net/net-internal.h"
#include "sen/net.h"
#include "slirp-test-util.h"

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Payload byte j of datagram i: each datagram has its own. */
static void fill(uint8_t *buf, size_t len, unsigned i)
{
    for (size_t j = 0; j < len; j++) {
        buf[j] = (uint8_t)(i * 31 + j * 7 + 1);
    }
}

/* The guest sends len bytes (fill(.., i)) from sport to 10.0.2.2:dport, TTL 64. */
static void guest_send(SlirpRig *r, uint16_t sport, uint16_t dport, size_t len, unsigned i)
{
    static uint8_t f[SLIRP_TEST_DATA + 65536], payload[65536];

    fill(payload, len, i);
    slirp_rig_send(r, f, slirp_test_udp_frame(f, sport, dport, 64, payload, len));
}

/* The next datagram on fd is len bytes of fill(.., i); its sender's port (host order). */
static uint16_t host_expect(int fd, size_t len, unsigned i)
{
    static uint8_t buf[65536], want[65536];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);

    g_assert_cmpint(n, ==, (ssize_t)len);
    fill(want, len, i);
    g_assert_cmpmem(buf, len, want, len);
    g_assert_cmpuint(from.sin_addr.s_addr, ==, htonl(INADDR_LOOPBACK));
    return ntohs(from.sin_port);
}

/* Nothing waits on fd. */
static void host_expect_none(int fd)
{
    char buf[16];

    g_assert_cmpint(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), ==, -1);
    g_assert_cmpint(errno, ==, EAGAIN);
}

/*
 * A NIC tx burst (batch begin .. flush .. end): n datagrams of len bytes (fill(.., i0 + k))
 * from sport to 10.0.2.2:dport, datagram k with TTL ttls[k] (64 when ttls is NULL); when
 * held_fd >= 0, nothing reached that host socket before the flush.
 */
static void guest_batch(SlirpRig *r, uint16_t sport, uint16_t dport, const uint8_t *ttls,
                        unsigned n, size_t len, unsigned i0, int held_fd)
{
    static uint8_t f[SLIRP_TEST_DATA + 1472], payload[1472];

    g_assert_cmpuint(len, <=, sizeof(payload));
    machine_lock(&r->m);
    net_send_batch_begin(r->nic);
    for (unsigned k = 0; k < n; k++) {
        fill(payload, len, i0 + k);
        size_t flen = slirp_test_udp_frame(f, sport, dport, ttls ? ttls[k] : 64, payload, len);
        g_assert_true(net_send_buf(r->nic, f, flen));
    }
    if (held_fd >= 0) {
        host_expect_none(held_fd);
    }
    net_send_flush(r->nic);
    net_send_batch_end(r->nic);
    machine_unlock(&r->m);
}

/*
 * A tx burst of the NIC (batch begin .. flush): what the guest sent to the alias stays
 * queued until the flush, then leaves in order, same-size datagrams as GSO sends.
 */
static void test_batch(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    const unsigned n = 40;

    slirp_rig_setup(&r, NULL);
    guest_batch(&r, 5000, port, NULL, n, 300, 0, fd);

    uint16_t from = host_expect(fd, 300, 0);
    for (unsigned i = 1; i < n; i++) {
        g_assert_cmpuint(host_expect(fd, 300, i), ==, from);
    }
    host_expect_none(fd);
    SlirpUdpStats st = slirp_rig_udp_stats(&r);
    g_assert_cmpuint(st.sent, ==, n);
    g_assert_cmpuint(st.gso_sends, >=, 1);
    g_assert_cmpuint(st.flows, ==, 1);
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * Datagram boundaries inside a burst: a shorter one ends a GSO run, an empty one and a
 * change of destination port or guest port go on their own; each arrives as the guest
 * sent it, at its port, from its guest port's host socket.
 */
static void test_boundaries(void)
{
    static const struct {
        unsigned guest;    /* 0 or 1: which guest port */
        unsigned port;     /* 0 or 1: which host socket */
        size_t len;
    } seq[] = {
        { 0, 0, 100 }, { 0, 0, 100 }, { 0, 0, 100 }, { 0, 0, 37 }, { 0, 0, 100 },
        { 0, 0, 100 }, { 0, 0, 0 }, { 0, 1, 100 }, { 0, 1, 100 }, { 0, 0, 100 },
        { 0, 0, 100 }, { 0, 1, 100 }, { 0, 1, 50 }, { 0, 0, 1 }, { 0, 1, 1472 },
        { 1, 0, 100 }, { 1, 0, 100 }, { 0, 0, 100 }, { 0, 0, 100 }, { 1, 0, 100 },
        /* as many as fit one IP datagram go together: three, then the fourth */
        { 1, 0, 20000 }, { 1, 0, 20000 }, { 1, 0, 20000 }, { 1, 0, 20000 },
        { 1, 1, 65494 }, { 1, 1, 65494 }, { 1, 1, 1 }, /* NET_MAX_FRAME */
    };
    SlirpRig r = { 0 };
    uint16_t port[2], from[2] = { 0, 0 };
    int fd[2] = { slirp_test_host_socket(&port[0]), slirp_test_host_socket(&port[1]) };

    slirp_rig_setup(&r, NULL);
    machine_lock(&r.m);
    net_send_batch_begin(r.nic);
    machine_unlock(&r.m);
    for (unsigned i = 0; i < G_N_ELEMENTS(seq); i++) {
        guest_send(&r, 5001 + 10 * seq[i].guest, port[seq[i].port], seq[i].len, i);
    }
    machine_lock(&r.m);
    net_send_batch_end(r.nic);
    machine_unlock(&r.m);

    for (unsigned i = 0; i < G_N_ELEMENTS(seq); i++) {
        uint16_t p = host_expect(fd[seq[i].port], seq[i].len, i);
        if (!from[seq[i].guest]) {
            from[seq[i].guest] = p;
        }
        g_assert_cmpuint(p, ==, from[seq[i].guest]);
    }
    g_assert_cmpuint(from[0], !=, from[1]);
    host_expect_none(fd[0]);
    host_expect_none(fd[1]);
    SlirpUdpStats st = slirp_rig_udp_stats(&r);
    g_assert_cmpuint(st.sent, ==, G_N_ELEMENTS(seq));
    g_assert_cmpuint(st.flows, ==, 2);
    /* The runs sent together: 0-3, 4-5, 7-8, 9-10, 11-12, 15-16, 17-18, 20-22, 25-26. */
    if (!st.gso_off) {
        g_assert_cmpuint(st.gso_sends, ==, 9);
    }
    close(fd[0]);
    close(fd[1]);
    slirp_rig_teardown(&r);
}

/* Checks frame i is an IPv4 frame from the alias to the guest: its IP header. */
static const uint8_t *expect_ip_frame(SlirpRig *r, unsigned i, uint8_t proto, size_t *len)
{
    const uint8_t *f = slirp_rig_frame(r, i, len);
    static const uint8_t alias_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
    static const uint8_t alias[4] = { 10, 0, 2, 2 }, guest[4] = { 10, 0, 2, 15 };

    g_assert_cmpuint(*len, >=, SLIRP_TEST_UDP);
    g_assert_cmpmem(f, 6, slirp_test_guest_mac, 6);
    g_assert_cmpmem(f + 6, 6, alias_mac, 6);
    g_assert_cmpuint(rd16(f + 12), ==, 0x0800);
    const uint8_t *ip = f + SLIRP_TEST_ETH;
    g_assert_cmpuint(ip[0], ==, 0x45);
    g_assert_cmpuint(ip[9], ==, proto);
    g_assert_cmpuint(rd16(ip + 2), ==, *len - SLIRP_TEST_ETH);
    g_assert_cmpuint(slirp_test_csum(ip, 20, 0), ==, 0);
    g_assert_cmpmem(ip + 12, 4, alias, 4);
    g_assert_cmpmem(ip + 16, 4, guest, 4);
    return ip;
}

/* The UDP checksum of a datagram (header and payload) from the alias to the guest. */
static uint16_t udp_csum(const uint8_t *udp, size_t len)
{
    uint8_t pseudo[12] = { 10, 0, 2, 2, 10, 0, 2, 15, 0, 17, (uint8_t)(len >> 8),
                           (uint8_t)len };

    return slirp_test_csum(udp, len, (uint16_t)~slirp_test_csum(pseudo, 12, 0));
}

/*
 * A host socket answering the guest's datagram: the reply reaches the NIC from the
 * alias's port to the guest's, checksums right; one longer than the guest MTU comes in
 * IP fragments that put together give the payload.
 */
static void test_replies(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    static uint8_t buf[65507], got[65515];
    struct sockaddr_in flow;
    socklen_t flen = sizeof(flow);
    size_t len;

    slirp_rig_setup(&r, NULL);
    guest_send(&r, 4321, port, 10, 0);
    g_assert_cmpint(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&flow, &flen), ==,
                    10);
    unsigned base = r.frames->len;

    fill(buf, 101, 1);
    g_assert_cmpint(sendto(fd, buf, 101, 0, (struct sockaddr *)&flow, flen), ==, 101);
    g_assert_true(slirp_rig_wait(&r, base + 1, 3000));
    slirp_rig_run(&r, 20);
    g_assert_cmpuint(r.frames->len, ==, base + 1);
    const uint8_t *ip = expect_ip_frame(&r, base, 17, &len);
    const uint8_t *udp = ip + 20;
    g_assert_cmpuint(len, ==, SLIRP_TEST_DATA + 101);
    g_assert_cmpuint(rd16(ip + 6) & 0x3fff, ==, 0);
    g_assert_cmpuint(rd16(udp), ==, port);
    g_assert_cmpuint(rd16(udp + 2), ==, 4321);
    g_assert_cmpuint(rd16(udp + 4), ==, 109);
    g_assert_cmpuint(rd16(udp + 6), !=, 0);
    g_assert_cmpuint(udp_csum(udp, 109), ==, 0);
    g_assert_cmpmem(udp + 8, 101, buf, 101);

    /* Longer than the MTU: fragments of 1480 bytes of UDP but the last, one IP id;
     * odd lengths (the checksum's last byte), up to the largest datagram. */
    static const size_t sizes[] = { 3999, 65507 };
    for (unsigned s = 0; s < G_N_ELEMENTS(sizes); s++) {
        size_t plen = sizes[s], ulen = 8 + plen, nfrag = (ulen + 1479) / 1480;
        size_t off = 0;
        uint16_t id = 0;

        base = r.frames->len;
        fill(buf, plen, 2 + s);
        g_assert_cmpint(sendto(fd, buf, plen, 0, (struct sockaddr *)&flow, flen), ==,
                        (ssize_t)plen);
        g_assert_true(slirp_rig_wait(&r, base + nfrag, 3000));
        slirp_rig_run(&r, 20);
        g_assert_cmpuint(r.frames->len, ==, base + nfrag);
        for (unsigned k = 0; k < nfrag; k++) {
            ip = expect_ip_frame(&r, base + k, 17, &len);
            size_t n = len - SLIRP_TEST_ETH - 20;
            uint16_t frag = rd16(ip + 6);
            g_assert_cmpuint(frag & 0x1fff, ==, off / 8);
            g_assert_cmpuint(!!(frag & 0x2000), ==, k + 1 < nfrag);
            g_assert_cmpuint(frag & 0x4000, ==, 0);
            g_assert_cmpuint(n, ==, k + 1 < nfrag ? 1480 : ulen - off);
            if (k == 0) {
                id = rd16(ip + 4);
            }
            g_assert_cmpuint(rd16(ip + 4), ==, id);
            g_assert_cmpuint(off + n, <=, sizeof(got));
            memcpy(got + off, ip + 20, n);
            off += n;
        }
        g_assert_cmpuint(off, ==, ulen);
        g_assert_cmpuint(rd16(got), ==, port);
        g_assert_cmpuint(rd16(got + 2), ==, 4321);
        g_assert_cmpuint(rd16(got + 4), ==, ulen);
        g_assert_cmpuint(udp_csum(got, ulen), ==, 0);
        g_assert_cmpmem(got + 8, plen, buf, plen);
    }
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * Refusals: frames the fast path must leave to libslirp.  Each is sent from a guest port
 * whose flow is open (a right datagram first), so whatever the host gets of it must not
 * come from that flow's socket; libslirp drops most of them, reassembles or strips
 * others (then they come from its own socket).
 */
typedef enum {
    BAD_UDP_CSUM, BAD_IP_CSUM, IP_LEN_OVER_FRAME, UDP_LEN_OVER_IP, UDP_LEN_UNDER_8,
    FRAG_MF, FRAG_OFFSET, WITH_IP_OPTIONS, SHORT_FRAME, NOT_IPV4, REFUSALS
} Refusal;

/*
 * A right datagram from sport (16) to 10.0.2.2:dport, no UDP checksum, behind an IP
 * header with 4 bytes of options, made so that read as if the IP header had none it is
 * right too: the options (two words summing to zero) leave the first 20 bytes' IP
 * checksum right, and as UDP they are the ports (7000 to 58535), followed by length
 * sport, checksum dport, which the payload's first word makes right.  A path that
 * overlooked the options would send 8 bytes from guest port 7000 to port 58535.
 */
static size_t options_frame(uint8_t *f, uint16_t sport, uint16_t dport)
{
    static const uint8_t payload[64] = { 'o', 'p', 't' };
    static const uint8_t pseudo[12] = { 10, 0, 2, 15, 10, 0, 2, 2, 0, 17, 0, 16 };
    size_t len = slirp_test_udp_frame(f, sport, dport, 64, payload, sizeof(payload));
    uint8_t *ip = f + SLIRP_TEST_ETH, *opt = f + SLIRP_TEST_UDP;
    const uint16_t w1 = 7000, w2 = (uint16_t)~w1;

    g_assert_cmpuint(sport, ==, 16);
    memmove(opt + 4, opt, len - SLIRP_TEST_UDP);
    opt[0] = w1 >> 8;
    opt[1] = w1 & 0xff;
    opt[2] = w2 >> 8;
    opt[3] = w2 & 0xff;
    opt[10] = opt[11] = 0; /* the real UDP checksum: none */
    opt[12] = opt[13] = 0;
    uint16_t fix = slirp_test_csum(opt, 16, (uint16_t)~slirp_test_csum(pseudo, 12, 0));
    opt[12] = fix >> 8;
    opt[13] = fix & 0xff;
    ip[0] = 0x46;
    ip[3] += 4;
    slirp_test_ip_csum(f);
    g_assert_cmpuint(slirp_test_csum(ip, 20, 0), ==, 0);
    return len + 4;
}

/* A frame from sport to 10.0.2.2:dport, spoilt as r says; its length. */
static size_t spoilt_frame(uint8_t *f, Refusal how, uint16_t sport, uint16_t dport)
{
    static const uint8_t payload[64] = { 'b', 'a', 'd' };
    size_t len = slirp_test_udp_frame(f, sport, dport, 64, payload, sizeof(payload));
    uint8_t *ip = f + SLIRP_TEST_ETH, *udp = f + SLIRP_TEST_UDP;

    switch (how) {
    case BAD_UDP_CSUM:
        udp[7] ^= 0x10;
        if (!udp[6] && !udp[7]) {
            udp[6] = 0x10;
        }
        return len;
    case BAD_IP_CSUM:
        ip[10] ^= 0x01;
        return len;
    case IP_LEN_OVER_FRAME:
        ip[3] += 8;
        break;
    case UDP_LEN_OVER_IP:
        udp[5] += 8;
        break;
    case UDP_LEN_UNDER_8:
        udp[4] = 0;
        udp[5] = 4;
        break;
    case FRAG_MF:
        ip[6] = 0x20;
        break;
    case FRAG_OFFSET:
        ip[7] = 0x10;
        break;
    case WITH_IP_OPTIONS:
        return options_frame(f, sport, dport);
    case SHORT_FRAME:
        return SLIRP_TEST_DATA - 1;
    case NOT_IPV4:
        f[12] = 0x88;
        f[13] = 0xb5; /* local experimental */
        return len;
    case REFUSALS:
        g_assert_not_reached();
    }
    udp[6] = udp[7] = 0; /* lengths: no UDP checksum to refuse it for */
    slirp_test_ip_csum(f);
    return len;
}

static void test_refusals(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    static uint8_t f[SLIRP_TEST_DATA + 128], buf[256];

    slirp_rig_setup(&r, NULL);
    for (Refusal how = 0; how < REFUSALS; how++) {
        uint16_t sport = how == WITH_IP_OPTIONS ? 16 : 6000 + how;
        struct sockaddr_in from;
        socklen_t flen = sizeof(from);

        guest_send(&r, sport, port, 8, how);
        uint16_t flow_port = host_expect(fd, 8, how);
        SlirpUdpStats before = slirp_rig_udp_stats(&r);
        unsigned frames = r.frames->len;

        slirp_rig_send(&r, f, spoilt_frame(f, how, sport, port));
        slirp_rig_run(&r, 20);
        SlirpUdpStats after = slirp_rig_udp_stats(&r);
        g_assert_cmpuint(after.sent, ==, before.sent);
        g_assert_cmpuint(after.dropped, ==, before.dropped);
        g_assert_cmpuint(after.flows, ==, before.flows);
        /* Nothing to the guest either (libslirp answers a UDP length under 8 with
         * "network unreachable": its sendto of a negative length fails). */
        g_assert_cmpuint(r.frames->len, ==, frames + (how == UDP_LEN_UNDER_8));
        if (how == UDP_LEN_UNDER_8) {
            /* libslirp's own: it quotes the guest's IP header (its id) and the 4
             * bytes of UDP header the length leaves (the fast path taking it would
             * send a huge datagram, and quote headers of its own). */
            size_t len;
            const uint8_t *ip = expect_ip_frame(&r, frames, IPPROTO_ICMP, &len);
            g_assert_cmpuint(len, ==, SLIRP_TEST_ETH + 20 + 8 + 20 + 4);
            g_assert_cmpmem(ip + 20 + 8 + 4, 2, f + SLIRP_TEST_ETH + 4, 2);
            g_assert_cmpmem(ip + 20 + 8 + 20, 4, f + SLIRP_TEST_UDP, 4);
        }
        ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
                             &flen);
        if (n >= 0) {
            /* libslirp's, from its own socket for the guest port */
            g_test_message("refusal %d: %zd bytes from libslirp", how, n);
            g_assert_cmpuint(ntohs(from.sin_port), !=, flow_port);
        }
        host_expect_none(fd);
    }
    close(fd);
    slirp_rig_teardown(&r);
}

/* restrict=on: no own path at all, and nothing reaches the host. */
static void test_restrict(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);

    slirp_rig_setup(&r, "restrict=on");
    g_assert_null(net_slirp_udp(r.user));
    guest_send(&r, 5002, port, 8, 0);
    slirp_rig_run(&r, 50);
    host_expect_none(fd);
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * Bytes past the datagram are not its own: Ethernet padding after the IP datagram, IP
 * payload after the UDP length (libslirp trims both).
 */
static void test_trailing_bytes(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    uint8_t f[SLIRP_TEST_DATA + 64], payload[16];

    slirp_rig_setup(&r, NULL);
    fill(payload, 1, 0);
    size_t len = slirp_test_udp_frame(f, 5008, port, 64, payload, 1);
    memset(f + len, 0xee, 60 - len);
    slirp_rig_send(&r, f, 60);
    host_expect(fd, 1, 0);

    fill(payload, 16, 1);
    len = slirp_test_udp_frame(f, 5008, port, 64, payload, 16);
    f[SLIRP_TEST_UDP + 5] = 8 + 10; /* UDP says 10 bytes of the IP payload's 16 */
    slirp_test_udp_csum(f);
    slirp_rig_send(&r, f, len);
    host_expect(fd, 10, 1);
    host_expect_none(fd);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 2);
    close(fd);
    slirp_rig_teardown(&r);
}

/* The next datagram on fd (IP_RECVTTL on) is len bytes: the TTL it arrived with. */
static int host_recv_ttl(int fd, size_t len)
{
    uint8_t buf[256];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctrl;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf),
    };
    int ttl = -1;

    g_assert_cmpint(recvmsg(fd, &mh, 0), ==, (ssize_t)len);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_TTL) {
            memcpy(&ttl, CMSG_DATA(c), sizeof(ttl));
        }
    }
    return ttl;
}

/*
 * The host sees the guest's TTL less one, also where TTLs change inside a burst (a GSO
 * send has one); TTL 1 is libslirp's, which answers "time exceeded" to the guest.
 */
static void test_ttl(void)
{
    static const uint8_t ttls[] = { 64, 64, 10, 10, 64, 2 };
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    int on = 1;
    size_t len;

    g_assert_cmpint(setsockopt(fd, SOL_IP, IP_RECVTTL, &on, sizeof(on)), ==, 0);
    slirp_rig_setup(&r, NULL);
    guest_batch(&r, 5002, port, ttls, G_N_ELEMENTS(ttls), 8, 0, -1);
    for (unsigned i = 0; i < G_N_ELEMENTS(ttls); i++) {
        g_assert_cmpint(host_recv_ttl(fd, 8), ==, ttls[i] - 1);
    }
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, G_N_ELEMENTS(ttls));

    unsigned base = r.frames->len;
    guest_batch(&r, 5002, port, (const uint8_t[]){ 1 }, 1, 8, 0, -1);
    slirp_rig_run(&r, 20);
    host_expect_none(fd);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, G_N_ELEMENTS(ttls));
    g_assert_true(slirp_rig_wait(&r, base + 1, 3000));
    g_assert_cmpuint(r.frames->len, ==, base + 1);
    const uint8_t *ip = expect_ip_frame(&r, base, IPPROTO_ICMP, &len);
    g_assert_cmpuint(ip[20], ==, 11); /* time exceeded */
    g_assert_cmpuint(ip[21], ==, 0);  /* in transit */
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * A datagram to a closed port of the host: the guest gets "port unreachable" from the
 * alias, quoting the IP and UDP headers of what it sent.
 */
static void test_icmp_port_unreachable(void)
{
    static const uint8_t addrs[8] = { 10, 0, 2, 15, 10, 0, 2, 2 };
    SlirpRig r = { 0 };
    uint16_t closed = slirp_test_free_port();
    size_t len;

    slirp_rig_setup(&r, NULL);
    unsigned base = r.frames->len;
    guest_send(&r, 5004, closed, 16, 0);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 1);
    g_assert_true(slirp_rig_wait(&r, base + 1, 3000));
    g_assert_cmpuint(r.frames->len, ==, base + 1);
    const uint8_t *ip = expect_ip_frame(&r, base, IPPROTO_ICMP, &len);
    const uint8_t *icmp = ip + 20, *quote = icmp + 8;
    g_assert_cmpuint(len, >=, SLIRP_TEST_ETH + 20 + 8 + 20 + 8);
    g_assert_cmpuint(icmp[0], ==, 3); /* destination unreachable */
    g_assert_cmpuint(icmp[1], ==, 3); /* port */
    g_assert_cmpuint(slirp_test_csum(icmp, len - SLIRP_TEST_ETH - 20, 0), ==, 0);
    g_assert_cmpuint(quote[0], ==, 0x45);
    g_assert_cmpuint(quote[9], ==, IPPROTO_UDP);
    g_assert_cmpmem(quote + 12, 8, addrs, 8);
    g_assert_cmpuint(rd16(quote + 20), ==, 5004);
    g_assert_cmpuint(rd16(quote + 22), ==, closed);
    slirp_rig_teardown(&r);
}

/* hostfwd_add or hostfwd_remove of the rule (fmt with one %u: port), as the monitor. */
static void hostfwd(SlirpRig *r, bool add, const char *fmt, uint16_t port)
{
    g_autofree char *rule = g_strdup_printf(fmt, port);
    Error *err = NULL;

    machine_lock(&r->m);
    bool ok = add ? net_slirp_hostfwd_add(&r->m, rule, &err) :
                    net_slirp_hostfwd_remove(&r->m, rule, &err);
    machine_unlock(&r->m);
    g_assert_null(err);
    g_assert_true(ok);
}

/*
 * A guest endpoint a udp hostfwd rule forwards to talks to the host from the rule's
 * host port, as with libslirp: from a -netdev rule, no more after hostfwd_remove, and
 * from a rule hostfwd_add makes after the endpoint had talked already.
 */
static void test_hostfwd(void)
{
    SlirpRig r = { 0 };
    uint16_t port, h1 = slirp_test_free_port(), h2 = slirp_test_free_port();
    int fd = slirp_test_host_socket(&port);
    g_autofree char *opts = g_strdup_printf("hostfwd=udp:127.0.0.1:%u-:6000", h1);

    slirp_rig_setup(&r, opts);
    guest_send(&r, 6000, port, 10, 0);
    g_assert_cmpuint(host_expect(fd, 10, 0), ==, h1);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 1);
    hostfwd(&r, false, "udp:127.0.0.1:%u", h1);
    guest_send(&r, 6000, port, 10, 1);
    g_assert_cmpuint(host_expect(fd, 10, 1), !=, h1);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 2);

    guest_send(&r, 6001, port, 10, 2);
    g_assert_cmpuint(host_expect(fd, 10, 2), !=, h2);
    hostfwd(&r, true, "udp:127.0.0.1:%u-:6001", h2);
    guest_send(&r, 6001, port, 10, 3);
    g_assert_cmpuint(host_expect(fd, 10, 3), ==, h2);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 4);
    host_expect_none(fd);
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * More guest ports than the path keeps sockets for (256): the others go through
 * libslirp, and every datagram reaches the host.
 */
static void test_flow_limit(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);

    slirp_rig_setup(&r, NULL);
    for (unsigned i = 0; i < 300; i++) {
        guest_send(&r, (uint16_t)(10000 + i), port, 8, i);
        host_expect(fd, 8, i);
    }
    SlirpUdpStats st = slirp_rig_udp_stats(&r);
    g_assert_cmpuint(st.flows, ==, 256);
    g_assert_cmpuint(st.sent, ==, 256);
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * A port unreachable for one datagram does not cost the flow its next one: the error
 * the host's ICMP leaves pending on the socket (IP_RECVERR sets it) must not fail the
 * next send, which libslirp's sockets (no IP_RECVERR) would make.
 */
static void test_send_after_port_unreachable(void)
{
    SlirpRig r = { 0 };
    uint16_t port, closed = slirp_test_free_port();
    int fd = slirp_test_host_socket(&port);

    slirp_rig_setup(&r, NULL);
    unsigned base = r.frames->len;
    guest_send(&r, 5009, closed, 8, 0);
    guest_send(&r, 5009, port, 8, 1);      /* no main-loop iteration in between */
    host_expect(fd, 8, 1);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 2);
    /* The guest hears of the first only: port unreachable, not "network unreachable"
     * for the second. */
    g_assert_true(slirp_rig_wait(&r, base + 1, 3000));
    slirp_rig_run(&r, 20);
    g_assert_cmpuint(r.frames->len, ==, base + 1);
    size_t len;
    const uint8_t *ip = expect_ip_frame(&r, base, IPPROTO_ICMP, &len);
    g_assert_cmpuint(ip[20], ==, 3);
    g_assert_cmpuint(ip[21], ==, 3);
    g_assert_cmpuint(rd16(ip + 28 + 22), ==, closed);

    guest_batch(&r, 5009, closed, NULL, 1, 8, 2, -1);
    guest_batch(&r, 5009, port, NULL, 3, 8, 3, -1);
    for (unsigned i = 3; i < 6; i++) {
        host_expect(fd, 8, i);
    }
    g_assert_cmpuint(slirp_rig_udp_stats(&r).sent, ==, 6);
    close(fd);
    slirp_rig_teardown(&r);
}

/* Whether a UDP socket can bind 0.0.0.0:port (nobody holds it). */
static bool port_is_free(uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    close(fd);
    return ok;
}

/* Idle flows close, and the guest port's next datagram opens one again. */
static void test_expire(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);

    slirp_rig_setup(&r, NULL);
    guest_send(&r, 7100, port, 8, 0);
    uint16_t first = host_expect(fd, 8, 0);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 1);
    g_assert_false(port_is_free(first));
    slirp_rig_udp_expire_idle(&r, 0, 0);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 0);
    g_assert_true(port_is_free(first)); /* its socket closed */
    guest_send(&r, 7100, port, 8, 1);
    host_expect(fd, 8, 1);
    SlirpUdpStats st = slirp_rig_udp_stats(&r);
    g_assert_cmpuint(st.flows, ==, 1);
    g_assert_cmpuint(st.sent, ==, 2);
    close(fd);
    slirp_rig_teardown(&r);
}

/* Sends guest datagram i from sport to dport's host socket fd and answers it from there;
 * waits until the guest has the answer. */
static void ask_and_answer(SlirpRig *r, int fd, uint16_t sport, uint16_t dport, unsigned i)
{
    unsigned base = r->frames->len;
    struct sockaddr_in to = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

    guest_send(r, sport, dport, 8, i);
    to.sin_port = htons(host_expect(fd, 8, i));
    g_assert_cmpint(sendto(fd, "answer", 6, 0, (struct sockaddr *)&to, sizeof(to)), ==, 6);
    g_assert_true(slirp_rig_wait(r, base + 1, 3000));
}

/* As libslirp: a flow whose last datagram in was a DNS answer (from port 53) closes after
 * the short idle time, others (and one that sent again after its answer) after the long. */
static void test_dns_answer_expires_fast(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(53),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { .tv_sec = 5 };
    int dns = socket(AF_INET, SOCK_DGRAM, 0);
    SlirpRig r = { 0 };
    uint16_t port;

    if (bind(dns, (struct sockaddr *)&a, sizeof(a)) != 0) {
        g_test_skip("cannot bind 127.0.0.1:53 (needs root, and the port free)");
        close(dns);
        return;
    }
    setsockopt(dns, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int fd = slirp_test_host_socket(&port);
    slirp_rig_setup(&r, NULL);
    ask_and_answer(&r, dns, 7300, 53, 0);
    ask_and_answer(&r, fd, 7301, port, 1);
    ask_and_answer(&r, dns, 7302, 53, 2);
    guest_send(&r, 7302, 53, 8, 3); /* asks again: no longer just answered */
    host_expect(dns, 8, 3);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 3);
    slirp_rig_udp_expire_idle(&r, (gint64)3600 * G_USEC_PER_SEC, 0);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 2);  /* 7300's closed */
    guest_send(&r, 7300, 53, 8, 4);                          /* a new flow */
    host_expect(dns, 8, 4);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 3);
    slirp_rig_udp_expire_idle(&r, 0, (gint64)3600 * G_USEC_PER_SEC);
    g_assert_cmpuint(slirp_rig_udp_stats(&r).flows, ==, 0);
    close(fd);
    close(dns);
    slirp_rig_teardown(&r);
}

/* The kernel refuses GSO: every datagram still leaves, one by one, and so later. */
static void test_gso_refused(void)
{
    SlirpRig r = { 0 };
    uint16_t port;
    int fd = slirp_test_host_socket(&port);

    slirp_rig_setup(&r, NULL);
    slirp_udp_test_gso_errno = EIO;
    guest_batch(&r, 7200, port, NULL, 10, 100, 0, -1);
    slirp_udp_test_gso_errno = 0;
    for (unsigned i = 0; i < 10; i++) {
        host_expect(fd, 100, i);
    }
    SlirpUdpStats st = slirp_rig_udp_stats(&r);
    g_assert_true(st.gso_off);
    g_assert_cmpuint(st.gso_sends, ==, 0);
    g_assert_cmpuint(st.sent, ==, 10);
    guest_batch(&r, 7200, port, NULL, 10, 100, 10, -1);
    for (unsigned i = 10; i < 20; i++) {
        host_expect(fd, 100, i);
    }
    st = slirp_rig_udp_stats(&r);
    g_assert_cmpuint(st.gso_sends, ==, 0);
    g_assert_cmpuint(st.sent, ==, 20);
    host_expect_none(fd);
    close(fd);
    slirp_rig_teardown(&r);
}

/*
 * The NIC's queue is full: replies wait in the host socket (not read only to be
 * dropped) and reach the guest, all and in order, once the NIC takes frames again.
 */
static void test_nic_full(void)
{
    enum { REPLIES = 5 };
    SlirpRig r = { 0 };
    static const uint8_t junk[60];
    uint8_t want[50];
    uint16_t port;
    int fd = slirp_test_host_socket(&port);
    struct sockaddr_in to = { .sin_family = AF_INET };
    size_t len;

    slirp_rig_setup(&r, NULL);
    guest_send(&r, 7300, port, 8, 0);
    to.sin_port = htons(host_expect(fd, 8, 0));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    r.nic_full = true;
    machine_lock(&r.m);
    for (unsigned i = 0; i < NET_QUEUE_LIMIT; i++) {
        net_send_buf(r.user, junk, sizeof(junk));
    }
    g_assert_false(net_peer_has_room(r.user));
    machine_unlock(&r.m);
    for (unsigned i = 0; i < REPLIES; i++) {
        fill(want, sizeof(want), 100 + i);
        g_assert_cmpint(sendto(fd, want, sizeof(want), 0, (struct sockaddr *)&to, sizeof(to)),
                        ==, sizeof(want));
    }
    unsigned base = r.frames->len;
    slirp_rig_run(&r, 50);
    g_assert_cmpuint(r.frames->len, ==, base);

    r.nic_full = false;
    machine_lock(&r.m);
    net_client_flush(r.nic);
    machine_unlock(&r.m);
    base += NET_QUEUE_LIMIT;
    g_assert_true(slirp_rig_wait(&r, base + REPLIES, 3000));
    g_assert_cmpuint(r.frames->len, ==, base + REPLIES);
    for (unsigned i = 0; i < REPLIES; i++) {
        const uint8_t *ip = expect_ip_frame(&r, base + i, IPPROTO_UDP, &len);
        g_assert_cmpuint(len, ==, SLIRP_TEST_DATA + sizeof(want));
        g_assert_cmpuint(rd16(ip + 22), ==, 7300);
        fill(want, sizeof(want), 100 + i);
        g_assert_cmpmem(ip + 28, sizeof(want), want, sizeof(want));
    }
    close(fd);
    slirp_rig_teardown(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/slirp-udp/batch", test_batch);
    g_test_add_func("/slirp-udp/boundaries", test_boundaries);
    g_test_add_func("/slirp-udp/replies", test_replies);
    g_test_add_func("/slirp-udp/refusals", test_refusals);
    g_test_add_func("/slirp-udp/restrict", test_restrict);
    g_test_add_func("/slirp-udp/trailing-bytes", test_trailing_bytes);
    g_test_add_func("/slirp-udp/ttl", test_ttl);
    g_test_add_func("/slirp-udp/icmp-port-unreachable", test_icmp_port_unreachable);
    g_test_add_func("/slirp-udp/send-after-port-unreachable",
                    test_send_after_port_unreachable);
    g_test_add_func("/slirp-udp/hostfwd", test_hostfwd);
    g_test_add_func("/slirp-udp/flow-limit", test_flow_limit);
    g_test_add_func("/slirp-udp/expire", test_expire);
    g_test_add_func("/slirp-udp/dns-answer-expires-fast", test_dns_answer_expires_fast);
    g_test_add_func("/slirp-udp/gso-refused", test_gso_refused);
    g_test_add_func("/slirp-udp/nic-full", test_nic_full);
    return g_test_run();
}
