/*
 * x86 CPU models and feature names for -cpu (see sen/hw/cpu-models.h).
 *
 * Feature names and CPUID positions are QEMU's (and the Intel/AMD manuals'); a model is
 * its family/model/stepping, its CPUID levels and a list of feature names.  The vendor
 * string stays the host's, as QEMU does under KVM (sysenter/syscall emulation differs by
 * vendor, so a foreign vendor would break 32-bit compatibility mode).
 */
#include <stdio.h>
#include <string.h>
#include "sen/hw/cpu-models.h"

enum { R_EAX, R_EBX, R_ECX, R_EDX };

typedef struct CpuFeature {
    const char *name;
    uint32_t leaf, subleaf;
    uint8_t reg, bit;
} CpuFeature;

#define F1D(n, b)  { n, 1, 0, R_EDX, b }
#define F1C(n, b)  { n, 1, 0, R_ECX, b }
#define F7B(n, b)  { n, 7, 0, R_EBX, b }
#define F7C(n, b)  { n, 7, 0, R_ECX, b }
#define F7D(n, b)  { n, 7, 0, R_EDX, b }
#define F71A(n, b) { n, 7, 1, R_EAX, b }
#define FD1A(n, b) { n, 0xd, 1, R_EAX, b }
#define FXD(n, b)  { n, 0x80000001, 0, R_EDX, b }
#define FXC(n, b)  { n, 0x80000001, 0, R_ECX, b }

static const CpuFeature cpu_features[] = {
    F1D("fpu", 0), F1D("vme", 1), F1D("de", 2), F1D("pse", 3), F1D("tsc", 4),
    F1D("msr", 5), F1D("pae", 6), F1D("mce", 7), F1D("cx8", 8), F1D("apic", 9),
    F1D("sep", 11), F1D("mtrr", 12), F1D("pge", 13), F1D("mca", 14), F1D("cmov", 15),
    F1D("pat", 16), F1D("pse36", 17), F1D("pn", 18), F1D("clflush", 19), F1D("ds", 21),
    F1D("acpi", 22), F1D("mmx", 23), F1D("fxsr", 24), F1D("sse", 25), F1D("sse2", 26),
    F1D("ss", 27), F1D("ht", 28), F1D("tm", 29), F1D("pbe", 31),

    F1C("pni", 0), F1C("sse3", 0), F1C("pclmulqdq", 1), F1C("pclmuldq", 1),
    F1C("dtes64", 2), F1C("monitor", 3), F1C("ds-cpl", 4), F1C("vmx", 5), F1C("smx", 6),
    F1C("est", 7), F1C("tm2", 8), F1C("ssse3", 9), F1C("cid", 10), F1C("fma", 12),
    F1C("cx16", 13), F1C("xtpr", 14), F1C("pdcm", 15), F1C("pcid", 17), F1C("dca", 18),
    F1C("sse4-1", 19), F1C("sse4-2", 20), F1C("x2apic", 21), F1C("movbe", 22),
    F1C("popcnt", 23), F1C("tsc-deadline", 24), F1C("aes", 25), F1C("xsave", 26),
    F1C("avx", 28), F1C("f16c", 29), F1C("rdrand", 30), F1C("hypervisor", 31),

    F7B("fsgsbase", 0), F7B("tsc-adjust", 1), F7B("bmi1", 3), F7B("hle", 4),
    F7B("avx2", 5), F7B("smep", 7), F7B("bmi2", 8), F7B("erms", 9), F7B("invpcid", 10),
    F7B("rtm", 11), F7B("mpx", 14), F7B("avx512f", 16), F7B("avx512dq", 17),
    F7B("rdseed", 18), F7B("adx", 19), F7B("smap", 20), F7B("avx512ifma", 21),
    F7B("clflushopt", 23), F7B("clwb", 24), F7B("avx512pf", 26), F7B("avx512er", 27),
    F7B("avx512cd", 28), F7B("sha-ni", 29), F7B("avx512bw", 30), F7B("avx512vl", 31),

    F7C("avx512vbmi", 1), F7C("umip", 2), F7C("pku", 3), F7C("waitpkg", 5),
    F7C("avx512vbmi2", 6), F7C("gfni", 8), F7C("vaes", 9), F7C("vpclmulqdq", 10),
    F7C("avx512vnni", 11), F7C("avx512bitalg", 12), F7C("avx512-vpopcntdq", 14),
    F7C("la57", 16), F7C("rdpid", 22), F7C("cldemote", 25), F7C("movdiri", 27),
    F7C("movdir64b", 28),

    F7D("avx512-4vnniw", 2), F7D("avx512-4fmaps", 3), F7D("fsrm", 4), F7D("md-clear", 10),
    F7D("serialize", 14), F7D("tsx-ldtrk", 16), F7D("pconfig", 18), F7D("arch-lbr", 19),
    F7D("amx-bf16", 22), F7D("avx512-fp16", 23), F7D("amx-tile", 24), F7D("amx-int8", 25),
    F7D("spec-ctrl", 26), F7D("stibp", 27), F7D("flush-l1d", 28),
    F7D("arch-capabilities", 29), F7D("core-capability", 30), F7D("ssbd", 31),

    F71A("avx-vnni", 4), F71A("avx512-bf16", 5), F71A("fzrm", 10), F71A("fsrs", 11),
    F71A("fsrc", 12), F71A("lam", 26),

    FD1A("xsaveopt", 0), FD1A("xsavec", 1), FD1A("xgetbv1", 2), FD1A("xsaves", 3),

    FXD("syscall", 11), FXD("nx", 20), FXD("xd", 20), FXD("mmxext", 22),
    FXD("fxsr-opt", 25), FXD("pdpe1gb", 26), FXD("rdtscp", 27), FXD("lm", 29),
    FXD("i64", 29), FXD("3dnowext", 30), FXD("3dnow", 31),

    FXC("lahf-lm", 0), FXC("cmp-legacy", 1), FXC("svm", 2), FXC("extapic", 3),
    FXC("cr8legacy", 4), FXC("abm", 5), FXC("sse4a", 6), FXC("misalignsse", 7),
    FXC("3dnowprefetch", 8), FXC("osvw", 9), FXC("ibs", 10), FXC("xop", 11),
    FXC("skinit", 12), FXC("wdt", 13), FXC("lwp", 15), FXC("fma4", 16), FXC("tce", 17),
    FXC("nodeid-msr", 19), FXC("tbm", 21), FXC("topoext", 22), FXC("perfctr-core", 23),
    FXC("perfctr-nb", 24),

    { "invtsc", 0x80000007, 0, R_EDX, 8 },
};

typedef struct CpuModel {
    const char *name;
    const char *desc;
    unsigned family, model, stepping;
    uint32_t level, xlevel;
    const char *features; /* space-separated names from cpu_features */
} CpuModel;

#define PPRO "fpu de pse tsc msr pae mce cx8 apic sep pge cmov pat fxsr mmx sse sse2 "
#define P64 PPRO "mtrr clflush mca pse36 "
#define NEHALEM P64 "sse3 cx16 ssse3 sse4-1 sse4-2 popcnt x2apic syscall nx lm lahf-lm "
#define WESTMERE NEHALEM "pclmulqdq aes "
#define SANDY WESTMERE "xsave avx tsc-deadline rdtscp xsaveopt "
#define IVY SANDY "f16c rdrand fsgsbase smep erms "
#define HASWELL IVY "fma movbe pcid bmi1 hle avx2 bmi2 invpcid rtm abm "
#define BROADWELL HASWELL "rdseed adx smap 3dnowprefetch "

static const CpuModel cpu_models[] = {
    /* Under KVM QEMU turns x2apic on for its generic models; so does Sen. */
    { "qemu64", "QEMU Virtual CPU version 2.5+", 15, 107, 1, 0xd, 0x8000000a,
      P64 "sse3 cx16 x2apic syscall nx lm lahf-lm" },
    { "qemu32", "QEMU Virtual CPU version 2.5+", 6, 6, 3, 4, 0x80000004,
      PPRO "sse3 x2apic" },
    { "kvm64", "Common KVM processor", 15, 6, 1, 0xd, 0x80000008,
      P64 "vme sse3 cx16 x2apic syscall nx lm" },
    { "kvm32", "Common 32-bit KVM processor", 15, 6, 1, 5, 0x80000008,
      P64 "vme sse3 x2apic" },
    { "Nehalem", "Intel Core i7 9xx (Nehalem Class Core i7)", 6, 26, 3, 11, 0x80000008,
      NEHALEM },
    { "Westmere", "Westmere E56xx/L56xx/X56xx (Nehalem-C)", 6, 44, 1, 11, 0x80000008,
      WESTMERE },
    { "SandyBridge", "Intel Xeon E312xx (Sandy Bridge)", 6, 42, 1, 0xd, 0x80000008, SANDY },
    { "IvyBridge", "Intel Xeon E3-12xx v2 (Ivy Bridge)", 6, 58, 9, 0xd, 0x80000008, IVY },
    { "Haswell", "Intel Core Processor (Haswell)", 6, 60, 4, 0xd, 0x80000008, HASWELL },
    { "Broadwell", "Intel Core Processor (Broadwell)", 6, 61, 2, 0xd, 0x80000008,
      BROADWELL },
    { "Skylake-Client", "Intel Core Processor (Skylake)", 6, 94, 3, 0xd, 0x80000008,
      BROADWELL "mpx clflushopt xsavec xgetbv1" },
    { "EPYC", "AMD EPYC Processor", 23, 1, 2, 0xd, 0x8000001e,
      P64 "sse3 pclmulqdq ssse3 fma cx16 sse4-1 sse4-2 x2apic movbe popcnt aes xsave avx "
      "f16c rdrand fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt sha-ni "
      "xsaveopt xsavec xgetbv1 syscall nx mmxext fxsr-opt pdpe1gb rdtscp lm lahf-lm "
      "cmp-legacy cr8legacy abm sse4a misalignsse 3dnowprefetch osvw topoext" },
};

/* QEMU accepts sse4_1, sse4.1 and sse4-1 alike. */
static char *feature_canonical(const char *name)
{
    char *c = g_ascii_strdown(name, -1);
    for (char *p = c; *p; p++) {
        if (*p == '_' || *p == '.') {
            *p = '-';
        }
    }
    return c;
}

static const CpuFeature *feature_find(const char *name)
{
    g_autofree char *c = feature_canonical(name);
    for (size_t i = 0; i < G_N_ELEMENTS(cpu_features); i++) {
        if (strcmp(cpu_features[i].name, c) == 0) {
            return &cpu_features[i];
        }
    }
    return NULL;
}

static const CpuModel *model_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cpu_models); i++) {
        if (strcmp(cpu_models[i].name, name) == 0) {
            return &cpu_models[i];
        }
    }
    return NULL;
}

bool cpu_model_exists(const char *name)
{
    return strcmp(name, "host") == 0 || strcmp(name, "max") == 0 || model_find(name);
}

void cpu_model_print_list(FILE *out)
{
    fprintf(out, "Available CPUs:\n");
    fprintf(out, "  %-16s %s\n", "host", "KVM processor with all supported host features");
    fprintf(out, "  %-16s %s\n", "max", "Enables all features supported by the accelerator");
    for (size_t i = 0; i < G_N_ELEMENTS(cpu_models); i++) {
        fprintf(out, "  %-16s %s\n", cpu_models[i].name, cpu_models[i].desc);
    }
}

bool cpu_feature_parse(const char *item, GPtrArray *features, const char *what, Error **errp)
{
    char sign = 0;
    g_autofree char *name = NULL;
    const char *eq = strchr(item, '=');

    if (item[0] == '+' || item[0] == '-') {
        sign = item[0];
        name = g_strdup(item + 1);
    } else if (eq) {
        name = g_strndup(item, (size_t)(eq - item));
        const char *v = eq + 1;
        if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
            sign = '+';
        } else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 ||
                   strcmp(v, "no") == 0) {
            sign = '-';
        } else {
            error_setg(errp, "%s: Parameter '%s' expects 'on' or 'off'", what, name);
            return false;
        }
    } else {
        name = g_strdup(item);
        sign = '+';
    }
    /* Sen already gives host/max the host's physical-address width and the other
     * models QEMU's default; both spellings of the property are accepted as no-ops. */
    if (strcmp(name, "host-phys-bits") == 0 || strcmp(name, "migratable") == 0 ||
        strcmp(name, "check") == 0) {
        return true;
    }
    if (!feature_find(name)) {
        error_setg(errp, "%s: Property '%s' not found", what, name);
        return false;
    }
    g_autofree char *c = feature_canonical(name);
    g_ptr_array_add(features, g_strdup_printf("%c%s", sign, c));
    return true;
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, uint8_t reg)
{
    switch (reg) {
    case R_EAX: return &e->eax;
    case R_EBX: return &e->ebx;
    case R_ECX: return &e->ecx;
    default: return &e->edx;
    }
}

static struct kvm_cpuid_entry2 *entry_find(struct kvm_cpuid_entry2 *e, unsigned n,
                                           uint32_t leaf, uint32_t subleaf)
{
    for (unsigned i = 0; i < n; i++) {
        bool indexed = e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        if (e[i].function == leaf && (!indexed || e[i].index == subleaf)) {
            return &e[i];
        }
    }
    return NULL;
}

/* The feature registers a model restricts: everything else is information, not features. */
static const struct { uint32_t leaf, subleaf; uint8_t reg; } feature_regs[] = {
    { 1, 0, R_EDX }, { 1, 0, R_ECX }, { 7, 0, R_EBX }, { 7, 0, R_ECX }, { 7, 0, R_EDX },
    { 7, 1, R_EAX }, { 0xd, 1, R_EAX }, { 0x80000001, 0, R_EDX }, { 0x80000001, 0, R_ECX },
    { 0x80000007, 0, R_EDX },
};

static void feature_set(struct kvm_cpuid_entry2 *e, unsigned n, const CpuFeature *f,
                        bool on)
{
    struct kvm_cpuid_entry2 *x = entry_find(e, n, f->leaf, f->subleaf);
    if (x) {
        uint32_t *r = entry_reg(x, f->reg);
        *r = on ? (*r | (1u << f->bit)) : (*r & ~(1u << f->bit));
    }
}

static bool feature_offered(struct kvm_cpuid_entry2 *host, unsigned n, const CpuFeature *f)
{
    struct kvm_cpuid_entry2 *x = entry_find(host, n, f->leaf, f->subleaf);
    return x && (*entry_reg(x, f->reg) & (1u << f->bit));
}

static const char *reg_name(uint8_t reg)
{
    static const char *const names[] = { "EAX", "EBX", "ECX", "EDX" };
    return names[reg];
}

unsigned cpu_model_apply(struct kvm_cpuid_entry2 *e, unsigned n, const char *model,
                         const GPtrArray *features, const char *const *host_extra)
{
    const CpuModel *cm = model_find(model);
    /* What the host can give: the table plus what the VMM emulates. */
    unsigned host_n = n;
    g_autofree struct kvm_cpuid_entry2 *host = g_memdup2(e, n * sizeof(*e));

    for (const char *const *x = host_extra; x && *x; x++) {
        const CpuFeature *f = feature_find(*x);
        if (f) {
            feature_set(host, host_n, f, true);
        }
    }
    if (!cm) {
        memcpy(e, host, n * sizeof(*e)); /* host / max: everything there is */
    } else {
        for (size_t i = 0; i < G_N_ELEMENTS(feature_regs); i++) {
            struct kvm_cpuid_entry2 *x =
                entry_find(e, n, feature_regs[i].leaf, feature_regs[i].subleaf);
            if (x) {
                *entry_reg(x, feature_regs[i].reg) = 0;
            }
        }
        g_auto(GStrv) names = g_strsplit(cm->features, " ", -1);
        for (char **nm = names; *nm; nm++) {
            const CpuFeature *f = **nm ? feature_find(*nm) : NULL;
            if (f && feature_offered(host, host_n, f)) {
                feature_set(e, n, f, true);
            }
        }
        /* Drop the leaves beyond the model's levels (hypervisor leaves stay). */
        unsigned out = 0;
        for (unsigned i = 0; i < n; i++) {
            uint32_t fn = e[i].function;
            bool basic = fn < 0x40000000, ext = fn >= 0x80000000;
            if ((basic && fn > cm->level) || (ext && fn > cm->xlevel)) {
                continue;
            }
            e[out++] = e[i];
        }
        n = out;
        struct kvm_cpuid_entry2 *l0 = entry_find(e, n, 0, 0);
        struct kvm_cpuid_entry2 *x0 = entry_find(e, n, 0x80000000, 0);
        struct kvm_cpuid_entry2 *l1 = entry_find(e, n, 1, 0);
        if (l0) {
            l0->eax = MIN(l0->eax, cm->level);
        }
        if (x0) {
            x0->eax = MIN(x0->eax, cm->xlevel);
        }
        if (l1) {
            /* Family above 15 goes in the extended family field, as CPUID encodes it. */
            unsigned fam = MIN(cm->family, 15u), extfam = cm->family > 15 ? cm->family - 15 : 0;
            l1->eax = (extfam << 20) | ((cm->model >> 4) << 16) | (fam << 8) |
                      ((cm->model & 0xf) << 4) | (cm->stepping & 0xf);
        }
    }
    for (guint i = 0; features && i < features->len; i++) {
        const char *item = g_ptr_array_index((GPtrArray *)features, i);
        const CpuFeature *f = feature_find(item + 1);
        if (!f) {
            continue; /* cpu_feature_parse let nothing else through */
        }
        bool on = item[0] == '+';
        if (on && !feature_offered(host, host_n, f)) {
            warn_report("host doesn't support requested feature: CPUID.%02XH:%s.%s [bit %u]",
                     f->leaf, reg_name(f->reg), f->name, f->bit);
            continue;
        }
        feature_set(e, n, f, on);
    }
    return n;
}
