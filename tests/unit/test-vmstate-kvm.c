/*
 * KVM state through vmstate_save_all / vmstate_load_all: a tiny guest runs on VM A until
 * it reads a port, A's whole state is saved and loaded into a fresh VM B (same RAM
 * contents), and B must continue exactly where A stopped: the value A's port returned is
 * in RAX (the pending I/O was completed before the save), registers, LAPIC, PIT, MSRs and
 * the clock carried over.  Then the error paths: a different vCPU count, a damaged blob.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <glib.h>
#include "accel/accel.h"
#include "accel/kvm/kvm-internal.h"
#include "kvm-test-util.h"
#include "sen/vmstate.h"

#define RAM_SIZE (2 * 1024 * 1024)
#define CODE_ADDR 0x1000
#define DATA_ADDR 0x3000
#define GDT_ADDR 0x500
#define TEST_PORT 0x10       /* +0: exit with the value; +1: record; +6: read (stops A) */
#define WAIT_US (30 * G_USEC_PER_SEC)
#define MSR_IA32_SYSENTER_ESP 0x175

typedef struct TestVm {
    Machine *m;
    GArray *writes;        /* uint32_t values written to TEST_PORT + 1, VM lock */
    uint8_t in_value;      /* what TEST_PORT + 6 reads as */
    bool stop_on_in;
} TestVm;

static uint64_t tport_read(void *opaque, uint64_t off, unsigned size)
{
    TestVm *t = opaque;
    if (off == 6 && t->stop_on_in) {
        /* Keep the vCPU inside this exit until the test has paused the VM, so the IN is
         * still pending (not yet completed by KVM) when the state is saved. */
        machine_request_stop(t->m, RUN_STATE_PAUSED);
        KvmState *s = kvm_state(t->m);
        for (;;) {
            g_mutex_lock(&s->ctl_lock);
            bool running = s->running;
            g_mutex_unlock(&s->ctl_lock);
            if (!running) {
                break;
            }
            g_usleep(100);
        }
    }
    return off == 6 ? t->in_value : 0;
}

static void tport_write(void *opaque, uint64_t off, unsigned size, uint64_t value)
{
    TestVm *t = opaque;
    if (off == 0) {
        machine_request_shutdown(t->m, SHUTDOWN_CAUSE_GUEST_SHUTDOWN, (int)value);
    } else {
        uint32_t v = (uint32_t)value;
        g_array_append_val(t->writes, v);
    }
}

static const IoOps tport_ops = { .read = tport_read, .write = tport_write };

static TestVm *tvm_new(unsigned cpus, uint8_t in_value)
{
    TestVm *t = g_new0(TestVm, 1);
    Error *err = NULL;

    t->in_value = in_value;
    t->writes = g_array_new(FALSE, TRUE, sizeof(uint32_t));
    t->m = kvm_test_machine_new(cpus, RAM_SIZE, TEST_PORT, &tport_ops, t);
    CpuBootState b = {
        .mode = CPU_BOOT_PROT32, .rip = CODE_ADDR, .rsp = 0x8000, .rbx = 0x0b0b0b0b,
        .gdt_base = GDT_ADDR, .gdt_limit = 23, .cs = 0x08, .ds = 0x10,
    };
    uint64_t gdt[3] = { 0, 0x00cf9a000000ffffULL, 0x00cf92000000ffffULL };
    g_assert_true(guest_mem_write(t->m->mem, GDT_ADDR, gdt, sizeof(gdt)));
    if (!kvm_accel_ops.reset_cpus(t->m, &b, &err)) {
        g_error("reset_cpus: %s", error_get_pretty(err));
    }
    return t;
}

static void tvm_free(TestVm *t)
{
    kvm_test_machine_free(t->m);
    g_array_free(t->writes, TRUE);
    g_free(t);
}

/* Runs until the guest asks for shutdown or stop, then pauses. */
static void tvm_run(TestVm *t)
{
    kvm_test_run(t->m, false, WAIT_US);
}

/*
 * 32-bit flat: eax = 0x12345678, ecx = 0x9abcdef0; in al, (TEST_PORT+6)  <- A stops here
 * then reports eax, ecx, ebx and [DATA_ADDR] to TEST_PORT+1 and exits with 3.
 */
static const uint8_t code[] = {
    0xb8, 0x78, 0x56, 0x34, 0x12,   /* mov eax, 0x12345678 */
    0xb9, 0xf0, 0xde, 0xbc, 0x9a,   /* mov ecx, 0x9abcdef0 */
    0x66, 0xba, 0x16, 0x00,         /* mov dx, 0x16 */
    0xec,                           /* in al, dx */
    0x66, 0xba, 0x11, 0x00,         /* mov dx, 0x11 */
    0xef,                           /* out dx, eax */
    0x89, 0xc8,                     /* mov eax, ecx */
    0xef,                           /* out dx, eax */
    0x89, 0xd8,                     /* mov eax, ebx */
    0xef,                           /* out dx, eax */
    0xa1, 0x00, 0x30, 0x00, 0x00,   /* mov eax, [0x3000] */
    0xef,                           /* out dx, eax */
    0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
    0xb0, 0x03,                     /* mov al, 3 */
    0xee,                           /* out dx, al */
    0xf4, 0xeb, 0xfd,               /* hlt; jmp */
};

static void copy_ram(TestVm *from, TestVm *to)
{
    g_autofree uint8_t *buf = g_malloc(RAM_SIZE);
    g_assert_true(guest_mem_read(from->m->mem, 0, buf, RAM_SIZE));
    g_assert_true(guest_mem_write(to->m->mem, 0, buf, RAM_SIZE));
}

static uint64_t get_msr(TestVm *t, unsigned cpu, uint32_t index)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e;
    } one = { .h.nmsrs = 1, .e.index = index };
    g_assert_cmpint(ioctl(kvm_state(t->m)->vcpus[cpu].fd, KVM_GET_MSRS, &one), ==, 1);
    return one.e.data;
}

static void set_msr(TestVm *t, unsigned cpu, uint32_t index, uint64_t value)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e;
    } one = { .h.nmsrs = 1, .e.index = index, .e.data = value };
    g_assert_cmpint(ioctl(kvm_state(t->m)->vcpus[cpu].fd, KVM_SET_MSRS, &one), ==, 1);
}

/* A with its guest stopped at the IN, plus state the guest does not touch itself. */
static TestVm *prepare_source(unsigned cpus)
{
    TestVm *a = tvm_new(cpus, 0x40);
    a->stop_on_in = true;
    g_assert_true(guest_mem_write(a->m->mem, CODE_ADDR, code, sizeof(code)));
    uint32_t data = 0xfeedf00d;
    g_assert_true(guest_mem_write(a->m->mem, DATA_ADDR, &data, sizeof(data)));
    tvm_run(a);
    g_assert_cmpuint(a->m->stop_requested, ==, machine_stop_bit(RUN_STATE_PAUSED));
    g_assert_cmpuint(a->writes->len, ==, 0);

    KvmState *s = kvm_state(a->m);
    set_msr(a, cpus - 1, MSR_IA32_SYSENTER_ESP, 0x5e5e5e5e);
    struct kvm_lapic_state lapic;
    g_assert_cmpint(ioctl(s->vcpus[0].fd, KVM_GET_LAPIC, &lapic), ==, 0);
    lapic.regs[0x80] = 0x20;  /* TPR */
    g_assert_cmpint(ioctl(s->vcpus[0].fd, KVM_SET_LAPIC, &lapic), ==, 0);
    struct kvm_pit_state2 pit;
    g_assert_cmpint(ioctl(s->vm_fd, KVM_GET_PIT2, &pit), ==, 0);
    pit.channels[2].count = 0x1234;
    pit.channels[2].mode = 2;
    g_assert_cmpint(ioctl(s->vm_fd, KVM_SET_PIT2, &pit), ==, 0);
    return a;
}

static void test_kvm_round_trip(void)
{
    const char *why = kvm_test_unusable_reason();
    if (why) {
        g_test_skip(why);
        return;
    }
    TestVm *a = prepare_source(2);
    Error *err = NULL;
    /* Read before the save: the saved values can only be later. */
    struct kvm_clock_data clock_a = { 0 };
    g_assert_cmpint(ioctl(kvm_state(a->m)->vm_fd, KVM_GET_CLOCK, &clock_a), ==, 0);
    uint64_t tsc_a = get_msr(a, 0, 0x10);
    g_autoptr(GByteArray) blob = g_byte_array_new();
    g_assert_true(vmstate_save_all(a->m, blob, &err));
    g_assert_null(err);

    TestVm *b = tvm_new(2, 0x80);
    copy_ram(a, b);
    tvm_free(a);
    if (!vmstate_load_all(b->m, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    KvmState *s = kvm_state(b->m);
    g_assert_cmphex(get_msr(b, 1, MSR_IA32_SYSENTER_ESP), ==, 0x5e5e5e5e);
    g_assert_cmpuint(get_msr(b, 0, 0x10), >=, tsc_a);
    struct kvm_lapic_state lapic;
    g_assert_cmpint(ioctl(s->vcpus[0].fd, KVM_GET_LAPIC, &lapic), ==, 0);
    g_assert_cmphex((uint8_t)lapic.regs[0x80], ==, 0x20);
    struct kvm_pit_state2 pit;
    g_assert_cmpint(ioctl(s->vm_fd, KVM_GET_PIT2, &pit), ==, 0);
    g_assert_cmphex(pit.channels[2].count, ==, 0x1234);
    g_assert_cmpuint(pit.channels[2].mode, ==, 2);
    struct kvm_clock_data clock_b = { 0 };
    g_assert_cmpint(ioctl(s->vm_fd, KVM_GET_CLOCK, &clock_b), ==, 0);
    g_assert_cmpuint(clock_b.clock, >=, clock_a.clock);
    struct kvm_mp_state mp;
    g_assert_cmpint(ioctl(s->vcpus[1].fd, KVM_GET_MP_STATE, &mp), ==, 0);
    g_assert_cmpuint(mp.mp_state, ==, KVM_MP_STATE_UNINITIALIZED);

    tvm_run(b);
    g_assert_cmpint(b->m->shutdown_requested, ==, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    g_assert_cmpint(b->m->exit_status, ==, 3);
    g_assert_cmpuint(b->writes->len, ==, 4);
    /* 0x40 is what A's port returned: B did not execute the IN again (it would read
     * 0x80) and did not lose its result. */
    g_assert_cmphex(g_array_index(b->writes, uint32_t, 0), ==, 0x12345640);
    g_assert_cmphex(g_array_index(b->writes, uint32_t, 1), ==, 0x9abcdef0);
    g_assert_cmphex(g_array_index(b->writes, uint32_t, 2), ==, 0x0b0b0b0b);
    g_assert_cmphex(g_array_index(b->writes, uint32_t, 3), ==, 0xfeedf00d);
    tvm_free(b);
}

static void test_kvm_mismatch(void)
{
    const char *why = kvm_test_unusable_reason();
    if (why) {
        g_test_skip(why);
        return;
    }
    TestVm *a = prepare_source(1);
    g_autoptr(GByteArray) blob = g_byte_array_new();
    g_assert_true(vmstate_save_all(a->m, blob, NULL));
    tvm_free(a);

    TestVm *b = tvm_new(2, 0x80);
    Error *err = NULL;
    g_assert_false(vmstate_load_all(b->m, blob->data, blob->len, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "device state: the source has 1 vCPUs, this machine 2 (-smp must match)");
    error_free(err);
    err = NULL;

    /* Truncated: refused before anything is applied. */
    g_assert_false(vmstate_load_all(b->m, blob->data, blob->len / 2, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "checksum mismatch"));
    error_free(err);
    tvm_free(b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    const char *why = kvm_test_unusable_reason();
    if (why) {
        printf("SKIP: %s\n", why);
        return 77; /* meson's SKIP: every test here needs KVM */
    }
    g_test_add_func("/vmstate-kvm/round-trip", test_kvm_round_trip);
    g_test_add_func("/vmstate-kvm/mismatch", test_kvm_mismatch);
    return g_test_run();
}
