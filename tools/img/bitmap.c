/*
 * sen-img bitmap: (--merge SOURCE | --add | --remove | --clear | --enable | --disable)...
 * [-b source_file [-F source_fmt]] [-g granularity] [--image-opts | -f fmt] filename bitmap,
 * as qemu-img 7.2: the actions apply in the order given to the persistent dirty bitmap
 * `bitmap` of a qcow2 image (added ones are persistent and enabled), and the first that
 * fails stops with "Operation OP on bitmap NAME failed: REASON".  The bitmaps reach the
 * image when it closes (block/qcow2-bitmap.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

typedef struct BitmapAction {
    BlockBitmapAction action;
    const char *src; /* --merge's source bitmap */
} BitmapAction;

static const char *const action_names[] = {
    [BLOCK_BITMAP_ADD] = "add",       [BLOCK_BITMAP_REMOVE] = "remove",
    [BLOCK_BITMAP_CLEAR] = "clear",   [BLOCK_BITMAP_ENABLE] = "enable",
    [BLOCK_BITMAP_DISABLE] = "disable", [BLOCK_BITMAP_MERGE] = "merge",
};

/* Applies the actions in order; false after reporting the first failure. */
static bool apply(BlockDriverState *bs, BlockDriverState *src_bs, const char *bitmap,
                  GArray *actions, uint64_t granularity)
{
    for (guint i = 0; i < actions->len; i++) {
        const BitmapAction *a = &g_array_index(actions, BitmapAction, i);
        BlockBitmapReq req = {
            .action = a->action,
            .name = bitmap,
            .granularity = granularity,
            .persistent = true,
            .src_bs = src_bs ? src_bs : bs,
            .src_name = a->src,
        };
        Error *err = NULL;
        bool ok;
        if (granularity > UINT32_MAX) {
            error_setg(&err, "Granularity must be power of 2 and at least 512");
            ok = false;
        } else {
            ok = bdrv_bitmap_op(bs, &req, &err);
        }
        if (!ok) {
            error_prepend(&err, "Operation %s on bitmap %s failed: ", action_names[a->action],
                          bitmap);
            error_report_err(err);
            return false;
        }
    }
    return true;
}

int img_bitmap(int argc, char **argv)
{
    enum {
        OPT_ADD = 256, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE, OPT_DISABLE, OPT_MERGE,
    };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        IMG_LONGOPT_IMAGE_OPTS,
        { "add", no_argument, NULL, OPT_ADD },
        { "remove", no_argument, NULL, OPT_REMOVE },
        { "clear", no_argument, NULL, OPT_CLEAR },
        { "enable", no_argument, NULL, OPT_ENABLE },
        { "disable", no_argument, NULL, OPT_DISABLE },
        { "merge", required_argument, NULL, OPT_MERGE },
        { "granularity", required_argument, NULL, 'g' },
        { "source-file", required_argument, NULL, 'b' },
        { "source-format", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *src_file = NULL, *src_fmt = NULL;
    bool image_opts = false, add = false, merge = false;
    int64_t granularity = 0;
    g_autoptr(GArray) actions = g_array_new(FALSE, TRUE, sizeof(BitmapAction));
    int c;
    while ((c = img_getopt(argc, argv, "b:f:F:g:h", longopts)) != -1) {
        BitmapAction a = { 0 };
        switch (c) {
        case 'h':
            img_print_usage("bitmap");
            return 0;
        case 'b':
            src_file = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            src_fmt = optarg;
            break;
        case 'g':
            if (!img_parse_num("granularity", optarg, &granularity)) {
                return 1;
            }
            break;
        case IMG_OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPT_ADD:
        case OPT_REMOVE:
        case OPT_CLEAR:
        case OPT_ENABLE:
        case OPT_DISABLE:
        case OPT_MERGE:
            a.action = BLOCK_BITMAP_ADD + (c - OPT_ADD);
            a.src = c == OPT_MERGE ? optarg : NULL;
            add |= c == OPT_ADD;
            merge |= c == OPT_MERGE;
            g_array_append_val(actions, a);
            break;
        default:
            return 1;
        }
    }
    if (!actions->len) {
        error_report("Need at least one of --add, --remove, --clear, --enable, --disable, "
                     "or --merge");
        return 1;
    }
    if (granularity && !add) {
        error_report("granularity only supported with --add");
        return 1;
    }
    if (src_fmt && !src_file) {
        error_report("-F only supported with -b");
        return 1;
    }
    if (src_file && !merge) {
        error_report("Merge bitmap source file only supported with --merge");
        return 1;
    }
    if (argc - optind != 2) {
        error_report("Expecting filename and bitmap name");
        return 1;
    }
    const char *filename = argv[optind], *bitmap = argv[optind + 1];
    BlockDriverState *bs = img_open(filename, fmt, image_opts, BDRV_O_RDWR);
    if (!bs) {
        return 1;
    }
    BlockDriverState *src_bs = NULL;
    if (src_file) {
        src_bs = img_open(src_file, src_fmt, false, BDRV_O_NO_BACKING);
        if (!src_bs) {
            bdrv_unref(bs);
            return 1;
        }
    }
    bool ok = apply(bs, src_bs, bitmap, actions, granularity);
    if (src_bs) {
        bdrv_unref(src_bs);
    }
    bdrv_unref(bs); /* stores the bitmaps */
    return ok ? 0 : 1;
}
