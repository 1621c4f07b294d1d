/* Private to monitor/: what the command implementations share with the monitors. */
#ifndef SEN_MONITOR_INTERNAL_H
#define SEN_MONITOR_INTERNAL_H

#include <stdbool.h>
#include <jansson.h>
#include "sen/machine.h"

typedef struct Monitor Monitor;

/* VersionInfo of query-version and the greeting (a new reference). */
json_t *monitor_version_info(void);
/* Whether a monitor talks over chardev id (query-chardev's frontend-open). */
bool monitor_chardev_in_use(Machine *m, const char *id);
/* Runs an HMP command line; returns its output (g_free) or NULL with *errp set. */
char *hmp_run(Machine *m, const char *cmdline, Error **errp);
/* A JSON string for text from the host (file names, paths) that need not be UTF-8:
 * invalid bytes become U+FFFD, as QEMU's JSON writer does, where json_string() would
 * return NULL and drop the whole answer.  A new reference. */
json_t *monitor_host_string(const char *text);
/* QMP's "dirty-bitmaps" of a node (qmp-bitmap.c), NULL when it has none. */
typedef struct BlockDriverState BlockDriverState;
json_t *qmp_dirty_bitmaps_info(BlockDriverState *bs);
/* Block-layer reports (bdrv_report_corruption) become QMP events of m from attach until
 * detach (monitor/qmp-block-events.c). */
void monitor_block_events_attach(Machine *m);
void monitor_block_events_detach(void);

#endif
