/* virtio-blk client for guest-kit images: one request at a time, polled. */
#ifndef GUEST_VIRTIO_BLK_H
#define GUEST_VIRTIO_BLK_H

#include "virtio.h"

#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_MQ (1ull << 12)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_S_NONE 0xff /* our marker: the device never wrote the status */

typedef struct {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
} __attribute__((packed)) VirtioBlkHdr;

typedef struct {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
} __attribute__((packed)) VirtioBlkRange;

/* Scratch for one request, in guest RAM; `queue` picks the virtqueue (0 unless set). */
typedef struct {
    unsigned queue;
    VirtioBlkHdr hdr;
    VirtioBlkRange range;
    VirtqDesc table[20];
    uint8_t status;
} VirtioBlkReq;

/* Sends header + data buffers (readable for OUT/DISCARD/WRITE_ZEROES, writable for
 * IN/GET_ID) + status, as one direct chain or through an indirect table, and polls for
 * completion.  Returns the status byte, or VIRTIO_BLK_S_NONE on timeout; *used_len gets
 * what the device reported written. */
uint8_t vblk_request(VirtioDev *vd, VirtioBlkReq *r, uint32_t type, uint64_t sector,
                     const VirtioBuf *data, unsigned n, bool indirect, uint32_t *used_len);

#endif
