/*
 * The block worker pool (block/block-pool.c): every request runs once on a worker and
 * completes once, later, in the context it was submitted for; free waits for queued work.
 * With may_inline, only a request submitted while none is in flight, and never two were,
 * runs on the caller.
 */
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
    return g_test_run();
}
