/*
 * The node graph: opening nodes (with format probing), the synchronous I/O entry points
 * drivers and tools use, and asynchronous submission (driver aio or a worker pool).
 * BlockBackend lives in block-backend.c, the machine's drives in drives.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "block/block-internal.h"
#include "sen/buffer-is-zero.h"

enum {
    PROBE_BUF_SIZE = 2048,
    POOL_MAX_THREADS = 64,
    ZERO_CHUNK = 1024 * 1024,
};

/*
 * What every node carries beyond the public struct: the worker pool for requests the
 * driver cannot do asynchronously.  The pool is created on first use because most
 * nodes (children of a format node, tools) never see an async request.
 */
typedef struct BlockNode {
    BlockDriverState bs;
    GMutex lock;            /* guards pool creation and total_size growth */
    BlockPool *pool;
    /* While the driver opens: how references to other nodes resolve (bdrv_open_child). */
    BlockNodeLookup *lookup;
    void *lookup_opaque;
    /* What bdrv_activate opens the driver again with: the options as given, and how
     * their node references resolved. */
    Keyval *open_opts;
    BlockNodeLookup *open_lookup;
    void *open_lookup_opaque;
    bool drv_closed;        /* a re-open failed: the driver holds no state to close */
    int ejected;            /* atomic: unusable after a fatal corruption (bdrv_eject) */
    GArray *perm_claims;    /* of BlockPermClaim: what its users take (block-perm.c) */
    uint64_t seq;           /* creation order, process-wide (bdrv_sort_newest_first) */
} BlockNode;

/*
 * The node names in use, process-wide as QEMU's: a name names one open node at a time,
 * whatever opened it (-blockdev, -drive node-name=, a child's file.node-name=, a json:
 * name).  Generated "#block..." names take part too; they cannot clash with a well-formed
 * name, which starts with a letter.
 */
static GMutex node_names_lock;
static GHashTable *node_names;  /* name -> BlockDriverState*, not owned */
static uint64_t node_seq;       /* under node_names_lock */

bool bdrv_node_name_in_use(const char *name)
{
    g_mutex_lock(&node_names_lock);
    bool used = node_names && g_hash_table_contains(node_names, name);
    g_mutex_unlock(&node_names_lock);
    return used;
}

static gint bdrv_newest_first(gconstpointer a, gconstpointer b)
{
    uint64_t sa = ((const BlockNode *)*(BlockDriverState *const *)a)->seq;
    uint64_t sb = ((const BlockNode *)*(BlockDriverState *const *)b)->seq;

    return sa < sb ? 1 : sa > sb ? -1 : 0;
}

void bdrv_sort_newest_first(GPtrArray *nodes)
{
    g_ptr_array_sort(nodes, bdrv_newest_first);
}

static BlockNode *block_node(BlockDriverState *bs)
{
    return (BlockNode *)bs;
}

int64_t block_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- registry ---- */

const BlockDriver *bdrv_find_format(const char *name)
{
    for (int i = 0; block_driver_table[i]; i++) {
        if (strcmp(block_driver_table[i]->format_name, name) == 0) {
            return block_driver_table[i];
        }
    }
    return NULL;
}

char *bdrv_format_list(void)
{
    GString *s = g_string_new(NULL);
    for (int i = 0; block_driver_table[i]; i++) {
        g_string_append_printf(s, "%s%s", i ? " " : "", block_driver_table[i]->format_name);
    }
    return g_string_free(s, false);
}

const BlockDriver *bdrv_probe_format(const uint8_t *buf, int len, const char *filename)
{
    const BlockDriver *best = &bdrv_raw;
    int best_score = 0;

    for (int i = 0; block_driver_table[i]; i++) {
        const BlockDriver *drv = block_driver_table[i];
        if (drv->probe) {
            int score = drv->probe(buf, len, filename);
            if (score > best_score) {
                best = drv;
                best_score = score;
            }
        }
    }
    return best;
}

void block_snapshot_info_free(BlockSnapshotInfo *sn)
{
    if (sn) {
        g_free(sn->id_str);
        g_free(sn->name);
        g_free(sn);
    }
}

/* ---- keyval and iovec helpers ---- */

static void block_keyval_pair_free(gpointer p)
{
    KeyvalPair *pair = p;
    g_free(pair->key);
    g_free(pair->value);
    g_free(pair);
}

Keyval *block_keyval_new(void)
{
    Keyval *kv = g_new0(Keyval, 1);
    kv->pairs = g_ptr_array_new_with_free_func(block_keyval_pair_free);
    return kv;
}

void block_keyval_add(Keyval *kv, const char *key, const char *value)
{
    KeyvalPair *pair = g_new0(KeyvalPair, 1);
    pair->key = g_strdup(key);
    pair->value = g_strdup(value);
    g_ptr_array_add(kv->pairs, pair);
}

Keyval *block_keyval_copy(const Keyval *kv)
{
    Keyval *copy = block_keyval_new();

    for (guint i = 0; kv && i < kv->pairs->len; i++) {
        const KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);
        block_keyval_add(copy, pair->key, pair->value);
    }
    return copy;
}

/* Moves every "prefix.x" of kv into a new Keyval as "x"; NULL when there is none. */
static Keyval *block_keyval_extract(Keyval *kv, const char *prefix)
{
    size_t plen = strlen(prefix);
    Keyval *sub = NULL;

    for (guint i = 0; i < kv->pairs->len;) {
        KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);
        if (strncmp(pair->key, prefix, plen) == 0 && pair->key[plen] == '.') {
            if (!sub) {
                sub = block_keyval_new();
            }
            block_keyval_add(sub, pair->key + plen + 1, pair->value);
            g_ptr_array_remove_index(kv->pairs, i);
        } else {
            i++;
        }
    }
    return sub;
}

bool block_iov_is_zero(const struct iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        if (!buffer_is_zero(iov[i].iov_base, iov[i].iov_len)) {
            return false;
        }
    }
    return true;
}

/* ---- opening ---- */

/* A fresh node under node_name (NULL: a generated one); NULL if that name is taken. */
static BlockDriverState *bdrv_new_node(const BlockDriver *drv, const char *filename,
                                       const char *node_name, int flags, Error **errp)
{
    static gint counter;
    g_autofree char *name = node_name ? g_strdup(node_name)
                                      : g_strdup_printf("#block%03d",
                                                        g_atomic_int_add(&counter, 1));

    g_mutex_lock(&node_names_lock);
    if (!node_names) {
        node_names = g_hash_table_new(g_str_hash, g_str_equal);
    }
    if (g_hash_table_contains(node_names, name)) {
        g_mutex_unlock(&node_names_lock);
        bool ok = block_name_claim(name, BLOCK_NAME_NODE, BLOCK_NAME_NODE, errp);
        g_assert(!ok);
        return NULL;
    }
    BlockNode *node = g_new0(BlockNode, 1);
    BlockDriverState *bs = &node->bs;
    bs->node_name = g_steal_pointer(&name);
    node->seq = node_seq++;
    g_hash_table_insert(node_names, bs->node_name, bs);
    g_mutex_unlock(&node_names_lock);

    g_mutex_init(&node->lock);
    node->perm_claims = g_array_new(false, false, sizeof(BlockPermClaim));
    bs->drv = drv;
    bs->opaque = drv->instance_size ? g_malloc0(drv->instance_size) : NULL;
    bs->filename = g_strdup(filename);
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->request_alignment = 1;
    bs->ctx = g_main_context_default();
    bs->refcnt = 1;
    return bs;
}

GArray *bdrv_perm_claims(BlockDriverState *bs)
{
    return block_node(bs)->perm_claims;
}

BlockDriverState *bdrv_find_node(const char *name)
{
    g_mutex_lock(&node_names_lock);
    BlockDriverState *bs = node_names ? g_hash_table_lookup(node_names, name) : NULL;
    g_mutex_unlock(&node_names_lock);
    return bs;
}

static void bdrv_free_node(BlockDriverState *bs)
{
    BlockNode *node = block_node(bs);

    /* Waits for running jobs: they reference bs. */
    block_pool_free(node->pool);
    g_mutex_lock(&node_names_lock);
    g_hash_table_remove(node_names, bs->node_name);
    g_mutex_unlock(&node_names_lock);
    g_mutex_clear(&node->lock);
    g_array_free(node->perm_claims, true);
    g_free(bs->opaque);
    g_clear_pointer(&bs->kept_bitmaps, g_ptr_array_unref);
    keyval_free(node->open_opts);
    g_free(bs->filename);
    g_free(bs->node_name);
    g_free(node);
}

void bdrv_ref(BlockDriverState *bs)
{
    g_atomic_int_inc(&bs->refcnt);
}

void bdrv_unref(BlockDriverState *bs)
{
    if (!bs || !g_atomic_int_dec_and_test(&bs->refcnt)) {
        return;
    }
    /* The driver closes its data file; file and backing keep bs's claims (the locks)
     * until the close has written everything back. */
    bdrv_perm_release(bdrv_get_data_file(bs), bs);
    if (bs->drv->close && !block_node(bs)->drv_closed) {
        bs->drv->close(bs);
    }
    bdrv_perm_drop_children(bs);
    bdrv_unref(bs->backing);
    bdrv_unref(bs->file);
    bdrv_free_node(bs);
}

/* Applies the generic node options (QEMU's BlockdevOptionsBase + cache) to *flags. */
static bool bdrv_parse_common(Keyval *opts, const char *what, int *flags,
                              BlockDetectZeroes *dz, Error **errp)
{
    bool ro, direct, no_flush, force_share, auto_ro;
    const char *v;

    if (!keyval_get_bool(opts, what, "read-only", !(*flags & BDRV_O_RDWR), &ro, errp) ||
        !keyval_get_bool(opts, what, "force-share", *flags & BDRV_O_FORCE_SHARE,
                         &force_share, errp) ||
        !keyval_get_bool(opts, what, "auto-read-only", *flags & BDRV_O_AUTO_RDONLY,
                         &auto_ro, errp) ||
        !keyval_get_bool(opts, what, "cache.direct", *flags & BDRV_O_NOCACHE, &direct,
                         errp) ||
        !keyval_get_bool(opts, what, "cache.no-flush", *flags & BDRV_O_NO_FLUSH, &no_flush,
                         errp)) {
        return false;
    }
    *flags = (*flags & ~(BDRV_O_RDWR | BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                         BDRV_O_FORCE_SHARE | BDRV_O_AUTO_RDONLY)) |
             (ro ? 0 : BDRV_O_RDWR) | (direct ? BDRV_O_NOCACHE : 0) |
             (no_flush ? BDRV_O_NO_FLUSH : 0) | (force_share ? BDRV_O_FORCE_SHARE : 0) |
             (auto_ro ? BDRV_O_AUTO_RDONLY : 0);
    if (force_share && !ro) {
        error_setg(errp, "force-share=on can only be used with read-only images");
        return false;
    }

    if ((v = keyval_get(opts, "aio"))) {
        if (strcmp(v, "native") == 0) {
            *flags |= BDRV_O_NATIVE_AIO;
        } else if (strcmp(v, "threads") == 0) {
            *flags &= ~BDRV_O_NATIVE_AIO;
        } else {
            error_setg(errp, "%s: aio=%s: expected 'threads' or 'native'", what, v);
            return false;
        }
    }
    if ((v = keyval_get(opts, "discard"))) {
        if (strcmp(v, "unmap") == 0 || strcmp(v, "on") == 0) {
            *flags |= BDRV_O_UNMAP;
        } else if (strcmp(v, "ignore") == 0 || strcmp(v, "off") == 0) {
            *flags &= ~BDRV_O_UNMAP;
        } else {
            error_setg(errp, "%s: discard=%s: expected 'ignore' or 'unmap'", what, v);
            return false;
        }
    }
    if ((v = keyval_get(opts, "detect-zeroes"))) {
        if (strcmp(v, "off") == 0) {
            *dz = BLOCK_DETECT_ZEROES_OFF;
        } else if (strcmp(v, "on") == 0) {
            *dz = BLOCK_DETECT_ZEROES_ON;
        } else if (strcmp(v, "unmap") == 0) {
            *dz = BLOCK_DETECT_ZEROES_UNMAP;
        } else {
            error_setg(errp, "%s: detect-zeroes=%s: expected 'off', 'on' or 'unmap'", what,
                       v);
            return false;
        }
    }
    if (*dz == BLOCK_DETECT_ZEROES_UNMAP && !(*flags & BDRV_O_UNMAP)) {
        error_setg(errp, "%s: detect-zeroes=unmap is not allowed without discard=unmap",
                   what);
        return false;
    }
    return true;
}

/* Runs drv->open on a fresh node and checks that every option was understood. */
static BlockDriverState *bdrv_open_driver(const BlockDriver *drv, const char *filename,
                                          const char *node_name, Keyval *opts, int flags,
                                          BlockDetectZeroes dz, BlockDriverState *file,
                                          bool probed, BlockNodeLookup *lookup,
                                          void *lookup_opaque, const char *what,
                                          Error **errp)
{
    BlockDriverState *bs = bdrv_new_node(drv, filename, node_name, flags, errp);

    if (!bs) {
        bdrv_unref(file); /* e.g. file.node-name= took the name first */
        return NULL;
    }
    bs->file = file;
    bs->probed = probed;
    bs->detect_zeroes = dz;
    if (file) {
        bs->request_alignment = file->request_alignment;
    }
    block_node(bs)->lookup = lookup;
    block_node(bs)->lookup_opaque = lookup_opaque;
    block_node(bs)->open_opts = block_keyval_copy(opts);
    block_node(bs)->open_lookup = lookup;
    block_node(bs)->open_lookup_opaque = lookup_opaque;
    /* The file child is locked for what the format will do before it reads a byte. */
    bool opened = (!file || bdrv_perm_refresh(bs, errp)) &&
                  (!drv->open || drv->open(bs, opts, flags, errp));
    block_node(bs)->lookup = NULL;
    block_node(bs)->lookup_opaque = NULL;
    if (!opened) {
        /* A driver cleans up after its own failed open: no close (nor any backing when
         * the locks failed, before it ran). */
        BlockDriverState *backing = bs->backing;
        bdrv_perm_release(file, bs);
        bdrv_free_node(bs);
        bdrv_unref(backing);
        bdrv_unref(file);
        return NULL;
    }
    if (!keyval_check_all_used(opts, what, errp) || !bdrv_perm_refresh(bs, errp)) {
        bdrv_unref(bs);
        return NULL;
    }
    return bs;
}

/* Opens the protocol child of a format node (or of a probe) from the options. */
static BlockDriverState *bdrv_open_file_child(const char *filename, Keyval *opts,
                                              int flags, BlockNodeLookup *lookup,
                                              void *lookup_opaque, const char *what,
                                              Error **errp)
{
    g_autofree char *ref = keyval_take(opts, "file");
    g_autoptr(Keyval) sub = block_keyval_extract(opts, "file");

    if (ref && sub) {
        error_setg(errp, "%s: file=%s and file.* options cannot be combined", what, ref);
        return NULL;
    }
    if (ref) {
        BlockDriverState *file = lookup ? lookup(lookup_opaque, ref) : NULL;
        if (!file) {
            error_setg(errp, "%s: file=%s: no block node named '%s'", what, ref, ref);
        }
        return file;
    }
    if (sub) {
        if (!keyval_has(sub, "driver")) {
            block_keyval_add(sub, "driver", "file");
        }
        if (filename && !keyval_has(sub, "filename")) {
            block_keyval_add(sub, "filename", filename);
        }
        return bdrv_open_ex(NULL, g_steal_pointer(&sub), NULL, flags, lookup,
                            lookup_opaque, errp);
    }
    if (!filename) {
        error_setg(errp, "%s: a file name (filename= or file=) is required", what);
        return NULL;
    }
    return bdrv_open_ex(filename, NULL, "file", flags, NULL, NULL, errp);
}

static bool bdrv_probe_file(BlockDriverState *file, const char *filename,
                            const BlockDriver **drv, Error **errp)
{
    g_autofree uint8_t *buf = g_malloc0(PROBE_BUF_SIZE);
    int64_t len = MIN(bdrv_getlength(file), PROBE_BUF_SIZE);
    int ret = len > 0 ? bdrv_pread(file, 0, len, buf) : 0;

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read image for determining its format "
                         "('%s')", filename);
        return false;
    }
    *drv = bdrv_probe_format(buf, MAX(len, 0), filename);
    return true;
}

/*
 * Opens a "json:{...}" name: its JSON is the node's options, and explicit options still
 * win (they come later, and the last value of a key is the one read).  Errors name the
 * json: string as the user typed it, as qemu-img does.
 */
static BlockDriverState *bdrv_open_json(const char *name, const char *json, Keyval *options,
                                        const char *format, int flags,
                                        BlockNodeLookup *lookup, void *lookup_opaque,
                                        Error **errp)
{
    g_autofree char *what = g_strdup_printf("'%s'", name);
    Keyval *opts = block_keyval_from_json(json, what, errp);
    Error *err = NULL;

    if (!opts) {
        keyval_free(options);
        return NULL;
    }
    for (guint i = 0; i < options->pairs->len; i++) {
        const KeyvalPair *pair = g_ptr_array_index(options->pairs, i);
        block_keyval_add(opts, pair->key, pair->value);
    }
    keyval_free(options);
    BlockDriverState *bs = bdrv_open_ex(NULL, opts, format, flags, lookup, lookup_opaque,
                                        &err);
    if (!bs) {
        if (!strstr(error_get_pretty(err), name)) {
            error_prepend(&err, "Could not open '%s': ", name);
        }
        error_propagate(errp, err);
    }
    return bs;
}

BlockDriverState *bdrv_open_ex(const char *filename, Keyval *options, const char *format,
                               int flags, BlockNodeLookup *lookup, void *lookup_opaque,
                               Error **errp)
{
    g_autoptr(Keyval) opts = options ? options : block_keyval_new();
    const char *json = block_json_filename_body(filename);

    if (json) {
        return bdrv_open_json(filename, json, g_steal_pointer(&opts), format, flags, lookup,
                              lookup_opaque, errp);
    }
    g_autofree char *drvname = keyval_take(opts, "driver");
    g_autofree char *fname = keyval_take(opts, "filename");
    g_autofree char *node_name = keyval_take(opts, "node-name");
    BlockDetectZeroes dz = BLOCK_DETECT_ZEROES_OFF;
    const BlockDriver *drv = NULL;
    BlockDriverState *file = NULL;
    bool probed = false;

    if (filename && fname && strcmp(filename, fname) != 0) {
        error_setg(errp, "'%s': filename=%s conflicts with the file name given", filename,
                   fname);
        return NULL;
    }
    if (!filename) {
        filename = fname;
    }
    /* Errors name the image as the user knows it: its file name, else its node name,
     * else its protocol child's file name (--image-opts driver=qcow2,file.filename=x). */
    g_autofree char *child_fname = keyval_has(opts, "file.filename")
                                       ? g_strdup(keyval_get(opts, "file.filename")) : NULL;
    const char *what = filename ? filename : node_name ? node_name
                     : child_fname ? child_fname : "block node";

    if (node_name && !id_wellformed(node_name)) {
        /* As QEMU: a json: name stored in an image cannot take a generated "#block...";
         * the callers' prefix names the image. */
        error_setg(errp, "Invalid node-name: '%s'", node_name);
        return NULL;
    }
    /* Before any child is opened; bdrv_new_node checks again when it claims it. */
    if (node_name &&
        !block_name_claim(node_name, BLOCK_NAME_NODE,
                          bdrv_node_name_in_use(node_name) ? BLOCK_NAME_NODE : BLOCK_NAME_FREE,
                          errp)) {
        return NULL;
    }
    if (format && drvname && strcmp(format, drvname) != 0) {
        error_setg(errp, "'%s': driver=%s conflicts with format=%s", what, drvname, format);
        return NULL;
    }
    if (!format) {
        format = drvname;
    }
    if (format) {
        drv = bdrv_find_format(format);
        if (!drv) {
            g_autofree char *list = bdrv_format_list();
            error_setg(errp, "'%s': unknown format '%s' (supported: %s)", what, format, list);
            return NULL;
        }
    }
    if (!bdrv_parse_common(opts, what, &flags, &dz, errp)) {
        return NULL;
    }

    if (drv && drv->is_protocol) {
        if (keyval_has(opts, "file")) {
            error_setg(errp, "'%s': the '%s' driver takes no 'file' child", what,
                       drv->format_name);
            return NULL;
        }
        if (!filename) {
            error_setg(errp, "The '%s' block driver requires a file name (filename=)",
                       drv->format_name);
            return NULL;
        }
        return bdrv_open_driver(drv, filename, node_name, opts, flags, dz, NULL, false,
                                NULL, NULL, what, errp);
    }

    file = bdrv_open_file_child(filename, opts, flags, lookup, lookup_opaque, what, errp);
    if (!file) {
        return NULL;
    }
    if (!drv) {
        if (!bdrv_probe_file(file, what, &drv, errp)) {
            bdrv_unref(file);
            return NULL;
        }
        probed = true;
    }

    return bdrv_open_driver(drv, filename ? filename : file->filename, node_name, opts,
                            flags, dz, file, probed, lookup, lookup_opaque,
                            filename || node_name ? what : file->filename, errp);
}

BlockDriverState *bdrv_open_child(BlockDriverState *parent, Keyval *opts, const char *key,
                                  int flags, Error **errp)
{
    BlockNode *node = block_node(parent);
    g_autofree char *ref = keyval_take(opts, key);
    g_autoptr(Keyval) sub = block_keyval_extract(opts, key);

    if (ref && sub) {
        error_setg(errp, "%s: %s=%s and %s.* options cannot be combined", parent->filename,
                   key, ref, key);
        return NULL;
    }
    if (ref) {
        BlockDriverState *child = node->lookup ? node->lookup(node->lookup_opaque, ref) : NULL;
        if (!child) {
            error_setg(errp, "%s: %s=%s: no block node named '%s'", parent->filename, key, ref,
                       ref);
        }
        return child;
    }
    if (!sub) {
        return NULL;
    }
    if (!keyval_has(sub, "driver")) {
        block_keyval_add(sub, "driver", "file");
    }
    return bdrv_open_ex(NULL, g_steal_pointer(&sub), NULL, flags, node->lookup,
                        node->lookup_opaque, errp);
}

BlockDriverState *bdrv_open(const char *filename, Keyval *options, const char *format,
                            int flags, Error **errp)
{
    return bdrv_open_ex(filename, options, format, flags, NULL, NULL, errp);
}

/*
 * A backing file opens inside its overlay's open, so the chain recurses on the stack: an
 * image that names itself as its backing file (directly, or through another image or a
 * json: name) would recurse until the stack overflows.  Chains deeper than this are
 * refused instead; the depth counts the backing opens nested on this thread.
 */
#define BDRV_MAX_BACKING_DEPTH 512
#define BDRV_TOO_DEEP_MSG "backing chain deeper than"
static __thread unsigned bdrv_backing_depth;

bool bdrv_open_backing(BlockDriverState *bs, const char *filename, const char *format,
                       Error **errp)
{
    int flags = bs->open_flags & (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH | BDRV_O_NATIVE_AIO |
                                  BDRV_O_FORCE_SHARE);
    Error *err = NULL;

    if (bdrv_backing_depth == BDRV_MAX_BACKING_DEPTH) {
        error_setg(errp, BDRV_TOO_DEEP_MSG " %d images (does '%s' lead back to itself?)",
                   BDRV_MAX_BACKING_DEPTH, filename);
        return false;
    }
    bdrv_backing_depth++;
    BlockDriverState *backing = bdrv_open(filename, NULL, format, flags, &err);
    bdrv_backing_depth--;
    if (!backing) {
        /* Said once, not once per image of the chain. */
        if (!g_str_has_prefix(error_get_pretty(err), BDRV_TOO_DEEP_MSG) ||
            !bdrv_backing_depth) {
            error_prepend(&err, "Could not open backing file: ");
        }
        error_propagate(errp, err);
        return false;
    }
    backing->ctx = bs->ctx;
    bs->backing = backing;
    return true;
}

bool bdrv_open_backing_option(BlockDriverState *bs, Keyval *opts, bool *given, Error **errp)
{
    BlockNode *node = block_node(bs);
    g_autofree char *ref = keyval_take(opts, "backing");
    g_autoptr(Keyval) sub = block_keyval_extract(opts, "backing");
    BlockDriverState *backing;

    *given = ref || sub;
    if (ref && sub) {
        error_setg(errp, "%s: backing=%s and backing.* options cannot be combined",
                   bs->filename, ref);
        return false;
    }
    if (ref && !*ref) {
        return true; /* null: no backing node, whatever the image names */
    }
    if (ref) {
        backing = node->lookup ? node->lookup(node->lookup_opaque, ref) : NULL;
        if (!backing) {
            error_setg(errp, "Could not open backing file: Cannot find device='%s' nor "
                       "node-name='%s'", ref, ref); /* QEMU's words */
            return false;
        }
    } else if (sub) {
        /* Read-only, as a backing file named by the image opens. */
        int flags = bs->open_flags & (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH | BDRV_O_NATIVE_AIO |
                                      BDRV_O_FORCE_SHARE);
        Error *err = NULL;
        if (bdrv_backing_depth == BDRV_MAX_BACKING_DEPTH) {
            error_setg(errp, BDRV_TOO_DEEP_MSG " %d images", BDRV_MAX_BACKING_DEPTH);
            return false;
        }
        bdrv_backing_depth++;
        backing = bdrv_open_ex(NULL, g_steal_pointer(&sub), NULL, flags, node->lookup,
                               node->lookup_opaque, &err);
        bdrv_backing_depth--;
        if (!backing) {
            error_propagate(errp, err);
            error_prepend(errp, "Could not open backing file: ");
            return false;
        }
        backing->ctx = bs->ctx;
    } else {
        return true;
    }
    bs->backing = backing;
    return true;
}

bool bdrv_create(const char *format, const char *filename, Keyval *opts, Error **errp)
{
    const BlockDriver *drv = bdrv_find_format(format);

    if (!drv) {
        g_autofree char *list = bdrv_format_list();
        error_setg(errp, "Unknown file format '%s' (supported: %s)", format, list);
        return false;
    }
    if (!drv->create) {
        error_setg(errp, "Format driver '%s' does not support image creation", format);
        return false;
    }
    return drv->create(filename, opts, errp);
}

/* ---- synchronous I/O ---- */

/* Read-only, or inactive: the image belongs to the other side of a migration. */
static bool bdrv_writes_refused(BlockDriverState *bs)
{
    return bs->read_only || (g_atomic_int_get(&bs->open_flags) & BDRV_O_INACTIVE);
}

void bdrv_eject(BlockDriverState *bs)
{
    g_atomic_int_set(&block_node(bs)->ejected, 1);
}

bool bdrv_is_ejected(BlockDriverState *bs)
{
    return g_atomic_int_get(&block_node(bs)->ejected);
}

bool bdrv_is_inserted(BlockDriverState *bs)
{
    if (!bs) {
        return true;
    }
    return !bdrv_is_ejected(bs) && bdrv_is_inserted(bs->file) &&
           bdrv_is_inserted(bs->backing);
}

static int bdrv_check_range(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    if (bdrv_is_ejected(bs)) {
        return -ENOMEDIUM;
    }
    if (offset < 0 || bytes < 0 || bytes > INT64_MAX - offset) {
        return -EIO;
    }
    if (!bs->drv->is_protocol && offset + bytes > bs->total_size) {
        return -EIO;
    }
    return 0;
}

static void bdrv_note_growth(BlockDriverState *bs, int64_t end)
{
    BlockNode *node = block_node(bs);

    if (!bs->drv->is_protocol) {
        return;
    }
    g_mutex_lock(&node->lock);
    if (end > bs->total_size) {
        bs->total_size = end;
    }
    g_mutex_unlock(&node->lock);
}

int bdrv_preadv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                const struct iovec *iov, int niov, int flags)
{
    int ret = bdrv_check_range(bs, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (!bs->drv->preadv) {
        return -ENOTSUP;
    }
    return bs->drv->preadv(bs, offset, bytes, iov, niov, flags);
}

int bdrv_pwritev(BlockDriverState *bs, int64_t offset, int64_t bytes,
                 const struct iovec *iov, int niov, int flags)
{
    int ret = bdrv_check_range(bs, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (bdrv_writes_refused(bs)) {
        return -EPERM;
    }
    if (!bs->drv->pwritev) {
        return -ENOTSUP;
    }
    ret = bs->drv->pwritev(bs, offset, bytes, iov, niov, flags);
    if (ret == 0) {
        bdrv_note_growth(bs, offset + bytes);
    }
    return ret;
}

int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    struct iovec iov = { .iov_base = buf, .iov_len = bytes };
    return bdrv_preadv(bs, offset, bytes, &iov, 1, 0);
}

int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = bytes };
    return bdrv_pwritev(bs, offset, bytes, &iov, 1, 0);
}

int bdrv_pwrite_sync(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    int ret = bdrv_pwrite(bs, offset, bytes, buf);
    return ret < 0 ? ret : bdrv_flush(bs);
}

int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    int ret = bdrv_check_range(bs, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (bdrv_writes_refused(bs)) {
        return -EPERM;
    }
    if (!(bs->open_flags & BDRV_O_UNMAP)) {
        flags &= ~BDRV_REQ_MAY_UNMAP;
    }
    ret = bs->drv->pwrite_zeroes ? bs->drv->pwrite_zeroes(bs, offset, bytes, flags)
                                 : -ENOTSUP;
    if (ret == -ENOTSUP && !(flags & BDRV_REQ_NO_FALLBACK)) {
        size_t chunk = MIN(bytes, ZERO_CHUNK);
        void *zeroes = g_malloc0(chunk);
        ret = 0;
        for (int64_t done = 0; done < bytes && ret == 0; done += chunk) {
            int64_t n = MIN(bytes - done, (int64_t)chunk);
            struct iovec iov = { .iov_base = zeroes, .iov_len = n };
            ret = bs->drv->pwritev ? bs->drv->pwritev(bs, offset + done, n, &iov, 1, 0)
                                   : -ENOTSUP;
        }
        g_free(zeroes);
    }
    if (ret == 0) {
        bdrv_note_growth(bs, offset + bytes);
    }
    return ret;
}

int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    int ret = bdrv_check_range(bs, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (bdrv_writes_refused(bs)) {
        return -EPERM;
    }
    /* Discard is a hint: without discard=unmap it succeeds and does nothing. */
    if (!(bs->open_flags & BDRV_O_UNMAP) || !bs->drv->pdiscard) {
        return 0;
    }
    return bs->drv->pdiscard(bs, offset, bytes);
}

int bdrv_flush(BlockDriverState *bs)
{
    int ret = 0;

    /* An ejected node has nothing to flush, as QEMU's without a driver. */
    if (!bs || bdrv_writes_refused(bs) || bdrv_is_ejected(bs)) {
        return 0;
    }
    if (bs->drv->flush) {
        ret = bs->drv->flush(bs);
    }
    if (ret == 0 && bs->file) {
        ret = bdrv_flush(bs->file);
    }
    return ret;
}

/* ---- dirty bitmaps ---- */

void block_bitmap_info_free(gpointer p)
{
    BlockBitmapInfo *info = p;
    g_free(info->name);
    g_free(info);
}

bool bdrv_bitmap_op(BlockDriverState *bs, const BlockBitmapReq *req, Error **errp)
{
    if (!bs->drv->bitmap_op) {
        if (req->action == BLOCK_BITMAP_ADD) {
            error_setg(errp, "Cannot create dirty bitmaps in '%s': the %s format does not "
                       "support them", bs->node_name ? bs->node_name : bs->filename,
                       bs->drv->format_name);
        } else {
            error_setg(errp, "Dirty bitmap '%s' not found", req->name);
        }
        return false;
    }
    return bs->drv->bitmap_op(bs, req, errp);
}

GPtrArray *bdrv_bitmap_list(BlockDriverState *bs)
{
    return bs->drv->bitmap_list ? bs->drv->bitmap_list(bs)
                                : g_ptr_array_new_with_free_func(block_bitmap_info_free);
}

/* ---- live-migration hand-over ---- */

static BlockDriverState *bdrv_data_child(BlockDriverState *bs)
{
    return bs->drv->get_data_file ? bs->drv->get_data_file(bs) : NULL;
}

bool bdrv_inactivate(BlockDriverState *bs, Error **errp)
{
    if (!bs || (bs->open_flags & BDRV_O_INACTIVE)) {
        return true;
    }
    /* Everything the driver caches reaches the image before the other side reads it. */
    int ret = bs->drv->inactivate ? bs->drv->inactivate(bs) : 0;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "'%s': could not store the dirty bitmaps before the "
                         "hand-over", bs->filename);
        return false;
    }
    ret = bdrv_flush(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "'%s': could not flush before the hand-over",
                         bs->filename);
        return false;
    }
    g_atomic_int_or(&bs->open_flags, BDRV_O_INACTIVE);
    /* The other side takes the image locks at its activation: give them up. */
    bdrv_perm_refresh_less(bs);
    return bdrv_inactivate(bs->file, errp) && bdrv_inactivate(bdrv_data_child(bs), errp) &&
           bdrv_inactivate(bs->backing, errp);
}

/* Closes the driver without writing (it is inactive, or read-only) and opens it again
 * on what the image holds now, with bs->open_flags: header, tables, length, backing
 * chain.  why names the occasion in errors.  The old backing chain stays open (and
 * locked) until the new one is, so a reopen never leaves it unlocked. */
static bool bdrv_reopen_driver(BlockDriverState *bs, const char *why, Error **errp)
{
    BlockNode *node = block_node(bs);
    g_autoptr(Keyval) opts = block_keyval_copy(node->open_opts);
    BlockDriverState *old_backing = bs->backing;

    if (!node->drv_closed && bs->drv->close) {
        bs->drv->close(bs);
    }
    node->drv_closed = true;
    bs->backing = NULL;
    if (bs->drv->instance_size) {
        memset(bs->opaque, 0, bs->drv->instance_size);
    }
    g_atomic_int_and(&bs->open_flags, ~BDRV_O_INACTIVE);
    node->lookup = node->open_lookup;
    node->lookup_opaque = node->open_lookup_opaque;
    /* A format locks its file before it reads the image again; a protocol node locks
     * once its file is open. */
    bool ok = !bs->file || bdrv_perm_refresh(bs, errp);
    if (ok) {
        ok = bs->drv->open(bs, opts, bs->open_flags, errp);
        node->drv_closed = !ok;
        ok = ok && bdrv_perm_refresh(bs, errp);
    }
    node->lookup = NULL;
    node->lookup_opaque = NULL;
    /* The old chain's claims go once the new chain holds its own (the same node when
     * the backing is a reference to an existing node: its claim is already the new one). */
    if (old_backing && old_backing != bs->backing) {
        bdrv_perm_release(old_backing, bs);
    }
    g_clear_pointer(&old_backing, bdrv_unref);
    if (!ok) {
        /* The driver freed its own state (or is closed below); nothing may write until
         * it is back. */
        if (!node->drv_closed && bs->drv->close) {
            bs->drv->close(bs);
        }
        node->drv_closed = true;
        g_atomic_int_or(&bs->open_flags, BDRV_O_INACTIVE);
        bdrv_perm_release(bs->backing, bs);
        g_clear_pointer(&bs->backing, bdrv_unref);
        bdrv_perm_refresh_less(bs);
        error_prepend(errp, "'%s': could not re-open %s: ", bs->filename, why);
        return false;
    }
    return true;
}

bool bdrv_activate(BlockDriverState *bs, Error **errp)
{
    if (!bs || !(bs->open_flags & BDRV_O_INACTIVE)) {
        return true;
    }
    /* Children first: the driver reads its metadata through them. */
    if (!bdrv_activate(bs->file, errp) || !bdrv_activate(bdrv_data_child(bs), errp)) {
        return false;
    }
    if (!bs->drv->open) {
        g_atomic_int_and(&bs->open_flags, ~BDRV_O_INACTIVE);
        return true;
    }
    /* Protocol nodes too: their length is what the other side grew the file to. */
    return bdrv_reopen_driver(bs, "after the hand-over", errp);
}

/* Switches bs to read-only (rw false) or read-write mode: a protocol driver in place,
 * keeping its locks; a format by opening its driver again ("read-only again" when it
 * goes back after a refusal). */
static bool bdrv_reopen_mode(BlockDriverState *bs, bool rw, Error **errp)
{
    int flags = g_atomic_int_get(&bs->open_flags);

    flags = rw ? flags | BDRV_O_RDWR : flags & ~BDRV_O_RDWR;
    if (bs->drv->reopen && !bs->drv->reopen(bs, flags, errp)) {
        return false;
    }
    if (rw) {
        g_atomic_int_or(&bs->open_flags, BDRV_O_RDWR);
    } else {
        g_atomic_int_and(&bs->open_flags, ~BDRV_O_RDWR);
    }
    bs->read_only = !rw;
    if (bs->drv->reopen) {
        /* The users' claims may take more (or less) now that the mode allows it. */
        return rw ? bdrv_perm_refresh(bs, errp) : (bdrv_perm_refresh_less(bs), true);
    }
    return bdrv_reopen_driver(bs, rw ? "read-write" : "read-only again", errp);
}

/* bdrv_reopen_rw for bs and its data children, children first (the driver checks it can
 * write through them when it opens); each node made writable is appended to done. */
static bool bdrv_reopen_rw_tree(BlockDriverState *bs, GPtrArray *done, Error **errp)
{
    if (!bs || !bs->read_only) {
        return true;
    }
    if (g_atomic_int_get(&bs->open_flags) & (BDRV_O_INACTIVE | BDRV_O_FORCE_SHARE)) {
        error_setg(errp, "'%s': cannot be made writable while %s", bs->filename,
                   (bs->open_flags & BDRV_O_INACTIVE) ? "inactive (migrating)"
                                                      : "opened with force-share=on");
        return false;
    }
    if (!bdrv_reopen_rw_tree(bs->file, done, errp) ||
        !bdrv_reopen_rw_tree(bdrv_data_child(bs), done, errp)) {
        return false;
    }
    if (!bs->drv->open && !bs->drv->reopen) {
        error_setg(errp, "'%s': the %s driver cannot be re-opened", bs->filename,
                   bs->drv->format_name);
        return false;
    }
    if (bdrv_reopen_mode(bs, true, errp)) {
        g_ptr_array_add(done, bs);
        return true;
    }
    /* A protocol driver that refused the switch itself (the host would not open the
     * file for writing) left the node as it was: nothing to put back, and opening the
     * name read-only again could land on another file put there meanwhile, under a
     * format that read the old one. */
    if (bs->drv->reopen && !(g_atomic_int_get(&bs->open_flags) & BDRV_O_RDWR)) {
        return false;
    }
    /* Refused (another user's locks, the host's permissions): back to read-only, so the
     * node reads and holds its locks as before the attempt instead of staying closed. */
    Error *again = NULL;
    if (!bdrv_reopen_mode(bs, false, &again)) {
        g_debug("%s", error_get_pretty(again));
        error_free(again);
    }
    return false;
}

bool bdrv_reopen_rw(BlockDriverState *bs, Error **errp)
{
    g_autoptr(GPtrArray) done = g_ptr_array_new();

    if (bdrv_reopen_rw_tree(bs, done, errp)) {
        return true;
    }
    /* The children made writable go back too, parents before children so that nobody
     * claims writes on a node that has become read-only. */
    for (guint i = done->len; i-- > 0;) {
        BlockDriverState *n = g_ptr_array_index(done, i);
        Error *again = NULL;
        if (!bdrv_reopen_mode(n, false, &again)) {
            g_debug("%s", error_get_pretty(again));
            error_free(again);
        }
    }
    return false;
}

bool bdrv_truncate(BlockDriverState *bs, int64_t size, bool shrink, Error **errp)
{
    if (size < 0) {
        error_setg(errp, "'%s': invalid size %" PRId64, bs->filename, size);
        return false;
    }
    if (bdrv_is_ejected(bs)) {
        error_setg(errp, "'%s': No medium found", bs->filename);
        return false;
    }
    if (bdrv_writes_refused(bs)) {
        error_setg(errp, "'%s': cannot resize a %s image", bs->filename,
                   bs->read_only ? "read-only" : "inactive (migrating)");
        return false;
    }
    if (!bs->drv->truncate) {
        error_setg(errp, "'%s': the %s format does not support resizing", bs->filename,
                   bs->drv->format_name);
        return false;
    }
    if (size < bs->total_size && !shrink) {
        error_setg(errp, "'%s': shrinking from %" PRId64 " to %" PRId64 " bytes needs "
                   "--shrink", bs->filename, bs->total_size, size);
        return false;
    }
    return bs->drv->truncate(bs, size, shrink, errp);
}

int64_t bdrv_getlength(BlockDriverState *bs)
{
    BlockNode *node = block_node(bs);
    int64_t len;

    g_mutex_lock(&node->lock);
    len = bs->total_size;
    g_mutex_unlock(&node->lock);
    return len;
}

int64_t bdrv_get_reported_size(BlockDriverState *bs)
{
    int64_t len = bdrv_getlength(bs);

    return len < 0 ? len : (len + BDRV_SECTOR_SIZE - 1) / BDRV_SECTOR_SIZE * BDRV_SECTOR_SIZE;
}

int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes, int64_t *pnum,
                      int64_t *map, BlockDriverState **file)
{
    int64_t len = bdrv_getlength(bs);

    *pnum = 0;
    if (bdrv_is_ejected(bs)) {
        return -ENOMEDIUM;
    }
    if (offset < 0 || bytes < 0 || offset >= len) {
        return offset == len ? 0 : -EIO;
    }
    bytes = MIN(bytes, len - offset);
    if (bs->drv->block_status) {
        return bs->drv->block_status(bs, offset, bytes, pnum, map, file);
    }
    *pnum = bytes;
    if (map) {
        *map = offset;
    }
    if (file) {
        *file = bs;
    }
    return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_OFFSET_VALID;
}

int bdrv_block_status_above(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockDriverState **file, int *depth)
{
    *depth = 0;
    for (BlockDriverState *b = bs; b; b = b->backing, (*depth)++) {
        if (offset >= b->total_size) {
            /* Past the end of a shorter backing image: reads as zeroes. */
            *pnum = bytes;
            return BDRV_BLOCK_ZERO;
        }
        int st = bdrv_block_status(b, offset, MIN(bytes, b->total_size - offset), pnum, map,
                                   file);
        if (st < 0 || (st & BDRV_BLOCK_ALLOCATED) || !b->backing) {
            return st;
        }
        bytes = MIN(bytes, *pnum);
    }
    g_assert_not_reached();
}

struct json_t *bdrv_get_specific_info(BlockDriverState *bs)
{
    return bs->drv->get_specific_info ? bs->drv->get_specific_info(bs) : NULL;
}

BlockDriverState *bdrv_get_data_file(BlockDriverState *bs)
{
    return bs->drv->get_data_file ? bs->drv->get_data_file(bs) : NULL;
}

int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    return bs->drv->get_info ? bs->drv->get_info(bs, bdi) : -ENOTSUP;
}

int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    /*
     * As QEMU: an external data file counts too, except for a metadata-only open
     * (qemu-img info), where QEMU does not open the data file at all.
     */
    BlockDriverState *data = bs && !(bs->open_flags & BDRV_O_NO_IO) ? bdrv_get_data_file(bs)
                                                                    : NULL;
    BlockDriverState *proto = bs;

    while (proto && !proto->drv->is_protocol) {
        proto = proto->file;
    }
    if (!proto || proto->drv != &bdrv_file) {
        return -ENOTSUP;
    }
    int64_t size = file_posix_allocated_size(proto);
    int64_t data_size = data && size >= 0 ? bdrv_get_allocated_file_size(data) : 0;
    return data_size < 0 ? data_size : size + data_size;
}

/* ---- asynchronous submission ---- */

typedef struct BlockCompletion {
    BlockRequest *req;
    int ret;
} BlockCompletion;

static gboolean bdrv_completion_dispatch(gpointer opaque)
{
    BlockCompletion *c = opaque;
    bdrv_request_complete(c->req, c->ret);
    g_free(c);
    return G_SOURCE_REMOVE;
}

/* Completes req later in ctx's thread, never from inside the caller. */
void bdrv_complete_in(GMainContext *ctx, BlockRequest *req, int ret)
{
    BlockCompletion *c = g_new(BlockCompletion, 1);
    GSource *src = g_idle_source_new();

    c->req = req;
    c->ret = ret;
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, bdrv_completion_dispatch, c, NULL);
    g_source_attach(src, ctx);
    g_source_unref(src);
}

void bdrv_request_complete(BlockRequest *req, int ret)
{
    req->complete(req, ret);
}

static int bdrv_run_request(BlockDriverState *bs, BlockRequest *req)
{
    switch (req->type) {
    case BLOCK_REQ_READ:
        return bdrv_preadv(bs, req->offset, req->bytes, req->iov, req->niov, req->flags);
    case BLOCK_REQ_WRITE:
        return bdrv_pwritev(bs, req->offset, req->bytes, req->iov, req->niov, req->flags);
    case BLOCK_REQ_FLUSH:
        return bdrv_flush(bs);
    case BLOCK_REQ_DISCARD:
        return bdrv_pdiscard(bs, req->offset, req->bytes);
    case BLOCK_REQ_WRITE_ZEROES:
        return bdrv_pwrite_zeroes(bs, req->offset, req->bytes, req->flags);
    }
    return -EINVAL;
}

static int bdrv_pool_run(void *opaque, BlockRequest *req)
{
    return bdrv_run_request(opaque, req);
}

/* Per thread: see bdrv_set_inline_when_idle. */
static __thread bool bdrv_inline_when_idle;

void bdrv_set_inline_when_idle(bool on)
{
    bdrv_inline_when_idle = on;
}

void bdrv_io_plug(BlockDriverState *bs)
{
    for (; bs; bs = bs->file) {
        if (bs->drv->io_plug) {
            bs->drv->io_plug(bs);
        }
    }
}

void bdrv_io_unplug(BlockDriverState *bs)
{
    for (; bs; bs = bs->file) {
        if (bs->drv->io_unplug) {
            bs->drv->io_unplug(bs);
        }
    }
}

void bdrv_aio_submit(BlockDriverState *bs, BlockRequest *req)
{
    BlockNode *node = block_node(bs);
    int ret = 0;

    if (req->type != BLOCK_REQ_FLUSH) {
        ret = bdrv_check_range(bs, req->offset, req->bytes);
    }
    if (ret == 0 && req->type != BLOCK_REQ_READ &&
        (bdrv_writes_refused(bs) || bdrv_is_ejected(bs))) {
        ret = req->type == BLOCK_REQ_FLUSH ? 0 : -EPERM;
        if (ret == 0) {
            bdrv_complete_in(bs->ctx, req, 0);
            return;
        }
    }
    if (ret < 0) {
        bdrv_complete_in(bs->ctx, req, ret);
        return;
    }
    /* Growing a protocol node goes through the synchronous path, which tracks the size. */
    if (bs->drv->aio_submit &&
        !(bs->drv->is_protocol && req->offset + req->bytes > bdrv_getlength(bs))) {
        ret = bs->drv->aio_submit(bs, req);
        if (ret == 0) {
            return;
        }
        if (ret != -ENOTSUP) {
            bdrv_complete_in(bs->ctx, req, ret);
            return;
        }
    }

    g_mutex_lock(&node->lock);
    if (!node->pool) {
        node->pool = block_pool_new(POOL_MAX_THREADS, bdrv_pool_run, bs);
        /* Joining saves device requests under O_DIRECT; through the page cache it
         * only serialises the copies (docs/sen-img.md, Benchmark). */
        block_pool_set_join_reads(node->pool, bs->open_flags & BDRV_O_NOCACHE);
        block_pool_set_join_align(node->pool, MAX(bs->request_alignment, 1));
    }
    g_mutex_unlock(&node->lock);
    ret = block_pool_submit(node->pool, bs->ctx, req, bdrv_inline_when_idle);
    if (ret < 0) {
        bdrv_complete_in(bs->ctx, req, ret);
    }
}
