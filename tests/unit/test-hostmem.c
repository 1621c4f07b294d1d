/*
 * Host memory backends (softmmu/hostmem*.c, softmmu/cmdline-memory.c): the -object /
 * -machine / -mem-path options, and what each backend really asks of the kernel, read
 * back from /proc/self/smaps (VmFlags), /proc/self/numa_maps and the backing file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "sen/config.h"
#include "cmdline-test-util.h"
#include "sen/hostmem.h"
#include "sen/memory.h"

#define MiB (UINT64_C(1) << 20)

static void test_object_defaults(void)
{
    g_autoptr(MachineConfig) cfg = ct_parse_ok(
        "-object memory-backend-ram,id=r,size=64M -object memory-backend-memfd,id=m,size=32M "
        "-object memory-backend-file,id=f,size=16M,mem-path=/tmp -machine memory-backend=m");
    const MemBackendConfig *r = machine_config_find_mem_backend(cfg, "r");
    const MemBackendConfig *m = machine_config_find_mem_backend(cfg, "m");
    const MemBackendConfig *f = machine_config_find_mem_backend(cfg, "f");
    g_assert_nonnull(r);
    g_assert_cmpint(r->kind, ==, MEM_BACKEND_RAM);
    g_assert_cmpuint(r->size, ==, 64 * MiB);
    g_assert_false(r->share); /* QEMU: only memfd is shared by default */
    g_assert_true(m->share);
    g_assert_true(m->seal);
    g_assert_false(f->share);
    g_assert_cmpstr(f->mem_path, ==, "/tmp");
    g_assert_true(r->merge); /* -machine mem-merge defaults to on */
    g_assert_false(r->dump);
    /* -m follows the backend when it is not given. */
    g_assert_true(machine_config_ram_backend(cfg) == m);
    g_assert_cmpuint(cfg->ram_size, ==, 32 * MiB);
}

static void test_machine_defaults_reach_backends(void)
{
    g_autoptr(MachineConfig) cfg = ct_parse_ok(
        "-machine mem-merge=off,dump-guest-core=on -object memory-backend-ram,id=a,size=8M "
        "-object memory-backend-ram,id=b,size=8M,merge=on,dump=off");
    const MemBackendConfig *a = machine_config_find_mem_backend(cfg, "a");
    const MemBackendConfig *b = machine_config_find_mem_backend(cfg, "b");
    g_assert_false(a->merge);
    g_assert_true(a->dump);
    g_assert_true(b->merge);
    g_assert_false(b->dump);
    g_assert_null(machine_config_ram_backend(cfg)); /* no memory-backend=: the default */
}

static void test_legacy_options(void)
{
    g_autoptr(MachineConfig) cfg = ct_parse_ok("-mem-path /tmp -m 16M -mem-prealloc");
    const MemBackendConfig *b = machine_config_ram_backend(cfg);
    g_assert_nonnull(b);
    g_assert_cmpint(b->kind, ==, MEM_BACKEND_FILE);
    g_assert_cmpstr(b->mem_path, ==, "/tmp");
    g_assert_false(b->share);
    g_assert_true(b->prealloc);
    g_assert_cmpuint(b->size, ==, 16 * MiB);

    g_autoptr(MachineConfig) cfg2 = ct_parse_ok("-mem-prealloc -m 8M");
    b = machine_config_ram_backend(cfg2);
    g_assert_cmpint(b->kind, ==, MEM_BACKEND_RAM); /* the default RAM, preallocated */
    g_assert_false(b->share);
    g_assert_true(b->prealloc);
}

static void test_host_nodes_syntax(void)
{
    uint64_t nodes;
    g_assert_true(mem_parse_host_nodes("0-2,5", &nodes, NULL));
    g_assert_cmphex(nodes, ==, 0x27);
    g_assert_true(mem_parse_host_nodes("0", &nodes, NULL));
    g_assert_cmphex(nodes, ==, 1);
    g_assert_false(mem_parse_host_nodes("2-1", &nodes, NULL));
    g_assert_false(mem_parse_host_nodes("64", &nodes, NULL));
    g_assert_false(mem_parse_host_nodes("x", &nodes, NULL));
    g_assert_false(mem_parse_host_nodes("", &nodes, NULL));

    g_autoptr(MachineConfig) cfg =
        ct_parse_ok("-object memory-backend-ram,id=r,size=8M,host-nodes=0-1,policy=interleave");
    const MemBackendConfig *r = machine_config_find_mem_backend(cfg, "r");
    g_assert_cmphex(r->host_nodes, ==, 3);
    g_assert_cmpint(r->policy, ==, MEM_POLICY_INTERLEAVE);
}

static void test_bad_options(void)
{
    ct_parse_fails("-object memory-backend-ram,id=r", "size 0");
    ct_parse_fails("-object memory-backend-ram,id=r,size=0", "size 0");
    ct_parse_fails("-object memory-backend-ram,id=r,size=12345", "multiple of the 4 KiB");
    ct_parse_fails("-object memory-backend-ram,size=8M", "'id' is missing");
    ct_parse_fails("-object memory-backend-ram,id=9x,size=8M", "identifier");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M -object memory-backend-ram,id=r,"
                "size=8M", "duplicate");
    ct_parse_fails("-object secret,id=s,data=x", "object type 'secret' is not supported");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M,hugetlb=on", "invalid parameter "
                "'hugetlb'");
    ct_parse_fails("-object memory-backend-memfd,id=r,size=8M,hugetlbsize=2M", "needs hugetlb=on");
    ct_parse_fails("-object memory-backend-memfd,id=r,size=8M,hugetlb=on,hugetlbsize=3M",
                "power of two");
    ct_parse_fails("-object memory-backend-file,id=r,size=8M", "mem-path property not set");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M,host-nodes=0", "policy default");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M,policy=bind", "needs host-nodes");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M,policy=odd,host-nodes=0",
                "policy=odd");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M,prealloc=on,reserve=off",
                "incompatible");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M,share=maybe", "share=maybe");
    ct_parse_fails("-machine memory-backend=nope", "Memory backend 'nope' not found");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M -machine memory-backend=r -m 16M",
                "does not match");
    ct_parse_fails("-object memory-backend-ram,id=r,size=8M -machine memory-backend=r "
                "-mem-path /tmp", "cannot be combined");
    ct_parse_fails("-machine mem-merge=perhaps", "mem-merge=perhaps");
}

/* The VmFlags line of the smaps entry that starts at p, or NULL. */
static char *vm_flags_of(const void *p)
{
    g_autofree char *smaps = NULL;
    g_assert_true(g_file_get_contents("/proc/self/smaps", &smaps, NULL, NULL));
    g_autofree char *start = g_strdup_printf("%lx-", (unsigned long)p);
    char *entry = strstr(smaps, start);
    if (!entry || (entry != smaps && entry[-1] != '\n')) {
        return NULL;
    }
    char *flags = strstr(entry, "VmFlags:");
    return flags ? g_strndup(flags, strcspn(flags, "\n")) : NULL;
}

static bool has_flag(const char *flags, const char *flag)
{
    g_autofree char *needle = g_strdup_printf(" %s", flag);
    const char *p = flags;
    while ((p = strstr(p, needle))) {
        char after = p[strlen(needle)];
        if (after == ' ' || after == '\0') {
            return true;
        }
        p++;
    }
    return false;
}

static HostMem *alloc_ok(MemBackendConfig *c)
{
    Error *err = NULL;
    HostMem *hm = hostmem_alloc(c, &err);
    if (!hm) {
        g_error("hostmem_alloc: %s", error_get_pretty(err));
    }
    return hm;
}

static void test_advice_reaches_kernel(void)
{
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_RAM);
    c->size = 8 * MiB;
    c->merge = true;
    c->dump = false;
    HostMem *hm = alloc_ok(c);
    g_autofree char *flags = vm_flags_of(hm->hva);
    g_assert_nonnull(flags);
    /* MADV_MERGEABLE and MADV_HUGEPAGE exist only in kernels built with KSM / THP. */
    if (g_file_test("/sys/kernel/mm/ksm", G_FILE_TEST_IS_DIR)) {
        g_assert_true(has_flag(flags, "mg"));
    }
    if (g_file_test("/sys/kernel/mm/transparent_hugepage", G_FILE_TEST_IS_DIR)) {
        g_assert_true(has_flag(flags, "hg"));
    }
    g_assert_true(has_flag(flags, "dd")); /* MADV_DONTDUMP */
    g_assert_false(has_flag(flags, "sh"));
    g_assert_cmpint(hm->fd, ==, -1);
    hostmem_free(hm);

    c->merge = false;
    c->dump = true;
    c->share = true;
    hm = alloc_ok(c);
    g_autofree char *flags2 = vm_flags_of(hm->hva);
    g_assert_false(has_flag(flags2, "mg"));
    g_assert_false(has_flag(flags2, "dd"));
    g_assert_true(has_flag(flags2, "sh"));
    hostmem_free(hm);
}

/* The machine's default RAM: private, not accounted, THP-advised, on a 2 MiB boundary
 * (a transparent huge page can only back an aligned 2 MiB stretch). */
static void test_default_ram(void)
{
    g_autoptr(MemBackendConfig) c = mem_backend_config_new_default(6 * MiB, true, false);
    g_assert_cmpint(c->kind, ==, MEM_BACKEND_RAM);
    g_assert_false(c->share);
    g_assert_false(c->reserve);
    g_assert_cmpuint(c->size, ==, 6 * MiB);
    for (int i = 0; i < 3; i++) { /* not aligned by luck */
        HostMem *hm = alloc_ok(c);
        g_assert_cmpuint((uintptr_t)hm->hva % (2 * MiB), ==, 0);
        g_autofree char *flags = vm_flags_of(hm->hva);
        g_assert_nonnull(flags);
        g_assert_false(has_flag(flags, "sh"));
        g_assert_true(has_flag(flags, "nr")); /* MAP_NORESERVE */
        g_assert_true(has_flag(flags, "dd"));
        if (g_file_test("/sys/kernel/mm/transparent_hugepage", G_FILE_TEST_IS_DIR)) {
            g_assert_true(has_flag(flags, "hg"));
        }
        if (g_file_test("/sys/kernel/mm/ksm", G_FILE_TEST_IS_DIR)) {
            g_assert_true(has_flag(flags, "mg"));
        }
        g_assert_cmpint(hm->fd, ==, -1);
        memset(hm->hva, 0x5a, hm->size); /* the whole mapping is usable */
        hostmem_free(hm);
    }
}

static uint64_t file_bytes(int fd)
{
    struct stat st;
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    return (uint64_t)st.st_blocks * 512;
}

static void test_memfd_prealloc_and_discard(void)
{
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_MEMFD);
    c->size = 4 * MiB;
    c->prealloc = true;
    HostMem *hm = alloc_ok(c);
    g_assert_cmpint(hm->fd, >=, 0);
    g_assert_cmpuint(file_bytes(hm->fd), ==, 4 * MiB); /* every page allocated */
    /* Sealed: nobody can shrink the RAM under the guest. */
    g_assert_cmpint(ftruncate(hm->fd, MiB), <, 0);

    memset(hm->hva, 0xab, 2 * MiB);
    g_assert_true(hostmem_discard(hm, MiB, MiB));
    g_assert_cmpuint(file_bytes(hm->fd), ==, 3 * MiB); /* the hole is really freed */
    g_assert_cmpuint(hm->hva[MiB], ==, 0);
    g_assert_cmpuint(hm->hva[2 * MiB - 1], ==, 0);
    g_assert_cmpuint(hm->hva[MiB - 1], ==, 0xab);
    /* Unaligned or outside: refused, nothing changed. */
    g_assert_false(hostmem_discard(hm, 100, 4096));
    g_assert_false(hostmem_discard(hm, 4 * MiB, 4096));
    g_assert_false(hostmem_discard(hm, 0, 8 * MiB));
    g_assert_cmpuint(hm->hva[0], ==, 0xab);
    hostmem_free(hm);
}

static uint64_t rss_of(const void *p)
{
    g_autofree char *smaps = NULL;
    g_assert_true(g_file_get_contents("/proc/self/smaps", &smaps, NULL, NULL));
    g_autofree char *start = g_strdup_printf("%lx-", (unsigned long)p);
    char *entry = strstr(smaps, start);
    g_assert_nonnull(entry);
    unsigned long kib;
    g_assert_cmpint(sscanf(strstr(entry, "\nRss:"), "\nRss: %lu kB", &kib), ==, 1);
    return (uint64_t)kib * 1024;
}

static void test_private_discard_frees(void)
{
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_RAM);
    c->size = 4 * MiB;
    c->merge = false;
    HostMem *hm = alloc_ok(c);
    memset(hm->hva, 1, 4 * MiB);
    uint64_t before = rss_of(hm->hva);
    g_assert_cmpuint(before, >=, 4 * MiB);
    g_assert_true(hostmem_discard(hm, 0, 2 * MiB));
    g_assert_cmpuint(rss_of(hm->hva), <=, before - 2 * MiB);
    g_assert_cmpuint(hm->hva[0], ==, 0);
    hostmem_free(hm);
}

static void test_file_backend(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-hostmem-XXXXXX", NULL);
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_FILE);
    c->size = MiB;
    c->mem_path = g_strdup(dir);
    c->share = true;
    HostMem *hm = alloc_ok(c);
    memcpy(hm->hva, "sen", 4);
    char buf[4];
    g_assert_cmpint(pread(hm->fd, buf, 4, 0), ==, 4);
    g_assert_cmpstr(buf, ==, "sen");
    hostmem_free(hm);
    /* The file made inside a directory is unlinked at once: nothing is left behind. */
    g_assert_cmpint(g_rmdir(dir), ==, 0);

    /* A named file is used (and grown) as it is. */
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "sen-hostmem-file", NULL);
    g_free(c->mem_path);
    c->mem_path = g_strdup(path);
    hm = alloc_ok(c);
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpuint((uint64_t)st.st_size, ==, MiB);
    hostmem_free(hm);
    g_unlink(path);

    c->mem_path = (g_free(c->mem_path), g_strdup("/nonexistent-dir/x"));
    c->what = g_strdup("-object memory-backend-file,id=f");
    Error *err = NULL;
    g_assert_null(hostmem_alloc(c, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "-object memory-backend-file,id=f: "
                                                   "cannot open mem-path"));
    error_free(err);
}

static void test_bind_to_node0(void)
{
    if (!g_file_test("/sys/devices/system/node/node0", G_FILE_TEST_IS_DIR)) {
        g_test_skip("host exposes no NUMA node 0 (kernel without CONFIG_NUMA)");
        return;
    }
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_RAM);
    c->size = 2 * MiB;
    c->host_nodes = 1;
    c->policy = MEM_POLICY_BIND;
    c->prealloc = true;
    HostMem *hm = alloc_ok(c);
    g_autofree char *maps = NULL;
    g_assert_true(g_file_get_contents("/proc/self/numa_maps", &maps, NULL, NULL));
    g_autofree char *line = g_strdup_printf("%lx bind:0 ", (unsigned long)hm->hva);
    g_assert_nonnull(strstr(maps, line));
    hostmem_free(hm);

    c->host_nodes = UINT64_C(1) << 63;
    Error *err = NULL;
    g_assert_null(hostmem_alloc(c, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "no NUMA node 63"));
    error_free(err);
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
/* Tests that resize the host's huge page pool hold this lock (test_hugepages.py too), so
 * parallel tests never restore the pool under each other. */
#define HUGEPAGE_LOCK "/tmp/sen-test-hugepages.lock"

/* A write in place (g_file_set_contents would rename a temp file over a /proc file). */
static bool set_nr_hugepages(long n)
{
    FILE *f = fopen(NR_HUGEPAGES, "w");
    if (!f) {
        return false;
    }
    bool ok = fprintf(f, "%ld\n", n) > 0;
    return fclose(f) == 0 && ok;
}

/* Reserves n more huge pages for the test when we may; returns the old count or -1. */
static long reserve_huge_pages(long n)
{
    g_autofree char *old = NULL;
    if (!g_file_get_contents(NR_HUGEPAGES, &old, NULL, NULL)) {
        return -1;
    }
    long before = strtol(old, NULL, 10);
    return set_nr_hugepages(before + n) ? before : -1;
}

static void test_hugetlb_memfd(void)
{
    int lock = open(HUGEPAGE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    g_assert_cmpint(lock, >=, 0);
    g_assert_cmpint(flock(lock, LOCK_EX), ==, 0);
    long before = reserve_huge_pages(2);
    g_autofree char *free_text = NULL;
    g_file_get_contents("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
                        &free_text, NULL, NULL);
    if (before < 0 || !free_text || strtol(free_text, NULL, 10) < 2) {
        if (before >= 0) {
            set_nr_hugepages(before);
        }
        g_test_skip("cannot reserve two 2 MiB huge pages here (not root, or memory too "
                    "fragmented)");
        close(lock);
        return;
    }
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_MEMFD);
    c->size = 4 * MiB;
    c->hugetlb = true;
    c->hugetlbsize = 2 * MiB;
    c->prealloc = true;
    HostMem *hm = alloc_ok(c);
    g_assert_cmpuint(hm->page_size, ==, 2 * MiB);
    g_autofree char *flags = vm_flags_of(hm->hva);
    g_assert_true(has_flag(flags, "ht")); /* a hugetlb mapping */
    memset(hm->hva, 7, 4 * MiB);
    g_assert_false(hostmem_discard(hm, 0, 4096)); /* smaller than a huge page */
    g_assert_true(hostmem_discard(hm, 2 * MiB, 2 * MiB));
    g_assert_cmpuint(hm->hva[2 * MiB], ==, 0);
    hostmem_free(hm);

    /* More than the pool holds: a clear error at creation, never a SIGBUS later. */
    c->size = 64 * MiB;
    c->prealloc = false;
    Error *err = NULL;
    g_assert_null(hostmem_alloc(c, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "huge pages"));
    error_free(err);

    set_nr_hugepages(before);
    close(lock); /* releases the flock */
}

static void test_guest_mem_on_backend(void)
{
    g_autoptr(MemBackendConfig) c = mem_backend_config_new(MEM_BACKEND_RAM);
    c->size = 4 * MiB;
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new_backend(c, &err);
    g_assert_nonnull(gm);
    g_assert_cmpint(guest_mem_backing_fd(gm), ==, -1);
    g_assert_true(guest_mem_add_region(gm, 0, 2 * MiB, 0, &err));
    g_assert_true(guest_mem_add_region(gm, 1ULL << 32, 2 * MiB, 2 * MiB, &err));
    g_assert_true(guest_mem_fill(gm, (1ULL << 32), 0x5a, 8192));
    g_assert_true(guest_mem_discard(gm, (1ULL << 32) + 4096, 4096));
    uint8_t b[2];
    g_assert_true(guest_mem_read(gm, (1ULL << 32), &b[0], 1));
    g_assert_true(guest_mem_read(gm, (1ULL << 32) + 4096, &b[1], 1));
    g_assert_cmpuint(b[0], ==, 0x5a);
    g_assert_cmpuint(b[1], ==, 0);
    g_assert_false(guest_mem_discard(gm, 2 * MiB, 4096)); /* not RAM */
    g_assert_false(guest_mem_discard(gm, 2 * MiB - 4096, 8192)); /* crosses the hole */
    guest_mem_free(gm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hostmem/cmdline/object-defaults", test_object_defaults);
    g_test_add_func("/hostmem/cmdline/machine-defaults", test_machine_defaults_reach_backends);
    g_test_add_func("/hostmem/cmdline/legacy", test_legacy_options);
    g_test_add_func("/hostmem/cmdline/host-nodes", test_host_nodes_syntax);
    g_test_add_func("/hostmem/cmdline/bad", test_bad_options);
    g_test_add_func("/hostmem/alloc/advice", test_advice_reaches_kernel);
    g_test_add_func("/hostmem/alloc/default-ram", test_default_ram);
    g_test_add_func("/hostmem/alloc/memfd-prealloc-discard", test_memfd_prealloc_and_discard);
    g_test_add_func("/hostmem/alloc/private-discard", test_private_discard_frees);
    g_test_add_func("/hostmem/alloc/file", test_file_backend);
    g_test_add_func("/hostmem/alloc/bind", test_bind_to_node0);
    g_test_add_func("/hostmem/alloc/hugetlb-memfd", test_hugetlb_memfd);
    g_test_add_func("/hostmem/guest-mem", test_guest_mem_on_backend);
    return g_test_run();
}
