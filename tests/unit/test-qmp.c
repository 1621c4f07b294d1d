/*
 * The QMP input path without a VM: the streaming JSON reader (framing, limits,
 * resynchronisation), the dispatcher's envelope rules and generated argument checks,
 * and that docs/qmp.md is what the schema generates.
 */
#include <string.h>
#include <glib.h>
#include "monitor/json-reader.h"
#include "monitor/qmp-dispatch.h"

typedef struct Collected {
    GPtrArray *msgs;   /* json_t* */
    GPtrArray *errors; /* char* */
} Collected;

static void collect(void *opaque, json_t *msg, const char *error)
{
    Collected *c = opaque;
    if (msg) {
        g_ptr_array_add(c->msgs, msg);
    } else {
        g_ptr_array_add(c->errors, g_strdup(error));
    }
}

static void collected_init(Collected *c)
{
    c->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)json_decref);
    c->errors = g_ptr_array_new_with_free_func(g_free);
}

static void collected_clear(Collected *c)
{
    g_ptr_array_unref(c->msgs);
    g_ptr_array_unref(c->errors);
}

static void feed_str(JsonReader *r, const char *s)
{
    json_reader_feed(r, (const uint8_t *)s, strlen(s));
}

static void test_reader_split_and_joined(void)
{
    Collected c;
    collected_init(&c);
    JsonReader *r = json_reader_new(collect, &c);
    const char *msg = "{\"a\": \"}{\\\"]\", \"b\": [1, {\"c\": []}]}";

    for (const char *p = msg; *p; p++) {
        json_reader_feed(r, (const uint8_t *)p, 1);
    }
    g_assert_cmpuint(c.msgs->len, ==, 1);
    g_assert_cmpstr(json_string_value(json_object_get(c.msgs->pdata[0], "a")), ==, "}{\"]");
    feed_str(r, " {\"x\":1}\r\n[2]\t{\"y\":\n2}");
    g_assert_cmpuint(c.msgs->len, ==, 4);
    g_assert_cmpuint(c.errors->len, ==, 0);
    json_reader_free(r);
    collected_clear(&c);
}

static void test_reader_errors_and_recovery(void)
{
    Collected c;
    collected_init(&c);
    JsonReader *r = json_reader_new(collect, &c);

    feed_str(r, "garbage 42 {\"ok\":1}");
    g_assert_cmpuint(c.errors->len, ==, 2);           /* one per stray token */
    g_assert_cmpuint(c.msgs->len, ==, 1);
    feed_str(r, "\"stray { string\" {\"ok\":2}");     /* braces in a stray string */
    g_assert_cmpuint(c.errors->len, ==, 3);
    g_assert_cmpuint(c.msgs->len, ==, 2);
    feed_str(r, "{\"cut\": \"abc\n{\"ok\":3}");        /* newline inside a string */
    g_assert_cmpuint(c.errors->len, ==, 4);
    g_assert_cmpuint(c.msgs->len, ==, 3);
    feed_str(r, "{\"cut\": [1, 2");
    json_reader_feed(r, (const uint8_t *)"\xff", 1);  /* resynchronise */
    feed_str(r, "{\"ok\":4}");
    g_assert_cmpuint(c.errors->len, ==, 4);
    g_assert_cmpuint(c.msgs->len, ==, 4);
    feed_str(r, "{\"bad\": \"\xc0\x80\"}{\"dup\":1,\"dup\":2}{\"ok\":5}");
    g_assert_cmpuint(c.errors->len, ==, 6);
    g_assert_cmpuint(c.msgs->len, ==, 5);
    json_reader_free(r);
    collected_clear(&c);
}

static void test_reader_limits(void)
{
    Collected c;
    collected_init(&c);
    JsonReader *r = json_reader_new(collect, &c);

    GString *deep = g_string_new(NULL);
    for (int i = 0; i < 3000; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < 3000; i++) {
        g_string_append_c(deep, ']');
    }
    feed_str(r, deep->str);
    g_string_free(deep, TRUE);
    g_assert_cmpuint(c.errors->len, ==, 1);
    g_assert_nonnull(strstr(c.errors->pdata[0], "nesting"));

    size_t big = JSON_READER_MAX_SIZE + 100;
    char *s = g_malloc(big);
    memset(s, 'x', big);
    feed_str(r, "{\"s\": \"");
    json_reader_feed(r, (const uint8_t *)s, big);
    feed_str(r, "\"}{\"ok\":1}");
    g_free(s);
    g_assert_cmpuint(c.errors->len, ==, 2);
    g_assert_nonnull(strstr(c.errors->pdata[1], "longer"));
    g_assert_cmpuint(c.msgs->len, ==, 1);
    json_reader_free(r);
    collected_clear(&c);
}

static json_t *run(QmpCtx *ctx, const char *req)
{
    json_t *j = json_loads(req, 0, NULL);
    g_assert_nonnull(j);
    json_t *resp = qmp_dispatch(ctx, j);
    json_decref(j);
    return resp;
}

static void assert_error(json_t *resp, const char *cls, const char *desc)
{
    json_t *err = json_object_get(resp, "error");
    g_assert_nonnull(err);
    g_assert_cmpstr(json_string_value(json_object_get(err, "class")), ==, cls);
    g_assert_nonnull(strstr(json_string_value(json_object_get(err, "desc")), desc));
    json_decref(resp);
}

static void test_dispatch(void)
{
    /* An empty machine (no drives, nothing built): only commands that need no more than
     * that are run here; tests/functional runs the others against a real VM. */
    Machine m = { 0 };
    QmpCtx ctx = { .m = &m };

    assert_error(run(&ctx, "{\"execute\":\"query-version\"}"), "CommandNotFound",
                 "qmp_capabilities");
    json_decref(run(&ctx, "{\"execute\":\"qmp_capabilities\"}"));
    g_assert_true(ctx.command_mode);
    json_t *r = run(&ctx, "{\"execute\":\"query-version\",\"id\":{\"x\":[1]}}");
    g_assert_cmpstr(json_string_value(json_object_get(json_object_get(r, "return"),
                                                      "package")), ==, "Sen");
    g_assert_true(json_is_array(json_object_get(json_object_get(r, "id"), "x")));
    json_decref(r);
    assert_error(run(&ctx, "{\"execute\":\"block_resize\",\"arguments\":{\"size\":\"1\"}}"),
                 "GenericError", "Invalid parameter type for 'size', expected: integer");
    assert_error(run(&ctx, "{\"execute\":\"block_resize\",\"arguments\":{\"device\":\"d\"}}"),
                 "GenericError", "Parameter 'size' is missing");
    assert_error(run(&ctx, "{\"execute\":\"block_resize\","
                     "\"arguments\":{\"device\":\"d\",\"size\":1}}"),
                 "DeviceNotFound", "Cannot find device='d'");
    assert_error(run(&ctx, "{\"execute\":\"query-target\",\"arguments\":{\"a\":1}}"),
                 "GenericError", "Parameter 'a' is unexpected");
    assert_error(run(&ctx, "{\"execute\":\"nope\"}"), "CommandNotFound",
                 "The command nope has not been found");
    assert_error(run(&ctx, "[1]"), "GenericError", "must be a JSON object");
    /* A message quoting a host path that is not UTF-8 is still answered. */
    assert_error(qmp_error_response(QMP_ERROR_GENERIC, "cannot open 'd\xffisk.img'", NULL),
                 "GenericError", "cannot open 'd");

    r = run(&ctx, "{\"execute\":\"query-qmp-schema\"}");
    json_t *schema = json_object_get(r, "return");
    g_assert_true(json_is_array(schema));
    size_t ncmds = 0, i;
    json_t *info;
    json_array_foreach(schema, i, info) {
        ncmds += strcmp(json_string_value(json_object_get(info, "meta-type")), "command") == 0;
    }
    g_assert_cmpuint(ncmds, ==, qmp_commands_count);
    json_decref(r);
}

static void test_docs_current(void)
{
    const char *src = g_getenv("SEN_SOURCE_DIR");
    const char *build = g_getenv("SEN_BUILD_DIR");
    g_autofree char *committed = NULL, *generated = NULL;

    if (!src || !build) {
        g_test_skip("SEN_SOURCE_DIR/SEN_BUILD_DIR not set");
        return;
    }
    g_autofree char *doc = g_build_filename(src, "docs", "qmp.md", NULL);
    g_autofree char *gen = g_build_filename(build, "monitor", "qmp.md", NULL);
    if (!g_file_get_contents(gen, &generated, NULL, NULL)) {
        g_test_skip("monitor/qmp.md not generated in the build directory");
        return;
    }
    g_assert_true(g_file_get_contents(doc, &committed, NULL, NULL));
    if (strcmp(committed, generated) != 0) {
        g_test_message("docs/qmp.md is stale: cp %s %s", gen, doc);
        g_test_fail();
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/reader/split-and-joined", test_reader_split_and_joined);
    g_test_add_func("/qmp/reader/errors-and-recovery", test_reader_errors_and_recovery);
    g_test_add_func("/qmp/reader/limits", test_reader_limits);
    g_test_add_func("/qmp/dispatch", test_dispatch);
    g_test_add_func("/qmp/docs-current", test_docs_current);
    return g_test_run();
}
