/* Private to net/: the backend table entries and helpers the backends share. */
#ifndef SEN_NET_NET_INTERNAL_H
#define SEN_NET_NET_INTERNAL_H

#include <netinet/in.h>
#include "sen/iov.h"
#include "sen/net.h"

extern const NetBackend net_user_backend;
extern const NetBackend net_hubport_backend;
extern const NetBackend net_socket_backend;
extern const NetBackend net_tap_backend;
extern const NetBackend net_bridge_backend;

/* net/tap.c: opens a TAP (name_out gets its name, IFNAMSIZ bytes), one queue of it with
 * multi_queue; -1 on error. */
int net_tap_open(const char *ifname, bool want_vnet_hdr, bool multi_queue, bool *vnet_hdr,
                 char *name_out, const char *what, Error **errp);
/* Makes an open TAP fd the next backend queue (downscript may be NULL). */
bool net_tap_attach(Machine *m, const char *id, int fd, bool vnet_hdr, bool multi_queue,
                    const char *ifname, const char *downscript, GPtrArray *queues);

/* Batches a tap's reads and writes through io_uring when the host allows (no-op
 * otherwise: one system call per frame, as before); see net/tap-ring.c. */
void net_tap_enable_ring(NetClientState *nc);
/* Whether the tap batches through its ring (for tests). */
bool net_tap_has_ring(NetClientState *nc);

/* net/tap-ring.c: one io_uring_enter for a batch of a tap fd's readv/writev, every
 * request finished when the call returns (RWF_NOWAIT: EAGAIN rather than waiting). */
#define TAP_RING_ENTRIES 64
#define TAP_RING_IOV (1 + 64)    /* a vnet header in front of the NIC's 64 pieces */
typedef struct TapRing TapRing;
/* NULL when io_uring cannot be used here (not built in, disabled, refused, sandboxed). */
TapRing *tap_ring_new(int fd);
void tap_ring_free(TapRing *r);
/* False once the kernel refused a batch (RWF_NOWAIT unsupported, requests not taken):
 * use readv/writev.  An unusable ring takes no more requests (queue_write false, read
 * none), so those it holds are never submitted. */
bool tap_ring_usable(TapRing *r);
/* Queues a write of hdr (hdr_len may be 0) and iov; their memory must stay valid until
 * tap_ring_flush returns.  False when the batch is full (flush, then queue again). */
bool tap_ring_queue_write(TapRing *r, const struct iovec *iov, int iovcnt,
                          const void *hdr, size_t hdr_len);
unsigned tap_ring_queued(TapRing *r);
/* Writes every queued frame (one io_uring_enter), in order; returns how many were
 * dropped (EAGAIN: queue full, errors, short writes). */
unsigned tap_ring_flush(TapRing *r);
/* Reads up to n (<= TAP_RING_ENTRIES) frames, frame i into iov[i] (iovcnt[i] pieces,
 * at most TAP_RING_IOV) in the order they came; lens[i] gets its length or -errno
 * (-EAGAIN: nothing was waiting).  Returns how many reads the kernel took (n; fewer when
 * the ring failed, the rest keep -EAGAIN).  No request is in flight when it returns, nor
 * when tap_ring_flush does. */
unsigned tap_ring_read(TapRing *r, struct iovec *const *iov, const int *iovcnt, unsigned n,
                       ssize_t *lens);
/* Tests only: the next submission offers the kernel only this many requests (it is then
 * offered the rest, as the kernel would be); with tap_ring_test_submit_fails that second
 * submission fails, as a kernel refusing the rest, and the ring becomes unusable. */
extern unsigned tap_ring_test_short_submit;
extern bool tap_ring_test_submit_fails;
/* Tests only: bit i set, read i of the next tap_ring_read is not made and reports -EAGAIN,
 * as a read that found the tap empty while a later one of the batch found a frame. */
extern uint64_t tap_ring_test_eagain;

/* Frame headers the user-networking code reads and builds. */
#define NET_ETH_HLEN 14
#define NET_ETH_P_IP 0x0800

/* Big-endian 16-bit fields of a frame. */
static inline uint16_t net_ld_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void net_st_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* net/inet-csum.c: the Internet checksum.  Sums memory as host-order words (the bytes
 * of one sum are consecutive: only the last piece may have an odd length); the folded
 * result is stored as it is (memcpy) and a region holding a right checksum folds to 0. */
uint64_t inet_csum_add(uint64_t sum, const void *buf, size_t len);
uint16_t inet_csum_fold(uint64_t sum);
/* The IPv4 pseudo-header of a UDP/TCP checksum (addresses in network order). */
uint64_t inet_csum_pseudo(struct in_addr src, struct in_addr dst, uint8_t proto,
                          uint16_t len);

/* net/ip-reass.c: IPv4 reassembly of the guest's fragments for -netdev user (libslirp
 * 4.7 crashes on some; see there). */
typedef struct IpReass IpReass;
enum {
    IP_REASS_NOT_FRAGMENT,    /* not an IPv4 fragment: use the frame as it is */
    IP_REASS_TAKEN,           /* kept for reassembly, or dropped */
    IP_REASS_DONE,            /* *out: the whole datagram as one Ethernet frame */
};
/* now_ns (with opaque) is the clock of the 30 s lifetime, read for fragments only. */
IpReass *ip_reass_new(int64_t (*now_ns)(void *opaque), void *opaque);
void ip_reass_free(IpReass *ir);
/* frame: an Ethernet frame from the guest.  *out stays valid until the next call. */
int ip_reass_input(IpReass *ir, const uint8_t *frame, size_t len, const uint8_t **out,
                   size_t *out_len);
/* Fragments and datagrams dropped (bad, contradictory, expired, evicted). */
uint64_t ip_reass_dropped(IpReass *ir);

/* net/slirp-udp.c: -netdev user's own path for guest UDP to the host alias, batched
 * (see there).  All calls with the VM lock held. */
typedef struct SlirpUdp SlirpUdp;
SlirpUdp *slirp_udp_new(Machine *m, NetClientState *nc, struct in_addr net,
                        struct in_addr mask, struct in_addr host);
void slirp_udp_free(SlirpUdp *u);
/* Takes the frame (true) when it is a datagram this path sends; false: libslirp's.
 * Sent at once unless nc->batched (then at slirp_udp_flush). */
bool slirp_udp_input(SlirpUdp *u, const uint8_t *frame, size_t len);
void slirp_udp_flush(SlirpUdp *u);
/* A udp hostfwd rule forwarding to guest_addr:guest_port (host order) was added
 * (reserve) or removed.  The endpoint's datagrams to the alias leave from the rule's
 * socket fd (libslirp's; -1: unknown, they stay libslirp's), as long as one rule names
 * the endpoint; rules are counted. */
void slirp_udp_reserve(SlirpUdp *u, struct in_addr guest_addr, uint16_t guest_port,
                       int fd, bool reserve);
/* The NIC can take frames again: read the sockets paused when it could not. */
void slirp_udp_peer_ready(SlirpUdp *u);
/* For tests: flows open, datagrams sent, dropped (host socket full), GSO sends. */
typedef struct SlirpUdpStats {
    unsigned flows;
    uint64_t sent, dropped, gso_sends;
    bool gso_off;
} SlirpUdpStats;
void slirp_udp_stats(SlirpUdp *u, SlirpUdpStats *st);
/* Closes the sockets idle for idle_us of the virtual clock, dns_idle_us for those whose
 * last datagram in was a DNS answer (a timer does it with libslirp's 240 s and 10 s). */
void slirp_udp_expire_idle(SlirpUdp *u, gint64 idle_us, gint64 dns_idle_us);
/* Tests only: GSO sends fail with this errno instead of calling the kernel. */
extern int slirp_udp_test_gso_errno;
/* Tests only: the user netdev's fast path (NULL with restrict=on, ipv4=off or
 * dns= equal to host=). */
SlirpUdp *net_slirp_udp(NetClientState *nc);

/* net/netdev-unsupported.c: fails naming the first QEMU option of type that Sen does
 * not implement (with the reason and what to use instead). */
bool net_refuse_unsupported(const char *type, const Keyval *opts, const char *what,
                            Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* Queue 0 of netdev id (or of the first netdev of type when id is NULL) if it has that
 * type, else NULL. */
NetClientState *net_find_backend(Machine *m, const char *id, const char *type);
/* The hub ports of the machine (of NetHubPort*, owned by their netdevs; net/hub.c). */
GPtrArray *net_hub_ports(Machine *m);

#endif
