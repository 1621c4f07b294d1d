/*
 * The modern virtio-pci transport (virtio 1.x, 4.1), private to hw/virtio.
 *
 * A virtio PCI device model's instance starts with a VirtIOPCIProxy (which starts with
 * PCIDevice) and embeds its VirtIODevice.  Its realize calls pci_device_realize, sets up
 * the VirtIODevice (virtio_init, virtio_add_queue), then virtio_pci_realize; reset and
 * unrealize call virtio_pci_reset / virtio_pci_unrealize.
 *
 * BAR 4 (64-bit memory, 16 KiB): common config at 0, ISR at 0x1000, device config at
 * 0x2000, notify at 0x3000 (queue n at +4n).  BAR 1: MSI-X table and PBA, one vector per
 * queue plus one for config changes.
 */
#ifndef HW_VIRTIO_VIRTIO_PCI_H
#define HW_VIRTIO_VIRTIO_PCI_H

#include "sen/pci.h"
#include "sen/virtio.h"

typedef struct VirtIOPCIProxy VirtIOPCIProxy;

/* A queue's host notifier: an eventfd KVM signals on the guest's notify write. */
typedef struct VirtIOPCINotifier {
    VirtIOPCIProxy *proxy;
    unsigned queue;
    int fd;
    GSource *src;
    bool assigned;      /* registered as ioeventfd at assigned_addr */
    int held;           /* atomic: kicked while the VM was stopped, replayed on start */
    uint64_t assigned_addr;
} VirtIOPCINotifier;

struct VirtIOPCIProxy {
    PCIDevice pci;                /* first: a VirtIOPCIProxy is a PCIDevice */
    VirtIODevice *vdev;
    Machine *m;

    uint32_t dfselect;            /* device_feature_select */
    uint32_t gfselect;            /* driver_feature_select */
    uint64_t driver_features;     /* what the driver wrote, before masking */
    uint16_t queue_sel;

    unsigned nvectors;
    int *irqfd;                   /* per MSI-X vector, -1 = none */
    bool irqfd_failed;            /* accelerator has none: msix_notify instead */
    VirtIOPCINotifier *notifiers; /* per queue */
    void *start_hook;             /* replays held kicks (machine_add_start_hook) */
    /* Where the queue notifiers run: an I/O thread's context (the device's iothread=,
     * set before realize), or NULL for the main loop. */
    GMainContext *notify_ctx;
    bool realized;
};

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_BAR       4
#define VIRTIO_PCI_MSIX_BAR  1

/* Migration: the PCI function, the transport's registers and the VirtIODevice behind
 * it; loading re-establishes irqfds (DRIVER_OK) and ioeventfds (via the BAR mapping)
 * and kicks every enabled queue once, in case a notification was in flight. */
extern const VMStateDesc virtio_pci_vmsd;
#define VMSTATE_VIRTIO_PCI(_f, _s) VMSTATE_STRUCT(_f, _s, virtio_pci_vmsd, VirtIOPCIProxy)

bool virtio_pci_realize(VirtIOPCIProxy *p, VirtIODevice *vdev, Machine *m,
                        uint32_t class_code, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void virtio_pci_reset(VirtIOPCIProxy *p);
void virtio_pci_unrealize(VirtIOPCIProxy *p);

#endif
