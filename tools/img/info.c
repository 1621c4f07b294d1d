/* sen-img info: qemu-img's human and JSON shapes, optionally for the whole backing chain. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "block/qcow2.h"
#include "tools/img/img.h"

static json_t *snapshot_list(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    GArray *a = NULL;
    json_t *list = NULL;
    if (s->h.nb_snapshots && qcow2_read_snapshots(s, &a) == 0) {
        list = json_array();
        for (guint i = 0; i < a->len; i++) {
            Qcow2Snapshot *sn = &g_array_index(a, Qcow2Snapshot, i);
            json_t *o = json_object();
            json_object_set_new(o, "icount", json_integer(sn->extra_len >= 24 ?
                                (json_int_t)qcow2_ld64(sn->extra + 16) : -1));
            json_object_set_new(o, "vm-state-size", json_integer(sn->vm_state_size));
            json_object_set_new(o, "date-sec", json_integer(sn->date_sec));
            json_object_set_new(o, "date-nsec", json_integer(sn->date_nsec));
            json_object_set_new(o, "vm-clock-nsec",
                                json_integer(sn->vm_clock_nsec % 1000000000));
            json_object_set_new(o, "name", json_string(sn->name));
            json_object_set_new(o, "vm-clock-sec",
                                json_integer(sn->vm_clock_nsec / 1000000000));
            json_object_set_new(o, "id", json_string(sn->id_str));
            if (sn->extra_len < 24) {
                json_object_del(o, "icount");
            }
            json_array_append_new(list, o);
        }
    }
    qcow2_snapshots_free(a);
    return list;
}

static json_t *image_info(BlockDriverState *bs)
{
    json_t *o = json_object();
    bool is_qcow2 = !strcmp(bs->drv->format_name, "qcow2");
    BDRVQcow2State *s = is_qcow2 ? bs->opaque : NULL;
    BlockDriverInfo bdi = { 0 };
    bool have_bdi = bdrv_get_info(bs, &bdi) == 0;

    if (s && s->backing_file && s->ext.backing_fmt) {
        json_object_set_new(o, "backing-filename-format", json_string(s->ext.backing_fmt));
    }
    json_object_set_new(o, "virtual-size", json_integer(bdrv_get_reported_size(bs)));
    json_object_set_new(o, "filename", json_string(bs->filename));
    if (have_bdi && bdi.cluster_size) {
        json_object_set_new(o, "cluster-size", json_integer(bdi.cluster_size));
    }
    json_object_set_new(o, "format", json_string(bs->drv->format_name));
    int64_t actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        json_object_set_new(o, "actual-size", json_integer(actual));
    }
    json_t *sn = s ? snapshot_list(bs) : NULL;
    if (sn) {
        json_object_set_new(o, "snapshots", sn);
    }
    json_t *specific = bdrv_get_specific_info(bs);
    if (specific) {
        json_object_set_new(o, "format-specific", specific);
    }
    if (s && s->backing_file) {
        g_autofree char *full = qcow2_resolve_backing(bs->filename, s->backing_file);
        json_object_set_new(o, "full-backing-filename", json_string(full));
        json_object_set_new(o, "backing-filename", json_string(s->backing_file));
    }
    json_object_set_new(o, "dirty-flag", json_boolean(have_bdi && bdi.is_dirty));
    return o;
}

static bool info_option(int c, const char *arg, void *opaque)
{
    *(bool *)opaque = true; /* --backing-chain, the only one */
    return true;
}

int img_info(int argc, char **argv)
{
    bool chain = false;
    static const struct option longopts[] = {
        { "backing-chain", no_argument, NULL, IMG_OPT_FIRST_CMD },
        { NULL, 0, NULL, 0 },
    };
    const ImgArgsSpec spec = {
        .usage = "info [--image-opts] [-f fmt] [--output=human|json] [--backing-chain] [-U] "
                 "filename",
        .longopts = longopts, .option = info_option, .opaque = &chain, .output = true,
    };
    ImgImageArgs a;
    int status = img_parse_image_args(argc, argv, &spec, &a);
    if (status >= 0) {
        return status;
    }
    /* Metadata only: an image whose data file is missing is still described. */
    BlockDriverState *bs = img_open(a.filename, a.fmt, a.image_opts,
                                    BDRV_O_NO_IO | (chain ? 0 : BDRV_O_NO_BACKING));
    if (!bs) {
        return 1;
    }
    json_t *list = json_array();
    for (BlockDriverState *b = bs; b; b = chain ? b->backing : NULL) {
        json_array_append_new(list, image_info(b));
    }
    if (a.json) {
        json_t *out = chain ? json_incref(list) : json_incref(json_array_get(list, 0));
        char *str = json_dumps(out, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
        printf("%s\n", str);
        free(str);
        json_decref(out);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            if (i) {
                printf("\n");
            }
            block_image_info_print(stdout, e);
        }
    }
    json_decref(list);
    bdrv_unref(bs);
    return 0;
}
