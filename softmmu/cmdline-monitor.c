/*
 * The monitor options: -qmp DEV, -qmp-pretty DEV and -mon chardev=ID,mode=control.
 * -qmp makes a chardev named compat_monitorN from QEMU's short backend spelling
 * ("unix:PATH,server=on,wait=off", "tcp:HOST:PORT,server=on,wait=off", "stdio").
 * Part of softmmu/cmdline.c.
 */
#include <string.h>
#include "sen/monitor.h"
#include "cmdline-internal.h"

static void monitor_config_free(gpointer p)
{
    MonitorConfig *mc = p;

    g_free(mc->chardev);
    g_free(mc->what);
    g_free(mc);
}

static void monitor_add(CmdlineState *s, const char *what, const char *chardev, bool pretty)
{
    MonitorConfig *mc = g_new0(MonitorConfig, 1);

    if (!s->cfg->monitors) {
        s->cfg->monitors = g_ptr_array_new_with_free_func(monitor_config_free);
    }
    mc->chardev = g_strdup(chardev);
    mc->pretty = pretty;
    mc->what = g_strdup(what);
    g_ptr_array_add(s->cfg->monitors, mc);
}

static bool monitor_qmp(CmdlineState *s, const char *what, const char *arg, bool pretty,
                        Error **errp)
{
    guint n = s->cfg->monitors ? s->cfg->monitors->len : 0;
    g_autofree char *id = g_strdup_printf("compat_monitor%u", n);
    g_autofree char *spec = NULL;

    if (strcmp(arg, "stdio") == 0) {
        spec = g_strdup_printf("stdio,id=%s", id);
    } else if (g_str_has_prefix(arg, "unix:")) {
        spec = g_strdup_printf("socket,id=%s,path=%s", id, arg + strlen("unix:"));
    } else if (g_str_has_prefix(arg, "tcp:")) {
        const char *addr = arg + strlen("tcp:");
        const char *comma = strchr(addr, ',');
        g_autofree char *hostport = g_strndup(addr, comma ? (size_t)(comma - addr)
                                                          : strlen(addr));
        char *colon = strrchr(hostport, ':');
        if (!colon) {
            error_setg(errp, "%s: tcp: needs HOST:PORT", what);
            return false;
        }
        *colon = '\0';
        spec = g_strdup_printf("socket,id=%s,host=%s,port=%s%s", id,
                               *hostport ? hostport : "0.0.0.0", colon + 1,
                               comma ? comma : "");
    } else {
        error_setg(errp, "%s: monitor backend '%s' is not supported by Sen (unix:PATH, "
                   "tcp:HOST:PORT or stdio; or -chardev with -mon)", what, arg);
        return false;
    }
    if (!cmdline_opt_chardev(s, what, spec, errp)) {
        return false;
    }
    monitor_add(s, what, id, pretty);
    return true;
}

bool cmdline_opt_qmp(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    return monitor_qmp(s, what, arg, false, errp);
}

bool cmdline_opt_qmp_pretty(CmdlineState *s, const char *what, const char *arg,
                            Error **errp)
{
    return monitor_qmp(s, what, arg, true, errp);
}

bool cmdline_opt_mon(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "chardev", errp);
    bool pretty;

    if (!kv) {
        return false;
    }
    const char *chardev = keyval_get(kv, "chardev");
    const char *mode = keyval_get(kv, "mode");
    if (!chardev || !*chardev) {
        error_setg(errp, "%s: Parameter 'chardev' is missing", what);
        return false;
    }
    if (!mode || strcmp(mode, "readline") == 0) {
        error_setg(errp, "%s: the human monitor (mode=readline) is not supported by Sen; "
                   "use mode=control (QMP) and human-monitor-command", what);
        return false;
    }
    if (strcmp(mode, "control") != 0) {
        error_setg(errp, "%s: invalid mode '%s' (control)", what, mode);
        return false;
    }
    if (!keyval_get_bool(kv, what, "pretty", false, &pretty, errp) ||
        !keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    monitor_add(s, what, chardev, pretty);
    return true;
}

/* Each monitor names an existing chardev that no serial port, qtest or monitor uses. */
bool cmdline_monitor_finish(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;

    for (guint i = 0; cfg->monitors && i < cfg->monitors->len; i++) {
        const MonitorConfig *mc = g_ptr_array_index(cfg->monitors, i);
        bool used = g_strcmp0(cfg->qtest_chardev, mc->chardev) == 0;
        for (guint j = 0; j < cfg->serials->len; j++) {
            used |= g_strcmp0(g_ptr_array_index(cfg->serials, j), mc->chardev) == 0;
        }
        for (guint j = 0; j < i; j++) {
            const MonitorConfig *other = g_ptr_array_index(cfg->monitors, j);
            used |= strcmp(other->chardev, mc->chardev) == 0;
        }
        if (!machine_config_find_chardev(cfg, mc->chardev)) {
            error_setg(errp, "%s: chardev '%s' not found", mc->what, mc->chardev);
            return false;
        }
        if (used) {
            error_setg(errp, "%s: chardev '%s' is already in use", mc->what, mc->chardev);
            return false;
        }
    }
    return true;
}
