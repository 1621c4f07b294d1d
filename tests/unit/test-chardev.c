/* Character backends (chardev/): file, null, socket client/server, stdio mux, flow control. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "sen/chardev.h"

typedef struct Frontend {
    size_t room;       /* what can_read reports */
    GByteArray *got;
    int opened, closed;
    int quits;
} Frontend;

static size_t fe_can_read(void *opaque)
{
    Frontend *fe = opaque;
    return fe->room;
}

static void fe_read(void *opaque, const uint8_t *buf, size_t len)
{
    Frontend *fe = opaque;
    g_assert_cmpuint(len, <=, fe->room);
    fe->room -= len;
    g_byte_array_append(fe->got, buf, len);
}

static void fe_event(void *opaque, bool opened)
{
    Frontend *fe = opaque;
    if (opened) {
        fe->opened++;
    } else {
        fe->closed++;
    }
}

static void fe_quit(void *opaque)
{
    Frontend *fe = opaque;
    fe->quits++;
}

/* Runs the default main context until cond holds or 5 s pass. */
#define ITERATE_UNTIL(cond)                                                          \
    do {                                                                             \
        gint64 deadline_ = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;              \
        while (!(cond) && g_get_monotonic_time() < deadline_) {                      \
            g_main_context_iteration(NULL, FALSE);                                   \
            g_usleep(1000);                                                          \
        }                                                                            \
        g_assert_true(cond);                                                         \
    } while (0)

static void drain_context(void)
{
    for (int i = 0; i < 50; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
}

static char *tmp_path(const char *name)
{
    g_autofree char *dir = g_dir_make_tmp("sen-chardev-XXXXXX", NULL);
    g_assert_nonnull(dir);
    return g_build_filename(dir, name, NULL);
}

static void rm_tmp(const char *path)
{
    g_unlink(path);
    g_autofree char *dir = g_path_get_dirname(path);
    g_rmdir(dir);
}

static void test_null(void)
{
    ChardevConfig cfg = { .id = "n0", .kind = CHARDEV_NULL };
    Error *err = NULL;
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_no_error((GError *)NULL);
    g_assert_nonnull(chr);
    g_assert_cmpstr(chardev_kind_name(chr), ==, "null");
    g_assert_cmpstr(chardev_id(chr), ==, "n0");
    g_assert_cmpuint(chardev_write(chr, (const uint8_t *)"abc", 3), ==, 3);
    g_assert_true(chardev_wait_connected(chr, &err));
    chardev_free(chr);
}

static void test_file(void)
{
    g_autofree char *path = tmp_path("out.txt");
    Error *err = NULL;

    g_assert_true(g_file_set_contents(path, "old contents that must go", -1, NULL));
    ChardevConfig cfg = { .id = "f0", .kind = CHARDEV_FILE, .path = path };
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_nonnull(chr);
    g_assert_cmpstr(chardev_kind_name(chr), ==, "file");
    chardev_write(chr, (const uint8_t *)"hello ", 6);
    chardev_write(chr, (const uint8_t *)"world\n", 6);
    chardev_free(chr);

    g_autofree char *data = NULL;
    g_assert_true(g_file_get_contents(path, &data, NULL, NULL));
    g_assert_cmpstr(data, ==, "hello world\n");
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0644 & ~(mode_t)umask(umask(0)));
    rm_tmp(path);

    /* An unwritable path: the error names it. */
    ChardevConfig bad = { .id = "f1", .kind = CHARDEV_FILE, .path = "/nonexistent/dir/x" };
    g_assert_null(chardev_new(&bad, NULL, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "/nonexistent/dir/x"));
    error_free(err);
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static size_t read_available(int fd, GByteArray *into, int timeout_ms)
{
    uint8_t buf[65536];
    size_t total = 0;
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000;

    while (g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_byte_array_append(into, buf, n);
            total += n;
            continue;
        }
        if (n == 0) {
            break;
        }
        g_usleep(1000);
    }
    return total;
}

static void test_socket_server(void)
{
    g_autofree char *path = tmp_path("sock");
    Frontend fe = { .room = 1024, .got = g_byte_array_new() };
    Error *err = NULL;

    ChardevConfig cfg = { .id = "s0", .kind = CHARDEV_SOCKET, .path = path, .server = true };
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_nonnull(chr);
    g_assert_cmpstr(chardev_kind_name(chr), ==, "socket");
    chardev_set_handlers(chr, fe_can_read, fe_read, fe_event, &fe);
    g_assert_cmpint(fe.opened, ==, 0);

    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);

    /* Output without a client is discarded, not queued for the next one. */
    chardev_write(chr, (const uint8_t *)"lost", 4);

    int c1 = unix_connect(path);
    g_assert_cmpint(c1, >=, 0);
    ITERATE_UNTIL(fe.opened == 1);
    g_assert_cmpint(write(c1, "ping", 4), ==, 4);
    ITERATE_UNTIL(fe.got->len == 4);
    g_assert_cmpmem(fe.got->data, 4, "ping", 4);
    chardev_write(chr, (const uint8_t *)"pong", 4);
    g_autoptr(GByteArray) out = g_byte_array_new();
    read_available(c1, out, 100);
    g_assert_cmpmem(out->data, out->len, "pong", 4);

    /* A second client waits until the first one goes away, then is served. */
    int c2 = unix_connect(path);
    g_assert_cmpint(c2, >=, 0);
    drain_context();
    g_assert_cmpint(fe.opened, ==, 1);
    close(c1);
    ITERATE_UNTIL(fe.closed == 1 && fe.opened == 2);
    g_assert_cmpint(write(c2, "two", 3), ==, 3);
    ITERATE_UNTIL(fe.got->len == 7);
    g_assert_cmpmem(fe.got->data + 4, 3, "two", 3);
    close(c2);
    ITERATE_UNTIL(fe.closed == 2);

    chardev_free(chr);
    g_assert_cmpint(access(path, F_OK), ==, -1);
    rm_tmp(path);
    g_byte_array_unref(fe.got);
}

static void test_socket_client(void)
{
    g_autofree char *path = tmp_path("sock");
    Error *err = NULL;

    /* Nobody listening: a clear error naming the address. */
    ChardevConfig cfg = { .id = "c0", .kind = CHARDEV_SOCKET, .path = path };
    g_assert_null(chardev_new(&cfg, NULL, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), path));
    error_free(err);
    err = NULL;

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(lfd, 1), ==, 0);

    Frontend fe = { .room = 100, .got = g_byte_array_new() };
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_nonnull(chr);
    g_assert_true(chardev_wait_connected(chr, &err));
    chardev_set_handlers(chr, fe_can_read, fe_read, fe_event, &fe);
    g_assert_cmpint(fe.opened, ==, 1); /* already connected when the frontend attaches */
    int peer = accept(lfd, NULL, NULL);
    g_assert_cmpint(peer, >=, 0);
    chardev_write(chr, (const uint8_t *)"hi", 2);
    g_autoptr(GByteArray) out = g_byte_array_new();
    read_available(peer, out, 100);
    g_assert_cmpmem(out->data, out->len, "hi", 2);
    g_assert_cmpint(write(peer, "yo", 2), ==, 2);
    ITERATE_UNTIL(fe.got->len == 2);
    close(peer);
    ITERATE_UNTIL(fe.closed == 1);
    /* Disconnected: output is dropped without error or blocking. */
    g_assert_cmpuint(chardev_write(chr, (const uint8_t *)"x", 1), ==, 1);
    chardev_free(chr);
    close(lfd);
    rm_tmp(path);
    g_byte_array_unref(fe.got);
}

static void test_socket_slow_client(void)
{
    g_autofree char *path = tmp_path("sock");
    Error *err = NULL;
    ChardevConfig cfg = { .id = "s1", .kind = CHARDEV_SOCKET, .path = path, .server = true };
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_nonnull(chr);
    int c = unix_connect(path);
    g_assert_cmpint(c, >=, 0);
    g_assert_true(chardev_wait_connected(chr, &err));

    /* The client never reads: 4 MiB of writes must neither block nor grow without bound. */
    static uint8_t chunk[4096];
    size_t accepted = 0;
    gint64 start = g_get_monotonic_time();
    for (int i = 0; i < 1024; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        accepted += chardev_write(chr, chunk, sizeof(chunk));
    }
    gint64 elapsed = g_get_monotonic_time() - start;
    g_assert_cmpint(elapsed, <, 2 * G_USEC_PER_SEC);
    g_assert_cmpuint(accepted, <, 1024 * sizeof(chunk));
    g_assert_cmpuint(accepted, >=, 64 * 1024);

    /* What was accepted arrives once the client reads, in order. */
    g_autoptr(GByteArray) out = g_byte_array_new();
    read_available(c, out, 300);
    g_assert_cmpuint(out->len, ==, accepted);
    g_assert_cmpint(out->data[0], ==, 'a');
    close(c);
    chardev_free(chr);
    rm_tmp(path);
}

static void test_flow_control(void)
{
    g_autofree char *path = tmp_path("sock");
    Frontend fe = { .room = 3, .got = g_byte_array_new() };
    Error *err = NULL;
    ChardevConfig cfg = { .id = "s2", .kind = CHARDEV_SOCKET, .path = path, .server = true };
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_nonnull(chr);
    chardev_set_handlers(chr, fe_can_read, fe_read, fe_event, &fe);
    int c = unix_connect(path);
    ITERATE_UNTIL(fe.opened == 1);

    g_assert_cmpint(write(c, "abcdefgh", 8), ==, 8);
    ITERATE_UNTIL(fe.got->len == 3);
    drain_context();
    g_assert_cmpuint(fe.got->len, ==, 3); /* frontend full: nothing more is read */
    fe.room = 4;
    chardev_accept_input(chr);
    ITERATE_UNTIL(fe.got->len == 7);
    drain_context();
    g_assert_cmpuint(fe.got->len, ==, 7);
    fe.room = 10;
    chardev_accept_input(chr);
    ITERATE_UNTIL(fe.got->len == 8);
    g_assert_cmpmem(fe.got->data, 8, "abcdefgh", 8);

    /* The peer hangs up while the frontend is full: no busy loop, and the hangup is
     * seen once there is room again. */
    fe.room = 0;
    g_assert_cmpint(write(c, "z", 1), ==, 1);
    drain_context();
    close(c);
    gint64 t0 = g_get_monotonic_time();
    int iterations = 0;
    while (g_get_monotonic_time() - t0 < 50000) {
        iterations += g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    g_assert_cmpint(iterations, <, 5);
    g_assert_cmpint(fe.closed, ==, 0);
    fe.room = 10;
    chardev_accept_input(chr);
    ITERATE_UNTIL(fe.closed == 1);
    g_assert_cmpuint(fe.got->len, ==, 9);
    chardev_free(chr);
    rm_tmp(path);
    g_byte_array_unref(fe.got);
}

/* stdio with mux: stdin and stdout are replaced by pipes for the duration. */
static void test_stdio_mux(void)
{
    int in[2], out[2];
    g_assert_cmpint(pipe(in), ==, 0);
    g_assert_cmpint(pipe(out), ==, 0);
    fflush(stdout);
    int saved_in = dup(0), saved_out = dup(1);
    dup2(in[0], 0);
    dup2(out[1], 1);

    Frontend fe = { .room = 100, .got = g_byte_array_new() };
    Error *err = NULL;
    ChardevConfig cfg = { .id = "io", .kind = CHARDEV_STDIO, .mux = true, .signal = true };
    Chardev *chr = chardev_new(&cfg, NULL, &err);
    g_assert_nonnull(chr);
    g_assert_cmpstr(chardev_kind_name(chr), ==, "stdio");
    chardev_set_handlers(chr, fe_can_read, fe_read, NULL, &fe);
    chardev_set_quit_handler(chr, fe_quit, &fe);

    g_assert_cmpint(write(in[1], "a\x01\x01" "b\x01h\x01zc\x01x", 11), ==, 11);
    ITERATE_UNTIL(fe.quits == 1);
    g_assert_cmpmem(fe.got->data, fe.got->len, "a\x01" "bc", 4);
    chardev_write(chr, (const uint8_t *)"guest", 5);
    drain_context();

    /* EOF on stdin stops reading without error. */
    close(in[1]);
    drain_context();
    chardev_free(chr);
    dup2(saved_in, 0);
    dup2(saved_out, 1);
    close(saved_in);
    close(saved_out);
    close(in[0]);
    close(out[1]);

    char buf[4096];
    ssize_t n = read(out[0], buf, sizeof(buf) - 1);
    g_assert_cmpint(n, >, 0);
    buf[n] = 0;
    g_assert_nonnull(strstr(buf, "C-a x"));  /* the help text from Ctrl-A h */
    g_assert_nonnull(strstr(buf, "guest"));
    close(out[0]);
    g_byte_array_unref(fe.got);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/chardev/null", test_null);
    g_test_add_func("/chardev/file", test_file);
    g_test_add_func("/chardev/socket/server", test_socket_server);
    g_test_add_func("/chardev/socket/client", test_socket_client);
    g_test_add_func("/chardev/socket/slow-client", test_socket_slow_client);
    g_test_add_func("/chardev/flow-control", test_flow_control);
    g_test_add_func("/chardev/stdio-mux", test_stdio_mux);
    return g_test_run();
}
