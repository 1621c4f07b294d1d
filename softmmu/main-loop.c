/*
 * The virtual clock's timers as a GSource on the main loop.  Under a manual clock (qtest)
 * the source never fires by itself: only the test moves time.
 */
#include "softmmu/main-loop.h"

typedef struct TimerSource {
    GSource source;
    Machine *m;
} TimerSource;

/* Milliseconds until the next deadline, 0 when due, -1 when nothing is pending. */
static gint timeout_ms(Machine *m)
{
    if (virt_clock_is_manual(m->clock)) {
        return -1;
    }
    machine_lock(m);
    int64_t deadline = virt_clock_deadline(m->clock);
    int64_t now = virt_clock_get_ns(m->clock);
    machine_unlock(m);
    if (deadline < 0) {
        return -1;
    }
    if (deadline <= now) {
        return 0;
    }
    int64_t ms = (deadline - now + 999999) / 1000000;
    return ms > G_MAXINT ? G_MAXINT : (gint)ms;
}

static gboolean timer_prepare(GSource *source, gint *timeout)
{
    *timeout = timeout_ms(((TimerSource *)source)->m);
    return *timeout == 0;
}

static gboolean timer_check(GSource *source)
{
    return timeout_ms(((TimerSource *)source)->m) == 0;
}

static gboolean timer_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    Machine *m = ((TimerSource *)source)->m;
    machine_lock(m);
    virt_clock_run_timers(m->clock);
    machine_unlock(m);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_funcs = {
    .prepare = timer_prepare,
    .check = timer_check,
    .dispatch = timer_dispatch,
};

GSource *main_loop_timer_source_new(Machine *m)
{
    GSource *source = g_source_new(&timer_funcs, sizeof(TimerSource));
    ((TimerSource *)source)->m = m;
    g_source_set_name(source, "sen-timers");
    return source;
}
