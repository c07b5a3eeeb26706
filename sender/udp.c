/* SPDX-License-Identifier: MIT */
/* Paced UDP transmission with GSO batches and a sendmmsg fallback. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "udp.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* A GSO super-datagram must fit one UDP length field. */
#define GSO_MAX_BYTES 65000
/* Credit the bucket may bank while we were busy elsewhere: one batch at
 * 10 Gb/s. More would turn into a burst the receiver's buffer must absorb. */
#define PACE_SLACK_NS 200000

int udp_tx_open(struct udp_tx *t, const struct sockaddr_storage *dst, socklen_t dst_len,
                uint64_t rate_bps, int allow_gso, char *err, size_t errlen)
{
	int sndbuf = 8 << 20;

	memset(t, 0, sizeof(*t));
	t->fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0) {
		snprintf(err, errlen, "cannot create a UDP socket: %s", strerror(errno));
		return -errno;
	}
	if (setsockopt(t->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memcpy(&t->dst, dst, dst_len);
	t->dst_len = dst_len;
	t->overhead = dst->ss_family == AF_INET6 ? 48 : 28;
	t->rate_bps = rate_bps;
	t->use_gso = allow_gso;
	t->t_next = now_ns();
	return 0;
}

void udp_tx_close(struct udp_tx *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Token bucket: wait until the bucket allows `bytes` more on the wire. */
static void pace(struct udp_tx *t, uint64_t bytes)
{
	uint64_t now = now_ns();

	if (t->t_next + PACE_SLACK_NS < now)
		t->t_next = now - PACE_SLACK_NS;
	if (t->t_next > now)
		sleep_until_ns(t->t_next);
	t->t_next += bytes * 8 * 1000000000u / t->rate_bps;
}

/* Transient "queue full" answers: wait a little and try again, bounded. */
static int transient(struct udp_tx *t, int e, unsigned *tries)
{
	if ((e != ENOBUFS && e != EAGAIN && e != EINTR) || ++*tries > 20000)
		return 0;
	t->retries++;
	usleep(50);
	return 1;
}

static int send_gso(struct udp_tx *t, uint8_t *const *frames, unsigned n, size_t len)
{
	struct iovec iov[UDP_TX_MAX_BATCH];
	char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
	struct msghdr msg = {
	    .msg_name = &t->dst, .msg_namelen = t->dst_len, .msg_iov = iov, .msg_iovlen = n};
	unsigned tries = 0;
	ssize_t rc;

	for (unsigned i = 0; i < n; i++)
		iov[i] = (struct iovec){.iov_base = frames[i], .iov_len = len};
	if (n > 1) {
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		uint16_t seg = (uint16_t)len;
		memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
	}
	while ((rc = sendmsg(t->fd, &msg, 0)) < 0 && transient(t, errno, &tries))
		;
	if (rc < 0)
		return -errno;
	t->syscalls++;
	return 0;
}

static int send_mmsg(struct udp_tx *t, uint8_t *const *frames, unsigned n, size_t len)
{
	struct mmsghdr mm[UDP_TX_MAX_BATCH];
	struct iovec iov[UDP_TX_MAX_BATCH];
	unsigned done = 0, tries = 0;

	for (unsigned i = 0; i < n; i++) {
		iov[i] = (struct iovec){.iov_base = frames[i], .iov_len = len};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &t->dst,
		                                     .msg_namelen = t->dst_len,
		                                     .msg_iov = &iov[i],
		                                     .msg_iovlen = 1}};
	}
	while (done < n) {
		int rc = sendmmsg(t->fd, mm + done, n - done, 0);
		if (rc < 0) {
			if (transient(t, errno, &tries))
				continue;
			return -errno;
		}
		t->syscalls++;
		done += (unsigned)rc;
	}
	return 0;
}

int udp_tx_send(struct udp_tx *t, uint8_t *const *frames, unsigned n, size_t frame_len)
{
	unsigned per = t->use_gso ? (unsigned)(GSO_MAX_BYTES / frame_len) : UDP_TX_MAX_BATCH;
	int rc;

	if (per == 0)
		per = 1;
	if (per > UDP_TX_MAX_BATCH)
		per = UDP_TX_MAX_BATCH;
	while (n) {
		unsigned b = n < per ? n : per;
		pace(t, (uint64_t)b * (frame_len + t->overhead));
		if (t->use_gso) {
			rc = send_gso(t, frames, b, frame_len);
			if (rc == -EIO || rc == -EINVAL || rc == -ENOPROTOOPT ||
			    rc == -EOPNOTSUPP) {
				/* No GSO here (old kernel, device without
				 * checksum offload): fall back for good. */
				log_debug("UDP GSO unavailable (%s), using sendmmsg",
				          strerror(-rc));
				t->use_gso = 0;
				rc = send_mmsg(t, frames, b, frame_len);
			}
		} else {
			rc = send_mmsg(t, frames, b, frame_len);
		}
		if (rc < 0)
			return rc;
		t->datagrams += b;
		t->wire_bytes += (uint64_t)b * (frame_len + t->overhead);
		frames += b;
		n -= b;
	}
	return 0;
}
