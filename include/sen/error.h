/*
 * Error reporting: the Error ** convention.
 *
 * A fallible function takes `Error **errp` last and also returns bool / pointer / -errno
 * so callers can test the return value.  On failure it sets *errp exactly once (when errp
 * is non-NULL); on success it never touches *errp.  Messages name the user's input, e.g.
 * "-m 12X: invalid size suffix 'X'".  Only main() decides to exit.
 */
#ifndef SEN_ERROR_H
#define SEN_ERROR_H

#include <stdbool.h>
#include <glib.h>

typedef struct Error Error;

void error_setg(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Appends ": strerror(errnum)" to the message. */
void error_setg_errno(Error **errp, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Prefixes an already-set error's message (no-op when errp or *errp is NULL). */
void error_prepend(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Moves local into *dst (or frees it when dst is NULL or already set). */
void error_propagate(Error **dst, Error *local);
const char *error_get_pretty(const Error *err);
/* QEMU's hints: text for a person (each line ending in "\n") that error_report_err prints
 * after the message and QMP leaves out of the error's desc ("Is another process using
 * the image [x]?\n").  No-op when errp or *errp is NULL. */
void error_append_hint(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* The hints appended so far, or NULL. */
const char *error_get_hint(const Error *err);
void error_free(Error *err);

/* Prints "sen: <msg>\n" (program name set by error_set_progname) to stderr. */
void error_set_progname(const char *name);
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Reports err's message like error_report() and frees it. */
void error_report_err(Error *err);

#endif
