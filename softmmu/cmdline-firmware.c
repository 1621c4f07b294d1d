/*
 * Firmware options: -fw_cfg (files for the firmware through fw_cfg, docs/firmware.md).
 * Messages follow QEMU's (softmmu/vl.c parse_fw_cfg) so scripts see the same text.
 */
#include <stdio.h>
#include <string.h>
#include "sen/config.h"
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
