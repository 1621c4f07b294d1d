/*
 * Migration transports: the URIs of QEMU's `migrate` and `-incoming`.
 *
 *   tcp:HOST:PORT   ([v6addr] allowed; an empty HOST listens on every address)
 *   unix:PATH
 *   exec:CMD        /bin/sh -c CMD; outgoing writes its stdin, incoming reads its stdout
 *   fd:N            an already open file descriptor (inherited, number N)
 *   fd:NAME         a descriptor passed to QMP getfd under NAME (taken by the parse)
 *   file:PATH       outgoing creates/truncates PATH, incoming reads it
 *
 * Parsing is separate from connecting so that a bad URI is a synchronous QMP error while
 * the (blocking) connect and accept happen in the migration threads.
 */
#ifndef SEN_MIGRATION_TRANSPORT_H
#define SEN_MIGRATION_TRANSPORT_H

#include <stdbool.h>
#include <sys/types.h>
#include "sen/error.h"

typedef enum MigTransportKind {
    MIG_TRANSPORT_TCP,
    MIG_TRANSPORT_UNIX,
    MIG_TRANSPORT_EXEC,
    MIG_TRANSPORT_FD,
    MIG_TRANSPORT_FILE,
} MigTransportKind;

typedef struct MigUri {
    MigTransportKind kind;
    char *uri;    /* as given, for messages */
    char *host;   /* tcp */
    char *port;   /* tcp */
    char *path;   /* unix, file; exec: the command */
    int fd;       /* fd */
    bool fd_owned; /* fd:NAME: taken from getfd's names, closed by mig_uri_free */
} MigUri;

MigUri *mig_uri_parse(const char *uri, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
void mig_uri_free(MigUri *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigUri, mig_uri_free)

/* Outgoing: a connected fd to write the stream to, or -1.  exec: *child is the command
 * (reap with mig_child_reap); otherwise *child = 0. */
int mig_connect(MigUri *u, pid_t *child, Error **errp);

/* Incoming: listen (tcp, unix) or open (file, fd, exec) now; accept later. */
typedef struct MigListener {
    MigUri *uri;
    int listen_fd;   /* tcp, unix; -1 otherwise */
    int ready_fd;    /* file, fd, exec: the stream itself until accepted */
    pid_t child;     /* exec */
} MigListener;

MigListener *mig_listen(const char *uri, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Blocks until the source connects; the stream fd, or -1.  Called once. */
int mig_accept(MigListener *l, Error **errp);
/* Makes a blocked mig_accept return (any thread). */
void mig_listener_interrupt(MigListener *l);
void mig_listener_free(MigListener *l);

/* Waits for an exec: command; kills it first when kill_it. */
void mig_child_reap(pid_t child, bool kill_it);

#endif
