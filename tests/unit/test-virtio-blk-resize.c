/*
 * block_resize as virtio-blk sees it: blk_truncate on the drive of a realized
 * virtio-blk-pci grows the raw image, the device config's capacity follows and the driver
 * gets a config-change interrupt (ISR bit 1, config_generation bumped); requests past the
 * old end then work.  And a write the host refuses (past RLIMIT_FSIZE) completes with
 * VIRTIO_BLK_S_IOERR through the BLOCK_IO_ERROR path.  A hand-built Machine with a fake
 * accelerator, as in test-virtio-blk.
 */
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
#define ISR       0x1000
#define DEVCFG    0x2000
#define DISK_SIZE (1024 * 1024)

#define DESC_GPA  0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA  0x12000ull
#define HDR_GPA   0x20000ull
#define STATUS_GPA 0x20100ull
#define DATA_GPA  0x30000ull
#define QSIZE     16

enum { CC_GFSELECT = 0x08, CC_GF = 0x0c, CC_STATUS = 0x14, CC_CFG_GENERATION = 0x15,
       CC_Q_SELECT = 0x16, CC_Q_SIZE = 0x18, CC_Q_ENABLE = 0x1c, CC_Q_DESC = 0x20,
       CC_Q_AVAIL = 0x28, CC_Q_USED = 0x30 };

typedef struct Fixture {
    Machine m;
    AccelOps ops;
    char *dir, *disk;
    PCIDevice *dev;
    uint8_t *ram;
    uint16_t avail_idx;
    unsigned msis;
} Fixture;

static void fake_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    ((Fixture *)m->accel_state)->msis++;
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

static void fixture_init(Fixture *f)
{
    Error *err = NULL;
    bool exit_early = false;

    memset(f, 0, sizeof(*f));
    f->dir = g_dir_make_tmp("sen-vblkrs-XXXXXX", NULL);
    f->disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *zero = g_malloc0(DISK_SIZE);
    g_assert_true(g_file_set_contents(f->disk, zero, DISK_SIZE, NULL));
    g_autofree char *d0 = g_strdup_printf("file=%s,format=raw,if=none,id=d0", f->disk);
    char *argv[] = { "sen", "-drive", d0, NULL };
    f->m.cfg = cmdline_parse(3, argv, &exit_early, &err);
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
    g_autoptr(Keyval) kv = keyval_parse("drive=d0", NULL, &err);
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
    g_rmdir(f->dir);
    g_free(f->disk);
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

static uint64_t capacity(Fixture *f)
{
    return rd(f, DEVCFG, 4) | rd(f, DEVCFG + 4, 4) << 32;
}

static void bar_init(Fixture *f)
{
    cfg_write(f, PCI_BASE_ADDRESS_4, 4, (uint32_t)BAR4);
    cfg_write(f, PCI_BASE_ADDRESS_5, 4, 0);
    cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void driver_init(Fixture *f)
{
    uint64_t features;

    bar_init(f);
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
}

static void set_desc(Fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    VirtqDesc d = { .addr = addr, .len = len, .flags = flags, .next = i + 1 };
    memcpy(f->ram + DESC_GPA + 16 * i, &d, sizeof(d));
}

/* A one-sector write at sector; returns the status byte once used. */
static uint8_t write_sector(Fixture *f, uint64_t sector)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { 1, 0, sector };
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    memcpy(f->ram + HDR_GPA, &hdr, sizeof(hdr));
    memset(f->ram + DATA_GPA, 0x5a, 512);
    f->ram[STATUS_GPA] = 0xff;
    set_desc(f, 0, HDR_GPA, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    set_desc(f, 1, DATA_GPA, 512, VIRTQ_DESC_F_NEXT);
    set_desc(f, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    avail[2 + f->avail_idx % QSIZE] = 0;
    __atomic_store_n(&avail[1], ++f->avail_idx, __ATOMIC_RELEASE);
    wr(f, 0x3000, 2, 0);
    while (__atomic_load_n((uint16_t *)(f->ram + USED_GPA + 2), __ATOMIC_ACQUIRE) !=
           f->avail_idx) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(f->m.ctx, FALSE);
        g_usleep(100);
    }
    return f->ram[STATUS_GPA];
}

static void test_resize(void)
{
    Fixture f;
    Error *err = NULL;
    struct stat st;

    fixture_init(&f);
    bar_init(&f);
    g_assert_cmpuint(capacity(&f), ==, DISK_SIZE / 512);

    /* Before DRIVER_OK: the capacity changes, no interrupt is raised. */
    BlockBackend *blk = block_find_backend(&f.m, "d0");
    g_assert_nonnull(blk);
    g_assert_true(blk_truncate(blk, 2 * DISK_SIZE, false, &err));
    check_no_error(err);
    g_assert_cmpuint(capacity(&f), ==, 2 * DISK_SIZE / 512);
    g_assert_cmpuint(rd(&f, ISR, 1), ==, 0);

    wr(&f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    uint64_t gen = rd(&f, CC_CFG_GENERATION, 1);
    g_assert_true(blk_truncate(blk, 3 * DISK_SIZE, false, &err));
    check_no_error(err);
    g_assert_cmpuint(capacity(&f), ==, 3 * DISK_SIZE / 512);
    g_assert_cmpuint(rd(&f, CC_CFG_GENERATION, 1), !=, gen);
    g_assert_cmphex(rd(&f, ISR, 1), ==, 2);   /* config change; reading clears it */
    g_assert_cmphex(rd(&f, ISR, 1), ==, 0);
    g_assert_cmpint(stat(f.disk, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 3 * DISK_SIZE);
    g_assert_cmpuint(f.msis, ==, 0);  /* no MSI-X vector programmed: INTx path */

    /* Shrinking (raw allows it) follows too; a failed resize changes nothing. */
    g_assert_true(blk_truncate(blk, DISK_SIZE / 2, true, &err));
    check_no_error(err);
    g_assert_cmpuint(capacity(&f), ==, DISK_SIZE / 2 / 512);
    g_assert_cmphex(rd(&f, ISR, 1), ==, 2);
    g_assert_false(blk_truncate(blk, DISK_SIZE / 4, false, &err));
    g_assert_nonnull(err);
    g_clear_pointer(&err, error_free);
    g_assert_cmpuint(capacity(&f), ==, DISK_SIZE / 2 / 512);
    g_assert_cmphex(rd(&f, ISR, 1), ==, 0);

    /* After unrealize the drive no longer points at the device. */
    device_destroy_all(&f.m);
    g_assert_true(blk_truncate(blk, DISK_SIZE, false, &err));
    check_no_error(err);
    fixture_done(&f);
}

static void test_io_error(void)
{
    Fixture f;
    Error *err = NULL;
    struct rlimit old, lim;

    fixture_init(&f);
    driver_init(&f);
    g_assert_true(blk_truncate(block_find_backend(&f.m, "d0"), 4 * DISK_SIZE, false, &err));
    check_no_error(err);
    g_assert_cmpuint(write_sector(&f, 3 * DISK_SIZE / 512), ==, 0);

    /* Writes past the file size limit fail with EFBIG (not a signal, SIGXFSZ ignored). */
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
    lim = old;
    lim.rlim_cur = DISK_SIZE;
    signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
    uint8_t bad = write_sector(&f, 3 * DISK_SIZE / 512);
    uint8_t good = write_sector(&f, 0);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
    signal(SIGXFSZ, SIG_DFL);
    g_assert_cmpuint(bad, ==, 1);   /* VIRTIO_BLK_S_IOERR */
    g_assert_cmpuint(good, ==, 0);

    BlockAcctStats st;
    blk_get_stats(block_find_backend(&f.m, "d0"), &st);
    g_assert_cmpuint(st.failed_wr_operations, ==, 1);
    fixture_done(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-blk/resize", test_resize);
    g_test_add_func("/virtio-blk/io-error", test_io_error);
    return g_test_run();
}
