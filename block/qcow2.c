/*
 * QCOW2 header and header extensions: parse, validate, rebuild.
 *
 * Validation follows what QEMU accepts, so an image either tool opens the other opens too;
 * every message names the image and the offending field.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>

#include "block/qcow2.h"

bool qcow2_header_parse(const uint8_t *buf, size_t len, const char *name, Qcow2Header *h,
                        Error **errp)
{
    memset(h, 0, sizeof(*h));
    if (len < QCOW2_V2_HEADER_LEN) {
        error_setg(errp, "%s: file too short for a qcow2 header", name);
        return false;
    }
    h->magic = qcow2_ld32(buf);
    h->version = qcow2_ld32(buf + 4);
    h->backing_file_offset = qcow2_ld64(buf + 8);
    h->backing_file_size = qcow2_ld32(buf + 16);
    h->cluster_bits = qcow2_ld32(buf + 20);
    h->size = qcow2_ld64(buf + 24);
    h->crypt_method = qcow2_ld32(buf + 32);
    h->l1_size = qcow2_ld32(buf + 36);
    h->l1_table_offset = qcow2_ld64(buf + 40);
    h->refcount_table_offset = qcow2_ld64(buf + 48);
    h->refcount_table_clusters = qcow2_ld32(buf + 56);
    h->nb_snapshots = qcow2_ld32(buf + 60);
    h->snapshots_offset = qcow2_ld64(buf + 64);

    if (h->magic != QCOW2_MAGIC) {
        error_setg(errp, "%s: not a qcow2 image (bad magic)", name);
        return false;
    }
    if (h->version != 2 && h->version != 3) {
        error_setg(errp, "%s: unsupported qcow2 version %u", name, h->version);
        return false;
    }
    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    } else {
        if (len < QCOW2_V3_HEADER_LEN) {
            error_setg(errp, "%s: file too short for a qcow2 v3 header", name);
            return false;
        }
        h->incompatible_features = qcow2_ld64(buf + 72);
        h->compatible_features = qcow2_ld64(buf + 80);
        h->autoclear_features = qcow2_ld64(buf + 88);
        h->refcount_order = qcow2_ld32(buf + 96);
        h->header_length = qcow2_ld32(buf + 100);
        if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length % 8 != 0 ||
            h->header_length > len) {
            error_setg(errp, "%s: invalid qcow2 header length %u", name, h->header_length);
            return false;
        }
        if (h->header_length > QCOW2_V3_HEADER_LEN) {
            h->compression_type = buf[104];
        }
    }
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "%s: unsupported cluster size 2^%u (must be 512 B .. 2 MiB)", name,
                   h->cluster_bits);
        return false;
    }
    uint64_t cs = 1ull << h->cluster_bits;
    if (h->header_length > cs) {
        error_setg(errp, "%s: qcow2 header length %u exceeds the cluster size", name,
                   h->header_length);
        return false;
    }
    if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER) {
        error_setg(errp, "%s: invalid refcount order %u (at most 6)", name, h->refcount_order);
        return false;
    }
    if (h->crypt_method != 0) {
        error_setg(errp, "%s: encrypted qcow2 images are not supported", name);
        return false;
    }
    if (h->compression_type > QCOW2_COMPRESSION_ZSTD) {
        error_setg(errp, "%s: unknown compression type %u", name, h->compression_type);
        return false;
    }
    if (h->compression_type != QCOW2_COMPRESSION_ZLIB &&
        !(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "%s: compression type %u without the compression incompatible bit",
                   name, h->compression_type);
        return false;
    }
    if (h->backing_file_offset) {
        if (h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
            h->backing_file_offset > cs - h->backing_file_size) {
            error_setg(errp, "%s: backing file name outside the header cluster", name);
            return false;
        }
    }
    if (h->size > (1ull << 62)) {
        error_setg(errp, "%s: virtual size %" G_GUINT64_FORMAT " too large", name, h->size);
        return false;
    }
    uint64_t l2_entries = cs / ((h->incompatible_features & QCOW2_INCOMPAT_EXTL2) ? 16 : 8);
    uint64_t l1_needed = (h->size + cs * l2_entries - 1) / (cs * l2_entries);
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "%s: L1 table of %u entries is too large", name, h->l1_size);
        return false;
    }
    if (h->l1_size < l1_needed) {
        error_setg(errp, "%s: L1 table of %u entries too small for the virtual size", name,
                   h->l1_size);
        return false;
    }
    if (h->l1_size && (h->l1_table_offset % cs || !h->l1_table_offset ||
                       h->l1_table_offset > INT64_MAX - (uint64_t)h->l1_size * 8)) {
        error_setg(errp, "%s: invalid L1 table offset %#" G_GINT64_MODIFIER "x", name,
                   h->l1_table_offset);
        return false;
    }
    if (!h->refcount_table_clusters ||
        h->refcount_table_clusters * cs > QCOW2_MAX_REFTABLE_BYTES) {
        error_setg(errp, "%s: invalid refcount table size of %u clusters", name,
                   h->refcount_table_clusters);
        return false;
    }
    if (h->refcount_table_offset % cs || !h->refcount_table_offset ||
        h->refcount_table_offset > INT64_MAX - h->refcount_table_clusters * cs) {
        error_setg(errp, "%s: invalid refcount table offset %#" G_GINT64_MODIFIER "x", name,
                   h->refcount_table_offset);
        return false;
    }
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "%s: too many snapshots (%u)", name, h->nb_snapshots);
        return false;
    }
    if (h->nb_snapshots && (h->snapshots_offset % cs || !h->snapshots_offset ||
                            h->snapshots_offset > INT64_MAX / 2)) {
        error_setg(errp, "%s: invalid snapshot table offset %#" G_GINT64_MODIFIER "x", name,
                   h->snapshots_offset);
        return false;
    }
    return true;
}

bool qcow2_header_check_features(const Qcow2Header *h, const Qcow2Extensions *ext,
                                 const char *name, Error **errp)
{
    uint64_t unknown = h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;
    if (unknown) {
        GString *s = g_string_new(NULL);
        for (unsigned bit = 0; bit < 64; bit++) {
            if (!(unknown & (1ull << bit))) {
                continue;
            }
            const char *fn = qcow2_feature_name(ext, 0, bit);
            if (s->len) {
                g_string_append(s, ", ");
            }
            if (fn) {
                g_string_append(s, fn);
            } else {
                g_string_append_printf(s, "Unknown incompatible feature: %u", bit);
            }
        }
        error_setg(errp, "%s: unsupported qcow2 feature(s): %s", name, s->str);
        g_string_free(s, TRUE);
        return false;
    }
    if ((h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) &&
        !(h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)) {
        error_setg(errp, "%s: data-file-raw requires a data file", name);
        return false;
    }
    return true;
}

const char *qcow2_feature_name(const Qcow2Extensions *ext, uint8_t type, uint8_t bit)
{
    for (size_t i = 0; ext && i < ext->nb_features; i++) {
        if (ext->features[i].type == type && ext->features[i].bit == bit) {
            return ext->features[i].name;
        }
    }
    return NULL;
}

size_t qcow2_header_serialize(const Qcow2Header *h, uint8_t *buf)
{
    size_t len = h->version == 2 ? QCOW2_V2_HEADER_LEN : h->header_length;
    memset(buf, 0, len);
    qcow2_st32(buf, QCOW2_MAGIC);
    qcow2_st32(buf + 4, h->version);
    qcow2_st64(buf + 8, h->backing_file_offset);
    qcow2_st32(buf + 16, h->backing_file_size);
    qcow2_st32(buf + 20, h->cluster_bits);
    qcow2_st64(buf + 24, h->size);
    qcow2_st32(buf + 32, h->crypt_method);
    qcow2_st32(buf + 36, h->l1_size);
    qcow2_st64(buf + 40, h->l1_table_offset);
    qcow2_st64(buf + 48, h->refcount_table_offset);
    qcow2_st32(buf + 56, h->refcount_table_clusters);
    qcow2_st32(buf + 60, h->nb_snapshots);
    qcow2_st64(buf + 64, h->snapshots_offset);
    if (h->version >= 3) {
        qcow2_st64(buf + 72, h->incompatible_features);
        qcow2_st64(buf + 80, h->compatible_features);
        qcow2_st64(buf + 88, h->autoclear_features);
        qcow2_st32(buf + 96, h->refcount_order);
        qcow2_st32(buf + 100, h->header_length);
        if (h->header_length > QCOW2_V3_HEADER_LEN) {
            buf[104] = h->compression_type;
        }
    }
    return len;
}

static void raw_ext_free(gpointer p)
{
    g_free(((Qcow2RawExt *)p)->data);
}

void qcow2_ext_clear(Qcow2Extensions *ext)
{
    g_free(ext->backing_fmt);
    g_free(ext->data_file);
    g_free(ext->features);
    if (ext->unknown) {
        g_array_free(ext->unknown, TRUE);
    }
    memset(ext, 0, sizeof(*ext));
}

bool qcow2_ext_parse(const Qcow2Header *h, const uint8_t *buf, size_t len,
                     const char *name, Qcow2Extensions *ext, Error **errp)
{
    size_t off = h->header_length;
    /* Extensions end at the backing file name when it comes first. */
    size_t end = len;
    if (h->backing_file_offset && h->backing_file_offset < end) {
        end = h->backing_file_offset;
    }
    memset(ext, 0, sizeof(*ext));
    ext->unknown = g_array_new(FALSE, TRUE, sizeof(Qcow2RawExt));
    g_array_set_clear_func(ext->unknown, raw_ext_free);
    for (;;) {
        if (off + 8 > end) {
            /* Version 2 images may end the header without an end marker. */
            if (h->version == 2 && off >= end) {
                ext->end = off;
                return true;
            }
            error_setg(errp, "%s: qcow2 header extensions run past the header", name);
            goto fail;
        }
        uint32_t type = qcow2_ld32(buf + off);
        uint32_t elen = qcow2_ld32(buf + off + 4);
        off += 8;
        if (type == QCOW2_EXT_END) {
            ext->end = off;
            return true;
        }
        if (elen > end - off) {
            error_setg(errp, "%s: qcow2 header extension %#x too long", name, type);
            goto fail;
        }
        const uint8_t *d = buf + off;
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (elen > 16) {
                error_setg(errp, "%s: backing format name too long", name);
                goto fail;
            }
            g_free(ext->backing_fmt);
            ext->backing_fmt = g_strndup((const char *)d, elen);
            break;
        case QCOW2_EXT_DATA_FILE:
            g_free(ext->data_file);
            ext->data_file = g_strndup((const char *)d, elen);
            break;
        case QCOW2_EXT_FEATURE_TABLE: {
            size_t n = elen / 48;
            g_free(ext->features);
            ext->features = g_new0(Qcow2FeatureName, n ? n : 1);
            ext->nb_features = n;
            for (size_t i = 0; i < n; i++) {
                ext->features[i].type = d[i * 48];
                ext->features[i].bit = d[i * 48 + 1];
                memcpy(ext->features[i].name, d + i * 48 + 2, 46);
            }
            break;
        }
        default: {
            Qcow2RawExt r = { .type = type, .len = elen, .data = g_memdup2(d, elen) };
            g_array_append_val(ext->unknown, r);
            break;
        }
        }
        off += (elen + 7) & ~7u;
    }
fail:
    qcow2_ext_clear(ext);
    return false;
}

static const struct {
    uint8_t type, bit;
    const char *name;
} qcow2_std_features[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

static bool put_ext(uint8_t *buf, size_t buf_len, size_t *off, uint32_t type,
                    const void *data, uint32_t len)
{
    size_t padded = (len + 7) & ~7u;
    if (*off + 8 + padded > buf_len) {
        return false;
    }
    qcow2_st32(buf + *off, type);
    qcow2_st32(buf + *off + 4, len);
    memset(buf + *off + 8, 0, padded);
    if (len) {
        memcpy(buf + *off + 8, data, len);
    }
    *off += 8 + padded;
    return true;
}

static size_t header_build(Qcow2Header *h, const Qcow2Extensions *ext,
                           const char *backing_file, uint8_t *buf, size_t buf_len,
                           bool feature_table)
{
    size_t off = h->version == 2 ? QCOW2_V2_HEADER_LEN : h->header_length;
    if (off > buf_len) {
        return 0;
    }
    memset(buf, 0, buf_len);
    if (h->version >= 3 || (ext && ext->backing_fmt)) {
        if (ext && ext->backing_fmt &&
            !put_ext(buf, buf_len, &off, QCOW2_EXT_BACKING_FORMAT, ext->backing_fmt,
                     strlen(ext->backing_fmt))) {
            return 0;
        }
    }
    if (h->version >= 3) {
        if (ext && ext->data_file &&
            !put_ext(buf, buf_len, &off, QCOW2_EXT_DATA_FILE, ext->data_file,
                     strlen(ext->data_file))) {
            return 0;
        }
        uint8_t ft[G_N_ELEMENTS(qcow2_std_features) * 48];
        memset(ft, 0, sizeof(ft));
        for (size_t i = 0; i < G_N_ELEMENTS(qcow2_std_features); i++) {
            ft[i * 48] = qcow2_std_features[i].type;
            ft[i * 48 + 1] = qcow2_std_features[i].bit;
            strncpy((char *)ft + i * 48 + 2, qcow2_std_features[i].name, 46);
        }
        if (feature_table &&
            !put_ext(buf, buf_len, &off, QCOW2_EXT_FEATURE_TABLE, ft, sizeof(ft))) {
            return 0;
        }
    }
    /* Kept in version 2 too (bitmaps survive a downgrade, as with qemu-img amend). */
    for (guint i = 0; ext && ext->unknown && i < ext->unknown->len; i++) {
        Qcow2RawExt *r = &g_array_index(ext->unknown, Qcow2RawExt, i);
        if (!put_ext(buf, buf_len, &off, r->type, r->data, r->len)) {
            return 0;
        }
    }
    if (!put_ext(buf, buf_len, &off, QCOW2_EXT_END, NULL, 0)) {
        return 0;
    }
    h->backing_file_offset = 0;
    h->backing_file_size = 0;
    if (backing_file && *backing_file) {
        size_t bl = strlen(backing_file);
        if (bl > QCOW2_MAX_BACKING_NAME || off + bl > buf_len) {
            return 0;
        }
        memcpy(buf + off, backing_file, bl);
        h->backing_file_offset = off;
        h->backing_file_size = bl;
        off += bl;
    }
    qcow2_header_serialize(h, buf);
    return off;
}

size_t qcow2_header_build(Qcow2Header *h, const Qcow2Extensions *ext,
                          const char *backing_file, uint8_t *buf, size_t buf_len)
{
    /* The feature name table is optional: small clusters leave it out, as QEMU does. */
    size_t len = header_build(h, ext, backing_file, buf, buf_len, true);
    return len ? len : header_build(h, ext, backing_file, buf, buf_len, false);
}

/* ---- the driver ---- */

#include "block/block-internal.h"
#include "sen/block.h"

#define QCOW2_DEFAULT_L2_CACHE (1024 * 1024)

static int qcow2_probe(const uint8_t *buf, int len, const char *filename)
{
    return len >= 8 && qcow2_ld32(buf) == QCOW2_MAGIC &&
                   (qcow2_ld32(buf + 4) == 2 || qcow2_ld32(buf + 4) == 3)
               ? 100
               : 0;
}

int qcow2_write_header(BDRVQcow2State *s)
{
    uint8_t *buf = g_malloc0(s->cluster_size);
    Qcow2Header h = s->h;
    size_t len = qcow2_header_build(&h, &s->ext, s->backing_file, buf, s->cluster_size);
    int ret = len ? bdrv_pwrite_sync(s->bs->file, 0, s->cluster_size, buf) : -ENOSPC;
    if (ret == 0) {
        s->h = h;
    }
    qcow2_overlap_invalidate(s); /* extensions (bitmap directory) may have changed */
    g_free(buf);
    return ret;
}

bool qcow2_change_backing(BlockDriverState *bs, const char *backing, const char *fmt,
                          Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    if (backing && strlen(backing) > QCOW2_MAX_BACKING_NAME) {
        error_setg(errp, "%s: backing file name too long", bs->filename);
        return false;
    }
    if (fmt && strlen(fmt) > 16) {
        error_setg(errp, "%s: backing format name '%s' too long", bs->filename, fmt);
        return false;
    }
    qcow2_lock_exclusive(s);
    char *old_file = s->backing_file, *old_fmt = s->ext.backing_fmt;
    s->backing_file = backing && *backing ? g_strdup(backing) : NULL;
    s->ext.backing_fmt = s->backing_file && fmt ? g_strdup(fmt) : NULL;
    int ret = qcow2_flush_caches(s);
    if (ret == 0) {
        ret = qcow2_write_header(s);
    }
    if (ret < 0) {
        g_free(s->backing_file);
        g_free(s->ext.backing_fmt);
        s->backing_file = old_file;
        s->ext.backing_fmt = old_fmt;
    } else {
        g_free(old_file);
        g_free(old_fmt);
    }
    g_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not rewrite the header", bs->filename);
        return false;
    }
    return true;
}

int qcow2_make_empty(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->read_only) {
        return -EPERM;
    }
    qcow2_lock_exclusive(s);
    /* The whole disk now reads from the backing file. */
    qcow2_bitmaps_mark_dirty(s, 0, bs->total_size);
    uint64_t n = ((uint64_t)bs->total_size + s->cluster_size - 1) >> s->cluster_bits;
    int ret = qcow2_zero_clusters(s, 0, n, QCOW2_DISCARD_FULL);
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

static void qcow2_free_state(BDRVQcow2State *s)
{
    if (qcow2_has_data_file(s)) {
        bdrv_unref(s->data_file);
    }
    s->data_file = NULL;
    s->has_data_file = false;
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->rb_cache);
    qcow2_overlap_free(s);
    qcow2_bitmaps_free(s);
    g_free(s->l1);
    g_free(s->reftable);
    g_free(s->backing_file);
    qcow2_ext_clear(&s->ext);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->data_io_done);
    g_hash_table_destroy(g_steal_pointer(&s->allocating));
}

char *qcow2_resolve_backing(const char *image, const char *backing)
{
    /* json:{...} names carry their own file names: nothing to resolve. */
    if (g_path_is_absolute(backing) || !strchr(image, '/') ||
        block_json_filename_body(backing)) {
        return g_strdup(backing);
    }
    g_autofree char *dir = g_path_get_dirname(image);
    return g_build_filename(dir, backing, NULL);
}

/* Whether the data file child is the same host file as the image's own file. */
static bool data_file_is_image(BlockDriverState *bs, BlockDriverState *child)
{
    GStatBuf a, b;
    return bs->file && bs->file->filename && child->filename &&
           g_stat(bs->file->filename, &a) == 0 && g_stat(child->filename, &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * Opens the external data file when the image has one: the data-file option (a node
 * reference or data-file.* options, as QEMU's BlockdevRef) wins over the name in the
 * header extension, which resolves against the image's directory like a backing file.
 * Without the feature bit, s->data_file is the image file itself.
 */
static bool qcow2_open_data_file(BlockDriverState *bs, Keyval *opts, int flags,
                                 Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    const char *name = bs->filename;
    int child_flags = flags & (BDRV_O_RDWR | BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                               BDRV_O_NATIVE_AIO | BDRV_O_UNMAP);
    Error *local = NULL;
    BlockDriverState *child = bdrv_open_child(bs, opts, "data-file", child_flags, &local);
    if (local) {
        error_propagate(errp, local);
        return false;
    }
    if (!(s->h.incompatible_features & QCOW2_INCOMPAT_DATA_FILE)) {
        if (child) {
            bdrv_unref(child);
            error_setg(errp, "%s: 'data-file' can only be set for images with an external "
                       "data file", name);
            return false;
        }
        s->data_file = bs->file;
        return true;
    }
    if (!child) {
        if (!s->ext.data_file || !*s->ext.data_file) {
            error_setg(errp, "%s: 'data-file' is required for this image", name);
            return false;
        }
        g_autofree char *path = qcow2_resolve_backing(name, s->ext.data_file);
        child = bdrv_open(path, NULL, "file", child_flags, &local);
        if (!child && (flags & BDRV_O_NO_IO) && !(flags & BDRV_O_RDWR)) {
            /* Like qemu-img info: the metadata describes the image without its data. */
            error_free(local);
            s->has_data_file = true;
            s->data_file_raw = s->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW;
            return true;
        }
        if (!child) {
            error_propagate(errp, local);
            error_prepend(errp, "%s: Could not open data file: ", name);
            return false;
        }
    }
    if ((flags & BDRV_O_RDWR) && data_file_is_image(bs, child)) {
        /* Guest writes at guest offsets would rewrite the image's own metadata (its
         * header, hence its backing file): QEMU's image locking refuses this too. */
        error_setg(errp, "%s: the data file '%s' is the image file itself", name,
                   child->filename);
        bdrv_unref(child);
        return false;
    }
    child->ctx = bs->ctx;
    s->data_file = child;
    s->has_data_file = true;
    s->data_file_raw = s->h.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    return true;
}

static bool qcow2_open(BlockDriverState *bs, Keyval *opts, int flags, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    const char *name = bs->filename;
    uint8_t first[QCOW2_V3_HEADER_LEN];
    uint64_t l2_cache_bytes;
    g_autofree uint8_t *hbuf = NULL;
    int ret;

    s->bs = bs;
    g_mutex_init(&s->lock);
    g_cond_init(&s->data_io_done);
    s->allocating = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    if (!keyval_get_size(opts, name, "l2-cache-size", QCOW2_DEFAULT_L2_CACHE,
                         &l2_cache_bytes, errp)) {
        goto fail_nolock;
    }
    unsigned overlap_mask;
    if (!qcow2_overlap_parse_opts(opts, name, &overlap_mask, errp)) {
        goto fail_nolock;
    }
    ret = bdrv_pread(bs->file, 0, sizeof(first), first);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not read the qcow2 header", name);
        goto fail_nolock;
    }
    uint32_t cb = qcow2_ld32(first + 20);
    if (qcow2_ld32(first) == QCOW2_MAGIC &&
        (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS)) {
        error_setg(errp, "%s: unsupported cluster size 2^%u (must be 512 B .. 2 MiB)", name,
                   cb);
        goto fail_nolock;
    }
    size_t hlen = qcow2_ld32(first) == QCOW2_MAGIC ? 1u << cb : sizeof(first);
    hbuf = g_malloc0(hlen);
    ret = bdrv_pread(bs->file, 0, hlen, hbuf);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not read the qcow2 header", name);
        goto fail_nolock;
    }
    if (!qcow2_header_parse(hbuf, hlen, name, &s->h, errp) ||
        !qcow2_ext_parse(&s->h, hbuf, hlen, name, &s->ext, errp)) {
        goto fail_nolock;
    }
    if (!qcow2_header_check_features(&s->h, &s->ext, name, errp)) {
        goto fail;
    }
    /* Inactive (a migration destination): another process owns the image, so this
     * open must not write either: no dirty-bit repair, no autoclear, no header. */
    s->read_only = !(flags & BDRV_O_RDWR) || (flags & BDRV_O_INACTIVE);
    if (!qcow2_open_data_file(bs, opts, flags, errp)) {
        goto fail;
    }
    if ((s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT) && !s->read_only &&
        !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "%s: image is corrupt; cannot be opened read/write "
                   "(run 'sen-img check -r all')", name);
        goto fail;
    }
    if (s->h.backing_file_offset) {
        s->backing_file = g_strndup((const char *)hbuf + s->h.backing_file_offset,
                                    s->h.backing_file_size);
    }
    s->cluster_bits = s->h.cluster_bits;
    s->cluster_size = 1ull << s->cluster_bits;
    s->extl2 = s->h.incompatible_features & QCOW2_INCOMPAT_EXTL2;
    s->l2e_size = s->extl2 ? 16 : 8;
    s->l2_bits = s->cluster_bits - (s->extl2 ? 4 : 3);
    s->subcluster_size = s->extl2 ? s->cluster_size / QCOW2_SUBCLUSTERS : s->cluster_size;
    if (s->extl2 && s->cluster_bits < 14) {
        /* Subclusters smaller than 512 bytes cannot be addressed. */
        if (s->cluster_size / QCOW2_SUBCLUSTERS < 512) {
            error_setg(errp, "%s: extended L2 entries need clusters of at least 16 KiB",
                       name);
            goto fail;
        }
    }
    s->l1_size = s->h.l1_size;
    s->l1 = g_new0(uint64_t, MAX(s->l1_size, 1));
    if (s->l1_size) {
        ret = bdrv_pread(bs->file, s->h.l1_table_offset, s->l1_size * 8ull, s->l1);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "%s: could not read the L1 table", name);
            goto fail;
        }
        for (uint32_t i = 0; i < s->l1_size; i++) {
            s->l1[i] = GUINT64_FROM_BE(s->l1[i]);
        }
    }
    s->rb_cache = qcow2_cache_new(s, 4, NULL);
    s->l2_cache = qcow2_cache_new(s, MAX(l2_cache_bytes / s->cluster_size, 4), s->rb_cache);
    ret = qcow2_refcount_init(s);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not read the refcount table", name);
        goto fail;
    }
    qcow2_overlap_init(s, overlap_mask);
    s->free_hint = 0;
    bs->total_size = s->h.size;
    if (!qcow2_bitmaps_load(s, flags, errp)) {
        goto fail;
    }

    bool backing_given;
    if (!bdrv_open_backing_option(bs, opts, &backing_given, errp)) {
        goto fail;
    }
    if (!backing_given && s->backing_file && !(flags & BDRV_O_NO_BACKING)) {
        g_autofree char *path = qcow2_resolve_backing(name, s->backing_file);
        if (!bdrv_open_backing(bs, path, s->ext.backing_fmt, errp)) {
            goto fail;
        }
    }
    if (!s->read_only) {
        bool dirty = s->h.incompatible_features & QCOW2_INCOMPAT_DIRTY;
        if (dirty && !(flags & BDRV_O_CHECK)) {
            BlockCheckResult res = { 0 };
            ret = qcow2_check(bs, &res, BDRV_FIX_LEAKS | BDRV_FIX_ERRORS);
            if (ret < 0 || res.corruptions - res.corruptions_fixed > 0) {
                error_setg(errp, "%s: could not repair the refcounts of a dirty image", name);
                goto fail;
            }
            s->h.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
        }
        /* Autoclear bits we do not maintain must be cleared before we write; raw
         * external data we keep true (every data write goes to the guest offset), and
         * valid bitmaps too (qcow2-bitmap.c keeps them up to date). */
        uint64_t keep = (s->data_file_raw ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0) |
                        (s->bitmaps_valid ? QCOW2_AUTOCLEAR_BITMAPS : 0);
        if (s->h.version >= 3 && ((s->h.autoclear_features & ~keep) || dirty)) {
            s->h.autoclear_features &= keep;
            ret = qcow2_write_header(s);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "%s: could not update the header", name);
                goto fail;
            }
        }
        ret = qcow2_bitmaps_mark_in_use(s);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "%s: Can't update bitmap directory", name);
            goto fail;
        }
    }
    return true;
fail:
    qcow2_free_state(s);
    return false;
fail_nolock:
    qcow2_ext_clear(&s->ext);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->data_io_done);
    g_hash_table_destroy(g_steal_pointer(&s->allocating));
    return false;
}

int qcow2_flush_caches(BDRVQcow2State *s)
{
    int ret = qcow2_cache_flush(s->l2_cache);
    if (ret == 0) {
        ret = qcow2_cache_flush(s->rb_cache);
    }
    return ret;
}

static void qcow2_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    /* Inactive: flushed at the hand-over, and the other side writes the image now: not
     * even the grown tail is ours to trim. */
    bool inactive = g_atomic_int_get(&bs->open_flags) & BDRV_O_INACTIVE;
    if (!s->read_only && !inactive && qcow2_bitmaps_store(s) < 0) {
        fprintf(stderr, "%s: could not store the persistent dirty bitmaps; they are now "
                "inconsistent\n", bs->filename);
    }
    if (!s->read_only && !inactive && qcow2_flush_caches(s) == 0) {
        if (qcow2_has_data_file(s)) {
            bdrv_flush(s->data_file);
        }
        qcow2_prealloc_trim(s);
        bdrv_flush(bs->file);
    }
    qcow2_free_state(s);
}

/* The image goes to another process (migration): it loads the bitmaps when it
 * activates, so they are stored now, as QEMU stores them at inactivation. */
static int qcow2_inactivate(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->read_only) {
        return 0;
    }
    g_mutex_lock(&s->lock);
    int ret = qcow2_bitmaps_store(s);
    g_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_flush(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    /* Guest data first: the L2 entries the caches write may point at it. */
    int ret = qcow2_has_data_file(s) && s->data_file ? bdrv_flush(s->data_file) : 0;
    if (ret < 0) {
        return ret;
    }
    g_mutex_lock(&s->lock);
    ret = qcow2_flush_caches(s);
    g_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        const struct iovec *iov, int niov, int flags)
{
    BDRVQcow2State *s = bs->opaque;
    g_mutex_lock(&s->lock);
    if (niov == 1) {
        return qcow2_read_guest_unlock(s, offset, MIN(iov[0].iov_len, (size_t)bytes),
                                       iov[0].iov_base);
    }
    return qcow2_read_guest_iov_unlock(s, offset, bytes, iov, niov);
}

/*
 * A request that may change what the guest reads in [off, off+len) marks the recording
 * bitmaps twice; QEMU marks once, when the request completes (bdrv_co_write_req_finish).
 *  - After it completes, whatever its result (a failed write may have changed part of
 *    the range).  This is the mark that matters: the data I/O runs with s->lock dropped,
 *    so a block-dirty-bitmap-clear, a merge into a just-cleared bitmap or a backup tool's
 *    read-and-clear can run between the start of the write and its end; had the write
 *    been marked only before, the clear would wipe its only mark and the next
 *    incremental backup would silently miss data that reached the disk after the clear.
 *  - Before it starts.  Not for the in_use semantics (every owned bitmap is in_use on
 *    disk from the open, or from its first change, until the store, whatever the bits
 *    say), but for a store (close, hand-over) that runs while a request is in flight:
 *    the store gives the bitmaps up, so the after-mark finds nothing to mark and only
 *    the before-mark is in the stored bitmap.  Users drain before a store, so this is a
 *    safety net, cheap while nothing records (one atomic read), and a bit set for a
 *    request that then fails only makes a backup copy more, never less.
 */
static void note_write(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    if (g_atomic_int_get(&s->bitmaps_recording) > 0) {
        g_mutex_lock(&s->lock);
        qcow2_bitmaps_mark_dirty(s, off, len);
        g_mutex_unlock(&s->lock);
    }
}

static int qcow2_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                         const struct iovec *iov, int niov, int flags)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;
    size_t done = 0;
    if (s->read_only) {
        return -EPERM;
    }
    note_write(s, offset, bytes);
    g_mutex_lock(&s->lock);
    for (int i = 0; i < niov && ret == 0 && done < (size_t)bytes; i++) {
        size_t n = MIN(iov[i].iov_len, (size_t)bytes - done);
        ret = qcow2_write_guest(s, offset + done, n, iov[i].iov_base);
        done += n;
    }
    if (ret == 0 && (flags & BDRV_REQ_FUA)) {
        ret = qcow2_flush_caches(s);
    }
    g_mutex_unlock(&s->lock);
    note_write(s, offset, bytes); /* completed: see note_write */
    return ret;
}

/*
 * The clusters [off, off+len) no longer map into the data file: give the space back.
 * A raw data file must then read as zeroes there, as the guest sees it; another one
 * only loses blocks nothing references (discard is advisory, so its errors are not).
 */
static int discard_data_file(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    uint64_t disk = s->bs->total_size;
    len = off < disk ? MIN(len, disk - off) : 0; /* the last cluster may be partial */
    if (s->data_file_raw) {
        return bdrv_pwrite_zeroes(s->data_file, off, len, BDRV_REQ_MAY_UNMAP);
    }
    bdrv_pdiscard(s->data_file, off, len);
    return 0;
}

/*
 * Whether the backing chain reads [off, off+len) as zeroes, as QEMU's is_zero() asks: one
 * block-status answer covering the range says zero (data that happens to be zero is not).
 */
static bool backing_reads_zero(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    BlockDriverState *backing = s->bs->backing, *file;
    int64_t pnum = 0, map;
    int depth;
    if (!len || !backing) {
        return true;
    }
    int st = bdrv_block_status_above(backing, off, len, &pnum, &map, &file, &depth);
    return st >= 0 && pnum == (int64_t)len && (st & BDRV_BLOCK_ZERO);
}

/*
 * Whether write-zeroes of [off, off+len), a part of one cluster, may zero the whole cluster
 * instead of writing zeroes, as QEMU does: the cluster is a zero cluster, or unallocated
 * with the rest of it reading zeroes.  (With subclusters see zero_partial_subclusters.)
 */
static bool partial_cluster_zeroable(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    uint64_t cstart = off & ~(s->cluster_size - 1), l2e, bitmap;
    if (s->extl2 || qcow2_get_l2e(s, cstart, &l2e, &bitmap) < 0) {
        return false;
    }
    switch (qcow2_cluster_type(s, l2e)) {
    case QCOW2_CLUSTER_ZERO_PLAIN:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return true;
    case QCOW2_CLUSTER_UNALLOCATED: {
        /* The rest of the cluster: before the part, and after it unless the disk ends. */
        uint64_t cend = MIN(cstart + s->cluster_size, (uint64_t)s->bs->total_size);
        uint64_t after = off + len < cend ? cend - (off + len) : 0;
        return backing_reads_zero(s, cstart, off - cstart) &&
               backing_reads_zero(s, off + len, after);
    }
    default:
        return false;
    }
}

/*
 * Extended L2: whether the partial subcluster part [off, end) may zero its whole
 * subcluster (QEMU's rule at subcluster granularity: a zero or unallocated subcluster
 * whose rest reads zeroes).
 */
static bool partial_subcluster_zeroable(BDRVQcow2State *s, uint64_t off, uint64_t end)
{
    uint64_t sstart = off & ~(s->subcluster_size - 1), l2e, bitmap;
    if (qcow2_get_l2e(s, off, &l2e, &bitmap) < 0) {
        return false;
    }
    unsigned sc = (off & (s->cluster_size - 1)) / s->subcluster_size;
    switch (qcow2_subcluster_type(s, l2e, bitmap, sc)) {
    case QCOW2_SC_ZERO_PLAIN:
    case QCOW2_SC_ZERO_ALLOC:
        return true;
    case QCOW2_SC_UNALLOCATED_PLAIN:
    case QCOW2_SC_UNALLOCATED_ALLOC: {
        uint64_t send = MIN(sstart + s->subcluster_size, (uint64_t)s->bs->total_size);
        return backing_reads_zero(s, sstart, off - sstart) &&
               backing_reads_zero(s, end, end < send ? send - end : 0);
    }
    default:
        return false;
    }
}

/*
 * Extended L2: zeroes [off, off+len), a part of one cluster, as QEMU: whole subclusters
 * get their zero bit, a partial one at either end too when it reads zeroes apart from
 * the part (else the part is written), and at the end of the disk the last subcluster
 * counts whole.  A compressed cluster has no subclusters: written.
 */
static int zero_partial_subclusters(BDRVQcow2State *s, uint64_t off, uint64_t len,
                                    const uint8_t *zeros)
{
    uint64_t ssz = s->subcluster_size, end = off + len;
    uint64_t zs = UINT64_MAX, ze = 0; /* the subclusters to mark: only the ends can drop out */
    int ret = 0;
    for (uint64_t p0 = off, p1; ret == 0 && p0 < end; p0 = p1) {
        uint64_t sstart = p0 & ~(ssz - 1);
        p1 = MIN(end, sstart + ssz);
        bool whole = p0 == sstart && (p1 == sstart + ssz || p1 >= (uint64_t)s->bs->total_size);
        if (whole || partial_subcluster_zeroable(s, p0, p1)) {
            zs = MIN(zs, sstart);
            ze = sstart + ssz;
        } else {
            ret = qcow2_write_data(s, p0, p1 - p0, zeros);
        }
    }
    if (ret == 0 && zs < ze) {
        ret = qcow2_zero_subclusters(s, zs, ze - zs);
        if (ret == -ENOTSUP) {
            uint64_t a = MAX(zs, off);
            ret = qcow2_write_data(s, a, MIN(ze, end) - a, zeros);
        }
    }
    return ret;
}

/* Zeroes [off, off+len), a part of one cluster: the whole cluster when that reads the
 * same, else by writing zeroes. */
static int zero_partial_cluster(BDRVQcow2State *s, uint64_t off, uint64_t len,
                                const uint8_t *zeros, Qcow2ZeroMode mode)
{
    if (s->extl2) {
        return zero_partial_subclusters(s, off, len, zeros);
    }
    if (partial_cluster_zeroable(s, off, len)) {
        return qcow2_zero_clusters(s, off & ~(s->cluster_size - 1), 1, mode);
    }
    return qcow2_write_data(s, off, len, zeros);
}

/* Write-zeroes of [offset, offset+bytes) (the bitmaps are qcow2_pwrite_zeroes's). */
static int zero_range(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->data_file_raw) {
        /* The raw data file must read as the guest sees the disk: zero it there too. */
        int ret = bdrv_pwrite_zeroes(s->data_file, offset, bytes, flags & BDRV_REQ_MAY_UNMAP);
        if (ret < 0) {
            return ret;
        }
    }
    uint64_t start = ((uint64_t)offset + s->cluster_size - 1) & ~(s->cluster_size - 1);
    uint64_t end = MIN((uint64_t)(offset + bytes), (uint64_t)bs->total_size);
    bool to_eof = (uint64_t)(offset + bytes) >= (uint64_t)bs->total_size;
    /* The partial last cluster of the disk counts as whole. */
    uint64_t end_c = to_eof ? (end + s->cluster_size - 1) & ~(s->cluster_size - 1)
                            : end & ~(s->cluster_size - 1);
    int ret = 0;
    qcow2_lock_exclusive(s);
    if (start >= end_c) {
        start = end_c = end;
    }
    uint8_t *zeros = NULL;
    uint64_t head = MIN(start, end) - offset, tail_off = MAX(end_c, start);
    if (head || tail_off < end) {
        zeros = g_malloc0(s->cluster_size);
    }
    Qcow2ZeroMode mode = flags & BDRV_REQ_MAY_UNMAP ? QCOW2_ZERO_UNMAP : QCOW2_ZERO;
    for (uint64_t o = offset; ret == 0 && o < (uint64_t)offset + head;) {
        /* Within one cluster, or across the border of two. */
        uint64_t n = MIN((uint64_t)offset + head - o,
                         s->cluster_size - (o & (s->cluster_size - 1)));
        ret = zero_partial_cluster(s, o, n, zeros, mode);
        o += n;
    }
    if (ret == 0 && end_c > start) {
        ret = qcow2_zero_clusters(s, start, (end_c - start) >> s->cluster_bits, mode);
    }
    if (ret == 0 && tail_off < end) {
        ret = zero_partial_cluster(s, tail_off, end - tail_off, zeros, mode);
    }
    g_free(zeros);
    g_mutex_unlock(&s->lock);
    /* Unmapped whole clusters give their space in a (non-raw) data file back, as QEMU. */
    if (ret == 0 && end_c > start && (flags & BDRV_REQ_MAY_UNMAP) &&
        qcow2_has_data_file(s) && !s->data_file_raw) {
        ret = discard_data_file(s, start, end_c - start);
    }
    return ret;
}

static int qcow2_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                               int flags)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->read_only) {
        return -EPERM;
    }
    if (s->h.version < 3) {
        return -ENOTSUP; /* no zero flag: the generic layer writes zeroes */
    }
    note_write(s, offset, bytes);
    int ret = zero_range(bs, offset, bytes, flags);
    note_write(s, offset, bytes); /* completed: see note_write */
    return ret;
}

/* Discard of [offset, offset+bytes) (the bitmaps are qcow2_pdiscard's). */
static int discard_range(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start = ((uint64_t)offset + s->cluster_size - 1) & ~(s->cluster_size - 1);
    uint64_t end = (uint64_t)(offset + bytes);
    end = end >= (uint64_t)bs->total_size
              ? ((uint64_t)bs->total_size + s->cluster_size - 1) & ~(s->cluster_size - 1)
              : end & ~(s->cluster_size - 1);
    if (start >= end) {
        return 0; /* discard is advisory: partial clusters stay */
    }
    if (s->h.version < 3 && s->backing_file) {
        /* No zero flag: a discarded cluster would show stale backing data.  QEMU then
         * discards nothing (and its block layer drops the -ENOTSUP). */
        return 0;
    }
    qcow2_lock_exclusive(s);
    /* As QEMU: a discarded cluster reads as zeroes, never as the backing file's data. */
    int ret = qcow2_zero_clusters(s, start, (end - start) >> s->cluster_bits, QCOW2_DISCARD);
    g_mutex_unlock(&s->lock);
    if (ret == 0 && qcow2_has_data_file(s)) {
        ret = discard_data_file(s, start, end - start);
    }
    return ret;
}

static int qcow2_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->read_only) {
        return -EPERM;
    }
    /* The whole request, as QEMU's block layer; before and after, see note_write. */
    note_write(s, offset, bytes);
    int ret = discard_range(bs, offset, bytes);
    note_write(s, offset, bytes);
    return ret;
}

/*
 * The data file follows the virtual size (as QEMU keeps it); a raw one also gets the
 * grown part mapped 1:1, so the metadata and the raw view keep agreeing.
 */
static bool resize_data_file(BlockDriverState *bs, uint64_t old, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    if (!bdrv_truncate(s->data_file, bs->total_size, true, errp)) {
        error_prepend(errp, "%s: could not resize the data file: ", bs->filename);
        return false;
    }
    return !s->data_file_raw || (uint64_t)bs->total_size <= old ||
           qcow2_preallocate(bs, old, bs->total_size, QCOW2_PREALLOC_METADATA, errp);
}

/*
 * Grows (new L1 table first when needed, then one header write switching size and L1,
 * then the old L1 is freed) or, with shrink, drops the clusters past the new end.  Images
 * with snapshots keep their size: a snapshot's disk size must stay valid.
 */
static bool qcow2_truncate(BlockDriverState *bs, int64_t size, bool shrink, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old = bs->total_size;
    int ret = 0;
    if (size < 0 || size % 512) {
        error_setg(errp, "The new size must be a multiple of 512"); /* QEMU's words */
        return false;
    }
    /* Snapshots keep their own L1 tables and sizes: growing and shrinking the active
     * image leaves them intact (shrinking drops only the active references). */
    if ((uint64_t)size < old && !shrink) {
        error_setg(errp, "%s: use --shrink to shrink the image", bs->filename);
        return false;
    }
    qcow2_lock_exclusive(s);
    if (!qcow2_bitmaps_can_resize(s, size, errp)) {
        g_mutex_unlock(&s->lock);
        return false;
    }
    uint64_t span = s->cluster_size << s->l2_bits;
    uint64_t l1_need = ((uint64_t)size + span - 1) / span;
    uint64_t *new_l1 = NULL;
    int64_t l1off = s->h.l1_table_offset;
    if ((uint64_t)size < old) {
        uint64_t start = ((uint64_t)size + s->cluster_size - 1) & ~(s->cluster_size - 1);
        uint64_t end = (old + s->cluster_size - 1) & ~(s->cluster_size - 1);
        if (end > start) {
            ret = qcow2_zero_clusters(s, start, (end - start) >> s->cluster_bits,
                                      QCOW2_DISCARD_FULL);
        }
        l1_need = s->l1_size;
    } else if (l1_need * 8 > QCOW2_MAX_L1_BYTES) {
        ret = -EFBIG;
    } else if (l1_need > s->l1_size) {
        new_l1 = g_new0(uint64_t, l1_need);
        uint64_t *be = g_new0(uint64_t, l1_need);
        for (uint32_t i = 0; i < s->l1_size; i++) {
            new_l1[i] = s->l1[i];
            be[i] = GUINT64_TO_BE(s->l1[i]);
        }
        l1off = qcow2_alloc_clusters(s, (l1_need * 8 + s->cluster_size - 1) >> s->cluster_bits);
        ret = l1off < 0 ? l1off : qcow2_flush_caches(s);
        if (ret == 0) {
            ret = qcow2_meta_pwrite(s, QCOW2_OL_ACTIVE_L1, l1off, l1_need * 8, be, true);
        }
        g_free(be);
    } else {
        l1_need = s->l1_size;
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    if (ret == 0) {
        uint8_t hdr[24];
        qcow2_st64(hdr, size);
        qcow2_st32(hdr + 8, s->h.crypt_method);
        qcow2_st32(hdr + 12, l1_need);
        qcow2_st64(hdr + 16, l1off);
        ret = bdrv_pwrite_sync(bs->file, 24, sizeof(hdr), hdr);
    }
    if (ret == 0 && new_l1) {
        uint64_t old_off = s->h.l1_table_offset, old_len = s->l1_size * 8ull;
        g_free(s->l1);
        s->l1 = g_steal_pointer(&new_l1);
        s->l1_size = l1_need;
        s->h.l1_size = l1_need;
        s->h.l1_table_offset = l1off;
        ret = old_len ? qcow2_update_refcount(s, old_off, old_len, -1) : 0;
    }
    if (ret == 0) {
        s->h.size = size;
        bs->total_size = size;
        qcow2_bitmaps_resize(s, size);
        /* The old partial last cluster may hold bytes past the old end: zero them. */
        uint64_t tail_end = MIN((uint64_t)size, (old + s->cluster_size - 1) &
                                                    ~(s->cluster_size - 1));
        if (tail_end > old) {
            uint8_t *z = g_malloc0(tail_end - old);
            ret = qcow2_write_data(s, old, tail_end - old, z);
            g_free(z);
        }
    }
    g_free(new_l1);
    g_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not resize the image", bs->filename);
        return false;
    }
    return !qcow2_has_data_file(s) || resize_data_file(bs, old, errp);
}

static int qcow2_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcow2State *s = bs->opaque;
    bdi->cluster_size = s->cluster_size;
    bdi->is_dirty = s->h.incompatible_features & QCOW2_INCOMPAT_DIRTY;
    bdi->unallocated_blocks_are_zero = !bs->backing;
    bdi->vm_state_offset = (int64_t)qcow2_vm_state_offset(s);
    return 0;
}

static int qcow2_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l2e, bitmap;
    g_mutex_lock(&s->lock);
    int ret = qcow2_get_l2e(s, offset, &l2e, &bitmap);
    if (ret == 0) {
        ret = qcow2_l2e_check(s, offset, l2e);
    }
    uint64_t unit = s->subcluster_size;
    uint64_t coff = offset & (s->cluster_size - 1);
    int status = 0;
    if (ret == 0) {
        int kind;
        if (s->extl2) {
            switch (qcow2_subcluster_type(s, l2e, bitmap, coff / unit)) {
            case QCOW2_SC_NORMAL:
                kind = QCOW2_CLUSTER_NORMAL;
                break;
            case QCOW2_SC_ZERO_PLAIN:
            case QCOW2_SC_ZERO_ALLOC:
                kind = QCOW2_CLUSTER_ZERO_PLAIN;
                break;
            case QCOW2_SC_COMPRESSED:
                kind = QCOW2_CLUSTER_COMPRESSED;
                break;
            default:
                kind = QCOW2_CLUSTER_UNALLOCATED;
            }
        } else {
            kind = qcow2_cluster_type(s, l2e);
        }
        switch (kind) {
        case QCOW2_CLUSTER_NORMAL:
            status = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
            if (s->data_file) { /* NULL: a data file missing under BDRV_O_NO_IO */
                status |= BDRV_BLOCK_OFFSET_VALID;
                *map = (l2e & QCOW2_L2E_OFFSET_MASK) + coff;
                *file = s->data_file;
            }
            break;
        case QCOW2_CLUSTER_ZERO_PLAIN:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            status = BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
            break;
        case QCOW2_CLUSTER_COMPRESSED:
            status = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
            break;
        default:
            status = bs->backing ? 0 : BDRV_BLOCK_ZERO;
        }
        *pnum = MIN((uint64_t)bytes, unit - (coff % unit));
        ret = status;
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_check_locked(BlockDriverState *bs, BlockCheckResult *res,
                              BlockCheckFix fix)
{
    BDRVQcow2State *s = bs->opaque;
    qcow2_lock_exclusive(s);
    int ret = qcow2_check(bs, res, fix);
    g_mutex_unlock(&s->lock);
    return ret;
}

const BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .instance_size = sizeof(BDRVQcow2State),
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .inactivate = qcow2_inactivate,
    .bitmap_op = qcow2_bitmap_op,
    .bitmap_list = qcow2_bitmap_list,
    .preadv = qcow2_preadv,
    .pwritev = qcow2_pwritev,
    .flush = qcow2_flush,
    .pdiscard = qcow2_pdiscard,
    .pwrite_zeroes = qcow2_pwrite_zeroes,
    .truncate = qcow2_truncate,
    .block_status = qcow2_block_status,
    .get_info = qcow2_get_info,
    .get_specific_info = qcow2_get_specific_info,
    .get_data_file = qcow2_get_data_file,
    .check = qcow2_check_locked,
    .create = qcow2_create,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_goto = qcow2_snapshot_goto,
    .snapshot_load_tmp = qcow2_snapshot_load_tmp,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_list = qcow2_snapshot_list,
    .save_vmstate = qcow2_save_vmstate,
    .load_vmstate = qcow2_load_vmstate,
    .drop_vmstate = qcow2_drop_vmstate,
};
