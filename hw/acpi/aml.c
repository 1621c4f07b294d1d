/*
 * AML encoder: see aml.h.  Byte values are the opcodes of the ACPI specification's AML
 * grammar (section 20.2) and the resource descriptor tags of section 6.4.
 */
#include <string.h>
#include "hw/acpi/aml.h"

#define AML_ZERO        0x00
#define AML_ONE         0x01
#define AML_NAME_OP     0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP    0x10
#define AML_BUFFER_OP   0x11
#define AML_PACKAGE_OP  0x12
#define AML_EXT_PREFIX  0x5b
#define AML_DEVICE_OP   0x82 /* after AML_EXT_PREFIX */
#define AML_ONES        0xff
#define AML_ROOT_CHAR   '\\'
#define AML_PARENT_CHAR '^'
#define AML_DUAL_NAME   0x2e
#define AML_MULTI_NAME  0x2f

/* Large resource items: tag, then a 16-bit length of what follows it. */
#define RES_IO          0x47 /* small item: I/O port, 7 bytes of data */
#define RES_IRQ_NOFLAGS 0x22 /* small item: IRQ, 2 bytes */
#define RES_END_TAG     0x79
#define RES_DWORD_ADDR  0x87
#define RES_WORD_ADDR   0x88
#define RES_TYPE_MEM    0
#define RES_TYPE_IO     1
#define RES_TYPE_BUS    2
/* General flags: positive decode, min and max fixed; bit 0 set for a consumer. */
#define RES_FLAGS_FIXED 0x0c
#define RES_FLAGS_CONSUMER 0x01
#define RES_MEM_RW_CACHEABLE 0x03 /* read-write, cacheable */
#define RES_IO_ENTIRE_RANGE  0x03 /* ISA and non-ISA ranges */

Aml *aml_new(void)
{
    return g_byte_array_new();
}

void aml_free(Aml *a)
{
    if (a) {
        g_byte_array_unref(a);
    }
}

void aml_append(Aml *out, const Aml *src)
{
    g_byte_array_append(out, src->data, src->len);
}

void aml_byte(Aml *a, uint8_t v)
{
    g_byte_array_append(a, &v, 1);
}

static void put_le(Aml *a, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        aml_byte(a, (uint8_t)(v >> (8 * i)));
    }
}

void aml_pkg_length(Aml *a, uint32_t len)
{
    /* The value includes the PkgLength bytes; one byte holds 6 bits, each further byte
     * 8 more on top of the lead byte's low nibble. */
    if (len + 1 <= 0x3f) {
        aml_byte(a, (uint8_t)(len + 1));
        return;
    }
    unsigned extra = len + 2 <= 0xfff ? 1 : len + 3 <= 0xfffff ? 2 : 3;
    uint32_t total = len + 1 + extra;
    g_assert(total <= 0xfffffff);
    aml_byte(a, (uint8_t)((extra << 6) | (total & 0xf)));
    put_le(a, total >> 4, extra);
}

static void name_seg(Aml *a, const char *seg, size_t len)
{
    g_assert(len >= 1 && len <= 4);
    for (size_t i = 0; i < 4; i++) {
        aml_byte(a, i < len ? (uint8_t)seg[i] : '_');
    }
}

void aml_name_string(Aml *a, const char *path)
{
    while (*path == AML_ROOT_CHAR || *path == AML_PARENT_CHAR) {
        aml_byte(a, (uint8_t)*path++);
    }
    g_auto(GStrv) segs = *path ? g_strsplit(path, ".", -1) : g_new0(char *, 1);
    guint n = g_strv_length(segs);
    if (n == 0) {
        aml_byte(a, AML_ZERO); /* NullName */
        return;
    }
    if (n == 2) {
        aml_byte(a, AML_DUAL_NAME);
    } else if (n > 2) {
        g_assert(n <= 255);
        aml_byte(a, AML_MULTI_NAME);
        aml_byte(a, (uint8_t)n);
    }
    for (guint i = 0; i < n; i++) {
        name_seg(a, segs[i], strlen(segs[i]));
    }
}

void aml_integer(Aml *a, uint64_t v)
{
    if (v == 0) {
        aml_byte(a, AML_ZERO);
    } else if (v == 1) {
        aml_byte(a, AML_ONE);
    } else if (v == UINT64_MAX) {
        aml_byte(a, AML_ONES);
    } else if (v <= 0xff) {
        aml_byte(a, AML_BYTE_PREFIX);
        put_le(a, v, 1);
    } else if (v <= 0xffff) {
        aml_byte(a, AML_WORD_PREFIX);
        put_le(a, v, 2);
    } else if (v <= 0xffffffff) {
        aml_byte(a, AML_DWORD_PREFIX);
        put_le(a, v, 4);
    } else {
        aml_byte(a, AML_QWORD_PREFIX);
        put_le(a, v, 8);
    }
}

void aml_string(Aml *a, const char *s)
{
    aml_byte(a, AML_STRING_PREFIX);
    g_byte_array_append(a, (const guint8 *)s, strlen(s) + 1);
}

static unsigned hex_digit(char c)
{
    return g_ascii_xdigit_value(c) & 0xf;
}

void aml_eisaid(Aml *a, const char *id)
{
    g_assert(strlen(id) == 7);
    /* Three letters of 5 bits ('A' = 1) and four hex digits, stored big-endian. */
    uint32_t v = (uint32_t)((id[0] - 0x40) & 0x1f) << 26 |
                 (uint32_t)((id[1] - 0x40) & 0x1f) << 21 |
                 (uint32_t)((id[2] - 0x40) & 0x1f) << 16 |
                 hex_digit(id[3]) << 12 | hex_digit(id[4]) << 8 | hex_digit(id[5]) << 4 |
                 hex_digit(id[6]);
    aml_byte(a, AML_DWORD_PREFIX);
    put_le(a, GUINT32_SWAP_LE_BE(v), 4);
}

void aml_name_obj(Aml *out, const char *name, const Aml *obj)
{
    aml_byte(out, AML_NAME_OP);
    aml_name_string(out, name);
    aml_append(out, obj);
}

void aml_name_int(Aml *out, const char *name, uint64_t v)
{
    g_autoptr(Aml) obj = aml_new();
    aml_integer(obj, v);
    aml_name_obj(out, name, obj);
}

void aml_name_str(Aml *out, const char *name, const char *s)
{
    g_autoptr(Aml) obj = aml_new();
    aml_string(obj, s);
    aml_name_obj(out, name, obj);
}

void aml_name_eisaid(Aml *out, const char *name, const char *id)
{
    g_autoptr(Aml) obj = aml_new();
    aml_eisaid(obj, id);
    aml_name_obj(out, name, obj);
}

/* op, PkgLength, name, terms: the shape of Scope and Device. */
static void named_block(Aml *out, const char *name, const Aml *terms)
{
    g_autoptr(Aml) body = aml_new();
    aml_name_string(body, name);
    aml_append(body, terms);
    aml_pkg_length(out, body->len);
    aml_append(out, body);
}

void aml_scope(Aml *out, const char *name, const Aml *terms)
{
    aml_byte(out, AML_SCOPE_OP);
    named_block(out, name, terms);
}

void aml_device(Aml *out, const char *name, const Aml *terms)
{
    aml_byte(out, AML_EXT_PREFIX);
    aml_byte(out, AML_DEVICE_OP);
    named_block(out, name, terms);
}

void aml_package(Aml *out, unsigned count, const Aml *elements)
{
    g_assert(count <= 255);
    aml_byte(out, AML_PACKAGE_OP);
    aml_pkg_length(out, 1 + elements->len);
    aml_byte(out, (uint8_t)count);
    aml_append(out, elements);
}

void aml_buffer(Aml *out, const Aml *bytes)
{
    g_autoptr(Aml) body = aml_new();
    aml_integer(body, bytes->len);
    aml_append(body, bytes);
    aml_byte(out, AML_BUFFER_OP);
    aml_pkg_length(out, body->len);
    aml_append(out, body);
}

void aml_res_io(Aml *rt, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    aml_byte(rt, RES_IO);
    aml_byte(rt, 0x01); /* decodes 16 address bits */
    put_le(rt, min, 2);
    put_le(rt, max, 2);
    aml_byte(rt, align);
    aml_byte(rt, len);
}

void aml_res_irq(Aml *rt, uint16_t irq_mask)
{
    aml_byte(rt, RES_IRQ_NOFLAGS);
    put_le(rt, irq_mask, 2);
}

/* An address space descriptor of 2, 4 or 8-byte fields: granularity, min, max,
 * translation offset, length. */
static void res_addr(Aml *rt, uint8_t tag, uint8_t type, uint8_t flags, uint8_t type_flags,
                     unsigned width, uint64_t min, uint64_t max)
{
    aml_byte(rt, tag);
    put_le(rt, 3 + 5 * width, 2);
    aml_byte(rt, type);
    aml_byte(rt, flags);
    aml_byte(rt, type_flags);
    put_le(rt, 0, width);           /* granularity */
    put_le(rt, min, width);
    put_le(rt, max, width);
    put_le(rt, 0, width);           /* no translation */
    put_le(rt, max - min + 1, width);
}

void aml_res_word_bus(Aml *rt, uint16_t min, uint16_t max)
{
    res_addr(rt, RES_WORD_ADDR, RES_TYPE_BUS, RES_FLAGS_FIXED, 0, 2, min, max);
}

void aml_res_word_io(Aml *rt, uint16_t min, uint16_t max)
{
    res_addr(rt, RES_WORD_ADDR, RES_TYPE_IO, RES_FLAGS_FIXED, RES_IO_ENTIRE_RANGE, 2, min,
             max);
}

void aml_res_dword_mem(Aml *rt, uint32_t min, uint32_t max, bool consumer)
{
    res_addr(rt, RES_DWORD_ADDR, RES_TYPE_MEM,
             RES_FLAGS_FIXED | (consumer ? RES_FLAGS_CONSUMER : 0), RES_MEM_RW_CACHEABLE, 4,
             min, max);
}

void aml_res_end(Aml *rt)
{
    aml_byte(rt, RES_END_TAG);
    aml_byte(rt, 0); /* checksum 0: "treat as correct" */
}
