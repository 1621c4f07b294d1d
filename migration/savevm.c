/*
 * savevm / loadvm / delvm: internal snapshots of the whole VM (docs/snapshots.md).
 *
 * As in QEMU, a VM snapshot is a disk snapshot with the same name on every writable drive
 * plus the VM state (RAM and devices: the migration stream of migration/) stored in the
 * vm-state area of one qcow2 image, whose snapshot records its size.  Everything runs on
 * the main thread with the vCPUs stopped, so nothing changes under the stream; callers
 * do not hold the VM lock (stopping vCPUs waits for them, and they may wait for it).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "sen/block.h"
#include "sen/migration.h"
#include "sen/timer.h"
#include "sen/vmstate.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/stream.h"

/* The longest snapshot name savevm writes, in bytes (see savevm_save). */
#define SAVEVM_NAME_MAX 255

/* ---- the drives that take part ---- */

typedef struct SnapDrives {
    GPtrArray *bs;          /* of BlockDriverState*, not referenced: the machine owns them */
    GPtrArray *names;       /* of char*: the drive id (or node name) for messages */
    BlockDriverState *vm;   /* where the VM state goes */
    const char *vm_name;
} SnapDrives;

static void snap_drives_free(SnapDrives *d)
{
    g_ptr_array_free(d->bs, TRUE);
    g_ptr_array_free(d->names, TRUE);
    g_free(d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SnapDrives, snap_drives_free)

/*
 * A drive by its -drive id, or a node by its node name (QEMU's snapshot-* take node
 * names; Sen's -drive ids are the common case).  *label is the name messages use.  A node
 * no device uses is found as QEMU's bdrv_find_node finds it, without a backend: giving it
 * one (block_find_backend) would outlive the command and make blockdev-del refuse the node
 * as "in use".  Nothing holds a reference: the command runs on the main thread in one go,
 * so no blockdev-del can close the node under it.
 */
static BlockDriverState *find_drive(Machine *m, const char *name, const char **label)
{
    g_autoptr(GPtrArray) all = block_backends(m);
    for (guint i = 0; i < all->len; i++) {
        BlockBackend *blk = g_ptr_array_index(all, i);
        if (strcmp(blk_name(blk), name) == 0 ||
            g_strcmp0(blk_bs(blk)->node_name, name) == 0) {
            *label = blk_name(blk);
            return blk_bs(blk);
        }
    }
    *label = name;
    return m->block ? bdrv_find_node(name) : NULL;
}

static void add_drive(SnapDrives *d, BlockDriverState *bs, const char *label)
{
    for (guint i = 0; i < d->bs->len; i++) {
        if (g_ptr_array_index(d->bs, i) == bs) {
            return;
        }
    }
    g_ptr_array_add(d->bs, bs);
    g_ptr_array_add(d->names, g_strdup(label));
}

static SnapDrives *snap_drives_new(void)
{
    SnapDrives *d = g_new0(SnapDrives, 1);
    d->bs = g_ptr_array_new();
    d->names = g_ptr_array_new_with_free_func(g_free);
    return d;
}

/*
 * Every writable drive, once each (QEMU's bdrv_all_get_snapshot_devices): the devices'
 * backends, then, as QEMU's bdrv_next, the -blockdev / blockdev-add nodes no device and
 * no other node uses (only the monitor's reference holds them): a qcow2 node added for
 * later takes part in savevm too.  A node below another one does not.
 */
static void add_writable_drives(Machine *m, SnapDrives *d)
{
    g_autoptr(GPtrArray) all = block_backends(m);
    for (guint i = 0; i < all->len; i++) {
        BlockBackend *blk = g_ptr_array_index(all, i);
        if (!blk_is_read_only(blk)) {
            add_drive(d, blk_bs(blk), blk_name(blk));
        }
    }
    g_autoptr(GPtrArray) nodes = block_blockdev_nodes(m);
    for (guint i = 0; i < nodes->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(nodes, i);
        if (!bs->read_only && g_atomic_int_get(&bs->refcnt) == 1) {
            add_drive(d, bs, bs->node_name);
        }
    }
}

/*
 * The writable drives (all, or those named in devices) and the one for the VM state
 * (vmstate, or the first).  Each must be able to take snapshots: a writable raw drive
 * would otherwise come back from loadvm with data newer than the rest of the VM.
 */
static SnapDrives *snap_drives(Machine *m, const char *vmstate, char **devices,
                               bool need_vm, Error **errp)
{
    g_autoptr(SnapDrives) d = snap_drives_new();

    if (devices) {
        for (char **p = devices; *p; p++) {
            const char *label;
            BlockDriverState *bs = find_drive(m, *p, &label);
            if (!bs) {
                error_setg(errp, "No block device node '%s'", *p); /* QEMU's words */
                return NULL;
            }
            if (bs->read_only) {
                error_setg(errp, "Device '%s' is read-only and cannot take snapshots", *p);
                return NULL;
            }
            add_drive(d, bs, label);
        }
    } else {
        add_writable_drives(m, d);
    }
    for (guint i = 0; i < d->bs->len; i++) {
        if (!bdrv_can_snapshot(g_ptr_array_index(d->bs, i))) {
            error_setg(errp, "Device '%s' is writable but does not support snapshots",
                       (const char *)g_ptr_array_index(d->names, i));
            return NULL;
        }
    }
    if (vmstate) {
        const char *label;
        BlockDriverState *bs = find_drive(m, vmstate, &label);
        for (guint i = 0; bs && i < d->bs->len; i++) {
            if (g_ptr_array_index(d->bs, i) == bs) {
                d->vm = bs;
                d->vm_name = g_ptr_array_index(d->names, i);
            }
        }
        if (!d->vm) {
            error_setg(errp, "vmstate device '%s' %s", vmstate,
                       bs ? "is not one of the snapshot devices" : "not found");
            return NULL;
        }
    } else if (d->bs->len) {
        d->vm = g_ptr_array_index(d->bs, 0);
        d->vm_name = g_ptr_array_index(d->names, 0);
    }
    if (need_vm && !d->vm) {
        /* QEMU's message, plus the drives left out for being read-only, if any: the
         * usual reason a VM with a qcow2 disk cannot be saved. */
        g_autoptr(GPtrArray) all = block_backends(m);
        g_autoptr(GString) ro = g_string_new(NULL);
        for (guint i = 0; i < all->len; i++) {
            BlockBackend *blk = g_ptr_array_index(all, i);
            if (blk_is_read_only(blk)) {
                g_string_append_printf(ro, "%s'%s'", ro->len ? ", " : "", blk_name(blk));
            }
        }
        error_setg(errp, "No block device can accept snapshots%s%s%s",
                   ro->len ? " (read-only: " : "", ro->str, ro->len ? ")" : "");
        return NULL;
    }
    return g_steal_pointer(&d);
}

/* The snapshot called name (or with that id, as QEMU looks it up) on bs, or NULL. */
static BlockSnapshotInfo *find_snapshot(GPtrArray *list, const char *name)
{
    for (guint i = 0; list && i < list->len; i++) {
        BlockSnapshotInfo *sn = g_ptr_array_index(list, i);
        if (strcmp(sn->id_str, name) == 0) {
            return sn;
        }
    }
    for (guint i = 0; list && i < list->len; i++) {
        BlockSnapshotInfo *sn = g_ptr_array_index(list, i);
        if (strcmp(sn->name, name) == 0) {
            return sn;
        }
    }
    return NULL;
}

static GPtrArray *list_snapshots(BlockDriverState *bs, const char *drive, Error **errp)
{
    GPtrArray *list = bs->drv->snapshot_list(bs, errp);
    if (!list) {
        error_prepend(errp, "Device '%s': ", drive);
    }
    return list;
}

/* How many of the drives have a snapshot name; -1 on a read error. */
static int count_having(SnapDrives *d, const char *name, Error **errp)
{
    int n = 0;
    for (guint i = 0; i < d->bs->len; i++) {
        GPtrArray *list = list_snapshots(g_ptr_array_index(d->bs, i),
                                         g_ptr_array_index(d->names, i), errp);
        if (!list) {
            return -1;
        }
        n += find_snapshot(list, name) != NULL;
        g_ptr_array_free(list, TRUE);
    }
    return n;
}

/* Deletes name from every drive that has it (by id or name, as found). */
static bool delete_everywhere(SnapDrives *d, const char *name, Error **errp)
{
    for (guint i = 0; i < d->bs->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(d->bs, i);
        GPtrArray *list = list_snapshots(bs, g_ptr_array_index(d->names, i), errp);
        if (!list) {
            return false;
        }
        BlockSnapshotInfo *sn = find_snapshot(list, name);
        bool ok = !sn || bs->drv->snapshot_delete(bs, sn->id_str, errp);
        g_ptr_array_free(list, TRUE);
        if (!ok) {
            error_prepend(errp, "Error while deleting snapshot on '%s': ",
                          (const char *)g_ptr_array_index(d->names, i));
            return false;
        }
    }
    return true;
}

/* ---- the VM state as a stream in the vm-state area ---- */

typedef struct VmStateArea {
    BlockDriverState *bs;
    const char *snapshot;   /* loading: read it from this snapshot; NULL: the active image */
    int64_t pos;
    int64_t size;   /* loading: where the state ends */
} VmStateArea;

static ssize_t area_write(void *opaque, const void *buf, size_t len)
{
    VmStateArea *a = opaque;
    int ret = bdrv_save_vmstate(a->bs, buf, a->pos, (int64_t)len);
    if (ret < 0) {
        return ret;
    }
    a->pos += (int64_t)len;
    return (ssize_t)len;
}

static ssize_t area_read(void *opaque, void *buf, size_t len)
{
    VmStateArea *a = opaque;
    int64_t n = MIN((int64_t)len, a->size - a->pos);
    if (n <= 0) {
        return 0;
    }
    int ret = bdrv_load_vmstate(a->bs, a->snapshot, buf, a->pos, n);
    if (ret < 0) {
        return ret;
    }
    a->pos += n;
    return (ssize_t)n;
}

static const MigStreamOps area_ops = { .read = area_read, .write = area_write };

/* ---- run state ---- */

static bool can_stop_for(Machine *m, RunState to, const char *what, Error **errp)
{
    if (migration_is_active(m)) {
        error_setg(errp, "%s: a migration is in progress", what);
        return false;
    }
    if (!runstate_transition_allowed(m->runstate, to)) {
        error_setg(errp, "%s: not possible in run state '%s'", what,
                   runstate_name(m->runstate));
        return false;
    }
    return true;
}

/* Back to the state the VM was stopped from: running again, or as it was. */
static void restore_runstate(Machine *m, RunState saved)
{
    if (saved == RUN_STATE_RUNNING) {
        machine_vm_start(m);
    } else {
        machine_vm_stop(m, saved);
    }
}

/* ---- savevm ---- */

/*
 * The state written by a save that failed before d->vm's snapshot took it would stay in
 * the active image (space lost, and copied into the next snapshot of that drive, past
 * the state that one records): give it back.  Best effort, the error is already set.
 */
static void drop_unowned_state(SnapDrives *d, uint64_t size)
{
    int ret = bdrv_drop_vmstate(d->vm, (int64_t)size);
    if (ret < 0) {
        warn_report("savevm: could not free the VM state written to '%s': %s", d->vm_name,
                    g_strerror(-ret));
    }
}

/* Writes the state and snapshots every drive; the VM is stopped. */
static bool save_stopped(Machine *m, SnapDrives *d, const char *name, Error **errp)
{
    VmStateArea area = { .bs = d->vm };
    MigStream *st = mig_stream_new_ops(&area_ops, &area, true);
    bool ok = migration_save_vm_stream(m, st, errp);
    uint64_t size = mig_stream_bytes(st);
    mig_stream_free(st);
    if (!ok) {
        error_prepend(errp, "Error while writing VM state to '%s': ", d->vm_name);
        drop_unowned_state(d, MAX(size, (uint64_t)area.pos));
        return false;
    }
    bool vm_taken = false;
    gint64 now = g_get_real_time();
    for (guint i = 0; i < d->bs->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(d->bs, i);
        BlockSnapshotInfo sn = {
            .name = (char *)name,
            .vm_state_size = bs == d->vm ? size : 0,
            .date_sec = (uint32_t)(now / G_USEC_PER_SEC),
            .date_nsec = (uint32_t)(now % G_USEC_PER_SEC * 1000),
            .vm_clock_nsec = m->clock ? (uint64_t)virt_clock_get_ns(m->clock) : 0,
        };
        if (!bs->drv->snapshot_create(bs, &sn, errp)) {
            error_prepend(errp, "Error while creating snapshot on '%s': ",
                          (const char *)g_ptr_array_index(d->names, i));
            if (!vm_taken) {
                drop_unowned_state(d, size);
            }
            /* All or nothing: the drives done so far lose it again, and so does this one:
             * a create that fails after writing its snapshot table may leave the
             * snapshot there when its own undo fails too ("it is left in the image").
             * No other snapshot can match name here: count_having found none before. */
            for (guint j = 0; j <= i; j++) {
                BlockDriverState *b = g_ptr_array_index(d->bs, j);
                Error *ignored = NULL;
                if (!b->drv->snapshot_delete(b, name, &ignored)) {
                    error_free(ignored);
                }
            }
            return false;
        }
        vm_taken |= bs == d->vm;
    }
    return true;
}

bool savevm_save(Machine *m, const char *name, bool overwrite, const char *vmstate,
                 char **devices, Error **errp)
{
    g_autofree char *generated = NULL;
    if (!name || !*name) {
        /* QEMU's default name: the local time. */
        time_t t = time(NULL);
        struct tm tm;
        char buf[32];
        localtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "vm-%Y%m%d%H%M%S", &tm);
        name = generated = g_strdup(buf);
    }
    /* A qcow2 snapshot table stores the name's length in 16 bits, so a longer one would
     * be written truncated and corrupt the table; QEMU holds names in 256-byte buffers
     * (QEMUSnapshotInfo), so one past 255 bytes could not be loaded there either. */
    if (strlen(name) > SAVEVM_NAME_MAX) {
        error_setg(errp, "Snapshot name '%.16s...' is %zu bytes long; at most %d are allowed",
                   name, strlen(name), SAVEVM_NAME_MAX);
        return false;
    }
    g_autoptr(SnapDrives) d = snap_drives(m, vmstate, devices, true, errp);
    if (!d || !can_stop_for(m, RUN_STATE_SAVE_VM, "savevm", errp)) {
        return false;
    }
    int have = count_having(d, name, errp);
    if (have < 0) {
        return false;
    }
    if (have && !overwrite) {
        error_setg(errp, "Snapshot '%s' already exists in one or more devices", name);
        return false;
    }
    RunState saved = m->runstate;
    machine_vm_stop(m, RUN_STATE_SAVE_VM);
    bool ok = (!have || delete_everywhere(d, name, errp)) && save_stopped(m, d, name, errp);
    restore_runstate(m, saved);
    return ok;
}

/* ---- loadvm ---- */

bool savevm_load(Machine *m, const char *name, const char *vmstate, char **devices,
                 Error **errp)
{
    g_autoptr(SnapDrives) d = snap_drives(m, vmstate, devices, true, errp);
    if (!d) {
        return false;
    }
    GPtrArray *list = list_snapshots(d->vm, d->vm_name, errp);
    if (!list) {
        return false;
    }
    BlockSnapshotInfo *sn = find_snapshot(list, name);
    uint64_t vm_size = sn ? sn->vm_state_size : 0;
    g_ptr_array_free(list, TRUE);
    int have = count_having(d, name, errp);
    if (have < 0) {
        return false;
    }
    if (!sn || have != (int)d->bs->len) {
        error_setg(errp, "Snapshot '%s' does not exist in one or more devices", name);
        return false;
    }
    if (!vm_size) {
        error_setg(errp, "Snapshot '%s' is a disk-only snapshot (no VM state on '%s'): "
                   "revert to it offline with qemu-img snapshot -a", name, d->vm_name);
        return false;
    }
    if (!can_stop_for(m, RUN_STATE_RESTORE_VM, "loadvm", errp)) {
        return false;
    }
    /* Look before leaping: a snapshot of another machine (RAM size or layout) or of
     * another program (QEMU's stream) is refused while the VM is still as it was. */
    VmStateArea peek = { .bs = d->vm, .snapshot = name, .size = (int64_t)vm_size };
    MigStream *pst = mig_stream_new_ops(&area_ops, &peek, false);
    bool fits = ram_load_check_header(m, pst, errp);
    mig_stream_free(pst);
    if (!fits) {
        error_prepend(errp, "Snapshot '%s' does not fit this VM (VM state on '%s'): ", name,
                      d->vm_name);
        return false;
    }
    RunState saved = m->runstate;
    machine_vm_stop(m, RUN_STATE_RESTORE_VM);
    /* Guest writes still in flight would land on the reverted disks. */
    vmstate_drain_all(m);
    for (guint i = 0; i < d->bs->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(d->bs, i);
        if (!bs->drv->snapshot_goto(bs, name, errp)) {
            error_prepend(errp, "Could not load snapshot '%s' on '%s': ", name,
                          (const char *)g_ptr_array_index(d->names, i));
            /* Nothing changed unless an earlier drive was reverted already. */
            machine_vm_stop(m, i ? RUN_STATE_PAUSED : saved);
            return false;
        }
    }
    /* From the power-on state, as a migration destination loads (QEMU resets too). */
    VmStateArea area = { .bs = d->vm, .size = (int64_t)vm_size };
    bool ok = machine_system_reset(m, errp);
    if (ok) {
        MigStream *st = mig_stream_new_ops(&area_ops, &area, false);
        ok = migration_load_vm_stream(m, st, errp);
        mig_stream_free(st);
    }
    if (!ok) {
        error_prepend(errp, "Error while loading VM state of snapshot '%s' from '%s': ",
                      name, d->vm_name);
        /* Half loaded: it must not run; another loadvm or a reset recovers it. */
        machine_vm_stop(m, saved == RUN_STATE_PRELAUNCH ? saved : RUN_STATE_PAUSED);
        return false;
    }
    restore_runstate(m, saved);
    return true;
}

/* ---- delvm ---- */

bool savevm_delete(Machine *m, const char *name, char **devices, Error **errp)
{
    g_autoptr(SnapDrives) d = snap_drives(m, NULL, devices, false, errp);
    if (!d) {
        return false;
    }
    /* A name no drive has is no error (QEMU 7.2: HMP delvm prints nothing and the
     * snapshot-delete job concludes without an error): the snapshot is gone either way. */
    return delete_everywhere(d, name, errp);
}

/* ---- info snapshots ---- */

/* The snapshot table as QEMU's HMP prints it: qemu-img's, with the monitor's line ends. */
static void dump_header(GString *out)
{
    g_string_append(out, BLOCK_SNAPSHOT_HEADER "\r\n");
}

static void dump_row(GString *out, const char *id, const BlockSnapshotInfo *sn)
{
    g_autofree char *row = block_snapshot_row(id, sn->name, sn->vm_state_size, sn->date_sec,
                                              sn->vm_clock_nsec,
                                              sn->icount == (uint32_t)-1 ? -1
                                                                         : (int64_t)sn->icount);
    g_string_append_printf(out, "%s\r\n", row);
}

/*
 * As QEMU's: the writable drives that can take snapshots are listed; a snapshot is
 * loadable ("present on all disks") only when every writable drive has it, which a drive
 * that cannot take snapshots (a writable raw image) never does, so then every snapshot
 * shows as partial.  Read-only drives take no part.
 */
void savevm_info_snapshots(Machine *m, GString *out)
{
    Error *err = NULL;
    g_autoptr(SnapDrives) writable = snap_drives_new();
    g_autoptr(SnapDrives) d = snap_drives_new();
    add_writable_drives(m, writable);
    for (guint i = 0; i < writable->bs->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(writable->bs, i);
        if (bdrv_can_snapshot(bs)) {
            g_ptr_array_add(d->bs, bs);
            g_ptr_array_add(d->names, g_strdup(g_ptr_array_index(writable->names, i)));
        }
    }
    if (!d->bs->len) {
        g_string_append(out, "no block device can store vmstate for snapshot\r\n");
        return;
    }
    bool loadable_anywhere = d->bs->len == writable->bs->len;
    GPtrArray *lists = g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    for (guint i = 0; i < d->bs->len; i++) {
        GPtrArray *list = list_snapshots(g_ptr_array_index(d->bs, i),
                                         g_ptr_array_index(d->names, i), &err);
        if (!list) {
            g_string_append_printf(out, "%s\r\n", error_get_pretty(err));
            error_free(err);
            g_ptr_array_free(lists, TRUE);
            return;
        }
        g_ptr_array_add(lists, list);
    }
    bool any = false;
    for (guint i = 0; i < lists->len; i++) {
        any |= ((GPtrArray *)g_ptr_array_index(lists, i))->len > 0;
    }
    if (!any) {
        g_string_append(out, "There is no snapshot available.\r\n");
        g_ptr_array_free(lists, TRUE);
        return;
    }
    /* Loadable: on every drive (found by name).  IDs may differ between images. */
    GPtrArray *first = g_ptr_array_index(lists, 0);
    GString *all = g_string_new(NULL);
    for (guint k = 0; k < first->len; k++) {
        BlockSnapshotInfo *sn = g_ptr_array_index(first, k);
        bool everywhere = loadable_anywhere;
        for (guint i = 1; i < lists->len; i++) {
            everywhere &= find_snapshot(g_ptr_array_index(lists, i), sn->name) != NULL;
        }
        if (everywhere) {
            dump_row(all, "--", sn);
        }
    }
    g_string_append(out, "List of snapshots present on all disks:\r\n");
    if (all->len) {
        dump_header(out);
        g_string_append(out, all->str);
    } else {
        g_string_append(out, "None\r\n");
    }
    g_string_free(all, TRUE);
    /* The rest, per drive, as QEMU shows them. */
    for (guint i = 0; i < lists->len; i++) {
        GPtrArray *list = g_ptr_array_index(lists, i);
        bool header = false;
        for (guint k = 0; k < list->len; k++) {
            BlockSnapshotInfo *sn = g_ptr_array_index(list, k);
            bool everywhere = loadable_anywhere;
            for (guint j = 0; j < lists->len; j++) {
                everywhere &= find_snapshot(g_ptr_array_index(lists, j), sn->name) != NULL;
            }
            if (everywhere) {
                continue;
            }
            if (!header) {
                g_string_append_printf(out, "\r\nList of partial (non-loadable) snapshots "
                                       "on '%s':\r\n", (const char *)g_ptr_array_index(
                                                           d->names, i));
                dump_header(out);
                header = true;
            }
            dump_row(out, sn->id_str, sn);
        }
    }
    g_ptr_array_free(lists, TRUE);
}
