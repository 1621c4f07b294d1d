/*
 * The run state of a whole machine (softmmu/vm.c): the PC board under the qtest
 * accelerator (no guest CPU), its main-loop passes made by hand.  A vCPU fault asked for
 * before the vCPUs were reset (a system_reset or loadvm, the end of an S3 sleep) belongs
 * to vCPUs that no longer exist: it must not stop the machine that comes after.
 */
#include <glib.h>
#include "sen/config.h"
#include "sen/machine.h"

static Machine *make_machine(void)
{
    char *argv[] = { "sen", "-accel", "qtest", "-M", "pc", "-m", "64M", "-display", "none",
                     "-serial", "null", NULL };
    bool exit_early = false;
    Error *err = NULL;
    MachineConfig *cfg = cmdline_parse(G_N_ELEMENTS(argv) - 1, argv, &exit_early, &err);
    g_assert_nonnull(cfg);
    Machine *m = machine_create(cfg, &err);
    if (!m) {
        g_error("%s", error_get_pretty(err));
    }
    machine_vm_start(m);
    g_assert_cmpint(m->runstate, ==, RUN_STATE_RUNNING);
    return m;
}

/* A vCPU failed (or the guest panicked) and then, before the main loop took the stop,
 * the machine was reset with its vCPUs (loadvm does that inside one QMP command; a
 * vCPU failing as a reset pauses it likewise).  The reset VM runs on (was: stopped in
 * internal-error, needing another reset; with no monitor, Sen exited). */
static void test_fault_before_reset(gconstpointer data)
{
    RunState fault = GPOINTER_TO_INT(data);
    Machine *m = make_machine();
    Error *err = NULL;

    machine_request_stop(m, fault);
    g_assert_true(machine_system_reset(m, &err));
    g_assert_true(machine_handle_requests(m));
    g_assert_cmpint(m->runstate, ==, RUN_STATE_RUNNING);
    machine_destroy(m);
}

/* A fault taken while the VM slept in S3 waits for it to run again; the wake-up resets
 * the vCPUs, so it is gone then (was: the woken VM stopped in internal-error). */
static void test_fault_before_wakeup(void)
{
    Machine *m = make_machine();

    machine_request_suspend(m);
    g_assert_true(machine_handle_requests(m));
    g_assert_cmpint(m->runstate, ==, RUN_STATE_SUSPENDED);
    machine_request_stop(m, RUN_STATE_INTERNAL_ERROR);
    g_assert_true(machine_handle_requests(m));
    g_assert_cmpint(m->runstate, ==, RUN_STATE_SUSPENDED);
    machine_request_wakeup(m, WAKEUP_REASON_OTHER);
    g_assert_true(machine_handle_requests(m));
    g_assert_cmpint(m->runstate, ==, RUN_STATE_RUNNING);
    g_assert_true(machine_handle_requests(m));
    g_assert_cmpint(m->runstate, ==, RUN_STATE_RUNNING);
    machine_destroy(m);
}

/* The control: a fault that no reset met still stops the VM (no monitor: Sen exits). */
static void test_fault_stops(void)
{
    Machine *m = make_machine();

    machine_request_stop(m, RUN_STATE_INTERNAL_ERROR);
    g_assert_false(machine_handle_requests(m));
    g_assert_cmpint(m->runstate, ==, RUN_STATE_INTERNAL_ERROR);
    machine_destroy(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/runstate/fault/stops", test_fault_stops);
    g_test_add_data_func("/runstate/fault/internal-error-before-reset",
                         GINT_TO_POINTER(RUN_STATE_INTERNAL_ERROR), test_fault_before_reset);
    g_test_add_data_func("/runstate/fault/guest-panicked-before-reset",
                         GINT_TO_POINTER(RUN_STATE_GUEST_PANICKED), test_fault_before_reset);
    g_test_add_func("/runstate/fault/before-wakeup", test_fault_before_wakeup);
    return g_test_run();
}
