/*
 * Virtqueue walking and the virtio core (hw/virtio/virtqueue.c, virtio.c) over a fake
 * guest memory: hand-built chains, every kind of malformed chain, event index, and a
 * random fuzz of descriptor tables.
 */
#include <glib.h>
#include <string.h>
#include "sen/iov.h"
#include "sen/virtio.h"

#define RAM_SIZE  (1024 * 1024ull)
#define DESC_GPA  0x1000ull
#define AVAIL_GPA 0x3000ull
#define USED_GPA  0x4000ull
#define DATA_GPA  0x10000ull
#define QSIZE     16

typedef struct Fixture {
    GuestMemory *gm;
    uint8_t *ram;
    VirtIODevice vdev;
    VirtQueue *vq;
    unsigned notifies;
    uint16_t last_vector;
    uint16_t avail_idx; /* driver side */
    unsigned kicks;
} Fixture;

static void count_notify(void *opaque, uint16_t vector)
{
    Fixture *f = opaque;
    f->notifies++;
    f->last_vector = vector;
}

static void noop_handler(VirtIODevice *vdev, VirtQueue *vq)
{
}

static void drive_up(Fixture *f, uint64_t features)
{
    virtio_set_status(&f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_features(&f->vdev, features);
    virtio_set_status(&f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                      VIRTIO_STATUS_FEATURES_OK);
    f->vq->num = QSIZE;
    f->vq->desc_gpa = DESC_GPA;
    f->vq->avail_gpa = AVAIL_GPA;
    f->vq->used_gpa = USED_GPA;
    f->vq->vector = 3;
    g_assert_true(virtqueue_enable(f->vq));
    virtio_set_status(&f->vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    f->avail_idx = 0;
}

#define ALL_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC) | \
                      (1ull << VIRTIO_F_RING_EVENT_IDX))

static void fixture_setup(Fixture *f, gconstpointer data)
{
    Error *err = NULL;

    memset(f, 0, sizeof(*f));
    f->gm = guest_mem_new(RAM_SIZE, &err);
    g_assert_null(err);
    g_assert_true(guest_mem_add_region(f->gm, 0, RAM_SIZE, 0, &err));
    f->ram = guest_mem_map(f->gm, 0, RAM_SIZE);
    virtio_init(&f->vdev, "virtio-test", 99, NULL, f->gm, 0, 8, 1);
    f->vdev.notify = count_notify;
    f->vdev.notify_opaque = f;
    f->vq = virtio_add_queue(&f->vdev, 0, QSIZE, noop_handler);
    drive_up(f, data ? GPOINTER_TO_SIZE(data) : ALL_FEATURES);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    virtio_cleanup(&f->vdev);
    guest_mem_free(f->gm);
}

static void set_desc(Fixture *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    VirtqDesc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    g_assert_true(guest_mem_write(f->gm, table + 16 * i, &d, sizeof(d)));
}

static void offer(Fixture *f, uint16_t head)
{
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);
    avail[2 + f->avail_idx % QSIZE] = head;
    f->avail_idx++;
    __atomic_store_n(&avail[1], f->avail_idx, __ATOMIC_RELEASE);
}

static uint16_t used_idx(Fixture *f)
{
    return *(uint16_t *)(f->ram + USED_GPA + 2);
}

static void used_entry(Fixture *f, unsigned slot, uint32_t *id, uint32_t *len)
{
    uint32_t *e = (uint32_t *)(f->ram + USED_GPA + 4 + 8 * slot);
    *id = e[0];
    *len = e[1];
}

static void assert_broken(Fixture *f)
{
    g_assert_true(f->vdev.broken);
    g_assert_cmphex(f->vdev.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_null(virtqueue_pop(f->vq));
    g_assert_true(virtqueue_empty(f->vq));
}

static void test_empty(Fixture *f, gconstpointer data)
{
    g_assert_true(virtqueue_empty(f->vq));
    g_assert_null(virtqueue_pop(f->vq));
    g_assert_false(f->vdev.broken);
}

static void test_simple_chain(Fixture *f, gconstpointer data)
{
    VirtQueueElement *e;
    uint32_t id, len;

    memcpy(f->ram + DATA_GPA, "hello", 5);
    set_desc(f, DESC_GPA, 5, DATA_GPA, 5, VIRTQ_DESC_F_NEXT, 9);
    set_desc(f, DESC_GPA, 9, DATA_GPA + 0x100, 3, VIRTQ_DESC_F_NEXT, 2);
    set_desc(f, DESC_GPA, 2, DATA_GPA + 0x200, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
    set_desc(f, DESC_GPA, 3, DATA_GPA + 0x300, 16, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 5);
    g_assert_false(virtqueue_empty(f->vq));

    e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 5);
    g_assert_cmpuint(e->out_num, ==, 2);
    g_assert_cmpuint(e->in_num, ==, 2);
    g_assert_cmpuint(e->out_len, ==, 8);
    g_assert_cmpuint(e->in_len, ==, 80);
    g_assert_true(e->out_sg[0].iov_base == f->ram + DATA_GPA);
    g_assert_cmpmem(e->out_sg[0].iov_base, 5, "hello", 5);
    g_assert_true(e->in_sg[1].iov_base == f->ram + DATA_GPA + 0x300);
    g_assert_cmpuint(e->in_gpa[0], ==, DATA_GPA + 0x200);
    g_assert_true(virtqueue_empty(f->vq));

    /* Write across the in buffers, push, check the used ring. */
    uint8_t buf[70];
    memset(buf, 0xab, sizeof(buf));
    g_assert_cmpuint(iov_from_buf(e->in_sg, e->in_num, 0, buf, sizeof(buf)), ==, 70);
    g_assert_cmpuint(f->ram[DATA_GPA + 0x300 + 5], ==, 0xab);
    g_assert_cmpuint(f->ram[DATA_GPA + 0x300 + 6], ==, 0);
    virtqueue_push(f->vq, e, 70);
    virtqueue_element_free(e);
    g_assert_cmpuint(used_idx(f), ==, 1);
    used_entry(f, 0, &id, &len);
    g_assert_cmpuint(id, ==, 5);
    g_assert_cmpuint(len, ==, 70);

    virtio_queue_notify_driver(&f->vdev, f->vq);
    g_assert_cmpuint(f->notifies, ==, 1);
    g_assert_cmpuint(f->last_vector, ==, 3);
    g_assert_cmpuint(virtio_isr_read_clear(&f->vdev), ==, VIRTIO_ISR_QUEUE);
    g_assert_cmpuint(virtio_isr_read_clear(&f->vdev), ==, 0);
    g_assert_false(f->vdev.broken);
}

static void test_push_clamps_len(Fixture *f, gconstpointer data)
{
    uint32_t id, len;

    set_desc(f, DESC_GPA, 0, DATA_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 0);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    virtqueue_push(f->vq, e, 1000);
    virtqueue_element_free(e);
    used_entry(f, 0, &id, &len);
    g_assert_cmpuint(len, ==, 8);
}

static void test_unpop(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 1, DATA_GPA, 8, 0, 0);
    offer(f, 1);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    virtqueue_unpop(f->vq, e);
    e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 1);
    virtqueue_element_free(e);
}

/* virtqueue_pop_into: a short chain lands in the caller's storage, a longer one is
 * allocated whole; release frees only the allocated one. */
static void test_pop_into(Fixture *f, gconstpointer data)
{
    VirtQueueSmallElement s;
    const uint64_t table = 0x20000;

    g_assert_null(virtqueue_pop_into(f->vq, &s)); /* nothing offered */
    set_desc(f, DESC_GPA, 6, DATA_GPA + 0x100, 32, VIRTQ_DESC_F_WRITE, 0);
    set_desc(f, DESC_GPA, 4, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 6);
    offer(f, 4);
    VirtQueueElement *e = virtqueue_pop_into(f->vq, &s);
    g_assert_true(e == &s.e);
    g_assert_cmpuint(e->head, ==, 4);
    g_assert_cmpuint(e->out_num, ==, 1);
    g_assert_cmpuint(e->out_len, ==, 8);
    g_assert_true(e->out_sg[0].iov_base == f->ram + DATA_GPA);
    g_assert_cmpuint(e->in_len, ==, 32);
    g_assert_cmpuint(e->in_gpa[0], ==, DATA_GPA + 0x100);
    virtqueue_push(f->vq, e, 5);
    virtqueue_element_release(e, &s);

    for (unsigned i = 0; i <= VIRTQUEUE_SMALL_SEGS; i++) {
        set_desc(f, table, i, DATA_GPA + 0x10 * i, 16,
                 i < VIRTQUEUE_SMALL_SEGS ? VIRTQ_DESC_F_NEXT : 0, i + 1);
    }
    set_desc(f, DESC_GPA, 7, table, 16 * (VIRTQUEUE_SMALL_SEGS + 1), VIRTQ_DESC_F_INDIRECT,
             0);
    offer(f, 7);
    e = virtqueue_pop_into(f->vq, &s);
    g_assert_nonnull(e);
    g_assert_true(e != &s.e);
    g_assert_cmpuint(e->head, ==, 7);
    g_assert_cmpuint(e->out_num, ==, VIRTQUEUE_SMALL_SEGS + 1);
    g_assert_cmpuint(e->out_len, ==, 16 * (VIRTQUEUE_SMALL_SEGS + 1));
    virtqueue_push(f->vq, e, 0);
    virtqueue_element_release(e, &s); /* freed: ASan and valgrind see a leak otherwise */
    g_assert_cmpuint(used_idx(f), ==, 2);
    g_assert_false(f->vdev.broken);
}

/* virtqueue_pop_small: the element lives in the caller's storage; a chain in more pieces
 * than it holds stays in the ring, whole, for virtqueue_pop. */
static void test_pop_small(Fixture *f, gconstpointer data)
{
    VirtQueueSmallElement s;
    const uint64_t table = 0x20000;

    set_desc(f, DESC_GPA, 6, DATA_GPA + 0x100, 32, VIRTQ_DESC_F_WRITE, 0);
    set_desc(f, DESC_GPA, 4, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 6);
    offer(f, 4);
    g_assert_true(virtqueue_pop_small(f->vq, &s));
    g_assert_cmpuint(s.e.head, ==, 4);
    g_assert_cmpuint(s.e.out_num, ==, 1);
    g_assert_cmpuint(s.e.in_num, ==, 1);
    g_assert_cmpuint(s.e.in_len, ==, 32);
    g_assert_true(s.e.in_sg[0].iov_base == f->ram + DATA_GPA + 0x100);
    g_assert_cmpuint(s.e.in_gpa[0], ==, DATA_GPA + 0x100);
    g_assert_false(virtqueue_pop_small(f->vq, &s)); /* nothing more */
    virtqueue_unpop_small(f->vq);
    g_assert_true(virtqueue_pop_small(f->vq, &s));
    g_assert_cmpuint(s.e.head, ==, 4);
    virtqueue_push(f->vq, &s.e, 5);
    g_assert_cmpuint(used_idx(f), ==, 1);

    for (unsigned i = 0; i <= VIRTQUEUE_SMALL_SEGS; i++) {
        set_desc(f, table, i, DATA_GPA + 0x10 * i, 16,
                 VIRTQ_DESC_F_WRITE | (i < VIRTQUEUE_SMALL_SEGS ? VIRTQ_DESC_F_NEXT : 0),
                 i + 1);
    }
    set_desc(f, DESC_GPA, 7, table, 16 * (VIRTQUEUE_SMALL_SEGS + 1), VIRTQ_DESC_F_INDIRECT,
             0);
    offer(f, 7);
    g_assert_false(virtqueue_pop_small(f->vq, &s));
    g_assert_false(f->vdev.broken);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 7);
    g_assert_cmpuint(e->in_num, ==, VIRTQUEUE_SMALL_SEGS + 1);
    virtqueue_element_free(e);
}

static void test_zero_len_skipped(Fixture *f, gconstpointer data)
{
    /* A zero-length descriptor carries nothing, even at an address outside RAM. */
    set_desc(f, DESC_GPA, 0, 0xffffffff0000ull, 0, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, 0, 0);
    offer(f, 0);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->out_num, ==, 1);
    virtqueue_element_free(e);
}

static void test_wrap(Fixture *f, gconstpointer data)
{
    /* More than 2^16 requests: the free-running indices wrap. */
    for (unsigned i = 0; i < 70000; i++) {
        set_desc(f, DESC_GPA, i % QSIZE, DATA_GPA, 4, 0, 0);
        offer(f, i % QSIZE);
        VirtQueueElement *e = virtqueue_pop(f->vq);
        g_assert_nonnull(e);
        g_assert_cmpuint(e->head, ==, i % QSIZE);
        virtqueue_push(f->vq, e, 0);
        virtqueue_element_free(e);
    }
    g_assert_cmpuint(used_idx(f), ==, 70000 & 0xffff);
    g_assert_false(f->vdev.broken);
}

static void test_indirect(Fixture *f, gconstpointer data)
{
    const uint64_t table = 0x8000;

    set_desc(f, table, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
    set_desc(f, table, 2, DATA_GPA + 0x100, 32, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, table, 1, DATA_GPA + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
    set_desc(f, DESC_GPA, 7, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 7);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 7);
    g_assert_cmpuint(e->out_num, ==, 2);
    g_assert_cmpuint(e->in_num, ==, 1);
    g_assert_cmpuint(e->out_len, ==, 48);
    g_assert_true(e->in_sg[0].iov_base == f->ram + DATA_GPA + 0x200);
    virtqueue_push(f->vq, e, 1);
    virtqueue_element_free(e);
    g_assert_false(f->vdev.broken);
}

static void test_indirect_unaligned(Fixture *f, gconstpointer data)
{
    const uint64_t table = 0x8003; /* nothing requires the table to be aligned */

    set_desc(f, table, 0, DATA_GPA, 16, 0, 0);
    set_desc(f, DESC_GPA, 0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->out_len, ==, 16);
    virtqueue_element_free(e);
}

/* ---- malformed chains: each must break the device, once, and nothing else ---- */

static void test_loop(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
    /* The driver is told through a config interrupt. */
    g_assert_cmpuint(f->notifies, ==, 1);
    g_assert_cmpuint(virtio_isr_read_clear(&f->vdev), ==, VIRTIO_ISR_CONFIG);
}

static void test_self_loop(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 4, DATA_GPA, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
    offer(f, 4);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_loop(Fixture *f, gconstpointer data)
{
    const uint64_t table = 0x8000;

    set_desc(f, table, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, table, 1, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
    set_desc(f, DESC_GPA, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_outside_ram(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, RAM_SIZE - 4, 8, 0, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

/* The device may read ROM (a readable buffer) but never write it: a writable buffer there
 * would let the guest rewrite its firmware through the device. */
static void test_writable_rom(Fixture *f, gconstpointer data)
{
    const uint64_t rom = 4 * RAM_SIZE;
    Error *err = NULL;
    VirtQueueElement *e;

    g_assert_true(guest_mem_add_rom(f->gm, rom, 4096, &err));
    set_desc(f, DESC_GPA, 0, rom, 8, 0, 0);
    offer(f, 0);
    e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->out_len, ==, 8);
    virtqueue_push(f->vq, e, 0);
    virtqueue_element_free(e);
    set_desc(f, DESC_GPA, 1, rom, 8, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 1);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_wrapping_address(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, UINT64_MAX - 3, 8, 0, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_next_out_of_range(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, QSIZE);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_head_out_of_range(Fixture *f, gconstpointer data)
{
    offer(f, QSIZE + 3);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_avail_jump(Fixture *f, gconstpointer data)
{
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);
    avail[1] = QSIZE + 1;
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_read_after_write(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, 0, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_not_negotiated(Fixture *f, gconstpointer data)
{
    set_desc(f, 0x8000, 0, DATA_GPA, 4, 0, 0);
    set_desc(f, DESC_GPA, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_nested(Fixture *f, gconstpointer data)
{
    set_desc(f, 0x8000, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc(f, DESC_GPA, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_bad_len(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, 0x8000, 24, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_huge(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, 0x8000, 16 * (VIRTQUEUE_MAX_SEGS + 1), VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_with_next(Fixture *f, gconstpointer data)
{
    set_desc(f, 0x8000, 0, DATA_GPA, 4, 0, 0);
    set_desc(f, DESC_GPA, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, DATA_GPA, 4, 0, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_indirect_outside_ram(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

static void test_too_many_segments(Fixture *f, gconstpointer data)
{
    /* A full indirect table of VIRTQUEUE_MAX_SEGS entries is fine. */
    const uint64_t table = 0x20000;
    for (unsigned i = 0; i < VIRTQUEUE_MAX_SEGS; i++) {
        set_desc(f, table, i, DATA_GPA, 1,
                 i + 1 < VIRTQUEUE_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0, i + 1);
    }
    set_desc(f, DESC_GPA, 0, table, 16 * VIRTQUEUE_MAX_SEGS, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->out_num, ==, VIRTQUEUE_MAX_SEGS);
    virtqueue_element_free(e);
}

static void test_reset_recovers(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
    /* Only a reset clears NEEDS_RESET; the driver cannot clear the bit by writing status. */
    virtio_set_status(&f->vdev, f->vdev.status & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    g_assert_cmphex(f->vdev.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    virtio_set_status(&f->vdev, 0);
    g_assert_false(f->vdev.broken);
    g_assert_cmpuint(f->vdev.status, ==, 0);
    g_assert_false(f->vq->enabled);
    memset(f->ram + AVAIL_GPA, 0, 0x2000);
    drive_up(f, ALL_FEATURES);
    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, 0, 0);
    offer(f, 0);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    virtqueue_element_free(e);
}

/* ---- set-up errors ---- */

static void test_enable_errors(Fixture *f, gconstpointer data)
{
    static const struct { uint16_t num; uint64_t desc, avail, used; } bad[] = {
        { 12, DESC_GPA, AVAIL_GPA, USED_GPA },          /* not a power of two */
        { 2 * QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA },   /* above the maximum */
        { QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA },   /* misaligned */
        { QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA },
        { QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2 },
        { QSIZE, RAM_SIZE - 16, AVAIL_GPA, USED_GPA },  /* outside RAM */
        { QSIZE, DESC_GPA, AVAIL_GPA, RAM_SIZE - 8 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        virtio_reset(&f->vdev);
        f->vq->num = bad[i].num;
        f->vq->desc_gpa = bad[i].desc;
        f->vq->avail_gpa = bad[i].avail;
        f->vq->used_gpa = bad[i].used;
        g_assert_false(virtqueue_enable(f->vq));
        g_assert_true(f->vdev.broken);
        g_assert_false(f->vq->enabled);
    }
}

static void test_features(Fixture *f, gconstpointer data)
{
    VirtIODevice *vdev = &f->vdev;

    virtio_reset(vdev);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    /* Bits the device does not offer are dropped. */
    virtio_set_features(vdev, ~0ull);
    g_assert_cmphex(vdev->guest_features, ==, ALL_FEATURES);
    /* Without VERSION_1 the device refuses FEATURES_OK. */
    virtio_set_features(vdev, 1ull << VIRTIO_F_INDIRECT_DESC);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                      VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmphex(vdev->status & VIRTIO_STATUS_FEATURES_OK, ==, 0);
    virtio_set_features(vdev, 1ull << VIRTIO_F_VERSION_1);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                      VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmphex(vdev->status & VIRTIO_STATUS_FEATURES_OK, !=, 0);
    /* Fixed once accepted. */
    virtio_set_features(vdev, ALL_FEATURES);
    g_assert_cmphex(vdev->guest_features, ==, 1ull << VIRTIO_F_VERSION_1);
}

static void test_config_space(Fixture *f, gconstpointer data)
{
    VirtIODevice *vdev = &f->vdev;

    memcpy(vdev->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    g_assert_cmphex(virtio_config_read(vdev, 0, 4), ==, 0x04030201);
    g_assert_cmphex(virtio_config_read(vdev, 6, 2), ==, 0x0807);
    g_assert_cmphex(virtio_config_read(vdev, 6, 4), ==, 0);
    g_assert_cmphex(virtio_config_read(vdev, 0xffffffff, 1), ==, 0);
    /* No config_write op: the space is read-only. */
    virtio_config_write(vdev, 0, 4, 0xdeadbeef);
    virtio_config_write(vdev, 7, 2, 0xffff);
    g_assert_cmphex(virtio_config_read(vdev, 0, 8), ==, 0x0807060504030201ull);
    virtio_config_changed(vdev);
    g_assert_cmpuint(vdev->config_generation, ==, 1);
    g_assert_cmpuint(virtio_isr_read_clear(vdev), ==, VIRTIO_ISR_CONFIG);
}

static void counting_handler(VirtIODevice *vdev, VirtQueue *vq)
{
    Fixture *f = (Fixture *)((char *)vdev - offsetof(Fixture, vdev));
    f->kicks++;
}

static void test_kick(Fixture *f, gconstpointer data)
{
    f->vq->handler = counting_handler;
    virtio_queue_kick(&f->vdev, 0);
    g_assert_cmpuint(f->kicks, ==, 1);
    virtio_queue_kick(&f->vdev, 1);
    virtio_queue_kick(&f->vdev, 0xffff);
    g_assert_cmpuint(f->kicks, ==, 1);
    /* Before DRIVER_OK nothing runs. */
    virtio_set_status(&f->vdev, f->vdev.status & ~VIRTIO_STATUS_DRIVER_OK);
    virtio_queue_kick(&f->vdev, 0);
    g_assert_cmpuint(f->kicks, ==, 1);
}

/* ---- notification suppression ---- */

static void test_event_idx(Fixture *f, gconstpointer data)
{
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);
    uint16_t *avail_event = (uint16_t *)(f->ram + USED_GPA + 4 + 8 * QSIZE);
    uint16_t *used_event = &avail[2 + QSIZE];

    for (unsigned i = 0; i < 4; i++) {
        set_desc(f, DESC_GPA, i, DATA_GPA, 4, 0, 0);
        offer(f, i);
    }
    VirtQueueElement *e[4];
    for (unsigned i = 0; i < 4; i++) {
        e[i] = virtqueue_pop(f->vq);
        g_assert_nonnull(e[i]);
    }
    /* avail_event follows what we consumed. */
    g_assert_cmpuint(*avail_event, ==, 4);
    virtqueue_set_notification(f->vq, false);
    set_desc(f, DESC_GPA, 5, DATA_GPA, 4, 0, 0);
    offer(f, 5);
    VirtQueueElement *e5 = virtqueue_pop(f->vq);
    g_assert_cmpuint(*avail_event, ==, 4);
    virtqueue_set_notification(f->vq, true);
    g_assert_cmpuint(*avail_event, ==, 5);

    /* The driver wants an interrupt once used idx passes 2 (used_event = 2). */
    *used_event = 2;
    virtqueue_push(f->vq, e[0], 0);
    g_assert_true(virtqueue_should_notify(f->vq)); /* first decision: always */
    virtqueue_push(f->vq, e[1], 0);
    g_assert_false(virtqueue_should_notify(f->vq)); /* idx 2: event 2 not crossed */
    virtqueue_push(f->vq, e[2], 0);
    g_assert_true(virtqueue_should_notify(f->vq));  /* idx 3 crosses 2 */
    virtqueue_push(f->vq, e[3], 0);
    g_assert_false(virtqueue_should_notify(f->vq));
    *used_event = 10;
    virtqueue_push(f->vq, e5, 0);
    g_assert_false(virtqueue_should_notify(f->vq));
    for (unsigned i = 0; i < 4; i++) {
        virtqueue_element_free(e[i]);
    }
    virtqueue_element_free(e5);
}

static void test_no_interrupt_flag(Fixture *f, gconstpointer data)
{
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);
    uint16_t used_flags = *(uint16_t *)(f->ram + USED_GPA);

    g_assert_cmpuint(used_flags, ==, 0);
    virtqueue_set_notification(f->vq, false);
    g_assert_cmpuint(*(uint16_t *)(f->ram + USED_GPA), ==, VIRTQ_USED_F_NO_NOTIFY);
    virtqueue_set_notification(f->vq, true);
    g_assert_cmpuint(*(uint16_t *)(f->ram + USED_GPA), ==, 0);

    set_desc(f, DESC_GPA, 0, DATA_GPA, 4, 0, 0);
    offer(f, 0);
    offer(f, 0);
    VirtQueueElement *a = virtqueue_pop(f->vq), *b = virtqueue_pop(f->vq);
    virtqueue_push(f->vq, a, 0);
    g_assert_true(virtqueue_should_notify(f->vq));
    avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
    virtqueue_push(f->vq, b, 0);
    g_assert_false(virtqueue_should_notify(f->vq));
    virtqueue_element_free(a);
    virtqueue_element_free(b);
}

/* ---- random descriptor tables ---- */

static void fuzz_one(Fixture *f, GRand *r)
{
    unsigned n = g_rand_int_range(r, 1, QSIZE + 1);

    /* Random table, mostly plausible: addresses near the data area or anywhere. */
    for (unsigned i = 0; i < QSIZE; i++) {
        uint64_t addr = g_rand_boolean(r) ? DATA_GPA + g_rand_int_range(r, 0, 0x10000)
                                          : ((uint64_t)g_rand_int(r) << 32 | g_rand_int(r));
        if (g_rand_int_range(r, 0, 8) == 0) {
            addr = 0x8000 + 16 * g_rand_int_range(r, 0, 4); /* an indirect table */
        }
        uint32_t len = g_rand_boolean(r) ? g_rand_int_range(r, 0, 0x2000) : g_rand_int(r);
        uint16_t flags = g_rand_int_range(r, 0, 8);
        uint16_t next = g_rand_boolean(r) ? g_rand_int_range(r, 0, QSIZE) : g_rand_int(r);
        set_desc(f, DESC_GPA, i, addr, len, flags, next);
        set_desc(f, 0x8000, i, addr, len % 0x100, flags, next % (QSIZE + 2));
    }
    for (unsigned i = 0; i < n; i++) {
        offer(f, g_rand_int_range(r, 0, QSIZE + 2));
    }
    if (g_rand_int_range(r, 0, 16) == 0) {
        ((uint16_t *)(f->ram + AVAIL_GPA))[1] = g_rand_int(r);
    }
    for (unsigned i = 0; i < n + 1; i++) {
        VirtQueueElement *e = virtqueue_pop(f->vq);
        if (!e) {
            break;
        }
        /* Every buffer handed out lies inside guest RAM. */
        for (unsigned j = 0; j < e->out_num + e->in_num; j++) {
            uint8_t *p = e->out_sg[j].iov_base;
            g_assert_true(p >= f->ram && p + e->out_sg[j].iov_len <= f->ram + RAM_SIZE);
        }
        g_assert_cmpuint(e->head, <, QSIZE);
        virtqueue_push(f->vq, e, g_rand_int(r));
        virtqueue_element_free(e);
        g_assert_cmpuint(f->vq->inuse, ==, 0);
    }
    virtio_queue_notify_driver(&f->vdev, f->vq);
    virtio_reset(&f->vdev);
    memset(f->ram + AVAIL_GPA, 0, 0x2000);
    drive_up(f, g_rand_boolean(r) ? ALL_FEATURES : (1ull << VIRTIO_F_VERSION_1));
}

static void test_fuzz(Fixture *f, gconstpointer data)
{
    GRand *r = g_rand_new_with_seed(0x5e11);
    unsigned iterations = g_test_slow() ? 200000 : 20000;

    for (unsigned i = 0; i < iterations; i++) {
        fuzz_one(f, r);
    }
    g_rand_free(r);
}

/* ---- buffers across adjacent RAM regions ---- */

/* Two adjacent regions meeting at SEAM, in reverse order in the backing: a buffer that a
 * single host pointer covered would read or write the wrong bytes past the seam. */
#define SEAM (RAM_SIZE / 2)

static void fixture_setup_split(Fixture *f, gconstpointer data)
{
    Error *err = NULL;

    memset(f, 0, sizeof(*f));
    f->gm = guest_mem_new(RAM_SIZE, &err);
    g_assert_null(err);
    g_assert_true(guest_mem_add_region(f->gm, 0, SEAM, SEAM, &err));
    g_assert_true(guest_mem_add_region(f->gm, SEAM, SEAM, 0, &err));
    f->ram = guest_mem_map(f->gm, 0, SEAM); /* the rings live below the seam */
    virtio_init(&f->vdev, "virtio-test", 99, NULL, f->gm, 0, 8, 1);
    f->vdev.notify = count_notify;
    f->vdev.notify_opaque = f;
    f->vq = virtio_add_queue(&f->vdev, 0, QSIZE, noop_handler);
    drive_up(f, ALL_FEATURES);
}

static void test_span_buffers(Fixture *f, gconstpointer data)
{
    uint8_t pattern[300], out[300];
    for (unsigned i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)(i * 13 + 5);
    }
    g_assert_true(guest_mem_write(f->gm, SEAM - 100, pattern, sizeof(pattern)));
    set_desc(f, DESC_GPA, 0, SEAM - 100, 300, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, DESC_GPA, 1, SEAM - 0x1008, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    set_desc(f, DESC_GPA, 2, DATA_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 0);
    guest_mem_dirty_log_start(f->gm);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_false(f->vdev.broken);
    /* One iovec per region a buffer covers; lengths count the descriptors' bytes. */
    g_assert_cmpuint(e->out_num, ==, 2);
    g_assert_cmpuint(e->out_sg[0].iov_len, ==, 100);
    g_assert_cmpuint(e->out_sg[1].iov_len, ==, 200);
    g_assert_cmpuint(e->out_len, ==, 300);
    g_assert_cmpuint(iov_to_buf(e->out_sg, e->out_num, 0, out, sizeof(out)), ==, 300);
    g_assert_cmpmem(out, sizeof(out), pattern, sizeof(pattern));
    g_assert_cmpuint(e->in_num, ==, 2);
    g_assert_cmpuint(e->in_len, ==, 20);
    g_assert_cmpuint(e->in_gpa[0], ==, SEAM - 0x1008);
    g_assert_cmpuint(e->in_gpa[1], ==, DATA_GPA);
    virtqueue_element_free(e);

    /* A writable buffer across the seam: the device's bytes land on both sides, and
     * both regions' dirty logs see them. */
    set_desc(f, DESC_GPA, 3, SEAM - 6, 12, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 3);
    e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->in_num, ==, 2);
    g_assert_cmpuint(e->in_gpa[0], ==, SEAM - 6);
    g_assert_cmpuint(e->in_gpa[1], ==, SEAM);
    g_assert_cmpuint(iov_from_buf(e->in_sg, e->in_num, 0, "0123456789ab", 12), ==, 12);
    virtqueue_push(f->vq, e, 12);
    virtqueue_element_free(e);
    g_assert_true(guest_mem_read(f->gm, SEAM - 6, out, 12));
    g_assert_cmpmem(out, 12, "0123456789ab", 12);
    unsigned long bm[2][(SEAM / 4096 + 63) / 64];
    memset(bm, 0, sizeof(bm));
    guest_mem_dirty_log_take(f->gm, 0, bm[0], NULL);
    guest_mem_dirty_log_take(f->gm, 1, bm[1], NULL);
    g_assert_cmphex(bm[0][(SEAM / 4096 - 1) / 64] >> 63, ==, 1);
    g_assert_cmphex(bm[1][0] & 1, ==, 1);
    g_assert_false(f->vdev.broken);
}

/* An indirect table across the seam is walked (from a copy: no pointer covers it). */
static void test_span_indirect_table(Fixture *f, gconstpointer data)
{
    const uint64_t table = SEAM - 16;

    set_desc(f, table, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, table, 1, SEAM + 0x100, 8, VIRTQ_DESC_F_WRITE, 0);
    set_desc(f, DESC_GPA, 4, table, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 4);
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->out_num, ==, 1);
    g_assert_cmpuint(e->in_num, ==, 1);
    g_assert_cmpuint(e->in_gpa[0], ==, SEAM + 0x100);
    virtqueue_element_free(e);
    g_assert_false(f->vdev.broken);
}

/* A full indirect table whose every buffer crosses the seam needs twice
 * VIRTQUEUE_MAX_SEGS iovecs: the device breaks with an error, nothing overflows. */
static void test_span_too_many_pieces(Fixture *f, gconstpointer data)
{
    const uint64_t table = 0x20000;
    for (unsigned i = 0; i < VIRTQUEUE_MAX_SEGS; i++) {
        set_desc(f, table, i, SEAM - 1, 2,
                 i + 1 < VIRTQUEUE_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0, i + 1);
    }
    set_desc(f, DESC_GPA, 0, table, 16 * VIRTQUEUE_MAX_SEGS, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

/* Buffers across a gap or off the end of RAM are still refused. */
static void test_span_past_ram(Fixture *f, gconstpointer data)
{
    set_desc(f, DESC_GPA, 0, RAM_SIZE - 8, 16, 0, 0);
    offer(f, 0);
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

/* A ring is used through one pointer: a ring across the seam is refused at enable. */
static void test_span_ring_refused(Fixture *f, gconstpointer data)
{
    virtio_reset(&f->vdev);
    f->vq->num = QSIZE;
    f->vq->desc_gpa = SEAM - 0x80;
    f->vq->avail_gpa = AVAIL_GPA;
    f->vq->used_gpa = USED_GPA;
    g_assert_false(virtqueue_enable(f->vq));
    g_assert_true(f->vdev.broken);
    g_assert_false(f->vq->enabled);
}

/* Offers n single writable descriptors 0..n-1 of 64 bytes each. */
static void offer_singles(Fixture *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        set_desc(f, DESC_GPA, i, DATA_GPA + 0x100 * i, 64, VIRTQ_DESC_F_WRITE, 0);
        offer(f, (uint16_t)i);
    }
}

static void pop_expect(Fixture *f, uint16_t head)
{
    VirtQueueElement *e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, head);
    virtqueue_element_free(e);
}

/*
 * The avail index is read once per batch: entries it showed are popped without reading
 * it again (the driver may only move it forward), and only after them does the device
 * read it again, seeing, and refusing, a jump.
 */
static void test_avail_read_per_batch(Fixture *f, gconstpointer data)
{
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);

    offer_singles(f, 3);
    pop_expect(f, 0);
    /* The index moves beyond what a driver may: the two entries already seen still come. */
    __atomic_store_n(&avail[1], (uint16_t)(f->avail_idx + 2 * QSIZE), __ATOMIC_RELEASE);
    g_assert_false(virtqueue_empty(f->vq));
    pop_expect(f, 1);
    pop_expect(f, 2);
    g_assert_false(f->vdev.broken);
    /* Used up: the next look reads the index and finds the jump. */
    g_assert_false(virtqueue_empty(f->vq));
    g_assert_null(virtqueue_pop(f->vq));
    assert_broken(f);
}

/* Unpopped entries count again; after the batch new entries are seen. */
static void test_avail_unpop_and_refill(Fixture *f, gconstpointer data)
{
    VirtQueueElement *e;

    offer_singles(f, 2);
    e = virtqueue_pop(f->vq);
    g_assert_nonnull(e);
    virtqueue_unpop(f->vq, e);
    pop_expect(f, 0);
    pop_expect(f, 1);
    g_assert_true(virtqueue_empty(f->vq));
    g_assert_null(virtqueue_pop(f->vq));
    set_desc(f, DESC_GPA, 7, DATA_GPA + 0x700, 64, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 7);
    g_assert_false(virtqueue_empty(f->vq));
    pop_expect(f, 7);
    g_assert_true(virtqueue_empty(f->vq));
    g_assert_false(f->vdev.broken);
}

/* A reset forgets what the old ring showed: the new ring starts empty. */
static void test_avail_reset_forgets(Fixture *f, gconstpointer data)
{
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);

    offer_singles(f, 3);
    pop_expect(f, 0);
    virtio_reset(&f->vdev);
    memset(avail, 0, 6 + 2 * QSIZE);
    drive_up(f, ALL_FEATURES);
    g_assert_true(virtqueue_empty(f->vq));
    g_assert_null(virtqueue_pop(f->vq));
    g_assert_false(f->vdev.broken);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add("/virtqueue/" path, Fixture, NULL, fixture_setup, fn, \
                                 fixture_teardown)
#define ADD_F(path, fn, feat) g_test_add("/virtqueue/" path, Fixture, \
                                         GSIZE_TO_POINTER(feat), fixture_setup, fn, \
                                         fixture_teardown)
    ADD("empty", test_empty);
    ADD("simple-chain", test_simple_chain);
    ADD("push-clamps-len", test_push_clamps_len);
    ADD("unpop", test_unpop);
    ADD("pop-small", test_pop_small);
    ADD("pop-into", test_pop_into);
    ADD("zero-len", test_zero_len_skipped);
    ADD("wrap", test_wrap);
    ADD("indirect", test_indirect);
    ADD("indirect-unaligned", test_indirect_unaligned);
    ADD("max-segments", test_too_many_segments);
    ADD("bad/loop", test_loop);
    ADD("bad/self-loop", test_self_loop);
    ADD("bad/indirect-loop", test_indirect_loop);
    ADD("bad/outside-ram", test_outside_ram);
    ADD("bad/wrapping-address", test_wrapping_address);
    ADD("bad/writable-rom", test_writable_rom);
    ADD("bad/next-out-of-range", test_next_out_of_range);
    ADD("bad/head-out-of-range", test_head_out_of_range);
    ADD("bad/avail-jump", test_avail_jump);
    ADD("bad/read-after-write", test_read_after_write);
    ADD_F("bad/indirect-not-negotiated", test_indirect_not_negotiated,
          1ull << VIRTIO_F_VERSION_1);
    ADD("bad/indirect-nested", test_indirect_nested);
    ADD("bad/indirect-bad-len", test_indirect_bad_len);
    ADD("bad/indirect-huge", test_indirect_huge);
    ADD("bad/indirect-with-next", test_indirect_with_next);
    ADD("bad/indirect-outside-ram", test_indirect_outside_ram);
    ADD("reset-recovers", test_reset_recovers);
    ADD("enable-errors", test_enable_errors);
    ADD("features", test_features);
    ADD("config-space", test_config_space);
    ADD("kick", test_kick);
    ADD("event-idx", test_event_idx);
    ADD_F("no-interrupt-flag", test_no_interrupt_flag, 1ull << VIRTIO_F_VERSION_1);
    ADD("avail/read-per-batch", test_avail_read_per_batch);
    ADD("avail/unpop-and-refill", test_avail_unpop_and_refill);
    ADD("avail/reset-forgets", test_avail_reset_forgets);
    ADD("fuzz", test_fuzz);
#define ADD_SPLIT(path, fn) g_test_add("/virtqueue/span/" path, Fixture, NULL, \
                                       fixture_setup_split, fn, fixture_teardown)
    ADD_SPLIT("buffers", test_span_buffers);
    ADD_SPLIT("indirect-table", test_span_indirect_table);
    ADD_SPLIT("too-many-pieces", test_span_too_many_pieces);
    ADD_SPLIT("past-ram", test_span_past_ram);
    ADD_SPLIT("ring-refused", test_span_ring_refused);
    return g_test_run();
}
