/*
 * The memory options: -object memory-backend-*, -mem-path, -mem-prealloc and the memory
 * keys of -machine (memory-backend, mem-merge, dump-guest-core), with the checks that
 * tie them to -m after the last option.  Part of softmmu/cmdline.c; docs/memory.md.
 * -object iothread (docs/virtio.md) shares the -object parsing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "sen/hostmem.h"
#include "cmdline-internal.h"

bool cmdline_opt_object(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (strcmp(arg, "help") == 0) {
        printf("List of user creatable objects:\n  iothread\n  memory-backend-file\n"
               "  memory-backend-memfd\n  memory-backend-ram\n");
        s->exit_early = true;
        return true;
    }
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "qom-type", errp);
    if (!kv) {
        return false;
    }
    g_autofree char *type = keyval_take(kv, "qom-type");
    MemBackendKind kind;
    bool iothread = g_strcmp0(type, "iothread") == 0;
    if (!type || !*type) {
        error_setg(errp, "%s: Parameter 'qom-type' is missing", what);
        return false;
    }
    if (!iothread && !mem_backend_kind_from_type(type, &kind)) {
        error_setg(errp, "%s: object type '%s' is not supported by Sen "
                   "(iothread, memory-backend-ram, memory-backend-memfd, "
                   "memory-backend-file)", what, type);
        return false;
    }
    g_autofree char *id = keyval_take(kv, "id");
    if (!id) {
        error_setg(errp, "%s: Parameter 'id' is missing", what);
        return false;
    }
    if (!id_wellformed(id)) {
        error_setg(errp, "%s: Parameter 'id' expects an identifier", what);
        return false;
    }
    if (machine_config_find_mem_backend(s->cfg, id) ||
        machine_config_has_iothread(s->cfg, id)) {
        error_setg(errp, "%s: attempt to add duplicate property '%s' to object "
                   "(type 'container')", what, id);
        return false;
    }
    if (iothread) {
        /* QEMU's polling and batching knobs tune its AioContext, which Sen has not. */
        if (!keyval_check_all_used(kv, what, errp)) {
            return false;
        }
        g_ptr_array_add(s->cfg->iothreads, g_steal_pointer(&id));
        return true;
    }
    MemBackendConfig *c = mem_backend_config_parse(kind, id, kv, what, errp);
    if (!c) {
        return false;
    }
    g_ptr_array_add(s->cfg->mem_backends, c);
    return true;
}

bool cmdline_opt_mem_path(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    if (!*arg) {
        error_setg(errp, "%s: empty path", what);
        return false;
    }
    g_free(s->cfg->mem_path);
    s->cfg->mem_path = g_strdup(arg);
    return true;
}

bool cmdline_opt_mem_prealloc(CmdlineState *s, const char *what, const char *arg,
                              Error **errp)
{
    s->cfg->mem_prealloc = true;
    return true;
}

bool cmdline_machine_memory_opts(CmdlineState *s, Keyval *kv, const char *what, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    const char *backend = keyval_get(kv, "memory-backend");

    if (backend) {
        if (!*backend) {
            error_setg(errp, "%s: memory-backend: empty id", what);
            return false;
        }
        g_free(cfg->memory_backend);
        cfg->memory_backend = g_strdup(backend);
        g_free(s->memory_backend_what);
        s->memory_backend_what = g_strdup(what);
    }
    return keyval_get_bool(kv, what, "mem-merge", cfg->mem_merge, &cfg->mem_merge, errp) &&
           keyval_get_bool(kv, what, "dump-guest-core", cfg->dump_guest_core,
                           &cfg->dump_guest_core, errp);
}

/* -mem-path/-mem-prealloc: QEMU's legacy spelling of a private file or RAM backend. */
static bool legacy_backend(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    if (s->memory_backend_what) {
        error_setg(errp, "%s: cannot be combined with -mem-path or -mem-prealloc "
                   "(give the backend mem-path= or prealloc=on instead)",
                   s->memory_backend_what);
        return false;
    }
    /* Without -mem-path it is the default RAM (private anonymous), preallocated; merge
     * and dump follow -machine below like every backend's. */
    g_autoptr(MemBackendConfig) c =
        cfg->mem_path ? mem_backend_config_new(MEM_BACKEND_FILE)
                      : mem_backend_config_new_default(cfg->ram_size, true, false);
    c->what = g_strdup(cfg->mem_path ? "-mem-path" : "-mem-prealloc");
    c->mem_path = g_strdup(cfg->mem_path);
    c->seal = false;
    c->reserve = true; /* every page is taken at once: let overcommit refuse it up front */
    c->size = cfg->ram_size;
    c->prealloc = cfg->mem_prealloc;
    g_ptr_array_add(cfg->mem_backends, g_steal_pointer(&c));
    return true;
}

bool cmdline_memory_finish(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;

    if ((cfg->mem_path || cfg->mem_prealloc) && !legacy_backend(s, errp)) {
        return false;
    }
    if (cfg->memory_backend) {
        const MemBackendConfig *b = machine_config_find_mem_backend(cfg, cfg->memory_backend);
        if (!b) {
            error_setg(errp, "%s: Memory backend '%s' not found", s->memory_backend_what,
                       cfg->memory_backend);
            return false;
        }
        if (s->ram_size_given && cfg->ram_size != b->size) {
            error_setg(errp, "%s: Machine memory size (-m %" PRIu64 "M) does not match the "
                       "size of the memory backend (%" PRIu64 " bytes)",
                       s->memory_backend_what, cfg->ram_size >> 20, b->size);
            return false;
        }
        cfg->ram_size = b->size;
    }
    /* Backends follow -machine mem-merge/dump-guest-core unless they say otherwise. */
    for (guint i = 0; i < cfg->mem_backends->len; i++) {
        MemBackendConfig *b = g_ptr_array_index(cfg->mem_backends, i);
        if (!b->merge_given) {
            b->merge = cfg->mem_merge;
        }
        if (!b->dump_given) {
            b->dump = cfg->dump_guest_core;
        }
    }
    return true;
}
