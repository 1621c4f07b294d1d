/*
 * x86 CPU models for -cpu: QEMU's model and feature names, mapped onto what KVM offers.
 *
 * "host" and "max" pass through everything KVM supports.  A named model (qemu64, kvm64,
 * Nehalem, ...) keeps only the features that model has, then "+feat"/"-feat"/"feat=on|off"
 * add or remove single features.  A feature the host cannot give is left out with a
 * warning naming its CPUID bit, as QEMU does without enforce=on.
 *
 * The tables and the CPUID rewrite are pure (no KVM), so the parser can validate names
 * before anything is created and unit tests can check the result.
 */
#ifndef SEN_HW_CPU_MODELS_H
#define SEN_HW_CPU_MODELS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/kvm.h>
#include <glib.h>
#include "sen/error.h"

/* true for a model name -cpu accepts. */
bool cpu_model_exists(const char *name);
/* Prints "-cpu help". */
void cpu_model_print_list(FILE *out);

/*
 * Checks one comma-separated item after the model name ("+x2apic", "-pdpe1gb",
 * "tsc-deadline=on", "host-phys-bits") and appends its normal form ("+x2apic" or
 * "-x2apic") to features, or nothing for accepted no-ops.  what names the option.
 */
bool cpu_feature_parse(const char *item, GPtrArray *features, const char *what, Error **errp);

/*
 * Rewrites a CPUID table (KVM_GET_SUPPORTED_CPUID's, possibly with bits the VMM emulates
 * added by the caller) in place for model + features, dropping leaves beyond the model's
 * levels.  host_extra lists features the VMM can offer although the table does not show
 * them (tsc-deadline with KVM_CAP_TSC_DEADLINE_TIMER): they are set for host/max and
 * accepted by "+feat".  Returns the new entry count.  Unsupported "+feat" warn.
 */
unsigned cpu_model_apply(struct kvm_cpuid_entry2 *e, unsigned n, const char *model,
                         const GPtrArray *features, const char *const *host_extra);

#endif
