/*
 * sen-img measure: the host file size a raw or qcow2 image of a given size (or converted
 * from an image) needs, with qemu-img's arithmetic and output so the figures compare
 * equal: "required" counts metadata for the fully allocated image plus the data clusters
 * the input actually has, "fully-allocated" every cluster.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "sen/keyval.h"
#include "tools/img/img.h"

#define MEASURE_CHUNK (1ll << 30)

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

static uint64_t round_up(uint64_t a, uint64_t b)
{
    return div_up(a, b) * b;
}

/* Refcount table and block clusters covering `clusters` plus themselves (a fixed point). */
static uint64_t refcount_meta_size(uint64_t clusters, uint64_t csize, unsigned order)
{
    uint64_t per_table = csize / 8, per_block = csize * 8 >> order;
    uint64_t table = 0, blocks = 0, n = 0, last;

    do {
        last = n;
        blocks = div_up(clusters + table + blocks, per_block);
        table = div_up(blocks, per_table);
        n = clusters + blocks + table;
    } while (n != last);
    return (blocks + table) * csize;
}

/* Header, L1, every L2 table and the refcounts of it all, plus the data. */
static uint64_t qcow2_full_size(uint64_t size, uint64_t csize, unsigned order, bool extl2)
{
    uint64_t l2e = extl2 ? 16 : 8;
    uint64_t aligned = round_up(size, csize);
    uint64_t meta = csize;
    uint64_t nl2e = round_up(aligned / csize, csize / l2e);
    uint64_t nl1e = round_up(nl2e * l2e / csize, csize / 8);

    meta += nl2e * l2e + nl1e * 8;
    meta += refcount_meta_size((meta + aligned) / csize, csize, order);
    return meta + aligned;
}

/* Bytes of the input that hold data (not zero, allocated anywhere in its backing chain:
 * a conversion copies them all), cluster-rounded when csize. */
static bool allocated_bytes(BlockDriverState *bs, uint64_t csize, uint64_t *out)
{
    int64_t len = bdrv_getlength(bs);
    uint64_t total = 0;

    for (int64_t off = 0; off < len;) {
        int64_t pnum, map;
        BlockDriverState *file;
        int depth;
        int ret = bdrv_block_status_above(bs, off, MIN(len - off, MEASURE_CHUNK), &pnum, &map,
                                          &file, &depth);
        if (ret < 0 || pnum <= 0) {
            error_report("Unable to get block status: %s", g_strerror(ret < 0 ? -ret : EIO));
            return false;
        }
        if (!(ret & BDRV_BLOCK_ZERO) && (ret & BDRV_BLOCK_DATA)) {
            if (csize) {
                pnum = round_up(off + pnum, csize) - off;
                total += off % csize + pnum;
            } else {
                total += pnum;
            }
        }
        off += pnum;
    }
    *out = total;
    return true;
}

int img_measure(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw", *opts = NULL, *size_str = NULL;
    bool image_opts = false; /* --image-opts */
    bool json = false;
    int c, share_flags = 0; /* -U: BDRV_O_FORCE_SHARE */
    g_auto(ImgSnapshotParam) snapshot = { 0 }; /* -l */
    bool have_snapshot = false;
    enum { OPT_OUTPUT = 256, OPT_SIZE };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        IMG_LONGOPT_IMAGE_OPTS,
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "size", required_argument, NULL, OPT_SIZE },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = img_getopt(argc, argv, "hf:O:o:l:U", longopts)) != -1) {
        switch (c) {
        case 'l':
            if (!img_snapshot_param_parse(optarg, &snapshot)) {
                return 1;
            }
            have_snapshot = true;
            break;
        case 'f':
            fmt = optarg;
            break;
        case IMG_OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            opts = optarg;
            break;
        case OPT_SIZE:
            size_str = optarg;
            break;
        case OPT_OUTPUT:
            if (strcmp(optarg, "json") && strcmp(optarg, "human")) {
                error_report("--output must be used with human or json as argument.");
                return 1;
            }
            json = !strcmp(optarg, "json");
            break;
        case 'U':
            share_flags = BDRV_O_FORCE_SHARE;
            break;
        case 'h':
            img_print_usage("measure");
            return 0;
        default:
            return 1;
        }
    }
    const char *filename = optind < argc ? argv[optind] : NULL;
    if (argc - optind > 1) {
        error_report("At most one filename argument is allowed.");
        return 1;
    }
    if (!filename && (image_opts || fmt || have_snapshot)) {
        error_report("--image-opts, -f, and -l require a filename argument.");
        return 1;
    }
    if (filename && size_str) {
        error_report("--size N cannot be used together with a filename.");
        return 1;
    }
    if (!filename && !size_str) {
        error_report("Either --size N or one filename must be specified.");
        return 1;
    }
    bool qcow2 = !strcmp(out_fmt, "qcow2");
    if (!qcow2 && strcmp(out_fmt, "raw")) {
        error_report("Format driver '%s' does not support measure", out_fmt);
        return 1;
    }

    Error *err = NULL;
    Keyval *kv = opts && *opts ? keyval_parse(opts, NULL, &err) : block_keyval_new();
    uint64_t csize = 0, rbits = 16;
    bool extl2 = false, v2 = false, bitmaps = false;
    g_autofree char *prealloc = NULL;
    if (!kv) {
        error_report_err(err);
        return 1;
    }
    prealloc = g_strdup(keyval_get(kv, "preallocation"));
    if (qcow2) {
        const char *compat = keyval_get(kv, "compat");
        const char *cs = keyval_get(kv, "cluster_size");
        csize = 65536;
        if (cs && !img_parse_opt_size("cluster_size", cs, &csize)) {
            keyval_free(kv);
            error_report("Invalid options for file format 'qcow2'");
            return 1;
        }
        if (!keyval_get_u64(kv, "measure", "refcount_bits", 16, &rbits, &err) ||
            !keyval_get_bool(kv, "measure", "extended_l2", false, &extl2, &err)) {
            keyval_free(kv);
            error_report_err(err);
            return 1;
        }
        v2 = compat && (!strcmp(compat, "0.10") || !strcmp(compat, "v2"));
        if (csize < 512 || csize > (2u << 20) || (csize & (csize - 1)) ||
            rbits < 1 || rbits > 64 || (rbits & (rbits - 1))) {
            keyval_free(kv);
            error_report("Invalid cluster_size or refcount_bits");
            return 1;
        }
    }
    (void)keyval_take(kv, "compat");
    keyval_free(kv);

    uint64_t size, data;
    if (size_str) {
        int64_t n;
        if (!img_parse_num("image size", size_str, &n)) {
            return 1;
        }
        size = data = n;
    } else {
        BlockDriverState *bs = img_open(filename, fmt, image_opts, share_flags);
        if (!bs) {
            return 1;
        }
        if (!img_snapshot_param_load(bs, &snapshot)) {
            bdrv_unref(bs);
            return 1;
        }
        size = bdrv_getlength(bs);
        /* qemu-img shows bitmaps when the source could carry persistent ones: qcow2 v3. */
        uint8_t ver[4];
        bitmaps = qcow2 && !v2 && !strcmp(bs->drv->format_name, "qcow2") &&
                  bdrv_pread(bs->file, 4, 4, ver) == 0 && ver[3] >= 3;
        bool ok = allocated_bytes(bs, csize, &data);
        bdrv_unref(bs);
        if (!ok) {
            return 1;
        }
    }
    /* qemu-img works in whole sectors. */
    size = round_up(size, BDRV_SECTOR_SIZE);
    bool full = prealloc && (!strcmp(prealloc, "full") || !strcmp(prealloc, "falloc"));
    uint64_t required, fully;
    if (qcow2) {
        uint64_t vsize = round_up(size, csize);
        fully = qcow2_full_size(vsize, csize, __builtin_ctzll(rbits), extl2);
        /* With --size there is no data to count: only the metadata is required. */
        required = fully - vsize + (full ? vsize : size_str ? 0 : data);
    } else {
        /* qemu-img counts a raw target fully, sparse or not. */
        fully = size;
        required = size;
    }
    if (json) {
        printf("{\n");
        if (bitmaps) {
            printf("    \"bitmaps\": 0,\n");
        }
        printf("    \"required\": %" G_GUINT64_FORMAT ",\n"
               "    \"fully-allocated\": %" G_GUINT64_FORMAT "\n}\n", required, fully);
    } else {
        printf("required size: %" G_GUINT64_FORMAT "\nfully allocated size: %"
               G_GUINT64_FORMAT "\n", required, fully);
        if (bitmaps) {
            printf("bitmaps size: 0\n");
        }
    }
    return 0;
}
