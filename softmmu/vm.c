/*
 * Building, running and tearing down one VM from a MachineConfig.
 *
 * Order matters and is all here: chardevs, the board (RAM, devices, kernel image),
 * daemonize (before any thread exists, because a KVM VM belongs to the process that made
 * it and fork() keeps only one thread), the accelerator, the power-on reset.  Teardown is
 * the reverse.  Requests from devices and vCPUs (reset, shutdown, stop) are flags plus a
 * main-loop wakeup; only the main thread acts on them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include "accel/accel.h"
#include "sen/block.h"
#include "sen/chardev.h"
#include "sen/device.h"
#include "sen/hw/pc.h"
#include "sen/machine.h"
#include "sen/migration.h"
#include "sen/monitor.h"
#include "sen/os.h"
#include "sen/net.h"
#include "monitor/qapi-generated.h"
#include "softmmu/main-loop.h"
#include "sen/hw/ioapic.h"

static void wake_main_loop(void *opaque)
{
    Machine *m = opaque;
    g_main_context_wakeup(m->ctx);
}

void machine_request_reset(Machine *m, ShutdownCause cause)
{
    g_atomic_int_set(&m->reset_requested, cause ? (int)cause : SHUTDOWN_CAUSE_GUEST_RESET);
    wake_main_loop(m);
}

void machine_request_shutdown(Machine *m, ShutdownCause cause, int exit_status)
{
    /* The first request wins: a debug-exit status must not be overwritten by a later
     * shutdown from another vCPU. */
    if (g_atomic_int_compare_and_exchange(&m->shutdown_requested, 0,
                                          cause ? (int)cause : SHUTDOWN_CAUSE_HOST_ERROR)) {
        g_atomic_int_set(&m->exit_status, exit_status);
    }
    wake_main_loop(m);
}

void machine_request_stop(Machine *m, RunState state)
{
    g_atomic_int_or(&m->stop_requested, machine_stop_bit(state));
    wake_main_loop(m);
}

bool machine_guest_panicked(Machine *m)
{
    GuestPanicAction action = runstate_action_on_panic(&m->actions);
    unsigned bits = 1u << action;

    if (m->actions.panic == PANIC_ACTION_EXIT_FAILURE) {
        bits |= MACHINE_PANIC_EXIT_FAILURE;
    }
    g_atomic_int_or(&m->panic_requested, bits);
    if (action == GUEST_PANIC_ACTION_RUN) {
        wake_main_loop(m);
        return false;
    }
    machine_request_stop(m, RUN_STATE_GUEST_PANICKED);
    return true;
}

void machine_held_add(Machine *m, int n)
{
    g_atomic_int_add(&m->held_requests, n);
}

void machine_request_suspend(Machine *m)
{
    g_atomic_int_set(&m->suspend_requested, 1);
    wake_main_loop(m);
}

void machine_request_wakeup(Machine *m, WakeupReason reason)
{
    if (reason <= WAKEUP_REASON_NONE || reason >= WAKEUP_REASON__MAX ||
        !(g_atomic_int_get(&m->wakeup_enabled) & (1u << reason))) {
        return;
    }
    g_atomic_int_set(&m->wakeup_requested, (int)reason);
    wake_main_loop(m);
}

void machine_set_wakeup_enabled(Machine *m, WakeupReason reason, bool enabled)
{
    if (enabled) {
        g_atomic_int_or(&m->wakeup_enabled, 1u << reason);
    } else {
        g_atomic_int_and(&m->wakeup_enabled, ~(1u << reason));
    }
}

IrqLine machine_irq(Machine *m, unsigned gsi)
{
    return (IrqLine){ .m = m, .gsi = gsi };
}

void irq_set_level(const IrqLine *irq, int level)
{
    if (irq->m && irq->m->ioapic) {
        ioapic_set_irq(irq->m->ioapic, irq->gsi, level); /* kernel-irqchip=split */
    } else if (irq->m && irq->m->accel_up) {
        irq->m->accel->set_irq(irq->m, irq->gsi, level);
    }
}

void irq_pulse(const IrqLine *irq)
{
    irq_set_level(irq, 1);
    irq_set_level(irq, 0);
}

IOThread *machine_find_iothread(Machine *m, const char *id)
{
    for (guint i = 0; m->iothreads && i < m->iothreads->len; i++) {
        IOThread *t = g_ptr_array_index(m->iothreads, i);
        if (strcmp(iothread_id(t), id) == 0) {
            return t;
        }
    }
    return NULL;
}

void machine_iothreads_barrier(Machine *m)
{
    for (guint i = 0; m->iothreads && i < m->iothreads->len; i++) {
        iothread_barrier(g_ptr_array_index(m->iothreads, i));
    }
}

/* Their contexts, for the devices to attach to; the threads start later. */
static void create_iothreads(Machine *m)
{
    m->iothreads = g_ptr_array_new_with_free_func((GDestroyNotify)iothread_free);
    for (guint i = 0; i < m->cfg->iothreads->len; i++) {
        g_ptr_array_add(m->iothreads, iothread_new(g_ptr_array_index(m->cfg->iothreads, i)));
    }
}

static bool start_iothreads(Machine *m, Error **errp)
{
    for (guint i = 0; i < m->iothreads->len; i++) {
        if (!iothread_start(g_ptr_array_index(m->iothreads, i), errp)) {
            return false;
        }
    }
    return true;
}

Chardev *machine_find_chardev(Machine *m, const char *id)
{
    for (guint i = 0; m->chardevs && i < m->chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(m->chardevs, i);
        if (g_strcmp0(chardev_id(chr), id) == 0) {
            return chr;
        }
    }
    return NULL;
}

static void runstate_set(Machine *m, RunState to)
{
    if (m->runstate == to) {
        return;
    }
    if (!runstate_transition_allowed(m->runstate, to)) {
        /* A Sen bug, not a guest action: keep going in the old state and say so. */
        error_report("invalid run state transition %s -> %s", runstate_name(m->runstate),
                     runstate_name(to));
        return;
    }
    m->runstate = to;
}

static void quit_from_ui(void *opaque)
{
    machine_request_shutdown(opaque, SHUTDOWN_CAUSE_HOST_UI, 0);
}

static bool create_chardevs(Machine *m, Error **errp)
{
    const MachineConfig *cfg = m->cfg;
    for (guint i = 0; cfg->chardevs && i < cfg->chardevs->len; i++) {
        const ChardevConfig *cc = g_ptr_array_index(cfg->chardevs, i);
        Chardev *chr = chardev_new(cc, &m->lock, errp);
        if (!chr) {
            error_prepend(errp, "-chardev id=%s: ", cc->id);
            return false;
        }
        chardev_set_quit_handler(chr, quit_from_ui, m);
        g_ptr_array_add(m->chardevs, chr);
    }
    /* wait=on: like QEMU, start-up blocks until the client is there, so that nothing the
     * guest prints early is lost.  No vCPU exists yet, so nobody waits on the VM lock. */
    for (guint i = 0; cfg->chardevs && i < cfg->chardevs->len; i++) {
        const ChardevConfig *cc = g_ptr_array_index(cfg->chardevs, i);
        if (cc->kind == CHARDEV_SOCKET && cc->server && cc->wait &&
            !chardev_wait_connected(g_ptr_array_index(m->chardevs, i), errp)) {
            error_prepend(errp, "-chardev id=%s: ", cc->id);
            return false;
        }
    }
    return true;
}

/*
 * -daemonize: the parent waits until the child reports that the VM is built, so that a
 * bad configuration still makes the command fail with status 1 (QEMU behaves the same).
 * Returns the write end of the report pipe in the child.
 */
static int daemonize_fork(Error **errp)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "-daemonize: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        error_setg_errno(errp, errno, "-daemonize: fork");
        return -1;
    }
    if (pid > 0) {
        char ok = 0;
        close(fds[1]);
        ssize_t n;
        do {
            n = read(fds[0], &ok, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 && ok == 1 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    return fds[1];
}

static gboolean on_signal(gpointer opaque)
{
    machine_request_shutdown(opaque, SHUTDOWN_CAUSE_HOST_SIGNAL, 0);
    return G_SOURCE_CONTINUE;
}

/*
 * Installed before the pidfile is written, so that a SIGTERM sent as soon as the pidfile
 * appears is an orderly shutdown (pidfile removed, sockets unlinked) rather than the
 * default action.  After daemonize_fork(): GLib dispatches these from a worker thread,
 * which a fork would not carry over.
 */
static void install_signal_handlers(Machine *m)
{
    static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
    G_STATIC_ASSERT(G_N_ELEMENTS(signals) == G_N_ELEMENTS(m->signal_sources));
    for (unsigned i = 0; i < G_N_ELEMENTS(signals); i++) {
        m->signal_sources[i] = g_unix_signal_add(signals[i], on_signal, m);
    }
}

static void daemonize_finish(int report_fd, int null_fd)
{
    char ok = 1;
    if (write(report_fd, &ok, 1) != 1) {
        /* The parent is gone; nothing to tell. */
    }
    close(report_fd);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        dup2(null_fd, STDOUT_FILENO);
        dup2(null_fd, STDERR_FILENO);
        close(null_fd);
    }
}

static bool write_pidfile(const char *path, Error **errp)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setg_errno(errp, errno, "-pidfile %s: cannot create", path);
        return false;
    }
    bool ok = write(fd, pid, strlen(pid)) == (ssize_t)strlen(pid);
    close(fd);
    if (!ok) {
        error_setg(errp, "-pidfile %s: write failed", path);
        unlink(path);
    }
    return ok;
}

#define GUEST_FAULTS (machine_stop_bit(RUN_STATE_INTERNAL_ERROR) | \
                      machine_stop_bit(RUN_STATE_GUEST_PANICKED))

/*
 * The vCPUs were just reset (a system reset, loadvm, the end of an S3 sleep) and none
 * runs yet: a failed vCPU or a panic asked for before, taken or not, was about the vCPUs
 * as they were.  Left pending, it would stop the machine that comes after, which needs
 * no reset.  The guest did panic: its GUEST_PANICKED still goes out (QEMU's at once),
 * from panic_requested, which is left alone (as a poweroff panic's shutdown).
 */
static void machine_forget_vcpu_faults(Machine *m)
{
    g_atomic_int_and(&m->stop_requested, ~GUEST_FAULTS);
    m->stops_deferred = 0;
}

/* Power-on and system reset: devices, then the board's images, then the vCPUs. */
static bool machine_reset(Machine *m, Error **errp)
{
    CpuBootState bsp = { 0 };
    machine_lock(m);
    device_reset_all(m);
    bool ok = pc_machine_reset(m, &bsp, errp);
    machine_unlock(m);
    if (!ok || !m->accel->reset_cpus(m, &bsp, errp)) {
        return false;
    }
    machine_forget_vcpu_faults(m);
    return true;
}

bool machine_system_reset(Machine *m, Error **errp)
{
    return machine_reset(m, errp);
}

Machine *machine_create(MachineConfig *cfg, Error **errp)
{
    Machine *m = g_new0(Machine, 1);
    int report_fd = -1;
    int null_fd = -1;

    m->cfg = cfg;
    m->actions = cfg->actions;
    g_mutex_init(&m->lock);
    m->ctx = g_main_context_default();
    m->pio = io_space_new("I/O port");
    m->mmio = io_space_new("MMIO");
    m->devices = g_ptr_array_new();
    m->chardevs = g_ptr_array_new();
    m->accel = cfg->accel == ACCEL_QTEST ? &qtest_accel_ops : &kvm_accel_ops;
    m->clock = virt_clock_new(m->accel->manual_clock);
    virt_clock_stop(m->clock); /* virtual time starts when the VM does */
    virt_clock_set_notify(m->clock, wake_main_loop, m);
    m->runstate = RUN_STATE_PRELAUNCH;
    migration_init(m);
    /* The host can always wake a sleeping guest; the RTC only once the guest allows it. */
    m->wakeup_enabled = 1u << WAKEUP_REASON_OTHER;

    if (g_strcmp0(cfg->machine_type, "pc") != 0 && g_strcmp0(cfg->machine_type, "q35") != 0) {
        error_setg(errp, "-machine %s: unsupported machine type", cfg->machine_type);
        goto fail;
    }

    /* Before anything opens /dev/fdset/N paths. */
    for (guint i = 0; cfg->add_fds && i < cfg->add_fds->len; i++) {
        const AddFdConfig *a = g_ptr_array_index(cfg->add_fds, i);
        if (!fdset_add_fd(a->set, a->fd, a->opaque, errp)) {
            error_prepend(errp, "-add-fd fd=%d,set=%" PRId64 ": ", a->fd, a->set);
            goto fail;
        }
    }
    for (guint i = 0; cfg->devices && i < cfg->devices->len; i++) {
        const DeviceConfig *d = g_ptr_array_index(cfg->devices, i);
        g_autofree char *what = g_strdup_printf("-device %s", d->optstr);
        if (!device_check_props(d->driver, d->props, what, errp)) {
            goto fail;
        }
    }
    create_iothreads(m);
    if (!create_chardevs(m, errp) || !block_init_drives(m, errp) ||
        !net_init_netdevs(m, errp) || !pc_machine_init(m, errp)) {
        goto fail;
    }
    if (cfg->daemonize && (report_fd = daemonize_fork(errp)) < 0) {
        goto fail;
    }
    /* After the fork, which would leave them behind in the parent. */
    if (!start_iothreads(m, errp)) {
        goto fail;
    }
    /* Opened now: after -chroot there may be no /dev/null to open. */
    if (report_fd >= 0) {
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    install_signal_handlers(m);
    if (!m->accel->init(m, errp)) {
        goto fail;
    }
    m->accel_up = true;
    if (!machine_reset(m, errp)) {
        goto fail;
    }
    if (cfg->pidfile) {
        if (!write_pidfile(cfg->pidfile, errp)) {
            goto fail;
        }
        m->pidfile_written = true;
    }
    /* Before the monitors, so a client never sees the VM outside inmigrate. */
    if (cfg->incoming && !migration_incoming_setup(m, cfg->incoming, errp)) {
        goto fail;
    }
    /* Likewise: a client sees the snapshot's guest, never the freshly booted one. */
    if (cfg->loadvm && !savevm_load(m, cfg->loadvm, NULL, NULL, errp)) {
        error_prepend(errp, "-loadvm %s: ", cfg->loadvm);
        goto fail;
    }
    /* Last, so that a client connected already (wait=on) sees a complete machine. */
    if (!monitor_create_all(m, errp)) {
        goto fail;
    }
    /* Everything is open and no vCPU has run: -chroot, -runas, -sandbox (sen/os.h). */
    if (!os_isolate(cfg, errp)) {
        goto fail;
    }
    if (report_fd >= 0) {
        daemonize_finish(report_fd, null_fd);
    }
    return m;

fail:
    if (null_fd >= 0) {
        close(null_fd);
    }
    machine_destroy(m);
    return NULL;
}

void machine_vm_start(Machine *m)
{
    /* A sleeping guest runs again only through a wake-up, as in QEMU (cont is a no-op). */
    if (m->runstate == RUN_STATE_RUNNING || m->runstate == RUN_STATE_SUSPENDED) {
        return;
    }
    /* As QEMU's vm_prepare_start: an io-error stop not made yet is for requests held
     * before now, which the start hooks below retry; left pending, it would stop the VM
     * again with nothing held.  One reported later is for a request held later. */
    g_atomic_int_and(&m->stop_requested, ~machine_stop_bit(RUN_STATE_IO_ERROR));
    virt_clock_start(m->clock);
    m->accel->resume(m);
    runstate_set(m, RUN_STATE_RUNNING);
    qapi_event_send_resume(m);
    machine_run_start_hooks(m);
}

void *machine_add_start_hook(Machine *m, void (*fn)(void *opaque), void *opaque)
{
    if (!m->start_hooks) {
        m->start_hooks = g_new0(GHookList, 1);
        g_hook_list_init(m->start_hooks, sizeof(GHook));
    }
    GHook *hook = g_hook_alloc(m->start_hooks);
    hook->func = (gpointer)fn;
    hook->data = opaque;
    g_hook_append(m->start_hooks, hook);
    return hook;
}

void machine_remove_start_hook(Machine *m, void *handle)
{
    if (m->start_hooks && handle) {
        g_hook_destroy_link(m->start_hooks, handle);
        if (!m->start_hooks->hooks) {
            /* The last one gone: machines built by hand (tests) need no teardown call. */
            g_hook_list_clear(m->start_hooks);
            g_clear_pointer(&m->start_hooks, g_free);
        }
    }
}

void machine_run_start_hooks(Machine *m)
{
    if (m->start_hooks) {
        g_hook_list_invoke(m->start_hooks, FALSE);
    }
}

bool machine_devices_active(const Machine *m)
{
    return m->runstate == RUN_STATE_RUNNING || m->runstate == RUN_STATE_SUSPENDED;
}

/* send_stop false: the process is about to exit (QEMU 7.2's vm_shutdown sends no STOP). */
static void vm_stop(Machine *m, RunState state, bool send_stop)
{
    bool was_running = m->runstate == RUN_STATE_RUNNING;

    if (m->runstate == RUN_STATE_SUSPENDED) {
        /* Its vCPUs are stopped already; only a power-off ends the sleep (and its clock).
         * Stopping a sleeping VM is a no-op, as QEMU's vm_stop of a VM not running. */
        if (state == RUN_STATE_SHUTDOWN) {
            virt_clock_stop(m->clock);
            runstate_set(m, state);
        }
        return;
    }
    if (was_running) {
        m->accel->pause(m);
        virt_clock_stop(m->clock);
    }
    runstate_set(m, state);
    if (was_running && send_stop) {
        qapi_event_send_stop(m);
    }
}

void machine_vm_stop(Machine *m, RunState state)
{
    vm_stop(m, state, true);
}

static void send_shutdown_event(Machine *m, ShutdownCause cause)
{
    qapi_event_send_shutdown(m, shutdown_cause_is_guest(cause), shutdown_cause_name(cause));
}

/* ACPI S3: the vCPUs stop where they are, devices and the clock keep going. */
static void machine_suspend(Machine *m)
{
    m->accel->pause(m);
    runstate_set(m, RUN_STATE_SUSPENDED);
    machine_lock(m);
    pc_machine_suspend(m);
    machine_unlock(m);
    qapi_event_send_suspend(m);
}

/* The end of an S3 sleep: a reset that keeps RAM, then the vCPUs run from where the board
 * says (the guest's waking vector for a direct boot, the reset vector for firmware). */
static bool machine_wakeup(Machine *m, WakeupReason reason, Error **errp)
{
    CpuBootState bsp = { 0 };
    machine_lock(m);
    device_reset_all(m);
    bool ok = pc_machine_wakeup(m, reason, &bsp, errp);
    machine_unlock(m);
    if (!ok || !m->accel->reset_cpus(m, &bsp, errp)) {
        return false;
    }
    machine_forget_vcpu_faults(m);
    runstate_set(m, RUN_STATE_RUNNING);
    m->accel->resume(m);
    qapi_event_send_wakeup(m);
    return true;
}

/*
 * The stop reasons one pass may find together, the one the run state shows first: a
 * failed vCPU or a panicked guest needs a reset (cont refuses it; a cont would run the
 * VM without that vCPU), which also drops what a disk error held; query-block still
 * shows the drive's failure.
 */
static const RunState stop_precedence[] = {
    RUN_STATE_INTERNAL_ERROR, RUN_STATE_GUEST_PANICKED, RUN_STATE_IO_ERROR, RUN_STATE_PAUSED,
};

/*
 * Takes the stop requests: drops io-error stops that have become moot and returns the
 * state to enter now, 0 for none.  A vCPU fault of a VM that is stopped already is still entered (the failed vCPU stays stopped until a
 * reset, and the state must say so), at once if the VM is paused or in io-error, once
 * it runs again if a migration, a snapshot or an S3 sleep holds it (stops_deferred).
 */
static RunState take_stop_request(Machine *m)
{
    unsigned stops = g_atomic_int_and(&m->stop_requested, 0);
    unsigned io_error = machine_stop_bit(RUN_STATE_IO_ERROR);

    stops |= m->stops_deferred;
    m->stops_deferred = 0;
    /* A disk error (werror/rerror=stop) stops only a running VM, as QEMU's vm_stop: one
     * stopped meanwhile (stop, migration) keeps its state, and its held requests wait
     * for the next start all the same. */
    if ((stops & io_error) && m->runstate != RUN_STATE_RUNNING) {
        stops &= ~io_error;
    }
    /* Nor one whose requests a start retried already (its report reached the main loop
     * after a cont, from an I/O thread): stopped, it would wait for a cont with nothing
     * to retry.  Its BLOCK_IO_ERROR promised a STOP: unless another stop makes one, a
     * STOP and a RESUME go out, as QEMU's vm_prepare_start sends them when a start
     * finds the VM running with a stop pending. */
    if ((stops & io_error) && g_atomic_int_get(&m->held_requests) == 0) {
        stops &= ~io_error;
        if (!stops) {
            qapi_event_send_stop(m);
            qapi_event_send_resume(m);
        }
    }
    switch (m->runstate) {
    case RUN_STATE_RUNNING:
        break;
    case RUN_STATE_PAUSED:
    case RUN_STATE_IO_ERROR:
        stops &= GUEST_FAULTS;
        break;
    case RUN_STATE_INTERNAL_ERROR:
    case RUN_STATE_GUEST_PANICKED:
    case RUN_STATE_SHUTDOWN:
        return 0; /* stopped until a reset already */
    default:
        m->stops_deferred = stops & GUEST_FAULTS;
        return 0;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(stop_precedence); i++) {
        if (stops & machine_stop_bit(stop_precedence[i])) {
            return stop_precedence[i];
        }
    }
    return 0;
}

/*
 * Whether -action shutdown=pause keeps a VM that shut down for this cause: what the
 * guest did (and a reset that reboot=shutdown turned into a shutdown), not a quit,
 * a signal, Ctrl-A x or a host error, which QEMU always ends.
 */
static bool shutdown_cause_pausable(ShutdownCause cause)
{
    switch (cause) {
    case SHUTDOWN_CAUSE_GUEST_SHUTDOWN:
    case SHUTDOWN_CAUSE_GUEST_RESET:
    case SHUTDOWN_CAUSE_GUEST_PANIC:
    case SHUTDOWN_CAUSE_SUBSYSTEM_RESET:
    case SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET:
        return true;
    default:
        return false;
    }
}

/*
 * A shutdown: the SHUTDOWN event, then shutdown=pause keeps the VM stopped (true: the
 * main loop goes on), else the process ends with status (0: as it is).  A request with
 * an exit status of its own (isa-debug-exit) ends it regardless, as in QEMU.  A VM
 * stopped for good (guest-panicked, internal-error) keeps that state, as QEMU's.
 */
static bool machine_shutdown(Machine *m, ShutdownCause cause, int status)
{
    bool keep = m->actions.shutdown == SHUTDOWN_ACTION_PAUSE &&
                shutdown_cause_pausable(cause) && m->exit_status == 0;

    send_shutdown_event(m, cause);
    if (m->runstate != RUN_STATE_GUEST_PANICKED && m->runstate != RUN_STATE_INTERNAL_ERROR) {
        /* A STOP only for a VM that stays (shutdown=pause), as QEMU 7.2's. */
        vm_stop(m, RUN_STATE_SHUTDOWN, keep);
    }
    if (keep) {
        return true;
    }
    if (status) {
        m->exit_status = status;
    }
    return false;
}

/* Sends GUEST_PANICKED for each panic reported since the last pass, with what was done
 * (before the STOP, as QEMU); returns the panic_requested bits. */
static unsigned take_panics(Machine *m)
{
    unsigned panics = g_atomic_int_and(&m->panic_requested, 0);

    for (unsigned a = 0; a < GUEST_PANIC_ACTION__MAX; a++) {
        if (panics & (1u << a)) {
            qapi_event_send_guest_panicked(m, guest_panic_action_name(a));
        }
    }
    return panics;
}

bool machine_handle_requests(Machine *m)
{
    unsigned panics = take_panics(m);
    if (panics & (1u << GUEST_PANIC_ACTION_POWEROFF)) {
        /* QEMU 7.2 on KVM: GUEST_PANICKED, then the shutdown (SHUTDOWN guest-panic) takes
         * the VM; its guest-panicked stop is never made (with shutdown=pause the VM stays
         * in "shutdown").  The panicked vCPU parked already. */
        g_atomic_int_and(&m->stop_requested, ~machine_stop_bit(RUN_STATE_GUEST_PANICKED));
        return machine_shutdown(m, SHUTDOWN_CAUSE_GUEST_PANIC,
                                (panics & MACHINE_PANIC_EXIT_FAILURE) ? 1 : 0);
    }

    int cause = g_atomic_int_and(&m->shutdown_requested, 0);
    if (cause) {
        return machine_shutdown(m, (ShutdownCause)cause, 0);
    }

    RunState stop = take_stop_request(m);
    if (stop) {
        machine_vm_stop(m, stop); /* STOP only if it ran: a fault of a paused VM has none */
        if (monitor_present(m)) {
            /* Stay stopped for the monitor to inspect (query-status, info registers). */
            return true;
        }
        /* No monitor to inspect or resume the VM: say why we end. */
        error_report("VM stopped (%s); exiting as no monitor is configured",
                     runstate_name(stop));
        m->exit_status = 1;
        return false;
    }

    /* A guest paused by the user right after asking for S3 sleeps once it is resumed. */
    if (g_atomic_int_get(&m->suspend_requested) && m->runstate == RUN_STATE_RUNNING) {
        g_atomic_int_set(&m->suspend_requested, 0);
        machine_suspend(m);
    }
    /* After the suspend: an alarm that fired as the guest went to sleep wakes it again.
     * A wake-up that finds the VM awake is dropped (QEMU's rule). */
    int wakeup = g_atomic_int_and(&m->wakeup_requested, 0);
    if (wakeup && m->runstate == RUN_STATE_SUSPENDED) {
        Error *err = NULL;
        if (!machine_wakeup(m, (WakeupReason)wakeup, &err)) {
            error_prepend(&err, "wake-up from suspend failed: ");
            error_report_err(err);
            m->exit_status = 1;
            return false;
        }
    }

    int reset = g_atomic_int_and(&m->reset_requested, 0);
    if (reset) {
        if (m->actions.reboot == REBOOT_ACTION_SHUTDOWN) {
            return machine_shutdown(m, (ShutdownCause)reset, 0);
        }
        bool running = m->runstate == RUN_STATE_RUNNING;
        bool suspended = m->runstate == RUN_STATE_SUSPENDED;
        if (running) {
            m->accel->pause(m);
        }
        g_atomic_int_set(&m->suspend_requested, 0);
        Error *err = NULL;
        if (!machine_reset(m, &err)) {
            error_prepend(&err, "system reset failed: ");
            error_report_err(err);
            m->exit_status = 1;
            return false;
        }
        if (running) {
            m->accel->resume(m);
        }
        if (suspended) {
            /* A reset ends the sleep: the guest boots again (its clock never stopped). */
            runstate_set(m, RUN_STATE_RUNNING);
            m->accel->resume(m);
        }
        qapi_event_send_reset(m, shutdown_cause_is_guest((ShutdownCause)reset),
                              shutdown_cause_name((ShutdownCause)reset));
        /* A VM that was shut down or failed is usable again, but waits for `cont`; also
         * one stopped by a disk error, whose held requests the reset dropped. */
        if (m->runstate == RUN_STATE_SHUTDOWN || m->runstate == RUN_STATE_INTERNAL_ERROR ||
            m->runstate == RUN_STATE_GUEST_PANICKED || m->runstate == RUN_STATE_IO_ERROR) {
            runstate_set(m, RUN_STATE_PAUSED);
        }
    }
    return true;
}

int machine_run(Machine *m)
{
    GSource *timers = main_loop_timer_source_new(m);
    g_source_attach(timers, m->ctx);

    /* An incoming migration starts the guest itself once loaded. */
    if (!m->cfg->start_paused && m->runstate != RUN_STATE_INMIGRATE) {
        machine_vm_start(m);
    }
    do {
        g_main_context_iteration(m->ctx, TRUE);
    } while (machine_handle_requests(m));

    g_source_destroy(timers);
    g_source_unref(timers);
    return m->exit_status;
}

void machine_destroy(Machine *m)
{
    if (!m) {
        return;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(m->signal_sources); i++) {
        if (m->signal_sources[i]) {
            g_source_remove(m->signal_sources[i]);
        }
    }
    /* First: its threads use the dirty log, guest RAM and the VM lock. */
    migration_finalize(m);
    savevm_jobs_cleanup(m);
    /* Devices go before the accelerator: unrealize detaches irqfds and ioeventfds,
     * which needs the VM still there; vCPUs are stopped first so none is in a handler. */
    if (m->accel_up) {
        m->accel->pause(m);
    }
    monitor_destroy_all(m);
    /* Their handlers take the VM lock and use the devices: they stop first.  What they
     * leave in flight completes when block_cleanup runs their contexts. */
    for (guint i = 0; m->iothreads && i < m->iothreads->len; i++) {
        iothread_stop(g_ptr_array_index(m->iothreads, i));
    }
    machine_lock(m);
    device_destroy_all(m);
    machine_unlock(m);
    if (m->accel_up) {
        m->accel->destroy(m);
        m->accel_up = false;
    }
    block_cleanup(m); /* after the devices that use the drives */
    net_cleanup(m);   /* after the NICs that use the netdevs */
    if (m->iothreads) {
        g_ptr_array_free(m->iothreads, TRUE); /* after block_cleanup ran their contexts */
    }
    pc_machine_free(m);
    for (guint i = 0; i < m->chardevs->len; i++) {
        chardev_free(g_ptr_array_index(m->chardevs, i));
    }
    g_ptr_array_free(m->chardevs, TRUE);
    fdset_clear(); /* after every user of /dev/fdset/N descriptors */
    fdname_clear();
    g_ptr_array_free(m->devices, TRUE);
    guest_mem_free(m->mem);
    io_space_free(m->pio);
    io_space_free(m->mmio);
    virt_clock_free(m->clock);
    if (m->pidfile_written) {
        unlink(m->cfg->pidfile);
    }
    machine_config_free(m->cfg);
    g_mutex_clear(&m->lock);
    if (m->start_hooks) {
        g_hook_list_clear(m->start_hooks);
        g_free(m->start_hooks);
    }
    g_free(m);
}
