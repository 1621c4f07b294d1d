/*
 * Private interface between the chardev core (char.c) and its backends.
 *
 * Threads: chardev_write() may be called from any thread (vCPU threads hold the VM lock);
 * everything else (input, accept, hangup, free) runs on the main thread.  `mu` guards the
 * output side and the input pause flag; the VM lock is always taken before `mu`, never
 * while holding it.
 */
#ifndef SEN_CHAR_INTERNAL_H
#define SEN_CHAR_INTERNAL_H

#include <glib.h>
#include "sen/chardev.h"

/* Output kept while the peer is slow; beyond this, bytes are dropped. */
#define CHR_OUT_MAX (64 * 1024)

typedef struct ChardevDriver {
    const char *name; /* QMP backend name */
    /* Sets up the backend: fds through chr_set_input_fd / chr_set_output_fd. */
    bool (*open)(Chardev *chr, const ChardevConfig *cfg, Error **errp);
    /* Input saw EOF or an error (input watch already gone).  NULL: stop reading. */
    void (*hangup)(Chardev *chr);
    /* Removes mux escapes from buf; returns the bytes left for the frontend and sets
     * *quit on Ctrl-A x.  NULL: no filtering. */
    size_t (*filter)(Chardev *chr, uint8_t *buf, size_t len, bool *quit);
    bool (*wait_connected)(Chardev *chr, Error **errp); /* NULL: always connected */
    bool (*is_connected)(Chardev *chr);                 /* NULL: always connected */
    /* Frees backend state (fds registered with the core are closed by the core). */
    void (*close)(Chardev *chr);
} ChardevDriver;

typedef gboolean ChrWatchFn(Chardev *chr, GIOCondition cond);

struct Chardev {
    char *id;
    const ChardevDriver *drv;
    GMutex *vm_lock;
    void *priv; /* backend state */

    /* Frontend; set once at realize, read on the main thread. */
    ChardevCanRead *can_read;
    ChardevRead *read;
    ChardevEvent *event;
    void *opaque;
    void (*quit)(void *opaque);
    void *quit_opaque;

    /* Input, main thread only. */
    int in_fd;
    bool in_is_socket;   /* read with recvmsg: the peer may pass descriptors */
    GArray *passed_fds;  /* of int: those that came with the last message carrying any */
    GSource *in_src;
    void *in_tag;

    GMutex mu;
    /* under mu */
    bool in_paused;      /* frontend was full; input events masked */
    GSource *resume_src; /* idle source that unmasks input */
    int out_fd;
    bool out_socket;     /* use send(MSG_NOSIGNAL) */
    bool out_dead;       /* peer gone: discard until a new fd is set */
    GByteArray *out_buf;
    GSource *out_src;
    uint64_t out_dropped;
};

/* A source on the default main context calling fn(chr, revents) while fd is ready. */
GSource *chr_watch_add(Chardev *chr, int fd, GIOCondition cond, ChrWatchFn *fn,
                       void **tag);
void chr_watch_remove(GSource **src);

/* Main thread.  fd -1 detaches; the core closes neither fd (the backend owns them). */
void chr_set_input_fd(Chardev *chr, int fd);
void chr_set_output_fd(Chardev *chr, int fd, bool is_socket);
/* Tells the frontend about a connection change, taking the VM lock. */
void chr_send_event(Chardev *chr, bool opened);

extern const ChardevDriver chardev_null_driver;
extern const ChardevDriver chardev_stdio_driver;
extern const ChardevDriver chardev_file_driver;
extern const ChardevDriver chardev_socket_driver;

#endif
