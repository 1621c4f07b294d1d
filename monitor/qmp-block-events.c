/*
 * The block layer's run-time reports as QMP events: BLOCK_IMAGE_CORRUPTED and
 * BLOCK_IO_ERROR.  A report can come from any thread (a format driver runs on the block
 * pool's workers and on I/O threads, a device completes requests on its I/O thread) while
 * events go out from the main thread, so the report is copied and handed to the main
 * context; at high priority, so that a corruption goes out before the completion of the
 * request that found it (and the BLOCK_IO_ERROR that follows), as in QEMU.  From the main
 * thread itself the event goes out at once.
 *
 * An I/O error whose action is stop also stops the VM (run state io-error), from the
 * same main-thread call right after its event: so BLOCK_IO_ERROR always comes before the
 * STOP, as in QEMU.
 */
#include <errno.h>
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

typedef struct IoErrorEvent {
    Machine *m;
    char *device;
    char *node_name;
    bool is_read;
    BlockErrorAction action;
    bool has_nospace;
    int error;
} IoErrorEvent;

static gboolean io_error_emit(gpointer opaque)
{
    IoErrorEvent *ev = opaque;
    qapi_event_send_block_io_error(ev->m, ev->device, true, ev->node_name,
                                   ev->is_read ? "read" : "write",
                                   block_error_action_name(ev->action), ev->has_nospace,
                                   ev->error == ENOSPC, g_strerror(ev->error));
    if (ev->action == BLOCK_ERROR_ACTION_STOP) {
        machine_request_stop(ev->m, RUN_STATE_IO_ERROR);
    }
    return G_SOURCE_REMOVE;
}

static void io_error_event_free(gpointer opaque)
{
    IoErrorEvent *ev = opaque;
    g_free(ev->device);
    g_free(ev->node_name);
    g_free(ev);
}

static void io_error_sink(void *opaque, const BlockIoError *e)
{
    IoErrorEvent *ev = g_new0(IoErrorEvent, 1);
    ev->m = opaque;
    ev->device = g_strdup(e->device);
    ev->node_name = g_strdup(e->node_name);
    ev->is_read = e->is_read;
    ev->action = e->action;
    ev->has_nospace = e->has_nospace;
    ev->error = e->error;
    g_main_context_invoke_full(NULL, G_PRIORITY_HIGH, io_error_emit, ev,
                               io_error_event_free);
}

static const BlockEventSink block_event_sink = {
    .corruption = corruption_sink,
    .io_error = io_error_sink,
};

void monitor_block_events_attach(Machine *m)
{
    bdrv_set_event_sink(&block_event_sink, m);
}

void monitor_block_events_detach(void)
{
    bdrv_set_event_sink(NULL, NULL);
}
