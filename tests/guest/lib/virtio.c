/* Modern virtio-pci driver and split virtqueues (see virtio.h). */
#include "virtio.h"

/* virtio_pci_cap cfg_type values */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

/* common configuration structure */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX 0x10
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_CFGGEN 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOFF 0x1e
#define CC_Q_DESCLO 0x20
#define CC_Q_AVAILLO 0x28
#define CC_Q_USEDLO 0x30

extern char __bss_end[];
static uintptr_t alloc_next, alloc_end;

void *guest_alloc(size_t size, size_t align, bool zero)
{
    if (!alloc_next) {
        alloc_next = ((uintptr_t)__bss_end + 0xfffff) & ~(uintptr_t)0xfffff;
        alloc_end = 16u << 20;
        for (unsigned i = 0; i < boot_info.nr_mem; i++) {
            const MemRegion *m = &boot_info.mem[i];
            if (m->type == 1 && m->base <= 0x100000 && m->base + m->len > 0x100000) {
                alloc_end = m->base + m->len;
            }
        }
    }
    uintptr_t a = (alloc_next + align - 1) & ~(uintptr_t)(align - 1);
    if (a + size > alloc_end || a + size < a) {
        return NULL;
    }
    alloc_next = a + size;
    if (zero) {
        memset((void *)a, 0, size);
    }
    return (void *)a;
}

bool virtio_pci_find(const PciDev *devs, unsigned n, unsigned type, unsigned nth,
                     VirtioDev *vd)
{
    for (unsigned k = 0; k < n; k++) {
        const PciDev *d = &devs[k];
        /* 0x1040 + type is modern-only, 0x1000.. the transitional ids. */
        static const uint16_t transitional[] = { 0, 0x1000, 0x1001, 0x1003, 0x1005 };
        bool match = d->vendor == VIRTIO_VENDOR &&
                     (d->device == 0x1040 + type ||
                      (type < 5 && d->device == transitional[type] &&
                       pci_cfg_read16(d, 0x2e) == type));
        if (!match || nth-- > 0) {
            continue;
        }
        memset(vd, 0, sizeof(*vd));
        vd->pci = *d;
        for (uint8_t cap = pci_find_cap(d, PCI_CAP_ID_VENDOR, 0); cap;
             cap = pci_find_cap(d, PCI_CAP_ID_VENDOR, cap)) {
            uint8_t cfg_type = pci_cfg_read8(d, cap + 3);
            uint8_t bar = pci_cfg_read8(d, cap + 4);
            uint32_t off = pci_cfg_read32(d, cap + 8);
            if (cfg_type < CAP_COMMON || cfg_type > CAP_DEVICE || bar > 5 ||
                !d->bar[bar].addr || d->bar[bar].io) {
                continue;
            }
            uintptr_t addr = (uintptr_t)(d->bar[bar].addr + off);
            uintptr_t *slot = cfg_type == CAP_COMMON   ? &vd->common
                              : cfg_type == CAP_NOTIFY ? &vd->notify_base
                              : cfg_type == CAP_ISR    ? &vd->isr
                                                       : &vd->device;
            if (*slot) {
                continue; /* the first of each type is the preferred one */
            }
            *slot = addr;
            if (cfg_type == CAP_NOTIFY) {
                vd->notify_mult = pci_cfg_read32(d, cap + 16);
            }
        }
        if (!vd->common || !vd->notify_base || !vd->isr) {
            guest_printf("virtio %02x.%x: missing common/notify/ISR capability\n", d->dev,
                         d->fn);
            return false;
        }
        return true;
    }
    return false;
}

uint8_t virtio_get_status(VirtioDev *vd)
{
    return mmio_read8(vd->common + CC_STATUS);
}

static void virtio_set_status(VirtioDev *vd, uint8_t s)
{
    mmio_write8(vd->common + CC_STATUS, s);
}

bool virtio_reset(VirtioDev *vd)
{
    virtio_set_status(vd, 0);
    for (unsigned i = 0; i < 100000; i++) {
        if (virtio_get_status(vd) == 0) {
            for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
                vd->vq[q].num_free = 0; /* the rings must be set up again */
            }
            return true;
        }
        guest_io_delay();
    }
    return false;
}

uint8_t virtio_read_isr(VirtioDev *vd)
{
    return mmio_read8(vd->isr);
}

bool virtio_init(VirtioDev *vd, uint64_t wanted)
{
    if (!virtio_reset(vd)) {
        guest_printf("virtio: device status stays 0x%x after reset\n", virtio_get_status(vd));
        return false;
    }
    virtio_set_status(vd, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(vd, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    mmio_write32(vd->common + CC_DFSELECT, 0);
    uint64_t f = mmio_read32(vd->common + CC_DF);
    mmio_write32(vd->common + CC_DFSELECT, 1);
    f |= (uint64_t)mmio_read32(vd->common + CC_DF) << 32;
    vd->device_features = f;
    if (!(f & VIRTIO_F_VERSION_1)) {
        guest_printf("virtio: device does not offer VERSION_1 (features 0x%lx)\n", f);
        virtio_set_status(vd, VIRTIO_STATUS_FAILED);
        return false;
    }
    vd->features = (f & wanted) | VIRTIO_F_VERSION_1;
    mmio_write32(vd->common + CC_GFSELECT, 0);
    mmio_write32(vd->common + CC_GF, (uint32_t)vd->features);
    mmio_write32(vd->common + CC_GFSELECT, 1);
    mmio_write32(vd->common + CC_GF, (uint32_t)(vd->features >> 32));
    uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    virtio_set_status(vd, s);
    if (virtio_get_status(vd) != s) {
        guest_printf("virtio: FEATURES_OK refused for 0x%lx (status 0x%x)\n", vd->features,
                     virtio_get_status(vd));
        virtio_set_status(vd, VIRTIO_STATUS_FAILED);
        return false;
    }
    if (vd->intx) {
        pci_msix_disable(&vd->pci);
        pci_cfg_write16(&vd->pci, PCI_COMMAND,
                        pci_cfg_read16(&vd->pci, PCI_COMMAND) & ~PCI_COMMAND_INTX_DISABLE);
        vd->msix_entries = 0;
        return true;
    }
    vd->msix_entries = pci_msix_enable(&vd->pci);
    if (vd->msix_entries) {
        mmio_write16(vd->common + CC_MSIX, VIRTIO_MSI_NO_VECTOR);
    }
    return true;
}

bool virtio_setup_queue(VirtioDev *vd, unsigned q, unsigned max_size, uint8_t vector)
{
    if (q >= VIRTIO_MAX_QUEUES || q >= mmio_read16(vd->common + CC_NUMQ)) {
        guest_printf("virtio: no queue %u\n", q);
        return false;
    }
    mmio_write16(vd->common + CC_Q_SELECT, q);
    unsigned size = mmio_read16(vd->common + CC_Q_SIZE);
    if (size == 0) {
        guest_printf("virtio: queue %u has size 0\n", q);
        return false;
    }
    if (max_size && size > max_size) {
        size = max_size;
    }
    Virtq *vq = &vd->vq[q];
    /* A queue set up again after a reset keeps its memory (hostile tests reset often). */
    if (!vq->desc || vq->size != size) {
        vq->desc = guest_alloc(16 * size, 4096, false);
        vq->avail = guest_alloc(6 + 2 * size, 4096, false);
        vq->used = guest_alloc(6 + 8 * size, 4096, false);
        if (!vq->desc || !vq->avail || !vq->used) {
            guest_printf("virtio: out of memory for queue %u\n", q);
            return false;
        }
    }
    memset((void *)vq->desc, 0, 16 * size);
    memset((void *)vq->avail, 0, 6 + 2 * size);
    memset((void *)vq->used, 0, 6 + 8 * size);
    vq->index = q;
    vq->size = size;
    for (unsigned i = 0; i + 1 < size; i++) {
        vq->desc[i].next = i + 1;
    }
    vq->free_head = 0;
    vq->num_free = size;
    vq->last_used = 0;
    mmio_write16(vd->common + CC_Q_SIZE, size);
    uint64_t a[3] = { (uintptr_t)vq->desc, (uintptr_t)vq->avail, (uintptr_t)vq->used };
    for (unsigned i = 0; i < 3; i++) {
        mmio_write32(vd->common + CC_Q_DESCLO + 8 * i, (uint32_t)a[i]);
        mmio_write32(vd->common + CC_Q_DESCLO + 8 * i + 4, (uint32_t)(a[i] >> 32));
    }
    vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
    if (vector && vd->msix_entries > q + 1 &&
        pci_msix_route(&vd->pci, q + 1, vector, lapic_id())) {
        mmio_write16(vd->common + CC_Q_MSIX, q + 1);
        vq->msix_vector = mmio_read16(vd->common + CC_Q_MSIX);
        if (vq->msix_vector != q + 1) {
            guest_printf("virtio: queue %u refused MSI-X entry %u (reads 0x%x)\n", q, q + 1,
                         vq->msix_vector);
        }
    } else if (vd->msix_entries) {
        mmio_write16(vd->common + CC_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
    }
    uint16_t noff = mmio_read16(vd->common + CC_Q_NOFF);
    vq->notify = vd->notify_base + (uintptr_t)noff * vd->notify_mult;
    mmio_write16(vd->common + CC_Q_ENABLE, 1);
    return true;
}

void virtio_driver_ok(VirtioDev *vd)
{
    virtio_set_status(vd, virtio_get_status(vd) | VIRTIO_STATUS_DRIVER_OK);
}

uint8_t virtio_cfg_read8(VirtioDev *vd, unsigned off)
{
    return mmio_read8(vd->device + off);
}

uint16_t virtio_cfg_read16(VirtioDev *vd, unsigned off)
{
    return mmio_read16(vd->device + off);
}

uint32_t virtio_cfg_read32(VirtioDev *vd, unsigned off)
{
    return mmio_read32(vd->device + off);
}

uint64_t virtio_cfg_read64(VirtioDev *vd, unsigned off)
{
    /* Two 32-bit halves: retry while the generation changes under us. */
    for (unsigned i = 0; i < 10; i++) {
        uint8_t gen = mmio_read8(vd->common + CC_CFGGEN);
        uint64_t v = mmio_read32(vd->device + off) |
                     (uint64_t)mmio_read32(vd->device + off + 4) << 32;
        if (mmio_read8(vd->common + CC_CFGGEN) == gen) {
            return v;
        }
    }
    return ~0ull;
}

void virtq_publish(Virtq *vq, uint16_t head)
{
    uint16_t idx = vq->avail->idx;
    vq->avail->ring[idx % vq->size] = head;
    /* The ring entry must be visible before the index that covers it (x86: stores are
     * ordered, the compiler must not reorder them). */
    barrier();
    vq->avail->idx = idx + 1;
    barrier();
}

int virtq_add(Virtq *vq, const VirtioBuf *bufs, unsigned n)
{
    if (n == 0 || n > vq->num_free) {
        return -1;
    }
    uint16_t head = vq->free_head, i = head;
    for (unsigned k = 0; k < n; k++) {
        volatile VirtqDesc *d = &vq->desc[i];
        d->addr = (uintptr_t)bufs[k].addr;
        d->len = bufs[k].len;
        d->flags = (bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        i = d->next;
    }
    vq->free_head = i;
    vq->num_free -= n;
    virtq_publish(vq, head);
    return head;
}

int virtq_add_indirect(Virtq *vq, VirtqDesc *table, const VirtioBuf *bufs, unsigned n)
{
    if (vq->num_free < 1) {
        return -1;
    }
    for (unsigned k = 0; k < n; k++) {
        table[k].addr = (uintptr_t)bufs[k].addr;
        table[k].len = bufs[k].len;
        table[k].flags = (bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
                         (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        table[k].next = k + 1 < n ? k + 1 : 0;
    }
    uint16_t head = vq->free_head;
    volatile VirtqDesc *d = &vq->desc[head];
    vq->free_head = d->next;
    vq->num_free--;
    d->addr = (uintptr_t)table;
    d->len = n * sizeof(VirtqDesc);
    d->flags = VIRTQ_DESC_F_INDIRECT;
    virtq_publish(vq, head);
    return head;
}

void virtq_kick(Virtq *vq)
{
    barrier();
    mmio_write16(vq->notify, vq->index);
}

bool virtq_poll(Virtq *vq, uint32_t *id, uint32_t *len)
{
    if (vq->used->idx == vq->last_used) {
        return false;
    }
    barrier(); /* read the element only after seeing the index that covers it */
    volatile VirtqUsedElem *e = &vq->used->ring[vq->last_used % vq->size];
    uint32_t head = e->id;
    *id = head;
    *len = e->len;
    vq->last_used++;
    /* Return the chain to the free list; bounded so a bogus id cannot hang us. */
    if (head < vq->size) {
        uint16_t i = head;
        unsigned n = 1;
        while ((vq->desc[i].flags & VIRTQ_DESC_F_NEXT) && n < vq->size) {
            i = vq->desc[i].next % vq->size;
            n++;
        }
        vq->desc[i].next = vq->free_head;
        vq->free_head = head;
        vq->num_free += n;
    }
    return true;
}

bool virtq_wait(Virtq *vq, uint32_t *id, uint32_t *len, unsigned delays)
{
    for (unsigned i = 0; i < delays; i++) {
        if (virtq_poll(vq, id, len)) {
            return true;
        }
        guest_io_delay();
    }
    return virtq_poll(vq, id, len);
}
