/*
 * -numa node,nodeid=N,cpus=A[-B],memdev=ID and -numa dist,src=,dst=,val=: the guest's NUMA
 * topology, checked with QEMU's rules after the last option (docs/memory.md).  Part of
 * softmmu/cmdline.c.  The board describes it to the guest in the ACPI SRAT and SLIT.
 */
#include <inttypes.h>
#include <string.h>
#include "sen/hostmem.h"
#include "cmdline-internal.h"

/* QEMU's default split of RAM over nodes without memdev: 8 MiB granules. */
#define NUMA_AUTO_ALIGN (UINT64_C(1) << 23)

typedef struct NumaDist {
    unsigned src, dst, val;
} NumaDist;

static NumaNodeConfig *find_node(const MachineConfig *cfg, unsigned id)
{
    for (guint i = 0; i < cfg->numa_nodes->len; i++) {
        NumaNodeConfig *n = g_ptr_array_index(cfg->numa_nodes, i);
        if (n->nodeid == id) {
            return n;
        }
    }
    return NULL;
}

/* Every cpus= of the option (QEMU takes the key repeatedly): "N" or "A-B". */
static bool parse_cpus(Keyval *kv, const char *what, GArray *cpus, Error **errp)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
        if (strcmp(p->key, "cpus") != 0) {
            continue;
        }
        p->used = true;
        g_auto(GStrv) ends = g_strsplit(p->value, "-", 2);
        uint64_t lo, hi;
        if (!ends[0] || !parse_uint(ends[0], &lo, NULL) ||
            (ends[1] ? !parse_uint(ends[1], &hi, NULL) : ((hi = lo), false)) || lo > hi ||
            hi >= 4096) {
            error_setg(errp, "%s: cpus=%s: expected a CPU index or a range A-B below 4096",
                       what, p->value);
            return false;
        }
        for (unsigned c = (unsigned)lo; c <= hi; c++) {
            g_array_append_val(cpus, c);
        }
    }
    return true;
}

static bool numa_node(CmdlineState *s, Keyval *kv, const char *what, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    uint64_t id;

    if (!keyval_get_u64(kv, what, "nodeid", cfg->numa_nodes->len, &id, errp)) {
        return false;
    }
    if (id >= NUMA_MAX_NODES) {
        error_setg(errp, "%s: Max number of NUMA nodes reached: %" PRIu64, what, id);
        return false;
    }
    if (find_node(cfg, (unsigned)id)) {
        error_setg(errp, "%s: Duplicate NUMA nodeid: %" PRIu64, what, id);
        return false;
    }
    if (keyval_has(kv, "mem")) {
        error_setg(errp, "%s: Parameter -numa node,mem is not supported by this machine "
                   "type (use memdev)", what);
        return false;
    }
    NumaNodeConfig *n = g_new0(NumaNodeConfig, 1);
    n->nodeid = (unsigned)id;
    n->cpus = g_array_new(FALSE, FALSE, sizeof(unsigned));
    const char *memdev = keyval_get(kv, "memdev");
    n->memdev = memdev ? g_strdup(memdev) : NULL;
    /* Sorted by nodeid: the finish checks for gaps and the board walks them in order. */
    guint pos = 0;
    while (pos < cfg->numa_nodes->len &&
           ((NumaNodeConfig *)g_ptr_array_index(cfg->numa_nodes, pos))->nodeid < n->nodeid) {
        pos++;
    }
    g_ptr_array_insert(cfg->numa_nodes, (gint)pos, n);
    return parse_cpus(kv, what, n->cpus, errp) && keyval_check_all_used(kv, what, errp);
}

static bool numa_dist(CmdlineState *s, Keyval *kv, const char *what, Error **errp)
{
    uint64_t src, dst, val;

    for (const char *const *k = (const char *const[]){ "src", "dst", "val", NULL }; *k; k++) {
        if (!keyval_has(kv, *k)) {
            error_setg(errp, "%s: Parameter '%s' is missing", what, *k);
            return false;
        }
    }
    if (!keyval_get_u64(kv, what, "src", 0, &src, errp) ||
        !keyval_get_u64(kv, what, "dst", 0, &dst, errp) ||
        !keyval_get_u64(kv, what, "val", 0, &val, errp) ||
        !keyval_check_all_used(kv, what, errp)) {
        return false;
    }
    if (src >= NUMA_MAX_NODES || dst >= NUMA_MAX_NODES) {
        error_setg(errp, "%s: Invalid node %" PRIu64 ", max possible could be %d", what,
                   MAX(src, dst), NUMA_MAX_NODES - 1);
        return false;
    }
    if (val > 255) {
        error_setg(errp, "%s: val=%" PRIu64 ": a distance is at most 255", what, val);
        return false;
    }
    if (val < NUMA_LOCAL_DISTANCE) {
        error_setg(errp, "%s: NUMA distance (%" PRIu64 ") is invalid, it shouldn't be less "
                   "than 10", what, val);
        return false;
    }
    if (src == dst && val != NUMA_LOCAL_DISTANCE) {
        error_setg(errp, "%s: Local distance of node %" PRIu64 " should be 10", what, src);
        return false;
    }
    if (!s->numa_dists) {
        s->numa_dists = g_array_new(FALSE, FALSE, sizeof(NumaDist));
    }
    NumaDist d = { (unsigned)src, (unsigned)dst, (unsigned)val };
    g_array_append_val(s->numa_dists, d);
    return true;
}

bool cmdline_opt_numa(CmdlineState *s, const char *what, const char *arg, Error **errp)
{
    g_autoptr(Keyval) kv = cmdline_parse_opts(what, arg, "type", errp);
    if (!kv) {
        return false;
    }
    g_autofree char *type = keyval_take(kv, "type");
    if (!s->numa_what) {
        s->numa_what = g_strdup(what);
    }
    if (type && strcmp(type, "node") == 0) {
        return numa_node(s, kv, what, errp);
    }
    if (type && strcmp(type, "dist") == 0) {
        return numa_dist(s, kv, what, errp);
    }
    error_setg(errp, "%s: type '%s' is not supported by Sen (node or dist)", what,
               type ? type : "");
    return false;
}

/* Node memory from memdevs (all nodes) or QEMU's even split of -m (no node has one). */
static bool finish_memory(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    const char *what = s->numa_what;
    unsigned with_memdev = 0, n = cfg->numa_nodes->len;
    uint64_t total = 0;

    for (unsigned i = 0; i < n; i++) {
        NumaNodeConfig *node = g_ptr_array_index(cfg->numa_nodes, i);
        if (!node->memdev) {
            continue;
        }
        with_memdev++;
        const MemBackendConfig *b = machine_config_find_mem_backend(cfg, node->memdev);
        if (!b) {
            error_setg(errp, "%s: node %u: memory backend '%s' not found", what,
                       node->nodeid, node->memdev);
            return false;
        }
        for (unsigned j = 0; j < i; j++) {
            NumaNodeConfig *other = g_ptr_array_index(cfg->numa_nodes, j);
            if (other->memdev && strcmp(other->memdev, node->memdev) == 0) {
                error_setg(errp, "%s: memory backend %s can't be used multiple times", what,
                           node->memdev);
                return false;
            }
        }
        node->size = b->size;
        total += b->size;
    }
    if (with_memdev && with_memdev != n) {
        error_setg(errp, "%s: memdev option must be specified for either all or no nodes",
                   what);
        return false;
    }
    if (with_memdev) {
        if (s->memory_backend_what || cfg->mem_path || cfg->mem_prealloc) {
            error_setg(errp, "%s: '-machine memory-backend', -mem-path and -mem-prealloc "
                       "cannot be combined with -numa memdev", what);
            return false;
        }
        if (s->ram_size_given && total != cfg->ram_size) {
            error_setg(errp, "%s: total memory for NUMA nodes (0x%" PRIx64 ") should equal "
                       "RAM size (0x%" PRIx64 ")", what, total, cfg->ram_size);
            return false;
        }
        cfg->ram_size = total;
        return true;
    }
    uint64_t left = cfg->ram_size;
    for (unsigned i = 0; i < n; i++) {
        NumaNodeConfig *node = g_ptr_array_index(cfg->numa_nodes, i);
        uint64_t share = (cfg->ram_size / n) & ~(NUMA_AUTO_ALIGN - 1);
        node->size = i + 1 == n ? left : MIN(share, left);
        left -= node->size;
    }
    return true;
}

static bool finish_cpus(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    unsigned maxcpus = MAX(cfg->smp_maxcpus, 1);
    g_autofree int *owner = g_new(int, maxcpus);

    for (unsigned c = 0; c < maxcpus; c++) {
        owner[c] = -1;
    }
    for (guint i = 0; i < cfg->numa_nodes->len; i++) {
        NumaNodeConfig *node = g_ptr_array_index(cfg->numa_nodes, i);
        for (guint j = 0; j < node->cpus->len; j++) {
            unsigned c = g_array_index(node->cpus, unsigned, j);
            if (c >= maxcpus) {
                error_setg(errp, "%s: CPU index (%u) should be smaller than maxcpus (%u)",
                           s->numa_what, c, maxcpus);
                return false;
            }
            if (owner[c] >= 0 && owner[c] != (int)node->nodeid) {
                error_setg(errp, "%s: CPU %u is assigned to nodes %d and %u", s->numa_what,
                           c, owner[c], node->nodeid);
                return false;
            }
            owner[c] = (int)node->nodeid;
        }
    }
    /* As QEMU (with its warning): CPUs no node names belong to node 0. */
    NumaNodeConfig *first = g_ptr_array_index(cfg->numa_nodes, 0);
    for (unsigned c = 0; c < maxcpus; c++) {
        if (owner[c] < 0) {
            g_array_append_val(first->cpus, c);
        }
    }
    return true;
}

static bool finish_distances(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;
    unsigned n = cfg->numa_nodes->len;

    if (!s->numa_dists) {
        return true; /* no SLIT: the guest assumes local 10, remote 20 */
    }
    g_autofree uint8_t *d = g_new0(uint8_t, n * n);
    for (guint i = 0; i < s->numa_dists->len; i++) {
        NumaDist *e = &g_array_index(s->numa_dists, NumaDist, i);
        if (e->src >= n || e->dst >= n) {
            error_setg(errp, "-numa dist,src=%u,dst=%u: node %u does not exist", e->src,
                       e->dst, e->src >= n ? e->src : e->dst);
            return false;
        }
        d[e->src * n + e->dst] = (uint8_t)e->val;
    }
    /* QEMU's completion: the diagonal is local, a missing direction mirrors the other. */
    for (unsigned i = 0; i < n; i++) {
        d[i * n + i] = NUMA_LOCAL_DISTANCE;
        for (unsigned j = 0; j < n; j++) {
            if (!d[i * n + j]) {
                d[i * n + j] = d[j * n + i];
            }
            if (!d[i * n + j]) {
                error_setg(errp, "-numa dist: The distance between node %u and %u is "
                           "missing, at least one distance value between each nodes "
                           "should be provided.", i, j);
                return false;
            }
        }
    }
    cfg->numa_distance = g_steal_pointer(&d);
    return true;
}

bool cmdline_numa_finish(CmdlineState *s, Error **errp)
{
    MachineConfig *cfg = s->cfg;

    if (!s->numa_what) {
        return true;
    }
    if (cfg->numa_nodes->len == 0) {
        error_setg(errp, "%s: -numa dist needs -numa node options", s->numa_what);
        return false;
    }
    for (guint i = 0; i < cfg->numa_nodes->len; i++) {
        NumaNodeConfig *node = g_ptr_array_index(cfg->numa_nodes, i);
        if (node->nodeid != i) {
            error_setg(errp, "%s: numa: Node ID missing: %u", s->numa_what, i);
            return false;
        }
    }
    return finish_memory(s, errp) && finish_cpus(s, errp) && finish_distances(s, errp);
}
