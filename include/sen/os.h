/*
 * Isolating the Sen process once the machine is built (docs/security.md): the seccomp
 * sandbox, -chroot, -runas.  machine_create() calls os_isolate() after every device,
 * drive, chardev and monitor socket is open and before any vCPU runs guest code.
 */
#ifndef SEN_OS_H
#define SEN_OS_H

#include <stdbool.h>
#include <sys/types.h>
#include "sen/config.h"
#include "sen/error.h"

/* -runas USER: a user name, or "uid:gid" as QEMU accepts.  Resolved once, at parse time. */
typedef struct RunasIds {
    uid_t uid;
    gid_t gid;
    bool init_groups;   /* a named user: set its supplementary groups too */
} RunasIds;

/* os/runas.c.  The error names the option ("-runas nobody: ..."). */
G_GNUC_WARN_UNUSED_RESULT bool os_runas_resolve(const char *user, RunasIds *ids,
                                                Error **errp);

/*
 * chroot, drop to the -runas user, install the -sandbox filter: each only when asked,
 * in this order (the filter forbids chroot and set*id).  On failure the process may be
 * half-isolated: the caller must exit.
 */
G_GNUC_WARN_UNUSED_RESULT bool os_isolate(const MachineConfig *cfg, Error **errp);

/*
 * os/sandbox.c: loads the seccomp allow-list (plus the SandboxAllow groups in allow) into
 * every thread of the process.  A call outside the list prints the call's name and kills
 * the process with SIGSYS.
 */
G_GNUC_WARN_UNUSED_RESULT bool os_sandbox_install(unsigned allow, Error **errp);

/* os/sandbox.c, for tests: whether name is on the list that `allow` produces. */
bool os_sandbox_allows(unsigned allow, const char *name);

#endif
