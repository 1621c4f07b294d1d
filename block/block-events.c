/*
 * Where the block layer's run-time reports go (include/sen/block.h): one sink for the
 * process, installed by the VMM's monitor, none in sen-img.
 */
#include "sen/block.h"

static struct {
    GMutex lock; /* a report on an I/O thread may race with the VMM tearing down */
    const BlockEventSink *sink;
    void *opaque;
} block_events;

void bdrv_set_event_sink(const BlockEventSink *sink, void *opaque)
{
    g_mutex_lock(&block_events.lock);
    block_events.sink = sink;
    block_events.opaque = opaque;
    g_mutex_unlock(&block_events.lock);
}

void bdrv_report_corruption(const BlockCorruption *c)
{
    g_mutex_lock(&block_events.lock);
    if (block_events.sink && block_events.sink->corruption) {
        block_events.sink->corruption(block_events.opaque, c);
    }
    g_mutex_unlock(&block_events.lock);
}

void bdrv_report_io_error(const BlockIoError *e)
{
    g_mutex_lock(&block_events.lock);
    if (block_events.sink && block_events.sink->io_error) {
        block_events.sink->io_error(block_events.opaque, e);
    }
    g_mutex_unlock(&block_events.lock);
}
