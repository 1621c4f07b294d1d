/*
 * The ACPI tables of Sen's PC (hw/acpi/acpi-build.c): RSDP, RSDT, XSDT, FADT, FACS, DSDT,
 * MADT and MCFG, built as QEMU's i440fx board describes itself to firmware.
 *
 * Tables are built position-independent into two blobs, QEMU's fw_cfg files
 * "etc/acpi/tables" and "etc/acpi/rsdp", plus the list of pointers to patch and checksums
 * to compute once the blobs have addresses.  Two consumers use that list:
 *  - direct kernel boot: acpi_tables_link() patches both blobs for fixed addresses in the
 *    BIOS area, and the board copies them into guest RAM;
 *  - firmware boot: acpi_tables_loader() emits QEMU's "etc/table-loader" command file
 *    (ALLOCATE, ADD_POINTER, ADD_CHECKSUM) so SeaBIOS/OVMF place and patch them.
 */
#ifndef HW_ACPI_ACPI_BUILD_H
#define HW_ACPI_ACPI_BUILD_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "sen/error.h"

/* The PIIX4-compatible PM block (hw/acpi/piix4-pm.c), at QEMU's addresses. */
#define ACPI_PM_BASE       0x600
#define ACPI_PM1_EVT       (ACPI_PM_BASE + 0x00) /* PM1a status (2) + enable (2) */
#define ACPI_PM1_CNT       (ACPI_PM_BASE + 0x04) /* PM1a control (2) */
#define ACPI_PM_TMR        (ACPI_PM_BASE + 0x08) /* PM timer (4) */
#define ACPI_PM_SIZE       0x40
#define ACPI_GPE0_BASE     0xafe0                /* GPE0 status (2) + enable (2) */
#define ACPI_GPE0_LEN      4
#define ACPI_SMI_CMD       0xb2                  /* APM control: ACPI enable/disable */
#define ACPI_ENABLE_CMD    0xf1
#define ACPI_DISABLE_CMD   0xf0
#define ACPI_SCI_IRQ       9
#define ACPI_RESET_PORT    0xcf9                 /* PIIX reset control register */
#define ACPI_RESET_VALUE   0x06                  /* hard reset + reset CPU */
#define ACPI_PM_TIMER_HZ   3579545
/* SLP_TYP values the DSDT's \_S3_ and \_S5_ announce (QEMU's PIIX4: 1 for suspend to
 * RAM, 0 for soft-off). */
#define ACPI_SLP_TYP_S3    1
#define ACPI_SLP_TYP_S5    0
/* The FACS (64 bytes, version 0 as QEMU's): where the guest leaves its waking vectors. */
#define ACPI_FACS_SIZE            64
#define ACPI_FACS_WAKING_VECTOR   12   /* 32-bit: real mode at vector >> 4 : vector & 0xf */
#define ACPI_FACS_X_WAKING_VECTOR 24   /* 64-bit, from FACS version 1 */
#define ACPI_FACS_VERSION         32
#define ACPI_FACS_OSPM_FLAGS      36

/* Direct boot: the tables in the reserved E segment; the RSDP in the F segment, above
 * the MP table (at most ~7.5 KiB from 0xf0000), because some guests (kvm-unit-tests,
 * QEMU's own bios-tables-test) scan only 0xf0000-0xfffff for it, where SeaBIOS puts it. */
#define ACPI_DIRECT_TABLES_ADDR 0xe0000ULL
#define ACPI_DIRECT_END         0xf0000ULL
#define ACPI_DIRECT_RSDP_ADDR   0xf8000ULL

/* DMAR (hw/acpi/acpi-dmar.c): one remapping unit covering every PCI device of segment 0
 * (INCLUDE_PCI_ALL) and the IOAPIC (AcpiBuildConfig.ioapic_id) as a device scope. */
typedef struct AcpiDmarConfig {
    uint64_t base;           /* the unit's register page */
    uint8_t host_aw;         /* DMA address width in bits */
    bool intr_remap;         /* flag INTR_REMAP */
    bool x2apic_opt_out;     /* flag X2APIC_OPT_OUT */
    uint16_t ioapic_sid;     /* the IOAPIC's source-id: bus << 8 | devfn */
} AcpiDmarConfig;

typedef struct AcpiBuildConfig {
    unsigned nr_cpus;        /* APIC ids 0..nr_cpus-1 (x2APIC entries from 255 on) */
    uint8_t ioapic_id;
    uint64_t below_4g;       /* RAM below 4 GiB: the PCI window starts there */
    bool ecam;               /* the ECAM window at PCI_ECAM_BASE exists: MCFG */
    bool com1;               /* COM1 is present: a PNP0501 device in the DSDT */
    uint16_t pvpanic_port;   /* a pvpanic device's port (QEMU0001 in the DSDT), 0 = none */
    /* Guest NUMA (hw/acpi/acpi-numa.c): numa_nodes 0 = no SRAT, no SLIT. */
    unsigned numa_nodes;
    const unsigned *cpu_node;     /* node of each of the nr_cpus CPUs */
    const uint64_t *node_mem;     /* RAM bytes of each node, end to end from address 0 */
    const uint8_t *numa_distance; /* numa_nodes x numa_nodes (SLIT), or NULL: no SLIT */
    uint64_t above_4g;            /* RAM above 4 GiB */
    const AcpiDmarConfig *dmar;   /* an IOMMU's DMAR table, or NULL */
} AcpiBuildConfig;

typedef enum AcpiFile {
    ACPI_FILE_TABLES,        /* "etc/acpi/tables" */
    ACPI_FILE_RSDP,          /* "etc/acpi/rsdp" */
    ACPI_FILE__MAX,
} AcpiFile;

/* A little-endian pointer field of size bytes at offset in file; it holds an offset
 * into target until linked. */
typedef struct AcpiPointer {
    AcpiFile file, target;
    uint32_t offset;
    uint8_t size;
} AcpiPointer;

/* The byte at field makes [start, start + len) of file sum to zero. */
typedef struct AcpiChecksum {
    AcpiFile file;
    uint32_t start, len, field;
} AcpiChecksum;

typedef struct AcpiTables {
    GByteArray *blob[ACPI_FILE__MAX];
    GArray *pointers;        /* of AcpiPointer, in patch order */
    GArray *checksums;       /* of AcpiChecksum, in computation order */
    uint32_t facs;           /* offset of the FACS in ACPI_FILE_TABLES */
} AcpiTables;

const char *acpi_file_name(AcpiFile f);

bool acpi_build(const AcpiBuildConfig *cfg, AcpiTables *out, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void acpi_tables_clear(AcpiTables *t);
/* Patches every pointer for blobs at these guest addresses and fills the checksums. */
void acpi_tables_link(AcpiTables *t, const uint64_t base[ACPI_FILE__MAX]);
/* For the table builders in other files of hw/acpi (acpi-numa.c): a table header with
 * its signature, little-endian fields, and the end (length, checksum). */
uint32_t acpi_table_begin(AcpiTables *t, const char *sig, uint8_t revision);
void acpi_put(AcpiTables *t, uint64_t v, unsigned bytes);
void acpi_table_end(AcpiTables *t, uint32_t start);
/* hw/acpi/acpi-numa.c: the System Resource Affinity and System Locality tables. */
uint32_t acpi_build_srat(AcpiTables *t, const AcpiBuildConfig *cfg);
uint32_t acpi_build_slit(AcpiTables *t, const AcpiBuildConfig *cfg);
/* hw/acpi/acpi-dmar.c: the DMA Remapping table (VT-d specification, chapter 8). */
uint32_t acpi_build_dmar(AcpiTables *t, const AcpiBuildConfig *cfg);

/* QEMU's etc/table-loader: 128-byte commands (ALLOCATE, ADD_POINTER, ADD_CHECKSUM). */
GBytes *acpi_tables_loader(const AcpiTables *t);

#endif
