/*
 * The PCI bus (hw/pci/): config space, BARs, capabilities, INTx, MSI and MSI-X.
 *
 * One bus, "pci.0", behind an i440fx-like host bridge (8086:1237 at 00.0) created by the
 * PC board.  The guest reaches config space through CF8/CFC (type-1) and, when RAM leaves
 * room for it, the ECAM window at PCI_ECAM_BASE (see docs/pci.md for how a guest finds it).
 *
 * A PCI device model is a DeviceClass whose instance struct starts with PCIDevice (which
 * itself starts with DeviceState), lists DEFINE_PCI_PROPS among its properties and, in its
 * realize, calls pci_device_realize() first, then fills IDs, BARs and capabilities:
 *
 *     typedef struct MyDev { PCIDevice pci; ... } MyDev;
 *     static bool my_realize(DeviceState *dev, Machine *m, Error **errp) {
 *         MyDev *s = (MyDev *)dev;
 *         if (!pci_device_realize(&s->pci, m, errp)) return false;
 *         pci_set_ids(&s->pci, 0x1af4, 0x1042, 0x1af4, 0x0002, 1);
 *         pci_set_class(&s->pci, 0x018000);
 *         pci_register_bar(&s->pci, 4, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, 0x4000, &ops, s);
 *         ...
 *     }
 *     reset: pci_device_reset(&s->pci); unrealize: pci_device_unrealize(&s->pci).
 *     The registry does not call unrealize when realize fails: a realize that fails after
 *     pci_device_realize() calls pci_device_unrealize() itself.
 *
 * BAR handlers see offsets inside the BAR only; the bus maps a BAR into m->pio / m->mmio
 * when the guest has programmed an address and enabled I/O or memory decoding, and unmaps
 * it when either goes away.  Accesses to the MSI-X table and PBA inside a BAR are served
 * by the bus and never reach the device's handlers.
 *
 * All functions expect the VM lock held (device handlers and realize already run under it).
 */
#ifndef SEN_PCI_H
#define SEN_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/pci_regs.h> /* PCI_COMMAND, PCI_CAP_ID_MSIX ... register names */
#include "sen/device.h"
#include "sen/machine.h"
#include "sen/memory.h"

#define PCI_CONFIG_SIZE      256
#define PCIE_CONFIG_SIZE     4096
#define PCI_NUM_BARS         6
#define PCI_ROM_SLOT         6     /* PCIBar.nr of the expansion ROM BAR (config 0x30) */
#define PCI_SLOT_MAX         32
#define PCI_FUNC_MAX         8
#define PCI_DEVFN(slot, fn)  ((uint8_t)(((slot) << 3) | (fn)))
#define PCI_DEVFN_SLOT(devfn) ((devfn) >> 3)
#define PCI_DEVFN_FUNC(devfn) ((devfn) & 7)

/* MMCONFIG (ECAM) window: bus 0..255, 1 MiB per bus, as QEMU's q35 places it. */
#define PCI_ECAM_BASE        0xb0000000ULL
#define PCI_ECAM_SIZE        0x10000000ULL
/* Host-bridge config register holding the ECAM base | 1 (enabled), 0 when absent;
 * read-only, modelled on the Q35 MCH PCIEXBAR register (docs/pci.md). */
#define PCI_HOST_ECAM_REG    0x60

/* INTx: slot s, pin p (0 = INTA) raises GSI PCI_INTX_GSI_BASE + (s + p) % 4: IOAPIC-only
 * pins, level-triggered, described in the MP table. */
#define PCI_INTX_GSI_BASE    16

#define PCI_HOST_BUS_NAME    "pci.0"

typedef struct PCIBus PCIBus;
typedef struct PCIDevice PCIDevice;
typedef struct MSIXState MSIXState;
typedef struct MSIState MSIState;

/* pci_register_bar type: one of the first three, optionally | PCI_BAR_PREFETCH. */
enum {
    PCI_BAR_IO = 0,
    PCI_BAR_MEM32 = 1,
    PCI_BAR_MEM64 = 2,     /* takes BARs n and n+1 */
    PCI_BAR_PREFETCH = 0x10,
};

#define PCI_BAR_UNMAPPED UINT64_MAX

typedef struct PCIBar {
    uint64_t size;         /* power of two; 0 = BAR unused */
    unsigned type;         /* PCI_BAR_* */
    const IoOps *ops;
    void *opaque;
    uint64_t addr;         /* where it is mapped now, or PCI_BAR_UNMAPPED */
    PCIDevice *dev;        /* back pointer for the bus's dispatcher */
    int nr;
} PCIBar;

struct PCIDevice {
    DeviceState qdev;      /* first: a PCIDevice is a DeviceState */

    /* Properties (DEFINE_PCI_PROPS). */
    char *bus_name;        /* bus=, NULL = pci.0 */
    char *addr_str;        /* addr=SLOT[.FN] (hex, as QEMU), NULL = first free slot */
    char *romfile;         /* romfile=: expansion ROM image (hw/pci/pci-rom.c), NULL = none */
    uint32_t rombar;       /* rombar=: 1 = in the ROM BAR, 0 = to firmware via fw_cfg */

    /* Set by pci_device_realize(). */
    Machine *m;
    PCIBus *bus;
    uint8_t devfn;
    uint8_t *config;       /* PCIE_CONFIG_SIZE bytes, little-endian as the guest sees it */
    uint8_t *wmask;        /* per byte: bits the guest may write */
    uint8_t *w1cmask;      /* per byte: bits a guest write of 1 clears */
    uint32_t config_size;  /* PCI_CONFIG_SIZE, or PCIE_CONFIG_SIZE after pci_set_express */
    PCIBar bars[PCI_NUM_BARS];
    PCIBar rom;            /* the expansion ROM BAR; size 0 = none */
    GBytes *rom_data;      /* romfile= contents, NULL = none */
    int intx_level;        /* last pci_set_irq level */
    bool intx_asserted;    /* level as the bus sees it (INTx disable applied) */
    uint16_t cap_end;      /* first free config byte after the capabilities */
    MSIXState *msix;
    MSIState *msi;

    /*
     * Optional hooks a device may set after pci_device_realize().  config_write runs
     * after the bus has applied the write with the masks (and handled BARs, command,
     * MSI/MSI-X); config_read may replace the value the bus read.  addr + len never
     * exceed config_size; len is 1, 2 or 4.
     */
    void (*config_write)(PCIDevice *d, uint32_t addr, uint32_t val, unsigned len);
    uint32_t (*config_read)(PCIDevice *d, uint32_t addr, unsigned len, uint32_t val);
    /* BAR n moved (either address may be PCI_BAR_UNMAPPED), e.g. to move ioeventfds.
     * Called on guest writes and pci_device_reset, never from pci_device_unrealize. */
    void (*bar_remapped)(PCIDevice *d, int n, uint64_t old_addr, uint64_t new_addr);

    /* Migration (pci.c): config space as saved / as being loaded (a staging copy that
     * post_load checks against this device's read-only bytes). */
    uint8_t *vmstate_config;
};

#define DEFINE_PCI_PROPS(_state, _pcifield) \
    DEFINE_PROP("bus", PROP_STRING, _state, _pcifield.bus_name, NULL, \
                "PCI bus to plug into (pci.0)"), \
    DEFINE_PROP("addr", PROP_STRING, _state, _pcifield.addr_str, NULL, \
                "slot[.function] on the bus, hex (default: first free slot)"), \
    DEFINE_PROP("romfile", PROP_STRING, _state, _pcifield.romfile, NULL, \
                "expansion ROM image (a bare name is looked up in /usr/share/qemu)"), \
    DEFINE_PROP("rombar", PROP_U32, _state, _pcifield.rombar, "1", \
                "1: the ROM is in the expansion ROM BAR; 0: firmware gets it via fw_cfg")

/* ---- config space accessors (little-endian, no bounds check: offsets are constants) */
static inline uint8_t pci_get_byte(const uint8_t *p) { return p[0]; }
static inline uint16_t pci_get_word(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t pci_get_long(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline void pci_set_byte(uint8_t *p, uint8_t v) { p[0] = v; }
static inline void pci_set_word(uint8_t *p, uint16_t v) { p[0] = v & 0xff; p[1] = v >> 8; }
static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = v >> 24;
}

/* ---- migration ---- */

typedef struct VMStateDesc VMStateDesc;
/* What every PCI device carries: config space, INTx level, MSI-X table and PBA.  Nest it
 * first in a device's VMStateDesc with VMSTATE_PCI_DEVICE(pci, MyDev).  Its post_load
 * refuses a config space whose identity (IDs, class, BAR types, header) differs, maps the
 * BARs where the guest had them, re-drives INTx and re-routes irqfd MSI-X vectors. */
extern const VMStateDesc pci_device_vmsd;
#define VMSTATE_PCI_DEVICE(_f, _s) VMSTATE_STRUCT(_f, _s, pci_device_vmsd, PCIDevice)

/* ---- device side ---- */

/* Parses bus=/addr=, claims the slot ("addr=3.0: slot 3 function 0 already in use by
 * 'virtio-blk-pci'"), allocates config space with the standard masks (command, BARs,
 * interrupt line, status w1c), INTx pin A. */
bool pci_device_realize(PCIDevice *d, Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Power-on state: command 0 (BARs unmapped), BAR addresses 0, MSI/MSI-X disabled and
 * masked, INTx lowered.  IDs and capabilities stay. */
void pci_device_reset(PCIDevice *d);
/* Unmaps BARs, frees MSI/MSI-X state, leaves the bus.  Safe on a device whose realize
 * failed part-way (or never called pci_device_realize). */
void pci_device_unrealize(PCIDevice *d);

void pci_set_ids(PCIDevice *d, uint16_t vendor, uint16_t device, uint16_t subsys_vendor,
                 uint16_t subsys, uint8_t revision);
/* class_code: base << 16 | sub << 8 | prog-if (e.g. 0x010000 SCSI). */
void pci_set_class(PCIDevice *d, uint32_t class_code);
/* pin 0 = none, 1..4 = INTA..INTD. */
void pci_set_intx_pin(PCIDevice *d, uint8_t pin);
/* Makes the 4 KiB extended config space exist (PCI Express devices). */
void pci_set_express(PCIDevice *d);

/* Declares BAR n (size rounded up to a power of two, at least 16 for I/O and 4 KiB for
 * memory so a BAR never shares a page).  The guest sizes it by writing all-ones. */
bool pci_register_bar(PCIDevice *d, int n, unsigned type, uint64_t size, const IoOps *ops,
                      void *opaque, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* romfile= with rombar=0: the image the board hands to firmware through fw_cfg (as
 * "genroms/<basename>"), else NULL. */
GBytes *pci_rom_for_fw_cfg(const PCIDevice *d);
/* Where BAR n is mapped now, or PCI_BAR_UNMAPPED. */
uint64_t pci_bar_address(const PCIDevice *d, int n);

/* Appends a capability of size bytes (>= 2) to the list in the first 256 bytes; returns
 * its config offset or -1.  The caller sets the body and its wmask bytes. */
int pci_add_capability(PCIDevice *d, uint8_t id, uint8_t size, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Offset of the first capability with id, or 0. */
uint8_t pci_find_capability(const PCIDevice *d, uint8_t id);

/* Drives the device's INTx pin (ignored while the command register disables INTx).
 * Devices using MSI/MSI-X should not call this while those are enabled. */
void pci_set_irq(PCIDevice *d, int level);
/* The GSI slot/pin routes to (PCI_INTX_GSI_BASE + (slot + pin - 1) % 4), pin 1..4. */
unsigned pci_intx_gsi(uint8_t devfn, uint8_t pin);

/* ---- MSI-X (msix.c) ---- */

/* nr_vectors 1..2048; the table (16 bytes a vector) and the PBA live in already
 * registered memory BARs at the given offsets (8-byte aligned, not overlapping). */
bool msix_init(PCIDevice *d, unsigned nr_vectors, int table_bar, uint32_t table_off,
               int pba_bar, uint32_t pba_off, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Registers memory BAR bar_nr of its own holding table (offset 0) and PBA. */
bool msix_init_exclusive_bar(PCIDevice *d, unsigned nr_vectors, int bar_nr, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
bool msix_enabled(const PCIDevice *d);
/* Function mask or the vector's mask bit. */
bool msix_is_masked(const PCIDevice *d, unsigned vector);
unsigned msix_nr_vectors(const PCIDevice *d);
/* Sends the vector's message, or sets its pending bit while masked (sent at unmask). */
void msix_notify(PCIDevice *d, unsigned vector);
/*
 * Fast path: an eventfd whose signals become this vector's MSI inside KVM (GSI route +
 * irqfd), following the guest's table writes and masking (while masked the irqfd is
 * detached, the eventfd keeps the pending state and the PBA reports it).  fd -1 detaches.
 * Fails when the accelerator has no irqfd (qtest): then call msix_notify() instead.
 */
bool msix_vector_set_irqfd(PCIDevice *d, unsigned vector, int fd, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* ---- MSI (msi.c) ---- */

/* nr_vectors 1, 2, 4 ... 32; 64-bit address and per-vector masking as given. */
bool msi_init(PCIDevice *d, unsigned nr_vectors, bool is_64bit, bool per_vector_mask,
              Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool msi_enabled(const PCIDevice *d);
void msi_notify(PCIDevice *d, unsigned vector);

/* ---- bus side ---- */

/* The bus called name ("pci.0") among m->devices' host bridges, or NULL. */
PCIBus *pci_bus_find(Machine *m, const char *name);
PCIDevice *pci_bus_get_device(PCIBus *bus, uint8_t devfn);
/* Calls fn for every device on the bus, in devfn order. */
void pci_bus_foreach(PCIBus *bus, void (*fn)(PCIDevice *d, void *opaque), void *opaque);
/* Config access as the host bridge forwards it; no device: reads all-ones. */
uint32_t pci_bus_config_read(PCIBus *bus, uint8_t devfn, uint32_t addr, unsigned len);
void pci_bus_config_write(PCIBus *bus, uint8_t devfn, uint32_t addr, uint32_t val,
                          unsigned len);

/* Sends one MSI through the accelerator (dropped with a log line when it has none).
 * It does not pass the bus's IOMMU: devices use pci_device_send_msi(), interrupt
 * controllers pci_bus_remap_msi() first. */
void pci_send_msi(Machine *m, uint64_t addr, uint32_t data);

/* ---- IOMMU hook, DMA and interrupt remapping (pci-dma.c) ----
 *
 * An IOMMU model is an ordinary device (DeviceClass, not a PCIDevice: QEMU's intel-iommu
 * is a system device).  Its realize finds the bus with pci_bus_find(m, PCI_HOST_BUS_NAME)
 * ("this machine has no PCI bus" when NULL), refuses a bus that already has one
 * (pci_bus_has_iommu), registers its registers with io_space_add(m->mmio, base, size,
 * &ops, s, "intel-iommu", errp) and calls pci_bus_set_iommu(bus, &ops, s); its unrealize
 * calls pci_bus_set_iommu(bus, NULL, NULL) and io_space_del().  Tables in guest memory are
 * read with guest_mem_read(m->mem, ...).  The hook is looked up at every DMA and every
 * interrupt message, so the order of -device options does not matter.
 *
 * Requester / source id: bus << 8 | devfn (only bus 0 exists: the devfn).  The IOAPIC's
 * messages carry PCI_IOAPIC_SOURCE_ID (bus 0xf0, 1f.0: what Intel chipsets give their
 * IOAPIC), which is what the DMAR table's IOAPIC device scope must name.  (QEMU differs:
 * its DMAR names bus 0xff devfn 0, and its IOAPIC messages carry no source id, so its
 * VT-d skips source-id verification for them.)
 *
 * Every interrupt message a guest can cause (IOAPIC pins with kernel-irqchip=split, PCI
 * MSI and MSI-X) passes remap_msi before reaching the accelerator.  While the bus has an
 * IOMMU with remap_msi, MSI-X irqfds are refused (msix_vector_set_irqfd fails), so
 * devices take the slow path (msix_notify) and every message is remapped when sent.
 *
 * Existing virtio devices reach guest memory directly, as QEMU's do with their default
 * iommu_platform=off (they do not offer VIRTIO_F_ACCESS_PLATFORM): their DMA bypasses the
 * IOMMU, their interrupts do not.
 */
typedef struct PCIIOMMUOps {
    /* DMA: translate [iova, iova+len) (len > 0) for requester bdf; returns false on a
     * fault (which the IOMMU records itself).  On success *gpa_out and *contig_len
     * (1 <= *contig_len <= len) describe the first contiguous piece; the caller asks
     * again for the rest. */
    bool (*translate)(void *opaque, uint16_t bdf, uint64_t iova, uint64_t len,
                      bool is_write, uint64_t *gpa_out, uint64_t *contig_len);
    /* Interrupts: rewrite a (possibly remappable-format) MSI message from source-id sid
     * into a compatibility-format one; false = blocked (fault recorded by the IOMMU).
     * NULL = messages pass unchanged. */
    bool (*remap_msi)(void *opaque, uint16_t sid, uint64_t *addr, uint32_t *data);
} PCIIOMMUOps;

#define PCI_IOAPIC_SOURCE_ID 0xf0f8

/* ops NULL removes the IOMMU.  ops must outlive its use (a static const table). */
void pci_bus_set_iommu(PCIBus *bus, const PCIIOMMUOps *ops, void *opaque);
bool pci_bus_has_iommu(const PCIBus *bus);
/* bus << 8 | devfn as an IOMMU sees it. */
uint16_t pci_requester_id(const PCIDevice *d);

/*
 * Device DMA: copies between buf and [iova, iova+len) as d sees memory (through the bus's
 * IOMMU if any; guest-physical otherwise).  False, with nothing more copied, when bus
 * mastering is off in d's command register, a piece faults in the IOMMU, or a piece is
 * not entirely guest RAM (or, for a write, is ROM); pieces before the failing one have
 * been copied.  Writes mark the pages dirty for migration.  len 0 succeeds.
 */
bool pci_dma_read(PCIDevice *d, uint64_t iova, void *buf, size_t len);
bool pci_dma_write(PCIDevice *d, uint64_t iova, const void *buf, size_t len);

/* Passes one message from source-id sid through the bus's IOMMU: true with *addr and *data
 * the message to deliver (unchanged without an IOMMU or remap_msi), false = blocked. */
bool pci_bus_remap_msi(PCIBus *bus, uint16_t sid, uint64_t *addr, uint32_t *data);
/* d's MSI / MSI-X message: remapped with d's requester id, then pci_send_msi(). */
void pci_device_send_msi(PCIDevice *d, uint64_t addr, uint32_t data);

#endif
