/*
 * BlockBackend: the block layer as a device sees it.  On top of the root node it counts
 * statistics (query-blockstats), turns all-zero writes into write_zeroes (detect-zeroes),
 * and emulates a disk without write cache (cache=writethrough/directsync) by flushing
 * after every write before the request completes.
 */
#include <errno.h>
#include <string.h>
#include "block/block-internal.h"

struct BlockBackend {
    char *name;
    BlockDriverState *root;
    bool write_cache;
    GMainContext *ctx;
    int inflight;            /* atomic: async requests not yet called back */
    GMutex drain_lock;       /* with drain_cond: inflight reached 0 (blk_drain from a */
    GCond drain_cond;        /* thread that cannot run ctx) */
    int drain_waiters;       /* under drain_lock: threads waiting on drain_cond */
    GMutex stats_lock;
    BlockAcctStats stats;
    void (*resize_cb)(void *opaque);
    void *resize_opaque;
    /* werror / rerror and the io-status: atomics, as completions on I/O threads read and
     * set them while the monitor reads and resets them. */
    int on_read_error, on_write_error; /* BlockdevOnError */
    int iostatus_enabled;
    int iostatus;                      /* BlockIoStatus */
};

typedef struct BlkAioReq {
    BlockRequest req;
    BlockBackend *blk;
    BlockCompletionFunc *cb;
    void *opaque;
    BlockRequestType acct_type; /* what the caller asked, for statistics (drivers may */
    int64_t acct_offset;        /* rewrite req, e.g. raw adds its offset=) */
    int64_t acct_bytes;
    int64_t start_ns;
    bool invalid;               /* rejected before reaching the driver */
    bool flush_after;           /* write-through: flush before calling back */
} BlkAioReq;

BlockBackend *blk_new(const char *name, BlockDriverState *root, bool write_cache)
{
    BlockBackend *blk = g_new0(BlockBackend, 1);

    blk->name = g_strdup(name);
    blk->root = root;
    blk->write_cache = write_cache;
    blk->ctx = g_main_context_default();
    blk->on_read_error = BLOCKDEV_ON_ERROR_REPORT;
    blk->on_write_error = BLOCKDEV_ON_ERROR_ENOSPC;
    g_mutex_init(&blk->stats_lock);
    g_mutex_init(&blk->drain_lock);
    g_cond_init(&blk->drain_cond);
    return blk;
}

void blk_unref(BlockBackend *blk)
{
    if (!blk) {
        return;
    }
    blk_drain(blk);
    bdrv_flush(blk->root);
    bdrv_perm_release(blk->root, blk);
    bdrv_unref(blk->root);
    g_mutex_clear(&blk->stats_lock);
    g_mutex_clear(&blk->drain_lock);
    g_cond_clear(&blk->drain_cond);
    g_free(blk->name);
    g_free(blk);
}

bool blk_set_perm(BlockBackend *blk, uint64_t perm, uint64_t shared, Error **errp)
{
    return bdrv_perm_claim(blk->root, blk, perm, shared, errp);
}

bool blk_set_device_perm(BlockBackend *blk, bool share_rw, Error **errp)
{
    uint64_t perm = BLK_PERM_CONSISTENT_READ | (blk->root->read_only ? 0 : BLK_PERM_WRITE);
    uint64_t shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED | BLK_PERM_RESIZE |
                      (share_rw ? BLK_PERM_WRITE : 0);

    return blk_set_perm(blk, perm, shared, errp);
}

void blk_set_resize_cb(BlockBackend *blk, void (*cb)(void *opaque), void *opaque)
{
    blk->resize_cb = cb;
    blk->resize_opaque = opaque;
}

bool blk_truncate(BlockBackend *blk, int64_t size, bool shrink, Error **errp)
{
    if (!bdrv_truncate(blk->root, size, shrink, errp)) {
        return false;
    }
    if (blk->resize_cb) {
        blk->resize_cb(blk->resize_opaque);
    }
    return true;
}

int blk_in_flight(BlockBackend *blk)
{
    return g_atomic_int_get(&blk->inflight);
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name;
}

const char *blk_event_device_name(BlockBackend *blk)
{
    return blk->root && strcmp(blk->name, blk->root->node_name) == 0 ? "" : blk->name;
}

void blk_set_on_error(BlockBackend *blk, BlockdevOnError rerror, BlockdevOnError werror)
{
    g_atomic_int_set(&blk->on_read_error, (int)rerror);
    g_atomic_int_set(&blk->on_write_error, (int)werror);
}

BlockdevOnError blk_get_on_error(BlockBackend *blk, bool is_read)
{
    return (BlockdevOnError)g_atomic_int_get(is_read ? &blk->on_read_error
                                                     : &blk->on_write_error);
}

BlockErrorAction blk_get_error_action(BlockBackend *blk, bool is_read, int error)
{
    return block_error_action_decide(blk_get_on_error(blk, is_read), error);
}

void blk_iostatus_enable(BlockBackend *blk)
{
    g_atomic_int_set(&blk->iostatus, BLOCK_IO_STATUS_OK);
    g_atomic_int_set(&blk->iostatus_enabled, 1);
}

bool blk_iostatus_is_enabled(BlockBackend *blk)
{
    /* QEMU's rule: only where an error can stop the VM (its list: rerror=enospc is not
     * in it, although it stops on ENOSPC too). */
    BlockdevOnError r = blk_get_on_error(blk, true), w = blk_get_on_error(blk, false);
    return g_atomic_int_get(&blk->iostatus_enabled) &&
           (w == BLOCKDEV_ON_ERROR_ENOSPC || w == BLOCKDEV_ON_ERROR_STOP ||
            r == BLOCKDEV_ON_ERROR_STOP);
}

BlockIoStatus blk_iostatus(BlockBackend *blk)
{
    return (BlockIoStatus)g_atomic_int_get(&blk->iostatus);
}

void blk_iostatus_set_err(BlockBackend *blk, int error)
{
    if (blk_iostatus_is_enabled(blk)) {
        g_atomic_int_compare_and_exchange(&blk->iostatus, BLOCK_IO_STATUS_OK,
                                          error == ENOSPC ? BLOCK_IO_STATUS_NOSPACE
                                                          : BLOCK_IO_STATUS_FAILED);
    }
}

void blk_iostatus_reset(BlockBackend *blk)
{
    g_atomic_int_set(&blk->iostatus, BLOCK_IO_STATUS_OK);
}

void blk_error_action(BlockBackend *blk, BlockErrorAction action, bool is_read, int error)
{
    /* The io-status first, so that query-block never shows less than the events sent
     * so far (QEMU's order); the sink stops the VM after the event. */
    if (action == BLOCK_ERROR_ACTION_STOP) {
        blk_iostatus_set_err(blk, error);
    }
    BlockIoError e = {
        .device = blk_event_device_name(blk),
        .node_name = blk->root->node_name,
        .is_read = is_read,
        .action = action,
        .has_nospace = blk_iostatus_is_enabled(blk),
        .error = error,
    };
    bdrv_report_io_error(&e);
}

BlockDriverState *blk_bs(BlockBackend *blk)
{
    return blk->root;
}

bool blk_is_read_only(const BlockBackend *blk)
{
    return blk->root->read_only;
}

bool blk_enable_write_cache(const BlockBackend *blk)
{
    return blk->write_cache;
}

int64_t blk_getlength(BlockBackend *blk)
{
    return blk_is_inserted(blk) ? bdrv_getlength(blk->root) : -ENOMEDIUM;
}

bool blk_is_inserted(BlockBackend *blk)
{
    return bdrv_is_inserted(blk->root);
}

void blk_get_stats(BlockBackend *blk, BlockAcctStats *out)
{
    g_mutex_lock(&blk->stats_lock);
    *out = blk->stats;
    g_mutex_unlock(&blk->stats_lock);
}

static void bdrv_set_context_tree(BlockDriverState *bs, GMainContext *ctx)
{
    for (; bs; bs = bs->backing) {
        bs->ctx = ctx;
        if (bs->file) {
            bdrv_set_context_tree(bs->file, ctx);
        }
    }
}

void blk_set_context(BlockBackend *blk, GMainContext *ctx)
{
    blk->ctx = ctx ? ctx : g_main_context_default();
    bdrv_set_context_tree(blk->root, blk->ctx);
}

static void blk_account(BlockBackend *blk, BlockRequestType type, int64_t offset,
                        int64_t bytes, int64_t start_ns, bool invalid, int ret)
{
    BlockAcctStats *st = &blk->stats;
    int64_t now = block_now_ns();
    uint64_t ns = now - start_ns;

    g_mutex_lock(&blk->stats_lock);
    st->last_access_ns = now;
    switch (type) {
    case BLOCK_REQ_READ:
        if (invalid) {
            st->invalid_rd_operations++;
        } else if (ret < 0) {
            st->failed_rd_operations++;
        } else {
            st->rd_operations++;
            st->rd_bytes += bytes;
            st->rd_total_time_ns += ns;
        }
        break;
    case BLOCK_REQ_WRITE:
    case BLOCK_REQ_WRITE_ZEROES:
        if (invalid) {
            st->invalid_wr_operations++;
        } else if (ret < 0) {
            st->failed_wr_operations++;
        } else {
            st->wr_operations++;
            st->wr_bytes += bytes;
            st->wr_total_time_ns += ns;
            st->wr_highest_offset = MAX(st->wr_highest_offset, offset + bytes);
        }
        break;
    case BLOCK_REQ_FLUSH:
        if (ret < 0) {
            st->failed_flush_operations++;
        } else {
            st->flush_operations++;
            st->flush_total_time_ns += ns;
        }
        break;
    case BLOCK_REQ_DISCARD:
        if (invalid) {
            st->invalid_unmap_operations++;
        } else if (ret < 0) {
            st->failed_unmap_operations++;
        } else {
            st->unmap_operations++;
            st->unmap_bytes += bytes;
            st->unmap_total_time_ns += ns;
        }
        break;
    }
    g_mutex_unlock(&blk->stats_lock);
}

void blk_account_invalid(BlockBackend *blk, BlockRequestType type)
{
    blk_account(blk, type, 0, 0, block_now_ns(), true, 0);
}

void blk_account_merged(BlockBackend *blk, bool is_write, unsigned n)
{
    if (n < 2) {
        return;
    }
    g_mutex_lock(&blk->stats_lock);
    if (is_write) {
        blk->stats.wr_operations += n - 1;
        blk->stats.wr_merged += n - 1;
    } else {
        blk->stats.rd_operations += n - 1;
        blk->stats.rd_merged += n - 1;
    }
    g_mutex_unlock(&blk->stats_lock);
}

static bool blk_range_invalid(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    return offset < 0 || bytes < 0 || offset > blk_getlength(blk) - bytes;
}

/* detect-zeroes: an all-zero write becomes write_zeroes (unmapping when allowed). */
static bool blk_write_is_zeroes(BlockBackend *blk, const struct iovec *iov, int niov,
                                int *flags)
{
    BlockDriverState *bs = blk->root;

    if (bs->detect_zeroes == BLOCK_DETECT_ZEROES_OFF || !block_iov_is_zero(iov, niov)) {
        return false;
    }
    if (bs->detect_zeroes == BLOCK_DETECT_ZEROES_UNMAP) {
        *flags |= BDRV_REQ_MAY_UNMAP;
    }
    return true;
}

/* ---- synchronous ---- */

int blk_preadv(BlockBackend *blk, int64_t offset, int64_t bytes, const struct iovec *iov,
               int niov, int flags)
{
    int64_t start = block_now_ns();
    bool invalid = blk_range_invalid(blk, offset, bytes);
    int ret = invalid ? -EIO : bdrv_preadv(blk->root, offset, bytes, iov, niov, flags);

    blk_account(blk, BLOCK_REQ_READ, offset, bytes, start, invalid, ret);
    return ret;
}

/* A write-like request followed by the write-through flush. */
static int blk_finish_write(BlockBackend *blk, int ret)
{
    if (ret == 0 && !blk->write_cache) {
        ret = bdrv_flush(blk->root);
    }
    return ret;
}

int blk_pwritev(BlockBackend *blk, int64_t offset, int64_t bytes, const struct iovec *iov,
                int niov, int flags)
{
    int64_t start = block_now_ns();
    bool invalid = blk_range_invalid(blk, offset, bytes);
    int ret;

    if (invalid) {
        ret = -EIO;
    } else if (blk_write_is_zeroes(blk, iov, niov, &flags)) {
        ret = blk_finish_write(blk, bdrv_pwrite_zeroes(blk->root, offset, bytes, flags));
    } else {
        ret = blk_finish_write(blk, bdrv_pwritev(blk->root, offset, bytes, iov, niov,
                                                 flags));
    }
    blk_account(blk, BLOCK_REQ_WRITE, offset, bytes, start, invalid, ret);
    return ret;
}

int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf)
{
    struct iovec iov = { .iov_base = buf, .iov_len = bytes };
    return blk_preadv(blk, offset, bytes, &iov, 1, 0);
}

int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes, const void *buf)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = bytes };
    return blk_pwritev(blk, offset, bytes, &iov, 1, 0);
}

int blk_flush(BlockBackend *blk)
{
    int64_t start = block_now_ns();
    int ret = bdrv_flush(blk->root);

    blk_account(blk, BLOCK_REQ_FLUSH, 0, 0, start, false, ret);
    return ret;
}

int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    int64_t start = block_now_ns();
    bool invalid = blk_range_invalid(blk, offset, bytes);
    int ret = invalid ? -EIO : bdrv_pdiscard(blk->root, offset, bytes);

    blk_account(blk, BLOCK_REQ_DISCARD, offset, bytes, start, invalid, ret);
    return ret;
}

int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes, int flags)
{
    int64_t start = block_now_ns();
    bool invalid = blk_range_invalid(blk, offset, bytes);
    int ret = invalid ? -EIO
                      : blk_finish_write(blk, bdrv_pwrite_zeroes(blk->root, offset, bytes,
                                                                 flags));

    blk_account(blk, BLOCK_REQ_WRITE_ZEROES, offset, bytes, start, invalid, ret);
    return ret;
}

/* ---- asynchronous ---- */

/*
 * A request of blk is done.  The count reaches 0 only under drain_lock: a blk_drain
 * waiting on another thread sees 0 only once we let go of the lock, so its caller
 * (blk_unref) cannot free blk while we still broadcast.  Above 1 no lock is needed.
 */
static void blk_inflight_dec(BlockBackend *blk)
{
    for (int v = g_atomic_int_get(&blk->inflight); v > 1;
         v = g_atomic_int_get(&blk->inflight)) {
        if (g_atomic_int_compare_and_exchange(&blk->inflight, v, v - 1)) {
            return;
        }
    }
    g_mutex_lock(&blk->drain_lock);
    /* glib's broadcast is a futex call even with nobody waiting: at queue depth 1 that
     * was one wasted system call per request. */
    if (g_atomic_int_dec_and_test(&blk->inflight) && blk->drain_waiters) {
        g_cond_broadcast(&blk->drain_cond);
    }
    g_mutex_unlock(&blk->drain_lock);
}

static void blk_aio_complete(BlockRequest *req, int ret)
{
    BlkAioReq *r = (BlkAioReq *)req;
    BlockBackend *blk = r->blk;

    if (ret == 0 && r->flush_after) {
        r->flush_after = false;
        r->req.type = BLOCK_REQ_FLUSH;
        r->req.offset = r->req.bytes = 0;
        bdrv_aio_submit(blk->root, &r->req);
        return;
    }
    blk_account(blk, r->acct_type, r->acct_offset, r->acct_bytes, r->start_ns, r->invalid,
                ret);
    r->cb(r->opaque, ret);
    g_free(r);
    blk_inflight_dec(blk);
}

static void blk_aio_submit(BlockBackend *blk, BlockRequestType type, int64_t offset,
                           int64_t bytes, const struct iovec *iov, int niov, int flags,
                           BlockCompletionFunc *cb, void *opaque)
{
    BlkAioReq *r = g_new0(BlkAioReq, 1);

    r->blk = blk;
    r->cb = cb;
    r->opaque = opaque;
    r->acct_type = type;
    r->acct_offset = offset;
    r->acct_bytes = bytes;
    r->start_ns = block_now_ns();
    r->req.type = type;
    r->req.offset = offset;
    r->req.bytes = bytes;
    r->req.iov = iov;
    r->req.niov = niov;
    r->req.flags = flags;
    r->req.complete = blk_aio_complete;
    r->req.opaque = r;
    if (type != BLOCK_REQ_FLUSH) {
        /* The node rejects it too; this only decides which counter it lands in. */
        r->invalid = blk_range_invalid(blk, offset, bytes);
    }
    if (type == BLOCK_REQ_WRITE && !r->invalid &&
        blk_write_is_zeroes(blk, iov, niov, &r->req.flags)) {
        r->req.type = BLOCK_REQ_WRITE_ZEROES;
    }
    r->flush_after = !blk->write_cache &&
                     (type == BLOCK_REQ_WRITE || type == BLOCK_REQ_WRITE_ZEROES);
    g_atomic_int_inc(&blk->inflight);
    bdrv_aio_submit(blk->root, &r->req);
}

void blk_aio_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int niov,
                    int flags, BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLOCK_REQ_READ, offset, iov_size(iov, niov), iov, niov,
                   flags, cb, opaque);
}

void blk_aio_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int niov,
                     int flags, BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLOCK_REQ_WRITE, offset, iov_size(iov, niov), iov, niov,
                   flags, cb, opaque);
}

void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLOCK_REQ_FLUSH, 0, 0, NULL, 0, 0, cb, opaque);
}

void blk_io_plug(BlockBackend *blk)
{
    bdrv_io_plug(blk->root);
}

void blk_io_unplug(BlockBackend *blk)
{
    bdrv_io_unplug(blk->root);
}

void blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLOCK_REQ_DISCARD, offset, bytes, NULL, 0, 0, cb, opaque);
}

void blk_aio_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes, int flags,
                           BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLOCK_REQ_WRITE_ZEROES, offset, bytes, NULL, 0, flags, cb,
                   opaque);
}

void blk_drain(BlockBackend *blk)
{
    if (g_main_context_acquire(blk->ctx)) {
        while (g_atomic_int_get(&blk->inflight) > 0) {
            g_main_context_iteration(blk->ctx, true);
        }
        g_main_context_release(blk->ctx);
        return;
    }
    /* An I/O thread runs the context: it completes them, we wait. */
    g_mutex_lock(&blk->drain_lock);
    blk->drain_waiters++;
    while (g_atomic_int_get(&blk->inflight) > 0) {
        g_cond_wait(&blk->drain_cond, &blk->drain_lock);
    }
    blk->drain_waiters--;
    g_mutex_unlock(&blk->drain_lock);
}
