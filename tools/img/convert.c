/*
 * sen-img convert: copies an image into a new one (or an existing one with -n), skipping
 * zero runs of at least -S bytes (4k by default) so the target stays sparse; -c writes
 * qcow2 clusters compressed; -m chunks are in flight at once, written in order unless -W
 * (convert-copy.c).  -t is the target's cache mode, unsafe by default as in qemu-img (no
 * flush until the end; a crash mid-copy leaves a target to throw away).
 * --target-image-opts names an existing target by a node option string
 * ("driver=qcow2,file.filename=x"); as in qemu-img it needs -n and takes no -O or -o.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block-internal.h"
#include "sen/keyval.h"
#include "tools/img/convert-copy.h"
#include "tools/img/img.h"

#define CONVERT_CHUNK (2 * 1024 * 1024)

/* The value of key in a -o option string, or NULL (a malformed string is reported when the
 * target is created). */
static char *img_convert_opt(const char *opts, const char *key)
{
    if (!opts || !*opts) {
        return NULL;
    }
    Keyval *kv = keyval_parse(opts, NULL, NULL);
    char *v = kv ? g_strdup(keyval_get(kv, key)) : NULL;
    if (kv) {
        keyval_free(kv);
    }
    return v;
}

static bool create_target(const char *fmt, const char *filename, const char *opts,
                          uint64_t size, const char *backing, const char *backing_fmt)
{
    Error *err = NULL;
    Keyval *kv = opts && *opts ? keyval_parse(opts, NULL, &err) : block_keyval_new();
    if (!kv) {
        error_report("Invalid options for file format '%s': %s", fmt, error_get_pretty(err));
        error_free(err);
        return false;
    }
    /* As qemu-img reads -o: a size given there is read (and warned about) once, then
     * replaced by the source's; cluster_size the format reads again. */
    if (!img_check_size_opts(fmt, kv, "")) {
        keyval_free(kv);
        return false;
    }
    g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, size);
    block_keyval_add(kv, "size", s);
    if (backing) {
        block_keyval_add(kv, "backing_file", backing);
    }
    if (backing_fmt) {
        block_keyval_add(kv, "backing_fmt", backing_fmt);
    }
    bool ok = bdrv_create(fmt, filename, kv, &err) &&
              keyval_check_all_used(kv, filename, &err);
    keyval_free(kv);
    if (!ok) {
        error_report("%s: error while converting %s: %s", filename, fmt,
                     error_get_pretty(err));
        error_free(err);
    }
    return ok;
}

/* -S as qemu-img 7.2 takes it: a byte count (its messages), a multiple of 512 up to
 * 16 MiB, 0 for no sparse detection. */
static bool img_parse_sparse(const char *str, uint64_t *out)
{
    int64_t v;
    if (!img_parse_num("buffer size for sparse output", str, &v)) {
        return false;
    }
    if (v % 512 || v > 16 * 1024 * 1024) {
        error_report("Invalid buffer size for sparse output specified. Valid sizes are "
                     "multiples of 512 up to 16777216. Select 0 to disable sparse "
                     "detection (fully allocates output).");
        return false;
    }
    *out = v;
    return true;
}

int img_convert(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = NULL, *backing = NULL, *backing_fmt = NULL;
    bool image_opts = false;     /* --image-opts */
    bool tgt_image_opts = false; /* --target-image-opts */
    GString *opts = g_string_new(NULL);
    bool compress = false, show_progress = false, no_create = false, quiet = false;
    bool in_order = true;
    bool copy_range = false, bitmaps = false, skip_broken = false, explicit_sparse = false;
    bool target_is_zero = false; /* --target-is-zero */
    bool salvage = false;        /* --salvage */
    uint64_t sparse = 4096, workers = 8;
    int64_t rate = 0;
    int c, ret = 1, dst_flags = BDRV_O_RDWR, share_flags = 0; /* -U: BDRV_O_FORCE_SHARE */
    /* qemu-img's default for the target: nothing is flushed until the copy is done. */
    const char *cache = "unsafe";
    BlockDriverState *dst = NULL;
    ConvertSource *srcs = NULL;
    int nsrcs = 0;
    g_autofree char *backing_opt = NULL, *backing_fmt_opt = NULL;
    g_auto(ImgSnapshotParam) snapshot = { 0 }; /* -l */
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        IMG_LONGOPT_IMAGE_OPTS,
        { "target-image-opts", no_argument, NULL, IMG_OPT_TARGET_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "target-is-zero", no_argument, NULL, 'z' },
        { "bitmaps", no_argument, NULL, IMG_OPT_FIRST_CMD },
        { "skip-broken-bitmaps", no_argument, NULL, IMG_OPT_FIRST_CMD + 1 },
        { "salvage", no_argument, NULL, IMG_OPT_FIRST_CMD + 2 },
        { NULL, 0, NULL, 0 },
    };
    while ((c = img_getopt(argc, argv, "hf:O:B:F:co:l:pnS:Wm:qt:T:r:UC", longopts)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'l':
            if (!img_snapshot_param_parse(optarg, &snapshot)) {
                goto out;
            }
            break;
        case 'C':
            copy_range = true; /* "try to": the ordinary copy is the fallback */
            break;
        case IMG_OPT_FIRST_CMD:
            bitmaps = true;
            break;
        case IMG_OPT_FIRST_CMD + 1:
            skip_broken = true;
            break;
        case IMG_OPT_FIRST_CMD + 2:
            salvage = true;
            break;
        case IMG_OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case IMG_OPT_TARGET_IMAGE_OPTS:
            tgt_image_opts = true;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'B':
            backing = optarg;
            break;
        case 'F':
            backing_fmt = optarg;
            break;
        case 'c':
            compress = true;
            break;
        case 'o':
            g_string_append_printf(opts, "%s%s", opts->len ? "," : "", optarg);
            break;
        case 'p':
            show_progress = true;
            break;
        case 'n':
            no_create = true;
            break;
        case 'S':
            if (!img_parse_sparse(optarg, &sparse)) {
                goto out;
            }
            explicit_sparse = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 't':
            cache = optarg;
            break;
        case 'm':
            /* qemu-img's number of parallel requests: chunks in flight here. */
            if (!img_parse_count(optarg, &workers) || workers < 1 || workers > 16) {
                error_report("Invalid number of coroutines. Allowed number of coroutines "
                             "is between 1 and 16");
                goto out;
            }
            break;
        case 'W':
            in_order = false;
            break;
        case 'U':
            share_flags = BDRV_O_FORCE_SHARE;
            break;
        case 'r':
            if (!img_parse_num("rate limit", optarg, &rate)) {
                goto out;
            }
            break;
        case 'z':
            target_is_zero = true;
            break;
        case 'T':
            break; /* source cache mode: nothing to change here */
        case 'h':
            img_print_usage("convert");
            ret = 0;
            goto out;
        default:
            goto out;
        }
    }
    /* qemu-img: the last name is the target, all before it are sources. */
    if (argc - optind < 2) {
        error_report("Must specify image file name");
        goto out;
    }
    const char *outname = argv[argc - 1];
    /* qemu-img's checks, in its order and words. */
    if (tgt_image_opts && !no_create) {
        error_report("--target-image-opts requires use of -n flag");
        goto out;
    }
    if (no_create && opts->len) {
        error_report("-o has no effect when skipping image creation");
        goto out;
    }
    if (target_is_zero && !no_create) {
        error_report("--target-is-zero requires use of -n flag");
        goto out;
    }
    if (!img_parse_cache(cache, &dst_flags)) {
        goto out;
    }
    if (tgt_image_opts && out_fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        goto out;
    }
    if (!tgt_image_opts && !out_fmt) {
        out_fmt = "raw";
    }
    if (skip_broken && !bitmaps) {
        error_report("Use of --skip-broken-bitmaps requires --bitmaps");
        goto out;
    }
    if (copy_range && compress) {
        error_report("Cannot enable copy offloading when -c is used");
        goto out;
    }
    if (copy_range && explicit_sparse) {
        error_report("Cannot enable copy offloading when -S is used");
        goto out;
    }
    if (copy_range && salvage) {
        error_report("Cannot use copy offloading in salvaging mode");
        goto out;
    }
    /* With --target-image-opts the format is known once the target is open (below). */
    if (compress && out_fmt && strcmp(out_fmt, "qcow2")) {
        error_report("Compression not supported for this file format");
        goto out;
    }
    /* Several sources are concatenated, each taking whole sectors, as in qemu-img. */
    nsrcs = argc - optind - 1;
    srcs = g_new0(ConvertSource, nsrcs);
    int64_t size = 0;
    for (int i = 0; i < nsrcs; i++) {
        const char *in = argv[optind + i];
        srcs[i].bs = img_open(in, fmt, image_opts, share_flags);
        if (!srcs[i].bs) {
            goto out;
        }
        srcs[i].len = bdrv_getlength(srcs[i].bs);
        if (srcs[i].len < 0) {
            error_report("Could not get size of %s: %s", in, g_strerror((int)-srcs[i].len));
            goto out;
        }
        srcs[i].size = bdrv_get_reported_size(srcs[i].bs);
        size += srcs[i].size;
    }
    BlockDriverState *src = srcs[0].bs;
    /* qemu-img loads a snapshot.id=/snapshot.name= form into the first source only. */
    if (snapshot.id_or_name && nsrcs > 1) {
        error_report("No support for concatenating multiple snapshot");
        goto out;
    }
    if (!img_snapshot_param_load(src, &snapshot)) {
        goto out;
    }
    if (!no_create) {
        /* -o backing_file= wins over -B, as in qemu-img; either needs a backing format. */
        backing_opt = img_convert_opt(opts->str, "backing_file");
        backing_fmt_opt = img_convert_opt(opts->str, "backing_fmt");
        if (backing_opt) {
            backing = backing_opt;
        }
    }
    if (target_is_zero && backing) {
        error_report("Cannot use --target-is-zero when the destination image has a "
                     "backing file");
        goto out;
    }
    if (nsrcs > 1 && backing) {
        error_report("Having a backing file for the target makes no sense when "
                     "concatenating multiple input images");
        goto out;
    }
    if (!no_create && backing && !backing_fmt && !backing_fmt_opt) {
        error_report("Use of backing file requires explicit backing format");
        goto out;
    }
    if (bitmaps && nsrcs > 1) {
        error_report("Copying bitmaps only possible with single source");
        goto out;
    }
    if (bitmaps && !img_convert_bitmaps_check(src, skip_broken)) {
        goto out;
    }
    if (bitmaps && out_fmt && strcmp(out_fmt, "qcow2")) {
        error_report("Format driver '%s' does not support bitmaps", out_fmt);
        goto out;
    }
    if (!no_create &&
        !create_target(out_fmt, outname, opts->str, size, backing_opt ? NULL : backing,
                       backing_fmt)) {
        goto out;
    }
    dst = img_open(outname, out_fmt, tgt_image_opts, dst_flags);
    if (!dst) {
        goto out;
    }
    if (compress && strcmp(dst->drv->format_name, "qcow2")) {
        error_report("Compression not supported for this file format");
        goto out;
    }
    /* Sizes count whole sectors, as qemu-img's; the last source's data must fit in the
     * target itself though (qemu-img would grow a file target to the sector's end,
     * sen-img leaves it as it is and writes nothing but that sector's zero tail past it). */
    int64_t dst_len = bdrv_getlength(dst);
    if (no_create && (bdrv_get_reported_size(dst) < size ||
                      dst_len < size - srcs[nsrcs - 1].size + srcs[nsrcs - 1].len)) {
        error_report("output file is smaller than input file");
        goto out;
    }
    BlockDriverInfo bdi = { 0 };
    uint64_t cs = bdrv_get_info(dst, &bdi) == 0 && bdi.cluster_size ? bdi.cluster_size
                                                                    : 65536;
    ConvertCopy copy = {
        .srcs = srcs, .nsrcs = nsrcs, .dst = dst, .size = size, .dst_len = dst_len,
        /* With -c one cluster per chunk, as qemu-img: compression times vary a lot
         * between clusters, and in-order writes would leave the workers of big chunks
         * waiting for the slowest one. */
        .chunk = compress ? cs : MAX(cs, (uint64_t)CONVERT_CHUNK) / cs * cs,
        .cluster_size = cs, .sparse = sparse, .compress = compress,
        /* A new image without backing reads as zeros: zero runs need no write at all. */
        .target_zero = no_create ? target_is_zero : !backing,
        .in_order = in_order, .workers = workers, .progress = show_progress && !quiet,
        .rate = (uint64_t)rate, .salvage = salvage, .quiet = quiet,
        .copy_range = copy_range,
    };
    Error *err = NULL;
    if (!convert_copy(&copy, &err)) {
        error_report("%s", error_get_pretty(err));
        error_free(err);
        goto out;
    }
    if (bitmaps && !img_convert_bitmaps_copy(src, dst, skip_broken)) {
        goto out;
    }
    if (bdrv_flush(dst) < 0) {
        error_report("error while flushing '%s'", outname);
        goto out;
    }
    if (show_progress && !quiet) {
        printf("    (100.00/100%%)\n");
    }
    ret = 0;
out:
    if (dst) {
        bdrv_unref(dst);
    }
    for (int i = 0; i < nsrcs; i++) {
        if (srcs[i].bs) {
            bdrv_unref(srcs[i].bs);
        }
    }
    g_free(srcs);
    g_string_free(opts, TRUE);
    return ret;
}
