/*
 * The copy loop of sen-img convert: -m workers each take the next chunk of the source,
 * read it (skipping what the source's block status says reads as zeroes), detect zero
 * runs, compress it with -c, and write it.  Reads, zero detection and compression of
 * different chunks overlap; the writes follow guest order unless -W, as qemu-img's, so
 * the target's layout does not depend on thread timing.  qemu-img overlaps its requests
 * the same way with -m coroutines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block-internal.h"
#include "sen/buffer-is-zero.h"
#include "block/qcow2.h"
#include "tools/img/convert-copy.h"

typedef struct CopyRun {
    const ConvertCopy *c;
    uint64_t gran;          /* zero-detection unit: -S, or the cluster with -c */

    GMutex lock;            /* guards the fields below */
    GCond turn_cond;        /* next_write moved, or a worker failed */
    int64_t next_read;      /* the chunk the next idle worker takes */
    int64_t next_write;     /* in order: the chunk whose write may start */
    uint64_t done;          /* bytes written, for the progress line */
    int ret;                /* first error (-errno), 0 while all is well */
    int64_t err_off;
    bool err_write;
} CopyRun;

/* What one worker owns: the chunk buffer and, per zero-detection unit, what is known. */
typedef struct CopyWorker {
    CopyRun *run;
    GThread *thread;
    uint8_t *buf;           /* chunk bytes, 4 KiB aligned for O_DIRECT */
    uint8_t *cbuf;          /* -c: compressed clusters, one cluster each */
    bool *known_zero;       /* unit i reads as zero per the source's block status */
} CopyWorker;

static void copy_fail(CopyRun *r, int ret, int64_t off, bool write)
{
    g_mutex_lock(&r->lock);
    if (r->ret == 0) {
        r->ret = ret;
        r->err_off = off;
        r->err_write = write;
    }
    g_cond_broadcast(&r->turn_cond);
    g_mutex_unlock(&r->lock);
}

/*
 * Reads [off, off+n) into w->buf.  Ranges the source reports as zeroes are not read:
 * with -S, units wholly inside them are marked known_zero (their bytes are never used
 * unless compressed onto a non-zero target, which zeroes them first); other bytes of
 * such ranges are zeroed here.  Returns 0 or -errno; *err_off
 * is where a read failed.
 */
static int copy_read(CopyWorker *w, int64_t off, uint64_t n, int64_t *err_off)
{
    const ConvertCopy *c = w->run->c;
    uint64_t gran = w->run->gran, units = (n + gran - 1) / gran;
    uint64_t data_start = 0;  /* start of the data extent being gathered */

    memset(w->known_zero, 0, units * sizeof(*w->known_zero));
    for (uint64_t p = 0; p < n;) {
        int64_t pnum = 0, map = 0;
        BlockDriverState *file = NULL;
        int st = bdrv_block_status(c->src, off + p, n - p, &pnum, &map, &file);
        if (st < 0 || pnum <= 0) {
            /* No answer: read the rest, which is always right. */
            p = n;
            break;
        }
        if (!(st & BDRV_BLOCK_ZERO)) {
            p += pnum;
            continue;
        }
        if (p > data_start) {
            int ret = bdrv_pread(c->src, off + data_start, p - data_start,
                                 w->buf + data_start);
            if (ret < 0) {
                *err_off = off + data_start;
                return ret;
            }
        }
        uint64_t zend = p + pnum;
        for (uint64_t u = p / gran; u * gran < zend; u++) {
            uint64_t ustart = u * gran, uend = MIN(ustart + gran, n);
            if (c->sparse && ustart >= p && uend <= zend) {
                w->known_zero[u] = true;
            } else {
                uint64_t a = MAX(ustart, p), b = MIN(uend, zend);
                memset(w->buf + a, 0, b - a);
            }
        }
        p = zend;
        data_start = zend;
    }
    if (data_start < n) {
        int ret = bdrv_pread(c->src, off + data_start, n - data_start, w->buf + data_start);
        if (ret < 0) {
            *err_off = off + data_start;
            return ret;
        }
    }
    return 0;
}

static bool unit_is_zero(CopyWorker *w, uint64_t p, uint64_t len)
{
    const ConvertCopy *c = w->run->c;
    return c->sparse && (w->known_zero[p / w->run->gran] || buffer_is_zero(w->buf + p,
                                                                                len));
}

/* -c, before the write turn: compresses every cluster of the chunk that will be written;
 * clens[i] is the length, -ENOSPC (does not shrink) or -errno; -1 marks a skipped one. */
static void copy_compress(CopyWorker *w, int64_t off, uint64_t n, ssize_t *clens)
{
    const ConvertCopy *c = w->run->c;
    uint64_t cs = c->cluster_size;

    for (uint64_t i = 0; i * cs < n; i++) {
        uint64_t p = i * cs;
        if (c->target_zero && unit_is_zero(w, p, MIN(cs, n - p))) {
            clens[i] = -1;
            continue;
        }
        if (w->known_zero[i]) {
            memset(w->buf + p, 0, MIN(cs, n - p));
        }
        clens[i] = qcow2_compress_cluster(c->dst, off + p, w->buf + p, w->cbuf + p);
    }
}

/* Writes the chunk: compressed clusters, or one request per run of data or of zeroes
 * (zero runs are left out when the target already reads as zeroes). */
static int copy_write(CopyWorker *w, int64_t off, uint64_t n, const ssize_t *clens,
                      int64_t *err_off)
{
    const ConvertCopy *c = w->run->c;
    uint64_t gran = w->run->gran;

    if (c->compress) {
        for (uint64_t i = 0; i * c->cluster_size < n; i++) {
            uint64_t p = i * c->cluster_size;
            if (clens[i] == -1) {
                continue;
            }
            int ret = qcow2_write_compressed_prepared(c->dst, off + p, w->buf + p,
                                                      w->cbuf + p, clens[i]);
            if (ret < 0) {
                *err_off = off + p;
                return ret;
            }
        }
        return 0;
    }
    for (uint64_t p = 0; p < n;) {
        uint64_t len = MIN(gran, n - p);
        bool zero = unit_is_zero(w, p, len);
        while (p + len < n && unit_is_zero(w, p + len, MIN(gran, n - p - len)) == zero) {
            len += MIN(gran, n - p - len);
        }
        int ret = 0;
        if (zero && !c->target_zero) {
            ret = bdrv_pwrite_zeroes(c->dst, off + p, len, 0);
        } else if (!zero) {
            ret = bdrv_pwrite(c->dst, off + p, len, w->buf + p);
        }
        if (ret < 0) {
            *err_off = off + p;
            return ret;
        }
        p += len;
    }
    return 0;
}

/* Takes the next chunk; false when there is none left or a worker failed. */
static bool copy_next_chunk(CopyRun *r, int64_t *off)
{
    bool ok;

    g_mutex_lock(&r->lock);
    ok = r->ret == 0 && r->next_read < r->c->size;
    if (ok) {
        *off = r->next_read;
        r->next_read += r->c->chunk;
    }
    g_mutex_unlock(&r->lock);
    return ok;
}

/* In order: waits until the chunks before off are written; false after a failure. */
static bool copy_wait_turn(CopyRun *r, int64_t off)
{
    g_mutex_lock(&r->lock);
    while (r->c->in_order && r->ret == 0 && r->next_write != off) {
        g_cond_wait(&r->turn_cond, &r->lock);
    }
    bool ok = r->ret == 0;
    g_mutex_unlock(&r->lock);
    return ok;
}

static void copy_end_turn(CopyRun *r, int64_t off, uint64_t n)
{
    g_mutex_lock(&r->lock);
    if (r->c->in_order) {
        r->next_write = off + r->c->chunk;
        g_cond_broadcast(&r->turn_cond);
    }
    r->done += n;
    if (r->c->progress) {
        printf("    (%.2f/100%%)\r", r->done * 100.0 / r->c->size);
        fflush(stdout);
    }
    g_mutex_unlock(&r->lock);
}

static gpointer copy_worker(gpointer opaque)
{
    CopyWorker *w = opaque;
    CopyRun *r = w->run;
    const ConvertCopy *c = r->c;
    g_autofree ssize_t *clens = c->compress ? g_new(ssize_t, c->chunk / c->cluster_size)
                                            : NULL;
    int64_t off;

    while (copy_next_chunk(r, &off)) {
        uint64_t n = MIN(c->chunk, (uint64_t)(c->size - off));
        int64_t err_off = off;
        int ret = copy_read(w, off, n, &err_off);
        if (ret < 0) {
            copy_fail(r, ret, err_off, false);
            break;
        }
        if (c->compress) {
            /* The last cluster is compressed whole: zero its tail past the disk's end. */
            memset(w->buf + n, 0, c->chunk - n);
            copy_compress(w, off, n, clens);
        }
        if (!copy_wait_turn(r, off)) {
            break;
        }
        ret = copy_write(w, off, n, clens, &err_off);
        if (ret < 0) {
            copy_fail(r, ret, err_off, true);
            break;
        }
        copy_end_turn(r, off, n);
    }
    return NULL;
}

static void copy_worker_free(CopyWorker *w)
{
    free(w->buf);
    g_free(w->cbuf);
    g_free(w->known_zero);
}

bool convert_copy(const ConvertCopy *c, Error **errp)
{
    CopyRun r = {
        .c = c,
        .gran = c->sparse && !c->compress ? MIN(c->sparse, c->chunk) : c->cluster_size,
    };
    int64_t nchunks = (c->size + c->chunk - 1) / c->chunk;
    int nworkers = (int)MAX(1, MIN((int64_t)c->workers, nchunks));
    CopyWorker *w = g_new0(CopyWorker, nworkers);
    bool ok = false;

    g_mutex_init(&r.lock);
    g_cond_init(&r.turn_cond);
    for (int i = 0; i < nworkers; i++) {
        w[i].run = &r;
        if (posix_memalign((void **)&w[i].buf, 4096, c->chunk)) {
            error_setg(errp, "Could not allocate %" G_GUINT64_FORMAT " bytes", c->chunk);
            goto out;
        }
        w[i].known_zero = g_new(bool, (c->chunk + r.gran - 1) / r.gran);
        if (c->compress) {
            w[i].cbuf = g_malloc(c->chunk);
        }
    }
    /* The calling thread is worker 0; a worker that cannot start leaves its chunks to
     * the others. */
    for (int i = 1; i < nworkers; i++) {
        w[i].thread = g_thread_try_new("convert", copy_worker, &w[i], NULL);
    }
    copy_worker(&w[0]);
    for (int i = 1; i < nworkers; i++) {
        if (w[i].thread) {
            g_thread_join(w[i].thread);
        }
    }
    if (r.ret < 0) {
        error_setg(errp, "error while %s at byte %" G_GINT64_FORMAT ": %s",
                   r.err_write ? "writing" : "reading", r.err_off, g_strerror(-r.ret));
        goto out;
    }
    ok = true;
out:
    for (int i = 0; i < nworkers; i++) {
        copy_worker_free(&w[i]);
    }
    g_free(w);
    g_mutex_clear(&r.lock);
    g_cond_clear(&r.turn_cond);
    return ok;
}
