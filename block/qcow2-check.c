/*
 * QCOW2 consistency check and repair, as qemu-img check does it: rebuild every cluster's
 * reference count from the metadata (header, L1/L2 tables of the image and of every
 * snapshot, refcount table and blocks, snapshot table), compare with the stored refcounts,
 * and verify OFLAG_COPIED.  A stored count above the computed one is a leak; below it is a
 * corruption (the cluster could be handed out twice).  Messages match qemu-img's wording.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"

typedef struct CheckState {
    BDRVQcow2State *s;
    BlockCheckResult *res;
    uint64_t nb;   /* clusters the refs array covers */
    uint64_t file_clusters;  /* clusters of the file (refcounts past it are ignored) */
    uint64_t file_len;       /* its length in bytes, when the tables were counted */
    uint64_t *refs;
    int fix;       /* BDRV_FIX_ERRORS: entries pointing past the end are repaired */
    GArray *past_end_entries; /* of PastEndEntry: repaired once every reference is counted */
    /* -r all: how many L1 entries (active and snapshots') name each L2 table, by offset,
     * so that a repair can tell a table shared by snapshots from one that is also
     * something else (zero_l2e_unaligned). */
    GHashTable *l2_refs;
    /* -r all: the file offsets of the unaligned entries noted for repair (a set). */
    GHashTable *unaligned_noted;
    /* Of Qcow2BeyondRef: references to clusters past the refs array, which the
     * comparison ignores (as qemu-img) but the rebuild keeps its new clusters off
     * (qcow2_rebuild_refcounts).  Up to the bound set with the refs array, so that a
     * removal finds the range its addition made: */
    GArray *beyond;
    uint64_t beyond_bound;
    /* -r all: the clusters of the file holding metadata other than L2 tables, with
     * their QCOW2_OL_* types (the overlap protection's index), recorded while counting,
     * so that a repair never writes into one (on_other_metadata). */
    Qcow2OlIndex meta;
} CheckState;

/* The bitmap tables, which have no overlap type of their own in QEMU. */
#define CHECK_OL_BITMAP_TABLE (1u << QCOW2_OL_NB)

/* How far past the refs array references are kept in CheckState.beyond: a rebuild then
 * grows the file by up to this much to put its blocks after them.  A reference further
 * away (a corrupt entry, or a table claiming gigabytes) is left out: the rebuild cannot
 * go around it, and its check afterwards reports the structure as still broken. */
#define QCOW2_CHECK_BEYOND_BYTES (1ull << 30)

/* A table entry pointing past the end of the file, or an L2 entry of a preallocated zero
 * cluster at an unaligned offset (unaligned), to repair when that is safe. */
typedef struct PastEndEntry {
    uint64_t table;   /* the L1 or L2 table holding the entry */
    uint32_t index;
    bool l1;
    bool unaligned;
    uint64_t entry;   /* its value when counted: repaired only if still the same */
    uint64_t off, len; /* the region it references (counted as far as it lies inside) */
} PastEndEntry;

/* Whether [off, off+len) reaches a cluster past the refs array: then it is reported in
 * qemu-img's words, as a corruption. */
static void report_past_end(CheckState *c, uint64_t off, uint64_t len)
{
    fprintf(stderr, "ERROR: counting reference for region exceeding the end of the file "
            "by one cluster or more: offset 0x%" G_GINT64_MODIFIER "x size 0x%"
            G_GINT64_MODIFIER "x\n", off, len);
    c->res->corruptions++;
}

static bool past_end(CheckState *c, uint64_t off, uint64_t len)
{
    uint64_t first = off >> c->s->cluster_bits;
    uint64_t last = (off + len - 1) >> c->s->cluster_bits;
    if (!len || (last < c->nb && last >= first)) {
        return false;
    }
    report_past_end(c, off, len);
    return true;
}

/* Adds (delta 1) or removes (-1) a reference to clusters [first, end) past the refs
 * array. */
static void count_beyond(CheckState *c, uint64_t first, uint64_t end, int delta)
{
    Qcow2BeyondRef b = { first, end };
    if (!c->beyond) {
        c->beyond = g_array_new(false, false, sizeof(Qcow2BeyondRef));
    }
    if (delta > 0) {
        g_array_append_val(c->beyond, b);
        return;
    }
    for (guint k = 0; k < c->beyond->len; k++) {
        const Qcow2BeyondRef *o = &g_array_index(c->beyond, Qcow2BeyondRef, k);
        if (o->first == first && o->end == end) {
            g_array_remove_index_fast(c->beyond, k);
            return;
        }
    }
}

/*
 * Adds delta to the count of every cluster of [off, off+len): in the refs array, and
 * for the clusters past it (up to a bound) in c->beyond.
 */
static void count_inside(CheckState *c, uint64_t off, uint64_t len, int delta)
{
    if (!len) {
        return;
    }
    uint64_t first = off >> c->s->cluster_bits;
    uint64_t last = (off + len - 1) >> c->s->cluster_bits;
    uint64_t bound = c->beyond_bound;
    if (last < first) { /* wraps around: a corrupt entry */
        return;
    }
    for (uint64_t i = first; i <= last && i < c->nb; i++) {
        c->refs[i] += delta;
    }
    if (last >= c->nb && first < bound) {
        count_beyond(c, MAX(first, c->nb), MIN(last + 1, bound), delta);
    }
}

/*
 * Moves the references past the refs array that it now covers (it grew) into it: the
 * file grew over their clusters, which are in use like any other.  (qemu-img 7.2 counts
 * them nowhere, so its rebuild can put a refcount block there.)
 */
static void count_covered_beyond(CheckState *c)
{
    for (guint k = 0; c->beyond && k < c->beyond->len;) {
        Qcow2BeyondRef *b = &g_array_index(c->beyond, Qcow2BeyondRef, k);
        for (; b->first < MIN(b->end, c->nb); b->first++) {
            c->refs[b->first]++;
        }
        if (b->first == b->end) {
            g_array_remove_index_fast(c->beyond, k);
        } else {
            k++;
        }
    }
}

/* Makes the refs array cover clusters [0, need), the new ones counted from c->beyond. */
static void grow_refs(CheckState *c, uint64_t need)
{
    if (need > c->nb) {
        c->refs = g_renew(uint64_t, c->refs, need);
        memset(c->refs + c->nb, 0, (need - c->nb) * sizeof(*c->refs));
        c->nb = need;
        count_covered_beyond(c);
    }
}

/*
 * Counts a reference to every cluster of [off, off+len).  Of a region reaching past the
 * end (reported, past_end) the clusters inside are still counted, unlike qemu-img: they
 * are in use (say, a snapshot's L1 table whose tail lies past the end), and counted as
 * free a rebuild would put its refcount blocks there and overwrite them.  Returns
 * whether the whole region was counted.
 */
static bool ref_range(CheckState *c, uint64_t off, uint64_t len)
{
    bool whole = !past_end(c, off, len);
    count_inside(c, off, len, 1);
    return whole;
}

/*
 * Counts the references of an L2 entry whose host offset off is not cluster aligned, as
 * qemu-img does: a cluster's worth from off, so the two clusters it straddles.  It is
 * past the end only when it reaches a whole cluster beyond the file; short of that, the
 * cluster it touches past the end is counted and compared too (a refcount of 0 there
 * asks for a rebuild).
 */
static void ref_unaligned(CheckState *c, uint64_t off)
{
    BDRVQcow2State *s = c->s;
    if (off >= c->file_len) {
        report_past_end(c, off, s->cluster_size);
        return;
    }
    grow_refs(c, ((off + s->cluster_size - 1) >> s->cluster_bits) + 1);
    count_inside(c, off, s->cluster_size, 1);
}

/*
 * A table entry whose cluster lies past the end of the file (a corrupt table) is counted
 * nowhere, so its cluster keeps refcount 0 and, once the file grows that far, would be
 * allocated a second time for other data.  qemu-img 7.2 leaves such entries in place;
 * -r all here rewrites them to what the guest reads through them, zeros past the end:
 * a zero data cluster (unallocated in version 2, which has no zero flag, so not repaired
 * there when a backing file would show through) or an unallocated L2 table (one past the
 * end reads as an empty table, which shows the backing file too).
 */
static bool repairs_past_end(const CheckState *c)
{
    return c->fix & BDRV_FIX_ERRORS;
}

/*
 * Counts a reference to the metadata [off, off+len) of the given QCOW2_OL_* type and,
 * when entries may be repaired, records its clusters inside the file as metadata.
 * Returns whether the whole region was counted (ref_range).
 */
static bool ref_meta(CheckState *c, uint64_t off, uint64_t len, unsigned type)
{
    bool whole = ref_range(c, off, len);
    if (repairs_past_end(c) && len && c->nb) {
        uint64_t first = off >> c->s->cluster_bits;
        uint64_t last = MIN((off + len - 1) >> c->s->cluster_bits, c->nb - 1);
        if (first <= last) {
            qcow2_ol_index_add(&c->meta, first, last - first + 1, type);
        }
    }
    return whole;
}

/*
 * Whether [off, off+len), a table a corrupt image says is an L2 or snapshot L1 table,
 * lies on metadata of a type not in own: the header, an L1 table, the refcount table or
 * blocks, the snapshot table, the bitmap directory or a bitmap table.  Then it is no
 * table to repair, and writing it would destroy that metadata.  (An L2 table or a
 * cluster of the same type is shared when its count is above 1: table_is_its_own.)
 */
static bool on_other_metadata(CheckState *c, uint64_t off, uint64_t len, unsigned own)
{
    uint64_t first = off >> c->s->cluster_bits;
    uint64_t n = ((off + len - 1) >> c->s->cluster_bits) - first + 1;
    return qcow2_ol_index_query(&c->meta, first, n, ~own) != 0;
}

/* Notes an entry pointing past the end for repair_past_end_entries. */
static void note_past_end(CheckState *c, uint64_t table, uint32_t index, bool l1,
                          uint64_t entry, uint64_t off, uint64_t len)
{
    PastEndEntry pe = { table, index, l1, false, entry, off, len };
    if (!c->past_end_entries) {
        c->past_end_entries = g_array_new(false, false, sizeof(PastEndEntry));
    }
    g_array_append_val(c->past_end_entries, pe);
}

/*
 * Whether the table holding an entry to repair is that table alone: every cluster of
 * [off, off+len) referenced exactly once (by the L1 entry or header field naming the
 * table).  A corrupt or stale entry can name guest data or another table as "its" table:
 * that cluster is referenced twice, and writing the repair there would destroy it.
 */
static bool table_is_its_own(CheckState *c, uint64_t off, uint64_t len, unsigned own)
{
    BDRVQcow2State *s = c->s;
    if (on_other_metadata(c, off, len, own)) {
        return false;
    }
    for (uint64_t i = off >> s->cluster_bits; i <= (off + len - 1) >> s->cluster_bits; i++) {
        if (i >= c->nb || c->refs[i] != 1) {
            return false;
        }
    }
    return true;
}

/* Rewrites entry pe of the L2 table t (in the cache) to read as zeros. */
static void zero_l2e_past_end(CheckState *c, uint8_t *t, const PastEndEntry *pe)
{
    BDRVQcow2State *s = c->s;
    uint8_t *e = t + pe->index * s->l2e_size;
    fprintf(stderr, "Repairing L2 entry pointing past the end of the file: l2_entry=%"
            G_GINT64_MODIFIER "x (now reads as zeros)\n", pe->entry);
    if (s->extl2) {
        qcow2_st64(e, 0);
        qcow2_st64(e + 8, 0xffffffff00000000ull); /* every subcluster reads as zeros */
    } else {
        qcow2_st64(e, s->h.version >= 3 ? QCOW2_OFLAG_ZERO : 0);
    }
    qcow2_cache_mark_dirty(s->l2_cache, pe->table);
    count_inside(c, pe->off, pe->len, -1); /* it references nothing any more */
    c->res->corruptions--; /* the one past_end counted: repaired, so not left over */
    c->res->corruptions_fixed++;
}

/*
 * Rewrites entry pe, a preallocated zero cluster at an unaligned offset, to a zero cluster
 * with no host cluster, as qemu-img -r all does (extended L2: the offset cleared, the
 * bitmap kept, which allocates no subcluster), through the L2 cache.  Its "Repairing"
 * line was printed when the entry was found.  Not in a "table" on other metadata (as
 * qemu-img's overlap check), nor, unlike qemu-img, in one referenced other than by L1
 * entries (a table shared by snapshots is repaired): that can be guest data too, which
 * the write would destroy.  Left so, it is counted.
 */
static void zero_l2e_unaligned(CheckState *c, const PastEndEntry *pe)
{
    BDRVQcow2State *s = c->s;
    uint8_t *t;
    gint64 key = pe->table;
    const gint64 *l2 = c->l2_refs ? g_hash_table_lookup(c->l2_refs, &key) : NULL;
    uint64_t i = pe->table >> s->cluster_bits;
    if (on_other_metadata(c, pe->table, s->cluster_size, 0)) {
        fprintf(stderr, "ERROR: Overlap check failed\n");
        c->res->check_errors++;
    } else if (!l2 || i >= c->nb || c->refs[i] != (uint64_t)l2[1]) {
        fprintf(stderr, "ERROR l2_offset=%" G_GINT64_MODIFIER "x: L2 table is referenced "
                "more than once; preallocated cluster entry left unrepaired\n", pe->table);
        c->res->check_errors++;
    } else if (qcow2_cache_get(s->l2_cache, pe->table, false, &t) < 0) {
        c->res->check_errors++;
    } else {
        uint8_t *e = t + pe->index * s->l2e_size;
        if (qcow2_ld64(e) == pe->entry) {
            qcow2_st64(e, s->extl2 ? 0 : QCOW2_OFLAG_ZERO);
            qcow2_cache_mark_dirty(s->l2_cache, pe->table);
            c->res->corruptions--;
            c->res->corruptions_fixed++;
            return;
        }
    }
    /* Not repaired: it references its clusters as before. */
    if (!qcow2_has_data_file(s)) {
        ref_unaligned(c, pe->off);
    }
}

/* Unallocates entry pe of an L1 table (the active one or a snapshot's). */
static void clear_l1e_past_end(CheckState *c, const PastEndEntry *pe)
{
    BDRVQcow2State *s = c->s;
    fprintf(stderr, "Repairing L1 entry pointing past the end of the file: l1_index=%u "
            "l1_entry=%" G_GINT64_MODIFIER "x (now unallocated)\n", pe->index, pe->entry);
    int ret;
    if (pe->table == s->h.l1_table_offset) {
        s->l1[pe->index] = 0;
        ret = qcow2_write_l1_entry(s, pe->index);
    } else {
        const uint64_t zero = 0;
        ret = qcow2_meta_pwrite(s, QCOW2_OL_INACTIVE_L1, pe->table + pe->index * 8ull, 8,
                                &zero, false);
    }
    if (ret < 0) {
        c->res->check_errors++;
    } else {
        count_inside(c, pe->off, pe->len, -1);
        c->res->corruptions--; /* the one ref_range counted: repaired */
        c->res->corruptions_fixed++;
    }
}

/*
 * -r all: repairs the entries noted pointing past the end, once every reference is
 * counted, and only in tables that are their own (table_is_its_own); the others stay
 * reported, as qemu-img leaves them all.  An L2 table is written through the cache, at
 * once: a snapshot sharing the table reads it from the file next.
 */
static void repair_past_end_entries(CheckState *c)
{
    BDRVQcow2State *s = c->s;
    GArray *a = c->past_end_entries;
    for (guint i = 0; a && i < a->len; i++) {
        const PastEndEntry *pe = &g_array_index(a, PastEndEntry, i);
        if (pe->l1) {
            uint64_t at = pe->table + pe->index * 8ull;
            if (pe->table == s->h.l1_table_offset || table_is_its_own(c, at, 8, QCOW2_OL_INACTIVE_L1)) {
                clear_l1e_past_end(c, pe);
            }
            continue;
        }
        if (pe->unaligned) {
            zero_l2e_unaligned(c, pe);
            continue;
        }
        uint8_t *t;
        if (!table_is_its_own(c, pe->table, s->cluster_size, 0)) {
            continue;
        }
        if (qcow2_cache_get(s->l2_cache, pe->table, false, &t) < 0) {
            c->res->check_errors++;
            continue;
        }
        if (qcow2_ld64(t + pe->index * s->l2e_size) == pe->entry) {
            zero_l2e_past_end(c, t, pe);
        }
    }
    if (qcow2_cache_flush(s->l2_cache) < 0) {
        c->res->check_errors++;
    }
}

/*
 * Reports L2 entry l2e (at e, index i of the table at l2off) whose host offset is not
 * cluster aligned, in qemu-img's words.  Guest data there stays as it is, however
 * broken: qemu-img keeps the entry (reads through it fail) and so do we.  A preallocated
 * zero cluster (no data: the zero flag, or with extended L2 no subcluster allocated)
 * reads as zeros without its host cluster, so -r all rewrites it to a plain zero cluster
 * (noted for repair_past_end_entries, which writes it once every reference is counted
 * and only into a table that is its own).  Returns false for an entry so repaired, which
 * is then neither counted nor allocated; true for one counted as it is.
 */
static bool unaligned_l2e(CheckState *c, uint64_t l2off, uint32_t i, uint64_t l2e,
                          const uint8_t *e)
{
    BDRVQcow2State *s = c->s;
    uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
    bool data = s->extl2 ? (qcow2_ld64(e + 8) & 0xffffffffu) : !(l2e & QCOW2_OFLAG_ZERO);
    bool fix = !data && (c->fix & BDRV_FIX_ERRORS);

    c->res->corruptions++;
    if (data) {
        fprintf(stderr, "ERROR offset=%" G_GINT64_MODIFIER "x: Data cluster is not properly "
                "aligned; L2 entry corrupted.\n", host);
        return true;
    }
    fprintf(stderr, "%s offset=%" G_GINT64_MODIFIER "x: Preallocated cluster is not "
            "properly aligned; L2 entry corrupted.\n", fix ? "Repairing" : "ERROR", host);
    if (!fix) {
        return true;
    }
    /* Not counted, as by qemu-img, unless the repair cannot be made. */
    PastEndEntry pe = { l2off, i, false, true, l2e, host, s->cluster_size };
    if (!c->past_end_entries) {
        c->past_end_entries = g_array_new(false, false, sizeof(PastEndEntry));
    }
    g_array_append_val(c->past_end_entries, pe);
    if (!c->unaligned_noted) {
        c->unaligned_noted = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    }
    gint64 *key = g_new(gint64, 1);
    *key = l2off + (uint64_t)i * s->l2e_size;
    g_hash_table_add(c->unaligned_noted, key);
    return false;
}

/* Whether entry i of the L2 table at l2off is already noted for an unaligned repair: a
 * table shared with snapshots is visited once per L1 entry naming it, and qemu-img, which
 * repairs at the first visit, finds a plain zero cluster at the next ones. */
static bool unaligned_noted(CheckState *c, uint64_t l2off, uint32_t i)
{
    gint64 key = l2off + (uint64_t)i * c->s->l2e_size;
    return c->unaligned_noted && g_hash_table_contains(c->unaligned_noted, &key);
}

/* Counts one L2 table's references; active says whether it belongs to the live L1. */
static int check_l2(CheckState *c, uint64_t l2off, bool active, uint8_t *tbl)
{
    BDRVQcow2State *s = c->s;
    int ret = bdrv_pread(s->bs->file, l2off, s->cluster_size, tbl);
    if (ret < 0) {
        c->res->check_errors++;
        return ret;
    }
    uint64_t n = 1ull << s->l2_bits;
    /* Fragmentation as qemu-img counts it: within one active L2 table, a host cluster
     * that does not follow the previous one; compressed clusters always count. */
    uint64_t next_contiguous = 0;
    /* Version 2 has no zero flag, and an unallocated entry reads the backing file, not
     * the zeros read past the end: with a backing file the entry is only reported. */
    bool fix = repairs_past_end(c) && (s->h.version >= 3 || !s->backing_file);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *e = tbl + i * s->l2e_size;
        uint64_t l2e = qcow2_ld64(e);
        Qcow2ClusterType t = qcow2_cluster_type(s, l2e);
        if (t == QCOW2_CLUSTER_COMPRESSED) {
            uint64_t coff = qcow2_compressed_offset(l2e, s->cluster_bits);
            uint64_t clen = qcow2_compressed_len(l2e, s->cluster_bits);
            if (!ref_range(c, coff, clen) && fix) {
                note_past_end(c, l2off, i, false, l2e, coff, clen);
            }
            if (active) {
                c->res->allocated_clusters++;
                c->res->compressed_clusters++;
                c->res->fragmented_clusters++;
            }
            continue;
        }
        uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
        if (!qcow2_l2e_has_host(s, l2e)) {
            continue;
        }
        bool unaligned = host % s->cluster_size;
        if (unaligned && unaligned_noted(c, l2off, i)) {
            continue;
        }
        if (unaligned && !unaligned_l2e(c, l2off, i, l2e, e)) {
            continue; /* repaired: it references nothing now */
        }
        /* Clusters of an external data file are not refcounted (qcow2.txt, QEMU). */
        if (qcow2_has_data_file(s)) {
            /* nothing to count */
        } else if (unaligned) {
            ref_unaligned(c, host);
        } else if (!ref_range(c, host, s->cluster_size) && fix) {
            note_past_end(c, l2off, i, false, l2e, host, s->cluster_size);
        }
        if (active) {
            /* Preallocated zero clusters count as allocated, as in qemu-img. */
            c->res->allocated_clusters++;
            c->res->fragmented_clusters += next_contiguous && host != next_contiguous;
            next_contiguous = host + s->cluster_size;
        }
    }
    return 0;
}

static int check_l1(CheckState *c, uint64_t l1off, uint32_t l1_size, bool active)
{
    BDRVQcow2State *s = c->s;
    if (!l1_size) {
        return 0;
    }
    ref_meta(c, l1off, l1_size * 8ull, active ? QCOW2_OL_ACTIVE_L1 : QCOW2_OL_INACTIVE_L1);
    uint64_t *l1 = g_new(uint64_t, l1_size);
    uint8_t *tbl = g_malloc(s->cluster_size);
    int ret = bdrv_pread(s->bs->file, l1off, l1_size * 8ull, l1);
    for (uint32_t i = 0; ret == 0 && i < l1_size; i++) {
        uint64_t l2off = GUINT64_FROM_BE(l1[i]) & QCOW2_L1E_OFFSET_MASK;
        if (!l2off) {
            continue;
        }
        if (l2off % s->cluster_size) {
            fprintf(stderr, "ERROR l2_offset=%" G_GINT64_MODIFIER "x: Table is not cluster "
                    "aligned; L1 entry corrupted\n", l2off);
            c->res->corruptions++;
            continue;
        }
        if (!ref_range(c, l2off, s->cluster_size) && repairs_past_end(c)) {
            note_past_end(c, l1off, i, true, GUINT64_FROM_BE(l1[i]), l2off, s->cluster_size);
            continue;
        }
        if (c->fix & BDRV_FIX_ERRORS) {
            if (!c->l2_refs) {
                c->l2_refs = g_hash_table_new(g_int64_hash, g_int64_equal);
            }
            gint64 *key = g_hash_table_lookup(c->l2_refs, &l2off);
            /* The count lives in the key's own allocation: offset, then count. */
            if (!key) {
                key = g_new0(gint64, 2);
                key[0] = l2off;
                g_hash_table_insert(c->l2_refs, key, key);
            }
            key[1]++;
        }
        check_l2(c, l2off, active, tbl);
    }
    if (ret < 0) {
        c->res->check_errors++;
    }
    g_free(tbl);
    g_free(l1);
    return 0;
}

/* QEMU's limits on the bitmaps extension (qcow2.txt leaves them to implementations). */
#define QCOW2_BITMAP_DIR_MAX (64u << 20)
#define QCOW2_BITMAP_TABLE_MAX_ENTRIES 0x8000000u

/* Counts one bitmap's table and the clusters it names (0: none, or all ones). */
static int count_bitmap_table(CheckState *c, uint64_t off, uint32_t entries)
{
    BDRVQcow2State *s = c->s;
    if (!entries || off % s->cluster_size || entries > QCOW2_BITMAP_TABLE_MAX_ENTRIES) {
        fprintf(stderr, "ERROR bitmap table offset 0x%" G_GINT64_MODIFIER "x size %u: "
                "corrupted bitmap directory entry\n", off, entries);
        c->res->corruptions++;
        return 0;
    }
    if (!ref_meta(c, off, entries * 8ull, CHECK_OL_BITMAP_TABLE)) {
        return 0; /* reported: past the end of the file */
    }
    uint64_t *t = g_new(uint64_t, entries);
    int ret = bdrv_pread(s->bs->file, off, entries * 8ull, t);
    for (uint32_t i = 0; ret == 0 && i < entries; i++) {
        uint64_t data = GUINT64_FROM_BE(t[i]) & QCOW2_L2E_OFFSET_MASK;
        if (data) {
            ref_range(c, data, s->cluster_size);
        }
    }
    g_free(t);
    return ret;
}

/*
 * The bitmaps (persistent dirty bitmaps QEMU keeps) while their autoclear bit says they
 * are valid, as qemu-img check counts them: the directory, each bitmap's table and the
 * clusters the tables name.  A read-write open here clears the bit (Sen does not keep
 * bitmaps up to date), after which they are leaks, as QEMU then sees them too.
 */
static void count_bitmaps(CheckState *c)
{
    BDRVQcow2State *s = c->s;
    for (guint k = 0; (s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) &&
                      s->ext.unknown && k < s->ext.unknown->len; k++) {
        const Qcow2RawExt *e = &g_array_index(s->ext.unknown, Qcow2RawExt, k);
        if (e->type != QCOW2_EXT_BITMAPS || e->len < 24) {
            continue;
        }
        uint32_t nb = qcow2_ld32(e->data);
        uint64_t size = qcow2_ld64(e->data + 8), off = qcow2_ld64(e->data + 16);
        if (!nb || size > QCOW2_BITMAP_DIR_MAX || !ref_meta(c, off, size, QCOW2_OL_BITMAP_DIRECTORY)) {
            continue;
        }
        uint8_t *dir = g_malloc(size);
        if (bdrv_pread(s->bs->file, off, size, dir) < 0) {
            c->res->check_errors++;
            g_free(dir);
            continue;
        }
        uint64_t at = 0;
        for (uint32_t i = 0; i < nb; i++) {
            if (size - at < 24) {
                fprintf(stderr, "ERROR bitmap directory: entry %u lies past its end\n", i);
                c->res->corruptions++;
                break;
            }
            const uint8_t *d = dir + at;
            uint64_t len = (24ull + qcow2_ld32(d + 20) + qcow2_ld16(d + 18) + 7) & ~7ull;
            if (count_bitmap_table(c, qcow2_ld64(d), qcow2_ld32(d + 8)) < 0) {
                c->res->check_errors++;
            }
            if (len > size - at) {
                break;
            }
            at += len;
        }
        g_free(dir);
    }
}

static uint64_t stored_refcount(BDRVQcow2State *s, uint64_t i)
{
    uint64_t rc = 0;
    return qcow2_get_refcount(s, i, &rc) < 0 ? 0 : rc;
}

/* OFLAG_COPIED must be set exactly on the live tables/clusters whose refcount is 1. */
static void check_copied(CheckState *c, int fix)
{
    BDRVQcow2State *s = c->s;
    uint8_t *tbl = g_malloc(s->cluster_size);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2off = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!l2off || l2off % s->cluster_size) {
            continue;
        }
        uint64_t rc = stored_refcount(s, l2off >> s->cluster_bits);
        if ((rc == 1) != !!(s->l1[i] & QCOW2_OFLAG_COPIED)) {
            fprintf(stderr, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%" 
                    G_GINT64_MODIFIER "x refcount=%" G_GUINT64_FORMAT "\n",
                    fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", i, s->l1[i], rc);
            c->res->corruptions++;
            if (fix & BDRV_FIX_ERRORS) {
                s->l1[i] = rc == 1 ? s->l1[i] | QCOW2_OFLAG_COPIED
                                   : s->l1[i] & ~QCOW2_OFLAG_COPIED;
                if (qcow2_write_l1_entry(s, i) == 0) {
                    c->res->corruptions_fixed++;
                }
            }
        }
        uint8_t *t;
        if (qcow2_cache_get(s->l2_cache, l2off, false, &t) < 0) {
            continue;
        }
        memcpy(tbl, t, s->cluster_size);
        bool changed = false;
        /* A "table" on other metadata (a corrupt L1 entry naming, say, a snapshot's L1
         * table) is no L2 table: its entries are reported, never rewritten. */
        bool repair = (fix & BDRV_FIX_ERRORS) && !on_other_metadata(c, l2off, s->cluster_size, 0);
        for (uint64_t j = 0; j < (1ull << s->l2_bits); j++) {
            uint64_t l2e = qcow2_ld64(tbl + j * s->l2e_size);
            if (l2e & QCOW2_OFLAG_COMPRESSED) {
                continue;
            }
            uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
            /* As qemu-img, an unaligned entry too, by the cluster its offset is in. */
            if (!host) {
                continue;
            }
            /* A data file's clusters count as referenced once: no snapshots share them. */
            rc = qcow2_has_data_file(s) ? 1 : stored_refcount(s, host >> s->cluster_bits);
            if ((rc == 1) != !!(l2e & QCOW2_OFLAG_COPIED)) {
                fprintf(stderr, "%s OFLAG_COPIED data cluster: l2_entry=%"
                        G_GINT64_MODIFIER "x refcount=%" G_GUINT64_FORMAT "\n",
                        repair ? "Repairing" : "ERROR", l2e, rc);
                c->res->corruptions++;
                if (repair) {
                    l2e = rc == 1 ? l2e | QCOW2_OFLAG_COPIED : l2e & ~QCOW2_OFLAG_COPIED;
                    qcow2_st64(tbl + j * s->l2e_size, l2e);
                    changed = true;
                    c->res->corruptions_fixed++;
                }
            }
        }
        if (changed && qcow2_cache_get(s->l2_cache, l2off, false, &t) == 0) {
            memcpy(t, tbl, s->cluster_size);
            qcow2_cache_mark_dirty(s->l2_cache, l2off);
        }
    }
    g_free(tbl);
}

/* A cluster whose stored refcount differs from the references counted. */
typedef struct RefMismatch {
    uint64_t cluster, have, want;
} RefMismatch;

/*
 * Prints a mismatch as qemu-img does: every one as "Leaked"/"ERROR" while comparing, then,
 * when repairing, every one again ("Repairing" if this mode fixes it).  Returns repair.
 */
static bool report_mismatch(const RefMismatch *m, bool repair)
{
    fprintf(stderr, "%s cluster %" G_GUINT64_FORMAT " refcount=%" G_GUINT64_FORMAT
            " reference=%" G_GUINT64_FORMAT "\n",
            repair ? "Repairing" : m->have > m->want ? "Leaked" : "ERROR", m->cluster,
            m->have, m->want);
    return repair;
}

#define QCOW2_CHECK_SLACK_CLUSTERS (1ull << 22)
/* 2 GiB of counters: 128 GiB of 512-byte clusters, 16 TiB of 64 KiB ones. */
#define QCOW2_CHECK_MAX_CLUSTERS (1ull << 28)

/*
 * A refcount block past the end of the file (a corrupt table entry), as qemu-img: -r all
 * grows the file over it so that it is counted (its refcounts read as zeros, so the
 * comparison then asks for a rebuild).  Returns whether it may be counted now.
 */
static bool refblock_outside_image(CheckState *c, uint64_t i, uint64_t rb)
{
    BDRVQcow2State *s = c->s;
    bool fix = c->fix & BDRV_FIX_ERRORS;
    fprintf(stderr, "%s refcount block %" G_GUINT64_FORMAT " is outside image\n",
            fix ? "Repairing" : "ERROR", i);
    c->res->corruptions++;
    if (!fix) {
        return false;
    }
    uint64_t need = (rb >> s->cluster_bits) + 1;
    Error *err = NULL;
    /* A corrupt entry can point terabytes away: grow no further than check looks past
     * the end (a bigger sparse file and a per-cluster table for it help nobody). */
    if (need > c->file_clusters + QCOW2_CHECK_SLACK_CLUSTERS ||
        need > QCOW2_CHECK_MAX_CLUSTERS) {
        fprintf(stderr, "ERROR could not resize image: %s\n", g_strerror(EFBIG));
        return false;
    }
    if (!bdrv_truncate(s->bs->file, rb + s->cluster_size, false, &err)) {
        fprintf(stderr, "ERROR could not resize image: %s\n", error_get_pretty(err));
        error_free(err);
        return false;
    }
    grow_refs(c, need);
    c->file_clusters = MAX(c->file_clusters, need);
    return true;
}

/*
 * Counts every cluster's references from the metadata into c->refs (allocated here for
 * the file's clusters and the ones allocated past its end).  *rebuild is set when a
 * refcount table entry is broken, as in qemu-img.
 */
static int count_references(CheckState *c, bool *rebuild)
{
    BDRVQcow2State *s = c->s;
    BlockCheckResult *res = c->res;
    int64_t flen = bdrv_getlength(s->bs->file);
    if (flen < 0) {
        res->check_errors++;
        return flen;
    }
    c->file_len = flen;
    c->file_clusters = ((uint64_t)flen + s->cluster_size - 1) >> s->cluster_bits;
    c->nb = c->file_clusters;
    /* Clusters allocated but not yet written lie past the end of the file; a corrupt
     * table can have increfed a cluster terabytes away, so bound how far we look (what
     * lies beyond is reported as beyond the end) rather than allocate for it. */
    c->nb = MAX(c->nb, MIN(s->alloc_end, c->nb + QCOW2_CHECK_SLACK_CLUSTERS));
    /* A write through a corrupt L2 entry can have grown the file to terabytes (sparse). */
    c->refs = c->nb <= QCOW2_CHECK_MAX_CLUSTERS ? g_try_new0(uint64_t, MAX(c->nb, 1)) : NULL;
    c->beyond_bound = c->nb + (QCOW2_CHECK_BEYOND_BYTES >> s->cluster_bits);
    if (!c->refs) {
        fprintf(stderr, "ERROR: not enough memory to check an image of %" G_GUINT64_FORMAT
                " clusters\n", c->nb);
        res->check_errors++;
        return -ENOMEM;
    }

    int errors_before = res->check_errors;
    int ret = 0;
    ref_meta(c, 0, s->cluster_size, QCOW2_OL_MAIN_HEADER);
    check_l1(c, s->h.l1_table_offset, s->l1_size, true);
    GArray *snaps = NULL;
    bool snaps_unreadable = qcow2_read_snapshots(s, &snaps) < 0;
    if (snaps_unreadable) {
        fprintf(stderr, "ERROR: the snapshot table cannot be read\n");
        res->corruptions++;
    }
    for (guint i = 0; i < snaps->len; i++) {
        Qcow2Snapshot *sn = &g_array_index(snaps, Qcow2Snapshot, i);
        /* As qemu-img: a corrupt entry's table is reported, not read (a 16 GiB "L1
         * table" cost a fuzz input 16 GiB of memory). */
        if (sn->l1_table_offset % s->cluster_size) {
            fprintf(stderr, "ERROR snapshot %s (%s) l1_offset=%#" G_GINT64_MODIFIER "x: L1 "
                    "table is not cluster aligned; snapshot table entry corrupted\n",
                    sn->id_str, sn->name, sn->l1_table_offset);
            res->corruptions++;
            continue;
        }
        if (sn->l1_size > QCOW2_MAX_L1_BYTES / 8) {
            fprintf(stderr, "ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; "
                    "snapshot table entry corrupted\n", sn->id_str, sn->name, sn->l1_size);
            res->corruptions++;
            continue;
        }
        check_l1(c, sn->l1_table_offset, sn->l1_size, false);
    }
    if (s->h.nb_snapshots) {
        ref_meta(c, s->h.snapshots_offset, qcow2_snapshot_table_len(snaps),
                 QCOW2_OL_SNAPSHOT_TABLE);
    }
    qcow2_snapshots_free(snaps);
    count_bitmaps(c);
    ref_meta(c, s->h.refcount_table_offset, s->reftable_size * 8, QCOW2_OL_REFCOUNT_TABLE);
    for (uint64_t i = 0; i < s->reftable_size; i++) {
        uint64_t rb = s->reftable[i] & QCOW2_REFT_OFFSET_MASK;
        if (!rb) {
            continue;
        }
        if (rb % s->cluster_size) {
            fprintf(stderr, "ERROR refcount block %" G_GUINT64_FORMAT " is not cluster "
                    "aligned; refcount table entry corrupted\n", i);
            res->corruptions++;
            *rebuild = true;
            continue;
        }
        if (rb >= (uint64_t)flen && !refblock_outside_image(c, i, rb)) {
            continue;
        }
        /* A refcount block something else uses too (a corrupt table pointing at it)
         * cannot be repaired in place: its refcounts would change under it.  As
         * qemu-img: reported, and -r all rebuilds the structure elsewhere. */
        uint64_t rbc = rb >> s->cluster_bits;
        if (ref_meta(c, rb, s->cluster_size, QCOW2_OL_REFCOUNT_BLOCK) && c->refs[rbc] != 1) {
            fprintf(stderr, "ERROR refcount block %" G_GUINT64_FORMAT " refcount=%"
                    G_GUINT64_FORMAT "\n", i, c->refs[rbc]);
            res->corruptions++;
            *rebuild = true;
        }
    }
    if (res->check_errors > errors_before || snaps_unreadable) {
        /* The clusters that only unread tables reference were counted as free: comparing
         * would call them leaks, and repairing would free or rebuild them to refcount 0,
         * so later allocations overwrite guest data.  qemu-img fails the check here too. */
        fprintf(stderr, "ERROR: some metadata cannot be read; refcounts are neither "
                "compared nor repaired\n");
        ret = -EIO;
    } else {
        repair_past_end_entries(c);
    }
    if (c->past_end_entries) {
        g_array_free(c->past_end_entries, true);
        c->past_end_entries = NULL;
    }
    return ret;
}

/*
 * Compares the counted references with the stored refcounts.  report prints every
 * mismatch as "Leaked"/"ERROR" and counts it; fix then repairs them one by one, each
 * reported again ("Repairing"), as qemu-img does.  A referenced cluster with no stored
 * refcount cannot be repaired so (its block may not exist): *rebuild is set instead.
 * Returns one past the last cluster with a stored or counted reference.
 */
static uint64_t compare_refcounts(CheckState *c, int fix, bool report, bool *rebuild)
{
    BDRVQcow2State *s = c->s;
    BlockCheckResult *res = c->res;
    /*
     * As qemu-img: the file's clusters are compared, and past its end only the clusters
     * something references.  A refcount left past the end (a crash after an allocation
     * and before its write extended the file) costs no disk space, and qemu-img neither
     * reports nor repairs it, so neither do we (same output, same exit code).  The image
     * end is the last cluster with a stored or a computed reference, also as qemu-img.
     */
    uint64_t end = 0;
    GArray *mismatches = g_array_new(FALSE, FALSE, sizeof(RefMismatch));
    for (uint64_t i = 0; i < c->nb; i++) {
        uint64_t want = c->refs[i];
        if (i >= c->file_clusters && !want) {
            continue;
        }
        uint64_t have = stored_refcount(s, i);
        if (want || have) {
            end = i + 1;
        }
        if (want == have) {
            continue;
        }
        RefMismatch m = { i, have, want };
        g_array_append_val(mismatches, m);
        *rebuild |= have == 0;
        if (!report) {
            continue;
        }
        report_mismatch(&m, false);
        if (have > want) {
            res->leaks++;
        } else {
            res->corruptions++;
        }
    }
    /* Repairs go after the whole comparison, each reported again as it is made. */
    for (guint k = 0; fix && !*rebuild && k < mismatches->len; k++) {
        const RefMismatch *m = &g_array_index(mismatches, RefMismatch, k);
        bool leak = m->have > m->want;
        if (!report_mismatch(m, leak ? (fix & BDRV_FIX_LEAKS) : (fix & BDRV_FIX_ERRORS))) {
            continue;
        }
        if (qcow2_update_refcount(s, m->cluster << s->cluster_bits, s->cluster_size,
                                  (int64_t)(m->want - m->have)) == 0) {
            if (leak) {
                res->leaks_fixed++;
            } else {
                res->corruptions_fixed++;
            }
        }
    }
    g_array_free(mismatches, TRUE);
    return end;
}

static void check_state_clear(CheckState *c)
{
    if (c->unaligned_noted) {
        g_hash_table_destroy(c->unaligned_noted);
        c->unaligned_noted = NULL;
    }
    if (c->l2_refs) {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, c->l2_refs);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            g_free(key);
        }
        g_hash_table_destroy(c->l2_refs);
        c->l2_refs = NULL;
    }
    qcow2_ol_index_clear(&c->meta);
    g_free(c->refs);
    c->refs = NULL;
    if (c->beyond) {
        g_array_free(c->beyond, true);
        c->beyond = NULL;
    }
}

/*
 * qemu-img's rebuild: new refcount blocks and table from the counted references
 * (qcow2-rebuild.c), then the references counted again, and the old structure, now
 * leaked, freed.  Everything found before counts as repaired.
 */
static int rebuild_refcounts(CheckState *c, uint64_t *end)
{
    BlockCheckResult *res = c->res;
    fprintf(stderr, "Rebuilding refcount structure\n");
    int ret = qcow2_rebuild_refcounts(c->s, &c->refs, &c->nb, c->beyond);
    g_free(c->refs);
    c->refs = NULL;
    if (ret < 0) {
        fprintf(stderr, "ERROR rebuilding the refcount structure: %s\n", g_strerror(-ret));
        res->check_errors++;
        return ret;
    }
    int found = res->corruptions;
    res->leaks_fixed += res->leaks;
    res->corruptions = res->leaks = 0;
    /* The old table and blocks are leaks now: free them, reporting only the repairs
     * (their counts are not the user's problems, as in qemu-img). */
    BlockCheckResult scratch = { 0 };
    CheckState again = { .s = c->s, .res = &scratch };
    bool rebuild = false;
    ret = count_references(&again, &rebuild);
    /* What the rebuild cannot fix (a reference past the end) is found again: as
     * qemu-img, only the corruptions gone count as repaired. */
    res->corruptions_fixed += MAX(found - scratch.corruptions, 0);
    if (ret == 0) {
        *end = compare_refcounts(&again, BDRV_FIX_LEAKS, false, &rebuild);
        if (rebuild) {
            fprintf(stderr, "ERROR rebuilt refcount structure is still broken\n");
            res->check_errors++;
            ret = -EIO;
        }
    }
    res->check_errors += scratch.check_errors;
    check_state_clear(&again);
    return ret;
}

static int check_state(CheckState *c, int fix)
{
    BDRVQcow2State *s = c->s;
    BlockCheckResult *res = c->res;
    bool rebuild = false;
    int ret = qcow2_flush_caches(s);
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    ret = count_references(c, &rebuild);
    if (ret < 0) {
        return ret;
    }
    uint64_t end = compare_refcounts(c, fix, true, &rebuild);
    if (rebuild && (fix & BDRV_FIX_ERRORS)) {
        ret = rebuild_refcounts(c, &end);
        if (ret < 0) {
            return ret;
        }
    } else if (rebuild && fix) {
        /* -r leaks: the OFLAG_COPIED repairs below would trust refcounts that are
         * missing. */
        fprintf(stderr, "ERROR need to rebuild refcount structures\n");
        res->check_errors++;
        return -EIO;
    }
    check_copied(c, fix);
    res->image_end_offset = end << s->cluster_bits;
    res->total_clusters = (s->h.size + s->cluster_size - 1) >> s->cluster_bits;
    if (fix) {
        ret = qcow2_flush_caches(s);
        if (ret == 0) {
            ret = bdrv_flush(s->bs->file);
        }
        if (ret < 0) {
            res->check_errors++;
            return ret;
        }
    }
    return 0;
}

int qcow2_check(BlockDriverState *bs, BlockCheckResult *res, int fix)
{
    CheckState c = { .s = bs->opaque, .res = res, .fix = fix };
    memset(res, 0, sizeof(*res));
    int ret = check_state(&c, fix);
    check_state_clear(&c);
    /* As QEMU: a repair (-r leaks or -r all) that leaves no corruption and met no error
     * clears the corrupt bit, so the image opens read/write again.  What is left is
     * what a second look finds (a rebuild's own counts cannot say: it counts everything
     * before it as repaired); only asked when the counts promise nothing is. */
    if (ret == 0 && fix && res->check_errors == 0 &&
        res->corruptions <= res->corruptions_fixed &&
        (c.s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
        BlockCheckResult left = { 0 };
        CheckState again = { .s = c.s, .res = &left, .fix = BDRV_FIX_NONE };
        int vret = check_state(&again, BDRV_FIX_NONE);
        check_state_clear(&again);
        if (vret == 0 && left.corruptions == 0 && left.check_errors == 0) {
            ret = qcow2_mark_consistent(c.s);
            if (ret < 0) {
                res->check_errors++;
            }
        }
    }
    return ret;
}
