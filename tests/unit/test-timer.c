/* Virtual clock and timers (softmmu/timer.c). */
#include <glib.h>
#include "sen/timer.h"

typedef struct Fired {
    VirtClock *clk;
    Timer *t;
    GArray *at;      /* clock readings at each callback */
    int64_t period;  /* > 0: re-arm */
    int remaining;
} Fired;

static void on_fire(void *opaque)
{
    Fired *f = opaque;
    int64_t now = virt_clock_get_ns(f->clk);
    g_array_append_val(f->at, now);
    if (f->period > 0 && --f->remaining > 0) {
        timer_mod(f->t, now + f->period);
    }
}

static void test_manual_order_and_time(void)
{
    VirtClock *clk = virt_clock_new(true);
    Fired a = { clk, NULL, g_array_new(FALSE, FALSE, sizeof(int64_t)), 0, 0 };
    Fired b = { clk, NULL, g_array_new(FALSE, FALSE, sizeof(int64_t)), 0, 0 };
    a.t = timer_new(clk, on_fire, &a);
    b.t = timer_new(clk, on_fire, &b);

    timer_mod(a.t, 300);
    timer_mod(b.t, 100);
    g_assert_cmpint(virt_clock_deadline(clk), ==, 100);
    virt_clock_step(clk, 99);
    g_assert_cmpuint(b.at->len, ==, 0);
    virt_clock_step(clk, 1000);
    g_assert_cmpint(virt_clock_get_ns(clk), ==, 1099);
    g_assert_cmpuint(a.at->len, ==, 1);
    g_assert_cmpuint(b.at->len, ==, 1);
    /* Each callback sees the clock at its own deadline. */
    g_assert_cmpint(g_array_index(b.at, int64_t, 0), ==, 100);
    g_assert_cmpint(g_array_index(a.at, int64_t, 0), ==, 300);
    g_assert_false(timer_pending(a.t));
    g_assert_cmpint(virt_clock_deadline(clk), ==, -1);

    timer_free(a.t);
    timer_free(b.t);
    g_array_free(a.at, TRUE);
    g_array_free(b.at, TRUE);
    virt_clock_free(clk);
}

static void test_periodic_rearm_and_del(void)
{
    VirtClock *clk = virt_clock_new(true);
    Fired p = { clk, NULL, g_array_new(FALSE, FALSE, sizeof(int64_t)), 10, 5 };
    p.t = timer_new(clk, on_fire, &p);
    timer_mod(p.t, 10);
    virt_clock_step(clk, 1000);
    g_assert_cmpuint(p.at->len, ==, 5);
    g_assert_cmpint(g_array_index(p.at, int64_t, 4), ==, 50);

    timer_mod(p.t, 2000);
    timer_del(p.t);
    virt_clock_step(clk, 5000);
    g_assert_cmpuint(p.at->len, ==, 5);
    timer_free(p.t);
    g_array_free(p.at, TRUE);
    virt_clock_free(clk);
}

static void test_realtime_stops_while_paused(void)
{
    VirtClock *clk = virt_clock_new(false);
    virt_clock_stop(clk);
    int64_t t0 = virt_clock_get_ns(clk);
    g_usleep(200000);
    g_assert_cmpint(virt_clock_get_ns(clk), ==, t0);
    virt_clock_start(clk);
    g_usleep(5000);
    int64_t t1 = virt_clock_get_ns(clk);
    g_assert_cmpint(t1, >, t0);
    /* The 200 ms spent stopped are not counted. */
    g_assert_cmpint(t1 - t0, <, 150000000);
    virt_clock_free(clk);
}

static void count_notify(void *opaque)
{
    (*(int *)opaque)++;
}

/* A paused VM runs no timer: a due one neither fires nor reports a deadline (the main
 * loop would spin on it), and starting the clock wakes the loop and runs it. */
static void test_realtime_due_timer_waits_while_paused(void)
{
    VirtClock *clk = virt_clock_new(false);
    Fired f = { clk, NULL, g_array_new(FALSE, FALSE, sizeof(int64_t)), 0, 0 };
    int notified = 0;

    f.t = timer_new(clk, on_fire, &f);
    virt_clock_set_notify(clk, count_notify, &notified);
    virt_clock_stop(clk);
    timer_mod(f.t, virt_clock_get_ns(clk));
    g_assert_cmpint(virt_clock_deadline(clk), ==, -1);
    virt_clock_run_timers(clk);
    g_assert_cmpuint(f.at->len, ==, 0);
    g_assert_true(timer_pending(f.t));
    notified = 0;
    virt_clock_start(clk);
    g_assert_cmpint(notified, ==, 1);
    g_assert_cmpint(virt_clock_deadline(clk), ==, timer_expire_time(f.t));
    virt_clock_run_timers(clk);
    g_assert_cmpuint(f.at->len, ==, 1);
    /* Starting with nothing pending has nothing to announce. */
    virt_clock_stop(clk);
    notified = 0;
    virt_clock_start(clk);
    g_assert_cmpint(notified, ==, 0);
    timer_free(f.t);
    g_array_free(f.at, TRUE);
    virt_clock_free(clk);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/timer/manual-order-and-time", test_manual_order_and_time);
    g_test_add_func("/timer/periodic-rearm-and-del", test_periodic_rearm_and_del);
    g_test_add_func("/timer/realtime-stops-while-paused", test_realtime_stops_while_paused);
    g_test_add_func("/timer/realtime-due-timer-waits-while-paused",
                    test_realtime_due_timer_waits_while_paused);
    return g_test_run();
}
