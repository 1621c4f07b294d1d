/*
 * Board-facing hook of -device intel-iommu (hw/i386/intel-iommu-dev.c).
 */
#ifndef SEN_HW_INTEL_IOMMU_H
#define SEN_HW_INTEL_IOMMU_H

#include <stdbool.h>
#include "sen/machine.h"

typedef struct AcpiDmarConfig AcpiDmarConfig;

/* The DMAR table's contents when the machine has an intel-iommu (false: none). */
bool intel_iommu_dmar_config(Machine *m, AcpiDmarConfig *out);

#endif
