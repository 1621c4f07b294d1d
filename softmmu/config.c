/* MachineConfig: allocation and defaults (see include/sen/config.h). */
#include <string.h>
#include "sen/config.h"
#include "sen/hostmem.h"

static void chardev_config_free(gpointer p)
{
    ChardevConfig *c = p;

    g_free(c->id);
    g_free(c->path);
    g_free(c->host);
    g_free(c->port);
    g_free(c);
}

static void device_config_free(gpointer p)
{
    DeviceConfig *d = p;

    g_free(d->driver);
    g_free(d->optstr);
    keyval_free(d->props);
    g_free(d);
}

void fw_cfg_file_config_free(gpointer p)
{
    FwCfgFileConfig *f = p;

    g_free(f->optstr);
    g_free(f->name);
    g_free(f->file);
    g_free(f->string);
    g_free(f);
}

void option_rom_config_free(gpointer p)
{
    OptionRomConfig *r = p;

    g_free(r->optstr);
    g_free(r->path);
    g_free(r);
}

static void numa_node_config_free(gpointer p)
{
    NumaNodeConfig *n = p;

    g_free(n->memdev);
    g_array_unref(n->cpus);
    g_free(n);
}

static void netdev_config_free(gpointer p)
{
    NetdevConfig *n = p;

    g_free(n->optstr);
    g_free(n->id);
    keyval_free(n->opts);
    g_free(n);
}

MachineConfig *machine_config_new(void)
{
    MachineConfig *cfg = g_new0(MachineConfig, 1);

    /* QEMU's defaults for "qemu-system-x86_64 -M pc -enable-kvm" with no other options. */
    cfg->machine_type = g_strdup("pc");
    cfg->cpu_model = g_strdup("host");
    cfg->accel = ACCEL_KVM;
    cfg->ram_size = 128 * 1024 * 1024;
    cfg->smp_cpus = 1;
    cfg->smp_sockets = 1;
    cfg->smp_dies = 1;
    cfg->smp_cores = 1;
    cfg->smp_threads = 1;
    cfg->smp_maxcpus = 1;
    cfg->actions = RUNSTATE_ACTIONS_DEFAULT;
    cfg->boot_menu_wait = -1;
    cfg->boot_reboot_timeout = -1;
    cfg->chardevs = g_ptr_array_new_with_free_func(chardev_config_free);
    cfg->serials = g_ptr_array_new_with_free_func(g_free);
    cfg->devices = g_ptr_array_new_with_free_func(device_config_free);
    cfg->mem_backends =
        g_ptr_array_new_with_free_func((GDestroyNotify)mem_backend_config_free);
    cfg->iothreads = g_ptr_array_new_with_free_func(g_free);
    cfg->mem_merge = true;
    cfg->numa_nodes = g_ptr_array_new_with_free_func(numa_node_config_free);
    cfg->netdevs = g_ptr_array_new_with_free_func(netdev_config_free);
    cfg->nics = g_ptr_array_new_with_free_func(device_config_free);
    return cfg;
}

void machine_config_free(MachineConfig *cfg)
{
    if (!cfg) {
        return;
    }
    g_free(cfg->machine_type);
    g_free(cfg->cpu_model);
    if (cfg->cpu_features) {
        g_ptr_array_unref(cfg->cpu_features);
    }
    g_free(cfg->kernel);
    g_free(cfg->initrd);
    g_free(cfg->append);
    g_free(cfg->name);
    g_free(cfg->pidfile);
    g_ptr_array_unref(cfg->chardevs);
    g_ptr_array_unref(cfg->serials);
    if (cfg->drives) {
        g_ptr_array_unref(cfg->drives);
    }
    g_ptr_array_unref(cfg->devices);
    g_ptr_array_unref(cfg->mem_backends);
    g_ptr_array_unref(cfg->iothreads);
    g_free(cfg->memory_backend);
    g_free(cfg->mem_path);
    g_ptr_array_unref(cfg->numa_nodes);
    g_free(cfg->numa_distance);
    if (cfg->globals) {
        g_ptr_array_unref(cfg->globals); /* made with its free function (cmdline.c) */
    }
    g_ptr_array_unref(cfg->netdevs);
    g_ptr_array_unref(cfg->nics);
    g_free(cfg->qtest_chardev);
    g_free(cfg->qtest_log);
    g_free(cfg->chroot_dir);
    if (cfg->add_fds) {
        g_ptr_array_unref(cfg->add_fds); /* made with its free function */
    }
    g_free(cfg->runas);
    g_free(cfg->incoming);
    g_free(cfg->loadvm);
    if (cfg->monitors) {
        g_ptr_array_unref(cfg->monitors); /* made with its free function (cmdline-monitor.c) */
    }
    g_free(cfg->bios);
    g_free(cfg->boot_order);
    if (cfg->fw_cfg_files) {
        g_ptr_array_unref(cfg->fw_cfg_files);
    }
    if (cfg->option_roms) {
        g_ptr_array_unref(cfg->option_roms);
    }
    g_free(cfg);
}

const ChardevConfig *machine_config_find_chardev(const MachineConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const ChardevConfig *c = g_ptr_array_index(cfg->chardevs, i);
        if (strcmp(c->id, id) == 0) {
            return c;
        }
    }
    return NULL;
}

bool machine_config_has_iothread(const MachineConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->iothreads->len; i++) {
        if (strcmp(g_ptr_array_index(cfg->iothreads, i), id) == 0) {
            return true;
        }
    }
    return false;
}

MemBackendConfig *machine_config_find_mem_backend(const MachineConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->mem_backends->len; i++) {
        MemBackendConfig *b = g_ptr_array_index(cfg->mem_backends, i);
        if (b->id && strcmp(b->id, id) == 0) {
            return b;
        }
    }
    return NULL;
}

const MemBackendConfig *machine_config_ram_backend(const MachineConfig *cfg)
{
    if (cfg->memory_backend) {
        return machine_config_find_mem_backend(cfg, cfg->memory_backend);
    }
    /* -mem-path/-mem-prealloc made an id-less backend (softmmu/cmdline-memory.c). */
    for (guint i = 0; i < cfg->mem_backends->len; i++) {
        const MemBackendConfig *b = g_ptr_array_index(cfg->mem_backends, i);
        if (!b->id) {
            return b;
        }
    }
    return NULL;
}
