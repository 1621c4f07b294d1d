/*
 * The machine options: -machine, -accel, -enable-kvm, -cpu, -m and -smp, with the -smp
 * topology derivation that runs after the last option.  Part of softmmu/cmdline.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "cmdline-internal.h"
#include "sen/hw/cpu-models.h"

#define CMDLINE_MAX_CPUS 1024
#define CMDLINE_MIN_RAM (UINT64_C(1) << 20)
#define CMDLINE_MAX_RAM (UINT64_C(4) << 50)
/* QEMU rounds -m up to this, so "-m 1000001k" means the same RAM in both. */
#define CMDLINE_RAM_ALIGN 8192

static const char *const smp_keys[SMP_NKEYS] = {
    "cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus",
};

static bool accel_parse(const char *name, AccelKind *kind)
{
    if (strcmp(name, "kvm") == 0) {
        *kind = ACCEL_KVM;
        return true;
    }
    if (strcmp(name, "qtest") == 0) {
        *kind = ACCEL_QTEST;
        return true;
    }
    return false;
}

/* kernel-irqchip=on|split|off (QEMU's OnOffSplit); off would need a userspace LAPIC. */
static bool kernel_irqchip_opt(CmdlineState *s, Keyval *kv, const char *what, Error **errp)
{
    const char *v = keyval_get(kv, "kernel-irqchip");
    if (!v) {
        return true;
    }
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
        s->cfg->irqchip_split = false;
    } else if (!strcmp(v, "split")) {
        s->cfg->irqchip_split = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
        error_setg(errp, "%s: kernel-irqchip=off is not supported by Sen (its LAPICs are "
                   "always in KVM): use kernel-irqchip=on or split", what);
        return false;
    } else {
        error_setg(errp, "%s: kernel-irqchip=%s: expected on, split or off", what, v);
        return false;
    }
    return true;
}

/*
 * dirty-ring-size=N, a property of the kvm accelerator only, with QEMU's checks and
 * messages: a uint32 power of two (0 = off).  What KVM accepts (its minimum, and the
 * maximum KVM_CHECK_EXTENSION reports) is checked when the VM is created (kvm.c).
 */
static bool dirty_ring_size_opt(CmdlineState *s, Keyval *kv, const char *what, Error **errp)
{
    const char *v = keyval_get(kv, "dirty-ring-size");
    if (!v) {
        return true;
    }
    if (s->cfg->accel != ACCEL_KVM) {
        error_setg(errp, "%s: Property '%s-accel.dirty-ring-size' not found", what,
                   s->cfg->accel == ACCEL_QTEST ? "qtest" : "?");
        return false;
    }
    /* As QEMU: a 64-bit number first ("-1" is one), then the uint32 range. */
    bool negative = v[0] == '-';
    const char *digits = negative ? v + 1 : v;
    char *end;
    errno = 0;
    guint64 n = g_ascii_strtoull(digits, &end, 0);
    if (!*digits || *end || errno) {
        error_setg(errp, "%s: Parameter 'dirty-ring-size' expects uint64", what);
        return false;
    }
    if (negative || n > UINT32_MAX) {
        error_setg(errp, "%s: Parameter 'dirty-ring-size' expects uint32_t", what);
        return false;
    }
    if (n & (n - 1)) {
        error_setg(errp, "%s: dirty-ring-size must be a power of two.", what);
        return false;
    }
    s->cfg->kvm_dirty_ring_size = (uint32_t)n;
    return true;
}

bool cmdline_opt_accel(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "accel", errp);
    if (!kv) {
        return false;
    }
    const char *name = keyval_get(kv, "accel");
    if (name && strcmp(name, "help") == 0) {
        printf("Accelerators supported in Sen:\nkvm\nqtest\n");
        s->exit_early = true;
        return true;
    }
    if (!name || !*name) {
        error_setg(errp, "%s: Parameter 'accel' is missing", what);
        return false;
    }
    if (!accel_parse(name, &s->cfg->accel)) {
        error_setg(errp, "%s: accelerator '%s' is not supported by Sen (kvm or qtest)",
                   what, name);
        return false;
    }
    s->accel_given = true;
    return kernel_irqchip_opt(s, kv, what, errp) && dirty_ring_size_opt(s, kv, what, errp) &&
           keyval_check_all_used(kv, what, errp);
}

bool cmdline_opt_enable_kvm(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    s->cfg->accel = ACCEL_KVM;
    s->accel_given = true;
    return true;
}

bool cmdline_opt_machine(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "type", errp);
    if (!kv) {
        return false;
    }
    const char *type = keyval_get(kv, "type");
    const char *accel = keyval_get(kv, "accel");

    if (type && strcmp(type, "help") == 0) {
        printf("Supported machines are:\n"
               "pc                   Standard PC (i440FX + PIIX, 1996) (default)\n"
               "pc-i440fx-*          alias of pc\n"
               "q35                  Standard PC (Q35 + ICH9, 2009)\n"
               "pc-q35-*             alias of q35\n");
        s->exit_early = true;
        return true;
    }
    if (type) {
        const char *canon = NULL;
        if (!strcmp(type, "pc") || g_str_has_prefix(type, "pc-i440fx-")) {
            canon = "pc";
        } else if (!strcmp(type, "q35") || g_str_has_prefix(type, "pc-q35-")) {
            canon = "q35";
        }
        if (!canon) {
            error_setg(errp, "%s: unsupported machine type '%s'. "
                       "Use -machine help to list supported machines", what, type);
            return false;
        }
        g_free(s->cfg->machine_type);
        s->cfg->machine_type = g_strdup(canon);
    }
    if (accel) {
        /* The legacy form is a fallback list ("kvm:tcg"): take the first Sen has. */
        g_auto(GStrv) names = g_strsplit(accel, ":", -1);
        bool found = false;
        for (char **n = names; *n && !found; n++) {
            found = accel_parse(*n, &s->cfg->accel);
        }
        if (!found) {
            error_setg(errp, "%s: accelerator '%s' is not supported by Sen (kvm or qtest)",
                       what, accel);
            return false;
        }
        s->accel_given = true;
    }
    /* QEMU's acpi is on|off|auto; auto means on for pc. */
    const char *acpi = keyval_get(kv, "acpi");
    if (acpi) {
        bool on = true;
        if (strcmp(acpi, "auto") != 0 && !keyval_get_bool(kv, what, "acpi", true, &on, errp)) {
            return false;
        }
        s->cfg->no_acpi = !on;
    }
    if (!cmdline_machine_memory_opts(s, kv, what, errp)) {
        return false;
    }
    bool pit;
    if (!keyval_get_bool(kv, what, "pit", !s->cfg->no_pit, &pit, errp)) {
        return false;
    }
    s->cfg->no_pit = !pit;
    return kernel_irqchip_opt(s, kv, what, errp) && keyval_check_all_used(kv, what, errp);
}

bool cmdline_opt_no_acpi(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    s->cfg->no_acpi = true;
    return true;
}

bool cmdline_opt_cpu(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(arg, ",", -1);

    if (strcmp(parts[0], "help") == 0 || strcmp(parts[0], "?") == 0) {
        cpu_model_print_list(stdout);
        s->exit_early = true;
        return true;
    }
    if (!cpu_model_exists(parts[0])) {
        error_setg(errp, "%s: unable to find CPU model '%s' (-cpu help lists them)", what,
                   parts[0]);
        return false;
    }
    g_autoptr(GPtrArray) features = g_ptr_array_new_with_free_func(g_free);
    for (char **f = parts + 1; *f; f++) {
        if (!cpu_feature_parse(*f, features, what, errp)) {
            return false;
        }
    }
    g_free(s->cfg->cpu_model);
    s->cfg->cpu_model = g_strdup(parts[0]);
    if (s->cfg->cpu_features) {
        g_ptr_array_unref(s->cfg->cpu_features);
    }
    s->cfg->cpu_features = g_steal_pointer(&features);
    return true;
}

bool cmdline_opt_m(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "size", errp);
    Error *err = NULL;
    uint64_t size;

    if (!kv) {
        return false;
    }
    if (keyval_has(kv, "maxmem") || keyval_has(kv, "slots")) {
        error_setg(errp, "%s: memory hotplug is not supported yet", what);
        return false;
    }
    const char *str = keyval_get(kv, "size");
    if (!str) {
        error_setg(errp, "%s: missing size", what);
        return false;
    }
    if (!parse_size(str, 1024 * 1024, &size, &err)) {
        error_prepend(&err, "%s: ", what);
        error_propagate(errp, err);
        return false;
    }
    if (size < CMDLINE_MIN_RAM) {
        error_setg(errp, "%s: RAM size %" PRIu64 " bytes is too small (at least 1M)", what,
                   size);
        return false;
    }
    if (size > CMDLINE_MAX_RAM) {
        error_setg(errp, "%s: RAM size is too large (at most 4P)", what);
        return false;
    }
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    s->cfg->ram_size = (size + CMDLINE_RAM_ALIGN - 1) & ~(uint64_t)(CMDLINE_RAM_ALIGN - 1);
    s->ram_size_given = true;
    return true;
}

bool cmdline_opt_smp(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "cpus", errp);
    if (!kv) {
        return false;
    }
    for (int i = 0; i < SMP_NKEYS; i++) {
        uint64_t v;
        if (!keyval_has(kv, smp_keys[i])) {
            continue;
        }
        if (!keyval_get_u64(kv, what, smp_keys[i], 0, &v, errp)) {
            return false;
        }
        if (v > UINT32_MAX) {
            error_setg(errp, "%s: %s=%" PRIu64 " is too large", what, smp_keys[i], v);
            return false;
        }
        s->smp_has[i] = true;
        s->smp_val[i] = v;
    }
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    g_string_append_printf(s->smp_what, "%s%s", s->smp_given ? " " : "", what);
    s->smp_given = true;
    return true;
}

/* QEMU's derivation rules (since 6.2: prefer cores over sockets), then the checks. */
bool cmdline_smp_finish(CmdlineState *s, Error **errp)
{
    const char *what = s->smp_what->str;
    uint64_t v[SMP_NKEYS];

    for (int i = 0; i < SMP_NKEYS; i++) {
        v[i] = s->smp_has[i] ? s->smp_val[i] : 0;
        if (s->smp_has[i] && v[i] == 0) {
            if (i == SMP_CPUS) {
                error_setg(errp, "%s: Invalid SMP CPUs 0", what);
            } else {
                error_setg(errp, "%s: Invalid CPU topology: CPU topology parameters must "
                           "be greater than zero", what);
            }
            return false;
        }
    }
    if (v[SMP_CLUSTERS] > 1) {
        error_setg(errp, "%s: clusters not supported by this machine's CPU topology", what);
        return false;
    }
    uint64_t cpus = v[SMP_CPUS], sockets = v[SMP_SOCKETS], cores = v[SMP_CORES];
    uint64_t threads = v[SMP_THREADS], maxcpus = v[SMP_MAXCPUS];
    uint64_t dies = v[SMP_DIES] ? v[SMP_DIES] : 1;

    if (cpus == 0 && maxcpus == 0) {
        sockets = sockets ? sockets : 1;
        cores = cores ? cores : 1;
        threads = threads ? threads : 1;
    } else {
        maxcpus = maxcpus ? maxcpus : cpus;
        if (cores == 0) {
            sockets = sockets ? sockets : 1;
            threads = threads ? threads : 1;
            cores = maxcpus / (sockets * dies * threads);
        } else if (sockets == 0) {
            threads = threads ? threads : 1;
            sockets = maxcpus / (dies * cores * threads);
        }
        if (threads == 0) {
            threads = maxcpus / (sockets * dies * cores);
        }
    }
    uint64_t total;
    bool overflow = __builtin_mul_overflow(sockets, dies, &total) ||
                    __builtin_mul_overflow(total, cores, &total) ||
                    __builtin_mul_overflow(total, threads, &total);
    maxcpus = maxcpus ? maxcpus : total;
    cpus = cpus ? cpus : maxcpus;

    g_autofree char *topo = g_strdup_printf(
        "sockets (%" PRIu64 ") * dies (%" PRIu64 ") * cores (%" PRIu64 ") * threads (%"
        PRIu64 ")", sockets, dies, cores, threads);
    if (overflow || total != maxcpus) {
        error_setg(errp, "%s: Invalid CPU topology: product of the hierarchy must match "
                   "maxcpus: %s != maxcpus (%" PRIu64 ")", what, topo, maxcpus);
        return false;
    }
    if (maxcpus < cpus) {
        error_setg(errp, "%s: Invalid CPU topology: maxcpus must be equal to or greater "
                   "than smp: %s == maxcpus (%" PRIu64 ") < smp_cpus (%" PRIu64 ")",
                   what, topo, maxcpus, cpus);
        return false;
    }
    if (maxcpus > CMDLINE_MAX_CPUS) {
        error_setg(errp, "%s: Invalid SMP CPUs %" PRIu64 ". The max CPUs supported by "
                   "machine 'pc' is %d", what, maxcpus, CMDLINE_MAX_CPUS);
        return false;
    }
    MachineConfig *cfg = s->cfg;
    cfg->smp_cpus = cpus;
    cfg->smp_sockets = sockets;
    cfg->smp_dies = dies;
    cfg->smp_cores = cores;
    cfg->smp_threads = threads;
    cfg->smp_maxcpus = maxcpus;
    return true;
}
