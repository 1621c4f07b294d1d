/*
 * QMP monitors: the JSON management protocol on chardevs (docs/qmp.md).
 *
 * The machine owns its monitors (m->monitors).  Everything runs on the main thread:
 * input arrives with the VM lock held (the chardevs are created with &m->lock), events
 * are emitted from the main thread with or without it.  Output never blocks: a slow
 * client loses what does not fit its chardev's buffer, a vanished one loses everything.
 */
#ifndef SEN_MONITOR_H
#define SEN_MONITOR_H

#include <stdbool.h>
#include <jansson.h>
#include "sen/error.h"
#include "sen/machine.h"

/* One monitor asked for on the command line (-qmp, -mon). */
typedef struct MonitorConfig {
    char *chardev; /* id of the chardev it talks over */
    bool pretty;   /* indented JSON output */
    char *what;    /* the option as given, for error messages */
} MonitorConfig;

/* Attaches a monitor to every chardev named in m->cfg->monitors. */
bool monitor_create_all(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void monitor_destroy_all(Machine *m);
/* True when at least one monitor exists (the VM then waits for it instead of exiting). */
bool monitor_present(const Machine *m);
/* Sends event name with data (taken; may be NULL) to every connected, negotiated client. */
void monitor_emit_event(Machine *m, const char *name, json_t *data);

#endif
