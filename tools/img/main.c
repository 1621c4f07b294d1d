/*
 * sen-img: QEMU-compatible disk image tool on Sen's block layer.  Subcommands and options
 * are spelled as qemu-img spells them; exit status 1 on every error, with the image left
 * untouched.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sen-config.h"
#include "sen/keyval.h"
#include "tools/img/img.h"

/*
 * The commands and their syntax: the one source of `sen-img --help` and of each
 * command's -h (img_print_usage).
 */
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;  /* after "usage: sen-img " */
} img_cmds[] = {
    { "create", img_create,
      "create [-f fmt] [-o options] [-b backing_file [-F backing_fmt]] [-u] [-q] "
      "filename [size]" },
    { "info", img_info,
      "info [--image-opts] [-f fmt] [--output=human|json] [--backing-chain] [-U] "
      "filename" },
    { "convert", img_convert,
      "convert [--image-opts] [--target-image-opts] [--bitmaps "
      "[--skip-broken-bitmaps]] [--target-is-zero] [-U] [-C] [-c] [-p] [-q] [-n] [-f "
      "fmt] [-t cache] [-T src_cache] [-O output_fmt] [-o options] [-B backing_file "
      "[-F backing_fmt]] [-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m "
      "num_coroutines] [-W] [--salvage] filename [filename2 [...]] output_filename" },
    { "snapshot", img_snapshot,
      "snapshot [--image-opts] [-f fmt] [-l | -a snapshot | -c snapshot | -d "
      "snapshot] [-q] [-U] filename" },
    { "resize", img_resize,
      "resize [--image-opts] [--preallocation=PREALLOC] [--shrink] [-f fmt] [-q] "
      "filename [+ | -]size" },
    { "map", img_map,
      "map [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] "
      "[--output=human|json] [-U] filename" },
    { "compare", img_compare,
      "compare [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] "
      "filename1 filename2" },
    { "bench", img_bench,
      "bench [--image-opts] [-c count] [-d depth] [-f fmt] [--flush-interval=N] [-i "
      "aio] [-n] [--no-drain] [-o offset] [--pattern=N] [-q] [-s size] [-S step] [-t "
      "cache] [-w] [-U] filename" },
    { "rebase", img_rebase,
      "rebase [--image-opts] [-f fmt] [-t cache] [-T src_cache] [-p] [-q] [-u] [-U] "
      "-b backing_file [-F backing_fmt] filename" },
    { "commit", img_commit,
      "commit [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] "
      "[-p] filename" },
    { "dd", img_dd,
      "dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] "
      "[skip=blocks] if=input of=output" },
    { "amend", img_amend,
      "amend [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options "
      "filename" },
    { "measure", img_measure,
      "measure [--image-opts] [--output=human|json] [-O output_fmt] [-o options] "
      "[--size N | [-f fmt] [-l snapshot_param] [-U] filename]" },
    { "check", img_check,
      "check [--image-opts] [-f fmt] [--output=human|json] [-r leaks|all] [-T "
      "src_cache] [-q] [-U] filename" },
    { "bitmap", img_bitmap,
      "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... "
      "[-b source_file [-F source_fmt]] [-g granularity] [--image-opts | -f fmt] "
      "filename bitmap" },
};

void img_print_usage(const char *cmd)
{
    for (size_t i = 0; i < G_N_ELEMENTS(img_cmds); i++) {
        if (!strcmp(img_cmds[i].name, cmd)) {
            printf("usage: sen-img %s\n", img_cmds[i].usage);
            return;
        }
    }
    g_assert_not_reached();
}

static void usage(void)
{
    printf("usage: sen-img [standard options] command [command options]\n"
           "QEMU-compatible disk image utility.\n\nCommand syntax:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(img_cmds); i++) {
        printf("  %s\n", img_cmds[i].usage);
    }
}

BlockDriverState *img_open(const char *filename, const char *fmt, bool image_opts,
                           int flags)
{
    Error *err = NULL;
    BlockDriverState *bs;

    if (!image_opts) {
        bs = bdrv_open(filename, NULL, fmt, flags, &err);
    } else if (fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return NULL;
    } else {
        /* The option string parser of -drive/-blockdev; bdrv_open checks the keys. */
        Keyval *opts = keyval_parse(filename, NULL, &err);
        bs = opts ? bdrv_open(NULL, opts, NULL, flags, &err) : NULL;
    }
    /* qemu-img's BlockBackend: reads (unless metadata only), writes when writable,
     * shares everything. */
    if (bs && !bdrv_perm_claim(bs, &img_open,
                               ((flags & BDRV_O_NO_IO) ? 0 : BLK_PERM_CONSISTENT_READ) |
                               ((flags & BDRV_O_RDWR) ? BLK_PERM_WRITE : 0),
                               BLK_PERM_ALL, &err)) {
        g_clear_pointer(&bs, bdrv_unref);
    }
    if (!bs) {
        /* As qemu-img: "Could not open 'NAME': " before what does not name the image
         * (the lock errors, which carry a hint, and force-share's). */
        const char *msg = error_get_pretty(err);
        if ((image_opts || error_get_hint(err) || g_str_has_prefix(msg, "force-share")) &&
            !strstr(msg, filename)) {
            error_prepend(&err, "Could not open '%s': ", filename);
        }
        error_report_err(err);
    }
    return bs;
}

static bool parse_cache(const char *mode, int *flags, const char *what)
{
    if (!strcmp(mode, "none") || !strcmp(mode, "off") || !strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else if (strcmp(mode, "writeback") && strcmp(mode, "writethrough")) {
        error_report("Invalid %scache option: %s", what, mode);
        return false;
    }
    return true;
}

bool img_parse_cache(const char *mode, int *flags)
{
    return parse_cache(mode, flags, "");
}

bool img_parse_src_cache(const char *mode, int *flags)
{
    return parse_cache(mode, flags, "source ");
}

bool img_parse_num(const char *what, const char *str, int64_t *out)
{
    return img_parse_num_range(what, str, 0, INT64_MAX, out);
}

bool img_parse_num_range(const char *what, const char *str, int64_t min, int64_t max,
                         int64_t *out)
{
    Error *err = NULL;
    uint64_t v;
    if (!parse_size(str, 1, &v, &err)) {
        /* qemu-img tells a number too big for 64 bits (ERANGE) from one it cannot read. */
        bool range = strstr(error_get_pretty(err), "too large");
        error_free(err);
        if (!range) {
            error_report("Invalid %s specified. You may use k, M, G, T, P or E suffixes "
                         "for", what);
            error_report("kilobytes, megabytes, gigabytes, terabytes, petabytes and "
                         "exabytes.");
            return false;
        }
        v = UINT64_MAX;
    }
    if (v > (uint64_t)max || (int64_t)v < min) {
        error_report("Invalid %s specified. Must be between %" G_GINT64_FORMAT " and %"
                     G_GINT64_FORMAT ".", what, min, max);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_opt_size(const char *prefix, const char *name, const char *str,
                           uint64_t *out)
{
    Error *err = NULL;
    if (parse_size(str, 1, out, &err)) {
        return true;
    }
    if (strstr(error_get_pretty(err), "too large")) {
        error_report("%sValue '%s' is out of range for parameter '%s'", prefix, str, name);
    } else {
        error_report("%sParameter '%s' expects a non-negative number below 2^64", prefix,
                     name);
        fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                "tera-, peta-\nand exabytes, respectively.\n");
    }
    error_free(err);
    return false;
}

bool img_parse_opt_size(const char *name, const char *str, uint64_t *out)
{
    return parse_opt_size("", name, str, out);
}

bool img_check_size_opts(const char *fmt, Keyval *kv, const char *prefix)
{
    static const char *const keys[] = { "size", "cluster_size" };
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        const char *v = keyval_get(kv, keys[i]);
        uint64_t n;
        if (i > 0 && strcmp(fmt, "qcow2")) {
            break; /* raw has only size */
        }
        if (v && !parse_opt_size(prefix, keys[i], v, &n)) {
            return false;
        }
    }
    return true;
}

bool img_parse_count(const char *str, uint64_t *out)
{
    char *end;
    errno = 0;
    guint64 v = g_ascii_strtoull(str, &end, 0);
    if (end == str || *end || errno || v > INT_MAX) {
        return false;
    }
    *out = v;
    return true;
}

void img_throttle(uint64_t rate, int64_t start_ns, uint64_t done)
{
    if (!rate) {
        return;
    }
    int64_t due = start_ns + (int64_t)MIN((double)done * 1e9 / (double)rate, 1e18);
    int64_t now = g_get_monotonic_time() * 1000;
    if (due > now) {
        struct timespec ts = { .tv_sec = (due - now) / 1000000000,
                               .tv_nsec = (due - now) % 1000000000 };
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    error_set_progname("sen-img");
    /* This thread serves nothing but the image requests: a request with none in flight
     * runs here rather than on a pool worker (bench at depth 1, see block.h). */
    bdrv_set_inline_when_idle(true);
    if (argc < 2) {
        img_usage_error("Not enough arguments");
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("sen-img version " SEN_VERSION "\n");
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(img_cmds); i++) {
        if (!strcmp(argv[1], img_cmds[i].name)) {
            /* glibc: 0 starts a fresh scan, reading the order from the option string. */
            optind = 0;
            return img_cmds[i].fn(argc - 1, argv + 1);
        }
    }
    img_usage_error("Command not found: %s", argv[1]);
    return 1;
}
