/*
 * ACPI as a guest OS sees it: find the RSDP (PVH start info, else the EBDA and the BIOS
 * area), walk XSDT (and RSDT) -> FADT -> DSDT/FACS and every other table with all
 * checksums, count the MADT's processors against cpus= from the command line, read
 * \_S5_ from the DSDT, and measure the PM timer against PIT channel 0 (3.579545 MHz,
 * 24 bits).  With powerdown=1 on the command line it then enables ACPI mode (SMI_CMD),
 * arms the power button, routes the SCI (level, active high) through the IOAPIC, says
 * "waiting for the power button" and sleeps; on the SCI it checks PWRBTN_STS and powers
 * off through S5, as an OS does on system_powerdown (tests/functional/test_acpi.py).
 *
 * Built with -DACPI_FROM_FW_CFG (the acpi-fw-cfg test) it does a firmware's job first:
 * reads etc/table-loader from fw_cfg, allocates and fetches each file by DMA, applies the
 * ADD_POINTER and ADD_CHECKSUM commands, and then checks the tables it built that way.
 * Under QEMU that proves our reading of QEMU's loader format; under Sen, that Sen's
 * loader commands produce valid tables.
 */
#include "lib/guest.h"

#define PM1_TMR_STS      0x0001
#define PM1_PWRBTN       0x0100
#define PM1_CNT_SCI_EN   0x0001
#define PM1_CNT_SLP_EN   0x2000
#define PM_TIMER_HZ      3579545u
#define PIT_HZ           1193182u
#define SCI_VECTOR       0x50
#define IOAPIC_LEVEL     (1u << 15)
#define IOAPIC_LOW       (1u << 13)
/* The guest kit's printf has no precision: a signature as four %c. */
#define SIG_FMT          "%c%c%c%c"
#define SIG(t)           (t)[0], (t)[1], (t)[2], (t)[3]

static const uint8_t *fadt, *dsdt, *madt;
static uint16_t pm1_evt, pm1_cnt, pm_tmr;
static unsigned sci_gsi, sci_irq;
static bool sci_low, sci_edge;
static volatile unsigned sci_count, pwrbtn_seen;

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    while (len--) {
        s += *p++;
    }
    return s;
}

static const uint8_t *scan_rsdp(uintptr_t start, size_t len)
{
    for (uintptr_t a = start; a + 20 <= start + len; a += 16) {
        const uint8_t *p = phys_ptr(a);
        if (!memcmp(p, "RSD PTR ", 8) && sum(p, 20) == 0) {
            return p;
        }
    }
    return NULL;
}

#ifdef ACPI_FROM_FW_CFG
#define FW_SEL          0x510
#define FW_DATA         0x511
#define FW_DMA_HI       0x514
#define FW_DMA_LO       0x518
#define FW_FILE_DIR     0x19
#define FW_DMA_READ     0x02
#define FW_DMA_SELECT   0x08
#define LOADER_CMD_SIZE 128
#define LOADER_NAME     56
#define LOADER_ALLOCATE 1
#define LOADER_ADD_POINTER 2
#define LOADER_ADD_CHECKSUM 3
#define MAX_FILES       4

struct fw_dma {
    uint32_t control, length;
    uint64_t address;
} __attribute__((packed, aligned(16)));

static struct fw_dma dma_desc;
static uint8_t loader_cmds[128 * LOADER_CMD_SIZE];
/* Where "firmware" puts the files: one 64-byte aligned arena, handed out in order. */
static uint8_t arena[512 * 1024] __attribute__((aligned(4096)));
static uint32_t arena_used;

static struct {
    char name[LOADER_NAME];
    uint8_t *data;
    uint32_t size;
} files[MAX_FILES];
static unsigned nr_files;

static uint32_t be32(uint32_t v) { return __builtin_bswap32(v); }

static uint32_t fw_dma_read(uint16_t key, void *dst, uint32_t len)
{
    dma_desc.control = be32((uint32_t)key << 16 | FW_DMA_SELECT | FW_DMA_READ);
    dma_desc.length = be32(len);
    dma_desc.address = __builtin_bswap64((uintptr_t)dst);
    barrier();
    uint64_t d = (uintptr_t)&dma_desc;
    outl(FW_DMA_HI, be32((uint32_t)(d >> 32)));
    outl(FW_DMA_LO, be32((uint32_t)d));
    barrier();
    return be32(*(volatile uint32_t *)&dma_desc.control);
}

/* The select key and size of a fw_cfg file, from the directory; 0 when absent. */
static uint16_t fw_find(const char *name, uint32_t *size)
{
    uint8_t cnt[4], e[64];
    uint16_t key = 0;
    outw(FW_SEL, FW_FILE_DIR);
    for (unsigned j = 0; j < 4; j++) {
        cnt[j] = inb(FW_DATA);
    }
    uint32_t n = (uint32_t)cnt[0] << 24 | cnt[1] << 16 | cnt[2] << 8 | cnt[3];
    for (uint32_t i = 0; i < n && i < 4096; i++) {
        for (unsigned j = 0; j < 64; j++) {
            e[j] = inb(FW_DATA);
        }
        if (!key && !strncmp((const char *)e + 8, name, LOADER_NAME)) {
            *size = (uint32_t)e[0] << 24 | e[1] << 16 | e[2] << 8 | e[3];
            key = (uint16_t)(e[4] << 8 | e[5]);
        }
    }
    return key;
}

static unsigned loader_file(const uint8_t *name)
{
    for (unsigned i = 0; i < nr_files; i++) {
        if (!strncmp(files[i].name, (const char *)name, LOADER_NAME)) {
            return i;
        }
    }
    guest_fail("table loader: file '%s' was not allocated first", (const char *)name);
}

static void loader_allocate(const uint8_t *c)
{
    uint32_t align = *(const uint32_t *)(c + LOADER_NAME);
    uint32_t size = 0;
    uint16_t key = fw_find((const char *)c, &size);
    if (!key || nr_files == MAX_FILES || !align || (align & (align - 1)) || align > 4096) {
        guest_fail("table loader: cannot allocate '%s' (align %u)", (const char *)c, align);
    }
    arena_used = (arena_used + align - 1) & ~(align - 1);
    if (size > sizeof(arena) - arena_used) {
        guest_fail("table loader: '%s' is %u bytes, too big", (const char *)c, size);
    }
    memcpy(files[nr_files].name, c, LOADER_NAME);
    files[nr_files].data = arena + arena_used;
    files[nr_files].size = size;
    GUEST_CHECK(fw_dma_read(key, arena + arena_used, size) == 0,
                "loader: %s (%u bytes, align %u, zone %u) fetched by DMA",
                (const char *)c, size, align, c[LOADER_NAME + 4]);
    arena_used += size;
    nr_files++;
}

static void loader_add_pointer(const uint8_t *c)
{
    unsigned dst = loader_file(c), src = loader_file(c + LOADER_NAME);
    uint32_t off = *(const uint32_t *)(c + 2 * LOADER_NAME);
    uint8_t size = c[2 * LOADER_NAME + 4];
    if ((size != 1 && size != 2 && size != 4 && size != 8) || off + size > files[dst].size) {
        guest_fail("table loader: pointer of %u bytes at %u in '%s'", size, off, files[dst].name);
    }
    uint64_t v = 0;
    memcpy(&v, files[dst].data + off, size);
    v += (uintptr_t)files[src].data;
    memcpy(files[dst].data + off, &v, size);
}

static void loader_add_checksum(const uint8_t *c)
{
    unsigned f = loader_file(c);
    uint32_t field = *(const uint32_t *)(c + LOADER_NAME);
    uint32_t start = *(const uint32_t *)(c + LOADER_NAME + 4);
    uint32_t len = *(const uint32_t *)(c + LOADER_NAME + 8);
    if (field >= files[f].size || start > files[f].size || len > files[f].size - start) {
        guest_fail("table loader: checksum range outside '%s'", files[f].name);
    }
    files[f].data[field] -= sum(files[f].data + start, len);
}

/* Runs etc/table-loader as firmware does; returns the RSDP it placed. */
static const uint8_t *rsdp_from_loader(void)
{
    uint32_t size = 0;
    uint16_t key = fw_find("etc/table-loader", &size);
    GUEST_CHECK(key && size && size % LOADER_CMD_SIZE == 0 && size <= sizeof(loader_cmds),
                "etc/table-loader: %u commands", size / LOADER_CMD_SIZE);
    GUEST_CHECK(fw_dma_read(key, loader_cmds, size) == 0, "etc/table-loader read by DMA");
    unsigned pointers = 0, checksums = 0;
    for (uint32_t off = 0; off < size; off += LOADER_CMD_SIZE) {
        const uint8_t *c = loader_cmds + off;
        uint32_t cmd = *(const uint32_t *)c;
        if (cmd == LOADER_ALLOCATE) {
            loader_allocate(c + 4);
        } else if (cmd == LOADER_ADD_POINTER) {
            loader_add_pointer(c + 4);
            pointers++;
        } else if (cmd == LOADER_ADD_CHECKSUM) {
            loader_add_checksum(c + 4);
            checksums++;
        } else if (cmd != 0) {
            guest_fail("table loader: command %u not understood", cmd);
        }
    }
    guest_printf("ok: table loader ran: %u files, %u pointers, %u checksums\n", nr_files,
                 pointers, checksums);
    for (unsigned i = 0; i < nr_files; i++) {
        if (!strncmp(files[i].name, "etc/acpi/rsdp", LOADER_NAME)) {
            return files[i].data;
        }
    }
    guest_fail("table loader: no etc/acpi/rsdp");
}
#endif

static const uint8_t *find_rsdp(void)
{
#ifdef ACPI_FROM_FW_CFG
    guest_printf("RSDP from the fw_cfg table loader\n");
    return rsdp_from_loader();
#endif
    if (boot_info.rsdp) {
        guest_printf("RSDP from the boot protocol at 0x%lx\n", (unsigned long)boot_info.rsdp);
        return phys_ptr(boot_info.rsdp);
    }
    uintptr_t ebda = (uintptr_t)*(volatile uint16_t *)phys_ptr(0x40e) << 4;
    const uint8_t *p = ebda >= 0x80000 && ebda < 0xa0000 ? scan_rsdp(ebda, 1024) : NULL;
    if (!p) {
        p = scan_rsdp(0xe0000, 0x20000);
        /* kvm-unit-tests (and QEMU's bios-tables-test) scan only the F segment. */
        GUEST_CHECK(p && (uintptr_t)p >= 0xf0000, "RSDP in the F segment at 0x%lx",
                    (unsigned long)(uintptr_t)p);
    }
    return p;
}

/* A table at a physical address: signature, a sane length, checksum. */
static const uint8_t *check_table(uint64_t addr, const char *why)
{
    GUEST_CHECK(addr && addr < 0x100000000ull, "%s: table address 0x%lx below 4 GiB", why,
                (unsigned long)addr);
    const uint8_t *t = phys_ptr((uintptr_t)addr);
    uint32_t len = *(const uint32_t *)(t + 4);
    GUEST_CHECK(len >= 36 && len < 0x100000, "%s: " SIG_FMT " length %u", why, SIG(t), len);
    GUEST_CHECK(sum(t, len) == 0, SIG_FMT " checksum", SIG(t));
    return t;
}

static void walk_root(const uint8_t *root, unsigned entry_size)
{
    uint32_t len = *(const uint32_t *)(root + 4);
    unsigned n = (len - 36) / entry_size;
    guest_printf(SIG_FMT " lists %u tables\n", SIG(root), n);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = root + 36 + i * entry_size;
        uint64_t a = entry_size == 8 ? *(const uint64_t *)e : *(const uint32_t *)e;
        const uint8_t *t = check_table(a, "root entry");
        if (!memcmp(t, "FACP", 4)) {
            fadt = t;
        } else if (!memcmp(t, "APIC", 4)) {
            madt = t;
        }
    }
}

static void check_fadt(void)
{
    GUEST_CHECK(fadt != NULL, "FADT found");
    uint32_t len = *(const uint32_t *)(fadt + 4);
    uint64_t dsdt_addr = *(const uint32_t *)(fadt + 40);
    if (len >= 148 && *(const uint64_t *)(fadt + 140)) {
        dsdt_addr = *(const uint64_t *)(fadt + 140);
    }
    dsdt = check_table(dsdt_addr, "FADT.DSDT");
    GUEST_CHECK(!memcmp(dsdt, "DSDT", 4), "the FADT points at the DSDT");
    const uint8_t *facs = phys_ptr(*(const uint32_t *)(fadt + 36));
    GUEST_CHECK(!memcmp(facs, "FACS", 4) && ((uintptr_t)facs & 63) == 0,
                "FACS at 0x%lx, 64-byte aligned", (unsigned long)(uintptr_t)facs);
    sci_irq = *(const uint16_t *)(fadt + 46);
    pm1_evt = (uint16_t)*(const uint32_t *)(fadt + 56);
    pm1_cnt = (uint16_t)*(const uint32_t *)(fadt + 64);
    pm_tmr = (uint16_t)*(const uint32_t *)(fadt + 76);
    guest_printf("FADT: SCI %u, PM1a_EVT 0x%x, PM1a_CNT 0x%x, PM_TMR 0x%x, flags 0x%x\n",
                 sci_irq, pm1_evt, pm1_cnt, pm_tmr, *(const uint32_t *)(fadt + 112));
    GUEST_CHECK(pm1_evt && pm1_cnt && pm_tmr && fadt[88] == 4 && fadt[89] == 2 &&
                fadt[91] == 4, "PM blocks announced with their lengths");
}

/* Processors in the MADT, and the SCI's GSI and polarity from its overrides. */
static unsigned count_madt_cpus(void)
{
    uint32_t len = *(const uint32_t *)(madt + 4);
    unsigned cpus = 0;
    sci_gsi = sci_irq;
    for (uint32_t off = 44; off + 2 <= len;) {
        const uint8_t *e = madt + off;
        if (e[1] < 2 || off + e[1] > len) {
            guest_fail("MADT entry at offset %u has length %u", off, e[1]);
        }
        if (e[0] == 0 && (*(const uint32_t *)(e + 4) & 1)) {
            cpus++;
        } else if (e[0] == 9 && (*(const uint32_t *)(e + 8) & 1)) {
            cpus++;
        } else if (e[0] == 2 && e[3] == sci_irq) {
            uint16_t flags = *(const uint16_t *)(e + 8);
            sci_gsi = *(const uint32_t *)(e + 4);
            sci_low = (flags & 3) == 3;
            sci_edge = ((flags >> 2) & 3) == 1;
        }
        off += e[1];
    }
    return cpus;
}

/* SLP_TYPa of \_S5_: Name(_S5_, Package(n) { typ_a, ... }). */
static int find_s5(void)
{
    uint32_t len = *(const uint32_t *)(dsdt + 4);
    for (uint32_t i = 36; i + 8 < len; i++) {
        if (memcmp(dsdt + i, "_S5_", 4) || dsdt[i + 4] != 0x12) {
            continue;
        }
        const uint8_t *p = dsdt + i + 5;
        p += 1 + (p[0] >> 6);  /* PkgLength */
        p++;                   /* NumElements */
        if (p[0] == 0x00 || p[0] == 0x01) {
            return p[0];
        }
        if (p[0] == 0x0a) {
            return p[1];
        }
    }
    return -1;
}

/* PIT channel 0's current count, latched so both bytes belong together. */
static uint16_t pit0_count(void)
{
    outb(0x43, 0x00);
    uint8_t lo = inb(0x40);
    uint8_t hi = inb(0x40);
    return (uint16_t)(lo | hi << 8);
}

static uint32_t pm_read(void)
{
    uint32_t v = inl(pm_tmr);
    if (v >> 24) {
        guest_fail("PM timer value 0x%x has more than 24 bits", v);
    }
    return v;
}

/* PM timer ticks while PIT channel 0 (a rate generator counting down from 65536) counts
 * pit_ticks; each poll is far shorter than the PIT's 55 ms period, so no wrap is missed
 * unless the vCPU is preempted for that long (then the sample is off and retried). */
static uint32_t pm_ticks_during_pit(uint32_t pit_ticks)
{
    outb(0x43, 0x34);                        /* channel 0, lo/hi byte, mode 2 */
    outb(0x40, 0);
    outb(0x40, 0);                           /* reload 65536 */
    uint16_t prev = pit0_count();
    uint32_t start = pm_read(), end = start;
    uint32_t elapsed = 0;
    for (unsigned i = 0; i < 10000000 && elapsed < pit_ticks; i++) {
        uint16_t cur = pit0_count();
        end = pm_read();
        elapsed += (uint16_t)(prev - cur);
        prev = cur;
    }
    outb(0x43, 0x30);                        /* back to a one-shot that fires once */
    outb(0x40, 0xff);
    outb(0x40, 0xff);
    /* Scale to exactly pit_ticks: the loop overshoots by up to one poll. */
    uint64_t got = (uint64_t)((end - start) & 0xffffff) * pit_ticks / (elapsed ? elapsed : 1);
    return (uint32_t)got;
}

static void check_pm_timer(void)
{
    const uint32_t count = 0x10000; /* ~55 ms */
    const uint64_t want = (uint64_t)count * PM_TIMER_HZ / PIT_HZ;
    for (unsigned attempt = 1; attempt <= 5; attempt++) {
        uint32_t got = pm_ticks_during_pit(count);
        guest_printf("PM timer: %u ticks while the PIT counted %u (expect %lu)\n", got,
                     count, (unsigned long)want);
        /* Loose: a vCPU preempted on a busy host shortens one sample, never all. */
        if (got > want * 9 / 10 && got < want * 11 / 10) {
            guest_printf("ok: PM timer runs at 3.579545 MHz against the PIT (%lu ppm)\n",
                         (unsigned long)((got > want ? got - want : want - got) * 1000000 /
                                         want));
            return;
        }
    }
    guest_fail("PM timer rate is off against the PIT in every attempt");
}

static void sci_handler(IntrFrame *f)
{
    (void)f;
    uint16_t sts = inw(pm1_evt);
    sci_count++;
    if (sts & PM1_PWRBTN) {
        pwrbtn_seen = 1;
        outw(pm1_evt, PM1_PWRBTN); /* write 1 to clear: the level SCI drops */
    }
    lapic_eoi();
}

static void wait_power_button(int s5)
{
    uint8_t smi_cmd_enable = fadt[52];
    uint32_t smi_cmd = *(const uint32_t *)(fadt + 48);
    if (!(inw(pm1_cnt) & PM1_CNT_SCI_EN) && smi_cmd) {
        outb((uint16_t)smi_cmd, smi_cmd_enable);
        for (unsigned i = 0; i < 1000 && !(inw(pm1_cnt) & PM1_CNT_SCI_EN); i++) {
            guest_io_delay();
        }
    }
    GUEST_CHECK(inw(pm1_cnt) & PM1_CNT_SCI_EN, "ACPI mode on (SCI_EN)");
    outw(pm1_evt + 2, 0);              /* every event off... */
    outw(pm1_evt, 0xffff);             /* ...and every status clear */
    outw(pm1_evt + 2, PM1_PWRBTN);     /* then the power button alone */

    pic_disable();
    lapic_enable();
    idt_set_handler(SCI_VECTOR, sci_handler);
    ioapic_write(0x11 + 2 * sci_gsi, lapic_id() << 24);
    ioapic_write(0x10 + 2 * sci_gsi, SCI_VECTOR | (sci_edge ? 0 : IOAPIC_LEVEL) |
                                         (sci_low ? IOAPIC_LOW : 0));
    guest_printf("SCI: IRQ %u -> GSI %u, %s, active %s\n", sci_irq, sci_gsi,
                 sci_edge ? "edge" : "level", sci_low ? "low" : "high");
    guest_printf("waiting for the power button\n");
    while (!pwrbtn_seen) {
        sti_hlt();
    }
    cli();
    GUEST_CHECK(pwrbtn_seen, "SCI with PWRBTN_STS (%u SCIs)", sci_count);
    GUEST_CHECK(!(inw(pm1_evt) & PM1_PWRBTN), "PWRBTN_STS cleared by writing 1");
    guest_printf("powering off: SLP_TYP %d + SLP_EN\n", s5);
    outw(pm1_cnt, (uint16_t)((inw(pm1_cnt) & PM1_CNT_SCI_EN) | (s5 << 10) | PM1_CNT_SLP_EN));
    guest_delay(100000);
    guest_fail("still running after the S5 write");
}

void guest_main(void)
{
    const uint8_t *rsdp = find_rsdp();
    GUEST_CHECK(rsdp != NULL, "RSDP found");
    GUEST_CHECK(sum(rsdp, 20) == 0, "RSDP checksum (revision %u)", rsdp[15]);
    const uint8_t *xsdt = NULL;
    if (rsdp[15] >= 2) {
        GUEST_CHECK(sum(rsdp, *(const uint32_t *)(rsdp + 20)) == 0, "RSDP extended checksum");
        if (*(const uint64_t *)(rsdp + 24)) {
            xsdt = check_table(*(const uint64_t *)(rsdp + 24), "RSDP.XSDT");
            GUEST_CHECK(!memcmp(xsdt, "XSDT", 4), "XSDT signature");
        }
    }
    const uint8_t *rsdt = check_table(*(const uint32_t *)(rsdp + 16), "RSDP.RSDT");
    GUEST_CHECK(!memcmp(rsdt, "RSDT", 4), "RSDT signature");
    walk_root(rsdt, 4);
    if (xsdt) {
        fadt = madt = NULL; /* the XSDT's entries win, as for an OS */
        walk_root(xsdt, 8);
    }
    check_fadt();

    GUEST_CHECK(madt != NULL, "MADT found");
    uint64_t want_cpus = 0;
    cmdline_get_uint("cpus", &want_cpus);
    unsigned cpus = count_madt_cpus();
    GUEST_CHECK(cpus == want_cpus, "MADT lists %u processors, -smp %lu", cpus,
                (unsigned long)want_cpus);

    int s5 = find_s5();
    GUEST_CHECK(s5 >= 0 && s5 < 8, "DSDT has \\_S5_ (SLP_TYP %d)", s5);

    check_pm_timer();

    uint64_t powerdown = 0;
    if (cmdline_get_uint("powerdown", &powerdown) && powerdown) {
        wait_power_button(s5);
    }
    guest_printf("acpi ok\n");
    guest_pass();
}
