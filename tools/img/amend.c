/*
 * sen-img amend [-f fmt] [-q] -o options filename: qemu-img's option amendment for qcow2:
 * compat (upgrade to 1.1, downgrade to 0.10), refcount_bits, lazy_refcounts, size,
 * data_file (renaming an image's external data file) and data_file_raw=off.
 * Other options are refused, naming them; backing_file/backing_fmt as qemu-img does.
 * The order is qemu-img's: upgrade, then the refcount width, then a downgrade (which
 * needs 16-bit refcounts), then the rest.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "sen/keyval.h"
#include "tools/img/img.h"

/* refcount_bits=N as qemu-img accepts it: a power of two from 1 to 64. */
static bool parse_refcount_bits(const char *str, unsigned *bits, Error **errp)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(str, &end, 0);
    if (!*str || *end || errno || *str == '-') {
        error_setg(errp, "Parameter 'refcount_bits' expects a number");
        return false;
    }
    if (!v || v > 64 || (v & (v - 1))) {
        error_setg(errp, "Refcount width must be a power of two and may not exceed 64 bits");
        return false;
    }
    *bits = (unsigned)v;
    return true;
}

/*
 * size= as qemu-img amend reads it, in its option list's words.  A value it refuses it
 * reads a second time, as the creation options (to tell an option only creation takes),
 * so a hexadecimal one with a suffix ("0x10kk") is warned about twice, as there.
 */
static bool parse_amend_size(const char *str, uint64_t *out, Error **errp)
{
    Error *err = NULL;
    if (parse_size(str, 1, out, &err)) {
        return true;
    }
    uint64_t again;
    (void)!parse_size(str, 1, &again, NULL);
    if (strstr(error_get_pretty(err), "too large")) {
        error_setg(errp, "Value '%s' is out of range for parameter 'size'", str);
    } else {
        error_setg(errp, "Parameter 'size' expects a non-negative number below 2^64");
        error_append_hint(errp, "Optional suffix k, M, G, T, P or E means kilo-, mega-, "
                          "giga-, tera-, peta-\nand exabytes, respectively.\n");
    }
    error_free(err);
    return false;
}

static bool amend_qcow2(BlockDriverState *bs, Keyval *kv, Error **errp)
{
    g_autofree char *compat = keyval_take(kv, "compat");
    g_autofree char *backing = keyval_take(kv, "backing_file");
    g_autofree char *backing_fmt = keyval_take(kv, "backing_fmt");
    g_autofree char *size_str = keyval_take(kv, "size");
    g_autofree char *lazy_str = keyval_take(kv, "lazy_refcounts");
    g_autofree char *rbits_str = keyval_take(kv, "refcount_bits");
    g_autofree char *data_file = keyval_take(kv, "data_file");
    g_autofree char *raw_str = keyval_take(kv, "data_file_raw");
    uint64_t size = 0;

    /* Everything is validated before the first change, so a refusal leaves it untouched. */
    if (!keyval_check_all_used(kv, "amend", errp)) {
        return false;
    }
    int version = 0;
    if (compat) {
        if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
            version = 2;
        } else if (!strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
            version = 3;
        } else {
            error_setg(errp, "Unknown compatibility level %s", compat);
            return false;
        }
    }
    if (size_str && !parse_amend_size(size_str, &size, errp)) {
        return false;
    }
    bool lazy = false;
    if (lazy_str) {
        if (strcmp(lazy_str, "on") && strcmp(lazy_str, "off")) {
            error_setg(errp, "Parameter 'lazy_refcounts' expects 'on' or 'off'");
            return false;
        }
        lazy = !strcmp(lazy_str, "on");
        int target = version ? version : qcow2_image_version(bs);
        if (lazy && target < 3) {
            error_setg(errp, "Lazy refcounts only supported with compatibility level 1.1 "
                       "and above (use compat=1.1 or greater)");
            return false;
        }
    }
    unsigned rbits = 0;
    if (rbits_str) {
        if (!parse_refcount_bits(rbits_str, &rbits, errp)) {
            return false;
        }
        int target = version ? version : qcow2_image_version(bs);
        if (target < 3 && rbits != 16) {
            error_setg(errp, "Refcount widths other than 16 bits require compatibility "
                       "level 1.1 or above (use compat=1.1 or greater)");
            return false;
        }
    }
    int raw = raw_str ? !strcmp(raw_str, "on") : -1;
    if (raw_str && raw == 0 && strcmp(raw_str, "off")) {
        error_setg(errp, "Parameter 'data_file_raw' expects 'on' or 'off'");
        return false;
    }
    if (backing || backing_fmt) {
        /* As qemu-img 7.2: rebase is the tool for that. */
        error_setg(errp, "Cannot amend the backing file (use 'sen-img rebase' instead)");
        return false;
    }
    /* First change: it refuses (data_file on an image without one) before writing. */
    if ((data_file || raw_str) && !qcow2_amend_data_file(bs, data_file, raw, errp)) {
        return false;
    }
    if (version == 3 && !qcow2_amend_version(bs, version, errp)) {
        return false;
    }
    if (rbits && !qcow2_amend_refcount_bits(bs, rbits, errp)) {
        return false;
    }
    if (version == 2 && !qcow2_amend_version(bs, version, errp)) {
        return false;
    }
    if (lazy_str && !qcow2_amend_lazy_refcounts(bs, lazy, errp)) {
        return false;
    }
    if (size_str && (int64_t)size != bdrv_getlength(bs)) {
        /* qemu-img amend shrinks without --shrink. */
        if (!bdrv_truncate(bs, size, true, errp)) {
            return false;
        }
    }
    if (bdrv_flush(bs) < 0) {
        error_setg(errp, "%s: could not flush", bs->filename);
        return false;
    }
    return true;
}

int img_amend(int argc, char **argv)
{
    const char *fmt = NULL, *opts = NULL;
    bool image_opts = false; /* --image-opts */
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        IMG_LONGOPT_IMAGE_OPTS,
        { "force", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    while ((c = img_getopt(argc, argv, "ho:f:pqt:", longopts)) != -1) {
        switch (c) {
        case 'o':
            opts = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case IMG_OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case 'p':
        case 'q':
        case 't':
        case 'F':
            break;
        case 'h':
            img_print_usage("amend");
            return 0;
        default:
            return 1;
        }
    }
    if (!opts) {
        img_usage_error("Must specify options (-o)");
        return 1;
    }
    if (argc - optind != 1) {
        error_report("Expecting one image file name");
        return 1;
    }
    const char *filename = argv[optind];
    Error *err = NULL;
    Keyval *kv = keyval_parse(opts, NULL, &err);
    if (!kv) {
        error_report_err(err);
        return 1;
    }
    BlockDriverState *bs = img_open(filename, fmt, image_opts, BDRV_O_RDWR | BDRV_O_NO_BACKING);
    if (!bs) {
        keyval_free(kv);
        return 1;
    }
    bool ok;
    if (strcmp(bs->drv->format_name, "qcow2")) {
        error_setg(&err, "Format driver '%s' does not support option amendment",
                   bs->drv->format_name);
        ok = false;
    } else {
        ok = amend_qcow2(bs, kv, &err);
    }
    keyval_free(kv);
    bdrv_unref(bs);
    if (!ok) {
        error_report_err(err);
        return 1;
    }
    return 0;
}
