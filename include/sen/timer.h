/*
 * The virtual clock and its timers.
 *
 * Under KVM the clock follows CLOCK_MONOTONIC but stops while the VM is paused (as QEMU's
 * QEMU_CLOCK_VIRTUAL).  Under the qtest accelerator it is manual: it only moves when the
 * test says clock_step/clock_set, so device tests are deterministic.
 *
 * Timer callbacks run on the main thread with the VM lock held.  timer_mod/timer_del must
 * be called with the VM lock held (device handlers always are).
 */
#ifndef SEN_TIMER_H
#define SEN_TIMER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct VirtClock VirtClock;
typedef struct Timer Timer;
typedef void TimerCb(void *opaque);

#define NS_PER_SEC 1000000000LL

VirtClock *virt_clock_new(bool manual);
void virt_clock_free(VirtClock *clk);
int64_t virt_clock_get_ns(VirtClock *clk);
bool virt_clock_is_manual(const VirtClock *clk);
/* Freezes / resumes a realtime clock across pauses (no-op for a manual clock). */
void virt_clock_stop(VirtClock *clk);
void virt_clock_start(VirtClock *clk);
/* Manual clock only: advance to now + ns / to ns, running every timer that expires on the
 * way in deadline order (with the clock reading each timer's deadline as it runs). */
void virt_clock_step(VirtClock *clk, int64_t ns);
void virt_clock_set(VirtClock *clk, int64_t ns);
/* Migration: makes the clock read ns now (either direction) without running timers, so
 * that deadlines loaded from the source keep their meaning.  VM lock held, VM stopped. */
void virt_clock_load(VirtClock *clk, int64_t ns);
/* Earliest pending deadline, or -1 when none or the (realtime) clock is stopped: no timer
 * runs then, so the main loop has nothing to wait for (for the main loop). */
int64_t virt_clock_deadline(VirtClock *clk);
/* Runs every timer whose deadline is <= now. */
void virt_clock_run_timers(VirtClock *clk);
/* Called whenever the earliest deadline may have moved earlier (main loop wakeup). */
void virt_clock_set_notify(VirtClock *clk, void (*notify)(void *opaque), void *opaque);

Timer *timer_new(VirtClock *clk, TimerCb *cb, void *opaque);
void timer_free(Timer *t);
void timer_mod(Timer *t, int64_t expire_ns); /* absolute virtual-clock time */
void timer_del(Timer *t);
bool timer_pending(const Timer *t);
int64_t timer_expire_time(const Timer *t); /* -1 when not pending */

#endif
