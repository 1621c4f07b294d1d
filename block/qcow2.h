/*
 * QCOW2: on-disk format (QEMU's docs/interop/qcow2.txt) and the driver's internal API.
 *
 * Everything on disk is big-endian; the structs here are host-endian copies that the
 * parse/serialise functions convert.  Pure format helpers (header, extensions, refcount
 * entries, L2 entries, compressed descriptors) need no I/O, so unit tests exercise them
 * on hand-built buffers.
 */
#ifndef SEN_BLOCK_QCOW2_H
#define SEN_BLOCK_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <glib.h>

#include "sen/error.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104 /* without compression_type */
#define QCOW2_V3_HEADER_LEN_CT 112 /* with compression_type, padded to 8 */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFCOUNT_ORDER 6
#define QCOW2_MAX_BACKING_NAME 1023
/* Sanity limits: QEMU's, so that images it opens we open and vice versa. */
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOTS 65536

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN                                                          \
    (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DATA_FILE |      \
     QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2)
/* Compatible feature bits. */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
/* Autoclear feature bits. */
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

/* Header extension types. */
#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* L1/L2 entry bits. */
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO (1ull << 0)
#define QCOW2_L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_L1E_RESERVED 0x7f000000000001ffull
#define QCOW2_L2E_STD_RESERVED 0x3f000000000001feull
#define QCOW2_SUBCLUSTERS 32

typedef struct Qcow2Header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    /* version 3 (implied values for version 2) */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
} Qcow2Header;

/* One entry of the feature name table extension. */
typedef struct Qcow2FeatureName {
    uint8_t type; /* 0 incompatible, 1 compatible, 2 autoclear */
    uint8_t bit;
    char name[47]; /* 46 bytes on disk + NUL */
} Qcow2FeatureName;

/* An extension we do not interpret, kept verbatim so a header rewrite preserves it. */
typedef struct Qcow2RawExt {
    uint32_t type;
    uint32_t len;
    uint8_t *data;
} Qcow2RawExt;

typedef struct Qcow2Extensions {
    char *backing_fmt;        /* NULL when absent */
    char *data_file;          /* external data file name, NULL when absent */
    Qcow2FeatureName *features;
    size_t nb_features;
    GArray *unknown;          /* of Qcow2RawExt: bitmaps, crypto and anything newer */
    size_t end;               /* offset just past the end-of-extensions marker */
} Qcow2Extensions;

static inline uint16_t qcow2_ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t qcow2_ld32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t qcow2_ld64(const uint8_t *p)
{
    return (uint64_t)qcow2_ld32(p) << 32 | qcow2_ld32(p + 4);
}
static inline void qcow2_st16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}
static inline void qcow2_st32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}
static inline void qcow2_st64(uint8_t *p, uint64_t v)
{
    qcow2_st32(p, v >> 32);
    qcow2_st32(p + 4, (uint32_t)v);
}

/* ---- header (qcow2.c) ---- */

/*
 * Parses and validates the fixed header in buf (at least QCOW2_V2_HEADER_LEN bytes,
 * normally a whole cluster); name is used in messages.
 */
G_GNUC_WARN_UNUSED_RESULT
bool qcow2_header_parse(const uint8_t *buf, size_t len, const char *name, Qcow2Header *h,
                        Error **errp);
/* Refuses unknown incompatible features (named from the feature table when present). */
G_GNUC_WARN_UNUSED_RESULT
bool qcow2_header_check_features(const Qcow2Header *h, const Qcow2Extensions *ext,
                                 const char *name, Error **errp);
/* Writes the fixed header (h->header_length bytes, 72 for version 2) into buf. */
size_t qcow2_header_serialize(const Qcow2Header *h, uint8_t *buf);
/* Parses the extensions that follow the fixed header, up to len bytes of buf. */
G_GNUC_WARN_UNUSED_RESULT
bool qcow2_ext_parse(const Qcow2Header *h, const uint8_t *buf, size_t len,
                     const char *name, Qcow2Extensions *ext, Error **errp);
/*
 * Serialises header + extensions (+ the standard feature name table) + backing file name
 * into buf of buf_len bytes; updates h->backing_file_offset/size.  Returns the total length
 * or 0 when it does not fit.
 */
size_t qcow2_header_build(Qcow2Header *h, const Qcow2Extensions *ext,
                          const char *backing_file, uint8_t *buf, size_t buf_len);
void qcow2_ext_clear(Qcow2Extensions *ext);
/* Name of an incompatible feature bit from the table, or NULL. */
const char *qcow2_feature_name(const Qcow2Extensions *ext, uint8_t type, uint8_t bit);

/* ---- refcount entries (qcow2-refcount.c) ---- */

/* Entry idx of a refcount block of 2^order-bit entries. */
uint64_t qcow2_refcount_get(const uint8_t *block, uint64_t idx, unsigned order);
void qcow2_refcount_set(uint8_t *block, uint64_t idx, unsigned order, uint64_t value);
static inline uint64_t qcow2_refcount_max(unsigned order)
{
    return order >= 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
}

/* ---- L2 entries and compressed descriptors (qcow2-cluster.c) ---- */

typedef enum Qcow2ClusterType {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN,  /* reads as zero, no host cluster */
    QCOW2_CLUSTER_ZERO_ALLOC,  /* reads as zero, host cluster preallocated */
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} Qcow2ClusterType;

typedef enum Qcow2SubclusterType {
    QCOW2_SC_UNALLOCATED_PLAIN, /* read from backing */
    QCOW2_SC_UNALLOCATED_ALLOC, /* host cluster exists, this subcluster reads backing */
    QCOW2_SC_ZERO_PLAIN,
    QCOW2_SC_ZERO_ALLOC,
    QCOW2_SC_NORMAL,
    QCOW2_SC_COMPRESSED,
    QCOW2_SC_INVALID,           /* both bits set, or a bitmap on a compressed cluster */
} Qcow2SubclusterType;

/* Type of a standard (64-bit) L2 entry; version 2 images have no zero flag. */
Qcow2ClusterType qcow2_l2e_type(uint64_t l2e, int version);
/* Type of subcluster sc of an extended L2 entry (l2e, bitmap). */
Qcow2SubclusterType qcow2_l2e_subcluster_type(uint64_t l2e, uint64_t bitmap, unsigned sc);

/* Compressed cluster descriptor: host offset and byte length of the compressed run. */
static inline unsigned qcow2_csize_shift(unsigned cluster_bits)
{
    return 62 - (cluster_bits - 8);
}
uint64_t qcow2_compressed_offset(uint64_t l2e, unsigned cluster_bits);
/* Bytes from the offset to the end of the last 512-byte sector it occupies. */
uint64_t qcow2_compressed_len(uint64_t l2e, unsigned cluster_bits);
/* Descriptor for compressed data of len bytes at host offset off (len <= cluster). */
uint64_t qcow2_compressed_l2e(uint64_t off, uint64_t len, unsigned cluster_bits);

/* ---- compression (compress.c) ---- */

/* Compresses src into dst; returns the length, or -ENOSPC when it does not get smaller. */
ssize_t qcow2_compress(int type, uint8_t *dst, size_t dst_len, const uint8_t *src,
                       size_t src_len);
/* Decompresses exactly dst_len bytes (one cluster); returns 0 or -EIO. */
int qcow2_decompress(int type, uint8_t *dst, size_t dst_len, const uint8_t *src,
                     size_t src_len);

/* ---- driver state and internal API ---- */

/* ---- persistent dirty bitmaps (qcow2-bitmap.c) ---- */

#define QCOW2_BME_IN_USE (1u << 0)
#define QCOW2_BME_AUTO (1u << 1)
#define QCOW2_BME_RESERVED 0xfffffffcu
#define QCOW2_MAX_BITMAPS 65535
#define QCOW2_MAX_BITMAP_DIR_SIZE (1024u * QCOW2_MAX_BITMAPS)
/* Memory the bits of one image's bitmaps may take together (Sen's limit: QEMU 7.2 limits
 * one bitmap to 512 MiB but not their sum, so 65535 `auto` bitmaps sharing one table
 * of all-ones entries would make it allocate and fill 32 TiB).  Four bitmaps of the
 * largest size QEMU allows. */
#define QCOW2_BITMAPS_MAX_MEM (2048ull << 20)

/* The bitmaps header extension. */
typedef struct Qcow2BitmapExt {
    uint32_t nb;
    uint64_t dir_size, dir_offset;
} Qcow2BitmapExt;

/* One bitmap: an entry of the directory on disk, or one added since the open. */
typedef struct Qcow2Bitmap {
    char *name;
    uint32_t flags;            /* QCOW2_BME_* as the directory on disk has them now */
    bool enabled;              /* the `auto` flag it is to have (may differ until stored) */
    unsigned granularity_bits;
    uint64_t table_offset;     /* on disk (0 for a new one) */
    uint32_t table_size;       /* entries */
    bool on_disk;              /* in the directory on disk */
    bool transient;            /* not persistent: never stored (QMP persistent=false) */
    /* Owned: the bits are loaded and the bitmap is rewritten by the next store (an enabled
     * one is in_use on disk meanwhile, and writes set its bits).  Granule i (of
     * 2^granularity_bits bytes) dirty: bit i % 64 of bits[i / 64]. */
    bool owned;
    uint64_t *bits;
    uint64_t nb_bits;
} Qcow2Bitmap;

/* Pure format helpers (no I/O).  Messages are QEMU's. */
G_GNUC_WARN_UNUSED_RESULT
bool qcow2_bitmap_ext_parse(const uint8_t *data, uint32_t len, uint64_t cluster_size,
                            Qcow2BitmapExt *e, Error **errp);
/* The nb entries of a directory of size bytes, validated as QEMU (NULL on error). */
GPtrArray *qcow2_bitmap_dir_parse(const uint8_t *dir, uint64_t size, uint32_t nb,
                                  uint64_t cluster_size, uint64_t disk_size, Error **errp);
/* Serialises the directory of bms (of Qcow2Bitmap*) into *out; returns its size. */
uint64_t qcow2_bitmap_dir_build(const GPtrArray *bms, uint8_t **out);
/* Table entries a bitmap of that granularity needs for a disk of disk_size bytes. */
uint64_t qcow2_bitmap_table_size(uint64_t disk_size, unsigned granularity_bits,
                                 uint64_t cluster_size);
void qcow2_bitmap_set_range(Qcow2Bitmap *bm, uint64_t off, uint64_t len);
/* Dirty granules. */
uint64_t qcow2_bitmap_count(const Qcow2Bitmap *bm);

typedef struct BlockDriverState BlockDriverState;
typedef struct Qcow2Cache Qcow2Cache;
typedef struct Qcow2Overlap Qcow2Overlap;

typedef struct BDRVQcow2State {
    BlockDriverState *bs;
    /*
     * Guards all metadata (tables, caches, allocation).  Guest data I/O to a cluster the
     * image owns (and backing reads) runs with the lock dropped, counted in data_io_inflight;
     * operations that may free clusters take the lock with qcow2_lock_exclusive, which waits
     * for that count to reach 0, so a cluster is never reused under an in-flight write.
     */
    GMutex lock;
    GCond data_io_done;
    int data_io_inflight;       /* atomic: changed under the lock, except that the fast
                                 * read path (qcow2_read_guest_unlock) drops its count
                                 * without it */
    unsigned exclusive_waiters; /* while > 0, data I/O keeps the lock (no starvation) */
    unsigned data_io_sleepers;  /* threads in g_cond_wait(data_io_done): skip the wake
                                 * syscall when there are none */
    GHashTable *allocating;     /* guest cluster offsets getting a host cluster unlocked */
    Qcow2Header h;
    Qcow2Extensions ext;
    char *backing_file;
    /*
     * Where guest data clusters live: bs->file, or the external data file (incompatible
     * bit 2).  With a data file a guest cluster's host offset is its guest offset, data
     * clusters have no refcounts (only metadata is refcounted, in bs->file), and with
     * data_file_raw the data file alone is a valid raw image of the disk.
     */
    BlockDriverState *data_file;
    bool has_data_file; /* data_file is not bs->file */
    bool data_file_raw;
    bool read_only;
    unsigned cluster_bits;
    uint64_t cluster_size;
    bool extl2;
    unsigned l2e_size;       /* 8, or 16 with extended L2 entries */
    unsigned l2_bits;        /* log2 of entries per L2 table */
    uint64_t subcluster_size;
    uint64_t *l1;            /* host-endian copy of the L1 table */
    uint32_t l1_size;
    uint64_t *reftable;      /* host-endian copy of the refcount table */
    uint64_t reftable_size;  /* entries */
    uint64_t reftable_used;  /* one past the last non-zero entry (overlap checks stop there) */
    unsigned refblock_bits;  /* log2 of entries per refcount block */
    Qcow2Cache *l2_cache;
    Qcow2Cache *rb_cache;
    uint64_t free_hint;      /* cluster index where the free-space search starts */
    uint64_t alloc_end;      /* one past the highest cluster index ever allocated */
    /* Guest writes grow the image file ahead of need (qcow2_prealloc_ahead): where that
     * preallocated tail ends (0: none yet), the file length before the first step (close
     * trims no lower), and whether the file system refused (no further tries). */
    uint64_t prealloc_end, prealloc_from;
    bool prealloc_refused;
    uint64_t free_byte_offset; /* where the next compressed run may be packed */
    /* Metadata-overlap protection (qcow2-overlap.c): the QCOW2_OL_* types checked
     * (option overlap-check) and the index of metadata clusters. */
    unsigned overlap_mask;
    Qcow2Overlap *overlap;
    bool signaled_corruption;  /* qcow2_signal_corruption reported once (qcow2-corrupt.c) */
    /* Persistent dirty bitmaps (qcow2-bitmap.c): the directory as loaded, of
     * Qcow2Bitmap*, and whether it is valid (the autoclear bit was set and it passed
     * the checks; false: the extension is left as it is and nothing is tracked). */
    GPtrArray *bitmaps;
    bool bitmaps_valid;
    int bitmaps_recording;     /* atomic: how many of them record writes now (a write
                                * takes the lock to mark them only when > 0) */
    Qcow2BitmapExt bitmaps_ext;
} BDRVQcow2State;

/* True when guest data lives in an external data file rather than in the image. */
static inline bool qcow2_has_data_file(const BDRVQcow2State *s)
{
    return s->has_data_file;
}

/*
 * The driver's view of an L2 entry (qcow2-cluster.c).  Offset 0 usually means "no host
 * cluster", but in an external data file it is the first cluster: there an entry with
 * OFLAG_COPIED always maps one (every data-file cluster has refcount 1; QEMU's rule).
 */
bool qcow2_l2e_has_host(const BDRVQcow2State *s, uint64_t l2e);
Qcow2ClusterType qcow2_cluster_type(const BDRVQcow2State *s, uint64_t l2e);
Qcow2SubclusterType qcow2_subcluster_type(const BDRVQcow2State *s, uint64_t l2e,
                                          uint64_t bitmap, unsigned sc);

/* qcow2-cache.c: a small LRU of cluster-sized tables, written back on flush/eviction. */
Qcow2Cache *qcow2_cache_new(BDRVQcow2State *s, unsigned entries, Qcow2Cache *depends);
void qcow2_cache_free(Qcow2Cache *c);
/* Loads (or, with fresh, zero-fills without reading) the table at offset; *out points into
 * the cache until the next qcow2_cache_get. */
int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, bool fresh, uint8_t **out);
void qcow2_cache_mark_dirty(Qcow2Cache *c, uint64_t offset);
/* Writes every dirty table (after flushing the cache this one depends on). */
int qcow2_cache_flush(Qcow2Cache *c);
void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset);

/* qcow2-refcount.c */
int qcow2_refcount_init(BDRVQcow2State *s);
/* Recomputes reftable_used after the table was loaded or replaced. */
void qcow2_reftable_scan_used(BDRVQcow2State *s);
/* Points the header at the refcount table at offset, clusters long (refcount_table_offset
 * and refcount_table_clusters, one synchronous write): the switch to a table the caller
 * wrote and flushed before. */
int qcow2_write_reftable_location(BDRVQcow2State *s, uint64_t offset, uint32_t clusters);
int qcow2_get_refcount(BDRVQcow2State *s, uint64_t cluster, uint64_t *rc);
/* Adds delta (may be negative) to the refcounts of every cluster touching [off, off+len). */
int qcow2_update_refcount(BDRVQcow2State *s, uint64_t off, uint64_t len, int64_t delta);
/* Allocates n contiguous clusters with refcount 1; returns the host offset or -errno. */
int64_t qcow2_alloc_clusters(BDRVQcow2State *s, uint64_t n);

/* qcow2-cluster.c */
/*
 * Before guest data goes to host clusters [host, host+len) past the end of the image file
 * (lock held): extends the file by QCOW2_PREALLOC_STEP of allocated, zero-reading space in
 * one fallocate, so the data writes land inside the file rather than extending it one at
 * a time (on ext4 an extending O_DIRECT write excludes every other write to the file).
 * Best effort: failure only means the writes extend the file themselves.  qcow2_close
 * trims what was not used; after a crash the tail is unreferenced zeroes, which qemu-img
 * check accepts.
 */
enum { QCOW2_PREALLOC_STEP = 32 << 20 };
void qcow2_prealloc_ahead(BDRVQcow2State *s, uint64_t host, uint64_t len);
/* On close: gives back the preallocated tail past the last allocated cluster. */
void qcow2_prealloc_trim(BDRVQcow2State *s);

/* Takes s->lock once no unlocked data I/O is in flight (for operations that free clusters). */
void qcow2_lock_exclusive(BDRVQcow2State *s);
/* Guest reads (lock held; drops it around data I/O, see BDRVQcow2State.lock). */
int qcow2_read_guest(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf);
/* A whole guest read (lock held on entry, released on return): a piece inside one plain
 * data cluster does not take the lock again after its transfer. */
int qcow2_read_guest_unlock(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf);
/* The same for a read into several buffers: one transfer when the range is one host run. */
struct iovec;
int qcow2_read_guest_iov_unlock(BDRVQcow2State *s, uint64_t off, uint64_t len,
                                const struct iovec *iov, int niov);
/* Internal reads that must not drop the lock (copy-on-write, commit, convert helpers). */
int qcow2_read_data(BDRVQcow2State *s, uint64_t off, uint64_t len, uint8_t *buf);
int qcow2_write_data(BDRVQcow2State *s, uint64_t off, uint64_t len, const uint8_t *buf);
/* Guest writes: like qcow2_read_guest, in-place writes run with the lock dropped. */
int qcow2_write_guest(BDRVQcow2State *s, uint64_t off, uint64_t len, const uint8_t *buf);
/* Host offset of the L2 table and index for guest offset off, or 0 when none. */
uint64_t qcow2_l2_offset(BDRVQcow2State *s, uint64_t off);
int qcow2_write_l1_entry(BDRVQcow2State *s, uint32_t idx);
/* Makes sure guest offset off has a writable (refcount 1) L2 table; returns its offset. */
int64_t qcow2_get_writable_l2(BDRVQcow2State *s, uint64_t off);
/* What qcow2_zero_clusters does to each whole cluster (QEMU 7.2's rules). */
typedef enum Qcow2ZeroMode {
    QCOW2_DISCARD_FULL, /* unallocated: reads through to the backing file (make_empty,
                         * shrink, dropping vmstate) */
    QCOW2_DISCARD,      /* a discard request: host cluster freed, reads as zeroes (v3) */
    QCOW2_ZERO,         /* write-zeroes: zero flag, host cluster kept (compressed freed) */
    QCOW2_ZERO_UNMAP,   /* write-zeroes with may-unmap: zero flag, host cluster freed */
} Qcow2ZeroMode;
int qcow2_zero_clusters(BDRVQcow2State *s, uint64_t off, uint64_t n, Qcow2ZeroMode mode);
/* Extended L2: whole subclusters [off, off+len) of one cluster read as zeroes. */
int qcow2_zero_subclusters(BDRVQcow2State *s, uint64_t off, uint64_t len);
/* Adds delta to the refcount of every cluster an L2 entry references. */
int qcow2_ref_l2e(BDRVQcow2State *s, uint64_t l2e, int64_t delta);
/*
 * Compressed clusters (convert -c), in two steps so that several threads can compress
 * while one writes in order: qcow2_compress_cluster compresses the cluster at guest
 * offset off (cluster aligned) into cbuf (cluster_size bytes) without the lock and
 * returns the length, -ENOSPC when it does not shrink, or -errno;
 * qcow2_write_compressed_prepared stores that result (takes the lock).
 */
ssize_t qcow2_compress_cluster(BlockDriverState *bs, uint64_t off, const uint8_t *buf,
                               uint8_t *cbuf);
int qcow2_write_compressed_prepared(BlockDriverState *bs, uint64_t off, const uint8_t *buf,
                                    const uint8_t *cbuf, ssize_t clen);
/*
 * The one way L2 entries change: sets entry idx of the L2 table at host offset l2 to l2e
 * and, with extended L2 entries and bitmap non-NULL, its subcluster bitmap to *bitmap;
 * marks the table dirty.  Returns 0 or -errno (loading the table failed).
 */
int qcow2_set_l2e(BDRVQcow2State *s, int64_t l2, uint64_t idx, uint64_t l2e,
                  const uint64_t *bitmap);
/* Reads the L2 entry (and bitmap) for guest offset off. */
int qcow2_get_l2e(BDRVQcow2State *s, uint64_t off, uint64_t *l2e, uint64_t *bitmap);
/* What QEMU's qcow2_get_host_offset refuses in the L2 entry l2e of guest offset off (a
 * host offset inside a cluster, a compressed cluster with a data file, a zero flag in a
 * version 2 image): reported as QEMU does (qcow2_signal_corruption), -EIO; else 0.
 * Reads and block status both look, so tools fail where qemu-img fails. */
int qcow2_l2e_check(BDRVQcow2State *s, uint64_t off, uint64_t l2e);

/* qcow2-check.c: refcount/OFLAG_COPIED consistency check and repair (lock held). */
typedef struct BlockCheckResult BlockCheckResult;
int qcow2_check(BlockDriverState *bs, BlockCheckResult *res, int fix);
/* A reference check counted past its per-cluster counts: to clusters [first, end). */
typedef struct Qcow2BeyondRef {
    uint64_t first, end;
} Qcow2BeyondRef;
/* Writes a new refcount structure (blocks, table, header) from *refs, the counted
 * references of the *nb clusters, which it extends with its own clusters
 * (qcow2-rebuild.c).  beyond (of Qcow2BeyondRef, may be NULL) holds the references to
 * clusters at or past *nb: the new clusters avoid them, and those the rebuilt range
 * comes to cover get their counts.  The old table and blocks are left allocated: the
 * caller frees them.  0 or -errno. */
int qcow2_rebuild_refcounts(BDRVQcow2State *s, uint64_t **refs, uint64_t *nb,
                            const GArray *beyond);

/* Writes both metadata caches back (L2 after refcounts). */
int qcow2_flush_caches(BDRVQcow2State *s);

/* qcow2-snapshot.c */
typedef struct Qcow2Snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id_str;
    char *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size; /* the 64-bit extra-data field when present */
    uint64_t disk_size;     /* 0 when the extra data lacks it */
    uint32_t extra_len;
    uint8_t *extra;
} Qcow2Snapshot;
/* Parses one table entry from buf; *used is its padded length. */
bool qcow2_snapshot_parse(const uint8_t *buf, size_t len, Qcow2Snapshot *sn, size_t *used);
void qcow2_snapshot_clear(Qcow2Snapshot *sn);
/* Reads the whole snapshot table into a GArray of Qcow2Snapshot (always set). */
int qcow2_read_snapshots(BDRVQcow2State *s, GArray **out);
void qcow2_snapshots_free(GArray *a);
/* Bytes the entries of a (of Qcow2Snapshot) take in the snapshot table. */
uint64_t qcow2_snapshot_table_len(const GArray *a);
typedef struct BlockSnapshotInfo BlockSnapshotInfo;
bool qcow2_snapshot_create(BlockDriverState *bs, BlockSnapshotInfo *sn, Error **errp);
bool qcow2_snapshot_goto(BlockDriverState *bs, const char *id_or_name, Error **errp);
bool qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name,
                             Error **errp);

/* qcow2-vmstate.c: savevm's VM state past the virtual disk (BlockDriver.save_vmstate). */
/* Guest offset where the area starts: the first L1 entry the disk does not use. */
uint64_t qcow2_vm_state_offset(const BDRVQcow2State *s);
uint64_t qcow2_vm_state_offset_for(const BDRVQcow2State *s, uint64_t disk_size);
int qcow2_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes);
int qcow2_load_vmstate(BlockDriverState *bs, const char *snapshot, void *buf, int64_t pos,
                       int64_t bytes);
/* After a snapshot took the first size bytes of the area: the active image lets go of
 * them (lock held). */
int qcow2_vmstate_drop(BDRVQcow2State *s, uint64_t size);
int qcow2_drop_vmstate(BlockDriverState *bs, int64_t bytes);
/* Reads the n-entry L1 table at off into *out (host order, at least one entry; the
 * caller frees it, also on error). */
int qcow2_read_l1(BDRVQcow2State *s, uint64_t off, uint32_t n, uint64_t **out);
bool qcow2_snapshot_delete(BlockDriverState *bs, const char *id_or_name, Error **errp);
GPtrArray *qcow2_snapshot_list(BlockDriverState *bs, Error **errp);

/*
 * qcow2-overlap.c: metadata-overlap protection, QEMU's overlap-check.  Metadata types in
 * QEMU's order (QCOW2_OL_*), the modes as masks, and the index of metadata clusters.
 */
enum {
    QCOW2_OL_MAIN_HEADER = 1u << 0,
    QCOW2_OL_ACTIVE_L1 = 1u << 1,
    QCOW2_OL_ACTIVE_L2 = 1u << 2,
    QCOW2_OL_REFCOUNT_TABLE = 1u << 3,
    QCOW2_OL_REFCOUNT_BLOCK = 1u << 4,
    QCOW2_OL_SNAPSHOT_TABLE = 1u << 5,
    QCOW2_OL_INACTIVE_L1 = 1u << 6,
    QCOW2_OL_INACTIVE_L2 = 1u << 7,
    QCOW2_OL_BITMAP_DIRECTORY = 1u << 8,
    QCOW2_OL_NB = 9,
    QCOW2_OL_CONSTANT = QCOW2_OL_MAIN_HEADER | QCOW2_OL_ACTIVE_L1 | QCOW2_OL_REFCOUNT_TABLE |
                        QCOW2_OL_SNAPSHOT_TABLE,
    QCOW2_OL_CACHED = QCOW2_OL_CONSTANT | QCOW2_OL_ACTIVE_L2 | QCOW2_OL_REFCOUNT_BLOCK |
                      QCOW2_OL_INACTIVE_L1 | QCOW2_OL_BITMAP_DIRECTORY,
    QCOW2_OL_ALL = QCOW2_OL_CACHED | QCOW2_OL_INACTIVE_L2,
};
/* Sorted, disjoint ranges of clusters, each with the QCOW2_OL_* types it holds. */
typedef struct Qcow2OlEntry Qcow2OlEntry;
typedef struct Qcow2OlIndex {
    Qcow2OlEntry *e;
    size_t n, cap;
} Qcow2OlIndex;
/* Adds type to clusters [first, first+n) / takes it away (O(ranges) insert, O(log n)
 * find). */
void qcow2_ol_index_add(Qcow2OlIndex *idx, uint64_t first, uint64_t n, unsigned type);
void qcow2_ol_index_remove(Qcow2OlIndex *idx, uint64_t first, uint64_t n, unsigned type);
/* The types & mask of the first cluster in [first, first+n) holding any, or 0. */
unsigned qcow2_ol_index_query(const Qcow2OlIndex *idx, uint64_t first, uint64_t n,
                              unsigned mask);
void qcow2_ol_index_clear(Qcow2OlIndex *idx);
struct Qcow2Overlap {
    Qcow2OlIndex active;       /* header, active L1/L2, refcount table/blocks */
    Qcow2OlIndex snap;         /* snapshot table, snapshot L1/L2, bitmap directory */
    bool active_stale, snap_stale;
    uint64_t active_key[4];    /* header fields the active part was built from */
    uint64_t snap_key[2];
};
/* overlap-check=none|constant|cached|all (or .template) and overlap-check.<type>=bool
 * into a QCOW2_OL_* mask (default cached); what names the node in errors. */
typedef struct Keyval Keyval;
bool qcow2_overlap_parse_opts(Keyval *opts, const char *what, unsigned *mask, Error **errp);
void qcow2_overlap_init(BDRVQcow2State *s, unsigned mask);
void qcow2_overlap_free(BDRVQcow2State *s);
/* Before writing [off, off+len) of the image file (lock held): 0, or -EIO after marking
 * the image corrupt when it would overwrite metadata of a type not in ignore. */
int qcow2_overlap_check(BDRVQcow2State *s, unsigned ignore, uint64_t off, uint64_t len);
/* The same for guest data (also COW and compressed runs): nothing to check when data
 * lives in an external data file. */
int qcow2_overlap_check_data(BDRVQcow2State *s, uint64_t off, uint64_t len);
/* Metadata of type written at off (checked against every other type first). */
int qcow2_meta_pwrite(BDRVQcow2State *s, unsigned type, uint64_t off, uint64_t len,
                      const void *buf, bool sync);
/* One 8-byte entry of an L1 (type ACTIVE_L1) or refcount table (REFCOUNT_TABLE) at off,
 * pointing at the cluster target (0: none) of target_type, which joins the index. */
int qcow2_meta_write_entry(BDRVQcow2State *s, unsigned type, uint64_t off, uint64_t entry,
                           unsigned target_type, uint64_t target);
/* Keeping the index current: a new L2 table / refcount block got its table entry; any
 * metadata may have moved; clusters [first, first+n) lost a reference. */
void qcow2_overlap_note_new(BDRVQcow2State *s, unsigned type, uint64_t off, uint64_t len);
void qcow2_overlap_invalidate(BDRVQcow2State *s);
void qcow2_overlap_note_free(BDRVQcow2State *s, uint64_t first, uint64_t n);

/*
 * qcow2-corrupt.c: corruption found at run time, as QEMU's qcow2_signal_corruption: the
 * message on stderr and the BLOCK_IMAGE_CORRUPTED report (bdrv_report_corruption) once
 * per open image, except that a fatal one still follows non-fatal ones.  fatal (only on a
 * writable image) sets the corrupt bit (version 3) and makes the image read-only.  offset
 * and size: the host access that found it, -1 for none.  Lock held.
 */
void qcow2_signal_corruption(BDRVQcow2State *s, bool fatal, int64_t offset, int64_t size,
                             const char *fmt, ...) G_GNUC_PRINTF(5, 6);
/* After a check repaired everything it found (qcow2_check with fix): clears the corrupt
 * bit (after flushing the repairs), as QEMU's check does; 0 or -errno.  Lock held. */
int qcow2_mark_consistent(BDRVQcow2State *s);

/*
 * qcow2-bitmap.c, the driver side (lock held).  load: at open, reads and validates the
 * directory (an error fails the open, except for a check open, which then leaves the
 * bitmaps alone); a writable open takes every consistent `auto` bitmap (owned).
 * mark_in_use: writes the in_use flags of the owned enabled bitmaps before any guest
 * write.  mark_dirty: a write, write-zeroes or discard of [off, off+len).  store: at close
 * or hand-over, writes every change back (owned bitmaps without in_use, added ones; a
 * removed one left the image at once) and gives the bitmaps up.  can_resize / resize: a resize keeps them covering the
 * disk.
 */
G_GNUC_WARN_UNUSED_RESULT
bool qcow2_bitmaps_load(BDRVQcow2State *s, int flags, Error **errp);
int qcow2_bitmaps_mark_in_use(BDRVQcow2State *s);
void qcow2_bitmaps_mark_dirty(BDRVQcow2State *s, uint64_t off, uint64_t len);
int qcow2_bitmaps_store(BDRVQcow2State *s);
G_GNUC_WARN_UNUSED_RESULT
bool qcow2_bitmaps_can_resize(BDRVQcow2State *s, uint64_t new_size, Error **errp);
void qcow2_bitmaps_resize(BDRVQcow2State *s, uint64_t disk_size);
void qcow2_bitmaps_free(BDRVQcow2State *s);
/* BlockDriver.bitmap_op and .bitmap_list (QMP block-dirty-bitmap-*, sen-img bitmap). */
typedef struct BlockBitmapReq BlockBitmapReq;
bool qcow2_bitmap_op(BlockDriverState *bs, const BlockBitmapReq *req, Error **errp);
GPtrArray *qcow2_bitmap_list(BlockDriverState *bs);
/* format-specific "bitmaps" of qemu-img info: the directory on disk (NULL: none). */
struct json_t *qcow2_bitmap_info(BDRVQcow2State *s);

/* qcow2-create.c */
typedef struct Keyval Keyval;
bool qcow2_create(const char *filename, Keyval *opts, Error **errp);

/* qcow2.c */
/* A backing file name as the image names it, resolved against the image's directory. */
char *qcow2_resolve_backing(const char *image, const char *backing);
/* ImageInfoSpecific of a qcow2 node (qcow2-info.c). */
struct json_t *qcow2_get_specific_info(BlockDriverState *bs);
/* The external data file node, or NULL when data lives in the image (qcow2-info.c). */
BlockDriverState *qcow2_get_data_file(BlockDriverState *bs);
/* Drops every cluster of the active image (commit): all of it reads from the backing. */
int qcow2_make_empty(BlockDriverState *bs);
/* Rewrites the header with a new backing file name/format (NULL/"" backing: none). */
bool qcow2_change_backing(BlockDriverState *bs, const char *backing, const char *fmt,
                          Error **errp);
/* qcow2-prealloc.c: preallocation=off|metadata|falloc|full (create and resize). */
typedef enum Qcow2Prealloc {
    QCOW2_PREALLOC_OFF,
    QCOW2_PREALLOC_METADATA,
    QCOW2_PREALLOC_FALLOC,
    QCOW2_PREALLOC_FULL,
} Qcow2Prealloc;
/* NULL is off; anything but the four names fails with qemu-img's message. */
bool qcow2_prealloc_parse(const char *str, Qcow2Prealloc *mode, Error **errp);
/* Maps every unallocated cluster of guest range [from, to) to a new host cluster. */
bool qcow2_preallocate(BlockDriverState *bs, uint64_t from, uint64_t to, Qcow2Prealloc mode,
                       Error **errp);

/* Rewrites the whole header cluster from s->h, s->ext and s->backing_file (lock held). */
int qcow2_write_header(BDRVQcow2State *s);

/* qcow2-amend.c: amend compat (2 or 3; a no-op when already there) and lazy_refcounts. */
bool qcow2_amend_version(BlockDriverState *bs, int version, Error **errp);
bool qcow2_amend_lazy_refcounts(BlockDriverState *bs, bool on, Error **errp);
/*
 * amend data_file=name (a new name for the external data file; the image must have one;
 * NULL keeps it) and data_file_raw (raw 0: the data file stops promising to be a raw
 * image; 1: refused unless it already is, as qemu-img; -1 unchanged).
 */
bool qcow2_amend_data_file(BlockDriverState *bs, const char *name, int raw, Error **errp);
/* The image's version (2 or 3). */
int qcow2_image_version(BlockDriverState *bs);
/* qcow2-refwidth.c: rewrites the refcounts with bits (a power of two, 1..64) per entry. */
bool qcow2_amend_refcount_bits(BlockDriverState *bs, unsigned bits, Error **errp);

#endif
