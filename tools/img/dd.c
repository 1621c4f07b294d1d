/* sen-img dd: qemu-img dd's subset of dd(1): if=, of=, bs=, count=, skip=; -f, -O. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "block/block-internal.h"
#include "sen/buffer-is-zero.h"
#include "tools/img/img.h"

int img_dd(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw", *in = NULL, *out = NULL;
    bool image_opts = false; /* --image-opts */
    uint64_t bs_size = 512, count = 0, skip = 0;
    bool have_count = false;
    int c, share_flags = 0; /* -U: BDRV_O_FORCE_SHARE */
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        IMG_LONGOPT_IMAGE_OPTS,
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = img_getopt(argc, argv, "hf:O:U", longopts)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case IMG_OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'U':
            share_flags = BDRV_O_FORCE_SHARE;
            break;
        case 'h':
            img_print_usage("dd");
            return 0;
        default:
            return 1;
        }
    }
    for (int i = optind; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq) {
            error_report("unrecognized operand %s", argv[i]);
            return 1;
        }
        g_autofree char *key = g_strndup(argv[i], eq - argv[i]);
        const char *val = eq + 1;
        if (!strcmp(key, "if")) {
            in = val;
        } else if (!strcmp(key, "of")) {
            out = val;
        } else if (!strcmp(key, "bs") || !strcmp(key, "count") || !strcmp(key, "skip")) {
            /* qemu-img's names and ranges: bs 1..INT_MAX, the others 0..INT64_MAX. */
            int64_t v;
            bool bs = !strcmp(key, "bs");
            if (!img_parse_num_range(key, val, bs, bs ? INT_MAX : INT64_MAX, &v)) {
                return 1;
            }
            if (bs) {
                bs_size = v;
            } else if (!strcmp(key, "count")) {
                count = v;
                have_count = true;
            } else {
                skip = v;
            }
        } else {
            error_report("unrecognized operand %s", argv[i]);
            return 1;
        }
    }
    if (!in || !out) {
        error_report("Must specify both input and output files");
        return 1;
    }
    BlockDriverState *src = img_open(in, fmt, image_opts, share_flags);
    if (!src) {
        return 1;
    }
    int64_t size = bdrv_getlength(src);
    /* As qemu-img: count is measured from the start of the input, skipped blocks too. */
    int64_t end = have_count ? (int64_t)MIN(count * bs_size, (uint64_t)size) : size;
    /* As qemu-img (and dd): skipping past the end is said, and copies nothing. */
    bool past = skip > (uint64_t)INT64_MAX / bs_size || skip * bs_size > (uint64_t)end;
    if (past) {
        error_report("%s: cannot skip to specified offset", in);
    }
    int64_t start = past ? end : (int64_t)MIN(skip * bs_size, (uint64_t)end);
    int64_t len = end - start;
    Error *err = NULL;
    Keyval *kv = block_keyval_new();
    g_autofree char *s = g_strdup_printf("%" G_GINT64_FORMAT, len);
    block_keyval_add(kv, "size", s);
    bool ok = bdrv_create(out_fmt, out, kv, &err);
    keyval_free(kv);
    if (!ok) {
        error_report("%s: error while creating output image: %s", out, error_get_pretty(err));
        error_free(err);
        bdrv_unref(src);
        return 1;
    }
    BlockDriverState *dst = img_open(out, out_fmt, false, BDRV_O_RDWR);
    if (!dst) {
        bdrv_unref(src);
        return 1;
    }
    uint64_t chunk = MAX(bs_size, 1024 * 1024 / bs_size * bs_size);
    uint8_t *buf = g_malloc(chunk);
    for (int64_t off = 0; ok && off < len; off += chunk) {
        int64_t n = MIN((int64_t)chunk, len - off);
        int r = bdrv_pread(src, start + off, n, buf);
        if (r < 0) {
            error_report("error while reading from input image file: %s", g_strerror(-r));
            ok = false;
        } else if (!buffer_is_zero(buf, n) && (r = bdrv_pwrite(dst, off, n, buf)) < 0) {
            error_report("error while writing to output image file: %s", g_strerror(-r));
            ok = false;
        }
    }
    g_free(buf);
    if (ok && bdrv_flush(dst) < 0) {
        ok = false;
    }
    bdrv_unref(dst);
    bdrv_unref(src);
    return ok ? 0 : 1;
}
