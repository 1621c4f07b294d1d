/*
 * Run-state actions: what a guest reboot, shutdown, panic or watchdog expiry does
 * (QEMU's -action, -no-reboot, -no-shutdown and QMP set-action).  The names and the
 * errors are QEMU 7.2's; softmmu/vm.c acts on the values.
 */
#include <stddef.h>
#include <string.h>
#include "sen/runstate.h"

static const char *const reboot_names[REBOOT_ACTION__MAX] = {
    [REBOOT_ACTION_RESET] = "reset",
    [REBOOT_ACTION_SHUTDOWN] = "shutdown",
};

static const char *const shutdown_names[SHUTDOWN_ACTION__MAX] = {
    [SHUTDOWN_ACTION_POWEROFF] = "poweroff",
    [SHUTDOWN_ACTION_PAUSE] = "pause",
};

static const char *const panic_names[PANIC_ACTION__MAX] = {
    [PANIC_ACTION_PAUSE] = "pause",
    [PANIC_ACTION_SHUTDOWN] = "shutdown",
    [PANIC_ACTION_EXIT_FAILURE] = "exit-failure",
    [PANIC_ACTION_NONE] = "none",
};

static const char *const watchdog_names[WATCHDOG_ACTION__MAX] = {
    [WATCHDOG_ACTION_RESET] = "reset",
    [WATCHDOG_ACTION_SHUTDOWN] = "shutdown",
    [WATCHDOG_ACTION_POWEROFF] = "poweroff",
    [WATCHDOG_ACTION_PAUSE] = "pause",
    [WATCHDOG_ACTION_DEBUG] = "debug",
    [WATCHDOG_ACTION_NONE] = "none",
    [WATCHDOG_ACTION_INJECT_NMI] = "inject-nmi",
};

static const char *const guest_panic_names[GUEST_PANIC_ACTION__MAX] = {
    [GUEST_PANIC_ACTION_PAUSE] = "pause",
    [GUEST_PANIC_ACTION_POWEROFF] = "poweroff",
    [GUEST_PANIC_ACTION_RUN] = "run",
};

/* One key of -action / set-action: its value names and where the value goes. */
typedef struct ActionKey {
    const char *key;
    const char *const *names;
    unsigned count;
    size_t offset; /* of the enum in RunStateActions */
} ActionKey;

static const ActionKey action_keys[] = {
    { "reboot", reboot_names, REBOOT_ACTION__MAX, offsetof(RunStateActions, reboot) },
    { "shutdown", shutdown_names, SHUTDOWN_ACTION__MAX, offsetof(RunStateActions, shutdown) },
    { "panic", panic_names, PANIC_ACTION__MAX, offsetof(RunStateActions, panic) },
    { "watchdog", watchdog_names, WATCHDOG_ACTION__MAX, offsetof(RunStateActions, watchdog) },
};

bool runstate_action_set(RunStateActions *a, const char *key, const char *value,
                         Error **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(action_keys); i++) {
        const ActionKey *k = &action_keys[i];
        if (strcmp(k->key, key) != 0) {
            continue;
        }
        for (unsigned v = 0; v < k->count; v++) {
            if (strcmp(k->names[v], value) == 0) {
                /* Every field is an enum of int size (the static assertion below). */
                *(int *)((char *)a + k->offset) = (int)v;
                return true;
            }
        }
        error_setg(errp, "Parameter '%s' does not accept value '%s'", key, value);
        return false;
    }
    error_setg(errp, "Invalid parameter '%s'", key);
    return false;
}

G_STATIC_ASSERT(sizeof(RebootAction) == sizeof(int) && sizeof(ShutdownAction) == sizeof(int) &&
                sizeof(PanicAction) == sizeof(int) && sizeof(WatchdogAction) == sizeof(int));

char *runstate_action_help(void)
{
    GString *s = g_string_new("action options:\n");

    for (size_t i = 0; i < G_N_ELEMENTS(action_keys); i++) {
        const ActionKey *k = &action_keys[i];
        g_string_append_printf(s, "  %s=", k->key);
        for (unsigned v = 0; v < k->count; v++) {
            g_string_append_printf(s, "%s%s", v ? "|" : "", k->names[v]);
        }
        g_string_append_c(s, '\n');
    }
    return g_string_free(s, false);
}

GuestPanicAction runstate_action_on_panic(const RunStateActions *a)
{
    switch (a->panic) {
    case PANIC_ACTION_NONE:
        return GUEST_PANIC_ACTION_RUN;
    case PANIC_ACTION_SHUTDOWN:
        /* A shutdown that would pause: QEMU pauses at the panic already. */
        return a->shutdown == SHUTDOWN_ACTION_PAUSE ? GUEST_PANIC_ACTION_PAUSE
                                                    : GUEST_PANIC_ACTION_POWEROFF;
    case PANIC_ACTION_EXIT_FAILURE:
        return GUEST_PANIC_ACTION_POWEROFF;
    case PANIC_ACTION_PAUSE:
    default:
        return GUEST_PANIC_ACTION_PAUSE;
    }
}

const char *guest_panic_action_name(GuestPanicAction a)
{
    return a < GUEST_PANIC_ACTION__MAX ? guest_panic_names[a] : "unknown";
}
