/* sen-img resize: [--shrink] [-f fmt] filename [+|-]size, as qemu-img. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

int img_resize(int argc, char **argv)
{
    const char *fmt = NULL;
    bool shrink = false, quiet = false;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "shrink", no_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    /* "-1G" is a size, not an option: take the size off the end before getopt. */
    if (argc < 3) {
        error_report("Expecting image file name and size");
        return 1;
    }
    const char *sz = argv[--argc];
    optind = 1;
    while ((c = getopt_long(argc, argv, "+f:hqU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 's':
            shrink = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'U':
            break;
        case 'h':
            printf("usage: sen-img resize [--shrink] [-f fmt] [-q] filename [+ | -]size\n");
            return 0;
        default:
            return 1;
        }
    }
    if (argc - optind != 1) {
        error_report("Expecting image file name and size");
        return 1;
    }
    const char *filename = argv[optind];
    int sign = 0;
    if (*sz == '+' || *sz == '-') {
        sign = *sz == '+' ? 1 : -1;
        sz++;
    }
    uint64_t n;
    if (!img_parse_size(sz, &n)) {
        return 1;
    }
    BlockDriverState *bs = img_open(filename, fmt, BDRV_O_RDWR);
    if (!bs) {
        return 1;
    }
    int64_t cur = bdrv_getlength(bs);
    int64_t size = sign > 0 ? cur + (int64_t)n : sign < 0 ? cur - (int64_t)n : (int64_t)n;
    if (size < 0) {
        error_report("New image size must be positive");
        bdrv_unref(bs);
        return 1;
    }
    Error *err = NULL;
    bool ok = bdrv_truncate(bs, size, shrink, &err);
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
