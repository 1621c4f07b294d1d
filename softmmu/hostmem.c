/*
 * Host memory backends: one mapping per MemBackendConfig, with its policies applied.
 * See include/sen/hostmem.h.
 *
 * Why the flags are what they are:
 * - MAP_NORESERVE unless a private mapping asked for reserve=on: a 1 TiB guest must cost
 *   nothing until touched.  Huge pages are the exception: hugetlbfs reserves its pages at
 *   mmap time, which turns "not enough huge pages" into a start-up error instead of a
 *   SIGBUS when the guest first touches the memory.
 * - KSM (MADV_MERGEABLE) only ever merges private anonymous pages; Linux accepts the
 *   advice on shared memory and ignores it, as it does for QEMU.  docs/memory.md says so.
 * - Preallocation uses MADV_POPULATE_WRITE, which fails with an error code where touching
 *   the pages would SIGBUS (hugetlb pool empty, tmpfs full).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/mempolicy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sen/hostmem.h"

/* The transparent huge page size on x86-64; guest RAM mappings start on this boundary. */
#define HOSTMEM_THP_ALIGN (2u << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

static const char *backend_what(const MemBackendConfig *cfg)
{
    return cfg->what ? cfg->what : "guest RAM";
}

/* The hugetlbfs default page size, from /proc/meminfo (0 if unknown). */
static uint64_t default_huge_page_size(void)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL)) {
        return 0;
    }
    const char *p = strstr(text, "Hugepagesize:");
    unsigned long kib;
    if (!p || sscanf(p, "Hugepagesize: %lu kB", &kib) != 1) {
        return 0;
    }
    return (uint64_t)kib * 1024;
}

static int open_memfd(const MemBackendConfig *cfg, uint64_t *page_size, Error **errp)
{
    unsigned flags = MFD_CLOEXEC | (cfg->seal ? MFD_ALLOW_SEALING : 0);
    *page_size = (uint64_t)getpagesize();
    if (cfg->hugetlb) {
        *page_size = cfg->hugetlbsize ? cfg->hugetlbsize : default_huge_page_size();
        flags |= MFD_HUGETLB;
        if (cfg->hugetlbsize) {
            flags |= (unsigned)__builtin_ctzll(cfg->hugetlbsize) << MFD_HUGE_SHIFT;
        }
    }
    int fd = memfd_create("sen-ram", flags);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create memfd%s", backend_what(cfg),
                         cfg->hugetlb ? " on hugetlbfs (huge page size not supported?)" : "");
    }
    return fd;
}

/* A file at mem-path, or a new unlinked one inside it when it is a directory. */
static int open_mem_path(const MemBackendConfig *cfg, uint64_t *page_size, Error **errp)
{
    struct stat st;
    int fd;

    if (stat(cfg->mem_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        g_autofree char *tmpl = g_build_filename(cfg->mem_path, "sen-ram.XXXXXX", NULL);
        fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd >= 0) {
            unlink(tmpl);
        }
    } else {
        fd = open(cfg->mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot open mem-path '%s'", backend_what(cfg),
                         cfg->mem_path);
        return -1;
    }
    struct statfs fs;
    *page_size = (uint64_t)getpagesize();
    if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC) {
        *page_size = (uint64_t)fs.f_bsize;
    }
    return fd;
}

/* Grows (never shrinks) the file to size; hugetlbfs files are sized by mmap itself. */
static bool size_file(int fd, const MemBackendConfig *cfg, Error **errp)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s: cannot stat the backing file", backend_what(cfg));
        return false;
    }
    if ((uint64_t)st.st_size >= cfg->size) {
        return true;
    }
    if (ftruncate(fd, (off_t)cfg->size) < 0) {
        error_setg_errno(errp, errno, "%s: cannot size the backing file to %" PRIu64
                         " bytes", backend_what(cfg), cfg->size);
        return false;
    }
    return true;
}

static bool bind_host_nodes(HostMem *hm, const MemBackendConfig *cfg, Error **errp)
{
    if (cfg->policy == MEM_POLICY_DEFAULT) {
        return true;
    }
    for (unsigned n = 0; n < MEM_MAX_HOST_NODES; n++) {
        g_autofree char *dir = g_strdup_printf("/sys/devices/system/node/node%u", n);
        if ((cfg->host_nodes >> n & 1) && !g_file_test(dir, G_FILE_TEST_IS_DIR)) {
            error_setg(errp, "%s: host-nodes: the host has no NUMA node %u",
                       backend_what(cfg), n);
            return false;
        }
    }
    unsigned long mask = (unsigned long)cfg->host_nodes;
    /* MPOL_MF_MOVE: pages already touched (prealloc) move to the nodes; STRICT reports
     * pages that cannot. maxnode counts bits and the kernel reads maxnode - 1 of them. */
    unsigned flags = cfg->prealloc ? MPOL_MF_STRICT | MPOL_MF_MOVE : 0;
    if (syscall(SYS_mbind, hm->hva, hm->size, (int)cfg->policy, &mask,
                (unsigned long)MEM_MAX_HOST_NODES + 1, flags) < 0) {
        error_setg_errno(errp, errno, "%s: cannot bind memory to host NUMA nodes",
                         backend_what(cfg));
        return false;
    }
    return true;
}

static bool preallocate(HostMem *hm, const MemBackendConfig *cfg, Error **errp)
{
    if (madvise(hm->hva, hm->size, MADV_POPULATE_WRITE) == 0) {
        return true;
    }
    if (errno != EINVAL) {
        error_setg_errno(errp, errno, "%s: prealloc: cannot allocate %" PRIu64 " bytes",
                         backend_what(cfg), hm->size);
        return false;
    }
    /* Kernels before 5.14: touch one byte a page, keeping its value. */
    for (uint64_t off = 0; off < hm->size; off += hm->page_size) {
        volatile uint8_t *p = hm->hva + off;
        *p = *p;
    }
    return true;
}

/*
 * mmap at an address aligned to align: a transparent huge page can only back a 2 MiB
 * aligned stretch of the mapping, so an unaligned start would leave the first and last
 * 2 MiB of every region in small pages (QEMU aligns its RAM blocks the same way).  An
 * inaccessible reservation picks the place, the real mapping replaces part of it, and the
 * rest is given back; the reservation itself is never accounted against overcommit.
 */
static void *map_aligned(uint64_t size, uint64_t align, int flags, int fd)
{
    uint64_t total = size + align;
    uint8_t *area = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
    if (area == MAP_FAILED) {
        return MAP_FAILED;
    }
    uint8_t *start = (uint8_t *)(((uintptr_t)area + align - 1) & ~(uintptr_t)(align - 1));
    void *p = mmap(start, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        int saved = errno;
        munmap(area, total);
        errno = saved;
        return MAP_FAILED;
    }
    if (start > area) {
        munmap(area, (size_t)(start - area));
    }
    if (area + total > start + size) {
        munmap(start + size, (size_t)(area + total - (start + size)));
    }
    return p;
}

static void apply_advice(HostMem *hm, const MemBackendConfig *cfg, bool hugetlb)
{
    /* Advice is best effort: a kernel without KSM or THP still runs the guest. */
    if (cfg->merge) {
        madvise(hm->hva, hm->size, MADV_MERGEABLE);
    }
    if (!cfg->dump) {
        madvise(hm->hva, hm->size, MADV_DONTDUMP);
    }
    if (!hugetlb) {
        madvise(hm->hva, hm->size, MADV_HUGEPAGE);
    }
}

HostMem *hostmem_alloc(const MemBackendConfig *cfg, Error **errp)
{
    g_autofree HostMem *hm = g_new0(HostMem, 1);
    int map_flags = MAP_NORESERVE;

    hm->fd = -1;
    hm->size = cfg->size;
    hm->page_size = (uint64_t)getpagesize();
    hm->shared = cfg->share;
    hm->discard_on_free = cfg->kind == MEM_BACKEND_FILE && cfg->discard_data;
    if (cfg->kind == MEM_BACKEND_MEMFD) {
        hm->fd = open_memfd(cfg, &hm->page_size, errp);
    } else if (cfg->kind == MEM_BACKEND_FILE) {
        hm->fd = open_mem_path(cfg, &hm->page_size, errp);
    }
    if (cfg->kind != MEM_BACKEND_RAM && hm->fd < 0) {
        return NULL;
    }
    bool hugetlb = hm->page_size > (uint64_t)getpagesize();
    if (hm->page_size == 0 || cfg->size % hm->page_size) {
        error_setg(errp, "%s: size=%" PRIu64 " is not a multiple of the %" PRIu64
                   "-byte huge page size", backend_what(cfg), cfg->size, hm->page_size);
        goto fail;
    }
    if (hm->fd >= 0 && !hugetlb && !size_file(hm->fd, cfg, errp)) {
        goto fail;
    }
    if (hm->fd >= 0 && hugetlb && ftruncate(hm->fd, (off_t)cfg->size) < 0 && errno != EINVAL) {
        error_setg_errno(errp, errno, "%s: cannot size the hugetlbfs file",
                         backend_what(cfg));
        goto fail;
    }
    if (cfg->kind == MEM_BACKEND_MEMFD && cfg->seal &&
        fcntl(hm->fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        error_setg_errno(errp, errno, "%s: cannot seal the memfd", backend_what(cfg));
        goto fail;
    }
    if (hugetlb || (!cfg->share && cfg->reserve)) {
        map_flags = 0;
    }
    map_flags |= cfg->share ? MAP_SHARED : MAP_PRIVATE;
    if (hm->fd < 0) {
        map_flags |= MAP_ANONYMOUS;
    }
    void *p = map_aligned(cfg->size, MAX(hm->page_size, HOSTMEM_THP_ALIGN), map_flags,
                          hm->fd);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "%s: cannot map %" PRIu64 " bytes%s",
                         backend_what(cfg), cfg->size,
                         hugetlb ? " of huge pages (are enough reserved?)" : "");
        goto fail;
    }
    hm->hva = p;
    apply_advice(hm, cfg, hugetlb);
    /* Bind before preallocating so the pages are born on the right nodes. */
    if (!bind_host_nodes(hm, cfg, errp) || (cfg->prealloc && !preallocate(hm, cfg, errp))) {
        munmap(hm->hva, hm->size);
        goto fail;
    }
    return g_steal_pointer(&hm);

fail:
    if (hm->fd >= 0) {
        close(hm->fd);
    }
    return NULL;
}

void hostmem_free(HostMem *hm)
{
    if (!hm) {
        return;
    }
    munmap(hm->hva, hm->size);
    if (hm->discard_on_free) {
        /* discard-data=on: the guest's RAM is not worth writing back to the file. */
        (void)fallocate(hm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                        (off_t)hm->size);
    }
    if (hm->fd >= 0) {
        close(hm->fd);
    }
    g_free(hm);
}

bool hostmem_discard(HostMem *hm, uint64_t offset, uint64_t len)
{
    if (offset > hm->size || len > hm->size - offset || (offset | len) % hm->page_size) {
        return false;
    }
    if (hm->shared && hm->fd >= 0) {
        /* Frees the page cache and unmaps it from every mapping of the file. */
        return fallocate(hm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                         (off_t)len) == 0;
    }
    if (hm->shared) {
        return madvise(hm->hva + offset, len, MADV_REMOVE) == 0; /* shared anonymous */
    }
    return madvise(hm->hva + offset, len, MADV_DONTNEED) == 0;
}
