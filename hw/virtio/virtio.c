/*
 * Virtio device core: feature negotiation, device status, reset, config space, ISR and
 * the interrupt decision.  Transport-independent (virtio 1.x, chapters 2 and 3).
 */
#include <stdarg.h>
#include <string.h>
#include "sen/virtio.h"
#include "sen/vmstate.h"

/* Transport features the core implements for every device. */
#define VIRTIO_CORE_FEATURES ((1ull << VIRTIO_F_VERSION_1) | \
                              (1ull << VIRTIO_F_RING_EVENT_IDX) | \
                              (1ull << VIRTIO_F_INDIRECT_DESC))

void virtio_init(VirtIODevice *vdev, const char *name, uint16_t device_id,
                 const VirtIODeviceOps *ops, GuestMemory *mem, uint64_t host_features,
                 uint32_t config_len, unsigned num_queues)
{
    vdev->name = name;
    vdev->device_id = device_id;
    vdev->ops = ops;
    vdev->mem = mem;
    vdev->host_features = host_features | VIRTIO_CORE_FEATURES;
    vdev->config_len = config_len;
    vdev->config = g_malloc0(config_len ? config_len : 1);
    vdev->num_queues = num_queues;
    vdev->vqs = g_new0(VirtQueue, num_queues);
    for (unsigned i = 0; i < num_queues; i++) {
        vdev->vqs[i].vdev = vdev;
        vdev->vqs[i].index = i;
        virtqueue_reset(&vdev->vqs[i]);
    }
    vdev->config_vector = VIRTIO_NO_VECTOR;
}

void virtio_cleanup(VirtIODevice *vdev)
{
    g_free(vdev->config);
    vdev->config = NULL;
    for (unsigned i = 0; vdev->vqs && i < vdev->num_queues; i++) {
        virtqueue_cleanup(&vdev->vqs[i]);
    }
    g_free(vdev->vqs);
    vdev->vqs = NULL;
    vdev->num_queues = 0;
}

VirtQueue *virtio_add_queue(VirtIODevice *vdev, unsigned n, uint16_t num_max,
                            VirtQueueHandler *handler)
{
    VirtQueue *vq;

    g_assert(n < vdev->num_queues);
    g_assert(num_max > 0 && num_max <= VIRTQUEUE_MAX_SIZE && !(num_max & (num_max - 1)));
    vq = &vdev->vqs[n];
    vq->num_max = num_max;
    vq->handler = handler;
    virtqueue_reset(vq);
    return vq;
}

void virtio_reset(VirtIODevice *vdev)
{
    /* The device first, so it can drop requests before the queues forget their rings. */
    if (vdev->ops && vdev->ops->reset) {
        vdev->ops->reset(vdev);
    }
    vdev->status = 0;
    vdev->isr = 0;
    vdev->guest_features = 0;
    vdev->broken = false;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    for (unsigned i = 0; i < vdev->num_queues; i++) {
        virtqueue_reset(&vdev->vqs[i]);
    }
}

static void notify_transport(VirtIODevice *vdev, uint16_t vector)
{
    if (vdev->notify) {
        vdev->notify(vdev->notify_opaque, vector);
    }
}

void virtio_set_status(VirtIODevice *vdev, uint8_t status)
{
    if (status == 0) {
        virtio_reset(vdev);
        return;
    }
    if ((status & VIRTIO_STATUS_FEATURES_OK) && !(vdev->status & VIRTIO_STATUS_FEATURES_OK)) {
        /* 3.1.1: a device that cannot work with the accepted features leaves FEATURES_OK
         * clear, and the driver reads it back.  We need VERSION_1 (no legacy layout). */
        bool ok = virtio_has_feature(vdev, VIRTIO_F_VERSION_1);
        if (ok && vdev->ops && vdev->ops->features_ok) {
            ok = vdev->ops->features_ok(vdev, vdev->guest_features);
        }
        if (!ok) {
            status &= ~VIRTIO_STATUS_FEATURES_OK;
        }
    }
    /* NEEDS_RESET is the device's bit: the driver cannot set or clear it. */
    status &= ~VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    status |= vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    vdev->status = status;
    if (vdev->ops && vdev->ops->set_status) {
        vdev->ops->set_status(vdev, status);
    }
}

void virtio_set_features(VirtIODevice *vdev, uint64_t features)
{
    if (vdev->status & VIRTIO_STATUS_FEATURES_OK) {
        return; /* 2.2: features are fixed after FEATURES_OK */
    }
    vdev->guest_features = features & vdev->host_features;
}

void virtio_queue_kick(VirtIODevice *vdev, unsigned n)
{
    VirtQueue *vq;

    if (n >= vdev->num_queues || !vdev->vqs[n].handler) {
        log_guest_error(&vdev->rl, "%s: notify for queue %u which does not exist",
                        vdev->name, n);
        return;
    }
    vq = &vdev->vqs[n];
    if (!vq->enabled || vdev->broken || !(vdev->status & VIRTIO_STATUS_DRIVER_OK)) {
        return; /* 2.1.2: nothing to do before DRIVER_OK; a later kick will come */
    }
    vq->handler(vdev, vq);
}

void virtio_queue_notify_driver(VirtIODevice *vdev, VirtQueue *vq)
{
    if (!virtqueue_should_notify(vq)) {
        return;
    }
    __atomic_or_fetch(&vdev->isr, VIRTIO_ISR_QUEUE, __ATOMIC_SEQ_CST);
    notify_transport(vdev, vq->vector);
}

void virtio_config_changed(VirtIODevice *vdev)
{
    vdev->config_generation++;
    if (!(vdev->status & VIRTIO_STATUS_DRIVER_OK)) {
        return;
    }
    __atomic_or_fetch(&vdev->isr, VIRTIO_ISR_CONFIG, __ATOMIC_SEQ_CST);
    notify_transport(vdev, vdev->config_vector);
}

uint8_t virtio_isr_read_clear(VirtIODevice *vdev)
{
    return __atomic_exchange_n(&vdev->isr, 0, __ATOMIC_SEQ_CST);
}

uint64_t virtio_config_read(VirtIODevice *vdev, uint32_t offset, unsigned size)
{
    uint64_t v = 0;

    if (size > 8 || offset > vdev->config_len || size > vdev->config_len - offset) {
        return 0;
    }
    memcpy(&v, vdev->config + offset, size);
    return v;
}

void virtio_config_write(VirtIODevice *vdev, uint32_t offset, unsigned size, uint64_t val)
{
    if (size > 8 || offset > vdev->config_len || size > vdev->config_len - offset) {
        log_guest_error(&vdev->rl, "%s: config write of %u bytes at 0x%x beyond %u bytes",
                        vdev->name, size, offset, vdev->config_len);
        return;
    }
    if (!vdev->ops || !vdev->ops->config_write) {
        return; /* read-only config space */
    }
    memcpy(vdev->config + offset, &val, size);
    vdev->ops->config_write(vdev, offset, size);
}

void virtio_error(VirtIODevice *vdev, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_guest_error(&vdev->rl, "%s: %s; device needs reset", vdev->name, msg);
    g_free(msg);
    if (vdev->broken) {
        return;
    }
    vdev->broken = true;
    /* 2.1.2: only a driver that finished set-up is told; before that it simply fails. */
    vdev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    if (vdev->status & VIRTIO_STATUS_DRIVER_OK) {
        virtio_config_changed(vdev);
    }
}

/* ---- migration ---- */

static bool virtio_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIODevice *vdev = opaque;
    uint64_t extra = vdev->guest_features & ~vdev->host_features;
    if (extra) {
        error_setg(errp, "%s: the driver accepted features 0x%" G_GINT64_MODIFIER "x that "
                   "this device does not offer", vdev->name, (guint64)extra);
        return false;
    }
    return true;
}

static const VMStateField virtio_fields[] = {
    VMSTATE_UINT64(guest_features, VirtIODevice),
    VMSTATE_UINT8(status, VirtIODevice),
    VMSTATE_UINT8(isr, VirtIODevice),
    VMSTATE_BOOL(broken, VirtIODevice),
    VMSTATE_UINT16(config_vector, VirtIODevice),
    VMSTATE_UINT8(config_generation, VirtIODevice),
    { .name = "config", .type = VMS_U8, .offset = offsetof(VirtIODevice, config), .size = 1,
      .num = 65536, .count_offset = offsetof(VirtIODevice, config_len),
      .flags = VMS_F_POINTER | VMS_F_COUNTED | VMS_F_COUNT_FIXED },
    VMSTATE_STRUCT_VARRAY_POINTER(vqs, VirtIODevice, num_queues, 65536, virtqueue_vmsd,
                                  VirtQueue),
    VMSTATE_END_OF_LIST(),
};

const VMStateDesc virtio_device_vmsd = {
    .name = "virtio",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_fields,
    .post_load = virtio_post_load,
};
