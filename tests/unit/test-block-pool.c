/*
 * The block worker pool (block/block-pool.c): every request runs once on a worker and
 * completes once, later, in the context it was submitted for; free waits for queued work.
 * With may_inline, only a request submitted while none is in flight, and never two were,
 * runs on the caller.  Hand-overs to sleeping workers start in submission order, and the
 * ring that orders them neither loses nor repeats a request under preemption.
 */
#include <sched.h>
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
    gint runs[STRESS_REQS];      /* atomic: run() calls per request */
    unsigned char done[STRESS_REQS];
    int completed;
    gint takes;                  /* atomic: ring takes seen by the hook */
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

    g_atomic_int_inc(&t->runs[req->offset]);
    return -(int)(req->offset % 3);
}

static void stress_complete(BlockRequest *req, int ret)
{
    StressTest *t = req->opaque;

    g_assert_cmpint(ret, ==, -(int)(req->offset % 3));
    t->done[req->offset]++;
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

static void test_pool_ring_stress(void)
{
    StressTest *t = g_new0(StressTest, 1);
    BlockRequest *reqs = g_new0(BlockRequest, STRESS_REQS);
    BlockPool *p = block_pool_new_ring(STRESS_WORKERS, STRESS_RING, stress_run, t);
    GRand *rand = g_rand_new_with_seed(4);
    int submitted = 0;

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
    g_test_message("%d ring takes, %u direct hand-overs", g_atomic_int_get(&t->takes), direct);
    g_assert_cmpint(g_atomic_int_get(&t->takes), >=, STRESS_REQS / 100);
    g_assert_cmpuint(direct, >, 0);
    block_pool_free(p);
    g_rand_free(rand);
    g_free(reqs);
    g_free(t);
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
    return g_test_run();
}
