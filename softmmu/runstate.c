/* Run states and their allowed transitions (a table, as QEMU's runstate_transitions_def). */
#include "sen/runstate.h"
#include <glib.h>

static const char *const runstate_names[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    [RUN_STATE_GUEST_PANICKED] = "guest-panicked",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_SAVE_VM] = "save-vm",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_SUSPENDED] = "suspended",
    [RUN_STATE_IO_ERROR] = "io-error",
};

/* allowed[from] is a bit set of the states reachable from `from`. */
#define BIT(s) (1u << (s))
/* Migration and snapshots: leaving the state they stopped the VM in, by either outcome. */
#define MIGRATE_OUT (BIT(RUN_STATE_FINISH_MIGRATE) | BIT(RUN_STATE_SAVE_VM) | \
                     BIT(RUN_STATE_RESTORE_VM))
static const unsigned allowed[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                            BIT(RUN_STATE_SHUTDOWN) | BIT(RUN_STATE_INMIGRATE) | MIGRATE_OUT,
    [RUN_STATE_RUNNING] = BIT(RUN_STATE_PAUSED) | BIT(RUN_STATE_SHUTDOWN) |
                          BIT(RUN_STATE_INTERNAL_ERROR) | BIT(RUN_STATE_GUEST_PANICKED) |
                          BIT(RUN_STATE_FINISH_MIGRATE) | BIT(RUN_STATE_SAVE_VM) |
                          BIT(RUN_STATE_RESTORE_VM) | BIT(RUN_STATE_SUSPENDED) |
                          BIT(RUN_STATE_IO_ERROR),
    /* A vCPU that failed as the VM was being stopped still stops it for good. */
    [RUN_STATE_PAUSED] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_SHUTDOWN) | MIGRATE_OUT |
                         BIT(RUN_STATE_INTERNAL_ERROR) | BIT(RUN_STATE_GUEST_PANICKED),
    [RUN_STATE_SHUTDOWN] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                           BIT(RUN_STATE_FINISH_MIGRATE),
    [RUN_STATE_INTERNAL_ERROR] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED),
    [RUN_STATE_GUEST_PANICKED] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED),
    [RUN_STATE_INMIGRATE] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                            BIT(RUN_STATE_SHUTDOWN),
    [RUN_STATE_FINISH_MIGRATE] = BIT(RUN_STATE_POSTMIGRATE) | BIT(RUN_STATE_RUNNING) |
                                 BIT(RUN_STATE_PAUSED) | BIT(RUN_STATE_PRELAUNCH) |
                                 BIT(RUN_STATE_SHUTDOWN) | BIT(RUN_STATE_IO_ERROR),
    [RUN_STATE_POSTMIGRATE] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                              BIT(RUN_STATE_SHUTDOWN) | MIGRATE_OUT,
    [RUN_STATE_SAVE_VM] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                          BIT(RUN_STATE_PRELAUNCH) | BIT(RUN_STATE_POSTMIGRATE) |
                          BIT(RUN_STATE_SHUTDOWN) | BIT(RUN_STATE_IO_ERROR),
    [RUN_STATE_RESTORE_VM] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                             BIT(RUN_STATE_PRELAUNCH) | BIT(RUN_STATE_POSTMIGRATE) |
                             BIT(RUN_STATE_SHUTDOWN) | BIT(RUN_STATE_IO_ERROR),
    /* Woken up (running), powered off or quit while asleep (shutdown). */
    [RUN_STATE_SUSPENDED] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_SHUTDOWN),
    /* cont retries the held requests (running); migration and snapshots may take the
     * VM as it is and give it back in this state; a vCPU may fail as it stops. */
    [RUN_STATE_IO_ERROR] = BIT(RUN_STATE_RUNNING) | BIT(RUN_STATE_PAUSED) |
                           BIT(RUN_STATE_SHUTDOWN) | MIGRATE_OUT |
                           BIT(RUN_STATE_INTERNAL_ERROR) | BIT(RUN_STATE_GUEST_PANICKED),
};

const char *runstate_name(RunState s)
{
    return s < RUN_STATE__MAX ? runstate_names[s] : "unknown";
}

bool runstate_transition_allowed(RunState from, RunState to)
{
    return from < RUN_STATE__MAX && to < RUN_STATE__MAX && (allowed[from] & BIT(to));
}

static const char *const cause_names[SHUTDOWN_CAUSE__MAX] = {
    [SHUTDOWN_CAUSE_NONE] = "none",
    [SHUTDOWN_CAUSE_HOST_ERROR] = "host-error",
    [SHUTDOWN_CAUSE_HOST_QMP_QUIT] = "host-qmp-quit",
    [SHUTDOWN_CAUSE_HOST_SIGNAL] = "host-signal",
    [SHUTDOWN_CAUSE_HOST_UI] = "host-ui",
    [SHUTDOWN_CAUSE_GUEST_SHUTDOWN] = "guest-shutdown",
    [SHUTDOWN_CAUSE_GUEST_RESET] = "guest-reset",
    [SHUTDOWN_CAUSE_GUEST_PANIC] = "guest-panic",
    [SHUTDOWN_CAUSE_SUBSYSTEM_RESET] = "subsystem-reset",
    [SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET] = "host-qmp-system-reset",
};

const char *shutdown_cause_name(ShutdownCause c)
{
    return c < SHUTDOWN_CAUSE__MAX ? cause_names[c] : "unknown";
}

bool shutdown_cause_is_guest(ShutdownCause c)
{
    return c == SHUTDOWN_CAUSE_GUEST_SHUTDOWN || c == SHUTDOWN_CAUSE_GUEST_RESET ||
           c == SHUTDOWN_CAUSE_GUEST_PANIC;
}
