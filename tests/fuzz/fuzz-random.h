/*
 * Helpers shared by the libFuzzer harnesses whose input is a flat list of fixed-size
 * operations (acpi-pm, edu-ioapic, intel-iommu): reading an operand out of the input, and
 * the stand-alone driver that replaces libFuzzer when the harness is built with gcc.
 */
#ifndef TESTS_FUZZ_FUZZ_RANDOM_H
#define TESTS_FUZZ_FUZZ_RANDOM_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The n (<= 8) bytes at p as a little-endian number, whatever the host's byte order. */
uint64_t fuzz_le(const uint8_t *p, unsigned n);

/*
 * The gcc smoke run: argv[1] (or default_runs) inputs of 0..max_len random bytes from a
 * fixed seed, each passed to LLVMFuzzerTestOneInput.  Returns the number of inputs run.
 */
unsigned fuzz_random_inputs(int argc, char **argv, unsigned default_runs, guint32 seed,
                            size_t max_len);

#endif
