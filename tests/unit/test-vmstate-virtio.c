/*
 * virtio-pci state through vmstate_save_all / vmstate_load_all: a virtio-blk-pci on
 * machine A is driven to DRIVER_OK and completes a write; A is saved, its RAM copied to a
 * fresh machine B on the same disk image, B loads the state and, without the driver
 * touching any setup register again, the next request (a read of what A wrote) goes
 * through B's mapped BAR, continues A's ring indices and completes.  Also: a request in
 * flight blocks the save until drained, a disk of another size is refused, a write held
 * by werror=stop is retried by the destination once it runs, and the stats buffer a
 * virtio-balloon holds is held again on the destination.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "sen/block.h"
#include "sen/hw/virtio-balloon.h"
#include "sen/vmstate.h"
#include "virtio-test-util.h"

#define HDR_GPA    0x20000ull
#define STATUS_GPA 0x20100ull
#define DATA_GPA   0x30000ull
#define DISK_SIZE  (1024 * 1024)

enum { T_IN = 0, T_OUT = 1 };

typedef struct Side {
    VirtioTestMachine vt;
    char *drive;
} Side;

static void side_init_opts(Side *s, const char *disk, const char *opts)
{
    Error *err = NULL;
    memset(s, 0, sizeof(*s));
    /* Both sides of the migration live in this process on one image, without the
     * destination's -incoming: locking=off, as QEMU's own tests do, or the source's
     * image locks would refuse the destination (docs/image-locking.md). */
    s->drive = g_strdup_printf("file=%s,format=raw,if=none,id=d0,file.locking=off%s", disk,
                               opts);
    char *argv[] = { "sen", "-drive", s->drive, NULL };
    vt_init(&s->vt, 3, argv);
    s->vt.dev = (PCIDevice *)vt_add_device(&s->vt, "virtio-blk-pci", "drive=d0", &err);
    vt_check_no_error(err);
}

static void side_init(Side *s, const char *disk)
{
    side_init_opts(s, disk, "");
}

static void side_done(Side *s)
{
    vt_done(&s->vt);
    g_free(s->drive);
}

/* Header, 512 bytes of data, status; kicked through BAR 4. */
static void post(VirtioTestMachine *f, uint32_t type, uint64_t sector)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { type, 0, sector };
    memcpy(f->ram + HDR_GPA, &hdr, sizeof(hdr));
    f->ram[STATUS_GPA] = 0xff;
    vt_set_desc(f, 0, HDR_GPA, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    vt_set_desc(f, 1, DATA_GPA, 512,
                VIRTQ_DESC_F_NEXT | (type == T_IN ? VIRTQ_DESC_F_WRITE : 0));
    vt_set_desc(f, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    vt_kick(f);
}

static char *make_disk(const char *dir, const char *name, size_t size)
{
    char *path = g_build_filename(dir, name, NULL);
    g_autofree uint8_t *zero = g_malloc0(size);
    g_assert_true(g_file_set_contents(path, (char *)zero, size, NULL));
    return path;
}

static void copy_ram(VirtioTestMachine *from, VirtioTestMachine *to)
{
    memcpy(to->ram, from->ram, VT_RAM_SIZE);
}

static void test_virtio_blk_round_trip(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-vmstate-XXXXXX", NULL);
    g_autofree char *disk = make_disk(dir, "disk.raw", DISK_SIZE);
    Error *err = NULL;

    Side a;
    side_init(&a, disk);
    vt_blk_driver_init(&a.vt);
    memset(a.vt.ram + DATA_GPA, 0x7e, 512);
    post(&a.vt, T_OUT, 3);
    vt_wait_used(&a.vt);
    g_assert_cmpuint(a.vt.ram[STATUS_GPA], ==, 0);

    vmstate_drain_all(&a.vt.m);
    g_autoptr(GByteArray) blob = g_byte_array_new();
    if (!vmstate_save_all(&a.vt.m, blob, &err)) {
        g_error("save: %s", error_get_pretty(err));
    }
    uint16_t avail_idx = a.vt.avail_idx;

    Side b;
    side_init(&b, disk);
    copy_ram(&a.vt, &b.vt);
    side_done(&a);
    if (!vmstate_load_all(&b.vt.m, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    /* The driver carries on where it was: no reset, no queue set-up, BAR 4 as mapped. */
    b.vt.avail_idx = avail_idx;
    g_assert_cmpuint(vt_rd(&b.vt, CC_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, !=, 0);
    g_assert_cmpuint(vt_rd(&b.vt, CC_Q_ENABLE, 2), ==, 1);
    memset(b.vt.ram + DATA_GPA, 0, 512);
    post(&b.vt, T_IN, 3);
    vt_wait_used(&b.vt);
    g_assert_cmpuint(vt_used_idx(&b.vt), ==, 2);
    g_assert_cmpuint(b.vt.ram[STATUS_GPA], ==, 0);
    for (unsigned i = 0; i < 512; i++) {
        g_assert_cmphex(b.vt.ram[DATA_GPA + i], ==, 0x7e);
    }
    side_done(&b);
    g_unlink(disk);
    g_rmdir(dir);
}

static void test_virtio_blk_in_flight(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-vmstate-XXXXXX", NULL);
    g_autofree char *disk = make_disk(dir, "disk.raw", DISK_SIZE);
    Error *err = NULL;

    Side a;
    side_init(&a, disk);
    vt_blk_driver_init(&a.vt);
    post(&a.vt, T_OUT, 1);
    /* Submitted, not completed: completions need the main context, not run yet. */
    g_autoptr(GByteArray) blob = g_byte_array_new();
    g_assert_false(vmstate_save_all(&a.vt.m, blob, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "requests in flight"));
    error_free(err);
    err = NULL;

    vmstate_drain_all(&a.vt.m);
    g_assert_cmpuint(vt_used_idx(&a.vt), ==, 1);
    g_byte_array_set_size(blob, 0);
    g_assert_true(vmstate_save_all(&a.vt.m, blob, &err));
    g_assert_null(err);
    side_done(&a);

    /* The same machine on a disk of another size. */
    g_autofree char *small = make_disk(dir, "small.raw", DISK_SIZE / 2);
    Side b;
    side_init(&b, small);
    g_assert_false(vmstate_load_all(&b.vt.m, blob->data, blob->len, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "drive=d0: the source's disk has 2048 "
                                                   "sectors, this one 1024"));
    error_free(err);
    side_done(&b);
    g_unlink(disk);
    g_unlink(small);
    g_rmdir(dir);
}

/*
 * The source of the held-write tests: a werror=stop side on disk whose driver posts n
 * writes of 0x5c bytes to sector, past an RLIMIT_FSIZE of DISK_SIZE (EFBIG): each is
 * held, none completes.  Returns its saved state.
 */
static GByteArray *save_held_writes(Side *s, const char *disk, uint64_t sector, int n)
{
    GByteArray *blob = g_byte_array_new();
    Error *err = NULL;
    struct rlimit old, lim;

    side_init_opts(s, disk, ",werror=stop");
    vt_blk_driver_init(&s->vt);
    memset(s->vt.ram + DATA_GPA, 0x5c, 512);
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
    lim = old;
    lim.rlim_cur = DISK_SIZE;
    signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
    for (int i = 0; i < n; i++) {
        post(&s->vt, T_OUT, sector);
        vmstate_drain_all(&s->vt.m);
        while (g_main_context_iteration(NULL, FALSE)) {
        }
    }
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
    signal(SIGXFSZ, SIG_DFL);
    g_assert_cmpuint(vt_used_idx(&s->vt), ==, 0);   /* held, not completed */
    g_assert_cmpint(blk_iostatus(block_find_backend(&s->vt.m, "d0")), ==,
                    BLOCK_IO_STATUS_FAILED);
    if (!vmstate_save_all(&s->vt.m, blob, &err)) {
        g_error("save: %s", error_get_pretty(err));
    }
    return blob;
}

/*
 * werror=stop: a write past RLIMIT_FSIZE (EFBIG) is held and the save takes it along
 * (QEMU sends held requests in its virtio-blk state); the destination holds it too, and
 * when its VM starts the write is made and completes to the driver there.
 */
static void test_virtio_blk_held(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-vmstate-XXXXXX", NULL);
    g_autofree char *disk = make_disk(dir, "disk.raw", 4 * DISK_SIZE);
    const uint64_t sector = 3 * DISK_SIZE / 512;
    Error *err = NULL;

    Side a;
    g_autoptr(GByteArray) blob = save_held_writes(&a, disk, sector, 1);
    /* Saving twice works: the source keeps its request and its count in use. */
    g_autoptr(GByteArray) again = g_byte_array_new();
    g_assert_true(vmstate_save_all(&a.vt.m, again, &err));
    uint16_t avail_idx = a.vt.avail_idx;
    g_autofree uint8_t *ram = g_memdup2(a.vt.ram, VT_RAM_SIZE);

    Side b;
    side_init_opts(&b, disk, ",werror=stop");
    copy_ram(&a.vt, &b.vt);
    side_done(&a);
    if (!vmstate_load_all(&b.vt.m, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    b.vt.avail_idx = avail_idx;
    g_assert_cmpuint(vt_used_idx(&b.vt), ==, 0);
    g_assert_cmpint(b.vt.m.held_requests, ==, 1); /* an io-error stop would stop B */
    machine_run_start_hooks(&b.vt.m);
    g_assert_cmpint(b.vt.m.held_requests, ==, 0);
    vt_wait_used(&b.vt);
    g_assert_cmpuint(b.vt.ram[STATUS_GPA], ==, 0);
    uint8_t buf[512];
    FILE *f = fopen(disk, "rb");
    g_assert_nonnull(f);
    g_assert_cmpint(fseek(f, (long)(sector * 512), SEEK_SET), ==, 0);
    g_assert_cmpuint(fread(buf, 1, sizeof(buf), f), ==, sizeof(buf));
    fclose(f);
    g_assert_cmphex(buf[0], ==, 0x5c);
    g_assert_cmphex(buf[511], ==, 0x5c);
    /* The next request continues the ring after the retried one. */
    post(&b.vt, T_IN, sector);
    vt_wait_used(&b.vt);
    g_assert_cmpuint(vt_used_idx(&b.vt), ==, 2);
    side_done(&b);

    /* A destination without that queue's entry as a request: refused, not run. */
    Side c;
    side_init_opts(&c, disk, ",werror=stop");
    memcpy(c.vt.ram, ram, VT_RAM_SIZE);
    memset(c.vt.ram + VT_DESC_GPA, 0, 16 * VT_QSIZE); /* descriptor 0: no header */
    g_assert_false(vmstate_load_all(&c.vt.m, blob->data, blob->len, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "drive=d0: held request 0 (queue 0, "
                                                   "head 0) is not a valid request"));
    error_free(err);
    side_done(&c);
    g_unlink(disk);
    g_rmdir(dir);
}

/*
 * A held subsection that names one (queue, head) twice (here a driver that offered head 0
 * again while it was held) is refused on load: the destination would complete the head
 * twice and count it twice in use.  None of the stream's held requests stays held.
 */
static void test_virtio_blk_held_duplicate(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-vmstate-XXXXXX", NULL);
    g_autofree char *disk = make_disk(dir, "disk.raw", 4 * DISK_SIZE);
    const uint64_t sector = 3 * DISK_SIZE / 512;
    Error *err = NULL;

    Side a;
    g_autoptr(GByteArray) blob = save_held_writes(&a, disk, sector, 2);

    Side b;
    side_init_opts(&b, disk, ",werror=stop");
    copy_ram(&a.vt, &b.vt);
    side_done(&a);
    g_assert_false(vmstate_load_all(&b.vt.m, blob->data, blob->len, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "drive=d0: held request 1 (queue 0, "
                                                   "head 0) is held twice"));
    error_free(err);
    g_assert_cmpint(b.vt.m.held_requests, ==, 0);
    /* Nor does the one before it stay held: a start after the failed load makes none. */
    machine_run_start_hooks(&b.vt.m);
    for (int i = 0; i < 50; i++) {
        g_main_context_iteration(b.vt.m.ctx, FALSE);
        g_usleep(1000);
    }
    g_assert_cmpuint(vt_used_idx(&b.vt), ==, 0);
    side_done(&b);
    g_unlink(disk);
    g_rmdir(dir);
}

#define BALLOON_STATS_Q 2

/* Driver side of a balloon: DRIVER_OK with only the stats queue, at the VT_* rings. */
static void balloon_driver_init(VirtioTestMachine *f)
{
    vt_map_bar4(f);
    vt_wr(f, CC_STATUS, 1, 0);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vt_wr(f, CC_DFSELECT, 4, 0);
    uint32_t lo = (uint32_t)vt_rd(f, CC_DF, 4);
    vt_wr(f, CC_GFSELECT, 4, 0);
    vt_wr(f, CC_GF, 4, lo);
    vt_wr(f, CC_GFSELECT, 4, 1);
    vt_wr(f, CC_GF, 4, 1); /* VERSION_1 */
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK);
    vt_wr(f, CC_Q_SELECT, 2, BALLOON_STATS_Q);
    vt_wr(f, CC_Q_SIZE, 2, VT_QSIZE);
    vt_wr(f, CC_Q_DESC, 8, VT_DESC_GPA);
    vt_wr(f, CC_Q_AVAIL, 8, VT_AVAIL_GPA);
    vt_wr(f, CC_Q_USED, 8, VT_USED_GPA);
    memset(f->ram + VT_AVAIL_GPA, 0, 0x2000);
    vt_wr(f, CC_Q_ENABLE, 2, 1);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void test_virtio_balloon_held_stats(void)
{
    Error *err = NULL;
    VirtioTestMachine a, b;
    char *argv[] = { "sen", NULL };

    vt_init(&a, 1, argv);
    a.dev = (PCIDevice *)vt_add_device(&a, "virtio-balloon-pci", NULL, &err);
    vt_check_no_error(err);
    balloon_driver_init(&a);
    /* One stat (MEMFREE = 1234) in an out buffer; the device keeps the buffer. */
    uint8_t stat[10] = { BALLOON_S_MEMFREE, 0, 0xd2, 0x04 };
    memcpy(a.ram + DATA_GPA, stat, sizeof(stat));
    vt_set_desc(&a, 0, DATA_GPA, sizeof(stat), 0);
    uint16_t *avail = (uint16_t *)(a.ram + VT_AVAIL_GPA);
    avail[2] = 0;
    __atomic_store_n(&avail[1], 1, __ATOMIC_RELEASE);
    vt_wr(&a, 0x3000 + 4 * BALLOON_STATS_Q, 2, BALLOON_STATS_Q);
    g_assert_cmpuint(vt_used_idx(&a), ==, 0);

    g_autoptr(GByteArray) blob = g_byte_array_new();
    if (!vmstate_save_all(&a.m, blob, &err)) {
        g_error("save: %s", error_get_pretty(err));
    }
    vt_init(&b, 1, argv);
    b.dev = (PCIDevice *)vt_add_device(&b, "virtio-balloon-pci", NULL, &err);
    vt_check_no_error(err);
    memcpy(b.ram, a.ram, VT_RAM_SIZE);

    /* The source still holds it after the save: asking for stats hands it back once. */
    uint64_t stats[BALLOON_S_NR];
    bool valid[BALLOON_S_NR];
    virtio_balloon_stats(virtio_balloon_find(&a.m), stats, valid);
    g_assert_cmpuint(vt_used_idx(&a), ==, 1);
    vt_done(&a);
    if (!vmstate_load_all(&b.m, blob->data, blob->len, &err)) {
        g_error("load: %s", error_get_pretty(err));
    }
    memset(stats, 0, sizeof(stats));
    virtio_balloon_stats(virtio_balloon_find(&b.m), stats, valid);
    g_assert_true(valid[BALLOON_S_MEMFREE]);
    g_assert_cmpuint(stats[BALLOON_S_MEMFREE], ==, 1234);
    /* ...and B held the buffer: the request for fresh stats returned it. */
    g_assert_cmpuint(vt_used_idx(&b), ==, 1);
    vt_done(&b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vmstate-virtio/blk-round-trip", test_virtio_blk_round_trip);
    g_test_add_func("/vmstate-virtio/blk-in-flight", test_virtio_blk_in_flight);
    g_test_add_func("/vmstate-virtio/blk-held", test_virtio_blk_held);
    g_test_add_func("/vmstate-virtio/blk-held-duplicate", test_virtio_blk_held_duplicate);
    g_test_add_func("/vmstate-virtio/balloon-held-stats", test_virtio_balloon_held_stats);
    return g_test_run();
}
