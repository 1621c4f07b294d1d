/*
 * Logging for events caused by the guest.  A guest can trigger these at any rate, so each
 * call site owns a RateLimit and at most a few lines per second reach stderr; the number
 * of suppressed lines is reported with the next one that gets through.
 */
#ifndef SEN_LOG_H
#define SEN_LOG_H

#include <stdint.h>
#include <glib.h>

typedef struct RateLimit {
    int64_t window_start_ns;
    unsigned printed;    /* lines printed in the current window */
    unsigned suppressed; /* lines dropped since the last printed one */
} RateLimit;

/* "sen: guest error: <msg>", at most 5 lines per second per RateLimit. */
void log_guest_error(RateLimit *rl, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#endif
