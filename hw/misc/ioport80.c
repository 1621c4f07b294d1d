/*
 * ioport80: the POST diagnostic port.  Linux uses outb to 0x80 as its I/O delay, so the
 * port must exist (and not fault to userspace logging).  Writes are ignored; reads are
 * all-ones, as in QEMU.
 */
#include "sen/device.h"
#include "sen/machine.h"
#include "sen/memory.h"

typedef struct Ioport80State {
    DeviceState parent;
    Machine *m;
    bool mapped;
} Ioport80State;

static uint64_t ioport80_read(void *opaque, uint64_t offset, unsigned size)
{
    return UINT64_MAX;
}

static void ioport80_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
}

static const IoOps ioport80_ops = {
    .read = ioport80_read,
    .write = ioport80_write,
};

static bool ioport80_realize(DeviceState *dev, Machine *m, Error **errp)
{
    Ioport80State *s = (Ioport80State *)dev;

    s->m = m;
    if (!io_space_add(m->pio, 0x80, 1, &ioport80_ops, s, "ioport80", errp)) {
        return false;
    }
    s->mapped = true;
    return true;
}

static void ioport80_unrealize(DeviceState *dev)
{
    Ioport80State *s = (Ioport80State *)dev;

    if (s->mapped) {
        io_space_del(s->m->pio, 0x80);
    }
}

const DeviceClass ioport80_class = {
    .name = "ioport80",
    .desc = "POST code port 0x80 (I/O delay)",
    .instance_size = sizeof(Ioport80State),
    .realize = ioport80_realize,
    .unrealize = ioport80_unrealize,
};
