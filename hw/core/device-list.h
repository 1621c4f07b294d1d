/* The static table of device models (device-list.c); private to hw/core. */
#ifndef SEN_HW_DEVICE_LIST_H
#define SEN_HW_DEVICE_LIST_H

#include "sen/device.h"

extern const DeviceClass isa_serial_class;
extern const DeviceClass isa_debug_exit_class;
extern const DeviceClass pvpanic_class;
extern const DeviceClass pc_testdev_class;
extern const DeviceClass i8042_class;
extern const DeviceClass ioport80_class;
extern const DeviceClass port92_class;
extern const DeviceClass acpi_pm_class;
extern const DeviceClass mc146818rtc_class;
extern const DeviceClass i440fx_pcihost_class;
extern const DeviceClass q35_pcihost_class;
extern const DeviceClass ich9_lpc_class;
extern const DeviceClass pci_testdev_class;
extern const DeviceClass edu_class;
extern const DeviceClass ioapic_class;
extern const DeviceClass i8254_class;
extern const DeviceClass virtio_blk_pci_class;
extern const DeviceClass virtio_rng_pci_class;
extern const DeviceClass virtio_balloon_pci_class;
extern const DeviceClass virtio_serial_pci_class;
extern const DeviceClass virtconsole_class;
extern const DeviceClass virtio_console_pci_class;
extern const DeviceClass fw_cfg_io_class;
extern const DeviceClass virtio_net_pci_class;
extern const DeviceClass intel_iommu_class;

/* NULL-terminated, in the order -device help lists them. */
extern const DeviceClass *const device_class_table[];

#endif
