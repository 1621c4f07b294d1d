/*
 * sen-img commit: writes what the overlay holds into its backing file, then (unless -d)
 * empties the overlay.  Only the immediate backing file can be the base.  -r limits the
 * copy to that many bytes a second, as qemu-img's commit job does.
 */
#include <stdio.h>
#include <string.h>

#include "block/qcow2.h"
#include "tools/img/img.h"

typedef struct CommitOpts {
    const char *base_name;
    bool drop, progress, quiet;
    int flags;              /* BDRV_O_* of -t */
    uint64_t rate;          /* -r: bytes a second, 0 = unlimited */
} CommitOpts;

static bool commit_option(int c, const char *arg, void *opaque)
{
    CommitOpts *o = opaque;

    switch (c) {
    case 'b':
        o->base_name = arg;
        return true;
    case 'd':
        o->drop = true;
        return true;
    case 'p':
        o->progress = true;
        return true;
    case 'q':
        o->quiet = true;
        return true;
    case 't':
        return img_parse_cache(arg, &o->flags);
    case 'r': {
        /* qemu-img's cvtnum: beyond INT64_MAX (or 64 bits) is a range error. */
        int64_t rate;
        if (!img_parse_num("rate limit", arg, &rate)) {
            return false;
        }
        o->rate = rate;
        return true;
    }
    default:
        return false;
    }
}

int img_commit(int argc, char **argv)
{
    CommitOpts o = { .flags = BDRV_O_RDWR };
    const ImgArgsSpec spec = {
        .cmd = "commit",
        .shortopts = "t:b:dpqr:", .option = commit_option, .opaque = &o,
        .no_force_share = true,
    };
    ImgImageArgs args;
    int status = img_parse_image_args(argc, argv, &spec, &args);
    if (status >= 0) {
        return status;
    }
    const char *fmt = args.fmt, *base_name = o.base_name, *filename = args.filename;
    bool drop = o.drop, progress = o.progress, quiet = o.quiet;
    BlockDriverState *bs = img_open(filename, fmt, args.image_opts, o.flags);
    if (!bs) {
        return 1;
    }
    if (!bs->backing) {
        error_report("Image does not have a backing file");
        bdrv_unref(bs);
        return 1;
    }
    const char *bpath = bs->backing->filename;
    const char *slash = strrchr(bpath, '/');
    if (base_name && strcmp(base_name, bpath) && strcmp(base_name, slash ? slash + 1 : bpath)) {
        error_report("'%s': only the immediate backing file '%s' can be the base",
                     base_name, bpath);
        bdrv_unref(bs);
        return 1;
    }
    /* The base is the open backing node made writable, as qemu-img reopens it: opening
     * the image a second time would conflict with the locks of the first. */
    BlockDriverState *base = bs->backing;
    Error *err = NULL;
    if (!bdrv_reopen_rw(base, &err)) {
        error_report_err(err);
        bdrv_unref(bs);
        return 1;
    }
    /* The commit writes the base (and resizes it when it grows) as QEMU's commit job
     * does, sharing all but resize.  A qcow2 base, once writable, takes write of its
     * file anyway; a raw one passes on only what its users ask, and the overlay only
     * reads it: without this claim a process refusing writers would not stop us. */
    uint64_t perm = BLK_PERM_WRITE |
                    (base->total_size < bs->total_size ? BLK_PERM_RESIZE : 0);
    if (!bdrv_perm_claim(base, &o, perm, BLK_PERM_ALL & ~(uint64_t)BLK_PERM_RESIZE,
                         &err)) {
        error_report_err(err);
        bdrv_unref(bs);
        return 1;
    }
    bool ok = true;
    uint64_t copied = 0;
    int64_t start_ns = g_get_monotonic_time() * 1000;
    if (base->total_size < bs->total_size && !bdrv_truncate(base, bs->total_size, false,
                                                            &err)) {
        error_report_err(err);
        ok = false;
    }
    uint8_t *buf = g_malloc(2 * 1024 * 1024);
    for (int64_t off = 0; ok && off < bs->total_size;) {
        int64_t pnum = 0, map;
        BlockDriverState *file;
        int64_t n = MIN(bs->total_size - off, 2 * 1024 * 1024);
        int st = bdrv_block_status(bs, off, n, &pnum, &map, &file);
        if (st < 0) {
            error_report("error while reading image metadata: %s", g_strerror(-st));
            ok = false;
            break;
        }
        n = pnum > 0 ? MIN(n, pnum) : n;
        if (st & BDRV_BLOCK_ALLOCATED) {
            int r = bdrv_pread(bs, off, n, buf);
            if (r == 0) {
                r = (st & BDRV_BLOCK_ZERO) ? bdrv_pwrite_zeroes(base, off, n, 0)
                                           : bdrv_pwrite(base, off, n, buf);
            }
            if (r < 0) {
                error_report("error while committing at offset %" G_GINT64_FORMAT ": %s",
                             off, g_strerror(-r));
                ok = false;
            }
            copied += n;
            img_throttle(o.rate, start_ns, copied);
        }
        off += n;
        if (progress && !quiet) {
            printf("    (%.2f/100%%)\r", off * 100.0 / bs->total_size);
            fflush(stdout);
        }
    }
    g_free(buf);
    if (ok && bdrv_flush(base) < 0) {
        error_report("error while flushing '%s'", bpath);
        ok = false;
    }
    if (ok && !drop && !strcmp(bs->drv->format_name, "qcow2")) {
        int r = qcow2_make_empty(bs);
        if (r < 0) {
            error_report("could not empty '%s': %s", filename, g_strerror(-r));
            ok = false;
        }
    }
    bdrv_perm_release(base, &o);
    bdrv_unref(bs);
    if (ok && !quiet) {
        printf("Image committed.\n");
    }
    return ok ? 0 : 1;
}
