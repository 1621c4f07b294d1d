/* Shared by the user-netdev unit tests (test-net.c, test-slirp-udp.c, test-ip-reass.c,
 * test-slirp-udp-review.c): a -netdev user linked to a fake NIC that records every
 * frame the guest side gets, guest frames built by hand, host sockets on 127.0.0.1.  Every helper fails the test instead of returning
 * an error. */
#ifndef SEN_TESTS_SLIRP_TEST_UTIL_H
#define SEN_TESTS_SLIRP_TEST_UTIL_H

#include <stdint.h>
#include <netinet/in.h>
#include <glib.h>
#include "net/net-internal.h"
#include "sen/net.h"

#define SLIRP_TEST_ETH 14          /* offsets in a frame: the IP header */
#define SLIRP_TEST_UDP (14 + 20)   /* the UDP header (an IP header without options) */
#define SLIRP_TEST_DATA (14 + 20 + 8)

/* The guest: 52:54:00:12:34:56, 10.0.2.15. */
extern const uint8_t slirp_test_guest_mac[6];

typedef struct SlirpRig {
    Machine m;
    NetClientState *user, *nic;
    bool nic_full;             /* the guest posted no rx buffers: the NIC takes nothing */
    GPtrArray *frames;         /* of GByteArray: every frame the NIC took, in order */
    unsigned arp, udp;         /* of them ARP and IPv4/UDP frames */
    bool realtime_clock;       /* set before setup: the machine's clock follows real time
                                * (virt_clock_stop/start act) instead of being manual */
} SlirpRig;

/* A user netdev "u0" (net_netdev_add of "type=user,id=u0,ipv6=off" and opts, which may
 * be NULL) linked to the fake NIC; libslirp learns the guest's MAC (an ARP request). */
void slirp_rig_setup(SlirpRig *r, const char *opts);
void slirp_rig_teardown(SlirpRig *r);
/* Hands the frame to the user netdev as the NIC does (VM lock held). */
void slirp_rig_send(SlirpRig *r, const void *frame, size_t len);
/* Runs the main loop until the NIC took `frames` frames in all; false after timeout_ms. */
bool slirp_rig_wait(SlirpRig *r, unsigned frames, unsigned timeout_ms);
/* Runs the main loop for ms milliseconds. */
void slirp_rig_run(SlirpRig *r, unsigned ms);
/* Frame i the NIC took. */
const uint8_t *slirp_rig_frame(SlirpRig *r, unsigned i, size_t *len);
/* The user netdev's UDP flows (net/slirp-udp.c): their counters, and closing those idle
 * for idle_us or longer by the machine's clock (dns_idle_us those last answered from port
 * 53), each under the VM lock. */
SlirpUdpStats slirp_rig_udp_stats(SlirpRig *r);
void slirp_rig_udp_expire_idle(SlirpRig *r, gint64 idle_us, gint64 dns_idle_us);

/* Into f: an IPv4/UDP frame from the guest (sport) to 10.0.2.2:dport with that TTL and
 * payload (len bytes), right IP and UDP checksums.  Returns its length. */
size_t slirp_test_udp_frame(uint8_t *f, uint16_t sport, uint16_t dport, uint8_t ttl,
                            const void *payload, size_t len);
/* Sets the TOS of the frame's IP header (and fixes its checksum). */
void slirp_test_set_tos(uint8_t *frame, uint8_t tos);
/* The Internet checksum of buf, continuing sum (0 to start); 0 over a right one. */
uint16_t slirp_test_csum(const void *buf, size_t len, uint32_t sum);
/* Sets the IP header checksum of the frame's IP header (ihl words long). */
void slirp_test_ip_csum(uint8_t *frame);
/* Sets the UDP checksum of the frame's UDP header (after an ihl-word IP header). */
void slirp_test_udp_csum(uint8_t *frame);

/* A UDP socket on 127.0.0.1 (a receive timeout of 5 s); its port in *port. */
int slirp_test_host_socket(uint16_t *port);
/* A port on 127.0.0.1 nobody uses now. */
uint16_t slirp_test_free_port(void);

#endif
