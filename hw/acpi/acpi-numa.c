/*
 * The guest's NUMA topology in ACPI (6.4, 5.2.16 and 5.2.17), as QEMU builds it for pc:
 *  - SRAT: one processor affinity entry per vCPU (local APIC for ids below 255, x2APIC
 *    from 255 on), and memory affinity entries for each node's RAM.  Node memory lies end
 *    to end from address 0 in node order; a node crossing the PCI hole gets one entry
 *    below 4 GiB and one above.
 *  - SLIT: the node distance matrix, only when -numa dist gave one.
 */
#include "hw/acpi/acpi-build.h"

#define SRAT_CPU_APIC   0
#define SRAT_MEMORY     1
#define SRAT_CPU_X2APIC 2
#define SRAT_ENABLED    1
#define PC_4G           (UINT64_C(1) << 32)

static void srat_cpu(AcpiTables *t, uint32_t apic_id, uint32_t node)
{
    if (apic_id < 255) {
        acpi_put(t, SRAT_CPU_APIC, 1);
        acpi_put(t, 16, 1);
        acpi_put(t, node & 0xff, 1);    /* proximity domain [7:0] */
        acpi_put(t, apic_id, 1);
        acpi_put(t, SRAT_ENABLED, 4);
        acpi_put(t, 0, 1);              /* local SAPIC EID */
        acpi_put(t, node >> 8, 3);      /* proximity domain [31:8] */
        acpi_put(t, 0, 4);              /* clock domain */
    } else {
        acpi_put(t, SRAT_CPU_X2APIC, 1);
        acpi_put(t, 24, 1);
        acpi_put(t, 0, 2);
        acpi_put(t, node, 4);
        acpi_put(t, apic_id, 4);
        acpi_put(t, SRAT_ENABLED, 4);
        acpi_put(t, 0, 4);              /* clock domain */
        acpi_put(t, 0, 4);
    }
}

static void srat_memory(AcpiTables *t, uint64_t base, uint64_t len, uint32_t node)
{
    acpi_put(t, SRAT_MEMORY, 1);
    acpi_put(t, 40, 1);
    acpi_put(t, node, 4);
    acpi_put(t, 0, 2);
    acpi_put(t, base, 8);
    acpi_put(t, len, 8);
    acpi_put(t, 0, 4);
    acpi_put(t, SRAT_ENABLED, 4);
    acpi_put(t, 0, 8);
}

uint32_t acpi_build_srat(AcpiTables *t, const AcpiBuildConfig *cfg)
{
    uint32_t start = acpi_table_begin(t, "SRAT", 1);
    acpi_put(t, 1, 4); /* reserved, 1 for backward compatibility */
    acpi_put(t, 0, 8);
    for (unsigned cpu = 0; cpu < cfg->nr_cpus; cpu++) {
        srat_cpu(t, cpu, cfg->cpu_node[cpu]);
    }
    uint64_t offset = 0; /* into the RAM, nodes end to end */
    for (unsigned node = 0; node < cfg->numa_nodes; node++) {
        uint64_t len = cfg->node_mem[node];
        if (offset < cfg->below_4g && len) {
            uint64_t low = MIN(len, cfg->below_4g - offset);
            srat_memory(t, offset, low, node);
            offset += low;
            len -= low;
        }
        if (len) {
            srat_memory(t, PC_4G + (offset - cfg->below_4g), len, node);
            offset += len;
        }
    }
    acpi_table_end(t, start);
    return start;
}

uint32_t acpi_build_slit(AcpiTables *t, const AcpiBuildConfig *cfg)
{
    unsigned n = cfg->numa_nodes;
    uint32_t start = acpi_table_begin(t, "SLIT", 1);
    acpi_put(t, n, 8);
    for (unsigned i = 0; i < n * n; i++) {
        acpi_put(t, cfg->numa_distance[i], 1);
    }
    acpi_table_end(t, start);
    return start;
}
