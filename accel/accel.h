/*
 * AccelOps: what runs guest code.  Two implementations: kvm (real vCPUs) and qtest (no
 * vCPU; a socket protocol pokes I/O and memory and steps the virtual clock).
 *
 * Lifecycle, all on the main thread:
 *   init -> reset_cpus -> start -> (pause -> reset_cpus -> resume)* -> destroy
 */
#ifndef SEN_ACCEL_H
#define SEN_ACCEL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include "sen/error.h"
#include "sen/machine.h"
#include "sen/hw/cpu-boot.h"

typedef struct VMStateOut VMStateOut;
typedef struct VMStateIn VMStateIn;

struct AccelOps {
    const char *name;            /* "kvm", "qtest" */
    bool manual_clock;           /* the virtual clock only moves when told (qtest) */
    /* Creates the VM: memory slots for every RAM region of m->mem, interrupt controller,
     * timer, vCPUs (threads not yet running guest code). */
    bool (*init)(Machine *m, Error **errp);
    /* Puts every vCPU in its power-on state and the BSP at the boot entry. */
    bool (*reset_cpus)(Machine *m, const CpuBootState *bsp, Error **errp);
    /* Lets vCPUs run guest code (first time and after pause). */
    void (*resume)(Machine *m);
    /* Returns once no vCPU is inside guest code or an exit handler.  Called without the
     * VM lock. */
    void (*pause)(Machine *m);
    /* Level of a GSI line (VM lock held). */
    void (*set_irq)(Machine *m, unsigned gsi, int level);
    /* Prints vCPU registers (for internal-error reports and `info registers`). */
    void (*dump_state)(Machine *m, FILE *out);
    void (*destroy)(Machine *m);

    /*
     * Interrupt and notification plumbing for PCI/virtio (VM lock held).  A member left
     * NULL means "not available here"; callers then take the slow path (msix_notify, the
     * BAR's own write handler).
     */
    /* Delivers one MSI (addr/data as the guest programmed them). */
    void (*signal_msi)(Machine *m, uint64_t addr, uint32_t data);
    /* A GSI routed to an MSI message; returns the GSI (>= 24) or -1. */
    int (*add_msi_route)(Machine *m, uint64_t addr, uint32_t data, Error **errp);
    bool (*update_msi_route)(Machine *m, int gsi, uint64_t addr, uint32_t data,
                             Error **errp);
    void (*release_msi_route)(Machine *m, int gsi);
    /* kernel-irqchip=split: IOAPIC pin (GSI < 24) as an MSI route, or no route (!valid).
     * KVM uses level pins' routes to know which vectors exit on EOI. */
    void (*set_ioapic_route)(Machine *m, unsigned pin, bool valid, uint64_t addr,
                             uint32_t data);
    /* Signals on eventfd fd raise gsi (assign) / stop doing so (!assign). */
    bool (*irqfd_assign)(Machine *m, int fd, int gsi, bool assign, Error **errp);
    /* Guest writes of len bytes (1/2/4/8; with match: of value datamatch) to addr in the
     * I/O (mmio false) or memory space signal fd instead of exiting to a handler. */
    bool (*ioeventfd_assign)(Machine *m, bool mmio, uint64_t addr, unsigned len,
                             bool match, uint64_t datamatch, int fd, bool assign,
                             Error **errp);

    /*
     * Migration (main thread, vCPUs paused, VM lock held); NULL = no accelerator state.
     * state_save appends the accelerator's sections (vCPUs, interrupt controllers,
     * clock) with vmstate_save_section; state_load loads every one of them with
     * vmstate_load_section into a machine built from the same configuration.
     */
    bool (*state_save)(Machine *m, VMStateOut *out, Error **errp);
    bool (*state_load)(Machine *m, VMStateIn *in, Error **errp);

    /*
     * Dirty-page logging for migration (accel/kvm/kvm-dirty.c), called from the migration
     * thread.  NULL: guest CPUs write no RAM here (qtest) and only device writes, which
     * guest_mem_mark_dirty() records, are tracked.
     */
    bool (*dirty_log_start)(Machine *m, Error **errp);
    void (*dirty_log_stop)(Machine *m);
    /* Once per sync, before dirty_log_sync of each region: collects what vCPUs wrote
     * into the accelerator's own per-region records (the dirty ring, harvested once
     * for all regions).  NULL: nothing to collect. */
    void (*dirty_log_harvest)(Machine *m);
    /* ORs the pages of RAM region `region` (guest_mem_region() order) that vCPUs wrote
     * since the previous call into bitmap (bit n = page n of the region, 4 KiB pages,
     * unsigned long words), sets bit w of summary (unless NULL) for each word w it
     * ORed bits into, and re-arms logging for them. */
    bool (*dirty_log_sync)(Machine *m, unsigned region, unsigned long *bitmap,
                           unsigned long *summary, Error **errp);
    /* Auto-converge: keep vCPUs out of guest code pct percent of the time (0 = off). */
    void (*set_throttle)(Machine *m, unsigned pct);
};

extern const AccelOps kvm_accel_ops;
extern const AccelOps qtest_accel_ops;

#endif
