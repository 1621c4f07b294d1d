/* -cpu MODEL,+feat,-feat applied to a CPUID table (hw/i386/cpu-models.c), without KVM. */
#include <string.h>
#include <glib.h>
#include "sen/hw/cpu-models.h"

#define BIT(n) (1u << (n))

/* A small "host" table: what KVM_GET_SUPPORTED_CPUID might return. */
static unsigned host_table(struct kvm_cpuid_entry2 *e)
{
    unsigned n = 0;
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0x16 };
    e[n++] = (struct kvm_cpuid_entry2){
        .function = 1, .eax = 0x000906ea,
        .ecx = BIT(0) | BIT(13) | BIT(21) | BIT(28),          /* sse3 cx16 x2apic avx */
        .edx = BIT(0) | BIT(4) | BIT(25) | BIT(26) };         /* fpu tsc sse sse2 */
    e[n++] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0,
                                        .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                                        .ebx = BIT(5) | BIT(0) }; /* avx2 fsgsbase */
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x14, .eax = 1 };
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x40000001, .eax = 0x7 };
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000000, .eax = 0x80000008 };
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000001, .ecx = BIT(0),
                                        .edx = BIT(11) | BIT(20) | BIT(26) | BIT(29) };
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .eax = 0x3030 };
    return n;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid_entry2 *e, unsigned n, uint32_t fn)
{
    for (unsigned i = 0; i < n; i++) {
        if (e[i].function == fn) {
            return &e[i];
        }
    }
    return NULL;
}

static GPtrArray *features(const char *items)
{
    GPtrArray *f = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) parts = g_strsplit(items, ",", -1);
    for (char **p = parts; *p && **p; p++) {
        g_assert_true(cpu_feature_parse(*p, f, "-cpu", NULL));
    }
    return f;
}

static void test_host_passes_through(void)
{
    static const char *const extra[] = { "tsc-deadline", NULL };
    struct kvm_cpuid_entry2 e[16], orig[16];
    unsigned n = host_table(e);
    memcpy(orig, e, sizeof(e));
    g_autoptr(GPtrArray) f = features("");

    g_assert_cmpuint(cpu_model_apply(e, n, "host", f, extra), ==, n);
    /* Everything stays, and the emulated TSC-deadline timer is offered. */
    g_assert_cmphex(find(e, n, 1)->ecx, ==, find(orig, n, 1)->ecx | BIT(24));
    g_assert_cmphex(find(e, n, 7)->ebx, ==, find(orig, n, 7)->ebx);
    g_assert_cmphex(find(e, n, 1)->eax, ==, 0x000906ea);
    g_assert_nonnull(find(e, n, 0x14));
}

static void test_qemu64(void)
{
    struct kvm_cpuid_entry2 e[16];
    unsigned n = host_table(e);
    g_autoptr(GPtrArray) f = features("");

    n = cpu_model_apply(e, n, "qemu64", f, NULL);
    g_assert_cmphex(find(e, n, 0)->eax, ==, 0xd);
    g_assert_null(find(e, n, 0x14));                    /* beyond level 0xd */
    g_assert_nonnull(find(e, n, 0x40000001));            /* hypervisor leaves stay */
    g_assert_cmphex(find(e, n, 0x40000001)->eax, ==, 0x7);
    /* family 15, model 107 (0x6b), stepping 1 */
    g_assert_cmphex(find(e, n, 1)->eax, ==, 0x00060fb1);
    /* sse3 cx16 x2apic kept (the host has them); avx is not a qemu64 feature */
    g_assert_cmphex(find(e, n, 1)->ecx, ==, BIT(0) | BIT(13) | BIT(21));
    g_assert_cmphex(find(e, n, 1)->edx, ==, BIT(0) | BIT(4) | BIT(25) | BIT(26));
    g_assert_cmphex(find(e, n, 7)->ebx, ==, 0);
    /* syscall nx lm yes, pdpe1gb no; lahf-lm yes */
    g_assert_cmphex(find(e, n, 0x80000001)->edx, ==, BIT(11) | BIT(20) | BIT(29));
    g_assert_cmphex(find(e, n, 0x80000001)->ecx, ==, BIT(0));
    g_assert_cmphex(find(e, n, 0x80000000)->eax, ==, 0x80000008);
}

static void test_plus_minus(void)
{
    static const char *const extra[] = { "tsc-deadline", NULL };
    struct kvm_cpuid_entry2 e[16];
    unsigned n = host_table(e);
    /* +vmx: the host lacks it, so it stays off (with a warning); -x2apic wins over the
     * model; +avx and +pdpe1gb come from the host; tsc-deadline from the VMM. */
    g_autoptr(GPtrArray) f = features("+avx,-x2apic,vmx=on,pdpe1gb,+tsc-deadline,avx2=on");

    n = cpu_model_apply(e, n, "qemu64", f, extra);
    g_assert_cmphex(find(e, n, 1)->ecx, ==, BIT(0) | BIT(13) | BIT(24) | BIT(28));
    g_assert_cmphex(find(e, n, 0x80000001)->edx & BIT(26), ==, BIT(26));
    g_assert_cmphex(find(e, n, 7)->ebx, ==, BIT(5));
}

static void test_names(void)
{
    g_autoptr(GPtrArray) f = g_ptr_array_new_with_free_func(g_free);
    Error *err = NULL;

    g_assert_true(cpu_model_exists("host"));
    g_assert_true(cpu_model_exists("Skylake-Client"));
    g_assert_false(cpu_model_exists("skylake-client")); /* QEMU's names are exact */
    g_assert_true(cpu_feature_parse("sse4_2", f, "-cpu", NULL));
    g_assert_true(cpu_feature_parse("LAHF_LM=off", f, "-cpu", NULL));
    g_assert_true(cpu_feature_parse("host-phys-bits", f, "-cpu", NULL)); /* a no-op */
    g_assert_cmpuint(f->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(f, 0), ==, "+sse4-2");
    g_assert_cmpstr(g_ptr_array_index(f, 1), ==, "-lahf-lm");
    g_assert_false(cpu_feature_parse("+nonsense", f, "-cpu x", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "-cpu x: Property 'nonsense' not found"));
    error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cpu-models/host", test_host_passes_through);
    g_test_add_func("/cpu-models/qemu64", test_qemu64);
    g_test_add_func("/cpu-models/plus-minus", test_plus_minus);
    g_test_add_func("/cpu-models/names", test_names);
    return g_test_run();
}
