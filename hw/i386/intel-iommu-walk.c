/*
 * The two VT-d table walkers (see intel-iommu.h).  Every table address comes from the
 * guest, so every entry is read with guest_mem_read (bounds-checked against RAM); an
 * entry that is not RAM, not present or malformed becomes a recorded fault, never an
 * access outside guest memory.
 *
 * DMA remapping, legacy mode (spec 3.4-3.7): the root table (256 entries of 16 bytes, one
 * per bus) points at a context table (256 entries, one per devfn); a context entry selects
 * pass-through or a second-level page table of 3 (39-bit) or 4 (48-bit) levels, with 2 MiB
 * and 1 GiB superpages (CAP.SLLPS).
 *
 * Interrupt remapping (spec 5.1): a remappable-format MSI names an entry of the interrupt
 * remapping table (2^(S+1) entries of 16 bytes) that holds the real vector and destination.
 */
#include <inttypes.h>
#include "hw/i386/intel-iommu.h"
#include "sen/pci.h"

/* Bits 61:52 and 63 of a second-level entry are ignored by hardware (free for software);
 * bit 62 (TM) is reserved without device-IOTLB support. */
#define SL_IGNORED             0xbff0000000000000ULL

/* ---- DMA remapping ---- */

typedef struct Walk {
    VtdState *s;
    uint16_t sid;
    uint64_t iova;
    bool is_write;
    bool fpd;          /* the context entry disabled fault processing */
} Walk;

static bool walk_fault(Walk *w, VtdFault reason)
{
    log_guest_error(&w->s->rl, "intel-iommu: DMA %s of 0x%" PRIx64 " by %02x:%02x.%x: "
                    "fault reason 0x%x", w->is_write ? "write" : "read", w->iova,
                    w->sid >> 8, (w->sid >> 3) & 0x1f, w->sid & 7, reason);
    if (!w->fpd) {
        vtd_record_fault(w->s, w->sid, w->iova, !w->is_write, reason);
    }
    return false;
}

/* Reserved bits of a second-level entry at level (1 = 4 KiB page table). */
static uint64_t sl_reserved(const VtdState *s, unsigned level, bool leaf)
{
    uint64_t rsvd = ~(s->haw_mask | SL_IGNORED) | 0x800; /* above the address width, SNP */
    if (leaf && level == 2) {
        rsvd |= 0x1ff000;              /* 2 MiB page: address bits 20:12 */
    } else if (leaf && level == 3) {
        rsvd |= 0x3ffff000;            /* 1 GiB page: address bits 29:12 */
    } else if (level == 4) {
        rsvd |= VTD_SL_PS;             /* no 512 GiB pages */
    }
    return rsvd;
}

static bool superpage_ok(const VtdState *s, unsigned level)
{
    return (level == 2 && (s->cap & VTD_CAP_SLLPS_2M)) ||
           (level == 3 && (s->cap & VTD_CAP_SLLPS_1G));
}

/*
 * The leaf at index idx of table (level) maps [*gpa - off, +page); the entries after it in
 * the same table that map the next guest-physical pages with the same permission extend
 * the piece, so a DMA over a run mapped in order costs one walk plus one 8-byte read per
 * page instead of a whole walk (root, context, every level) per page.  The levels above
 * granted the permission for the whole table already.  The first entry that does not
 * continue the run ends the piece; the next translation walks to it (and faults there if
 * it must).  A run may cross from one guest RAM region into the next adjacent one (two
 * NUMA nodes' memdevs): the caller copies it with guest_mem_read/write, which go region
 * by region, so the run needs no cut there.
 */
static void extend_run(Walk *w, uint64_t table, unsigned level, unsigned idx, uint64_t page,
                       uint64_t next_gpa, uint64_t len, uint64_t *contig)
{
    VtdState *s = w->s;
    uint64_t perm = w->is_write ? VTD_SL_W : VTD_SL_R;
    uint64_t rsvd = sl_reserved(s, level, true);

    while (*contig < len && ++idx < 512) {
        uint64_t pte;
        if (!guest_mem_read(s->mem, table + idx * 8, &pte, sizeof(pte))) {
            return;
        }
        pte = GUINT64_FROM_LE(pte);
        if (!(pte & perm) || (pte & rsvd) || (level > 1 && !(pte & VTD_SL_PS)) ||
            (pte & s->haw_mask & ~(page - 1)) != next_gpa) {
            return;
        }
        *contig = MIN(len, *contig + page);
        next_gpa += page;
    }
}

static bool walk_tables(Walk *w, uint64_t table, unsigned levels, uint64_t len,
                        uint64_t *gpa, uint64_t *contig)
{
    VtdState *s = w->s;
    for (unsigned level = levels; level >= 1; level--) {
        unsigned shift = 12 + 9 * (level - 1);
        unsigned idx = (w->iova >> shift) & 0x1ff;
        uint64_t pte;
        if (!guest_mem_read(s->mem, table + idx * 8, &pte, sizeof(pte))) {
            return walk_fault(w, VTD_FR_PAGING_ENTRY_INV);
        }
        pte = GUINT64_FROM_LE(pte);
        /* Permissions are the AND of every level's R/W (spec 3.7.1). */
        if (!(pte & (w->is_write ? VTD_SL_W : VTD_SL_R))) {
            return walk_fault(w, w->is_write ? VTD_FR_WRITE : VTD_FR_READ);
        }
        bool leaf = level == 1 || ((pte & VTD_SL_PS) && level < 4);
        if (leaf && level > 1 && !superpage_ok(s, level)) {
            return walk_fault(w, VTD_FR_PAGING_ENTRY_RSVD);
        }
        if (pte & sl_reserved(s, level, leaf)) {
            return walk_fault(w, VTD_FR_PAGING_ENTRY_RSVD);
        }
        if (leaf) {
            uint64_t page = 1ULL << shift;
            uint64_t off = w->iova & (page - 1);
            uint64_t base = pte & s->haw_mask & ~(page - 1);
            *gpa = base + off;
            *contig = MIN(len, page - off);
            extend_run(w, table, level, idx, page, base + page, len, contig);
            return true;
        }
        table = pte & s->haw_mask & ~0xfffULL;
    }
    return false; /* not reached: level 1 is always a leaf */
}

bool vtd_translate(VtdState *s, uint16_t sid, uint64_t iova, uint64_t len, bool is_write,
                   uint64_t *gpa, uint64_t *contig)
{
    Walk w = { .s = s, .sid = sid, .iova = iova, .is_write = is_write };

    if (!(s->gsts & VTD_GCMD_TE)) {
        *gpa = iova;
        *contig = len;
        return true;
    }
    /* Root entry: bit 0 present, 63:12 context table; the upper quadword is reserved in
     * legacy mode. */
    uint64_t re[2];
    uint64_t root = s->root_table & s->haw_mask & ~0xfffULL;
    if ((s->root_table & 0xc00) ||
        !guest_mem_read(s->mem, root + (sid >> 8) * 16, re, sizeof(re))) {
        return walk_fault(&w, VTD_FR_ROOT_TABLE_INV);
    }
    re[0] = GUINT64_FROM_LE(re[0]);
    re[1] = GUINT64_FROM_LE(re[1]);
    if (!(re[0] & 1)) {
        return walk_fault(&w, VTD_FR_ROOT_ENTRY_P);
    }
    if ((re[0] & (0xffeULL | ~s->haw_mask)) || re[1]) {
        return walk_fault(&w, VTD_FR_ROOT_ENTRY_RSVD);
    }
    /* Context entry: lo = P, FPD, TT, table pointer; hi = AW, domain id. */
    uint64_t ce[2];
    if (!guest_mem_read(s->mem, (re[0] & ~0xfffULL) + (sid & 0xff) * 16, ce, sizeof(ce))) {
        return walk_fault(&w, VTD_FR_CONTEXT_TABLE_INV);
    }
    ce[0] = GUINT64_FROM_LE(ce[0]);
    ce[1] = GUINT64_FROM_LE(ce[1]);
    if (!(ce[0] & VTD_CTX_P)) {
        return walk_fault(&w, VTD_FR_CONTEXT_ENTRY_P);
    }
    w.fpd = ce[0] & VTD_CTX_FPD;
    if ((ce[0] & (0xff0ULL | ~s->haw_mask)) || (ce[1] & 0xffffffffff000080ULL)) {
        return walk_fault(&w, VTD_FR_CONTEXT_ENTRY_RSVD);
    }
    unsigned tt = (ce[0] >> VTD_CTX_TT_SHIFT) & 3;
    if (tt == VTD_CTX_TT_PASS_THROUGH && (s->ecap & VTD_ECAP_PT)) {
        *gpa = iova;
        *contig = len;
        return true;
    }
    if (tt != VTD_CTX_TT_MULTI_LEVEL) {
        /* Device-TLB (ECAP.DT = 0) and the reserved type. */
        return walk_fault(&w, VTD_FR_CONTEXT_ENTRY_INV);
    }
    unsigned aw = ce[1] & 7; /* 1: 39-bit 3-level, 2: 48-bit 4-level */
    if (aw < 1 || aw > 4 || !(s->cap & (1ULL << (8 + aw)))) {
        return walk_fault(&w, VTD_FR_CONTEXT_ENTRY_INV);
    }
    unsigned agaw = 30 + 9 * aw;
    if (iova >> agaw) {
        return walk_fault(&w, VTD_FR_ADDR_BEYOND_AGAW);
    }
    return walk_tables(&w, ce[0] & s->haw_mask & ~0xfffULL, aw + 2, len, gpa, contig);
}

/* ---- interrupt remapping ---- */

static bool ir_fault(VtdState *s, uint16_t sid, uint32_t index, bool fpd, VtdFault reason)
{
    log_guest_error(&s->rl, "intel-iommu: interrupt from %04x, IRTE %u blocked: fault "
                    "reason 0x%x", sid, index, reason);
    if (!fpd) {
        vtd_record_fault(s, sid, (uint64_t)index << 48, false, reason);
    }
    return false;
}

/* Source-id validation (IRTE SVT/SQ/SID, spec 9.10). */
static bool sid_ok(uint64_t hi, uint16_t sid)
{
    static const uint16_t sq_mask[4] = { 0xffff, 0xfffb, 0xfff9, 0xfff8 };
    uint16_t irte_sid = hi & 0xffff;
    switch ((hi >> 18) & 3) {
    case 0:
        return true;
    case 1:
        return (irte_sid & sq_mask[(hi >> 16) & 3]) == (sid & sq_mask[(hi >> 16) & 3]);
    case 2: /* the requester's bus within [SID 15:8, SID 7:0] */
        return (sid >> 8) >= (irte_sid >> 8) && (sid >> 8) <= (irte_sid & 0xff);
    default:
        return false;
    }
}

bool vtd_remap_msi(VtdState *s, uint16_t sid, uint64_t *addr, uint32_t *data)
{
    if (!(s->gsts & VTD_GCMD_IRE)) {
        return true;
    }
    if ((*addr & 0xfff00000ULL) != VTD_MSI_ADDR_BASE || (*addr >> 32)) {
        return ir_fault(s, sid, 0, false, VTD_FR_IR_REQ_RSVD);
    }
    if (!(*addr & VTD_MSI_ADDR_IF)) {
        /* Compatibility format: passes only while CFIS says so, never in x2APIC mode. */
        if ((s->gsts & VTD_GCMD_CFI) && !s->irt_eime) {
            return true;
        }
        return ir_fault(s, sid, 0, false, VTD_FR_IR_REQ_COMPAT);
    }
    uint32_t index = ((*addr >> 5) & 0x7fff) | ((*addr & VTD_MSI_ADDR_H15) ? 0x8000 : 0);
    if (*addr & VTD_MSI_ADDR_SHV) {
        index += *data & 0xffff;
    }
    if (index >= s->irt_entries) {
        return ir_fault(s, sid, index, false, VTD_FR_IR_INDEX_OVER);
    }
    uint64_t irte[2];
    if (!guest_mem_read(s->mem, s->irt + (uint64_t)index * 16, irte, sizeof(irte))) {
        return ir_fault(s, sid, index, false, VTD_FR_IR_ROOT_INV);
    }
    uint64_t lo = GUINT64_FROM_LE(irte[0]), hi = GUINT64_FROM_LE(irte[1]);
    bool fpd = lo & 2;
    if (!(lo & 1)) {
        return ir_fault(s, sid, index, fpd, VTD_FR_IR_ENTRY_P);
    }
    /* Reserved: 14:12, 15 (posted format: not supported), 31:24; SVT 3; hi 63:20. */
    if ((lo & 0xff00f000ULL) || (hi >> 20) || ((hi >> 18) & 3) == 3) {
        return ir_fault(s, sid, index, fpd, VTD_FR_IR_IRTE_RSVD);
    }
    /* The IOAPIC's messages are not source-id checked: QEMU routes them through KVM with
     * kernel-irqchip=split without a requester id, and guests (kvm-unit-tests) rely on it. */
    if (sid != PCI_IOAPIC_SOURCE_ID && !sid_ok(hi, sid)) {
        return ir_fault(s, sid, index, fpd, VTD_FR_IR_SID_ERR);
    }
    uint32_t dest = (uint32_t)(lo >> 32);
    if (!s->irt_eime) {
        dest = (dest >> 8) & 0xff; /* xAPIC: the 8-bit id sits in bits 15:8 */
    }
    unsigned dm = (lo >> 2) & 1, rh = (lo >> 3) & 1, tm = (lo >> 4) & 1;
    unsigned dlm = (lo >> 5) & 7, vector = (lo >> 16) & 0xff;
    /* x2APIC destinations above 255 travel in the upper address (KVM's X2APIC_API). */
    *addr = VTD_MSI_ADDR_BASE | (uint64_t)(dest & 0xff) << 12 | rh << 3 | dm << 2 |
            (uint64_t)(dest & 0xffffff00u) << 32;
    *data = vector | dlm << 8 | tm << 15;
    return true;
}
