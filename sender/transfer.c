/* SPDX-License-Identifier: MIT */
/* One object over the link.
 *
 * Order on the wire, for each object:
 *
 *   ANNOUNCE x3 → MANIFEST (all symbols) → for each pass:
 *       groups of GROUP blocks plus P outer parity rows (a product code:
 *       RS inside each block, RS across the group's rows), their symbols
 *       interleaved round-robin with a skew (frame t of a round goes to row
 *       t, symbol (round + t) mod n), so a burst of B lost frames costs each
 *       row about B/(GROUP+P) symbols and each column as few),
 *       with one manifest symbol every MF_EVERY data frames (carousel),
 *       an ANNOUNCE every ANNOUNCE_NS and a HEARTBEAT every HEARTBEAT_NS
 *   → ANNOUNCE → MANIFEST (all symbols) → END x3, spread over up to END_SPREAD_NS
 *
 * A receiver that joins late still gets the announcement and manifest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/fec.h"
#include "common/log.h"
#include "common/uring_read.h"
#include "common/util.h"
#include "encode.h"
#include "plan.h"
#include "transfer.h"
#include "tree.h"
#include "udp.h"

#define GROUP        32
#define MF_EVERY     128
#define ANNOUNCE_NS  500000000ull
#define HEARTBEAT_NS 250000000ull
#define PROGRESS_NS  200000000ull

/* The last END leaves this long after the first (which leaves once every
 * other frame has), the middle one a fifth of the way: 250 ms covers
 * draining a full default ring and socket buffer (64 + 64 MiB) at about
 * 4 Gb/s. A session shorter than that spreads them over its own length
 * instead: a receiver cannot be further behind than the whole session, and
 * a spool of small files should not wait 250 ms each. */
#define END_SPREAD_NS 250000000ull

struct tctx {
	const struct transfer_args *a;
	struct udp_tx *tx;
	struct encoder enc;
	struct plan plan;
	struct source src;
	size_t flen;
	unsigned maxf;
	uint8_t announce[PROTO_ANNOUNCE_LEN];
	/* manifest carousel: plaintext frames, sealed as copies when sent */
	uint8_t *mf_plain;
	unsigned mf_n, mf_next;
	/* data: one group of blocks, coded; their frames are built and sealed
	 * straight into the transmit queue in the order they go out */
	struct coded cb[GROUP + FEC_MAX_SYMBOLS];
	unsigned nframes[GROUP + FEC_MAX_SYMBOLS];
	unsigned nrows;      /* GROUP + P */
	uint8_t rowk[GROUP]; /* k of each data row of the group */
	uint8_t *rowbuf;     /* nrows padded rows of kmax * S */
	uint8_t *repbuf;     /* nrows x maxrep repair symbols */
	unsigned maxrep;
	unsigned repstride; /* repair symbols per row in repbuf for this group */
	uint8_t *scratch;   /* one frame */
	uint64_t t_plan, t_start, t_ann, t_hb, t_prog, t_end;
	uint64_t bytes_done; /* raw bytes of the current pass */
	int hash_shown;      /* the progress bar showed the hashing pass */
	int read_err;        /* -errno of a failed read of the source while sending */
};

static int send_one(struct tctx *c, uint8_t *frame, size_t len)
{
	return udp_tx_send(c->tx, &frame, 1, len);
}

static int send_status(struct tctx *c, enum frame_type type, unsigned pass)
{
	uint8_t f[PROTO_STATUS_FRAME_LEN];
	int rc = enc_status(&c->enc, type, pass, c->a->passes, f);

	return rc < 0 ? rc : send_one(c, f, sizeof(f));
}

static int build_announce(struct tctx *c)
{
	uint8_t *key = sodium_malloc(SESSION_KEY_LEN);
	struct announce an = {.hdr = {.version = PROTO_VERSION, .type = FRAME_ANNOUNCE},
	                      .aead = (uint8_t)c->a->aead,
	                      .k = c->plan.k,
	                      .symbol_size = c->plan.S,
	                      .chunk_size = c->plan.chunk,
	                      .object_size = c->plan.size,
	                      .block_count = c->plan.blocks,
	                      .manifest_len = (uint32_t)c->plan.manifest_len,
	                      .created_ns = wall_ns(),
	                      .group = c->enc.group,
	                      .parity = c->enc.parity};
	int rc = -ENOMEM;

	if (!key)
		return -ENOMEM;
	randombytes_buf(key, SESSION_KEY_LEN);
	randombytes_buf(&an.hdr.session_id, sizeof(an.hdr.session_id));
	c->enc.session_id = an.hdr.session_id;
	memcpy(an.sender_id, c->a->sender_id, PROTO_KEYID_LEN);
	memcpy(an.receiver_id, c->a->receiver_id, PROTO_KEYID_LEN);
	memcpy(an.object_id, c->plan.object_id, PROTO_HASH_LEN);
	memcpy(an.manifest_hash, c->plan.manifest_hash, PROTO_HASH_LEN);
	if (crypto_box_seal(an.sealed_key, key, SESSION_KEY_LEN, c->a->receiver_pk) != 0)
		goto out;
	c->enc.aead = aead_new(c->a->aead, key);
	if (!c->enc.aead) {
		rc = aead_supported(c->a->aead) ? -ENOMEM : -ENOTSUP;
		goto out;
	}
	proto_encode_announce(c->announce, &an);
	crypto_sign_detached(c->announce + PROTO_ANNOUNCE_SIGNED_LEN, NULL, c->announce,
	                     PROTO_ANNOUNCE_SIGNED_LEN, c->a->sign_sk);
	rc = 0;
out:
	sodium_free(key); /* wipes it; the AEAD context keeps its own copy */
	return rc;
}

static int build_carousel(struct tctx *c)
{
	uint32_t nb = (uint32_t)proto_block_count(c->plan.manifest_len, c->plan.chunk);
	uint8_t *fr[FEC_MAX_SYMBOLS];

	c->mf_plain = malloc((size_t)nb * c->maxf * c->flen);
	if (!c->mf_plain)
		return -ENOMEM;
	for (uint32_t b = 0; b < nb; b++) {
		uint64_t off = (uint64_t)b * c->plan.chunk;
		size_t len = c->plan.manifest_len - off < c->plan.chunk
		                 ? (size_t)(c->plan.manifest_len - off)
		                 : c->plan.chunk;
		for (unsigned i = 0; i < c->maxf; i++)
			fr[i] = c->mf_plain + ((size_t)c->mf_n + i) * c->flen;
		int n = enc_block(&c->enc, FRAME_MANIFEST, b, c->plan.manifest + off, len, 1, 0, 0,
		                  NULL, fr);
		if (n < 0)
			return n;
		c->mf_n += (unsigned)n;
	}
	return 0;
}

/* Next manifest frame of the carousel, sealed into out. */
static int carousel_next(struct tctx *c, uint8_t *out)
{
	const uint8_t *p = c->mf_plain + (size_t)c->mf_next * c->flen;

	c->mf_next = (c->mf_next + 1) % c->mf_n;
	return enc_seal_copy(&c->enc, p, out, c->flen);
}

static int send_manifest_cycle(struct tctx *c)
{
	for (unsigned i = 0; i < c->mf_n; i++) {
		int rc = carousel_next(c, c->scratch);
		if (rc == 0)
			rc = send_one(c, c->scratch, c->flen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Whether the progress bar is drawn now (at most every PROGRESS_NS). */
static int progress_due(struct tctx *c, uint64_t now, int final)
{
	if (!c->a->progress || (!final && now - c->t_prog < PROGRESS_NS))
		return 0;
	c->t_prog = now;
	return 1;
}

/* The hashing pass before the first frame, a line of its own; shown only
 * when it lasts long enough to be drawn once. */
static void hash_progress(struct tctx *c, uint64_t done, int final)
{
	uint64_t now = now_ns();
	double el = (double)(now - c->t_plan) / 1e9;
	char a[32], b[32];

	if ((final && !c->hash_shown) || !progress_due(c, now, final))
		return;
	c->hash_shown = 1;
	fprintf(stderr, "\r%s hashing %5.1f%% %s / %s  %.0f MB/s   ", c->a->name,
	        c->src.size ? 100.0 * (double)done / (double)c->src.size : 100.0,
	        fmt_bytes(a, sizeof(a), (double)done), fmt_bytes(b, sizeof(b), (double)c->src.size),
	        el > 0 ? (double)done / el / 1e6 : 0);
	if (final)
		fputc('\n', stderr);
}

/* plan_args.on_read: while the source is hashed. */
static void planning(void *ctx, uint64_t done)
{
	struct tctx *c = ctx;

	if (c->a->plan_tick)
		c->a->plan_tick(c->a->tick_ctx);
	hash_progress(c, done, 0);
}

static void progress(struct tctx *c, unsigned pass, int final)
{
	uint64_t now = now_ns();
	double el, pct, rate;
	char a[32], b[32];

	if (!progress_due(c, now, final))
		return;
	el = (double)(now - c->t_start) / 1e9;
	pct = c->plan.size ? 100.0 * (double)c->bytes_done / (double)c->plan.size : 100.0;
	rate = el > 0 ? (double)c->tx->wire_bytes * 8 / el / 1e6 : 0;
	fprintf(stderr, "\r%s pass %u/%u %5.1f%% %s / %s  %.0f Mb/s   ", c->a->name, pass,
	        c->a->passes, pct, fmt_bytes(a, sizeof(a), (double)c->bytes_done),
	        fmt_bytes(b, sizeof(b), (double)c->plan.size), rate);
	if (final)
		fputc('\n', stderr);
}

/* Periodic frames between groups: announcement and heartbeat. */
static int periodic(struct tctx *c, unsigned pass)
{
	uint64_t now = now_ns();
	int rc = 0;

	if (now - c->t_ann >= ANNOUNCE_NS) {
		c->t_ann = now;
		rc = send_one(c, c->announce, sizeof(c->announce));
	}
	if (rc == 0 && now - c->t_hb >= HEARTBEAT_NS) {
		c->t_hb = now;
		rc = send_status(c, FRAME_HEARTBEAT, pass);
	}
	if (rc == 0 && c->a->tick)
		rc = c->a->tick(c->a->tick_ctx);
	progress(c, pass, 0);
	return rc;
}

/* The next free frame slot of the batch being built in the transmit
 * queue; a full batch is committed and a new one reserved. */
static int next_slot(struct tctx *c, uint8_t **batch, unsigned *room, unsigned *used,
                     uint8_t **slot)
{
	if (*used == *room) {
		udp_tx_commit(c->tx, *used);
		*used = 0;
		int rc = udp_tx_reserve(c->tx, c->flen, batch, room);
		if (rc < 0)
			return rc;
	}
	*slot = *batch + (size_t)(*used)++ * c->flen;
	return 0;
}

/* Round-robin over the group's blocks, symbol position by position, with a
 * manifest symbol slipped in every MF_EVERY frames. */
static int send_group(struct tctx *c, unsigned nb)
{
	unsigned maxn = 0, since = 0, room = 0, used = 0;
	uint8_t *batch = NULL, *slot;
	int rc = 0;

	for (unsigned b = 0; b < nb; b++)
		maxn = c->nframes[b] > maxn ? c->nframes[b] : maxn;
	for (unsigned i = 0; i < maxn && rc == 0; i++) {
		for (unsigned b = 0; b < nb && rc == 0; b++) {
			if (i >= c->nframes[b])
				continue;
			rc = next_slot(c, &batch, &room, &used, &slot);
			if (rc == 0)
				rc =
				    enc_frame(&c->enc, &c->cb[b], (i + b) % c->nframes[b], 1, slot);
			if (rc == 0 && ++since == MF_EVERY) {
				since = 0;
				rc = next_slot(c, &batch, &room, &used, &slot);
				if (rc == 0)
					rc = carousel_next(c, slot);
			}
		}
	}
	if (rc == 0)
		udp_tx_commit(c->tx, used);
	return rc;
}

static uint8_t *row(struct tctx *c, unsigned r)
{
	return c->rowbuf + (size_t)r * c->enc.kmax * c->plan.S;
}

static uint8_t *repair(struct tctx *c, unsigned r)
{
	return c->repbuf + (size_t)r * c->repstride * c->plan.S;
}

/* Outer parity rows of the group just read, coded as blocks of their own. */
static int encode_parity(struct tctx *c, uint32_t g, unsigned nb, unsigned pass)
{
	uint8_t *rows[GROUP], *par[FEC_MAX_SYMBOLS];
	unsigned k = 1;
	size_t rowlen;
	int rc;

	for (unsigned b = 0; b < nb; b++) {
		rows[b] = row(c, b);
		k = c->rowk[b] > k ? c->rowk[b] : k;
	}
	rowlen = (size_t)k * c->plan.S;
	for (unsigned j = 0; j < c->enc.parity; j++)
		par[j] = row(c, GROUP + j);
	uint64_t raw = c->enc.raw_bytes, stored = c->enc.stored_bytes;

	rc = enc_outer(&c->enc, rows, nb, k, par);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < c->enc.parity; j++) {
		uint32_t block = c->plan.blocks + (g / GROUP) * c->enc.parity + j;
		/* stored raw in place: the parity row is its own stored form */
		int n = enc_code(&c->enc, FRAME_DATA, block, par[j], rowlen, pass, 0, par[j],
		                 repair(c, nb + j), &c->cb[nb + j]);
		if (n < 0)
			return n;
		c->nframes[nb + j] = (unsigned)n;
	}
	c->enc.raw_bytes = raw; /* the statistics describe the object only */
	c->enc.stored_bytes = stored;
	return 0;
}

/* A group's frames are interleaved among its own rows only, so a loss
 * burst costs each row burst / rows frames: the short last group of an
 * object (often the only one of a small object) was lost to a burst a fifth
 * the length that a full group survives (docs/PERFORMANCE.md, run 10;
 * tests/integration/test_tailburst.sh). It gets the repair budget of a full
 * group instead, shared among its rows: the same room in repbuf, and at
 * most a full group's repair frames more on the wire. */
static void top_up_short_group(struct tctx *c, unsigned nb)
{
	unsigned rows = nb + c->enc.parity;

	c->repstride = c->maxrep;
	c->enc.min_repair = 0;
	if (nb < GROUP && (c->enc.fec_pct > 0 || c->enc.parity > 0)) { /* not with --fec 0 */
		c->repstride = c->nrows * c->maxrep / rows;
		c->enc.min_repair = c->repstride;
	}
}

static int send_pass(struct tctx *c, unsigned pass)
{
	struct ureader *r;
	const uint8_t *data;
	size_t len;
	uint64_t idx;
	int rc, got = 0;

	rc = source_reader(&c->src, c->plan.chunk, 8, &r);
	if (rc < 0)
		return rc;
	c->bytes_done = 0;
	for (uint32_t g = 0; g < c->plan.blocks; g += GROUP) {
		unsigned nb = c->plan.blocks - g < GROUP ? c->plan.blocks - g : GROUP;
		top_up_short_group(c, nb);
		for (unsigned b = 0; b < nb; b++) {
			got = ureader_next(r, &data, &len, &idx);
			if (got != 1) {
				rc = c->read_err = got < 0 ? got : -EIO;
				goto out;
			}
			int n = enc_code(&c->enc, FRAME_DATA, (uint32_t)idx, data, len, pass,
			                 c->a->compress, row(c, b), repair(c, b), &c->cb[b]);
			if (n < 0) {
				rc = n;
				goto out;
			}
			c->nframes[b] = (unsigned)n;
			c->rowk[b] = c->enc.last_k;
			c->bytes_done += len;
		}
		rc = encode_parity(c, g, nb, pass);
		if (rc == 0)
			rc = send_group(c, nb + c->enc.parity);
		if (rc == 0)
			rc = periodic(c, pass);
		if (rc < 0)
			goto out;
	}
out:
	ureader_close(r);
	return rc;
}

static int setup(struct tctx *c, const struct transfer_args *a)
{
	memset(c, 0, sizeof(*c));
	c->a = a;
	c->tx = a->tx;
	c->flen = proto_frame_len(FRAME_DATA, a->symbol_size);
	return enc_init(&c->enc, a->symbol_size, (uint8_t)enc_pick_k(a->fec_pct), a->fec_pct, GROUP,
	                a->compress);
}

static int alloc_buffers(struct tctx *c)
{
	c->maxf = enc_max_frames(&c->enc);
	c->nrows = GROUP + c->enc.parity;
	/* Data and parity rows have k <= kmax; the most repair any such k gets. */
	c->maxrep = 1;
	for (unsigned k = 1; k <= c->enc.kmax; k++) {
		unsigned m = enc_repair_count(k, c->enc.fec_pct);
		c->maxrep = m > c->maxrep ? m : c->maxrep;
	}
	c->scratch = malloc(c->flen);
	c->rowbuf = malloc((size_t)c->nrows * c->enc.kmax * c->plan.S);
	c->repstride = c->maxrep;
	c->repbuf = malloc((size_t)c->nrows * c->maxrep * c->plan.S);
	if (!c->scratch || !c->rowbuf || !c->repbuf)
		return -ENOMEM;
	return 0;
}

static void teardown(struct tctx *c)
{
	aead_free(c->enc.aead);
	enc_free(&c->enc);
	plan_free(&c->plan);
	free(c->mf_plain);
	free(c->scratch);
	free(c->rowbuf);
	free(c->repbuf);
}

static int run(struct tctx *c, char *err, size_t errlen)
{
	const struct transfer_args *a = c->a;
	struct plan_args pa = {.name = a->name,
	                       .symbol_size = a->symbol_size,
	                       .k = c->enc.kmax,
	                       .sequence = a->sequence,
	                       .expires = a->expires,
	                       .sign_sk = a->sign_sk,
	                       .sender_id = a->sender_id,
	                       .on_read = planning,
	                       .on_read_ctx = c};
	int rc;

	c->t_plan = c->t_prog = now_ns();
	rc = plan_object(&c->plan, &c->src, &pa, err, errlen);
	if (rc < 0)
		return rc;
	hash_progress(c, c->src.size, 1);
	rc = alloc_buffers(c);
	if (rc == 0)
		rc = build_announce(c);
	if (rc == 0)
		rc = build_carousel(c);
	if (rc < 0) {
		snprintf(err, errlen, "cannot prepare the session: %s", strerror(-rc));
		return rc;
	}
	c->t_start = now_ns();
	c->t_ann = c->t_hb = c->t_start;
	for (int i = 0; i < 3 && rc == 0; i++)
		rc = send_one(c, c->announce, sizeof(c->announce));
	if (rc == 0)
		rc = send_manifest_cycle(c);
	c->enc.raw_bytes = c->enc.stored_bytes = 0; /* count data blocks only */
	for (unsigned pass = 1; pass <= a->passes && rc == 0; pass++) {
		rc = send_pass(c, pass);
		progress(c, pass, pass == a->passes);
	}
	if (rc == 0)
		rc = send_one(c, c->announce, sizeof(c->announce));
	if (rc == 0)
		rc = send_manifest_cycle(c);
	/* Exit status and the summary's time are about frames that left,
	 * not frames still queued for the transmit thread: the send phase
	 * ends when the first END has left. The other two follow spread out
	 * in wire time, not in queue time. A receiver that fell behind
	 * and is dropping what arrives while it catches up (its ring or
	 * socket buffer full) has then drained its backlog, at the defaults,
	 * before the last END arrives, and learns that the sender finished
	 * instead of waiting out its session timeout. */
	if (rc == 0)
		rc = udp_tx_flush(c->tx);
	uint64_t spread = 0;
	for (int i = 0; i < 3 && rc == 0; i++) {
		if (i > 0)
			sleep_until_ns(c->t_end + (i == 1 ? spread / 5 : spread));
		rc = send_status(c, FRAME_END, a->passes);
		if (rc == 0)
			rc = udp_tx_flush(c->tx);
		if (i == 0) {
			c->t_end = now_ns();
			spread = c->t_end - c->t_start;
			if (spread > END_SPREAD_NS)
				spread = END_SPREAD_NS;
		}
	}
	if (rc < 0 && c->read_err)
		snprintf(err, errlen,
		         "cannot read %s while sending it: %s; it must not change while it is "
		         "sent, and the receiver publishes nothing of this send: send it again "
		         "once it is complete",
		         a->path,
		         c->read_err == -EIO
		             ? "a file is shorter or longer than when the send began"
		             : strerror(-c->read_err));
	else if (rc < 0)
		snprintf(err, errlen,
		         "sending failed: %s; check --to, the route to that address and any "
		         "firewall on this host",
		         strerror(-rc));
	return rc;
}

/* A stat call's result (stat_rc, st) still shows size bytes, modified at
 * m to the nanosecond. */
static int same_file(int stat_rc, const struct stat *st, uint64_t size, const struct timespec *m)
{
	return stat_rc == 0 && (uint64_t)st->st_size == size && st->st_mtim.tv_sec == m->tv_sec &&
	       st->st_mtim.tv_nsec == m->tv_nsec;
}

/* After a send that went out whole: was the source written to meanwhile?
 * Blocks read after the change no longer match the signed manifest, and
 * the receiver refuses the object; which blocks left before the change
 * is not known here, so the exit status says "not sent" rather than a
 * "sent" that may be untrue (a cron job, or the spool, then tries again).
 * Each file's size and modification time (to the nanosecond) are
 * compared with those at open, or for a bundle at its scan. 0 or -ESTALE
 * with a message in err. */
static int check_unchanged(const struct source *src, const char *path, char *err, size_t errlen)
{
	const char *changed = NULL;
	struct stat st;

	if (src->fd >= 0) {
		if (same_file(fstat(src->fd, &st), &st, src->size, &src->mtime))
			return 0;
		changed = path;
	} else {
		for (size_t i = 0; i < src->tree->n && !changed; i++) {
			const struct tree_entry *e = &src->tree->e[i];
			if (e->mode != ENTRY_DIR && !same_file(fstatat(src->tree->root_fd, e->path,
			                                               &st, AT_SYMLINK_NOFOLLOW),
			                                       &st, e->size, &e->mtim))
				changed = e->path;
		}
		if (!changed)
			return 0;
	}
	size_t plen = strlen(path);
	const char *sep = src->fd >= 0 || (plen && path[plen - 1] == '/') ? "" : "/";
	snprintf(err, errlen,
	         "%s%s%s was written to while it was sent: the receiver will refuse this send "
	         "unless every block that changed had left before the change (it checks each "
	         "against the signed manifest); send it again once nothing writes to it",
	         src->fd >= 0 ? "" : path, sep, changed);
	return -ESTALE;
}

/* Open what a->path names: a regular file, or a directory as a bundle. */
static int open_source(struct source *src, struct tree *tree, const char *path, char *err,
                       size_t errlen)
{
	struct stat st;
	int rc;

	memset(src, 0, sizeof(*src));
	src->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (src->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(src->fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		return rc;
	}
	if (S_ISREG(st.st_mode)) {
		src->size = (uint64_t)st.st_size;
		src->mtime = st.st_mtim;
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is neither a regular file nor a directory", path);
		return -EINVAL;
	}
	close(src->fd);
	src->fd = -1;
	rc = tree_scan(tree, path, err, errlen);
	if (rc < 0)
		return rc;
	src->tree = tree;
	src->paths = calloc(tree->n, sizeof(*src->paths));
	src->sizes = calloc(tree->n, sizeof(*src->sizes));
	if (!src->paths || !src->sizes) {
		snprintf(err, errlen, "out of memory listing the bundle");
		return -ENOMEM;
	}
	src->nfiles = tree_files(tree, src->paths, src->sizes);
	src->size = tree->total;
	return 0;
}

static void close_source(struct source *src)
{
	if (src->fd >= 0)
		close(src->fd);
	free(src->paths);
	free(src->sizes);
	memset(src, 0, sizeof(*src));
	src->fd = -1;
}

int transfer_file(const struct transfer_args *a, struct transfer_result *res, char *err,
                  size_t errlen)
{
	struct tctx c;
	struct source src;
	struct tree tree = {.root_fd = -1};
	int rc;

	rc = open_source(&src, &tree, a->path, err, errlen);
	if (rc < 0) {
		close_source(&src);
		tree_free(&tree);
		return rc;
	}
	rc = setup(&c, a);
	c.src = src;
	if (rc == 0)
		rc = run(&c, err, errlen);
	else
		snprintf(err, errlen, "cannot set up the encoder: %s", strerror(-rc));
	if (rc == 0)
		rc = check_unchanged(&src, a->path, err, errlen);
	if (rc == 0) {
		res->size = c.plan.size;
		res->bundle = src.tree != NULL;
		res->files = res->bundle ? src.nfiles : 1;
		res->stored_bytes = c.enc.stored_bytes;
		res->frames = c.enc.counter;
		res->seconds_ns = c.t_end - c.t_start;
		memcpy(res->object_id, c.plan.object_id, PROTO_HASH_LEN);
		memcpy(res->content_hash, c.plan.content_hash, PROTO_HASH_LEN);
	}
	if (rc < 0) {
		/* Let what a failed transfer queued drain and forget its send
		 * error (reported in err): in spool mode the next try starts
		 * afresh on the same socket. */
		int queued = udp_tx_flush(a->tx);
		(void)queued;
	}
	teardown(&c);
	close_source(&src);
	tree_free(&tree);
	return rc;
}
