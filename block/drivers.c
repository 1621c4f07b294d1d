/* Every block driver Sen knows.  Add one line per driver (and its extern above it). */
#include "block/block-internal.h"

extern const BlockDriver bdrv_qcow2;

const BlockDriver *const block_driver_table[] = {
    &bdrv_file,
    &bdrv_raw,
    &bdrv_qcow2,
    NULL,
};
