/*
 * Multifd: guest pages over several extra connections next to the main migration stream
 * (the `multifd` capability and `multifd-channels` parameter, as QEMU names them).
 * Wire format: docs/migration-format.md, "Multifd channels".
 *
 * Source: the migration thread scans the dirty bitmap and fills batches of page runs;
 * one sender thread per channel copies a batch into its own stream (checksummed while
 * copying) and writes it.  At the end of every pass each channel gets a SYNC packet and
 * the main stream a SYNC record, and the source waits until every channel has sent it.
 * Destination: one receiver thread per channel loads pages straight into guest RAM; at
 * a SYNC packet a receiver waits until every channel reached the same SYNC.  Pages of
 * pass N+1 are therefore never applied before all pages of pass N, so a page re-sent
 * in a later pass always ends with its later content.
 */
#ifndef SEN_MIGRATION_MULTIFD_H
#define SEN_MIGRATION_MULTIFD_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/error.h"
#include "migration/ram.h"
#include "migration/stream.h"
#include "migration/transport.h"

/* Main stream record: u32 channels, u64 session id.  Right after the header. */
#define MIG_REC_MULTIFD 0x03
/* Main stream record and channel packet: u64 sequence number (1, 2, ...); in a channel
 * followed by the channel's running checksum. */
#define MIG_REC_SYNC 0x04

#define MULTIFD_MAGIC "SENMFD\r\n"
#define MULTIFD_VERSION 1
#define MULTIFD_MAX_CHANNELS 255u

/* ---- source ---- */

typedef struct MultifdSend MultifdSend;

MultifdSend *multifd_send_new(unsigned channels);
/* Writes the MULTIFD record into main, opens the channels to u (tcp or unix), sends
 * their greetings and starts their threads. */
bool multifd_send_connect(MultifdSend *mf, MigStream *main, MigUri *u, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* The RamPageSink: queues a run of pages for the channels (may wait for a free one). */
bool multifd_send_pages(void *mf, uint64_t gpa, const uint8_t *hva, uint32_t npages,
                        bool zero, Error **errp);
/* End of a pass: every queued page is sent, then a SYNC on every channel and on main.
 * last: each channel's stream ends (END and checksum) after its SYNC. */
bool multifd_send_sync(MultifdSend *mf, MigStream *main, bool last, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* The whole max-bandwidth, shared evenly by the channels. */
void multifd_send_set_rate_limit(MultifdSend *mf, uint64_t bytes_per_sec);
/* Bytes written to all channels (any thread). */
uint64_t multifd_send_bytes(MultifdSend *mf);
/* Unblocks the channels' writes (cancel; any thread while mf is alive). */
void multifd_send_shutdown(MultifdSend *mf);
/* Stops the threads and closes the channels. */
void multifd_send_free(MultifdSend *mf);

/* ---- destination ---- */

typedef struct MultifdRecv MultifdRecv;

/* Greeting: magic (8), u32 version, u64 session, u32 channel id, u32 channel count. */
#define MULTIFD_GREETING_LEN 28

/* Checks a channel's greeting against this migration; *id: the channel it claims. */
bool multifd_greeting_parse(const uint8_t *g, uint32_t channels, uint64_t session,
                            uint32_t *id, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* A connection whose greeting matched: channel id, fd (now the callee's). */
typedef void (*MultifdChannelFn)(void *opaque, uint32_t id, int fd);
/*
 * The accept window (multifd-accept.c): accepts connections on l until each of the
 * channels ids of session has greeted, handing each to got.  Connections with a bad,
 * repeated or late (MULTIFD_GREETING_TIMEOUT_S) greeting are closed and reported, and
 * never delay the others.  Fails when *cancel is set, the listener fails, or main_fd
 * hangs up before every channel came.
 */
bool multifd_accept_channels(MigListener *l, int main_fd, uint32_t channels,
                             uint64_t session, const int *cancel, MultifdChannelFn got,
                             void *opaque, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/*
 * After the MULTIFD record: accepts the source's channels on l while watching main_fd
 * (a source that gives up closes it) and starts one receiver per channel, loading into
 * rl.  *cancel non-zero stops the wait.
 */
MultifdRecv *multifd_recv_start(RamLoad *rl, MigListener *l, int main_fd, uint32_t channels,
                                uint64_t session, const int *cancel, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* A SYNC record on main: waits until every channel has passed the same SYNC. */
bool multifd_recv_sync(MultifdRecv *mr, uint64_t seq, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The END record on main: waits until every channel has ended, after the last SYNC. */
bool multifd_recv_finish(MultifdRecv *mr, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The first channel failure, if any (a failure also closes main so its reader stops). */
bool multifd_recv_check(MultifdRecv *mr, Error **errp);
uint64_t multifd_recv_bytes(MultifdRecv *mr);
/* Unblocks every channel read (any thread while mr is alive). */
void multifd_recv_shutdown(MultifdRecv *mr);
void multifd_recv_free(MultifdRecv *mr);

#endif
