/*
 * qcow2 image creation (sen-img create, convert's target, -drive snapshot overlays): the
 * create options as qemu-img spells them, then a file laid out as QEMU lays it out
 * (header, refcount table, refcount blocks, L1 table), written and synced in one go;
 * preallocation (qcow2-prealloc.c) runs on the opened image afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "sen/keyval.h"

typedef struct Qcow2CreateOpts {
    uint64_t size;
    uint64_t cluster_size;
    int version;
    bool lazy_refcounts;
    Qcow2Prealloc prealloc;
    unsigned refcount_order;
    int compression_type;
    bool extl2;
    char *backing_file;
    char *backing_fmt;
    char *data_file;   /* external data file name as the header stores it, or NULL */
    bool data_file_raw;
} Qcow2CreateOpts;

/* data_file / data_file_raw, refused where qemu-img refuses them, in its words. */
static bool parse_data_file_opts(const char *filename, Keyval *opts, Qcow2CreateOpts *o,
                                 Error **errp)
{
    o->data_file = keyval_take(opts, "data_file");
    if (o->data_file && !*o->data_file) {
        error_setg(errp, "%s: data_file must name a file", filename);
        return false;
    }
    if (o->data_file_raw && !o->data_file) {
        error_setg(errp, "%s: data-file-raw requires data-file", filename);
        return false;
    }
    if (!o->data_file) {
        return true;
    }
    if (o->version < 3) {
        error_setg(errp, "%s: External data files are only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)", filename);
        return false;
    }
    if (strlen(o->data_file) > QCOW2_MAX_BACKING_NAME) {
        error_setg(errp, "%s: data file name too long", filename);
        return false;
    }
    if (o->data_file_raw && o->backing_file) {
        error_setg(errp, "%s: Backing file and data-file-raw cannot be used at the same time",
                   filename);
        return false;
    }
    /* A raw data file must read as the disk without the metadata: the L2 tables map it
     * 1:1 from the start (QEMU does the same). */
    if (o->data_file_raw && o->prealloc == QCOW2_PREALLOC_OFF) {
        o->prealloc = QCOW2_PREALLOC_METADATA;
    }
    return true;
}

/*
 * Creates (or truncates) the data file at the virtual size, as qemu-img does; its name
 * resolves against the image's directory like every later open of the image.
 */
static bool create_data_file(const char *filename, const Qcow2CreateOpts *o, Error **errp)
{
    g_autofree char *path = qcow2_resolve_backing(filename, o->data_file);
    g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, o->size);
    Keyval *kv = block_keyval_new();
    block_keyval_add(kv, "size", size);
    bool ok = bdrv_create("file", path, kv, errp);
    keyval_free(kv);
    if (!ok) {
        error_prepend(errp, "%s: ", filename);
    }
    return ok;
}

static bool parse_create_opts(const char *filename, Keyval *opts, Qcow2CreateOpts *o,
                              Error **errp)
{
    uint64_t rb;
    bool have_size = keyval_has(opts, "size");
    if (!keyval_get_size(opts, filename, "size", 0, &o->size, errp) ||
        !keyval_get_size(opts, filename, "cluster_size", 65536, &o->cluster_size, errp) ||
        !keyval_get_bool(opts, filename, "lazy_refcounts", false, &o->lazy_refcounts, errp) ||
        !keyval_get_u64(opts, filename, "refcount_bits", 16, &rb, errp) ||
        !keyval_get_bool(opts, filename, "extended_l2", false, &o->extl2, errp) ||
        !keyval_get_bool(opts, filename, "data_file_raw", false, &o->data_file_raw, errp)) {
        return false;
    }
    const char *compat = keyval_get(opts, "compat");
    if (!compat || !strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
        o->version = 3;
    } else if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
        o->version = 2;
    } else {
        error_setg(errp, "%s: invalid compat version '%s' (use 0.10 or 1.1)", filename,
                   compat);
        return false;
    }
    if (o->cluster_size < 512 || o->cluster_size > 2 * 1024 * 1024 ||
        (o->cluster_size & (o->cluster_size - 1))) {
        error_setg(errp, "%s: cluster_size %" G_GUINT64_FORMAT " must be a power of two "
                   "between 512 and 2M", filename, o->cluster_size);
        return false;
    }
    if (!rb || rb > 64 || (rb & (rb - 1))) {
        error_setg(errp, "%s: refcount_bits %" G_GUINT64_FORMAT " must be a power of two "
                   "up to 64", filename, rb);
        return false;
    }
    o->refcount_order = __builtin_ctzll(rb);
    if (o->version == 2 && (rb != 16 || o->lazy_refcounts || o->extl2)) {
        error_setg(errp, "%s: compat=0.10 supports neither lazy_refcounts, extended_l2 nor "
                   "refcount_bits other than 16", filename);
        return false;
    }
    const char *ct = keyval_get(opts, "compression_type");
    if (!ct || !strcmp(ct, "zlib")) {
        o->compression_type = QCOW2_COMPRESSION_ZLIB;
    } else if (!strcmp(ct, "zstd")) {
        o->compression_type = QCOW2_COMPRESSION_ZSTD;
    } else {
        error_setg(errp, "%s: invalid compression_type '%s' (use zlib or zstd)", filename, ct);
        return false;
    }
    if (o->compression_type && o->version == 2) {
        error_setg(errp, "%s: compression_type=zstd needs compat=1.1", filename);
        return false;
    }
    if (o->extl2 && o->cluster_size < 16384) {
        error_setg(errp, "%s: extended_l2 needs a cluster_size of at least 16k", filename);
        return false;
    }
    if (!qcow2_prealloc_parse(keyval_get(opts, "preallocation"), &o->prealloc, errp)) {
        return false;
    }
    o->backing_file = keyval_take(opts, "backing_file");
    if (o->backing_file && o->prealloc != QCOW2_PREALLOC_OFF && !o->extl2) {
        /* Preallocated clusters would hide the backing data (qemu-img refuses it too). */
        error_setg(errp, "Backing file and preallocation can only be used at the same time "
                   "if extended_l2 is on");
        return false;
    }
    o->backing_fmt = keyval_take(opts, "backing_fmt");
    if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME) {
        error_setg(errp, "%s: backing file name too long", filename);
        return false;
    }
    if (o->backing_fmt && strlen(o->backing_fmt) > 16) {
        error_setg(errp, "%s: backing format name '%s' too long", filename, o->backing_fmt);
        return false;
    }
    if (o->backing_fmt && !o->backing_file) {
        error_setg(errp, "%s: backing_fmt without backing_file", filename);
        return false;
    }
    if (!parse_data_file_opts(filename, opts, o, errp)) {
        return false;
    }
    if (!have_size && o->backing_file) {
        g_autofree char *path = qcow2_resolve_backing(filename, o->backing_file);
        BlockDriverState *b = bdrv_open(path, NULL, o->backing_fmt, BDRV_O_NO_BACKING, errp);
        if (!b) {
            error_prepend(errp, "%s: Could not open backing image to determine its size: ",
                          filename);
            return false;
        }
        o->size = b->total_size;
        if (!o->backing_fmt) {
            o->backing_fmt = g_strdup(b->drv->format_name);
        }
        bdrv_unref(b);
    } else if (!have_size) {
        error_setg(errp, "%s: image creation needs a size parameter", filename);
        return false;
    }
    if (o->size % 512) {
        o->size = (o->size + 511) & ~511ull;
    }
    return true;
}

/* Opens the new image and preallocates all of it (the header says nothing about it). */
static bool create_prealloc(const char *filename, const Qcow2CreateOpts *o, Error **errp)
{
    BlockDriverState *bs = bdrv_open(filename, NULL, "qcow2",
                                     BDRV_O_RDWR | BDRV_O_NO_BACKING, errp);
    if (!bs) {
        return false;
    }
    bool ok = qcow2_preallocate(bs, 0, o->size, o->prealloc, errp);
    bdrv_unref(bs);
    return ok;
}

bool qcow2_create(const char *filename, Keyval *opts, Error **errp)
{
    Qcow2CreateOpts o = { 0 };
    bool ok = false;
    uint8_t *img = NULL;
    int fd = -1;

    if (!parse_create_opts(filename, opts, &o, errp)) {
        goto out;
    }
    unsigned cb = __builtin_ctzll(o.cluster_size);
    uint64_t cs = o.cluster_size;
    unsigned l2_bits = cb - (o.extl2 ? 4 : 3);
    uint64_t l1_size = (o.size + (cs << l2_bits) - 1) >> (cb + l2_bits);
    if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "%s: size %" G_GUINT64_FORMAT " too large for cluster_size %"
                   G_GUINT64_FORMAT, filename, o.size, cs);
        goto out;
    }
    /* Layout: header, refcount table, refcount blocks, L1 table (QEMU's order). */
    uint64_t l1c = (l1_size * 8 + cs - 1) / cs;
    uint64_t per_rb = cs * 8 >> o.refcount_order;
    uint64_t rtc = 1, rbc = 1;
    for (;;) {
        uint64_t total = 1 + rtc + rbc + l1c;
        uint64_t need_rb = (total + per_rb - 1) / per_rb;
        uint64_t need_rt = (need_rb * 8 + cs - 1) / cs;
        if (need_rb <= rbc && need_rt <= rtc) {
            break;
        }
        rbc = MAX(rbc, need_rb);
        rtc = MAX(rtc, need_rt);
    }
    uint64_t total = 1 + rtc + rbc + l1c;
    img = g_malloc0(total * cs);
    Qcow2Header h = {
        .magic = QCOW2_MAGIC,
        .version = o.version,
        .cluster_bits = cb,
        .size = o.size,
        .l1_size = l1_size,
        .l1_table_offset = (1 + rtc + rbc) * cs,
        .refcount_table_offset = cs,
        .refcount_table_clusters = rtc,
        .refcount_order = o.refcount_order,
        .header_length = o.version >= 3 ? QCOW2_V3_HEADER_LEN_CT : QCOW2_V2_HEADER_LEN,
        .compression_type = o.compression_type,
    };
    if (o.compression_type) {
        h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
    }
    if (o.extl2) {
        h.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
    }
    if (o.lazy_refcounts) {
        h.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
    }
    if (o.data_file) {
        h.incompatible_features |= QCOW2_INCOMPAT_DATA_FILE;
        h.autoclear_features |= o.data_file_raw ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0;
    }
    Qcow2Extensions ext = { .backing_fmt = o.backing_fmt, .data_file = o.data_file };
    if (!qcow2_header_build(&h, &ext, o.backing_file, img, cs)) {
        error_setg(errp, "%s: header and backing file name do not fit in one cluster",
                   filename);
        goto out;
    }
    for (uint64_t i = 0; i < rbc; i++) {
        qcow2_st64(img + cs + i * 8, (1 + rtc + i) * cs);
    }
    for (uint64_t c = 0; c < total; c++) {
        uint8_t *blk = img + (1 + rtc + c / per_rb) * cs;
        qcow2_refcount_set(blk, c % per_rb, o.refcount_order, 1);
    }
    if (o.data_file && !create_data_file(filename, &o, errp)) {
        goto out;
    }
    fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: could not create the image", filename);
        goto out;
    }
    size_t done = 0;
    while (done < total * cs) {
        ssize_t n = write(fd, img + done, total * cs - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : ENOSPC, "%s: could not write the image",
                             filename);
            goto out;
        }
        done += n;
    }
    if (fsync(fd) < 0) {
        error_setg_errno(errp, errno, "%s: could not sync the image", filename);
        goto out;
    }
    close(fd);
    fd = -1;
    ok = o.prealloc == QCOW2_PREALLOC_OFF || create_prealloc(filename, &o, errp);
out:
    if (fd >= 0) {
        close(fd);
    }
    g_free(img);
    g_free(o.backing_file);
    g_free(o.backing_fmt);
    g_free(o.data_file);
    return ok;
}
