/*
 * Whether a buffer holds only zero bytes: the one check every hot path shares (migration
 * zero pages, block layer detect-zeroes and sparse copies, sen-img).
 */
#ifndef SEN_BUFFER_IS_ZERO_H
#define SEN_BUFFER_IS_ZERO_H

#include <stdbool.h>
#include <stddef.h>

/* True when all len bytes at buf are zero (len 0: true).  Any alignment. */
bool buffer_is_zero(const void *buf, size_t len);

#endif
