/*
 * The copy loop of sen-img convert: -m workers each take the next chunk of the source,
 * read it (skipping what the source's block status says reads as zeroes), detect zero
 * runs, compress it with -c, and write it.  Reads, zero detection and compression of
 * different chunks overlap; the writes follow guest order unless -W, as qemu-img's, so
 * the target's layout does not depend on thread timing.
 *
 * In order, a finished chunk that is not next in line is parked and its worker goes on
 * with a new one (with -c up to CHUNKS_PER_WORKER buffers each); whichever worker
 * finishes the chunk that is next writes it and every parked one that follows.  So
 * compression never waits for a slow neighbour's write turn.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block-internal.h"
#include "sen/buffer-is-zero.h"
#include "block/qcow2.h"
#include "tools/img/convert-copy.h"
#include "tools/img/img.h"

enum { CHUNKS_PER_WORKER = 4 };

/* One chunk in flight: its bytes and, per zero-detection unit, what is known. */
typedef struct CopyChunk {
    int64_t off;
    uint64_t n;
    uint8_t *buf;           /* chunk bytes, 4 KiB aligned for O_DIRECT */
    const uint8_t *data;    /* the chunk's bytes as written: buf, or map's view */
    FilePosixMap map;       /* the source file's page cache, when not read into buf */
    BlockDriverState *offload_src; /* -C: the host file holding all the chunk's data */
    int64_t offload_delta;  /* -C: its offset there minus the target offset */
    uint8_t *cbuf;          /* -c: compressed clusters, one cluster each */
    ssize_t *clens;         /* -c: their lengths, -ENOSPC, -errno, or -1 (skipped) */
    bool *known_zero;       /* unit i reads as zero per the source's block status */
    bool status_failed;     /* copy_read failed on the source's block status */
    struct CopyChunk *next; /* in the free list or the parked list */
} CopyChunk;

typedef struct CopyRun {
    const ConvertCopy *c;
    uint64_t gran;          /* zero-detection unit: -S, or the cluster with -c */

    GMutex lock;            /* guards the fields below */
    GCond free_cond;        /* a chunk buffer was freed, or a worker failed */
    CopyChunk *free;        /* buffers no chunk uses */
    CopyChunk *parked;      /* in order: finished chunks waiting to be written, by off */
    bool writing;           /* in order: a worker is writing the chunks in line */
    int64_t next_read;      /* the chunk the next idle worker takes */
    int64_t start_ns;       /* -r: when the copy began */
    uint64_t throttled;     /* -r: bytes of the write requests issued so far (atomic) */
    BlockDriverState *offload_dst; /* -C: the raw target's file node, or NULL */
    bool offload_failed;    /* -C: copy_file_range refused once: copy (atomic) */
    int64_t next_write;     /* in order: the chunk whose write comes next */
    uint64_t done;          /* bytes written, for the progress line */
    int ret;                /* first error (-errno), 0 while all is well */
    int64_t err_off;
    const char *err_what;   /* "reading", "writing" or "reading block status" */
} CopyRun;

/* The source holding target offset *off, which becomes an offset in it; *avail is how
 * many bytes from there belong to it. */
static const ConvertSource *src_at(const ConvertCopy *c, int64_t *off, int64_t *avail)
{
    int i = 0;

    while (i < c->nsrcs - 1 && *off >= c->srcs[i].size) {
        *off -= c->srcs[i++].size;
    }
    *avail = c->srcs[i].size - *off;
    return &c->srcs[i];
}

/*
 * bdrv_block_status of the concatenated sources at target offset off (*map in the
 * answering source's *file).  A source's sector tail past its end reads as zeroes.
 */
static int src_block_status(const ConvertCopy *c, int64_t off, int64_t n, int64_t *pnum,
                            int64_t *map, BlockDriverState **file)
{
    int64_t avail;
    const ConvertSource *s = src_at(c, &off, &avail);

    n = MIN(n, avail);
    if (off >= s->len) {
        *pnum = n;
        *map = 0;
        *file = NULL;
        return BDRV_BLOCK_ZERO;
    }
    return bdrv_block_status(s->bs, off, MIN(n, s->len - off), pnum, map, file);
}

/*
 * --salvage: reads [off, off+n) of bs again sector by sector after a failed read; a
 * sector that still fails reads as zeroes, with qemu-img's warning naming its offset in
 * that source.
 */
static void src_pread_salvage(const ConvertCopy *c, BlockDriverState *bs, int64_t off,
                              uint64_t n, uint8_t *buf)
{
    for (uint64_t p = 0; p < n;) {
        uint64_t len = MIN(BDRV_SECTOR_SIZE - (off + p) % BDRV_SECTOR_SIZE, n - p);
        int ret = bdrv_pread(bs, off + p, len, buf + p);
        if (ret < 0) {
            if (!c->quiet) {
                warn_report("error while reading offset %" G_GINT64_FORMAT ": %s",
                            (int64_t)(off + p), g_strerror(-ret));
            }
            memset(buf + p, 0, len);
        }
        p += len;
    }
}

/* bdrv_pread across the concatenated sources (zeroes past a source's end). */
static int src_pread(const ConvertCopy *c, int64_t off, uint64_t n, uint8_t *buf,
                     int64_t *err_off)
{
    while (n) {
        int64_t o = off, avail;
        const ConvertSource *s = src_at(c, &o, &avail);
        uint64_t len = MIN(n, (uint64_t)avail);
        uint64_t data = o < s->len ? MIN(len, (uint64_t)(s->len - o)) : 0;
        if (data) {
            int ret = bdrv_pread(s->bs, o, data, buf);
            if (ret < 0 && c->salvage) {
                src_pread_salvage(c, s->bs, o, data, buf);
            } else if (ret < 0) {
                *err_off = off;
                return ret;
            }
        }
        memset(buf + data, 0, len - data);
        off += len;
        buf += len;
        n -= len;
    }
    return 0;
}

static void copy_fail(CopyRun *r, int ret, int64_t off, const char *what)
{
    g_mutex_lock(&r->lock);
    if (r->ret == 0) {
        r->ret = ret;
        r->err_off = off;
        r->err_what = what;
    }
    g_cond_broadcast(&r->free_cond);
    g_mutex_unlock(&r->lock);
}

/*
 * Instead of reading: points k->data into a view of the source file's page cache when
 * every data extent of the chunk lies in one host file at one distance from its guest
 * offset (an image written in guest order, qemu-img convert's output) and every zero
 * extent covers whole -S units, which are marked known_zero.  A plain copy then does one
 * memory copy per byte (the write's) instead of two, and needs no chunk buffer pages.
 * False: the chunk is to be read (k->known_zero is reset there).
 */
static bool copy_map(CopyRun *r, CopyChunk *k)
{
    const ConvertCopy *c = r->c;
    uint64_t gran = r->gran, n = k->n;
    BlockDriverState *data_file = NULL;
    int64_t delta = 0;  /* host file offset - guest offset of every data byte */

    if (c->compress || !c->sparse || c->salvage) {
        /* -c compresses out of buf; -S 0 would memset zero extents; a view cannot tell
         * which sector of it fails to read (--salvage needs to: SIGBUS ends the run). */
        return false;
    }
    for (uint64_t p = 0; p < n;) {
        int64_t pnum = 0, map = 0;
        BlockDriverState *file = NULL;
        int st = src_block_status(c, k->off + p, n - p, &pnum, &map, &file);
        if (st < 0 || pnum <= 0) {
            return false;
        }
        if (st & BDRV_BLOCK_ZERO) {
            uint64_t end = p + pnum;
            if (p % gran || (end % gran && end != n)) {
                return false;
            }
            for (uint64_t u = p / gran; u * gran < end; u++) {
                k->known_zero[u] = true;
            }
        } else if (!(st & BDRV_BLOCK_OFFSET_VALID) ||
                   (data_file && (file != data_file || map - (k->off + (int64_t)p) != delta))) {
            return false;
        } else if (!data_file) {
            data_file = file;
            delta = map - (k->off + (int64_t)p);
        }
        p += pnum;
    }
    if (!data_file) {
        return false;  /* all zeroes: nothing to read anyway */
    }
    if (r->offload_dst && !__atomic_load_n(&r->offload_failed, __ATOMIC_RELAXED)) {
        k->offload_src = data_file;  /* -C: copy_write hands the data to the kernel */
        k->offload_delta = delta;
        return true;
    }
    k->data = file_posix_map(data_file, k->off + delta, n, &k->map);
    return k->data != NULL;
}

/*
 * Reads [off, off+n) into w->buf.  Ranges the source reports as zeroes are not read:
 * with -S, units wholly inside them are marked known_zero (their bytes are never used
 * unless compressed onto a non-zero target, which zeroes them first); other bytes of
 * such ranges are zeroed here.  Returns 0 or -errno; *err_off
 * is where a read failed.
 */
static int copy_read(CopyRun *r, CopyChunk *k, int64_t *err_off)
{
    const ConvertCopy *c = r->c;
    int64_t off = k->off;
    uint64_t n = k->n;
    uint64_t gran = r->gran, units = (n + gran - 1) / gran;
    uint64_t data_start = 0;  /* start of the data extent being gathered */

    memset(k->known_zero, 0, units * sizeof(*k->known_zero));
    k->offload_src = NULL;
    k->status_failed = false;
    if (copy_map(r, k)) {
        return 0;
    }
    memset(k->known_zero, 0, units * sizeof(*k->known_zero));
    k->data = k->buf;
    for (uint64_t p = 0; p < n;) {
        int64_t pnum = 0, map = 0;
        BlockDriverState *file = NULL;
        int st = src_block_status(c, off + p, n - p, &pnum, &map, &file);
        if (st < 0 && !c->salvage) {
            /* qemu-img stops there (a corrupt L2 entry, say). */
            k->status_failed = true;
            *err_off = off + p;
            return st;
        }
        if (st < 0 || pnum <= 0) {
            /* No answer (--salvage: the reads will tell): read the rest, which is always
             * right. */
            p = n;
            break;
        }
        if (!(st & BDRV_BLOCK_ZERO)) {
            p += pnum;
            continue;
        }
        if (p > data_start) {
            int ret = src_pread(c, off + data_start, p - data_start, k->buf + data_start,
                                err_off);
            if (ret < 0) {
                return ret;
            }
        }
        uint64_t zend = p + pnum;
        for (uint64_t u = p / gran; u * gran < zend; u++) {
            uint64_t ustart = u * gran, uend = MIN(ustart + gran, n);
            if (c->sparse && ustart >= p && uend <= zend) {
                k->known_zero[u] = true;
            } else {
                uint64_t a = MAX(ustart, p), b = MIN(uend, zend);
                memset(k->buf + a, 0, b - a);
            }
        }
        p = zend;
        data_start = zend;
    }
    if (data_start < n) {
        int ret = src_pread(c, off + data_start, n - data_start, k->buf + data_start,
                            err_off);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static bool unit_is_zero(CopyRun *r, CopyChunk *k, uint64_t p, uint64_t len)
{
    const ConvertCopy *c = r->c;
    if (k->offload_src) {
        return k->known_zero[p / r->gran];  /* -C: data is not looked at, as qemu-img */
    }
    return c->sparse && (k->known_zero[p / r->gran] || buffer_is_zero(k->data + p, len));
}

/* -c, before the write: compresses every cluster of the chunk that will be written. */
static void copy_compress(CopyRun *r, CopyChunk *k)
{
    const ConvertCopy *c = r->c;
    uint64_t cs = c->cluster_size, n = k->n;
    ssize_t *clens = k->clens;
    int64_t off = k->off;

    /* The last cluster is compressed whole: zero its tail past the disk's end. */
    memset(k->buf + n, 0, c->chunk - n);
    for (uint64_t i = 0; i * cs < n; i++) {
        uint64_t p = i * cs;
        if (c->target_zero && unit_is_zero(r, k, p, MIN(cs, n - p))) {
            clens[i] = -1;
            continue;
        }
        if (k->known_zero[i]) {
            memset(k->buf + p, 0, MIN(cs, n - p));
        }
        clens[i] = qcow2_compress_cluster(c->dst, off + p, k->buf + p, k->cbuf + p);
    }
}

/*
 * -r limits what is written, as qemu-img's throttle on the target: each write request
 * (zeroes and compressed clusters included, skipped zero runs not) waits until the
 * requests before it have taken as long as the rate allows, whichever worker sends it.
 */
static void copy_throttle(CopyRun *r, uint64_t len)
{
    if (r->c->rate) {
        uint64_t before = __atomic_fetch_add(&r->throttled, len, __ATOMIC_RELAXED);
        img_throttle(r->c->rate, r->start_ns, before);
    }
}

/* Writes the chunk: compressed clusters, or one request per run of data or of zeroes
 * (zero runs are left out when the target already reads as zeroes). */
static int copy_write(CopyRun *r, CopyChunk *k, int64_t *err_off)
{
    const ConvertCopy *c = r->c;
    uint64_t gran = r->gran, n = k->n;
    const ssize_t *clens = k->clens;
    int64_t off = k->off;

    if (c->compress) {
        for (uint64_t i = 0; i * c->cluster_size < n; i++) {
            uint64_t p = i * c->cluster_size;
            if (clens[i] == -1) {
                continue;
            }
            copy_throttle(r, MIN(c->cluster_size, n - p));
            int ret = qcow2_write_compressed_prepared(c->dst, off + p, k->buf + p,
                                                      k->cbuf + p, clens[i]);
            if (ret < 0) {
                *err_off = off + p;
                return ret;
            }
        }
        return 0;
    }
    n = MIN(n, (uint64_t)MAX(c->dst_len - off, 0));
    for (uint64_t p = 0; p < n;) {
        uint64_t len = MIN(gran, n - p);
        bool zero = unit_is_zero(r, k, p, len);
        while (p + len < n && unit_is_zero(r, k, p + len, MIN(gran, n - p - len)) == zero) {
            len += MIN(gran, n - p - len);
        }
        int ret = 0;
        if (!zero || !c->target_zero) {
            copy_throttle(r, len);
        }
        if (zero && !c->target_zero) {
            ret = bdrv_pwrite_zeroes(c->dst, off + p, len, 0);
        } else if (!zero && k->offload_src) {
            /* -C: the kernel copies (or shares) the run from the source's host file. */
            if (file_posix_copy_range(k->offload_src, off + (int64_t)p + k->offload_delta,
                                      r->offload_dst, off + (int64_t)p, (int64_t)len) < 0) {
                /* Refused (another filesystem, no support): this chunk's data is read
                 * after all, and no later chunk asks again.  Runs before p are done. */
                __atomic_store_n(&r->offload_failed, true, __ATOMIC_RELAXED);
                ret = copy_read(r, k, err_off);
                if (ret < 0) {
                    return ret;
                }
                continue;
            }
        } else if (!zero) {
            ret = bdrv_pwrite(c->dst, off + p, len, k->data + p);
        }
        if (ret < 0) {
            *err_off = off + p;
            return ret;
        }
        p += len;
    }
    return 0;
}

/*
 * Takes a free buffer for the next chunk (waiting for one while all are in use); NULL
 * when no chunk is left or a worker failed.
 */
static CopyChunk *copy_next_chunk(CopyRun *r)
{
    CopyChunk *k = NULL;

    g_mutex_lock(&r->lock);
    while (r->ret == 0 && r->next_read < r->c->size && !r->free) {
        g_cond_wait(&r->free_cond, &r->lock);
    }
    if (r->ret == 0 && r->next_read < r->c->size) {
        k = r->free;
        r->free = k->next;
        k->off = r->next_read;
        k->n = MIN(r->c->chunk, (uint64_t)(r->c->size - k->off));
        r->next_read += r->c->chunk;
    }
    g_mutex_unlock(&r->lock);
    return k;
}

/* Lock held: k was written; its buffer is free again. */
static void copy_written_locked(CopyRun *r, CopyChunk *k)
{
    r->done += k->n;
    if (r->c->progress) {
        printf("    (%.2f/100%%)\r", r->done * 100.0 / r->c->size);
        fflush(stdout);
    }
    k->next = r->free;
    r->free = k;
    g_cond_signal(&r->free_cond);
}

/* Lock held: parks k in offset order. */
static void copy_park_locked(CopyRun *r, CopyChunk *k)
{
    CopyChunk **p = &r->parked;

    while (*p && (*p)->off < k->off) {
        p = &(*p)->next;
    }
    k->next = *p;
    *p = k;
}

/*
 * Hands a finished chunk to the writes.  Out of order it is written at once.  In order
 * it is parked; unless another worker is already writing, this one writes the parked
 * chunks as long as the first is next in line (the writer looks again after each write,
 * so a chunk parked meanwhile is not left behind).
 */
static void copy_submit(CopyRun *r, CopyChunk *k)
{
    int64_t err_off = k->off;
    int ret;

    if (!r->c->in_order) {
        ret = copy_write(r, k, &err_off);
        file_posix_unmap(&k->map);
        if (ret < 0) {
            copy_fail(r, ret, err_off, k->status_failed ? "reading block status" : "writing");
        }
        g_mutex_lock(&r->lock);
        copy_written_locked(r, k);
        g_mutex_unlock(&r->lock);
        return;
    }
    g_mutex_lock(&r->lock);
    copy_park_locked(r, k);
    while (!r->writing && r->ret == 0 && r->parked && r->parked->off == r->next_write) {
        k = r->parked;
        r->parked = k->next;
        r->writing = true;
        g_mutex_unlock(&r->lock);
        ret = copy_write(r, k, &err_off);
        file_posix_unmap(&k->map);
        if (ret < 0) {
            copy_fail(r, ret, err_off, k->status_failed ? "reading block status" : "writing");
        }
        g_mutex_lock(&r->lock);
        r->writing = false;
        r->next_write = k->off + r->c->chunk;
        copy_written_locked(r, k);
    }
    g_mutex_unlock(&r->lock);
}

static gpointer copy_worker(gpointer opaque)
{
    CopyRun *r = opaque;
    CopyChunk *k;

    while ((k = copy_next_chunk(r))) {
        int64_t err_off = k->off;
        int ret = copy_read(r, k, &err_off);
        if (ret < 0) {
            copy_fail(r, ret, err_off, k->status_failed ? "reading block status" : "reading");
            break;
        }
        if (r->c->compress) {
            copy_compress(r, k);
        }
        copy_submit(r, k);
    }
    return NULL;
}

bool convert_copy(const ConvertCopy *c, Error **errp)
{
    CopyRun r = {
        .c = c,
        .gran = c->sparse && !c->compress ? MIN(c->sparse, c->chunk) : c->cluster_size,
        .start_ns = g_get_monotonic_time() * 1000,
        .offload_dst = c->copy_range ? raw_plain_file(c->dst) : NULL,
    };
    int64_t nchunks = (c->size + c->chunk - 1) / c->chunk;
    int nworkers = (int)MAX(1, MIN((int64_t)c->workers, nchunks));
    /* Spare chunk buffers let a worker go on while its finished chunk waits for its
     * write turn: worth it for -c's one-cluster chunks, whose compression times vary a
     * lot.  A 2 MiB buffer costs 512 first-touch page faults, so plain copies get one
     * spare only (four per worker tripled convert's CPU time in page faults). */
    int64_t want = c->compress ? (int64_t)nworkers * CHUNKS_PER_WORKER : nworkers + 1;
    int nbufs = (int)MIN(want, MAX(nchunks, 1));
    CopyChunk *chunks = g_new0(CopyChunk, nbufs);
    GThread **threads = g_new0(GThread *, nworkers);
    bool ok = false;

    g_mutex_init(&r.lock);
    g_cond_init(&r.free_cond);
    for (int i = 0; i < nbufs; i++) {
        CopyChunk *k = &chunks[i];
        if (posix_memalign((void **)&k->buf, 4096, c->chunk)) {
            error_setg(errp, "Could not allocate %" G_GUINT64_FORMAT " bytes", c->chunk);
            goto out;
        }
        k->known_zero = g_new(bool, (c->chunk + r.gran - 1) / r.gran);
        if (c->compress) {
            k->cbuf = g_malloc(c->chunk);
            k->clens = g_new(ssize_t, c->chunk / c->cluster_size);
        }
        k->next = r.free;
        r.free = k;
    }
    /* The calling thread is a worker too; one that cannot start leaves its chunks to the
     * others. */
    for (int i = 1; i < nworkers; i++) {
        threads[i] = g_thread_try_new("convert", copy_worker, &r, NULL);
    }
    copy_worker(&r);
    for (int i = 1; i < nworkers; i++) {
        if (threads[i]) {
            g_thread_join(threads[i]);
        }
    }
    if (r.ret < 0) {
        /* qemu-img's words: "... at byte N" for data, "... at offset N" for status. */
        error_setg(errp, "error while %s at %s %" G_GINT64_FORMAT ": %s", r.err_what,
                   strcmp(r.err_what, "reading block status") ? "byte" : "offset", r.err_off,
                   g_strerror(-r.ret));
        goto out;
    }
    ok = true;
out:
    for (int i = 0; i < nbufs; i++) {
        file_posix_unmap(&chunks[i].map); /* a chunk parked when a worker failed */
        free(chunks[i].buf);
        g_free(chunks[i].cbuf);
        g_free(chunks[i].clens);
        g_free(chunks[i].known_zero);
    }
    g_free(chunks);
    g_free(threads);
    g_mutex_clear(&r.lock);
    g_cond_clear(&r.free_cond);
    return ok;
}
