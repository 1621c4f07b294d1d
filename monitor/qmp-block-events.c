/*
 * The block layer's run-time reports as QMP events: BLOCK_IMAGE_CORRUPTED.  A report can
 * come from any thread (a format driver runs on the block pool's workers and on I/O
 * threads) while events go out from the main thread, so the report is copied and handed
 * to the main context; at high priority, so that it goes out before the completion of
 * the request that found it (and the BLOCK_IO_ERROR that may follow), as in QEMU.
 */
#include <string.h>
#include "sen/block.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"

typedef struct CorruptionEvent {
    Machine *m;
    char *node_name;
    char *msg;
    int64_t offset, size;
    bool fatal;
} CorruptionEvent;

/* QEMU's device: the drive whose root the node is, else "" (also for a -blockdev node
 * a device uses). */
static const char *device_of_node(Machine *m, const char *node_name)
{
    g_autoptr(GPtrArray) blks = block_backends(m);
    for (guint i = 0; i < blks->len; i++) {
        BlockBackend *blk = g_ptr_array_index(blks, i);
        if (strcmp(blk_bs(blk)->node_name, node_name) == 0) {
            return blk_event_device_name(blk);
        }
    }
    return "";
}

static gboolean corruption_emit(gpointer opaque)
{
    CorruptionEvent *ev = opaque;
    qapi_event_send_block_image_corrupted(ev->m, device_of_node(ev->m, ev->node_name), true,
                                          ev->node_name, ev->msg, ev->offset >= 0,
                                          ev->offset, ev->size >= 0, ev->size, ev->fatal);
    return G_SOURCE_REMOVE;
}

static void corruption_event_free(gpointer opaque)
{
    CorruptionEvent *ev = opaque;
    g_free(ev->node_name);
    g_free(ev->msg);
    g_free(ev);
}

static void corruption_sink(void *opaque, const BlockCorruption *c)
{
    CorruptionEvent *ev = g_new0(CorruptionEvent, 1);
    ev->m = opaque;
    ev->node_name = g_strdup(c->node_name);
    ev->msg = g_strdup(c->msg);
    ev->offset = c->offset;
    ev->size = c->size;
    ev->fatal = c->fatal;
    g_main_context_invoke_full(NULL, G_PRIORITY_HIGH, corruption_emit, ev,
                               corruption_event_free);
}

void monitor_block_events_attach(Machine *m)
{
    bdrv_set_corruption_sink(corruption_sink, m);
}

void monitor_block_events_detach(void)
{
    bdrv_set_corruption_sink(NULL, NULL);
}
