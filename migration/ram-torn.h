/*
 * The destination's torn pages: pages whose last data record did not match that record's
 * data checksum (docs/migration-format.md, "Torn pages").
 *
 * The source checksums page data just before the kernel copies it, straight from guest
 * RAM, and the guest may write a page in between.  Such a write is in the dirty log, so
 * the page is sent again later (at the latest in the final round, with the vCPUs
 * stopped).  A record whose data does not match is therefore not an error by itself:
 * its pages are marked torn (their contents are still stored and count as received),
 * any later record for a page (data that matches, or zero) clears the mark, and a page
 * still torn when the stream ends is corruption.
 *
 * Safe to use from several threads (multifd channels): marks are atomic per word.
 */
#ifndef SEN_MIGRATION_RAM_TORN_H
#define SEN_MIGRATION_RAM_TORN_H

#include <stdbool.h>
#include <stdint.h>

typedef struct RamTorn RamTorn;

/* One bitmap per region, region i having pages[i] pages. */
RamTorn *ram_torn_new(unsigned nr_regions, const uint64_t *pages);
void ram_torn_free(RamTorn *t);
/* Pages [first, first + n) of region: torn (mismatch) or not (a record that matched). */
void ram_torn_set(RamTorn *t, unsigned region, uint64_t first, uint64_t n, bool torn);
/* How many pages are torn; *region and *page name the first one when there is one. */
uint64_t ram_torn_count(const RamTorn *t, unsigned *region, uint64_t *page);

#endif
