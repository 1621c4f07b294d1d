/* util/keyval.c: option strings, sizes, numbers, booleans. */
#include <string.h>
#include <glib.h>
#include "sen/keyval.h"

static Keyval *parse_ok(const char *s, const char *implied)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(s, implied, &err);

    if (!kv) {
        g_error("keyval_parse(\"%s\") failed: %s", s, error_get_pretty(err));
    }
    return kv;
}

static char *parse_err(const char *s, const char *implied)
{
    Error *err = NULL;
    Keyval *kv = keyval_parse(s, implied, &err);

    g_assert_null(kv);
    g_assert_nonnull(err);
    char *msg = g_strdup(error_get_pretty(err));
    error_free(err);
    return msg;
}

static void test_implied(void)
{
    g_autoptr(Keyval) kv = parse_ok("isa-debug-exit,iobase=0xf4,iosize=4", "driver");

    g_assert_cmpuint(kv->pairs->len, ==, 3);
    g_assert_cmpstr(keyval_get(kv, "driver"), ==, "isa-debug-exit");
    g_assert_cmpstr(keyval_get(kv, "iobase"), ==, "0xf4");
    g_assert_cmpstr(keyval_get(kv, "iosize"), ==, "4");
    g_assert_null(keyval_get(kv, "nope"));

    /* The first element may still be key=value when an implied key exists. */
    g_autoptr(Keyval) kv2 = parse_ok("cpus=4,cores=2", "cpus");
    g_assert_cmpuint(kv2->pairs->len, ==, 2);
    g_assert_cmpstr(keyval_get(kv2, "cpus"), ==, "4");

    /* Only the first element can be implied. */
    g_autofree char *msg = parse_err("4,2", "cpus");
    g_assert_nonnull(strstr(msg, "'2'"));
}

static void test_escapes(void)
{
    g_autoptr(Keyval) kv = parse_ok("file,path=a,,b,,,id=x", "backend");

    g_assert_cmpstr(keyval_get(kv, "path"), ==, "a,b,");
    g_assert_cmpstr(keyval_get(kv, "id"), ==, "x");

    g_autoptr(Keyval) kv2 = parse_ok("we,,ird,x=1", "driver");
    g_assert_cmpstr(keyval_get(kv2, "driver"), ==, "we,ird");
    g_assert_cmpstr(keyval_get(kv2, "x"), ==, "1");

    /* "a=b,,c=d" is one value: the ',,' belongs to it. */
    g_autoptr(Keyval) kv3 = parse_ok("a=b,,c=d", NULL);
    g_assert_cmpuint(kv3->pairs->len, ==, 1);
    g_assert_cmpstr(keyval_get(kv3, "a"), ==, "b,c=d");
}

static void test_last_wins(void)
{
    g_autoptr(Keyval) kv = parse_ok("2,cpus=4,cpus=8", "cpus");

    g_assert_cmpstr(keyval_get(kv, "cpus"), ==, "8");
    g_assert_true(keyval_check_all_used(kv, "-smp", NULL));

    g_autofree char *v = keyval_take(kv, "cpus");
    g_assert_cmpstr(v, ==, "8");
    g_assert_cmpuint(kv->pairs->len, ==, 0);
    g_assert_false(keyval_has(kv, "cpus"));
    g_assert_null(keyval_take(kv, "cpus"));
}

static void test_empty(void)
{
    g_autoptr(Keyval) kv = parse_ok("", "driver");
    g_assert_cmpuint(kv->pairs->len, ==, 0);

    g_autoptr(Keyval) kv2 = parse_ok("", NULL);
    g_assert_cmpuint(kv2->pairs->len, ==, 0);

    g_autoptr(Keyval) kv3 = parse_ok("path=,id=x", NULL);
    g_assert_cmpstr(keyval_get(kv3, "path"), ==, "");
    g_assert_true(keyval_has(kv3, "path"));

    /* A trailing comma ends the list, as in QEMU. */
    g_autoptr(Keyval) kv4 = parse_ok("a=1,", NULL);
    g_assert_cmpuint(kv4->pairs->len, ==, 1);
}

static void test_errors(void)
{
    g_autofree char *m1 = parse_err("stdio,id=c,server", "backend");
    g_assert_nonnull(strstr(m1, "'server'"));
    g_autofree char *m2 = parse_err("nokey", NULL);
    g_assert_nonnull(strstr(m2, "'nokey'"));
    g_autofree char *m3 = parse_err("=1", NULL);
    g_assert_nonnull(strstr(m3, "'=1'"));
    g_autofree char *m4 = parse_err("a b=1", NULL);
    g_assert_nonnull(strstr(m4, "'a b'"));
    g_autofree char *m5 = parse_err(",a=1", NULL);
    g_assert_nonnull(m5);
}

static void test_check_all_used(void)
{
    g_autoptr(Keyval) kv = parse_ok("isa-debug-exit,iobase=1,foo=2", "driver");
    Error *err = NULL;

    keyval_get(kv, "driver");
    keyval_get(kv, "iobase");
    g_assert_false(keyval_check_all_used(kv, "-device isa-debug-exit,iobase=1,foo=2", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "-device isa-debug-exit,iobase=1,foo=2: invalid parameter 'foo'");
    error_free(err);

    g_assert_null(keyval_get(kv, "bar"));
    keyval_get(kv, "foo");
    g_assert_true(keyval_check_all_used(kv, "x", NULL));

    /* keyval_has does not count as reading. */
    g_autoptr(Keyval) kv2 = parse_ok("a=1", NULL);
    g_assert_true(keyval_has(kv2, "a"));
    g_assert_false(keyval_check_all_used(kv2, "x", NULL));
}

static void check_size(const char *s, uint64_t unit, uint64_t expect)
{
    Error *err = NULL;
    uint64_t v = 0;

    if (!parse_size(s, unit, &v, &err)) {
        g_error("parse_size(\"%s\"): %s", s, error_get_pretty(err));
    }
    g_assert_cmpuint(v, ==, expect);
}

static void check_size_bad(const char *s, uint64_t unit)
{
    Error *err = NULL;
    uint64_t v = 42;

    g_assert_false(parse_size(s, unit, &v, &err));
    g_assert_nonnull(err);
    g_autofree char *quoted = g_strdup_printf("'%s'", s);
    g_assert_nonnull(strstr(error_get_pretty(err), quoted));
    g_assert_cmpuint(v, ==, 42);
    error_free(err);
}

static void test_parse_size(void)
{
    const uint64_t MiB = 1024 * 1024;

    check_size("0", 1, 0);
    check_size("4096", 1, 4096);
    check_size("128", MiB, 128 * MiB);
    check_size("512k", 1, 512 * 1024);
    check_size("512K", MiB, 512 * 1024);
    check_size("64M", 1, 64 * MiB);
    check_size("1G", 1, 1024 * MiB);
    check_size("1g", MiB, 1024 * MiB);
    check_size("1T", 1, UINT64_C(1) << 40);
    check_size("2P", 1, UINT64_C(2) << 50);
    check_size("1E", 1, UINT64_C(1) << 60);
    check_size("15E", 1, UINT64_C(15) << 60);
    check_size("100B", MiB, 100);
    check_size("1.5G", 1, 3 * 512 * MiB);
    check_size("0.5k", 1, 512);
    check_size("18446744073709551615", 1, UINT64_MAX);
    /* As qemu_strtosz: leading blanks are skipped, hexadecimal needs no suffix. */
    check_size(" 1", 1, 1);
    check_size("\t7k", 1, 7 * 1024);
    check_size("0x10", 1, 16);
    check_size("0X1f", MiB, 31 * MiB);
    check_size("0xffffffffffffffff", 1, UINT64_MAX);

    check_size_bad("", 1);
    check_size_bad("12Q", MiB);
    check_size_bad("-1", 1);
    check_size_bad("-1M", 1);
    check_size_bad("abc", 1);
    check_size_bad("M", 1);
    check_size_bad(" -1", 1);
    check_size_bad("0x", 1);
    check_size_bad("0xg", 1);
    check_size_bad("0x1.5", 1);
    check_size_bad("0x10000000000000000", 1);
    check_size_bad("0x2", MiB << 43);
    check_size_bad("1 ", 1);
    check_size_bad("1GG", 1);
    check_size_bad("1.", 1);
    check_size_bad("1.5", 1);
    check_size_bad("1.5", MiB);
    check_size_bad("1.5B", 1);
    check_size_bad("16E", 1);
    check_size_bad("18446744073709551616", 1);
    check_size_bad("99999999999999999999999", 1);
    check_size_bad("17179869184G", 1);
    check_size_bad("17592186044416", MiB);
}

/*
 * Hexadecimal with a suffix, as QEMU 7.2 (qemu-img create x 0x10k): taken, with its
 * deprecation warning on stderr, given once the suffix is read even when the value is
 * then refused.  Each case runs in a subprocess, which owns the stderr the warning goes to.
 */
typedef struct HexSuffixCase {
    const char *str;
    uint64_t unit, want; /* want 0: refused */
    bool warns;
} HexSuffixCase;

static const HexSuffixCase hex_suffix_cases[] = {
    { "0x10k", 1, 16 * 1024, true },
    { "0x10K", 1024 * 1024, 16 * 1024, true },
    { "0X1M", 1, 1024 * 1024, true },
    { "0x3g", 1, UINT64_C(3) << 30, true },
    { "0x2T", 1, UINT64_C(2) << 40, true },
    { "0x1p", 1, UINT64_C(1) << 50, true },
    { " 0x10k", 1, 16 * 1024, true },
    { "0x1fffffffffffffk", 1, (uint64_t)INT64_MAX - 1023, true },
    /* B and E are hex digits, not suffixes: no warning. */
    { "0x10B", 1, 0x10b, false },
    { "0x10e", 1, 0x10e, false },
    { "0x10E", 1024, 0x10e * 1024, false },
    /* Refused as QEMU refuses them; the warning comes only once a suffix is read. */
    { "0x10kk", 1, 0, true },
    { "0x10k ", 1, 0, true },
    { "0x40000000000000k", 1, 0, true },
    { "0x10.5k", 1, 0, false },
    { "0x10.k", 1, 0, false },
    { "0xk", 1, 0, false },
    { "00x10k", 1, 0, false },
    { "-0x10k", 1, 0, false },
    { "0x10000000000000000k", 1, 0, false },
};

static void hex_suffix_case(gconstpointer data)
{
    const HexSuffixCase *c = data;
    if (c->want) {
        check_size(c->str, c->unit, c->want);
    } else {
        check_size_bad(c->str, c->unit);
    }
}

static void test_parse_size_hex_suffix(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(hex_suffix_cases); i++) {
        const HexSuffixCase *c = &hex_suffix_cases[i];
        g_autofree char *path = g_strdup_printf("/keyval/parse-size-hex-suffix/subprocess/%zu", i);
        g_test_trap_subprocess(path, 10 * G_USEC_PER_SEC, 0);
        g_test_trap_assert_passed();
        if (c->warns) {
            g_autofree char *pat = g_strdup_printf(
                "*: warning: Using a multiplier suffix on hex numbers is deprecated: %s\n",
                c->str);
            g_test_trap_assert_stderr(pat);
        } else {
            g_test_trap_assert_stderr("");
        }
    }
}

static void test_parse_uint(void)
{
    uint64_t v;
    Error *err = NULL;

    g_assert_true(parse_uint("0", &v, NULL));
    g_assert_cmpuint(v, ==, 0);
    g_assert_true(parse_uint("42", &v, NULL));
    g_assert_cmpuint(v, ==, 42);
    g_assert_true(parse_uint("0xf4", &v, NULL));
    g_assert_cmpuint(v, ==, 0xf4);
    g_assert_true(parse_uint("0X1F", &v, NULL));
    g_assert_cmpuint(v, ==, 0x1f);
    g_assert_true(parse_uint("010", &v, NULL));
    g_assert_cmpuint(v, ==, 8);
    g_assert_true(parse_uint("18446744073709551615", &v, NULL));
    g_assert_cmpuint(v, ==, UINT64_MAX);

    const char *bad[] = { "", "-1", "+1", " 1", "1 ", "1k", "0x", "0xg", "08", "abc",
                          "18446744073709551616", "0x10000000000000000", "1.0" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        v = 7;
        g_assert_false(parse_uint(bad[i], &v, &err));
        g_autofree char *quoted = g_strdup_printf("'%s'", bad[i]);
        g_assert_nonnull(strstr(error_get_pretty(err), quoted));
        g_assert_cmpuint(v, ==, 7);
        error_free(err);
        err = NULL;
    }
}

static void test_parse_bool(void)
{
    const char *yes[] = { "on", "yes", "true" }, *no[] = { "off", "no", "false" };
    bool b;
    Error *err = NULL;

    for (size_t i = 0; i < 3; i++) {
        b = false;
        g_assert_true(parse_bool(yes[i], &b, NULL));
        g_assert_true(b);
        g_assert_true(parse_bool(no[i], &b, NULL));
        g_assert_false(b);
    }
    g_assert_false(parse_bool("maybe", &b, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'maybe'"));
    error_free(err);
    g_assert_false(parse_bool("", &b, NULL));
    g_assert_false(parse_bool("ON", &b, NULL));
}

static void test_typed_readers(void)
{
    g_autoptr(Keyval) kv = parse_ok("server=on,port=x,size=1.5k,n=0x10", NULL);
    Error *err = NULL;
    bool b = false;
    uint64_t u = 0;

    g_assert_true(keyval_get_bool(kv, "-chardev", "server", false, &b, NULL));
    g_assert_true(b);
    g_assert_true(keyval_get_bool(kv, "-chardev", "wait", true, &b, NULL));
    g_assert_true(b);
    g_assert_true(keyval_get_u64(kv, "-x", "n", 0, &u, NULL));
    g_assert_cmpuint(u, ==, 16);
    g_assert_true(keyval_get_u64(kv, "-x", "missing", 99, &u, NULL));
    g_assert_cmpuint(u, ==, 99);
    g_assert_true(keyval_get_size(kv, "-x", "size", 0, &u, NULL));
    g_assert_cmpuint(u, ==, 1536);

    g_assert_false(keyval_get_u64(kv, "-chardev socket", "port", 0, &u, &err));
    g_assert_true(g_str_has_prefix(error_get_pretty(err), "-chardev socket: port=x: "));
    error_free(err);
    err = NULL;
    g_assert_false(keyval_get_bool(kv, "-x", "port", false, &b, &err));
    g_assert_true(g_str_has_prefix(error_get_pretty(err), "-x: port=x: "));
    error_free(err);
    err = NULL;
    g_assert_false(keyval_get_size(kv, "-x", "port", 0, &u, &err));
    g_assert_true(g_str_has_prefix(error_get_pretty(err), "-x: port=x: "));
    error_free(err);
    g_assert_true(keyval_check_all_used(kv, "-x", NULL));
}

static void test_parse_on_off_auto(void)
{
    int v = 42;
    g_assert_true(keyval_parse_on_off_auto("on", &v));
    g_assert_cmpint(v, ==, 1);
    g_assert_true(keyval_parse_on_off_auto("off", &v));
    g_assert_cmpint(v, ==, 0);
    g_assert_true(keyval_parse_on_off_auto("auto", &v));
    g_assert_cmpint(v, ==, -1);
    v = 42;
    g_assert_true(keyval_parse_on_off_auto(NULL, &v));
    g_assert_cmpint(v, ==, -1);
    v = 42;
    g_assert_false(keyval_parse_on_off_auto("maybe", &v));
    g_assert_false(keyval_parse_on_off_auto("", &v));
    g_assert_false(keyval_parse_on_off_auto("yes", &v));
    g_assert_cmpint(v, ==, 42);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/keyval/implied", test_implied);
    g_test_add_func("/keyval/escapes", test_escapes);
    g_test_add_func("/keyval/last-wins", test_last_wins);
    g_test_add_func("/keyval/empty", test_empty);
    g_test_add_func("/keyval/errors", test_errors);
    g_test_add_func("/keyval/check-all-used", test_check_all_used);
    g_test_add_func("/keyval/parse-size", test_parse_size);
    g_test_add_func("/keyval/parse-size-hex-suffix", test_parse_size_hex_suffix);
    for (size_t i = 0; i < G_N_ELEMENTS(hex_suffix_cases); i++) {
        g_autofree char *path = g_strdup_printf("/keyval/parse-size-hex-suffix/subprocess/%zu", i);
        g_test_add_data_func(path, &hex_suffix_cases[i], hex_suffix_case);
    }
    g_test_add_func("/keyval/parse-uint", test_parse_uint);
    g_test_add_func("/keyval/parse-bool", test_parse_bool);
    g_test_add_func("/keyval/typed-readers", test_typed_readers);
    g_test_add_func("/keyval/parse-on-off-auto", test_parse_on_off_auto);
    return g_test_run();
}
