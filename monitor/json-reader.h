/*
 * Splits a byte stream into JSON messages (objects or arrays at the top level) and parses
 * each with jansson.  Input may arrive in any pieces: a message split across reads, or
 * several in one read.  Malformed input yields one error per bad message or per run of
 * stray top-level bytes, and reading goes on with the next message.
 *
 * Limits (a client must not be able to make the VMM buffer or recurse without bound):
 * JSON_READER_MAX_SIZE bytes per message and JSON_READER_MAX_DEPTH nesting levels; a
 * message over a limit is skipped to its end and reported once.  A 0xFF byte (never valid
 * in UTF-8) drops any partial message, as in QEMU, so a client can resynchronise.
 */
#ifndef SEN_MONITOR_JSON_READER_H
#define SEN_MONITOR_JSON_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define JSON_READER_MAX_SIZE (4 * 1024 * 1024)
#define JSON_READER_MAX_DEPTH 1024

typedef struct JsonReader JsonReader;

/* Either msg (a new reference the callee takes) or error (a message) is non-NULL. */
typedef void JsonReaderEmit(void *opaque, json_t *msg, const char *error);

JsonReader *json_reader_new(JsonReaderEmit *emit, void *opaque);
void json_reader_free(JsonReader *r);
void json_reader_feed(JsonReader *r, const uint8_t *buf, size_t len);
/* Forgets any partial message (a new client connected). */
void json_reader_reset(JsonReader *r);

#endif
