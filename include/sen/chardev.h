/*
 * Character backends: null, stdio, file, socket (unix/tcp, client or server).
 *
 * Output never blocks the VM: when the peer is slow or gone, bytes are buffered up to a
 * limit and then dropped.  Input is delivered on the main loop with the VM lock held,
 * only as much as the frontend says it can take.
 */
#ifndef SEN_CHARDEV_H
#define SEN_CHARDEV_H

#include <stddef.h>
#include <stdint.h>
#include "sen/config.h"
#include "sen/error.h"

typedef struct Chardev Chardev;

/* How many bytes the frontend can accept now (0 pauses input). */
typedef size_t ChardevCanRead(void *opaque);
typedef void ChardevRead(void *opaque, const uint8_t *buf, size_t len);
/* Connection state changes of a socket chardev (opened = true on connect). */
typedef void ChardevEvent(void *opaque, bool opened);

/* lock: the VM lock, taken around frontend callbacks (may be NULL in tests). */
Chardev *chardev_new(const ChardevConfig *cfg, GMutex *lock, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void chardev_free(Chardev *chr);
const char *chardev_id(const Chardev *chr);
const char *chardev_kind_name(const Chardev *chr); /* "stdio", "file", ... as in QMP */

size_t chardev_write(Chardev *chr, const uint8_t *buf, size_t len);
void chardev_set_handlers(Chardev *chr, ChardevCanRead *can_read, ChardevRead *read,
                          ChardevEvent *event, void *opaque);
/* Frontend freed space: re-poll can_read. */
void chardev_accept_input(Chardev *chr);
/*
 * Main thread: one of the descriptors the peer passed (SCM_RIGHTS on a unix socket) with
 * its last message carrying any, now owned by the caller; -1 if none.  QMP getfd/add-fd.
 */
int chardev_take_passed_fd(Chardev *chr);
/* stdio mux: Ctrl-A x calls quit (main loop, VM lock not held). */
void chardev_set_quit_handler(Chardev *chr, void (*quit)(void *opaque), void *opaque);
/* Blocks until a client connects (socket server with wait=on, or client connect). */
bool chardev_wait_connected(Chardev *chr, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Restores the terminal (stdio raw mode); safe to call at exit and from signal paths. */
void chardev_restore_terminal(void);

#endif
