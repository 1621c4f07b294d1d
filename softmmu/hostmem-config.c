/*
 * MemBackendConfig: the properties of -object memory-backend-{ram,memfd,file}, with QEMU's
 * names and defaults, checked before anything is allocated.  See include/sen/hostmem.h.
 */
#include <inttypes.h>
#include <string.h>
#include "sen/hostmem.h"

static const struct {
    const char *type;
    MemBackendKind kind;
} backend_types[] = {
    { "memory-backend-ram", MEM_BACKEND_RAM },
    { "memory-backend-memfd", MEM_BACKEND_MEMFD },
    { "memory-backend-file", MEM_BACKEND_FILE },
};

static const char *const policy_names[] = {
    [MEM_POLICY_DEFAULT] = "default",
    [MEM_POLICY_PREFERRED] = "preferred",
    [MEM_POLICY_BIND] = "bind",
    [MEM_POLICY_INTERLEAVE] = "interleave",
};

bool mem_backend_kind_from_type(const char *type, MemBackendKind *kind)
{
    for (size_t i = 0; i < G_N_ELEMENTS(backend_types); i++) {
        if (strcmp(type, backend_types[i].type) == 0) {
            *kind = backend_types[i].kind;
            return true;
        }
    }
    return false;
}

MemBackendConfig *mem_backend_config_new(MemBackendKind kind)
{
    MemBackendConfig *c = g_new0(MemBackendConfig, 1);
    c->kind = kind;
    /* QEMU: only memfd is shared by default; private RAM is reserved by default. */
    c->share = kind == MEM_BACKEND_MEMFD;
    c->reserve = true;
    c->merge = true;
    c->seal = true;
    return c;
}

MemBackendConfig *mem_backend_config_new_default(uint64_t size, bool merge, bool dump)
{
    MemBackendConfig *c = mem_backend_config_new(MEM_BACKEND_RAM);
    c->size = size;
    /* Unlike QEMU (reserve=on), never count against overcommit: -m 1T must start on a
     * small host, as it did when the default was a sparse memfd. */
    c->reserve = false;
    c->merge = merge;
    c->dump = dump;
    return c;
}

void mem_backend_config_free(MemBackendConfig *c)
{
    if (!c) {
        return;
    }
    g_free(c->id);
    g_free(c->what);
    g_free(c->mem_path);
    g_free(c);
}

bool mem_parse_host_nodes(const char *str, uint64_t *nodes, Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(str, ",", -1);
    uint64_t bits = 0;

    if (!parts[0]) {
        error_setg(errp, "host-nodes=: expected node numbers like 0-1,3");
        return false;
    }
    for (char **p = parts; *p; p++) {
        g_auto(GStrv) ends = g_strsplit(*p, "-", 2);
        uint64_t lo, hi;
        if (!ends[0] || !parse_uint(ends[0], &lo, NULL) ||
            (ends[1] ? !parse_uint(ends[1], &hi, NULL) : ((hi = lo), false))) {
            error_setg(errp, "host-nodes=%s: expected node numbers like 0-1,3", str);
            return false;
        }
        if (lo > hi || hi >= MEM_MAX_HOST_NODES) {
            error_setg(errp, "host-nodes=%s: nodes must be ascending ranges below %d", str,
                       MEM_MAX_HOST_NODES);
            return false;
        }
        for (uint64_t n = lo; n <= hi; n++) {
            bits |= UINT64_C(1) << n;
        }
    }
    *nodes = bits;
    return true;
}

static bool parse_policy(Keyval *kv, const char *what, MemBackendConfig *c, Error **errp)
{
    const char *nodes = keyval_get(kv, "host-nodes");
    const char *policy = keyval_get(kv, "policy");

    if (nodes && !mem_parse_host_nodes(nodes, &c->host_nodes, errp)) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    if (policy) {
        bool found = false;
        for (size_t i = 0; i < G_N_ELEMENTS(policy_names) && !found; i++) {
            if (strcmp(policy, policy_names[i]) == 0) {
                c->policy = (MemHostPolicy)i;
                found = true;
            }
        }
        if (!found) {
            error_setg(errp, "%s: policy=%s: expected default, preferred, bind or "
                       "interleave", what, policy);
            return false;
        }
    }
    /* The same two rules as QEMU's host_memory_backend_memory_complete(). */
    if (c->host_nodes && c->policy == MEM_POLICY_DEFAULT) {
        error_setg(errp, "%s: host-nodes must be empty for policy default, or you should "
                   "explicitly specify a policy other than default", what);
        return false;
    }
    if (!c->host_nodes && c->policy != MEM_POLICY_DEFAULT) {
        error_setg(errp, "%s: policy=%s needs host-nodes", what, policy_names[c->policy]);
        return false;
    }
    return true;
}

static bool parse_kind_props(Keyval *kv, const char *what, MemBackendConfig *c,
                             Error **errp)
{
    if (c->kind == MEM_BACKEND_MEMFD) {
        if (!keyval_get_bool(kv, what, "hugetlb", false, &c->hugetlb, errp) ||
            !keyval_get_size(kv, what, "hugetlbsize", 0, &c->hugetlbsize, errp) ||
            !keyval_get_bool(kv, what, "seal", true, &c->seal, errp)) {
            return false;
        }
        if (c->hugetlbsize && !c->hugetlb) {
            error_setg(errp, "%s: hugetlbsize needs hugetlb=on", what);
            return false;
        }
        if (c->hugetlbsize && (c->hugetlbsize & (c->hugetlbsize - 1))) {
            error_setg(errp, "%s: hugetlbsize=%" PRIu64 " is not a power of two", what,
                       c->hugetlbsize);
            return false;
        }
    } else if (c->kind == MEM_BACKEND_FILE) {
        const char *path = keyval_get(kv, "mem-path");
        if (!path || !*path) {
            error_setg(errp, "%s: mem-path property not set", what);
            return false;
        }
        c->mem_path = g_strdup(path);
        if (!keyval_get_bool(kv, what, "discard-data", false, &c->discard_data, errp)) {
            return false;
        }
    }
    return true;
}

MemBackendConfig *mem_backend_config_parse(MemBackendKind kind, const char *id, Keyval *kv,
                                           const char *what, Error **errp)
{
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(kind);

    c->id = g_strdup(id);
    c->what = g_strdup(what);
    if (!keyval_has(kv, "size")) {
        error_setg(errp, "%s: can't create backend with size 0", what);
        return NULL;
    }
    if (!keyval_get_size(kv, what, "size", 0, &c->size, errp) ||
        !keyval_get_bool(kv, what, "share", c->share, &c->share, errp) ||
        !keyval_get_bool(kv, what, "prealloc", false, &c->prealloc, errp) ||
        !keyval_get_bool(kv, what, "reserve", true, &c->reserve, errp)) {
        return NULL;
    }
    c->merge_given = keyval_has(kv, "merge");
    c->dump_given = keyval_has(kv, "dump");
    if (!keyval_get_bool(kv, what, "merge", true, &c->merge, errp) ||
        !keyval_get_bool(kv, what, "dump", false, &c->dump, errp)) {
        return NULL;
    }
    if (c->size == 0) {
        error_setg(errp, "%s: can't create backend with size 0", what);
        return NULL;
    }
    if (c->size % 4096) {
        error_setg(errp, "%s: size=%" PRIu64 " is not a multiple of the 4 KiB page size",
                   what, c->size);
        return NULL;
    }
    if (!c->reserve && c->prealloc) {
        error_setg(errp, "%s: 'prealloc=on' and 'reserve=off' are incompatible", what);
        return NULL;
    }
    if (!parse_kind_props(kv, what, c, errp) || !parse_policy(kv, what, c, errp) ||
        !keyval_check_all_used(kv, what, errp)) {
        return NULL;
    }
    return g_steal_pointer(&c);
}
