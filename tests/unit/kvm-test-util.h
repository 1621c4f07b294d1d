/*
 * A Machine built by hand around real KVM for unit tests that run tiny hand-assembled
 * guests: flat RAM from 0, one test I/O device, kvm_accel_ops, and no board.
 */
#ifndef SEN_TESTS_KVM_TEST_UTIL_H
#define SEN_TESTS_KVM_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "accel/accel.h"

/* NULL when KVM can create a VM here, else why not (for g_test_skip). */
const char *kvm_test_unusable_reason(void);

/* cpus vCPUs, ram_size bytes of RAM at 0, ops at port [port, port + 0x10). */
Machine *kvm_test_machine_new(unsigned cpus, uint64_t ram_size, uint16_t port,
                              const IoOps *ops, void *opaque);
/* The same with -accel kvm,dirty-ring-size=dirty_ring_size; NULL (and *errp set) when
 * KVM refuses the VM. */
Machine *kvm_test_machine_try_new(unsigned cpus, uint64_t ram_size, uint16_t port,
                                  const IoOps *ops, void *opaque, uint32_t dirty_ring_size,
                                  Error **errp);
void kvm_test_machine_free(Machine *m);

/* Resumes the vCPUs until a shutdown or stop request (and a reset one when
 * stop_on_reset), then pauses them; fails the test after wait_us. */
void kvm_test_run(Machine *m, bool stop_on_reset, gint64 wait_us);

#endif
