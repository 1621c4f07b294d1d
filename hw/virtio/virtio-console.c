/*
 * virtio console (virtio 1.x, 5.3) with a single port, as Linux's hvc0: receiveq 0 and
 * transmitq 1, no MULTIPORT, no control queues.
 *
 * Spellings: QEMU's `-device virtio-serial-pci -device virtconsole,chardev=ID` (the
 * virtconsole attaches to the last virtio-serial-pci created before it), or the
 * one-device shorthand `-device virtio-console-pci,chardev=ID`.
 *
 * Output never blocks (the chardev buffers or drops).  Input flows only as fast as the
 * driver posts receive buffers: can_read reports the room of the posted buffers, and a
 * kick on the receive queue asks the chardev to poll again.
 */
#include <string.h>
#include "hw/virtio/virtio-pci.h"
#include "sen/chardev.h"
#include "sen/device.h"
#include "sen/iov.h"
#include "sen/vmstate.h"

#define CONSOLE_QUEUE_SIZE 128
#define CONSOLE_CFG_SIZE   12  /* cols, rows, max_nr_ports, emerg_wr */
#define RXQ 0
#define TXQ 1

typedef struct VirtIOConsole {
    VirtIOPCIProxy proxy; /* first: the instance is a PCI device */
    VirtIODevice vdev;
    char *chardev;        /* virtio-console-pci only */
    Chardev *chr;         /* the port's backend, NULL = output dropped, no input */
    bool has_port;        /* a virtconsole (or chardev=) claimed port 0 */
} VirtIOConsole;

typedef struct VirtConsolePort {
    DeviceState parent;
    char *chardev;
    VirtIOConsole *con;   /* what realize attached to */
} VirtConsolePort;

extern const DeviceClass virtio_serial_pci_class;
extern const DeviceClass virtio_console_pci_class;

static VirtIOConsole *console_of(VirtIODevice *vdev)
{
    return (VirtIOConsole *)((uint8_t *)vdev - offsetof(VirtIOConsole, vdev));
}

/* ---- transmit: guest to chardev ---- */

static void console_handle_tx(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOConsole *s = console_of(vdev);
    VirtQueueElement *e;
    bool pushed = false;

    while ((e = virtqueue_pop(vq))) {
        for (unsigned i = 0; i < e->out_num && s->chr; i++) {
            chardev_write(s->chr, e->out_sg[i].iov_base, e->out_sg[i].iov_len);
        }
        virtqueue_push(vq, e, 0);
        virtqueue_element_free(e);
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(vdev, vq);
    }
}

/* ---- receive: chardev to guest (main loop, VM lock held) ---- */

static bool rx_ready(VirtIOConsole *s)
{
    return (s->vdev.status & VIRTIO_STATUS_DRIVER_OK) && !s->vdev.broken &&
           s->vdev.vqs[RXQ].enabled;
}

static size_t console_can_read(void *opaque)
{
    VirtIOConsole *s = opaque;

    VirtQueueElement *e;
    size_t room;

    if (!rx_ready(s) || !(e = virtqueue_pop(&s->vdev.vqs[RXQ]))) {
        return 0;
    }
    /* The room of the next posted buffer; receive may fill several. */
    room = e->in_len;
    virtqueue_unpop(&s->vdev.vqs[RXQ], e);
    return room;
}

static void console_receive(void *opaque, const uint8_t *buf, size_t len)
{
    VirtIOConsole *s = opaque;
    VirtQueue *vq = &s->vdev.vqs[RXQ];
    bool pushed = false;

    while (len && rx_ready(s)) {
        VirtQueueElement *e = virtqueue_pop(vq);
        if (!e) {
            break; /* no room: the rest is dropped, as on a full UART FIFO */
        }
        size_t n = iov_from_buf(e->in_sg, e->in_num, 0, buf, len);
        virtqueue_push(vq, e, n);
        virtqueue_element_free(e);
        buf += n;
        len -= n;
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(&s->vdev, vq);
    }
}

static void console_handle_rx(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOConsole *s = console_of(vdev);

    /* New receive buffers: input paused by can_read may flow again. */
    if (s->chr) {
        chardev_accept_input(s->chr);
    }
}

static const VirtIODeviceOps console_ops = { 0 };

static void console_attach(VirtIOConsole *s, Chardev *chr)
{
    s->chr = chr;
    s->has_port = true;
    chardev_set_handlers(chr, console_can_read, console_receive, NULL, s);
}

static void console_detach(VirtIOConsole *s)
{
    if (s->chr) {
        chardev_set_handlers(s->chr, NULL, NULL, NULL, NULL);
        s->chr = NULL;
    }
    s->has_port = false;
}

/* ---- virtio-serial-pci / virtio-console-pci ---- */

static bool virtio_console_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIOConsole *s = opaque;
    /* Receive buffers may be posted now: let input flow. */
    if (s->chr) {
        chardev_accept_input(s->chr);
    }
    return true;
}

static const VMStateField virtio_console_fields[] = {
    VMSTATE_VIRTIO_PCI(proxy, VirtIOConsole),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc virtio_console_vmsd = {
    .name = "virtio-console",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_console_fields,
    .post_load = virtio_console_post_load,
};

static void virtio_console_reset(DeviceState *dev)
{
    VirtIOConsole *s = (VirtIOConsole *)dev;
    virtio_pci_reset(&s->proxy);
}

static void virtio_console_unrealize(DeviceState *dev)
{
    VirtIOConsole *s = (VirtIOConsole *)dev;

    console_detach(s);
    virtio_pci_unrealize(&s->proxy);
    virtio_cleanup(&s->vdev);
}

static bool virtio_console_realize(DeviceState *dev, Machine *m, Error **errp)
{
    VirtIOConsole *s = (VirtIOConsole *)dev;
    Chardev *chr = NULL;

    if (dev->cls == &virtio_console_pci_class) {
        if (!s->chardev) {
            error_setg(errp, "chardev= is required");
            return false;
        }
        chr = machine_find_chardev(m, s->chardev);
        if (!chr) {
            error_setg(errp, "chardev=%s: no -chardev with that id", s->chardev);
            return false;
        }
    }
    if (!pci_device_realize(&s->proxy.pci, m, errp)) {
        return false;
    }
    virtio_init(&s->vdev, "virtio-console", VIRTIO_ID_CONSOLE, &console_ops, m->mem, 0,
                CONSOLE_CFG_SIZE, 2);
    virtio_add_queue(&s->vdev, RXQ, CONSOLE_QUEUE_SIZE, console_handle_rx);
    virtio_add_queue(&s->vdev, TXQ, CONSOLE_QUEUE_SIZE, console_handle_tx);
    if (!virtio_pci_realize(&s->proxy, &s->vdev, m, 0x078000, errp)) {
        virtio_console_unrealize(dev); /* the registry only unrealizes realized devices */
        return false;
    }
    if (chr) {
        console_attach(s, chr);
    }
    return true;
}

static const PropertyDef virtio_serial_props[] = {
    DEFINE_PCI_PROPS(VirtIOConsole, proxy.pci),
    { .name = NULL },
};

static const PropertyDef virtio_console_props[] = {
    DEFINE_PCI_PROPS(VirtIOConsole, proxy.pci),
    DEFINE_PROP("chardev", PROP_STRING, VirtIOConsole, chardev, NULL,
                "character device of the console port (hvc0)"),
    { .name = NULL },
};

const DeviceClass virtio_serial_pci_class = {
    .name = "virtio-serial-pci",
    .desc = "virtio console with one port (add -device virtconsole,chardev=ID)",
    .instance_size = sizeof(VirtIOConsole),
    .props = virtio_serial_props,
    .user_creatable = true,
    .realize = virtio_console_realize,
    .reset = virtio_console_reset,
    .unrealize = virtio_console_unrealize,
    .vmsd = &virtio_console_vmsd,
};

const DeviceClass virtio_console_pci_class = {
    .name = "virtio-console-pci",
    .desc = "virtio console on a chardev (virtio-serial-pci + virtconsole in one)",
    .instance_size = sizeof(VirtIOConsole),
    .props = virtio_console_props,
    .user_creatable = true,
    .realize = virtio_console_realize,
    .reset = virtio_console_reset,
    .unrealize = virtio_console_unrealize,
    .vmsd = &virtio_console_vmsd,
};

/* ---- virtconsole: the port on the last virtio-serial-pci ---- */

static bool virtconsole_realize(DeviceState *dev, Machine *m, Error **errp)
{
    VirtConsolePort *p = (VirtConsolePort *)dev;
    VirtIOConsole *con = NULL;
    Chardev *chr;

    if (!p->chardev) {
        error_setg(errp, "chardev= is required");
        return false;
    }
    chr = machine_find_chardev(m, p->chardev);
    if (!chr) {
        error_setg(errp, "chardev=%s: no -chardev with that id", p->chardev);
        return false;
    }
    for (guint i = m->devices ? m->devices->len : 0; i > 0; i--) {
        DeviceState *d = g_ptr_array_index(m->devices, i - 1);
        if (d->cls == &virtio_serial_pci_class) {
            con = (VirtIOConsole *)d;
            break;
        }
    }
    if (!con) {
        error_setg(errp, "needs a -device virtio-serial-pci before it");
        return false;
    }
    if (con->has_port) {
        error_setg(errp, "the virtio-serial-pci before it already has its one port");
        return false;
    }
    console_attach(con, chr);
    p->con = con;
    return true;
}

static void virtconsole_unrealize(DeviceState *dev)
{
    VirtConsolePort *p = (VirtConsolePort *)dev;

    /* Unrealized before the virtio-serial-pci it sits on (reverse creation order). */
    if (p->con) {
        console_detach(p->con);
    }
}

static const PropertyDef virtconsole_props[] = {
    DEFINE_PROP("chardev", PROP_STRING, VirtConsolePort, chardev, NULL,
                "character device of the console port (hvc0)"),
    { .name = NULL },
};

const DeviceClass virtconsole_class = {
    .name = "virtconsole",
    .desc = "console port (hvc0) on the preceding virtio-serial-pci",
    .instance_size = sizeof(VirtConsolePort),
    .props = virtconsole_props,
    .user_creatable = true,
    .realize = virtconsole_realize,
    .unrealize = virtconsole_unrealize,
};
