/* Every block driver Sen knows.  Add one line per driver (and its extern above it). */
#include "block/block-internal.h"

const BlockDriver *const block_driver_table[] = {
    &bdrv_file,
    &bdrv_raw,
    NULL,
};
