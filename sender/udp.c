/* SPDX-License-Identifier: MIT */
/* Paced UDP transmission with GSO batches and a sendmmsg fallback.
 *
 *   udp_tx_reserve/commit: frames built in place in the byte queue (caller)
 *   udp_tx_send: the same for frames built elsewhere, copied in
 *   tx thread:   queue → token bucket → sendmsg(UDP_SEGMENT), or
 *                io_uring SENDMSG (UDP_TX_URING), or sendmmsg without GSO
 *
 * Through io_uring, one io_uring_enter both hands a batch to the kernel and
 * sleeps until the bucket allows the next one (a SENDMSG and an absolute
 * TIMEOUT submitted together), where the plain path needs a sendmsg and a
 * clock_nanosleep per batch. It still costs the thread 10-25% more CPU per
 * batch here than sendmsg (docs/DECISIONS.md §17), so it is not the default.
 *
 * Each queue entry is one batch: an 8-byte header (frame count, frame
 * length) and the frames back to back, 8-byte aligned. The caller owns the
 * space from head to tail + size, the thread the space from tail to head. */
#include <errno.h>
#include <liburing.h>
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
	uint64_t cpu_ns;    /* the thread's CPU time, once it has ended */
	pthread_mutex_t lock;
	pthread_cond_t more;  /* head moved or closing */
	pthread_cond_t space; /* tail moved or err set */
	pthread_t thread;
	struct io_uring ring; /* the thread's sends, if ring_open */
	int ring_open;
	/* the caller's reservation: where its entry starts, and how many
	 * bytes were skipped to the start of the buffer to keep it whole */
	size_t res_off, res_skip, res_len;
	unsigned res_room;
};

/* Token bucket: wait until the bucket allows `bytes` more on the wire, and
 * take them. Afterwards t->t_next is when the next batch may leave. */
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

/* One GSO send: a single iovec over frames that are contiguous in the
 * queue, and a UDP_SEGMENT control message when there is more than one. */
struct gso_msg {
	struct msghdr msg;
	struct iovec iov;
	char control[CMSG_SPACE(sizeof(uint16_t))];
};

static void gso_msg_init(struct gso_msg *m, struct udp_tx *t, uint8_t *frames, unsigned n,
                         size_t len)
{
	memset(m, 0, sizeof(*m));
	m->iov = (struct iovec){.iov_base = frames, .iov_len = n * len};
	m->msg = (struct msghdr){
	    .msg_name = &t->dst, .msg_namelen = t->dst_len, .msg_iov = &m->iov, .msg_iovlen = 1};
	if (n > 1) {
		m->msg.msg_control = m->control;
		m->msg.msg_controllen = sizeof(m->control);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m->msg);
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		uint16_t seg = (uint16_t)len;
		memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
	}
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
	struct gso_msg m;
	unsigned tries = 0;
	ssize_t rc;

	gso_msg_init(&m, t, frames, n, len);
	while ((rc = sendmsg(t->fd, &m.msg, 0)) < 0 && transient(t, errno, &tries))
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

enum { TAG_SEND = 1, TAG_WAKE = 2 };
/* send_gso_uring did not queue the batch: send it the plain way. */
#define NOT_SENT 1

/* The batch through io_uring. When another batch is queued (`more`) and the
 * bucket holds it back, an absolute TIMEOUT at t->t_next goes in the same
 * io_uring_enter, so the thread sleeps there instead of in pace(). Returns
 * the send's result (0 or -errno). A ring that fails is left for good:
 * use_uring is cleared and the caller sends the batch the plain way
 * (NOT_SENT). */
static int send_gso_uring(struct udp_tx *t, uint8_t *frames, unsigned n, size_t len, int more)
{
	struct io_uring *ring = &t->q->ring;
	struct __kernel_timespec wake = {.tv_sec = (long long)(t->t_next / 1000000000u),
	                                 .tv_nsec = (long long)(t->t_next % 1000000000u)};
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct gso_msg m;
	unsigned want = 1, got = 0;
	int res = NOT_SENT, rc;

	gso_msg_init(&m, t, frames, n, len);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_sendmsg(sqe, 0, &m.msg, 0); /* registered file 0: t->fd */
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, TAG_SEND);
	if (more && t->t_next > now_ns()) {
		sqe = io_uring_get_sqe(ring);
		io_uring_prep_timeout(sqe, &wake, 0, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, TAG_WAKE);
		want = 2;
	}
	rc = io_uring_submit_and_wait(ring, want);
	if (rc < 0 && rc != -EINTR) {
		log_debug("io_uring submit failed (%s), sending with sendmsg", strerror(-rc));
		atomic_store(&t->use_uring, 0);
		return NOT_SENT;
	}
	t->syscalls++;
	while (got < want) {
		rc = io_uring_wait_cqe(ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			return rc; /* the ring is broken with the batch in it */
		if (io_uring_cqe_get_data64(cqe) == TAG_SEND) {
			res = cqe->res < 0 ? cqe->res : 0;
		} else if (cqe->res != -ETIME) {
			log_debug("io_uring timeout failed (%s), pacing with "
			          "clock_nanosleep",
			          strerror(-cqe->res));
			atomic_store(&t->use_uring, 0);
		}
		io_uring_cqe_seen(ring, cqe);
		got++;
	}
	return res;
}

static int send_batch(struct udp_tx *t, uint8_t *frames, unsigned n, size_t len, int more)
{
	int rc;

	pace(t, (uint64_t)n * (len + t->overhead));
	if (!atomic_load(&t->use_gso))
		return send_mmsg(t, frames, n, len);
	rc = NOT_SENT;
	if (atomic_load(&t->use_uring))
		rc = send_gso_uring(t, frames, n, len, more);
	if (rc == NOT_SENT || rc == -ENOBUFS || rc == -EAGAIN || rc == -EINTR)
		rc = send_gso(t, frames, n, len); /* with its bounded retries */
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

/* A ring for the transmit thread, if this kernel (and any seccomp filter)
 * allows io_uring with the two operations it needs. */
static int open_ring(struct io_uring *ring, int fd)
{
	struct io_uring_probe *p;
	int ok;

	/* Only the transmit thread submits, and it always waits for its
	 * completions: completion work may run then, not as task work. */
	if (io_uring_queue_init(4, ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) <
	        0 &&
	    io_uring_queue_init(4, ring, 0) < 0)
		return 0;
	p = io_uring_get_probe_ring(ring);
	ok = p && io_uring_opcode_supported(p, IORING_OP_SENDMSG) &&
	     io_uring_opcode_supported(p, IORING_OP_TIMEOUT) &&
	     io_uring_register_files(ring, &fd, 1) == 0;
	io_uring_free_probe(p);
	if (!ok)
		io_uring_queue_exit(ring);
	return ok;
}

static void *tx_thread(void *arg)
{
	struct udp_tx *t = arg;
	struct udp_txq *q = t->q;

	/* The ring belongs to this thread (IORING_SETUP_SINGLE_ISSUER):
	 * use_uring says until here whether to try one. */
	q->ring_open = atomic_load(&t->use_uring) && open_ring(&q->ring, t->fd);
	atomic_store(&t->use_uring, q->ring_open);
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->head == q->tail && !q->closing)
			q->underruns++;
		while (q->head == q->tail && !q->closing)
			pthread_cond_wait(&q->more, &q->lock);
		if (q->head == q->tail)
			break;
		uint64_t tail = q->tail, head = q->head;
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
				failed = send_batch(t, q->buf + off + ENTRY_HDR, n, len,
				                    head - tail > used);
		}

		pthread_mutex_lock(&q->lock);
		if (failed && !q->err)
			q->err = failed;
		q->tail = tail + used;
		pthread_cond_broadcast(&q->space);
	}
	pthread_mutex_unlock(&q->lock);
	q->cpu_ns = thread_cpu_ns();
	return NULL;
}

int udp_tx_open(struct udp_tx *t, const struct sockaddr_storage *dst, socklen_t dst_len,
                uint64_t rate_bps, unsigned flags, char *err, size_t errlen)
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
	atomic_store(&t->use_gso, !!(flags & UDP_TX_GSO));
	atomic_store(&t->use_uring, !!(flags & UDP_TX_URING)); /* tx_thread decides */
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
	q->err = 0;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void udp_tx_close(struct udp_tx *t)
{
	struct udp_txq *q = t->q;

	if (q) {
		int rc = udp_tx_flush(t);
		if (rc < 0)
			log_debug("a send failed before the close: %s", strerror(-rc));
		pthread_mutex_lock(&q->lock);
		q->closing = 1;
		pthread_cond_signal(&q->more);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
		log_debug("transmit queue: %zu KiB, waited for frames %llu times, "
		          "pacing fell behind %llu times; transmit thread CPU %.3f s, "
		          "%llu submissions",
		          q->size >> 10, (unsigned long long)q->underruns,
		          (unsigned long long)q->resets, (double)q->cpu_ns / 1e9,
		          (unsigned long long)t->syscalls);
		if (q->ring_open)
			io_uring_queue_exit(&q->ring);
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
