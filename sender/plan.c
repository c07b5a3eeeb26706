/* SPDX-License-Identifier: MIT */
/* Pass one: content hash with its block prefix hashes, signed manifest. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/uring_read.h"
#include "common/util.h"
#include "plan.h"
#include "tree.h"

int source_reader(const struct source *src, uint32_t chunk, unsigned depth, struct ureader **r)
{
	if (src->tree)
		return ureader_open_files(r, src->tree->root_fd, src->paths, src->sizes,
		                          src->nfiles, chunk);
	return ureader_open(r, src->fd, src->size, chunk, depth);
}

/* Per-file hashes of a bundle, fed with the concatenated stream. */
struct file_hasher {
	struct tree *t;
	size_t i;      /* current entry */
	uint64_t left; /* bytes of it still to come */
	crypto_generichash_state st;
};

/* Finish every file that has no bytes left (empty files included) and
 * start the next one that has. */
static void fh_advance(struct file_hasher *fh)
{
	while (fh->i < fh->t->n && fh->left == 0) {
		struct tree_entry *e = &fh->t->e[fh->i];
		if (e->mode != ENTRY_DIR)
			crypto_generichash_final(&fh->st, e->hash, PROTO_HASH_LEN);
		fh->i++;
		while (fh->i < fh->t->n && fh->t->e[fh->i].mode == ENTRY_DIR)
			fh->i++;
		if (fh->i < fh->t->n) {
			crypto_generichash_init(&fh->st, NULL, 0, PROTO_HASH_LEN);
			fh->left = fh->t->e[fh->i].size;
		}
	}
}

static void fh_start(struct file_hasher *fh, struct tree *t)
{
	fh->t = t;
	fh->i = 0;
	while (fh->i < t->n && t->e[fh->i].mode == ENTRY_DIR)
		fh->i++;
	if (fh->i < t->n) {
		crypto_generichash_init(&fh->st, NULL, 0, PROTO_HASH_LEN);
		fh->left = t->e[fh->i].size;
		fh_advance(fh);
	}
}

static void fh_update(struct file_hasher *fh, const uint8_t *data, size_t len)
{
	while (len > 0 && fh->i < fh->t->n) {
		size_t n = fh->left < len ? (size_t)fh->left : len;
		crypto_generichash_update(&fh->st, data, n);
		data += n;
		len -= n;
		fh->left -= n;
		fh_advance(fh);
	}
}

/* A bundle's per-file hashes on a second thread, chunk by chunk, while
 * this one feeds the content hash: pass one then takes the time of one
 * BLAKE2b over the object, not two. */
struct file_thread {
	pthread_t thread;
	sem_t ready, done;
	const uint8_t *data;
	size_t len;
	int stop;
	struct file_hasher fh;
};

static void *file_hash_main(void *arg)
{
	struct file_thread *h = arg;

	for (;;) {
		sem_wait(&h->ready);
		if (h->stop)
			return NULL;
		fh_update(&h->fh, h->data, h->len);
		sem_post(&h->done);
	}
}

/* One BLAKE2b stream over the content in order. Block b's hash is that
 * stream finished on a copy of its state at the end of block b, i.e. the
 * BLAKE2b-256 of bytes [0, end of block b) (PROTOCOL.md §8.1): the last
 * one is the content hash, and the receiver checks every block with the
 * one pass it makes for the content hash anyway. */
static int hash_blocks(struct plan *p, const struct source *src, const struct plan_args *a,
                       char *err, size_t errlen)
{
	struct file_thread h = {0};
	crypto_generichash_state whole, snap;
	struct ureader *r;
	const uint8_t *data;
	size_t len;
	uint64_t idx, done = 0;
	int rc, threaded = 0;

	rc = source_reader(src, p->chunk, 4, &r);
	if (rc < 0) {
		snprintf(err, errlen, "cannot set up file reading: %s", strerror(-rc));
		return rc;
	}
	crypto_generichash_init(&whole, NULL, 0, PROTO_HASH_LEN);
	sem_init(&h.ready, 0, 0);
	sem_init(&h.done, 0, 0);
	if (src->tree) {
		fh_start(&h.fh, src->tree);
		threaded = pthread_create(&h.thread, NULL, file_hash_main, &h) == 0;
	}
	while ((rc = ureader_next(r, &data, &len, &idx)) == 1) {
		h.data = data;
		h.len = len;
		if (threaded)
			sem_post(&h.ready);
		crypto_generichash_update(&whole, data, len);
		snap = whole;
		crypto_generichash_final(&snap, p->block_hashes + idx * PROTO_HASH_LEN,
		                         PROTO_HASH_LEN);
		if (threaded)
			sem_wait(&h.done); /* the chunk's buffer is reused by the next read */
		else if (src->tree)
			fh_update(&h.fh, data, len);
		done += len;
		if (a->on_read)
			a->on_read(a->on_read_ctx, done);
	}
	if (threaded) {
		h.stop = 1;
		sem_post(&h.ready);
		pthread_join(h.thread, NULL);
	}
	sem_destroy(&h.ready);
	sem_destroy(&h.done);
	if (rc < 0) {
		const char *path = ureader_failed_path(r);
		if (rc == -EIO && path)
			snprintf(err, errlen,
			         "%s changed while the bundle was being read; send it again "
			         "when nothing writes to it",
			         path);
		else
			snprintf(err, errlen, "reading the file failed: %s%s", strerror(-rc),
			         rc == -EIO ? " (did it shrink while being sent?)" : "");
	}
	ureader_close(r);
	if (rc < 0)
		return rc;
	crypto_generichash_final(&whole, p->content_hash, PROTO_HASH_LEN);
	return 0;
}

static int build_manifest(struct plan *p, const struct source *src, const struct plan_args *a)
{
	uint8_t *entries = NULL;
	struct manifest m = {
	    .kind = src->tree ? MANIFEST_KIND_BUNDLE : MANIFEST_KIND_FILE,
	    .sequence = a->sequence,
	    .created_ns = 0,
	    .expires = a->expires,
	    .object_size = p->size,
	    .chunk_size = p->chunk,
	    .symbol_size = p->S,
	    .k = p->k,
	    .block_count = p->blocks,
	    .name = (const uint8_t *)a->name,
	    .name_len = (uint16_t)strlen(a->name),
	    .block_hashes = p->block_hashes,
	};
	int rc = 0;

	m.created_ns = wall_ns();
	memcpy(m.sender_id, a->sender_id, PROTO_KEYID_LEN);
	memcpy(m.content_hash, p->content_hash, PROTO_HASH_LEN);
	if (src->tree) {
		size_t n = tree_encode(src->tree, &entries);
		if (n == 0 || n > UINT32_MAX)
			return -EFBIG;
		m.entries = entries;
		m.entries_len = (uint32_t)n;
		m.entry_count = (uint32_t)src->tree->n;
	}
	object_id_compute(&m, m.object_id);
	memcpy(p->object_id, m.object_id, PROTO_HASH_LEN);

	p->manifest_len = proto_manifest_len(m.name_len, m.entries_len, p->blocks);
	if (p->manifest_len == 0)
		rc = -EFBIG;
	else if (!(p->manifest = malloc(p->manifest_len)))
		rc = -ENOMEM;
	else if (proto_manifest_encode(p->manifest, p->manifest_len, &m) != p->manifest_len)
		rc = -EINVAL;
	free(entries);
	if (rc < 0)
		return rc;
	crypto_sign_detached(p->manifest + p->manifest_len - MANIFEST_SIGNATURE_LEN, NULL,
	                     p->manifest, p->manifest_len - MANIFEST_SIGNATURE_LEN, a->sign_sk);
	crypto_generichash(p->manifest_hash, PROTO_HASH_LEN, p->manifest, p->manifest_len, NULL, 0);
	return 0;
}

int plan_object(struct plan *p, const struct source *src, const struct plan_args *a, char *err,
                size_t errlen)
{
	uint64_t size = src->size;
	uint64_t blocks;
	int rc;

	memset(p, 0, sizeof(*p));
	if (!proto_name_valid((const uint8_t *)a->name, strlen(a->name))) {
		snprintf(err, errlen,
		         "'%s' cannot be published under that name: names are 1-255 bytes, "
		         "without '/', control characters or a leading '.'; use --name",
		         a->name);
		return -EINVAL;
	}
	p->size = size;
	p->S = a->symbol_size;
	p->k = a->k;
	p->chunk = (uint32_t)a->k * a->symbol_size;
	blocks = proto_block_count(size, p->chunk);
	if (blocks > UINT32_MAX ||
	    proto_manifest_len((uint16_t)strlen(a->name), 0, (uint32_t)blocks) == 0) {
		snprintf(err, errlen,
		         "the file is too large for one object at this block size; "
		         "use a larger --mtu");
		return -EFBIG;
	}
	p->blocks = (uint32_t)blocks;
	p->block_hashes = malloc(blocks ? blocks * PROTO_HASH_LEN : 1);
	if (!p->block_hashes) {
		snprintf(err, errlen, "out of memory for the hashes of %" PRIu64 " blocks", blocks);
		return -ENOMEM;
	}
	rc = hash_blocks(p, src, a, err, errlen);
	if (rc < 0)
		return rc;
	rc = build_manifest(p, src, a);
	if (rc == -EFBIG)
		snprintf(err, errlen,
		         "the manifest of this object would exceed %u MiB (too many files "
		         "or blocks); split it or use a larger --mtu",
		         PROTO_MAX_MANIFEST >> 20);
	else if (rc < 0)
		snprintf(err, errlen, "cannot build the manifest: %s", strerror(-rc));
	return rc;
}

void plan_free(struct plan *p)
{
	free(p->block_hashes);
	free(p->manifest);
	memset(p, 0, sizeof(*p));
}
