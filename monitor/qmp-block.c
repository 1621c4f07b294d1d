/*
 * Block QMP commands over the block layer's backends (include/sen/block.h).
 *
 * Statistics are a thread-safe snapshot and the node fields are fixed once a drive is
 * open.  Resizing and internal snapshots go through the block drivers, which serialise
 * their metadata changes against I/O with the image lock; in-flight requests complete on
 * the main loop this command runs on, so nothing here waits for them (see
 * qmp_snapshot_node).
 */
#include <string.h>
#include "sen/block.h"
#include "monitor/monitor-internal.h"
#include "monitor/qapi-generated.h"

static const char *qmp_detect_zeroes_name(BlockDetectZeroes dz)
{
    switch (dz) {
    case BLOCK_DETECT_ZEROES_ON:
        return "on";
    case BLOCK_DETECT_ZEROES_UNMAP:
        return "unmap";
    default:
        return "off";
    }
}

/* QEMU's ImageInfo of bs, with the backing chain nested as backing-image unless flat. */
static json_t *qmp_image_info(BlockDriverState *bs, bool flat)
{
    json_t *image = bdrv_query_image_info(bs);

    if (bs->backing && !flat) {
        json_object_set_new(image, "backing-image", qmp_image_info(bs->backing, false));
    }
    return image;
}

/*
 * QEMU's BlockDeviceInfo of a node; writeback is the cache mode of its user.  flat (QEMU's
 * query-named-block-nodes flat=true) leaves the backing chain out, depth included.
 */
static json_t *qmp_node_info(BlockDriverState *bs, bool read_only, bool writeback,
                             bool flat)
{
    int depth = 0;

    for (BlockDriverState *b = bs->backing; b && !flat; b = b->backing) {
        depth++;
    }
    json_t *image = qmp_image_info(bs, flat);
    json_t *info = json_pack(
        "{s:o,s:s,s:b,s:s,s:i,s:b,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:{s:b,s:b,s:b},s:i}",
        "file", monitor_host_string(bs->filename), "node-name", bs->node_name, "ro",
        read_only,
        "drv", bs->drv->format_name, "backing_file_depth", depth, "encrypted", 0,
        "detect_zeroes", qmp_detect_zeroes_name(bs->detect_zeroes), "bps", 0, "bps_rd", 0,
        "bps_wr", 0, "iops", 0, "iops_rd", 0, "iops_wr", 0, "image", image, "cache",
        "writeback", writeback, "direct",
        (bs->open_flags & BDRV_O_NOCACHE) != 0 ||
        (bs->file && (bs->file->open_flags & BDRV_O_NOCACHE) != 0),
        "no-flush", (bs->open_flags & BDRV_O_NO_FLUSH) != 0, "write_threshold", 0);
    if (bs->backing) {
        json_object_set_new(info, "backing_file",
                            monitor_host_string(bs->backing->filename));
    }
    json_t *bitmaps = qmp_dirty_bitmaps_info(bs);
    if (bitmaps) {
        json_object_set_new(info, "dirty-bitmaps", bitmaps);
    }
    return info;
}

json_t *qmp_query_block(QmpCtx *ctx, Error **errp)
{
    g_autoptr(GPtrArray) blks = block_backends(ctx->m);
    json_t *list = json_array();

    for (guint i = 0; i < blks->len; i++) {
        BlockBackend *blk = g_ptr_array_index(blks, i);
        json_t *info = json_pack("{s:s,s:s,s:b,s:b}", "device", blk_name(blk), "type",
                                 "unknown", "removable", 0, "locked", 0);
        /* A node ejected by a fatal corruption is not "inserted" any more (QEMU). */
        if (!bdrv_is_ejected(blk_bs(blk))) {
            json_object_set_new(info, "inserted",
                                qmp_node_info(blk_bs(blk), blk_is_read_only(blk),
                                              blk_enable_write_cache(blk), false));
        }
        /* Only for a drive whose device keeps one (virtio-blk), as QEMU. */
        if (blk_iostatus_is_enabled(blk)) {
            json_object_set_new(info, "io-status",
                                json_string(block_io_status_name(blk_iostatus(blk))));
        }
        json_array_append_new(list, info);
    }
    return list;
}

/* Adds bs and the nodes below it (file child, data file, backing chain) not listed yet. */
static void qmp_collect_nodes(BlockDriverState *bs, GPtrArray *nodes)
{
    if (!bs || g_ptr_array_find(nodes, bs, NULL)) {
        return;
    }
    g_ptr_array_add(nodes, bs);
    qmp_collect_nodes(bs->file, nodes);
    qmp_collect_nodes(bdrv_get_data_file(bs), nodes);
    qmp_collect_nodes(bs->backing, nodes);
}

/*
 * Every node of the machine, as QEMU lists its named nodes: the drives' and every
 * -blockdev's (used by a device or not) with the nodes below them, newest first.
 */
json_t *qmp_query_named_block_nodes(QmpCtx *ctx, bool has_flat, bool flat, Error **errp)
{
    g_autoptr(GPtrArray) blks = block_backends(ctx->m);
    g_autoptr(GPtrArray) blockdevs = block_blockdev_nodes(ctx->m);
    g_autoptr(GPtrArray) nodes = g_ptr_array_new();
    json_t *list = json_array();

    for (guint i = 0; i < blks->len; i++) {
        qmp_collect_nodes(blk_bs(g_ptr_array_index(blks, i)), nodes);
    }
    for (guint i = 0; i < blockdevs->len; i++) {
        qmp_collect_nodes(g_ptr_array_index(blockdevs, i), nodes);
    }
    bdrv_sort_newest_first(nodes);
    for (guint i = 0; i < nodes->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(nodes, i);
        if (bdrv_is_ejected(bs)) {
            error_setg(errp, "Block device %s is ejected", bs->node_name); /* QEMU's */
            json_decref(list);
            return NULL;
        }
        /* A node has no write cache of its own: QEMU reports writeback for every node. */
        json_array_append_new(list, qmp_node_info(bs, bs->read_only, true, has_flat && flat));
    }
    return list;
}

static json_t *qmp_block_device_stats(BlockBackend *blk)
{
    BlockAcctStats st;
    json_t *o = json_object();

    blk_get_stats(blk, &st);
#define STAT(name, value) json_object_set_new(o, name, json_integer((json_int_t)(value)))
    STAT("rd_bytes", st.rd_bytes);
    STAT("wr_bytes", st.wr_bytes);
    STAT("zone_append_bytes", 0);
    STAT("unmap_bytes", st.unmap_bytes);
    STAT("rd_operations", st.rd_operations);
    STAT("wr_operations", st.wr_operations);
    STAT("zone_append_operations", st.zone_append_operations);
    STAT("flush_operations", st.flush_operations);
    STAT("unmap_operations", st.unmap_operations);
    STAT("rd_total_time_ns", st.rd_total_time_ns);
    STAT("wr_total_time_ns", st.wr_total_time_ns);
    STAT("zone_append_total_time_ns", 0);
    STAT("flush_total_time_ns", st.flush_total_time_ns);
    STAT("unmap_total_time_ns", st.unmap_total_time_ns);
    STAT("wr_highest_offset", st.wr_highest_offset);
    STAT("rd_merged", st.rd_merged);
    STAT("wr_merged", st.wr_merged);
    STAT("zone_append_merged", 0);
    STAT("unmap_merged", 0);
    if (st.last_access_ns > 0) {
        STAT("idle_time_ns", g_get_monotonic_time() * 1000 - st.last_access_ns);
    }
    STAT("failed_rd_operations", st.failed_rd_operations);
    STAT("failed_wr_operations", st.failed_wr_operations);
    STAT("failed_zone_append_operations", 0);
    STAT("failed_flush_operations", st.failed_flush_operations);
    STAT("failed_unmap_operations", st.failed_unmap_operations);
    STAT("invalid_rd_operations", st.invalid_rd_operations);
    STAT("invalid_wr_operations", st.invalid_wr_operations);
    STAT("invalid_zone_append_operations", 0);
    STAT("invalid_flush_operations", st.invalid_flush_operations);
    STAT("invalid_unmap_operations", st.invalid_unmap_operations);
#undef STAT
    json_object_set_new(o, "account_invalid", json_true());
    json_object_set_new(o, "account_failed", json_true());
    json_object_set_new(o, "timed_stats", json_array());
    return o;
}

json_t *qmp_query_blockstats(QmpCtx *ctx, bool has_query_nodes, bool query_nodes,
                             Error **errp)
{
    g_autoptr(GPtrArray) blks = block_backends(ctx->m);
    json_t *list = json_array();

    for (guint i = 0; i < blks->len; i++) {
        BlockBackend *blk = g_ptr_array_index(blks, i);
        json_t *entry = json_pack("{s:s,s:o}", "node-name", blk_bs(blk)->node_name,
                                  "stats", qmp_block_device_stats(blk));
        if (!query_nodes) {
            json_object_set_new(entry, "device", json_string(blk_name(blk)));
        }
        json_array_append_new(list, entry);
    }
    return list;
}

/* The backend named device, or whose root is node-name node; NULL with errp set. */
static BlockBackend *qmp_block_lookup(QmpCtx *ctx, const char *device, const char *node,
                                      Error **errp)
{
    g_autoptr(GPtrArray) blks = block_backends(ctx->m);

    for (guint i = 0; i < blks->len; i++) {
        BlockBackend *blk = g_ptr_array_index(blks, i);
        if ((device && strcmp(blk_name(blk), device) == 0) ||
            (node && strcmp(blk_bs(blk)->node_name, node) == 0)) {
            return blk;
        }
    }
    qmp_error_setg(ctx, errp, QMP_ERROR_DEVICE_NOT_FOUND,
                   "Cannot find device='%s' nor node-name='%s'", device ? device : "",
                   node ? node : "");
    return NULL;
}

bool qmp_block_resize(QmpCtx *ctx, bool has_device, const char *device, bool has_node_name,
                      const char *node_name, int64_t size, Error **errp)
{
    if (!has_device && !has_node_name) {
        error_setg(errp, "block_resize: one of 'device' or 'node-name' is required");
        return false;
    }
    if (size < 0) {
        error_setg(errp, "Parameter 'size' expects a >0 size");
        return false;
    }
    BlockBackend *blk = qmp_block_lookup(ctx, device, node_name, errp);
    if (!blk) {
        return false;
    }
    BlockDriverState *bs = blk_bs(blk);
    if (blk_is_read_only(blk)) {
        error_setg(errp, "Device '%s' is read only", blk_name(blk));
        return false;
    }
    if (size == bdrv_getlength(bs)) {
        return true;
    }
    /* Growing is a metadata change the drivers serialise against I/O; shrinking is
     * only allowed where it is a plain truncate (raw), as qcow2 could lose clusters a
     * request in flight is writing. */
    bool shrink = strcmp(bs->drv->format_name, "qcow2") != 0;
    if (!shrink && size < bdrv_getlength(bs)) {
        error_setg(errp, "Device '%s': shrinking a %s image is not supported",
                   blk_name(blk), bs->drv->format_name);
        return false;
    }
    return blk_truncate(blk, size, shrink, errp);
}

/*
 * The qcow2 driver serialises snapshot metadata against its own I/O, but a write that
 * already looked up its cluster before the snapshot would land in a cluster the snapshot
 * now shares; completions run on this thread, so they cannot be waited for here.
 */
static BlockDriverState *qmp_snapshot_node(QmpCtx *ctx, const char *device, Error **errp)
{
    BlockBackend *blk = qmp_block_lookup(ctx, device, NULL, errp);
    if (!blk) {
        return NULL;
    }
    BlockDriverState *bs = blk_bs(blk);
    if (blk_is_read_only(blk)) {
        error_setg(errp, "Device '%s' is read only", device);
        return NULL;
    }
    if (!bs->drv->snapshot_create || !bs->drv->snapshot_delete || !bs->drv->snapshot_list) {
        error_setg(errp, "Block format '%s' used by device '%s' does not support internal "
                   "snapshots", bs->drv->format_name, device);
        return NULL;
    }
    if (blk_in_flight(blk) > 0) {
        error_setg(errp, "Device '%s' has requests in flight; stop the VM or retry",
                   device);
        return NULL;
    }
    return bs;
}

/* The snapshot matching id and/or name (each when non-NULL) in list, or NULL. */
static BlockSnapshotInfo *qmp_snapshot_find(GPtrArray *list, const char *id,
                                            const char *name)
{
    for (guint i = 0; list && i < list->len; i++) {
        BlockSnapshotInfo *sn = g_ptr_array_index(list, i);
        if ((!id || g_strcmp0(sn->id_str, id) == 0) &&
            (!name || g_strcmp0(sn->name, name) == 0)) {
            return sn;
        }
    }
    return NULL;
}

bool qmp_blockdev_snapshot_internal_sync(QmpCtx *ctx, const char *device, const char *name,
                                         Error **errp)
{
    BlockDriverState *bs = qmp_snapshot_node(ctx, device, errp);
    if (!bs) {
        return false;
    }
    if (!*name) {
        error_setg(errp, "Name is empty");
        return false;
    }
    GPtrArray *list = bs->drv->snapshot_list(bs, errp);
    if (!list) {
        return false;
    }
    bool exists = qmp_snapshot_find(list, NULL, name) != NULL;
    g_ptr_array_free(list, TRUE);
    if (exists) {
        error_setg(errp, "Snapshot with name '%s' already exists on device '%s'", name,
                   device);
        return false;
    }
    gint64 now = g_get_real_time();
    BlockSnapshotInfo sn = {
        .name = (char *)name,
        .date_sec = now / G_USEC_PER_SEC,
        .date_nsec = now % G_USEC_PER_SEC * 1000,
    };
    Error *err = NULL;
    if (!bs->drv->snapshot_create(bs, &sn, &err)) {
        error_setg(errp, "Failed to create snapshot '%s' on device '%s': %s", name, device,
                   error_get_pretty(err));
        error_free(err);
        return false;
    }
    return true;
}

json_t *qmp_blockdev_snapshot_delete_internal_sync(QmpCtx *ctx, const char *device,
                                                   bool has_id, const char *id,
                                                   bool has_name, const char *name,
                                                   Error **errp)
{
    BlockDriverState *bs = qmp_snapshot_node(ctx, device, errp);
    if (!bs) {
        return NULL;
    }
    if (!has_id && !has_name) {
        error_setg(errp, "Name or id must be provided");
        return NULL;
    }
    GPtrArray *list = bs->drv->snapshot_list(bs, errp);
    if (!list) {
        return NULL;
    }
    json_t *ret = NULL;
    BlockSnapshotInfo *sn = qmp_snapshot_find(list, has_id ? id : NULL,
                                              has_name ? name : NULL);
    if (!sn) {
        error_setg(errp, "Snapshot with id '%s' and name '%s' does not exist on device "
                   "'%s'", has_id ? id : "(null)", has_name ? name : "(null)", device);
    } else if (bs->drv->snapshot_delete(bs, sn->id_str, errp)) {
        ret = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "id", sn->id_str, "name",
                        sn->name, "vm-state-size", (json_int_t)sn->vm_state_size,
                        "date-sec", (json_int_t)sn->date_sec, "date-nsec",
                        (json_int_t)sn->date_nsec, "vm-clock-sec",
                        (json_int_t)(sn->vm_clock_nsec / 1000000000ull), "vm-clock-nsec",
                        (json_int_t)(sn->vm_clock_nsec % 1000000000ull));
        if (sn->icount != (uint32_t)-1) {
            json_object_set_new(ret, "icount", json_integer(sn->icount));
        }
    }
    g_ptr_array_free(list, TRUE);
    return ret;
}

/* The marshaller checked the arguments against BlockdevOptions; the block layer reads
 * them as it reads -blockdev's JSON form (one parser, the same errors). */
bool qmp_blockdev_add(QmpCtx *ctx, json_t *arg, Error **errp)
{
    g_autofree char *json = json_dumps(arg, JSON_COMPACT);
    Keyval *opts = json ? block_keyval_from_json(json, NULL, errp) : NULL;

    if (!json) {
        error_setg(errp, "blockdev-add: out of memory");
    }
    if (opts && !block_blockdev_check_qapi(opts, errp)) {
        keyval_free(opts);
        return false;
    }
    return opts && block_blockdev_add(ctx->m, opts, errp);
}

bool qmp_blockdev_del(QmpCtx *ctx, const char *node_name, Error **errp)
{
    return block_blockdev_del(ctx->m, node_name, errp);
}
