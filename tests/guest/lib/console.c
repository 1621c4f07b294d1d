/* COM1 output, formatting, locks, and the exit paths. */
#include "guest.h"

#define COM1 0x3f8
#define LSR_THRE 0x20

/* Serialises whole printf calls across CPUs, so lines from APs do not interleave. */
static Spinlock console_lock;

void guest_io_delay(void)
{
    (void)inb(COM1 + 5);
}

void guest_delay(unsigned n)
{
    while (n--) {
        guest_io_delay();
    }
}

void spin_lock(Spinlock *l)
{
    uint32_t one = 1;
    for (;;) {
        __asm__ volatile("xchg %0, %1" : "+r"(one), "+m"(l->v) : : "memory");
        if (!one) {
            return;
        }
        while (l->v) {
            cpu_relax();
        }
        one = 1;
    }
}

void spin_unlock(Spinlock *l)
{
    barrier();
    l->v = 0;
}

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--) {
        *p++ = (unsigned char)c;
    }
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) {
        *p++ = *q++;
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++) {
        if (*p != *q) {
            return *p - *q;
        }
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a) {
            return (unsigned char)*a - (unsigned char)*b;
        }
    }
    return 0;
}

void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0x07); /* FIFO on, cleared */
    outb(COM1 + 4, 0x03); /* DTR | RTS, OUT2 off: no IRQ unless a test asks */
}

void serial_putc(char c)
{
    /* Bounded: a UART that never drains must not hang the guest. */
    for (unsigned i = 0; i < 100000; i++) {
        if (inb(COM1 + 5) & LSR_THRE) {
            break;
        }
    }
    outb(COM1, (uint8_t)c);
}

typedef struct {
    char *buf;
    size_t size, len;
} OutBuf;

static void out_char(OutBuf *o, char c)
{
    if (o->len + 1 < o->size) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void out_number(OutBuf *o, uint64_t v, unsigned base, bool upper, bool neg,
                       unsigned width, char pad)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    unsigned n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg) {
        if (pad == '0') {
            out_char(o, '-');
        } else {
            tmp[n++] = '-';
        }
        width = width ? width - 1 : 0;
    }
    for (unsigned i = n; i < width; i++) {
        out_char(o, pad);
    }
    while (n) {
        out_char(o, tmp[--n]);
    }
}

int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    OutBuf o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_char(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        unsigned width = 0, lng = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (unsigned)(*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            out_number(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            out_number(&o, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad);
            break;
        }
        case 'p':
            out_char(&o, '0');
            out_char(&o, 'x');
            out_number(&o, (uintptr_t)va_arg(ap, void *), 16, false, false, width, pad);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) {
                s = "(null)";
            }
            size_t n = strlen(s);
            for (size_t i = n; i < width; i++) {
                out_char(&o, ' ');
            }
            while (*s) {
                out_char(&o, *s++);
            }
            break;
        }
        case 'c':
            out_char(&o, (char)va_arg(ap, int));
            break;
        case '%':
            out_char(&o, '%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            out_char(&o, '%');
            out_char(&o, *fmt);
        }
    }
    if (size) {
        buf[o.len < size ? o.len : size - 1] = '\0';
    }
    return (int)o.len;
}

int guest_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = guest_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

static void console_write(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n') {
            serial_putc('\r');
        }
        serial_putc(*s);
    }
}

void guest_printf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    guest_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    spin_lock(&console_lock);
    console_write(buf);
    spin_unlock(&console_lock);
}

void guest_exit(uint32_t code)
{
    cli();
    /* QEMU's isa-debug-exit default iobase, then the other common one (iosize 4). */
    outb(0x501, (uint8_t)code);
    outl(0xf4, code);
    /* No exit device: the runner's timeout reports it. */
    for (;;) {
        __asm__ volatile("hlt");
    }
}

void guest_pass(void)
{
    guest_printf("PASS\n");
    guest_exit(GUEST_EXIT_PASS);
}

void guest_fail(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    guest_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* Failing paths may run with the lock held (an exception inside printf): take it over. */
    console_lock.v = 0;
    guest_printf("FAIL: %s\n", buf);
    guest_exit(GUEST_EXIT_FAIL);
}
