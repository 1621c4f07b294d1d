/*
 * sen-img convert --bitmaps [--skip-broken-bitmaps]: the source's persistent dirty
 * bitmaps are created in the target (same name, granularity, enabled or not) and filled
 * from the source's, after the data copy, as qemu-img does.  The checks and their words
 * are qemu-img's.
 */
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

bool img_convert_bitmaps_check(BlockDriverState *src, bool skip_broken)
{
    if (!src->drv->bitmap_op) {
        error_report("Source lacks bitmap support");
        return false;
    }
    if (skip_broken) {
        return true;
    }
    g_autoptr(GPtrArray) list = bdrv_bitmap_list(src);
    for (guint i = 0; i < list->len; i++) {
        const BlockBitmapInfo *bm = g_ptr_array_index(list, i);
        if (bm->persistent && bm->inconsistent) {
            error_report("Cannot copy inconsistent bitmap '%s'", bm->name);
            fprintf(stderr, "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' "
                            "to delete it\n");
            return false;
        }
    }
    return true;
}

bool img_convert_bitmaps_copy(BlockDriverState *src, BlockDriverState *dst,
                              bool skip_broken)
{
    g_autoptr(GPtrArray) list = bdrv_bitmap_list(src);
    /* bdrv_bitmap_list is newest first; created oldest first, the target lists them in
     * the same order. */
    for (guint i = list->len; i-- > 0;) {
        const BlockBitmapInfo *bm = g_ptr_array_index(list, i);
        Error *err = NULL;
        if (!bm->persistent) {
            continue;
        }
        if (skip_broken && bm->inconsistent) {
            fprintf(stderr, "sen-img: warning: Skipping inconsistent bitmap '%s'\n", bm->name);
            continue;
        }
        const BlockBitmapReq add = {
            .action = BLOCK_BITMAP_ADD, .name = bm->name, .granularity = bm->granularity,
            .persistent = true, .disabled = !bm->recording,
        };
        if (!bdrv_bitmap_op(dst, &add, &err)) {
            error_prepend(&err, "Failed to create bitmap %s: ", bm->name);
            error_report_err(err);
            return false;
        }
        const BlockBitmapReq merge = {
            .action = BLOCK_BITMAP_MERGE, .name = bm->name, .src_bs = src,
            .src_name = bm->name,
        };
        if (!bdrv_bitmap_op(dst, &merge, &err)) {
            error_prepend(&err, "Failed to populate bitmap %s: ", bm->name);
            error_report_err(err);
            const BlockBitmapReq rm = { .action = BLOCK_BITMAP_REMOVE, .name = bm->name };
            if (!bdrv_bitmap_op(dst, &rm, NULL)) {
                /* left in the target, empty: the copy failed anyway */
            }
            return false;
        }
    }
    return true;
}
