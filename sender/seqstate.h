/* SPDX-License-Identifier: MIT */
/* The sender's durable, per-key sequence counter (rollback/replay defence:
 * the receiver refuses a manifest whose sequence is not newer). */
#ifndef SLUICE_SENDER_SEQSTATE_H
#define SLUICE_SENDER_SEQSTATE_H

#include <stddef.h>
#include <stdint.h>

/* Default state directory: $SLUICE_STATE_DIR, else $XDG_STATE_HOME/sluice,
 * else $HOME/.local/state/sluice. Written into buf. */
const char *seq_default_dir(char *buf, size_t len);

/* Take the next sequence number for this key: max(last + 1, wall clock in
 * microseconds), persisted (write, fsync, rename, fsync dir) under an flock
 * before it is returned, so concurrent senders never share one. */
__attribute__((warn_unused_result)) int seq_next(const char *dir, const char *keyid_hex,
                                                 uint64_t *out, char *err, size_t errlen);

#endif
