/* sen-img convert's copy loop (convert-copy.c), apart from its option parsing. */
#ifndef SEN_TOOLS_IMG_CONVERT_COPY_H
#define SEN_TOOLS_IMG_CONVERT_COPY_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/block.h"
#include "sen/error.h"

/* One source image; several are copied one after the other, as qemu-img concatenates. */
typedef struct ConvertSource {
    BlockDriverState *bs;
    int64_t len;            /* its length in bytes */
    int64_t size;           /* bytes it fills in the target: len up to a whole sector,
                             * the tail reading as zeroes (qemu-img counts sectors) */
} ConvertSource;

typedef struct ConvertCopy {
    const ConvertSource *srcs;
    int nsrcs;
    BlockDriverState *dst;
    int64_t size;           /* bytes to copy from offset 0: the sources' sizes summed */
    int64_t dst_len;        /* the target's length: writes stop there (-n onto a target
                             * whose last sector is partial; only zeroes lie past it) */
    uint64_t chunk;         /* bytes per request, a multiple of cluster_size */
    uint64_t cluster_size;  /* the target's (65536 when it has none) */
    uint64_t sparse;        /* -S: zero runs of this size are not written; 0: none */
    bool compress;          /* -c: dst is qcow2, clusters are written compressed */
    bool target_zero;       /* dst reads as zeroes before the copy (zero runs skipped) */
    bool in_order;          /* no -W: writes in guest order */
    unsigned workers;       /* -m: chunks in flight */
    bool progress;          /* -p: print the percentage after each chunk */
    uint64_t rate;          /* -r: bytes a second written to the target; 0: no limit */
    bool salvage;           /* --salvage: sectors that fail to read are zeroes */
    bool copy_range;        /* -C: data goes by copy_file_range where it can */
    bool quiet;             /* -q: no --salvage warnings */
} ConvertCopy;

/* Copies; false with "error while reading|writing at byte N: reason" on failure. */
bool convert_copy(const ConvertCopy *c, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

#endif
