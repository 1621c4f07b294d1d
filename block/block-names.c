/*
 * The one name space that -drive ids and node names share, as in QEMU: a name is a
 * drive's or a node's, never both.  Whoever is about to give a name away (the command
 * line parser over the drive configs, drives.c over the open backends and nodes, the
 * node opener over the open nodes) finds out what holds it; this decides, with QEMU's
 * words for each clash.
 */
#include "sen/block.h"

bool block_name_claim(const char *name, BlockNameHolder want, BlockNameHolder held,
                      Error **errp)
{
    if (held == BLOCK_NAME_FREE) {
        return true;
    }
    if (want == BLOCK_NAME_NODE) {
        if (held == BLOCK_NAME_NODE) {
            error_setg(errp, "Duplicate nodes with node-name='%s'", name);
        } else {
            error_setg(errp, "node-name=%s is conflicting with a device id", name);
        }
    } else if (held == BLOCK_NAME_NODE) {
        error_setg(errp, "Device name '%s' conflicts with an existing node name", name);
    } else {
        error_setg(errp, "Duplicate ID '%s' for drive", name);
    }
    return false;
}
