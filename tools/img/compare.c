/*
 * sen-img compare: exit 0 identical, 1 different (first offset printed), 2 on error, as
 * qemu-img.  A size difference is fine when the extra part reads as zeroes (-s: it is not).
 */
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

typedef struct CompareOpts {
    const char *fmt2;
    const char *src_cache; /* -T */
    bool strict, quiet, progress;
} CompareOpts;

static bool compare_option(int c, const char *arg, void *opaque)
{
    CompareOpts *o = opaque;

    switch (c) {
    case 'F':
        o->fmt2 = arg;
        break;
    case 's':
        o->strict = true;
        break;
    case 'q':
        o->quiet = true;
        break;
    case 'p':
        o->progress = true;
        break;
    case 'T':
        o->src_cache = arg; /* checked once the names are, as qemu-img */
        break;
    default:
        return false;
    }
    return true;
}

/* Whether bs's block status answers for all of [off, off+n). */
static bool allocation_known(BlockDriverState *bs, int64_t off, int64_t n)
{
    while (n > 0) {
        int64_t pnum = 0, map;
        BlockDriverState *file;
        int depth;
        if (bdrv_block_status_above(bs, off, n, &pnum, &map, &file, &depth) < 0 || pnum <= 0) {
            return false;
        }
        off += pnum;
        n -= pnum;
    }
    return true;
}

int img_compare(int argc, char **argv)
{
    CompareOpts o = { 0 };
    const ImgArgsSpec spec = {
        .cmd = "compare",
        .shortopts = "F:T:pqs", .option = compare_option, .opaque = &o, .two_files = true,
        .error_status = 2,
    };
    ImgImageArgs args;
    int status = img_parse_image_args(argc, argv, &spec, &args);
    if (status >= 0) {
        return status;
    }
    int cache_flags = 0; /* reads are the same in every mode */
    if (o.src_cache && !img_parse_src_cache(o.src_cache, &cache_flags)) {
        return 2;
    }
    const char *fmt1 = args.fmt, *fmt2 = o.fmt2;
    bool strict = o.strict, quiet = o.quiet, progress = o.progress;
    BlockDriverState *a = img_open(args.filename, fmt1, args.image_opts, args.share_flags);
    if (!a) {
        return 2;
    }
    BlockDriverState *b = img_open(args.filename2, fmt2, args.image_opts, args.share_flags);
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
            /* qemu-img looks at the allocation first: an image whose metadata cannot say
             * (a corrupt L2 entry) fails there, exit 3. */
            const char *unsure = NULL;
            if (!allocation_known(a, off, n)) {
                unsure = args.filename;
            } else if (!allocation_known(b, off, n)) {
                unsure = args.filename2;
            }
            if (unsure) {
                error_report("Sector allocation test failed for %s", unsure);
                ret = 3;
                break;
            }
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
