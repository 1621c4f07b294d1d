/*
 * The migration state machine, its threads and its QMP commands (docs/migration.md).
 *
 * Threads:
 *   - main thread: QMP commands, run-state changes, events, device state on the
 *     destination.  It never blocks on the stream.
 *   - outgoing thread (one migration at a time): connect, RAM passes, then asks the main
 *     thread to stop the VM (stop handshake below), sends the final round and the device
 *     state, and hands the outcome back to the main thread.
 *   - incoming thread: accept, read and check the whole stream into guest RAM while the
 *     VM sits in inmigrate, then hands the device state to the main thread.
 * The threads reach the main thread only through idle sources on its context
 * (post_to_main), never by calling run-state or monitor code themselves.
 *
 * MigrationState.lock guards the fields marked [lock]; cond is broadcast when stop_state
 * changes or a cancel arrives.  Lock order: the VM lock, then MigrationState.lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sen/block.h"
#include "sen/migration.h"
#include "sen/monitor.h"
#include "migration/multifd.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/stream.h"
#include "migration/transport.h"
#include "monitor/qapi-generated.h"
#include "accel/accel.h"

/* Device and vCPU state is declared beside each device (include/sen/vmstate.h); until
 * that lands, the stream carries RAM only and the call sites below stay ready. */
#if __has_include("sen/vmstate.h")
#include "sen/vmstate.h"
#define MIG_HAVE_VMSTATE 1
#else
#define MIG_HAVE_VMSTATE 0
#endif

/* A device section larger than this is refused as corrupt. */
#define MIG_DEVICE_MAX (256u << 20)

/*
 * The hand-over handshake (docs/migration-format.md, "HANDOVER record"): over a socket
 * the source sends this record right before END and then waits, still stopped and with
 * its images inactive, for the destination to answer one MIG_HANDOVER_ACK byte on the
 * same connection once it loaded everything and took the images.  No answer (the
 * destination died or refused the state): the source takes its VM back and runs on.
 */
#define MIG_REC_HANDOVER 0x05
#define MIG_HANDOVER_ACK 0x06

typedef enum MigStatus {
    MIG_STATUS_NONE,
    MIG_STATUS_SETUP,
    MIG_STATUS_CANCELLING,
    MIG_STATUS_CANCELLED,
    MIG_STATUS_ACTIVE,
    MIG_STATUS_COMPLETED,
    MIG_STATUS_FAILED,
} MigStatus;

static const char *const mig_status_names[] = {
    [MIG_STATUS_NONE] = "none",
    [MIG_STATUS_SETUP] = "setup",
    [MIG_STATUS_CANCELLING] = "cancelling",
    [MIG_STATUS_CANCELLED] = "cancelled",
    [MIG_STATUS_ACTIVE] = "active",
    [MIG_STATUS_COMPLETED] = "completed",
    [MIG_STATUS_FAILED] = "failed",
};

/* The stop handshake between the outgoing thread and the main thread. */
typedef enum MigStop {
    MIG_STOP_IDLE,
    MIG_STOP_REQUESTED, /* the thread waits; the main thread will stop the VM */
    MIG_STOP_DONE,      /* VM stopped in finish-migrate */
    MIG_STOP_REFUSED,   /* the run state does not allow it, or cancelled meanwhile */
} MigStop;

/* QEMU's capability list, in schema order; only these may be turned on. */
static const char *const mig_cap_names[] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress", "events",
    "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
    "late-block-activate", "x-ignore-shared", "validate-uuid", "background-snapshot",
    "zero-copy-send", "postcopy-preempt",
};
#define MIG_CAP_AUTO_CONVERGE 2
#define MIG_CAP_EVENTS 5
#define MIG_CAP_MULTIFD 12
#define MIG_NR_CAPS G_N_ELEMENTS(mig_cap_names)

struct MigrationState {
    Machine *m;
    GMutex lock;
    GCond cond;

    /* Parameters and capabilities: written by the main thread, read under lock. */
    uint64_t max_bandwidth;     /* bytes/s, 0 = unlimited */
    uint64_t downtime_limit;    /* ms */
    int64_t throttle_initial, throttle_increment, max_throttle, multifd_channels;
    bool caps[MIG_NR_CAPS];

    /* Outgoing */
    MigStatus status;           /* [lock] */
    GThread *thread;            /* main thread */
    MigUri *uri;                /* main thread until the thread starts, then the thread's */
    int cancel;                 /* atomic: stop at the next check */
    int fd;                     /* [lock] the stream while connected, for cancel */
    pid_t child;                /* [lock] exec: the command */
    RamSave *ram;               /* [lock] while the thread runs */
    MultifdSend *multifd;       /* [lock] while the thread runs with multifd (written
                                 * only by the thread, which reads it without lock) */
    uint64_t multifd_bytes;     /* [lock] */
    RamCounters last;           /* [lock] counters of the finished migration */
    char *error_desc;           /* [lock] */
    int64_t start_us, end_us;   /* [lock] */
    int64_t setup_ms, downtime_ms, expected_downtime_ms; /* [lock] */
    uint64_t transferred, precopy_bytes, downtime_bytes, pages_per_second; /* [lock] */
    double mbps;                /* [lock] */
    int throttle_pct;           /* [lock] */
    MigStop stop_state;         /* [lock] */
    GByteArray *device;         /* [lock] device state saved when the VM stopped */
    char *device_error;         /* [lock] why it could not be saved */
    RunState prev_runstate;     /* main thread: the state the VM was stopped from */

    /* Incoming */
    MigStatus in_status;        /* [lock] */
    GThread *in_thread;
    MigListener *listener;
    bool deferred;              /* -incoming defer, migrate-incoming not yet called */
    bool autostart;             /* start the guest once loaded */
    int in_cancel;              /* atomic */
    int in_fd;                  /* [lock] the stream being read, for finalize; -1 */
    MultifdRecv *in_multifd;    /* [lock] its multifd channels, for finalize */
    int64_t in_start_us, in_end_us; /* [lock] */
    uint64_t in_bytes;          /* [lock] */
    uint64_t in_multifd_bytes;  /* [lock] */
    char *in_error;             /* [lock] */

    int pending_posts;          /* atomic: callbacks queued for the main thread */
};

/* ---- talking to the main thread ---- */

typedef struct MigPost {
    MigrationState *s;
    void (*fn)(MigrationState *s, void *arg);
    void *arg;
    GDestroyNotify free_arg;
} MigPost;

static gboolean run_post(gpointer opaque)
{
    MigPost *p = opaque;
    p->fn(p->s, p->arg);
    g_atomic_int_add(&p->s->pending_posts, -1);
    return G_SOURCE_REMOVE;
}

static void free_post(gpointer opaque)
{
    MigPost *p = opaque;
    if (p->free_arg) {
        p->free_arg(p->arg);
    }
    g_free(p);
}

/* Runs fn(s, arg) on the main thread later (an idle source, never synchronously). */
static void post_to_main(MigrationState *s, void (*fn)(MigrationState *, void *), void *arg,
                         GDestroyNotify free_arg)
{
    MigPost *p = g_new0(MigPost, 1);
    p->s = s;
    p->fn = fn;
    p->arg = arg;
    p->free_arg = free_arg;
    g_atomic_int_inc(&s->pending_posts);
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, run_post, p, free_post);
    g_source_attach(src, s->m->ctx);
    g_source_unref(src);
}

static void emit_status_main(MigrationState *s, void *arg)
{
    MigStatus st = (MigStatus)GPOINTER_TO_INT(arg);
    if (s->caps[MIG_CAP_EVENTS]) {
        qapi_event_send_migration(s->m, mig_status_names[st]);
    }
}

static void emit_pass_main(MigrationState *s, void *arg)
{
    if (s->caps[MIG_CAP_EVENTS]) {
        qapi_event_send_migration_pass(s->m, GPOINTER_TO_INT(arg));
    }
}

/* Any thread.  *field is status or in_status. */
static void set_status(MigrationState *s, MigStatus *field, MigStatus st, bool on_main)
{
    g_mutex_lock(&s->lock);
    bool changed = *field != st;
    *field = st;
    g_mutex_unlock(&s->lock);
    if (!changed) {
        return;
    }
    if (on_main) {
        emit_status_main(s, GINT_TO_POINTER(st));
    } else {
        post_to_main(s, emit_status_main, GINT_TO_POINTER(st), NULL);
    }
}

static int64_t now_us(void)
{
    return g_get_monotonic_time();
}

/* ---- outgoing: the thread ---- */

static void stop_vm_main(MigrationState *s, void *arg)
{
    Machine *m = s->m;
    MigStop result = MIG_STOP_REFUSED;

    GByteArray *device = NULL;
    char *error = NULL;

    if (!g_atomic_int_get(&s->cancel) &&
        runstate_transition_allowed(m->runstate, RUN_STATE_FINISH_MIGRATE)) {
        s->prev_runstate = m->runstate;
        machine_vm_stop(m, RUN_STATE_FINISH_MIGRATE);
        result = MIG_STOP_DONE;
#if MIG_HAVE_VMSTATE
        /* Requests still in flight would write guest RAM after the device state is
         * taken; completing them now also marks what they wrote dirty for the final
         * RAM round, which runs after this. */
        vmstate_drain_all(m);
        /* The contract: main thread, vCPUs stopped, VM lock not held. */
        Error *err = NULL;
        device = g_byte_array_new();
        if (!vmstate_save_all(m, device, &err)) {
            error = g_strdup_printf("device state: %s", error_get_pretty(err));
            error_free(err);
            g_clear_pointer(&device, g_byte_array_unref);
        }
#endif
        /* Requests drained: hand the shared images over, flushed, and write them no
         * more (docs/migration.md, "Shared storage"). */
        Error *berr = NULL;
        if (!error && !block_inactivate_all(m, &berr)) {
            error = g_strdup_printf("block: %s", error_get_pretty(berr));
            error_free(berr);
            g_clear_pointer(&device, g_byte_array_unref);
        }
    }
    g_mutex_lock(&s->lock);
    s->device = device;
    s->device_error = error;
    s->stop_state = result;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
}

/* Asks the main thread to stop the VM and waits for its answer (or a cancel). */
static bool stop_vm(MigrationState *s, Error **errp)
{
    g_mutex_lock(&s->lock);
    s->stop_state = MIG_STOP_REQUESTED;
    g_mutex_unlock(&s->lock);
    post_to_main(s, stop_vm_main, NULL, NULL);
    g_mutex_lock(&s->lock);
    while (s->stop_state == MIG_STOP_REQUESTED && !g_atomic_int_get(&s->cancel)) {
        g_cond_wait(&s->cond, &s->lock);
    }
    bool ok = s->stop_state == MIG_STOP_DONE;
    g_mutex_unlock(&s->lock);
    if (!ok) {
        error_setg(errp, g_atomic_int_get(&s->cancel) ? "migration cancelled" :
                   "the VM cannot be stopped for migration in its run state");
    }
    return ok;
}

typedef struct MigOutcome {
    bool ok;
    char *error;
} MigOutcome;

static void free_outcome(void *opaque)
{
    MigOutcome *o = opaque;
    g_free(o->error);
    g_free(o);
}

static void finish_main(MigrationState *s, void *arg)
{
    MigOutcome *o = arg;
    Machine *m = s->m;

    g_thread_join(s->thread);
    s->thread = NULL;
    g_mutex_lock(&s->lock);
    bool stopped = s->stop_state == MIG_STOP_DONE;
    s->stop_state = MIG_STOP_IDLE;
    g_clear_pointer(&s->device, g_byte_array_unref);
    g_clear_pointer(&s->device_error, g_free);
    g_mutex_unlock(&s->lock);

    if (o->ok) {
        /* The destination owns the guest now; this VM stays stopped. */
        machine_vm_stop(m, RUN_STATE_POSTMIGRATE);
        set_status(s, &s->status, MIG_STATUS_COMPLETED, true);
        return;
    }
    Error *berr = NULL;
    if (!block_activate_all(m, &berr)) {
        /* The images could not be read back: running would fail every disk write. */
        error_report("migration: cannot take the images back: %s", error_get_pretty(berr));
        error_free(berr);
        if (stopped && s->prev_runstate == RUN_STATE_RUNNING) {
            s->prev_runstate = RUN_STATE_PAUSED;
        }
    }
    if (stopped) {
        /* Back to how it was: running again, or the state it was stopped from. */
        if (s->prev_runstate == RUN_STATE_RUNNING) {
            machine_vm_start(m);
        } else {
            machine_vm_stop(m, s->prev_runstate);
        }
    }
    bool cancelled = g_atomic_int_get(&s->cancel);
    g_mutex_lock(&s->lock);
    g_free(s->error_desc);
    s->error_desc = cancelled ? NULL : g_strdup(o->error);
    g_mutex_unlock(&s->lock);
    if (!cancelled) {
        error_report("migration failed: %s", o->error);
    }
    set_status(s, &s->status, cancelled ? MIG_STATUS_CANCELLED : MIG_STATUS_FAILED, true);
}

/* Snapshot of the parameters for the thread. */
static void read_params(MigrationState *s, uint64_t *bandwidth, uint64_t *downtime_limit,
                        bool *auto_converge)
{
    g_mutex_lock(&s->lock);
    *bandwidth = s->max_bandwidth;
    *downtime_limit = s->downtime_limit;
    *auto_converge = s->caps[MIG_CAP_AUTO_CONVERGE];
    g_mutex_unlock(&s->lock);
}

/* Bytes sent so far on the main stream and every multifd channel. */
static uint64_t sent_bytes(MigrationState *s, MigStream *st)
{
    return mig_stream_bytes(st) + (s->multifd ? multifd_send_bytes(s->multifd) : 0);
}

/* s->lock held.  transferred and multifd-bytes for query-migrate, from one read of the
 * channels' counters, so that multifd-bytes is the part of transferred they carried. */
static void note_sent_locked(MigrationState *s, MigStream *st)
{
    s->multifd_bytes = s->multifd ? multifd_send_bytes(s->multifd) : 0;
    s->transferred = mig_stream_bytes(st) + s->multifd_bytes;
}

static void set_rate_limit(MigrationState *s, MigStream *st, uint64_t bytes_per_sec)
{
    mig_stream_set_rate_limit(st, bytes_per_sec);
    if (s->multifd) {
        multifd_send_set_rate_limit(s->multifd, bytes_per_sec);
    }
}

/* The end of a pass: with multifd, every page of it is sent before the next pass's. */
static bool pass_done(MigrationState *s, MigStream *st, bool last, Error **errp)
{
    return !s->multifd || multifd_send_sync(s->multifd, st, last, errp);
}

/* Pre-copy passes until what is left fits the downtime limit at the measured rate. */
static bool precopy(MigrationState *s, RamSave *rs, MigStream *st, Error **errp)
{
    int64_t active_start = now_us();
    uint64_t active_bytes0 = sent_bytes(s, st);
    int high_dirty_passes = 0;

    for (int pass = 1;; pass++) {
        uint64_t bandwidth, downtime_limit;
        bool auto_converge;
        read_params(s, &bandwidth, &downtime_limit, &auto_converge);
        set_rate_limit(s, st, bandwidth);
        post_to_main(s, emit_pass_main, GINT_TO_POINTER(pass), NULL);

        int64_t t0 = now_us();
        uint64_t b0 = sent_bytes(s, st);
        uint64_t sent_pages0 = ram_stat(&ram_save_counters(rs)->normal) +
                               ram_stat(&ram_save_counters(rs)->duplicate);
        if (!ram_save_pass(rs, st, &s->cancel, errp) || !pass_done(s, st, false, errp) ||
            !ram_save_sync(rs, errp)) {
            return false;
        }
        int64_t t1 = MAX(now_us(), t0 + 1);
        uint64_t pass_bytes = sent_bytes(s, st) - b0;
        uint64_t remaining = ram_save_dirty_pages(rs) * MIG_PAGE_SIZE;
        /* Bytes per microsecond over the whole pre-copy phase: one short pass after a
         * long one must not swing the estimate. */
        double rate = (double)(sent_bytes(s, st) - active_bytes0) /
                      (double)MAX(t1 - active_start, 1);
        int64_t expected_ms = rate > 0 ? (int64_t)(remaining / rate / 1000) : 0;
        uint64_t sent_pages = ram_stat(&ram_save_counters(rs)->normal) +
                              ram_stat(&ram_save_counters(rs)->duplicate) - sent_pages0;

        g_mutex_lock(&s->lock);
        note_sent_locked(s, st);
        s->precopy_bytes = s->transferred;
        s->mbps = (double)pass_bytes * 8 / (double)(t1 - t0);
        s->pages_per_second = sent_pages * G_USEC_PER_SEC / (uint64_t)(t1 - t0);
        s->expected_downtime_ms = expected_ms;
        g_mutex_unlock(&s->lock);
        __atomic_store_n((uint64_t *)&ram_save_counters(rs)->dirty_pages_rate,
                         ram_save_dirty_pages(rs) * G_USEC_PER_SEC / (uint64_t)(t1 - t0),
                         __ATOMIC_RELAXED);

        if ((double)remaining <= rate * 1000.0 * (double)downtime_limit) {
            return true;
        }
        /* Auto-converge, as QEMU: the guest dirtied more than half of what a pass sent,
         * twice in a row: slow its vCPUs down a step further. */
        if (auto_converge && remaining * 2 > pass_bytes && ++high_dirty_passes >= 2) {
            high_dirty_passes = 0;
            g_mutex_lock(&s->lock);
            s->throttle_pct = s->throttle_pct ? (int)MIN(s->throttle_pct +
                                                         s->throttle_increment,
                                                         s->max_throttle)
                                              : (int)s->throttle_initial;
            int pct = s->throttle_pct;
            g_mutex_unlock(&s->lock);
            if (s->m->accel->set_throttle) {
                s->m->accel->set_throttle(s->m, (unsigned)pct);
            }
        }
    }
}

static bool mig_uri_is_socket(const MigUri *u)
{
    return u->kind == MIG_TRANSPORT_TCP || u->kind == MIG_TRANSPORT_UNIX;
}

/*
 * Waits for the destination's MIG_HANDOVER_ACK after the whole stream went out.  A
 * cancel shuts the socket down, which ends the read.  Until the answer the VM may
 * still be taken back: the destination answers before it runs or writes anything.
 */
static bool await_handover(MigrationState *s, int fd, Error **errp)
{
    uint8_t reply = 0;
    ssize_t n;
    do {
        n = read(fd, &reply, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && reply == MIG_HANDOVER_ACK) {
        return true;
    }
    if (g_atomic_int_get(&s->cancel)) {
        error_setg(errp, "migration cancelled");
    } else if (n == 0) {
        error_setg(errp, "the destination closed the connection before it took over "
                   "the VM (see its log)");
    } else if (n < 0) {
        error_setg_errno(errp, errno, "waiting for the destination to take over the VM");
    } else {
        error_setg(errp, "the destination answered 0x%02x instead of taking over the VM",
                   reply);
    }
    return false;
}

/* Stop, last pass, device state, end marker, hand-over.  Fills *downtime_ms. */
static bool complete(MigrationState *s, RamSave *rs, MigStream *st, Error **errp)
{
    if (!stop_vm(s, errp)) {
        return false;
    }
    int64_t t0 = now_us();
    uint64_t b0 = sent_bytes(s, st);
    set_rate_limit(s, st, 0);
    if (!ram_save_sync(rs, errp) || !ram_save_pass(rs, st, &s->cancel, errp) ||
        !pass_done(s, st, true, errp)) {
        return false;
    }
    g_mutex_lock(&s->lock);
    g_autoptr(GByteArray) dev = g_steal_pointer(&s->device);
    g_autofree char *dev_error = g_steal_pointer(&s->device_error);
    g_mutex_unlock(&s->lock);
    if (dev_error) {
        error_setg(errp, "%s", dev_error);
        return false;
    }
    if (dev) {
        mig_put_u8(st, MIG_REC_DEVICE);
        mig_put_be32(st, dev->len);
        mig_put_be32(st, ~mig_crc32c(0xffffffffu, dev->data, dev->len));
        mig_put_buf(st, dev->data, dev->len);
    }
    bool handover = mig_uri_is_socket(s->uri);
    if (handover) {
        mig_put_u8(st, MIG_REC_HANDOVER);
    }
    mig_put_u8(st, MIG_REC_END);
    mig_put_checksum(st);
    if (!mig_stream_check(st, errp) ||
        (handover && !await_handover(s, mig_stream_fd(st), errp))) {
        return false;
    }
    g_mutex_lock(&s->lock);
    s->downtime_ms = (now_us() - t0 + 999) / 1000;
    note_sent_locked(s, st);
    s->downtime_bytes = s->transferred - b0;
    g_mutex_unlock(&s->lock);
    return true;
}

static gpointer outgoing_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    Error *err = NULL;
    MigStream *st = NULL;
    pid_t child = 0;
    bool ok = false;

    int fd = mig_connect(s->uri, &child, &err);
    if (fd < 0) {
        goto out;
    }
    g_mutex_lock(&s->lock);
    s->fd = fd;
    s->child = child;
    g_mutex_unlock(&s->lock);
    if (g_atomic_int_get(&s->cancel)) {
        /* The cancel came before the fd was known to it. */
        shutdown(fd, SHUT_RDWR);
    }
    st = mig_stream_new_writer(fd);
    g_mutex_lock(&s->lock);
    if (s->caps[MIG_CAP_MULTIFD]) {
        s->multifd = multifd_send_new((unsigned)s->multifd_channels);
    }
    g_mutex_unlock(&s->lock);
    if (s->multifd) {
        ram_save_set_sink(s->ram, multifd_send_pages, s->multifd);
    }
    if (!ram_save_setup(s->ram, st, &err) ||
        (s->multifd && !multifd_send_connect(s->multifd, st, s->uri, &err))) {
        goto out;
    }
    g_mutex_lock(&s->lock);
    s->setup_ms = (now_us() - s->start_us) / 1000;
    g_mutex_unlock(&s->lock);
    set_status(s, &s->status, MIG_STATUS_ACTIVE, false);
    ok = precopy(s, s->ram, st, &err) && complete(s, s->ram, st, &err);

out:
    g_mutex_lock(&s->lock);
    s->fd = -1;
    s->child = 0;
    s->end_us = now_us();
    /* Keep the final counters for query-migrate; logging stops with the RamSave. */
    s->last = *ram_save_counters(s->ram);
    if (st) {
        note_sent_locked(s, st);
    }
    RamSave *rs = s->ram;
    s->ram = NULL;
    MultifdSend *mf = s->multifd;
    s->multifd = NULL;
    bool throttled = s->throttle_pct != 0;
    s->throttle_pct = 0;
    g_mutex_unlock(&s->lock);
    if (throttled && s->m->accel->set_throttle) {
        s->m->accel->set_throttle(s->m, 0);
    }
    multifd_send_free(mf);
    ram_save_free(rs);
    if (!ok && fd >= 0 &&
        (s->uri->kind == MIG_TRANSPORT_TCP || s->uri->kind == MIG_TRANSPORT_UNIX)) {
        /* Abandoned: the stream's writer must not wait for a peer that stopped
         * reading (a descriptor given with fd: is the user's to end). */
        shutdown(fd, SHUT_RDWR);
    }
    mig_stream_free(st);
    mig_child_reap(child, !ok);

    MigOutcome *o = g_new0(MigOutcome, 1);
    o->ok = ok;
    o->error = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    post_to_main(s, finish_main, o, free_outcome);
    return NULL;
}

/* ---- outgoing: QMP ---- */

static bool migration_running(MigrationState *s)
{
    return s->thread != NULL;
}

bool qmp_migrate(QmpCtx *ctx, const char *uri, bool has_blk, bool blk, bool has_inc,
                 bool inc, bool has_detach, bool detach, bool has_resume, bool resume,
                 Error **errp)
{
    Machine *m = ctx->m;
    MigrationState *s = m->migration;

    if ((has_blk && blk) || (has_inc && inc)) {
        error_setg(errp, "Block migration is not supported by Sen (use shared storage or "
                   "blockdev mirroring)");
        return false;
    }
    if (has_resume && resume) {
        error_setg(errp, "Postcopy recovery is not supported by Sen");
        return false;
    }
    if (migration_running(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    if (m->runstate == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    if (!runstate_transition_allowed(m->runstate, RUN_STATE_FINISH_MIGRATE)) {
        error_setg(errp, "migrate: the VM cannot be migrated in run state '%s'",
                   runstate_name(m->runstate));
        return false;
    }
    MigUri *u = mig_uri_parse(uri, errp);
    if (!u) {
        return false;
    }
    /* Extra connections to the same address: only sockets can have them (QEMU 7.2
     * refuses exec: and fd: the same way). */
    if (s->caps[MIG_CAP_MULTIFD] && u->kind != MIG_TRANSPORT_TCP &&
        u->kind != MIG_TRANSPORT_UNIX) {
        error_setg(errp, "%s: multifd is not supported by current protocol", uri);
        mig_uri_free(u);
        return false;
    }
    mig_uri_free(s->uri);
    s->uri = u;
    g_atomic_int_set(&s->cancel, 0);
    g_mutex_lock(&s->lock);
    g_clear_pointer(&s->error_desc, g_free);
    s->start_us = now_us();
    s->end_us = 0;
    s->setup_ms = s->downtime_ms = s->expected_downtime_ms = 0;
    s->transferred = s->precopy_bytes = s->downtime_bytes = s->pages_per_second = 0;
    s->multifd_bytes = 0;
    s->mbps = 0;
    memset(&s->last, 0, sizeof(s->last));
    s->ram = ram_save_new(m);
    s->stop_state = MIG_STOP_IDLE;
    g_mutex_unlock(&s->lock);
    set_status(s, &s->status, MIG_STATUS_SETUP, true);
    s->thread = g_thread_new("migration", outgoing_thread, s);
    return true;
}

static void migration_cancel(MigrationState *s)
{
    if (!migration_running(s)) {
        return;
    }
    g_atomic_int_set(&s->cancel, 1);
    g_mutex_lock(&s->lock);
    /* Unblock a write stuck on a slow or vanished reader. */
    if (s->fd >= 0) {
        shutdown(s->fd, SHUT_RDWR);
    }
    if (s->multifd) {
        multifd_send_shutdown(s->multifd);
    }
    if (s->child > 0) {
        kill(s->child, SIGTERM);
    }
    g_cond_broadcast(&s->cond);
    bool announce = s->status == MIG_STATUS_SETUP || s->status == MIG_STATUS_ACTIVE;
    g_mutex_unlock(&s->lock);
    if (announce) {
        set_status(s, &s->status, MIG_STATUS_CANCELLING, true);
    }
}

bool qmp_migrate_cancel(QmpCtx *ctx, Error **errp)
{
    migration_cancel(ctx->m->migration);
    return true;
}

/* ---- incoming ---- */

typedef struct InOutcome {
    bool ok;
    char *error;
    GByteArray *device;
    int handover_fd;        /* the source waits for MIG_HANDOVER_ACK here, or -1 */
} InOutcome;

static void free_in_outcome(void *opaque)
{
    InOutcome *o = opaque;
    if (o->handover_fd >= 0) {
        /* Unanswered: the source takes its VM back. */
        close(o->handover_fd);
    }
    g_free(o->error);
    if (o->device) {
        g_byte_array_unref(o->device);
    }
    g_free(o);
}

static void incoming_done_main(MigrationState *s, void *arg)
{
    InOutcome *o = arg;
    Machine *m = s->m;
    Error *err = NULL;

    g_thread_join(s->in_thread);
    s->in_thread = NULL;
    g_clear_pointer(&s->listener, mig_listener_free);
    bool ok = o->ok;
    if (!ok) {
        error_setg(&err, "%s", o->error);
    }
#if MIG_HAVE_VMSTATE
    if (ok) {
        /* The contract: main thread, VM lock not held, machine not started. */
        ok = vmstate_load_all(m, o->device->data, o->device->len, &err);
        if (!ok) {
            error_prepend(&err, "device state: ");
        }
    }
#endif
    /* The source flushed and let go of the images: read them as they are now. */
    if (ok && !block_activate_all(m, &err)) {
        error_prepend(&err, "block: ");
        ok = false;
    }
    bool activated = ok;
    if (ok && o->handover_fd >= 0) {
        /* The last moment the source can take the VM back: answer before running.  A
         * failed send means it gave up (cancel, or it is gone) and may be running. */
        static const uint8_t ack = MIG_HANDOVER_ACK;
        if (send(o->handover_fd, &ack, 1, MSG_NOSIGNAL) != 1) {
            error_setg_errno(&err, errno, "the source is gone: it did not see this VM "
                             "take over");
            ok = false;
        }
        close(o->handover_fd);
        o->handover_fd = -1;
    }
    if (!ok) {
        /* Nothing of the half-loaded guest ever runs: report and exit with status 1. */
        Error *ierr = NULL;
        if (activated && !block_inactivate_all(m, &ierr)) {
            /* The source may be writing the images again: closing must not. */
            error_report("migration: %s", error_get_pretty(ierr));
            error_free(ierr);
        }
        g_mutex_lock(&s->lock);
        g_free(s->in_error);
        s->in_error = g_strdup(error_get_pretty(err));
        g_mutex_unlock(&s->lock);
        error_report("load of migration failed: %s", error_get_pretty(err));
        error_free(err);
        set_status(s, &s->in_status, MIG_STATUS_FAILED, true);
        machine_request_shutdown(m, SHUTDOWN_CAUSE_HOST_ERROR, 1);
        return;
    }
    set_status(s, &s->in_status, MIG_STATUS_COMPLETED, true);
    if (s->autostart) {
        machine_vm_start(m);
    } else {
        machine_vm_stop(m, RUN_STATE_PAUSED);
    }
}

/* What one load keeps besides RAM. */
typedef struct LoadState {
    RamLoad *rl;
    MigListener *listener;  /* an incoming migration's, for multifd; NULL for loadvm */
    MultifdRecv *mr;        /* its multifd channels, once the MULTIFD record came */
    bool handover;          /* the HANDOVER record came: the source waits for an answer */
} LoadState;

/* Reads the whole stream; the device section (if any) goes to *device. */
static bool load_records(MigrationState *s, LoadState *ls, MigStream *st,
                         GByteArray **device, Error **errp);

/* listener: of the incoming migration (NULL: a snapshot).  *multifd_bytes: what came
 * over multifd channels.  *handover: the source waits for MIG_HANDOVER_ACK. */
static bool load_stream(MigrationState *s, MigStream *st, MigListener *listener,
                        GByteArray **device, uint64_t *multifd_bytes, bool *handover,
                        Error **errp)
{
    LoadState ls = { .rl = ram_load_new(s->m), .listener = listener };
    Error *err = NULL;
    bool ok = ram_load_setup(ls.rl, st, &err) && load_records(s, &ls, st, device, &err);
    if (!ok && ls.mr && !multifd_recv_check(ls.mr, NULL)) {
        /* A failed channel closed the main stream too: its error is the cause. */
        error_free(err);
        err = NULL;
        multifd_recv_check(ls.mr, &err);
    }
    error_propagate(errp, err);
    if (ls.mr) {
        g_mutex_lock(&s->lock);
        s->in_multifd = NULL;
        g_mutex_unlock(&s->lock);
        *multifd_bytes = multifd_recv_bytes(ls.mr);
        multifd_recv_free(ls.mr);
    }
    ram_load_free(ls.rl);
    *handover = ls.handover;
    return ok;
}

/*
 * The first record after the header: MULTIFD exactly when this destination has the
 * multifd capability (QEMU also needs it on both sides), and then the channels are
 * accepted.  *handled: the record was MULTIFD (consumed).
 */
static bool load_multifd_start(MigrationState *s, LoadState *ls, MigStream *st,
                               uint8_t type, bool *handled, Error **errp)
{
    g_mutex_lock(&s->lock);
    bool want = ls->listener && s->caps[MIG_CAP_MULTIFD];
    uint32_t own_channels = (uint32_t)s->multifd_channels;
    g_mutex_unlock(&s->lock);
    bool have = type == MIG_REC_MULTIFD && ram_load_version(ls->rl) == MIG_VERSION_MULTIFD;

    *handled = have;
    if (want && ls->listener->listen_fd < 0) {
        error_setg(errp, "%s: multifd is not supported by current protocol",
                   ls->listener->uri->uri);
        return false;
    }
    if (!have) {
        if (want) {
            error_setg(errp, "the source did not enable the multifd capability (it must "
                       "be set on both sides)");
            return false;
        }
        return true;
    }
    if (!want) {
        error_setg(errp, "the source sends over multifd channels: set the multifd "
                   "capability on this destination too");
        return false;
    }
    uint32_t channels = mig_get_be32(st);
    uint64_t session = mig_get_be64(st);
    if (!mig_stream_check(st, errp)) {
        return false;
    }
    /* Like QEMU, multifd-channels is set on both sides; a difference would leave the
     * destination waiting for channels that never come (or refusing some that do). */
    if (channels >= 1 && channels <= MULTIFD_MAX_CHANNELS && channels != own_channels) {
        error_setg(errp, "the source uses %u multifd channels but this destination's "
                   "multifd-channels is %u (set the same value on both sides)", channels,
                   own_channels);
        return false;
    }
    ls->mr = multifd_recv_start(ls->rl, ls->listener, mig_stream_fd(st), channels,
                                session, &s->in_cancel, errp);
    if (!ls->mr) {
        return false;
    }
    g_mutex_lock(&s->lock);
    s->in_multifd = ls->mr;
    g_mutex_unlock(&s->lock);
    if (g_atomic_int_get(&s->in_cancel)) {
        multifd_recv_shutdown(ls->mr);
    }
    return true;
}

/* Every record after the header, up to the END record and the checksum. */
static bool load_records(MigrationState *s, LoadState *ls, MigStream *st,
                         GByteArray **device, Error **errp)
{
    RamLoad *rl = ls->rl;
    bool first = true;

    for (;;) {
        if (g_atomic_int_get(&s->in_cancel)) {
            error_setg(errp, "incoming migration cancelled");
            return false;
        }
        uint64_t at = mig_stream_bytes(st);
        uint8_t type = mig_get_u8(st);
        if (!mig_stream_check(st, errp)) {
            return false;
        }
        if (first) {
            bool handled;
            first = false;
            if (!load_multifd_start(s, ls, st, type, &handled, errp)) {
                return false;
            }
            if (handled) {
                continue;
            }
        }
        switch (type) {
        case MIG_REC_SYNC:
            if (!ls->mr) {
                error_setg(errp, "corrupt migration stream: unknown record type 0x%02x at "
                           "byte %" G_GUINT64_FORMAT, type, at);
                return false;
            }
            uint64_t seq = mig_get_be64(st);
            if (!mig_stream_check(st, errp) || !multifd_recv_sync(ls->mr, seq, errp)) {
                return false;
            }
            break;
        case MIG_REC_RAM:
            if (!ram_load_record(rl, st, errp)) {
                return false;
            }
            break;
        case MIG_REC_DEVICE: {
            uint32_t len = mig_get_be32(st);
            uint32_t crc = mig_get_be32(st);
            if (!mig_stream_check(st, errp)) {
                return false;
            }
            if (*device || len > MIG_DEVICE_MAX) {
                error_setg(errp, "corrupt migration stream: %s device section at byte %"
                           G_GUINT64_FORMAT, *device ? "a second" : "an oversized", at);
                return false;
            }
            *device = g_byte_array_sized_new(len);
            g_byte_array_set_size(*device, len);
            mig_get_buf(st, (*device)->data, len);
            if (!mig_stream_check(st, errp)) {
                return false;
            }
            if (~mig_crc32c(0xffffffffu, (*device)->data, len) != crc) {
                error_setg(errp, "corrupt migration stream: the device section's checksum "
                           "does not match");
                return false;
            }
            break;
        }
        case MIG_REC_HANDOVER:
            /* Only a live migration's socket has someone waiting for the answer. */
            if (!ls->listener || ls->handover) {
                error_setg(errp, "corrupt migration stream: %s HANDOVER record at byte %"
                           G_GUINT64_FORMAT, ls->handover ? "a second" : "an unexpected",
                           at);
                return false;
            }
            ls->handover = true;
            break;
        case MIG_REC_END:
            if (!mig_get_checksum_ok(st)) {
                return mig_stream_check(st, errp);
            }
            if (ls->mr && !multifd_recv_finish(ls->mr, errp)) {
                return false;
            }
            if (!ram_load_finish(rl, errp)) {
                return false;
            }
            if (MIG_HAVE_VMSTATE && !*device) {
                error_setg(errp, "the migration stream has no device state (the source "
                           "Sen cannot save it)");
                return false;
            }
            if (!MIG_HAVE_VMSTATE && *device) {
                error_setg(errp, "the migration stream has device state this Sen cannot "
                           "load");
                return false;
            }
            return true;
        default:
            error_setg(errp, "corrupt migration stream: unknown record type 0x%02x at byte %"
                       G_GUINT64_FORMAT, type, at);
            return false;
        }
    }
}

static gpointer incoming_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    Error *err = NULL;
    GByteArray *device = NULL;
    MigStream *st = NULL;
    bool ok = false;
    int handover_fd = -1;

    int fd = mig_accept(s->listener, &err);
    if (fd >= 0) {
        g_mutex_lock(&s->lock);
        s->in_start_us = now_us();
        s->in_fd = fd;
        g_mutex_unlock(&s->lock);
        if (g_atomic_int_get(&s->in_cancel)) {
            shutdown(fd, SHUT_RDWR);
        }
        set_status(s, &s->in_status, MIG_STATUS_ACTIVE, false);
        st = mig_stream_new_reader(fd);
        uint64_t multifd_bytes = 0;
        bool handover = false;
        ok = load_stream(s, st, s->listener, &device, &multifd_bytes, &handover, &err);
        if (ok && handover) {
            /* The stream closes its fd; the answer goes out on a copy. */
            handover_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (handover_fd < 0) {
                error_setg_errno(&err, errno, "cannot keep the connection for the answer");
                ok = false;
            }
        }
        g_mutex_lock(&s->lock);
        s->in_bytes = mig_stream_bytes(st) + multifd_bytes;
        s->in_multifd_bytes = multifd_bytes;
        s->in_end_us = now_us();
        s->in_fd = -1;
        g_mutex_unlock(&s->lock);
    }
    mig_stream_free(st);
    InOutcome *o = g_new0(InOutcome, 1);
    o->ok = ok;
    o->error = err ? g_strdup(error_get_pretty(err)) : NULL;
    o->device = device;
    o->handover_fd = handover_fd;
    error_free(err);
    post_to_main(s, incoming_done_main, o, free_in_outcome);
    return NULL;
}

static bool incoming_start(MigrationState *s, const char *uri, Error **errp)
{
    s->listener = mig_listen(uri, errp);
    if (!s->listener) {
        return false;
    }
    s->deferred = false;
    set_status(s, &s->in_status, MIG_STATUS_SETUP, true);
    s->in_thread = g_thread_new("migration-in", incoming_thread, s);
    return true;
}

bool migration_incoming_setup(Machine *m, const char *uri, Error **errp)
{
    MigrationState *s = m->migration;

    machine_vm_stop(m, RUN_STATE_INMIGRATE);
    s->autostart = !m->cfg->start_paused;
    if (strcmp(uri, "defer") == 0) {
        s->deferred = true;
        return true;
    }
    if (!incoming_start(s, uri, errp)) {
        error_prepend(errp, "-incoming %s: ", uri);
        return false;
    }
    return true;
}

void migration_incoming_set_autostart(Machine *m)
{
    m->migration->autostart = true;
}

bool qmp_migrate_incoming(QmpCtx *ctx, const char *uri, Error **errp)
{
    MigrationState *s = ctx->m->migration;

    if (!s->deferred) {
        error_setg(errp, "The incoming migration has already been started or the VM was "
                   "not started with -incoming defer");
        return false;
    }
    return incoming_start(s, uri, errp);
}

/* ---- query and parameters ---- */

static json_t *ram_stats_json(const RamCounters *c, uint64_t transferred, double mbps,
                              uint64_t pps, uint64_t precopy, uint64_t downtime,
                              uint64_t multifd)
{
    json_t *o = json_object();
#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
    SET("transferred", transferred);
    SET("remaining", ram_stat(&c->remaining));
    SET("total", c->total);
    SET("duplicate", ram_stat(&c->duplicate));
    SET("skipped", 0);
    SET("normal", ram_stat(&c->normal));
    SET("normal-bytes", ram_stat(&c->normal) * MIG_PAGE_SIZE);
    SET("dirty-pages-rate", ram_stat(&c->dirty_pages_rate));
    json_object_set_new(o, "mbps", json_real(mbps));
    SET("dirty-sync-count", ram_stat(&c->dirty_sync_count));
    SET("postcopy-requests", 0);
    SET("page-size", MIG_PAGE_SIZE);
    SET("multifd-bytes", multifd);
    SET("pages-per-second", pps);
    SET("precopy-bytes", precopy);
    SET("downtime-bytes", downtime);
    SET("postcopy-bytes", 0);
#undef SET
    return o;
}

static json_t *query_incoming(MigrationState *s)
{
    json_t *info = json_object();
    json_object_set_new(info, "status", json_string(mig_status_names[s->in_status]));
    if (s->in_start_us) {
        int64_t end = s->in_end_us ? s->in_end_us : now_us();
        RamCounters c = { .total = 0 };
        for (unsigned i = 0; i < guest_mem_region_count(s->m->mem); i++) {
            c.total += guest_mem_region(s->m->mem, i)->size;
        }
        json_object_set_new(info, "total-time", json_integer((end - s->in_start_us) / 1000));
        json_object_set_new(info, "ram", ram_stats_json(&c, s->in_bytes, 0, 0, 0, 0, s->in_multifd_bytes));
    }
    if (s->in_error) {
        json_object_set_new(info, "error-desc", json_string(s->in_error));
    }
    return info;
}

json_t *qmp_query_migrate(QmpCtx *ctx, Error **errp)
{
    MigrationState *s = ctx->m->migration;
    json_t *info;

    g_mutex_lock(&s->lock);
    if (s->status == MIG_STATUS_NONE) {
        info = s->in_status != MIG_STATUS_NONE ? query_incoming(s) : json_object();
        g_mutex_unlock(&s->lock);
        return info;
    }
    info = json_object();
    json_object_set_new(info, "status", json_string(mig_status_names[s->status]));
    int64_t end = s->end_us ? s->end_us : now_us();
    json_object_set_new(info, "total-time", json_integer((end - s->start_us) / 1000));
    json_object_set_new(info, "setup-time", json_integer(s->setup_ms));
    if (s->status == MIG_STATUS_COMPLETED) {
        json_object_set_new(info, "downtime", json_integer(s->downtime_ms));
    } else if (s->status == MIG_STATUS_ACTIVE) {
        json_object_set_new(info, "expected-downtime", json_integer(s->expected_downtime_ms));
    }
    if (s->status != MIG_STATUS_SETUP) {
        const RamCounters *c = s->ram ? ram_save_counters(s->ram) : &s->last;
        json_object_set_new(info, "ram", ram_stats_json(c, s->transferred, s->mbps,
                                                        s->pages_per_second,
                                                        s->precopy_bytes, s->downtime_bytes,
                                                        s->multifd_bytes));
    }
    if (s->throttle_pct) {
        json_object_set_new(info, "cpu-throttle-percentage", json_integer(s->throttle_pct));
    }
    if (s->error_desc && s->status == MIG_STATUS_FAILED) {
        json_object_set_new(info, "error-desc", json_string(s->error_desc));
    }
    g_mutex_unlock(&s->lock);
    return info;
}

json_t *qmp_query_migrate_capabilities(QmpCtx *ctx, Error **errp)
{
    MigrationState *s = ctx->m->migration;
    json_t *list = json_array();

    for (size_t i = 0; i < MIG_NR_CAPS; i++) {
        json_array_append_new(list, json_pack("{s:s,s:b}", "capability", mig_cap_names[i],
                                              "state", s->caps[i]));
    }
    return list;
}

bool qmp_migrate_set_capabilities(QmpCtx *ctx, json_t *capabilities, Error **errp)
{
    MigrationState *s = ctx->m->migration;
    bool want[MIG_NR_CAPS];
    size_t i;
    json_t *c;

    if (migration_running(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    memcpy(want, s->caps, sizeof(want));
    /* All or nothing: check every entry before changing any. */
    json_array_foreach(capabilities, i, c) {
        const char *name = json_string_value(json_object_get(c, "capability"));
        bool on = json_is_true(json_object_get(c, "state"));
        for (size_t k = 0; k < MIG_NR_CAPS; k++) {
            if (strcmp(mig_cap_names[k], name) != 0) {
                continue;
            }
            if (on && k != MIG_CAP_EVENTS && k != MIG_CAP_AUTO_CONVERGE &&
                k != MIG_CAP_MULTIFD) {
                error_setg(errp, "Migration capability '%s' is not supported by Sen", name);
                return false;
            }
            want[k] = on;
        }
    }
    g_mutex_lock(&s->lock);
    memcpy(s->caps, want, sizeof(want));
    g_mutex_unlock(&s->lock);
    return true;
}

json_t *qmp_query_migrate_parameters(QmpCtx *ctx, Error **errp)
{
    MigrationState *s = ctx->m->migration;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
                     "max-bandwidth", (json_int_t)s->max_bandwidth,
                     "downtime-limit", (json_int_t)s->downtime_limit,
                     "cpu-throttle-initial", (json_int_t)s->throttle_initial,
                     "cpu-throttle-increment", (json_int_t)s->throttle_increment,
                     "max-cpu-throttle", (json_int_t)s->max_throttle,
                     "multifd-channels", (json_int_t)s->multifd_channels);
}

bool qmp_migrate_set_parameters(QmpCtx *ctx, bool has_max_bandwidth, uint64_t max_bandwidth,
                                bool has_downtime_limit, uint64_t downtime_limit,
                                bool has_cpu_throttle_initial, int64_t cpu_throttle_initial,
                                bool has_cpu_throttle_increment,
                                int64_t cpu_throttle_increment, bool has_max_cpu_throttle,
                                int64_t max_cpu_throttle, bool has_multifd_channels,
                                int64_t multifd_channels, Error **errp)
{
    MigrationState *s = ctx->m->migration;

    /* QEMU's limits: downtime up to 2000 s, throttles in percent, 1..255 channels. */
    if ((has_downtime_limit &&
         !qmp_check_range("downtime-limit", (int64_t)MIN(downtime_limit, (uint64_t)INT64_MAX),
                          0, 2000000, errp)) ||
        (has_max_bandwidth &&
         !qmp_check_range("max-bandwidth", (int64_t)MIN(max_bandwidth, (uint64_t)INT64_MAX), 0,
                          INT64_MAX / 2, errp)) ||
        (has_cpu_throttle_initial &&
         !qmp_check_range("cpu-throttle-initial", cpu_throttle_initial, 1, 99, errp)) ||
        (has_cpu_throttle_increment &&
         !qmp_check_range("cpu-throttle-increment", cpu_throttle_increment, 1, 99, errp)) ||
        (has_max_cpu_throttle &&
         !qmp_check_range("max-cpu-throttle", max_cpu_throttle, 1, 99, errp)) ||
        (has_multifd_channels &&
         !qmp_check_range("multifd-channels", multifd_channels, 1, 255, errp))) {
        return false;
    }
    g_mutex_lock(&s->lock);
    if (has_max_bandwidth) {
        s->max_bandwidth = max_bandwidth;
    }
    if (has_downtime_limit) {
        s->downtime_limit = downtime_limit;
    }
    if (has_cpu_throttle_initial) {
        s->throttle_initial = cpu_throttle_initial;
    }
    if (has_cpu_throttle_increment) {
        s->throttle_increment = cpu_throttle_increment;
    }
    if (has_max_cpu_throttle) {
        s->max_throttle = max_cpu_throttle;
    }
    if (has_multifd_channels) {
        s->multifd_channels = multifd_channels;
    }
    g_mutex_unlock(&s->lock);
    return true;
}

/* ---- life cycle ---- */

void migration_init(Machine *m)
{
    MigrationState *s = g_new0(MigrationState, 1);
    s->m = m;
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->fd = -1;
    s->in_fd = -1;
    /* QEMU 7.2's defaults. */
    s->max_bandwidth = 128u << 20;
    s->downtime_limit = 300;
    s->throttle_initial = 20;
    s->throttle_increment = 10;
    s->max_throttle = 99;
    s->multifd_channels = 2;
    m->migration = s;
}

void migration_finalize(Machine *m)
{
    MigrationState *s = m->migration;

    if (!s) {
        return;
    }
    if (s->thread) {
        migration_cancel(s);
        g_thread_join(s->thread);
        s->thread = NULL;
    }
    if (s->in_thread) {
        g_atomic_int_set(&s->in_cancel, 1);
        mig_listener_interrupt(s->listener);
        /* A source that stalls mid-stream must not keep this VM from exiting. */
        g_mutex_lock(&s->lock);
        if (s->in_fd >= 0) {
            shutdown(s->in_fd, SHUT_RDWR);
        }
        if (s->in_multifd) {
            multifd_recv_shutdown(s->in_multifd);
        }
        g_mutex_unlock(&s->lock);
        g_thread_join(s->in_thread);
        s->in_thread = NULL;
    }
    mig_listener_free(s->listener);
    m->migration = NULL;
    if (g_atomic_int_get(&s->pending_posts)) {
        /* Callbacks queued for a main loop that will not run again still point here;
         * the process is ending, so leave the state to them. */
        return;
    }
    mig_uri_free(s->uri);
    if (s->device) {
        g_byte_array_unref(s->device);
    }
    g_free(s->device_error);
    g_free(s->error_desc);
    g_free(s->in_error);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
}

/* ---- savevm (migration/savevm.c): the same stream, into a disk image ---- */

bool migration_save_vm_stream(Machine *m, MigStream *st, Error **errp)
{
    /* The VM is stopped: completions of requests in flight would still write guest RAM,
     * so they finish first; then one pass sends all of it. */
    vmstate_drain_all(m);
    RamSave *rs = ram_save_new(m);
    int no_cancel = 0;
    bool ok = ram_save_setup(rs, st, errp) && ram_save_pass(rs, st, &no_cancel, errp);
    ram_save_free(rs);
    if (!ok) {
        return false;
    }
#if MIG_HAVE_VMSTATE
    g_autoptr(GByteArray) dev = g_byte_array_new();
    if (!vmstate_save_all(m, dev, errp)) {
        error_prepend(errp, "device state: ");
        return false;
    }
    mig_put_u8(st, MIG_REC_DEVICE);
    mig_put_be32(st, dev->len);
    mig_put_be32(st, ~mig_crc32c(0xffffffffu, dev->data, dev->len));
    mig_put_buf(st, dev->data, dev->len);
#endif
    mig_put_u8(st, MIG_REC_END);
    mig_put_checksum(st);
    return mig_stream_check(st, errp);
}

bool migration_load_vm_stream(Machine *m, MigStream *st, Error **errp)
{
    GByteArray *device = NULL;
    uint64_t multifd_bytes = 0;
    bool handover = false;
    bool ok = load_stream(m->migration, st, NULL, &device, &multifd_bytes, &handover,
                          errp);
#if MIG_HAVE_VMSTATE
    if (ok) {
        ok = vmstate_load_all(m, device->data, device->len, errp);
        if (!ok) {
            error_prepend(errp, "device state: ");
        }
    }
#endif
    if (device) {
        g_byte_array_unref(device);
    }
    return ok;
}

bool migration_is_active(Machine *m)
{
    MigrationState *s = m->migration;
    return s && (s->thread || s->in_thread || s->deferred);
}
