/*
 * Streaming JSON message splitter (see json-reader.h).
 *
 * Only the message boundaries are found here: bracket depth outside strings, with string
 * escapes honoured so that "\"}" does not end anything.  The complete message is then
 * parsed (and its UTF-8 validated) by jansson, so there is exactly one JSON parser.
 */
#include <string.h>
#include <glib.h>
#include "monitor/json-reader.h"

struct JsonReader {
    JsonReaderEmit *emit;
    void *opaque;
    GByteArray *buf;    /* the message so far (depth > 0 and not skipping) */
    unsigned depth;     /* open brackets of the current message */
    bool in_string;
    bool escape;        /* the previous byte in a string was a backslash */
    bool skipping;      /* over a limit: already reported, read to the message's end */
    bool stray;         /* inside a run of bytes outside any message, reported */
};

JsonReader *json_reader_new(JsonReaderEmit *emit, void *opaque)
{
    JsonReader *r = g_new0(JsonReader, 1);

    r->emit = emit;
    r->opaque = opaque;
    r->buf = g_byte_array_new();
    return r;
}

void json_reader_free(JsonReader *r)
{
    if (r) {
        g_byte_array_unref(r->buf);
        g_free(r);
    }
}

/* Empties the buffer; the memory of a big message is given back at once. */
static void json_reader_drop_buf(JsonReader *r)
{
    if (r->buf->len > 64 * 1024) {
        g_byte_array_unref(r->buf);
        r->buf = g_byte_array_new();
    } else {
        g_byte_array_set_size(r->buf, 0);
    }
}

void json_reader_reset(JsonReader *r)
{
    json_reader_drop_buf(r);
    r->depth = 0;
    r->in_string = r->escape = r->skipping = r->stray = false;
}

static void json_reader_error(JsonReader *r, const char *msg)
{
    r->emit(r->opaque, NULL, msg);
}

static void json_reader_finish(JsonReader *r)
{
    if (!r->skipping) {
        json_error_t jerr;
        json_t *msg = json_loadb((const char *)r->buf->data, r->buf->len,
                                 JSON_REJECT_DUPLICATES, &jerr);
        if (msg) {
            r->emit(r->opaque, msg, NULL);
        } else {
            g_autofree char *m = g_strdup_printf("JSON parse error, %s", jerr.text);
            json_reader_error(r, m);
        }
    }
    json_reader_reset(r);
}

/* A byte outside any message: whitespace, the start of one, or stray input. */
static void json_reader_top(JsonReader *r, uint8_t c)
{
    if (r->in_string) {
        /* A stray top-level string: skip it whole, its brackets start nothing. */
        if (r->escape) {
            r->escape = false;
        } else if (c == '\\') {
            r->escape = true;
        } else if (c == '"' || c < 0x20) {
            r->in_string = false;
        }
        return;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        r->stray = false;
        return;
    }
    if (c == '{' || c == '[') {
        r->stray = false;
        r->depth = 1;
        g_byte_array_append(r->buf, &c, 1);
        return;
    }
    if (c == '"') {
        r->in_string = true;
    }
    if (!r->stray) {
        r->stray = true;
        json_reader_error(r, "QMP input must be a JSON object");
    }
}

static void json_reader_byte(JsonReader *r, uint8_t c)
{
    if (c == 0xFF) {
        json_reader_reset(r);
        return;
    }
    if (r->depth == 0) {
        json_reader_top(r, c);
        return;
    }
    if (!r->skipping) {
        if (r->buf->len >= JSON_READER_MAX_SIZE) {
            json_reader_error(r, "JSON parse error, message longer than 4 MiB");
            r->skipping = true;
            json_reader_drop_buf(r);
        } else {
            g_byte_array_append(r->buf, &c, 1);
        }
    }
    if (r->in_string) {
        if (r->escape) {
            r->escape = false;
        } else if (c == '\\') {
            r->escape = true;
        } else if (c == '"') {
            r->in_string = false;
        } else if (c < 0x20) {
            /* A raw control byte (a newline above all) is never valid inside a string:
             * the message was cut off, so end it here instead of swallowing the next. */
            if (!r->skipping) {
                json_reader_error(r, "JSON parse error, control character in string");
            }
            json_reader_reset(r);
        }
        return;
    }
    switch (c) {
    case '"':
        r->in_string = true;
        break;
    case '{':
    case '[':
        if (++r->depth > JSON_READER_MAX_DEPTH && !r->skipping) {
            json_reader_error(r, "JSON parse error, nesting deeper than 1024 levels");
            r->skipping = true;
            json_reader_drop_buf(r);
        }
        break;
    case '}':
    case ']':
        if (--r->depth == 0) {
            json_reader_finish(r);
        }
        break;
    default:
        break;
    }
}

void json_reader_feed(JsonReader *r, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        json_reader_byte(r, buf[i]);
    }
}
