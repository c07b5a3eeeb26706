/* SPDX-License-Identifier: MIT */
/* Pass one over the object: hash every block and the whole content, then
 * build and sign the manifest that tells the receiver what to expect. */
#ifndef SLUICE_SENDER_PLAN_H
#define SLUICE_SENDER_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/manifest.h"

struct tree;
struct ureader;

/* What is being sent: one regular file, or a directory bundle whose bytes
 * are its files concatenated in entry order. */
struct source {
	int fd;             /* the file; -1 for a bundle */
	struct tree *tree;  /* the bundle; NULL for a file */
	const char **paths; /* bundle: its regular files in entry order */
	uint64_t *sizes;
	size_t nfiles;
	uint64_t size;         /* object size */
	struct timespec mtime; /* the file's at open (a bundle's are in tree) */
};

/* A reader of the object's bytes in chunks (io_uring for a file). */
__attribute__((warn_unused_result)) int source_reader(const struct source *src, uint32_t chunk,
                                                      unsigned depth, struct ureader **r);

struct plan {
	uint64_t size;
	uint32_t chunk; /* R = k * S */
	uint16_t S;
	uint8_t k;
	uint32_t blocks;
	uint8_t *block_hashes; /* blocks x 32 */
	uint8_t content_hash[PROTO_HASH_LEN];
	uint8_t object_id[PROTO_HASH_LEN];
	uint8_t *manifest; /* signed, manifest_len bytes */
	size_t manifest_len;
	uint8_t manifest_hash[PROTO_HASH_LEN];
};

struct plan_args {
	const char *name; /* published name */
	uint16_t symbol_size;
	uint8_t k;
	uint64_t sequence;
	uint64_t expires;       /* unix seconds, 0 = never */
	const uint8_t *sign_sk; /* Ed25519 secret key, 64 bytes */
	const uint8_t *sender_id;
	/* called after each chunk is hashed, with the bytes hashed so far
	 * (may be NULL): the pass can take minutes on a large object */
	void (*on_read)(void *ctx, uint64_t done);
	void *on_read_ctx;
};

/* Read the source once and fill p; for a bundle, also the hash of every
 * file in src->tree. Returns 0 or -errno with a user-facing message in err. */
__attribute__((warn_unused_result)) int plan_object(struct plan *p, const struct source *src,
                                                    const struct plan_args *a, char *err,
                                                    size_t errlen);
void plan_free(struct plan *p);

#endif
