/*
 * The device registry (hw/core/device.c) with a test-only device class, plus the small
 * built-in ISA devices: isa-debug-exit, port92, ioport80.
 */
#include <string.h>
#include <glib.h>
#include "sen/device.h"
#include "sen/machine.h"

typedef struct TestDev {
    DeviceState parent;
    bool flag;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint64_t size;
    char *name;
    bool fail;
} TestDev;

/* The order of realize/reset/unrealize calls across instances, as "r:id" strings. */
static GString *calls;

static bool testdev_realize(DeviceState *dev, Machine *m, Error **errp)
{
    TestDev *t = (TestDev *)dev;
    if (t->fail) {
        error_setg(errp, "testdev: asked to fail");
        return false;
    }
    g_string_append_printf(calls, "R:%s ", dev->id ? dev->id : "-");
    return true;
}

static void testdev_reset(DeviceState *dev)
{
    g_string_append_printf(calls, "r:%s ", dev->id ? dev->id : "-");
}

static void testdev_unrealize(DeviceState *dev)
{
    g_string_append_printf(calls, "u:%s ", dev->id ? dev->id : "-");
}

static const PropertyDef testdev_props[] = {
    DEFINE_PROP("flag", PROP_BOOL, TestDev, flag, "on", "a bool"),
    DEFINE_PROP("u8", PROP_U8, TestDev, u8, "7", "a byte"),
    DEFINE_PROP("u16", PROP_U16, TestDev, u16, "0x1234", "a u16"),
    DEFINE_PROP("u32", PROP_U32, TestDev, u32, NULL, "a u32"),
    DEFINE_PROP("u64", PROP_U64, TestDev, u64, "0xffffffffffffffff", "a u64"),
    DEFINE_PROP("size", PROP_SIZE, TestDev, size, "1M", "a size"),
    DEFINE_PROP("name", PROP_STRING, TestDev, name, "default-name", "a string"),
    DEFINE_PROP("fail", PROP_BOOL, TestDev, fail, "off", "fail realize"),
    { .name = NULL },
};

static const DeviceClass testdev_class = {
    .name = "testdev",
    .desc = "test device",
    .instance_size = sizeof(TestDev),
    .props = testdev_props,
    .user_creatable = true,
    .realize = testdev_realize,
    .reset = testdev_reset,
    .unrealize = testdev_unrealize,
};

static Machine *machine_new_fake(void)
{
    Machine *m = g_new0(Machine, 1);
    g_mutex_init(&m->lock);
    m->pio = io_space_new("pio");
    m->devices = g_ptr_array_new();
    return m;
}

static void machine_free_fake(Machine *m)
{
    device_destroy_all(m);
    g_ptr_array_unref(m->devices);
    io_space_free(m->pio);
    g_mutex_clear(&m->lock);
    g_free(m);
}

static TestDev *create_test(Machine *m, const char *opts, char **errmsg)
{
    Error *err = NULL;
    Keyval *kv = opts ? keyval_parse(opts, NULL, &err) : NULL;
    g_assert_true(!opts || kv);
    g_autofree char *what = g_strdup_printf("-device testdev%s%s", opts ? "," : "",
                                            opts ? opts : "");
    DeviceState *dev = device_create_class(m, &testdev_class, kv, what, &err);
    keyval_free(kv);
    if (!dev) {
        g_assert_nonnull(err);
        *errmsg = g_strdup(error_get_pretty(err));
        error_free(err);
    }
    return (TestDev *)dev;
}

static void test_defaults_and_props(void)
{
    Machine *m = machine_new_fake();
    char *msg = NULL;

    TestDev *t = create_test(m, NULL, &msg);
    g_assert_nonnull(t);
    g_assert_true(t->flag);
    g_assert_cmpuint(t->u8, ==, 7);
    g_assert_cmphex(t->u16, ==, 0x1234);
    g_assert_cmpuint(t->u32, ==, 0);
    g_assert_cmphex(t->u64, ==, UINT64_MAX);
    g_assert_cmpuint(t->size, ==, 1024 * 1024);
    g_assert_cmpstr(t->name, ==, "default-name");
    g_assert_null(t->parent.id);
    g_assert_true(t->parent.cls == &testdev_class);

    t = create_test(m, "id=d1,flag=off,u8=255,u16=65535,u32=0xffffffff,u64=0,size=2G,"
                       "name=foo,name=bar", &msg);
    g_assert_nonnull(t);
    g_assert_cmpstr(t->parent.id, ==, "d1");
    g_assert_false(t->flag);
    g_assert_cmpuint(t->u8, ==, 255);
    g_assert_cmpuint(t->u16, ==, 65535);
    g_assert_cmpuint(t->u32, ==, UINT32_MAX);
    g_assert_cmpuint(t->u64, ==, 0);
    g_assert_cmpuint(t->size, ==, 2ULL << 30);
    g_assert_cmpstr(t->name, ==, "bar"); /* the last one wins */
    g_assert_cmpuint(m->devices->len, ==, 2);
    machine_free_fake(m);
}

static void test_bad_input(void)
{
    Machine *m = machine_new_fake();
    static const struct {
        const char *opts;
        const char *msg;
    } cases[] = {
        { "foo=1", "-device testdev,foo=1: property 'foo' not found" },
        { "u8=256", "-device testdev,u8=256: property 'u8': '256' is not a valid uint8" },
        { "u16=65536", "property 'u16': '65536' is not a valid uint16" },
        { "u32=0x100000000", "property 'u32': '0x100000000' is not a valid uint32" },
        { "u64=-1", "property 'u64': '-1' is not a valid uint64" },
        { "u8=x", "property 'u8': 'x' is not a valid uint8" },
        { "flag=maybe", "property 'flag': 'maybe' is not a valid bool" },
        { "size=12Q", "property 'size': '12Q' is not a valid size" },
        { "fail=on", "testdev: asked to fail" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *msg = NULL;
        g_assert_null(create_test(m, cases[i].opts, &msg));
        if (!strstr(msg, cases[i].msg)) {
            g_error("%s: got '%s', want '%s'", cases[i].opts, msg, cases[i].msg);
        }
    }
    /* Nothing stays registered after a failure. */
    g_assert_cmpuint(m->devices->len, ==, 0);

    Error *err = NULL;
    g_assert_null(device_create(m, "no-such-device", NULL, "-device no-such-device", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'no-such-device'"));
    error_free(err);
    machine_free_fake(m);
}

static void test_reset_and_destroy_order(void)
{
    Machine *m = machine_new_fake();
    char *msg = NULL;
    g_string_truncate(calls, 0);

    g_assert_nonnull(create_test(m, "id=a", &msg));
    g_assert_nonnull(create_test(m, "id=b", &msg));
    g_assert_null(create_test(m, "id=x,fail=on", &msg));
    g_free(msg);
    g_assert_nonnull(create_test(m, "id=c", &msg));
    device_reset_all(m);
    device_destroy_all(m);
    g_assert_cmpstr(calls->str, ==, "R:a R:b R:c r:a r:b r:c u:c u:b u:a ");
    g_assert_cmpuint(m->devices->len, ==, 0);
    machine_free_fake(m);
}

static void test_class_table(void)
{
    static const char *const builtin[] = { "isa-serial", "isa-debug-exit", "i8042",
                                           "ioport80", "port92" };
    for (size_t i = 0; i < G_N_ELEMENTS(builtin); i++) {
        const DeviceClass *cls = device_class_find(builtin[i]);
        g_assert_nonnull(cls);
        g_assert_cmpstr(cls->name, ==, builtin[i]);
    }
    g_assert_null(device_class_find("nope"));
    g_assert_true(device_class_find("isa-debug-exit")->user_creatable);
    g_assert_false(device_class_find("i8042")->user_creatable);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    device_class_print_list(f);
    device_class_print_props(device_class_find("isa-debug-exit"), f);
    fclose(f);
    g_assert_nonnull(strstr(buf, "isa-debug-exit"));
    g_assert_null(strstr(buf, "\"i8042\""));
    g_assert_nonnull(strstr(buf, "iobase=<uint32>"));
    g_assert_nonnull(strstr(buf, "0x501"));
    free(buf);
}

static DeviceState *create(Machine *m, const char *driver, const char *opts)
{
    Error *err = NULL;
    Keyval *kv = opts ? keyval_parse(opts, NULL, &err) : NULL;
    DeviceState *dev = device_create(m, driver, kv, driver, &err);
    if (!dev) {
        g_error("%s", error_get_pretty(err));
    }
    keyval_free(kv);
    return dev;
}

static void test_debug_exit(void)
{
    Machine *m = machine_new_fake();
    uint64_t v;

    create(m, "isa-debug-exit", NULL);
    g_assert_true(io_space_read(m->pio, 0x501, 1, &v));
    g_assert_cmpuint(v, ==, 0);
    g_assert_true(io_space_read(m->pio, 0x502, 1, &v));
    g_assert_false(io_space_read(m->pio, 0x503, 1, &v)); /* iosize 2 */
    g_assert_true(io_space_write(m->pio, 0x501, 1, 0x10));
    g_assert_cmpint(m->shutdown_requested, ==, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    g_assert_cmpint(m->exit_status, ==, 0x21);
    machine_free_fake(m);

    m = machine_new_fake();
    create(m, "isa-debug-exit", "iobase=0xf4,iosize=4");
    g_assert_true(io_space_write(m->pio, 0xf7, 1, 0));
    g_assert_cmpint(m->exit_status, ==, 1);
    Error *err = NULL;
    Keyval *kv = keyval_parse("iobase=0xfffff", NULL, &err);
    g_assert_null(device_create(m, "isa-debug-exit", kv, "-device isa-debug-exit", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "iobase=0xfffff"));
    error_free(err);
    keyval_free(kv);
    machine_free_fake(m);
}

static void test_port92_and_80(void)
{
    Machine *m = machine_new_fake();
    uint64_t v;

    create(m, "port92", NULL);
    create(m, "ioport80", NULL);
    g_assert_true(io_space_read(m->pio, 0x80, 1, &v));
    g_assert_cmphex(v & 0xff, ==, 0xff);
    g_assert_true(io_space_write(m->pio, 0x80, 1, 0x12));

    g_assert_true(io_space_read(m->pio, 0x92, 1, &v));
    g_assert_cmphex(v, ==, 0x02);
    g_assert_true(io_space_write(m->pio, 0x92, 1, 0x00));
    g_assert_true(io_space_read(m->pio, 0x92, 1, &v));
    g_assert_cmphex(v, ==, 0x00); /* A20 bit stored */
    g_assert_cmpint(m->reset_requested, ==, 0);
    g_assert_true(io_space_write(m->pio, 0x92, 1, 0x03));
    g_assert_cmpint(m->reset_requested, ==, SHUTDOWN_CAUSE_GUEST_RESET);
    m->reset_requested = 0;
    g_assert_true(io_space_write(m->pio, 0x92, 1, 0x03)); /* no 0->1 edge */
    g_assert_cmpint(m->reset_requested, ==, 0);
    device_reset_all(m);
    g_assert_true(io_space_read(m->pio, 0x92, 1, &v));
    g_assert_cmphex(v, ==, 0x02);
    machine_free_fake(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    calls = g_string_new(NULL);
    g_test_add_func("/device/defaults-and-props", test_defaults_and_props);
    g_test_add_func("/device/bad-input", test_bad_input);
    g_test_add_func("/device/reset-destroy-order", test_reset_and_destroy_order);
    g_test_add_func("/device/class-table", test_class_table);
    g_test_add_func("/device/isa-debug-exit", test_debug_exit);
    g_test_add_func("/device/port92-ioport80", test_port92_and_80);
    return g_test_run();
}
