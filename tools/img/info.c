/* sen-img info: qemu-img's human and JSON shapes, optionally for the whole backing chain. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

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
        .cmd = "info",
        .longopts = longopts, .option = info_option, .opaque = &chain, .output = true,
    };
    ImgImageArgs a;
    int status = img_parse_image_args(argc, argv, &spec, &a);
    if (status >= 0) {
        return status;
    }
    /* Metadata only: an image whose data file is missing is still described. */
    BlockDriverState *bs = img_open(a.filename, a.fmt, a.image_opts,
                                    BDRV_O_NO_IO | (chain ? 0 : BDRV_O_NO_BACKING) | a.share_flags);
    if (!bs) {
        return 1;
    }
    json_t *list = json_array();
    for (BlockDriverState *b = bs; b; b = chain ? b->backing : NULL) {
        json_array_append_new(list, bdrv_query_image_info(b));
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
