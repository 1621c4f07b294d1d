/*
 * libFuzzer harness for the QMP input path: bytes -> JSON reader -> dispatcher -> the
 * commands, against a real machine under the qtest accelerator (no vCPU, nothing runs).
 * The first input byte picks whether the session has negotiated capabilities, so both
 * the negotiation gate and the commands behind it are reached.
 *
 * Built with -fsanitize=fuzzer under clang; with another compiler main() below feeds
 * mutated valid requests instead so the harness still runs in `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sen/machine.h"
#include "monitor/json-reader.h"
#include "monitor/qmp-dispatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_emit(void *opaque, json_t *msg, const char *error)
{
    QmpCtx *ctx = opaque;

    if (msg) {
        json_t *resp = qmp_dispatch(ctx, msg);
        /* Every response is a return or an error with a class and a description. */
        json_t *err = json_object_get(resp, "error");
        if (!json_object_get(resp, "return") &&
            !(json_is_string(json_object_get(err, "class")) &&
              json_is_string(json_object_get(err, "desc")))) {
            fprintf(stderr, "qmp-fuzz: malformed response\n");
            abort();
        }
        json_decref(resp);
        json_decref(msg);
    }
}

static Machine *fuzz_machine(void)
{
    /* One machine for the whole process: building one per input would dominate. */
    static Machine *m;
    if (!m) {
        MachineConfig *cfg = machine_config_new();
        Error *err = NULL;
        cfg->accel = ACCEL_QTEST;
        cfg->ram_size = 16 * 1024 * 1024;
        m = machine_create(cfg, &err);
        if (!m) {
            fprintf(stderr, "qmp-fuzz: %s\n", error_get_pretty(err));
            abort();
        }
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Machine *m = fuzz_machine();
    QmpCtx ctx = { .m = m, .command_mode = size && (data[0] & 1) };

    JsonReader *r = json_reader_new(fuzz_emit, &ctx);
    machine_lock(m);
    json_reader_feed(r, data + !!size, size - !!size);
    machine_unlock(m);
    json_reader_free(r);
    /* Requests a command left behind (quit, system_reset) are not acted on here. */
    m->shutdown_requested = m->reset_requested = 0;
    return 0;
}

#ifndef SEN_LIBFUZZER
int main(int argc, char **argv)
{
    static const char *const seeds[] = {
        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}",
        "{\"execute\":\"query-status\",\"id\":[1,{\"a\":null}]}",
        "{\"execute\":\"stop\"}{\"execute\":\"cont\"}",
        "{\"execute\":\"block_resize\",\"arguments\":{\"device\":\"d\",\"size\":1}}",
        "{\"execute\":\"blockdev-snapshot-delete-internal-sync\","
        "\"arguments\":{\"device\":\"d\",\"id\":\"1\"}}",
        "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info cpus\"}}",
        "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"stop\"}}",
        "{\"execute\":\"query-qmp-schema\"}{\"execute\":\"query-chardev\"}",
        "{\"execute\":\"query-cpus-fast\"}[\"\\\"}\"]{\"exec-oob\":\"query-kvm\"}",
        "{\"execute\":\"query-blockstats\",\"arguments\":{\"query-nodes\":true}}",
    };
    unsigned iterations = argc > 1 ? (unsigned)atoi(argv[1]) : 20000;
    GRand *rng = g_rand_new_with_seed(20261127);

    for (unsigned i = 0; i < iterations; i++) {
        const char *seed = seeds[g_rand_int_range(rng, 0, G_N_ELEMENTS(seeds))];
        size_t len = strlen(seed) + 1;
        g_autofree uint8_t *buf = g_malloc(len + 16);
        buf[0] = (uint8_t)g_rand_int(rng);
        memcpy(buf + 1, seed, len - 1);
        unsigned flips = g_rand_int_range(rng, 0, 6);
        for (unsigned f = 0; f < flips; f++) {
            buf[g_rand_int_range(rng, 1, len)] = (uint8_t)g_rand_int(rng);
        }
        /* Sometimes cut it short or add random tail bytes. */
        if (g_rand_boolean(rng)) {
            len = g_rand_int_range(rng, 1, len + 1);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    g_rand_free(rng);
    printf("qmp-fuzz: %u inputs\n", iterations);
    return 0;
}
#endif
