/*
 * IPv4 reassembly of the guest's fragments for -netdev user, so that libslirp only ever
 * sees whole datagrams.
 *
 * libslirp 4.7.0 (Debian 12) crashes (SIGSEGV in ip_reass) on a fragment with MF clear
 * and a non-zero offset that arrives while it holds no reassembly queue for the datagram:
 * a lone last fragment, a last fragment first, a repeat after the datagram completed.  A
 * guest could end the VMM with one frame, so Sen reassembles itself and hands libslirp
 * (and the own UDP path, net/slirp-udp.c) the complete datagram as one frame, which both
 * take up to 64 KiB.
 *
 * At most IP_REASS_MAX datagrams are in progress (the oldest makes room), each
 * discarded IP_REASS_TTL_NS after its first fragment came, as libslirp's 30 s.  A
 * fragment that contradicts what came before (another end, data past the end) discards
 * the datagram; overlapping data is taken from the latest fragment.
 */
#include <string.h>
#include "net/net-internal.h"

#define ETH_HLEN NET_ETH_HLEN
#define IP_MAXLEN 65535
#define IP_REASS_MAX 16
#define IP_REASS_TTL_NS (30 * 1000000000LL)
#define BLOCKS (IP_MAXLEN / 8 + 1)    /* 8-byte fragment blocks of a datagram */

typedef struct Reass {
    bool used;
    uint8_t key[9];           /* source, destination, protocol (network order) */
    uint16_t id;
    int64_t born_ns;
    size_t end;               /* payload length once the last fragment came, else 0 */
    size_t reach;             /* the furthest any fragment reached */
    size_t hlen;              /* header length of the first fragment, 0 until it came */
    unsigned blocks_have;
    uint8_t have[BLOCKS / 8 + 1];
    /* Ethernet and IP header of the first fragment end right where the payload begins. */
    uint8_t *buf;             /* ETH_HLEN + 60 + IP_MAXLEN bytes */
} Reass;

struct IpReass {
    Reass r[IP_REASS_MAX];
    uint64_t dropped;
    int64_t (*now_ns)(void *opaque); /* read only for fragments: not per frame */
    void *opaque;
};

#define PAYLOAD_AT (ETH_HLEN + 60)

IpReass *ip_reass_new(int64_t (*now_ns)(void *opaque), void *opaque)
{
    IpReass *ir = g_new0(IpReass, 1);

    ir->now_ns = now_ns;
    ir->opaque = opaque;
    return ir;
}

void ip_reass_free(IpReass *ir)
{
    if (ir) {
        for (unsigned i = 0; i < IP_REASS_MAX; i++) {
            g_free(ir->r[i].buf);
        }
        g_free(ir);
    }
}

uint64_t ip_reass_dropped(IpReass *ir)
{
    return ir->dropped;
}

/* Empties the slot; its buffer (and what it holds) stays, for the next datagram and for
 * the caller of a completed one until the next fragment. */
static void reass_clear(Reass *r)
{
    uint8_t *buf = r->buf;

    memset(r, 0, sizeof(*r));
    r->buf = buf;
}

static void reass_drop(IpReass *ir, Reass *r)
{
    if (r->used) {
        ir->dropped++;
    }
    reass_clear(r);
}

/* The datagram's slot: found, else a free or expired one, else the oldest's. */
static Reass *reass_find(IpReass *ir, const uint8_t *key, uint16_t id, int64_t now_ns)
{
    Reass *free_slot = NULL, *oldest = NULL;

    for (unsigned i = 0; i < IP_REASS_MAX; i++) {
        Reass *r = &ir->r[i];
        if (r->used && now_ns - r->born_ns >= IP_REASS_TTL_NS) {
            reass_drop(ir, r);
        }
        if (!r->used) {
            free_slot = free_slot ? free_slot : r;
            continue;
        }
        if (r->id == id && memcmp(r->key, key, sizeof(r->key)) == 0) {
            return r;
        }
        if (!oldest || r->born_ns < oldest->born_ns) {
            oldest = r;
        }
    }
    Reass *r = free_slot ? free_slot : oldest;
    reass_drop(ir, r);
    if (!r->buf) {
        r->buf = g_malloc(PAYLOAD_AT + IP_MAXLEN);
    }
    r->used = true;
    memcpy(r->key, key, sizeof(r->key));
    r->id = id;
    r->born_ns = now_ns;
    return r;
}

int ip_reass_input(IpReass *ir, const uint8_t *f, size_t len, const uint8_t **out,
                   size_t *out_len)
{
    if (len < ETH_HLEN + 20 || net_ld_be16(f + 12) != NET_ETH_P_IP) {
        return IP_REASS_NOT_FRAGMENT;
    }
    const uint8_t *ip = f + ETH_HLEN;
    uint16_t frag = net_ld_be16(ip + 6);
    if (!(frag & 0x3fff) || (ip[0] >> 4) != 4) {
        return IP_REASS_NOT_FRAGMENT;
    }
    /* A fragment: from here on it is ours, taken or dropped. */
    size_t hlen = (size_t)(ip[0] & 0xf) * 4;
    size_t total = net_ld_be16(ip + 2);
    size_t off = (size_t)(frag & 0x1fff) * 8;
    bool more = frag & 0x2000;
    if (hlen < 20 || total <= hlen || total > len - ETH_HLEN ||
        inet_csum_fold(inet_csum_add(0, ip, hlen)) != 0 ||
        (more && (total - hlen) % 8) || off + (total - hlen) > IP_MAXLEN - 20) {
        ir->dropped++;
        return IP_REASS_TAKEN;
    }
    size_t plen = total - hlen;
    uint8_t key[9];
    memcpy(key, ip + 12, 8);
    key[8] = ip[9];
    Reass *r = reass_find(ir, key, net_ld_be16(ip + 4), ir->now_ns(ir->opaque));

    r->reach = MAX(r->reach, off + plen);
    if (!more) {
        if (r->end && r->end != off + plen) {
            reass_drop(ir, r);
            return IP_REASS_TAKEN;
        }
        r->end = off + plen;
    }
    if (r->end && r->reach > r->end) {
        reass_drop(ir, r); /* data past the end: not one datagram */
        return IP_REASS_TAKEN;
    }
    if (off == 0) {
        r->hlen = hlen;
        memcpy(r->buf + PAYLOAD_AT - hlen - ETH_HLEN, f, ETH_HLEN);
        memcpy(r->buf + PAYLOAD_AT - hlen, ip, hlen);
    }
    memcpy(r->buf + PAYLOAD_AT + off, ip + hlen, plen);
    for (size_t b = off / 8; b < (off + plen + 7) / 8; b++) {
        if (!(r->have[b / 8] & (1u << (b % 8)))) {
            r->have[b / 8] |= 1u << (b % 8);
            r->blocks_have++;
        }
    }
    if (r->end && r->hlen && r->hlen + r->end > IP_MAXLEN) {
        reass_drop(ir, r); /* options in front of a payload near 64 KiB: too long */
        return IP_REASS_TAKEN;
    }
    /* Blocks past the end were checked above, so all of them means complete. */
    if (!r->end || !r->hlen || r->blocks_have != (r->end + 7) / 8) {
        return IP_REASS_TAKEN;
    }

    uint8_t *hdr = r->buf + PAYLOAD_AT - r->hlen;
    uint16_t csum;
    size_t whole = r->hlen + r->end;
    net_st_be16(hdr + 2, (uint16_t)whole);
    hdr[6] &= 0x40; /* DF stays, MF and the offset go */
    hdr[7] = 0;
    hdr[10] = hdr[11] = 0;
    csum = inet_csum_fold(inet_csum_add(0, hdr, r->hlen));
    memcpy(hdr + 10, &csum, 2);
    *out = hdr - ETH_HLEN;
    *out_len = ETH_HLEN + whole;
    reass_clear(r);
    return IP_REASS_DONE;
}
