/*
 * Host memory backends: where guest RAM comes from (QEMU's -object memory-backend-*).
 *
 * A MemBackendConfig is plain validated data (from -object, -mem-path/-mem-prealloc or the
 * default); hostmem_alloc() turns it into one host mapping and applies the policies the
 * config asks for: KSM (MADV_MERGEABLE), core-dump exclusion (MADV_DONTDUMP), transparent
 * huge pages (MADV_HUGEPAGE), NUMA host binding (mbind) and preallocation.
 *
 * Kinds:
 *   ram    anonymous memory; share=on maps it MAP_SHARED (then there is no fd to pass on)
 *   memfd  an anonymous file (memfd_create), optionally on hugetlbfs (hugetlb=on)
 *   file   a file at mem-path, or a new unlinked file inside mem-path when it is a
 *          directory (e.g. a hugetlbfs mount)
 * Nothing is spent until touched unless prealloc=on (or reserve=on for a private mapping,
 * which only asks the kernel's overcommit accounting, as QEMU's default does).
 */
#ifndef SEN_HOSTMEM_H
#define SEN_HOSTMEM_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "sen/error.h"
#include "sen/keyval.h"

typedef enum MemBackendKind {
    MEM_BACKEND_RAM,
    MEM_BACKEND_MEMFD,
    MEM_BACKEND_FILE,
} MemBackendKind;

/* Linux's MPOL_* values, as QEMU's HostMemPolicy names them. */
typedef enum MemHostPolicy {
    MEM_POLICY_DEFAULT = 0,
    MEM_POLICY_PREFERRED = 1,
    MEM_POLICY_BIND = 2,
    MEM_POLICY_INTERLEAVE = 3,
} MemHostPolicy;

#define MEM_MAX_HOST_NODES 64

typedef struct MemBackendConfig {
    char *id;            /* -object ...,id=; NULL for the implicit machine RAM */
    char *what;          /* the option as typed, for errors ("-object memory-backend-...") */
    MemBackendKind kind;
    uint64_t size;       /* bytes, > 0 */
    bool share;          /* MAP_SHARED (memfd: default on; ram/file: default off) */
    bool prealloc;       /* touch every page at creation, fail clearly if it cannot */
    bool reserve;        /* private mappings: count against overcommit (off: NORESERVE) */
    bool merge;          /* MADV_MERGEABLE (KSM); default -machine mem-merge */
    bool dump;           /* include in core dumps; default -machine dump-guest-core */
    bool merge_given, dump_given; /* set explicitly, not from the -machine defaults */
    bool hugetlb;        /* memfd: MFD_HUGETLB */
    uint64_t hugetlbsize;/* memfd hugetlb page size, 0 = the host default */
    bool seal;           /* memfd: seal the size (F_SEAL_GROW | F_SEAL_SHRINK), default on */
    char *mem_path;      /* file: path of a file or a directory */
    bool discard_data;   /* file: leave the file's data alone on exit (off) or drop it */
    uint64_t host_nodes; /* bitmap of host NUMA nodes for policy */
    MemHostPolicy policy;
} MemBackendConfig;

typedef struct HostMem {
    int fd;              /* -1 for anonymous RAM */
    uint8_t *hva;
    uint64_t size;
    uint64_t page_size;  /* host page size backing it (4 KiB or the huge page size) */
    bool shared;
    bool discard_on_free; /* file discard-data=on */
} HostMem;

MemBackendConfig *mem_backend_config_new(MemBackendKind kind);
/*
 * The machine's RAM when no backend is named (docs/memory.md "The default"): private
 * anonymous memory like QEMU's, MAP_NORESERVE so a huge guest costs nothing until touched,
 * advised MADV_HUGEPAGE (THP-eligible, which shared memory is not on most hosts) and
 * MADV_MERGEABLE when merge is set.  dump is -machine dump-guest-core.
 */
MemBackendConfig *mem_backend_config_new_default(uint64_t size, bool merge, bool dump);
void mem_backend_config_free(MemBackendConfig *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MemBackendConfig, mem_backend_config_free)

/*
 * Parses the properties of -object memory-backend-KIND (qom-type and id already taken
 * out of kv).  Errors name what.  Every key must be understood.
 */
MemBackendConfig *mem_backend_config_parse(MemBackendKind kind, const char *id,
                                           Keyval *kv, const char *what, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* "memory-backend-ram" -> kind; false for any other type name. */
bool mem_backend_kind_from_type(const char *type, MemBackendKind *kind);
/* "0-3,6" style node list -> bitmap (nodes below MEM_MAX_HOST_NODES). */
bool mem_parse_host_nodes(const char *str, uint64_t *nodes, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* Creates the mapping; errors name cfg->what (or "guest RAM").  Free with hostmem_free. */
HostMem *hostmem_alloc(const MemBackendConfig *cfg, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void hostmem_free(HostMem *hm);

/*
 * Gives [offset, offset+len) back to the host (balloon inflate, free page reporting):
 * the next guest access reads zeroes.  Shared and file memory needs a hole punched in
 * the file as well, or the pages stay in the page cache.  Page-aligned ranges only.
 */
bool hostmem_discard(HostMem *hm, uint64_t offset, uint64_t len);

#endif
