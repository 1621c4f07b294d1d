/*
 * Private to softmmu/cmdline*.c: the parser state that the option groups share.
 *
 * cmdline.c owns the option table, the loop and the checks across groups;
 * cmdline-chardev.c the character devices (-chardev, -serial, -qtest);
 * cmdline-machine.c the machine, accelerator, CPU, RAM and -smp options.
 * Every handler has the CmdlineHandler shape so the table can point at it.
 */
#ifndef SEN_SOFTMMU_CMDLINE_INTERNAL_H
#define SEN_SOFTMMU_CMDLINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "sen/config.h"
#include "sen/error.h"
#include "sen/keyval.h"

enum { SMP_CPUS, SMP_SOCKETS, SMP_DIES, SMP_CLUSTERS, SMP_CORES, SMP_THREADS, SMP_MAXCPUS,
       SMP_NKEYS };

typedef struct CmdlineState {
    MachineConfig *cfg;
    bool exit_early;          /* a help/version option printed its text */

    GPtrArray *chardev_what;  /* char*, parallel to cfg->chardevs; NULL = default serial */
    GPtrArray *serial_what;   /* char*, parallel to cfg->serials */
    bool serial_given;        /* any -serial, even "none": no default serial port */
    char *qtest_what;         /* the -qtest option, for errors found at the end */
    char *initrd_what;
    char *append_what;
    bool accel_given;         /* -accel / -enable-kvm / -machine accel= */
    bool qtest_log_given;

    bool net_given;           /* -netdev or -nic (even none): no default NIC */
    unsigned nic_count;       /* -nic options so far, for their netdev ids */

    bool smp_given;
    bool smp_has[SMP_NKEYS];
    uint64_t smp_val[SMP_NKEYS];
    GString *smp_what;        /* "-smp a -smp b": QEMU merges repeated -smp */

    bool ram_size_given;      /* -m (a memory backend then must match it) */
    char *memory_backend_what;/* the -machine option naming memory-backend= */
    char *numa_what;          /* the first -numa option, for errors found at the end */
    GArray *numa_dists;       /* of the -numa dist entries (cmdline-numa.c), or NULL */
} CmdlineState;

/*
 * One option: what is the option as the user typed it with its argument ("-m 2G"), for
 * error messages; arg is NULL for an option without argument.  A help text sets
 * s->exit_early and returns true.
 */
typedef bool CmdlineHandler(CmdlineState *s, const char *what, const char *arg,
                            Error **errp);

G_GNUC_WARN_UNUSED_RESULT bool cmdline_check_readable(const char *path, int *err);
G_GNUC_WARN_UNUSED_RESULT Keyval *cmdline_parse_opts(const char *what, const char *arg,
                                                     const char *implied, Error **errp);

/* cmdline-chardev.c */
CmdlineHandler cmdline_opt_chardev;
CmdlineHandler cmdline_opt_serial;
CmdlineHandler cmdline_opt_qtest;
CmdlineHandler cmdline_opt_qtest_log;
/* After the last option: the default serial port, chardev:ID references, stdio sharing. */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_chardev_finish(CmdlineState *s, Error **errp);

/* cmdline-monitor.c */
CmdlineHandler cmdline_opt_qmp;
CmdlineHandler cmdline_opt_qmp_pretty;
CmdlineHandler cmdline_opt_mon;
/* After the last option: every monitor's chardev exists and is used by nobody else. */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_monitor_finish(CmdlineState *s, Error **errp);

/* cmdline-block.c */
CmdlineHandler cmdline_opt_drive;
CmdlineHandler cmdline_opt_blockdev;

/* cmdline-firmware.c */
CmdlineHandler cmdline_opt_fw_cfg;
CmdlineHandler cmdline_opt_bios;
CmdlineHandler cmdline_opt_option_rom;
CmdlineHandler cmdline_opt_boot;

/* cmdline-security.c */
CmdlineHandler cmdline_opt_sandbox;
CmdlineHandler cmdline_opt_runas;
CmdlineHandler cmdline_opt_chroot;
CmdlineHandler cmdline_opt_add_fd;
/* cmdline-net.c */
CmdlineHandler cmdline_opt_netdev;
CmdlineHandler cmdline_opt_nic;
/* After the last option: the default NIC unless -nodefaults / -nic / -netdev. */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_net_finish(CmdlineState *s, Error **errp);

/* cmdline-machine.c */
CmdlineHandler cmdline_opt_machine;
CmdlineHandler cmdline_opt_no_acpi;
CmdlineHandler cmdline_opt_accel;
CmdlineHandler cmdline_opt_enable_kvm;
CmdlineHandler cmdline_opt_cpu;
CmdlineHandler cmdline_opt_m;
CmdlineHandler cmdline_opt_smp;
/* After the last option, if -smp was given: derive and check the topology. */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_smp_finish(CmdlineState *s, Error **errp);

/* cmdline-memory.c */
CmdlineHandler cmdline_opt_object;
CmdlineHandler cmdline_opt_mem_path;
CmdlineHandler cmdline_opt_mem_prealloc;
/* -machine memory-backend=, mem-merge=, dump-guest-core= (called by cmdline_opt_machine). */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_machine_memory_opts(CmdlineState *s, Keyval *kv,
                                                           const char *what, Error **errp);
/* After the last option: -machine memory-backend= against -m, -mem-path, defaults. */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_memory_finish(CmdlineState *s, Error **errp);

/* cmdline-numa.c */
CmdlineHandler cmdline_opt_numa;
/* After -smp and the memory options: nodes without gaps, node memory, CPUs, distances. */
G_GNUC_WARN_UNUSED_RESULT bool cmdline_numa_finish(CmdlineState *s, Error **errp);

#endif
