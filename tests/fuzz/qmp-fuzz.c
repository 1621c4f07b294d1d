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

/*
 * Commands that reach host files or programs by a name the input chooses: blockdev-add
 * opens any path read-write (as QEMU's does), migrate and migrate-incoming take exec: and
 * file: URIs, netdev_add runs tap scripts.  A fuzzer that found them would open, write or
 * run the developer's files, so they are not dispatched (nor their HMP forms).
 */
static bool fuzz_reaches_host(json_t *msg)
{
    static const char *const denied[] = {
        "blockdev-add", "migrate", "migrate-incoming", "netdev_add",
    };
    const char *cmd = json_string_value(json_object_get(msg, "execute"));
    const char *oob = json_string_value(json_object_get(msg, "exec-oob"));
    json_t *args = json_object_get(msg, "arguments");
    const char *hmp = json_string_value(json_object_get(args, "command-line"));

    for (size_t i = 0; i < G_N_ELEMENTS(denied); i++) {
        if ((cmd && strcmp(cmd, denied[i]) == 0) || (oob && strcmp(oob, denied[i]) == 0)) {
            return true;
        }
    }
    return hmp && (strstr(hmp, "migrate") || strstr(hmp, "netdev_add"));
}

static void fuzz_emit(void *opaque, json_t *msg, const char *error)
{
    QmpCtx *ctx = opaque;

    if (msg && fuzz_reaches_host(msg)) {
        json_decref(msg);
        return;
    }
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
