/*
 * i8042: the PS/2 keyboard controller, without keyboard or mouse behind it.
 *
 * Enough for firmware and Linux probing and for the two ways a PC guest resets through
 * it: command 0xFE (pulse the reset line) and writing the output port with bit 0 clear.
 * Keyboard commands get the replies of a keyboard that is present but never typed on.
 * Replies are queued in the output buffer and read from port 0x60; IRQ 1 is raised
 * while a byte waits and the command byte enables it.
 */
#include "sen/device.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/vmstate.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64

#define STAT_OBF    0x01 /* output buffer full */
#define STAT_SYS    0x04 /* system flag (POST passed) */
#define STAT_CMD    0x08 /* last write went to the command port */
#define STAT_UNLOCK 0x10 /* keyboard not inhibited */
#define STAT_AUXOBF 0x20 /* the byte waiting comes from the aux port */

#define CTR_KBDINT  0x01
#define CTR_AUXINT  0x02
#define CTR_SYS     0x04
#define CTR_KBDDIS  0x10
#define CTR_AUXDIS  0x20

#define OUT_RESET   0x01 /* 0 = CPU held in reset */
#define OUT_A20     0x02

#define I8042_QUEUE 16

typedef struct I8042State {
    DeviceState parent;
    Machine *m;
    IrqLine irq_kbd;
    RateLimit rl;
    int mapped; /* ranges claimed, for unrealize */
    int irq_level;

    uint8_t status;
    uint8_t ctr;      /* command byte */
    uint8_t outport;
    uint8_t pending;  /* command waiting for its data byte, 0 = none */
    uint8_t queue[I8042_QUEUE];
    bool queue_aux[I8042_QUEUE];
    uint32_t q_head, q_count;
} I8042State;

static void i8042_update(I8042State *s)
{
    s->status &= ~(STAT_OBF | STAT_AUXOBF);
    if (s->q_count) {
        s->status |= STAT_OBF;
        if (s->queue_aux[s->q_head]) {
            s->status |= STAT_AUXOBF;
        }
    }
    int level = s->q_count && !s->queue_aux[s->q_head] && (s->ctr & CTR_KBDINT);
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(&s->irq_kbd, level);
    }
}

static void i8042_queue(I8042State *s, uint8_t byte, bool aux)
{
    if (s->q_count == I8042_QUEUE) {
        log_guest_error(&s->rl, "i8042: output buffer overflow, reply dropped");
        return;
    }
    unsigned i = (s->q_head + s->q_count) % I8042_QUEUE;
    s->queue[i] = byte;
    s->queue_aux[i] = aux;
    s->q_count++;
}

static void i8042_write_outport(I8042State *s, uint8_t val)
{
    s->outport = val;
    if (!(val & OUT_RESET)) {
        machine_request_reset(s->m, SHUTDOWN_CAUSE_GUEST_RESET);
    }
}

static void i8042_command(I8042State *s, uint8_t cmd)
{
    switch (cmd) {
    case 0x20: /* read command byte */
        i8042_queue(s, s->ctr, false);
        break;
    case 0x60: /* write command byte */
    case 0xd1: /* write output port */
    case 0xd2: /* write keyboard output buffer */
    case 0xd3: /* write aux output buffer */
    case 0xd4: /* write to aux device */
        s->pending = cmd;
        break;
    case 0xa7: /* disable aux */
        s->ctr |= CTR_AUXDIS;
        break;
    case 0xa8: /* enable aux */
        s->ctr &= ~CTR_AUXDIS;
        break;
    case 0xa9: /* aux interface test: 0 = no error */
    case 0xab: /* keyboard interface test */
        i8042_queue(s, 0x00, false);
        break;
    case 0xaa: /* controller self-test */
        s->status |= STAT_SYS;
        i8042_queue(s, 0x55, false);
        break;
    case 0xad: /* disable keyboard */
        s->ctr |= CTR_KBDDIS;
        break;
    case 0xae: /* enable keyboard */
        s->ctr &= ~CTR_KBDDIS;
        break;
    case 0xc0: /* read input port: keyboard not inhibited */
        i8042_queue(s, 0x80, false);
        break;
    case 0xd0: /* read output port */
        i8042_queue(s, s->outport, false);
        break;
    case 0xdd: /* A20 off */
        s->outport &= ~OUT_A20;
        break;
    case 0xdf: /* A20 on */
        s->outport |= OUT_A20;
        break;
    default:
        if ((cmd & 0xf0) == 0xf0) {
            /* Pulse output lines: a 0 in bit 0 pulses the CPU reset line. */
            if (!(cmd & 0x01)) {
                machine_request_reset(s->m, SHUTDOWN_CAUSE_GUEST_RESET);
            }
            break;
        }
        log_guest_error(&s->rl, "i8042: unsupported command 0x%02x", cmd);
        break;
    }
}

/* A byte for the keyboard itself: answer as an idle keyboard would. */
static void i8042_keyboard_command(I8042State *s, uint8_t cmd)
{
    switch (cmd) {
    case 0xee: /* echo */
        i8042_queue(s, 0xee, false);
        break;
    case 0xf2: /* identify: MF2 keyboard */
        i8042_queue(s, 0xfa, false);
        i8042_queue(s, 0xab, false);
        i8042_queue(s, 0x83, false);
        break;
    case 0xff: /* reset: ACK, then self-test passed */
        i8042_queue(s, 0xfa, false);
        i8042_queue(s, 0xaa, false);
        break;
    default:
        i8042_queue(s, 0xfa, false);
        break;
    }
}

static void i8042_write_data(I8042State *s, uint8_t val)
{
    uint8_t cmd = s->pending;

    s->pending = 0;
    switch (cmd) {
    case 0x60:
        s->ctr = val;
        s->status = (s->status & ~STAT_SYS) | (val & CTR_SYS ? STAT_SYS : 0);
        break;
    case 0xd1:
        i8042_write_outport(s, val);
        break;
    case 0xd2:
        i8042_queue(s, val, false);
        break;
    case 0xd3:
        i8042_queue(s, val, true);
        break;
    case 0xd4:
        break; /* no mouse: the byte goes nowhere */
    default:
        i8042_keyboard_command(s, val);
        break;
    }
}

static uint64_t i8042_data_read(void *opaque, uint64_t offset, unsigned size)
{
    I8042State *s = opaque;
    uint8_t val = 0;

    if (s->q_count) {
        val = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % I8042_QUEUE;
        s->q_count--;
    }
    i8042_update(s);
    return val;
}

static void i8042_data_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    I8042State *s = opaque;

    s->status &= ~STAT_CMD;
    i8042_write_data(s, value);
    i8042_update(s);
}

static uint64_t i8042_cmd_read(void *opaque, uint64_t offset, unsigned size)
{
    I8042State *s = opaque;
    return s->status;
}

static void i8042_cmd_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    I8042State *s = opaque;

    s->status |= STAT_CMD;
    s->pending = 0;
    i8042_command(s, value);
    i8042_update(s);
}

static const IoOps i8042_data_ops = {
    .read = i8042_data_read,
    .write = i8042_data_write,
};

static const IoOps i8042_cmd_ops = {
    .read = i8042_cmd_read,
    .write = i8042_cmd_write,
};

static void i8042_reset(DeviceState *dev)
{
    I8042State *s = (I8042State *)dev;

    s->status = STAT_SYS | STAT_UNLOCK;
    s->ctr = CTR_KBDINT | CTR_AUXINT | CTR_SYS;
    s->outport = 0xcc | OUT_A20 | OUT_RESET;
    s->pending = 0;
    s->q_head = s->q_count = 0;
    i8042_update(s);
}

static bool i8042_post_load(void *opaque, int version_id, Error **errp)
{
    I8042State *s = opaque;
    if (s->q_head >= I8042_QUEUE || s->q_count > I8042_QUEUE) {
        error_setg(errp, "output queue head %u / count %u out of range", s->q_head,
                   s->q_count);
        return false;
    }
    s->irq_level = -1; /* drive the line from the loaded queue */
    i8042_update(s);
    return true;
}

static const VMStateField i8042_fields[] = {
    VMSTATE_UINT8(status, I8042State),
    VMSTATE_UINT8(ctr, I8042State),
    VMSTATE_UINT8(outport, I8042State),
    VMSTATE_UINT8(pending, I8042State),
    VMSTATE_UINT8_ARRAY(queue, I8042State, I8042_QUEUE),
    VMSTATE_ARRAY(queue_aux, I8042State, I8042_QUEUE, VMS_BOOL),
    VMSTATE_UINT32(q_head, I8042State),
    VMSTATE_UINT32(q_count, I8042State),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc i8042_vmsd = {
    .name = "i8042",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = i8042_fields,
    .post_load = i8042_post_load,
};

static void i8042_unrealize(DeviceState *dev)
{
    I8042State *s = (I8042State *)dev;

    if (s->mapped > 0) {
        io_space_del(s->m->pio, I8042_DATA_PORT);
    }
    if (s->mapped > 1) {
        io_space_del(s->m->pio, I8042_CMD_PORT);
    }
}

static bool i8042_realize(DeviceState *dev, Machine *m, Error **errp)
{
    I8042State *s = (I8042State *)dev;

    s->m = m;
    s->irq_kbd = machine_irq(m, 1);
    s->irq_level = -1;
    if (!io_space_add(m->pio, I8042_DATA_PORT, 1, &i8042_data_ops, s, "i8042", errp)) {
        return false;
    }
    s->mapped = 1;
    if (!io_space_add(m->pio, I8042_CMD_PORT, 1, &i8042_cmd_ops, s, "i8042", errp)) {
        i8042_unrealize(dev);
        return false;
    }
    s->mapped = 2;
    i8042_reset(dev);
    return true;
}

const DeviceClass i8042_class = {
    .name = "i8042",
    .desc = "PS/2 controller (no keyboard or mouse attached)",
    .instance_size = sizeof(I8042State),
    .realize = i8042_realize,
    .reset = i8042_reset,
    .unrealize = i8042_unrealize,
    .vmsd = &i8042_vmsd,
};
