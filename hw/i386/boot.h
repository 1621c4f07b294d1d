/*
 * Private interface of the PC board's direct kernel boot (hw/i386/): the e820 map, the
 * MP table, the list of images copied into guest RAM, and the three loaders.
 *
 * Loaders never write guest RAM directly: they add blobs (gpa, bytes) to a BootCtx, which
 * checks that each lies in RAM and overlaps no other, writes it, and keeps it so that a
 * system reset re-copies everything in one loop (as a real board re-reads its ROMs).
 * They work on in-memory images so tests can feed them hand-made buffers.
 * The guest-physical layout is documented in docs/boot.md.
 */
#ifndef HW_I386_BOOT_H
#define HW_I386_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "sen/error.h"
#include "sen/memory.h"
#include "sen/hw/cpu-boot.h"
#include "sen/hw/pc.h"

/* ---- fixed layout of the first MiB ---- */
#define BOOT_GDT_ADDR      0x1000ULL
#define BOOT_INFO_ADDR     0x7000ULL  /* Linux boot_params / PVH hvm_start_info */
#define BOOT_STACK_TOP     0x8ff0ULL  /* a scratch stack for guests that want one */
#define BOOT_PAGETABLE_ADDR 0x9000ULL /* Linux 64-bit: PML4, PDPT, 4 PDs (to 0xf000) */
#define BOOT_MBI_ADDR      0x9000ULL  /* multiboot info, as QEMU places it */
#define BOOT_CMDLINE_ADDR  0x20000ULL /* Linux / PVH command line */
#define BOOT_LOWMEM_END    0x9fc00ULL /* end of usable conventional memory (e820) */
#define BOOT_MPTABLE_ADDR  0xf0000ULL /* MP floating pointer, config table after it */
#define BOOT_HIGH_ADDR     0x100000ULL

/* GDT selectors every loader uses (Linux's __BOOT_CS / __BOOT_DS). */
#define BOOT_SEL_CS32 0x08
#define BOOT_SEL_CS   0x10
#define BOOT_SEL_DS   0x18

/* ---- e820 (e820.c) ---- */
#define E820_TYPE_RAM      1
#define E820_TYPE_RESERVED 2
#define E820_MAX_ENTRIES   8

typedef struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} E820Entry;

/* Fills out[E820_MAX_ENTRIES] with the PC's map, sorted by address; returns the count. */
unsigned e820_build(uint64_t below_4g, uint64_t above_4g, E820Entry *out);

/* ---- Intel MP 1.4 table (mptable.c) ---- */
#define MPTABLE_MAX_CPUS     254 /* APIC ids 0..nr_cpus-1, the IOAPIC takes nr_cpus */
#define MPTABLE_IOAPIC_ADDR  0xfec00000u
#define MPTABLE_LAPIC_ADDR   0xfee00000u

/* The floating pointer followed by the configuration table, to be placed at base. */
GBytes *mptable_build(unsigned nr_cpus, uint32_t base, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* One PCI INTx pin: device devfn on bus 0, pin 1..4 (INTA..INTD), wired to IOAPIC pin gsi. */
typedef struct MptablePciIrq {
    uint8_t devfn, pin, gsi;
} MptablePciIrq;
/* The same plus a PCI bus (MP bus id 1, PCI bus 0) and one I/O interrupt entry per pin
 * (level-triggered, active high), so a guest without ACPI finds INTx routing. */
GBytes *mptable_build_pci(unsigned nr_cpus, uint32_t base, const MptablePciIrq *irqs,
                          unsigned nr_irqs, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* ---- images in guest RAM (boot-common.c) ---- */
typedef struct BootBlob {
    uint64_t gpa;
    uint64_t len;
    GBytes *data;  /* NULL: len zero bytes (ELF bss) */
    char *what;    /* for overlap errors: "kernel 'bzImage'", "boot_params" */
} BootBlob;

typedef struct BootCtx {
    GuestMemory *mem;
    uint64_t below_4g, above_4g;
    E820Entry e820[E820_MAX_ENTRIES];
    unsigned e820_count;
    GPtrArray *blobs; /* of BootBlob*, in load order */
    uint64_t acpi_rsdp; /* the board's RSDP (0 = none): the Linux and PVH loaders
                         * announce it (boot_params.acpi_rsdp_addr, rsdp_paddr) */
    bool capture;       /* only record the blobs, never write guest RAM: the firmware
                         * loads them (pc-fw-kernel.c) */
} BootCtx;

void boot_ctx_init(BootCtx *b, GuestMemory *mem, uint64_t below_4g, uint64_t above_4g);
void boot_ctx_clear(BootCtx *b);
/* Adds data (a reference is taken) at gpa.  Fails naming what when it is not entirely
 * in RAM or overlaps an earlier blob. */
bool boot_add_bytes(BootCtx *b, uint64_t gpa, GBytes *data, const char *what,
                    Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* true when nothing loaded so far overlaps [gpa, gpa + len). */
bool boot_range_free(const BootCtx *b, uint64_t gpa, uint64_t len);
bool boot_add_copy(BootCtx *b, uint64_t gpa, const void *data, size_t len,
                   const char *what, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool boot_add_zero(BootCtx *b, uint64_t gpa, uint64_t len, const char *what,
                   Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Re-copies every blob into guest RAM (system reset). */
void boot_restore(BootCtx *b);
/* Highest end address of any blob (0 when none). */
uint64_t boot_blobs_end(const BootCtx *b);

/* GDT at BOOT_GDT_ADDR: 0x08 flat code32, 0x10 flat code (64-bit when long64), 0x18
 * flat data.  Fills gdt_base/limit and cs/ds of bsp. */
bool boot_write_gdt(BootCtx *b, bool long64, CpuBootState *bsp, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Identity map of the first 4 GiB with 2 MiB pages at BOOT_PAGETABLE_ADDR; sets cr3. */
bool boot_write_page_tables(BootCtx *b, CpuBootState *bsp, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Highest page-aligned address a of a len-byte image with lo <= a, a + len <= hi; false
 * if none. */
bool boot_place_top(uint64_t lo, uint64_t hi, uint64_t len, uint64_t *addr);

/* ---- ELF (boot-common.c) ---- */
/* true when image is a little-endian x86 (i386 or x86-64) ELF executable. */
bool boot_elf_is_x86(const uint8_t *img, size_t len);
/*
 * Finds note (name, type) in the PT_NOTE segments.  Returns false when there is none;
 * *desc points into img.  Malformed notes are skipped, never read out of bounds.
 */
bool boot_elf_find_note(const uint8_t *img, size_t len, const char *name, uint32_t type,
                        const uint8_t **desc, uint32_t *desc_len);
/* Loads every PT_LOAD segment at p_paddr (bss zeroed); returns [lowest, highest end). */
bool boot_elf_load(BootCtx *b, const char *path, GBytes *image, uint64_t *low,
                   uint64_t *high, uint64_t *entry, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* ---- the loaders (boot-linux.c, boot-pvh.c, boot-multiboot.c) ---- */
typedef enum BootKind {
    BOOT_KIND_UNKNOWN,
    BOOT_KIND_LINUX,
    BOOT_KIND_MULTIBOOT,
    BOOT_KIND_PVH,
} BootKind;

#define MULTIBOOT_SEARCH 8192
#define MULTIBOOT_HEADER_MAGIC 0x1badb002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2badb002u
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* The order QEMU's -kernel uses: bzImage, then multiboot, then a PVH ELF. */
BootKind boot_detect(const uint8_t *img, size_t len);
/* The host file path (at most max bytes) that the loaders copy into the guest or
 * fw_cfg; errors read "could not load WHAT 'PATH': why". */
GBytes *boot_file_read(const char *what, const char *path, uint64_t max, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Offset of a valid (checksummed) multiboot header in the first 8 KiB, or -1. */
long multiboot_find_header(const uint8_t *img, size_t len);

/*
 * path names the kernel in errors.  initrd may be NULL (initrd_path then too).
 * cmdline is -append (NULL = empty).
 */
bool boot_linux_load(BootCtx *b, const char *path, GBytes *kernel, GBytes *initrd,
                     const char *initrd_path, const char *cmdline, CpuBootState *bsp,
                     Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool boot_pvh_load(BootCtx *b, const char *path, GBytes *kernel, GBytes *initrd,
                   const char *initrd_path, const char *cmdline, CpuBootState *bsp,
                   Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* modules is -initrd as given: "file1 arg arg,file2" (",," is a literal comma). */
bool boot_multiboot_load(BootCtx *b, const char *path, GBytes *kernel, const char *modules,
                         const char *cmdline, CpuBootState *bsp, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Splits -initrd for multiboot into module strings ("file1 arg arg"); NULL-terminated. */
char **multiboot_split_modules(const char *spec);

/* Reads the files, detects the kind and loads it. */
bool boot_kernel_load(BootCtx *b, const char *kernel_path, const char *initrd,
                      const char *cmdline, CpuBootState *bsp, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* ---- fw_cfg contents of the PC (pc-fw-cfg.c) ---- */
typedef struct FwCfgState FwCfgState;
/* Machine facts, etc/e820 and the -fw_cfg files; errors name the -fw_cfg option. */
bool pc_fw_cfg_setup(FwCfgState *fw, const MachineConfig *cfg, uint64_t below_4g,
                     uint64_t above_4g, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* ---- firmware boot (pc-firmware.c) ---- */
/* Reads the image at path, maps it as ROM ending at 4 GiB and copies its last 128 KiB to
 * 0xe0000 as a blob of b; returns the image (for pc_firmware_reload). */
GBytes *pc_firmware_load(BootCtx *b, GuestMemory *mem, const char *path, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Restores the ROM contents (system reset; needed where KVM has no read-only slots). */
void pc_firmware_reload(GuestMemory *mem, GBytes *image);
/* CMOS 0x3d and 0x38 for a -boot order string ("cad"), as QEMU's set_boot_dev. */
void pc_cmos_boot_order(const char *order, uint8_t *reg3d, uint8_t *reg38);
/* fw_cfg "bootorder": the OpenFirmware paths of devices and -option-rom ROMs with
 * bootindex=, lowest first (kernel_rom, the fw_cfg name of the ROM that boots a -kernel
 * through firmware, or NULL, first of all), then HALT with -boot strict=on;
 * "path\npath\0" as QEMU writes it (empty: no byte).  Fails on a bootindex a ROM shares
 * with a device or another ROM. */
GBytes *pc_bootorder(Machine *m, const char *kernel_rom, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* BOOT_MENU, etc/boot-menu-wait, etc/boot-fail-wait from -boot. */
bool pc_fw_cfg_boot(FwCfgState *fw, const MachineConfig *cfg, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* ---- -kernel loaded by firmware (pc-fw-kernel.c) ---- */
/*
 * As QEMU's -kernel under SeaBIOS: the kernel, initrd/modules and command line go into
 * fw_cfg's kernel items and the option ROM that loads them (linuxboot_dma.bin or
 * multiboot_dma.bin from /usr/share/qemu) becomes genroms/<name>; *rom is set to its
 * fw_cfg name (static storage) for the boot order.
 */
bool pc_fw_kernel_load(FwCfgState *fw, const MachineConfig *cfg, GuestMemory *mem,
                       uint64_t below_4g, uint64_t above_4g, const char **rom,
                       Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* ---- option ROMs (pc-option-rom.c) ---- */
/* "genroms/<basename of path>": its fw_cfg name (and "/rom@" + that in bootorder). */
char *pc_option_rom_fw_name(const char *path);
/* Reads path and adds it as genroms/<basename>. */
bool pc_option_rom_add(FwCfgState *fw, const char *path, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* romfile= of PCI devices with rombar=0, as QEMU hands them to firmware. */
bool pc_pci_roms_setup(FwCfgState *fw, Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Every -option-rom; errors name the option. */
bool pc_option_roms_setup(FwCfgState *fw, const MachineConfig *cfg, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/* Little-endian field access on byte buffers (images and tables). */
static inline uint16_t boot_ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t boot_ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint64_t boot_ld64(const uint8_t *p)
{
    return boot_ld32(p) | (uint64_t)boot_ld32(p + 4) << 32;
}
static inline void boot_st16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static inline void boot_st32(uint8_t *p, uint32_t v)
{
    boot_st16(p, v & 0xffff);
    boot_st16(p + 2, v >> 16);
}
static inline void boot_st64(uint8_t *p, uint64_t v)
{
    boot_st32(p, (uint32_t)v);
    boot_st32(p + 4, (uint32_t)(v >> 32));
}

#endif
