/*
 * Unit tests for the isolation options: -sandbox/-runas/-chroot parsing, the seccomp
 * allow-list, and the filter itself (installed in a child process, which it then kills).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "sen/config.h"
#include "cmdline-test-util.h"
#include "sen/os.h"

static void test_sandbox_options(void)
{
    static const struct {
        const char *line;
        bool on;
        unsigned allow;
    } ok[] = {
        { "", false, 0 },
        { "-sandbox off", false, 0 },
        { "-sandbox on", true, 0 },
        { "-sandbox enable=on", true, 0 },
        { "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
          true, 0 },
        { "-sandbox on,spawn=allow", true, SANDBOX_ALLOW_SPAWN },
        { "-sandbox on,elevateprivileges=children", true, 0 },
        { "-sandbox on,obsolete=allow,elevateprivileges=allow,resourcecontrol=allow", true,
          SANDBOX_ALLOW_OBSOLETE | SANDBOX_ALLOW_ELEVATE | SANDBOX_ALLOW_RESOURCECTL },
        { "-sandbox on -sandbox off", false, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        Error *err = NULL;
        g_autoptr(MachineConfig) cfg = ct_parse(ok[i].line, &err);
        if (!cfg) {
            g_error("'%s': %s", ok[i].line, error_get_pretty(err));
        }
        g_assert_cmpint(cfg->sandbox, ==, ok[i].on);
        g_assert_cmpuint(cfg->sandbox_allow, ==, ok[i].allow);
    }
}

static void test_bad_options(void)
{
    static const struct {
        const char *line, *msg;
    } bad[] = {
        { "-sandbox on,spawn=maybe",
          "-sandbox on,spawn=maybe: invalid argument for spawn: 'maybe' (allow or deny)" },
        { "-sandbox on,obsolete=children", "invalid argument for obsolete" },
        { "-sandbox on,fork=deny", "-sandbox on,fork=deny: " },
        { "-sandbox spawn=deny", "-sandbox spawn=deny: Parameter 'enable' is missing" },
        { "-sandbox maybe", "-sandbox maybe: " },
        { "-runas no-such-user-here", "-runas no-such-user-here: User \"no-such-user-here\" "
          "doesn't exist" },
        { "-chroot /no/such/dir", "-chroot /no/such/dir: cannot use '/no/such/dir' as the "
          "root directory: No such file or directory" },
        { "-chroot /dev/null", "-chroot /dev/null: '/dev/null' is not a directory" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        Error *err = NULL;
        MachineConfig *cfg = ct_parse(bad[i].line, &err);
        if (cfg) {
            g_error("'%s' was accepted", bad[i].line);
        }
        const char *msg = error_get_pretty(err);
        g_test_message("%s -> %s", bad[i].line, msg);
        if (!strstr(msg, bad[i].msg)) {
            g_error("'%s': message '%s' lacks '%s'", bad[i].line, msg, bad[i].msg);
        }
        error_free(err);
    }
}

static void test_runas_parse(void)
{
    Error *err = NULL;
    g_autoptr(MachineConfig) cfg = ct_parse("-runas 123:456 -chroot /", &err);
    RunasIds ids;

    g_assert_nonnull(cfg);
    g_assert_cmpstr(cfg->runas, ==, "123:456");
    g_assert_cmpstr(cfg->chroot_dir, ==, "/");
    g_assert_true(os_runas_resolve("123:456", &ids, &err));
    g_assert_cmpuint(ids.uid, ==, 123);
    g_assert_cmpuint(ids.gid, ==, 456);
    g_assert_false(ids.init_groups);
    g_assert_true(os_runas_resolve("root", &ids, &err));
    g_assert_cmpuint(ids.uid, ==, 0);
    g_assert_true(ids.init_groups);
    /* Half a pair is a user name, and no user has it. */
    g_assert_false(os_runas_resolve("123:", &ids, &err));
    g_assert_nonnull(err);
    error_free(err);
}

static void test_allow_list(void)
{
    /* No filter in this process: everything is permitted. */
    g_assert_true(os_sandbox_permits(SANDBOX_ALLOW_SPAWN | SANDBOX_ALLOW_ELEVATE));
    /* What Sen needs after start-up is on the list ... */
    static const char *const needed[] = {
        "ioctl", "read", "write", "ppoll", "futex", "io_submit", "eventfd2", "accept4",
        "sendmsg", "recvmsg", "clock_gettime", "madvise", "exit_group", "clone", "prctl",
    };
    /* ... what it never needs is not, unless its group is allowed. */
    static const struct {
        const char *name;
        unsigned group;
    } forbidden[] = {
        { "execve", SANDBOX_ALLOW_SPAWN }, { "fork", SANDBOX_ALLOW_SPAWN },
        { "kill", SANDBOX_ALLOW_SPAWN }, { "setuid", SANDBOX_ALLOW_ELEVATE },
        { "setresgid", SANDBOX_ALLOW_ELEVATE }, { "sched_setaffinity",
          SANDBOX_ALLOW_RESOURCECTL }, { "setpriority", SANDBOX_ALLOW_RESOURCECTL },
        { "uselib", SANDBOX_ALLOW_OBSOLETE }, { "ptrace", 0 }, { "mount", 0 },
        { "chroot", 0 }, { "reboot", 0 }, { "kexec_load", 0 }, { "init_module", 0 },
        { "process_vm_writev", 0 }, { "bpf", 0 }, { "perf_event_open", 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(needed); i++) {
        g_assert_true(os_sandbox_allows(0, needed[i]));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(forbidden); i++) {
        g_test_message("%s", forbidden[i].name);
        g_assert_false(os_sandbox_allows(0, forbidden[i].name));
        g_assert_cmpint(os_sandbox_allows(forbidden[i].group, forbidden[i].name), ==,
                        forbidden[i].group != 0);
    }
}

static gpointer thread_fn(gpointer data)
{
    return GINT_TO_POINTER(GPOINTER_TO_INT(data) + 1);
}

/* In a child: install the filter, show that threads and allowed calls work, then make
 * one forbidden call.  Returns the child's wait status and its stderr. */
static int run_filtered(unsigned allow, long forbidden_nr, char **err_text)
{
    int pipefd[2];
    g_assert_cmpint(pipe(pipefd), ==, 0);
    fflush(NULL);
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        Error *err = NULL;
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore); /* dying by SIGSYS must not leave a core file */
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        if (!os_sandbox_install(allow, &err)) {
            fprintf(stderr, "install: %s\n", error_get_pretty(err));
            _exit(2);
        }
        if (os_sandbox_permits(SANDBOX_ALLOW_SPAWN) != !!(allow & SANDBOX_ALLOW_SPAWN) ||
            !os_sandbox_permits(allow)) {
            _exit(6);
        }
        GThread *t = g_thread_new("test", thread_fn, GINT_TO_POINTER(41));
        if (GPOINTER_TO_INT(g_thread_join(t)) != 42 || getpid() <= 0) {
            _exit(3);
        }
        long r = syscall(forbidden_nr, 0, 0, 0, 0, 0, 0);
        _exit(r < 0 ? 4 : 5);
    }
    close(pipefd[1]);
    GString *out = g_string_new(NULL);
    char buf[256];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) {
        g_string_append_len(out, buf, n);
    }
    close(pipefd[0]);
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    *err_text = g_string_free(out, false);
    return status;
}

static void test_filter_kills(void)
{
    g_autofree char *text = NULL;
    /* kill(0, 0) would only probe the process group, yet it is not on the list. */
    int status = run_filtered(0, SYS_kill, &text);

    g_test_message("child stderr: %s", text);
    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
    g_assert_nonnull(strstr(text, "sen: -sandbox on: system call 62 (kill) is not allowed"));
}

static void test_filter_group_allows(void)
{
    g_autofree char *text = NULL;
    /* spawn=allow puts kill on the list: kill(0, 0) runs (and fails or not: no signal). */
    int status = run_filtered(SANDBOX_ALLOW_SPAWN, SYS_kill, &text);

    g_test_message("child stderr: %s", text);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 5);
}

static void test_filter_fork_killed(void)
{
    g_autofree char *text = NULL;
    /* fork() is clone without CLONE_THREAD: threads yes (run_filtered made one), this no. */
    int status = run_filtered(0, SYS_fork, &text);

    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
    g_assert_nonnull(strstr(text, "(fork) is not allowed"));
}

static void test_fdset_open(void)
{
    g_autofree char *path = NULL;
    Error *err = NULL;
    int tmp = g_file_open_tmp("test-fdset-XXXXXX", &path, NULL);
    g_assert_cmpint(tmp, >=, 0);
    g_assert_cmpint(write(tmp, "hello", 5), ==, 5);
    close(tmp);

    int rw = open(path, O_RDWR), ro = open(path, O_RDONLY);
    g_assert_true(fdset_add_fd(5, ro, "ro", &err));
    g_assert_true(fdset_add_fd(5, rw, NULL, &err));
    g_assert_cmpint(fcntl(rw, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);

    /* The descriptor with the requested access mode, duplicated close-on-exec. */
    int fd = os_open("/dev/fdset/5", O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fd, !=, ro);
    g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
    g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    close(fd);
    /* O_TRUNC truncates as open() would. */
    fd = os_open("/dev/fdset/5", O_RDWR | O_TRUNC);
    g_assert_cmpint(fd, >=, 0);
    struct stat st;
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 0);
    close(fd);
    /* No descriptor with that mode; no such set; not a set number. */
    g_assert_cmpint(os_open("/dev/fdset/5", O_WRONLY), ==, -1);
    g_assert_cmpint(errno, ==, EACCES);
    g_assert_cmpint(os_open("/dev/fdset/6", O_RDONLY), ==, -1);
    g_assert_cmpint(errno, ==, ENOENT);
    g_assert_cmpint(os_open("/dev/fdset/5x", O_RDONLY), ==, -1);
    g_assert_cmpint(errno, ==, ENOENT);
    /* Removing one leaves the other; removing the set closes it. */
    g_assert_true(fdset_remove_fd(5, true, rw));
    g_assert_cmpint(fcntl(rw, F_GETFD), ==, -1);
    g_assert_cmpint(os_open("/dev/fdset/5", O_RDWR), ==, -1);
    g_assert_false(fdset_remove_fd(5, true, rw));
    g_assert_true(fdset_remove_fd(5, false, 0));
    g_assert_cmpint(fcntl(ro, F_GETFD), ==, -1);
    g_assert_false(fdset_remove_fd(5, false, 0));
    fdset_clear();
    /* Plain paths still open, close-on-exec. */
    fd = os_open(path, O_RDONLY);
    g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/security/sandbox-options", test_sandbox_options);
    g_test_add_func("/security/bad-options", test_bad_options);
    g_test_add_func("/security/runas-parse", test_runas_parse);
    g_test_add_func("/security/allow-list", test_allow_list);
    g_test_add_func("/security/filter-kills", test_filter_kills);
    g_test_add_func("/security/filter-group-allows", test_filter_group_allows);
    g_test_add_func("/security/filter-fork-killed", test_filter_fork_killed);
    g_test_add_func("/security/fdset-open", test_fdset_open);
    return g_test_run();
}
