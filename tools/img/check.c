/*
 * sen-img check: qemu-img's output and exit codes: 0 clean, 1 check could not complete,
 * 2 corruptions, 3 leaks only, 63 format without checks.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tools/img/img.h"

static void print_human(const char *filename, const BlockCheckResult *r, bool quiet)
{
    if (r->corruptions == 0 && r->leaks == 0 && r->check_errors == 0) {
        if (!quiet) {
            printf("No errors were found on the image.\n");
        }
    } else {
        if (r->corruptions) {
            printf("\n%d errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   r->corruptions);
        }
        if (r->leaks) {
            printf("\n%d leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n", r->leaks);
        }
        if (r->check_errors) {
            printf("\n%d internal errors have occurred during the check.\n",
                   r->check_errors);
        }
    }
    if (quiet) {
        return;
    }
    if (r->total_clusters != 0 && r->allocated_clusters != 0) {
        printf("%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT " = %0.2f%% allocated, %0.2f%% "
               "fragmented, %0.2f%% compressed clusters\n",
               r->allocated_clusters, r->total_clusters,
               r->allocated_clusters * 100.0 / r->total_clusters,
               r->fragmented_clusters * 100.0 / r->allocated_clusters,
               r->compressed_clusters * 100.0 / r->allocated_clusters);
    }
    if (r->image_end_offset > 0) {
        printf("Image end offset: %" G_GINT64_FORMAT "\n", r->image_end_offset);
    }
    (void)filename;
}

/* A count qemu-img prints only when it is not zero. */
static void set_nonzero(json_t *o, const char *key, int64_t v)
{
    if (v) {
        json_object_set_new(o, key, json_integer(v));
    }
}

/* qemu-img's keys, present under its conditions, in the order it prints them. */
static void print_json(const char *filename, const char *fmt, const BlockCheckResult *r)
{
    json_t *o = json_object();
    if (r->image_end_offset > 0) {
        json_object_set_new(o, "image-end-offset", json_integer(r->image_end_offset));
    }
    set_nonzero(o, "compressed-clusters", r->compressed_clusters);
    set_nonzero(o, "total-clusters", r->total_clusters);
    set_nonzero(o, "corruptions", r->corruptions);
    set_nonzero(o, "corruptions-fixed", r->corruptions_fixed);
    json_object_set_new(o, "check-errors", json_integer(r->check_errors));
    set_nonzero(o, "leaks", r->leaks);
    set_nonzero(o, "leaks-fixed", r->leaks_fixed);
    set_nonzero(o, "allocated-clusters", r->allocated_clusters);
    json_object_set_new(o, "filename", json_string(filename));
    json_object_set_new(o, "format", json_string(fmt));
    set_nonzero(o, "fragmented-clusters", r->fragmented_clusters);
    char *s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

typedef struct CheckOpts {
    int fix;
    bool quiet;
} CheckOpts;

static bool check_option(int c, const char *arg, void *opaque)
{
    CheckOpts *o = opaque;
    switch (c) {
    case 'r':
        if (!strcmp(arg, "leaks")) {
            o->fix = BDRV_FIX_LEAKS;
        } else if (!strcmp(arg, "all")) {
            o->fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
        } else {
            error_report("Unknown option value for -r (expecting 'leaks' or 'all'): %s", arg);
            return false;
        }
        return true;
    case 'q':
        o->quiet = true;
        return true;
    case 'T':
        return true; /* cache mode: the check reads through the page cache either way */
    }
    return false;
}

int img_check(int argc, char **argv)
{
    CheckOpts o = { .fix = BDRV_FIX_NONE };
    static const struct option longopts[] = {
        { "repair", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    const ImgArgsSpec spec = {
        .cmd = "check",
        .shortopts = "r:T:q", .longopts = longopts, .option = check_option, .opaque = &o,
        .output = true,
    };
    ImgImageArgs a;
    int status = img_parse_image_args(argc, argv, &spec, &a);
    if (status >= 0) {
        return status;
    }
    const char *fmt = a.fmt, *filename = a.filename;
    int fix = o.fix;
    bool quiet = o.quiet, json = a.json;
    int flags = BDRV_O_CHECK | BDRV_O_NO_BACKING | (fix ? BDRV_O_RDWR : 0) | a.share_flags;
    BlockDriverState *bs = img_open(filename, fmt, a.image_opts, flags);
    if (!bs) {
        return 1;
    }
    if (!bs->drv->check) {
        if (!quiet) {
            error_report("This image format does not support checks");
        }
        bdrv_unref(bs);
        return 63;
    }
    BlockCheckResult r;
    int ret = bs->drv->check(bs, &r, fix);
    if (ret == 0 && fix && (r.corruptions_fixed || r.leaks_fixed)) {
        BlockCheckResult again;
        int leaks_fixed = r.leaks_fixed, corr_fixed = r.corruptions_fixed;
        if (!quiet && !json) {
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %d leaked clusters\n    %d corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   r.leaks_fixed, r.corruptions_fixed);
        }
        ret = bs->drv->check(bs, &again, BDRV_FIX_NONE);
        r = again;
        r.leaks_fixed = leaks_fixed;
        r.corruptions_fixed = corr_fixed;
    }
    /* As qemu-img: a check that could not complete prints no results, only why. */
    if (ret == 0 && json) {
        print_json(filename, bs->drv->format_name, &r);
    } else if (ret == 0) {
        print_human(filename, &r, quiet);
    }
    bdrv_unref(bs);
    if (ret < 0) {
        error_report("Check failed: %s", g_strerror(-ret));
        return 1;
    }
    if (r.check_errors) {
        error_report("Check failed");
        return 1;
    }
    if (r.corruptions) {
        return 2;
    }
    if (r.leaks) {
        return 3;
    }
    return 0;
}
