/*
 * QMP commands of qapi/misc.json that concern isolation (docs/security.md).
 */
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "sen/monitor.h"
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
