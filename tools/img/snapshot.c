/* sen-img snapshot: list (-l), create (-c), apply (-a), delete (-d) internal snapshots. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/img/img.h"

typedef struct SnapshotOpts {
    char action;            /* 'l', 'a', 'c', 'd' or 0 (list) */
    const char *name;
    bool quiet;
} SnapshotOpts;

static bool snapshot_option(int c, const char *arg, void *opaque)
{
    SnapshotOpts *o = opaque;

    switch (c) {
    case 'l':
    case 'a':
    case 'c':
    case 'd':
        if (o->action) {
            error_report("Cannot mix '-l', '-a', '-c', '-d'");
            return false;
        }
        o->action = c;
        o->name = c == 'l' ? NULL : arg;
        return true;
    case 'q':
        o->quiet = true;
        return true;
    default:
        return false;
    }
}

int img_snapshot(int argc, char **argv)
{
    SnapshotOpts o = { 0 };
    const ImgArgsSpec spec = {
        .cmd = "snapshot",
        .shortopts = "la:c:d:q", .option = snapshot_option, .opaque = &o,
    };
    ImgImageArgs args;
    int status = img_parse_image_args(argc, argv, &spec, &args);
    if (status >= 0) {
        return status;
    }
    char action = o.action;
    const char *name = o.name;
    bool quiet = o.quiet;
    if (!action) {
        action = 'l';
    }
    const char *filename = args.filename;
    BlockDriverState *bs = img_open(filename, args.fmt, args.image_opts,
                                    (action == 'l' ? BDRV_O_NO_BACKING : BDRV_O_RDWR) |
                                        args.share_flags);
    if (!bs) {
        return 1;
    }
    Error *err = NULL;
    bool ok = true;
    if (!bs->drv->snapshot_list) {
        error_report("'%s': format '%s' does not support internal snapshots", filename,
                     bs->drv->format_name);
        bdrv_unref(bs);
        return 1;
    }
    if (action == 'l') {
        GPtrArray *list = bs->drv->snapshot_list(bs, &err);
        ok = list != NULL;
        if (ok && list->len) {
            printf("Snapshot list:\n" BLOCK_SNAPSHOT_HEADER "\n");
            for (guint i = 0; i < list->len; i++) {
                BlockSnapshotInfo *sn = g_ptr_array_index(list, i);
                g_autofree char *row = block_snapshot_row(
                    sn->id_str, sn->name, sn->vm_state_size, sn->date_sec, sn->vm_clock_nsec,
                    sn->icount == (uint32_t)-1 ? -1 : (int64_t)sn->icount);
                printf("%s\n", row);
            }
        }
        if (list) {
            g_ptr_array_free(list, TRUE);
        }
    } else if (action == 'c') {
        gint64 now = g_get_real_time();
        BlockSnapshotInfo sn = {
            .name = (char *)name,
            .date_sec = now / G_USEC_PER_SEC,
            .date_nsec = now % G_USEC_PER_SEC * 1000,
        };
        ok = bs->drv->snapshot_create(bs, &sn, &err);
    } else if (action == 'a') {
        ok = bs->drv->snapshot_goto(bs, name, &err);
    } else {
        ok = bs->drv->snapshot_delete(bs, name, &err);
    }
    if (!ok) {
        error_report("%s", error_get_pretty(err));
        error_free(err);
    }
    (void)quiet;
    bdrv_unref(bs);
    return ok ? 0 : 1;
}
