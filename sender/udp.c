/* SPDX-License-Identifier: MIT */
/* Paced UDP transmission with GSO batches and a sendmmsg fallback.
 *
 *   udp_tx_reserve/commit: frames built in place in the byte queue (caller)
 *   udp_tx_send: the same for frames built elsewhere, copied in
 *   tx thread:   queue → token bucket → sendmsg(UDP_SEGMENT) / sendmmsg
 *
 * Each queue entry is one batch: an 8-byte header (frame count, frame
 * length) and the frames back to back, 8-byte aligned. The caller owns the
 * space from head to tail + size, the thread the space from tail to head. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
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
/* Credit the bucket may bank while the thread was not running: the burst
 * it allows is 2 ms of traffic (250 KB at 1 Gb/s, 2.5 MB at 10 Gb/s), well
 * inside the receiver's socket buffer. With 200 us, ordinary scheduling
 * delays on a busy 2-vCPU machine dropped credit hundreds of times per
 * transfer and the wire ran 4-6% under --rate. */
#define PACE_SLACK_NS 2000000
/* Traffic the queue holds: enough to cover encoding one group (about 12 ms
 * at MTU 1500 here, several times that with jumbo frames), little enough
 * that the wire lags the caller only briefly. */
#define QUEUE_NS        50000000ull
#define QUEUE_MIN_BYTES (2u << 20) /* at least a few of the largest batches */
#define QUEUE_MAX_BYTES (64u << 20)
#define ENTRY_HDR       8u
#define WRAP            0xffffffffu

struct udp_txq {
	uint8_t *buf;
	size_t size;
	uint64_t head; /* bytes ever queued; written by the caller */
	uint64_t tail; /* bytes ever released; written by the thread */
	int err;       /* first send failure (-errno), sticky */
	int closing;
	uint64_t underruns; /* the thread waited for the caller */
	uint64_t resets;    /* the bucket dropped credit: the wire was idle */
	pthread_mutex_t lock;
	pthread_cond_t more;  /* head moved or closing */
	pthread_cond_t space; /* tail moved or err set */
	pthread_t thread;
	/* the caller's reservation: where its entry starts, and how many
	 * bytes were skipped to the start of the buffer to keep it whole */
	size_t res_off, res_skip, res_len;
	unsigned res_room;
};

/* Token bucket: wait until the bucket allows `bytes` more on the wire. */
static void pace(struct udp_tx *t, uint64_t bytes)
{
	uint64_t now = now_ns();

	if (t->t_next + PACE_SLACK_NS < now) {
		t->t_next = now - PACE_SLACK_NS;
		t->q->resets++;
	}
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

/* The frames of one batch are contiguous in the queue, so GSO takes them
 * as one iovec. */
static int send_gso(struct udp_tx *t, uint8_t *frames, unsigned n, size_t len)
{
	struct iovec iov = {.iov_base = frames, .iov_len = n * len};
	char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
	struct msghdr msg = {
	    .msg_name = &t->dst, .msg_namelen = t->dst_len, .msg_iov = &iov, .msg_iovlen = 1};
	unsigned tries = 0;
	ssize_t rc;

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

static int send_mmsg(struct udp_tx *t, uint8_t *frames, unsigned n, size_t len)
{
	struct mmsghdr mm[UDP_TX_MAX_BATCH];
	struct iovec iov[UDP_TX_MAX_BATCH];
	unsigned done = 0, tries = 0;

	for (unsigned i = 0; i < n; i++) {
		iov[i] = (struct iovec){.iov_base = frames + i * len, .iov_len = len};
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

static int send_batch(struct udp_tx *t, uint8_t *frames, unsigned n, size_t len)
{
	int rc;

	pace(t, (uint64_t)n * (len + t->overhead));
	if (!atomic_load(&t->use_gso))
		return send_mmsg(t, frames, n, len);
	rc = send_gso(t, frames, n, len);
	if (rc == -EIO || rc == -EINVAL || rc == -ENOPROTOOPT || rc == -EOPNOTSUPP) {
		/* No GSO here (old kernel, device without checksum
		 * offload): fall back for good. */
		log_debug("UDP GSO unavailable (%s), using sendmmsg", strerror(-rc));
		atomic_store(&t->use_gso, 0);
		rc = send_mmsg(t, frames, n, len);
	}
	return rc;
}

static size_t entry_size(unsigned n, size_t len)
{
	return (ENTRY_HDR + n * len + 7) & ~(size_t)7;
}

static void *tx_thread(void *arg)
{
	struct udp_tx *t = arg;
	struct udp_txq *q = t->q;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->head == q->tail && !q->closing)
			q->underruns++;
		while (q->head == q->tail && !q->closing)
			pthread_cond_wait(&q->more, &q->lock);
		if (q->head == q->tail)
			break;
		uint64_t tail = q->tail;
		int failed = q->err;
		pthread_mutex_unlock(&q->lock);

		size_t off = (size_t)(tail % q->size), used;
		uint32_t n, len;
		memcpy(&n, q->buf + off, sizeof(n));
		if (n == WRAP) {
			used = q->size - off;
		} else {
			memcpy(&len, q->buf + off + 4, sizeof(len));
			used = entry_size(n, len);
			/* After a failure, drain without sending so the
			 * caller never waits for space forever. */
			if (!failed)
				failed = send_batch(t, q->buf + off + ENTRY_HDR, n, len);
		}

		pthread_mutex_lock(&q->lock);
		if (failed && !q->err)
			q->err = failed;
		q->tail = tail + used;
		pthread_cond_broadcast(&q->space);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int udp_tx_open(struct udp_tx *t, const struct sockaddr_storage *dst, socklen_t dst_len,
                uint64_t rate_bps, int allow_gso, char *err, size_t errlen)
{
	int sndbuf = 8 << 20, rc;
	struct udp_txq *q;
	uint64_t qbytes = rate_bps / 8 * QUEUE_NS / 1000000000u;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (qbytes < QUEUE_MIN_BYTES)
		qbytes = QUEUE_MIN_BYTES;
	if (qbytes > QUEUE_MAX_BYTES)
		qbytes = QUEUE_MAX_BYTES;
	q->size = (size_t)qbytes & ~(size_t)7;
	q->buf = malloc(q->size);
	if (!q->buf) {
		free(q);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a UDP socket: %s", strerror(errno));
		goto fail;
	}
	if (setsockopt(t->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memcpy(&t->dst, dst, dst_len);
	t->dst_len = dst_len;
	t->overhead = dst->ss_family == AF_INET6 ? 48 : 28;
	t->rate_bps = rate_bps;
	atomic_store(&t->use_gso, allow_gso);
	t->t_next = now_ns();
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->more, NULL);
	pthread_cond_init(&q->space, NULL);
	t->q = q;
	rc = -pthread_create(&q->thread, NULL, tx_thread, t);
	if (rc == 0)
		return 0;
	snprintf(err, errlen, "cannot start the transmit thread: %s", strerror(-rc));
	t->q = NULL;
	pthread_cond_destroy(&q->space);
	pthread_cond_destroy(&q->more);
	pthread_mutex_destroy(&q->lock);
	close(t->fd);
	t->fd = -1;
fail:
	free(q->buf);
	free(q);
	return rc;
}

int udp_tx_flush(struct udp_tx *t)
{
	struct udp_txq *q = t->q;
	int rc;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	while (q->tail != q->head)
		pthread_cond_wait(&q->space, &q->lock);
	rc = q->err;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void udp_tx_close(struct udp_tx *t)
{
	struct udp_txq *q = t->q;

	if (q) {
		int rc = udp_tx_flush(t);
		if (rc < 0)
			log_err("sending failed: %s", strerror(-rc));
		pthread_mutex_lock(&q->lock);
		q->closing = 1;
		pthread_cond_signal(&q->more);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
		log_debug("transmit queue: %zu KiB, waited for frames %llu times, "
		          "pacing fell behind %llu times",
		          q->size >> 10, (unsigned long long)q->underruns,
		          (unsigned long long)q->resets);
		pthread_cond_destroy(&q->space);
		pthread_cond_destroy(&q->more);
		pthread_mutex_destroy(&q->lock);
		free(q->buf);
		free(q);
		t->q = NULL;
	}
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Frames per batch: one GSO super-datagram, or one sendmmsg call. */
static unsigned batch_frames(const struct udp_tx *t, size_t len)
{
	unsigned per =
	    atomic_load(&t->use_gso) ? (unsigned)(GSO_MAX_BYTES / len) : UDP_TX_MAX_BATCH;

	if (per == 0)
		per = 1;
	if (per > UDP_TX_MAX_BATCH)
		per = UDP_TX_MAX_BATCH;
	while (per > 1 && entry_size(per, len) > t->q->size / 4)
		per /= 2; /* only with huge frames: keep several batches queued */
	return per;
}

int udp_tx_reserve(struct udp_tx *t, size_t frame_len, uint8_t **frames, unsigned *room)
{
	struct udp_txq *q = t->q;
	unsigned per;
	size_t need, off, skip;
	int rc;

	if (!q)
		return -EBADF;
	per = batch_frames(t, frame_len);
	need = entry_size(per, frame_len);
	off = (size_t)(q->head % q->size);
	/* An entry never wraps: skip to the start when the end is too short. */
	skip = off + need > q->size ? q->size - off : 0;
	pthread_mutex_lock(&q->lock);
	while (!q->err && q->head + skip + need - q->tail > q->size)
		pthread_cond_wait(&q->space, &q->lock);
	rc = q->err;
	pthread_mutex_unlock(&q->lock);
	if (rc)
		return rc;
	q->res_off = off;
	q->res_skip = skip;
	q->res_len = frame_len;
	q->res_room = per;
	*frames = q->buf + (skip ? 0 : off) + ENTRY_HDR;
	*room = per;
	return 0;
}

void udp_tx_commit(struct udp_tx *t, unsigned n)
{
	struct udp_txq *q = t->q;
	size_t off = q->res_skip ? 0 : q->res_off;
	uint32_t hdr[2] = {n, (uint32_t)q->res_len};

	if (n == 0 || n > q->res_room)
		return;
	if (q->res_skip) {
		uint32_t mark = WRAP;
		memcpy(q->buf + q->res_off, &mark, sizeof(mark));
	}
	memcpy(q->buf + off, hdr, sizeof(hdr));
	t->datagrams += n;
	t->wire_bytes += (uint64_t)n * (q->res_len + t->overhead);
	q->res_room = 0;

	pthread_mutex_lock(&q->lock);
	q->head += q->res_skip + entry_size(n, q->res_len);
	pthread_cond_signal(&q->more);
	pthread_mutex_unlock(&q->lock);
}

int udp_tx_send(struct udp_tx *t, uint8_t *const *frames, unsigned n, size_t frame_len)
{
	while (n) {
		uint8_t *dst;
		unsigned room;
		int rc = udp_tx_reserve(t, frame_len, &dst, &room);
		if (rc < 0)
			return rc;
		if (room > n)
			room = n;
		for (unsigned i = 0; i < room; i++)
			memcpy(dst + (size_t)i * frame_len, frames[i], frame_len);
		udp_tx_commit(t, room);
		frames += room;
		n -= room;
	}
	return 0;
}
