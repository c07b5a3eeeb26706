/* SPDX-License-Identifier: MIT */
/* What the receiver must remember across restarts: the newest manifest
 * sequence accepted from each sender (rollback and replay defence) and the
 * objects already published (exact duplicates are logged, not published
 * twice). Both live in the state directory and are updated durably. */
#ifndef SLUICE_RECEIVER_LEDGER_H
#define SLUICE_RECEIVER_LEDGER_H

#include <stdint.h>

#include "proto/frame.h"

struct ledger {
	int senders_fd; /* STATE/senders: one file per sender key id */
	int objects_fd; /* STATE/objects: one empty file per published object */
};

/* Open (creating) the two directories under the state directory fd. */
__attribute__((warn_unused_result)) int ledger_open(struct ledger *l, int state_fd);
void ledger_close(struct ledger *l);

/* Newest sequence accepted from this sender, 0 if none. */
uint64_t ledger_sequence(const struct ledger *l, const uint8_t id[static PROTO_KEYID_LEN]);
/* Record seq as the newest (write, fsync, rename, fsync dir). 0 or -errno. */
__attribute__((warn_unused_result)) int
ledger_set_sequence(struct ledger *l, const uint8_t id[static PROTO_KEYID_LEN], uint64_t seq);

int ledger_has_object(const struct ledger *l, const uint8_t oid[static PROTO_HASH_LEN]);
__attribute__((warn_unused_result)) int ledger_add_object(struct ledger *l,
                                                          const uint8_t oid[static PROTO_HASH_LEN]);

#endif
