/*
 * -sandbox on: a seccomp allow-list of the system calls Sen makes once the machine is
 * built (libseccomp).
 *
 * Everything that needs a path, a privilege or a new process (opening /dev/kvm, images,
 * sockets, tap devices; -chroot; -runas) happens before os_isolate() installs the filter.
 * After it, the main loop (QMP, chardevs, timers, block completions, migration, network
 * backends), the block thread pool and the vCPU threads share one list: vCPU threads run
 * device models under the VM lock, so their needs are the main thread's.  The filter is
 * synchronised into every existing thread (TSYNC) and inherited by threads made later.
 *
 * QEMU's option groups are kept, but as additions to the allow-list: every group is denied
 * unless `NAME=allow` is given (QEMU allows all but `obsolete` by default; Sen's list is
 * stricter, see docs/security.md).
 *
 * A call outside the list is trapped: the SIGSYS handler prints which call it was and the
 * process dies by SIGSYS, as with SCMP_ACT_KILL_PROCESS, but with a line saying why.  The
 * trapped call never runs, whatever happens to the handler afterwards.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <seccomp.h>
#include "sen/os.h"

/* The calls every role needs after start-up, grouped by what uses them. */
static const char *const sandbox_base[] = {
    /* memory: malloc, guest RAM, balloon, NUMA binding, KSM/huge page advice */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2",
    "munlock", "mlockall", "munlockall", "mincore", "msync", "membarrier", "mbind",
    "get_mempolicy", "set_mempolicy", "memfd_create",
    /* file descriptors: images, chardevs, pidfile and socket removal at exit */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3",
    "fcntl", "ioctl", "fsync", "fdatasync", "sync_file_range", "fallocate", "ftruncate",
    "fstat", "newfstatat", "statx", "stat", "lstat", "fstatfs", "statfs", "open",
    "openat", "getdents64", "readlink", "readlinkat", "access", "faccessat",
    "faccessat2", "unlink", "unlinkat", "fadvise64", "flock", "copy_file_range",
    "sendfile", "splice", "tee", "getcwd", "fchmod", "umask",
    /* asynchronous block I/O (libaio) */
    "io_setup", "io_destroy", "io_submit", "io_getevents", "io_pgetevents", "io_cancel",
    /* tap's io_uring batches (net/tap-ring.c): rings made before the filter, limited to
     * readv/writev; io_uring_setup stays off the list (seccomp does not see what a ring
     * does) */
    "io_uring_enter",
    /* the main loop and its event sources */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "pipe", "pipe2",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "signalfd", "signalfd4",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
    "time",
    /* threads, signals (incl. this file's SIGSYS handler), exit */
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq",
    "set_tid_address", "exit", "exit_group", "gettid", "getpid", "getppid", "tgkill",
    "tkill", "sched_yield", "sched_getaffinity", "getcpu", "rt_sigaction",
    "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending", "sigaltstack",
    "restart_syscall", "getrandom",
    /* who and where we are (GLib, getaddrinfo) */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "getpgrp", "getpgid", "getsid", "uname", "sysinfo", "getrusage", "getrlimit",
    /* sockets: QMP, chardevs, migration, network backends */
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom",
    "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
};

/* QEMU's "obsolete" group: calls nothing modern makes. */
static const char *const sandbox_obsolete[] = {
    "readdir", "_sysctl", "bdflush", "create_module", "get_kernel_syms", "query_module",
    "sgetmask", "ssetmask", "sysfs", "uselib", "ustat", "vm86", "vm86old",
};

static const char *const sandbox_elevate[] = {
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid", "setgroups", "setpgid", "setsid", "capset",
};

/* clone without CLONE_THREAD (fork, posix_spawn) is added with this group too. */
static const char *const sandbox_spawn[] = {
    "fork", "vfork", "execve", "execveat", "wait4", "waitid", "kill",
};

static const char *const sandbox_resourcectl[] = {
    "getpriority", "setpriority", "sched_setparam", "sched_getparam",
    "sched_setscheduler", "sched_getscheduler", "sched_setaffinity",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getattr", "sched_setattr",
    "setrlimit", "prlimit64", "ioprio_set",
};

typedef struct SandboxGroup {
    unsigned allow_bit;  /* 0: always on the list */
    const char *const *names;
    size_t n;
} SandboxGroup;

static const SandboxGroup sandbox_groups[] = {
    { 0, sandbox_base, G_N_ELEMENTS(sandbox_base) },
    { SANDBOX_ALLOW_OBSOLETE, sandbox_obsolete, G_N_ELEMENTS(sandbox_obsolete) },
    { SANDBOX_ALLOW_ELEVATE, sandbox_elevate, G_N_ELEMENTS(sandbox_elevate) },
    { SANDBOX_ALLOW_SPAWN, sandbox_spawn, G_N_ELEMENTS(sandbox_spawn) },
    { SANDBOX_ALLOW_RESOURCECTL, sandbox_resourcectl, G_N_ELEMENTS(sandbox_resourcectl) },
};

bool os_sandbox_allows(unsigned allow, const char *name)
{
    for (size_t g = 0; g < G_N_ELEMENTS(sandbox_groups); g++) {
        const SandboxGroup *grp = &sandbox_groups[g];
        if (grp->allow_bit && !(allow & grp->allow_bit)) {
            continue;
        }
        for (size_t i = 0; i < grp->n; i++) {
            if (strcmp(grp->names[i], name) == 0) {
                return true;
            }
        }
    }
    /* Allowed with conditions on their arguments, see sandbox_add_conditional(). */
    return strcmp(name, "clone") == 0 || strcmp(name, "prctl") == 0 ||
           (strcmp(name, "prlimit64") == 0 && !(allow & SANDBOX_ALLOW_RESOURCECTL));
}

/*
 * For the SIGSYS handler, which may only use async-signal-safe calls: the names of the
 * system calls, resolved before the filter goes in.  Process-wide by nature (a signal
 * handler has no opaque pointer); written once, before the filter, then only read.
 */
#define SANDBOX_MAX_SYSCALL 1024
static bool sandbox_installed;
static unsigned sandbox_installed_allow;
static const char *sandbox_syscall_names[SANDBOX_MAX_SYSCALL];

static void sandbox_write_str(const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, s, len);
        if (n <= 0) {
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

static void sandbox_sigsys(int sig, siginfo_t *info, void *uctx)
{
    char num[16];
    int nr = info->si_syscall;
    unsigned v = nr < 0 ? 0 : (unsigned)nr;
    int i = sizeof(num) - 1;

    num[i] = '\0';
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    sandbox_write_str("sen: -sandbox on: system call ");
    sandbox_write_str(&num[i]);
    if (nr >= 0 && nr < SANDBOX_MAX_SYSCALL && sandbox_syscall_names[nr]) {
        sandbox_write_str(" (");
        sandbox_write_str(sandbox_syscall_names[nr]);
        sandbox_write_str(")");
    }
    sandbox_write_str(" is not allowed; killing the process\n");

    /* Die by SIGSYS, with the default action (terminate, core), as KILL_PROCESS would. */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigset_t set;
    sigaction(SIGSYS, &dfl, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + SIGSYS); /* not reached: the unblocked SIGSYS ends the process */
}

static void sandbox_resolve_names(void)
{
    for (int nr = 0; nr < SANDBOX_MAX_SYSCALL; nr++) {
        if (!sandbox_syscall_names[nr]) {
            /* Allocated once for the life of the process, for the handler. */
            sandbox_syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
                                                                         nr);
        }
    }
}

/* Calls allowed only with some arguments. */
static int sandbox_add_conditional(scmp_filter_ctx ctx, unsigned allow)
{
    int rc;

    /* New threads yes, new processes only with spawn=allow.  glibc makes threads with
     * clone3, whose flags sit in memory a filter cannot read: it gets ENOSYS, and glibc
     * falls back to clone, whose flags the filter checks. */
    if (allow & SANDBOX_ALLOW_SPAWN) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 0);
    } else {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    }
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    }
    /* Thread names (GLib, pthread_setname_np) only. */
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    }
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
    }
    if (allow & SANDBOX_ALLOW_RESOURCECTL) {
        return rc;
    }
    /* Reading limits (new_limit NULL) is getrlimit; changing them is resourcecontrol. */
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1,
                              SCMP_A2(SCMP_CMP_EQ, 0));
    }
    /* GLib's thread pool copies the creating thread's scheduling attributes into each new
     * thread (sched_getattr, then sched_setattr by thread id, which a filter cannot tell
     * from another process's).  Refused, GLib spawns pool threads from a helper thread
     * with default attributes instead. */
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(sched_getattr), 0);
    }
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(sched_setattr), 0);
    }
    return rc;
}

static int sandbox_build(scmp_filter_ctx ctx, unsigned allow)
{
    for (size_t g = 0; g < G_N_ELEMENTS(sandbox_groups); g++) {
        const SandboxGroup *grp = &sandbox_groups[g];
        if (grp->allow_bit && !(allow & grp->allow_bit)) {
            continue;
        }
        for (size_t i = 0; i < grp->n; i++) {
            int nr = seccomp_syscall_resolve_name(grp->names[i]);
            if (nr < 0) {
                continue; /* not a call on this architecture (vm86 on x86_64 ...) */
            }
            int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return sandbox_add_conditional(ctx, allow);
}

bool os_sandbox_install(unsigned allow, Error **errp)
{
    struct sigaction sa = { .sa_sigaction = sandbox_sigsys, .sa_flags = SA_SIGINFO };
    int rc;

    sandbox_resolve_names();
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        error_setg_errno(errp, errno, "-sandbox on: cannot handle SIGSYS");
        return false;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        error_setg(errp, "-sandbox on: libseccomp could not start a filter");
        return false;
    }
    /* Calls through another ABI (int 0x80, x32) are not on any list: end the process. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0) {
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    }
    if (rc == 0) {
        rc = sandbox_build(ctx, allow);
    }
    if (rc < 0) {
        error_setg_errno(errp, -rc, "-sandbox on: cannot build the seccomp filter");
        seccomp_release(ctx);
        return false;
    }
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        error_setg_errno(errp, -rc,
                         "-sandbox on: failed to install seccomp syscall filter in the kernel");
        return false;
    }
    sandbox_installed = true;
    sandbox_installed_allow = allow;
    return true;
}

bool os_sandbox_permits(unsigned group)
{
    return !sandbox_installed || (sandbox_installed_allow & group) == group;
}

bool os_sandbox_installed(void)
{
    return sandbox_installed;
}
