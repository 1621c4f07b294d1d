/*
 * isa-debug-exit: a guest write of v ends Sen with exit status (v << 1) | 1, as QEMU does
 * (so a test guest can never fake a clean exit 0).  Reads return 0.
 */
#include <inttypes.h>
#include "sen/device.h"
#include "sen/machine.h"
#include "sen/memory.h"

typedef struct DebugExitState {
    DeviceState parent;
    uint32_t iobase;
    uint32_t iosize;
    Machine *m;
    bool mapped;
} DebugExitState;

static uint64_t debug_exit_read(void *opaque, uint64_t offset, unsigned size)
{
    return 0;
}

static void debug_exit_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    DebugExitState *s = opaque;

    machine_request_shutdown(s->m, SHUTDOWN_CAUSE_GUEST_SHUTDOWN, (int)((value << 1) | 1));
}

static const IoOps debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
};

static bool debug_exit_realize(DeviceState *dev, Machine *m, Error **errp)
{
    DebugExitState *s = (DebugExitState *)dev;

    if (s->iosize == 0 || s->iobase > 0xffff || s->iosize > 0x10000 - s->iobase) {
        error_setg(errp, "iobase=0x%" PRIx32 ",iosize=0x%" PRIx32
                   " does not fit in the 64 KiB I/O space", s->iobase, s->iosize);
        return false;
    }
    s->m = m;
    if (!io_space_add(m->pio, s->iobase, s->iosize, &debug_exit_ops, s, "isa-debug-exit",
                      errp)) {
        return false;
    }
    s->mapped = true;
    return true;
}

static void debug_exit_unrealize(DeviceState *dev)
{
    DebugExitState *s = (DebugExitState *)dev;

    if (s->mapped) {
        io_space_del(s->m->pio, s->iobase);
    }
}

static const PropertyDef debug_exit_props[] = {
    DEFINE_PROP("iobase", PROP_U32, DebugExitState, iobase, "0x501", "I/O port base"),
    DEFINE_PROP("iosize", PROP_U32, DebugExitState, iosize, "0x02", "I/O range length"),
    { .name = NULL },
};

const DeviceClass isa_debug_exit_class = {
    .name = "isa-debug-exit",
    .desc = "exit with status (value << 1) | 1 on a guest write (for tests)",
    .instance_size = sizeof(DebugExitState),
    .props = debug_exit_props,
    .user_creatable = true,
    .realize = debug_exit_realize,
    .unrealize = debug_exit_unrealize,
};
