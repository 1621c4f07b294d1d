/*
 * QCOW2 cluster compression: raw deflate (zlib, 4 KiB window, as QEMU writes it) and zstd.
 *
 * A compressed cluster is stored padded to whole 512-byte sectors, so decompression must
 * stop once the cluster is full and ignore whatever trails the stream.
 */
#include <errno.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "block/qcow2.h"

static ssize_t compress_zlib(uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
    z_stream z = { 0 };
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        return -EIO;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = src_len;
    z.next_out = dst;
    z.avail_out = dst_len;
    int r = deflate(&z, Z_FINISH);
    ssize_t ret = r == Z_STREAM_END ? (ssize_t)(dst_len - z.avail_out) : -ENOSPC;
    deflateEnd(&z);
    return ret;
}

static int decompress_zlib(uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
    z_stream z = { 0 };
    if (inflateInit2(&z, -12) != Z_OK) {
        return -EIO;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = src_len;
    z.next_out = dst;
    z.avail_out = dst_len;
    int r = inflate(&z, Z_FINISH);
    /* Z_BUF_ERROR with a full output buffer: the padding after the stream was not read. */
    int ret = (r == Z_STREAM_END || r == Z_BUF_ERROR) && z.avail_out == 0 ? 0 : -EIO;
    inflateEnd(&z);
    return ret;
}

static ssize_t compress_zstd(uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
    size_t r = ZSTD_compress(dst, dst_len, src, src_len, 3);
    if (ZSTD_isError(r)) {
        return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EIO;
    }
    return r;
}

static int decompress_zstd(uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) {
        return -ENOMEM;
    }
    ZSTD_inBuffer in = { src, src_len, 0 };
    ZSTD_outBuffer out = { dst, dst_len, 0 };
    int ret = -EIO;
    /* Streaming, because the sector padding after the frame is not part of it. */
    while (out.pos < out.size) {
        size_t last = in.pos + out.pos;
        size_t r = ZSTD_decompressStream(dctx, &out, &in);
        if (ZSTD_isError(r)) {
            goto out;
        }
        if (r == 0 && out.pos < out.size) {
            goto out; /* frame ended short of a cluster */
        }
        if (in.pos + out.pos == last) {
            goto out; /* no progress: truncated input */
        }
    }
    ret = 0;
out:
    ZSTD_freeDCtx(dctx);
    return ret;
}

ssize_t qcow2_compress(int type, uint8_t *dst, size_t dst_len, const uint8_t *src,
                       size_t src_len)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB:
        return compress_zlib(dst, dst_len, src, src_len);
    case QCOW2_COMPRESSION_ZSTD:
        return compress_zstd(dst, dst_len, src, src_len);
    default:
        return -ENOTSUP;
    }
}

int qcow2_decompress(int type, uint8_t *dst, size_t dst_len, const uint8_t *src,
                     size_t src_len)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB:
        return decompress_zlib(dst, dst_len, src, src_len);
    case QCOW2_COMPRESSION_ZSTD:
        return decompress_zstd(dst, dst_len, src, src_len);
    default:
        return -ENOTSUP;
    }
}
