/*
 * A completion eventfd watched in the GMainContext its requests complete in: the worker
 * pool (block-pool.c) and native AIO (file-posix.c) both signal their finished requests
 * this way, and both move the watch when the backend moves to another context.
 */
#include <glib-unix.h>
#include "block/block-internal.h"

void block_fd_watch_attach(BlockFdWatch *w, int fd, GMainContext *ctx,
                           GUnixFDSourceFunc fn, void *opaque, bool can_recurse)
{
    if (w->src && w->ctx != ctx) {
        /* blk_set_context moves a backend only while nothing is in flight. */
        block_fd_watch_detach(w);
    }
    if (w->src) {
        return;
    }
    w->src = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(w->src, (GSourceFunc)(void (*)(void))fn, opaque, NULL);
    /* A non-recursive source has its fd taken out of the poll set and put back around
     * every dispatch (two more wake-ups of the loop per batch); a dispatch that is safe
     * to re-enter says so. */
    g_source_set_can_recurse(w->src, can_recurse);
    g_source_attach(w->src, ctx);
    w->ctx = ctx;
}

void block_fd_watch_detach(BlockFdWatch *w)
{
    if (w->src) {
        g_source_destroy(w->src);
        g_source_unref(w->src);
        w->src = NULL;
        w->ctx = NULL;
    }
}
