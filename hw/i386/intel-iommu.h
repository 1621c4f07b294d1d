/*
 * The Intel VT-d remapping hardware unit as QEMU's `-device intel-iommu` models it
 * (docs/iommu.md), split in three files:
 *   intel-iommu.c       register file, global command, fault recording, queued invalidation
 *   intel-iommu-walk.c  the two table walkers: DMA remapping (root -> context -> second-level
 *                       page tables) and interrupt remapping (IRTE)
 *   intel-iommu-dev.c   the -device model: properties, MMIO, PCI bus hook, DMAR ACPI table
 *
 * The core (VtdState) sees guest memory only through the GuestMemory API and sends its own
 * interrupts (fault event, invalidation completion) through an injected callback, so unit
 * tests and the fuzzer drive it over a plain GuestMemory with no machine.
 *
 * Facts follow the Intel VT-d specification (rev. 3.x, legacy mode only: no scalable mode,
 * no PASID, no device-IOTLB, no caching mode) and the register values QEMU 7.2 shows.
 */
#ifndef HW_I386_INTEL_IOMMU_H
#define HW_I386_INTEL_IOMMU_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/log.h"
#include "sen/memory.h"

/* Where Q35 boards put the unit (QEMU's Q35_HOST_BRIDGE_IOMMU_ADDR) and how big it is. */
#define VTD_BASE_ADDR          0xfed90000ULL
#define VTD_MMIO_SIZE          0x1000ULL

/* ---- registers (offsets in the 4 KiB register page) ---- */
#define VTD_REG_VER            0x00
#define VTD_REG_CAP            0x08
#define VTD_REG_ECAP           0x10
#define VTD_REG_GCMD           0x18
#define VTD_REG_GSTS           0x1c
#define VTD_REG_RTADDR         0x20
#define VTD_REG_CCMD           0x28
#define VTD_REG_FSTS           0x34
#define VTD_REG_FECTL          0x38
#define VTD_REG_FEDATA         0x3c
#define VTD_REG_FEADDR         0x40
#define VTD_REG_FEUADDR        0x44
#define VTD_REG_PMEN           0x64
#define VTD_REG_IQH            0x80
#define VTD_REG_IQT            0x88
#define VTD_REG_IQA            0x90
#define VTD_REG_ICS            0x9c
#define VTD_REG_IECTL          0xa0
#define VTD_REG_IEDATA         0xa4
#define VTD_REG_IEADDR         0xa8
#define VTD_REG_IEUADDR        0xac
#define VTD_REG_IRTA           0xb8
#define VTD_REG_IVA            0xf0   /* ECAP.IRO points here */
#define VTD_REG_IOTLB          0xf8
#define VTD_REG_FRCD           0x220  /* CAP.FRO points here; 16 bytes a record */
#define VTD_NR_FRCD            1

#define VTD_VERSION            0x10   /* 1.0, as QEMU 7.2 */

/* CAP */
#define VTD_CAP_ND_64K         6ULL           /* 16-bit domain ids */
#define VTD_CAP_SAGAW_39       (2ULL << 8)    /* 3-level tables */
#define VTD_CAP_SAGAW_48       (4ULL << 8)    /* 4-level tables */
#define VTD_CAP_MGAW(aw)       ((uint64_t)((aw) - 1) << 16)
#define VTD_CAP_FRO            ((uint64_t)(VTD_REG_FRCD / 16) << 24)
#define VTD_CAP_SLLPS_2M       (1ULL << 34)
#define VTD_CAP_SLLPS_1G       (1ULL << 35)
#define VTD_CAP_PSI            (1ULL << 39)
#define VTD_CAP_NFR            ((uint64_t)(VTD_NR_FRCD - 1) << 40)
#define VTD_CAP_MAMV           (18ULL << 48)
#define VTD_CAP_DWD            (1ULL << 54)
#define VTD_CAP_DRD            (1ULL << 55)

/* ECAP */
#define VTD_ECAP_QI            (1ULL << 1)
#define VTD_ECAP_IR            (1ULL << 3)
#define VTD_ECAP_EIM           (1ULL << 4)
#define VTD_ECAP_PT            (1ULL << 6)
#define VTD_ECAP_IRO           ((uint64_t)(VTD_REG_IVA / 16) << 8)
#define VTD_ECAP_MHMV          (15ULL << 20)

/* GCMD / GSTS share bit positions. */
#define VTD_GCMD_TE            (1u << 31)
#define VTD_GCMD_SRTP          (1u << 30)
#define VTD_GCMD_SFL           (1u << 29)
#define VTD_GCMD_EAFL          (1u << 28)
#define VTD_GCMD_WBF           (1u << 27)
#define VTD_GCMD_QIE           (1u << 26)
#define VTD_GCMD_IRE           (1u << 25)
#define VTD_GCMD_SIRTP         (1u << 24)
#define VTD_GCMD_CFI           (1u << 23)

/* FSTS */
#define VTD_FSTS_PFO           (1u << 0)
#define VTD_FSTS_PPF           (1u << 1)      /* read-only: any FRCD has F set */
#define VTD_FSTS_IQE           (1u << 4)
#define VTD_FSTS_ICE           (1u << 5)
#define VTD_FSTS_ITE           (1u << 6)
#define VTD_FSTS_FRI_SHIFT     8
#define VTD_FSTS_W1C           (VTD_FSTS_PFO | VTD_FSTS_IQE | VTD_FSTS_ICE | VTD_FSTS_ITE)

/* FECTL / IECTL */
#define VTD_ECTL_IM            (1u << 31)
#define VTD_ECTL_IP            (1u << 30)

#define VTD_ICS_IWC            1u

/* CCMD and IOTLB (upper dwords): invalidate, requested and actual granularity. */
#define VTD_CCMD_ICC           (1ULL << 63)
#define VTD_CCMD_CIRG_SHIFT    61
#define VTD_CCMD_CAIG_SHIFT    59
#define VTD_IOTLB_IVT          (1ULL << 63)
#define VTD_IOTLB_IIRG_SHIFT   60
#define VTD_IOTLB_IAIG_SHIFT   57

/* IRTA */
#define VTD_IRTA_EIME          (1ULL << 11)
#define VTD_IRTA_S_MASK        0xfULL

/* IQA: queue size 2^(QS+8) descriptors of 16 bytes */
#define VTD_IQA_QS_MASK        0x7ULL

/* Fault reasons (VT-d spec, appendix A). */
typedef enum VtdFault {
    VTD_FR_ROOT_ENTRY_P = 0x1,
    VTD_FR_CONTEXT_ENTRY_P = 0x2,
    VTD_FR_CONTEXT_ENTRY_INV = 0x3,
    VTD_FR_ADDR_BEYOND_AGAW = 0x4,
    VTD_FR_WRITE = 0x5,
    VTD_FR_READ = 0x6,
    VTD_FR_PAGING_ENTRY_INV = 0x7,
    VTD_FR_ROOT_TABLE_INV = 0x8,
    VTD_FR_CONTEXT_TABLE_INV = 0x9,
    VTD_FR_ROOT_ENTRY_RSVD = 0xa,
    VTD_FR_CONTEXT_ENTRY_RSVD = 0xb,
    VTD_FR_PAGING_ENTRY_RSVD = 0xc,
    VTD_FR_IR_REQ_RSVD = 0x20,
    VTD_FR_IR_INDEX_OVER = 0x21,
    VTD_FR_IR_ENTRY_P = 0x22,
    VTD_FR_IR_ROOT_INV = 0x23,
    VTD_FR_IR_IRTE_RSVD = 0x24,
    VTD_FR_IR_REQ_COMPAT = 0x25,
    VTD_FR_IR_SID_ERR = 0x26,
} VtdFault;

/* Second-level page-table entry bits. */
#define VTD_SL_R               (1ULL << 0)
#define VTD_SL_W               (1ULL << 1)
#define VTD_SL_PS              (1ULL << 7)

/* Context entry */
#define VTD_CTX_P              (1ULL << 0)
#define VTD_CTX_FPD            (1ULL << 1)
#define VTD_CTX_TT_SHIFT       2
#define VTD_CTX_TT_MULTI_LEVEL 0
#define VTD_CTX_TT_DEV_IOTLB   1
#define VTD_CTX_TT_PASS_THROUGH 2

/* Interrupt messages */
#define VTD_MSI_ADDR_BASE      0xfee00000ULL
#define VTD_MSI_ADDR_IF        (1ULL << 4)    /* 1 = remappable format */
#define VTD_MSI_ADDR_SHV       (1ULL << 3)
#define VTD_MSI_ADDR_H15       (1ULL << 2)

typedef struct VtdConfig {
    unsigned aw_bits;      /* 39 or 48: guest (and host) address width */
    bool intremap;         /* ECAP.IR */
    bool eim;              /* ECAP.EIM: x2APIC 32-bit destinations */
} VtdConfig;

/* How the unit raises its own interrupts (not remapped, as on hardware). */
typedef void VtdSendMsi(void *opaque, uint64_t addr, uint32_t data);

/* The unit's two own interrupts (fault event, invalidation event) share one register
 * layout: control (IM, IP), data, address, upper address, dword after dword. */
typedef struct VtdEventRegs {
    uint32_t ctl, data, addr, uaddr;
} VtdEventRegs;

typedef struct VtdState {
    VtdConfig cfg;
    GuestMemory *mem;
    VtdSendMsi *send_msi;
    void *msi_opaque;
    uint64_t haw_mask;     /* address bits the unit can reach: 2^aw_bits - 1 */

    uint64_t cap, ecap;
    uint32_t gsts;
    uint64_t rtaddr, ccmd;
    uint32_t fsts;
    VtdEventRegs fault_ev;  /* FECTL, FEDATA, FEADDR, FEUADDR */
    uint64_t iqh, iqt, iqa;
    uint32_t ics;
    VtdEventRegs inv_ev;    /* IECTL, IEDATA, IEADDR, IEUADDR */
    uint64_t irta, iva, iotlb;
    uint64_t frcd[VTD_NR_FRCD][2];

    /* Latched by the global command (what the unit uses, not what the registers say). */
    uint64_t root_table;   /* SRTP */
    uint64_t irt;          /* SIRTP: table base, entry count, x2APIC mode */
    uint32_t irt_entries;
    bool irt_eime;
    uint64_t iq_base;      /* QIE: queue base and entry count */
    uint32_t iq_entries;

    RateLimit rl;
} VtdState;

/* Sets capabilities from cfg and resets. */
void vtd_init(VtdState *s, const VtdConfig *cfg, GuestMemory *mem, VtdSendMsi *send_msi,
              void *msi_opaque);
/* Power-on state: translation, queue and remapping off, faults cleared. */
void vtd_reset(VtdState *s);

/* For an incoming migration: false if the latched queue or remapping table size, or the
 * queue head, is a value the unit itself never produces (a stream from elsewhere). */
bool vtd_state_valid(const VtdState *s);

/* The register page (offset < VTD_MMIO_SIZE, size 1, 2, 4 or 8). */
uint64_t vtd_reg_read(VtdState *s, uint64_t offset, unsigned size);
void vtd_reg_write(VtdState *s, uint64_t offset, unsigned size, uint64_t value);

/*
 * DMA remapping for requester sid: the first contiguous piece of [iova, iova+len).
 * Translation off: identity.  False on a fault, which is recorded unless the context
 * entry disables fault processing.
 */
bool vtd_translate(VtdState *s, uint16_t sid, uint64_t iova, uint64_t len, bool is_write,
                   uint64_t *gpa, uint64_t *contig);
/*
 * Interrupt remapping: rewrites *addr / *data (an MSI from source-id sid) into the
 * compatibility-format message to deliver; false = blocked (fault recorded).
 */
bool vtd_remap_msi(VtdState *s, uint16_t sid, uint64_t *addr, uint32_t *data);

/* For the walkers: records a fault (FRCD, FSTS, fault event).  fi: the faulting page
 * address (DMA) or interrupt index << 48 (interrupts); is_read: DMA read request. */
void vtd_record_fault(VtdState *s, uint16_t sid, uint64_t fi, bool is_read, VtdFault reason);

#endif
