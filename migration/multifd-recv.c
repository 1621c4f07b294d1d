/*
 * Multifd, destination side: see multifd.h.
 *
 * MultifdRecv.lock guards the fields marked [lock]; cond is broadcast whenever a
 * channel passes a SYNC, ends, or anything fails.  The first failure (a channel's or
 * the main stream's) shuts every connection down, so no thread stays blocked in a read
 * and the load ends with that first error.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>
#include "migration/multifd.h"

typedef struct RecvChannel {
    MultifdRecv *mr;
    int fd;                 /* owned by st; for shutdown */
    MigStream *st;
    GThread *thread;
    uint64_t synced;        /* [lock] the last SYNC this channel passed */
    bool ended;             /* [lock] END read and its checksum matched */
    uint64_t bytes;         /* atomic */
} RecvChannel;

struct MultifdRecv {
    RamLoad *rl;
    unsigned n;
    uint64_t session;
    int main_fd;
    RecvChannel *ch;
    GMutex lock;
    GCond cond;
    bool failed;            /* [lock] */
    char *error;            /* [lock] the first failure */
    uint64_t main_seq;      /* the main stream's reader: its last SYNC record */
};

/* Records the first failure and stops every connection.  Takes err. */
static void recv_fail(MultifdRecv *mr, Error *err)
{
    g_mutex_lock(&mr->lock);
    if (!mr->failed) {
        mr->failed = true;
        mr->error = g_strdup(error_get_pretty(err));
        for (unsigned i = 0; i < mr->n; i++) {
            if (mr->ch[i].fd >= 0) {
                shutdown(mr->ch[i].fd, SHUT_RDWR);
            }
        }
        shutdown(mr->main_fd, SHUT_RDWR);
    }
    g_cond_broadcast(&mr->cond);
    g_mutex_unlock(&mr->lock);
    error_free(err);
}

/* The greeting, already checked by the accept window (multifd-accept.c): consumed here
 * so that it counts in the channel's checksum. */
static bool skip_greeting(RecvChannel *c, Error **errp)
{
    uint8_t g[MULTIFD_GREETING_LEN];

    mig_get_buf(c->st, g, sizeof(g));
    return mig_stream_check(c->st, errp);
}

static uint64_t min_synced_locked(MultifdRecv *mr)
{
    uint64_t min = UINT64_MAX;
    for (unsigned i = 0; i < mr->n; i++) {
        min = MIN(min, mr->ch[i].synced);
    }
    return min;
}

/* A channel that ended before SYNC seq never passes it: waiting for it would be forever
 * (nothing wakes the wait, not even a cancel, once that channel's thread is gone). */
static bool sync_unreachable_locked(MultifdRecv *mr, uint64_t seq)
{
    for (unsigned i = 0; i < mr->n; i++) {
        if (mr->ch[i].ended && mr->ch[i].synced < seq) {
            return true;
        }
    }
    return false;
}

/* Waits until every channel passed SYNC seq; false with *errp set when one never will or
 * anything failed (then *errp is the first failure: the cause). */
static bool wait_synced(MultifdRecv *mr, uint64_t seq, Error **errp)
{
    g_mutex_lock(&mr->lock);
    while (!mr->failed && min_synced_locked(mr) < seq && !sync_unreachable_locked(mr, seq)) {
        g_cond_wait(&mr->cond, &mr->lock);
    }
    bool failed = mr->failed;
    bool ok = !failed && min_synced_locked(mr) >= seq;
    if (failed) {
        /* No error recorded: multifd_recv_free is stopping the threads. */
        error_setg(errp, "%s", mr->error ? mr->error : "another channel failed");
    }
    g_mutex_unlock(&mr->lock);
    if (!failed && !ok) {
        error_setg(errp, "corrupt migration stream: a multifd connection ended before "
                   "SYNC %" G_GUINT64_FORMAT, seq);
    }
    return ok;
}

/* A channel's SYNC: wait until every channel passed it (pages of the next pass must not
 * be applied while another channel may still hold pages of this one). */
static bool channel_sync(RecvChannel *c, uint64_t seq, Error **errp)
{
    MultifdRecv *mr = c->mr;

    if (seq != c->synced + 1) {
        error_setg(errp, "corrupt multifd channel: SYNC %" G_GUINT64_FORMAT " after %"
                   G_GUINT64_FORMAT, seq, c->synced);
        return false;
    }
    g_mutex_lock(&mr->lock);
    c->synced = seq;
    g_cond_broadcast(&mr->cond);
    g_mutex_unlock(&mr->lock);
    return wait_synced(mr, seq, errp);
}

/* Packets until END.  False with *errp set on any failure. */
static bool channel_load(RecvChannel *c, Error **errp)
{
    MigStream *st = c->st;

    if (!skip_greeting(c, errp)) {
        return false;
    }
    for (;;) {
        uint64_t at = mig_stream_bytes(st);
        uint8_t type = mig_get_u8(st);
        if (!mig_stream_check(st, errp)) {
            return false;
        }
        __atomic_store_n(&c->bytes, at, __ATOMIC_RELAXED);
        switch (type) {
        case MIG_REC_RAM:
            if (!ram_load_record(c->mr->rl, st, errp)) {
                return false;
            }
            break;
        case MIG_REC_SYNC: {
            uint64_t seq = mig_get_be64(st);
            if (!mig_get_checksum_ok(st)) {
                return mig_stream_check(st, errp);
            }
            if (!channel_sync(c, seq, errp)) {
                return false;
            }
            break;
        }
        case MIG_REC_END:
            if (!mig_get_checksum_ok(st)) {
                return mig_stream_check(st, errp);
            }
            g_mutex_lock(&c->mr->lock);
            c->ended = true;
            g_cond_broadcast(&c->mr->cond);
            g_mutex_unlock(&c->mr->lock);
            __atomic_store_n(&c->bytes, mig_stream_bytes(st), __ATOMIC_RELAXED);
            return true;
        default:
            error_setg(errp, "corrupt multifd channel: unknown packet type 0x%02x at byte %"
                       G_GUINT64_FORMAT, type, at);
            return false;
        }
    }
}

static gpointer recv_thread(gpointer opaque)
{
    RecvChannel *c = opaque;
    MultifdRecv *mr = c->mr;
    unsigned slot = (unsigned)(c - mr->ch);
    Error *err = NULL;

    if (!channel_load(c, &err)) {
        g_mutex_lock(&mr->lock);
        bool first = !mr->failed;
        g_mutex_unlock(&mr->lock);
        if (first) {
            error_prepend(&err, "multifd connection %u: ", slot);
        }
        recv_fail(mr, err);
    }
    return NULL;
}

/* The accept window's callback: channel id greeted on fd; its receiver starts. */
static void channel_start(void *opaque, uint32_t id, int fd)
{
    MultifdRecv *mr = opaque;
    RecvChannel *c = &mr->ch[id];

    g_mutex_lock(&mr->lock);
    c->fd = fd;
    bool failed = mr->failed;
    g_mutex_unlock(&mr->lock);
    if (failed) {
        shutdown(fd, SHUT_RDWR);
    }
    c->st = mig_stream_new_reader(fd);
    c->thread = g_thread_new("multifd-recv", recv_thread, c);
}

MultifdRecv *multifd_recv_start(RamLoad *rl, MigListener *l, int main_fd, uint32_t channels,
                                uint64_t session, const int *cancel, Error **errp)
{
    if (channels < 1 || channels > MULTIFD_MAX_CHANNELS) {
        error_setg(errp, "corrupt migration stream: %u multifd channels (1 to %u allowed)",
                   channels, MULTIFD_MAX_CHANNELS);
        return NULL;
    }
    MultifdRecv *mr = g_new0(MultifdRecv, 1);
    mr->rl = rl;
    mr->n = channels;
    mr->session = session;
    mr->main_fd = main_fd;
    mr->ch = g_new0(RecvChannel, channels);
    g_mutex_init(&mr->lock);
    g_cond_init(&mr->cond);
    for (unsigned i = 0; i < channels; i++) {
        mr->ch[i].mr = mr;
        mr->ch[i].fd = -1;
    }
    Error *err = NULL;
    if (!multifd_accept_channels(l, main_fd, channels, session, cancel, channel_start, mr,
                                 &err)) {
        /* A channel that failed closed main, which ended the wait: its error is the
         * cause. */
        if (!multifd_recv_check(mr, NULL)) {
            error_free(err);
            err = NULL;
            multifd_recv_check(mr, &err);
        }
        error_propagate(errp, err);
        multifd_recv_free(mr);
        return NULL;
    }
    return mr;
}

bool multifd_recv_check(MultifdRecv *mr, Error **errp)
{
    g_mutex_lock(&mr->lock);
    bool failed = mr->failed;
    if (failed) {
        error_setg(errp, "%s", mr->error);
    }
    g_mutex_unlock(&mr->lock);
    return !failed;
}

bool multifd_recv_sync(MultifdRecv *mr, uint64_t seq, Error **errp)
{
    if (seq != mr->main_seq + 1) {
        error_setg(errp, "corrupt migration stream: SYNC %" G_GUINT64_FORMAT " after %"
                   G_GUINT64_FORMAT, seq, mr->main_seq);
        return false;
    }
    mr->main_seq = seq;
    return wait_synced(mr, seq, errp) && multifd_recv_check(mr, errp);
}

bool multifd_recv_finish(MultifdRecv *mr, Error **errp)
{
    g_mutex_lock(&mr->lock);
    for (unsigned i = 0; i < mr->n && !mr->failed; i++) {
        while (!mr->failed && !mr->ch[i].ended) {
            g_cond_wait(&mr->cond, &mr->lock);
        }
    }
    g_mutex_unlock(&mr->lock);
    if (!multifd_recv_check(mr, errp)) {
        return false;
    }
    for (unsigned i = 0; i < mr->n; i++) {
        if (mr->ch[i].synced != mr->main_seq) {
            error_setg(errp, "corrupt migration stream: multifd connection %u ended after "
                       "SYNC %" G_GUINT64_FORMAT ", the main stream after SYNC %"
                       G_GUINT64_FORMAT, i, mr->ch[i].synced, mr->main_seq);
            return false;
        }
    }
    return true;
}

uint64_t multifd_recv_bytes(MultifdRecv *mr)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < mr->n; i++) {
        sum += __atomic_load_n(&mr->ch[i].bytes, __ATOMIC_RELAXED);
    }
    return sum;
}

void multifd_recv_shutdown(MultifdRecv *mr)
{
    g_mutex_lock(&mr->lock);
    for (unsigned i = 0; i < mr->n; i++) {
        if (mr->ch[i].fd >= 0) {
            shutdown(mr->ch[i].fd, SHUT_RDWR);
        }
    }
    g_mutex_unlock(&mr->lock);
}

void multifd_recv_free(MultifdRecv *mr)
{
    if (!mr) {
        return;
    }
    /* On success every thread has ended; otherwise make them end. */
    g_mutex_lock(&mr->lock);
    mr->failed = true;
    g_cond_broadcast(&mr->cond);
    g_mutex_unlock(&mr->lock);
    multifd_recv_shutdown(mr);
    for (unsigned i = 0; i < mr->n; i++) {
        if (mr->ch[i].thread) {
            g_thread_join(mr->ch[i].thread);
        }
        mig_stream_free(mr->ch[i].st);
    }
    g_free(mr->ch);
    g_free(mr->error);
    g_mutex_clear(&mr->lock);
    g_cond_clear(&mr->cond);
    g_free(mr);
}
