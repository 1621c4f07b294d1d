/*
 * argv -> MachineConfig, with QEMU's spellings (docs/command-line.md is the user's view).
 *
 * Options are handled in argv order; each handler validates its own argument at once so
 * the first bad option is the one reported.  What depends on several options (the -smp
 * topology, the default serial port, stdio sharing, -daemonize conflicts, -serial
 * chardev:ID references) is settled by cmdline_finish() after the last option.
 * Nothing here touches the disk beyond checking that input files can be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sen-config.h"
#include "sen/config.h"
#include "sen/device.h"

#define CMDLINE_MAX_SERIAL 4
#define CMDLINE_MAX_CPUS 1024
#define CMDLINE_MIN_RAM (UINT64_C(1) << 20)
#define CMDLINE_MAX_RAM (UINT64_C(4) << 50)
/* QEMU rounds -m up to this, so "-m 1000001k" means the same RAM in both. */
#define CMDLINE_RAM_ALIGN 8192

enum { SMP_CPUS, SMP_SOCKETS, SMP_DIES, SMP_CLUSTERS, SMP_CORES, SMP_THREADS, SMP_MAXCPUS,
       SMP_NKEYS };
static const char *const smp_keys[SMP_NKEYS] = {
    "cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus",
};

typedef struct CmdlineState {
    MachineConfig *cfg;
    bool exit_early;          /* a help/version option printed its text */

    GPtrArray *chardev_what;  /* char*, parallel to cfg->chardevs; NULL = default serial */
    GPtrArray *serial_what;   /* char*, parallel to cfg->serials */
    bool serial_given;        /* any -serial, even "none": no default serial port */
    char *qtest_what;         /* the -qtest option, for errors found at the end */
    char *initrd_what;
    char *append_what;
    bool accel_given;         /* -accel / -enable-kvm / -machine accel= */
    bool qtest_log_given;

    bool smp_given;
    bool smp_has[SMP_NKEYS];
    uint64_t smp_val[SMP_NKEYS];
    GString *smp_what;        /* "-smp a -smp b": QEMU merges repeated -smp */
} CmdlineState;

typedef struct CmdlineOption {
    const char *name;
    const char *argname;      /* NULL: takes no argument */
    bool (*handle)(CmdlineState *s, const char *what, const char *arg, Error **errp);
    const char *help;
} CmdlineOption;

static bool cmdline_help(CmdlineState *s, const char *what, const char *arg, Error **errp);

/* ---- helpers ---- */

static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

/* Opens path the way a loader later will, so "missing/unreadable/a directory" shows now. */
static bool check_readable(const char *path, int *err)
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

static Keyval *parse_opts(const char *what, const char *arg, const char *implied, Error **errp)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(arg, implied, &err);

    if (!kv) {
        error_prepend(&err, "%s: ", what);
        error_propagate(errp, err);
    }
    return kv;
}

/* ---- character devices ---- */

static ChardevConfig *chardev_add(CmdlineState *s, const char *what, const char *id,
                                  ChardevKind kind, Error **errp)
{
    if (machine_config_find_chardev(s->cfg, id)) {
        error_setg(errp, "%s: Duplicate ID '%s' for chardev", what, id);
        return NULL;
    }
    ChardevConfig *c = g_new0(ChardevConfig, 1);
    c->id = g_strdup(id);
    c->kind = kind;
    c->signal = true;
    g_ptr_array_add(s->cfg->chardevs, c);
    g_ptr_array_add(s->chardev_what, g_strdup(what));
    return c;
}

/* Reads the backend keys of kind from kv into c (path, host, port, server, ...). */
static bool chardev_read_opts(ChardevConfig *c, Keyval *kv, const char *what, Error **errp)
{
    switch (c->kind) {
    case CHARDEV_NULL:
        break;
    case CHARDEV_STDIO:
        if (!keyval_get_bool(kv, what, "mux", c->mux, &c->mux, errp) ||
            !keyval_get_bool(kv, what, "signal", true, &c->signal, errp)) {
            return false;
        }
        break;
    case CHARDEV_FILE:
        c->path = g_strdup(keyval_get(kv, "path"));
        if (!c->path || !*c->path) {
            error_setg(errp, "%s: file chardev requires path=FILE", what);
            return false;
        }
        break;
    case CHARDEV_SOCKET: {
        c->path = g_strdup(keyval_get(kv, "path"));
        c->host = g_strdup(keyval_get(kv, "host"));
        c->port = g_strdup(keyval_get(kv, "port"));
        if (!keyval_get_bool(kv, what, "server", false, &c->server, errp)) {
            return false;
        }
        if (keyval_has(kv, "wait") && !c->server) {
            error_setg(errp, "%s: 'wait' option is incompatible with socket in client "
                       "connect mode", what);
            return false;
        }
        if (!keyval_get_bool(kv, what, "wait", true, &c->wait, errp)) {
            return false;
        }
        if (c->path && (c->host || c->port)) {
            error_setg(errp, "%s: socket takes either path= (unix) or host= and port= (tcp)",
                       what);
            return false;
        }
        if (c->path && !*c->path) {
            error_setg(errp, "%s: socket path must not be empty", what);
            return false;
        }
        if (!c->path) {
            uint64_t port;
            if (!c->host || !*c->host || !c->port) {
                error_setg(errp, "%s: socket requires path=PATH or host=HOST,port=PORT",
                           what);
                return false;
            }
            /* Port 0 lets a server take any free port; a client needs a real one. */
            if (!parse_uint(c->port, &port, NULL) || port > 65535 ||
                (port == 0 && !c->server)) {
                error_setg(errp, "%s: invalid port '%s'", what, c->port);
                return false;
            }
        }
        break;
    }
    }
    return keyval_check_all_used(kv, what, errp);
}

static bool chardev_kind_parse(const char *name, ChardevKind *kind)
{
    static const struct { const char *name; ChardevKind kind; } kinds[] = {
        { "null", CHARDEV_NULL }, { "stdio", CHARDEV_STDIO },
        { "file", CHARDEV_FILE }, { "socket", CHARDEV_SOCKET },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        if (strcmp(name, kinds[i].name) == 0) {
            *kind = kinds[i].kind;
            return true;
        }
    }
    return false;
}

static bool opt_chardev(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0) {
        printf("Available chardev backend types:\n  null\n  stdio\n  file\n  socket\n");
        s->exit_early = true;
        return true;
    }
    g_autoptr(Keyval) kv = parse_opts(what, arg, "backend", errp);
    if (!kv) {
        return false;
    }
    const char *backend = keyval_get(kv, "backend");
    const char *id = keyval_get(kv, "id");
    ChardevKind kind;

    if (!backend || !*backend) {
        error_setg(errp, "%s: chardev backend is missing (null, stdio, file or socket)", what);
        return false;
    }
    if (!chardev_kind_parse(backend, &kind)) {
        error_setg(errp, "%s: chardev backend '%s' is not supported by Sen "
                   "(null, stdio, file or socket)", what, backend);
        return false;
    }
    if (!id) {
        error_setg(errp, "%s: Parameter 'id' is missing", what);
        return false;
    }
    if (!id_wellformed(id)) {
        error_setg(errp, "%s: invalid chardev id '%s' (a letter, then letters, digits, "
                   "'-', '.' or '_')", what, id);
        return false;
    }
    ChardevConfig *c = chardev_add(s, what, id, kind, errp);
    return c && chardev_read_opts(c, kv, what, errp);
}

/*
 * The short backend spellings of -serial and -qtest ("stdio", "file:PATH",
 * "unix:PATH[,server=on,...]", "tcp:HOST:PORT[,...]") as a chardev named id.
 * Returns false with *errp set, or true with *ref set instead for "chardev:ID".
 */
static bool chardev_legacy(CmdlineState *s, const char *what, const char *spec,
                           const char *id, const char **ref, Error **errp)
{
    ChardevConfig *c;
    g_autoptr(Keyval) kv = NULL;

    *ref = NULL;
    if (g_str_has_prefix(spec, "chardev:")) {
        *ref = spec + strlen("chardev:");
        if (!**ref) {
            error_setg(errp, "%s: chardev: needs an id", what);
            return false;
        }
        return true;
    }
    if (strcmp(spec, "stdio") == 0 || strcmp(spec, "mon:stdio") == 0) {
        c = chardev_add(s, what, id, CHARDEV_STDIO, errp);
        /* mon:stdio is QEMU's multiplexed stdio; Sen has no HMP, only the Ctrl-A keys. */
        if (c) {
            c->mux = spec[0] == 'm';
        }
        return c != NULL;
    }
    if (strcmp(spec, "null") == 0) {
        return chardev_add(s, what, id, CHARDEV_NULL, errp) != NULL;
    }
    if (g_str_has_prefix(spec, "file:")) {
        if (!spec[5]) {
            error_setg(errp, "%s: file: needs a path", what);
            return false;
        }
        c = chardev_add(s, what, id, CHARDEV_FILE, errp);
        if (c) {
            c->path = g_strdup(spec + 5);
        }
        return c != NULL;
    }
    if (g_str_has_prefix(spec, "unix:")) {
        kv = parse_opts(what, spec + 5, "path", errp);
    } else if (g_str_has_prefix(spec, "tcp:")) {
        const char *addr = spec + 4;
        const char *comma = strchr(addr, ',');
        g_autofree char *hostport = g_strndup(addr, comma ? (size_t)(comma - addr)
                                                          : strlen(addr));
        char *colon = strrchr(hostport, ':');
        if (!colon) {
            error_setg(errp, "%s: tcp: needs HOST:PORT", what);
            return false;
        }
        *colon = '\0';
        /* QEMU's tcp::PORT (empty host) listens on every address. */
        g_autofree char *opts = g_strdup_printf("%s%shost=%s,port=%s",
                                                comma ? comma + 1 : "", comma ? "," : "",
                                                *hostport ? hostport : "0.0.0.0", colon + 1);
        kv = parse_opts(what, opts, NULL, errp);
    } else {
        error_setg(errp, "%s: character backend '%s' is not supported by Sen (stdio, "
                   "mon:stdio, null, file:PATH, unix:PATH, tcp:HOST:PORT, chardev:ID)",
                   what, spec);
        return false;
    }
    if (!kv) {
        return false;
    }
    c = chardev_add(s, what, id, CHARDEV_SOCKET, errp);
    return c && chardev_read_opts(c, kv, what, errp);
}

static bool opt_serial(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    const char *ref;

    s->serial_given = true;
    if (strcmp(arg, "none") == 0) {
        return true; /* as in QEMU: no port, and no default port either */
    }
    if (s->cfg->serials->len >= CMDLINE_MAX_SERIAL) {
        error_setg(errp, "%s: too many serial ports (at most %d)", what, CMDLINE_MAX_SERIAL);
        return false;
    }
    g_autofree char *id = g_strdup_printf("serial%u", s->cfg->serials->len);
    if (!chardev_legacy(s, what, arg, id, &ref, errp)) {
        return false;
    }
    g_ptr_array_add(s->cfg->serials, g_strdup(ref ? ref : id));
    g_ptr_array_add(s->serial_what, g_strdup(what));
    return true;
}

static bool opt_qtest(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    const char *ref;

    if (s->cfg->qtest_chardev) {
        error_setg(errp, "%s: -qtest given more than once", what);
        return false;
    }
    if (!chardev_legacy(s, what, arg, "qtest", &ref, errp)) {
        return false;
    }
    s->cfg->qtest_chardev = g_strdup(ref ? ref : "qtest");
    s->qtest_what = g_strdup(what);
    return true;
}

static bool opt_qtest_log(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_free(s->cfg->qtest_log);
    s->cfg->qtest_log = strcmp(arg, "none") == 0 ? NULL : g_strdup(arg);
    s->qtest_log_given = true;
    return true;
}

/* ---- machine, accelerator, CPU, memory ---- */

static bool accel_parse(const char *name, AccelKind *kind)
{
    if (strcmp(name, "kvm") == 0) {
        *kind = ACCEL_KVM;
        return true;
    }
    if (strcmp(name, "qtest") == 0) {
        *kind = ACCEL_QTEST;
        return true;
    }
    return false;
}

static bool opt_accel(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = parse_opts(what, arg, "accel", errp);
    if (!kv) {
        return false;
    }
    const char *name = keyval_get(kv, "accel");
    if (name && strcmp(name, "help") == 0) {
        printf("Accelerators supported in Sen:\nkvm\nqtest\n");
        s->exit_early = true;
        return true;
    }
    if (!name || !*name) {
        error_setg(errp, "%s: Parameter 'accel' is missing", what);
        return false;
    }
    if (!accel_parse(name, &s->cfg->accel)) {
        error_setg(errp, "%s: accelerator '%s' is not supported by Sen (kvm or qtest)",
                   what, name);
        return false;
    }
    s->accel_given = true;
    return keyval_check_all_used(kv, what, errp);
}

static bool opt_enable_kvm(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    s->cfg->accel = ACCEL_KVM;
    s->accel_given = true;
    return true;
}

static bool opt_machine(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = parse_opts(what, arg, "type", errp);
    if (!kv) {
        return false;
    }
    const char *type = keyval_get(kv, "type");
    const char *accel = keyval_get(kv, "accel");

    if (type && strcmp(type, "help") == 0) {
        printf("Supported machines are:\n"
               "pc                   Standard PC (i440FX + PIIX, 1996) (default)\n"
               "pc-i440fx-*          alias of pc\n");
        s->exit_early = true;
        return true;
    }
    if (type) {
        if (strcmp(type, "pc") != 0 && !g_str_has_prefix(type, "pc-i440fx-")) {
            error_setg(errp, "%s: unsupported machine type '%s'. "
                       "Use -machine help to list supported machines", what, type);
            return false;
        }
        g_free(s->cfg->machine_type);
        s->cfg->machine_type = g_strdup("pc");
    }
    if (accel) {
        /* The legacy form is a fallback list ("kvm:tcg"): take the first Sen has. */
        g_auto(GStrv) names = g_strsplit(accel, ":", -1);
        bool found = false;
        for (char **n = names; *n && !found; n++) {
            found = accel_parse(*n, &s->cfg->accel);
        }
        if (!found) {
            error_setg(errp, "%s: accelerator '%s' is not supported by Sen (kvm or qtest)",
                       what, accel);
            return false;
        }
        s->accel_given = true;
    }
    return keyval_check_all_used(kv, what, errp);
}

static bool opt_cpu(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(arg, ",", -1);

    if (strcmp(parts[0], "help") == 0) {
        printf("Available CPUs:\n  host  KVM processor with all supported host features\n"
               "  max   alias of host\n");
        s->exit_early = true;
        return true;
    }
    if (strcmp(parts[0], "host") != 0 && strcmp(parts[0], "max") != 0) {
        error_setg(errp, "%s: CPU model '%s' is not supported by Sen (host or max)", what,
                   parts[0]);
        return false;
    }
    for (char **f = parts + 1; *f; f++) {
        /* Sen always hides ARCH_CAPABILITIES, so QEMU's workaround flag is a no-op. */
        if (strcmp(*f, "-arch-capabilities") == 0 ||
            strcmp(*f, "arch-capabilities=off") == 0) {
            continue;
        }
        error_setg(errp, "%s: CPU feature setting '%s' is not supported by Sen yet", what,
                   *f);
        return false;
    }
    g_free(s->cfg->cpu_model);
    s->cfg->cpu_model = g_strdup("host");
    return true;
}

static bool opt_m(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = parse_opts(what, arg, "size", errp);
    Error *err = NULL;
    uint64_t size;

    if (!kv) {
        return false;
    }
    if (keyval_has(kv, "maxmem") || keyval_has(kv, "slots")) {
        error_setg(errp, "%s: memory hotplug is not supported yet", what);
        return false;
    }
    const char *str = keyval_get(kv, "size");
    if (!str) {
        error_setg(errp, "%s: missing size", what);
        return false;
    }
    if (!parse_size(str, 1024 * 1024, &size, &err)) {
        error_prepend(&err, "%s: ", what);
        error_propagate(errp, err);
        return false;
    }
    if (size < CMDLINE_MIN_RAM) {
        error_setg(errp, "%s: RAM size %" PRIu64 " bytes is too small (at least 1M)", what,
                   size);
        return false;
    }
    if (size > CMDLINE_MAX_RAM) {
        error_setg(errp, "%s: RAM size is too large (at most 4P)", what);
        return false;
    }
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    s->cfg->ram_size = (size + CMDLINE_RAM_ALIGN - 1) & ~(uint64_t)(CMDLINE_RAM_ALIGN - 1);
    return true;
}

static bool opt_smp(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = parse_opts(what, arg, "cpus", errp);
    if (!kv) {
        return false;
    }
    for (int i = 0; i < SMP_NKEYS; i++) {
        uint64_t v;
        if (!keyval_has(kv, smp_keys[i])) {
            continue;
        }
        if (!keyval_get_u64(kv, what, smp_keys[i], 0, &v, errp)) {
            return false;
        }
        if (v > UINT32_MAX) {
            error_setg(errp, "%s: %s=%" PRIu64 " is too large", what, smp_keys[i], v);
            return false;
        }
        s->smp_has[i] = true;
        s->smp_val[i] = v;
    }
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    g_string_append_printf(s->smp_what, "%s%s", s->smp_given ? " " : "", what);
    s->smp_given = true;
    return true;
}

/* QEMU's derivation rules (since 6.2: prefer cores over sockets), then the checks. */
static bool smp_finish(CmdlineState *s, Error **errp)
{
    const char *what = s->smp_what->str;
    uint64_t v[SMP_NKEYS];

    for (int i = 0; i < SMP_NKEYS; i++) {
        v[i] = s->smp_has[i] ? s->smp_val[i] : 0;
        if (s->smp_has[i] && v[i] == 0) {
            if (i == SMP_CPUS) {
                error_setg(errp, "%s: Invalid SMP CPUs 0", what);
            } else {
                error_setg(errp, "%s: Invalid CPU topology: CPU topology parameters must "
                           "be greater than zero", what);
            }
            return false;
        }
    }
    if (v[SMP_CLUSTERS] > 1) {
        error_setg(errp, "%s: clusters not supported by this machine's CPU topology", what);
        return false;
    }
    uint64_t cpus = v[SMP_CPUS], sockets = v[SMP_SOCKETS], cores = v[SMP_CORES];
    uint64_t threads = v[SMP_THREADS], maxcpus = v[SMP_MAXCPUS];
    uint64_t dies = v[SMP_DIES] ? v[SMP_DIES] : 1;

    if (cpus == 0 && maxcpus == 0) {
        sockets = sockets ? sockets : 1;
        cores = cores ? cores : 1;
        threads = threads ? threads : 1;
    } else {
        maxcpus = maxcpus ? maxcpus : cpus;
        if (cores == 0) {
            sockets = sockets ? sockets : 1;
            threads = threads ? threads : 1;
            cores = maxcpus / (sockets * dies * threads);
        } else if (sockets == 0) {
            threads = threads ? threads : 1;
            sockets = maxcpus / (dies * cores * threads);
        }
        if (threads == 0) {
            threads = maxcpus / (sockets * dies * cores);
        }
    }
    uint64_t total;
    bool overflow = __builtin_mul_overflow(sockets, dies, &total) ||
                    __builtin_mul_overflow(total, cores, &total) ||
                    __builtin_mul_overflow(total, threads, &total);
    maxcpus = maxcpus ? maxcpus : total;
    cpus = cpus ? cpus : maxcpus;

    g_autofree char *topo = g_strdup_printf(
        "sockets (%" PRIu64 ") * dies (%" PRIu64 ") * cores (%" PRIu64 ") * threads (%"
        PRIu64 ")", sockets, dies, cores, threads);
    if (overflow || total != maxcpus) {
        error_setg(errp, "%s: Invalid CPU topology: product of the hierarchy must match "
                   "maxcpus: %s != maxcpus (%" PRIu64 ")", what, topo, maxcpus);
        return false;
    }
    if (maxcpus < cpus) {
        error_setg(errp, "%s: Invalid CPU topology: maxcpus must be equal to or greater "
                   "than smp: %s == maxcpus (%" PRIu64 ") < smp_cpus (%" PRIu64 ")",
                   what, topo, maxcpus, cpus);
        return false;
    }
    if (maxcpus > CMDLINE_MAX_CPUS) {
        error_setg(errp, "%s: Invalid SMP CPUs %" PRIu64 ". The max CPUs supported by "
                   "machine 'pc' is %d", what, maxcpus, CMDLINE_MAX_CPUS);
        return false;
    }
    MachineConfig *cfg = s->cfg;
    cfg->smp_cpus = cpus;
    cfg->smp_sockets = sockets;
    cfg->smp_dies = dies;
    cfg->smp_cores = cores;
    cfg->smp_threads = threads;
    cfg->smp_maxcpus = maxcpus;
    return true;
}

/* ---- boot ---- */

static bool opt_kernel(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    int err;

    if (!check_readable(arg, &err)) {
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
        if (!check_readable(file, &err)) {
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
    g_autoptr(Keyval) kv = parse_opts(what, arg, "type", errp);
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

static bool opt_device(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0) {
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
    g_autoptr(Keyval) kv = parse_opts(what, arg, "driver", errp);
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
    g_autoptr(Keyval) kv = parse_opts(what, arg, "guest", errp);
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
FLAG_HANDLER(opt_no_reboot, no_reboot)
FLAG_HANDLER(opt_no_shutdown, no_shutdown)
FLAG_HANDLER(opt_nodefaults, nodefaults)

static bool opt_version(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    printf("Sen emulator version %s (QEMU-compatible)\n", SEN_VERSION);
    s->exit_early = true;
    return true;
}

static const CmdlineOption cmdline_options[] = {
    { "machine", "[type=]pc[,accel=kvm|qtest]", opt_machine,
      "select the machine type (only pc; pc-i440fx-* are aliases; 'help' lists)" },
    { "M", "pc", opt_machine, "same as -machine" },
    { "cpu", "host|max", opt_cpu, "select the CPU model (the host's CPU through KVM)" },
    { "accel", "[accel=]kvm|qtest", opt_accel, "select the accelerator" },
    { "enable-kvm", NULL, opt_enable_kvm, "same as -accel kvm" },
    { "m", "[size=]SIZE", opt_m, "guest RAM size (plain number: MiB; suffixes K M G T)" },
    { "smp", "[cpus=]N[,sockets=S,dies=D,cores=C,threads=T,maxcpus=M]", opt_smp,
      "number of vCPUs and their topology" },
    { "kernel", "FILE", opt_kernel, "boot this Linux bzImage, PVH or multiboot kernel" },
    { "initrd", "FILE", opt_initrd, "initial ramdisk (multiboot: \"mod args,mod2 args\")" },
    { "append", "CMDLINE", opt_append, "kernel command line" },
    { "nographic", NULL, opt_nographic,
      "no display: COM1 on stdio, Ctrl-A x quits, Ctrl-A h for help" },
    { "display", "none", opt_display, "no display (COM1 goes nowhere by default)" },
    { "serial", "DEV", opt_serial,
      "next COM port on DEV: stdio, mon:stdio, null, file:PATH, unix:PATH, tcp:HOST:PORT, "
      "chardev:ID or none" },
    { "chardev", "BACKEND,id=ID[,...]", opt_chardev,
      "character backend: null, stdio, file (path=), socket (path= or host=,port=)" },
    { "device", "DRIVER[,PROP=VALUE...]", opt_device,
      "add a device ('-device help' lists them, '-device DRIVER,help' its properties)" },
    { "name", "[guest=]NAME", opt_name, "name of the guest" },
    { "pidfile", "FILE", opt_pidfile, "write the process id to FILE" },
    { "daemonize", NULL, opt_daemonize, "detach from the terminal once the VM is set up" },
    { "S", NULL, opt_S, "do not start the vCPUs at start-up" },
    { "no-reboot", NULL, opt_no_reboot, "exit instead of rebooting" },
    { "no-shutdown", NULL, opt_no_shutdown, "pause instead of exiting on guest shutdown" },
    { "nodefaults", NULL, opt_nodefaults, "create no default devices (no serial port)" },
    { "qtest", "unix:PATH|chardev:ID", opt_qtest,
      "serve the qtest protocol on a chardev (implies -accel qtest)" },
    { "qtest-log", "FILE|none", opt_qtest_log, "log the qtest protocol to FILE" },
    { "version", NULL, opt_version, "print the version and exit" },
    { "help", NULL, cmdline_help, "print this help and exit" },
    { "h", NULL, cmdline_help, "same as -help" },
};

/* QEMU options Sen knows of but does not implement yet: a clear error, never ignored. */
static const char *const cmdline_unsupported[] = {
    "acpitable", "action", "add-fd", "alt-grab", "async-teardown", "audio", "audiodev",
    "bios", "blockdev", "boot", "cdrom", "chroot", "compat", "ctrl-grab", "curses", "d",
    "D", "debugcon", "drive", "dtb", "dump-vmstate", "echr", "enable-fips",
    "enable-sync-profile", "fda", "fdb", "fsdev", "full-screen", "fw_cfg", "g", "gdb",
    "global", "hda", "hdb", "hdc", "hdd", "icount", "incoming", "iscsi", "k", "kvm-shadow-mem",
    "L", "loadvm", "mem-path", "mem-prealloc", "mon", "monitor", "msg", "mtdblock", "net",
    "netdev", "nic", "no-acpi", "no-hpet", "no-quit", "no-user-config", "nodefconfig",
    "numa", "object", "only-migratable", "option-rom", "overcommit", "parallel", "pflash",
    "plugin", "portrait", "preconfig", "qmp", "qmp-pretty", "readconfig", "rotate",
    "rtc", "run-with", "runas", "s", "sandbox", "sd", "sdl", "seed", "semihosting",
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

/* The default COM1 rule (docs/command-line.md). */
static bool serial_default(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;

    if (s->serial_given || cfg->nodefaults) {
        return true;
    }
    bool to_null = cfg->daemonize || (cfg->display_none && !cfg->nographic);
    const ChardevConfig *clash = machine_config_find_chardev(cfg, "serial0");
    if (clash) {
        guint i;
        g_ptr_array_find(cfg->chardevs, clash, &i);
        error_setg(errp, "%s: chardev id 'serial0' is reserved for the default serial port "
                   "(add -serial chardev:serial0 or -serial none)",
                   (const char *)g_ptr_array_index(s->chardev_what, i));
        return false;
    }
    /* what = NULL: the default port has no option to name in errors. */
    ChardevConfig *c = chardev_add(s, NULL, "serial0",
                                   to_null ? CHARDEV_NULL : CHARDEV_STDIO, errp);
    if (!c) {
        return false;
    }
    c->mux = !to_null && cfg->nographic;
    g_ptr_array_add(cfg->serials, g_strdup("serial0"));
    g_ptr_array_add(s->serial_what, g_strdup("-serial"));
    return true;
}

static bool check_stdio(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    int first = -1;

    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const ChardevConfig *c = g_ptr_array_index(cfg->chardevs, i);
        const char *what = g_ptr_array_index(s->chardev_what, i);
        if (c->kind != CHARDEV_STDIO) {
            continue;
        }
        if (cfg->daemonize) {
            error_setg(errp, "%s: cannot use stdio with -daemonize", what ? what : "-daemonize");
            return false;
        }
        if (first < 0) {
            first = i;
            continue;
        }
        if (!what) {
            /* The default port clashes with a user's stdio chardev: name the user's. */
            error_setg(errp, "%s: cannot use stdio by multiple character devices (the "
                       "default serial port is on stdio; add -serial none or -serial "
                       "chardev:%s)", (const char *)g_ptr_array_index(s->chardev_what, first),
                       ((ChardevConfig *)g_ptr_array_index(cfg->chardevs, first))->id);
        } else {
            error_setg(errp, "%s: cannot use stdio by multiple character devices", what);
        }
        return false;
    }
    return true;
}

/* -serial chardev:ID and -qtest chardev:ID name an existing chardev used by nobody else. */
static bool check_chardev_users(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    g_autoptr(GHashTable) users = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i <= cfg->serials->len; i++) {
        const char *id = i < cfg->serials->len ? g_ptr_array_index(cfg->serials, i)
                                               : cfg->qtest_chardev;
        const char *what = i < cfg->serials->len ? g_ptr_array_index(s->serial_what, i)
                                                 : s->qtest_what;
        if (!id) {
            continue;
        }
        if (!machine_config_find_chardev(cfg, id)) {
            error_setg(errp, "%s: chardev '%s' not found", what, id);
            return false;
        }
        if (!g_hash_table_add(users, (gpointer)id)) {
            error_setg(errp, "%s: chardev '%s' is already in use", what, id);
            return false;
        }
    }
    return true;
}

static bool cmdline_finish(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;

    if (s->smp_given && !smp_finish(s, errp)) {
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
    if (s->qtest_log_given && !cfg->qtest_chardev) {
        error_setg(errp, "-qtest-log: only allowed with -qtest");
        return false;
    }
    if (cfg->qtest_chardev && !s->accel_given) {
        cfg->accel = ACCEL_QTEST;
    }
    return serial_default(s, errp) && check_chardev_users(s, errp) && check_stdio(s, errp);
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
    if (!ok || *exit_early) {
        machine_config_free(s.cfg);
        return NULL;
    }
    return s.cfg;
}
