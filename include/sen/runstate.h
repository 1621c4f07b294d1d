/*
 * VM run states (QEMU's names, as QMP query-status reports them) and the table of allowed
 * transitions.  Only the main thread changes the state.
 */
#ifndef SEN_RUNSTATE_H
#define SEN_RUNSTATE_H

#include <stdbool.h>
#include "sen/error.h"

typedef enum RunState {
    RUN_STATE_PRELAUNCH,      /* created, -S given, never started */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,         /* stopped by the user (QMP stop) */
    RUN_STATE_SHUTDOWN,       /* guest shut down with -no-shutdown */
    RUN_STATE_INTERNAL_ERROR, /* KVM could not continue (emulation failure ...) */
    RUN_STATE_GUEST_PANICKED,
    RUN_STATE_INMIGRATE,      /* -incoming: waiting for (or loading) a migration stream */
    RUN_STATE_FINISH_MIGRATE, /* stopped for the last migration round and device state */
    RUN_STATE_POSTMIGRATE,    /* the destination took over; this VM stays stopped */
    RUN_STATE_SAVE_VM,        /* savevm writing a snapshot */
    RUN_STATE_RESTORE_VM,     /* loadvm reading a snapshot */
    RUN_STATE_SUSPENDED,      /* guest entered ACPI S3: vCPUs stopped, clock running */
    RUN_STATE_IO_ERROR,       /* a disk request failed under werror/rerror=stop: held,
                               * retried by cont */
    RUN_STATE__MAX,
} RunState;

typedef enum ShutdownCause {
    SHUTDOWN_CAUSE_NONE,
    SHUTDOWN_CAUSE_HOST_ERROR,
    SHUTDOWN_CAUSE_HOST_QMP_QUIT,
    SHUTDOWN_CAUSE_HOST_SIGNAL,
    SHUTDOWN_CAUSE_HOST_UI,          /* Ctrl-A x */
    SHUTDOWN_CAUSE_GUEST_SHUTDOWN,   /* ACPI S5, isa-debug-exit */
    SHUTDOWN_CAUSE_GUEST_RESET,      /* i8042 0xFE, port 0xCF9 */
    SHUTDOWN_CAUSE_GUEST_PANIC,
    SHUTDOWN_CAUSE_SUBSYSTEM_RESET,  /* triple fault */
    SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET, /* QMP system_reset */
    SHUTDOWN_CAUSE__MAX,
} ShutdownCause;

/* What ends an ACPI S3 sleep (QEMU's WakeupReason).  Each is a bit in the machine's
 * wake-up mask: the PM block enables RTC and PM timer wake-ups with PM1_EN.RTC_EN and
 * PM1_EN.TMR_EN. */
typedef enum WakeupReason {
    WAKEUP_REASON_NONE,
    WAKEUP_REASON_RTC,       /* RTC alarm */
    WAKEUP_REASON_PMTIMER,   /* PM timer carry (TMR_STS with PM1_EN.TMR_EN) */
    WAKEUP_REASON_OTHER,     /* QMP system_wakeup, the power button */
    WAKEUP_REASON__MAX,
} WakeupReason;

/*
 * What the VM does on a guest reboot, a shutdown, a guest panic and a watchdog expiry:
 * QEMU's -action (and -no-reboot, -no-shutdown) and QMP set-action.  Values in QAPI
 * order (qapi/run-state.json); QEMU 7.2's defaults are RUNSTATE_ACTIONS_DEFAULT.
 */
typedef enum RebootAction {
    REBOOT_ACTION_RESET,    /* reset the machine */
    REBOOT_ACTION_SHUTDOWN, /* a shutdown instead (-no-reboot), then shutdown= applies */
    REBOOT_ACTION__MAX,
} RebootAction;

typedef enum ShutdownAction {
    SHUTDOWN_ACTION_POWEROFF, /* the process ends */
    SHUTDOWN_ACTION_PAUSE,    /* stay stopped in "shutdown" (-no-shutdown) */
    SHUTDOWN_ACTION__MAX,
} ShutdownAction;

typedef enum PanicAction {
    PANIC_ACTION_PAUSE,        /* stop in guest-panicked */
    PANIC_ACTION_SHUTDOWN,     /* stop, then shut down (pause if shutdown=pause) */
    PANIC_ACTION_EXIT_FAILURE, /* as shutdown, the process exits with status 1 */
    PANIC_ACTION_NONE,         /* only the GUEST_PANICKED event; the guest runs on */
    PANIC_ACTION__MAX,
} PanicAction;

/* Kept for a watchdog device; Sen has none yet, so nothing acts on it (as QEMU
 * without one). */
typedef enum WatchdogAction {
    WATCHDOG_ACTION_RESET,
    WATCHDOG_ACTION_SHUTDOWN,
    WATCHDOG_ACTION_POWEROFF,
    WATCHDOG_ACTION_PAUSE,
    WATCHDOG_ACTION_DEBUG,
    WATCHDOG_ACTION_NONE,
    WATCHDOG_ACTION_INJECT_NMI,
    WATCHDOG_ACTION__MAX,
} WatchdogAction;

/* What the VMM did about a guest panic: the GUEST_PANICKED event's "action". */
typedef enum GuestPanicAction {
    GUEST_PANIC_ACTION_PAUSE,
    GUEST_PANIC_ACTION_POWEROFF,
    GUEST_PANIC_ACTION_RUN,
    GUEST_PANIC_ACTION__MAX,
} GuestPanicAction;

typedef struct RunStateActions {
    RebootAction reboot;
    ShutdownAction shutdown;
    PanicAction panic;
    WatchdogAction watchdog;
} RunStateActions;

#define RUNSTATE_ACTIONS_DEFAULT \
    ((RunStateActions){ REBOOT_ACTION_RESET, SHUTDOWN_ACTION_POWEROFF, PANIC_ACTION_SHUTDOWN, \
                        WATCHDOG_ACTION_RESET })

/*
 * Sets one action by its -action / set-action key ("reboot", "shutdown", "panic",
 * "watchdog") and value name.  Errors in QEMU's words: "Invalid parameter 'KEY'",
 * "Parameter 'KEY' does not accept value 'VALUE'".
 */
bool runstate_action_set(RunStateActions *a, const char *key, const char *value,
                         Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* "reboot=reset|shutdown" ... one line per key, for -action help. */
char *runstate_action_help(void);
/* What a panic does under a, the GUEST_PANICKED event's action (QEMU's rule: panic=shutdown
 * with shutdown=pause pauses). */
GuestPanicAction runstate_action_on_panic(const RunStateActions *a);
const char *guest_panic_action_name(GuestPanicAction a); /* "poweroff" */

const char *runstate_name(RunState s);           /* "running" */
bool runstate_transition_allowed(RunState from, RunState to);
const char *shutdown_cause_name(ShutdownCause c); /* "guest-reset" */
/* Whether the guest asked for it (the "guest" member of the SHUTDOWN and RESET events). */
bool shutdown_cause_is_guest(ShutdownCause c);

#endif
