/* sen-img resize: [--preallocation=MODE] [--shrink] [-f fmt] filename [+|-]size, as
 * qemu-img. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "block/qcow2.h"
#include "tools/img/img.h"

/* Refused before any change, with qemu-img's messages. */
static bool check_prealloc(BlockDriverState *bs, Qcow2Prealloc mode, bool growing,
                           Error **errp)
{
    if (mode == QCOW2_PREALLOC_OFF) {
        return true;
    }
    if (!growing) {
        error_setg(errp, "Preallocation can only be used for growing images");
        return false;
    }
    if (strcmp(bs->drv->format_name, "qcow2") && mode == QCOW2_PREALLOC_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: metadata");
        return false;
    }
    return true;
}

/* The grown range [from, to): qcow2 maps it; raw gets blocks (falloc) or zeroes (full). */
static bool resize_prealloc(BlockDriverState *bs, int64_t from, int64_t to,
                            Qcow2Prealloc mode, Error **errp)
{
    if (mode == QCOW2_PREALLOC_OFF) {
        return true;
    }
    if (!strcmp(bs->drv->format_name, "qcow2")) {
        return qcow2_preallocate(bs, from, to, mode, errp);
    }
    int ret = 0;
    if (mode == QCOW2_PREALLOC_FALLOC) {
        ret = bdrv_pwrite_zeroes(bs, from, to - from, 0);
    } else {
        uint64_t chunk = MIN((uint64_t)(to - from), 1024 * 1024);
        uint8_t *zeroes = g_malloc0(chunk);
        for (int64_t off = from; ret == 0 && off < to; off += chunk) {
            ret = bdrv_pwrite(bs, off, MIN((int64_t)chunk, to - off), zeroes);
        }
        g_free(zeroes);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not preallocate", bs->filename);
        return false;
    }
    return true;
}

int img_resize(int argc, char **argv)
{
    const char *fmt = NULL;
    bool image_opts = false; /* --image-opts */
    bool shrink = false, quiet = false;
    const char *prealloc_str = NULL;
    int c;
    enum { OPT_PREALLOC = 256 };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        IMG_LONGOPT_IMAGE_OPTS,
        { "shrink", no_argument, NULL, 's' },
        { "preallocation", required_argument, NULL, OPT_PREALLOC },
        { NULL, 0, NULL, 0 },
    };
    /* "-1G" is a size, not an option: take the size off the end before getopt. */
    if (argc < 3) {
        img_usage_error("Not enough arguments");
        return 1;
    }
    const char *sz = argv[--argc];
    while ((c = img_getopt(argc, argv, "f:hq", longopts)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case IMG_OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case 's':
            shrink = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPT_PREALLOC:
            prealloc_str = optarg;
            break;
        case 'h':
            img_print_usage("resize");
            return 0;
        default:
            return 1;
        }
    }
    if (argc - optind != 1) {
        img_usage_error("Expecting image file name and size");
        return 1;
    }
    const char *filename = argv[optind];
    int sign = 0;
    if (*sz == '+' || *sz == '-') {
        sign = *sz == '+' ? 1 : -1;
        sz++;
    }
    uint64_t n;
    if (!img_parse_opt_size("size", sz, &n)) {
        return 1;
    }
    Qcow2Prealloc prealloc = QCOW2_PREALLOC_OFF;
    if (prealloc_str && !qcow2_prealloc_parse(prealloc_str, &prealloc, NULL)) {
        error_report("Invalid preallocation mode '%s'", prealloc_str);
        return 1;
    }
    BlockDriverState *bs = img_open(filename, fmt, image_opts, BDRV_O_RDWR);
    if (!bs) {
        return 1;
    }
    int64_t cur = bdrv_getlength(bs);
    int64_t size = sign > 0 ? cur + (int64_t)n : sign < 0 ? cur - (int64_t)n : (int64_t)n;
    if (size <= 0) {
        error_report("New image size must be positive");
        bdrv_unref(bs);
        return 1;
    }
    Error *err = NULL;
    bool ok = check_prealloc(bs, prealloc, size > cur, &err);
    if (ok && size < cur && !shrink) {
        /* qemu-img's words, before anything is changed. */
        error_report("Use the --shrink option to perform a shrink operation.");
        warn_report("Shrinking an image will delete all data beyond the shrunken image's "
                    "end. Before performing such an operation, make sure there is no "
                    "important data there.");
        bdrv_unref(bs);
        return 1;
    }
    ok = ok && bdrv_truncate(bs, size, shrink, &err) &&
         resize_prealloc(bs, cur, size, prealloc, &err);
    if (ok && bdrv_flush(bs) < 0) {
        error_setg(&err, "%s: could not flush after resizing", filename);
        ok = false;
    }
    bdrv_unref(bs);
    if (!ok) {
        error_report_err(err);
        return 1;
    }
    if (!quiet) {
        printf("Image resized.\n");
    }
    return 0;
}
