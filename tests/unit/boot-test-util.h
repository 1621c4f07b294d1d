/*
 * Shared by the direct-boot unit tests (test-boot-linux.c, test-boot-pvh.c,
 * test-boot-multiboot.c): guest RAM with a BootCtx over it, readers of guest memory that
 * assert, error checks and synthetic ELF headers.  Every helper asserts instead of
 * returning an error: a failure is a failed test.
 */
#ifndef SEN_TESTS_BOOT_TEST_UTIL_H
#define SEN_TESTS_BOOT_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "hw/i386/boot.h"

#define MiB (1024ULL * 1024)

typedef struct BootTestFixture {
    GuestMemory *mem;
    BootCtx b;
    CpuBootState bsp;
    char *dir;            /* BT_TMPDIR: removed with its files by bt_free */
} BootTestFixture;

enum {
    /* 0xff over the low 4 MiB where images go, so zeroed bss and terminators are really
     * written by the loader */
    BT_GARBAGE = 1 << 0,
    /* f->dir: a fresh temporary directory for bt_write_file */
    BT_TMPDIR = 1 << 1,
};

/* A PC with ram bytes of RAM split around the PCI hole as the machine does. */
void bt_init(BootTestFixture *f, uint64_t ram, unsigned flags);
void bt_free(BootTestFixture *f);
/* Forget the loaded images but keep the RAM (cheap between corrupt-image attempts). */
void bt_reset(BootTestFixture *f);

/* Writes data to name in f->dir (BT_TMPDIR); returns the path, to g_free. */
char *bt_write_file(BootTestFixture *f, const char *name, const void *data, size_t len);

uint8_t bt_rd8(BootTestFixture *f, uint64_t gpa);
uint16_t bt_rd16(BootTestFixture *f, uint64_t gpa);
uint32_t bt_rd32(BootTestFixture *f, uint64_t gpa);
uint64_t bt_rd64(BootTestFixture *f, uint64_t gpa);
/* The NUL-terminated string at gpa, to g_free. */
char *bt_rdstr(BootTestFixture *f, uint64_t gpa);
void bt_assert_mem(BootTestFixture *f, uint64_t gpa, const void *data, size_t len);

void bt_assert_no_error(Error *err);
/* err is set and its message contains needle; frees err. */
void bt_assert_error(Error *err, const char *needle);

/* One program header, whichever the ELF class. */
typedef struct BootTestPhdr {
    uint32_t type;
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
} BootTestPhdr;

/*
 * An x86 ELF executable header at img (EM_X86_64 for is64, else EM_386) with the
 * program headers ph[0..n) right behind it.
 */
void bt_put_elf(uint8_t *img, bool is64, uint64_t entry, const BootTestPhdr *ph,
                unsigned n);

#endif
