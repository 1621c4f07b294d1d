/*
 * virtio-blk-pci (hw/virtio/virtio-blk.c) over a hand-built Machine with real raw image
 * files: requests through the transport, completions from the block layer on the main
 * context, results checked in the image files; malformed requests, a read-only drive, and
 * a reset with a request in flight.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "accel/accel.h"
#include "sen/block.h"
#include "sen/config.h"
#include "sen/device.h"
#include "sen/pci.h"
#include "sen/virtio.h"

#define RAM_SIZE  (4 * 1024 * 1024ull)
#define BAR4      0xe0000000ull
#define DESC_GPA  0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA  0x12000ull
#define HDR_GPA   0x20000ull
#define STATUS_GPA 0x20100ull
#define DATA_GPA  0x30000ull
#define QSIZE     16
#define DISK_SIZE (1024 * 1024)

enum { CC_GFSELECT = 0x08, CC_GF = 0x0c, CC_STATUS = 0x14, CC_Q_SELECT = 0x16,
       CC_Q_SIZE = 0x18, CC_Q_ENABLE = 0x1c, CC_Q_DESC = 0x20, CC_Q_AVAIL = 0x28,
       CC_Q_USED = 0x30 };

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WZ = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

typedef struct Fixture {
    Machine m;
    AccelOps ops;
    char *dir, *disk, *rodisk;
    PCIDevice *dev;
    uint8_t *ram;
    uint16_t avail_idx;
} Fixture;

static void fake_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
}

static void fake_set_irq(Machine *m, unsigned gsi, int level)
{
}

static void check_no_error(Error *err)
{
    if (err) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
}

static void make_disk(const char *path, uint8_t fill)
{
    g_autofree uint8_t *buf = g_malloc(DISK_SIZE);
    memset(buf, fill, DISK_SIZE);
    g_assert_true(g_file_set_contents(path, (char *)buf, DISK_SIZE, NULL));
}

static void fixture_init(Fixture *f, const char *blk_props)
{
    Error *err = NULL;
    bool exit_early = false;

    memset(f, 0, sizeof(*f));
    f->dir = g_dir_make_tmp("sen-vblk-XXXXXX", NULL);
    f->disk = g_build_filename(f->dir, "disk.raw", NULL);
    f->rodisk = g_build_filename(f->dir, "ro.raw", NULL);
    make_disk(f->disk, 0x11);
    make_disk(f->rodisk, 0x22);
    g_autofree char *d0 = g_strdup_printf("file=%s,format=raw,if=none,id=d0", f->disk);
    g_autofree char *d1 = g_strdup_printf("file=%s,format=raw,if=none,id=d1,readonly=on",
                                          f->rodisk);
    char *argv[] = { "sen", "-drive", d0, "-drive", d1, NULL };
    f->m.cfg = cmdline_parse(5, argv, &exit_early, &err);
    check_no_error(err);
    g_mutex_init(&f->m.lock);
    f->m.ctx = g_main_context_default();
    f->ops.name = "fake";
    f->ops.signal_msi = fake_signal_msi;
    f->ops.set_irq = fake_set_irq;
    f->m.accel = &f->ops;
    f->m.accel_state = f;
    f->m.accel_up = true;
    f->m.pio = io_space_new("pio");
    f->m.mmio = io_space_new("mmio");
    f->m.mem = guest_mem_new(RAM_SIZE, &err);
    check_no_error(err);
    g_assert_true(guest_mem_add_region(f->m.mem, 0, RAM_SIZE, 0, &err));
    f->ram = guest_mem_map(f->m.mem, 0, RAM_SIZE);
    g_assert_true(block_init_drives(&f->m, &err));
    check_no_error(err);
    g_assert_nonnull(device_create(&f->m, "i440fx-pcihost", NULL, NULL, &err));
    check_no_error(err);

    g_autoptr(Keyval) kv = keyval_parse(blk_props, NULL, &err);
    check_no_error(err);
    f->dev = (PCIDevice *)device_create(&f->m, "virtio-blk-pci", kv, "virtio-blk-pci", &err);
    check_no_error(err);
    g_assert_nonnull(f->dev);
}

static void fixture_done(Fixture *f)
{
    device_destroy_all(&f->m);
    block_cleanup(&f->m);
    io_space_free(f->m.pio);
    io_space_free(f->m.mmio);
    guest_mem_free(f->m.mem);
    if (f->m.devices) {
        g_ptr_array_free(f->m.devices, TRUE);
    }
    machine_config_free(f->m.cfg);
    g_mutex_clear(&f->m.lock);
    g_unlink(f->disk);
    g_unlink(f->rodisk);
    g_rmdir(f->dir);
    g_free(f->disk);
    g_free(f->rodisk);
    g_free(f->dir);
}

static void cfg_write(Fixture *f, uint32_t reg, unsigned size, uint32_t val)
{
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | f->dev->devfn << 8 | (reg & 0xfc));
    io_space_write(f->m.pio, 0xcfc + (reg & 3), size, val);
}

static uint64_t rd(Fixture *f, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(io_space_read(f->m.mmio, BAR4 + off, size, &v));
    return v;
}

static void wr(Fixture *f, uint64_t off, unsigned size, uint64_t v)
{
    g_assert_true(io_space_write(f->m.mmio, BAR4 + off, size, v));
}

static uint64_t driver_init(Fixture *f)
{
    uint64_t features;

    cfg_write(f, PCI_BASE_ADDRESS_4, 4, (uint32_t)BAR4);
    cfg_write(f, PCI_BASE_ADDRESS_5, 4, 0);
    cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    wr(f, CC_STATUS, 1, 0);
    wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(f, 0x00, 4, 0);
    features = rd(f, 0x04, 4);
    wr(f, 0x00, 4, 1);
    features |= rd(f, 0x04, 4) << 32;
    wr(f, CC_GFSELECT, 4, 0);
    wr(f, CC_GF, 4, (uint32_t)features);
    wr(f, CC_GFSELECT, 4, 1);
    wr(f, CC_GF, 4, features >> 32);
    wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
       VIRTIO_STATUS_FEATURES_OK);
    wr(f, CC_Q_SELECT, 2, 0);
    wr(f, CC_Q_SIZE, 2, QSIZE);
    wr(f, CC_Q_DESC, 8, DESC_GPA);
    wr(f, CC_Q_AVAIL, 8, AVAIL_GPA);
    wr(f, CC_Q_USED, 8, USED_GPA);
    memset(f->ram + AVAIL_GPA, 0, 0x2000);
    wr(f, CC_Q_ENABLE, 2, 1);
    wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    f->avail_idx = 0;
    return features;
}

static uint16_t used_idx(Fixture *f)
{
    return __atomic_load_n((uint16_t *)(f->ram + USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static void set_desc(Fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    VirtqDesc d = { .addr = addr, .len = len, .flags = flags, .next = i + 1 };
    memcpy(f->ram + DESC_GPA + 16 * i, &d, sizeof(d));
}

/* Posts header + optional data + status byte and kicks; returns without waiting. */
static void post(Fixture *f, uint32_t type, uint64_t sector, uint32_t data_len,
                 bool data_writable)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { type, 0, sector };
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);
    unsigned n = 0;

    memcpy(f->ram + HDR_GPA, &hdr, sizeof(hdr));
    f->ram[STATUS_GPA] = 0xff;
    set_desc(f, n++, HDR_GPA, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    if (data_len) {
        set_desc(f, n++, DATA_GPA, data_len,
                 VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0));
    }
    set_desc(f, n++, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    avail[2 + f->avail_idx % QSIZE] = 0;
    __atomic_store_n(&avail[1], ++f->avail_idx, __ATOMIC_RELEASE);
    wr(f, 0x3000, 2, 0);
}

/* Runs the main context until the request is used; returns its status byte. */
static uint8_t wait_done(Fixture *f, uint32_t *len)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (used_idx(f) != f->avail_idx) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(f->m.ctx, FALSE);
        g_usleep(100);
    }
    if (len) {
        *len = *(uint32_t *)(f->ram + USED_GPA + 4 + 8 * ((f->avail_idx - 1) % QSIZE) + 4);
    }
    return f->ram[STATUS_GPA];
}

static uint8_t request(Fixture *f, uint32_t type, uint64_t sector, uint32_t data_len,
                       bool data_writable)
{
    post(f, type, sector, data_len, data_writable);
    return wait_done(f, NULL);
}

static void read_file_at(const char *path, off_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, off), ==, (ssize_t)len);
    close(fd);
}

static void test_read_write(void)
{
    Fixture f;
    uint8_t buf[1024];
    uint32_t len;

    fixture_init(&f, "drive=d0,serial=vblk-serial");
    uint64_t features = driver_init(&f);
    g_assert_true(features & (1ull << 13)); /* DISCARD */
    g_assert_false(features & (1ull << 5)); /* not RO */
    g_assert_cmpuint(rd(&f, 0x2000, 4), ==, DISK_SIZE / 512);

    post(&f, T_IN, 4, 1024, true);
    g_assert_cmpuint(wait_done(&f, &len), ==, S_OK);
    g_assert_cmpuint(len, ==, 1025);
    g_assert_cmpuint(f.ram[DATA_GPA], ==, 0x11);
    g_assert_cmpuint(f.ram[DATA_GPA + 1023], ==, 0x11);

    for (unsigned i = 0; i < 1024; i++) {
        f.ram[DATA_GPA + i] = (uint8_t)(i * 7);
    }
    g_assert_cmpuint(request(&f, T_OUT, 2, 1024, false), ==, S_OK);
    g_assert_cmpuint(request(&f, T_FLUSH, 0, 0, false), ==, S_OK);
    read_file_at(f.disk, 1024, buf, sizeof(buf));
    g_assert_cmpmem(buf, sizeof(buf), f.ram + DATA_GPA, 1024);

    memset(f.ram + DATA_GPA, 0, 64);
    post(&f, T_GET_ID, 0, 64, true);
    g_assert_cmpuint(wait_done(&f, &len), ==, S_OK);
    g_assert_cmpstr((char *)f.ram + DATA_GPA, ==, "vblk-serial");
    g_assert_cmpuint(len, ==, 21);
    fixture_done(&f);
}

static void test_discard_zeroes(void)
{
    Fixture f;
    uint8_t buf[512];
    struct { uint64_t sector; uint32_t num, flags; } seg[2] = { { 8, 1, 0 }, { 9, 1, 0 } };

    fixture_init(&f, "drive=d0");
    driver_init(&f);
    memcpy(f.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_WZ, 0, 16, false), ==, S_OK);
    read_file_at(f.disk, 8 * 512, buf, sizeof(buf));
    for (unsigned i = 0; i < sizeof(buf); i++) {
        g_assert_cmpuint(buf[i], ==, 0);
    }
    /* We offer one segment a request. */
    memcpy(f.ram + DATA_GPA, seg, sizeof(seg));
    g_assert_cmpuint(request(&f, T_DISCARD, 0, 32, false), ==, S_UNSUPP);
    /* Flags other than unmap, and unmap on discard, are refused. */
    seg[0].flags = 2;
    memcpy(f.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_WZ, 0, 16, false), ==, S_UNSUPP);
    seg[0].flags = 1;
    memcpy(f.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_DISCARD, 0, 16, false), ==, S_UNSUPP);
    seg[0] = (typeof(seg[0])){ DISK_SIZE / 512 - 1, 2, 0 };
    memcpy(f.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_WZ, 0, 16, false), ==, S_IOERR);
    fixture_done(&f);
}

static void test_errors(void)
{
    Fixture f;

    fixture_init(&f, "drive=d0");
    driver_init(&f);
    g_assert_cmpuint(request(&f, T_IN, DISK_SIZE / 512, 512, true), ==, S_IOERR);
    g_assert_cmpuint(request(&f, T_IN, DISK_SIZE / 512 - 1, 1024, true), ==, S_IOERR);
    g_assert_cmpuint(request(&f, T_IN, UINT64_MAX / 256, 512, true), ==, S_IOERR);
    g_assert_cmpuint(request(&f, T_IN, 0, 100, true), ==, S_IOERR);   /* not 512-aligned */
    g_assert_cmpuint(request(&f, T_OUT, 0, 100, false), ==, S_IOERR);
    g_assert_cmpuint(request(&f, 0x7f, 0, 0, false), ==, S_UNSUPP);
    g_assert_cmphex(rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
    fixture_done(&f);
}

static void test_malformed(void)
{
    Fixture f;
    uint16_t *avail;

    fixture_init(&f, "drive=d0");
    driver_init(&f);
    /* A 8-byte header. */
    set_desc(&f, 0, HDR_GPA, 8, VIRTQ_DESC_F_NEXT);
    set_desc(&f, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    avail = (uint16_t *)(f.ram + AVAIL_GPA);
    avail[2] = 0;
    avail[1] = ++f.avail_idx;
    wr(&f, 0x3000, 2, 0);
    g_assert_cmphex(rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_cmpuint(used_idx(&f), ==, 0);

    /* No writable status byte: the device must not write into a read-only buffer. */
    driver_init(&f);
    f.ram[STATUS_GPA] = 0xaa;
    set_desc(&f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT);
    set_desc(&f, 1, STATUS_GPA, 1, 0);
    avail[2] = 0;
    avail[1] = ++f.avail_idx;
    wr(&f, 0x3000, 2, 0);
    g_assert_cmphex(rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_cmpuint(f.ram[STATUS_GPA], ==, 0xaa);

    driver_init(&f);
    g_assert_cmpuint(request(&f, T_FLUSH, 0, 0, false), ==, S_OK);
    fixture_done(&f);
}

static void test_read_only(void)
{
    Fixture f;

    fixture_init(&f, "drive=d1");
    uint64_t features = driver_init(&f);
    g_assert_true(features & (1ull << 5));   /* RO */
    g_assert_false(features & (1ull << 13)); /* no DISCARD */
    g_assert_cmpuint(request(&f, T_IN, 0, 512, true), ==, S_OK);
    g_assert_cmpuint(f.ram[DATA_GPA], ==, 0x22);
    memset(f.ram + DATA_GPA, 0x33, 512);
    g_assert_cmpuint(request(&f, T_OUT, 0, 512, false), ==, S_IOERR);
    uint8_t b;
    read_file_at(f.rodisk, 0, &b, 1);
    g_assert_cmpuint(b, ==, 0x22);
    fixture_done(&f);
}

static void test_reset_in_flight(void)
{
    Fixture f;

    fixture_init(&f, "drive=d0");
    driver_init(&f);
    post(&f, T_IN, 0, 4096, true);
    /* Reset before the block layer completes: the completion must not touch the rings. */
    wr(&f, CC_STATUS, 1, 0);
    for (unsigned i = 0; i < 200; i++) {
        g_main_context_iteration(f.m.ctx, FALSE);
        g_usleep(500);
    }
    g_assert_cmpuint(used_idx(&f), ==, 0);
    driver_init(&f);
    g_assert_cmpuint(request(&f, T_IN, 0, 512, true), ==, S_OK);
    /* And one left in flight at teardown completes after the device is gone. */
    post(&f, T_IN, 0, 4096, true);
    fixture_done(&f);
}

static void test_realize_errors(void)
{
    static const struct { const char *props, *msg; } cases[] = {
        { "drive=d0,num-queues=0", "num-queues=0" },
        { "drive=d0,num-queues=65", "num-queues=65" },
        { "drive=d0,serial=123456789012345678901", "serial=" },
        { "drive=nope", "drive=nope" },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture f;
        Error *err = NULL;
        fixture_init(&f, "drive=d0");
        g_autoptr(Keyval) kv = keyval_parse(cases[i].props, NULL, &err);
        check_no_error(err);
        g_assert_null(device_create(&f.m, "virtio-blk-pci", kv, "virtio-blk-pci", &err));
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg)) {
            g_error("'%s' lacks '%s'", error_get_pretty(err), cases[i].msg);
        }
        error_free(err);
        fixture_done(&f);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-blk/read-write", test_read_write);
    g_test_add_func("/virtio-blk/discard-write-zeroes", test_discard_zeroes);
    g_test_add_func("/virtio-blk/errors", test_errors);
    g_test_add_func("/virtio-blk/malformed", test_malformed);
    g_test_add_func("/virtio-blk/read-only", test_read_only);
    g_test_add_func("/virtio-blk/reset-in-flight", test_reset_in_flight);
    g_test_add_func("/virtio-blk/realize-errors", test_realize_errors);
    return g_test_run();
}
