/*
 * stdio chardev: guest output to stdout, stdin to the guest.
 *
 * A terminal on stdin is put in raw mode so every key reaches the guest; Ctrl-C still
 * kills Sen unless signal=off (QEMU's default).  With mux (-nographic) Ctrl-A starts an
 * escape as in QEMU: Ctrl-A x quits, Ctrl-A h prints help, Ctrl-A Ctrl-A sends Ctrl-A.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "chardev/char-internal.h"

#define STDIO_ESCAPE 0x01 /* Ctrl-A */

typedef struct StdioChr {
    int in_fd;
    int out_fd;
    bool mux;
    bool got_escape;
} StdioChr;

/* The terminal is process-wide state, so its saved mode is too. */
static struct termios stdio_saved_tty;
static volatile sig_atomic_t stdio_tty_saved;

void chardev_restore_terminal(void)
{
    if (stdio_tty_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &stdio_saved_tty);
    }
}

static void stdio_raw_mode(bool allow_signals)
{
    struct termios tty;

    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &tty) < 0) {
        return;
    }
    if (!stdio_tty_saved) {
        stdio_saved_tty = tty;
        stdio_tty_saved = 1;
        atexit(chardev_restore_terminal);
    }
    tty.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tty.c_oflag |= OPOST; /* keep "\n" -> "\r\n" for guests that only send "\n" */
    tty.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    if (!allow_signals) {
        tty.c_lflag &= ~ISIG;
    }
    tty.c_cflag &= ~(CSIZE | PARENB);
    tty.c_cflag |= CS8;
    tty.c_cc[VMIN] = 1;
    tty.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &tty);
}

/*
 * O_NONBLOCK is a property of the open file description, which stdout shares with the
 * shell and with our own stderr; so a tty or pipe is opened again for a private
 * description.  Regular files never block; sockets use MSG_DONTWAIT.
 */
static int stdio_open_output(bool *is_socket)
{
    struct stat st;

    *is_socket = false;
    if (fstat(STDOUT_FILENO, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
        int fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
            return fd;
        }
    }
    *is_socket = fstat(STDOUT_FILENO, &st) == 0 && S_ISSOCK(st.st_mode);
    return fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
}

static bool stdio_open(Chardev *chr, const ChardevConfig *cfg, Error **errp)
{
    StdioChr *s = g_new0(StdioChr, 1);
    bool out_socket;

    s->mux = cfg->mux;
    s->in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    s->out_fd = stdio_open_output(&out_socket);
    if (s->in_fd < 0 || s->out_fd < 0) {
        error_setg_errno(errp, errno, "cannot use stdin/stdout");
        if (s->in_fd >= 0) {
            close(s->in_fd);
        }
        g_free(s);
        return false;
    }
    chr->priv = s;
    stdio_raw_mode(cfg->signal);
    chr_set_output_fd(chr, s->out_fd, out_socket);
    chr_set_input_fd(chr, s->in_fd);
    return true;
}

static const char stdio_help[] =
    "\r\n"
    "C-a h    print this help\r\n"
    "C-a x    exit emulator\r\n"
    "C-a C-a  sends C-a\r\n";

static size_t stdio_filter(Chardev *chr, uint8_t *buf, size_t len, bool *quit)
{
    StdioChr *s = chr->priv;
    size_t out = 0;

    if (!s->mux) {
        return len;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        if (!s->got_escape) {
            if (c == STDIO_ESCAPE) {
                s->got_escape = true;
            } else {
                buf[out++] = c;
            }
            continue;
        }
        s->got_escape = false;
        switch (c) {
        case STDIO_ESCAPE:
            buf[out++] = c;
            break;
        case 'x':
            *quit = true;
            break;
        case 'h':
        case '?':
            chardev_write(chr, (const uint8_t *)stdio_help, sizeof(stdio_help) - 1);
            break;
        default:
            /* Unknown escapes are swallowed, as in QEMU. */
            break;
        }
    }
    return out;
}

static void stdio_close(Chardev *chr)
{
    StdioChr *s = chr->priv;

    if (s) {
        close(s->in_fd);
        close(s->out_fd);
        g_free(s);
    }
    chardev_restore_terminal();
}

const ChardevDriver chardev_stdio_driver = {
    .name = "stdio",
    .open = stdio_open,
    .filter = stdio_filter,
    .close = stdio_close,
};
