/* CRC-32C bit by bit, straight from the definition: the reference the fast paths of
 * migration/crc32c.c are checked against. */
#ifndef TESTS_UNIT_CRC32C_REF_H
#define TESTS_UNIT_CRC32C_REF_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t crc32c_ref(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
    }
    return crc;
}

#endif
