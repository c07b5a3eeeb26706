/* SPDX-License-Identifier: MIT */
/* Paced UDP transmission: a token bucket over wire bytes, UDP GSO batches
 * (UDP_SEGMENT) with a sendmmsg fallback. The socket is never connected and
 * never read: a diode gives no answer, and ICMP errors must not stop us. */
#ifndef SLUICE_SENDER_UDP_H
#define SLUICE_SENDER_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDP_TX_MAX_BATCH 64

struct udp_tx {
	int fd;
	int use_gso;
	struct sockaddr_storage dst;
	socklen_t dst_len;
	unsigned overhead; /* IP + UDP header bytes counted against the rate */
	uint64_t rate_bps;
	uint64_t t_next; /* CLOCK_MONOTONIC ns when the next byte may leave */
	/* counters */
	uint64_t datagrams;
	uint64_t wire_bytes;
	uint64_t syscalls;
	uint64_t retries;
};

/* allow_gso = 0 forces the sendmmsg path (benchmarks, old kernels).
 * Returns 0 or -errno with a user-facing message in err. */
__attribute__((warn_unused_result)) int udp_tx_open(struct udp_tx *t,
                                                    const struct sockaddr_storage *dst,
                                                    socklen_t dst_len, uint64_t rate_bps,
                                                    int allow_gso, char *err, size_t errlen);
/* Send n frames of equal length frame_len, in order, paced. 0 or -errno. */
__attribute__((warn_unused_result)) int udp_tx_send(struct udp_tx *t, uint8_t *const *frames,
                                                    unsigned n, size_t frame_len);
void udp_tx_close(struct udp_tx *t);

#endif
