/*
 * The ACPI table builder (hw/acpi/acpi-build.c, hw/acpi/aml.c): AML encodings checked
 * byte for byte against the specification's grammar, the linked tables walked the way a
 * guest walks them (RSDP -> XSDT/RSDT -> FADT -> DSDT/FACS, MADT, MCFG) with every checksum
 * verified, the table-loader commands replayed as firmware would, and, when ACPICA's iasl
 * is installed, the DSDT disassembled and recompiled by it (an independent AML parser).
 */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "hw/acpi/acpi-build.h"
#include "hw/acpi/aml.h"
#include "hw/i386/boot.h"
#include "sen/pci.h"

#define TABLES_BASE 0x7fe0000ull
#define RSDP_BASE   0xf5a40ull

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    while (len--) {
        s += *p++;
    }
    return s;
}

static void check_aml(void (*emit)(Aml *), const uint8_t *want, size_t len)
{
    g_autoptr(Aml) a = aml_new();
    emit(a);
    g_assert_cmpmem(a->data, a->len, want, len);
}

static void emit_s5(Aml *a)
{
    g_autoptr(Aml) e = aml_new();
    for (int i = 0; i < 4; i++) {
        aml_integer(e, 0);
    }
    g_autoptr(Aml) pkg = aml_new();
    aml_package(pkg, 4, e);
    aml_name_obj(a, "\\_S5_", pkg);
}
static void emit_names(Aml *a)
{
    aml_name_string(a, "\\_SB.PCI0");
    aml_name_string(a, "A.B.C");
    aml_name_string(a, "^KBD");
}
static void emit_ints(Aml *a)
{
    aml_integer(a, 0);
    aml_integer(a, 1);
    aml_integer(a, 2);
    aml_integer(a, 0x1234);
    aml_integer(a, 0xb0000000);
    aml_integer(a, 0x100000000ull);
    aml_integer(a, UINT64_MAX);
}
static void emit_hid(Aml *a)
{
    aml_name_eisaid(a, "_HID", "PNP0A03");
    aml_name_str(a, "_UID", "ab");
}

static void test_aml_encodings(void)
{
    static const uint8_t s5[] = { 0x08, 0x5c, '_', 'S', '5', '_', 0x12, 0x06, 0x04,
                                  0x00, 0x00, 0x00, 0x00 };
    check_aml(emit_s5, s5, sizeof(s5));
    static const uint8_t names[] = { 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0',
                                     0x2f, 0x03, 'A', '_', '_', '_', 'B', '_', '_', '_',
                                     'C', '_', '_', '_', '^', 'K', 'B', 'D', '_' };
    check_aml(emit_names, names, sizeof(names));
    static const uint8_t ints[] = { 0x00, 0x01, 0x0a, 0x02, 0x0b, 0x34, 0x12,
                                    0x0c, 0x00, 0x00, 0x00, 0xb0,
                                    0x0e, 0, 0, 0, 0, 1, 0, 0, 0, 0xff };
    check_aml(emit_ints, ints, sizeof(ints));
    /* EisaId("PNP0A03") is 0x030ad041 as iasl emits it. */
    static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03,
                                   0x08, '_', 'U', 'I', 'D', 0x0d, 'a', 'b', 0x00 };
    check_aml(emit_hid, hid, sizeof(hid));
}

/* PkgLength: the encoded value counts its own bytes; 1 byte up to 63. */
static void test_aml_pkg_length(void)
{
    static const struct { uint32_t body; uint8_t bytes[4]; unsigned n; } cases[] = {
        { 0, { 0x01 }, 1 },
        { 0x3e, { 0x3f }, 1 },
        { 0x3f, { 0x41, 0x04 }, 2 },           /* 0x41 total */
        { 0xffd, { 0x4f, 0xff }, 2 },          /* 0xfff total */
        { 0xffe, { 0x81, 0x00, 0x01 }, 3 },    /* 0x1001 total */
        { 0x100000, { 0xc4, 0x00, 0x00, 0x01 }, 4 }, /* 0x100004 total */
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(Aml) a = aml_new();
        aml_pkg_length(a, cases[i].body);
        g_assert_cmpmem(a->data, a->len, cases[i].bytes, cases[i].n);
    }
}

typedef struct Linked {
    AcpiTables t;
    const uint8_t *rsdp, *tables;
    uint64_t base[ACPI_FILE__MAX];
} Linked;

static void build_linked(Linked *l, const AcpiBuildConfig *cfg)
{
    Error *err = NULL;
    g_assert_true(acpi_build(cfg, &l->t, &err));
    g_assert_null(err);
    l->base[ACPI_FILE_TABLES] = TABLES_BASE;
    l->base[ACPI_FILE_RSDP] = RSDP_BASE;
    acpi_tables_link(&l->t, l->base);
    l->rsdp = l->t.blob[ACPI_FILE_RSDP]->data;
    l->tables = l->t.blob[ACPI_FILE_TABLES]->data;
}

/* A guest-physical address inside the tables blob, as a pointer; asserts it is in it. */
static const uint8_t *at(const Linked *l, uint64_t gpa, uint32_t len)
{
    g_assert_cmphex(gpa, >=, TABLES_BASE);
    g_assert_cmphex(gpa + len, <=, TABLES_BASE + l->t.blob[ACPI_FILE_TABLES]->len);
    return l->tables + (gpa - TABLES_BASE);
}

static const uint8_t *table_at(const Linked *l, uint64_t gpa, const char *sig)
{
    const uint8_t *h = at(l, gpa, 36);
    uint32_t len = boot_ld32(h + 4);
    g_assert_cmpmem(h, 4, sig, 4);
    at(l, gpa, len);
    g_assert_cmpuint(sum(h, len), ==, 0);
    g_assert_cmpmem(h + 10, 6, "SEN   ", 6);
    return h;
}

/* Finds sig through the XSDT (and checks the RSDT lists the same tables). */
static const uint8_t *find_table(const Linked *l, const char *sig)
{
    const uint8_t *xsdt = table_at(l, boot_ld64(l->rsdp + 24), "XSDT");
    const uint8_t *rsdt = table_at(l, boot_ld32(l->rsdp + 16), "RSDT");
    unsigned n = (boot_ld32(xsdt + 4) - 36) / 8;
    g_assert_cmpuint((boot_ld32(rsdt + 4) - 36) / 4, ==, n);
    const uint8_t *found = NULL;
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = boot_ld64(xsdt + 36 + 8 * i);
        g_assert_cmphex(a, ==, boot_ld32(rsdt + 36 + 4 * i));
        const uint8_t *h = at(l, a, 36);
        if (!memcmp(h, sig, 4)) {
            found = table_at(l, a, sig);
        }
    }
    return found;
}

static void check_rsdp(const Linked *l)
{
    g_assert_cmpuint(l->t.blob[ACPI_FILE_RSDP]->len, ==, 36);
    g_assert_cmpmem(l->rsdp, 8, "RSD PTR ", 8);
    g_assert_cmpuint(sum(l->rsdp, 20), ==, 0);
    g_assert_cmpuint(sum(l->rsdp, 36), ==, 0);
    g_assert_cmpuint(l->rsdp[15], ==, 2);
    g_assert_cmpuint(boot_ld32(l->rsdp + 20), ==, 36);
}

static void check_fadt(const Linked *l)
{
    const uint8_t *f = find_table(l, "FACP");
    g_assert_nonnull(f);
    g_assert_cmpuint(boot_ld32(f + 4), ==, 244);
    g_assert_cmpuint(f[8], ==, 3);
    uint32_t facs = boot_ld32(f + 36);
    g_assert_cmphex(facs % 64, ==, 0);
    g_assert_cmpmem(at(l, facs, 64), 4, "FACS", 4);
    g_assert_cmpuint(boot_ld32(at(l, facs, 64) + 4), ==, 64);
    uint32_t dsdt = boot_ld32(f + 40);
    g_assert_cmphex(boot_ld64(f + 140), ==, dsdt);
    table_at(l, dsdt, "DSDT");
    g_assert_cmpuint(boot_ld16(f + 46), ==, 9);          /* SCI_INT */
    g_assert_cmphex(boot_ld32(f + 48), ==, 0xb2);        /* SMI_CMD */
    g_assert_cmphex(f[52], ==, 0xf1);
    g_assert_cmphex(f[53], ==, 0xf0);
    g_assert_cmphex(boot_ld32(f + 56), ==, 0x600);       /* PM1a_EVT_BLK */
    g_assert_cmphex(boot_ld32(f + 64), ==, 0x604);       /* PM1a_CNT_BLK */
    g_assert_cmphex(boot_ld32(f + 76), ==, 0x608);       /* PM_TMR_BLK */
    g_assert_cmphex(boot_ld32(f + 80), ==, 0xafe0);      /* GPE0_BLK */
    g_assert_cmpuint(f[88], ==, 4);
    g_assert_cmpuint(f[89], ==, 2);
    g_assert_cmpuint(f[91], ==, 4);
    g_assert_cmpuint(f[92], ==, 4);
    uint32_t flags = boot_ld32(f + 112);
    g_assert_true(flags & (1u << 10));                   /* RESET_REG_SUP */
    g_assert_false(flags & (1u << 4));                   /* fixed power button */
    g_assert_false(flags & (1u << 8));                   /* 24-bit PM timer */
    g_assert_cmpuint(f[116], ==, 1);                     /* RESET_REG: system I/O */
    g_assert_cmpuint(f[117], ==, 8);
    g_assert_cmphex(boot_ld64(f + 120), ==, 0xcf9);
    g_assert_cmphex(f[128], ==, 6);
    g_assert_cmphex(boot_ld64(f + 148 + 4), ==, 0x600);  /* X_PM1a_EVT_BLK */
    g_assert_cmphex(boot_ld64(f + 172 + 4), ==, 0x604);  /* X_PM1a_CNT_BLK */
    g_assert_cmphex(boot_ld64(f + 208 + 4), ==, 0x608);  /* X_PM_TMR_BLK */
    g_assert_cmpuint(f[208 + 1], ==, 32);
}

static void check_madt(const Linked *l, unsigned ncpus, uint8_t ioapic_id)
{
    const uint8_t *m = find_table(l, "APIC");
    g_assert_nonnull(m);
    g_assert_cmphex(boot_ld32(m + 36), ==, 0xfee00000);
    uint32_t len = boot_ld32(m + 4);
    unsigned lapics = 0, x2apics = 0, ioapics = 0, overrides = 0;
    bool ids[4096] = { false };
    for (uint32_t off = 44; off < len;) {
        const uint8_t *e = m + off;
        g_assert_cmpuint(e[1], >=, 2);
        g_assert_cmpuint(off + e[1], <=, len);
        switch (e[0]) {
        case 0:
            g_assert_cmpuint(e[1], ==, 8);
            g_assert_cmpuint(e[3], <, 255);
            g_assert_false(ids[e[3]]);
            ids[e[3]] = true;
            g_assert_cmpuint(boot_ld32(e + 4), ==, 1);
            lapics++;
            break;
        case 9:
            g_assert_cmpuint(e[1], ==, 16);
            g_assert_cmpuint(boot_ld32(e + 4), >=, 255);
            g_assert_cmpuint(boot_ld32(e + 4), <, 4096);
            g_assert_false(ids[boot_ld32(e + 4)]);
            ids[boot_ld32(e + 4)] = true;
            g_assert_cmpuint(boot_ld32(e + 8), ==, 1);
            x2apics++;
            break;
        case 1:
            g_assert_cmpuint(e[2], ==, ioapic_id);
            g_assert_cmphex(boot_ld32(e + 4), ==, 0xfec00000);
            g_assert_cmpuint(boot_ld32(e + 8), ==, 0);
            ioapics++;
            break;
        case 2:
            if (e[3] == 0) {
                g_assert_cmpuint(boot_ld32(e + 4), ==, 2);
            } else {
                g_assert_cmpuint(e[3], ==, 9);
                g_assert_cmpuint(boot_ld32(e + 4), ==, 9);
                g_assert_cmphex(boot_ld16(e + 8), ==, 0xd); /* level, active high */
            }
            overrides++;
            break;
        }
        off += e[1];
    }
    g_assert_cmpuint(lapics + x2apics, ==, ncpus);
    g_assert_cmpuint(lapics, ==, MIN(ncpus, 255));
    for (unsigned i = 0; i < ncpus; i++) {
        g_assert_true(ids[i]);
    }
    g_assert_cmpuint(ioapics, ==, 1);
    g_assert_cmpuint(overrides, ==, 2);
}

static void check_mcfg(const Linked *l, bool ecam)
{
    const uint8_t *m = find_table(l, "MCFG");
    if (!ecam) {
        g_assert_null(m);
        return;
    }
    g_assert_nonnull(m);
    g_assert_cmpuint(boot_ld32(m + 4), ==, 60);
    g_assert_cmphex(boot_ld64(m + 44), ==, PCI_ECAM_BASE);
    g_assert_cmpuint(boot_ld16(m + 52), ==, 0);
    g_assert_cmpuint(m[54], ==, 0);
    g_assert_cmpuint(m[55], ==, 255);
}

static void test_tables(gconstpointer data)
{
    unsigned ncpus = GPOINTER_TO_UINT(data);
    for (int ecam = 0; ecam < 2; ecam++) {
        AcpiBuildConfig cfg = { .nr_cpus = ncpus, .ioapic_id = ncpus < 255 ? ncpus : 0,
                                .below_4g = ecam ? 128 << 20 : 0xc0000000u,
                                .ecam = ecam, .com1 = true };
        Linked l;
        build_linked(&l, &cfg);
        check_rsdp(&l);
        check_fadt(&l);
        check_madt(&l, ncpus, cfg.ioapic_id);
        check_mcfg(&l, ecam);
        acpi_tables_clear(&l.t);
    }
}

/* -device intel-iommu's DMAR: header width and flags, one DRHD with INCLUDE_PCI_ALL at
 * the unit's base, and the IOAPIC's device scope (as QEMU's q35 builds it). */
static void test_dmar(void)
{
    for (int eim = 0; eim < 2; eim++) {
        AcpiDmarConfig dmar = { .base = 0xfed90000, .host_aw = 39, .intr_remap = true,
                                .x2apic_opt_out = !eim, .ioapic_sid = 0xf0f8 };
        AcpiBuildConfig cfg = { .nr_cpus = 4, .ioapic_id = 4, .below_4g = 128 << 20,
                                .ecam = true, .com1 = true, .dmar = &dmar };
        Linked l;
        build_linked(&l, &cfg);
        const uint8_t *d = find_table(&l, "DMAR");
        g_assert_nonnull(d);
        g_assert_cmpuint(boot_ld32(d + 4), ==, 48 + 16 + 8);
        g_assert_cmpuint(d[8], ==, 1);                    /* revision */
        g_assert_cmpuint(d[36], ==, 38);                  /* host address width - 1 */
        g_assert_cmpuint(d[37], ==, eim ? 1 : 3);         /* INTR_REMAP, X2APIC_OPT_OUT */
        const uint8_t *drhd = d + 48;
        g_assert_cmpuint(boot_ld16(drhd), ==, 0);
        g_assert_cmpuint(boot_ld16(drhd + 2), ==, 24);
        g_assert_cmpuint(drhd[4], ==, 1);                 /* INCLUDE_PCI_ALL */
        g_assert_cmpuint(boot_ld16(drhd + 6), ==, 0);     /* segment */
        g_assert_cmphex(boot_ld64(drhd + 8), ==, 0xfed90000);
        static const uint8_t scope[8] = { 3, 8, 0, 0, 4, 0xf0, 0x1f, 0 };
        g_assert_cmpmem(drhd + 16, 8, scope, 8);
        /* Without an IOMMU there is no DMAR. */
        acpi_tables_clear(&l.t);
        cfg.dmar = NULL;
        build_linked(&l, &cfg);
        g_assert_null(find_table(&l, "DMAR"));
        acpi_tables_clear(&l.t);
    }
}

static void test_bad_config(void)
{
    AcpiBuildConfig cfg = { .nr_cpus = 0 };
    AcpiTables t;
    Error *err = NULL;
    g_assert_false(acpi_build(&cfg, &t, &err));
    g_assert_nonnull(err);
    error_free(err);
}

/* Replays etc/table-loader as a firmware does, on unlinked copies of the blobs, and
 * expects byte-identical results to acpi_tables_link at the same addresses. */
static void test_loader(void)
{
    AcpiBuildConfig cfg = { .nr_cpus = 3, .ioapic_id = 3, .below_4g = 64 << 20,
                            .ecam = true };
    AcpiTables raw;
    Error *err = NULL;
    g_assert_true(acpi_build(&cfg, &raw, &err));
    GByteArray *copy[ACPI_FILE__MAX];
    for (unsigned f = 0; f < ACPI_FILE__MAX; f++) {
        copy[f] = g_byte_array_new();
        g_byte_array_append(copy[f], raw.blob[f]->data, raw.blob[f]->len);
    }
    g_autoptr(GBytes) loader = acpi_tables_loader(&raw);
    size_t len;
    const uint8_t *cmd = g_bytes_get_data(loader, &len);
    g_assert_cmpuint(len % 128, ==, 0);
    g_assert_cmpuint(len / 128, ==, 2 + raw.pointers->len + raw.checksums->len);

    const uint64_t base[ACPI_FILE__MAX] = { [ACPI_FILE_TABLES] = TABLES_BASE,
                                            [ACPI_FILE_RSDP] = RSDP_BASE };
    unsigned allocated = 0;
    for (size_t off = 0; off < len; off += 128) {
        const uint8_t *c = cmd + off;
        int f1 = -1, f2 = -1;
        for (unsigned f = 0; f < ACPI_FILE__MAX; f++) {
            if (!strcmp((const char *)c + 4, acpi_file_name(f))) {
                f1 = (int)f;
            }
            if (!strcmp((const char *)c + 60, acpi_file_name(f))) {
                f2 = (int)f;
            }
        }
        g_assert_cmpint(f1, >=, 0);
        switch (boot_ld32(c)) {
        case 1: /* ALLOCATE: the RSDP in the F segment, the tables 64-byte aligned */
            g_assert_cmpuint(boot_ld32(c + 60), ==, f1 == ACPI_FILE_RSDP ? 16 : 64);
            g_assert_cmpuint(c[64], ==, f1 == ACPI_FILE_RSDP ? 2 : 1);
            allocated++;
            break;
        case 2: { /* ADD_POINTER */
            g_assert_cmpint(f2, >=, 0);
            uint32_t at_off = boot_ld32(c + 116);
            uint8_t size = c[120];
            g_assert_true(size == 4 || size == 8);
            g_assert_cmpuint(at_off + size, <=, copy[f1]->len);
            uint64_t v = size == 4 ? boot_ld32(copy[f1]->data + at_off)
                                   : boot_ld64(copy[f1]->data + at_off);
            g_assert_cmpuint(v, <, copy[f2]->len);
            v += base[f2];
            for (unsigned k = 0; k < size; k++) {
                copy[f1]->data[at_off + k] = (uint8_t)(v >> (8 * k));
            }
            break;
        }
        case 3: { /* ADD_CHECKSUM */
            uint32_t field = boot_ld32(c + 60), start = boot_ld32(c + 64);
            uint32_t n = boot_ld32(c + 68);
            g_assert_cmpuint(start + n, <=, copy[f1]->len);
            g_assert_cmpuint(field, >=, start);
            g_assert_cmpuint(field, <, start + n);
            copy[f1]->data[field] -= sum(copy[f1]->data + start, n);
            break;
        }
        default:
            g_assert_not_reached();
        }
    }
    g_assert_cmpuint(allocated, ==, 2);
    acpi_tables_link(&raw, base);
    for (unsigned f = 0; f < ACPI_FILE__MAX; f++) {
        g_assert_cmpmem(copy[f]->data, copy[f]->len, raw.blob[f]->data, raw.blob[f]->len);
        g_byte_array_unref(copy[f]);
    }
    acpi_tables_clear(&raw);
}

static bool run(char **argv, const char *dir, char **out)
{
    int status = -1;
    g_autoptr(GError) gerr = NULL;
    g_autofree char *err = NULL;
    if (!g_spawn_sync(dir, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, out, &err,
                      &status, &gerr)) {
        g_test_message("%s: %s", argv[0], gerr->message);
        return false;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_test_message("%s failed:\n%s\n%s", argv[0], *out, err);
        return false;
    }
    return true;
}

/* ACPICA's disassembler reads the DSDT back as what we meant, and its compiler accepts
 * the result. */
static void test_iasl(void)
{
    g_autofree char *iasl = g_find_program_in_path("iasl");
    if (!iasl) {
        g_test_skip("iasl (Debian package acpica-tools) is not installed");
        return;
    }
    AcpiBuildConfig cfg = { .nr_cpus = 300, .ioapic_id = 0, .below_4g = 512 << 20,
                            .ecam = true, .com1 = true, .pvpanic_port = 0x505 };
    Linked l;
    build_linked(&l, &cfg);
    const uint8_t *f = find_table(&l, "FACP");
    const uint8_t *dsdt = at(&l, boot_ld32(f + 40), 36);
    g_autofree char *dir = g_dir_make_tmp("sen-acpi-XXXXXX", NULL);
    g_assert_nonnull(dir);
    g_autofree char *dat = g_build_filename(dir, "dsdt.dat", NULL);
    g_autofree char *dsl = g_build_filename(dir, "dsdt.dsl", NULL);
    g_autofree char *aml = g_build_filename(dir, "dsdt.aml", NULL);
    g_assert_true(g_file_set_contents(dat, (const char *)dsdt, boot_ld32(dsdt + 4), NULL));

    g_autofree char *out1 = NULL, *out2 = NULL, *text = NULL;
    char *dis[] = { iasl, "-d", dat, NULL };
    g_assert_true(run(dis, dir, &out1));
    g_assert_true(g_file_get_contents(dsl, &text, NULL, NULL));
    static const char *const want[] = {
        "Scope (\\_SB)", "Device (PCI0)", "EisaId (\"PNP0A03\")", "Name (_PRT, Package (0x80)",
        "WordBusNumber", "Device (COM1)", "EisaId (\"PNP0501\")", "IO (Decode16",
        "0x03F8", "IRQNoFlags ()", "Device (RTC)", "EisaId (\"PNP0B00\")",
        "Device (C12B)", "\"ACPI0007\"", "Name (\\_S3, Package (0x04)",
        "Name (\\_S5, Package (0x04)", "EisaId (\"PNP0C02\")",
        "0xAFFFFFFF", "0xFEBFFFFF", "DWordMemory (ResourceConsumer",
        "Device (PEVT)", "Name (_HID, \"QEMU0001\")", "0x0505", "Name (_STA, 0x0F)",
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        if (!strstr(text, want[i])) {
            g_test_message("disassembly lacks '%s':\n%s", want[i], text);
            g_assert_not_reached();
        }
    }
    /* The PRT row for slot 3 pin INTB: GSI 16 + (3 + 1) % 4. */
    g_assert_nonnull(strstr(text, "0x0003FFFF, \n                    One, \n                    Zero, \n                    0x10"));
    char *comp[] = { iasl, "-p", aml, dsl, NULL };
    g_assert_true(run(comp, dir, &out2));
    g_autofree char *back = NULL;
    gsize back_len;
    g_assert_true(g_file_get_contents(aml, &back, &back_len, NULL));
    /* iasl drops the redundant root prefix of \_SB, \_S3_ and \_S5_ (one byte each),
     * so compare sizes, not bytes. */
    g_assert_cmpuint(back_len + 3, ==, boot_ld32(dsdt + 4));
    g_unlink(dat);
    g_unlink(dsl);
    g_unlink(aml);
    g_rmdir(dir);
    acpi_tables_clear(&l.t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi/aml/encodings", test_aml_encodings);
    g_test_add_func("/acpi/aml/pkg-length", test_aml_pkg_length);
    g_test_add_data_func("/acpi/tables/1cpu", GUINT_TO_POINTER(1), test_tables);
    g_test_add_data_func("/acpi/tables/4cpus", GUINT_TO_POINTER(4), test_tables);
    g_test_add_data_func("/acpi/tables/288cpus-x2apic", GUINT_TO_POINTER(288), test_tables);
    g_test_add_func("/acpi/tables/bad-config", test_bad_config);
    g_test_add_func("/acpi/tables/dmar", test_dmar);
    g_test_add_func("/acpi/loader", test_loader);
    g_test_add_func("/acpi/iasl", test_iasl);
    return g_test_run();
}
