/*
 * The migration byte stream (migration/stream.c): CRC-32C, big-endian fields, the
 * trailing checksum, page data outside it, how a reader reports truncation and
 * corruption, and the destination's torn-page rule.
 */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "migration/multifd.h"
#include "migration/ram-torn.h"
#include "migration/stream.h"
#include "migration/transport.h"
#include "crc32c-ref.h"

static void test_crc32c(void)
{
    /* The standard check value of CRC-32C (RFC 3720, B.4). */
    const char *s = "123456789";
    g_assert_cmphex(~mig_crc32c(0xffffffffu, s, 9), ==, 0xe3069283u);
    /* Chunked the same as whole, at every split point (covers the 8-byte loop). */
    for (size_t k = 0; k <= 9; k++) {
        uint32_t c = mig_crc32c(0xffffffffu, s, k);
        g_assert_cmphex(~mig_crc32c(c, s + k, 9 - k), ==, 0xe3069283u);
    }
}

/* The three-lane path (lengths around every lane boundary and the table's end), the
 * copying variant, and joining pieces with mig_crc32c_shift. */
static void test_crc32c_lanes(void)
{
    const size_t max = 3 * 8 * 512 * 2 + 100;
    g_autofree uint8_t *buf = g_malloc(max);
    g_autofree uint8_t *copy = g_malloc(max);
    for (size_t i = 0; i < max; i++) {
        buf[i] = (uint8_t)(i * 131 + (i >> 7));
    }
    static const size_t lens[] = {
        0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 79, 80, 127, 128, 129, 143, 191, 192, 193,
        200, 4095, 4096, 4097, 12287, 12288, 12289,
        3 * 8 * 512 * 2 + 100,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
        size_t len = lens[i];
        uint32_t want = crc32c_ref(0x12345678u, buf, len);
        g_assert_cmphex(mig_crc32c(0x12345678u, buf, len), ==, want);
        memset(copy, 0, max);
        g_assert_cmphex(mig_crc32c_copy(0x12345678u, copy, buf, len), ==, want);
        g_assert_cmpmem(copy, len, buf, len);
        /* A||B from crc(A) and a CRC of B started from zero. */
        for (size_t split = 0; split <= len; split += len / 3 + 1) {
            uint32_t a = mig_crc32c(0x12345678u, buf, split);
            uint32_t b = mig_crc32c(0, buf + split, len - split);
            g_assert_cmphex(mig_crc32c_shift(a, len - split) ^ b, ==, want);
        }
    }
    /* Shifting by n is feeding n zero bytes. */
    g_autofree uint8_t *zeros = g_malloc0(70000);
    g_assert_cmphex(mig_crc32c_shift(0xdeadbeefu, 70000), ==,
                    crc32c_ref(0xdeadbeefu, zeros, 70000));
    g_assert_cmphex(mig_crc32c_shift(0, 12345), ==, 0);
}

/*
 * Every length 0..300 (the folding path's 64-byte steps, its 16-byte tail and the last
 * bytes) at every source alignment and at random source and destination offsets, with
 * random data and a random starting CRC: equal to the reference, the copy exact and
 * nothing written outside it.
 */
static void test_crc32c_every_length(void)
{
    enum { MAX_LEN = 300, SLACK = 64 };
    uint8_t src[MAX_LEN + SLACK], dst[MAX_LEN + 2 * SLACK];
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (uint8_t)g_test_rand_int();
    }
    for (size_t len = 0; len <= MAX_LEN; len++) {
        for (unsigned k = 0; k < 20; k++) {
            /* Alignments 0..15 in turn, then random offsets. */
            size_t off = k < 16 ? k : (size_t)g_test_rand_int_range(0, SLACK);
            size_t doff = (size_t)g_test_rand_int_range(0, SLACK);
            uint32_t crc = g_test_rand_int();
            uint32_t want = crc32c_ref(crc, src + off, len);
            g_assert_cmphex(mig_crc32c(crc, src + off, len), ==, want);
            memset(dst, 0xa5, sizeof(dst));
            g_assert_cmphex(mig_crc32c_copy(crc, dst + doff, src + off, len), ==, want);
            g_assert_cmpmem(dst + doff, len, src + off, len);
            for (size_t i = 0; i < sizeof(dst); i++) {
                if (i < doff || i >= doff + len) {
                    g_assert_cmphex(dst[i], ==, 0xa5);
                }
            }
        }
    }
}

/* A writer into an unlinked temporary file; *rfd is a second descriptor of that file,
 * left open for reading what the writer wrote. */
static MigStream *temp_file_writer(int *rfd)
{
    char path[] = "/tmp/sen-test-stream-XXXXXX";
    int fd = mkstemp(path);
    g_assert_cmpint(fd, >=, 0);
    unlink(path);
    *rfd = dup(fd);
    g_assert_cmpint(*rfd, >=, 0);
    return mig_stream_new_writer(fd);
}

/* Writes a stream into a file and returns its bytes. */
static GBytes *write_sample(size_t big)
{
    int rfd;
    MigStream *w = temp_file_writer(&rfd);
    g_autofree uint8_t *data = g_malloc(big);
    for (size_t i = 0; i < big; i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    mig_put_u8(w, 0xab);
    mig_put_be32(w, 0x01020304);
    mig_put_be64(w, 0x1122334455667788ull);
    mig_put_buf(w, data, big);
    mig_put_checksum(w);
    g_assert_false(mig_stream_failed(w));
    g_assert_cmpuint(mig_stream_bytes(w), ==, 1 + 4 + 8 + big + 4);
    mig_stream_free(w);
    off_t len = lseek(rfd, 0, SEEK_END);
    uint8_t *buf = g_malloc(len);
    g_assert_cmpint(pread(rfd, buf, len, 0), ==, len);
    close(rfd);
    return g_bytes_new_take(buf, len);
}

/* A reader over the first len bytes of data (with byte flip_at xor-ed when >= 0). */
static MigStream *reader_over(GBytes *b, size_t len, long flip_at)
{
    char path[] = "/tmp/sen-test-stream-XXXXXX";
    int fd = mkstemp(path);
    g_autofree uint8_t *copy = g_memdup2(g_bytes_get_data(b, NULL), g_bytes_get_size(b));
    if (flip_at >= 0) {
        copy[flip_at] ^= 0x40;
    }
    g_assert_cmpint(fd, >=, 0);
    unlink(path);
    g_assert_cmpint(write(fd, copy, len), ==, (ssize_t)len);
    lseek(fd, 0, SEEK_SET);
    return mig_stream_new_reader(fd);
}

static bool read_sample(MigStream *r, size_t big, Error **errp)
{
    g_autofree uint8_t *data = g_malloc(big);
    bool fields_ok = mig_get_u8(r) == 0xab && mig_get_be32(r) == 0x01020304 &&
                     mig_get_be64(r) == 0x1122334455667788ull;
    mig_get_buf(r, data, big);
    bool ok = mig_get_checksum_ok(r);
    if (!mig_stream_check(r, errp)) {
        return false;
    }
    g_assert_true(fields_ok);
    for (size_t i = 0; i < big; i++) {
        g_assert_cmpuint(data[i], ==, (uint8_t)(i * 7 + 3));
    }
    return ok;
}

static void test_round_trip(void)
{
    /* Small (buffered) and large (read straight into the destination) payloads. */
    static const size_t sizes[] = { 0, 1, 4096, 300000, 1 << 20 };
    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autoptr(GBytes) b = write_sample(sizes[i]);
        MigStream *r = reader_over(b, g_bytes_get_size(b), -1);
        Error *err = NULL;
        g_assert_true(read_sample(r, sizes[i], &err));
        g_assert_null(err);
        mig_stream_free(r);
    }
}

static void test_truncated(void)
{
    const size_t big = 300000;
    g_autoptr(GBytes) b = write_sample(big);
    size_t full = g_bytes_get_size(b);
    /* Every cut fails with "ended early", never a success or a hang. */
    const size_t cuts[] = { 0, 1, 5, 13, 14, 100000, full - 5, full - 4, full - 1 };
    for (size_t i = 0; i < G_N_ELEMENTS(cuts); i++) {
        MigStream *r = reader_over(b, cuts[i], -1);
        Error *err = NULL;
        g_assert_false(read_sample(r, big, &err));
        g_assert_nonnull(strstr(error_get_pretty(err), "ended early"));
        error_free(err);
        mig_stream_free(r);
    }
}

static void test_corrupt(void)
{
    const size_t big = 300000;
    g_autoptr(GBytes) b = write_sample(big);
    size_t full = g_bytes_get_size(b);
    /* A flipped payload byte or checksum byte: the checksum does not match. */
    const long flips[] = { 20, 150000, (long)full - 5, (long)full - 1 };
    for (size_t i = 0; i < G_N_ELEMENTS(flips); i++) {
        MigStream *r = reader_over(b, full, flips[i]);
        Error *err = NULL;
        g_autofree uint8_t *data = g_malloc(big);
        mig_get_u8(r);
        mig_get_be32(r);
        mig_get_be64(r);
        mig_get_buf(r, data, big);
        g_assert_false(mig_get_checksum_ok(r));
        g_assert_false(mig_stream_check(r, &err));
        g_assert_nonnull(strstr(error_get_pretty(err), "corrupt"));
        error_free(err);
        mig_stream_free(r);
    }
}

/*
 * Records as RAM sends them, back to back: a small header, then a large payload.  A
 * large payload is read straight into its destination and the next header comes along
 * in the same read (read ahead into the buffer): every header and payload byte must end
 * up in order, counted and checksummed once.
 */
static const size_t record_sizes[] = { 262144, 262144, 70000, 65536, 5, 300000, 65535,
                                       262144 };

static uint8_t record_byte(size_t rec, size_t i)
{
    return (uint8_t)(i * 13 + rec * 101 + (i >> 12));
}

static GBytes *write_records(void)
{
    int rfd;
    MigStream *w = temp_file_writer(&rfd);
    for (size_t r = 0; r < G_N_ELEMENTS(record_sizes); r++) {
        g_autofree uint8_t *data = g_malloc(record_sizes[r]);
        for (size_t i = 0; i < record_sizes[r]; i++) {
            data[i] = record_byte(r, i);
        }
        mig_put_u8(w, 0x01);
        mig_put_be64(w, r);
        mig_put_buf(w, data, record_sizes[r]);
    }
    mig_put_u8(w, 0xff);
    mig_put_checksum(w);
    g_assert_false(mig_stream_failed(w));
    mig_stream_free(w);
    off_t len = lseek(rfd, 0, SEEK_END);
    uint8_t *buf = g_malloc(len);
    g_assert_cmpint(pread(rfd, buf, len, 0), ==, len);
    close(rfd);
    return g_bytes_new_take(buf, len);
}

/* Reads what write_records wrote; *intact: every header and payload byte as written. */
static bool read_records(MigStream *r, bool *intact, Error **errp)
{
    uint64_t expect_bytes = 0;
    *intact = true;
    for (size_t rec = 0; rec < G_N_ELEMENTS(record_sizes); rec++) {
        g_autofree uint8_t *data = g_malloc(record_sizes[rec]);
        *intact &= mig_get_u8(r) == 0x01 && mig_get_be64(r) == rec;
        mig_get_buf(r, data, record_sizes[rec]);
        if (!mig_stream_check(r, errp)) {
            return false;
        }
        for (size_t i = 0; i < record_sizes[rec]; i++) {
            *intact &= data[i] == record_byte(rec, i);
        }
        expect_bytes += 9 + record_sizes[rec];
        g_assert_cmpuint(mig_stream_bytes(r), ==, expect_bytes);
    }
    *intact &= mig_get_u8(r) == 0xff;
    bool ok = mig_get_checksum_ok(r);
    return mig_stream_check(r, errp) && ok;
}

typedef struct PipeFeed {
    GBytes *b;
    int fd;
} PipeFeed;

/* Writes the stream into a pipe in odd-sized pieces, so reads come back short. */
static gpointer pipe_feeder(gpointer opaque)
{
    PipeFeed *f = opaque;
    size_t len;
    const uint8_t *p = g_bytes_get_data(f->b, &len);
    size_t piece = 1;
    while (len) {
        size_t n = MIN(len, piece);
        ssize_t done = write(f->fd, p, n);
        g_assert_cmpint(done, >, 0);
        p += done;
        len -= (size_t)done;
        piece = piece * 3 % 100003 + 1;
    }
    close(f->fd);
    return NULL;
}

static void test_records_back_to_back(void)
{
    g_autoptr(GBytes) b = write_records();
    Error *err = NULL;

    /* A file: every read returns all it was asked for. */
    bool intact;
    MigStream *r = reader_over(b, g_bytes_get_size(b), -1);
    g_assert_true(read_records(r, &intact, &err));
    g_assert_null(err);
    g_assert_true(intact);
    mig_stream_free(r);

    /* A pipe fed in small pieces: short reads land anywhere in a header or payload. */
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    PipeFeed feed = { .b = b, .fd = p[1] };
    GThread *t = g_thread_new("feeder", pipe_feeder, &feed);
    r = mig_stream_new_reader(p[0]);
    g_assert_true(read_records(r, &intact, &err));
    g_assert_null(err);
    g_assert_true(intact);
    g_thread_join(t);
    mig_stream_free(r);

    /* Cut at and around each record boundary: always "ended early", never success. */
    size_t at = 0;
    for (size_t rec = 0; rec < G_N_ELEMENTS(record_sizes); rec++) {
        at += 9 + record_sizes[rec];
        for (size_t cut = at - 1; cut <= at + 1; cut++) {
            r = reader_over(b, cut, -1);
            g_assert_false(read_records(r, &intact, &err));
            g_assert_nonnull(strstr(error_get_pretty(err), "ended early"));
            g_clear_pointer(&err, error_free);
            mig_stream_free(r);
        }
    }
    /* A flipped header or payload byte that arrives read ahead: the checksum catches it. */
    const long flips[] = { 9 + 262144 + 3, 9 + 262144 + 9 + 100 };
    for (size_t i = 0; i < G_N_ELEMENTS(flips); i++) {
        r = reader_over(b, g_bytes_get_size(b), flips[i]);
        g_assert_false(read_records(r, &intact, &err));
        g_assert_false(intact);
        g_assert_nonnull(strstr(error_get_pretty(err), "corrupt"));
        g_clear_pointer(&err, error_free);
        mig_stream_free(r);
    }
}

static void test_write_error_is_sticky(void)
{
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    close(p[0]);
    MigStream *w = mig_stream_new_writer(p[1]);
    mig_put_be64(w, 1);
    mig_stream_flush(w);
    g_assert_true(mig_stream_failed(w));
    Error *err = NULL;
    g_assert_false(mig_stream_check(w, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "write to the migration stream failed"));
    error_free(err);
    mig_put_be64(w, 2); /* a no-op now, not a crash */
    mig_stream_free(w);
}

/*
 * Page data by reference (mig_put_data): in the stream in order with the buffered
 * bytes around it, counted, outside the stream's CRC (so a flipped data byte only
 * changes what mig_get_data reads), and the same bytes through the ops (savevm).
 */
typedef struct MemSink {
    GByteArray *bytes;
} MemSink;

static ssize_t mem_sink_write(void *opaque, const void *buf, size_t len)
{
    MemSink *m = opaque;
    /* Short writes, to exercise the partial-write bookkeeping. */
    len = MIN(len, (size_t)70001);
    g_byte_array_append(m->bytes, buf, (guint)len);
    return (ssize_t)len;
}

static const MigStreamOps mem_sink_ops = { .write = mem_sink_write };

static const size_t data_sizes[] = { 262144, 4096, 1 << 20, 300000, 8192 };

static void write_data_records(MigStream *w, uint8_t **data)
{
    for (size_t r = 0; r < G_N_ELEMENTS(data_sizes); r++) {
        mig_put_u8(w, 0x01);
        mig_put_be64(w, r);
        mig_put_data(w, data[r], data_sizes[r]);
    }
    mig_put_u8(w, 0xff);
    mig_put_checksum(w);
    g_assert_false(mig_stream_failed(w));
}

static void test_data_by_reference(void)
{
    uint8_t *data[G_N_ELEMENTS(data_sizes)];
    uint64_t total = 0;
    for (size_t r = 0; r < G_N_ELEMENTS(data_sizes); r++) {
        data[r] = g_malloc(data_sizes[r]);
        for (size_t i = 0; i < data_sizes[r]; i++) {
            data[r][i] = record_byte(r, i);
        }
        total += 9 + data_sizes[r];
    }

    int rfd;
    MigStream *w = temp_file_writer(&rfd);
    write_data_records(w, data);
    g_assert_cmpuint(mig_stream_bytes(w), ==, total + 1 + 4);
    mig_stream_free(w);
    off_t len = lseek(rfd, 0, SEEK_END);
    g_assert_cmpint(len, ==, (off_t)(total + 1 + 4));
    g_autofree uint8_t *file = g_malloc(len);
    g_assert_cmpint(pread(rfd, file, len, 0), ==, len);
    close(rfd);

    /* The ops writer produces the same bytes. */
    MemSink sink = { g_byte_array_new() };
    w = mig_stream_new_ops(&mem_sink_ops, &sink, true);
    write_data_records(w, data);
    mig_stream_free(w);
    g_assert_cmpuint(sink.bytes->len, ==, (guint)len);
    g_assert_cmpmem(sink.bytes->data, len, file, len);
    g_byte_array_unref(sink.bytes);

    g_autoptr(GBytes) b = g_bytes_new_take(g_steal_pointer(&file), len);
    /* -1: intact; in the second record's data; in the fourth record's header. */
    const long flips[] = { -1, 9 + 262144 + 9 + 100, 9 + 262144 + 9 + 4096 + 9 + (1 << 20) + 2 };
    for (size_t f = 0; f < G_N_ELEMENTS(flips); f++) {
        MigStream *r = reader_over(b, len, flips[f]);
        bool data_ok = true, header_ok = true;
        for (size_t rec = 0; rec < G_N_ELEMENTS(data_sizes); rec++) {
            g_autofree uint8_t *got = g_malloc(data_sizes[rec]);
            header_ok &= mig_get_u8(r) == 0x01 && mig_get_be64(r) == rec;
            mig_get_data(r, got, data_sizes[rec]);
            data_ok &= memcmp(got, data[rec], data_sizes[rec]) == 0;
        }
        g_assert_cmpuint(mig_get_u8(r), ==, 0xff);
        bool sum_ok = mig_get_checksum_ok(r);
        g_assert_cmpuint(mig_stream_bytes(r), ==, total + 1 + 4);
        switch (f) {
        case 0:
            g_assert_true(data_ok && header_ok && sum_ok);
            break;
        case 1: /* page data is not the stream checksum's business */
            g_assert_true(header_ok && sum_ok);
            g_assert_false(data_ok);
            break;
        default:
            g_assert_false(header_ok);
            g_assert_false(sum_ok);
        }
        mig_stream_free(r);
    }
    for (size_t r = 0; r < G_N_ELEMENTS(data_sizes); r++) {
        g_free(data[r]);
    }
}

/* The torn-page rule (migration/ram-torn.h): the last record for a page decides. */
static void test_torn_pages(void)
{
    const uint64_t pages[] = { 100, 200 };
    RamTorn *t = ram_torn_new(2, pages);
    unsigned region = 9;
    uint64_t page = 9;

    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 0);
    ram_torn_set(t, 0, 3, 3, true);              /* a mismatched record: pages 3-5 */
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 3);
    g_assert_cmpuint(region, ==, 0);
    g_assert_cmpuint(page, ==, 3);
    ram_torn_set(t, 0, 3, 2, false);             /* pages 3-4 sent again, matching */
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 1);
    g_assert_cmpuint(page, ==, 5);
    ram_torn_set(t, 1, 60, 70, true);            /* across word boundaries */
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 71);
    ram_torn_set(t, 0, 5, 1, false);             /* page 5 sent again (e.g. as zero) */
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 70);
    g_assert_cmpuint(region, ==, 1);
    g_assert_cmpuint(page, ==, 60);
    ram_torn_set(t, 1, 64, 64, false);
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 6);
    ram_torn_set(t, 1, 0, 200, false);
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 0);
    /* A good copy does not excuse a later torn one. */
    ram_torn_set(t, 1, 199, 1, false);
    ram_torn_set(t, 1, 199, 1, true);
    g_assert_cmpuint(ram_torn_count(t, &region, &page), ==, 1);
    g_assert_cmpuint(page, ==, 199);
    ram_torn_free(t);
}

/*
 * A multifd channel that ends (END) before the SYNC the main stream then announces can
 * never pass it: the destination fails the load instead of waiting for it forever (a
 * wait nothing, not even a cancel, would end).  No page is sent, so no RAM is needed.
 */
static void test_multifd_end_before_sync(void)
{
    g_autofree char *dir = g_dir_make_tmp("sen-test-multifd-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "mig.sock", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    const uint64_t session = 0x1234;
    Error *err = NULL;
    int cancel = 0, mainp[2];

    g_assert_nonnull(dir);
    MigListener *l = mig_listen(uri, &err);
    g_assert_null(err);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, mainp), ==, 0);

    g_autoptr(MigUri) u = mig_uri_parse(uri, &err);
    g_assert_null(err);
    pid_t child;
    int fd = mig_connect(u, &child, &err);
    g_assert_cmpint(fd, >=, 0);
    MigStream *w = mig_stream_new_writer(fd);
    mig_put_buf(w, MULTIFD_MAGIC, 8);
    mig_put_be32(w, MULTIFD_VERSION);
    mig_put_be64(w, session);
    mig_put_be32(w, 0);     /* channel id */
    mig_put_be32(w, 1);     /* channels */
    mig_put_u8(w, MIG_REC_END);
    mig_put_checksum(w);
    g_assert_true(mig_stream_check(w, NULL));

    MultifdRecv *mr = multifd_recv_start(NULL, l, mainp[0], 1, session, &cancel, &err);
    g_assert_null(err);
    g_assert_nonnull(mr);
    g_assert_false(multifd_recv_sync(mr, 1, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "ended before SYNC 1"));
    error_free(err);

    multifd_recv_free(mr);
    mig_stream_free(w);
    close(mainp[0]);
    close(mainp[1]);
    mig_listener_free(l);
    g_unlink(sock);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    g_test_add_func("/migration-stream/crc32c", test_crc32c);
    g_test_add_func("/migration-stream/crc32c-lanes", test_crc32c_lanes);
    g_test_add_func("/migration-stream/crc32c-every-length", test_crc32c_every_length);
    g_test_add_func("/migration-stream/round-trip", test_round_trip);
    g_test_add_func("/migration-stream/truncated", test_truncated);
    g_test_add_func("/migration-stream/corrupt", test_corrupt);
    g_test_add_func("/migration-stream/records-back-to-back", test_records_back_to_back);
    g_test_add_func("/migration-stream/write-error-is-sticky", test_write_error_is_sticky);
    g_test_add_func("/migration-stream/data-by-reference", test_data_by_reference);
    g_test_add_func("/migration-stream/torn-pages", test_torn_pages);
    g_test_add_func("/migration-stream/multifd-end-before-sync",
                    test_multifd_end_before_sync);
    return g_test_run();
}
