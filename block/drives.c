/*
 * The machine's drives: -drive becomes a BlockBackend named by its id, -blockdev a node
 * named by its node-name that later -blockdev options (file=NODE) and devices
 * (drive=NODE) refer to.  Opened at machine creation in command-line order, closed at
 * teardown after the devices that used them.
 */
#include <string.h>
#include "block/block-internal.h"
#include "sen/machine.h"

struct BlockState {
    GPtrArray *backends;   /* of BlockBackend*, owned */
    GPtrArray *nodes;      /* of BlockDriverState* from -blockdev, one reference each */
    bool inactive;         /* the images belong to a migration source (BDRV_O_INACTIVE) */
};

static BlockDriverState *block_find_node(BlockState *st, const char *name)
{
    for (guint i = 0; i < st->nodes->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(st->nodes, i);
        if (strcmp(bs->node_name, name) == 0) {
            return bs;
        }
    }
    return NULL;
}

static BlockDriverState *block_lookup_ref(void *opaque, const char *name)
{
    BlockDriverState *bs = block_find_node(opaque, name);

    if (bs) {
        bdrv_ref(bs);
    }
    return bs;
}

static bool block_open_drive(BlockState *st, const DriveConfig *d, int flags, Error **errp)
{
    Keyval *opts = block_keyval_copy(d->opts);
    Error *err = NULL;
    BlockDriverState *bs;

    /* A -drive id must not name a node, nor the node this drive is about to open. */
    if (!d->blockdev &&
        !block_name_claim(d->id, BLOCK_NAME_DRIVE,
                          bdrv_node_name_in_use(d->id) ||
                                  (keyval_has(opts, "node-name") &&
                                   !strcmp(keyval_get(opts, "node-name"), d->id))
                              ? BLOCK_NAME_NODE
                              : BLOCK_NAME_FREE,
                          errp)) {
        error_prepend(errp, "%s: ", d->optstr);
        keyval_free(opts);
        return false;
    }
    if (d->blockdev) {
        bs = bdrv_open_ex(NULL, opts, NULL, flags, block_lookup_ref, st, &err);
    } else {
        bs = bdrv_open(d->file, opts, d->format, flags, &err);
    }
    if (!bs) {
        error_propagate(errp, err);
        error_prepend(errp, "%s: ", d->optstr);
        return false;
    }
    /* QEMU warns here (for -drive), not in the block layer, so tools stay quiet. */
    if (bs->probed && bs->drv == &bdrv_raw && !bs->read_only) {
        warn_report("Image format was not specified for '%s' and probing guessed raw. "
                    "Automatically detecting the format is dangerous for raw images, "
                    "write operations on block 0 will be restricted. Specify the 'raw' "
                    "format explicitly to remove the restrictions.", d->file);
    }
    if (d->blockdev) {
        g_ptr_array_add(st->nodes, bs);
        return true;
    }
    BlockBackend *blk = blk_new(d->id, bs, d->write_cache);
    blk_set_on_error(blk, (BlockdevOnError)d->rerror, (BlockdevOnError)d->werror);
    /* Locked for its guest device from the start, as if share-rw=off (the device's
     * realize sets its own share-rw): a conflict names the -drive. */
    if (!blk_set_device_perm(blk, false, errp)) {
        error_prepend(errp, "%s: ", d->optstr);
        blk_unref(blk);
        return false;
    }
    g_ptr_array_add(st->backends, blk);
    return true;
}

bool block_init_drives(Machine *m, Error **errp)
{
    GPtrArray *drives = m->cfg->drives;
    BlockState *st = g_new0(BlockState, 1);

    st->backends = g_ptr_array_new();
    st->nodes = g_ptr_array_new();
    m->block = st;
    /* A migration destination shares the images with a source that still runs and
     * writes them: open them without writing, and read them again when the migration
     * completes (block_activate_all). */
    st->inactive = m->cfg->incoming != NULL;
    int flags = BDRV_O_RDWR | (st->inactive ? BDRV_O_INACTIVE : 0);
    for (guint i = 0; drives && i < drives->len; i++) {
        const DriveConfig *d = g_ptr_array_index(drives, i);
        if (!block_open_drive(st, d, flags, errp)) {
            return false; /* machine_destroy -> block_cleanup closes what is open */
        }
        /* if=virtio: the command line added a virtio-blk-pci,drive=ID to the devices. */
    }
    return true;
}

BlockBackend *block_find_backend(Machine *m, const char *id)
{
    BlockState *st = m->block;

    if (!st) {
        return NULL;
    }
    for (guint i = 0; i < st->backends->len; i++) {
        BlockBackend *blk = g_ptr_array_index(st->backends, i);
        if (strcmp(blk_name(blk), id) == 0) {
            return blk;
        }
    }
    /* A -blockdev node used by a device gets a backend of its own, like QEMU's. */
    BlockDriverState *bs = block_find_node(st, id);
    if (!bs) {
        return NULL;
    }
    bdrv_ref(bs);
    BlockBackend *blk = blk_new(id, bs, true);
    g_ptr_array_add(st->backends, blk);
    return blk;
}

GPtrArray *block_backends(Machine *m)
{
    GPtrArray *out = g_ptr_array_new();

    for (guint i = 0; m->block && i < m->block->backends->len; i++) {
        g_ptr_array_add(out, g_ptr_array_index(m->block->backends, i));
    }
    return out;
}

GPtrArray *block_blockdev_nodes(Machine *m)
{
    GPtrArray *out = g_ptr_array_new();

    for (guint i = 0; m->block && i < m->block->nodes->len; i++) {
        g_ptr_array_add(out, g_ptr_array_index(m->block->nodes, i));
    }
    return out;
}

void block_cleanup(Machine *m)
{
    BlockState *st = m->block;

    if (!st) {
        return;
    }
    for (guint i = st->backends->len; i-- > 0;) {
        blk_unref(g_ptr_array_index(st->backends, i));
    }
    for (guint i = st->nodes->len; i-- > 0;) {
        BlockDriverState *bs = g_ptr_array_index(st->nodes, i);
        bdrv_flush(bs);
        bdrv_unref(bs);
    }
    g_ptr_array_free(st->backends, true);
    g_ptr_array_free(st->nodes, true);
    g_free(st);
    m->block = NULL;
}

/* Calls fn on every node the machine opened, -drive backends and -blockdev nodes. */
static bool block_for_each(Machine *m, bool (*fn)(BlockDriverState *, Error **),
                           Error **errp)
{
    BlockState *st = m->block;

    for (guint i = 0; st && i < st->backends->len; i++) {
        BlockBackend *blk = g_ptr_array_index(st->backends, i);
        if (!fn(blk_bs(blk), errp)) {
            error_prepend(errp, "drive %s: ", blk_name(blk));
            return false;
        }
    }
    for (guint i = 0; st && i < st->nodes->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(st->nodes, i);
        if (!fn(bs, errp)) {
            error_prepend(errp, "node %s: ", bs->node_name);
            return false;
        }
    }
    return true;
}

bool block_inactivate_all(Machine *m, Error **errp)
{
    if (m->block) {
        m->block->inactive = true;
    }
    return block_for_each(m, bdrv_inactivate, errp);
}

bool block_activate_all(Machine *m, Error **errp)
{
    bool ok = block_for_each(m, bdrv_activate, errp);
    if (ok && m->block) {
        m->block->inactive = false;
    }
    return ok;
}

/*
 * blockdev-add: the node joins the -blockdev ones (block_blockdev_nodes, block_cleanup,
 * drive= lookups), so the monitor owns it as QEMU's does.  opts is consumed.
 */
bool block_blockdev_add(Machine *m, Keyval *opts, Error **errp)
{
    BlockState *st = m->block;
    const char *name = keyval_get(opts, "node-name");

    if (!name || !st) {
        error_setg(errp, !name ? "'node-name' must be specified for the root node"
                               : "This machine has no block layer");
        keyval_free(opts);
        return false;
    }
    /* A -drive id holds the name: the backend of a -blockdev node a device uses carries
     * the node's own name, which is the node's.  A node holding it is found when the
     * node opens (bdrv_open_ex), after the name's own checks, as in QEMU. */
    BlockNameHolder held = BLOCK_NAME_FREE;
    for (guint i = 0; i < st->backends->len; i++) {
        BlockBackend *blk = g_ptr_array_index(st->backends, i);
        if (strcmp(blk_name(blk), name) == 0 && strcmp(blk_bs(blk)->node_name, name) != 0) {
            held = BLOCK_NAME_DRIVE;
        }
    }
    if (!block_name_claim(name, BLOCK_NAME_NODE, held, errp)) {
        keyval_free(opts);
        return false;
    }
    /* While the images belong to a migration source, a new node is opened inactive too,
     * and the migration's end activates it with the others. */
    int flags = BDRV_O_RDWR | (st->inactive ? BDRV_O_INACTIVE : 0);
    BlockDriverState *bs = bdrv_open_ex(NULL, opts, NULL, flags, block_lookup_ref, st,
                                        errp);
    if (!bs) {
        return false;
    }
    g_ptr_array_add(st->nodes, bs);
    return true;
}

/* The node below bs (bs included) whose backing node is target, or NULL. */
static BlockDriverState *backing_parent_below(BlockDriverState *bs, BlockDriverState *target)
{
    if (!bs) {
        return NULL;
    }
    if (bs->backing == target) {
        return bs;
    }
    BlockDriverState *p = backing_parent_below(bs->file, target);
    return p ? p : backing_parent_below(bs->backing, target);
}

/* The machine's node that uses bs as its backing node (QEMU blocks deleting it), or NULL. */
static BlockDriverState *backing_parent(BlockState *st, BlockDriverState *bs)
{
    BlockDriverState *p = NULL;
    for (guint i = 0; !p && i < st->nodes->len; i++) {
        p = backing_parent_below(g_ptr_array_index(st->nodes, i), bs);
    }
    for (guint i = 0; !p && i < st->backends->len; i++) {
        p = backing_parent_below(blk_bs(g_ptr_array_index(st->backends, i)), bs);
    }
    return p;
}

/*
 * blockdev-del, checked in QEMU's order: the node exists, no device (backend) uses it,
 * no node uses it as its backing node (QEMU's op blocker), the monitor owns it (a -blockdev or blockdev-add node, not a child opened in place),
 * and no other node references it.  Then its last reference goes, and with it its name.
 */
bool block_blockdev_del(Machine *m, const char *node_name, Error **errp)
{
    BlockState *st = m->block;
    BlockDriverState *bs = st ? bdrv_find_node(node_name) : NULL;

    if (!bs) {
        error_setg(errp, "Failed to find node with node-name='%s'", node_name);
        return false;
    }
    for (guint i = 0; i < st->backends->len; i++) {
        if (blk_bs(g_ptr_array_index(st->backends, i)) == bs) {
            error_setg(errp, "Node %s is in use", node_name);
            return false;
        }
    }
    BlockDriverState *parent = backing_parent(st, bs);
    if (parent) {
        error_setg(errp, "Node '%s' is busy: node is used as backing hd of '%s'", node_name,
                   parent->node_name);
        return false;
    }
    if (!g_ptr_array_find(st->nodes, bs, NULL)) {
        error_setg(errp, "Node %s is not owned by the monitor", node_name);
        return false;
    }
    if (g_atomic_int_get(&bs->refcnt) > 1) {
        error_setg(errp, "Block device %s is in use", node_name);
        return false;
    }
    g_ptr_array_remove(st->nodes, bs);
    bdrv_flush(bs);
    bdrv_unref(bs);
    return true;
}
