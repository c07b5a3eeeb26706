/* SPDX-License-Identifier: MIT */
/* bench_fec: encode throughput and decode latency of common/fec.c, against a
 * full k x k inversion decode in the same run.
 *
 * Usage: bench_fec [K M SYMBOL_BYTES]   (default 128 13 1416)
 *
 * Decode is timed for 1, 5 and M lost sources with every repair present:
 * "first" is the first call on a pattern (invert, build tables, decode),
 * "miss" the average over more distinct patterns than the cache holds,
 * "hit" the average of repeated calls on one pattern. The baseline inverts
 * the k x k matrix of the k received rows on every call, as ISA-L's example
 * decoder does. Each phase stops after a fixed time, so the run is bounded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "common/fec.h"
#include "common/util.h"

#define PHASE_NS   300000000ull /* per timed loop */
#define N_PATTERNS 64           /* > the decode cache's 16 slots */

struct bench {
	struct fec *f;
	unsigned k, m;
	size_t len;
	uint8_t *data; /* k sources then m repairs, len bytes each */
	uint8_t *rec;  /* k recovery buffers */
	uint8_t *cauchy;
};

static uint8_t *sym_at(struct bench *b, unsigned i)
{
	return b->data + (size_t)i * b->len;
}

static int encode_once(struct bench *b)
{
	const uint8_t *src[FEC_MAX_K];
	uint8_t *out[FEC_MAX_SYMBOLS];

	for (unsigned i = 0; i < b->k; i++)
		src[i] = sym_at(b, i);
	for (unsigned i = 0; i < b->m; i++)
		out[i] = sym_at(b, b->k + i);
	return fec_encode(b->f, b->k, b->k, b->m, b->len, src, out);
}

static int bench_encode(struct bench *b)
{
	uint64_t t0 = now_ns(), t, n = 0;
	int rc;

	do {
		rc = encode_once(b);
		if (rc < 0)
			return rc;
		n++;
		t = now_ns() - t0;
	} while (t < PHASE_NS);
	printf("encode k=%u m=%u S=%zu: %.1f MB/s of source data (%.1f us/block)\n", b->k, b->m,
	       b->len, (double)n * b->k * b->len / ((double)t / 1e9) / 1e6, (double)t / n / 1e3);
	return 0;
}

/* Pattern: e distinct lost sources, chosen by seed; all m repairs present. */
static void make_pattern(struct bench *b, unsigned e, unsigned seed, uint8_t *lost)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + e;

	memset(lost, 0, b->k);
	for (unsigned n = 0; n < e;) {
		s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
		unsigned i = (unsigned)((s * 0x2545f4914f6cdd1dull >> 33) % b->k);

		if (!lost[i])
			lost[i] = 1, n++;
	}
}

static int check(struct bench *b, const uint8_t *lost)
{
	for (unsigned i = 0; i < b->k; i++)
		if (lost[i] && memcmp(b->rec + (size_t)i * b->len, sym_at(b, i), b->len) != 0)
			return -EIO;
	return 0;
}

static int decode_once(struct bench *b, const uint8_t *lost)
{
	const uint8_t *sym[FEC_MAX_SYMBOLS] = {0};
	uint8_t *out[FEC_MAX_SYMBOLS] = {0};

	for (unsigned i = 0; i < b->k + b->m; i++)
		if (i >= b->k || !lost[i])
			sym[i] = sym_at(b, i);
	for (unsigned i = 0; i < b->k; i++)
		if (lost[i])
			out[i] = b->rec + (size_t)i * b->len;
	return fec_decode(b->f, b->k, b->len, sym, out);
}

/* Full inversion: the k received rows (identity for known sources, Cauchy
 * rows for the lowest e repairs) form M; lost source j is row j of M^-1. */
static int decode_full(struct bench *b, const uint8_t *lost, unsigned e)
{
	unsigned k = b->k, n = 0, r = k, nl = 0;
	uint8_t *m = malloc((size_t)k * k), *inv = malloc((size_t)k * k);
	uint8_t *rows = malloc((size_t)e * k), *tbl = malloc((size_t)32 * k * e);
	unsigned char *in[FEC_MAX_K], *out[FEC_MAX_K];
	int rc = -ENOMEM;

	if (!m || !inv || !rows || !tbl)
		goto out;
	memset(m, 0, (size_t)k * k);
	for (unsigned i = 0; i < k; i++) {
		if (lost[i]) {
			memcpy(m + (size_t)n * k, b->cauchy + (size_t)r * k, k);
			in[n++] = sym_at(b, r++);
		} else {
			m[(size_t)n * k + i] = 1;
			in[n++] = sym_at(b, i);
		}
	}
	rc = -EIO;
	if (gf_invert_matrix(m, inv, (int)k) != 0)
		goto out;
	for (unsigned i = 0; i < k; i++) {
		if (lost[i]) {
			memcpy(rows + (size_t)nl * k, inv + (size_t)i * k, k);
			out[nl++] = b->rec + (size_t)i * b->len;
		}
	}
	ec_init_tables((int)k, (int)e, rows, tbl);
	ec_encode_data((int)b->len, (int)k, (int)e, tbl, in, out);
	rc = 0;
out:
	free(m), free(inv), free(rows), free(tbl);
	return rc;
}

/* Average ns per call of fn over patterns seed0.., npat distinct ones. */
static int time_calls(struct bench *b, unsigned e, unsigned npat, int full, double *avg)
{
	uint8_t lost[FEC_MAX_K];
	uint64_t t0 = now_ns(), t = 0, n = 0;
	int rc;

	do {
		make_pattern(b, e, (unsigned)(n % npat), lost);
		memset(b->rec, 0, (size_t)b->k * b->len);
		uint64_t s = now_ns();
		rc = full ? decode_full(b, lost, e) : decode_once(b, lost);
		t += now_ns() - s;
		if (rc < 0 || (rc = check(b, lost)) < 0)
			return rc;
		n++;
	} while (now_ns() - t0 < PHASE_NS || n < npat);
	*avg = (double)t / n;
	return 0;
}

static int bench_decode(struct bench *b, unsigned e)
{
	uint8_t lost[FEC_MAX_K];
	double miss, hit, full;
	uint64_t t;
	int rc;

	/* A seed no later pattern uses, so this call cannot hit the cache. */
	make_pattern(b, e, 1000000, lost);
	t = now_ns();
	rc = decode_once(b, lost);
	t = now_ns() - t;
	if (rc < 0 || (rc = check(b, lost)) < 0 ||
	    (rc = time_calls(b, e, N_PATTERNS, 0, &miss)) < 0 ||
	    (rc = time_calls(b, e, 1, 0, &hit)) < 0 || (rc = time_calls(b, e, 1, 1, &full)) < 0)
		return rc;
	printf("decode e=%-3u first %8.1f us  miss %8.1f us  hit %8.1f us  | full k x k %8.1f us"
	       "  full/miss %.1fx  full/hit %.1fx\n",
	       e, t / 1e3, miss / 1e3, hit / 1e3, full / 1e3, full / miss, full / hit);
	return 0;
}

static int run(struct bench *b)
{
	unsigned es[3] = {1, b->m < 5 ? b->m : 5, b->m};
	int rc;

	for (size_t i = 0; i < (size_t)(b->k + b->m) * b->len; i++)
		b->data[i] = (uint8_t)(i * 2654435761u >> 13);
	gf_gen_cauchy1_matrix(b->cauchy, FEC_MAX_SYMBOLS, (int)b->k);
	rc = bench_encode(b);
	for (unsigned i = 0; rc == 0 && i < 3; i++)
		if (i == 0 || es[i] != es[i - 1])
			rc = bench_decode(b, es[i]);
	return rc;
}

int main(int argc, char **argv)
{
	struct bench b = {.k = 128, .m = 13, .len = 1416};
	int rc;

	if (argc == 4) {
		b.k = (unsigned)strtoul(argv[1], NULL, 10);
		b.m = (unsigned)strtoul(argv[2], NULL, 10);
		b.len = strtoul(argv[3], NULL, 10);
	} else if (argc != 1) {
		fprintf(stderr, "usage: %s [K M SYMBOL_BYTES]\n", argv[0]);
		return 2;
	}
	if (b.k < 1 || b.k > FEC_MAX_K || b.m < 1 || b.m > b.k || b.m > FEC_MAX_SYMBOLS - b.k ||
	    b.len < 1 || b.len > (1u << 20)) {
		fprintf(stderr, "need 1 <= M <= K, K + M <= 255, 1 <= SYMBOL_BYTES <= 1 MiB\n");
		return 2;
	}
	b.f = fec_new();
	b.data = malloc((size_t)(b.k + b.m) * b.len);
	b.rec = malloc((size_t)b.k * b.len);
	b.cauchy = malloc((size_t)FEC_MAX_SYMBOLS * b.k);
	rc = b.f && b.data && b.rec && b.cauchy ? run(&b) : -ENOMEM;
	if (rc < 0)
		fprintf(stderr, "bench_fec: %s\n", strerror(-rc));
	fec_free(b.f);
	free(b.data), free(b.rec), free(b.cauchy);
	return rc < 0;
}
