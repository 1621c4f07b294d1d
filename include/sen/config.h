/*
 * MachineConfig: everything the command line asked for, fully validated, as plain data.
 *
 * softmmu/cmdline.c builds it from argv; tests build it by hand.  Creating the machine
 * (softmmu/vm.c) reads it and never re-parses strings, except device properties, which are
 * kept as a Keyval and checked by the device registry when the device is created.
 */
#ifndef SEN_CONFIG_H
#define SEN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "sen/keyval.h"
#include "sen/runstate.h"

typedef struct MemBackendConfig MemBackendConfig;

typedef enum AccelKind {
    ACCEL_KVM,
    ACCEL_QTEST,
} AccelKind;

typedef enum ChardevKind {
    CHARDEV_NULL,
    CHARDEV_STDIO,
    CHARDEV_FILE,   /* output appended/truncated to path, as QEMU: truncate */
    CHARDEV_SOCKET, /* unix (path) or tcp (host, port) */
} ChardevKind;

typedef struct ChardevConfig {
    char *id;
    ChardevKind kind;
    char *path;   /* FILE: output file; SOCKET: unix socket path (NULL for tcp) */
    char *host;   /* SOCKET tcp */
    char *port;   /* SOCKET tcp */
    bool has_fd;  /* SOCKET: fd=N, an inherited socket instead of path/host+port */
    int fd;       /* SOCKET: listening with server=on, else connected */
    bool server;  /* SOCKET: listen (server=on) instead of connect */
    bool wait;    /* SOCKET server: block start-up until a client connects (wait=on) */
    bool mux;     /* STDIO with -nographic: Ctrl-A escapes (Ctrl-A x quits) */
    bool signal;  /* STDIO: Ctrl-C raises SIGINT (signal=on, default) */
} ChardevConfig;

typedef struct DeviceConfig {
    char *driver;   /* "isa-debug-exit" */
    char *optstr;   /* the whole -device argument, for error messages */
    Keyval *props;  /* everything but driver; the registry reads and checks it */
} DeviceConfig;

/*
 * One -drive or -blockdev.  Everything the block layer's bdrv_open() reads is in opts
 * (cache.direct, aio, discard, detect-zeroes, read-only, driver options ...), checked
 * when the drive is opened at machine creation; the rest is decided here.
 */
typedef struct DriveConfig {
    char *optstr;       /* "-drive file=a.img,if=none" as typed, for error messages */
    bool blockdev;      /* -blockdev: a node (id = node-name), no backend of its own */
    char *id;           /* -drive id= (generated "<if><n>" when absent) / node-name */
    char *interface;    /* -drive if=: "none" or "virtio" */
    char *file;         /* -drive file= (NULL for -blockdev: filename is in opts) */
    char *format;       /* -drive format=, NULL = probe */
    bool write_cache;   /* off for cache=writethrough/directsync (flush after writes) */
    int rerror, werror; /* -drive rerror= / werror=: BlockdevOnError (sen/block.h) */
    Keyval *opts;       /* node options for bdrv_open */
} DriveConfig;

/* One -fw_cfg [name=]NAME,file=FILE|string=STR (checked at parse time). */
typedef struct FwCfgFileConfig {
    char *optstr;   /* "-fw_cfg name=opt/x,file=y" as typed, for errors */
    char *name;     /* "opt/org.example/x" */
    char *file;     /* contents from this file (read at machine creation) ... */
    char *string;   /* ... or this string, without its NUL (as QEMU) */
} FwCfgFileConfig;
/* One -option-rom [romfile=]FILE[,bootindex=N] (checked at parse time). */
typedef struct OptionRomConfig {
    char *optstr;       /* "-option-rom x.bin,bootindex=1" as typed, for errors */
    char *path;         /* resolved, readable path of the ROM image */
    int32_t bootindex;  /* -1 = not in the boot order */
} OptionRomConfig;
/* One -add-fd fd=N,set=S[,opaque=STR]: fd joins set S when the machine is created. */
typedef struct AddFdConfig {
    int fd;
    int64_t set;
    char *opaque;
} AddFdConfig;

/* -sandbox on,NAME=allow: optional system call groups added to the allow-list (os/sandbox.c) */
typedef enum SandboxAllow {
    SANDBOX_ALLOW_OBSOLETE = 1 << 0,     /* obsolete=allow: old calls nothing modern needs */
    SANDBOX_ALLOW_ELEVATE = 1 << 1,      /* elevateprivileges=allow: set*uid/gid, setsid */
    SANDBOX_ALLOW_SPAWN = 1 << 2,        /* spawn=allow: fork, execve, wait, kill */
    SANDBOX_ALLOW_RESOURCECTL = 1 << 3,  /* resourcecontrol=allow: affinity, priorities */
} SandboxAllow;

/* One -netdev, or the backend half of a -nic: options with type= and id=. */
typedef struct NetdevConfig {
    char *optstr;       /* "-netdev user,id=n0" as typed, for error messages */
    char *id;
    Keyval *opts;       /* type, id and the backend's options (net/ checks them) */
} NetdevConfig;

/* -global DRIVER.PROP=VALUE: a default for every DRIVER instance, below its own props. */
typedef struct GlobalProp {
    char *driver;
    char *property;
    char *value;
} GlobalProp;

#define SEN_DEFAULT_BIOS "/usr/share/seabios/bios-256k.bin"

/* One -numa node.  Nodes are kept in nodeid order, ids 0..n-1 without gaps. */
typedef struct NumaNodeConfig {
    unsigned nodeid;
    char *memdev;       /* memory backend id, or NULL (then RAM is split evenly) */
    uint64_t size;      /* bytes of guest RAM on this node (set after parsing) */
    GArray *cpus;       /* of unsigned: vCPU indexes on this node */
} NumaNodeConfig;

#define NUMA_MAX_NODES 128
#define NUMA_LOCAL_DISTANCE 10

typedef struct MachineConfig {
    char *machine_type; /* "pc" or "q35" (aliases are folded into these) */
    char *cpu_model;    /* "host", "max", "qemu64", ... (see accel/kvm/kvm-cpuid.c) */
    GPtrArray *cpu_features; /* of char*: "+x2apic", "-tsc-deadline" in command-line order */
    AccelKind accel;

    uint64_t ram_size;  /* bytes */
    /* Guest RAM backing (docs/memory.md).  ram_backend is the backend the machine's RAM
     * comes from: -machine memory-backend=ID, else one built from -mem-path/-mem-prealloc,
     * else NULL (a shared memfd). */
    GPtrArray *mem_backends;   /* of MemBackendConfig* (sen/hostmem.h), from -object */
    GPtrArray *iothreads;      /* of char*: the ids of -object iothread (sen/iothread.h) */
    char *memory_backend;      /* -machine memory-backend=ID */
    bool mem_merge;            /* -machine mem-merge (KSM), default on as QEMU */
    bool dump_guest_core;      /* -machine dump-guest-core, default off (see docs) */
    char *mem_path;            /* -mem-path */
    bool mem_prealloc;         /* -mem-prealloc */
    GPtrArray *numa_nodes;     /* of NumaNodeConfig*, by nodeid; empty = no NUMA */
    uint8_t *numa_distance;    /* nodes x nodes (-numa dist, completed), or NULL */

    unsigned smp_cpus;  /* vCPUs present at start */
    unsigned smp_sockets, smp_dies, smp_cores, smp_threads;
    unsigned smp_maxcpus;

    char *kernel;       /* -kernel path (already checked readable) */
    char *initrd;       /* -initrd as given (multiboot: comma-separated module list) */
    char *append;       /* -append */

    char *name;         /* -name guest=NAME or -name NAME */
    char *pidfile;
    bool daemonize;
    bool start_paused;  /* -S */
    RunStateActions actions; /* -action, -no-reboot, -no-shutdown (QEMU's defaults) */
    bool no_acpi;       /* -machine acpi=off / -no-acpi: no ACPI tables, no PM block */
    bool nodefaults;
    bool nographic;
    bool display_none;
    bool no_pit;        /* -machine pit=off: no in-kernel PIT */
    bool irqchip_split; /* -machine kernel-irqchip=split: LAPICs in KVM, the IOAPIC in
                         * Sen (hw/intc/ioapic.c), no PIC, a counting-only PIT
                         * (hw/timer/i8254.c); docs/machines.md */
    bool pit_discard;   /* -global kvm-pit.lost_tick_policy=discard: no tick re-injection */
    uint32_t kvm_dirty_ring_size; /* -accel kvm,dirty-ring-size=N: entries of each vCPU's
                                   * KVM dirty ring (a power of two); 0 = dirty bitmaps */

    GPtrArray *chardevs; /* of ChardevConfig*: -chardev and implicit ones from -serial */
    GPtrArray *serials;  /* of char*: chardev id for COM1, COM2, ...; NULL entry = none */
    GPtrArray *devices;  /* of DeviceConfig*, in command-line order */
    GPtrArray *globals;  /* of GlobalProp*, -global in order (later ones win); NULL = none */

    char *qtest_chardev; /* -qtest: id of the chardev carrying the qtest protocol */
    char *qtest_log;     /* -qtest-log PATH or NULL */

    GPtrArray *drives;   /* of DriveConfig*, -drive and -blockdev in order; NULL = none */

    GPtrArray *monitors; /* of MonitorConfig* (sen/monitor.h): -qmp, -mon; NULL = none */

    GPtrArray *fw_cfg_files; /* of FwCfgFileConfig*: -fw_cfg, in order; NULL = none */
    GPtrArray *option_roms;  /* of OptionRomConfig*: -option-rom, in order; NULL = none */

    /* Isolation, applied in this order once everything is open (docs/security.md). */
    char *chroot_dir;        /* -chroot DIR */
    char *runas;             /* -runas USER (name or uid:gid) */
    bool sandbox;            /* -sandbox on */
    unsigned sandbox_allow;  /* SandboxAllow bits */
    GPtrArray *add_fds;      /* of AddFdConfig*: -add-fd, in order; NULL = none */

    /* Firmware (docs/firmware.md).  Without -kernel the PC boots firmware: bios, or
     * SeaBIOS (SEN_DEFAULT_BIOS) when NULL. */
    char *bios;             /* -bios, resolved to a readable path */
    char *boot_order;       /* -boot order=: drive letters (a, c, d, n); NULL = "cad" */
    bool boot_menu;         /* -boot menu=on */
    int64_t boot_menu_wait; /* -boot splash-time= (ms) with menu=on; -1 = not given */
    int64_t boot_reboot_timeout; /* -boot reboot-timeout= (ms); -1 = never (default) */
    bool boot_strict;       /* -boot strict=on */
    char *incoming;      /* -incoming URI or "defer"; NULL = none */
    char *loadvm;        /* -loadvm NAME: start from this savevm snapshot; NULL = none */
    GPtrArray *netdevs;  /* of NetdevConfig*: -netdev, -nic backends, the default NAT */
    GPtrArray *nics;     /* of DeviceConfig*: NICs from -nic and the default one, created
                          * after the -device devices */
} MachineConfig;

/* An empty config with QEMU's defaults (pc, 128 MiB, 1 vCPU, kvm). */
MachineConfig *machine_config_new(void);
void machine_config_free(MachineConfig *cfg);
void fw_cfg_file_config_free(gpointer p); /* FwCfgFileConfig */
void option_rom_config_free(gpointer p);  /* OptionRomConfig */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MachineConfig, machine_config_free)
const ChardevConfig *machine_config_find_chardev(const MachineConfig *cfg, const char *id);
MemBackendConfig *machine_config_find_mem_backend(const MachineConfig *cfg, const char *id);
/* Whether an -object iothread has this id. */
bool machine_config_has_iothread(const MachineConfig *cfg, const char *id);
/* The backend the machine's RAM is made from, or NULL for the default (private anonymous
 * memory, mem_backend_config_new_default). */
const MemBackendConfig *machine_config_ram_backend(const MachineConfig *cfg);

/*
 * Parses argv (argv[0] is the program name) into a new config.  -version and -help print
 * to stdout and set *exit_early (returning NULL with no error).  Every bad input fails with
 * one message naming the option and value; nothing is created on disk.
 */
MachineConfig *cmdline_parse(int argc, char **argv, bool *exit_early, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

#endif
