/*
 * Node options written as JSON: the -blockdev JSON form and QEMU's "json:{...}"
 * pseudo-filenames (which qemu-img accepts wherever a file name goes and qemu writes as
 * backing file names when the backing node has options).  Both flatten to the dotted
 * keys bdrv_open reads ({"file": {"filename": "x"}} -> file.filename=x), so there is one
 * option parser for every spelling.
 */
#include <stdarg.h>
#include <string.h>
#include <jansson.h>

#include "sen/block.h"

/* An error about the JSON text: prefixed with what names it ("-blockdev {...}"), unless
 * what is NULL (QMP, where QEMU names nothing). */
static void G_GNUC_PRINTF(3, 4) block_json_error(Error **errp, const char *what,
                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "%s%s%s", what ? what : "", what ? ": " : "", msg);
}

/* QEMU's BlockdevRefOrNull: a node name, a node description or null; a number or a
 * boolean would otherwise pass as a node name. */
static bool block_json_backing_ok(const char *key, json_t *val)
{
    return strcmp(key, "backing") != 0 || json_is_object(val) || json_is_string(val) ||
           json_is_null(val);
}

/* QEMU's Qcow2OverlapChecks: a mode name or an object ({"template": mode, ...}). */
static bool block_json_overlap_ok(const char *key, json_t *val)
{
    return strcmp(key, "overlap-check") != 0 || json_is_object(val) || json_is_string(val);
}

static bool block_json_flatten(json_t *obj, const char *prefix, Keyval *kv, const char *what,
                               Error **errp)
{
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        g_autofree char *full = prefix ? g_strdup_printf("%s.%s", prefix, key)
                                       : g_strdup(key);
        if (!block_json_backing_ok(key, val)) {
            /* QEMU names the member alone, however deep it is ('backing'). */
            block_json_error(errp, what, "Invalid parameter type for '%s', expected: "
                             "BlockdevRefOrNull", key);
            return false;
        }
        if (!block_json_overlap_ok(key, val)) {
            block_json_error(errp, what, "Invalid parameter type for '%s', expected: "
                             "Qcow2OverlapChecks", key);
            return false;
        }
        switch (json_typeof(val)) {
        case JSON_OBJECT:
            if (!block_json_flatten(val, full, kv, what, errp)) {
                return false;
            }
            break;
        case JSON_STRING:
            block_keyval_add(kv, full, json_string_value(val));
            break;
        case JSON_INTEGER: {
            g_autofree char *v = g_strdup_printf("%" JSON_INTEGER_FORMAT,
                                                 json_integer_value(val));
            block_keyval_add(kv, full, v);
            break;
        }
        case JSON_TRUE:
        case JSON_FALSE:
            block_keyval_add(kv, full, json_is_true(val) ? "on" : "off");
            break;
        case JSON_NULL:
            /* Only a backing reference may be null (QEMU's BlockdevRefOrNull): no backing
             * node, written "backing=" in the dotted form. */
            if (strcmp(key, "backing") != 0) {
                block_json_error(errp, what, "'%s': expected a string, number, boolean or "
                                 "object", full);
                return false;
            }
            block_keyval_add(kv, full, "");
            break;
        default:
            block_json_error(errp, what, "'%s': expected a string, number, boolean or object",
                             full);
            return false;
        }
    }
    return true;
}

Keyval *block_keyval_from_json(const char *json, const char *what, Error **errp)
{
    json_error_t jerr;
    /* A repeated key is an error, as in QEMU's JSON parser: last-one-wins would let
     * {"driver": "qcow2", "driver": "raw"} open a qcow2 image as raw. */
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    Keyval *kv;

    if (!root) {
        block_json_error(errp, what, "JSON parse error: %s (column %d)", jerr.text,
                         jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        block_json_error(errp, what, "the JSON form must be an object");
        json_decref(root);
        return NULL;
    }
    kv = block_keyval_new();
    if (!block_json_flatten(root, NULL, kv, what, errp)) {
        keyval_free(kv);
        kv = NULL;
    }
    json_decref(root);
    return kv;
}

const char *block_json_filename_body(const char *filename)
{
    return filename && g_str_has_prefix(filename, BLOCK_JSON_PREFIX)
               ? filename + strlen(BLOCK_JSON_PREFIX)
               : NULL;
}

/* The names of QEMU's Qcow2OverlapCheckMode. */
static bool block_overlap_mode_known(const char *mode)
{
    static const char *const modes[] = { "none", "constant", "cached", "all" };
    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(mode, modes[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool key_is(const char *key, const char *name)
{
    size_t k = strlen(key), n = strlen(name);
    return k >= n && strcmp(key + k - n, name) == 0 && (k == n || key[k - n - 1] == '.');
}

/* overlap-check=MODE is the scalar form of the alternate, overlap-check.KEY the object
 * form: QEMU's keyval parser refuses a key used both ways, before any value is looked at. */
static bool block_overlap_used_consistently(const Keyval *kv, Error **errp)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        const KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
        if (!key_is(p->key, "overlap-check")) {
            continue;
        }
        g_autofree char *sub = g_strconcat(p->key, ".", NULL);
        for (guint j = 0; j < kv->pairs->len; j++) {
            const KeyvalPair *q = g_ptr_array_index(kv->pairs, j);
            if (g_str_has_prefix(q->key, sub)) {
                error_setg(errp, "Parameters '%s.*' used inconsistently", p->key);
                return false;
            }
        }
    }
    return true;
}

bool block_blockdev_check_qapi(const Keyval *kv, Error **errp)
{
    if (!block_overlap_used_consistently(kv, errp)) {
        return false;
    }
    for (guint i = 0; i < kv->pairs->len; i++) {
        const KeyvalPair *p = g_ptr_array_index(kv->pairs, i);
        /* QEMU names the member relative to the node (or to the alternate, for
         * 'template'), whichever node of the tree it belongs to. */
        const char *member = key_is(p->key, "overlap-check") ? "overlap-check"
                             : key_is(p->key, "overlap-check.template") ? "template"
                                                                        : NULL;
        if (member && !block_overlap_mode_known(p->value)) {
            error_setg(errp, "Parameter '%s' does not accept value '%s'", member, p->value);
            return false;
        }
    }
    return true;
}
