/*
 * Permissions down the node graph: what each node takes of its children, so that the
 * file nodes at the bottom lock the image as QEMU would for the same graph
 * (docs/image-locking.md).
 *
 * A node's users (its parent nodes, a BlockBackend, a tool) each hold a claim: the
 * permissions they take and the ones they share.  A node adds them up (perms or-ed,
 * shared and-ed) and derives its children's claims from the sum, as QEMU's
 * bdrv_default_perms does:
 * - a format with metadata (qcow2) always reads its file consistently, writes and
 *   resizes it when writable, and lets nobody else write or resize it;
 * - raw passes its users' permissions through (and reads consistently);
 * - a backing node is only read, and may change under the overlay only if the overlay's
 *   users allow writes;
 * - an inactive node (the image belongs to a migration source) and a node opened with
 *   force-share=on leave everything to others.
 * The sums are re-applied whenever a claim changes; file-posix's set_perm turns them
 * into OFD locks.
 */
#include "block/block-internal.h"

static BlockPermClaim *find_claim(GArray *claims, const void *holder, guint *index)
{
    for (guint i = 0; i < claims->len; i++) {
        BlockPermClaim *c = &g_array_index(claims, BlockPermClaim, i);
        if (c->holder == holder) {
            if (index) {
                *index = i;
            }
            return c;
        }
    }
    return NULL;
}

/* What bs's users take and share, all together. */
static void cumulative_perm(BlockDriverState *bs, uint64_t *perm, uint64_t *shared)
{
    GArray *claims = bdrv_perm_claims(bs);
    int flags = g_atomic_int_get(&bs->open_flags);

    *perm = 0;
    *shared = BLK_PERM_ALL;
    for (guint i = 0; i < claims->len; i++) {
        const BlockPermClaim *c = &g_array_index(claims, BlockPermClaim, i);
        *perm |= c->perm;
        *shared &= c->shared;
    }
    if (flags & BDRV_O_INACTIVE) {
        /* Another process owns the image until bdrv_activate: hold nothing. */
        *perm = 0;
        *shared = BLK_PERM_ALL;
    }
    if (flags & BDRV_O_FORCE_SHARE) {
        *shared = BLK_PERM_ALL;
    }
}

static bool perm_writable(BlockDriverState *bs)
{
    return !bs->read_only && !(g_atomic_int_get(&bs->open_flags) & BDRV_O_INACTIVE);
}

/* A child that holds the node's data: the format may grow it by writing past its end. */
static void data_child_perm(uint64_t *perm, uint64_t *shared)
{
    *shared &= ~(uint64_t)BLK_PERM_RESIZE;
    if (*perm & BLK_PERM_WRITE_UNCHANGED) {
        *perm |= BLK_PERM_WRITE;
    }
    if (*perm & BLK_PERM_WRITE) {
        *perm |= BLK_PERM_RESIZE;
    }
}

static void file_child_perm(BlockDriverState *bs, uint64_t perm, uint64_t shared,
                            uint64_t *cperm, uint64_t *cshared)
{
    int flags = g_atomic_int_get(&bs->open_flags);

    /* Metadata only (sen-img info, BDRV_O_NO_IO): no consistent read asked, as QEMU. */
    *cperm = perm | ((flags & BDRV_O_NO_IO) ? 0 : BLK_PERM_CONSISTENT_READ);
    *cshared = shared;
    if (bs->drv == &bdrv_raw) {
        return;
    }
    /* Metadata: read consistently, written whenever the node is writable, and never
     * changed under it by somebody else. */
    if (perm_writable(bs)) {
        *cperm |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
    }
    *cshared &= ~(uint64_t)(BLK_PERM_WRITE | BLK_PERM_RESIZE);
    data_child_perm(cperm, cshared);
    if (flags & BDRV_O_INACTIVE) {
        *cshared |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
    }
}

static void backing_child_perm(uint64_t perm, uint64_t shared, uint64_t *cperm,
                               uint64_t *cshared)
{
    *cperm = perm & BLK_PERM_CONSISTENT_READ;
    *cshared = (shared & BLK_PERM_WRITE) ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0;
    *cshared |= BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
}

/* Sets holder's claim on bs (replacing its earlier one) and applies the sum. */
static bool claim_set(BlockDriverState *bs, const void *holder, uint64_t perm,
                      uint64_t shared, Error **errp)
{
    GArray *claims = bdrv_perm_claims(bs);
    guint index = 0;
    BlockPermClaim *c = find_claim(claims, holder, &index);
    BlockPermClaim old = { 0 };
    bool had = c != NULL;

    if (had) {
        old = *c;
        c->perm = perm;
        c->shared = shared;
    } else {
        BlockPermClaim n = { .holder = holder, .perm = perm, .shared = shared };
        g_array_append_val(claims, n);
        index = claims->len - 1;
    }
    if (bdrv_perm_refresh(bs, errp)) {
        return true;
    }
    /* Back to what held before; that applied once, so it applies again. */
    if (had) {
        g_array_index(claims, BlockPermClaim, index) = old;
    } else {
        g_array_remove_index(claims, index);
    }
    bdrv_perm_refresh_less(bs);
    return false;
}

bool bdrv_perm_refresh(BlockDriverState *bs, Error **errp)
{
    uint64_t perm, shared, cperm, cshared;
    BlockDriverState *data = bdrv_get_data_file(bs);

    cumulative_perm(bs, &perm, &shared);
    /* A protocol driver says why it cannot write (auto-read-only's fallback). */
    if ((perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED)) && bs->read_only &&
        !bs->drv->set_perm) {
        error_setg(errp, "Block node is read-only"); /* QEMU's words */
        return false;
    }
    if (bs->drv->set_perm && !bs->drv->set_perm(bs, perm, shared, errp)) {
        return false;
    }
    if (bs->file) {
        file_child_perm(bs, perm, shared, &cperm, &cshared);
        if (!claim_set(bs->file, bs, cperm, cshared, errp)) {
            return false;
        }
    }
    if (data && data != bs->file) {
        cperm = perm;
        cshared = shared;
        data_child_perm(&cperm, &cshared);
        if (!claim_set(data, bs, cperm, cshared, errp)) {
            return false;
        }
    }
    if (bs->backing) {
        backing_child_perm(perm, shared, &cperm, &cshared);
        if (!claim_set(bs->backing, bs, cperm, cshared, errp)) {
            return false;
        }
    }
    return true;
}

bool bdrv_perm_claim(BlockDriverState *bs, const void *holder, uint64_t perm,
                     uint64_t shared, Error **errp)
{
    return claim_set(bs, holder, perm & BLK_PERM_ALL, shared & BLK_PERM_ALL, errp);
}

void bdrv_perm_release(BlockDriverState *bs, const void *holder)
{
    guint index;

    if (!bs || !find_claim(bdrv_perm_claims(bs), holder, &index)) {
        return;
    }
    g_array_remove_index(bdrv_perm_claims(bs), index);
    bdrv_perm_refresh_less(bs);
}

void bdrv_perm_refresh_less(BlockDriverState *bs)
{
    /* Taking less never conflicts; a failure could only keep a lock until close. */
    if (!bdrv_perm_refresh(bs, NULL)) {
        g_debug("%s: could not give up image locks", bs->filename);
    }
}

void bdrv_perm_drop_children(BlockDriverState *bs)
{
    bdrv_perm_release(bs->file, bs);
    bdrv_perm_release(bdrv_get_data_file(bs), bs);
    bdrv_perm_release(bs->backing, bs);
}
