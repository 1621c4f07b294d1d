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
#include "sen/block.h"
#include "virtio-test-util.h"

#define ISR       0x1000
#define DEVCFG    0x2000
#define DISK_SIZE (1024 * 1024)

#define HDR_GPA   0x20000ull
#define STATUS_GPA 0x20100ull
#define DATA_GPA  0x30000ull

typedef struct Fixture {
    VirtioTestMachine vt;
    char *dir, *disk;
} Fixture;

static void fixture_init(Fixture *f)
{
    Error *err = NULL;

    memset(f, 0, sizeof(*f));
    f->dir = g_dir_make_tmp("sen-vblkrs-XXXXXX", NULL);
    f->disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *zero = g_malloc0(DISK_SIZE);
    g_assert_true(g_file_set_contents(f->disk, zero, DISK_SIZE, NULL));
    g_autofree char *d0 = g_strdup_printf("file=%s,format=raw,if=none,id=d0", f->disk);
    char *argv[] = { "sen", "-drive", d0, NULL };
    vt_init(&f->vt, 3, argv);
    f->vt.dev = (PCIDevice *)vt_add_device(&f->vt, "virtio-blk-pci", "drive=d0", &err);
    vt_check_no_error(err);
    g_assert_nonnull(f->vt.dev);
}

static void fixture_done(Fixture *f)
{
    vt_done(&f->vt);
    g_unlink(f->disk);
    g_rmdir(f->dir);
    g_free(f->disk);
    g_free(f->dir);
}

static uint64_t capacity(Fixture *f)
{
    return vt_rd(&f->vt, DEVCFG, 4) | vt_rd(&f->vt, DEVCFG + 4, 4) << 32;
}

/* A one-sector write at sector; returns the status byte once used. */
static uint8_t write_sector(Fixture *f, uint64_t sector)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { 1, 0, sector };
    uint8_t *ram = f->vt.ram;

    memcpy(ram + HDR_GPA, &hdr, sizeof(hdr));
    memset(ram + DATA_GPA, 0x5a, 512);
    ram[STATUS_GPA] = 0xff;
    vt_set_desc(&f->vt, 0, HDR_GPA, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    vt_set_desc(&f->vt, 1, DATA_GPA, 512, VIRTQ_DESC_F_NEXT);
    vt_set_desc(&f->vt, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    vt_kick(&f->vt);
    vt_wait_used(&f->vt);
    return ram[STATUS_GPA];
}

static void test_resize(void)
{
    Fixture f;
    Error *err = NULL;
    struct stat st;

    fixture_init(&f);
    vt_map_bar4(&f.vt);
    g_assert_cmpuint(capacity(&f), ==, DISK_SIZE / 512);

    /* Before DRIVER_OK: the capacity changes, no interrupt is raised. */
    BlockBackend *blk = block_find_backend(&f.vt.m, "d0");
    g_assert_nonnull(blk);
    g_assert_true(blk_truncate(blk, 2 * DISK_SIZE, false, &err));
    vt_check_no_error(err);
    g_assert_cmpuint(capacity(&f), ==, 2 * DISK_SIZE / 512);
    g_assert_cmpuint(vt_rd(&f.vt, ISR, 1), ==, 0);

    vt_wr(&f.vt, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    uint64_t gen = vt_rd(&f.vt, CC_CFG_GEN, 1);
    g_assert_true(blk_truncate(blk, 3 * DISK_SIZE, false, &err));
    vt_check_no_error(err);
    g_assert_cmpuint(capacity(&f), ==, 3 * DISK_SIZE / 512);
    g_assert_cmpuint(vt_rd(&f.vt, CC_CFG_GEN, 1), !=, gen);
    g_assert_cmphex(vt_rd(&f.vt, ISR, 1), ==, 2);   /* config change; reading clears it */
    g_assert_cmphex(vt_rd(&f.vt, ISR, 1), ==, 0);
    g_assert_cmpint(stat(f.disk, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 3 * DISK_SIZE);
    g_assert_cmpuint(f.vt.msis, ==, 0);  /* no MSI-X vector programmed: INTx path */

    /* Shrinking (raw allows it) follows too; a failed resize changes nothing. */
    g_assert_true(blk_truncate(blk, DISK_SIZE / 2, true, &err));
    vt_check_no_error(err);
    g_assert_cmpuint(capacity(&f), ==, DISK_SIZE / 2 / 512);
    g_assert_cmphex(vt_rd(&f.vt, ISR, 1), ==, 2);
    g_assert_false(blk_truncate(blk, DISK_SIZE / 4, false, &err));
    g_assert_nonnull(err);
    g_clear_pointer(&err, error_free);
    g_assert_cmpuint(capacity(&f), ==, DISK_SIZE / 2 / 512);
    g_assert_cmphex(vt_rd(&f.vt, ISR, 1), ==, 0);

    /* After unrealize the drive no longer points at the device. */
    device_destroy_all(&f.vt.m);
    g_assert_true(blk_truncate(blk, DISK_SIZE, false, &err));
    vt_check_no_error(err);
    fixture_done(&f);
}

static void test_io_error(void)
{
    Fixture f;
    Error *err = NULL;
    struct rlimit old, lim;

    fixture_init(&f);
    vt_blk_driver_init(&f.vt);
    g_assert_true(blk_truncate(block_find_backend(&f.vt.m, "d0"), 4 * DISK_SIZE, false, &err));
    vt_check_no_error(err);
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
    blk_get_stats(block_find_backend(&f.vt.m, "d0"), &st);
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
