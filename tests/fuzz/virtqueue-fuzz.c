/*
 * libFuzzer harness for virtqueue walking: the input becomes the first bytes of a small
 * guest RAM holding the descriptor table, the avail ring and whatever the descriptors
 * point at; the harness pops and pushes until the queue is empty or the device broke.
 * Every element handed out must lie inside guest RAM, and nothing may crash or hang.
 *
 * Built with -fsanitize=fuzzer under clang; with another compiler a small main() below
 * feeds seeded random inputs instead so the harness still runs in `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sen/iov.h"
#include "sen/virtio.h"

#define RAM_LO_SIZE 0x10000ull   /* rings and buffers */
#define RAM_HI_GPA  0x100000ull  /* a second region, so chains may span regions */
#define RAM_HI_SIZE 0x1000ull
/* A third region right after lo (at its end in guest-physical space, elsewhere in the
 * backing), so buffers may run across a seam and become two iovecs. */
#define RAM_MID_GPA  RAM_LO_SIZE
#define RAM_MID_SIZE 0x1000ull

typedef struct FuzzVm {
    GuestMemory *gm;
    uint8_t *lo, *hi, *mid;
} FuzzVm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long seam_pieces; /* iovecs starting at the seam: coverage for the smoke run */

static void check_iov(const FuzzVm *vm, const struct iovec *iov)
{
    const uint8_t *p = iov->iov_base;
    bool in_lo = p >= vm->lo && p + iov->iov_len <= vm->lo + RAM_LO_SIZE;
    bool in_hi = p >= vm->hi && p + iov->iov_len <= vm->hi + RAM_HI_SIZE;
    bool in_mid = p >= vm->mid && p + iov->iov_len <= vm->mid + RAM_MID_SIZE;
    if (!in_lo && !in_hi && !in_mid) {
        fprintf(stderr, "virtqueue-fuzz: buffer outside guest RAM\n");
        abort();
    }
}

static FuzzVm *fuzz_vm(void)
{
    /* One guest memory for the whole process: creating a memfd per input would dominate
     * the run time.  Each input overwrites what it uses. */
    static FuzzVm vm;

    if (!vm.gm) {
        Error *err = NULL;
        vm.gm = guest_mem_new(RAM_LO_SIZE + RAM_HI_SIZE + RAM_MID_SIZE, &err);
        if (!vm.gm || !guest_mem_add_region(vm.gm, 0, RAM_LO_SIZE, 0, &err) ||
            !guest_mem_add_region(vm.gm, RAM_HI_GPA, RAM_HI_SIZE, RAM_LO_SIZE, &err) ||
            !guest_mem_add_region(vm.gm, RAM_MID_GPA, RAM_MID_SIZE,
                                  RAM_LO_SIZE + RAM_HI_SIZE, &err)) {
            fprintf(stderr, "virtqueue-fuzz: %s\n", err ? error_get_pretty(err) : "?");
            abort();
        }
        vm.lo = guest_mem_map(vm.gm, 0, RAM_LO_SIZE);
        vm.hi = guest_mem_map(vm.gm, RAM_HI_GPA, RAM_HI_SIZE);
        vm.mid = guest_mem_map(vm.gm, RAM_MID_GPA, RAM_MID_SIZE);
    }
    return &vm;
}

static void noop_handler(VirtIODevice *vdev, VirtQueue *vq)
{
}

/* Input: [features][log2 queue size][push lengths seed] then RAM contents from gpa 0.
 * Queues of up to 16 entries keep the desc table (at 0) and the avail ring (at 0x100)
 * within the first 300 bytes, so short inputs reach both; indirect tables may be anywhere.
 * The used ring (device-written) is at 0x3000. */
#define DESC_GPA  0x0
#define AVAIL_GPA 0x100
#define USED_GPA  0x3000
#define QSIZE_MAX 16
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzVm *vm = fuzz_vm();
    VirtIODevice vdev = { 0 };
    VirtQueue *vq;
    uint64_t features = 1ull << VIRTIO_F_VERSION_1;

    if (size < 3) {
        return 0;
    }
    if (data[0] & 1) {
        features |= 1ull << VIRTIO_F_INDIRECT_DESC;
    }
    if (data[0] & 2) {
        features |= 1ull << VIRTIO_F_RING_EVENT_IDX;
    }
    memset(vm->lo, 0, RAM_LO_SIZE);
    memset(vm->hi, 0, RAM_HI_SIZE);
    memset(vm->mid, 0, RAM_MID_SIZE);
    memcpy(vm->lo, data + 3, MIN(size - 3, RAM_LO_SIZE));

    virtio_init(&vdev, "virtio-fuzz", 99, NULL, vm->gm, 0, 0, 1);
    vdev.rl.printed = 1000; /* keep the log quiet: the window never opens */
    vdev.rl.window_start_ns = INT64_MAX;
    vq = virtio_add_queue(&vdev, 0, QSIZE_MAX, noop_handler);
    virtio_set_status(&vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_features(&vdev, features);
    virtio_set_status(&vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                      VIRTIO_STATUS_FEATURES_OK);
    vq->num = 1u << (data[1] % 5);
    vq->desc_gpa = DESC_GPA;
    vq->avail_gpa = AVAIL_GPA;
    vq->used_gpa = USED_GPA;
    if (virtqueue_enable(vq)) {
        virtio_set_status(&vdev, vdev.status | VIRTIO_STATUS_DRIVER_OK);
        /* At most one queue's worth: more would be an avail index that jumped. */
        for (unsigned i = 0; i <= vq->num; i++) {
            VirtQueueElement *e = virtqueue_pop(vq);
            if (!e) {
                break;
            }
            size_t total = 0;
            for (unsigned j = 0; j < e->out_num + e->in_num; j++) {
                check_iov(vm, &e->out_sg[j]);
                total += e->out_sg[j].iov_len;
                seam_pieces += e->out_sg[j].iov_base == vm->mid;
            }
            /* The pieces of buffers split at a seam add up to the descriptors' lengths. */
            if (total != e->out_len + e->in_len) {
                fprintf(stderr, "virtqueue-fuzz: iovecs hold %zu bytes, descriptors %zu\n",
                        total, e->out_len + e->in_len);
                abort();
            }
            if (data[2] & 1) {
                iov_from_buf(e->in_sg, e->in_num, 0, data, size);
            }
            virtqueue_push(vq, e, (uint32_t)data[2] << 4);
            virtqueue_element_free(e);
        }
        virtio_queue_notify_driver(&vdev, vq);
    }
    virtio_cleanup(&vdev);
    return 0;
}

#ifndef SEN_LIBFUZZER
/* Stand-alone smoke run: seeded random inputs, each a plausible ring with random
 * descriptors, then a few fully random ones. */
int main(int argc, char **argv)
{
    unsigned runs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 20000;
    GRand *r = g_rand_new_with_seed(0x7172);
    size_t cap = 0x2000 + 3;
    uint8_t *buf = g_malloc(cap);

    for (unsigned n = 0; n < runs; n++) {
        size_t len = g_rand_int_range(r, n % 4 ? 3 + AVAIL_GPA + 40 : 3, cap);
        for (size_t i = 0; i < len; i++) {
            buf[i] = g_rand_int(r);
        }
        if (n % 4) {
            /* Descriptors pointing mostly into RAM, and a small avail index. */
            for (size_t i = 3 + DESC_GPA; i + 16 <= MIN(len, 3 + DESC_GPA + 16 * QSIZE_MAX);
                 i += 16) {
                uint64_t addr = g_rand_int_range(r, 0, 0x11000);
                memcpy(buf + i, &addr, 8);
                buf[i + 9] = 0;
                buf[i + 10] = g_rand_int_range(r, 0, 8);
                buf[i + 11] = 0;
                buf[i + 13] = 0;
                if (g_rand_int_range(r, 0, 4) == 0) {
                    /* A short buffer that runs across the seam into the third region. */
                    addr = RAM_MID_GPA - g_rand_int_range(r, 1, 64);
                    uint32_t blen = g_rand_int_range(r, 2, 128);
                    memcpy(buf + i, &addr, 8);
                    memcpy(buf + i + 8, &blen, 4);
                }
            }
            buf[3 + AVAIL_GPA + 2] = g_rand_int_range(r, 0, 8);
            buf[3 + AVAIL_GPA + 3] = 0;
            for (unsigned k = 0; k < QSIZE_MAX; k++) {
                buf[3 + AVAIL_GPA + 4 + 2 * k] = g_rand_int_range(r, 0, QSIZE_MAX + 1);
                buf[3 + AVAIL_GPA + 5 + 2 * k] = 0;
            }
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    g_free(buf);
    g_rand_free(r);
    printf("virtqueue-fuzz: %u inputs, %lu iovecs starting at the seam, no fault\n", runs,
           seam_pieces);
    return 0;
}
#endif
