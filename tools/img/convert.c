/*
 * sen-img convert: copies an image into a new one (or an existing one with -n), skipping
 * zero runs of at least -S bytes (4k by default) so the target stays sparse; -c writes
 * qcow2 clusters compressed, compressing on up to -m threads (see compress_chunk).  -t is
 * the target's cache mode, unsafe by default as in qemu-img (no flush until the end; a
 * crash mid-copy leaves a target to throw away).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block-internal.h"
#include "block/qcow2.h"
#include "sen/keyval.h"
#include "tools/img/img.h"

#define CONVERT_CHUNK (2 * 1024 * 1024)

static void progress(bool on, uint64_t done, uint64_t total)
{
    if (on) {
        printf("    (%.2f/100%%)\r", total ? done * 100.0 / total : 100.0);
        fflush(stdout);
    }
}

static bool create_target(const char *fmt, const char *filename, const char *opts,
                          uint64_t size, const char *backing, const char *backing_fmt)
{
    Error *err = NULL;
    Keyval *kv = opts && *opts ? keyval_parse(opts, NULL, &err) : block_keyval_new();
    if (!kv) {
        error_report("Invalid options for file format '%s': %s", fmt, error_get_pretty(err));
        error_free(err);
        return false;
    }
    g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, size);
    block_keyval_add(kv, "size", s);
    if (backing) {
        block_keyval_add(kv, "backing_file", backing);
    }
    if (backing_fmt) {
        block_keyval_add(kv, "backing_fmt", backing_fmt);
    }
    bool ok = bdrv_create(fmt, filename, kv, &err) &&
              keyval_check_all_used(kv, filename, &err);
    keyval_free(kv);
    if (!ok) {
        error_report("%s: error while converting %s: %s", filename, fmt,
                     error_get_pretty(err));
        error_free(err);
    }
    return ok;
}

/*
 * convert -c: the clusters of a chunk are compressed on worker threads (compression is
 * the whole cost of a compressed convert) and then written in guest order by the caller,
 * so the packed layout is the same as a single-threaded copy's.
 */
typedef struct CompressBatch {
    BlockDriverState *dst;
    GMutex lock;
    GCond done_cond;
    int pending;
} CompressBatch;

typedef struct CompressJob {
    CompressBatch *batch;
    uint64_t off;           /* guest offset of the cluster */
    const uint8_t *buf;     /* its data */
    uint8_t *cbuf;          /* compressed form (cluster_size bytes) */
    ssize_t clen;           /* length, -ENOSPC or -errno */
    bool skip;              /* zeroes on a target that reads as zeroes: not written */
} CompressJob;

static void compress_job_run(gpointer data, gpointer user_data)
{
    CompressJob *job = data;
    CompressBatch *b = job->batch;

    job->clen = qcow2_compress_cluster(b->dst, job->off, job->buf, job->cbuf);
    g_mutex_lock(&b->lock);
    if (--b->pending == 0) {
        g_cond_signal(&b->done_cond);
    }
    g_mutex_unlock(&b->lock);
}

/* Compresses the n clusters of jobs[] on pool, waits, then writes them in order. */
static int compress_chunk(GThreadPool *pool, CompressBatch *b, CompressJob *jobs, int n,
                          uint64_t *err_off)
{
    g_mutex_lock(&b->lock);
    for (int i = 0; i < n; i++) {
        if (!jobs[i].skip) {
            b->pending++;
            g_thread_pool_push(pool, &jobs[i], NULL);
        }
    }
    while (b->pending) {
        g_cond_wait(&b->done_cond, &b->lock);
    }
    g_mutex_unlock(&b->lock);
    for (int i = 0; i < n; i++) {
        if (jobs[i].skip) {
            continue;
        }
        int r = qcow2_write_compressed_prepared(b->dst, jobs[i].off, jobs[i].buf,
                                                jobs[i].cbuf, jobs[i].clen);
        if (r < 0) {
            *err_off = jobs[i].off;
            return r;
        }
    }
    return 0;
}

int img_convert(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw", *backing = NULL, *backing_fmt = NULL;
    GString *opts = g_string_new(NULL);
    bool compress = false, show_progress = false, no_create = false, quiet = false;
    uint64_t sparse = 4096, workers = 8;
    int c, ret = 1, dst_flags = BDRV_O_RDWR;
    /* qemu-img's default for the target: nothing is flushed until the copy is done. */
    const char *cache = "unsafe";
    BlockDriverState *src = NULL, *dst = NULL;
    uint8_t *buf = NULL, *cbufs = NULL;
    GThreadPool *pool = NULL;
    CompressJob *jobs = NULL;
    CompressBatch batch = { 0 };
    g_mutex_init(&batch.lock);
    g_cond_init(&batch.done_cond);
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force-share", no_argument, NULL, 'U' },
        { "target-is-zero", no_argument, NULL, 'z' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    while ((c = getopt_long(argc, argv, "+hf:O:B:F:co:pnS:Wm:qt:T:rU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'B':
            backing = optarg;
            break;
        case 'F':
            backing_fmt = optarg;
            break;
        case 'c':
            compress = true;
            break;
        case 'o':
            g_string_append_printf(opts, "%s%s", opts->len ? "," : "", optarg);
            break;
        case 'p':
            show_progress = true;
            break;
        case 'n':
            no_create = true;
            break;
        case 'S':
            if (!img_parse_size(optarg, &sparse)) {
                goto out;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 't':
            cache = optarg;
            break;
        case 'm':
            /* qemu-img's number of parallel requests; here compression threads. */
            if (!img_parse_size(optarg, &workers) || workers < 1 || workers > 16) {
                error_report("Invalid number of coroutines. Allowed number of coroutines "
                             "is between 1 and 16");
                goto out;
            }
            break;
        case 'W':
            break; /* out-of-order writes allowed; in order is always correct */
        case 'T':
        case 'r':
        case 'U':
        case 'z':
            break; /* source cache mode, -r rate, sharing: nothing to change here */
        case 'h':
            printf("usage: sen-img convert [-c] [-p] [-q] [-n] [-f fmt] [-O output_fmt] "
                   "[-o options] [-B backing_file [-F backing_fmt]] [-S sparse_size] "
                   "filename output_filename\n");
            ret = 0;
            goto out;
        default:
            goto out;
        }
    }
    if (argc - optind != 2) {
        error_report("Expecting one input and one output file name");
        goto out;
    }
    const char *in = argv[optind], *outname = argv[optind + 1];
    if (!img_parse_cache(cache, &dst_flags)) {
        goto out;
    }
    if (compress && strcmp(out_fmt, "qcow2")) {
        error_report("Compression not supported for this file format");
        goto out;
    }
    src = img_open(in, fmt, 0);
    if (!src) {
        goto out;
    }
    int64_t size = bdrv_getlength(src);
    if (size < 0) {
        error_report("Could not get size of '%s'", in);
        goto out;
    }
    if (!no_create &&
        !create_target(out_fmt, outname, opts->str, size, backing, backing_fmt)) {
        goto out;
    }
    dst = img_open(outname, out_fmt, dst_flags);
    if (!dst) {
        goto out;
    }
    if (no_create && bdrv_getlength(dst) < size) {
        error_report("Target '%s' is smaller than the source", outname);
        goto out;
    }
    BlockDriverInfo bdi = { 0 };
    uint64_t cs = bdrv_get_info(dst, &bdi) == 0 && bdi.cluster_size ? bdi.cluster_size
                                                                    : 65536;
    uint64_t chunk = MAX(cs, (uint64_t)CONVERT_CHUNK) / cs * cs;
    uint64_t gran = sparse && !compress ? MIN(sparse, chunk) : cs;
    /* Aligned for O_DIRECT (-t none). */
    if (posix_memalign((void **)&buf, 4096, chunk)) {
        error_report("Could not allocate %" G_GUINT64_FORMAT " bytes", chunk);
        goto out;
    }
    /* A new image without backing reads as zeros: zero runs need no write at all. */
    bool target_zero = !no_create && !backing;
    int per_chunk = chunk / cs;
    if (compress) {
        /* More threads than processors only adds switching. */
        int nthreads = MIN((int)workers, MAX(g_get_num_processors(), 1));
        batch.dst = dst;
        jobs = g_new0(CompressJob, per_chunk);
        cbufs = g_malloc(chunk);
        pool = g_thread_pool_new(compress_job_run, NULL, nthreads, true, NULL);
        if (!pool) {
            error_report("Could not start compression threads");
            goto out;
        }
    }
    for (int64_t off = 0; off < size; off += chunk) {
        uint64_t n = MIN(chunk, (uint64_t)(size - off));
        int r = bdrv_pread(src, off, n, buf);
        if (r < 0) {
            error_report("error while reading at byte %" G_GINT64_FORMAT ": %s", off,
                         g_strerror(-r));
            goto out;
        }
        memset(buf + n, 0, chunk - n);
        if (compress) {
            int nj = (n + cs - 1) / cs;
            for (int i = 0; i < nj; i++) {
                const uint8_t *cl = buf + i * cs;
                jobs[i] = (CompressJob){
                    .batch = &batch, .off = off + i * cs, .buf = cl, .cbuf = cbufs + i * cs,
                    .skip = target_zero && sparse && block_buffer_is_zero(cl, cs),
                };
            }
            uint64_t err_off = 0;
            r = compress_chunk(pool, &batch, jobs, nj, &err_off);
            if (r < 0) {
                error_report("error while writing at byte %" G_GUINT64_FORMAT ": %s",
                             err_off, g_strerror(-r));
                goto out;
            }
            progress(show_progress && !quiet, off + n, size);
            continue;
        }
        for (uint64_t p = 0; p < n;) {
            /* One request per run of pieces of the same kind (data or zeroes). */
            uint64_t len = MIN(gran, n - p);
            bool zero = sparse && block_buffer_is_zero(buf + p, len);
            while (p + len < n &&
                   (sparse && block_buffer_is_zero(buf + p + len, MIN(gran, n - p - len))) ==
                       zero) {
                len += MIN(gran, n - p - len);
            }
            if (!(zero && target_zero)) {
                if (zero) {
                    r = bdrv_pwrite_zeroes(dst, off + p, len, 0);
                } else {
                    r = bdrv_pwrite(dst, off + p, len, buf + p);
                }
                if (r < 0) {
                    error_report("error while writing at byte %" G_GINT64_FORMAT ": %s",
                                 (int64_t)(off + p), g_strerror(-r));
                    goto out;
                }
            }
            p += len;
        }
        progress(show_progress && !quiet, off + n, size);
    }
    if (bdrv_flush(dst) < 0) {
        error_report("error while flushing '%s'", outname);
        goto out;
    }
    if (show_progress && !quiet) {
        printf("    (100.00/100%%)\n");
    }
    ret = 0;
out:
    if (pool) {
        g_thread_pool_free(pool, false, true);
    }
    g_free(jobs);
    g_free(cbufs);
    g_mutex_clear(&batch.lock);
    g_cond_clear(&batch.done_cond);
    free(buf);
    if (dst) {
        bdrv_unref(dst);
    }
    if (src) {
        bdrv_unref(src);
    }
    g_string_free(opts, TRUE);
    return ret;
}
