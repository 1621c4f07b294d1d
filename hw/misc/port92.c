/*
 * port92: system control port A.  Bit 0 going from 0 to 1 is a fast reset; bit 1 is the
 * A20 gate, stored only (Sen's A20 is always enabled).  Reads return what was written,
 * with bit 0 cleared again by the reset.
 */
#include "sen/device.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/vmstate.h"

#define PORT92_RESET 0x01
#define PORT92_A20   0x02

typedef struct Port92State {
    DeviceState parent;
    Machine *m;
    bool mapped;
    uint8_t value;
} Port92State;

static uint64_t port92_read(void *opaque, uint64_t offset, unsigned size)
{
    Port92State *s = opaque;
    return s->value;
}

static void port92_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    Port92State *s = opaque;
    uint8_t old = s->value;

    s->value = value;
    if ((value & PORT92_RESET) && !(old & PORT92_RESET)) {
        machine_request_reset(s->m, SHUTDOWN_CAUSE_GUEST_RESET);
    }
}

static const IoOps port92_ops = {
    .read = port92_read,
    .write = port92_write,
};

static void port92_reset(DeviceState *dev)
{
    Port92State *s = (Port92State *)dev;

    s->value = (s->value & ~PORT92_RESET) | PORT92_A20;
}

static const VMStateField port92_fields[] = {
    VMSTATE_UINT8(value, Port92State),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc port92_vmsd = {
    .name = "port92",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = port92_fields,
};

static bool port92_realize(DeviceState *dev, Machine *m, Error **errp)
{
    Port92State *s = (Port92State *)dev;

    s->m = m;
    if (!io_space_add(m->pio, 0x92, 1, &port92_ops, s, "port92", errp)) {
        return false;
    }
    s->mapped = true;
    port92_reset(dev);
    return true;
}

static void port92_unrealize(DeviceState *dev)
{
    Port92State *s = (Port92State *)dev;

    if (s->mapped) {
        io_space_del(s->m->pio, 0x92);
    }
}

const DeviceClass port92_class = {
    .name = "port92",
    .desc = "system control port A (fast reset, A20)",
    .instance_size = sizeof(Port92State),
    .realize = port92_realize,
    .reset = port92_reset,
    .unrealize = port92_unrealize,
    .vmsd = &port92_vmsd,
};
