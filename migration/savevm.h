/*
 * What savevm (migration/savevm.c) takes from the migration engine: the whole migration
 * stream of a stopped VM written to, or loaded from, a stream that is not a connection
 * (migration/stream.h mig_stream_new_ops).  Implemented in migration.c beside the live
 * migration code they share.  Main thread, vCPUs stopped, VM lock not held.
 */
#ifndef SEN_MIGRATION_SAVEVM_H
#define SEN_MIGRATION_SAVEVM_H

#include <stdbool.h>
#include "sen/error.h"
#include "sen/machine.h"
#include "migration/stream.h"

/* Header, all of RAM, device state, end marker and checksum (docs/migration-format.md). */
bool migration_save_vm_stream(Machine *m, MigStream *st, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Checks and loads such a stream into RAM and devices; a failure leaves them partly
 * loaded (the caller keeps the VM stopped). */
bool migration_load_vm_stream(Machine *m, MigStream *st, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

#endif
