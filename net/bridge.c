/*
 * -netdev bridge,id=ID[,br=NAME]: a new TAP attached to the Linux bridge NAME (default
 * br0), as QEMU's qemu-bridge-helper does, with its access check: the ACL file
 * (SEN_BRIDGE_CONF, default /etc/sen/bridge.conf, else /etc/qemu/bridge.conf) must have
 * "allow NAME" or "allow all" and no "deny NAME"/"deny all" after it; no file denies all.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include "net/net-internal.h"

static const char *bridge_acl_path(void)
{
    const char *env = g_getenv("SEN_BRIDGE_CONF");

    if (env) {
        return env;
    }
    return access("/etc/sen/bridge.conf", R_OK) == 0 ? "/etc/sen/bridge.conf"
                                                     : "/etc/qemu/bridge.conf";
}

/* The last matching rule wins, as in qemu-bridge-helper. */
static bool bridge_allowed(const char *br, const char *path)
{
    g_autofree char *text = NULL;
    bool allowed = false;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return false;
    }
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        char verb[16], name[IFNAMSIZ + 1];
        if (sscanf(*l, " %15s %16s", verb, name) != 2 || verb[0] == '#') {
            continue;
        }
        bool match = strcmp(name, "all") == 0 || strcmp(name, br) == 0;
        if (match && strcmp(verb, "allow") == 0) {
            allowed = true;
        } else if (match && strcmp(verb, "deny") == 0) {
            allowed = false;
        }
    }
    return allowed;
}

static bool bridge_init(Machine *m, const char *id, Keyval *opts, const char *what,
                        GPtrArray *queues, Error **errp)
{
    const char *br = keyval_get(opts, "br");
    const char *acl = bridge_acl_path();
    char name[IFNAMSIZ];
    bool hdr;

    br = br ? br : "br0";
    if (!keyval_check_all_used(opts, what, errp)) {
        return false;
    }
    if (strlen(br) >= IFNAMSIZ || !if_nametoindex(br)) {
        error_setg(errp, "%s: bridge '%s' does not exist", what, br);
        return false;
    }
    if (!bridge_allowed(br, acl)) {
        error_setg(errp, "%s: access denied by %s: it has no 'allow %s'", what, acl, br);
        return false;
    }
    int fd = net_tap_open(NULL, true, false, &hdr, name, what, errp);
    if (fd < 0) {
        return false;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = { 0 };
    g_strlcpy(ifr.ifr_name, br, IFNAMSIZ);
    ifr.ifr_ifindex = (int)if_nametoindex(name);
    bool ok = s >= 0 && ioctl(s, SIOCBRADDIF, &ifr) == 0;
    if (ok) {
        struct ifreq up = { 0 };
        g_strlcpy(up.ifr_name, name, IFNAMSIZ);
        ok = ioctl(s, SIOCGIFFLAGS, &up) == 0;
        up.ifr_flags |= IFF_UP;
        ok = ok && ioctl(s, SIOCSIFFLAGS, &up) == 0;
    }
    int err = errno;
    if (s >= 0) {
        close(s);
    }
    if (!ok) {
        error_setg_errno(errp, err, "%s: cannot attach %s to bridge %s", what, name, br);
        close(fd);
        return false;
    }
    if (!net_tap_attach(m, id, fd, hdr, false, name, NULL, queues)) {
        return false;
    }
    net_tap_enable_ring(g_ptr_array_index(queues, queues->len - 1));
    return true;
}

const NetBackend net_bridge_backend = {
    .type = "bridge",
    .init = bridge_init,
};
