/*
 * sen-img rebase: point an overlay at another backing file.  Safe mode (default) first
 * copies into the overlay every unallocated range whose content differs between the old
 * and the new backing chain, so the guest-visible data stays the same; -u only rewrites
 * the header.
 */
#include <stdio.h>
#include <string.h>

#include "block/qcow2.h"
#include "tools/img/img.h"

/* Copies the ranges the new backing would change into bs. */
static bool rebase_copy(BlockDriverState *bs, BlockDriverState *nb, bool progress)
{
    int64_t size = bs->total_size;
    BlockDriverInfo bdi = { 0 };
    int64_t chunk = bdrv_get_info(bs, &bdi) == 0 && bdi.cluster_size ? bdi.cluster_size
                                                                     : 65536;
    chunk = MAX(chunk, 4096);
    uint8_t *a = g_malloc(chunk), *b = g_malloc(chunk);
    bool ok = true;
    for (int64_t off = 0; off < size && ok;) {
        int64_t pnum = 0, map;
        BlockDriverState *file;
        int64_t n = MIN(chunk - off % chunk, size - off);
        int st = bdrv_block_status(bs, off, n, &pnum, &map, &file);
        if (st < 0) {
            error_report("error while reading image metadata: %s", g_strerror(-st));
            ok = false;
            break;
        }
        n = pnum > 0 ? MIN(n, pnum) : n;
        if (!(st & BDRV_BLOCK_ALLOCATED)) {
            int64_t nlen = nb ? nb->total_size : 0;
            memset(b, 0, n);
            if (bdrv_pread(bs, off, n, a) < 0 ||
                (off < nlen && bdrv_pread(nb, off, MIN(n, nlen - off), b) < 0)) {
                error_report("error while reading at offset %" G_GINT64_FORMAT, off);
                ok = false;
                break;
            }
            if (memcmp(a, b, n) && bdrv_pwrite(bs, off, n, a) < 0) {
                error_report("error while writing at offset %" G_GINT64_FORMAT, off);
                ok = false;
                break;
            }
        }
        off += n;
        if (progress) {
            printf("    (%.2f/100%%)\r", off * 100.0 / size);
            fflush(stdout);
        }
    }
    g_free(a);
    g_free(b);
    return ok && bdrv_flush(bs) == 0;
}

/*
 * Safe mode reads through the old backing chain with the -T cache mode, so it is opened
 * here rather than by the image's open (which would give it the image's -t mode).
 */
static bool open_old_backing(BlockDriverState *bs, const char *filename, int src_flags)
{
    BDRVQcow2State *s = bs->opaque;
    Error *err = NULL;

    if (!s->backing_file) {
        return true;
    }
    g_autofree char *path = qcow2_resolve_backing(filename, s->backing_file);
    BlockDriverState *old = bdrv_open(path, NULL, s->ext.backing_fmt, src_flags, &err);
    if (!old) {
        error_report("Could not open old backing file '%s': %s", path,
                     error_get_pretty(err));
        error_free(err);
        return false;
    }
    old->ctx = bs->ctx;
    bs->backing = old;
    return true;
}

typedef struct RebaseOpts {
    const char *backing, *backing_fmt;
    const char *cache, *src_cache;
    bool unsafe, progress, quiet;
} RebaseOpts;

static bool rebase_option(int c, const char *arg, void *opaque)
{
    RebaseOpts *o = opaque;

    switch (c) {
    case 'F':
        o->backing_fmt = arg;
        break;
    case 'b':
        o->backing = arg;
        break;
    case 'u':
        o->unsafe = true;
        break;
    case 'p':
        o->progress = true;
        break;
    case 'q':
        o->quiet = true;
        break;
    case 't':
        o->cache = arg;
        break;
    case 'T':
        o->src_cache = arg;
        break;
    default:
        return false;
    }
    return true;
}

int img_rebase(int argc, char **argv)
{
    /* qemu-img's defaults for both cache modes. */
    RebaseOpts o = { .cache = "writeback", .src_cache = "writeback" };
    const ImgArgsSpec spec = {
        .cmd = "rebase",
        .shortopts = "F:b:upt:T:q", .option = rebase_option, .opaque = &o,
    };
    ImgImageArgs args;
    int status = img_parse_image_args(argc, argv, &spec, &args);
    if (status >= 0) {
        return status;
    }
    const char *fmt = args.fmt, *backing = o.backing, *backing_fmt = o.backing_fmt;
    const char *cache = o.cache, *src_cache = o.src_cache;
    bool unsafe = o.unsafe, progress = o.progress, quiet = o.quiet;
    /* -U lets the backing files (only read) be in use by writers; the image is
     * written, so it is locked as usual. */
    int flags = BDRV_O_RDWR, src_flags = args.share_flags;
    if (!backing) {
        error_report("Must specify backing file (-b)");
        return 1;
    }
    if (!img_parse_cache(cache, &flags) || !img_parse_src_cache(src_cache, &src_flags)) {
        return 1;
    }
    const char *filename = args.filename;
    BlockDriverState *bs = img_open(filename, fmt, args.image_opts,
                                    flags | BDRV_O_NO_BACKING);
    if (!bs) {
        return 1;
    }
    if (strcmp(bs->drv->format_name, "qcow2")) {
        error_report("'%s': format '%s' has no backing file to change", filename,
                     bs->drv->format_name);
        bdrv_unref(bs);
        return 1;
    }
    if (!unsafe && !open_old_backing(bs, filename, src_flags)) {
        bdrv_unref(bs);
        return 1;
    }
    BlockDriverState *nb = NULL;
    bool ok = true;
    if (*backing) {
        g_autofree char *path = qcow2_resolve_backing(filename, backing);
        Error *err = NULL;
        nb = bdrv_open(path, NULL, backing_fmt, src_flags, &err);
        if (!nb && !unsafe) {
            error_report("Could not open new backing file '%s': %s", path,
                         error_get_pretty(err));
            ok = false;
        }
        error_free(err);
        if (nb && !backing_fmt) {
            backing_fmt = nb->drv->format_name;
        }
    }
    if (ok && !unsafe) {
        ok = rebase_copy(bs, nb, progress && !quiet);
    }
    if (ok) {
        Error *err = NULL;
        ok = qcow2_change_backing(bs, backing, backing_fmt, &err);
        if (!ok) {
            error_report_err(err);
        }
    }
    if (nb) {
        bdrv_unref(nb);
    }
    bdrv_unref(bs);
    return ok ? 0 : 1;
}
