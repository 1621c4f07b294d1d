/*
 * What the PC board puts in fw_cfg for its firmware, as QEMU's pc does (hw/i386/fw_cfg.c
 * and pc.c there): machine facts, the e820 RAM map, the -fw_cfg files and the
 * -option-rom ROMs.  The ACPI
 * tables and the table loader are added by hw/acpi on top of this.
 */
#include <string.h>
#include "hw/i386/boot.h"
#include "sen/host-file.h"
#include "sen/hw/fw_cfg.h"
#include "sen/hw/pc.h"

/* etc/e820 entries: le64 address, le64 length, le32 type, packed (QEMU's struct e820_entry). */
#define FW_CFG_E820_ENTRY_SIZE 20
#define PC_KVM_PAGES_START 0xfeffc000ULL /* KVM's identity map + TSS, reserved as QEMU */
#define PC_KVM_PAGES_SIZE  0x4000ULL

static void e820_append(GByteArray *a, uint64_t addr, uint64_t len, uint32_t type)
{
    uint8_t e[FW_CFG_E820_ENTRY_SIZE];

    boot_st64(e, addr);
    boot_st64(e + 8, len);
    boot_st32(e + 16, type);
    g_byte_array_append(a, e, sizeof(e));
}

/* Only RAM and what no one may use: the firmware reserves its own areas (EBDA, BIOS). */
static GBytes *pc_fw_cfg_e820(uint64_t below_4g, uint64_t above_4g, bool kvm)
{
    GByteArray *a = g_byte_array_new();

    /* QEMU's order: KVM's pages are reserved when the accelerator starts, before RAM. */
    if (kvm) {
        e820_append(a, PC_KVM_PAGES_START, PC_KVM_PAGES_SIZE, E820_TYPE_RESERVED);
    }
    e820_append(a, 0, below_4g, E820_TYPE_RAM);
    if (above_4g) {
        e820_append(a, PC_4G, above_4g, E820_TYPE_RAM);
    }
    return g_byte_array_free_to_bytes(a);
}

/* No -numa: QEMU's layout with zero nodes, one zero per possible CPU. */
static void pc_fw_cfg_numa(FwCfgState *fw, unsigned max_cpus)
{
    size_t n = 1 + (size_t)max_cpus;
    g_autofree uint64_t *numa = g_new0(uint64_t, n);
    fw_cfg_add_copy(fw, FW_CFG_NUMA, numa, n * sizeof(uint64_t));
}

static bool pc_fw_cfg_user_files(FwCfgState *fw, const MachineConfig *cfg, Error **errp)
{
    for (guint i = 0; cfg->fw_cfg_files && i < cfg->fw_cfg_files->len; i++) {
        const FwCfgFileConfig *f = g_ptr_array_index(cfg->fw_cfg_files, i);
        g_autoptr(GBytes) data = NULL;
        if (f->string) {
            data = g_bytes_new(f->string, strlen(f->string));
        } else {
            /* An fw_cfg file's size is a 32-bit field of the directory. */
            data = host_file_read(f->file, UINT32_MAX, errp);
            if (!data) {
                error_prepend(errp, "%s: can't load %s: ", f->optstr, f->file);
                return false;
            }
        }
        if (!fw_cfg_add_file(fw, f->name, data, errp)) {
            error_prepend(errp, "%s: ", f->optstr);
            return false;
        }
    }
    return true;
}

bool pc_fw_cfg_setup(FwCfgState *fw, const MachineConfig *cfg, uint64_t below_4g,
                     uint64_t above_4g, Error **errp)
{
    unsigned cpus = cfg->smp_cpus ? cfg->smp_cpus : 1;
    unsigned max_cpus = MAX(cfg->smp_maxcpus, cpus);
    static const uint8_t uuid[16]; /* no -uuid: all zeroes, as QEMU */

    fw_cfg_add_copy(fw, FW_CFG_UUID, uuid, sizeof(uuid));
    fw_cfg_add_i64(fw, FW_CFG_RAM_SIZE, cfg->ram_size);
    fw_cfg_add_i16(fw, FW_CFG_NOGRAPHIC, cfg->nographic);
    fw_cfg_add_i16(fw, FW_CFG_NB_CPUS, cpus);
    fw_cfg_add_i16(fw, FW_CFG_MAX_CPUS, max_cpus);
    pc_fw_cfg_numa(fw, max_cpus);
    /* The PIT is wired to IOAPIC pin 2 through the interrupt source override. */
    fw_cfg_add_i32(fw, FW_CFG_IRQ0_OVERRIDE, 1);
    /* The legacy e820 item carries reservations only; we have none beyond etc/e820. */
    fw_cfg_add_i32(fw, FW_CFG_E820_TABLE, 0);

    g_autoptr(GBytes) e820 = pc_fw_cfg_e820(below_4g, above_4g, cfg->accel == ACCEL_KVM);
    if (!fw_cfg_add_file(fw, "etc/e820", e820, errp)) {
        return false;
    }
    return pc_fw_cfg_boot(fw, cfg, errp) && pc_fw_cfg_user_files(fw, cfg, errp) &&
           pc_option_roms_setup(fw, cfg, errp);
}
