/*
 * Networking QMP commands (qapi/net.json) over net/ (include/sen/net.h).  They run on
 * the main loop with the VM lock held, like every monitor command.
 */
#include <string.h>
#include "sen/keyval.h"
#include "sen/net.h"
#include "monitor/qapi-generated.h"

bool qmp_set_link(QmpCtx *ctx, const char *name, bool up, Error **errp)
{
    g_autoptr(GPtrArray) ncs = net_clients_named(ctx->m, name);

    if (!ncs->len) {
        qmp_error_setg(ctx, errp, QMP_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found", name);
        return false;
    }
    for (guint i = 0; i < ncs->len; i++) {
        net_client_set_link(g_ptr_array_index(ncs, i), up);
    }
    return true;
}

/* Appends key=value to a -netdev option string, doubling commas as keyval wants. */
static void opt_append(GString *opts, const char *key, const char *value)
{
    g_string_append_printf(opts, ",%s=", key);
    for (const char *p = value; *p; p++) {
        if (*p == ',') {
            g_string_append_c(opts, ',');
        }
        g_string_append_c(opts, *p);
    }
}

/*
 * netdev_add takes the arguments -netdev takes, checked against the Netdev union by the
 * generated marshaller, so it turns them back into the option string and goes through
 * the same net_netdev_add: one parser, one set of errors.  Booleans become on/off,
 * hostfwd's list one hostfwd= per rule, dnssearch's list one colon-separated value.
 */
bool qmp_netdev_add(QmpCtx *ctx, json_t *arg, Error **errp)
{
    const char *type = json_string_value(json_object_get(arg, "type"));
    const char *id = json_string_value(json_object_get(arg, "id"));
    g_autoptr(GString) opts = g_string_new("type=");
    g_autofree char *what = g_strdup_printf("netdev_add %s,id=%s", type, id);
    const char *key;
    json_t *val;

    g_string_append(opts, type);
    json_object_foreach(arg, key, val) {
        if (strcmp(key, "type") == 0) {
            continue;
        }
        if (json_is_string(val)) {
            opt_append(opts, key, json_string_value(val));
        } else if (json_is_boolean(val)) {
            opt_append(opts, key, json_is_true(val) ? "on" : "off");
        } else if (json_is_integer(val)) {
            g_autofree char *n = g_strdup_printf("%" JSON_INTEGER_FORMAT,
                                                 json_integer_value(val));
            opt_append(opts, key, n);
        } else if (json_is_array(val)) { /* of String, as the schema checked */
            g_autoptr(GString) joined = g_string_new(NULL);
            size_t i;
            json_t *el;
            json_array_foreach(val, i, el) {
                const char *str = json_string_value(json_object_get(el, "str"));
                if (strcmp(key, "hostfwd") == 0) {
                    opt_append(opts, key, str);
                } else {
                    g_string_append_printf(joined, "%s%s", i ? ":" : "", str);
                }
            }
            if (strcmp(key, "hostfwd") != 0) {
                opt_append(opts, key, joined->str);
            }
        }
    }
    g_autoptr(Keyval) kv = keyval_parse(opts->str, NULL, errp);
    if (!kv) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    return net_netdev_add(ctx->m, kv, what, errp);
}

bool qmp_netdev_del(QmpCtx *ctx, const char *id, Error **errp)
{
    if (!net_netdev_find(ctx->m, id)) {
        qmp_error_setg(ctx, errp, QMP_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found", id);
        return false;
    }
    return net_netdev_del(ctx->m, id, errp);
}

static json_t *mac_string(const uint8_t *m)
{
    return json_sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static const char *rx_state(bool none, bool all)
{
    return none ? "none" : all ? "all" : "normal";
}

json_t *qmp_query_rx_filter(QmpCtx *ctx, bool has_name, const char *name, Error **errp)
{
    GPtrArray *nics = net_nics(ctx->m);
    json_t *list = json_array();

    for (guint i = 0; i < nics->len; i++) {
        NetClientState *nc = g_ptr_array_index(nics, i);
        NetRxFilter f = { 0 };
        if ((has_name && strcmp(nc->name, name) != 0) || !nc->rx_filter_query) {
            continue;
        }
        nc->rx_filter_query(nc, &f);
        json_t *uni = json_array(), *multi = json_array(), *vlans = json_array();
        for (unsigned k = 0; k < f.n_uni; k++) {
            json_array_append_new(uni, mac_string(f.uni[k]));
        }
        for (unsigned k = 0; k < f.n_multi; k++) {
            json_array_append_new(multi, mac_string(f.multi[k]));
        }
        for (guint k = 0; f.vlans && k < f.vlans->len; k++) {
            json_array_append_new(vlans, json_integer(g_array_index(f.vlans, int, k)));
        }
        if (f.vlans) {
            g_array_free(f.vlans, TRUE);
        }
        json_array_append_new(list, json_pack(
            "{s:s,s:b,s:s,s:s,s:s,s:b,s:b,s:b,s:o,s:o,s:o,s:o}", "name", nc->name,
            "promiscuous", f.promisc, "multicast", rx_state(f.nomulti, f.allmulti),
            "unicast", rx_state(f.nouni, f.alluni),
            "vlan", f.vlan_filtering ? "normal" : "all", "broadcast-allowed", !f.nobcast,
            "multicast-overflow", f.multi_overflow, "unicast-overflow", f.uni_overflow,
            "main-mac", mac_string(f.mac), "vlan-table", vlans, "unicast-table", uni,
            "multicast-table", multi));
    }
    if (has_name && json_array_size(list) == 0) {
        json_decref(list);
        qmp_error_setg(ctx, errp, QMP_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found", name);
        return NULL;
    }
    return list;
}

/* A required integer member of announce-self's arguments within [lo, hi]. */
static bool announce_param(json_t *arg, const char *key, int64_t lo, int64_t hi,
                           int64_t *out, Error **errp)
{
    *out = json_integer_value(json_object_get(arg, key));
    return qmp_check_range(key, *out, lo, hi, errp);
}

bool qmp_announce_self(QmpCtx *ctx, json_t *arg, Error **errp)
{
    NetAnnounceParams p;
    int64_t rounds;
    json_t *list = json_object_get(arg, "interfaces");
    size_t n = json_array_size(list);
    g_autofree const char **names = g_new0(const char *, n + 1);

    /* QEMU's limits for the announce-* migration parameters. */
    if (!announce_param(arg, "initial", 0, 100000, &p.initial_ms, errp) ||
        !announce_param(arg, "max", 0, 100000, &p.max_ms, errp) ||
        !announce_param(arg, "rounds", 0, 1000, &rounds, errp) ||
        !announce_param(arg, "step", 1, 10000, &p.step_ms, errp)) {
        return false;
    }
    p.rounds = (unsigned)rounds;
    for (size_t i = 0; i < n; i++) { /* of str, as the schema checked */
        names[i] = json_string_value(json_array_get(list, i));
    }
    return net_announce_self(ctx->m, &p, names, errp);
}
