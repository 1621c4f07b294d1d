/*
 * The VT-d core (hw/i386/intel-iommu*.c) over a plain GuestMemory, no machine: register
 * behaviour, the DMA table walk (3- and 4-level, 2 MiB and 1 GiB pages, pass-through),
 * fault recording and the fault event, hostile table pointers, queued invalidation (wait
 * descriptor status write and interrupt, queue errors) and interrupt remapping (IRTE
 * decode, subhandles, source-id checks, compatibility format).
 */
#include <string.h>
#include <glib.h>
#include "hw/i386/intel-iommu.h"
#include "sen/pci.h"

#define RAM_SIZE   (64ULL << 20)
#define ROOT       0x100000ULL
#define CTX        0x101000ULL
#define PT3        0x102000ULL   /* top level of the 3-level table */
#define PT2        0x103000ULL
#define PT1        0x104000ULL
#define IRT        0x110000ULL
#define IQ         0x120000ULL
#define STATUS     0x130000ULL
#define EDU_BDF    0x0018        /* 00:03.0 */
#define FE_ADDR    0xfee00000u
#define FE_DATA    0x41u

typedef struct Msi {
    uint64_t addr;
    uint32_t data;
} Msi;

typedef struct Fixture {
    GuestMemory *gm;
    VtdState s;
    GArray *msis;
} Fixture;

static void record_msi(void *opaque, uint64_t addr, uint32_t data)
{
    Fixture *f = opaque;
    Msi m = { addr, data };
    g_array_append_val(f->msis, m);
}

static void setup_cfg(Fixture *f, unsigned aw, bool intremap, bool eim)
{
    Error *err = NULL;
    f->gm = guest_mem_new(RAM_SIZE, &err);
    g_assert_no_error((GError *)err);
    g_assert_true(guest_mem_add_region(f->gm, 0, RAM_SIZE, 0, &err));
    f->msis = g_array_new(FALSE, FALSE, sizeof(Msi));
    VtdConfig cfg = { .aw_bits = aw, .intremap = intremap, .eim = eim };
    vtd_init(&f->s, &cfg, f->gm, record_msi, f);
}

static void setup(Fixture *f, gconstpointer data)
{
    (void)data;
    setup_cfg(f, 39, true, false);
}

static void teardown(Fixture *f, gconstpointer data)
{
    (void)data;
    guest_mem_free(f->gm);
    g_array_free(f->msis, TRUE);
}

static void put64(Fixture *f, uint64_t gpa, uint64_t v)
{
    uint64_t le = GUINT64_TO_LE(v);
    g_assert_true(guest_mem_write(f->gm, gpa, &le, 8));
}

static uint32_t rd32(Fixture *f, uint64_t off) { return vtd_reg_read(&f->s, off, 4); }
static uint64_t rd64(Fixture *f, uint64_t off) { return vtd_reg_read(&f->s, off, 8); }
static void wr32(Fixture *f, uint64_t off, uint32_t v) { vtd_reg_write(&f->s, off, 4, v); }
static void wr64(Fixture *f, uint64_t off, uint64_t v) { vtd_reg_write(&f->s, off, 8, v); }

/* As a driver does: GCMD = GSTS | the one command bit. */
static void gcmd(Fixture *f, uint32_t bit)
{
    wr32(f, VTD_REG_GCMD, (rd32(f, VTD_REG_GSTS) & ~(VTD_GCMD_SRTP | VTD_GCMD_SIRTP)) | bit);
}

/* Root -> context for EDU_BDF -> 3-level table (or pass-through), translation on. */
static void map_device(Fixture *f, uint64_t ctx_lo_extra, unsigned aw, uint64_t top)
{
    put64(f, ROOT + (EDU_BDF >> 8) * 16, CTX | 1);
    put64(f, CTX + (EDU_BDF & 0xff) * 16, top | ctx_lo_extra | VTD_CTX_P);
    put64(f, CTX + (EDU_BDF & 0xff) * 16 + 8, aw | 0x18 << 8);
    wr64(f, VTD_REG_RTADDR, ROOT);
    gcmd(f, VTD_GCMD_SRTP);
    gcmd(f, VTD_GCMD_TE);
}

static void test_registers(Fixture *f, gconstpointer data)
{
    (void)data;
    g_assert_cmphex(rd32(f, VTD_REG_VER), ==, 0x10);
    uint64_t cap = rd64(f, VTD_REG_CAP);
    g_assert_cmphex(cap & (0x1fULL << 8), ==, VTD_CAP_SAGAW_39);
    g_assert_cmphex((cap >> 16) & 0x3f, ==, 38);                 /* MGAW */
    g_assert_true(cap & VTD_CAP_SLLPS_2M);
    g_assert_true(cap & VTD_CAP_SLLPS_1G);
    g_assert_cmphex(((cap >> 24) & 0x3ff) * 16, ==, VTD_REG_FRCD);  /* FRO */
    uint64_t ecap = rd64(f, VTD_REG_ECAP);
    g_assert_true(ecap & VTD_ECAP_QI);
    g_assert_true(ecap & VTD_ECAP_IR);
    g_assert_false(ecap & VTD_ECAP_EIM);
    g_assert_cmphex(((ecap >> 8) & 0x3ff) * 16, ==, VTD_REG_IVA);  /* IRO */
    /* 32-bit halves read as the 64-bit register does; narrower reads see their bytes. */
    g_assert_cmphex(rd32(f, VTD_REG_CAP + 4), ==, cap >> 32);
    g_assert_cmphex(vtd_reg_read(&f->s, VTD_REG_CAP + 1, 1), ==, (cap >> 8) & 0xff);
    g_assert_cmphex(vtd_reg_read(&f->s, VTD_REG_CAP + 2, 2), ==, (cap >> 16) & 0xffff);
    /* Misaligned and past-the-page accesses: 0, no effect. */
    g_assert_cmphex(vtd_reg_read(&f->s, VTD_REG_CAP + 4, 8), ==, 0);
    g_assert_cmphex(vtd_reg_read(&f->s, VTD_MMIO_SIZE, 4), ==, 0);
    vtd_reg_write(&f->s, VTD_REG_RTADDR, 2, 0xf000);   /* only 32/64-bit writes count */
    vtd_reg_write(&f->s, VTD_REG_RTADDR + 2, 4, 0x1000);
    g_assert_cmphex(rd64(f, VTD_REG_RTADDR), ==, 0);

    /* kvm-unit-tests' order: QI, root table, IR table, DMAR, IR. */
    g_assert_cmphex(rd32(f, VTD_REG_GSTS), ==, 0);
    gcmd(f, VTD_GCMD_QIE);
    wr64(f, VTD_REG_RTADDR, ROOT);
    gcmd(f, VTD_GCMD_SRTP);
    wr64(f, VTD_REG_IRTA, IRT | 0xf);
    gcmd(f, VTD_GCMD_SIRTP);
    gcmd(f, VTD_GCMD_TE);
    gcmd(f, VTD_GCMD_IRE);
    uint32_t gsts = rd32(f, VTD_REG_GSTS);
    g_assert_cmphex(gsts, ==, VTD_GCMD_QIE | VTD_GCMD_SRTP | VTD_GCMD_SIRTP | VTD_GCMD_TE |
                              VTD_GCMD_IRE);
    g_assert_cmphex(rd64(f, VTD_REG_RTADDR), ==, ROOT);
    g_assert_cmphex(rd64(f, VTD_REG_IRTA), ==, IRT | 0xf);
    g_assert_cmpuint(f->s.irt_entries, ==, 65536);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);
    /* GCMD is write-only; read-only registers ignore writes. */
    g_assert_cmphex(rd32(f, VTD_REG_GCMD), ==, 0);
    wr64(f, VTD_REG_CAP, 0);
    g_assert_cmphex(rd64(f, VTD_REG_CAP), ==, cap);
    /* Turning bits off. */
    wr32(f, VTD_REG_GCMD, 0);
    g_assert_cmphex(rd32(f, VTD_REG_GSTS), ==, VTD_GCMD_SRTP | VTD_GCMD_SIRTP);
    /* Register invalidation completes at once with the asked granularity reported. */
    wr64(f, VTD_REG_CCMD, VTD_CCMD_ICC | 1ULL << VTD_CCMD_CIRG_SHIFT);
    g_assert_cmphex(rd64(f, VTD_REG_CCMD) >> 59, ==, 1 << 2 | 1); /* ICC clear, CAIG global */
    wr64(f, VTD_REG_IOTLB, VTD_IOTLB_IVT | 2ULL << VTD_IOTLB_IIRG_SHIFT);
    g_assert_cmphex(rd64(f, VTD_REG_IOTLB) >> 57, ==, 2 << 3 | 2);
    /* Reset clears everything but the capabilities. */
    vtd_reset(&f->s);
    g_assert_cmphex(rd32(f, VTD_REG_GSTS), ==, 0);
    g_assert_cmphex(rd64(f, VTD_REG_RTADDR), ==, 0);
    g_assert_cmphex(rd32(f, VTD_REG_FECTL), ==, VTD_ECTL_IM);
}

static void test_caps_48_eim(void)
{
    Fixture f;
    setup_cfg(&f, 48, true, true);
    uint64_t cap = rd64(&f, VTD_REG_CAP);
    g_assert_cmphex(cap & (0x1fULL << 8), ==, VTD_CAP_SAGAW_39 | VTD_CAP_SAGAW_48);
    g_assert_cmphex((cap >> 16) & 0x3f, ==, 47);
    g_assert_true(rd64(&f, VTD_REG_ECAP) & VTD_ECAP_EIM);
    teardown(&f, NULL);

    setup_cfg(&f, 39, false, false);
    g_assert_false(rd64(&f, VTD_REG_ECAP) & VTD_ECAP_IR);
    /* Without interrupt remapping IRTA and IRE do not exist. */
    wr64(&f, VTD_REG_IRTA, IRT);
    g_assert_cmphex(rd64(&f, VTD_REG_IRTA), ==, 0);
    gcmd(&f, VTD_GCMD_IRE);
    g_assert_cmphex(rd32(&f, VTD_REG_GSTS), ==, 0);
    teardown(&f, NULL);
}

static void test_translate_off(Fixture *f, gconstpointer data)
{
    (void)data;
    uint64_t gpa, len;
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x12345, 100, true, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x12345);
    g_assert_cmpuint(len, ==, 100);
}

static void test_walk_4k(Fixture *f, gconstpointer data)
{
    (void)data;
    map_device(f, 0, 1, PT3);
    put64(f, PT3 + 0 * 8, PT2 | 3);
    put64(f, PT2 + 0 * 8, PT1 | 3);
    put64(f, PT1 + 1 * 8, 0x200000 | 3);       /* iova 0x1000 -> 0x200000 */
    put64(f, PT1 + 2 * 8, 0x300000 | 1);       /* iova 0x2000 -> 0x300000 read-only */
    uint64_t gpa, len;
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x1ff0, 0x100, true, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x200ff0);
    g_assert_cmpuint(len, ==, 0x10);           /* contiguous to the page end only */
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x2004, 4, false, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x300004);
    g_assert_cmpuint(len, ==, 4);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);

    /* Write to the read-only page: fault 5 recorded with SID, page address, type write. */
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0x2008, 4, true, &gpa, &len));
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_PPF);
    g_assert_cmphex(rd64(f, VTD_REG_FRCD), ==, 0x2000);
    uint64_t hi = rd64(f, VTD_REG_FRCD + 8);
    g_assert_true(hi >> 63);                   /* F */
    g_assert_false((hi >> 62) & 1);            /* T = write */
    g_assert_cmphex((hi >> 32) & 0xff, ==, VTD_FR_WRITE);
    g_assert_cmphex(hi & 0xffff, ==, EDU_BDF);
    /* The fault event was masked (reset state): pending in FECTL.IP, sent on unmask. */
    g_assert_cmpuint(f->msis->len, ==, 0);
    g_assert_true(rd32(f, VTD_REG_FECTL) & VTD_ECTL_IP);
    wr32(f, VTD_REG_FEADDR, FE_ADDR);
    wr32(f, VTD_REG_FEDATA, FE_DATA);
    wr32(f, VTD_REG_FECTL, 0);
    g_assert_cmpuint(f->msis->len, ==, 1);
    g_assert_cmphex(g_array_index(f->msis, Msi, 0).addr, ==, FE_ADDR);
    g_assert_cmphex(g_array_index(f->msis, Msi, 0).data, ==, FE_DATA);
    g_assert_false(rd32(f, VTD_REG_FECTL) & VTD_ECTL_IP);

    /* A second fault while the only record is full: overflow, no new event. */
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0x5000, 4, false, &gpa, &len));
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_PPF | VTD_FSTS_PFO);
    g_assert_cmpuint(f->msis->len, ==, 1);
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_WRITE);
    /* Clearing F and PFO empties the status; the next fault raises a new event. */
    wr32(f, VTD_REG_FRCD + 12, 0x80000000u);
    wr32(f, VTD_REG_FSTS, VTD_FSTS_PFO);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0x5000, 4, false, &gpa, &len));
    hi = rd64(f, VTD_REG_FRCD + 8);
    g_assert_cmphex((hi >> 32) & 0xff, ==, VTD_FR_READ);  /* not present, read */
    g_assert_true((hi >> 62) & 1);                        /* T = read */
    g_assert_cmpuint(f->msis->len, ==, 2);
}

static void test_walk_superpages(Fixture *f, gconstpointer data)
{
    (void)data;
    map_device(f, 0, 1, PT3);
    put64(f, PT3 + 1 * 8, 0x40000000ULL | VTD_SL_PS | 3);  /* 1 GiB at iova 1 GiB */
    put64(f, PT3 + 0 * 8, PT2 | 3);
    put64(f, PT2 + 1 * 8, 0x600000 | VTD_SL_PS | 3);       /* 2 MiB at iova 2 MiB */
    uint64_t gpa, len;
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x40001234, 0x10000000, false, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x40001234);
    g_assert_cmpuint(len, ==, 0x10000000);
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x3ff000, 0x4000, true, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x7ff000);
    g_assert_cmpuint(len, ==, 0x1000);                     /* to the 2 MiB page end */
    /* A 2 MiB entry with address bits 20:12 set is malformed. */
    put64(f, PT2 + 2 * 8, 0x801000 | VTD_SL_PS | 3);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0x400000, 4, false, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_PAGING_ENTRY_RSVD);
}

/* Pages mapped in order make one piece, up to the first entry that breaks the run. */
static void test_walk_runs(Fixture *f, gconstpointer data)
{
    (void)data;
    map_device(f, 0, 1, PT3);
    put64(f, PT3 + 0 * 8, PT2 | 3);
    put64(f, PT2 + 0 * 8, PT1 | 3);
    for (unsigned i = 4; i < 8; i++) {            /* iova 0x4000.. -> 0x400000.. */
        put64(f, PT1 + i * 8, (0x400000 + (i - 4) * 0x1000ULL) | 3);
    }
    put64(f, PT1 + 8 * 8, 0x404000 | 1);          /* continues, but read-only */
    put64(f, PT1 + 9 * 8, 0x900000 | 3);          /* elsewhere */
    uint64_t gpa, len;
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x4100, 0x10000, true, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x400100);
    g_assert_cmpuint(len, ==, 0x3f00);            /* the read-only page ends a write */
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x4100, 0x10000, false, &gpa, &len));
    g_assert_cmpuint(len, ==, 0x4f00);            /* a read goes on to it */
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x4100, 0x2000, false, &gpa, &len));
    g_assert_cmpuint(len, ==, 0x2000);            /* never more than asked */
    /* The entry that breaks the run is walked (and faults) on its own. */
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x9000, 0x1000, false, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x900000);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0x8000, 0x1000, true, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_WRITE);

    /* 2 MiB pages in order: one piece across them, stopping at the end of the table. */
    put64(f, PT2 + 510 * 8, 0x1000000 | VTD_SL_PS | 3);
    put64(f, PT2 + 511 * 8, 0x1200000 | VTD_SL_PS | 3);
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 510ULL << 21, 8ULL << 21, false, &gpa,
                                &len));
    g_assert_cmphex(gpa, ==, 0x1000000);
    g_assert_cmpuint(len, ==, 2ULL << 21);
}

/* What an incoming stream may not leave behind (the device's post_load refuses it). */
static void test_state_valid(Fixture *f, gconstpointer data)
{
    (void)data;
    g_assert_true(vtd_state_valid(&f->s));
    wr64(f, VTD_REG_IQA, IQ | 7);                 /* the largest queue, head near its end */
    gcmd(f, VTD_GCMD_QIE);
    f->s.iqh = 32767 << 4;
    g_assert_true(vtd_state_valid(&f->s));
    f->s.iq_entries = 256;                        /* the head beyond a smaller queue */
    g_assert_false(vtd_state_valid(&f->s));
    f->s.iqh = 4;                                 /* not on a descriptor */
    g_assert_false(vtd_state_valid(&f->s));
    f->s.iqh = 0;
    g_assert_true(vtd_state_valid(&f->s));
    f->s.iq_entries = 384;                        /* not a power of two */
    g_assert_false(vtd_state_valid(&f->s));
    f->s.iq_entries = 256;
    f->s.irt_entries = 2u << 16;
    g_assert_false(vtd_state_valid(&f->s));
}

static void test_walk_4level(void)
{
    Fixture f;
    setup_cfg(&f, 48, false, false);
    uint64_t pt4 = 0x105000;
    map_device(&f, 0, 2, pt4);
    uint64_t iova = 0x8000000000ULL | 0x3000;              /* PML4 index 1 */
    put64(&f, pt4 + 1 * 8, PT3 | 3);
    put64(&f, PT3 + 0 * 8, PT2 | 3);
    put64(&f, PT2 + 0 * 8, PT1 | 3);
    put64(&f, PT1 + 3 * 8, 0x700000 | 3);
    uint64_t gpa, len;
    g_assert_true(vtd_translate(&f.s, EDU_BDF, iova + 8, 8, true, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x700008);
    /* A 3-level context on the 48-bit unit is valid too; an AW of 3 (57-bit) is not. */
    put64(&f, CTX + (EDU_BDF & 0xff) * 16 + 8, 3);
    g_assert_false(vtd_translate(&f.s, EDU_BDF, 0, 8, true, &gpa, &len));
    g_assert_cmphex((rd64(&f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_CONTEXT_ENTRY_INV);
    teardown(&f, NULL);
}

static void test_pass_through_and_fpd(Fixture *f, gconstpointer data)
{
    (void)data;
    map_device(f, VTD_CTX_TT_PASS_THROUGH << VTD_CTX_TT_SHIFT, 1, 0);
    uint64_t gpa, len;
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0x123000, 0x2000, true, &gpa, &len));
    g_assert_cmphex(gpa, ==, 0x123000);
    g_assert_cmpuint(len, ==, 0x2000);
    /* A device without a context entry faults (reason 2) ... */
    g_assert_false(vtd_translate(&f->s, 0x0020, 0, 4, false, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_CONTEXT_ENTRY_P);
    wr32(f, VTD_REG_FRCD + 12, 0x80000000u);
    /* ... and a context with FPD faults silently. */
    map_device(f, VTD_CTX_FPD, 1, PT3);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0, 4, false, &gpa, &len));
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);
    /* Beyond the 39-bit AGAW. */
    map_device(f, 0, 1, PT3);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 1ULL << 39, 4, false, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_ADDR_BEYOND_AGAW);
}

/* Table pointers outside RAM or straddling its end: faults, never a host access. */
static void test_hostile_tables(Fixture *f, gconstpointer data)
{
    (void)data;
    uint64_t gpa, len;
    static const struct { uint64_t root, ctx, top; VtdFault reason; } cases[] = {
        { 0x7ffffff000ULL, CTX, PT3, VTD_FR_ROOT_TABLE_INV },
        { RAM_SIZE - 0x1000, CTX, PT3, VTD_FR_ROOT_ENTRY_P },     /* zeroed RAM */
        { ROOT, 0x7fff000000ULL, PT3, VTD_FR_CONTEXT_TABLE_INV },
        { ROOT, CTX, 0x7ffffff000ULL, VTD_FR_PAGING_ENTRY_INV },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        put64(f, ROOT, cases[i].ctx | 1);
        put64(f, cases[i].ctx < RAM_SIZE ? cases[i].ctx + EDU_BDF * 16 : CTX, 0);
        if (cases[i].ctx < RAM_SIZE) {
            put64(f, CTX + EDU_BDF * 16, cases[i].top | 1);
            put64(f, CTX + EDU_BDF * 16 + 8, 1);
        }
        wr64(f, VTD_REG_RTADDR, cases[i].root);
        gcmd(f, VTD_GCMD_SRTP);
        gcmd(f, VTD_GCMD_TE);
        g_assert_false(vtd_translate(&f->s, EDU_BDF, 0, 4, false, &gpa, &len));
        g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, cases[i].reason);
        wr32(f, VTD_REG_FRCD + 12, 0x80000000u);
    }
    /* Reserved bits in root, context and page entries. */
    put64(f, ROOT, CTX | 1 | 0x10);
    wr64(f, VTD_REG_RTADDR, ROOT);
    gcmd(f, VTD_GCMD_SRTP);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0, 4, false, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_ROOT_ENTRY_RSVD);
    wr32(f, VTD_REG_FRCD + 12, 0x80000000u);
    put64(f, ROOT, CTX | 1);
    put64(f, CTX + EDU_BDF * 16 + 8, 1 | 0x80);
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0, 4, false, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_CONTEXT_ENTRY_RSVD);
    wr32(f, VTD_REG_FRCD + 12, 0x80000000u);
    put64(f, CTX + EDU_BDF * 16, PT3 | 1);
    put64(f, CTX + EDU_BDF * 16 + 8, 1);
    put64(f, PT3, (1ULL << 45) | PT2 | 3);                 /* beyond the 39-bit HAW */
    g_assert_false(vtd_translate(&f->s, EDU_BDF, 0, 4, false, &gpa, &len));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_PAGING_ENTRY_RSVD);
    /* A page-table entry pointing at the last page: its address is what the caller
     * bounds-checks; the walker hands it back unchanged. */
    put64(f, PT3, PT2 | 3);
    put64(f, PT2, PT1 | 3);
    put64(f, PT1, 0x7ffffff000ULL | 3);
    g_assert_true(vtd_translate(&f->s, EDU_BDF, 0, 4, false, &gpa, &len));
    g_assert_false(guest_mem_is_ram(f->gm, gpa, len));
}

/* ---- queued invalidation ---- */

static void queue_put(Fixture *f, unsigned slot, uint64_t lo, uint64_t hi)
{
    put64(f, IQ + slot * 16, lo);
    put64(f, IQ + slot * 16 + 8, hi);
}

static void qi_on(Fixture *f)
{
    wr64(f, VTD_REG_IQA, IQ);   /* 256 entries */
    wr64(f, VTD_REG_IQT, 0);
    gcmd(f, VTD_GCMD_QIE);
    g_assert_true(rd32(f, VTD_REG_GSTS) & VTD_GCMD_QIE);
}

static void test_qi_wait(Fixture *f, gconstpointer data)
{
    (void)data;
    qi_on(f);
    queue_put(f, 0, 1 | 1 << 4, 0);                             /* global context inv */
    queue_put(f, 1, 2 | 1 << 4, 0);                             /* global IOTLB inv */
    queue_put(f, 2, 4 | 1 << 4, 0);                             /* global IEC inv */
    queue_put(f, 3, 5 | 1 << 5 | 0xcafe0001ULL << 32, STATUS);  /* wait, status write */
    wr64(f, VTD_REG_IQT, 4 << 4);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 4 << 4);
    uint32_t status = 0;
    g_assert_true(guest_mem_read(f->gm, STATUS, &status, 4));
    g_assert_cmphex(GUINT32_FROM_LE(status), ==, 0xcafe0001);
    g_assert_cmphex(rd32(f, VTD_REG_ICS), ==, 0);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);

    /* Wait with the interrupt flag: ICS.IWC and the invalidation event. */
    wr32(f, VTD_REG_IEADDR, FE_ADDR);
    wr32(f, VTD_REG_IEDATA, 0x51);
    wr32(f, VTD_REG_IECTL, 0);
    queue_put(f, 4, 5 | 1 << 4, 0);
    wr64(f, VTD_REG_IQT, 5 << 4);
    g_assert_cmphex(rd32(f, VTD_REG_ICS), ==, VTD_ICS_IWC);
    g_assert_cmpuint(f->msis->len, ==, 1);
    g_assert_cmphex(g_array_index(f->msis, Msi, 0).data, ==, 0x51);
    /* IWC still set: a second wait sends nothing more. */
    queue_put(f, 5, 5 | 1 << 4, 0);
    wr64(f, VTD_REG_IQT, 6 << 4);
    g_assert_cmpuint(f->msis->len, ==, 1);
    wr32(f, VTD_REG_ICS, VTD_ICS_IWC);
    g_assert_cmphex(rd32(f, VTD_REG_ICS), ==, 0);

    /* Wrap-around: tail behind head runs to the end of the queue and on from 0. */
    for (unsigned i = 6; i < 256; i++) {
        queue_put(f, i, 2 | 1 << 4, 0);
    }
    queue_put(f, 0, 5 | 1 << 5 | 7ULL << 32, STATUS);
    wr64(f, VTD_REG_IQT, 1 << 4);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 1 << 4);
    g_assert_true(guest_mem_read(f->gm, STATUS, &status, 4));
    g_assert_cmphex(GUINT32_FROM_LE(status), ==, 7);
}

static void test_qi_errors(Fixture *f, gconstpointer data)
{
    (void)data;
    qi_on(f);
    wr32(f, VTD_REG_FEADDR, FE_ADDR);
    wr32(f, VTD_REG_FEDATA, FE_DATA);
    wr32(f, VTD_REG_FECTL, 0);
    queue_put(f, 0, 2 | 1 << 4, 0);
    queue_put(f, 1, 3, 0);                       /* device-IOTLB: ECAP.DT is 0 */
    queue_put(f, 2, 5 | 1 << 5 | 9ULL << 32, STATUS);
    wr64(f, VTD_REG_IQT, 3 << 4);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_IQE);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 1 << 4);  /* on the bad descriptor */
    g_assert_cmpuint(f->msis->len, ==, 1);              /* fault event */
    /* Further tail writes do nothing until IQE is cleared. */
    wr64(f, VTD_REG_IQT, 3 << 4);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 1 << 4);
    /* Software replaces the entry (as Linux, by a wait) and clears IQE: fetching resumes. */
    queue_put(f, 1, 5, 0);
    wr32(f, VTD_REG_FSTS, VTD_FSTS_IQE);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 3 << 4);
    uint32_t status;
    g_assert_true(guest_mem_read(f->gm, STATUS, &status, 4));
    g_assert_cmphex(GUINT32_FROM_LE(status), ==, 9);

    /* A wait whose status address is not RAM, reserved bits, a queue outside RAM. */
    queue_put(f, 3, 5 | 1 << 5, 0x7ffffff000ULL);
    wr64(f, VTD_REG_IQT, 4 << 4);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_IQE);
    queue_put(f, 3, 5 | 1ULL << 20, 0);
    wr32(f, VTD_REG_FSTS, VTD_FSTS_IQE);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_IQE);
    queue_put(f, 3, 1, 0);                       /* context inv with granularity 0 */
    wr32(f, VTD_REG_FSTS, VTD_FSTS_IQE);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_IQE);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 3 << 4);

    wr32(f, VTD_REG_GCMD, 0);                     /* QI off */
    wr32(f, VTD_REG_FSTS, VTD_FSTS_IQE);
    wr64(f, VTD_REG_IQA, 0x7ffffff000ULL | 7);    /* 32768 entries, not RAM */
    wr64(f, VTD_REG_IQT, 0x7fff0);
    gcmd(f, VTD_GCMD_QIE);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_IQE);
    g_assert_cmphex(rd64(f, VTD_REG_IQH), ==, 0);
    /* A tail beyond a 256-entry queue. */
    wr32(f, VTD_REG_GCMD, 0);
    wr32(f, VTD_REG_FSTS, VTD_FSTS_IQE);
    wr64(f, VTD_REG_IQA, IQ);
    wr64(f, VTD_REG_IQT, 0);
    gcmd(f, VTD_GCMD_QIE);
    wr64(f, VTD_REG_IQT, 300 << 4);
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, VTD_FSTS_IQE);
}

/* ---- interrupt remapping ---- */

static void irte_put(Fixture *f, unsigned index, uint64_t lo, uint64_t hi)
{
    put64(f, IRT + index * 16, lo);
    put64(f, IRT + index * 16 + 8, hi);
}

static void ir_on(Fixture *f, unsigned size_field, bool eime)
{
    wr64(f, VTD_REG_IRTA, IRT | size_field | (eime ? VTD_IRTA_EIME : 0));
    gcmd(f, VTD_GCMD_SIRTP);
    gcmd(f, VTD_GCMD_IRE);
}

/* kvm-unit-tests' IRTE: present, fpd, physical, edge, fixed, vector, dest, SVT=1. */
static uint64_t irte_lo(unsigned vector, uint32_t dest, bool level)
{
    return 1 | 2 | (level ? 1 << 4 : 0) | (uint64_t)vector << 16 | (uint64_t)dest << 32;
}

static uint64_t remappable(unsigned handle, bool shv)
{
    return VTD_MSI_ADDR_BASE | VTD_MSI_ADDR_IF | (handle & 0x7fff) << 5 |
           (handle & 0x8000 ? VTD_MSI_ADDR_H15 : 0) | (shv ? VTD_MSI_ADDR_SHV : 0);
}

static void test_ir_decode(Fixture *f, gconstpointer data)
{
    (void)data;
    uint64_t addr = remappable(1, false);
    uint32_t msi_data = 0;
    /* Remapping off: messages pass unchanged. */
    g_assert_true(vtd_remap_msi(&f->s, EDU_BDF, &addr, &msi_data));
    g_assert_cmphex(addr, ==, remappable(1, false));

    ir_on(f, 7, false);                           /* 256 entries */
    irte_put(f, 1, irte_lo(0xee, 0x0300, false), EDU_BDF | 1 << 18);
    g_assert_true(vtd_remap_msi(&f->s, EDU_BDF, &addr, &msi_data));
    g_assert_cmphex(addr, ==, 0xfee03000);      /* xAPIC: id from dest bits 15:8 */
    g_assert_cmphex(msi_data, ==, 0xee);
    /* Level-triggered, logical, lowest priority, redirection hint. */
    irte_put(f, 2, irte_lo(0x31, 0x0f00, true) | 1 << 2 | 1 << 3 | 1 << 5, 0);
    addr = remappable(2, false);
    g_assert_true(vtd_remap_msi(&f->s, EDU_BDF, &addr, &msi_data));
    g_assert_cmphex(addr, ==, 0xfee0f00c);
    g_assert_cmphex(msi_data, ==, 0x8131);
    /* Subhandle: index = handle + data[15:0]; handle bit 15 in address bit 2. */
    irte_put(f, 5, irte_lo(0x45, 0, false), 0);
    addr = remappable(3, true);
    msi_data = 2;
    g_assert_true(vtd_remap_msi(&f->s, EDU_BDF, &addr, &msi_data));
    g_assert_cmphex(msi_data, ==, 0x45);
    addr = remappable(0x8000, false);
    g_assert_false(vtd_remap_msi(&f->s, EDU_BDF, &addr, &msi_data));
    g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, VTD_FR_IR_INDEX_OVER);
    g_assert_cmphex(rd64(f, VTD_REG_FRCD) >> 48, ==, 0x8000);
    wr32(f, VTD_REG_FRCD + 12, 0x80000000u);
}

static void test_ir_faults(Fixture *f, gconstpointer data)
{
    (void)data;
    uint64_t addr;
    uint32_t d = 0;
    ir_on(f, 7, false);
#define EXPECT_FAULT(_addr, _sid, _reason) do { \
        addr = (_addr); \
        g_assert_false(vtd_remap_msi(&f->s, (_sid), &addr, &d)); \
        g_assert_cmphex((rd64(f, VTD_REG_FRCD + 8) >> 32) & 0xff, ==, (_reason)); \
        wr32(f, VTD_REG_FRCD + 12, 0x80000000u); \
    } while (0)
    /* Not present: recorded without FPD, silent with it. */
    irte_put(f, 1, 0, 0);
    EXPECT_FAULT(remappable(1, false), EDU_BDF, VTD_FR_IR_ENTRY_P);
    irte_put(f, 1, 2, 0);
    addr = remappable(1, false);
    g_assert_false(vtd_remap_msi(&f->s, EDU_BDF, &addr, &d));
    g_assert_cmphex(rd32(f, VTD_REG_FSTS), ==, 0);
    /* Reserved bits, posted format, SVT 3. */
    irte_put(f, 1, 1 | 1 << 15, 0);
    EXPECT_FAULT(remappable(1, false), EDU_BDF, VTD_FR_IR_IRTE_RSVD);
    irte_put(f, 1, 1, 3 << 18);
    EXPECT_FAULT(remappable(1, false), EDU_BDF, VTD_FR_IR_IRTE_RSVD);
    /* Source-id: full, with SQ masks, by bus range. */
    irte_put(f, 1, 1, EDU_BDF | 1 << 18);
    EXPECT_FAULT(remappable(1, false), EDU_BDF + 1, VTD_FR_IR_SID_ERR);
    irte_put(f, 1, 1, EDU_BDF | 1 << 18 | 3 << 16);         /* ignore function bits */
    addr = remappable(1, false);
    g_assert_true(vtd_remap_msi(&f->s, EDU_BDF + 7, &addr, &d));
    irte_put(f, 1, 1, 0x0203 | 2 << 18);                     /* buses 2..3 */
    EXPECT_FAULT(remappable(1, false), EDU_BDF, VTD_FR_IR_SID_ERR);
    addr = remappable(1, false);
    g_assert_true(vtd_remap_msi(&f->s, 0x0300, &addr, &d));
    /* The IOAPIC's messages are not source-checked (QEMU with kernel-irqchip=split). */
    irte_put(f, 1, 1, EDU_BDF | 1 << 18);
    addr = remappable(1, false);
    g_assert_true(vtd_remap_msi(&f->s, PCI_IOAPIC_SOURCE_ID, &addr, &d));
    /* Not an interrupt address; compatibility format blocked until CFI. */
    EXPECT_FAULT(0xfed00000, EDU_BDF, VTD_FR_IR_REQ_RSVD);
    EXPECT_FAULT(0xfee01000, EDU_BDF, VTD_FR_IR_REQ_COMPAT);
    gcmd(f, VTD_GCMD_CFI);
    addr = 0xfee01000;
    d = 0x30;
    g_assert_true(vtd_remap_msi(&f->s, EDU_BDF, &addr, &d));
    g_assert_cmphex(addr, ==, 0xfee01000);
    g_assert_cmphex(d, ==, 0x30);
    /* A table outside RAM. */
    wr64(f, VTD_REG_IRTA, 0x7ffff00000ULL | 7);
    gcmd(f, VTD_GCMD_SIRTP);
    EXPECT_FAULT(remappable(1, false), EDU_BDF, VTD_FR_IR_ROOT_INV);
#undef EXPECT_FAULT
}

static void test_ir_eim(void)
{
    Fixture f;
    setup_cfg(&f, 39, true, true);
    ir_on(&f, 0, true);                             /* 2 entries, x2APIC mode */
    irte_put(&f, 1, irte_lo(0x66, 0x12345, false), 0);
    uint64_t addr = remappable(1, false);
    uint32_t d = 0;
    g_assert_true(vtd_remap_msi(&f.s, EDU_BDF, &addr, &d));
    g_assert_cmphex(addr, ==, 0x12300ULL << 32 | 0xfee45000);
    g_assert_cmphex(d, ==, 0x66);
    /* x2APIC mode blocks compatibility format even with CFI. */
    gcmd(&f, VTD_GCMD_CFI);
    addr = 0xfee00000;
    g_assert_false(vtd_remap_msi(&f.s, EDU_BDF, &addr, &d));
    teardown(&f, NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add("/intel-iommu/" path, Fixture, NULL, setup, fn, teardown)
    ADD("registers", test_registers);
    g_test_add_func("/intel-iommu/caps-48-eim", test_caps_48_eim);
    ADD("translate-off", test_translate_off);
    ADD("walk-4k-and-faults", test_walk_4k);
    ADD("walk-superpages", test_walk_superpages);
    ADD("walk-runs", test_walk_runs);
    ADD("state-valid", test_state_valid);
    g_test_add_func("/intel-iommu/walk-4level", test_walk_4level);
    ADD("pass-through-fpd-agaw", test_pass_through_and_fpd);
    ADD("hostile-tables", test_hostile_tables);
    ADD("qi-wait", test_qi_wait);
    ADD("qi-errors", test_qi_errors);
    ADD("ir-decode", test_ir_decode);
    ADD("ir-faults", test_ir_faults);
    g_test_add_func("/intel-iommu/ir-eim", test_ir_eim);
    return g_test_run();
}
