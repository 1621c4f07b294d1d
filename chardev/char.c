/*
 * Chardev core: backend selection, the non-blocking output buffer and flow-controlled
 * input on the GLib main loop.  See include/sen/chardev.h and char-internal.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "chardev/char-internal.h"

/* ---- fd watches: a GSource whose fd can be taken out of the poll set (input pause) ---- */

typedef struct ChrWatch {
    GSource src;
    void *tag;
    Chardev *chr;
    ChrWatchFn *fn;
} ChrWatch;

static gboolean chr_watch_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    ChrWatch *w = (ChrWatch *)src;
    GIOCondition rev = w->tag ? g_source_query_unix_fd(src, w->tag) : 0;

    if (!rev) {
        return G_SOURCE_CONTINUE;
    }
    return w->fn(w->chr, rev);
}

static GSourceFuncs chr_watch_funcs = {
    .dispatch = chr_watch_dispatch,
};

GSource *chr_watch_add(Chardev *chr, int fd, GIOCondition cond, ChrWatchFn *fn, void **tag)
{
    GSource *src = g_source_new(&chr_watch_funcs, sizeof(ChrWatch));
    ChrWatch *w = (ChrWatch *)src;

    w->chr = chr;
    w->fn = fn;
    w->tag = g_source_add_unix_fd(src, fd, cond);
    if (tag) {
        *tag = w->tag;
    }
    g_source_attach(src, NULL);
    return src;
}

void chr_watch_remove(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

static void chr_lock_vm(Chardev *chr)
{
    if (chr->vm_lock) {
        g_mutex_lock(chr->vm_lock);
    }
}

static void chr_unlock_vm(Chardev *chr)
{
    if (chr->vm_lock) {
        g_mutex_unlock(chr->vm_lock);
    }
}

/* ---- output ---- */

/* One non-blocking write; returns bytes written, 0 when the fd is full, -1 when dead. */
static ssize_t chr_raw_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    for (;;) {
        ssize_t n = chr->out_socket
                        ? send(chr->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                        : write(chr->out_fd, buf, len);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

static void chr_out_discard_locked(Chardev *chr)
{
    g_byte_array_set_size(chr->out_buf, 0);
}

static gboolean chr_out_ready(Chardev *chr, GIOCondition cond)
{
    g_mutex_lock(&chr->mu);
    while (chr->out_buf->len) {
        ssize_t n = chr_raw_write(chr, chr->out_buf->data, chr->out_buf->len);
        if (n < 0) {
            /* Peer gone: the input side notices the hangup and cleans up. */
            chr->out_dead = true;
            chr_out_discard_locked(chr);
            break;
        }
        if (n == 0) {
            break;
        }
        g_byte_array_remove_range(chr->out_buf, 0, n);
    }
    gboolean keep = chr->out_buf->len != 0;
    if (!keep) {
        /* glib holds its own reference for the rest of this dispatch. */
        g_source_unref(chr->out_src);
        chr->out_src = NULL;
    }
    g_mutex_unlock(&chr->mu);
    return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

size_t chardev_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    size_t done = 0;

    if (!len) {
        return 0;
    }
    g_mutex_lock(&chr->mu);
    if (chr->out_fd < 0 || chr->out_dead) {
        /* Nobody listening (null, socket without client): output is discarded. */
        g_mutex_unlock(&chr->mu);
        return len;
    }
    if (chr->out_buf->len == 0) {
        ssize_t n = chr_raw_write(chr, buf, len);
        if (n < 0) {
            chr->out_dead = true;
            g_mutex_unlock(&chr->mu);
            return len;
        }
        done = n;
    }
    size_t room = CHR_OUT_MAX - chr->out_buf->len;
    size_t take = MIN(room, len - done);
    g_byte_array_append(chr->out_buf, buf + done, take);
    chr->out_dropped += len - done - take;
    if (chr->out_buf->len && !chr->out_src) {
        chr->out_src = chr_watch_add(chr, chr->out_fd, G_IO_OUT, chr_out_ready, NULL);
    }
    g_mutex_unlock(&chr->mu);
    return done + take;
}

void chr_set_output_fd(Chardev *chr, int fd, bool is_socket)
{
    g_mutex_lock(&chr->mu);
    chr_watch_remove(&chr->out_src);
    chr_out_discard_locked(chr);
    chr->out_fd = fd;
    chr->out_socket = is_socket;
    chr->out_dead = false;
    g_mutex_unlock(&chr->mu);
}

/* ---- input ---- */

/* ---- descriptors passed over a unix socket (SCM_RIGHTS), for QMP getfd/add-fd ---- */

#define CHR_MAX_PASSED_FDS 16

static void chr_drop_passed_fds(Chardev *chr)
{
    for (guint i = 0; chr->passed_fds && i < chr->passed_fds->len; i++) {
        close(g_array_index(chr->passed_fds, int, i));
    }
    if (chr->passed_fds) {
        g_array_set_size(chr->passed_fds, 0);
    }
}

/*
 * read() that also takes descriptors sent along (QEMU's rule: they replace those of an
 * earlier message).  Received close-on-exec; a truncated set is closed, never kept.
 */
static ssize_t chr_recv_with_fds(Chardev *chr, uint8_t *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * CHR_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recvmsg(chr->in_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
        return n;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[CHR_MAX_PASSED_FDS];
        memcpy(fds, CMSG_DATA(c), MIN(nfds, (size_t)CHR_MAX_PASSED_FDS) * sizeof(int));
        chr_drop_passed_fds(chr);
        for (size_t i = 0; i < nfds && i < CHR_MAX_PASSED_FDS; i++) {
            if (msg.msg_flags & MSG_CTRUNC) {
                close(fds[i]);
                continue;
            }
            if (!chr->passed_fds) {
                chr->passed_fds = g_array_new(false, false, sizeof(int));
            }
            g_array_append_val(chr->passed_fds, fds[i]);
        }
    }
    return n;
}

int chardev_take_passed_fd(Chardev *chr)
{
    if (!chr->passed_fds || chr->passed_fds->len == 0) {
        return -1;
    }
    int fd = g_array_index(chr->passed_fds, int, 0);
    g_array_remove_index(chr->passed_fds, 0);
    return fd;
}

static gboolean chr_in_ready(Chardev *chr, GIOCondition cond)
{
    uint8_t buf[4096];
    bool quit = false;

    chr_lock_vm(chr);
    size_t room = chr->can_read ? chr->can_read(chr->opaque) : 0;
    if (!room && chr->drv->filter && !chr->read) {
        /* No frontend, but the mux escapes (Ctrl-A x) must still work. */
        room = sizeof(buf);
    }
    if (!room) {
        /* Mask input until chardev_accept_input; set under the VM lock so a frontend
         * that frees space right after this cannot miss the resume. */
        g_mutex_lock(&chr->mu);
        chr->in_paused = true;
        g_mutex_unlock(&chr->mu);
        /* Removed, not just masked: poll reports a hangup even when no event is asked
         * for, and that would spin while the frontend stays full. */
        g_source_remove_unix_fd(chr->in_src, chr->in_tag);
        chr->in_tag = NULL;
        ((ChrWatch *)chr->in_src)->tag = NULL;
        chr_unlock_vm(chr);
        return G_SOURCE_CONTINUE;
    }
    ssize_t n;
    do {
        n = chr->in_is_socket ? chr_recv_with_fds(chr, buf, MIN(room, sizeof(buf)))
                              : read(chr->in_fd, buf, MIN(room, sizeof(buf)));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        chr_unlock_vm(chr);
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        chr_unlock_vm(chr);
        /* EOF or error: glib keeps its reference for the rest of this dispatch. */
        g_source_destroy(chr->in_src);
        g_source_unref(chr->in_src);
        chr->in_src = NULL;
        if (chr->drv->hangup) {
            chr->drv->hangup(chr);
        }
        return G_SOURCE_REMOVE;
    }
    size_t len = n;
    if (chr->drv->filter) {
        len = chr->drv->filter(chr, buf, len, &quit);
    }
    if (len && chr->read) {
        chr->read(chr->opaque, buf, len);
    }
    chr_unlock_vm(chr);
    if (quit && chr->quit) {
        chr->quit(chr->quit_opaque);
    }
    return G_SOURCE_CONTINUE;
}

void chr_set_input_fd(Chardev *chr, int fd)
{
    if (chr->in_src) {
        g_source_destroy(chr->in_src);
        g_source_unref(chr->in_src);
        chr->in_src = NULL;
    }
    g_mutex_lock(&chr->mu);
    chr->in_paused = false;
    chr_watch_remove(&chr->resume_src);
    g_mutex_unlock(&chr->mu);
    chr->in_fd = fd;
    /* A new connection (or none): what the last peer passed is not for the next one. */
    chr_drop_passed_fds(chr);
    struct stat st;
    chr->in_is_socket = fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    if (fd >= 0) {
        chr->in_src = chr_watch_add(chr, fd, G_IO_IN | G_IO_HUP | G_IO_ERR, chr_in_ready,
                                    &chr->in_tag);
    }
}

static gboolean chr_resume_input(gpointer data)
{
    Chardev *chr = data;

    g_mutex_lock(&chr->mu);
    bool was_paused = chr->in_paused;
    chr->in_paused = false;
    g_source_unref(chr->resume_src);
    chr->resume_src = NULL;
    g_mutex_unlock(&chr->mu);
    if (was_paused && chr->in_src && !chr->in_tag) {
        chr->in_tag = g_source_add_unix_fd(chr->in_src, chr->in_fd,
                                           G_IO_IN | G_IO_HUP | G_IO_ERR);
        ((ChrWatch *)chr->in_src)->tag = chr->in_tag;
    }
    return G_SOURCE_REMOVE;
}

void chardev_accept_input(Chardev *chr)
{
    if (!chr) {
        return;
    }
    /* Any thread: the unmasking itself happens on the main thread. */
    g_mutex_lock(&chr->mu);
    if (chr->in_paused && !chr->resume_src) {
        chr->resume_src = g_idle_source_new();
        g_source_set_callback(chr->resume_src, chr_resume_input, chr, NULL);
        g_source_attach(chr->resume_src, NULL);
    }
    g_mutex_unlock(&chr->mu);
}

void chr_send_event(Chardev *chr, bool opened)
{
    if (!chr->event) {
        return;
    }
    chr_lock_vm(chr);
    chr->event(chr->opaque, opened);
    chr_unlock_vm(chr);
}

/* ---- lifecycle ---- */

static const ChardevDriver *chr_driver(ChardevKind kind)
{
    switch (kind) {
    case CHARDEV_NULL:
        return &chardev_null_driver;
    case CHARDEV_STDIO:
        return &chardev_stdio_driver;
    case CHARDEV_FILE:
        return &chardev_file_driver;
    case CHARDEV_SOCKET:
        return &chardev_socket_driver;
    }
    return NULL;
}

Chardev *chardev_new(const ChardevConfig *cfg, GMutex *lock, Error **errp)
{
    const ChardevDriver *drv = chr_driver(cfg->kind);

    if (!drv) {
        error_setg(errp, "unknown backend kind %d", (int)cfg->kind);
        return NULL;
    }
    Chardev *chr = g_new0(Chardev, 1);
    chr->id = g_strdup(cfg->id);
    chr->drv = drv;
    chr->vm_lock = lock;
    chr->in_fd = -1;
    chr->out_fd = -1;
    g_mutex_init(&chr->mu);
    chr->out_buf = g_byte_array_new();
    if (!drv->open(chr, cfg, errp)) {
        chardev_free(chr);
        return NULL;
    }
    return chr;
}

void chardev_free(Chardev *chr)
{
    if (!chr) {
        return;
    }
    chr_set_input_fd(chr, -1);
    /* Best effort for what the guest wrote just before the end (no waiting). */
    g_mutex_lock(&chr->mu);
    if (chr->out_buf->len && chr->out_fd >= 0 && !chr->out_dead) {
        if (chr_raw_write(chr, chr->out_buf->data, chr->out_buf->len) < 0) {
            chr->out_dead = true;
        }
    }
    g_mutex_unlock(&chr->mu);
    chr_set_output_fd(chr, -1, false);
    if (chr->drv->close) {
        chr->drv->close(chr);
    }
    g_byte_array_unref(chr->out_buf);
    if (chr->passed_fds) {
        g_array_free(chr->passed_fds, true); /* emptied by chr_set_input_fd(-1) above */
    }
    g_mutex_clear(&chr->mu);
    g_free(chr->id);
    g_free(chr);
}

const char *chardev_id(const Chardev *chr)
{
    return chr->id;
}

const char *chardev_kind_name(const Chardev *chr)
{
    return chr->drv->name;
}

void chardev_set_handlers(Chardev *chr, ChardevCanRead *can_read, ChardevRead *read,
                          ChardevEvent *event, void *opaque)
{
    chr->can_read = can_read;
    chr->read = read;
    chr->event = event;
    chr->opaque = opaque;
    /* A frontend attaching to an already connected backend learns it at once (called
     * in the caller's context: it already holds whatever lock it needs). */
    if (event && (!chr->drv->is_connected || chr->drv->is_connected(chr))) {
        event(opaque, true);
    }
    chardev_accept_input(chr);
}

void chardev_set_quit_handler(Chardev *chr, void (*quit)(void *opaque), void *opaque)
{
    chr->quit = quit;
    chr->quit_opaque = opaque;
}

bool chardev_wait_connected(Chardev *chr, Error **errp)
{
    if (!chr->drv->wait_connected) {
        return true;
    }
    return chr->drv->wait_connected(chr, errp);
}
