/*
 * QEMU -netdev options Sen knows of but does not implement.  They are refused with the
 * reason and what to use instead, rather than the bare "invalid parameter" an unknown
 * key gets: someone porting a QEMU command line learns what to change.  They are not in
 * the QMP schema (qapi/net.json), so introspection does not advertise them and
 * netdev_add reports them as unexpected, as QEMU does for options it lacks.
 */
#include <string.h>
#include "net/net-internal.h"

typedef struct UnsupportedOpt {
    const char *type;    /* netdev type */
    const char *key;
    const char *reason;  /* completes "<what>: <key>= is not supported: " */
} UnsupportedOpt;

static const UnsupportedOpt unsupported[] = {
    { "tap", "fds", "Sen opens the queues itself (ifname= with queues=N)" },
    { "tap", "vhostfd", "there is no vhost-net in Sen (vhost=off)" },
    { "tap", "vhostfds", "there is no vhost-net in Sen (vhost=off)" },
    { "tap", "vhostforce", "there is no vhost-net in Sen (vhost=off)" },
    { "tap", "helper", "Sen attaches a TAP to a bridge itself (-netdev bridge,br=NAME)" },
    { "tap", "br", "Sen attaches a TAP to a bridge itself (-netdev bridge,br=NAME)" },
    { "tap", "sndbuf", "Sen does not limit the TAP's send buffer" },
    { "tap", "poll-us", "Sen does not busy-poll" },
    { "bridge", "helper", "Sen creates and attaches the TAP itself (no qemu-bridge-helper)" },
    { "user", "smb", "no SMB server is started (share files with tftp= or hostfwd=)" },
    { "user", "smbserver", "no SMB server is started (share files with tftp= or hostfwd=)" },
    { "user", "guestfwd", "forwarding guest connections to host commands or chardevs is not "
      "implemented (use hostfwd= the other way round)" },
    { "user", "tftp-server-name", "DHCP names no TFTP server (option 66)" },
    { "user", "ipv6-net", "the IPv6 prefix is fixed (fec0::/64)" },
    { "user", "ipv6-prefix", "the IPv6 prefix is fixed (fec0::/64)" },
    { "user", "ipv6-prefixlen", "the IPv6 prefix is fixed (fec0::/64)" },
    { "user", "ipv6-host", "the IPv6 host address is fixed (fec0::2)" },
    { "user", "ipv6-dns", "the IPv6 DNS address is fixed (fec0::3)" },
    { "socket", "fd", "use listen=, connect=, mcast= or udp=" },
};

bool net_refuse_unsupported(const char *type, const Keyval *opts, const char *what,
                            Error **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(unsupported); i++) {
        const UnsupportedOpt *u = &unsupported[i];
        if (strcmp(u->type, type) == 0 && keyval_has(opts, u->key)) {
            error_setg(errp, "%s: %s= is not supported: %s", what, u->key, u->reason);
            return false;
        }
    }
    return true;
}
