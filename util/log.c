/* Rate-limited logging of guest-caused errors: see include/sen/log.h. */
#include <stdarg.h>
#include <stdio.h>
#include "sen/log.h"

enum { LINES_PER_WINDOW = 5 };
#define WINDOW_NS (1000 * 1000 * 1000LL)

void log_guest_error(RateLimit *rl, const char *fmt, ...)
{
    int64_t now = g_get_monotonic_time() * 1000;

    if (now - rl->window_start_ns >= WINDOW_NS) {
        rl->window_start_ns = now;
        rl->printed = 0;
    }
    if (rl->printed >= LINES_PER_WINDOW) {
        rl->suppressed++;
        return;
    }
    rl->printed++;

    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (rl->suppressed) {
        fprintf(stderr, "sen: guest error: %s (%u similar messages suppressed)\n", msg,
                rl->suppressed);
        rl->suppressed = 0;
    } else {
        fprintf(stderr, "sen: guest error: %s\n", msg);
    }
}
