/* SPDX-License-Identifier: MIT */
/* Systematic Cauchy Reed-Solomon encode and sub-matrix decode of one block on ISA-L.
 *
 * Code: symbol i < k is source i; repair symbol r (k <= r <= 254) is row r of
 * the 255 x k matrix from gf_gen_cauchy1_matrix(), entries 1/(r ^ j). Every
 * square sub-matrix of a Cauchy matrix is invertible, so any k of the 255
 * symbols determine the block (MDS).
 *
 * Decode: with E the e lost sources and R the e lowest received repairs,
 *
 *	C[R][E] * lost = rep + C[R][known] * known	(+ is XOR in GF(2^8))
 *	lost = inv * rep + (inv * C[R][known]) * known,   inv = C[R][E]^-1
 *
 * so only the e x e matrix is inverted and one ec_encode_data() call with an
 * e x k matrix over the inputs (known sources in index order, then R) writes
 * all lost symbols. GF arithmetic and the vector code are ISA-L's.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "fec.h"

#define ENC_SLOTS 8  /* consecutive blocks usually share (k, first, n) */
#define DEC_SLOTS 16 /* loss patterns repeat less, but bursts do recur */
#define TBL_BYTES 32 /* ec_init_tables() output per coefficient */

/* Coding rows times k never exceeds 127 * 128: an encode has at most 255 - k
 * rows, a decode e <= min(k, 255 - k) <= 127 of them. */
#define MAX_ROWS (FEC_MAX_SYMBOLS / 2)
#define MAX_MAT  (MAX_ROWS * (MAX_ROWS + 1))

struct cache_key {
	uint64_t w[5]; /* encode: k, first, n; decode: k, then a bitmap of E and R */
};

struct cache_ent {
	struct cache_key key;
	uint64_t hash;
	uint64_t used; /* LRU stamp, 0 = empty slot */
	uint8_t *tbl;  /* ec_init_tables() output */
};

struct fec {
	uint8_t *cauchy[FEC_MAX_K + 1]; /* 255 x k, built on first use of k */
	uint64_t tick;
	struct cache_ent enc[ENC_SLOTS];
	struct cache_ent dec[DEC_SLOTS];
	uint8_t mat[MAX_MAT];             /* coding matrix being built */
	uint8_t sub[MAX_ROWS * MAX_ROWS]; /* C[R][E], destroyed by inversion */
	uint8_t inv[MAX_ROWS * MAX_ROWS]; /* its inverse */
};

/* One decode's loss pattern: indices in ascending order. */
struct pattern {
	unsigned k, e;
	uint8_t lost[MAX_ROWS];   /* E */
	uint8_t rep[MAX_ROWS];    /* R */
	uint8_t known[FEC_MAX_K]; /* received sources, k - e of them */
};

_Static_assert(FEC_MAX_SYMBOLS == 255, "GF(2^8) has 255 non-zero elements");
_Static_assert(FEC_MAX_K < FEC_MAX_SYMBOLS, "need at least one repair index");

struct fec *fec_new(void)
{
	return calloc(1, sizeof(struct fec));
}

void fec_free(struct fec *f)
{
	if (!f)
		return;
	for (unsigned k = 0; k <= FEC_MAX_K; k++)
		free(f->cauchy[k]);
	for (unsigned i = 0; i < ENC_SLOTS; i++)
		free(f->enc[i].tbl);
	for (unsigned i = 0; i < DEC_SLOTS; i++)
		free(f->dec[i].tbl);
	free(f);
}

static int valid_k(unsigned k)
{
	return k >= 1 && k <= FEC_MAX_K;
}

/* ISA-L takes unsigned char ** for its inputs but only reads them. */
static unsigned char *unconst(const uint8_t *p)
{
	return (unsigned char *)(uintptr_t)p;
}

static const uint8_t *cauchy(struct fec *f, unsigned k)
{
	if (!f->cauchy[k]) {
		f->cauchy[k] = malloc((size_t)FEC_MAX_SYMBOLS * k);
		if (f->cauchy[k])
			gf_gen_cauchy1_matrix(f->cauchy[k], FEC_MAX_SYMBOLS, (int)k);
	}
	return f->cauchy[k];
}

/* i-th index of a repair range starting at first, wrapping from 254 to k. */
static unsigned repair_index(unsigned k, unsigned first, unsigned i)
{
	return k + (first - k + i) % (FEC_MAX_SYMBOLS - k);
}

static uint64_t key_hash(const struct cache_key *key)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < sizeof(key->w) / sizeof(key->w[0]); i++) {
		h ^= key->w[i];
		h *= 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	return h;
}

static uint8_t *cache_find(struct fec *f, struct cache_ent *ent, unsigned n,
                           const struct cache_key *key, uint64_t hash)
{
	for (unsigned i = 0; i < n; i++) {
		if (ent[i].used && ent[i].hash == hash &&
		    memcmp(&ent[i].key, key, sizeof(*key)) == 0) {
			ent[i].used = ++f->tick;
			return ent[i].tbl;
		}
	}
	return NULL;
}

/* Takes ownership of tbl; evicts the least recently used entry. */
static void cache_put(struct fec *f, struct cache_ent *ent, unsigned n, const struct cache_key *key,
                      uint64_t hash, uint8_t *tbl)
{
	struct cache_ent *victim = &ent[0];

	for (unsigned i = 1; i < n && victim->used; i++)
		if (ent[i].used < victim->used)
			victim = &ent[i];
	free(victim->tbl);
	*victim = (struct cache_ent){.key = *key, .hash = hash, .used = ++f->tick, .tbl = tbl};
}

static int enc_tables(struct fec *f, unsigned k, unsigned first, unsigned n, uint8_t **tbl)
{
	struct cache_key key = {{k, first, n}};
	uint64_t hash = key_hash(&key);
	const uint8_t *c;

	*tbl = cache_find(f, f->enc, ENC_SLOTS, &key, hash);
	if (*tbl)
		return 0;
	c = cauchy(f, k);
	*tbl = malloc((size_t)TBL_BYTES * k * n);
	if (!c || !*tbl) {
		free(*tbl);
		*tbl = NULL;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++)
		memcpy(f->mat + (size_t)i * k, c + (size_t)repair_index(k, first, i) * k, k);
	ec_init_tables((int)k, (int)n, f->mat, *tbl);
	cache_put(f, f->enc, ENC_SLOTS, &key, hash, *tbl);
	return 0;
}

int fec_encode(struct fec *f, unsigned k, unsigned first_repair, unsigned nrepair, size_t len,
               const uint8_t *const *src, uint8_t *const *out)
{
	unsigned char *in[FEC_MAX_K], *dst[FEC_MAX_SYMBOLS];
	uint8_t *tbl;
	int rc;

	if (!f || !valid_k(k) || !len || len > (size_t)INT_MAX || first_repair < k ||
	    first_repair >= FEC_MAX_SYMBOLS || nrepair > FEC_MAX_SYMBOLS - k || !src ||
	    (nrepair && !out))
		return -EINVAL;
	if (!nrepair)
		return 0;
	for (unsigned i = 0; i < k; i++) {
		if (!src[i])
			return -EINVAL;
		in[i] = unconst(src[i]);
	}
	for (unsigned i = 0; i < nrepair; i++) {
		if (!out[i])
			return -EINVAL;
		dst[i] = out[i];
	}
	rc = enc_tables(f, k, first_repair, nrepair, &tbl);
	if (rc < 0)
		return rc;
	ec_encode_data((int)len, (int)k, (int)nrepair, tbl, in, dst);
	return 0;
}

/* Decode matrix, e x k in f->mat: row a holds (inv * C[R][known])[a] on the
 * known sources, then inv[a] on the repairs. The product is e x e times
 * e x (k - e); rather than e^2 (k - e) scalar gf_mul() calls (2 ms at k = 200,
 * e = 55), one ec_encode_data() call does it, taking the rows of C[R][known]
 * as its "symbols". scratch (32 e^2 bytes) holds the tables for inv. */
static void dec_matrix(struct fec *f, const struct pattern *p, const uint8_t *c, uint8_t *scratch)
{
	unsigned char *in[MAX_ROWS], *dst[MAX_ROWS];
	unsigned k = p->k, e = p->e, nk = k - e;

	for (unsigned b = 0; b < e; b++) {
		const uint8_t *crow = c + (size_t)p->rep[b] * k;

		/* f->sub is free once inverted; e (k - e) <= e (255 - 2e) <= 8128. */
		in[b] = f->sub + (size_t)b * nk;
		for (unsigned col = 0; col < nk; col++)
			in[b][col] = crow[p->known[col]];
	}
	for (unsigned a = 0; a < e; a++) {
		dst[a] = f->mat + (size_t)a * k;
		memcpy(dst[a] + nk, f->inv + (size_t)a * e, e);
	}
	if (nk) {
		ec_init_tables((int)e, (int)e, f->inv, scratch);
		ec_encode_data((int)nk, (int)e, (int)e, scratch, in, dst);
	}
}

static int dec_tables(struct fec *f, const struct pattern *p, uint8_t **tbl)
{
	struct cache_key key = {{p->k}};
	uint64_t hash;
	const uint8_t *c;
	unsigned k = p->k, e = p->e;

	/* E holds sources and R repairs, so one 255-bit map plus k is exact. */
	for (unsigned i = 0; i < e; i++) {
		key.w[1 + p->lost[i] / 64] |= 1ull << (p->lost[i] % 64);
		key.w[1 + p->rep[i] / 64] |= 1ull << (p->rep[i] % 64);
	}
	hash = key_hash(&key);
	*tbl = cache_find(f, f->dec, DEC_SLOTS, &key, hash);
	if (*tbl)
		return 0;
	c = cauchy(f, k);
	if (!c)
		return -ENOMEM;
	for (unsigned a = 0; a < e; a++)
		for (unsigned b = 0; b < e; b++)
			f->sub[a * e + b] = c[(size_t)p->rep[a] * k + p->lost[b]];
	/* Cannot fail: every square sub-matrix of a Cauchy matrix is regular. */
	if (gf_invert_matrix(f->sub, f->inv, (int)e) != 0)
		return -EIO;
	*tbl = malloc((size_t)TBL_BYTES * k * e);
	if (!*tbl)
		return -ENOMEM;
	dec_matrix(f, p, c, *tbl); /* 32 e^2 <= 32 k e: tbl is scratch until filled */
	ec_init_tables((int)k, (int)e, f->mat, *tbl);
	cache_put(f, f->dec, DEC_SLOTS, &key, hash, *tbl);
	return 0;
}

/* Fills p from the received map; 0, -EINVAL (lost source without an output
 * buffer) or -EAGAIN (fewer than k symbols). */
static int find_pattern(struct pattern *p, unsigned k, const uint8_t *const *sym,
                        uint8_t *const *out)
{
	unsigned nk = 0, nl = 0, nr = 0;

	p->k = k;
	for (unsigned i = 0; i < k; i++) {
		if (sym[i]) {
			p->known[nk++] = (uint8_t)i;
			continue;
		}
		if (!out || !out[i])
			return -EINVAL;
		if (nl < MAX_ROWS)
			p->lost[nl] = (uint8_t)i;
		nl++;
	}
	/* More than 127 lost sources means k > 127: too few repair indices. */
	if (nl > MAX_ROWS)
		return -EAGAIN;
	p->e = nl;
	for (unsigned r = k; r < FEC_MAX_SYMBOLS && nr < p->e; r++)
		if (sym[r])
			p->rep[nr++] = (uint8_t)r;
	return nr < p->e ? -EAGAIN : 0;
}

int fec_decode(struct fec *f, unsigned k, size_t len, const uint8_t *const sym[FEC_MAX_SYMBOLS],
               uint8_t *const out[FEC_MAX_SYMBOLS])
{
	unsigned char *in[FEC_MAX_K], *dst[MAX_ROWS];
	struct pattern p;
	uint8_t *tbl;
	int rc;

	if (!f || !valid_k(k) || !len || len > (size_t)INT_MAX || !sym)
		return -EINVAL;
	rc = find_pattern(&p, k, sym, out);
	if (rc < 0 || p.e == 0)
		return rc;
	for (unsigned i = 0; i < k - p.e; i++)
		in[i] = unconst(sym[p.known[i]]);
	for (unsigned i = 0; i < p.e; i++) {
		in[k - p.e + i] = unconst(sym[p.rep[i]]);
		dst[i] = out[p.lost[i]];
	}
	rc = dec_tables(f, &p, &tbl);
	if (rc < 0)
		return rc;
	ec_encode_data((int)len, (int)k, (int)p.e, tbl, in, dst);
	return 0;
}

/* Pass p starts m indices after pass p - 1, modulo the 255 - k repair
 * indices. Callers sending nrepair symbols starting at s label the i-th one
 * k + ((s - k + i) mod (255 - k)), i.e. wrap indices above 254 back to k;
 * fec_encode() numbers its outputs the same way. An invalid k yields 255,
 * which fec_encode() rejects. */
unsigned fec_repair_start(unsigned k, unsigned m, unsigned pass)
{
	if (!valid_k(k))
		return FEC_MAX_SYMBOLS;
	return k + (unsigned)((uint64_t)pass * m % (FEC_MAX_SYMBOLS - k));
}
