/*
 * A running guest-kit guest (tests/guest/vmstate-ticks.c) on the whole PC board with two
 * vCPUs, a virtio-rng-pci it reads through MSI-X, and real KVM: machine A runs it until it has reported 100 ticks, stops, drains and saves its
 * device state; a fresh machine B from the same command line gets A's RAM and that state
 * and runs to the end.  B must finish with the guest's PASS status, continue A's tick
 * count and never print the start banner (a restart would).  Needs /dev/kvm and the guest
 * kit; skipped with the reason otherwise.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "softmmu/main-loop.h"
#include "sen/config.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/vmstate.h"
#include "kvm-test-util.h"

#define GUEST_PASS_STATUS 33
#define RUN_LIMIT_US (60 * G_USEC_PER_SEC)

static char *guest_image(void)
{
    const char *build = g_getenv("SEN_BUILD_DIR");
    if (!build) {
        return NULL;
    }
    char *path = g_build_filename(build, "tests", "guest", "vmstate-ticks.elf", NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_free(path);
        return NULL;
    }
    return path;
}

static Machine *make_machine(const char *image, const char *serial_log)
{
    g_autofree char *serial = g_strdup_printf("file:%s", serial_log);
    char *argv[] = { "sen", "-M", "pc", "-m", "64M", "-smp", "2", "-kernel", (char *)image,
                     "-device", "isa-debug-exit", "-device", "virtio-rng-pci",
                     "-display", "none", "-serial", serial,
                     NULL };
    bool exit_early = false;
    Error *err = NULL;
    MachineConfig *cfg = cmdline_parse(G_N_ELEMENTS(argv) - 1, argv, &exit_early, &err);
    if (!cfg) {
        g_error("command line: %s", error_get_pretty(err));
    }
    Machine *m = machine_create(cfg, &err);
    if (!m) {
        g_error("machine: %s", error_get_pretty(err));
    }
    return m;
}

/* A destination whose guest hangs (lost interrupt state) must fail, not wait forever. */
static gboolean give_up(gpointer opaque)
{
    machine_request_shutdown(opaque, SHUTDOWN_CAUSE_HOST_ERROR, 124);
    return G_SOURCE_REMOVE;
}

static bool log_has(const char *path, const char *what)
{
    g_autofree char *text = NULL;
    return g_file_get_contents(path, &text, NULL, NULL) && strstr(text, what);
}

static void copy_ram(Machine *from, Machine *to)
{
    g_assert_cmpuint(guest_mem_region_count(from->mem), ==, guest_mem_region_count(to->mem));
    for (unsigned i = 0; i < guest_mem_region_count(from->mem); i++) {
        const RamRegion *a = guest_mem_region(from->mem, i);
        const RamRegion *b = guest_mem_region(to->mem, i);
        g_assert_cmphex(a->gpa, ==, b->gpa);
        g_assert_cmphex(a->size, ==, b->size);
        memcpy(b->hva, a->hva, a->size);
    }
}

static void test_guest_continues(void)
{
    g_autofree char *image = guest_image();
    if (!image) {
        g_test_skip("the guest kit is not built (vmstate-ticks.elf missing)");
        return;
    }
    const char *why = kvm_test_unusable_reason();
    if (why) {
        g_test_skip(why);
        return;
    }
    g_autofree char *dir = g_dir_make_tmp("sen-vmstate-guest-XXXXXX", NULL);
    g_autofree char *log_a = g_build_filename(dir, "a.log", NULL);
    g_autofree char *log_b = g_build_filename(dir, "b.log", NULL);

    /* A: run until the guest is well under way, then stop it where it is. */
    Machine *a = make_machine(image, log_a);
    GSource *timers = main_loop_timer_source_new(a);
    g_source_attach(timers, a->ctx);
    machine_vm_start(a);
    gint64 deadline = g_get_monotonic_time() + RUN_LIMIT_US;
    while (!log_has(log_a, "tick 100 ")) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_assert_cmpint(g_atomic_int_get(&a->shutdown_requested), ==, 0);
        g_main_context_iteration(a->ctx, FALSE);
        g_usleep(1000);
    }
    machine_vm_stop(a, RUN_STATE_PAUSED);
    g_source_destroy(timers);
    g_source_unref(timers);
    g_assert_false(log_has(log_a, "PASS"));

    vmstate_drain_all(a);
    g_autoptr(GByteArray) blob = g_byte_array_new();
    Error *err = NULL;
    if (!vmstate_save_all(a, blob, &err)) {
        g_error("save: %s", error_get_pretty(err));
    }

    /* B: same command line, A's RAM and state; it runs to the guest's own end. */
    Machine *b = make_machine(image, log_b);
    copy_ram(a, b);
    machine_destroy(a);
    if (!vmstate_load_all(b, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    guint limit = g_timeout_add(RUN_LIMIT_US / 1000, give_up, b);
    int status = machine_run(b);
    if (status != 124) {
        g_source_remove(limit);
    }
    machine_destroy(b);

    g_autofree char *out = NULL;
    g_assert_true(g_file_get_contents(log_b, &out, NULL, NULL));
    if (status != GUEST_PASS_STATUS) {
        g_printerr("destination serial output:\n%s\n", out);
    }
    g_assert_cmpint(status, ==, GUEST_PASS_STATUS);
    g_assert_null(strstr(out, "vmstate-ticks: start"));
    g_assert_null(strstr(out, "tick 20 "));
    g_assert_nonnull(strstr(out, "tick 400 "));
    g_assert_nonnull(strstr(out, "virtio-rng reads, each completed with an interrupt"));
    g_assert_nonnull(strstr(out, "every AP kept ticking"));
    g_assert_nonnull(strstr(out, "PASS"));
    g_unlink(log_a);
    g_unlink(log_b);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Nothing to run without both: tell meson SKIP (77), not a pass. */
    g_autofree char *image = guest_image();
    if (!image) {
        printf("SKIP: the guest kit is not built (vmstate-ticks.elf missing)\n");
        return 77;
    }
    const char *why = kvm_test_unusable_reason();
    if (why) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    g_test_add_func("/vmstate-guest/continues-on-fresh-machine", test_guest_continues);
    return g_test_run();
}
