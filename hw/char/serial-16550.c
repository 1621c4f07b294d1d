/*
 * isa-serial: a 16550A UART (NS16550A data sheet behaviour).
 *
 * Transmit is instantaneous: a byte written to THR goes to the chardev at once and THR/TEMT
 * read empty again immediately (raising the THRE interrupt if enabled).  Receive has the
 * 16-byte FIFO with trigger levels and the character timeout (4 character times on the
 * virtual clock).  As on a PC, the interrupt reaches the interrupt controller only while
 * MCR.OUT2 is set, and never in loopback mode (OUT2 is then internal).
 */
#include <inttypes.h>
#include "sen/chardev.h"
#include "sen/device.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

enum {
    REG_RBR_THR = 0, REG_IER = 1, REG_IIR_FCR = 2, REG_LCR = 3,
    REG_MCR = 4, REG_LSR = 5, REG_MSR = 6, REG_SCR = 7,
};

#define IER_RDI  0x01 /* received data available (and timeout) */
#define IER_THRI 0x02 /* THR empty */
#define IER_RLSI 0x04 /* receiver line status */
#define IER_MSI  0x08 /* modem status */

#define IIR_NONE 0x01
#define IIR_MSI  0x00
#define IIR_THRI 0x02
#define IIR_RDI  0x04
#define IIR_RLSI 0x06
#define IIR_CTI  0x0c
#define IIR_FIFO 0xc0 /* both bits set when the FIFOs are enabled */

#define FCR_FE   0x01
#define FCR_RFR  0x02
#define FCR_XFR  0x04
#define FCR_DMS  0x08
#define FCR_ITL  0xc0

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_PE   0x04
#define LSR_FE   0x08
#define LSR_BI   0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
#define MSR_DELTAS 0x0f

#define SERIAL_FIFO_LEN 16
#define SERIAL_CLOCK_HZ 115200 /* baud = 115200 / divisor */

typedef struct SerialState {
    DeviceState parent;
    /* properties */
    uint32_t index;
    uint32_t iobase;  /* 0 = from index */
    uint32_t irq_num; /* 0 = from index */
    char *chardev;

    Machine *m;
    IrqLine irq;
    Chardev *chr;
    Timer *timeout_timer;
    RateLimit rl;
    bool mapped;
    int64_t timeout_expire; /* migration: the timeout timer's deadline, -1 = none */

    /* registers */
    uint16_t divisor;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint8_t rbr;            /* last byte read, returned again when the FIFO is empty */
    bool thr_ipending;      /* THRE interrupt latched; reading IIR or writing THR clears */
    bool timeout_ipending;  /* character timeout */
    uint8_t rx[SERIAL_FIFO_LEN];
    uint32_t rx_head, rx_count;
    int irq_level;          /* last level driven, -1 = never */
} SerialState;

static const uint16_t serial_iobase[4] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
static const uint8_t serial_irq[4] = { 4, 3, 4, 3 };

static bool serial_fifo_on(const SerialState *s)
{
    return s->fcr & FCR_FE;
}

static unsigned serial_rx_trigger(const SerialState *s)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };
    return levels[(s->fcr & FCR_ITL) >> 6];
}

/* The highest-priority pending interrupt, as IIR bits 0-3. */
static uint8_t serial_pending(const SerialState *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRS)) {
        return IIR_RLSI;
    }
    if ((s->ier & IER_RDI) && s->timeout_ipending) {
        return IIR_CTI;
    }
    if ((s->ier & IER_RDI) && (s->lsr & LSR_DR) &&
        (!serial_fifo_on(s) || s->rx_count >= serial_rx_trigger(s))) {
        return IIR_RDI;
    }
    if ((s->ier & IER_THRI) && s->thr_ipending) {
        return IIR_THRI;
    }
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS)) {
        return IIR_MSI;
    }
    return IIR_NONE;
}

static void serial_update_irq(SerialState *s)
{
    bool gate = (s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP);
    int level = gate && serial_pending(s) != IIR_NONE;

    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(&s->irq, level);
    }
}

static int64_t serial_char_ns(const SerialState *s)
{
    unsigned bits = 1 + 5 + (s->lcr & 3) + ((s->lcr & 0x08) ? 1 : 0) + ((s->lcr & 4) ? 2 : 1);
    unsigned div = s->divisor ? s->divisor : 1;
    return (int64_t)bits * NS_PER_SEC * div / SERIAL_CLOCK_HZ;
}

/* Character timeout: data waits in the FIFO and nothing moved for 4 character times. */
static void serial_rearm_timeout(SerialState *s)
{
    s->timeout_ipending = false;
    if (!serial_fifo_on(s) || !s->rx_count) {
        if (s->timeout_timer) {
            timer_del(s->timeout_timer);
        }
        return;
    }
    if (!s->timeout_timer) {
        /* No clock (unit tests without one): time out at once. */
        s->timeout_ipending = true;
        return;
    }
    timer_mod(s->timeout_timer, virt_clock_get_ns(s->m->clock) + 4 * serial_char_ns(s));
}

static void serial_timeout(void *opaque)
{
    SerialState *s = opaque;

    if (serial_fifo_on(s) && s->rx_count) {
        s->timeout_ipending = true;
        serial_update_irq(s);
    }
}

static void serial_rx_clear(SerialState *s)
{
    s->rx_head = s->rx_count = 0;
    s->lsr &= ~LSR_DR;
    s->timeout_ipending = false;
    if (s->timeout_timer) {
        timer_del(s->timeout_timer);
    }
}

static void serial_rx_push(SerialState *s, uint8_t c)
{
    unsigned cap = serial_fifo_on(s) ? SERIAL_FIFO_LEN : 1;

    if (s->rx_count < cap) {
        s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO_LEN] = c;
        s->rx_count++;
    } else if (serial_fifo_on(s)) {
        s->lsr |= LSR_OE; /* the FIFO keeps its contents; the new byte is lost */
    } else {
        s->lsr |= LSR_OE; /* without FIFO the new byte overwrites RBR */
        s->rx[s->rx_head] = c;
    }
    s->lsr |= LSR_DR;
}

static uint8_t serial_rx_pop(SerialState *s)
{
    if (!s->rx_count) {
        return s->rbr;
    }
    s->rbr = s->rx[s->rx_head];
    s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_LEN;
    s->rx_count--;
    if (!s->rx_count) {
        s->lsr &= ~LSR_DR;
    }
    serial_rearm_timeout(s);
    if (!(s->mcr & MCR_LOOP)) {
        chardev_accept_input(s->chr);
    }
    return s->rbr;
}

/* Modem inputs: in loopback they follow MCR, otherwise a null-modem with the peer ready. */
static uint8_t serial_modem_lines(const SerialState *s)
{
    if (!(s->mcr & MCR_LOOP)) {
        return MSR_CTS | MSR_DSR | MSR_DCD;
    }
    return ((s->mcr & MCR_DTR) ? MSR_DSR : 0) | ((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
           ((s->mcr & MCR_OUT1) ? MSR_RI : 0) | ((s->mcr & MCR_OUT2) ? MSR_DCD : 0);
}

static void serial_update_msr(SerialState *s)
{
    uint8_t old = s->msr & 0xf0;
    uint8_t now = serial_modem_lines(s);
    uint8_t changed = old ^ now;
    uint8_t delta = s->msr & MSR_DELTAS;

    delta |= (changed & MSR_CTS) ? MSR_DCTS : 0;
    delta |= (changed & MSR_DSR) ? MSR_DDSR : 0;
    delta |= (changed & MSR_DCD) ? MSR_DDCD : 0;
    delta |= ((old & MSR_RI) && !(now & MSR_RI)) ? MSR_TERI : 0; /* trailing edge only */
    s->msr = now | delta;
}

static void serial_transmit(SerialState *s, uint8_t c)
{
    if (s->mcr & MCR_LOOP) {
        serial_rx_push(s, c);
        serial_rearm_timeout(s);
    } else if (s->chr) {
        chardev_write(s->chr, &c, 1);
    }
    /* The byte is gone at once: THR and the shift register are empty again. */
    s->lsr |= LSR_THRE | LSR_TEMT;
    s->thr_ipending = true;
}

static void serial_write_fcr(SerialState *s, uint8_t val)
{
    if ((val ^ s->fcr) & FCR_FE) {
        /* Switching the FIFOs on or off empties them. */
        val |= FCR_RFR | FCR_XFR;
    }
    if (val & FCR_RFR) {
        serial_rx_clear(s);
    }
    /* Other bits only take effect together with FCR0. */
    s->fcr = (val & FCR_FE) ? (val & (FCR_FE | FCR_DMS | FCR_ITL)) : 0;
    serial_rearm_timeout(s);
    chardev_accept_input(s->chr);
}

static uint8_t serial_read_byte(SerialState *s, unsigned reg)
{
    uint8_t val;

    switch (reg) {
    case REG_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            return s->divisor & 0xff;
        }
        val = serial_rx_pop(s);
        break;
    case REG_IER:
        return (s->lcr & LCR_DLAB) ? s->divisor >> 8 : s->ier;
    case REG_IIR_FCR:
        val = serial_pending(s);
        if (val == IIR_THRI) {
            s->thr_ipending = false;
        }
        val |= serial_fifo_on(s) ? IIR_FIFO : 0;
        break;
    case REG_LCR:
        return s->lcr;
    case REG_MCR:
        return s->mcr;
    case REG_LSR:
        val = s->lsr;
        s->lsr &= ~LSR_ERRS;
        break;
    case REG_MSR:
        val = s->msr;
        s->msr &= ~MSR_DELTAS;
        break;
    default:
        return s->scr;
    }
    serial_update_irq(s);
    return val;
}

static void serial_write_byte(SerialState *s, unsigned reg, uint8_t val)
{
    uint8_t old;

    switch (reg) {
    case REG_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (s->divisor & 0xff00) | val;
            return;
        }
        s->thr_ipending = false;
        serial_transmit(s, val);
        break;
    case REG_IER:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (s->divisor & 0x00ff) | (val << 8);
            return;
        }
        old = s->ier;
        s->ier = val & 0x0f;
        /* Enabling the THRE interrupt with THR empty raises it (Linux probes this). */
        if (!(old & IER_THRI) && (s->ier & IER_THRI) && (s->lsr & LSR_THRE)) {
            s->thr_ipending = true;
        }
        break;
    case REG_IIR_FCR:
        serial_write_fcr(s, val);
        break;
    case REG_LCR:
        s->lcr = val;
        return;
    case REG_MCR:
        old = s->mcr;
        s->mcr = val & 0x1f;
        serial_update_msr(s);
        if ((old & MCR_LOOP) && !(s->mcr & MCR_LOOP)) {
            chardev_accept_input(s->chr);
        }
        break;
    case REG_LSR:
    case REG_MSR:
        log_guest_error(&s->rl, "isa-serial@0x%" PRIx32 ": write 0x%02x to read-only %s",
                        s->iobase, val, reg == REG_LSR ? "LSR" : "MSR");
        return;
    default:
        s->scr = val;
        return;
    }
    serial_update_irq(s);
}

/* Wider accesses are split into byte accesses, as the ISA bus does. */
static uint64_t serial_io_read(void *opaque, uint64_t offset, unsigned size)
{
    uint64_t val = 0;

    for (unsigned i = 0; i < size && offset + i < 8; i++) {
        val |= (uint64_t)serial_read_byte(opaque, offset + i) << (8 * i);
    }
    return val;
}

static void serial_io_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    for (unsigned i = 0; i < size && offset + i < 8; i++) {
        serial_write_byte(opaque, offset + i, value >> (8 * i));
    }
}

static const IoOps serial_io_ops = {
    .read = serial_io_read,
    .write = serial_io_write,
};

/* ---- chardev frontend (main thread, VM lock held) ---- */

static size_t serial_can_read(void *opaque)
{
    SerialState *s = opaque;

    if (s->mcr & MCR_LOOP) {
        return 0; /* the receive pin is disconnected in loopback */
    }
    return (serial_fifo_on(s) ? SERIAL_FIFO_LEN : 1) - s->rx_count;
}

static void serial_receive(void *opaque, const uint8_t *buf, size_t len)
{
    SerialState *s = opaque;

    for (size_t i = 0; i < len; i++) {
        serial_rx_push(s, buf[i]);
    }
    serial_rearm_timeout(s);
    serial_update_irq(s);
}

static void serial_reset(DeviceState *dev)
{
    SerialState *s = (SerialState *)dev;

    s->divisor = 12; /* 9600 baud, what firmware leaves behind */
    s->ier = s->lcr = s->mcr = s->scr = s->fcr = s->rbr = 0;
    s->lsr = LSR_THRE | LSR_TEMT;
    s->msr = MSR_CTS | MSR_DSR | MSR_DCD;
    s->thr_ipending = false;
    serial_rx_clear(s);
    serial_update_irq(s);
    chardev_accept_input(s->chr);
}

static bool serial_pre_save(void *opaque, Error **errp)
{
    SerialState *s = opaque;
    s->timeout_expire = s->timeout_timer ? timer_expire_time(s->timeout_timer) : -1;
    return true;
}

static bool serial_post_load(void *opaque, int version_id, Error **errp)
{
    SerialState *s = opaque;
    if (s->rx_head >= SERIAL_FIFO_LEN || s->rx_count > SERIAL_FIFO_LEN) {
        error_setg(errp, "receive FIFO head %u / count %u out of range", s->rx_head,
                   s->rx_count);
        return false;
    }
    if (s->timeout_timer) {
        if (s->timeout_expire >= 0) {
            timer_mod(s->timeout_timer, s->timeout_expire);
        } else {
            timer_del(s->timeout_timer);
        }
    }
    s->irq_level = -1; /* drive the line from the loaded registers */
    serial_update_irq(s);
    chardev_accept_input(s->chr);
    return true;
}

static const VMStateField serial_fields[] = {
    VMSTATE_UINT16(divisor, SerialState),
    VMSTATE_UINT8(ier, SerialState),
    VMSTATE_UINT8(lcr, SerialState),
    VMSTATE_UINT8(mcr, SerialState),
    VMSTATE_UINT8(lsr, SerialState),
    VMSTATE_UINT8(msr, SerialState),
    VMSTATE_UINT8(scr, SerialState),
    VMSTATE_UINT8(fcr, SerialState),
    VMSTATE_UINT8(rbr, SerialState),
    VMSTATE_BOOL(thr_ipending, SerialState),
    VMSTATE_BOOL(timeout_ipending, SerialState),
    VMSTATE_UINT8_ARRAY(rx, SerialState, SERIAL_FIFO_LEN),
    VMSTATE_UINT32(rx_head, SerialState),
    VMSTATE_UINT32(rx_count, SerialState),
    VMSTATE_INT64(timeout_expire, SerialState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc serial_vmsd = {
    .name = "isa-serial",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = serial_fields,
    .pre_save = serial_pre_save,
    .post_load = serial_post_load,
};

static void serial_unrealize(DeviceState *dev)
{
    SerialState *s = (SerialState *)dev;

    if (s->chr) {
        chardev_set_handlers(s->chr, NULL, NULL, NULL, NULL);
    }
    if (s->mapped) {
        io_space_del(s->m->pio, s->iobase);
    }
    if (s->timeout_timer) {
        timer_free(s->timeout_timer);
    }
}

static bool serial_realize(DeviceState *dev, Machine *m, Error **errp)
{
    SerialState *s = (SerialState *)dev;

    if (s->index >= 4) {
        error_setg(errp, "index=%" PRIu32 " is out of range (0..3)", s->index);
        return false;
    }
    if (!s->iobase) {
        s->iobase = serial_iobase[s->index];
    }
    if (!s->irq_num) {
        s->irq_num = serial_irq[s->index];
    }
    if (s->iobase > 0xfff8) {
        error_setg(errp, "iobase=0x%" PRIx32 " is out of range (max 0xfff8)",
                   s->iobase);
        return false;
    }
    if (s->irq_num > 15) {
        error_setg(errp, "irq=%" PRIu32 " is out of range (1..15)", s->irq_num);
        return false;
    }
    if (s->chardev) {
        s->chr = machine_find_chardev(m, s->chardev);
        if (!s->chr) {
            error_setg(errp, "chardev '%s' not found", s->chardev);
            return false;
        }
    }
    s->m = m;
    s->irq = machine_irq(m, s->irq_num);
    s->irq_level = -1;
    if (!io_space_add(m->pio, s->iobase, 8, &serial_io_ops, s, "isa-serial", errp)) {
        return false;
    }
    s->mapped = true;
    if (m->clock) {
        s->timeout_timer = timer_new(m->clock, serial_timeout, s);
    }
    serial_reset(dev);
    if (s->chr) {
        chardev_set_handlers(s->chr, serial_can_read, serial_receive, NULL, s);
    }
    return true;
}

static const PropertyDef serial_props[] = {
    DEFINE_PROP("index", PROP_U32, SerialState, index, "0", "COM port number 0..3"),
    DEFINE_PROP("iobase", PROP_U32, SerialState, iobase, NULL,
                "I/O base (default from index: 0x3f8, 0x2f8, 0x3e8, 0x2e8)"),
    DEFINE_PROP("irq", PROP_U32, SerialState, irq_num, NULL,
                "IRQ line (default from index: 4, 3, 4, 3)"),
    DEFINE_PROP("chardev", PROP_STRING, SerialState, chardev, NULL,
                "id of the character backend (none: output discarded)"),
    { .name = NULL },
};

const DeviceClass isa_serial_class = {
    .name = "isa-serial",
    .desc = "16550A UART",
    .instance_size = sizeof(SerialState),
    .props = serial_props,
    .user_creatable = true,
    .realize = serial_realize,
    .reset = serial_reset,
    .unrealize = serial_unrealize,
    .vmsd = &serial_vmsd,
};
