/*
 * -drive and -blockdev as QEMU spells them.
 *
 * -drive keys Sen decides at parse time (file, format, if, id, cache, readonly, aio,
 * discard, detect-zeroes, media, werror, rerror) become DriveConfig fields or node options; anything else
 * is passed to the format driver as QEMU does (-drive ...,l2-cache-size=1M), which
 * rejects what it does not know when the drive is opened.  -blockdev is a node in dotted
 * keys or JSON, flattened to dotted keys.
 */
#include <string.h>
#include "softmmu/cmdline-internal.h"
#include "sen/block.h"
#include "sen/device.h"

static void drive_config_free(gpointer p)
{
    DriveConfig *d = p;

    g_free(d->optstr);
    g_free(d->id);
    g_free(d->interface);
    g_free(d->file);
    g_free(d->format);
    keyval_free(d->opts);
    g_free(d);
}

/* The -drive (by id) or -blockdev (by node-name) already named id, or NULL. */
static const DriveConfig *drive_id_taken(CmdlineState *s, const char *id)
{
    for (guint i = 0; s->cfg->drives && i < s->cfg->drives->len; i++) {
        const DriveConfig *d = g_ptr_array_index(s->cfg->drives, i);
        if (strcmp(d->id, id) == 0) {
            return d;
        }
    }
    return NULL;
}

/* What holds name among the drives given so far (-drive ids, -blockdev node names). */
static BlockNameHolder drive_name_holder(CmdlineState *s, const char *name)
{
    const DriveConfig *d = drive_id_taken(s, name);
    return !d ? BLOCK_NAME_FREE : d->blockdev ? BLOCK_NAME_NODE : BLOCK_NAME_DRIVE;
}

static void drive_add(CmdlineState *s, DriveConfig *d)
{
    if (!s->cfg->drives) {
        s->cfg->drives = g_ptr_array_new_with_free_func(drive_config_free);
    }
    g_ptr_array_add(s->cfg->drives, d);
}

static bool value_in(const char *v, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(v, *list) == 0) {
            return true;
        }
    }
    return false;
}

/* cache= modes: O_DIRECT, flush ignored, write cache (else flush after every write). */
static bool drive_parse_cache(const char *what, const char *mode, Keyval *opts,
                              bool *write_cache, Error **errp)
{
    static const struct {
        const char *name;
        bool direct, no_flush, writeback;
    } modes[] = {
        { "writeback", false, false, true },  { "none", true, false, true },
        { "writethrough", false, false, false }, { "directsync", true, false, false },
        { "unsafe", false, true, true },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            block_keyval_add(opts, "cache.direct", modes[i].direct ? "on" : "off");
            block_keyval_add(opts, "cache.no-flush", modes[i].no_flush ? "on" : "off");
            *write_cache = modes[i].writeback;
            return true;
        }
    }
    error_setg(errp, "%s: cache=%s: invalid cache option (expected writeback, none, "
               "writethrough, directsync or unsafe)", what, mode);
    return false;
}

/* Checks a value of one of the enumerated keys and moves it into opts as node_key. */
static bool drive_move_enum(Keyval *kv, const char *what, const char *key,
                            const char *node_key, const char *const *allowed,
                            const char *expect, Error **errp)
{
    g_autofree char *v = keyval_take(kv, key);

    if (!v) {
        return true;
    }
    if (!value_in(v, allowed)) {
        error_setg(errp, "%s: %s=%s: expected %s", what, key, v, expect);
        return false;
    }
    block_keyval_add(kv, node_key, v);
    /* The re-added key is for bdrv_open, not a leftover of this parser. */
    return true;
}

/* werror= / rerror= (QEMU: rerror has no enospc, neither has auto), in QEMU's words. */
static bool drive_parse_on_error(const char *what, char *value, bool is_read, int *out,
                                 Error **errp)
{
    g_autofree char *v = value;
    BlockdevOnError e;

    if (!v) {
        return true;
    }
    if (!blockdev_on_error_parse(v, &e) || e == BLOCKDEV_ON_ERROR_AUTO ||
        (is_read && e == BLOCKDEV_ON_ERROR_ENOSPC)) {
        error_setg(errp, "%s: '%s' invalid %s error action", what, v,
                   is_read ? "read" : "write");
        return false;
    }
    *out = (int)e;
    return true;
}

static bool drive_parse_interface(CmdlineState *s, const char *what, DriveConfig *d,
                                  char *iface, Error **errp)
{
    d->interface = iface ? iface : g_strdup("ide");
    if (strcmp(d->interface, "none") == 0) {
        return true;
    }
    if (strcmp(d->interface, "virtio") == 0) {
        if (!device_class_find("virtio-blk-pci")) {
            error_setg(errp, "%s: if=virtio: virtio-blk is not available yet (use if=none "
                       "with an id=)", what);
            return false;
        }
        return true;
    }
    error_setg(errp, "%s: if=%s%s is not supported by Sen (use if=virtio or if=none)", what,
               d->interface, iface ? "" : " (the default)");
    return false;
}

bool cmdline_opt_drive(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    static const char *const aio_modes[] = { "threads", "native", NULL };
    static const char *const discard_modes[] = { "ignore", "off", "unmap", "on", NULL };
    static const char *const dz_modes[] = { "off", "on", "unmap", NULL };
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, NULL, errp);
    DriveConfig *d;
    bool ro = false, direct = false, writeback = true;

    if (!kv) {
        return false;
    }
    d = g_new0(DriveConfig, 1);
    d->optstr = g_strdup(what);
    d->write_cache = true;
    d->rerror = BLOCKDEV_ON_ERROR_REPORT;
    d->werror = BLOCKDEV_ON_ERROR_ENOSPC;
    d->file = keyval_take(kv, "file");
    d->format = keyval_take(kv, "format");
    d->id = keyval_take(kv, "id");
    g_autofree char *iface = keyval_take(kv, "if");
    g_autofree char *cache = keyval_take(kv, "cache");
    g_autofree char *readonly = keyval_take(kv, "readonly");
    g_autofree char *media = keyval_take(kv, "media");
    g_autofree char *aio = keyval_has(kv, "aio") ? g_strdup(keyval_get(kv, "aio")) : NULL;

    if (!drive_parse_interface(s, what, d, g_steal_pointer(&iface), errp)) {
        goto fail;
    }
    if (!drive_parse_on_error(what, keyval_take(kv, "werror"), false, &d->werror, errp) ||
        !drive_parse_on_error(what, keyval_take(kv, "rerror"), true, &d->rerror, errp)) {
        goto fail;
    }
    if (media && strcmp(media, "disk") != 0) {
        error_setg(errp, "%s: media=%s is not supported by Sen (only media=disk)", what,
                   media);
        goto fail;
    }
    if (!d->file || !*d->file) {
        error_setg(errp, "%s: file= is required (Sen has no empty drives)", what);
        goto fail;
    }
    if (d->format && !bdrv_find_format(d->format)) {
        g_autofree char *list = bdrv_format_list();
        error_setg(errp, "%s: format=%s: unknown format (supported: %s)", what, d->format,
                   list);
        goto fail;
    }
    if (d->id && !id_wellformed(d->id)) {
        error_setg(errp, "%s: id=%s: IDs must start with a letter and contain only "
                   "letters, digits, '-', '.' and '_'", what, d->id);
        goto fail;
    }
    if (!d->id) {
        unsigned n = 0;
        do {
            g_free(d->id);
            d->id = g_strdup_printf("%s%u", d->interface, n++);
        } while (drive_id_taken(s, d->id));
    } else if (!block_name_claim(d->id, BLOCK_NAME_DRIVE, drive_name_holder(s, d->id), errp)) {
        error_prepend(errp, "%s: ", what);
        goto fail;
    }
    if (readonly) {
        Error *err = NULL;
        if (!parse_bool(readonly, &ro, &err)) {
            error_propagate(errp, err);
            error_prepend(errp, "%s: readonly=%s: ", what, readonly);
            goto fail;
        }
        block_keyval_add(kv, "read-only", ro ? "on" : "off");
    }
    if (cache && !drive_parse_cache(what, cache, kv, &d->write_cache, errp)) {
        goto fail;
    }
    if (!keyval_get_bool(kv, what, "cache.writeback", d->write_cache, &writeback, errp) ||
        !keyval_get_bool(kv, what, "cache.direct", false, &direct, errp)) {
        goto fail;
    }
    keyval_take(kv, "cache.writeback");
    d->write_cache = writeback;
    if (aio && !value_in(aio, aio_modes)) {
        error_setg(errp, "%s: aio=%s: expected 'threads' or 'native'%s", what, aio,
                   strcmp(aio, "io_uring") == 0 ? " (io_uring is not supported by Sen)" : "");
        goto fail;
    }
    if (aio && strcmp(aio, "native") == 0 && !direct) {
        error_setg(errp, "%s: aio=native was specified, but it requires cache.direct=on "
                   "(cache=none or cache=directsync)", what);
        goto fail;
    }
    if (!drive_move_enum(kv, what, "discard", "discard", discard_modes,
                         "'ignore' or 'unmap'", errp) ||
        !drive_move_enum(kv, what, "detect-zeroes", "detect-zeroes", dz_modes,
                         "'off', 'on' or 'unmap'", errp)) {
        goto fail;
    }
    if (g_strcmp0(keyval_has(kv, "detect-zeroes") ? keyval_get(kv, "detect-zeroes") : NULL,
                  "unmap") == 0 &&
        !(keyval_has(kv, "discard") && value_in(keyval_get(kv, "discard"),
                                                (const char *const[]){ "unmap", "on",
                                                                       NULL }))) {
        error_setg(errp, "%s: detect-zeroes=unmap is not allowed without discard=unmap",
                   what);
        goto fail;
    }
    /* The remaining keys are node options: bdrv_open reads and checks them. */
    for (guint i = 0; i < kv->pairs->len; i++) {
        ((KeyvalPair *)g_ptr_array_index(kv->pairs, i))->used = false;
    }
    d->opts = g_steal_pointer(&kv);
    drive_add(s, d);
    if (strcmp(d->interface, "virtio") == 0) {
        /* As QEMU: if=virtio is shorthand for a virtio-blk-pci device on the drive. */
        DeviceConfig *dev = g_new0(DeviceConfig, 1);
        dev->driver = g_strdup("virtio-blk-pci");
        dev->optstr = g_strdup_printf("virtio-blk-pci,drive=%s", d->id);
        dev->props = block_keyval_new();
        block_keyval_add(dev->props, "drive", d->id);
        g_ptr_array_add(s->cfg->devices, dev);
    }
    return true;

fail:
    drive_config_free(d);
    return false;
}

bool cmdline_opt_blockdev(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = arg[0] == '{' ? block_keyval_from_json(arg, what, errp)
                                         : cmdline_parse_opts(what, arg, NULL, errp);
    DriveConfig *d;

    if (!kv) {
        return false;
    }
    if (!block_blockdev_check_qapi(kv, errp)) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    const char *driver = keyval_has(kv, "driver") ? keyval_get(kv, "driver") : NULL;
    const char *node_name = keyval_has(kv, "node-name") ? keyval_get(kv, "node-name")
                                                        : NULL;
    if (!driver || !*driver) {
        error_setg(errp, "%s: Parameter 'driver' is missing", what);
        return false;
    }
    if (!bdrv_find_format(driver)) {
        g_autofree char *list = bdrv_format_list();
        error_setg(errp, "%s: driver=%s: unknown block driver (supported: %s)", what, driver,
                   list);
        return false;
    }
    if (!node_name || !*node_name) {
        error_setg(errp, "%s: node-name is required for a -blockdev", what);
        return false;
    }
    if (!id_wellformed(node_name)) {
        error_setg(errp, "%s: node-name=%s: invalid node name", what, node_name);
        return false;
    }
    if (!block_name_claim(node_name, BLOCK_NAME_NODE, drive_name_holder(s, node_name), errp)) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    for (guint i = 0; i < kv->pairs->len; i++) {
        ((KeyvalPair *)g_ptr_array_index(kv->pairs, i))->used = false;
    }
    d = g_new0(DriveConfig, 1);
    d->optstr = g_strdup(what);
    d->blockdev = true;
    d->id = g_strdup(node_name);
    d->write_cache = true;
    d->opts = g_steal_pointer(&kv);
    drive_add(s, d);
    return true;
}
