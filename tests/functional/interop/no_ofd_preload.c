/*
 * Test-only LD_PRELOAD shim: the host as one without open-file-description locks (Linux
 * before 3.15, some other systems): fcntl's F_OFD_GETLK / F_OFD_SETLK / F_OFD_SETLKW fail
 * with EINVAL, as an unknown command does; every other fcntl goes through.  Lets a test
 * show QEMU's and Sen's fallback to POSIX locks (locking=on) and locking=auto's silence.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>

static int shim(const char *name, int fd, int cmd, void *arg)
{
    int (*real)(int, int, ...) = (int (*)(int, int, ...))dlsym(RTLD_NEXT, name);

    if (cmd == F_OFD_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW) {
        errno = EINVAL;
        return -1;
    }
    return real(fd, cmd, arg);
}

#define FCNTL(name)                                                                   \
    int name(int fd, int cmd, ...)                                                    \
    {                                                                                 \
        va_list ap;                                                                   \
        va_start(ap, cmd);                                                            \
        void *arg = va_arg(ap, void *);                                               \
        va_end(ap);                                                                   \
        return shim(#name, fd, cmd, arg);                                             \
    }

FCNTL(fcntl)
FCNTL(fcntl64)
