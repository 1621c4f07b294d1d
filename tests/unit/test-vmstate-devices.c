/*
 * Every device's state through vmstate_save_all / vmstate_load_all: machine A (the PC
 * board under the qtest accelerator, so no guest CPU) is driven into a non-reset state
 * through its ports, saved, and loaded into a fresh machine B built from the same command
 * line.  Then the same sequence of guest-visible reads must give the same answers on A
 * and on B, and the values we put there must be among them.  Mismatching machines
 * (device set, RAM size, a virtio-net that does not offer what the driver accepted) must
 * be refused with errors that say what differs.
 */
#include <string.h>
#include <glib.h>
#include "sen/config.h"
#include "sen/device.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/timer.h"
#include "sen/vmstate.h"

#define COM1 0x3f8

static Machine *make_machine(const char *extra)
{
    g_autofree char *line = g_strdup_printf("sen -accel qtest -M pc -m 64M -display none "
                                            "-serial null %s", extra ? extra : "");
    g_auto(GStrv) argv = g_strsplit(g_strstrip(line), " ", -1);
    bool exit_early = false;
    Error *err = NULL;
    MachineConfig *cfg = cmdline_parse(g_strv_length(argv), argv, &exit_early, &err);
    if (!cfg) {
        g_error("%s: %s", line, error_get_pretty(err));
    }
    Machine *m = machine_create(cfg, &err);
    if (!m) {
        g_error("%s: %s", line, error_get_pretty(err));
    }
    return m;
}

static uint8_t inb(Machine *m, uint16_t port)
{
    uint64_t v = 0xff;
    machine_lock(m);
    io_space_read(m->pio, port, 1, &v);
    machine_unlock(m);
    return (uint8_t)v;
}

static void outb(Machine *m, uint16_t port, uint8_t v)
{
    machine_lock(m);
    io_space_write(m->pio, port, 1, v);
    machine_unlock(m);
}

/* A state no device has after reset. */
static void drive_devices(Machine *m)
{
    /* COM1: 8N1 at divisor 3, FIFO on with trigger 4, loopback, two bytes received. */
    outb(m, COM1 + 3, 0x80);
    outb(m, COM1 + 0, 3);
    outb(m, COM1 + 1, 0);
    outb(m, COM1 + 3, 0x03);
    outb(m, COM1 + 2, 0x41);
    outb(m, COM1 + 4, 0x10 | 0x08);
    outb(m, COM1 + 1, 0x05);
    outb(m, COM1 + 7, 0x5a);
    outb(m, COM1 + 0, 'h');
    outb(m, COM1 + 0, 'i');
    /* RTC: CMOS RAM byte, periodic interrupt at 2 Hz enabled. */
    outb(m, 0x70, 0x40);
    outb(m, 0x71, 0xc3);
    outb(m, 0x70, 0x0a);
    outb(m, 0x71, 0x2f);
    outb(m, 0x70, 0x0b);
    outb(m, 0x71, 0x02 | 0x40);
    /* i8042: read the command byte: the reply waits in the output buffer. */
    outb(m, 0x64, 0x20);
    /* port92: A20 off. */
    outb(m, 0x92, 0x00);
    /* acpi-pm: power button and PM timer interrupts enabled (PM1_EN high byte, low). */
    outb(m, 0x603, 0x01);
    outb(m, 0x602, 0x01);
    /* fw_cfg: the signature item selected, "QE" read: "MU" is next. */
    machine_lock(m);
    io_space_write(m->pio, 0x510, 2, 0x0000);
    machine_unlock(m);
    (void)inb(m, 0x511);
    (void)inb(m, 0x511);
    machine_lock(m);
    virt_clock_step(m->clock, 1700 * 1000 * 1000LL);
    machine_unlock(m);
}

/* The guest-visible reads compared between A and B (in this order: some have effects). */
static GByteArray *observe(Machine *m)
{
    static const uint16_t reads[][2] = {
        { 0x70, 0x40 }, { 0x70, 0x0a }, { 0x70, 0x0b }, { 0x70, 0x0c }, { 0x70, 0x0c },
    };
    GByteArray *b = g_byte_array_new();
    uint8_t v;
    for (unsigned reg = 1; reg <= 7; reg++) {
        v = inb(m, COM1 + reg);
        g_byte_array_append(b, &v, 1);
    }
    for (unsigned i = 0; i < 3; i++) {
        v = inb(m, COM1);          /* FIFO contents, then the last byte again */
        g_byte_array_append(b, &v, 1);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(reads); i++) {
        outb(m, reads[i][0], (uint8_t)reads[i][1]);
        v = inb(m, reads[i][0] + 1);
        g_byte_array_append(b, &v, 1);
    }
    v = inb(m, 0x64);
    g_byte_array_append(b, &v, 1);
    v = inb(m, 0x60);
    g_byte_array_append(b, &v, 1);
    v = inb(m, 0x64);
    g_byte_array_append(b, &v, 1);
    v = inb(m, 0x92);
    g_byte_array_append(b, &v, 1);
    for (uint16_t port = 0x602; port <= 0x603; port++) {
        v = inb(m, port);
        g_byte_array_append(b, &v, 1);
    }
    for (unsigned i = 0; i < 2; i++) {
        v = inb(m, 0x511);
        g_byte_array_append(b, &v, 1);
    }
    int64_t now = virt_clock_get_ns(m->clock);
    g_byte_array_append(b, (const guint8 *)&now, sizeof(now));
    return b;
}

static GByteArray *save(Machine *m)
{
    GByteArray *blob = g_byte_array_new();
    Error *err = NULL;
    if (!vmstate_save_all(m, blob, &err)) {
        g_error("save: %s", error_get_pretty(err));
    }
    return blob;
}

static void test_board_round_trip(void)
{
    Machine *a = make_machine(NULL);
    drive_devices(a);
    g_autoptr(GByteArray) blob = save(a);
    g_autoptr(GByteArray) seen_a = observe(a);
    machine_destroy(a);

    Machine *b = make_machine(NULL);
    Error *err = NULL;
    if (!vmstate_load_all(b, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    g_autoptr(GByteArray) seen_b = observe(b);
    g_assert_cmpmem(seen_b->data, seen_b->len, seen_a->data, seen_a->len);

    /* And the values are the ones we set, not two identical reset states. */
    const uint8_t *o = seen_b->data;
    g_assert_cmphex(o[6], ==, 0x5a);           /* SCR */
    g_assert_cmphex(o[4] & 0x01, ==, 0x01);    /* LSR.DR */
    g_assert_cmphex(o[7], ==, 'h');
    g_assert_cmphex(o[8], ==, 'i');
    g_assert_cmphex(o[10], ==, 0xc3);          /* CMOS 0x40 */
    g_assert_cmphex(o[11], ==, 0x2f);          /* register A */
    g_assert_cmphex(o[13] & 0xc0, ==, 0xc0);   /* register C: IRQF | PF after 1.7 s */
    g_assert_cmphex(o[15] & 0x01, ==, 0x01);   /* i8042 OBF */
    g_assert_cmphex(o[16], ==, 0x07);          /* i8042 command byte after reset */
    g_assert_cmphex(o[18], ==, 0x00);          /* port92 */
    g_assert_cmphex(o[19], ==, 0x01);          /* acpi-pm PM1_EN: TMR_EN */
    g_assert_cmphex(o[20], ==, 0x01);          /* PWRBTN_EN */
    g_assert_cmphex(o[21], ==, 'M');           /* fw_cfg: the signature continues */
    g_assert_cmphex(o[22], ==, 'U');
    int64_t now;
    memcpy(&now, o + 23, sizeof(now));
    g_assert_cmpint(now, ==, 1700 * 1000 * 1000LL);

    /* The periodic timer runs on from the loaded state: a new PF after 0.5 s. */
    machine_lock(b);
    virt_clock_step(b->clock, 600 * 1000 * 1000LL);
    machine_unlock(b);
    outb(b, 0x70, 0x0c);
    g_assert_cmphex(inb(b, 0x71) & 0x40, ==, 0x40);
    machine_destroy(b);
}

/* -device intel-iommu: registers and what the global command latched survive. */
static uint64_t vtd_rd(Machine *m, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    machine_lock(m);
    io_space_read(m->mmio, 0xfed90000ULL + off, size, &v);
    machine_unlock(m);
    return v;
}

static void vtd_wr(Machine *m, uint64_t off, unsigned size, uint64_t v)
{
    machine_lock(m);
    io_space_write(m->mmio, 0xfed90000ULL + off, size, v);
    machine_unlock(m);
}

static GByteArray *vtd_observe(Machine *m)
{
    static const struct { uint16_t off; uint8_t size; } regs[] = {
        { 0x1c, 4 }, { 0x20, 8 }, { 0x34, 4 }, { 0x38, 4 }, { 0x3c, 4 }, { 0x40, 4 },
        { 0x80, 8 }, { 0x88, 8 }, { 0x90, 8 }, { 0xb8, 8 }, { 0x220, 8 }, { 0x228, 8 },
    };
    GByteArray *b = g_byte_array_new();
    for (unsigned i = 0; i < G_N_ELEMENTS(regs); i++) {
        uint64_t v = vtd_rd(m, regs[i].off, regs[i].size);
        g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
    }
    return b;
}

static void test_intel_iommu_round_trip(void)
{
    const char *line = "-M q35 -device intel-iommu";
    Machine *a = make_machine(line);
    vtd_wr(a, 0x20, 8, 0x100000);          /* RTADDR, latched by SRTP */
    vtd_wr(a, 0x18, 4, 1u << 30);
    vtd_wr(a, 0xb8, 8, 0x101000 | 7);      /* IRTA, SIRTP, IRE */
    vtd_wr(a, 0x18, 4, 1u << 24);
    vtd_wr(a, 0x18, 4, 1u << 25);
    vtd_wr(a, 0x90, 8, 0x102000);          /* queue on, one IOTLB invalidation done */
    vtd_wr(a, 0x18, 4, (1u << 25) | (1u << 26));
    machine_lock(a);
    uint64_t desc[2] = { GUINT64_TO_LE(2 | 1 << 4), 0 };
    g_assert_true(guest_mem_write(a->mem, 0x102000, desc, sizeof(desc)));
    machine_unlock(a);
    vtd_wr(a, 0x88, 8, 1 << 4);
    vtd_wr(a, 0x3c, 4, 0x4321);            /* FEDATA */
    vtd_wr(a, 0x40, 4, 0xfee01000);
    vtd_wr(a, 0x18, 4, (1u << 25) | (1u << 26) | (1u << 31));   /* TE */
    g_autoptr(GByteArray) blob = save(a);
    g_autoptr(GByteArray) seen_a = vtd_observe(a);
    machine_destroy(a);

    Machine *b = make_machine(line);
    Error *err = NULL;
    if (!vmstate_load_all(b, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    g_autoptr(GByteArray) seen_b = vtd_observe(b);
    g_assert_cmpmem(seen_b->data, seen_b->len, seen_a->data, seen_a->len);
    g_assert_cmphex(vtd_rd(b, 0x1c, 4), ==, 0xc7000000);       /* TE SRTP QIE IRE SIRTP */
    g_assert_cmphex(vtd_rd(b, 0x80, 8), ==, 1 << 4);            /* IQH */
    g_assert_cmphex(vtd_rd(b, 0x3c, 4), ==, 0x4321);
    /* The queue continues where A left it. */
    machine_lock(b);
    uint64_t wait[2] = { GUINT64_TO_LE(5 | 1 << 5 | 0xabcdULL << 32), GUINT64_TO_LE(0x103000) };
    g_assert_true(guest_mem_write(b->mem, 0x102010, wait, sizeof(wait)));
    machine_unlock(b);
    vtd_wr(b, 0x88, 8, 2 << 4);
    uint32_t status = 0;
    machine_lock(b);
    g_assert_true(guest_mem_read(b->mem, 0x103000, &status, sizeof(status)));
    machine_unlock(b);
    g_assert_cmphex(GUINT32_FROM_LE(status), ==, 0xabcd);
    machine_destroy(b);
}

static char *load_error(const GByteArray *blob, const char *extra)
{
    Machine *b = make_machine(extra);
    Error *err = NULL;
    g_assert_false(vmstate_load_all(b, blob->data, blob->len, &err));
    char *msg = g_strdup(error_get_pretty(err));
    error_free(err);
    machine_destroy(b);
    return msg;
}

static void test_board_mismatch(void)
{
    Machine *a = make_machine(NULL);
    g_autoptr(GByteArray) blob = save(a);
    machine_destroy(a);

    g_autofree char *m1 = load_error(blob, "-device isa-debug-exit");
    g_assert_nonnull(strstr(m1, "the device set differs"));
    g_assert_nonnull(strstr(m1, "isa-serial,isa-debug-exit"));

    g_autofree char *m2 = load_error(blob, "-m 128M");
    g_assert_nonnull(strstr(m2, "the source has 64 MiB of RAM, this machine 128 MiB"));
}

/* A device section whose payload fails its own checks names the device. */
static void test_board_bad_device_state(void)
{
    Machine *a = make_machine(NULL);
    outb(a, 0x70, 0x7f);
    g_autoptr(GByteArray) blob = save(a);
    machine_destroy(a);
    /* No checksum fix-up possible for a tester either: flip a byte -> refused. */
    blob->data[blob->len / 2] ^= 1;
    g_autofree char *msg = load_error(blob, NULL);
    g_assert_nonnull(strstr(msg, "checksum mismatch"));
}

/* -M q35,kernel-irqchip=split -device edu: the userspace IOAPIC's table and remote IRR,
 * the userspace PIT's channel (count, mode, a latched value), edu's registers and DMA
 * buffer, and the LPC's config space survive a save/load. */
static uint64_t mmio_rd(Machine *m, uint64_t addr, unsigned size)
{
    uint64_t v = 0;
    machine_lock(m);
    io_space_read(m->mmio, addr, size, &v);
    machine_unlock(m);
    return v;
}

static void mmio_wr(Machine *m, uint64_t addr, unsigned size, uint64_t v)
{
    machine_lock(m);
    io_space_write(m->mmio, addr, size, v);
    machine_unlock(m);
}

#define EDU_BAR 0xe0000000ULL
#define ECAM_EDU (0xb0000000ULL + (3ULL << 15))

static void q35_split_drive(Machine *m)
{
    /* IOAPIC pin 20 level, asserted: delivered, remote IRR set */
    mmio_wr(m, 0xfec00000, 4, 0x10 + 2 * 20);
    mmio_wr(m, 0xfec00010, 4, 0x8065);
    machine_lock(m);
    irq_raise(&(IrqLine){ .m = m, .gsi = 20 });
    machine_unlock(m);
    /* PIT channel 1, mode 2, count 1000, then a latch taken 100 ticks in */
    outb(m, 0x43, 0x74);
    outb(m, 0x41, 1000 & 0xff);
    outb(m, 0x41, 1000 >> 8);
    machine_lock(m);
    virt_clock_step(m->clock, 100 * 838096 / 1000 + 1);
    machine_unlock(m);
    outb(m, 0x43, 0x40);
    /* edu: BAR, liveness, DMA registers, a buffer filled from RAM */
    mmio_wr(m, ECAM_EDU + 0x10, 4, (uint32_t)EDU_BAR);
    mmio_wr(m, ECAM_EDU + 0x04, 2, 0x6);
    mmio_wr(m, EDU_BAR + 0x04, 4, 0x1234);
    machine_lock(m);
    g_assert_true(guest_mem_write(m->mem, 0x10000, "sen-edu!", 8));
    machine_unlock(m);
    mmio_wr(m, EDU_BAR + 0x80, 8, 0x10000);
    mmio_wr(m, EDU_BAR + 0x88, 8, 0x40010);
    mmio_wr(m, EDU_BAR + 0x90, 8, 8);
    mmio_wr(m, EDU_BAR + 0x98, 4, 1);
}

static void test_q35_split_round_trip(void)
{
    const char *line = "-M q35,kernel-irqchip=split -device edu,addr=3";
    Machine *a = make_machine(line);
    q35_split_drive(a);
    g_autoptr(GByteArray) blob = save(a);
    machine_destroy(a);

    Machine *b = make_machine(line);
    Error *err = NULL;
    if (!vmstate_load_all(b, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    mmio_wr(b, 0xfec00000, 4, 0x10 + 2 * 20);
    g_assert_cmphex(mmio_rd(b, 0xfec00010, 4), ==, 0x8065 | 1u << 14);   /* remote IRR */
    /* The latch, low byte first: two statements, as C leaves the order of the operands
     * of | unspecified (the sanitizer build read the high byte first). */
    unsigned latch = inb(b, 0x41);
    latch |= inb(b, 0x41) << 8;
    g_assert_cmpuint(latch, ==, 900);
    g_assert_cmphex(mmio_rd(b, EDU_BAR + 0x04, 4), ==, ~0x1234u);
    g_assert_cmphex(mmio_rd(b, EDU_BAR + 0x90, 8), ==, 8);
    /* the buffer came along: DMA it back out to RAM */
    mmio_wr(b, EDU_BAR + 0x80, 8, 0x40010);
    mmio_wr(b, EDU_BAR + 0x88, 8, 0x20000);
    mmio_wr(b, EDU_BAR + 0x98, 4, 3);
    char back[8];
    machine_lock(b);
    g_assert_true(guest_mem_read(b->mem, 0x20000, back, 8));
    machine_unlock(b);
    g_assert_cmpmem(back, 8, "sen-edu!", 8);
    g_assert_cmphex(mmio_rd(b, 0xb0000000ULL + (0x1fULL << 15), 4), ==, 0x29188086);
    machine_destroy(b);
}

/* -device virtio-net-pci: a driver (features, one queue, DRIVER_OK) through config
 * space and BAR 4; its registers and the device config read the same on B. */
#define NET_BAR 0xe0000000ULL
#define NET_DEVFN (4 << 3)

static void pci_cfg_wr(Machine *m, unsigned reg, unsigned size, uint32_t v)
{
    machine_lock(m);
    io_space_write(m->pio, 0xcf8, 4, 0x80000000u | NET_DEVFN << 8 | (reg & 0xfc));
    io_space_write(m->pio, 0xcfc + (reg & 3), size, v);
    machine_unlock(m);
}

static void net_drive(Machine *m)
{
    pci_cfg_wr(m, 0x20, 4, (uint32_t)NET_BAR | 4);   /* BAR 4, 64-bit */
    pci_cfg_wr(m, 0x24, 4, 0);
    pci_cfg_wr(m, 0x04, 2, 0x6);
    mmio_wr(m, NET_BAR + 0x14, 1, 1 | 2);
    mmio_wr(m, NET_BAR + 0x00, 4, 0);
    uint32_t lo = (uint32_t)mmio_rd(m, NET_BAR + 0x04, 4);
    g_assert_cmphex(lo & (1u << 21), !=, 0);         /* GUEST_ANNOUNCE offered */
    mmio_wr(m, NET_BAR + 0x08, 4, 0);
    mmio_wr(m, NET_BAR + 0x0c, 4, (1u << 5) | (1u << 16) | (1u << 17) | (1u << 21));
    mmio_wr(m, NET_BAR + 0x08, 4, 1);
    mmio_wr(m, NET_BAR + 0x0c, 4, 1);                /* VERSION_1 */
    mmio_wr(m, NET_BAR + 0x14, 1, 1 | 2 | 8);
    mmio_wr(m, NET_BAR + 0x16, 2, 0);
    mmio_wr(m, NET_BAR + 0x18, 2, 64);
    mmio_wr(m, NET_BAR + 0x20, 8, 0x100000);
    mmio_wr(m, NET_BAR + 0x28, 8, 0x101000);
    mmio_wr(m, NET_BAR + 0x30, 8, 0x102000);
    mmio_wr(m, NET_BAR + 0x1c, 2, 1);
    mmio_wr(m, NET_BAR + 0x14, 1, 1 | 2 | 4 | 8);
}

static GByteArray *net_observe(Machine *m)
{
    static const struct { uint16_t off; uint8_t size; } regs[] = {
        { 0x14, 1 }, { 0x16, 2 }, { 0x18, 2 }, { 0x1c, 2 }, { 0x20, 8 }, { 0x28, 8 },
        { 0x30, 8 }, { 0x2000, 4 }, { 0x2004, 4 }, { 0x2008, 2 },
    };
    GByteArray *b = g_byte_array_new();
    mmio_wr(m, NET_BAR + 0x08, 4, 0);
    for (unsigned i = 0; i < G_N_ELEMENTS(regs); i++) {
        uint64_t v = mmio_rd(m, NET_BAR + regs[i].off, regs[i].size);
        g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
    }
    uint64_t gf = mmio_rd(m, NET_BAR + 0x0c, 4);
    g_byte_array_append(b, (const guint8 *)&gf, sizeof(gf));
    return b;
}

static void test_virtio_net_round_trip(void)
{
    const char *line = "-device virtio-net-pci,addr=4,mac=52:54:00:12:34:99";
    Machine *a = make_machine(line);
    net_drive(a);
    g_autoptr(GByteArray) blob = save(a);
    g_autoptr(GByteArray) seen_a = net_observe(a);
    machine_destroy(a);
    g_assert_nonnull(memmem(blob->data, blob->len, "virtio-net-pci.0", 16));

    Machine *b = make_machine(line);
    Error *err = NULL;
    if (!vmstate_load_all(b, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    g_autoptr(GByteArray) seen_b = net_observe(b);
    g_assert_cmpmem(seen_b->data, seen_b->len, seen_a->data, seen_a->len);
    g_assert_cmphex(mmio_rd(b, NET_BAR + 0x14, 1), ==, 1 | 2 | 4 | 8);
    g_assert_cmphex(mmio_rd(b, NET_BAR + 0x20, 8), ==, 0x100000);
    g_assert_cmphex(mmio_rd(b, NET_BAR + 0x2004, 2), ==, 0x9934);   /* MAC bytes 4-5 */
    machine_destroy(b);

    /* A destination that does not offer GUEST_ANNOUNCE cannot take this driver. */
    g_autofree char *msg = load_error(blob, "-device virtio-net-pci,addr=4,guest_announce=off");
    g_assert_nonnull(strstr(msg, "does not offer"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vmstate-devices/board-round-trip", test_board_round_trip);
    g_test_add_func("/vmstate-devices/board-mismatch", test_board_mismatch);
    g_test_add_func("/vmstate-devices/intel-iommu-round-trip", test_intel_iommu_round_trip);
    g_test_add_func("/vmstate-devices/q35-split-round-trip", test_q35_split_round_trip);
    g_test_add_func("/vmstate-devices/bad-device-state", test_board_bad_device_state);
    g_test_add_func("/vmstate-devices/virtio-net-round-trip", test_virtio_net_round_trip);
    return g_test_run();
}
