/*
 * QMP monitors on chardevs: greeting, the per-client session, responses and events.
 *
 * A socket chardev serves one client at a time; each new client gets a fresh greeting
 * and must negotiate capabilities again.  Several monitors (-qmp given twice, -mon) serve
 * several clients at once, all on the main thread.
 *
 * Locking: chardev input and connection events arrive with the VM lock held (chardevs
 * are created with &m->lock), as in accel/qtest/qtest.c; commands that must stop vCPUs
 * drop it for that (see qmp-commands.c).
 */
#include <stdio.h>
#include <string.h>
#include "sen-config.h"
#include "sen/chardev.h"
#include "sen/monitor.h"
#include "monitor/json-reader.h"
#include "monitor/monitor-internal.h"
#include "monitor/qmp-dispatch.h"

struct Monitor {
    Machine *m;
    Chardev *chr;
    bool pretty;
    bool connected;
    JsonReader *reader;
    QmpCtx ctx;
};

static void monitor_send(Monitor *mon, json_t *msg)
{
    size_t flags = JSON_PRESERVE_ORDER | (mon->pretty ? JSON_INDENT(4) : 0);
    char *text = json_dumps(msg, flags);

    if (text) {
        /* QEMU ends every message with CR LF; clients split on the newline. */
        chardev_write(mon->chr, (const uint8_t *)text, strlen(text));
        chardev_write(mon->chr, (const uint8_t *)"\r\n", 2);
        free(text);
    }
}

json_t *monitor_host_string(const char *text)
{
    g_autofree char *valid = g_utf8_make_valid(text, -1);
    return json_string(valid);
}

json_t *monitor_version_info(void)
{
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(SEN_VERSION, "%u.%u.%u", &major, &minor, &micro);
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", major, "minor", minor,
                     "micro", micro, "package", "Sen");
}

static void monitor_greet(Monitor *mon)
{
    json_t *greeting = json_pack("{s:{s:o,s:[s]}}", "QMP", "version", monitor_version_info(),
                                 "capabilities", "oob");
    monitor_send(mon, greeting);
    json_decref(greeting);
}

static void monitor_message(void *opaque, json_t *msg, const char *error)
{
    Monitor *mon = opaque;
    json_t *resp;

    if (error) {
        resp = qmp_error_response(QMP_ERROR_GENERIC, error, NULL);
    } else {
        resp = qmp_dispatch(&mon->ctx, msg);
        json_decref(msg);
    }
    monitor_send(mon, resp);
    json_decref(resp);
}

static size_t monitor_can_read(void *opaque)
{
    return 64 * 1024;
}

static void monitor_read(void *opaque, const uint8_t *buf, size_t len)
{
    Monitor *mon = opaque;
    json_reader_feed(mon->reader, buf, len);
}

static void monitor_event(void *opaque, bool opened)
{
    Monitor *mon = opaque;

    json_reader_reset(mon->reader);
    mon->ctx.command_mode = false;
    mon->ctx.oob = false;
    mon->connected = opened;
    if (opened) {
        monitor_greet(mon);
    }
}

void monitor_emit_event(Machine *m, const char *name, json_t *data)
{
    gint64 now = g_get_real_time();
    json_t *ev = json_pack("{s:s}", "event", name);

    if (data) {
        json_object_set_new(ev, "data", data);
    }
    json_object_set_new(ev, "timestamp",
                        json_pack("{s:I,s:I}", "seconds", (json_int_t)(now / G_USEC_PER_SEC),
                                  "microseconds", (json_int_t)(now % G_USEC_PER_SEC)));
    for (guint i = 0; m->monitors && i < m->monitors->len; i++) {
        Monitor *mon = g_ptr_array_index(m->monitors, i);
        if (mon->connected && mon->ctx.command_mode) {
            monitor_send(mon, ev);
        }
    }
    json_decref(ev);
}

bool monitor_present(const Machine *m)
{
    return m->monitors && m->monitors->len > 0;
}

static void monitor_free(Monitor *mon)
{
    chardev_set_handlers(mon->chr, NULL, NULL, NULL, NULL);
    json_reader_free(mon->reader);
    g_free(mon);
}

bool monitor_create_all(Machine *m, Error **errp)
{
    const MachineConfig *cfg = m->cfg;

    m->monitors = g_ptr_array_new();
    for (guint i = 0; cfg->monitors && i < cfg->monitors->len; i++) {
        const MonitorConfig *mc = g_ptr_array_index(cfg->monitors, i);
        Chardev *chr = machine_find_chardev(m, mc->chardev);
        if (!chr) {
            error_setg(errp, "-mon chardev=%s: chardev not found", mc->chardev);
            return false;
        }
        Monitor *mon = g_new0(Monitor, 1);
        mon->m = m;
        mon->chr = chr;
        mon->pretty = mc->pretty;
        mon->ctx.m = m;
        mon->ctx.chr = chr;
        mon->reader = json_reader_new(monitor_message, mon);
        g_ptr_array_add(m->monitors, mon);
        /* With the VM lock, as the chardev's own callbacks: a client already connected
         * (wait=on) is greeted from here. */
        machine_lock(m);
        chardev_set_handlers(chr, monitor_can_read, monitor_read, monitor_event, mon);
        machine_unlock(m);
    }
    monitor_block_events_attach(m);
    return true;
}

void monitor_destroy_all(Machine *m)
{
    if (!m->monitors) {
        return;
    }
    monitor_block_events_detach();
    for (guint i = 0; i < m->monitors->len; i++) {
        monitor_free(g_ptr_array_index(m->monitors, i));
    }
    g_ptr_array_free(m->monitors, TRUE);
    m->monitors = NULL;
}

bool monitor_chardev_in_use(Machine *m, const char *id)
{
    for (guint i = 0; m->monitors && i < m->monitors->len; i++) {
        Monitor *mon = g_ptr_array_index(m->monitors, i);
        if (strcmp(chardev_id(mon->chr), id) == 0) {
            return true;
        }
    }
    return false;
}
