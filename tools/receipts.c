/* SPDX-License-Identifier: MIT */
/* sluice-receipts: check and summarise a receiver's receipt log.
 *
 *   read LOG → split lines → walk the chain (n, prev, log-damaged skips)
 *     → checkpoints (fields, key id, Ed25519) → --rehash: inbox vs blake2b
 *
 * "verify" exits 0 only when everything it checked holds, 1 when anything
 * does not (each problem names its line) or the log cannot be read, 2 on a
 * usage error. "report" summarises for people and checks nothing it does
 * not say it checked. The log format is docs/RECEIPTS.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/keys.h"
#include "common/util.h"
#include "receiver/receipt.h"

enum { EXIT_OK = 0, EXIT_PROBLEM = 1, EXIT_USAGE = 2 };

#define MAX_PUBS  16
#define MAX_SHOWN 50 /* problems printed in full; the rest are counted */
#define EVENT_MAX 48

enum line_state { LINE_UNSEEN = 0, LINE_CHAINED, LINE_SKIPPED, LINE_BAD };

struct line {
	size_t off, len; /* len without the '\n' */
	bool nl;         /* ends with '\n' */
	bool parses;     /* receipt_parse_line accepts it */
	enum line_state state;
	uint64_t n;
	char event[EVENT_MAX]; /* truncated copy, for counting and printing */
	bool event_long;
};

struct logfile {
	const char *path;
	char *data;
	size_t size;
	struct line *lines;
	size_t count;
};

struct damage {
	uint64_t off, bytes;
	size_t first, last; /* lines skipped, [first, last] */
	size_t report;      /* the log-damaged line */
};

struct walk {
	/* inputs */
	const uint8_t (*pubs)[32];
	size_t npubs;
	bool print; /* print each problem (verify) or only count it (report) */
	/* results */
	size_t problems, records;
	size_t checkpoints; /* well-formed, verified when npubs > 0 */
	size_t last_cp;     /* line index + 1 of the last of those, 0 for none */
	uint8_t cp_key[RECEIPT_KEYID_LEN];
	struct damage *dmg;
	size_t ndmg;
};

static const char *prog = "sluice-receipts";

/* ---- output helpers ---------------------------------------------------- */

/* Bytes from the log as the terminal should see them: printable ASCII as
 * is, a backslash doubled, anything else as \xHH, so a hostile name cannot
 * drive the terminal. out holds 4*n+1 bytes. */
static void escape(char *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c <= 0x7e && c != '\\') {
			*out++ = (char)c;
		} else if (c == '\\') {
			*out++ = '\\';
			*out++ = '\\';
		} else {
			snprintf(out, 5, "\\x%02x", c);
			out += 4;
		}
	}
	*out = '\0';
}

static void put_bytes(FILE *f, const char *s, size_t n)
{
	char one[5];

	for (size_t i = 0; i < n; i++) {
		escape(one, s + i, 1);
		fputs(one, f);
	}
}

__attribute__((format(printf, 4, 5))) static void problem(struct walk *w, const struct logfile *lf,
                                                          size_t i, const char *fmt, ...)
{
	va_list ap;

	w->problems++;
	if (!w->print)
		return;
	if (w->problems > MAX_SHOWN) {
		if (w->problems == MAX_SHOWN + 1)
			printf("(further problems are counted but not shown)\n");
		return;
	}
	if (i < lf->count)
		printf("FAIL line %zu (byte %zu): ", i + 1, lf->lines[i].off);
	else
		printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void hex(char *out, const uint8_t *in, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

/* ---- reading the log ----------------------------------------------------- */

static int read_log(struct logfile *lf)
{
	struct stat sb;
	size_t got = 0, start = 0, cap = 0;
	int fd = open(lf->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "%s: cannot open receipt log %s: %s\n", prog, lf->path,
		        strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr,
		        "%s: %s is not a regular file; give the receipt log (e.g. "
		        "INBOX/.sluice/receipts.jsonl)\n",
		        prog, lf->path);
		close(fd);
		return -1;
	}
	/* what is there now; a running receiver may append meanwhile */
	lf->size = (size_t)sb.st_size;
	lf->data = malloc(lf->size + 1);
	if (!lf->data)
		goto nomem;
	while (got < lf->size) {
		ssize_t r = read(fd, lf->data + got, lf->size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "%s: cannot read receipt log %s: %s\n", prog, lf->path,
			        r < 0 ? strerror(errno) : "it shrank while being read");
			close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	for (size_t i = 0; i <= lf->size; i++) {
		if (i < lf->size && lf->data[i] != '\n')
			continue;
		if (i == lf->size && start == lf->size)
			break; /* the file ends with a newline (or is empty) */
		if (lf->count == cap) {
			struct line *p;

			cap = cap ? 2 * cap : 1024;
			p = realloc(lf->lines, cap * sizeof(*p));
			if (!p)
				goto nomem;
			lf->lines = p;
		}
		lf->lines[lf->count++] =
		    (struct line){.off = start, .len = i - start, .nl = i < lf->size};
		start = i + 1;
	}
	return 0;
nomem:
	fprintf(stderr, "%s: out of memory reading %s\n", prog, lf->path);
	close(fd);
	return -1;
}

static const char *line_ptr(const struct logfile *lf, size_t i)
{
	return lf->data + lf->lines[i].off;
}

/* Parse every line once; remember n and the event. */
static int classify(struct logfile *lf)
{
	char *ev = malloc(RECEIPT_LINE_MAX);

	if (!ev) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	for (size_t i = 0; i < lf->count; i++) {
		struct line *l = &lf->lines[i];

		if (!l->nl || l->len >= RECEIPT_LINE_MAX)
			continue;
		if (receipt_parse_line(line_ptr(lf, i), l->len, &l->n, ev, RECEIPT_LINE_MAX,
		                       NULL) != 0)
			continue;
		l->parses = true;
		snprintf(l->event, sizeof(l->event), "%s", ev);
		l->event_long = strlen(ev) >= sizeof(l->event);
	}
	free(ev);
	return 0;
}

static bool is_event(const struct line *l, const char *ev)
{
	return l->parses && !l->event_long && !strcmp(l->event, ev);
}

/* ---- the chain ------------------------------------------------------------ */

struct cand {
	uint64_t off;
	size_t line;
	bool used;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* log-damaged records that end exactly where they start (receipt.h): the
 * only ones a skip may follow. Sorted by the offset they skip from. */
static struct cand *damage_candidates(const struct logfile *lf, size_t *count)
{
	struct cand *c = calloc(lf->count ? lf->count : 1, sizeof(*c));
	size_t k = 0;

	if (!c)
		return NULL;
	for (size_t i = 0; i < lf->count; i++) {
		const struct line *l = &lf->lines[i];
		uint64_t off, bytes;

		if (!is_event(l, "log-damaged") ||
		    receipt_get_u64(line_ptr(lf, i), l->len, "offset", &off) != 0 ||
		    receipt_get_u64(line_ptr(lf, i), l->len, "bytes", &bytes) != 0)
			continue;
		if (bytes == 0 || off > l->off || l->off - off != bytes)
			continue;
		c[k++] = (struct cand){.off = off, .line = i};
	}
	qsort(c, k, sizeof(*c), cand_cmp);
	*count = k;
	return c;
}

/* The first candidate after line i that skips from byte off. */
static struct cand *find_skip(struct cand *c, size_t count, uint64_t off, size_t i)
{
	size_t lo = 0, hi = count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < count && c[lo].off == off; lo++)
		if (c[lo].line > i)
			return &c[lo];
	return NULL;
}

static void check_checkpoint(struct walk *w, const struct logfile *lf, size_t i)
{
	const struct line *l = &lf->lines[i];
	struct receipt_checkpoint cp;
	char kid[2 * RECEIPT_KEYID_LEN + 1];
	size_t k;
	int rc;

	if (receipt_parse_checkpoint(line_ptr(lf, i), l->len, &cp) != 0) {
		problem(w, lf, i,
		        "malformed checkpoint: not exactly the fields and spelling sluice-recv "
		        "writes (records, head, key, sig), so it vouches for nothing");
		return;
	}
	hex(kid, cp.key, RECEIPT_KEYID_LEN);
	if (cp.records != cp.n - 1 || sodium_memcmp(cp.head, cp.prev, RECEIPT_HASH_LEN) != 0) {
		problem(w, lf, i,
		        "checkpoint's records/head (%" PRIu64 ") do not name the line before it; "
		        "it was edited",
		        cp.records);
		return;
	}
	if (w->npubs == 0) {
		w->checkpoints++;
		w->last_cp = i + 1;
		memcpy(w->cp_key, cp.key, sizeof(cp.key));
		return;
	}
	for (k = 0; k < w->npubs; k++) {
		uint8_t id[KEYID_LEN];

		key_id(id, w->pubs[k]);
		if (sodium_memcmp(id, cp.key, KEYID_LEN) == 0)
			break;
	}
	if (k == w->npubs) {
		problem(w, lf, i,
		        "checkpoint is signed by log key %s, which is not a --log-pub key: a "
		        "different receiver's log, or a forged checkpoint",
		        kid);
		return;
	}
	rc = receipt_checkpoint_verify(&cp, w->pubs[k]);
	if (rc != 0) {
		problem(w, lf, i,
		        "checkpoint signature does not verify with log key %s: the checkpoint "
		        "was forged or altered",
		        kid);
		return;
	}
	w->checkpoints++;
	w->last_cp = i + 1;
	memcpy(w->cp_key, cp.key, sizeof(cp.key));
}

/* One chained line: n and prev against the line before. */
static void check_link(struct walk *w, const struct logfile *lf, size_t i, uint64_t want_n,
                       const uint8_t want_prev[32], size_t prev_line)
{
	const struct line *l = &lf->lines[i];
	uint8_t prev[RECEIPT_HASH_LEN];
	bool n_ok, prev_ok;

	(void)!receipt_parse_line(line_ptr(lf, i), l->len, NULL, NULL, 0, prev);
	n_ok = l->n == want_n;
	prev_ok = sodium_memcmp(prev, want_prev, RECEIPT_HASH_LEN) == 0;
	if (n_ok && prev_ok)
		return;
	if (want_n == 1 && !prev_ok)
		problem(w, lf, i,
		        "the first record has n %" PRIu64 " and a prev that is not 64 zeros: "
		        "records before it were removed",
		        l->n);
	else if (!prev_ok && !n_ok)
		problem(w, lf, i,
		        "n is %" PRIu64 " (expected %" PRIu64 ") and prev is not the hash of line "
		        "%zu: records were removed or inserted before this one",
		        l->n, want_n, prev_line + 1);
	else if (!prev_ok)
		problem(w, lf, i,
		        "prev is not the hash of line %zu (the record before): that line was "
		        "modified, or this one was moved",
		        prev_line + 1);
	else
		problem(w, lf, i, "n is %" PRIu64 ", expected %" PRIu64 ": the record was edited",
		        l->n, want_n);
}

static int add_damage(struct walk *w, const struct cand *c, size_t first)
{
	struct damage *d = realloc(w->dmg, (w->ndmg + 1) * sizeof(*d));

	if (!d)
		return -1;
	w->dmg = d;
	d[w->ndmg++] = (struct damage){.off = c->off,
	                               .bytes = 0, /* set by the caller */
	                               .first = first,
	                               .last = c->line - 1,
	                               .report = c->line};
	return 0;
}

/* Walk from the first line, following the chain and the skips that
 * log-damaged records announce; every line ends up CHAINED, SKIPPED or BAD. */
static int walk_chain(struct walk *w, struct logfile *lf)
{
	uint8_t want_prev[RECEIPT_HASH_LEN] = {0};
	uint64_t want_n = 1;
	size_t ncand = 0, prev_line = 0, i = 0;
	struct cand *cand = damage_candidates(lf, &ncand);
	bool resync = false;

	if (!cand)
		return -1;
	while (i < lf->count) {
		struct line *l = &lf->lines[i];
		struct cand *skip = find_skip(cand, ncand, l->off, i);

		if (skip) {
			if (add_damage(w, skip, i) < 0)
				goto nomem;
			w->dmg[w->ndmg - 1].bytes = lf->lines[skip->line].off - skip->off;
			skip->used = true;
			for (; i < skip->line; i++)
				lf->lines[i].state = LINE_SKIPPED;
			continue;
		}
		if (!l->nl) {
			problem(w, lf, i,
			        "the last line has no newline: cut off by a crash or by hand. "
			        "sluice-recv reports it as log-damaged when it next starts; until "
			        "then it cannot be verified");
			l->state = LINE_BAD;
			i++;
			continue;
		}
		if (!l->parses) {
			problem(w, lf, i,
			        "not a well-formed receipt record (edited, or damage that no "
			        "log-damaged record accounts for)");
			l->state = LINE_BAD;
			resync = true; /* do not blame the next line for this one */
			i++;
			continue;
		}
		if (!resync)
			check_link(w, lf, i, want_n, want_prev, prev_line);
		resync = false;
		l->state = LINE_CHAINED;
		w->records++;
		want_n = l->n + 1;
		crypto_generichash(want_prev, sizeof(want_prev), (const uint8_t *)line_ptr(lf, i),
		                   l->len, NULL, 0);
		prev_line = i;
		if (is_event(l, "checkpoint"))
			check_checkpoint(w, lf, i);
		i++;
	}
	for (size_t k = 0; k < ncand; k++)
		if (!cand[k].used && lf->lines[cand[k].line].state == LINE_CHAINED)
			problem(w, lf, cand[k].line,
			        "log-damaged record names bytes %" PRIu64 "-%" PRIu64 ", which do "
			        "not start at a record the chain reaches",
			        cand[k].off, lf->lines[cand[k].line].off - 1);
	free(cand);
	return 0;
nomem:
	free(cand);
	fprintf(stderr, "%s: out of memory\n", prog);
	return -1;
}

/* Records chained after the last good checkpoint, and where they start. */
static size_t uncovered(const struct walk *w, const struct logfile *lf, size_t *first, size_t *last)
{
	size_t count = 0;

	for (size_t i = w->last_cp; i < lf->count; i++) {
		if (lf->lines[i].state != LINE_CHAINED)
			continue;
		if (!count)
			*first = i;
		*last = i;
		count++;
	}
	return count;
}

/* ---- --rehash --------------------------------------------------------------- */

struct pub {
	size_t line;
	char name[256];
	size_t name_len;
	bool bundle;
	bool name_ok; /* a single path component we may look up */
};

static int pub_cmp(const void *a, const void *b)
{
	const struct pub *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

static bool plain_name(const char *s, size_t n)
{
	if (n == 0 || n > 255 || memchr(s, '/', n) || memchr(s, '\0', n))
		return false;
	return !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

static struct pub *collect_published(const struct logfile *lf, size_t *count)
{
	struct pub *p = calloc(lf->count ? lf->count : 1, sizeof(*p));
	size_t k = 0;

	if (!p)
		return NULL;
	for (size_t i = 0; i < lf->count; i++) {
		const struct line *l = &lf->lines[i];
		char kind[16];
		struct pub *e = &p[k];

		if (l->state != LINE_CHAINED || !is_event(l, "published"))
			continue;
		e->line = i;
		e->name_ok = receipt_get_str(line_ptr(lf, i), l->len, "name", e->name,
		                             sizeof(e->name), &e->name_len) == 0 &&
		             plain_name(e->name, e->name_len);
		e->bundle = receipt_get_str(line_ptr(lf, i), l->len, "kind", kind, sizeof(kind),
		                            NULL) == 0 &&
		            !strcmp(kind, "bundle");
		k++;
	}
	qsort(p, k, sizeof(*p), pub_cmp);
	*count = k;
	return p;
}

/* 0 identical, 1 differs (message written), -errno when unreadable. */
static int hash_file(int fd, uint8_t out[32])
{
	crypto_generichash_state st;
	static uint8_t buf[1 << 20];
	ssize_t r;

	crypto_generichash_init(&st, NULL, 0, 32);
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		crypto_generichash_update(&st, buf, (size_t)r);
	}
	crypto_generichash_final(&st, out, 32);
	return 0;
}

struct rehash_count {
	size_t same, missing, modified, bundles, superseded, unlisted;
};

/* The inbox entry that the latest "published" record of one name names. */
static void rehash_one(struct walk *w, const struct logfile *lf, int dfd, const struct pub *e,
                       struct rehash_count *rc)
{
	const struct line *l = &lf->lines[e->line];
	char want_hex[65], got_hex[65], name[4 * sizeof(e->name) + 1];
	uint8_t want[32], got[32];
	uint64_t size = 0;
	struct stat sb;
	size_t hlen;
	int fd, err;

	escape(name, e->name, e->name_len); /* a hostile name must not drive the terminal */
	if (!e->name_ok) {
		problem(w, lf, e->line,
		        "the published name is not a plain file name; it was not looked up");
		return;
	}
	fd = openat(dfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		rc->missing++;
		if (w->print) {
			printf("missing: line %zu: ", e->line + 1);
			printf("%s is no longer in the inbox (moved or deleted)\n", name);
		}
		return;
	}
	if (fd < 0) {
		err = errno;
		problem(w, lf, e->line, "cannot open %s in the inbox: %s%s", name, strerror(err),
		        err == ELOOP ? " (a symbolic link: sluice-recv never publishes one)" : "");
		return;
	}
	if (fstat(fd, &sb) < 0 || (e->bundle ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))) {
		problem(w, lf, e->line, "%s in the inbox is not the %s that was published", name,
		        e->bundle ? "directory" : "regular file");
		goto out;
	}
	if (e->bundle) {
		rc->bundles++; /* per-file hashes are in the manifest, not in the log */
		goto out;
	}
	if (receipt_get_str(line_ptr(lf, e->line), l->len, "blake2b", want_hex, sizeof(want_hex),
	                    &hlen) != 0 ||
	    hlen != 64 || sodium_hex2bin(want, 32, want_hex, 64, NULL, NULL, NULL) != 0 ||
	    receipt_get_u64(line_ptr(lf, e->line), l->len, "size", &size) != 0) {
		problem(w, lf, e->line, "published record lacks a usable blake2b or size");
		goto out;
	}
	if ((uint64_t)sb.st_size != size) {
		rc->modified++;
		problem(w, lf, e->line,
		        "%s in the inbox is %jd bytes, the published record says %" PRIu64
		        ": modified after publication",
		        name, (intmax_t)sb.st_size, size);
		goto out;
	}
	err = hash_file(fd, got);
	if (err < 0) {
		problem(w, lf, e->line, "cannot read %s in the inbox: %s", name, strerror(-err));
		goto out;
	}
	if (sodium_memcmp(got, want, 32) != 0) {
		rc->modified++;
		hex(got_hex, got, 32);
		problem(w, lf, e->line,
		        "%s in the inbox has blake2b %s, the published record says %s: modified "
		        "after publication",
		        name, got_hex, want_hex);
		goto out;
	}
	rc->same++;
out:
	close(fd);
}

static bool listed(const struct pub *p, size_t count, const char *name)
{
	struct pub key = {.name_len = strlen(name), .line = (size_t)-1};
	size_t lo = 0, hi = count;

	if (key.name_len >= sizeof(key.name))
		return false;
	memcpy(key.name, name, key.name_len);
	/* the last entry of that name sorts just below key (line is max) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pub_cmp(&p[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && p[lo - 1].name_len == key.name_len &&
	       !memcmp(p[lo - 1].name, name, key.name_len);
}

static void find_unlisted(struct walk *w, int dfd, const struct pub *p, size_t count,
                          struct rehash_count *rc)
{
	DIR *d = dir_entries(dfd);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || listed(p, count, de->d_name))
			continue;
		rc->unlisted++;
		if (w->print) {
			printf("note: ");
			put_bytes(stdout, de->d_name, strlen(de->d_name));
			printf(" is in the inbox but no published record in this log names it\n");
		}
	}
	closedir(d);
}

static int rehash(struct walk *w, const struct logfile *lf, int dfd)
{
	struct rehash_count rc = {0};
	size_t count = 0;
	struct pub *p = collect_published(lf, &count);

	if (!p) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	for (size_t k = 0; k < count; k++) {
		/* only the latest publication of a name can still be there */
		if (k + 1 < count && p[k + 1].name_len == p[k].name_len &&
		    !memcmp(p[k + 1].name, p[k].name, p[k].name_len)) {
			rc.superseded++;
			continue;
		}
		rehash_one(w, lf, dfd, &p[k], &rc);
	}
	find_unlisted(w, dfd, p, count, &rc);
	printf("rehash: %zu published file%s identical, %zu missing, %zu modified", rc.same,
	       rc.same == 1 ? "" : "s", rc.missing, rc.modified);
	if (rc.bundles)
		printf(", %zu directory bundle%s present (not re-hashed)", rc.bundles,
		       rc.bundles == 1 ? "" : "s");
	if (rc.superseded)
		printf(", %zu older publication%s of a name published again not checked",
		       rc.superseded, rc.superseded == 1 ? "" : "s");
	if (rc.unlisted)
		printf(", %zu inbox entr%s without a published record", rc.unlisted,
		       rc.unlisted == 1 ? "y" : "ies");
	printf("\n");
	free(p);
	return 0;
}

/* ---- verify ------------------------------------------------------------------ */

static void verify_summary(const struct walk *w, const struct logfile *lf)
{
	char kid[2 * RECEIPT_KEYID_LEN + 1];
	size_t first = 0, last = 0, left;

	printf("chain: %zu records", w->records);
	if (w->ndmg)
		printf(", %zu damaged range%s skipped as log-damaged records report", w->ndmg,
		       w->ndmg == 1 ? "" : "s");
	printf("\n");
	if (w->npubs == 0) {
		printf("checkpoints: %zu found, signatures NOT checked (give --log-pub log.pub)\n",
		       w->checkpoints);
		return;
	}
	if (!w->last_cp) {
		printf("checkpoints: none verified; nothing in this log is covered by a signed "
		       "checkpoint (was sluice-recv given its log key?)\n");
		return;
	}
	hex(kid, w->cp_key, RECEIPT_KEYID_LEN);
	printf("checkpoints: %zu verified, the last at line %zu (n %" PRIu64 ", log key %s)\n",
	       w->checkpoints, w->last_cp, lf->lines[w->last_cp - 1].n, kid);
	left = uncovered(w, lf, &first, &last);
	if (w->problems)
		printf("coverage: void while the chain has problems\n");
	else if (left)
		printf("not yet covered by a signed checkpoint: %zu record%s after line %zu "
		       "(lines %zu-%zu)\n",
		       left, left == 1 ? "" : "s", w->last_cp, first + 1, last + 1);
	else
		printf("every record is covered by a signed checkpoint\n");
}

static int load_pubs(char **paths, size_t n, uint8_t (*pubs)[32])
{
	char err[512];

	for (size_t i = 0; i < n; i++) {
		if (keyfile_read(paths[i], KEY_LOG_PUBLIC, pubs[i], NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: %s\n", prog, err);
			return -1;
		}
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: %s verify LOG [--log-pub log.pub ...] [--anchor FILE ...]\n"
	        "                      [--inbox DIR --rehash]\n"
	        "       %s report LOG [--since DATE]\n"
	        "\n"
	        "verify  checks that every line parses, n counts up, every prev chains\n"
	        "        (skipping exactly what log-damaged records report), and with\n"
	        "        --log-pub that every checkpoint's Ed25519 signature verifies.\n"
	        "        --anchor FILE: checkpoint lines saved off the box earlier must\n"
	        "        still be in the log, unchanged (detects a log cut back).\n"
	        "        --rehash re-hashes each published file still in --inbox DIR.\n"
	        "report  summarises per day (objects, bytes, failures, loss, worst FEC\n"
	        "        margin), events, published objects, rejections, incomplete\n"
	        "        transfers, damaged ranges and the last checkpoint.\n"
	        "        --since DATE: only records from DATE on (UTC), YYYY-MM-DD or\n"
	        "        YYYY-MM-DDTHH:MM[:SS].\n"
	        "\n"
	        "exit status: 0 verified, 1 a problem was found or the log is unreadable,\n"
	        "2 usage error (including an unusable --log-pub or --inbox)\n",
	        prog, prog);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "%s: %s%s%s\nTry '%s --help'.\n", prog, what, arg ? " " : "",
	        arg ? arg : "", prog);
	return EXIT_USAGE;
}

/* Every checkpoint line in an anchor file (copied off the box earlier) must
 * still be in the log, byte for byte: a log cut back to an earlier
 * checkpoint, or rewritten and re-signed, loses it. */
static int check_anchor(struct walk *w, const struct logfile *lf, const char *path)
{
	struct logfile an = {.path = path};
	size_t found = 0;

	if (read_log(&an) < 0 || classify(&an) < 0) {
		free(an.data);
		free(an.lines);
		return -1;
	}
	for (size_t i = 0; i < an.count; i++) {
		const struct line *a = &an.lines[i];
		bool here = false;
		if (a->len == 0)
			continue;
		if (!a->parses || !is_event(a, "checkpoint")) {
			printf("FAIL anchor %s line %zu: not a checkpoint record\n", path, i + 1);
			w->problems++;
			continue;
		}
		for (size_t j = 0; j < lf->count && !here; j++)
			here = lf->lines[j].len == a->len &&
			       memcmp(line_ptr(lf, j), line_ptr(&an, i), a->len) == 0;
		if (here) {
			found++;
			continue;
		}
		printf("FAIL anchor %s line %zu: checkpoint n %" PRIu64
		       " is not in the log: it was "
		       "cut back or rewritten since the anchor was taken\n",
		       path, i + 1, a->n);
		w->problems++;
	}
	if (found)
		printf("anchors: %zu checkpoint%s from %s found unchanged\n", found,
		       found == 1 ? "" : "s", path);
	free(an.data);
	free(an.lines);
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"log-pub", required_argument, NULL, 'p'}, {"anchor", required_argument, NULL, 'a'},
	    {"inbox", required_argument, NULL, 'i'},   {"rehash", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
	char *pubpaths[MAX_PUBS], *anchors[MAX_PUBS];
	uint8_t pubs[MAX_PUBS][32];
	const char *inbox = NULL;
	size_t nanchors = 0;
	struct logfile lf = {0};
	struct walk w = {.print = true};
	size_t npubs = 0;
	int c, dfd = -1, rc = EXIT_PROBLEM, do_rehash = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (npubs == MAX_PUBS)
				return usage_error("too many --log-pub keys, the limit is 16:",
				                   optarg);
			pubpaths[npubs++] = optarg;
			break;
		case 'a':
			if (nanchors == MAX_PUBS)
				return usage_error("too many --anchor files, the limit is 16:",
				                   optarg);
			anchors[nanchors++] = optarg;
			break;
		case 'i':
			inbox = optarg;
			break;
		case 'r':
			do_rehash = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			return usage_error("invalid option for verify:", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return usage_error("verify takes exactly one LOG file", NULL);
	if (do_rehash != !!inbox)
		return usage_error("--rehash and --inbox DIR go together", NULL);
	lf.path = argv[optind];
	if (load_pubs(pubpaths, npubs, pubs) < 0)
		return EXIT_USAGE;
	if (inbox) {
		dfd = open(inbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			fprintf(stderr, "%s: cannot open inbox %s: %s; check --inbox\n", prog,
			        inbox, strerror(errno));
			return EXIT_USAGE;
		}
	}
	w.pubs = (const uint8_t(*)[32])pubs;
	w.npubs = npubs;
	if (read_log(&lf) < 0 || classify(&lf) < 0 || walk_chain(&w, &lf) < 0)
		goto out;
	verify_summary(&w, &lf);
	for (size_t a = 0; a < nanchors; a++)
		if (check_anchor(&w, &lf, anchors[a]) < 0)
			goto out;
	if (dfd >= 0 && rehash(&w, &lf, dfd) < 0)
		goto out;
	if (w.problems) {
		printf("verify: FAILED, %zu problem%s in %s\n", w.problems,
		       w.problems == 1 ? "" : "s", lf.path);
	} else {
		printf("verify: OK%s\n", npubs ? "" : " (chain only; checkpoints not checked)");
		rc = EXIT_OK;
	}
out:
	if (dfd >= 0)
		close(dfd);
	free(lf.data);
	free(lf.lines);
	free(w.dmg);
	return rc;
}

/* ---- report ------------------------------------------------------------------ */

/* --since: a prefix of "YYYY-MM-DDTHH:MM:SS" (date at least), optionally
 * ending in Z, turned into the log's own time format so that plain string
 * comparison orders it. */
static int parse_since(const char *s, char out[RECEIPT_TIME_LEN + 1])
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	char t[RECEIPT_TIME_LEN + 1] = "0000-01-01T00:00:00.000Z";
	size_t n = strlen(s);
	int mo, d, h, mi, se;

	if (n && s[n - 1] == 'Z')
		n--;
	if (n != 10 && n != 16 && n != 19)
		return -1;
	for (size_t k = 0; k < n; k++) {
		char ch = s[k];

		if (shape[k] == 'd' ? !(ch >= '0' && ch <= '9')
		                    : ch != shape[k] && !(shape[k] == 'T' && ch == ' '))
			return -1;
		t[k] = shape[k] == 'T' ? 'T' : ch;
	}
	if (sscanf(t + 5, "%2d-%2d", &mo, &d) != 2 ||
	    sscanf(t + 11, "%2d:%2d:%2d", &h, &mi, &se) != 3 || mo < 1 || mo > 12 || d < 1 ||
	    d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	memcpy(out, t, sizeof(t));
	return 0;
}

struct count {
	char event[EVENT_MAX];
	size_t n;
};

static int count_cmp(const void *a, const void *b)
{
	return strcmp(((const struct count *)a)->event, ((const struct count *)b)->event);
}

static void field_str(const struct logfile *lf, size_t i, const char *key)
{
	char v[1024];
	size_t len;

	if (receipt_get_str(line_ptr(lf, i), lf->lines[i].len, key, v, sizeof(v), &len) == 0)
		put_bytes(stdout, v, len);
	else
		printf("?");
}

static bool field_u64(const struct logfile *lf, size_t i, const char *key, uint64_t *v)
{
	return receipt_get_u64(line_ptr(lf, i), lf->lines[i].len, key, v) == 0;
}

static void get_time(const struct logfile *lf, size_t i, char t[RECEIPT_TIME_LEN + 1])
{
	if (receipt_get_str(line_ptr(lf, i), lf->lines[i].len, "time", t, RECEIPT_TIME_LEN + 1,
	                    NULL) != 0)
		snprintf(t, RECEIPT_TIME_LEN + 1, "?");
}

static void put_time(const struct logfile *lf, size_t i)
{
	char t[RECEIPT_TIME_LEN + 1];

	get_time(lf, i, t);
	printf("  %s  ", t);
}

/* name, or the object id when the manifest never verified */
static void put_what(const struct logfile *lf, size_t i)
{
	char v[1024];
	size_t len;

	if (receipt_get_str(line_ptr(lf, i), lf->lines[i].len, "name", v, sizeof(v), &len) == 0) {
		put_bytes(stdout, v, len);
		return;
	}
	if (receipt_get_str(line_ptr(lf, i), lf->lines[i].len, "object", v, sizeof(v), &len) != 0) {
		printf("?");
		return;
	}
	printf("object ");
	put_bytes(stdout, v, len < 16 ? len : 16);
	printf("...");
}

static bool selected(const struct logfile *lf, size_t i, const char *since)
{
	const struct line *l = &lf->lines[i];
	char t[RECEIPT_TIME_LEN + 1];

	if (!l->parses)
		return false;
	if (!since[0])
		return true;
	return receipt_get_str(line_ptr(lf, i), l->len, "time", t, sizeof(t), NULL) == 0 &&
	       strcmp(t, since) >= 0;
}

struct day {
	char date[11];
	uint64_t objects, bytes, failures, frames_sent, frames_lost, link_lost;
	double worst_margin; /* lowest fec_margin_pct of a published object; < 0: none */
};

static struct day *day_of(struct day *days, size_t *n, size_t cap, const char *time)
{
	for (size_t i = 0; i < *n; i++)
		if (strncmp(days[i].date, time, 10) == 0)
			return &days[i];
	if (*n == cap)
		return NULL;
	memset(&days[*n], 0, sizeof(days[*n]));
	memcpy(days[*n].date, time, 10);
	days[*n].worst_margin = -1;
	return &days[(*n)++];
}

/* One line per UTC day: what a person checking the diode wants first. */
static void report_days(const struct logfile *lf, const char *since)
{
	static const char *const failures[] = {"incomplete", "rejected", "failed", "conflict",
	                                       "replay"};
	struct day *days = calloc(4096, sizeof(*days));
	size_t n = 0;

	if (!days)
		return;
	for (size_t i = 0; i < lf->count; i++) {
		const struct line *l = &lf->lines[i];
		char t[RECEIPT_TIME_LEN + 1];
		uint64_t x;
		struct day *d;
		if (!selected(lf, i, since))
			continue;
		get_time(lf, i, t);
		if (strlen(t) < 10 || !(d = day_of(days, &n, 4096, t)))
			continue;
		if (is_event(l, "published")) {
			d->objects++;
			d->bytes += field_u64(lf, i, "size", &x) ? x : 0;
			d->frames_sent += field_u64(lf, i, "frames_sent", &x) ? x : 0;
			d->frames_lost += field_u64(lf, i, "frames_lost", &x) ? x : 0;
			double m;
			if (receipt_get_double(line_ptr(lf, i), l->len, "fec_margin_pct", &m) ==
			        0 &&
			    (d->worst_margin < 0 || m < d->worst_margin))
				d->worst_margin = m;
		}
		for (size_t f = 0; f < sizeof(failures) / sizeof(failures[0]); f++)
			if (is_event(l, failures[f])) {
				d->failures++;
				d->frames_sent += field_u64(lf, i, "frames_sent", &x) ? x : 0;
				d->frames_lost += field_u64(lf, i, "frames_lost", &x) ? x : 0;
			}
		if (is_event(l, "hourly"))
			d->link_lost += field_u64(lf, i, "datagrams_lost", &x) ? x : 0;
	}
	printf("\nper day (UTC):\n");
	printf("  %-10s  %7s  %14s  %8s  %12s  %11s  %10s\n", "date", "objects", "bytes",
	       "failures", "frames lost", "link lost", "worst FEC");
	for (size_t i = 0; i < n; i++) {
		char margin[16] = "-";
		char lost[32];
		if (days[i].worst_margin >= 0)
			snprintf(margin, sizeof(margin), "%.1f%%", days[i].worst_margin);
		snprintf(lost, sizeof(lost), "%" PRIu64 " (%.2f%%)", days[i].frames_lost,
		         days[i].frames_sent
		             ? 100.0 * (double)days[i].frames_lost / (double)days[i].frames_sent
		             : 0.0);
		printf("  %-10s  %7" PRIu64 "  %14" PRIu64 "  %8" PRIu64 "  %12s  %11" PRIu64
		       "  %10s\n",
		       days[i].date, days[i].objects, days[i].bytes, days[i].failures, lost,
		       days[i].link_lost, margin);
	}
	free(days);
}

static void report_published(const struct logfile *lf, const char *since)
{
	size_t total = 0;

	for (size_t i = 0; i < lf->count; i++)
		total += selected(lf, i, since) && is_event(&lf->lines[i], "published");
	printf("\npublished (%zu):\n", total);
	for (size_t i = 0; i < lf->count; i++) {
		uint64_t size = 0, lost = 0, sent = 0;

		if (!selected(lf, i, since) || !is_event(&lf->lines[i], "published"))
			continue;
		put_time(lf, i);
		put_what(lf, i);
		(void)field_u64(lf, i, "size", &size);
		printf("  %" PRIu64 " bytes  sender ", size);
		field_str(lf, i, "sender");
		printf("  blake2b ");
		field_str(lf, i, "blake2b");
		if (field_u64(lf, i, "frames_lost", &lost) &&
		    field_u64(lf, i, "frames_sent", &sent))
			printf("  (%" PRIu64 " of %" PRIu64 " frames lost and repaired)", lost,
			       sent);
		printf("\n");
	}
}

static bool not_published(const struct line *l)
{
	return is_event(l, "rejected") || is_event(l, "conflict") || is_event(l, "failed") ||
	       is_event(l, "replay") || is_event(l, "duplicate");
}

static void report_refused(const struct logfile *lf, const char *since)
{
	size_t total = 0;

	for (size_t i = 0; i < lf->count; i++)
		total += selected(lf, i, since) && not_published(&lf->lines[i]);
	printf("\nnot published: rejected, conflict, failed, replay, duplicate (%zu):\n", total);
	for (size_t i = 0; i < lf->count; i++) {
		if (!selected(lf, i, since) || !not_published(&lf->lines[i]))
			continue;
		put_time(lf, i);
		printf("%-10s ", lf->lines[i].event);
		put_what(lf, i);
		printf("  sender ");
		field_str(lf, i, "sender");
		printf(": ");
		field_str(lf, i, "reason");
		printf("\n");
	}
}

static void report_incomplete(const struct logfile *lf, const char *since)
{
	size_t total = 0;

	for (size_t i = 0; i < lf->count; i++)
		total += selected(lf, i, since) && is_event(&lf->lines[i], "incomplete");
	printf("\nincomplete (%zu):\n", total);
	for (size_t i = 0; i < lf->count; i++) {
		uint64_t done = 0, all = 0, miss, lost, sent;

		if (!selected(lf, i, since) || !is_event(&lf->lines[i], "incomplete"))
			continue;
		put_time(lf, i);
		put_what(lf, i);
		printf("  sender ");
		field_str(lf, i, "sender");
		printf(": ");
		field_str(lf, i, "reason");
		(void)field_u64(lf, i, "blocks_done", &done);
		(void)field_u64(lf, i, "blocks_total", &all);
		printf("; %" PRIu64 " of %" PRIu64 " blocks done", done, all);
		if (field_u64(lf, i, "symbols_missing_at_least", &miss))
			printf(", at least %" PRIu64 " symbols missing", miss);
		if (field_u64(lf, i, "frames_lost", &lost) &&
		    field_u64(lf, i, "frames_sent", &sent))
			printf(", %" PRIu64 " of %" PRIu64 " frames lost", lost, sent);
		printf("\n");
	}
}

static void report_events(const struct logfile *lf, const char *since, size_t *shown)
{
	struct count *c = calloc(lf->count ? lf->count : 1, sizeof(*c));
	size_t k = 0;

	*shown = 0;
	if (!c)
		return;
	for (size_t i = 0; i < lf->count; i++) {
		size_t j;

		if (!selected(lf, i, since))
			continue;
		(*shown)++;
		for (j = 0; j < k && strcmp(c[j].event, lf->lines[i].event); j++)
			;
		if (j == k)
			snprintf(c[k++].event, EVENT_MAX, "%s", lf->lines[i].event);
		c[j].n++;
	}
	qsort(c, k, sizeof(*c), count_cmp);
	printf("\nevents:\n");
	for (size_t j = 0; j < k; j++) {
		size_t len = strlen(c[j].event);

		printf("  ");
		put_bytes(stdout, c[j].event, len);
		printf("%*s %zu\n", len < 16 ? (int)(16 - len) : 0, "", c[j].n);
	}
	free(c);
}

static void report_damage(const struct walk *w)
{
	printf("\ndamaged ranges (%zu):\n", w->ndmg);
	for (size_t k = 0; k < w->ndmg; k++) {
		const struct damage *d = &w->dmg[k];

		printf("  bytes %" PRIu64 "-%" PRIu64 " (%" PRIu64 " bytes, line%s %zu", d->off,
		       d->off + d->bytes - 1, d->bytes, d->first == d->last ? "" : "s",
		       d->first + 1);
		if (d->last != d->first)
			printf("-%zu", d->last + 1);
		printf(") skipped, reported at line %zu\n", d->report + 1);
	}
}

static void report_checkpoint(const struct logfile *lf)
{
	struct receipt_checkpoint cp;
	char kid[2 * RECEIPT_KEYID_LEN + 1];
	size_t after = 0;

	for (size_t i = lf->count; i-- > 0;) {
		const struct line *l = &lf->lines[i];

		if (!is_event(l, "checkpoint") ||
		    receipt_parse_checkpoint(line_ptr(lf, i), l->len, &cp) != 0) {
			after += l->parses;
			continue;
		}
		hex(kid, cp.key, RECEIPT_KEYID_LEN);
		printf("\nlast checkpoint: line %zu at %s, covers records 1-%" PRIu64
		       ", log key %s (signature not checked here: run verify --log-pub)\n",
		       i + 1, cp.time, cp.records, kid);
		if (after)
			printf("not yet covered by a checkpoint: %zu record%s after it\n", after,
			       after == 1 ? "" : "s");
		return;
	}
	printf("\nlast checkpoint: none (nothing in this log is signed)\n");
}

static int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {{"since", required_argument, NULL, 's'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	char since[RECEIPT_TIME_LEN + 1] = "";
	struct logfile lf = {0};
	struct walk w = {.print = false};
	char t0[RECEIPT_TIME_LEN + 1], t1[RECEIPT_TIME_LEN + 1];
	size_t shown = 0, first = 0, last = 0;
	int c, rc = EXIT_PROBLEM;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_since(optarg, since) < 0)
				return usage_error(
				    "--since takes a UTC date YYYY-MM-DD[THH:MM[:SS]], not",
				    optarg);
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			return usage_error("invalid option for report:", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return usage_error("report takes exactly one LOG file", NULL);
	lf.path = argv[optind];
	if (read_log(&lf) < 0 || classify(&lf) < 0 || walk_chain(&w, &lf) < 0)
		goto out;
	for (size_t i = 0; i < lf.count; i++) {
		if (!lf.lines[i].parses)
			continue;
		if (!first)
			first = i + 1;
		last = i + 1;
	}
	printf("receipt log %s: %zu lines, %zu records in the chain", lf.path, lf.count, w.records);
	if (first) {
		get_time(&lf, first - 1, t0);
		get_time(&lf, last - 1, t1);
		printf(", %s to %s", t0, t1);
	}
	printf("\n");
	if (since[0])
		printf("showing records from %s on\n", since);
	if (w.problems)
		printf("chain: %zu problem%s; run '%s verify' for details\n", w.problems,
		       w.problems == 1 ? "" : "s", prog);
	else
		printf("chain: intact (signatures not checked here)\n");
	report_days(&lf, since);
	report_events(&lf, since, &shown);
	report_published(&lf, since);
	report_refused(&lf, since);
	report_incomplete(&lf, since);
	report_damage(&w);
	report_checkpoint(&lf);
	if (since[0])
		printf("\n%zu record%s shown\n", shown, shown == 1 ? "" : "s");
	rc = EXIT_OK;
out:
	free(lf.data);
	free(lf.lines);
	free(w.dmg);
	return rc;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: cannot initialise libsodium\n", prog);
		return EXIT_PROBLEM;
	}
	if (argc < 2)
		return usage_error("missing a command: verify or report", NULL);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "report"))
		return cmd_report(argc - 1, argv + 1);
	return usage_error("unknown command (verify or report):", argv[1]);
}
