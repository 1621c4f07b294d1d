/*
 * Every vCPU of a large guest checks in (-smp 288 -m 1T, tests/functional/test_scale.py).
 * The BSP starts all APs with one broadcast INIT-SIPI-SIPI; each AP records its x2APIC id
 * (CPUID leaf 0xB: xAPIC's 8-bit id register cannot tell CPUs 256 and up apart) and
 * counts itself.  The expected count is the command line's cpus= (the MP table stops at
 * 254 CPUs).  The work per CPU is a few hundred instructions, so this stays fast where
 * kernel-mode guest code is emulated.  When the memory map reaches beyond 512 GiB the
 * BSP also writes and reads back the last page of RAM: RAM that far up is real.
 */
#include "lib/guest.h"

#define MAX_X2APIC_ID 4096

static volatile uint32_t cpus_up = 1;
static volatile uint8_t seen[MAX_X2APIC_ID];
static volatile uint32_t bad_id = UINT32_MAX;

static uint32_t x2apic_id(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xb), "c"(0));
    return d;
}

static void ap_main(unsigned index)
{
    (void)index;
    uint32_t id = x2apic_id();
    if (id >= MAX_X2APIC_ID || __atomic_exchange_n(&seen[id], 1, __ATOMIC_SEQ_CST)) {
        bad_id = id;
    }
    __asm__ volatile("lock incl %0" : "+m"(cpus_up)::"memory");
}

/* The kit maps the first 4 GiB only: reach higher RAM through one 2 MiB page (1 GiB
 * pages are an optional CPU feature). */
static void check_high_ram(uint64_t top)
{
    uint64_t addr = top - 4096;
    uint64_t *pml4, *pdpt;
    __asm__ volatile("mov %%cr3, %0" : "=r"(pml4));
    pml4 = (uint64_t *)((uintptr_t)pml4 & ~0xfffull);
    /* A PDPT of our own for the 512 GiB slot that holds addr (slot 0 is the kit's). */
    unsigned slot = (unsigned)(addr >> 39) & 511;
    GUEST_CHECK(slot != 0, "ram_top 0x%lx is above 512 GiB", top);
    static uint64_t new_pdpt[512] __attribute__((aligned(4096)));
    static uint64_t new_pd[512] __attribute__((aligned(4096)));
    pdpt = new_pdpt;
    new_pd[(addr >> 21) & 511] = (addr & ~((1ull << 21) - 1)) | 0x83; /* present, rw, 2 MiB */
    pdpt[(addr >> 30) & 511] = (uintptr_t)new_pd | 0x3;
    pml4[slot] = (uintptr_t)pdpt | 0x3;
    __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
    volatile uint64_t *p = (volatile uint64_t *)addr;
    *p = 0x5e1a3e5e1a3eull;
    GUEST_CHECK(*p == 0x5e1a3e5e1a3eull, "RAM at 0x%lx reads back what was written", addr);
}

void guest_main(void)
{
    uint64_t expected, ram_top = 0;
    if (!cmdline_get_uint("cpus", &expected) || expected == 0) {
        guest_fail("no cpus= on the command line");
    }
    GUEST_CHECK(expected <= GUEST_MAX_CPUS, "%lu cpus expected, the kit has stacks for %u",
                expected, GUEST_MAX_CPUS);
    for (unsigned i = 0; i < boot_info.nr_mem; i++) {
        const MemRegion *r = &boot_info.mem[i];
        if (r->type == 1 && r->base + r->len > ram_top) {
            ram_top = r->base + r->len;
        }
    }
    guest_printf("memory map: RAM up to 0x%lx\n", ram_top);
    if (ram_top > (1ull << 39)) {
        check_high_ram(ram_top);
    }
    pic_disable();
    lapic_enable();
    seen[x2apic_id()] = 1;
    smp_start_aps(ap_main);
    /* Bounded: ~8 µs an iteration under emulation, >= 1 µs on hardware. */
    for (unsigned i = 0; i < 5000000 && cpus_up < expected; i++) {
        guest_io_delay();
    }
    guest_delay(2000); /* let a surplus CPU show up too */
    uint32_t n = cpus_up;
    GUEST_CHECK(bad_id == UINT32_MAX, "x2APIC ids distinct and below %u", MAX_X2APIC_ID);
    GUEST_CHECK(n == expected, "%u of %lu cpus checked in", n, expected);
    unsigned highest = 0;
    for (unsigned id = 0; id < MAX_X2APIC_ID; id++) {
        highest = seen[id] ? id : highest;
    }
    guest_printf("smp-scale ok: %u cpus, highest x2APIC id %u\n", n, highest);
    guest_pass();
}
