/* Private to net/: the backend table entries and helpers the backends share. */
#ifndef SEN_NET_NET_INTERNAL_H
#define SEN_NET_NET_INTERNAL_H

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
