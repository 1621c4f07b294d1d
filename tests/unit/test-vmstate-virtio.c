/*
 * virtio-pci state through vmstate_save_all / vmstate_load_all: a virtio-blk-pci on
 * machine A is driven to DRIVER_OK and completes a write; A is saved, its RAM copied to a
 * fresh machine B on the same disk image, B loads the state and, without the driver
 * touching any setup register again, the next request (a read of what A wrote) goes
 * through B's mapped BAR, continues A's ring indices and completes.  Also: a request in
 * flight blocks the save until drained, and a disk of another size is refused.
 */
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "sen/block.h"
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

static void side_init(Side *s, const char *disk)
{
    Error *err = NULL;
    memset(s, 0, sizeof(*s));
    s->drive = g_strdup_printf("file=%s,format=raw,if=none,id=d0", disk);
    char *argv[] = { "sen", "-drive", s->drive, NULL };
    vt_init(&s->vt, 3, argv);
    s->vt.dev = (PCIDevice *)vt_add_device(&s->vt, "virtio-blk-pci", "drive=d0", &err);
    vt_check_no_error(err);
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vmstate-virtio/blk-round-trip", test_virtio_blk_round_trip);
    g_test_add_func("/vmstate-virtio/blk-in-flight", test_virtio_blk_in_flight);
    return g_test_run();
}
