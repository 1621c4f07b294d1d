/*
 * vmstate_load_all on hostile device state: the input is a device-state blob without its
 * trailing CRC (the harness appends a correct one, so mutations reach the section and
 * field decoders and every device's post_load instead of stopping at the checksum).
 * The machine is one PC board under qtest with PCI and virtio devices, built once; a
 * load may fail or succeed, it must never crash, hang or touch memory it should not.
 * With gcc, main() mutates a blob saved from that machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "sen/config.h"
#include "sen/machine.h"
#include "sen/vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Machine *fuzz_machine(void)
{
    /* One machine for the whole process: building one per input would dominate. */
    static Machine *m;
    if (!m) {
        char *argv[] = { "sen", "-accel", "qtest", "-M", "pc", "-m", "16M", "-display",
                         "none", "-serial", "null", "-device", "pci-testdev", "-device",
                         "virtio-rng-pci", "-device", "virtio-serial-pci", "-device",
                         "virtio-balloon-pci", "-device", "virtio-net-pci", NULL };
        bool exit_early = false;
        Error *err = NULL;
        MachineConfig *cfg = cmdline_parse(G_N_ELEMENTS(argv) - 1, argv, &exit_early, &err);
        m = cfg ? machine_create(cfg, &err) : NULL;
        if (!m) {
            fprintf(stderr, "vmstate-fuzz: %s\n", error_get_pretty(err));
            abort();
        }
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Machine *m = fuzz_machine();
    g_autofree uint8_t *blob = g_malloc(size + 4);
    memcpy(blob, data, size);
    uint32_t crc = (uint32_t)crc32(0L, data, size);
    for (unsigned i = 0; i < 4; i++) {
        blob[size + i] = (uint8_t)(crc >> (8 * i));
    }
    Error *err = NULL;
    if (!vmstate_load_all(m, blob, size + 4, &err)) {
        error_free(err);
    }
    m->shutdown_requested = m->reset_requested = 0;
    return 0;
}

#ifndef SEN_LIBFUZZER
int main(int argc, char **argv)
{
    Machine *m = fuzz_machine();
    g_autoptr(GByteArray) seed = g_byte_array_new();
    Error *err = NULL;
    if (!vmstate_save_all(m, seed, &err)) {
        fprintf(stderr, "vmstate-fuzz: %s\n", error_get_pretty(err));
        return 1;
    }
    g_byte_array_set_size(seed, seed->len - 4); /* the harness adds the CRC */
    unsigned iterations = argc > 1 ? (unsigned)atoi(argv[1]) : 10000;
    GRand *rng = g_rand_new_with_seed(20261127);

    for (unsigned i = 0; i < iterations; i++) {
        g_autofree uint8_t *buf = g_memdup2(seed->data, seed->len);
        size_t len = seed->len;
        unsigned flips = g_rand_int_range(rng, 1, 9);
        for (unsigned f = 0; f < flips; f++) {
            size_t at = g_rand_int_range(rng, 0, len);
            /* Mostly small changes to numbers (counts, indices), sometimes any byte. */
            buf[at] = g_rand_boolean(rng) ? (uint8_t)(buf[at] + g_rand_int_range(rng, -2, 3))
                                          : (uint8_t)g_rand_int(rng);
        }
        if (g_rand_int_range(rng, 0, 8) == 0) {
            len = g_rand_int_range(rng, 0, len + 1);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    /* After all that, the machine still takes its own unmodified state. */
    g_byte_array_set_size(seed, seed->len + 4);
    uint32_t crc = (uint32_t)crc32(0L, seed->data, seed->len - 4);
    for (unsigned i = 0; i < 4; i++) {
        seed->data[seed->len - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    if (!vmstate_load_all(m, seed->data, seed->len, &err)) {
        fprintf(stderr, "vmstate-fuzz: the saved state no longer loads: %s\n",
                error_get_pretty(err));
        return 1;
    }
    g_rand_free(rng);
    printf("vmstate-fuzz: %u inputs\n", iterations);
    return 0;
}
#endif
