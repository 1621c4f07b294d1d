/*
 * Multifd, source side: see multifd.h.
 *
 * MultifdSend.lock guards every field marked [lock].  A channel is busy while its
 * thread works on a job (pages, then optionally SYNC and END); the migration thread
 * hands a job only to an idle channel, by swapping its filled batch with the channel's
 * empty one, so page lists are never copied and never shared.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>
#include "migration/multifd.h"

/* A batch goes to a channel once it holds this many data pages (512 KiB: large writes,
 * yet enough batches per pass to keep every channel busy) or this many runs. */
#define MULTIFD_BATCH_PAGES 128u
#define MULTIFD_BATCH_RUNS 128u

typedef struct MultifdRun {
    uint64_t gpa;
    const uint8_t *hva;
    uint32_t npages;
    bool zero;
} MultifdRun;

typedef struct MultifdBatch {
    MultifdRun runs[MULTIFD_BATCH_RUNS];
    unsigned nruns;
    unsigned data_pages;
} MultifdBatch;

typedef struct SendChannel {
    MultifdSend *mf;
    unsigned id;
    int fd;                 /* [lock] -1 until connected; owned by st */
    MigStream *st;          /* the channel thread's while it runs */
    GThread *thread;
    GCond job_cond;         /* a job was posted, or quit */
    bool busy;              /* [lock] */
    MultifdBatch *batch;    /* [lock] the job's pages (emptied by the thread) */
    uint64_t sync_seq;      /* [lock] the job ends with SYNC(sync_seq) when non-zero */
    bool end;               /* [lock] ... and then END */
    uint64_t bytes;         /* atomic: bytes written so far */
} SendChannel;

struct MultifdSend {
    unsigned n;
    uint64_t session;
    SendChannel *ch;
    GMutex lock;
    GCond idle_cond;        /* a channel became idle or failed */
    bool quit;              /* [lock] */
    char *error;            /* [lock] the first channel failure */
    uint64_t rate_limit;    /* [lock] per channel, bytes/s */
    MultifdBatch *pending;  /* migration thread: the batch being filled */
    unsigned next;          /* migration thread: where the idle search starts */
    uint64_t sync_seq;      /* migration thread: the last SYNC sent */
    bool finished;          /* migration thread: every channel's END is written */
};

MultifdSend *multifd_send_new(unsigned channels)
{
    MultifdSend *mf = g_new0(MultifdSend, 1);
    mf->n = channels;
    /* Tells this migration's channels from a stray or stale connection. */
    mf->session = ((uint64_t)g_random_int() << 32) | g_random_int();
    mf->ch = g_new0(SendChannel, channels);
    g_mutex_init(&mf->lock);
    g_cond_init(&mf->idle_cond);
    mf->pending = g_new0(MultifdBatch, 1);
    for (unsigned i = 0; i < channels; i++) {
        SendChannel *c = &mf->ch[i];
        c->mf = mf;
        c->id = i;
        c->fd = -1;
        c->batch = g_new0(MultifdBatch, 1);
        g_cond_init(&c->job_cond);
    }
    return mf;
}

/* ---- channel threads ---- */

static void put_job(SendChannel *c, MultifdBatch *b, uint64_t sync_seq, bool end)
{
    MigStream *st = c->st;

    for (unsigned i = 0; i < b->nruns; i++) {
        const MultifdRun *r = &b->runs[i];
        ram_put_record(st, r->gpa, r->hva, r->npages, r->zero);
    }
    b->nruns = 0;
    b->data_pages = 0;
    if (sync_seq) {
        mig_put_u8(st, MIG_REC_SYNC);
        mig_put_be64(st, sync_seq);
        mig_put_checksum(st); /* flushes: the SYNC is on its way when the job is done */
    }
    if (end) {
        mig_put_u8(st, MIG_REC_END);
        mig_put_checksum(st);
    }
    __atomic_store_n(&c->bytes, mig_stream_bytes(st), __ATOMIC_RELAXED);
}

static gpointer send_thread(gpointer opaque)
{
    SendChannel *c = opaque;
    MultifdSend *mf = c->mf;
    uint64_t rate = 0;

    g_mutex_lock(&mf->lock);
    for (;;) {
        while (!c->busy && !mf->quit) {
            g_cond_wait(&c->job_cond, &mf->lock);
        }
        if (!c->busy) {
            break;
        }
        MultifdBatch *b = c->batch;
        uint64_t sync_seq = c->sync_seq;
        bool end = c->end;
        if (rate != mf->rate_limit) {
            rate = mf->rate_limit;
            mig_stream_set_rate_limit(c->st, rate);
        }
        g_mutex_unlock(&mf->lock);

        put_job(c, b, sync_seq, end);
        Error *err = NULL;
        bool ok = mig_stream_check(c->st, &err);

        g_mutex_lock(&mf->lock);
        if (!ok && !mf->error) {
            mf->error = g_strdup_printf("multifd channel %u: %s", c->id,
                                        error_get_pretty(err));
        }
        error_free(err);
        c->busy = false;
        c->sync_seq = 0;
        c->end = false;
        g_cond_broadcast(&mf->idle_cond);
    }
    g_mutex_unlock(&mf->lock);
    return NULL;
}

/* ---- connecting ---- */

bool multifd_send_connect(MultifdSend *mf, MigStream *main, MigUri *u, Error **errp)
{
    if (u->kind != MIG_TRANSPORT_TCP && u->kind != MIG_TRANSPORT_UNIX) {
        error_setg(errp, "%s: multifd is not supported by current protocol", u->uri);
        return false;
    }
    mig_put_u8(main, MIG_REC_MULTIFD);
    mig_put_be32(main, mf->n);
    mig_put_be64(main, mf->session);
    mig_stream_flush(main);
    if (!mig_stream_check(main, errp)) {
        return false;
    }
    for (unsigned i = 0; i < mf->n; i++) {
        SendChannel *c = &mf->ch[i];
        pid_t child;
        int fd = mig_connect(u, &child, errp);
        if (fd < 0) {
            error_prepend(errp, "multifd channel %u: ", i);
            return false;
        }
        g_mutex_lock(&mf->lock);
        c->fd = fd;
        bool quit = mf->quit;
        g_mutex_unlock(&mf->lock);
        if (quit) {
            /* Cancelled while connecting: the shutdown came before this fd existed. */
            shutdown(fd, SHUT_RDWR);
        }
        /* The stream owns fd; c->fd only serves shutdown while mf lives. */
        c->st = mig_stream_new_writer(fd);
        mig_put_buf(c->st, MULTIFD_MAGIC, 8);
        mig_put_be32(c->st, MULTIFD_VERSION);
        mig_put_be64(c->st, mf->session);
        mig_put_be32(c->st, i);
        mig_put_be32(c->st, mf->n);
        mig_stream_flush(c->st);
        if (!mig_stream_check(c->st, errp)) {
            error_prepend(errp, "multifd channel %u: ", i);
            return false;
        }
        c->thread = g_thread_new("multifd-send", send_thread, c);
    }
    return true;
}

/* ---- the migration thread's side ---- */

/* Whether the channels stopped working: a channel failed, or a cancel shut them down
 * (a thread that saw quit while idle is gone, so its channel never becomes idle). */
static bool stopped_locked(MultifdSend *mf, Error **errp)
{
    if (mf->error) {
        error_setg(errp, "%s", mf->error);
        return true;
    }
    if (mf->quit) {
        error_setg(errp, "migration cancelled");
        return true;
    }
    return false;
}

/* Waits for channel c to be idle; false (error set) when the channels stopped. */
static bool wait_idle_locked(MultifdSend *mf, SendChannel *c, Error **errp)
{
    while (c->busy && !mf->error && !mf->quit) {
        g_cond_wait(&mf->idle_cond, &mf->lock);
    }
    return !stopped_locked(mf, errp);
}

/* Hands the pending batch to the first idle channel (round robin). */
static bool dispatch_pending(MultifdSend *mf, Error **errp)
{
    g_mutex_lock(&mf->lock);
    SendChannel *c = NULL;
    while (!c && !mf->error && !mf->quit) {
        for (unsigned k = 0; k < mf->n && !c; k++) {
            SendChannel *cand = &mf->ch[(mf->next + k) % mf->n];
            c = cand->busy ? NULL : cand;
        }
        if (!c && !mf->error && !mf->quit) {
            g_cond_wait(&mf->idle_cond, &mf->lock);
        }
    }
    if (stopped_locked(mf, errp)) {
        g_mutex_unlock(&mf->lock);
        return false;
    }
    MultifdBatch *empty = c->batch;
    c->batch = mf->pending;
    mf->pending = empty;
    c->busy = true;
    g_cond_signal(&c->job_cond);
    mf->next = (c->id + 1) % mf->n;
    g_mutex_unlock(&mf->lock);
    return true;
}

bool multifd_send_pages(void *opaque, uint64_t gpa, const uint8_t *hva, uint32_t npages,
                        bool zero, Error **errp)
{
    MultifdSend *mf = opaque;
    MultifdBatch *b = mf->pending;

    b->runs[b->nruns++] = (MultifdRun){ .gpa = gpa, .hva = hva, .npages = npages,
                                        .zero = zero };
    if (!zero) {
        b->data_pages += npages;
    }
    if (b->nruns == MULTIFD_BATCH_RUNS || b->data_pages >= MULTIFD_BATCH_PAGES) {
        return dispatch_pending(mf, errp);
    }
    return true;
}

bool multifd_send_sync(MultifdSend *mf, MigStream *main, bool last, Error **errp)
{
    if (mf->pending->nruns && !dispatch_pending(mf, errp)) {
        return false;
    }
    uint64_t seq = ++mf->sync_seq;
    bool ok = true;
    g_mutex_lock(&mf->lock);
    /* Every channel gets its SYNC before we wait for any to be sent: a destination
     * channel waiting at the previous SYNC only needs the others to get there. */
    for (unsigned i = 0; i < mf->n && ok; i++) {
        SendChannel *c = &mf->ch[i];
        ok = wait_idle_locked(mf, c, errp);
        if (ok) {
            c->sync_seq = seq;
            c->end = last;
            c->busy = true;
            g_cond_signal(&c->job_cond);
        }
    }
    for (unsigned i = 0; i < mf->n && ok; i++) {
        ok = wait_idle_locked(mf, &mf->ch[i], errp);
    }
    g_mutex_unlock(&mf->lock);
    if (!ok) {
        return false;
    }
    mf->finished = last;
    mig_put_u8(main, MIG_REC_SYNC);
    mig_put_be64(main, seq);
    mig_stream_flush(main);
    return mig_stream_check(main, errp);
}

void multifd_send_set_rate_limit(MultifdSend *mf, uint64_t bytes_per_sec)
{
    g_mutex_lock(&mf->lock);
    mf->rate_limit = bytes_per_sec ? MAX(bytes_per_sec / mf->n, 1) : 0;
    g_mutex_unlock(&mf->lock);
}

uint64_t multifd_send_bytes(MultifdSend *mf)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < mf->n; i++) {
        sum += __atomic_load_n(&mf->ch[i].bytes, __ATOMIC_RELAXED);
    }
    return sum;
}

void multifd_send_shutdown(MultifdSend *mf)
{
    g_mutex_lock(&mf->lock);
    mf->quit = true;
    for (unsigned i = 0; i < mf->n; i++) {
        if (mf->ch[i].fd >= 0) {
            shutdown(mf->ch[i].fd, SHUT_RDWR);
        }
        g_cond_signal(&mf->ch[i].job_cond);
    }
    g_cond_broadcast(&mf->idle_cond);
    g_mutex_unlock(&mf->lock);
}

void multifd_send_free(MultifdSend *mf)
{
    if (!mf) {
        return;
    }
    g_mutex_lock(&mf->lock);
    mf->quit = true;
    for (unsigned i = 0; i < mf->n; i++) {
        SendChannel *c = &mf->ch[i];
        /* An abandoned channel must not keep a job or its stream's writer blocked on
         * a peer that stopped reading. */
        if (!mf->finished && c->fd >= 0) {
            shutdown(c->fd, SHUT_RDWR);
        }
        g_cond_signal(&c->job_cond);
    }
    g_mutex_unlock(&mf->lock);
    for (unsigned i = 0; i < mf->n; i++) {
        SendChannel *c = &mf->ch[i];
        if (c->thread) {
            g_thread_join(c->thread);
        }
        mig_stream_free(c->st);
        g_free(c->batch);
        g_cond_clear(&c->job_cond);
    }
    g_free(mf->ch);
    g_free(mf->pending);
    g_free(mf->error);
    g_mutex_clear(&mf->lock);
    g_cond_clear(&mf->idle_cond);
    g_free(mf);
}
