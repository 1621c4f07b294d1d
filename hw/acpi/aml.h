/*
 * A small AML (ACPI Machine Language) encoder for the tables Sen builds: names, integers,
 * strings, packages, buffers, scopes and devices, and the resource descriptors a _CRS
 * needs.  Only what the DSDT uses; no methods with logic.
 *
 * An Aml is a growing byte buffer.  Composite objects (scope, device, package, buffer)
 * take an already encoded body and append op + PkgLength + body, so a table is built
 * inside out: children first, then their parent.  Encodings follow the ACPI 6.x
 * specification, chapter 20 (AML grammar) and 6.4 (resource data types).
 */
#ifndef HW_ACPI_AML_H
#define HW_ACPI_AML_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef GByteArray Aml;

Aml *aml_new(void);
void aml_free(Aml *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Aml, aml_free)

void aml_append(Aml *out, const Aml *src);
void aml_byte(Aml *a, uint8_t v);

/* PkgLength for a body of len bytes (the encoding counts its own 1-4 bytes). */
void aml_pkg_length(Aml *a, uint32_t len);
/* "\\_SB.PCI0", "_HID", "^PCI0"; segments shorter than four characters are padded
 * with '_'. */
void aml_name_string(Aml *a, const char *path);
/* The shortest encoding: Zero, One, Ones (only for UINT64_MAX), Byte/Word/DWord/QWord. */
void aml_integer(Aml *a, uint64_t v);
void aml_string(Aml *a, const char *s);
/* A compressed EISA id ("PNP0A03") as a DWordConst. */
void aml_eisaid(Aml *a, const char *id);

/* Name(name, <encoded object>) and shorthands. */
void aml_name_obj(Aml *out, const char *name, const Aml *obj);
void aml_name_int(Aml *out, const char *name, uint64_t v);
void aml_name_str(Aml *out, const char *name, const char *s);
void aml_name_eisaid(Aml *out, const char *name, const char *id);

void aml_scope(Aml *out, const char *name, const Aml *terms);
void aml_device(Aml *out, const char *name, const Aml *terms);
/* Package(count) { elements }: elements holds count encoded objects. */
void aml_package(Aml *out, unsigned count, const Aml *elements);
void aml_buffer(Aml *out, const Aml *bytes);

/* Resource descriptors, appended to a template that aml_res_end() closes. */
void aml_res_io(Aml *rt, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void aml_res_irq(Aml *rt, uint16_t irq_mask);                /* IRQNoFlags, edge high */
void aml_res_word_bus(Aml *rt, uint16_t min, uint16_t max);
void aml_res_word_io(Aml *rt, uint16_t min, uint16_t max);
/* consumer: the device uses the range (motherboard resources) instead of decoding it
 * for children (a bridge's window). */
void aml_res_dword_mem(Aml *rt, uint32_t min, uint32_t max, bool consumer);
void aml_res_end(Aml *rt);                                   /* EndTag, checksum 0 */

#endif
