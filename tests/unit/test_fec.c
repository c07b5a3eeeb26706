/* SPDX-License-Identifier: MIT */
/* FEC: known-answer repair symbols, decode of every loss count up to m for
 * several (k, m), repair passes and wrapping ranges, argument rejection and
 * table-cache reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <isa-l/erasure_code.h>

#include "common/fec.h"

/* xorshift64*: fixed seeds keep every run's data and loss patterns equal. */
static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s ? s : 1;
}

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static unsigned rng_below(unsigned n)
{
	return (unsigned)(rng() % n);
}

/* Two passes may repeat an index, so a block can hold more slots than 255. */
#define MAX_SLOTS (2 * FEC_MAX_SYMBOLS)

/* One encoded block: k sources then repairs carrying indices idx[k..]. */
struct block {
	unsigned k, n; /* n slots in total: k sources + n - k repairs */
	size_t len;
	uint8_t *data;           /* n * len */
	unsigned idx[MAX_SLOTS]; /* symbol index of data slot i */
};

static uint8_t *slot(struct block *b, unsigned i)
{
	return b->data + (size_t)i * b->len;
}

static void block_init(struct block *b, unsigned k, unsigned cap, size_t len)
{
	b->k = k;
	b->n = k;
	b->len = len;
	b->data = malloc((size_t)cap * len);
	assert_non_null(b->data);
	for (size_t i = 0; i < (size_t)k * len; i++)
		b->data[i] = (uint8_t)rng();
	for (unsigned i = 0; i < k; i++)
		b->idx[i] = i;
}

/* Append nrepair repairs from first (wrapping as fec_encode does). */
static void block_encode(struct fec *f, struct block *b, unsigned first, unsigned nrepair)
{
	const uint8_t *src[FEC_MAX_K];
	uint8_t *out[FEC_MAX_SYMBOLS];

	for (unsigned i = 0; i < b->k; i++)
		src[i] = slot(b, i);
	for (unsigned i = 0; i < nrepair; i++) {
		out[i] = slot(b, b->n + i);
		b->idx[b->n + i] = b->k + (first - b->k + i) % (FEC_MAX_SYMBOLS - b->k);
	}
	assert_int_equal(fec_encode(f, b->k, first, nrepair, b->len, src, out), 0);
	b->n += nrepair;
}

/* Decode with the slots flagged in drop[] missing; check every lost source
 * comes back bit-exact. Returns fec_decode()'s result. */
static int try_decode(struct fec *f, struct block *b, const uint8_t *drop)
{
	const uint8_t *sym[FEC_MAX_SYMBOLS] = {0};
	uint8_t *out[FEC_MAX_SYMBOLS] = {0};
	uint8_t *rec = malloc((size_t)b->k * b->len);
	int rc;

	assert_non_null(rec);
	memset(rec, 0xa5, (size_t)b->k * b->len);
	for (unsigned i = 0; i < b->n; i++)
		if (!drop[i])
			sym[b->idx[i]] = slot(b, i);
	for (unsigned i = 0; i < b->k; i++)
		if (!sym[i])
			out[i] = rec + (size_t)i * b->len;
	rc = fec_decode(f, b->k, b->len, sym, out);
	if (rc == 0)
		for (unsigned i = 0; i < b->k; i++)
			if (out[i])
				assert_memory_equal(out[i], slot(b, i), b->len);
	free(rec);
	return rc;
}

/* Mark exactly l of the n slots as dropped, chosen at random. */
static void drop_random(uint8_t *drop, unsigned n, unsigned l)
{
	unsigned perm[MAX_SLOTS];

	memset(drop, 0, n);
	for (unsigned i = 0; i < n; i++)
		perm[i] = i;
	for (unsigned i = 0; i < l; i++) {
		unsigned j = i + rng_below(n - i), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
		drop[perm[i]] = 1;
	}
}

/* Sources first (as many as possible), the rest from the repairs. */
static void drop_sources_first(uint8_t *drop, const struct block *b, unsigned l)
{
	unsigned s = l < b->k ? l : b->k;

	memset(drop, 0, b->n);
	for (unsigned i = 0; i < s; i++)
		drop[b->k - 1 - i] = 1;
	for (unsigned i = 0; i < l - s; i++)
		drop[b->k + i] = 1;
}

/* Half sources (even indices), half repairs (lowest first). */
static void drop_mixed(uint8_t *drop, const struct block *b, unsigned l)
{
	unsigned want = (l + 1) / 2, s = 0, r = 0;

	memset(drop, 0, b->n);
	for (unsigned i = 0; i < b->k && s < want; i += 2, s++)
		drop[i] = 1;
	for (unsigned i = 1; i < b->k && s < want; i += 2, s++)
		drop[i] = 1;
	for (unsigned i = b->k; i < b->n && r < l - s; i++, r++)
		drop[i] = 1;
}

struct km {
	unsigned k, m;
	size_t len;
};

static void roundtrip(struct fec *f, const struct km *t)
{
	uint8_t drop[MAX_SLOTS];
	struct block b;

	block_init(&b, t->k, t->k + t->m, t->len);
	block_encode(f, &b, fec_repair_start(t->k, t->m, 0), t->m);
	for (unsigned l = 0; l <= t->m; l++) {
		drop_sources_first(drop, &b, l);
		assert_int_equal(try_decode(f, &b, drop), 0);
		drop_mixed(drop, &b, l);
		assert_int_equal(try_decode(f, &b, drop), 0);
		for (unsigned rep = 0; rep < 3; rep++) {
			drop_random(drop, b.n, l);
			assert_int_equal(try_decode(f, &b, drop), 0);
		}
	}
	/* One more loss than repairs: k - 1 symbols left. */
	drop_random(drop, b.n, t->m + 1);
	assert_int_equal(try_decode(f, &b, drop), -EAGAIN);
	drop_sources_first(drop, &b, t->m + 1);
	assert_int_equal(try_decode(f, &b, drop), -EAGAIN);
	free(b.data);
}

static void test_roundtrip_every_loss_count(void **state)
{
	static const struct km cases[] = {
	    {1, 1, 1},       {4, 2, 17},    {10, 3, 1416},  {64, 7, 100},
	    {128, 13, 1416}, {200, 55, 33}, {100, 155, 64}, {254, 1, 31},
	};
	struct fec *f = fec_new();

	(void)state;
	assert_non_null(f);
	rng_seed(0x5eed0001);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		roundtrip(f, &cases[i]);
	fec_free(f);
}

/* Computed independently (Python, GF(2^8) modulo x^8+x^4+x^3+x^2+1 = 0x11d,
 * repair row r = 1/(r ^ j)) for k = 4, 8-byte symbols
 * src[i][j] = i*37 + j*11 + 1. */
static const uint8_t kat_src[4][8] = {
    {0x01, 0x0c, 0x17, 0x22, 0x2d, 0x38, 0x43, 0x4e},
    {0x26, 0x31, 0x3c, 0x47, 0x52, 0x5d, 0x68, 0x73},
    {0x4b, 0x56, 0x61, 0x6c, 0x77, 0x82, 0x8d, 0x98},
    {0x70, 0x7b, 0x86, 0x91, 0x9c, 0xa7, 0xb2, 0xbd},
};

static const struct {
	unsigned index;
	uint8_t row[4];
	uint8_t sym[8];
} kat_rep[] = {
    {4, {0x47, 0xa7, 0x7a, 0xba}, {0x69, 0x3c, 0x4e, 0xfe, 0xcc, 0xf1, 0x57, 0xd0}},
    {5, {0xa7, 0x47, 0xba, 0x7a}, {0x08, 0x53, 0xf0, 0x84, 0xb8, 0x87, 0xe5, 0xf1}},
    {254, {0x7e, 0xfd, 0x7f, 0xff}, {0x98, 0x23, 0xc9, 0xfa, 0x7d, 0xec, 0xc4, 0x13}},
};

static void kat_check(struct fec *f, unsigned first, unsigned n)
{
	const uint8_t *src[4] = {kat_src[0], kat_src[1], kat_src[2], kat_src[3]};
	uint8_t buf[4][8], *out[4] = {buf[0], buf[1], buf[2], buf[3]};

	assert_int_equal(fec_encode(f, 4, first, n, 8, src, out), 0);
	for (unsigned i = 0; i < n; i++) {
		unsigned idx = 4 + (first - 4 + i) % (FEC_MAX_SYMBOLS - 4);

		for (size_t t = 0; t < sizeof(kat_rep) / sizeof(kat_rep[0]); t++)
			if (kat_rep[t].index == idx)
				assert_memory_equal(out[i], kat_rep[t].sym, 8);
		/* The same by hand: sum over j of gf_inv(idx ^ j) * src[j]. */
		for (unsigned byte = 0; byte < 8; byte++) {
			uint8_t acc = 0;

			for (unsigned j = 0; j < 4; j++)
				acc ^= gf_mul(gf_inv((uint8_t)(idx ^ j)), kat_src[j][byte]);
			assert_int_equal(out[i][byte], acc);
		}
	}
}

static void test_known_answer(void **state)
{
	struct fec *f = fec_new();

	(void)state;
	assert_non_null(f);
	for (size_t t = 0; t < sizeof(kat_rep) / sizeof(kat_rep[0]); t++)
		for (unsigned j = 0; j < 4; j++)
			assert_int_equal(gf_inv((uint8_t)(kat_rep[t].index ^ j)),
			                 kat_rep[t].row[j]);
	kat_check(f, 4, 2);   /* rows 4, 5 */
	kat_check(f, 254, 1); /* last row */
	kat_check(f, 254, 3); /* wraps: 254, 4, 5 */
	kat_check(f, 100, 4);
	fec_free(f);
}

static void test_repair_start(void **state)
{
	(void)state;
	assert_int_equal(fec_repair_start(10, 3, 0), 10);
	assert_int_equal(fec_repair_start(10, 3, 1), 13);
	assert_int_equal(fec_repair_start(10, 3, 2), 16);
	assert_int_equal(fec_repair_start(250, 3, 0), 250);
	assert_int_equal(fec_repair_start(250, 3, 1), 253);
	assert_int_equal(fec_repair_start(250, 3, 2), 251);
	assert_int_equal(fec_repair_start(200, 55, 7), 200);
	assert_int_equal(fec_repair_start(254, 1, 12345), 254);
	/* pass * m must not overflow 32 bits before the modulo. */
	assert_int_equal(fec_repair_start(10, 3, UINT32_MAX),
	                 10 + (unsigned)((uint64_t)UINT32_MAX * 3 % 245));
	assert_int_equal(fec_repair_start(0, 3, 1), FEC_MAX_SYMBOLS);
	assert_int_equal(fec_repair_start(255, 3, 1), FEC_MAX_SYMBOLS);
}

/* Sources 0..k-1 in slots 0..k-1, pass 0 repairs, then pass 1 repairs: drop
 * m sources and all of pass 0, so only pass 1 can repair. */
static void pass_case(struct fec *f, unsigned k, unsigned m)
{
	uint8_t drop[MAX_SLOTS] = {0};
	struct block b;

	block_init(&b, k, k + 2 * m, 64);
	block_encode(f, &b, fec_repair_start(k, m, 0), m);
	block_encode(f, &b, fec_repair_start(k, m, 1), m);
	for (unsigned i = 0; i < m; i++) {
		drop[i * (k / m)] = 1; /* spread over the block */
		drop[k + i] = 1;
	}
	assert_int_equal(try_decode(f, &b, drop), 0);
	/* One more source lost: pass 1 alone is not enough. */
	drop[k - 1] = 1;
	assert_int_equal(try_decode(f, &b, drop), -EAGAIN);
	free(b.data);
}

static void test_passes_and_wrap(void **state)
{
	struct fec *f = fec_new();
	struct block b;
	uint8_t single[64];
	const uint8_t *src[FEC_MAX_K];
	uint8_t *out[1] = {single};

	(void)state;
	assert_non_null(f);
	rng_seed(0x5eed0002);
	pass_case(f, 10, 3);
	pass_case(f, 250, 3); /* pass 1 is 253, 254, 250 */
	pass_case(f, 128, 13);

	/* A range wrapping 254 -> k gives the same symbols as separate calls. */
	block_init(&b, 250, 255, 64);
	block_encode(f, &b, 252, 5); /* 252, 253, 254, 250, 251 */
	for (unsigned i = 0; i < 250; i++)
		src[i] = slot(&b, i);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(fec_encode(f, 250, b.idx[250 + i], 1, 64, src, out), 0);
		assert_memory_equal(single, slot(&b, 250 + i), 64);
	}
	free(b.data);
	fec_free(f);
}

/* MDS: for k = 3, any 3 of the 255 indices decode. */
static void test_any_k_of_255(void **state)
{
	uint8_t drop[MAX_SLOTS];
	struct fec *f = fec_new();
	struct block b;

	(void)state;
	assert_non_null(f);
	rng_seed(0x5eed0003);
	block_init(&b, 3, 255, 40);
	block_encode(f, &b, 3, 252);
	for (unsigned t = 0; t < 300; t++) {
		drop_random(drop, b.n, b.n - 3);
		assert_int_equal(try_decode(f, &b, drop), 0);
	}
	/* Only the last three repair indices. */
	memset(drop, 1, b.n);
	drop[252] = drop[253] = drop[254] = 0;
	assert_int_equal(try_decode(f, &b, drop), 0);
	free(b.data);
	fec_free(f);
}

static void test_encode_rejects(void **state)
{
	struct fec *f = fec_new();
	uint8_t d[4][8] = {{0}}, r[2][8];
	const uint8_t *src[4] = {d[0], d[1], d[2], d[3]};
	const uint8_t *hole[4] = {d[0], NULL, d[2], d[3]};
	uint8_t *out[2] = {r[0], r[1]}, *out_hole[2] = {r[0], NULL};

	(void)state;
	assert_non_null(f);
	assert_int_equal(fec_encode(NULL, 4, 4, 2, 8, src, out), -EINVAL);
	assert_int_equal(fec_encode(f, 0, 4, 2, 8, src, out), -EINVAL);
	assert_int_equal(fec_encode(f, 255, 255, 0, 8, src, out), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 4, 2, 0, src, out), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 4, 2, (size_t)1 << 31, src, out), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 3, 2, 8, src, out), -EINVAL);   /* a source index */
	assert_int_equal(fec_encode(f, 4, 255, 1, 8, src, out), -EINVAL); /* past 254 */
	assert_int_equal(fec_encode(f, 4, 4, 252, 8, src, out), -EINVAL); /* > 255 - k */
	assert_int_equal(fec_encode(f, 4, 4, 2, 8, NULL, out), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 4, 2, 8, src, NULL), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 4, 2, 8, hole, out), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 4, 2, 8, src, out_hole), -EINVAL);
	assert_int_equal(fec_encode(f, 4, 4, 0, 8, src, NULL), 0); /* nothing to do */
	assert_int_equal(fec_encode(f, 4, 4, 2, 8, src, out), 0);
	fec_free(f);
}

static void test_decode_rejects(void **state)
{
	struct fec *f = fec_new();
	uint8_t d[8][8] = {{0}}, rec[8];
	const uint8_t *sym[FEC_MAX_SYMBOLS] = {d[0], d[1], d[2], d[3]};
	uint8_t *out[FEC_MAX_SYMBOLS] = {0};

	(void)state;
	assert_non_null(f);
	assert_int_equal(fec_decode(NULL, 4, 8, sym, out), -EINVAL);
	assert_int_equal(fec_decode(f, 0, 8, sym, out), -EINVAL);
	assert_int_equal(fec_decode(f, 255, 8, sym, out), -EINVAL);
	assert_int_equal(fec_decode(f, 4, 0, sym, out), -EINVAL);
	assert_int_equal(fec_decode(f, 4, (size_t)1 << 31, sym, out), -EINVAL);
	assert_int_equal(fec_decode(f, 4, 8, NULL, out), -EINVAL);
	/* Nothing lost: nothing to do, out may be NULL. */
	assert_int_equal(fec_decode(f, 4, 8, sym, NULL), 0);
	/* Source 1 lost but no buffer for it. */
	sym[1] = NULL;
	sym[4] = d[4];
	assert_int_equal(fec_decode(f, 4, 8, sym, NULL), -EINVAL);
	assert_int_equal(fec_decode(f, 4, 8, sym, out), -EINVAL);
	out[1] = rec;
	assert_int_equal(fec_decode(f, 4, 8, sym, out), 0);
	/* Three present: fewer than k. */
	sym[4] = NULL;
	assert_int_equal(fec_decode(f, 4, 8, sym, out), -EAGAIN);
	/* 130 of 200 sources lost (more than any 255 - k repairs could fix). */
	for (unsigned i = 0; i < FEC_MAX_SYMBOLS; i++) {
		sym[i] = i >= 130 ? d[0] : NULL;
		out[i] = i < 130 ? rec : NULL;
	}
	assert_int_equal(fec_decode(f, 200, 8, sym, out), -EAGAIN);
	fec_free(f);
}

/* Same pattern twice (hit), another (miss), the first again, then more than
 * the cache holds and back: every result stays exact. */
static void test_cache_reuse(void **state)
{
	uint8_t drop[MAX_SLOTS], first[MAX_SLOTS];
	struct fec *f = fec_new();
	struct block b, c;

	(void)state;
	assert_non_null(f);
	rng_seed(0x5eed0004);
	block_init(&b, 64, 64 + 7, 256);
	block_encode(f, &b, 64, 7);
	drop_random(first, b.n, 7);
	assert_int_equal(try_decode(f, &b, first), 0);
	assert_int_equal(try_decode(f, &b, first), 0);
	drop_random(drop, b.n, 5);
	assert_int_equal(try_decode(f, &b, drop), 0);
	assert_int_equal(try_decode(f, &b, first), 0);
	for (unsigned t = 0; t < 40; t++) {
		drop_random(drop, b.n, 1 + t % 7);
		assert_int_equal(try_decode(f, &b, drop), 0);
	}
	assert_int_equal(try_decode(f, &b, first), 0);

	/* New data, same k and pattern: cached tables, other symbols. */
	block_init(&c, 64, 64 + 7, 256);
	block_encode(f, &c, 64, 7);
	assert_int_equal(try_decode(f, &c, first), 0);
	free(c.data);

	/* k = 64 losing source 0 repairs from index 64; k = 63 losing source 0
	 * and repair 63 does too. Same E and R bits, different k and matrix:
	 * the second must not reuse the first's tables. */
	memset(drop, 0, sizeof(drop));
	drop[0] = 1;
	assert_int_equal(try_decode(f, &b, drop), 0);
	block_init(&c, 63, 63 + 2, 256);
	block_encode(f, &c, 63, 2);
	drop[63] = 1;
	assert_int_equal(try_decode(f, &c, drop), 0);
	free(b.data);
	free(c.data);
	fec_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_answer),
	    cmocka_unit_test(test_repair_start),
	    cmocka_unit_test(test_roundtrip_every_loss_count),
	    cmocka_unit_test(test_passes_and_wrap),
	    cmocka_unit_test(test_any_k_of_255),
	    cmocka_unit_test(test_encode_rejects),
	    cmocka_unit_test(test_decode_rejects),
	    cmocka_unit_test(test_cache_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
