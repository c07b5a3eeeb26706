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
	int state_fd;   /* STATE, for the publication journal */
	int journal_fd; /* its preallocated file, -1 when it could not be made */
};

/* The publication journal, STATE/publishing: what is being moved into the
 * inbox, written durably before the rename and removed once the object's
 * receipt is in the log. A crash in between leaves it behind, and the next
 * start writes the missing receipt (DESIGN.md: "record anything found
 * published without a receipt"). Its space is allocated at start
 * (STATE/publishing.slot), so a full disk at publication time does not stop
 * it: the slot is overwritten in place and renamed to and fro. */
struct ledger_intent {
	uint8_t object_id[PROTO_HASH_LEN];
	uint8_t content[PROTO_HASH_LEN];
	uint8_t sender[PROTO_KEYID_LEN];
	uint64_t sequence, size, session;
	uint8_t kind; /* enum manifest_kind */
	uint32_t entries;
	char name[256];
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

/* Allocate the journal's space now (after any leftover journal was dealt
 * with); later writes then need no new disk blocks. 0 or -errno. */
int ledger_intent_prepare(struct ledger *l);
__attribute__((warn_unused_result)) int ledger_intent_write(struct ledger *l,
                                                            const struct ledger_intent *in);
/* 1 and *out filled when a journal is there and intact, 0 when none (a
 * damaged one is removed and counts as none), -errno on a read error. */
int ledger_intent_read(struct ledger *l, struct ledger_intent *out);
void ledger_intent_clear(struct ledger *l);

#endif
