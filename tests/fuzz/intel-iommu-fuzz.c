/*
 * libFuzzer harness for the VT-d unit (hw/i386/intel-iommu.c, intel-iommu-walk.c): the
 * input is a list of 12-byte operations against one unit over 1 MiB of guest memory:
 * register reads and writes, 8-byte stores into guest memory (so the root, context, page,
 * remapping and queue tables the registers point at are fuzzed too), page mappings built
 * the way a driver builds them (so walks reach the last level and runs of pages), DMA
 * translations and interrupt remappings, and resets.  Nothing may crash or touch memory outside the
 * guest's, and the unit's answers must stay consistent: a translation's piece is 1..len
 * bytes, a remapped message is a compatibility-format interrupt, IQH stays in the queue.
 *
 * Built with -fsanitize=fuzzer under clang; with another compiler a small main() below
 * feeds seeded random inputs instead so the harness still runs in `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include "hw/i386/intel-iommu.h"
#include "fuzz-random.h"

#define FUZZ_RAM (1ULL << 20)

static void fail(const char *what, uint64_t v)
{
    fprintf(stderr, "intel-iommu-fuzz: %s (0x%llx)\n", what, (unsigned long long)v);
    abort();
}

static unsigned msis_sent;
static unsigned long long long_pieces;  /* translated (TE on) pieces longer than 4 KiB */

static void count_msi(void *opaque, uint64_t addr, uint32_t data)
{
    (void)opaque;
    (void)data;
    msis_sent++;
    if ((addr & 3) != 0) {
        fail("event interrupt address not dword aligned", addr);
    }
}

static GuestMemory *fuzz_memory(void)
{
    static GuestMemory *gm;
    if (!gm) {
        Error *err = NULL;
        gm = guest_mem_new(FUZZ_RAM, &err);
        if (!gm || !guest_mem_add_region(gm, 0, FUZZ_RAM, 0, &err)) {
            fail(error_get_pretty(err), 0);
        }
    }
    return gm;
}

static void put64(GuestMemory *gm, uint64_t gpa, uint64_t v)
{
    uint64_t le = GUINT64_TO_LE(v);
    guest_mem_write(gm, gpa, &le, sizeof(le));
}

/*
 * A mapping a driver could have made for 00:03.0 (sid 0x18): root, context and 3-level
 * tables at fixed low pages, then 1 to 8 last-level entries (or 2 MiB entries one level
 * up) from iova page idx on, each mapping the page after the previous one, mostly from gpa
 * page 0x40 + idx, with fuzzed permission bits: runs of pages form and meet what other
 * operations left in the tables.  Random stores alone almost never build a table chain a
 * walk can follow to its end.
 */
static void map_page(VtdState *s, GuestMemory *gm, const uint8_t *op, uint64_t v)
{
    const uint32_t keep = VTD_GCMD_TE | VTD_GCMD_QIE | VTD_GCMD_IRE | VTD_GCMD_CFI;
    unsigned idx = op[1] | (op[2] & 1) << 8;
    uint64_t leaf = op[2] & 2 ? (uint64_t)(0x40 + idx) << 12 : v & ~0xfffULL;

    put64(gm, 0x0000, 0x1000 | 1);                      /* root entry of bus 0 */
    put64(gm, 0x1000 + 0x18 * 16, 0x2000 | 1);          /* context: 3-level tables */
    put64(gm, 0x1000 + 0x18 * 16 + 8, 1);
    put64(gm, 0x2000, 0x3000 | 3);
    /* 1..8 entries from idx on, each mapping the page after the previous one. */
    for (unsigned i = 0; i <= ((op[3] >> 2) & 7u) && idx + i < 512; i++) {
        if (op[2] & 4) {
            put64(gm, 0x3000 + (idx + i) * 8,
                  ((leaf & ~0x1fffffULL) + ((uint64_t)i << 21)) | VTD_SL_PS | (op[3] & 3));
        } else {
            put64(gm, 0x3000, 0x4000 | 3);
            put64(gm, 0x4000 + (idx + i) * 8, (leaf + ((uint64_t)i << 12)) | (op[3] & 3));
        }
    }
    vtd_reg_write(s, VTD_REG_RTADDR, 8, 0);
    vtd_reg_write(s, VTD_REG_GCMD, 4, (s->gsts & keep) | VTD_GCMD_SRTP);
    vtd_reg_write(s, VTD_REG_GCMD, 4, (s->gsts & keep) | VTD_GCMD_TE);
}

static void check_invariants(VtdState *s)
{
    if ((s->iqh >> 4) >= s->iq_entries || (s->iqh & 0xf)) {
        fail("IQH outside the queue", s->iqh);
    }
    if (!vtd_state_valid(s)) {
        fail("a state a migration would refuse", s->iq_entries);
    }
    uint32_t fsts = vtd_reg_read(s, VTD_REG_FSTS, 4);
    if (fsts & ~(0xff7fu)) {
        fail("FSTS has bits that do not exist", fsts);
    }
    if ((fsts >> 8) & 0xff) {
        fail("FSTS.FRI beyond the fault records", fsts);
    }
    uint32_t gsts = vtd_reg_read(s, VTD_REG_GSTS, 4);
    if (gsts & 0x1fffffu) {
        fail("GSTS has reserved bits", gsts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static VtdState s;
    GuestMemory *gm = fuzz_memory();
    VtdConfig cfg = { .aw_bits = size && (data[0] & 1) ? 48 : 39, .intremap = true,
                      .eim = size && (data[0] & 2) };

    guest_mem_fill(gm, 0, 0, FUZZ_RAM);
    /* One unit for the whole run, as in a VM: its log rate limit outlives each input. */
    RateLimit rl = s.rl;
    vtd_init(&s, &cfg, gm, count_msi, NULL);
    s.rl = rl;
    for (size_t i = 1; i + 12 <= size; i += 12) {
        const uint8_t *op = data + i;
        uint64_t v = fuzz_le(op + 4, 8);
        /* Mostly addresses inside the fuzz RAM, sometimes anything. */
        if (op[0] & 0x80) {
            v &= FUZZ_RAM - 1;
        }
        unsigned off = (op[1] | op[2] << 8) % 0x240;
        unsigned width = op[0] & 0x40 ? 8 : 4;
        off &= ~(width - 1);
        uint64_t gpa, piece;
        uint64_t addr;
        uint32_t msi_data;
        switch (op[0] & 7) {
        case 0:
            vtd_reg_write(&s, off, width, v);
            break;
        case 1:
            vtd_reg_read(&s, off, width);
            break;
        case 2:
            put64(gm, (op[1] | op[2] << 8 | (uint64_t)op[3] << 16) % FUZZ_RAM & ~7ULL,
                  fuzz_le(op + 4, 8));
            break;
        case 3:
            map_page(&s, gm, op, v);
            break;
        case 4: {
            /* Up to 24 KiB, sometimes from the device map_page maps. */
            uint64_t len = (uint64_t)op[3] * 97 + 1;
            uint16_t sid = op[2] & 0x80 ? 0x18 : op[1] | op[2] << 8;
            if (op[2] & 0x80) {
                /* Mostly iova page idx the way map_page numbers it. */
                v = op[2] & 0x40 ? (uint64_t)(op[1] | (op[2] & 1) << 8) << 12 | (v & 0xfff)
                                 : v & 0x3fffff;
            }
            if (vtd_translate(&s, sid, v, len, op[0] & 8, &gpa, &piece)) {
                if (piece == 0 || piece > len) {
                    fail("translation piece outside 1..len", piece);
                }
                long_pieces += piece > 4096 && (s.gsts & VTD_GCMD_TE);
                if (!(s.gsts & VTD_GCMD_TE) && gpa != v) {
                    fail("translation off but the address changed", gpa);
                }
            }
            break;
        }
        case 5:
            addr = VTD_MSI_ADDR_BASE | (v & 0xfffff);
            msi_data = (uint32_t)(v >> 32);
            if (op[3] & 1) {
                addr = v; /* not even an interrupt address */
            }
            if (vtd_remap_msi(&s, op[1] | op[2] << 8, &addr, &msi_data) &&
                (s.gsts & VTD_GCMD_IRE) && (addr & 0xfff00000ULL) != VTD_MSI_ADDR_BASE) {
                fail("remapped message is not an interrupt", addr);
            }
            break;
        case 6:
            check_invariants(&s);
            break;
        default:
            if (op[3] == 0) {
                vtd_reset(&s);
            }
            break;
        }
    }
    check_invariants(&s);
    return 0;
}

#ifndef SEN_LIBFUZZER
int main(int argc, char **argv)
{
    unsigned runs = fuzz_random_inputs(argc, argv, 3000, 0x7d1, 1 + 12 * 64);
    printf("intel-iommu-fuzz: %u random inputs, %u event interrupts, %llu translated "
           "pieces longer than a page\n", runs, msis_sent, long_pieces);
    return 0;
}
#endif
