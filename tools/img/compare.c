/*
 * sen-img compare: exit 0 identical, 1 different (first offset printed), 2 on error, as
 * qemu-img.  A size difference is fine when the extra part reads as zeroes (-s: it is not).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "block/block-internal.h"
#include "tools/img/img.h"

#define COMPARE_CHUNK (1024 * 1024)

static int64_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return i;
        }
    }
    return -1;
}

int img_compare(int argc, char **argv)
{
    const char *fmt1 = NULL, *fmt2 = NULL;
    bool strict = false, quiet = false, progress = false;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    while ((c = getopt_long(argc, argv, "+hf:F:T:pqsU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt1 = optarg;
            break;
        case 'F':
            fmt2 = optarg;
            break;
        case 's':
            strict = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'T':
        case 'U':
            break;
        case 'h':
            printf("usage: sen-img compare [-f fmt] [-F fmt] [-p] [-q] [-s] filename1 "
                   "filename2\n");
            return 0;
        default:
            return 2;
        }
    }
    if (argc - optind != 2) {
        error_report("Expecting two image file names");
        return 2;
    }
    BlockDriverState *a = img_open(argv[optind], fmt1, 0);
    if (!a) {
        return 2;
    }
    BlockDriverState *b = img_open(argv[optind + 1], fmt2, 0);
    if (!b) {
        bdrv_unref(a);
        return 2;
    }
    int64_t sa = bdrv_getlength(a), sb = bdrv_getlength(b);
    uint8_t *ba = g_malloc(COMPARE_CHUNK), *bb = g_malloc(COMPARE_CHUNK);
    int ret = 0;
    if (strict && sa != sb) {
        if (!quiet) {
            printf("Strict mode: Image size mismatch!\n");
        }
        ret = 1;
        goto out;
    }
    int64_t common = MIN(sa, sb), total = MAX(sa, sb);
    for (int64_t off = 0; off < total && ret == 0; off += COMPARE_CHUNK) {
        size_t n = MIN(COMPARE_CHUNK, total - off);
        int64_t d;
        if (off < common) {
            n = MIN((int64_t)n, common - off);
            if (bdrv_pread(a, off, n, ba) < 0 || bdrv_pread(b, off, n, bb) < 0) {
                error_report("Error while reading offset %" G_GINT64_FORMAT, off);
                ret = 2;
                break;
            }
            d = first_diff(ba, bb, n);
        } else {
            BlockDriverState *longer = sa > sb ? a : b;
            if (bdrv_pread(longer, off, n, ba) < 0) {
                error_report("Error while reading offset %" G_GINT64_FORMAT, off);
                ret = 2;
                break;
            }
            memset(bb, 0, n);
            d = first_diff(ba, bb, n);
        }
        if (d >= 0) {
            if (!quiet) {
                /* qemu-img reports the start of the first differing sector. */
                printf("Content mismatch at offset %" G_GINT64_FORMAT "!\n",
                       (off + d) & ~(int64_t)511);
            }
            ret = 1;
        }
        if (progress && !quiet) {
            printf("    (%.2f/100%%)\r", (off + n) * 100.0 / total);
            fflush(stdout);
        }
    }
    if (ret == 0 && !quiet) {
        printf("Images are identical.\n");
    }
out:
    g_free(ba);
    g_free(bb);
    bdrv_unref(a);
    bdrv_unref(b);
    return ret;
}
