/*
 * How sen-img reads its command lines, for every command: options anywhere among the
 * operands as glibc's getopt permutes them for qemu-img, qemu-img's words for a wrong
 * option or operand count; and the preamble the commands on existing images share (info,
 * map, check, commit, compare, rebase, snapshot): -f/--format, --image-opts,
 * --output=human|json where the command has it, -U/--force-share, -h/--help and one image
 * name (two for compare); each command adds its own options through a callback.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sen/keyval.h"
#include "tools/img/img.h"

void img_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_report("%s", msg);
    fprintf(stderr, "Try 'sen-img --help' for more information\n");
}

int img_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    /* No '+' (or POSIXLY_CORRECT order): operands and options mix; "--" ends the
     * options.  The leading ':' tells a missing argument (':') from an unknown option
     * ('?') and silences getopt's own messages. */
    g_autofree char *opts = g_strconcat(":", shortopts, NULL);
    int c = getopt_long(argc, argv, opts, longopts, NULL);
    /* argv[optind - 1] is the option as the user typed it (qemu-img names that one, even
     * where getopt is still inside a group of short options). */
    if (c == ':') {
        img_usage_error("missing argument for option '%s'", argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        img_usage_error("unrecognized option '%s'", argv[optind - 1]);
    }
    return c;
}

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
    g_autofree char *shortopts = g_strconcat(spec->no_force_share ? "f:h" : "f:hU",
                                             spec->shortopts ? spec->shortopts : "", NULL);
    const char *output = "human";
    int c, fail = spec->error_status ? spec->error_status : 1;
    *out = (ImgImageArgs){ 0 };
    while ((c = img_getopt(argc, argv, shortopts, longopts)) != -1) {
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
            return 1; /* qemu-img's usage errors exit 1, compare's too */
        default:
            if (!spec->option || !spec->option(c, optarg, spec->opaque)) {
                return fail;
            }
            break;
        }
    }
    /* The operand count first, as qemu-img ("--output x.qcow2" takes the name). */
    if (spec->two_files) {
        if (argc - optind != 2) {
            img_usage_error("Expecting two image file names");
            return 1;
        }
        out->filename2 = argv[optind + 1];
    } else if (optind != argc - 1) {
        img_usage_error("Expecting one image file name");
        return 1;
    }
    out->filename = argv[optind];
    out->json = !strcmp(output, "json");
    if (!out->json && strcmp(output, "human")) {
        error_report("--output must be used with human or json as argument.");
        return fail;
    }
    return -1;
}

bool img_snapshot_param_parse(const char *arg, ImgSnapshotParam *out)
{
    img_snapshot_param_clear(out);
    if (!g_str_has_prefix(arg, "snapshot.")) {
        out->id_or_name = arg;
        return true;
    }
    Error *err = NULL;
    g_autoptr(Keyval) kv = keyval_parse(arg, NULL, &err);
    if (!kv) {
        error_report_err(err);
    }
    for (guint i = 0; kv && i < kv->pairs->len; i++) {
        const KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
        char **dst = !strcmp(p->key, "snapshot.id")     ? &out->id
                     : !strcmp(p->key, "snapshot.name") ? &out->name
                                                        : NULL;
        if (!dst) {
            error_report("Invalid parameter '%s'", p->key);
            g_clear_pointer(&kv, keyval_free);
            break;
        }
        g_free(*dst);
        *dst = g_strdup(p->value);
    }
    if (!kv) {
        error_report("Failed in parsing snapshot param '%s'", arg);
        img_snapshot_param_clear(out);
        return false;
    }
    return true;
}

bool img_snapshot_param_load(BlockDriverState *bs, const ImgSnapshotParam *p)
{
    const char *id = p->id, *name = p->name;
    Error *err = NULL;
    bool ok;
    if (!id && !name && !p->id_or_name) {
        return true;
    }
    if (!bs->drv->snapshot_load_tmp) {
        /* QEMU names the device, which qemu-img's images have none of. */
        error_setg(&err, "Block format '%s' used by device '' does not support temporarily "
                   "loading internal snapshots", bs->drv->format_name);
        ok = false;
    } else if (p->id_or_name) {
        /* As QEMU: the id first, then the name. */
        ok = bs->drv->snapshot_load_tmp(bs, p->id_or_name, NULL, NULL) ||
             bs->drv->snapshot_load_tmp(bs, NULL, p->id_or_name, &err);
    } else {
        ok = bs->drv->snapshot_load_tmp(bs, id, name, &err);
    }
    if (!ok) {
        error_prepend(&err, "Failed to load snapshot: ");
        error_report_err(err);
    }
    return ok;
}

void img_snapshot_param_clear(ImgSnapshotParam *p)
{
    g_free(p->id);
    g_free(p->name);
    *p = (ImgSnapshotParam){ 0 };
}
