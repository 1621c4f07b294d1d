/* Helpers of the direct-boot unit tests; see boot-test-util.h. */
#include <elf.h>
#include <string.h>
#include <glib/gstdio.h>
#include "sen/hw/pc.h"
#include "boot-test-util.h"

void bt_init(BootTestFixture *f, uint64_t ram, unsigned flags)
{
    Error *err = NULL;
    uint64_t lo, hi;
    memset(f, 0, sizeof(*f));
    pc_ram_split(ram, &lo, &hi);
    f->mem = guest_mem_new(ram, &err);
    bt_assert_no_error(err);
    g_assert_true(guest_mem_add_region(f->mem, 0, lo, 0, &err));
    if (hi) {
        g_assert_true(guest_mem_add_region(f->mem, PC_4G, hi, lo, &err));
    }
    if (flags & BT_GARBAGE) {
        g_assert_true(guest_mem_fill(f->mem, 0, 0xff, MIN(lo, 4 * MiB)));
    }
    boot_ctx_init(&f->b, f->mem, lo, hi);
    if (flags & BT_TMPDIR) {
        f->dir = g_dir_make_tmp("sen-boot-XXXXXX", NULL);
        g_assert_nonnull(f->dir);
    }
}

void bt_free(BootTestFixture *f)
{
    if (f->dir) {
        GDir *d = g_dir_open(f->dir, 0, NULL);
        const char *name;
        while ((name = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(f->dir, name, NULL);
            g_unlink(p);
        }
        g_dir_close(d);
        g_rmdir(f->dir);
        g_free(f->dir);
    }
    boot_ctx_clear(&f->b);
    guest_mem_free(f->mem);
}

void bt_reset(BootTestFixture *f)
{
    uint64_t lo = f->b.below_4g, hi = f->b.above_4g;
    boot_ctx_clear(&f->b);
    boot_ctx_init(&f->b, f->mem, lo, hi);
    memset(&f->bsp, 0, sizeof(f->bsp));
}

char *bt_write_file(BootTestFixture *f, const char *name, const void *data, size_t len)
{
    g_assert_nonnull(f->dir);
    char *path = g_build_filename(f->dir, name, NULL);
    g_assert_true(g_file_set_contents(path, data, len, NULL));
    return path;
}

uint8_t bt_rd8(BootTestFixture *f, uint64_t gpa)
{
    uint8_t v;
    g_assert_true(guest_mem_read(f->mem, gpa, &v, 1));
    return v;
}

uint16_t bt_rd16(BootTestFixture *f, uint64_t gpa)
{
    uint8_t v[2];
    g_assert_true(guest_mem_read(f->mem, gpa, v, 2));
    return boot_ld16(v);
}

uint32_t bt_rd32(BootTestFixture *f, uint64_t gpa)
{
    uint8_t v[4];
    g_assert_true(guest_mem_read(f->mem, gpa, v, 4));
    return boot_ld32(v);
}

uint64_t bt_rd64(BootTestFixture *f, uint64_t gpa)
{
    uint8_t v[8];
    g_assert_true(guest_mem_read(f->mem, gpa, v, 8));
    return boot_ld64(v);
}

char *bt_rdstr(BootTestFixture *f, uint64_t gpa)
{
    GString *s = g_string_new(NULL);
    for (;;) {
        char c;
        g_assert_true(guest_mem_read(f->mem, gpa++, &c, 1));
        if (!c) {
            return g_string_free(s, FALSE);
        }
        g_string_append_c(s, c);
    }
}

void bt_assert_mem(BootTestFixture *f, uint64_t gpa, const void *data, size_t len)
{
    g_autofree uint8_t *buf = g_malloc(len);
    g_assert_true(guest_mem_read(f->mem, gpa, buf, len));
    g_assert_true(memcmp(buf, data, len) == 0);
}

void bt_assert_no_error(Error *err)
{
    if (err) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
}

void bt_assert_error(Error *err, const char *needle)
{
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), needle)) {
        g_error("error '%s' lacks '%s'", error_get_pretty(err), needle);
    }
    error_free(err);
}

void bt_put_elf(uint8_t *img, bool is64, uint64_t entry, const BootTestPhdr *ph,
                unsigned n)
{
    if (is64) {
        Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
                          .e_entry = entry, .e_phoff = sizeof(Elf64_Ehdr),
                          .e_ehsize = sizeof(Elf64_Ehdr), .e_phentsize = sizeof(Elf64_Phdr),
                          .e_phnum = n };
        memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        memcpy(img, &eh, sizeof(eh));
        for (unsigned i = 0; i < n; i++) {
            Elf64_Phdr p = { .p_type = ph[i].type, .p_offset = ph[i].offset,
                             .p_vaddr = ph[i].vaddr, .p_paddr = ph[i].paddr,
                             .p_filesz = ph[i].filesz, .p_memsz = ph[i].memsz };
            memcpy(img + sizeof(eh) + i * sizeof(p), &p, sizeof(p));
        }
    } else {
        Elf32_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_386, .e_version = EV_CURRENT,
                          .e_entry = (uint32_t)entry, .e_phoff = sizeof(Elf32_Ehdr),
                          .e_ehsize = sizeof(Elf32_Ehdr), .e_phentsize = sizeof(Elf32_Phdr),
                          .e_phnum = n };
        memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS32;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        memcpy(img, &eh, sizeof(eh));
        for (unsigned i = 0; i < n; i++) {
            Elf32_Phdr p = { .p_type = ph[i].type, .p_offset = (uint32_t)ph[i].offset,
                             .p_vaddr = (uint32_t)ph[i].vaddr,
                             .p_paddr = (uint32_t)ph[i].paddr,
                             .p_filesz = (uint32_t)ph[i].filesz,
                             .p_memsz = (uint32_t)ph[i].memsz };
            memcpy(img + sizeof(eh) + i * sizeof(p), &p, sizeof(p));
        }
    }
}
