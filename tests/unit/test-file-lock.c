/*
 * Image locks (block/file-lock.c, block/block-perm.c): the bytes QEMU 7.2 locks, byte for
 * byte, for the lock layer alone and for the images the block layer opens, as seen from
 * another open file description (what another process sees).  The expected sets are the
 * ones /proc/locks shows for qemu-io and qemu-system-x86_64 on the same images
 * (docs/image-locking.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "block/block-internal.h"
#include "block-test-util.h"

static char *test_dir;

/*
 * The test is linked with --wrap=fcntl64: with no_ofd set, every F_OFD_* fcntl of the
 * process (the block layer's) fails with EINVAL, as on a host without OFD locks, so that
 * Sen falls back to POSIX locks.  The test's own looks go to the real fcntl.  Set only in
 * a subprocess: the block layer probes the host once per process.
 */
int __real_fcntl64(int fd, int cmd, ...);
int __wrap_fcntl64(int fd, int cmd, ...);
static bool no_ofd;

int __wrap_fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (no_ofd && (cmd == F_OFD_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW)) {
        errno = EINVAL;
        return -1;
    }
    return __real_fcntl64(fd, cmd, arg);
}

/* The bytes in [90, 215) that some other open file description holds, as "100,201". */
static char *held_bytes(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    GString *out = g_string_new(NULL);

    g_assert_cmpint(fd, >=, 0);
    for (int off = 90; off < 215; off++) {
        struct flock fl = { .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
                            .l_type = F_WRLCK };
        g_assert_cmpint(__real_fcntl64(fd, F_OFD_GETLK, &fl), ==, 0);
        if (fl.l_type != F_UNLCK) {
            g_string_append_printf(out, "%s%d", out->len ? "," : "", off);
        }
    }
    close(fd);
    return g_string_free(out, false);
}

/*
 * The test is linked with --wrap=close: while close_watch.path is set, every close() in
 * the process (the block layer's too) checks afterwards that the bytes close_watch.held
 * lists are still held by some open file description, and counts the closes after which
 * one was not.  A reopen that closed its old fd before locking the new one is caught at
 * that very close.
 */
int __real_close(int fd);
static struct {
    const char *path;
    const char *held;   /* "100,201,203": each must stay held */
    int gaps;           /* closes after which one was free */
    bool probing;       /* held_bytes' own close */
} close_watch;

static bool bytes_include(const char *held, const char *want)
{
    g_auto(GStrv) h = g_strsplit(held, ",", -1), w = g_strsplit(want, ",", -1);
    for (int i = 0; w[i]; i++) {
        if (!g_strv_contains((const char *const *)h, w[i])) {
            return false;
        }
    }
    return true;
}

int __wrap_close(int fd);
int __wrap_close(int fd)
{
    int ret = __real_close(fd);

    if (close_watch.path && !close_watch.probing) {
        close_watch.probing = true;
        g_autofree char *held = held_bytes(close_watch.path);
        close_watch.probing = false;
        if (!bytes_include(held, close_watch.held)) {
            g_test_message("after close(%d): %s held, %s wanted", fd, held, close_watch.held);
            close_watch.gaps++;
        }
    }
    return ret;
}

static void close_watch_start(const char *path, const char *held)
{
    close_watch.path = path;
    close_watch.held = held;
    close_watch.gaps = 0;
}

static int close_watch_stop(void)
{
    close_watch.path = NULL;
    return close_watch.gaps;
}

static char *new_file(const char *name)
{
    char *path = g_build_filename(test_dir, name, NULL);
    g_assert_true(g_file_set_contents(path, "", 0, NULL));
    return path;
}

static void test_byte_layout(void)
{
    g_assert_cmpint(file_lock_byte(FILE_LOCK_PERM_BASE, BLK_PERM_CONSISTENT_READ), ==, 100);
    g_assert_cmpint(file_lock_byte(FILE_LOCK_PERM_BASE, BLK_PERM_WRITE), ==, 101);
    g_assert_cmpint(file_lock_byte(FILE_LOCK_PERM_BASE, BLK_PERM_WRITE_UNCHANGED), ==, 102);
    g_assert_cmpint(file_lock_byte(FILE_LOCK_PERM_BASE, BLK_PERM_RESIZE), ==, 103);
    g_assert_cmpint(file_lock_byte(FILE_LOCK_SHARED_BASE, BLK_PERM_RESIZE), ==, 203);
    g_assert_cmpstr(file_lock_perm_name(1), ==, "write");
    g_assert_cmpstr(file_lock_perm_name(0), ==, "consistent read");

    g_autofree char *path = new_file("layout");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    FileLockState l = { 0 };
    Error *err = NULL;
    g_assert_true(file_lock_supported(fd));

    /* A qcow2 writer's file: uses read/write/resize, shares read and write-unchanged. */
    g_assert_true(file_lock_apply(fd, &l, BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE |
                                  BLK_PERM_RESIZE,
                                  BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED,
                                  path, &err));
    g_autofree char *w = held_bytes(path);
    g_assert_cmpstr(w, ==, "100,101,103,201,203");
    /* Down to a reader that shares everything: the bytes no longer needed go. */
    g_assert_true(file_lock_apply(fd, &l, BLK_PERM_CONSISTENT_READ, BLK_PERM_ALL, path,
                                  &err));
    g_autofree char *r = held_bytes(path);
    g_assert_cmpstr(r, ==, "100");
    file_lock_release(fd, &l);
    g_autofree char *none = held_bytes(path);
    g_assert_cmpstr(none, ==, "");
    close(fd);
}

static void test_conflicts(void)
{
    g_autofree char *path = new_file("conflict");
    int a = open(path, O_RDWR | O_CLOEXEC), b = open(path, O_RDWR | O_CLOEXEC);
    FileLockState la = { 0 }, lb = { 0 };
    Error *err = NULL;

    /* a writes and lets nobody else write. */
    g_assert_true(file_lock_apply(a, &la, BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE,
                                  BLK_PERM_ALL & ~BLK_PERM_WRITE, path, &err));
    /* b wants to write: byte 201 says no. */
    g_assert_false(file_lock_apply(b, &lb, BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE,
                                   BLK_PERM_ALL, path, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Failed to get \"write\" lock");
    g_autofree char *hint = g_strdup_printf("Is another process using the image [%s]?\n",
                                            path);
    g_assert_cmpstr(error_get_hint(err), ==, hint);
    g_clear_pointer(&err, error_free);
    /* b only reads but refuses writers: byte 101 says a writes. */
    g_assert_false(file_lock_apply(b, &lb, BLK_PERM_CONSISTENT_READ,
                                   BLK_PERM_ALL & ~BLK_PERM_WRITE, path, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Failed to get shared \"write\" lock");
    g_clear_pointer(&err, error_free);
    /* The failed attempts left nothing behind: only a's bytes are held. */
    g_assert_cmpuint(lb.perm | lb.unshared, ==, 0);
    g_autofree char *held = held_bytes(path);
    g_assert_cmpstr(held, ==, "100,101,201");
    /* A reader sharing everything (qemu-img info -U) gets in. */
    g_assert_true(file_lock_apply(b, &lb, BLK_PERM_CONSISTENT_READ, BLK_PERM_ALL, path,
                                  &err));
    /* Once a closes, b may write. */
    close(a);
    g_assert_true(file_lock_apply(b, &lb, BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE,
                                  BLK_PERM_ALL, path, &err));
    close(b);
}

static char *open_held(const char *path, const char *fmt, const char *opts, int flags)
{
    Error *err = NULL;
    Keyval *kv = opts ? keyval_parse(opts, NULL, &err) : NULL;
    BlockDriverState *bs = bdrv_open(path, kv, fmt, flags, &err);
    if (!bs) {
        g_error("open %s: %s", path, error_get_pretty(err));
    }
    char *held = held_bytes(path);
    bdrv_unref(bs);
    return held;
}

/* What the block layer locks for each kind of open, as QEMU does. */
static void test_graph_bytes(void)
{
    g_autofree char *q = g_build_filename(test_dir, "g.qcow2", NULL);
    g_autofree char *top = g_build_filename(test_dir, "top.qcow2", NULL);
    g_autofree char *raw = new_file("g.raw");
    block_test_create("qcow2", q, "size=1M");
    g_autofree char *opts = g_strdup_printf("size=1M,backing_file=%s,backing_fmt=qcow2", q);
    block_test_create("qcow2", top, opts);

    g_autofree char *rw = open_held(q, "qcow2", NULL, BDRV_O_RDWR);
    g_assert_cmpstr(rw, ==, "100,101,103,201,203");
    g_autofree char *ro = open_held(q, "qcow2", NULL, 0);
    g_assert_cmpstr(ro, ==, "100,201,203");
    /* Metadata only (info) asks for no consistent read: 100 stays free, as qemu-img. */
    g_autofree char *noio = open_held(q, "qcow2", NULL, BDRV_O_NO_IO);
    g_assert_cmpstr(noio, ==, "201,203");
    g_autofree char *fs = open_held(q, "qcow2", "force-share=on", 0);
    g_assert_cmpstr(fs, ==, "100");
    g_autofree char *off = open_held(q, "qcow2", "file.locking=off", BDRV_O_RDWR);
    g_assert_cmpstr(off, ==, "");
    g_autofree char *rawro = open_held(raw, "raw", NULL, 0);
    g_assert_cmpstr(rawro, ==, "100");
    /* A backing file is read and may not change under its overlay. */
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(top, NULL, "qcow2", BDRV_O_RDWR, &err);
    g_assert_nonnull(bs);
    g_autofree char *backing = held_bytes(q);
    g_assert_cmpstr(backing, ==, "100,201,203");
    /* The node is the only user: closing it frees every byte. */
    bdrv_unref(bs);
    g_autofree char *after = held_bytes(q);
    g_assert_cmpstr(after, ==, "");

    /* force-share needs a read-only open, in QEMU's words. */
    Keyval *kv = keyval_parse("force-share=on", NULL, &err);
    g_assert_null(bdrv_open(q, kv, "qcow2", BDRV_O_RDWR, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "force-share=on can only be used with read-only images");
    g_clear_pointer(&err, error_free);
    kv = keyval_parse("file.locking=maybe", NULL, &err);
    g_assert_null(bdrv_open(q, kv, "qcow2", 0, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "locking=maybe"));
    error_free(err);
}

/* One process opening an image twice conflicts with itself, as in QEMU; commit's reopen
 * of a read-only node as writable (bdrv_reopen_rw) does not. */
static void test_same_process(void)
{
    g_autofree char *q = g_build_filename(test_dir, "twice.qcow2", NULL);
    Error *err = NULL;
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = block_test_open(q, "qcow2", 0);
    g_assert_null(bdrv_open(q, NULL, "qcow2", BDRV_O_RDWR, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Failed to get \"write\" lock");
    g_clear_pointer(&err, error_free);
    g_assert_true(bdrv_reopen_rw(a, &err));
    g_assert_false(a->read_only);
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "100,101,103,201,203");
    g_assert_cmpint(bdrv_pwrite(a, 0, 5, "hello"), ==, 0);
    bdrv_unref(a);
}

/* A refused bdrv_reopen_rw leaves the node read-only, readable and locked as before. */
static void test_reopen_rw_refused(void)
{
    g_autofree char *q = g_build_filename(test_dir, "refused.qcow2", NULL);
    Error *err = NULL;
    char buf[5];
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = block_test_open(q, "qcow2", 0);
    BlockDriverState *b = block_test_open(q, "qcow2", 0); /* refuses to share writes */
    g_assert_false(bdrv_reopen_rw(a, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Failed to get \"write\" lock"));
    g_clear_pointer(&err, error_free);
    g_assert_true(a->read_only);
    g_assert_cmpint(bdrv_pread(a, 0, sizeof(buf), buf), ==, 0);
    bdrv_unref(b);
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "100,201,203");
    /* Once nobody refuses, the same node becomes writable. */
    g_assert_true(bdrv_reopen_rw(a, &err));
    g_assert_cmpint(bdrv_pwrite(a, 0, 5, "hello"), ==, 0);
    bdrv_unref(a);
}

/* The reopen never leaves the image unlocked: at every close() on the way (the old
 * fd's above all) the reader's bytes are still held, then the writer's are. */
static void test_reopen_keeps_locks(void)
{
    g_autofree char *q = g_build_filename(test_dir, "keep.qcow2", NULL);
    g_autofree char *top = g_build_filename(test_dir, "keep-top.qcow2", NULL);
    g_autofree char *raw = new_file("keep.raw");
    Error *err = NULL;
    block_test_create("qcow2", q, "size=1M");
    g_autofree char *opts = g_strdup_printf("size=1M,backing_file=%s,backing_fmt=qcow2", q);
    block_test_create("qcow2", top, opts);

    BlockDriverState *a = block_test_open(q, "qcow2", 0);
    g_assert_true(a->file->read_only);
    close_watch_start(q, "100,201,203");
    g_assert_true(bdrv_reopen_rw(a, &err));
    g_assert_cmpint(close_watch_stop(), ==, 0);
    g_assert_false(a->file->read_only);
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "100,101,103,201,203");
    bdrv_unref(a);

    /* raw passes its users' claims through: a reader that shares everything. */
    BlockDriverState *r = block_test_open(raw, "raw", 0);
    close_watch_start(raw, "100");
    g_assert_true(bdrv_reopen_rw(r, &err));
    g_assert_cmpint(close_watch_stop(), ==, 0);
    bdrv_unref(r);

    /* The backing chain of the node re-opened stays locked while its driver re-opens it
     * (commit into a base that has a backing file of its own). */
    BlockDriverState *t = block_test_open(top, "qcow2", 0);
    close_watch_start(q, "100,201,203");
    g_assert_true(bdrv_reopen_rw(t, &err));
    g_assert_cmpint(close_watch_stop(), ==, 0);
    g_autofree char *backing = held_bytes(q);
    g_assert_cmpstr(backing, ==, "100,201,203");
    bdrv_unref(t);
}

/* A refusal puts the file child made writable back too, its locks held all along. */
static void test_reopen_refused_children(void)
{
    g_autofree char *q = g_build_filename(test_dir, "children.qcow2", NULL);
    Error *err = NULL;
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = block_test_open(q, "qcow2", 0);
    BlockDriverState *b = block_test_open(q, "qcow2", 0); /* refuses to share writes */
    close_watch_start(q, "100,201,203");
    g_assert_false(bdrv_reopen_rw(a, &err));
    g_assert_cmpint(close_watch_stop(), ==, 0);
    g_clear_pointer(&err, error_free);
    g_assert_true(a->read_only);
    g_assert_true(a->file->read_only);
    g_assert_false(a->file->open_flags & BDRV_O_RDWR);
    /* Read-only all the way down: the file node refuses a writer as any read-only node. */
    g_assert_cmpint(bdrv_pwrite(a->file, 0, 5, "hello"), <, 0);
    bdrv_unref(b);
    bdrv_unref(a);
}

/* A read lock on byte off through fd, taken without looking (as QEMU's reopen copies). */
static void take_byte(int fd, int off)
{
    struct flock fl = { .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
                        .l_type = F_RDLCK };
    g_assert_cmpint(__real_fcntl64(fd, F_OFD_SETLK, &fl), ==, 0);
}

/* Giving bytes up never fails: a writer that came without looking (byte 101) does not
 * keep a node going read-only from dropping its write bytes. */
static void test_less_never_refused(void)
{
    g_autofree char *path = new_file("less");
    int a = open(path, O_RDWR | O_CLOEXEC), b = open(path, O_RDWR | O_CLOEXEC);
    FileLockState la = { 0 };
    Error *err = NULL;
    uint64_t unshared = BLK_PERM_WRITE | BLK_PERM_RESIZE;

    g_assert_true(file_lock_apply(a, &la, BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE |
                                  BLK_PERM_RESIZE, BLK_PERM_ALL & ~unshared, path, &err));
    take_byte(b, 101);
    g_assert_true(file_lock_apply(a, &la, BLK_PERM_CONSISTENT_READ,
                                  BLK_PERM_ALL & ~unshared, path, &err));
    g_assert_null(err);
    close(b);
    g_autofree char *held = held_bytes(path);
    g_assert_cmpstr(held, ==, "100,201,203");
    close(a);
}

/* The image was replaced on disk (a new file under the name) while a node reads it: a
 * reopen looks for conflicts on the new file as any new holder would, and a writer there
 * keeps the node on its old file, with nothing taken on the new one. */
static void test_reopen_replaced_file(void)
{
    g_autofree char *q = g_build_filename(test_dir, "replaced.qcow2", NULL);
    g_autofree char *repl = g_build_filename(test_dir, "replaced.new", NULL);
    Error *err = NULL;
    char buf[4];
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = block_test_open(q, "qcow2", 0);
    g_autofree char *old = g_build_filename(test_dir, "replaced.old", NULL);
    g_assert_cmpint(link(q, old), ==, 0); /* the old file keeps a name to look at */
    g_assert_true(g_file_set_contents(repl, "XXXXXXXX", 8, NULL));
    int other = open(repl, O_RDWR | O_CLOEXEC);
    take_byte(other, 101); /* somebody writes the new file */
    g_assert_cmpint(rename(repl, q), ==, 0);

    g_assert_false(bdrv_reopen_rw(a, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Failed to get shared \"write\" lock"));
    g_clear_pointer(&err, error_free);
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "101");
    g_autofree char *kept = held_bytes(old);
    g_assert_cmpstr(kept, ==, "100,201,203");
    g_assert_true(a->read_only);
    g_assert_cmpint(bdrv_pread(a->file, 0, sizeof(buf), buf), ==, 0);
    g_assert_cmpmem(buf, 4, "QFI\xfb", 4);
    close(other);
    bdrv_unref(a);
}

/* The image was replaced by a file the host lets us read but not write (a running
 * program: ETXTBSY): the refused reopen leaves the node on its old file, instead of
 * putting it back read-only on the new one under a qcow2 driver that read the old. */
static void test_reopen_replaced_unwritable(void)
{
    g_autofree char *q = g_build_filename(test_dir, "busy.qcow2", NULL);
    g_autofree char *prog = g_build_filename(test_dir, "busy.prog", NULL);
    g_autofree char *body = NULL;
    gsize len;
    Error *err = NULL;
    GPid pid;
    char buf[4];
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = block_test_open(q, "qcow2", 0);
    g_assert_true(g_file_get_contents("/bin/sleep", &body, &len, NULL));
    g_assert_true(g_file_set_contents(prog, body, len, NULL));
    g_assert_cmpint(chmod(prog, 0755), ==, 0);
    char *argv[] = { prog, (char *)"30", NULL };
    if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL)) {
        g_test_skip("cannot run a program from the test directory");
        bdrv_unref(a);
        return;
    }
    /* Wait for the exec (opening the file to look would make it fail). */
    g_autofree char *exe_link = g_strdup_printf("/proc/%d/exe", (int)pid);
    for (int i = 0; i < 500; i++) {
        g_autofree char *exe = g_file_read_link(exe_link, NULL);
        if (exe && strcmp(exe, prog) == 0) {
            break;
        }
        g_usleep(10000);
    }
    g_assert_cmpint(rename(prog, q), ==, 0);

    g_assert_false(bdrv_reopen_rw(a, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Text file busy"));
    g_clear_pointer(&err, error_free);
    g_assert_true(a->read_only);
    g_assert_cmpint(bdrv_pread(a->file, 0, sizeof(buf), buf), ==, 0);
    g_assert_cmpmem(buf, 4, "QFI\xfb", 4);
    g_assert_cmpint(bdrv_pread(a, 0, sizeof(buf), buf), ==, 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    g_spawn_close_pid(pid);
    bdrv_unref(a);
}

/* q opened with file.locking=on (POSIX locks under no_ofd). */
static BlockDriverState *open_locking_on(const char *q, const char *fmt, int flags,
                                         Error **errp)
{
    Keyval *opts = block_keyval_new();
    block_keyval_add(opts, "file.locking", "on");
    return bdrv_open(q, opts, fmt, flags, errp);
}

/* Runs the calling test again in a subprocess as on a host without OFD locks. */
static bool posix_subprocess(void)
{
    if (g_test_subprocess()) {
        no_ofd = true;
        g_assert_false(file_lock_host_has_ofd());
        return true;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
    return false;
}

/* POSIX locks never conflict within a process: Sen's own books still refuse a second
 * writer in this process, with the words an OFD conflict gets, and the refused node
 * does not take the first one's bytes away. */
static void test_posix_same_process(void)
{
    if (!posix_subprocess()) {
        return;
    }
    g_autofree char *q = g_build_filename(test_dir, "posix-twice.qcow2", NULL);
    Error *err = NULL;
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = open_locking_on(q, "qcow2", BDRV_O_RDWR, &err);
    g_assert_nonnull(a);
    g_assert_null(open_locking_on(q, "qcow2", BDRV_O_RDWR, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Failed to get \"write\" lock");
    g_clear_pointer(&err, error_free);
    g_assert_null(open_locking_on(q, "qcow2", 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Failed to get shared \"write\" lock");
    g_clear_pointer(&err, error_free);
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "100,101,103,201,203");
    bdrv_unref(a);
    g_autofree char *none = held_bytes(q);
    g_assert_cmpstr(none, ==, "");
}

/* Closing any fd of a file drops all the process's POSIX locks on it, and a byte one
 * holder unlocks is unlocked for all: a second node on the image closing (or a refused
 * open) leaves the first node's bytes held. */
static void test_posix_close_keeps_others(void)
{
    if (!posix_subprocess()) {
        return;
    }
    g_autofree char *q = g_build_filename(test_dir, "posix-close.qcow2", NULL);
    Error *err = NULL;
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *a = open_locking_on(q, "qcow2", 0, &err);
    g_assert_nonnull(a);
    BlockDriverState *r = open_locking_on(q, "raw", 0, &err); /* reads, shares all */
    g_assert_nonnull(r);
    bdrv_unref(r);
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "100,201,203");
    g_assert_null(open_locking_on(q, "qcow2", BDRV_O_RDWR, &err));
    g_clear_pointer(&err, error_free);
    g_autofree char *after = held_bytes(q);
    g_assert_cmpstr(after, ==, "100,201,203");
    /* A reopen closes its old fd too. */
    g_assert_true(bdrv_reopen_rw(a, &err));
    g_autofree char *rw = held_bytes(q);
    g_assert_cmpstr(rw, ==, "100,101,103,201,203");
    bdrv_unref(a);
}

/* Migration: an inactive node holds nothing, activation takes the locks again. */
static void test_inactive(void)
{
    g_autofree char *q = g_build_filename(test_dir, "mig.qcow2", NULL);
    Error *err = NULL;
    block_test_create("qcow2", q, "size=1M");

    BlockDriverState *dst = block_test_open(q, "qcow2", BDRV_O_RDWR | BDRV_O_INACTIVE);
    g_autofree char *none = held_bytes(q);
    g_assert_cmpstr(none, ==, "");
    BlockDriverState *src = block_test_open(q, "qcow2", BDRV_O_RDWR);
    /* The destination cannot take over while the source runs... */
    g_assert_false(bdrv_activate(dst, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Failed to get"));
    g_clear_pointer(&err, error_free);
    /* ... and can once the source handed over. */
    g_assert_true(bdrv_inactivate(src, &err));
    g_assert_true(bdrv_activate(dst, &err));
    g_autofree char *held = held_bytes(q);
    g_assert_cmpstr(held, ==, "100,101,103,201,203");
    bdrv_unref(src);
    bdrv_unref(dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("sen-file-lock-XXXXXX", NULL);
    g_test_add_func("/file-lock/byte-layout", test_byte_layout);
    g_test_add_func("/file-lock/conflicts", test_conflicts);
    g_test_add_func("/file-lock/graph-bytes", test_graph_bytes);
    g_test_add_func("/file-lock/same-process", test_same_process);
    g_test_add_func("/file-lock/inactive", test_inactive);
    g_test_add_func("/file-lock/reopen-rw-refused", test_reopen_rw_refused);
    g_test_add_func("/file-lock/reopen-keeps-locks", test_reopen_keeps_locks);
    g_test_add_func("/file-lock/reopen-refused-children", test_reopen_refused_children);
    g_test_add_func("/file-lock/less-never-refused", test_less_never_refused);
    g_test_add_func("/file-lock/reopen-replaced-file", test_reopen_replaced_file);
    g_test_add_func("/file-lock/reopen-replaced-unwritable", test_reopen_replaced_unwritable);
    g_test_add_func("/file-lock/posix/same-process", test_posix_same_process);
    g_test_add_func("/file-lock/posix/close-keeps-others", test_posix_close_keeps_others);
    int ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", test_dir);
    if (system(cmd) != 0) {
        g_printerr("could not remove %s\n", test_dir);
    }
    return ret;
}
