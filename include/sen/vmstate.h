/*
 * Device and accelerator state for migration and snapshots: declarative, named, versioned.
 *
 * A device describes its migratable state once, beside its code, as a VMStateDesc: a name,
 * a version, the oldest version it can still load, and a list of fields (name, type,
 * offset in the instance struct, fixed or counted arrays, nested descriptions), plus
 * optional pre_save/post_load hooks and named optional subsections (added instead of
 * version bumps).  DeviceClass.vmsd points at it; the accelerator contributes its own
 * sections (vCPU registers, interrupt controllers, clock) through AccelOps.state_save /
 * state_load, which call vmstate_save_section / vmstate_load_section below.
 *
 * The encoded form is self-describing so that a destination can say exactly what does not
 * match; docs/migration-format.md ("Device state blob") documents it byte by byte:
 *
 *   blob    = magic "SENVMST\0" | u32 format(1) | u32 nsections | section* | u32 crc32
 *   section = u16 namelen | name | u32 version | u32 len | payload(len)
 *   payload = record*          (the desc's fields in order, then needed subsections)
 *   record  = u8 namelen | name | u32 len | data(len)
 *
 * All integers are little-endian.  Loading never reads outside the input and never writes
 * outside the described fields; every mismatch is an error naming section and field.
 */
#ifndef SEN_VMSTATE_H
#define SEN_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "sen/error.h"
#include "sen/machine.h"

typedef struct VMStateDesc VMStateDesc;

typedef enum VMStateType {
    VMS_BOOL,    /* bool, encoded as one byte 0/1 (anything else is rejected) */
    VMS_U8,
    VMS_U16,
    VMS_U32,
    VMS_U64,
    VMS_I32,
    VMS_I64,
    VMS_BUFFER,  /* opaque bytes of .size (kernel ABI structs, register files) */
    VMS_STRUCT,  /* nested .vmsd over .size bytes */
} VMStateType;

enum {
    /* The instance field is a pointer to the data (arrays allocated at realize). */
    VMS_F_POINTER = 1 << 0,
    /* .num is a capacity; the element count is the uint32_t at .count_offset.  Saved as
     * it is; on load the stream's count must be <= .num and is stored there. */
    VMS_F_COUNTED = 1 << 1,
    /* With VMS_F_COUNTED: the destination's count is fixed by its configuration (queues
     * of a device) and the stream's must equal it. */
    VMS_F_COUNT_FIXED = 1 << 2,
};

typedef struct VMStateField {
    const char *name;            /* unique within its desc, at most 255 bytes */
    VMStateType type;
    size_t offset;               /* of the field inside the instance struct */
    size_t size;                 /* bytes of one element */
    uint32_t num;                /* array length (or capacity); 0 = one element */
    size_t count_offset;         /* VMS_F_COUNTED: offset of the uint32_t count */
    unsigned flags;              /* VMS_F_* */
    const VMStateDesc *vmsd;     /* VMS_STRUCT */
    int version_id;              /* first section version that has this field (0 = all) */
} VMStateField;

struct VMStateDesc {
    const char *name;
    int version_id;              /* what save writes */
    int minimum_version_id;      /* oldest version load accepts */
    const VMStateField *fields;  /* terminated by VMSTATE_END_OF_LIST() */
    /* Subsections are optional extensions: saved only when needed() says so (NULL:
     * always), accepted on load only when this desc lists them.  NULL-terminated. */
    const VMStateDesc *const *subsections;
    bool (*needed)(void *opaque);
    /* Before encoding (vCPUs stopped, VM lock held): bring the struct up to date. */
    bool (*pre_save)(void *opaque, Error **errp);
    /* After encoding, also when it failed (only if pre_save succeeded): undo what
     * pre_save changed to make the state saveable. */
    void (*post_save)(void *opaque);
    /* Before the decoded fields are written (after the whole payload was checked): e.g.
     * point a field's pointer at a staging buffer that post_load validates. */
    bool (*pre_load)(void *opaque, Error **errp);
    /* After decoding: validate what the fields cannot (ranges, consistency) and rebuild
     * derived state (mappings, timers, eventfds).  version_id is the stream's. */
    bool (*post_load)(void *opaque, int version_id, Error **errp);
};

/* ---- field macros: _s is the instance struct type, _f the member ---- */

#define VMSTATE_FIELD_(_name, _type, _s, _f, _size, _num, _flags, _vmsd, _v) \
    { .name = (_name), .type = (_type), .offset = offsetof(_s, _f), .size = (_size), \
      .num = (_num), .flags = (_flags), .vmsd = (_vmsd), .version_id = (_v) }
#define VMSTATE_SCALAR_(_t, _s, _f) \
    VMSTATE_FIELD_(#_f, _t, _s, _f, sizeof(((_s *)0)->_f), 0, 0, NULL, 0)

#define VMSTATE_BOOL(_f, _s)   VMSTATE_SCALAR_(VMS_BOOL, _s, _f)
#define VMSTATE_UINT8(_f, _s)  VMSTATE_SCALAR_(VMS_U8, _s, _f)
#define VMSTATE_UINT16(_f, _s) VMSTATE_SCALAR_(VMS_U16, _s, _f)
#define VMSTATE_UINT32(_f, _s) VMSTATE_SCALAR_(VMS_U32, _s, _f)
#define VMSTATE_UINT64(_f, _s) VMSTATE_SCALAR_(VMS_U64, _s, _f)
#define VMSTATE_INT32(_f, _s)  VMSTATE_SCALAR_(VMS_I32, _s, _f)
#define VMSTATE_INT64(_f, _s)  VMSTATE_SCALAR_(VMS_I64, _s, _f)
/* A field that appeared in version _v of its section. */
#define VMSTATE_UINT32_V(_f, _s, _v) \
    VMSTATE_FIELD_(#_f, VMS_U32, _s, _f, sizeof(uint32_t), 0, 0, NULL, _v)
#define VMSTATE_UINT64_V(_f, _s, _v) \
    VMSTATE_FIELD_(#_f, VMS_U64, _s, _f, sizeof(uint64_t), 0, 0, NULL, _v)
/* Fixed arrays of scalars: _t is the VMS_ type of one element. */
#define VMSTATE_ARRAY(_f, _s, _n, _t) \
    VMSTATE_FIELD_(#_f, _t, _s, _f, sizeof(((_s *)0)->_f[0]), _n, 0, NULL, 0)
#define VMSTATE_UINT8_ARRAY(_f, _s, _n)  VMSTATE_ARRAY(_f, _s, _n, VMS_U8)
#define VMSTATE_UINT16_ARRAY(_f, _s, _n) VMSTATE_ARRAY(_f, _s, _n, VMS_U16)
#define VMSTATE_UINT32_ARRAY(_f, _s, _n) VMSTATE_ARRAY(_f, _s, _n, VMS_U32)
#define VMSTATE_UINT64_ARRAY(_f, _s, _n) VMSTATE_ARRAY(_f, _s, _n, VMS_U64)
/* Opaque bytes: a whole member (a kernel ABI struct, a register file). */
#define VMSTATE_BUFFER(_f, _s) \
    VMSTATE_FIELD_(#_f, VMS_BUFFER, _s, _f, sizeof(((_s *)0)->_f), 0, 0, NULL, 0)
/* _len bytes behind the pointer member _f. */
#define VMSTATE_BUFFER_POINTER(_f, _s, _len) \
    VMSTATE_FIELD_(#_f, VMS_BUFFER, _s, _f, _len, 0, VMS_F_POINTER, NULL, 0)
/* A nested struct member described by _vmsd. */
#define VMSTATE_STRUCT(_f, _s, _vmsd, _type) \
    VMSTATE_FIELD_(#_f, VMS_STRUCT, _s, _f, sizeof(_type), 0, 0, &(_vmsd), 0)
#define VMSTATE_STRUCT_ARRAY(_f, _s, _n, _vmsd, _type) \
    VMSTATE_FIELD_(#_f, VMS_STRUCT, _s, _f, sizeof(_type), _n, 0, &(_vmsd), 0)
/* Pointer member _f to an array of _type with capacity _cap and count member _cnt
 * (uint32_t) that the destination's configuration fixes (queues of a device). */
#define VMSTATE_STRUCT_VARRAY_POINTER(_f, _s, _cnt, _cap, _vmsd, _type) \
    { .name = #_f, .type = VMS_STRUCT, .offset = offsetof(_s, _f), .size = sizeof(_type), \
      .num = (_cap), .count_offset = offsetof(_s, _cnt), \
      .flags = VMS_F_POINTER | VMS_F_COUNTED | VMS_F_COUNT_FIXED, .vmsd = &(_vmsd) }
/* Inline array _f[_cap] of scalars of VMS_ type _t whose count (uint32_t member _cnt)
 * comes from the stream (MSR lists). */
#define VMSTATE_VARRAY(_f, _s, _cnt, _cap, _t) \
    { .name = #_f, .type = (_t), .offset = offsetof(_s, _f), \
      .size = sizeof(((_s *)0)->_f[0]), .num = (_cap), .count_offset = offsetof(_s, _cnt), \
      .flags = VMS_F_COUNTED }
#define VMSTATE_STRUCT_VARRAY(_f, _s, _cnt, _cap, _vmsd, _type) \
    { .name = #_f, .type = VMS_STRUCT, .offset = offsetof(_s, _f), .size = sizeof(_type), \
      .num = (_cap), .count_offset = offsetof(_s, _cnt), .flags = VMS_F_COUNTED, \
      .vmsd = &(_vmsd) }
#define VMSTATE_END_OF_LIST() { .name = NULL }

/* ---- one payload (used by sections; exposed for unit tests) ---- */

/* Appends the records of vmsd over opaque (runs pre_save hooks). */
bool vmstate_save_payload(const VMStateDesc *vmsd, void *opaque, GByteArray *out,
                          Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Decodes a payload of section version `version` into opaque (runs post_load hooks).
 * Checks everything before writing a byte into opaque, then writes and runs the hooks;
 * what names the section in errors. */
bool vmstate_load_payload(const VMStateDesc *vmsd, void *opaque, int version,
                          const uint8_t *data, size_t len, const char *what,
                          Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* ---- sections: a blob writer and a parsed blob ---- */

typedef struct VMStateOut VMStateOut;
typedef struct VMStateIn VMStateIn;

/* Starts a blob at the end of buf (header with a section count patched at finish). */
VMStateOut *vmstate_out_new(GByteArray *buf);
/* Appends section `name` (version vmsd->version_id). */
bool vmstate_save_section(VMStateOut *out, const char *name, const VMStateDesc *vmsd,
                          void *opaque, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Patches the count, appends the checksum and frees out. */
void vmstate_out_finish(VMStateOut *out);

/* Parses the container (magic, format, section framing, duplicate names, checksum)
 * without interpreting any payload. */
VMStateIn *vmstate_in_parse(const uint8_t *data, size_t len, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void vmstate_in_free(VMStateIn *in);
bool vmstate_in_has_section(const VMStateIn *in, const char *name);
/* Loads section `name` (must exist, version in [minimum_version_id, version_id]) and
 * marks it consumed. */
bool vmstate_load_section(VMStateIn *in, const char *name, const VMStateDesc *vmsd,
                          void *opaque, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Fails naming the first section nobody consumed (a device or vCPU the destination
 * lacks). */
bool vmstate_in_check_consumed(const VMStateIn *in, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* ---- the whole machine (the migration engine's contract) ---- */

/*
 * Main thread, vCPUs stopped, VM lock not held: waits until no block request is in
 * flight.  Their completions write guest RAM (data, used rings), so the engine calls this
 * right after stopping the vCPUs and BEFORE its last RAM pass; vmstate_save_all refuses
 * to save while a request is still in flight rather than lose those writes.
 */
void vmstate_drain_all(Machine *m);

/*
 * Main thread, vCPUs stopped (AccelOps.pause done), VM lock not held (taken inside).
 * Appends a self-describing blob of named, versioned sections to out: the machine
 * manifest (RAM size, vCPU count, device list), the accelerator's sections, then one
 * section per device that has a vmsd ("<driver>.<n>", n counting instances of the driver
 * in creation order).  On failure out may hold a partial blob; discard it.
 */
bool vmstate_save_all(Machine *m, GByteArray *out, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/*
 * Same context, on a machine built from the same configuration and not yet started.
 * Validates everything (framing, checksum, manifest, section names, versions, sizes,
 * device set) with clear errors naming what does not match; device mappings (BARs,
 * ioeventfds, irqfds, MSI routes) are re-established from the loaded state.  The caller
 * exits on failure, so partial application is acceptable.
 */
bool vmstate_load_all(Machine *m, const uint8_t *data, size_t len, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

#endif
