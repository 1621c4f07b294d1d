/*
 * VM run states (QEMU's names, as QMP query-status reports them) and the table of allowed
 * transitions.  Only the main thread changes the state.
 */
#ifndef SEN_RUNSTATE_H
#define SEN_RUNSTATE_H

#include <stdbool.h>

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

const char *runstate_name(RunState s);           /* "running" */
bool runstate_transition_allowed(RunState from, RunState to);
const char *shutdown_cause_name(ShutdownCause c); /* "guest-reset" */
/* Whether the guest asked for it (the "guest" member of the SHUTDOWN and RESET events). */
bool shutdown_cause_is_guest(ShutdownCause c);

#endif
