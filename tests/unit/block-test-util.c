/* The block-layer test helpers (block-test-util.h). */
#include <glib.h>
#include "sen/keyval.h"
#include "block-test-util.h"

void block_test_create(const char *fmt, const char *path, const char *opts)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(opts, NULL, &err);
    if (!kv) {
        g_error("options %s: %s", opts, error_get_pretty(err));
    }
    if (!bdrv_create(fmt, path, kv, &err)) {
        g_error("create %s %s: %s", path, opts, error_get_pretty(err));
    }
    keyval_free(kv);
}

BlockDriverState *block_test_open(const char *path, const char *fmt, int flags)
{
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(path, NULL, fmt, flags, &err);
    if (!bs) {
        g_error("open %s: %s", path, error_get_pretty(err));
    }
    return bs;
}

void block_test_check_clean(BlockDriverState *bs)
{
    BlockCheckResult res;
    g_assert_cmpint(bs->drv->check(bs, &res, BDRV_FIX_NONE), ==, 0);
    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    g_assert_cmpint(res.check_errors, ==, 0);
}

void block_test_snapshot(BlockDriverState *bs, BlockSnapshotInfo *sn)
{
    Error *err = NULL;
    if (!bs->drv->snapshot_create(bs, sn, &err)) {
        g_error("snapshot %s: %s", sn->name, error_get_pretty(err));
    }
}

void block_test_snapshot_goto(BlockDriverState *bs, const char *name)
{
    Error *err = NULL;
    if (!bs->drv->snapshot_goto(bs, name, &err)) {
        g_error("goto %s: %s", name, error_get_pretty(err));
    }
}
