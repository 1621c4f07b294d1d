/*
 * QEMU-style option strings: "implied,key=val,key2=val2".
 *
 * - ",," inside a value is a literal comma ("file=a,,b" is the file "a,b").
 * - The first element may omit "key=" when the caller names an implied key
 *   ("-smp 4" -> cpus=4, "-device isa-debug-exit" -> driver=isa-debug-exit).
 * - A key given twice keeps the last value (as QEMU's -smp/-m do).
 * - "key" alone (no '=') after the first element is an error, as in QEMU's keyval.
 *
 * Readers mark keys as used; keyval_check_all_used() then rejects anything the reader did
 * not understand, naming it, so no option is ever silently ignored.
 */
#ifndef SEN_KEYVAL_H
#define SEN_KEYVAL_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/error.h"

typedef struct KeyvalPair {
    char *key;
    char *value;
    bool used;
} KeyvalPair;

typedef struct Keyval {
    GPtrArray *pairs; /* of KeyvalPair*, in command-line order */
} Keyval;

/* implied_key may be NULL (then every element must be key=value). */
Keyval *keyval_parse(const char *params, const char *implied_key, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void keyval_free(Keyval *kv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Keyval, keyval_free)

/* Last value of key (marking it used) or NULL. */
const char *keyval_get(Keyval *kv, const char *key);
bool keyval_has(const Keyval *kv, const char *key);
/* Removes key and returns its last value (caller frees) or NULL. */
char *keyval_take(Keyval *kv, const char *key);

/* QEMU's OnOffAuto: "on" 1, "off" 0, "auto" or NULL (not given) -1; false for any other
 * value (the caller words the error as its option wants). */
bool keyval_parse_on_off_auto(const char *v, int *out) G_GNUC_WARN_UNUSED_RESULT;

/*
 * Typed readers: when key is absent *out = def and true is returned.  On a malformed
 * value they fail with "<what>: <key>=<value>: <reason>" (what is e.g. "-smp").
 */
bool keyval_get_bool(Keyval *kv, const char *what, const char *key, bool def, bool *out,
                     Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool keyval_get_u64(Keyval *kv, const char *what, const char *key, uint64_t def,
                    uint64_t *out, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
bool keyval_get_size(Keyval *kv, const char *what, const char *key, uint64_t def,
                     uint64_t *out, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* Fails with "<what>: invalid parameter '<key>'" for the first key never read. */
bool keyval_check_all_used(const Keyval *kv, const char *what, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

/*
 * Sizes as QEMU spells them: "64M", "1G", "1.5G", "512k", "4096" (no suffix: the unit is
 * default_unit, e.g. 1024*1024 for -m, 1 for byte sizes).  Suffixes B K M G T P E,
 * either case; hexadecimal ("0x10") too, and with a K..P suffix ("0x10k") as QEMU 7.2
 * takes it, printing its deprecation warning (warn_report).  Fails naming str on garbage,
 * negative values and overflow (the reason then contains "too large").
 */
bool parse_size(const char *str, uint64_t default_unit, uint64_t *out, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* Decimal, 0x hex or 0 octal, full string, no sign, no overflow. */
bool parse_uint(const char *str, uint64_t *out, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* on/off, yes/no, true/false. */
bool parse_bool(const char *str, bool *out, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* QEMU's rule for ids (-device id=, -netdev id=, node-name ...): a letter, then letters,
 * digits, '-', '.' and '_'. */
bool id_wellformed(const char *id);

#endif
