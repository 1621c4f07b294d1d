/* QMP balloon and query-balloon (qapi/balloon.json) over hw/virtio/virtio-balloon.c. */
#include "sen/hw/virtio-balloon.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"

static VirtIOBalloon *balloon_get(QmpCtx *ctx, Error **errp)
{
    VirtIOBalloon *b = virtio_balloon_find(ctx->m);
    if (!b) {
        qmp_error_setg(ctx, errp, QMP_ERROR_DEVICE_NOT_ACTIVE,
                       "No balloon device has been activated");
    }
    return b;
}

json_t *qmp_query_balloon(QmpCtx *ctx, Error **errp)
{
    VirtIOBalloon *b = balloon_get(ctx, errp);
    if (!b) {
        return NULL;
    }
    return json_pack("{s:I}", "actual", (json_int_t)virtio_balloon_actual(b));
}

bool qmp_balloon(QmpCtx *ctx, int64_t value, Error **errp)
{
    VirtIOBalloon *b = balloon_get(ctx, errp);
    if (!b) {
        return false;
    }
    if (value <= 0) {
        error_setg(errp, "Parameter 'target' expects a size");
        return false;
    }
    virtio_balloon_set_target(b, (uint64_t)value);
    return true;
}
