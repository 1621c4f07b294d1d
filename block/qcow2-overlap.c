/*
 * QCOW2 metadata-overlap protection (QEMU's `overlap-check`): before any write to the
 * image file, the host range is checked against the image's metadata (header, L1/L2
 * tables, refcount table and blocks, snapshot table and snapshot L1/L2 tables, bitmap
 * directory).  A hit means a corrupted mapping or allocation is about to destroy
 * metadata: the write fails with EIO and the image is marked corrupt, as in QEMU.
 *
 * Why an index: QEMU scans the in-memory L1 and refcount tables on every write.  Here the
 * metadata clusters live in sorted arrays (one cluster index per element, with a bit mask
 * of what it holds), so a query is a binary search.  There are two parts:
 *   - the active part (header, active L1/L2, refcount table/blocks), built from memory;
 *     a new L2 table or refcount block is inserted when its L1/refcount table entry is
 *     written, and anything else that may move it (a changed header field, a freed
 *     metadata cluster, a replaced table) marks the part stale: rebuilt on the next query;
 *   - the snapshot part (snapshot table, snapshot L1 tables and, in mode `all`, their L2
 *     tables, the bitmap directory), built from disk, stale only when the snapshot table
 *     moves, a header is rewritten or one of its clusters is freed.
 * A freed metadata cluster is what could be handed out again as data, so every refcount
 * decrement asks the index (qcow2_overlap_note_free) and stales the part it hits; a stale
 * entry can therefore never refuse a legitimate write.  Everything runs under s->lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"
#include "sen/keyval.h"

/* Names as QEMU prints them in the corruption message (bit order of QCOW2_OL_*). */
static const char *const ol_names[QCOW2_OL_NB] = {
    "qcow2_header",    "active L1 table",   "active L2 table",
    "refcount table",  "refcount block",    "snapshot table",
    "inactive L1 table", "inactive L2 table", "bitmap directory",
};

/* Option suffixes of overlap-check.<name> (QEMU's spelling), same order. */
static const char *const ol_opt_names[QCOW2_OL_NB] = {
    "main-header",    "active-l1",    "active-l2",    "refcount-table", "refcount-block",
    "snapshot-table", "inactive-l1",  "inactive-l2",  "bitmap-directory",
};

#define OL_ACTIVE_PART                                                                   \
    (QCOW2_OL_MAIN_HEADER | QCOW2_OL_ACTIVE_L1 | QCOW2_OL_ACTIVE_L2 |                   \
     QCOW2_OL_REFCOUNT_TABLE | QCOW2_OL_REFCOUNT_BLOCK)
#define OL_SNAPSHOT_PART                                                                 \
    (QCOW2_OL_SNAPSHOT_TABLE | QCOW2_OL_INACTIVE_L1 | QCOW2_OL_INACTIVE_L2 |            \
     QCOW2_OL_BITMAP_DIRECTORY)

/* ---- the index: sorted, disjoint cluster ranges ---- */

/*
 * Clusters [start, end), all holding the same set of types.  Ranges are disjoint and
 * sorted, so a table of thousands of clusters is one element and a query is a binary
 * search; where metadata of several types overlaps (a corrupt image) the overlap is a
 * range of its own with both types.
 */
typedef struct Qcow2OlEntry {
    uint64_t start, end;
    unsigned types;
} Qcow2OlEntry;

void qcow2_ol_index_clear(Qcow2OlIndex *idx)
{
    g_free(idx->e);
    idx->e = NULL;
    idx->n = idx->cap = 0;
}

static void index_reserve(Qcow2OlIndex *idx, size_t more)
{
    if (idx->n + more > idx->cap) {
        idx->cap = MAX(idx->n + more, idx->cap * 2);
        idx->cap = MAX(idx->cap, 64);
        idx->e = g_renew(Qcow2OlEntry, idx->e, idx->cap);
    }
}

/* First range ending after cluster c. */
static size_t lower_bound(const Qcow2OlIndex *idx, uint64_t c)
{
    size_t lo = 0, hi = idx->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx->e[mid].end <= c) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

unsigned qcow2_ol_index_query(const Qcow2OlIndex *idx, uint64_t first, uint64_t n,
                              unsigned mask)
{
    for (size_t i = lower_bound(idx, first); i < idx->n && idx->e[i].start < first + n;
         i++) {
        if (idx->e[i].types & mask) {
            return idx->e[i].types & mask;
        }
    }
    return 0;
}

/* A boundary of an input range for the sweep: type bit `bit` starts (+1) or ends (-1). */
typedef struct SweepEvent {
    uint64_t pos;
    int bit;
    int delta;
} SweepEvent;

static int event_cmp(const void *a, const void *b)
{
    uint64_t x = ((const SweepEvent *)a)->pos, y = ((const SweepEvent *)b)->pos;
    return x < y ? -1 : x > y;
}

/* Type bits the index keeps: any of an unsigned (qcow2-check.c records bitmap tables
 * under the bit past the QCOW2_OL_* ones). */
#define OL_INDEX_BITS 32

/*
 * Turns n ranges that may overlap (in any order) into sorted disjoint ranges with the
 * union of types, written to out (room for 2n - 1).  Returns how many.
 */
static size_t sweep(const Qcow2OlEntry *in, size_t n, Qcow2OlEntry *out)
{
    size_t ne = 0, nout = 0;
    for (size_t i = 0; i < n; i++) {
        ne += in[i].start < in[i].end ? 2 * __builtin_popcount(in[i].types) : 0;
    }
    SweepEvent *ev = g_new(SweepEvent, MAX(ne, 1));
    ne = 0;
    for (size_t i = 0; i < n; i++) {
        for (unsigned t = in[i].types; t && in[i].start < in[i].end; t &= t - 1) {
            int bit = __builtin_ctz(t);
            ev[ne++] = (SweepEvent){ in[i].start, bit, 1 };
            ev[ne++] = (SweepEvent){ in[i].end, bit, -1 };
        }
    }
    qsort(ev, ne, sizeof(ev[0]), event_cmp);
    unsigned count[OL_INDEX_BITS] = { 0 };
    for (size_t i = 0; i < ne;) {
        uint64_t pos = ev[i].pos;
        for (; i < ne && ev[i].pos == pos; i++) {
            count[ev[i].bit] += ev[i].delta;
        }
        unsigned types = 0;
        for (int bit = 0; bit < OL_INDEX_BITS; bit++) {
            types |= count[bit] ? 1u << bit : 0;
        }
        if (!types || i == ne) {
            continue;
        }
        uint64_t end = ev[i].pos;
        if (nout && out[nout - 1].end == pos && out[nout - 1].types == types) {
            out[nout - 1].end = end;
        } else {
            out[nout++] = (Qcow2OlEntry){ pos, end, types };
        }
    }
    g_free(ev);
    return nout;
}

/* Replaces ranges [i, j) of idx with the m ranges of repl. */
static void splice(Qcow2OlIndex *idx, size_t i, size_t j, const Qcow2OlEntry *repl, size_t m)
{
    if (m > j - i) {
        index_reserve(idx, m - (j - i));
    }
    if (idx->n > j) {
        memmove(&idx->e[i + m], &idx->e[j], (idx->n - j) * sizeof(idx->e[0]));
    }
    if (m) {
        memcpy(&idx->e[i], repl, m * sizeof(repl[0]));
    }
    idx->n = idx->n - (j - i) + m;
}

void qcow2_ol_index_add(Qcow2OlIndex *idx, uint64_t first, uint64_t n, unsigned type)
{
    if (!n || !type) {
        return;
    }
    /* The ranges the new one touches are swept again together with it. */
    size_t i = lower_bound(idx, first), j = i;
    while (j < idx->n && idx->e[j].start < first + n) {
        j++;
    }
    Qcow2OlEntry *in = g_new(Qcow2OlEntry, j - i + 1);
    Qcow2OlEntry *out = g_new(Qcow2OlEntry, 2 * (j - i + 1) * QCOW2_OL_NB);
    if (j > i) {
        memcpy(in, &idx->e[i], (j - i) * sizeof(in[0]));
    }
    in[j - i] = (Qcow2OlEntry){ first, first + n, type };
    size_t m = sweep(in, j - i + 1, out);
    splice(idx, i, j, out, m);
    g_free(in);
    g_free(out);
}

void qcow2_ol_index_remove(Qcow2OlIndex *idx, uint64_t first, uint64_t n, unsigned type)
{
    size_t i = lower_bound(idx, first), j = i;
    while (j < idx->n && idx->e[j].start < first + n) {
        j++;
    }
    if (i == j) {
        return;
    }
    /* Each touched range splits into the part before, inside and after [first, +n). */
    Qcow2OlEntry *out = g_new(Qcow2OlEntry, 3 * (j - i));
    size_t m = 0;
    for (size_t k = i; k < j; k++) {
        Qcow2OlEntry e = idx->e[k];
        uint64_t lo = MAX(e.start, first), hi = MIN(e.end, first + n);
        Qcow2OlEntry parts[3] = {
            { e.start, lo, e.types }, { lo, hi, e.types & ~type }, { hi, e.end, e.types },
        };
        for (int p = 0; p < 3; p++) {
            if (parts[p].start < parts[p].end && parts[p].types) {
                out[m++] = parts[p];
            }
        }
    }
    splice(idx, i, j, out, m);
    g_free(out);
}

/* Bulk building: append ranges in any order, then sweep once (O(n log n)). */
static void index_append(Qcow2OlIndex *idx, uint64_t first, uint64_t n, unsigned type)
{
    index_reserve(idx, 1);
    idx->e[idx->n++] = (Qcow2OlEntry){ first, first + n, type };
}

static void index_finish(Qcow2OlIndex *idx)
{
    if (!idx->n) {
        return;
    }
    Qcow2OlEntry *out = g_new(Qcow2OlEntry, 2 * idx->n * QCOW2_OL_NB);
    size_t m = sweep(idx->e, idx->n, out);
    g_free(idx->e);
    idx->n = m;
    idx->cap = MAX(m, 1);
    idx->e = g_renew(Qcow2OlEntry, out, idx->cap);
}

/* ---- building the two parts from the image ---- */

/* The clusters touched by [off, off+len), as one range; tables are at most
 * QCOW2_MAX_L1_BYTES long, so a hostile size is cut there. */
static void append_range(BDRVQcow2State *s, Qcow2OlIndex *idx, uint64_t off, uint64_t len,
                         unsigned type)
{
    if (!len || !(s->overlap_mask & type)) {
        return;
    }
    len = MIN(len, (uint64_t)QCOW2_MAX_L1_BYTES);
    if (off >= 1ull << 62) {
        return; /* a hostile offset past any file: nothing there to protect, and
                 * off + len must not wrap */
    }
    uint64_t first = off >> s->cluster_bits;
    uint64_t last = (off + len - 1) >> s->cluster_bits;
    index_append(idx, first, last - first + 1, type);
}

static void build_active(BDRVQcow2State *s, Qcow2Overlap *ov)
{
    Qcow2OlIndex *idx = &ov->active;
    idx->n = 0;
    append_range(s, idx, 0, s->cluster_size, QCOW2_OL_MAIN_HEADER);
    append_range(s, idx, s->h.l1_table_offset, s->l1_size * 8ull, QCOW2_OL_ACTIVE_L1);
    append_range(s, idx, s->h.refcount_table_offset, s->reftable_size * 8,
                 QCOW2_OL_REFCOUNT_TABLE);
    for (uint32_t i = 0; (s->overlap_mask & QCOW2_OL_ACTIVE_L2) && i < s->l1_size; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (l2) {
            append_range(s, idx, l2, s->cluster_size, QCOW2_OL_ACTIVE_L2);
        }
    }
    for (uint64_t i = 0; (s->overlap_mask & QCOW2_OL_REFCOUNT_BLOCK) && i < s->reftable_used;
         i++) {
        uint64_t rb = s->reftable[i] & QCOW2_REFT_OFFSET_MASK;
        if (rb) {
            append_range(s, idx, rb, s->cluster_size, QCOW2_OL_REFCOUNT_BLOCK);
        }
    }
    index_finish(idx);
    ov->active_key[0] = s->h.l1_table_offset;
    ov->active_key[1] = s->l1_size;
    ov->active_key[2] = s->h.refcount_table_offset;
    ov->active_key[3] = s->reftable_size;
    ov->active_stale = false;
}

/* The bitmaps extension names the bitmap directory: (nb, reserved, size, offset). */
static void append_bitmap_directory(BDRVQcow2State *s, Qcow2OlIndex *idx)
{
    for (guint i = 0; s->ext.unknown && i < s->ext.unknown->len; i++) {
        const Qcow2RawExt *e = &g_array_index(s->ext.unknown, Qcow2RawExt, i);
        if (e->type == QCOW2_EXT_BITMAPS && e->len >= 24) {
            append_range(s, idx, qcow2_ld64(e->data + 16), qcow2_ld64(e->data + 8),
                         QCOW2_OL_BITMAP_DIRECTORY);
        }
    }
}

static void build_snapshots(BDRVQcow2State *s, Qcow2Overlap *ov)
{
    Qcow2OlIndex *idx = &ov->snap;
    idx->n = 0;
    ov->snap_key[0] = s->h.snapshots_offset;
    ov->snap_key[1] = s->h.nb_snapshots;
    ov->snap_stale = false;
    append_bitmap_directory(s, idx);
    if (!s->h.nb_snapshots || !(s->overlap_mask & OL_SNAPSHOT_PART)) {
        index_finish(idx);
        return;
    }
    GArray *sns;
    bool unreadable = qcow2_read_snapshots(s, &sns) < 0;
    /* An unreadable table still protects its first cluster; a corrupt one fails the
     * snapshot operations themselves. */
    uint64_t table_len = qcow2_snapshot_table_len(sns) + unreadable;
    for (guint i = 0; i < sns->len; i++) {
        const Qcow2Snapshot *sn = &g_array_index(sns, Qcow2Snapshot, i);
        append_range(s, idx, sn->l1_table_offset, sn->l1_size * 8ull, QCOW2_OL_INACTIVE_L1);
        if (!(s->overlap_mask & QCOW2_OL_INACTIVE_L2) || !sn->l1_size ||
            sn->l1_size * 8ull > QCOW2_MAX_L1_BYTES) {
            continue;
        }
        uint64_t *l1 = NULL;
        if (qcow2_read_l1(s, sn->l1_table_offset, sn->l1_size, &l1) == 0) {
            for (uint32_t j = 0; j < sn->l1_size; j++) {
                uint64_t l2 = l1[j] & QCOW2_L1E_OFFSET_MASK;
                if (l2) {
                    append_range(s, idx, l2, s->cluster_size, QCOW2_OL_INACTIVE_L2);
                }
            }
        }
        g_free(l1);
    }
    qcow2_snapshots_free(sns);
    append_range(s, idx, s->h.snapshots_offset, table_len, QCOW2_OL_SNAPSHOT_TABLE);
    index_finish(idx);
}

/* Brings both parts up to date with the image (lock held). */
static void refresh(BDRVQcow2State *s, Qcow2Overlap *ov)
{
    if (ov->active_stale || ov->active_key[0] != s->h.l1_table_offset ||
        ov->active_key[1] != s->l1_size || ov->active_key[2] != s->h.refcount_table_offset ||
        ov->active_key[3] != s->reftable_size) {
        build_active(s, ov);
    }
    if ((s->overlap_mask & OL_SNAPSHOT_PART) &&
        (ov->snap_stale || ov->snap_key[0] != s->h.snapshots_offset ||
         ov->snap_key[1] != s->h.nb_snapshots)) {
        build_snapshots(s, ov);
    }
}

/* ---- options ---- */

static bool mode_mask(const char *mode, unsigned *mask)
{
    if (!strcmp(mode, "none")) {
        *mask = 0;
    } else if (!strcmp(mode, "constant")) {
        *mask = QCOW2_OL_CONSTANT;
    } else if (!strcmp(mode, "cached")) {
        *mask = QCOW2_OL_CACHED;
    } else if (!strcmp(mode, "all")) {
        *mask = QCOW2_OL_ALL;
    } else {
        return false;
    }
    return true;
}

bool qcow2_overlap_parse_opts(Keyval *opts, const char *what, unsigned *mask, Error **errp)
{
    const char *mode = opts ? keyval_get(opts, "overlap-check") : NULL;
    const char *tmpl = opts ? keyval_get(opts, "overlap-check.template") : NULL;
    /* QEMU's words, which name neither the image (the caller's context does: "-drive
     * ...:", "Could not open '...':") nor the .template spelling. */
    if (mode && tmpl && strcmp(mode, tmpl)) {
        error_setg(errp, "Conflicting values for qcow2 options 'overlap-check' ('%s') and "
                   "'overlap-check.template' ('%s')", mode, tmpl);
        return false;
    }
    const char *use = mode ? mode : tmpl ? tmpl : "cached";
    if (!mode_mask(use, mask)) {
        error_setg(errp, "Unsupported value '%s' for qcow2 option 'overlap-check'. Allowed "
                   "are any of the following: none, constant, cached, all", use);
        return false;
    }
    for (unsigned i = 0; opts && i < QCOW2_OL_NB; i++) {
        g_autofree char *key = g_strdup_printf("overlap-check.%s", ol_opt_names[i]);
        bool on;
        if (!keyval_get_bool(opts, what, key, *mask & (1u << i), &on, errp)) {
            return false;
        }
        *mask = on ? *mask | (1u << i) : *mask & ~(1u << i);
    }
    return true;
}

/* ---- state and hooks ---- */

void qcow2_overlap_init(BDRVQcow2State *s, unsigned mask)
{
    s->overlap_mask = mask;
    s->overlap = g_new0(Qcow2Overlap, 1);
    s->overlap->active_stale = s->overlap->snap_stale = true;
}

void qcow2_overlap_free(BDRVQcow2State *s)
{
    if (s->overlap) {
        qcow2_ol_index_clear(&s->overlap->active);
        qcow2_ol_index_clear(&s->overlap->snap);
        g_free(g_steal_pointer(&s->overlap));
    }
}

void qcow2_overlap_invalidate(BDRVQcow2State *s)
{
    if (s->overlap) {
        s->overlap->active_stale = s->overlap->snap_stale = true;
    }
}

void qcow2_overlap_note_new(BDRVQcow2State *s, unsigned type, uint64_t off, uint64_t len)
{
    Qcow2Overlap *ov = s->overlap;
    if (!ov || ov->active_stale || !(s->overlap_mask & type) || !len) {
        return; /* a stale part is rebuilt from the tables, which include it */
    }
    uint64_t first = off >> s->cluster_bits;
    qcow2_ol_index_add(&ov->active, first, ((off + len - 1) >> s->cluster_bits) - first + 1,
                       type);
}

void qcow2_overlap_note_free(BDRVQcow2State *s, uint64_t first, uint64_t n)
{
    Qcow2Overlap *ov = s->overlap;
    if (!ov) {
        return;
    }
    if (!ov->active_stale && qcow2_ol_index_query(&ov->active, first, n, ~0u)) {
        ov->active_stale = true;
    }
    if (!ov->snap_stale && qcow2_ol_index_query(&ov->snap, first, n, ~0u)) {
        ov->snap_stale = true;
    }
}

int qcow2_overlap_check(BDRVQcow2State *s, unsigned ignore, uint64_t off, uint64_t len)
{
    Qcow2Overlap *ov = s->overlap;
    unsigned mask = s->overlap_mask & ~ignore;
    if (!ov || !mask || !len) {
        return 0;
    }
    refresh(s, ov);
    uint64_t first = off >> s->cluster_bits;
    uint64_t n = ((off + len - 1) >> s->cluster_bits) - first + 1;
    unsigned hit = qcow2_ol_index_query(&ov->active, first, n, mask);
    if (!hit) {
        hit = qcow2_ol_index_query(&ov->snap, first, n, mask);
    }
    if (!hit) {
        return 0;
    }
    /* Marks the image corrupt (read-only from now on), as QEMU does. */
    qcow2_signal_corruption(s, true, (int64_t)off, (int64_t)len,
                            "Preventing invalid write on metadata (overlaps with %s)",
                            ol_names[__builtin_ctz(hit)]);
    return -EIO;
}

int qcow2_overlap_check_data(BDRVQcow2State *s, uint64_t off, uint64_t len)
{
    /* Data in an external data file cannot reach the image's metadata. */
    return qcow2_has_data_file(s) ? 0 : qcow2_overlap_check(s, 0, off, len);
}

int qcow2_meta_pwrite(BDRVQcow2State *s, unsigned type, uint64_t off, uint64_t len,
                      const void *buf, bool sync)
{
    int ret = qcow2_overlap_check(s, type, off, len);
    if (ret < 0) {
        return ret;
    }
    ret = sync ? bdrv_pwrite_sync(s->bs->file, off, len, buf)
               : bdrv_pwrite(s->bs->file, off, len, buf);
    /* A table written (L1, refcount table, snapshot table or L1): the tables it points
     * to may have changed, the index is rebuilt lazily.  Single entries bypass this
     * (qcow2_meta_write_entry). */
    if (type & (QCOW2_OL_ACTIVE_L1 | QCOW2_OL_REFCOUNT_TABLE | QCOW2_OL_SNAPSHOT_TABLE |
                QCOW2_OL_INACTIVE_L1)) {
        qcow2_overlap_invalidate(s);
    }
    return ret;
}

int qcow2_meta_write_entry(BDRVQcow2State *s, unsigned type, uint64_t off, uint64_t entry,
                           unsigned target_type, uint64_t target)
{
    uint8_t be[8];
    qcow2_st64(be, entry);
    int ret = qcow2_overlap_check(s, type, off, 8);
    if (ret == 0) {
        ret = bdrv_pwrite_sync(s->bs->file, off, 8, be);
    }
    if (ret == 0 && target) {
        qcow2_overlap_note_new(s, target_type, target, s->cluster_size);
    }
    return ret;
}
