/*
 * The iovec helpers (see sen/iov.h).  The copies share one walk: skip whole pieces until
 * offset falls inside one, then handle piece by piece until bytes are done or the vector
 * ends.  It is inlined into each entry point with its operation constant, so each is the
 * plain loop with one memcpy or memset in it.
 */
#include <stdint.h>
#include "sen/iov.h"

size_t iov_size(const struct iovec *iov, unsigned iov_cnt)
{
    size_t len = 0;

    for (unsigned i = 0; i < iov_cnt; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

typedef enum IovOp { IOV_FROM_BUF, IOV_TO_BUF, IOV_FILL } IovOp;

static inline __attribute__((always_inline)) size_t
iov_walk(const struct iovec *iov, unsigned iov_cnt, size_t offset, size_t bytes, IovOp op,
         uint8_t *buf, int fillc)
{
    size_t done = 0;

    for (unsigned i = 0; i < iov_cnt && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        uint8_t *p = (uint8_t *)iov[i].iov_base + offset;
        size_t c = iov[i].iov_len - offset;
        if (c > bytes - done) {
            c = bytes - done;
        }
        if (op == IOV_FROM_BUF) {
            memcpy(p, buf + done, c);
        } else if (op == IOV_TO_BUF) {
            memcpy(buf + done, p, c);
        } else {
            memset(p, fillc, c);
        }
        done += c;
        offset = 0;
    }
    return done;
}

size_t iov_from_buf_full(const struct iovec *iov, unsigned iov_cnt, size_t offset,
                         const void *buf, size_t bytes)
{
    return iov_walk(iov, iov_cnt, offset, bytes, IOV_FROM_BUF, (uint8_t *)buf, 0);
}

size_t iov_to_buf_full(const struct iovec *iov, unsigned iov_cnt, size_t offset, void *buf,
                       size_t bytes)
{
    return iov_walk(iov, iov_cnt, offset, bytes, IOV_TO_BUF, buf, 0);
}

size_t iov_memset(const struct iovec *iov, unsigned iov_cnt, size_t offset, int fillc,
                  size_t bytes)
{
    return iov_walk(iov, iov_cnt, offset, bytes, IOV_FILL, NULL, fillc);
}
