/*
 * The PC board (hw/i386/pc.c): memory map, built-in ISA devices, -device list, direct
 * kernel boot.
 *
 * Memory map (as QEMU's i440fx "pc"): RAM from 0 up to below_4g, where below_4g = ram_size
 * when ram_size < 0xe0000000, else 0xc0000000 (leaving the 32-bit PCI hole); the rest of
 * RAM starts at 4 GiB.
 */
#ifndef SEN_HW_PC_H
#define SEN_HW_PC_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/error.h"
#include "sen/machine.h"
#include "sen/hw/cpu-boot.h"

#define PC_LOWMEM_LIMIT  0xe0000000ULL
#define PC_PCI_HOLE_START 0xc0000000ULL
#define PC_4G            0x100000000ULL

/* RAM below/above 4 GiB for a given ram_size. */
void pc_ram_split(uint64_t ram_size, uint64_t *below_4g, uint64_t *above_4g);

/* Creates guest memory, the built-in devices, the -device list, and loads the kernel.
 * Runs before the accelerator exists (no vCPU yet). */
bool pc_machine_init(Machine *m, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Power-on / system reset: re-copies the boot images and tables into RAM (as ROMs are on
 * a real board) and returns where the BSP starts. */
bool pc_machine_reset(Machine *m, CpuBootState *bsp, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* ACPI S3 (VM lock held, vCPUs stopped).  Suspend: CMOS shutdown status 0xFE, as
 * QEMU.  Wake-up, after the devices were reset: RAM is kept (images are not copied
 * again); the PM block reports the wake (WAK_STS), and the BSP starts at the guest's FACS
 * waking vector for a direct boot (the board plays firmware) or at the reset vector
 * when firmware runs and resumes itself. */
void pc_machine_suspend(Machine *m);
bool pc_machine_wakeup(Machine *m, WakeupReason reason, CpuBootState *bsp, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void pc_machine_free(Machine *m);
/* The board's fw_cfg device (sen/hw/fw_cfg.h), for code adding firmware files such as
 * the ACPI tables; NULL before pc_machine_init created it. */
typedef struct FwCfgState FwCfgState;
FwCfgState *pc_fw_cfg(Machine *m);

#endif
