/*
 * The isolation options: -sandbox, -runas, -chroot, -add-fd (docs/security.md).
 * Part of softmmu/cmdline.c.  What they do happens in os/ once the machine is built.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sen/os.h"
#include "cmdline-internal.h"

/* QEMU's -sandbox groups; NAME=allow adds the group to Sen's allow-list. */
static const struct {
    const char *key;
    unsigned bit;
} sandbox_keys[] = {
    { "obsolete", SANDBOX_ALLOW_OBSOLETE },
    { "elevateprivileges", SANDBOX_ALLOW_ELEVATE },
    { "spawn", SANDBOX_ALLOW_SPAWN },
    { "resourcecontrol", SANDBOX_ALLOW_RESOURCECTL },
};

bool cmdline_opt_sandbox(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "enable", errp);
    bool enable;
    unsigned allow = 0;

    if (!kv) {
        return false;
    }
    if (!keyval_has(kv, "enable")) {
        error_setg(errp, "%s: Parameter 'enable' is missing (on or off)", what);
        return false;
    }
    if (!keyval_get_bool(kv, what, "enable", false, &enable, errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(sandbox_keys); i++) {
        const char *v = keyval_get(kv, sandbox_keys[i].key);
        if (!v || strcmp(v, "deny") == 0) {
            continue;
        }
        /* QEMU's "children" also stops children from gaining privileges; Sen always sets
         * no_new_privs with the filter, so it means deny here. */
        if (strcmp(v, "children") == 0 && sandbox_keys[i].bit == SANDBOX_ALLOW_ELEVATE) {
            continue;
        }
        if (strcmp(v, "allow") != 0) {
            error_setg(errp, "%s: invalid argument for %s: '%s' (allow or deny%s)", what,
                       sandbox_keys[i].key, v,
                       sandbox_keys[i].bit == SANDBOX_ALLOW_ELEVATE ? " or children" : "");
            return false;
        }
        allow |= sandbox_keys[i].bit;
    }
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    s->cfg->sandbox = enable;
    s->cfg->sandbox_allow = enable ? allow : 0;
    return true;
}

bool cmdline_opt_runas(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    RunasIds ids;

    /* Looked up now so that a typo fails before anything is created. */
    if (!os_runas_resolve(arg, &ids, errp)) {
        return false;
    }
    g_free(s->cfg->runas);
    s->cfg->runas = g_strdup(arg);
    return true;
}

bool cmdline_opt_chroot(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    struct stat st;

    if (stat(arg, &st) < 0) {
        error_setg_errno(errp, errno, "%s: cannot use '%s' as the root directory", what, arg);
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        error_setg(errp, "%s: '%s' is not a directory", what, arg);
        return false;
    }
    g_free(s->cfg->chroot_dir);
    s->cfg->chroot_dir = g_strdup(arg);
    return true;
}

static void add_fd_config_free(gpointer p)
{
    AddFdConfig *a = p;

    g_free(a->opaque);
    g_free(a);
}

/*
 * -add-fd fd=N,set=S[,opaque=STR], checked as QEMU does: N must be an inherited
 * descriptor (open, not close-on-exec: Sen's own are) and not stdin/stdout/stderr.
 * It joins its set when the machine is created (os/fdset.c).
 */
bool cmdline_opt_add_fd(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, NULL, errp);
    uint64_t fd, set;

    if (!kv) {
        return false;
    }
    if (!keyval_has(kv, "fd")) {
        error_setg(errp, "%s: fd option is required and must be non-negative", what);
        return false;
    }
    if (!keyval_has(kv, "set")) {
        error_setg(errp, "%s: set option is required and must be non-negative", what);
        return false;
    }
    if (!keyval_get_u64(kv, what, "fd", 0, &fd, errp) ||
        !keyval_get_u64(kv, what, "set", 0, &set, errp)) {
        return false;
    }
    g_autofree char *opaque = keyval_take(kv, "opaque");
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    if (fd <= STDERR_FILENO) {
        error_setg(errp, "%s: fd cannot be a standard I/O stream", what);
        return false;
    }
    int flags = fd > INT_MAX ? -1 : fcntl((int)fd, F_GETFD);
    bool taken = false;
    for (guint i = 0; s->cfg->add_fds && i < s->cfg->add_fds->len; i++) {
        taken |= ((AddFdConfig *)g_ptr_array_index(s->cfg->add_fds, i))->fd == (int)fd;
    }
    if (flags < 0 || (flags & FD_CLOEXEC) || taken) {
        error_setg(errp, "%s: fd is not valid or already in use", what);
        return false;
    }
    if (set > INT64_MAX) {
        error_setg(errp, "%s: set option is required and must be non-negative", what);
        return false;
    }
    AddFdConfig *a = g_new0(AddFdConfig, 1);
    a->fd = (int)fd;
    a->set = (int64_t)set;
    a->opaque = g_steal_pointer(&opaque);
    if (!s->cfg->add_fds) {
        s->cfg->add_fds = g_ptr_array_new_with_free_func(add_fd_config_free);
    }
    g_ptr_array_add(s->cfg->add_fds, a);
    return true;
}
