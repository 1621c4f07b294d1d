/*
 * The whole machine's device state: a manifest section, the accelerator's sections, then
 * one section per device with a VMStateDesc.  The migration engine and savevm call only
 * vmstate_save_all / vmstate_load_all.
 */
#include <inttypes.h>
#include <string.h>
#include "accel/accel.h"
#include "sen/block.h"
#include "sen/device.h"
#include "sen/vmstate.h"

#define MANIFEST_SECTION "machine"
/* Longest device list the manifest carries ("driver,driver,..."). */
#define MANIFEST_DEVICES_MAX 65536

/*
 * What must be equal on both sides before any state makes sense: RAM size, vCPU count
 * and the ordered list of devices (including those without state, so that a missing
 * stateless device is still noticed).
 */
typedef struct MachineManifest {
    uint64_t ram_size;
    uint32_t nr_cpus;
    uint32_t devices_len;
    uint8_t *devices;        /* "driver,driver,...", not NUL-terminated */
} MachineManifest;

static const VMStateField manifest_fields[] = {
    VMSTATE_UINT64(ram_size, MachineManifest),
    VMSTATE_UINT32(nr_cpus, MachineManifest),
    { .name = "devices", .type = VMS_U8, .offset = offsetof(MachineManifest, devices),
      .size = 1, .num = MANIFEST_DEVICES_MAX,
      .count_offset = offsetof(MachineManifest, devices_len),
      .flags = VMS_F_POINTER | VMS_F_COUNTED },
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc manifest_vmsd = {
    .name = "machine",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = manifest_fields,
};

/* The virtual clock: device timers hold absolute deadlines on it, so the destination's
 * clock continues from the source's reading (loaded before any device). */
typedef struct ClockState {
    int64_t virt_ns;
} ClockState;

static const VMStateField clock_fields[] = {
    VMSTATE_INT64(virt_ns, ClockState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc clock_vmsd = {
    .name = "clock",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = clock_fields,
};

static char *device_list(Machine *m)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *d = g_ptr_array_index(m->devices, i);
        g_string_append_printf(s, "%s%s", i ? "," : "", d->cls->name);
    }
    return g_string_free(s, FALSE);
}

static unsigned machine_cpus(Machine *m)
{
    return m->cfg->smp_cpus ? m->cfg->smp_cpus : 1;
}

/* Calls fn for every device with a vmsd and its section name "<driver>.<n>". */
static bool foreach_device_section(Machine *m,
                                   bool (*fn)(DeviceState *d, const char *name,
                                              void *opaque, Error **errp),
                                   void *opaque, Error **errp)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *d = g_ptr_array_index(m->devices, i);
        unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(seen, d->cls->name));
        g_hash_table_insert(seen, (gpointer)d->cls->name, GUINT_TO_POINTER(n + 1));
        if (!d->cls->vmsd) {
            continue;
        }
        g_autofree char *name = g_strdup_printf("%s.%u", d->cls->name, n);
        if (!fn(d, name, opaque, errp)) {
            return false;
        }
    }
    return true;
}

static bool save_device(DeviceState *d, const char *name, void *opaque, Error **errp)
{
    return vmstate_save_section(opaque, name, d->cls->vmsd, d, errp);
}

static bool load_device(DeviceState *d, const char *name, void *opaque, Error **errp)
{
    return vmstate_load_section(opaque, name, d->cls->vmsd, d, errp);
}

void vmstate_drain_all(Machine *m)
{
    g_autoptr(GPtrArray) backends = block_backends(m);
    /* A queue notification an I/O thread took before the VM stopped may still be on its
     * way to the block layer; after the barrier it is there (later ones wait for the
     * next start), so the drain below sees it. */
    machine_iothreads_barrier(m);
    for (guint i = 0; i < backends->len; i++) {
        blk_drain(g_ptr_array_index(backends, i));
    }
}

static bool check_drained(Machine *m, Error **errp)
{
    g_autoptr(GPtrArray) backends = block_backends(m);
    for (guint i = 0; i < backends->len; i++) {
        BlockBackend *blk = g_ptr_array_index(backends, i);
        int n = blk_in_flight(blk);
        if (n > 0) {
            error_setg(errp, "drive '%s' has %d requests in flight: the VM must be drained "
                       "(vmstate_drain_all) before its state is saved", blk_name(blk), n);
            return false;
        }
    }
    return true;
}

static bool save_all_locked(Machine *m, GByteArray *out, Error **errp)
{
    if (!check_drained(m, errp)) {
        return false;
    }
    g_autofree char *devices = device_list(m);
    MachineManifest man = {
        .ram_size = m->cfg->ram_size,
        .nr_cpus = machine_cpus(m),
        .devices_len = (uint32_t)strlen(devices),
        .devices = (uint8_t *)devices,
    };
    ClockState clock = { m->clock ? virt_clock_get_ns(m->clock) : 0 };
    VMStateOut *o = vmstate_out_new(out);
    bool ok = vmstate_save_section(o, MANIFEST_SECTION, &manifest_vmsd, &man, errp) &&
              (!m->clock || vmstate_save_section(o, "clock", &clock_vmsd, &clock, errp)) &&
              (!m->accel->state_save || m->accel->state_save(m, o, errp)) &&
              foreach_device_section(m, save_device, o, errp);
    vmstate_out_finish(o);
    return ok;
}

bool vmstate_save_all(Machine *m, GByteArray *out, Error **errp)
{
    machine_lock(m);
    bool ok = save_all_locked(m, out, errp);
    machine_unlock(m);
    return ok;
}

static bool check_manifest(Machine *m, VMStateIn *in, Error **errp)
{
    g_autofree uint8_t *buf = g_malloc(MANIFEST_DEVICES_MAX);
    MachineManifest man = { .devices = buf };
    if (!vmstate_load_section(in, MANIFEST_SECTION, &manifest_vmsd, &man, errp)) {
        return false;
    }
    if (man.ram_size != m->cfg->ram_size) {
        error_setg(errp, "device state: the source has %" PRIu64 " MiB of RAM, this machine "
                   "%" PRIu64 " MiB (-m must match)", man.ram_size >> 20,
                   m->cfg->ram_size >> 20);
        return false;
    }
    if (man.nr_cpus != machine_cpus(m)) {
        error_setg(errp, "device state: the source has %" PRIu32 " vCPUs, this machine %u "
                   "(-smp must match)", man.nr_cpus, machine_cpus(m));
        return false;
    }
    g_autofree char *theirs = g_strndup((const char *)man.devices, man.devices_len);
    g_autofree char *ours = device_list(m);
    if (strcmp(theirs, ours) != 0) {
        error_setg(errp, "device state: the device set differs (source: %s; this machine: "
                   "%s)", theirs, ours);
        return false;
    }
    return true;
}

static bool load_all_locked(Machine *m, VMStateIn *in, Error **errp)
{
    if (!check_manifest(m, in, errp)) {
        return false;
    }
    if (m->clock) {
        ClockState clock;
        if (!vmstate_load_section(in, "clock", &clock_vmsd, &clock, errp)) {
            return false;
        }
        virt_clock_load(m->clock, clock.virt_ns);
    }
    if (m->accel->state_load) {
        if (!m->accel->state_load(m, in, errp)) {
            return false;
        }
    }
    return foreach_device_section(m, load_device, in, errp) &&
           vmstate_in_check_consumed(in, errp);
}

bool vmstate_load_all(Machine *m, const uint8_t *data, size_t len, Error **errp)
{
    VMStateIn *in = vmstate_in_parse(data, len, errp);
    if (!in) {
        return false;
    }
    machine_lock(m);
    bool ok = load_all_locked(m, in, errp);
    machine_unlock(m);
    vmstate_in_free(in);
    return ok;
}
