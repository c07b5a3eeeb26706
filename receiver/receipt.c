/* SPDX-License-Identifier: MIT */
/* The receipt log: a hash-chained JSON Lines file that is only ever appended
 * to, its recovery after a crash, its Ed25519-signed checkpoints, and the
 * strict line parsers the verifier (tools/receipts.c) and the fuzzers share. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/keys.h"
#include "common/util.h"
#include "receipt.h"

_Static_assert(RECEIPT_HASH_LEN == crypto_generichash_BYTES, "BLAKE2b-256");
_Static_assert(RECEIPT_KEYID_LEN == KEYID_LEN, "key id");
_Static_assert(RECEIPT_SIG_LEN == crypto_sign_BYTES, "Ed25519 signature");
_Static_assert(sizeof(RECEIPT_CP_DOMAIN) + 8 + RECEIPT_HASH_LEN + RECEIPT_TIME_LEN +
                       RECEIPT_KEYID_LEN ==
                   RECEIPT_CP_MSG_LEN,
               "checkpoint message layout");

#define TIME_LEN RECEIPT_TIME_LEN
#define TIME_BUF 96 /* room for any int fields, to keep -Wformat-truncation quiet */

struct receipt_log {
	pthread_mutex_t mu;
	int fd;
	uint64_t n;                     /* n of the last good line; 0 before the first */
	uint8_t head[RECEIPT_HASH_LEN]; /* its hash; zeros before the first */
	uint64_t size;                  /* bytes in the file, as far as we know */
	bool ends_nl;                   /* the file is empty or ends with '\n' */
	bool damaged;                   /* a "log-damaged" record is owed */
	uint64_t damage_off;            /* where the untrusted bytes start */

	/* checkpoints; sk is NULL until receipt_set_signing_key */
	uint8_t *sk; /* sodium_malloc'd Ed25519 seed||pk */
	uint8_t keyid[RECEIPT_KEYID_LEN];
	uint64_t cp_n;  /* records up to this n are covered by a checkpoint */
	uint64_t every; /* policy, 0 = off */
	uint64_t interval_ns, idle_ns;
	bool pending; /* receipt_tick has seen records not yet covered */
	uint64_t pending_since, seen_n, seen_at;
};

struct receipt_rec {
	struct receipt_log *log;
	char *buf; /* "event" then ,"key":value for each field */
	size_t len, cap;
	int err; /* first error while building; commit returns it */
};

static const char hexdigits[] = "0123456789abcdef";

/* ---- record builder ----------------------------------------------------- */

static bool reserve(struct receipt_rec *r, size_t extra)
{
	size_t cap;
	char *p;

	if (r->err)
		return false;
	if (extra > RECEIPT_LINE_MAX || r->len + extra > RECEIPT_LINE_MAX) {
		r->err = -E2BIG;
		return false;
	}
	if (r->len + extra <= r->cap)
		return true;
	cap = r->cap ? r->cap : 256;
	while (cap < r->len + extra)
		cap *= 2;
	p = realloc(r->buf, cap);
	if (!p) {
		r->err = -ENOMEM;
		return false;
	}
	r->buf = p;
	r->cap = cap;
	return true;
}

static void put(struct receipt_rec *r, const char *s, size_t n)
{
	if (!reserve(r, n))
		return;
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

static bool plain(uint8_t c)
{
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

/* A quoted JSON string of arbitrary bytes, pure printable ASCII on output.
 * The exact size is measured first so a long but mostly plain string is not
 * refused for what its worst case would have needed. */
static void put_quoted(struct receipt_rec *r, const uint8_t *s, size_t n)
{
	size_t need = 2;
	char *o;

	for (size_t i = 0; i < n; i++)
		need += plain(s[i]) ? 1 : (s[i] == '"' || s[i] == '\\') ? 2 : 6;
	if (!reserve(r, need))
		return;
	o = r->buf + r->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (plain(c)) {
			*o++ = (char)c;
		} else if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else {
			memcpy(o, "\\u00", 4);
			o[4] = hexdigits[c >> 4];
			o[5] = hexdigits[c & 15];
			o += 6;
		}
	}
	*o++ = '"';
	r->len += need;
}

static bool reserved_key(const char *key)
{
	return !strcmp(key, "n") || !strcmp(key, "time") || !strcmp(key, "event") ||
	       !strcmp(key, "prev");
}

/* ,"key": — false (and nothing written) when the record is already failed. */
static bool put_key(struct receipt_rec *r, const char *key)
{
	if (!r || r->err)
		return false;
	if (!key || reserved_key(key)) {
		/* a second "prev" would make the line ambiguous to the verifier */
		r->err = -EINVAL;
		return false;
	}
	put(r, ",", 1);
	put_quoted(r, (const uint8_t *)key, strlen(key));
	put(r, ":", 1);
	return !r->err;
}

static void rec_init(struct receipt_rec *r, struct receipt_log *log, const char *event)
{
	memset(r, 0, sizeof(*r));
	r->log = log;
	if (!event) {
		r->err = -EINVAL;
		return;
	}
	put_quoted(r, (const uint8_t *)event, strlen(event));
}

struct receipt_rec *receipt_begin(struct receipt_log *log, const char *event)
{
	struct receipt_rec *r;

	if (!log)
		return NULL;
	r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	rec_init(r, log, event);
	/* Only the log writes these: a "checkpoint" from elsewhere would be
	 * an unsigned look-alike, a "log-damaged" one would hide bytes. */
	if (event && (!strcmp(event, "checkpoint") || !strcmp(event, "log-damaged")))
		r->err = -EINVAL;
	return r;
}

void receipt_str(struct receipt_rec *r, const char *key, const char *val)
{
	if (!put_key(r, key))
		return;
	if (val)
		put_quoted(r, (const uint8_t *)val, strlen(val));
	else
		put(r, "null", 4);
}

void receipt_strn(struct receipt_rec *r, const char *key, const uint8_t *val, size_t len)
{
	if (!put_key(r, key))
		return;
	if (val || len == 0)
		put_quoted(r, val, val ? len : 0);
	else
		put(r, "null", 4);
}

void receipt_u64(struct receipt_rec *r, const char *key, uint64_t val)
{
	char tmp[24];
	int len;

	if (!put_key(r, key))
		return;
	len = snprintf(tmp, sizeof(tmp), "%" PRIu64, val);
	put(r, tmp, (size_t)len);
}

void receipt_hex(struct receipt_rec *r, const char *key, const uint8_t *bytes, size_t n)
{
	char *o;

	if (!put_key(r, key))
		return;
	if (n > RECEIPT_LINE_MAX / 2 || !reserve(r, 2 * n + 2)) {
		if (!r->err)
			r->err = -E2BIG;
		return;
	}
	o = r->buf + r->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		*o++ = hexdigits[bytes[i] >> 4];
		*o++ = hexdigits[bytes[i] & 15];
	}
	*o = '"';
	r->len += 2 * n + 2;
}

void receipt_double(struct receipt_rec *r, const char *key, double v)
{
	char tmp[400]; /* DBL_MAX in %.4f is 309 digits, a sign and ".0000" */
	int len;

	if (!put_key(r, key))
		return;
	if (!isfinite(v)) { /* JSON has no NaN or Infinity */
		put(r, "null", 4);
		return;
	}
	len = snprintf(tmp, sizeof(tmp), "%.4f", v);
	if (len < 0 || (size_t)len >= sizeof(tmp)) {
		r->err = -E2BIG;
		return;
	}
	put(r, tmp, (size_t)len);
}

/* ---- appending ---------------------------------------------------------- */

/* RFC 3339 UTC with milliseconds. The year is clamped to four digits so a
 * wild clock cannot produce a line the parser would call damaged. */
static void format_time(char out[TIME_BUF])
{
	struct timespec ts;
	struct tm tm;
	int year;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	year = tm.tm_year + 1900;
	year = year < 0 ? 0 : year > 9999 ? 9999 : year;
	snprintf(out, TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", year, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000));
}

static void note_damage(struct receipt_log *log, uint64_t off)
{
	if (!log->damaged) {
		log->damaged = true;
		log->damage_off = off;
	}
}

/* Assemble {"n":..,"time":..,"event":<r->buf>,"prev":".."} and append it
 * with one write(2) and an fdatasync. If the file does not end in '\n' (only
 * while damage is owed), a '\n' goes first in the same write so the record
 * is a line of its own. time is the record's time (a checkpoint signs it),
 * NULL for now. Called with log->mu held. */
static int append_line(struct receipt_log *log, const struct receipt_rec *r, const char *time)
{
	static const char mid[] = ",\"prev\":\"";
	char prefix[96], when[TIME_BUF];
	uint8_t hash[RECEIPT_HASH_LEN];
	size_t lead = log->ends_nl ? 0 : 1, plen, linelen, total;
	char *buf, *o;
	ssize_t w;
	int rc = 0;

	if (time)
		snprintf(when, sizeof(when), "%s", time);
	else
		format_time(when);
	plen = (size_t)snprintf(prefix, sizeof(prefix),
	                        "{\"n\":%" PRIu64 ",\"time\":\"%s\",\"event\":", log->n + 1, when);
	if (plen >= sizeof(prefix))
		return -EOVERFLOW;
	linelen = plen + r->len + (sizeof(mid) - 1) + 2 * RECEIPT_HASH_LEN + 2;
	if (linelen + 1 > RECEIPT_LINE_MAX)
		return -E2BIG;
	total = lead + linelen + 1;
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	o = buf;
	if (lead)
		*o++ = '\n';
	memcpy(o, prefix, plen);
	o += plen;
	memcpy(o, r->buf, r->len);
	o += r->len;
	memcpy(o, mid, sizeof(mid) - 1);
	o += sizeof(mid) - 1;
	for (size_t i = 0; i < RECEIPT_HASH_LEN; i++) {
		*o++ = hexdigits[log->head[i] >> 4];
		*o++ = hexdigits[log->head[i] & 15];
	}
	*o++ = '"';
	*o++ = '}';
	*o = '\n';
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)buf + lead, linelen, NULL, 0);

	do
		w = write(log->fd, buf, total);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		rc = -errno; /* nothing was written */
		goto out;
	}
	if ((size_t)w < total) {
		/* Disk full or file too big part-way through: a fragment is in
		 * the file now. It stays there; the next record reports it. */
		if (w > 0) {
			note_damage(log, log->size);
			log->size += (uint64_t)w;
			log->ends_nl = false;
		}
		rc = -EIO;
		goto out;
	}
	log->size += total;
	log->ends_nl = true;
	if (fdatasync(log->fd) < 0) {
		/* The line may or may not reach the disk: it cannot be part of
		 * the chain, so it is reported as damage by the next record. */
		rc = -errno;
		note_damage(log, log->size - total);
		goto out;
	}
	log->n++;
	memcpy(log->head, hash, sizeof(hash));
out:
	free(buf);
	return rc;
}

/* The record owed after damage: where it starts and how long it is. */
static int append_damage(struct receipt_log *log)
{
	struct receipt_rec r;
	uint64_t end = log->size + (log->ends_nl ? 0 : 1);
	int rc;

	rec_init(&r, log, "log-damaged");
	receipt_u64(&r, "offset", log->damage_off);
	receipt_u64(&r, "bytes", end - log->damage_off);
	rc = r.err ? r.err : append_line(log, &r, NULL);
	free(r.buf);
	if (rc == 0)
		log->damaged = false;
	return rc;
}

/* ---- checkpoints -------------------------------------------------------- */

void receipt_checkpoint_message(uint8_t out[static RECEIPT_CP_MSG_LEN],
                                const struct receipt_checkpoint *cp)
{
	uint8_t *o = out;

	memcpy(o, RECEIPT_CP_DOMAIN, sizeof(RECEIPT_CP_DOMAIN)); /* with its NUL */
	o += sizeof(RECEIPT_CP_DOMAIN);
	for (int i = 0; i < 8; i++)
		*o++ = (uint8_t)(cp->records >> (8 * i));
	memcpy(o, cp->head, RECEIPT_HASH_LEN);
	o += RECEIPT_HASH_LEN;
	memcpy(o, cp->time, RECEIPT_TIME_LEN);
	o += RECEIPT_TIME_LEN;
	memcpy(o, cp->key, RECEIPT_KEYID_LEN);
}

/* Sign the head as it is now and append the checkpoint that says so. Any
 * owed damage record goes first: the checkpoint then covers it too. Called
 * with log->mu held and a key set. */
static int append_checkpoint(struct receipt_log *log)
{
	struct receipt_checkpoint cp = {0};
	uint8_t msg[RECEIPT_CP_MSG_LEN];
	char when[TIME_BUF];
	struct receipt_rec r;
	int rc = 0;

	if (log->damaged) {
		rc = append_damage(log);
		if (rc < 0)
			return rc;
	}
	format_time(when);
	memcpy(cp.time, when, RECEIPT_TIME_LEN);
	cp.records = log->n;
	memcpy(cp.head, log->head, RECEIPT_HASH_LEN);
	memcpy(cp.key, log->keyid, RECEIPT_KEYID_LEN);
	receipt_checkpoint_message(msg, &cp);
	if (crypto_sign_detached(cp.sig, NULL, msg, sizeof(msg), log->sk) != 0)
		return -EIO;

	rec_init(&r, log, "checkpoint");
	receipt_u64(&r, "records", cp.records);
	receipt_hex(&r, "head", cp.head, RECEIPT_HASH_LEN);
	receipt_hex(&r, "key", cp.key, RECEIPT_KEYID_LEN);
	receipt_hex(&r, "sig", cp.sig, RECEIPT_SIG_LEN);
	rc = r.err ? r.err : append_line(log, &r, when);
	free(r.buf);
	if (rc == 0) {
		log->cp_n = log->n;
		log->pending = false;
	}
	return rc;
}

int receipt_set_signing_key(struct receipt_log *log, const uint8_t sk[static 64],
                            const uint8_t pk[static 32])
{
	uint8_t seed[crypto_sign_SEEDBYTES], derived[crypto_sign_PUBLICKEYBYTES];
	uint8_t *copy = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	/* The seed is what signs: derive its public half rather than trust
	 * the copy stored in sk, so a mismatched pair is refused here and not
	 * discovered later by an auditor whose checkpoints never verify. */
	crypto_sign_ed25519_sk_to_seed(seed, sk);
	if (crypto_sign_seed_keypair(derived, copy, seed) != 0 ||
	    sodium_memcmp(derived, pk, sizeof(derived)) != 0) {
		rc = -EINVAL;
		goto out;
	}
	pthread_mutex_lock(&log->mu);
	sodium_free(log->sk); /* wipes the previous key, if any */
	log->sk = copy;
	copy = NULL;
	key_id(log->keyid, pk);
	pthread_mutex_unlock(&log->mu);
out:
	sodium_free(copy); /* sodium_free wipes; NULL is fine */
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

void receipt_set_checkpoint_policy(struct receipt_log *log, uint64_t every_records,
                                   uint64_t interval_ns, uint64_t idle_ns)
{
	pthread_mutex_lock(&log->mu);
	log->every = every_records;
	log->interval_ns = interval_ns;
	log->idle_ns = idle_ns;
	pthread_mutex_unlock(&log->mu);
}

int receipt_checkpoint(struct receipt_log *log)
{
	int rc;

	if (!log)
		return -EINVAL;
	pthread_mutex_lock(&log->mu);
	if (!log->sk)
		rc = -ENOKEY;
	else if (log->n == log->cp_n && !log->damaged)
		rc = 0;
	else if ((rc = append_checkpoint(log)) == 0)
		rc = 1;
	pthread_mutex_unlock(&log->mu);
	return rc;
}

int receipt_tick(struct receipt_log *log, uint64_t now)
{
	bool due;
	int rc = 0;

	if (!log)
		return -EINVAL;
	pthread_mutex_lock(&log->mu);
	if (!log->sk || (log->n == log->cp_n && !log->damaged)) {
		log->pending = false;
		goto out;
	}
	if (!log->pending) {
		log->pending = true;
		log->pending_since = log->seen_at = now;
		log->seen_n = log->n;
	} else if (log->seen_n != log->n) {
		log->seen_n = log->n;
		log->seen_at = now;
	}
	due = (log->interval_ns && now - log->pending_since >= log->interval_ns) ||
	      (log->idle_ns && now - log->seen_at >= log->idle_ns);
	if (!due)
		goto out;
	rc = append_checkpoint(log);
	if (rc < 0) {
		/* disk full or the like: wait a whole period before retrying
		 * rather than failing every tick */
		log->pending_since = log->seen_at = now;
	} else {
		rc = 1;
	}
out:
	pthread_mutex_unlock(&log->mu);
	return rc;
}

int receipt_commit(struct receipt_rec *r)
{
	struct receipt_log *log;
	int rc;

	if (!r)
		return -ENOMEM;
	log = r->log;
	rc = r->err;
	if (rc == 0) {
		pthread_mutex_lock(&log->mu);
		if (log->damaged)
			rc = append_damage(log);
		if (rc == 0)
			rc = append_line(log, r, NULL);
		/* A failed checkpoint stays owed: the next commit or tick
		 * tries again. It does not make this record fail. */
		if (rc == 0 && log->sk && log->every && log->n - log->cp_n >= log->every)
			(void)append_checkpoint(log);
		pthread_mutex_unlock(&log->mu);
	}
	free(r->buf);
	free(r);
	return rc;
}

void receipt_head(const struct receipt_log *log, uint64_t *n, uint8_t hash[32])
{
	/* the mutex is the one mutable part of a const log */
	pthread_mutex_t *mu = (pthread_mutex_t *)&log->mu;

	pthread_mutex_lock(mu);
	if (n)
		*n = log->n;
	if (hash)
		memcpy(hash, log->head, RECEIPT_HASH_LEN);
	pthread_mutex_unlock(mu);
}

/* ---- opening and recovery ----------------------------------------------- */

/* Offset of the last '\n' before `before`, or -1 when there is none. */
static int find_nl(int fd, uint64_t before, char *buf, int64_t *nl)
{
	while (before > 0) {
		size_t len = before < RECEIPT_LINE_MAX ? (size_t)before : RECEIPT_LINE_MAX;
		uint64_t off = before - len;
		int rc = pread_full(fd, buf, len, (off_t)off);

		if (rc < 0)
			return rc;
		for (size_t i = len; i-- > 0;) {
			if (buf[i] == '\n') {
				*nl = (int64_t)(off + i);
				return 0;
			}
		}
		before = off;
	}
	*nl = -1;
	return 0;
}

/* Walk back from the end to the last line that is complete and parses; it
 * is the head of the chain. Everything after it is damage, reported by the
 * next record rather than cut off: history is never rewritten. */
static int recover(struct receipt_log *log, uint64_t size)
{
	uint64_t end = size; /* the line examined is [start, end), '\n' at end */
	bool complete = true, found = false;
	char last;
	char *buf;
	int rc = 0;

	log->size = size;
	log->ends_nl = true;
	if (size == 0)
		return 0;
	buf = malloc(RECEIPT_LINE_MAX);
	if (!buf)
		return -ENOMEM;
	rc = pread_full(log->fd, &last, 1, (off_t)(size - 1));
	if (rc < 0)
		goto out;
	if (last == '\n')
		end = size - 1;
	else
		log->ends_nl = complete = false; /* crash mid-write */
	for (;;) {
		int64_t nl;
		uint64_t start;

		rc = find_nl(log->fd, end, buf, &nl);
		if (rc < 0)
			goto out;
		start = (uint64_t)(nl + 1);
		if (complete && end - start < RECEIPT_LINE_MAX) {
			rc = pread_full(log->fd, buf, (size_t)(end - start), (off_t)start);
			if (rc < 0)
				goto out;
			if (receipt_parse_line(buf, (size_t)(end - start), &log->n, NULL, 0,
			                       NULL) == 0) {
				struct receipt_checkpoint cp;

				crypto_generichash(log->head, RECEIPT_HASH_LEN, (uint8_t *)buf,
				                   (size_t)(end - start), NULL, 0);
				/* Ending in a checkpoint: nothing is owed. Otherwise
				 * cp_n stays 0 and the first checkpoint of this run
				 * covers whatever the last one left uncovered. */
				if (receipt_parse_checkpoint(buf, (size_t)(end - start), &cp) == 0)
					log->cp_n = log->n;
				found = true;
				break;
			}
		}
		if (nl < 0)
			break;
		end = (uint64_t)nl;
		complete = true;
	}
	if (!found) {
		log->n = 0;
		memset(log->head, 0, sizeof(log->head));
		note_damage(log, 0);
	} else if (end + 1 < size) {
		note_damage(log, end + 1);
	}
out:
	free(buf);
	return rc;
}

int receipt_open(struct receipt_log **out, const char *path, char *err, size_t errlen)
{
	struct receipt_log *log;
	struct stat sb;
	int rc;

	*out = NULL;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "cannot initialise libsodium");
		return -EIO;
	}
	log = calloc(1, sizeof(*log));
	if (!log) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* O_RDWR: the last line is read back to recover the chain */
	log->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (log->fd < 0) {
		rc = -errno;
		if (rc == -ELOOP)
			snprintf(err, errlen, "receipt log %s is a symbolic link; refusing it",
			         path);
		else
			snprintf(err, errlen, "cannot open the receipt log %s: %s%s", path,
			         strerror(-rc), path_hint(-rc));
		free(log);
		return rc;
	}
	if (fstat(log->fd, &sb) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat receipt log %s: %s", path, strerror(-rc));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "receipt log %s is not a regular file", path);
		goto fail;
	}
	/* Two writers would both chain to the same head and fork the log. */
	if (flock(log->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, "receipt log %s is in use by another process: %s", path,
		         strerror(-rc));
		goto fail;
	}
	log->every = RECEIPT_CP_EVERY_RECORDS;
	log->interval_ns = RECEIPT_CP_INTERVAL_NS;
	log->idle_ns = RECEIPT_CP_IDLE_NS;
	rc = recover(log, (uint64_t)sb.st_size);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read receipt log %s: %s", path, strerror(-rc));
		goto fail;
	}
	rc = pthread_mutex_init(&log->mu, NULL);
	if (rc) {
		rc = -rc;
		snprintf(err, errlen, "cannot create a mutex: %s", strerror(-rc));
		goto fail;
	}
	*out = log;
	return 0;
fail:
	close(log->fd);
	free(log);
	return rc;
}

void receipt_close(struct receipt_log *log)
{
	if (!log)
		return;
	close(log->fd); /* also drops the flock */
	pthread_mutex_destroy(&log->mu);
	sodium_free(log->sk); /* sodium_memzero's the signing key, then unmaps it */
	free(log);
}

/* ---- parsing ------------------------------------------------------------ */

struct cursor {
	const char *p;
	size_t len, i;
};

static int peek(const struct cursor *c)
{
	return c->i < c->len ? (unsigned char)c->p[c->i] : -1;
}

static bool eat(struct cursor *c, const char *lit)
{
	size_t n = strlen(lit);

	if (c->len - c->i < n || memcmp(c->p + c->i, lit, n) != 0)
		return false;
	c->i += n;
	return true;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

#define ODD_NUL  1 /* a \u0000 */
#define ODD_WIDE 2 /* a \u escape above 0xff: not a byte we can store */

/* A JSON string at the cursor, quotes included. Up to cap-1 decoded bytes go
 * to out (if any), NUL-terminated; *dlen gets the full decoded length and
 * *odd the ODD_ flags of what it held. Raw bytes must be printable ASCII:
 * the writer emits nothing else. */
static bool scan_string(struct cursor *c, char *out, size_t cap, size_t *dlen, int *odd)
{
	size_t d = 0;

	*odd = 0;
	if (peek(c) != '"')
		return false;
	c->i++;
	for (;;) {
		int ch = peek(c);
		unsigned v;

		if (ch < 0x20 || ch > 0x7e)
			return false; /* end of input, control or non-ASCII byte */
		c->i++;
		if (ch == '"')
			break;
		if (ch == '\\') {
			ch = peek(c);
			c->i++;
			switch (ch) {
			case '"':
			case '\\':
			case '/':
				v = (unsigned)ch;
				break;
			case 'b':
				v = '\b';
				break;
			case 'f':
				v = '\f';
				break;
			case 'n':
				v = '\n';
				break;
			case 'r':
				v = '\r';
				break;
			case 't':
				v = '\t';
				break;
			case 'u':
				v = 0;
				for (int k = 0; k < 4; k++) {
					int h = hexval(peek(c));

					if (h < 0)
						return false;
					v = v << 4 | (unsigned)h;
					c->i++;
				}
				break;
			default:
				return false;
			}
		} else {
			v = (unsigned)ch;
		}
		if (v == 0)
			*odd |= ODD_NUL;
		if (v > 0xff)
			*odd |= ODD_WIDE;
		if (out && d + 1 < cap)
			out[d] = (char)v;
		d++;
	}
	if (out && cap)
		out[d < cap ? d : cap - 1] = '\0';
	*dlen = d;
	return true;
}

static bool scan_digits(struct cursor *c)
{
	size_t start = c->i;

	while (peek(c) >= '0' && peek(c) <= '9')
		c->i++;
	return c->i > start;
}

/* JSON number grammar (RFC 8259, section 6). */
static bool scan_number(struct cursor *c)
{
	if (peek(c) == '-')
		c->i++;
	if (peek(c) == '0')
		c->i++;
	else if (!scan_digits(c))
		return false;
	if (peek(c) == '.') {
		c->i++;
		if (!scan_digits(c))
			return false;
	}
	if (peek(c) == 'e' || peek(c) == 'E') {
		c->i++;
		if (peek(c) == '+' || peek(c) == '-')
			c->i++;
		if (!scan_digits(c))
			return false;
	}
	return true;
}

/* Any scalar; objects and arrays are not something the writer produces. */
static bool scan_value(struct cursor *c)
{
	size_t dlen;
	int odd;

	if (peek(c) == '"')
		return scan_string(c, NULL, 0, &dlen, &odd);
	if (eat(c, "true") || eat(c, "false") || eat(c, "null"))
		return true;
	return scan_number(c);
}

static bool scan_u64(struct cursor *c, uint64_t *out)
{
	uint64_t v = 0;
	size_t start = c->i;

	while (peek(c) >= '0' && peek(c) <= '9') {
		unsigned dgt = (unsigned)(peek(c) - '0');

		if (c->i > start && v == 0)
			return false; /* leading zero */
		if (v > (UINT64_MAX - dgt) / 10)
			return false;
		v = v * 10 + dgt;
		c->i++;
	}
	*out = v;
	return c->i > start;
}

/* Exactly the form the writer uses: "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static bool scan_time(struct cursor *c, char out[RECEIPT_TIME_LEN + 1])
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (peek(c) != '"' || c->len - c->i < TIME_LEN + 2)
		return false;
	for (size_t k = 0; k < TIME_LEN; k++) {
		char ch = c->p[c->i + 1 + k];

		if (shape[k] == 'd' ? !(ch >= '0' && ch <= '9') : ch != shape[k])
			return false;
	}
	if (c->p[c->i + 1 + TIME_LEN] != '"')
		return false;
	if (out) {
		memcpy(out, c->p + c->i + 1, TIME_LEN);
		out[TIME_LEN] = '\0';
	}
	c->i += TIME_LEN + 2;
	return true;
}

/* "<2n lower-case hex digits>" into n bytes. */
static bool scan_hex(struct cursor *c, uint8_t *out, size_t n)
{
	if (peek(c) != '"' || c->len - c->i < 2 * n + 2)
		return false;
	c->i++;
	for (size_t k = 0; k < n; k++) {
		int hi = c->p[c->i], lo = c->p[c->i + 1];

		/* lower case only: one hash, one spelling */
		if (hexval(hi) < 0 || hexval(lo) < 0 || (hi >= 'A' && hi <= 'F') ||
		    (lo >= 'A' && lo <= 'F'))
			return false;
		out[k] = (uint8_t)(hexval(hi) << 4 | hexval(lo));
		c->i += 2;
	}
	if (peek(c) != '"')
		return false;
	c->i++;
	return true;
}

static bool scan_prev(struct cursor *c, uint8_t out[RECEIPT_HASH_LEN])
{
	return scan_hex(c, out, RECEIPT_HASH_LEN);
}

int receipt_parse_line(const char *line, size_t len, uint64_t *n, char *event, size_t eventlen,
                       uint8_t prev[32])
{
	struct cursor c = {.p = line, .len = len, .i = 0};
	uint8_t hash[RECEIPT_HASH_LEN];
	uint64_t num;
	size_t dlen;
	int odd;

	if (event && eventlen)
		event[0] = '\0';
	if (!line)
		return -EINVAL;
	if (!eat(&c, "{\"n\":") || !scan_u64(&c, &num))
		return -EINVAL;
	if (!eat(&c, ",\"time\":") || !scan_time(&c, NULL))
		return -EINVAL;
	if (!eat(&c, ",\"event\":") || !scan_string(&c, event, eventlen, &dlen, &odd) || odd)
		return -EINVAL;
	if (event && dlen >= eventlen)
		return -EINVAL;
	for (;;) {
		char key[8];

		if (!eat(&c, ","))
			return -EINVAL;
		if (!scan_string(&c, key, sizeof(key), &dlen, &odd) || !eat(&c, ":"))
			return -EINVAL;
		if (dlen < sizeof(key) && !odd && !strcmp(key, "prev"))
			break;
		if (dlen < sizeof(key) && !odd && reserved_key(key))
			return -EINVAL;
		if (!scan_value(&c))
			return -EINVAL;
	}
	/* "prev" is the last key: nothing may follow its value but '}' */
	if (!scan_prev(&c, hash) || !eat(&c, "}") || c.i != c.len)
		return -EINVAL;
	if (n)
		*n = num;
	if (prev)
		memcpy(prev, hash, sizeof(hash));
	return 0;
}

int receipt_parse_checkpoint(const char *line, size_t len, struct receipt_checkpoint *cp)
{
	struct cursor c = {.p = line, .len = len, .i = 0};
	struct receipt_checkpoint v;

	if (!line)
		return -EINVAL;
	/* One spelling only, the writer's: with every field signed or
	 * derived from signed ones, the whole line is authenticated. */
	if (!eat(&c, "{\"n\":") || !scan_u64(&c, &v.n) || !eat(&c, ",\"time\":") ||
	    !scan_time(&c, v.time) || !eat(&c, ",\"event\":\"checkpoint\",\"records\":") ||
	    !scan_u64(&c, &v.records) || !eat(&c, ",\"head\":") ||
	    !scan_hex(&c, v.head, RECEIPT_HASH_LEN) || !eat(&c, ",\"key\":") ||
	    !scan_hex(&c, v.key, RECEIPT_KEYID_LEN) || !eat(&c, ",\"sig\":") ||
	    !scan_hex(&c, v.sig, RECEIPT_SIG_LEN) || !eat(&c, ",\"prev\":") ||
	    !scan_prev(&c, v.prev) || !eat(&c, "}") || c.i != c.len)
		return -EINVAL;
	if (cp)
		*cp = v;
	return 0;
}

int receipt_checkpoint_verify(const struct receipt_checkpoint *cp, const uint8_t pk[static 32])
{
	uint8_t msg[RECEIPT_CP_MSG_LEN], id[KEYID_LEN];

	if (cp->n == 0 || cp->records != cp->n - 1 ||
	    sodium_memcmp(cp->head, cp->prev, RECEIPT_HASH_LEN) != 0)
		return -EINVAL;
	key_id(id, pk);
	if (sodium_memcmp(id, cp->key, KEYID_LEN) != 0)
		return -EKEYREJECTED; /* "checked against wrong key", as signify says */
	receipt_checkpoint_message(msg, cp);
	if (crypto_sign_verify_detached(cp->sig, msg, sizeof(msg), pk) != 0)
		return -EBADMSG;
	return 0;
}

/* The value of key in a line receipt_parse_line accepts: the cursor is
 * left on it. -ENOENT, or -EINVAL when the key occurs twice. */
static int find_field(const char *line, size_t len, const char *key, struct cursor *at)
{
	struct cursor c = {.p = line, .len = len, .i = 0};
	size_t klen = strlen(key);
	bool found = false;

	if (receipt_parse_line(line, len, NULL, NULL, 0, NULL) != 0)
		return -EINVAL;
	if (!eat(&c, "{"))
		return -EINVAL;
	/* The line is valid, so this walk over "key":value pairs cannot fail
	 * part-way; it checks anyway rather than rely on it. */
	for (;;) {
		char name[64];
		size_t dlen;
		int odd;

		if (!scan_string(&c, name, sizeof(name), &dlen, &odd) || !eat(&c, ":"))
			return -EINVAL;
		if (!odd && dlen == klen && dlen < sizeof(name) && !memcmp(name, key, klen)) {
			if (found)
				return -EINVAL;
			found = true;
			*at = c;
		}
		if (!scan_value(&c))
			return -EINVAL;
		if (eat(&c, "}"))
			break;
		if (!eat(&c, ","))
			return -EINVAL;
	}
	return found ? 0 : -ENOENT;
}

/* The value of key as a cursor at its first byte; -ENODATA for null. */
static int value_of(const char *line, size_t len, const char *key, struct cursor *c)
{
	int rc;

	if (!line || !key)
		return -EINVAL;
	rc = find_field(line, len, key, c);
	if (rc < 0)
		return rc;
	return eat(c, "null") ? -ENODATA : 0;
}

int receipt_get_str(const char *line, size_t len, const char *key, char *out, size_t cap,
                    size_t *outlen)
{
	struct cursor c;
	size_t dlen;
	int odd, rc;

	if (!out || cap == 0)
		return -EINVAL;
	out[0] = '\0';
	rc = value_of(line, len, key, &c);
	if (rc < 0)
		return rc;
	if (!scan_string(&c, out, cap, &dlen, &odd) || (odd & ODD_WIDE))
		return -EINVAL;
	if (dlen >= cap) {
		out[0] = '\0';
		return -E2BIG;
	}
	if (outlen)
		*outlen = dlen;
	return 0;
}

int receipt_get_double(const char *line, size_t len, const char *key, double *val)
{
	struct cursor c;
	char num[32], *end;
	size_t n = 0;
	int rc = value_of(line, len, key, &c);

	if (rc < 0)
		return rc;
	while (c.i < c.len && n < sizeof(num) - 1 &&
	       (c.p[c.i] == '-' || c.p[c.i] == '.' || (c.p[c.i] >= '0' && c.p[c.i] <= '9')))
		num[n++] = c.p[c.i++];
	num[n] = '\0';
	if (n == 0 || (peek(&c) != ',' && peek(&c) != '}'))
		return -EINVAL;
	double v = strtod(num, &end);
	if (*end)
		return -EINVAL;
	if (val)
		*val = v;
	return 0;
}

int receipt_get_u64(const char *line, size_t len, const char *key, uint64_t *val)
{
	struct cursor c;
	uint64_t v;
	int rc = value_of(line, len, key, &c);

	if (rc < 0)
		return rc;
	/* a fraction or exponent is not an integer: the value must end here */
	if (!scan_u64(&c, &v) || (peek(&c) != ',' && peek(&c) != '}'))
		return -EINVAL;
	if (val)
		*val = v;
	return 0;
}
