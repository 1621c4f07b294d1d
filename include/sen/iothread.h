/*
 * I/O threads (QEMU's -object iothread,id=ID): a thread that runs its own GMainContext,
 * so that a device given iothread=ID handles its queue notifications and its block
 * completions there instead of on the main loop (docs/virtio.md).
 *
 * Lifecycle: created with the machine (before the devices that use them, which attach
 * to the context), started once the process will not fork any more (-daemonize), stopped
 * before the devices are torn down, freed last.  Event sources attached to a stopped thread's
 * context stay attached; whoever needs them afterwards (block_cleanup draining its
 * requests) runs the context itself.
 */
#ifndef SEN_IOTHREAD_H
#define SEN_IOTHREAD_H

#include <glib.h>
#include "sen/error.h"

typedef struct IOThread IOThread;

/* A new context for the thread named after id; iothread_start runs it. */
IOThread *iothread_new(const char *id);
/* Starts the thread running the context; false and errp on failure. */
bool iothread_start(IOThread *t, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Quits the loop and joins the thread (idempotent, also when never started); the
 * context stays valid. */
void iothread_stop(IOThread *t);
/* Stops the thread if needed and frees everything. */
void iothread_free(IOThread *t);

const char *iothread_id(const IOThread *t);
GMainContext *iothread_context(const IOThread *t);

/*
 * Returns once the thread finished the dispatch it was in (if any) when this was called:
 * after it, nothing that thread started before the call is still running.  Called from
 * another thread, which must not hold a lock that the thread's handlers take (the VM
 * lock).  A no-op for a stopped thread or from the thread itself.
 */
void iothread_barrier(IOThread *t);

#endif
