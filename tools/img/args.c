/*
 * The command-line preamble the commands on existing images share (info, map, check,
 * commit, compare, rebase, snapshot): -f/--format, --image-opts, --output=human|json
 * where the command has it, -U/--force-share, -h/--help and one image name (two for compare), with
 * qemu-img's messages; each command adds its own options through a callback.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

enum { MAX_LONGOPTS = 16 };

int img_parse_image_args(int argc, char **argv, const ImgArgsSpec *spec, ImgImageArgs *out)
{
    static const struct option common[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, IMG_OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        IMG_LONGOPT_IMAGE_OPTS,
    };
    struct option longopts[MAX_LONGOPTS] = { { 0 } };
    size_t n = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(common); i++) {
        if ((common[i].val != IMG_OPT_OUTPUT || spec->output) &&
            (common[i].val != 'U' || !spec->no_force_share)) {
            longopts[n++] = common[i];
        }
    }
    for (const struct option *o = spec->longopts; o && o->name; o++) {
        g_assert(n < MAX_LONGOPTS - 1);
        longopts[n++] = *o;
    }
    g_autofree char *shortopts = g_strconcat(spec->no_force_share ? "+f:h" : "+f:hU",
                                             spec->shortopts ? spec->shortopts : "", NULL);
    const char *output = "human";
    int c, fail = spec->error_status ? spec->error_status : 1;
    *out = (ImgImageArgs){ 0 };
    optind = 1;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            out->fmt = optarg;
            break;
        case IMG_OPT_OUTPUT:
            output = optarg;
            break;
        case 'U':
            out->share_flags = BDRV_O_FORCE_SHARE;
            break;
        case IMG_OPT_IMAGE_OPTS:
            out->image_opts = true;
            break;
        case 'h':
            img_print_usage(spec->cmd);
            return 0;
        case '?':
            return fail;
        default:
            if (!spec->option || !spec->option(c, optarg, spec->opaque)) {
                return fail;
            }
            break;
        }
    }
    out->json = !strcmp(output, "json");
    if (!out->json && strcmp(output, "human")) {
        error_report("--output must be used with human or json as argument.");
        return fail;
    }
    if (spec->two_files) {
        if (argc - optind != 2) {
            error_report("Expecting two image file names");
            return fail;
        }
        out->filename2 = argv[optind + 1];
    } else if (optind != argc - 1) {
        error_report("Expecting one image file name");
        return fail;
    }
    out->filename = argv[optind];
    return -1;
}
