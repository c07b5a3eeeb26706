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

#define ENTRY_HDR 8u
#define WRAP      0xffffffffu

struct net_ring {
	struct net_rx *n;
	uint8_t *buf;
	size_t size;
	_Atomic uint64_t head; /* bytes ever written (producer) */
	_Atomic uint64_t tail; /* bytes ever consumed (consumer) */
	uint64_t pending;      /* bytes of the entry handed out, to release */
	_Atomic int stop;
	_Atomic uint64_t dropped;
	int error;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t more;
};

static size_t entry_size(size_t len)
{
	return (ENTRY_HDR + len + 7) & ~(size_t)7;
}

/* Producer: copy one datagram in, wrapping with a marker at the end. */
static void push(struct net_ring *r, const uint8_t *data, uint32_t len)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	size_t need = entry_size(len), off = (size_t)(head % r->size);
	size_t skip = off + need > r->size ? r->size - off : 0;

	if (head + skip + need - tail > r->size) {
		atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
		return;
	}
	if (skip) {
		uint32_t mark = WRAP;
		memcpy(r->buf + off, &mark, sizeof(mark));
		head += skip;
		off = 0;
	}
	memcpy(r->buf + off, &len, sizeof(len));
	memcpy(r->buf + off + ENTRY_HDR, data, len);
	atomic_store_explicit(&r->head, head + need, memory_order_release);
}

static void *receive_loop(void *arg)
{
	struct net_ring *r = arg;

	while (!atomic_load(&r->stop)) {
		int got = net_recv(r->n, 100);
		if (got < 0 && got != -EINTR) {
			r->error = got;
			break;
		}
		for (int i = 0; i < got; i++) {
			const uint8_t *b = net_buf(r->n, (unsigned)i);
			size_t len = r->n->len[i], seg = r->n->seg[i] ? r->n->seg[i] : len;
			do { /* a GRO buffer is split back into its datagrams */
				size_t one = len < seg ? len : seg;
				push(r, b, (uint32_t)one);
				b += one;
				len -= one;
			} while (len);
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
	uint32_t l;

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
	*data = r->buf + tail % r->size + ENTRY_HDR;
	*len = l;
	r->pending = tail + entry_size(l);
	return 1;
}

void net_ring_release(struct net_ring *r)
{
	atomic_store_explicit(&r->tail, r->pending, memory_order_release);
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
