/*
 * The device registry: every device model is a DeviceClass in a static table
 * (hw/core/device-list.c), with typed properties that drive -device parsing and, later,
 * QMP introspection.  No object system beyond this.
 *
 * An instance is a struct whose first member is DeviceState.  device_create() allocates
 * it, applies property defaults, then the -device / board properties, rejects unknown
 * ones ("-device isa-debug-exit,foo=1: property 'foo' not found"), and calls realize.
 * The machine owns instances: reset in creation order, unrealize in reverse.
 */
#ifndef SEN_DEVICE_H
#define SEN_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "sen/error.h"
#include "sen/keyval.h"
#include "sen/machine.h"

typedef struct VMStateDesc VMStateDesc;

typedef enum PropType {
    PROP_BOOL,   /* bool */
    PROP_U8,     /* uint8_t */
    PROP_U16,    /* uint16_t */
    PROP_U32,    /* uint32_t */
    PROP_U64,    /* uint64_t */
    PROP_SIZE,   /* uint64_t, with K/M/G suffixes */
    PROP_STRING, /* char *, owned by the instance (freed with it) */
} PropType;

typedef struct PropertyDef {
    const char *name;
    PropType type;
    size_t offset;       /* of the field inside the instance struct */
    const char *defval;  /* parsed like user input; NULL = zero / NULL */
    const char *desc;
} PropertyDef;

#define DEFINE_PROP(_name, _type, _state, _field, _def, _desc) \
    { .name = (_name), .type = (_type), .offset = offsetof(_state, _field), \
      .defval = (_def), .desc = (_desc) }

typedef struct DeviceClass {
    const char *name;      /* "isa-debug-exit" */
    const char *desc;      /* one line for -device help */
    size_t instance_size;
    const PropertyDef *props; /* terminated by { .name = NULL } */
    bool user_creatable;   /* may be given with -device */
    /* Claims I/O ranges, IRQ lines, backends; errors name the property. */
    bool (*realize)(DeviceState *dev, Machine *m, Error **errp);
    /* Back to power-on state (system reset); VM lock held, vCPUs stopped. */
    void (*reset)(DeviceState *dev);
    /* Releases what realize took; the instance memory is freed by the registry. */
    void (*unrealize)(DeviceState *dev);
    /* PCI devices (the instance starts with a PCIDevice) firmware can boot from: the
     * OpenFirmware node QEMU names them by in fw_cfg "bootorder", "scsi" and "/disk@0,0"
     * for virtio-blk.  Non-NULL fw_name enables the bootindex= property. */
    const char *fw_name;
    const char *fw_suffix;
    /* Migratable state over the instance struct (include/sen/vmstate.h); NULL = the
     * device has none beyond its configuration. */
    const VMStateDesc *vmsd;
} DeviceClass;

struct DeviceState {
    const DeviceClass *cls;
    char *id;              /* id= property or NULL */
    int32_t bootindex;     /* bootindex= (classes with fw_name), -1 = not in the boot order */
};

const DeviceClass *device_class_find(const char *name);
/* Prints the user-creatable devices ("-device help"). */
void device_class_print_list(FILE *out);
/* Prints the properties of one class ("-device isa-debug-exit,help"). */
void device_class_print_props(const DeviceClass *cls, FILE *out);

/*
 * Creates, configures and realizes a device and appends it to m->devices.
 * what names the source for errors ("-device isa-debug-exit,iobase=x").
 * props may be NULL; every key in it must be a property (or "id").
 */
DeviceState *device_create(Machine *m, const char *driver, Keyval *props, const char *what,
                           Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The same for a class not in the table (tests, boards with private models). */
DeviceState *device_create_class(Machine *m, const DeviceClass *cls, Keyval *props,
                                 const char *what, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Parses props against driver's properties without creating anything, so that a bad
 * -device is reported before any chardev file or socket exists. */
bool device_check_props(const char *driver, Keyval *props, const char *what, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Checks -global DRIVER.PROPERTY=VALUE: the driver, its property and the value parse. */
bool device_check_global(const char *driver, const char *property, const char *value,
                         const char *what, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The first device of class cls on m (creation order), or NULL: for a board-wide
 * singleton that others reach through the machine (the ACPI PM block, the IOMMU). */
DeviceState *device_find_class(Machine *m, const DeviceClass *cls);
/* bootindex=: -1 (none) or 0..INT32_MAX, as QEMU's int32 property allows. */
bool device_parse_bootindex(const char *str, int32_t *out);
void device_reset_all(Machine *m);
void device_destroy_all(Machine *m);

#endif
