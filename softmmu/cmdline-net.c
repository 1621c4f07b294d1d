/*
 * -netdev and -nic as QEMU spells them, and the default NIC.
 *
 * -netdev TYPE,id=ID,...: the type and id are checked here; the backend's own options
 * when it is created (net/), before anything else of the machine exists.
 * -nic TYPE[,model=M][,mac=A][,backend options]: a netdev with id __org.qemu.nicN (as
 * QEMU names it) plus a NIC on it.  -nic none, any -nic or -netdev, or -nodefaults turn
 * off the default NIC, which is "-nic user" with a virtio-net-pci.
 */
#include <stdio.h>
#include <string.h>
#include "softmmu/cmdline-internal.h"
#include "sen/net.h"

static const char *const nic_models[] = { "virtio-net-pci", NULL };

static bool netdev_id_taken(CmdlineState *s, const char *id)
{
    for (guint i = 0; i < s->cfg->netdevs->len; i++) {
        const NetdevConfig *n = g_ptr_array_index(s->cfg->netdevs, i);
        if (strcmp(n->id, id) == 0) {
            return true;
        }
    }
    return false;
}

static void netdev_config_add(CmdlineState *s, const char *what, const char *id,
                              Keyval *opts)
{
    NetdevConfig *n = g_new0(NetdevConfig, 1);

    n->optstr = g_strdup(what);
    n->id = g_strdup(id);
    n->opts = opts;
    g_ptr_array_add(s->cfg->netdevs, n);
}

static bool check_type(const char *what, const char *type, Error **errp)
{
    if (!type || !*type) {
        error_setg(errp, "%s: Parameter 'type' is missing", what);
        return false;
    }
    if (!net_backend_find(type)) {
        error_setg(errp, "%s: Parameter 'type' does not accept value '%s' (Sen has: %s)",
                   what, type, net_backend_names());
        return false;
    }
    return true;
}

bool cmdline_opt_netdev(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0) {
        printf("Available netdev backend types:\n%s\n", net_backend_names());
        s->exit_early = true;
        return true;
    }
    Keyval *kv = cmdline_parse_opts(what, arg, "type", errp);
    if (!kv) {
        return false;
    }
    const char *type = keyval_get(kv, "type");
    const char *id = keyval_get(kv, "id");
    if (!check_type(what, type, errp)) {
        goto fail;
    }
    if (!id || !*id) {
        error_setg(errp, "%s: Parameter 'id' is missing", what);
        goto fail;
    }
    if (!id_wellformed(id)) {
        error_setg(errp, "%s: Parameter 'id' expects an identifier", what);
        goto fail;
    }
    if (netdev_id_taken(s, id)) {
        error_setg(errp, "%s: Duplicate ID '%s' for netdev", what, id);
        goto fail;
    }
    /* The backend reads its options again when it is created. */
    for (guint i = 0; i < kv->pairs->len; i++) {
        ((KeyvalPair *)g_ptr_array_index(kv->pairs, i))->used = false;
    }
    netdev_config_add(s, what, id, kv);
    s->net_given = true;
    return true;
fail:
    keyval_free(kv);
    return false;
}

/* A NIC device config: driver model, props "netdev=ID[,mac=A]". */
static bool nic_add(CmdlineState *s, const char *what, const char *model, const char *netdev,
                    const char *mac, Error **errp)
{
    g_autofree char *props = mac ? g_strdup_printf("netdev=%s,mac=%s", netdev, mac)
                                 : g_strdup_printf("netdev=%s", netdev);
    Keyval *kv = keyval_parse(props, NULL, errp);

    if (!kv) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    DeviceConfig *d = g_new0(DeviceConfig, 1);
    d->driver = g_strdup(model);
    d->optstr = g_strdup(what);
    d->props = kv;
    g_ptr_array_add(s->cfg->nics, d);
    return true;
}

bool cmdline_opt_nic(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "type", errp);
    if (!kv) {
        return false;
    }
    s->net_given = true;
    const char *type = keyval_get(kv, "type");
    if (type && strcmp(type, "none") == 0) {
        return keyval_check_all_used(kv, what, errp);
    }
    g_autofree char *model = keyval_take(kv, "model");
    g_autofree char *mac = keyval_take(kv, "mac");
    if (model && strcmp(model, "help") == 0) {
        printf("Available NIC models:\n");
        for (unsigned i = 0; nic_models[i]; i++) {
            printf("%s\n", nic_models[i]);
        }
        s->exit_early = true;
        return true;
    }
    if (!model) {
        model = g_strdup(nic_models[0]);
    }
    bool known = false;
    for (unsigned i = 0; nic_models[i]; i++) {
        known |= strcmp(nic_models[i], model) == 0;
    }
    if (!known) {
        error_setg(errp, "%s: unsupported NIC model '%s' (Sen has: virtio-net-pci)", what,
                   model);
        return false;
    }
    uint8_t bytes[6];
    if (mac && !net_parse_mac(mac, bytes)) {
        error_setg(errp, "%s: mac=%s: not a MAC address (want xx:xx:xx:xx:xx:xx)", what,
                   mac);
        return false;
    }
    if (keyval_has(kv, "id")) {
        error_setg(errp, "%s: invalid parameter 'id' (-nic makes its own netdev)", what);
        return false;
    }
    if (!check_type(what, type, errp)) {
        return false;
    }
    g_autofree char *id = g_strdup_printf("__org.qemu.nic%u", s->nic_count++);
    /* The netdev options are what is left, plus the generated id. */
    g_autofree char *netdev_str = g_strdup_printf("id=%s", id);
    Keyval *opts = keyval_parse(netdev_str, NULL, errp);
    if (!opts) {
        return false;
    }
    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
        KeyvalPair *c = g_new0(KeyvalPair, 1);
        c->key = g_strdup(p->key);
        c->value = g_strdup(p->value);
        g_ptr_array_add(opts->pairs, c);
    }
    netdev_config_add(s, what, id, opts);
    return nic_add(s, what, model, id, mac, errp);
}

bool cmdline_net_finish(CmdlineState *s, Error **errp)
{
    if (s->net_given || s->cfg->nodefaults) {
        return true;
    }
    /* QEMU's default network: NAT (user) on the board's default NIC. */
    return cmdline_opt_nic(s, "default NIC (-nic user)", "user", errp);
}
