/*
 * Dirty-page logging for migration: KVM_MEM_LOG_DIRTY_PAGES on every memory slot and
 * KVM_GET_DIRTY_LOG per slot.
 *
 * KVM_GET_DIRTY_LOG (without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled) returns the pages
 * written since the previous call and write-protects them again in the same ioctl, so a
 * page written after the call is reported by the next one: nothing is lost between the
 * fetch and the copy the migration thread makes afterwards.  The dirty ring would avoid
 * walking whole bitmaps on huge guests; it is not used yet (see docs/migration.md).
 *
 * Slot flags change with KVM_SET_USER_MEMORY_REGION on a slot that keeps its address and
 * size, which KVM allows while vCPUs run.  Only the migration thread calls these.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include "accel/kvm/kvm-internal.h"

static bool kvm_slot_set_flags(KvmState *s, KvmSlot *slot, uint32_t flags, Error **errp)
{
    struct kvm_userspace_memory_region mr = {
        .slot = slot->slot, .flags = flags, .guest_phys_addr = slot->gpa,
        .memory_size = slot->size, .userspace_addr = (uintptr_t)slot->hva,
    };
    if (ioctl(s->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot %s dirty logging on the RAM slot at 0x%"
                         G_GINT64_MODIFIER "x", (flags & KVM_MEM_LOG_DIRTY_PAGES) ?
                         "enable" : "disable", (guint64)slot->gpa);
        return false;
    }
    slot->flags = flags;
    return true;
}

bool kvm_dirty_log_start(Machine *m, Error **errp)
{
    KvmState *s = kvm_state(m);

    for (unsigned i = 0; i < s->nr_slots; i++) {
        KvmSlot *slot = &s->slots[i];
        /* ROM: the guest cannot write it, and KVM refuses logging on read-only slots. */
        if (guest_mem_region(m->mem, i)->readonly) {
            continue;
        }
        if (!kvm_slot_set_flags(s, slot, slot->flags | KVM_MEM_LOG_DIRTY_PAGES, errp)) {
            kvm_dirty_log_stop(m);
            return false;
        }
    }
    return true;
}

void kvm_dirty_log_stop(Machine *m)
{
    KvmState *s = kvm_state(m);

    for (unsigned i = 0; i < s->nr_slots; i++) {
        KvmSlot *slot = &s->slots[i];
        Error *err = NULL;
        if ((slot->flags & KVM_MEM_LOG_DIRTY_PAGES) &&
            !kvm_slot_set_flags(s, slot, slot->flags & ~KVM_MEM_LOG_DIRTY_PAGES, &err)) {
            /* Logging left on costs write faults, not correctness. */
            error_report_err(err);
        }
    }
}

bool kvm_dirty_log_sync(Machine *m, unsigned region, unsigned long *bitmap, Error **errp)
{
    KvmState *s = kvm_state(m);

    if (region >= s->nr_slots || !(s->slots[region].flags & KVM_MEM_LOG_DIRTY_PAGES)) {
        error_setg(errp, "KVM: dirty logging is not enabled on RAM region %u", region);
        return false;
    }
    KvmSlot *slot = &s->slots[region];
    size_t words = (slot->size / 4096 + 63) / 64;
    g_autofree unsigned long *log = g_new0(unsigned long, words);
    struct kvm_dirty_log d = { .slot = slot->slot, .dirty_bitmap = log };

    if (ioctl(s->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot read the dirty log of the RAM slot at 0x%"
                         G_GINT64_MODIFIER "x", (guint64)slot->gpa);
        return false;
    }
    for (size_t w = 0; w < words; w++) {
        bitmap[w] |= log[w];
    }
    return true;
}

/*
 * vCPU throttling for auto-converge, QEMU's scheme: in every cycle the vCPUs run for a
 * 10 ms timeslice and are then held outside KVM_RUN for pct/(100-pct) of it, so a
 * guest that dirties memory faster than the link can carry slows down.  A thread of its
 * own holds all vCPUs at once (kvm_vcpu_with_registers nested over the vCPUs) and
 * never takes the VM lock, so it cannot deadlock with exit handlers.
 */
#define THROTTLE_TIMESLICE_US 10000

typedef struct KvmThrottle {
    KvmState *s;
    GThread *thread;
    GMutex lock;
    GCond cond;
    unsigned pct;  /* [lock] */
    bool quit;     /* [lock] */
} KvmThrottle;

typedef struct HoldAll {
    KvmState *s;
    unsigned next;
    uint64_t sleep_us;
} HoldAll;

static void hold_next(KvmVcpu *v, void *opaque)
{
    HoldAll *h = opaque;
    if (h->next < h->s->nr_vcpus) {
        KvmVcpu *n = &h->s->vcpus[h->next++];
        kvm_vcpu_with_registers(n, hold_next, h);
    } else {
        g_usleep(h->sleep_us);
    }
}

static gpointer throttle_thread(gpointer opaque)
{
    KvmThrottle *t = opaque;

    g_mutex_lock(&t->lock);
    while (!t->quit) {
        unsigned pct = t->pct;
        g_mutex_unlock(&t->lock);
        HoldAll h = { .s = t->s, .next = 0,
                      .sleep_us = (uint64_t)THROTTLE_TIMESLICE_US * pct / (100 - pct) };
        if (t->s->nr_vcpus) {
            hold_next(NULL, &h);
        }
        g_mutex_lock(&t->lock);
        gint64 until = g_get_monotonic_time() + THROTTLE_TIMESLICE_US;
        while (!t->quit && g_cond_wait_until(&t->cond, &t->lock, until)) {
        }
    }
    g_mutex_unlock(&t->lock);
    return NULL;
}

void kvm_set_throttle(Machine *m, unsigned pct)
{
    KvmState *s = kvm_state(m);
    KvmThrottle *t = s->throttle;

    pct = MIN(pct, 99u);
    if (pct && !t) {
        t = g_new0(KvmThrottle, 1);
        t->s = s;
        t->pct = pct;
        g_mutex_init(&t->lock);
        g_cond_init(&t->cond);
        s->throttle = t;
        t->thread = g_thread_new("vcpu-throttle", throttle_thread, t);
    } else if (pct && t) {
        g_mutex_lock(&t->lock);
        t->pct = pct;
        g_mutex_unlock(&t->lock);
    } else if (!pct && t) {
        g_mutex_lock(&t->lock);
        t->quit = true;
        g_cond_broadcast(&t->cond);
        g_mutex_unlock(&t->lock);
        g_thread_join(t->thread);
        g_mutex_clear(&t->lock);
        g_cond_clear(&t->cond);
        g_free(t);
        s->throttle = NULL;
    }
}
