/* SPDX-License-Identifier: MIT */
/* Blocks in flight, decoded as a product code (rows: inner RS per block,
 * columns: outer RS across a group's rows). */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/fec.h"
#include "groups.h"

struct row {
	uint8_t k; /* 0 until a symbol of this row told us */
	uint8_t flags;
	uint8_t done;
	uint8_t nrep;
	uint8_t nknown; /* known source positions below k (0 while k is) */
	uint32_t stored_len;
	uint8_t known[(PROTO_MAX_K + 7) / 8];      /* source positions we hold */
	uint8_t seen[(PROTO_MAX_SYMBOLS + 7) / 8]; /* symbol indices received */
	uint8_t rep_idx[PROTO_MAX_K];
	uint8_t rep_cap;
	uint8_t *rep; /* nrep repair symbols */
	uint8_t *src; /* kmax source positions, allocated on first use */
};

struct group {
	struct group *lru_prev, *lru_next;
	struct groupset *owner;
	uint32_t id;
	uint8_t ndata, nrows;
	uint8_t dirty; /* new symbols since the last column attempt */
	uint8_t data_done;
	size_t bytes;
	struct row rows[];
};

static void product_decode(struct group *g);

static int bit(const uint8_t *map, unsigned i)
{
	return map[i / 8] >> (i % 8) & 1;
}

static void set_bit(uint8_t *map, unsigned i)
{
	map[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* ---- pool and LRU ------------------------------------------------------ */

int group_pool_init(struct group_pool *p, size_t budget)
{
	size_t sym = (size_t)PROTO_MAX_SYMBOL;

	memset(p, 0, sizeof(*p));
	p->budget = budget;
	p->fec = fec_new();
	p->scratch = malloc(PROTO_MAX_SYMBOLS * sym);
	p->zero = calloc(1, sym);
	if (!p->fec || !p->scratch || !p->zero) {
		group_pool_free(p);
		return -ENOMEM;
	}
	return 0;
}

void group_pool_free(struct group_pool *p)
{
	fec_free(p->fec);
	free(p->scratch);
	free(p->zero);
	p->fec = NULL;
	p->scratch = p->zero = NULL;
}

static void lru_unlink(struct group_pool *p, struct group *g)
{
	if (g->lru_prev)
		g->lru_prev->lru_next = g->lru_next;
	else
		p->lru_head = g->lru_next;
	if (g->lru_next)
		g->lru_next->lru_prev = g->lru_prev;
	else
		p->lru_tail = g->lru_prev;
	g->lru_prev = g->lru_next = NULL;
}

static void lru_push(struct group_pool *p, struct group *g)
{
	g->lru_next = p->lru_head;
	g->lru_prev = NULL;
	if (p->lru_head)
		p->lru_head->lru_prev = g;
	p->lru_head = g;
	if (!p->lru_tail)
		p->lru_tail = g;
}

/* A row's source buffer, shared with the writer once the row is delivered
 * (groupset_hold): freed by whichever lets go last. */
struct srcbuf {
	_Atomic unsigned refs;
	unsigned pad[3]; /* data stays 16-byte aligned */
	uint8_t data[];
};

static struct srcbuf *srcbuf_of(const uint8_t *data)
{
	return (struct srcbuf *)(uintptr_t)(data - offsetof(struct srcbuf, data));
}

void groupset_hold(const uint8_t *stored)
{
	atomic_fetch_add_explicit(&srcbuf_of(stored)->refs, 1, memory_order_relaxed);
}

void groupset_drop(const uint8_t *stored)
{
	struct srcbuf *b;

	if (!stored)
		return;
	b = srcbuf_of(stored);
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}

static void destroy(struct group *g)
{
	struct groupset *gs = g->owner;

	lru_unlink(gs->pool, g);
	gs->slot[g->id % gs->window] = NULL;
	gs->pool->bytes -= g->bytes;
	for (unsigned r = 0; r < g->nrows; r++) {
		groupset_drop(g->rows[r].src);
		free(g->rows[r].rep);
	}
	free(g);
}

static int charge(struct group *g, size_t n)
{
	struct group_pool *p = g->owner->pool;

	/* Make room by evicting other groups; never the one being filled. */
	while (p->bytes + n > p->budget && p->lru_tail && p->lru_tail != g) {
		p->evicted++;
		destroy(p->lru_tail);
	}
	if (p->bytes + n > p->budget)
		return -ENOMEM;
	p->bytes += n;
	g->bytes += n;
	return 0;
}

/* ---- geometry ----------------------------------------------------------- */

uint32_t groupset_group_of(const struct groupset *gs, uint32_t block)
{
	if (block < gs->nblocks)
		return block / gs->G;
	return (block - gs->nblocks) / gs->P;
}

static unsigned row_of(const struct groupset *gs, uint32_t block, unsigned ndata)
{
	if (block < gs->nblocks)
		return block % gs->G;
	return ndata + (block - gs->nblocks) % gs->P;
}

static uint32_t block_of(const struct groupset *gs, const struct group *g, unsigned r)
{
	if (r < g->ndata)
		return g->id * gs->G + r;
	return gs->nblocks + g->id * gs->P + (r - g->ndata);
}

int groupset_init(struct groupset *gs, struct group_pool *pool, uint16_t S, uint8_t kmax, uint8_t G,
                  uint8_t P, uint32_t nblocks, unsigned window, row_done_fn done, void *ctx)
{
	memset(gs, 0, sizeof(*gs));
	gs->pool = pool;
	gs->S = S;
	gs->kmax = kmax;
	gs->G = G;
	gs->P = P;
	gs->nblocks = nblocks;
	gs->window = window;
	gs->done = done;
	gs->ctx = ctx;
	gs->slot = calloc(window, sizeof(*gs->slot));
	return gs->slot ? 0 : -ENOMEM;
}

void groupset_free(struct groupset *gs)
{
	if (!gs->slot)
		return;
	for (unsigned i = 0; i < gs->window; i++)
		if (gs->slot[i])
			destroy(gs->slot[i]);
	free(gs->slot);
	gs->slot = NULL;
}

static struct group *get_group(struct groupset *gs, uint32_t id)
{
	struct group *g = gs->slot[id % gs->window];
	uint64_t first = (uint64_t)id * gs->G;
	unsigned ndata, nrows;

	if (g && g->id == id)
		return g;
	if (g) {              /* a group a whole window behind the stream is stale */
		if (g->dirty) /* last chance: decode what it can before it goes */
			product_decode(g);
		if (gs->stopped)
			return NULL;
		if (gs->slot[id % gs->window] == g) {
			if (g->data_done < g->ndata)
				gs->pool->evicted++;
			destroy(g);
		}
	}
	ndata = first + gs->G <= gs->nblocks ? gs->G : (unsigned)(gs->nblocks - first);
	nrows = ndata + gs->P;
	g = calloc(1, sizeof(*g) + nrows * sizeof(struct row));
	if (!g)
		return NULL;
	g->owner = gs;
	g->id = id;
	g->ndata = (uint8_t)ndata;
	g->nrows = (uint8_t)nrows;
	lru_push(gs->pool, g);
	gs->slot[id % gs->window] = g;
	if (charge(g, sizeof(*g) + nrows * sizeof(struct row)) < 0) {
		destroy(g);
		return NULL;
	}
	if (id > gs->newest)
		gs->newest = id;
	return g;
}

static uint8_t *row_src(struct group *g, struct row *w)
{
	size_t n = (size_t)g->owner->kmax * g->owner->S;

	if (!w->src && charge(g, n) == 0) {
		struct srcbuf *b = malloc(sizeof(*b) + n);
		if (!b)
			return NULL;
		atomic_init(&b->refs, 1);
		w->src = b->data;
	}
	return w->src;
}

/* ---- rows --------------------------------------------------------------- */

/* Source positions below k that we hold. */
static unsigned row_have(const struct row *w)
{
	return w->nknown;
}

/* Counted once when k becomes known: the column decode may have filled
 * positions of a row before any of its own symbols told us its k. */
static void row_count(struct row *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < w->k; i++)
		n += (unsigned)bit(w->known, i);
	w->nknown = (uint8_t)n;
}

static int deliver(struct group *g, unsigned r, unsigned repaired)
{
	struct groupset *gs = g->owner;
	struct row *w = &g->rows[r];
	struct symhdr sh = {.k = w->k, .flags = w->flags, .stored_len = w->stored_len};

	w->done = 1;
	memset(w->known, 0xff, sizeof(w->known));
	w->nknown = w->k;
	if (r >= g->ndata)
		return 0;
	g->data_done++;
	if (gs->done(gs->ctx, block_of(gs, g, r), w->src, &sh, repaired) != 0) {
		gs->stopped = 1;
		return -1;
	}
	return 0;
}

/* Inner decode of one row that holds at least k symbols. */
static int decode_row(struct group *g, unsigned r)
{
	struct groupset *gs = g->owner;
	struct row *w = &g->rows[r];
	const uint8_t *sym[FEC_MAX_SYMBOLS] = {0};
	uint8_t *out[FEC_MAX_SYMBOLS] = {0};
	unsigned have = 0, lost = 0;

	for (unsigned i = 0; i < w->k; i++) {
		if (bit(w->known, i)) {
			sym[i] = w->src + (size_t)i * gs->S;
			have++;
		} else {
			out[i] = gs->pool->scratch + (size_t)(lost++) * gs->S;
		}
	}
	for (unsigned j = 0; j < w->nrep && have < w->k; j++, have++)
		sym[w->rep_idx[j]] = w->rep + (size_t)j * gs->S;
	if (lost && fec_decode(gs->pool->fec, w->k, gs->S, sym, out) < 0)
		return 0; /* cannot happen with k symbols; leave the row pending */
	for (unsigned i = 0; i < w->k; i++)
		if (out[i])
			memcpy(w->src + (size_t)i * gs->S, out[i], gs->S);
	/* Padding positions are zero by definition (the outer code sees them). */
	memset(w->src + (size_t)w->k * gs->S, 0, (size_t)(gs->kmax - w->k) * gs->S);
	free(w->rep);
	w->rep = NULL;
	w->nrep = w->rep_cap = 0;
	return deliver(g, r, lost) < 0 ? -1 : 1;
}

static int row_ready(const struct row *w)
{
	return !w->done && w->k && w->src && row_have(w) + w->nrep >= w->k;
}

static int keep_repair(struct group *g, struct row *w, unsigned sym, const uint8_t *data)
{
	size_t S = g->owner->S;

	if (w->nrep == w->rep_cap) {
		unsigned cap = w->rep_cap ? w->rep_cap * 2u : 4u;
		uint8_t *p;
		if (cap > w->k)
			cap = w->k;
		if (cap <= w->nrep || charge(g, (cap - w->rep_cap) * S) < 0)
			return -ENOMEM;
		p = realloc(w->rep, cap * S);
		if (!p)
			return -ENOMEM;
		w->rep = p;
		w->rep_cap = (uint8_t)cap;
	}
	memcpy(w->rep + w->nrep * S, data, S);
	w->rep_idx[w->nrep++] = (uint8_t)sym;
	return 0;
}

uint8_t *groupset_slot(const struct groupset *gs, uint32_t block, unsigned sym,
                       const struct symhdr *sh)
{
	uint32_t id = groupset_group_of(gs, block);
	const struct group *g = gs->slot[id % gs->window];
	const struct row *w;

	if (!g || g->id != id || gs->stopped)
		return NULL;
	w = &g->rows[row_of(gs, block, g->ndata)];
	if (w->done || !w->src || w->k != sh->k || w->flags != sh->flags ||
	    w->stored_len != sh->stored_len || sym >= w->k || bit(w->seen, sym) ||
	    bit(w->known, sym))
		return NULL;
	return w->src + (size_t)sym * gs->S;
}

enum add_result groupset_add(struct groupset *gs, uint32_t block, unsigned sym,
                             const struct symhdr *sh, const uint8_t *data)
{
	struct group *g = get_group(gs, groupset_group_of(gs, block));
	struct row *w;

	if (!g)
		return ADD_NOMEM;
	w = &g->rows[row_of(gs, block, g->ndata)];
	lru_unlink(gs->pool, g);
	lru_push(gs->pool, g);
	if (w->done)
		return ADD_STORED;
	if (w->k == 0) {
		w->k = sh->k;
		w->flags = sh->flags;
		w->stored_len = sh->stored_len;
		row_count(w);
	} else if (w->k != sh->k || w->flags != sh->flags || w->stored_len != sh->stored_len) {
		return ADD_MISMATCH;
	}
	if (bit(w->seen, sym))
		return ADD_DUPLICATE;
	if (!row_src(g, w))
		return ADD_NOMEM;
	set_bit(w->seen, sym);
	if (sym < w->k) {
		if (!bit(w->known, sym)) {
			uint8_t *dst = w->src + (size_t)sym * gs->S;
			if (data != dst) /* not opened in place by groupset_slot */
				memcpy(dst, data, gs->S);
			set_bit(w->known, sym);
			w->nknown++;
		}
	} else if (row_have(w) + w->nrep < w->k && keep_repair(g, w, sym, data) < 0) {
		return ADD_NOMEM;
	}
	g->dirty = 1;
	/* A row whose source symbols are all in is delivered at once, with no
	 * decoding. One that holds k symbols only thanks to repair symbols
	 * waits for the sweep: with the sender's skewed interleave, repair
	 * symbols of most rows arrive before their last source symbols, and
	 * decoding then would rebuild what is still on its way. */
	if (!w->done && w->src && row_have(w) == w->k && decode_row(g, (unsigned)(w - g->rows)) < 0)
		return ADD_STOPPED;
	if (g->data_done == g->ndata)
		destroy(g);
	return ADD_STORED;
}

/* ---- columns ------------------------------------------------------------ */

/* Outer decode of symbol position i; returns 1 if it filled anything. */
static int decode_column(struct group *g, unsigned i)
{
	struct groupset *gs = g->owner;
	const uint8_t *sym[FEC_MAX_SYMBOLS] = {0};
	uint8_t *out[FEC_MAX_SYMBOLS] = {0};
	unsigned known = 0, lost = 0;

	for (unsigned r = 0; r < g->nrows; r++) {
		struct row *w = &g->rows[r];
		if (w->k && i >= w->k)
			sym[r] = gs->pool->zero;
		else if (w->src && bit(w->known, i))
			sym[r] = w->src + (size_t)i * gs->S;
		if (sym[r])
			known++;
		else if (r < g->ndata)
			out[r] = gs->pool->scratch + (size_t)(lost++) * gs->S;
	}
	if (lost == 0 || known < g->ndata)
		return 0;
	if (fec_decode(gs->pool->fec, g->ndata, gs->S, sym, out) < 0)
		return 0;
	for (unsigned r = 0; r < g->ndata; r++) {
		struct row *w = &g->rows[r];
		if (!out[r] || !row_src(g, w))
			continue;
		memcpy(w->src + (size_t)i * gs->S, out[r], gs->S);
		set_bit(w->known, i);
		if (i < w->k)
			w->nknown++;
	}
	return 1;
}

/* Alternate row and column decodes until neither makes progress. */
static void product_decode(struct group *g)
{
	struct groupset *gs = g->owner;
	int progress = 1;

	g->dirty = 0;
	while (progress && g->data_done < g->ndata) {
		progress = 0;
		for (unsigned r = 0; r < g->nrows; r++) {
			if (row_ready(&g->rows[r])) {
				int rc = decode_row(g, r);
				if (rc < 0)
					return;
				progress |= rc;
			}
		}
		if (gs->P == 0)
			break;
		for (unsigned i = 0; i < gs->kmax; i++)
			progress |= decode_column(g, i);
	}
}

void groupset_sweep(struct groupset *gs, int all)
{
	for (unsigned s = 0; s < gs->window && !gs->stopped; s++) {
		struct group *g = gs->slot[s];
		if (!g || !g->dirty)
			continue;
		/* Wait until the stream has moved two groups on: until then
		 * more symbols of this group are still likely to arrive. */
		if (!all && g->id + 2 > gs->newest)
			continue;
		product_decode(g);
		if (!gs->stopped && g->data_done == g->ndata)
			destroy(g);
	}
}

uint64_t groupset_missing(const struct groupset *gs, const uint8_t *known, uint32_t *rows_in_flight)
{
	uint64_t missing = 0;
	uint32_t n = 0;

	for (unsigned s = 0; s < gs->window; s++) {
		const struct group *g = gs->slot[s];
		if (!g)
			continue;
		for (unsigned r = 0; r < g->ndata; r++) {
			const struct row *w = &g->rows[r];
			unsigned k = w->k ? w->k : gs->kmax;
			unsigned have = row_have(w) + w->nrep;
			if (w->done || (known && bit(known, g->id * gs->G + r)))
				continue;
			missing += have < k ? k - have : 0;
			n++;
		}
	}
	*rows_in_flight = n;
	return missing;
}
