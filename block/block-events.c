/*
 * Where the block layer's run-time reports go (include/sen/block.h): one sink for the
 * process, installed by the VMM's monitor, none in sen-img.
 *
 * Locking: `lock` guards the sink and the count of calls in progress, and is never held
 * while the sink runs, so the sink may install or remove a sink itself.  Sink calls are
 * serialised by `deliver`, taken only by a thread's outermost report: a report made from
 * inside the sink (its QMP emit, or the VM stop after an I/O error, ran something that
 * reported more) is queued on its thread and delivered by the outermost call right after
 * the sink returns, so the events keep the order of their reports (a corruption before
 * the failing request's I/O error) and no lock is taken twice.  Removing the sink waits
 * for the calls other threads are making: once bdrv_set_event_sink returns, the old sink
 * is never called again (a sink removing itself is up the caller's own stack).
 */
#include "sen/block.h"

static struct {
    GMutex deliver;  /* held by the thread whose report is in the sink */
    GMutex lock;     /* guards the fields below */
    GCond idle;      /* broadcast when calls drops */
    const BlockEventSink *sink;
    void *opaque;
    int calls;       /* sink calls in progress, on every thread */
} block_events;

/* One report, copied when it has to wait in a queue. */
typedef struct BlockEvent {
    bool is_io_error;
    BlockCorruption c;
    BlockIoError e;
} BlockEvent;

/* This thread's sink calls in progress (0 or 1) and the reports made inside them. */
static __thread int block_events_depth;
static __thread GQueue block_events_pending = G_QUEUE_INIT;

void bdrv_set_event_sink(const BlockEventSink *sink, void *opaque)
{
    g_mutex_lock(&block_events.lock);
    block_events.sink = sink;
    block_events.opaque = opaque;
    while (block_events.calls > block_events_depth) {
        g_cond_wait(&block_events.idle, &block_events.lock);
    }
    g_mutex_unlock(&block_events.lock);
}

static void block_event_deliver(const BlockEvent *ev)
{
    g_mutex_lock(&block_events.deliver);
    g_mutex_lock(&block_events.lock);
    const BlockEventSink *sink = block_events.sink;
    void *opaque = block_events.opaque;
    if (sink) {
        block_events.calls++;
    }
    g_mutex_unlock(&block_events.lock);
    if (sink) {
        block_events_depth++;
        if (ev->is_io_error && sink->io_error) {
            sink->io_error(opaque, &ev->e);
        } else if (!ev->is_io_error && sink->corruption) {
            sink->corruption(opaque, &ev->c);
        }
        block_events_depth--;
        g_mutex_lock(&block_events.lock);
        block_events.calls--;
        g_cond_broadcast(&block_events.idle);
        g_mutex_unlock(&block_events.lock);
    }
    g_mutex_unlock(&block_events.deliver);
}

static void block_event_free(BlockEvent *ev)
{
    g_free((char *)ev->c.node_name);
    g_free((char *)ev->c.msg);
    g_free((char *)ev->e.device);
    g_free((char *)ev->e.node_name);
    g_free(ev);
}

/* Delivers ev, or queues a copy of it when this thread is inside the sink. */
static void block_event_report(const BlockEvent *ev)
{
    if (block_events_depth) {
        BlockEvent *copy = g_new(BlockEvent, 1);
        *copy = *ev;
        copy->c.node_name = g_strdup(ev->c.node_name);
        copy->c.msg = g_strdup(ev->c.msg);
        copy->e.device = g_strdup(ev->e.device);
        copy->e.node_name = g_strdup(ev->e.node_name);
        g_queue_push_tail(&block_events_pending, copy);
        return;
    }
    block_event_deliver(ev);
    BlockEvent *next;
    while ((next = g_queue_pop_head(&block_events_pending))) {
        block_event_deliver(next);
        block_event_free(next);
    }
}

void bdrv_report_corruption(const BlockCorruption *c)
{
    BlockEvent ev = { .is_io_error = false, .c = *c };
    block_event_report(&ev);
}

void bdrv_report_io_error(const BlockIoError *e)
{
    BlockEvent ev = { .is_io_error = true, .e = *e };
    block_event_report(&ev);
}
