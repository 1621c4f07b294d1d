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
 * all of them ("locks can be lost unexpectedly", QEMU warns).  Sen keeps the process's
 * own books for them (PosixFile below), so that its own holders still see each other and
 * never take each other's bytes away; what other programs do to the file in this process
 * is beyond it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
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

/*
 * POSIX locks belong to the process, per file: two holders in this process never see each
 * other in the kernel, a byte one of them unlocks is gone for the other too, and closing
 * any fd of the file drops every lock the process has on it.  So with POSIX locks the
 * process keeps the books: per file (device and inode) the holders, each by the fd it
 * locks through and the bytes it needs.  The kernel holds a byte while some holder needs
 * it; the holders look for each other here as OFD holders do in the kernel; and whoever
 * closes an fd of the file takes the others' bytes again (file_lock_close).  This is
 * process-wide state by nature: it mirrors the kernel's per-process locks.
 */
typedef struct PosixHolder {
    int fd;
    uint64_t perm, unshared;
} PosixHolder;

typedef struct PosixFile {
    dev_t dev;
    ino_t ino;
    GArray *holders; /* PosixHolder */
} PosixFile;

static GMutex posix_mutex;
static GPtrArray *posix_files; /* PosixFile *, under posix_mutex */

static PosixFile *posix_file_locked(const struct stat *st, bool create)
{
    for (guint i = 0; posix_files && i < posix_files->len; i++) {
        PosixFile *f = g_ptr_array_index(posix_files, i);
        if (f->dev == st->st_dev && f->ino == st->st_ino) {
            return f;
        }
    }
    if (!create) {
        return NULL;
    }
    PosixFile *f = g_new0(PosixFile, 1);
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->holders = g_array_new(false, true, sizeof(PosixHolder));
    if (!posix_files) {
        posix_files = g_ptr_array_new();
    }
    g_ptr_array_add(posix_files, f);
    return f;
}

static PosixHolder *posix_holder_locked(PosixFile *f, int fd, guint *index)
{
    for (guint i = 0; i < f->holders->len; i++) {
        PosixHolder *h = &g_array_index(f->holders, PosixHolder, i);
        if (h->fd == fd) {
            *index = i;
            return h;
        }
    }
    return NULL;
}

/* What the holders of f other than fd use (or, with unshared, refuse to share). */
static uint64_t posix_others_locked(PosixFile *f, int fd, bool unshared)
{
    uint64_t bits = 0;

    for (guint i = 0; i < f->holders->len; i++) {
        const PosixHolder *h = &g_array_index(f->holders, PosixHolder, i);
        if (h->fd != fd) {
            bits |= unshared ? h->unshared : h->perm;
        }
    }
    return bits;
}

/* fd no longer holds anything on f; f goes once nobody holds on it. */
static void posix_forget_locked(PosixFile *f, int fd)
{
    guint index;

    if (posix_holder_locked(f, fd, &index)) {
        g_array_remove_index_fast(f->holders, index);
    }
    if (!f->holders->len) {
        g_ptr_array_remove_fast(posix_files, f);
        g_array_free(f->holders, true);
        g_free(f);
    }
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

/* Whether another holder conflicts with using perm and refusing to share ~shared; with
 * POSIX locks, the holders in this process use others_perm and refuse others_unshared. */
static bool check_bytes(int fd, uint64_t perm, uint64_t shared, bool posix,
                        uint64_t others_perm, uint64_t others_unshared, Error **errp)
{
    for (int i = 0; i < FILE_LOCK_NPERMS; i++) {
        uint64_t bit = 1ull << i;
        int ret;

        if (perm & bit) {
            ret = (others_unshared & bit) ? 1 : byte_taken(fd, FILE_LOCK_SHARED_BASE + i, posix);
            if (ret != 0) {
                error_setg(errp, "Failed to get \"%s\" lock", perm_names[i]);
                return false;
            }
        }
        if (!(shared & bit)) {
            ret = (others_perm & bit) ? 1 : byte_taken(fd, FILE_LOCK_PERM_BASE + i, posix);
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
    uint64_t others_perm = 0, others_unshared = 0;
    PosixFile *f = NULL;
    struct stat st;
    int off = 0, ret;

    /* Unchanged: conflicts were looked for when these bytes were taken, and whoever
     * came later saw them. */
    if (perm == l->perm && unshared == l->unshared) {
        return true;
    }
    if (l->posix) {
        if (fstat(fd, &st) < 0) {
            error_setg_errno(errp, errno, "Failed to lock the image [%s]", filename);
            return false;
        }
        g_mutex_lock(&posix_mutex);
        f = posix_file_locked(&st, true);
        others_perm = posix_others_locked(f, fd, false);
        others_unshared = posix_others_locked(f, fd, true);
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
    } else if ((new_perm || new_unshared) &&
               !check_bytes(fd, perm, shared, l->posix, others_perm, others_unshared, errp)) {
        ret = -EAGAIN;
    }
    if (ret < 0) {
        error_append_hint(errp, "Is another process using the image [%s]?\n", filename);
        /* Give back what this call took; what was held before stays held (POSIX locks:
         * and what another holder in this process needs). */
        apply_bytes(fd, FILE_LOCK_PERM_BASE, new_perm & ~others_perm, F_UNLCK, l->posix,
                    &off);
        apply_bytes(fd, FILE_LOCK_SHARED_BASE, new_unshared & ~others_unshared, F_UNLCK,
                    l->posix, &off);
        if (f) {
            if (!f->holders->len) {
                posix_forget_locked(f, fd);
            }
            g_mutex_unlock(&posix_mutex);
        }
        return false;
    }
    /* Unlocking cannot conflict; a failure only leaves a byte held until close. */
    apply_bytes(fd, FILE_LOCK_PERM_BASE, l->perm & ~perm & ~others_perm, F_UNLCK, l->posix,
                &off);
    apply_bytes(fd, FILE_LOCK_SHARED_BASE, l->unshared & ~unshared & ~others_unshared,
                F_UNLCK, l->posix, &off);
    l->perm = perm;
    l->unshared = unshared;
    if (f) {
        guint index;
        PosixHolder *h = posix_holder_locked(f, fd, &index);
        if (!h) {
            PosixHolder n = { .fd = fd };
            g_array_append_val(f->holders, n);
            h = &g_array_index(f->holders, PosixHolder, f->holders->len - 1);
        }
        h->perm = perm;
        h->unshared = unshared;
        if (!perm && !unshared) {
            posix_forget_locked(f, fd);
        }
        g_mutex_unlock(&posix_mutex);
    }
    return true;
}

bool file_lock_copy(int fd, const FileLockState *l, Error **errp)
{
    int off = 0;
    int ret = apply_bytes(fd, FILE_LOCK_PERM_BASE, l->perm, F_RDLCK, l->posix, &off);
    struct stat st;

    if (ret == 0) {
        ret = apply_bytes(fd, FILE_LOCK_SHARED_BASE, l->unshared, F_RDLCK, l->posix, &off);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to lock byte %d", off);
        /* fd is about to be closed by the caller, which drops what it took. */
        return false;
    }
    if (l->posix && (l->perm || l->unshared) && fstat(fd, &st) == 0) {
        /* The process held these bytes already; fd is one more holder of them, until
         * the old fd goes through file_lock_close. */
        g_mutex_lock(&posix_mutex);
        PosixFile *f = posix_file_locked(&st, true);
        PosixHolder n = { .fd = fd, .perm = l->perm, .unshared = l->unshared };
        g_array_append_val(f->holders, n);
        g_mutex_unlock(&posix_mutex);
    }
    return true;
}

void file_lock_release(int fd, FileLockState *l)
{
    uint64_t others_perm = 0, others_unshared = 0;
    PosixFile *f = NULL;
    struct stat st;
    bool posix = l->posix && fstat(fd, &st) == 0;
    int off;

    if (posix) {
        g_mutex_lock(&posix_mutex);
        f = posix_file_locked(&st, false);
        if (f) {
            others_perm = posix_others_locked(f, fd, false);
            others_unshared = posix_others_locked(f, fd, true);
        }
    }
    apply_bytes(fd, FILE_LOCK_PERM_BASE, l->perm & ~others_perm, F_UNLCK, l->posix, &off);
    apply_bytes(fd, FILE_LOCK_SHARED_BASE, l->unshared & ~others_unshared, F_UNLCK, l->posix,
                &off);
    l->perm = 0;
    l->unshared = 0;
    if (f) {
        posix_forget_locked(f, fd);
    }
    if (posix) {
        g_mutex_unlock(&posix_mutex);
    }
}

void file_lock_close(int fd)
{
    struct stat st;
    bool posix;
    int off;

    g_mutex_lock(&posix_mutex);
    posix = posix_files && posix_files->len && fstat(fd, &st) == 0;
    PosixFile *f = posix ? posix_file_locked(&st, false) : NULL;
    if (f) {
        posix_forget_locked(f, fd);
    }
    close(fd);
    /* POSIX locks: that close dropped every lock of the process on the file; the other
     * holders take theirs again.  (A moment without them: the fallback's known weakness,
     * which QEMU's warning names.) */
    f = posix ? posix_file_locked(&st, false) : NULL;
    for (guint i = 0; f && i < f->holders->len; i++) {
        const PosixHolder *h = &g_array_index(f->holders, PosixHolder, i);
        if (apply_bytes(h->fd, FILE_LOCK_PERM_BASE, h->perm, F_RDLCK, true, &off) < 0 ||
            apply_bytes(h->fd, FILE_LOCK_SHARED_BASE, h->unshared, F_RDLCK, true, &off) < 0) {
            g_debug("could not lock byte %d of an image again after a close", off);
        }
    }
    g_mutex_unlock(&posix_mutex);
}
