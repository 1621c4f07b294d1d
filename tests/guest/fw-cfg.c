/*
 * fw_cfg as a guest sees it: the signature and ID through the port interface, the file
 * directory, one file read both through ports and through DMA, etc/e820, and a DMA to an
 * address outside RAM that must come back with the error bit.  The runner adds
 * -fw_cfg name=opt/sen/guest,string=fw_cfg works (under Sen and under QEMU alike).
 */
#include "lib/guest.h"

#define FW_SEL 0x510
#define FW_DATA 0x511
#define FW_DMA_HI 0x514
#define FW_DMA_LO 0x518
#define FW_ID 0x01
#define FW_NB_CPUS 0x05
#define FW_FILE_DIR 0x19
#define DMA_ERROR 0x01
#define DMA_READ 0x02
#define DMA_SELECT 0x08

static const char expected[] = "fw_cfg works"; /* FW_CFG_STRING in run-guest.py */

struct fw_dma {
    uint32_t control, length;
    uint64_t address;
} __attribute__((packed, aligned(16)));

static struct fw_dma desc;
static uint8_t buf[256];

static uint32_t be32(uint32_t v) { return __builtin_bswap32(v); }

static void fw_read(uint16_t key, void *out, uint32_t len)
{
    uint8_t *p = out;
    outw(FW_SEL, key);
    for (uint32_t i = 0; i < len; i++) {
        p[i] = inb(FW_DATA);
    }
}

/* Selects key and reads len bytes to addr by DMA; returns the control word left. */
static uint32_t fw_dma_read(uint16_t key, uint64_t addr, uint32_t len)
{
    desc.control = be32((uint32_t)key << 16 | DMA_SELECT | DMA_READ);
    desc.length = be32(len);
    desc.address = __builtin_bswap64(addr);
    barrier();
    uint64_t d = (uintptr_t)&desc;
    outl(FW_DMA_HI, be32((uint32_t)(d >> 32)));
    outl(FW_DMA_LO, be32((uint32_t)d));
    barrier();
    return be32(*(volatile uint32_t *)&desc.control);
}

static bool same(const void *a, const void *b, uint32_t len)
{
    const uint8_t *x = a, *y = b;
    for (uint32_t i = 0; i < len; i++) {
        if (x[i] != y[i]) {
            return false;
        }
    }
    return true;
}

static bool name_is(const uint8_t *entry, const char *name)
{
    unsigned i = 0;
    for (; name[i]; i++) {
        if (entry[8 + i] != (uint8_t)name[i]) {
            return false;
        }
    }
    return entry[8 + i] == 0;
}

/* Walks the directory by port I/O; returns the select key of name (0 if absent). */
static uint16_t fw_find(const char *name, uint32_t *size)
{
    uint8_t cnt[4], e[64];
    uint16_t key = 0;
    fw_read(FW_FILE_DIR, cnt, 4);
    uint32_t n = (uint32_t)cnt[0] << 24 | cnt[1] << 16 | cnt[2] << 8 | cnt[3];
    for (uint32_t i = 0; i < n && i < 4096; i++) {
        for (unsigned j = 0; j < 64; j++) {
            e[j] = inb(FW_DATA);
        }
        if (!key && name_is(e, name)) {
            *size = (uint32_t)e[0] << 24 | e[1] << 16 | e[2] << 8 | e[3];
            key = (uint16_t)(e[4] << 8 | e[5]);
        }
    }
    guest_printf("file directory: %u files\n", n);
    return key;
}

void guest_main(void)
{
    char sig[5] = { 0 };
    fw_read(0x00, sig, 4);
    GUEST_CHECK(same(sig, "QEMU", 4), "signature QEMU");
    uint32_t id = 0;
    fw_read(FW_ID, &id, 4);
    GUEST_CHECK(id & 2, "DMA interface advertised (id 0x%x)", id);
    GUEST_CHECK(inl(FW_DMA_HI) == 0x554d4551, "DMA port reads \"QEMU\"");

    uint64_t cpus;
    uint16_t nb = 0;
    fw_read(FW_NB_CPUS, &nb, 2);
    if (cmdline_get_uint("cpus", &cpus)) {
        GUEST_CHECK(nb == cpus, "NB_CPUS %u matches -smp", nb);
    }

    uint32_t size = 0;
    uint16_t key = fw_find("opt/sen/guest", &size);
    GUEST_CHECK(key >= 0x20 && size == sizeof(expected) - 1, "opt/sen/guest is item 0x%x, "
                "%u bytes", key, size);
    fw_read(key, buf, size);
    GUEST_CHECK(same(buf, expected, size), "opt/sen/guest by port I/O");
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = 0xaa;
    }
    uint32_t ctl = fw_dma_read(key, (uintptr_t)buf, size + 4);
    GUEST_CHECK(ctl == 0 && same(buf, expected, size) && buf[size] == 0 &&
                buf[size + 3] == 0 && buf[size + 4] == 0xaa,
                "opt/sen/guest by DMA (control 0x%x; zeroes past the end)", ctl);

    uint16_t e820 = fw_find("etc/e820", &size);
    GUEST_CHECK(e820 && size >= 20 && size % 20 == 0, "etc/e820: %u entries", size / 20);
    ctl = fw_dma_read(e820, (uintptr_t)buf, size <= sizeof(buf) ? size : sizeof(buf));
    GUEST_CHECK(ctl == 0, "etc/e820 read by DMA");
    uint64_t base = 1, len = 0;
    for (uint32_t off = 0; off + 20 <= size && off + 20 <= sizeof(buf); off += 20) {
        if (*(uint64_t *)(buf + off) == 0 && *(uint32_t *)(buf + off + 16) == 1) {
            base = 0;
            len = *(uint64_t *)(buf + off + 8);
        }
    }
    uint64_t ram_mb;
    GUEST_CHECK(base == 0 && (!cmdline_get_uint("ram_mb", &ram_mb) || len == ram_mb << 20),
                "etc/e820 has RAM 0x%lx+0x%lx", base, len);

    /* 64 GiB: no RAM there under either VMM. */
    ctl = fw_dma_read(0x00, 0x1000000000ULL, 4);
    GUEST_CHECK(ctl & DMA_ERROR, "DMA to an address outside RAM sets the error bit (0x%x)",
                ctl);
    guest_printf("fw-cfg ok\n");
    guest_pass();
}
