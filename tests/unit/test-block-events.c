/*
 * The block event sink (block/block-events.c): a report made from inside the sink is
 * delivered after the one in progress, in order, without deadlock; a sink may remove
 * itself; removing the sink waits for a call in progress on another thread, and the old
 * sink is never called after that.
 */
#include <glib.h>

#include "sen/block.h"

typedef struct Log {
    GString *s;
    int reenter; /* reports the sink still makes from inside itself */
} Log;

static void report(const char *node, bool fatal)
{
    BlockCorruption c = { .node_name = node, .msg = "test", .offset = -1, .size = -1,
                          .fatal = fatal };
    bdrv_report_corruption(&c);
}

/* Logs "<node" on entry and ">" on return; the first calls report "n<k>" from inside,
 * a fatal one also the failing request's I/O error (as the monitor's emit might). */
static void reentering_sink(void *opaque, const BlockCorruption *c)
{
    Log *log = opaque;

    g_string_append_printf(log->s, "<%s%s", c->node_name, c->fatal ? "!" : "");
    if (c->fatal) {
        BlockIoError e = { .device = "d", .node_name = c->node_name, .is_read = true,
                           .action = BLOCK_ERROR_ACTION_REPORT, .error = 5 };
        bdrv_report_io_error(&e);
    }
    if (log->reenter > 0) {
        g_autofree char *node = g_strdup_printf("n%d", log->reenter--);
        report(node, false);
    }
    g_string_append(log->s, ">");
}

static void logging_io_error(void *opaque, const BlockIoError *e)
{
    Log *log = opaque;

    g_string_append_printf(log->s, "<io %s>", e->node_name);
}

static const BlockEventSink reentering = {
    .corruption = reentering_sink,
    .io_error = logging_io_error,
};

static void test_reenter(void)
{
    /* In a child: the old sink deadlocked here (its mutex taken twice). */
    if (g_test_subprocess()) {
        Log log = { .s = g_string_new(NULL), .reenter = 2 };
        bdrv_set_event_sink(&reentering, &log);
        report("a", true);
        /* Each nested report comes after the one in progress returned, in order, and
         * before the outer report returned. */
        g_assert_cmpstr(log.s->str, ==, "<a!><io a><n2><n1>");
        report("b", false);
        g_assert_cmpstr(log.s->str, ==, "<a!><io a><n2><n1><b>");
        bdrv_set_event_sink(NULL, NULL);
        g_string_free(log.s, TRUE);
        return;
    }
    g_test_trap_subprocess(NULL, 10 * G_USEC_PER_SEC, 0);
    g_test_trap_assert_passed();
}

static int detach_calls;

static void detaching_sink(void *opaque, const BlockCorruption *c)
{
    detach_calls++;
    bdrv_set_event_sink(NULL, NULL);
    report("inner", false); /* no sink any more: dropped */
}

static const BlockEventSink detaching = { .corruption = detaching_sink };

static void test_detach_from_sink(void)
{
    if (g_test_subprocess()) {
        bdrv_set_event_sink(&detaching, NULL);
        report("a", true);
        report("b", true);
        g_assert_cmpint(detach_calls, ==, 1);
        return;
    }
    g_test_trap_subprocess(NULL, 10 * G_USEC_PER_SEC, 0);
    g_test_trap_assert_passed();
}

/* A sink held inside its call until the gate opens. */
static struct {
    GMutex lock;
    GCond cond;
    bool entered, open, returned;
    int calls;
} gate;

static void gated_sink(void *opaque, const BlockCorruption *c)
{
    g_mutex_lock(&gate.lock);
    gate.calls++;
    gate.entered = true;
    g_cond_broadcast(&gate.cond);
    while (!gate.open) {
        g_cond_wait(&gate.cond, &gate.lock);
    }
    g_mutex_unlock(&gate.lock);
    g_usleep(20 * 1000); /* still inside after the gate opened */
    g_mutex_lock(&gate.lock);
    gate.returned = true;
    g_mutex_unlock(&gate.lock);
}

static const BlockEventSink gated = { .corruption = gated_sink };

static gpointer reporter(gpointer unused)
{
    report("worker", false);
    return NULL;
}

static gpointer detacher(gpointer unused)
{
    bdrv_set_event_sink(NULL, NULL);
    g_mutex_lock(&gate.lock);
    bool returned = gate.returned;
    g_mutex_unlock(&gate.lock);
    return GINT_TO_POINTER(returned);
}

static void test_detach_waits(void)
{
    bdrv_set_event_sink(&gated, NULL);
    GThread *r = g_thread_new("reporter", reporter, NULL);
    g_mutex_lock(&gate.lock);
    while (!gate.entered) {
        g_cond_wait(&gate.cond, &gate.lock);
    }
    g_mutex_unlock(&gate.lock);
    /* The sink is inside its call on the reporter thread: detach must wait for it. */
    GThread *d = g_thread_new("detacher", detacher, NULL);
    g_usleep(100 * 1000);
    g_mutex_lock(&gate.lock);
    gate.open = true;
    g_cond_broadcast(&gate.cond);
    g_mutex_unlock(&gate.lock);
    g_assert_true(GPOINTER_TO_INT(g_thread_join(d)));
    g_thread_join(r);
    /* ... and after it returned the old sink is not called again. */
    report("late", false);
    g_assert_cmpint(gate.calls, ==, 1);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/block-events/reenter", test_reenter);
    g_test_add_func("/block-events/detach-from-sink", test_detach_from_sink);
    g_test_add_func("/block-events/detach-waits", test_detach_waits);
    return g_test_run();
}
