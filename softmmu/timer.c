/*
 * Virtual clock and timers: see include/sen/timer.h.
 *
 * Pending timers sit in a list sorted by deadline; there are few (RTC, later virtio
 * coalescing, migration), so insertion is linear.  The clock's own fields are only touched
 * with the VM lock held, as timer_mod/timer_del are.
 */
#include "sen/timer.h"
#include <glib.h>

struct Timer {
    VirtClock *clk;
    TimerCb *cb;
    void *opaque;
    int64_t expire; /* -1 = not pending */
};

struct VirtClock {
    bool manual;
    int64_t now_manual;     /* manual clock: current time */
    int64_t offset;         /* realtime clock: virtual = monotonic - offset */
    int64_t stopped_at;     /* realtime clock: -1 while running */
    GList *pending;         /* of Timer*, sorted by expire */
    void (*notify)(void *opaque);
    void *notify_opaque;
};

static int64_t monotonic_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

VirtClock *virt_clock_new(bool manual)
{
    VirtClock *clk = g_new0(VirtClock, 1);
    clk->manual = manual;
    clk->offset = monotonic_ns();
    clk->stopped_at = -1;
    return clk;
}

void virt_clock_free(VirtClock *clk)
{
    if (clk) {
        /* Timers belong to their devices; just forget them. */
        for (GList *l = clk->pending; l; l = l->next) {
            ((Timer *)l->data)->expire = -1;
        }
        g_list_free(clk->pending);
        g_free(clk);
    }
}

bool virt_clock_is_manual(const VirtClock *clk)
{
    return clk->manual;
}

int64_t virt_clock_get_ns(VirtClock *clk)
{
    if (clk->manual) {
        return clk->now_manual;
    }
    int64_t t = clk->stopped_at >= 0 ? clk->stopped_at : monotonic_ns();
    return t - clk->offset;
}

void virt_clock_stop(VirtClock *clk)
{
    if (!clk->manual && clk->stopped_at < 0) {
        clk->stopped_at = monotonic_ns();
    }
}

void virt_clock_start(VirtClock *clk)
{
    if (!clk->manual && clk->stopped_at >= 0) {
        clk->offset += monotonic_ns() - clk->stopped_at;
        clk->stopped_at = -1;
        if (clk->pending && clk->notify) {
            clk->notify(clk->notify_opaque); /* deadlines count again */
        }
    }
}

void virt_clock_set_notify(VirtClock *clk, void (*notify)(void *opaque), void *opaque)
{
    clk->notify = notify;
    clk->notify_opaque = opaque;
}

int64_t virt_clock_deadline(VirtClock *clk)
{
    /* A stopped clock runs no timer, however due: reporting its deadline would have the
     * main loop wake for it (at once, for one due now) and find nothing to do, forever
     * while the VM stays paused.  virt_clock_start wakes the loop to look again. */
    if (!clk->manual && clk->stopped_at >= 0) {
        return -1;
    }
    return clk->pending ? ((Timer *)clk->pending->data)->expire : -1;
}

/* Runs timers due at or before limit; the manual clock reads each deadline as it runs. */
static void run_until(VirtClock *clk, int64_t limit)
{
    while (clk->pending) {
        Timer *t = clk->pending->data;
        if (t->expire > limit) {
            break;
        }
        clk->pending = g_list_delete_link(clk->pending, clk->pending);
        if (clk->manual && t->expire > clk->now_manual) {
            clk->now_manual = t->expire;
        }
        t->expire = -1;
        t->cb(t->opaque); /* may re-arm itself */
    }
}

void virt_clock_run_timers(VirtClock *clk)
{
    if (clk->manual) {
        run_until(clk, clk->now_manual);
    } else if (clk->stopped_at < 0) {
        run_until(clk, virt_clock_get_ns(clk));
    }
}

void virt_clock_step(VirtClock *clk, int64_t ns)
{
    g_return_if_fail(clk->manual);
    virt_clock_set(clk, clk->now_manual + (ns > 0 ? ns : 0));
}

void virt_clock_set(VirtClock *clk, int64_t ns)
{
    g_return_if_fail(clk->manual);
    if (ns < clk->now_manual) {
        return; /* time never goes backwards */
    }
    run_until(clk, ns);
    clk->now_manual = ns;
}

void virt_clock_load(VirtClock *clk, int64_t ns)
{
    if (clk->manual) {
        clk->now_manual = ns;
        return;
    }
    int64_t t = clk->stopped_at >= 0 ? clk->stopped_at : monotonic_ns();
    clk->offset = t - ns;
}

Timer *timer_new(VirtClock *clk, TimerCb *cb, void *opaque)
{
    Timer *t = g_new0(Timer, 1);
    t->clk = clk;
    t->cb = cb;
    t->opaque = opaque;
    t->expire = -1;
    return t;
}

void timer_free(Timer *t)
{
    if (t) {
        timer_del(t);
        g_free(t);
    }
}

static gint compare_expire(gconstpointer a, gconstpointer b)
{
    int64_t ea = ((const Timer *)a)->expire, eb = ((const Timer *)b)->expire;
    return ea < eb ? -1 : ea > eb;
}

void timer_mod(Timer *t, int64_t expire_ns)
{
    VirtClock *clk = t->clk;
    timer_del(t);
    t->expire = expire_ns < 0 ? 0 : expire_ns;
    clk->pending = g_list_insert_sorted(clk->pending, t, compare_expire);
    if (clk->pending->data == t && clk->notify) {
        clk->notify(clk->notify_opaque);
    }
}

void timer_del(Timer *t)
{
    if (t->expire >= 0) {
        t->clk->pending = g_list_remove(t->clk->pending, t);
        t->expire = -1;
    }
}

bool timer_pending(const Timer *t)
{
    return t->expire >= 0;
}

int64_t timer_expire_time(const Timer *t)
{
    return t->expire;
}
