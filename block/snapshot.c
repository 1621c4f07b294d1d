/*
 * The generic side of savevm's VM state: which nodes can hold it, and range checks
 * before the format driver sees a request (include/sen/block.h).
 */
#include <errno.h>
#include "sen/block.h"

bool bdrv_can_snapshot(BlockDriverState *bs)
{
    return !bs->read_only && bs->drv->snapshot_create && bs->drv->snapshot_goto &&
           bs->drv->save_vmstate && bs->drv->load_vmstate;
}

static bool vmstate_range_ok(int64_t pos, int64_t bytes)
{
    return pos >= 0 && bytes >= 0 && pos <= INT64_MAX - bytes;
}

int bdrv_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes)
{
    if (!bs->drv->save_vmstate) {
        return -ENOTSUP;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    if (!vmstate_range_ok(pos, bytes)) {
        return -EINVAL;
    }
    return bytes ? bs->drv->save_vmstate(bs, buf, pos, bytes) : 0;
}

int bdrv_load_vmstate(BlockDriverState *bs, const char *snapshot, void *buf, int64_t pos,
                      int64_t bytes)
{
    if (!bs->drv->load_vmstate) {
        return -ENOTSUP;
    }
    if (!vmstate_range_ok(pos, bytes)) {
        return -EINVAL;
    }
    return bytes ? bs->drv->load_vmstate(bs, snapshot, buf, pos, bytes) : 0;
}

int bdrv_drop_vmstate(BlockDriverState *bs, int64_t bytes)
{
    if (!bs->drv->drop_vmstate) {
        return -ENOTSUP;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    if (!vmstate_range_ok(0, bytes)) {
        return -EINVAL;
    }
    return bytes ? bs->drv->drop_vmstate(bs, bytes) : 0;
}
