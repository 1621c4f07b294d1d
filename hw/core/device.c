/*
 * The device registry: lookup, property parsing, realize, reset and teardown of device
 * instances.  Knows nothing about any particular device.
 */
#include <inttypes.h>
#include <string.h>
#include "hw/core/device-list.h"
#include "sen/device.h"

const DeviceClass *device_class_find(const char *name)
{
    for (const DeviceClass *const *c = device_class_table; *c; c++) {
        if (strcmp((*c)->name, name) == 0) {
            return *c;
        }
    }
    return NULL;
}

void device_class_print_list(FILE *out)
{
    fprintf(out, "Devices:\n");
    for (const DeviceClass *const *c = device_class_table; *c; c++) {
        if ((*c)->user_creatable) {
            fprintf(out, "name \"%s\", desc \"%s\"\n", (*c)->name, (*c)->desc);
        }
    }
}

static const char *prop_type_name(PropType t)
{
    switch (t) {
    case PROP_BOOL:
        return "bool";
    case PROP_U8:
        return "uint8";
    case PROP_U16:
        return "uint16";
    case PROP_U32:
        return "uint32";
    case PROP_U64:
        return "uint64";
    case PROP_SIZE:
        return "size";
    case PROP_STRING:
        return "str";
    }
    return "?";
}

void device_class_print_props(const DeviceClass *cls, FILE *out)
{
    fprintf(out, "%s options:\n", cls->name);
    for (const PropertyDef *p = cls->props; p && p->name; p++) {
        g_autofree char *left = g_strdup_printf("%s=<%s>", p->name, prop_type_name(p->type));
        fprintf(out, "  %-24s - %s", left, p->desc ? p->desc : "");
        if (p->defval) {
            fprintf(out, " (default: %s)", p->defval);
        }
        fprintf(out, "\n");
    }
    if (cls->fw_name) {
        fprintf(out, "  %-24s - %s (default: -1)\n", "bootindex=<int32>",
                 "position in the firmware boot order (lower boots first)");
    }
}

static const PropertyDef *prop_find(const DeviceClass *cls, const char *name)
{
    for (const PropertyDef *p = cls->props; p && p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

/* Parses value into the field of p; the caller words the error. */
static bool prop_set(DeviceState *dev, const PropertyDef *p, const char *value)
{
    void *field = (char *)dev + p->offset;
    uint64_t max = UINT64_MAX;
    uint64_t u;
    bool b;

    switch (p->type) {
    case PROP_BOOL:
        if (!parse_bool(value, &b, NULL)) {
            return false;
        }
        *(bool *)field = b;
        return true;
    case PROP_STRING:
        g_free(*(char **)field);
        *(char **)field = g_strdup(value);
        return true;
    case PROP_SIZE:
        if (!parse_size(value, 1, &u, NULL)) {
            return false;
        }
        *(uint64_t *)field = u;
        return true;
    case PROP_U8:
        max = UINT8_MAX;
        break;
    case PROP_U16:
        max = UINT16_MAX;
        break;
    case PROP_U32:
        max = UINT32_MAX;
        break;
    case PROP_U64:
        break;
    }
    if (!parse_uint(value, &u, NULL) || u > max) {
        return false;
    }
    switch (p->type) {
    case PROP_U8:
        *(uint8_t *)field = u;
        break;
    case PROP_U16:
        *(uint16_t *)field = u;
        break;
    case PROP_U32:
        *(uint32_t *)field = u;
        break;
    default:
        *(uint64_t *)field = u;
        break;
    }
    return true;
}

static void device_free(DeviceState *dev)
{
    for (const PropertyDef *p = dev->cls->props; p && p->name; p++) {
        if (p->type == PROP_STRING) {
            g_free(*(char **)((char *)dev + p->offset));
        }
    }
    g_free(dev->id);
    g_free(dev);
}

bool device_parse_bootindex(const char *str, int32_t *out)
{
    uint64_t v;
    if (strcmp(str, "-1") == 0) {
        *out = -1;
        return true;
    }
    if (!parse_uint(str, &v, NULL) || v > INT32_MAX) {
        return false;
    }
    *out = (int32_t)v;
    return true;
}

/* Allocates an instance with defaults, then the given properties; not realized. */
static DeviceState *device_configure(const DeviceClass *cls, const GPtrArray *globals,
                                     Keyval *props, const char *what, Error **errp)
{
    g_assert(cls->instance_size >= sizeof(DeviceState));
    DeviceState *dev = g_malloc0(cls->instance_size);
    dev->cls = cls;
    dev->bootindex = -1;

    for (const PropertyDef *p = cls->props; p && p->name; p++) {
        /* A default that does not parse is a bug in the device model. */
        if (p->defval && !prop_set(dev, p, p->defval)) {
            g_error("%s: bad default '%s' for property '%s'", cls->name, p->defval, p->name);
        }
    }
    for (guint i = 0; globals && i < globals->len; i++) {
        const GlobalProp *g = g_ptr_array_index((GPtrArray *)globals, i);
        const PropertyDef *p = strcmp(g->driver, cls->name) == 0 ?
                               prop_find(cls, g->property) : NULL;
        /* -global was checked when parsed (device_check_global). */
        if (p && !prop_set(dev, p, g->value)) {
            error_setg(errp, "%s: -global %s.%s=%s: not a valid %s", what, g->driver,
                       g->property, g->value, prop_type_name(p->type));
            device_free(dev);
            return NULL;
        }
    }
    for (guint i = 0; props && props->pairs && i < props->pairs->len; i++) {
        KeyvalPair *pair = g_ptr_array_index(props->pairs, i);
        pair->used = true;
        if (strcmp(pair->key, "id") == 0) {
            g_free(dev->id);
            dev->id = g_strdup(pair->value);
            continue;
        }
        if (strcmp(pair->key, "bootindex") == 0 && cls->fw_name) {
            if (!device_parse_bootindex(pair->value, &dev->bootindex)) {
                error_setg(errp, "%s: property 'bootindex': '%s' is not a valid integer "
                           "(-1 or 0 to %d)", what, pair->value, INT32_MAX);
                device_free(dev);
                return NULL;
            }
            continue;
        }
        const PropertyDef *p = prop_find(cls, pair->key);
        if (!p) {
            error_setg(errp, "%s: property '%s' not found", what, pair->key);
            device_free(dev);
            return NULL;
        }
        if (!prop_set(dev, p, pair->value)) {
            error_setg(errp, "%s: property '%s': '%s' is not a valid %s", what, pair->key,
                       pair->value, prop_type_name(p->type));
            device_free(dev);
            return NULL;
        }
    }
    return dev;
}

bool device_check_props(const char *driver, Keyval *props, const char *what, Error **errp)
{
    const DeviceClass *cls = device_class_find(driver);
    if (!cls) {
        error_setg(errp, "%s: '%s' is not a valid device model name", what ? what : driver,
                   driver);
        return false;
    }
    DeviceState *dev = device_configure(cls, NULL, props, what ? what : driver, errp);
    if (!dev) {
        return false;
    }
    device_free(dev);
    return true;
}

DeviceState *device_create_class(Machine *m, const DeviceClass *cls, Keyval *props,
                                 const char *what, Error **errp)
{
    if (!what) {
        what = cls->name;
    }
    DeviceState *dev = device_configure(cls, m->cfg ? m->cfg->globals : NULL, props, what,
                                        errp);
    if (!dev) {
        return NULL;
    }
    for (guint i = 0; dev->bootindex >= 0 && m->devices && i < m->devices->len; i++) {
        DeviceState *other = g_ptr_array_index(m->devices, i);
        if (other->bootindex == dev->bootindex) {
            error_setg(errp, "%s: The bootindex %d has already been used", what,
                       dev->bootindex);
            device_free(dev);
            return NULL;
        }
    }
    if (cls->realize && !cls->realize(dev, m, errp)) {
        /* Realize names the property; this names where it came from. */
        error_prepend(errp, "%s: ", what);
        device_free(dev);
        return NULL;
    }
    if (!m->devices) {
        m->devices = g_ptr_array_new();
    }
    g_ptr_array_add(m->devices, dev);
    return dev;
}

bool device_check_global(const char *driver, const char *property, const char *value,
                         const char *what, Error **errp)
{
    const DeviceClass *cls = device_class_find(driver);
    if (!cls) {
        error_setg(errp, "%s: '%s' is not a valid device model name", what, driver);
        return false;
    }
    const PropertyDef *p = prop_find(cls, property);
    if (!p) {
        error_setg(errp, "%s: property '%s' not found in '%s'", what, property, driver);
        return false;
    }
    DeviceState *dev = g_malloc0(cls->instance_size);
    dev->cls = cls;
    bool ok = prop_set(dev, p, value);
    device_free(dev);
    if (!ok) {
        error_setg(errp, "%s: '%s' is not a valid %s", what, value, prop_type_name(p->type));
    }
    return ok;
}

DeviceState *device_create(Machine *m, const char *driver, Keyval *props, const char *what,
                           Error **errp)
{
    const DeviceClass *cls = device_class_find(driver);

    if (!cls) {
        error_setg(errp, "%s: '%s' is not a valid device model name", what ? what : driver,
                   driver);
        return NULL;
    }
    return device_create_class(m, cls, props, what, errp);
}

DeviceState *device_find_class(Machine *m, const DeviceClass *cls)
{
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *dev = g_ptr_array_index(m->devices, i);
        if (dev->cls == cls) {
            return dev;
        }
    }
    return NULL;
}

void device_reset_all(Machine *m)
{
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *dev = g_ptr_array_index(m->devices, i);
        if (dev->cls->reset) {
            dev->cls->reset(dev);
        }
    }
}

void device_destroy_all(Machine *m)
{
    if (!m->devices) {
        return;
    }
    /* Reverse creation order: later devices may use earlier ones. */
    while (m->devices->len) {
        DeviceState *dev = g_ptr_array_steal_index(m->devices, m->devices->len - 1);
        if (dev->cls->unrealize) {
            dev->cls->unrealize(dev);
        }
        device_free(dev);
    }
}
