/*
 * argv -> MachineConfig, with QEMU's spellings (docs/command-line.md is the user's view).
 *
 * Options are handled in argv order; each handler validates its own argument at once so
 * the first bad option is the one reported.  What depends on several options (the -smp
 * topology, the default serial port, stdio sharing, -daemonize conflicts, -serial
 * chardev:ID references) is settled by cmdline_finish() after the last option.
 * Nothing here touches the disk beyond checking that input files can be read.
 *
 * This file has the option table, the loop, the checks across option groups and the
 * options too small for a file of their own; cmdline-chardev.c and cmdline-machine.c
 * handle their groups (cmdline-internal.h is what they share).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sen-config.h"
#include "sen/config.h"
#include "sen/device.h"
#include "cmdline-internal.h"

typedef struct CmdlineOption {
    const char *name;
    const char *argname;      /* NULL: takes no argument */
    CmdlineHandler *handle;
    const char *help;
} CmdlineOption;

static bool cmdline_help(CmdlineState *s, const char *what, const char *arg, Error **errp);

/* ---- helpers ---- */

/* Opens path the way a loader later will, so "missing/unreadable/a directory" shows now. */
bool cmdline_check_readable(const char *path, int *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;

    if (fd < 0) {
        *err = errno;
        return false;
    }
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        *err = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

Keyval *cmdline_parse_opts(const char *what, const char *arg, const char *implied, Error **errp)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(arg, implied, &err);

    if (!kv) {
        error_prepend(&err, "%s: ", what);
        error_propagate(errp, err);
    }
    return kv;
}

/* ---- migration ---- */

/* The URI is checked when the machine listens on it (a busy port is caught there too). */
static bool opt_incoming(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (!*arg) {
        error_setg(errp, "%s: expected a migration URI or 'defer'", what);
        return false;
    }
    g_free(s->cfg->incoming);
    s->cfg->incoming = g_strdup(arg);
    return true;
}

/* The name is looked up in the images once they are open (savevm.c). */
static bool opt_loadvm(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (!*arg) {
        error_setg(errp, "%s: expected a snapshot name", what);
        return false;
    }
    g_free(s->cfg->loadvm);
    s->cfg->loadvm = g_strdup(arg);
    return true;
}

/* ---- boot ---- */

static bool opt_kernel(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    int err;

    if (!cmdline_check_readable(arg, &err)) {
        error_setg_errno(errp, err, "%s: could not load kernel '%s'", what, arg);
        return false;
    }
    g_free(s->cfg->kernel);
    s->cfg->kernel = g_strdup(arg);
    return true;
}

/* A plain initrd path, or multiboot modules "file args,file2 args" (",," = a comma). */
static bool opt_initrd(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    const char *p = arg;

    do {
        GString *mod = g_string_new(NULL);
        while (*p && !(*p == ',' && p[1] != ',')) {
            if (*p == ',') {
                p++;
            }
            g_string_append_c(mod, *p++);
        }
        g_autofree char *module = g_string_free(mod, false);
        g_autofree char *file = g_strndup(module, strcspn(module, " "));
        int err;
        if (!*file) {
            error_setg(errp, "%s: empty file name in module list", what);
            return false;
        }
        if (!cmdline_check_readable(file, &err)) {
            error_setg_errno(errp, err, "%s: could not load initrd '%s'", what, file);
            return false;
        }
    } while (*p && *++p);

    g_free(s->cfg->initrd);
    s->cfg->initrd = g_strdup(arg);
    g_free(s->initrd_what);
    s->initrd_what = g_strdup(what);
    return true;
}

static bool opt_append(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_free(s->cfg->append);
    s->cfg->append = g_strdup(arg);
    g_free(s->append_what);
    s->append_what = g_strdup(what);
    return true;
}

/* ---- display, devices, process ---- */

static bool opt_nographic(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    s->cfg->nographic = true;
    return true;
}

static bool opt_display(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "type", errp);
    if (!kv) {
        return false;
    }
    const char *type = keyval_get(kv, "type");
    if (type && strcmp(type, "help") == 0) {
        printf("Available display backend types:\nnone\n");
        s->exit_early = true;
        return true;
    }
    if (!type || strcmp(type, "none") != 0) {
        error_setg(errp, "%s: Display '%s' is not available in Sen", what, type ? type : "");
        return false;
    }
    s->cfg->display_none = true;
    return keyval_check_all_used(kv, what, errp);
}

static void global_prop_free(gpointer p)
{
    GlobalProp *g = p;
    g_free(g->driver);
    g_free(g->property);
    g_free(g->value);
    g_free(g);
}

/* The in-kernel PIT is not a device model; its one property QEMU users set is this. */
static bool global_kvm_pit(CmdlineState *s, const char *what, const char *prop,
                           const char *value, Error **errp)
{
    if (strcmp(prop, "lost_tick_policy") != 0) {
        error_setg(errp, "%s: property '%s' not found in 'kvm-pit'", what, prop);
        return false;
    }
    if (strcmp(value, "delay") == 0) {
        s->cfg->pit_discard = false;
    } else if (strcmp(value, "discard") == 0) {
        s->cfg->pit_discard = true;
    } else {
        error_setg(errp, "%s: kvm-pit.lost_tick_policy: '%s' is not supported by KVM "
                   "(delay or discard)", what, value);
        return false;
    }
    return true;
}

/* -global DRIVER.PROP=VALUE or -global driver=D,property=P,value=V */
static bool opt_global(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autofree char *driver = NULL, *prop = NULL, *value = NULL;
    const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');

    if (g_str_has_prefix(arg, "driver=")) {
        g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, NULL, errp);
        if (!kv) {
            return false;
        }
        driver = g_strdup(keyval_get(kv, "driver"));
        prop = g_strdup(keyval_get(kv, "property"));
        value = g_strdup(keyval_get(kv, "value"));
        if (!driver || !prop || !value) {
            error_setg(errp, "%s: expected driver=,property=,value=", what);
            return false;
        }
        if (!keyval_check_all_used(kv, what, errp)) {
            return false;
        }
    } else {
        if (!dot || !eq || dot > eq || dot == arg || dot + 1 == eq) {
            error_setg(errp, "%s: expected DRIVER.PROPERTY=VALUE", what);
            return false;
        }
        driver = g_strndup(arg, (size_t)(dot - arg));
        prop = g_strndup(dot + 1, (size_t)(eq - dot - 1));
        value = g_strdup(eq + 1);
    }
    if (strcmp(driver, "kvm-pit") == 0) {
        return global_kvm_pit(s, what, prop, value, errp);
    }
    if (!device_check_global(driver, prop, value, what, errp)) {
        return false;
    }
    if (!s->cfg->globals) {
        s->cfg->globals = g_ptr_array_new_with_free_func(global_prop_free);
    }
    GlobalProp *g = g_new0(GlobalProp, 1);
    g->driver = g_steal_pointer(&driver);
    g->property = g_steal_pointer(&prop);
    g->value = g_steal_pointer(&value);
    g_ptr_array_add(s->cfg->globals, g);
    return true;
}

static bool opt_device(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0 || strcmp(arg, "?") == 0) {
        device_class_print_list(stdout);
        s->exit_early = true;
        return true;
    }
    /* "DRIVER,help" is not key=value syntax; QEMU accepts it, so look for it first. */
    if (g_str_has_suffix(arg, ",help") && !g_str_has_suffix(arg, ",,help")) {
        g_autofree char *driver = g_strndup(arg, strlen(arg) - strlen(",help"));
        const DeviceClass *cls = device_class_find(driver);
        if (!cls) {
            error_setg(errp, "%s: '%s' is not a valid device model name", what, driver);
            return false;
        }
        device_class_print_props(cls, stdout);
        s->exit_early = true;
        return true;
    }
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "driver", errp);
    if (!kv) {
        return false;
    }
    g_autofree char *driver = keyval_take(kv, "driver");
    if (!driver || !*driver) {
        error_setg(errp, "%s: Parameter 'driver' is missing", what);
        return false;
    }
    const DeviceClass *cls = device_class_find(driver);
    if (!cls) {
        error_setg(errp, "%s: '%s' is not a valid device model name", what, driver);
        return false;
    }
    if (!cls->user_creatable) {
        error_setg(errp, "%s: device '%s' cannot be added with -device", what, driver);
        return false;
    }
    DeviceConfig *d = g_new0(DeviceConfig, 1);
    d->driver = g_steal_pointer(&driver);
    d->optstr = g_strdup(arg);
    d->props = g_steal_pointer(&kv);
    g_ptr_array_add(s->cfg->devices, d);
    return true;
}

static bool opt_name(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "guest", errp);
    bool debug_threads;

    if (!kv) {
        return false;
    }
    const char *guest = keyval_get(kv, "guest");
    /* Accepted for QEMU compatibility; Sen names its threads either way. */
    if (!keyval_get_bool(kv, what, "debug-threads", false, &debug_threads, errp) ||
        !keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    if (guest) {
        g_free(s->cfg->name);
        s->cfg->name = g_strdup(guest);
    }
    return true;
}

static bool opt_pidfile(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (!*arg) {
        error_setg(errp, "%s: empty file name", what);
        return false;
    }
    g_free(s->cfg->pidfile);
    s->cfg->pidfile = g_strdup(arg);
    return true;
}

#define FLAG_HANDLER(fn, field) \
    static bool fn(CmdlineState *s, const char *what, const char *arg, Error **errp) \
    { \
        s->cfg->field = true; \
        return true; \
    }
FLAG_HANDLER(opt_daemonize, daemonize)
FLAG_HANDLER(opt_S, start_paused)

/* -action KEY=VALUE,...: in order, a key given twice keeps the last value, as QEMU's
 * merged -action options; -no-reboot and -no-shutdown set one key each at their place
 * in argv (so "-no-reboot -action reboot=reset" resets, as in QEMU). */
static bool opt_action(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0) {
        g_autofree char *help = runstate_action_help();
        fputs(help, stdout);
        s->exit_early = true;
        return true;
    }
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, NULL, errp);
    if (!kv) {
        return false;
    }
    RunStateActions actions = s->cfg->actions;
    for (guint i = 0; i < kv->pairs->len; i++) {
        const KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
        if (!runstate_action_set(&actions, p->key, p->value, errp)) {
            error_prepend(errp, "%s: ", what);
            return false;
        }
    }
    s->cfg->actions = actions;
    return true;
}

static bool opt_no_reboot(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    s->cfg->actions.reboot = REBOOT_ACTION_SHUTDOWN; /* QEMU: -action reboot=shutdown */
    return true;
}

static bool opt_no_shutdown(CmdlineState *s, const char *what, const char *arg,
                            Error **errp)
{
    s->cfg->actions.shutdown = SHUTDOWN_ACTION_PAUSE; /* QEMU: -action shutdown=pause */
    return true;
}
FLAG_HANDLER(opt_nodefaults, nodefaults)

static bool opt_version(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    printf("Sen emulator version %s (QEMU-compatible)\n", SEN_VERSION);
    s->exit_early = true;
    return true;
}

static const CmdlineOption cmdline_options[] = {
    { "machine", "[type=]pc[,accel=kvm|qtest][,acpi=on|off]", cmdline_opt_machine,
      "select the machine type (only pc; pc-i440fx-* are aliases; 'help' lists)" },
    { "M", "pc", cmdline_opt_machine, "same as -machine" },
    { "no-acpi", NULL, cmdline_opt_no_acpi, "same as -machine acpi=off" },
    { "cpu", "MODEL[,+FEAT|-FEAT...]", cmdline_opt_cpu,
      "select the CPU model and features ('-cpu help' lists the models)" },
    { "accel", "[accel=]kvm|qtest[,kernel-irqchip=on|split][,dirty-ring-size=N]",
      cmdline_opt_accel, "select the accelerator" },
    { "enable-kvm", NULL, cmdline_opt_enable_kvm, "same as -accel kvm" },
    { "m", "[size=]SIZE", cmdline_opt_m, "guest RAM size (plain number: MiB; suffixes K M G T)" },
    { "object", "memory-backend-{ram,memfd,file},id=ID,size=SIZE[,...] | iothread,id=ID",
      cmdline_opt_object, "a host memory backend for -machine memory-backend=ID "
      "(docs/memory.md), or an I/O thread for -device ...,iothread=ID (docs/virtio.md)" },
    { "mem-path", "PATH", cmdline_opt_mem_path,
      "back guest RAM with a file at/inside PATH (e.g. a hugetlbfs mount)" },
    { "mem-prealloc", NULL, cmdline_opt_mem_prealloc, "allocate all guest RAM at start-up" },
    { "numa", "node[,nodeid=N,cpus=A-B,memdev=ID]|dist,src=N,dst=M,val=D", cmdline_opt_numa,
      "a guest NUMA node (memory from a memory backend) or a distance (docs/memory.md)" },
    { "smp", "[cpus=]N[,sockets=S,dies=D,cores=C,threads=T,maxcpus=M]", cmdline_opt_smp,
      "number of vCPUs and their topology" },
    { "kernel", "FILE", opt_kernel, "boot this Linux bzImage, PVH or multiboot kernel" },
    { "initrd", "FILE", opt_initrd, "initial ramdisk (multiboot: \"mod args,mod2 args\")" },
    { "append", "CMDLINE", opt_append, "kernel command line" },
    { "nographic", NULL, opt_nographic,
      "no display: COM1 on stdio, Ctrl-A x quits, Ctrl-A h for help" },
    { "display", "none", opt_display, "no display (COM1 goes nowhere by default)" },
    { "serial", "DEV", cmdline_opt_serial,
      "next COM port on DEV: stdio, mon:stdio, null, file:PATH, unix:PATH, tcp:HOST:PORT, "
      "chardev:ID or none" },
    { "chardev", "BACKEND,id=ID[,...]", cmdline_opt_chardev,
      "character backend: null, stdio, file (path=), socket (path= or host=,port=)" },
    { "drive", "file=FILE[,format=F,if=virtio|none,id=ID,cache=C,aio=A,readonly=on,...]",
      cmdline_opt_drive, "a disk image (if=none: for -device ...,drive=ID)" },
    { "blockdev", "driver=D,node-name=N[,...] or JSON", cmdline_opt_blockdev,
      "a block node, in dotted keys or JSON" },
    { "device", "DRIVER[,PROP=VALUE...]", opt_device,
      "add a device ('-device help' lists them, '-device DRIVER,help' its properties)" },
    { "netdev", "TYPE,id=ID[,...]", cmdline_opt_netdev,
      "network backend: user (NAT), tap, bridge, socket or hubport (docs/networking.md)" },
    { "nic", "TYPE|none[,model=virtio-net-pci,mac=ADDR,...]", cmdline_opt_nic,
      "a NIC on a new backend of TYPE; 'none': no default NIC" },
    { "name", "[guest=]NAME", opt_name, "name of the guest" },
    { "pidfile", "FILE", opt_pidfile, "write the process id to FILE" },
    { "daemonize", NULL, opt_daemonize, "detach from the terminal once the VM is set up" },
    { "S", NULL, opt_S, "do not start the vCPUs at start-up" },
    { "action", "reboot=reset|shutdown,shutdown=poweroff|pause,panic=pause|shutdown|"
      "exit-failure|none,watchdog=ACTION", opt_action,
      "what a guest reboot, shutdown or panic does (docs/command-line.md)" },
    { "no-reboot", NULL, opt_no_reboot, "exit instead of rebooting (-action reboot=shutdown)" },
    { "global", "DRIVER.PROP=VALUE", opt_global,
      "set a default property of every DRIVER device (and kvm-pit.lost_tick_policy)" },
    { "no-shutdown", NULL, opt_no_shutdown, "pause instead of exiting on guest shutdown (-action shutdown=pause)" },
    { "nodefaults", NULL, opt_nodefaults, "create no default devices (no serial port)" },
    { "qtest", "unix:PATH|chardev:ID", cmdline_opt_qtest,
      "serve the qtest protocol on a chardev (implies -accel qtest)" },
    { "qtest-log", "FILE|none", cmdline_opt_qtest_log, "log the qtest protocol to FILE" },
    { "qmp", "unix:PATH,server=on,wait=off|tcp:HOST:PORT,...|stdio", cmdline_opt_qmp,
      "serve QMP (the JSON monitor, docs/qmp.md) on a new chardev" },
    { "qmp-pretty", "DEV", cmdline_opt_qmp_pretty, "same as -qmp with indented JSON" },
    { "mon", "[chardev=]ID,mode=control[,pretty=on]", cmdline_opt_mon,
      "serve QMP on chardev ID" },
    { "bios", "FILE", cmdline_opt_bios,
      "firmware image (default without -kernel: SeaBIOS, " SEN_DEFAULT_BIOS ")" },
    { "boot", "[order=]DRIVES[,menu=on|off,strict=on|off,splash-time=MS,reboot-timeout=MS]",
      cmdline_opt_boot, "firmware boot order (c disk, d CD-ROM, n network, a floppy) and menu" },
    { "fw_cfg", "[name=]opt/NAME,file=FILE|string=STR", cmdline_opt_fw_cfg,
      "add a file for the firmware to fw_cfg" },
    { "option-rom", "[romfile=]FILE[,bootindex=N]", cmdline_opt_option_rom,
      "an option ROM the firmware runs at POST (fw_cfg genroms/FILE)" },
    { "sandbox", "on|off[,obsolete=allow,elevateprivileges=allow,spawn=allow,"
      "resourcecontrol=allow]", cmdline_opt_sandbox,
      "confine Sen to a seccomp allow-list of system calls once the VM is built" },
    { "runas", "USER|UID:GID", cmdline_opt_runas,
      "drop to this user once /dev/kvm, images and sockets are open" },
    { "chroot", "DIR", cmdline_opt_chroot, "change the root directory once the VM is built" },
    { "add-fd", "fd=N,set=S[,opaque=STR]", cmdline_opt_add_fd,
      "put inherited descriptor N in set S, opened as /dev/fdset/S (e.g. -drive file=)" },
    { "incoming", "tcp:HOST:PORT|unix:PATH|exec:CMD|fd:N|file:PATH|defer", opt_incoming,
      "wait for an incoming migration (docs/migration.md)" },
    { "loadvm", "NAME", opt_loadvm,
      "start from internal snapshot NAME of the qcow2 disks (docs/snapshots.md)" },
    { "version", NULL, opt_version, "print the version and exit" },
    { "help", NULL, cmdline_help, "print this help and exit" },
    { "h", NULL, cmdline_help, "same as -help" },
};

/* QEMU options Sen knows of but does not implement yet: a clear error, never ignored. */
static const char *const cmdline_unsupported[] = {
    "acpitable", "alt-grab", "async-teardown", "audio", "audiodev",
    "cdrom", "compat", "ctrl-grab", "curses", "d",
    "D", "debugcon", "dtb", "dump-vmstate", "echr", "enable-fips",
    "enable-sync-profile", "fda", "fdb", "fsdev", "full-screen", "g", "gdb",
    "hda", "hdb", "hdc", "hdd", "icount", "iscsi", "k", "kvm-shadow-mem",
    "L", "monitor", "msg", "mtdblock", "net",
    "no-hpet", "no-quit", "no-user-config", "nodefconfig",
    "only-migratable", "overcommit", "parallel", "pflash",
    "plugin", "portrait", "preconfig", "readconfig", "rotate",
    "rtc", "run-with", "s", "sd", "sdl", "seed", "semihosting",
    "semihosting-config", "set", "show-cursor", "singlestep", "smbios", "snapshot",
    "soundhw", "spice", "tb-size", "tpmdev", "trace", "usb", "usbdevice", "uuid", "vga",
    "virtfs", "virtioconsole", "vnc", "watchdog", "watchdog-action", "win2k-hack",
    "writeconfig", "xen-attach", "xen-domid",
};

static bool cmdline_help(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    printf("usage: sen [options]\n\n"
           "Sen runs a QEMU-style x86 PC on Linux KVM.  Options take one or two dashes.\n\n");
    for (size_t i = 0; i < G_N_ELEMENTS(cmdline_options); i++) {
        const CmdlineOption *o = &cmdline_options[i];
        g_autofree char *syn = g_strdup_printf("-%s%s%s", o->name, o->argname ? " " : "",
                                               o->argname ? o->argname : "");
        /* Long synopses get a line of their own so the descriptions stay in a column. */
        if (strlen(syn) > 24) {
            printf("%s\n%-24s %s\n", syn, "", o->help);
        } else {
            printf("%-24s %s\n", syn, o->help);
        }
    }
    printf("\nSee docs/command-line.md for details and limits.\n");
    s->exit_early = true;
    return true;
}

/* ---- after the last option ---- */

static bool cmdline_finish(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;

    if (s->smp_given && !cmdline_smp_finish(s, errp)) {
        return false;
    }
    if (!cfg->kernel && cfg->initrd) {
        error_setg(errp, "%s: -initrd only allowed with -kernel option", s->initrd_what);
        return false;
    }
    if (!cfg->kernel && cfg->append) {
        error_setg(errp, "%s: -append only allowed with -kernel option", s->append_what);
        return false;
    }
    if (cfg->daemonize && cfg->nographic) {
        error_setg(errp, "-nographic cannot be used with -daemonize");
        return false;
    }
    if (cfg->incoming && cfg->loadvm) {
        /* QEMU 7.2's words: the incoming VM's images stay inactive until the migration
         * ends, so a snapshot could not be loaded into them. */
        error_setg(errp, "'incoming' and 'loadvm' options are mutually exclusive");
        return false;
    }
    if (s->qtest_log_given && !cfg->qtest_chardev) {
        error_setg(errp, "-qtest-log: only allowed with -qtest");
        return false;
    }
    if (cfg->qtest_chardev && !s->accel_given) {
        cfg->accel = ACCEL_QTEST;
    }
    if (!cmdline_memory_finish(s, errp) || !cmdline_numa_finish(s, errp)) {
        return false;
    }
    return cmdline_chardev_finish(s, errp) && cmdline_monitor_finish(s, errp) &&
           cmdline_net_finish(s, errp);
}

/* ---- the loop ---- */

static const CmdlineOption *cmdline_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cmdline_options); i++) {
        if (strcmp(cmdline_options[i].name, name) == 0) {
            return &cmdline_options[i];
        }
    }
    return NULL;
}

static bool cmdline_is_unsupported(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cmdline_unsupported); i++) {
        if (strcmp(cmdline_unsupported[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static bool cmdline_parse_args(CmdlineState *s, int argc, char **argv, Error **errp)
{
    for (int i = 1; i < argc && !s->exit_early; i++) {
        const char *opt = argv[i];
        const char *name = opt;

        if (opt[0] != '-') {
            error_setg(errp, "%s: a disk image as a plain argument is not supported by Sen "
                       "yet", opt);
            return false;
        }
        name += (opt[1] == '-') ? 2 : 1;
        const CmdlineOption *o = *name ? cmdline_find(name) : NULL;
        if (!o) {
            if (*name && cmdline_is_unsupported(name)) {
                error_setg(errp, "%s: option not supported by Sen yet", opt);
            } else {
                error_setg(errp, "%s: invalid option", opt);
            }
            return false;
        }
        const char *arg = NULL;
        g_autofree char *what = NULL;
        if (o->argname) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", opt);
                return false;
            }
            arg = argv[++i];
            what = g_strdup_printf("%s %s", opt, arg);
        } else {
            what = g_strdup(opt);
        }
        if (!o->handle(s, what, arg, errp)) {
            return false;
        }
    }
    return true;
}

MachineConfig *cmdline_parse(int argc, char **argv, bool *exit_early, Error **errp)
{
    CmdlineState s = {
        .cfg = machine_config_new(),
        .chardev_what = g_ptr_array_new_with_free_func(g_free),
        .serial_what = g_ptr_array_new_with_free_func(g_free),
        .smp_what = g_string_new(NULL),
    };
    bool ok = cmdline_parse_args(&s, argc, argv, errp) && (s.exit_early ||
                                                          cmdline_finish(&s, errp));

    *exit_early = ok && s.exit_early;
    if (*exit_early) {
        fflush(stdout);
    }
    g_ptr_array_unref(s.chardev_what);
    g_ptr_array_unref(s.serial_what);
    g_string_free(s.smp_what, true);
    g_free(s.qtest_what);
    g_free(s.initrd_what);
    g_free(s.append_what);
    g_free(s.memory_backend_what);
    g_free(s.numa_what);
    if (s.numa_dists) {
        g_array_unref(s.numa_dists);
    }
    if (!ok || *exit_early) {
        machine_config_free(s.cfg);
        return NULL;
    }
    return s.cfg;
}
