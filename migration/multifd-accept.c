/*
 * Multifd, destination side: the accept window (see multifd.h).
 *
 * While the destination waits for the source's channels, anybody can connect to the
 * listening socket: a port scanner, a client that sends nothing, one that sends garbage,
 * a channel of another migration.  Such a connection must neither take a channel's
 * place nor make the migration wait for it, so a connection counts as a channel only
 * once its whole greeting has arrived and matches this migration.  The greetings of all
 * waiting connections are watched together (poll + MSG_PEEK, nothing consumed, so the
 * channel's stream still reads and checksums its greeting itself); a bad greeting closes
 * that connection alone, and one not complete within MULTIFD_GREETING_TIMEOUT_S is
 * closed too, so strays never pile up.
 *
 * At most MULTIFD_MAX_PENDING connections wait at once.  A full window makes room by
 * closing a stray, never a connection younger than MULTIFD_GREETING_GRACE_MS: a real
 * channel's greeting follows its connect within a round trip, so however many
 * connections come after it, it gets that long to greet.  The stray closed is the
 * oldest that sent nothing (then the oldest with part of a greeting); when every
 * connection is still in its grace, new ones wait in the listen backlog.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>
#include "migration/multifd.h"

/* The source writes its greeting right after connecting; 5 s is generous for that on
 * any network, and bounds how long a silent connection holds a file descriptor. */
#define MULTIFD_GREETING_TIMEOUT_S 5
/* Connections waiting for their greeting at once (see above for who makes room). */
#define MULTIFD_MAX_PENDING 16
/* How long a new connection is safe from being closed to make room for another. */
#define MULTIFD_GREETING_GRACE_MS 1000
/* Refused connections reported on stderr per migration (a scanner may send many). */
#define MULTIFD_MAX_REPORTED 5
/* The poll interval: a cancel is noticed without a wake-up, and a greeting that arrived
 * in pieces is looked at again. */
#define MULTIFD_POLL_MS 200
#define MULTIFD_PARTIAL_POLL_MS 10

typedef struct Pending {
    int fd;
    int64_t accepted_us;  /* g_get_monotonic_time() */
    int64_t deadline_us;
    bool partial;         /* part of the greeting is there: peek again soon */
} Pending;

typedef struct AcceptWindow {
    MigListener *l;
    uint32_t channels;
    uint64_t session;
    bool *id_seen;
    Pending pending[MULTIFD_MAX_PENDING];
    unsigned npending;
    unsigned refused;
} AcceptWindow;

bool multifd_greeting_parse(const uint8_t *g, uint32_t channels, uint64_t session,
                            uint32_t *id, Error **errp)
{
    uint32_t version, n;
    uint64_t sess;

    if (memcmp(g, MULTIFD_MAGIC, 8) != 0) {
        error_setg(errp, "not a Sen multifd channel (bad magic)");
        return false;
    }
    memcpy(&version, g + 8, 4);
    memcpy(&sess, g + 12, 8);
    memcpy(id, g + 20, 4);
    memcpy(&n, g + 24, 4);
    version = GUINT32_FROM_BE(version);
    sess = GUINT64_FROM_BE(sess);
    *id = GUINT32_FROM_BE(*id);
    n = GUINT32_FROM_BE(n);
    if (version != MULTIFD_VERSION) {
        error_setg(errp, "multifd channel version %u is not supported (this Sen reads "
                   "version %u)", version, MULTIFD_VERSION);
        return false;
    }
    if (sess != session || n != channels) {
        error_setg(errp, "the connection belongs to another migration (session or "
                   "channel count differs)");
        return false;
    }
    if (*id >= channels) {
        error_setg(errp, "multifd channel id %u is out of range", *id);
        return false;
    }
    return true;
}

/* Closes pending connection i (reported, up to a limit) and forgets it. */
static void refuse(AcceptWindow *w, unsigned i, const char *why)
{
    if (w->refused < MULTIFD_MAX_REPORTED) {
        warn_report("%s: refused a connection in the multifd accept window: %s%s",
                    w->l->uri->uri, why,
                    w->refused + 1 == MULTIFD_MAX_REPORTED ? " (further ones not reported)"
                                                           : "");
    }
    w->refused++;
    close(w->pending[i].fd);
    w->pending[i] = w->pending[--w->npending];
}

static void take(AcceptWindow *w, unsigned i)
{
    w->pending[i] = w->pending[--w->npending];
}

/*
 * The pending connection a full window closes to make room: past its grace, silent
 * before partial, oldest first.  -1 when every one is still in its grace; then
 * *grace_end_us is when the first grace ends.
 */
static int pick_stray(const AcceptWindow *w, int64_t now, int64_t *grace_end_us)
{
    int best = -1;
    *grace_end_us = INT64_MAX;
    for (unsigned i = 0; i < w->npending; i++) {
        const Pending *p = &w->pending[i];
        int64_t grace_end = p->accepted_us + MULTIFD_GREETING_GRACE_MS * 1000;
        if (grace_end > now) {
            *grace_end_us = MIN(*grace_end_us, grace_end);
            continue;
        }
        if (best < 0 || p->partial < w->pending[best].partial ||
            (p->partial == w->pending[best].partial &&
             p->accepted_us < w->pending[best].accepted_us)) {
            best = (int)i;
        }
    }
    return best;
}

/* Whether one more connection may be accepted now (making room if needed); if not,
 * *retry_us is when it may. */
static bool have_room(const AcceptWindow *w, int64_t now, int64_t *retry_us)
{
    *retry_us = INT64_MAX;
    return w->npending < MULTIFD_MAX_PENDING || pick_stray(w, now, retry_us) >= 0;
}

/* A readable listener (the caller saw have_room): one more pending connection, making
 * room first when the window is full.  Without room the connection stays in the
 * listen backlog.  False on a listener failure. */
static bool accept_one(AcceptWindow *w, Error **errp)
{
    int64_t now = g_get_monotonic_time(), unused;
    int stray = w->npending < MULTIFD_MAX_PENDING ? -1 : pick_stray(w, now, &unused);
    if (w->npending == MULTIFD_MAX_PENDING && stray < 0) {
        return true;
    }
    int fd = accept4(w->l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) {
            return true;
        }
        error_setg_errno(errp, errno, "%s: accept", w->l->uri->uri);
        return false;
    }
    if (stray >= 0) {
        refuse(w, (unsigned)stray, "too many connections without a greeting");
    }
    w->pending[w->npending++] = (Pending) {
        .fd = fd,
        .accepted_us = now,
        .deadline_us = now + MULTIFD_GREETING_TIMEOUT_S * G_USEC_PER_SEC,
    };
    return true;
}

/*
 * Looks at pending connection i's greeting.  Returns true when the connection left the
 * pending set (a channel now, or refused).
 */
static bool examine(AcceptWindow *w, unsigned i, MultifdChannelFn got, void *opaque)
{
    Pending *p = &w->pending[i];
    uint8_t g[MULTIFD_GREETING_LEN];
    ssize_t n = recv(p->fd, g, sizeof(g), MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        p->partial = false;
        return false;
    }
    if (n < 0) {
        refuse(w, i, g_strerror(errno));
        return true;
    }
    if (n > 0 && memcmp(g, MULTIFD_MAGIC, MIN((size_t)n, strlen(MULTIFD_MAGIC))) != 0) {
        /* Garbage from its first bytes: no need to wait for the rest. */
        refuse(w, i, "not a Sen multifd channel (bad magic)");
        return true;
    }
    if ((size_t)n < sizeof(g)) {
        /* Peeking again sees the same bytes plus what came since; a peer that closed
         * after a short greeting makes no more progress and times out. */
        struct pollfd hup = { .fd = p->fd, .events = POLLRDHUP };
        if (n == 0 || (poll(&hup, 1, 0) == 1 && hup.revents)) {
            refuse(w, i, "closed before sending a whole greeting");
            return true;
        }
        p->partial = true;
        return false;
    }
    Error *err = NULL;
    uint32_t id;
    if (!multifd_greeting_parse(g, w->channels, w->session, &id, &err)) {
        refuse(w, i, error_get_pretty(err));
        error_free(err);
        return true;
    }
    if (w->id_seen[id]) {
        /* The source opens each id once: a repeat is not ours. */
        char *why = g_strdup_printf("multifd channel id %u is repeated", id);
        refuse(w, i, why);
        g_free(why);
        return true;
    }
    w->id_seen[id] = true;
    int fd = p->fd;
    take(w, i);
    got(opaque, id, fd);
    return true;
}

bool multifd_accept_channels(MigListener *l, int main_fd, uint32_t channels,
                             uint64_t session, const int *cancel, MultifdChannelFn got,
                             void *opaque, Error **errp)
{
    if (l->listen_fd < 0) {
        error_setg(errp, "%s: multifd is not supported by current protocol", l->uri->uri);
        return false;
    }
    AcceptWindow w = { .l = l, .channels = channels, .session = session,
                       .id_seen = g_new0(bool, channels) };
    uint32_t accepted = 0;
    bool ok = true;
    /* The source closed main.  Its hang-up stays readable: polled again, every poll
     * would return at once, and a partial greeting that holds the window open until
     * its deadline would keep this loop spinning. */
    bool main_hup = false;

    while (ok && accepted < channels) {
        int64_t now = g_get_monotonic_time(), retry_us;
        /* A full window in its grace: new connections wait in the backlog. */
        bool room = have_room(&w, now, &retry_us);
        struct pollfd p[2 + MULTIFD_MAX_PENDING] = {
            { .fd = room ? l->listen_fd : -1, .events = POLLIN },
            { .fd = main_hup ? -1 : main_fd, .events = POLLRDHUP },
        };
        int timeout = MULTIFD_POLL_MS;
        if (!room) {
            timeout = MIN(timeout, (int)((retry_us - now) / 1000 + 1));
        }
        unsigned np = w.npending;
        for (unsigned i = 0; i < np; i++) {
            /* A partial greeting stays readable: poll it by time, not by data. */
            p[2 + i] = (struct pollfd) {
                .fd = w.pending[i].partial ? -1 : w.pending[i].fd, .events = POLLIN,
            };
            int64_t left_ms = (w.pending[i].deadline_us - now) / 1000 + 1;
            timeout = MIN(timeout, (int)MAX(left_ms, 0));
            if (w.pending[i].partial) {
                timeout = MIN(timeout, MULTIFD_PARTIAL_POLL_MS);
            }
        }
        int n = poll(p, 2 + np, timeout);
        if (g_atomic_int_get(cancel)) {
            error_setg(errp, "incoming migration cancelled");
            ok = false;
            break;
        }
        if (n < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "%s: poll", l->uri->uri);
            ok = false;
            break;
        }
        bool progress = false;
        /* Pending connections first, from the end, so that removing one (the last
         * moves into its place) never skips another; new ones are added after. */
        now = g_get_monotonic_time();
        for (unsigned i = np; i-- > 0;) {
            bool look = w.pending[i].partial || (n > 0 && p[2 + i].revents);
            if (look && examine(&w, i, got, opaque)) {
                progress = true;
                continue;
            }
            /* Part of a greeting came: the main stream's hang-up can wait for the rest. */
            progress |= w.pending[i].partial;
            if (w.pending[i].deadline_us <= now) {
                refuse(&w, i, "no greeting within " G_STRINGIFY(MULTIFD_GREETING_TIMEOUT_S)
                       " s");
            }
        }
        accepted = 0;
        for (uint32_t id = 0; id < channels; id++) {
            accepted += w.id_seen[id];
        }
        /* A waiting connection before the main stream's hang-up: a quick source may
         * have sent everything and closed main while its channels wait in the
         * backlog. */
        /* A full window in its grace: channels may wait in the backlog behind it. */
        progress |= !room;
        if (room && n > 0 && p[0].revents) {
            ok = accept_one(&w, errp);
            progress = true;
        }
        main_hup |= n > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR));
        if (ok && accepted < channels && !progress && main_hup && n >= 0) {
            error_setg(errp, "%s: the source closed the migration stream before opening "
                       "all its multifd channels", l->uri->uri);
            ok = false;
        }
    }
    while (w.npending) {
        close(w.pending[--w.npending].fd);
    }
    g_free(w.id_seen);
    return ok;
}
