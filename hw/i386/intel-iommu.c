/*
 * VT-d register file, global command, fault recording and queued invalidation
 * (see intel-iommu.h).  Registers are handled as aligned dwords: a 64-bit access is its
 * low dword then its high one, which is how the command registers with their trigger
 * bit in the upper half (CCMD.ICC, IOTLB.IVT) are meant to be written by 32-bit drivers.
 *
 * Sen keeps no translation caches, so every invalidation (register or queued) only has
 * to be validated and completed: a later walk always reads the tables afresh.
 */
#include <inttypes.h>
#include <string.h>
#include "hw/i386/intel-iommu.h"

#define LO(v)  ((uint32_t)(v))
#define HI(v)  ((uint32_t)((v) >> 32))

static void set_lo(uint64_t *r, uint32_t v) { *r = (*r & ~0xffffffffULL) | v; }
static void set_hi(uint64_t *r, uint32_t v) { *r = (*r & 0xffffffffULL) | (uint64_t)v << 32; }

/* ---- interrupts the unit raises itself ---- */

static void send_event(VtdState *s, VtdEventRegs *ev)
{
    ev->ctl |= VTD_ECTL_IP;
    if (!(ev->ctl & VTD_ECTL_IM)) {
        s->send_msi(s->msi_opaque, (uint64_t)ev->uaddr << 32 | ev->addr, ev->data);
        ev->ctl &= ~VTD_ECTL_IP;
    }
}

/* The event's registers, at rel = 0, 4, 8, 12 from its control register. */
static uint32_t event_reg_read(const VtdEventRegs *ev, uint64_t rel)
{
    switch (rel) {
    case 0: return ev->ctl;
    case 4: return ev->data;
    case 8: return ev->addr;
    default: return ev->uaddr;
    }
}

static void event_reg_write(VtdState *s, VtdEventRegs *ev, uint64_t rel, uint32_t v)
{
    switch (rel) {
    case 0: /* only IM is writable; unmasking delivers what is pending */
        ev->ctl = (ev->ctl & ~VTD_ECTL_IM) | (v & VTD_ECTL_IM);
        if (!(ev->ctl & VTD_ECTL_IM) && (ev->ctl & VTD_ECTL_IP)) {
            send_event(s, ev);
        }
        break;
    case 4:
        ev->data = v;
        break;
    case 8:
        ev->addr = v & ~3u;
        break;
    default:
        ev->uaddr = v;
        break;
    }
}

/* Statuses that, while set, mean a fault event is already outstanding. */
static bool fault_pending(const VtdState *s)
{
    if (s->fsts & VTD_FSTS_W1C) {
        return true;
    }
    for (unsigned i = 0; i < VTD_NR_FRCD; i++) {
        if (s->frcd[i][1] >> 63) {
            return true;
        }
    }
    return false;
}

static uint32_t fsts_value(const VtdState *s)
{
    uint32_t v = s->fsts;
    for (unsigned i = 0; i < VTD_NR_FRCD; i++) {
        if (s->frcd[i][1] >> 63) {
            v |= VTD_FSTS_PPF;
        }
    }
    return v;
}

/* A new fault condition: the event fires only if none was outstanding (spec 7.3.1). */
static void fault_event(VtdState *s, bool was_pending)
{
    if (!was_pending) {
        send_event(s, &s->fault_ev);
    }
}

void vtd_record_fault(VtdState *s, uint16_t sid, uint64_t fi, bool is_read, VtdFault reason)
{
    bool was_pending = fault_pending(s);
    if (s->fsts & VTD_FSTS_PFO) {
        return; /* overflowed: nothing more is recorded until software clears PFO */
    }
    unsigned idx = (s->fsts >> VTD_FSTS_FRI_SHIFT) & 0xff;
    if (idx >= VTD_NR_FRCD) {
        idx = 0;
    }
    if (s->frcd[idx][1] >> 63) {
        s->fsts |= VTD_FSTS_PFO;
        fault_event(s, was_pending);
        return;
    }
    s->frcd[idx][0] = fi & ~0xfffULL;
    s->frcd[idx][1] = (uint64_t)sid | (uint64_t)reason << 32 |
                      (is_read ? 1ULL << 62 : 0) | 1ULL << 63;
    s->fsts = (s->fsts & ~(0xffu << VTD_FSTS_FRI_SHIFT)) |
              ((idx + 1) % VTD_NR_FRCD) << VTD_FSTS_FRI_SHIFT;
    fault_event(s, was_pending);
}

/* FSTS or a fault record was cleared: once nothing is outstanding, IP goes too. */
static void fault_status_cleared(VtdState *s)
{
    if (!fault_pending(s)) {
        s->fault_ev.ctl &= ~VTD_ECTL_IP;
    }
}

/* ---- queued invalidation ---- */

static bool queue_error(VtdState *s, const char *why, uint64_t lo, uint64_t hi)
{
    log_guest_error(&s->rl, "intel-iommu: invalidation queue entry %" PRIu64 ": %s "
                    "(0x%016" PRIx64 " 0x%016" PRIx64 ")", s->iqh >> 4, why, hi, lo);
    bool was_pending = fault_pending(s);
    s->fsts |= VTD_FSTS_IQE;
    fault_event(s, was_pending);
    return false;
}

static bool inv_wait(VtdState *s, uint64_t lo, uint64_t hi)
{
    const uint64_t IF = 1ULL << 4, SW = 1ULL << 5;
    if ((lo & 0xffffff80ULL) || (hi & 3)) {
        return queue_error(s, "wait descriptor with reserved bits set", lo, hi);
    }
    if (lo & SW) {
        uint32_t status = GUINT32_TO_LE(HI(lo));
        if (!guest_mem_write(s->mem, hi, &status, sizeof(status))) {
            return queue_error(s, "wait descriptor status address is not RAM", lo, hi);
        }
    }
    if ((lo & IF) && !(s->ics & VTD_ICS_IWC)) {
        s->ics |= VTD_ICS_IWC;
        send_event(s, &s->inv_ev);
    }
    return true;
}

/* One descriptor: validated (the unit caches nothing, so there is nothing to drop). */
static bool inv_descriptor(VtdState *s, uint64_t lo, uint64_t hi)
{
    unsigned gran = (lo >> 4) & 3;
    switch (lo & 0xf) {
    case 1: /* context-cache */
        if ((lo & 0xfffc00000000ffc0ULL) || hi || gran == 0) {
            return queue_error(s, "bad context-cache invalidation", lo, hi);
        }
        return true;
    case 2: /* IOTLB */
        if ((lo & 0xffffffff0000ff00ULL) || (hi & 0xf80) || gran == 0 ||
            (gran == 3 && (hi & 0x3f) > 18)) {
            return queue_error(s, "bad IOTLB invalidation", lo, hi);
        }
        return true;
    case 4: /* interrupt entry cache */
        if ((lo & 0xffff000007ffffe0ULL) || hi) {
            return queue_error(s, "bad interrupt entry cache invalidation", lo, hi);
        }
        if (!s->cfg.intremap) {
            return queue_error(s, "interrupt entry cache invalidation without ECAP.IR", lo,
                               hi);
        }
        return true;
    case 5:
        return inv_wait(s, lo, hi);
    default: /* 3 device-IOTLB (ECAP.DT = 0), PASID types (no scalable mode), reserved */
        return queue_error(s, "unsupported descriptor type", lo, hi);
    }
}

/* Fetches from IQH up to IQT; stops at an error with IQH on the bad descriptor. */
static void process_queue(VtdState *s)
{
    if (!(s->gsts & VTD_GCMD_QIE) || (s->fsts & VTD_FSTS_IQE)) {
        return;
    }
    uint64_t tail = (s->iqt >> 4) & 0x7fff;
    if (tail >= s->iq_entries) {
        queue_error(s, "IQT beyond the queue size", s->iqt, 0);
        return;
    }
    uint64_t head = (s->iqh >> 4) & 0x7fff;
    /* Each step advances head modulo the queue: at most iq_entries steps. */
    while (head != tail) {
        uint64_t desc[2];
        if (!guest_mem_read(s->mem, s->iq_base + head * 16, desc, sizeof(desc))) {
            queue_error(s, "descriptor is not in RAM", 0, 0);
            return;
        }
        if (!inv_descriptor(s, GUINT64_FROM_LE(desc[0]), GUINT64_FROM_LE(desc[1]))) {
            return;
        }
        head = (head + 1) % s->iq_entries;
        s->iqh = head << 4;
    }
}

static void set_qie(VtdState *s, bool on)
{
    if (on) {
        s->iq_base = s->iqa & s->haw_mask & ~0xfffULL;
        s->iq_entries = 1u << ((s->iqa & VTD_IQA_QS_MASK) + 8);
        s->iqh = 0;
        s->gsts |= VTD_GCMD_QIE;
        /* Drivers that set the tail first (Windows) expect it to be processed now. */
        process_queue(s);
    } else {
        s->gsts &= ~VTD_GCMD_QIE;
        s->iqh = 0;
    }
}

/* ---- global command ---- */

static void global_command(VtdState *s, uint32_t cmd)
{
    uint32_t changed = cmd ^ s->gsts;

    if (cmd & VTD_GCMD_SRTP) {
        /* Only legacy-mode root tables: RTADDR.TTM (bits 11:10) other than 0 is refused
         * by leaving the root table unset (every walk then faults). */
        if (s->rtaddr & 0xc00) {
            log_guest_error(&s->rl, "intel-iommu: RTADDR translation table mode %" PRIu64
                            " unsupported (legacy mode only)", (s->rtaddr >> 10) & 3);
        }
        s->root_table = s->rtaddr;
        s->gsts |= VTD_GCMD_SRTP;
    }
    if (changed & VTD_GCMD_TE) {
        s->gsts ^= VTD_GCMD_TE;
    }
    if (changed & VTD_GCMD_QIE) {
        set_qie(s, cmd & VTD_GCMD_QIE);
    }
    if (s->cfg.intremap) {
        if (cmd & VTD_GCMD_SIRTP) {
            s->irt = s->irta & s->haw_mask & ~0xfffULL;
            s->irt_entries = 2u << (s->irta & VTD_IRTA_S_MASK);
            s->irt_eime = s->cfg.eim && (s->irta & VTD_IRTA_EIME);
            s->gsts |= VTD_GCMD_SIRTP;
        }
        if (changed & VTD_GCMD_IRE) {
            s->gsts ^= VTD_GCMD_IRE;
        }
        if (changed & VTD_GCMD_CFI) {
            s->gsts ^= VTD_GCMD_CFI;
        }
    }
    /* SFL/EAFL (no advanced fault log), WBF (CAP.RWBF = 0): nothing to do. */
}

/* Register-based invalidation: completes at once (no caches), reporting the granularity
 * it was asked for as the one performed. */
static void context_command(VtdState *s)
{
    if (!(s->ccmd & VTD_CCMD_ICC)) {
        return;
    }
    uint64_t cirg = (s->ccmd >> VTD_CCMD_CIRG_SHIFT) & 3;
    s->ccmd &= ~(VTD_CCMD_ICC | 3ULL << VTD_CCMD_CAIG_SHIFT);
    s->ccmd |= cirg << VTD_CCMD_CAIG_SHIFT;
}

static void iotlb_command(VtdState *s)
{
    if (!(s->iotlb & VTD_IOTLB_IVT)) {
        return;
    }
    uint64_t iirg = (s->iotlb >> VTD_IOTLB_IIRG_SHIFT) & 3;
    s->iotlb &= ~(VTD_IOTLB_IVT | 3ULL << VTD_IOTLB_IAIG_SHIFT);
    s->iotlb |= iirg << VTD_IOTLB_IAIG_SHIFT;
}

/* ---- the register page ---- */

static uint32_t read32(VtdState *s, uint64_t off)
{
    if (off >= VTD_REG_FRCD && off < VTD_REG_FRCD + 16 * VTD_NR_FRCD) {
        uint64_t rel = off - VTD_REG_FRCD;
        uint64_t q = s->frcd[rel / 16][(rel / 8) & 1];
        return rel & 4 ? HI(q) : LO(q);
    }
    switch (off) {
    case VTD_REG_VER: return VTD_VERSION;
    case VTD_REG_CAP: return LO(s->cap);
    case VTD_REG_CAP + 4: return HI(s->cap);
    case VTD_REG_ECAP: return LO(s->ecap);
    case VTD_REG_ECAP + 4: return HI(s->ecap);
    case VTD_REG_GSTS: return s->gsts;
    case VTD_REG_RTADDR: return LO(s->rtaddr);
    case VTD_REG_RTADDR + 4: return HI(s->rtaddr);
    case VTD_REG_CCMD: return LO(s->ccmd);
    case VTD_REG_CCMD + 4: return HI(s->ccmd);
    case VTD_REG_FSTS: return fsts_value(s);
    case VTD_REG_FECTL ... VTD_REG_FEUADDR:
        return event_reg_read(&s->fault_ev, off - VTD_REG_FECTL);
    case VTD_REG_IQH: return LO(s->iqh);
    case VTD_REG_IQT: return LO(s->iqt);
    case VTD_REG_IQA: return LO(s->iqa);
    case VTD_REG_IQA + 4: return HI(s->iqa);
    case VTD_REG_ICS: return s->ics;
    case VTD_REG_IECTL ... VTD_REG_IEUADDR:
        return event_reg_read(&s->inv_ev, off - VTD_REG_IECTL);
    case VTD_REG_IRTA: return LO(s->irta);
    case VTD_REG_IRTA + 4: return HI(s->irta);
    case VTD_REG_IVA: return LO(s->iva);
    case VTD_REG_IVA + 4: return HI(s->iva);
    case VTD_REG_IOTLB: return LO(s->iotlb);
    case VTD_REG_IOTLB + 4: return HI(s->iotlb);
    default: return 0; /* GCMD is write-only; PMEN, reserved and unused registers read 0 */
    }
}

static void write32(VtdState *s, uint64_t off, uint32_t v)
{
    uint32_t haw_hi = HI(s->haw_mask);

    if (off >= VTD_REG_FRCD && off < VTD_REG_FRCD + 16 * VTD_NR_FRCD) {
        if ((off - VTD_REG_FRCD) % 16 == 12 && (v >> 31)) {
            s->frcd[(off - VTD_REG_FRCD) / 16][1] &= ~(1ULL << 63); /* F is W1C */
            fault_status_cleared(s);
        }
        return;
    }
    switch (off) {
    case VTD_REG_GCMD:
        global_command(s, v);
        break;
    case VTD_REG_RTADDR:
        set_lo(&s->rtaddr, v & 0xfffffc00u);
        break;
    case VTD_REG_RTADDR + 4:
        set_hi(&s->rtaddr, v & haw_hi);
        break;
    case VTD_REG_CCMD:
        set_lo(&s->ccmd, v);
        break;
    case VTD_REG_CCMD + 4:
        set_hi(&s->ccmd, v & 0xe0000003u); /* ICC, CIRG, FM */
        context_command(s);
        break;
    case VTD_REG_FSTS:
        s->fsts &= ~(v & VTD_FSTS_W1C);
        fault_status_cleared(s);
        if (v & VTD_FSTS_IQE) {
            process_queue(s); /* fetching resumes at IQH (software fixed the entry) */
        }
        break;
    case VTD_REG_FECTL ... VTD_REG_FEUADDR:
        event_reg_write(s, &s->fault_ev, off - VTD_REG_FECTL, v);
        break;
    case VTD_REG_IQT:
        s->iqt = v & 0x7fff0u;
        process_queue(s);
        break;
    case VTD_REG_IQA:
        set_lo(&s->iqa, v & 0xfffff007u);
        break;
    case VTD_REG_IQA + 4:
        set_hi(&s->iqa, v & haw_hi);
        break;
    case VTD_REG_ICS:
        if (v & VTD_ICS_IWC) {
            s->ics &= ~VTD_ICS_IWC;
            s->inv_ev.ctl &= ~VTD_ECTL_IP;
        }
        break;
    case VTD_REG_IECTL ... VTD_REG_IEUADDR:
        event_reg_write(s, &s->inv_ev, off - VTD_REG_IECTL, v);
        break;
    case VTD_REG_IRTA:
        if (s->cfg.intremap) {
            set_lo(&s->irta, v & (0xfffff00fu | (s->cfg.eim ? VTD_IRTA_EIME : 0)));
        }
        break;
    case VTD_REG_IRTA + 4:
        if (s->cfg.intremap) {
            set_hi(&s->irta, v & haw_hi);
        }
        break;
    case VTD_REG_IVA:
        set_lo(&s->iva, v & 0xfffff07fu);
        break;
    case VTD_REG_IVA + 4:
        set_hi(&s->iva, v & haw_hi);
        break;
    case VTD_REG_IOTLB + 4:
        set_hi(&s->iotlb, v & 0xb003ffffu); /* IVT, IIRG, DR, DW, DID */
        iotlb_command(s);
        break;
    default:
        break; /* read-only, reserved, PMEN without protected regions (CAP.PLMR/PHMR 0) */
    }
}

uint64_t vtd_reg_read(VtdState *s, uint64_t offset, unsigned size)
{
    if (offset >= VTD_MMIO_SIZE || offset % size) {
        log_guest_error(&s->rl, "intel-iommu: misaligned %u-byte read at 0x%" PRIx64,
                        size, offset);
        return 0;
    }
    if (size == 8) {
        return read32(s, offset) | (uint64_t)read32(s, offset + 4) << 32;
    }
    uint32_t dword = read32(s, offset & ~3ULL);
    dword >>= 8 * (offset & 3);
    return size == 4 ? dword : dword & ((1u << (8 * size)) - 1);
}

void vtd_reg_write(VtdState *s, uint64_t offset, unsigned size, uint64_t value)
{
    if (offset >= VTD_MMIO_SIZE || offset % size || size < 4) {
        /* The spec allows only 32- and 64-bit accesses to the registers. */
        log_guest_error(&s->rl, "intel-iommu: %u-byte write at 0x%" PRIx64 " ignored", size,
                        offset);
        return;
    }
    write32(s, offset, (uint32_t)value);
    if (size == 8) {
        write32(s, offset + 4, (uint32_t)(value >> 32));
    }
}

bool vtd_state_valid(const VtdState *s)
{
    /* 2^(QS+8) queue entries (QS <= 7); IQH on an entry of that queue; 2^(S+1) IRTEs. */
    return s->iq_entries >= 256 && s->iq_entries <= 256u << 7 &&
           !(s->iq_entries & (s->iq_entries - 1)) && !(s->iqh & 0xf) &&
           (s->iqh >> 4) < s->iq_entries && s->irt_entries <= 1u << 16;
}

void vtd_reset(VtdState *s)
{
    s->gsts = 0;
    s->rtaddr = s->ccmd = 0;
    s->fsts = 0;
    s->fault_ev = (VtdEventRegs){ .ctl = VTD_ECTL_IM };
    s->iqh = s->iqt = s->iqa = 0;
    s->ics = 0;
    s->inv_ev = (VtdEventRegs){ .ctl = VTD_ECTL_IM };
    s->irta = s->iva = s->iotlb = 0;
    memset(s->frcd, 0, sizeof(s->frcd));
    s->root_table = s->irt = s->iq_base = 0;
    s->irt_entries = 0;
    s->irt_eime = false;
    s->iq_entries = 256;
}

void vtd_init(VtdState *s, const VtdConfig *cfg, GuestMemory *mem, VtdSendMsi *send_msi,
              void *msi_opaque)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->mem = mem;
    s->send_msi = send_msi;
    s->msi_opaque = msi_opaque;
    s->haw_mask = (1ULL << cfg->aw_bits) - 1;
    s->cap = VTD_CAP_FRO | VTD_CAP_NFR | VTD_CAP_ND_64K | VTD_CAP_MAMV | VTD_CAP_PSI |
             VTD_CAP_SLLPS_2M | VTD_CAP_SLLPS_1G | VTD_CAP_DWD | VTD_CAP_DRD |
             VTD_CAP_SAGAW_39 | VTD_CAP_MGAW(cfg->aw_bits);
    if (cfg->aw_bits == 48) {
        s->cap |= VTD_CAP_SAGAW_48;
    }
    s->ecap = VTD_ECAP_QI | VTD_ECAP_IRO | VTD_ECAP_MHMV | VTD_ECAP_PT;
    if (cfg->intremap) {
        s->ecap |= VTD_ECAP_IR;
        if (cfg->eim) {
            s->ecap |= VTD_ECAP_EIM;
        }
    }
    vtd_reset(s);
}
