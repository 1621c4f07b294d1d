/*
 * The block worker pool: runs the synchronous driver ops of asynchronous requests on
 * worker threads (aio=threads) and hands the results back to the node's GMainContext.
 *
 * Why not GThreadPool plus one idle GSource per completion: every completion then took the
 * context lock and woke the loop, and the pool's queue lock was a second contended lock, so
 * at queue depth 32 the workers spent most of their time in futex calls.  Here:
 * - a worker keeps taking queued requests until the queue is empty before it sleeps, and
 *   a submitter wakes one sleeping worker through that worker's own mutex and condition,
 *   so the woken worker never waits for the pool lock that the submitter takes again for
 *   the next request of a burst (that wake-then-block cost a context switch per request
 *   at depth 32);
 * - handed-over requests start in submission order whichever woken worker runs first:
 *   the submitter puts them in a ring in order and each woken worker takes the oldest not
 *   yet taken.  A request bound to the worker it woke entered the kernel when the
 *   scheduler ran that worker, so a burst of sequential O_DIRECT reads reached the disk
 *   out of order (front merges, twice the device requests of qemu-img, docs/block.md);
 * - with join_reads (O_DIRECT nodes), a worker that takes a read from the ring also
 *   claims the reads filled after it when they continue it (same flags, up to
 *   JOIN_MAX_BYTES, each keeping the node's O_DIRECT alignment) and runs them as one
 *   vectored read: a burst of sequential reads then costs the kernel fewer, larger bios
 *   and the workers fewer wake-ups.  Not through the
 *   page cache: there a joined read is one thread's copy instead of several in parallel
 *   (measured 10% slower).  A joined read that fails is run again request by request, so
 *   each request gets its own result;
 * - finished requests go on one list; only the worker that finds the list empty writes
 *   the eventfd, and the loop runs every finished request in one dispatch, in order.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <sys/eventfd.h>
#include "block/block-internal.h"

enum {
    JOIN_MAX_BYTES = 256 * 1024,
    JOIN_MAX_JOBS = 8,
    JOIN_MAX_IOV = 64,
};

typedef struct BlockPoolJob {
    BlockRequest *req;
    int ret;
    struct BlockPoolJob *next;
} BlockPoolJob;

/* One worker thread; job, take_ring, stop and the wait are guarded by its own mutex. */
typedef struct BlockPoolWorker {
    struct BlockPool *pool;
    GThread *thread;
    GMutex mutex;
    GCond cond;               /* job or take_ring was set, or stop */
    BlockPoolJob *job;        /* handed to this worker alone (the ring slot was full) */
    bool take_ring;           /* woken to take the oldest job in the ring */
    bool stop;
    struct BlockPoolWorker *next_idle;
} BlockPoolWorker;

struct BlockPool {
    BlockPoolRunFunc *run;
    void *opaque;
    int max_threads;

    GMutex lock;              /* guards everything below except the done list */
    GQueue queue;             /* BlockPoolJob * waiting for a worker */
    GPtrArray *threads;       /* BlockPoolWorker *, joined by block_pool_free */
    BlockPoolWorker *idle;    /* workers with an empty queue, each waiting to be woken */
    bool stopping;

    /*
     * The hand-over ring.  Each slot holds a job or NULL.  A submitter (pool lock held)
     * fills slot ring_head only when it is EMPTY, advances ring_head and wakes one idle
     * worker with take_ring; when that slot is still full it hands the job to the woken
     * worker's own slot instead.  A worker woken with take_ring takes a ticket
     * (fetch-add on ring_tail) and empties slot ticket with an atomic exchange.
     * Why that cannot lose or repeat a job, however long a worker is preempted between
     * its ticket and its exchange:
     * - each ring fill wakes exactly one worker and each such worker takes one ticket,
     *   so the t + 1 workers that took tickets 0..t were woken by t + 1 different fills,
     *   one of them fill t or a later one (fills are ordered by the pool lock).  Each
     *   fill happens before its worker's wake-up (the worker's mutex) and so before that
     *   worker's ticket increment; the increments are acquire-release read-modify-writes
     *   of one variable, so fill t happens before the exchange of ticket t;
     * - fill t + ring_size goes to the same slot and waits for it to be empty, which only
     *   the exchange of ticket t makes it; so every slot alternates fill k, exchange k,
     *   fill k + ring_size, ..., and ticket t's exchange returns exactly job t.
     * 95290d7 overwrote the slot regardless: a preempted ticket holder then read a newer
     * job (run twice) and its own was lost.
     * With join_reads a worker also empties later slots (compare-exchange, so each job
     * still leaves the ring once, to whoever emptied its slot).  Then a ticket's slot may
     * be empty (the job was joined: the worker has nothing to run) or hold a newer job
     * (filled after a joiner emptied it: the worker runs that one).  Still none is lost:
     * job k stays in its slot until someone takes it, and ticket k's exchange, which
     * comes after fill k, takes it if nobody did before.
     */
    BlockPoolJob **ring;      /* ring_size slots, ring_size a power of two */
    unsigned ring_size;
    unsigned ring_head;       /* next slot to fill (lock held) */
    unsigned ring_tail;       /* atomic: next ticket */
    int64_t *ring_hint;       /* per slot: offset of the read last filled there, else -1;
                               * only a hint for joiners (read before the job is claimed) */
    bool join_reads;          /* set before the first submission */
    unsigned join_align;      /* O_DIRECT alignment a joined vector keeps, 1 for none */
    unsigned direct_handoffs; /* lock held: jobs handed to a worker's own slot (tests) */
    BlockPoolTakeHook *take_hook; /* tests: runs between a ticket and its exchange */
    void *take_hook_opaque;

    int pending;              /* atomic: submitted, completion not yet started */
    bool overlapped;          /* two requests were ever pending at once (lock held) */

    GMutex done_lock;         /* guards the done list */
    BlockPoolJob *done_head, **done_tail;
    int efd;                  /* readable while the done list is not empty */
    BlockFdWatch watch;       /* efd in the submitters' context; set up under lock */
};

/* Puts a run job on the done list; the first one on an empty list signals the loop. */
static void block_pool_finish(BlockPool *p, BlockPoolJob *job)
{
    job->next = NULL;
    g_mutex_lock(&p->done_lock);
    bool was_empty = !p->done_head;
    *p->done_tail = job;
    p->done_tail = &job->next;
    if (was_empty) {
        /* The loop reads the eventfd before it takes the list, so a job added after
         * that sees an empty list again and signals once more: none is missed. */
        uint64_t one = 1;
        while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
    g_mutex_unlock(&p->done_lock);
}

/*
 * Takes the oldest job in the ring; only for a worker woken with take_ring.  *ticket is
 * its ticket.  NULL only with join_reads: another worker took the job into a joined read.
 */
static BlockPoolJob *block_pool_ring_take(BlockPool *p, unsigned *ticket)
{
    *ticket = __atomic_fetch_add(&p->ring_tail, 1, __ATOMIC_ACQ_REL);

    if (p->take_hook) {
        p->take_hook(p->take_hook_opaque);
    }
    BlockPoolJob *job = __atomic_exchange_n(&p->ring[*ticket & (p->ring_size - 1)], NULL,
                                            __ATOMIC_ACQ_REL);
    /* Without joiners this cannot fail (see struct BlockPool). */
    g_assert(job || p->join_reads);
    return job;
}

/*
 * Whether req may be part of a joined read: its vector holds exactly its bytes, so vectors
 * can be laid end to end, and its offset, length and every buffer piece keep the node's
 * O_DIRECT alignment.  One unaligned piece would make the driver bounce the whole joined
 * read through one buffer (a copy of every request in it), where alone only that request
 * bounces.
 */
static bool block_pool_joinable(const BlockPool *p, const BlockRequest *req)
{
    uintptr_t mask = p->join_align - 1;

    if (((uint64_t)req->offset | (uint64_t)req->bytes) & mask) {
        return false;
    }
    for (int i = 0; i < req->niov; i++) {
        if (((uintptr_t)req->iov[i].iov_base | req->iov[i].iov_len) & mask) {
            return false;
        }
    }
    return iov_size(req->iov, req->niov) == (size_t)req->bytes;
}

/* Whether next continues the joined read first..end of niov pieces, within the limits. */
static bool block_pool_joins(const BlockPool *p, const BlockRequest *first, int64_t end,
                             int niov, const BlockRequest *next)
{
    return next->type == BLOCK_REQ_READ && next->flags == first->flags &&
           next->offset == end && end + next->bytes - first->offset <= JOIN_MAX_BYTES &&
           niov + next->niov <= JOIN_MAX_IOV && block_pool_joinable(p, next);
}

/*
 * Claims the jobs in the slots after ticket whose hint says they continue jobs[0]; returns
 * how many jobs are in jobs.  A job claimed on a stale hint (its slot was refilled in
 * between) that does not continue the read is still this worker's to run: *last_separate
 * says so, and the join stops there.
 */
static int block_pool_claim_joins(BlockPool *p, unsigned ticket, BlockPoolJob **jobs,
                                  bool *last_separate)
{
    const BlockRequest *first = jobs[0]->req;
    int n = 1, niov = first->niov;
    int64_t end = first->offset + first->bytes;

    *last_separate = false;
    if (!p->join_reads || first->type != BLOCK_REQ_READ || !block_pool_joinable(p, first)) {
        return 1;
    }
    while (n < JOIN_MAX_JOBS) {
        unsigned slot = (ticket + n) & (p->ring_size - 1);
        BlockPoolJob *next = __atomic_load_n(&p->ring[slot], __ATOMIC_ACQUIRE);
        if (!next || __atomic_load_n(&p->ring_hint[slot], __ATOMIC_RELAXED) != end ||
            !__atomic_compare_exchange_n(&p->ring[slot], &next, NULL, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            break;
        }
        /* Only now is next this worker's, so only now may its request be read. */
        jobs[n++] = next;
        if (!block_pool_joins(p, first, end, niov, next->req)) {
            *last_separate = true;
            break;
        }
        end += next->req->bytes;
        niov += next->req->niov;
    }
    return n;
}

/* Runs jobs[0..n) as one read; a failure runs them again one by one for their results. */
static void block_pool_run_joined(BlockPool *p, BlockPoolJob **jobs, int n)
{
    struct iovec iov[JOIN_MAX_IOV];
    BlockRequest joined = *jobs[0]->req;
    int niov = 0;

    for (int i = 0; i < n; i++) {
        const BlockRequest *req = jobs[i]->req;
        memcpy(&iov[niov], req->iov, req->niov * sizeof(iov[0]));
        niov += req->niov;
    }
    joined.iov = iov;
    joined.niov = niov;
    joined.bytes = jobs[n - 1]->req->offset + jobs[n - 1]->req->bytes - joined.offset;
    int ret = p->run(p->opaque, &joined);
    for (int i = 0; i < n; i++) {
        jobs[i]->ret = ret < 0 ? p->run(p->opaque, jobs[i]->req) : ret;
        block_pool_finish(p, jobs[i]);
    }
}

/* Runs a job taken from the ring with the reads it claims to join it. */
static void block_pool_run_from_ring(BlockPool *p, BlockPoolJob *job, unsigned ticket)
{
    BlockPoolJob *jobs[JOIN_MAX_JOBS] = { job };
    bool last_separate;
    int n = block_pool_claim_joins(p, ticket, jobs, &last_separate);
    int n_joined = last_separate ? n - 1 : n;

    if (n_joined > 1) {
        block_pool_run_joined(p, jobs, n_joined);
    } else {
        job->ret = p->run(p->opaque, job->req);
        block_pool_finish(p, job);
    }
    if (last_separate) {
        jobs[n - 1]->ret = p->run(p->opaque, jobs[n - 1]->req);
        block_pool_finish(p, jobs[n - 1]);
    }
}

/*
 * Waits until a submitter wakes w; returns false when the pool stops.  Otherwise either
 * *from_ring is false and *job is the job handed to w alone, or *from_ring is true, w
 * took ring ticket *ticket and *job is the job it found there (NULL when a joiner had
 * taken it).
 */
static bool block_pool_worker_wait(BlockPoolWorker *w, BlockPoolJob **job, bool *from_ring,
                                   unsigned *ticket)
{
    g_mutex_lock(&w->mutex);
    while (!w->job && !w->take_ring && !w->stop) {
        g_cond_wait(&w->cond, &w->mutex);
    }
    *job = w->job;
    *from_ring = w->take_ring;
    w->job = NULL;
    w->take_ring = false;
    g_mutex_unlock(&w->mutex);
    /* A wake-up carries one job or one ticket, never both. */
    if (*from_ring) {
        *job = block_pool_ring_take(w->pool, ticket);
        return true;
    }
    return *job != NULL;
}

static gpointer block_pool_worker(gpointer opaque)
{
    BlockPoolWorker *w = opaque;
    BlockPool *p = w->pool;

    for (;;) {
        g_mutex_lock(&p->lock);
        BlockPoolJob *job = g_queue_pop_head(&p->queue);
        if (!job) {
            if (p->stopping) {
                g_mutex_unlock(&p->lock);
                break;
            }
            /* Idle under the pool lock: a submitter that finds the queue empty of
             * workers queues instead, and one that finds w here hands it the job. */
            w->next_idle = p->idle;
            p->idle = w;
            g_mutex_unlock(&p->lock);
            bool from_ring;
            unsigned ticket;
            if (!block_pool_worker_wait(w, &job, &from_ring, &ticket)) {
                break;
            }
            if (from_ring) {
                if (job) {
                    block_pool_run_from_ring(p, job, ticket);
                }
                continue;
            }
        } else {
            g_mutex_unlock(&p->lock);
        }
        job->ret = p->run(p->opaque, job->req);
        block_pool_finish(p, job);
    }
    return NULL;
}

/* Runs every finished request's completion, oldest first, in the pool's context. */
static gboolean block_pool_dispatch(gint fd, GIOCondition cond, gpointer opaque)
{
    BlockPool *p = opaque;
    uint64_t count;

    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR) {
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&p->done_lock);
    BlockPoolJob *job = p->done_head;
    p->done_head = NULL;
    p->done_tail = &p->done_head;
    g_mutex_unlock(&p->done_lock);

    while (job) {
        BlockPoolJob *next = job->next;
        /* Before the completion, which may submit the next request of a depth-1 run. */
        g_atomic_int_add(&p->pending, -1);
        bdrv_request_complete(job->req, job->ret);
        g_free(job);
        job = next;
    }
    return G_SOURCE_CONTINUE;
}

BlockPool *block_pool_new_ring(int max_threads, unsigned ring_size,
                               BlockPoolRunFunc *run, void *opaque)
{
    BlockPool *p = g_new0(BlockPool, 1);

    p->run = run;
    p->opaque = opaque;
    p->max_threads = MAX(max_threads, 1);
    p->ring_size = 1;
    while (p->ring_size < ring_size) {
        p->ring_size *= 2;
    }
    p->ring = g_new0(BlockPoolJob *, p->ring_size);
    p->ring_hint = g_new(int64_t, p->ring_size);
    p->join_align = 1;
    for (unsigned i = 0; i < p->ring_size; i++) {
        p->ring_hint[i] = -1;
    }
    g_mutex_init(&p->lock);
    g_queue_init(&p->queue);
    p->threads = g_ptr_array_new();
    g_mutex_init(&p->done_lock);
    p->done_tail = &p->done_head;
    p->efd = -1;
    return p;
}

BlockPool *block_pool_new(int max_threads, BlockPoolRunFunc *run, void *opaque)
{
    /* Room for every worker: a full slot (a preempted ticket holder) is then rare. */
    return block_pool_new_ring(max_threads, MAX(max_threads, 1), run, opaque);
}

void block_pool_set_join_reads(BlockPool *p, bool on)
{
    p->join_reads = on;
}

void block_pool_set_join_align(BlockPool *p, unsigned align)
{
    g_assert(align > 0 && (align & (align - 1)) == 0);
    p->join_align = align;
}

void block_pool_set_take_hook(BlockPool *p, BlockPoolTakeHook *hook, void *opaque)
{
    p->take_hook = hook;
    p->take_hook_opaque = opaque;
}

int block_pool_idle_workers(BlockPool *p)
{
    int n = 0;

    g_mutex_lock(&p->lock);
    for (BlockPoolWorker *w = p->idle; w; w = w->next_idle) {
        n++;
    }
    g_mutex_unlock(&p->lock);
    return n;
}

int block_pool_workers(BlockPool *p)
{
    g_mutex_lock(&p->lock);
    int n = p->threads->len;
    g_mutex_unlock(&p->lock);
    return n;
}

unsigned block_pool_direct_handoffs(BlockPool *p)
{
    g_mutex_lock(&p->lock);
    unsigned n = p->direct_handoffs;
    g_mutex_unlock(&p->lock);
    return n;
}

/* (Re)attaches the completion source to ctx; lock held.  False if no eventfd. */
static bool block_pool_attach_locked(BlockPool *p, GMainContext *ctx)
{
    if (p->efd < 0) {
        p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->efd < 0) {
            return false;
        }
    }
    /* Recursion is safe: a dispatch detaches the whole done list before it runs it. */
    block_fd_watch_attach(&p->watch, p->efd, ctx, block_pool_dispatch, p, true);
    return true;
}

int block_pool_submit(BlockPool *p, GMainContext *ctx, BlockRequest *req, bool may_inline)
{
    BlockPoolJob *job = g_new(BlockPoolJob, 1);

    job->req = req;
    g_mutex_lock(&p->lock);
    if (!block_pool_attach_locked(p, ctx)) {
        int ret = -errno;
        g_mutex_unlock(&p->lock);
        g_free(job);
        return ret;
    }
    if (may_inline && !p->overlapped && g_atomic_int_get(&p->pending) == 0) {
        /* Nothing in flight: handing off would cost a worker wake-up and a context
         * switch each way for no overlap.  The completion still comes from the loop.
         * Only while the submitter has never had two requests in flight: one that keeps
         * several (bench -d 32) finds none pending whenever its whole batch completed
         * at once, and a request run here then holds back the rest of its next batch
         * for a whole I/O, with the disk idle but for it (13-27 times in a depth-32
         * run of 20000 4 KiB reads). */
        g_atomic_int_inc(&p->pending);
        g_mutex_unlock(&p->lock);
        job->ret = p->run(p->opaque, req);
        block_pool_finish(p, job);
        return 0;
    }
    BlockPoolWorker *w = p->idle;
    bool via_ring = false;
    if (w) {
        p->idle = w->next_idle;
        BlockPoolJob **slot = &p->ring[p->ring_head & (p->ring_size - 1)];
        /* Acquire: the taker that emptied the slot is done with it. */
        if (!__atomic_load_n(slot, __ATOMIC_ACQUIRE)) {
            /* The hint first: a joiner that sees the job sees its hint or a newer one. */
            __atomic_store_n(&p->ring_hint[slot - p->ring],
                             req->type == BLOCK_REQ_READ ? req->offset : (int64_t)-1,
                             __ATOMIC_RELAXED);
            __atomic_store_n(slot, job, __ATOMIC_RELEASE);
            p->ring_head++;
            via_ring = true;
        } else {
            p->direct_handoffs++;
        }
    } else {
        g_queue_push_tail(&p->queue, job);
        if ((int)p->threads->len < p->max_threads) {
            BlockPoolWorker *nw = g_new0(BlockPoolWorker, 1);
            nw->pool = p;
            g_mutex_init(&nw->mutex);
            g_cond_init(&nw->cond);
            nw->thread = g_thread_try_new("block-worker", block_pool_worker, nw, NULL);
            if (nw->thread) {
                g_ptr_array_add(p->threads, nw);
            } else {
                g_mutex_clear(&nw->mutex);
                g_cond_clear(&nw->cond);
                g_free(nw);
            }
        }
        /* Without a new thread a running worker still takes the job when it is done. */
        if (p->threads->len == 0) {
            g_queue_pop_tail(&p->queue);
            g_mutex_unlock(&p->lock);
            g_free(job);
            return -EAGAIN;
        }
    }
    if (g_atomic_int_add(&p->pending, 1) > 0) {
        p->overlapped = true;
    }
    g_mutex_unlock(&p->lock);
    if (w) {
        /* Outside the pool lock: the woken worker only needs its own mutex, which is
         * free again before the signal.  The worker cannot be gone: only
         * block_pool_free ends workers, after the owner's last submission. */
        g_mutex_lock(&w->mutex);
        if (via_ring) {
            w->take_ring = true;
        } else {
            w->job = job;
        }
        g_mutex_unlock(&w->mutex);
        g_cond_signal(&w->cond);
    }
    return 0;
}

void block_pool_free(BlockPool *p)
{
    if (!p) {
        return;
    }
    g_mutex_lock(&p->lock);
    p->stopping = true;
    g_mutex_unlock(&p->lock);
    /* Workers finish the queued and handed-over requests first: they reference live
     * requests.  A worker stops only once it holds no job or ring wake-up, and a busy
     * one sees stopping when it next finds the queue empty. */
    for (guint i = 0; i < p->threads->len; i++) {
        BlockPoolWorker *w = g_ptr_array_index(p->threads, i);
        g_mutex_lock(&w->mutex);
        w->stop = true;
        g_mutex_unlock(&w->mutex);
        g_cond_signal(&w->cond);
    }
    for (guint i = 0; i < p->threads->len; i++) {
        BlockPoolWorker *w = g_ptr_array_index(p->threads, i);
        g_thread_join(w->thread);
        g_mutex_clear(&w->mutex);
        g_cond_clear(&w->cond);
        g_free(w);
    }
    g_ptr_array_free(p->threads, true);
    block_fd_watch_detach(&p->watch);
    /* Completions that never ran: their owners drained before closing, so none remain
     * in practice; free the jobs without calling back into freed owners. */
    for (BlockPoolJob *job = p->done_head, *next; job; job = next) {
        next = job->next;
        g_free(job);
    }
    if (p->efd >= 0) {
        close(p->efd);
    }
    g_mutex_clear(&p->lock);
    g_mutex_clear(&p->done_lock);
    g_free(p->ring);
    g_free(p->ring_hint);
    g_free(p);
}
