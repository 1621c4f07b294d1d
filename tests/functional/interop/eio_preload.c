/*
 * Test-only LD_PRELOAD shim: a read through pread/preadv that covers the byte offset in
 * SEN_TEST_EIO_OFFSET fails with EIO, as a bad sector would.  Lets a test show what a tool
 * does when one metadata table cannot be read, without a device-mapper error target.
 * With SEN_TEST_SYNC_EIO_AFTER_WRITE, the first fdatasync/fsync after a write (which
 * itself succeeds) covering that byte offset fails with EIO: the write may or may not be
 * on the disk, as after a failed flush.
 * With SEN_TEST_CFR_ERRNO=N, copy_file_range fails with errno N (a filesystem that
 * cannot offload copies), counting its calls in SEN_TEST_CFR_COUNT's file if set.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <unistd.h>

static int covers(off_t off, size_t len)
{
    const char *e = getenv("SEN_TEST_EIO_OFFSET");
    if (!e) {
        return 0;
    }
    long long bad = atoll(e);
    return bad >= off && bad < off + (long long)len;
}

static size_t iov_len(const struct iovec *iov, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

#define PREAD(name)                                                                   \
    ssize_t name(int fd, void *buf, size_t len, off_t off)                            \
    {                                                                                 \
        static ssize_t (*real)(int, void *, size_t, off_t);                           \
        if (!real) {                                                                  \
            real = dlsym(RTLD_NEXT, #name);                                           \
        }                                                                             \
        if (covers(off, len)) {                                                       \
            errno = EIO;                                                              \
            return -1;                                                                \
        }                                                                             \
        return real(fd, buf, len, off);                                               \
    }
#define PREADV(name)                                                                  \
    ssize_t name(int fd, const struct iovec *iov, int n, off_t off)                   \
    {                                                                                 \
        static ssize_t (*real)(int, const struct iovec *, int, off_t);                \
        if (!real) {                                                                  \
            real = dlsym(RTLD_NEXT, #name);                                           \
        }                                                                             \
        if (covers(off, iov_len(iov, n))) {                                           \
            errno = EIO;                                                              \
            return -1;                                                                \
        }                                                                             \
        return real(fd, iov, n, off);                                                 \
    }

PREAD(pread)
PREAD(pread64)
PREADV(preadv)
PREADV(preadv64)

static bool written_unsynced;

static void note_write(off_t off, size_t len)
{
    const char *e = getenv("SEN_TEST_SYNC_EIO_AFTER_WRITE");
    if (e && atoll(e) >= off && atoll(e) < off + (long long)len) {
        written_unsynced = true;
    }
}

#define PWRITE(name)                                                                  \
    ssize_t name(int fd, const void *buf, size_t len, off_t off)                      \
    {                                                                                 \
        static ssize_t (*real)(int, const void *, size_t, off_t);                     \
        if (!real) {                                                                  \
            real = dlsym(RTLD_NEXT, #name);                                           \
        }                                                                             \
        ssize_t n = real(fd, buf, len, off);                                          \
        if (n > 0) {                                                                  \
            note_write(off, n);                                                       \
        }                                                                             \
        return n;                                                                     \
    }
#define PWRITEV(name)                                                                 \
    ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off)                 \
    {                                                                                 \
        static ssize_t (*real)(int, const struct iovec *, int, off_t);                \
        if (!real) {                                                                  \
            real = dlsym(RTLD_NEXT, #name);                                           \
        }                                                                             \
        ssize_t n = real(fd, iov, cnt, off);                                          \
        if (n > 0) {                                                                  \
            note_write(off, n);                                                       \
        }                                                                             \
        return n;                                                                     \
    }
#define SYNC(name)                                                                    \
    int name(int fd)                                                                  \
    {                                                                                 \
        static int (*real)(int);                                                      \
        if (!real) {                                                                  \
            real = dlsym(RTLD_NEXT, #name);                                           \
        }                                                                             \
        if (written_unsynced) {                                                       \
            written_unsynced = false;                                                 \
            errno = EIO;                                                              \
            return -1;                                                                \
        }                                                                             \
        return real(fd);                                                              \
    }

PWRITE(pwrite)
PWRITE(pwrite64)
PWRITEV(pwritev)
PWRITEV(pwritev64)
SYNC(fdatasync)
SYNC(fsync)

ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len,
                        unsigned flags)
{
    static ssize_t (*real)(int, off_t *, int, off_t *, size_t, unsigned);
    const char *e = getenv("SEN_TEST_CFR_ERRNO");
    if (!real) {
        real = dlsym(RTLD_NEXT, "copy_file_range");
    }
    if (e) {
        const char *count = getenv("SEN_TEST_CFR_COUNT");
        if (count) {
            FILE *f = fopen(count, "a");
            if (f) {
                fputs("x", f);
                fclose(f);
            }
        }
        errno = atoi(e);
        return -1;
    }
    return real(in, in_off, out, out_off, len, flags);
}
