/*
 * The VMStateDesc codec and the device-state blob (layout: include/sen/vmstate.h and
 * docs/migration-format.md).
 *
 * Loading is done in two passes over the same bytes: the first only checks (names,
 * lengths, counts, versions, value ranges of booleans), the second writes into the
 * instance and runs the post_load hooks.  So a payload that does not match never leaves
 * a half-written struct behind, and the writing pass can trust every length it reads.
 */
#include <inttypes.h>
#include <string.h>
#include <zlib.h>
#include "sen/vmstate.h"

#define VMSTATE_MAGIC "SENVMST" /* 8 bytes with the NUL */
#define VMSTATE_MAGIC_LEN 8
#define VMSTATE_FORMAT 1
#define VMSTATE_HEADER_LEN (VMSTATE_MAGIC_LEN + 4 + 4)
#define VMSTATE_NAME_MAX 255

/* ---- little-endian output ---- */

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_le(GByteArray *b, uint64_t v, unsigned bytes)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < bytes; i++) {
        tmp[i] = (uint8_t)(v >> (8 * i));
    }
    g_byte_array_append(b, tmp, bytes);
}

static void patch_u32(GByteArray *b, size_t at, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        b->data[at + i] = (uint8_t)(v >> (8 * i));
    }
}

/* ---- bounds-checked input ---- */

typedef struct Reader {
    const uint8_t *p;
    size_t len, pos;
} Reader;

static bool get_bytes(Reader *r, size_t n, const uint8_t **out)
{
    if (n > r->len - r->pos) {
        return false;
    }
    *out = r->p + r->pos;
    r->pos += n;
    return true;
}

static bool get_le(Reader *r, unsigned bytes, uint64_t *v)
{
    const uint8_t *p;
    if (!get_bytes(r, bytes, &p)) {
        return false;
    }
    *v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        *v |= (uint64_t)p[i] << (8 * i);
    }
    return true;
}

static bool get_u32(Reader *r, uint32_t *v)
{
    uint64_t tmp;
    if (!get_le(r, 4, &tmp)) {
        return false;
    }
    *v = (uint32_t)tmp;
    return true;
}

/* ---- encoding ---- */

/* Width in the stream of one scalar element; 0 for BUFFER/STRUCT. */
static unsigned scalar_width(VMStateType t)
{
    switch (t) {
    case VMS_BOOL:
    case VMS_U8:
        return 1;
    case VMS_U16:
        return 2;
    case VMS_U32:
    case VMS_I32:
        return 4;
    case VMS_U64:
    case VMS_I64:
        return 8;
    case VMS_BUFFER:
    case VMS_STRUCT:
        return 0;
    }
    return 0;
}

static uint64_t load_host(const void *p, unsigned width)
{
    uint8_t v8;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (width) {
    case 1:
        memcpy(&v8, p, 1);
        return v8;
    case 2:
        memcpy(&v16, p, 2);
        return v16;
    case 4:
        memcpy(&v32, p, 4);
        return v32;
    default:
        memcpy(&v64, p, 8);
        return v64;
    }
}

static void store_host(void *p, unsigned width, uint64_t v)
{
    uint8_t v8 = (uint8_t)v;
    uint16_t v16 = (uint16_t)v;
    uint32_t v32 = (uint32_t)v;
    switch (width) {
    case 1:
        memcpy(p, &v8, 1);
        break;
    case 2:
        memcpy(p, &v16, 2);
        break;
    case 4:
        memcpy(p, &v32, 4);
        break;
    default:
        memcpy(p, &v, 8);
        break;
    }
}

/* Where a field's elements are, or NULL (with the error set) for a NULL pointer field. */
static uint8_t *field_base(const VMStateDesc *vmsd, const VMStateField *f, void *opaque,
                           Error **errp)
{
    uint8_t *base = (uint8_t *)opaque + f->offset;
    if (f->flags & VMS_F_POINTER) {
        base = *(uint8_t **)base;
        if (!base) {
            error_setg(errp, "%s: field '%s' points nowhere", vmsd->name, f->name);
        }
    }
    return base;
}

/* Descriptions are code: a width that does not fit its type is a Sen bug, reported as an
 * error rather than encoding garbage. */
static bool field_sane(const VMStateDesc *vmsd, const VMStateField *f, Error **errp)
{
    unsigned w = scalar_width(f->type);
    if ((w && f->size != w) || (!w && f->size == 0) ||
        (f->type == VMS_STRUCT && !f->vmsd) || strlen(f->name) > VMSTATE_NAME_MAX ||
        ((f->flags & VMS_F_COUNTED) && f->num == 0)) {
        error_setg(errp, "%s: field '%s' is described inconsistently", vmsd->name, f->name);
        return false;
    }
    return true;
}

static void put_record_head(GByteArray *b, const char *name, size_t *len_at)
{
    size_t n = strlen(name);
    put_u8(b, (uint8_t)n);
    g_byte_array_append(b, (const guint8 *)name, n);
    *len_at = b->len;
    put_le(b, 0, 4);
}

static void patch_record_len(GByteArray *b, size_t len_at)
{
    patch_u32(b, len_at, (uint32_t)(b->len - len_at - 4));
}

static bool save_element(const VMStateField *f, uint8_t *elem, GByteArray *out,
                         Error **errp)
{
    unsigned w = scalar_width(f->type);
    if (w) {
        uint64_t v = load_host(elem, w);
        if (f->type == VMS_BOOL) {
            v = v != 0;
        }
        put_le(out, v, w);
        return true;
    }
    if (f->type == VMS_BUFFER) {
        g_byte_array_append(out, elem, f->size);
        return true;
    }
    size_t len_at = out->len;
    put_le(out, 0, 4);
    if (!vmstate_save_payload(f->vmsd, elem, out, errp)) {
        return false;
    }
    patch_u32(out, len_at, (uint32_t)(out->len - len_at - 4));
    return true;
}

static bool save_field(const VMStateDesc *vmsd, const VMStateField *f, void *opaque,
                       GByteArray *out, Error **errp)
{
    if (!field_sane(vmsd, f, errp)) {
        return false;
    }
    uint8_t *base = field_base(vmsd, f, opaque, errp);
    if (!base) {
        return false;
    }
    size_t len_at;
    put_record_head(out, f->name, &len_at);
    if (f->num == 0) {
        if (!save_element(f, base, out, errp)) {
            return false;
        }
    } else {
        uint32_t n = f->num;
        if (f->flags & VMS_F_COUNTED) {
            memcpy(&n, (uint8_t *)opaque + f->count_offset, sizeof(n));
            if (n > f->num) {
                error_setg(errp, "%s: field '%s' has %" PRIu32 " elements, more than its "
                           "capacity %" PRIu32, vmsd->name, f->name, n, f->num);
                return false;
            }
        }
        put_le(out, n, 4);
        for (uint32_t i = 0; i < n; i++) {
            if (!save_element(f, base + (size_t)i * f->size, out, errp)) {
                return false;
            }
        }
    }
    patch_record_len(out, len_at);
    return true;
}

static bool save_payload(const VMStateDesc *vmsd, void *opaque, GByteArray *out,
                         Error **errp);

bool vmstate_save_payload(const VMStateDesc *vmsd, void *opaque, GByteArray *out,
                          Error **errp)
{
    if (vmsd->pre_save && !vmsd->pre_save(opaque, errp)) {
        return false;
    }
    bool ok = save_payload(vmsd, opaque, out, errp);
    if (vmsd->post_save) {
        vmsd->post_save(opaque);
    }
    return ok;
}

static bool save_payload(const VMStateDesc *vmsd, void *opaque, GByteArray *out,
                         Error **errp)
{
    for (const VMStateField *f = vmsd->fields; f && f->name; f++) {
        if (f->version_id > vmsd->version_id) {
            continue; /* cannot happen in a sane desc; never write what load rejects */
        }
        if (!save_field(vmsd, f, opaque, out, errp)) {
            return false;
        }
    }
    for (const VMStateDesc *const *sub = vmsd->subsections; sub && *sub; sub++) {
        if ((*sub)->needed && !(*sub)->needed(opaque)) {
            continue;
        }
        size_t len_at;
        put_record_head(out, (*sub)->name, &len_at);
        put_le(out, (uint32_t)(*sub)->version_id, 4);
        if (!vmstate_save_payload(*sub, opaque, out, errp)) {
            return false;
        }
        patch_record_len(out, len_at);
    }
    return true;
}

/* ---- decoding ---- */

static bool load_payload(const VMStateDesc *vmsd, void *opaque, int version, Reader *r,
                         const char *what, bool apply, Error **errp);

static bool load_element(const VMStateField *f, uint8_t *elem, Reader *r,
                         const char *what, bool apply, Error **errp)
{
    unsigned w = scalar_width(f->type);
    if (w) {
        uint64_t v;
        if (!get_le(r, w, &v)) {
            error_setg(errp, "%s: field '%s' is truncated", what, f->name);
            return false;
        }
        if (f->type == VMS_BOOL && v > 1) {
            error_setg(errp, "%s: field '%s' holds %" PRIu64 ", not a boolean", what,
                       f->name, v);
            return false;
        }
        if (apply) {
            store_host(elem, w, v);
        }
        return true;
    }
    if (f->type == VMS_BUFFER) {
        const uint8_t *p;
        if (!get_bytes(r, f->size, &p)) {
            error_setg(errp, "%s: field '%s' is truncated", what, f->name);
            return false;
        }
        if (apply) {
            memcpy(elem, p, f->size);
        }
        return true;
    }
    uint32_t len;
    const uint8_t *p;
    if (!get_u32(r, &len) || !get_bytes(r, len, &p)) {
        error_setg(errp, "%s: field '%s' is truncated", what, f->name);
        return false;
    }
    Reader sub = { p, len, 0 };
    g_autofree char *subwhat = g_strdup_printf("%s/%s", what, f->name);
    return load_payload(f->vmsd, elem, f->vmsd->version_id, &sub, subwhat, apply, errp);
}

static bool load_field(const VMStateDesc *vmsd, const VMStateField *f, void *opaque,
                       Reader *r, const char *what, bool apply, Error **errp)
{
    if (!field_sane(vmsd, f, errp)) {
        return false;
    }
    /* The checking pass touches no scalar or buffer, so their pointer may still be
     * unset there (a pre_load hook sets staging buffers up for the writing pass). */
    uint8_t *base = NULL;
    if (apply || f->type == VMS_STRUCT) {
        base = field_base(vmsd, f, opaque, errp);
        if (!base) {
            return false;
        }
    }
    if (f->num == 0) {
        return load_element(f, base, r, what, apply, errp);
    }
    uint32_t n;
    if (!get_u32(r, &n)) {
        error_setg(errp, "%s: field '%s' is truncated", what, f->name);
        return false;
    }
    uint32_t *count = (uint32_t *)((uint8_t *)opaque + f->count_offset);
    if (f->flags & VMS_F_COUNT_FIXED) {
        uint32_t have;
        memcpy(&have, count, sizeof(have));
        if (n != have) {
            error_setg(errp, "%s: field '%s' has %" PRIu32 " elements, this machine has "
                       "%" PRIu32, what, f->name, n, have);
            return false;
        }
    } else if (f->flags & VMS_F_COUNTED) {
        if (n > f->num) {
            error_setg(errp, "%s: field '%s' has %" PRIu32 " elements, at most %" PRIu32
                       " are supported", what, f->name, n, f->num);
            return false;
        }
    } else if (n != f->num) {
        error_setg(errp, "%s: field '%s' has %" PRIu32 " elements, expected %" PRIu32,
                   what, f->name, n, f->num);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *elem = base ? base + (size_t)i * f->size : NULL;
        if (!load_element(f, elem, r, what, apply, errp)) {
            return false;
        }
    }
    if (apply && (f->flags & VMS_F_COUNTED)) {
        memcpy(count, &n, sizeof(n));
    }
    return true;
}

/* One record header; *name is not NUL-terminated (namelen bytes). */
static bool get_record(Reader *r, const char *what, const uint8_t **name, size_t *namelen,
                       Reader *data, Error **errp)
{
    uint64_t nl;
    uint32_t len;
    const uint8_t *p;
    if (!get_le(r, 1, &nl) || !get_bytes(r, nl, name) || !get_u32(r, &len) ||
        !get_bytes(r, len, &p)) {
        error_setg(errp, "%s: record at offset %zu is truncated", what, r->pos);
        return false;
    }
    *namelen = nl;
    *data = (Reader){ p, len, 0 };
    return true;
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

static bool load_subsection(const VMStateDesc *vmsd, void *opaque, const uint8_t *name,
                            size_t namelen, Reader *data, const char *what, bool apply,
                            Error **errp)
{
    const VMStateDesc *sub = NULL;
    for (const VMStateDesc *const *s = vmsd->subsections; s && *s; s++) {
        if (name_is(name, namelen, (*s)->name)) {
            sub = *s;
            break;
        }
    }
    g_autofree char *shown = g_strndup((const char *)name, namelen);
    if (!sub) {
        error_setg(errp, "%s: unknown field or subsection '%s'", what, shown);
        return false;
    }
    uint32_t v;
    if (!get_u32(data, &v)) {
        error_setg(errp, "%s: subsection '%s' is truncated", what, shown);
        return false;
    }
    if ((int64_t)v < sub->minimum_version_id || (int64_t)v > sub->version_id) {
        error_setg(errp, "%s: subsection '%s' has version %" PRIu32 ", this Sen loads "
                   "versions %d to %d", what, shown, v, sub->minimum_version_id,
                   sub->version_id);
        return false;
    }
    g_autofree char *subwhat = g_strdup_printf("%s/%s", what, shown);
    return load_payload(sub, opaque, (int)v, data, subwhat, apply, errp);
}

static bool load_payload(const VMStateDesc *vmsd, void *opaque, int version, Reader *r,
                         const char *what, bool apply, Error **errp)
{
    if (apply && vmsd->pre_load && !vmsd->pre_load(opaque, errp)) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    for (const VMStateField *f = vmsd->fields; f && f->name; f++) {
        if (f->version_id > version) {
            continue;
        }
        const uint8_t *name;
        size_t namelen;
        Reader data;
        if (r->pos == r->len) {
            error_setg(errp, "%s: field '%s' is missing", what, f->name);
            return false;
        }
        if (!get_record(r, what, &name, &namelen, &data, errp)) {
            return false;
        }
        if (!name_is(name, namelen, f->name)) {
            g_autofree char *shown = g_strndup((const char *)name, namelen);
            error_setg(errp, "%s: expected field '%s', found '%s'", what, f->name, shown);
            return false;
        }
        if (!load_field(vmsd, f, opaque, &data, what, apply, errp)) {
            return false;
        }
        if (data.pos != data.len) {
            error_setg(errp, "%s: field '%s' is %zu bytes, %zu expected", what, f->name,
                       data.len, data.pos);
            return false;
        }
    }
    while (r->pos < r->len) {
        const uint8_t *name;
        size_t namelen;
        Reader data;
        if (!get_record(r, what, &name, &namelen, &data, errp) ||
            !load_subsection(vmsd, opaque, name, namelen, &data, what, apply, errp)) {
            return false;
        }
        if (data.pos != data.len) {
            error_setg(errp, "%s: subsection has %zu trailing bytes", what,
                       data.len - data.pos);
            return false;
        }
    }
    if (apply && vmsd->post_load && !vmsd->post_load(opaque, version, errp)) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    return true;
}

bool vmstate_load_payload(const VMStateDesc *vmsd, void *opaque, int version,
                          const uint8_t *data, size_t len, const char *what, Error **errp)
{
    Reader check = { data, len, 0 };
    if (!load_payload(vmsd, opaque, version, &check, what, false, errp)) {
        return false;
    }
    Reader apply = { data, len, 0 };
    return load_payload(vmsd, opaque, version, &apply, what, true, errp);
}

/* ---- the blob ---- */

struct VMStateOut {
    GByteArray *buf;
    size_t start;     /* of the magic */
    uint32_t count;
};

VMStateOut *vmstate_out_new(GByteArray *buf)
{
    VMStateOut *out = g_new0(VMStateOut, 1);
    out->buf = buf;
    out->start = buf->len;
    g_byte_array_append(buf, (const guint8 *)VMSTATE_MAGIC, VMSTATE_MAGIC_LEN);
    put_le(buf, VMSTATE_FORMAT, 4);
    put_le(buf, 0, 4);
    return out;
}

bool vmstate_save_section(VMStateOut *out, const char *name, const VMStateDesc *vmsd,
                          void *opaque, Error **errp)
{
    size_t n = strlen(name);
    if (n == 0 || n > VMSTATE_NAME_MAX) {
        error_setg(errp, "section name '%s' is empty or too long", name);
        return false;
    }
    put_le(out->buf, n, 2);
    g_byte_array_append(out->buf, (const guint8 *)name, n);
    put_le(out->buf, (uint32_t)vmsd->version_id, 4);
    size_t len_at = out->buf->len;
    put_le(out->buf, 0, 4);
    if (!vmstate_save_payload(vmsd, opaque, out->buf, errp)) {
        error_prepend(errp, "saving section '%s': ", name);
        return false;
    }
    patch_record_len(out->buf, len_at);
    out->count++;
    return true;
}

void vmstate_out_finish(VMStateOut *out)
{
    patch_u32(out->buf, out->start + VMSTATE_MAGIC_LEN + 4, out->count);
    uLong crc = crc32(0L, out->buf->data + out->start, out->buf->len - out->start);
    put_le(out->buf, (uint32_t)crc, 4);
    g_free(out);
}

typedef struct VMStateSection {
    char *name;
    uint32_t version;
    const uint8_t *data;
    size_t len;
    bool consumed;
} VMStateSection;

struct VMStateIn {
    GArray *sections; /* of VMStateSection */
};

void vmstate_in_free(VMStateIn *in)
{
    if (!in) {
        return;
    }
    for (guint i = 0; i < in->sections->len; i++) {
        g_free(g_array_index(in->sections, VMStateSection, i).name);
    }
    g_array_free(in->sections, TRUE);
    g_free(in);
}

static VMStateSection *section_find(const VMStateIn *in, const char *name)
{
    for (guint i = 0; i < in->sections->len; i++) {
        VMStateSection *s = &g_array_index(in->sections, VMStateSection, i);
        if (strcmp(s->name, name) == 0) {
            return s;
        }
    }
    return NULL;
}

static bool name_printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

VMStateIn *vmstate_in_parse(const uint8_t *data, size_t len, Error **errp)
{
    if (len < VMSTATE_HEADER_LEN + 4 || memcmp(data, VMSTATE_MAGIC, VMSTATE_MAGIC_LEN)) {
        error_setg(errp, "device state: not a Sen device-state blob (bad magic or %zu bytes "
                   "only)", len);
        return NULL;
    }
    Reader r = { data, len - 4, VMSTATE_MAGIC_LEN };
    uint32_t format, nsections, crc_want;
    (void)get_u32(&r, &format);
    (void)get_u32(&r, &nsections);
    Reader tail = { data, len, len - 4 };
    (void)get_u32(&tail, &crc_want);
    if (format != VMSTATE_FORMAT) {
        error_setg(errp, "device state: format %" PRIu32 " is not supported (this Sen reads "
                   "format %d)", format, VMSTATE_FORMAT);
        return NULL;
    }
    uint32_t crc = (uint32_t)crc32(0L, data, len - 4);
    if (crc != crc_want) {
        error_setg(errp, "device state: checksum mismatch (stored %08" PRIx32 ", computed "
                   "%08" PRIx32 "): the stream is corrupt", crc_want, crc);
        return NULL;
    }
    VMStateIn *in = g_new0(VMStateIn, 1);
    in->sections = g_array_new(FALSE, TRUE, sizeof(VMStateSection));
    for (uint32_t i = 0; i < nsections; i++) {
        uint64_t nl;
        const uint8_t *name, *payload;
        uint32_t version, plen;
        if (!get_le(&r, 2, &nl) || !get_bytes(&r, nl, &name) || !get_u32(&r, &version) ||
            !get_u32(&r, &plen) || !get_bytes(&r, plen, &payload)) {
            error_setg(errp, "device state: section %" PRIu32 " of %" PRIu32 " is truncated",
                       i + 1, nsections);
            goto fail;
        }
        if (nl == 0 || nl > VMSTATE_NAME_MAX || !name_printable(name, nl)) {
            error_setg(errp, "device state: section %" PRIu32 " has an invalid name", i + 1);
            goto fail;
        }
        VMStateSection s = { g_strndup((const char *)name, nl), version, payload, plen,
                             false };
        if (section_find(in, s.name)) {
            error_setg(errp, "device state: section '%s' appears twice", s.name);
            g_free(s.name);
            goto fail;
        }
        g_array_append_val(in->sections, s);
    }
    if (r.pos != r.len) {
        error_setg(errp, "device state: %zu unexpected bytes after %" PRIu32 " sections",
                   r.len - r.pos, nsections);
        goto fail;
    }
    return in;
fail:
    vmstate_in_free(in);
    return NULL;
}

bool vmstate_in_has_section(const VMStateIn *in, const char *name)
{
    return section_find(in, name) != NULL;
}

bool vmstate_load_section(VMStateIn *in, const char *name, const VMStateDesc *vmsd,
                          void *opaque, Error **errp)
{
    VMStateSection *s = section_find(in, name);
    if (!s) {
        error_setg(errp, "device state: section '%s' is missing (the source has no such "
                   "device or vCPU)", name);
        return false;
    }
    if ((int64_t)s->version < vmsd->minimum_version_id ||
        (int64_t)s->version > vmsd->version_id) {
        error_setg(errp, "device state: section '%s' has version %" PRIu32 ", this Sen "
                   "loads versions %d to %d", name, s->version, vmsd->minimum_version_id,
                   vmsd->version_id);
        return false;
    }
    g_autofree char *what = g_strdup_printf("device state: section '%s'", name);
    if (!vmstate_load_payload(vmsd, opaque, (int)s->version, s->data, s->len, what, errp)) {
        return false;
    }
    s->consumed = true;
    return true;
}

bool vmstate_in_check_consumed(const VMStateIn *in, Error **errp)
{
    for (guint i = 0; i < in->sections->len; i++) {
        VMStateSection *s = &g_array_index(in->sections, VMStateSection, i);
        if (!s->consumed) {
            error_setg(errp, "device state: section '%s' matches no device of this machine",
                       s->name);
            return false;
        }
    }
    return true;
}
