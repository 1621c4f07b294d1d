/*
 * QMP commands of qapi/misc.json that concern isolation (docs/security.md): the sandbox
 * probe and the -add-fd descriptor sets.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <unistd.h>
#include <sys/syscall.h>
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
