/*
 * PCI bus core: device placement (bus=/addr=), config space with write masks, BAR sizing
 * and mapping, the capability list and INTx.
 *
 * Config space is three byte arrays: the contents, a mask of guest-writable bits and a
 * mask of write-1-to-clear bits.  Every guest write goes through those masks byte by
 * byte, so a device only declares which bits are writable and never parses writes to the
 * standard header itself.  BAR sizing falls out of the masks too: the low bits of a BAR of
 * size S are read-only, so writing all-ones reads back ~(S-1) plus the type bits.
 */
#include <string.h>
#include "hw/pci/pci-internal.h"
#include "sen/vmstate.h"

#define PCI_CMD_WMASK (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | \
                       PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
#define PCI_STATUS_W1C (PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | \
                        PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT | \
                        PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)
#define PCI_CAP_FIRST 0x40

/* ---- the bus ---- */

PCIBus *pci_bus_new(Machine *m, const char *name)
{
    PCIBus *bus = g_new0(PCIBus, 1);
    bus->name = g_strdup(name);
    bus->m = m;
    return bus;
}

void pci_bus_free(PCIBus *bus)
{
    if (!bus) {
        return;
    }
    for (unsigned i = 0; i < 256; i++) {
        if (bus->devs[i]) {
            bus->devs[i]->bus = NULL; /* devices are freed by their own unrealize */
        }
    }
    g_free(bus->name);
    g_free(bus);
}

PCIDevice *pci_bus_get_device(PCIBus *bus, uint8_t devfn)
{
    return bus->devs[devfn];
}

void pci_bus_foreach(PCIBus *bus, void (*fn)(PCIDevice *d, void *opaque), void *opaque)
{
    for (unsigned i = 0; i < 256; i++) {
        if (bus->devs[i]) {
            fn(bus->devs[i], opaque);
        }
    }
}

unsigned pci_intx_gsi(uint8_t devfn, uint8_t pin)
{
    return PCI_INTX_GSI_BASE + (PCI_DEVFN_SLOT(devfn) + pin - 1) % 4;
}

void pci_send_msi(Machine *m, uint64_t addr, uint32_t data)
{
    if (m->accel_up && m->accel && m->accel->signal_msi) {
        m->accel->signal_msi(m, addr, data);
    }
}

/* ---- placement ---- */

static const char *dev_name(const PCIDevice *d)
{
    return d->qdev.id ? d->qdev.id : d->qdev.cls->name;
}

/* "SLOT[.FN]", hex as QEMU writes PCI addresses. */
static bool parse_addr(const char *str, int *devfn, Error **errp)
{
    char *end;
    guint64 slot, fn = 0;

    if (!g_ascii_isxdigit(*str)) {
        goto bad;
    }
    slot = g_ascii_strtoull(str, &end, 16);
    if (*end == '.') {
        if (!g_ascii_isxdigit(end[1])) {
            goto bad;
        }
        fn = g_ascii_strtoull(end + 1, &end, 16);
    }
    if (*end || slot >= PCI_SLOT_MAX || fn >= PCI_FUNC_MAX) {
        goto bad;
    }
    *devfn = PCI_DEVFN(slot, fn);
    return true;
bad:
    error_setg(errp, "addr=%s: expected SLOT[.FUNCTION] in hex (slot 0-1f, function 0-7)",
               str);
    return false;
}

static void config_init(PCIDevice *d)
{
    d->config = g_malloc0(PCIE_CONFIG_SIZE);
    d->wmask = g_malloc0(PCIE_CONFIG_SIZE);
    d->w1cmask = g_malloc0(PCIE_CONFIG_SIZE);
    d->config_size = PCI_CONFIG_SIZE;
    pci_set_word(d->wmask + PCI_COMMAND, PCI_CMD_WMASK);
    pci_set_word(d->w1cmask + PCI_STATUS, PCI_STATUS_W1C);
    d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    d->wmask[PCI_LATENCY_TIMER] = 0xff;
    d->wmask[PCI_INTERRUPT_LINE] = 0xff;
    d->config[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
    d->config[PCI_INTERRUPT_PIN] = 1;
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        d->bars[i].addr = PCI_BAR_UNMAPPED;
        d->bars[i].dev = d;
        d->bars[i].nr = i;
    }
}

bool pci_device_attach(PCIDevice *d, Machine *m, PCIBus *bus, int devfn, Error **errp)
{
    if (devfn < 0) {
        for (int slot = 0; slot < PCI_SLOT_MAX && devfn < 0; slot++) {
            bool used = false;
            for (int fn = 0; fn < PCI_FUNC_MAX; fn++) {
                used |= bus->devs[PCI_DEVFN(slot, fn)] != NULL;
            }
            if (!used) {
                devfn = PCI_DEVFN(slot, 0);
            }
        }
        if (devfn < 0) {
            error_setg(errp, "PCI bus %s is full (32 slots in use)", bus->name);
            return false;
        }
    } else if (bus->devs[devfn]) {
        error_setg(errp, "addr=%s: slot %d function %d on %s is already in use by %s",
                   d->addr_str ? d->addr_str : "?", PCI_DEVFN_SLOT(devfn),
                   PCI_DEVFN_FUNC(devfn), bus->name, dev_name(bus->devs[devfn]));
        return false;
    }
    d->m = m;
    d->bus = bus;
    d->devfn = (uint8_t)devfn;
    config_init(d);
    bus->devs[devfn] = d;
    return true;
}

bool pci_device_realize(PCIDevice *d, Machine *m, Error **errp)
{
    const char *busname = d->bus_name ? d->bus_name : PCI_HOST_BUS_NAME;
    PCIBus *bus = pci_bus_find(m, busname);
    int devfn = -1;

    if (!bus) {
        if (d->bus_name) {
            error_setg(errp, "bus=%s: no such PCI bus (this machine has %s)", d->bus_name,
                       PCI_HOST_BUS_NAME);
        } else {
            error_setg(errp, "this machine has no PCI bus");
        }
        return false;
    }
    if (d->addr_str && !parse_addr(d->addr_str, &devfn, errp)) {
        return false;
    }
    if (!pci_device_attach(d, m, bus, devfn, errp)) {
        return false;
    }
    if (!pci_rom_load(d, errp)) {
        pci_device_unrealize(d);
        return false;
    }
    return true;
}

/* ---- BARs ---- */

static uint64_t bar_dispatch_read(void *opaque, uint64_t off, unsigned size)
{
    PCIBar *bar = opaque;
    uint64_t val;

    if (msix_bar_read(bar->dev, bar->nr, off, size, &val)) {
        return val;
    }
    if (!bar->ops || !bar->ops->read) {
        return size == 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
    }
    return bar->ops->read(bar->opaque, off, size);
}

static void bar_dispatch_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    PCIBar *bar = opaque;

    if (msix_bar_write(bar->dev, bar->nr, off, size, val)) {
        return;
    }
    if (bar->ops && bar->ops->write) {
        bar->ops->write(bar->opaque, off, size, val);
    }
}

static const IoOps bar_dispatch_ops = {
    .read = bar_dispatch_read,
    .write = bar_dispatch_write,
};

bool pci_register_bar(PCIDevice *d, int n, unsigned type, uint64_t size, const IoOps *ops,
                      void *opaque, Error **errp)
{
    unsigned kind = type & 0xf;
    bool prefetch = type & PCI_BAR_PREFETCH;
    uint64_t min = kind == PCI_BAR_IO ? 16 : 4096;
    uint64_t max = kind == PCI_BAR_IO ? 0x10000 : kind == PCI_BAR_MEM32 ? 1ULL << 31
                                                                       : 1ULL << 40;

    if (n < 0 || n >= PCI_NUM_BARS || kind > PCI_BAR_MEM64 ||
        (kind == PCI_BAR_MEM64 && n == PCI_NUM_BARS - 1) ||
        (prefetch && kind == PCI_BAR_IO)) {
        error_setg(errp, "%s: invalid BAR %d (type %#x)", dev_name(d), n, type);
        return false;
    }
    if (d->bars[n].size || (n > 0 && d->bars[n - 1].type == PCI_BAR_MEM64 &&
                            d->bars[n - 1].size) ||
        (kind == PCI_BAR_MEM64 && d->bars[n + 1].size)) {
        error_setg(errp, "%s: BAR %d is already in use", dev_name(d), n);
        return false;
    }
    if (size == 0 || size > max) {
        error_setg(errp, "%s: BAR %d size %#" G_GINT64_MODIFIER "x out of range", dev_name(d),
                   n, size);
        return false;
    }
    size = MAX(size, min);
    if (size & (size - 1)) {
        size = 1ULL << (64 - __builtin_clzll(size));
    }

    PCIBar *bar = &d->bars[n];
    bar->size = size;
    bar->type = kind;
    bar->ops = ops;
    bar->opaque = opaque;
    bar->addr = PCI_BAR_UNMAPPED;

    uint8_t *cfg = d->config + PCI_BASE_ADDRESS_0 + 4 * n;
    uint8_t *wm = d->wmask + PCI_BASE_ADDRESS_0 + 4 * n;
    uint64_t mask = ~(size - 1);
    if (kind == PCI_BAR_IO) {
        pci_set_long(cfg, PCI_BASE_ADDRESS_SPACE_IO);
        pci_set_long(wm, (uint32_t)mask & PCI_BASE_ADDRESS_IO_MASK);
    } else {
        uint32_t flags = (kind == PCI_BAR_MEM64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
                         (prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
        pci_set_long(cfg, flags);
        pci_set_long(wm, (uint32_t)mask & PCI_BASE_ADDRESS_MEM_MASK);
        if (kind == PCI_BAR_MEM64) {
            pci_set_long(cfg + 4, 0);
            pci_set_long(wm + 4, (uint32_t)(mask >> 32));
        }
    }
    return true;
}

uint64_t pci_bar_address(const PCIDevice *d, int n)
{
    return n >= 0 && n < PCI_NUM_BARS ? d->bars[n].addr : PCI_BAR_UNMAPPED;
}

/* Where BAR n decodes now, given command and BAR registers. */
static uint64_t bar_decoded_address(const PCIDevice *d, int n)
{
    const PCIBar *bar = &d->bars[n];
    uint16_t cmd = pci_get_word(d->config + PCI_COMMAND);
    uint32_t lo = pci_get_long(d->config + PCI_BASE_ADDRESS_0 + 4 * n);
    uint64_t addr, limit;

    if (bar->type == PCI_BAR_IO) {
        if (!(cmd & PCI_COMMAND_IO)) {
            return PCI_BAR_UNMAPPED;
        }
        addr = lo & PCI_BASE_ADDRESS_IO_MASK;
        limit = 0xffff;
    } else {
        if (!(cmd & PCI_COMMAND_MEMORY)) {
            return PCI_BAR_UNMAPPED;
        }
        addr = lo & PCI_BASE_ADDRESS_MEM_MASK;
        limit = UINT32_MAX;
        if (bar->type == PCI_BAR_MEM64) {
            addr |= (uint64_t)pci_get_long(d->config + PCI_BASE_ADDRESS_0 + 4 * n + 4) << 32;
            limit = UINT64_MAX;
        }
    }
    /* 0 is "not programmed"; an address whose end wraps (the sizing pattern) or passes
     * the space's top decodes nowhere, as on real hardware after sizing. */
    if (addr == 0 || addr + bar->size - 1 < addr || addr + bar->size - 1 >= limit) {
        return PCI_BAR_UNMAPPED;
    }
    return addr;
}

/* Moves bar to addr (either may be PCI_BAR_UNMAPPED); false when it did not move. */
static bool map_bar(PCIDevice *d, PCIBar *bar, uint64_t addr)
{
    uint64_t old = bar->addr;
    if (addr == old) {
        return false;
    }
    IoSpace *space = bar->type == PCI_BAR_IO ? d->m->pio : d->m->mmio;
    if (old != PCI_BAR_UNMAPPED) {
        io_space_del(space, old);
        bar->addr = PCI_BAR_UNMAPPED;
    }
    if (addr != PCI_BAR_UNMAPPED) {
        g_autofree char *owner = bar->nr == PCI_ROM_SLOT
            ? g_strdup_printf("%s ROM", dev_name(d))
            : g_strdup_printf("%s BAR%d", dev_name(d), bar->nr);
        Error *err = NULL;
        if (io_space_add(space, addr, bar->size, &bar_dispatch_ops, bar, owner, &err)) {
            bar->addr = addr;
        } else {
            /* Overlaps another device: leave it unmapped, as a chipset would route
             * the range to only one target. */
            pci_guest_error(d, "%s", error_get_pretty(err));
            error_free(err);
        }
    }
    return bar->addr != old;
}

static void update_mappings(PCIDevice *d)
{
    for (int n = 0; n < PCI_NUM_BARS; n++) {
        PCIBar *bar = &d->bars[n];
        uint64_t old = bar->addr;
        if (bar->size && map_bar(d, bar, bar_decoded_address(d, n)) && d->bar_remapped) {
            d->bar_remapped(d, n, old, bar->addr);
        }
    }
    /* Only firmware reads the ROM: devices need not hear of its moves. */
    if (d->rom.size) {
        map_bar(d, &d->rom, pci_rom_decoded_address(d));
    }
}

static void unmap_all(PCIDevice *d)
{
    for (int n = 0; n < PCI_NUM_BARS; n++) {
        PCIBar *bar = &d->bars[n];
        uint64_t old = bar->addr;
        if (bar->size && map_bar(d, bar, PCI_BAR_UNMAPPED) && d->bar_remapped) {
            d->bar_remapped(d, n, old, PCI_BAR_UNMAPPED);
        }
    }
    if (d->rom.size) {
        map_bar(d, &d->rom, PCI_BAR_UNMAPPED);
    }
}

/* ---- IDs, capabilities ---- */

void pci_set_ids(PCIDevice *d, uint16_t vendor, uint16_t device, uint16_t subsys_vendor,
                 uint16_t subsys, uint8_t revision)
{
    pci_set_word(d->config + PCI_VENDOR_ID, vendor);
    pci_set_word(d->config + PCI_DEVICE_ID, device);
    pci_set_word(d->config + PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
    pci_set_word(d->config + PCI_SUBSYSTEM_ID, subsys);
    d->config[PCI_REVISION_ID] = revision;
}

void pci_set_class(PCIDevice *d, uint32_t class_code)
{
    d->config[PCI_CLASS_PROG] = class_code & 0xff;
    pci_set_word(d->config + PCI_CLASS_DEVICE, (uint16_t)(class_code >> 8));
}

void pci_set_intx_pin(PCIDevice *d, uint8_t pin)
{
    d->config[PCI_INTERRUPT_PIN] = pin <= 4 ? pin : 1;
}

void pci_set_express(PCIDevice *d)
{
    d->config_size = PCIE_CONFIG_SIZE;
}

int pci_add_capability(PCIDevice *d, uint8_t id, uint8_t size, Error **errp)
{
    /* New capabilities go after the last one, so the list stays in offset order. */
    unsigned off = (MAX(d->cap_end, PCI_CAP_FIRST) + 3) & ~3u;
    uint8_t *link = d->config + PCI_CAPABILITY_LIST;
    unsigned guard = 0;

    while (*link && guard++ < 64) {
        link = d->config + *link + PCI_CAP_LIST_NEXT;
    }
    if (size < 2 || off + size > PCI_CONFIG_SIZE) {
        error_setg(errp, "%s: no room for capability %#x (%u bytes) in config space",
                   dev_name(d), id, size);
        return -1;
    }
    d->config[off] = id;
    d->config[off + PCI_CAP_LIST_NEXT] = 0;
    *link = (uint8_t)off;
    d->cap_end = (uint16_t)(off + size);
    pci_set_word(d->config + PCI_STATUS,
                 pci_get_word(d->config + PCI_STATUS) | PCI_STATUS_CAP_LIST);
    return (int)off;
}

uint8_t pci_find_capability(const PCIDevice *d, uint8_t id)
{
    unsigned guard = 0;
    for (uint8_t p = d->config[PCI_CAPABILITY_LIST]; p && guard < 48;
         p = d->config[p + PCI_CAP_LIST_NEXT], guard++) {
        if (d->config[p] == id) {
            return p;
        }
    }
    return 0;
}

/* ---- INTx ---- */

static void intx_update(PCIDevice *d)
{
    uint8_t pin = d->config[PCI_INTERRUPT_PIN];
    bool disabled = pci_get_word(d->config + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
    bool assert = d->intx_level && pin >= 1 && pin <= 4 && !disabled;
    uint16_t status = pci_get_word(d->config + PCI_STATUS);

    /* The status bit shows the device's request even while INTx is disabled. */
    status = d->intx_level ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT;
    pci_set_word(d->config + PCI_STATUS, status);
    if (assert == d->intx_asserted || !pin || pin > 4) {
        return;
    }
    d->intx_asserted = assert;
    unsigned gsi = pci_intx_gsi(d->devfn, pin);
    unsigned *count = &d->bus->pirq_count[gsi - PCI_INTX_GSI_BASE];
    bool was = *count > 0;
    *count += assert ? 1 : -1;
    /* Shared line: the GSI is the OR of every device on it. */
    if ((*count > 0) != was) {
        IrqLine irq = machine_irq(d->m, gsi);
        irq_set_level(&irq, *count > 0);
    }
}

void pci_set_irq(PCIDevice *d, int level)
{
    if (!d->bus) {
        return;
    }
    d->intx_level = level ? 1 : 0;
    intx_update(d);
}

/* ---- config access ---- */

uint32_t pci_bus_config_read(PCIBus *bus, uint8_t devfn, uint32_t addr, unsigned len)
{
    PCIDevice *d = bus->devs[devfn];
    uint32_t val = 0;

    if (!d || (len != 1 && len != 2 && len != 4) || addr + len > d->config_size) {
        return len == 4 ? UINT32_MAX : (1u << (len * 8)) - 1;
    }
    for (unsigned i = 0; i < len; i++) {
        uint8_t b = d->config[addr + i];
        if (addr + i == PCI_HEADER_TYPE && PCI_DEVFN_FUNC(devfn) == 0) {
            /* Function 0 announces the other functions of its slot. */
            for (unsigned fn = 1; fn < PCI_FUNC_MAX; fn++) {
                if (bus->devs[devfn + fn]) {
                    b |= 0x80;
                }
            }
        }
        val |= (uint32_t)b << (8 * i);
    }
    if (d->config_read) {
        val = d->config_read(d, addr, len, val);
    }
    return val;
}

void pci_bus_config_write(PCIBus *bus, uint8_t devfn, uint32_t addr, uint32_t val,
                          unsigned len)
{
    PCIDevice *d = bus->devs[devfn];

    if (!d || (len != 1 && len != 2 && len != 4) || addr + len > d->config_size) {
        return;
    }
    uint16_t old_cmd = pci_get_word(d->config + PCI_COMMAND);
    for (unsigned i = 0; i < len; i++) {
        uint8_t b = (val >> (8 * i)) & 0xff;
        uint8_t *c = d->config + addr + i;
        uint8_t wm = d->wmask[addr + i], w1c = d->w1cmask[addr + i];
        *c = (uint8_t)(((*c & ~wm) | (b & wm)) & ~(b & w1c));
    }
    if (pci_ranges_overlap(addr, len, PCI_COMMAND, 2) ||
        pci_ranges_overlap(addr, len, PCI_BASE_ADDRESS_0, 4 * PCI_NUM_BARS) ||
        pci_ranges_overlap(addr, len, PCI_ROM_ADDRESS, 4)) {
        update_mappings(d);
    }
    if ((old_cmd ^ pci_get_word(d->config + PCI_COMMAND)) & PCI_COMMAND_INTX_DISABLE) {
        intx_update(d);
    }
    msix_config_written(d, addr, len);
    msi_config_written(d, addr, len);
    if (d->config_write) {
        d->config_write(d, addr, val, len);
    }
}

/* ---- lifecycle ---- */

void pci_device_reset(PCIDevice *d)
{
    if (!d->bus) {
        return;
    }
    pci_set_irq(d, 0);
    pci_set_word(d->config + PCI_COMMAND, 0);
    pci_set_word(d->config + PCI_STATUS,
                 pci_get_word(d->config + PCI_STATUS) & PCI_STATUS_CAP_LIST);
    d->config[PCI_CACHE_LINE_SIZE] = 0;
    d->config[PCI_LATENCY_TIMER] = 0;
    d->config[PCI_INTERRUPT_LINE] = 0;
    for (int n = 0; n < PCI_NUM_BARS; n++) {
        uint8_t *cfg = d->config + PCI_BASE_ADDRESS_0 + 4 * n;
        /* Keep the read-only type bits, clear the guest-written address. */
        pci_set_long(cfg, pci_get_long(cfg) & ~pci_get_long(d->wmask + PCI_BASE_ADDRESS_0 +
                                                             4 * n));
    }
    pci_set_long(d->config + PCI_ROM_ADDRESS, 0);
    unmap_all(d);
    msix_reset(d);
    msi_reset(d);
}

void pci_device_unrealize(PCIDevice *d)
{
    if (d->config) {
        if (d->bus) {
            pci_set_irq(d, 0);
        }
        if (d->m) {
            /* The device is tearing down its own state: do not report the unmap to it. */
            d->bar_remapped = NULL;
            unmap_all(d);
        }
        msix_free(d);
        msi_free(d);
    }
    if (d->bus && d->bus->devs[d->devfn] == d) {
        d->bus->devs[d->devfn] = NULL;
    }
    d->bus = NULL;
    pci_rom_free(d);
    g_clear_pointer(&d->config, g_free);
    g_clear_pointer(&d->wmask, g_free);
    g_clear_pointer(&d->w1cmask, g_free);
}

/* ---- migration ---- */

static bool pci_pre_save(void *opaque, Error **errp)
{
    PCIDevice *d = opaque;
    d->vmstate_config = d->config;
    msix_pre_save(d);
    return true;
}

static bool pci_pre_load(void *opaque, Error **errp)
{
    PCIDevice *d = opaque;
    d->vmstate_config = g_malloc0(d->config_size);
    return true;
}

/* The standard header's read-only bytes say what the device is; the status register
 * is left out (its bits follow the device's state). */
static bool pci_check_identity(PCIDevice *d, const uint8_t *cfg, Error **errp)
{
    for (unsigned i = 0; i < PCI_STD_HEADER_SIZEOF; i++) {
        if (i == PCI_STATUS || i == PCI_STATUS + 1) {
            continue;
        }
        uint8_t ro = (uint8_t)~(d->wmask[i] | d->w1cmask[i]);
        if ((cfg[i] ^ d->config[i]) & ro) {
            error_setg(errp, "%s at %02x.%x: config byte 0x%02x is read-only and differs "
                       "(source 0x%02x, this device 0x%02x)", dev_name(d),
                       PCI_DEVFN_SLOT(d->devfn), PCI_DEVFN_FUNC(d->devfn), i, cfg[i],
                       d->config[i]);
            return false;
        }
    }
    return true;
}

static bool pci_post_load(void *opaque, int version_id, Error **errp)
{
    PCIDevice *d = opaque;
    uint8_t *cfg = d->vmstate_config;
    d->vmstate_config = NULL;
    bool ok = pci_check_identity(d, cfg, errp);
    if (ok) {
        memcpy(d->config, cfg, d->config_size);
    }
    g_free(cfg);
    if (!ok) {
        return false;
    }
    /* The BARs go where the loaded command and BAR registers say (devices hear of it
     * through bar_remapped, e.g. to move ioeventfds). */
    update_mappings(d);
    int level = d->intx_level;
    d->intx_level = 0;
    pci_set_irq(d, level);
    msix_post_load(d);
    return true;
}

static bool pci_msix_needed(void *opaque)
{
    return ((PCIDevice *)opaque)->msix != NULL;
}

static const VMStateField pci_msix_fields[] = {
    { .name = "msix", .type = VMS_STRUCT, .offset = offsetof(PCIDevice, msix),
      .size = 1, .flags = VMS_F_POINTER, .vmsd = &msix_vmsd },
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc pci_msix_vmsd = {
    .name = "pci/msix",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = pci_msix_fields,
    .needed = pci_msix_needed,
};

static const VMStateDesc *const pci_subsections[] = { &pci_msix_vmsd, NULL };

static const VMStateField pci_fields[] = {
    { .name = "config", .type = VMS_U8, .offset = offsetof(PCIDevice, vmstate_config),
      .size = 1, .num = PCIE_CONFIG_SIZE, .count_offset = offsetof(PCIDevice, config_size),
      .flags = VMS_F_POINTER | VMS_F_COUNTED | VMS_F_COUNT_FIXED },
    VMSTATE_INT32(intx_level, PCIDevice),
    VMSTATE_END_OF_LIST(),
};

const VMStateDesc pci_device_vmsd = {
    .name = "pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = pci_fields,
    .subsections = pci_subsections,
    .pre_save = pci_pre_save,
    .pre_load = pci_pre_load,
    .post_load = pci_post_load,
};
