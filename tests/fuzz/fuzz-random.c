/* See fuzz-random.h. */
#include <stdlib.h>
#include "fuzz-random.h"

uint64_t fuzz_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n && i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

unsigned fuzz_random_inputs(int argc, char **argv, unsigned default_runs, guint32 seed,
                            size_t max_len)
{
    unsigned runs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : default_runs;
    GRand *r = g_rand_new_with_seed(seed);

    for (unsigned n = 0; n < runs; n++) {
        size_t len = g_rand_int_range(r, 0, max_len + 1);
        /* Exactly len bytes on the heap, so ASan sees a harness reading past its input. */
        uint8_t *buf = g_malloc(len + !len);
        for (size_t i = 0; i < len; i++) {
            buf[i] = g_rand_int(r);
        }
        LLVMFuzzerTestOneInput(buf, len);
        g_free(buf);
    }
    g_rand_free(r);
    return runs;
}
