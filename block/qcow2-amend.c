/*
 * qcow2 option amendment (sen-img amend): compat upgrade and downgrade, lazy_refcounts.
 *
 * A downgrade to version 2 first checks everything qemu-img checks (refcount width, feature
 * bits, zstd-compressed clusters), changing nothing when it refuses.  Version 2 has no zero
 * flag, so zero clusters are then expanded in every L1 table (active and snapshots): a
 * preallocated one has its host cluster zeroed and loses the flag (unless a snapshot shares
 * that cluster: see expand_zeroes); a plain one becomes unallocated when there is no
 * backing file (it reads as zero anyway), otherwise it gets a zeroed cluster of its own.  Only then is the header rewritten as version 2, so a crash
 * in between leaves a valid version 3 image (at worst with leaks).
 */
#include <errno.h>
#include <inttypes.h>

#include "block/qcow2.h"
#include "sen/block.h"

typedef int (*L2Visitor)(BDRVQcow2State *s, uint64_t l2_offset, void *opaque);

/* Runs fn on every L2 table of the active L1 and of every snapshot's L1 (lock held). */
static int for_each_l2(BDRVQcow2State *s, L2Visitor fn, void *opaque)
{
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        int ret = l2 ? fn(s, l2, opaque) : 0;
        if (ret < 0) {
            return ret;
        }
    }
    GArray *sns;
    int ret = qcow2_read_snapshots(s, &sns);
    for (guint i = 0; ret == 0 && i < sns->len; i++) {
        Qcow2Snapshot *sn = &g_array_index(sns, Qcow2Snapshot, i);
        uint8_t *l1 = g_malloc(MAX(sn->l1_size, 1) * 8ull);
        ret = bdrv_pread(s->bs->file, sn->l1_table_offset, sn->l1_size * 8ull, l1);
        for (uint32_t j = 0; ret == 0 && j < sn->l1_size; j++) {
            uint64_t l2 = qcow2_ld64(l1 + j * 8) & QCOW2_L1E_OFFSET_MASK;
            ret = l2 ? fn(s, l2, opaque) : 0;
        }
        g_free(l1);
    }
    qcow2_snapshots_free(sns);
    return ret;
}

static int count_compressed(BDRVQcow2State *s, uint64_t l2_offset, void *opaque)
{
    uint64_t *count = opaque;
    uint8_t *t;
    int ret = qcow2_cache_get(s->l2_cache, l2_offset, false, &t);
    for (uint64_t i = 0; ret == 0 && i < (1ull << s->l2_bits); i++) {
        *count += !!(qcow2_ld64(t + i * s->l2e_size) & QCOW2_OFLAG_COMPRESSED);
    }
    return ret;
}

/*
 * What a zero cluster becomes in version 2: nothing when there is no backing file and it
 * need not stay allocated (it reads as zero anyway), else a zeroed cluster of its own that
 * every L1 table reaching this L2 table (l2_refs of them) references.  Sets *repl; 0 or
 * -errno.
 */
static int zero_cluster_for_v2(BDRVQcow2State *s, uint64_t l2_refs, bool keep_allocated,
                               uint64_t *repl)
{
    if (s->backing_file == NULL && !keep_allocated) {
        *repl = 0;
        return 0;
    }
    int64_t host = qcow2_alloc_clusters(s, 1);
    int ret = host < 0 ? (int)host : 0;
    if (ret == 0 && l2_refs > 1) {
        ret = qcow2_update_refcount(s, host, s->cluster_size, l2_refs - 1);
    }
    if (ret == 0) {
        ret = qcow2_overlap_check_data(s, host, s->cluster_size);
    }
    if (ret == 0) {
        ret = bdrv_pwrite_zeroes(s->bs->file, host, s->cluster_size, 0);
    }
    *repl = (uint64_t)host | (l2_refs == 1 ? QCOW2_OFLAG_COPIED : 0);
    return ret;
}

/*
 * One entry at a time: allocating may evict the table from the cache.  A preallocated
 * zero cluster is zeroed in place and loses the flag, unless something besides this L2
 * table references its host cluster (a snapshot's own L2 table keeps the data the cluster
 * had before a write-zeroes in the active layer, as qemu-io write -z leaves it): zeroing
 * it would change that snapshot, so it gets a zeroed cluster of its own (allocated, as
 * qemu-img leaves the range) and this table's references to the old one are dropped, once the L2 entry that no longer points at it is on disk
 * (a crash in between only leaks it).  qemu-img 7.2 zeroes it in place, losing the data.
 */
static int expand_zeroes(BDRVQcow2State *s, uint64_t l2_offset, void *opaque)
{
    uint64_t l2_refs;
    int ret = qcow2_get_refcount(s, l2_offset >> s->cluster_bits, &l2_refs);
    for (uint64_t i = 0; ret == 0 && i < (1ull << s->l2_bits); i++) {
        uint8_t *t;
        ret = qcow2_cache_get(s->l2_cache, l2_offset, false, &t);
        if (ret < 0) {
            break;
        }
        uint64_t l2e = qcow2_ld64(t + i * s->l2e_size), repl, shared = 0;
        uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK, host_refs = 0;
        switch (qcow2_l2e_type(l2e, 3)) {
        case QCOW2_CLUSTER_ZERO_ALLOC:
            ret = qcow2_get_refcount(s, host >> s->cluster_bits, &host_refs);
            if (ret == 0 && host_refs > l2_refs) {
                shared = host;
                ret = zero_cluster_for_v2(s, l2_refs, true, &repl);
                break;
            }
            /* The host offset comes from the L2 entry: a corrupt one must not zero
             * metadata (QEMU checks here too). */
            if (ret == 0) {
                ret = qcow2_overlap_check_data(s, host, s->cluster_size);
            }
            if (ret == 0) {
                ret = bdrv_pwrite_zeroes(s->bs->file, host, s->cluster_size, 0);
            }
            repl = l2e & ~QCOW2_OFLAG_ZERO;
            break;
        case QCOW2_CLUSTER_ZERO_PLAIN:
            ret = zero_cluster_for_v2(s, l2_refs, false, &repl);
            break;
        default:
            continue;
        }
        if (ret == 0) {
            ret = qcow2_set_l2e(s, l2_offset, i, repl, NULL);
        }
        if (ret == 0 && shared) {
            ret = qcow2_cache_flush(s->l2_cache);
            if (ret == 0) {
                ret = qcow2_update_refcount(s, shared, s->cluster_size, -(int64_t)l2_refs);
            }
        }
    }
    return ret;
}

static bool downgrade_to_v2(BDRVQcow2State *s, Error **errp)
{
    const char *name = s->bs->filename;
    if (s->h.refcount_order != 4) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return false;
    }
    if (qcow2_has_data_file(s)) {
        error_setg(errp, "Cannot downgrade an image with a data file");
        return false;
    }
    /* Dirty images were repaired when opened; zstd is only refused when it is used. */
    uint64_t incompat = s->h.incompatible_features &
                        ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_COMPRESSION);
    if (incompat) {
        error_setg(errp, "Cannot downgrade an image with incompatible features %#" PRIx64
                   " set", incompat);
        return false;
    }
    int ret;
    if (s->h.compression_type != QCOW2_COMPRESSION_ZLIB) {
        uint64_t compressed = 0;
        ret = for_each_l2(s, count_compressed, &compressed);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "%s: could not read the L2 tables", name);
            return false;
        }
        if (compressed) {
            error_setg(errp, "Cannot downgrade an image with zstd compression type and "
                       "existing compressed clusters");
            return false;
        }
    }
    ret = for_each_l2(s, expand_zeroes, NULL);
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not expand zero clusters", name);
        return false;
    }
    Qcow2Header old = s->h;
    s->h.version = 2;
    s->h.header_length = QCOW2_V2_HEADER_LEN;
    s->h.incompatible_features = s->h.compatible_features = s->h.autoclear_features = 0;
    s->h.compression_type = QCOW2_COMPRESSION_ZLIB;
    ret = qcow2_write_header(s);
    if (ret < 0) {
        s->h = old;
        error_setg_errno(errp, -ret, "%s: could not rewrite the header", name);
        return false;
    }
    return true;
}

static bool upgrade_to_v3(BDRVQcow2State *s, Error **errp)
{
    Qcow2Header old = s->h;
    /* Version 2 implies 16-bit refcounts and no feature bits: only the layout changes. */
    s->h.version = 3;
    s->h.header_length = QCOW2_V3_HEADER_LEN;
    s->h.refcount_order = 4;
    s->h.incompatible_features = s->h.compatible_features = s->h.autoclear_features = 0;
    int ret = qcow2_flush_caches(s);
    if (ret == 0) {
        ret = qcow2_write_header(s);
    }
    if (ret < 0) {
        s->h = old;
        error_setg_errno(errp, -ret, "%s: could not rewrite the header", s->bs->filename);
        return false;
    }
    return true;
}

bool qcow2_amend_version(BlockDriverState *bs, int version, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    if ((uint32_t)version == s->h.version) {
        return true;
    }
    qcow2_lock_exclusive(s);
    bool ok = version == 3 ? upgrade_to_v3(s, errp) : downgrade_to_v2(s, errp);
    g_mutex_unlock(&s->lock);
    return ok;
}

bool qcow2_amend_lazy_refcounts(BlockDriverState *bs, bool on, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    if (on && s->h.version < 3) {
        error_setg(errp, "Lazy refcounts only supported with compatibility level 1.1 and "
                   "above (use compat=1.1 or greater)");
        return false;
    }
    if (!!(s->h.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) == on) {
        return true;
    }
    /* Sen keeps refcounts current either way: the bit only tells other programs they may
     * defer them.  Caches first, so turning it off leaves nothing deferred. */
    qcow2_lock_exclusive(s);
    uint64_t old = s->h.compatible_features;
    s->h.compatible_features ^= QCOW2_COMPAT_LAZY_REFCOUNTS;
    int ret = qcow2_flush_caches(s);
    if (ret == 0) {
        ret = qcow2_write_header(s);
    }
    if (ret < 0) {
        s->h.compatible_features = old;
    }
    g_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not rewrite the header", bs->filename);
        return false;
    }
    return true;
}

bool qcow2_amend_data_file(BlockDriverState *bs, const char *name, int raw, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    if (name && !qcow2_has_data_file(s)) {
        error_setg(errp, "data-file can only be set for images that use an external data "
                   "file");
        return false;
    }
    if (name && (!*name || strlen(name) > QCOW2_MAX_BACKING_NAME)) {
        error_setg(errp, "data-file: '%s' is not a usable data file name", name);
        return false;
    }
    /* Data written so far need not be at its guest offset in the file: no promise now. */
    if (raw == 1 && !s->data_file_raw) {
        error_setg(errp, "data-file-raw cannot be set on existing images");
        return false;
    }
    bool clear_raw = raw == 0 && s->data_file_raw;
    if (!name && !clear_raw) {
        return true;
    }
    qcow2_lock_exclusive(s);
    char *old_name = s->ext.data_file;
    uint64_t old_autoclear = s->h.autoclear_features;
    if (name) {
        s->ext.data_file = g_strdup(name);
    }
    if (clear_raw) {
        s->h.autoclear_features &= ~QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    }
    int ret = qcow2_flush_caches(s);
    if (ret == 0) {
        ret = qcow2_write_header(s);
    }
    if (ret < 0) {
        if (name) {
            g_free(s->ext.data_file);
            s->ext.data_file = old_name;
        }
        s->h.autoclear_features = old_autoclear;
    } else {
        if (name) {
            g_free(old_name);
        }
        s->data_file_raw = s->data_file_raw && !clear_raw;
    }
    g_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not rewrite the header", bs->filename);
        return false;
    }
    return true;
}

int qcow2_image_version(BlockDriverState *bs)
{
    return ((BDRVQcow2State *)bs->opaque)->h.version;
}
