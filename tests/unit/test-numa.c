/*
 * Guest NUMA: -numa node/dist parsing with QEMU's rules (softmmu/cmdline-numa.c), guest
 * RAM made of the nodes' backends (softmmu/memory.c) and the SRAT/SLIT the board builds
 * (hw/acpi/acpi-numa.c), read back field by field from linked tables.
 */
#include <string.h>
#include <glib.h>
#include "hw/acpi/acpi-build.h"
#include "hw/i386/boot.h"
#include "sen/config.h"
#include "cmdline-test-util.h"
#include "sen/hostmem.h"
#include "sen/memory.h"

#define GiB (UINT64_C(1) << 30)
#define MiB (UINT64_C(1) << 20)

static const NumaNodeConfig *node(const MachineConfig *cfg, unsigned i)
{
    g_assert_cmpuint(i, <, cfg->numa_nodes->len);
    return g_ptr_array_index(cfg->numa_nodes, i);
}

static void test_memdev_nodes(void)
{
    g_autoptr(MachineConfig) cfg = ct_parse_ok(
        "-smp 4 -object memory-backend-ram,id=m0,size=2G "
        "-object memory-backend-memfd,id=m1,size=3G "
        "-numa node,nodeid=1,cpus=2-3,memdev=m1 -numa node,nodeid=0,cpus=0,cpus=1,memdev=m0 "
        "-numa dist,src=0,dst=1,val=21");
    g_assert_cmpuint(cfg->numa_nodes->len, ==, 2);
    g_assert_cmpuint(node(cfg, 0)->nodeid, ==, 0); /* kept in nodeid order */
    g_assert_cmpuint(node(cfg, 0)->size, ==, 2 * GiB);
    g_assert_cmpuint(node(cfg, 1)->size, ==, 3 * GiB);
    g_assert_cmpuint(node(cfg, 0)->cpus->len, ==, 2); /* cpus= given twice: both count */
    g_assert_cmpuint(g_array_index(node(cfg, 0)->cpus, unsigned, 1), ==, 1);
    g_assert_cmpuint(cfg->ram_size, ==, 5 * GiB); /* -m follows the nodes */
    g_assert_nonnull(cfg->numa_distance);
    const uint8_t want[] = { 10, 21, 21, 10 }; /* the other direction mirrored */
    g_assert_cmpmem(cfg->numa_distance, 4, want, 4);
}

static void test_auto_split_and_default_cpus(void)
{
    g_autoptr(MachineConfig) cfg = ct_parse_ok("-smp 3 -m 1000M -numa node -numa node,cpus=1");
    /* QEMU's split: equal 8 MiB-aligned shares, the rest on the last node. */
    g_assert_cmpuint(node(cfg, 0)->size, ==, 496 * MiB);
    g_assert_cmpuint(node(cfg, 1)->size, ==, 504 * MiB);
    /* CPUs no node names go to node 0. */
    g_assert_cmpuint(node(cfg, 0)->cpus->len, ==, 2);
    g_assert_null(cfg->numa_distance);
}

static void test_bad_numa(void)
{
    ct_parse_fails("-numa node,nodeid=1", "Node ID missing: 0");
    ct_parse_fails("-numa node -numa node,nodeid=0", "Duplicate NUMA nodeid: 0");
    ct_parse_fails("-numa node,nodeid=128", "Max number of NUMA nodes reached");
    ct_parse_fails("-numa node,mem=1G", "use memdev");
    ct_parse_fails("-numa node,memdev=nope", "memory backend 'nope' not found");
    ct_parse_fails("-object memory-backend-ram,id=a,size=1G -numa node,memdev=a -numa node",
                "either all or no nodes");
    ct_parse_fails("-object memory-backend-ram,id=a,size=1G -numa node,memdev=a "
                "-numa node,memdev=a", "can't be used multiple times");
    ct_parse_fails("-m 2G -object memory-backend-ram,id=a,size=1G -numa node,memdev=a",
                "should equal RAM size");
    ct_parse_fails("-object memory-backend-ram,id=a,size=1G -numa node,memdev=a "
                "-machine memory-backend=a", "cannot be combined");
    ct_parse_fails("-smp 2 -numa node,cpus=2", "CPU index (2) should be smaller than maxcpus");
    ct_parse_fails("-smp 2 -numa node,cpus=0-1 -numa node,cpus=1", "assigned to nodes 0 and 1");
    ct_parse_fails("-numa node,cpus=x", "cpus=x");
    ct_parse_fails("-numa node -numa node -numa node -numa dist,src=0,dst=1,val=20",
                "distance between node 0 and 2 is missing");
    ct_parse_fails("-numa node -numa dist,src=0,dst=3,val=20", "node 3 does not exist");
    ct_parse_fails("-numa node -numa dist,src=0,dst=0,val=20", "Local distance of node 0");
    ct_parse_fails("-numa node -numa node -numa dist,src=0,dst=1,val=9", "less than 10");
    ct_parse_fails("-numa node -numa node -numa dist,src=0,dst=1,val=256", "at most 255");
    ct_parse_fails("-numa node -numa node -numa dist,src=0,dst=1", "'val' is missing");
    ct_parse_fails("-numa dist,src=0,dst=0,val=10", "needs -numa node");
    ct_parse_fails("-numa cpu,node-id=0", "type 'cpu' is not supported");
    ct_parse_fails("-numa node,initiator=0", "invalid parameter 'initiator'");
}

static void test_ram_from_node_backends(void)
{
    /* Two backends end to end; the PC's low region (3 GiB) crosses from one into the
     * other and must become two regions, each in its own backend. */
    g_autoptr(MemBackendConfig) a = mem_backend_config_new(MEM_BACKEND_RAM);
    g_autoptr(MemBackendConfig) b = mem_backend_config_new(MEM_BACKEND_MEMFD);
    a->size = 2 * GiB;
    a->reserve = false;
    b->size = 3 * GiB;
    const MemBackendConfig *cfgs[] = { a, b };
    Error *err = NULL;
    GuestMemory *gm = guest_mem_new_backends(cfgs, 2, &err);
    g_assert_nonnull(gm);
    g_assert_true(guest_mem_add_region(gm, 0, 3 * GiB, 0, &err));
    g_assert_true(guest_mem_add_region(gm, 4 * GiB, 2 * GiB, 3 * GiB, &err));
    g_assert_cmpuint(guest_mem_region_count(gm), ==, 3);
    const RamRegion *r1 = guest_mem_region(gm, 1);
    g_assert_cmphex(r1->gpa, ==, 2 * GiB);
    g_assert_cmpuint(r1->backing, ==, 1);
    g_assert_cmpint(guest_mem_backing_fd(gm), ==, -1); /* more than one backing */
    /* The seam is two host mappings: no pointer spans it, copies do (piece by piece). */
    g_assert_true(guest_mem_is_ram(gm, 2 * GiB - 4, 8));
    g_assert_null(guest_mem_map(gm, 2 * GiB - 4, 8));
    g_assert_true(guest_mem_write(gm, 2 * GiB - 2, "wxyz", 4));
    char seam[4];
    g_assert_true(guest_mem_read(gm, 2 * GiB - 2, seam, 4));
    g_assert_cmpmem(seam, 4, "wxyz", 4);
    g_assert_cmpmem(r1->hva, 2, "yz", 2);
    /* A loader's blob (kernel, initrd) may straddle the seam too, and a reset re-copies it. */
    BootCtx boot;
    boot_ctx_init(&boot, gm, 3 * GiB, 2 * GiB);
    g_assert_true(boot_add_copy(&boot, 2 * GiB - 3, "kernel", 6, "kernel", &err));
    g_assert_true(guest_mem_fill(gm, 2 * GiB - 3, 0, 6));
    boot_restore(&boot);
    g_assert_true(guest_mem_read(gm, 2 * GiB - 3, seam, 4));
    g_assert_cmpmem(seam, 4, "kern", 4);
    g_assert_cmpmem(r1->hva, 3, "nel", 3);
    /* Still refused where RAM ends: 3 GiB is the PCI hole. */
    g_assert_false(boot_add_copy(&boot, 3 * GiB - 2, "kernel", 6, "initrd", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "initrd"));
    error_free(err);
    err = NULL;
    boot_ctx_clear(&boot);
    g_assert_true(guest_mem_write(gm, 2 * GiB - 4, "abcd", 4));
    g_assert_true(guest_mem_write(gm, 2 * GiB, "efgh", 4));
    g_assert_true(guest_mem_write(gm, 6 * GiB - 4, "ijkl", 4));
    char buf[4];
    g_assert_true(guest_mem_read(gm, 2 * GiB, buf, 4));
    g_assert_cmpmem(buf, 4, "efgh", 4);
    g_assert_true(guest_mem_discard(gm, 2 * GiB, 4096));
    g_assert_true(guest_mem_read(gm, 2 * GiB, buf, 4));
    g_assert_cmpmem(buf, 4, "\0\0\0\0", 4);
    g_assert_true(guest_mem_read(gm, 2 * GiB - 4, buf, 4));
    g_assert_cmpmem(buf, 4, "abcd", 4);
    guest_mem_free(gm);
}

/* The table with signature sig in the linked tables blob, checksum verified. */
static const uint8_t *find_table(const AcpiTables *t, const char *sig, uint32_t *len)
{
    const GByteArray *b = t->blob[ACPI_FILE_TABLES];
    for (uint32_t off = 0; off + 36 <= b->len; off++) {
        if (memcmp(b->data + off, sig, 4) != 0) {
            continue;
        }
        memcpy(len, b->data + off + 4, 4);
        g_assert_cmpuint(off + *len, <=, b->len);
        uint8_t sum = 0;
        for (uint32_t i = 0; i < *len; i++) {
            sum += b->data[off + i];
        }
        g_assert_cmpuint(sum, ==, 0);
        return b->data + off;
    }
    return NULL;
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;) {
        v = v << 8 | p[i];
    }
    return v;
}

static void build_linked(const AcpiBuildConfig *cfg, AcpiTables *t)
{
    Error *err = NULL;
    g_assert_true(acpi_build(cfg, t, &err));
    const uint64_t base[ACPI_FILE__MAX] = { 0xe0000, 0xf8000 };
    acpi_tables_link(t, base);
}

static void test_srat_slit(void)
{
    const unsigned cpu_node[4] = { 0, 0, 1, 1 };
    const uint64_t node_mem[2] = { 2 * GiB, 3 * GiB };
    const uint8_t dist[4] = { 10, 21, 21, 10 };
    AcpiBuildConfig cfg = {
        .nr_cpus = 4, .ioapic_id = 4, .below_4g = 3 * GiB, .above_4g = 2 * GiB,
        .numa_nodes = 2, .cpu_node = cpu_node, .node_mem = node_mem,
        .numa_distance = dist,
    };
    AcpiTables t;
    build_linked(&cfg, &t);
    uint32_t len;
    const uint8_t *srat = find_table(&t, "SRAT", &len);
    g_assert_nonnull(srat);
    g_assert_cmpuint(len, ==, 48 + 4 * 16 + 3 * 40);
    g_assert_cmpuint(le(srat + 36, 4), ==, 1);
    for (unsigned c = 0; c < 4; c++) {
        const uint8_t *e = srat + 48 + 16 * c;
        g_assert_cmpuint(e[0], ==, 0);            /* local APIC affinity */
        g_assert_cmpuint(e[1], ==, 16);
        g_assert_cmpuint(e[2], ==, cpu_node[c]);  /* proximity domain */
        g_assert_cmpuint(e[3], ==, c);            /* APIC id */
        g_assert_cmpuint(le(e + 4, 4), ==, 1);    /* enabled */
    }
    /* Node 0: [0, 2G); node 1: [2G, 3G) and, above the PCI hole, [4G, 6G). */
    const uint64_t want[3][3] = { { 0, 2 * GiB, 0 }, { 2 * GiB, GiB, 1 },
                                  { 4 * GiB, 2 * GiB, 1 } };
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *e = srat + 48 + 64 + 40 * i;
        g_assert_cmpuint(e[0], ==, 1);
        g_assert_cmpuint(e[1], ==, 40);
        g_assert_cmpuint(le(e + 2, 4), ==, want[i][2]);
        g_assert_cmphex(le(e + 8, 8), ==, want[i][0]);
        g_assert_cmphex(le(e + 16, 8), ==, want[i][1]);
        g_assert_cmpuint(le(e + 28, 4), ==, 1);
    }
    const uint8_t *slit = find_table(&t, "SLIT", &len);
    g_assert_nonnull(slit);
    g_assert_cmpuint(len, ==, 36 + 8 + 4);
    g_assert_cmpuint(le(slit + 36, 8), ==, 2);
    g_assert_cmpmem(slit + 44, 4, dist, 4);
    /* Both are listed in the XSDT. */
    uint32_t xlen;
    const uint8_t *xsdt = find_table(&t, "XSDT", &xlen);
    unsigned found = 0;
    for (uint32_t off = 36; off + 8 <= xlen; off += 8) {
        uint64_t addr = le(xsdt + off, 8);
        const uint8_t *tbl = t.blob[ACPI_FILE_TABLES]->data + (addr - 0xe0000);
        found += memcmp(tbl, "SRAT", 4) == 0 || memcmp(tbl, "SLIT", 4) == 0;
    }
    g_assert_cmpuint(found, ==, 2);
    acpi_tables_clear(&t);
}

static void test_srat_x2apic_no_slit(void)
{
    enum { CPUS = 300 };
    unsigned cpu_node[CPUS];
    for (unsigned c = 0; c < CPUS; c++) {
        cpu_node[c] = c % 3;
    }
    const uint64_t node_mem[3] = { GiB, GiB, GiB };
    AcpiBuildConfig cfg = {
        .nr_cpus = CPUS, .below_4g = 3 * GiB, .numa_nodes = 3, .cpu_node = cpu_node,
        .node_mem = node_mem,
    };
    AcpiTables t;
    build_linked(&cfg, &t);
    uint32_t len;
    const uint8_t *srat = find_table(&t, "SRAT", &len);
    g_assert_cmpuint(len, ==, 48 + 255 * 16 + 45 * 24 + 3 * 40);
    const uint8_t *x = srat + 48 + 255 * 16 + 24 * (299 - 255);
    g_assert_cmpuint(x[0], ==, 2);                /* x2APIC affinity */
    g_assert_cmpuint(x[1], ==, 24);
    g_assert_cmpuint(le(x + 4, 4), ==, 299 % 3);  /* proximity domain */
    g_assert_cmpuint(le(x + 8, 4), ==, 299);      /* x2APIC id */
    g_assert_null(find_table(&t, "SLIT", &len));
    acpi_tables_clear(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/numa/cmdline/memdev-nodes", test_memdev_nodes);
    g_test_add_func("/numa/cmdline/auto-split", test_auto_split_and_default_cpus);
    g_test_add_func("/numa/cmdline/bad", test_bad_numa);
    g_test_add_func("/numa/ram-from-node-backends", test_ram_from_node_backends);
    g_test_add_func("/numa/acpi/srat-slit", test_srat_slit);
    g_test_add_func("/numa/acpi/srat-x2apic", test_srat_x2apic_no_slit);
    return g_test_run();
}
