/*
 * fw_cfg: QEMU's firmware configuration device, which SeaBIOS, OVMF and test kernels read
 * to learn about the machine (RAM size, CPUs, boot order, e820, ACPI tables, files given
 * with -fw_cfg).  The PC has it at I/O ports 0x510 (16-bit selector), 0x511 (data byte) and
 * 0x514 (DMA address, big-endian, the low half at 0x518 starts the transfer), as QEMU's
 * fw_cfg_io.  Item numbers and the file directory (item 0x19) follow QEMU's
 * docs/specs/fw_cfg.txt so unmodified firmware works.
 *
 * Items are added by the board before the guest starts; their contents may be replaced
 * later (fw_cfg_modify_file), e.g. ACPI tables rebuilt when the firmware first selects them.
 */
#ifndef SEN_HW_FW_CFG_H
#define SEN_HW_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "sen/error.h"

/* ---- the guest interface ---- */
#define FW_CFG_IO_BASE        0x510 /* selector (16-bit write), data at +1 */
#define FW_CFG_IO_DATA        0x511
#define FW_CFG_IO_DMA         0x514 /* DMA address, high half; low half at +4 */
#define FW_CFG_DMA_SIGNATURE  0x51454d5520434647ULL /* "QEMU CFG", read at the DMA port */

/* Standard items (selector values). */
#define FW_CFG_SIGNATURE      0x00 /* "QEMU" */
#define FW_CFG_ID             0x01 /* le32 feature bits, below */
#define FW_CFG_UUID           0x02 /* 16 bytes */
#define FW_CFG_RAM_SIZE       0x03 /* le64 */
#define FW_CFG_NOGRAPHIC      0x04 /* le16 */
#define FW_CFG_NB_CPUS        0x05 /* le16, vCPUs at start */
#define FW_CFG_MACHINE_ID     0x06
#define FW_CFG_KERNEL_ADDR    0x07
#define FW_CFG_KERNEL_SIZE    0x08
#define FW_CFG_KERNEL_CMDLINE 0x09
#define FW_CFG_INITRD_ADDR    0x0a
#define FW_CFG_INITRD_SIZE    0x0b
#define FW_CFG_BOOT_DEVICE    0x0c
#define FW_CFG_NUMA           0x0d /* le64 array: nodes, node of each CPU, size of each node */
#define FW_CFG_BOOT_MENU      0x0e /* le16 */
#define FW_CFG_MAX_CPUS       0x0f /* le16 */
#define FW_CFG_KERNEL_ENTRY   0x10
#define FW_CFG_KERNEL_DATA    0x11
#define FW_CFG_INITRD_DATA    0x12
#define FW_CFG_CMDLINE_ADDR   0x13
#define FW_CFG_CMDLINE_SIZE   0x14
#define FW_CFG_CMDLINE_DATA   0x15
#define FW_CFG_SETUP_ADDR     0x16
#define FW_CFG_SETUP_SIZE     0x17
#define FW_CFG_SETUP_DATA     0x18
#define FW_CFG_FILE_DIR       0x19 /* be32 count, then FW_CFG_DIR_ENTRY_SIZE-byte entries */
#define FW_CFG_FILE_FIRST     0x20
#define FW_CFG_FILE_SLOTS     0x20 /* QEMU's default number of file items */

/* x86 items (QEMU's FW_CFG_ARCH_LOCAL range). */
#define FW_CFG_ARCH_LOCAL     0x8000
#define FW_CFG_ACPI_TABLES    (FW_CFG_ARCH_LOCAL + 0)
#define FW_CFG_SMBIOS_ENTRIES (FW_CFG_ARCH_LOCAL + 1)
#define FW_CFG_IRQ0_OVERRIDE  (FW_CFG_ARCH_LOCAL + 2)
#define FW_CFG_E820_TABLE     (FW_CFG_ARCH_LOCAL + 3)
#define FW_CFG_HPET           (FW_CFG_ARCH_LOCAL + 4)
#define FW_CFG_ARCH_ITEMS     0x10

#define FW_CFG_ENTRY_MASK     0x3fff /* selector bits naming the item (0x4000 is ignored) */

/* FW_CFG_ID bits. */
#define FW_CFG_VERSION        0x01 /* the traditional (port) interface */
#define FW_CFG_VERSION_DMA    0x02

/* The DMA control word (big-endian in guest memory), QEMU's FW_CFG_DMA_CTL_*. */
#define FW_CFG_DMA_CTL_ERROR  0x01
#define FW_CFG_DMA_CTL_READ   0x02
#define FW_CFG_DMA_CTL_SKIP   0x04
#define FW_CFG_DMA_CTL_SELECT 0x08
#define FW_CFG_DMA_CTL_WRITE  0x10

#define FW_CFG_MAX_FILE_PATH  56
#define FW_CFG_DIR_ENTRY_SIZE 64 /* be32 size, be16 select, be16 reserved, name[56] */

/* ---- the board's interface ---- */
typedef struct FwCfgState FwCfgState;
typedef struct DeviceState DeviceState;

/* Called (VM lock held) when the guest selects a file, before any byte is read, so its
 * owner can rebuild the contents with fw_cfg_modify_file. */
typedef void (*FwCfgSelectCb)(void *opaque, const char *name);

/* The fw_cfg of a device created as "fw_cfg_io" (the board keeps the pointer). */
FwCfgState *fw_cfg_from_device(DeviceState *dev);

/* Numbered items; data is referenced, not copied.  Replaces an earlier value. */
void fw_cfg_add_bytes(FwCfgState *s, uint16_t key, GBytes *data);
void fw_cfg_add_copy(FwCfgState *s, uint16_t key, const void *data, size_t len);
void fw_cfg_add_i16(FwCfgState *s, uint16_t key, uint16_t value); /* little-endian */
void fw_cfg_add_i32(FwCfgState *s, uint16_t key, uint32_t value);
void fw_cfg_add_i64(FwCfgState *s, uint16_t key, uint64_t value);
void fw_cfg_add_string(FwCfgState *s, uint16_t key, const char *value); /* with its NUL */

/*
 * Named files, listed in the directory sorted by name (as QEMU).  Fails when the name is
 * empty or longer than 55 bytes, already exists, or all FW_CFG_FILE_SLOTS are taken.
 * Files may only be added before the guest first runs (their selectors then stay fixed).
 */
bool fw_cfg_add_file(FwCfgState *s, const char *name, GBytes *data, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
bool fw_cfg_add_file_copy(FwCfgState *s, const char *name, const void *data, size_t len,
                          Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The same, calling select_cb(opaque, name) whenever the guest selects the file. */
bool fw_cfg_add_file_callback(FwCfgState *s, const char *name, GBytes *data,
                              FwCfgSelectCb select_cb, void *opaque, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Replaces the contents of an existing file (its size may change); false if absent. */
bool fw_cfg_modify_file(FwCfgState *s, const char *name, GBytes *data);
/* The current contents of a file, or NULL (a new reference). */
GBytes *fw_cfg_get_file(FwCfgState *s, const char *name);
bool fw_cfg_has_file(FwCfgState *s, const char *name);

#endif
