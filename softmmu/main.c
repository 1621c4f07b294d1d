/* sen: parse the command line, build the machine, run it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include "sen/config.h"
#include "sen/error.h"
#include "sen/machine.h"

int main(int argc, char **argv)
{
    Error *err = NULL;
    bool exit_early = false;

    /* A vanished reader of stdout or of a socket must not kill the VM: writes fail with
     * EPIPE instead and the chardev drops the output. */
    signal(SIGPIPE, SIG_IGN);

    MachineConfig *cfg = cmdline_parse(argc, argv, &exit_early, &err);
    if (!cfg) {
        if (exit_early) {
            return 0;
        }
        error_report_err(err);
        return 1;
    }
    Machine *m = machine_create(cfg, &err);
    if (!m) {
        error_report_err(err);
        return 1;
    }
    int status = machine_run(m);
    machine_destroy(m);
    return status;
}
