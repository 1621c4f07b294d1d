/*
 * libFuzzer harness for the qcow2 driver: the input is a whole image file.  The harness
 * writes it to a scratch file (the block layer has no memory-backed protocol), opens it
 * with the qcow2 driver, reads, writes, zeroes, discards, flushes and checks (repairing
 * half of the time), then reopens and checks once more.  Nothing may crash, hang or leak;
 * failing requests are fine.
 *
 * Built with -fsanitize=fuzzer under clang; with another compiler main() below mutates
 * the seed images of tests/fuzz/corpus/qcow2 (argv[1]) with seeded random byte flips,
 * mostly in the metadata at the start of each image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "sen/block.h"

/* Bounds that keep one input fast: fuzzed headers may claim huge disks and tables. */
#define IO_SPAN    (4 << 20)  /* guest range the ops touch */
#define IO_MAX     (64 << 10) /* bytes per op */
#define FILE_MAX   (1 << 20)  /* inputs larger than this are cut */
#define CHECK_FILE_MAX (256ll << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One scratch file per process: creating one per input would dominate the run time.  On
 * tmpfs when there is one, since flushes fsync. */
static const char *scratch_path(void)
{
    static char *path;

    if (!path) {
        const char *dir = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) &&
                          access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
        int fd;
        path = g_build_filename(dir, "sen-qcow2-fuzz-XXXXXX", NULL);
        fd = g_mkstemp(path);
        if (fd < 0) {
            fprintf(stderr, "qcow2-fuzz: %s: %s\n", path, g_strerror(errno));
            abort();
        }
        close(fd);
    }
    return path;
}

/*
 * The data file of an input with the external-data-file bit: always this scratch file,
 * emptied for each input, never the name the input gives (it could be any host path).
 */
static const char *scratch_data_path(void)
{
    static char *path;

    if (!path) {
        path = g_strconcat(scratch_path(), ".data", NULL);
    }
    return path;
}

/* Version 3 with incompatible bit 2 (byte 79 is the low byte of the 64-bit field at 72). */
static bool input_has_data_file(const uint8_t *data, size_t size)
{
    return size >= 80 && data[4] == 0 && data[5] == 0 && data[6] == 0 && data[7] == 3 &&
           (data[79] & 4);
}

static BlockDriverState *open_input(const char *path, bool data_file, int flags,
                                    Error **errp)
{
    Keyval *opts = NULL;

    if (data_file) {
        opts = block_keyval_new();
        block_keyval_add(opts, "data-file.filename", scratch_data_path());
    }
    return bdrv_open(path, opts, "qcow2", flags, errp);
}

static bool write_scratch(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    size_t len = MIN(size, FILE_MAX);
    bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len;

    if (!ok) {
        fprintf(stderr, "qcow2-fuzz: %s: %s\n", path, g_strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* A cheap deterministic stream derived from the input, so a crash reproduces from it. */
static uint32_t next_rand(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33);
}

static void exercise(BlockDriverState *bs, uint64_t seed, uint8_t *buf)
{
    int64_t span = MIN(bs->total_size, IO_SPAN);
    BlockCheckResult res;

    for (int k = 0; k < 6 && span > 0; k++) {
        int64_t off = next_rand(&seed) % span;
        int64_t n = MIN(span - off, 1 + next_rand(&seed) % IO_MAX);
        unsigned op = next_rand(&seed) % 6;

        if (op < 2) {
            off &= ~511;
            n = MIN(span - off, n);
        }
        switch (op) {
        case 0:
        case 1:
            (void)bdrv_pread(bs, off, n, buf);
            break;
        case 2:
            memset(buf, 0xa5 ^ k, n);
            (void)bdrv_pwrite(bs, off, n, buf);
            break;
        case 3:
            (void)bdrv_pwrite_zeroes(bs, off, n, k & 1 ? BDRV_REQ_MAY_UNMAP : 0);
            break;
        case 4:
            (void)bdrv_pdiscard(bs, off, n);
            break;
        default:
            (void)bdrv_flush(bs);
            break;
        }
        int64_t pnum, map;
        BlockDriverState *file;
        (void)bdrv_block_status(bs, off, n, &pnum, &map, &file);
    }
    /* A write through a corrupt L2 entry may have grown the (sparse) file to terabytes;
     * checking that means walking billions of clusters, too slow for a fuzz input.  The
     * flush first writes the cached tables, which can grow the file too. */
    if (bdrv_flush(bs) < 0 || bdrv_getlength(bs->file) > CHECK_FILE_MAX) {
        return;
    }
    memset(&res, 0, sizeof(res));
    (void)bs->drv->check(bs, &res, seed & 1 ? BDRV_FIX_LEAKS | BDRV_FIX_ERRORS
                                            : BDRV_FIX_NONE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_path();
    /* Never follow a backing file name from the input: it could be any host path. */
    int flags = BDRV_O_RDWR | BDRV_O_CHECK | BDRV_O_NO_BACKING;
    uint64_t seed = size;
    uint8_t *buf;
    Error *err = NULL;
    BlockDriverState *bs;

    for (size_t i = 0; i < MIN(size, 64); i++) {
        seed = seed * 31 + data[i];
    }
    bool data_file = input_has_data_file(data, size);
    if (!write_scratch(path, data, size) ||
        (data_file && !g_file_set_contents(scratch_data_path(), "", 0, NULL))) {
        abort();
    }
    bs = open_input(path, data_file, flags, &err);
    if (!bs) {
        error_free(err);
        return 0;
    }
    buf = g_malloc(IO_MAX);
    exercise(bs, seed, buf);
    bdrv_unref(bs);

    /* What the first pass wrote back (repairs, new clusters) must reopen sanely too. */
    bs = open_input(path, data_file, flags, &err);
    if (bs) {
        exercise(bs, seed ^ 0x5eed, buf);
        bdrv_unref(bs);
    } else {
        error_free(err);
    }
    g_free(buf);
    return 0;
}

#ifndef SEN_LIBFUZZER
static GPtrArray *load_corpus(const char *dir)
{
    GPtrArray *seeds = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    if (!d) {
        return seeds;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        gchar *contents;
        gsize len;
        if (g_file_get_contents(p, &contents, &len, NULL)) {
            g_ptr_array_add(seeds, g_bytes_new_take(contents, len));
        }
    }
    g_dir_close(d);
    return seeds;
}

/*
 * Stand-alone smoke run: every seed as is, then seeded random mutations of them.  With
 * QCOW2_FUZZ_SAVE=DIR in the environment each mutated input is kept as DIR/run-N.qcow2
 * and "run N" goes to stderr before it, so a message or a find reproduces from its file.
 */
int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/qcow2";
    const char *save_dir = g_getenv("QCOW2_FUZZ_SAVE");
    unsigned runs = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 300;
    GPtrArray *seeds = load_corpus(dir);
    GRand *r = g_rand_new_with_seed(0x9c02);
    unsigned n;

    if (seeds->len == 0) {
        fprintf(stderr, "qcow2-fuzz: no seed images in %s\n", dir);
        return 77;
    }
    for (n = 0; n < seeds->len; n++) {
        gsize len;
        const uint8_t *d = g_bytes_get_data(g_ptr_array_index(seeds, n), &len);
        LLVMFuzzerTestOneInput(d, len);
    }
    for (n = 0; n < runs; n++) {
        gsize len;
        const uint8_t *d = g_bytes_get_data(g_ptr_array_index(seeds, n % seeds->len), &len);
        uint8_t *img = g_memdup2(d, len);
        int flips = g_rand_int_range(r, 1, 10);
        for (int f = 0; f < flips && len > 0; f++) {
            /* Mostly the header and the first tables, sometimes anywhere. */
            size_t at = g_rand_int_range(r, 0, 4) ? g_rand_int_range(r, 0, MIN(len, 2048))
                                                  : g_rand_int_range(r, 0, len);
            img[at] = g_rand_boolean(r) ? (uint8_t)g_rand_int(r) : img[at] ^ (1u << (f % 8));
        }
        if (n % 16 == 15) {
            len = g_rand_int_range(r, 0, len + 1); /* truncated image */
        }
        if (save_dir) {
            g_autofree char *name = g_strdup_printf("run-%u.qcow2", n);
            g_autofree char *p = g_build_filename(save_dir, name, NULL);
            fprintf(stderr, "run %u\n", n);
            if (!g_file_set_contents(p, (const char *)img, len, NULL)) {
                fprintf(stderr, "qcow2-fuzz: cannot write %s\n", p);
                return 1;
            }
        }
        LLVMFuzzerTestOneInput(img, len);
        g_free(img);
    }
    g_unlink(scratch_path());
    g_unlink(scratch_data_path());
    printf("qcow2-fuzz: %u seeds, %u mutated images, no fault\n", seeds->len, runs);
    g_ptr_array_unref(seeds);
    g_rand_free(r);
    return 0;
}
#endif
