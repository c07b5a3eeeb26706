/* SPDX-License-Identifier: MIT */
/* Blocks in flight, decoded as a product code.
 *
 * Rows are blocks: any k of a row's symbols rebuild it (inner RS). Rows are
 * grouped: G data rows and P parity rows, where parity row j holds, symbol
 * position by symbol position, RS repair over the group's data rows (outer
 * RS, "columns"). A row short of symbols can get them from its columns and
 * a column short of entries from its rows; iterating the two decodes
 * recovers far more loss than either alone for the same overhead.
 *
 *     row decode ──► new column entries ──► column decode ──► new row symbols
 *          ▲                                                        │
 *          └────────────────────────────────────────────────────────┘
 *
 * Memory is bounded by a pool budget shared by all sessions, never by object
 * size: when it is reached the least recently touched group is evicted.
 */
#ifndef SLUICE_RECEIVER_GROUPS_H
#define SLUICE_RECEIVER_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

struct fec;
struct group;

struct group_pool {
	struct group *lru_head, *lru_tail; /* head = most recent */
	size_t bytes, budget;
	uint64_t evicted;
	struct fec *fec;
	uint8_t *scratch; /* PROTO_MAX_SYMBOLS * largest symbol */
	uint8_t *zero;    /* one all-zero symbol of the largest size */
};

/* Called for every data row that becomes whole, with its stored bytes.
 * Returns 0, or non-zero to stop (the owner failed the object). */
typedef int (*row_done_fn)(void *ctx, uint32_t block, const uint8_t *stored,
                           const struct symhdr *sh, unsigned repaired);
/* The stored bytes a row_done_fn is given may be kept past the call, and
 * past the group: groupset_hold takes a reference to the row's buffer (a
 * delivered row is never written again), groupset_drop gives it back, from
 * any thread; the last one frees it. */
void groupset_hold(const uint8_t *stored);
void groupset_drop(const uint8_t *stored);

struct groupset {
	struct group_pool *pool;
	uint16_t S;
	uint8_t kmax;
	uint8_t G, P;
	uint32_t nblocks; /* data blocks; parity rows are numbered after them */
	unsigned window;  /* group slots; group g lives in slot g % window */
	struct group **slot;
	uint32_t newest; /* highest group id seen */
	row_done_fn done;
	void *ctx;
	int stopped;
};

enum add_result {
	ADD_STORED = 0,    /* kept (or already known) */
	ADD_DUPLICATE = 1, /* already had this symbol */
	ADD_MISMATCH = 2,  /* symbol header disagrees with earlier symbols */
	ADD_NOMEM = 3,
	ADD_STOPPED = 4, /* the row callback asked to stop */
};

__attribute__((warn_unused_result)) int group_pool_init(struct group_pool *p, size_t budget);
void group_pool_free(struct group_pool *p);

__attribute__((warn_unused_result)) int groupset_init(struct groupset *gs, struct group_pool *pool,
                                                      uint16_t S, uint8_t kmax, uint8_t G,
                                                      uint8_t P, uint32_t nblocks, unsigned window,
                                                      row_done_fn done, void *ctx);
void groupset_free(struct groupset *gs);

/* Group id of a wire block number (data block or parity row). */
uint32_t groupset_group_of(const struct groupset *gs, uint32_t block);

/* Store one authenticated symbol of wire block `block`; decodes the row as
 * soon as it has k symbols (and calls done for data rows). */
__attribute__((warn_unused_result)) enum add_result groupset_add(struct groupset *gs,
                                                                 uint32_t block, unsigned sym,
                                                                 const struct symhdr *sh,
                                                                 const uint8_t *data);

/* Where source symbol sym of wire block `block` would be stored, when its
 * row already exists, agrees with sh and lacks that symbol; NULL otherwise.
 * Changes nothing, so it may be asked about an unauthenticated frame: the
 * frame is then decrypted straight into the slot, which the caller wipes if
 * the tag fails, and groupset_add given the slot itself as data skips the
 * copy. */
uint8_t *groupset_slot(const struct groupset *gs, uint32_t block, unsigned sym,
                       const struct symhdr *sh);

/* Run the iterative row/column decode on groups that got new symbols and
 * that the stream has moved past (or, with all = 1, on every group). */
void groupset_sweep(struct groupset *gs, int all);

/* Source symbols still missing in groups in flight (for receipts). Rows
 * whose block is set in the bitmap `known` (may be NULL) are not counted:
 * their block is already on disk. */
uint64_t groupset_missing(const struct groupset *gs, const uint8_t *known,
                          uint32_t *rows_in_flight);

#endif
