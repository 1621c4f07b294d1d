/*
 * The Internet checksum (RFC 1071) for the IPv4/UDP/ICMP headers user networking builds
 * and checks.  The sum is order-independent (RFC 1071 2(B)), so it adds the bytes as host
 * words, eight at a time: a datagram's payload is checked on the guest's tx path.
 */
#include <string.h>
#include "net/net-internal.h"

uint64_t inet_csum_add(uint64_t sum, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    /* 32-bit halves into a 64-bit sum: no carry is lost before 2^32 of them. */
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        sum += (w & 0xffffffffu) + (w >> 32);
    }
    for (; len >= 2; p += 2, len -= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        sum += w;
    }
    if (len) {
        uint8_t last[2] = { p[0], 0 };
        uint16_t w;
        memcpy(&w, last, 2);
        sum += w;
    }
    return sum;
}

uint16_t inet_csum_fold(uint64_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

uint64_t inet_csum_pseudo(struct in_addr src, struct in_addr dst, uint8_t proto,
                          uint16_t len)
{
    uint8_t ph[12];

    memcpy(ph, &src, 4);
    memcpy(ph + 4, &dst, 4);
    ph[8] = 0;
    ph[9] = proto;
    ph[10] = len >> 8;
    ph[11] = len & 0xff;
    return inet_csum_add(0, ph, sizeof(ph));
}
