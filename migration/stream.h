/*
 * The migration byte stream: buffered big-endian writes and reads over one fd, a running
 * CRC-32C of every byte except page data (docs/migration-format.md), a rate limit, and
 * a sticky error.
 *
 * A stream belongs to one thread.  After the first failure every operation is a no-op
 * and returns zeroes, so a parser can read a whole record and check once
 * (mig_stream_failed) instead of after every field.
 */
#ifndef SEN_MIGRATION_STREAM_H
#define SEN_MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "sen/error.h"

typedef struct MigStream MigStream;

/* Takes ownership of fd (closed by mig_stream_free). */
MigStream *mig_stream_new_writer(int fd);
MigStream *mig_stream_new_reader(int fd);
/*
 * A stream over something that is not an fd (savevm writes into a disk image's vm-state
 * area): read/write move up to len bytes and return how many, 0 at the end, or -errno,
 * like read(2)/write(2).  opaque belongs to the caller; mig_stream_fd returns -1.
 */
typedef struct MigStreamOps {
    ssize_t (*read)(void *opaque, void *buf, size_t len);
    ssize_t (*write)(void *opaque, const void *buf, size_t len);
} MigStreamOps;
MigStream *mig_stream_new_ops(const MigStreamOps *ops, void *opaque, bool writing);
void mig_stream_free(MigStream *s);
int mig_stream_fd(const MigStream *s);

/* Bytes per second, 0 = unlimited.  Applies to the bytes written from now on. */
void mig_stream_set_rate_limit(MigStream *s, uint64_t bytes_per_sec);
/* Bytes written to (or consumed from) the stream so far. */
uint64_t mig_stream_bytes(const MigStream *s);

void mig_put_u8(MigStream *s, uint8_t v);
void mig_put_be32(MigStream *s, uint32_t v);
void mig_put_be64(MigStream *s, uint64_t v);
void mig_put_buf(MigStream *s, const void *buf, size_t len);
/*
 * Page data: len bytes at data, sent by reference (no copy; the memory must stay
 * mapped until the next flush or checksum, and may change meanwhile) and NOT part of
 * the stream's CRC: the caller puts checksums of its own in front (RAM records).
 */
void mig_put_data(MigStream *s, const void *data, size_t len);
/* Writes the CRC-32C of everything written before it (not itself part of the CRC). */
void mig_put_checksum(MigStream *s);
/* Sends what is buffered. */
void mig_stream_flush(MigStream *s);

uint8_t mig_get_u8(MigStream *s);
uint32_t mig_get_be32(MigStream *s);
uint64_t mig_get_be64(MigStream *s);
void mig_get_buf(MigStream *s, void *buf, size_t len);
/* What mig_put_data wrote: len bytes into buf, outside the stream's CRC (the caller
 * checks them). */
void mig_get_data(MigStream *s, void *buf, size_t len);
/* Consumes 1..max bytes of such data (outside the stream's CRC) from the stream's own
 * buffer (reading when it is empty) and points *p at them; valid until the next call
 * on s.  0 (and *p NULL) when max is 0 or the stream failed.  For data that goes
 * somewhere with a system call anyway (pwrite into guest RAM's backing file): no copy
 * through the caller. */
size_t mig_get_chunk(MigStream *s, const void **p, size_t max);
/* Reads the trailing checksum and compares it with the CRC of everything read before. */
bool mig_get_checksum_ok(MigStream *s);

/* Records the first failure; later ones are ignored. */
void mig_stream_set_error(MigStream *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
bool mig_stream_failed(const MigStream *s);
/* Sets *errp from the recorded failure; returns false when there was one. */
bool mig_stream_check(const MigStream *s, Error **errp);

#include "migration/crc32c.h"

#endif
