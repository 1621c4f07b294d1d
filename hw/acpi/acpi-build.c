/*
 * Sen's ACPI tables (see acpi-build.h).  Layouts follow the ACPI 6.x specification,
 * chapter 5; values follow what QEMU 7.2 gives an i440fx "pc" guest, so the same guest
 * code works on both: PIIX4 PM ports, SCI on IRQ 9, reset through port 0xcf9.
 *
 * Every table starts with the 36-byte system description header; pointers between
 * tables are recorded (AcpiPointer) rather than written as addresses, and every header
 * checksum is recorded (AcpiChecksum) and computed only when the blobs are linked.
 */
#include <string.h>
#include "hw/acpi/acpi-build.h"
#include "hw/acpi/aml.h"
#include "sen/pci.h"

#define SDT_HEADER_SIZE   36
#define SDT_CHECKSUM_OFF  9
#define OEM_ID            "SEN   "
#define OEM_TABLE_ID      "SENPC   "
#define CREATOR_ID        "SENV"

#define FACS_SIZE         ACPI_FACS_SIZE
#define FACS_ALIGN        64
#define FADT_REVISION     3    /* ACPI 2.0 layout with 64-bit X_ fields: 244 bytes */
#define FADT_SIZE         244
#define RSDP_SIZE         36
#define RSDP_V1_SIZE      20

/* FADT flags */
#define FADT_F_WBINVD          (1u << 0)
#define FADT_F_PROC_C1         (1u << 2)
#define FADT_F_SLP_BUTTON      (1u << 5) /* no sleep button (the power button is fixed) */
#define FADT_F_RTC_S4          (1u << 7)
#define FADT_F_RESET_REG_SUP   (1u << 10)
#define FADT_F_USE_PLATFORM_CLOCK (1u << 15)
#define FADT_BOOT_LEGACY_DEVICES 0x0001
#define FADT_BOOT_8042         0x0002
#define RTC_CENTURY_REG        0x32
#define GAS_SPACE_IO           1
#define GAS_ACCESS_BYTE        1

/* MADT */
#define MADT_LAPIC_ADDR        0xfee00000u
#define MADT_IOAPIC_ADDR       0xfec00000u
#define MADT_PCAT_COMPAT       1u
#define MADT_LAPIC             0
#define MADT_IOAPIC            1
#define MADT_INT_OVERRIDE      2
#define MADT_LAPIC_NMI         4
#define MADT_X2APIC            9
#define MADT_X2APIC_NMI        10
#define MADT_ENABLED           1u
#define MADT_MAX_XAPIC_ID      254     /* 0xff is the xAPIC broadcast id */
#define MPS_INTI_HIGH_LEVEL    0x000d  /* polarity active high, trigger level */
#define LINT1                  1

#define PCI_IO_HOLE_START      0x0cf8
#define PCI_IO_HOLE_END        0x0cff
#define VGA_MEM_START          0x000a0000u
#define VGA_MEM_END            0x000bffffu
#define PCI_MMIO_END           0xfebfffffu /* the IOAPIC, HPET, LAPIC follow */

const char *acpi_file_name(AcpiFile f)
{
    static const char *const names[] = {
        [ACPI_FILE_TABLES] = "etc/acpi/tables",
        [ACPI_FILE_RSDP] = "etc/acpi/rsdp",
    };
    return names[f];
}

/* ---- byte helpers ---- */

static void put(GByteArray *b, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        g_byte_array_append(b, &c, 1);
    }
}

static void put_str(GByteArray *b, const char *s, size_t len)
{
    g_byte_array_append(b, (const guint8 *)s, len);
}

static void set_le(GByteArray *b, uint32_t off, uint64_t v, unsigned bytes)
{
    g_assert(off + bytes <= b->len);
    for (unsigned i = 0; i < bytes; i++) {
        b->data[off + i] = (uint8_t)(v >> (8 * i));
    }
}

static void pad_to(GByteArray *b, unsigned align)
{
    while (b->len % align) {
        put(b, 0, 1);
    }
}

static void add_pointer(AcpiTables *t, AcpiFile file, uint32_t offset, uint8_t size,
                        AcpiFile target, uint32_t target_offset)
{
    set_le(t->blob[file], offset, target_offset, size);
    AcpiPointer p = { .file = file, .target = target, .offset = offset, .size = size };
    g_array_append_val(t->pointers, p);
}

static void add_checksum(AcpiTables *t, AcpiFile file, uint32_t start, uint32_t len,
                         uint32_t field)
{
    AcpiChecksum c = { .file = file, .start = start, .len = len, .field = field };
    g_array_append_val(t->checksums, c);
}

/* ---- tables ---- */

static uint32_t table_begin(GByteArray *b, const char *sig, uint8_t revision)
{
    uint32_t start = b->len;
    put_str(b, sig, 4);
    put(b, 0, 4);                     /* length, set by table_end */
    put(b, revision, 1);
    put(b, 0, 1);                     /* checksum, computed when linked */
    put_str(b, OEM_ID, 6);
    put_str(b, OEM_TABLE_ID, 8);
    put(b, 1, 4);                     /* OEM revision */
    put_str(b, CREATOR_ID, 4);
    put(b, 1, 4);                     /* creator revision */
    return start;
}

static void table_end(AcpiTables *t, uint32_t start)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    set_le(b, start + 4, b->len - start, 4);
    add_checksum(t, ACPI_FILE_TABLES, start, b->len - start, start + SDT_CHECKSUM_OFF);
}

uint32_t acpi_table_begin(AcpiTables *t, const char *sig, uint8_t revision)
{
    return table_begin(t->blob[ACPI_FILE_TABLES], sig, revision);
}

void acpi_put(AcpiTables *t, uint64_t v, unsigned bytes)
{
    put(t->blob[ACPI_FILE_TABLES], v, bytes);
}

void acpi_table_end(AcpiTables *t, uint32_t start)
{
    table_end(t, start);
}

/* Firmware ACPI Control Structure: the guest writes its S3 waking vector here; no global
 * lock users. */
static uint32_t build_facs(AcpiTables *t)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    pad_to(b, FACS_ALIGN);
    uint32_t start = b->len;
    put_str(b, "FACS", 4);
    put(b, FACS_SIZE, 4);
    while (b->len < start + FACS_SIZE) {
        put(b, 0, 1);
    }
    return start;
}

/* \_Sx_: SLP_TYP for PM1a and PM1b, two reserved. */
static void dsdt_sleep_state(Aml *out, const char *name, unsigned slp_typ)
{
    g_autoptr(Aml) vals = aml_new();
    for (unsigned i = 0; i < 4; i++) {
        aml_integer(vals, i < 2 ? slp_typ : 0);
    }
    g_autoptr(Aml) pkg = aml_new();
    aml_package(pkg, 4, vals);
    aml_name_obj(out, name, pkg);
}

static void dsdt_pci_crs(Aml *out, const AcpiBuildConfig *cfg)
{
    g_autoptr(Aml) rt = aml_new();
    aml_res_word_bus(rt, 0x00, 0xff);
    aml_res_io(rt, PCI_IO_HOLE_START, PCI_IO_HOLE_START, 1, 8);
    aml_res_word_io(rt, 0x0000, PCI_IO_HOLE_START - 1);
    aml_res_word_io(rt, PCI_IO_HOLE_END + 1, 0xffff);
    aml_res_dword_mem(rt, VGA_MEM_START, VGA_MEM_END, false);
    /* The 32-bit window: from the end of low RAM to below the IOAPIC, minus ECAM. */
    uint64_t start = cfg->below_4g;
    if (cfg->ecam) {
        if (start < PCI_ECAM_BASE) {
            aml_res_dword_mem(rt, (uint32_t)start, (uint32_t)(PCI_ECAM_BASE - 1), false);
        }
        start = PCI_ECAM_BASE + PCI_ECAM_SIZE;
    }
    if (start <= PCI_MMIO_END) {
        aml_res_dword_mem(rt, (uint32_t)start, PCI_MMIO_END, false);
    }
    aml_res_end(rt);
    g_autoptr(Aml) buf = aml_new();
    aml_buffer(buf, rt);
    aml_name_obj(out, "_CRS", buf);
}

/* INTx routing as hw/pci and the MP table have it: slot s pin p -> GSI 16 + (s+p)%4,
 * straight to the IOAPIC (source Zero: the last field is a GSI, no link device). */
static void dsdt_pci_prt(Aml *out)
{
    g_autoptr(Aml) entries = aml_new();
    for (unsigned slot = 0; slot < PCI_SLOT_MAX; slot++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            g_autoptr(Aml) e = aml_new();
            aml_integer(e, ((uint64_t)slot << 16) | 0xffff);
            aml_integer(e, pin);
            aml_integer(e, 0);
            aml_integer(e, pci_intx_gsi(PCI_DEVFN(slot, 0), (uint8_t)(pin + 1)));
            aml_package(entries, 4, e);
        }
    }
    g_autoptr(Aml) pkg = aml_new();
    aml_package(pkg, PCI_SLOT_MAX * 4, entries);
    aml_name_obj(out, "_PRT", pkg);
}

/* Device(name) { _HID EisaId(hid); _UID uid; _CRS { io ports; IRQ irq } } */
static void dsdt_isa_device(Aml *out, const char *name, const char *hid, unsigned uid,
                            const uint16_t (*io)[2], unsigned nr_io, int irq)
{
    g_autoptr(Aml) body = aml_new();
    aml_name_eisaid(body, "_HID", hid);
    aml_name_int(body, "_UID", uid);
    g_autoptr(Aml) rt = aml_new();
    for (unsigned i = 0; i < nr_io; i++) {
        aml_res_io(rt, io[i][0], io[i][0], 1, (uint8_t)io[i][1]);
    }
    if (irq >= 0) {
        aml_res_irq(rt, (uint16_t)(1u << irq));
    }
    aml_res_end(rt);
    g_autoptr(Aml) buf = aml_new();
    aml_buffer(buf, rt);
    aml_name_obj(body, "_CRS", buf);
    aml_device(out, name, body);
}

/* Motherboard resources (PNP0C02): the ECAM window, so Linux trusts the MCFG entry. */
static void dsdt_ecam_reservation(Aml *out)
{
    g_autoptr(Aml) body = aml_new();
    aml_name_eisaid(body, "_HID", "PNP0C02");
    aml_name_int(body, "_UID", 1);
    g_autoptr(Aml) rt = aml_new();
    aml_res_dword_mem(rt, (uint32_t)PCI_ECAM_BASE,
                      (uint32_t)(PCI_ECAM_BASE + PCI_ECAM_SIZE - 1), true);
    aml_res_end(rt);
    g_autoptr(Aml) buf = aml_new();
    aml_buffer(buf, rt);
    aml_name_obj(body, "_CRS", buf);
    aml_device(out, "MCFG", body);
}

static uint32_t build_dsdt(AcpiTables *t, const AcpiBuildConfig *cfg)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    uint32_t start = table_begin(b, "DSDT", 1); /* revision 1: 32-bit integers */

    g_autoptr(Aml) pci = aml_new();
    aml_name_eisaid(pci, "_HID", "PNP0A03");
    aml_name_int(pci, "_ADR", 0);
    aml_name_int(pci, "_UID", 0);
    dsdt_pci_crs(pci, cfg);
    dsdt_pci_prt(pci);
    static const uint16_t kbd_io[][2] = { { 0x60, 1 }, { 0x64, 1 } };
    static const uint16_t rtc_io[][2] = { { 0x70, 8 } };
    static const uint16_t com1_io[][2] = { { 0x3f8, 8 } };
    dsdt_isa_device(pci, "KBD", "PNP0303", 0, kbd_io, G_N_ELEMENTS(kbd_io), 1);
    dsdt_isa_device(pci, "RTC", "PNP0B00", 0, rtc_io, G_N_ELEMENTS(rtc_io), 8);
    if (cfg->com1) {
        dsdt_isa_device(pci, "COM1", "PNP0501", 1, com1_io, G_N_ELEMENTS(com1_io), 4);
    }
    if (cfg->pvpanic_port) {
        /* QEMU's PEVT: Linux's pvpanic driver matches the id and takes the port from
         * _CRS; _STA says present, enabled, shown, functioning. */
        g_autoptr(Aml) pevt = aml_new();
        aml_name_str(pevt, "_HID", "QEMU0001");
        g_autoptr(Aml) rt = aml_new();
        aml_res_io(rt, cfg->pvpanic_port, cfg->pvpanic_port, 1, 1);
        aml_res_end(rt);
        g_autoptr(Aml) buf = aml_new();
        aml_buffer(buf, rt);
        aml_name_obj(pevt, "_CRS", buf);
        aml_name_int(pevt, "_STA", 0xf);
        aml_device(pci, "PEVT", pevt);
    }

    g_autoptr(Aml) sb = aml_new();
    aml_device(sb, "PCI0", pci);
    if (cfg->ecam) {
        dsdt_ecam_reservation(sb);
    }
    /* One processor device per vCPU, _UID = the MADT's ACPI processor UID. */
    for (unsigned i = 0; i < cfg->nr_cpus; i++) {
        g_autoptr(Aml) cpu = aml_new();
        char name[5];
        g_snprintf(name, sizeof(name), "C%03X", i);
        aml_name_str(cpu, "_HID", "ACPI0007");
        aml_name_int(cpu, "_UID", i);
        aml_device(sb, name, cpu);
    }

    g_autoptr(Aml) top = aml_new();
    aml_scope(top, "\\_SB", sb);
    dsdt_sleep_state(top, "\\_S3_", ACPI_SLP_TYP_S3);
    dsdt_sleep_state(top, "\\_S5_", ACPI_SLP_TYP_S5);

    g_byte_array_append(b, top->data, top->len);
    table_end(t, start);
    return start;
}

/* Generic address structure for an I/O port block. */
static void put_gas_io(GByteArray *b, uint8_t bit_width, uint8_t access, uint64_t port)
{
    put(b, port ? GAS_SPACE_IO : 0, 1);
    put(b, port ? bit_width : 0, 1);
    put(b, 0, 1);                    /* bit offset */
    put(b, port ? access : 0, 1);
    put(b, port, 8);
}

static uint32_t build_fadt(AcpiTables *t, uint32_t facs, uint32_t dsdt)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    uint32_t start = table_begin(b, "FACP", FADT_REVISION);
    uint32_t facs_field = b->len;
    put(b, 0, 4);                    /* FIRMWARE_CTRL */
    uint32_t dsdt_field = b->len;
    put(b, 0, 4);                    /* DSDT */
    put(b, 0, 1);                    /* reserved (INT_MODEL in 1.0) */
    put(b, 0, 1);                    /* preferred PM profile: unspecified */
    put(b, ACPI_SCI_IRQ, 2);
    put(b, ACPI_SMI_CMD, 4);
    put(b, ACPI_ENABLE_CMD, 1);
    put(b, ACPI_DISABLE_CMD, 1);
    put(b, 0, 1);                    /* S4BIOS_REQ */
    put(b, 0, 1);                    /* PSTATE_CNT */
    put(b, ACPI_PM1_EVT, 4);         /* PM1a_EVT_BLK */
    put(b, 0, 4);
    put(b, ACPI_PM1_CNT, 4);         /* PM1a_CNT_BLK */
    put(b, 0, 4);
    put(b, 0, 4);                    /* PM2_CNT_BLK */
    put(b, ACPI_PM_TMR, 4);
    put(b, ACPI_GPE0_BASE, 4);
    put(b, 0, 4);                    /* GPE1_BLK */
    put(b, 4, 1);                    /* PM1_EVT_LEN */
    put(b, 2, 1);                    /* PM1_CNT_LEN */
    put(b, 0, 1);                    /* PM2_CNT_LEN */
    put(b, 4, 1);                    /* PM_TMR_LEN */
    put(b, ACPI_GPE0_LEN, 1);
    put(b, 0, 1);                    /* GPE1_BLK_LEN */
    put(b, 0, 1);                    /* GPE1_BASE */
    put(b, 0, 1);                    /* CST_CNT */
    put(b, 0xfff, 2);                /* P_LVL2_LAT: C2 not supported */
    put(b, 0xfff, 2);                /* P_LVL3_LAT: C3 not supported */
    put(b, 0, 2);                    /* FLUSH_SIZE */
    put(b, 0, 2);                    /* FLUSH_STRIDE */
    put(b, 0, 1);                    /* DUTY_OFFSET */
    put(b, 0, 1);                    /* DUTY_WIDTH */
    put(b, 0, 1);                    /* DAY_ALRM */
    put(b, 0, 1);                    /* MON_ALRM */
    put(b, RTC_CENTURY_REG, 1);
    put(b, FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042, 2);
    put(b, 0, 1);                    /* reserved */
    put(b, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RTC_S4 |
           FADT_F_RESET_REG_SUP | FADT_F_USE_PLATFORM_CLOCK, 4);
    put_gas_io(b, 8, GAS_ACCESS_BYTE, ACPI_RESET_PORT);
    put(b, ACPI_RESET_VALUE, 1);
    put(b, 0, 3);                    /* reserved */
    put(b, 0, 8);                    /* X_FIRMWARE_CTRL: FIRMWARE_CTRL is enough */
    uint32_t x_dsdt_field = b->len;
    put(b, 0, 8);                    /* X_DSDT */
    put_gas_io(b, 32, 0, ACPI_PM1_EVT);
    put_gas_io(b, 0, 0, 0);
    put_gas_io(b, 16, 0, ACPI_PM1_CNT);
    put_gas_io(b, 0, 0, 0);
    put_gas_io(b, 0, 0, 0);          /* X_PM2_CNT_BLK */
    put_gas_io(b, 32, 0, ACPI_PM_TMR);
    put_gas_io(b, ACPI_GPE0_LEN * 8, 0, ACPI_GPE0_BASE);
    put_gas_io(b, 0, 0, 0);          /* X_GPE1_BLK */
    g_assert(b->len - start == FADT_SIZE);
    add_pointer(t, ACPI_FILE_TABLES, facs_field, 4, ACPI_FILE_TABLES, facs);
    add_pointer(t, ACPI_FILE_TABLES, dsdt_field, 4, ACPI_FILE_TABLES, dsdt);
    add_pointer(t, ACPI_FILE_TABLES, x_dsdt_field, 8, ACPI_FILE_TABLES, dsdt);
    table_end(t, start);
    return start;
}

static uint32_t build_madt(AcpiTables *t, const AcpiBuildConfig *cfg)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    uint32_t start = table_begin(b, "APIC", 1);
    put(b, MADT_LAPIC_ADDR, 4);
    put(b, MADT_PCAT_COMPAT, 4);
    bool x2apic = false;
    for (unsigned id = 0; id < cfg->nr_cpus; id++) {
        if (id <= MADT_MAX_XAPIC_ID) {
            put(b, MADT_LAPIC, 1);
            put(b, 8, 1);
            put(b, id, 1);           /* ACPI processor UID */
            put(b, id, 1);           /* APIC id */
            put(b, MADT_ENABLED, 4);
        } else {
            x2apic = true;
            put(b, MADT_X2APIC, 1);
            put(b, 16, 1);
            put(b, 0, 2);
            put(b, id, 4);           /* x2APIC id */
            put(b, MADT_ENABLED, 4);
            put(b, id, 4);           /* ACPI processor UID */
        }
    }
    put(b, MADT_IOAPIC, 1);
    put(b, 12, 1);
    put(b, cfg->ioapic_id, 1);
    put(b, 0, 1);
    put(b, MADT_IOAPIC_ADDR, 4);
    put(b, 0, 4);                    /* GSI base */
    /* ISA IRQ 0 (the PIT) is wired to IOAPIC pin 2, as the MP table says. */
    put(b, MADT_INT_OVERRIDE, 1);
    put(b, 10, 1);
    put(b, 0, 1);                    /* bus: ISA */
    put(b, 0, 1);                    /* source IRQ */
    put(b, 2, 4);                    /* GSI */
    put(b, 0, 2);                    /* flags: conforms to the bus */
    /* The SCI is level-triggered, active high (the PM block holds the line). */
    put(b, MADT_INT_OVERRIDE, 1);
    put(b, 10, 1);
    put(b, 0, 1);
    put(b, ACPI_SCI_IRQ, 1);
    put(b, ACPI_SCI_IRQ, 4);
    put(b, MPS_INTI_HIGH_LEVEL, 2);
    /* NMI on LINT1 of every processor. */
    put(b, MADT_LAPIC_NMI, 1);
    put(b, 6, 1);
    put(b, 0xff, 1);                 /* all processors */
    put(b, 0, 2);
    put(b, LINT1, 1);
    if (x2apic) {
        put(b, MADT_X2APIC_NMI, 1);
        put(b, 12, 1);
        put(b, 0, 2);                /* flags */
        put(b, 0xffffffffu, 4);      /* all processors */
        put(b, LINT1, 1);
        put(b, 0, 3);
    }
    table_end(t, start);
    return start;
}

static uint32_t build_mcfg(AcpiTables *t)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    uint32_t start = table_begin(b, "MCFG", 1);
    put(b, 0, 8);                    /* reserved */
    put(b, PCI_ECAM_BASE, 8);
    put(b, 0, 2);                    /* PCI segment group */
    put(b, 0, 1);                    /* first bus */
    put(b, PCI_ECAM_SIZE / (1u << 20) - 1, 1); /* last bus: 1 MiB per bus */
    put(b, 0, 4);
    table_end(t, start);
    return start;
}

/* RSDT (4-byte entries) or XSDT (8-byte entries) listing the tables. */
static uint32_t build_root(AcpiTables *t, const char *sig, unsigned entry_size,
                           const uint32_t *tables, unsigned n)
{
    GByteArray *b = t->blob[ACPI_FILE_TABLES];
    uint32_t start = table_begin(b, sig, 1);
    for (unsigned i = 0; i < n; i++) {
        uint32_t field = b->len;
        put(b, 0, entry_size);
        add_pointer(t, ACPI_FILE_TABLES, field, (uint8_t)entry_size, ACPI_FILE_TABLES,
                    tables[i]);
    }
    table_end(t, start);
    return start;
}

static void build_rsdp(AcpiTables *t, uint32_t rsdt, uint32_t xsdt)
{
    GByteArray *b = t->blob[ACPI_FILE_RSDP];
    put_str(b, "RSD PTR ", 8);
    put(b, 0, 1);                    /* checksum of the first 20 bytes */
    put_str(b, OEM_ID, 6);
    put(b, 2, 1);                    /* revision: ACPI 2.0+ (XSDT present) */
    put(b, 0, 4);                    /* RSDT address */
    put(b, RSDP_SIZE, 4);
    put(b, 0, 8);                    /* XSDT address */
    put(b, 0, 1);                    /* extended checksum */
    put(b, 0, 3);
    add_pointer(t, ACPI_FILE_RSDP, 16, 4, ACPI_FILE_TABLES, rsdt);
    add_pointer(t, ACPI_FILE_RSDP, 24, 8, ACPI_FILE_TABLES, xsdt);
    /* The first checksum is covered by the second: compute it first. */
    add_checksum(t, ACPI_FILE_RSDP, 0, RSDP_V1_SIZE, 8);
    add_checksum(t, ACPI_FILE_RSDP, 0, RSDP_SIZE, 32);
}

bool acpi_build(const AcpiBuildConfig *cfg, AcpiTables *out, Error **errp)
{
    if (cfg->nr_cpus == 0) {
        error_setg(errp, "ACPI tables: no CPUs");
        return false;
    }
    /* The MADT length is a 32-bit field, but the table must stay a sane size. */
    if (cfg->nr_cpus > 4096) {
        error_setg(errp, "ACPI tables: %u CPUs: at most 4096", cfg->nr_cpus);
        return false;
    }
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < ACPI_FILE__MAX; i++) {
        out->blob[i] = g_byte_array_new();
    }
    out->pointers = g_array_new(FALSE, FALSE, sizeof(AcpiPointer));
    out->checksums = g_array_new(FALSE, FALSE, sizeof(AcpiChecksum));

    uint32_t facs = build_facs(out);
    out->facs = facs;
    uint32_t dsdt = build_dsdt(out, cfg);
    uint32_t tables[7];
    unsigned n = 0;
    tables[n++] = build_fadt(out, facs, dsdt);
    tables[n++] = build_madt(out, cfg);
    if (cfg->ecam) {
        tables[n++] = build_mcfg(out);
    }
    if (cfg->dmar) {
        tables[n++] = acpi_build_dmar(out, cfg);
    }
    if (cfg->numa_nodes) {
        tables[n++] = acpi_build_srat(out, cfg);
        if (cfg->numa_distance) {
            tables[n++] = acpi_build_slit(out, cfg);
        }
    }
    uint32_t rsdt = build_root(out, "RSDT", 4, tables, n);
    uint32_t xsdt = build_root(out, "XSDT", 8, tables, n);
    build_rsdp(out, rsdt, xsdt);
    return true;
}

void acpi_tables_clear(AcpiTables *t)
{
    for (unsigned i = 0; i < ACPI_FILE__MAX; i++) {
        if (t->blob[i]) {
            g_byte_array_unref(t->blob[i]);
        }
    }
    if (t->pointers) {
        g_array_unref(t->pointers);
    }
    if (t->checksums) {
        g_array_unref(t->checksums);
    }
    memset(t, 0, sizeof(*t));
}

void acpi_tables_link(AcpiTables *t, const uint64_t base[ACPI_FILE__MAX])
{
    for (guint i = 0; i < t->pointers->len; i++) {
        const AcpiPointer *p = &g_array_index(t->pointers, AcpiPointer, i);
        GByteArray *b = t->blob[p->file];
        uint64_t v = 0;
        for (unsigned k = 0; k < p->size; k++) {
            v |= (uint64_t)b->data[p->offset + k] << (8 * k);
        }
        set_le(b, p->offset, v + base[p->target], p->size);
    }
    for (guint i = 0; i < t->checksums->len; i++) {
        const AcpiChecksum *c = &g_array_index(t->checksums, AcpiChecksum, i);
        GByteArray *b = t->blob[c->file];
        uint8_t sum = 0;
        b->data[c->field] = 0;
        for (uint32_t k = 0; k < c->len; k++) {
            sum += b->data[c->start + k];
        }
        b->data[c->field] = (uint8_t)-sum;
    }
}

/* ---- QEMU's table-loader command file ---- */

#define LOADER_CMD_SIZE      128
#define LOADER_FILE_SIZE     56
#define LOADER_ALLOCATE      1
#define LOADER_ADD_POINTER   2
#define LOADER_ADD_CHECKSUM  3
#define LOADER_ZONE_HIGH     1
#define LOADER_ZONE_FSEG     2

static uint8_t *loader_cmd(GByteArray *out, uint32_t command)
{
    guint at = out->len;
    g_byte_array_set_size(out, at + LOADER_CMD_SIZE);
    uint8_t *c = out->data + at;
    memset(c, 0, LOADER_CMD_SIZE);
    c[0] = (uint8_t)command;
    return c + 4;
}

static void loader_file(uint8_t *field, AcpiFile f)
{
    g_strlcpy((char *)field, acpi_file_name(f), LOADER_FILE_SIZE);
}

static void st32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

GBytes *acpi_tables_loader(const AcpiTables *t)
{
    GByteArray *out = g_byte_array_new();
    /* The RSDP must be found by a scan of the F segment; the tables go anywhere. */
    uint8_t *c = loader_cmd(out, LOADER_ALLOCATE);
    loader_file(c, ACPI_FILE_RSDP);
    st32(c + LOADER_FILE_SIZE, 16);
    c[LOADER_FILE_SIZE + 4] = LOADER_ZONE_FSEG;
    c = loader_cmd(out, LOADER_ALLOCATE);
    loader_file(c, ACPI_FILE_TABLES);
    st32(c + LOADER_FILE_SIZE, FACS_ALIGN);
    c[LOADER_FILE_SIZE + 4] = LOADER_ZONE_HIGH;
    for (guint i = 0; i < t->pointers->len; i++) {
        const AcpiPointer *p = &g_array_index(t->pointers, AcpiPointer, i);
        c = loader_cmd(out, LOADER_ADD_POINTER);
        loader_file(c, p->file);                      /* the file holding the pointer */
        loader_file(c + LOADER_FILE_SIZE, p->target); /* the file it points into */
        st32(c + 2 * LOADER_FILE_SIZE, p->offset);
        c[2 * LOADER_FILE_SIZE + 4] = p->size;
    }
    for (guint i = 0; i < t->checksums->len; i++) {
        const AcpiChecksum *k = &g_array_index(t->checksums, AcpiChecksum, i);
        c = loader_cmd(out, LOADER_ADD_CHECKSUM);
        loader_file(c, k->file);
        st32(c + LOADER_FILE_SIZE, k->field);
        st32(c + LOADER_FILE_SIZE + 4, k->start);
        st32(c + LOADER_FILE_SIZE + 8, k->len);
    }
    return g_byte_array_free_to_bytes(out);
}
