/* Private to net/: the backend table entries and helpers the backends share. */
#ifndef SEN_NET_NET_INTERNAL_H
#define SEN_NET_NET_INTERNAL_H

#include "sen/net.h"

extern const NetBackend net_user_backend;
extern const NetBackend net_hubport_backend;
extern const NetBackend net_socket_backend;

/* Queue 0 of netdev id (or of the first netdev of type when id is NULL) if it has that
 * type, else NULL. */
NetClientState *net_find_backend(Machine *m, const char *id, const char *type);
/* The hub ports of the machine (of NetHubPort*, owned by their netdevs; net/hub.c). */
GPtrArray *net_hub_ports(Machine *m);
/* Letters first, then letters, digits, '-', '.', '_' (QEMU's id rule). */
bool net_id_wellformed(const char *id);

#endif
