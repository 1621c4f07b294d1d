/*
 * QEMU-style "implied,key=value" option strings and the number spellings used inside them.
 * See include/sen/keyval.h for the syntax.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "sen/keyval.h"

static void keyval_pair_free(gpointer p)
{
    KeyvalPair *pair = p;

    g_free(pair->key);
    g_free(pair->value);
    g_free(pair);
}

static void keyval_append(Keyval *kv, char *key, char *value)
{
    KeyvalPair *pair = g_new0(KeyvalPair, 1);

    pair->key = key;
    pair->value = value;
    g_ptr_array_add(kv->pairs, pair);
}

static bool keyval_key_valid(const char *key)
{
    if (!*key) {
        return false;
    }
    for (const char *p = key; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.') {
            return false;
        }
    }
    return true;
}

/*
 * Reads a value up to the next single ',' (",," is a literal comma) and returns where the
 * next element starts.
 */
static const char *keyval_read_value(const char *s, GString *out)
{
    while (*s) {
        if (*s == ',') {
            if (s[1] != ',') {
                return s + 1;
            }
            s++;
        }
        g_string_append_c(out, *s);
        s++;
    }
    return s;
}

/* True when the first element has no '=' before its end, i.e. it is the implied value. */
static bool keyval_first_is_implied(const char *s)
{
    for (; *s; s++) {
        if (*s == '=') {
            return false;
        }
        if (*s == ',') {
            if (s[1] != ',') {
                return true;
            }
            s++;
        }
    }
    return true;
}

Keyval *keyval_parse(const char *params, const char *implied_key, Error **errp)
{
    g_autoptr(Keyval) kv = g_new0(Keyval, 1);
    const char *s = params;

    kv->pairs = g_ptr_array_new_with_free_func(keyval_pair_free);

    if (implied_key && *s && keyval_first_is_implied(s)) {
        GString *val = g_string_new(NULL);
        s = keyval_read_value(s, val);
        keyval_append(kv, g_strdup(implied_key), g_string_free(val, false));
    }

    while (*s) {
        const char *eq = strchr(s, '=');
        const char *comma = strchr(s, ',');

        if (!eq || (comma && comma < eq)) {
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            g_autofree char *key = g_strndup(s, len);
            if (!*key) {
                error_setg(errp, "empty parameter name in '%s'", params);
            } else {
                error_setg(errp, "parameter '%s' has no value (expected %s=VALUE)", key, key);
            }
            return NULL;
        }
        g_autofree char *key = g_strndup(s, eq - s);
        if (!*key) {
            error_setg(errp, "empty parameter name in '%s'", params);
            return NULL;
        }
        if (!keyval_key_valid(key)) {
            error_setg(errp, "invalid parameter name '%s'", key);
            return NULL;
        }
        GString *val = g_string_new(NULL);
        s = keyval_read_value(eq + 1, val);
        keyval_append(kv, g_steal_pointer(&key), g_string_free(val, false));
    }
    return g_steal_pointer(&kv);
}

void keyval_free(Keyval *kv)
{
    if (kv) {
        if (kv->pairs) {
            g_ptr_array_unref(kv->pairs);
        }
        g_free(kv);
    }
}

/* The last pair named key; with mark, every pair of that name counts as read. */
static KeyvalPair *keyval_find(const Keyval *kv, const char *key, bool mark)
{
    KeyvalPair *found = NULL;

    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);
        if (strcmp(pair->key, key) == 0) {
            if (mark) {
                pair->used = true;
            }
            found = pair;
        }
    }
    return found;
}

const char *keyval_get(Keyval *kv, const char *key)
{
    KeyvalPair *pair = keyval_find(kv, key, true);
    return pair ? pair->value : NULL;
}

bool keyval_has(const Keyval *kv, const char *key)
{
    return keyval_find(kv, key, false) != NULL;
}

char *keyval_take(Keyval *kv, const char *key)
{
    char *value = NULL;

    for (guint i = 0; i < kv->pairs->len;) {
        KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);
        if (strcmp(pair->key, key) == 0) {
            g_free(value);
            value = g_steal_pointer(&pair->value);
            g_ptr_array_remove_index(kv->pairs, i);
        } else {
            i++;
        }
    }
    return value;
}

bool keyval_check_all_used(const Keyval *kv, const char *what, Error **errp)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        const KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);
        if (!pair->used) {
            error_setg(errp, "%s: invalid parameter '%s'", what, pair->key);
            return false;
        }
    }
    return true;
}

/*
 * The number parsers return NULL on success or the reason str was rejected, so that the
 * public functions and the keyval readers can word the message for their context.
 */
static const char *uint_reason(const char *str, uint64_t *out)
{
    const char *digits = str;
    int base = 10;

    if (!*str) {
        return "empty value";
    }
    if (*str == '-' || *str == '+') {
        return "a sign is not allowed";
    }
    if (str[0] == '0' && (str[1] == 'x' || str[1] == 'X')) {
        base = 16;
        digits = str + 2;
    } else if (str[0] == '0' && str[1]) {
        base = 8;
        digits = str + 1;
    }
    /* strtoull skips blanks and accepts signs: insist on a digit where the number starts. */
    if (!g_ascii_isxdigit(*digits) || (base != 16 && !g_ascii_isdigit(*digits))) {
        return "not a number";
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(digits, &end, base);
    if (*end) {
        return "not a number";
    }
    if (errno == ERANGE) {
        return "number too large";
    }
    *out = v;
    return NULL;
}

static int size_suffix_shift(char c)
{
    switch (g_ascii_tolower(c)) {
    case 'b': return 0;
    case 'k': return 10;
    case 'm': return 20;
    case 'g': return 30;
    case 't': return 40;
    case 'p': return 50;
    case 'e': return 60;
    default: return -1;
    }
}

static const char *size_reason(const char *str, uint64_t default_unit, uint64_t *out)
{
    const char *p = str;
    uint64_t whole = 0;

    if (!*p) {
        return "empty value";
    }
    while (g_ascii_isspace(*p)) {
        p++; /* as QEMU's qemu_strtosz (strtoull): leading blanks are skipped */
    }
    if (*p == '-') {
        return "negative sizes are not allowed";
    }
    if (!g_ascii_isdigit(*p)) {
        return "not a number";
    }
    /*
     * As QEMU 7.2's qemu_strtosz: hexadecimal (0x...) takes no fraction; a suffix is
     * deprecated but taken, with QEMU's warning, given as soon as the suffix is read (so
     * also for "0x10kk", refused next).  B and E are hex digits there, never suffixes.
     */
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        if (!g_ascii_isxdigit(*p)) {
            return "not a number";
        }
        for (; g_ascii_isxdigit(*p); p++) {
            if (whole >> 60) {
                return "value too large";
            }
            whole = whole << 4 | (uint64_t)g_ascii_xdigit_value(*p);
        }
        if (*p == '.') {
            return "a hexadecimal size takes no fraction";
        }
        uint64_t unit = default_unit;
        int shift = *p ? size_suffix_shift(*p) : -1;
        if (shift >= 0) {
            warn_report("Using a multiplier suffix on hex numbers is deprecated: %s", str);
            unit = UINT64_C(1) << shift;
            p++;
        }
        if (*p) {
            return "not a number";
        }
        uint64_t bytes;
        if (__builtin_mul_overflow(whole, unit, &bytes)) {
            return "value too large";
        }
        *out = bytes;
        return NULL;
    }
    for (; g_ascii_isdigit(*p); p++) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole)) {
            return "value too large";
        }
    }

    /* The fraction is kept as a decimal string so 1.5G is exact, not a double rounded. */
    const char *frac = NULL;
    size_t frac_len = 0;
    if (*p == '.') {
        frac = ++p;
        while (g_ascii_isdigit(*p)) {
            p++;
        }
        frac_len = p - frac;
        if (frac_len == 0) {
            return "not a number";
        }
    }

    uint64_t unit = default_unit;
    if (*p) {
        int shift = size_suffix_shift(*p);
        if (shift < 0 || p[1]) {
            return "unknown size suffix (use B, K, M, G, T, P or E)";
        }
        unit = UINT64_C(1) << shift;
    }
    /* As QEMU: "1.5" alone is ambiguous (is it MiB?), so a fraction needs a unit. */
    if (frac && (unit == 1 || !*p)) {
        return "a fraction needs a unit suffix (K, M, G ...)";
    }

    uint64_t bytes;
    if (__builtin_mul_overflow(whole, unit, &bytes)) {
        return "value too large";
    }
    if (frac) {
        /* unit * 0.frac, truncated; at most 19 digits keep the numerator in 64 bits. */
        uint64_t num = 0, den = 1;
        for (size_t i = 0; i < frac_len && i < 18; i++) {
            num = num * 10 + (uint64_t)(frac[i] - '0');
            den *= 10;
        }
        unsigned __int128 part = (unsigned __int128)unit * num / den;
        if (__builtin_add_overflow(bytes, (uint64_t)part, &bytes)) {
            return "value too large";
        }
    }
    *out = bytes;
    return NULL;
}

bool parse_size(const char *str, uint64_t default_unit, uint64_t *out, Error **errp)
{
    const char *reason = size_reason(str, default_unit, out);
    if (reason) {
        error_setg(errp, "invalid size '%s': %s", str, reason);
        return false;
    }
    return true;
}

bool parse_uint(const char *str, uint64_t *out, Error **errp)
{
    const char *reason = uint_reason(str, out);
    if (reason) {
        error_setg(errp, "invalid number '%s': %s", str, reason);
        return false;
    }
    return true;
}

static const char *bool_reason(const char *str, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true" };
    static const char *const no[] = { "off", "no", "false" };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (strcmp(str, yes[i]) == 0) {
            *out = true;
            return NULL;
        }
        if (strcmp(str, no[i]) == 0) {
            *out = false;
            return NULL;
        }
    }
    return "expected on or off";
}

bool parse_bool(const char *str, bool *out, Error **errp)
{
    const char *reason = bool_reason(str, out);
    if (reason) {
        error_setg(errp, "invalid value '%s': %s", str, reason);
        return false;
    }
    return true;
}

bool keyval_parse_on_off_auto(const char *v, int *out)
{
    if (!v || strcmp(v, "auto") == 0) {
        *out = -1;
    } else if (strcmp(v, "on") == 0) {
        *out = 1;
    } else if (strcmp(v, "off") == 0) {
        *out = 0;
    } else {
        return false;
    }
    return true;
}

bool keyval_get_bool(Keyval *kv, const char *what, const char *key, bool def, bool *out,
                     Error **errp)
{
    const char *v = keyval_get(kv, key);
    bool tmp;

    if (!v) {
        *out = def;
        return true;
    }
    const char *reason = bool_reason(v, &tmp);
    if (reason) {
        error_setg(errp, "%s: %s=%s: %s", what, key, v, reason);
        return false;
    }
    *out = tmp;
    return true;
}

bool keyval_get_u64(Keyval *kv, const char *what, const char *key, uint64_t def,
                    uint64_t *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    uint64_t tmp;

    if (!v) {
        *out = def;
        return true;
    }
    const char *reason = uint_reason(v, &tmp);
    if (reason) {
        error_setg(errp, "%s: %s=%s: %s", what, key, v, reason);
        return false;
    }
    *out = tmp;
    return true;
}

bool keyval_get_size(Keyval *kv, const char *what, const char *key, uint64_t def,
                     uint64_t *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    uint64_t tmp;

    if (!v) {
        *out = def;
        return true;
    }
    const char *reason = size_reason(v, 1, &tmp);
    if (reason) {
        error_setg(errp, "%s: %s=%s: invalid size: %s", what, key, v, reason);
        return false;
    }
    *out = tmp;
    return true;
}

bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}
