/*
 * The KVM accelerator: CPUID topology and page-table walking as pure functions (no KVM),
 * then tiny hand-assembled guests run on real KVM through kvm_accel_ops with a Machine
 * built by hand.  Guest CPL0 code may be emulated (~1M instructions/s), so every blob is
 * a handful of instructions.
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

#define RAM_SIZE (2 * 1024 * 1024)
#define CODE_ADDR 0x1000
#define GDT_ADDR 0x500
#define TEST_PORT 0x10       /* 0x10..0x1f: our test device; writing 0x10 ends the test */
#define WAIT_US (30 * G_USEC_PER_SEC)

/* ---- pure functions ---- */

static void test_topo_width(void)
{
    g_assert_cmpuint(kvm_topo_width(0), ==, 0);
    g_assert_cmpuint(kvm_topo_width(1), ==, 0);
    g_assert_cmpuint(kvm_topo_width(2), ==, 1);
    g_assert_cmpuint(kvm_topo_width(3), ==, 2);
    g_assert_cmpuint(kvm_topo_width(4), ==, 2);
    g_assert_cmpuint(kvm_topo_width(5), ==, 3);
    g_assert_cmpuint(kvm_topo_width(256), ==, 8);

    KvmTopology t = { .sockets = 2, .dies = 1, .cores = 3, .threads = 2 };
    g_assert_cmpuint(kvm_topo_core_shift(&t), ==, 1);
    g_assert_cmpuint(kvm_topo_die_shift(&t), ==, 3);
    g_assert_cmpuint(kvm_topo_pkg_shift(&t), ==, 3);
    KvmTopology d = { .sockets = 1, .dies = 2, .cores = 4, .threads = 1 };
    g_assert_cmpuint(kvm_topo_core_shift(&d), ==, 0);
    g_assert_cmpuint(kvm_topo_die_shift(&d), ==, 2);
    g_assert_cmpuint(kvm_topo_pkg_shift(&d), ==, 3);
}

static void test_topo_from_config(void)
{
    MachineConfig cfg = { .smp_cpus = 6 };
    KvmTopology t;
    kvm_topo_from_config(&t, &cfg);
    g_assert_cmpuint(t.sockets, ==, 6);
    g_assert_cmpuint(t.dies * t.cores * t.threads, ==, 1);

    cfg = (MachineConfig){ .smp_cpus = 4, .smp_maxcpus = 8, .smp_sockets = 1,
                           .smp_cores = 2, .smp_threads = 2 };
    kvm_topo_from_config(&t, &cfg);
    g_assert_cmpuint(t.sockets, ==, 2); /* repaired: 1 socket cannot hold 8 */
    g_assert_cmpuint(t.dies, ==, 1);
    g_assert_cmpuint(t.cores, ==, 2);
    g_assert_cmpuint(t.threads, ==, 2);
}

/* A host-like supported table: enough leaves to see every rewrite. */
static struct kvm_cpuid_entry2 *fake_supported(unsigned *n)
{
    static const struct kvm_cpuid_entry2 e[] = {
        { .function = 0, .eax = 0x1f, .ebx = 0x756e6547 },
        { .function = 1, .eax = 0x806f2, .ebx = 0x00020800, .ecx = 0x1, .edx = 1u << 28 },
        { .function = 4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
          .eax = 0xfc000121 },
        { .function = 4, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
          .eax = 0xfc01c163 },
        { .function = 4, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0 },
        { .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
          .edx = (1u << 29) | 1 },
        { .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
          .eax = 9, .ebx = 99, .edx = 77 },
        { .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
          .eax = 9, .ebx = 99, .edx = 77 },
        { .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
        { .function = 0x40000001, .eax = 0x01007efb | (1u << 15) },
    };
    *n = G_N_ELEMENTS(e);
    struct kvm_cpuid_entry2 *copy = g_malloc(sizeof(e));
    memcpy(copy, e, sizeof(e));
    return copy;
}

static void test_cpuid_topology(void)
{
    unsigned n, out_n;
    g_autofree struct kvm_cpuid_entry2 *sup = fake_supported(&n);
    KvmTopology t = { .sockets = 2, .dies = 1, .cores = 3, .threads = 2 };
    g_autofree struct kvm_cpuid_entry2 *e = kvm_cpuid_build(sup, n, &t, 5, &out_n);
    struct kvm_cpuid_entry2 *l;

    l = kvm_cpuid_find(e, out_n, 1, 0);
    g_assert_nonnull(l);
    g_assert_cmphex(l->ebx >> 24, ==, 5);             /* initial APIC id */
    g_assert_cmphex((l->ebx >> 16) & 0xff, ==, 8);    /* 2^3 addressable ids */
    g_assert_cmphex(l->ebx & 0xffff, ==, 0x0800);     /* CLFLUSH size etc. kept */
    g_assert_true(l->edx & (1u << 28));               /* HTT */
    g_assert_true(l->ecx & (1u << 31));               /* hypervisor */
    g_assert_true(l->ecx & 1);

    l = kvm_cpuid_find(e, out_n, 4, 0);               /* L1: shared by the SMT siblings */
    g_assert_cmpuint((l->eax >> 14) & 0xfff, ==, 1);
    g_assert_cmpuint(l->eax >> 26, ==, 3);            /* 2^(3-1) core ids - 1 */
    g_assert_cmphex(l->eax & 0x3fff, ==, 0x121);
    l = kvm_cpuid_find(e, out_n, 4, 1);               /* L3: shared by the package */
    g_assert_cmpuint((l->eax >> 14) & 0xfff, ==, 7);
    g_assert_cmpuint(kvm_cpuid_find(e, out_n, 4, 2)->eax, ==, 0);

    l = kvm_cpuid_find(e, out_n, 7, 0);
    g_assert_cmphex(l->edx, ==, 1);                   /* ARCH_CAPABILITIES hidden */

    l = kvm_cpuid_find(e, out_n, 0xb, 0);
    g_assert_cmpuint(l->eax, ==, 1);
    g_assert_cmpuint(l->ebx, ==, 2);
    g_assert_cmphex(l->ecx, ==, 0x100);
    g_assert_cmpuint(l->edx, ==, 5);
    l = kvm_cpuid_find(e, out_n, 0xb, 1);
    g_assert_cmpuint(l->eax, ==, 3);
    g_assert_cmpuint(l->ebx, ==, 6);
    g_assert_cmphex(l->ecx, ==, 0x201);
    l = kvm_cpuid_find(e, out_n, 0xb, 2);
    g_assert_cmphex(l->ecx, ==, 0x2);                 /* type 0: end of levels */
    g_assert_cmpuint(l->eax | l->ebx, ==, 0);

    /* 0x1F exists (max leaf 0x1f) but has no die level with one die. */
    l = kvm_cpuid_find(e, out_n, 0x1f, 1);
    g_assert_cmphex(l->ecx, ==, 0x201);
    g_assert_cmphex(kvm_cpuid_find(e, out_n, 0x1f, 2)->ecx, ==, 0x2);

    l = kvm_cpuid_find(e, out_n, 0x40000000, 0);
    g_assert_cmphex(l->ebx, ==, 0x4b4d564b);          /* "KVMK" signature kept */
    l = kvm_cpuid_find(e, out_n, 0x40000001, 0);
    g_assert_cmphex(l->eax, ==, 0x01007efb);          /* kvmclock etc. kept */
}

static void test_cpuid_dies_and_single(void)
{
    unsigned n, out_n;
    g_autofree struct kvm_cpuid_entry2 *sup = fake_supported(&n);
    KvmTopology t = { .sockets = 1, .dies = 2, .cores = 2, .threads = 2 };
    g_autofree struct kvm_cpuid_entry2 *e = kvm_cpuid_build(sup, n, &t, 6, &out_n);

    struct kvm_cpuid_entry2 *l = kvm_cpuid_find(e, out_n, 0x1f, 0);
    g_assert_cmpuint(l->eax, ==, 1);
    g_assert_cmpuint(l->ebx, ==, 2);
    l = kvm_cpuid_find(e, out_n, 0x1f, 1);
    g_assert_cmpuint(l->eax, ==, 2);
    g_assert_cmpuint(l->ebx, ==, 4);
    g_assert_cmphex(l->ecx, ==, 0x201);
    l = kvm_cpuid_find(e, out_n, 0x1f, 2);
    g_assert_cmpuint(l->eax, ==, 3);
    g_assert_cmpuint(l->ebx, ==, 8);
    g_assert_cmphex(l->ecx, ==, 0x502);               /* die level */
    g_assert_cmphex(kvm_cpuid_find(e, out_n, 0x1f, 3)->ecx, ==, 0x3);
    g_assert_cmpuint(kvm_cpuid_find(e, out_n, 0x1f, 3)->edx, ==, 6);

    KvmTopology one = { 1, 1, 1, 1 };
    g_autofree struct kvm_cpuid_entry2 *e1 = kvm_cpuid_build(sup, n, &one, 0, &out_n);
    l = kvm_cpuid_find(e1, out_n, 1, 0);
    g_assert_false(l->edx & (1u << 28));
    g_assert_cmphex((l->ebx >> 16) & 0xff, ==, 1);
    g_assert_cmpuint(kvm_cpuid_find(e1, out_n, 4, 1)->eax >> 26, ==, 0);
}

static void test_msr_list_remove(void)
{
    uint32_t l[] = { 0x8b, 0x10a, 0x345, 0x10a, 0xce };
    g_assert_cmpuint(kvm_msr_list_remove(l, 5, 0x10a), ==, 3);
    g_assert_cmphex(l[0], ==, 0x8b);
    g_assert_cmphex(l[1], ==, 0x345);
    g_assert_cmphex(l[2], ==, 0xce);
    g_assert_cmpuint(kvm_msr_list_remove(l, 3, 0x10a), ==, 3);
}

static void put64(GuestMemory *gm, uint64_t gpa, uint64_t v)
{
    g_assert_true(guest_mem_write(gm, gpa, &v, 8));
}

static void put32(GuestMemory *gm, uint64_t gpa, uint32_t v)
{
    g_assert_true(guest_mem_write(gm, gpa, &v, 4));
}

/* Identity-maps the first 2 MiB with one large page, as the LONG64 guest below uses. */
static void build_long_mode_tables(GuestMemory *gm)
{
    put64(gm, 0x2000, 0x3000 | 3);      /* PML4[0] -> PDPT */
    put64(gm, 0x3000, 0x4000 | 3);      /* PDPT[0] -> PD */
    put64(gm, 0x4000, 0x0 | 0x83);      /* PD[0]: 2 MiB page at 0 */
}

static void test_translate(void)
{
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new(RAM_SIZE, &err);
    g_assert_null(err);
    g_assert_true(guest_mem_add_region(gm, 0, RAM_SIZE, 0, &err));
    uint64_t pa;
    const uint64_t PG = 1ULL << 31, PAE = 1 << 5, PSE = 1 << 4, LMA = 1 << 10;

    /* Paging off: identity, 32-bit wrap. */
    g_assert_true(kvm_translate(gm, 1, 0, 0, 0, 0x100001234ULL, &pa));
    g_assert_cmphex(pa, ==, 0x1234);

    /* 4-level: a 2 MiB page and a 4 KiB page. */
    build_long_mode_tables(gm);
    put64(gm, 0x4008, 0x5000 | 3);      /* PD[1] -> PT */
    put64(gm, 0x5000 + 3 * 8, 0x7000 | 3);
    g_assert_true(kvm_translate(gm, PG | 1, 0x2000, PAE, LMA | (1 << 8), 0x1234, &pa));
    g_assert_cmphex(pa, ==, 0x1234);
    g_assert_true(kvm_translate(gm, PG | 1, 0x2000, PAE, LMA, 0x203abc, &pa));
    g_assert_cmphex(pa, ==, 0x7abc);
    g_assert_false(kvm_translate(gm, PG | 1, 0x2000, PAE, LMA, 0x204000, &pa));
    g_assert_false(kvm_translate(gm, PG | 1, 0x2000, PAE, LMA, 0x40000000, &pa));
    /* Tables outside RAM: refused, not read. */
    g_assert_false(kvm_translate(gm, PG | 1, 0x7ffff000, PAE, LMA, 0x1000, &pa));
    put64(gm, 0x4010, 0x7fff0000ULL | 3); /* PD[2] -> PT beyond RAM */
    g_assert_false(kvm_translate(gm, PG | 1, 0x2000, PAE, LMA, 0x400000, &pa));

    /* 32-bit PAE: PDPTE -> PD -> PT. */
    put64(gm, 0x6000, 0x4000 | 1);      /* PDPT[0] -> the PD above */
    g_assert_true(kvm_translate(gm, PG | 1, 0x6000, PAE, 0, 0x203010, &pa));
    g_assert_cmphex(pa, ==, 0x7010);

    /* 32-bit non-PAE: a 4 MiB PSE page and a 4 KiB page. */
    put32(gm, 0x8000, 0x00400000 | 0x83);  /* PDE[0]: 4 MiB page at 4 MiB */
    put32(gm, 0x8004, 0x9000 | 3);         /* PDE[1] -> PT */
    put32(gm, 0x9000 + 2 * 4, 0xa000 | 3);
    g_assert_true(kvm_translate(gm, PG | 1, 0x8000, PSE, 0, 0x1234, &pa));
    g_assert_cmphex(pa, ==, 0x401234);
    g_assert_true(kvm_translate(gm, PG | 1, 0x8000, PSE, 0, 0x402010, &pa));
    g_assert_cmphex(pa, ==, 0xa010);
    guest_mem_free(gm);
}

/* ---- real KVM ---- */

typedef struct PortWrite {
    uint16_t port;
    uint8_t size;
    uint32_t value;
} PortWrite;

typedef struct TestVm {
    Machine *m;
    GArray *writes;      /* PortWrite, VM lock */
    uint8_t in_counter;  /* VM lock */
} TestVm;

static uint64_t tport_read(void *opaque, uint64_t off, unsigned size)
{
    TestVm *t = opaque;
    return off == 6 ? (uint64_t)(0x40 + t->in_counter++) : 0x5a;
}

static void tport_write(void *opaque, uint64_t off, unsigned size, uint64_t value)
{
    TestVm *t = opaque;
    if (off == 0) {
        machine_request_shutdown(t->m, SHUTDOWN_CAUSE_GUEST_SHUTDOWN, (int)value);
        return;
    }
    PortWrite w = { .port = TEST_PORT + off, .size = size, .value = value };
    g_array_append_val(t->writes, w);
}

static const IoOps tport_ops = { .read = tport_read, .write = tport_write };

/* dirty_ring: -accel kvm,dirty-ring-size (0 = off). */
static TestVm *tvm_new_ring(unsigned cpus, uint32_t dirty_ring)
{
    const char *why = kvm_test_unusable_reason();
    if (why) {
        g_test_skip(why);
        return NULL;
    }
    TestVm *t = g_new0(TestVm, 1);
    Error *err = NULL;
    t->writes = g_array_new(FALSE, TRUE, sizeof(PortWrite));
    t->m = kvm_test_machine_try_new(cpus, RAM_SIZE, TEST_PORT, &tport_ops, t, dirty_ring,
                                    &err);
    if (!t->m) {
        g_error("kvm init: %s", error_get_pretty(err));
    }
    return t;
}

static TestVm *tvm_new(unsigned cpus)
{
    return tvm_new_ring(cpus, 0);
}

static void tvm_free(TestVm *t)
{
    kvm_test_machine_free(t->m);
    g_array_free(t->writes, TRUE);
    g_free(t);
}

/* Flat 4 GiB code (32- or 64-bit) at 0x08 and data at 0x10. */
static void write_gdt(GuestMemory *gm, bool long64)
{
    put64(gm, GDT_ADDR, 0);
    put64(gm, GDT_ADDR + 8, long64 ? 0x00af9a000000ffffULL : 0x00cf9a000000ffffULL);
    put64(gm, GDT_ADDR + 16, 0x00cf92000000ffffULL);
}

static CpuBootState boot_state(CpuBootMode mode)
{
    return (CpuBootState){
        .mode = mode, .rip = CODE_ADDR, .rsp = 0x8000, .rbx = 0xcafe0001,
        .gdt_base = GDT_ADDR, .gdt_limit = 23, .cs = 0x08, .ds = 0x10,
        .cr3 = mode == CPU_BOOT_LONG64 ? 0x2000 : 0,
    };
}

static void tvm_reset(TestVm *t, const CpuBootState *bsp)
{
    Error *err = NULL;
    if (!kvm_accel_ops.reset_cpus(t->m, bsp, &err)) {
        g_error("reset_cpus: %s", error_get_pretty(err));
    }
}

/* Runs until the guest or a vCPU asks for shutdown/reset/stop, then pauses. */
static void tvm_run(TestVm *t)
{
    kvm_test_run(t->m, true, WAIT_US);
}

static void tvm_clear_requests(TestVm *t)
{
    t->m->shutdown_requested = t->m->reset_requested = t->m->stop_requested = 0;
    t->m->exit_status = 0;
    g_array_set_size(t->writes, 0);
}

static void load_code(TestVm *t, const uint8_t *code, size_t len)
{
    g_assert_true(guest_mem_write(t->m->mem, CODE_ADDR, code, len));
}

static const PortWrite *nth_write(TestVm *t, unsigned i)
{
    g_assert_cmpuint(i, <, t->writes->len);
    return &g_array_index(t->writes, PortWrite, i);
}

/*
 * A VM with cpus vCPUs, the flat GDT, code at CODE_ADDR and the BSP reset into mode (LONG64
 * also gets the 2 MiB identity map); NULL when KVM is unusable (the test is skipped).
 */
static TestVm *tvm_start_ring(unsigned cpus, CpuBootMode mode, const uint8_t *code,
                              size_t len, uint32_t dirty_ring)
{
    TestVm *t = tvm_new_ring(cpus, dirty_ring);
    if (!t) {
        return NULL;
    }
    write_gdt(t->m->mem, mode == CPU_BOOT_LONG64);
    if (mode == CPU_BOOT_LONG64) {
        build_long_mode_tables(t->m->mem);
    }
    load_code(t, code, len);
    CpuBootState b = boot_state(mode);
    tvm_reset(t, &b);
    return t;
}

static TestVm *tvm_start(unsigned cpus, CpuBootMode mode, const uint8_t *code, size_t len)
{
    return tvm_start_ring(cpus, mode, code, len, 0);
}

/* 32-bit: out 0x11 <- 0x12345678; in 0x12 -> out 0x12; unassigned in -> out 0x13;
 * ebx (from the boot state) -> out 0x14; end with status 1. */
static const uint8_t prot32_code[] = {
    0xb8, 0x78, 0x56, 0x34, 0x12,   /* mov eax, 0x12345678 */
    0x66, 0xba, 0x11, 0x00,         /* mov dx, 0x11 */
    0xef,                           /* out dx, eax */
    0x66, 0xba, 0x12, 0x00,         /* mov dx, 0x12 */
    0xec,                           /* in al, dx */
    0xee,                           /* out dx, al */
    0x66, 0xba, 0x00, 0x03,         /* mov dx, 0x300 (nothing there) */
    0xec,                           /* in al, dx */
    0x66, 0xba, 0x13, 0x00,         /* mov dx, 0x13 */
    0xee,                           /* out dx, al */
    0x89, 0xd8,                     /* mov eax, ebx */
    0x66, 0xba, 0x14, 0x00,         /* mov dx, 0x14 */
    0xef,                           /* out dx, eax */
    0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
    0xb0, 0x01,                     /* mov al, 1 */
    0xee,                           /* out dx, al */
    0xf4,                           /* hlt */
    0xeb, 0xfd,                     /* jmp hlt */
};

static void check_prot32_result(TestVm *t)
{
    g_assert_cmpint(t->m->shutdown_requested, ==, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    g_assert_cmpint(t->m->exit_status, ==, 1);
    g_assert_cmpuint(t->writes->len, ==, 4);
    g_assert_cmphex(nth_write(t, 0)->port, ==, 0x11);
    g_assert_cmpuint(nth_write(t, 0)->size, ==, 4);
    g_assert_cmphex(nth_write(t, 0)->value, ==, 0x12345678);
    g_assert_cmphex(nth_write(t, 1)->value, ==, 0x5a);
    g_assert_cmphex(nth_write(t, 2)->value, ==, 0xff);     /* unassigned: all-ones */
    g_assert_cmphex(nth_write(t, 3)->value, ==, 0xcafe0001);
}

static void test_kvm_prot32(void)
{
    TestVm *t = tvm_start(1, CPU_BOOT_PROT32, prot32_code, sizeof(prot32_code));
    if (!t) {
        return;
    }
    tvm_run(t);
    check_prot32_result(t);
    tvm_free(t);
}

static void test_kvm_long64(void)
{
    static const uint8_t code[] = {
        0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* mov rax, imm64 */
        0x66, 0xba, 0x11, 0x00,         /* mov dx, 0x11 */
        0xef,                           /* out dx, eax */
        0x48, 0xc1, 0xe8, 0x20,         /* shr rax, 32 */
        0xef,                           /* out dx, eax */
        0x0f, 0x20, 0xe0,               /* mov rax, cr4 */
        0xef,                           /* out dx, eax */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x02,                     /* mov al, 2 */
        0xee,                           /* out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = tvm_start(1, CPU_BOOT_LONG64, code, sizeof(code));
    if (!t) {
        return;
    }

    struct kvm_sregs sr;
    g_assert_cmpint(ioctl(kvm_state(t->m)->vcpus[0].fd, KVM_GET_SREGS, &sr), ==, 0);
    g_assert_cmpuint(sr.cs.l, ==, 1);
    g_assert_cmpuint(sr.cs.db, ==, 0);
    g_assert_cmphex(sr.efer & 0x500, ==, 0x500);
    g_assert_cmphex(sr.cr3, ==, 0x2000);

    tvm_run(t);
    g_assert_cmpint(t->m->exit_status, ==, 2);
    g_assert_cmpuint(t->writes->len, ==, 3);
    g_assert_cmphex(nth_write(t, 0)->value, ==, 0x55667788);
    g_assert_cmphex(nth_write(t, 1)->value, ==, 0x11223344);
    g_assert_cmphex(nth_write(t, 2)->value & 0x20, ==, 0x20);  /* CR4.PAE */
    tvm_free(t);
}

static void test_kvm_string_io(void)
{
    static const uint8_t code[] = {
        0xfc,                           /* cld */
        0xbe, 0x00, 0x20, 0x00, 0x00,   /* mov esi, 0x2000 */
        0xb9, 0x05, 0x00, 0x00, 0x00,   /* mov ecx, 5 */
        0x66, 0xba, 0x15, 0x00,         /* mov dx, 0x15 */
        0xf3, 0x6e,                     /* rep outsb */
        0xbf, 0x00, 0x21, 0x00, 0x00,   /* mov edi, 0x2100 */
        0xb9, 0x04, 0x00, 0x00, 0x00,   /* mov ecx, 4 */
        0x66, 0xba, 0x16, 0x00,         /* mov dx, 0x16 */
        0xf3, 0x6c,                     /* rep insb */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x03,                     /* mov al, 3 */
        0xee,                           /* out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = tvm_start(1, CPU_BOOT_PROT32, code, sizeof(code));
    if (!t) {
        return;
    }
    g_assert_true(guest_mem_write(t->m->mem, 0x2000, "hello", 5));
    tvm_run(t);
    g_assert_cmpint(t->m->exit_status, ==, 3);
    g_assert_cmpuint(t->writes->len, ==, 5);
    for (unsigned i = 0; i < 5; i++) {
        g_assert_cmphex(nth_write(t, i)->port, ==, 0x15);
        g_assert_cmphex(nth_write(t, i)->value, ==, (uint8_t)"hello"[i]);
    }
    uint8_t in[4];
    g_assert_true(guest_mem_read(t->m->mem, 0x2100, in, 4));
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmphex(in[i], ==, 0x40 + i);
    }
    tvm_free(t);
}

static uint64_t tmmio_read(void *opaque, uint64_t off, unsigned size)
{
    return 0x11110000 | (size << 12) | off;
}

static void tmmio_write(void *opaque, uint64_t off, unsigned size, uint64_t value)
{
    TestVm *t = opaque;
    PortWrite w = { .port = off, .size = size, .value = value };
    g_array_append_val(t->writes, w);  /* offsets of the MMIO range, not ports */
}

static const IoOps tmmio_ops = { .read = tmmio_read, .write = tmmio_write };

static void test_kvm_mmio(void)
{
    static const uint8_t code[] = {
        0xc7, 0x05, 0x10, 0x00, 0x00, 0xd0, 0x34, 0x12, 0xcd, 0xab, /* mov [0xd0000010], imm */
        0xa1, 0x20, 0x00, 0x00, 0xd0,   /* mov eax, [0xd0000020] */
        0x66, 0xba, 0x11, 0x00, 0xef,   /* mov dx, 0x11; out dx, eax */
        0xa0, 0xff, 0x0f, 0x00, 0xd0,   /* mov al, [0xd0000fff] */
        0x66, 0xba, 0x12, 0x00, 0xee,   /* mov dx, 0x12; out dx, al */
        0xa1, 0x00, 0x00, 0x00, 0xe0,   /* mov eax, [0xe0000000] (nothing there) */
        0x66, 0xba, 0x13, 0x00, 0xef,   /* mov dx, 0x13; out dx, eax */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x05, 0xee,               /* mov al, 5; out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = tvm_start(1, CPU_BOOT_PROT32, code, sizeof(code));
    if (!t) {
        return;
    }
    Error *err = NULL;
    g_assert_true(io_space_add(t->m->mmio, 0xd0000000, 0x1000, &tmmio_ops, t, "test", &err));
    tvm_run(t);
    g_assert_cmpint(t->m->exit_status, ==, 5);
    g_assert_cmpuint(t->writes->len, ==, 4);
    g_assert_cmphex(nth_write(t, 0)->port, ==, 0x10);   /* MMIO offset */
    g_assert_cmpuint(nth_write(t, 0)->size, ==, 4);
    g_assert_cmphex(nth_write(t, 0)->value, ==, 0xabcd1234);
    g_assert_cmphex(nth_write(t, 1)->value, ==, 0x11114020);
    g_assert_cmphex(nth_write(t, 2)->value, ==, 0xff);  /* low byte of 0x11111fff */
    g_assert_cmphex(nth_write(t, 3)->value, ==, 0xffffffff);
    tvm_free(t);
}

static void get_state(TestVm *t, unsigned cpu, struct kvm_regs *r, struct kvm_sregs *sr,
                      struct kvm_mp_state *mp)
{
    int fd = kvm_state(t->m)->vcpus[cpu].fd;
    g_assert_cmpint(ioctl(fd, KVM_GET_REGS, r), ==, 0);
    g_assert_cmpint(ioctl(fd, KVM_GET_SREGS, sr), ==, 0);
    g_assert_cmpint(ioctl(fd, KVM_GET_MP_STATE, mp), ==, 0);
}

static void test_kvm_reset_repeatable(void)
{
    TestVm *t = tvm_new(1);
    if (!t) {
        return;
    }
    write_gdt(t->m->mem, false);
    load_code(t, prot32_code, sizeof(prot32_code));
    CpuBootState b = boot_state(CPU_BOOT_PROT32);
    struct kvm_regs r1, r2;
    struct kvm_sregs s1, s2;
    struct kvm_mp_state mp1, mp2;

    tvm_reset(t, &b);
    get_state(t, 0, &r1, &s1, &mp1);
    g_assert_cmphex(r1.rip, ==, CODE_ADDR);
    g_assert_cmphex(r1.rbx, ==, 0xcafe0001);
    g_assert_cmphex(r1.rflags, ==, 0x2);
    g_assert_cmphex(s1.cr0, ==, 0x11);
    g_assert_cmphex(s1.cs.selector, ==, 0x08);
    g_assert_cmphex(s1.cs.base, ==, 0);
    g_assert_cmphex(s1.cs.limit, ==, 0xffffffff);
    g_assert_cmpuint(s1.cs.db, ==, 1);
    g_assert_cmphex(s1.cs.type, ==, 0xb);   /* accessed, as a CPU load leaves it */
    g_assert_cmphex(s1.ss.type, ==, 0x3);
    g_assert_cmphex(s1.ss.selector, ==, 0x10);
    g_assert_cmphex(s1.gdt.base, ==, GDT_ADDR);
    g_assert_cmpuint(mp1.mp_state, ==, KVM_MP_STATE_RUNNABLE);

    tvm_run(t);
    check_prot32_result(t);
    tvm_clear_requests(t);
    tvm_reset(t, &b);
    get_state(t, 0, &r2, &s2, &mp2);
    g_assert_cmpmem(&r1, sizeof(r1), &r2, sizeof(r2));
    g_assert_cmpmem(&s1, sizeof(s1), &s2, sizeof(s2));
    g_assert_cmpuint(mp2.mp_state, ==, mp1.mp_state);
    /* And it runs the same way again. */
    tvm_run(t);
    check_prot32_result(t);

    /* The architectural reset state for firmware. */
    CpuBootState fw = { .mode = CPU_BOOT_RESET };
    tvm_reset(t, &fw);
    get_state(t, 0, &r1, &s1, &mp1);
    g_assert_cmphex(s1.cs.selector, ==, 0xf000);
    g_assert_cmphex(s1.cs.base, ==, 0xffff0000);
    g_assert_cmphex(r1.rip, ==, 0xfff0);
    g_assert_cmphex(s1.cr0 & 1, ==, 0);
    tvm_free(t);
}

/* Triple fault (no IDT, then #UD) asks for a reset; after it the VM runs again. */
static void test_kvm_triple_fault(void)
{
    static const uint8_t code[] = {
        0x0f, 0x01, 0x1d, 0x00, 0x06, 0x00, 0x00, /* lidt [0x600]: limit 0 */
        0x0f, 0x0b,                               /* ud2 */
    };
    TestVm *t = tvm_start(1, CPU_BOOT_PROT32, code, sizeof(code));
    if (!t) {
        return;
    }
    put64(t->m->mem, 0x600, 0);
    tvm_run(t);
    g_assert_cmpint(t->m->reset_requested, ==, SHUTDOWN_CAUSE_SUBSYSTEM_RESET);

    tvm_clear_requests(t);
    load_code(t, prot32_code, sizeof(prot32_code));
    CpuBootState b = boot_state(CPU_BOOT_PROT32);
    tvm_reset(t, &b);
    tvm_run(t);
    check_prot32_result(t);
    tvm_free(t);
}

/*
 * An instruction this host's CPL0 emulator lacks (POPCNT) must give a clear report and a
 * stop request.  With hardware virtualization it simply runs: then the guest ends
 * normally and there is nothing to check.
 */
static void test_kvm_internal_error(void)
{
    static const uint8_t code[] = {
        0xf3, 0x0f, 0xb8, 0xc1,         /* popcnt eax, ecx */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x04,                     /* mov al, 4 */
        0xee,                           /* out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = tvm_start(1, CPU_BOOT_PROT32, code, sizeof(code));
    if (!t) {
        return;
    }

    g_autofree char *path = NULL;
    int log = g_file_open_tmp("test-kvm-XXXXXX", &path, NULL);
    g_assert_cmpint(log, >=, 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(log, STDERR_FILENO);
    tvm_run(t);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(log);
    g_autofree char *report = NULL;
    g_assert_true(g_file_get_contents(path, &report, NULL, NULL));
    unlink(path);

    if (t->m->shutdown_requested) {
        g_assert_cmpint(t->m->exit_status, ==, 4);
        tvm_free(t);
        g_test_skip("POPCNT runs natively here: no internal error to provoke");
        return;
    }
    g_test_message("report:\n%s", report);
    g_assert_cmpuint(t->m->stop_requested, ==, machine_stop_bit(RUN_STATE_INTERNAL_ERROR));
    g_assert_nonnull(strstr(report, "emulation failure"));
    g_assert_nonnull(strstr(report, "code at RIP: f3 0f b8 c1"));
    g_assert_nonnull(strstr(report, "RIP=0000000000001000"));
    g_assert_nonnull(strstr(report, "CR0="));
    g_assert_nonnull(strstr(report, "RBX=00000000cafe0001"));

    /* The failed vCPU stays parked across resume until a reset. */
    tvm_clear_requests(t);
    kvm_accel_ops.resume(t->m);
    g_usleep(50 * 1000);
    kvm_accel_ops.pause(t->m);
    g_assert_cmpuint(t->m->stop_requested, ==, 0);
    tvm_free(t);
}

/* 4 vCPUs: APs wait for SIPI with their own APIC ids; the BSP wakes AP 1 through the
 * LAPIC (INIT, SIPI to 0x2000), and the AP ends the test from real mode. */
static void test_kvm_smp(void)
{
    static const uint8_t bsp_code[] = {
        0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x01, /* ICR hi: APIC 1 */
        0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x45, 0x00, 0x00, /* ICR: INIT */
        0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x02, 0x46, 0x00, 0x00, /* ICR: SIPI 0x02 */
        0xf4, 0xeb, 0xfd,                                           /* hlt; jmp */
    };
    static const uint8_t ap_code[] = {
        0xb0, 0x77,                     /* mov al, 0x77 */
        0xe6, 0x10,                     /* out 0x10, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = tvm_start(4, CPU_BOOT_PROT32, bsp_code, sizeof(bsp_code));
    if (!t) {
        return;
    }
    KvmState *s = kvm_state(t->m);
    g_assert_cmpuint(s->nr_vcpus, ==, 4);
    g_assert_true(guest_mem_write(t->m->mem, 0x2000, ap_code, sizeof(ap_code)));

    for (unsigned i = 0; i < 4; i++) {
        struct kvm_regs r;
        struct kvm_sregs sr;
        struct kvm_mp_state mp;
        get_state(t, i, &r, &sr, &mp);
        g_assert_cmpuint(mp.mp_state, ==,
                         i ? KVM_MP_STATE_UNINITIALIZED : KVM_MP_STATE_RUNNABLE);
        g_assert_cmphex(sr.apic_base & 0x100, ==, i ? 0 : 0x100);  /* BSP flag */
        if (i) {
            g_assert_cmphex(sr.cs.selector, ==, 0xf000);
        }
        struct {
            struct kvm_cpuid2 c;
            struct kvm_cpuid_entry2 e[256];
        } cpuid = { .c.nent = 256 };
        g_assert_cmpint(ioctl(s->vcpus[i].fd, KVM_GET_CPUID2, &cpuid), ==, 0);
        struct kvm_cpuid_entry2 *l1 = kvm_cpuid_find(cpuid.e, cpuid.c.nent, 1, 0);
        g_assert_cmpuint(l1->ebx >> 24, ==, i);
        struct kvm_lapic_state lapic;
        g_assert_cmpint(ioctl(s->vcpus[i].fd, KVM_GET_LAPIC, &lapic), ==, 0);
        uint32_t id;
        memcpy(&id, lapic.regs + 0x20, 4);
        g_assert_cmpuint(id >> 24, ==, i);
    }

    /* dump_state while the APs sit in KVM_RUN: they are kicked, not waited for. */
    kvm_accel_ops.resume(t->m);
    g_autofree char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kvm_accel_ops.dump_state(t->m, f);
    fclose(f);
    g_assert_nonnull(strstr(buf, "CPU#3 (APIC id 3"));
    g_assert_nonnull(strstr(buf, "RIP="));
    kvm_accel_ops.pause(t->m);

    tvm_run(t);
    g_assert_cmpint(t->m->shutdown_requested, ==, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    g_assert_cmphex(t->m->exit_status, ==, 0x77);
    tvm_free(t);
}

static void test_kvm_pause_resume(void)
{
    /* A tight loop: pause must kick it out of the guest, over and over. */
    static const uint8_t code[] = { 0xeb, 0xfe };  /* jmp $ */
    TestVm *t = tvm_start(2, CPU_BOOT_PROT32, code, sizeof(code));
    if (!t) {
        return;
    }
    for (unsigned i = 0; i < 20; i++) {
        kvm_accel_ops.resume(t->m);
        g_usleep(2000);
        kvm_accel_ops.pause(t->m);
        KvmState *s = kvm_state(t->m);
        for (unsigned c = 0; c < s->nr_vcpus; c++) {
            g_assert_true(s->vcpus[c].parked);
        }
    }
    kvm_accel_ops.set_irq(t->m, 4, 1);
    kvm_accel_ops.set_irq(t->m, 4, 0);
    kvm_accel_ops.resume(t->m);
    tvm_free(t);  /* destroy while running */
}

/* Stops dirty logging (a sync after it is refused, saying why) and frees the VM. */
/* One sync of region 0 as ram_save_sync does it: harvest, then the region's log. */
static bool dirty_sync(TestVm *t, unsigned long *bitmap, unsigned long *summary,
                       Error **errp)
{
    kvm_accel_ops.dirty_log_harvest(t->m);
    return kvm_accel_ops.dirty_log_sync(t->m, 0, bitmap, summary, errp);
}

static void stop_dirty_log_and_free(TestVm *t, unsigned long *bitmap)
{
    Error *err = NULL;

    kvm_accel_ops.dirty_log_stop(t->m);
    g_assert_false(dirty_sync(t, bitmap, NULL, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "not enabled"));
    error_free(err);
    tvm_free(t);
}

/* Dirty logging (kvm-dirty.c): the pages the guest wrote, and only once per sync. */
static void test_kvm_dirty_log(void)
{
    static const uint8_t code[] = {
        0xb8, 0x44, 0x33, 0x22, 0x11,   /* mov eax, 0x11223344 */
        0xa3, 0x10, 0x00, 0x05, 0x00,   /* mov [0x50010], eax */
        0xa3, 0xfc, 0x3f, 0x12, 0x00,   /* mov [0x123ffc], eax */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x03,                     /* mov al, 3 */
        0xee,                           /* out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = tvm_start(1, CPU_BOOT_PROT32, code, sizeof(code));
    Error *err = NULL;
    unsigned long bitmap[RAM_SIZE / 4096 / 64] = { 0 };
    unsigned long summary = 0; /* RAM_SIZE / 4096 / 64 <= 64 words */

    if (!t) {
        return;
    }
    g_assert_true(kvm_accel_ops.dirty_log_start(t->m, &err));
    tvm_run(t);
    g_assert_cmpint(t->m->exit_status, ==, 3);
    g_assert_true(dirty_sync(t, bitmap, &summary, &err));
#define DIRTY(page) ((bitmap[(page) / 64] >> ((page) % 64)) & 1)
    g_assert_true(DIRTY(0x50));
    g_assert_true(DIRTY(0x123));
    g_assert_false(DIRTY(0x124));
    g_assert_false(DIRTY(0x1ff));
    /* The summary names the words with bits (the code page's and the stack's may be
     * dirty too), among them those of the two pages written. */
    g_assert_true(summary & (1ul << (0x50 / 64)));
    g_assert_true(summary & (1ul << (0x123 / 64)));
    for (unsigned w = 0; w < G_N_ELEMENTS(bitmap); w++) {
        g_assert_cmpint(!!bitmap[w], ==, !!(summary & (1ul << w)));
    }
    /* Reported once: the next sync starts from a clean log. */
    memset(bitmap, 0, sizeof(bitmap));
    summary = 0;
    g_assert_true(dirty_sync(t, bitmap, &summary, &err));
    g_assert_false(DIRTY(0x50));
    g_assert_false(DIRTY(0x123));
#undef DIRTY
    stop_dirty_log_and_free(t, bitmap);
}

/* Entries (and bytes) of KVM's dirty ring here; 0 when this KVM has none. */
static int host_dirty_ring_max_bytes(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm = fd < 0 ? -1 : ioctl(fd, KVM_CREATE_VM, 0);
    int r = vm < 0 ? 0 : ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
    if (vm >= 0) {
        close(vm);
    }
    if (fd >= 0) {
        close(fd);
    }
    return MAX(r, 0);
}

static bool skip_without_dirty_ring(void)
{
    const char *why = kvm_test_unusable_reason();
    if (why) {
        g_test_skip(why);
        return true;
    }
    if (!host_dirty_ring_max_bytes()) {
        g_test_skip("this KVM has no KVM_CAP_DIRTY_LOG_RING");
        return true;
    }
    return false;
}

#define RING_FIRST_PAGE 0x20u
#define RING_PAGES 400u     /* more than a 256-entry ring holds: it fills up */

/*
 * A 256-entry dirty ring VM running `code` (a guest that writes the RING_PAGES pages and
 * exits with status 3), its dirty log started; NULL (the test skipped) on a KVM without
 * the ring.
 */
static TestVm *ring_test_start(const uint8_t *code, size_t len)
{
    if (skip_without_dirty_ring()) {
        return NULL;
    }
    TestVm *t = tvm_start_ring(1, CPU_BOOT_PROT32, code, len, 256);
    KvmState *s = kvm_state(t->m);
    Error *err = NULL;

    g_assert_cmpuint(s->dirty_ring_entries, ==, 256);
    g_assert_nonnull(s->vcpus[0].dirty_ring);
    g_assert_true(kvm_accel_ops.dirty_log_start(t->m, &err));
    return t;
}

/* One run of the guest to its exit, then the pages the dirty log reports in `bitmap`. */
static void ring_test_run(TestVm *t, unsigned long *bitmap, size_t bitmap_bytes)
{
    Error *err = NULL;

    tvm_run(t);
    g_assert_cmpint(t->m->exit_status, ==, 3);
    memset(bitmap, 0, bitmap_bytes);
    g_assert_true(dirty_sync(t, bitmap, NULL, &err));
}

/* Back to the guest's first instruction for the next round. */
static void ring_test_rewind(TestVm *t)
{
    tvm_clear_requests(t);
    CpuBootState b = boot_state(CPU_BOOT_PROT32);
    tvm_reset(t, &b);
}

/*
 * The dirty ring (kvm-dirty.c) with its smallest size: a guest writes 400 pages, so its
 * ring fills (KVM_EXIT_DIRTY_RING_FULL, reaped by the vCPU thread) and the sync reports
 * exactly those pages, once.  A second run writes them again: KVM_RESET_DIRTY_RINGS
 * re-protected them, so the ring reports them again.
 */
static void test_kvm_dirty_ring(void)
{
    /* The out after each page returns to Sen, as a write fault on hardware returns to
     * KVM: kvm_pvm's CPL0 emulation otherwise runs the whole loop inside one KVM_RUN,
     * never looking at the ring's soft limit (see ring_lost_entries_locked). */
    static const uint8_t code[] = {
        0xbf, 0x00, 0x00, 0x02, 0x00,   /* mov edi, 0x20000 */
        0xb9, 0x90, 0x01, 0x00, 0x00,   /* mov ecx, 400 */
        0x66, 0xba, 0x11, 0x00,         /* mov dx, 0x11 */
        0x89, 0x07,                     /* 1: mov [edi], eax */
        0xee,                           /* out dx, al */
        0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, /* add edi, 0x1000 */
        0x49,                           /* dec ecx */
        0x75, 0xf4,                     /* jnz 1b */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x03,                     /* mov al, 3 */
        0xee,                           /* out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = ring_test_start(code, sizeof(code));
    if (!t) {
        return;
    }
    KvmState *s = kvm_state(t->m);
    Error *err = NULL;
    unsigned long bitmap[RAM_SIZE / 4096 / 64];

    for (unsigned round = 0; round < 2; round++) {
        ring_test_run(t, bitmap, sizeof(bitmap));
        unsigned missing = 0, extra = 0, first_bad = 0;
        for (unsigned p = 0; p < RAM_SIZE / 4096; p++) {
            bool dirty = (bitmap[p / 64] >> (p % 64)) & 1;
            bool written = p >= RING_FIRST_PAGE && p < RING_FIRST_PAGE + RING_PAGES;
            if (dirty != written && !missing && !extra) {
                first_bad = p;
            }
            missing += written && !dirty;
            extra += dirty && !written;
        }
        if (missing || extra) {
            g_error("round %u: %u pages written but not reported, %u reported but not "
                    "written (first: page 0x%x); %d ring-full exits", round, missing, extra,
                    first_bad, g_atomic_int_get(&s->dirty_ring_full_exits));
        }
        /* The ring filled up at least once and the vCPU thread freed it in time. */
        g_assert_cmpint(g_atomic_int_get(&s->dirty_ring_full_exits), >, round);
        g_assert_cmpint(g_atomic_int_get(&s->dirty_ring_lost), ==, 0);
        /* Reported once. */
        memset(bitmap, 0, sizeof(bitmap));
        g_assert_true(dirty_sync(t, bitmap, NULL, &err));
        for (unsigned w = 0; w < G_N_ELEMENTS(bitmap); w++) {
            g_assert_cmphex(bitmap[w], ==, 0);
        }
        ring_test_rewind(t);
    }
    stop_dirty_log_and_free(t, bitmap);
}

/*
 * A ring KVM overruns (kvm_pvm's CPL0 emulation writes the 400 pages of this tight loop
 * in one KVM_RUN now and then, past a 256-entry ring): no written page may go
 * unreported, the guest must not stall on a ring KVM and Sen count differently, and an
 * overrun reports all of RAM.  On a KVM that never overruns this checks the plain path.
 */
static void test_kvm_dirty_ring_overrun(void)
{
    static const uint8_t code[] = {
        0xbf, 0x00, 0x00, 0x02, 0x00,   /* mov edi, 0x20000 */
        0xb9, 0x90, 0x01, 0x00, 0x00,   /* mov ecx, 400 */
        0x89, 0x07,                     /* 1: mov [edi], eax */
        0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, /* add edi, 0x1000 */
        0x49,                           /* dec ecx */
        0x75, 0xf5,                     /* jnz 1b */
        0x66, 0xba, 0x10, 0x00,         /* mov dx, 0x10 */
        0xb0, 0x03,                     /* mov al, 3 */
        0xee,                           /* out dx, al */
        0xf4, 0xeb, 0xfd,               /* hlt; jmp */
    };
    TestVm *t = ring_test_start(code, sizeof(code));
    if (!t) {
        return;
    }
    KvmState *s = kvm_state(t->m);
    unsigned long bitmap[RAM_SIZE / 4096 / 64];

    for (unsigned round = 0; round < 12; round++) {
        int lost_before = g_atomic_int_get(&s->dirty_ring_lost);
        ring_test_run(t, bitmap, sizeof(bitmap));
        bool lost = g_atomic_int_get(&s->dirty_ring_lost) != lost_before;
        for (unsigned p = 0; p < RAM_SIZE / 4096; p++) {
            bool dirty = (bitmap[p / 64] >> (p % 64)) & 1;
            bool written = p >= RING_FIRST_PAGE && p < RING_FIRST_PAGE + RING_PAGES;
            if ((written || lost) && !dirty) {
                g_error("round %u: page 0x%x not reported%s", round, p,
                        lost ? " after an overrun" : "");
            }
        }
        ring_test_rewind(t);
    }
    g_test_message("%d ring overruns in 12 runs", g_atomic_int_get(&s->dirty_ring_lost));
    kvm_accel_ops.dirty_log_stop(t->m);
    tvm_free(t);
}

/* Sizes KVM refuses fail the VM's creation with QEMU's messages, naming the option. */
static void test_kvm_dirty_ring_bad_sizes(void)
{
    if (skip_without_dirty_ring()) {
        return;
    }
    uint32_t too_big = (uint32_t)(host_dirty_ring_max_bytes() / 16) * 2;
    struct {
        uint32_t size;
        const char *msg;
    } cases[] = {
        { 16, "-accel kvm,dirty-ring-size=16: Enabling of KVM dirty ring failed: Invalid "
              "argument. Suggested minimum value is 1024." },
        { too_big, "too big (maximum is " },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Error *err = NULL;
        Machine *m = kvm_test_machine_try_new(1, RAM_SIZE, TEST_PORT, &tport_ops, NULL,
                                              cases[i].size, &err);
        g_assert_null(m);
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg)) {
            g_error("size %u: '%s' lacks '%s'", cases[i].size, error_get_pretty(err),
                    cases[i].msg);
        }
        error_free(err);
    }
}

static void test_kvm_too_many_cpus(void)
{
    const char *why = kvm_test_unusable_reason();
    if (why) {
        g_test_skip(why);
        return;
    }
    Machine m = { 0 };
    MachineConfig cfg = { .smp_cpus = 100000, .smp_maxcpus = 100000 };
    Error *err = NULL;
    m.cfg = &cfg;
    g_assert_false(kvm_accel_ops.init(&m, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "-smp 100000: KVM supports at most"));
    g_assert_null(m.accel_state);
    error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kvm/topo/width", test_topo_width);
    g_test_add_func("/kvm/topo/from-config", test_topo_from_config);
    g_test_add_func("/kvm/cpuid/topology", test_cpuid_topology);
    g_test_add_func("/kvm/cpuid/dies-and-single", test_cpuid_dies_and_single);
    g_test_add_func("/kvm/msr/list-remove", test_msr_list_remove);
    g_test_add_func("/kvm/translate", test_translate);
    g_test_add_func("/kvm/run/prot32", test_kvm_prot32);
    g_test_add_func("/kvm/run/long64", test_kvm_long64);
    g_test_add_func("/kvm/run/string-io", test_kvm_string_io);
    g_test_add_func("/kvm/run/mmio", test_kvm_mmio);
    g_test_add_func("/kvm/run/reset-repeatable", test_kvm_reset_repeatable);
    g_test_add_func("/kvm/run/triple-fault", test_kvm_triple_fault);
    g_test_add_func("/kvm/run/internal-error", test_kvm_internal_error);
    g_test_add_func("/kvm/run/smp", test_kvm_smp);
    g_test_add_func("/kvm/run/pause-resume", test_kvm_pause_resume);
    g_test_add_func("/kvm/init/too-many-cpus", test_kvm_too_many_cpus);
    g_test_add_func("/kvm/dirty-log", test_kvm_dirty_log);
    g_test_add_func("/kvm/dirty-ring", test_kvm_dirty_ring);
    g_test_add_func("/kvm/dirty-ring/bad-sizes", test_kvm_dirty_ring_bad_sizes);
    g_test_add_func("/kvm/dirty-ring/overrun", test_kvm_dirty_ring_overrun);
    return g_test_run();
}
