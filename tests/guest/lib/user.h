/*
 * Running code at CPL3 (user mode).  kvm_pvm emulates CPL0 at ~1M instructions/s but runs
 * CPL3 natively, so loops that must be fast (dirtying memory, checksums) go here.
 *
 * user_init() makes the identity map user-accessible, adds user code/data segments and a
 * TSS to the GDT and claims #UD, #GP and #PF.  user_call(fn, arg) runs fn(arg) in user
 * mode on a stack of its own, interrupts off, and returns what fn returned: fn's return
 * address is a `ud2` whose #UD brings the CPU back to CPL0 (syscall/int n from CPL3 do not
 * work here).  A fault inside fn ends the test with a report.
 */
#ifndef GUEST_USER_H
#define GUEST_USER_H

#include <stdint.h>

void user_init(void);
uint64_t user_call(uint64_t (*fn)(void *arg), void *arg);

#endif
