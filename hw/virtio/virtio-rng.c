/*
 * virtio-rng-pci (virtio 1.x, 5.4): one request queue whose writable buffers are filled
 * from the host's getrandom().  No config space, no device features.
 */
#include <errno.h>
#include <sys/random.h>
#include "hw/virtio/virtio-pci.h"
#include "sen/device.h"
#include "sen/vmstate.h"

#define RNG_QUEUE_SIZE 256
/* Bytes per request at most, so one kick cannot keep the VM lock for long. */
#define RNG_MAX_REQUEST (64 * 1024)

typedef struct VirtIORng {
    VirtIOPCIProxy proxy; /* first: the instance is a PCI device */
    VirtIODevice vdev;
} VirtIORng;

static size_t rng_fill(const struct iovec *iov, unsigned n)
{
    size_t total = 0;

    for (unsigned i = 0; i < n && total < RNG_MAX_REQUEST; i++) {
        size_t want = MIN(iov[i].iov_len, RNG_MAX_REQUEST - total);
        ssize_t got = getrandom(iov[i].iov_base, want, GRND_NONBLOCK);
        if (got < 0) {
            break; /* pool not ready (EAGAIN) or interrupted: hand back what we have */
        }
        total += got;
        if ((size_t)got < want) {
            break;
        }
    }
    return total;
}

static void rng_handle_request(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtQueueElement *e;
    bool pushed = false;

    while ((e = virtqueue_pop(vq))) {
        if (e->in_num == 0) {
            virtio_error(vdev, "request %u has no device-writable buffer", e->head);
            virtqueue_element_free(e);
            break;
        }
        virtqueue_push(vq, e, rng_fill(e->in_sg, e->in_num));
        virtqueue_element_free(e);
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(vdev, vq);
    }
}

static const VirtIODeviceOps rng_ops = { 0 };

static void virtio_rng_reset(DeviceState *dev)
{
    VirtIORng *s = (VirtIORng *)dev;
    virtio_pci_reset(&s->proxy);
}

static void virtio_rng_unrealize(DeviceState *dev);

static bool virtio_rng_realize(DeviceState *dev, Machine *m, Error **errp)
{
    VirtIORng *s = (VirtIORng *)dev;

    if (!pci_device_realize(&s->proxy.pci, m, errp)) {
        return false;
    }
    virtio_init(&s->vdev, "virtio-rng", VIRTIO_ID_RNG, &rng_ops, m->mem, 0, 0, 1);
    virtio_add_queue(&s->vdev, 0, RNG_QUEUE_SIZE, rng_handle_request);
    if (!virtio_pci_realize(&s->proxy, &s->vdev, m, 0x00ff00, errp)) {
        virtio_rng_unrealize(dev); /* the registry only unrealizes realized devices */
        return false;
    }
    return true;
}

static void virtio_rng_unrealize(DeviceState *dev)
{
    VirtIORng *s = (VirtIORng *)dev;

    virtio_pci_unrealize(&s->proxy);
    virtio_cleanup(&s->vdev);
}

static const PropertyDef virtio_rng_props[] = {
    DEFINE_PCI_PROPS(VirtIORng, proxy.pci),
    { .name = NULL },
};

static const VMStateField virtio_rng_fields[] = {
    VMSTATE_VIRTIO_PCI(proxy, VirtIORng),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc virtio_rng_vmsd = {
    .name = "virtio-rng-pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_rng_fields,
};

const DeviceClass virtio_rng_pci_class = {
    .name = "virtio-rng-pci",
    .desc = "virtio entropy source (host getrandom)",
    .instance_size = sizeof(VirtIORng),
    .props = virtio_rng_props,
    .user_creatable = true,
    .realize = virtio_rng_realize,
    .reset = virtio_rng_reset,
    .unrealize = virtio_rng_unrealize,
    .vmsd = &virtio_rng_vmsd,
};
