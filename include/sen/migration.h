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

#endif
