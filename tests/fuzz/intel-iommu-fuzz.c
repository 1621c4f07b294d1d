/*
 * libFuzzer harness for the VT-d unit (hw/i386/intel-iommu.c, intel-iommu-walk.c): the
 * input is a list of 12-byte operations against one unit over 1 MiB of guest memory:
 * register reads and writes, 8-byte stores into guest memory (so the root, context, page,
 * remapping and queue tables the registers point at are fuzzed too), DMA translations
 * and interrupt remappings, and resets.  Nothing may crash or touch memory outside the
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
    vtd_init(&s, &cfg, gm, count_msi, NULL);
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
        case 3: {
            uint64_t le = GUINT64_TO_LE(fuzz_le(op + 4, 8));
            guest_mem_write(gm, (op[1] | op[2] << 8 | (uint64_t)op[3] << 16) %
                                FUZZ_RAM & ~7ULL, &le, 8);
            break;
        }
        case 4: {
            uint64_t len = (uint64_t)op[3] * 97 + 1;
            uint16_t sid = op[1] | op[2] << 8;
            if (vtd_translate(&s, sid, v, len, op[0] & 8, &gpa, &piece)) {
                if (piece == 0 || piece > len) {
                    fail("translation piece outside 1..len", piece);
                }
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
    printf("intel-iommu-fuzz: %u random inputs, %u event interrupts\n", runs, msis_sent);
    return 0;
}
#endif
