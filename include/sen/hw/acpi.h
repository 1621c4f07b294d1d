/*
 * Board-facing hooks of the ACPI PM block (hw/acpi/piix4-pm.c).
 */
#ifndef SEN_HW_ACPI_H
#define SEN_HW_ACPI_H

#include <stdbool.h>
#include "sen/machine.h"

/* Presses the ACPI power button (QMP system_powerdown): sets PWRBTN_STS and raises the
 * SCI if the guest enabled it.  VM lock held.  False when the machine has no PM block. */
bool acpi_pm_press_power_button(Machine *m);
/* After the reset that ends an S3 sleep: WAK_STS and the status bit of what woke the
 * guest (RTC_STS for the RTC alarm, PWRBTN_STS otherwise).  VM lock held. */
void acpi_pm_wakeup(Machine *m, WakeupReason reason);

#endif
