/*
 * buffer_is_zero: word-at-a-time, written so the compiler can vectorize the main loop.
 *
 * Data that is not zero usually differs in its first bytes, so the first and last words
 * are looked at before the loop; those two unaligned loads also cover the unaligned
 * edges, leaving the loop aligned 8-byte words only.  The loop ORs eight words (64
 * bytes, a cache line) before it branches.
 */
#include <stdint.h>
#include <string.h>
#include "sen/buffer-is-zero.h"

/* Reading any buffer through this type is allowed (it aliases everything). */
typedef uint64_t __attribute__((may_alias)) AliasWord;

static bool bytes_are_zero(const unsigned char *p, size_t len)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < len; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (len < 16) {
        return bytes_are_zero(p, len);
    }
    uint64_t head, tail;
    memcpy(&head, p, sizeof(head));
    memcpy(&tail, p + len - sizeof(tail), sizeof(tail));
    if (head | tail) {
        return false;
    }
    /* [p, first) lies inside head and [last, p + len) inside tail. */
    const AliasWord *w = (const AliasWord *)(((uintptr_t)p + 7) & ~(uintptr_t)7);
    const AliasWord *end = (const AliasWord *)(((uintptr_t)p + len) & ~(uintptr_t)7);
    for (; end - w >= 8; w += 8) {
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            return false;
        }
    }
    for (; w < end; w++) {
        if (*w) {
            return false;
        }
    }
    return true;
}
