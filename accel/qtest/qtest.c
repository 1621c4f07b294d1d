/*
 * The qtest accelerator: no guest CPU.  A test drives the machine over a chardev with
 * QEMU's qtest text protocol (docs/qtest.md): port and memory accesses, the virtual clock
 * (manual under this accelerator) and interrupt-line observation.  Device models are thus
 * tested from outside, deterministically, without KVM.
 *
 * Locking: chardev input and connection events arrive on the main thread with the VM lock
 * already held (the machine creates its chardevs with &m->lock), so every command runs
 * under the VM lock, as device handlers and timers require.  set_irq is called by devices
 * with the lock held too, which is what serialises IRQ lines with command replies.
 *
 * The peer is untrusted input: every line gets exactly one reply, malformed ones a
 * "FAIL ..." reply, and no input can crash or stall the VMM.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "accel/accel.h"
#include "sen/chardev.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/timer.h"

enum {
    QTEST_MAX_GSI = 256,
    /* A longer line is discarded (answered with FAIL) instead of buffered. */
    QTEST_MAX_LINE = 4 * 1024 * 1024,
    /*
     * read/b64read replies must fit the chardev's output buffer (64 KiB) in case the
     * peer is slow to read; libqtest splits larger transfers into such chunks.
     */
    QTEST_MAX_READ = 16 * 1024,
    /* write/memset beyond RAM go byte by byte through MMIO dispatch: keep that bounded. */
    QTEST_MAX_SLOW_WRITE = 1024 * 1024,
    QTEST_PAGE = 4096,
};

typedef struct QtestState {
    Machine *m;
    Chardev *chr;
    GString *inbuf;
    bool discarding;      /* inside an over-long line, dropping until its newline */
    FILE *log;
    GTimer *log_timer;
    bool intercept;       /* IRQ level changes are reported to the peer */
    uint8_t irq_levels[QTEST_MAX_GSI];
} QtestState;

/* ---- replies and the log ---- */

static void qtest_log_line(QtestState *s, char dir, const char *line)
{
    if (s->log) {
        fprintf(s->log, "[%c +%.6f] %s\n", dir, g_timer_elapsed(s->log_timer, NULL), line);
    }
}

static void G_GNUC_PRINTF(2, 3) qtest_reply(QtestState *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    qtest_log_line(s, 'S', line);
    g_autofree char *wire = g_strconcat(line, "\n", NULL);
    chardev_write(s->chr, (const uint8_t *)wire, strlen(wire));
}

/* Echoes peer-supplied text back in a FAIL line without control bytes. */
static char *qtest_printable(const char *str)
{
    GString *out = g_string_new(NULL);
    for (const char *p = str; *p && out->len < 64; p++) {
        g_string_append_c(out, g_ascii_isprint(*p) ? *p : '?');
    }
    return g_string_free(out, FALSE);
}

/* ---- argument parsing: each failure sends the FAIL reply itself ---- */

/* Integers as strtoul(base 0) reads them: decimal, 0x hex, 0 octal; a leading '-' wraps. */
static bool qtest_parse_u64(QtestState *s, const char *cmd, const char *what,
                            const char *str, uint64_t *out)
{
    char *end = NULL;

    errno = 0;
    uint64_t v = g_ascii_strtoull(str, &end, 0);
    if (!*str || g_ascii_isspace(*str) || *end || errno) {
        g_autofree char *shown = qtest_printable(str);
        qtest_reply(s, "FAIL %s: invalid %s '%s'", cmd, what, shown);
        return false;
    }
    *out = v;
    return true;
}

static bool qtest_parse_ns(QtestState *s, const char *cmd, const char *str, int64_t *out)
{
    uint64_t v;
    if (!qtest_parse_u64(s, cmd, "NS", str, &v)) {
        return false;
    }
    if (v > INT64_MAX) {
        qtest_reply(s, "FAIL %s: NS %s out of range", cmd, str);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool qtest_parse_port(QtestState *s, const char *cmd, const char *str, uint64_t *out)
{
    if (!qtest_parse_u64(s, cmd, "ADDR", str, out)) {
        return false;
    }
    if (*out > 0xffff) {
        qtest_reply(s, "FAIL %s: port 0x%" PRIx64 " beyond 0xffff", cmd, *out);
        return false;
    }
    return true;
}

/* Size letter of in/out/read/write commands: b w l q. */
static unsigned qtest_size_of(char c)
{
    switch (c) {
    case 'b':
        return 1;
    case 'w':
        return 2;
    case 'l':
        return 4;
    case 'q':
        return 8;
    default:
        return 0;
    }
}

/* ---- guest-physical accesses: RAM, else MMIO, else all-ones / dropped ---- */

static void qtest_phys_read(QtestState *s, uint64_t addr, uint8_t *buf, uint64_t len)
{
    while (len) {
        uint64_t chunk = MIN(len, QTEST_PAGE - (addr % QTEST_PAGE));
        if (!s->m->mem || !guest_mem_read(s->m->mem, addr, buf, chunk)) {
            for (uint64_t i = 0; i < chunk; i++) {
                uint64_t v;
                if (!io_space_read(s->m->mmio, addr + i, 1, &v)) {
                    v = 0xff;
                }
                buf[i] = (uint8_t)v;
            }
        }
        addr += chunk;
        buf += chunk;
        len -= chunk;
    }
}

static void qtest_phys_write(QtestState *s, uint64_t addr, const uint8_t *buf, uint64_t len)
{
    while (len) {
        uint64_t chunk = MIN(len, QTEST_PAGE - (addr % QTEST_PAGE));
        if (!s->m->mem || !guest_mem_write(s->m->mem, addr, buf, chunk)) {
            for (uint64_t i = 0; i < chunk; i++) {
                io_space_write(s->m->mmio, addr + i, 1, buf[i]);
            }
        }
        addr += chunk;
        buf += chunk;
        len -= chunk;
    }
}

/* A sized access as one access, so an MMIO device sees its natural width. */
static uint64_t qtest_phys_read_sized(QtestState *s, uint64_t addr, unsigned size)
{
    uint8_t buf[8] = { 0 };
    uint64_t v = 0;

    if (s->m->mem && guest_mem_read(s->m->mem, addr, buf, size)) {
        memcpy(&v, buf, size); /* x86 guests are little-endian, as is the host */
        return v;
    }
    if (io_space_read(s->m->mmio, addr, size, &v)) {
        return size == 8 ? v : v & ((1ULL << (8 * size)) - 1);
    }
    qtest_phys_read(s, addr, buf, size);
    memcpy(&v, buf, size);
    return v;
}

static void qtest_phys_write_sized(QtestState *s, uint64_t addr, unsigned size, uint64_t v)
{
    uint8_t buf[8];

    memcpy(buf, &v, size);
    if (s->m->mem && guest_mem_write(s->m->mem, addr, buf, size)) {
        return;
    }
    if (io_space_write(s->m->mmio, addr, size, v)) {
        return;
    }
    qtest_phys_write(s, addr, buf, size);
}

/* ---- commands ---- */

typedef struct QtestCmd {
    const char *name;
    int min_args, max_args; /* not counting the command word */
    const char *usage;
    void (*run)(QtestState *s, char **argv);
} QtestCmd;

static void qtest_cmd_out(QtestState *s, char **argv)
{
    uint64_t addr, val;
    unsigned size = qtest_size_of(argv[0][3]);

    if (!qtest_parse_port(s, argv[0], argv[1], &addr) ||
        !qtest_parse_u64(s, argv[0], "VALUE", argv[2], &val)) {
        return;
    }
    if (size < 8) {
        val &= (1ULL << (8 * size)) - 1;
    }
    io_space_write(s->m->pio, addr, size, val);
    qtest_reply(s, "OK");
}

static void qtest_cmd_in(QtestState *s, char **argv)
{
    uint64_t addr, val;
    unsigned size = qtest_size_of(argv[0][2]);

    if (!qtest_parse_port(s, argv[0], argv[1], &addr)) {
        return;
    }
    if (!io_space_read(s->m->pio, addr, size, &val)) {
        val = UINT64_MAX;
    }
    val &= (1ULL << (8 * size)) - 1;
    qtest_reply(s, "OK 0x%04" PRIx64, val);
}

static void qtest_cmd_readx(QtestState *s, char **argv)
{
    uint64_t addr;

    if (!qtest_parse_u64(s, argv[0], "ADDR", argv[1], &addr)) {
        return;
    }
    uint64_t v = qtest_phys_read_sized(s, addr, qtest_size_of(argv[0][4]));
    qtest_reply(s, "OK 0x%016" PRIx64, v);
}

static void qtest_cmd_writex(QtestState *s, char **argv)
{
    uint64_t addr, val;
    unsigned size = qtest_size_of(argv[0][5]);

    if (!qtest_parse_u64(s, argv[0], "ADDR", argv[1], &addr) ||
        !qtest_parse_u64(s, argv[0], "VALUE", argv[2], &val)) {
        return;
    }
    if (size < 8) {
        val &= (1ULL << (8 * size)) - 1;
    }
    qtest_phys_write_sized(s, addr, size, val);
    qtest_reply(s, "OK");
}

/* ADDR SIZE of read-like commands: SIZE 1..QTEST_MAX_READ. */
static bool qtest_parse_read_range(QtestState *s, char **argv, uint64_t *addr, uint64_t *len)
{
    if (!qtest_parse_u64(s, argv[0], "ADDR", argv[1], addr) ||
        !qtest_parse_u64(s, argv[0], "SIZE", argv[2], len)) {
        return false;
    }
    if (*len == 0 || *len > QTEST_MAX_READ) {
        qtest_reply(s, "FAIL %s: SIZE %" PRIu64 " not in 1..%d", argv[0], *len,
                    QTEST_MAX_READ);
        return false;
    }
    return true;
}

static void qtest_cmd_read(QtestState *s, char **argv)
{
    uint64_t addr, len;

    if (!qtest_parse_read_range(s, argv, &addr, &len)) {
        return;
    }
    g_autofree uint8_t *data = g_malloc(len);
    qtest_phys_read(s, addr, data, len);
    GString *hex = g_string_sized_new(2 * len + 8);
    g_string_append(hex, "OK 0x");
    for (uint64_t i = 0; i < len; i++) {
        g_string_append_printf(hex, "%02x", data[i]);
    }
    qtest_reply(s, "%s", hex->str);
    g_string_free(hex, TRUE);
}

static void qtest_cmd_b64read(QtestState *s, char **argv)
{
    uint64_t addr, len;

    if (!qtest_parse_read_range(s, argv, &addr, &len)) {
        return;
    }
    g_autofree uint8_t *data = g_malloc(len);
    qtest_phys_read(s, addr, data, len);
    g_autofree char *b64 = g_base64_encode(data, len);
    qtest_reply(s, "OK %s", b64);
}

/* Stores data into [addr, addr+len), which is RAM or at most QTEST_MAX_SLOW_WRITE long. */
static bool qtest_check_write_range(QtestState *s, const char *cmd, uint64_t addr,
                                    uint64_t len)
{
    if (len > QTEST_MAX_SLOW_WRITE && !(s->m->mem && guest_mem_is_ram(s->m->mem, addr, len))) {
        qtest_reply(s, "FAIL %s: SIZE %" PRIu64 " beyond RAM exceeds %d bytes", cmd, len,
                    QTEST_MAX_SLOW_WRITE);
        return false;
    }
    return true;
}

static int qtest_hex_nibble(char c)
{
    return g_ascii_isxdigit(c) ? g_ascii_xdigit_value(c) : -1;
}

static void qtest_cmd_write(QtestState *s, char **argv)
{
    uint64_t addr, len;

    if (!qtest_parse_u64(s, argv[0], "ADDR", argv[1], &addr) ||
        !qtest_parse_u64(s, argv[0], "SIZE", argv[2], &len)) {
        return;
    }
    const char *data = argv[3];
    if (data[0] != '0' || (data[1] != 'x' && data[1] != 'X')) {
        qtest_reply(s, "FAIL write: DATA must start with 0x");
        return;
    }
    data += 2;
    size_t digits = strlen(data);
    for (size_t i = 0; i < digits; i++) {
        if (qtest_hex_nibble(data[i]) < 0) {
            qtest_reply(s, "FAIL write: invalid hex digit in DATA");
            return;
        }
    }
    if (!len) {
        qtest_reply(s, "OK");
        return;
    }
    if (!qtest_check_write_range(s, argv[0], addr, len)) {
        return;
    }
    /* Short DATA is zero-filled up to SIZE, as QEMU does. */
    g_autofree uint8_t *buf = g_try_malloc0(len);
    if (!buf) {
        qtest_reply(s, "FAIL write: SIZE %" PRIu64 " too large", len);
        return;
    }
    for (uint64_t i = 0; i < len && 2 * i < digits; i++) {
        int hi = qtest_hex_nibble(data[2 * i]);
        int lo = 2 * i + 1 < digits ? qtest_hex_nibble(data[2 * i + 1]) : 0;
        buf[i] = (uint8_t)(hi << 4 | lo);
    }
    qtest_phys_write(s, addr, buf, len);
    qtest_reply(s, "OK");
}

static void qtest_cmd_b64write(QtestState *s, char **argv)
{
    uint64_t addr, len;
    gsize decoded_len = 0;

    if (!qtest_parse_u64(s, argv[0], "ADDR", argv[1], &addr) ||
        !qtest_parse_u64(s, argv[0], "SIZE", argv[2], &len)) {
        return;
    }
    g_autofree uint8_t *data = g_base64_decode(argv[3], &decoded_len);
    /* Sizes that disagree write the shorter of the two, as QEMU does. */
    uint64_t n = MIN(len, (uint64_t)decoded_len);
    if (n && !qtest_check_write_range(s, argv[0], addr, n)) {
        return;
    }
    if (n) {
        qtest_phys_write(s, addr, data, n);
    }
    qtest_reply(s, "OK");
}

static void qtest_cmd_memset(QtestState *s, char **argv)
{
    uint64_t addr, len, val;

    if (!qtest_parse_u64(s, argv[0], "ADDR", argv[1], &addr) ||
        !qtest_parse_u64(s, argv[0], "SIZE", argv[2], &len) ||
        !qtest_parse_u64(s, argv[0], "VALUE", argv[3], &val)) {
        return;
    }
    if (len && s->m->mem && guest_mem_fill(s->m->mem, addr, (uint8_t)val, len)) {
        qtest_reply(s, "OK");
        return;
    }
    if (len && !qtest_check_write_range(s, argv[0], addr, len)) {
        return;
    }
    uint8_t page[QTEST_PAGE];
    memset(page, (uint8_t)val, sizeof(page));
    for (uint64_t done = 0; done < len;) {
        uint64_t chunk = MIN(len - done, (uint64_t)QTEST_PAGE);
        qtest_phys_write(s, addr + done, page, chunk);
        done += chunk;
    }
    qtest_reply(s, "OK");
}

static void qtest_cmd_clock_step(QtestState *s, char **argv)
{
    VirtClock *clk = s->m->clock;
    int64_t now = virt_clock_get_ns(clk);
    int64_t target;

    if (argv[1]) {
        int64_t ns;
        if (!qtest_parse_ns(s, argv[0], argv[1], &ns)) {
            return;
        }
        target = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    } else {
        /* To the next timer; with none pending time stays where it is, as in QEMU. */
        int64_t deadline = virt_clock_deadline(clk);
        target = deadline > now ? deadline : now;
    }
    if (target > now) {
        virt_clock_set(clk, target);
    } else {
        virt_clock_run_timers(clk);
    }
    qtest_reply(s, "OK %" PRIi64, virt_clock_get_ns(clk));
}

static void qtest_cmd_clock_set(QtestState *s, char **argv)
{
    VirtClock *clk = s->m->clock;
    int64_t ns;

    if (!qtest_parse_ns(s, argv[0], argv[1], &ns)) {
        return;
    }
    if (ns > virt_clock_get_ns(clk)) {
        virt_clock_set(clk, ns);
    }
    qtest_reply(s, "OK %" PRIi64, virt_clock_get_ns(clk));
}

/*
 * All interrupt lines are GSIs of the board's interrupt controller, so intercepting the
 * IOAPIC's inputs (or any device's outputs) observes the same thing: every GSI.
 */
static void qtest_cmd_irq_intercept(QtestState *s, char **argv)
{
    const char *path = argv[1];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    if (strcmp(argv[0], "irq_intercept_in") == 0 && strcmp(base, "ioapic") != 0 &&
        strcmp(base, "pic") != 0) {
        qtest_reply(s, "FAIL Unknown device");
        return;
    }
    bool was = s->intercept;
    s->intercept = true;
    qtest_reply(s, "OK");
    /* Lines already high are reported once, so the peer's view starts right. */
    for (unsigned gsi = 0; !was && gsi < QTEST_MAX_GSI; gsi++) {
        if (s->irq_levels[gsi]) {
            qtest_reply(s, "IRQ raise %u", gsi);
        }
    }
}

static void qtest_cmd_endianness(QtestState *s, char **argv)
{
    qtest_reply(s, "OK little");
}

static const QtestCmd qtest_cmds[] = {
    { "outb", 2, 2, "outb ADDR VALUE", qtest_cmd_out },
    { "outw", 2, 2, "outw ADDR VALUE", qtest_cmd_out },
    { "outl", 2, 2, "outl ADDR VALUE", qtest_cmd_out },
    { "inb", 1, 1, "inb ADDR", qtest_cmd_in },
    { "inw", 1, 1, "inw ADDR", qtest_cmd_in },
    { "inl", 1, 1, "inl ADDR", qtest_cmd_in },
    { "readb", 1, 1, "readb ADDR", qtest_cmd_readx },
    { "readw", 1, 1, "readw ADDR", qtest_cmd_readx },
    { "readl", 1, 1, "readl ADDR", qtest_cmd_readx },
    { "readq", 1, 1, "readq ADDR", qtest_cmd_readx },
    { "writeb", 2, 2, "writeb ADDR VALUE", qtest_cmd_writex },
    { "writew", 2, 2, "writew ADDR VALUE", qtest_cmd_writex },
    { "writel", 2, 2, "writel ADDR VALUE", qtest_cmd_writex },
    { "writeq", 2, 2, "writeq ADDR VALUE", qtest_cmd_writex },
    { "read", 2, 2, "read ADDR SIZE", qtest_cmd_read },
    { "write", 3, 3, "write ADDR SIZE 0xDATA", qtest_cmd_write },
    { "b64read", 2, 2, "b64read ADDR SIZE", qtest_cmd_b64read },
    { "b64write", 3, 3, "b64write ADDR SIZE B64DATA", qtest_cmd_b64write },
    { "memset", 3, 3, "memset ADDR SIZE VALUE", qtest_cmd_memset },
    { "clock_step", 0, 1, "clock_step [NS]", qtest_cmd_clock_step },
    { "clock_set", 1, 1, "clock_set NS", qtest_cmd_clock_set },
    { "irq_intercept_in", 1, 1, "irq_intercept_in ioapic", qtest_cmd_irq_intercept },
    { "irq_intercept_out", 1, 2, "irq_intercept_out QOM-PATH [NAME]",
      qtest_cmd_irq_intercept },
    { "endianness", 0, 0, "endianness", qtest_cmd_endianness },
};

static void qtest_process_line(QtestState *s, char *line)
{
    qtest_log_line(s, 'R', line);

    g_auto(GStrv) words = g_strsplit_set(line, " \t", -1);
    /* Runs of blanks yield empty words: squeeze them out. */
    guint n = 0;
    for (guint i = 0; words[i]; i++) {
        if (*words[i]) {
            words[n++] = words[i];
        } else {
            g_free(words[i]);
        }
    }
    words[n] = NULL;

    if (n == 0) {
        qtest_reply(s, "FAIL empty command");
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(qtest_cmds); i++) {
        const QtestCmd *c = &qtest_cmds[i];
        if (strcmp(words[0], c->name) != 0) {
            continue;
        }
        int nargs = (int)n - 1;
        if (nargs < c->min_args || nargs > c->max_args) {
            qtest_reply(s, "FAIL usage: %s", c->usage);
            return;
        }
        c->run(s, words);
        return;
    }
    g_autofree char *shown = qtest_printable(words[0]);
    qtest_reply(s, "FAIL Unknown command '%s'", shown);
}

/* ---- chardev frontend ---- */

static size_t qtest_can_read(void *opaque)
{
    return 64 * 1024;
}

static void qtest_read(void *opaque, const uint8_t *buf, size_t len)
{
    QtestState *s = opaque;

    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') {
            if (s->discarding) {
                continue;
            }
            if (s->inbuf->len >= QTEST_MAX_LINE) {
                s->discarding = true;
                g_string_truncate(s->inbuf, 0);
                continue;
            }
            g_string_append_c(s->inbuf, (char)buf[i]);
            continue;
        }
        if (s->discarding) {
            s->discarding = false;
            qtest_log_line(s, 'R', "(line too long)");
            qtest_reply(s, "FAIL line longer than %d bytes", QTEST_MAX_LINE);
            continue;
        }
        if (s->inbuf->len && s->inbuf->str[s->inbuf->len - 1] == '\r') {
            g_string_truncate(s->inbuf, s->inbuf->len - 1);
        }
        /* Embedded NUL bytes end the line early; the rest is ignored. */
        qtest_process_line(s, s->inbuf->str);
        g_string_truncate(s->inbuf, 0);
    }
}

static void qtest_event(void *opaque, bool opened)
{
    QtestState *s = opaque;

    if (opened) {
        g_timer_start(s->log_timer);
        return;
    }
    /* The test is gone: nothing can drive this VM any more. */
    machine_request_shutdown(s->m, SHUTDOWN_CAUSE_HOST_SIGNAL, 0);
}

/* ---- AccelOps ---- */

static bool qtest_accel_init(Machine *m, Error **errp)
{
    const MachineConfig *cfg = m->cfg;
    Chardev *chr = NULL;
    FILE *log = NULL;

    if (cfg->qtest_chardev) {
        chr = machine_find_chardev(m, cfg->qtest_chardev);
        if (!chr) {
            error_setg(errp, "-qtest: chardev '%s' not found", cfg->qtest_chardev);
            return false;
        }
    }
    if (cfg->qtest_log) {
        log = fopen(cfg->qtest_log, "we");
        if (!log) {
            error_setg_errno(errp, errno, "-qtest-log %s", cfg->qtest_log);
            return false;
        }
        /* Line-buffered so the log is complete even if the VMM is killed. */
        setvbuf(log, NULL, _IOLBF, 0);
    }

    QtestState *s = g_new0(QtestState, 1);
    s->m = m;
    s->chr = chr;
    s->log = log;
    s->log_timer = g_timer_new();
    s->inbuf = g_string_new(NULL);
    m->accel_state = s;
    if (chr) {
        /* Called with the VM lock held, as the chardev's own callbacks are. */
        machine_lock(m);
        chardev_set_handlers(chr, qtest_can_read, qtest_read, qtest_event, s);
        machine_unlock(m);
    }
    return true;
}

static bool qtest_accel_reset_cpus(Machine *m, const CpuBootState *bsp, Error **errp)
{
    return true; /* no vCPU */
}

static void qtest_accel_resume(Machine *m)
{
}

static void qtest_accel_pause(Machine *m)
{
}

static void qtest_accel_set_irq(Machine *m, unsigned gsi, int level)
{
    QtestState *s = m->accel_state;

    if (!s || gsi >= QTEST_MAX_GSI) {
        return;
    }
    uint8_t l = level != 0;
    if (s->irq_levels[gsi] == l) {
        return;
    }
    s->irq_levels[gsi] = l;
    if (s->intercept && s->chr) {
        qtest_reply(s, "IRQ %s %u", l ? "raise" : "lower", gsi);
    }
}

/*
 * No interrupt controller here, so an MSI is what it is on the bus: a 32-bit write of
 * data to addr.  A test points the MSI address at guest RAM and reads the data back, as
 * with QEMU's qtest; a message aimed anywhere else (the LAPIC window) is dropped.
 */
static void qtest_accel_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    uint8_t le[4] = { data & 0xff, (data >> 8) & 0xff, (data >> 16) & 0xff, data >> 24 };

    if (m->mem && guest_mem_is_ram(m->mem, addr, 4)) {
        guest_mem_write(m->mem, addr, le, sizeof(le));
    }
}

static void qtest_accel_dump_state(Machine *m, FILE *out)
{
    fprintf(out, "no vCPUs under qtest\n");
}

static void qtest_accel_destroy(Machine *m)
{
    QtestState *s = m->accel_state;

    if (!s) {
        return;
    }
    if (s->chr) {
        chardev_set_handlers(s->chr, NULL, NULL, NULL, NULL);
    }
    if (s->log) {
        fclose(s->log);
    }
    g_timer_destroy(s->log_timer);
    g_string_free(s->inbuf, TRUE);
    g_free(s);
    m->accel_state = NULL;
}

const AccelOps qtest_accel_ops = {
    .name = "qtest",
    .manual_clock = true,
    .init = qtest_accel_init,
    .reset_cpus = qtest_accel_reset_cpus,
    .resume = qtest_accel_resume,
    .pause = qtest_accel_pause,
    .set_irq = qtest_accel_set_irq,
    .dump_state = qtest_accel_dump_state,
    .destroy = qtest_accel_destroy,
    .signal_msi = qtest_accel_signal_msi,
};
