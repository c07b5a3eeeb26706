/* SPDX-License-Identifier: MIT */
/* The receive thread and its byte ring (see net.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "net.h"

/* An entry: u32 length (or WRAP), u32 GRO segment size (0: one datagram),
 * u64 datagrams dropped before it arrived, then the bytes as received,
 * padded to 8. */
#define ENTRY_HDR 16u
#define WRAP      0xffffffffu
/* Datagrams per received buffer (times 16, averaged) from which receiving
 * straight into the ring beats recvmmsg and a copy: one recvmsg per buffer
 * then costs less than the copy it saves. */
#define DIRECT_MIN_SEGS16 (4 * 16)

struct net_ring {
	struct net_rx *n;
	uint8_t *buf;
	size_t size;
	_Atomic uint64_t head; /* bytes ever written (producer) */
	_Atomic uint64_t tail; /* bytes ever consumed (consumer) */
	_Atomic int stop;
	_Atomic uint64_t dropped;
	int error;
	unsigned segs16; /* producer: datagrams per buffer, x16, moving average */
	/* consumer: the entry being handed out datagram by datagram */
	uint8_t *pos;     /* next datagram */
	size_t left, seg; /* bytes of the entry not yet handed out; datagram size */
	uint64_t end;     /* tail once the entry is all released */
	uint64_t before;  /* the entry's drop count */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t more;
};

static size_t entry_size(size_t len)
{
	return (ENTRY_HDR + len + 7) & ~(size_t)7;
}

static unsigned segments(size_t len, size_t seg)
{
	return seg ? (unsigned)((len + seg - 1) / seg) : 1;
}

/* Producer: room for an entry of up to len bytes at the head: its data
 * area, with *skip set to the bytes left unused before the end of the
 * buffer when it has to start again at 0; NULL when the ring is full. */
static uint8_t *reserve(struct net_ring *r, size_t len, size_t *skip)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	size_t need = entry_size(len), off = (size_t)(head % r->size);

	*skip = off + need > r->size ? r->size - off : 0;
	if (head + *skip + need - tail > r->size)
		return NULL;
	return r->buf + (*skip ? 0 : off) + ENTRY_HDR;
}

/* Producer: publish the entry reserve() made room for, now holding len
 * bytes in datagrams of seg. */
static void commit(struct net_ring *r, size_t skip, uint32_t len, uint32_t seg)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	size_t off = (size_t)(head % r->size);

	if (skip) {
		uint32_t mark = WRAP;
		memcpy(r->buf + off, &mark, sizeof(mark));
		head += skip;
		off = 0;
	}
	uint64_t dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed);
	memcpy(r->buf + off, &len, sizeof(len));
	memcpy(r->buf + off + 4, &seg, sizeof(seg));
	memcpy(r->buf + off + 8, &dropped, sizeof(dropped));
	atomic_store_explicit(&r->head, head + entry_size(len), memory_order_release);
	/* moving average over about 8 buffers */
	r->segs16 = (r->segs16 * 7 + segments(len, seg) * 16) / 8;
}

/* Producer: copy one received buffer in, or drop and count its datagrams. */
static void push(struct net_ring *r, const uint8_t *data, uint32_t len, uint32_t seg)
{
	size_t skip;
	uint8_t *p = reserve(r, len, &skip);

	if (!p) {
		atomic_fetch_add_explicit(&r->dropped, segments(len, seg), memory_order_relaxed);
		return;
	}
	memcpy(p, data, len);
	commit(r, skip, len, seg);
}

/* Buffers straight into the ring, up to a batch: how many, or -errno. 0
 * also when the ring has no room for a whole buffer (*full set): then the
 * copying path receives, and drops what does not fit. */
static int receive_direct(struct net_ring *r, int *full)
{
	int got = 0;

	*full = 0;
	while (got < NET_BATCH) {
		size_t skip, len, seg;
		uint8_t *p = reserve(r, NET_BUF_LEN, &skip);
		int rc;
		if (!p) {
			*full = got == 0;
			break;
		}
		rc = net_recv_into(r->n, p, NET_BUF_LEN, &len, &seg);
		if (rc < 0)
			return got ? got : rc;
		if (rc == 0)
			break;
		commit(r, skip, (uint32_t)len, (uint32_t)seg);
		got++;
	}
	return got;
}

static void *receive_loop(void *arg)
{
	struct net_ring *r = arg;

	while (!atomic_load(&r->stop)) {
		int got = 0, full = 0;
		int direct = r->n->gro && r->segs16 >= DIRECT_MIN_SEGS16;
		if (direct) {
			got = receive_direct(r, &full);
			if (got == 0 && !full) { /* nothing queued */
				got = net_wait(r->n, 100);
				if (got < 0 && got != -EINTR) {
					r->error = got;
					break;
				}
				continue;
			}
		}
		if (!direct || full) {
			got = net_recv(r->n, 100);
			for (int i = 0; i < got; i++)
				push(r, net_buf(r->n, (unsigned)i), (uint32_t)r->n->len[i],
				     (uint32_t)r->n->seg[i]);
		}
		if (got < 0 && got != -EINTR) {
			r->error = got;
			break;
		}
		if (got > 0) {
			pthread_mutex_lock(&r->lock);
			pthread_cond_signal(&r->more);
			pthread_mutex_unlock(&r->lock);
		}
	}
	return NULL;
}

int net_ring_start(struct net_ring **out, struct net_rx *n, size_t bytes)
{
	struct net_ring *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->n = n;
	r->size = bytes & ~(size_t)7;
	if (r->size < 2 * entry_size(NET_BUF_LEN)) {
		free(r);
		return -ENOMEM;
	}
	/* Faulted in now (MAP_POPULATE), not page by page while the first
	 * burst arrives: a fault on the receive thread is time the socket
	 * buffer fills, and it was 4% of the receiver (PERFORMANCE.md). */
	r->buf = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (r->buf == MAP_FAILED) {
		free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->more, NULL);
	if (pthread_create(&r->thread, NULL, receive_loop, r) != 0) {
		munmap(r->buf, r->size);
		free(r);
		return -EAGAIN;
	}
	pthread_setname_np(r->thread, "sluice-rx");

	*out = r;
	return 0;
}

int net_ring_next(struct net_ring *r, uint8_t **data, size_t *len, int timeout_ms)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t l, seg;

	if (r->left) { /* the next datagram of a GRO buffer */
		*data = r->pos;
		*len = r->left < r->seg ? r->left : r->seg;
		r->pos += *len;
		r->left -= *len;
		return 2;
	}
	if (atomic_load_explicit(&r->head, memory_order_acquire) == tail) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)timeout_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&r->lock);
		while (atomic_load_explicit(&r->head, memory_order_acquire) == tail &&
		       pthread_cond_timedwait(&r->more, &r->lock, &ts) == 0)
			;
		pthread_mutex_unlock(&r->lock);
		if (atomic_load_explicit(&r->head, memory_order_acquire) == tail)
			return 0;
	}
	memcpy(&l, r->buf + tail % r->size, sizeof(l));
	if (l == WRAP) { /* the producer wrapped here: the entry is at 0 */
		tail += r->size - tail % r->size;
		memcpy(&l, r->buf, sizeof(l));
	}
	memcpy(&seg, r->buf + tail % r->size + 4, sizeof(seg));
	memcpy(&r->before, r->buf + tail % r->size + 8, sizeof(r->before));
	r->end = tail + entry_size(l);
	r->pos = r->buf + tail % r->size + ENTRY_HDR;
	r->seg = seg ? seg : l;
	*data = r->pos;
	*len = l < r->seg ? l : r->seg;
	r->pos += *len;
	r->left = l - *len;
	return 1;
}

/* The entry's space goes back to the producer with its last datagram. */
void net_ring_release(struct net_ring *r)
{
	if (!r->left)
		atomic_store_explicit(&r->tail, r->end, memory_order_release);
}

uint64_t net_ring_dropped_before(const struct net_ring *r)
{
	return r->before;
}

uint64_t net_ring_dropped(const struct net_ring *r)
{
	return atomic_load_explicit(&((struct net_ring *)r)->dropped, memory_order_relaxed);
}

int net_ring_stop(struct net_ring *r)
{
	int err;

	if (!r)
		return 0;
	atomic_store(&r->stop, 1);
	pthread_join(r->thread, NULL);
	err = r->error;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->more);
	munmap(r->buf, r->size);
	free(r);
	return err;
}
