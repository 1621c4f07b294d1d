/* null chardev: output is discarded, input never arrives. */
#include "chardev/char-internal.h"

static bool null_open(Chardev *chr, const ChardevConfig *cfg, Error **errp)
{
    return true;
}

const ChardevDriver chardev_null_driver = {
    .name = "null",
    .open = null_open,
};
