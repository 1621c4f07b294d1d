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
 *  - writes, write-zeroes and discards set the bits of the granules they touch when
 *    they complete (and before they start: note_write in qcow2.c says why);
 *  - close, or the hand-over to a migration destination (qcow2_bitmaps_store): each
 *    tracked bitmap gets a new table and data clusters, then a new directory without
 *    in_use, then the header points at it, then the old clusters are freed.
 * A crash leaves in_use set, so QEMU calls the bitmap inconsistent: the truth.  Bitmaps
 * without `auto` (disabled) and those already in_use at open are never rewritten.
 * Everything here runs with s->lock held (open and close hold it implicitly).
 */
#include <errno.h>
#include <string.h>
#include <jansson.h>

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
    if (!bm) {
        return;
    }
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

static void count_recording(BDRVQcow2State *s);
static Qcow2Bitmap *find(BDRVQcow2State *s, const char *name);
static bool load_image(BDRVQcow2State *s, int flags, Error **errp);

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

/* Reads and checks a bitmap table (QEMU's check_table_entry), host order. */
static int read_table(BDRVQcow2State *s, uint64_t offset, uint32_t size, uint64_t **out)
{
    uint64_t *t = g_new(uint64_t, MAX(size, 1));
    int ret = bdrv_pread(s->bs->file, offset, size * 8ull, t);
    for (uint32_t i = 0; ret == 0 && i < size; i++) {
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

static uint64_t granules(uint64_t disk_size, unsigned gbits)
{
    return (disk_size + (1ull << gbits) - 1) >> gbits;
}

/* Loads the bits of the consistent bitmap bm (the table must fit the disk exactly) into
 * *bits (nb granules). */
static int load_bits(BDRVQcow2State *s, const Qcow2Bitmap *bm, uint64_t **bits, uint64_t *nb)
{
    uint64_t disk = s->bs->total_size, *table;
    if (qcow2_bitmap_table_size(disk, bm->granularity_bits, s->cluster_size) !=
        bm->table_size) {
        return -EINVAL;
    }
    int ret = read_table(s, bm->table_offset, bm->table_size, &table);
    if (ret < 0) {
        return ret;
    }
    *nb = granules(disk, bm->granularity_bits);
    uint64_t words = (*nb + 63) / 64, per = s->cluster_size / 8;
    uint64_t *b = g_new0(uint64_t, MAX(words, 1));
    uint8_t *buf = g_malloc(s->cluster_size);
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        uint64_t off = table[i] & BME_TABLE_OFFSET, w0 = i * per;
        uint64_t n = MIN(per, words - w0);
        if (!off) {
            if (table[i] & BME_TABLE_ALL_ONES) {
                memset(b + w0, 0xff, n * 8);
            }
            continue;
        }
        ret = bdrv_pread(s->bs->file, off, s->cluster_size, buf);
        for (uint64_t w = 0; ret == 0 && w < n; w++) {
            uint64_t v = 0;
            for (unsigned k = 0; k < 8; k++) {
                v |= (uint64_t)buf[w * 8 + k] << (8 * k);
            }
            b[w0 + w] = v;
        }
    }
    g_free(buf);
    g_free(table);
    /* Bits past the end of the disk are not granules: keep them clean. */
    if (*nb % 64) {
        b[words - 1] &= (1ull << (*nb % 64)) - 1;
    }
    if (ret < 0) {
        g_free(b);
        return ret;
    }
    *bits = b;
    return 0;
}

static bool inconsistent(const Qcow2Bitmap *bm)
{
    return (bm->flags & QCOW2_BME_IN_USE) && !bm->owned && bm->on_disk;
}

/* QEMU's words for using an inconsistent bitmap, hint included; prefix: the image. */
static void inconsistent_error(Error **errp, const char *prefix, const char *name)
{
    error_setg(errp, "%s%sBitmap '%s' is inconsistent and cannot be used", prefix ? prefix : "",
               prefix ? ": " : "", name);
    error_append_hint(errp, "Try block-dirty-bitmap-remove to delete this bitmap from disk\n");
}

/* Bytes the bits of a bitmap of that granularity take for a disk of disk_size bytes. */
static uint64_t bits_mem(uint64_t disk_size, unsigned gbits)
{
    return MAX((granules(disk_size, gbits) + 63) / 64, 1) * 8;
}

/* Bytes the bits of the owned bitmaps take now. */
static uint64_t owned_mem(BDRVQcow2State *s)
{
    uint64_t n = 0;
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        n += bm->owned ? MAX((bm->nb_bits + 63) / 64, 1) * 8 : 0;
    }
    return n;
}

/* Whether `more` bytes of bits fit in QCOW2_BITMAPS_MAX_MEM next to the owned ones. */
static bool mem_fits(BDRVQcow2State *s, uint64_t more)
{
    uint64_t now = owned_mem(s);
    return now <= QCOW2_BITMAPS_MAX_MEM && more <= QCOW2_BITMAPS_MAX_MEM - now;
}

/* Takes the consistent bitmap bm over: its bits in memory, rewritten by the next store
 * (-ENOMEM past QCOW2_BITMAPS_MAX_MEM). */
static int own(BDRVQcow2State *s, Qcow2Bitmap *bm)
{
    if (bm->owned) {
        return 0;
    }
    if (!mem_fits(s, bits_mem(s->bs->total_size, bm->granularity_bits))) {
        return -ENOMEM;
    }
    int ret = load_bits(s, bm, &bm->bits, &bm->nb_bits);
    bm->owned = ret == 0;
    return ret;
}

/* Gives up the persistent bitmaps (non-persistent ones live only in memory: kept). */
static void disown_all(BDRVQcow2State *s)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->transient) {
            continue;
        }
        bm->owned = false;
        g_clear_pointer(&bm->bits, g_free);
    }
    count_recording(s);
}

/*
 * Takes back the non-persistent bitmaps the last close of this node kept
 * (qcow2_bitmaps_free), resized to the disk as it is now; one whose name the image
 * now has is dropped.
 */
static void adopt_kept(BDRVQcow2State *s)
{
    GPtrArray *kept = g_steal_pointer(&s->bs->kept_bitmaps);
    for (guint i = 0; kept && i < kept->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(kept, i);
        if (find(s, bm->name)) {
            continue;
        }
        bitmap_resize(bm, s->bs->total_size);
        g_ptr_array_add(s->bitmaps, g_steal_pointer(&g_ptr_array_index(kept, i)));
    }
    if (kept) {
        g_ptr_array_unref(kept); /* the free function skips the stolen (NULL) ones */
    }
    count_recording(s);
}

bool qcow2_bitmaps_load(BDRVQcow2State *s, int flags, Error **errp)
{
    if (!load_image(s, flags, errp)) {
        return false;
    }
    adopt_kept(s);
    return true;
}

static bool load_image(BDRVQcow2State *s, int flags, Error **errp)
{
    const char *name = s->bs->filename;
    Qcow2RawExt *raw = find_ext(s);
    s->bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
    s->bitmaps_valid = false;
    memset(&s->bitmaps_ext, 0, sizeof(s->bitmaps_ext));
    /* An inactive open (migration destination) reads them when it is activated. */
    if ((flags & BDRV_O_INACTIVE) || s->h.version < 3) {
        return true;
    }
    /* Without the autoclear bit a program lacking bitmap support wrote the image: its
     * bitmaps are all inconsistent; the extension stays as it is until bitmaps are
     * added (its clusters are leaks then, as in QEMU). */
    if (!raw || !(s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        s->bitmaps_valid = true;
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
    /* What the bitmaps to take over need, before a byte of it is allocated. */
    uint64_t need = 0;
    for (guint i = 0; writable && i < bms->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(bms, i);
        if ((bm->flags & QCOW2_BME_AUTO) && !(bm->flags & QCOW2_BME_IN_USE)) {
            need += bits_mem(s->bs->total_size, bm->granularity_bits);
        }
    }
    if (need > QCOW2_BITMAPS_MAX_MEM) {
        error_setg(&local, "The bitmaps to load need %" G_GUINT64_FORMAT " MiB of memory, "
                   "more than the %llu MiB allowed for one image", need >> 20,
                   QCOW2_BITMAPS_MAX_MEM >> 20);
        goto fail;
    }
    for (guint i = 0; i < bms->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(bms, i);
        uint64_t *table = NULL;
        bm->on_disk = true;
        bm->enabled = bm->flags & QCOW2_BME_AUTO;
        if (bm->flags & QCOW2_BME_IN_USE) {
            continue; /* inconsistent: its data is not read, nor ever rewritten here */
        }
        ret = read_table(s, bm->table_offset, bm->table_size, &table);
        g_free(table);
        if (ret < 0) {
            error_setg_errno(&local, -ret, "Could not read bitmap_table table from image "
                             "for bitmap '%s'", bm->name);
            goto fail;
        }
        if (writable && bm->enabled) {
            ret = own(s, bm);
        } else if (qcow2_bitmap_table_size(s->bs->total_size, bm->granularity_bits,
                                           s->cluster_size) != bm->table_size) {
            ret = -EINVAL;
        }
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
    count_recording(s);
    return true;
fail:
    g_free(dir);
    if (bms) {
        g_ptr_array_free(bms, TRUE);
    }
    if (flags & BDRV_O_CHECK) {
        /* The check reports what is wrong; the bitmaps are not maintained (a writable
         * check clears the autoclear bit). */
        error_free(local);
        return true;
    }
    error_propagate(errp, local);
    error_prepend(errp, "%s: ", name);
    return false;
}

/* Points the bitmaps extension at the directory e describes (nb 0: no extension). */
static void set_ext(BDRVQcow2State *s, const Qcow2BitmapExt *e)
{
    Qcow2RawExt *raw = find_ext(s);
    if (!e->nb) {
        if (raw) {
            g_array_remove_index(s->ext.unknown, raw - &g_array_index(s->ext.unknown,
                                                                      Qcow2RawExt, 0));
        }
        s->bitmaps_ext = *e;
        return;
    }
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

int qcow2_bitmaps_mark_in_use(BDRVQcow2State *s)
{
    if (!s->bitmaps_valid || s->read_only || !s->bitmaps_ext.nb) {
        return 0;
    }
    /* The directory as on disk, owned ones in_use. */
    GPtrArray *on_disk = g_ptr_array_new();
    bool need = false;
    for (guint i = 0; i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->on_disk) {
            need |= bm->owned && !(bm->flags & QCOW2_BME_IN_USE);
            g_ptr_array_add(on_disk, bm);
        }
    }
    if (!need) {
        g_ptr_array_free(on_disk, TRUE);
        return 0;
    }
    uint32_t *saved = g_new(uint32_t, on_disk->len);
    for (guint i = 0; i < on_disk->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(on_disk, i);
        saved[i] = bm->flags;
        bm->flags |= bm->owned ? QCOW2_BME_IN_USE : 0;
    }
    uint8_t *dir;
    uint64_t size = qcow2_bitmap_dir_build(on_disk, &dir);
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
    if (ret < 0) {
        for (guint i = 0; i < on_disk->len; i++) {
            ((Qcow2Bitmap *)g_ptr_array_index(on_disk, i))->flags = saved[i];
        }
        disown_all(s);
        s->bitmaps_valid = false;
    }
    g_free(saved);
    g_free(dir);
    g_ptr_array_free(on_disk, TRUE);
    return ret;
}

static bool recording(const Qcow2Bitmap *bm)
{
    return bm->owned && bm->enabled;
}

/* Recounts s->bitmaps_recording after the list or a bitmap changed (lock held). */
static void count_recording(BDRVQcow2State *s)
{
    int n = 0;
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        n += recording(g_ptr_array_index(s->bitmaps, i));
    }
    g_atomic_int_set(&s->bitmaps_recording, n);
}

void qcow2_bitmaps_mark_dirty(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (recording(bm)) {
            qcow2_bitmap_set_range(bm, off, len);
        }
    }
}

bool qcow2_bitmaps_can_resize(BDRVQcow2State *s, uint64_t new_size, Error **errp)
{
    bool owned_more = false;
    /* Every bitmap is in memory at the new size afterwards: within the budget. */
    uint64_t need = 0;
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        need += inconsistent(bm) ? 0 : bits_mem(new_size, bm->granularity_bits);
    }
    if (need > QCOW2_BITMAPS_MAX_MEM) {
        error_setg(errp, "%s: The bitmaps would need %" G_GUINT64_FORMAT " MiB of memory at "
                   "the new size, more than the %llu MiB allowed for one image",
                   s->bs->filename, need >> 20, QCOW2_BITMAPS_MAX_MEM >> 20);
        return false;
    }
    for (guint i = 0; s->bitmaps_valid && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (inconsistent(bm)) {
            inconsistent_error(errp, s->bs->filename, bm->name);
            return false;
        }
        /* Every table must cover the new size: the bitmap is rewritten at the store. */
        owned_more |= !bm->owned;
        int ret = own(s, bm);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "%s: Could not read bitmap '%s' from image",
                             s->bs->filename, bm->name);
            return false;
        }
    }
    /* in_use until the store: a table that no longer fits the disk is then allowed. */
    int ret = owned_more ? qcow2_bitmaps_mark_in_use(s) : 0;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: Can't update bitmap directory", s->bs->filename);
        return false;
    }
    return true;
}

void qcow2_bitmaps_resize(BDRVQcow2State *s, uint64_t disk_size)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->owned) {
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

/* Frees a table the directory no longer names and the data clusters it names (nothing
 * when the table is unreadable or broken, as QEMU: leaks rather than a wrong free). */
static void free_table(BDRVQcow2State *s, uint64_t off, uint32_t size)
{
    uint64_t *table;
    if (read_table(s, off, size, &table) < 0) {
        return;
    }
    for (uint32_t i = 0; i < size; i++) {
        if (table[i] & BME_TABLE_OFFSET) {
            qcow2_update_refcount(s, table[i] & BME_TABLE_OFFSET, s->cluster_size, -1);
        }
    }
    g_free(table);
    qcow2_update_refcount(s, off, size * 8ull, -1);
}

/* Whether the next store has anything to write. */
static bool changed(BDRVQcow2State *s)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (!bm->transient && (bm->owned || !bm->on_disk)) {
            return true;
        }
    }
    return false;
}

/*
 * Replaces the directory with one of the entries of keep (none: no extension and no
 * autoclear bit), as QEMU's update_ext_header_and_dir: the new directory goes to new
 * clusters, the refcounts and data reach the disk, then one header write switches to it,
 * then the old directory's clusters are freed.  Nothing changes on failure.
 */
static int replace_dir(BDRVQcow2State *s, const GPtrArray *keep)
{
    uint8_t *dir = NULL;
    Qcow2BitmapExt e = { 0 };
    int64_t ret = 0;
    if (keep->len) {
        e.dir_size = qcow2_bitmap_dir_build(keep, &dir);
        e.nb = keep->len;
        ret = qcow2_alloc_clusters(s, (e.dir_size + s->cluster_size - 1) >> s->cluster_bits);
        if (ret >= 0) {
            e.dir_offset = ret;
            ret = qcow2_meta_pwrite(s, 0, e.dir_offset, e.dir_size, dir, false);
        }
    }
    g_free(dir);
    /* Refcounts and data reach the disk before the header names them. */
    if (ret >= 0) {
        ret = qcow2_flush_caches(s);
    }
    if (ret >= 0) {
        ret = bdrv_flush(s->bs->file);
    }
    if (ret < 0) {
        return ret; /* the new clusters are leaks: the header never names them */
    }
    Qcow2BitmapExt old_ext = s->bitmaps_ext;
    uint64_t old_autoclear = s->h.autoclear_features;
    /* The header rewrite below may fail: the extension as it was, to put back. */
    Qcow2RawExt *raw = find_ext(s), saved = { 0 };
    if (raw) {
        saved = (Qcow2RawExt){ raw->type, raw->len, g_memdup2(raw->data, raw->len) };
    }
    set_ext(s, &e);
    if (e.nb) {
        s->h.autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        s->h.autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    ret = qcow2_write_header(s);
    if (ret < 0) {
        Qcow2BitmapExt none = { 0 };
        set_ext(s, &none);
        if (saved.data) {
            g_array_append_val(s->ext.unknown, saved);
            saved.data = NULL;
        }
        s->h.autoclear_features = old_autoclear;
        s->bitmaps_ext = old_ext;
    }
    g_free(saved.data);
    /* A stale extension (no autoclear bit at open) is not ours to free. */
    if (ret >= 0 && old_ext.nb) {
        qcow2_update_refcount(s, old_ext.dir_offset, old_ext.dir_size, -1);
    }
    return ret;
}

int qcow2_bitmaps_store(BDRVQcow2State *s)
{
    if (!s->bitmaps_valid || !changed(s)) {
        disown_all(s);
        return 0;
    }
    if (s->bitmaps_ext.nb && !(s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        disown_all(s); /* the image stopped promising valid bitmaps (amend) */
        return 0;
    }
    GArray *old = g_array_new(FALSE, FALSE, sizeof(uint64_t) * 2);
    GPtrArray *keep = g_ptr_array_new();
    int64_t ret = 0;
    for (guint i = 0; ret >= 0 && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        uint64_t o[2] = { bm->table_offset, bm->table_size };
        if (bm->transient) {
            continue;
        }
        if (bm->owned) {
            uint32_t size;
            ret = write_bits(s, bm, &size);
            if (ret < 0) {
                break;
            }
            if (bm->on_disk) {
                g_array_append_val(old, o);
            }
            bm->table_offset = ret;
            bm->table_size = size;
            bm->flags = bm->enabled ? QCOW2_BME_AUTO : 0;
        }
        g_ptr_array_add(keep, bm);
    }
    if (ret >= 0) {
        ret = replace_dir(s, keep);
    }
    if (ret >= 0) {
        for (guint i = 0; i < old->len; i++) {
            uint64_t *o = &g_array_index(old, uint64_t, i * 2);
            free_table(s, o[0], o[1]);
        }
        ret = qcow2_flush_caches(s);
        /* The directory now holds every persistent one (the others stay in memory). */
        for (guint i = 0; i < s->bitmaps->len; i++) {
            Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
            bm->on_disk = !bm->transient;
        }
    }
    g_array_free(old, TRUE);
    g_ptr_array_free(keep, TRUE);
    /* Stored or not, the bitmaps are not ours any more: in_use stays on disk on failure,
     * so QEMU calls them inconsistent. */
    disown_all(s);
    return ret < 0 ? (int)ret : 0;
}

/*
 * Removes the persistent bitmap bm from the image now, as QEMU's
 * qcow2_co_remove_persistent_dirty_bitmap, so that a crash cannot bring it back: a new
 * directory without it (the other entries as they are on disk, in_use included), then
 * its table and data clusters are freed.  Then it leaves the list.
 */
static bool remove_persistent(BDRVQcow2State *s, Qcow2Bitmap *bm, Error **errp)
{
    if (bm->on_disk && s->bitmaps_valid && s->bitmaps_ext.nb &&
        (s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        GPtrArray *keep = g_ptr_array_new();
        for (guint i = 0; i < s->bitmaps->len; i++) {
            Qcow2Bitmap *b = g_ptr_array_index(s->bitmaps, i);
            if (b->on_disk && b != bm) {
                g_ptr_array_add(keep, b);
            }
        }
        int ret = replace_dir(s, keep);
        g_ptr_array_free(keep, TRUE);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to update bitmap extension");
            return false;
        }
        free_table(s, bm->table_offset, bm->table_size);
        ret = qcow2_flush_caches(s);
        if (ret < 0) {
            /* Gone from the directory already: the clusters are at worst leaks. */
            fprintf(stderr, "%s: could not free the clusters of bitmap '%s': %s\n",
                    s->bs->filename, bm->name, g_strerror(-ret));
        }
    }
    g_ptr_array_remove(s->bitmaps, bm);
    return true;
}

void qcow2_bitmaps_free(BDRVQcow2State *s)
{
    /* The non-persistent ones wait in the node for its next open (adopt_kept). */
    for (guint i = s->bitmaps ? s->bitmaps->len : 0; i-- > 0;) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (bm->transient && bm->owned) {
            if (!s->bs->kept_bitmaps) {
                s->bs->kept_bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
            }
            g_ptr_array_insert(s->bs->kept_bitmaps, 0, g_ptr_array_steal_index(s->bitmaps, i));
        }
    }
    if (s->bitmaps) {
        g_ptr_array_free(g_steal_pointer(&s->bitmaps), TRUE);
    }
    s->bitmaps_valid = false;
    g_atomic_int_set(&s->bitmaps_recording, 0);
}

/* ---- operations: QMP block-dirty-bitmap-* and sen-img bitmap ---- */

static Qcow2Bitmap *find(BDRVQcow2State *s, const char *name)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (!strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

/* QEMU's bdrv_get_default_bitmap_granularity: the cluster size within 4 KiB .. 64 KiB. */
static uint32_t default_granularity(BDRVQcow2State *s)
{
    return MIN(MAX(s->cluster_size, 4096), 65536);
}

/* QEMU's qcow2_co_can_store_new_dirty_bitmap, messages included. */
static bool can_store_new(BDRVQcow2State *s, const char *name, uint32_t granularity,
                          Error **errp)
{
    Error *local = NULL;
    unsigned gbits = __builtin_ctz(granularity);
    uint64_t bytes = (granules(s->bs->total_size, gbits) + 7) / 8;
    uint64_t nb = 0, dir = 0;
    for (guint i = 0; i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (!bm->transient) {
            nb++;
            dir += (BME_ENTRY_HEADER + strlen(bm->name) + 7) & ~7ull;
        }
    }
    if (s->h.version < 3 || !s->bitmaps_valid) {
        error_setg(&local, s->h.version < 3 ? "Cannot store dirty bitmaps in qcow2 v2 files"
                                            : "Cannot store dirty bitmaps in this image");
    } else if (s->read_only) {
        error_setg(&local, "Cannot store dirty bitmaps in a read-only image");
    } else if (gbits > BME_MAX_GRANULARITY_BITS) {
        error_setg(&local, "Granularity exceeds maximum (%llu bytes)",
                   1ULL << BME_MAX_GRANULARITY_BITS);
    } else if (bytes > BME_MAX_PHYS_SIZE || bytes > BME_MAX_TABLE_SIZE * s->cluster_size) {
        error_setg(&local, "Too much space will be occupied by the bitmap. "
                   "Use larger granularity");
    } else if (nb >= QCOW2_MAX_BITMAPS) {
        error_setg(&local, "Maximum number of persistent bitmaps is already reached");
    } else if (dir + ((BME_ENTRY_HEADER + strlen(name) + 7) & ~7ull) >
               QCOW2_MAX_BITMAP_DIR_SIZE) {
        error_setg(&local, "Not enough space in the bitmap directory");
    }
    if (local) {
        error_propagate(errp, local);
        error_prepend(errp, "Can't make bitmap '%s' persistent in '%s': ", name,
                      s->bs->node_name ? s->bs->node_name : s->bs->filename);
        return false;
    }
    return true;
}

static bool op_add(BDRVQcow2State *s, const BlockBitmapReq *req, Error **errp)
{
    uint32_t g = req->granularity;
    if (find(s, req->name)) {
        error_setg(errp, "Bitmap already exists: %s", req->name);
        return false;
    }
    if (!*req->name) {
        error_setg(errp, "Bitmap name cannot be empty");
        return false;
    }
    if (strlen(req->name) > BME_MAX_NAME_SIZE) {
        error_setg(errp, "Bitmap name is too long");
        return false;
    }
    if (g && (g < 512 || (g & (g - 1)))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return false;
    }
    g = g ? g : default_granularity(s);
    if (req->persistent && !can_store_new(s, req->name, g, errp)) {
        return false;
    }
    if (!mem_fits(s, bits_mem(s->bs->total_size, __builtin_ctz(g)))) {
        error_setg(errp, "Bitmap '%s' would take the bitmaps of this node past the %llu MiB "
                   "of memory allowed for one image", req->name, QCOW2_BITMAPS_MAX_MEM >> 20);
        return false;
    }
    Qcow2Bitmap *bm = g_new0(Qcow2Bitmap, 1);
    bm->name = g_strdup(req->name);
    bm->granularity_bits = __builtin_ctz(g);
    bm->enabled = !req->disabled;
    bm->transient = !req->persistent;
    bm->owned = true;
    bm->nb_bits = granules(s->bs->total_size, bm->granularity_bits);
    bm->bits = g_new0(uint64_t, MAX((bm->nb_bits + 63) / 64, 1));
    g_ptr_array_add(s->bitmaps, bm);
    return true;
}

/* QEMU's bdrv_dirty_bitmap_check: inconsistent always, read-only unless allow_ro. */
static bool usable(BDRVQcow2State *s, Qcow2Bitmap *bm, bool allow_ro, Error **errp)
{
    if (inconsistent(bm)) {
        inconsistent_error(errp, NULL, bm->name);
        return false;
    }
    if (!allow_ro && s->read_only && !bm->transient) {
        error_setg(errp, "Bitmap '%s' is readonly and cannot be modified", bm->name);
        return false;
    }
    int ret = own(s, bm);
    if (ret == 0 && !s->read_only) {
        ret = qcow2_bitmaps_mark_in_use(s); /* about to change: in_use until stored */
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap '%s' from image", bm->name);
        return false;
    }
    return true;
}

/* Sets in dst every granule src has dirty (any granularities, the same disk size). */
static void merge_bits(Qcow2Bitmap *dst, const uint64_t *bits, uint64_t nb, unsigned gbits)
{
    if (gbits == dst->granularity_bits && nb == dst->nb_bits) {
        for (uint64_t w = 0; w < (nb + 63) / 64; w++) {
            dst->bits[w] |= bits[w];
        }
        return;
    }
    for (uint64_t i = 0; i < nb; i++) {
        if (bits[i / 64] >> (i % 64) & 1) {
            qcow2_bitmap_set_range(dst, i << gbits, 1ull << gbits);
        }
    }
}

static bool op_merge(BlockDriverState *bs, Qcow2Bitmap *dst, const BlockBitmapReq *req,
                     Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    BlockDriverState *sbs = req->src_bs ? req->src_bs : bs;
    BDRVQcow2State *ss = sbs->drv->bitmap_op == qcow2_bitmap_op ? sbs->opaque : NULL;
    if (ss && ss != s) {
        g_mutex_lock(&ss->lock);
    }
    Qcow2Bitmap *src = ss ? find(ss, req->src_name) : NULL;
    uint64_t *bits = NULL, nb = 0;
    bool ok = false;
    int ret = 0;
    if (!src) {
        error_setg(errp, "Dirty bitmap '%s' not found", req->src_name);
    } else if (inconsistent(src)) {
        inconsistent_error(errp, NULL, src->name);
    } else if (sbs->total_size != bs->total_size) {
        error_setg(errp, "Bitmaps are incompatible and can't be merged");
    } else if (!src->owned && (ret = load_bits(ss, src, &bits, &nb)) < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap '%s' from image", src->name);
    } else {
        ok = true;
    }
    if (ok && src == dst) {
        ok = true; /* merging a bitmap into itself changes nothing */
    } else if (ok) {
        merge_bits(dst, src->owned ? src->bits : bits, src->owned ? src->nb_bits : nb,
                   src->granularity_bits);
    }
    g_free(bits);
    if (ss && ss != s) {
        g_mutex_unlock(&ss->lock);
    }
    return ok;
}

bool qcow2_bitmap_op(BlockDriverState *bs, const BlockBitmapReq *req, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    bool ok = false;
    g_mutex_lock(&s->lock);
    if (req->action == BLOCK_BITMAP_ADD) {
        ok = op_add(s, req, errp);
        count_recording(s);
        g_mutex_unlock(&s->lock);
        return ok;
    }
    Qcow2Bitmap *bm = find(s, req->name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", req->name);
        g_mutex_unlock(&s->lock);
        return false;
    }
    switch (req->action) {
    case BLOCK_BITMAP_REMOVE:
        if (s->read_only && !bm->transient) {
            error_setg(errp, "Bitmap '%s' is readonly and cannot be modified", bm->name);
            break;
        }
        ok = remove_persistent(s, bm, errp);
        break;
    case BLOCK_BITMAP_CLEAR:
        ok = usable(s, bm, false, errp);
        if (ok) {
            memset(bm->bits, 0, MAX((bm->nb_bits + 63) / 64, 1) * 8);
        }
        break;
    case BLOCK_BITMAP_ENABLE:
    case BLOCK_BITMAP_DISABLE:
        ok = usable(s, bm, true, errp);
        if (ok) {
            bm->enabled = req->action == BLOCK_BITMAP_ENABLE;
        }
        break;
    case BLOCK_BITMAP_MERGE:
        ok = usable(s, bm, false, errp) && op_merge(bs, bm, req, errp);
        break;
    default:
        break;
    }
    count_recording(s);
    g_mutex_unlock(&s->lock);
    return ok;
}

GPtrArray *qcow2_bitmap_list(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    GPtrArray *out = g_ptr_array_new_with_free_func(block_bitmap_info_free);
    g_mutex_lock(&s->lock);
    /* Newest first, as QEMU lists them. */
    for (guint i = s->bitmaps ? s->bitmaps->len : 0; i-- > 0;) {
        Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        BlockBitmapInfo *info = g_new0(BlockBitmapInfo, 1);
        info->name = g_strdup(bm->name);
        info->granularity = 1u << bm->granularity_bits;
        info->persistent = !bm->transient;
        info->inconsistent = inconsistent(bm);
        info->recording = bm->enabled && !info->inconsistent; /* QEMU disables those */
        uint64_t *bits = NULL, nb = 0;
        if (bm->owned) {
            info->count = qcow2_bitmap_count(bm) << bm->granularity_bits;
        } else if (!info->inconsistent && load_bits(s, bm, &bits, &nb) == 0) {
            Qcow2Bitmap tmp = { .bits = bits, .nb_bits = nb };
            info->count = qcow2_bitmap_count(&tmp) << bm->granularity_bits;
            g_free(bits);
        }
        g_ptr_array_add(out, info);
    }
    g_mutex_unlock(&s->lock);
    return out;
}

json_t *qcow2_bitmap_info(BDRVQcow2State *s)
{
    if (!s->bitmaps_valid || !s->bitmaps_ext.nb) {
        return NULL;
    }
    json_t *a = json_array();
    for (guint i = 0; i < s->bitmaps->len; i++) {
        const Qcow2Bitmap *bm = g_ptr_array_index(s->bitmaps, i);
        if (!bm->on_disk) {
            continue;
        }
        json_t *flags = json_array();
        if (bm->flags & QCOW2_BME_IN_USE) {
            json_array_append_new(flags, json_string("in-use"));
        }
        if (bm->flags & QCOW2_BME_AUTO) {
            json_array_append_new(flags, json_string("auto"));
        }
        json_array_append_new(a, json_pack("{s:o,s:s,s:I}", "flags", flags, "name",
                                           bm->name, "granularity",
                                           (json_int_t)1 << bm->granularity_bits));
    }
    return a;
}
