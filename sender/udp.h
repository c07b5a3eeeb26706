/* SPDX-License-Identifier: MIT */
/* Paced UDP transmission: a token bucket over wire bytes, UDP GSO batches
 * (UDP_SEGMENT) sent with sendmsg or through io_uring, sendmmsg without GSO.
 * The socket is never connected and never read: a diode gives no answer,
 * and ICMP errors must not stop us.
 *
 * udp_tx_send copies the frames into a bounded queue and returns (or the
 * caller builds them there: udp_tx_reserve); a transmit thread drains the
 * queue at the paced rate. Without it the wire
 * went quiet while the caller encoded the next group, and the achieved rate
 * fell short of --rate (by 18% at 1 Gb/s, docs/PERFORMANCE.md). The queue
 * holds about QUEUE_NS of traffic, so the wire lags the caller by at most
 * that much. */
#ifndef SLUICE_SENDER_UDP_H
#define SLUICE_SENDER_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDP_TX_MAX_BATCH 64

struct udp_txq;

struct udp_tx {
	int fd;
	_Atomic int use_gso;   /* cleared by the transmit thread on fallback */
	_Atomic int use_uring; /* sends go through io_uring; cleared likewise */
	struct sockaddr_storage dst;
	socklen_t dst_len;
	unsigned overhead; /* IP + UDP header bytes counted against the rate */
	uint64_t rate_bps;
	uint64_t t_next; /* CLOCK_MONOTONIC ns when the next byte may leave */
	/* counters of frames accepted by udp_tx_send (queued or already sent) */
	uint64_t datagrams;
	uint64_t wire_bytes;
	/* counters of the transmit thread, final after udp_tx_flush */
	uint64_t syscalls;
	uint64_t retries;
	struct udp_txq *q; /* NULL until udp_tx_open succeeds */
};

/* udp_tx_open flags. Without UDP_TX_GSO: sendmmsg (benchmarks, old
 * kernels). UDP_TX_URING: GSO sends and pacing sleeps through io_uring,
 * where it is available (else, and by default, sendmsg and
 * clock_nanosleep). */
#define UDP_TX_GSO   1u
#define UDP_TX_URING 2u

/* Returns 0 or -errno with a user-facing message in err. */
__attribute__((warn_unused_result)) int udp_tx_open(struct udp_tx *t,
                                                    const struct sockaddr_storage *dst,
                                                    socklen_t dst_len, uint64_t rate_bps,
                                                    unsigned flags, char *err, size_t errlen);
/* Queue n frames of equal length frame_len, in order, to be sent paced.
 * Blocks while the queue is full. 0, or the -errno of an earlier send that
 * failed (sticky: every later call returns it too, until udp_tx_flush). */
__attribute__((warn_unused_result)) int udp_tx_send(struct udp_tx *t, uint8_t *const *frames,
                                                    unsigned n, size_t frame_len);
/* Zero-copy queueing: wait for room for a batch of frames of frame_len
 * bytes and point *frames at it (*room frames, back to back). Build up to
 * *room frames there, then udp_tx_commit the number built; nothing else
 * may be queued in between. 0 or the sticky error. */
__attribute__((warn_unused_result)) int udp_tx_reserve(struct udp_tx *t, size_t frame_len,
                                                       uint8_t **frames, unsigned *room);
void udp_tx_commit(struct udp_tx *t, unsigned n);
/* Wait until every queued frame has been handed to the kernel (after a
 * failed send, dropped unsent). 0 or -errno of the first failed send since
 * the last flush, which is then forgotten: the socket stays open, and a
 * later transfer tries again (in spool mode, a link that was down may be
 * back by the retry). */
__attribute__((warn_unused_result)) int udp_tx_flush(struct udp_tx *t);
/* Flush, stop the thread, close the socket. A send error still pending
 * here is not logged: whoever queued the frames has flushed and reported
 * it, or failed for another reason that it reported. */
void udp_tx_close(struct udp_tx *t);

#endif
