/*
 * werror= / rerror= (hw/virtio/virtio-blk.c, block/block-error.c): the action chosen for
 * each error, and what virtio-blk-pci does with it over a hand-built Machine (as in
 * test-virtio-blk).  Writes fail deterministically past RLIMIT_FSIZE (EFBIG, SIGXFSZ
 * ignored).  Under stop a failed request is held (never used), one event per guest request
 * also inside a merge, the io-status says failed; the start hooks (what cont runs) retry
 * the held requests in order, again holding them if they fail again; a reset drops them.
 * The events are caught with a test sink in place of the monitor's.  Then the run state
 * (softmmu/vm.c) as a QMP client sees it, with the monitor on a socket and the main-loop
 * passes made by hand: stop and cont before an io-error stop is made or reported, and
 * stop reasons that meet in one pass (a guest panic, a failed vCPU, a migration).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>
#include "sen/block.h"
#include "sen/chardev.h"
#include "sen/monitor.h"
#include "monitor/monitor-internal.h"
#include "virtio-test-util.h"

#define HDR_GPA    0x20000ull
#define STATUS_GPA 0x20100ull
#define DATA_GPA   0x30000ull
#define DISK_SIZE  (1024 * 1024)
#define FAR_SECTOR (3 * DISK_SIZE / 512) /* past the size limit set by limit_file_size */

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4 };
enum { S_OK = 0, S_IOERR = 1 };

/* ---- the decision ---- */

static void test_decide(void)
{
    static const struct {
        BlockdevOnError on_err;
        int error;
        BlockErrorAction want;
    } cases[] = {
        { BLOCKDEV_ON_ERROR_REPORT, EIO, BLOCK_ERROR_ACTION_REPORT },
        { BLOCKDEV_ON_ERROR_REPORT, ENOSPC, BLOCK_ERROR_ACTION_REPORT },
        { BLOCKDEV_ON_ERROR_IGNORE, EIO, BLOCK_ERROR_ACTION_IGNORE },
        { BLOCKDEV_ON_ERROR_IGNORE, ENOSPC, BLOCK_ERROR_ACTION_IGNORE },
        { BLOCKDEV_ON_ERROR_ENOSPC, ENOSPC, BLOCK_ERROR_ACTION_STOP },
        { BLOCKDEV_ON_ERROR_ENOSPC, EIO, BLOCK_ERROR_ACTION_REPORT },
        { BLOCKDEV_ON_ERROR_ENOSPC, EFBIG, BLOCK_ERROR_ACTION_REPORT },
        { BLOCKDEV_ON_ERROR_STOP, EIO, BLOCK_ERROR_ACTION_STOP },
        { BLOCKDEV_ON_ERROR_STOP, ENOSPC, BLOCK_ERROR_ACTION_STOP },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_assert_cmpint(block_error_action_decide(cases[i].on_err, cases[i].error), ==,
                        cases[i].want);
    }

    static const char *const names[] = { "report", "ignore", "enospc", "stop", "auto" };
    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        BlockdevOnError e;
        g_assert_true(blockdev_on_error_parse(names[i], &e));
        g_assert_cmpstr(blockdev_on_error_name(e), ==, names[i]);
    }
    BlockdevOnError e = BLOCKDEV_ON_ERROR_STOP;
    g_assert_false(blockdev_on_error_parse("Stop", &e));
    g_assert_false(blockdev_on_error_parse("", &e));
    g_assert_cmpint(e, ==, BLOCKDEV_ON_ERROR_STOP);
    g_assert_cmpstr(block_error_action_name(BLOCK_ERROR_ACTION_STOP), ==, "stop");
    g_assert_cmpstr(block_io_status_name(BLOCK_IO_STATUS_NOSPACE), ==, "nospace");
}

/* ---- the device ---- */

typedef struct Event {
    char *device, *node_name;
    bool is_read, has_nospace;
    BlockErrorAction action;
    int error;
} Event;

typedef struct Fixture {
    VirtioTestMachine vt;
    char *dir, *disk;
    BlockBackend *blk;
    GPtrArray *events; /* of Event*, what the sink got */
    struct rlimit old_limit;
    /* With a QMP monitor (fixture_init_qmp): the client's socket and what it has read */
    int qmp_fd;
    GString *qmp_in;
    GPtrArray *qmp_events; /* of char*, "NAME" or "NAME action" */
} Fixture;

static void event_free(gpointer p)
{
    Event *e = p;
    g_free(e->device);
    g_free(e->node_name);
    g_free(e);
}

static void collect_io_error(void *opaque, const BlockIoError *e)
{
    Event *ev = g_new0(Event, 1);
    ev->device = g_strdup(e->device);
    ev->node_name = g_strdup(e->node_name);
    ev->is_read = e->is_read;
    ev->has_nospace = e->has_nospace;
    ev->action = e->action;
    ev->error = e->error;
    g_ptr_array_add(opaque, ev);
}

static const BlockEventSink test_sink = { .io_error = collect_io_error };

/* drive_opts are appended to the -drive, dev_props to the device's; qmp adds a QMP
 * monitor on a socket (set up by fixture_init_qmp). */
static void fixture_init_argv(Fixture *f, const char *drive_opts, const char *dev_props,
                              bool qmp)
{
    Error *err = NULL;

    memset(f, 0, sizeof(*f));
    f->qmp_fd = -1;
    f->dir = g_dir_make_tmp("sen-vblkwe-XXXXXX", NULL);
    f->disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *zero = g_malloc0(DISK_SIZE);
    g_assert_true(g_file_set_contents(f->disk, zero, DISK_SIZE, NULL));
    g_autofree char *d0 = g_strdup_printf("file=%s,format=raw,if=none,id=d0%s", f->disk,
                                          drive_opts);
    g_autofree char *mon = g_strdup_printf("unix:%s/qmp.sock,server=on,wait=off", f->dir);
    char *argv[] = { "sen", "-drive", d0, "-qmp", mon, NULL };
    vt_init(&f->vt, qmp ? 5 : 3, argv);
    g_autofree char *props = g_strdup_printf("drive=d0%s", dev_props);
    f->vt.dev = (PCIDevice *)vt_add_device(&f->vt, "virtio-blk-pci", props, &err);
    vt_check_no_error(err);
    f->blk = block_find_backend(&f->vt.m, "d0");
    g_assert_true(blk_truncate(f->blk, 4 * DISK_SIZE, false, &err));
    vt_check_no_error(err);
    f->events = g_ptr_array_new_with_free_func(event_free);
    bdrv_set_event_sink(&test_sink, f->events);
    vt_blk_driver_init(&f->vt);
}

static void fixture_init(Fixture *f, const char *drive_opts, const char *dev_props)
{
    fixture_init_argv(f, drive_opts, dev_props, false);
}

static void fixture_done(Fixture *f)
{
    if (f->qmp_fd >= 0) {
        Machine *m = &f->vt.m;
        close(f->qmp_fd);
        monitor_destroy_all(m);
        for (guint i = 0; i < m->chardevs->len; i++) {
            chardev_free(g_ptr_array_index(m->chardevs, i));
        }
        g_ptr_array_free(m->chardevs, TRUE);
        g_clear_pointer(&m->clock, virt_clock_free);
        g_string_free(f->qmp_in, TRUE);
        g_ptr_array_free(f->qmp_events, TRUE);
        g_autofree char *sock = g_build_filename(f->dir, "qmp.sock", NULL);
        g_unlink(sock);
    }
    vt_done(&f->vt);
    bdrv_set_event_sink(NULL, NULL);
    g_ptr_array_free(f->events, TRUE);
    g_unlink(f->disk);
    g_rmdir(f->dir);
    g_free(f->disk);
    g_free(f->dir);
}

/* Writes past DISK_SIZE fail with EFBIG from now on. */
static void limit_file_size(Fixture *f)
{
    struct rlimit lim;
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &f->old_limit), ==, 0);
    lim = f->old_limit;
    lim.rlim_cur = DISK_SIZE;
    signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
}

static void unlimit_file_size(Fixture *f)
{
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &f->old_limit), ==, 0);
    signal(SIGXFSZ, SIG_DFL);
}

/* Chain at descriptor 3*k: header k, 512 bytes at DATA_GPA + 0x1000 * k, status byte k.
 * Made available, not notified. */
static void post_chain(Fixture *f, unsigned k, uint32_t type, uint64_t sector)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { type, 0, sector };
    uint16_t *avail = (uint16_t *)(f->vt.ram + VT_AVAIL_GPA);
    unsigned n = 3 * k;

    memcpy(f->vt.ram + HDR_GPA + 16 * k, &hdr, sizeof(hdr));
    f->vt.ram[STATUS_GPA + k] = 0xff;
    vt_set_desc(&f->vt, n++, HDR_GPA + 16 * k, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    if (type != T_FLUSH) {
        vt_set_desc(&f->vt, n++, DATA_GPA + 0x1000 * k, 512,
                    VIRTQ_DESC_F_NEXT | (type == T_IN ? VIRTQ_DESC_F_WRITE : 0));
    }
    vt_set_desc(&f->vt, n, STATUS_GPA + k, 1, VIRTQ_DESC_F_WRITE);
    avail[2 + f->vt.avail_idx % VT_QSIZE] = 3 * k;
    __atomic_store_n(&avail[1], ++f->vt.avail_idx, __ATOMIC_RELEASE);
}

/* n adjacent writes of 512 bytes from sector, filled 0xc0 + k, in one notification (so
 * they are merged into one block request). */
static void post_writes(Fixture *f, unsigned n, uint64_t sector)
{
    for (unsigned k = 0; k < n; k++) {
        memset(f->vt.ram + DATA_GPA + 0x1000 * k, 0xc0 + k, 512);
        post_chain(f, k, T_OUT, sector + k);
    }
    vt_wr(&f->vt, 0x3000, 2, 0);
}

/* Runs the main context until the block layer has nothing of the drive in flight. */
static void settle(Fixture *f)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (blk_in_flight(f->blk) > 0) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(NULL, FALSE);
    }
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void check_written(Fixture *f, unsigned n, uint64_t sector)
{
    uint8_t buf[512];
    int fd = open(f->disk, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    for (unsigned k = 0; k < n; k++) {
        g_assert_cmpint(pread(fd, buf, 512, (off_t)(sector + k) * 512), ==, 512);
        g_assert_cmpuint(buf[0], ==, 0xc0 + k);
        g_assert_cmpuint(buf[511], ==, 0xc0 + k);
    }
    close(fd);
}

/* n merged writes from FAR_SECTOR fail (past the size limit) and are done with; the disk
 * works again afterwards. */
static void fail_writes(Fixture *f, unsigned n)
{
    limit_file_size(f);
    post_writes(f, n, FAR_SECTOR);
    settle(f);
    unlimit_file_size(f);
}

/* The n writes of post_writes from FAR_SECTOR reach the guest, completed, and the disk. */
static void wait_written(Fixture *f, unsigned n)
{
    vt_wait_used(&f->vt);
    for (unsigned k = 0; k < n; k++) {
        g_assert_cmpuint(f->vt.ram[STATUS_GPA + k], ==, S_OK);
    }
    check_written(f, n, FAR_SECTOR);
}

static void check_events(Fixture *f, unsigned n, BlockErrorAction action, bool has_nospace)
{
    g_assert_cmpuint(f->events->len, ==, n);
    for (unsigned i = 0; i < n; i++) {
        Event *e = g_ptr_array_index(f->events, i);
        g_assert_cmpstr(e->device, ==, "d0");
        g_assert_nonnull(e->node_name);
        g_assert_false(e->is_read);
        g_assert_cmpint(e->action, ==, action);
        g_assert_cmpint(e->has_nospace, ==, has_nospace);
        g_assert_cmpint(e->error, ==, EFBIG);
    }
    g_ptr_array_set_size(f->events, 0);
}

/* werror=stop: four merged writes fail, each is held and reported; a retry while the
 * disk still fails holds them again; the next one completes them in order (one request
 * in flight at a time, so the completions show the order of the retries). */
static void test_stop_hold_retry(void)
{
    Fixture f;

    fixture_init(&f, ",werror=stop", ",x-max-bytes-in-flight=512");
    g_assert_true(blk_iostatus_is_enabled(f.blk));
    g_assert_cmpint(blk_iostatus(f.blk), ==, BLOCK_IO_STATUS_OK);
    limit_file_size(&f);
    post_writes(&f, 4, FAR_SECTOR);
    settle(&f);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);      /* none completed to the guest */
    for (unsigned k = 0; k < 4; k++) {
        g_assert_cmpuint(f.vt.ram[STATUS_GPA + k], ==, 0xff);
    }
    check_events(&f, 4, BLOCK_ERROR_ACTION_STOP, true);
    g_assert_cmpint(blk_iostatus(f.blk), ==, BLOCK_IO_STATUS_FAILED);
    g_assert_cmpint(f.vt.m.held_requests, ==, 4);

    /* cont while the disk still fails: held again, the io-status set again. */
    blk_iostatus_reset(f.blk);
    machine_run_start_hooks(&f.vt.m);
    settle(&f);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);
    check_events(&f, 4, BLOCK_ERROR_ACTION_STOP, true);
    g_assert_cmpint(blk_iostatus(f.blk), ==, BLOCK_IO_STATUS_FAILED);

    unlimit_file_size(&f);
    blk_iostatus_reset(f.blk);
    machine_run_start_hooks(&f.vt.m);
    wait_written(&f, 4);
    /* Each retried on its own, in the order they failed. */
    for (unsigned k = 0; k < 4; k++) {
        uint32_t id = *(uint32_t *)(f.vt.ram + VT_USED_GPA + 4 + 8 * k);
        g_assert_cmpuint(id, ==, 3 * k);
    }
    g_assert_cmpint(f.vt.m.held_requests, ==, 0);
    g_assert_cmpuint(f.events->len, ==, 0);
    g_assert_cmpint(blk_iostatus(f.blk), ==, BLOCK_IO_STATUS_OK);
    /* Nothing is left to retry. */
    machine_run_start_hooks(&f.vt.m);
    settle(&f);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 4);
    fixture_done(&f);
}

/* A held flush is retried as a flush. */
static void test_stop_flush(void)
{
    Fixture f;

    fixture_init(&f, ",werror=stop", "");
    limit_file_size(&f);
    post_chain(&f, 0, T_OUT, FAR_SECTOR);
    post_chain(&f, 1, T_FLUSH, 0);
    memset(f.vt.ram + DATA_GPA, 0xc0, 512);
    vt_wr(&f.vt, 0x3000, 2, 0);
    settle(&f);
    /* The write is held; the flush (nothing to fail) completed. */
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 1);
    g_assert_cmpuint(f.vt.ram[STATUS_GPA + 1], ==, S_OK);
    check_events(&f, 1, BLOCK_ERROR_ACTION_STOP, true);
    unlimit_file_size(&f);
    machine_run_start_hooks(&f.vt.m);
    wait_written(&f, 1);
    fixture_done(&f);
}

/* report, ignore and enospc (EFBIG is no ENOSPC: reported); a drive that cannot stop has
 * no io-status and its events no nospace (QEMU's rule). */
static void test_report_ignore(void)
{
    static const struct {
        const char *drive, *dev;
        uint8_t status;
        BlockErrorAction action;
        bool iostatus;
    } cases[] = {
        { ",werror=report", "", S_IOERR, BLOCK_ERROR_ACTION_REPORT, false },
        { ",werror=ignore", "", S_OK, BLOCK_ERROR_ACTION_IGNORE, false },
        { "", "", S_IOERR, BLOCK_ERROR_ACTION_REPORT, true },  /* default: enospc */
        { ",werror=enospc", "", S_IOERR, BLOCK_ERROR_ACTION_REPORT, true },
        /* The device's property replaces the drive's; auto keeps it. */
        { ",werror=stop", ",werror=ignore", S_OK, BLOCK_ERROR_ACTION_IGNORE, false },
        { ",werror=report", ",werror=auto", S_IOERR, BLOCK_ERROR_ACTION_REPORT, false },
        { ",werror=report,rerror=stop", ",rerror=auto", S_IOERR, BLOCK_ERROR_ACTION_REPORT,
          true },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture f;
        fixture_init(&f, cases[i].drive, cases[i].dev);
        g_assert_cmpint(blk_iostatus_is_enabled(f.blk), ==, cases[i].iostatus);
        limit_file_size(&f);
        post_writes(&f, 2, FAR_SECTOR);
        vt_wait_used(&f.vt);
        unlimit_file_size(&f);
        g_assert_cmpuint(f.vt.ram[STATUS_GPA], ==, cases[i].status);
        g_assert_cmpuint(f.vt.ram[STATUS_GPA + 1], ==, cases[i].status);
        check_events(&f, 2, cases[i].action, cases[i].iostatus);
        g_assert_cmpint(blk_iostatus(f.blk), ==, BLOCK_IO_STATUS_OK);
        fixture_done(&f);
    }
}

/* A device reset drops what is held: a later start retries nothing. */
static void test_reset_drops_held(void)
{
    Fixture f;

    fixture_init(&f, "", ",werror=stop");
    fail_writes(&f, 2);
    check_events(&f, 2, BLOCK_ERROR_ACTION_STOP, true);
    BlockAcctStats before, after;
    blk_get_stats(f.blk, &before);
    g_assert_cmpint(f.vt.m.held_requests, ==, 2);
    vt_wr(&f.vt, CC_STATUS, 1, 0);
    g_assert_cmpint(f.vt.m.held_requests, ==, 0);
    machine_run_start_hooks(&f.vt.m);
    settle(&f);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);
    blk_get_stats(f.blk, &after);
    g_assert_cmpuint(after.wr_operations, ==, before.wr_operations);
    g_assert_cmpuint(after.wr_bytes, ==, before.wr_bytes);
    fixture_done(&f);
}

/* Unrealized with requests held: freed, nothing retried. */
static void test_unrealize_held(void)
{
    Fixture f;

    fixture_init(&f, ",werror=stop", "");
    fail_writes(&f, 3);
    check_events(&f, 3, BLOCK_ERROR_ACTION_STOP, true);
    fixture_done(&f);
}

static void test_realize_errors(void)
{
    static const struct { const char *props, *msg; } cases[] = {
        { ",werror=bogus", "Parameter 'werror' does not accept value 'bogus'" },
        { ",rerror=Stop", "Parameter 'rerror' does not accept value 'Stop'" },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture f;
        Error *err = NULL;
        fixture_init(&f, "", "");
        g_autofree char *props = g_strdup_printf("drive=d0,addr=5%s", cases[i].props);
        g_assert_null(vt_add_device(&f.vt, "virtio-blk-pci", props, &err));
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg)) {
            g_error("'%s' lacks '%s'", error_get_pretty(err), cases[i].msg);
        }
        error_free(err);
        fixture_done(&f);
    }
}

/* ---- the run state (softmmu/vm.c) as a QMP client sees it ---- */

static void fake_pause(Machine *m)
{
}

static void fake_resume(Machine *m)
{
}

/* The next message from the monitor; the main context runs meanwhile. */
static json_t *qmp_next(Fixture *f)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    for (;;) {
        char *nl = strchr(f->qmp_in->str, '\n');
        if (nl) {
            size_t len = (size_t)(nl - f->qmp_in->str) + 1;
            json_error_t jerr;
            json_t *msg = json_loadb(f->qmp_in->str, len, 0, &jerr);
            if (!msg) {
                g_error("monitor sent bad JSON: %s", jerr.text);
            }
            g_string_erase(f->qmp_in, 0, (gssize)len);
            return msg;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(NULL, FALSE);
        char buf[4096];
        ssize_t n = recv(f->qmp_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_string_append_len(f->qmp_in, buf, n);
        } else {
            g_assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            g_usleep(1000);
        }
    }
}

/* The next answer to a command (the caller owns it); records the events met on the way
 * as "NAME" or "NAME action". */
static json_t *qmp_answer(Fixture *f)
{
    for (;;) {
        json_t *msg = qmp_next(f);
        const char *event = json_string_value(json_object_get(msg, "event"));
        if (!event) {
            return msg;
        }
        const char *action =
            json_string_value(json_object_get(json_object_get(msg, "data"), "action"));
        g_ptr_array_add(f->qmp_events,
                        action ? g_strdup_printf("%s %s", event, action) : g_strdup(event));
        json_decref(msg);
    }
}

/* Sends text, n commands in one write (the monitor reads them in one main-loop pass),
 * and reads their n answers, each a success.  Returns the last answer's "return" (the
 * caller owns it). */
static json_t *qmp_exec(Fixture *f, const char *text, unsigned n)
{
    json_t *ret = NULL;

    g_assert_cmpint(write(f->qmp_fd, text, strlen(text)), ==, (ssize_t)strlen(text));
    while (n--) {
        json_t *msg = qmp_answer(f);
        if (!json_object_get(msg, "return")) {
            g_error("command failed: %s", json_dumps(msg, 0));
        }
        json_decref(ret);
        ret = json_incref(json_object_get(msg, "return"));
        json_decref(msg);
    }
    return ret;
}

/* Sends one command that must fail; returns its error description. */
static char *qmp_error(Fixture *f, const char *text)
{
    g_assert_cmpint(write(f->qmp_fd, text, strlen(text)), ==, (ssize_t)strlen(text));
    json_t *msg = qmp_answer(f);
    json_t *desc = json_object_get(json_object_get(msg, "error"), "desc");
    g_assert_nonnull(desc);
    char *ret = g_strdup(json_string_value(desc));
    json_decref(msg);
    return ret;
}

/* The events sent so far (all of them: a query's answer comes after them), separated
 * by ", ", and the run state query-status gives now. */
static void check_qmp(Fixture *f, const char *events, const char *status)
{
    json_t *st = qmp_exec(f, "{\"execute\": \"query-status\"}", 1);
    g_ptr_array_add(f->qmp_events, NULL);
    g_autofree char *got = g_strjoinv(", ", (char **)f->qmp_events->pdata);
    g_ptr_array_set_size(f->qmp_events, 0);
    g_assert_cmpstr(got, ==, events);
    g_assert_cmpstr(json_string_value(json_object_get(st, "status")), ==, status);
    json_decref(st);
}

/* One main-loop pass over the requests (the VM goes on: a monitor is there), then
 * check_qmp. */
static void check_pass(Fixture *f, const char *events, const char *status)
{
    g_assert_true(machine_handle_requests(&f->vt.m));
    check_qmp(f, events, status);
}

/* A failed vCPU or a panic needs a reset: cont is refused, as QEMU's for a reset. */
static void check_cont_refused(Fixture *f)
{
    g_autofree char *err = qmp_error(f, "{\"execute\": \"cont\"}");
    g_assert_cmpstr(err, ==, "Resetting the Virtual Machine is required");
}

/*
 * The device fixture plus the run-state machinery of a whole VM: a fake accelerator
 * that stops and starts nothing, a virtual clock, the QMP monitor on its socket (its
 * sink replaces the test's: I/O errors become BLOCK_IO_ERROR and stop requests, as in
 * sen) and a client that negotiated.  The VM is then started.
 */
static void fixture_init_qmp(Fixture *f, const char *drive_opts, const char *dev_props)
{
    Machine *m = &f->vt.m;
    Error *err = NULL;

    fixture_init_argv(f, drive_opts, dev_props, true);
    f->vt.ops.pause = fake_pause;
    f->vt.ops.resume = fake_resume;
    m->clock = virt_clock_new(false);
    m->chardevs = g_ptr_array_new();
    for (guint i = 0; i < m->cfg->chardevs->len; i++) {
        Chardev *chr = chardev_new(g_ptr_array_index(m->cfg->chardevs, i), &m->lock, &err);
        vt_check_no_error(err);
        g_ptr_array_add(m->chardevs, chr);
    }
    g_assert_true(monitor_create_all(m, &err));
    vt_check_no_error(err);
    f->qmp_in = g_string_new(NULL);
    f->qmp_events = g_ptr_array_new_with_free_func(g_free);

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qmp.sock", f->dir);
    f->qmp_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(f->qmp_fd, >=, 0);
    g_assert_cmpint(connect(f->qmp_fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    json_t *greeting = qmp_next(f);
    g_assert_nonnull(json_object_get(greeting, "QMP"));
    json_decref(greeting);
    json_decref(qmp_exec(f, "{\"execute\": \"qmp_capabilities\"}", 1));
    machine_vm_start(m);
    check_qmp(f, "RESUME", "running");
}

/* QMP stop and cont, read in one main-loop pass. */
#define STOP_CONT "{\"execute\": \"stop\"}{\"execute\": \"cont\"}"

/* A write fails under werror=stop and nothing else happens: held, the VM stops in
 * io-error after the event; cont retries the write. */
static void test_io_error_stops(void)
{
    Fixture f;

    fixture_init_qmp(&f, ",werror=stop", "");
    fail_writes(&f, 1);
    check_pass(&f, "BLOCK_IO_ERROR stop, STOP", "io-error");
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);
    json_decref(qmp_exec(&f, "{\"execute\": \"cont\"}", 1));
    wait_written(&f, 1);
    check_pass(&f, "RESUME", "running");
    fixture_done(&f);
}

/* QMP stop and cont in the main-loop pass in which a write failed under werror=stop:
 * its BLOCK_IO_ERROR went out and the VM's stop was asked for, not yet made.  cont
 * retries the write (it works now) and takes the pending stop with it, as QEMU's
 * vm_prepare_start: the VM runs on.  (Was: stopped in io-error with nothing held.) */
static void test_stop_cont_before_io_error_stop(void)
{
    Fixture f;

    fixture_init_qmp(&f, ",werror=stop", "");
    fail_writes(&f, 1);
    json_decref(qmp_exec(&f, STOP_CONT, 2));
    wait_written(&f, 1);
    check_pass(&f, "BLOCK_IO_ERROR stop, STOP, RESUME", "running");
    fixture_done(&f);
}

/* The other order, as with a drive on an I/O thread: the write is held there, and a
 * stop and cont retry it before the main loop gets the report; then the report comes
 * (BLOCK_IO_ERROR, then the stop request).  Nothing is held: the VM must run on; a STOP
 * and a RESUME still follow the event, which promises a STOP (QEMU sends the pair when
 * a start finds the VM running with a stop pending). */
static void test_io_error_report_after_cont(void)
{
    Fixture f;
    Machine *m = &f.vt.m;

    fixture_init_qmp(&f, ",werror=stop", "");
    bdrv_set_event_sink(&test_sink, f.events); /* the report waits in f.events */
    fail_writes(&f, 1);
    g_assert_cmpuint(f.events->len, ==, 1);
    json_decref(qmp_exec(&f, STOP_CONT, 2));
    wait_written(&f, 1);

    monitor_block_events_attach(m);
    Event *ev = g_ptr_array_index(f.events, 0);
    BlockIoError e = { .device = ev->device, .node_name = ev->node_name,
                       .is_read = ev->is_read, .action = ev->action,
                       .has_nospace = ev->has_nospace, .error = ev->error };
    bdrv_report_io_error(&e);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    check_pass(&f, "STOP, RESUME, BLOCK_IO_ERROR stop, STOP, RESUME", "running");
    fixture_done(&f);
}

/* A guest panic and a disk error stop in the same main-loop pass (the panic asked for
 * first).  Neither is lost: GUEST_PANICKED and BLOCK_IO_ERROR go out, one STOP, and the
 * run state is guest-panicked (the panicked vCPU stays stopped until a reset, so a cont
 * must be refused; was: io-error, and a cont ran the VM without that vCPU).  The write
 * stays held, the drive says failed, until the reset the VM needs drops it. */
static void test_panic_and_io_error_in_one_pass(void)
{
    Fixture f;
    Machine *m = &f.vt.m;

    fixture_init_qmp(&f, ",werror=stop", "");
    m->actions.panic = PANIC_ACTION_PAUSE;
    machine_lock(m);
    g_assert_true(machine_guest_panicked(m));
    machine_unlock(m);
    fail_writes(&f, 1);
    check_pass(&f, "BLOCK_IO_ERROR stop, GUEST_PANICKED pause, STOP", "guest-panicked");
    g_assert_cmpint(m->held_requests, ==, 1);
    g_assert_cmpint(blk_iostatus(f.blk), ==, BLOCK_IO_STATUS_FAILED);
    check_cont_refused(&f);
    check_pass(&f, "", "guest-panicked");
    fixture_done(&f);
}

/* A vCPU fails (internal error) in the pass in which QMP stop paused the VM: the state
 * becomes internal-error without a second STOP (was: an invalid paused -> internal-error
 * transition refused, the VM left paused, and a cont ran it without the failed vCPU). */
static void test_fault_while_paused(void)
{
    Fixture f;
    Machine *m = &f.vt.m;

    fixture_init_qmp(&f, "", "");
    machine_request_stop(m, RUN_STATE_INTERNAL_ERROR);
    json_decref(qmp_exec(&f, "{\"execute\": \"stop\"}", 1));
    check_pass(&f, "STOP", "internal-error");
    check_cont_refused(&f);
    fixture_done(&f);
}

/* A vCPU fails while a migration holds the VM stopped (finish-migrate): the fault waits
 * and stops the VM once the cancelled migration runs it again (was: refused as a
 * transition and lost, the VM running without the vCPU). */
static void test_fault_during_migration(void)
{
    Fixture f;
    Machine *m = &f.vt.m;

    fixture_init_qmp(&f, "", "");
    machine_vm_stop(m, RUN_STATE_FINISH_MIGRATE);
    machine_request_stop(m, RUN_STATE_INTERNAL_ERROR);
    check_pass(&f, "STOP", "finish-migrate");
    machine_vm_start(m);
    check_pass(&f, "RESUME, STOP", "internal-error");
    fixture_done(&f);
}

/* query-status in every run state, as QEMU 7.2's: the state under its RunState name,
 * running only while running (not while suspended). */
static void test_query_status_every_state(void)
{
    static const struct {
        RunState state;
        const char *status;
    } cases[] = {
        { RUN_STATE_PRELAUNCH, "prelaunch" },
        { RUN_STATE_RUNNING, "running" },
        { RUN_STATE_PAUSED, "paused" },
        { RUN_STATE_SHUTDOWN, "shutdown" },
        { RUN_STATE_INTERNAL_ERROR, "internal-error" },
        { RUN_STATE_GUEST_PANICKED, "guest-panicked" },
        { RUN_STATE_INMIGRATE, "inmigrate" },
        { RUN_STATE_FINISH_MIGRATE, "finish-migrate" },
        { RUN_STATE_POSTMIGRATE, "postmigrate" },
        { RUN_STATE_SAVE_VM, "save-vm" },
        { RUN_STATE_RESTORE_VM, "restore-vm" },
        { RUN_STATE_SUSPENDED, "suspended" },
        { RUN_STATE_IO_ERROR, "io-error" },
    };
    Fixture f;
    Machine *m = &f.vt.m;

    G_STATIC_ASSERT(G_N_ELEMENTS(cases) == RUN_STATE__MAX);
    fixture_init_qmp(&f, "", "");
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        m->runstate = cases[i].state;
        json_t *st = qmp_exec(&f, "{\"execute\": \"query-status\"}", 1);
        g_assert_cmpstr(json_string_value(json_object_get(st, "status")), ==,
                        cases[i].status);
        g_assert_true(json_is_boolean(json_object_get(st, "running")));
        g_assert_cmpint(json_is_true(json_object_get(st, "running")), ==,
                        cases[i].state == RUN_STATE_RUNNING);
        g_assert_true(json_is_false(json_object_get(st, "singlestep")));
        g_assert_cmpuint(json_object_size(st), ==, 3);
        json_decref(st);
    }
    m->runstate = RUN_STATE_RUNNING;
    fixture_done(&f);
}

/* Reports a guest panic as a vCPU would (VM lock held); returns whether the VM stops. */
static bool guest_panic(Machine *m)
{
    machine_lock(m);
    bool stops = machine_guest_panicked(m);
    machine_unlock(m);
    return stops;
}

/*
 * -action panic= and shutdown=, changed over QMP set-action (QEMU 7.2's events, checked
 * against it with the pvpanic guest on KVM): shutdown (the default) shuts down with
 * status 0; exit-failure with status 1; none reports and runs on; pause stops in
 * guest-panicked, also panic=shutdown with shutdown=pause; exit-failure with
 * shutdown=pause stays in "shutdown".
 */
static void test_panic_actions(void)
{
    static const struct {
        const char *set;      /* set-action arguments */
        bool stops;           /* the reporting vCPU stops */
        bool goes_on;         /* machine_handle_requests: the VMM keeps running */
        int exit_status;
        const char *events;
        const char *status;
    } cases[] = {
        { "\"panic\": \"shutdown\"", true, false, 0, "GUEST_PANICKED poweroff, SHUTDOWN",
          NULL },
        { "\"panic\": \"exit-failure\"", true, false, 1,
          "GUEST_PANICKED poweroff, SHUTDOWN", NULL },
        { "\"panic\": \"none\"", false, true, 0, "GUEST_PANICKED run", "running" },
        { "\"panic\": \"pause\"", true, true, 0, "GUEST_PANICKED pause, STOP",
          "guest-panicked" },
        { "\"panic\": \"shutdown\", \"shutdown\": \"pause\"", true, true, 0,
          "GUEST_PANICKED pause, STOP", "guest-panicked" },
        { "\"panic\": \"exit-failure\", \"shutdown\": \"pause\"", true, true, 0,
          "GUEST_PANICKED poweroff, SHUTDOWN, STOP", "shutdown" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture f;
        Machine *m = &f.vt.m;

        g_test_message("set-action %s", cases[i].set);
        fixture_init_qmp(&f, "", "");
        m->actions = RUNSTATE_ACTIONS_DEFAULT;
        g_autofree char *cmd = g_strdup_printf(
            "{\"execute\": \"set-action\", \"arguments\": { %s }}", cases[i].set);
        json_decref(qmp_exec(&f, cmd, 1));
        g_assert_cmpint(guest_panic(m), ==, cases[i].stops);
        g_assert_cmpint(machine_handle_requests(m), ==, cases[i].goes_on);
        g_assert_cmpint(m->exit_status, ==, cases[i].exit_status);
        if (cases[i].status) {
            check_qmp(&f, cases[i].events, cases[i].status);
        } else {
            /* The process would end here: the events went out all the same, no STOP
             * (QEMU 7.2's exit sends none). */
            json_decref(qmp_exec(&f, "{\"execute\": \"query-status\"}", 1));
            g_ptr_array_add(f.qmp_events, NULL);
            g_autofree char *got = g_strjoinv(", ", (char **)f.qmp_events->pdata);
            g_ptr_array_set_size(f.qmp_events, 0);
            g_assert_cmpstr(got, ==, cases[i].events);
        }
        fixture_done(&f);
    }
}

/* reboot=shutdown turns a reset into a shutdown with the reset's cause; with
 * shutdown=pause the VM stays in "shutdown" (QEMU 7.2: SHUTDOWN, STOP). */
static void test_reboot_shutdown_pause(void)
{
    Fixture f;
    Machine *m = &f.vt.m;

    fixture_init_qmp(&f, "", "");
    m->actions = RUNSTATE_ACTIONS_DEFAULT;
    json_decref(qmp_exec(&f, "{\"execute\": \"set-action\", \"arguments\": "
                             "{\"reboot\": \"shutdown\", \"shutdown\": \"pause\"}}", 1));
    g_assert_cmpint(m->actions.reboot, ==, REBOOT_ACTION_SHUTDOWN);
    machine_request_reset(m, SHUTDOWN_CAUSE_GUEST_RESET);
    g_assert_true(machine_handle_requests(m));
    check_qmp(&f, "SHUTDOWN, STOP", "shutdown");
    /* A bad value changes nothing, in QEMU's words. */
    g_autofree char *err = qmp_error(&f, "{\"execute\": \"set-action\", \"arguments\": "
                                         "{\"reboot\": \"reset\", \"panic\": \"bogus\"}}");
    g_assert_cmpstr(err, ==, "Parameter 'panic' does not accept value 'bogus'");
    g_assert_cmpint(m->actions.reboot, ==, REBOOT_ACTION_SHUTDOWN);
    fixture_done(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/block/error-action", test_decide);
    g_test_add_func("/virtio-blk/werror/stop-hold-retry", test_stop_hold_retry);
    g_test_add_func("/virtio-blk/werror/stop-flush", test_stop_flush);
    g_test_add_func("/virtio-blk/werror/report-ignore", test_report_ignore);
    g_test_add_func("/virtio-blk/werror/reset-drops-held", test_reset_drops_held);
    g_test_add_func("/virtio-blk/werror/unrealize-held", test_unrealize_held);
    g_test_add_func("/virtio-blk/werror/realize-errors", test_realize_errors);
    g_test_add_func("/runstate/io-error/stops", test_io_error_stops);
    g_test_add_func("/runstate/io-error/stop-cont-before-the-stop",
                    test_stop_cont_before_io_error_stop);
    g_test_add_func("/runstate/io-error/report-after-cont", test_io_error_report_after_cont);
    g_test_add_func("/runstate/stops/panic-and-io-error", test_panic_and_io_error_in_one_pass);
    g_test_add_func("/runstate/stops/fault-while-paused", test_fault_while_paused);
    g_test_add_func("/runstate/stops/fault-during-migration", test_fault_during_migration);
    g_test_add_func("/runstate/query-status/every-state", test_query_status_every_state);
    g_test_add_func("/runstate/action/panic", test_panic_actions);
    g_test_add_func("/runstate/action/reboot-shutdown-pause", test_reboot_shutdown_pause);
    return g_test_run();
}
