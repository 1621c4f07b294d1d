/* Command-line parsing helpers shared by the parser unit tests. */
#include <string.h>
#include <glib.h>
#include "cmdline-test-util.h"

MachineConfig *ct_parse(const char *line, Error **errp)
{
    g_autofree char *full = g_strdup_printf("sen %s", line);
    g_auto(GStrv) argv = NULL;
    bool exit_early = false;
    int argc;

    g_assert_true(g_shell_parse_argv(full, &argc, &argv, NULL));
    MachineConfig *cfg = cmdline_parse(argc, argv, &exit_early, errp);
    g_assert_false(exit_early);
    return cfg;
}

MachineConfig *ct_parse_ok(const char *line)
{
    Error *err = NULL;
    MachineConfig *cfg = ct_parse(line, &err);
    if (!cfg) {
        g_error("'%s' failed: %s", line, error_get_pretty(err));
    }
    return cfg;
}

void ct_parse_fails(const char *line, const char *want)
{
    Error *err = NULL;
    MachineConfig *cfg = ct_parse(line, &err);
    if (cfg) {
        machine_config_free(cfg);
        g_error("'%s' was accepted", line);
    }
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), want)) {
        g_error("'%s': error '%s' lacks '%s'", line, error_get_pretty(err), want);
    }
    error_free(err);
}
