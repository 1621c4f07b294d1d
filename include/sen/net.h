/*
 * Networking: net clients, their peers, queues and hubs (net/net.c), and the backends
 * behind -netdev (net/slirp.c user, net/tap.c tap, net/bridge.c bridge, net/socket.c
 * socket, net/hub.c hubport).
 *
 * A NetClientState is one end of a point-to-point link: a NIC's queue (virtio-net) is the
 * peer of a backend's queue.  A frame sent by one end goes to its peer's receive().  When
 * the receiver cannot take it now (the guest posted no rx buffers) the frame waits in the
 * receiver's bounded queue; when that is full it is dropped and counted.  Backends that
 * can leave frames in the kernel stop reading before: tap when the NIC is full
 * (net_peer_can_take), slirp when its queue is (net_peer_has_room).  Nothing here ever
 * blocks: the receiver calls net_client_flush() when it can take frames again, and the
 * sender is told (peer_ready) once the queue has room, so a backend that stopped
 * reading resumes.
 *
 * Multiqueue backends (tap queues=N) are N clients with the same name; a NIC with N queue
 * pairs takes one each.
 *
 * Locking: everything runs under the VM lock (vCPU exits, ioeventfd handlers and the
 * main-loop sources of the backends all take it).
 */
#ifndef SEN_NET_H
#define SEN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <glib.h>
#include "sen/error.h"
#include "sen/keyval.h"
#include "sen/machine.h"

#define NET_MAX_FRAME   65536  /* largest frame a backend reads or a NIC sends */
#define NET_QUEUE_LIMIT 1024          /* frames waiting for one receiver before drops */
#define NET_QUEUE_BYTES (4u << 20)    /* and the bytes of them */
#define NET_MAX_QUEUES  8      /* queues of one multiqueue backend / NIC */

/* The virtio-net header a vnet_hdr-capable backend (tap) exchanges with the NIC. */
typedef struct NetVnetHdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} NetVnetHdr;
#define NET_VNET_HDR_LEN 12

typedef struct NetClientState NetClientState;
typedef struct NetRxFilter NetRxFilter;
typedef struct NetAnnounceParams NetAnnounceParams;

typedef struct NetClientInfo {
    const char *type;        /* "user", "tap", "socket", "hubport", "nic" */
    /* Takes one frame.  Returns its length when taken or dropped on purpose, 0 when it
     * cannot take it now (the caller queues it and waits for net_client_flush). */
    ssize_t (*receive)(NetClientState *nc, const struct iovec *iov, int iovcnt);
    /* The peer can take frames again after having refused some.  May be NULL. */
    void (*peer_ready)(NetClientState *nc);
    /* A burst of frames to us ended (net_burst_end): make visible what receive() took
     * during it.  NULL: receive() publishes each frame itself. */
    void (*burst_end)(NetClientState *nc);
    /* The peer's batch reached net_send_flush: finish the frames receive() took while
     * nc->batched (tap: write them, one io_uring submission), as the peer reuses their
     * memory next.  NULL: receive() is done with each frame when it returns. */
    void (*flush)(NetClientState *nc);
    /* The link of this client or its peer went up or down.  May be NULL. */
    void (*link_changed)(NetClientState *nc);
    /* Whether receive() would take a frame now (NULL: always).  A NIC without rx buffers
     * says no; the sender then queues, or stops reading until peer_ready. */
    bool (*can_receive)(NetClientState *nc);
    /* NICs, optional: the guest buffers for the next frame, so a backend can read it
     * straight into guest memory (no bounce copy): up to max iovecs over them, the
     * NetVnetHdr first, then the frame.  Returns their count; 0 when there are none now
     * (the frame then goes through receive()).  Up to NET_RX_DIRECT_MAX frames' buffers
     * may be lent at once, each call the next frame's.  rx_direct_take/_return follow
     * under the same hold of the VM lock, before anything else is sent to the NIC. */
    int (*rx_direct_get)(NetClientState *nc, struct iovec *iov, int max);
    /* NICs: len bytes (header and frame) were read into the oldest lent buffers: take
     * the frame as receive() would; true when the guest got them.  False when the
     * buffers stay lent (len 0: nothing read; a runt; a frame the guest's filter drops,
     * dropped): no later lent buffer can be taken then, only given back. */
    bool (*rx_direct_take)(NetClientState *nc, size_t len);
    /* NICs: every lent buffer not taken goes back to the guest's ring untouched. */
    void (*rx_direct_return)(NetClientState *nc);
    /* Frames to this client carry a NetVnetHdr first (tap with IFF_VNET_HDR). */
    bool (*has_vnet_hdr)(NetClientState *nc);
    /* The NIC negotiated these guest offloads (TUN_F_* bits).  May be NULL. */
    void (*set_offload)(NetClientState *nc, unsigned tun_flags);
    /* A multiqueue NIC uses this queue of ours or not (the guest's queue pairs): tap
     * steers frames only to the enabled ones.  May be NULL. */
    void (*queue_enable)(NetClientState *nc, bool on);
    /* Releases the backend's resources (the struct is freed by net.c). */
    void (*cleanup)(NetClientState *nc);
} NetClientInfo;

struct NetClientState {
    const NetClientInfo *info;
    Machine *m;
    NetClientState *peer;
    char *name;              /* netdev id, or the NIC's id / model */
    char *model;             /* "user", "tap", "virtio-net-pci" ... */
    char *info_str;          /* one line for `info network` */
    unsigned queue_index;
    bool is_nic;
    bool link_down;
    bool vnet_hdr;           /* both ends agreed to carry a NetVnetHdr (tap <-> NIC) */
    GQueue incoming;         /* of NetPacket*, frames waiting for receive() */
    size_t incoming_bytes;   /* their bytes */
    bool sender_waiting;     /* the peer holds frames back: tell it when we take more */
    unsigned burst;          /* frames come to us in a burst (net_burst_begin depth) */
    bool batched;            /* the peer's frames stay valid until flush (net_send_batch) */
    uint64_t rx_dropped;     /* frames dropped because the queue was full */
    void *opaque;            /* the backend's or NIC's state */
    /* NICs: fills a NetRxFilter for query-rx-filter; NULL for backends. */
    void (*rx_filter_query)(NetClientState *nc, NetRxFilter *out);
    /* NICs: starts announcing the NIC with p (announce-self); NULL for backends. */
    void (*announce)(NetClientState *nc, const NetAnnounceParams *p);
};

/* ---- clients ---- */

/* A new client (not yet linked); the caller sets info_str and opaque. */
NetClientState *net_client_new(Machine *m, const NetClientInfo *info, const char *model,
                               const char *name, unsigned queue_index);
/* Unlinks nc from its peer (the peer's link goes down) and frees it. */
void net_client_free(NetClientState *nc);
/* Makes a and b each other's peer (a NIC queue and a backend queue, both unlinked). */
void net_link(NetClientState *a, NetClientState *b);
void net_client_set_info_str(NetClientState *nc, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Sends a frame to nc's peer.  Never blocks; returns false when it was dropped. */
bool net_send(NetClientState *nc, const struct iovec *iov, int iovcnt);
bool net_send_buf(NetClientState *nc, const void *buf, size_t len);
/* A sender handing its peer several frames in a row (a tap read loop, a slirp poll)
 * brackets them, so the receiver may publish them together when the outermost burst
 * ends (virtio-net: one used-index update and one interrupt).  Both under the VM lock,
 * with no main-loop iteration in between. */
void net_burst_begin(NetClientState *nc);
void net_burst_end(NetClientState *nc);
/* A sender whose frames' memory stays valid until it says so (virtio-net tx: guest
 * buffers, given back to the guest only after) brackets its net_send calls with
 * net_send_batch_begin and net_send_batch_end: in between, the receiver may keep
 * referring to the frames after receive() returned (tap queues them for one io_uring
 * submission).  net_send_flush, and _end, finish every frame sent so far, in order:
 * only after it may the sender reuse or give back their memory.  Under the VM lock,
 * with no main-loop iteration in between. */
void net_send_batch_begin(NetClientState *nc);
void net_send_flush(NetClientState *nc);
void net_send_batch_end(NetClientState *nc);
/* Whether nc's peer will take a frame now (tap stops reading when not: the kernel
 * holds its backlog, and peer_ready comes with the guest's next buffers). */
bool net_peer_can_take(NetClientState *nc);
/* A backend that reads frames with a NetVnetHdr (tap) reading them straight into the
 * peer NIC's guest buffers: net_peer_rx_direct_get lends the buffers for the next frame,
 * as iovecs over them (0: not now, use net_send), up to NET_RX_DIRECT_MAX frames' at a
 * time; net_peer_rx_direct_take then says how many bytes the read put into the oldest
 * lent (true: the guest got the frame), net_peer_rx_direct_return gives back the rest.
 * After a take that returned false only the return is allowed, and it must come before
 * anything else is sent to the peer (a frame read into a later lent buffer is copied out
 * first).  net_peer_rx_direct_done is take-or-return for one frame (len 0: nothing read).
 * Only when the peer would take the frame now (net_peer_can_take) and nothing waits in
 * its queue, so frames stay in order. */
#define NET_RX_DIRECT_MAX 64
int net_peer_rx_direct_get(NetClientState *nc, struct iovec *iov, int max);
bool net_peer_rx_direct_take(NetClientState *nc, size_t len);
void net_peer_rx_direct_return(NetClientState *nc);
void net_peer_rx_direct_done(NetClientState *nc, size_t len);
/* Whether a frame sent now is kept, by the peer or in its queue (slirp stops polling
 * its sockets for input when not, rather than read frames only to drop them). */
bool net_peer_has_room(NetClientState *nc);
/* nc can take frames again: delivers what waits in its queue, tells the peer. */
void net_client_flush(NetClientState *nc);
/* Drops what waits in nc's queue (device reset). */
void net_client_purge(NetClientState *nc);
void net_client_set_link(NetClientState *nc, bool up);

/* ---- netdevs (the backends a machine has) ---- */

typedef struct NetBackend {
    const char *type;  /* "user" */
    /* Creates the backend's queues from opts (already without type and id) and appends
     * them to queues; what names the option for errors ("-netdev user,id=n0"). */
    bool (*init)(Machine *m, const char *id, Keyval *opts, const char *what,
                 GPtrArray *queues, Error **errp);
} NetBackend;

const NetBackend *net_backend_find(const char *type);
/* "user, tap, bridge, socket, hubport" for messages. */
const char *net_backend_names(void);

/* Creates a netdev from "type=...,id=...,..." options (-netdev, netdev_add). */
bool net_netdev_add(Machine *m, Keyval *opts, const char *what, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Removes a netdev (netdev_del); its NIC keeps running with the link down. */
bool net_netdev_del(Machine *m, const char *id, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The backend queues of netdev id, or NULL (array of NetClientState*). */
GPtrArray *net_netdev_find(Machine *m, const char *id);
/* Every NIC client (for query-rx-filter, set_link, info network). */
GPtrArray *net_nics(Machine *m);
/* Finds clients by name (netdev id or NIC id) for set_link. */
GPtrArray *net_clients_named(Machine *m, const char *name);
/* A unique default MAC 52:54:00:12:34:NN for the next NIC without mac=. */
void net_default_mac(Machine *m, uint8_t mac[6]);
bool net_parse_mac(const char *str, uint8_t mac[6]);

/* Machine creation: the -netdev backends (before devices), the -nic NICs (after the
 * -device ones), teardown after the devices. */
bool net_init_netdevs(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool net_create_nics(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void net_cleanup(Machine *m);

/* A NIC's receive filter, for query-rx-filter (a NIC may keep its live filter in one). */
struct NetRxFilter {
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    bool multi_overflow, uni_overflow;
    uint8_t mac[6];
    uint32_t n_uni, n_multi;
    const uint8_t (*uni)[6], (*multi)[6];
    bool vlan_filtering;         /* CTRL_VLAN negotiated: only vlans[] pass */
    GArray *vlans;               /* of int, filled by the NIC (caller frees) */
};

/* NICs register their first queue's client so the monitor finds them. */
void net_nic_register(Machine *m, NetClientState *nc);
void net_nic_unregister(Machine *m, NetClientState *nc);

/* ---- self-announce after migration (net/announce.c, QEMU's announce-self) ---- */

#define NET_ANNOUNCE_FRAME_LEN 60

/* How many announce rounds and how far apart (ms), as QMP announce-self takes them. */
struct NetAnnounceParams {
    int64_t initial_ms, max_ms, step_ms;
    unsigned rounds;
};
/* QEMU's defaults after a migration: 5 rounds, 50 ms apart, then 100 ms more each time
 * up to 550 ms. */
extern const NetAnnounceParams net_announce_defaults;

/* Delay after announce round `round` (0-based) before the next. */
int64_t net_announce_delay_ns(const NetAnnounceParams *p, unsigned round);
/* QEMU's announce frame for mac: a broadcast RARP request (op 3, EtherType 0x8035) whose
 * sender and target hardware addresses are mac, padded to 60 bytes; returns 60. */
size_t net_announce_rarp(uint8_t buf[NET_ANNOUNCE_FRAME_LEN], const uint8_t mac[6]);
/* A NIC's own frame (not from the guest) to its backend, with a zero NetVnetHdr in front
 * when the link carries one; false when it was dropped. */
bool net_nic_send_frame(NetClientState *nc, const void *frame, size_t len);

/* announce-self: every NIC (or those named in interfaces, NULL-terminated, else an
 * error naming the first unknown one) starts announcing with p. */
bool net_announce_self(Machine *m, const NetAnnounceParams *p, const char *const *interfaces,
                       Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* `info network` text (HMP), lines ending in CR LF. */
void net_info_network(Machine *m, GString *out);

/* user backend state for migration (libslirp's: the DHCP lease table and the IP id, as
 * QEMU migrates it).  Save appends it to out and returns libslirp's state version; load
 * takes only what this libslirp would write (no guestfwd sockets, same length). */
int net_slirp_state_save(NetClientState *nc, GByteArray *out);
bool net_slirp_state_load(NetClientState *nc, int version, const uint8_t *data, size_t len,
                          Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* user backend extras for HMP hostfwd_add / hostfwd_remove ("[netdev] rule"). */
bool net_slirp_hostfwd_add(Machine *m, const char *args, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
bool net_slirp_hostfwd_remove(Machine *m, const char *args, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

#endif
