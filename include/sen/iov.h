/*
 * The iovec helpers virtio devices, the block layer and the net backends share: the size
 * of a vector, and copies between a vector and a flat buffer (QEMU's iov_size,
 * iov_from_buf, iov_to_buf and iov_memset).
 *
 * Each works on the bytes [offset, offset + bytes) of the vector's concatenation and
 * copies what the vector holds of them: it returns the bytes copied, which is less than
 * bytes when the vector ends first (0 when offset lies at or past its end).  Pieces of
 * length 0 are allowed anywhere.
 */
#ifndef SEN_IOV_H
#define SEN_IOV_H

#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

/* Total bytes in the iov_cnt pieces of iov. */
size_t iov_size(const struct iovec *iov, unsigned iov_cnt);

size_t iov_from_buf_full(const struct iovec *iov, unsigned iov_cnt, size_t offset,
                         const void *buf, size_t bytes);
size_t iov_to_buf_full(const struct iovec *iov, unsigned iov_cnt, size_t offset, void *buf,
                       size_t bytes);

/*
 * The callers with a fixed-size header (a virtio request header, a vnet header, a status
 * byte) nearly always find it whole in the first piece: with a constant size that case is
 * one inline memcpy, as QEMU's.  Any other call is one call of the loop.
 */
static inline size_t iov_from_buf(const struct iovec *iov, unsigned iov_cnt, size_t offset,
                                  const void *buf, size_t bytes)
{
    if (__builtin_constant_p(bytes) && iov_cnt && offset <= iov[0].iov_len &&
        bytes <= iov[0].iov_len - offset) {
        memcpy((char *)iov[0].iov_base + offset, buf, bytes);
        return bytes;
    }
    return iov_from_buf_full(iov, iov_cnt, offset, buf, bytes);
}

static inline size_t iov_to_buf(const struct iovec *iov, unsigned iov_cnt, size_t offset,
                                void *buf, size_t bytes)
{
    if (__builtin_constant_p(bytes) && iov_cnt && offset <= iov[0].iov_len &&
        bytes <= iov[0].iov_len - offset) {
        memcpy(buf, (const char *)iov[0].iov_base + offset, bytes);
        return bytes;
    }
    return iov_to_buf_full(iov, iov_cnt, offset, buf, bytes);
}

/* Fills the bytes [offset, offset + bytes) of the vector with fillc; returns how many. */
size_t iov_memset(const struct iovec *iov, unsigned iov_cnt, size_t offset, int fillc,
                  size_t bytes);

#endif
