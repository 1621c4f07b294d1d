/*
 * The machine: what one VM is made of, and the requests devices and vCPUs send to the
 * main thread.
 *
 * Locking: `lock` (the VM lock) guards all device state.  vCPU threads take it around
 * every exit they dispatch; the main loop takes it around timers and chardev input.
 * Requests (reset, shutdown, stop) are flags plus a main-loop kick, never acted on in
 * the thread that raised them, so a device handler never waits for vCPUs to stop.
 */
#ifndef SEN_MACHINE_H
#define SEN_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "sen/config.h"
#include "sen/error.h"
#include "sen/iothread.h"
#include "sen/memory.h"
#include "sen/runstate.h"
#include "sen/timer.h"

typedef struct AccelOps AccelOps;
typedef struct Chardev Chardev;
typedef struct DeviceState DeviceState;
typedef struct PcMachine PcMachine;
typedef struct BlockState BlockState;
typedef struct MigrationState MigrationState;
typedef struct NetState NetState;
typedef struct IOAPICState IOAPICState;

typedef struct Machine {
    MachineConfig *cfg;
    GMutex lock;             /* the VM lock */

    GuestMemory *mem;
    IoSpace *pio;
    IoSpace *mmio;
    VirtClock *clock;

    const AccelOps *accel;
    void *accel_state;       /* owned by the accelerator */
    bool accel_up;           /* init succeeded: pause/destroy/set_irq may be called */

    GPtrArray *chardevs;     /* of Chardev*, owned */
    GPtrArray *devices;      /* of DeviceState*, creation order; reset/teardown walk it */
    GPtrArray *iothreads;    /* of IOThread* (sen/iothread.h), owned; NULL = none yet */
    PcMachine *pc;           /* board state (hw/i386/pc.c) */
    IOAPICState *ioapic;     /* kernel-irqchip=split: the userspace IOAPIC that
                              * irq_set_level drives (sen/hw/ioapic.h); NULL = in KVM */

    RunState runstate;       /* main thread only */
    RunStateActions actions; /* -action, changed by QMP set-action: VM lock held to
                              * change; the main thread reads them without it */
    unsigned stops_deferred; /* main thread: vCPU faults that wait for the VM to run */
    GHookList *start_hooks;  /* machine_add_start_hook, main thread only; NULL = none */

    /* Requests, set from any thread with the atomics below. */
    int reset_requested;     /* ShutdownCause of the reset, 0 = none */
    int shutdown_requested;  /* ShutdownCause, 0 = none */
    unsigned stop_requested; /* machine_stop_bit of each RunState asked for, 0 = none */
    unsigned panic_requested;/* guest panics to report: 1 << GuestPanicAction of each,
                              * | MACHINE_PANIC_EXIT_FAILURE (machine_guest_panicked) */
    int suspend_requested;   /* the guest entered ACPI S3, 0 = none */
    int wakeup_requested;    /* WakeupReason ending the S3 sleep, 0 = none */
    int held_requests;       /* held by devices for the next start (machine_held_add) */
    unsigned wakeup_enabled; /* bit per WakeupReason allowed to wake the VM */
    int exit_status;         /* process exit status once shut down */

    GMainContext *ctx;       /* the main loop's context */
    bool pidfile_written;    /* ours to remove at exit */
    guint signal_sources[3]; /* SIGINT, SIGTERM, SIGHUP -> orderly shutdown */
    BlockState *block;       /* drives and block nodes (block/drives.c), or NULL */
    NetState *net;           /* netdevs and NICs (net/net.c), or NULL */

    GPtrArray *monitors;     /* of Monitor*, owned (monitor/qmp.c); NULL before creation */
    MigrationState *migration; /* migration/migration.c */
    GPtrArray *jobs;         /* of Job*: QMP jobs (migration/savevm-job.c), or NULL */
} Machine;

/* Builds the machine from cfg (takes ownership of cfg); see softmmu/vm.c. */
Machine *machine_create(MachineConfig *cfg, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void machine_destroy(Machine *m);
/* Starts vCPUs unless -S; runs the main loop until shutdown; returns the exit status. */
int machine_run(Machine *m);
/* One pass over the pending requests, as machine_run makes after each main-loop
 * iteration (tests drive it directly).  Main thread, VM lock not held.  Returns false
 * once the VM should exit. */
bool machine_handle_requests(Machine *m);

static inline void machine_lock(Machine *m) { g_mutex_lock(&m->lock); }
static inline void machine_unlock(Machine *m) { g_mutex_unlock(&m->lock); }

Chardev *machine_find_chardev(Machine *m, const char *id);
/* The -object iothread with this id, or NULL. */
IOThread *machine_find_iothread(Machine *m, const char *id);
/* iothread_barrier on every I/O thread (sen/iothread.h); main thread, VM lock not held. */
void machine_iothreads_barrier(Machine *m);

/* Any thread.  Reset honours -action reboot=shutdown (-no-reboot): then it is a
 * shutdown with the reset's cause, and shutdown= applies. */
void machine_request_reset(Machine *m, ShutdownCause cause);
/* exit_status: what the process exits with (isa-debug-exit: (value << 1) | 1). */
void machine_request_shutdown(Machine *m, ShutdownCause cause, int exit_status);
/*
 * Stop all vCPUs and enter state: internal-error, guest-panicked (the failed vCPU stays
 * stopped until a reset), io-error (a device holds a failed request) or paused.  Each
 * state is a bit in stop_requested: requests made in one main-loop pass add up, and
 * machine_handle_requests enters the most telling one.
 */
void machine_request_stop(Machine *m, RunState state);
static inline unsigned machine_stop_bit(RunState state) { return 1u << state; }
/*
 * The guest reported a panic (KVM's crash event, pvpanic); VM lock held, any thread.
 * Decides by -action panic= / shutdown= (runstate_action_on_panic): pause stops the VM
 * in guest-panicked, poweroff shuts it down (SHUTDOWN guest-panic, exit status 0, or 1
 * for panic=exit-failure), run leaves it running.  The main loop sends GUEST_PANICKED
 * with that action first.  Returns true when the VM stops (the
 * reporting vCPU should stop at once), false for panic=none.
 */
bool machine_guest_panicked(Machine *m);
#define MACHINE_PANIC_EXIT_FAILURE (1u << GUEST_PANIC_ACTION__MAX)
/*
 * Requests a device holds after an error (werror/rerror=stop) for the next start to
 * retry: +n as it holds them, -n as a start retries them or a reset drops them (VM lock,
 * any thread).  An io-error stop that finds none held is not made: a start retried them
 * since the error was reported (machine_handle_requests).
 */
void machine_held_add(Machine *m, int n);

/*
 * ACPI S3 (any thread).  Suspend: the vCPUs stop, the virtual clock keeps running (so
 * the RTC alarm can fire), run state "suspended", SUSPEND event.  Wake-up: ignored
 * unless suspended and the reason is enabled; then the machine is reset keeping RAM
 * (pc_machine_wakeup), the vCPUs run again, WAKEUP event.
 */
void machine_request_suspend(Machine *m);
void machine_request_wakeup(Machine *m, WakeupReason reason);
/* Whether reason may end a sleep (the PM block: PM1_EN.RTC_EN for the RTC alarm). */
void machine_set_wakeup_enabled(Machine *m, WakeupReason reason, bool enabled);

/* Main thread, VM lock not held (they wait for vCPUs): stop the vCPUs and enter state
 * (STOP event if they ran); start them (RESUME event).  For the monitor's stop/cont. */
void machine_vm_stop(Machine *m, RunState state);
void machine_vm_start(Machine *m);
/* fn(opaque) runs on the main thread each time machine_vm_start starts the vCPUs, after
 * the state is running: devices replay work they held while the VM was stopped.  The
 * handle is for machine_remove_start_hook. */
void *machine_add_start_hook(Machine *m, void (*fn)(void *opaque), void *opaque);
void machine_remove_start_hook(Machine *m, void *handle);
void machine_run_start_hooks(Machine *m);
/* Whether devices may act on guest requests now: the vCPUs run, or the guest sleeps in S3
 * (its devices keep going).  Stopped (paused, migrating, saved), nothing may change the
 * guest's disks or RAM behind the state that was or is being saved. */
bool machine_devices_active(const Machine *m);
/* Main thread, vCPUs stopped, VM lock not held: the power-on reset of devices, board and
 * vCPUs, now (loadvm resets before it loads, as QEMU does). */
bool machine_system_reset(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* An interrupt line of the board's interrupt controller (GSI = IOAPIC pin; 0..15 also
 * drive the PIC).  Devices get one at realize and never see the accelerator. */
typedef struct IrqLine {
    Machine *m;
    unsigned gsi;
} IrqLine;

IrqLine machine_irq(Machine *m, unsigned gsi);
void irq_set_level(const IrqLine *irq, int level);
static inline void irq_raise(const IrqLine *irq) { irq_set_level(irq, 1); }
static inline void irq_lower(const IrqLine *irq) { irq_set_level(irq, 0); }
/* Edge: raise then lower. */
void irq_pulse(const IrqLine *irq);

#endif
