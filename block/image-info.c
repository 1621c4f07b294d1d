/*
 * QEMU's ImageInfo of a node, in qemu-img info --output=json's shape and key order: one
 * builder for sen-img info and for QMP query-block / query-named-block-nodes (which nest
 * the backing chain as backing-image around it).
 */
#include <string.h>
#include <jansson.h>

#include "block/qcow2.h"
#include "sen/block.h"

json_t *block_json_host_string(const char *text)
{
    g_autofree char *valid = g_utf8_make_valid(text, -1);
    return json_string(valid);
}

/* Keys in qemu-img 7.2's order; icount only when recorded (QEMU stores -1 for none). */
static json_t *snapshot_list(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    json_t *list = NULL;
    if (s->h.nb_snapshots && qcow2_read_snapshots(s, &a) == 0) {
        list = json_array();
        for (guint i = 0; i < a->len; i++) {
            Qcow2Snapshot *sn = &g_array_index(a, Qcow2Snapshot, i);
            uint64_t icount = sn->extra_len >= 24 ? qcow2_ld64(sn->extra + 16) : UINT64_MAX;
            json_t *o = json_object();
            if (icount != UINT64_MAX) {
                json_object_set_new(o, "icount", json_integer((json_int_t)icount));
            }
            json_object_set_new(o, "vm-clock-nsec",
                                json_integer(sn->vm_clock_nsec % 1000000000));
            json_object_set_new(o, "name", block_json_host_string(sn->name));
            json_object_set_new(o, "date-sec", json_integer(sn->date_sec));
            json_object_set_new(o, "date-nsec", json_integer(sn->date_nsec));
            json_object_set_new(o, "vm-clock-sec",
                                json_integer(sn->vm_clock_nsec / 1000000000));
            json_object_set_new(o, "id", block_json_host_string(sn->id_str));
            json_object_set_new(o, "vm-state-size", json_integer(sn->vm_state_size));
            json_array_append_new(list, o);
        }
    }
    qcow2_snapshots_free(a);
    return list;
}

json_t *bdrv_query_image_info(BlockDriverState *bs)
{
    json_t *o = json_object();
    bool is_qcow2 = !strcmp(bs->drv->format_name, "qcow2");
    BDRVQcow2State *s = is_qcow2 ? bs->opaque : NULL;
    BlockDriverInfo bdi = { 0 };
    bool have_bdi = bdrv_get_info(bs, &bdi) == 0;

    if (s && s->backing_file && s->ext.backing_fmt) {
        json_object_set_new(o, "backing-filename-format",
                            block_json_host_string(s->ext.backing_fmt));
    }
    json_t *sn = s ? snapshot_list(bs) : NULL;
    if (sn) {
        json_object_set_new(o, "snapshots", sn);
    }
    json_object_set_new(o, "virtual-size", json_integer(bdrv_get_reported_size(bs)));
    json_object_set_new(o, "filename", block_json_host_string(bs->filename));
    if (have_bdi && bdi.cluster_size) {
        json_object_set_new(o, "cluster-size", json_integer(bdi.cluster_size));
    }
    json_object_set_new(o, "format", json_string(bs->drv->format_name));
    int64_t actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        json_object_set_new(o, "actual-size", json_integer(actual));
    }
    json_t *specific = bdrv_get_specific_info(bs);
    if (specific) {
        json_object_set_new(o, "format-specific", specific);
    }
    if (s && s->backing_file) {
        g_autofree char *full = qcow2_resolve_backing(bs->filename, s->backing_file);
        json_object_set_new(o, "full-backing-filename", block_json_host_string(full));
        json_object_set_new(o, "backing-filename", block_json_host_string(s->backing_file));
    }
    json_object_set_new(o, "dirty-flag", json_boolean(have_bdi && bdi.is_dirty));
    return o;
}

