/*
 * Firmware options (docs/firmware.md): -fw_cfg (files for the firmware), -bios (the
 * firmware image), -option-rom (ROMs the firmware runs), -boot (boot order and menu,
 * handed to the firmware in CMOS and fw_cfg).
 * Messages follow QEMU's (softmmu/vl.c parse_fw_cfg) so scripts see the same text.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "sen/config.h"
#include "sen/device.h"
#include "sen/host-file.h"
#include "sen/hw/fw_cfg.h"
#include "cmdline-internal.h"

static bool nonempty(const char *s)
{
    return s && *s;
}

bool cmdline_opt_fw_cfg(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "name", errp);
    if (!kv) {
        return false;
    }
    const char *name = keyval_get(kv, "name");
    const char *file = keyval_get(kv, "file");
    const char *str = keyval_get(kv, "string");
    const char *gen_id = keyval_get(kv, "gen_id");
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    if (!name || nonempty(file) + nonempty(str) + nonempty(gen_id) != 1) {
        error_setg(errp, "%s: name, plus exactly one of file, string and gen_id, are needed",
                   what);
        return false;
    }
    if (strlen(name) > FW_CFG_MAX_FILE_PATH - 1) {
        error_setg(errp, "%s: name too long (max. %d char)", what, FW_CFG_MAX_FILE_PATH - 1);
        return false;
    }
    if (nonempty(gen_id)) {
        error_setg(errp, "%s: gen_id is not supported (Sen has no vmgenid device)", what);
        return false;
    }
    if (strncmp(name, "opt/", 4) != 0) {
        fprintf(stderr, "sen: %s: warning: externally provided fw_cfg item names should be "
                "prefixed with \"opt/\"\n", what);
    }
    int err;
    if (nonempty(file) && !cmdline_check_readable(file, &err)) {
        error_setg(errp, "%s: can't load %s: %s", what, file, g_strerror(err));
        return false;
    }
    MachineConfig *cfg = s->cfg;
    if (!cfg->fw_cfg_files) {
        cfg->fw_cfg_files = g_ptr_array_new_with_free_func(fw_cfg_file_config_free);
    }
    for (guint i = 0; i < cfg->fw_cfg_files->len; i++) {
        FwCfgFileConfig *f = g_ptr_array_index(cfg->fw_cfg_files, i);
        if (strcmp(f->name, name) == 0) {
            error_setg(errp, "%s: duplicate fw_cfg file name: %s", what, name);
            return false;
        }
    }
    FwCfgFileConfig *f = g_new0(FwCfgFileConfig, 1);
    f->optstr = g_strdup(what);
    f->name = g_strdup(name);
    f->file = nonempty(file) ? g_strdup(file) : NULL;
    f->string = nonempty(str) ? g_strdup(str) : NULL;
    g_ptr_array_add(cfg->fw_cfg_files, f);
    return true;
}

/* QEMU's paths for firmware named without a directory ("-bios bios-256k.bin"). */
static const char *const firmware_dirs[] = { "/usr/share/seabios", HOST_QEMU_DATADIR };

/* arg itself if readable, else (a bare name) the first readable one in firmware_dirs;
 * NULL with *err = why arg itself could not be opened. */
static char *find_firmware_file(const char *arg, int *err)
{
    if (cmdline_check_readable(arg, err)) {
        return g_strdup(arg);
    }
    for (size_t i = 0; !strchr(arg, '/') && i < G_N_ELEMENTS(firmware_dirs); i++) {
        g_autofree char *p = g_build_filename(firmware_dirs[i], arg, NULL);
        int ignored;
        if (cmdline_check_readable(p, &ignored)) {
            return g_steal_pointer(&p);
        }
    }
    return NULL;
}

bool cmdline_opt_bios(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    int err;
    char *path = find_firmware_file(arg, &err);

    if (!path) {
        error_setg_errno(errp, err, "%s: could not load PC BIOS '%s'", what, arg);
        return false;
    }
    g_free(s->cfg->bios);
    s->cfg->bios = path;
    return true;
}

/* QEMU's MAX_OPTION_ROMS. */
#define OPTION_ROMS_MAX 16

bool cmdline_opt_option_rom(CmdlineState *s, const char *what, const char *arg,
                            Error **errp)
{
    MachineConfig *cfg = s->cfg;
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "romfile", errp);
    if (!kv) {
        return false;
    }
    const char *file = keyval_get(kv, "romfile");
    const char *index = keyval_get(kv, "bootindex");
    if (!keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    if (!nonempty(file)) {
        error_setg(errp, "%s: Option ROM file is not specified", what);
        return false;
    }
    int32_t bootindex = -1;
    if (index && !device_parse_bootindex(index, &bootindex)) {
        error_setg(errp, "%s: Parameter 'bootindex' expects a number from -1 to %d", what,
                   INT32_MAX);
        return false;
    }
    if (cfg->option_roms && cfg->option_roms->len >= OPTION_ROMS_MAX) {
        error_setg(errp, "%s: Too many option ROMs (at most %d)", what, OPTION_ROMS_MAX);
        return false;
    }
    int err;
    g_autofree char *path = find_firmware_file(file, &err);
    if (!path) {
        /* QEMU's words; QEMU then runs on without the ROM, Sen stops. */
        error_setg(errp, "%s: Could not open option rom '%s': %s", what, file,
                   g_strerror(err));
        return false;
    }
    if (!cfg->option_roms) {
        cfg->option_roms = g_ptr_array_new_with_free_func(option_rom_config_free);
    }
    OptionRomConfig *r = g_new0(OptionRomConfig, 1);
    r->optstr = g_strdup(what);
    r->path = g_steal_pointer(&path);
    r->bootindex = bootindex;
    g_ptr_array_add(cfg->option_roms, r);
    return true;
}

/* QEMU's validate_bootdevices: letters a..p, each once; the PC takes a, c, d, n. */
static bool check_boot_devices(const char *what, const char *devices, Error **errp)
{
    unsigned seen = 0;

    if (strlen(devices) > 3) {
        error_setg(errp, "%s: Too many boot devices for PC", what);
        return false;
    }
    for (const char *p = devices; *p; p++) {
        if (*p < 'a' || *p > 'p') {
            error_setg(errp, "%s: Invalid boot device '%c'", what, *p);
            return false;
        }
        if (seen & (1u << (*p - 'a'))) {
            error_setg(errp, "%s: Boot device '%c' was given twice", what, *p);
            return false;
        }
        seen |= 1u << (*p - 'a');
        if (!strchr("abcdn", *p)) {
            error_setg(errp, "%s: Invalid boot device for PC: '%c'", what, *p);
            return false;
        }
    }
    return true;
}

static bool get_ms(Keyval *kv, const char *what, const char *key, int64_t *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    uint64_t n;

    if (!v) {
        return true;
    }
    if (strcmp(v, "-1") == 0) {
        *out = -1;
        return true;
    }
    if (!parse_uint(v, &n, NULL) || n > 0xffff) {
        error_setg(errp, "%s: %s=%s: must be a number of milliseconds from 0 to 65535%s",
                   what, key, v, strcmp(key, "reboot-timeout") == 0 ? ", or -1" : "");
        return false;
    }
    *out = (int64_t)n;
    return true;
}

bool cmdline_opt_boot(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "order", errp);
    if (!kv) {
        return false;
    }
    const char *order = keyval_get(kv, "order");
    if (keyval_has(kv, "once") || keyval_has(kv, "splash")) {
        error_setg(errp, "%s: %s is not supported by Sen yet", what,
                   keyval_has(kv, "once") ? "once=" : "splash=");
        return false;
    }
    if (!keyval_get_bool(kv, what, "menu", cfg->boot_menu, &cfg->boot_menu, errp) ||
        !keyval_get_bool(kv, what, "strict", cfg->boot_strict, &cfg->boot_strict, errp) ||
        !get_ms(kv, what, "splash-time", &cfg->boot_menu_wait, errp) ||
        !get_ms(kv, what, "reboot-timeout", &cfg->boot_reboot_timeout, errp) ||
        !keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    if (cfg->boot_menu_wait == -1 && keyval_has(kv, "splash-time")) {
        error_setg(errp, "%s: splash-time=-1: must be a number of milliseconds from 0 to "
                   "65535", what);
        return false;
    }
    if (order) {
        if (!check_boot_devices(what, order, errp)) {
            return false;
        }
        g_free(cfg->boot_order);
        cfg->boot_order = g_strdup(order);
    }
    return true;
}
