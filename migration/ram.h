/*
 * RAM in the migration stream: the header that describes guest RAM, dirty-page
 * iteration on the source and loading on the destination (docs/migration-format.md).
 */
#ifndef SEN_MIGRATION_RAM_H
#define SEN_MIGRATION_RAM_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/machine.h"
#include "migration/stream.h"

#define MIG_PAGE_SIZE 4096u
/* Pages one RAM record may describe; the destination rejects more. */
#define MIG_RAM_MAX_PAGES 1024u

/* Counters the source publishes while it runs (read from any thread with ram_stat()). */
typedef struct RamCounters {
    uint64_t total;             /* bytes of guest RAM */
    uint64_t remaining;         /* dirty bytes still to send */
    uint64_t duplicate;         /* zero pages sent (as a flag, no data) */
    uint64_t normal;            /* pages sent with their data */
    uint64_t dirty_sync_count;  /* dirty-log synchronisations */
    uint64_t dirty_pages_rate;  /* pages dirtied per second over the last pass */
} RamCounters;

static inline uint64_t ram_stat(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

typedef struct RamSave RamSave;

/* Takes npages consecutive pages at gpa (mapped at hva), all zero or all data, to be
 * sent later (multifd); false with *errp set when it cannot. */
typedef bool (*RamPageSink)(void *opaque, uint64_t gpa, const uint8_t *hva,
                            uint32_t npages, bool zero, Error **errp);

RamSave *ram_save_new(Machine *m);
void ram_save_free(RamSave *rs);
const RamCounters *ram_save_counters(const RamSave *rs);
/* Writes the stream header and the RAM layout; turns dirty logging on; every page of
 * RAM is dirty for the first pass. */
bool ram_save_setup(RamSave *rs, MigStream *s, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Merges the accelerator's and the devices' dirty logs into the pages to send. */
bool ram_save_sync(RamSave *rs, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* Sends every page marked dirty (clearing the marks).  Stops early, returning false,
 * when *cancel becomes non-zero or the stream fails. */
bool ram_save_pass(RamSave *rs, MigStream *s, const int *cancel, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* From now on passes hand their pages to sink instead of writing RAM records into
 * their stream (multifd: the channels send them). */
void ram_save_set_sink(RamSave *rs, RamPageSink sink, void *opaque);
/* One RAM record: the header, then the data unless zero (sent from hva by reference,
 * with the checksum of what hva held just before). */
void ram_put_record(MigStream *s, uint64_t gpa, const uint8_t *hva, uint32_t npages,
                    bool zero);
/* Dirty pages known now (after the last sync, minus what was sent since). */
uint64_t ram_save_dirty_pages(const RamSave *rs);
void ram_save_stop_logging(RamSave *rs);

/* Destination: what one load keeps between records. */
typedef struct RamLoad RamLoad;
RamLoad *ram_load_new(Machine *m);
void ram_load_free(RamLoad *rl);
/* Checks the header against this machine's RAM; empties guest RAM. */
bool ram_load_setup(RamLoad *rl, MigStream *s, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* The header's version (after ram_load_setup). */
uint32_t ram_load_version(const RamLoad *rl);
/* The checks alone, RAM untouched (loadvm looks before it leaps). */
bool ram_load_check_header(Machine *m, MigStream *s, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
/* One RAM record (its type byte already read).  Multifd channel threads call it
 * concurrently on the same RamLoad, for distinct pages. */
bool ram_load_record(RamLoad *rl, MigStream *s, Error **errp) G_GNUC_WARN_UNUSED_RESULT;
/* At the END record (after every multifd channel ended): fails when a page's last data
 * did not match its checksum (migration/ram-torn.h). */
bool ram_load_finish(RamLoad *rl, Error **errp) G_GNUC_WARN_UNUSED_RESULT;

/* Record types. */
#define MIG_REC_RAM    0x01
#define MIG_REC_DEVICE 0x02
#define MIG_REC_END    0xff
/* RAM record flags */
#define MIG_RAM_ZERO   0x01

#define MIG_MAGIC "SENMIG\r\n"
/* 3: RAM data records carry their own checksum and page data is outside the stream's
 * CRC (versions 1 and 2, an older Sen's, are refused). */
#define MIG_VERSION 3
/* The same with multifd records (migration/multifd.h). */
#define MIG_VERSION_MULTIFD 4

#endif
