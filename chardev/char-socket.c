/*
 * socket chardev: unix (path) or tcp (host, port), as client or server, or a socket the
 * caller opened (fd=N: listening for a server, connected for a client).
 *
 * A server serves one client at a time: while one is connected the listening socket is
 * not watched (later clients wait in the backlog); when it goes away it is dropped and
 * the next one is accepted.  A unix server's socket file is created 0600 and unlinked
 * when the chardev is freed.  A client connects at creation and stays disconnected once
 * the peer closes (output is then discarded).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "chardev/char-internal.h"

typedef struct SocketChr {
    bool server;
    int listen_fd;
    int client_fd;
    GSource *listen_src;
    char *unix_path; /* server: unlinked at free */
    char *addr;      /* "unix:/path" or "tcp:host:port", for messages */
} SocketChr;

static void socket_attach_client(Chardev *chr, int fd)
{
    SocketChr *s = chr->priv;

    s->client_fd = fd;
    chr_set_output_fd(chr, fd, true);
    chr_set_input_fd(chr, fd);
}

static gboolean socket_listen_ready(Chardev *chr, GIOCondition cond);

static void socket_watch_listen(Chardev *chr)
{
    SocketChr *s = chr->priv;

    if (!s->listen_src) {
        s->listen_src = chr_watch_add(chr, s->listen_fd, G_IO_IN, socket_listen_ready, NULL);
    }
}

static bool socket_accept(Chardev *chr)
{
    SocketChr *s = chr->priv;
    int fd;

    do {
        fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix: fine */
    chr_watch_remove(&s->listen_src);
    socket_attach_client(chr, fd);
    chr_send_event(chr, true);
    return true;
}

static gboolean socket_listen_ready(Chardev *chr, GIOCondition cond)
{
    SocketChr *s = chr->priv;

    if (s->client_fd >= 0) {
        return G_SOURCE_CONTINUE;
    }
    socket_accept(chr);
    /* On success socket_accept already removed this source. */
    return G_SOURCE_CONTINUE;
}

static void socket_hangup(Chardev *chr)
{
    SocketChr *s = chr->priv;

    if (s->client_fd < 0) {
        return;
    }
    chr_set_input_fd(chr, -1);
    chr_set_output_fd(chr, -1, false);
    close(s->client_fd);
    s->client_fd = -1;
    chr_send_event(chr, false);
    if (s->server) {
        socket_watch_listen(chr);
    }
}

static int socket_unix_addr(const char *path, struct sockaddr_un *sun, Error **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "unix socket path '%s' is too long (max %zu)",
                   path, sizeof(sun->sun_path) - 1);
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
}

static int socket_unix_listen(SocketChr *s, const char *path, Error **errp)
{
    struct sockaddr_un sun;
    struct stat st;

    if (socket_unix_addr(path, &sun, errp) < 0) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    /* A stale socket from an earlier run is replaced; anything else is an error. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    /* Linux creates the socket file with the socket inode's mode: 0600 from the start,
     * so there is no window in which others may connect. */
    fchmod(fd, 0600);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        error_setg_errno(errp, errno, "cannot listen on unix:%s", path);
        close(fd);
        return -1;
    }
    s->unix_path = g_strdup(path);
    chmod(path, 0600);
    if (listen(fd, 1) < 0) {
        error_setg_errno(errp, errno, "cannot listen on unix:%s", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int socket_unix_connect(const char *path, Error **errp)
{
    struct sockaddr_un sun;

    if (socket_unix_addr(path, &sun, errp) < 0) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        error_setg_errno(errp, errno, "cannot connect to unix:%s", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int socket_tcp_open(const ChardevConfig *cfg, bool server, Error **errp)
{
    const char *host = cfg->host && *cfg->host ? cfg->host : NULL;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = server ? AI_PASSIVE : 0,
    };
    struct addrinfo *res;
    int err = 0;

    if (!cfg->port || !*cfg->port) {
        error_setg(errp, "tcp socket needs port=");
        return -1;
    }
    int gai = getaddrinfo(host ? host : (server ? NULL : "localhost"), cfg->port, &hints,
                          &res);
    if (gai != 0) {
        error_setg(errp, "address tcp:%s:%s: %s", host ? host : "", cfg->port,
                   gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        int r;
        if (server) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            r = bind(fd, ai->ai_addr, ai->ai_addrlen);
            if (r == 0) {
                r = listen(fd, 1);
            }
        } else {
            do {
                r = connect(fd, ai->ai_addr, ai->ai_addrlen);
            } while (r < 0 && errno == EINTR);
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (r < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "cannot %s tcp:%s:%s",
                         server ? "listen on" : "connect to", host ? host : "", cfg->port);
    }
    return fd;
}

static bool socket_open(Chardev *chr, const ChardevConfig *cfg, Error **errp)
{
    SocketChr *s = g_new0(SocketChr, 1);
    int fd;

    s->server = cfg->server;
    s->listen_fd = -1;
    s->client_fd = -1;
    chr->priv = s;
    if (cfg->has_fd) {
        /* Checked at parse time; Sen owns it from now on, close-on-exec like its own. */
        s->addr = g_strdup_printf("fd:%d", cfg->fd);
        fd = cfg->fd;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    } else if (cfg->path) {
        s->addr = g_strdup_printf("unix:%s", cfg->path);
        fd = s->server ? socket_unix_listen(s, cfg->path, errp)
                       : socket_unix_connect(cfg->path, errp);
    } else if (cfg->port) {
        s->addr = g_strdup_printf("tcp:%s:%s", cfg->host ? cfg->host : "", cfg->port);
        fd = socket_tcp_open(cfg, s->server, errp);
    } else {
        error_setg(errp, "socket needs path= or host=/port=");
        return false;
    }
    if (fd < 0) {
        return false;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (s->server) {
        s->listen_fd = fd;
        socket_watch_listen(chr);
    } else {
        socket_attach_client(chr, fd);
    }
    return true;
}

static bool socket_is_connected(Chardev *chr)
{
    SocketChr *s = chr->priv;

    return s->client_fd >= 0;
}

static bool socket_wait_connected(Chardev *chr, Error **errp)
{
    SocketChr *s = chr->priv;

    if (s->client_fd >= 0) {
        return true;
    }
    if (!s->server) {
        error_setg(errp, "chardev '%s': not connected to %s", chr->id ? chr->id : "",
                   s->addr);
        return false;
    }
    fprintf(stderr, "sen: info: waiting for connection on: disconnected:%s,server=on\n",
            s->addr);
    for (;;) {
        struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "chardev '%s': waiting on %s",
                             chr->id ? chr->id : "", s->addr);
            return false;
        }
        if (socket_accept(chr)) {
            return true;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) {
            error_setg_errno(errp, errno, "chardev '%s': accept on %s",
                             chr->id ? chr->id : "", s->addr);
            return false;
        }
    }
}

static void socket_close(Chardev *chr)
{
    SocketChr *s = chr->priv;

    if (!s) {
        return;
    }
    chr_watch_remove(&s->listen_src);
    if (s->client_fd >= 0) {
        close(s->client_fd);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->unix_path) {
        unlink(s->unix_path);
    }
    g_free(s->unix_path);
    g_free(s->addr);
    g_free(s);
}

const ChardevDriver chardev_socket_driver = {
    .name = "socket",
    .open = socket_open,
    .hangup = socket_hangup,
    .wait_connected = socket_wait_connected,
    .is_connected = socket_is_connected,
    .close = socket_close,
};
