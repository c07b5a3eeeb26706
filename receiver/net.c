/* SPDX-License-Identifier: MIT */
/* The receiving socket: bound UDP, a large kernel buffer, batched recvmmsg. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <unistd.h>

#include "common/util.h"
#include "net.h"

/* Room for both control messages a receive may carry: UDP_GRO's segment
 * size and SO_RXQ_OVFL's drop count. */
#define CTL_BYTES (CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t)))

#ifndef UDP_GRO
#define UDP_GRO 104 /* linux/udp.h, since Linux 5.0 */
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40 /* asm-generic/socket.h, since Linux 2.6.33 */
#endif

int net_open(struct net_rx *n, const struct sockaddr_storage *addr, socklen_t alen, int rcvbuf,
             char *err, size_t errlen)
{
	socklen_t sl = sizeof(n->rcvbuf);

	memset(n, 0, sizeof(*n));
	n->fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0) {
		snprintf(err, errlen, "cannot create a UDP socket: %s", strerror(errno));
		return -errno;
	}
	if (setsockopt(n->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(n->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	getsockopt(n->fd, SOL_SOCKET, SO_RCVBUF, &n->rcvbuf, &sl);
	/* GRO: the kernel may hand over up to 64 KiB of same-sized datagrams
	 * from one flow in one buffer, with the segment size in a control
	 * message. On loopback a GSO sender's super-datagram then arrives
	 * without ever being split into skbs: the cheapest path the kernel
	 * has. Older kernels say no and each datagram arrives alone. */
	int on = 1;
	n->gro = setsockopt(n->fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) == 0;
	/* Every receive then carries the kernel's count of packets dropped
	 * on a full socket buffer: loss that is this receiver's, not the
	 * link's (receipts name it). */
	(void)setsockopt(n->fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));
	atomic_store(&n->sock_dropped, 0);
	if (bind(n->fd, (const struct sockaddr *)addr, alen) < 0) {
		int e = errno;
		char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
		(void)getnameinfo((const struct sockaddr *)addr, alen, host, sizeof(host), port,
		                  sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(err, errlen, "cannot listen on %s port %s: %s%s", host, port, strerror(e),
		         bind_hint(e));
		close(n->fd);
		n->fd = -1;
		return -e;
	}
	n->bufs = malloc((size_t)NET_BATCH * NET_BUF_LEN);
	if (!n->bufs) {
		close(n->fd);
		n->fd = -1;
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Control data of a receive: the GRO segment size (0 when there is none
 * or the buffer holds one datagram), returned, and the socket's count of
 * dropped packets (SO_RXQ_OVFL, 32 bits that wrap), folded into
 * n->sock_dropped. */
static size_t read_cmsgs(struct net_rx *n, struct msghdr *m, size_t len)
{
	size_t seg = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
		    c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
			uint32_t drops;
			uint64_t old = atomic_load_explicit(&n->sock_dropped, memory_order_relaxed);
			memcpy(&drops, CMSG_DATA(c), sizeof(drops));
			/* the kernel's counter is 32 bits; ours keeps counting */
			old += (uint32_t)(drops - (uint32_t)old);
			atomic_store_explicit(&n->sock_dropped, old, memory_order_relaxed);
			continue;
		}
		int v;
		if (c->cmsg_level != IPPROTO_UDP || c->cmsg_type != UDP_GRO ||
		    c->cmsg_len < CMSG_LEN(sizeof(v)))
			continue;
		memcpy(&v, CMSG_DATA(c), sizeof(v));
		if (v > 0 && (size_t)v < len)
			seg = (size_t)v;
	}
	return seg;
}

int net_recv_into(struct net_rx *n, uint8_t *buf, size_t cap, size_t *len, size_t *seg)
{
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	union {
		char buf[CTL_BYTES];
		struct cmsghdr align;
	} ctl;
	struct msghdr m = {.msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = ctl.buf,
	                   .msg_controllen = sizeof(ctl.buf)};
	ssize_t rc;

	rc = recvmsg(n->fd, &m, MSG_DONTWAIT);
	if (rc < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	*len = (size_t)rc;
	*seg = 0;
	if (m.msg_flags & MSG_TRUNC) {
		n->truncated++;
		*len = 0; /* oversized: rejected as a short frame */
		return 1;
	}
	*seg = read_cmsgs(n, &m, *len);
	return 1;
}

int net_wait(struct net_rx *n, int timeout_ms)
{
	struct pollfd p = {.fd = n->fd, .events = POLLIN};
	int rc = poll(&p, 1, timeout_ms);

	return rc < 0 ? -errno : rc;
}

int net_recv(struct net_rx *n, int timeout_ms)
{
	struct mmsghdr mm[NET_BATCH];
	struct iovec iov[NET_BATCH];
	union {
		char buf[CTL_BYTES];
		struct cmsghdr align;
	} ctl[NET_BATCH];
	struct pollfd p = {.fd = n->fd, .events = POLLIN};
	int rc;

	for (unsigned i = 0; i < NET_BATCH; i++) {
		iov[i] = (struct iovec){.iov_base = net_buf(n, i), .iov_len = NET_BUF_LEN};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i],
		                                     .msg_iovlen = 1,
		                                     .msg_control = ctl[i].buf,
		                                     .msg_controllen = sizeof(ctl[i].buf)}};
	}
	rc = recvmmsg(n->fd, mm, NET_BATCH, MSG_DONTWAIT, NULL);
	if (rc < 0 && errno == EAGAIN) {
		rc = poll(&p, 1, timeout_ms);
		if (rc <= 0)
			return rc < 0 ? -errno : 0;
		rc = recvmmsg(n->fd, mm, NET_BATCH, MSG_DONTWAIT, NULL);
	}
	if (rc < 0)
		return errno == EAGAIN ? 0 : -errno;
	for (int i = 0; i < rc; i++) {
		n->len[i] = mm[i].msg_len;
		n->seg[i] = 0;
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC) {
			n->truncated++;
			n->len[i] = 0; /* oversized: rejected as a short frame */
			continue;
		}
		n->seg[i] = read_cmsgs(n, &mm[i].msg_hdr, n->len[i]);
	}
	return rc;
}

void net_close(struct net_rx *n)
{
	if (n->fd >= 0)
		close(n->fd);
	free(n->bufs);
	n->fd = -1;
	n->bufs = NULL;
}
