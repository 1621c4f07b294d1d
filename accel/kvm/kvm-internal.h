/*
 * Private state of the KVM accelerator, shared by the accel/kvm sources and its unit test.
 *
 * Threads and locks:
 *   - the main thread calls every AccelOps member;
 *   - one thread per vCPU runs KVM_RUN and dispatches exits under the VM lock;
 *   - KvmState.ctl_lock (inner to the VM lock: never take the VM lock while holding it)
 *     guards the run-control fields marked [ctl] below; ctl_cond is broadcast whenever
 *     one of them changes.
 */
#ifndef SEN_ACCEL_KVM_INTERNAL_H
#define SEN_ACCEL_KVM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/kvm.h>
#include "sen/hw/cpu-boot.h"
#include "sen/log.h"
#include "sen/machine.h"

/* Fixed guest-physical pages KVM needs below 4 GiB on Intel (real-mode emulation), where
 * QEMU puts them and the e820 map reserves them: clear of a BIOS of any size at 4 GiB. */
#define KVM_TSS_ADDR          0xfeffd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL

/* The CPU topology as -smp describes it; every count is at least 1. */
typedef struct KvmTopology {
    unsigned sockets, dies, cores, threads;
} KvmTopology;

/* Number of APIC-id bits a level with `count` members takes (ceil(log2(count))). */
unsigned kvm_topo_width(unsigned count);
/* APIC-id bit where the core / die / package number starts. */
unsigned kvm_topo_core_shift(const KvmTopology *t);
unsigned kvm_topo_die_shift(const KvmTopology *t);
unsigned kvm_topo_pkg_shift(const KvmTopology *t);
/* Fills t from the config's -smp values, repairing zeros and a product below cpus. */
void kvm_topo_from_config(KvmTopology *t, const MachineConfig *cfg);

/*
 * Builds the CPUID table of one vCPU from KVM_GET_SUPPORTED_CPUID's entries: APIC id and
 * topology leaves (1, 4, 0xB, 0x1F, 0x80000008), hypervisor bit, ARCH_CAPABILITIES hidden,
 * paravirt leaves kept.  Returns a new array (g_free) of *out_n entries.
 */
struct kvm_cpuid_entry2 *kvm_cpuid_build(const struct kvm_cpuid_entry2 *supported,
                                         unsigned n, const KvmTopology *t,
                                         uint32_t apic_id, unsigned *out_n);
/* The entry for (function, index) or NULL. */
struct kvm_cpuid_entry2 *kvm_cpuid_find(struct kvm_cpuid_entry2 *e, unsigned n,
                                        uint32_t function, uint32_t index);
/* Removes every occurrence of msr from list; returns the new count. */
unsigned kvm_msr_list_remove(uint32_t *indices, unsigned n, uint32_t msr);

/*
 * Guest linear -> physical address through the guest's page tables as the control
 * registers describe them (paging off: identity).  Every table read is bounds-checked
 * through guest_mem; false when unmapped or the tables lie outside RAM.
 */
bool kvm_translate(GuestMemory *gm, uint64_t cr0, uint64_t cr3, uint64_t cr4, uint64_t efer,
                   uint64_t linear, uint64_t *phys);

/* One KVM memory slot per RAM region, kept so dirty logging can flip flags later. */
typedef struct KvmSlot {
    uint32_t slot;
    uint32_t flags;  /* KVM_MEM_* */
    uint64_t gpa, size;
    void *hva;
    unsigned long *ring_dirty;  /* [dirty_lock] dirty ring only: pages the rings reported
                                 * and no sync has taken yet (bit n = page n) */
    unsigned long *ring_dirty_words; /* [dirty_lock] bit w: word w of ring_dirty may be
                                      * non-zero, so a sync costs what was written */
    unsigned long *get_log;     /* KVM_GET_DIRTY_LOG's buffer, kept from one sync to the
                                 * next (migration thread; freed when logging stops) */
} KvmSlot;

/* What a vCPU looked like right after creation: its power-on state, restored at reset. */
typedef struct KvmVcpuReset {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_debugregs debugregs;
    struct kvm_xcrs xcrs;
    bool have_xcrs;
    struct kvm_xsave *xsave;  /* NULL without KVM_CAP_XSAVE */
} KvmVcpuReset;

typedef struct KvmState KvmState;

typedef struct KvmVcpu {
    KvmState *s;
    unsigned index;
    uint32_t apic_id;
    int fd;
    struct kvm_run *run;   /* mmap of the shared kvm_run area */
    pthread_t thread;
    bool thread_started;

    bool parked;           /* [ctl] waiting outside KVM_RUN and outside exit handlers */
    bool in_run;           /* [ctl] inside (or about to enter) KVM_RUN */
    bool stopped;          /* [ctl] stays parked until the next reset (shutdown, error) */
    unsigned hold;         /* [ctl] > 0: park even while running (register reads) */

    KvmVcpuReset reset;
    RateLimit rl_io, rl_mmio, rl_exit;

    struct kvm_dirty_gfn *dirty_ring; /* mmap of this vCPU's dirty ring, or NULL */
    uint32_t dirty_fetch;  /* [dirty_lock] index of the next entry to harvest */
    uint32_t dirty_fetch_at_full; /* [dirty_lock] dirty_fetch after the previous ring-full
                                   * exit's reap; dirty_full_seen: there was one */
    bool dirty_full_seen;
} KvmVcpu;

struct KvmState {
    Machine *m;
    int kvm_fd, vm_fd;
    size_t run_size;
    bool have_xcrs, have_xsave, have_debugregs, have_vcpu_events;
    bool have_readonly_mem;  /* KVM_CAP_READONLY_MEM: ROM gets a read-only slot */
    size_t xsave_size;

    KvmSlot *slots;
    unsigned nr_slots;

    uint32_t *msrs;               /* KVM_GET_MSR_INDEX_LIST: MSRs vCPUs support */
    unsigned nr_msrs;
    struct kvm_msr_entry *feature_msrs; /* feature MSR values to give every vCPU */
    unsigned nr_feature_msrs;
    bool has_pit;           /* false with -machine pit=off */
    bool split_irqchip;     /* kernel-irqchip=split: LAPICs only; no PIC, IOAPIC, PIT */
    struct kvm_cpuid_entry2 *supported_cpuid; /* after -cpu MODEL,+feat,-feat */
    unsigned nr_supported_cpuid;
    KvmTopology topo;
    bool warned_bad_gsi;          /* VM lock */
    struct KvmIrqRoutes *irq_routes; /* MSI routes (kvm-irq.c), VM lock; NULL = none yet */

    KvmVcpu *vcpus;
    unsigned nr_vcpus;

    /* irqchip and PIT right after creation: their power-on state. */
    struct kvm_irqchip reset_pic[2], reset_ioapic;
    struct kvm_pit_state2 reset_pit;

    GMutex ctl_lock;
    GCond ctl_cond;
    bool running;                 /* [ctl] resume() called and no pause() since */
    bool quit;                    /* [ctl] destroy: vCPU threads end */
    struct KvmThrottle *throttle; /* kvm-dirty.c, main/migration thread; NULL = off */

    /* Dirty ring (kvm-dirty.c), fixed at init; 0 entries = KVM_GET_DIRTY_LOG bitmaps. */
    uint32_t dirty_ring_entries;
    size_t dirty_ring_bytes;
    /* Innermost lock (take nothing while holding it): one harvester at a time over all
     * rings, KVM_RESET_DIRTY_RINGS, and the slots' ring_dirty maps. */
    GMutex dirty_lock;
    bool warned_bad_dirty_gfn;    /* [dirty_lock] an entry named no slot of ours */
    bool warned_dirty_lost;       /* [dirty_lock] */
    gint dirty_ring_full_exits;   /* atomic: KVM_EXIT_DIRTY_RING_FULL seen (tests) */
    gint dirty_ring_lost;         /* atomic: times a ring lost entries (tests) */
};

static inline KvmState *kvm_state(Machine *m)
{
    return m->accel_state;
}

/* kvm-cpuid.c */
bool kvm_vcpu_setup_cpuid(KvmVcpu *v, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool kvm_read_feature_msrs(KvmState *s, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Power-on MSR values (TSC 0, paravirt MSRs off ...); all vCPUs in one go keeps the TSCs
 * synchronized. */
bool kvm_vcpu_reset_msrs(KvmVcpu *v, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool kvm_msr_supported(const KvmState *s, uint32_t msr);

/* kvm-vcpu.c */
bool kvm_vcpu_create(KvmState *s, unsigned index, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool kvm_vcpu_start_thread(KvmVcpu *v, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void kvm_vcpu_destroy(KvmVcpu *v);
void kvm_vcpus_resume(KvmState *s);
void kvm_vcpus_pause(KvmState *s);
void kvm_vcpus_quit(KvmState *s);
/* Lets every stopped vCPU (triple fault, internal error) run again after a reset. */
void kvm_vcpus_clear_stopped(KvmState *s);
/* Calls fn while v is held outside KVM_RUN, so its register ioctls cannot block. */
void kvm_vcpu_with_registers(KvmVcpu *v, void (*fn)(KvmVcpu *v, void *opaque),
                             void *opaque);
bool kvm_vcpu_reset(KvmVcpu *v, const CpuBootState *boot, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* kvm-dump.c */
/* Registers of one vCPU whose thread is not in KVM_RUN. */
void kvm_vcpu_dump(KvmVcpu *v, FILE *out);
/* Internal-error style report: reason, RIP, instruction bytes, registers. */
void kvm_vcpu_report_failure(KvmVcpu *v, const char *what, FILE *out);
void kvm_dump_state(Machine *m, FILE *out);

/* kvm-irq.c */
void kvm_set_irq(Machine *m, unsigned gsi, int level);
void kvm_signal_msi(Machine *m, uint64_t addr, uint32_t data);
int kvm_add_msi_route(Machine *m, uint64_t addr, uint32_t data, Error **errp);
bool kvm_update_msi_route(Machine *m, int gsi, uint64_t addr, uint32_t data, Error **errp);
void kvm_set_ioapic_route(Machine *m, unsigned pin, bool valid, uint64_t addr, uint32_t data);
void kvm_release_msi_route(Machine *m, int gsi);
bool kvm_irqfd_assign(Machine *m, int fd, int gsi, bool assign, Error **errp);
bool kvm_ioeventfd_assign(Machine *m, bool mmio, uint64_t addr, unsigned len, bool match,
                          uint64_t datamatch, int fd, bool assign, Error **errp);
void kvm_irq_routes_free(KvmState *s);

/* kvm-state.c: AccelOps.state_save / state_load (vCPUs paused, VM lock held). */
typedef struct VMStateOut VMStateOut;
typedef struct VMStateIn VMStateIn;
bool kvm_state_save(Machine *m, VMStateOut *out, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool kvm_state_load(Machine *m, VMStateIn *in, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* kvm-dirty.c: KVM_MEM_LOG_DIRTY_PAGES on every slot + KVM_GET_DIRTY_LOG */
bool kvm_dirty_log_start(Machine *m, Error **errp);
void kvm_dirty_log_stop(Machine *m);
void kvm_dirty_log_harvest(Machine *m);
bool kvm_dirty_log_sync(Machine *m, unsigned region, unsigned long *bitmap,
                        unsigned long *summary, Error **errp);
void kvm_set_throttle(Machine *m, unsigned pct);
/* kvm-dirty.c: the dirty ring (-accel kvm,dirty-ring-size=N).  enable: after the memory
 * slots, before any vCPU; map: for each vCPU after KVM_CREATE_VCPU. */
bool kvm_dirty_ring_enable(KvmState *s, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool kvm_dirty_ring_map(KvmVcpu *v, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void kvm_dirty_ring_unmap(KvmVcpu *v);
void kvm_dirty_ring_free(KvmState *s);
/* Harvests every vCPU's ring into the slots' ring_dirty maps and lets KVM reuse the
 * entries (KVM_RESET_DIRTY_RINGS).  Any thread, no lock needed (takes dirty_lock). */
void kvm_dirty_ring_reap(KvmState *s);
/* KVM_EXIT_DIRTY_RING_FULL on v (its thread, outside KVM_RUN): reap so it can run on. */
void kvm_dirty_ring_full(KvmVcpu *v);

#endif
