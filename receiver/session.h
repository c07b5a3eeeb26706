/* SPDX-License-Identifier: MIT */
/* The receiver's state machine: sessions announced by trusted senders,
 * authenticated frames routed to their blocks, verified objects published,
 * everything that happened written to the receipt log. */
#ifndef SLUICE_RECEIVER_SESSION_H
#define SLUICE_RECEIVER_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "groups.h"
#include "proto/frame.h"
#include "staging.h"
#include "writer.h"

struct ledger;
struct receipt_log;
struct receipt_rec;
struct session;

struct trusted_key {
	uint8_t id[PROTO_KEYID_LEN];
	uint8_t pk[32];
};

struct rcv_config {
	uint8_t box_pk[32];
	uint8_t *box_sk; /* sodium_malloc'd */
	uint8_t my_id[PROTO_KEYID_LEN];
	struct trusted_key *trusted;
	unsigned ntrusted;
	unsigned max_sessions;
	uint64_t session_timeout_ns; /* no frame for this long: incomplete */
	uint64_t end_grace_ns;       /* after END, wait this long for stragglers */
	uint64_t max_object_size;
	size_t memory_budget;     /* bytes for blocks in flight */
	uint64_t partial_keep_s;  /* keep incomplete objects' blocks this long; 0 = never */
	uint64_t link_timeout_ns; /* a beaconing sender silent this long: link-down */
};

/* What became of each datagram: it lands in exactly one of accepted,
 * announce_repeat, late_status, beacon_ok and the counters of refusals (bad_header ..
 * announce_refused, the other beacon_*). duplicate counts accepted symbols
 * the receiver already held. */
struct rcv_stats {
	uint64_t datagrams;
	uint64_t accepted; /* authenticated (or signed) and valid throughout */
	uint64_t bad_header;
	uint64_t bad_length;
	uint64_t unknown_session;
	uint64_t finished_session;
	uint64_t late_status; /* authenticated HEARTBEAT/END of a session already finished */
	uint64_t replayed;
	uint64_t bad_tag;
	uint64_t bad_symbol; /* authenticated, but a symbol header or status body is invalid */
	uint64_t duplicate;
	uint64_t announce_repeat;
	uint64_t announce_bad;
	uint64_t announce_not_for_us;
	uint64_t announce_untrusted;
	uint64_t announce_bad_signature;
	uint64_t announce_refused;
	uint64_t sessions_evicted; /* by a newer announcement, table full */
	uint64_t beacon_ok;
	uint64_t beacon_bad; /* malformed, not for us, or from an untrusted key */
	uint64_t beacon_bad_signature;
	uint64_t beacon_stale; /* replayed or out of order */
	uint64_t beacon_rate_limited;
	uint64_t published;
	uint64_t failed;
	uint64_t duplicates; /* objects already published, not published again */
	uint64_t replays;    /* manifests not newer than the sender's last */
};

/* A finished session's AEAD context, kept a little longer: the sender's
 * last END frames leave up to 250 ms after its first (PROTOCOL.md §10),
 * and an object is published on the first. A late status frame that
 * authenticates counts for the sender's link (link.h) instead of as loss. */
#define RCV_TOMBS 4
struct aead_ctx;
struct rcv_tomb {
	uint64_t id;      /* session id; 0: unused */
	uint64_t until;   /* CLOCK_MONOTONIC expiry */
	uint64_t counter; /* highest counter seen: only newer frames count */
	struct aead_ctx *aead;
	const struct trusted_key *sender;
};

struct receiver {
	const struct rcv_config *cfg;
	struct staging *st;
	struct receipt_log *log;
	struct ledger *ledger;
	struct session **sessions;
	struct link *links; /* one per trusted key */
	unsigned nsessions;
	struct group_pool pool;
	struct writer writer; /* decompress, hash and write blocks (writer.h) */
	uint64_t next_expiry; /* when to look for stale partials next */
	uint64_t dead[1024];  /* recently finished or refused session ids */
	/* refusal receipts: a token bucket, so replayed announcements cannot
	 * grow the receipt log without bound */
	struct tbucket refusals;
	uint64_t refusals_unlogged;
	unsigned dead_next;
	struct rcv_tomb tombs[RCV_TOMBS];
	unsigned tomb_next;
	uint64_t now; /* the latest now given to rcv_handle or rcv_tick */
	struct rcv_stats stats;
	/* What this receiver dropped itself, kept up to date by the caller of
	 * rcv_handle: datagrams on a full receive ring, and the kernel's count
	 * of packets dropped on a full socket buffer (with GRO one packet can
	 * be a train of up to 64 KiB of datagrams). ring_dropped_before: the
	 * ring's count when the datagram being handled arrived, so that a
	 * transfer's own-loss figure includes what the ring dropped while its
	 * announcement waited in it. */
	uint64_t ring_dropped, socket_drops, ring_dropped_before;
};

__attribute__((warn_unused_result)) int rcv_init(struct receiver *r, const struct rcv_config *cfg,
                                                 struct staging *st, struct receipt_log *log,
                                                 struct ledger *ledger);
void rcv_free(struct receiver *r);

/* Commit a receipt record; a failure is logged (the receiver goes on). */
void receipt_write(struct receipt_rec *rec);

/* One datagram, in place (it is decrypted in buf). now = CLOCK_MONOTONIC. */
void rcv_handle(struct receiver *r, uint8_t *buf, size_t len, uint64_t now);
/* Timers: publish completed objects, give up on stalled ones. */
void rcv_tick(struct receiver *r, uint64_t now);
/* The caller was busy for ns up to now (a slow disk, say) and handled
 * nothing meanwhile: what arrived then still waits in the
 * receive ring, so that time is not the senders' silence. Every timer that
 * measures silence (session timeout, end grace, link-down) is moved on by
 * ns, never past now, and so is the grace of finished sessions' late
 * frames. */
void rcv_pause(struct receiver *r, uint64_t ns, uint64_t now);
/* Start-up, after staging is cleaned: if the last run stopped between
 * moving an object into the inbox and writing its receipt, write the
 * receipt now (or a "failed" one if the object is not there). Returns 1 when
 * it found such an object, 0 when not, -errno when the log cannot be
 * written. */
int rcv_recover(struct receiver *r);
/* Shutdown: record every unfinished session as incomplete. */
void rcv_abandon_all(struct receiver *r, const char *reason);

#endif
