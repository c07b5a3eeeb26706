/* SPDX-License-Identifier: MIT */
/* Manifest encode/decode, names and paths, signature and object id tamper
 * detection, and the frame AEAD (seal, open, tamper, both algorithms, and
 * AES-256-GCM on libgcrypt and libsodium giving the same bytes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/crypto.h"
#include "proto/bytes.h"
#include "proto/manifest.h"

#define NBLOCKS 3

static uint8_t hashes[NBLOCKS * 32];
static uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];

static int setup(void **state)
{
	(void)state;
	if (crypto_setup() < 0)
		return -1;
	for (size_t i = 0; i < sizeof(hashes); i++)
		hashes[i] = (uint8_t)(i * 7);
	crypto_sign_keypair(pk, sk);
	return 0;
}

static struct manifest sample(void)
{
	struct manifest m = {.kind = MANIFEST_KIND_FILE,
	                     .sequence = 5,
	                     .created_ns = 1,
	                     .object_size = 2 * 181248 + 10,
	                     .chunk_size = 181248,
	                     .symbol_size = 1416,
	                     .k = 128,
	                     .block_count = NBLOCKS,
	                     .name = (const uint8_t *)"feed-2026-11-23.tar",
	                     .name_len = 19,
	                     .block_hashes = hashes};
	memset(m.content_hash, 0x33, 32);
	object_id_compute(&m, m.object_id);
	return m;
}

/* Encode and sign; returns the length. */
static size_t build(uint8_t *buf, size_t cap, const struct manifest *m)
{
	size_t len = proto_manifest_len(m->name_len, m->entries_len, m->block_count);

	assert_true(len > 0 && len <= cap);
	assert_int_equal(proto_manifest_encode(buf, len, m), len);
	crypto_sign_detached(buf + len - 64, NULL, buf, len - 64, sk);
	return len;
}

static int verifies(const uint8_t *buf, size_t len)
{
	struct manifest d;
	uint8_t id[32];

	if (proto_manifest_decode(buf, len, &d) != PROTO_OK)
		return 0;
	if (crypto_sign_verify_detached(d.signature, buf, d.signed_len, pk) != 0)
		return 0;
	object_id_compute(&d, id);
	return memcmp(id, d.object_id, 32) == 0;
}

static void test_roundtrip(void **state)
{
	struct manifest m = sample(), d;
	uint8_t buf[4096];
	size_t len = build(buf, sizeof(buf), &m);

	(void)state;
	assert_int_equal(len, MANIFEST_FIXED_LEN + 19 + NBLOCKS * 32 + 64);
	assert_int_equal(proto_manifest_decode(buf, len, &d), PROTO_OK);
	assert_memory_equal(d.name, m.name, m.name_len);
	assert_memory_equal(d.block_hashes, hashes, sizeof(hashes));
	assert_true(d.object_size == m.object_size);
	assert_true(verifies(buf, len));
	assert_int_equal(proto_manifest_decode(buf, len - 1, &d), PROTO_ERR_LENGTH);
}

/* Every single-bit flip anywhere in a signed manifest is caught, by the
 * decoder or by the signature. */
static void test_every_bit_flip_detected(void **state)
{
	struct manifest m = sample();
	uint8_t buf[4096];
	size_t len = build(buf, sizeof(buf), &m);

	(void)state;
	for (size_t i = 0; i < len * 8; i++) {
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (verifies(buf, len))
			fail_msg("bit %zu flip accepted", i);
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	for (size_t l = 0; l < len; l++)
		if (verifies(buf, l))
			fail_msg("truncation to %zu accepted", l);
	assert_true(verifies(buf, len));
}

static void test_object_id_stable(void **state)
{
	struct manifest a = sample(), b = sample();
	uint8_t ia[32], ib[32];

	(void)state;
	b.sequence = 99, b.created_ns = 12345, b.expires = 7; /* per-send fields */
	object_id_compute(&a, ia);
	object_id_compute(&b, ib);
	assert_memory_equal(ia, ib, 32);
	b.name = (const uint8_t *)"feed-2026-11-23.taR";
	object_id_compute(&b, ib);
	assert_memory_not_equal(ia, ib, 32);
}

static void test_names(void **state)
{
	static const char *good[] = {"a", "file.txt", "x..y", "über", "a b"};
	static const char *bad[] = {"", ".", "..", ".hidden", "a/b", "/abs", "tab\there", "nl\n"};
	uint8_t big[300];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(proto_name_valid((const uint8_t *)good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (proto_name_valid((const uint8_t *)bad[i], strlen(bad[i])))
			fail_msg("accepted name '%s'", bad[i]);
	assert_false(proto_name_valid((const uint8_t *)"a\0b", 3));
	memset(big, 'a', sizeof(big));
	assert_true(proto_name_valid(big, 255));
	assert_false(proto_name_valid(big, 256));
}

static void test_paths(void **state)
{
	static const char *good[] = {"a", "a/b", "dir/.config", "a/b/c.txt", "..a/b.."};
	static const char *bad[] = {"",     "/a",     "a/",   "a//b", "./a",  "a/./b",
	                            "../a", "a/../b", "a/..", "..",   "a\x01"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(proto_path_valid((const uint8_t *)good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (proto_path_valid((const uint8_t *)bad[i], strlen(bad[i])))
			fail_msg("accepted path '%s'", bad[i]);
}

static void test_bundle_entries(void **state)
{
	uint8_t ents[512], buf[4096], h[32] = {1};
	struct manifest_entry e1 = {
	    .path = (const uint8_t *)"docs", .path_len = 4, .mode = ENTRY_DIR, .hash = h};
	struct manifest_entry e2 = {.path = (const uint8_t *)"docs/a.txt",
	                            .path_len = 10,
	                            .mode = ENTRY_FILE,
	                            .size = 100,
	                            .hash = h};
	struct manifest m = sample(), d;
	struct manifest_entry e;
	uint32_t off = 0;
	size_t n1, n2, len;
	int n = 0;

	(void)state;
	n1 = proto_entry_encode(ents, sizeof(ents), &e1);
	n2 = proto_entry_encode(ents + n1, sizeof(ents) - n1, &e2);
	assert_true(n1 > 0 && n2 > 0);
	m.kind = MANIFEST_KIND_BUNDLE;
	m.entries = ents;
	m.entries_len = (uint32_t)(n1 + n2);
	m.entry_count = 2;
	m.object_size = 100;
	m.block_count = 1;
	len = build(buf, sizeof(buf), &m);
	assert_int_equal(proto_manifest_decode(buf, len, &d), PROTO_OK);
	while (proto_entry_next(&d, &off, &e) == 1)
		n++;
	assert_int_equal(n, 2);
	/* sizes must add up to the object size */
	m.object_size = 101;
	len = build(buf, sizeof(buf), &m);
	assert_int_equal(proto_manifest_decode(buf, len, &d), PROTO_ERR_FIELD);
	/* a path with ".." cannot even be encoded */
	e2.path = (const uint8_t *)"../etc/x1";
	e2.path_len = 9;
	assert_int_equal(proto_entry_encode(ents, sizeof(ents), &e2), 0);
}

static void aead_case(enum aead_alg alg)
{
	uint8_t key[32], f[200], orig[200];
	struct aead_ctx *c;

	randombytes_buf(key, sizeof(key));
	c = aead_new(alg, key);
	if (!c) {
		assert_int_equal(alg, AEAD_AES256GCM); /* only AES may be missing */
		return;
	}
	for (size_t i = 0; i < sizeof(f); i++)
		f[i] = (uint8_t)i;
	memcpy(orig, f, sizeof(f));
	assert_int_equal(aead_seal_frame(c, f, sizeof(f)), 0);
	assert_memory_equal(f, orig, PROTO_HEADER_LEN); /* header stays clear */
	assert_memory_not_equal(f + 32, orig + 32, sizeof(f) - 48);
	for (size_t i = 0; i < sizeof(f) * 8; i += 7) { /* any flipped bit fails */
		uint8_t g[200];
		memcpy(g, f, sizeof(f));
		g[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(aead_open_frame(c, g, sizeof(g)), -EBADMSG);
	}
	assert_int_equal(aead_open_frame(c, f, sizeof(f)), 0);
	assert_memory_equal(f, orig, sizeof(f) - 16);
	aead_free(c);
	/* another key does not open it */
	c = aead_new(alg, key);
	assert_int_equal(aead_seal_frame(c, f, sizeof(f)), 0);
	aead_free(c);
	key[0] ^= 1;
	c = aead_new(alg, key);
	assert_int_equal(aead_open_frame(c, f, sizeof(f)), -EBADMSG);
	aead_free(c);
}

static void test_aead(void **state)
{
	(void)state;
	aead_case(AEAD_XCHACHA20POLY1305);
	aead_case(AEAD_AES256GCM);
	assert_null(aead_new(AEAD_INVALID, (uint8_t[32]){0}));
}

/* The frame AES-256-GCM runs on libgcrypt where it can; libsodium is the
 * fallback and the reference. Every payload length a frame can have (up to
 * a jumbo datagram), sealed by one, must be byte-identical from the other
 * and open there; a flipped tag bit fails in both. */
static void test_aead_gcm_implementations_agree(void **state)
{
	static uint8_t a[9000], b[9000];
	uint8_t key[32];
	struct aead_ctx *gc, *sc;

	(void)state;
	if (!crypto_aead_aes256gcm_is_available())
		skip();
	if (aead_gcm_impl() != AEAD_IMPL_LIBGCRYPT)
		fail_msg("libgcrypt was not set up: AES-GCM would run on libsodium");
	randombytes_buf(key, sizeof(key));
	gc = aead_new(AEAD_AES256GCM, key);
	assert_int_equal(aead_force_impl(AEAD_IMPL_LIBSODIUM), 0);
	sc = aead_new(AEAD_AES256GCM, key);
	assert_int_equal(aead_force_impl(AEAD_IMPL_LIBGCRYPT), 0);
	assert_non_null(gc);
	assert_non_null(sc);
	aead_case(AEAD_AES256GCM); /* the libgcrypt path through the same checks */
	for (size_t len = 48; len <= sizeof(a); len += len < 1600 ? 1 : 997) {
		randombytes_buf(a, len);
		memcpy(b, a, len);
		assert_int_equal(aead_seal_frame(gc, a, len), 0);
		assert_int_equal(aead_seal_frame(sc, b, len), 0);
		assert_memory_equal(a, b, len);
		assert_int_equal(aead_open_frame(sc, a, len), 0);
		assert_int_equal(aead_open_frame(gc, b, len), 0);
		assert_memory_equal(a, b, len);
		assert_int_equal(aead_seal_frame(gc, a, len), 0);
		a[len - 1] ^= 0x80;
		memcpy(b, a, len);
		assert_int_equal(aead_open_frame(gc, a, len), -EBADMSG);
		assert_int_equal(aead_open_frame(sc, b, len), -EBADMSG);
	}
	aead_free(gc);
	aead_free(sc);
}

/* One context of each implementation, all with one random key:
 * XChaCha20-Poly1305, AES-256-GCM on libgcrypt, AES-256-GCM on libsodium
 * (NULL where the CPU lacks AES-NI). New contexts are on libgcrypt again
 * afterwards. */
static void three_contexts(struct aead_ctx *ctx[3])
{
	uint8_t key[32];

	randombytes_buf(key, sizeof(key));
	ctx[0] = aead_new(AEAD_XCHACHA20POLY1305, key);
	ctx[1] = aead_new(AEAD_AES256GCM, key);
	assert_int_equal(aead_force_impl(AEAD_IMPL_LIBSODIUM), 0);
	ctx[2] = aead_new(AEAD_AES256GCM, key);
	assert_int_equal(aead_force_impl(AEAD_IMPL_LIBGCRYPT), 0);
	sodium_memzero(key, sizeof(key));
}

/* sluice-send seals data frames straight from the row: the frame holds the
 * header and the first 16 payload bytes, the rest is read from elsewhere.
 * The frame must come out exactly as copying it in and sealing in place
 * would make it, on both implementations, whatever the frame held there. */
static void test_aead_seal_from(void **state)
{
	static uint8_t plain[2000], ref[2000], f[2000], rest[2000];
	struct aead_ctx *ctx[3];

	(void)state;
	three_contexts(ctx);
	for (int i = 0; i < 3; i++) {
		if (!ctx[i]) /* AES-GCM needs AES-NI */
			continue;
		for (size_t len = 64; len <= sizeof(f); len += 13) {
			randombytes_buf(plain, len);
			memcpy(ref, plain, len);
			assert_int_equal(aead_seal_frame(ctx[i], ref, len), 0);
			memcpy(f, plain, 48);
			memset(f + 48, 0xa5, len - 48);
			memcpy(rest, plain + 48, len - 64);
			assert_int_equal(aead_seal_frame_from(ctx[i], f, len, 16, rest), 0);
			assert_memory_equal(f, ref, len);
			assert_int_equal(aead_open_frame(ctx[i], f, len), 0);
			assert_memory_equal(f, plain, len - 16);
		}
		/* GCM blocks: the part in the frame is a multiple of 16 bytes */
		assert_int_equal(aead_seal_frame_from(ctx[i], f, 200, 8, rest), -EINVAL);
		assert_int_equal(aead_seal_frame_from(ctx[i], f, 200, 160, rest), -EINVAL);
		aead_free(ctx[i]);
	}
}

struct pick_probe {
	uint8_t *dst;     /* returned by the pick */
	uint8_t head[16]; /* what the pick was shown */
	int calls;
};

static uint8_t *probe_pick(void *arg, const uint8_t *pt)
{
	struct pick_probe *p = arg;

	memcpy(p->head, pt, sizeof(p->head));
	p->calls++;
	return p->dst;
}

/* Opening a frame into a place the pick chooses gives the plaintext of an
 * in-place open, split between the frame (first 16 bytes) and that place;
 * a NULL pick leaves it all in the frame; a forged tag leaves plaintext in
 * neither place, on every implementation. */
static void test_aead_open_to(void **state)
{
	static uint8_t plain[2000], f[2000], out[2000];
	uint8_t *rest;
	struct aead_ctx *ctx[3];

	(void)state;
	three_contexts(ctx);
	for (int i = 0; i < 3; i++) {
		if (!ctx[i]) /* AES-GCM needs AES-NI */
			continue;
		for (size_t len = 64; len <= sizeof(f); len += 29) {
			size_t n = len - 64; /* bytes after the first 16 */
			struct pick_probe p = {.dst = out};
			randombytes_buf(plain, len);
			memcpy(f, plain, len);
			assert_int_equal(aead_seal_frame(ctx[i], f, len), 0);
			memset(out, 0xa5, sizeof(out));
			assert_int_equal(
			    aead_open_frame_to(ctx[i], f, len, 16, probe_pick, &p, &rest), 0);
			assert_int_equal(p.calls, n ? 1 : 0);
			if (n) {
				assert_memory_equal(p.head, plain + 32, 16);
				assert_ptr_equal(rest, out);
				assert_memory_equal(out, plain + 48, n);
				assert_int_equal(out[n], 0xa5); /* nothing written past it */
			}
			assert_memory_equal(f, plain, 48);

			/* NULL pick: in place, like aead_open_frame */
			memcpy(f, plain, len);
			assert_int_equal(aead_seal_frame(ctx[i], f, len), 0);
			p.dst = NULL;
			assert_int_equal(
			    aead_open_frame_to(ctx[i], f, len, 16, probe_pick, &p, &rest), 0);
			assert_ptr_equal(rest, f + 48);
			assert_memory_equal(f, plain, len - 16);

			/* forged: a flipped ciphertext byte past the split */
			memcpy(f, plain, len);
			assert_int_equal(aead_seal_frame(ctx[i], f, len), 0);
			f[len - 17] ^= 1;
			p.dst = out;
			memset(out, 0xa5, sizeof(out));
			assert_int_equal(
			    aead_open_frame_to(ctx[i], f, len, 16, probe_pick, &p, &rest),
			    -EBADMSG);
			for (size_t j = 0; n && j < n; j++) /* no plaintext left there */
				assert_true(out[j] == 0 || out[j] == 0xa5);
			if (n && out[0] == 0)
				assert_memory_not_equal(out, plain + 48, n);
			assert_memory_not_equal(f + 32, plain + 32, 16);
		}
		assert_int_equal(aead_open_frame_to(ctx[i], f, 200, 8, probe_pick, NULL, &rest),
		                 -EINVAL);
		assert_int_equal(aead_open_frame_to(ctx[i], f, 200, 160, probe_pick, NULL, &rest),
		                 -EINVAL);
		aead_free(ctx[i]);
	}
}

/* Contexts live in libgcrypt's fixed, locked pool: when it is full, a new
 * one fails (the receiver then refuses that session) instead of putting a
 * key schedule in ordinary memory, and freed contexts make room again. */
static void test_aead_pool_fails_closed(void **state)
{
	enum { MAX = 1000 };
	static struct aead_ctx *c[MAX];
	uint8_t key[32] = {1};
	unsigned n = 0;

	(void)state;
	if (!crypto_aead_aes256gcm_is_available() || aead_gcm_impl() != AEAD_IMPL_LIBGCRYPT)
		skip();
	while (n < MAX && (c[n] = aead_new(AEAD_AES256GCM, key)) != NULL)
		n++;
	assert_true(n >= 32); /* crypto_setup() sized the pool for 32 */
	assert_true(n < MAX);
	for (unsigned i = 0; i < n; i++)
		aead_free(c[i]);
	for (unsigned i = 0; i < n; i++)
		assert_non_null(c[i] = aead_new(AEAD_AES256GCM, key));
	for (unsigned i = 0; i < n; i++)
		aead_free(c[i]);
}

static void test_sealed_session_key(void **state)
{
	uint8_t rpk[32], rsk[32], other_pk[32], other_sk[32];
	uint8_t key[32], sealed[PROTO_SEALED_LEN], opened[32];

	(void)state;
	crypto_box_keypair(rpk, rsk);
	crypto_box_keypair(other_pk, other_sk);
	randombytes_buf(key, sizeof(key));
	assert_int_equal(crypto_box_seal(sealed, key, 32, rpk), 0);
	assert_int_equal(crypto_box_seal_open(opened, sealed, sizeof(sealed), rpk, rsk), 0);
	assert_memory_equal(opened, key, 32);
	assert_int_not_equal(
	    crypto_box_seal_open(opened, sealed, sizeof(sealed), other_pk, other_sk), 0);
	sealed[50] ^= 1;
	assert_int_not_equal(crypto_box_seal_open(opened, sealed, sizeof(sealed), rpk, rsk), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_every_bit_flip_detected),
	    cmocka_unit_test(test_object_id_stable),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_bundle_entries),
	    cmocka_unit_test(test_aead),
	    cmocka_unit_test(test_aead_gcm_implementations_agree),
	    cmocka_unit_test(test_aead_seal_from),
	    cmocka_unit_test(test_aead_open_to),
	    cmocka_unit_test(test_aead_pool_fails_closed),
	    cmocka_unit_test(test_sealed_session_key),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
