/*
 * sen-img map: where each range of the virtual disk comes from, in qemu-img's human and
 * JSON shapes (start, length, depth, present, zero, data, offset), adjacent ranges merged;
 * --start-offset and --max-length bound the range mapped.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

typedef struct MapEntry {
    int64_t start, length;
    int depth;
    bool present, zero, data, has_offset;
    int64_t offset;
    BlockDriverState *file;
} MapEntry;

/* Status of the chain at off: the first layer that has the range decides. */
static int chain_status(BlockDriverState *bs, int64_t off, int64_t len, MapEntry *e)
{
    int64_t pnum = 0, map = 0;
    BlockDriverState *file = NULL;
    int st = bdrv_block_status_above(bs, off, len, &pnum, &map, &file, &e->depth);

    if (st < 0) {
        return st;
    }
    e->start = off;
    e->length = pnum;
    e->present = (st & BDRV_BLOCK_ALLOCATED) != 0;
    e->zero = st & BDRV_BLOCK_ZERO;
    e->data = st & BDRV_BLOCK_DATA;
    e->has_offset = st & BDRV_BLOCK_OFFSET_VALID;
    e->offset = e->has_offset ? map : 0;
    e->file = e->has_offset ? file : NULL;
    return 0;
}

static bool can_merge(const MapEntry *a, const MapEntry *b)
{
    return a->depth == b->depth && a->present == b->present && a->zero == b->zero &&
           a->data == b->data && a->has_offset == b->has_offset &&
           (!a->has_offset || (a->offset + a->length == b->offset && a->file == b->file));
}

static bool print_entry(const MapEntry *e, bool json, bool first)
{
    if (!json && e->data && !e->has_offset) {
        error_report("File contains external, encrypted or compressed clusters.");
        return false;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "start", json_integer(e->start));
        json_object_set_new(o, "length", json_integer(e->length));
        json_object_set_new(o, "depth", json_integer(e->depth));
        json_object_set_new(o, "present", json_boolean(e->present));
        json_object_set_new(o, "zero", json_boolean(e->zero));
        json_object_set_new(o, "data", json_boolean(e->data));
        if (e->has_offset) {
            json_object_set_new(o, "offset", json_integer(e->offset));
        }
        char *s = json_dumps(o, JSON_PRESERVE_ORDER);
        /* qemu-img writes each entry as "{ "start": ...}": one space after the brace. */
        printf("%s{ %s", first ? "" : ",\n", s + 1);
        free(s);
        json_decref(o);
    } else if (e->data && e->has_offset) {
        printf("%#-16" G_GINT64_MODIFIER "x%#-16" G_GINT64_MODIFIER "x%#-16"
               G_GINT64_MODIFIER "x%s\n", e->start, e->length, e->offset, e->file->filename);
    }
    return true;
}

typedef struct MapOpts {
    int64_t start;   /* --start-offset */
    int64_t max_len; /* --max-length, -1 for none */
} MapOpts;

/* qemu-img 7.2 takes -s and -l for them too (undocumented). */
enum { MAP_OPT_START = 's', MAP_OPT_MAX_LEN = 'l' };

static bool map_option(int c, const char *arg, void *opaque)
{
    MapOpts *o = opaque;

    switch (c) {
    case MAP_OPT_START:
        return img_parse_num("start offset", arg, &o->start);
    case MAP_OPT_MAX_LEN:
        return img_parse_num("max length", arg, &o->max_len);
    default:
        return false;
    }
}

int img_map(int argc, char **argv)
{
    MapOpts o = { .start = 0, .max_len = -1 };
    static const struct option longopts[] = {
        { "start-offset", required_argument, NULL, MAP_OPT_START },
        { "max-length", required_argument, NULL, MAP_OPT_MAX_LEN },
        { NULL, 0, NULL, 0 },
    };
    const ImgArgsSpec spec = {
        .cmd = "map", .shortopts = "s:l:", .output = true, .longopts = longopts,
        .option = map_option,
        .opaque = &o,
    };
    ImgImageArgs a;
    int status = img_parse_image_args(argc, argv, &spec, &a);
    if (status >= 0) {
        return status;
    }
    bool json = a.json;
    BlockDriverState *bs = img_open(a.filename, a.fmt, a.image_opts, a.share_flags);
    if (!bs) {
        return 1;
    }
    int64_t size = bdrv_getlength(bs);
    if (size < 0) {
        error_report("Could not get size of '%s': %s", a.filename, g_strerror(-size));
        bdrv_unref(bs);
        return 1;
    }
    /* The end is where --max-length stops, the image's end at most (qemu-img's sum
     * overflows past INT64_MAX and then maps nothing; this one saturates). */
    int64_t end = size;
    if (o.max_len >= 0 && o.max_len < size - MIN(o.start, size)) {
        end = o.start + o.max_len;
    }
    MapEntry cur = { 0 }, next;
    bool have = false, first = true;
    int ret = 0;
    if (json) {
        printf("[");
    } else {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    }
    for (int64_t off = o.start; off < end;) {
        ret = chain_status(bs, off, MIN(end - off, (int64_t)1 << 30), &next);
        if (ret < 0 || next.length <= 0) {
            break;
        }
        off += next.length;
        if (have && can_merge(&cur, &next)) {
            cur.length += next.length;
            continue;
        }
        if (have) {
            if (!print_entry(&cur, json, first)) {
                bdrv_unref(bs);
                return 1;
            }
            first = false;
        }
        cur = next;
        have = true;
    }
    if (!have) {
        /* Nothing in the range: qemu-img still ends with its empty entry there (shown
         * by JSON only: "length": 0, nothing present). */
        cur = (MapEntry){ .start = o.start };
    }
    if (ret >= 0 && !print_entry(&cur, json, first)) {
        bdrv_unref(bs);
        return 1;
    }
    if (json && ret >= 0) {
        printf("]\n"); /* qemu-img leaves the list open when it fails */
    }
    bdrv_unref(bs);
    if (ret < 0) {
        error_report("Could not read file metadata: %s", g_strerror(-ret));
        return 1;
    }
    return 0;
}
