/* SPDX-License-Identifier: MIT */
/* Partial objects kept between sends ("resume without a back channel",
 * DESIGN.md). When a transfer ends incomplete after its manifest verified,
 * the blocks it wrote (decoded from authenticated symbols; those the content
 * stream reached were also checked against their block hashes) are kept in
 * STATE/partial/<object id>.part with a
 * small state file <object id>.state (which blocks, and each block's k).
 * The object id binds the block hashes, so when the same content is sent
 * again, under any later sequence number, the new session adopts those
 * blocks and needs only the rest. The final whole-content hash still covers
 * every byte before anything is published. Partials older than the
 * retention time are removed. */
#ifndef SLUICE_RECEIVER_PARTIAL_H
#define SLUICE_RECEIVER_PARTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"
#include "staging.h"

/* Keep the staging file fd/part (object_size bytes, its verified blocks
 * marked in done, their k in kb) for object_id: made durable, moved to
 * STATE/partial. On success the staging name is gone (part[0] = '\0').
 * 0 or -errno. */
__attribute__((warn_unused_result)) int partial_save(struct staging *st, int fd, char *part,
                                                     const uint8_t object_id[PROTO_HASH_LEN],
                                                     uint32_t blocks, const uint8_t *done,
                                                     const uint8_t *kb);

/* Take the partial for object_id, if there is one of this size and block
 * count: its file is renamed over the staging file `part` (so the caller's
 * fd must be replaced by *fd_out) or, when keep_fd is set, its verified
 * blocks not already in done are copied into fd. The blocks are ORed into
 * done and their k written into kb. Returns the number of blocks taken (0
 * when there is none), or -errno. The partial is gone afterwards. */
__attribute__((warn_unused_result)) long
partial_take(struct staging *st, const char *part, int fd, int keep_fd,
             const uint8_t object_id[PROTO_HASH_LEN], uint64_t object_size, uint32_t chunk,
             uint32_t blocks, uint8_t *done, uint8_t *kb, int *fd_out);

/* Remove partials last written more than max_age_s seconds ago (and any
 * leftovers of an interrupted save). Returns how many objects were removed. */
int partial_expire(struct staging *st, uint64_t max_age_s);

#endif
