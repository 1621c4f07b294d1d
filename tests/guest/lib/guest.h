/*
 * The guest kit: a freestanding library for tiny 64-bit test guests.
 *
 * The entry code (entry.S) boots from multiboot v1 or Xen PVH in 32-bit protected mode,
 * identity-maps the first 4 GiB with 2 MiB pages, enters long mode and calls
 * guest_main() with COM1 and an IDT ready.  A test ends with guest_pass() (debug-exit code
 * 0x10, process status 33) or guest_fail() (code 0x11, status 35); an exception or a
 * return from guest_main() is a failure.  See docs/guest-kit.md.
 *
 * Everything here runs at CPL0, which kvm_pvm emulates at ~1M instructions/s: keep loops
 * short and use port reads (guest_io_delay) to pace waits, so a bound measured in
 * iterations is also a bound in time on fast hosts.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "layout.h"

#define GUEST_EXIT_PASS 0x10 /* VMM exits with (0x10 << 1) | 1 = 33 */
#define GUEST_EXIT_FAIL 0x11 /* 35 */

/* ---- the test's entry point, called on the boot CPU ---- */
void guest_main(void);

/* ---- port I/O ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* ---- MMIO, MSRs, CPU control ---- */
/* A pointer to a physical (= virtual) address; hides the constant from gcc, which
 * otherwise warns about dereferencing small constant addresses. */
static inline void *phys_ptr(uintptr_t addr)
{
    __asm__("" : "+r"(addr));
    return (void *)addr;
}
static inline uint32_t mmio_read32(uintptr_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uintptr_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* sti takes effect after the next instruction, so no interrupt slips in before hlt. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* One port read (COM1's line status): a VM exit, so at least ~1 µs on any host. */
void guest_io_delay(void);
void guest_delay(unsigned n); /* n × guest_io_delay() */

/* ---- spinlocks (xchg is implicitly locked) ---- */
typedef struct {
    volatile uint32_t v;
} Spinlock;
void spin_lock(Spinlock *l);
void spin_unlock(Spinlock *l);

/* ---- strings (the compiler may emit calls to the mem* ones) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* ---- serial console (COM1, polled) and formatted output ---- */
void serial_init(void);
void serial_putc(char c);
/* %d %i %u %x %X %s %c %p %%, with l/ll/z sizes, a field width and 0-padding. */
int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int guest_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whole calls are atomic with respect to other CPUs. */
void guest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- ending a test ---- */
void guest_exit(uint32_t code) __attribute__((noreturn));
void guest_pass(void) __attribute__((noreturn));
void guest_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Prints "ok: ..." or "FAIL: ..."; a failed check ends the test. */
#define GUEST_CHECK(cond, ...)                                    \
    do {                                                          \
        if (cond) {                                               \
            guest_printf("ok: ");                                 \
            guest_printf(__VA_ARGS__);                            \
            guest_printf("\n");                                   \
        } else {                                                  \
            guest_fail(__VA_ARGS__);                              \
        }                                                         \
    } while (0)

/* ---- boot information ---- */
typedef enum { BOOT_MULTIBOOT = 1, BOOT_PVH = 2 } BootProtocol;
typedef struct {
    uint64_t base, len;
    uint32_t type; /* e820: 1 RAM, 2 reserved, 3 ACPI, 4 NVS, 5 bad */
} MemRegion;
#define BOOT_MAX_REGIONS 32
typedef struct {
    BootProtocol protocol;
    char cmdline[256];
    MemRegion mem[BOOT_MAX_REGIONS];
    unsigned nr_mem;
    uint64_t rsdp; /* PVH only; 0 = search for it */
} BootInfo;
extern BootInfo boot_info;
const char *boot_protocol_name(BootProtocol p);
/* Value of "key=" on the command line (decimal or 0x hex), false if absent or bad. */
bool cmdline_get_uint(const char *key, uint64_t *val);

/* CPUs the firmware tables describe: the MP table if there is one, else the ACPI MADT.
 * Returns the number of enabled processors (0 if neither table was found) and names the
 * source in *source. */
unsigned firmware_count_cpus(const char **source);
/* The ACPI table with this signature listed in the XSDT (else RSDT), or NULL. */
const uint8_t *find_acpi_table(const char *sig);

/* ---- interrupts ---- */
typedef struct {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
} IntrFrame;
typedef void (*IntrHandler)(IntrFrame *f);
void idt_init(void);  /* builds the IDT (once) */
void idt_load(void);  /* loads it on this CPU */
void idt_set_handler(uint8_t vector, IntrHandler h);

/* ---- legacy PIC ---- */
/* Remaps both 8259s to vectors 0x20-0x2f and masks every line, so only the IOAPIC and
 * the LAPIC deliver (a spurious IRQ 7/15 lands on a vector we ignore). */
void pic_disable(void);

/* ---- local APIC (xAPIC, MMIO at 0xfee00000) ---- */
#define LAPIC_BASE 0xfee00000UL
#define LAPIC_ID 0x020
#define LAPIC_VER 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ESR 0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0
#define LAPIC_SPURIOUS_VECTOR 0xff
static inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }
void lapic_enable(void); /* software-enable, TPR 0, spurious vector 0xff */
uint32_t lapic_id(void);
void lapic_eoi(void);
/* Sends an IPI and waits (bounded) for delivery; false if it stayed pending. */
bool lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_lo);
#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600
#define ICR_ASSERT 0x00004000
#define ICR_LEVEL 0x00008000
#define ICR_ALL_BUT_SELF 0x000c0000
#define ICR_PENDING 0x00001000

/* ---- IOAPIC (0xfec00000) ---- */
#define IOAPIC_BASE 0xfec00000UL
uint32_t ioapic_read(uint32_t reg);
void ioapic_write(uint32_t reg, uint32_t v);
unsigned ioapic_max_pins(void);
/* Fixed delivery, physical destination, active high, edge triggered. */
void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest_apic_id);
void ioapic_mask(unsigned pin);

/* ---- CMOS / RTC NVRAM ---- */
uint8_t cmos_read(uint8_t reg);
void cmos_write(uint8_t reg, uint8_t v);

/* ---- SMP ---- */
typedef void (*ApEntry)(unsigned cpu_index);
/* Copies the real-mode trampoline to 0x8000 and sends INIT-SIPI-SIPI to all other CPUs;
 * each AP gets its own stack, this IDT, an enabled LAPIC, and calls fn with its index
 * (1, 2, ... in arrival order).  Returns at once; fn must not return (it may call
 * smp_park()). */
void smp_start_aps(ApEntry fn);
void smp_park(void) __attribute__((noreturn));

#endif
