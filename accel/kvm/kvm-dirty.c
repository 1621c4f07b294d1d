/*
 * Dirty-page logging for migration: KVM_MEM_LOG_DIRTY_PAGES on every memory slot, and
 * either KVM_GET_DIRTY_LOG per slot (the default) or the per-vCPU dirty ring
 * (-accel kvm,dirty-ring-size=N; docs/dirty-ring.md).
 *
 * Bitmaps: KVM_GET_DIRTY_LOG (without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled) returns
 * the pages written since the previous call and write-protects them again in the same
 * ioctl, so a page written after the call is reported by the next one: nothing is lost
 * between the fetch and the copy the migration thread makes afterwards.
 *
 * Ring: KVM appends one entry (slot, page offset) to the writing vCPU's ring for the
 * first write to a page after logging started or after the page was last reset.  We
 * harvest entries into per-slot maps (ring_dirty) and then KVM_RESET_DIRTY_RINGS
 * write-protects the harvested pages again.  A write between our harvest and the reset
 * makes no new entry, but sync returns only after the reset and migration copies pages
 * only after sync, so such a write is in the copy; a write after the reset makes a new
 * entry.  The cost follows the pages written, not the guest's size.  A ring that fills
 * up stops its vCPU (KVM_EXIT_DIRTY_RING_FULL); the vCPU thread reaps and runs on.
 *
 * Slot flags change with KVM_SET_USER_MEMORY_REGION on a slot that keeps its address and
 * size, which KVM allows while vCPUs run.  Only the migration thread starts, syncs and
 * stops logging; vCPU threads reap full rings.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "accel/kvm/kvm-internal.h"

static size_t slot_words(const KvmSlot *slot)
{
    return (slot->size / 4096 + 63) / 64;
}

static size_t slot_summary_words(const KvmSlot *slot)
{
    return (slot_words(slot) + 63) / 64;
}

/* dirty_lock held.  ORs bits into word `word` of the slot's map (bit n: page 64*word+n). */
static void slot_mark_locked(KvmSlot *slot, uint64_t word, unsigned long bits)
{
    slot->ring_dirty[word] |= bits;
    slot->ring_dirty_words[word / 64] |= 1ul << (word % 64);
}

/* ---- the dirty ring ---- */

bool kvm_dirty_ring_enable(KvmState *s, Error **errp)
{
    uint32_t entries = s->m->cfg->kvm_dirty_ring_size;

    if (!entries) {
        return true;
    }
    /* The ACQ_REL flavour promises exactly the ordering the harvest below uses (needed
     * on weakly ordered hosts); x86 kernels offer both, older ones only the first. */
    int cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    int max_bytes = ioctl(s->vm_fd, KVM_CHECK_EXTENSION, cap);
    if (max_bytes <= 0) {
        cap = KVM_CAP_DIRTY_LOG_RING;
        max_bytes = ioctl(s->vm_fd, KVM_CHECK_EXTENSION, cap);
    }
    if (max_bytes <= 0) {
        /* As QEMU: the option asks for a faster method, not for a different result. */
        warn_report("-accel kvm,dirty-ring-size=%u: KVM dirty ring not available, using "
                    "bitmap method", entries);
        return true;
    }
    uint64_t bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
    if (bytes > (uint64_t)max_bytes) {
        error_setg(errp, "-accel kvm,dirty-ring-size=%u: KVM dirty ring size %u too big "
                   "(maximum is %zu).  Please use a smaller value.", entries, entries,
                   (size_t)max_bytes / sizeof(struct kvm_dirty_gfn));
        return false;
    }
    struct kvm_enable_cap ec = { .cap = cap, .args = { bytes } };
    if (ioctl(s->vm_fd, KVM_ENABLE_CAP, &ec) < 0) {
        /* KVM's minimum is a page and more than its reserved entries. */
        error_setg(errp, "-accel kvm,dirty-ring-size=%u: Enabling of KVM dirty ring failed: "
                   "%s. Suggested minimum value is 1024.", entries, g_strerror(errno));
        return false;
    }
    s->dirty_ring_entries = entries;
    s->dirty_ring_bytes = bytes;
    for (unsigned i = 0; i < s->nr_slots; i++) {
        s->slots[i].ring_dirty = g_new0(unsigned long, slot_words(&s->slots[i]));
        s->slots[i].ring_dirty_words = g_new0(unsigned long,
                                              slot_summary_words(&s->slots[i]));
    }
    return true;
}

bool kvm_dirty_ring_map(KvmVcpu *v, Error **errp)
{
    KvmState *s = v->s;

    if (!s->dirty_ring_bytes) {
        return true;
    }
    void *ring = mmap(NULL, s->dirty_ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
                      (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
    if (ring == MAP_FAILED) {
        error_setg_errno(errp, errno, "vCPU %u: cannot map its KVM dirty ring", v->index);
        return false;
    }
    v->dirty_ring = ring;
    v->dirty_fetch = 0;
    return true;
}

void kvm_dirty_ring_unmap(KvmVcpu *v)
{
    if (v->dirty_ring) {
        munmap(v->dirty_ring, v->s->dirty_ring_bytes);
        v->dirty_ring = NULL;
    }
}

void kvm_dirty_ring_free(KvmState *s)
{
    for (unsigned i = 0; i < s->nr_slots; i++) {
        g_clear_pointer(&s->slots[i].ring_dirty, g_free);
        g_clear_pointer(&s->slots[i].ring_dirty_words, g_free);
        g_clear_pointer(&s->slots[i].get_log, g_free);
    }
}

/* dirty_lock held.  slot is (address space << 16) | slot id, as KVM packs it. */
static void ring_mark_locked(KvmState *s, uint32_t slot, uint64_t page)
{
    uint32_t id = slot & 0xffff;

    if ((slot >> 16) != 0 || id >= s->nr_slots || page >= s->slots[id].size / 4096 ||
        !s->slots[id].ring_dirty) {
        if (!s->warned_bad_dirty_gfn) {
            s->warned_bad_dirty_gfn = true;
            warn_report("KVM dirty ring: entry for slot 0x%x page 0x%" G_GINT64_MODIFIER
                        "x, which is not guest RAM here; ignored", slot, (guint64)page);
        }
        return;
    }
    slot_mark_locked(&s->slots[id], page / 64, 1ul << (page % 64));
}

/*
 * dirty_lock held.  Entries may have been lost: every page of every slot counts as
 * written, so the next sync sends all of guest RAM again (slow, never wrong).  KVM stops
 * a vCPU at a soft limit well below the ring size, so this means a host fault; seen on
 * kvm_pvm, whose CPL0 emulation can write more pages in one KVM_RUN than the ring holds.
 */
static void ring_lost_entries_locked(KvmState *s, unsigned vcpu)
{
    for (unsigned i = 0; i < s->nr_slots; i++) {
        KvmSlot *slot = &s->slots[i];
        uint64_t pages = slot->size / 4096;
        if (!slot->ring_dirty) {
            continue;
        }
        for (uint64_t w = 0; w < pages / 64; w++) {
            slot_mark_locked(slot, w, ~0ul);
        }
        if (pages % 64) {
            /* Bits past the slot's end stay clear: they are no page of it. */
            slot_mark_locked(slot, pages / 64, (1ul << (pages % 64)) - 1);
        }
    }
    g_atomic_int_inc(&s->dirty_ring_lost);
    if (!s->warned_dirty_lost) {
        s->warned_dirty_lost = true;
        warn_report("KVM dirty ring of vCPU %u overran (KVM did not stop the vCPU before "
                    "its ring filled): all guest RAM counts as dirty", vcpu);
    }
}

/* dirty_lock held.  Takes every entry KVM has published on v's ring; returns how many. */
static unsigned ring_harvest_locked(KvmVcpu *v)
{
    KvmState *s = v->s;
    uint32_t mask = s->dirty_ring_entries - 1;
    unsigned n = 0;

    /* KVM cannot publish more than the ring holds between two resets, so a full lap
     * means it overwrote entries we had not read. */
    while (n < s->dirty_ring_entries) {
        struct kvm_dirty_gfn *e = &v->dirty_ring[v->dirty_fetch & mask];
        /* Acquire: KVM writes slot and offset, then releases flags = DIRTY; reading the
         * flag first with acquire makes the two fields below the ones it published. */
        uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
        if (!(flags & KVM_DIRTY_GFN_F_DIRTY)) {
            break; /* not yet written, or harvested and waiting for the reset */
        }
        uint32_t slot = e->slot;
        uint64_t page = e->offset;
        /* Release: the reads above complete before KVM can see the entry as harvested,
         * reset it and write the next generation into it. */
        __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        v->dirty_fetch++;
        n++;
        ring_mark_locked(s, slot, page);
    }
    if (n == s->dirty_ring_entries) {
        ring_lost_entries_locked(s, v->index);
    }
    return n;
}

/* dirty_lock held.  Harvests every ring, then gives the entries back to KVM (and has
 * their pages write-protected again) in the same critical section, so no harvested
 * entry waits for a reset another thread believes it did. */
static void ring_reap_locked(KvmState *s, bool reset)
{
    unsigned harvested = 0;
    for (unsigned i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpus[i].dirty_ring) {
            harvested += ring_harvest_locked(&s->vcpus[i]);
        }
    }
    if ((harvested || reset) && ioctl(s->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0 &&
        !s->warned_bad_dirty_gfn) {
        s->warned_bad_dirty_gfn = true;
        warn_report("KVM_RESET_DIRTY_RINGS failed: %s", g_strerror(errno));
    }
}

void kvm_dirty_ring_reap(KvmState *s)
{
    if (!s->dirty_ring_bytes) {
        return;
    }
    g_mutex_lock(&s->dirty_lock);
    ring_reap_locked(s, false);
    g_mutex_unlock(&s->dirty_lock);
}

/*
 * dirty_lock held, v outside KVM_RUN (so nothing writes its ring).  After an overrun KVM
 * counts entries as pending that were overwritten and already reset: they never show
 * DIRTY again, our fetch index stops in front of them, and KVM, finding the ring full
 * at every entry, would stop the vCPU forever.  Marking them harvested lets
 * KVM_RESET_DIRTY_RINGS move past them and brings both indices together again.
 */
static void ring_resync_locked(KvmVcpu *v)
{
    KvmState *s = v->s;
    uint32_t mask = s->dirty_ring_entries - 1;

    for (unsigned i = 0; i < s->dirty_ring_entries; i++) {
        struct kvm_dirty_gfn *e = &v->dirty_ring[v->dirty_fetch & mask];
        if (__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY) {
            break;
        }
        __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        v->dirty_fetch++;
    }
    ring_lost_entries_locked(s, v->index);
}

void kvm_dirty_ring_full(KvmVcpu *v)
{
    KvmState *s = v->s;

    g_atomic_int_inc(&s->dirty_ring_full_exits);
    g_mutex_lock(&s->dirty_lock);
    ring_reap_locked(s, false);
    /* Between two full exits KVM publishes at least its soft limit of entries, which
     * someone harvests; no progress at all means the indices disagree. */
    if (v->dirty_full_seen && v->dirty_fetch == v->dirty_fetch_at_full) {
        ring_resync_locked(v);
        ring_reap_locked(s, true);
    }
    v->dirty_full_seen = true;
    v->dirty_fetch_at_full = v->dirty_fetch;
    g_mutex_unlock(&s->dirty_lock);
}

/* Drops what the rings and maps hold: logging (re)starts from a clean state. */
static void ring_discard(KvmState *s)
{
    kvm_dirty_ring_reap(s);
    g_mutex_lock(&s->dirty_lock);
    for (unsigned i = 0; i < s->nr_slots; i++) {
        KvmSlot *slot = &s->slots[i];
        if (slot->ring_dirty) {
            memset(slot->ring_dirty, 0, slot_words(slot) * sizeof(unsigned long));
            memset(slot->ring_dirty_words, 0, slot_summary_words(slot) * sizeof(unsigned long));
        }
    }
    g_mutex_unlock(&s->dirty_lock);
}

/* ---- logging on the slots, and sync ---- */

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

    ring_discard(s); /* entries left from an earlier migration are not this one's */

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
        g_clear_pointer(&slot->get_log, g_free);
    }
    ring_discard(s);
}

void kvm_dirty_log_harvest(Machine *m)
{
    /* Once for every region: each ring holds entries of all slots. */
    kvm_dirty_ring_reap(kvm_state(m));
}

/* ORs word w of a slot's log into bitmap and names it in summary. */
static void log_merge(unsigned long *bitmap, unsigned long *summary, size_t w,
                      unsigned long bits)
{
    bitmap[w] |= bits;
    if (summary) {
        summary[w / 64] |= 1ul << (w % 64);
    }
}

bool kvm_dirty_log_sync(Machine *m, unsigned region, unsigned long *bitmap,
                        unsigned long *summary, Error **errp)
{
    KvmState *s = kvm_state(m);

    if (region >= s->nr_slots || !(s->slots[region].flags & KVM_MEM_LOG_DIRTY_PAGES)) {
        error_setg(errp, "KVM: dirty logging is not enabled on RAM region %u", region);
        return false;
    }
    KvmSlot *slot = &s->slots[region];
    size_t words = slot_words(slot);
    if (s->dirty_ring_bytes) {
        /* KVM refuses KVM_GET_DIRTY_LOG once the ring is enabled.  The rings were
         * harvested (kvm_dirty_log_harvest); only the words the summary names are
         * visited: an idle 4 GiB guest costs 256 word reads. */
        g_mutex_lock(&s->dirty_lock);
        for (size_t sw = 0; sw < slot_summary_words(slot); sw++) {
            unsigned long sum = slot->ring_dirty_words[sw];
            slot->ring_dirty_words[sw] = 0;
            while (sum) {
                size_t w = sw * 64 + (size_t)__builtin_ctzl(sum);
                sum &= sum - 1;
                if (slot->ring_dirty[w]) {
                    log_merge(bitmap, summary, w, slot->ring_dirty[w]);
                    slot->ring_dirty[w] = 0;
                }
            }
        }
        g_mutex_unlock(&s->dirty_lock);
        return true;
    }
    /* KVM writes the whole bitmap each time (copy_to_user of every word), so the buffer
     * needs no clearing; reading it is the one cost that follows the slot's size, as
     * KVM's own walk of its bitmap does. */
    if (!slot->get_log) {
        slot->get_log = g_new(unsigned long, words);
    }
    struct kvm_dirty_log d = { .slot = slot->slot, .dirty_bitmap = slot->get_log };

    if (ioctl(s->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0) {
        error_setg_errno(errp, errno, "KVM: cannot read the dirty log of the RAM slot at 0x%"
                         G_GINT64_MODIFIER "x", (guint64)slot->gpa);
        return false;
    }
    for (size_t w = 0; w < words; w++) {
        if (slot->get_log[w]) {
            log_merge(bitmap, summary, w, slot->get_log[w]);
        }
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
