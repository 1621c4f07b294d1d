/*
 * Isolating the Sen process once the machine is built (docs/security.md): the seccomp
 * sandbox, -chroot, -runas.  machine_create() calls os_isolate() after every device,
 * drive, chardev and monitor socket is open and before any vCPU runs guest code.
 */
#ifndef SEN_OS_H
#define SEN_OS_H

#include <stdbool.h>
#include <stdint.h>
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

/*
 * os/sandbox.c: false once a filter without the SandboxAllow group(s) is in force, so that
 * code about to fork (migrate exec:, tap scripts at hotplug) can refuse with an error
 * ("needs -sandbox on,spawn=allow") instead of being killed.
 */
bool os_sandbox_permits(unsigned group);
/* os/sandbox.c: whether a filter is in force (then calls off the list, such as
 * io_uring_setup for a hot-plugged tap's ring, must not be tried). */
bool os_sandbox_installed(void);

/* os/sandbox.c, for tests: whether name is on the list that `allow` produces. */
bool os_sandbox_allows(unsigned allow, const char *name);

/*
 * os/fdset.c: descriptor sets (-add-fd, /dev/fdset/N), process-wide like the descriptors.
 * fdset_add_fd takes fd over (closed by fdset_remove_fd/fdset_clear) and makes it
 * close-on-exec.
 */
G_GNUC_WARN_UNUSED_RESULT bool fdset_add_fd(int64_t set_id, int fd, const char *opaque,
                                            Error **errp);
/* Closes and forgets fd in set_id (every fd of the set when !has_fd); false if none. */
bool fdset_remove_fd(int64_t set_id, bool has_fd, int fd);
/* The lowest set id with no descriptor (QMP add-fd without fdset-id). */
int64_t fdset_unused_id(void);
typedef void FdsetVisitor(int64_t set_id, int fd, const char *fd_opaque, void *opaque);
void fdset_foreach(FdsetVisitor *visit, void *opaque);
void fdset_clear(void);
bool fdset_is_path(const char *path);

/*
 * os/fdset.c: descriptors named with QMP getfd.  fdname_take hands the descriptor to the
 * caller (e.g. migrate "fd:NAME") and forgets the name; error "File descriptor named
 * 'NAME' has not been found" (QEMU's).
 */
void fdname_put(const char *name, int fd);
bool fdname_close(const char *name);
G_GNUC_WARN_UNUSED_RESULT int fdname_take(const char *name, Error **errp);
void fdname_clear(void);

/*
 * open() for every file Sen opens by a user-given path: "/dev/fdset/N" duplicates a
 * descriptor of set N with the same access mode (errno ENOENT: no such set, EACCES: no
 * descriptor with that mode); anything else is open(path, flags | O_CLOEXEC, mode).
 */
int os_open(const char *path, int flags, ...);

#endif
