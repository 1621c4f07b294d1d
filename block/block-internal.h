/* Private to block/: helpers the generic layer and the drivers share. */
#ifndef SEN_BLOCK_INTERNAL_H
#define SEN_BLOCK_INTERNAL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib-unix.h>
#include "sen/block.h"
#include "sen/iov.h"

/* block/drivers.c: the registry, NULL-terminated. */
extern const BlockDriver *const block_driver_table[];
extern const BlockDriver bdrv_file;
extern const BlockDriver bdrv_raw;

/* block/file-posix.c: st_blocks * 512 of the open file, or -errno. */
int64_t file_posix_allocated_size(BlockDriverState *bs);
/*
 * block/file-posix.c: a read-only view of [offset, offset+bytes) of a file node's host
 * file in the page cache, for a reader that only looks at the bytes (sen-img convert
 * checks them for zeroes and writes them on, so the page cache copy of a read is
 * saved).  NULL, and nothing to release, where a read must be used instead: bs is no
 * file node, is opened with cache.direct=on or force-share=on (another process may
 * shrink the file, and a view past its end faults with SIGBUS instead of failing a
 * read), or the range passes the end of the file.  file_posix_unmap releases the view.
 */
typedef struct FilePosixMap {
    void *base;  /* the whole pages mapped */
    size_t len;
} FilePosixMap;
const uint8_t *file_posix_map(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              FilePosixMap *m);
void file_posix_unmap(FilePosixMap *m);
/*
 * block/file-posix.c: copy_file_range(2) of bytes from src's host file at src_off to
 * dst's at dst_off (a reflink or an in-kernel copy: sen-img convert -C).  0 when all is
 * copied; -ENOTSUP when either node is no file node or uses cache.direct=on; else the
 * call's -errno (EXDEV, EOPNOTSUPP, ...), -EIO when the source ends early: the caller
 * then copies the ordinary way.
 */
int file_posix_copy_range(BlockDriverState *src, int64_t src_off, BlockDriverState *dst,
                          int64_t dst_off, int64_t bytes);
/* block/raw.c: the file node a raw node hands every byte to unchanged (no offset=, not a
 * probed format whose sector 0 is guarded), or NULL. */
BlockDriverState *raw_plain_file(BlockDriverState *bs);
/* Tests: how many io_submit calls the node's aio=native requests took so far. */
unsigned file_posix_aio_submit_calls(BlockDriverState *bs);
/* Completes req later in ctx's thread (an idle source), never from inside the caller. */
void bdrv_complete_in(GMainContext *ctx, BlockRequest *req, int ret);

/*
 * block/file-lock.c: QEMU's image locks (OFD read locks on byte FILE_LOCK_PERM_BASE + n
 * for each permission bit n held, FILE_LOCK_SHARED_BASE + n for each one not shared).
 * apply takes the locks for (perm, shared) on fd and tests for conflicts, failing with
 * QEMU's words and a hint naming filename, the locks held before kept; release drops
 * every lock of l.
 */
enum {
    FILE_LOCK_PERM_BASE = 100,
    FILE_LOCK_SHARED_BASE = 200,
    FILE_LOCK_NPERMS = 4, /* BLK_PERM_ALL's bits */
};
typedef struct FileLockState {
    uint64_t perm;      /* whose PERM_BASE byte fd holds */
    uint64_t unshared;  /* whose SHARED_BASE byte fd holds */
    bool posix;         /* POSIX locks (F_SETLK): the host has no OFD locks */
} FileLockState;
bool file_lock_apply(int fd, FileLockState *l, uint64_t perm, uint64_t shared,
                     const char *filename, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void file_lock_release(int fd, FileLockState *l);
/* Takes on fd (a new open file description of the same image) the bytes l holds on
 * another one of this process, without looking for conflicts: they were looked for when
 * l's bytes were taken, and the old holder keeps them until it closes.  A reopen calls it
 * before closing the old fd, so the image is never unlocked in between. */
bool file_lock_copy(int fd, const FileLockState *l, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Closes an fd of an image, locked or not.  Every fd of an image goes this way: with
 * POSIX locks any close drops all of the process's locks on the file, and this takes
 * back those of the holders still open (file_lock_release first drops fd's own). */
void file_lock_close(int fd);
/* Whether the host file system takes OFD locks on fd (locking=auto). */
bool file_lock_supported(int fd);
/* Whether the kernel has OFD locks at all (QEMU's qemu_has_ofd_lock: F_OFD_GETLK on
 * /dev/null does not fail with EINVAL); probed once per process. */
bool file_lock_host_has_ofd(void);
/* The byte of the one permission perm (a single BLK_PERM_* bit) from base. */
int file_lock_byte(int base, uint64_t perm);
/* QEMU's name of permission bit n ("consistent read", "write", ...). */
const char *file_lock_perm_name(int bit);

/*
 * block/block-perm.c: what a node takes of its children, from its own users' claims
 * (QEMU's bdrv_default_perms), applied when it opens, is re-opened, changes activity
 * (migration) or closes.  bdrv_perm_refresh re-applies bs's claims on its children and
 * its own set_perm; bdrv_perm_drop_children releases bs's claims on its children.
 */
bool bdrv_perm_refresh(BlockDriverState *bs, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void bdrv_perm_drop_children(BlockDriverState *bs);
/* bdrv_perm_refresh after bs's users asked for less (released, inactive): it cannot
 * conflict, so nothing to report. */
void bdrv_perm_refresh_less(BlockDriverState *bs);
/* The claim list of bs (block.c keeps it with the node); a GArray of BlockPermClaim. */
typedef struct BlockPermClaim {
    const void *holder;
    uint64_t perm, shared;
} BlockPermClaim;
GArray *bdrv_perm_claims(BlockDriverState *bs);

/* The most likely format of buf (never NULL: raw is the fallback). */
const BlockDriver *bdrv_probe_format(const uint8_t *buf, int len, const char *filename);


/*
 * bdrv_open with a way to resolve references to existing nodes ("file": "node-name" in
 * -blockdev); lookup may be NULL.  Returns a new reference on a found node.
 */
typedef BlockDriverState *BlockNodeLookup(void *opaque, const char *node_name);
BlockDriverState *bdrv_open_ex(const char *filename, Keyval *options, const char *format,
                               int flags, BlockNodeLookup *lookup, void *lookup_opaque,
                               Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/*
 * Opens the child `key` of parent from its options while parent's driver opens (QEMU's
 * BlockdevRef: key=node-name, or key.driver=..., key.filename=...; driver defaults to
 * file).  Returns a new reference, or NULL: with *errp set on failure, unset when opts
 * name no such child.
 */
BlockDriverState *bdrv_open_child(BlockDriverState *parent, Keyval *opts, const char *key,
                                  int flags, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* iovec helpers */
bool block_iov_is_zero(const struct iovec *iov, int niov);

int64_t block_now_ns(void);

/*
 * block/block-fd-watch.c: watches fd (readable) in ctx with fn(fd, cond, opaque), moving
 * the watch when ctx differs from the last attach; can_recurse when fn may be re-entered
 * from a nested loop iteration.  Detach is idempotent.
 */
typedef struct BlockFdWatch {
    GSource *src;
    GMainContext *ctx;
} BlockFdWatch;
void block_fd_watch_attach(BlockFdWatch *w, int fd, GMainContext *ctx,
                           GUnixFDSourceFunc fn, void *opaque, bool can_recurse);
void block_fd_watch_detach(BlockFdWatch *w);

/*
 * block/block-pool.c: worker threads that run requests with run(opaque, req) and complete
 * them (bdrv_request_complete) in the GMainContext given at submission.  Submit returns
 * 0, or -errno when no worker could be started (the caller completes req).  With
 * may_inline, a request submitted while the pool has none in flight, and never had two,
 * runs on the caller's thread instead (still completed later from ctx).  Free waits for the requests already
 * submitted.
 */
typedef struct BlockPool BlockPool;
typedef int BlockPoolRunFunc(void *opaque, BlockRequest *req);
BlockPool *block_pool_new(int max_threads, BlockPoolRunFunc *run, void *opaque);
int block_pool_submit(BlockPool *p, GMainContext *ctx, BlockRequest *req,
                      bool may_inline)
    G_GNUC_WARN_UNUSED_RESULT;
void block_pool_free(BlockPool *p);
/* Whether a worker joins adjacent handed-over reads into one (before any submission). */
void block_pool_set_join_reads(BlockPool *p, bool on);
/* Only requests whose offset, length and buffers are multiples of align (a power of two,
 * the node's O_DIRECT alignment; 1 by default) are joined, so a joined vector never needs
 * a bounce buffer; set before any submission. */
void block_pool_set_join_align(BlockPool *p, unsigned align);
/* Tests: a pool with a given hand-over ring size (rounded up to a power of two), a hook
 * run by a woken worker between taking its ring ticket and emptying its slot (set before
 * the first submission), the sleeping and all workers, and the jobs handed to a worker's own
 * slot because the ring slot was still full. */
typedef void BlockPoolTakeHook(void *opaque);
BlockPool *block_pool_new_ring(int max_threads, unsigned ring_size,
                               BlockPoolRunFunc *run, void *opaque);
void block_pool_set_take_hook(BlockPool *p, BlockPoolTakeHook *hook, void *opaque);
int block_pool_idle_workers(BlockPool *p);
int block_pool_workers(BlockPool *p);
unsigned block_pool_direct_handoffs(BlockPool *p);

#endif
