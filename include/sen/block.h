/*
 * The block layer: driver vtable, node graph and the BlockBackend devices use.
 *
 * A node (BlockDriverState) is one driver instance.  Format drivers (raw, qcow2) stack on a
 * protocol node in their `file` child (file-posix); a backing chain is nodes linked through
 * `backing`.  Drivers are plain BlockDriver tables listed in block/drivers.c.
 *
 * I/O model (no coroutines):
 * - Every driver implements synchronous, thread-safe preadv/pwritev/... that may block.
 *   Format drivers do their metadata I/O synchronously on their children with bdrv_pread()
 *   and friends and serialise metadata updates with their own lock.
 * - Asynchronous requests (blk_aio_*) go to the driver's aio_submit when it has one
 *   (file-posix with aio=native uses libaio; raw forwards to its child); otherwise they run
 *   the synchronous op on a small worker pool (aio=threads).  Either way the completion
 *   callback runs in the GMainContext of the node (the main loop unless a device moved the
 *   backend to an I/O thread with blk_set_context()).
 * - Errors on the I/O path are negative errno; open/create/options use Error **errp.
 */
#ifndef SEN_BLOCK_H
#define SEN_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>
#include <glib.h>
#include "sen/error.h"
#include "sen/keyval.h"

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;
typedef struct BlockBitmapReq BlockBitmapReq;
typedef struct BlockBackend BlockBackend;
typedef struct BlockRequest BlockRequest;
typedef struct Machine Machine;
struct json_t; /* jansson */

#define BDRV_SECTOR_SIZE 512

/* Open flags (bdrv_open, BlockDriverState.open_flags). */
#define BDRV_O_RDWR        0x0001 /* writable; absent = read-only */
#define BDRV_O_NOCACHE     0x0002 /* cache.direct=on: O_DIRECT on the protocol node */
#define BDRV_O_NO_FLUSH    0x0004 /* cache.no-flush=on (cache=unsafe): flush is a no-op */
#define BDRV_O_NATIVE_AIO  0x0008 /* aio=native: libaio (requires BDRV_O_NOCACHE) */
#define BDRV_O_UNMAP       0x0010 /* discard=unmap: discards reach the host file */
#define BDRV_O_NO_BACKING  0x0020 /* do not open the backing file (qemu-img -u style) */
#define BDRV_O_CHECK       0x0040 /* opened for check/repair: tolerate a dirty/corrupt image */
#define BDRV_O_NO_IO       0x0080 /* metadata only (info): a data child that cannot be
                                   * opened is no error; data I/O then fails with -EIO */
#define BDRV_O_INACTIVE    0x0100 /* another process owns the image (live migration): no
                                   * write of any kind, metadata included, until
                                   * bdrv_activate re-reads it (docs/migration.md) */
#define BDRV_O_FORCE_SHARE 0x0200 /* force-share=on (qemu-img -U): read-only, and other
                                   * processes may write the image meanwhile */
#define BDRV_O_AUTO_RDONLY 0x0400 /* auto-read-only=on: a read-write open the host refuses
                                   * (EACCES, EPERM, EROFS) opens read-only instead */

/*
 * Permissions a node's users take and the ones they leave to other users (QEMU's
 * BLK_PERM_*, the same bits: the file driver turns them into image locks that QEMU
 * processes see, docs/image-locking.md).
 */
#define BLK_PERM_CONSISTENT_READ 0x01 /* reads see what was written */
#define BLK_PERM_WRITE           0x02 /* writes that change what readers see */
#define BLK_PERM_WRITE_UNCHANGED 0x04 /* writes of data that is already there */
#define BLK_PERM_RESIZE          0x08
#define BLK_PERM_ALL             0x0f

/* Request flags (pwritev, pwrite_zeroes). */
#define BDRV_REQ_FUA        0x0001 /* data reaches stable storage before completion */
#define BDRV_REQ_MAY_UNMAP  0x0002 /* write_zeroes may deallocate the range */
#define BDRV_REQ_NO_FALLBACK 0x0004 /* write_zeroes: fail with -ENOTSUP rather than write */

/* block_status() result bits, as QEMU's BDRV_BLOCK_*. */
#define BDRV_BLOCK_DATA         0x01 /* reads come from this node or below */
#define BDRV_BLOCK_ZERO         0x02 /* reads as zeroes */
#define BDRV_BLOCK_OFFSET_VALID 0x04 /* *map is the offset in *file */
#define BDRV_BLOCK_ALLOCATED    0x10 /* allocated in this layer (not from backing) */

typedef enum BlockDetectZeroes {
    BLOCK_DETECT_ZEROES_OFF,
    BLOCK_DETECT_ZEROES_ON,    /* all-zero writes become write_zeroes */
    BLOCK_DETECT_ZEROES_UNMAP, /* ... with MAY_UNMAP when discard=unmap */
} BlockDetectZeroes;

typedef enum BlockCheckFix {
    BDRV_FIX_NONE = 0,
    BDRV_FIX_LEAKS = 1,  /* check -r leaks */
    BDRV_FIX_ERRORS = 2, /* check -r all (with LEAKS) */
} BlockCheckFix;

/* qemu-img check's counters. */
typedef struct BlockCheckResult {
    int corruptions, leaks, check_errors;
    int corruptions_fixed, leaks_fixed;
    int64_t image_end_offset;
    int64_t total_clusters, allocated_clusters, fragmented_clusters, compressed_clusters;
} BlockCheckResult;

/* Format facts for `info` and for callers that align requests. */
typedef struct BlockDriverInfo {
    int cluster_size;       /* 0 = not cluster based */
    int64_t vm_state_offset;
    bool is_dirty;
    bool unallocated_blocks_are_zero;
} BlockDriverInfo;

/* One internal snapshot, as qemu-img snapshot -l shows it. */
typedef struct BlockSnapshotInfo {
    char *id_str;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint32_t icount;
} BlockSnapshotInfo;

void block_snapshot_info_free(BlockSnapshotInfo *sn);

/*
 * A driver.  Sizes and offsets are bytes; I/O members return 0 or -errno and must be
 * callable from several threads at once.  A member left NULL means "not supported"
 * (the generic layer returns -ENOTSUP or an error naming the format), except where noted.
 */
struct BlockDriver {
    const char *format_name;  /* "raw", "qcow2", "file" */
    bool is_protocol;         /* opened on a filename; else a format on a `file` child */
    size_t instance_size;     /* bs->opaque is zero-allocated with this size */
    /* Score 0..100 that buf (the first len <= 2048 bytes of the image) is this format;
     * NULL = never probed (protocols; raw scores 1 as the fallback). */
    int (*probe)(const uint8_t *buf, int len, const char *filename);
    /* Opens bs.  A format node's `file` child is already open; the driver opens its
     * backing itself (bdrv_open_backing).  Consumes the keys it understands from opts
     * (keyval_get*); block.c rejects what is left, naming it. */
    bool (*open)(BlockDriverState *bs, Keyval *opts, int flags, Error **errp);
    /* Flushes metadata caches and releases everything open took (not the children). */
    void (*close)(BlockDriverState *bs);
    /* Optional: bs goes to another process (bdrv_inactivate, before its flush): write
     * what only this open keeps in memory (qcow2's persistent bitmaps).  0 or -errno. */
    int (*inactivate)(BlockDriverState *bs);
    /* Optional: dirty bitmaps (bdrv_bitmap_op / bdrv_bitmap_list); NULL: the node has
     * none and cannot have any. */
    bool (*bitmap_op)(BlockDriverState *bs, const BlockBitmapReq *req, Error **errp);
    GPtrArray *(*bitmap_list)(BlockDriverState *bs);
    int (*preadv)(BlockDriverState *bs, int64_t offset, int64_t bytes,
                  const struct iovec *iov, int niov, int flags);
    int (*pwritev)(BlockDriverState *bs, int64_t offset, int64_t bytes,
                   const struct iovec *iov, int niov, int flags);
    /* Optional: start req asynchronously and return 0 (completion through
     * bdrv_request_complete in bs->ctx), or -ENOTSUP to have the worker pool run the
     * synchronous op instead. */
    int (*aio_submit)(BlockDriverState *bs, BlockRequest *req);
    /* Optional, see bdrv_io_plug: hold back the requests aio_submit starts until the
     * matching io_unplug, and start them there together. */
    void (*io_plug)(BlockDriverState *bs);
    void (*io_unplug)(BlockDriverState *bs);
    /* Writes metadata caches to the children, then flushes them (block.c flushes
     * `file` after this returns, so a driver need not). NULL: only the children. */
    int (*flush)(BlockDriverState *bs);
    int (*pdiscard)(BlockDriverState *bs, int64_t offset, int64_t bytes);
    int (*pwrite_zeroes)(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
    /* Resizes the virtual disk; shrink only when allowed.  Updates bs->total_size. */
    bool (*truncate)(BlockDriverState *bs, int64_t size, bool shrink, Error **errp);
    /* Status of [offset, offset+bytes): returns BDRV_BLOCK_* for the first *pnum bytes;
     * map and file are set when OFFSET_VALID.  NULL: everything DATA|ALLOCATED. */
    int (*block_status)(BlockDriverState *bs, int64_t offset, int64_t bytes, int64_t *pnum,
                        int64_t *map, BlockDriverState **file);
    /* Fills bdi (zeroed by the caller). */
    int (*get_info)(BlockDriverState *bs, BlockDriverInfo *bdi);
    /* QEMU's ImageInfoSpecific, {"type": format, "data": {...}} (a new reference), for
     * `sen-img info` and QMP; NULL: the format has none. */
    struct json_t *(*get_specific_info)(BlockDriverState *bs);
    /* The node's external data file child (qcow2 data-file), not its file or backing,
     * so that query-named-block-nodes lists it; NULL or returning NULL: none. */
    BlockDriverState *(*get_data_file)(BlockDriverState *bs);
    /* Consistency check, repairing what fix asks for. */
    int (*check)(BlockDriverState *bs, BlockCheckResult *res, BlockCheckFix fix);
    /* Creates an image at filename from create options ("size", "cluster_size", ...;
     * the driver consumes what it knows). */
    bool (*create)(const char *filename, Keyval *opts, Error **errp);
    /* Internal snapshots: create (sn->id_str may be NULL: the driver picks one), apply,
     * delete by id or name, and list (returns a GPtrArray of BlockSnapshotInfo*). */
    bool (*snapshot_create)(BlockDriverState *bs, BlockSnapshotInfo *sn, Error **errp);
    bool (*snapshot_goto)(BlockDriverState *bs, const char *id_or_name, Error **errp);
    bool (*snapshot_delete)(BlockDriverState *bs, const char *id_or_name, Error **errp);
    /* Optional: a read-only node reads the snapshot with this id and/or name (NULL for
     * either, not both; with both it must have both) until closed, nothing written:
     * qemu-img's convert/measure -l.  Fails with "Can't find snapshot" as QEMU's. */
    bool (*snapshot_load_tmp)(BlockDriverState *bs, const char *id, const char *name,
                              Error **errp);
    GPtrArray *(*snapshot_list)(BlockDriverState *bs, Error **errp);
    /* The VM state of savevm (QEMU's "vmstate" area, stored beside the disk data and
     * captured by the next snapshot_create): bytes at pos of that area, pos 0 being its
     * start; load reads the active image's area (snapshot NULL) or that of the snapshot
     * with this id or name, without applying it.  Both NULL when the format cannot
     * hold VM state. */
    int (*save_vmstate)(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes);
    int (*load_vmstate)(BlockDriverState *bs, const char *snapshot, void *buf, int64_t pos,
                        int64_t bytes);
    /* Frees the first bytes of the active image's vm-state area: a savevm that failed
     * before snapshot_create took the state must not leave it to the next snapshot. */
    int (*drop_vmstate)(BlockDriverState *bs, int64_t bytes);
    /* Optional (protocol drivers): the node's users together now take perm and share
     * shared with others (BLK_PERM_*); file-posix locks the image accordingly.  Fails,
     * holding what it held before, when another process conflicts. */
    bool (*set_perm)(BlockDriverState *bs, uint64_t perm, uint64_t shared, Error **errp);
    /* Optional (protocol drivers): switches the open node to flags' read-only or
     * read-write mode in place, its image locks held throughout (file-posix opens the
     * new fd and locks it before closing the old one, as QEMU's reopen does).  Fails
     * leaving the node as it was.  NULL: block.c closes and re-opens the driver. */
    bool (*reopen)(BlockDriverState *bs, int flags, Error **errp);
};

/* Dirty bitmaps (QEMU's block-dirty-bitmap-* and qemu-img bitmap): one action. */
typedef enum BlockBitmapAction {
    BLOCK_BITMAP_ADD,     /* granularity (0: the default), persistent, disabled */
    BLOCK_BITMAP_REMOVE,
    BLOCK_BITMAP_CLEAR,
    BLOCK_BITMAP_ENABLE,
    BLOCK_BITMAP_DISABLE,
    BLOCK_BITMAP_MERGE,   /* src_bs's bitmap src_name into name */
} BlockBitmapAction;
struct BlockBitmapReq {
    BlockBitmapAction action;
    const char *name;
    uint32_t granularity;
    bool persistent;
    bool disabled;
    BlockDriverState *src_bs;
    const char *src_name;
};
/* One bitmap as QMP's BlockDirtyInfo shows it. */
typedef struct BlockBitmapInfo {
    char *name;
    uint32_t granularity;
    uint64_t count;       /* dirty bytes */
    bool recording, persistent, inconsistent, busy;
} BlockBitmapInfo;
void block_bitmap_info_free(gpointer p);
/* NULL action errors name the bitmap; the messages are QEMU's. */
bool bdrv_bitmap_op(BlockDriverState *bs, const BlockBitmapReq *req,
                    Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The node's bitmaps (of BlockBitmapInfo*, never NULL). */
GPtrArray *bdrv_bitmap_list(BlockDriverState *bs);

/* A node of the graph.  Fields are set by block.c; drivers read them. */
struct BlockDriverState {
    const BlockDriver *drv;
    void *opaque;               /* driver state, instance_size bytes */
    BlockDriverState *file;     /* protocol child of a format node, or NULL */
    BlockDriverState *backing;  /* backing image node, or NULL */
    char *node_name;            /* node-name= or generated ("#block123") */
    char *filename;             /* what the node was opened on */
    int open_flags;             /* BDRV_O_* */
    bool read_only;
    bool probed;                /* format was probed, not given: raw refuses sector-0
                                 * writes that would probe as another format */
    int64_t total_size;         /* virtual size in bytes */
    unsigned request_alignment; /* 1, or the O_DIRECT alignment of a protocol node */
    BlockDetectZeroes detect_zeroes;
    GMainContext *ctx;          /* where async completions run (never NULL once open) */
    int refcnt;
    /* The driver's non-persistent dirty bitmaps while it is closed to be opened again
     * (a reopen, the activation after a failed migration): QEMU keeps them.  Of the
     * driver's own type; the array's free function frees them with the node. */
    GPtrArray *kept_bitmaps;
};

/* An asynchronous request, owned by the layer that submitted it. */
typedef enum BlockRequestType {
    BLOCK_REQ_READ,
    BLOCK_REQ_WRITE,
    BLOCK_REQ_FLUSH,
    BLOCK_REQ_DISCARD,
    BLOCK_REQ_WRITE_ZEROES,
} BlockRequestType;

struct BlockRequest {
    BlockRequestType type;
    int64_t offset, bytes;
    const struct iovec *iov;    /* READ/WRITE; valid until completion */
    int niov;
    int flags;                  /* BDRV_REQ_* */
    /* Called once, in the node's context thread, with 0 or -errno. */
    void (*complete)(BlockRequest *req, int ret);
    void *opaque;
    void *driver_priv;          /* scratch for the driver that handles it */
};

/* A Keyval built by code rather than parsed (option sets for bdrv_open, -blockdev JSON). */
Keyval *block_keyval_new(void);
void block_keyval_add(Keyval *kv, const char *key, const char *value);
Keyval *block_keyval_copy(const Keyval *kv);

/*
 * Node options as a JSON object (block/block-json.c), flattened to dotted keys
 * ({"file": {"driver": "file", "filename": "x"}} -> file.driver=file,file.filename=x;
 * booleans become on/off).  Used by -blockdev's JSON form, by "json:{...}" file names and
 * by blockdev-add; errors start with what (NULL: nothing, as QMP errors).  `backing` must
 * be an object, a string or null (QEMU's BlockdevRefOrNull).
 */
Keyval *block_keyval_from_json(const char *json, const char *what, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* QEMU's pseudo-protocol: "json:{...}" wherever a file name goes (bdrv_open, backing
 * file names in images).  Returns the JSON text after the prefix, or NULL. */
#define BLOCK_JSON_PREFIX "json:"
const char *block_json_filename_body(const char *filename);
/* What QEMU's QAPI visitor refuses in -blockdev and blockdev-add options before a driver
 * sees them, in its words ("Parameter 'overlap-check' does not accept value 'x'");
 * -drive and image options go to the driver, which words its errors as QEMU's do. */
bool block_blockdev_check_qapi(const Keyval *kv, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* Driver registry (block/drivers.c). */
const BlockDriver *bdrv_find_format(const char *name);
/* "Supported formats: raw file ..." for error messages and help. */
char *bdrv_format_list(void);

/* What holds a name in the one name space -drive ids and node names share (QEMU's). */
typedef enum BlockNameHolder {
    BLOCK_NAME_FREE,   /* nothing */
    BLOCK_NAME_NODE,   /* a node (-blockdev, blockdev-add, node-name=, child options) */
    BLOCK_NAME_DRIVE,  /* a -drive id, the name of its backend */
} BlockNameHolder;
/* Whether a new `want` may take name, which `held` holds (the caller looks that up in
 * what it knows: drive configs before start-up, open backends and nodes after).  Fails
 * with QEMU's message for the clash, e.g. "Duplicate nodes with node-name='x'" or
 * "node-name=x is conflicting with a device id" (block/block-names.c). */
bool block_name_claim(const char *name, BlockNameHolder want, BlockNameHolder held,
                      Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* Node names are unique among the open nodes of the process, as in QEMU: opening a node
 * under a name in use fails with "Duplicate nodes with node-name='x'". */
bool bdrv_node_name_in_use(const char *name);
/* The open node named name, or NULL.  Not referenced: only for the thread that changes
 * the machine's graph (the main loop), under which no other thread frees a node. */
BlockDriverState *bdrv_find_node(const char *name);
/*
 * After a fatal corruption QEMU makes the node unusable (bs->drv = NULL); bdrv_eject does
 * the same, for good: every later request on bs fails with -ENOMEDIUM ("No medium
 * found"), flushes succeed doing nothing, a device finds no medium (its requests fail
 * before reaching the node, without BLOCK_IO_ERROR), query-block shows the drive without
 * "inserted" and query-named-block-nodes fails with "Block device NODE is ejected".  The
 * driver stays open (a request may be inside it) and closes with the node.  Any thread.
 * bdrv_is_ejected: bs itself; bdrv_is_inserted: neither bs nor a node below it (QEMU's).
 */
void bdrv_eject(BlockDriverState *bs);
bool bdrv_is_ejected(BlockDriverState *bs);
bool bdrv_is_inserted(BlockDriverState *bs);
/*
 * Corruption a format driver found at run time (QEMU's BLOCK_IMAGE_CORRUPTED): the node,
 * a message for humans, the host offset and size of the access that found it (-1 when
 * none did), and whether the image is now marked corrupt; reported to the event sink
 * below (block/block-events.c).
 */
typedef struct BlockCorruption {
    const char *node_name;
    const char *msg;
    int64_t offset, size;
    bool fatal;
} BlockCorruption;
void bdrv_report_corruption(const BlockCorruption *c);

/*
 * What a device does when a guest request fails (QEMU's BlockdevOnError): the drive's
 * -drive werror= / rerror= (defaults enospc / report), which a device's own werror /
 * rerror properties override unless they are auto.
 */
typedef enum BlockdevOnError {
    BLOCKDEV_ON_ERROR_REPORT,  /* the guest gets an I/O error */
    BLOCKDEV_ON_ERROR_IGNORE,  /* the guest is told it worked */
    BLOCKDEV_ON_ERROR_ENOSPC,  /* stop on ENOSPC, report anything else */
    BLOCKDEV_ON_ERROR_STOP,    /* the VM stops; the request is retried when it runs again */
    BLOCKDEV_ON_ERROR_AUTO,    /* a device's property: whatever the drive says */
    BLOCKDEV_ON_ERROR__MAX,
} BlockdevOnError;

/* What was done about one failed request (QMP BlockErrorAction, BLOCK_IO_ERROR's action). */
typedef enum BlockErrorAction {
    BLOCK_ERROR_ACTION_IGNORE,
    BLOCK_ERROR_ACTION_REPORT,
    BLOCK_ERROR_ACTION_STOP,
} BlockErrorAction;

/* A device's error state as query-block shows it (QMP BlockDeviceIoStatus "io-status"):
 * set by the first request that stopped the VM, cleared by cont. */
typedef enum BlockIoStatus {
    BLOCK_IO_STATUS_OK,
    BLOCK_IO_STATUS_FAILED,
    BLOCK_IO_STATUS_NOSPACE,
} BlockIoStatus;

/* "report" ... "auto" <-> BlockdevOnError; false for any other name. */
bool blockdev_on_error_parse(const char *name, BlockdevOnError *out)
    G_GNUC_WARN_UNUSED_RESULT;
const char *blockdev_on_error_name(BlockdevOnError on_err);
const char *block_error_action_name(BlockErrorAction action);
const char *block_io_status_name(BlockIoStatus st);
/* The action for a request that failed with (positive) errno error under on_err, which
 * is never auto here (a device resolved it to the drive's). */
BlockErrorAction block_error_action_decide(BlockdevOnError on_err, int error);

/*
 * A guest request failed and the device acted (QEMU's BLOCK_IO_ERROR): device and node
 * as the event names them, whether it was a read, the action, whether the device keeps
 * an io-status (the event has "nospace" only then), and the (positive) errno.
 */
typedef struct BlockIoError {
    const char *device;
    const char *node_name;
    bool is_read;
    BlockErrorAction action;
    bool has_nospace;
    int error;
} BlockIoError;

/*
 * Where the block layer's run-time reports go.  The VMM installs one sink that turns them
 * into QMP events and, for an I/O error with action stop, stops the VM after the event
 * (monitor/qmp-block-events.c); without one (sen-img) the driver's message on stderr is
 * all.  The reports may come from any thread; a member gets the report before
 * bdrv_report_* returns and copies what it keeps.  The sink is called by one thread at
 * a time; a report made from inside the sink (its QMP emit or a VM stop ran something
 * that reported more) reaches it right after the report in progress, before the
 * outermost bdrv_report_* returns, never nested: reports keep their order.
 * bdrv_set_event_sink may be called from inside the sink; once it returns, the sink it
 * replaced is not called again.
 */
typedef struct BlockEventSink {
    /* A format driver found its image corrupt (BLOCK_IMAGE_CORRUPTED). */
    void (*corruption)(void *opaque, const BlockCorruption *c);
    /* A device's guest request failed; the action is decided (BLOCK_IO_ERROR). */
    void (*io_error)(void *opaque, const BlockIoError *e);
} BlockEventSink;
/* sink NULL: none. */
void bdrv_set_event_sink(const BlockEventSink *sink, void *opaque);
void bdrv_report_io_error(const BlockIoError *e);

/* Sorts nodes (BlockDriverState*) newest first, the order QEMU lists named nodes in. */
void bdrv_sort_newest_first(GPtrArray *nodes);

/*
 * Opens a node.  filename may be NULL when options carry "filename" or a "file" child
 * ("file.filename=x", "file.driver=file" ...).  format NULL (and no "driver" in options)
 * probes the image.  Recognised option keys: driver, node-name, read-only, cache.direct,
 * cache.no-flush, aio, discard, detect-zeroes, file / file.*, backing / backing.*, and the
 * driver's own.  options is consumed (may be NULL).  Errors name filename.
 */
BlockDriverState *bdrv_open(const char *filename, Keyval *options, const char *format,
                            int flags, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Opens filename (format NULL: probe) as bs->backing with bs's cache flags, read-only. */
bool bdrv_open_backing(BlockDriverState *bs, const char *filename, const char *format,
                       Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* For a format driver's open: QEMU's `backing` option (a node name, a nested node
 * description opened read-only, or null, "" in the dotted form, for none) becomes
 * bs->backing.  *given says whether the option was there: then the image's own backing
 * file name is not opened. */
bool bdrv_open_backing_option(BlockDriverState *bs, Keyval *opts, bool *given,
                              Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void bdrv_ref(BlockDriverState *bs);
/*
 * A user of bs outside the graph (holder: a BlockBackend, a tool) takes perm and shares
 * shared (BLK_PERM_*), replacing its earlier claim; bs passes what it needs on to its
 * children, down to the image locks of the file nodes (block/block-perm.c).  Nodes
 * claim their children themselves.  Fails with QEMU's lock messages ("Failed to get
 * \"write\" lock"), the earlier claim kept, when another process conflicts.
 */
bool bdrv_perm_claim(BlockDriverState *bs, const void *holder, uint64_t perm,
                     uint64_t shared, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Drops holder's claim on bs (no-op without one). */
void bdrv_perm_release(BlockDriverState *bs, const void *holder);
/* Drops a reference; the last one closes the node and unrefs its children. */
void bdrv_unref(BlockDriverState *bs);
/* Creates an image with format's create (e.g. sen-img create). */
bool bdrv_create(const char *format, const char *filename, Keyval *opts, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/*
 * Synchronous I/O on a node, for format drivers on their children and for tools.  Ranges
 * are checked against the node's size for preadv/pwritev (reads past the end of a
 * protocol node read zeroes; a write past the end of a protocol node grows the file).
 * Return 0 or -errno.
 */
int bdrv_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                const struct iovec *iov, int niov, int flags);
int bdrv_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                 const struct iovec *iov, int niov, int flags);
int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf);
int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf);
/* pwrite then flush (for metadata that must be stable before the next step). */
int bdrv_pwrite_sync(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf);
int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
/* Flushes this node, then its file child (and never the backing, which is read-only). */
int bdrv_flush(BlockDriverState *bs);
/* Live-migration hand-over (QEMU's inactivate / invalidate_cache): bdrv_inactivate
 * flushes bs and its children and then refuses every write; bdrv_activate drops what
 * the driver cached and opens it again from the image, writable.  Both are no-ops in
 * the state asked for.  Main thread, no requests in flight. */
bool bdrv_inactivate(BlockDriverState *bs, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool bdrv_activate(BlockDriverState *bs, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Makes a read-only node and the nodes holding its data writable, each driver opened
 * again read-write and its image locks upgraded (qemu-img commit's reopen of the base:
 * a second open of the same image would conflict with its own locks).  The image locks
 * stay held throughout: a file node's new fd is locked before its old one closes.  A
 * refusal leaves bs and the children it had made writable read-only again, readable and
 * locked as before.  Main thread, no requests in flight. */
bool bdrv_reopen_rw(BlockDriverState *bs, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool bdrv_truncate(BlockDriverState *bs, int64_t size, bool shrink, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Virtual size in bytes, or -errno. */
int64_t bdrv_getlength(BlockDriverState *bs);
/* The virtual size as QEMU reports it (qemu-img info, QMP ImageInfo): rounded up to
 * whole 512-byte sectors, so a 1001-byte raw file is 1024 bytes; or -errno. */
int64_t bdrv_get_reported_size(BlockDriverState *bs);
int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes, int64_t *pnum,
                      int64_t *map, BlockDriverState **file);
/*
 * Status of the whole backing chain (what a guest reads): the answer of the first layer
 * that allocates the range (*depth 0 = bs itself), or of the bottom layer; a range past
 * the end of a shorter backing is BDRV_BLOCK_ZERO with no offset.
 */
int bdrv_block_status_above(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockDriverState **file,
                            int *depth);
int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi);
/*
 * Images as QEMU prints them (block/image-info-text.c), for sen-img and the human
 * monitor (info block -v, info snapshots): sizes ("1.5 MiB"), the snapshot table's
 * header and one row of it, without the line end (icount < 0: none), and an ImageInfo
 * JSON object (sen-img info's, or QMP's) as `qemu-img info` shows it.
 */
char *block_size_to_str(uint64_t val);
#define BLOCK_SNAPSHOT_HEADER \
    "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT"
char *block_snapshot_row(const char *id, const char *name, uint64_t vm_size,
                         uint32_t date_sec, uint64_t clock_ns, int64_t icount);
void block_image_info_print(FILE *f, struct json_t *info);
/* QEMU's ImageInfo of bs alone (block/image-info.c): qemu-img info --output=json's object,
 * without backing-image; a new reference. */
struct json_t *bdrv_query_image_info(BlockDriverState *bs);
/* A name from the host or an image (file, snapshot, data file) as a JSON string, a new
 * reference: JSON wants UTF-8, so bad bytes become U+FFFD, as QEMU's JSON writer does
 * (jansson's json_string() would return NULL and the member would vanish). */
struct json_t *block_json_host_string(const char *text);
/* The format's ImageInfoSpecific (a new jansson reference), or NULL when it has none. */
struct json_t *bdrv_get_specific_info(BlockDriverState *bs);
/* bs's external data file child, or NULL. */
BlockDriverState *bdrv_get_data_file(BlockDriverState *bs);
/* Space the image takes on the host (st_blocks of the protocol file), or -errno. */
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);

/*
 * savevm's VM state (block/snapshot.c).  bdrv_can_snapshot: the node is writable and its
 * format has internal snapshots and a vm-state area.  save/load: bytes at pos of that
 * area (0 or -errno; -ENOTSUP when the format has none, -ENOENT for an unknown
 * snapshot).  The state written since the last snapshot_create belongs to the next one;
 * load reads it from snapshot (id or name) directly, or with snapshot NULL from the
 * active image (after snapshot_goto).
 */
bool bdrv_can_snapshot(BlockDriverState *bs);
int bdrv_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes);
int bdrv_load_vmstate(BlockDriverState *bs, const char *snapshot, void *buf, int64_t pos,
                      int64_t bytes);
/* Frees what a failed savevm wrote to the active image's area (0 or -errno). */
int bdrv_drop_vmstate(BlockDriverState *bs, int64_t bytes);

/* Async submission on a node (used by BlockBackend and by raw to forward to its file). */
void bdrv_aio_submit(BlockDriverState *bs, BlockRequest *req);
/*
 * For the calling thread only (default off): async requests it submits to a node with
 * none in flight run on this thread before bdrv_aio_submit returns, instead of waking a
 * worker (completions still come later from the node's context).  At queue depth 1 that
 * saves two thread wake-ups per request.  Only for a thread that serves nothing but these
 * requests (sen-img): a VMM loop would stall its devices and monitor during the I/O.
 */
void bdrv_set_inline_when_idle(bool on);
/* A driver's aio_submit finishes req with this, in bs->ctx's thread. */
void bdrv_request_complete(BlockRequest *req, int ret);
/*
 * Between bdrv_io_plug and bdrv_io_unplug (they nest, and may come from several threads)
 * the asynchronous requests a driver starts itself (aio=native) are held back and go to
 * the kernel together at the last unplug: one io_submit for a batch, which the kernel
 * plugs as one, so adjacent requests merge before they reach the disk (QEMU's
 * blk_io_plug).  Requests the worker pool runs are not held.  Goes down the `file`
 * children.  A plugged thread must unplug before it waits for its requests.
 */
void bdrv_io_plug(BlockDriverState *bs);
void bdrv_io_unplug(BlockDriverState *bs);

/* Statistics for query-blockstats (QEMU's BlockDeviceStats names). */
typedef struct BlockAcctStats {
    uint64_t rd_bytes, wr_bytes, unmap_bytes;
    uint64_t rd_operations, wr_operations, flush_operations, unmap_operations;
    uint64_t zone_append_operations;  /* always 0: kept for the QMP shape */
    uint64_t rd_merged, wr_merged;    /* guest requests merged into another one */
    uint64_t rd_total_time_ns, wr_total_time_ns, flush_total_time_ns, unmap_total_time_ns;
    uint64_t failed_rd_operations, failed_wr_operations, failed_flush_operations,
             failed_unmap_operations;
    uint64_t invalid_rd_operations, invalid_wr_operations, invalid_flush_operations,
             invalid_unmap_operations;
    int64_t wr_highest_offset;
    int64_t last_access_ns;           /* monotonic time of the last completed request */
} BlockAcctStats;

/*
 * What a device uses.  A backend has a name (the -drive id) and a root node; it counts
 * statistics, applies detect-zeroes, emulates write-through by flushing after every write
 * when the write cache is off (cache=writethrough/directsync), and refuses writes on a
 * read-only drive with -EPERM.
 */
BlockBackend *blk_new(const char *name, BlockDriverState *root, bool write_cache);
/* Unrefs the root after in-flight requests completed (drains), giving up its claim. */
void blk_unref(BlockBackend *blk);
/*
 * What the backend's user (its guest device) takes of the image and leaves to others
 * (BLK_PERM_*, bdrv_perm_claim with the backend as holder): a device reads, writes
 * unless read-only, and shares reads, unchanged writes, resizes and, with QEMU's
 * share-rw=on, writes.  Fails with QEMU's lock errors.
 */
bool blk_set_perm(BlockBackend *blk, uint64_t perm, uint64_t shared, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Such a device's claim (QEMU's blkconf_apply_backend_options). */
bool blk_set_device_perm(BlockBackend *blk, bool share_rw, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
const char *blk_name(const BlockBackend *blk);
/* The device name QEMU's block events carry (BLOCK_IO_ERROR, BLOCK_IMAGE_CORRUPTED): the
 * -drive id, or "" for the backend a device made for a -blockdev node (which Sen names
 * after the node; a drive id can never equal its own root's node name). */
const char *blk_event_device_name(BlockBackend *blk);
BlockDriverState *blk_bs(BlockBackend *blk);
bool blk_is_read_only(const BlockBackend *blk);
bool blk_enable_write_cache(const BlockBackend *blk);
/* Virtual size in bytes or -errno. */
int64_t blk_getlength(BlockBackend *blk);
/* Whether the backend's node and those below it are usable (not ejected by a fatal
 * corruption, bdrv_eject); -ENOMEDIUM from blk_getlength when not. */
bool blk_is_inserted(BlockBackend *blk);
/* A snapshot of the counters (thread-safe). */
void blk_get_stats(BlockBackend *blk, BlockAcctStats *out);
/*
 * A device submitted n guest requests as one (QEMU's block_acct_merge): the statistics
 * count them as n operations, n - 1 of them merged.  Call it when submitting the one.
 */
void blk_account_merged(BlockBackend *blk, bool is_write, unsigned n);
/* A device refused a guest request before sending it (outside the disk, misaligned, no
 * medium): QEMU's block_acct_invalid, counted in invalid_*_operations. */
void blk_account_invalid(BlockBackend *blk, BlockRequestType type);
/* Completions from now on run in ctx (NULL = the main context).  No request in flight. */
void blk_set_context(BlockBackend *blk, GMainContext *ctx);

/*
 * Resizes the root node (bdrv_truncate), then tells the device using blk (the callback
 * set with blk_set_resize_cb, run in the caller's thread: the main thread with the VM
 * lock held for block_resize) so it can update the size the guest sees.
 */
bool blk_truncate(BlockBackend *blk, int64_t size, bool shrink, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void blk_set_resize_cb(BlockBackend *blk, void (*cb)(void *opaque), void *opaque);
/* Async requests submitted and not yet called back. */
int blk_in_flight(BlockBackend *blk);

/*
 * Guest request errors (QEMU's blk_get_error_action / blk_error_action).  A backend
 * starts with rerror=report, werror=enospc; -drive sets them, a device property that is
 * not auto replaces one (blk_set_on_error, at realize).  A device that keeps requests
 * for a retry enables the io-status (query-block then shows it).  blk_error_action sets
 * the io-status for a stop and reports the error to the event sink, which emits
 * BLOCK_IO_ERROR and then stops the VM (run state io-error).  Thread-safe.
 */
void blk_set_on_error(BlockBackend *blk, BlockdevOnError rerror, BlockdevOnError werror);
BlockdevOnError blk_get_on_error(BlockBackend *blk, bool is_read);
BlockErrorAction blk_get_error_action(BlockBackend *blk, bool is_read, int error);
void blk_error_action(BlockBackend *blk, BlockErrorAction action, bool is_read, int error);
void blk_iostatus_enable(BlockBackend *blk);
/* Enabled, and werror is enospc or stop or rerror is stop (QEMU's rule): only then does
 * query-block show "io-status" and BLOCK_IO_ERROR carry "nospace". */
bool blk_iostatus_is_enabled(BlockBackend *blk);
BlockIoStatus blk_iostatus(BlockBackend *blk);
/* The first error since the last reset sticks: FAILED, or NOSPACE for ENOSPC. */
void blk_iostatus_set_err(BlockBackend *blk, int error);
void blk_iostatus_reset(BlockBackend *blk);

/* Synchronous (tools, tests, device set-up); 0 or -errno. */
int blk_preadv(BlockBackend *blk, int64_t offset, int64_t bytes, const struct iovec *iov,
               int niov, int flags);
int blk_pwritev(BlockBackend *blk, int64_t offset, int64_t bytes, const struct iovec *iov,
                int niov, int flags);
int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf);
int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes, const void *buf);
int blk_flush(BlockBackend *blk);
int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes);
int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes, int flags);

/*
 * Asynchronous: cb(opaque, 0 or -errno) runs later in the backend's context, never from
 * inside the call.  iov must stay valid until cb.  Out-of-range requests complete with
 * -EIO (counted as invalid).
 */
typedef void BlockCompletionFunc(void *opaque, int ret);
void blk_aio_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int niov,
                    int flags, BlockCompletionFunc *cb, void *opaque);
void blk_aio_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int niov,
                     int flags, BlockCompletionFunc *cb, void *opaque);
void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque);
/* bdrv_io_plug/unplug on the backend's root: around a burst of blk_aio_* calls. */
void blk_io_plug(BlockBackend *blk);
void blk_io_unplug(BlockBackend *blk);
void blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BlockCompletionFunc *cb, void *opaque);
void blk_aio_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes, int flags,
                           BlockCompletionFunc *cb, void *opaque);
/* Runs the backend's context until no request of blk is in flight, or, when an I/O
 * thread runs it, waits for that thread to complete them. */
void blk_drain(BlockBackend *blk);

/*
 * Machine integration.  block_init_drives opens every -drive/-blockdev of m->cfg (after
 * the chardevs, before the devices); the drives live in m->block.  block_find_backend
 * looks up an -drive id (or a -blockdev node-name, wrapped in a backend on first use) for
 * a device's drive= property.  block_cleanup drains and closes everything.
 */
bool block_init_drives(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
BlockBackend *block_find_backend(Machine *m, const char *id);
/* Every backend of m in creation order (for query-block/query-blockstats). */
GPtrArray *block_backends(Machine *m);
/* The -blockdev nodes of m in command-line order, used by a device or not. */
GPtrArray *block_blockdev_nodes(Machine *m);
void block_cleanup(Machine *m);
/*
 * QMP blockdev-add / blockdev-del: a node opened from opts as -blockdev opens one (owned
 * by the monitor, like the -blockdev nodes), and the removal of such a node when nothing
 * uses it, its name free again at once.  Errors in QEMU 7.2's words.
 */
bool block_blockdev_add(Machine *m, Keyval *opts, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool block_blockdev_del(Machine *m, const char *node_name,
                        Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* bdrv_inactivate / bdrv_activate on every drive of the machine (live migration). */
bool block_inactivate_all(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool block_activate_all(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

#endif
