/*
 * libqtest: start `sen -accel qtest` and drive it over the qtest text protocol.
 *
 * Sen connects to a unix socket the test listens on (`-qtest unix:PATH`).  Every helper
 * sends one command and waits for its reply; "IRQ raise/lower N" lines that arrive in
 * between are recorded for qtest_get_irq().  A helper whose reply is not "OK" fails the
 * test (g_assert), except qtest_cmd(), which returns the raw reply.
 *
 * When the test process dies, the socket closes and Sen shuts itself down, so a failed
 * assertion never leaves a VMM behind.
 */
#ifndef SEN_LIBQTEST_H
#define SEN_LIBQTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

typedef struct QTestState QTestState;

/* $SEN_BUILD_DIR/sen when it exists and is executable, else NULL. */
const char *qtest_sen_binary(void);
/* In a GTest case: false (and the case marked skipped) when Sen is not built. */
bool qtest_have_sen(void);
/* A new temporary file (g_file_open_tmp's tmpl) holding data[0..len); returns its path,
 * to g_free (and unlink) when done.  Fails the test if it cannot be written. */
char *qtest_write_tmp_file(const char *tmpl, const void *data, size_t len);

/*
 * Starts `sen -accel qtest -qtest unix:PATH -nodefaults -display none -machine pc
 * EXTRA_ARGS` (extra_args split as a shell would, no expansion) and waits for it to connect.
 * Fails the test if Sen exits or does not connect within 30 s.
 */
QTestState *qtest_init(const char *extra_args);
QTestState *qtest_initf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Closes the connection, waits for Sen to exit and asserts that it exited with 0. */
void qtest_quit(QTestState *s);
/* Waits up to timeout_ms for Sen to exit on its own; returns its exit status, or
 * 128 + signal number, or -1 on timeout (then Sen is killed).  Frees s. */
int qtest_wait_exit(QTestState *s, int timeout_ms);

/* Sends one raw line (no newline needed) without waiting for a reply. */
void qtest_send_line(QTestState *s, const char *line);
/* Reads the next reply line (IRQ lines are consumed on the way); NULL when Sen closed
 * the connection.  Caller frees. */
char *qtest_recv_reply(QTestState *s);
/* Sends a line and returns its reply (caller frees); the test fails if Sen hangs up. */
char *qtest_cmd(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

void qtest_outb(QTestState *s, uint16_t port, uint8_t value);
void qtest_outw(QTestState *s, uint16_t port, uint16_t value);
void qtest_outl(QTestState *s, uint16_t port, uint32_t value);
uint8_t qtest_inb(QTestState *s, uint16_t port);
uint16_t qtest_inw(QTestState *s, uint16_t port);
uint32_t qtest_inl(QTestState *s, uint16_t port);

void qtest_writeb(QTestState *s, uint64_t addr, uint8_t value);
void qtest_writew(QTestState *s, uint64_t addr, uint16_t value);
void qtest_writel(QTestState *s, uint64_t addr, uint32_t value);
void qtest_writeq(QTestState *s, uint64_t addr, uint64_t value);
uint8_t qtest_readb(QTestState *s, uint64_t addr);
uint16_t qtest_readw(QTestState *s, uint64_t addr);
uint32_t qtest_readl(QTestState *s, uint64_t addr);
uint64_t qtest_readq(QTestState *s, uint64_t addr);

/* PCI configuration space of bus 0 through the CF8/CFC mechanism (reg 4-byte aligned
 * for the l forms, 2-byte for w). */
uint32_t qtest_pci_cfg_readl(QTestState *s, unsigned devfn, unsigned reg);
uint16_t qtest_pci_cfg_readw(QTestState *s, unsigned devfn, unsigned reg);
void qtest_pci_cfg_writel(QTestState *s, unsigned devfn, unsigned reg, uint32_t val);

/* Guest-physical buffers of any size (split into protocol-sized chunks). */
void qtest_memread(QTestState *s, uint64_t addr, void *buf, size_t size);
void qtest_memwrite(QTestState *s, uint64_t addr, const void *buf, size_t size);
void qtest_bufread(QTestState *s, uint64_t addr, void *buf, size_t size);   /* base64 */
void qtest_bufwrite(QTestState *s, uint64_t addr, const void *buf, size_t size);
void qtest_memset(QTestState *s, uint64_t addr, uint8_t value, size_t size);

/* The virtual clock: each returns the clock after the command, in ns. */
int64_t qtest_clock_step(QTestState *s, int64_t ns);
int64_t qtest_clock_step_next(QTestState *s);
int64_t qtest_clock_set(QTestState *s, int64_t ns);

/* Starts reporting interrupt lines ("ioapic" on the PC). */
void qtest_irq_intercept_in(QTestState *s, const char *path);
/* Level of a GSI as last reported (after a round trip, so it is current). */
bool qtest_get_irq(QTestState *s, unsigned gsi);

/* Helpers for tests that give Sen more sockets (e.g. a serial port's chardev). */
int qtest_unix_listen(const char *path);
/* Returns the connected fd, or -1 after timeout_ms. */
int qtest_unix_accept(int listen_fd, int timeout_ms);

#endif
