/* SPDX-License-Identifier: MIT */
/* Exhaustive single-mutation rejection: a valid frame of every type, built
 * with the real encoders (announcement signed with a test key and sealed to
 * the receiver, manifest symbol, data source and repair symbols, an outer
 * parity symbol, heartbeat, end), is mutated in every way one error can
 * take -- each single-bit flip, each byte set to 0x00 and to 0xff, every
 * truncation, trailing bytes -- and each mutant goes through the real
 * receiver (rcv_handle: header, session, length, replay window, AEAD,
 * signature). Every mutant must be rejected and land in exactly the one
 * stats counter that the rejection order (PROTOCOL.md §11) predicts; the
 * prediction comes from an independent model of the wire rules below, not
 * from the decoders under test. Afterwards the untouched originals must
 * still be accepted and the object must publish byte-identical: no mutant
 * moved the replay window or poisoned decoder state.
 *
 *   encoders → frame → mutate → rcv_handle → exactly one counter += 1
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sodium.h>
#include <zstd.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/keys.h"
#include "proto/bytes.h"
#include "proto/frame.h"
#include "proto/manifest.h"
#include "receiver/ledger.h"
#include "receiver/link.h"
#include "receiver/receipt.h"
#include "receiver/session.h"
#include "receiver/staging.h"
#include "sender/encode.h"

#include "fixture.h"

#define S         1000u /* symbol size: datagrams of 1056 bytes */
#define KMAX      4u
#define OBJ_SIZE  10000u /* three blocks: 4000, 4000, 2000 bytes */
#define NAME      "mutant.bin"
#define NOW       1000000000000ull
#define MAXFRAMES 128
#define WINDOW    65536u /* the receiver's anti-replay window */

_Static_assert(sizeof(struct rcv_stats) % sizeof(uint64_t) == 0, "rcv_stats is all u64");
#define NSTATS (sizeof(struct rcv_stats) / sizeof(uint64_t))
#define IDX(f) (offsetof(struct rcv_stats, f) / sizeof(uint64_t))

struct frame {
	const char *what;
	uint8_t buf[PROTO_MAX_DATAGRAM];
	size_t len;
	uint64_t counter;
	int fed; /* the original was accepted */
};

struct fixture {
	struct rcv_fixture rx; /* the receiver and the trusted sender's key */
	uint8_t content[OBJ_SIZE];
	uint64_t session_id;
	/* every frame of the object, in the order the encoder sealed them */
	struct frame *frames;
	unsigned nframes;
	struct frame announce;
	/* the sender's side of the session, to seal frames of our own */
	struct aead_ctx *aead;
	uint64_t next_counter;
	/* replay model: counters the receiver accepted */
	uint64_t seen[MAXFRAMES * 8];
	unsigned nseen;
	uint64_t top;
	/* tallies */
	unsigned long mutants, noops;
};

/* ---- the independent model of what the receiver must do --------------- */

static const char *stat_name(size_t i)
{
#define N(f)                                                                                       \
	if (i == IDX(f))                                                                           \
		return #f;
	N(datagrams)
	N(accepted)
	N(bad_header)
	N(bad_length)
	N(unknown_session)
	N(finished_session)
	N(replayed)
	N(bad_tag)
	N(bad_symbol)
	N(duplicate)
	N(announce_repeat)
	N(announce_bad)
	N(announce_not_for_us)
	N(announce_untrusted)
	N(announce_bad_signature)
	N(announce_refused)
	N(published)
	N(failed)
#undef N
	return "(another counter)";
}

/* Header rules of PROTOCOL.md §3, written out again: -1 when the header
 * must be rejected, else the frame type. */
static int model_header(const uint8_t *b, size_t len)
{
	if (len < 32 || memcmp(b, "SLCE", 4) != 0 || b[4] != 1 || b[5] < 1 || b[5] > FRAME_TYPE_MAX)
		return -1;
	if (get_le16(b + 6) != 0 || get_le16(b + 30) != 0 || get_le16(b + 28) > 254)
		return -1;
	uint64_t counter = get_le64(b + 16);
	uint32_t block = get_le32(b + 24);
	uint16_t sym = get_le16(b + 28);
	if (b[5] == FRAME_ANNOUNCE)
		return counter == 0 && block == 0 && sym == 0 ? b[5] : -1;
	if ((b[5] == FRAME_HEARTBEAT || b[5] == FRAME_END) && (block != 0 || sym != 0))
		return -1;
#ifdef PROTO_BEACON_LEN
	/* BEACON (type 6): no block or symbol, a non-zero link id */
	if (b[5] == FRAME_BEACON && (block != 0 || sym != 0 || get_le64(b + 8) == 0))
		return -1;
#endif
	return counter != 0 ? b[5] : -1;
}

/* Announcement field ranges of PROTOCOL.md §4 (after the header). */
static int model_announce_fields(const uint8_t *b, size_t len)
{
	if (len != PROTO_ANNOUNCE_LEN)
		return 0;
	uint8_t k = b[49], g = b[224], p = b[225];
	uint16_t sym = get_le16(b + 50);
	uint32_t chunk = get_le32(b + 52), blocks = get_le32(b + 64), mlen = get_le32(b + 68);
	uint64_t size = get_le64(b + 56);
	for (int i = 226; i < 232; i++)
		if (b[i])
			return 0;
	if (b[48] != 1 && b[48] != 2)
		return 0;
	if (k < 1 || k > 254 || sym < 968 || sym > 65451 || chunk != (uint32_t)k * sym)
		return 0;
	if (size / chunk + (size % chunk != 0) != blocks)
		return 0;
	if (mlen < 1 || mlen > (64u << 20) || g < 1 || g + p > 255)
		return 0;
	return (uint64_t)blocks + ((uint64_t)blocks + g - 1) / g * p <= UINT32_MAX;
}

/* Which counter an announcement-typed mutant must land in. live: the
 * genuine session already exists. */
static size_t expect_announce(const struct fixture *f, const uint8_t *b, size_t len, int live)
{
	if (!model_announce_fields(b, len))
		return IDX(announce_bad);
	if (live && get_le64(b + 8) == f->session_id)
		return IDX(announce_bad_signature); /* not byte-identical to the genuine one */
	if (memcmp(b + 40, f->rx.cfg.my_id, PROTO_KEYID_LEN) != 0)
		return IDX(announce_not_for_us);
	if (memcmp(b + 32, f->rx.trusted.id, PROTO_KEYID_LEN) != 0)
		return IDX(announce_untrusted);
	return IDX(announce_bad_signature);
}

static int model_replayed(const struct fixture *f, uint64_t c)
{
	if (c > f->top)
		return 0;
	if (f->top - c >= WINDOW)
		return 1;
	for (unsigned i = 0; i < f->nseen; i++)
		if (f->seen[i] == c)
			return 1;
	return 0;
}

static size_t expect(const struct fixture *f, const uint8_t *b, size_t len, int live)
{
	int t = model_header(b, len);

	if (t < 0)
		return IDX(bad_header);
	if (t == FRAME_ANNOUNCE)
		return expect_announce(f, b, len, live);
#ifdef PROTO_BEACON_LEN
	if (t == FRAME_BEACON) {
		/* A type byte turned into BEACON: the wrong length for one.
		 * No single mutation of our frames makes a 160-byte one. */
		if (len == PROTO_BEACON_LEN)
			fail_msg("model: a BEACON-shaped mutant of the right length");
		return IDX(beacon_bad);
	}
#endif
	if (get_le64(b + 8) != f->session_id)
		return IDX(unknown_session);
	if (len != (t == FRAME_MANIFEST || t == FRAME_DATA ? S + 56u : 80u))
		return IDX(bad_length);
	if (model_replayed(f, get_le64(b + 16)))
		return IDX(replayed);
	return IDX(bad_tag);
}

/* ---- feeding the receiver -------------------------------------------- */

static void snapshot(const struct receiver *r, uint64_t out[NSTATS])
{
	memcpy(out, &r->stats, sizeof(r->stats));
}

/* Feed one datagram (a copy: the receiver decrypts in place) and check
 * that datagrams and the counter `want` went up by one and nothing else
 * changed. */
static void feed_expect(struct fixture *f, const uint8_t *b, size_t len, size_t want,
                        const char *what, const char *how, size_t pos)
{
	static uint8_t copy[PROTO_MAX_DATAGRAM + 4096];
	uint64_t before[NSTATS], after[NSTATS];

	assert_true(len <= sizeof(copy));
	memcpy(copy, b, len);
	snapshot(&f->rx.r, before);
	rcv_handle(&f->rx.r, copy, len, NOW);
	snapshot(&f->rx.r, after);
	for (size_t i = 0; i < NSTATS; i++) {
		uint64_t d = after[i] - before[i];
		uint64_t w = i == IDX(datagrams) || i == want;
		if (d != w)
			fail_msg("%s, %s at %zu (len %zu): counter %s changed by %" PRIu64
			         ", expected the datagram counted under %s only",
			         what, how, pos, len, stat_name(i), d, stat_name(want));
	}
}

/* A frame as a sender holding the session key would make it: fr opened,
 * its plaintext byte at pos (from 32) replaced by val, sealed again with
 * the next unused counter. Returns that counter. */
static uint64_t reseal(struct fixture *f, const struct frame *fr, size_t pos, uint8_t val,
                       uint8_t *out)
{
	memcpy(out, fr->buf, fr->len);
	assert_int_equal(aead_open_frame(f->aead, out, fr->len), 0);
	assert_true(pos >= PROTO_HEADER_LEN && pos < fr->len - PROTO_TAG_LEN);
	out[pos] = val;
	put_le64(out + 16, ++f->next_counter);
	assert_int_equal(aead_seal_frame(f->aead, out, fr->len), 0);
	return f->next_counter;
}

static void model_accept(struct fixture *f, uint64_t counter)
{
	assert_true(f->nseen < MAXFRAMES * 8);
	f->seen[f->nseen++] = counter;
	if (counter > f->top)
		f->top = counter;
}

/* Authenticated but inconsistent: every single-bit flip and 0x00/0xff of
 * the 8-byte symbol header, sealed with the real session key. The AEAD
 * passes, so the replay window takes its counter, but the symbol header or
 * FEC-state check must refuse it (bad_symbol, and not accepted) before
 * anything reaches the decoder. */
static void mutate_symhdr_sealed(struct fixture *f, const struct frame *fr)
{
	static uint8_t m[PROTO_MAX_DATAGRAM];
	char what[64];

	snprintf(what, sizeof(what), "%s (sealed by the key holder)", fr->what);
	for (size_t pos = PROTO_HEADER_LEN; pos < PROTO_HEADER_LEN + PROTO_SYMHDR_LEN; pos++) {
		uint8_t orig;
		memcpy(m, fr->buf, fr->len);
		assert_int_equal(aead_open_frame(f->aead, m, fr->len), 0);
		orig = m[pos];
		for (unsigned v = 0; v < 10; v++) {
			uint8_t val = v < 8 ? (uint8_t)(orig ^ (1u << v)) : v == 8 ? 0x00 : 0xff;
			if (val == orig) {
				f->noops++;
				continue;
			}
			model_accept(f, reseal(f, fr, pos, val, m));
			feed_expect(f, m, fr->len, IDX(bad_symbol), what,
			            v < 8 ? "bit flip" : "byte replaced", pos);
			f->mutants++;
		}
	}
}

/* ---- building the object ---------------------------------------------- */

static struct frame *add_frame(struct fixture *f, const char *what)
{
	assert_true(f->nframes < MAXFRAMES);
	struct frame *fr = &f->frames[f->nframes++];
	fr->what = what;
	return fr;
}

static void build_manifest(struct fixture *f, uint8_t **out, size_t *len,
                           uint8_t oid[static PROTO_HASH_LEN])
{
	uint32_t nb = (OBJ_SIZE + KMAX * S - 1) / (KMAX * S);
	uint8_t hashes[8 * PROTO_HASH_LEN];
	struct manifest m = {.kind = MANIFEST_KIND_FILE,
	                     .sequence = 7,
	                     .created_ns = 1,
	                     .object_size = OBJ_SIZE,
	                     .chunk_size = KMAX * S,
	                     .symbol_size = S,
	                     .k = KMAX,
	                     .block_count = nb,
	                     .name = (const uint8_t *)NAME,
	                     .name_len = sizeof(NAME) - 1,
	                     .block_hashes = hashes};

	key_id(m.sender_id, f->rx.trusted.pk);
	/* Block hashes are prefix hashes (PROTOCOL.md §8.1), computed here
	 * one-shot, independently of the sender's and receiver's streams. */
	for (uint32_t b = 0; b < nb; b++) {
		size_t end = (size_t)(b + 1) * KMAX * S;
		crypto_generichash(hashes + b * PROTO_HASH_LEN, PROTO_HASH_LEN, f->content,
		                   end < OBJ_SIZE ? end : OBJ_SIZE, NULL, 0);
	}
	crypto_generichash(m.content_hash, PROTO_HASH_LEN, f->content, OBJ_SIZE, NULL, 0);
	object_id_compute(&m, m.object_id);
	memcpy(oid, m.object_id, PROTO_HASH_LEN);
	*len = proto_manifest_len(m.name_len, 0, nb);
	*out = malloc(*len);
	assert_non_null(*out);
	assert_int_equal(proto_manifest_encode(*out, *len, &m), *len);
	crypto_sign_detached(*out + *len - 64, NULL, *out, *len - 64, f->rx.sign_sk);
}

static void build_announce(struct fixture *f, enum aead_alg alg, const uint8_t *manifest,
                           size_t mlen, const uint8_t oid[static PROTO_HASH_LEN],
                           const uint8_t key[static SESSION_KEY_LEN], uint8_t parity)
{
	struct announce an = {
	    .hdr = {.version = PROTO_VERSION, .type = FRAME_ANNOUNCE, .session_id = f->session_id},
	    .aead = (uint8_t)alg,
	    .k = KMAX,
	    .symbol_size = S,
	    .chunk_size = KMAX * S,
	    .object_size = OBJ_SIZE,
	    .block_count = (OBJ_SIZE + KMAX * S - 1) / (KMAX * S),
	    .manifest_len = (uint32_t)mlen,
	    .created_ns = 2,
	    .group = 32,
	    .parity = parity};

	key_id(an.sender_id, f->rx.trusted.pk);
	memcpy(an.receiver_id, f->rx.cfg.my_id, PROTO_KEYID_LEN);
	memcpy(an.object_id, oid, PROTO_HASH_LEN);
	crypto_generichash(an.manifest_hash, PROTO_HASH_LEN, manifest, mlen, NULL, 0);
	assert_int_equal(crypto_box_seal(an.sealed_key, key, SESSION_KEY_LEN, f->rx.cfg.box_pk), 0);
	proto_encode_announce(f->announce.buf, &an);
	crypto_sign_detached(f->announce.buf + PROTO_ANNOUNCE_SIGNED_LEN, NULL, f->announce.buf,
	                     PROTO_ANNOUNCE_SIGNED_LEN, f->rx.sign_sk);
	f->announce.len = PROTO_ANNOUNCE_LEN;
	f->announce.what = "ANNOUNCE";
}

/* Encode one block's frames into the frame list; returns how many. */
static unsigned encode_block(struct fixture *f, struct encoder *e, enum frame_type type,
                             uint32_t block, const uint8_t *raw, size_t len, uint8_t *row,
                             const char *what)
{
	uint8_t *out[PROTO_MAX_SYMBOLS];
	unsigned first = f->nframes;
	int n;

	for (unsigned i = 0; i < enc_max_frames(e); i++)
		out[i] = add_frame(f, what)->buf;
	f->nframes = first;
	n = enc_block(e, type, block, raw, len, 1, 0, 1, row, out);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		struct frame *fr = &f->frames[f->nframes++];
		fr->what = what;
		fr->len = proto_frame_len(type, S);
		fr->counter = get_le64(fr->buf + 16);
	}
	return (unsigned)n;
}

static void build_object(struct fixture *f, enum aead_alg alg)
{
	uint8_t key[SESSION_KEY_LEN], oid[PROTO_HASH_LEN];
	uint8_t rows[3][KMAX * S], par[2][KMAX * S], scratch[KMAX * S];
	uint8_t *manifest;
	size_t mlen;
	struct encoder e;

	randombytes_buf(f->content, sizeof(f->content));
	randombytes_buf(key, sizeof(key));
	randombytes_buf(&f->session_id, sizeof(f->session_id));
	build_manifest(f, &manifest, &mlen, oid);
	assert_int_equal(enc_init(&e, S, KMAX, 10.0, 32, 0), 0);
	assert_int_equal(e.parity, 2);
	e.session_id = f->session_id;
	e.aead = aead_new(alg, key);
	assert_non_null(e.aead);
	build_announce(f, alg, manifest, mlen, oid, key, e.parity);
	sodium_memzero(key, sizeof(key));

	assert_true(mlen <= KMAX * S);
	encode_block(f, &e, FRAME_MANIFEST, 0, manifest, mlen, scratch, "MANIFEST symbol");
	for (uint32_t b = 0; b < 3; b++) {
		size_t off = (size_t)b * KMAX * S;
		size_t n = OBJ_SIZE - off < KMAX * S ? OBJ_SIZE - off : KMAX * S;
		encode_block(f, &e, FRAME_DATA, b, f->content + off, n, rows[b], "DATA symbol");
	}
	uint8_t *r3[3] = {rows[0], rows[1], rows[2]}, *p2[2] = {par[0], par[1]};
	assert_int_equal(enc_outer(&e, r3, 3, KMAX, p2), 0);
	for (uint32_t j = 0; j < 2; j++)
		encode_block(f, &e, FRAME_DATA, 3 + j, par[j], KMAX * S, scratch,
		             "DATA outer-parity symbol");
	struct frame *hb = add_frame(f, "HEARTBEAT"), *end;
	assert_int_equal(enc_status(&e, FRAME_HEARTBEAT, 1, 1, hb->buf), 0);
	hb->len = PROTO_STATUS_FRAME_LEN;
	hb->counter = get_le64(hb->buf + 16);
	end = add_frame(f, "END");
	assert_int_equal(enc_status(&e, FRAME_END, 1, 1, end->buf), 0);
	end->len = PROTO_STATUS_FRAME_LEN;
	end->counter = get_le64(end->buf + 16);
	f->aead = e.aead; /* kept: some tests seal frames of their own */
	f->next_counter = e.counter;
	enc_free(&e);
	free(manifest);
}

/* ---- fixture ------------------------------------------------------------ */

static struct fixture *fixture_new(enum aead_alg alg)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->frames = calloc(MAXFRAMES, sizeof(*f->frames));
	assert_non_null(f->frames);
	rcv_fixture_open(&f->rx, "/tmp/sluice-mutation.XXXXXX");
	f->rx.cfg.max_object_size = 1ull << 30;
	f->rx.cfg.memory_budget = 16u << 20;
	rcv_fixture_start(&f->rx);
	build_object(f, alg);
	return f;
}

static void fixture_free(struct fixture *f)
{
	rcv_fixture_close(&f->rx);
	aead_free(f->aead);
	free(f->frames);
	free(f);
}

/* ---- mutation engine ---------------------------------------------------- */

/* Every single mutation of fr; each mutant goes to the receiver and must
 * land in the counter the model predicts. */
static void mutate_all(struct fixture *f, const struct frame *fr, int live)
{
	static uint8_t m[PROTO_MAX_DATAGRAM + 4096];
	static const size_t ext[] = {1, 2, 3, 8, 15, 16, 17, 64, 1000};
	const size_t len = fr->len;

	for (size_t pos = 0; pos < len; pos++) {
		for (unsigned bitn = 0; bitn < 8; bitn++) {
			memcpy(m, fr->buf, len);
			m[pos] ^= (uint8_t)(1u << bitn);
			feed_expect(f, m, len, expect(f, m, len, live), fr->what, "bit flip", pos);
			f->mutants++;
		}
		for (unsigned v = 0; v < 2; v++) {
			uint8_t val = v ? 0xff : 0x00;
			if (fr->buf[pos] == val) {
				f->noops++; /* the same datagram: not a mutation */
				continue;
			}
			memcpy(m, fr->buf, len);
			m[pos] = val;
			feed_expect(f, m, len, expect(f, m, len, live), fr->what,
			            v ? "byte := 0xff" : "byte := 0x00", pos);
			f->mutants++;
		}
	}
	for (size_t cut = 0; cut < len; cut++) {
		feed_expect(f, fr->buf, cut, expect(f, fr->buf, cut, live), fr->what,
		            "truncated to", cut);
		f->mutants++;
	}
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		for (unsigned v = 0; v < 2; v++) {
			memcpy(m, fr->buf, len);
			if (v)
				randombytes_buf(m + len, ext[i]);
			else
				memset(m + len, 0, ext[i]);
			feed_expect(f, m, len + ext[i], expect(f, m, len + ext[i], live), fr->what,
			            v ? "random bytes appended" : "zero bytes appended", ext[i]);
			f->mutants++;
		}
	}
	/* the largest datagram UDP can carry */
	memcpy(m, fr->buf, len);
	memset(m + len, 0xa5, PROTO_MAX_DATAGRAM - len);
	feed_expect(f, m, PROTO_MAX_DATAGRAM, expect(f, m, PROTO_MAX_DATAGRAM, live), fr->what,
	            "extended to", PROTO_MAX_DATAGRAM);
	f->mutants++;
}

/* Feed a genuine AEAD frame: it must be accepted, and a second copy must
 * then be refused as a replay. */
static void feed_genuine(struct fixture *f, struct frame *fr)
{
	feed_expect(f, fr->buf, fr->len, IDX(accepted), fr->what, "original", 0);
	fr->fed = 1;
	model_accept(f, fr->counter);
	feed_expect(f, fr->buf, fr->len, IDX(replayed), fr->what, "original, again", 0);
}

static struct frame *find_frame(struct fixture *f, int type, uint32_t block, unsigned sym)
{
	for (unsigned i = 0; i < f->nframes; i++) {
		const uint8_t *b = f->frames[i].buf;
		if (b[5] == type && get_le32(b + 24) == block && get_le16(b + 28) == sym)
			return &f->frames[i];
	}
	fail_msg("no frame of type %d block %u symbol %u", type, block, sym);
	return NULL;
}

/* The whole-content hash runs on its own thread: tick until it is done
 * and the object published or failed (a few ms; 5 s at most). */
static void wait_verdict_at(struct fixture *f, uint64_t now)
{
	for (int i = 0; i < 5000 && f->rx.r.stats.published + f->rx.r.stats.failed == 0; i++) {
		rcv_tick(&f->rx.r, now);
		usleep(1000);
	}
}

static void wait_verdict(struct fixture *f)
{
	wait_verdict_at(f, NOW + 1);
}

/* The object was published, and the inbox holds exactly its content. */
static void assert_published_identical(struct fixture *f)
{
	char path[160];
	uint8_t got[OBJ_SIZE + 1];
	int fd;

	assert_int_equal(f->rx.r.stats.published, 1);
	assert_int_equal(f->rx.r.stats.failed, 0);
	snprintf(path, sizeof(path), "%s/inbox/%s", f->rx.dir, NAME);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof(got)), OBJ_SIZE);
	close(fd);
	assert_memory_equal(got, f->content, OBJ_SIZE);
}

static void run(enum aead_alg alg)
{
	struct fixture *f = fixture_new(alg);

	/* 1. Announcement mutants before the session exists: none may
	 * create one, each is counted where the rejection order says. */
	mutate_all(f, &f->announce, 0);
	assert_int_equal(f->rx.r.nsessions, 0);
	assert_int_equal(f->rx.r.stats.accepted, 0);
	feed_expect(f, f->announce.buf, f->announce.len, IDX(accepted), "ANNOUNCE", "original", 0);
	assert_int_equal(f->rx.r.nsessions, 1);

	/* 2. The same with the session live: none may replace or disturb it. */
	mutate_all(f, &f->announce, 1);
	assert_int_equal(f->rx.r.nsessions, 1);
	feed_expect(f, f->announce.buf, f->announce.len, IDX(announce_repeat), "ANNOUNCE",
	            "original repeated", 0);

	/* 3. Every AEAD frame type: mutants first (the window must not move
	 * for any of them), then the original is accepted exactly once. */
	struct frame *targets[] = {
	    find_frame(f, FRAME_MANIFEST, 0, 0),
	    find_frame(f, FRAME_DATA, 0, 0),
	    find_frame(f, FRAME_DATA, 1, KMAX), /* an inner repair symbol */
	    find_frame(f, FRAME_DATA, 3, 1),    /* outer parity row */
	    &f->frames[f->nframes - 2],         /* HEARTBEAT */
	    &f->frames[f->nframes - 1],         /* END */
	    /* row 0 exists now: this symbol's mutants are decrypted straight
	     * into its slot (groupset_slot) before the tag fails them */
	    find_frame(f, FRAME_DATA, 0, 1),
	};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		mutate_all(f, targets[i], 1);
		feed_genuine(f, targets[i]);
	}
	/* A mutant of an already accepted frame: the replay window now
	 * refuses anything with its counter, before the AEAD is tried. */
	mutate_all(f, targets[1], 1);
	/* Symbol headers that only a key holder could produce. */
	for (size_t i = 0; i < 4; i++)
		mutate_symhdr_sealed(f, targets[i]);

	/* 4. The rest of the object: it must still publish, identical. */
	for (unsigned i = 0; i < f->nframes; i++)
		if (!f->frames[i].fed)
			feed_genuine(f, &f->frames[i]);
	wait_verdict(f);
	assert_published_identical(f);
	print_message("%s: %lu mutants rejected as predicted, %lu no-op replacements skipped\n",
	              aead_name(alg), f->mutants, f->noops);
	fixture_free(f);
}

static void feed_at(struct fixture *f, const uint8_t *b, size_t len, uint64_t now)
{
	static uint8_t copy[PROTO_MAX_DATAGRAM];

	memcpy(copy, b, len);
	f->rx.r.ring_dropped_before = f->rx.r.ring_dropped; /* as serve() keeps it */
	rcv_handle(&f->rx.r, copy, len, now);
}

static void feed_copy(struct fixture *f, const uint8_t *b, size_t len)
{
	feed_at(f, b, len, NOW);
}

static int file_contains(const char *path, const char *needle)
{
	static char buf[1 << 16];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (!fp)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* One data symbol with a flipped payload bit, sealed with the session key
 * (a sender holding the key, or a bug in it): the AEAD cannot catch it, the
 * block hash in the signed manifest must. The object is rejected, nothing
 * is published, staging is emptied, the receipt says why. */
static void test_sealed_corrupt_payload(void **state)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);
	static uint8_t m[PROTO_MAX_DATAGRAM];
	char path[160];

	(void)state;
	feed_copy(f, f->announce.buf, f->announce.len);
	assert_int_equal(f->rx.r.nsessions, 1);
	for (unsigned i = 0; i < f->nframes; i++)
		if (f->frames[i].buf[5] == FRAME_MANIFEST)
			feed_copy(f, f->frames[i].buf, f->frames[i].len);
	assert_int_equal(f->rx.r.stats.failed, 0);
	for (unsigned sym = 0; sym < KMAX; sym++) {
		const struct frame *fr = find_frame(f, FRAME_DATA, 0, sym);
		if (sym == 1) {
			size_t pos = PROTO_HEADER_LEN + PROTO_SYMHDR_LEN + 123;
			uint8_t plain[PROTO_MAX_DATAGRAM];
			memcpy(plain, fr->buf, fr->len);
			assert_int_equal(aead_open_frame(f->aead, plain, fr->len), 0);
			reseal(f, fr, pos, (uint8_t)(plain[pos] ^ 0x10), m);
			feed_copy(f, m, fr->len);
		} else {
			feed_copy(f, fr->buf, fr->len);
		}
	}
	assert_int_equal(f->rx.r.stats.bad_tag, 0);
	/* Blocks are hashed on the writer thread: tick until its verdict is
	 * in (a few ms; 5 s at most). */
	for (int i = 0; i < 5000 && f->rx.r.stats.failed == 0; i++) {
		rcv_tick(&f->rx.r, NOW + 1);
		usleep(1000);
	}
	assert_int_equal(f->rx.r.stats.failed, 1);
	assert_int_equal(f->rx.r.stats.published, 0);
	assert_int_equal(f->rx.r.nsessions, 0);
	snprintf(path, sizeof(path), "%s/inbox/%s", f->rx.dir, NAME);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/state/staging", f->rx.dir);
	assert_int_equal(staging_clean(&f->rx.st), 0); /* nothing left to clean */
	snprintf(path, sizeof(path), "%s/state/receipts.jsonl", f->rx.dir);
	assert_true(file_contains(path, "\"event\":\"rejected\""));
	assert_true(file_contains(path, "a block does not match its hash in the manifest"));
	fixture_free(f);
}

/* A decompression bomb from the key holder: block 0 sent as one zstd
 * symbol that expands to 16 MiB where the signed layout says 4000 bytes.
 * Decompression stops at the block's raw length (no 16 MiB anywhere), and
 * the object is rejected with the reason. */
static void test_zstd_bomb(void **state)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);
	static uint8_t m[PROTO_MAX_DATAGRAM];
	const size_t big = 16u << 20;
	uint8_t *zeros = calloc(1, big), bomb[2048];
	size_t n = ZSTD_compress(bomb, sizeof(bomb), zeros, big, 19);
	struct rusage before, after;
	const struct frame *fr;
	char path[160];

	(void)state;
	free(zeros);
	assert_false(ZSTD_isError(n));
	assert_true(n <= S); /* one symbol carries the whole bomb */
	feed_copy(f, f->announce.buf, f->announce.len);
	for (unsigned i = 0; i < f->nframes; i++)
		if (f->frames[i].buf[5] == FRAME_MANIFEST)
			feed_copy(f, f->frames[i].buf, f->frames[i].len);
	assert_int_equal(f->rx.r.stats.failed, 0);
	/* DATA block 0, symbol 0, re-sealed as k = 1, zstd, stored len n */
	fr = find_frame(f, FRAME_DATA, 0, 0);
	memcpy(m, fr->buf, fr->len);
	assert_int_equal(aead_open_frame(f->aead, m, fr->len), 0);
	struct symhdr sh = {.k = 1, .flags = PROTO_SYMFLAG_ZSTD, .stored_len = (uint32_t)n};
	proto_encode_symhdr(m + PROTO_HEADER_LEN, &sh);
	memset(m + PROTO_HEADER_LEN + PROTO_SYMHDR_LEN, 0, S);
	memcpy(m + PROTO_HEADER_LEN + PROTO_SYMHDR_LEN, bomb, n);
	put_le64(m + 16, ++f->next_counter);
	assert_int_equal(aead_seal_frame(f->aead, m, fr->len), 0);
	getrusage(RUSAGE_SELF, &before);
	feed_copy(f, m, fr->len);
	for (int i = 0; i < 5000 && f->rx.r.stats.failed == 0; i++) {
		rcv_tick(&f->rx.r, NOW + 1);
		usleep(1000);
	}
	getrusage(RUSAGE_SELF, &after);
	assert_int_equal(f->rx.r.stats.failed, 1);
	assert_int_equal(f->rx.r.stats.published, 0);
	assert_true(after.ru_maxrss - before.ru_maxrss < 8 * 1024); /* KiB: far below 16 MiB */
	snprintf(path, sizeof(path), "%s/inbox/%s", f->rx.dir, NAME);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/state/receipts.jsonl", f->rx.dir);
	assert_true(
	    file_contains(path, "a compressed block does not decompress to its declared size"));
	fixture_free(f);
}

/* A genuine, signed announcement that the receiver refuses (the object is
 * over --max-object-size, or the session table is full) is counted in
 * announce_refused alone: never also in accepted. */
static void test_refused_announcement(void **state)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);

	(void)state;
	f->rx.cfg.max_object_size = OBJ_SIZE - 1;
	feed_expect(f, f->announce.buf, f->announce.len, IDX(announce_refused), "ANNOUNCE",
	            "too large for this receiver", 0);
	assert_int_equal(f->rx.r.nsessions, 0);
	fixture_free(f);

	f = fixture_new(AEAD_XCHACHA20POLY1305);
	f->rx.cfg.max_sessions = 0;
	feed_expect(f, f->announce.buf, f->announce.len, IDX(announce_refused), "ANNOUNCE",
	            "session table full", 0);
	assert_int_equal(f->rx.r.nsessions, 0);
	fixture_free(f);
}

/* The receiver drops a frame itself (its receive ring was full: the ring's
 * count goes up, as note_own_drops in receiver/main.c copies it) and the
 * block's repair symbol makes up for it. The object is published, and both
 * its receipt and the operator's log say that this receiver fell behind:
 * the FEC margin it spent was not the link's. The receipt counts only the
 * drops made while the session was live. */
static void test_own_drop_covered(void **state)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);
	const struct frame *skipped = find_frame(f, FRAME_DATA, 1, 2);
	char logpath[200];
	int fd, saved;

	(void)state;
	f->rx.r.ring_dropped = 7; /* before the session: not its loss */
	feed_copy(f, f->announce.buf, f->announce.len);
	assert_int_equal(f->rx.r.nsessions, 1);
	snprintf(logpath, sizeof(logpath), "%s/stderr.log", f->rx.dir);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);

	for (unsigned i = 0; i < f->nframes; i++) {
		if (&f->frames[i] == skipped) {
			f->rx.r.ring_dropped++; /* this one never left the ring */
			continue;
		}
		feed_copy(f, f->frames[i].buf, f->frames[i].len);
	}
	wait_verdict(f);
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);

	assert_published_identical(f);
	assert_true(file_contains(f->rx.receipts, "\"event\":\"published\""));
	assert_true(file_contains(f->rx.receipts, "\"ring_dropped\":1,"));
	assert_false(file_contains(f->rx.receipts, "\"socket_drops\""));
	assert_true(file_contains(logpath, "this receiver fell behind and dropped frames itself"));
	assert_true(file_contains(logpath, "the FEC made up for them this time"));
	fixture_free(f);
}

/* The manifest's symbols and those of data blocks 0 and 1 (of 3): what the
 * tests below let through, the rest (block 2, outer parity, HEARTBEAT,
 * END) being lost or waiting. */
static int first_blocks(const uint8_t *b)
{
	return b[5] == FRAME_MANIFEST || (b[5] == FRAME_DATA && get_le32(b + 24) < 2);
}

/* Feed those, and wait for the writer's threads to write and hash them. */
static void feed_first_blocks(struct fixture *f)
{
	for (unsigned i = 0; i < f->nframes; i++)
		if (first_blocks(f->frames[i].buf))
			feed_copy(f, f->frames[i].buf, f->frames[i].len);
	writer_wait_idle(&f->rx.r.writer);
}

/* An overrun receiver can drop the sender's END frames too: the transfer
 * then ends by the session timeout, and its reason must still name the
 * cause. Block 2 and everything after it (outer parity, HEARTBEAT, END)
 * never leave the ring (own = 1), or are lost on the link (own = 0): the
 * object is recorded incomplete with the blocks missing, and the advice to
 * slow the sender down only when this receiver dropped them itself. */
static void own_drop_timeout(int own)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);

	feed_copy(f, f->announce.buf, f->announce.len);
	assert_int_equal(f->rx.r.nsessions, 1);
	for (unsigned i = 0; i < f->nframes; i++) {
		const uint8_t *b = f->frames[i].buf;
		if (first_blocks(b))
			feed_copy(f, b, f->frames[i].len);
		else if (own)
			f->rx.r.ring_dropped++;
	}
	/* blocks 0 and 1 are written and hashed on the writer's threads:
	 * wait for them, then tick to collect */
	writer_wait_idle(&f->rx.r.writer);
	rcv_tick(&f->rx.r, NOW + 1);
	assert_int_equal(f->rx.r.stats.failed, 0);
	rcv_tick(&f->rx.r, NOW + f->rx.cfg.session_timeout_ns + 1);
	assert_int_equal(f->rx.r.stats.failed, 1);
	assert_int_equal(f->rx.r.stats.published, 0);
	assert_true(file_contains(f->rx.receipts, "\"event\":\"incomplete\""));
	assert_true(file_contains(f->rx.receipts, "no frames for 60 s, 1 of 3 blocks not decoded"));
	assert_int_equal(file_contains(f->rx.receipts, "this receiver fell behind"), own);
	assert_int_equal(file_contains(f->rx.receipts, "\"ring_dropped\":"), own);
	fixture_free(f);
}

static void test_own_drop_timeout(void **state)
{
	(void)state;
	own_drop_timeout(1);
	own_drop_timeout(0);
}

/* Frames the ring dropped while the announcement waited in it (the
 * receiving loop busy) are this transfer's own loss too: its baseline is
 * the ring's count when the announcement arrived, not when it was handled.
 * Blocks 2 on never arrive; the reason must name this receiver. */
static void test_own_drop_before_announce(void **state)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);
	static uint8_t copy[PROTO_MAX_DATAGRAM];

	(void)state;
	f->rx.r.ring_dropped = 5; /* counted while the announcement waited */
	f->rx.r.ring_dropped_before = 0;
	memcpy(copy, f->announce.buf, f->announce.len);
	rcv_handle(&f->rx.r, copy, f->announce.len, NOW);
	assert_int_equal(f->rx.r.nsessions, 1);
	feed_first_blocks(f);
	rcv_tick(&f->rx.r, NOW + 1);
	rcv_tick(&f->rx.r, NOW + f->rx.cfg.session_timeout_ns + 1);
	assert_int_equal(f->rx.r.stats.failed, 1);
	assert_true(file_contains(f->rx.receipts, "this receiver fell behind"));
	assert_true(file_contains(f->rx.receipts, "\"ring_dropped\":5,"));
	fixture_free(f);
}

/* The receiver's own stall, longer than the session timeout (its loop
 * held up by a slow disk), while the rest of this object waits in the
 * receive ring: after rcv_pause, as the loop calls it, the session is not
 * given up, and the backlog completes it. Without the pause the same tick
 * would end it as "no frames for 60 s". */
static void own_stall(int paused)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);
	uint64_t later = NOW + f->rx.cfg.session_timeout_ns + 5000000000ull;

	feed_copy(f, f->announce.buf, f->announce.len);
	feed_first_blocks(f);
	rcv_tick(&f->rx.r, NOW + 1);
	if (paused)
		rcv_pause(&f->rx.r, later - NOW - 1, later);
	rcv_tick(&f->rx.r, later);
	assert_int_equal(f->rx.r.stats.failed, !paused);
	if (!paused) {
		assert_true(file_contains(f->rx.receipts, "no frames for 60 s"));
		fixture_free(f);
		return;
	}
	for (unsigned i = 0; i < f->nframes; i++) {
		const uint8_t *b = f->frames[i].buf;
		if (!first_blocks(b))
			feed_at(f, b, f->frames[i].len, later);
	}
	wait_verdict_at(f, later + 1);
	assert_int_equal(f->rx.r.stats.failed, 0);
	assert_published_identical(f);
	fixture_free(f);
}

static void test_own_stall(void **state)
{
	(void)state;
	own_stall(1);
	own_stall(0);
}

/* A status frame after the object's END, as the sender's second and third
 * END leave (PROTOCOL.md §10): the END frame with the next counter. */
static void late_end(struct fixture *f, uint8_t out[static PROTO_STATUS_FRAME_LEN])
{
	const struct frame *end = &f->frames[f->nframes - 1];

	assert_int_equal(end->buf[5], FRAME_END);
	memcpy(out, end->buf, PROTO_STATUS_FRAME_LEN);
	assert_int_equal(aead_open_frame(f->aead, out, PROTO_STATUS_FRAME_LEN), 0);
	put_le64(out + 16, ++f->next_counter);
	put_le64(out + PROTO_HEADER_LEN, f->next_counter - 1); /* frames sent before it */
	assert_int_equal(aead_seal_frame(f->aead, out, PROTO_STATUS_FRAME_LEN), 0);
}

/* What reaches a beaconing sender's link count: the announcement and its
 * copies (no more than the sender can have sent), every authenticated
 * frame, and the END frames that arrive once the object is published,
 * which authenticate under the finished session's kept key (late_status).
 * A replay of one, a forged one, a DATA frame and one after the key is
 * dropped (2 s) are finished_session and not counted. */
static void test_late_status(void **state)
{
	struct fixture *f = fixture_new(AEAD_XCHACHA20POLY1305);
	struct link *l = &f->rx.r.links[0];
	uint8_t late[PROTO_STATUS_FRAME_LEN], again[PROTO_STATUS_FRAME_LEN];
	uint8_t forged[PROTO_STATUS_FRAME_LEN];
	uint64_t counted;

	(void)state;
	l->link_id = 1; /* as after a first beacon */
	for (int i = 0; i < 6; i++)
		feed_copy(f, f->announce.buf, f->announce.len);
	assert_int_equal(f->rx.r.stats.announce_repeat, 5);
	assert_int_equal(l->recv_since, 4); /* three copies at once, one at the end */
	for (unsigned i = 0; i < f->nframes; i++)
		feed_copy(f, f->frames[i].buf, f->frames[i].len);
	wait_verdict(f);
	assert_published_identical(f);
	counted = l->recv_since;
	assert_int_equal(counted, 4 + f->nframes);

	late_end(f, late);
	memcpy(again, late, sizeof(late));
	memcpy(forged, late, sizeof(late));
	forged[PROTO_HEADER_LEN + 3] ^= 1;
	feed_copy(f, late, sizeof(late));
	assert_int_equal(f->rx.r.stats.late_status, 1);
	assert_int_equal(f->rx.r.stats.finished_session, 0);
	assert_int_equal(l->recv_since, counted + 1);
	feed_copy(f, again, sizeof(again)); /* its replay */
	feed_copy(f, forged, sizeof(forged));
	feed_copy(f, f->frames[0].buf, f->frames[0].len); /* not a status frame */
	assert_int_equal(f->rx.r.stats.late_status, 1);
	assert_int_equal(f->rx.r.stats.finished_session, 3);
	assert_int_equal(l->recv_since, counted + 1);
	late_end(f, late);
	rcv_tick(&f->rx.r, NOW + 3000000000ull); /* the key is gone */
	feed_copy(f, late, sizeof(late));
	assert_int_equal(f->rx.r.stats.late_status, 1);
	assert_int_equal(f->rx.r.stats.finished_session, 4);
	assert_int_equal(l->recv_since, counted + 1);
	fixture_free(f);
}

static void test_mutants_xchacha(void **state)
{
	(void)state;
	run(AEAD_XCHACHA20POLY1305);
}

static void test_mutants_aesgcm(void **state)
{
	(void)state;
	if (!crypto_aead_aes256gcm_is_available())
		skip();
	run(AEAD_AES256GCM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mutants_xchacha),
	    cmocka_unit_test(test_mutants_aesgcm),
	    cmocka_unit_test(test_sealed_corrupt_payload),
	    cmocka_unit_test(test_zstd_bomb),
	    cmocka_unit_test(test_refused_announcement),
	    cmocka_unit_test(test_own_drop_covered),
	    cmocka_unit_test(test_own_drop_timeout),
	    cmocka_unit_test(test_own_drop_before_announce),
	    cmocka_unit_test(test_own_stall),
	    cmocka_unit_test(test_late_status),
	};

	if (crypto_setup() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
