/*
 * MSI-X: the capability, the vector table and the pending-bit array (PBA) inside memory
 * BARs, masking with pending delivery at unmask, and the irqfd fast path.
 *
 * A vector is "masked" when the function mask bit in the capability or the vector's own
 * mask bit is set, or MSI-X is disabled.  A notify on a masked vector sets its pending
 * bit; the transition to unmasked sends the message and clears it.
 *
 * irqfd vectors: while unmasked, the eventfd is attached to a KVM MSI route that follows
 * the table's address/data.  While masked it is detached, so signals stay counted in the
 * eventfd; reading the PBA polls the fd to report them, and KVM delivers a signal that is
 * already pending when the irqfd is re-attached.
 */
#include <poll.h>
#include <string.h>
#include "hw/pci/pci-internal.h"
#include "sen/vmstate.h"

#define MSIX_CAP_SIZE      12
#define MSIX_ENTRY_SIZE    16
#define MSIX_MAX_VECTORS   2048

typedef struct MSIXVector {
    int fd;            /* irqfd eventfd or -1 */
    int gsi;           /* KVM route or -1 */
    bool attached;     /* irqfd assigned to gsi */
} MSIXVector;

struct MSIXState {
    unsigned nr;
    uint8_t cap;
    int table_bar, pba_bar;
    uint32_t table_off, pba_off;
    uint8_t *table;        /* nr * 16 bytes */
    uint8_t *pba;          /* (nr + 63) / 64 * 8 bytes */
    unsigned pba_size;
    MSIXVector *vec;
    bool was_masked_all;   /* function masked or disabled, before the last config write */
};

static uint16_t msix_control(const PCIDevice *d)
{
    return pci_get_word(d->config + d->msix->cap + PCI_MSIX_FLAGS);
}

bool msix_enabled(const PCIDevice *d)
{
    return d->msix && (msix_control(d) & PCI_MSIX_FLAGS_ENABLE);
}

static bool all_masked(const PCIDevice *d)
{
    uint16_t c = msix_control(d);
    return !(c & PCI_MSIX_FLAGS_ENABLE) || (c & PCI_MSIX_FLAGS_MASKALL);
}

bool msix_is_masked(const PCIDevice *d, unsigned vector)
{
    if (!d->msix || vector >= d->msix->nr) {
        return true;
    }
    const uint8_t *e = d->msix->table + vector * MSIX_ENTRY_SIZE;
    return all_masked(d) || (pci_get_long(e + PCI_MSIX_ENTRY_VECTOR_CTRL) &
                             PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

unsigned msix_nr_vectors(const PCIDevice *d)
{
    return d->msix ? d->msix->nr : 0;
}

static void vector_message(const PCIDevice *d, unsigned v, uint64_t *addr, uint32_t *data)
{
    const uint8_t *e = d->msix->table + v * MSIX_ENTRY_SIZE;
    *addr = pci_get_long(e + PCI_MSIX_ENTRY_LOWER_ADDR) |
            (uint64_t)pci_get_long(e + PCI_MSIX_ENTRY_UPPER_ADDR) << 32;
    *data = pci_get_long(e + PCI_MSIX_ENTRY_DATA);
}

static void set_pending(MSIXState *s, unsigned v, bool on)
{
    if (on) {
        s->pba[v / 8] |= (uint8_t)(1u << (v % 8));
    } else {
        s->pba[v / 8] &= (uint8_t)~(1u << (v % 8));
    }
}

static bool is_pending(const MSIXState *s, unsigned v)
{
    return s->pba[v / 8] & (1u << (v % 8));
}

static void send(PCIDevice *d, unsigned v)
{
    uint64_t addr;
    uint32_t data;
    vector_message(d, v, &addr, &data);
    pci_device_send_msi(d, addr, data);
}

void msix_notify(PCIDevice *d, unsigned vector)
{
    if (!msix_enabled(d) || vector >= d->msix->nr) {
        return;
    }
    if (msix_is_masked(d, vector)) {
        set_pending(d->msix, vector, true);
        return;
    }
    send(d, vector);
}

/* ---- irqfd ---- */

static void irqfd_detach(PCIDevice *d, MSIXVector *mv)
{
    if (mv->attached) {
        Error *err = NULL;
        if (!d->m->accel->irqfd_assign(d->m, mv->fd, mv->gsi, false, &err)) {
            pci_guest_error(d, "%s", error_get_pretty(err));
            error_free(err);
        }
        mv->attached = false;
    }
}

/* Attach (unmasked) or detach (masked) v's irqfd, with the route following the table. */
static void irqfd_sync(PCIDevice *d, unsigned v)
{
    MSIXVector *mv = &d->msix->vec[v];
    const AccelOps *ops = d->m->accel;
    Error *err = NULL;

    if (mv->fd < 0) {
        return;
    }
    if (msix_is_masked(d, v)) {
        irqfd_detach(d, mv);
        return;
    }
    uint64_t addr;
    uint32_t data;
    vector_message(d, v, &addr, &data);
    if (mv->gsi < 0) {
        mv->gsi = ops->add_msi_route(d->m, addr, data, &err);
    } else if (!ops->update_msi_route(d->m, mv->gsi, addr, data, &err)) {
        mv->gsi = -1;
    }
    if (mv->gsi < 0) {
        goto fail;
    }
    if (!mv->attached) {
        if (!ops->irqfd_assign(d->m, mv->fd, mv->gsi, true, &err)) {
            goto fail;
        }
        mv->attached = true;
    }
    return;
fail:
    /* Out of KVM routes: the vector stays silent; say why once in a while. */
    pci_guest_error(d, "MSI-X vector %u: %s", v, error_get_pretty(err));
    error_free(err);
}

bool msix_vector_set_irqfd(PCIDevice *d, unsigned vector, int fd, Error **errp)
{
    const AccelOps *ops = d->m->accel;

    if (!d->msix || vector >= d->msix->nr) {
        error_setg(errp, "%s: no MSI-X vector %u", d->qdev.cls->name, vector);
        return false;
    }
    if (fd >= 0 && (!d->m->accel_up || !ops || !ops->irqfd_assign || !ops->add_msi_route ||
                    !ops->update_msi_route || !ops->release_msi_route)) {
        error_setg(errp, "accelerator %s has no irqfd support",
                   ops ? ops->name : "(none)");
        return false;
    }
    if (fd >= 0 && d->bus && d->bus->iommu_ops && d->bus->iommu_ops->remap_msi) {
        /* A KVM route would bypass interrupt remapping; msix_notify remaps each message. */
        error_setg(errp, "%s: MSI-X irqfd unavailable behind an interrupt-remapping IOMMU",
                   d->qdev.cls->name);
        return false;
    }
    MSIXVector *mv = &d->msix->vec[vector];
    if (mv->fd >= 0) {
        irqfd_detach(d, mv);
        if (mv->gsi >= 0) {
            ops->release_msi_route(d->m, mv->gsi);
            mv->gsi = -1;
        }
    }
    mv->fd = fd;
    irqfd_sync(d, vector);
    return true;
}

/* Pending for the PBA: the bit, or a signal waiting in a detached irqfd. */
static bool vector_pending(const PCIDevice *d, unsigned v)
{
    const MSIXVector *mv = &d->msix->vec[v];
    if (is_pending(d->msix, v)) {
        return true;
    }
    if (mv->fd >= 0 && !mv->attached) {
        struct pollfd p = { .fd = mv->fd, .events = POLLIN };
        return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
    }
    return false;
}

/* A vector may have become unmasked: flush its pending bit, re-sync its irqfd. */
static void vector_unmask_check(PCIDevice *d, unsigned v)
{
    if (msix_is_masked(d, v)) {
        irqfd_sync(d, v);
        return;
    }
    irqfd_sync(d, v);
    if (is_pending(d->msix, v)) {
        set_pending(d->msix, v, false);
        send(d, v);
    }
}

/* ---- BAR accesses ---- */

static bool in_range(uint64_t off, unsigned size, uint32_t base, uint32_t len)
{
    return off >= base && off - base < len;
}

bool msix_bar_read(PCIDevice *d, int bar, uint64_t off, unsigned size, uint64_t *val)
{
    MSIXState *s = d->msix;

    if (!s) {
        return false;
    }
    if (bar == s->table_bar && in_range(off, size, s->table_off, s->nr * MSIX_ENTRY_SIZE)) {
        uint64_t rel = off - s->table_off;
        *val = 0;
        for (unsigned i = 0; i < size && rel + i < s->nr * MSIX_ENTRY_SIZE; i++) {
            *val |= (uint64_t)s->table[rel + i] << (8 * i);
        }
        return true;
    }
    if (bar == s->pba_bar && in_range(off, size, s->pba_off, s->pba_size)) {
        uint64_t rel = off - s->pba_off;
        *val = 0;
        for (unsigned i = 0; i < size && rel + i < s->pba_size; i++) {
            uint8_t b = 0;
            for (unsigned bit = 0; bit < 8; bit++) {
                unsigned v = (unsigned)(rel + i) * 8 + bit;
                if (v < s->nr && vector_pending(d, v)) {
                    b |= (uint8_t)(1u << bit);
                }
            }
            *val |= (uint64_t)b << (8 * i);
        }
        return true;
    }
    return false;
}

bool msix_bar_write(PCIDevice *d, int bar, uint64_t off, unsigned size, uint64_t val)
{
    MSIXState *s = d->msix;

    if (!s) {
        return false;
    }
    if (bar == s->table_bar && in_range(off, size, s->table_off, s->nr * MSIX_ENTRY_SIZE)) {
        uint64_t rel = off - s->table_off;
        unsigned first = (unsigned)(rel / MSIX_ENTRY_SIZE), last = first;
        for (unsigned i = 0; i < size && rel + i < s->nr * MSIX_ENTRY_SIZE; i++) {
            uint64_t at = rel + i;
            /* Only bit 0 of vector control is defined; the rest is reserved (0). */
            if (at % MSIX_ENTRY_SIZE == PCI_MSIX_ENTRY_VECTOR_CTRL) {
                s->table[at] = (uint8_t)((val >> (8 * i)) & PCI_MSIX_ENTRY_CTRL_MASKBIT);
            } else if (at % MSIX_ENTRY_SIZE < PCI_MSIX_ENTRY_VECTOR_CTRL) {
                s->table[at] = (uint8_t)(val >> (8 * i));
            }
            last = (unsigned)(at / MSIX_ENTRY_SIZE);
        }
        for (unsigned v = first; v <= last; v++) {
            vector_unmask_check(d, v);
        }
        return true;
    }
    if (bar == s->pba_bar && in_range(off, size, s->pba_off, s->pba_size)) {
        return true; /* read-only */
    }
    return false;
}

/* ---- config space ---- */

void msix_config_written(PCIDevice *d, uint32_t addr, unsigned len)
{
    MSIXState *s = d->msix;

    if (!s || !pci_ranges_overlap(addr, len, s->cap + PCI_MSIX_FLAGS, 2)) {
        return;
    }
    bool now = all_masked(d);
    if (now != s->was_masked_all) {
        s->was_masked_all = now;
        for (unsigned v = 0; v < s->nr; v++) {
            vector_unmask_check(d, v);
        }
    }
}

bool msix_init(PCIDevice *d, unsigned nr_vectors, int table_bar, uint32_t table_off,
               int pba_bar, uint32_t pba_off, Error **errp)
{
    const char *name = d->qdev.cls->name;
    uint32_t table_size = nr_vectors * MSIX_ENTRY_SIZE;
    uint32_t pba_size = (nr_vectors + 63) / 64 * 8;

    if (d->msix) {
        error_setg(errp, "%s: MSI-X already initialised", name);
        return false;
    }
    if (nr_vectors == 0 || nr_vectors > MSIX_MAX_VECTORS) {
        error_setg(errp, "%s: %u MSI-X vectors: must be 1 to %u", name, nr_vectors,
                   MSIX_MAX_VECTORS);
        return false;
    }
    if (table_bar < 0 || table_bar >= PCI_NUM_BARS || pba_bar < 0 ||
        pba_bar >= PCI_NUM_BARS || !d->bars[table_bar].size || !d->bars[pba_bar].size ||
        d->bars[table_bar].type == PCI_BAR_IO || d->bars[pba_bar].type == PCI_BAR_IO ||
        (table_off & 7) || (pba_off & 7) ||
        (uint64_t)table_off + table_size > d->bars[table_bar].size ||
        (uint64_t)pba_off + pba_size > d->bars[pba_bar].size ||
        (table_bar == pba_bar &&
         pci_ranges_overlap(table_off, table_size, pba_off, pba_size))) {
        error_setg(errp, "%s: MSI-X table (BAR %d + %#x) or PBA (BAR %d + %#x) does not "
                   "fit a registered memory BAR", name, table_bar, table_off, pba_bar,
                   pba_off);
        return false;
    }
    int cap = pci_add_capability(d, PCI_CAP_ID_MSIX, MSIX_CAP_SIZE, errp);
    if (cap < 0) {
        return false;
    }
    MSIXState *s = g_new0(MSIXState, 1);
    s->nr = nr_vectors;
    s->cap = (uint8_t)cap;
    s->table_bar = table_bar;
    s->table_off = table_off;
    s->pba_bar = pba_bar;
    s->pba_off = pba_off;
    s->pba_size = pba_size;
    s->table = g_malloc0(table_size);
    s->pba = g_malloc0(pba_size);
    s->vec = g_new(MSIXVector, nr_vectors);
    for (unsigned v = 0; v < nr_vectors; v++) {
        s->vec[v] = (MSIXVector){ .fd = -1, .gsi = -1 };
    }
    d->msix = s;

    pci_set_word(d->config + cap + PCI_MSIX_FLAGS, (uint16_t)(nr_vectors - 1));
    pci_set_long(d->config + cap + PCI_MSIX_TABLE, table_off | (uint32_t)table_bar);
    pci_set_long(d->config + cap + PCI_MSIX_PBA, pba_off | (uint32_t)pba_bar);
    d->wmask[cap + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
    msix_reset(d);
    return true;
}

bool msix_init_exclusive_bar(PCIDevice *d, unsigned nr_vectors, int bar_nr, Error **errp)
{
    uint32_t table_size = nr_vectors * MSIX_ENTRY_SIZE;
    uint32_t pba_off = (table_size + 4095) & ~4095u;

    if (nr_vectors == 0 || nr_vectors > MSIX_MAX_VECTORS) {
        error_setg(errp, "%s: %u MSI-X vectors: must be 1 to %u", d->qdev.cls->name,
                   nr_vectors, MSIX_MAX_VECTORS);
        return false;
    }
    return pci_register_bar(d, bar_nr, PCI_BAR_MEM32, pba_off + 4096, NULL, NULL, errp) &&
           msix_init(d, nr_vectors, bar_nr, 0, bar_nr, pba_off, errp);
}

void msix_reset(PCIDevice *d)
{
    MSIXState *s = d->msix;
    if (!s) {
        return;
    }
    uint8_t *ctl = d->config + s->cap + PCI_MSIX_FLAGS;
    pci_set_word(ctl, pci_get_word(ctl) & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL));
    memset(s->table, 0, s->nr * MSIX_ENTRY_SIZE);
    for (unsigned v = 0; v < s->nr; v++) {
        /* Every vector comes out of reset masked. */
        s->table[v * MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] =
            PCI_MSIX_ENTRY_CTRL_MASKBIT;
        irqfd_sync(d, v);
    }
    memset(s->pba, 0, s->pba_size);
    s->was_masked_all = true;
}

void msix_free(PCIDevice *d)
{
    MSIXState *s = d->msix;
    if (!s) {
        return;
    }
    for (unsigned v = 0; v < s->nr; v++) {
        MSIXVector *mv = &s->vec[v];
        if (mv->fd >= 0 && d->m && d->m->accel_up) {
            irqfd_detach(d, mv);
            if (mv->gsi >= 0) {
                d->m->accel->release_msi_route(d->m, mv->gsi);
            }
        }
    }
    g_free(s->table);
    g_free(s->pba);
    g_free(s->vec);
    g_free(s);
    d->msix = NULL;
}

/* ---- migration ---- */

static const VMStateField msix_fields[] = {
    { .name = "table", .type = VMS_BUFFER, .offset = offsetof(MSIXState, table),
      .size = MSIX_ENTRY_SIZE, .num = MSIX_MAX_VECTORS,
      .count_offset = offsetof(MSIXState, nr),
      .flags = VMS_F_POINTER | VMS_F_COUNTED | VMS_F_COUNT_FIXED },
    { .name = "pba", .type = VMS_U8, .offset = offsetof(MSIXState, pba), .size = 1,
      .num = (MSIX_MAX_VECTORS + 63) / 64 * 8, .count_offset = offsetof(MSIXState, pba_size),
      .flags = VMS_F_POINTER | VMS_F_COUNTED | VMS_F_COUNT_FIXED },
    VMSTATE_END_OF_LIST(),
};

const VMStateDesc msix_vmsd = {
    .name = "msix",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = msix_fields,
};

void msix_pre_save(PCIDevice *d)
{
    MSIXState *s = d->msix;
    for (unsigned v = 0; s && v < s->nr; v++) {
        if (vector_pending(d, v)) {
            set_pending(s, v, true);
        }
    }
}

void msix_post_load(PCIDevice *d)
{
    MSIXState *s = d->msix;
    if (!s) {
        return;
    }
    s->was_masked_all = all_masked(d);
    for (unsigned v = 0; v < s->nr; v++) {
        irqfd_sync(d, v);
    }
}
