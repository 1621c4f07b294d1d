/*
 * QCOW2 guest-to-host mapping: L2 entry decoding, compressed cluster descriptors, and the
 * read and write paths (allocation with copy-on-write of partial clusters).
 *
 * Write ordering (docs/qcow2.md): data and refcounts before the L2 entry that references
 * them (the L2 cache depends on the refcount cache); a new L2 table is on disk before the
 * L1 entry that points at it; a cluster's old reference is dropped only after the L2 entry
 * that replaced it is on disk.  A crash therefore only ever leaks clusters.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "sen/iov.h"

Qcow2ClusterType qcow2_l2e_type(uint64_t l2e, int version)
{
    if (l2e & QCOW2_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
    if ((l2e & QCOW2_OFLAG_ZERO) && version >= 3) {
        return host ? QCOW2_CLUSTER_ZERO_ALLOC : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    return host ? QCOW2_CLUSTER_NORMAL : QCOW2_CLUSTER_UNALLOCATED;
}

static Qcow2SubclusterType subcluster_type(uint64_t l2e, bool has_host, uint64_t bitmap,
                                           unsigned sc)
{
    if (l2e & QCOW2_OFLAG_COMPRESSED) {
        return bitmap ? QCOW2_SC_INVALID : QCOW2_SC_COMPRESSED;
    }
    bool alloc = (bitmap >> sc) & 1;
    bool zero = (bitmap >> (32 + sc)) & 1;
    if (alloc && zero) {
        return QCOW2_SC_INVALID;
    }
    if (!has_host) {
        if (alloc) {
            return QCOW2_SC_INVALID;
        }
        return zero ? QCOW2_SC_ZERO_PLAIN : QCOW2_SC_UNALLOCATED_PLAIN;
    }
    if (zero) {
        return QCOW2_SC_ZERO_ALLOC;
    }
    return alloc ? QCOW2_SC_NORMAL : QCOW2_SC_UNALLOCATED_ALLOC;
}

Qcow2SubclusterType qcow2_l2e_subcluster_type(uint64_t l2e, uint64_t bitmap, unsigned sc)
{
    return subcluster_type(l2e, l2e & QCOW2_L2E_OFFSET_MASK, bitmap, sc);
}

bool qcow2_l2e_has_host(const BDRVQcow2State *s, uint64_t l2e)
{
    if (l2e & QCOW2_OFLAG_COMPRESSED) {
        return false;
    }
    return (l2e & QCOW2_L2E_OFFSET_MASK) ||
           (qcow2_has_data_file(s) && (l2e & QCOW2_OFLAG_COPIED));
}

Qcow2ClusterType qcow2_cluster_type(const BDRVQcow2State *s, uint64_t l2e)
{
    Qcow2ClusterType t = qcow2_l2e_type(l2e, s->extl2 ? 2 : s->h.version);
    if (qcow2_l2e_has_host(s, l2e)) {
        if (t == QCOW2_CLUSTER_UNALLOCATED) {
            t = QCOW2_CLUSTER_NORMAL;
        } else if (t == QCOW2_CLUSTER_ZERO_PLAIN) {
            t = QCOW2_CLUSTER_ZERO_ALLOC;
        }
    }
    return t;
}

Qcow2SubclusterType qcow2_subcluster_type(const BDRVQcow2State *s, uint64_t l2e,
                                          uint64_t bitmap, unsigned sc)
{
    return subcluster_type(l2e, qcow2_l2e_has_host(s, l2e), bitmap, sc);
}

uint64_t qcow2_compressed_offset(uint64_t l2e, unsigned cluster_bits)
{
    return l2e & ((1ull << qcow2_csize_shift(cluster_bits)) - 1);
}

uint64_t qcow2_compressed_len(uint64_t l2e, unsigned cluster_bits)
{
    unsigned shift = qcow2_csize_shift(cluster_bits);
    uint64_t nb = (l2e >> shift) & ((1ull << (cluster_bits - 8)) - 1);
    uint64_t off = qcow2_compressed_offset(l2e, cluster_bits);
    return (nb + 1) * 512 - (off & 511);
}

uint64_t qcow2_compressed_l2e(uint64_t off, uint64_t len, unsigned cluster_bits)
{
    uint64_t nb = ((off + len - 1) >> 9) - (off >> 9);
    return QCOW2_OFLAG_COMPRESSED | (nb << qcow2_csize_shift(cluster_bits)) | off;
}

static uint64_t l2_index(BDRVQcow2State *s, uint64_t off)
{
    return (off >> s->cluster_bits) & ((1ull << s->l2_bits) - 1);
}

int qcow2_set_l2e(BDRVQcow2State *s, int64_t l2, uint64_t idx, uint64_t l2e,
                  const uint64_t *bitmap)
{
    uint8_t *t;
    int ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
    if (ret < 0) {
        return ret;
    }
    uint8_t *e = t + idx * s->l2e_size;
    qcow2_st64(e, l2e);
    if (s->extl2 && bitmap) {
        qcow2_st64(e + 8, *bitmap);
    }
    qcow2_cache_mark_dirty(s->l2_cache, l2);
    return 0;
}

/* An L1 entry naming an L2 table inside a cluster: the image is corrupt (QEMU's words). */
static int l2_unaligned(BDRVQcow2State *s, uint64_t l1i, uint64_t l2)
{
    qcow2_signal_corruption(s, true, -1, -1,
                            "L2 table offset %#" PRIx64 " unaligned (L1 index: %#" PRIx64 ")",
                            l2, l1i);
    return -EIO;
}

uint64_t qcow2_l2_offset(BDRVQcow2State *s, uint64_t off)
{
    uint64_t l1i = off >> (s->cluster_bits + s->l2_bits);
    return l1i < s->l1_size ? s->l1[l1i] & QCOW2_L1E_OFFSET_MASK : 0;
}

int qcow2_get_l2e(BDRVQcow2State *s, uint64_t off, uint64_t *l2e, uint64_t *bitmap)
{
    *l2e = 0;
    *bitmap = 0;
    uint64_t l2 = qcow2_l2_offset(s, off);
    if (!l2) {
        return 0;
    }
    if (l2 % s->cluster_size) {
        return l2_unaligned(s, off >> (s->cluster_bits + s->l2_bits), l2);
    }
    uint8_t *t;
    int ret = qcow2_cache_get(s->l2_cache, l2, false, &t);
    if (ret < 0) {
        return ret;
    }
    uint8_t *e = t + l2_index(s, off) * s->l2e_size;
    *l2e = qcow2_ld64(e);
    if (s->extl2) {
        *bitmap = qcow2_ld64(e + 8);
    }
    return 0;
}

int qcow2_write_l1_entry(BDRVQcow2State *s, uint32_t idx)
{
    return qcow2_meta_write_entry(s, QCOW2_OL_ACTIVE_L1, s->h.l1_table_offset + idx * 8ull,
                                  s->l1[idx], QCOW2_OL_ACTIVE_L2,
                                  s->l1[idx] & QCOW2_L1E_OFFSET_MASK);
}

/* Waits for data_io_done (lock held); wake_data_io wakes only when someone waits. */
static void wait_data_io(BDRVQcow2State *s)
{
    s->data_io_sleepers++;
    g_cond_wait(&s->data_io_done, &s->lock);
    s->data_io_sleepers--;
}

static void wake_data_io(BDRVQcow2State *s)
{
    if (s->data_io_sleepers) {
        g_cond_broadcast(&s->data_io_done);
    }
}

void qcow2_lock_exclusive(BDRVQcow2State *s)
{
    g_mutex_lock(&s->lock);
    s->exclusive_waiters++;
    while (g_atomic_int_get(&s->data_io_inflight)) {
        wait_data_io(s);
    }
    s->exclusive_waiters--;
}

/*
 * Data I/O on child (lock held on entry and return).  With unlock, the lock is dropped for
 * the transfer unless an exclusive operation is waiting: then the I/O runs locked so the
 * waiter is not starved by a stream of new requests.
 */
static int data_io(BDRVQcow2State *s, BlockDriverState *child, bool write, uint64_t off,
                   uint64_t len, void *buf, bool unlock)
{
    if (!child) {
        return -EIO; /* a data file left unopened (BDRV_O_NO_IO) */
    }
    if (!unlock || s->exclusive_waiters) {
        return write ? bdrv_pwrite(child, off, len, buf) : bdrv_pread(child, off, len, buf);
    }
    g_atomic_int_inc(&s->data_io_inflight);
    g_mutex_unlock(&s->lock);
    int ret = write ? bdrv_pwrite(child, off, len, buf) : bdrv_pread(child, off, len, buf);
    g_mutex_lock(&s->lock);
    if (g_atomic_int_dec_and_test(&s->data_io_inflight)) {
        wake_data_io(s);
    }
    return ret;
}

static int read_backing(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                        bool unlock)
{
    BlockDriverState *b = s->bs->backing;
    int64_t bsize = b ? b->total_size : 0;
    uint64_t n = 0;
    if ((int64_t)off < bsize) {
        n = MIN(len, (uint64_t)bsize - off);
        int ret = data_io(s, b, false, off, n, buf, unlock);
        if (ret < 0) {
            return ret;
        }
    }
    memset(buf + n, 0, len - n);
    return 0;
}

/* The L2 entry of guest offset off is corrupt: QEMU's report, what (printf-style) followed
 * by " (L2 offset: 0x..., L2 index: 0x...)"; -EIO. */
static int G_GNUC_PRINTF(3, 4) entry_corrupt(BDRVQcow2State *s, uint64_t off,
                                             const char *what, ...)
{
    va_list ap;
    va_start(ap, what);
    g_autofree char *head = g_strdup_vprintf(what, ap);
    va_end(ap);
    qcow2_signal_corruption(s, true, -1, -1, "%s (L2 offset: %#" PRIx64 ", L2 index: %#x)",
                            head, qcow2_l2_offset(s, off), (unsigned)l2_index(s, off));
    return -EIO;
}

int qcow2_l2e_check(BDRVQcow2State *s, uint64_t off, uint64_t l2e)
{
    uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
    if (host % s->cluster_size && qcow2_l2e_has_host(s, l2e)) {
        /* A data or preallocated zero cluster inside another cluster. */
        return entry_corrupt(s, off, "Cluster allocation offset %#" PRIx64 " unaligned",
                             host);
    }
    if ((l2e & QCOW2_OFLAG_COMPRESSED) && qcow2_has_data_file(s)) {
        /* The format forbids them: a data file holds only plain guest-offset clusters. */
        return entry_corrupt(s, off, "Compressed cluster entry found in image with external "
                             "data file");
    }
    if (!(l2e & QCOW2_OFLAG_COMPRESSED) && (l2e & QCOW2_OFLAG_ZERO) && s->h.version < 3 &&
        !s->extl2) {
        /* Version 2 has no zero clusters: the flag is a corrupt entry (QEMU's view), not
         * data to read. */
        return entry_corrupt(s, off, "Zero cluster entry found in pre-v3 image");
    }
    return 0;
}

/* A data cluster the fast read paths may transfer directly; anything else (a version 2
 * entry with the zero flag included, which is corrupt) goes through read_cluster_l2e. */
static bool plain_data(BDRVQcow2State *s, uint64_t l2e)
{
    return qcow2_cluster_type(s, l2e) == QCOW2_CLUSTER_NORMAL &&
           !((l2e & QCOW2_OFLAG_ZERO) && s->h.version < 3);
}

static int read_compressed(BDRVQcow2State *s, uint64_t l2e, uint64_t coff, uint64_t len,
                           uint8_t *buf)
{
    uint64_t host = qcow2_compressed_offset(l2e, s->cluster_bits);
    uint64_t clen = qcow2_compressed_len(l2e, s->cluster_bits);
    uint8_t *in = g_malloc(clen);
    uint8_t *out = g_malloc(s->cluster_size);
    int ret = bdrv_pread(s->bs->file, host, clen, in);
    if (ret == 0) {
        ret = qcow2_decompress(s->h.compression_type, out, s->cluster_size, in, clen);
    }
    if (ret == 0) {
        memcpy(buf, out + coff, len);
    }
    g_free(in);
    g_free(out);
    return ret < 0 ? -EIO : 0;
}

/*
 * Reads [off, off+len) inside one cluster whose L2 entry (and bitmap) the caller has
 * read; extended L2 goes one subcluster at a time.
 */
static int read_cluster_l2e(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                            bool unlock, uint64_t l2e, uint64_t bitmap)
{
    uint64_t coff = off & (s->cluster_size - 1);
    uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
    int ret = qcow2_l2e_check(s, off, l2e);
    if (ret < 0) {
        return ret;
    }
    while (len) {
        uint64_t n = len;
        int kind;
        if (s->extl2) {
            unsigned sc = coff / s->subcluster_size;
            n = MIN(len, (sc + 1) * s->subcluster_size - coff);
            switch (qcow2_subcluster_type(s, l2e, bitmap, sc)) {
            case QCOW2_SC_UNALLOCATED_PLAIN:
            case QCOW2_SC_UNALLOCATED_ALLOC:
                kind = QCOW2_CLUSTER_UNALLOCATED;
                break;
            case QCOW2_SC_ZERO_PLAIN:
            case QCOW2_SC_ZERO_ALLOC:
                kind = QCOW2_CLUSTER_ZERO_PLAIN;
                break;
            case QCOW2_SC_NORMAL:
                kind = QCOW2_CLUSTER_NORMAL;
                break;
            case QCOW2_SC_COMPRESSED:
                kind = QCOW2_CLUSTER_COMPRESSED;
                break;
            default:
                /* QEMU's words, two spaces included. */
                return entry_corrupt(s, off, "Invalid cluster entry found ");
            }
        } else {
            kind = qcow2_cluster_type(s, l2e);
            if (kind == QCOW2_CLUSTER_ZERO_ALLOC) {
                kind = QCOW2_CLUSTER_ZERO_PLAIN;
            }
        }
        uint64_t goff = (off & ~(s->cluster_size - 1)) + coff;
        switch (kind) {
        case QCOW2_CLUSTER_UNALLOCATED:
            ret = read_backing(s, goff, n, buf, unlock);
            break;
        case QCOW2_CLUSTER_ZERO_PLAIN:
            memset(buf, 0, n);
            ret = 0;
            break;
        case QCOW2_CLUSTER_NORMAL:
            ret = data_io(s, s->data_file, false, host + coff, n, buf, unlock);
            break;
        default:
            ret = read_compressed(s, l2e, coff, n, buf);
            break;
        }
        if (ret < 0) {
            return ret;
        }
        buf += n;
        coff += n;
        len -= n;
    }
    return 0;
}

/* Reads [off, off+len) inside one cluster. */
static int read_in_cluster(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                           bool unlock)
{
    uint64_t l2e, bitmap;
    int ret = qcow2_get_l2e(s, off, &l2e, &bitmap);
    return ret < 0 ? ret : read_cluster_l2e(s, off, len, buf, unlock, l2e, bitmap);
}

/*
 * The one walk over a guest range: step handles a prefix of [off, off+len) (at least the
 * part in off's cluster, more when it can do a run in one go) and returns its length or
 * -errno.  unlock says whether steps may drop the lock around data I/O (guest requests)
 * or must keep it (copy-on-write and other internal users).
 */
typedef int64_t Qcow2WalkStep(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                              bool unlock);

static int walk(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf, bool unlock,
                Qcow2WalkStep *step)
{
    while (len) {
        int64_t n = step(s, off, len, buf, unlock);
        if (n < 0) {
            return n;
        }
        off += n;
        buf += n;
        len -= n;
    }
    return 0;
}

/* The part of [off, off+len) inside off's cluster. */
static uint64_t cluster_piece(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    return MIN(len, s->cluster_size - (off & (s->cluster_size - 1)));
}

/*
 * How many bytes of [off, off+len) lie in plain data clusters stored back to back on the
 * host, starting with off's cluster (0 when that one is not plain data); *host is where
 * off is stored.  Such a run is read with one transfer instead of one per cluster.
 */
static uint64_t contiguous_data_run(BDRVQcow2State *s, uint64_t off, uint64_t len,
                                    uint64_t *host)
{
    uint64_t run = 0, next = 0;

    while (run < len && !s->extl2) {
        uint64_t l2e, bitmap;
        if (qcow2_get_l2e(s, off + run, &l2e, &bitmap) < 0 || !plain_data(s, l2e)) {
            break;
        }
        uint64_t cl = l2e & QCOW2_L2E_OFFSET_MASK;
        if (cl % s->cluster_size || (run && cl != next)) {
            break;
        }
        uint64_t coff = (off + run) & (s->cluster_size - 1);
        if (!run) {
            *host = cl + coff;
        }
        run += MIN(len - run, s->cluster_size - coff);
        next = cl + s->cluster_size;
    }
    return run;
}

/* Plain data clusters stored back to back on the host are one transfer, the rest goes
 * cluster by cluster (a read within one cluster has no run to find). */
static int64_t read_step(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                         bool unlock)
{
    uint64_t piece = cluster_piece(s, off, len);
    uint64_t host = 0, n = len > piece ? contiguous_data_run(s, off, len, &host) : 0;
    int ret;
    if (n > piece) {
        ret = data_io(s, s->data_file, false, host, n, buf, unlock);
    } else {
        n = piece;
        ret = read_in_cluster(s, off, n, buf, unlock);
    }
    return ret < 0 ? ret : (int64_t)n;
}

int qcow2_read_data(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf)
{
    return walk(s, off, len, buf, false, read_step);
}

int qcow2_read_guest(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf)
{
    return walk(s, off, len, buf, true, read_step);
}

/*
 * The unlocked transfer of the fast read paths: the lock is released for it and not taken
 * again afterwards (see qcow2_read_guest_unlock).  Called locked, returns unlocked.
 */
static int transfer_and_release(BDRVQcow2State *s, BlockDriverState *child, uint64_t host,
                                uint64_t len, const struct iovec *iov, int niov)
{
    g_atomic_int_inc(&s->data_io_inflight);
    g_mutex_unlock(&s->lock);
    int ret = bdrv_preadv(child, host, len, iov, niov, 0);
    if (g_atomic_int_dec_and_test(&s->data_io_inflight)) {
        g_mutex_lock(&s->lock);
        wake_data_io(s);
        g_mutex_unlock(&s->lock);
    }
    return ret;
}

/*
 * Most guest reads are one piece of one plain data cluster.  Such a read releases the
 * lock for its transfer like data_io, but does not take it back afterwards only to
 * release it again: at queue depth 32 that second round trip was most of the lock's
 * contention.  Its in-flight count drops atomically; only the last one out takes the
 * lock, to wake an exclusive waiter (which holds the lock from its check of the count
 * until it sleeps, so the wake-up cannot slip in between).
 */
int qcow2_read_guest_unlock(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf)
{
    uint64_t coff = off & (s->cluster_size - 1), l2e, bitmap;
    BlockDriverState *child = s->data_file;
    int ret;

    if (!len || coff + len > s->cluster_size) {
        ret = qcow2_read_guest(s, off, len, buf);
        g_mutex_unlock(&s->lock);
        return ret;
    }
    ret = qcow2_get_l2e(s, off, &l2e, &bitmap);
    if (ret == 0 && !s->extl2 && !s->exclusive_waiters && child && plain_data(s, l2e) &&
        (l2e & QCOW2_L2E_OFFSET_MASK) % s->cluster_size == 0) {
        struct iovec one = { .iov_base = buf, .iov_len = len };
        return transfer_and_release(s, child, (l2e & QCOW2_L2E_OFFSET_MASK) + coff, len,
                                    &one, 1);
    }
    /* Any other piece of one cluster: the entry just read serves it (no second lookup). */
    if (ret == 0) {
        ret = read_cluster_l2e(s, off, len, buf, true, l2e, bitmap);
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

/*
 * A guest read into several buffers (virtio-blk passes one per run of guest pages).  When
 * the range is one host run of plain data clusters, as most reads of an allocated image
 * are, it is one vectored transfer, as QEMU issues it, instead of a walk and a transfer
 * per buffer.  Called locked, returns unlocked.
 */
int qcow2_read_guest_iov_unlock(BDRVQcow2State *s, uint64_t off, uint64_t len,
                                const struct iovec *iov, int niov)
{
    uint64_t total = iov_size(iov, niov), host = 0;
    /* More buffers than one preadv takes (a guest ignoring seg_max): buffer by buffer. */
    if (total == len && len && niov <= IOV_MAX && s->data_file && !s->exclusive_waiters &&
        contiguous_data_run(s, off, len, &host) == len) {
        return transfer_and_release(s, s->data_file, host, len, iov, niov);
    }
    int ret = 0;
    uint64_t done = 0;
    for (int i = 0; i < niov && ret == 0 && done < len; i++) {
        uint64_t n = MIN(iov[i].iov_len, len - done);
        ret = qcow2_read_guest(s, off + done, n, iov[i].iov_base);
        done += n;
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

/* Adds delta to the refcount of every cluster an L2 entry references. */
int qcow2_ref_l2e(BDRVQcow2State *s, uint64_t l2e, int64_t delta)
{
    if (qcow2_has_data_file(s)) {
        return 0; /* clusters of an external data file have no refcounts */
    }
    if (l2e & QCOW2_OFLAG_COMPRESSED) {
        return qcow2_update_refcount(s, qcow2_compressed_offset(l2e, s->cluster_bits),
                                     qcow2_compressed_len(l2e, s->cluster_bits), delta);
    }
    uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
    return host ? qcow2_update_refcount(s, host, s->cluster_size, delta) : 0;
}

/*
 * Copies an L2 table shared with a snapshot.  A data cluster's refcount counts the L1
 * tables that reach it, so moving one L1's path from the shared table to the copy leaves
 * data refcounts unchanged; only the shared table loses a reference, after the L1 entry
 * points at the copy (on disk first).  Entries of the copy lose OFLAG_COPIED: still shared.
 */
static int64_t cow_l2(BDRVQcow2State *s, uint64_t l1i, uint64_t old)
{
    uint8_t *copy = g_malloc(s->cluster_size);
    uint8_t *t;
    int64_t ret = qcow2_cache_get(s->l2_cache, old, false, &t);
    if (ret < 0) {
        goto out;
    }
    memcpy(copy, t, s->cluster_size);
    for (uint64_t i = 0; i < (1ull << s->l2_bits); i++) {
        uint64_t l2e = qcow2_ld64(copy + i * s->l2e_size);
        qcow2_st64(copy + i * s->l2e_size, l2e & ~QCOW2_OFLAG_COPIED);
    }
    int64_t nl2 = qcow2_alloc_clusters(s, 1);
    if (nl2 < 0) {
        ret = nl2;
        goto out;
    }
    ret = qcow2_cache_get(s->l2_cache, nl2, true, &t);
    if (ret < 0) {
        goto out;
    }
    memcpy(t, copy, s->cluster_size);
    qcow2_cache_mark_dirty(s->l2_cache, nl2);
    ret = qcow2_cache_flush(s->l2_cache);
    if (ret < 0) {
        goto out;
    }
    s->l1[l1i] = (uint64_t)nl2 | QCOW2_OFLAG_COPIED;
    ret = qcow2_write_l1_entry(s, l1i);
    if (ret == 0) {
        ret = qcow2_update_refcount(s, old, s->cluster_size, -1);
    }
    if (ret == 0) {
        ret = nl2;
    }
out:
    g_free(copy);
    return ret;
}

/* Makes sure guest offset off has a writable (refcount 1) L2 table; returns its offset. */
int64_t qcow2_get_writable_l2(BDRVQcow2State *s, uint64_t off)
{
    uint64_t l1i = off >> (s->cluster_bits + s->l2_bits);
    if (l1i >= s->l1_size) {
        return -EIO;
    }
    uint64_t l1e = s->l1[l1i];
    uint64_t l2 = l1e & QCOW2_L1E_OFFSET_MASK;
    if (l2 % s->cluster_size) {
        return l2_unaligned(s, l1i, l2);
    }
    if (l2 && (l1e & QCOW2_OFLAG_COPIED)) {
        return l2;
    }
    int ret;
    if (l2) {
        uint64_t rc;
        ret = qcow2_get_refcount(s, l2 >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc != 1) {
            return cow_l2(s, l1i, l2);
        }
        s->l1[l1i] |= QCOW2_OFLAG_COPIED;
        ret = qcow2_write_l1_entry(s, l1i);
        return ret < 0 ? ret : (int64_t)l2;
    }
    int64_t nl2 = qcow2_alloc_clusters(s, 1);
    if (nl2 < 0) {
        return nl2;
    }
    uint8_t *t;
    ret = qcow2_cache_get(s->l2_cache, nl2, true, &t);
    if (ret < 0) {
        return ret;
    }
    qcow2_cache_mark_dirty(s->l2_cache, nl2);
    /* The table (and its refcount) must be on disk before the L1 entry points at it. */
    ret = qcow2_cache_flush(s->l2_cache);
    if (ret < 0) {
        return ret;
    }
    s->l1[l1i] = (uint64_t)nl2 | QCOW2_OFLAG_COPIED;
    ret = qcow2_write_l1_entry(s, l1i);
    return ret < 0 ? ret : nl2;
}

/* Drops the reference an old L2 entry held, once the entry replacing it is on disk. */
static int free_old_entry(BDRVQcow2State *s, uint64_t l2e)
{
    int ret = qcow2_cache_flush(s->l2_cache);
    return ret < 0 ? ret : qcow2_ref_l2e(s, l2e, -1);
}

/*
 * Host clusters for the n guest clusters from cstart: in an external data file the guest
 * offset itself (QEMU's layout; nothing is refcounted there), else newly allocated
 * clusters of the image.
 */
static int64_t alloc_data_clusters(BDRVQcow2State *s, uint64_t cstart, uint64_t n)
{
    return qcow2_has_data_file(s) ? (int64_t)cstart : qcow2_alloc_clusters(s, n);
}

void qcow2_prealloc_ahead(BDRVQcow2State *s, uint64_t host, uint64_t len)
{
    BlockDriverState *file = s->bs->file;
    /* Inactive: the file belongs to the other side of a migration. */
    if (qcow2_has_data_file(s) || s->data_file != file || s->prealloc_refused ||
        host + len <= s->prealloc_end ||
        (g_atomic_int_get(&file->open_flags) & BDRV_O_INACTIVE)) {
        return;
    }
    int64_t flen = bdrv_getlength(file);
    if (flen < 0 || host + len <= (uint64_t)flen) {
        return; /* inside the file already (reused free space) */
    }
    if (!s->prealloc_end) {
        s->prealloc_from = flen;
    }
    uint64_t step = QCOW2_PREALLOC_STEP;
    uint64_t end = ((host + len + step - 1) / step) * step;
    /* Zeroes past the end of a file are fallocate(FALLOC_FL_ZERO_RANGE): blocks allocated
     * as unwritten extents, the size grown, nothing written. */
    if (bdrv_pwrite_zeroes(file, flen, end - flen, BDRV_REQ_NO_FALLBACK) < 0) {
        /* Out of space, ext4 has set the size as far as it got (11 of 32 MiB seen), and
         * nothing would trim that: give it back (nothing lies past flen, lock held). */
        Error *err = NULL;
        if (!bdrv_truncate(file, flen, true, &err)) {
            error_free(err);
        }
        s->prealloc_refused = true;
        return;
    }
    s->prealloc_end = end;
}

/*
 * Whether host [host, host+len), allocated when alloc_end was old_end (bytes), lies in the
 * grown tail where no cluster was ever allocated: the fallocate left it reading zeroes and
 * nothing has written there since (writes go to allocated clusters, all below alloc_end),
 * so a partial write needs no zeroing first.  A freed and reused cluster is below old_end.
 */
static bool prealloc_untouched(const BDRVQcow2State *s, uint64_t old_end, uint64_t host,
                               uint64_t len)
{
    return s->prealloc_end && host >= MAX(s->prealloc_from, old_end) &&
           host + len <= s->prealloc_end;
}

void qcow2_prealloc_trim(BDRVQcow2State *s)
{
    if (!s->prealloc_end) {
        return;
    }
    uint64_t used = MAX(s->prealloc_from, s->alloc_end << s->cluster_bits);
    int64_t flen = bdrv_getlength(s->bs->file);
    Error *err = NULL;
    if (flen > 0 && (uint64_t)flen > used && !bdrv_truncate(s->bs->file, used, true, &err)) {
        /* Only space is lost: the tail reads as zeroes and nothing refers to it. */
        error_free(err);
    }
    s->prealloc_end = 0;
}

/*
 * Gives back n clusters from alloc_data_clusters that no L2 entry points to yet, after
 * their write failed (a full host file system): otherwise they stay allocated and
 * unreferenced, a leak qemu-img check reports.  Nothing else knows them, so freeing is
 * safe; best effort, the write's error is what the caller reports.  As QEMU does.
 */
static void unalloc_data_clusters(BDRVQcow2State *s, uint64_t target, uint64_t n)
{
    if (!qcow2_has_data_file(s)) {
        qcow2_update_refcount(s, target, n << s->cluster_bits, -1);
    }
}

/*
 * First write into unallocated clusters that need nothing copied (no backing data under
 * a partial one, or whole clusters written; several only when whole and in one L2 table):
 * the host clusters are allocated as one run under the lock, the data goes out without it
 * (other requests overlap theirs), then the L2 entries are set.  The guest clusters sit in
 * s->allocating meanwhile, and the transfer counts as unlocked data I/O, so exclusive
 * operations wait for it.
 */
static int allocate_unlocked(BDRVQcow2State *s, int64_t l2, uint64_t off, uint64_t len,
                             const uint8_t *buf)
{
    uint64_t coff = off & (s->cluster_size - 1);
    uint64_t cstart = off - coff;
    uint64_t n = (coff + len + s->cluster_size - 1) >> s->cluster_bits;
    uint64_t old_end = s->alloc_end << s->cluster_bits;
    int64_t target = alloc_data_clusters(s, cstart, n);
    if (target < 0) {
        return target;
    }
    int ret = qcow2_overlap_check_data(s, target, n << s->cluster_bits);
    if (ret < 0) {
        unalloc_data_clusters(s, (uint64_t)target, n);
        return ret;
    }
    qcow2_prealloc_ahead(s, target, n << s->cluster_bits);
    /* A zeroing fallocate takes ext4's inode lock and waits for all direct I/O: at depth
     * 32 it ran 4 KiB writes into new clusters one at a time. */
    bool zeroed = len == (n << s->cluster_bits) ||
                  prealloc_untouched(s, old_end, (uint64_t)target, n << s->cluster_bits);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *key = g_new(uint64_t, 1);
        *key = cstart + (i << s->cluster_bits);
        g_hash_table_add(s->allocating, key);
    }
    g_atomic_int_inc(&s->data_io_inflight);
    g_mutex_unlock(&s->lock);
    /* A cluster reused from freed space may hold old bytes: the file zeroes it first. */
    ret = zeroed ? 0 : bdrv_pwrite_zeroes(s->data_file, target, n << s->cluster_bits, 0);
    if (ret == 0) {
        ret = bdrv_pwrite(s->data_file, target + coff, len, buf);
    }
    g_mutex_lock(&s->lock);
    g_atomic_int_add(&s->data_io_inflight, -1);
    if (ret < 0) {
        unalloc_data_clusters(s, (uint64_t)target, n);
    }
    for (uint64_t i = 0; ret == 0 && i < n; i++) {
        ret = qcow2_set_l2e(s, l2, l2_index(s, cstart) + i,
                            ((uint64_t)target + (i << s->cluster_bits)) | QCOW2_OFLAG_COPIED,
                            NULL);
    }
    /* When an L2 entry cannot be set the clusters stay allocated but unreferenced: a
     * leak, never a mix-up. */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t key = cstart + (i << s->cluster_bits);
        g_hash_table_remove(s->allocating, &key);
    }
    wake_data_io(s);
    return ret;
}

/*
 * Whole unallocated clusters from off (cluster-aligned) within one L2 table and within
 * len, none being allocated by another request: how many (0 when fewer than two, or on
 * error); *l2 is the writable table.
 */
static uint64_t unallocated_run(BDRVQcow2State *s, uint64_t off, uint64_t len, int64_t *l2)
{
    uint64_t per_l2 = 1ull << s->l2_bits;
    uint64_t max = MIN(len >> s->cluster_bits, per_l2 - l2_index(s, off));
    if (max < 2 || s->extl2 || s->exclusive_waiters) {
        return 0;
    }
    *l2 = qcow2_get_writable_l2(s, off);
    if (*l2 < 0) {
        return 0;
    }
    uint64_t n = 0;
    for (; n < max; n++) {
        uint64_t c = off + (n << s->cluster_bits), l2e, bitmap;
        if (g_hash_table_contains(s->allocating, &c) ||
            qcow2_get_l2e(s, c, &l2e, &bitmap) < 0 ||
            qcow2_cluster_type(s, l2e) != QCOW2_CLUSTER_UNALLOCATED) {
            break;
        }
    }
    return n >= 2 ? n : 0;
}

/* buf is only read; the non-const type lets reads and writes share walk(). */
static int write_in_cluster(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                            bool unlock)
{
    uint64_t coff = off & (s->cluster_size - 1);
    uint64_t cstart = off - coff;
    /* Another request is giving this guest cluster its first host cluster: wait for its
     * L2 entry, or both would allocate one. */
    while (g_hash_table_contains(s->allocating, &cstart)) {
        wait_data_io(s);
    }
    int64_t l2 = qcow2_get_writable_l2(s, off);
    if (l2 < 0) {
        return l2;
    }
    uint64_t l2e, bitmap;
    int ret = qcow2_get_l2e(s, off, &l2e, &bitmap);
    if (ret < 0) {
        return ret;
    }
    Qcow2ClusterType type = qcow2_cluster_type(s, l2e);
    uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
    if ((l2e & QCOW2_OFLAG_COPIED) && host % s->cluster_size &&
        (type == QCOW2_CLUSTER_NORMAL || type == QCOW2_CLUSTER_ZERO_ALLOC)) {
        /* An owned cluster inside another cluster: writing there would hit whatever
         * shares that cluster (QEMU's words). */
        qcow2_signal_corruption(s, true, -1, -1,
                                "%s cluster offset %#" PRIx64 " unaligned (guest offset: %#"
                                PRIx64 ")", type == QCOW2_CLUSTER_ZERO_ALLOC ?
                                "Preallocated zero" : "Data", host, off);
        return -EIO;
    }
    bool owned = (l2e & QCOW2_OFLAG_COPIED) && type == QCOW2_CLUSTER_NORMAL &&
                 host % s->cluster_size == 0;
    if (s->extl2 && bitmap != 0xffffffffull) {
        owned = false; /* some subclusters still read from backing or as zero */
    }
    if (owned) {
        /* Owned: only an exclusive operation could free it, and those wait for us. */
        ret = qcow2_overlap_check_data(s, host + coff, len);
        return ret < 0 ? ret : data_io(s, s->data_file, true, host + coff, len, buf, unlock);
    }
    /* Slow path: assemble the whole cluster (old contents from wherever they come from),
     * write it to a cluster we own, then point the L2 entry at it. */
    BlockDriverState *backing = s->bs->backing;
    bool old_zero = !s->extl2 && len < s->cluster_size &&
                    (type == QCOW2_CLUSTER_ZERO_PLAIN || type == QCOW2_CLUSTER_ZERO_ALLOC ||
                     (type == QCOW2_CLUSTER_UNALLOCATED &&
                      (!backing || (int64_t)cstart >= backing->total_size)));
    if (unlock && !s->extl2 && type == QCOW2_CLUSTER_UNALLOCATED &&
        (old_zero || len == s->cluster_size) && !s->exclusive_waiters) {
        return allocate_unlocked(s, l2, off, len, buf);
    }
    uint8_t *cl = g_malloc(s->cluster_size);
    if (len < s->cluster_size && !old_zero) {
        ret = qcow2_read_data(s, cstart, s->cluster_size, cl);
        if (ret < 0) {
            goto out;
        }
    }
    memcpy(cl + coff, buf, len);
    bool reuse = (l2e & QCOW2_OFLAG_COPIED) && qcow2_l2e_has_host(s, l2e) &&
                 host % s->cluster_size == 0;
    uint64_t target = host;
    if (!reuse) {
        int64_t n = alloc_data_clusters(s, cstart, 1);
        if (n < 0) {
            ret = n;
            goto out;
        }
        target = n;
    }
    ret = qcow2_overlap_check_data(s, target, s->cluster_size);
    if (ret < 0) {
        goto unalloc;
    }
    if (old_zero) {
        /* Nothing to copy: the file zeroes the cluster (cheaply), then only len is written. */
        ret = bdrv_pwrite_zeroes(s->data_file, target, s->cluster_size, 0);
        if (ret == 0) {
            ret = bdrv_pwrite(s->data_file, target + coff, len, buf);
        }
    } else {
        ret = bdrv_pwrite(s->data_file, target, s->cluster_size, cl);
    }
    if (ret < 0) {
        goto unalloc;
    }
    const uint64_t all_allocated = 0xffffffffull;
    ret = qcow2_set_l2e(s, l2, l2_index(s, off), target | QCOW2_OFLAG_COPIED, &all_allocated);
    if (ret < 0) {
        goto out;
    }
    if (!reuse && (type == QCOW2_CLUSTER_NORMAL || type == QCOW2_CLUSTER_ZERO_ALLOC ||
                   type == QCOW2_CLUSTER_COMPRESSED ||
                   (s->extl2 && qcow2_l2e_has_host(s, l2e)))) {
        ret = free_old_entry(s, l2e);
    }
    goto out;
unalloc:
    if (!reuse) {
        unalloc_data_clusters(s, target, 1);
    }
out:
    g_free(cl);
    return ret;
}

/*
 * Runs of whole unallocated clusters get one contiguous host run and one write (only
 * when the lock may be dropped: that write runs unlocked); the rest goes cluster by
 * cluster.
 */
static int64_t write_step(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf,
                          bool unlock)
{
    int64_t l2 = 0;
    uint64_t n = unlock && !(off & (s->cluster_size - 1)) ? unallocated_run(s, off, len, &l2)
                                                          : 0;
    int ret;
    if (n) {
        n <<= s->cluster_bits;
        ret = allocate_unlocked(s, l2, off, n, buf);
    } else {
        n = cluster_piece(s, off, len);
        ret = write_in_cluster(s, off, n, buf, unlock);
    }
    return ret < 0 ? ret : (int64_t)n;
}

int qcow2_write_data(BDRVQcow2State *s, uint64_t off, uint64_t len, const uint8_t *buf)
{
    return walk(s, off, len, (uint8_t *)buf, false, write_step);
}

int qcow2_write_guest(BDRVQcow2State *s, uint64_t off, uint64_t len, const uint8_t *buf)
{
    return walk(s, off, len, (uint8_t *)buf, true, write_step);
}

ssize_t qcow2_compress_cluster(BlockDriverState *bs, uint64_t off, const uint8_t *buf,
                               uint8_t *cbuf)
{
    BDRVQcow2State *s = bs->opaque;
    if (off % s->cluster_size || off >= (uint64_t)bs->total_size) {
        return -EINVAL;
    }
    uint64_t len = MIN(s->cluster_size, (uint64_t)bs->total_size - off);
    g_autofree uint8_t *full = NULL;
    if (len < s->cluster_size) {
        /* The last cluster of the disk is compressed as a whole, zero-padded cluster. */
        full = g_malloc0(s->cluster_size);
        memcpy(full, buf, len);
        buf = full;
    }
    /* A compressed run must stay at least one sector shorter than the cluster. */
    return qcow2_compress(s->h.compression_type, cbuf, s->cluster_size - 512, buf,
                          s->cluster_size);
}

/*
 * Stores one whole guest cluster whose compressed form qcow2_compress_cluster made.
 * Compressed runs are packed byte-wise after each other: a run that fits in the rest of
 * the last host cluster shares it (one more reference), otherwise it starts on freshly
 * allocated clusters.  clen -ENOSPC (the data does not shrink) writes buf normally.
 */
int qcow2_write_compressed_prepared(BlockDriverState *bs, uint64_t off, const uint8_t *buf,
                                    const uint8_t *cbuf, ssize_t clen)
{
    BDRVQcow2State *s = bs->opaque;
    if (off % s->cluster_size || off >= (uint64_t)bs->total_size) {
        return -EINVAL;
    }
    if (qcow2_has_data_file(s)) {
        return -ENOTSUP; /* an external data file holds no compressed clusters (QEMU) */
    }
    uint64_t len = MIN(s->cluster_size, (uint64_t)bs->total_size - off);
    int ret;
    qcow2_lock_exclusive(s);
    /* Like every other guest write, a compressed one marks the recording bitmaps. */
    qcow2_bitmaps_mark_dirty(s, off, len);
    if (clen == -ENOSPC) {
        ret = qcow2_write_data(s, off, len, buf);
        goto out;
    }
    if (clen < 0) {
        ret = clen;
        goto out;
    }
    int64_t l2 = qcow2_get_writable_l2(s, off);
    if (l2 < 0) {
        ret = l2;
        goto out;
    }
    uint64_t old, bitmap;
    ret = qcow2_get_l2e(s, off, &old, &bitmap);
    if (ret < 0) {
        goto out;
    }
    uint64_t fbo = s->free_byte_offset;
    uint64_t room = fbo % s->cluster_size ? s->cluster_size - fbo % s->cluster_size : 0;
    uint64_t place;
    if (room >= (uint64_t)clen) {
        place = fbo;
        ret = qcow2_update_refcount(s, place, 1, 1);
    } else {
        /* Continue the run into new clusters when they come right after the last one. */
        uint64_t extra = clen - room;
        int64_t n = qcow2_alloc_clusters(s, (extra + s->cluster_size - 1) >> s->cluster_bits);
        ret = n < 0 ? n : 0;
        place = n;
        if (n >= 0 && room && (uint64_t)n == fbo + room) {
            place = fbo;
            ret = qcow2_update_refcount(s, place, 1, 1);
        } else if (n >= 0 && extra != (uint64_t)clen) {
            /* Not contiguous: the run starts on the new clusters, which may be short. */
            uint64_t have = ((extra + s->cluster_size - 1) >> s->cluster_bits) << s->cluster_bits;
            if (have < (uint64_t)clen) {
                ret = qcow2_update_refcount(s, n, have, -1);
                int64_t m = ret < 0 ? ret
                                    : qcow2_alloc_clusters(s, (clen + s->cluster_size - 1) >>
                                                                  s->cluster_bits);
                ret = m < 0 ? m : 0;
                place = m;
            }
        }
    }
    if (ret < 0) {
        goto out;
    }
    s->free_byte_offset = place + clen;
    ret = qcow2_overlap_check_data(s, place, clen);
    if (ret == 0) {
        ret = bdrv_pwrite(s->bs->file, place, clen, cbuf);
    }
    if (ret < 0) {
        goto out;
    }
    const uint64_t no_bitmap = 0; /* compressed clusters carry none */
    ret = qcow2_set_l2e(s, l2, l2_index(s, off),
                        qcow2_compressed_l2e(place, clen, s->cluster_bits), &no_bitmap);
    if (ret < 0) {
        goto out;
    }
    if (old & (QCOW2_OFLAG_COMPRESSED | QCOW2_L2E_OFFSET_MASK)) {
        ret = free_old_entry(s, old);
    }
out:
    g_mutex_unlock(&s->lock);
    return ret;
}

/*
 * The new L2 entry (and bitmap) of one whole cluster under mode, as QEMU 7.2 rewrites it
 * (discard_in_l2_slice / zero_in_l2_slice); *unref says whether the old entry's host
 * cluster loses its reference.
 */
static void zeroed_l2e(const BDRVQcow2State *s, Qcow2ZeroMode mode, uint64_t old,
                       uint64_t old_bitmap, uint64_t *ne, uint64_t *nb, bool *unref)
{
    const uint64_t all_zeroes = 0xffffffff00000000ull; /* every subcluster reads zero */
    bool compressed = old & QCOW2_OFLAG_COMPRESSED;
    bool allocated = compressed || qcow2_l2e_has_host(s, old);

    *ne = old;
    *nb = old_bitmap;
    *unref = false;
    switch (mode) {
    case QCOW2_DISCARD_FULL:
        *ne = *nb = 0;
        *unref = allocated;
        break;
    case QCOW2_DISCARD:
        /* Reads as zeroes afterwards (v3: zero flag; v2 has none).  An unallocated
         * cluster of an image without a backing file already does; a zero cluster
         * stays one.  (A backing node given by the `backing` option counts too.) */
        if (s->backing_file || s->bs->backing || allocated) {
            *ne = !s->extl2 && s->h.version >= 3 ? QCOW2_OFLAG_ZERO : 0;
            *nb = s->extl2 ? all_zeroes : 0;
            *unref = allocated;
        }
        break;
    case QCOW2_ZERO:
    case QCOW2_ZERO_UNMAP:
        /* A compressed cluster cannot be preallocated-zero: it always goes.  Other host
         * clusters stay (even shared ones: a later write copies them) unless unmap. */
        *unref = compressed || (mode == QCOW2_ZERO_UNMAP && allocated);
        *ne = *unref ? 0 : old;
        if (s->extl2) {
            *nb = all_zeroes;
        } else {
            *ne |= QCOW2_OFLAG_ZERO;
        }
        break;
    }
}

/*
 * Extended L2: makes the whole subclusters [off, off+len) of one cluster read as zeroes
 * (zero bits set, allocation bits cleared; the host cluster stays), as QEMU's
 * zero_l2_subclusters.  -ENOTSUP for a compressed cluster, which has no subclusters.
 */
int qcow2_zero_subclusters(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    uint64_t l2e, bitmap;
    int ret = qcow2_get_l2e(s, off, &l2e, &bitmap);
    if (ret < 0) {
        return ret;
    }
    if (l2e & QCOW2_OFLAG_COMPRESSED) {
        return -ENOTSUP;
    }
    unsigned first = (off & (s->cluster_size - 1)) / s->subcluster_size;
    unsigned n = len / s->subcluster_size;
    uint32_t bits = (n >= 32 ? 0xffffffffu : ((1u << n) - 1)) << first;
    uint64_t nb = (bitmap | (uint64_t)bits << 32) & ~(uint64_t)bits;
    if (nb == bitmap) {
        return 0;
    }
    int64_t l2 = qcow2_get_writable_l2(s, off);
    if (l2 < 0) {
        return l2;
    }
    /* The L2 table may have been copied (its entries lose OFLAG_COPIED): again. */
    ret = qcow2_get_l2e(s, off, &l2e, &bitmap);
    if (ret < 0) {
        return ret;
    }
    nb = (bitmap | (uint64_t)bits << 32) & ~(uint64_t)bits;
    return qcow2_set_l2e(s, l2, l2_index(s, off), l2e, &nb);
}

/*
 * Rewrites the L2 entries of whole clusters [off, off+n*cluster) for a discard or a
 * write-zeroes (mode, see qcow2.h).  Dropped references are released after one L2 flush
 * for the whole range.
 */
int qcow2_zero_clusters(BDRVQcow2State *s, uint64_t off, uint64_t n, Qcow2ZeroMode mode)
{
    GArray *freed = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    int ret = 0;
    for (uint64_t i = 0; i < n && ret == 0; i++, off += s->cluster_size) {
        uint64_t old, bitmap;
        ret = qcow2_get_l2e(s, off, &old, &bitmap);
        if (ret < 0) {
            break;
        }
        uint64_t ne, nb;
        bool unref;
        zeroed_l2e(s, mode, old, bitmap, &ne, &nb, &unref);
        if (ne == old && (!s->extl2 || nb == bitmap)) {
            continue; /* already what the operation leaves */
        }
        int64_t l2 = qcow2_get_writable_l2(s, off);
        if (l2 < 0) {
            ret = l2;
            break;
        }
        /* The L2 table may have been copied (its entries lose OFLAG_COPIED): again. */
        ret = qcow2_get_l2e(s, off, &old, &bitmap);
        if (ret < 0) {
            break;
        }
        zeroed_l2e(s, mode, old, bitmap, &ne, &nb, &unref);
        ret = qcow2_set_l2e(s, l2, l2_index(s, off), ne, &nb);
        if (ret < 0) {
            break;
        }
        if (unref) {
            g_array_append_val(freed, old);
        }
    }
    if (freed->len) {
        int r = qcow2_cache_flush(s->l2_cache);
        for (guint i = 0; r == 0 && i < freed->len; i++) {
            r = qcow2_ref_l2e(s, g_array_index(freed, uint64_t, i), -1);
        }
        if (ret == 0) {
            ret = r;
        }
    }
    g_array_free(freed, TRUE);
    return ret;
}
