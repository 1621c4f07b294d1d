/* The hand-built KVM test machine (kvm-test-util.h). */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>
#include "kvm-test-util.h"

const char *kvm_test_unusable_reason(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return "no usable /dev/kvm";
    }
    int vm = ioctl(fd, KVM_CREATE_VM, 0);
    close(fd);
    if (vm < 0) {
        return "/dev/kvm cannot create a VM here";
    }
    close(vm);
    return NULL;
}

Machine *kvm_test_machine_new(unsigned cpus, uint64_t ram_size, uint16_t port,
                              const IoOps *ops, void *opaque)
{
    Error *err = NULL;
    Machine *m = kvm_test_machine_try_new(cpus, ram_size, port, ops, opaque, 0, &err);
    if (!m) {
        g_error("kvm init: %s", error_get_pretty(err));
    }
    return m;
}

static void machine_free_parts(Machine *m)
{
    io_space_free(m->pio);
    io_space_free(m->mmio);
    guest_mem_free(m->mem);
    g_free(m->cfg);
    g_mutex_clear(&m->lock);
    g_free(m);
}

Machine *kvm_test_machine_try_new(unsigned cpus, uint64_t ram_size, uint16_t port,
                                  const IoOps *ops, void *opaque, uint32_t dirty_ring_size,
                                  Error **errp)
{
    Machine *m = g_new0(Machine, 1);
    Error *err = NULL;

    g_mutex_init(&m->lock);
    m->ctx = g_main_context_default();
    m->cfg = g_new0(MachineConfig, 1);
    m->cfg->ram_size = ram_size;
    m->cfg->smp_cpus = m->cfg->smp_maxcpus = m->cfg->smp_sockets = cpus;
    m->cfg->smp_dies = m->cfg->smp_cores = m->cfg->smp_threads = 1;
    m->cfg->kvm_dirty_ring_size = dirty_ring_size;
    m->mem = guest_mem_new(ram_size, &err);
    g_assert_null(err);
    g_assert_true(guest_mem_add_region(m->mem, 0, ram_size, 0, &err));
    m->pio = io_space_new("pio");
    m->mmio = io_space_new("mmio");
    g_assert_true(io_space_add(m->pio, port, 0x10, ops, opaque, "test", &err));
    m->accel = &kvm_accel_ops;
    if (!kvm_accel_ops.init(m, errp)) {
        machine_free_parts(m);
        return NULL;
    }
    return m;
}

void kvm_test_machine_free(Machine *m)
{
    kvm_accel_ops.pause(m);
    kvm_accel_ops.destroy(m);
    g_assert_null(m->accel_state);
    machine_free_parts(m);
}

void kvm_test_run(Machine *m, bool stop_on_reset, gint64 wait_us)
{
    gint64 deadline = g_get_monotonic_time() + wait_us;
    kvm_accel_ops.resume(m);
    while (!g_atomic_int_get(&m->shutdown_requested) && !g_atomic_int_get(&m->stop_requested) &&
           !(stop_on_reset && g_atomic_int_get(&m->reset_requested))) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    kvm_accel_ops.pause(m);
}
