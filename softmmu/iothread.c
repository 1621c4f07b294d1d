/*
 * I/O threads (sen/iothread.h): one GMainContext each, run by its own thread until
 * iothread_stop.
 */
#include <stdint.h>
#include "sen/iothread.h"

struct IOThread {
    char *id;
    GMainContext *ctx;
    GMainLoop *loop;
    GThread *thread;   /* NULL once stopped */
    GMutex lock;       /* barrier hand-shake */
    GCond cond;
    uint64_t barriers_done;
};

static gpointer iothread_run(gpointer opaque)
{
    IOThread *t = opaque;

    g_main_context_push_thread_default(t->ctx);
    g_main_loop_run(t->loop);
    g_main_context_pop_thread_default(t->ctx);
    return NULL;
}

IOThread *iothread_new(const char *id)
{
    IOThread *t = g_new0(IOThread, 1);

    t->id = g_strdup(id);
    t->ctx = g_main_context_new();
    t->loop = g_main_loop_new(t->ctx, FALSE);
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    return t;
}

bool iothread_start(IOThread *t, Error **errp)
{
    GError *gerr = NULL;
    g_autofree char *name = g_strdup_printf("iothread-%s", t->id);

    t->thread = g_thread_try_new(name, iothread_run, t, &gerr);
    if (!t->thread) {
        error_setg(errp, "-object iothread,id=%s: cannot start its thread: %s", t->id,
                   gerr->message);
        g_error_free(gerr);
        return false;
    }
    return true;
}

static gboolean iothread_quit(gpointer opaque)
{
    g_main_loop_quit(opaque);
    return G_SOURCE_REMOVE;
}

void iothread_stop(IOThread *t)
{
    if (!t->thread) {
        return;
    }
    /* Through the context rather than g_main_loop_quit from here: the quit then lands
     * between two dispatches, never in the middle of one. */
    g_main_context_invoke(t->ctx, iothread_quit, t->loop);
    g_thread_join(t->thread);
    t->thread = NULL;
}

void iothread_free(IOThread *t)
{
    if (!t) {
        return;
    }
    iothread_stop(t);
    g_main_loop_unref(t->loop);
    g_main_context_unref(t->ctx);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
    g_free(t->id);
    g_free(t);
}

const char *iothread_id(const IOThread *t)
{
    return t->id;
}

GMainContext *iothread_context(const IOThread *t)
{
    return t->ctx;
}

static gboolean iothread_barrier_reached(gpointer opaque)
{
    IOThread *t = opaque;

    g_mutex_lock(&t->lock);
    t->barriers_done++;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
    return G_SOURCE_REMOVE;
}

void iothread_barrier(IOThread *t)
{
    if (!t->thread || g_main_context_is_owner(t->ctx)) {
        return;
    }
    /* An idle source runs in a later dispatch than the one under way. */
    g_mutex_lock(&t->lock);
    uint64_t want = t->barriers_done + 1;
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_HIGH);
    g_source_set_callback(src, iothread_barrier_reached, t, NULL);
    g_source_attach(src, t->ctx);
    g_source_unref(src);
    while (t->barriers_done < want) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
}
