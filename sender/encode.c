/* SPDX-License-Identifier: MIT */
/* One block in, its sealed frames out: compress → pad → FEC → frame → seal. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "common/crypto.h"
#include "common/fec.h"
#include "common/util.h"
#include "encode.h"
#include "proto/bytes.h"

#define DEFAULT_KMAX 128

unsigned enc_repair_count(unsigned k, double fec_pct)
{
	/* Rounded down so the total stays within the budget, but at least
	 * one repair symbol whenever any redundancy was asked for. */
	double m = floor((double)k * fec_pct / 100.0 + 1e-9);

	if (fec_pct <= 0)
		return 0;
	if (m < 1)
		m = 1;
	if (m > FEC_MAX_SYMBOLS - k)
		return FEC_MAX_SYMBOLS - k;
	return (unsigned)m;
}

unsigned enc_pick_k(double fec_pct)
{
	for (unsigned k = DEFAULT_KMAX; k >= 1; k--)
		if (k + ceil((double)k * fec_pct / 100.0 - 1e-9) <= FEC_MAX_SYMBOLS)
			return k;
	return 0;
}

void enc_split(double total_pct, unsigned group, unsigned *parity, double *inner_pct)
{
	double f = total_pct / 100.0;
	unsigned p;

	if (f <= 0) {
		*parity = 0;
		*inner_pct = 0;
		return;
	}
	/* A third of the budget to the outer code, the rest inside blocks. */
	p = (unsigned)ceil(group * f / 3.0 - 1e-9);
	if (p > FEC_MAX_SYMBOLS - group)
		p = FEC_MAX_SYMBOLS - group;
	*parity = p;
	*inner_pct = 100.0 * ((1.0 + f) / (1.0 + (double)p / group) - 1.0);
	if (*inner_pct < 0)
		*inner_pct = 0;
}

unsigned enc_max_frames(const struct encoder *e)
{
	/* The manifest uses up to 100% repair: k + min(k, 255 - k). */
	unsigned m = enc_repair_count(e->kmax, e->fec_pct);
	unsigned mm = e->kmax < FEC_MAX_SYMBOLS - e->kmax ? e->kmax : FEC_MAX_SYMBOLS - e->kmax;

	return e->kmax + (m > mm ? m : mm);
}

int enc_init(struct encoder *e, uint16_t symbol_size, uint8_t kmax, double total_pct, uint8_t group,
             int compress)
{
	unsigned parity;

	memset(e, 0, sizeof(*e));
	if (symbol_size < AEAD_SPLIT) /* frames are sealed in two parts */
		return -EINVAL;
	e->S = symbol_size;
	e->kmax = kmax;
	e->group = group;
	enc_split(total_pct, group, &parity, &e->fec_pct);
	e->parity = (uint8_t)parity;
	e->compress = compress;
	e->fec = fec_new();
	e->plain = malloc((size_t)kmax * symbol_size);
	e->repair = malloc((size_t)FEC_MAX_SYMBOLS * symbol_size);
	if (compress)
		e->zstd = ZSTD_createCCtx();
	if (!e->fec || !e->plain || !e->repair || (compress && !e->zstd)) {
		enc_free(e);
		return -ENOMEM;
	}
	return 0;
}

void enc_free(struct encoder *e)
{
	fec_free(e->fec);
	ZSTD_freeCCtx(e->zstd);
	free(e->plain);
	free(e->repair);
	e->fec = NULL;
	e->zstd = NULL;
	e->plain = e->repair = NULL;
}

/* Stored form of a block in e->plain: zstd level 1 when that shrinks it,
 * raw otherwise (DESIGN.md: stored raw when it does not shrink). Trying is
 * not free (4% of the sender on random data), so a run of incompressible
 * blocks backs off (struct encoder). */
static size_t store_block(struct encoder *e, const uint8_t *raw, size_t len, int allow_compress,
                          uint8_t *row, uint8_t *flags)
{
	size_t cap = (size_t)e->kmax * e->S;

	*flags = 0;
	if (allow_compress && e->zstd && e->zstd_skip > 0) {
		e->zstd_skip--;
	} else if (allow_compress && e->zstd) {
		size_t n = ZSTD_compressCCtx(e->zstd, row, cap, raw, len, 1);
		if (!ZSTD_isError(n) && n < len) {
			*flags = PROTO_SYMFLAG_ZSTD;
			e->blocks_compressed++;
			e->zstd_misses = 0;
			return n;
		}
		if (e->zstd_misses < 4)
			e->zstd_misses++;
		e->zstd_skip = (1u << e->zstd_misses) - 1;
	}
	if (row != raw)
		memcpy(row, raw, len);
	return len;
}

/* Header, symbol header and the first AEAD_SPLIT_DATA bytes of data; the caller
 * adds the rest, data + AEAD_SPLIT_DATA, by copy or by sealing from it. */
static void put_frame_head(struct encoder *e, uint8_t *f, enum frame_type type, uint32_t block,
                           unsigned sym, const struct symhdr *sh, const uint8_t *data)
{
	struct frame_header h = {.version = PROTO_VERSION,
	                         .type = (uint8_t)type,
	                         .session_id = e->session_id,
	                         .block = block,
	                         .symbol = (uint16_t)sym};

	proto_encode_header(f, &h);
	proto_encode_symhdr(f + PROTO_HEADER_LEN, sh);
	memcpy(f + PROTO_HEADER_LEN + PROTO_SYMHDR_LEN, data, AEAD_SPLIT_DATA);
}

/* Number the frame and seal it: in place, or with the payload after its
 * first AEAD_SPLIT bytes read from rest. */
static int seal_frame(struct encoder *e, uint8_t *f, size_t len, const uint8_t *rest)
{
	put_le64(f + 16, ++e->counter);
	return rest ? aead_seal_frame_from(e->aead, f, len, AEAD_SPLIT, rest)
	            : aead_seal_frame(e->aead, f, len);
}

int enc_code(struct encoder *e, enum frame_type type, uint32_t block, const uint8_t *raw,
             size_t len, unsigned pass, int allow_compress, uint8_t *row, uint8_t *rep,
             struct coded *cb)
{
	const uint8_t *src[FEC_MAX_SYMBOLS];
	uint8_t *out[FEC_MAX_SYMBOLS];
	unsigned k, m;
	int rc;

	if (len == 0 || len > (size_t)e->kmax * e->S || pass == 0)
		return -EINVAL;
	cb->type = type;
	cb->block = block;
	cb->sh.stored_len = (uint32_t)store_block(e, raw, len, allow_compress, row, &cb->sh.flags);
	k = (cb->sh.stored_len + e->S - 1) / e->S;
	cb->sh.k = (uint8_t)k;
	e->last_k = (uint8_t)k;
	/* Zero padding up to kmax symbols: the outer code sees every row as
	 * kmax symbols long, the receiver knows positions >= k are zero. */
	memset(row + cb->sh.stored_len, 0, (size_t)e->kmax * e->S - cb->sh.stored_len);
	e->raw_bytes += len;
	e->stored_bytes += cb->sh.stored_len;

	/* The manifest is small and everything hangs on it: 100% repair. */
	m = type == FRAME_MANIFEST ? k : enc_repair_count(k, e->fec_pct);
	if (type != FRAME_MANIFEST && m < e->min_repair)
		m = e->min_repair;
	if (m > FEC_MAX_SYMBOLS - k)
		m = FEC_MAX_SYMBOLS - k;
	cb->k = k;
	cb->m = m;
	cb->first = m ? fec_repair_start(k, m, pass - 1) : k;
	cb->src = row;
	cb->rep = rep;
	for (unsigned i = 0; i < k; i++)
		src[i] = row + (size_t)i * e->S;
	for (unsigned j = 0; j < m; j++)
		out[j] = rep + (size_t)j * e->S;
	if (m) {
		rc = fec_encode(e->fec, k, cb->first, m, e->S, src, out);
		if (rc < 0)
			return rc;
	}
	return (int)(k + m);
}

int enc_frame(struct encoder *e, const struct coded *cb, unsigned i, int seal, uint8_t *out)
{
	/* Repair indices wrap inside k..254, as fec_encode does. */
	unsigned sym =
	    i < cb->k ? i : cb->k + (cb->first - cb->k + (i - cb->k)) % (FEC_MAX_SYMBOLS - cb->k);
	const uint8_t *data =
	    i < cb->k ? cb->src + (size_t)i * e->S : cb->rep + (size_t)(i - cb->k) * e->S;

	put_frame_head(e, out, cb->type, cb->block, sym, &cb->sh, data);
	if (!seal) {
		memcpy(out + PROTO_HEADER_LEN + AEAD_SPLIT, data + AEAD_SPLIT_DATA,
		       e->S - AEAD_SPLIT_DATA);
		return 0;
	}
	return seal_frame(e, out, proto_frame_len(cb->type, e->S), data + AEAD_SPLIT_DATA);
}

int enc_block(struct encoder *e, enum frame_type type, uint32_t block, const uint8_t *raw,
              size_t len, unsigned pass, int allow_compress, int seal, uint8_t *row,
              uint8_t **frames)
{
	struct coded cb;
	int n = enc_code(e, type, block, raw, len, pass, allow_compress, row ? row : e->plain,
	                 e->repair, &cb);

	for (int i = 0; i < n; i++) {
		int rc = enc_frame(e, &cb, (unsigned)i, seal, frames[i]);
		if (rc < 0)
			return rc;
	}
	return n;
}

int enc_outer(struct encoder *e, uint8_t *const *rows, unsigned nrows, unsigned k,
              uint8_t *const *out)
{
	if (e->parity == 0)
		return 0;
	if (k == 0 || k > e->kmax)
		return -EINVAL;
	/* RS is symbol-wise linear, so coding whole rows codes every column
	 * (symbol position) of the group at once. */
	return fec_encode(e->fec, nrows, nrows, e->parity, (size_t)k * e->S,
	                  (const uint8_t *const *)rows, out);
}

int enc_seal_copy(struct encoder *e, const uint8_t *plain, uint8_t *out, size_t len)
{
	memcpy(out, plain, len);
	return seal_frame(e, out, len, NULL);
}

int enc_status(struct encoder *e, enum frame_type type, uint32_t pass, uint32_t passes,
               uint8_t *out)
{
	struct frame_header h = {
	    .version = PROTO_VERSION, .type = (uint8_t)type, .session_id = e->session_id};
	struct status st = {.frames_sent = e->counter, /* frames before this one */
	                    .pass = pass,
	                    .passes = passes,
	                    .clock_ns = wall_ns()};

	proto_encode_header(out, &h);
	proto_encode_status(out + PROTO_HEADER_LEN, &st);
	return seal_frame(e, out, PROTO_STATUS_FRAME_LEN, NULL);
}
