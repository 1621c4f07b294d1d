/* sen-img create: qemu-img's options; -o keys go to the format driver's create. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "block/block-internal.h"
#include "sen/keyval.h"
#include "tools/img/img.h"

int img_create(int argc, char **argv)
{
    const char *fmt = "raw", *backing = NULL, *backing_fmt = NULL;
    GString *opts = g_string_new(NULL);
    bool quiet = false;
    int c, ret = 1;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, 'O' },
        { NULL, 0, NULL, 0 },
    };

    while ((c = img_getopt(argc, argv, "F:b:f:ho:qu", longopts)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'b':
            backing = optarg;
            break;
        case 'F':
            backing_fmt = optarg;
            break;
        case 'o':
            if (!strcmp(optarg, "help") || !strcmp(optarg, "?")) {
                printf("Supported options:\n  size, cluster_size, compat, lazy_refcounts, "
                       "refcount_bits,\n  compression_type, extended_l2, backing_file, "
                       "backing_fmt, preallocation\n");
                g_string_free(opts, TRUE);
                return 0;
            }
            g_string_append_printf(opts, "%s%s", opts->len ? "," : "", optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'u':
            break; /* the backing file is only opened when the size is missing anyway */
        case 'h':
            img_print_usage("create");
            g_string_free(opts, TRUE);
            return 0;
        default:
            g_string_free(opts, TRUE);
            return 1;
        }
    }
    if (optind >= argc) {
        img_usage_error("Expecting image file name");
        goto out;
    }
    const char *filename = argv[optind++];
    int64_t size = 0;
    bool have_size = false;
    if (optind < argc) {
        if (!img_parse_num("image size", argv[optind++], &size)) {
            goto out;
        }
        have_size = true;
    }
    if (optind != argc) {
        img_usage_error("Unexpected argument: %s", argv[optind]);
        goto out;
    }
    Error *err = NULL;
    Keyval *kv = opts->len ? keyval_parse(opts->str, NULL, &err) : block_keyval_new();
    if (!kv) {
        error_report("Invalid options for file format '%s': %s", fmt,
                     error_get_pretty(err));
        error_free(err);
        goto out;
    }
    char *prefix = g_strdup_printf("%s: ", filename);
    bool sizes_ok = img_check_size_opts(fmt, kv, prefix);
    g_free(prefix);
    if (!sizes_ok) {
        keyval_free(kv);
        goto out;
    }
    if (have_size) {
        g_autofree char *s = g_strdup_printf("%" G_GINT64_FORMAT, size);
        block_keyval_add(kv, "size", s);
    }
    if (backing) {
        block_keyval_add(kv, "backing_file", backing);
    }
    if (backing_fmt) {
        block_keyval_add(kv, "backing_fmt", backing_fmt);
    }
    if (!keyval_has(kv, "size") && !keyval_has(kv, "backing_file")) {
        error_report("Image creation needs a size parameter");
        keyval_free(kv);
        goto out;
    }
    if (!quiet) {
        printf("Formatting '%s', fmt=%s", filename, fmt);
        for (guint i = 0; i < kv->pairs->len; i++) {
            KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
            printf(" %s=%s", p->key, p->value);
        }
        printf("\n");
        fflush(stdout);
    }
    bool ok = bdrv_create(fmt, filename, kv, &err);
    if (ok && !keyval_check_all_used(kv, filename, &err)) {
        ok = false;
    }
    keyval_free(kv);
    if (!ok) {
        error_report("%s", error_get_pretty(err));
        error_free(err);
        goto out;
    }
    ret = 0;
out:
    g_string_free(opts, TRUE);
    return ret;
}
