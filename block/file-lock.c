/*
 * Image locking as QEMU's file-posix does it, byte for byte, so that Sen and QEMU
 * processes see each other's locks (docs/image-locking.md).
 *
 * Every lock is a Linux open-file-description (OFD) read lock on one byte of the image
 * file: byte FILE_LOCK_PERM_BASE + n while the holder uses permission bit n, byte
 * FILE_LOCK_SHARED_BASE + n while it refuses to share it.  Read locks never conflict with
 * each other, so taking them always succeeds; conflicts are found by testing (F_OFD_GETLK
 * with a write lock) the byte the other side would hold: who wants permission n tests
 * SHARED_BASE + n (does anybody refuse to share it?), who refuses to share n tests
 * PERM_BASE + n (does anybody use it?).  Locks are taken before they are tested, so of
 * two processes racing for the same image at least one sees the other.
 *
 * OFD locks belong to the open file description: a process that opens the image twice
 * conflicts with itself (as QEMU does), and closing the fd drops the locks.
 *
 * On a host without OFD locks (F_OFD_* fail with EINVAL) locking=on falls back to
 * classic POSIX locks on the same bytes, as QEMU does (FileLockState.posix): those belong
 * to the process, so they never conflict within it, and closing any fd of the image drops
 * all of them ("locks can be lost unexpectedly", QEMU warns).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "block/block-internal.h"

static const char *const perm_names[FILE_LOCK_NPERMS] = {
    "consistent read", "write", "write unchanged", "resize",
};

const char *file_lock_perm_name(int bit)
{
    return bit >= 0 && bit < FILE_LOCK_NPERMS ? perm_names[bit] : "?";
}

int file_lock_byte(int base, uint64_t perm)
{
    g_assert(perm && !(perm & (perm - 1)) && perm <= BLK_PERM_ALL);
    return base + __builtin_ctzll(perm);
}

/* F_RDLCK or F_UNLCK on one byte; 0 or -errno. */
static int lock_byte(int fd, int off, short type, bool posix)
{
    struct flock fl = { .l_whence = SEEK_SET, .l_start = off, .l_len = 1, .l_type = type };

    return fcntl(fd, posix ? F_SETLK : F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* 1 when another open file description (with posix: another process) holds a lock on
 * the byte, 0 if not, or -errno. */
static int byte_taken(int fd, int off, bool posix)
{
    struct flock fl = { .l_whence = SEEK_SET, .l_start = off, .l_len = 1, .l_type = F_WRLCK };

    if (fcntl(fd, posix ? F_GETLK : F_OFD_GETLK, &fl) < 0) {
        return -errno;
    }
    return fl.l_type != F_UNLCK;
}

bool file_lock_supported(int fd)
{
    return byte_taken(fd, FILE_LOCK_PERM_BASE, false) >= 0;
}

static gpointer probe_ofd(gpointer unused)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    struct flock fl = { .l_whence = SEEK_SET, .l_len = 1, .l_type = F_WRLCK };
    bool has = true;

    if (fd >= 0) {
        has = !(fcntl(fd, F_OFD_GETLK, &fl) < 0 && errno == EINVAL);
        close(fd);
    }
    return GINT_TO_POINTER(has);
}

bool file_lock_host_has_ofd(void)
{
    static GOnce once = G_ONCE_INIT;

    return GPOINTER_TO_INT(g_once(&once, probe_ofd, NULL));
}

/* Locks (or with F_UNLCK unlocks) the bytes of base for the permissions in bits. */
static int apply_bytes(int fd, int base, uint64_t bits, short type, bool posix,
                       int *failed_off)
{
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        if (bits & (1ull << i)) {
            int ret = lock_byte(fd, base + i, type, posix);
            if (ret < 0) {
                *failed_off = base + i;
                return ret;
            }
        }
    }
    return 0;
}

/* Whether another holder conflicts with using perm and refusing to share ~shared. */
static bool check_bytes(int fd, uint64_t perm, uint64_t shared, bool posix, Error **errp)
{
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        uint64_t bit = 1ull << i;
        int ret;

        if (perm & bit) {
            ret = byte_taken(fd, FILE_LOCK_SHARED_BASE + i, posix);
            if (ret != 0) {
                error_setg(errp, "Failed to get \"%s\" lock", perm_names[i]);
                return false;
            }
        }
        if (!(shared & bit)) {
            ret = byte_taken(fd, FILE_LOCK_PERM_BASE + i, posix);
            if (ret != 0) {
                error_setg(errp, "Failed to get shared \"%s\" lock", perm_names[i]);
                return false;
            }
        }
    }
    return true;
}

bool file_lock_apply(int fd, FileLockState *l, uint64_t perm, uint64_t shared,
                     const char *filename, Error **errp)
{
    perm &= BLK_PERM_ALL;
    uint64_t unshared = ~shared & BLK_PERM_ALL;
    uint64_t new_perm = perm & ~l->perm, new_unshared = unshared & ~l->unshared;
    int off = 0, ret;

    /* Unchanged: conflicts were looked for when these bytes were taken, and whoever
     * came later saw them. */
    if (perm == l->perm && unshared == l->unshared) {
        return true;
    }
    /* Take the new bytes first (keeping the old ones), then look for conflicts. */
    ret = apply_bytes(fd, FILE_LOCK_PERM_BASE, new_perm, F_RDLCK, l->posix, &off);
    if (ret == 0) {
        ret = apply_bytes(fd, FILE_LOCK_SHARED_BASE, new_unshared, F_RDLCK, l->posix, &off);
    }
    /* Only giving bytes up cannot conflict with anybody: no look (a holder that came
     * later without looking, as QEMU's reopen copies its locks, must not keep a node
     * from dropping its write bytes when it becomes read-only). */
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to lock byte %d", off);
    } else if ((new_perm || new_unshared) && !check_bytes(fd, perm, shared, l->posix, errp)) {
        ret = -EAGAIN;
    }
    if (ret < 0) {
        error_append_hint(errp, "Is another process using the image [%s]?\n", filename);
        /* Give back what this call took; what was held before stays held. */
        apply_bytes(fd, FILE_LOCK_PERM_BASE, new_perm, F_UNLCK, l->posix, &off);
        apply_bytes(fd, FILE_LOCK_SHARED_BASE, new_unshared, F_UNLCK, l->posix, &off);
        return false;
    }
    /* Unlocking cannot conflict; a failure only leaves a byte held until close. */
    apply_bytes(fd, FILE_LOCK_PERM_BASE, l->perm & ~perm, F_UNLCK, l->posix, &off);
    apply_bytes(fd, FILE_LOCK_SHARED_BASE, l->unshared & ~unshared, F_UNLCK, l->posix, &off);
    l->perm = perm;
    l->unshared = unshared;
    return true;
}

bool file_lock_copy(int fd, const FileLockState *l, Error **errp)
{
    int off = 0;
    int ret = apply_bytes(fd, FILE_LOCK_PERM_BASE, l->perm, F_RDLCK, l->posix, &off);

    if (ret == 0) {
        ret = apply_bytes(fd, FILE_LOCK_SHARED_BASE, l->unshared, F_RDLCK, l->posix, &off);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to lock byte %d", off);
        /* fd is about to be closed by the caller, which drops what it took. */
        return false;
    }
    return true;
}

void file_lock_release(int fd, FileLockState *l)
{
    int off;

    apply_bytes(fd, FILE_LOCK_PERM_BASE, l->perm, F_UNLCK, l->posix, &off);
    apply_bytes(fd, FILE_LOCK_SHARED_BASE, l->unshared, F_UNLCK, l->posix, &off);
    l->perm = 0;
    l->unshared = 0;
}
