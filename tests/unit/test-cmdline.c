/* softmmu/cmdline.c: argv -> MachineConfig, good and bad command lines. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "sen/config.h"
#include "sen/device.h"

typedef struct Fixture {
    char *dir;     /* scratch directory: must stay empty after every parse */
    char *file;    /* an existing readable file ("kernel", "initrd") */
    char *file2;
} Fixture;

static Fixture fx;

static char *replace_all(char *s, const char *token, const char *by)
{
    g_auto(GStrv) parts = g_strsplit(s, token, -1);
    g_free(s);
    return g_strjoinv(by, parts);
}

/* "@F@" / "@G@" in a test line stand for the two readable files, "@D@" for the dir. */
static char *expand(const char *line)
{
    char *s = g_strdup(line);

    s = replace_all(s, "@F@", fx.file);
    s = replace_all(s, "@G@", fx.file2);
    return replace_all(s, "@D@", fx.dir);
}

static MachineConfig *parse_line(const char *line, bool *exit_early, Error **errp)
{
    g_autofree char *full = g_strdup_printf("sen %s", line);
    g_autofree char *expanded = expand(full);
    g_auto(GStrv) argv = NULL;
    int argc;

    g_assert_true(g_shell_parse_argv(expanded, &argc, &argv, NULL));
    return cmdline_parse(argc, argv, exit_early, errp);
}

static MachineConfig *parse_ok(const char *line)
{
    Error *err = NULL;
    bool exit_early = true;
    MachineConfig *cfg = parse_line(line, &exit_early, &err);

    if (!cfg) {
        g_error("'%s' failed: %s", line, err ? error_get_pretty(err) : "(exit early)");
    }
    g_assert_false(exit_early);
    return cfg;
}

static const ChardevConfig *chardev(const MachineConfig *cfg, const char *id)
{
    const ChardevConfig *c = machine_config_find_chardev(cfg, id);
    if (!c) {
        g_error("no chardev '%s'", id);
    }
    return c;
}

static const char *serial(const MachineConfig *cfg, guint i)
{
    g_assert_cmpuint(i, <, cfg->serials->len);
    return g_ptr_array_index(cfg->serials, i);
}

static void test_defaults(void)
{
    g_autoptr(MachineConfig) cfg = parse_ok("");

    g_assert_cmpstr(cfg->machine_type, ==, "pc");
    g_assert_cmpstr(cfg->cpu_model, ==, "host");
    g_assert_cmpint(cfg->accel, ==, ACCEL_KVM);
    g_assert_cmpuint(cfg->ram_size, ==, 128 << 20);
    g_assert_cmpuint(cfg->smp_cpus, ==, 1);
    g_assert_cmpuint(cfg->smp_maxcpus, ==, 1);
    g_assert_null(cfg->kernel);
    g_assert_cmpuint(cfg->devices->len, ==, 0);
    g_assert_null(cfg->qtest_chardev);
    g_assert_false(cfg->daemonize || cfg->start_paused || cfg->nographic);
    /* COM1 on stdio, without the Ctrl-A mux when there is no -nographic. */
    g_assert_cmpuint(cfg->serials->len, ==, 1);
    g_assert_cmpuint(cfg->chardevs->len, ==, 1);
    const ChardevConfig *c = chardev(cfg, serial(cfg, 0));
    g_assert_cmpstr(c->id, ==, "serial0");
    g_assert_cmpint(c->kind, ==, CHARDEV_STDIO);
    g_assert_false(c->mux);
    g_assert_true(c->signal);
}

static void test_memory(void)
{
    static const struct { const char *line; uint64_t bytes; } cases[] = {
        { "-m 512", UINT64_C(512) << 20 },
        { "-m 1G", UINT64_C(1) << 30 },
        { "-m size=2G", UINT64_C(2) << 30 },
        { "-m 1T", UINT64_C(1) << 40 },
        { "--m 64M", UINT64_C(64) << 20 },
        { "-m 1.5G", UINT64_C(3) << 29 },
        { "-m 2048k", UINT64_C(2) << 20 },
        { "-m 1000001k", UINT64_C(1000008) * 1024 }, /* rounded up to 8 KiB as in QEMU */
        { "-m 64M -m 256M", UINT64_C(256) << 20 },
        { "-m 1M", UINT64_C(1) << 20 },
        { "-m 4P", UINT64_C(4) << 50 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_assert_cmpuint(cfg->ram_size, ==, cases[i].bytes);
    }
}

static void test_smp(void)
{
    static const struct {
        const char *line;
        unsigned cpus, sockets, dies, cores, threads, maxcpus;
    } cases[] = {
        { "-smp 1", 1, 1, 1, 1, 1, 1 },
        { "-smp 4", 4, 1, 1, 4, 1, 4 },            /* prefer cores (QEMU >= 6.2) */
        { "-smp cpus=4", 4, 1, 1, 4, 1, 4 },
        { "-smp 4,sockets=2", 4, 2, 1, 2, 1, 4 },
        { "-smp 4,cores=2", 4, 2, 1, 2, 1, 4 },
        { "-smp 8,sockets=2,threads=2", 8, 2, 1, 2, 2, 8 },
        { "-smp 8,sockets=2,cores=2", 8, 2, 1, 2, 2, 8 },
        { "-smp sockets=2,cores=2,threads=2", 8, 2, 1, 2, 2, 8 },
        { "-smp 2,maxcpus=4", 2, 1, 1, 4, 1, 4 },
        { "-smp maxcpus=4", 4, 1, 1, 4, 1, 4 },
        { "-smp 4,dies=2", 4, 1, 2, 2, 1, 4 },
        { "-smp 2,sockets=1,dies=1,clusters=1,cores=2,threads=1", 2, 1, 1, 2, 1, 2 },
        { "-smp 2 -smp sockets=2", 2, 2, 1, 1, 1, 2 }, /* repeated -smp merge, as in QEMU */
        { "-smp 4,cpus=2", 2, 1, 1, 2, 1, 2 },
        { "-smp 1024", 1024, 1, 1, 1024, 1, 1024 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_test_message("%s", cases[i].line);
        g_assert_cmpuint(cfg->smp_cpus, ==, cases[i].cpus);
        g_assert_cmpuint(cfg->smp_sockets, ==, cases[i].sockets);
        g_assert_cmpuint(cfg->smp_dies, ==, cases[i].dies);
        g_assert_cmpuint(cfg->smp_cores, ==, cases[i].cores);
        g_assert_cmpuint(cfg->smp_threads, ==, cases[i].threads);
        g_assert_cmpuint(cfg->smp_maxcpus, ==, cases[i].maxcpus);
    }
}

static void test_serial_defaults(void)
{
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-nographic");
        const ChardevConfig *c = chardev(cfg, serial(cfg, 0));
        g_assert_cmpint(c->kind, ==, CHARDEV_STDIO);
        g_assert_true(c->mux);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-nodefaults");
        g_assert_cmpuint(cfg->serials->len, ==, 0);
        g_assert_cmpuint(cfg->chardevs->len, ==, 0);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-nodefaults -nographic -serial stdio");
        const ChardevConfig *c = chardev(cfg, serial(cfg, 0));
        g_assert_cmpint(c->kind, ==, CHARDEV_STDIO);
        g_assert_false(c->mux);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-display none");
        g_assert_true(cfg->display_none);
        g_assert_cmpint(chardev(cfg, serial(cfg, 0))->kind, ==, CHARDEV_NULL);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-display none -nographic");
        const ChardevConfig *c = chardev(cfg, serial(cfg, 0));
        g_assert_cmpint(c->kind, ==, CHARDEV_STDIO);
        g_assert_true(c->mux);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-daemonize");
        g_assert_true(cfg->daemonize);
        g_assert_cmpint(chardev(cfg, serial(cfg, 0))->kind, ==, CHARDEV_NULL);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-serial none");
        g_assert_cmpuint(cfg->serials->len, ==, 0);
        g_assert_cmpuint(cfg->chardevs->len, ==, 0);
    }
    {
        /* "none" takes no COM slot, as in QEMU. */
        g_autoptr(MachineConfig) cfg = parse_ok("-serial none -serial null");
        g_assert_cmpuint(cfg->serials->len, ==, 1);
        g_assert_cmpint(chardev(cfg, serial(cfg, 0))->kind, ==, CHARDEV_NULL);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-serial mon:stdio");
        g_assert_true(chardev(cfg, serial(cfg, 0))->mux);
    }
    {
        g_autoptr(MachineConfig) cfg =
            parse_ok("-serial stdio -serial null -serial file:@D@/com3.log "
                     "-serial unix:@D@/com4.sock,server=on,wait=off");
        g_assert_cmpuint(cfg->serials->len, ==, 4);
        g_assert_cmpstr(serial(cfg, 0), ==, "serial0");
        g_assert_cmpint(chardev(cfg, "serial0")->kind, ==, CHARDEV_STDIO);
        g_assert_cmpint(chardev(cfg, "serial1")->kind, ==, CHARDEV_NULL);
        const ChardevConfig *f = chardev(cfg, "serial2");
        g_assert_cmpint(f->kind, ==, CHARDEV_FILE);
        g_autofree char *log = g_build_filename(fx.dir, "com3.log", NULL);
        g_assert_cmpstr(f->path, ==, log);
        const ChardevConfig *u = chardev(cfg, "serial3");
        g_assert_cmpint(u->kind, ==, CHARDEV_SOCKET);
        g_assert_true(u->server);
        g_assert_false(u->wait);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-serial chardev:c0 -chardev null,id=c0");
        g_assert_cmpstr(serial(cfg, 0), ==, "c0");
        g_assert_cmpuint(cfg->chardevs->len, ==, 1);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-serial tcp:127.0.0.1:4444,server=on");
        const ChardevConfig *c = chardev(cfg, "serial0");
        g_assert_cmpstr(c->host, ==, "127.0.0.1");
        g_assert_cmpstr(c->port, ==, "4444");
        g_assert_null(c->path);
        g_assert_true(c->server);
        g_assert_true(c->wait);
    }
}

static void test_chardevs(void)
{
    g_autoptr(MachineConfig) cfg = parse_ok(
        "-nodefaults -chardev socket,id=mon0,path=@D@/m.sock,server=on,wait=off "
        "-chardev socket,id=t,host=localhost,port=1234 "
        "-chardev file,id=log,path=@D@/a,,b.log -chardev null,id=nul "
        "-chardev stdio,id=con,signal=off,mux=on");

    g_assert_cmpuint(cfg->chardevs->len, ==, 5);
    const ChardevConfig *c = chardev(cfg, "mon0");
    g_assert_cmpint(c->kind, ==, CHARDEV_SOCKET);
    g_assert_true(c->server);
    g_assert_false(c->wait);
    g_assert_null(c->host);
    c = chardev(cfg, "t");
    g_assert_cmpstr(c->host, ==, "localhost");
    g_assert_cmpstr(c->port, ==, "1234");
    g_assert_false(c->server);
    c = chardev(cfg, "log");
    g_assert_cmpint(c->kind, ==, CHARDEV_FILE);
    g_assert_true(g_str_has_suffix(c->path, "/a,b.log"));
    g_assert_cmpint(chardev(cfg, "nul")->kind, ==, CHARDEV_NULL);
    c = chardev(cfg, "con");
    g_assert_false(c->signal);
    g_assert_true(c->mux);
    g_assert_null(machine_config_find_chardev(cfg, "serial0"));
}

static void test_qtest(void)
{
    {
        g_autoptr(MachineConfig) cfg =
            parse_ok("-qtest unix:@D@/q.sock -qtest-log none -display none");
        g_assert_cmpint(cfg->accel, ==, ACCEL_QTEST);
        g_assert_cmpstr(cfg->qtest_chardev, ==, "qtest");
        const ChardevConfig *c = chardev(cfg, "qtest");
        g_assert_cmpint(c->kind, ==, CHARDEV_SOCKET);
        g_assert_false(c->server);
        g_assert_true(g_str_has_suffix(c->path, "/q.sock"));
        g_assert_null(cfg->qtest_log);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-accel kvm -qtest unix:@D@/q.sock "
                                                "-qtest-log @D@/log");
        g_assert_cmpint(cfg->accel, ==, ACCEL_KVM);
        g_assert_true(g_str_has_suffix(cfg->qtest_log, "/log"));
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok("-chardev socket,id=qt,path=@D@/x "
                                                "-qtest chardev:qt -machine accel=qtest");
        g_assert_cmpstr(cfg->qtest_chardev, ==, "qt");
        g_assert_null(machine_config_find_chardev(cfg, "qtest"));
    }
}

static void test_machine_accel_cpu(void)
{
    static const struct { const char *line; AccelKind accel; } cases[] = {
        { "-machine pc-i440fx-7.2,accel=qtest", ACCEL_QTEST },
        { "-M pc", ACCEL_KVM },
        { "-machine type=pc,accel=kvm", ACCEL_KVM },
        { "-machine accel=tcg:kvm", ACCEL_KVM },
        { "-accel accel=kvm", ACCEL_KVM },
        { "-accel qtest", ACCEL_QTEST },
        { "-accel qtest -enable-kvm", ACCEL_KVM },
        { "-cpu max", ACCEL_KVM },
        { "-cpu host,-arch-capabilities", ACCEL_KVM },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_assert_cmpstr(cfg->machine_type, ==, "pc");
        g_assert_cmpstr(cfg->cpu_model, ==, strstr(cases[i].line, "max") ? "max" : "host");
        g_assert_cmpint(cfg->accel, ==, cases[i].accel);
    }
}

static void test_machine_types_and_irqchip(void)
{
    static const struct {
        const char *line;
        const char *type;
        bool split;
    } cases[] = {
        { "", "pc", false },
        { "-M q35", "q35", false },
        { "-M pc-q35-7.2", "q35", false },
        { "-M pc-i440fx-7.2", "pc", false },
        { "-M q35,kernel-irqchip=split", "q35", true },
        { "-machine kernel-irqchip=split", "pc", true },
        { "-accel kvm,kernel-irqchip=split", "pc", true },
        { "-M q35,kernel-irqchip=split -accel kvm,kernel-irqchip=on", "q35", false },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_assert_cmpstr(cfg->machine_type, ==, cases[i].type);
        g_assert_cmpint(cfg->irqchip_split, ==, cases[i].split);
    }
}

/* -accel kvm,dirty-ring-size=N: entries, a power of two, 0 (the default) = off. */
static void test_dirty_ring_size(void)
{
    static const struct {
        const char *line;
        uint32_t size;
    } cases[] = {
        { "", 0 },
        { "-accel kvm", 0 },
        { "-accel kvm,dirty-ring-size=0", 0 },
        { "-accel kvm,dirty-ring-size=1", 1 },
        { "-accel kvm,dirty-ring-size=4096", 4096 },
        { "-accel kvm,dirty-ring-size=0x10000", 65536 },
        { "-accel kvm,dirty-ring-size=2147483648", 2147483648u },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_assert_cmpuint(cfg->kvm_dirty_ring_size, ==, cases[i].size);
    }
}

static void test_cpu_models_and_globals(void)
{
    g_autoptr(MachineConfig) cfg = parse_ok(
        "-cpu qemu64,+x2apic,-tsc_deadline,pdpe1gb=on,sse4.1=off,host-phys-bits "
        "-machine accel=kvm,pit=off -global kvm-pit.lost_tick_policy=discard "
        "-global isa-debug-exit.iobase=0xf4 -global driver=isa-debug-exit,property=iosize,"
        "value=4");
    g_assert_cmpstr(cfg->cpu_model, ==, "qemu64");
    g_assert_cmpuint(cfg->cpu_features->len, ==, 4);
    g_assert_cmpstr(g_ptr_array_index(cfg->cpu_features, 0), ==, "+x2apic");
    g_assert_cmpstr(g_ptr_array_index(cfg->cpu_features, 1), ==, "-tsc-deadline");
    g_assert_cmpstr(g_ptr_array_index(cfg->cpu_features, 2), ==, "+pdpe1gb");
    g_assert_cmpstr(g_ptr_array_index(cfg->cpu_features, 3), ==, "-sse4-1");
    g_assert_true(cfg->no_pit);
    g_assert_true(cfg->pit_discard);
    g_assert_cmpuint(cfg->globals->len, ==, 2);
    GlobalProp *g = g_ptr_array_index(cfg->globals, 1);
    g_assert_cmpstr(g->driver, ==, "isa-debug-exit");
    g_assert_cmpstr(g->property, ==, "iosize");
    g_assert_cmpstr(g->value, ==, "4");

    g_autoptr(MachineConfig) def = parse_ok("-cpu Haswell");
    g_assert_false(def->no_pit);
    g_assert_false(def->pit_discard);
    g_assert_null(def->globals);
    g_assert_cmpuint(def->cpu_features->len, ==, 0);
}

/* -machine acpi=on|off|auto (QEMU's OnOffAuto) and the older -no-acpi. */
static void test_machine_acpi(void)
{
    static const struct { const char *line; bool no_acpi; } cases[] = {
        { "-M pc", false },
        { "-machine pc,acpi=off", true },
        { "-machine acpi=on", false },
        { "-machine pc,acpi=auto", false },
        { "-no-acpi", true },
        { "-no-acpi -machine acpi=on", false },
        { "-machine acpi=off -M pc", true },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_assert_cmpint(cfg->no_acpi, ==, cases[i].no_acpi);
    }
}

static void test_boot_and_misc(void)
{
    g_autoptr(MachineConfig) cfg = parse_ok(
        "-kernel @F@ -initrd '@F@ arg1 arg2,@G@' -append 'console=ttyS0 panic=-1' "
        "-name guest=vm1,debug-threads=on -pidfile @D@/pid -S -no-reboot -no-shutdown "
        "-device isa-debug-exit,iobase=0xf4,iosize=0x04 -device isa-debug-exit");

    g_assert_cmpstr(cfg->kernel, ==, fx.file);
    g_autofree char *initrd = g_strdup_printf("%s arg1 arg2,%s", fx.file, fx.file2);
    g_assert_cmpstr(cfg->initrd, ==, initrd);
    g_assert_cmpstr(cfg->append, ==, "console=ttyS0 panic=-1");
    g_assert_cmpstr(cfg->name, ==, "vm1");
    g_assert_true(g_str_has_suffix(cfg->pidfile, "/pid"));
    g_assert_true(cfg->start_paused);
    g_assert_cmpint(cfg->actions.reboot, ==, REBOOT_ACTION_SHUTDOWN);
    g_assert_cmpint(cfg->actions.shutdown, ==, SHUTDOWN_ACTION_PAUSE);
    g_assert_cmpuint(cfg->devices->len, ==, 2);
    DeviceConfig *d = g_ptr_array_index(cfg->devices, 0);
    g_assert_cmpstr(d->driver, ==, "isa-debug-exit");
    g_assert_cmpstr(d->optstr, ==, "isa-debug-exit,iobase=0xf4,iosize=0x04");
    g_assert_false(keyval_has(d->props, "driver"));
    g_assert_cmpstr(keyval_get(d->props, "iobase"), ==, "0xf4");
    g_assert_cmpstr(keyval_get(d->props, "iosize"), ==, "0x04");
    d = g_ptr_array_index(cfg->devices, 1);
    g_assert_cmpuint(d->props->pairs->len, ==, 0);

    g_autoptr(MachineConfig) cfg2 = parse_ok("-name myvm");
    g_assert_cmpstr(cfg2->name, ==, "myvm");
}

/* Options that print and stop: stdout carries the text, nothing else happens. */
static const struct { const char *line; const char *out; } early[] = {
    { "-version", "Sen emulator version " },
    { "--version", "(QEMU-compatible)" },
    { "-help", "-smp " },
    { "-h", "-chardev " },
    { "-M help", "pc" },
    { "-machine help", "Standard PC" },
    { "-device help", "isa-debug-exit" },
    { "-device isa-debug-exit,help", "isa-debug-exit" },
    { "-chardev help", "socket" },
    { "-cpu help", "host" },
    { "-cpu ?", "qemu64" },
    { "-device ?", "pc-testdev" },
    { "-action help", "panic=pause|shutdown|exit-failure|none" },
    { "-accel help", "qtest" },
    { "-display help", "none" },
    /* The first help wins; what follows is not even looked at. */
    { "-version -foo", "Sen emulator version" },
};

/* The default NIC (QEMU's: NAT on the board's NIC), -nic, and what turns it off. */
static void test_net(void)
{
    {
        g_autoptr(MachineConfig) cfg = parse_ok("");
        g_assert_cmpuint(cfg->netdevs->len, ==, 1);
        g_assert_cmpuint(cfg->nics->len, ==, 1);
        NetdevConfig *n = g_ptr_array_index(cfg->netdevs, 0);
        g_assert_cmpstr(n->id, ==, "__org.qemu.nic0");
        g_assert_cmpstr(keyval_get(n->opts, "type"), ==, "user");
        DeviceConfig *d = g_ptr_array_index(cfg->nics, 0);
        g_assert_cmpstr(d->driver, ==, "virtio-net-pci");
        g_assert_cmpstr(keyval_get(d->props, "netdev"), ==, "__org.qemu.nic0");
    }
    static const char *const no_default[] = { "-nodefaults", "-nic none",
                                              "-netdev user,id=n0" };
    for (unsigned i = 0; i < G_N_ELEMENTS(no_default); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(no_default[i]);
        g_assert_cmpuint(cfg->nics->len, ==, 0);
        g_assert_cmpuint(cfg->netdevs->len, ==, i == 2 ? 1 : 0);
    }
    {
        g_autoptr(MachineConfig) cfg = parse_ok(
            "-nic user,mac=52:54:00:aa:bb:cc,hostfwd=udp::5555-:7 -nic user,net=10.1.0.0/24");
        g_assert_cmpuint(cfg->netdevs->len, ==, 2);
        g_assert_cmpuint(cfg->nics->len, ==, 2);
        NetdevConfig *n = g_ptr_array_index(cfg->netdevs, 1);
        g_assert_cmpstr(n->id, ==, "__org.qemu.nic1");
        g_assert_cmpstr(keyval_get(n->opts, "net"), ==, "10.1.0.0/24");
        n = g_ptr_array_index(cfg->netdevs, 0);
        g_assert_cmpstr(keyval_get(n->opts, "hostfwd"), ==, "udp::5555-:7");
        g_assert_false(keyval_has(n->opts, "mac"));
        DeviceConfig *d = g_ptr_array_index(cfg->nics, 0);
        g_assert_cmpstr(keyval_get(d->props, "mac"), ==, "52:54:00:aa:bb:cc");
    }
}

static void test_exit_early(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(early); i++) {
        g_autofree char *path = g_strdup_printf("/cmdline/exit-early/subprocess/%zu", i);
        g_autofree char *pattern = g_strdup_printf("*%s*", early[i].out);
        g_test_trap_subprocess(path, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        g_test_trap_assert_stdout(pattern);
        g_test_trap_assert_stderr("");
    }
}

/* -action in argv order with -no-reboot / -no-shutdown: the last word on a key wins, as
 * QEMU 7.2's merged -action options; QEMU's defaults otherwise. */
static void test_action(void)
{
    static const struct {
        const char *line;
        RebootAction reboot;
        ShutdownAction shutdown;
        PanicAction panic;
        WatchdogAction watchdog;
    } cases[] = {
        { "", REBOOT_ACTION_RESET, SHUTDOWN_ACTION_POWEROFF, PANIC_ACTION_SHUTDOWN,
          WATCHDOG_ACTION_RESET },
        { "-action ''", REBOOT_ACTION_RESET, SHUTDOWN_ACTION_POWEROFF, PANIC_ACTION_SHUTDOWN,
          WATCHDOG_ACTION_RESET },
        { "-action reboot=shutdown,shutdown=pause,panic=exit-failure,watchdog=inject-nmi",
          REBOOT_ACTION_SHUTDOWN, SHUTDOWN_ACTION_PAUSE, PANIC_ACTION_EXIT_FAILURE,
          WATCHDOG_ACTION_INJECT_NMI },
        { "-action panic=pause,panic=none", REBOOT_ACTION_RESET, SHUTDOWN_ACTION_POWEROFF,
          PANIC_ACTION_NONE, WATCHDOG_ACTION_RESET },
        { "-action panic=pause -action watchdog=debug", REBOOT_ACTION_RESET,
          SHUTDOWN_ACTION_POWEROFF, PANIC_ACTION_PAUSE, WATCHDOG_ACTION_DEBUG },
        { "-no-reboot -action reboot=reset", REBOOT_ACTION_RESET, SHUTDOWN_ACTION_POWEROFF,
          PANIC_ACTION_SHUTDOWN, WATCHDOG_ACTION_RESET },
        { "-action reboot=reset -no-reboot", REBOOT_ACTION_SHUTDOWN,
          SHUTDOWN_ACTION_POWEROFF, PANIC_ACTION_SHUTDOWN, WATCHDOG_ACTION_RESET },
        { "-no-shutdown -action shutdown=poweroff,panic=pause", REBOOT_ACTION_RESET,
          SHUTDOWN_ACTION_POWEROFF, PANIC_ACTION_PAUSE, WATCHDOG_ACTION_RESET },
        { "-action shutdown=poweroff -no-shutdown", REBOOT_ACTION_RESET,
          SHUTDOWN_ACTION_PAUSE, PANIC_ACTION_SHUTDOWN, WATCHDOG_ACTION_RESET },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(MachineConfig) cfg = parse_ok(cases[i].line);
        g_test_message("%s", cases[i].line);
        g_assert_cmpint(cfg->actions.reboot, ==, cases[i].reboot);
        g_assert_cmpint(cfg->actions.shutdown, ==, cases[i].shutdown);
        g_assert_cmpint(cfg->actions.panic, ==, cases[i].panic);
        g_assert_cmpint(cfg->actions.watchdog, ==, cases[i].watchdog);
    }
    /* What a panic does under them (QEMU's qemu_system_guest_panicked). */
    RunStateActions a = RUNSTATE_ACTIONS_DEFAULT;
    g_assert_cmpint(runstate_action_on_panic(&a), ==, GUEST_PANIC_ACTION_POWEROFF);
    a.shutdown = SHUTDOWN_ACTION_PAUSE;
    g_assert_cmpint(runstate_action_on_panic(&a), ==, GUEST_PANIC_ACTION_PAUSE);
    a.panic = PANIC_ACTION_EXIT_FAILURE;
    g_assert_cmpint(runstate_action_on_panic(&a), ==, GUEST_PANIC_ACTION_POWEROFF);
    a.panic = PANIC_ACTION_NONE;
    g_assert_cmpint(runstate_action_on_panic(&a), ==, GUEST_PANIC_ACTION_RUN);
    a.panic = PANIC_ACTION_PAUSE;
    g_assert_cmpint(runstate_action_on_panic(&a), ==, GUEST_PANIC_ACTION_PAUSE);
}

static void test_exit_early_child(gconstpointer data)
{
    Error *err = NULL;
    bool exit_early = false;
    MachineConfig *cfg = parse_line(early[GPOINTER_TO_UINT(data)].line, &exit_early, &err);

    g_assert_null(cfg);
    g_assert_null(err);
    g_assert_true(exit_early);
}

/*
 * Bad command lines: each fails with one message that starts with the option as typed and
 * contains the given text.  tests/functional/test_cmdline_errors.py runs the same kind of
 * table against the sen binary.
 */
static const struct { const char *line; const char *prefix; const char *text; } bad[] = {
    { "-foo", "-foo", "-foo: invalid option" },
    /* QEMU 7.2's words for -action. */
    { "-action panic=foo", "-action panic=foo",
      "-action panic=foo: Parameter 'panic' does not accept value 'foo'" },
    { "-action foo=bar", "-action foo=bar", "-action foo=bar: Invalid parameter 'foo'" },
    { "-action shutdown=pause,reboot=RESET", "-action shutdown=pause,reboot=RESET",
      "Parameter 'reboot' does not accept value 'RESET'" },
    { "-action reboot=none", "-action reboot=none",
      "Parameter 'reboot' does not accept value 'none'" },
    { "-action watchdog=bogus", "-action watchdog=bogus",
      "Parameter 'watchdog' does not accept value 'bogus'" },
    { "-action panic=pause,,", "-action panic=pause,,",
      "Parameter 'panic' does not accept value 'pause,'" },
    { "-action panic=pause -action reboot=bad", "-action reboot=bad",
      "Parameter 'reboot' does not accept value 'bad'" },
    { "-machine pc,acpi=maybe", "-machine pc,acpi=maybe", "acpi=maybe" },
    { "--bar 1", "--bar", "invalid option" },
    { "-", "-", "invalid option" },
    { "disk.img", "disk.img", "not supported" },
    { "-drive file=x.img", "-drive file=x.img", "if=ide (the default) is not supported" },
    { "-net nic", "-net", "not supported by Sen yet" },
    { "-netdev foo,id=n0", "-netdev foo,id=n0", "Parameter 'type' does not accept value 'foo'" },
    { "-netdev user", "-netdev user", "Parameter 'id' is missing" },
    { "-netdev user,id=n0 -netdev user,id=n0", "-netdev user,id=n0", "Duplicate ID 'n0'" },
    { "-nic user,model=e1000", "-nic user,model=e1000", "unsupported NIC model 'e1000'" },
    { "-nic user,mac=52:54:00:12:34", "-nic user,mac=", "not a MAC address" },
    { "-m", "-m", "-m: requires an argument" },
    { "-m 12Q", "-m 12Q", "-m 12Q: invalid size '12Q'" },
    { "-m -1", "-m -1", "invalid size" },
    { "-m 1.5", "-m 1.5", "needs a unit" },
    { "-m 0", "-m 0", "too small" },
    { "-m 512k", "-m 512k", "too small" },
    { "-m 8P", "-m 8P", "too large" },
    { "-m 99999999999999999999", "-m 9999", "invalid size" },
    { "-m 1G,maxmem=4G", "-m 1G,maxmem=4G", "memory hotplug is not supported yet" },
    { "-m size=1G,slots=2", "-m size", "memory hotplug is not supported yet" },
    { "-m 1G,foo=1", "-m 1G,foo=1", "invalid parameter 'foo'" },
    { "-smp 0", "-smp 0", "-smp 0: Invalid SMP CPUs 0" },
    { "-smp x", "-smp x", "cpus=x" },
    { "-smp -1", "-smp -1", "cpus=-1" },
    { "-smp 4,sockets=3", "-smp 4,sockets=3", "product of the hierarchy must match maxcpus" },
    { "-smp 4,maxcpus=2", "-smp 4,maxcpus=2", "maxcpus must be equal to or greater than smp" },
    { "-smp 2,cores=4", "-smp 2,cores=4", "product of the hierarchy" },
    { "-smp 2000", "-smp 2000", "The max CPUs supported by machine 'pc' is 1024" },
    { "-smp 4,threads=0", "-smp 4,threads=0", "must be greater than zero" },
    { "-smp 4,foo=1", "-smp 4,foo=1", "invalid parameter 'foo'" },
    { "-smp 4,clusters=2", "-smp 4,clusters=2", "clusters not supported" },
    { "-smp 99999999999", "-smp 99999999999", "too large" },
    { "-smp 65536,sockets=65536,cores=65536,threads=65536,dies=65536", "-smp 65536",
      "product of the hierarchy" },
    { "-machine microvm", "-machine microvm", "unsupported machine type 'microvm'" },
    { "-M microvm", "-M microvm", "Use -machine help to list supported machines" },
    { "-M pc,usb=off", "-M pc,usb=off", "invalid parameter 'usb'" },
    { "-machine accel=tcg", "-machine accel=tcg", "'tcg'" },
    { "-cpu pentium9", "-cpu pentium9", "unable to find CPU model 'pentium9'" },
    { "-cpu qemu64,+bogus", "-cpu qemu64,+bogus", "Property 'bogus' not found" },
    { "-cpu host,x2apic=maybe", "-cpu host,x2apic=maybe", "expects 'on' or 'off'" },
    { "-global", "-global", "requires an argument" },
    { "-global foo", "-global foo", "expected DRIVER.PROPERTY=VALUE" },
    { "-global .x=1", "-global .x=1", "expected DRIVER.PROPERTY=VALUE" },
    { "-global nodev.x=1", "-global nodev.x=1", "'nodev' is not a valid device model name" },
    { "-global isa-debug-exit.nope=1", "-global isa-debug-exit.nope=1",
      "property 'nope' not found in 'isa-debug-exit'" },
    { "-global isa-debug-exit.iobase=zz", "-global isa-debug-exit.iobase=zz",
      "'zz' is not a valid" },
    { "-global kvm-pit.lost_tick_policy=slew", "-global kvm-pit", "'slew' is not supported" },
    { "-global kvm-pit.foo=1", "-global kvm-pit.foo=1", "property 'foo' not found in 'kvm-pit'" },
    { "-global driver=isa-debug-exit,property=iobase", "-global driver=",
      "expected driver=,property=,value=" },
    { "-machine pit=maybe", "-machine pit=maybe", "pit" },
    { "-accel tcg", "-accel tcg", "accelerator 'tcg' is not supported" },
    { "-accel kvm,kernel-irqchip=off", "-accel kvm", "kernel-irqchip=off is not supported" },
    /* QEMU 7.2's messages for dirty-ring-size (KVM's own limits: test-kvm). */
    { "-accel kvm,dirty-ring-size=3", "-accel kvm,dirty-ring-size=3",
      "dirty-ring-size must be a power of two." },
    { "-accel kvm,dirty-ring-size=-1", "-accel kvm,dirty-ring-size=-1",
      "Parameter 'dirty-ring-size' expects uint32_t" },
    { "-accel kvm,dirty-ring-size=4294967296", "-accel kvm,dirty-ring-size=4294967296",
      "Parameter 'dirty-ring-size' expects uint32_t" },
    { "-accel kvm,dirty-ring-size=abc", "-accel kvm,dirty-ring-size=abc",
      "Parameter 'dirty-ring-size' expects uint64" },
    { "-accel kvm,dirty-ring-size=", "-accel kvm,dirty-ring-size=",
      "Parameter 'dirty-ring-size' expects uint64" },
    { "-accel qtest,dirty-ring-size=1024", "-accel qtest,dirty-ring-size=1024",
      "Property 'qtest-accel.dirty-ring-size' not found" },
    { "-machine kernel-irqchip=maybe", "-machine kernel-irqchip=maybe",
      "kernel-irqchip=maybe: expected on, split or off" },
    { "-M q36", "-M q36", "unsupported machine type 'q36'" },
    { "-kernel /nonexistent/vmlinuz", "-kernel /nonexistent/vmlinuz",
      "could not load kernel '/nonexistent/vmlinuz': No such file or directory" },
    { "-kernel @D@", "-kernel ", "Is a directory" },
    { "-initrd @F@", "-initrd ", "only allowed with -kernel" },
    { "-kernel @F@ -initrd '@F@ a,/nonexistent/mod b'", "-initrd ",
      "could not load initrd '/nonexistent/mod'" },
    { "-kernel @F@ -initrd @F@,,", "-initrd ", "No such file" },
    { "-append console=ttyS0", "-append console=ttyS0", "only allowed with -kernel" },
    { "-display gtk", "-display gtk", "Display 'gtk' is not available in Sen" },
    { "-display none,gl=on", "-display none,gl=on", "invalid parameter 'gl'" },
    { "-serial vc", "-serial vc", "'vc' is not supported" },
    { "-serial chardev:nope", "-serial chardev:nope", "chardev 'nope' not found" },
    { "-serial file:", "-serial file:", "needs a path" },
    { "-serial tcp:localhost", "-serial tcp:localhost", "HOST:PORT" },
    { "-serial null -serial null -serial null -serial null -serial null",
      "-serial null", "too many serial ports" },
    { "-chardev null,id=c -serial chardev:c -serial chardev:c", "-serial chardev:c",
      "already in use" },
    { "-chardev socket,id=s", "-chardev socket,id=s", "path=" },
    { "-chardev socket,id=s,host=h", "-chardev socket,id=s,host=h", "port=" },
    { "-chardev socket,id=s,host=h,port=99999", "-chardev socket", "invalid port '99999'" },
    { "-chardev socket,id=s,path=@D@/s,host=h,port=1", "-chardev socket", "either" },
    { "-chardev socket,id=s,path=@D@/s,wait=off", "-chardev socket",
      "'wait' option is incompatible with socket in client connect mode" },
    { "-chardev socket,id=s,path=@D@/s,server=maybe", "-chardev socket", "server=maybe" },
    { "-chardev socket,id=s,path=@D@/s,nodelay=on", "-chardev socket",
      "invalid parameter 'nodelay'" },
    { "-chardev file,id=f", "-chardev file,id=f", "path=" },
    { "-chardev stdio", "-chardev stdio", "'id' is missing" },
    { "-chardev pty,id=p", "-chardev pty,id=p", "'pty' is not supported" },
    { "-chardev ,id=p", "-chardev ,id=p", "backend is missing" },
    { "-chardev null,id=1x", "-chardev null,id=1x", "invalid chardev id '1x'" },
    { "-chardev null,id=a -chardev null,id=a", "-chardev null,id=a", "Duplicate ID 'a'" },
    { "-chardev null,id=serial0", "-chardev null,id=serial0", "reserved" },
    { "-serial stdio -chardev null,id=serial0", "-chardev null,id=serial0", "Duplicate ID" },
    { "-chardev stdio,id=a -serial stdio", "-serial stdio",
      "cannot use stdio by multiple character devices" },
    { "-chardev stdio,id=a -nographic", "-chardev stdio,id=a",
      "cannot use stdio by multiple character devices" },
    { "-chardev stdio,id=a,bogus", "-chardev stdio,id=a,bogus", "'bogus'" },
    { "-daemonize -nographic", "-nographic", "-nographic cannot be used with -daemonize" },
    { "-daemonize -serial stdio", "-serial stdio", "cannot use stdio with -daemonize" },
    { "-device foo", "-device foo", "'foo' is not a valid device model name" },
    { "-device foo,help", "-device foo,help", "'foo' is not a valid device model name" },
    { "-device port92", "-device port92", "cannot be added with -device" },
    { "-device iobase=1", "-device iobase=1", "'driver' is missing" },
    { "-device isa-debug-exit,iobase", "-device isa-debug-exit,iobase", "'iobase'" },
    { "-name guest=x,debug-threads=maybe", "-name guest=x", "debug-threads=maybe" },
    { "-name guest=x,process=y", "-name guest=x,process=y", "invalid parameter 'process'" },
    { "-pidfile ''", "-pidfile", "empty file name" },
    { "-qtest-log @D@/log", "-qtest-log", "only allowed with -qtest" },
    { "-qtest unix:@D@/a -qtest unix:@D@/b", "-qtest unix:", "more than once" },
    { "-qtest pty", "-qtest pty", "'pty' is not supported" },
    { "-chardev null,id=qtest -qtest unix:@D@/q", "-qtest unix:", "Duplicate ID 'qtest'" },
    /* A valid -pidfile does not save a later bad option; nothing is written. */
    { "-pidfile @D@/pid -m 12Q", "-m 12Q", "invalid size" },
    { "-serial file:@D@/out -foo", "-foo", "invalid option" },
};

static void test_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        Error *err = NULL;
        bool exit_early = true;
        MachineConfig *cfg = parse_line(bad[i].line, &exit_early, &err);
        g_autofree char *prefix = expand(bad[i].prefix);
        g_autofree char *text = expand(bad[i].text);

        if (cfg) {
            g_error("'%s' was accepted", bad[i].line);
        }
        g_assert_false(exit_early);
        g_assert_nonnull(err);
        const char *msg = error_get_pretty(err);
        g_test_message("%s -> %s", bad[i].line, msg);
        if (!g_str_has_prefix(msg, prefix) || !strstr(msg, text) || strchr(msg, '\n')) {
            g_error("'%s': message '%s' should start with '%s' and contain '%s'",
                    bad[i].line, msg, prefix, text);
        }
        error_free(err);

        /* Nothing is created on disk by parsing. */
        g_autoptr(GDir) dir = g_dir_open(fx.dir, 0, NULL);
        g_assert_null(g_dir_read_name(dir));
    }
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    fx.dir = g_dir_make_tmp("test-cmdline-XXXXXX", NULL);
    g_assert_nonnull(fx.dir);
    /* The readable files live outside the scratch dir, which must stay empty. */
    int fd = g_file_open_tmp("test-cmdline-kernel-XXXXXX", &fx.file, NULL);
    g_assert_cmpint(fd, >=, 0);
    close(fd);
    fd = g_file_open_tmp("test-cmdline-initrd-XXXXXX", &fx.file2, NULL);
    g_assert_cmpint(fd, >=, 0);
    close(fd);

    g_test_add_func("/cmdline/defaults", test_defaults);
    g_test_add_func("/cmdline/memory", test_memory);
    g_test_add_func("/cmdline/smp", test_smp);
    g_test_add_func("/cmdline/serial-defaults", test_serial_defaults);
    g_test_add_func("/cmdline/chardevs", test_chardevs);
    g_test_add_func("/cmdline/qtest", test_qtest);
    g_test_add_func("/cmdline/machine-accel-cpu", test_machine_accel_cpu);
    g_test_add_func("/cmdline/machine-types", test_machine_types_and_irqchip);
    g_test_add_func("/cmdline/dirty-ring-size", test_dirty_ring_size);
    g_test_add_func("/cmdline/cpu-models-and-globals", test_cpu_models_and_globals);
    g_test_add_func("/cmdline/machine-acpi", test_machine_acpi);
    g_test_add_func("/cmdline/boot-and-misc", test_boot_and_misc);
    g_test_add_func("/cmdline/net", test_net);
    g_test_add_func("/cmdline/action", test_action);
    g_test_add_func("/cmdline/exit-early", test_exit_early);
    for (guint i = 0; i < G_N_ELEMENTS(early); i++) {
        g_autofree char *path = g_strdup_printf("/cmdline/exit-early/subprocess/%u", i);
        g_test_add_data_func(path, GUINT_TO_POINTER(i), test_exit_early_child);
    }
    g_test_add_func("/cmdline/bad", test_bad);
    ret = g_test_run();

    g_unlink(fx.file);
    g_unlink(fx.file2);
    g_rmdir(fx.dir);
    g_free(fx.dir);
    g_free(fx.file);
    g_free(fx.file2);
    return ret;
}
