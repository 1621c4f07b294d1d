/*
 * KVM vCPUs: creation, power-on reset, one thread per vCPU running KVM_RUN, exit
 * dispatch, and pause/resume.
 *
 * Kicking a vCPU out of KVM_RUN (pause, register reads) uses two mechanisms together,
 * which closes every race without a lock around KVM_RUN:
 *   - kvm_run->immediate_exit = 1, written under ctl_lock, makes a KVM_RUN that has not
 *     yet looked at it return EINTR at once;
 *   - SIG_KICK (empty handler, unblocked only in vCPU threads) interrupts a KVM_RUN that
 *     is already inside the guest; KVM checks for pending signals right before each entry.
 * The vCPU thread clears immediate_exit itself, under ctl_lock, only when it has decided
 * to run, so a kick can never be lost and never leaves a stale flag behind.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "accel/kvm/kvm-internal.h"
#include "sen/hw/ioapic.h"

#define SIG_KICK SIGUSR1

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define FPU_FCW_RESET 0x37f
#define MXCSR_RESET 0x1f80
#define XCR0_X87 1

static void kvm_kick_handler(int sig)
{
    /* Nothing to do: delivering the signal is what makes KVM_RUN return EINTR. */
}

/* ---- creation and power-on state ---- */

static bool vcpu_ioctl(KvmVcpu *v, unsigned long req, void *arg, const char *name,
                       Error **errp)
{
    if (ioctl(v->fd, req, arg) < 0) {
        error_setg_errno(errp, errno, "vCPU %u: %s failed", v->index, name);
        return false;
    }
    return true;
}

/* Records the state KVM gives a new vCPU, which is the architectural power-on state;
 * restoring it is the most faithful reset. */
static bool vcpu_capture_reset_state(KvmVcpu *v, Error **errp)
{
    KvmState *s = v->s;
    KvmVcpuReset *r = &v->reset;

    if (!vcpu_ioctl(v, KVM_GET_REGS, &r->regs, "KVM_GET_REGS", errp) ||
        !vcpu_ioctl(v, KVM_GET_SREGS, &r->sregs, "KVM_GET_SREGS", errp) ||
        !vcpu_ioctl(v, KVM_GET_LAPIC, &r->lapic, "KVM_GET_LAPIC", errp)) {
        return false;
    }
    if (s->have_vcpu_events &&
        !vcpu_ioctl(v, KVM_GET_VCPU_EVENTS, &r->events, "KVM_GET_VCPU_EVENTS", errp)) {
        return false;
    }
    if (s->have_debugregs &&
        !vcpu_ioctl(v, KVM_GET_DEBUGREGS, &r->debugregs, "KVM_GET_DEBUGREGS", errp)) {
        return false;
    }
    if (s->have_xcrs) {
        r->have_xcrs = ioctl(v->fd, KVM_GET_XCRS, &r->xcrs) == 0;
    }
    if (s->have_xsave) {
        r->xsave = g_malloc0(s->xsave_size);
        unsigned long req = s->xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2
                                                                       : KVM_GET_XSAVE;
        if (ioctl(v->fd, req, r->xsave) < 0) {
            g_clear_pointer(&r->xsave, g_free);
        }
    }
    return true;
}

bool kvm_vcpu_create(KvmState *s, unsigned index, Error **errp)
{
    KvmVcpu *v = &s->vcpus[index];
    v->s = s;
    v->index = index;
    v->apic_id = index;
    v->fd = ioctl(s->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->apic_id);
    if (v->fd < 0) {
        error_setg_errno(errp, errno, "vCPU %u: KVM_CREATE_VCPU failed", index);
        return false;
    }
    void *run = mmap(NULL, s->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (run == MAP_FAILED) {
        error_setg_errno(errp, errno, "vCPU %u: cannot map the kvm_run area", index);
        return false;
    }
    v->run = run;
    return kvm_dirty_ring_map(v, errp) && kvm_vcpu_setup_cpuid(v, errp) &&
           vcpu_capture_reset_state(v, errp);
}

void kvm_vcpu_destroy(KvmVcpu *v)
{
    kvm_dirty_ring_unmap(v);
    if (v->run) {
        munmap(v->run, v->s->run_size);
        v->run = NULL;
    }
    if (v->fd >= 0) {
        close(v->fd);
        v->fd = -1;
    }
    g_clear_pointer(&v->reset.xsave, g_free);
}

/* Decodes an 8-byte GDT descriptor into KVM's segment cache format. */
static void seg_from_descriptor(struct kvm_segment *seg, uint16_t sel, uint64_t d)
{
    uint32_t limit = (d & 0xffff) | ((d >> 32) & 0xf0000);
    seg->selector = sel;
    seg->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
    /* Loading a descriptor sets its accessed bit; VMX refuses segments without it. */
    seg->type = ((d >> 40) & 0xf) | ((d >> 44) & 1);
    seg->s = (d >> 44) & 1;
    seg->dpl = (d >> 45) & 3;
    seg->present = (d >> 47) & 1;
    seg->avl = (d >> 52) & 1;
    seg->l = (d >> 53) & 1;
    seg->db = (d >> 54) & 1;
    seg->g = (d >> 55) & 1;
    seg->limit = seg->g ? (limit << 12) | 0xfff : limit;
    seg->unusable = 0;
}

/*
 * Loads a selector from the loader's GDT the way the CPU would, so the hidden part agrees
 * with the table the guest may reload from.  A selector the table does not describe
 * properly falls back to a flat 4 GiB segment.
 */
static void seg_load(GuestMemory *gm, const CpuBootState *b, uint16_t sel, bool code,
                     struct kvm_segment *seg)
{
    bool long64 = b->mode == CPU_BOOT_LONG64;
    uint64_t d;
    unsigned off = sel & ~7u;

    if (off && off + 7 <= b->gdt_limit && guest_mem_read(gm, b->gdt_base + off, &d, 8)) {
        seg_from_descriptor(seg, sel, d);
        bool is_code = seg->type & 8;
        bool ok = seg->present && seg->s && (code ? is_code : (!is_code && (seg->type & 2)));
        if (ok && code && long64 && !seg->l) {
            ok = false;
        }
        if (ok) {
            return;
        }
    }
    *seg = (struct kvm_segment){
        .selector = sel, .base = 0, .limit = 0xffffffff, .present = 1, .s = 1, .g = 1,
        .type = code ? 0xb : 0x3, .l = code && long64, .db = !(code && long64),
    };
}

static void apply_boot_state(KvmVcpu *v, const CpuBootState *b, struct kvm_regs *regs,
                             struct kvm_sregs *sregs)
{
    GuestMemory *gm = v->s->m->mem;

    seg_load(gm, b, b->cs, true, &sregs->cs);
    seg_load(gm, b, b->ds, false, &sregs->ds);
    sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
    sregs->gdt.base = b->gdt_base;
    sregs->gdt.limit = b->gdt_limit;
    if (b->mode == CPU_BOOT_LONG64) {
        sregs->cr0 = CR0_PE | CR0_ET | CR0_PG;
        sregs->cr3 = b->cr3;
        sregs->cr4 = CR4_PAE;
        sregs->efer = EFER_LME | EFER_LMA;
    } else {
        sregs->cr0 = CR0_PE | CR0_ET;
        sregs->cr3 = 0;
        sregs->cr4 = 0;
        sregs->efer = 0;
    }

    memset(regs, 0, sizeof(*regs));
    regs->rax = b->rax;
    regs->rbx = b->rbx;
    regs->rcx = b->rcx;
    regs->rdx = b->rdx;
    regs->rsi = b->rsi;
    regs->rdi = b->rdi;
    regs->rbp = b->rbp;
    regs->rsp = b->rsp;
    regs->rip = b->rip;
    /* Bit 1 is always set; IF stays as the loader asked (normally 0). */
    regs->rflags = b->rflags | 0x2;
}

bool kvm_vcpu_reset(KvmVcpu *v, const CpuBootState *boot, Error **errp)
{
    KvmState *s = v->s;
    KvmVcpuReset *r = &v->reset;
    struct kvm_regs regs = r->regs;
    struct kvm_sregs sregs = r->sregs;

    if (boot && boot->mode == CPU_BOOT_REAL16) {
        /* Real mode as after reset, only the code segment and IP differ. */
        sregs.cs.selector = boot->cs;
        sregs.cs.base = (uint64_t)boot->cs << 4;
        regs.rip = boot->rip & 0xffff;
    } else if (boot && boot->mode != CPU_BOOT_RESET) {
        apply_boot_state(v, boot, &regs, &sregs);
    }
    if (!vcpu_ioctl(v, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", errp) ||
        !vcpu_ioctl(v, KVM_SET_REGS, &regs, "KVM_SET_REGS", errp)) {
        return false;
    }
    if (r->xsave && !vcpu_ioctl(v, KVM_SET_XSAVE, r->xsave, "KVM_SET_XSAVE", errp)) {
        return false;
    }
    struct kvm_fpu fpu = { .fcw = FPU_FCW_RESET, .mxcsr = MXCSR_RESET };
    if (!vcpu_ioctl(v, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp)) {
        return false;
    }
    if (r->have_xcrs) {
        struct kvm_xcrs xcrs = { .nr_xcrs = 1, .xcrs[0] = { .xcr = 0, .value = XCR0_X87 } };
        if (!vcpu_ioctl(v, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", errp)) {
            return false;
        }
    }
    if (!kvm_vcpu_reset_msrs(v, errp)) {
        return false;
    }
    /* The LAPIC after SREGS (which holds the APIC base MSR), MP state after the LAPIC. */
    struct kvm_lapic_state lapic = r->lapic;
    if (!vcpu_ioctl(v, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", errp)) {
        return false;
    }
    struct kvm_mp_state mp = {
        .mp_state = v->index == 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED,
    };
    if (!vcpu_ioctl(v, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", errp)) {
        return false;
    }
    if (s->have_vcpu_events) {
        struct kvm_vcpu_events ev = r->events;
        ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
        if (!vcpu_ioctl(v, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", errp)) {
            return false;
        }
    }
    if (s->have_debugregs) {
        struct kvm_debugregs dr = r->debugregs;
        if (!vcpu_ioctl(v, KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS", errp)) {
            return false;
        }
    }
    return true;
}

/* ---- exit dispatch (VM lock held) ---- */

static uint64_t all_ones(unsigned size)
{
    return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
}

static void handle_io(KvmVcpu *v)
{
    Machine *m = v->s->m;
    struct kvm_run *run = v->run;
    unsigned size = run->io.size;
    uint64_t bytes = (uint64_t)size * run->io.count;

    if ((size != 1 && size != 2 && size != 4) ||
        run->io.data_offset + bytes > v->s->run_size) {
        log_guest_error(&v->rl_io, "vCPU %u: port 0x%x: unsupported I/O of %u x %u bytes",
                        v->index, run->io.port, run->io.count, size);
        return;
    }
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        uint64_t val = 0;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            memcpy(&val, data, size);
            io_space_write(m->pio, run->io.port, size, val);
        } else {
            if (!io_space_read(m->pio, run->io.port, size, &val)) {
                val = all_ones(size);
            }
            memcpy(data, &val, size);
        }
    }
}

static void mmio_access(Machine *m, uint64_t addr, uint8_t *data, unsigned len,
                        bool is_write)
{
    uint64_t val = 0;
    if (is_write) {
        memcpy(&val, data, len);
        io_space_write(m->mmio, addr, len, val);
    } else {
        if (!io_space_read(m->mmio, addr, len, &val)) {
            val = all_ones(len);
        }
        memcpy(data, &val, len);
    }
}

static void handle_mmio(KvmVcpu *v)
{
    Machine *m = v->s->m;
    struct kvm_run *run = v->run;
    uint64_t addr = run->mmio.phys_addr;
    unsigned len = run->mmio.len;

    if (len == 0 || len > sizeof(run->mmio.data)) {
        log_guest_error(&v->rl_mmio, "vCPU %u: MMIO at 0x%" G_GINT64_MODIFIER "x: bad "
                        "length %u", v->index, (guint64)addr, len);
        return;
    }
    if (guest_mem_is_ram(m->mem, addr, len)) {
        /* RAM KVM has no slot for (or read-only): serve it from guest memory. */
        if (run->mmio.is_write) {
            guest_mem_write(m->mem, addr, run->mmio.data, len);
        } else {
            guest_mem_read(m->mem, addr, run->mmio.data, len);
        }
        return;
    }
    if (len == 1 || len == 2 || len == 4 || len == 8) {
        mmio_access(m, addr, run->mmio.data, len, run->mmio.is_write);
    } else {
        for (unsigned i = 0; i < len; i++) {
            mmio_access(m, addr + i, run->mmio.data + i, 1, run->mmio.is_write);
        }
    }
}

static const char *internal_error_name(uint32_t suberror)
{
    switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
        return "emulation failure";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
        return "simultaneous exceptions";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
        return "failure delivering an event";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
        return "unexpected exit reason";
    default:
        return "unknown suberror";
    }
}

/* Reports why the vCPU cannot continue and asks the main thread to stop the VM. */
static void vcpu_fail(KvmVcpu *v, const char *what)
{
    kvm_vcpu_report_failure(v, what, stderr);
    machine_request_stop(v->s->m, RUN_STATE_INTERNAL_ERROR);
}

/* A guest that asked for reset, power-off or S3 through an I/O or MMIO write goes no
 * further than that write (QEMU's cpu_stop_current).  Running on would execute what the
 * guest placed after the request as a fallback: SeaBIOS follows its reset writes with a
 * deliberate triple fault, which some hosts report as an emulation failure instead. */
static bool guest_asked_to_halt(Machine *m)
{
    /* A panic reported through a device (pvpanic) stops its vCPU at once, as QEMU's. */
    return (g_atomic_int_get(&m->stop_requested) &
            machine_stop_bit(RUN_STATE_GUEST_PANICKED)) ||
           g_atomic_int_get(&m->suspend_requested) != 0 ||
           g_atomic_int_get(&m->reset_requested) != 0 ||
           g_atomic_int_get(&m->shutdown_requested) != 0;
}

/* Returns true when the vCPU must stay parked until the next reset. */
static bool handle_exit(KvmVcpu *v)
{
    Machine *m = v->s->m;
    struct kvm_run *run = v->run;
    g_autofree char *what = NULL;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(v);
        return guest_asked_to_halt(m);
    case KVM_EXIT_MMIO:
        handle_mmio(v);
        return guest_asked_to_halt(m);
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return false;
    case KVM_EXIT_IOAPIC_EOI:
        /* kernel-irqchip=split: a LAPIC EOI'd a level vector the IOAPIC sent (VM lock
         * held by the caller, as for every exit). */
        ioapic_eoi(m->ioapic, run->eoi.vector);
        return false;
    case KVM_EXIT_SHUTDOWN:
        log_guest_error(&v->rl_exit, "vCPU %u: triple fault, resetting the machine",
                        v->index);
        machine_request_reset(m, SHUTDOWN_CAUSE_SUBSYSTEM_RESET);
        return true;
    case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
            machine_request_shutdown(m, SHUTDOWN_CAUSE_GUEST_SHUTDOWN, 0);
            return true;
        case KVM_SYSTEM_EVENT_RESET:
            machine_request_reset(m, SHUTDOWN_CAUSE_GUEST_RESET);
            return true;
        case KVM_SYSTEM_EVENT_CRASH:
            /* panic=none: the vCPU runs on, as QEMU's. */
            return machine_guest_panicked(m);
        default:
            log_guest_error(&v->rl_exit, "vCPU %u: system event %u ignored", v->index,
                            run->system_event.type);
            return false;
        }
    case KVM_EXIT_INTERNAL_ERROR: {
        GString *str = g_string_new(NULL);
        g_string_printf(str, "KVM internal error: %s (suberror %u)",
                        internal_error_name(run->internal.suberror), run->internal.suberror);
        for (uint32_t i = 0; i < MIN(run->internal.ndata, G_N_ELEMENTS(run->internal.data));
             i++) {
            g_string_append_printf(str, "%s0x%" G_GINT64_MODIFIER "x", i ? " " : ", data ",
                                   (guint64)run->internal.data[i]);
        }
        what = g_string_free(str, FALSE);
        break;
    }
    case KVM_EXIT_FAIL_ENTRY:
        what = g_strdup_printf("KVM entry failure (hardware reason 0x%" G_GINT64_MODIFIER
                               "x)", (guint64)run->fail_entry.hardware_entry_failure_reason);
        break;
    case KVM_EXIT_HLT:
        what = g_strdup("HLT exit although the in-kernel irqchip handles HLT");
        break;
    default:
        what = g_strdup_printf("unexpected KVM exit reason %u", run->exit_reason);
        break;
    }
    vcpu_fail(v, what);
    return true;
}

/* ---- the vCPU thread and run control ---- */

static void *vcpu_thread(void *opaque)
{
    KvmVcpu *v = opaque;
    KvmState *s = v->s;
    Machine *m = s->m;
    char name[16];

    snprintf(name, sizeof(name), "CPU %u/KVM", v->index);
    pthread_setname_np(pthread_self(), name);
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, SIG_KICK);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

    g_mutex_lock(&s->ctl_lock);
    for (;;) {
        while (!s->quit && (!s->running || v->stopped || v->hold)) {
            if (!v->parked) {
                v->parked = true;
                g_cond_broadcast(&s->ctl_cond);
            }
            g_cond_wait(&s->ctl_cond, &s->ctl_lock);
        }
        if (s->quit) {
            break;
        }
        v->parked = false;
        v->in_run = true;
        v->run->immediate_exit = 0;
        g_mutex_unlock(&s->ctl_lock);

        int r = ioctl(v->fd, KVM_RUN, 0);
        int err = errno;

        g_mutex_lock(&s->ctl_lock);
        v->in_run = false;
        if (v->hold) {
            g_cond_broadcast(&s->ctl_cond); /* a register reader waits for this */
        }
        g_mutex_unlock(&s->ctl_lock);

        bool stop;
        if (r < 0) {
            /* EINTR: kicked (the loop re-checks the requests).  EAGAIN: an AP just
             * received INIT; KVM wants KVM_RUN again. */
            stop = err != EINTR && err != EAGAIN;
            if (stop) {
                g_autofree char *what = g_strdup_printf("KVM_RUN failed: %s", g_strerror(err));
                machine_lock(m);
                vcpu_fail(v, what);
                machine_unlock(m);
            }
        } else if (v->run->exit_reason == KVM_EXIT_DIRTY_RING_FULL) {
            /* Handled without the VM lock (harvesting may take a while and needs no
             * device state): free the ring, then run on. */
            kvm_dirty_ring_full(v);
            stop = false;
        } else {
            machine_lock(m);
            stop = handle_exit(v);
            machine_unlock(m);
        }

        g_mutex_lock(&s->ctl_lock);
        if (stop) {
            v->stopped = true;
        }
    }
    v->parked = true;
    g_cond_broadcast(&s->ctl_cond);
    g_mutex_unlock(&s->ctl_lock);
    return NULL;
}

bool kvm_vcpu_start_thread(KvmVcpu *v, Error **errp)
{
    static gsize handler_installed;
    if (g_once_init_enter(&handler_installed)) {
        struct sigaction sa = { .sa_handler = kvm_kick_handler };
        sigemptyset(&sa.sa_mask);
        sigaction(SIG_KICK, &sa, NULL);
        g_once_init_leave(&handler_installed, 1);
    }

    /* The thread starts with every signal blocked (process signals belong to the main
     * loop) and unblocks only its kick. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&v->thread, NULL, vcpu_thread, v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        error_setg_errno(errp, err, "vCPU %u: cannot create its thread", v->index);
        return false;
    }
    v->thread_started = true;
    return true;
}

/* ctl_lock held.  Makes v leave KVM_RUN soon if it is there or about to enter it. */
static void vcpu_kick_locked(KvmVcpu *v)
{
    v->run->immediate_exit = 1;
    if (v->in_run && v->thread_started) {
        pthread_kill(v->thread, SIG_KICK);
    }
}

void kvm_vcpus_resume(KvmState *s)
{
    g_mutex_lock(&s->ctl_lock);
    s->running = true;
    g_cond_broadcast(&s->ctl_cond);
    g_mutex_unlock(&s->ctl_lock);
}

void kvm_vcpus_pause(KvmState *s)
{
    g_mutex_lock(&s->ctl_lock);
    s->running = false;
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpus[i].run) {
            vcpu_kick_locked(&s->vcpus[i]);
        }
    }
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        KvmVcpu *v = &s->vcpus[i];
        while (v->thread_started && !v->parked) {
            g_cond_wait(&s->ctl_cond, &s->ctl_lock);
        }
    }
    g_mutex_unlock(&s->ctl_lock);
}

void kvm_vcpus_quit(KvmState *s)
{
    g_mutex_lock(&s->ctl_lock);
    s->quit = true;
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpus[i].run) {
            vcpu_kick_locked(&s->vcpus[i]);
        }
    }
    g_cond_broadcast(&s->ctl_cond);
    g_mutex_unlock(&s->ctl_lock);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpus[i].thread_started) {
            pthread_join(s->vcpus[i].thread, NULL);
            s->vcpus[i].thread_started = false;
        }
    }
}

/* Runs fn on v's registers without racing its KVM_RUN: holds the vCPU outside the guest
 * for the duration.  Works from any thread, with or without the VM lock (a vCPU waiting
 * for the VM lock is already outside KVM_RUN). */
void kvm_vcpu_with_registers(KvmVcpu *v, void (*fn)(KvmVcpu *v, void *opaque), void *opaque)
{
    KvmState *s = v->s;
    bool self = v->thread_started && pthread_equal(pthread_self(), v->thread);

    g_mutex_lock(&s->ctl_lock);
    v->hold++;
    if (!self) {
        vcpu_kick_locked(v);
        while (v->in_run) {
            g_cond_wait(&s->ctl_cond, &s->ctl_lock);
        }
    }
    g_mutex_unlock(&s->ctl_lock);

    fn(v, opaque);

    g_mutex_lock(&s->ctl_lock);
    v->hold--;
    g_cond_broadcast(&s->ctl_cond);
    g_mutex_unlock(&s->ctl_lock);
}

/* ctl state for tests and the reset path. */
void kvm_vcpus_clear_stopped(KvmState *s)
{
    g_mutex_lock(&s->ctl_lock);
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        s->vcpus[i].stopped = false;
    }
    g_cond_broadcast(&s->ctl_cond);
    g_mutex_unlock(&s->ctl_lock);
}
