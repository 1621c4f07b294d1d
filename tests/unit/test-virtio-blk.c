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
#include "hw/virtio/virtio-pci.h"
#include "sen/block.h"
#include "block/block-internal.h"
#include "virtio-test-util.h"

#define HDR_GPA   0x20000ull
#define STATUS_GPA 0x20100ull
#define DATA_GPA  0x30000ull
#define DISK_SIZE (1024 * 1024)

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WZ = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

typedef struct Fixture {
    VirtioTestMachine vt;
    char *dir, *disk, *rodisk;
} Fixture;

static void make_disk(const char *path, uint8_t fill)
{
    g_autofree uint8_t *buf = g_malloc(DISK_SIZE);
    memset(buf, fill, DISK_SIZE);
    g_assert_true(g_file_set_contents(path, (char *)buf, DISK_SIZE, NULL));
}

/* The machine and the images, no device yet. */
static void fixture_init_machine(Fixture *f)
{
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
    vt_init(&f->vt, 5, argv);
}

static void fixture_add_blk(Fixture *f, const char *blk_props)
{
    Error *err = NULL;

    f->vt.dev = (PCIDevice *)vt_add_device(&f->vt, "virtio-blk-pci", blk_props, &err);
    vt_check_no_error(err);
    g_assert_nonnull(f->vt.dev);
}

static void fixture_init(Fixture *f, const char *blk_props)
{
    fixture_init_machine(f);
    fixture_add_blk(f, blk_props);
}

/* The image files, after the machine is gone. */
static void fixture_files_done(Fixture *f)
{
    g_unlink(f->disk);
    g_unlink(f->rodisk);
    g_rmdir(f->dir);
    g_free(f->disk);
    g_free(f->rodisk);
    g_free(f->dir);
}

static void fixture_done(Fixture *f)
{
    vt_done(&f->vt);
    fixture_files_done(f);
}

/* Posts header + optional data + status byte and kicks; returns without waiting. */
static void post(Fixture *f, uint32_t type, uint64_t sector, uint32_t data_len,
                 bool data_writable)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { type, 0, sector };
    unsigned n = 0;

    memcpy(f->vt.ram + HDR_GPA, &hdr, sizeof(hdr));
    f->vt.ram[STATUS_GPA] = 0xff;
    vt_set_desc(&f->vt, n++, HDR_GPA, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    if (data_len) {
        vt_set_desc(&f->vt, n++, DATA_GPA, data_len,
                    VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0));
    }
    vt_set_desc(&f->vt, n++, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    vt_kick(&f->vt);
}

/* Runs the main context until the request is used; returns its status byte. */
static uint8_t wait_done(Fixture *f, uint32_t *len)
{
    uint8_t *ram = f->vt.ram;
    unsigned slot = (f->vt.avail_idx - 1) % VT_QSIZE;

    vt_wait_used(&f->vt);
    if (len) {
        *len = *(uint32_t *)(ram + VT_USED_GPA + 4 + 8 * slot + 4);
    }
    return ram[STATUS_GPA];
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
    uint64_t features = vt_blk_driver_init(&f.vt);
    g_assert_true(features & (1ull << 13)); /* DISCARD */
    g_assert_false(features & (1ull << 5)); /* not RO */
    g_assert_cmpuint(vt_rd(&f.vt, 0x2000, 4), ==, DISK_SIZE / 512);

    post(&f, T_IN, 4, 1024, true);
    g_assert_cmpuint(wait_done(&f, &len), ==, S_OK);
    g_assert_cmpuint(len, ==, 1025);
    g_assert_cmpuint(f.vt.ram[DATA_GPA], ==, 0x11);
    g_assert_cmpuint(f.vt.ram[DATA_GPA + 1023], ==, 0x11);

    for (unsigned i = 0; i < 1024; i++) {
        f.vt.ram[DATA_GPA + i] = (uint8_t)(i * 7);
    }
    g_assert_cmpuint(request(&f, T_OUT, 2, 1024, false), ==, S_OK);
    g_assert_cmpuint(request(&f, T_FLUSH, 0, 0, false), ==, S_OK);
    read_file_at(f.disk, 1024, buf, sizeof(buf));
    g_assert_cmpmem(buf, sizeof(buf), f.vt.ram + DATA_GPA, 1024);

    memset(f.vt.ram + DATA_GPA, 0, 64);
    post(&f, T_GET_ID, 0, 64, true);
    g_assert_cmpuint(wait_done(&f, &len), ==, S_OK);
    g_assert_cmpstr((char *)f.vt.ram + DATA_GPA, ==, "vblk-serial");
    g_assert_cmpuint(len, ==, 21);
    fixture_done(&f);
}

static void test_discard_zeroes(void)
{
    Fixture f;
    uint8_t buf[512];
    struct { uint64_t sector; uint32_t num, flags; } seg[2] = { { 8, 1, 0 }, { 9, 1, 0 } };

    fixture_init(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    memcpy(f.vt.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_WZ, 0, 16, false), ==, S_OK);
    read_file_at(f.disk, 8 * 512, buf, sizeof(buf));
    for (unsigned i = 0; i < sizeof(buf); i++) {
        g_assert_cmpuint(buf[i], ==, 0);
    }
    /* We offer one segment a request. */
    memcpy(f.vt.ram + DATA_GPA, seg, sizeof(seg));
    g_assert_cmpuint(request(&f, T_DISCARD, 0, 32, false), ==, S_UNSUPP);
    /* Flags other than unmap, and unmap on discard, are refused. */
    seg[0].flags = 2;
    memcpy(f.vt.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_WZ, 0, 16, false), ==, S_UNSUPP);
    seg[0].flags = 1;
    memcpy(f.vt.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_DISCARD, 0, 16, false), ==, S_UNSUPP);
    seg[0] = (typeof(seg[0])){ DISK_SIZE / 512 - 1, 2, 0 };
    memcpy(f.vt.ram + DATA_GPA, seg, sizeof(seg[0]));
    g_assert_cmpuint(request(&f, T_WZ, 0, 16, false), ==, S_IOERR);
    fixture_done(&f);
}

static void test_errors(void)
{
    Fixture f;

    fixture_init(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    g_assert_cmpuint(request(&f, T_IN, DISK_SIZE / 512, 512, true), ==, S_IOERR);
    g_assert_cmpuint(request(&f, T_IN, DISK_SIZE / 512 - 1, 1024, true), ==, S_IOERR);
    g_assert_cmpuint(request(&f, T_IN, UINT64_MAX / 256, 512, true), ==, S_IOERR);
    g_assert_cmpuint(request(&f, T_IN, 0, 100, true), ==, S_IOERR);   /* not 512-aligned */
    g_assert_cmpuint(request(&f, T_OUT, 0, 100, false), ==, S_IOERR);
    g_assert_cmpuint(request(&f, 0x7f, 0, 0, false), ==, S_UNSUPP);
    g_assert_cmphex(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
    /* Refused before the disk: invalid, not failed, operations (QEMU's blockstats). */
    BlockAcctStats st;
    blk_get_stats(block_find_backend(&f.vt.m, "d0"), &st);
    g_assert_cmpuint(st.invalid_rd_operations, ==, 4);
    g_assert_cmpuint(st.invalid_wr_operations, ==, 1);
    g_assert_cmpuint(st.failed_rd_operations + st.failed_wr_operations, ==, 0);
    g_assert_cmpuint(st.rd_operations + st.wr_operations, ==, 0);
    fixture_done(&f);
}

static void test_malformed(void)
{
    Fixture f;
    uint16_t *avail;

    fixture_init(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    /* A 8-byte header. */
    vt_set_desc(&f.vt, 0, HDR_GPA, 8, VIRTQ_DESC_F_NEXT);
    vt_set_desc(&f.vt, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE);
    avail = (uint16_t *)(f.vt.ram + VT_AVAIL_GPA);
    avail[2] = 0;
    avail[1] = ++f.vt.avail_idx;
    vt_wr(&f.vt, 0x3000, 2, 0);
    g_assert_cmphex(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);

    /* No writable status byte: the device must not write into a read-only buffer. */
    vt_blk_driver_init(&f.vt);
    f.vt.ram[STATUS_GPA] = 0xaa;
    vt_set_desc(&f.vt, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT);
    vt_set_desc(&f.vt, 1, STATUS_GPA, 1, 0);
    avail[2] = 0;
    avail[1] = ++f.vt.avail_idx;
    vt_wr(&f.vt, 0x3000, 2, 0);
    g_assert_cmphex(vt_rd(&f.vt, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_cmpuint(f.vt.ram[STATUS_GPA], ==, 0xaa);

    vt_blk_driver_init(&f.vt);
    g_assert_cmpuint(request(&f, T_FLUSH, 0, 0, false), ==, S_OK);
    fixture_done(&f);
}

static void test_read_only(void)
{
    Fixture f;

    fixture_init(&f, "drive=d1");
    uint64_t features = vt_blk_driver_init(&f.vt);
    g_assert_true(features & (1ull << 5));   /* RO */
    g_assert_false(features & (1ull << 13)); /* no DISCARD */
    g_assert_cmpuint(request(&f, T_IN, 0, 512, true), ==, S_OK);
    g_assert_cmpuint(f.vt.ram[DATA_GPA], ==, 0x22);
    memset(f.vt.ram + DATA_GPA, 0x33, 512);
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
    vt_blk_driver_init(&f.vt);
    post(&f, T_IN, 0, 4096, true);
    /* Reset before the block layer completes: the completion must not touch the rings. */
    vt_wr(&f.vt, CC_STATUS, 1, 0);
    for (unsigned i = 0; i < 200; i++) {
        g_main_context_iteration(f.vt.m.ctx, FALSE);
        g_usleep(500);
    }
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);
    vt_blk_driver_init(&f.vt);
    g_assert_cmpuint(request(&f, T_IN, 0, 512, true), ==, S_OK);
    /* And one left in flight at teardown completes after the device is gone. */
    post(&f, T_IN, 0, 4096, true);
    fixture_done(&f);
}

/*
 * The ioeventfd path runs the queue handler with kick_unlocked_follows set and makes the
 * block calls in ops->kick_unlocked after dropping the VM lock: until then nothing may
 * reach the disk; afterwards the request completes as usual.  Then many requests one
 * after the other, more than the request pool keeps, each checked on the disk.
 */
static void test_submit_after_unlock(void)
{
    Fixture f;
    uint8_t buf[4096];

    fixture_init(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    VirtIODevice *vdev = ((VirtIOPCIProxy *)f.vt.dev)->vdev;
    g_assert_nonnull(vdev->ops->kick_unlocked);

    memset(f.vt.ram + DATA_GPA, 0x77, 4096);
    vdev->kick_unlocked_follows = true;
    post(&f, T_OUT, 8, 4096, false);
    vdev->kick_unlocked_follows = false;
    for (unsigned i = 0; i < 50; i++) {
        g_main_context_iteration(f.vt.m.ctx, FALSE);
        g_usleep(200);
    }
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);
    read_file_at(f.disk, 8 * 512, buf, sizeof(buf));
    g_assert_cmpuint(buf[0], ==, 0x11); /* not written yet */
    vdev->ops->kick_unlocked(vdev);
    g_assert_cmpuint(wait_done(&f, NULL), ==, S_OK);
    read_file_at(f.disk, 8 * 512, buf, sizeof(buf));
    g_assert_cmpuint(buf[0], ==, 0x77);
    g_assert_cmpuint(buf[4095], ==, 0x77);

    /* Nothing pending: a second kick_unlocked has nothing to do. */
    vdev->ops->kick_unlocked(vdev);
    for (unsigned i = 0; i < 600; i++) {
        uint8_t fill = (uint8_t)(i * 7 + 1);
        uint64_t sector = (i % 64) * 8;
        memset(f.vt.ram + DATA_GPA, fill, 4096);
        g_assert_cmpuint(request(&f, T_OUT, sector, 4096, false), ==, S_OK);
        memset(f.vt.ram + DATA_GPA, 0, 4096);
        g_assert_cmpuint(request(&f, T_IN, sector, 4096, true), ==, S_OK);
        g_assert_cmpuint(f.vt.ram[DATA_GPA], ==, fill);
        g_assert_cmpuint(f.vt.ram[DATA_GPA + 4095], ==, fill);
    }
    fixture_done(&f);
}

/*
 * A vCPU may reset the device between the ioeventfd path's unlock and its kick_unlocked
 * (the VM lock is free then): a read prepared before the reset must not start after it,
 * or it fills a buffer the driver may already use for something else.  The device works
 * on afterwards and its request pool is intact.
 */
static void test_reset_before_unlocked_submit(void)
{
    Fixture f;

    fixture_init(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    VirtIODevice *vdev = ((VirtIOPCIProxy *)f.vt.dev)->vdev;

    memset(f.vt.ram + DATA_GPA, 0x55, 4096);
    vdev->kick_unlocked_follows = true;
    post(&f, T_IN, 0, 4096, true);
    vdev->kick_unlocked_follows = false;
    vt_wr(&f.vt, CC_STATUS, 1, 0); /* the vCPU's reset, VM lock held */
    vdev->ops->kick_unlocked(vdev);
    for (unsigned i = 0; i < 200; i++) {
        g_main_context_iteration(f.vt.m.ctx, FALSE);
        g_usleep(500);
    }
    g_assert_cmpint(blk_in_flight(block_find_backend(&f.vt.m, "d0")), ==, 0);
    g_assert_cmpuint(f.vt.ram[DATA_GPA], ==, 0x55);
    g_assert_cmpuint(f.vt.ram[DATA_GPA + 4095], ==, 0x55);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);

    vt_blk_driver_init(&f.vt);
    g_assert_cmpuint(request(&f, T_IN, 0, 4096, true), ==, S_OK);
    g_assert_cmpuint(f.vt.ram[DATA_GPA], ==, 0x11);
    fixture_done(&f);
}

/* Chain at descriptor 3*k: header k, data (len bytes at data_gpa), status byte k. */
static void post_chain(Fixture *f, unsigned k, uint32_t type, uint64_t sector,
                       uint64_t data_gpa, uint32_t len)
{
    struct { uint32_t type, ioprio; uint64_t sector; } hdr = { type, 0, sector };
    uint16_t *avail = (uint16_t *)(f->vt.ram + VT_AVAIL_GPA);

    memcpy(f->vt.ram + HDR_GPA + 16 * k, &hdr, sizeof(hdr));
    f->vt.ram[STATUS_GPA + k] = 0xff;
    vt_set_desc(&f->vt, 3 * k, HDR_GPA + 16 * k, sizeof(hdr), VIRTQ_DESC_F_NEXT);
    vt_set_desc(&f->vt, 3 * k + 1, data_gpa, len,
                VIRTQ_DESC_F_NEXT | (type == T_IN ? VIRTQ_DESC_F_WRITE : 0));
    vt_set_desc(&f->vt, 3 * k + 2, STATUS_GPA + k, 1, VIRTQ_DESC_F_WRITE);
    avail[2 + f->vt.avail_idx % VT_QSIZE] = 3 * k;
    __atomic_store_n(&avail[1], ++f->vt.avail_idx, __ATOMIC_RELEASE);
}

/*
 * Reads and writes made available together and adjacent on the disk are merged into one
 * block request (counted as merged in the statistics); each still completes with its own
 * status and data, also when its buffer does not follow the previous one in memory, and
 * a request that does not continue the run (other type, gap) is submitted on its own.
 */
static void test_merge(void)
{
    Fixture f;
    BlockAcctStats st;
    BlockBackend *blk;
    uint8_t buf[2048];
    /* Out of order in memory, in order on the disk: sectors 8, 9, 10, 11. */
    const uint64_t gpa[4] = { DATA_GPA + 0x1000, DATA_GPA, DATA_GPA + 0x200,
                              DATA_GPA + 0x3000 };

    fixture_init(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    blk = block_find_backend(&f.vt.m, "d0");
    g_assert_nonnull(blk);
    for (unsigned k = 0; k < 4; k++) {
        memset(f.vt.ram + gpa[k], 0xa0 + k, 512);
        post_chain(&f, k, T_OUT, 8 + k, gpa[k], 512);
    }
    memset(f.vt.ram + DATA_GPA + 0x4000, 0xee, 512);
    post_chain(&f, 4, T_OUT, 100, DATA_GPA + 0x4000, 512); /* a gap: not merged */
    vt_wr(&f.vt, 0x3000, 2, 0);
    vt_wait_used(&f.vt);
    for (unsigned k = 0; k < 5; k++) {
        g_assert_cmpuint(f.vt.ram[STATUS_GPA + k], ==, S_OK);
    }
    blk_get_stats(blk, &st);
    g_assert_cmpuint(st.wr_operations, ==, 5);
    g_assert_cmpuint(st.wr_merged, ==, 3);
    g_assert_cmpuint(st.wr_bytes, ==, 5 * 512);
    read_file_at(f.disk, 8 * 512, buf, sizeof(buf));
    for (unsigned k = 0; k < 4; k++) {
        g_assert_cmpmem(buf + 512 * k, 512, f.vt.ram + gpa[k], 512);
    }
    read_file_at(f.disk, 100 * 512, buf, 512);
    g_assert_cmpuint(buf[0], ==, 0xee);
    g_assert_cmpuint(buf[511], ==, 0xee);

    /* Read them back into other buffers; a write in the middle splits the run. */
    memset(f.vt.ram + DATA_GPA + 0x8000, 0, 0x4000);
    post_chain(&f, 0, T_IN, 8, DATA_GPA + 0x8000, 1024);
    post_chain(&f, 1, T_IN, 10, DATA_GPA + 0x9000, 512);
    post_chain(&f, 2, T_OUT, 11, DATA_GPA + 0x4000, 512);
    post_chain(&f, 3, T_IN, 11, DATA_GPA + 0xa000, 512);
    post_chain(&f, 4, T_IN, 12, DATA_GPA + 0xb000, 512);
    vt_wr(&f.vt, 0x3000, 2, 0);
    vt_wait_used(&f.vt);
    for (unsigned k = 0; k < 5; k++) {
        g_assert_cmpuint(f.vt.ram[STATUS_GPA + k], ==, S_OK);
    }
    g_assert_cmpmem(f.vt.ram + DATA_GPA + 0x8000, 512, f.vt.ram + gpa[0], 512);
    g_assert_cmpmem(f.vt.ram + DATA_GPA + 0x8200, 512, f.vt.ram + gpa[1], 512);
    g_assert_cmpmem(f.vt.ram + DATA_GPA + 0x9000, 512, f.vt.ram + gpa[2], 512);
    /* Sector 11 was rewritten with 0xee before or after that read: either is legal for
     * requests in flight together, but sector 12 is the disk's original fill. */
    g_assert_cmpuint(f.vt.ram[DATA_GPA + 0xb000], ==, 0x11);
    blk_get_stats(blk, &st);
    g_assert_cmpuint(st.rd_operations, ==, 4);
    g_assert_cmpuint(st.rd_merged, ==, 2); /* 8+10, then 11+12 */
    g_assert_cmpuint(st.wr_operations, ==, 6);
    fixture_done(&f);
}

/* Posts n writes of 512 bytes at sectors 16 * k (gaps: never merged), filled 0xc0 + k,
 * and kicks through the BAR with the VM lock held, as a vCPU exit does. */
static void post_spread_writes(Fixture *f, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        memset(f->vt.ram + DATA_GPA + 0x1000 * k, 0xc0 + k, 512);
        post_chain(f, k, T_OUT, 16 * k, DATA_GPA + 0x1000 * k, 512);
    }
    machine_lock(&f->vt.m);
    vt_wr(&f->vt, 0x3000, 2, 0);
    machine_unlock(&f->vt.m);
}

static void check_spread_writes(Fixture *f, const char *path, unsigned n)
{
    uint8_t buf[512];

    for (unsigned k = 0; k < n; k++) {
        read_file_at(path, 16 * k * 512, buf, sizeof(buf));
        g_assert_cmpuint(buf[0], ==, 0xc0 + k);
        g_assert_cmpuint(buf[511], ==, 0xc0 + k);
    }
}

/*
 * With aio=native, the requests one kick makes available reach the kernel with one
 * io_submit (blk_submit_pending plugs the backend around its calls), and land.
 */
static void test_native_batch(void)
{
    Fixture f;
    uint8_t buf[4096];

    memset(&f, 0, sizeof(f));
    f.dir = g_dir_make_tmp("sen-vblk-XXXXXX", NULL);
    f.disk = g_build_filename(f.dir, "disk.raw", NULL);
    f.rodisk = g_build_filename(f.dir, "ro.raw", NULL);
    make_disk(f.disk, 0x11);
    make_disk(f.rodisk, 0x22);
    g_autofree char *d0 = g_strdup_printf("file=%s,format=raw,if=none,id=d0,cache=none,"
                                          "aio=native", f.disk);
    char *argv[] = { "sen", "-drive", d0, NULL };
    vt_init(&f.vt, 3, argv);
    fixture_add_blk(&f, "drive=d0");
    vt_blk_driver_init(&f.vt);
    BlockBackend *blk = block_find_backend(&f.vt.m, "d0");
    g_assert_nonnull(blk);
    BlockDriverState *file = blk_bs(blk)->file;
    unsigned calls = file_posix_aio_submit_calls(file);

    /* 4 KiB writes 8 KiB apart (never merged), aligned for any O_DIRECT block size. */
    for (unsigned k = 0; k < 4; k++) {
        memset(f.vt.ram + DATA_GPA + 0x1000 * k, 0xc0 + k, 4096);
        post_chain(&f, k, T_OUT, 16 * k, DATA_GPA + 0x1000 * k, 4096);
    }
    machine_lock(&f.vt.m);
    vt_wr(&f.vt, 0x3000, 2, 0);
    machine_unlock(&f.vt.m);
    vt_wait_used(&f.vt);
    for (unsigned k = 0; k < 4; k++) {
        g_assert_cmpuint(f.vt.ram[STATUS_GPA + k], ==, S_OK);
        read_file_at(f.disk, 16 * k * 512, buf, sizeof(buf));
        g_assert_cmpuint(buf[0], ==, 0xc0 + k);
        g_assert_cmpuint(buf[4095], ==, 0xc0 + k);
    }
    g_test_message("%u io_submit calls for 4 requests",
                   file_posix_aio_submit_calls(file) - calls);
    g_assert_cmpuint(file_posix_aio_submit_calls(file) - calls, ==, 1);
    fixture_done(&f);
}

/*
 * x-max-bytes-in-flight bounds what is in the block layer at once: with room for one
 * request, four made available together go one at a time, each completion starting the
 * next, and all of them complete with their data on the disk.  blk_drain (what
 * migration and savevm wait with) also finishes the ones still waiting for room.
 */
static void test_inflight_bound(void)
{
    Fixture f;
    BlockBackend *blk;

    fixture_init(&f, "drive=d0,x-max-bytes-in-flight=512");
    vt_blk_driver_init(&f.vt);
    blk = block_find_backend(&f.vt.m, "d0");
    post_spread_writes(&f, 4);
    g_assert_cmpint(blk_in_flight(blk), ==, 1);
    vt_wait_used(&f.vt);
    for (unsigned k = 0; k < 4; k++) {
        g_assert_cmpuint(f.vt.ram[STATUS_GPA + k], ==, S_OK);
    }
    check_spread_writes(&f, f.disk, 4);

    post_spread_writes(&f, 3);
    g_assert_cmpint(blk_in_flight(blk), ==, 1);
    blk_drain(blk);
    g_assert_cmpint(blk_in_flight(blk), ==, 0);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, f.vt.avail_idx);

    /* 0: no bound, all four at once. */
    fixture_done(&f);
    fixture_init(&f, "drive=d0,x-max-bytes-in-flight=0");
    vt_blk_driver_init(&f.vt);
    blk = block_find_backend(&f.vt.m, "d0");
    post_spread_writes(&f, 4);
    g_assert_cmpint(blk_in_flight(blk), ==, 4);
    vt_wait_used(&f.vt);
    check_spread_writes(&f, f.disk, 4);
    fixture_done(&f);
}

/*
 * A reset drops the requests still waiting for room (they never reach the disk, so a
 * buffer the driver reuses is not filled behind its back); the one in flight completes
 * without touching the rings, and the device works on.  Requests waiting when the
 * device goes away still reach the disk.
 */
static void test_inflight_bound_reset(void)
{
    Fixture f;
    BlockBackend *blk;
    uint8_t buf[512];

    fixture_init(&f, "drive=d0,x-max-bytes-in-flight=512");
    vt_blk_driver_init(&f.vt);
    blk = block_find_backend(&f.vt.m, "d0");
    for (unsigned k = 0; k < 3; k++) {
        memset(f.vt.ram + DATA_GPA + 0x1000 * k, 0x55, 512);
        post_chain(&f, k, T_IN, 16 * k, DATA_GPA + 0x1000 * k, 512);
    }
    machine_lock(&f.vt.m);
    vt_wr(&f.vt, 0x3000, 2, 0);
    g_assert_cmpint(blk_in_flight(blk), ==, 1);
    vt_wr(&f.vt, CC_STATUS, 1, 0);
    machine_unlock(&f.vt.m);
    blk_drain(blk);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, 0);
    for (unsigned k = 1; k < 3; k++) {
        g_assert_cmpuint(f.vt.ram[DATA_GPA + 0x1000 * k], ==, 0x55);
        g_assert_cmpuint(f.vt.ram[DATA_GPA + 0x1000 * k + 511], ==, 0x55);
    }
    vt_blk_driver_init(&f.vt);
    g_assert_cmpuint(request(&f, T_IN, 16, 512, true), ==, S_OK);
    g_assert_cmpuint(f.vt.ram[DATA_GPA], ==, 0x11);

    post_spread_writes(&f, 4);
    g_assert_cmpint(blk_in_flight(blk), ==, 1);
    vt_done(&f.vt);
    check_spread_writes(&f, f.disk, 4);
    read_file_at(f.disk, 8 * 512, buf, sizeof(buf));
    g_assert_cmpuint(buf[0], ==, 0x11);
    fixture_files_done(&f);
}

/*
 * iothread=: the backend's completions run on the I/O thread, which also starts what
 * waited for room (x-max-bytes-in-flight), without this thread running any context.
 * blk_drain from here cannot run the I/O thread's context and waits for it instead;
 * machine_iothreads_barrier (what vmstate_drain_all starts with) returns.  At teardown
 * the thread stops first and what it left is completed by block_cleanup.
 */
static void test_iothread(void)
{
    Fixture f;
    Error *err = NULL;

    fixture_init_machine(&f);
    IOThread *io = iothread_new("io0");
    g_assert_true(iothread_start(io, &err));
    vt_check_no_error(err);
    f.vt.m.iothreads = g_ptr_array_new();
    g_ptr_array_add(f.vt.m.iothreads, io);
    fixture_add_blk(&f, "drive=d0,iothread=io0,x-max-bytes-in-flight=512");
    vt_blk_driver_init(&f.vt);
    BlockBackend *blk = block_find_backend(&f.vt.m, "d0");
    g_assert_true(blk_bs(blk)->ctx == iothread_context(io));

    post_spread_writes(&f, 4);
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (vt_used_idx(&f.vt) != f.vt.avail_idx) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(100);
    }
    check_spread_writes(&f, f.disk, 4);

    post_spread_writes(&f, 4);
    blk_drain(blk);
    g_assert_cmpint(blk_in_flight(blk), ==, 0);
    g_assert_cmpuint(vt_used_idx(&f.vt), ==, f.vt.avail_idx);
    machine_iothreads_barrier(&f.vt.m);

    post_spread_writes(&f, 3);
    iothread_stop(io);
    fixture_done(&f);
    iothread_free(io);
    g_ptr_array_free(f.vt.m.iothreads, TRUE);
}

static void test_realize_errors(void)
{
    static const struct { const char *props, *msg; } cases[] = {
        { "drive=d0,num-queues=0", "num-queues=0" },
        { "drive=d0,num-queues=65", "num-queues=65" },
        { "drive=d0,serial=123456789012345678901", "serial=" },
        { "drive=nope", "drive=nope" },
        { "drive=d0,iothread=nope", "iothread=nope: no -object iothread with that id" },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture f;
        Error *err = NULL;
        fixture_init(&f, "drive=d0");
        g_autoptr(Keyval) kv = keyval_parse(cases[i].props, NULL, &err);
        vt_check_no_error(err);
        g_assert_null(device_create(&f.vt.m, "virtio-blk-pci", kv, "virtio-blk-pci", &err));
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
    g_test_add_func("/virtio-blk/merge", test_merge);
    g_test_add_func("/virtio-blk/native-batch", test_native_batch);
    g_test_add_func("/virtio-blk/inflight-bound", test_inflight_bound);
    g_test_add_func("/virtio-blk/inflight-bound-reset", test_inflight_bound_reset);
    g_test_add_func("/virtio-blk/iothread", test_iothread);
    g_test_add_func("/virtio-blk/submit-after-unlock", test_submit_after_unlock);
    g_test_add_func("/virtio-blk/reset-before-unlocked-submit",
                    test_reset_before_unlocked_submit);
    g_test_add_func("/virtio-blk/realize-errors", test_realize_errors);
    return g_test_run();
}
