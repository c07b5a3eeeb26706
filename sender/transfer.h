/* SPDX-License-Identifier: MIT */
/* One object over the link: announce, manifest carousel, interleaved data
 * blocks for each pass, heartbeats, end-of-object hints. */
#ifndef SLUICE_SENDER_TRANSFER_H
#define SLUICE_SENDER_TRANSFER_H

#include <stdint.h>

#include "proto/frame.h"

struct udp_tx;

struct transfer_args {
	const char *path;
	const char *name; /* published name */
	struct udp_tx *tx;
	uint16_t symbol_size;
	double fec_pct;
	int compress;
	unsigned passes;
	enum aead_alg aead;
	uint64_t sequence;
	uint64_t expires;
	const uint8_t *sign_sk; /* 64 bytes */
	const uint8_t *sender_id;
	const uint8_t *receiver_pk; /* X25519, 32 bytes */
	const uint8_t *receiver_id;
	int progress; /* draw a progress bar on stderr */
	/* called between groups (spool mode: beacons); non-zero stops */
	int (*tick)(void *ctx);
	/* called while the source is hashed, before the first frame (spool
	 * mode: beacons, so the receiver does not log the link down) */
	int (*plan_tick)(void *ctx);
	void *tick_ctx; /* of both */
};

struct transfer_result {
	uint64_t size;
	int bundle;
	uint64_t files; /* regular files in it: 1 for a file */
	uint64_t stored_bytes;
	uint64_t frames;
	uint64_t seconds_ns;
	uint8_t object_id[PROTO_HASH_LEN];
	uint8_t content_hash[PROTO_HASH_LEN];
};

/* Send a->path: a regular file, or a directory as one bundle object.
 * Returns 0 when every frame was handed to the kernel, -errno otherwise,
 * with a user-facing message in err. */
__attribute__((warn_unused_result)) int
transfer_file(const struct transfer_args *a, struct transfer_result *res, char *err, size_t errlen);

#endif
