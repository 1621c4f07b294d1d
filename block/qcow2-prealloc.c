/*
 * qcow2 preallocation (create and resize with preallocation=metadata|falloc|full), laid
 * out as qemu-img lays it out: for each L2 range, the L2 table, then one contiguous run of
 * data clusters for every unallocated cluster of the range.
 *
 * metadata: the L2 entries point at the run and the file is only extended (the data reads
 * as zeroes from the sparse file); falloc: the run is also allocated in the file system
 * (fallocate ZERO_RANGE); full: zeroes are written into it.  With extended L2 entries
 * the subclusters stay unallocated (they read as zeroes or from the backing file), as
 * qemu-img leaves them.  Order: refcounts, then data, then L2 entries (docs/qcow2.md).
 */
#include <errno.h>
#include <string.h>

#include "block/qcow2.h"
#include "sen/block.h"

bool qcow2_prealloc_parse(const char *str, Qcow2Prealloc *mode, Error **errp)
{
    static const char *const names[] = { "off", "metadata", "falloc", "full" };
    for (size_t i = 0; str && i < G_N_ELEMENTS(names); i++) {
        if (!strcmp(str, names[i])) {
            *mode = (Qcow2Prealloc)i;
            return true;
        }
    }
    if (!str) {
        *mode = QCOW2_PREALLOC_OFF;
        return true;
    }
    error_setg(errp, "Parameter 'preallocation' does not accept value '%s'", str);
    return false;
}

/* Gives the data file real zeroes (full) or allocated blocks (falloc) over [host,
 * host+len). */
static int fill_run(BDRVQcow2State *s, uint64_t host, uint64_t len, Qcow2Prealloc mode)
{
    if (mode != QCOW2_PREALLOC_FALLOC && mode != QCOW2_PREALLOC_FULL) {
        return 0;
    }
    int ret = qcow2_overlap_check_data(s, host, len);
    if (ret < 0) {
        return ret;
    }
    if (mode == QCOW2_PREALLOC_FALLOC) {
        return bdrv_pwrite_zeroes(s->data_file, host, len, 0);
    }
    uint64_t chunk = MIN(len, 1024 * 1024);
    uint8_t *zeroes = g_malloc0(chunk);
    for (uint64_t done = 0; ret == 0 && done < len; done += chunk) {
        ret = bdrv_pwrite(s->data_file, host + done, MIN(chunk, len - done), zeroes);
    }
    g_free(zeroes);
    return ret;
}

/*
 * With an external data file each guest cluster's data sits at its guest offset, so the
 * n clusters from guest offset from map 1:1 (nothing to allocate in the image).
 */
static int prealloc_in_data_file(BDRVQcow2State *s, int64_t l2, uint64_t from, uint64_t n,
                                 Qcow2Prealloc mode)
{
    uint64_t idx0 = (from >> s->cluster_bits) & ((1ull << s->l2_bits) - 1);
    int ret = 0;
    for (uint64_t i = 0; ret == 0 && i < n; i++) {
        uint8_t *t;
        uint64_t host = from + (i << s->cluster_bits);
        ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
        if (ret < 0 || qcow2_ld64(t + (idx0 + i) * s->l2e_size) != 0) {
            continue;
        }
        ret = fill_run(s, host, s->cluster_size, mode);
        if (ret == 0) {
            ret = qcow2_set_l2e(s, l2, idx0 + i, host | QCOW2_OFLAG_COPIED, NULL);
        }
    }
    return ret;
}

/* Preallocates the unallocated clusters of [from, to) inside one L2 range. */
static int prealloc_l2_range(BDRVQcow2State *s, uint64_t from, uint64_t to,
                             Qcow2Prealloc mode, uint64_t *file_end)
{
    int64_t l2 = qcow2_get_writable_l2(s, from);
    if (l2 < 0) {
        return l2;
    }
    uint64_t first = from >> s->cluster_bits, n = (to - from) >> s->cluster_bits;
    uint64_t idx0 = first & ((1ull << s->l2_bits) - 1);
    uint8_t *t;
    int ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
    uint64_t want = 0;
    for (uint64_t i = 0; ret == 0 && i < n; i++) {
        want += qcow2_ld64(t + (idx0 + i) * s->l2e_size) == 0;
    }
    if (ret < 0 || !want) {
        return ret;
    }
    if (qcow2_has_data_file(s)) {
        return prealloc_in_data_file(s, l2, from, n, mode);
    }
    int64_t host = qcow2_alloc_clusters(s, want);
    if (host < 0) {
        return host;
    }
    ret = fill_run(s, host, want << s->cluster_bits, mode);
    if (ret < 0) {
        return ret;
    }
    *file_end = MAX(*file_end, (uint64_t)host + (want << s->cluster_bits));
    for (uint64_t i = 0, next = host; ret == 0 && i < n; i++) {
        /* Looked up each time: the allocation above may have evicted the table. */
        ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
        if (ret == 0 && qcow2_ld64(t + (idx0 + i) * s->l2e_size) == 0) {
            /* Extended entries keep a zero bitmap: allocated, every subcluster unallocated. */
            ret = qcow2_set_l2e(s, l2, idx0 + i, next | QCOW2_OFLAG_COPIED, NULL);
            next += s->cluster_size;
        }
    }
    return ret;
}

bool qcow2_preallocate(BlockDriverState *bs, uint64_t from, uint64_t to, Qcow2Prealloc mode,
                       Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    if (mode == QCOW2_PREALLOC_OFF || from >= to) {
        return true;
    }
    uint64_t span = s->cluster_size << s->l2_bits;
    uint64_t off = from & ~(s->cluster_size - 1);
    uint64_t end = (to + s->cluster_size - 1) & ~(s->cluster_size - 1), file_end = 0;
    int ret = 0;
    qcow2_lock_exclusive(s);
    while (ret == 0 && off < end) {
        uint64_t range_end = MIN(end, (off / span + 1) * span);
        ret = prealloc_l2_range(s, off, range_end, mode, &file_end);
        off = range_end;
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(s);
    }
    /* metadata: the file must still reach the end of the data it maps. */
    if (qcow2_has_data_file(s)) {
        file_end = end;
    }
    if (ret == 0 && file_end > (uint64_t)bdrv_getlength(s->data_file)) {
        Error *local = NULL;
        if (!bdrv_truncate(s->data_file, file_end, false, &local)) {
            error_free(local);
            ret = -EIO;
        }
    }
    g_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s: could not preallocate", bs->filename);
        return false;
    }
    return true;
}
