/*
 * Corruption found while an image is in use (qcow2.h): QEMU's words on stderr, the
 * BLOCK_IMAGE_CORRUPTED report, and for a fatal one the corrupt bit.
 */
#include <stdarg.h>
#include <stdio.h>
#include "block/qcow2.h"
#include "sen/block.h"

/* The header's incompatible-features field (offset 72) set to features, synced; the
 * in-memory header follows only once it is on disk. */
static int write_incompatible_features(BDRVQcow2State *s, uint64_t features)
{
    uint8_t be[8];
    qcow2_st64(be, features);
    int ret = bdrv_pwrite_sync(s->bs->file, 72, 8, be);
    if (ret == 0) {
        s->h.incompatible_features = features;
    }
    return ret;
}

/* The corrupt bit in the header (version 3 has the field): the next open then refuses
 * read/write until a check repairs the image. */
static void qcow2_mark_corrupt(BDRVQcow2State *s)
{
    if (!(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT) && s->h.version >= 3) {
        write_incompatible_features(s, s->h.incompatible_features | QCOW2_INCOMPAT_CORRUPT);
    }
    s->read_only = true;
}

void qcow2_signal_corruption(BDRVQcow2State *s, bool fatal, int64_t offset, int64_t size,
                             const char *fmt, ...)
{
    /* A read-only image cannot be damaged further: nothing to mark (QEMU's rule). */
    fatal = fatal && !s->read_only;
    if (s->signaled_corruption && (!fatal || (s->h.incompatible_features &
                                              QCOW2_INCOMPAT_CORRUPT))) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (fatal) {
        fprintf(stderr, "qcow2: Marking image as corrupt: %s; further corruption events "
                "will be suppressed\n", msg);
    } else {
        fprintf(stderr, "qcow2: Image is corrupt: %s; further non-fatal corruption events "
                "will be suppressed\n", msg);
    }
    BlockCorruption c = { .node_name = s->bs->node_name, .msg = msg, .offset = offset,
                          .size = size, .fatal = fatal };
    bdrv_report_corruption(&c);
    if (fatal) {
        qcow2_mark_corrupt(s);
        /* QEMU drops the node's driver here: nothing reads or writes it any more, the
         * request that found the corruption included (it fails with its own error). */
        bdrv_eject(s->bs);
    }
    s->signaled_corruption = true;
}

int qcow2_mark_consistent(BDRVQcow2State *s)
{
    if (!(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
        return 0;
    }
    /* The repairs must be on the disk before the header says the image is sound. */
    int ret = qcow2_flush_caches(s);
    if (ret == 0) {
        ret = bdrv_flush(s->bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    ret = write_incompatible_features(s, s->h.incompatible_features &
                                         ~QCOW2_INCOMPAT_CORRUPT);
    if (ret < 0) {
        return ret;
    }
    /* Writable again if it was opened so (a report during the check made it read-only),
     * and a new corruption is reported again. */
    s->read_only = !(s->bs->open_flags & BDRV_O_RDWR) || (s->bs->open_flags & BDRV_O_INACTIVE);
    s->signaled_corruption = false;
    return 0;
}
