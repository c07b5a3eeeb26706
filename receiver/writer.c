/* SPDX-License-Identifier: MIT */
/* The block writer's two threads: decompress and write, then hash. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "common/util.h"
#include "writer.h"

struct wjob {
	struct wjob *next;
	size_t cap; /* bytes data can hold */
	void *owner;
	int fd;
	int zstd;
	uint64_t off;
	struct wstream *ws;
	uint32_t block, stored_len, raw_len;
	int err;     /* of the write stage, passed on to the completion */
	size_t held; /* bytes counted against max_bytes */
	/* a raw block lent by the caller instead of copied into data, and
	 * what gives it back once it is written and hashed */
	const uint8_t *lent;
	void (*release)(const uint8_t *);
	uint8_t data[]; /* stored_len bytes, then raw_len more when zstd */
};

/* The raw block: lent, data itself, or the room after it for zstd's output. */
static const uint8_t *raw_of(struct wjob *j)
{
	if (j->lent)
		return j->lent;
	return j->zstd ? j->data + j->stored_len : j->data;
}

static void push_done(struct writer *w, const struct wdone *d)
{
	if (w->dn == w->dcap) {
		size_t cap = w->dcap ? w->dcap * 2 : 256;
		struct wdone *nd = malloc(cap * sizeof(*nd));
		if (!nd)
			abort(); /* a few dozen bytes per block: nothing sensible left */
		for (size_t i = 0; i < w->dn; i++)
			nd[i] = w->done[(w->dfirst + i) % w->dcap];
		free(w->done);
		w->done = nd;
		w->dcap = cap;
		w->dfirst = 0;
	}
	w->done[(w->dfirst + w->dn++) % w->dcap] = *d;
}

int wstream_init(struct wstream *ws, uint64_t size, uint32_t chunk, uint32_t blocks)
{
	memset(ws, 0, sizeof(*ws));
	atomic_init(&ws->hashed, 0);
	ws->written = calloc((size_t)blocks / 8 + 1, 1);
	if (!ws->written)
		return -ENOMEM;
	ws->size = size;
	ws->chunk = chunk;
	ws->blocks = blocks;
	crypto_generichash_init(&ws->hash, NULL, 0, PROTO_HASH_LEN);
	return 0;
}

void wstream_free(struct wstream *ws)
{
	free(ws->written);
	ws->written = NULL;
}

/* Feed the owner's whole-content hash with every block now in order and
 * check each one's prefix hash. */
static void stream_hash(struct writer *w, const struct wjob *j, const uint8_t *p)
{
	struct wstream *ws = j->ws;
	const uint8_t *expect = atomic_load_explicit(&ws->expect, memory_order_acquire);

	if (!ws->written || ws->broken || ws->mismatch)
		return;
	ws->written[j->block / 8] |= (uint8_t)(1u << (j->block % 8));
	while (expect && ws->next < ws->blocks &&
	       (ws->written[ws->next / 8] >> (ws->next % 8) & 1)) {
		uint64_t off = (uint64_t)ws->next * ws->chunk;
		size_t len = ws->size - off < ws->chunk ? (size_t)(ws->size - off) : ws->chunk;
		const uint8_t *q = p;
		if (ws->next != j->block) {
			if (pread_full(j->fd, w->back, len, (off_t)off) < 0) {
				ws->broken = 1;
				return;
			}
			q = w->back;
		}
		crypto_generichash_update(&ws->hash, q, len);
		crypto_generichash_state snap = ws->hash;
		uint8_t h[PROTO_HASH_LEN];
		crypto_generichash_final(&snap, h, sizeof(h));
		if (sodium_memcmp(h, expect + (size_t)ws->next * PROTO_HASH_LEN, sizeof(h)) != 0) {
			ws->mismatch = ws->next + 1;
			return;
		}
		ws->next++;
		atomic_store_explicit(&ws->hashed, off + len, memory_order_relaxed);
	}
}

/* Drop-behind, on the writer thread: the staging file's bytes that the
 * content stream has passed are not read again before publication (only a
 * resumed object or a bundle reads them back, from the disk then), so once
 * written back they leave the page cache. A multi-GB transfer then does not
 * push everything else out of memory, and the kernel reuses the same few
 * pages instead of taking fresh ones; on the VM measured here a fresh page
 * costs about ten times a reused one (docs/PERFORMANCE.md). DROP_LAG bytes
 * behind the stream stay, so writeback started at the last kick is usually
 * done. The waits and the page drops run here, not on the stream thread:
 * that one hashes every byte and is the receiver's bottleneck
 * (PERFORMANCE.md, run 20). */
#define DROP_LAG (32u << 20)

static void drop_behind(int fd, struct wstream *ws)
{
	uint64_t end = atomic_load_explicit(&ws->hashed, memory_order_relaxed), to;

	if (!ws->written || end < ws->dropped + 2ull * DROP_LAG)
		return;
	to = (end - DROP_LAG) & ~(uint64_t)4095;
	(void)sync_file_range(fd, (off_t)ws->dropped, (off_t)(to - ws->dropped),
	                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
	                          SYNC_FILE_RANGE_WAIT_AFTER);
	(void)posix_fadvise(fd, (off_t)ws->dropped, (off_t)(to - ws->dropped), POSIX_FADV_DONTNEED);
	ws->dropped = to;
}

/* Write stage: decompress into the job, write, start writeback. */
static void write_job(struct writer *w, struct wjob *j, ZSTD_DCtx *z)
{
	int rc;

	j->err = 0;
	if (j->zstd) {
		/* Output bounded by the signed raw length: no decompression bombs. */
		size_t n = ZSTD_decompressDCtx(z, j->data + j->stored_len, j->raw_len, j->data,
		                               j->stored_len);
		if (ZSTD_isError(n) || n != j->raw_len) {
			j->err = -EBADMSG;
			return;
		}
	}
	rc = pwrite_full(j->fd, raw_of(j), j->raw_len, (off_t)j->off);
	if (rc < 0) {
		j->err = rc;
		return;
	}
	/* Start writeback every so often: left to itself the kernel lets dirty
	 * pages pile up, then throttles writes for hundreds of ms. */
	j->ws->unflushed += j->raw_len;
	if (j->ws->unflushed >= w->writeback_kick) {
		sync_file_range(j->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		j->ws->unflushed = 0;
	}
	drop_behind(j->fd, j->ws);
}

/* Hash stage: the content stream and the completion. Jobs come
 * in submission order, each written before, so a block read back for the
 * stream is always on file. */
static void hash_job(struct writer *w, struct wjob *j, struct wdone *d)
{
	d->owner = j->owner;
	d->block = j->block;
	d->err = j->err;
	if (!j->err)
		stream_hash(w, j, raw_of(j));
	d->mismatch = j->ws->mismatch != 0;
}

/* The two FIFO queues of jobs (under the lock). */
static void enqueue(struct wjob **head, struct wjob **tail, struct wjob *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static struct wjob *dequeue(struct wjob **head, struct wjob **tail)
{
	struct wjob *j = *head;

	*head = j->next;
	if (!*head)
		*tail = NULL;
	return j;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	ZSTD_DCtx *z = w->zstd;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->more, &w->mu);
		if (!w->head)
			break;
		struct wjob *j = dequeue(&w->head, &w->tail);
		w->busy = 1;
		pthread_mutex_unlock(&w->mu);

		write_job(w, j, z);

		pthread_mutex_lock(&w->mu);
		w->busy = 0;
		w->wbytes -= j->held;
		enqueue(&w->hhead, &w->htail, j);
		pthread_cond_signal(&w->hmore);
	}
	/* Let the stream thread finish what it has and stop. */
	pthread_cond_broadcast(&w->hmore);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void *stream_main(void *arg)
{
	struct writer *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->hhead && !(w->stop && !w->head && !w->busy))
			pthread_cond_wait(&w->hmore, &w->mu);
		if (!w->hhead)
			break;
		struct wjob *j = dequeue(&w->hhead, &w->htail);
		pthread_mutex_unlock(&w->mu);

		struct wdone d;
		hash_job(w, j, &d);

		if (j->lent)
			j->release(j->lent);

		pthread_mutex_lock(&w->mu);
		w->bytes -= j->held;
		w->jobs--;
		push_done(w, &d);
		/* Keep the buffer for the next block: fresh ones from malloc
		 * are mmap'ed and page-faulted in, 45 faults a block. A job
		 * that only borrowed its block has no buffer worth keeping. */
		if (j->lent) {
			free(j);
		} else if (w->spare_bytes + j->cap <= w->max_bytes) {
			j->next = w->spare;
			w->spare = j;
			w->spare_bytes += j->cap;
		} else {
			free(j);
		}
		pthread_cond_broadcast(&w->space);
		if (!w->jobs)
			pthread_cond_broadcast(&w->idle);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int writer_start(struct writer *w, size_t max_bytes)
{
	memset(w, 0, sizeof(*w));
	w->max_bytes = max_bytes;
	w->writeback_kick = 8u << 20;
	w->zstd = ZSTD_createDCtx();
	w->back = malloc((size_t)PROTO_MAX_K * PROTO_MAX_SYMBOL);
	if (!w->zstd || !w->back) {
		ZSTD_freeDCtx(w->zstd);
		free(w->back);
		return -ENOMEM;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->more, NULL);
	pthread_cond_init(&w->hmore, NULL);
	pthread_cond_init(&w->space, NULL);
	pthread_cond_init(&w->idle, NULL);
	if (pthread_create(&w->stream_thread, NULL, stream_main, w) != 0) {
		ZSTD_freeDCtx(w->zstd);
		free(w->back);
		return -EAGAIN;
	}
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_broadcast(&w->hmore);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->stream_thread, NULL);
		ZSTD_freeDCtx(w->zstd);
		free(w->back);
		return -EAGAIN;
	}
	pthread_setname_np(w->thread, "sluice-writer");
	pthread_setname_np(w->stream_thread, "sluice-stream");

	w->started = 1;
	return 0;
}

void writer_stop(struct writer *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->more);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_join(w->stream_thread, NULL);
	free(w->done);
	while (w->spare) {
		struct wjob *j = w->spare;
		w->spare = j->next;
		free(j);
	}
	ZSTD_freeDCtx(w->zstd);
	free(w->back);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->more);
	pthread_cond_destroy(&w->hmore);
	pthread_cond_destroy(&w->space);
	pthread_cond_destroy(&w->idle);
	w->started = 0;
}

/* A spare buffer big enough, or a new one. */
static struct wjob *get_job(struct writer *w, uint32_t len)
{
	struct wjob *j = NULL, **pp;

	pthread_mutex_lock(&w->mu);
	for (pp = &w->spare; *pp; pp = &(*pp)->next) {
		if ((*pp)->cap >= len) {
			j = *pp;
			*pp = j->next;
			w->spare_bytes -= j->cap;
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	if (j)
		return j;
	j = malloc(sizeof(*j) + len);
	if (j)
		j->cap = len;
	return j;
}

/* Queue a job: hand it to the write stage, waiting while the queue holds
 * max_bytes already (one block always goes, however large). */
static void queue_job(struct writer *w, struct wjob *j)
{
	pthread_mutex_lock(&w->mu);
	if (w->jobs && w->bytes + j->held > w->max_bytes) {
		_Atomic uint64_t *waited =
		    w->wbytes * 2 > w->bytes ? &w->disk_wait_ns : &w->hash_wait_ns;
		uint64_t t0 = now_ns();
		while (w->jobs && w->bytes + j->held > w->max_bytes)
			pthread_cond_wait(&w->space, &w->mu);
		atomic_fetch_add(waited, now_ns() - t0);
	}
	w->bytes += j->held;
	w->wbytes += j->held;
	w->jobs++;
	enqueue(&w->head, &w->tail, j);
	pthread_cond_signal(&w->more);
	pthread_mutex_unlock(&w->mu);
}

/* What every job says: whose block, where it goes, how long it is stored
 * and raw. The buffer (cap) and what it holds are the submitter's part. */
static void job_init(struct wjob *j, size_t cap, void *owner, int fd, uint64_t off, uint32_t block,
                     uint32_t stored_len, uint32_t raw_len, struct wstream *ws)
{
	*j = (struct wjob){.cap = cap,
	                   .owner = owner,
	                   .fd = fd,
	                   .off = off,
	                   .ws = ws,
	                   .block = block,
	                   .stored_len = stored_len,
	                   .raw_len = raw_len};
}

int writer_submit(struct writer *w, void *owner, int fd, uint64_t off, uint32_t block,
                  const uint8_t *stored, uint32_t stored_len, uint32_t raw_len, int zstd,
                  struct wstream *ws)
{
	struct wjob *j = get_job(w, stored_len + (zstd ? raw_len : 0));

	if (!j)
		return -ENOMEM;
	job_init(j, j->cap, owner, fd, off, block, stored_len, raw_len, ws);
	j->zstd = zstd;
	j->held = j->cap;
	memcpy(j->data, stored, stored_len);
	queue_job(w, j);
	return 0;
}

int writer_submit_lent(struct writer *w, void *owner, int fd, uint64_t off, uint32_t block,
                       const uint8_t *raw, uint32_t len, struct wstream *ws,
                       void (*release)(const uint8_t *))
{
	struct wjob *j = malloc(sizeof(*j));

	if (!j)
		return -ENOMEM;
	job_init(j, 0, owner, fd, off, block, len, len, ws);
	j->held = len;
	j->lent = raw;
	j->release = release;
	queue_job(w, j);
	return 0;
}

int writer_collect(struct writer *w, struct wdone *out)
{
	int got = 0;

	pthread_mutex_lock(&w->mu);
	if (w->dn) {
		*out = w->done[w->dfirst];
		w->dfirst = (w->dfirst + 1) % w->dcap;
		w->dn--;
		got = 1;
	}
	pthread_mutex_unlock(&w->mu);
	return got;
}

/* Under the lock, with the writer idle: remove owner's completions,
 * handing the first to out (when out is given). */
static int extract(struct writer *w, void *owner, struct wdone *out)
{
	size_t kept = 0;
	int got = 0;

	for (size_t i = 0; i < w->dn; i++) {
		struct wdone d = w->done[(w->dfirst + i) % w->dcap];
		if (d.owner == owner && (!out || !got)) {
			if (out)
				*out = d;
			got = 1;
			continue;
		}
		w->done[(w->dfirst + kept++) % w->dcap] = d;
	}
	w->dn = kept;
	return got;
}

static void wait_idle(struct writer *w)
{
	while (w->jobs)
		pthread_cond_wait(&w->idle, &w->mu);
}

void writer_wait_idle(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	wait_idle(w);
	pthread_mutex_unlock(&w->mu);
}

int writer_take(struct writer *w, void *owner, struct wdone *out)
{
	int got;

	pthread_mutex_lock(&w->mu);
	wait_idle(w);
	got = extract(w, owner, out);
	pthread_mutex_unlock(&w->mu);
	return got;
}

void writer_forget(struct writer *w, void *owner)
{
	pthread_mutex_lock(&w->mu);
	wait_idle(w);
	extract(w, owner, NULL);
	pthread_mutex_unlock(&w->mu);
}
