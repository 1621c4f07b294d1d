/* Bounded whole-file reads: see include/sen/host-file.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sen/host-file.h"

GBytes *host_file_read(const char *path, uint64_t max, Error **errp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_setg(errp, "%s", g_strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        error_setg(errp, "%s", g_strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        error_setg(errp, "%s", g_strerror(EISDIR));
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        error_setg(errp, "too large (%" PRIu64 " bytes, at most %" PRIu64 ")",
                   (uint64_t)st.st_size, max);
        close(fd);
        return NULL;
    }

    /* The size is only a hint (a pipe or device has none, a file may grow): read until
     * end of file, but never past max + 1 bytes. */
    uint64_t cap = MIN(max, (uint64_t)G_MAXSIZE - 1) + 1;
    size_t alloc = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : MIN(cap, 65536);
    size_t len = 0;
    g_autofree uint8_t *buf = g_malloc(alloc);
    for (;;) {
        if (len == alloc) {
            if (alloc >= cap) {
                break;
            }
            alloc = MIN(cap, (uint64_t)alloc * 2);
            buf = g_realloc(buf, alloc);
        }
        ssize_t n = read(fd, buf + len, alloc - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg(errp, "%s", g_strerror(errno));
            close(fd);
            return NULL;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (len > max) {
        error_setg(errp, "too large (more than %" PRIu64 " bytes)", max);
        return NULL;
    }
    return g_bytes_new_take(g_steal_pointer(&buf), len);
}
