/* SPDX-License-Identifier: MIT */
/* The block writer: two threads that take decoded blocks off the decode
 * thread and do the rest of the per-byte work, in a pipeline:
 *
 *   decode ──submit──► [sluice-writer] zstd (bounded by the block's signed
 *                      raw length), pwrite into staging, writeback
 *          ──────────► [sluice-stream] the one BLAKE2b pass over the
 *                      content, which also checks every block (below),
 *                      drop-behind ──► completion
 *
 * The decode thread is then left with AEAD and FEC. Hashing and writing
 * were one thread until run 7 of docs/PERFORMANCE.md, where that thread was
 * the receiver's busiest. Completions come back in a queue that the decode
 * thread drains (writer_collect) to mark blocks done, so all session state
 * stays on one thread. The queue of blocks is bounded in bytes; a full queue blocks
 * the decoder (the receive thread's ring absorbs the pause). */
#ifndef SLUICE_RECEIVER_WRITER_H
#define SLUICE_RECEIVER_WRITER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "proto/frame.h"

struct wjob;

/* What the writer keeps for one object. The writer's two threads each own
 * their fields (hashed alone is shared, atomic); the owner reads it only
 * once all of its blocks are back. */
struct wstream {
	/* The writer thread's: */
	uint64_t unflushed; /* bytes written since writeback was last started */
	uint64_t dropped;   /* bytes from 0 written back and dropped from the page cache */
	/* bytes from 0 the stream has checked: set by the stream thread, read
	 * by the writer, which drops what lies far enough behind it */
	_Atomic uint64_t hashed;
	/* The whole-content hash, fed in block order as blocks are written:
	 * a block that completes ahead of its turn is read back (page cache)
	 * when its turn comes. next == blocks at the end: it is complete.
	 * At the end of each block the stream, finished on a copy, gives that
	 * block's prefix hash, compared with the signed manifest's (expect,
	 * set by the owner once the manifest is verified; until then the
	 * stream waits and later reads those blocks back). */
	crypto_generichash_state hash;
	_Atomic(const uint8_t *) expect; /* the manifest's block hashes */
	uint32_t mismatch;               /* 1 + the first block whose hash differs, or 0 */
	uint8_t *written;                /* bitmap by block; NULL: no streaming hash */
	uint32_t next, blocks, chunk;
	uint64_t size;
	int broken; /* a read-back failed: the owner hashes the file itself */
};

/* 0 or -ENOMEM. */
int wstream_init(struct wstream *ws, uint64_t size, uint32_t chunk, uint32_t blocks);
void wstream_free(struct wstream *ws);

struct wdone {
	void *owner; /* the session */
	uint32_t block;
	int err;      /* 0, -EBADMSG (bad zstd), or -errno of the write */
	int mismatch; /* the stream found a block that differs from the manifest */
};

struct writer {
	pthread_t thread, stream_thread;
	pthread_mutex_t mu;
	pthread_cond_t more, hmore, space, idle;
	struct wjob *head, *tail;   /* submitted, not yet written */
	struct wjob *hhead, *htail; /* written, not yet hashed */
	struct wjob *spare;         /* buffers to reuse */
	size_t spare_bytes;
	size_t bytes, max_bytes; /* buffers of jobs in either stage */
	unsigned jobs;           /* jobs in either stage */
	int busy, stop, started; /* busy: the write stage holds a job */
	struct wdone *done;      /* ring of completions */
	size_t dcap, dfirst, dn;
	uint64_t writeback_kick;
	size_t wbytes; /* of bytes, those not yet written (the write stage) */
	/* ns writer_submit waited for room, by where most of the queued bytes
	 * were: still to be written (the disk is the limit) or written and
	 * waiting for the content hash (the CPU is) */
	_Atomic uint64_t disk_wait_ns, hash_wait_ns;
	void *zstd;    /* the writer thread's ZSTD_DCtx */
	uint8_t *back; /* the stream thread's buffer for a block read back */
};

/* 0 or -errno. max_bytes bounds the block data queued. */
__attribute__((warn_unused_result)) int writer_start(struct writer *w, size_t max_bytes);
void writer_stop(struct writer *w);

/* Queue one block: stored (stored_len bytes; zstd-compressed when zstd is
 * set) to be expanded to raw_len bytes, written at off in fd and hashed.
 * The data is copied. ws is the owner's stream state (above). 0 or
 * -ENOMEM. */
__attribute__((warn_unused_result)) int writer_submit(struct writer *w, void *owner, int fd,
                                                      uint64_t off, uint32_t block,
                                                      const uint8_t *stored, uint32_t stored_len,
                                                      uint32_t raw_len, int zstd,
                                                      struct wstream *ws);

/* The same for a raw (not compressed) block of len bytes without the copy:
 * the writer reads raw until it has written and hashed it, then calls
 * release(raw) from one of its threads. 0, or -ENOMEM (release not called). */
__attribute__((warn_unused_result)) int writer_submit_lent(struct writer *w, void *owner, int fd,
                                                           uint64_t off, uint32_t block,
                                                           const uint8_t *raw, uint32_t len,
                                                           struct wstream *ws,
                                                           void (*release)(const uint8_t *));

/* Take one completion; 1 when *out was filled, 0 when there is none. */
int writer_collect(struct writer *w, struct wdone *out);

/* Wait until every queued block has been written and hashed; its
 * completion is then waiting for writer_collect. */
void writer_wait_idle(struct writer *w);

/* Wait until every queued block has been written and hashed. Then, with take, hand
 * back one completion of owner (1, or 0 when it has none left); with
 * forget, drop all of owner's completions (it is going away). */
int writer_take(struct writer *w, void *owner, struct wdone *out);
void writer_forget(struct writer *w, void *owner);

#endif
