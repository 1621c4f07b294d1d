/*
 * Modern virtio-pci transport (virtio 1.x, section 4.1): vendor capabilities that point
 * into one memory BAR, the common configuration registers, ISR, device config and queue
 * notification; MSI-X with INTx fallback.
 *
 * Fast paths: once the BAR is mapped, each queue's notify address is a KVM ioeventfd whose
 * eventfd the main loop watches (the vCPU does not exit to us for a kick), and each MSI-X
 * vector is a KVM irqfd (attached at DRIVER_OK).  Where the accelerator has neither
 * (qtest) the BAR handler and msix_notify do the same work slowly.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <glib-unix.h>
#include "accel/accel.h"
#include "hw/virtio/virtio-pci.h"
#include "sen/log.h"
#include "sen/vmstate.h"

/* 4.1.4: vendor-specific capability types. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

#define REGION_COMMON 0x0000
#define REGION_ISR    0x1000
#define REGION_DEVICE 0x2000
#define REGION_NOTIFY 0x3000
#define REGION_SIZE   0x1000
#define BAR_SIZE      0x4000
#define NOTIFY_MULT   4

/* Common configuration (4.1.4.3). */
enum {
    CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
    CC_MSIX_CONFIG = 0x10, CC_NUM_QUEUES = 0x12, CC_STATUS = 0x14, CC_CFG_GEN = 0x15,
    CC_Q_SELECT = 0x16, CC_Q_SIZE = 0x18, CC_Q_MSIX = 0x1a, CC_Q_ENABLE = 0x1c,
    CC_Q_NOTIFY_OFF = 0x1e, CC_Q_DESC = 0x20, CC_Q_AVAIL = 0x28, CC_Q_USED = 0x30,
    CC_SIZE = 0x38,
};

static const struct { uint8_t off, size; } cc_fields[] = {
    { CC_DFSELECT, 4 }, { CC_DF, 4 }, { CC_GFSELECT, 4 }, { CC_GF, 4 },
    { CC_MSIX_CONFIG, 2 }, { CC_NUM_QUEUES, 2 }, { CC_STATUS, 1 }, { CC_CFG_GEN, 1 },
    { CC_Q_SELECT, 2 }, { CC_Q_SIZE, 2 }, { CC_Q_MSIX, 2 }, { CC_Q_ENABLE, 2 },
    { CC_Q_NOTIFY_OFF, 2 }, { CC_Q_DESC, 8 }, { CC_Q_AVAIL, 8 }, { CC_Q_USED, 8 },
};

static VirtQueue *selected_queue(VirtIOPCIProxy *p)
{
    VirtIODevice *vdev = p->vdev;

    if (p->queue_sel >= vdev->num_queues || !vdev->vqs[p->queue_sel].num_max) {
        return NULL;
    }
    return &vdev->vqs[p->queue_sel];
}

static uint16_t checked_vector(VirtIOPCIProxy *p, uint64_t v)
{
    /* 4.1.4.3: a vector the device cannot use reads back as NO_VECTOR. */
    return v < p->nvectors ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

/* ---- interrupts ---- */

static void virtio_pci_notify(void *opaque, uint16_t vector)
{
    VirtIOPCIProxy *p = opaque;

    if (!msix_enabled(&p->pci)) {
        pci_set_irq(&p->pci, 1); /* lowered when the driver reads the ISR */
        return;
    }
    if (vector >= p->nvectors) {
        return;
    }
    if (p->irqfd[vector] >= 0) {
        if (eventfd_write(p->irqfd[vector], 1) == 0) {
            return;
        }
    }
    msix_notify(&p->pci, vector);
}

static void irqfds_attach(VirtIOPCIProxy *p)
{
    for (unsigned v = 0; v < p->nvectors && !p->irqfd_failed; v++) {
        if (p->irqfd[v] >= 0) {
            continue;
        }
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        Error *err = NULL;
        if (fd < 0 || !msix_vector_set_irqfd(&p->pci, v, fd, &err)) {
            /* No irqfd here (qtest) or out of GSIs: the slow path delivers the same
             * messages, so this is not a guest-visible failure. */
            error_free(err);
            if (fd >= 0) {
                close(fd);
            }
            p->irqfd_failed = true;
            break;
        }
        p->irqfd[v] = fd;
    }
}

static void irqfds_detach(VirtIOPCIProxy *p)
{
    for (unsigned v = 0; v < p->nvectors; v++) {
        if (p->irqfd[v] >= 0) {
            Error *err = NULL;
            /* Without the VM (teardown after the accelerator) there is nothing to
             * detach from. */
            if (p->m->accel_up && !msix_vector_set_irqfd(&p->pci, v, -1, &err)) {
                error_free(err);
            }
            close(p->irqfd[v]);
            p->irqfd[v] = -1;
        }
    }
    p->irqfd_failed = false;
}

/* ---- queue notification ---- */

static void notifier_kick(VirtIOPCINotifier *n)
{
    VirtIOPCIProxy *p = n->proxy;
    /* The device stays realized meanwhile: unrealize runs on the main thread, after the
     * I/O threads stopped (machine_destroy). */
    VirtIODevice *vdev = p->vdev;
    bool unlocked_part = vdev->ops && vdev->ops->kick_unlocked;
    machine_lock(p->m);
    vdev->kick_unlocked_follows = unlocked_part;
    virtio_queue_kick(vdev, n->queue);
    vdev->kick_unlocked_follows = false;
    machine_unlock(p->m);
    if (unlocked_part) {
        vdev->ops->kick_unlocked(vdev);
    }
}

static gboolean notifier_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    VirtIOPCINotifier *n = opaque;
    eventfd_t cnt;

    if (eventfd_read(fd, &cnt) < 0) {
        return G_SOURCE_CONTINUE; /* EAGAIN: another wake-up took it */
    }
    /* A kick still in the eventfd when the VM stopped (migration switchover, savevm,
     * stop) must not reach the disk after the state was drained and saved: a source that
     * handed over would write behind its destination.  It waits for the next start (a
     * cancelled migration, cont); a destination kicks every queue after loading.
     * On an I/O thread the VM may start between the check and the mark, after the start
     * replayed the held kicks: so look again after marking, and whichever of the two
     * clears the mark makes the kick (the exchanges are full barriers, pairing with the
     * run state's store before the replay). */
    if (!machine_devices_active(n->proxy->m)) {
        __atomic_store_n(&n->held, 1, __ATOMIC_SEQ_CST);
        if (!machine_devices_active(n->proxy->m) ||
            !__atomic_exchange_n(&n->held, 0, __ATOMIC_SEQ_CST)) {
            return G_SOURCE_CONTINUE;
        }
    }
    notifier_kick(n);
    return G_SOURCE_CONTINUE;
}

static void replay_held_kicks(void *opaque)
{
    VirtIOPCIProxy *p = opaque;
    for (unsigned i = 0; i < p->vdev->num_queues; i++) {
        VirtIOPCINotifier *n = &p->notifiers[i];
        if (__atomic_exchange_n(&n->held, 0, __ATOMIC_SEQ_CST)) {
            notifier_kick(n);
        }
    }
}

static void notifiers_unassign(VirtIOPCIProxy *p)
{
    const AccelOps *ops = p->m->accel;

    for (unsigned i = 0; i < p->vdev->num_queues; i++) {
        VirtIOPCINotifier *n = &p->notifiers[i];
        if (n->assigned && p->m->accel_up) {
            Error *err = NULL;
            if (!ops->ioeventfd_assign(p->m, true, n->assigned_addr, 2, false, 0, n->fd,
                                       false, &err)) {
                error_free(err);
            }
        }
        n->assigned = false;
    }
}

static void notifiers_assign(VirtIOPCIProxy *p, uint64_t bar_addr)
{
    const AccelOps *ops = p->m->accel;

    if (!p->m->accel_up || !ops || !ops->ioeventfd_assign) {
        return; /* notify writes reach notify_write() instead */
    }
    for (unsigned i = 0; i < p->vdev->num_queues; i++) {
        VirtIOPCINotifier *n = &p->notifiers[i];
        Error *err = NULL;

        if (!p->vdev->vqs[i].num_max) {
            continue;
        }
        if (n->fd < 0) {
            n->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (n->fd < 0) {
                continue;
            }
            n->src = g_unix_fd_source_new(n->fd, G_IO_IN);
            g_source_set_callback(n->src, (GSourceFunc)(void (*)(void))notifier_ready, n,
                                  NULL);
            g_source_attach(n->src, p->notify_ctx ? p->notify_ctx : p->m->ctx);
        }
        n->assigned_addr = bar_addr + REGION_NOTIFY + NOTIFY_MULT * i;
        /* Drivers write the 16-bit queue index (4.1.5.2); other widths still exit. */
        if (ops->ioeventfd_assign(p->m, true, n->assigned_addr, 2, false, 0, n->fd, true,
                                  &err)) {
            n->assigned = true;
        } else {
            error_free(err);
        }
    }
}

static void virtio_pci_bar_remapped(PCIDevice *d, int nr, uint64_t old_addr,
                                    uint64_t new_addr)
{
    VirtIOPCIProxy *p = (VirtIOPCIProxy *)d;

    if (nr != VIRTIO_PCI_BAR) {
        return;
    }
    notifiers_unassign(p);
    if (new_addr != PCI_BAR_UNMAPPED) {
        notifiers_assign(p, new_addr);
    }
}

/* ---- common configuration ---- */

static uint64_t cc_field_read(VirtIOPCIProxy *p, unsigned off)
{
    VirtIODevice *vdev = p->vdev;
    VirtQueue *vq = selected_queue(p);

    switch (off) {
    case CC_DFSELECT:
        return p->dfselect;
    case CC_DF:
        return p->dfselect < 2 ? (uint32_t)(vdev->host_features >> (32 * p->dfselect)) : 0;
    case CC_GFSELECT:
        return p->gfselect;
    case CC_GF:
        return p->gfselect < 2 ? (uint32_t)(vdev->guest_features >> (32 * p->gfselect)) : 0;
    case CC_MSIX_CONFIG:
        return vdev->config_vector;
    case CC_NUM_QUEUES:
        return vdev->num_queues;
    case CC_STATUS:
        return vdev->status;
    case CC_CFG_GEN:
        return vdev->config_generation;
    case CC_Q_SELECT:
        return p->queue_sel;
    }
    if (!vq) {
        return 0; /* 4.1.4.3: a queue that does not exist has size 0 */
    }
    switch (off) {
    case CC_Q_SIZE:
        return vq->num;
    case CC_Q_MSIX:
        return vq->vector;
    case CC_Q_ENABLE:
        return vq->enabled;
    case CC_Q_NOTIFY_OFF:
        return vq->index;
    case CC_Q_DESC:
        return vq->desc_gpa;
    case CC_Q_AVAIL:
        return vq->avail_gpa;
    case CC_Q_USED:
        return vq->used_gpa;
    }
    return 0;
}

static void status_write(VirtIOPCIProxy *p, uint8_t val)
{
    VirtIODevice *vdev = p->vdev;
    bool was_ok = vdev->status & VIRTIO_STATUS_DRIVER_OK;

    virtio_set_status(vdev, val);
    if (val == 0) {
        p->driver_features = 0;
        p->dfselect = p->gfselect = 0;
        p->queue_sel = 0;
        irqfds_detach(p);
        pci_set_irq(&p->pci, 0);
        return;
    }
    if (!was_ok && (vdev->status & VIRTIO_STATUS_DRIVER_OK)) {
        irqfds_attach(p);
    }
}

static void cc_field_write(VirtIOPCIProxy *p, unsigned off, uint64_t val)
{
    VirtIODevice *vdev = p->vdev;
    VirtQueue *vq = selected_queue(p);

    switch (off) {
    case CC_DFSELECT:
        p->dfselect = val;
        return;
    case CC_GFSELECT:
        p->gfselect = val;
        return;
    case CC_GF:
        if (p->gfselect < 2) {
            unsigned shift = 32 * p->gfselect;
            p->driver_features &= ~(0xffffffffull << shift);
            p->driver_features |= (val & 0xffffffffull) << shift;
            virtio_set_features(vdev, p->driver_features);
        }
        return;
    case CC_MSIX_CONFIG:
        vdev->config_vector = checked_vector(p, val);
        return;
    case CC_STATUS:
        status_write(p, val);
        return;
    case CC_Q_SELECT:
        p->queue_sel = val;
        return;
    case CC_DF: case CC_NUM_QUEUES: case CC_CFG_GEN: case CC_Q_NOTIFY_OFF:
        return; /* read-only */
    }
    if (!vq) {
        log_guest_error(&vdev->rl, "%s: write to queue register 0x%x of missing queue %u",
                        vdev->name, off, p->queue_sel);
        return;
    }
    if (off == CC_Q_MSIX) {
        vq->vector = checked_vector(p, val);
        return;
    }
    if (vq->enabled) {
        /* 4.1.4.3.2: the driver must not change an enabled queue (nor write 0 to
         * queue_enable); it resets the device instead. */
        log_guest_error(&vdev->rl, "%s: queue %u register 0x%x written while enabled",
                        vdev->name, vq->index, off);
        return;
    }
    switch (off) {
    case CC_Q_SIZE:
        vq->num = val; /* checked when enabled */
        break;
    case CC_Q_ENABLE:
        if (val == 1) {
            virtqueue_enable(vq);
        }
        break;
    case CC_Q_DESC:
        vq->desc_gpa = val;
        break;
    case CC_Q_AVAIL:
        vq->avail_gpa = val;
        break;
    case CC_Q_USED:
        vq->used_gpa = val;
        break;
    }
}

static int cc_find(unsigned off, unsigned size)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(cc_fields); i++) {
        unsigned fo = cc_fields[i].off, fs = cc_fields[i].size;
        /* The whole field, or one 32-bit half of a 64-bit one (4.1.3.1). */
        if ((off == fo && size == fs) ||
            (fs == 8 && size == 4 && (off == fo || off == fo + 4))) {
            return i;
        }
    }
    return -1;
}

static uint64_t common_read(VirtIOPCIProxy *p, unsigned off, unsigned size)
{
    int i = cc_find(off, size);

    if (i < 0) {
        log_guest_error(&p->vdev->rl, "%s: common config read of %u bytes at 0x%x",
                        p->vdev->name, size, off);
        return 0;
    }
    uint64_t v = cc_field_read(p, cc_fields[i].off);
    if (size == 4 && cc_fields[i].size == 8) {
        v = (uint32_t)(v >> (8 * (off - cc_fields[i].off)));
    }
    return v;
}

static void common_write(VirtIOPCIProxy *p, unsigned off, unsigned size, uint64_t val)
{
    int i = cc_find(off, size);

    if (i < 0) {
        log_guest_error(&p->vdev->rl, "%s: common config write of %u bytes at 0x%x",
                        p->vdev->name, size, off);
        return;
    }
    if (size == 4 && cc_fields[i].size == 8) {
        unsigned shift = 8 * (off - cc_fields[i].off);
        uint64_t old = cc_field_read(p, cc_fields[i].off);
        val = (old & ~(0xffffffffull << shift)) | ((val & 0xffffffffull) << shift);
    }
    cc_field_write(p, cc_fields[i].off, val);
}

/* ---- the BAR ---- */

static uint64_t virtio_pci_bar_read(void *opaque, uint64_t offset, unsigned size)
{
    VirtIOPCIProxy *p = opaque;
    unsigned off = offset & (REGION_SIZE - 1);

    switch (offset & ~(uint64_t)(REGION_SIZE - 1)) {
    case REGION_COMMON:
        return off < CC_SIZE ? common_read(p, off, size) : 0;
    case REGION_ISR:
        if (off == 0) {
            uint8_t isr = virtio_isr_read_clear(p->vdev);
            if (!msix_enabled(&p->pci)) {
                pci_set_irq(&p->pci, 0);
            }
            return isr;
        }
        return 0;
    case REGION_DEVICE:
        return virtio_config_read(p->vdev, off, size);
    default:
        return 0; /* notify: write-only */
    }
}

static void virtio_pci_bar_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
    VirtIOPCIProxy *p = opaque;
    unsigned off = offset & (REGION_SIZE - 1);

    switch (offset & ~(uint64_t)(REGION_SIZE - 1)) {
    case REGION_COMMON:
        if (off < CC_SIZE) {
            common_write(p, off, size, val);
        }
        return;
    case REGION_DEVICE:
        virtio_config_write(p->vdev, off, size, val);
        return;
    case REGION_NOTIFY:
        /* The queue is the one whose notify address was written (the value is the
         * same index unless NOTIFICATION_DATA, which we do not offer). */
        if (off % NOTIFY_MULT == 0) {
            virtio_queue_kick(p->vdev, off / NOTIFY_MULT);
        }
        return;
    default:
        return; /* ISR is read-only */
    }
}

static const IoOps virtio_pci_bar_ops = {
    .read = virtio_pci_bar_read,
    .write = virtio_pci_bar_write,
};

/* ---- set-up ---- */

static bool add_cap(VirtIOPCIProxy *p, uint8_t type, uint32_t offset, uint32_t length,
                    bool notify, Error **errp)
{
    uint8_t len = notify ? 20 : 16;
    int off = pci_add_capability(&p->pci, PCI_CAP_ID_VNDR, len, errp);
    uint8_t *c;

    if (off < 0) {
        return false;
    }
    c = p->pci.config + off;
    c[2] = len;
    c[3] = type;
    c[4] = VIRTIO_PCI_BAR;
    pci_set_long(c + 8, offset);
    pci_set_long(c + 12, length);
    if (notify) {
        pci_set_long(c + 16, NOTIFY_MULT);
    }
    return true;
}

bool virtio_pci_realize(VirtIOPCIProxy *p, VirtIODevice *vdev, Machine *m,
                        uint32_t class_code, Error **errp)
{
    PCIDevice *d = &p->pci;

    p->vdev = vdev;
    p->m = m;
    vdev->notify = virtio_pci_notify;
    vdev->notify_opaque = p;
    p->nvectors = vdev->num_queues + 1;
    p->irqfd = g_new(int, p->nvectors);
    for (unsigned v = 0; v < p->nvectors; v++) {
        p->irqfd[v] = -1;
    }
    p->notifiers = g_new0(VirtIOPCINotifier, vdev->num_queues);
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        p->notifiers[i] = (VirtIOPCINotifier){ .proxy = p, .queue = i, .fd = -1 };
    }
    p->realized = true;
    p->start_hook = machine_add_start_hook(m, replay_held_kicks, p);

    /* 4.1.2.1: non-transitional IDs; revision 1 and a subsystem ID >= 0x40. */
    pci_set_ids(d, VIRTIO_PCI_VENDOR_ID, 0x1040 + vdev->device_id, VIRTIO_PCI_VENDOR_ID,
                0x1100, 1);
    pci_set_class(d, class_code);
    pci_set_intx_pin(d, 1);
    if (!pci_register_bar(d, VIRTIO_PCI_BAR, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, BAR_SIZE,
                          &virtio_pci_bar_ops, p, errp) ||
        !msix_init_exclusive_bar(d, p->nvectors, VIRTIO_PCI_MSIX_BAR, errp) ||
        !add_cap(p, VIRTIO_PCI_CAP_COMMON_CFG, REGION_COMMON, CC_SIZE, false, errp) ||
        !add_cap(p, VIRTIO_PCI_CAP_ISR_CFG, REGION_ISR, 1, false, errp) ||
        !add_cap(p, VIRTIO_PCI_CAP_DEVICE_CFG, REGION_DEVICE,
                 MAX(vdev->config_len, 4), false, errp) ||
        !add_cap(p, VIRTIO_PCI_CAP_NOTIFY_CFG, REGION_NOTIFY,
                 NOTIFY_MULT * vdev->num_queues, true, errp)) {
        return false;
    }
    d->bar_remapped = virtio_pci_bar_remapped;
    return true;
}

void virtio_pci_reset(VirtIOPCIProxy *p)
{
    if (!p->realized) {
        return;
    }
    status_write(p, 0);
    pci_device_reset(&p->pci);
}

void virtio_pci_unrealize(VirtIOPCIProxy *p)
{
    if (p->realized) {
        /* pci_device_unrealize below would report the BAR going away to a transport whose
         * notifiers are already freed. */
        p->pci.bar_remapped = NULL;
        notifiers_unassign(p);
        for (unsigned i = 0; i < p->vdev->num_queues; i++) {
            VirtIOPCINotifier *n = &p->notifiers[i];
            if (n->src) {
                g_source_destroy(n->src);
                g_source_unref(n->src);
            }
            if (n->fd >= 0) {
                close(n->fd);
            }
        }
        irqfds_detach(p);
        machine_remove_start_hook(p->m, p->start_hook);
        p->start_hook = NULL;
        g_free(p->notifiers);
        g_free(p->irqfd);
        p->realized = false;
    }
    pci_device_unrealize(&p->pci);
}

/* ---- migration ---- */

static bool virtio_pci_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIOPCIProxy *p = opaque;
    VirtIODevice *vdev = p->vdev;

    if (vdev->config_vector != VIRTIO_NO_VECTOR && vdev->config_vector >= p->nvectors) {
        error_setg(errp, "config vector %u out of range", vdev->config_vector);
        return false;
    }
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        uint16_t v = vdev->vqs[i].vector;
        if (v != VIRTIO_NO_VECTOR && v >= p->nvectors) {
            error_setg(errp, "queue %u: vector %u out of range", i, v);
            return false;
        }
    }
    if (vdev->status & VIRTIO_STATUS_DRIVER_OK) {
        irqfds_attach(p);
    }
    /* A kick the source took from the guest but had not handled yet is not in the
     * stream: look at every enabled queue once (the handlers run on the main loop). */
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        VirtIOPCINotifier *n = &p->notifiers[i];
        if (vdev->vqs[i].enabled && n->assigned && n->fd >= 0) {
            eventfd_write(n->fd, 1);
        }
    }
    return true;
}

static const VMStateField virtio_pci_fields[] = {
    VMSTATE_PCI_DEVICE(pci, VirtIOPCIProxy),
    VMSTATE_UINT32(dfselect, VirtIOPCIProxy),
    VMSTATE_UINT32(gfselect, VirtIOPCIProxy),
    VMSTATE_UINT64(driver_features, VirtIOPCIProxy),
    VMSTATE_UINT16(queue_sel, VirtIOPCIProxy),
    { .name = "vdev", .type = VMS_STRUCT, .offset = offsetof(VirtIOPCIProxy, vdev),
      .size = 1, .flags = VMS_F_POINTER, .vmsd = &virtio_device_vmsd },
    VMSTATE_END_OF_LIST(),
};

const VMStateDesc virtio_pci_vmsd = {
    .name = "virtio-pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_pci_fields,
    .post_load = virtio_pci_post_load,
};
