/*
 * -chroot and -runas, and the order in which Sen isolates itself (docs/security.md).
 *
 * As in QEMU, both happen once the machine is built: /dev/kvm, images, sockets and the
 * kernel image are already open, so the unprivileged user needs no access to them.  The
 * user is looked up while parsing the command line, when /etc/passwd is still reachable,
 * and again here, before the chroot.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sen/os.h"

static bool runas_parse_ids(const char *user, RunasIds *ids)
{
    const char *colon = strchr(user, ':');
    char *end;

    if (!colon || colon == user || !colon[1]) {
        return false;
    }
    errno = 0;
    unsigned long uid = strtoul(user, &end, 10);
    if (errno || end != colon || uid >= (uid_t)-1) {
        return false;
    }
    unsigned long gid = strtoul(colon + 1, &end, 10);
    if (errno || *end || gid >= (gid_t)-1 || !g_ascii_isdigit(colon[1]) ||
        !g_ascii_isdigit(user[0])) {
        return false;
    }
    ids->uid = (uid_t)uid;
    ids->gid = (gid_t)gid;
    ids->init_groups = false;
    return true;
}

bool os_runas_resolve(const char *user, RunasIds *ids, Error **errp)
{
    if (runas_parse_ids(user, ids)) {
        return true;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        if (errno) {
            error_setg_errno(errp, errno, "-runas %s: cannot look up the user", user);
        } else {
            error_setg(errp, "-runas %s: User \"%s\" doesn't exist", user, user);
        }
        return false;
    }
    ids->uid = pw->pw_uid;
    ids->gid = pw->pw_gid;
    ids->init_groups = true;
    return true;
}

/* setgroups, then setgid, then setuid: once the uid changes the rest are not allowed. */
static bool runas_drop(const char *user, const RunasIds *ids, Error **errp)
{
    if (ids->init_groups ? initgroups(user, ids->gid) < 0
                         : setgroups(1, &ids->gid) < 0) {
        error_setg_errno(errp, errno, "-runas %s: cannot set the supplementary groups", user);
        return false;
    }
    if (setgid(ids->gid) < 0) {
        error_setg_errno(errp, errno, "-runas %s: cannot change to group %u", user,
                         (unsigned)ids->gid);
        return false;
    }
    if (setuid(ids->uid) < 0) {
        error_setg_errno(errp, errno, "-runas %s: cannot change to user %u", user,
                         (unsigned)ids->uid);
        return false;
    }
    /* A drop that could be undone is no drop (setuid() as non-root only sets the euid). */
    if (ids->uid != 0 && setuid(0) == 0) {
        error_setg(errp, "-runas %s: could regain root after the drop", user);
        return false;
    }
    return true;
}

static bool isolate_chroot(const char *dir, Error **errp)
{
    if (chroot(dir) < 0) {
        error_setg_errno(errp, errno, "-chroot %s: cannot change the root directory", dir);
        return false;
    }
    if (chdir("/") < 0) {
        error_setg_errno(errp, errno, "-chroot %s: cannot enter the new root", dir);
        return false;
    }
    return true;
}

bool os_isolate(const MachineConfig *cfg, Error **errp)
{
    RunasIds ids;

    /* Looked up before the chroot hides /etc/passwd. */
    if (cfg->runas && !os_runas_resolve(cfg->runas, &ids, errp)) {
        return false;
    }
    if (cfg->chroot_dir && !isolate_chroot(cfg->chroot_dir, errp)) {
        return false;
    }
    if (cfg->runas && !runas_drop(cfg->runas, &ids, errp)) {
        return false;
    }
    return !cfg->sandbox || os_sandbox_install(cfg->sandbox_allow, errp);
}
