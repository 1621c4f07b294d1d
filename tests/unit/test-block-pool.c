/*
 * The block worker pool (block/block-pool.c): every request runs once on a worker and
 * completes once, later, in the context it was submitted for; free waits for queued work.
 * With may_inline, only a request submitted while none is in flight, and never two were,
 * runs on the caller.  Hand-overs to sleeping workers start in submission order, and the
 * ring that orders them neither loses nor repeats a request under preemption.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <glib.h>
#include "block/block-internal.h"

enum { N_REQS = 500 };

typedef struct PoolTest {
    GThread *loop_thread;        /* where completions must run */
    gint runs;                   /* atomic: run() calls */
    int completed;               /* completions (loop thread only) */
    int ran_in_loop_thread;      /* run() calls on the loop thread (must stay 0) */
    bool in_submit;              /* a completion inside submit would see this set */
    bool completed_in_submit;
    unsigned char done[N_REQS];
} PoolTest;

static int pool_run(void *opaque, BlockRequest *req)
{
    PoolTest *t = opaque;

    if (g_thread_self() == t->loop_thread) {
        t->ran_in_loop_thread++;
    }
    g_atomic_int_inc(&t->runs);
    if (req->offset % 7 == 0) {
        g_usleep(100); /* some slow requests so completions interleave */
    }
    return -(int)(req->offset % 3); /* 0, -1 or -2: the result must travel with req */
}

static void pool_complete(BlockRequest *req, int ret)
{
    PoolTest *t = req->opaque;

    g_assert_true(g_thread_self() == t->loop_thread);
    g_assert_cmpint(ret, ==, -(int)(req->offset % 3));
    if (t->in_submit) {
        t->completed_in_submit = true;
    }
    t->done[req->offset]++;
    t->completed++;
}

static void test_pool_completes_each_once(void)
{
    PoolTest t = { .loop_thread = g_thread_self() };
    BlockRequest *reqs = g_new0(BlockRequest, N_REQS);
    BlockPool *p = block_pool_new(4, pool_run, &t);

    for (int i = 0; i < N_REQS; i++) {
        reqs[i].type = BLOCK_REQ_READ;
        reqs[i].offset = i;
        reqs[i].complete = pool_complete;
        reqs[i].opaque = &t;
        t.in_submit = true;
        g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
        t.in_submit = false;
        if (i % 50 == 0) {
            g_main_context_iteration(NULL, false);
        }
    }
    while (t.completed < N_REQS) {
        g_main_context_iteration(NULL, true);
    }
    g_assert_false(t.completed_in_submit);
    g_assert_cmpint(t.ran_in_loop_thread, ==, 0);
    g_assert_cmpint(g_atomic_int_get(&t.runs), ==, N_REQS);
    for (int i = 0; i < N_REQS; i++) {
        g_assert_cmpint(t.done[i], ==, 1);
    }
    block_pool_free(p);
    g_free(reqs);
}

/* Completions follow the context given at submission (blk_set_context moves a backend). */
static gpointer other_loop(gpointer opaque)
{
    GMainContext *ctx = opaque;
    PoolTest t = { .loop_thread = g_thread_self() };
    BlockRequest req = { .type = BLOCK_REQ_READ, .offset = 4, .complete = pool_complete,
                         .opaque = &t };
    BlockPool *p = block_pool_new(2, pool_run, &t);

    g_main_context_push_thread_default(ctx);
    for (int round = 0; round < 3; round++) {
        t.completed = 0;
        t.done[4] = 0;
        g_assert_cmpint(block_pool_submit(p, ctx, &req, false), ==, 0);
        while (t.completed < 1) {
            g_main_context_iteration(ctx, true);
        }
    }
    g_main_context_pop_thread_default(ctx);
    block_pool_free(p);
    return GINT_TO_POINTER(t.completed);
}

static void test_pool_other_context(void)
{
    GMainContext *ctx = g_main_context_new();
    GThread *th = g_thread_new("pool-test-loop", other_loop, ctx);

    g_assert_cmpint(GPOINTER_TO_INT(g_thread_join(th)), ==, 1);
    g_main_context_unref(ctx);
}

/* Free with requests still queued: all of them run before it returns. */
static void test_pool_free_runs_queued(void)
{
    PoolTest t = { .loop_thread = g_thread_self() };
    BlockRequest *reqs = g_new0(BlockRequest, 64);
    BlockPool *p = block_pool_new(1, pool_run, &t);

    for (int i = 0; i < 64; i++) {
        reqs[i] = (BlockRequest){ .type = BLOCK_REQ_READ, .offset = i * 7,
                                  .complete = pool_complete, .opaque = &t };
        g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
    }
    block_pool_free(p);
    g_assert_cmpint(g_atomic_int_get(&t.runs), ==, 64);
    g_free(reqs);
}

/* Depth 1 with may_inline: each request runs on the submitter, completes from the loop. */
static void test_pool_inline_when_idle(void)
{
    PoolTest t = { .loop_thread = g_thread_self() };
    BlockRequest *reqs = g_new0(BlockRequest, 100);
    BlockPool *p = block_pool_new(4, pool_run, &t);

    for (int i = 0; i < 100; i++) {
        reqs[i] = (BlockRequest){ .type = BLOCK_REQ_WRITE, .offset = i,
                                  .complete = pool_complete, .opaque = &t };
        t.in_submit = true;
        g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], true), ==, 0);
        t.in_submit = false;
        g_assert_cmpint(t.completed, ==, i);
        while (t.completed == i) {
            g_main_context_iteration(NULL, true);
        }
    }
    g_assert_false(t.completed_in_submit);
    g_assert_cmpint(t.ran_in_loop_thread, ==, 100);
    for (int i = 0; i < 100; i++) {
        g_assert_cmpint(t.done[i], ==, 1);
    }
    block_pool_free(p);
    g_free(reqs);
}

/* A burst with may_inline: only the first (none in flight yet) runs on the submitter. */
static void test_pool_inline_only_first_of_burst(void)
{
    PoolTest t = { .loop_thread = g_thread_self() };
    BlockRequest *reqs = g_new0(BlockRequest, 100);
    BlockPool *p = block_pool_new(4, pool_run, &t);

    for (int i = 0; i < 100; i++) {
        reqs[i] = (BlockRequest){ .type = BLOCK_REQ_WRITE, .offset = i,
                                  .complete = pool_complete, .opaque = &t };
        g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], true), ==, 0);
    }
    while (t.completed < 100) {
        g_main_context_iteration(NULL, true);
    }
    g_assert_cmpint(t.ran_in_loop_thread, ==, 1);
    g_assert_cmpint(g_atomic_int_get(&t.runs), ==, 100);
    block_pool_free(p);
    g_free(reqs);
}

/*
 * Once two requests were in flight together (a depth > 1 submitter), none runs on the
 * submitter again, even one submitted when all before it have completed: it would hold
 * back the rest of its batch for a whole request.
 */
static void test_pool_no_inline_after_overlap(void)
{
    PoolTest t = { .loop_thread = g_thread_self() };
    BlockRequest *reqs = g_new0(BlockRequest, 40);
    BlockPool *p = block_pool_new(4, pool_run, &t);

    for (int batch = 0; batch < 4; batch++) {
        for (int i = batch * 10; i < batch * 10 + 10; i++) {
            reqs[i] = (BlockRequest){ .type = BLOCK_REQ_WRITE, .offset = i,
                                      .complete = pool_complete, .opaque = &t };
            g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], true), ==, 0);
        }
        while (t.completed < batch * 10 + 10) {
            g_main_context_iteration(NULL, true);
        }
    }
    /* The very first request, before anything overlapped; none of the later batches. */
    g_assert_cmpint(t.ran_in_loop_thread, ==, 1);
    g_assert_cmpint(g_atomic_int_get(&t.runs), ==, 40);
    block_pool_free(p);
    g_free(reqs);
}

/*
 * Requests handed to sleeping workers start in submission order, whichever woken worker
 * the scheduler runs first (a burst of sequential reads then reaches the disk in order, so
 * it merges as qemu-img's does).  Each burst goes to workers that are all asleep; a burst
 * counts as out of order when its requests did not start in the order submitted.  The
 * only way that can still happen is a worker that took the older request being overtaken
 * between the take and the run callback, a window of a few instructions (0-4 bursts in 200
 * measured on a busy 2-core host for 95290d7's ring).  Workers bound to the request that
 * woke them started in wake-up order: 140-199 bursts of 200 out of order.
 */
enum { ORDER_WORKERS = 8, ORDER_BURSTS = 200 };

typedef struct OrderTest {
    gint started;                /* atomic: start sequence */
    int order[ORDER_WORKERS];    /* burst index -> start sequence */
    int completed;
    GMutex gate;                 /* held by the test while the warm-up requests pile up */
} OrderTest;

static int order_run(void *opaque, BlockRequest *req)
{
    OrderTest *t = opaque;

    t->order[req->offset] = g_atomic_int_add(&t->started, 1);
    if (req->flags) {
        g_mutex_lock(&t->gate);  /* warm-up: keep each worker busy so all get created */
        g_mutex_unlock(&t->gate);
    }
    return 0;
}

static void order_complete(BlockRequest *req, int ret)
{
    OrderTest *t = req->opaque;

    t->completed++;
}

static void order_wait_all_idle(BlockPool *p)
{
    /* The workers go back to sleep after they queued the completion; wait for that. */
    for (int i = 0; i < 1000 && block_pool_idle_workers(p) < ORDER_WORKERS; i++) {
        g_usleep(1000);
    }
}

static void test_pool_handoff_in_order(void)
{
    OrderTest t = { 0 };
    BlockRequest reqs[ORDER_WORKERS];
    BlockPool *p = block_pool_new(ORDER_WORKERS, order_run, &t);
    int out_of_order = 0;

    g_mutex_init(&t.gate);
    g_mutex_lock(&t.gate);
    for (int i = 0; i < ORDER_WORKERS; i++) {
        reqs[i] = (BlockRequest){ .type = BLOCK_REQ_READ, .offset = i, .flags = 1,
                                  .complete = order_complete, .opaque = &t };
        g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
    }
    g_mutex_unlock(&t.gate);
    while (t.completed < ORDER_WORKERS) {
        g_main_context_iteration(NULL, true);
    }
    for (int burst = 0; burst < ORDER_BURSTS; burst++) {
        order_wait_all_idle(p);
        g_assert_cmpint(block_pool_idle_workers(p), ==, ORDER_WORKERS);
        t.completed = 0;
        g_atomic_int_set(&t.started, 0);
        for (int i = 0; i < ORDER_WORKERS; i++) {
            reqs[i].flags = 0;
            g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
        }
        while (t.completed < ORDER_WORKERS) {
            g_main_context_iteration(NULL, true);
        }
        for (int i = 0; i < ORDER_WORKERS; i++) {
            if (t.order[i] != i) {
                out_of_order++;
                break;
            }
        }
    }
    g_test_message("%d of %d bursts started out of order", out_of_order, ORDER_BURSTS);
    g_assert_cmpint(out_of_order, <=, ORDER_BURSTS / 5);
    block_pool_free(p);
    g_mutex_clear(&t.gate);
}

/*
 * The hand-over ring under forced preemption: 16 workers on a 16-slot ring (a pool's ring
 * has a slot per worker), and a take hook that yields or sleeps between a worker's ticket
 * and its slot, so the ring wraps many times while ticket holders are off the CPU and
 * slots are found still full.  Every request must run exactly once and complete exactly
 * once.  The ring as 95290d7 built it (a submitter overwrote a full slot) failed this in
 * 3 runs of 3, after 48-176 requests: some ran twice and as many never ran.  Waits poll
 * with a deadline so a lost request fails the test instead of hanging it.
 */
enum {
    STRESS_WORKERS = 16, STRESS_RING = 16, STRESS_REQS = 20000,
    STRESS_MAX_IN_FLIGHT = 12, STRESS_MAX_BURST = 8,
};

typedef struct StressTest {
    bool join;                   /* requests are adjacent 512-byte reads, joining on */
    gint runs[STRESS_REQS];      /* atomic: run() calls per request */
    unsigned char done[STRESS_REQS];
    int completed;
    gint takes;                  /* atomic: ring takes seen by the hook */
    gint joined_runs;            /* atomic: run() calls covering several requests */
} StressTest;

static void stress_take_hook(void *opaque)
{
    StressTest *t = opaque;
    int n = g_atomic_int_add(&t->takes, 1);

    if (n % 32 == 0) {
        g_usleep(50 + (n / 32) % 4 * 100); /* off the CPU for 50-350 us */
    } else if (n % 4 == 0) {
        sched_yield();
    }
}

static int stress_run(void *opaque, BlockRequest *req)
{
    StressTest *t = opaque;

    if (t->join) {
        /* A joined read covers several requests: each must be covered exactly once. */
        if (req->bytes > 512) {
            g_atomic_int_inc(&t->joined_runs);
        }
        for (int64_t i = req->offset / 512; i < (req->offset + req->bytes) / 512; i++) {
            g_atomic_int_inc(&t->runs[i]);
        }
        return 0;
    }
    g_atomic_int_inc(&t->runs[req->offset]);
    return -(int)(req->offset % 3);
}

static void stress_complete(BlockRequest *req, int ret)
{
    StressTest *t = req->opaque;

    int64_t i = t->join ? req->offset / 512 : req->offset;

    g_assert_cmpint(ret, ==, t->join ? 0 : -(int)(req->offset % 3));
    t->done[i]++;
    t->completed++;
}

/* Runs completions until at least target completed; false after 30 s without. */
static bool stress_wait(StressTest *t, int target)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    while (t->completed < target) {
        if (!g_main_context_iteration(NULL, false)) {
            if (g_get_monotonic_time() > deadline) {
                return false;
            }
            g_usleep(20);
        }
    }
    return true;
}

static void stress_report_lost(StressTest *t, int submitted)
{
    int never = 0, twice = 0;

    for (int i = 0; i < submitted; i++) {
        int runs = g_atomic_int_get(&t->runs[i]);
        never += runs == 0;
        twice += runs > 1;
    }
    g_error("%d of %d requests completed: %d never ran, %d ran more than once",
            t->completed, submitted, never, twice);
}

static void pool_ring_stress(bool join)
{
    StressTest *t = g_new0(StressTest, 1);
    BlockRequest *reqs = g_new0(BlockRequest, STRESS_REQS);
    BlockPool *p = block_pool_new_ring(STRESS_WORKERS, STRESS_RING, stress_run, t);
    GRand *rand = g_rand_new_with_seed(4);
    static char buf[512];
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    int submitted = 0;

    t->join = join;
    block_pool_set_join_reads(p, join);
    block_pool_set_take_hook(p, stress_take_hook, t);
    while (submitted < STRESS_REQS) {
        /* Bursts of 1-8 onto mostly sleeping workers: each request is a hand-over. */
        int burst = MIN(g_rand_int_range(rand, 1, STRESS_MAX_BURST + 1),
                        STRESS_REQS - submitted);
        if (!stress_wait(t, submitted + burst - STRESS_MAX_IN_FLIGHT)) {
            stress_report_lost(t, submitted);
        }
        for (int i = 0; i < burst; i++, submitted++) {
            reqs[submitted] = (BlockRequest){ .type = BLOCK_REQ_READ, .offset = submitted,
                                              .complete = stress_complete, .opaque = t };
            if (join) {
                /* Adjacent reads (the runs never touch the buffer). */
                reqs[submitted].offset = submitted * 512;
                reqs[submitted].bytes = 512;
                reqs[submitted].iov = &iov;
                reqs[submitted].niov = 1;
            }
            g_assert_cmpint(block_pool_submit(p, NULL, &reqs[submitted], false), ==, 0);
        }
    }
    if (!stress_wait(t, STRESS_REQS)) {
        stress_report_lost(t, submitted);
    }
    for (int i = 0; i < STRESS_REQS; i++) {
        g_assert_cmpint(g_atomic_int_get(&t->runs[i]), ==, 1);
        g_assert_cmpint(t->done[i], ==, 1);
    }
    /* Both ways of handing over were taken: through the ring, and past a full slot. */
    unsigned direct = block_pool_direct_handoffs(p);
    g_test_message("%d ring takes, %u direct hand-overs, %d joined runs",
                   g_atomic_int_get(&t->takes), direct, g_atomic_int_get(&t->joined_runs));
    if (join) {
        g_assert_cmpint(g_atomic_int_get(&t->joined_runs), >, 0);
    }
    g_assert_cmpint(g_atomic_int_get(&t->takes), >=, STRESS_REQS / 100);
    g_assert_cmpuint(direct, >, 0);
    block_pool_free(p);
    g_rand_free(rand);
    g_free(reqs);
    g_free(t);
}

static void test_pool_ring_stress(void)
{
    pool_ring_stress(false);
}

/* The same with joining: joiners empty later slots, so takers may find theirs empty. */
static void test_pool_ring_stress_join(void)
{
    pool_ring_stress(true);
}

/*
 * Freeing the pool while a burst is still in the ring: block_pool_free must let every
 * woken worker take its ticket and run what it finds (or joined), and no worker may stop
 * holding a ring wake-up.  All workers sleep before each burst, so each request is a
 * ring fill (or a direct hand-over past a full slot); the take hook keeps ticket holders
 * off the CPU while free runs.  ring-stress waits for every completion before it frees,
 * so it never has wake-ups in flight at teardown.
 */
enum { TEARDOWN_WORKERS = 8, TEARDOWN_ROUNDS = 100 };

typedef struct TeardownTest {
    gint runs[TEARDOWN_WORKERS];  /* atomic: run() coverage per request */
    gint takes;                   /* atomic */
    int completed;
    GMutex gate;                  /* held while the warm-up requests create the workers */
} TeardownTest;

static void teardown_take_hook(void *opaque)
{
    TeardownTest *t = opaque;

    if (g_atomic_int_add(&t->takes, 1) % 3 == 0) {
        g_usleep(200);
    } else {
        sched_yield();
    }
}

static int teardown_run(void *opaque, BlockRequest *req)
{
    TeardownTest *t = opaque;

    if (req->flags) {
        g_mutex_lock(&t->gate);
        g_mutex_unlock(&t->gate);
        return 0;
    }
    for (int64_t i = req->offset / 512; i < (req->offset + req->bytes) / 512; i++) {
        g_atomic_int_inc(&t->runs[i]);
    }
    return 0;
}

static void teardown_complete(BlockRequest *req, int ret)
{
    TeardownTest *t = req->opaque;

    t->completed++;
}

static void test_pool_free_with_ring_in_flight(void)
{
    static char buf[512];
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    BlockRequest reqs[TEARDOWN_WORKERS];
    int takes = 0;

    for (int round = 0; round < TEARDOWN_ROUNDS; round++) {
        TeardownTest t = { 0 };
        BlockPool *p = block_pool_new(TEARDOWN_WORKERS, teardown_run, &t);

        block_pool_set_join_reads(p, round % 2);
        block_pool_set_take_hook(p, teardown_take_hook, &t);
        g_mutex_init(&t.gate);
        g_mutex_lock(&t.gate);
        for (int i = 0; i < TEARDOWN_WORKERS; i++) {
            /* Warm-up (flags set): each blocks a worker, so all get created. */
            reqs[i] = (BlockRequest){ .type = BLOCK_REQ_READ, .flags = 1,
                                      .complete = teardown_complete, .opaque = &t };
            g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
        }
        g_mutex_unlock(&t.gate);
        while (t.completed < TEARDOWN_WORKERS) {
            g_main_context_iteration(NULL, true);
        }
        for (int i = 0; i < 1000 && block_pool_idle_workers(p) < TEARDOWN_WORKERS; i++) {
            g_usleep(1000);
        }
        g_assert_cmpint(block_pool_idle_workers(p), ==, TEARDOWN_WORKERS);
        for (int i = 0; i < TEARDOWN_WORKERS; i++) {
            reqs[i] = (BlockRequest){ .type = BLOCK_REQ_READ, .offset = i * 512,
                                      .bytes = 512, .iov = &iov, .niov = 1,
                                      .complete = teardown_complete, .opaque = &t };
            g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
        }
        block_pool_free(p);
        for (int i = 0; i < TEARDOWN_WORKERS; i++) {
            g_assert_cmpint(g_atomic_int_get(&t.runs[i]), ==, 1);
        }
        takes += g_atomic_int_get(&t.takes);
        g_mutex_clear(&t.gate);
    }
    /* Most bursts went through the ring, not past full slots. */
    g_test_message("%d ring takes for %d requests", takes,
                   TEARDOWN_ROUNDS * TEARDOWN_WORKERS);
    g_assert_cmpint(takes, >, TEARDOWN_ROUNDS * TEARDOWN_WORKERS / 2);
}

/*
 * Joined reads: bursts of reads to sleeping workers, run by a "disk" whose byte at offset
 * o reads as (o * 7 + o / 4096) & 0xff.  Every request must get exactly its own bytes and
 * its own result however the pool joined it; a run call may only cover contiguous reads
 * of at most 256 KiB, and only reads.  Writes and reads with gaps are never joined.
 */
enum { JOIN_REQS = 8, JOIN_BURSTS = 100 };

typedef struct JoinTest {
    int completed;
    gint calls, joined_calls, bad_calls;   /* atomic */
    int64_t bad_offset;                    /* a run covering this byte fails with -EIO */
    unsigned align;                        /* >1: the pool's join alignment; a joined
                                            * run must keep every piece aligned */
    int misplaced;                         /* this request's buffer is off by 512, or -1 */
    int rets[JOIN_REQS];
} JoinTest;

static uint8_t disk_byte(int64_t o)
{
    return (o * 7 + o / 4096) & 0xff;
}

static int join_run(void *opaque, BlockRequest *req)
{
    JoinTest *t = opaque;
    int64_t off = req->offset;

    g_atomic_int_inc(&t->calls);
    if (iov_size(req->iov, req->niov) != (size_t)req->bytes || req->bytes > 256 * 1024 ||
        (req->niov > 1 && req->type != BLOCK_REQ_READ)) {
        g_atomic_int_inc(&t->bad_calls);
    }
    if (req->niov > 1) {
        g_atomic_int_inc(&t->joined_calls);
        for (int i = 0; t->align > 1 && i < req->niov; i++) {
            if (((uintptr_t)req->iov[i].iov_base | req->iov[i].iov_len |
                 (uint64_t)req->offset) & (t->align - 1)) {
                g_atomic_int_inc(&t->bad_calls);
            }
        }
    }
    if (t->bad_offset >= req->offset && t->bad_offset < req->offset + req->bytes) {
        return -EIO;
    }
    if (req->type == BLOCK_REQ_READ) {
        for (int i = 0; i < req->niov; i++) {
            uint8_t *b = req->iov[i].iov_base;
            for (size_t j = 0; j < req->iov[i].iov_len; j++) {
                b[j] = disk_byte(off++);
            }
        }
    }
    return 0;
}

static void join_complete(BlockRequest *req, int ret)
{
    JoinTest *t = req->opaque;

    t->rets[(intptr_t)req->driver_priv] = ret;
    t->completed++;
}

/* sizes[i] bytes each, request i at offsets[i]; checks data and results of every burst. */
static void join_bursts(JoinTest *t, BlockRequestType type, const int64_t *offsets,
                        const size_t *sizes, bool join)
{
    BlockPool *p = block_pool_new(JOIN_REQS, join_run, t);
    BlockRequest reqs[JOIN_REQS];
    struct iovec iov[JOIN_REQS];
    void *bufs[JOIN_REQS];

    for (int i = 0; i < JOIN_REQS; i++) {
        /* 4096-aligned (the largest join alignment tested) unless this one is misplaced. */
        bufs[i] = g_aligned_alloc(1, sizes[i] + 512, 4096);
        iov[i] = (struct iovec){ .iov_base = (uint8_t *)bufs[i] + (i == t->misplaced ? 512 : 0),
                                 .iov_len = sizes[i] };
        reqs[i] = (BlockRequest){ .type = type, .offset = offsets[i], .bytes = sizes[i],
                                  .iov = &iov[i], .niov = 1, .complete = join_complete,
                                  .opaque = t, .driver_priv = (void *)(intptr_t)i };
    }
    block_pool_set_join_reads(p, join);
    if (t->align > 1) {
        block_pool_set_join_align(p, t->align);
    }
    for (int burst = 0; burst < JOIN_BURSTS; burst++) {
        /* Every worker back asleep, so the burst is handed over.  Not a fixed count: a
         * pool starts a worker only when none sleeps, so it may never have all 8. */
        for (int i = 0; i < 1000 && block_pool_idle_workers(p) < block_pool_workers(p);
             i++) {
            g_usleep(1000);
        }
        t->completed = 0;
        for (int i = 0; i < JOIN_REQS; i++) {
            memset(iov[i].iov_base, 0xee, sizes[i]);
            g_assert_cmpint(block_pool_submit(p, NULL, &reqs[i], false), ==, 0);
        }
        while (t->completed < JOIN_REQS) {
            g_main_context_iteration(NULL, true);
        }
        for (int i = 0; i < JOIN_REQS; i++) {
            bool bad = t->bad_offset >= offsets[i] &&
                       t->bad_offset < offsets[i] + (int64_t)sizes[i];
            g_assert_cmpint(t->rets[i], ==, bad ? -EIO : 0);
            const uint8_t *b = iov[i].iov_base;
            for (size_t j = 0; !bad && type == BLOCK_REQ_READ && j < sizes[i]; j++) {
                g_assert_cmpint(b[j], ==, disk_byte(offsets[i] + j));
            }
        }
    }
    block_pool_free(p);
    for (int i = 0; i < JOIN_REQS; i++) {
        g_aligned_free(bufs[i]);
    }
    g_assert_cmpint(g_atomic_int_get(&t->bad_calls), ==, 0);
}

/* Adjacent reads of mixed sizes: each gets its own bytes; some bursts are joined. */
static void test_pool_join_adjacent(void)
{
    static const size_t sizes[JOIN_REQS] = { 65536, 4096, 512, 65536, 8192, 65536, 65536,
                                             65536 };
    int64_t offsets[JOIN_REQS], o = 1 << 20;
    JoinTest t = { .bad_offset = -1, .misplaced = -1 };

    for (int i = 0; i < JOIN_REQS; i++) {
        offsets[i] = o;
        o += sizes[i];
    }
    join_bursts(&t, BLOCK_REQ_READ, offsets, sizes, true);
    /* Ten runs on a busy 2-core host joined in every one; a pool that never joins
     * makes exactly one call per request. */
    g_test_message("%d calls for %d reads, %d of them joined", g_atomic_int_get(&t.calls),
                   JOIN_REQS * JOIN_BURSTS, g_atomic_int_get(&t.joined_calls));
    g_assert_cmpint(g_atomic_int_get(&t.joined_calls), >, 0);
    g_assert_cmpint(g_atomic_int_get(&t.calls), <, JOIN_REQS * JOIN_BURSTS);
}

/* A pool not told to join (a node through the page cache) never joins. */
static void test_pool_join_off(void)
{
    size_t sizes[JOIN_REQS];
    int64_t offsets[JOIN_REQS];
    JoinTest t = { .bad_offset = -1, .misplaced = -1 };

    for (int i = 0; i < JOIN_REQS; i++) {
        sizes[i] = 65536;
        offsets[i] = i * 65536;
    }
    join_bursts(&t, BLOCK_REQ_READ, offsets, sizes, false);
    g_assert_cmpint(g_atomic_int_get(&t.joined_calls), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&t.calls), ==, JOIN_REQS * JOIN_BURSTS);
}

/* Reads with a gap between each: never joined, one call each. */
static void test_pool_join_not_across_gaps(void)
{
    size_t sizes[JOIN_REQS];
    int64_t offsets[JOIN_REQS];
    JoinTest t = { .bad_offset = -1, .misplaced = -1 };

    for (int i = 0; i < JOIN_REQS; i++) {
        sizes[i] = 4096;
        offsets[i] = i * 8192;
    }
    join_bursts(&t, BLOCK_REQ_READ, offsets, sizes, true);
    g_assert_cmpint(g_atomic_int_get(&t.joined_calls), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&t.calls), ==, JOIN_REQS * JOIN_BURSTS);
}

/* Adjacent writes are not joined. */
static void test_pool_join_not_writes(void)
{
    size_t sizes[JOIN_REQS];
    int64_t offsets[JOIN_REQS];
    JoinTest t = { .bad_offset = -1, .misplaced = -1 };

    for (int i = 0; i < JOIN_REQS; i++) {
        sizes[i] = 4096;
        offsets[i] = i * 4096;
    }
    join_bursts(&t, BLOCK_REQ_WRITE, offsets, sizes, true);
    g_assert_cmpint(g_atomic_int_get(&t.joined_calls), ==, 0);
    g_assert_cmpint(g_atomic_int_get(&t.calls), ==, JOIN_REQS * JOIN_BURSTS);
}

/* A joined read that fails: only the request holding the bad byte gets the error, the
 * others their data. */
static void test_pool_join_error_split(void)
{
    size_t sizes[JOIN_REQS];
    int64_t offsets[JOIN_REQS];
    JoinTest t = { .bad_offset = 3 * 65536 + 100, .misplaced = -1 };

    for (int i = 0; i < JOIN_REQS; i++) {
        sizes[i] = 65536;
        offsets[i] = i * 65536;
    }
    join_bursts(&t, BLOCK_REQ_READ, offsets, sizes, true);
    g_assert_cmpint(g_atomic_int_get(&t.joined_calls), >, 0);
}

/*
 * O_DIRECT alignment 4096: a request whose buffer (request 2) or length (request 5, 512
 * bytes, which also leaves request 6 at an unaligned offset) is not aligned is never part
 * of a joined read, which the driver would otherwise bounce whole; the aligned neighbours
 * still join.
 */
static void test_pool_join_keeps_alignment(void)
{
    static const size_t sizes[JOIN_REQS] = { 65536, 65536, 65536, 65536, 65536, 512, 65536,
                                             65536 };
    int64_t offsets[JOIN_REQS], o = 1 << 20;
    JoinTest t = { .bad_offset = -1, .align = 4096, .misplaced = 2 };

    for (int i = 0; i < JOIN_REQS; i++) {
        offsets[i] = o;
        o += sizes[i];
    }
    join_bursts(&t, BLOCK_REQ_READ, offsets, sizes, true);
    g_test_message("%d calls for %d reads, %d of them joined", g_atomic_int_get(&t.calls),
                   JOIN_REQS * JOIN_BURSTS, g_atomic_int_get(&t.joined_calls));
    /* Requests 0-1 and 3-4 may still join: the pool joins in most bursts. */
    g_assert_cmpint(g_atomic_int_get(&t.joined_calls), >, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/block-pool/completes-each-once", test_pool_completes_each_once);
    g_test_add_func("/block-pool/other-context", test_pool_other_context);
    g_test_add_func("/block-pool/free-runs-queued", test_pool_free_runs_queued);
    g_test_add_func("/block-pool/inline-when-idle", test_pool_inline_when_idle);
    g_test_add_func("/block-pool/inline-only-first-of-burst",
                    test_pool_inline_only_first_of_burst);
    g_test_add_func("/block-pool/no-inline-after-overlap", test_pool_no_inline_after_overlap);
    g_test_add_func("/block-pool/handoff-in-order", test_pool_handoff_in_order);
    g_test_add_func("/block-pool/ring-stress", test_pool_ring_stress);
    g_test_add_func("/block-pool/ring-stress-join", test_pool_ring_stress_join);
    g_test_add_func("/block-pool/free-with-ring-in-flight",
                    test_pool_free_with_ring_in_flight);
    g_test_add_func("/block-pool/join-adjacent", test_pool_join_adjacent);
    g_test_add_func("/block-pool/join-not-across-gaps", test_pool_join_not_across_gaps);
    g_test_add_func("/block-pool/join-not-writes", test_pool_join_not_writes);
    g_test_add_func("/block-pool/join-error-split", test_pool_join_error_split);
    g_test_add_func("/block-pool/join-off", test_pool_join_off);
    g_test_add_func("/block-pool/join-keeps-alignment", test_pool_join_keeps_alignment);
    return g_test_run();
}
