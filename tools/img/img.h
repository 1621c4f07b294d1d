/* sen-img: one file per subcommand; this header is what they share. */
#ifndef SEN_TOOLS_IMG_H
#define SEN_TOOLS_IMG_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/block.h"
#include "sen/error.h"
#include "sen/keyval.h"

/* Each returns the process exit status. */
int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_check(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_snapshot(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_map(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_bench(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_measure(int argc, char **argv);
int img_amend(int argc, char **argv);
int img_bitmap(int argc, char **argv);

/* Prints "usage: sen-img CMD ..." for -h, from the command table (main.c), which is also
 * what `sen-img --help` lists. */
void img_print_usage(const char *cmd);

struct option;
/*
 * getopt_long for every command (args.c): options may follow the operands, as with
 * qemu-img (glibc permutes argv; "--" ends the options); shortopts without getopt's
 * '+'/':' prefixes.  An unknown option or a missing argument is reported as qemu-img
 * words it and returned as '?'.  main() starts the command's scan afresh.
 */
int img_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* Reports a wrong command line as qemu-img's error_exit: the message, then
 * "Try 'sen-img --help' for more information". */
void img_usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* The preamble of the commands on existing images (args.c). */
enum {
    IMG_OPT_OUTPUT = 0x100,
    IMG_OPT_TARGET_IMAGE_OPTS = 0x1fe, /* convert's */
    IMG_OPT_IMAGE_OPTS = 0x1ff,
    IMG_OPT_FIRST_CMD = 0x200,
};
/* --image-opts, for the commands with their own getopt loop (the others get it from
 * img_parse_image_args). */
#define IMG_LONGOPT_IMAGE_OPTS { "image-opts", no_argument, NULL, IMG_OPT_IMAGE_OPTS }
typedef struct ImgArgsSpec {
    const char *cmd;                 /* the command's name, for -h */
    const char *shortopts;           /* the command's own, appended to "f:hU" */
    const struct option *longopts;   /* the command's own, ends with a NULL name */
    /* Handles one of the command's options; false (after a message) stops with the
     * error status. */
    bool (*option)(int c, const char *arg, void *opaque);
    void *opaque;
    bool output;                     /* accepts --output=human|json */
    bool two_files;                  /* takes two image names (compare) */
    int error_status;                /* exit status on the command's own errors (usage
                                      * errors exit 1 as qemu-img's); 0 means 1 */
    bool no_force_share;             /* no -U/--force-share (qemu-img's commit) */
} ImgArgsSpec;
typedef struct ImgImageArgs {
    const char *fmt;                 /* -f, or NULL to probe */
    bool json;                       /* --output=json */
    bool image_opts;                 /* --image-opts: the names are option strings */
    const char *filename;
    const char *filename2;           /* with two_files */
    int share_flags;                 /* BDRV_O_FORCE_SHARE after -U/--force-share */
} ImgImageArgs;
/* Returns -1 to go on with *out filled, or the exit status (0 after -h, else the error
 * status). */
int img_parse_image_args(int argc, char **argv, const ImgArgsSpec *spec, ImgImageArgs *out);

/*
 * qemu-img's -l snapshot_param (convert, measure): "snapshot.id=ID,snapshot.name=NAME"
 * (one key or both) or a bare id or name.  Parsing fails with qemu-img's messages
 * ("Invalid parameter 'k'", "Failed in parsing snapshot param '...'").
 */
typedef struct ImgSnapshotParam {
    char *id, *name;       /* from the snapshot.* form */
    const char *id_or_name; /* the bare form */
} ImgSnapshotParam;
bool img_snapshot_param_parse(const char *arg, ImgSnapshotParam *out);
/* Loads p (when given) read-only into bs, or reports "Failed to load snapshot: ...". */
bool img_snapshot_param_load(BlockDriverState *bs, const ImgSnapshotParam *p);
void img_snapshot_param_clear(ImgSnapshotParam *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ImgSnapshotParam, img_snapshot_param_clear)

/* convert --bitmaps (convert-bitmaps.c): before the target is created, whether src's
 * persistent bitmaps can be copied (inconsistent ones only with skip_broken); after the
 * data copy, each of them created in dst and filled from src's.  Both report, as
 * qemu-img words it, and return false on failure. */
bool img_convert_bitmaps_check(BlockDriverState *src, bool skip_broken);
bool img_convert_bitmaps_copy(BlockDriverState *src, BlockDriverState *dst,
                              bool skip_broken);

/*
 * Opens filename (fmt NULL: probe) or reports the error; NULL on failure.  With
 * image_opts (qemu-img's --image-opts) filename is a node option string
 * ("driver=qcow2,file.filename=x.qcow2,...", the keys of -blockdev) and fmt must be NULL.
 * The image is locked as qemu-img locks it: read (and written with BDRV_O_RDWR), every
 * use shared with others except what the format itself refuses (a qcow2 image in use
 * by a writer fails with "Failed to get shared \"write\" lock" unless
 * BDRV_O_FORCE_SHARE, which needs a read-only open).
 */
BlockDriverState *img_open(const char *filename, const char *fmt, bool image_opts,
                           int flags);
/* Adds the BDRV_O_* flags of a -t cache mode (none, writeback, unsafe, ...) to *flags;
 * false with qemu-img's message for an unknown mode. */
bool img_parse_cache(const char *mode, int *flags);
/* The same for a -T source cache mode ("Invalid source cache option: MODE"). */
bool img_parse_src_cache(const char *mode, int *flags);
/* A byte count min..max with the size suffixes ("10G", "0x10k" with its warning), as
 * qemu-img's cvtnum_full: false with its messages naming what ("Invalid bs specified. You
 * may use k, M, G ...", or for a number out of range "... Must be between 1 and ..."). */
bool img_parse_num_range(const char *what, const char *str, int64_t min, int64_t max,
                         int64_t *out);
/* The same for 0..INT64_MAX, as qemu-img's cvtnum ("start offset", "image size" ...). */
bool img_parse_num(const char *what, const char *str, int64_t *out);
/* A size option as qemu-img's option lists parse it (resize's size): false with their
 * messages ("Parameter 'size' expects a non-negative number below 2^64" and the suffix
 * hint, or "Value '...' is out of range for parameter 'size'"). */
bool img_parse_opt_size(const char *name, const char *str, uint64_t *out);
/* The byte-size options of a -o list for format fmt (size; cluster_size for qcow2) as
 * qemu-img's option list parses them when it reads -o, before the format driver reads them
 * again (so "0x1k" warns twice in create, as there): false with img_parse_opt_size's
 * messages after prefix ("x.qcow2: " in create, "" elsewhere).  Other keys are left to
 * the driver. */
bool img_check_size_opts(const char *fmt, Keyval *kv, const char *prefix);
/* A count as qemu-img reads bench -c/-d/--flush-interval and convert -m (qemu_strtoul,
 * base 0: decimal, 0x hex, 0 octal; no suffix) up to INT_MAX; false, with no message
 * (each caller has its own), when str is not that. */
bool img_parse_count(const char *str, uint64_t *out);
/* -r: sleeps until moving done bytes since start_ns (g_get_monotonic_time() * 1000) has
 * taken as long as rate bytes a second allow; rate 0 is no limit. */
void img_throttle(uint64_t rate, int64_t start_ns, uint64_t done);

#endif
