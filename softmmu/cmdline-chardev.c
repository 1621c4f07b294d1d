/*
 * The character-device options: -chardev, -serial, -qtest, -qtest-log and the legacy
 * backend spellings of -serial/-qtest, and the checks that need all of them (default
 * serial port, chardev:ID references, stdio sharing).  Part of softmmu/cmdline.c.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "cmdline-internal.h"

#define CMDLINE_MAX_SERIAL 4

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

/*
 * socket fd=N: a stream socket the caller opened and Sen inherited (QEMU's fd= address),
 * listening for server=on, connected otherwise; checked here, used at creation.
 */
static bool chardev_read_socket_fd(ChardevConfig *c, Keyval *kv, const char *what,
                                   Error **errp)
{
    uint64_t fd;
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);

    if (c->path || c->host || c->port) {
        error_setg(errp, "%s: socket takes either fd= or path= or host= and port=", what);
        return false;
    }
    if (!keyval_get_u64(kv, what, "fd", 0, &fd, errp)) {
        return false;
    }
    if (fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0) {
        error_setg(errp, "%s: fd=%" PRIu64 " is not an open descriptor", what, fd);
        return false;
    }
    if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
        error_setg(errp, "%s: fd=%" PRIu64 " is not a stream socket", what, fd);
        return false;
    }
    len = sizeof(listening);
    if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening != !c->server) {
        error_setg(errp, "%s: fd=%" PRIu64 " is %s listening socket, but server=%s", what,
                   fd, listening ? "a" : "not a", c->server ? "on" : "off");
        return false;
    }
    c->has_fd = true;
    c->fd = (int)fd;
    return true;
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
        if (keyval_has(kv, "fd")) {
            if (!chardev_read_socket_fd(c, kv, what, errp)) {
                return false;
            }
            break;
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

bool cmdline_opt_chardev(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0) {
        printf("Available chardev backend types:\n  null\n  stdio\n  file\n  socket\n");
        s->exit_early = true;
        return true;
    }
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "backend", errp);
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
        kv = cmdline_parse_opts(what, spec + 5, "path", errp);
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
        kv = cmdline_parse_opts(what, opts, NULL, errp);
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

bool cmdline_opt_serial(CmdlineState *s, const char *what, const char *arg, Error **errp)
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

bool cmdline_opt_qtest(CmdlineState *s, const char *what, const char *arg, Error **errp)
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

bool cmdline_opt_qtest_log(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_free(s->cfg->qtest_log);
    s->cfg->qtest_log = strcmp(arg, "none") == 0 ? NULL : g_strdup(arg);
    s->qtest_log_given = true;
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

bool cmdline_chardev_finish(CmdlineState *s, Error **errp)
{
    return serial_default(s, errp) && check_chardev_users(s, errp) && check_stdio(s, errp);
}
