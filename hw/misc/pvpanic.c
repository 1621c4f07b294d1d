/*
 * pvpanic (ISA): QEMU's paravirtual panic notifier.  One I/O port (ioport=, 0x505 as
 * QEMU): a read returns the events the device supports (events=, PANICKED | CRASH_LOADED
 * by default); a guest write of PANICKED (bit 0) reports a panic, which -action panic=
 * decides about (machine_guest_panicked: GUEST_PANICKED, then pause, shut down or run
 * on); CRASH_LOADED (bit 1) says a crash kernel took over: GUEST_CRASHLOADED (action
 * run), the guest runs on.  PANICKED wins when both are set; other bits are logged
 * (rate-limited) and ignored, as QEMU 7.2's handle_event.  No state to migrate or reset.
 * The DSDT lists it as QEMU's does (Device PEVT, _HID "QEMU0001", its port in _CRS), so
 * a Linux guest's pvpanic driver finds it.
 */
#include <inttypes.h>
#include "sen/device.h"
#include "sen/hw/isa.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "monitor/qapi-generated.h"

#define PVPANIC_PANICKED (1u << 0)
#define PVPANIC_CRASH_LOADED (1u << 1)
#define PVPANIC_EVENTS (PVPANIC_PANICKED | PVPANIC_CRASH_LOADED)

extern const DeviceClass pvpanic_class;

typedef struct PVPanicState {
    DeviceState parent;
    uint16_t ioport;
    uint8_t events;   /* what a read returns */
    Machine *m;
    bool mapped;
    RateLimit rl;     /* unknown event bits */
} PVPanicState;

static uint64_t pvpanic_read(void *opaque, uint64_t offset, unsigned size)
{
    PVPanicState *s = opaque;

    return s->events;
}

/* vCPU thread (or the qtest server), VM lock held. */
static void pvpanic_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    PVPanicState *s = opaque;
    uint8_t event = (uint8_t)value; /* a one-byte register: wider writes give their low byte */

    if (event & ~PVPANIC_EVENTS) {
        log_guest_error(&s->rl, "pvpanic: unknown event 0x%x", event);
    }
    if (event & PVPANIC_PANICKED) {
        machine_guest_panicked(s->m);
    } else if (event & PVPANIC_CRASH_LOADED) {
        qapi_event_send_guest_crashloaded(s->m, "run");
    }
}

static const IoOps pvpanic_ops = {
    .read = pvpanic_read,
    .write = pvpanic_write,
};

static bool pvpanic_realize(DeviceState *dev, Machine *m, Error **errp)
{
    PVPanicState *s = (PVPanicState *)dev;

    s->m = m;
    if (!io_space_add(m->pio, s->ioport, 1, &pvpanic_ops, s, "pvpanic", errp)) {
        return false;
    }
    s->mapped = true;
    return true;
}

static void pvpanic_unrealize(DeviceState *dev)
{
    PVPanicState *s = (PVPanicState *)dev;

    if (s->mapped) {
        io_space_del(s->m->pio, s->ioport);
    }
}

uint16_t pvpanic_port(Machine *m)
{
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *dev = g_ptr_array_index(m->devices, i);
        if (dev->cls == &pvpanic_class) {
            return ((PVPanicState *)dev)->ioport;
        }
    }
    return 0;
}

static const PropertyDef pvpanic_props[] = {
    DEFINE_PROP("ioport", PROP_U16, PVPanicState, ioport, "0x505", "I/O port"),
    DEFINE_PROP("events", PROP_U8, PVPanicState, events, "3",
                "events a read reports: 1 panicked, 2 crash loaded"),
    { .name = NULL },
};

const DeviceClass pvpanic_class = {
    .name = "pvpanic",
    .desc = "paravirtual panic notifier on an I/O port (GUEST_PANICKED, -action panic=)",
    .instance_size = sizeof(PVPanicState),
    .props = pvpanic_props,
    .user_creatable = true,
    .realize = pvpanic_realize,
    .unrealize = pvpanic_unrealize,
};
