/* virtio-blk client (see virtio-blk.h). */
#include "virtio-blk.h"

uint8_t vblk_request(VirtioDev *vd, VirtioBlkReq *r, uint32_t type, uint64_t sector,
                     const VirtioBuf *data, unsigned n, bool indirect, uint32_t *used_len)
{
    VirtioBuf bufs[18];
    if (n > 16) {
        return VIRTIO_BLK_S_NONE;
    }
    r->hdr = (VirtioBlkHdr){ .type = type, .sector = sector };
    r->status = VIRTIO_BLK_S_NONE;
    bufs[0] = (VirtioBuf){ &r->hdr, sizeof(r->hdr), false };
    for (unsigned i = 0; i < n; i++) {
        bufs[1 + i] = data[i];
    }
    bufs[1 + n] = (VirtioBuf){ &r->status, 1, true };
    if (r->queue >= VIRTIO_MAX_QUEUES || !vd->vq[r->queue].num_free) {
        return VIRTIO_BLK_S_NONE;
    }
    Virtq *vq = &vd->vq[r->queue];
    int head = indirect ? virtq_add_indirect(vq, r->table, bufs, n + 2)
                        : virtq_add(vq, bufs, n + 2);
    if (head < 0) {
        return VIRTIO_BLK_S_NONE;
    }
    virtq_kick(vq);
    uint32_t id, len;
    if (!virtq_wait(vq, &id, &len, 200000)) {
        return VIRTIO_BLK_S_NONE;
    }
    if (id != (uint32_t)head) {
        guest_printf("vblk: used id %u, expected %d\n", id, head);
        return VIRTIO_BLK_S_NONE;
    }
    if (used_len) {
        *used_len = len;
    }
    return r->status;
}
