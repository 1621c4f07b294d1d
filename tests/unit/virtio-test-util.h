/*
 * Shared by the virtio unit tests (test-virtio-pci.c, test-virtio-blk.c,
 * test-virtio-blk-resize.c): a hand-built Machine with guest RAM, a fake accelerator that
 * records interrupts, the i440fx host bridge, and a driver's view of one virtio-pci
 * device (config space, BAR 4 registers, a split queue at fixed guest addresses).  Every
 * helper asserts instead of returning an error: a failure is a failed test.
 */
#ifndef SEN_TESTS_VIRTIO_TEST_UTIL_H
#define SEN_TESTS_VIRTIO_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "accel/accel.h"
#include "sen/device.h"
#include "sen/pci.h"
#include "sen/virtio.h"

#define VT_RAM_SIZE  (4 * 1024 * 1024ull)
#define VT_BAR4      0xe0000000ull
#define VT_DESC_GPA  0x10000ull
#define VT_AVAIL_GPA 0x11000ull
#define VT_USED_GPA  0x12000ull
#define VT_QSIZE     16

/* common configuration offsets in BAR 4 (virtio 1.x, 4.1.4.3) */
enum {
    CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
    CC_MSIX_CONFIG = 0x10, CC_NUM_QUEUES = 0x12, CC_STATUS = 0x14, CC_CFG_GEN = 0x15,
    CC_Q_SELECT = 0x16, CC_Q_SIZE = 0x18, CC_Q_MSIX = 0x1a, CC_Q_ENABLE = 0x1c,
    CC_Q_NOTIFY_OFF = 0x1e, CC_Q_DESC = 0x20, CC_Q_AVAIL = 0x28, CC_Q_USED = 0x30,
};

typedef struct VirtioTestMachine {
    Machine m;
    AccelOps ops;
    bool drives;            /* built from a command line, with drives and a main context */
    unsigned msis;          /* fake accelerator: MSIs signalled, the last one's data */
    uint32_t last_msi_data;
    int irq[32];            /* fake accelerator: level of each GSI */
    PCIDevice *dev;         /* the device under test, for vt_cfg_* and vt_rd/vt_wr */
    uint8_t *ram;
    uint16_t avail_idx;     /* the driver's copy of queue 0's avail index */
} VirtioTestMachine;

void vt_check_no_error(Error *err);

/*
 * RAM, fake accelerator, I/O spaces and the PCI host bridge.  With argv (a sen command
 * line, e.g. with -drive options) also the machine config, its drives, the lock and the
 * default main context; without, none of them (the transport tests need none).
 */
void vt_init(VirtioTestMachine *f, int argc, char **argv);
void vt_done(VirtioTestMachine *f);

/* device_create of driver with id driver and props (may be NULL) parsed as keyval. */
DeviceState *vt_add_device(VirtioTestMachine *f, const char *driver, const char *props,
                           Error **errp);

/* f->dev's config space through ports 0xcf8/0xcfc. */
uint32_t vt_cfg_read(VirtioTestMachine *f, uint32_t reg, unsigned size);
void vt_cfg_write(VirtioTestMachine *f, uint32_t reg, unsigned size, uint32_t val);
/* Maps BAR 4 at VT_BAR4 and enables memory and bus mastering. */
void vt_map_bar4(VirtioTestMachine *f);

/* BAR 4 accesses, asserted to hit a region. */
uint64_t vt_rd(VirtioTestMachine *f, uint64_t off, unsigned size);
void vt_wr(VirtioTestMachine *f, uint64_t off, unsigned size, uint64_t v);

/*
 * A driver of a virtio-blk-pci: maps BAR 4, resets, accepts every offered feature and
 * sets up queue 0 with VT_QSIZE entries up to DRIVER_OK; returns the features.
 */
uint64_t vt_blk_driver_init(VirtioTestMachine *f);

/* Descriptor i of queue 0, chained to i + 1 when flags has VIRTQ_DESC_F_NEXT. */
void vt_set_desc(VirtioTestMachine *f, unsigned i, uint64_t addr, uint32_t len,
                 uint16_t flags);
/* Makes the chain at descriptor 0 available and notifies queue 0. */
void vt_kick(VirtioTestMachine *f);
uint16_t vt_used_idx(VirtioTestMachine *f);
/* Runs the main context until everything made available is used (10 s at most). */
void vt_wait_used(VirtioTestMachine *f);

#endif
