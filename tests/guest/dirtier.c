/*
 * The migration test guest: keeps rewriting memory at CPL3 (natively fast here) with a
 * running checksum, and on request verifies every page.
 *
 * Each page of the area holds its generation g (a counter, unique over all writes) in
 * word 0 and a value derived from (g, page, word) in every other word.  A running
 * checksum adds a hash of (g, page) over all pages and is updated with every rewrite.
 * After a migration a page that was not re-sent still holds an older, self-consistent
 * generation; the checksum (kept in RAM and registers the stream also carried) then no
 * longer matches.  A page torn between two generations fails its own words.
 *
 * Command line: mb=N (area size, default 24, starting at 16 MiB), rate=P (pages
 * rewritten per second, paced with the TSC, whose rate kvmclock or the PIT gives; 0 = as
 * fast as possible; default 4000), wait=1 (verify once 'v' arrives on COM1, as the migration
 * tests send it to the destination; otherwise after slices=N 10 ms slices, default 50),
 * tick=N (print "dirtier: slice S writes W" every N slices, so a test sees the guest go on
 * from where it was after savevm/loadvm; default 0 = never).
 */
#include "lib/guest.h"
#include "lib/user.h"

#define AREA_BASE (16ull << 20)
#define WORDS_PER_PAGE 512
/* Pages are visited with a prime stride, so consecutive writes hit scattered pages. */
#define STRIDE 7919

typedef struct Dirtier {
    volatile uint64_t *area;
    uint64_t npages;
    uint64_t next;
    uint64_t gen;
    uint64_t checksum;
    uint64_t tsc_per_page; /* 0: unpaced */
    uint64_t slice_tsc;
    uint64_t deadline;
    uint64_t writes;
    uint64_t verified_sum;
} Dirtier;

static Dirtier dirtier;

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* splitmix64's finalizer */
static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t word_value(uint64_t gen, uint64_t page, unsigned i)
{
    return mix(gen * 0x9e3779b97f4a7c15ull ^ (page << 12) ^ i);
}

static inline uint64_t page_hash(uint64_t gen, uint64_t page)
{
    return mix(gen ^ (page * 0xd6e8feb86659fd93ull));
}

/* ---- user mode ---- */

static void write_page(Dirtier *d, uint64_t p)
{
    volatile uint64_t *w = d->area + p * WORDS_PER_PAGE;
    uint64_t old = w[0];
    uint64_t g = ++d->gen;
    for (unsigned i = 1; i < WORDS_PER_PAGE; i++) {
        w[i] = word_value(g, p, i);
    }
    w[0] = g;
    d->checksum += page_hash(g, p) - (old ? page_hash(old, p) : 0);
    d->writes++;
}

static uint64_t fill(void *arg)
{
    Dirtier *d = arg;
    for (uint64_t p = 0; p < d->npages; p++) {
        write_page(d, p);
    }
    return 0;
}

static uint64_t dirty_slice(void *arg)
{
    Dirtier *d = arg;
    uint64_t now = rdtsc(), end = now + d->slice_tsc;

    /* Far behind (the VM was stopped, or just migrated): do not catch up in a burst. */
    if (d->deadline + d->slice_tsc < now) {
        d->deadline = now;
    }
    while (now < end) {
        if (d->tsc_per_page && now < d->deadline) {
            now = rdtsc();
            continue;
        }
        write_page(d, d->next);
        d->next = (d->next + STRIDE) % d->npages;
        d->deadline += d->tsc_per_page;
        now = rdtsc();
    }
    return 0;
}

/* Returns the number of bad pages; the recomputed checksum goes to verified_sum. */
static uint64_t verify(void *arg)
{
    Dirtier *d = arg;
    uint64_t bad = 0, sum = 0;

    for (uint64_t p = 0; p < d->npages; p++) {
        volatile uint64_t *w = d->area + p * WORDS_PER_PAGE;
        uint64_t g = w[0];
        bool ok = g != 0 && g <= d->gen;
        for (unsigned i = 1; ok && i < WORDS_PER_PAGE; i++) {
            ok = w[i] == word_value(g, p, i);
        }
        bad += !ok;
        sum += page_hash(g, p);
    }
    d->verified_sum = sum;
    return bad;
}

/* ---- kernel mode ---- */

/* kvmclock's scale (KVM paravirtual clock) gives the TSC rate exactly; false without it. */
typedef struct {
    uint32_t version, pad0;
    uint64_t tsc_timestamp, system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags, pad[2];
} __attribute__((packed)) PvclockTime;

static PvclockTime pvclock __attribute__((aligned(64)));

static bool tsc_khz_from_kvmclock(uint64_t *khz)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000), "c"(0));
    if (b != 0x4b4d564b || a < 0x40000001) { /* "KVMKVMKVM" */
        return false;
    }
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000001), "c"(0));
    if (!(a & (1u << 3))) { /* KVM_FEATURE_CLOCKSOURCE2 */
        return false;
    }
    wrmsr(0x4b564d01, (uintptr_t)&pvclock | 1);
    barrier();
    uint32_t mul = pvclock.tsc_to_system_mul;
    int shift = pvclock.tsc_shift;
    wrmsr(0x4b564d01, 0);
    if (!mul) {
        return false;
    }
    /* ns = ((tsc << shift) * mul) >> 32, so TSC Hz = 1e9 * 2^32 / mul / 2^shift. */
    uint64_t hz = (1000000000ull << 32) / mul;
    hz = shift >= 0 ? hz >> shift : hz << -shift;
    *khz = hz / 1000;
    return *khz != 0;
}

/* TSC ticks per millisecond: kvmclock's scale, else 10 ms of PIT channel 2 (gate and
 * output on port 0x61). */
static uint64_t tsc_per_ms(void)
{
    uint64_t khz;
    if (tsc_khz_from_kvmclock(&khz)) {
        return khz;
    }
    const uint16_t ticks = 11932; /* 10 ms at 1.193182 MHz */
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0); /* channel 2, lo/hi byte, mode 0 */
    outb(0x42, ticks & 0xff);
    outb(0x42, ticks >> 8);
    if (inb(0x61) & 0x20) {
        guest_fail("no kvmclock and no PIT channel 2 output on port 0x61 to time the TSC");
    }
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < 1000000; i++) {
        if (inb(0x61) & 0x20) {
            return (rdtsc() - t0) / 10;
        }
    }
    guest_fail("PIT channel 2 never reached its terminal count");
}

static bool area_in_ram(uint64_t base, uint64_t len)
{
    for (unsigned i = 0; i < boot_info.nr_mem; i++) {
        const MemRegion *r = &boot_info.mem[i];
        if (r->type == 1 && base >= r->base && base + len <= r->base + r->len) {
            return true;
        }
    }
    return false;
}

void guest_main(void)
{
    uint64_t mb = 24, rate = 4000, wait = 0, slices = 50, idle = 0, tick = 0;
    cmdline_get_uint("mb", &mb);
    cmdline_get_uint("rate", &rate);
    cmdline_get_uint("wait", &wait);
    cmdline_get_uint("slices", &slices);
    cmdline_get_uint("idle", &idle);
    cmdline_get_uint("tick", &tick);
    if (!mb || !area_in_ram(AREA_BASE, mb << 20)) {
        guest_fail("dirtier: %lu MiB at 16 MiB is not all RAM (give the VM more -m)", mb);
    }

    Dirtier *d = &dirtier;
    uint64_t khz = tsc_per_ms();
    d->area = phys_ptr(AREA_BASE);
    d->npages = (mb << 20) / 4096;
    d->slice_tsc = khz * 10;
    d->tsc_per_page = rate ? khz * 1000 / rate : 0;
    user_init();
    user_call(fill, d);
    if (idle) {
        guest_printf("dirtier: filled %lu MiB\n", mb);
        for (;;) {
            __asm__ volatile("cli; hlt");
        }
    }
    d->deadline = rdtsc();
    guest_printf("dirtier: running, %lu pages, %lu pages/s, TSC %lu kHz\n", d->npages, rate,
                 khz);

    for (uint64_t n = 0;; n++) {
        user_call(dirty_slice, d);
        if (tick && n % tick == 0) {
            guest_printf("dirtier: slice %lu writes %lu\n", n, d->writes);
        }
        if (wait) {
            if ((inb(0x3fd) & 1) && inb(0x3f8) == 'v') {
                break;
            }
        } else if (n >= slices) {
            break;
        }
    }
    guest_printf("dirtier: verifying after %lu page writes\n", d->writes);
    uint64_t bad = user_call(verify, d);
    GUEST_CHECK(bad == 0, "every page holds a whole generation (%lu bad)", bad);
    GUEST_CHECK(d->verified_sum == d->checksum,
                "the pages add up to the running checksum (0x%lx, running 0x%lx)",
                d->verified_sum, d->checksum);
    guest_pass();
}
