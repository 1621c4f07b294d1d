/*
 * CRC-32C (Castagnoli) for the migration stream, fast enough to sit on the page path.
 *
 * The functions work on the raw CRC register: no initial value and no final inversion
 * are applied here (callers start from 0xffffffff and invert at the end, as the format
 * says).  On x86-64 with PCLMULQDQ, carry-less multiplications fold 64 bytes a step
 * (1.8x the crc32 instruction's speed on cached data); with SSE4.2 alone the crc32
 * instruction runs three independent lanes at once (its latency is three times its
 * throughput) and the lanes are joined with mig_crc32c_shift(); elsewhere a table does
 * it byte by byte.
 */
#ifndef SEN_MIGRATION_CRC32C_H
#define SEN_MIGRATION_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The register after feeding buf[0..len) to a register holding crc. */
uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len);

/* The same, while copying buf to dst (which must not overlap it): one pass over the
 * bytes instead of a copy and a checksum pass. */
uint32_t mig_crc32c_copy(uint32_t crc, void *dst, const void *buf, size_t len);

/* The register after feeding len zero bytes to a register holding crc.  With it a CRC
 * of A||B is shift(crc(A), len(B)) ^ crc_from_zero(B): pieces checksummed apart (other
 * lanes, other threads) are joined without reading them again. */
uint32_t mig_crc32c_shift(uint32_t crc, uint64_t len);

#endif
