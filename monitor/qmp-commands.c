/*
 * The QMP commands (argument checking and the command table are generated from
 * the qapi/ schema into qapi-generated.c; these are the bodies).
 *
 * All run on the main thread with the VM lock held.  Stopping or starting vCPUs waits
 * for them to leave guest code, and a vCPU may be waiting for the VM lock to finish an
 * exit, so stop and cont drop the lock around that (nothing here keeps device pointers
 * across it).
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "accel/accel.h"
#include "sen/block.h"
#include "sen/chardev.h"
#include "sen/hw/acpi.h"
#include "sen/migration.h"
#include "sen/monitor.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"

/* ---- control ---- */

bool qmp_qmp_capabilities(QmpCtx *ctx, bool has_enable, json_t *enable, Error **errp)
{
    /* The schema admits only "oob" in the list. */
    ctx->oob = has_enable && json_array_size(enable) > 0;
    ctx->command_mode = true;
    return true;
}

json_t *qmp_query_version(QmpCtx *ctx, Error **errp)
{
    return monitor_version_info();
}

json_t *qmp_query_commands(QmpCtx *ctx, Error **errp)
{
    json_t *list = json_array();

    for (size_t i = 0; i < qmp_commands_count; i++) {
        json_array_append_new(list, json_pack("{s:s}", "name", qmp_commands[i].name));
    }
    return list;
}

json_t *qmp_query_qmp_schema(QmpCtx *ctx, Error **errp)
{
    json_error_t jerr;
    json_t *schema = json_loads(qmp_schema_json, 0, &jerr);

    if (!schema) {
        error_setg(errp, "internal error: generated schema does not parse: %s", jerr.text);
    }
    return schema;
}

bool qmp_quit(QmpCtx *ctx, Error **errp)
{
    machine_request_shutdown(ctx->m, SHUTDOWN_CAUSE_HOST_QMP_QUIT, 0);
    return true;
}

/* VM lock held (as every command): the vCPUs read the panic action under it. */
bool qmp_set_action(QmpCtx *ctx, bool has_reboot, const char *reboot, bool has_shutdown,
                    const char *shutdown, bool has_panic, const char *panic, bool has_watchdog,
                    const char *watchdog, Error **errp)
{
    RunStateActions a = ctx->m->actions;

    /* The generated marshaller checked the names against the enums already. */
    if ((has_reboot && !runstate_action_set(&a, "reboot", reboot, errp)) ||
        (has_panic && !runstate_action_set(&a, "panic", panic, errp)) ||
        (has_watchdog && !runstate_action_set(&a, "watchdog", watchdog, errp)) ||
        (has_shutdown && !runstate_action_set(&a, "shutdown", shutdown, errp))) {
        return false;
    }
    ctx->m->actions = a;
    return true;
}

json_t *qmp_human_monitor_command(QmpCtx *ctx, const char *command_line, bool has_cpu_index,
                                  int64_t cpu_index, Error **errp)
{
    if (has_cpu_index && (cpu_index < 0 || cpu_index >= ctx->m->cfg->smp_cpus)) {
        error_setg(errp, "Parameter 'cpu-index' expects a vCPU index below %u",
                   ctx->m->cfg->smp_cpus);
        return NULL;
    }
    g_autofree char *out = hmp_run(ctx->m, command_line, errp);
    if (!out) {
        return NULL;
    }
    /* "info block" prints host paths, which need not be UTF-8. */
    return monitor_host_string(out);
}

/* ---- run state ---- */

json_t *qmp_query_status(QmpCtx *ctx, Error **errp)
{
    RunState s = ctx->m->runstate;
    return json_pack("{s:b,s:b,s:s}", "running", s == RUN_STATE_RUNNING, "singlestep", 0,
                     "status", runstate_name(s));
}

bool qmp_stop(QmpCtx *ctx, Error **errp)
{
    Machine *m = ctx->m;

    if (m->runstate == RUN_STATE_RUNNING) {
        machine_unlock(m);
        machine_vm_stop(m, RUN_STATE_PAUSED);
        machine_lock(m);
    }
    return true;
}

bool qmp_cont(QmpCtx *ctx, Error **errp)
{
    Machine *m = ctx->m;

    switch (m->runstate) {
    case RUN_STATE_RUNNING:
    case RUN_STATE_SUSPENDED: /* only a wake-up runs it again (QEMU: cont is a no-op) */
        return true;
    case RUN_STATE_INMIGRATE:
        /* As QEMU: the guest starts once the incoming migration has loaded. */
        migration_incoming_set_autostart(m);
        return true;
    case RUN_STATE_SHUTDOWN:
    case RUN_STATE_INTERNAL_ERROR:
    case RUN_STATE_GUEST_PANICKED:
        error_setg(errp, "Resetting the Virtual Machine is required");
        return false;
    case RUN_STATE_POSTMIGRATE:
        /* As QEMU: the images were handed over; take them back (read again) first. */
        if (!block_activate_all(m, errp)) {
            return false;
        }
        break;
    default:
        break;
    }
    /* As QEMU: the drives' io-status goes back to ok; a request that fails again when
     * the start retries it sets it again. */
    g_autoptr(GPtrArray) blks = block_backends(m);
    for (guint i = 0; i < blks->len; i++) {
        blk_iostatus_reset(g_ptr_array_index(blks, i));
    }
    machine_unlock(m);
    machine_vm_start(m);
    machine_lock(m);
    return true;
}

bool qmp_system_reset(QmpCtx *ctx, Error **errp)
{
    machine_request_reset(ctx->m, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
    return true;
}

bool qmp_system_powerdown(QmpCtx *ctx, Error **errp)
{
    /* As QEMU: the event, then the button; whether the guest reacts is up to it. */
    qapi_event_send_powerdown(ctx->m);
    acpi_pm_press_power_button(ctx->m);
    return true;
}

bool qmp_system_wakeup(QmpCtx *ctx, Error **errp)
{
    if (ctx->m->runstate != RUN_STATE_SUSPENDED) {
        error_setg(errp, "Unable to wake up: guest is not in suspended state");
        return false;
    }
    machine_request_wakeup(ctx->m, WAKEUP_REASON_OTHER);
    return true;
}

/* ---- machine ---- */

json_t *qmp_query_name(QmpCtx *ctx, Error **errp)
{
    const char *name = ctx->m->cfg->name;
    return name ? json_pack("{s:s}", "name", name) : json_object();
}

json_t *qmp_query_uuid(QmpCtx *ctx, Error **errp)
{
    return json_pack("{s:s}", "UUID", "00000000-0000-0000-0000-000000000000");
}

json_t *qmp_query_kvm(QmpCtx *ctx, Error **errp)
{
    bool present = access("/dev/kvm", R_OK | W_OK) == 0;
    return json_pack("{s:b,s:b}", "enabled", ctx->m->cfg->accel == ACCEL_KVM, "present",
                     present);
}

/* The host thread of vCPU index: the accelerator names it "CPU <index>/KVM". */
static long qmp_vcpu_thread_id(unsigned index)
{
    g_autofree char *want = g_strdup_printf("CPU %u/KVM\n", index);
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    long tid = getpid();

    while (d && (de = readdir(d))) {
        g_autofree char *path = g_strdup_printf("/proc/self/task/%s/comm", de->d_name);
        g_autofree char *comm = NULL;
        if (de->d_name[0] != '.' && g_file_get_contents(path, &comm, NULL, NULL) &&
            strcmp(comm, want) == 0) {
            tid = strtol(de->d_name, NULL, 10);
            break;
        }
    }
    if (d) {
        closedir(d);
    }
    return tid;
}

json_t *qmp_query_cpus_fast(QmpCtx *ctx, Error **errp)
{
    const MachineConfig *cfg = ctx->m->cfg;
    json_t *list = json_array();
    unsigned per_die = cfg->smp_cores * cfg->smp_threads;
    unsigned per_socket = per_die * cfg->smp_dies;

    for (unsigned i = 0; i < cfg->smp_cpus; i++) {
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", i);
        json_t *props = json_pack("{s:i,s:i,s:i,s:i}", "socket-id", i / per_socket,
                                  "die-id", (i / per_die) % cfg->smp_dies,
                                  "core-id", (i / cfg->smp_threads) % cfg->smp_cores,
                                  "thread-id", i % cfg->smp_threads);
        long tid = cfg->accel == ACCEL_KVM ? qmp_vcpu_thread_id(i) : getpid();
        json_array_append_new(list, json_pack("{s:i,s:s,s:I,s:o,s:s}", "cpu-index", i,
                                              "qom-path", path, "thread-id",
                                              (json_int_t)tid, "props", props, "target",
                                              "x86_64"));
    }
    return list;
}

json_t *qmp_query_machines(QmpCtx *ctx, Error **errp)
{
    return json_pack("[{s:s,s:b,s:i,s:b,s:b,s:b,s:s}]", "name", "pc", "is-default", 1,
                     "cpu-max", 255, "hotpluggable-cpus", 0, "numa-mem-supported", 0,
                     "deprecated", 0, "default-cpu-type", "host-x86_64-cpu");
}

json_t *qmp_query_target(QmpCtx *ctx, Error **errp)
{
    return json_pack("{s:s}", "arch", "x86_64");
}

/* ---- chardev ---- */

static bool qmp_chardev_has_frontend(Machine *m, const char *id)
{
    const MachineConfig *cfg = m->cfg;

    for (guint i = 0; i < cfg->serials->len; i++) {
        if (g_strcmp0(g_ptr_array_index(cfg->serials, i), id) == 0) {
            return true;
        }
    }
    return g_strcmp0(cfg->qtest_chardev, id) == 0 || monitor_chardev_in_use(m, id);
}

static char *qmp_chardev_filename(const ChardevConfig *cc)
{
    switch (cc->kind) {
    case CHARDEV_NULL:
        return g_strdup("null");
    case CHARDEV_STDIO:
        return g_strdup("stdio");
    case CHARDEV_FILE:
        return g_strdup_printf("file:%s", cc->path);
    case CHARDEV_SOCKET:
        if (cc->path) {
            return g_strdup_printf("unix:%s%s", cc->path, cc->server ? ",server=on" : "");
        }
        return g_strdup_printf("tcp:%s:%s%s", cc->host, cc->port,
                               cc->server ? ",server=on" : "");
    }
    return g_strdup("unknown");
}

json_t *qmp_query_chardev(QmpCtx *ctx, Error **errp)
{
    Machine *m = ctx->m;
    json_t *list = json_array();

    for (guint i = 0; i < m->chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(m->chardevs, i);
        const ChardevConfig *cc = machine_config_find_chardev(m->cfg, chardev_id(chr));
        g_autofree char *filename = cc ? qmp_chardev_filename(cc)
                                       : g_strdup(chardev_kind_name(chr));
        json_array_append_new(list, json_pack("{s:s,s:o,s:b}", "label", chardev_id(chr),
                                              "filename", monitor_host_string(filename),
                                              "frontend-open",
                                              qmp_chardev_has_frontend(m, chardev_id(chr))));
    }
    return list;
}
