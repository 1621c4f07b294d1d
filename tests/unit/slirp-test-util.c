/* See slirp-test-util.h. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "sen/keyval.h"
#include "sen/timer.h"
#include "slirp-test-util.h"

const uint8_t slirp_test_guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static ssize_t rig_nic_receive(NetClientState *nc, const struct iovec *iov, int iovcnt)
{
    SlirpRig *r = nc->opaque;
    GByteArray *f = g_byte_array_new();

    for (int i = 0; i < iovcnt; i++) {
        g_byte_array_append(f, iov[i].iov_base, (guint)iov[i].iov_len);
    }
    g_assert_cmpuint(f->len, >=, 14);
    r->arp += f->data[12] == 0x08 && f->data[13] == 0x06;
    r->udp += f->len >= 24 && f->data[12] == 0x08 && f->data[13] == 0x00 &&
              f->data[14 + 9] == 17;
    g_ptr_array_add(r->frames, f);
    return (ssize_t)f->len;
}

static bool rig_nic_can_receive(NetClientState *nc)
{
    return !((SlirpRig *)nc->opaque)->nic_full;
}

static const NetClientInfo rig_nic_info = {
    .type = "test",
    .receive = rig_nic_receive,
    .can_receive = rig_nic_can_receive,
};

static void frame_free(gpointer f)
{
    g_byte_array_unref(f);
}

void slirp_rig_setup(SlirpRig *r, const char *opts)
{
    static const uint8_t arp[42] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,            /* Ethernet/IPv4, request */
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15,    /* from the guest */
        0, 0, 0, 0, 0, 0, 10, 0, 2, 2,                       /* who has 10.0.2.2 */
    };
    Error *err = NULL;
    g_autofree char *all = g_strdup_printf("type=user,id=u0,ipv6=off%s%s",
                                           opts ? "," : "", opts ? opts : "");

    g_mutex_init(&r->m.lock);
    r->m.ctx = g_main_context_new();
    r->m.clock = virt_clock_new(!r->realtime_clock);
    r->frames = g_ptr_array_new_with_free_func(frame_free);
    g_autoptr(Keyval) kv = keyval_parse(all, NULL, &err);
    g_assert_null(err);
    g_assert_true(net_netdev_add(&r->m, kv, "-netdev", &err));
    g_assert_null(err);
    r->user = g_ptr_array_index(net_netdev_find(&r->m, "u0"), 0);
    r->nic = net_client_new(NULL, &rig_nic_info, "test", "nic", 0);
    r->nic->opaque = r;
    net_link(r->nic, r->user);

    for (unsigned i = 0; i < 100 && g_main_context_iteration(r->m.ctx, FALSE); i++) {
    }
    slirp_rig_send(r, arp, sizeof(arp)); /* libslirp learns our MAC */
    g_assert_cmpuint(r->arp, ==, 1);
}

void slirp_rig_teardown(SlirpRig *r)
{
    net_client_free(r->nic);
    net_cleanup(&r->m);
    g_ptr_array_free(r->frames, TRUE);
    virt_clock_free(r->m.clock);
    g_main_context_unref(r->m.ctx);
    g_mutex_clear(&r->m.lock);
}

void slirp_rig_send(SlirpRig *r, const void *frame, size_t len)
{
    machine_lock(&r->m);
    g_assert_true(net_send_buf(r->nic, frame, len));
    machine_unlock(&r->m);
}

bool slirp_rig_wait(SlirpRig *r, unsigned frames, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (r->frames->len < frames && g_get_monotonic_time() < end) {
        if (!g_main_context_iteration(r->m.ctx, FALSE)) {
            g_usleep(500);
        }
    }
    return r->frames->len >= frames;
}

void slirp_rig_run(SlirpRig *r, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (g_get_monotonic_time() < end) {
        if (!g_main_context_iteration(r->m.ctx, FALSE)) {
            g_usleep(500);
        }
    }
}

const uint8_t *slirp_rig_frame(SlirpRig *r, unsigned i, size_t *len)
{
    GByteArray *f;

    g_assert_cmpuint(i, <, r->frames->len);
    f = g_ptr_array_index(r->frames, i);
    *len = f->len;
    return f->data;
}

SlirpUdpStats slirp_rig_udp_stats(SlirpRig *r)
{
    SlirpUdpStats st;

    machine_lock(&r->m);
    slirp_udp_stats(net_slirp_udp(r->user), &st);
    machine_unlock(&r->m);
    return st;
}

void slirp_rig_udp_expire_idle(SlirpRig *r, gint64 idle_us, gint64 dns_idle_us)
{
    machine_lock(&r->m);
    slirp_udp_expire_idle(net_slirp_udp(r->user), idle_us, dns_idle_us);
    machine_unlock(&r->m);
}

uint16_t slirp_test_csum(const void *buf, size_t len, uint32_t sum)
{
    const uint8_t *p = buf;

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

void slirp_test_ip_csum(uint8_t *frame)
{
    uint8_t *ip = frame + SLIRP_TEST_ETH;
    size_t hlen = (ip[0] & 0xf) * 4u;

    ip[10] = ip[11] = 0;
    uint16_t sum = slirp_test_csum(ip, hlen, 0);
    ip[10] = sum >> 8;
    ip[11] = sum & 0xff;
}

void slirp_test_udp_csum(uint8_t *frame)
{
    uint8_t *ip = frame + SLIRP_TEST_ETH;
    uint8_t *udp = ip + (ip[0] & 0xf) * 4u;
    size_t ulen = (size_t)(udp[4] << 8 | udp[5]);
    uint8_t pseudo[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, udp[4], udp[5] };

    memcpy(pseudo, ip + 12, 8);
    udp[6] = udp[7] = 0;
    uint16_t sum = slirp_test_csum(udp, ulen, (uint16_t)~slirp_test_csum(pseudo, 12, 0));
    if (sum == 0) {
        sum = 0xffff;
    }
    udp[6] = sum >> 8;
    udp[7] = sum & 0xff;
}

void slirp_test_set_tos(uint8_t *frame, uint8_t tos)
{
    frame[SLIRP_TEST_ETH + 1] = tos;
    slirp_test_ip_csum(frame);
}

size_t slirp_test_udp_frame(uint8_t *f, uint16_t sport, uint16_t dport, uint8_t ttl,
                            const void *payload, size_t len)
{
    static const uint8_t hdr[SLIRP_TEST_UDP] = {
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
        0x45, 0, 0, 0, 0, 1, 0, 0, 0, 17, 0, 0,               /* IPv4, UDP */
        10, 0, 2, 15, 10, 0, 2, 2,                            /* guest -> gateway */
    };
    uint8_t *udp = f + SLIRP_TEST_UDP;

    g_assert_cmpuint(len, <=, 65535 - 28);
    memcpy(f, hdr, sizeof(hdr));
    f[16] = (uint8_t)((20 + 8 + len) >> 8);
    f[17] = (uint8_t)(20 + 8 + len);
    f[22] = ttl;
    udp[0] = sport >> 8;
    udp[1] = sport & 0xff;
    udp[2] = dport >> 8;
    udp[3] = dport & 0xff;
    udp[4] = (uint8_t)((8 + len) >> 8);
    udp[5] = (uint8_t)(8 + len);
    memcpy(udp + 8, payload, len);
    slirp_test_ip_csum(f);
    slirp_test_udp_csum(f);
    return SLIRP_TEST_DATA + len;
}

int slirp_test_host_socket(uint16_t *port)
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

uint16_t slirp_test_free_port(void)
{
    uint16_t port;

    close(slirp_test_host_socket(&port));
    return port;
}
