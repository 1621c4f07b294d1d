/*
 * QCOW2 persistent dirty bitmaps (qcow2.txt "Bitmaps extension" and "Bitmaps"), kept
 * valid as QEMU 7.2 keeps them, so that the bitmaps of an incremental backup (libvirt's)
 * survive a run of Sen instead of being declared inconsistent.
 *
 * Life of the bitmaps in one writable open:
 *  - open: the extension and the directory are validated with QEMU's limits and
 *    messages (a bad one fails the open, as in QEMU); the table of every consistent
 *    bitmap is read and checked.  Each bitmap with the `auto` flag that is consistent
 *    (not in_use) is loaded and marked in_use on disk before the first guest write: the
 *    directory is rewritten in place while the autoclear bit is off, as QEMU does, so a
 *    torn write can only make the bitmaps look inconsistent, never valid and wrong;
 *  - writes, write-zeroes and discards set the bits of the granules they touch;
 *  - close, or the hand-over to a migration destination (qcow2_bitmaps_store): each
 *    tracked bitmap gets a new table and data clusters, then a new directory without
 *    in_use, then the header points at it, then the old clusters are freed.
 * A crash leaves in_use set, so QEMU calls the bitmap inconsistent: the truth.  Bitmaps
 * without `auto` (disabled) and those already in_use at open are never rewritten.
 * Everything here runs with s->lock held (open and close hold it implicitly).
 */
#include <errno.h>
#include <string.h>

#include "block/block-internal.h"
#include "block/qcow2.h"

/* QEMU's limits (block/qcow2-bitmap.c), so that both accept the same images. */
#define BME_MAX_TABLE_SIZE 0x8000000u
#define BME_MAX_PHYS_SIZE 0x20000000ull
#define BME_MAX_GRANULARITY_BITS 31
#define BME_MIN_GRANULARITY_BITS 9
#define BME_MAX_NAME_SIZE 1023
#define BME_TYPE_DIRTY_TRACKING 1
#define BME_ENTRY_HEADER 24
/* Bitmap table entries: bits 1-8 and 56-63 reserved, bit 0 "all ones" without offset. */
#define BME_TABLE_RESERVED 0xff000000000001feull
#define BME_TABLE_OFFSET 0x00fffffffffffe00ull
#define BME_TABLE_ALL_ONES 1ull

static void bitmap_free(gpointer p)
{
    Qcow2Bitmap *bm = p;
    g_free(bm->name);
    g_free(bm->bits);
    g_free(bm);
}

uint64_t qcow2_bitmap_table_size(uint64_t disk_size, unsigned granularity_bits,
                                 uint64_t cluster_size)
{
    uint64_t granules = (disk_size + (1ull << granularity_bits) - 1) >> granularity_bits;
    return (granules + cluster_size * 8 - 1) / (cluster_size * 8);
}

bool qcow2_bitmap_ext_parse(const uint8_t *data, uint32_t len, uint64_t cluster_size,
                            Qcow2BitmapExt *e, Error **errp)
{
    if (len != 24) {
        error_setg(errp, "bitmaps_ext: Invalid extension length");
        return false;
    }
    e->nb = qcow2_ld32(data);
    e->dir_size = qcow2_ld64(data + 8);
    e->dir_offset = qcow2_ld64(data + 16);
    if (qcow2_ld32(data + 4)) {
        error_setg(errp, "bitmaps_ext: Reserved field is not zero");
        return false;
    }
    if (e->nb > QCOW2_MAX_BITMAPS) {
        error_setg(errp, "bitmaps_ext: Image has %u bitmaps, exceeding the QEMU supported "
                   "maximum of %d", e->nb, QCOW2_MAX_BITMAPS);
        return false;
    }
    if (!e->nb) {
        error_setg(errp, "found bitmaps extension with zero bitmaps");
        return false;
    }
    if (e->dir_offset % cluster_size) {
        error_setg(errp, "bitmaps_ext: invalid bitmap directory offset");
        return false;
    }
    if (e->dir_size > QCOW2_MAX_BITMAP_DIR_SIZE) {
        error_setg(errp, "bitmaps_ext: bitmap directory size (%" G_GUINT64_FORMAT ") "
                   "exceeds the maximum supported size (%u)", e->dir_size,
                   QCOW2_MAX_BITMAP_DIR_SIZE);
        return false;
    }
    if (!e->dir_size) {
        error_setg(errp, "Requested bitmap directory size is zero");
        return false;
    }
    return true;
}

/* QEMU's check_dir_entry: whether a directory entry satisfies the constraints. */
static bool entry_ok(uint64_t table_offset, uint32_t table_size, uint32_t flags,
                     uint8_t type, unsigned gbits, unsigned name_size,
                     uint64_t cluster_size, uint64_t disk_size)
{
    if (!table_size || !table_offset || table_offset % cluster_size ||
        table_size > BME_MAX_TABLE_SIZE || gbits > BME_MAX_GRANULARITY_BITS ||
        gbits < BME_MIN_GRANULARITY_BITS || (flags & QCOW2_BME_RESERVED) ||
        name_size > BME_MAX_NAME_SIZE || type != BME_TYPE_DIRTY_TRACKING) {
        return false;
    }
    uint64_t phys = (uint64_t)table_size * cluster_size;
    if (phys > BME_MAX_PHYS_SIZE) {
        return false;
    }
    /* A consistent bitmap must cover the disk (an in_use one may be stale after a
     * resize). */
    return (flags & QCOW2_BME_IN_USE) || disk_size <= ((phys * 8) << gbits);
}

GPtrArray *qcow2_bitmap_dir_parse(const uint8_t *dir, uint64_t size, uint32_t nb,
                                  uint64_t cluster_size, uint64_t disk_size, Error **errp)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(bitmap_free);
    uint64_t at = 0;
    uint32_t n = 0;
    while (at < size) {
        const uint8_t *d = dir + at;
        if (size - at < BME_ENTRY_HEADER) {
            goto broken;
        }
        if (++n > nb) {
            error_setg(errp, "More bitmaps found than specified in header extension");
            goto fail;
        }
        uint32_t extra = qcow2_ld32(d + 20);
        unsigned name_size = qcow2_ld16(d + 18);
        uint64_t len = (BME_ENTRY_HEADER + (uint64_t)extra + name_size + 7) & ~7ull;
        if (len > size - at) {
            goto broken;
        }
        if (extra) {
            error_setg(errp, "Bitmap extra data is not supported");
            goto fail;
        }
        Qcow2Bitmap *bm = g_new0(Qcow2Bitmap, 1);
        bm->table_offset = qcow2_ld64(d);
        bm->table_size = qcow2_ld32(d + 8);
        bm->flags = qcow2_ld32(d + 12);
        bm->granularity_bits = d[17];
        bm->name = g_strndup((const char *)d + BME_ENTRY_HEADER, name_size);
        g_ptr_array_add(out, bm);
        if (!entry_ok(bm->table_offset, bm->table_size, bm->flags, d[16],
                      bm->granularity_bits, name_size, cluster_size, disk_size)) {
            error_setg(errp, "Bitmap '%.*s' doesn't satisfy the constraints", (int)name_size,
                       (const char *)d + BME_ENTRY_HEADER);
            goto fail;
        }
        at += len;
    }
    if (n != nb) {
        error_setg(errp, "Less bitmaps found than specified in header extension");
        goto fail;
    }
    return out;
broken:
    error_setg(errp, "Broken bitmap directory");
fail:
    g_ptr_array_free(out, TRUE);
    return NULL;
}

uint64_t qcow2_bitmap_dir_build(const GPtrArray *bms, uint8_t **out)
{
    uint64_t size = 0;
    for (guint i = 0; i < bms->len; i++) {
        const Qcow2Bitmap *bm = g_ptr_array_index(bms, i);
        size += (BME_ENTRY_HEADER + strlen(bm->name) + 7) & ~7ull;
    }
    uint8_t *dir = g_malloc0(MAX(size, 1));
    uint64_t at = 0;
    for (guint i = 0; i < bms->len; i++) {
        const Qcow2Bitmap *bm = g_ptr_array_index(bms, i);
        uint8_t *d = dir + at;
        size_t nl = strlen(bm->name);
        qcow2_st64(d, bm->table_offset);
        qcow2_st32(d + 8, bm->table_size);
        qcow2_st32(d + 12, bm->flags);
        d[16] = BME_TYPE_DIRTY_TRACKING;
        d[17] = bm->granularity_bits;
        qcow2_st16(d + 18, nl);
        memcpy(d + BME_ENTRY_HEADER, bm->name, nl);
        at += (BME_ENTRY_HEADER + nl + 7) & ~7ull;
    }
    *out = dir;
    return size;
}

void qcow2_bitmap_set_range(Qcow2Bitmap *bm, uint64_t off, uint64_t len)
{
    if (!bm->bits || !len || !bm->nb_bits) {
        return;
    }
    uint64_t first = off >> bm->granularity_bits;
    uint64_t last = (off + len - 1) >> bm->granularity_bits;
    if (first >= bm->nb_bits) {
        return;
    }
    last = MIN(last, bm->nb_bits - 1);
    for (uint64_t w = first / 64; w <= last / 64; w++) {
        uint64_t lo = w == first / 64 ? first % 64 : 0;
        uint64_t hi = w == last / 64 ? last % 64 : 63;
        uint64_t mask = (hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1) & ~((1ull << lo) - 1);
        bm->bits[w] |= mask;
    }
}

uint64_t qcow2_bitmap_count(const Qcow2Bitmap *bm)
{
    uint64_t n = 0;
    for (uint64_t w = 0; bm->bits && w < (bm->nb_bits + 63) / 64; w++) {
        n += __builtin_popcountll(bm->bits[w]);
    }
    return n;
}

/* Resizes the in-memory bits to a disk of disk_size bytes (new granules clean). */
static void bitmap_resize(Qcow2Bitmap *bm, uint64_t disk_size)
{
    uint64_t g = 1ull << bm->granularity_bits;
    uint64_t nb = (disk_size + g - 1) / g, old_words = (bm->nb_bits + 63) / 64;
    uint64_t words = (nb + 63) / 64;
    bm->bits = g_realloc(bm->bits, MAX(words, 1) * 8);
    if (words > old_words) {
        memset(bm->bits + old_words, 0, (words - old_words) * 8);
    }
    /* Bits past the old or the new end are clean. */
    uint64_t keep = MIN(nb, bm->nb_bits);
    if (keep % 64 && keep / 64 < words) {
        bm->bits[keep / 64] &= (1ull << (keep % 64)) - 1;
    }
    for (uint64_t w = (keep + 63) / 64; w < words; w++) {
        bm->bits[w] = 0;
    }
    bm->nb_bits = nb;
}

static Qcow2RawExt *find_ext(BDRVQcow2State *s)
{
    for (guint i = 0; s->ext.unknown && i < s->ext.unknown->len; i++) {
        Qcow2RawExt *r = &g_array_index(s->ext.unknown, Qcow2RawExt, i);
        if (r->type == QCOW2_EXT_BITMAPS) {
            return r;
        }
    }
    return NULL;
}

/* Reads and checks the table of bm (QEMU's check_table_entry), host order. */
static int read_table(BDRVQcow2State *s, const Qcow2Bitmap *bm, uint64_t **out)
{
    uint64_t *t = g_new(uint64_t, bm->table_size);
    int ret = bdrv_pread(s->bs->file, bm->table_offset, bm->table_size * 8ull, t);
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        t[i] = GUINT64_FROM_BE(t[i]);
        uint64_t off = t[i] & BME_TABLE_OFFSET;
        if ((t[i] & BME_TABLE_RESERVED) ||
            (off && ((t[i] & BME_TABLE_ALL_ONES) || off % s->cluster_size))) {
            ret = -EINVAL;
        }
    }
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    *out = t;
    return 0;
}

/* Loads the bits of bm from its table (the table size must fit the disk exactly). */
static int load_bits(BDRVQcow2State *s, Qcow2Bitmap *bm, const uint64_t *table)
{
    uint64_t disk = s->bs->total_size;
    if (qcow2_bitmap_table_size(disk, bm->granularity_bits, s->cluster_size) !=
        bm->table_size) {
        return -EINVAL;
    }
    bm->nb_bits = (disk + (1ull << bm->granularity_bits) - 1) >> bm->granularity_bits;
    uint64_t words = (bm->nb_bits + 63) / 64, per = s->cluster_size / 8;
    bm->bits = g_new0(uint64_t, MAX(words, 1));
    uint8_t *buf = g_malloc(s->cluster_size);
    int ret = 0;
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        uint64_t off = table[i] & BME_TABLE_OFFSET, w0 = i * per;
        uint64_t n = MIN(per, words - w0);
        if (!off) {
            if (table[i] & BME_TABLE_ALL_ONES) {
                memset(bm->bits + w0, 0xff, n * 8);
            }
            continue;
        }
        ret = bdrv_pread(s->bs->file, off, s->cluster_size, buf);
        for (uint64_t w = 0; ret == 0 && w < n; w++) {
            uint64_t v = 0;
            for (unsigned b = 0; b < 8; b++) {
                v |= (uint64_t)buf[w * 8 + b] << (8 * b);
            }
            bm->bits[w0 + w] = v;
        }
    }
    g_free(buf);
    /* Bits past the end of the disk are not granules: keep them clean. */
    if (bm->nb_bits % 64) {
        bm->bits[words - 1] &= (1ull << (bm->nb_bits % 64)) - 1;
    }
    return ret;
}

bool qcow2_bitmaps_load(BDRVQcow2State *s, int flags, Error **errp)
{
    const char *name = s->bs->filename;
    Qcow2RawExt *raw = find_ext(s);
    s->bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
    s->bitmaps_valid = false;
    /* Without the autoclear bit a program lacking bitmap support wrote the image: the
     * bitmaps are all inconsistent and the extension is left as it is.  An inactive
     * open (migration destination) reads them when it is activated. */
    if (!raw || !(s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) ||
        (flags & BDRV_O_INACTIVE)) {
        return true;
    }
    bool writable = !s->read_only;
    Error *local = NULL;
    uint8_t *dir = NULL;
    GPtrArray *bms = NULL;
    Qcow2BitmapExt e;
    if (!qcow2_bitmap_ext_parse(raw->data, raw->len, s->cluster_size, &e, &local)) {
        goto fail;
    }
    dir = g_try_malloc(e.dir_size);
    int ret = dir ? bdrv_pread(s->bs->file, e.dir_offset, e.dir_size, dir) : -ENOMEM;
    if (ret < 0) {
        error_setg_errno(&local, -ret, "Failed to read bitmap directory");
        goto fail;
    }
    bms = qcow2_bitmap_dir_parse(dir, e.dir_size, e.nb, s->cluster_size,
                                 s->bs->total_size, &local);
    if (!bms) {
        goto fail;
    }
    for (guint i = 0; i < bms->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(bms, i);
        uint64_t *table = NULL;
        if (bm->flags & QCOW2_BME_IN_USE) {
            continue; /* inconsistent: its data is not read, nor ever rewritten here */
        }
        ret = read_table(s, bm, &table);
        if (ret < 0) {
            error_setg_errno(&local, -ret, "Could not read bitmap_table table from image "
                             "for bitmap '%s'", bm->name);
            goto fail;
        }
        if (writable && (bm->flags & QCOW2_BME_AUTO)) {
            ret = load_bits(s, bm, table);
            bm->tracking = ret == 0;
        } else if (qcow2_bitmap_table_size(s->bs->total_size, bm->granularity_bits,
                                           s->cluster_size) != bm->table_size) {
            ret = -EINVAL;
        }
        g_free(table);
        if (ret < 0) {
            error_setg_errno(&local, -ret, "Could not read bitmap '%s' from image", bm->name);
            goto fail;
        }
    }
    g_free(dir);
    g_ptr_array_free(s->bitmaps, TRUE);
    s->bitmaps = bms;
    s->bitmaps_ext = e;
    s->bitmaps_valid = true;
    return true;
fail:
    g_free(dir);
    if (bms) {
        g_ptr_array_free(bms, TRUE);
    }
    if (flags & BDRV_O_CHECK) {
        /* The check reports what is wrong; the bitmaps are not maintained (a writable
         * check clears the autoclear bit, as before). */
        error_free(local);
        return true;
    }
    error_propagate(errp, local);
    error_prepend(errp, "%s: ", name);
    return false;
}

/* Points the bitmaps extension at the directory e describes (not yet written). */
static void set_ext(BDRVQcow2State *s, const Qcow2BitmapExt *e)
{
    Qcow2RawExt *raw = find_ext(s);
    uint8_t *d = g_malloc0(24);
    qcow2_st32(d, e->nb);
    qcow2_st64(d + 8, e->dir_size);
    qcow2_st64(d + 16, e->dir_offset);
    if (raw) {
        g_free(raw->data);
        raw->data = d;
        raw->len = 24;
    } else {
        Qcow2RawExt r = { .type = QCOW2_EXT_BITMAPS, .len = 24, .data = d };
        g_array_append_val(s->ext.unknown, r);
    }
    s->bitmaps_ext = *e;
}

static bool any_tracking(BDRVQcow2State *s)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        if (((Qcow2Bitmap *)g_ptr_array_index(s->bitmaps, i))->tracking) {
            return true;
        }
    }
    return false;
}

static void stop_tracking(BDRVQcow2State *s)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        bm->tracking = false;
        g_clear_pointer(&bm->bits, g_free);
    }
}

int qcow2_bitmaps_mark_in_use(BDRVQcow2State *s)
{
    if (!s->bitmaps_valid || !any_tracking(s)) {
        return 0;
    }
    for (guint i = 0; i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->tracking) {
            bm->flags |= QCOW2_BME_IN_USE;
        }
    }
    uint8_t *dir;
    uint64_t size = qcow2_bitmap_dir_build(s->bitmaps, &dir);
    int ret = size == s->bitmaps_ext.dir_size ? 0 : -EINVAL;
    /* While the bit is off no reader trusts the directory, so rewriting it in place
     * cannot leave a torn directory that looks valid. */
    if (ret == 0) {
        s->h.autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
        ret = qcow2_write_header(s);
    }
    if (ret == 0) {
        ret = qcow2_meta_pwrite(s, QCOW2_OL_BITMAP_DIRECTORY, s->bitmaps_ext.dir_offset, size,
                                dir, true);
    }
    if (ret == 0) {
        s->h.autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
        ret = qcow2_write_header(s);
    }
    g_free(dir);
    if (ret < 0) {
        stop_tracking(s);
        s->bitmaps_valid = false;
    }
    return ret;
}

void qcow2_bitmaps_mark_dirty(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->tracking) {
            qcow2_bitmap_set_range(bm, off, len);
        }
    }
}

bool qcow2_bitmaps_can_resize(BDRVQcow2State *s, Error **errp)
{
    for (guint i = 0; s->bitmaps_valid && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->flags & QCOW2_BME_IN_USE && !bm->tracking) {
            error_setg(errp, "%s: Bitmap '%s' is inconsistent and cannot be used",
                       s->bs->filename, bm->name);
            return false;
        }
        if (!bm->tracking) {
            /* Its table must grow with the disk, and Sen rewrites only what it tracks. */
            error_setg(errp, "%s: Cannot resize qcow2 with persistent bitmaps that were "
                       "not loaded into memory (disabled bitmap '%s')", s->bs->filename,
                       bm->name);
            return false;
        }
    }
    return true;
}

void qcow2_bitmaps_resize(BDRVQcow2State *s, uint64_t disk_size)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->tracking) {
            bitmap_resize(bm, disk_size);
        }
    }
}

/* Writes the bits of bm into new data clusters (all-zero ones get none) and a new
 * table; returns the table's offset or -errno, *size its entries. */
static int64_t write_bits(BDRVQcow2State *s, const Qcow2Bitmap *bm, uint32_t *size)
{
    uint64_t n = qcow2_bitmap_table_size(s->bs->total_size, bm->granularity_bits,
                                         s->cluster_size);
    if (n > BME_MAX_TABLE_SIZE || n * s->cluster_size > BME_MAX_PHYS_SIZE) {
        return -EFBIG;
    }
    uint64_t *table = g_new0(uint64_t, MAX(n, 1));
    uint8_t *buf = g_malloc(s->cluster_size);
    uint64_t words = (bm->nb_bits + 63) / 64, per = s->cluster_size / 8;
    int64_t ret = 0;
    for (uint64_t i = 0; ret >= 0 && i < n; i++) {
        uint64_t w0 = i * per, cnt = MIN(per, words - w0);
        bool any = false;
        for (uint64_t w = 0; w < cnt && !any; w++) {
            any = bm->bits[w0 + w] != 0;
        }
        if (!any) {
            continue;
        }
        memset(buf, 0, s->cluster_size);
        for (uint64_t w = 0; w < cnt; w++) {
            for (unsigned b = 0; b < 8; b++) {
                buf[w * 8 + b] = bm->bits[w0 + w] >> (8 * b);
            }
        }
        ret = qcow2_alloc_clusters(s, 1);
        if (ret >= 0) {
            table[i] = ret;
            ret = qcow2_meta_pwrite(s, 0, table[i], s->cluster_size, buf, false);
        }
    }
    int64_t toff = ret < 0 ? ret : qcow2_alloc_clusters(s, (n * 8 + s->cluster_size - 1) >>
                                                             s->cluster_bits);
    if (toff >= 0) {
        for (uint64_t i = 0; i < n; i++) {
            table[i] = GUINT64_TO_BE(table[i]);
        }
        ret = qcow2_meta_pwrite(s, 0, toff, n * 8, table, false);
        toff = ret < 0 ? ret : toff;
    }
    /* On failure the new clusters are leaks: the directory never names them. */
    g_free(buf);
    g_free(table);
    *size = n;
    return toff;
}

/* Frees a table the directory no longer names and the data clusters it names. */
static void free_table(BDRVQcow2State *s, uint64_t off, uint32_t size)
{
    Qcow2Bitmap tmp = { .table_offset = off, .table_size = size };
    uint64_t *table;
    if (read_table(s, &tmp, &table) == 0) {
        for (uint32_t i = 0; i < size; i++) {
            if (table[i] & BME_TABLE_OFFSET) {
                qcow2_update_refcount(s, table[i] & BME_TABLE_OFFSET, s->cluster_size, -1);
            }
        }
        g_free(table);
    }
    qcow2_update_refcount(s, off, size * 8ull, -1);
}

int qcow2_bitmaps_store(BDRVQcow2State *s)
{
    if (!s->bitmaps_valid || !any_tracking(s)) {
        return 0;
    }
    if (s->h.version < 3 || !(s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        stop_tracking(s); /* the image stopped promising valid bitmaps (amend) */
        return 0;
    }
    GArray *old = g_array_new(FALSE, FALSE, sizeof(uint64_t) * 2);
    int64_t ret = 0;
    for (guint i = 0; ret >= 0 && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        uint32_t size;
        if (!bm->tracking) {
            continue;
        }
        ret = write_bits(s, bm, &size);
        if (ret >= 0) {
            uint64_t o[2] = { bm->table_offset, bm->table_size };
            g_array_append_val(old, o);
            bm->table_offset = ret;
            bm->table_size = size;
        }
    }
    uint8_t *dir = NULL;
    Qcow2BitmapExt e = s->bitmaps_ext;
    if (ret >= 0) {
        for (guint i = 0; i < s->bitmaps->len; i++) {
            Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
            if (bm->tracking) {
                bm->flags &= ~QCOW2_BME_IN_USE;
            }
        }
        e.dir_size = qcow2_bitmap_dir_build(s->bitmaps, &dir);
        e.nb = s->bitmaps->len;
        ret = qcow2_alloc_clusters(s, (e.dir_size + s->cluster_size - 1) >> s->cluster_bits);
    }
    if (ret >= 0) {
        e.dir_offset = ret;
        ret = qcow2_meta_pwrite(s, 0, e.dir_offset, e.dir_size, dir, false);
    }
    /* Refcounts and data reach the disk before the header names them. */
    if (ret >= 0) {
        ret = qcow2_flush_caches(s);
    }
    if (ret >= 0) {
        ret = bdrv_flush(s->bs->file);
    }
    Qcow2BitmapExt old_ext = s->bitmaps_ext;
    if (ret >= 0) {
        set_ext(s, &e);
        ret = qcow2_write_header(s);
        if (ret < 0) {
            set_ext(s, &old_ext);
        }
    }
    if (ret >= 0) {
        qcow2_update_refcount(s, old_ext.dir_offset, old_ext.dir_size, -1);
        for (guint i = 0; i < old->len; i++) {
            uint64_t *o = &g_array_index(old, uint64_t, i * 2);
            free_table(s, o[0], o[1]);
        }
        ret = qcow2_flush_caches(s);
    }
    g_free(dir);
    g_array_free(old, TRUE);
    /* Stored or not, the bitmaps are not ours any more: in_use stays on disk on failure,
     * so QEMU calls them inconsistent. */
    stop_tracking(s);
    return ret < 0 ? (int)ret : 0;
}

void qcow2_bitmaps_free(BDRVQcow2State *s)
{
    if (s->bitmaps) {
        g_ptr_array_free(g_steal_pointer(&s->bitmaps), TRUE);
    }
    s->bitmaps_valid = false;
}
