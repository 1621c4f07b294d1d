/* Every device model Sen knows.  Add one line per model. */
#include "hw/core/device-list.h"

const DeviceClass *const device_class_table[] = {
    &isa_serial_class,
    &isa_debug_exit_class,
    &i8042_class,
    &ioport80_class,
    &port92_class,
    &acpi_pm_class,
    &mc146818rtc_class,
    &i440fx_pcihost_class,
    &q35_pcihost_class,
    &ich9_lpc_class,
    &pci_testdev_class,
    &edu_class,
    &ioapic_class,
    &pc_testdev_class,
    &virtio_blk_pci_class,
    &virtio_rng_pci_class,
    &virtio_balloon_pci_class,
    &virtio_serial_pci_class,
    &virtconsole_class,
    &virtio_console_pci_class,
    &fw_cfg_io_class,
    &virtio_net_pci_class,
    &intel_iommu_class,
    NULL,
};
