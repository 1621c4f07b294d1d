/*
 * The qcow2 part of QEMU's ImageInfoSpecific ({"type": "qcow2", "data": {...}}), one
 * source for `sen-img info` and for QMP query-block / query-named-block-nodes, so the
 * tool and the monitor cannot disagree about an image; and the data file child the
 * monitor lists as a node.
 */
#include <jansson.h>

#include "block/qcow2.h"
#include "sen/block.h"

json_t *qcow2_get_specific_info(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    json_t *d = json_object();

    /* The header's feature bits change under the lock (amend, marking corrupt). */
    g_mutex_lock(&s->lock);
    if (s->h.version >= 3) {
        json_object_set_new(d, "compat", json_string("1.1"));
        json_object_set_new(d, "compression-type",
                            json_string(s->h.compression_type ? "zstd" : "zlib"));
        json_object_set_new(d, "lazy-refcounts",
                            json_boolean(s->h.compatible_features &
                                         QCOW2_COMPAT_LAZY_REFCOUNTS));
        json_t *bitmaps = qcow2_bitmap_info(s);
        if (bitmaps) {
            json_object_set_new(d, "bitmaps", bitmaps);
        }
        json_object_set_new(d, "refcount-bits", json_integer(1 << s->h.refcount_order));
        if (s->ext.data_file) {
            json_object_set_new(d, "data-file", block_json_host_string(s->ext.data_file));
        }
        if (qcow2_has_data_file(s)) {
            json_object_set_new(d, "data-file-raw", json_boolean(s->data_file_raw));
        }
        json_object_set_new(d, "corrupt", json_boolean(s->h.incompatible_features &
                                                       QCOW2_INCOMPAT_CORRUPT));
        json_object_set_new(d, "extended-l2", json_boolean(s->extl2));
    } else {
        json_object_set_new(d, "compat", json_string("0.10"));
        json_object_set_new(d, "compression-type", json_string("zlib"));
        json_object_set_new(d, "refcount-bits", json_integer(16));
    }
    g_mutex_unlock(&s->lock);
    return json_pack("{s:s,s:o}", "type", "qcow2", "data", d);
}

BlockDriverState *qcow2_get_data_file(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return qcow2_has_data_file(s) ? s->data_file : NULL;
}
