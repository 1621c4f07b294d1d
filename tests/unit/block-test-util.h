/* Shared by the block-layer unit tests (test-qcow2-*.c, test-block-handover.c): every
 * helper fails the test instead of returning an error. */
#ifndef SEN_TESTS_BLOCK_TEST_UTIL_H
#define SEN_TESTS_BLOCK_TEST_UTIL_H

#include "sen/block.h"

/* bdrv_create of fmt at path with keyval options opts ("size=1M,cluster_size=512"). */
void block_test_create(const char *fmt, const char *path, const char *opts);
BlockDriverState *block_test_open(const char *path, const char *fmt, int flags);
/* The driver's own check finds no corruption, leak or error. */
void block_test_check_clean(BlockDriverState *bs);
/* The driver's internal snapshot create (sn names it) and apply. */
void block_test_snapshot(BlockDriverState *bs, BlockSnapshotInfo *sn);
void block_test_snapshot_goto(BlockDriverState *bs, const char *name);

#endif
