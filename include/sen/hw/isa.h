/*
 * Board-facing helpers of the ISA devices the PC creates itself.
 */
#ifndef SEN_HW_ISA_H
#define SEN_HW_ISA_H

#include <stdint.h>
#include "sen/device.h"

/* mc146818rtc: CMOS bytes the board fills (memory size fields, boot info).  reg 0x0e..0x7f. */
void rtc_set_cmos(DeviceState *rtc, uint8_t reg, uint8_t value);
uint8_t rtc_get_cmos(DeviceState *rtc, uint8_t reg);

/* pvpanic: the I/O port of the machine's pvpanic device, 0 when it has none (the DSDT
 * describes it as QEMU0001, the ACPI id Linux's pvpanic driver matches). */
typedef struct Machine Machine;
uint16_t pvpanic_port(Machine *m);

#endif
