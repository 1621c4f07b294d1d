/*
 * QMP dirty bitmaps (QEMU's block-dirty-bitmap-* commands and the "dirty-bitmaps" of
 * query-block / query-named-block-nodes) over the block layer's bdrv_bitmap_op and
 * bdrv_bitmap_list; the drivers (qcow2) serialise them against guest I/O.  Arguments and
 * messages are QEMU 7.2's.
 */
#include <string.h>
#include "sen/block.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"

/* QEMU's bdrv_lookup_bs(node, node): a drive id or a node name. */
static BlockDriverState *bitmap_node(QmpCtx *ctx, const char *node)
{
    g_autoptr(GPtrArray) blks = block_backends(ctx->m);
    for (guint i = 0; i < blks->len; i++) {
        BlockBackend *blk = g_ptr_array_index(blks, i);
        if (!strcmp(blk_name(blk), node)) {
            return blk_bs(blk);
        }
    }
    return bdrv_find_node(node);
}

/* QEMU's block_dirty_bitmap_lookup, for the commands on an existing bitmap. */
static BlockDriverState *bitmap_lookup(QmpCtx *ctx, const char *node, const char *name,
                                       Error **errp)
{
    BlockDriverState *bs = bitmap_node(ctx, node);
    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
        return NULL;
    }
    g_autoptr(GPtrArray) list = bdrv_bitmap_list(bs);
    for (guint i = 0; i < list->len; i++) {
        if (!strcmp(((BlockBitmapInfo *)g_ptr_array_index(list, i))->name, name)) {
            return bs;
        }
    }
    error_setg(errp, "Dirty bitmap '%s' not found", name);
    return NULL;
}

json_t *qmp_dirty_bitmaps_info(BlockDriverState *bs)
{
    g_autoptr(GPtrArray) list = bdrv_bitmap_list(bs);
    if (!list->len) {
        return NULL;
    }
    json_t *out = json_array();
    for (guint i = 0; i < list->len; i++) {
        BlockBitmapInfo *b = g_ptr_array_index(list, i);
        json_t *o = json_pack("{s:s,s:I,s:I,s:b,s:b,s:b}", "name", b->name, "count",
                              (json_int_t)b->count, "granularity",
                              (json_int_t)b->granularity, "recording", b->recording,
                              "busy", b->busy, "persistent", b->persistent);
        if (b->inconsistent) {
            json_object_set_new(o, "inconsistent", json_true());
        }
        json_array_append_new(out, o);
    }
    return out;
}

bool qmp_block_dirty_bitmap_add(QmpCtx *ctx, const char *node, const char *name,
                                bool has_granularity, int64_t granularity,
                                bool has_persistent, bool persistent, bool has_disabled,
                                bool disabled, Error **errp)
{
    BlockDriverState *bs = bitmap_node(ctx, node);
    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", node, node);
        return false;
    }
    if (has_granularity && (granularity < 512 || granularity > UINT32_MAX ||
                            (granularity & (granularity - 1)))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return false;
    }
    BlockBitmapReq req = {
        .action = BLOCK_BITMAP_ADD,
        .name = name,
        .granularity = has_granularity ? granularity : 0,
        .persistent = has_persistent && persistent,
        .disabled = has_disabled && disabled,
    };
    return bdrv_bitmap_op(bs, &req, errp);
}

static bool simple_op(QmpCtx *ctx, BlockBitmapAction action, const char *node,
                      const char *name, Error **errp)
{
    BlockDriverState *bs = bitmap_lookup(ctx, node, name, errp);
    BlockBitmapReq req = { .action = action, .name = name };
    return bs && bdrv_bitmap_op(bs, &req, errp);
}

bool qmp_block_dirty_bitmap_remove(QmpCtx *ctx, const char *node, const char *name,
                                   Error **errp)
{
    return simple_op(ctx, BLOCK_BITMAP_REMOVE, node, name, errp);
}

bool qmp_block_dirty_bitmap_clear(QmpCtx *ctx, const char *node, const char *name,
                                  Error **errp)
{
    return simple_op(ctx, BLOCK_BITMAP_CLEAR, node, name, errp);
}

bool qmp_block_dirty_bitmap_enable(QmpCtx *ctx, const char *node, const char *name,
                                   Error **errp)
{
    return simple_op(ctx, BLOCK_BITMAP_ENABLE, node, name, errp);
}

bool qmp_block_dirty_bitmap_disable(QmpCtx *ctx, const char *node, const char *name,
                                    Error **errp)
{
    return simple_op(ctx, BLOCK_BITMAP_DISABLE, node, name, errp);
}

bool qmp_block_dirty_bitmap_merge(QmpCtx *ctx, const char *node, const char *target,
                                  json_t *bitmaps, Error **errp)
{
    BlockDriverState *bs = bitmap_lookup(ctx, node, target, errp);
    if (!bs) {
        return false;
    }
    size_t n = json_array_size(bitmaps);
    BlockBitmapReq *reqs = g_new0(BlockBitmapReq, MAX(n, 1));
    bool ok = true;
    /* Every source first (QEMU's BlockDirtyBitmapOrStr), so a bad one changes nothing. */
    for (size_t i = 0; ok && i < n; i++) {
        json_t *e = json_array_get(bitmaps, i);
        reqs[i] = (BlockBitmapReq){ .action = BLOCK_BITMAP_MERGE, .name = target,
                                    .src_bs = bs };
        if (json_is_string(e)) {
            reqs[i].src_name = json_string_value(e);
            ok = bitmap_lookup(ctx, node, reqs[i].src_name, errp) != NULL;
        } else if (json_is_object(e) && json_is_string(json_object_get(e, "node")) &&
                   json_is_string(json_object_get(e, "name")) && json_object_size(e) == 2) {
            reqs[i].src_name = json_string_value(json_object_get(e, "name"));
            reqs[i].src_bs = bitmap_lookup(ctx, json_string_value(json_object_get(e, "node")),
                                           reqs[i].src_name, errp);
            ok = reqs[i].src_bs != NULL;
        } else {
            error_setg(errp, "Invalid parameter type for 'bitmaps[%zu]', expected: "
                       "BlockDirtyBitmapOrStr", i);
            ok = false;
        }
    }
    for (size_t i = 0; ok && i < n; i++) {
        ok = bdrv_bitmap_op(bs, &reqs[i], errp);
    }
    g_free(reqs);
    return ok;
}
