/*
 * MSI: the capability (32/64-bit address, optional per-vector masking) and delivery.
 * Multiple-message: vector v of the enabled 2^k sends data with its low k bits = v.
 * A notify on a masked vector sets its pending bit; unmasking sends it.
 */
#include "hw/pci/pci-internal.h"

struct MSIState {
    uint8_t cap;
    unsigned nr;       /* vectors the device asks for */
    bool is_64bit, maskable;
};

static uint8_t off_data(const MSIState *s) { return s->is_64bit ? 12 : 8; }
static uint8_t off_mask(const MSIState *s) { return s->is_64bit ? 16 : 12; }
static uint8_t off_pending(const MSIState *s) { return s->is_64bit ? 20 : 16; }

static uint16_t msi_control(const PCIDevice *d)
{
    return pci_get_word(d->config + d->msi->cap + PCI_MSI_FLAGS);
}

bool msi_enabled(const PCIDevice *d)
{
    return d->msi && (msi_control(d) & PCI_MSI_FLAGS_ENABLE);
}

/* Vectors the guest enabled (Multiple Message Enable, capped by what we offer). */
static unsigned msi_enabled_vectors(const PCIDevice *d)
{
    unsigned n = 1u << ((msi_control(d) & PCI_MSI_FLAGS_QSIZE) >> 4);
    return MIN(n, d->msi->nr);
}

static void msi_send(PCIDevice *d, unsigned vector)
{
    const MSIState *s = d->msi;
    const uint8_t *c = d->config + s->cap;
    uint64_t addr = pci_get_long(c + PCI_MSI_ADDRESS_LO);
    if (s->is_64bit) {
        addr |= (uint64_t)pci_get_long(c + PCI_MSI_ADDRESS_HI) << 32;
    }
    unsigned n = 1u << ((msi_control(d) & PCI_MSI_FLAGS_QSIZE) >> 4);
    uint32_t data = pci_get_word(c + off_data(s));
    data = (data & ~(n - 1)) | vector;
    pci_device_send_msi(d, addr, data);
}

void msi_notify(PCIDevice *d, unsigned vector)
{
    if (!msi_enabled(d) || vector >= msi_enabled_vectors(d)) {
        return;
    }
    MSIState *s = d->msi;
    if (s->maskable) {
        uint8_t *c = d->config + s->cap;
        if (pci_get_long(c + off_mask(s)) & (1u << vector)) {
            pci_set_long(c + off_pending(s), pci_get_long(c + off_pending(s)) |
                                             (1u << vector));
            return;
        }
    }
    msi_send(d, vector);
}

void msi_config_written(PCIDevice *d, uint32_t addr, unsigned len)
{
    MSIState *s = d->msi;
    if (!s || !s->maskable || !msi_enabled(d) ||
        !pci_ranges_overlap(addr, len, s->cap, off_pending(s))) {
        return;
    }
    uint8_t *c = d->config + s->cap;
    uint32_t mask = pci_get_long(c + off_mask(s));
    uint32_t pending = pci_get_long(c + off_pending(s));
    for (unsigned v = 0; v < msi_enabled_vectors(d); v++) {
        if ((pending & (1u << v)) && !(mask & (1u << v))) {
            pending &= ~(1u << v);
            pci_set_long(c + off_pending(s), pending);
            msi_send(d, v);
        }
    }
}

bool msi_init(PCIDevice *d, unsigned nr_vectors, bool is_64bit, bool per_vector_mask,
              Error **errp)
{
    if (d->msi || nr_vectors == 0 || nr_vectors > 32 || (nr_vectors & (nr_vectors - 1))) {
        error_setg(errp, "%s: %u MSI vectors: must be a power of two from 1 to 32",
                   d->qdev.cls->name, nr_vectors);
        return false;
    }
    MSIState tmp = { .nr = nr_vectors, .is_64bit = is_64bit, .maskable = per_vector_mask };
    uint8_t size = per_vector_mask ? off_pending(&tmp) + 4 : off_data(&tmp) + 2;
    int cap = pci_add_capability(d, PCI_CAP_ID_MSI, size, errp);
    if (cap < 0) {
        return false;
    }
    MSIState *s = g_new(MSIState, 1);
    *s = tmp;
    s->cap = (uint8_t)cap;
    d->msi = s;

    uint16_t ctl = (uint16_t)(__builtin_ctz(nr_vectors) << 1);
    ctl |= is_64bit ? PCI_MSI_FLAGS_64BIT : 0;
    ctl |= per_vector_mask ? PCI_MSI_FLAGS_MASKBIT : 0;
    uint8_t *c = d->config + cap, *wm = d->wmask + cap;
    pci_set_word(c + PCI_MSI_FLAGS, ctl);
    pci_set_word(wm + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    pci_set_long(wm + PCI_MSI_ADDRESS_LO, 0xfffffffc);
    if (is_64bit) {
        pci_set_long(wm + PCI_MSI_ADDRESS_HI, 0xffffffff);
    }
    pci_set_word(wm + off_data(s), 0xffff);
    if (per_vector_mask) {
        pci_set_long(wm + off_mask(s),
                     nr_vectors == 32 ? 0xffffffff : (1u << nr_vectors) - 1);
    }
    return true;
}

void msi_reset(PCIDevice *d)
{
    MSIState *s = d->msi;
    if (!s) {
        return;
    }
    uint8_t *c = d->config + s->cap;
    pci_set_word(c + PCI_MSI_FLAGS,
                 msi_control(d) & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    pci_set_long(c + PCI_MSI_ADDRESS_LO, 0);
    if (s->is_64bit) {
        pci_set_long(c + PCI_MSI_ADDRESS_HI, 0);
    }
    pci_set_word(c + off_data(s), 0);
    if (s->maskable) {
        pci_set_long(c + off_mask(s), 0);
        pci_set_long(c + off_pending(s), 0);
    }
}

void msi_free(PCIDevice *d)
{
    g_clear_pointer(&d->msi, g_free);
}
