/* From the assembly entry to guest_main: boot information and firmware tables. */
#include "guest.h"

extern uint32_t boot_proto_raw, boot_info_raw;
void guest_start(void);

BootInfo boot_info;

const char *boot_protocol_name(BootProtocol p)
{
    switch (p) {
    case BOOT_MULTIBOOT:
        return "multiboot";
    case BOOT_PVH:
        return "PVH";
    }
    return "unknown";
}

static void copy_cmdline(uint64_t addr)
{
    if (!addr) {
        return;
    }
    const char *s = (const char *)(uintptr_t)addr;
    size_t i;
    for (i = 0; i + 1 < sizeof(boot_info.cmdline) && s[i]; i++) {
        boot_info.cmdline[i] = s[i];
    }
    boot_info.cmdline[i] = '\0';
}

static void add_region(uint64_t base, uint64_t len, uint32_t type)
{
    /* QEMU ends its maps with an empty entry. */
    if (len && boot_info.nr_mem < BOOT_MAX_REGIONS) {
        boot_info.mem[boot_info.nr_mem++] = (MemRegion){ base, len, type };
    }
}

/* Multiboot v1 information structure (the fields we use). */
static void parse_multiboot(const uint8_t *mbi)
{
    uint32_t flags = *(const uint32_t *)mbi;
    if (flags & (1u << 2)) {
        copy_cmdline(*(const uint32_t *)(mbi + 16));
    }
    if (flags & (1u << 6)) {
        uint32_t len = *(const uint32_t *)(mbi + 44);
        uint32_t addr = *(const uint32_t *)(mbi + 48);
        /* Each entry: size (excluding itself), base, length, type. */
        for (uint32_t off = 0; off + 24 <= len && boot_info.nr_mem < BOOT_MAX_REGIONS;) {
            const uint8_t *e = (const uint8_t *)(uintptr_t)(addr + off);
            uint32_t size = *(const uint32_t *)e;
            add_region(*(const uint64_t *)(e + 4), *(const uint64_t *)(e + 12),
                       *(const uint32_t *)(e + 20));
            if (size < 20) {
                break;
            }
            off += size + 4;
        }
    } else if (flags & 1u) {
        add_region(0, (uint64_t)*(const uint32_t *)(mbi + 4) << 10, 1);
        add_region(0x100000, (uint64_t)*(const uint32_t *)(mbi + 8) << 10, 1);
    }
}

#define PVH_MAGIC 0x336ec578

/* struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h). */
static bool parse_pvh(const uint8_t *si)
{
    if (*(const uint32_t *)si != PVH_MAGIC) {
        return false;
    }
    uint32_t version = *(const uint32_t *)(si + 4);
    copy_cmdline(*(const uint64_t *)(si + 24));
    boot_info.rsdp = *(const uint64_t *)(si + 32);
    if (version >= 1) {
        uint64_t map = *(const uint64_t *)(si + 40);
        uint32_t n = *(const uint32_t *)(si + 48);
        for (uint32_t i = 0; i < n && map; i++) {
            const uint8_t *e = (const uint8_t *)(uintptr_t)(map + 24 * i);
            add_region(*(const uint64_t *)e, *(const uint64_t *)(e + 8),
                       *(const uint32_t *)(e + 16));
        }
    }
    return true;
}

bool cmdline_get_uint(const char *key, uint64_t *val)
{
    size_t klen = strlen(key);
    const char *p = boot_info.cmdline;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (!strncmp(p, key, klen) && p[klen] == '=') {
            const char *d = p + klen + 1;
            unsigned base = 10;
            uint64_t v = 0;
            if (d[0] == '0' && d[1] == 'x') {
                base = 16;
                d += 2;
            }
            const char *start = d;
            for (;; d++) {
                unsigned digit;
                if (*d >= '0' && *d <= '9') {
                    digit = (unsigned)(*d - '0');
                } else if (base == 16 && *d >= 'a' && *d <= 'f') {
                    digit = (unsigned)(*d - 'a' + 10);
                } else {
                    break;
                }
                v = v * base + digit;
            }
            if (d == start || (*d && *d != ' ')) {
                return false;
            }
            *val = v;
            return true;
        }
        while (*p && *p != ' ') {
            p++;
        }
    }
    return false;
}

static bool checksum_ok(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;
    while (len--) {
        sum += *b++;
    }
    return sum == 0;
}

static const uint8_t *scan(uintptr_t start, size_t len, const char *sig, size_t siglen,
                           size_t cklen)
{
    for (uintptr_t a = start; a + cklen <= start + len; a += 16) {
        const uint8_t *p = (const uint8_t *)a;
        if (!memcmp(p, sig, siglen) && checksum_ok(p, cklen)) {
            return p;
        }
    }
    return NULL;
}

/* The areas the MP and ACPI specs name: the EBDA's first KiB, the last KiB of base
 * memory, and the BIOS ROM area. */
static const uint8_t *scan_low(const char *sig, size_t siglen, size_t cklen, uintptr_t rom)
{
    uintptr_t ebda = (uintptr_t)*(volatile uint16_t *)phys_ptr(0x40e) << 4;
    uintptr_t basemem = (uintptr_t)*(volatile uint16_t *)phys_ptr(0x413) << 10;
    const uint8_t *p = NULL;
    if (ebda >= 0x80000 && ebda < 0xa0000) {
        p = scan(ebda, 1024, sig, siglen, cklen);
    }
    if (!p && basemem >= 0x80000 && basemem <= 0xa0000) {
        p = scan(basemem - 1024, 1024, sig, siglen, cklen);
    }
    if (!p) {
        p = scan(0x9fc00, 1024, sig, siglen, cklen);
    }
    if (!p) {
        p = scan(rom, 0x100000 - rom, sig, siglen, cklen);
    }
    return p;
}

static unsigned count_mp_table(void)
{
    const uint8_t *fp = scan_low("_MP_", 4, 16, 0xf0000);
    if (!fp) {
        return 0;
    }
    uint32_t cfg_addr = *(const uint32_t *)(fp + 4);
    if (!cfg_addr || cfg_addr >= 0x100000000ULL - 64) {
        return 0;
    }
    const uint8_t *cfg = (const uint8_t *)(uintptr_t)cfg_addr;
    uint16_t len = *(const uint16_t *)(cfg + 4);
    if (memcmp(cfg, "PCMP", 4) || len < 44 || !checksum_ok(cfg, len)) {
        guest_printf("MP table at 0x%x: bad signature or checksum\n", cfg_addr);
        return 0;
    }
    uint16_t entries = *(const uint16_t *)(cfg + 34);
    unsigned cpus = 0;
    const uint8_t *e = cfg + 44, *end = cfg + len;
    for (unsigned i = 0; i < entries && e < end; i++) {
        if (e[0] == 0) { /* processor: id, version, flags (bit 0 enabled) */
            if (e[3] & 1) {
                cpus++;
            }
            e += 20;
        } else {
            e += 8;
        }
    }
    return cpus;
}

const uint8_t *find_acpi_table(const char *sig)
{
    const uint8_t *rsdp = boot_info.rsdp ? (const uint8_t *)(uintptr_t)boot_info.rsdp
                                         : scan_low("RSD PTR ", 8, 20, 0xe0000);
    if (!rsdp || memcmp(rsdp, "RSD PTR ", 8)) {
        return NULL;
    }
    uint64_t xsdt = rsdp[15] >= 2 ? *(const uint64_t *)(rsdp + 24) : 0;
    uint64_t root = xsdt ? xsdt : *(const uint32_t *)(rsdp + 16);
    unsigned ptr_size = xsdt ? 8 : 4;
    if (!root || root >= 0x100000000ULL) {
        return NULL;
    }
    const uint8_t *t = (const uint8_t *)(uintptr_t)root;
    uint32_t len = *(const uint32_t *)(t + 4);
    for (uint32_t off = 36; off + ptr_size <= len; off += ptr_size) {
        uint64_t a = ptr_size == 8 ? *(const uint64_t *)(t + off) : *(const uint32_t *)(t + off);
        if (a && a < 0x100000000ULL && !memcmp((const void *)(uintptr_t)a, sig, 4)) {
            return (const uint8_t *)(uintptr_t)a;
        }
    }
    return NULL;
}

static unsigned count_madt(void)
{
    const uint8_t *madt = find_acpi_table("APIC");
    if (!madt) {
        return 0;
    }
    uint32_t len = *(const uint32_t *)(madt + 4);
    unsigned cpus = 0;
    for (uint32_t off = 44; off + 2 <= len;) {
        const uint8_t *e = madt + off;
        if (e[1] < 2) {
            break;
        }
        if (e[0] == 0 && (*(const uint32_t *)(e + 4) & 1)) { /* processor local APIC */
            cpus++;
        } else if (e[0] == 9 && (*(const uint32_t *)(e + 8) & 1)) { /* local x2APIC */
            cpus++;
        }
        off += e[1];
    }
    return cpus;
}

unsigned firmware_count_cpus(const char **source)
{
    unsigned n = count_mp_table();
    if (n) {
        *source = "MP table";
        return n;
    }
    n = count_madt();
    *source = n ? "ACPI MADT" : "none";
    return n;
}

void guest_start(void)
{
    serial_init();
    idt_init();
    idt_load();
    boot_info.protocol = (BootProtocol)boot_proto_raw;
    const uint8_t *info = (const uint8_t *)(uintptr_t)boot_info_raw;
    if (boot_info.protocol == BOOT_MULTIBOOT) {
        parse_multiboot(info);
    } else if (boot_info.protocol == BOOT_PVH && !parse_pvh(info)) {
        guest_fail("PVH entry but no hvm_start_info magic at 0x%x", boot_info_raw);
    }
    guest_main();
    guest_fail("guest_main returned");
}
