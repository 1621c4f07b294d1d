/*
 * virtio-net-pci's private header, shared by its three files: virtio-net.c (link status,
 * rx, tx, virtio ops, device), virtio-net-ctrl.c (the control queue) and
 * virtio-net-migration.c (announce, migration).  Nothing outside hw/virtio includes it.
 */
#ifndef HW_VIRTIO_VIRTIO_NET_INTERNAL_H
#define HW_VIRTIO_VIRTIO_NET_INTERNAL_H

#include "hw/virtio/virtio-pci.h"
#include "sen/device.h"
#include "sen/net.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

#define VIRTIO_NET_F_CSUM          0
#define VIRTIO_NET_F_GUEST_CSUM    1
#define VIRTIO_NET_F_MAC           5
#define VIRTIO_NET_F_GUEST_TSO4    7
#define VIRTIO_NET_F_GUEST_TSO6    8
#define VIRTIO_NET_F_GUEST_ECN     9
#define VIRTIO_NET_F_HOST_TSO4     11
#define VIRTIO_NET_F_HOST_TSO6     12
#define VIRTIO_NET_F_HOST_ECN      13
#define VIRTIO_NET_F_MRG_RXBUF     15
#define VIRTIO_NET_F_STATUS        16
#define VIRTIO_NET_F_CTRL_VQ       17
#define VIRTIO_NET_F_CTRL_RX       18
#define VIRTIO_NET_F_CTRL_VLAN     19
#define VIRTIO_NET_F_CTRL_RX_EXTRA 20
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ            22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23

#define VIRTIO_NET_S_LINK_UP  1
#define VIRTIO_NET_S_ANNOUNCE 2

#define VIRTIO_NET_CTRL_RX          0
#define VIRTIO_NET_CTRL_MAC         1
#define VIRTIO_NET_CTRL_VLAN        2
#define VIRTIO_NET_CTRL_ANNOUNCE    3
#define VIRTIO_NET_CTRL_MQ          4
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK 0
#define VIRTIO_NET_OK  0
#define VIRTIO_NET_ERR 1

enum { CFG_MAC = 0, CFG_STATUS = 6, CFG_MAX_PAIRS = 8, CFG_SIZE = 10 };

#define NET_QUEUE_SIZE   256
#define MAC_TABLE_SIZE   64
#define MAX_VLAN         4096
#define TX_BURST         256
/* Used elements (rx or tx) a burst fills before it publishes them anyway: the driver
 * can work on those while the rest come (vhost-net batches its used updates likewise). */
#define USED_PUBLISH_BATCH 32
#define USER_STATE_MAX   1024  /* libslirp's state: 131 bytes in version 4 */

typedef struct VirtIONet VirtIONet;

typedef struct NetQueuePair {
    VirtIONet *n;
    unsigned index;
    NetClientState *nc;      /* our end; its peer is the backend queue */
    VirtQueue *rx, *tx;
    guint tx_more;           /* idle source continuing a tx burst, 0 = none */
    unsigned rx_unpublished; /* used rx elements filled in a burst, not yet in used idx */
    /* The rx buffers lent to the backend (rx_direct_get) and not yet taken or given
     * back, oldest at rx_lent_first: NET_RX_DIRECT_MAX slots in a circle, made at the
     * first lend, popped without an allocation per frame.  All in the avail ring's order,
     * the last rx_lent_count pops of the queue. */
    VirtQueueSmallElement *rx_lent;
    unsigned rx_lent_first, rx_lent_count;
    bool tx_held;            /* the burst stopped with the VM; the start hook resumes it */
} NetQueuePair;

struct VirtIONet {
    VirtIOPCIProxy proxy;    /* first: the instance is a PCI device */
    VirtIODevice vdev;
    /* properties */
    char *netdev;
    char *mac_str;
    bool mq;
    bool mrg_rxbuf;
    bool csum;
    bool guest_csum;
    bool guest_announce;

    Machine *m;
    uint8_t mac[6];
    uint32_t max_pairs, curr_pairs;
    NetQueuePair qp[NET_MAX_QUEUES];
    VirtQueue *ctrl;
    bool vnet_hdr;           /* the backend exchanges NetVnetHdr with us */
    bool link_up;            /* what the config status shows */
    bool nic_link_down;      /* migration: set_link off on the NIC itself (pre_save) */

    /* receive filter (control queue): rx mode and table sizes live in `rx`, which
     * query-rx-filter reads as it is; rx.uni / rx.multi point at the tables here */
    NetRxFilter rx;
    uint8_t uni[MAC_TABLE_SIZE][6], multi[MAC_TABLE_SIZE][6];
    uint32_t vlans[MAX_VLAN / 32];

    uint64_t rx_dropped;     /* too big for the buffers, or the device was not ready */
    uint64_t tx_dropped;

    /* self-announce after a migration */
    Timer *announce_timer;   /* next round, on the virtual clock (runs with the VM) */
    NetAnnounceParams announce; /* the running announcement's pacing */
    unsigned announce_rounds; /* rounds still to send */
    bool announce_pending;   /* VIRTIO_NET_S_ANNOUNCE shown until the driver acks */

    /* migration: the state of a user backend (libslirp's), subsection user-net */
    uint32_t user_state_version, user_state_len;
    uint8_t user_state[USER_STATE_MAX];
    void *start_hook;        /* machine_add_start_hook handle */
};

static inline VirtIONet *to_net(VirtIODevice *vdev)
{
    return (VirtIONet *)((uint8_t *)vdev - offsetof(VirtIONet, vdev));
}

static inline bool has(VirtIONet *n, unsigned bit)
{
    return virtio_has_feature(&n->vdev, bit);
}

/* virtio-net.c */
void virtio_net_cfg_store_le16(VirtIONet *n, unsigned off, uint16_t v);
void virtio_net_store_status(VirtIONet *n);
void virtio_net_update_link(VirtIONet *n);
void virtio_net_rx_publish(NetQueuePair *q);
void virtio_net_apply_features(VirtIONet *n, uint64_t features);

/* virtio-net-ctrl.c */
void virtio_net_set_pairs(VirtIONet *n, unsigned pairs);
void virtio_net_handle_ctrl(VirtIODevice *vdev, VirtQueue *vq);

/* virtio-net-migration.c */
void virtio_net_announce_round(void *opaque);
void virtio_net_nic_announce(NetClientState *nc, const NetAnnounceParams *p);
void virtio_net_announce_done(VirtIONet *n);
extern const VMStateDesc virtio_net_vmsd;

#endif
