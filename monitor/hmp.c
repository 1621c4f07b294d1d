/*
 * The human monitor subset reachable through QMP human-monitor-command (libvirt and
 * people at a socket use it for `info registers` and friends).  Output lines end in
 * CR LF, as QEMU's; a failing command prints "Error: ..." and is not a QMP error.
 */
#include <stdio.h>
#include <string.h>
#include "accel/accel.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"
#include "sen/block.h"
#include "sen/hw/virtio-balloon.h"
#include "sen/migration.h"
#include "sen/net.h"

typedef struct HmpCmd {
    const char *name;
    const char *help;
    bool (*run)(QmpCtx *ctx, GString *out, Error **errp);
} HmpCmd;

static bool hmp_info_status(QmpCtx *ctx, GString *out, Error **errp)
{
    RunState s = ctx->m->runstate;

    if (s == RUN_STATE_RUNNING) {
        g_string_append(out, "VM status: running\r\n");
    } else if (s == RUN_STATE_PAUSED) {
        g_string_append(out, "VM status: paused\r\n");
    } else {
        g_string_append_printf(out, "VM status: paused (%s)\r\n", runstate_name(s));
    }
    return true;
}

static bool hmp_info_cpus(QmpCtx *ctx, GString *out, Error **errp)
{
    json_t *cpus = qmp_query_cpus_fast(ctx, errp);
    size_t i;
    json_t *cpu;

    if (!cpus) {
        return false;
    }
    json_array_foreach(cpus, i, cpu) {
        g_string_append_printf(out, "%c CPU #%zu: thread_id=%" JSON_INTEGER_FORMAT "\r\n",
                               i == 0 ? '*' : ' ', i,
                               json_integer_value(json_object_get(cpu, "thread-id")));
    }
    json_decref(cpus);
    return true;
}

/* Appends text (lines ending in '\n') with the monitor's "\r\n" line ends. */
static void hmp_append_lines(GString *out, const char *text)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

    for (char **l = lines; *l; l++) {
        if (**l || l[1]) {
            g_string_append_printf(out, "%s\r\n", *l);
        }
    }
}

/* The image and its backing chain as qemu-img info prints them (info block -v). */
static void hmp_append_images(GString *out, json_t *image)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f) {
        return;
    }
    for (; image; image = json_object_get(image, "backing-image")) {
        block_image_info_print(f, image);
    }
    fclose(f);
    hmp_append_lines(out, text);
    free(text);
}

/*
 * One drive or node as QEMU's `info block` prints it: title is "d0 (node)" for a drive,
 * the node name with -n; ins is query-block's "inserted" (or a named node); io_status
 * the drive's "io-status" (NULL for a node, or a drive without one), shown unless ok.
 */
static void hmp_append_block_info(GString *out, const char *title, json_t *ins,
                                  const char *io_status, bool verbose)
{
    json_t *cache = json_object_get(ins, "cache");
    bool wb = json_is_true(json_object_get(cache, "writeback"));
    bool direct = json_is_true(json_object_get(cache, "direct"));

    g_string_append_printf(out, "%s: %s (%s%s)\r\n", title,
                           json_string_value(json_object_get(ins, "file")),
                           json_string_value(json_object_get(ins, "drv")),
                           json_is_true(json_object_get(ins, "ro")) ? ", read-only" : "");
    if (io_status && strcmp(io_status, "ok") != 0) {
        g_string_append_printf(out, "    I/O status:       %s\r\n", io_status);
    }
    g_string_append_printf(out, "    Cache mode:       %s%s\r\n",
                           wb ? "writeback" : "writethrough", direct ? ", direct" : "");
    json_t *backing = json_object_get(ins, "backing_file");
    if (backing) {
        json_int_t depth = json_integer_value(json_object_get(ins, "backing_file_depth"));
        g_string_append_printf(out, "    Backing file:     %s (chain depth: %"
                               JSON_INTEGER_FORMAT ")\r\n", json_string_value(backing),
                               depth);
    }
    if (verbose) {
        g_string_append(out, "\r\nImages:\r\n");
        hmp_append_images(out, json_object_get(ins, "image"));
    }
}

/* QEMU's `info block [-v] [device]`: the drives (or one), -v adding their images. */
static bool hmp_info_block_print(QmpCtx *ctx, GString *out, const char *device,
                                 bool verbose, Error **errp)
{
    json_t *drives = qmp_query_block(ctx, errp);
    size_t i;
    json_t *d;
    bool first = true;

    if (!drives) {
        return false;
    }
    json_array_foreach(drives, i, d) {
        const char *name = json_string_value(json_object_get(d, "device"));
        if (device && strcmp(device, name)) {
            continue;
        }
        json_t *ins = json_object_get(d, "inserted");
        if (!ins) {
            /* QEMU's wording for a drive without a medium (e.g. -drive if=none). */
            g_string_append_printf(out, "%s%s: [not inserted]\r\n", first ? "" : "\r\n",
                                   name);
            first = false;
            continue;
        }
        g_autofree char *title = g_strdup_printf(
            "%s%s (%s)", first ? "" : "\r\n", name,
            json_string_value(json_object_get(ins, "node-name")));
        first = false;
        hmp_append_block_info(out, title, ins,
                              json_string_value(json_object_get(d, "io-status")), verbose);
    }
    json_decref(drives);
    return true;
}

/*
 * QEMU's `info block -n [-v] [node]`: every named node (query-named-block-nodes).  As
 * QEMU, a blank line goes before every node but the first of the whole list, shown or not.
 */
static bool hmp_info_block_nodes(QmpCtx *ctx, GString *out, const char *node, bool verbose,
                                 Error **errp)
{
    json_t *nodes = qmp_query_named_block_nodes(ctx, false, false, errp);
    size_t i;
    json_t *n;

    if (!nodes) {
        return false;
    }
    json_array_foreach(nodes, i, n) {
        const char *name = json_string_value(json_object_get(n, "node-name"));
        if (node && strcmp(node, name)) {
            continue;
        }
        g_autofree char *title = g_strdup_printf("%s%s", i ? "\r\n" : "", name);
        hmp_append_block_info(out, title, n, NULL, verbose);
    }
    json_decref(nodes);
    return true;
}

static bool hmp_info_block(QmpCtx *ctx, GString *out, Error **errp)
{
    return hmp_info_block_print(ctx, out, NULL, false, errp);
}

static bool hmp_info_block_args(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    g_auto(GStrv) words = g_strsplit(arg, " ", -1);
    const char *device = NULL;
    bool verbose = false, nodes = false;

    for (char **w = words; *w; w++) {
        if (strcmp(*w, "-v") == 0) {
            verbose = true;
        } else if (strcmp(*w, "-n") == 0) {
            nodes = true;
        } else if (**w == '-') {
            error_setg(errp, "info block: invalid option '%s' (Sen knows -n and -v)", *w);
            return false;
        } else if (device) {
            error_setg(errp, "info block: extraneous characters at the end of line");
            return false;
        } else {
            device = *w;
        }
    }
    return nodes ? hmp_info_block_nodes(ctx, out, device, verbose, errp)
                 : hmp_info_block_print(ctx, out, device, verbose, errp);
}

static bool hmp_info_snapshots(QmpCtx *ctx, GString *out, Error **errp)
{
    savevm_info_snapshots(ctx->m, out); /* lists only: the VM lock may stay */
    return true;
}

static bool hmp_info_registers(QmpCtx *ctx, GString *out, Error **errp)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f) {
        error_setg(errp, "info registers: out of memory");
        return false;
    }
    ctx->m->accel->dump_state(ctx->m, f);
    fclose(f);
    hmp_append_lines(out, text);
    free(text);
    return true;
}

/* QEMU's line, then (Sen) the guest's last statistics under QEMU's guest-stats names. */
static bool hmp_info_balloon(QmpCtx *ctx, GString *out, Error **errp)
{
    static const char *const names[BALLOON_S_NR] = {
        "stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults",
        "stat-free-memory", "stat-total-memory", "stat-available-memory",
        "stat-disk-caches", "stat-htlb-pgalloc", "stat-htlb-pgfail",
    };
    json_t *info = qmp_query_balloon(ctx, errp);
    if (!info) {
        return false;
    }
    g_string_append_printf(out, "balloon: actual=%" JSON_INTEGER_FORMAT "\r\n",
                           json_integer_value(json_object_get(info, "actual")) >> 20);
    json_decref(info);
    uint64_t stats[BALLOON_S_NR];
    bool valid[BALLOON_S_NR];
    if (virtio_balloon_stats(virtio_balloon_find(ctx->m), stats, valid)) {
        for (unsigned i = 0; i < BALLOON_S_NR; i++) {
            if (valid[i]) {
                g_string_append_printf(out, "  %s=%" G_GUINT64_FORMAT "\r\n", names[i],
                                       stats[i]);
            }
        }
    }
    return true;
}

static bool hmp_stop(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_stop(ctx, errp);
}

static bool hmp_cont(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_cont(ctx, errp);
}

static bool hmp_quit(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_quit(ctx, errp);
}

static bool hmp_system_reset(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_system_reset(ctx, errp);
}

static bool hmp_system_powerdown(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_system_powerdown(ctx, errp);
}

static bool hmp_system_wakeup(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_system_wakeup(ctx, errp);
}

/* ---- migration ---- */

static bool hmp_info_migrate(QmpCtx *ctx, GString *out, Error **errp)
{
    size_t i;
    json_t *c;
    json_t *info = qmp_query_migrate(ctx, errp);
    if (!info) {
        return false;
    }
    /* Only after the first succeeded: a second failure would set *errp twice (abort). */
    json_t *caps = qmp_query_migrate_capabilities(ctx, errp);
    if (!caps) {
        json_decref(info);
        return false;
    }
    g_string_append(out, "capabilities:");
    json_array_foreach(caps, i, c) {
        g_string_append_printf(out, " %s: %s",
                               json_string_value(json_object_get(c, "capability")),
                               json_is_true(json_object_get(c, "state")) ? "on" : "off");
    }
    g_string_append(out, "\r\n");
    const char *status = json_string_value(json_object_get(info, "status"));
    if (status) {
        g_string_append_printf(out, "Migration status: %s\r\n", status);
    }
#define MS(key, label)                                                                   \
    if (json_object_get(info, key)) {                                                    \
        g_string_append_printf(out, label ": %" JSON_INTEGER_FORMAT " ms\r\n",           \
                               json_integer_value(json_object_get(info, key)));          \
    }
    MS("total-time", "total time");
    MS("downtime", "downtime");
    MS("expected-downtime", "expected downtime");
    MS("setup-time", "setup");
#undef MS
    const char *err = json_string_value(json_object_get(info, "error-desc"));
    if (err) {
        g_string_append_printf(out, "error description: %s\r\n", err);
    }
    json_t *ram = json_object_get(info, "ram");
    if (ram) {
#define RAM(key) json_integer_value(json_object_get(ram, key))
        g_string_append_printf(
            out,
            "transferred ram: %" JSON_INTEGER_FORMAT " kbytes\r\n"
            "throughput: %0.2f mbps\r\n"
            "remaining ram: %" JSON_INTEGER_FORMAT " kbytes\r\n"
            "total ram: %" JSON_INTEGER_FORMAT " kbytes\r\n"
            "duplicate: %" JSON_INTEGER_FORMAT " pages\r\n"
            "skipped: 0 pages\r\n"
            "normal: %" JSON_INTEGER_FORMAT " pages\r\n"
            "normal bytes: %" JSON_INTEGER_FORMAT " kbytes\r\n"
            "dirty sync count: %" JSON_INTEGER_FORMAT "\r\n"
            "page size: %" JSON_INTEGER_FORMAT " kbytes\r\n"
            "multifd bytes: %" JSON_INTEGER_FORMAT " kbytes\r\n",
            RAM("transferred") >> 10, json_number_value(json_object_get(ram, "mbps")),
            RAM("remaining") >> 10, RAM("total") >> 10, RAM("duplicate"), RAM("normal"),
            RAM("normal-bytes") >> 10, RAM("dirty-sync-count"), RAM("page-size") >> 10,
            RAM("multifd-bytes") >> 10);
#undef RAM
    }
    json_decref(info);
    json_decref(caps);
    return true;
}

static bool hmp_migrate_cancel(QmpCtx *ctx, GString *out, Error **errp)
{
    return qmp_migrate_cancel(ctx, errp);
}

static bool hmp_migrate(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    return qmp_migrate(ctx, arg, false, false, false, false, false, false, false, false,
                       errp);
}

static bool hmp_migrate_incoming(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    return qmp_migrate_incoming(ctx, arg, errp);
}

/* ---- snapshots (migration/savevm.c): they stop the vCPUs, so without the VM lock ---- */

/* A snapshot name is one word, as QEMU's HMP reads it. */
static bool hmp_one_word(const char *cmd, const char *arg, Error **errp)
{
    if (arg && strpbrk(arg, " \t")) {
        error_setg(errp, "%s: extraneous characters at the end of line", cmd);
        return false;
    }
    return true;
}

static bool hmp_savevm(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    if (!hmp_one_word("savevm", arg, errp)) {
        return false;
    }
    machine_unlock(ctx->m);
    bool ok = savevm_save(ctx->m, arg, true, NULL, NULL, errp);
    machine_lock(ctx->m);
    return ok;
}

static bool hmp_savevm_noarg(QmpCtx *ctx, GString *out, Error **errp)
{
    return hmp_savevm(ctx, NULL, out, errp);
}

static bool hmp_loadvm_noarg(QmpCtx *ctx, GString *out, Error **errp)
{
    error_setg(errp, "loadvm: missing snapshot name");
    return false;
}

static bool hmp_delvm_noarg(QmpCtx *ctx, GString *out, Error **errp)
{
    error_setg(errp, "delvm: missing snapshot name");
    return false;
}

static bool hmp_loadvm(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    if (!hmp_one_word("loadvm", arg, errp)) {
        return false;
    }
    machine_unlock(ctx->m);
    bool ok = savevm_load(ctx->m, arg, NULL, NULL, errp);
    machine_lock(ctx->m);
    return ok;
}

static bool hmp_delvm(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    if (!hmp_one_word("delvm", arg, errp)) {
        return false;
    }
    machine_unlock(ctx->m);
    bool ok = savevm_delete(ctx->m, arg, NULL, errp);
    machine_lock(ctx->m);
    return ok;
}

static bool hmp_info_network(QmpCtx *ctx, GString *out, Error **errp)
{
    net_info_network(ctx->m, out); /* monitor commands run with the VM lock */
    return true;
}

static bool hmp_hostfwd_add(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    return net_slirp_hostfwd_add(ctx->m, arg, errp);
}

static bool hmp_hostfwd_remove(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    return net_slirp_hostfwd_remove(ctx->m, arg, errp);
}

/* "TYPE,id=ID[,prop=value]...", as -netdev; errors name the command and its argument. */
static bool hmp_netdev_add(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    g_autofree char *what = g_strdup_printf("netdev_add %s", arg);
    g_autoptr(Keyval) kv = keyval_parse(arg, "type", errp);

    if (!kv) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    return net_netdev_add(ctx->m, kv, what, errp);
}

static bool hmp_netdev_del(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    if (!hmp_one_word("netdev_del", arg, errp)) {
        return false;
    }
    if (!net_netdev_find(ctx->m, arg)) {
        error_setg(errp, "Device '%s' not found", arg);
        return false;
    }
    return net_netdev_del(ctx->m, arg, errp);
}

/* "[interfaces [id]]", QEMU's: interfaces comma-separated; default pacing.  Sen runs one
 * announcement per NIC, so id names nothing of its own. */
static bool hmp_announce_self(QmpCtx *ctx, const char *arg, GString *out, Error **errp)
{
    g_auto(GStrv) words = g_strsplit_set(arg, " \t", -1);
    g_autoptr(GPtrArray) w = g_ptr_array_new();

    for (char **p = words; *p; p++) {
        if (**p) {
            g_ptr_array_add(w, *p);
        }
    }
    if (w->len > 2) {
        error_setg(errp, "announce_self: expected [interfaces [id]]");
        return false;
    }
    g_auto(GStrv) names = w->len ? g_strsplit(g_ptr_array_index(w, 0), ",", -1) : NULL;
    return net_announce_self(ctx->m, &net_announce_defaults, (const char *const *)names,
                             errp);
}

static bool hmp_announce_self_noarg(QmpCtx *ctx, GString *out, Error **errp)
{
    return net_announce_self(ctx->m, &net_announce_defaults, NULL, errp);
}

/* Commands that take one argument: the rest of the line after the name. */
typedef struct HmpArgCmd {
    const char *name;
    const char *argname;
    const char *help;
    bool (*run)(QmpCtx *ctx, const char *arg, GString *out, Error **errp);
} HmpArgCmd;

static const HmpArgCmd hmp_arg_cmds[] = {
    { "info block", "[-n] [-v] [device]",
      "show the block devices (or one), with -n the block nodes instead, with -v their "
      "images as qemu-img info does",
      hmp_info_block_args },
    { "migrate", "URI", "migrate the VM to URI (tcp:, unix:, exec:, fd:, file:)",
      hmp_migrate },
    { "migrate_incoming", "URI", "start an incoming migration deferred by -incoming defer",
      hmp_migrate_incoming },
    { "savevm", "[NAME]", "save the VM (RAM, devices, disks) as internal snapshot NAME, "
      "replacing one of that name", hmp_savevm },
    { "loadvm", "NAME", "restore the VM from internal snapshot NAME", hmp_loadvm },
    { "delvm", "NAME", "delete internal snapshot NAME from every disk", hmp_delvm },
    { "hostfwd_add", "[netdev_id] [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport",
      "forward a host port into the guest (user networking)", hmp_hostfwd_add },
    { "hostfwd_remove", "[netdev_id] [tcp|udp]:[hostaddr]:hostport",
      "remove a host port forwarding rule", hmp_hostfwd_remove },
    { "netdev_add", "TYPE,id=ID[,prop=value][,...]",
      "add a network backend, as -netdev (user, tap, bridge, socket, hubport)",
      hmp_netdev_add },
    { "netdev_del", "ID", "remove a network backend (its NIC stays, link down)",
      hmp_netdev_del },
    { "announce_self", "[interfaces [id]]",
      "the NICs (comma-separated names; default all) announce themselves", hmp_announce_self },
};

static bool hmp_help(QmpCtx *ctx, GString *out, Error **errp);

static const HmpCmd hmp_cmds[] = {
    { "info status", "show the VM run state", hmp_info_status },
    { "info cpus", "show the vCPUs and their host threads", hmp_info_cpus },
    { "info block", "show the block devices", hmp_info_block },
    { "info registers", "show the vCPU registers", hmp_info_registers },
    { "info snapshots", "show the internal snapshots", hmp_info_snapshots },
    { "info balloon", "show the balloon (MiB left to the guest) and guest statistics",
      hmp_info_balloon },
    { "info network", "show the NICs and network backends", hmp_info_network },
    { "announce_self", "every NIC announces itself (RARP, GUEST_ANNOUNCE)",
      hmp_announce_self_noarg },
    { "info migrate", "show the migration status and counters", hmp_info_migrate },
    { "savevm", "save the VM as a snapshot named after the time", hmp_savevm_noarg },
    { "loadvm", "(needs a snapshot name)", hmp_loadvm_noarg },
    { "delvm", "(needs a snapshot name)", hmp_delvm_noarg },
    { "migrate_cancel", "cancel the running migration", hmp_migrate_cancel },
    { "stop", "stop the vCPUs", hmp_stop },
    { "cont", "start or resume the vCPUs", hmp_cont },
    { "c", "same as cont", hmp_cont },
    { "quit", "end the VMM", hmp_quit },
    { "q", "same as quit", hmp_quit },
    { "system_reset", "reset the machine", hmp_system_reset },
    { "system_powerdown", "press the ACPI power button", hmp_system_powerdown },
    { "system_wakeup", "wake a guest suspended to RAM (ACPI S3)", hmp_system_wakeup },
    { "help", "list these commands", hmp_help },
};

static bool hmp_help(QmpCtx *ctx, GString *out, Error **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(hmp_cmds); i++) {
        g_string_append_printf(out, "%-16s -- %s\r\n", hmp_cmds[i].name, hmp_cmds[i].help);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(hmp_arg_cmds); i++) {
        g_autofree char *syn = g_strdup_printf("%s %s", hmp_arg_cmds[i].name,
                                               hmp_arg_cmds[i].argname);
        g_string_append_printf(out, "%-16s -- %s\r\n", syn, hmp_arg_cmds[i].help);
    }
    return true;
}

char *hmp_run(Machine *m, const char *cmdline, Error **errp)
{
    QmpCtx ctx = { .m = m, .command_mode = true };
    g_auto(GStrv) words = g_strsplit_set(cmdline, " \t", -1);
    GString *canon = g_string_new(NULL);
    GString *out = g_string_new(NULL);

    /* Words separated by any run of blanks, as the HMP parser does. */
    for (char **w = words; *w; w++) {
        if (**w) {
            g_string_append_printf(canon, "%s%s", canon->len ? " " : "", *w);
        }
    }
    const HmpCmd *cmd = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(hmp_cmds); i++) {
        if (strcmp(hmp_cmds[i].name, canon->str) == 0) {
            cmd = &hmp_cmds[i];
        }
    }
    const HmpArgCmd *acmd = NULL;
    const char *arg = NULL;
    for (size_t i = 0; !cmd && i < G_N_ELEMENTS(hmp_arg_cmds); i++) {
        size_t n = strlen(hmp_arg_cmds[i].name);
        if (strncmp(canon->str, hmp_arg_cmds[i].name, n) == 0 && canon->str[n] == ' ') {
            acmd = &hmp_arg_cmds[i];
            arg = canon->str + n + 1;
        }
    }
    if (!canon->len) {
        /* An empty line does nothing. */
    } else if (acmd) {
        Error *err = NULL;
        if (!acmd->run(&ctx, arg, out, &err)) {
            g_string_append_printf(out, "Error: %s\r\n", error_get_pretty(err));
            error_free(err);
        }
    } else if (!cmd) {
        g_string_append_printf(out, "unknown command: '%s'\r\n", canon->str);
    } else {
        Error *err = NULL;
        if (!cmd->run(&ctx, out, &err)) {
            g_string_append_printf(out, "Error: %s\r\n", error_get_pretty(err));
            error_free(err);
        }
    }
    g_string_free(canon, TRUE);
    return g_string_free(out, FALSE);
}
