/* libqtest: see libqtest.h. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "libqtest.h"

/* Generous: the host may be loaded by parallel test runs. */
#define QTEST_CONNECT_TIMEOUT_MS 30000
#define QTEST_REPLY_TIMEOUT_MS 60000
/* Matches Sen's limit on read/b64read (the reply must fit its output buffer). */
#define QTEST_CHUNK 16384
#define QTEST_MAX_GSI 256

struct QTestState {
    GPid pid;
    int fd;
    char *tmpdir;
    char *sock_path;
    GString *rx;        /* bytes received but not yet consumed as lines */
    bool irq_level[QTEST_MAX_GSI];
};

const char *qtest_sen_binary(void)
{
    static char *path;
    const char *dir = g_getenv("SEN_BUILD_DIR");

    if (!dir) {
        return NULL;
    }
    if (!path) {
        path = g_build_filename(dir, "sen", NULL);
    }
    return access(path, X_OK) == 0 ? path : NULL;
}

bool qtest_have_sen(void)
{
    if (qtest_sen_binary()) {
        return true;
    }
    g_test_skip("sen binary not found (SEN_BUILD_DIR unset or not built)");
    return false;
}

char *qtest_write_tmp_file(const char *tmpl, const void *data, size_t len)
{
    char *path = NULL;
    int fd = g_file_open_tmp(tmpl, &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, data, len), ==, (ssize_t)len);
    close(fd);
    return path;
}

int qtest_unix_listen(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fd, >=, 0);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
        g_error("cannot listen on %s: %s", path, g_strerror(errno));
    }
    return fd;
}

int qtest_unix_accept(int listen_fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
    int r;

    do {
        r = poll(&pfd, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        return -1;
    }
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

static void qtest_cleanup_files(QTestState *s)
{
    if (s->sock_path) {
        unlink(s->sock_path);
    }
    if (s->tmpdir) {
        rmdir(s->tmpdir);
    }
}

/* Exit status of the child, 128 + signal, or -1 if it is still running. */
static int qtest_reap(QTestState *s, bool block)
{
    int status;
    pid_t r;

    do {
        r = waitpid(s->pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r != s->pid) {
        return -1;
    }
    s->pid = 0;
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

QTestState *qtest_init(const char *extra_args)
{
    const char *sen = qtest_sen_binary();
    GError *err = NULL;
    g_auto(GStrv) extra = NULL;
    int n_extra = 0;

    g_assert(sen); /* tests skip before calling us when Sen is missing */
    if (extra_args && *extra_args &&
        !g_shell_parse_argv(extra_args, &n_extra, &extra, &err)) {
        g_error("bad extra arguments '%s': %s", extra_args, err->message);
    }

    QTestState *s = g_new0(QTestState, 1);
    s->fd = -1;
    s->rx = g_string_new(NULL);
    s->tmpdir = g_dir_make_tmp("sen-qtest-XXXXXX", &err);
    g_assert_no_error(err);
    s->sock_path = g_build_filename(s->tmpdir, "qtest.sock", NULL);
    int lfd = qtest_unix_listen(s->sock_path);

    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    const char *fixed[] = { sen, "-accel", "qtest", "-nodefaults", "-display", "none",
                            "-machine", "pc" };
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        g_ptr_array_add(argv, g_strdup(fixed[i]));
    }
    g_ptr_array_add(argv, g_strdup("-qtest"));
    g_ptr_array_add(argv, g_strdup_printf("unix:%s", s->sock_path));
    const char *log = g_getenv("SEN_QTEST_LOG");
    if (log) {
        g_ptr_array_add(argv, g_strdup("-qtest-log"));
        g_ptr_array_add(argv, g_strdup(log));
    }
    for (int i = 0; i < n_extra; i++) {
        g_ptr_array_add(argv, g_strdup(extra[i]));
    }
    g_ptr_array_add(argv, NULL);
    if (g_getenv("SEN_QTEST_VERBOSE")) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv->pdata);
        g_printerr("# starting %s\n", cmd);
    }
    if (!g_spawn_async(NULL, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                       NULL, &s->pid, &err)) {
        g_error("cannot start %s: %s", sen, err->message);
    }
    g_ptr_array_free(argv, TRUE);

    /* Poll in slices so a Sen that fails at start-up is reported at once. */
    for (int waited = 0; s->fd < 0; waited += 100) {
        int fd = qtest_unix_accept(lfd, 100);
        if (fd >= 0) {
            s->fd = fd;
            break;
        }
        int status = qtest_reap(s, false);
        if (status >= 0) {
            g_error("sen exited with status %d before connecting (args: %s)", status,
                    extra_args ? extra_args : "");
        }
        if (waited >= QTEST_CONNECT_TIMEOUT_MS) {
            kill(s->pid, SIGKILL);
            g_error("sen did not connect to %s within %d ms", s->sock_path,
                    QTEST_CONNECT_TIMEOUT_MS);
        }
    }
    close(lfd);
    return s;
}

QTestState *qtest_initf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return qtest_init(args);
}

static void qtest_free(QTestState *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    qtest_cleanup_files(s);
    g_free(s->sock_path);
    g_free(s->tmpdir);
    g_string_free(s->rx, TRUE);
    g_free(s);
}

int qtest_wait_exit(QTestState *s, int timeout_ms)
{
    int status = -1;

    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        status = qtest_reap(s, false);
        if (status >= 0) {
            break;
        }
        g_usleep(10 * 1000);
    }
    if (status < 0) {
        kill(s->pid, SIGKILL);
        qtest_reap(s, true);
    }
    qtest_free(s);
    return status;
}

void qtest_quit(QTestState *s)
{
    /* Closing the connection is how a qtest session ends: Sen shuts down with 0. */
    close(s->fd);
    s->fd = -1;
    int status = qtest_wait_exit(s, QTEST_CONNECT_TIMEOUT_MS);
    g_assert_cmpint(status, ==, 0);
}

void qtest_send_line(QTestState *s, const char *line)
{
    g_autofree char *wire = g_str_has_suffix(line, "\n") ? g_strdup(line)
                                                         : g_strconcat(line, "\n", NULL);
    size_t len = strlen(wire), done = 0;

    while (done < len) {
        ssize_t n = send(s->fd, wire + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_error("sending to sen failed: %s", g_strerror(errno));
        }
        done += n;
    }
}

/* The next line from Sen, without its newline; NULL on EOF. */
static char *qtest_recv_line(QTestState *s)
{
    for (;;) {
        char *nl = memchr(s->rx->str, '\n', s->rx->len);
        if (nl) {
            size_t len = nl - s->rx->str;
            char *line = g_strndup(s->rx->str, len);
            g_string_erase(s->rx, 0, len + 1);
            return line;
        }
        struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
        int r = poll(&pfd, 1, QTEST_REPLY_TIMEOUT_MS);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 0) {
            g_error("no reply from sen within %d ms", QTEST_REPLY_TIMEOUT_MS);
        }
        char buf[65536];
        ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return NULL;
        }
        g_string_append_len(s->rx, buf, n);
    }
}

char *qtest_recv_reply(QTestState *s)
{
    for (;;) {
        char *line = qtest_recv_line(s);
        if (!line) {
            return NULL;
        }
        unsigned gsi;
        char what[8];
        if (sscanf(line, "IRQ %7s %u", what, &gsi) == 2) {
            if (gsi < QTEST_MAX_GSI) {
                s->irq_level[gsi] = strcmp(what, "raise") == 0;
            }
            g_free(line);
            continue;
        }
        return line;
    }
}

char *qtest_cmd(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    qtest_send_line(s, line);
    char *reply = qtest_recv_reply(s);
    if (!reply) {
        g_error("sen closed the connection after '%s'", line);
    }
    return reply;
}

/* Sends a command that must answer "OK" or "OK VALUE"; returns VALUE (or "") to free. */
static char *G_GNUC_PRINTF(2, 3) qtest_ok(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    g_autofree char *reply = qtest_cmd(s, "%s", line);
    if (strcmp(reply, "OK") == 0) {
        return g_strdup("");
    }
    if (!g_str_has_prefix(reply, "OK ")) {
        g_error("'%s' failed: %s", line, reply);
    }
    return g_strdup(reply + 3);
}

static uint64_t qtest_ok_u64(QTestState *s, const char *cmd, uint64_t addr)
{
    g_autofree char *v = qtest_ok(s, "%s 0x%" PRIx64, cmd, addr);
    char *end;
    uint64_t r = g_ascii_strtoull(v, &end, 0);
    if (!*v || *end) {
        g_error("'%s 0x%" PRIx64 "': bad value '%s'", cmd, addr, v);
    }
    return r;
}

static void qtest_ok_void(QTestState *s, const char *cmd, uint64_t addr, uint64_t value)
{
    g_free(qtest_ok(s, "%s 0x%" PRIx64 " 0x%" PRIx64, cmd, addr, value));
}

void qtest_outb(QTestState *s, uint16_t port, uint8_t v) { qtest_ok_void(s, "outb", port, v); }
void qtest_outw(QTestState *s, uint16_t port, uint16_t v) { qtest_ok_void(s, "outw", port, v); }
void qtest_outl(QTestState *s, uint16_t port, uint32_t v) { qtest_ok_void(s, "outl", port, v); }
uint8_t qtest_inb(QTestState *s, uint16_t port) { return qtest_ok_u64(s, "inb", port); }
uint16_t qtest_inw(QTestState *s, uint16_t port) { return qtest_ok_u64(s, "inw", port); }
uint32_t qtest_inl(QTestState *s, uint16_t port) { return qtest_ok_u64(s, "inl", port); }

static void pci_cfg_address(QTestState *s, unsigned devfn, unsigned reg)
{
    qtest_outl(s, 0xcf8, 0x80000000u | (devfn & 0xff) << 8 | (reg & 0xfc));
}

uint32_t qtest_pci_cfg_readl(QTestState *s, unsigned devfn, unsigned reg)
{
    pci_cfg_address(s, devfn, reg);
    return qtest_inl(s, 0xcfc);
}

uint16_t qtest_pci_cfg_readw(QTestState *s, unsigned devfn, unsigned reg)
{
    pci_cfg_address(s, devfn, reg);
    return qtest_inw(s, 0xcfc + (reg & 2));
}

void qtest_pci_cfg_writel(QTestState *s, unsigned devfn, unsigned reg, uint32_t val)
{
    pci_cfg_address(s, devfn, reg);
    qtest_outl(s, 0xcfc, val);
}

void qtest_writeb(QTestState *s, uint64_t a, uint8_t v) { qtest_ok_void(s, "writeb", a, v); }
void qtest_writew(QTestState *s, uint64_t a, uint16_t v) { qtest_ok_void(s, "writew", a, v); }
void qtest_writel(QTestState *s, uint64_t a, uint32_t v) { qtest_ok_void(s, "writel", a, v); }
void qtest_writeq(QTestState *s, uint64_t a, uint64_t v) { qtest_ok_void(s, "writeq", a, v); }
uint8_t qtest_readb(QTestState *s, uint64_t a) { return qtest_ok_u64(s, "readb", a); }
uint16_t qtest_readw(QTestState *s, uint64_t a) { return qtest_ok_u64(s, "readw", a); }
uint32_t qtest_readl(QTestState *s, uint64_t a) { return qtest_ok_u64(s, "readl", a); }
uint64_t qtest_readq(QTestState *s, uint64_t a) { return qtest_ok_u64(s, "readq", a); }

static int qtest_nibble(char c)
{
    g_assert(g_ascii_isxdigit(c));
    return g_ascii_xdigit_value(c);
}

void qtest_memread(QTestState *s, uint64_t addr, void *buf, size_t size)
{
    uint8_t *p = buf;

    for (size_t done = 0; done < size;) {
        size_t n = MIN(size - done, (size_t)QTEST_CHUNK);
        g_autofree char *v = qtest_ok(s, "read 0x%" PRIx64 " 0x%zx", addr + done, n);
        g_assert(g_str_has_prefix(v, "0x"));
        g_assert_cmpuint(strlen(v), ==, 2 + 2 * n);
        for (size_t i = 0; i < n; i++) {
            p[done + i] = qtest_nibble(v[2 + 2 * i]) << 4 | qtest_nibble(v[3 + 2 * i]);
        }
        done += n;
    }
}

void qtest_memwrite(QTestState *s, uint64_t addr, const void *buf, size_t size)
{
    const uint8_t *p = buf;

    for (size_t done = 0; done < size;) {
        size_t n = MIN(size - done, (size_t)QTEST_CHUNK);
        GString *hex = g_string_sized_new(2 * n);
        for (size_t i = 0; i < n; i++) {
            g_string_append_printf(hex, "%02x", p[done + i]);
        }
        g_free(qtest_ok(s, "write 0x%" PRIx64 " 0x%zx 0x%s", addr + done, n, hex->str));
        g_string_free(hex, TRUE);
        done += n;
    }
}

void qtest_bufread(QTestState *s, uint64_t addr, void *buf, size_t size)
{
    uint8_t *p = buf;

    for (size_t done = 0; done < size;) {
        size_t n = MIN(size - done, (size_t)QTEST_CHUNK);
        g_autofree char *v = qtest_ok(s, "b64read 0x%" PRIx64 " 0x%zx", addr + done, n);
        gsize len = 0;
        g_autofree uint8_t *data = g_base64_decode(v, &len);
        g_assert_cmpuint(len, ==, n);
        memcpy(p + done, data, n);
        done += n;
    }
}

void qtest_bufwrite(QTestState *s, uint64_t addr, const void *buf, size_t size)
{
    const uint8_t *p = buf;

    for (size_t done = 0; done < size;) {
        size_t n = MIN(size - done, (size_t)QTEST_CHUNK);
        g_autofree char *b64 = g_base64_encode(p + done, n);
        g_free(qtest_ok(s, "b64write 0x%" PRIx64 " 0x%zx %s", addr + done, n, b64));
        done += n;
    }
}

void qtest_memset(QTestState *s, uint64_t addr, uint8_t value, size_t size)
{
    g_free(qtest_ok(s, "memset 0x%" PRIx64 " 0x%zx 0x%02x", addr, size, value));
}

static int64_t qtest_clock_reply(QTestState *s, char *v)
{
    char *end;
    int64_t now = g_ascii_strtoll(v, &end, 10);
    g_assert(*v && !*end);
    g_free(v);
    return now;
}

int64_t qtest_clock_step(QTestState *s, int64_t ns)
{
    return qtest_clock_reply(s, qtest_ok(s, "clock_step %" PRIi64, ns));
}

int64_t qtest_clock_step_next(QTestState *s)
{
    return qtest_clock_reply(s, qtest_ok(s, "clock_step"));
}

int64_t qtest_clock_set(QTestState *s, int64_t ns)
{
    return qtest_clock_reply(s, qtest_ok(s, "clock_set %" PRIi64, ns));
}

void qtest_irq_intercept_in(QTestState *s, const char *path)
{
    g_free(qtest_ok(s, "irq_intercept_in %s", path));
}

bool qtest_get_irq(QTestState *s, unsigned gsi)
{
    g_assert_cmpuint(gsi, <, QTEST_MAX_GSI);
    /* A round trip collects IRQ lines caused by input Sen processed meanwhile. */
    g_free(qtest_ok(s, "endianness"));
    return s->irq_level[gsi];
}
