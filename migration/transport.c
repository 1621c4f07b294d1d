/*
 * Migration transports: see transport.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include "sen/config.h"
#include "sen/os.h"
#include "migration/transport.h"

/* The main connection and up to 255 multifd channels may arrive at once: a TCP
 * connection that finds the backlog full retries only after a second. */
#define MIG_LISTEN_BACKLOG 256

void mig_uri_free(MigUri *u)
{
    if (!u) {
        return;
    }
    g_free(u->uri);
    g_free(u->host);
    g_free(u->port);
    g_free(u->path);
    if (u->fd_owned && u->fd >= 0) {
        close(u->fd);
    }
    g_free(u);
}

static bool parse_tcp(MigUri *u, const char *rest, Error **errp)
{
    const char *colon;

    if (rest[0] == '[') {
        const char *end = strchr(rest, ']');
        if (!end || end[1] != ':') {
            error_setg(errp, "%s: expected tcp:[ADDRESS]:PORT", u->uri);
            return false;
        }
        u->host = g_strndup(rest + 1, end - rest - 1);
        colon = end + 1;
    } else {
        colon = strrchr(rest, ':');
        if (!colon) {
            error_setg(errp, "%s: expected tcp:HOST:PORT", u->uri);
            return false;
        }
        u->host = g_strndup(rest, colon - rest);
    }
    u->port = g_strdup(colon + 1);
    if (!*u->port || strspn(u->port, "0123456789") != strlen(u->port) ||
        atoi(u->port) > 65535) {
        error_setg(errp, "%s: invalid port '%s'", u->uri, u->port);
        return false;
    }
    return true;
}

MigUri *mig_uri_parse(const char *uri, Error **errp)
{
    g_autoptr(MigUri) u = g_new0(MigUri, 1);
    const char *rest;

    u->uri = g_strdup(uri);
    u->fd = -1;
    if (g_str_has_prefix(uri, "tcp:")) {
        u->kind = MIG_TRANSPORT_TCP;
        if (!parse_tcp(u, uri + 4, errp)) {
            return NULL;
        }
    } else if (g_str_has_prefix(uri, "unix:")) {
        u->kind = MIG_TRANSPORT_UNIX;
        u->path = g_strdup(uri + 5);
        if (!*u->path || strlen(u->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            error_setg(errp, "%s: the socket path is empty or too long", uri);
            return NULL;
        }
    } else if (g_str_has_prefix(uri, "exec:")) {
        u->kind = MIG_TRANSPORT_EXEC;
        u->path = g_strdup(uri + 5);
        if (!*u->path) {
            error_setg(errp, "%s: empty command", uri);
            return NULL;
        }
        /* Forking under a sandbox that forbids it would kill the VM. */
        if (!os_sandbox_permits(SANDBOX_ALLOW_SPAWN)) {
            error_setg(errp, "%s: running a command needs -sandbox on,spawn=allow", uri);
            return NULL;
        }
    } else if (g_str_has_prefix(uri, "fd:")) {
        rest = uri + 3;
        char *end;
        long fd = strtol(rest, &end, 10);
        u->kind = MIG_TRANSPORT_FD;
        if (*rest && !g_ascii_isdigit(*rest)) {
            /* A name given to QMP getfd, as QEMU: the descriptor is ours from now on
             * (freed with the MigUri if the migration never starts). */
            u->fd = fdname_take(rest, errp);
            if (u->fd < 0) {
                error_prepend(errp, "%s: ", uri);
                return NULL;
            }
            u->fd_owned = true;
            return g_steal_pointer(&u);
        }
        if (!*rest || *end || fd < 0 || fd > INT_MAX) {
            error_setg(errp, "%s: expected fd:N with N an open file descriptor number, or "
                       "fd:NAME with a name given to getfd", uri);
            return NULL;
        }
        if (fcntl((int)fd, F_GETFD) < 0) {
            error_setg(errp, "%s: file descriptor %ld is not open", uri, fd);
            return NULL;
        }
        u->fd = (int)fd;
    } else if (g_str_has_prefix(uri, "file:")) {
        u->kind = MIG_TRANSPORT_FILE;
        u->path = g_strdup(uri + 5);
        if (!*u->path) {
            error_setg(errp, "%s: empty file name", uri);
            return NULL;
        }
    } else {
        error_setg(errp, "%s: unknown migration protocol (expected tcp:, unix:, exec:, fd: "
                   "or file:)", uri);
        return NULL;
    }
    return g_steal_pointer(&u);
}

/* ---- sockets ---- */

static int tcp_socket(const MigUri *u, bool listening, Error **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = listening ? AI_PASSIVE : 0 };
    struct addrinfo *res = NULL;
    const char *host = *u->host ? u->host : NULL;
    int rc = getaddrinfo(host, u->port, &hints, &res);
    int err = 0;

    if (rc != 0) {
        error_setg(errp, "%s: cannot resolve '%s': %s", u->uri, u->host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (listening) {
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, MIG_LISTEN_BACKLOG) == 0) {
                freeaddrinfo(res);
                return fd;
            }
        } else {
            int r;
            do {
                r = connect(fd, ai->ai_addr, ai->ai_addrlen);
            } while (r < 0 && errno == EINTR);
            if (r == 0) {
                freeaddrinfo(res);
                return fd;
            }
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    error_setg_errno(errp, err, "%s: cannot %s", u->uri, listening ? "listen" : "connect");
    return -1;
}

static int unix_socket(const MigUri *u, bool listening, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: socket", u->uri);
        return -1;
    }
    g_strlcpy(sa.sun_path, u->path, sizeof(sa.sun_path));
    if (listening) {
        struct stat st;
        /* A socket left by an earlier run is replaced, as QEMU does; other files not. */
        if (lstat(u->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            unlink(u->path);
        }
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, MIG_LISTEN_BACKLOG) == 0) {
            return fd;
        }
    } else {
        int r;
        do {
            r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            return fd;
        }
    }
    error_setg_errno(errp, errno, "%s: cannot %s", u->uri, listening ? "listen" : "connect");
    close(fd);
    return -1;
}

/* ---- exec ---- */

/* Runs /bin/sh -c cmd with our end of a pipe as its stdin (outgoing) or stdout. */
static int exec_command(const MigUri *u, bool outgoing, pid_t *child, Error **errp)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "%s: pipe", u->uri);
        return -1;
    }
    int ours = outgoing ? p[1] : p[0];
    int theirs = outgoing ? p[0] : p[1];
    pid_t pid = fork();
    if (pid < 0) {
        error_setg_errno(errp, errno, "%s: fork", u->uri);
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        dup2(theirs, outgoing ? STDIN_FILENO : STDOUT_FILENO);
        execl("/bin/sh", "sh", "-c", u->path, (char *)NULL);
        _exit(127);
    }
    close(theirs);
    *child = pid;
    return ours;
}

void mig_child_reap(pid_t child, bool kill_it)
{
    if (child <= 0) {
        return;
    }
    if (kill_it) {
        kill(child, SIGTERM);
    }
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* ---- outgoing ---- */

int mig_connect(MigUri *u, pid_t *child, Error **errp)
{
    int fd;

    *child = 0;
    switch (u->kind) {
    case MIG_TRANSPORT_TCP:
        return tcp_socket(u, false, errp);
    case MIG_TRANSPORT_UNIX:
        return unix_socket(u, false, errp);
    case MIG_TRANSPORT_EXEC:
        return exec_command(u, true, child, errp);
    case MIG_TRANSPORT_FD:
        if (u->fd_owned) {
            /* A getfd descriptor is used once and goes with the stream, so that the
             * peer sees the end of it when the stream is closed. */
            fd = u->fd;
            u->fd = -1;
            if (fd < 0) {
                error_setg(errp, "%s: the descriptor was used by an earlier migration",
                           u->uri);
            }
            return fd;
        }
        fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "%s", u->uri);
        }
        return fd;
    case MIG_TRANSPORT_FILE:
        fd = open(u->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot create", u->uri);
        }
        return fd;
    }
    return -1;
}

/* ---- incoming ---- */

MigListener *mig_listen(const char *uri, Error **errp)
{
    MigUri *u = mig_uri_parse(uri, errp);
    if (!u) {
        return NULL;
    }
    MigListener *l = g_new0(MigListener, 1);
    l->uri = u;
    l->listen_fd = -1;
    l->ready_fd = -1;
    switch (u->kind) {
    case MIG_TRANSPORT_TCP:
        l->listen_fd = tcp_socket(u, true, errp);
        break;
    case MIG_TRANSPORT_UNIX:
        l->listen_fd = unix_socket(u, true, errp);
        break;
    case MIG_TRANSPORT_EXEC:
        l->ready_fd = exec_command(u, false, &l->child, errp);
        break;
    case MIG_TRANSPORT_FD:
        l->ready_fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0);
        if (l->ready_fd < 0) {
            error_setg_errno(errp, errno, "%s", uri);
        } else {
            close(u->fd);
            u->fd = -1;
        }
        break;
    case MIG_TRANSPORT_FILE:
        l->ready_fd = open(u->path, O_RDONLY | O_CLOEXEC);
        if (l->ready_fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot open", uri);
        }
        break;
    }
    if (l->listen_fd < 0 && l->ready_fd < 0) {
        mig_listener_free(l);
        return NULL;
    }
    return l;
}

int mig_accept(MigListener *l, Error **errp)
{
    if (l->ready_fd >= 0) {
        int fd = l->ready_fd;
        l->ready_fd = -1;
        return fd;
    }
    for (;;) {
        int fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            return fd;
        }
        if (errno != EINTR) {
            error_setg_errno(errp, errno, "%s: accept", l->uri->uri);
            return -1;
        }
    }
}

void mig_listener_interrupt(MigListener *l)
{
    if (l->listen_fd >= 0) {
        shutdown(l->listen_fd, SHUT_RDWR);
    }
}

void mig_listener_free(MigListener *l)
{
    if (!l) {
        return;
    }
    if (l->listen_fd >= 0) {
        close(l->listen_fd);
        if (l->uri->kind == MIG_TRANSPORT_UNIX) {
            unlink(l->uri->path);
        }
    }
    if (l->ready_fd >= 0) {
        close(l->ready_fd);
    }
    mig_child_reap(l->child, true);
    mig_uri_free(l->uri);
    g_free(l);
}
