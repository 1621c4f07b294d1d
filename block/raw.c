/*
 * The "raw" format: the guest sees its file child byte for byte, optionally a window of
 * it (offset=, size= as QEMU's raw driver).
 *
 * A raw image whose format was probed rather than given is protected the way QEMU does
 * it: a write that would make sector 0 look like another format is refused, since the
 * next probing open would then interpret guest data as image metadata (e.g. a qcow2
 * header naming a host file as its backing file).
 */
#include <errno.h>
#include <string.h>
#include "block/block-internal.h"
#include "sen/iov.h"

typedef struct RawState {
    int64_t offset;
    int64_t size;
    bool has_size;
} RawState;

static int raw_probe(const uint8_t *buf, int len, const char *filename)
{
    return 1; /* anything is raw, everything else wins */
}

static bool raw_open(BlockDriverState *bs, Keyval *opts, int flags, Error **errp)
{
    RawState *s = bs->opaque;
    int64_t file_size = bdrv_getlength(bs->file);
    uint64_t offset, size;

    if (!keyval_get_size(opts, bs->filename, "offset", 0, &offset, errp) ||
        !keyval_get_size(opts, bs->filename, "size", 0, &size, errp)) {
        return false;
    }
    s->has_size = keyval_has(opts, "size");
    if (s->has_size && size % BDRV_SECTOR_SIZE) {
        error_setg(errp, "'%s': size=%" PRIu64 " is not a multiple of 512", bs->filename,
                   size);
        return false;
    }
    if (file_size < 0) {
        error_setg_errno(errp, (int)-file_size, "'%s': cannot get its size", bs->filename);
        return false;
    }
    if (!s->has_size && offset > (uint64_t)file_size) {
        error_setg(errp, "'%s': offset (%" PRIu64 ") is beyond the end of the file "
                   "(%" PRId64 ")", bs->filename, offset, file_size);
        return false;
    }
    if (s->has_size && (offset > (uint64_t)file_size || size > (uint64_t)file_size - offset)) {
        error_setg(errp, "'%s': the sum of offset (%" PRIu64 ") and size (%" PRIu64 ") "
                   "has to be smaller or equal to the actual size of the containing file "
                   "(%" PRId64 ")", bs->filename, offset, size, file_size);
        return false;
    }
    s->offset = offset;
    s->size = s->has_size ? (int64_t)size : file_size - (int64_t)offset;
    bs->total_size = s->size;
    if (bs->probed) {
        bs->request_alignment = MAX(bs->request_alignment, BDRV_SECTOR_SIZE);
    }
    return true;
}

BlockDriverState *raw_plain_file(BlockDriverState *bs)
{
    if (!bs || bs->drv != &bdrv_raw || bs->probed) {
        return NULL;
    }
    RawState *s = bs->opaque;
    return s->offset == 0 ? bs->file : NULL;
}

/* True when writing [offset, offset+bytes) of iov would turn sector 0 into another format. */
static bool raw_write_changes_format(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                     const struct iovec *iov, int niov)
{
    uint8_t sector[BDRV_SECTOR_SIZE] = { 0 };

    if (!bs->probed || offset >= BDRV_SECTOR_SIZE) {
        return false;
    }
    if (offset > 0 || bytes < BDRV_SECTOR_SIZE) {
        RawState *s = bs->opaque;
        if (bdrv_pread(bs->file, s->offset, MIN(s->size, BDRV_SECTOR_SIZE), sector) < 0) {
            return true; /* cannot tell: refuse rather than risk it */
        }
    }
    iov_to_buf(iov, niov, 0, sector + offset, MIN(bytes, BDRV_SECTOR_SIZE - offset));
    return bdrv_probe_format(sector, sizeof(sector), NULL) != &bdrv_raw;
}

static int raw_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      const struct iovec *iov, int niov, int flags)
{
    RawState *s = bs->opaque;
    return bdrv_preadv(bs->file, s->offset + offset, bytes, iov, niov, flags);
}

static int raw_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                       const struct iovec *iov, int niov, int flags)
{
    RawState *s = bs->opaque;

    if (raw_write_changes_format(bs, offset, bytes, iov, niov)) {
        return -EPERM;
    }
    return bdrv_pwritev(bs->file, s->offset + offset, bytes, iov, niov, flags);
}

static int raw_aio_submit(BlockDriverState *bs, BlockRequest *req)
{
    RawState *s = bs->opaque;

    if (bs->probed && req->type == BLOCK_REQ_WRITE && req->offset < BDRV_SECTOR_SIZE) {
        return -ENOTSUP; /* the synchronous path checks sector 0 */
    }
    if (req->type != BLOCK_REQ_FLUSH) {
        req->offset += s->offset;
    }
    bdrv_aio_submit(bs->file, req);
    return 0;
}

static int raw_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    RawState *s = bs->opaque;
    return bdrv_pdiscard(bs->file, s->offset + offset, bytes);
}

static int raw_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             int flags)
{
    RawState *s = bs->opaque;

    if (bs->probed && offset < BDRV_SECTOR_SIZE) {
        uint8_t zero[BDRV_SECTOR_SIZE] = { 0 };
        struct iovec iov = { .iov_base = zero, .iov_len = sizeof(zero) };
        if (raw_write_changes_format(bs, offset, MIN(bytes, BDRV_SECTOR_SIZE), &iov, 1)) {
            return -EPERM;
        }
    }
    return bdrv_pwrite_zeroes(bs->file, s->offset + offset, bytes, flags);
}

static bool raw_truncate(BlockDriverState *bs, int64_t size, bool shrink, Error **errp)
{
    RawState *s = bs->opaque;

    if (s->has_size) {
        error_setg(errp, "'%s': cannot resize fixed-size raw disks (size= given)",
                   bs->filename);
        return false;
    }
    if (!bdrv_truncate(bs->file, s->offset + size, shrink, errp)) {
        return false;
    }
    s->size = size;
    bs->total_size = size;
    return true;
}

static int raw_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    RawState *s = bs->opaque;
    int ret = bdrv_block_status(bs->file, s->offset + offset, bytes, pnum, map, file);

    if (ret < 0) {
        return ret;
    }
    if (*pnum == 0) {
        /* Past the end of the file child (it may be shorter than size=): zeroes. */
        *pnum = bytes;
        ret = BDRV_BLOCK_ZERO;
    }
    return ret | BDRV_BLOCK_ALLOCATED;
}

static int raw_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return 0;
}

static bool raw_create(const char *filename, Keyval *opts, Error **errp)
{
    return bdrv_create("file", filename, opts, errp);
}

const BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(RawState),
    .probe = raw_probe,
    .open = raw_open,
    .preadv = raw_preadv,
    .pwritev = raw_pwritev,
    .aio_submit = raw_aio_submit,
    .pdiscard = raw_pdiscard,
    .pwrite_zeroes = raw_pwrite_zeroes,
    .truncate = raw_truncate,
    .block_status = raw_block_status,
    .get_info = raw_get_info,
    .create = raw_create,
};
