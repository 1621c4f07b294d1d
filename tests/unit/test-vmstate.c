/*
 * The VMStateDesc codec and the device-state blob: round trips of every field kind,
 * version rules, subsections, and hostile input (truncated, corrupt, random bytes) that
 * must fail with an error naming what is wrong and never write into the instance.
 */
#include <string.h>
#include <glib.h>
#include "sen/vmstate.h"

typedef struct Inner {
    uint16_t a;
    uint64_t b;
} Inner;

typedef struct Sample {
    bool flag;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    int64_t i64;
    uint8_t regs[6];
    uint32_t words[3];
    struct { uint64_t x, y; } raw;   /* opaque buffer */
    Inner inner;
    Inner pair[2];
    uint32_t nq;                     /* fixed by "configuration" */
    Inner *queues;                   /* nq elements */
    uint32_t nmsr;                   /* from the stream */
    uint64_t msrs[8];
    uint32_t added_in_v2;
    uint32_t extra;                  /* only in the subsection */
    bool extra_needed;
    int post_loads;
    bool fail_post_load;
} Sample;

static const VMStateField inner_fields[] = {
    VMSTATE_UINT16(a, Inner),
    VMSTATE_UINT64(b, Inner),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc inner_vmsd = {
    .name = "inner", .version_id = 1, .minimum_version_id = 1, .fields = inner_fields,
};

static bool extra_needed(void *opaque)
{
    return ((Sample *)opaque)->extra_needed;
}

static const VMStateField extra_fields[] = {
    VMSTATE_UINT32(extra, Sample),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc extra_vmsd = {
    .name = "sample/extra", .version_id = 1, .minimum_version_id = 1,
    .fields = extra_fields, .needed = extra_needed,
};

static bool sample_post_load(void *opaque, int version_id, Error **errp)
{
    Sample *s = opaque;
    s->post_loads++;
    if (s->fail_post_load) {
        error_setg(errp, "u8 %u out of range", s->u8);
        return false;
    }
    return true;
}

static const VMStateField sample_fields[] = {
    VMSTATE_BOOL(flag, Sample),
    VMSTATE_UINT8(u8, Sample),
    VMSTATE_UINT16(u16, Sample),
    VMSTATE_UINT32(u32, Sample),
    VMSTATE_UINT64(u64, Sample),
    VMSTATE_INT32(i32, Sample),
    VMSTATE_INT64(i64, Sample),
    VMSTATE_UINT8_ARRAY(regs, Sample, 6),
    VMSTATE_UINT32_ARRAY(words, Sample, 3),
    VMSTATE_BUFFER(raw, Sample),
    VMSTATE_STRUCT(inner, Sample, inner_vmsd, Inner),
    VMSTATE_STRUCT_ARRAY(pair, Sample, 2, inner_vmsd, Inner),
    VMSTATE_STRUCT_VARRAY_POINTER(queues, Sample, nq, 16, inner_vmsd, Inner),
    VMSTATE_VARRAY(msrs, Sample, nmsr, 8, VMS_U64),
    VMSTATE_UINT32_V(added_in_v2, Sample, 2),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc *const sample_subsections[] = { &extra_vmsd, NULL };

static const VMStateDesc sample_vmsd = {
    .name = "sample", .version_id = 2, .minimum_version_id = 1,
    .fields = sample_fields, .subsections = sample_subsections,
    .post_load = sample_post_load,
};

static void sample_fill(Sample *s, Inner *queues)
{
    memset(s, 0, sizeof(*s));
    *s = (Sample){
        .flag = true, .u8 = 0xa5, .u16 = 0xbeef, .u32 = 0xdeadbeef,
        .u64 = 0x0123456789abcdefULL, .i32 = -5, .i64 = -1234567890123LL,
        .regs = { 1, 2, 3, 4, 5, 6 }, .words = { 7, 8, 0xffffffff },
        .raw = { 0x1111, 0x2222 }, .inner = { 9, 10 }, .pair = { { 11, 12 }, { 13, 14 } },
        .nq = 3, .queues = queues, .nmsr = 2, .msrs = { 0x10, 0x20 }, .added_in_v2 = 77,
        .extra = 99, .extra_needed = true,
    };
    for (unsigned i = 0; i < 3; i++) {
        queues[i] = (Inner){ (uint16_t)(100 + i), 1000 + i };
    }
}

/* A destination: same configuration (queue count), nothing else. */
static void sample_empty(Sample *s, Inner *queues)
{
    memset(s, 0, sizeof(*s));
    memset(queues, 0, 3 * sizeof(Inner));
    s->nq = 3;
    s->queues = queues;
}

static GByteArray *save_blob(Sample *s)
{
    GByteArray *b = g_byte_array_new();
    VMStateOut *out = vmstate_out_new(b);
    g_assert_true(vmstate_save_section(out, "sample.0", &sample_vmsd, s, NULL));
    vmstate_out_finish(out);
    return b;
}

static void test_round_trip(void)
{
    Sample src, dst;
    Inner qs[3], qd[3];
    sample_fill(&src, qs);
    g_autoptr(GByteArray) b = save_blob(&src);

    sample_empty(&dst, qd);
    Error *err = NULL;
    VMStateIn *in = vmstate_in_parse(b->data, b->len, &err);
    g_assert_null(err);
    g_assert_true(vmstate_in_has_section(in, "sample.0"));
    g_assert_true(vmstate_load_section(in, "sample.0", &sample_vmsd, &dst, &err));
    g_assert_true(vmstate_in_check_consumed(in, &err));
    vmstate_in_free(in);

    g_assert_true(dst.flag);
    g_assert_cmpuint(dst.u8, ==, 0xa5);
    g_assert_cmpuint(dst.u16, ==, 0xbeef);
    g_assert_cmpuint(dst.u32, ==, 0xdeadbeef);
    g_assert_cmpuint(dst.u64, ==, 0x0123456789abcdefULL);
    g_assert_cmpint(dst.i32, ==, -5);
    g_assert_cmpint(dst.i64, ==, -1234567890123LL);
    g_assert_cmpmem(dst.regs, 6, src.regs, 6);
    g_assert_cmpmem(dst.words, sizeof(dst.words), src.words, sizeof(src.words));
    g_assert_cmpmem(&dst.raw, sizeof(dst.raw), &src.raw, sizeof(src.raw));
    g_assert_cmpuint(dst.inner.a, ==, 9);
    g_assert_cmpuint(dst.inner.b, ==, 10);
    g_assert_cmpuint(dst.pair[1].b, ==, 14);
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpuint(qd[i].a, ==, qs[i].a);
        g_assert_cmpuint(qd[i].b, ==, qs[i].b);
    }
    g_assert_cmpuint(dst.nmsr, ==, 2);
    g_assert_cmpuint(dst.msrs[1], ==, 0x20);
    g_assert_cmpuint(dst.added_in_v2, ==, 77);
    g_assert_cmpuint(dst.extra, ==, 99);
    g_assert_cmpint(dst.post_loads, ==, 1);
}

static void test_subsection_not_needed(void)
{
    Sample src, dst;
    Inner qs[3], qd[3];
    sample_fill(&src, qs);
    src.extra_needed = false;
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&sample_vmsd, &src, b, NULL));
    g_assert_null(memmem(b->data, b->len, "sample/extra", 12));
    sample_empty(&dst, qd);
    dst.extra = 5;
    g_assert_true(vmstate_load_payload(&sample_vmsd, &dst, 2, b->data, b->len, "t", NULL));
    g_assert_cmpuint(dst.extra, ==, 5); /* untouched: the source did not need it */
    g_assert_cmpuint(dst.u32, ==, 0xdeadbeef);
}

/* Loads a payload expecting failure; returns the message (g_free). */
static char *load_payload_err(const GByteArray *b, Sample *dst, int version)
{
    Error *err = NULL;
    g_assert_false(vmstate_load_payload(&sample_vmsd, dst, version, b->data, b->len, "sec",
                                        &err));
    g_assert_nonnull(err);
    char *msg = g_strdup(error_get_pretty(err));
    error_free(err);
    return msg;
}

static void test_version_rules(void)
{
    Sample src, dst;
    Inner qs[3], qd[3];
    sample_fill(&src, qs);
    g_autoptr(GByteArray) b = g_byte_array_new();
    VMStateOut *out = vmstate_out_new(b);
    /* Written by a "newer Sen": version 3. */
    VMStateDesc newer = sample_vmsd;
    newer.version_id = 3;
    g_assert_true(vmstate_save_section(out, "sample.0", &newer, &src, NULL));
    vmstate_out_finish(out);
    VMStateIn *in = vmstate_in_parse(b->data, b->len, NULL);
    g_assert_nonnull(in);
    sample_empty(&dst, qd);
    Error *err = NULL;
    g_assert_false(vmstate_load_section(in, "sample.0", &sample_vmsd, &dst, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "version 3"));
    g_assert_nonnull(strstr(error_get_pretty(err), "versions 1 to 2"));
    error_free(err);
    err = NULL;
    g_assert_false(vmstate_in_check_consumed(in, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'sample.0'"));
    error_free(err);
    vmstate_in_free(in);

    /* Version 1 payload: without added_in_v2; a v2 reader accepts it. */
    VMStateDesc v1 = sample_vmsd;
    v1.version_id = 1;
    g_autoptr(GByteArray) p1 = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&v1, &src, p1, NULL));
    g_assert_null(memmem(p1->data, p1->len, "added_in_v2", 11));
    sample_empty(&dst, qd);
    dst.added_in_v2 = 1;
    g_assert_true(vmstate_load_payload(&sample_vmsd, &dst, 1, p1->data, p1->len, "t", NULL));
    g_assert_cmpuint(dst.added_in_v2, ==, 1);
    g_assert_cmpuint(dst.u64, ==, src.u64);
    /* ...but not as version 2, which must carry the field. */
    sample_empty(&dst, qd);
    g_autofree char *msg = load_payload_err(p1, &dst, 2);
    g_assert_nonnull(strstr(msg, "added_in_v2"));
}

static void test_mismatches(void)
{
    Sample src, dst;
    Inner qs[3], qd[3];
    sample_fill(&src, qs);
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&sample_vmsd, &src, b, NULL));

    /* The destination is configured with 2 queues, the source had 3. */
    sample_empty(&dst, qd);
    dst.nq = 2;
    g_autofree char *m1 = load_payload_err(b, &dst, 2);
    g_assert_nonnull(strstr(m1, "'queues' has 3 elements, this machine has 2"));

    /* More MSRs than the destination can hold. */
    src.nmsr = 9;
    g_autoptr(GByteArray) b2 = g_byte_array_new();
    Error *err = NULL;
    g_assert_false(vmstate_save_payload(&sample_vmsd, &src, b2, &err));
    error_free(err);

    /* A renamed field. */
    src.nmsr = 2;
    g_autoptr(GByteArray) b3 = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&sample_vmsd, &src, b3, NULL));
    guint8 *at = memmem(b3->data, b3->len, "u16", 3);
    g_assert_nonnull(at);
    at[2] = '7';
    sample_empty(&dst, qd);
    g_autofree char *m3 = load_payload_err(b3, &dst, 2);
    g_assert_cmpstr(m3, ==, "sec: expected field 'u16', found 'u17'");

    /* A boolean that is neither 0 nor 1. */
    g_autoptr(GByteArray) b4 = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&sample_vmsd, &src, b4, NULL));
    at = memmem(b4->data, b4->len, "flag", 4);
    at[4 + 4] = 2; /* after the name and the u32 length */
    sample_empty(&dst, qd);
    g_autofree char *m4 = load_payload_err(b4, &dst, 2);
    g_assert_nonnull(strstr(m4, "not a boolean"));

    /* post_load refuses: the error names the section. */
    sample_empty(&dst, qd);
    dst.fail_post_load = true;
    g_autofree char *m5 = load_payload_err(b, &dst, 2);
    g_assert_cmpstr(m5, ==, "sec: u8 165 out of range");
}

static void test_failed_load_writes_nothing(void)
{
    Sample src, dst, before;
    Inner qs[3], qd[3];
    sample_fill(&src, qs);
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&sample_vmsd, &src, b, NULL));
    /* Cut the last record (the subsection) in half: every field before it is valid. */
    g_byte_array_set_size(b, b->len - 3);
    sample_empty(&dst, qd); /* memset: padding included */
    memcpy(&before, &dst, sizeof(dst));
    g_autofree char *msg = load_payload_err(b, &dst, 2);
    g_assert_nonnull(strstr(msg, "truncated"));
    g_assert_cmpmem(&dst, sizeof(dst), &before, sizeof(before));
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpuint(qd[i].a, ==, 0);
        g_assert_cmpuint(qd[i].b, ==, 0);
    }
}

static void test_blob_container(void)
{
    Sample src;
    Inner qs[3];
    sample_fill(&src, qs);
    g_autoptr(GByteArray) b = save_blob(&src);
    Error *err = NULL;

    /* Every truncation is refused by the container. */
    for (size_t len = 0; len < b->len; len++) {
        VMStateIn *in = vmstate_in_parse(b->data, len, &err);
        g_assert_null(in);
        g_assert_nonnull(err);
        error_free(err);
        err = NULL;
    }
    /* Every single-bit flip is refused (checksum, magic or framing). */
    for (size_t i = 0; i < b->len; i++) {
        g_autoptr(GByteArray) c = g_byte_array_new();
        g_byte_array_append(c, b->data, b->len);
        c->data[i] ^= 0x10;
        VMStateIn *in = vmstate_in_parse(c->data, c->len, &err);
        g_assert_null(in);
        g_assert_nonnull(err);
        error_free(err);
        err = NULL;
    }
    /* Two sections of one name. */
    g_autoptr(GByteArray) d = g_byte_array_new();
    VMStateOut *out = vmstate_out_new(d);
    g_assert_true(vmstate_save_section(out, "x", &sample_vmsd, &src, NULL));
    g_assert_true(vmstate_save_section(out, "x", &sample_vmsd, &src, NULL));
    vmstate_out_finish(out);
    g_assert_null(vmstate_in_parse(d->data, d->len, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "device state: section 'x' appears twice");
    error_free(err);
    err = NULL;
    /* A section the destination expects but the source did not send. */
    VMStateIn *in = vmstate_in_parse(b->data, b->len, NULL);
    Sample dst;
    Inner qd[3];
    sample_empty(&dst, qd);
    g_assert_false(vmstate_load_section(in, "cpu.1", &sample_vmsd, &dst, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "section 'cpu.1' is missing"));
    error_free(err);
    vmstate_in_free(in);
}

/* Random and mutated payloads: the decoder must fail or succeed without reading or
 * writing out of bounds (run under ASan in the sanitizer build). */
static void test_fuzz_payload(void)
{
    Sample src;
    Inner qs[3];
    sample_fill(&src, qs);
    g_autoptr(GByteArray) good = g_byte_array_new();
    g_assert_true(vmstate_save_payload(&sample_vmsd, &src, good, NULL));
    GRand *rng = g_rand_new_with_seed(0x5e4);
    for (unsigned iter = 0; iter < 20000; iter++) {
        g_autoptr(GByteArray) c = g_byte_array_new();
        if (iter % 4 == 0) {
            guint32 n = g_rand_int_range(rng, 0, 200);
            for (guint32 i = 0; i < n; i++) {
                guint8 byte = (guint8)g_rand_int(rng);
                g_byte_array_append(c, &byte, 1);
            }
        } else {
            g_byte_array_append(c, good->data, good->len);
            unsigned flips = g_rand_int_range(rng, 1, 4);
            for (unsigned k = 0; k < flips; k++) {
                c->data[g_rand_int_range(rng, 0, c->len)] = (guint8)g_rand_int(rng);
            }
            if (g_rand_boolean(rng)) {
                g_byte_array_set_size(c, g_rand_int_range(rng, 0, c->len + 1));
            }
        }
        Sample dst;
        Inner qd[3];
        sample_empty(&dst, qd);
        Error *err = NULL;
        /* Heap copy so ASan sees the exact end of the input. */
        g_autofree guint8 *data = g_memdup2(c->data, c->len);
        if (!vmstate_load_payload(&sample_vmsd, &dst, 2, data, c->len, "fuzz", &err)) {
            g_assert_nonnull(err);
            error_free(err);
        }
        g_assert_cmpuint(dst.nmsr, <=, 8);
        g_assert_true(dst.queues == qd);
    }
    g_rand_free(rng);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vmstate/round-trip", test_round_trip);
    g_test_add_func("/vmstate/subsection-not-needed", test_subsection_not_needed);
    g_test_add_func("/vmstate/version-rules", test_version_rules);
    g_test_add_func("/vmstate/mismatches", test_mismatches);
    g_test_add_func("/vmstate/failed-load-writes-nothing", test_failed_load_writes_nothing);
    g_test_add_func("/vmstate/blob-container", test_blob_container);
    g_test_add_func("/vmstate/fuzz-payload", test_fuzz_payload);
    return g_test_run();
}
