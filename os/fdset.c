/*
 * File descriptor sets: -add-fd fd=N,set=S[,opaque=STR] and the /dev/fdset/S paths that
 * open them (QEMU's scheme, docs/security.md).
 *
 * A manager (libvirt, a script) opens the images and files itself and passes the
 * descriptors in; Sen then needs no access to the filesystem at all.  Opening
 * "/dev/fdset/S" with some flags duplicates the first descriptor of set S whose access
 * mode (O_RDONLY/O_WRONLY/O_RDWR) equals the requested one; the status flags that
 * fcntl(F_SETFL) can change (O_DIRECT, O_NONBLOCK ...) are applied to the duplicate, and
 * O_TRUNC truncates, as open() would have.
 *
 * The sets belong to the process, as the descriptors do, so they live in this file and
 * not in a Machine.  They are only touched from the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sen/os.h"

#define FDSET_PREFIX "/dev/fdset/"

typedef struct FdsetEntry {
    int64_t set_id;
    int fd;
    char *opaque;
} FdsetEntry;

static GArray *fdset_entries; /* of FdsetEntry, in the order they were added */

bool fdset_add_fd(int64_t set_id, int fd, const char *opaque, Error **errp)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0) {
        error_setg_errno(errp, errno, "descriptor %d is not open", fd);
        return false;
    }
    /* Sen's own descriptors are close-on-exec; a passed one is made so now. */
    if (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "descriptor %d: cannot set close-on-exec", fd);
        return false;
    }
    if (!fdset_entries) {
        fdset_entries = g_array_new(false, false, sizeof(FdsetEntry));
    }
    FdsetEntry e = { .set_id = set_id, .fd = fd, .opaque = g_strdup(opaque) };
    g_array_append_val(fdset_entries, e);
    return true;
}

bool fdset_remove_fd(int64_t set_id, bool has_fd, int fd)
{
    bool found = false;

    for (guint i = 0; fdset_entries && i < fdset_entries->len;) {
        FdsetEntry *e = &g_array_index(fdset_entries, FdsetEntry, i);
        if (e->set_id == set_id && (!has_fd || e->fd == fd)) {
            close(e->fd);
            g_free(e->opaque);
            g_array_remove_index(fdset_entries, i);
            found = true;
        } else {
            i++;
        }
    }
    return found;
}

int64_t fdset_unused_id(void)
{
    for (int64_t id = 0;; id++) {
        bool used = false;
        for (guint i = 0; fdset_entries && i < fdset_entries->len && !used; i++) {
            used = g_array_index(fdset_entries, FdsetEntry, i).set_id == id;
        }
        if (!used) {
            return id;
        }
    }
}

void fdset_foreach(FdsetVisitor *visit, void *opaque)
{
    for (guint i = 0; fdset_entries && i < fdset_entries->len; i++) {
        const FdsetEntry *e = &g_array_index(fdset_entries, FdsetEntry, i);
        visit(e->set_id, e->fd, e->opaque, opaque);
    }
}

void fdset_clear(void)
{
    while (fdset_entries && fdset_entries->len) {
        const FdsetEntry *e = &g_array_index(fdset_entries, FdsetEntry, 0);
        fdset_remove_fd(e->set_id, false, 0);
    }
    if (fdset_entries) {
        g_array_free(fdset_entries, true);
        fdset_entries = NULL;
    }
}

/* "/dev/fdset/12" -> 12; -1 for anything else (also "/dev/fdset/x", "/dev/fdset/"). */
static int64_t fdset_parse_path(const char *path)
{
    const char *num = path + strlen(FDSET_PREFIX);
    char *end;

    if (!g_str_has_prefix(path, FDSET_PREFIX) || !g_ascii_isdigit(*num)) {
        return -1;
    }
    errno = 0;
    long long id = strtoll(num, &end, 10);
    return errno || *end ? -1 : id;
}

bool fdset_is_path(const char *path)
{
    return g_str_has_prefix(path, FDSET_PREFIX);
}

/* F_SETFL changes only these; the rest of the requested flags are for open() itself. */
#define FDSET_SETFL_MASK (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK)

static int fdset_dup(int64_t set_id, int flags)
{
    bool set_exists = false;

    for (guint i = 0; fdset_entries && i < fdset_entries->len; i++) {
        const FdsetEntry *e = &g_array_index(fdset_entries, FdsetEntry, i);
        if (e->set_id != set_id) {
            continue;
        }
        set_exists = true;
        int fl = fcntl(e->fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) != (flags & O_ACCMODE)) {
            continue;
        }
        int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            return -1;
        }
        /* Note that the status flags are shared with the passed descriptor. */
        if (fcntl(fd, F_SETFL, (fl & ~FDSET_SETFL_MASK) | (flags & FDSET_SETFL_MASK)) < 0 ||
            ((flags & O_TRUNC) && ftruncate(fd, 0) < 0)) {
            int err = errno;
            close(fd);
            errno = err;
            return -1;
        }
        return fd;
    }
    /* QEMU's errnos: no such set, or none of its descriptors has the access mode. */
    errno = set_exists ? EACCES : ENOENT;
    return -1;
}

int os_open(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (fdset_is_path(path)) {
        int64_t id = fdset_parse_path(path);
        if (id < 0) {
            errno = ENOENT;
            return -1;
        }
        return fdset_dup(id, flags);
    }
    return open(path, flags | O_CLOEXEC, mode);
}

/*
 * Named descriptors (QMP getfd/closefd): QEMU keeps them per monitor; Sen has one table
 * for the process, which only differs when two monitors use the same name.
 */
static GHashTable *fdname_table; /* name -> fd + 1 */

static void fdname_close_value(gpointer v)
{
    close(GPOINTER_TO_INT(v) - 1);
}

void fdname_put(const char *name, int fd)
{
    if (!fdname_table) {
        fdname_table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                             fdname_close_value);
    }
    /* A name given again replaces (and closes) its old descriptor, as in QEMU. */
    g_hash_table_insert(fdname_table, g_strdup(name), GINT_TO_POINTER(fd + 1));
}

bool fdname_close(const char *name)
{
    return fdname_table && g_hash_table_remove(fdname_table, name);
}

int fdname_take(const char *name, Error **errp)
{
    gpointer key, value;

    if (!fdname_table || !g_hash_table_steal_extended(fdname_table, name, &key, &value)) {
        error_setg(errp, "File descriptor named '%s' has not been found", name);
        return -1;
    }
    g_free(key);
    return GPOINTER_TO_INT(value) - 1;
}

void fdname_clear(void)
{
    if (fdname_table) {
        g_hash_table_destroy(fdname_table);
        fdname_table = NULL;
    }
}
