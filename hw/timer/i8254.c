/*
 * i8254 PIT in userspace, counting only, for -machine kernel-irqchip=split (KVM refuses
 * its in-kernel PIT without its in-kernel PIC).  Guests use it to measure time: firmware
 * and kernels calibrate the TSC against channel 2 (gate and OUT through port 0x61), the
 * guest kit times the PM timer against channel 0.
 *
 * Ports 0x40-0x42 (channel data), 0x43 (control word, counter latch, read-back), 0x61
 * (bit 0 channel 2 gate, bit 1 speaker data, bit 4 refresh toggle, bit 5 channel 2 OUT).
 * Counters run at 1.193182 MHz of virtual time from the moment a count is written; modes
 * 0-5 count as on the 8254 (mode 3 by twos).  What is NOT modelled: the channel 0 IRQ 0
 * (no timer interrupt is raised: with split, guests take their ticks from the LAPIC
 * timer), gate-low pauses (the gate only restarts channel 2 on its rising edge), BCD
 * counting (the bit is stored and read back).  docs/machines.md says so.
 */
#include "hw/core/device-list.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

#define PIT_FREQ        1193182
#define PIT_BASE        0x40
#define PIT_CTRL        3
#define PORT61          0x61

#define RW_LATCHED      0
#define RW_LSB          1
#define RW_MSB          2
#define RW_WORD         3   /* LSB then MSB */

typedef struct PitChannel {
    uint32_t count;          /* reload value, 1..65536 (a written 0 is 65536) */
    int64_t load_ns;         /* virtual time the count was loaded */
    uint8_t mode, rw_mode, bcd;
    uint8_t write_lsb_pending; /* RW_WORD: the LSB is written, the MSB is next */
    uint8_t write_lsb;
    uint8_t read_msb_next;   /* RW_WORD: the next read returns the MSB */
    uint8_t latched;         /* a latched count waits: 0, or its RW_* read sequence */
    uint16_t latch;
    uint8_t status_latched;
    uint8_t status;
} PitChannel;

typedef struct PitState {
    DeviceState qdev;
    Machine *m;
    bool pio_pit, pio_61;
    PitChannel ch[3];
    uint8_t gate2, speaker;
} PitState;

static int64_t now_ns(PitState *s)
{
    return virt_clock_get_ns(s->m->clock);
}

static uint64_t ticks_since_load(PitState *s, const PitChannel *c)
{
    int64_t ns = now_ns(s) - c->load_ns;
    return ns <= 0 ? 0 : (uint64_t)(((__int128)ns * PIT_FREQ) / NS_PER_SEC);
}

static uint16_t counter_value(PitState *s, const PitChannel *c)
{
    uint64_t d = ticks_since_load(s, c);
    switch (c->mode) {
    case 2:
        return (uint16_t)(c->count - d % c->count);
    case 3:
        return (uint16_t)(c->count - (2 * d) % c->count);
    default: /* 0, 1, 4, 5: count down once, then wrap through 0xffff */
        return (uint16_t)(c->count - d);
    }
}

static bool channel_out(PitState *s, const PitChannel *c)
{
    uint64_t d = ticks_since_load(s, c);
    switch (c->mode) {
    case 0:
    case 1:
        return d >= c->count;
    case 2:
        return d % c->count != c->count - 1;
    case 3:
        return d % c->count < (c->count + 1) / 2;
    default: /* 4, 5: a one-tick low pulse at terminal count */
        return d != c->count;
    }
}

static void load_count(PitState *s, PitChannel *c, uint32_t val)
{
    c->count = val ? val : 0x10000;
    c->load_ns = now_ns(s);
}

static void latch_count(PitState *s, PitChannel *c)
{
    if (!c->latched) {
        c->latch = counter_value(s, c);
        c->latched = c->rw_mode;
    }
}

static void latch_status(PitState *s, PitChannel *c)
{
    if (!c->status_latched) {
        c->status = (uint8_t)((channel_out(s, c) ? 0x80 : 0) | c->rw_mode << 4 |
                              c->mode << 1 | c->bcd);
        c->status_latched = 1;
    }
}

static void control_write(PitState *s, uint8_t val)
{
    unsigned sel = val >> 6;
    if (sel == 3) { /* read-back: bit 5 clear latches counts, bit 4 clear statuses */
        for (unsigned i = 0; i < 3; i++) {
            if (val & (2u << i)) {
                if (!(val & 0x20)) {
                    latch_count(s, &s->ch[i]);
                }
                if (!(val & 0x10)) {
                    latch_status(s, &s->ch[i]);
                }
            }
        }
        return;
    }
    PitChannel *c = &s->ch[sel];
    unsigned access = (val >> 4) & 3;
    if (access == RW_LATCHED) {
        latch_count(s, c);
        return;
    }
    c->rw_mode = (uint8_t)access;
    c->mode = (val >> 1) & 7;
    if (c->mode > 5) {
        c->mode -= 4; /* 6 and 7 are aliases of 2 and 3 */
    }
    c->bcd = val & 1;
    c->write_lsb_pending = 0;
    c->read_msb_next = 0;
    c->latched = 0;
}

static void data_write(PitState *s, PitChannel *c, uint8_t val)
{
    switch (c->rw_mode) {
    case RW_LSB:
        load_count(s, c, val);
        break;
    case RW_MSB:
        load_count(s, c, (uint32_t)val << 8);
        break;
    case RW_WORD:
        if (!c->write_lsb_pending) {
            c->write_lsb = val;
            c->write_lsb_pending = 1;
        } else {
            load_count(s, c, c->write_lsb | (uint32_t)val << 8);
            c->write_lsb_pending = 0;
        }
        break;
    default:
        break; /* no access mode programmed yet */
    }
}

/* One byte of a 16-bit value in access mode rw; *msb_next tracks RW_WORD's order. */
static uint8_t word_byte(uint16_t v, uint8_t rw, uint8_t *msb_next, bool *done)
{
    *done = true;
    if (rw == RW_MSB) {
        return v >> 8;
    }
    if (rw == RW_WORD) {
        if (*msb_next) {
            *msb_next = 0;
            return v >> 8;
        }
        *msb_next = 1;
        *done = false;
    }
    return v & 0xff;
}

static uint8_t data_read(PitState *s, PitChannel *c)
{
    bool done;
    if (c->status_latched) {
        c->status_latched = 0;
        return c->status;
    }
    if (c->latched) {
        uint8_t b = word_byte(c->latch, c->latched, &c->read_msb_next, &done);
        if (done) {
            c->latched = 0;
        }
        return b;
    }
    return word_byte(counter_value(s, c), c->rw_mode, &c->read_msb_next, &done);
}

static uint64_t pit_read(void *opaque, uint64_t off, unsigned size)
{
    PitState *s = opaque;
    if (size != 1 || off == PIT_CTRL) {
        return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
    }
    return data_read(s, &s->ch[off]);
}

static void pit_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    PitState *s = opaque;
    if (size != 1) {
        return;
    }
    if (off == PIT_CTRL) {
        control_write(s, (uint8_t)val);
    } else {
        data_write(s, &s->ch[off], (uint8_t)val);
    }
}

static uint64_t port61_read(void *opaque, uint64_t off, unsigned size)
{
    PitState *s = opaque;
    /* refresh request toggles every 15.085 us, as on a PC (some delay loops poll it) */
    unsigned refresh = (unsigned)((now_ns(s) / 15085) & 1);
    return (uint64_t)(s->gate2 | s->speaker << 1 | refresh << 4 |
                      (channel_out(s, &s->ch[2]) ? 1u << 5 : 0));
}

static void port61_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    PitState *s = opaque;
    uint8_t gate = val & 1;
    if (gate && !s->gate2) {
        s->ch[2].load_ns = now_ns(s); /* rising gate: channel 2 starts (again) */
    }
    s->gate2 = gate;
    s->speaker = (val >> 1) & 1;
}

static const IoOps pit_ops = { .read = pit_read, .write = pit_write };
static const IoOps port61_ops = { .read = port61_read, .write = port61_write };

static void pit_reset(DeviceState *dev)
{
    PitState *s = (PitState *)dev;
    for (unsigned i = 0; i < 3; i++) {
        s->ch[i] = (PitChannel){ .count = 0x10000, .mode = 3, .rw_mode = RW_WORD,
                                 .load_ns = s->m ? now_ns(s) : 0 };
    }
    s->gate2 = s->speaker = 0;
}

static bool pit_post_load(void *opaque, int version_id, Error **errp)
{
    PitState *s = opaque;
    for (unsigned i = 0; i < 3; i++) {
        PitChannel *c = &s->ch[i];
        if (c->count == 0 || c->count > 0x10000 || c->mode > 5 || c->rw_mode > RW_WORD ||
            c->latched > RW_WORD) {
            error_setg(errp, "i8254: channel %u state out of range", i);
            return false;
        }
    }
    s->gate2 &= 1;
    s->speaker &= 1;
    return true;
}

static const VMStateField channel_fields[] = {
    VMSTATE_UINT32(count, PitChannel),
    VMSTATE_INT64(load_ns, PitChannel),
    VMSTATE_UINT8(mode, PitChannel),
    VMSTATE_UINT8(rw_mode, PitChannel),
    VMSTATE_UINT8(bcd, PitChannel),
    VMSTATE_UINT8(write_lsb_pending, PitChannel),
    VMSTATE_UINT8(write_lsb, PitChannel),
    VMSTATE_UINT8(read_msb_next, PitChannel),
    VMSTATE_UINT8(latched, PitChannel),
    VMSTATE_UINT16(latch, PitChannel),
    VMSTATE_UINT8(status_latched, PitChannel),
    VMSTATE_UINT8(status, PitChannel),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc channel_vmsd = {
    .name = "i8254/channel", .version_id = 1, .minimum_version_id = 1,
    .fields = channel_fields,
};

static const VMStateField pit_fields[] = {
    VMSTATE_STRUCT_ARRAY(ch, PitState, 3, channel_vmsd, PitChannel),
    VMSTATE_UINT8(gate2, PitState),
    VMSTATE_UINT8(speaker, PitState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc pit_vmsd = {
    .name = "i8254", .version_id = 1, .minimum_version_id = 1, .fields = pit_fields,
    .post_load = pit_post_load,
};

static void pit_unrealize(DeviceState *dev)
{
    PitState *s = (PitState *)dev;
    if (s->pio_61) {
        io_space_del(s->m->pio, PORT61);
    }
    if (s->pio_pit) {
        io_space_del(s->m->pio, PIT_BASE);
    }
}

static bool pit_realize(DeviceState *dev, Machine *m, Error **errp)
{
    PitState *s = (PitState *)dev;
    s->m = m;
    if (!io_space_add(m->pio, PIT_BASE, 4, &pit_ops, s, "i8254", errp)) {
        return false;
    }
    s->pio_pit = true;
    if (!io_space_add(m->pio, PORT61, 1, &port61_ops, s, "i8254 (port 0x61)", errp)) {
        pit_unrealize(dev);
        return false;
    }
    s->pio_61 = true;
    pit_reset(dev);
    return true;
}

const DeviceClass i8254_class = {
    .name = "i8254",
    .desc = "PIT counting in userspace (kernel-irqchip=split; no IRQ 0)",
    .instance_size = sizeof(PitState),
    .user_creatable = false,
    .realize = pit_realize,
    .reset = pit_reset,
    .unrealize = pit_unrealize,
    .vmsd = &pit_vmsd,
};
