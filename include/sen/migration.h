/*
 * Live migration and the machine (docs/migration.md, docs/migration-format.md).
 *
 * Each machine has one MigrationState (m->migration).  An outgoing migration and an
 * incoming one each run in a thread of their own; they talk to the main thread only
 * through main-loop callbacks (run-state changes, events, device state), so QMP stays
 * responsive while RAM streams.  All functions here are for the main thread.
 */
#ifndef SEN_MIGRATION_H
#define SEN_MIGRATION_H

#include <stdbool.h>
#include <glib.h>
#include "sen/error.h"
#include "sen/machine.h"

/* Creates m->migration (parameters at QEMU's defaults).  Never fails. */
void migration_init(Machine *m);
/* Cancels what runs, waits for the threads, frees m->migration. */
void migration_finalize(Machine *m);

/*
 * -incoming URI: listens (or opens) now, so a bad URI or a busy port is a start-up error;
 * the VM is put in run state inmigrate and starts once the stream is loaded (stays
 * paused with -S).  "defer" only enters inmigrate and waits for QMP migrate-incoming.
 */
bool migration_incoming_setup(Machine *m, const char *uri, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* QMP cont while inmigrate: start the guest once the incoming migration completes. */
void migration_incoming_set_autostart(Machine *m);

/* An outgoing or incoming migration runs (or -incoming defer waits). */
bool migration_is_active(Machine *m);

/*
 * savevm / loadvm / delvm (migration/savevm.c, docs/snapshots.md).  Main thread, VM lock
 * not held.  The disk snapshot NAME is taken on, applied to or deleted from every
 * writable drive (devices: a NULL-terminated list of drive ids or node names; NULL = all
 * writable drives); the VM state travels as a migration stream in the vm-state area of
 * one qcow2 image (vmstate: a drive id or node name; NULL = the first drive that can hold
 * it).  Save stops the VM and resumes it if it ran; load stops it, applies the disk
 * snapshots, resets the machine, loads RAM and devices, and resumes if it ran (at
 * start-up: the run state stays, so -S is honoured).  Bad input (unknown name, a drive
 * that cannot take snapshots, no qcow2 drive) fails before the VM is touched.
 */
bool savevm_save(Machine *m, const char *name, bool overwrite, const char *vmstate,
                 char **devices, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool savevm_load(Machine *m, const char *name, const char *vmstate, char **devices,
                 Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool savevm_delete(Machine *m, const char *name, char **devices, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* HMP `info snapshots`, in QEMU's layout. */
void savevm_info_snapshots(Machine *m, GString *out);
/* Frees the QMP jobs (snapshot-save ...), also those that never ran. */
void savevm_jobs_cleanup(Machine *m);

#endif
