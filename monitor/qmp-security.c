/*
 * QMP commands of qapi/misc.json that concern isolation (docs/security.md): the sandbox
 * probe, the -add-fd descriptor sets and descriptors passed over the monitor socket.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "sen/chardev.h"
#include "sen/monitor.h"
#include "sen/os.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"

/*
 * execve(NULL) fails with EFAULT and does nothing, unless the sandbox forbids execve; then
 * the process dies by SIGSYS here, after os/sandbox.c printed why.
 */
bool qmp_x_debug_sandbox_probe(QmpCtx *ctx, Error **errp)
{
    if (syscall(SYS_execve, NULL, NULL, NULL) < 0 && errno == EFAULT) {
        return true;
    }
    error_setg_errno(errp, errno, "execve(NULL) did not fail with EFAULT");
    return false;
}

static void fdset_info_add(int64_t set_id, int fd, const char *fd_opaque, void *opaque)
{
    json_t *sets = opaque;
    json_t *set = NULL;

    for (size_t i = 0; i < json_array_size(sets); i++) {
        json_t *s = json_array_get(sets, i);
        if (json_integer_value(json_object_get(s, "fdset-id")) == set_id) {
            set = s;
        }
    }
    if (!set) {
        set = json_pack("{s:I, s:[]}", "fdset-id", (json_int_t)set_id, "fds");
        json_array_append_new(sets, set);
    }
    json_t *info = json_pack("{s:i}", "fd", fd);
    if (fd_opaque) {
        json_object_set_new(info, "opaque", json_string(fd_opaque));
    }
    json_array_append_new(json_object_get(set, "fds"), info);
}

json_t *qmp_query_fdsets(QmpCtx *ctx, Error **errp)
{
    json_t *sets = json_array();

    fdset_foreach(fdset_info_add, sets);
    return sets;
}

bool qmp_remove_fd(QmpCtx *ctx, int64_t fdset_id, bool has_fd, int64_t fd, Error **errp)
{
    if (fd >= INT_MIN && fd <= INT_MAX && fdset_remove_fd(fdset_id, has_fd, (int)fd)) {
        return true;
    }
    if (has_fd) {
        error_setg(errp, "File descriptor named 'fdset-id:%" PRId64 ", fd:%" PRId64
                   "' not found", fdset_id, fd);
    } else {
        error_setg(errp, "File descriptor named 'fdset-id:%" PRId64 "' not found", fdset_id);
    }
    return false;
}

/* The descriptor passed along with the command being run, or an error. */
static int qmp_passed_fd(QmpCtx *ctx, Error **errp)
{
    int fd = ctx->chr ? chardev_take_passed_fd(ctx->chr) : -1;
    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
    }
    return fd;
}

bool qmp_getfd(QmpCtx *ctx, const char *fdname, Error **errp)
{
    if (g_ascii_isdigit(fdname[0])) {
        error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return false;
    }
    int fd = qmp_passed_fd(ctx, errp);
    if (fd < 0) {
        return false;
    }
    fdname_put(fdname, fd);
    return true;
}

bool qmp_closefd(QmpCtx *ctx, const char *fdname, Error **errp)
{
    if (!fdname_close(fdname)) {
        error_setg(errp, "File descriptor named '%s' not found", fdname);
        return false;
    }
    return true;
}

json_t *qmp_add_fd(QmpCtx *ctx, bool has_fdset_id, int64_t fdset_id, bool has_opaque,
                   const char *opaque, Error **errp)
{
    if (has_fdset_id && fdset_id < 0) {
        error_setg(errp, "Parameter 'fdset-id' expects a non-negative value");
        return NULL;
    }
    int fd = qmp_passed_fd(ctx, errp);
    if (fd < 0) {
        return NULL;
    }
    int64_t id = has_fdset_id ? fdset_id : fdset_unused_id();
    if (!fdset_add_fd(id, fd, has_opaque ? opaque : NULL, errp)) {
        close(fd);
        return NULL;
    }
    return json_pack("{s:I, s:i}", "fdset-id", (json_int_t)id, "fd", fd);
}
