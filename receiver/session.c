/* SPDX-License-Identifier: MIT */
/* The receiver's state machine.
 *
 *   datagram → header (length/type) → session known? → exact length
 *            → anti-replay window → AEAD tag → symbol header → block store
 *            → k symbols: RS decode → zstd (bounded) → BLAKE2b vs manifest
 *            → pwrite to staging → all blocks + manifest: content hash
 *            → publish (renameat2 NOREPLACE) → receipt
 *
 * Announcements: length/fields → addressed to us → trusted sender key id →
 * Ed25519 signature → open the sealed session key → session.
 * Cheapest rejection first: nothing unauthenticated reaches FEC or disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "bundle.h"
#include "common/crashpoint.h"
#include "common/crypto.h"
#include "common/fec.h"
#include "common/log.h"
#include "common/util.h"
#include "ledger.h"
#include "writer.h"
#include "link.h"
#include "partial.h"
#include "proto/manifest.h"
#include "receipt.h"
#include "session.h"

#define REPLAY_WINDOW  65536u /* > one interleaved group of frames (287 x 255) */
#define GROUP_WINDOW   16u    /* outer-code groups in flight per session */
#define WRITEBACK_KICK (8u << 20)
#define HASH_BUF       (1u << 20)

enum hash_state { HASH_IDLE, HASH_RUNNING, HASH_DONE, HASH_FAILED };
enum build_state { BUILD_IDLE, BUILD_RUNNING, BUILD_DONE };

struct session {
	uint64_t id;
	uint8_t announce_raw[PROTO_ANNOUNCE_LEN];
	struct announce an;
	const struct trusted_key *sender;
	struct aead_ctx *aead;
	uint64_t first_seen, last_seen, end_seen, complete_at;
	/* r->ring_dropped, r->socket_drops and r->pool.evicted when the
	 * session began: what this receiver lost itself during the transfer
	 * (shared by sessions that overlap in time) */
	uint64_t ring_dropped0, socket_drops0, evicted0;
	uint64_t disk_wait0, hash_wait0; /* r->writer's waits then */
	/* anti-replay: bit c % W for counters in (top - W, top] */
	uint64_t replay_top;
	uint8_t *replay;
	/* manifest */
	uint32_t mf_blocks, mf_done;
	uint8_t *mf_buf;
	uint8_t *mf_doneb;
	struct groupset mf;
	int manifest_ok;
	struct manifest m;
	char name[MANIFEST_MAX_NAME + 1];
	/* data */
	struct groupset data;
	uint32_t wire_blocks; /* data blocks + outer parity rows */
	uint32_t last_group;  /* group of the previous data symbol */
	const char *fail_why; /* set inside decode callbacks, acted on after */
	struct receiver *r;
	uint8_t *done;     /* bitmap by block */
	uint8_t *carried;  /* blocks taken from an earlier send, not decoded here */
	uint32_t inflight; /* blocks handed to the writer, not yet back */
	uint8_t *queued;   /* blocks handed to the writer (done or not yet) */
	uint32_t resumed;  /* how many */
	uint8_t *kb;       /* k of each decoded block */
	uint32_t *grecv;   /* symbols received per outer-code group */
	uint32_t done_count;
	/* the whole-content hash, computed on its own thread once every
	 * block is in (hash_content) */
	pthread_t hasher;
	int hasher_started;
	_Atomic int hash_state; /* enum hash_state */
	uint8_t content[PROTO_HASH_LEN];
	/* a bundle's tree, built in staging on a thread of its own once the
	 * content verified (build_bundle): seconds per GiB, during which the
	 * receiving loop goes on with other transfers and beacons */
	pthread_t builder;
	int builder_started;
	_Atomic int build_state; /* enum build_state */
	atomic_int build_cancel;
	int build_rc; /* bundle_build's, once BUILD_DONE */
	char build_why[300];
	int fd;
	char part[STAGING_NAME_MAX];
	/* counters */
	uint64_t frames_ok, repaired, extra, status_counter;
	uint64_t announces; /* copies counted for the link (handle_announce) */
	struct wstream ws;  /* the writer's: writeback and the streaming content hash */
	uint32_t pass, passes;
};

static int mf_row_done(void *ctx, uint32_t block, const uint8_t *stored, const struct symhdr *sh,
                       unsigned repaired);
static int data_row_done(void *ctx, uint32_t block, const uint8_t *stored, const struct symhdr *sh,
                         unsigned repaired);
static void settle(struct receiver *r, struct session *s);

/* ---- small helpers ---------------------------------------------------- */

static int bit(const uint8_t *map, uint64_t i)
{
	return map[i / 8] >> (i % 8) & 1;
}

static void set_bit(uint8_t *map, uint64_t i)
{
	map[i / 8] |= (uint8_t)(1u << (i % 8));
}

static struct session *find(struct receiver *r, uint64_t id)
{
	for (unsigned i = 0; i < r->nsessions; i++)
		if (r->sessions[i]->id == id)
			return r->sessions[i];
	return NULL;
}

/* One more datagram from key k reached this receiver: its link counts it. */
static void link_count(struct receiver *r, const struct trusted_key *k, uint64_t now)
{
	link_frame(r, (unsigned)(k - r->cfg->trusted), now);
}

/* The highest counter s has seen: the sender's own count from its last
 * status frame, or the newest frame when later ones (the ENDs) were lost. */
static uint64_t top_counter(const struct session *s)
{
	return s->status_counter > s->replay_top ? s->status_counter : s->replay_top;
}

static int is_dead(const struct receiver *r, uint64_t id)
{
	for (unsigned i = 0; i < sizeof(r->dead) / sizeof(r->dead[0]); i++)
		if (r->dead[i] == id && id != 0)
			return 1;
	return 0;
}

static uint64_t block_raw_len(const struct session *s, uint32_t b)
{
	uint64_t off = (uint64_t)b * s->an.chunk_size;
	uint64_t left = s->an.object_size - off;

	return left < s->an.chunk_size ? left : s->an.chunk_size;
}

static uint64_t mf_block_len(const struct session *s, uint32_t b)
{
	uint64_t off = (uint64_t)b * s->an.chunk_size;
	uint64_t left = s->an.manifest_len - off;

	return left < s->an.chunk_size ? left : s->an.chunk_size;
}

/* ---- receipts ----------------------------------------------------------- */

static void receipt_common(struct receipt_rec *rec, const struct session *s)
{
	char kid[2 * PROTO_KEYID_LEN + 1];

	receipt_hex(rec, "object", s->an.object_id, PROTO_HASH_LEN);
	if (s->manifest_ok)
		receipt_strn(rec, "name", s->m.name, s->m.name_len);
	receipt_u64(rec, "size", s->an.object_size);
	hex_encode(kid, s->an.sender_id, PROTO_KEYID_LEN);
	receipt_str(rec, "sender", kid);
	if (s->manifest_ok)
		receipt_u64(rec, "sequence", s->m.sequence);
	receipt_hex(rec, "session", (const uint8_t *)&s->id, sizeof(s->id));
}

static void receipt_frames(struct receipt_rec *rec, const struct session *s, int published)
{
	uint64_t sent = top_counter(s); /* frames sent */
	uint64_t lost = sent > s->frames_ok ? sent - s->frames_ok : 0;

	receipt_u64(rec, "frames_received", s->frames_ok);
	if (sent) {
		receipt_u64(rec, "frames_sent", sent);
		receipt_u64(rec, "frames_lost", lost);
	}
	/* Every lost frame of a published object was made up for by the FEC;
	 * symbols_rebuilt counts source symbols computed from repair symbols
	 * (also when the originals were merely still on their way). */
	if (published)
		receipt_u64(rec, "frames_repaired", lost);
	receipt_u64(rec, "symbols_rebuilt", s->repaired);
	if (s->resumed)
		receipt_u64(rec, "blocks_resumed", s->resumed);
}

/* What this receiver lost itself while s was in transfer, as receipt
 * fields (those that are not 0); returns whether there was any. */
static int receipt_own_loss(struct receipt_rec *rec, const struct receiver *r,
                            const struct session *s)
{
	uint64_t ring = r->ring_dropped > s->ring_dropped0 ? r->ring_dropped - s->ring_dropped0 : 0;
	uint64_t sock = r->socket_drops - s->socket_drops0;
	uint64_t evicted = r->pool.evicted - s->evicted0;

	if (rec && sock)
		receipt_u64(rec, "socket_drops", sock);
	if (rec && ring)
		receipt_u64(rec, "ring_dropped", ring);
	if (rec && evicted)
		receipt_u64(rec, "groups_evicted", evicted);
	return sock || ring || evicted;
}

/* How much more loss the FEC could have absorbed: for the worst outer-code
 * group, the symbols it received beyond the sum of its blocks' k, as a
 * share of what it received. An upper bound: a product code needs slightly
 * more than that minimum. */
static void receipt_margin(struct receipt_rec *rec, const struct session *s)
{
	uint32_t groups = s->an.block_count ? (s->an.block_count - 1) / s->an.group + 1 : 0;
	uint64_t min_spare = 0;
	double min_pct = 100.0;

	for (uint32_t g = 0; g < groups; g++) {
		uint64_t need = 0, got = s->grecv[g];
		for (uint32_t b = g * s->an.group;
		     b < s->an.block_count && b < (g + 1) * s->an.group; b++)
			need += s->kb[b];
		uint64_t spare = got > need ? got - need : 0;
		double pct = got ? 100.0 * (double)spare / (double)got : 0;
		if (g == 0 || spare < min_spare)
			min_spare = spare;
		if (pct < min_pct)
			min_pct = pct;
	}
	receipt_u64(rec, "fec_margin_symbols", min_spare);
	receipt_double(rec, "fec_margin_pct", groups ? min_pct : 0.0);
}

void receipt_write(struct receipt_rec *rec)
{
	int rc = receipt_commit(rec);

	if (rc < 0)
		log_err("cannot append to the receipt log: %s", strerror(-rc));
}

/* ---- session lifecycle ------------------------------------------------ */

static void session_free(struct receiver *r, struct session *s)
{
	if (s->inflight)
		writer_forget(&r->writer, s);
	if (s->hasher_started)
		pthread_join(s->hasher, NULL);
	if (s->builder_started) {
		atomic_store(&s->build_cancel, 1);
		pthread_join(s->builder, NULL);
	}
	/* built but never moved into the inbox */
	if (atomic_load(&s->build_state) == BUILD_DONE && s->build_rc == 0 && s->part[0])
		bundle_discard(r->st, s->part);
	groupset_free(&s->mf);
	groupset_free(&s->data);
	aead_free(s->aead);
	if (s->fd >= 0)
		close(s->fd);
	if (s->part[0])
		staging_discard(r->st, s->part);
	free(s->replay);
	free(s->mf_buf);
	free(s->mf_doneb);
	free(s->done);
	free(s->carried);
	free(s->queued);
	wstream_free(&s->ws);
	free(s->kb);
	free(s->grecv);
	free(s);
}

#define TOMB_NS           2000000000ull /* the END spread (250 ms) with room to spare */
#define ANNOUNCE_EVERY_NS 500000000ull  /* the sender's ANNOUNCE repeat (PROTOCOL.md §10) */

static void tomb_clear(struct rcv_tomb *t)
{
	aead_free(t->aead);
	memset(t, 0, sizeof(*t));
}

/* Keep s's AEAD context for its late status frames (session.h). */
static void tomb_put(struct receiver *r, struct session *s)
{
	struct rcv_tomb *t;

	if (!s->aead)
		return;
	t = &r->tombs[r->tomb_next++ % RCV_TOMBS];
	tomb_clear(t);
	t->id = s->id;
	t->until = r->now + TOMB_NS;
	t->counter = top_counter(s);
	t->aead = s->aead;
	t->sender = s->sender;
	s->aead = NULL;
}

static void tombs_expire(struct receiver *r, uint64_t now)
{
	for (unsigned i = 0; i < RCV_TOMBS; i++)
		if (r->tombs[i].id && now >= r->tombs[i].until)
			tomb_clear(&r->tombs[i]);
}

/* A frame for a finished session: a HEARTBEAT or END that is newer than
 * anything the session saw and authenticates under its key still arrived
 * from its sender, so it counts for the link (1). It is dropped either way;
 * 0: not such a frame. */
static int tomb_frame(struct receiver *r, const struct frame_header *h, uint8_t *buf, size_t len,
                      uint64_t now)
{
	if (h->type != FRAME_HEARTBEAT && h->type != FRAME_END)
		return 0;
	for (unsigned i = 0; i < RCV_TOMBS; i++) {
		struct rcv_tomb *t = &r->tombs[i];
		if (t->id != h->session_id || now >= t->until || h->counter <= t->counter ||
		    len != proto_frame_len(h->type, 0))
			continue;
		if (aead_open_frame(t->aead, buf, len) < 0)
			return 0;
		t->counter = h->counter;
		link_count(r, t->sender, now);
		return 1;
	}
	return 0;
}

static void session_remove(struct receiver *r, struct session *s)
{
	for (unsigned i = 0; i < r->nsessions; i++) {
		if (r->sessions[i] == s) {
			r->sessions[i] = r->sessions[--r->nsessions];
			break;
		}
	}
	r->dead[r->dead_next++ % (sizeof(r->dead) / sizeof(r->dead[0]))] = s->id;
	tomb_put(r, s);
	session_free(r, s);
}

static uint64_t missing_symbols(const struct session *s, uint32_t *untouched)
{
	uint32_t inflight;
	uint64_t miss = groupset_missing(&s->data, s->carried, &inflight);
	uint32_t never = s->an.block_count - s->done_count - inflight;

	/* Blocks never seen at all: at least one symbol each, k if raw. */
	*untouched = never;
	return miss + (uint64_t)never * s->an.k;
}

static void session_fail(struct receiver *r, struct session *s, const char *event,
                         const char *reason)
{
	struct receipt_rec *rec;
	uint32_t untouched = 0, kept = 0;

	settle(r, s);
	/* An incomplete object keeps what it verified for the next send of
	 * the same content (partial.h). */
	if (strcmp(event, "incomplete") == 0 && s->manifest_ok && s->done_count > 0 &&
	    r->cfg->partial_keep_s > 0 && s->part[0]) {
		int rc = partial_save(r->st, s->fd, s->part, s->an.object_id, s->an.block_count,
		                      s->done, s->kb);
		if (rc == 0)
			kept = s->done_count;
		else
			log_warn("cannot keep the verified blocks of %s for a resend: %s", s->name,
			         strerror(-rc));
	}
	rec = receipt_begin(r->log, event);
	receipt_common(rec, s);
	receipt_str(rec, "reason", reason);
	receipt_u64(rec, "blocks_total", s->an.block_count);
	receipt_u64(rec, "blocks_done", s->done_count);
	if (s->done_count < s->an.block_count)
		receipt_u64(rec, "symbols_missing_at_least", missing_symbols(s, &untouched));
	receipt_u64(rec, "manifest_verified", (uint64_t)s->manifest_ok);
	if (kept)
		receipt_u64(rec, "blocks_kept_for_resend", kept);
	receipt_frames(rec, s, 0);
	receipt_own_loss(rec, r, s);
	receipt_write(rec);
	log_warn("%s not published (%s): %s", s->manifest_ok ? s->name : "(manifest not received)",
	         event, reason);
	r->stats.failed++;
	session_remove(r, s);
}

/* ---- announcements ------------------------------------------------------ */

static const struct trusted_key *trusted(const struct receiver *r, const uint8_t *id)
{
	for (unsigned i = 0; i < r->cfg->ntrusted; i++)
		if (sodium_memcmp(r->cfg->trusted[i].id, id, PROTO_KEYID_LEN) == 0)
			return &r->cfg->trusted[i];
	return NULL;
}

#define REFUSAL_BURST   20.0
#define REFUSAL_PER_SEC 0.2

/* One more refusal receipt allowed? Past the bucket, refusals are only
 * counted, and rcv_tick writes how many were left out. */
static int refusal_may_log(struct receiver *r, uint64_t now)
{
	if (tbucket_take(&r->refusals, now, REFUSAL_BURST, REFUSAL_PER_SEC))
		return 1;
	r->refusals_unlogged++;
	return 0;
}

static void refuse(struct receiver *r, const struct announce *an, const struct trusted_key *k,
                   const char *reason)
{
	struct receipt_rec *rec;
	char kid[2 * PROTO_KEYID_LEN + 1];

	r->stats.announce_refused++;
	r->dead[r->dead_next++ % (sizeof(r->dead) / sizeof(r->dead[0]))] = an->hdr.session_id;
	if (!refusal_may_log(r, now_ns()))
		return;
	rec = receipt_begin(r->log, "rejected");

	hex_encode(kid, k->id, PROTO_KEYID_LEN);
	receipt_hex(rec, "object", an->object_id, PROTO_HASH_LEN);
	receipt_u64(rec, "size", an->object_size);
	receipt_str(rec, "sender", kid);
	receipt_hex(rec, "session", (const uint8_t *)&an->hdr.session_id, 8);
	receipt_str(rec, "reason", reason);
	receipt_write(rec);
	log_warn("refused an object of %" PRIu64 " bytes from %s: %s", an->object_size, kid,
	         reason);
}

static int session_alloc(struct receiver *r, struct session *s)
{
	uint64_t nb = s->an.block_count;

	s->mf_blocks = (uint32_t)proto_block_count(s->an.manifest_len, s->an.chunk_size);
	s->replay = calloc(REPLAY_WINDOW / 8, 1);
	s->mf_buf = malloc(s->an.manifest_len);
	s->mf_doneb = calloc(s->mf_blocks / 8 + 1, 1);
	s->done = calloc(nb / 8 + 1, 1);
	s->carried = calloc(nb / 8 + 1, 1);
	s->queued = calloc(nb / 8 + 1, 1);
	s->kb = calloc(nb + 1, 1);
	s->grecv = calloc(nb / s->an.group + 1, sizeof(*s->grecv));
	if (!s->grecv || !s->replay || !s->mf_buf || !s->mf_doneb || !s->done || !s->carried ||
	    !s->queued || wstream_init(&s->ws, s->an.object_size, s->an.chunk_size, nb) < 0 ||
	    !s->kb)
		return -ENOMEM;
	s->r = r;
	s->wire_blocks = (uint32_t)proto_wire_blocks(s->an.block_count, s->an.group, s->an.parity);
	if (groupset_init(&s->mf, &r->pool, s->an.symbol_size, s->an.k, 1, 0, s->mf_blocks,
	                  s->mf_blocks, mf_row_done, s) < 0 ||
	    groupset_init(&s->data, &r->pool, s->an.symbol_size, s->an.k, s->an.group, s->an.parity,
	                  s->an.block_count, GROUP_WINDOW, data_row_done, s) < 0)
		return -ENOMEM;
	return 0;
}

static int open_session_key(struct receiver *r, struct session *s)
{
	uint8_t *key = sodium_malloc(SESSION_KEY_LEN);
	int rc = -EBADMSG;

	if (!key)
		return -ENOMEM;
	if (crypto_box_seal_open(key, s->an.sealed_key, PROTO_SEALED_LEN, r->cfg->box_pk,
	                         r->cfg->box_sk) == 0) {
		s->aead = aead_new(s->an.aead, key);
		rc = s->aead ? 0 : aead_supported(s->an.aead) ? -ENOMEM : -ENOTSUP;
	}
	sodium_free(key);
	return rc;
}

/* Every block of s is in. */
static int all_in(const struct session *s)
{
	return s->manifest_ok && s->done_count == s->an.block_count;
}

/* The table is full: the transfer that makes room for an announcement
 * newer than the oldest one in it, or NULL. Announcements can be replayed by
 * anyone on the low side but not forged, so a replayed one is always older
 * than the transfer a trusted sender is starting now, and cannot keep it
 * out. A transfer with every block in is never the victim: it is only being
 * verified or built (on a thread of its own) and leaves the table by
 * itself, and evicting it would throw a verified object away. */
static struct session *older_victim(struct receiver *r, const struct announce *an)
{
	struct session *oldest = NULL;

	for (unsigned i = 0; i < r->nsessions; i++) {
		struct session *s = r->sessions[i];
		if (all_in(s))
			continue;
		if (!oldest || s->an.created_ns < oldest->an.created_ns)
			oldest = s;
	}
	if (!oldest || oldest->an.created_ns >= an->created_ns)
		return NULL;
	return oldest;
}

static void new_session(struct receiver *r, const uint8_t *buf, const struct announce *an,
                        const struct trusted_key *k, uint64_t now)
{
	struct session *s;
	int rc;

	if (an->object_size > r->cfg->max_object_size) {
		refuse(r, an, k, "object larger than --max-object-size");
		return;
	}
	/* A full table loses its oldest transfer only once the new one has
	 * opened its key and has its memory: one whose key does not open
	 * does not cost another its place. */
	struct session *victim = NULL;
	if (r->nsessions >= r->cfg->max_sessions && !(victim = older_victim(r, an))) {
		r->stats.announce_refused++; /* not dead: it may fit later */
		log_debug("session table full, ignoring an announcement");
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		r->stats.announce_refused++;
		return;
	}
	s->fd = -1;
	s->id = an->hdr.session_id;
	s->an = *an;
	s->sender = k;
	s->first_seen = s->last_seen = now;
	s->ring_dropped0 = r->ring_dropped_before;
	s->socket_drops0 = r->socket_drops;
	s->evicted0 = r->pool.evicted;
	s->disk_wait0 = atomic_load(&r->writer.disk_wait_ns);
	s->hash_wait0 = atomic_load(&r->writer.hash_wait_ns);
	memcpy(s->announce_raw, buf, PROTO_ANNOUNCE_LEN);
	rc = open_session_key(r, s);
	if (rc < 0) {
		session_free(r, s);
		refuse(r, an, k,
		       rc == -ENOTSUP  ? "AEAD algorithm not available on this receiver"
		       : rc == -ENOMEM ? "out of memory for the session's cipher context"
		                       : "session key does not open with this receiver's key");
		return;
	}
	if (session_alloc(r, s) < 0) {
		session_free(r, s);
		r->stats.announce_refused++; /* not dead either */
		log_err("out of memory for a new session");
		return;
	}
	/* Before the staging file: there are never more than --max-sessions,
	 * and the victim's file may be what frees the space. */
	if (victim) {
		r->stats.sessions_evicted++;
		session_fail(r, victim, "incomplete",
		             "the session table was full and a newer transfer arrived "
		             "(--max-sessions)");
	}
	rc = staging_create(r->st, s->id, an->object_size, s->part, &s->fd);
	if (rc < 0) {
		s->part[0] = '\0';
		session_free(r, s);
		char why[160];
		snprintf(why, sizeof(why), "cannot create a staging file: %s", strerror(-rc));
		refuse(r, an, k,
		       rc == -ENOSPC || rc == -EDQUOT ? "not enough free disk space for the object"
		                                      : why);
		return;
	}
	r->sessions[r->nsessions++] = s;
	r->stats.accepted++;
	s->announces = 1; /* this copy, for the link */
	link_count(r, k, now);
	char oid[2 * PROTO_HASH_LEN + 1], kid[2 * PROTO_KEYID_LEN + 1];
	hex_encode(oid, an->object_id, PROTO_HASH_LEN);
	hex_encode(kid, k->id, PROTO_KEYID_LEN);
	log_info("receiving object %.16s (%" PRIu64 " bytes, %" PRIu32 " blocks) from sender %s",
	         oid, an->object_size, an->block_count, kid);
}

static void handle_announce(struct receiver *r, const uint8_t *buf, size_t len, uint64_t now)
{
	struct announce an;
	const struct trusted_key *k;
	struct session *s;

	if (proto_decode_announce(buf, len, &an) != PROTO_OK) {
		r->stats.announce_bad++;
		return;
	}
	s = find(r, an.hdr.session_id);
	if (s) {
		/* Repeats are byte-identical; a different one with the same
		 * session id is a forgery attempt. */
		if (memcmp(s->announce_raw, buf, PROTO_ANNOUNCE_LEN) == 0) {
			/* Not a sign of life: anyone can replay an announcement.
			 * Only AEAD frames keep a session from timing out. */
			r->stats.announce_repeat++;
			/* The link counts it (every datagram sent is in the
			 * sender's beacon count), but no more copies than the
			 * sender can have sent by now (PROTOCOL.md §10: three,
			 * one per 500 ms, one at the end), so replayed copies can
			 * at most stand in for lost ones. */
			uint64_t age = now > s->first_seen ? now - s->first_seen : 0;
			if (s->announces < 4 + age / ANNOUNCE_EVERY_NS) {
				s->announces++;
				link_count(r, s->sender, now);
			}
		} else {
			r->stats.announce_bad_signature++;
		}
		return;
	}
	if (is_dead(r, an.hdr.session_id)) {
		r->stats.finished_session++;
		return;
	}
	if (sodium_memcmp(an.receiver_id, r->cfg->my_id, PROTO_KEYID_LEN) != 0) {
		r->stats.announce_not_for_us++;
		return;
	}
	k = trusted(r, an.sender_id);
	if (!k) {
		r->stats.announce_untrusted++;
		return;
	}
	if (crypto_sign_verify_detached(buf + PROTO_ANNOUNCE_SIGNED_LEN, buf,
	                                PROTO_ANNOUNCE_SIGNED_LEN, k->pk) != 0) {
		r->stats.announce_bad_signature++;
		return;
	}
	new_session(r, buf, &an, k, now); /* accepted, or announce_refused */
}

/* ---- anti-replay -------------------------------------------------------- */

static int replay_seen(const struct session *s, uint64_t c)
{
	if (c > s->replay_top)
		return 0;
	if (s->replay_top - c >= REPLAY_WINDOW)
		return 1; /* too old to tell: treat as a replay */
	return bit(s->replay, c % REPLAY_WINDOW);
}

static void replay_mark(struct session *s, uint64_t c)
{
	if (c > s->replay_top) {
		uint64_t gap = c - s->replay_top;
		if (gap >= REPLAY_WINDOW) {
			memset(s->replay, 0, REPLAY_WINDOW / 8);
		} else {
			for (uint64_t i = s->replay_top + 1; i < c; i++)
				s->replay[(i % REPLAY_WINDOW) / 8] &=
				    (uint8_t) ~(1u << (i % REPLAY_WINDOW % 8));
			s->replay[(c % REPLAY_WINDOW) / 8] &=
			    (uint8_t) ~(1u << (c % REPLAY_WINDOW % 8));
		}
		s->replay_top = c;
	}
	set_bit(s->replay, c % REPLAY_WINDOW);
}

/* ---- manifest ----------------------------------------------------------- */

static const char *check_manifest(struct receiver *r, struct session *s)
{
	struct manifest *m = &s->m;
	uint8_t h[PROTO_HASH_LEN], id[PROTO_HASH_LEN];

	crypto_generichash(h, sizeof(h), s->mf_buf, s->an.manifest_len, NULL, 0);
	if (sodium_memcmp(h, s->an.manifest_hash, PROTO_HASH_LEN) != 0)
		return "manifest does not match the hash in the signed announcement";
	if (proto_manifest_decode(s->mf_buf, s->an.manifest_len, m) != PROTO_OK)
		return "manifest is malformed";
	if (crypto_sign_verify_detached(m->signature, s->mf_buf, m->signed_len, s->sender->pk))
		return "manifest signature does not verify with the sender's key";
	if (memcmp(m->sender_id, s->an.sender_id, PROTO_KEYID_LEN) != 0 ||
	    m->object_size != s->an.object_size || m->chunk_size != s->an.chunk_size ||
	    m->symbol_size != s->an.symbol_size || m->k != s->an.k ||
	    m->block_count != s->an.block_count ||
	    memcmp(m->object_id, s->an.object_id, PROTO_HASH_LEN) != 0)
		return "manifest disagrees with its announcement";
	object_id_compute(m, id);
	if (memcmp(id, m->object_id, PROTO_HASH_LEN) != 0)
		return "object id does not match the manifest's content";
	if (m->kind == MANIFEST_KIND_BUNDLE) {
		const char *why = bundle_check(m);
		if (why)
			return why;
	}
	if (m->expires && wall_ns() / 1000000000u > m->expires)
		return "manifest expired before it was received";
	(void)r;
	return NULL;
}

/* Rollback and replay defence (DESIGN.md: per-sender monotonic sequence):
 * a manifest must be newer than anything accepted from its sender before.
 * Then an object already published is logged as a duplicate, not
 * published twice. Returns the receipt event to fail with, or NULL. */
static const char *check_history(struct receiver *r, struct session *s, char *why, size_t len)
{
	uint64_t last = ledger_sequence(r->ledger, s->an.sender_id);
	int rc;

	if (s->m.sequence <= last) {
		snprintf(why, len,
		         "manifest sequence %" PRIu64 " is not newer than %" PRIu64
		         " already accepted from this sender (replayed or rolled back)",
		         s->m.sequence, last);
		r->stats.replays++;
		return "replay";
	}
	rc = ledger_set_sequence(r->ledger, s->an.sender_id, s->m.sequence);
	if (rc < 0) {
		snprintf(why, len, "cannot record the sender's sequence number: %s", strerror(-rc));
		return "failed";
	}
	if (ledger_has_object(r->ledger, s->an.object_id)) {
		snprintf(why, len, "this exact object was published before; not published again");
		r->stats.duplicates++;
		return "duplicate";
	}
	return NULL;
}

/* Take the blocks an earlier, incomplete send of this object verified. */
static void resume(struct receiver *r, struct session *s)
{
	uint8_t *before;
	size_t bm = (size_t)s->an.block_count / 8 + 1;
	long n;
	int fd;

	if (r->cfg->partial_keep_s == 0 || !(before = malloc(bm)))
		return;
	memcpy(before, s->done, bm);
	n = partial_take(r->st, s->part, s->fd, s->done_count > 0 || s->inflight > 0,
	                 s->an.object_id, s->an.object_size, s->an.chunk_size, s->an.block_count,
	                 s->done, s->kb, &fd);
	if (fd != s->fd) {
		close(s->fd);
		s->fd = fd;
	}
	if (n < 0)
		log_warn("cannot resume %s from an earlier send: %s", s->name, strerror((int)-n));
	for (size_t i = 0; n > 0 && i < bm; i++)
		s->carried[i] = (uint8_t)(s->done[i] & ~before[i]);
	free(before);
	if (n <= 0)
		return;
	s->resumed = (uint32_t)n;
	s->done_count += (uint32_t)n;
	log_info("resuming %s: %ld of %" PRIu32 " blocks kept from an earlier send", s->name, n,
	         s->an.block_count);
	if (s->done_count == s->an.block_count && !s->complete_at)
		s->complete_at = now_ns();
}

static void manifest_complete(struct receiver *r, struct session *s)
{
	const char *why = check_manifest(r, s), *event;
	char buf[200];

	if (why) {
		session_fail(r, s, "rejected", why);
		return;
	}
	s->manifest_ok = 1; /* from here on receipts may name the object */
	/* The writer's content stream may now check blocks against it. */
	atomic_store_explicit(&s->ws.expect, s->m.block_hashes, memory_order_release);
	memcpy(s->name, s->m.name, s->m.name_len);
	s->name[s->m.name_len] = '\0';
	event = check_history(r, s, buf, sizeof(buf));
	if (event) {
		session_fail(r, s, event, buf);
		return;
	}
	groupset_free(&s->mf); /* no further manifest symbols needed */
	resume(r, s);
}

static int mf_row_done(void *ctx, uint32_t block, const uint8_t *stored, const struct symhdr *sh,
                       unsigned repaired)
{
	struct session *s = ctx;

	(void)repaired;
	memcpy(s->mf_buf + (uint64_t)block * s->an.chunk_size, stored, sh->stored_len);
	set_bit(s->mf_doneb, block);
	s->mf_done++;
	return 0;
}

static int manifest_symbol(struct receiver *r, struct session *s, const struct frame_header *h,
                           const struct symhdr *sh, const uint8_t *data)
{
	if (h->block >= s->mf_blocks || sh->flags != 0 ||
	    sh->stored_len != mf_block_len(s, h->block))
		return -EINVAL;
	if (s->manifest_ok || bit(s->mf_doneb, h->block))
		return 0;
	switch (groupset_add(&s->mf, h->block, h->symbol, sh, data)) {
	case ADD_DUPLICATE:
		r->stats.duplicate++;
		break;
	case ADD_MISMATCH:
		return -EINVAL;
	default:
		break;
	}
	/* Verified here, outside the decoder's callback: verification frees
	 * the manifest's decoder state. */
	if (s->mf_done == s->mf_blocks)
		manifest_complete(r, s);
	return 0;
}

/* ---- data blocks -------------------------------------------------------- */

/* The whole-content hash, on a thread of its own once every block is in:
 * the staging file is read back (mostly from the page cache) while the
 * decoder goes on with other frames. During the transfer the decoder only
 * hashes each block, once, against the manifest. */
/* BLAKE2b-256 of the first size bytes of fd. 0 or -errno (-EIO when the
 * file is shorter). */
static int hash_fd(int fd, uint64_t size, uint8_t out[PROTO_HASH_LEN])
{
	crypto_generichash_state st;
	uint8_t *buf = malloc(HASH_BUF);
	uint64_t off = 0;
	int rc = buf ? 0 : -ENOMEM;

	crypto_generichash_init(&st, NULL, 0, PROTO_HASH_LEN);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (rc == 0 && off < size) {
		size_t n = size - off < HASH_BUF ? (size_t)(size - off) : HASH_BUF;
		rc = pread_full(fd, buf, n, (off_t)off);
		if (rc == 0)
			crypto_generichash_update(&st, buf, n);
		off += n;
	}
	crypto_generichash_final(&st, out, PROTO_HASH_LEN);
	free(buf);
	return rc;
}

static void *hash_content(void *arg)
{
	struct session *s = arg;
	int rc = hash_fd(s->fd, s->an.object_size, s->content);

	atomic_store(&s->hash_state, rc == 0 ? HASH_DONE : HASH_FAILED);
	return NULL;
}

/* Why a stored block could not be kept. Local I/O problems are "failed"
 * (the receiver's fault), everything else "rejected" (the object's). */
static const char *const ERR_DISK_FULL = "disk full while writing to staging";
static const char *const ERR_WRITE = "write error in the staging directory";
static const char *const ERR_READ = "read error in the staging directory";

static const char *fail_event(const char *why)
{
	return why == ERR_DISK_FULL || why == ERR_WRITE || why == ERR_READ ? "failed" : "rejected";
}

/* A decoded block goes to the writer thread (decompress, hash, write);
 * block_stored takes it from there. */
static const char *store_block(struct receiver *r, struct session *s, uint32_t b,
                               const uint8_t *stored, const struct symhdr *sh)
{
	if (bit(s->carried, b)) {
		/* Already on disk from an earlier send; decoding it again only
		 * served the outer code. */
		s->carried[b / 8] &= (uint8_t) ~(1u << (b % 8));
		return NULL;
	}
	if (!(sh->flags & PROTO_SYMFLAG_ZSTD)) {
		/* A raw block is written straight from its row's buffer, which
		 * the writer keeps alive until it is done with it. */
		groupset_hold(stored);
		if (writer_submit_lent(&r->writer, s, s->fd, (uint64_t)b * s->an.chunk_size, b,
		                       stored, sh->stored_len, &s->ws, groupset_drop) < 0) {
			groupset_drop(stored);
			return "out of memory";
		}
	} else if (writer_submit(&r->writer, s, s->fd, (uint64_t)b * s->an.chunk_size, b, stored,
	                         sh->stored_len, (uint32_t)block_raw_len(s, b), 1, &s->ws) < 0) {
		return "out of memory";
	}
	set_bit(s->queued, b);
	s->inflight++;
	return NULL;
}

/* The writer is done with block b: count it, unless the writer's content
 * stream found a block (b or one before it) that differs from the signed
 * manifest. NULL, or why the object cannot be published. */
static const char *block_stored(struct session *s, const struct wdone *d)
{
	uint32_t b = d->block;

	s->inflight--;
	if (d->err == -EBADMSG)
		return "a compressed block does not decompress to its declared size";
	if (d->err)
		return d->err == -ENOSPC || d->err == -EDQUOT ? ERR_DISK_FULL : ERR_WRITE;
	if (d->mismatch)
		return "a block does not match its hash in the manifest";
	if (!bit(s->done, b)) { /* counted once, whatever happens upstream */
		set_bit(s->done, b);
		s->done_count++;
	}
	return NULL;
}

/* Everything the writer has finished, for every session. */
static void collect_stored(struct receiver *r, uint64_t now)
{
	struct wdone d;

	while (writer_collect(&r->writer, &d)) {
		struct session *s = d.owner;
		const char *why = block_stored(s, &d);
		if (why) {
			session_fail(r, s, fail_event(why), why);
			continue;
		}
		if (s->done_count == s->an.block_count && !s->complete_at)
			s->complete_at = now;
	}
}

/* Before a session ends: wait for its blocks still with the writer and
 * count the good ones (what a partial keeps). */
static void settle(struct receiver *r, struct session *s)
{
	struct wdone d;

	while (s->inflight && writer_take(&r->writer, s, &d)) {
		(void)!block_stored(s, &d); /* a bad block is simply not done */
	}
}

static int data_row_done(void *ctx, uint32_t block, const uint8_t *stored, const struct symhdr *sh,
                         unsigned repaired)
{
	struct session *s = ctx;

	s->fail_why = store_block(s->r, s, block, stored, sh);
	s->kb[block] = sh->k;
	s->repaired += repaired;
	return s->fail_why != NULL;
}

static int group_complete(const struct session *s, uint32_t g)
{
	uint32_t first = g * s->an.group;
	uint32_t end =
	    first + s->an.group < s->an.block_count ? first + s->an.group : s->an.block_count;

	for (uint32_t b = first; b < end; b++)
		if (!bit(s->done, b) && !bit(s->queued, b))
			return 0;
	return 1;
}

/* Symbol header checks that need the session: the row's stored length
 * must fit its raw length (data) or be a full row (outer parity). */
static int symbol_fits(const struct session *s, uint32_t block, const struct symhdr *sh)
{
	uint64_t raw_len;

	if (block >= s->wire_blocks || sh->k > s->an.k)
		return 0;
	if (block >= s->an.block_count) /* outer parity: as long as its longest row */
		return sh->flags == 0 && sh->stored_len == (uint32_t)sh->k * s->an.symbol_size;
	raw_len = block_raw_len(s, block);
	if (sh->flags & PROTO_SYMFLAG_ZSTD)
		return sh->stored_len < raw_len;
	return sh->stored_len == raw_len;
}

static int data_symbol(struct receiver *r, struct session *s, const struct frame_header *h,
                       const struct symhdr *sh, const uint8_t *data)
{
	uint32_t g;

	if (!symbol_fits(s, h->block, sh))
		return -EINVAL;
	s->grecv[groupset_group_of(&s->data, h->block)]++;
	if (h->block < s->an.block_count) {
		/* A block carried from an earlier send still takes symbols: its
		 * row helps the outer code rebuild its neighbours. */
		/* (the writer has it, or it is done: either way decoded) */
		if ((bit(s->done, h->block) || bit(s->queued, h->block)) &&
		    !bit(s->carried, h->block)) {
			s->extra++;
			return 0;
		}
	}
	g = groupset_group_of(&s->data, h->block);
	if (group_complete(s, g)) {
		s->extra++;
		return 0;
	}
	switch (groupset_add(&s->data, h->block, h->symbol, sh, data)) {
	case ADD_DUPLICATE:
		s->grecv[g]--;
		r->stats.duplicate++;
		break;
	case ADD_MISMATCH:
		return -EINVAL;
	default:
		break;
	}
	/* The stream moved on to a new group: older groups will get little
	 * more, so run the product decode on them. */
	if (!s->fail_why && g != s->last_group) {
		s->last_group = g;
		groupset_sweep(&s->data, 0);
	}
	if (s->fail_why) {
		session_fail(r, s, fail_event(s->fail_why), s->fail_why);
		return 1;
	}
	return 0; /* blocks count as done when the writer hands them back */
}

/* ---- frames --------------------------------------------------------------- */

/* A HEARTBEAT or END. -EINVAL when its (authenticated) body is malformed. */
static int status_frame(struct session *s, const struct frame_header *h, const uint8_t *p,
                        uint64_t now)
{
	struct status st;

	/* frames_sent must agree with the frame's own (authenticated)
	 * counter: it is counter - 1 by construction. */
	if (proto_decode_status(p, &st) != PROTO_OK || st.frames_sent != h->counter - 1)
		return -EINVAL;
	/* frames_sent counts the frames sealed before this one. */
	if (h->counter > s->status_counter)
		s->status_counter = h->counter;
	s->pass = st.pass;
	s->passes = st.passes;
	if (h->type == FRAME_END && st.pass == st.passes && !s->end_seen)
		s->end_seen = now;
	return 0;
}

struct pick {
	struct session *s;
	const struct frame_header *h;
	uint8_t *slot; /* where the symbol goes, or NULL: it stays in the frame */
};

/* aead_pick_fn: the row slot for this frame's symbol, from its header and
 * symbol header, which are not yet authenticated. groupset_slot changes
 * nothing and only hands out a slot that holds no symbol, so a forged frame
 * can at most fill a free slot that the failed tag then wipes. */
static uint8_t *pick_slot(void *arg, const uint8_t *pt)
{
	struct pick *p = arg;
	struct symhdr sh;

	p->slot = NULL;
	if (proto_decode_symhdr(pt, p->s->an.symbol_size, &sh) != PROTO_OK ||
	    !symbol_fits(p->s, p->h->block, &sh))
		return NULL;
	p->slot = groupset_slot(&p->s->data, p->h->block, p->h->symbol, &sh);
	return p->slot ? p->slot + AEAD_SPLIT_DATA : NULL;
}

void rcv_handle(struct receiver *r, uint8_t *buf, size_t len, uint64_t now)
{
	struct frame_header h;
	struct symhdr sh;
	struct session *s;
	uint8_t *slot = NULL;
	int rc;

	r->now = now;
	if ((++r->stats.datagrams & 63) == 0)
		collect_stored(r, now);
	if (proto_decode_header(buf, len, &h) != PROTO_OK) {
		r->stats.bad_header++;
		return;
	}
	if (h.type == FRAME_ANNOUNCE) {
		handle_announce(r, buf, len, now);
		return;
	}
	if (h.type == FRAME_BEACON) {
		link_beacon(r, buf, len, now);
		return;
	}
	s = find(r, h.session_id);
	if (!s) {
		if (is_dead(r, h.session_id)) {
			if (tomb_frame(r, &h, buf, len, now))
				r->stats.late_status++;
			else
				r->stats.finished_session++;
		} else
			r->stats.unknown_session++;
		return;
	}
	if (len != proto_frame_len(h.type, s->an.symbol_size)) {
		r->stats.bad_length++;
		return;
	}
	if (replay_seen(s, h.counter)) {
		r->stats.replayed++;
		return;
	}
	if (h.type == FRAME_DATA && s->an.symbol_size >= AEAD_SPLIT) {
		/* Source symbols of a row in flight are decrypted straight into
		 * the row (pick_slot) instead of in place and copied. */
		struct pick p = {.s = s, .h = &h};
		uint8_t *rest;
		if (aead_open_frame_to(s->aead, buf, len, AEAD_SPLIT, pick_slot, &p, &rest) < 0) {
			r->stats.bad_tag++;
			return;
		}
		slot = p.slot;
		if (slot) /* the first bytes of the symbol are still in the frame */
			memcpy(slot, buf + PROTO_HEADER_LEN + PROTO_SYMHDR_LEN, AEAD_SPLIT_DATA);
	} else if (aead_open_frame(s->aead, buf, len) < 0) {
		r->stats.bad_tag++;
		return;
	}
	/* Authenticated: the frame counts for the session's loss accounting
	 * and the link, whatever its body. The receiver's counters take it as
	 * accepted only once the body is valid too, else as bad_symbol. */
	replay_mark(s, h.counter);
	s->frames_ok++;
	s->last_seen = now;
	link_count(r, s->sender, now);
	if (h.type == FRAME_HEARTBEAT || h.type == FRAME_END) {
		if (status_frame(s, &h, buf + PROTO_HEADER_LEN, now) < 0)
			r->stats.bad_symbol++;
		else
			r->stats.accepted++;
		return;
	}
	if (proto_decode_symhdr(buf + PROTO_HEADER_LEN, s->an.symbol_size, &sh) != PROTO_OK) {
		r->stats.bad_symbol++;
		return;
	}
	const uint8_t *data = buf + PROTO_HEADER_LEN + PROTO_SYMHDR_LEN;
	if (slot)
		data = slot; /* already in its row: groupset_add sees it there */
	if (h.type == FRAME_MANIFEST)
		rc = manifest_symbol(r, s, &h, &sh, data);
	else
		rc = data_symbol(r, s, &h, &sh, data);
	if (rc < 0)
		r->stats.bad_symbol++;
	else
		r->stats.accepted++;
}

/* Seconds the decoding waited for the disk during s, when the disk is
 * what held it up: at least a tenth of the transfer, and more than the
 * waits for the content hash. A disk slower than the rate (an object past
 * the page cache's dirty limit is written at the disk's own speed) fills
 * the writer's queue with blocks still to be written, and then no CPU or
 * memory setting helps. 0 otherwise. */
static double disk_wait_s(const struct receiver *r, const struct session *s)
{
	uint64_t disk = atomic_load(&r->writer.disk_wait_ns) - s->disk_wait0;
	uint64_t hash = atomic_load(&r->writer.hash_wait_ns) - s->hash_wait0;
	uint64_t span = r->now > s->first_seen ? r->now - s->first_seen : 0;

	return disk > hash && disk * 10 >= span && disk > 0 ? (double)disk / 1e9 : 0;
}

/* What to change when this receiver dropped frames itself during s. */
static void own_loss_remedy(const struct receiver *r, const struct session *s, char *buf,
                            size_t len)
{
	double disk = disk_wait_s(r, s);

	if (disk > 0)
		snprintf(buf, len,
		         "the disk is the limit, it waited %.1f s for it: keep the sender's --rate "
		         "under the disk's sustained write speed",
		         disk);
	else
		snprintf(buf, len,
		         "lower the sender's --rate, or raise --rcvbuf, --ring and --memory");
}

/* ---- publication and timers ----------------------------------------------- */

static int write_intent(struct receiver *r, const struct session *s)
{
	struct ledger_intent in = {.sequence = s->m.sequence,
	                           .size = s->an.object_size,
	                           .session = s->id,
	                           .kind = s->m.kind,
	                           .entries = s->m.entry_count};

	memcpy(in.object_id, s->an.object_id, PROTO_HASH_LEN);
	memcpy(in.content, s->content, PROTO_HASH_LEN);
	memcpy(in.sender, s->an.sender_id, PROTO_KEYID_LEN);
	snprintf(in.name, sizeof(in.name), "%s", s->name);
	return ledger_intent_write(r->ledger, &in);
}

/* fn(arg) on a thread of its own called name, or here and now when no
 * thread is to be had. Returns whether a thread was started (to join). */
static int run_aside(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
	if (pthread_create(t, NULL, fn, arg) != 0) {
		fn(arg);
		return 0;
	}
	pthread_setname_np(*t, name);
	return 1;
}

static void *build_bundle(void *arg)
{
	struct session *s = arg;

	s->build_rc = bundle_build(s->r->st, s->fd, s->part, &s->m, &s->build_cancel, s->build_why,
	                           sizeof(s->build_why));
	atomic_store(&s->build_state, BUILD_DONE);
	return NULL;
}

/* For a bundle: whether its tree is built (then s->build_rc says how);
 * the first call starts building it. */
static int bundle_built(struct session *s)
{
	switch (atomic_load(&s->build_state)) {
	case BUILD_IDLE:
		atomic_store(&s->build_state, BUILD_RUNNING);
		s->builder_started = run_aside(&s->builder, build_bundle, s, "sluice-bundle");
		return atomic_load(&s->build_state) == BUILD_DONE;
	case BUILD_RUNNING:
		return 0;
	default:
		return 1;
	}
}

static void publish(struct receiver *r, struct session *s)
{
	char why[300];
	uint8_t h[PROTO_HASH_LEN];
	struct receipt_rec *rec;
	char hex[2 * PROTO_HASH_LEN + 1];
	int rc;

	memcpy(h, s->content, PROTO_HASH_LEN);
	if (sodium_memcmp(h, s->m.content_hash, PROTO_HASH_LEN) != 0) {
		session_fail(r, s, "rejected", "content hash does not match the manifest");
		return;
	}
	/* A later tick comes back here once the tree is built. */
	if (s->m.kind == MANIFEST_KIND_BUNDLE && !bundle_built(s))
		return;
	why[0] = '\0';
	if (s->m.kind == MANIFEST_KIND_BUNDLE && s->build_rc < 0) {
		rc = s->build_rc;
		snprintf(why, sizeof(why), "%s", s->build_why);
	} else {
		/* Without the journal a crash in the next instants would leave
		 * the object without its receipt; that is no reason not to
		 * publish. */
		if (write_intent(r, s) < 0)
			log_warn("cannot write the publication journal in the state directory; "
			         "publishing %s without it",
			         s->name);
		if (s->m.kind == MANIFEST_KIND_BUNDLE)
			rc = bundle_commit(r->st, s->part, s->name, why, sizeof(why));
		else
			rc = staging_publish(r->st, s->fd, s->part, s->name);
		if (rc < 0)
			ledger_intent_clear(r->ledger); /* nothing was published */
	}
	if (rc == -EEXIST) {
		session_fail(r, s, "conflict",
		             "something with this name is already in the inbox; not overwritten");
		return;
	}
	if (rc == -EBADMSG) {
		session_fail(r, s, "rejected", why);
		return;
	}
	if (rc < 0) {
		if (!why[0] || rc == -ENOSPC || rc == -EDQUOT)
			snprintf(why, sizeof(why), "%s",
			         rc == -ENOSPC || rc == -EDQUOT ? "disk full while publishing"
			                                        : strerror(-rc));
		session_fail(r, s, "failed", why);
		return;
	}
	s->part[0] = '\0'; /* it is the inbox's now */
	if (ledger_add_object(r->ledger, s->an.object_id) < 0)
		log_warn("cannot record %s as published; a resend would be published again",
		         s->name);
	rec = receipt_begin(r->log, "published");
	receipt_common(rec, s);
	receipt_hex(rec, "blake2b", h, PROTO_HASH_LEN);
	if (s->m.kind == MANIFEST_KIND_BUNDLE) {
		receipt_str(rec, "kind", "bundle");
		receipt_u64(rec, "entries", s->m.entry_count);
	}
	receipt_frames(rec, s, 1);
	receipt_own_loss(rec, r, s);
	receipt_margin(rec, s);
	crashpoint("before-published-receipt");
	receipt_write(rec);
	ledger_intent_clear(r->ledger);
	hex_encode(hex, h, PROTO_HASH_LEN);
	log_info("published %s (%" PRIu64 " bytes, blake2b-256 %.16s..., %" PRIu64
	         " symbols rebuilt by the FEC)",
	         s->name, s->an.object_size, hex, s->repaired);
	if (receipt_own_loss(NULL, r, s)) {
		char remedy[160];

		own_loss_remedy(r, s, remedy, sizeof(remedy));
		log_warn("while receiving %s this receiver fell behind and dropped frames itself "
		         "(see socket_drops, ring_dropped, groups_evicted in its receipt); the FEC "
		         "made up for them this time: %s",
		         s->name, remedy);
	}
	r->stats.published++;
	session_remove(r, s);
}

/* Every block is in: hash the whole content (in the background), then
 * publish. Called on every tick until the session is gone. */
static void verify_and_publish(struct receiver *r, struct session *s)
{
	switch (atomic_load(&s->hash_state)) {
	case HASH_IDLE:
		/* Usually the writer has hashed the content in order as it wrote
		 * it, checking every block; only a resumed object (blocks it never
		 * wrote), a failed read-back, or blocks that were all in before
		 * the manifest need the whole file read again. The content hash
		 * covers every block then. */
		if (!s->resumed && !s->ws.broken && s->ws.next == s->an.block_count) {
			crypto_generichash_final(&s->ws.hash, s->content, PROTO_HASH_LEN);
			atomic_store(&s->hash_state, HASH_DONE);
			publish(r, s);
			return;
		}
		log_debug("%s: hashing the staged file again (%s)", s->name,
		          s->resumed     ? "resumed from an earlier send"
		          : s->ws.broken ? "read-back failed"
		                         : "blocks were in before the manifest");
		atomic_store(&s->hash_state, HASH_RUNNING);
		s->hasher_started = run_aside(&s->hasher, hash_content, s, "sluice-hash");
		return;
	case HASH_RUNNING:
		return;
	case HASH_DONE:
		publish(r, s);
		return;
	default:
		session_fail(r, s, "failed", ERR_READ);
	}
}

/* s ends incomplete with blocks missing: the reason is head, how many
 * blocks were not decoded (verb), whether the manifest was missing too, and
 * whether this receiver dropped frames itself (then, what to change: the
 * disk's speed, or the receiver's buffers). */
static void fail_undecoded(struct receiver *r, struct session *s, const char *head,
                           const char *verb)
{
	char why[560], own[320] = "", remedy[160];

	if (receipt_own_loss(NULL, r, s)) {
		own_loss_remedy(r, s, remedy, sizeof(remedy));
		snprintf(own, sizeof(own),
		         "; this receiver fell behind and dropped frames itself (socket_drops, "
		         "ring_dropped, groups_evicted): %s",
		         remedy);
	}
	snprintf(why, sizeof(why), "%s%" PRIu32 " of %" PRIu32 " blocks %s%s%s", head,
	         s->an.block_count - s->done_count, s->an.block_count, verb,
	         s->manifest_ok ? "" : " and the manifest was not complete", own);
	session_fail(r, s, "incomplete", why);
}

void rcv_tick(struct receiver *r, uint64_t now)
{
	r->now = now;
	tombs_expire(r, now);
	collect_stored(r, now);
	link_tick(r, now);
	if (r->refusals_unlogged &&
	    tbucket_take(&r->refusals, now, REFUSAL_BURST, REFUSAL_PER_SEC)) {
		struct receipt_rec *rec = receipt_begin(r->log, "rate-limited");
		receipt_u64(rec, "refusals_not_logged", r->refusals_unlogged);
		receipt_write(rec);
		log_warn("%" PRIu64
		         " refused announcements were not logged one by one (rate limit)",
		         r->refusals_unlogged);
		r->refusals_unlogged = 0;
	}
	if (now >= r->next_expiry) {
		int n = partial_expire(r->st, r->cfg->partial_keep_s);
		if (n > 0)
			log_info("removed %d partial object%s older than the --keep-partial time",
			         n, n == 1 ? "" : "s");
		r->next_expiry = now + 3600ull * 1000000000u;
	}
	for (unsigned i = r->nsessions; i-- > 0;) {
		struct session *s = r->sessions[i];

		/* Idle or finished sender: nothing more is coming for the
		 * groups in flight, decode what the product code can. */
		if (s->end_seen || now - s->last_seen >= 100000000u) {
			groupset_sweep(&s->data, 1);
			if (s->fail_why) {
				session_fail(r, s, fail_event(s->fail_why), s->fail_why);
				continue;
			}
		}
		int complete = all_in(s);

		if (complete && s->an.block_count == 0 && !s->complete_at)
			s->complete_at = now;
		/* Publish once the sender said it is done, or shortly after the
		 * last block, so the receipt's loss figures are whole. */
		if (complete && (s->end_seen || now - s->complete_at >= r->cfg->end_grace_ns)) {
			verify_and_publish(r, s);
		} else if (s->end_seen && now - s->end_seen >= r->cfg->end_grace_ns) {
			fail_undecoded(r, s, "sender finished but ", "could not be decoded");
		} else if (now - s->last_seen >= r->cfg->session_timeout_ns) {
			/* The sender's END frames can be among what an overrun
			 * receiver dropped: then this is how the transfer ends, and
			 * the cause must still be named. */
			char head[48];
			snprintf(head, sizeof(head), "no frames for %" PRIu64 " s, ",
			         r->cfg->session_timeout_ns / 1000000000u);
			fail_undecoded(r, s, head, "not decoded");
		}
	}
}

void rcv_pause(struct receiver *r, uint64_t ns, uint64_t now)
{
	for (unsigned i = 0; i < r->nsessions; i++) {
		struct session *s = r->sessions[i];
		s->last_seen = later_by(s->last_seen, ns, now);
		if (s->end_seen)
			s->end_seen = later_by(s->end_seen, ns, now);
		if (s->complete_at)
			s->complete_at = later_by(s->complete_at, ns, now);
	}
	/* a finished session's late frames (its END copies) are in the ring */
	for (unsigned i = 0; i < RCV_TOMBS; i++)
		if (r->tombs[i].id)
			r->tombs[i].until += ns;
	link_pause(r, ns, now);
}

/* BLAKE2b-256 of inbox/name, a regular file; 0 or -errno. */
static int hash_inbox_file(struct receiver *r, const char *name, uint8_t out[PROTO_HASH_LEN])
{
	int fd = open_beneath(r->st->inbox_fd, name, O_RDONLY | O_NOFOLLOW, 0), rc;
	struct stat st;

	if (fd < 0)
		return fd;
	rc = fstat(fd, &st) < 0 ? -errno : hash_fd(fd, (uint64_t)st.st_size, out);
	close(fd);
	return rc;
}

int rcv_recover(struct receiver *r)
{
	struct ledger_intent in;
	struct receipt_rec *rec;
	struct stat st;
	uint8_t h[PROTO_HASH_LEN];
	char kid[2 * PROTO_KEYID_LEN + 1];
	const char *event = "published", *why;
	int rc = ledger_intent_read(r->ledger, &in);

	if (rc < 0)
		log_err(
		    "cannot read the publication journal (STATE/publishing, left by a receiver "
		    "that stopped while publishing): %s; make the state directory and that file "
		    "readable and writable by the account the receiver runs as",
		    strerror(-rc));
	if (rc <= 0)
		return rc;
	if (fstatat(r->st->inbox_fd, in.name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		event = "failed";
		why = "the receiver stopped while publishing this object, before it reached the "
		      "inbox; send it again";
	} else if (in.kind == MANIFEST_KIND_FILE &&
	           (!S_ISREG(st.st_mode) || hash_inbox_file(r, in.name, h) < 0 ||
	            sodium_memcmp(h, in.content, PROTO_HASH_LEN) != 0)) {
		event = "failed";
		why = "the receiver stopped while publishing this object; what is in the inbox "
		      "under its name is not it";
	} else if (in.kind == MANIFEST_KIND_BUNDLE && !S_ISDIR(st.st_mode)) {
		event = "failed";
		why = "the receiver stopped while publishing this bundle; what is in the inbox "
		      "under its name is not it";
	} else {
		why = "published just before the receiver stopped; this receipt was written at the "
		      "next start";
		if (ledger_add_object(r->ledger, in.object_id) < 0)
			log_warn("cannot record %s as published", in.name);
	}
	rec = receipt_begin(r->log, event);
	receipt_hex(rec, "object", in.object_id, PROTO_HASH_LEN);
	receipt_strn(rec, "name", (const uint8_t *)in.name, strlen(in.name));
	receipt_u64(rec, "size", in.size);
	hex_encode(kid, in.sender, PROTO_KEYID_LEN);
	receipt_str(rec, "sender", kid);
	receipt_u64(rec, "sequence", in.sequence);
	receipt_hex(rec, "session", (const uint8_t *)&in.session, sizeof(in.session));
	if (strcmp(event, "published") == 0)
		receipt_hex(rec, "blake2b", in.content, PROTO_HASH_LEN);
	if (in.kind == MANIFEST_KIND_BUNDLE) {
		receipt_str(rec, "kind", "bundle");
		receipt_u64(rec, "entries", in.entries);
	}
	receipt_str(rec, strcmp(event, "published") == 0 ? "recovered" : "reason", why);
	rc = receipt_commit(rec);
	if (rc < 0) {
		log_err("cannot append to the receipt log: %s", strerror(-rc));
		return rc; /* the journal stays for the next start */
	}
	log_warn("%s: %s", in.name, why);
	ledger_intent_clear(r->ledger);
	return 1;
}

void rcv_abandon_all(struct receiver *r, const char *reason)
{
	while (r->nsessions)
		session_fail(r, r->sessions[r->nsessions - 1], "incomplete", reason);
	link_flush(r);
}

int rcv_init(struct receiver *r, const struct rcv_config *cfg, struct staging *st,
             struct receipt_log *log, struct ledger *ledger)
{
	memset(r, 0, sizeof(*r));
	r->ledger = ledger;
	r->cfg = cfg;
	r->st = st;
	r->log = log;
	r->sessions = calloc(cfg->max_sessions, sizeof(*r->sessions));
	r->links = calloc(cfg->ntrusted + 1, sizeof(*r->links));
	/* --memory covers blocks being decoded and blocks queued for the
	 * disk: a sixth of it (at most 32 MiB) is the writer's queue. */
	size_t queue = cfg->memory_budget / 6 < (32u << 20) ? cfg->memory_budget / 6 : 32u << 20;
	if (group_pool_init(&r->pool, cfg->memory_budget - queue) < 0 || !r->sessions ||
	    !r->links || writer_start(&r->writer, queue) < 0) {
		rcv_free(r);
		return -ENOMEM;
	}
	return 0;
}

void rcv_free(struct receiver *r)
{
	while (r->nsessions)
		session_remove(r, r->sessions[r->nsessions - 1]);
	for (unsigned i = 0; i < RCV_TOMBS; i++)
		tomb_clear(&r->tombs[i]);
	free(r->sessions);
	free(r->links);
	r->links = NULL;
	group_pool_free(&r->pool);
	writer_stop(&r->writer);
	r->sessions = NULL;
}
