/*
 * What happens to a guest request that failed (include/sen/block.h): QEMU's werror= /
 * rerror= actions, the decision for one error, and the names QMP and the command line
 * use.  The per-backend settings and io-status live in block-backend.c.
 */
#include <errno.h>
#include <string.h>
#include "sen/block.h"

static const char *const on_error_names[BLOCKDEV_ON_ERROR__MAX] = {
    [BLOCKDEV_ON_ERROR_REPORT] = "report",
    [BLOCKDEV_ON_ERROR_IGNORE] = "ignore",
    [BLOCKDEV_ON_ERROR_ENOSPC] = "enospc",
    [BLOCKDEV_ON_ERROR_STOP] = "stop",
    [BLOCKDEV_ON_ERROR_AUTO] = "auto",
};

bool blockdev_on_error_parse(const char *name, BlockdevOnError *out)
{
    for (int i = 0; i < BLOCKDEV_ON_ERROR__MAX; i++) {
        if (strcmp(name, on_error_names[i]) == 0) {
            *out = (BlockdevOnError)i;
            return true;
        }
    }
    return false;
}

const char *blockdev_on_error_name(BlockdevOnError on_err)
{
    return on_err < BLOCKDEV_ON_ERROR__MAX ? on_error_names[on_err] : "?";
}

const char *block_error_action_name(BlockErrorAction action)
{
    switch (action) {
    case BLOCK_ERROR_ACTION_IGNORE:
        return "ignore";
    case BLOCK_ERROR_ACTION_REPORT:
        return "report";
    case BLOCK_ERROR_ACTION_STOP:
        return "stop";
    }
    return "?";
}

const char *block_io_status_name(BlockIoStatus st)
{
    switch (st) {
    case BLOCK_IO_STATUS_OK:
        return "ok";
    case BLOCK_IO_STATUS_FAILED:
        return "failed";
    case BLOCK_IO_STATUS_NOSPACE:
        return "nospace";
    }
    return "?";
}

BlockErrorAction block_error_action_decide(BlockdevOnError on_err, int error)
{
    switch (on_err) {
    case BLOCKDEV_ON_ERROR_ENOSPC:
        return error == ENOSPC ? BLOCK_ERROR_ACTION_STOP : BLOCK_ERROR_ACTION_REPORT;
    case BLOCKDEV_ON_ERROR_STOP:
        return BLOCK_ERROR_ACTION_STOP;
    case BLOCKDEV_ON_ERROR_IGNORE:
        return BLOCK_ERROR_ACTION_IGNORE;
    case BLOCKDEV_ON_ERROR_REPORT:
    case BLOCKDEV_ON_ERROR_AUTO: /* resolved by the device; report is the safe answer */
    case BLOCKDEV_ON_ERROR__MAX:
        break;
    }
    return BLOCK_ERROR_ACTION_REPORT;
}
