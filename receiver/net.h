/* SPDX-License-Identifier: MIT */
/* The receiving socket: bound UDP, a large kernel buffer, batched recvmmsg. */
#ifndef SLUICE_RECEIVER_NET_H
#define SLUICE_RECEIVER_NET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NET_BATCH   64
#define NET_BUF_LEN 65536

struct net_rx {
	int fd;
	int rcvbuf;    /* what the kernel granted */
	uint8_t *bufs; /* NET_BATCH x NET_BUF_LEN */
	size_t len[NET_BATCH];
	size_t seg[NET_BATCH]; /* GRO segment size, 0 when the buffer is one datagram */
	int gro;               /* UDP_GRO is on */
	uint64_t truncated;    /* datagrams larger than a buffer */
	/* Packets the kernel dropped because the socket buffer was full
	 * (SO_RXQ_OVFL, as of the last receive; with GRO one packet may hold
	 * many datagrams); written by the receive thread, read by the main
	 * thread. */
	_Atomic uint64_t sock_dropped;
};

/* Bind addr, ask for rcvbuf bytes of socket buffer (SO_RCVBUFFORCE when
 * privileged, SO_RCVBUF otherwise). 0 or -errno with message in err. */
__attribute__((warn_unused_result)) int net_open(struct net_rx *n,
                                                 const struct sockaddr_storage *addr,
                                                 socklen_t alen, int rcvbuf, char *err,
                                                 size_t errlen);
/* Wait up to timeout_ms, then read a batch. Returns the number of
 * buffers (0 on timeout), -EINTR on a signal, -errno on failure. Buffer i
 * holds len[i] bytes: one datagram, or with GRO consecutive datagrams of
 * seg[i] bytes each (the last may be shorter). */
int net_recv(struct net_rx *n, int timeout_ms);
/* One buffer's worth straight into buf (cap bytes), without waiting: 1 with
 * len and seg set as for net_recv, 0 when nothing is queued, -errno. */
int net_recv_into(struct net_rx *n, uint8_t *buf, size_t cap, size_t *len, size_t *seg);
/* Wait up to timeout_ms for something to read: 1, 0 on timeout, -errno. */
int net_wait(struct net_rx *n, int timeout_ms);
static inline uint8_t *net_buf(struct net_rx *n, unsigned i)
{
	return n->bufs + (size_t)i * NET_BUF_LEN;
}
void net_close(struct net_rx *n);

#endif

/* A receive thread that drains the socket into a byte ring, so that decode
 * and disk stalls in the main thread do not overflow the kernel buffer:
 *
 *   socket ──recvmmsg──► [net thread] ──► ring (bytes) ──► main thread
 *
 * Single producer, single consumer. When the ring is full the datagram is
 * dropped and counted (ring_dropped), never silently. While GRO hands over
 * full buffers the thread receives straight into the ring, one buffer per
 * recvmsg; otherwise recvmmsg batches into its own buffers and copies. */
struct net_ring;

__attribute__((warn_unused_result)) int net_ring_start(struct net_ring **out, struct net_rx *n,
                                                       size_t bytes);
/* Next datagram, waiting up to timeout_ms: 1 with data/len set (valid and
 * writable until net_ring_release), 2 for the next datagram of the same
 * received buffer (it arrived with the one before), 0 on timeout. */
int net_ring_next(struct net_ring *r, uint8_t **data, size_t *len, int timeout_ms);
void net_ring_release(struct net_ring *r);
uint64_t net_ring_dropped(const struct net_ring *r);
/* Consumer: what net_ring_dropped was when the datagram last handed out
 * arrived (it was copied in). */
uint64_t net_ring_dropped_before(const struct net_ring *r);
/* Stop the thread and free the ring; returns the thread's receive error
 * (0 or -errno). */
int net_ring_stop(struct net_ring *r);
