/* SPDX-License-Identifier: MIT */
/* Receipt log: escaping of hostile strings, the hash chain across records,
 * reopen and crash recovery ("log-damaged"), size limits, two threads
 * logging at once, the strict line parser against malformed lines, signed
 * checkpoints (when they are written, what they sign, and that changing any
 * byte of a checkpointed record is detected), and the field getters. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/keys.h"
#include "receiver/receipt.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/test_receipt.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/receipts.jsonl", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

/* ---- reading the log back independently --------------------------------- */

struct line {
	const char *p;
	size_t len;
	size_t off; /* byte offset in the file */
};

struct logfile {
	char *data;
	size_t size;
	struct line lines[1024];
	size_t count;
};

static void load(struct logfile *lf)
{
	struct stat sb;
	int fd = open(path, O_RDONLY);
	size_t start = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	lf->size = (size_t)sb.st_size;
	lf->data = malloc(lf->size + 1);
	assert_non_null(lf->data);
	assert_int_equal(read(fd, lf->data, lf->size), (ssize_t)lf->size);
	close(fd);
	lf->count = 0;
	for (size_t i = 0; i < lf->size; i++) {
		if (lf->data[i] != '\n')
			continue;
		assert_true(lf->count < 1024);
		lf->lines[lf->count++] = (struct line){lf->data + start, i - start, start};
		start = i + 1;
	}
	assert_int_equal(start, lf->size); /* the file ends with a newline */
}

static void hash_line(const struct line *l, uint8_t out[32])
{
	crypto_generichash(out, 32, (const uint8_t *)l->p, l->len, NULL, 0);
}

/* Lines [from, to) are good: pure printable ASCII, parse, n counts up from
 * first_n, and each prev is the hash of the line before (or want_prev). */
static void check_chain(const struct logfile *lf, size_t from, size_t to, uint64_t first_n,
                        const uint8_t want_prev[32])
{
	uint8_t expect[32], prev[32];

	memcpy(expect, want_prev, 32);
	for (size_t i = from; i < to; i++) {
		const struct line *l = &lf->lines[i];
		char event[64];
		uint64_t n;

		for (size_t k = 0; k < l->len; k++)
			assert_true(l->p[k] >= 0x20 && l->p[k] <= 0x7e);
		assert_int_equal(receipt_parse_line(l->p, l->len, &n, event, sizeof(event), prev),
		                 0);
		assert_int_equal(n, first_n + (i - from));
		assert_memory_equal(prev, expect, 32);
		hash_line(l, expect);
	}
}

static bool contains(const struct line *l, const char *s)
{
	return memmem(l->p, l->len, s, strlen(s)) != NULL;
}

static const uint8_t zeros[32];

/* ---- tests -------------------------------------------------------------- */

static void append_tricky(struct receipt_log *log)
{
	uint8_t all[256], h[32];
	struct receipt_rec *r;

	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	r = receipt_begin(log, "start");
	assert_int_equal(receipt_commit(r), 0);

	r = receipt_begin(log, "published");
	receipt_str(r, "q", "say \"hi\"\\ back\nnext\tline\r\x01\x1f\x7f");
	receipt_strn(r, "name", (const uint8_t *)"a\0b\x80\xff\"", 6);
	receipt_u64(r, "size", UINT64_MAX);
	memset(h, 0xab, sizeof(h));
	receipt_hex(r, "blake2b", h, 4);
	receipt_double(r, "fec_margin_pct", 12.5);
	receipt_double(r, "nan", NAN);
	receipt_str(r, "none", NULL);
	assert_int_equal(receipt_commit(r), 0);

	r = receipt_begin(log, "rejected \"odd\"\n");
	receipt_strn(r, "all", all, sizeof(all));
	receipt_strn(r, "empty", all, 0);
	assert_int_equal(receipt_commit(r), 0);

	r = receipt_begin(log, "stop");
	receipt_str(r, "reason", "");
	assert_int_equal(receipt_commit(r), 0);
}

static void test_chain(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256], event[64];
	uint8_t head[32], h[32];
	uint64_t n;
	struct stat sb;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	receipt_head(log, &n, head);
	assert_int_equal(n, 0);
	assert_memory_equal(head, zeros, 32);
	append_tricky(log);
	receipt_head(log, &n, head);
	receipt_close(log);

	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0077 & ~0040, 0); /* 0640 at most */
	load(&lf);
	assert_int_equal(lf.count, 4);
	check_chain(&lf, 0, 4, 1, zeros);
	assert_int_equal(n, 4);
	hash_line(&lf.lines[3], h);
	assert_memory_equal(head, h, 32);

	/* the escaping, byte for byte */
	assert_true(contains(&lf.lines[1], "\"q\":\"say \\\"hi\\\"\\\\ back\\u000anext\\u0009"
	                                   "line\\u000d\\u0001\\u001f\\u007f\""));
	assert_true(contains(&lf.lines[1], "\"name\":\"a\\u0000b\\u0080\\u00ff\\\"\""));
	assert_true(contains(&lf.lines[1], "\"size\":18446744073709551615,"));
	assert_true(contains(&lf.lines[1], "\"blake2b\":\"abababab\","));
	assert_true(contains(&lf.lines[1], "\"fec_margin_pct\":12.5000,"));
	assert_true(contains(&lf.lines[1], "\"nan\":null,\"none\":null,\"prev\":\""));
	assert_true(contains(&lf.lines[2], "\"empty\":\"\","));
	assert_true(contains(&lf.lines[2], "\\u00fe\\u00ff\""));
	/* field order is insertion order, between event and prev */
	assert_true(strstr(lf.lines[1].p, "\"q\":") < strstr(lf.lines[1].p, "\"name\":"));
	assert_true(strstr(lf.lines[1].p, "\"name\":") < strstr(lf.lines[1].p, "\"size\":"));
	assert_int_equal(memcmp(lf.lines[1].p, "{\"n\":2,\"time\":\"", 15), 0);

	/* the event round-trips through the parser */
	assert_int_equal(
	    receipt_parse_line(lf.lines[2].p, lf.lines[2].len, &n, event, sizeof(event), h), 0);
	assert_string_equal(event, "rejected \"odd\"\n");
	free(lf.data);
}

static void test_reopen(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256];
	uint8_t head[32], h[32];
	uint64_t n;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	append_tricky(log);
	receipt_close(log);

	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	receipt_head(log, &n, head);
	assert_int_equal(n, 4);
	assert_int_equal(receipt_commit(receipt_begin(log, "start")), 0);
	assert_int_equal(receipt_commit(receipt_begin(log, "stop")), 0);
	receipt_close(log);

	load(&lf);
	assert_int_equal(lf.count, 6);
	check_chain(&lf, 0, 6, 1, zeros);
	hash_line(&lf.lines[3], h);
	assert_memory_equal(head, h, 32);
	free(lf.data);
}

static void test_second_writer_refused(void **state)
{
	struct receipt_log *a, *b;
	char err[256];

	(void)state;
	assert_int_equal(receipt_open(&a, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_open(&b, path, err, sizeof(err)), -EBUSY);
	assert_null(b);
	receipt_close(a);
	assert_int_equal(receipt_open(&b, path, err, sizeof(err)), 0);
	receipt_close(b);
}

static void test_symlink_refused(void **state)
{
	struct receipt_log *log;
	char err[256], link[160];

	(void)state;
	snprintf(link, sizeof(link), "%s/link.jsonl", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(receipt_open(&log, link, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "symbolic link"));
	unlink(link);
}

static void append_raw(const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, len), (ssize_t)len);
	close(fd);
}

/* A crash mid-write leaves a line without its newline (the worst case: the
 * whole record but the newline, which parses). Reopen must not rewrite it,
 * and the next record must say where the damage is. */
static void crash_case(const char *tail, size_t taillen, size_t extra_bad)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256], event[64], want[96];
	uint8_t h[32];
	uint64_t n;
	size_t dmg, damage_off;

	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(receipt_commit(receipt_begin(log, "start")), 0);
	receipt_close(log);
	load(&lf);
	damage_off = lf.size;
	free(lf.data);
	append_raw(tail, taillen);

	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	receipt_head(log, &n, h);
	assert_int_equal(n, 3);
	assert_int_equal(receipt_commit(receipt_begin(log, "published")), 0);
	receipt_close(log);

	load(&lf);
	/* 3 good lines, the damage (one or more lines), log-damaged, published */
	dmg = 3 + extra_bad + 1;
	assert_int_equal(lf.count, dmg + 2);
	assert_int_equal(memcmp(lf.data + damage_off, tail, taillen), 0); /* history kept */
	check_chain(&lf, 0, 3, 1, zeros);
	hash_line(&lf.lines[2], h);
	check_chain(&lf, dmg, dmg + 2, 4, h); /* chained to the last good line */
	assert_int_equal(
	    receipt_parse_line(lf.lines[dmg].p, lf.lines[dmg].len, &n, event, sizeof(event), h), 0);
	assert_string_equal(event, "log-damaged");
	snprintf(want, sizeof(want), "\"offset\":%zu,\"bytes\":%zu,", damage_off,
	         lf.lines[dmg].off - damage_off);
	assert_true(contains(&lf.lines[dmg], want));
	free(lf.data);

	/* once reported, the damage is not reported again */
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_commit(receipt_begin(log, "stop")), 0);
	receipt_close(log);
	load(&lf);
	assert_int_equal(lf.count, dmg + 3);
	hash_line(&lf.lines[2], h);
	check_chain(&lf, dmg, dmg + 3, 4, h);
	free(lf.data);
}

static void test_crash_partial(void **state)
{
	static const char tail[] = "{\"n\":4,\"time\":\"2026-11-23T09:1";

	(void)state;
	crash_case(tail, sizeof(tail) - 1, 0);
}

static void test_crash_all_but_newline(void **state)
{
	/* parses, but without its newline it was never committed */
	char tail[200];
	int len = snprintf(tail, sizeof(tail),
	                   "{\"n\":4,\"time\":\"2026-11-23T09:14:02.137Z\",\"event\":\"x\","
	                   "\"prev\":\"%064d\"}",
	                   0);

	(void)state;
	crash_case(tail, (size_t)len, 0);
}

static void test_garbage_lines(void **state)
{
	static const char tail[] = "garbage\n\n{\"n\":5}\n";

	(void)state;
	/* three complete lines that do not parse: the damage spans all of them */
	crash_case(tail, sizeof(tail) - 1, 2);
}

static void test_all_damaged(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256];
	uint64_t n;

	(void)state;
	append_raw("junk", 4);
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_commit(receipt_begin(log, "start")), 0);
	receipt_close(log);
	load(&lf);
	assert_int_equal(lf.count, 3);
	check_chain(&lf, 1, 3, 1, zeros);
	assert_true(contains(&lf.lines[1], "\"event\":\"log-damaged\",\"offset\":0,\"bytes\":5,"));
	assert_int_equal(receipt_parse_line(lf.lines[0].p, lf.lines[0].len, &n, NULL, 0, NULL),
	                 -EINVAL);
	free(lf.data);
}

static void test_limits(void **state)
{
	struct receipt_log *log;
	struct receipt_rec *r;
	struct logfile lf;
	char err[256];
	uint8_t *big = malloc(RECEIPT_LINE_MAX);
	uint64_t n;

	(void)state;
	assert_non_null(big);
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);

	/* 11 KiB of bytes that each escape to 6: over the cap, refused whole */
	memset(big, 0x01, RECEIPT_LINE_MAX);
	r = receipt_begin(log, "published");
	receipt_strn(r, "name", big, 11 * 1024);
	receipt_u64(r, "size", 1);
	assert_int_equal(receipt_commit(r), -E2BIG);

	/* plain bytes that fit field-wise but not with the envelope */
	memset(big, 'a', RECEIPT_LINE_MAX);
	r = receipt_begin(log, "published");
	receipt_strn(r, "name", big, RECEIPT_LINE_MAX - 40);
	assert_int_equal(receipt_commit(r), -E2BIG);

	/* 60 KiB of plain bytes fits, though its worst case would not */
	r = receipt_begin(log, "published");
	receipt_strn(r, "name", big, 60 * 1024);
	assert_int_equal(receipt_commit(r), 0);

	/* reserved keys would make the line ambiguous */
	r = receipt_begin(log, "published");
	receipt_str(r, "prev", "x");
	assert_int_equal(receipt_commit(r), -EINVAL);
	r = receipt_begin(log, "published");
	receipt_u64(r, "n", 1);
	assert_int_equal(receipt_commit(r), -EINVAL);

	assert_int_equal(receipt_commit(NULL), -ENOMEM);
	receipt_u64(NULL, "x", 1); /* adders tolerate a failed begin */
	assert_null(receipt_begin(NULL, "x"));

	assert_int_equal(receipt_commit(receipt_begin(log, "stop")), 0);
	receipt_head(log, &n, NULL);
	assert_int_equal(n, 2); /* failures did not advance n */
	receipt_close(log);
	load(&lf);
	assert_int_equal(lf.count, 2);
	assert_true(lf.lines[0].len < RECEIPT_LINE_MAX);
	check_chain(&lf, 0, 2, 1, zeros);
	free(lf.data);
	free(big);
}

#define PER_THREAD 100

static void *logger(void *arg)
{
	struct receipt_log *log = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct receipt_rec *r = receipt_begin(log, "duplicate");

		receipt_u64(r, "i", (uint64_t)i);
		receipt_strn(r, "name", (const uint8_t *)"x\ny", 3);
		if (receipt_commit(r) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	pthread_t t[2];
	char err[256];
	void *ret;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, logger, log), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	receipt_close(log);
	load(&lf);
	assert_int_equal(lf.count, 2 * PER_THREAD);
	check_chain(&lf, 0, lf.count, 1, zeros);
	free(lf.data);
}

/* ---- parser ------------------------------------------------------------- */

#define T "\"time\":\"2026-11-23T09:14:02.137Z\""
#define P "\"prev\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\""

static void test_parse_accepts(void **state)
{
	static const char *good[] = {
	    "{\"n\":1," T ",\"event\":\"start\"," P "}",
	    "{\"n\":0," T ",\"event\":\"\"," P "}",
	    "{\"n\":18446744073709551615," T ",\"event\":\"a\\u00ffb\\n\\/\"," P "}",
	    "{\"n\":7," T ",\"event\":\"x\",\"a\":-0.5e+3,\"b\":true,\"c\":null,\"d\":\"\\u0000\","
	    "\"\\u0070rev2\":0,\"e\":false," P "}",
	};
	uint8_t prev[32];
	char event[16];
	uint64_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(
		    receipt_parse_line(good[i], strlen(good[i]), &n, event, sizeof(event), prev),
		    0);
	assert_int_equal(
	    receipt_parse_line(good[0], strlen(good[0]), &n, event, sizeof(event), prev), 0);
	assert_int_equal(n, 1);
	assert_string_equal(event, "start");
	assert_int_equal(prev[0], 0x00);
	assert_int_equal(prev[5], 0x55);
	assert_int_equal(prev[31], 0xff);
	assert_int_equal(
	    receipt_parse_line(good[2], strlen(good[2]), &n, event, sizeof(event), prev), 0);
	assert_int_equal(n, UINT64_MAX);
	assert_string_equal(event, "a\xff"
	                           "b\n/");
}

static void test_parse_rejects(void **state)
{
	static const char *bad[] = {
	    "",
	    "{}",
	    /* missing prev */
	    "{\"n\":1," T ",\"event\":\"start\"}",
	    "{\"n\":1," T ",\"event\":\"start\",\"size\":3}",
	    /* bad hex: non-hex, upper case, short, long */
	    "{\"n\":1," T
	    ",\"event\":\"x\",\"prev\":\"0g112233445566778899aabbccddeeff00112233445566"
	    "778899aabbccddeeff\"}",
	    "{\"n\":1," T
	    ",\"event\":\"x\",\"prev\":\"00112233445566778899AABBCCDDEEFF00112233445566"
	    "778899aabbccddeeff\"}",
	    "{\"n\":1," T
	    ",\"event\":\"x\",\"prev\":\"00112233445566778899aabbccddeeff00112233445566"
	    "778899aabbccddeef\"}",
	    "{\"n\":1," T
	    ",\"event\":\"x\",\"prev\":\"00112233445566778899aabbccddeeff00112233445566"
	    "778899aabbccddeeff0\"}",
	    "{\"n\":1," T ",\"event\":\"x\",\"prev\":0}",
	    /* wrong key order */
	    "{" T ",\"n\":1,\"event\":\"x\"," P "}",
	    "{\"n\":1,\"event\":\"x\"," T "," P "}",
	    "{\"event\":\"x\",\"n\":1," T "," P "}",
	    /* prev not last, or twice; reserved keys repeated */
	    "{\"n\":1," T ",\"event\":\"x\"," P ",\"a\":1}",
	    "{\"n\":1," T ",\"event\":\"x\"," P "," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"n\":2," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"\\u0065vent\":\"y\"," P "}",
	    /* n */
	    "{\"n\":01," T ",\"event\":\"x\"," P "}",
	    "{\"n\":-1," T ",\"event\":\"x\"," P "}",
	    "{\"n\":18446744073709551616," T ",\"event\":\"x\"," P "}",
	    "{\"n\":\"1\"," T ",\"event\":\"x\"," P "}",
	    "{\"n\":1.0," T ",\"event\":\"x\"," P "}",
	    /* time */
	    "{\"n\":1,\"time\":\"2026-11-23 09:14:02.137Z\",\"event\":\"x\"," P "}",
	    "{\"n\":1,\"time\":\"2026-11-23T09:14:02Z\",\"event\":\"x\"," P "}",
	    /* strings and values */
	    "{\"n\":1," T ",\"event\":\"a\nb\"," P "}",
	    "{\"n\":1," T ",\"event\":\"\xc3\xa9\"," P "}",
	    "{\"n\":1," T ",\"event\":\"\\x\"," P "}",
	    "{\"n\":1," T ",\"event\":\"\\u00g0\"," P "}",
	    "{\"n\":1," T ",\"event\":\"\\u0000\"," P "}",
	    "{\"n\":1," T ",\"event\":\"\\u0100\"," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"a\":{}," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"a\":[1]," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"a\":01," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"a\":1.," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"a\":tru," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",\"a\"," P "}",
	    "{\"n\":1," T ",\"event\":\"x\",," P "}",
	    /* whitespace and trailing bytes */
	    "{\"n\": 1," T ",\"event\":\"x\"," P "}",
	    "{\"n\":1," T ",\"event\":\"x\"," P "} ",
	    "{\"n\":1," T ",\"event\":\"x\"," P "}\n",
	    "{\"n\":1," T ",\"event\":\"x\"," P "}}",
	    /* event longer than the caller's buffer */
	    "{\"n\":1," T ",\"event\":\"0123456789abcdef\"," P "}",
	};
	static const char good[] = "{\"n\":1," T ",\"event\":\"x\",\"a\":\"b\"," P "}";
	char event[16];
	char nul[sizeof(good)];
	uint8_t prev[32];
	uint64_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (receipt_parse_line(bad[i], strlen(bad[i]), &n, event, sizeof(event), prev) !=
		    -EINVAL)
			fail_msg("accepted bad line %zu: %s", i, bad[i]);
	}
	/* every truncation of a good line, each in a buffer of exactly that size */
	assert_int_equal(receipt_parse_line(good, sizeof(good) - 1, &n, event, sizeof(event), prev),
	                 0);
	for (size_t len = 0; len < sizeof(good) - 1; len++) {
		char *cut = malloc(len ? len : 1);

		assert_non_null(cut);
		memcpy(cut, good, len);
		assert_int_equal(receipt_parse_line(cut, len, &n, event, sizeof(event), prev),
		                 -EINVAL);
		free(cut);
	}
	/* a NUL anywhere in the line */
	for (size_t i = 0; i < sizeof(good) - 1; i++) {
		memcpy(nul, good, sizeof(good));
		nul[i] = '\0';
		assert_int_equal(
		    receipt_parse_line(nul, sizeof(good) - 1, &n, event, sizeof(event), prev),
		    -EINVAL);
	}
	assert_int_equal(receipt_parse_line(NULL, 0, &n, event, sizeof(event), prev), -EINVAL);
}

/* ---- checkpoints ---------------------------------------------------------- */

static uint8_t log_pk[32], log_sk[64];

static int setup_key(void **state)
{
	if (setup(state) < 0)
		return -1;
	crypto_sign_keypair(log_pk, log_sk);
	return 0;
}

/* An independent verifier over a whole log in memory, as an auditor would
 * run it: every line parses, n counts from 1, prev chains, and every
 * checkpoint is well-formed and verifies with pk. *covered gets the n of
 * the last verified checkpoint. 0 when all holds, -1 at the first failure. */
static int verify_buf(const char *data, size_t size, const uint8_t pk[32], uint64_t *covered)
{
	uint8_t expect[32] = {0}, prev[32];
	size_t start = 0;
	uint64_t want = 1;

	*covered = 0;
	for (size_t i = 0; i < size; i++) {
		const char *l = data + start;
		size_t len = i - start;
		char event[64];
		uint64_t n;

		if (data[i] != '\n')
			continue;
		if (receipt_parse_line(l, len, &n, event, sizeof(event), prev) != 0 || n != want ||
		    memcmp(prev, expect, 32) != 0)
			return -1;
		if (!strcmp(event, "checkpoint")) {
			struct receipt_checkpoint cp;

			if (receipt_parse_checkpoint(l, len, &cp) != 0 || cp.n != n ||
			    receipt_checkpoint_verify(&cp, pk) != 0)
				return -1;
			*covered = n;
		}
		crypto_generichash(expect, 32, (const uint8_t *)l, len, NULL, 0);
		want++;
		start = i + 1;
	}
	return start == size ? 0 : -1;
}

static void some_records(struct receipt_log *log, int count)
{
	for (int i = 0; i < count; i++) {
		struct receipt_rec *r = receipt_begin(log, "published");

		receipt_strn(r, "name", (const uint8_t *)"f\x01.bin", 6);
		receipt_u64(r, "size", (uint64_t)i * 1000);
		receipt_str(r, "sender", "2744963e64cf75fe");
		assert_int_equal(receipt_commit(r), 0);
	}
}

static void test_checkpoint_signed(void **state)
{
	struct receipt_log *log;
	struct receipt_checkpoint cp, bad;
	struct logfile lf;
	uint8_t other_pk[32], other_sk[64], h[32], id[8];
	char err[256];
	uint64_t n, covered;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_checkpoint(log), -ENOKEY); /* no key yet */
	assert_int_equal(receipt_tick(log, 1), 0);
	crypto_sign_keypair(other_pk, other_sk);
	assert_int_equal(receipt_set_signing_key(log, log_sk, other_pk), -EINVAL); /* mismatch */
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	receipt_set_checkpoint_policy(log, 0, 0, 0);
	assert_int_equal(receipt_checkpoint(log), 0); /* empty log: nothing to cover */
	some_records(log, 5);
	assert_int_equal(receipt_checkpoint(log), 1);
	assert_int_equal(receipt_checkpoint(log), 0); /* nothing new since */
	receipt_head(log, &n, NULL);
	assert_int_equal(n, 6);
	/* only the log writes these events */
	assert_int_equal(receipt_commit(receipt_begin(log, "checkpoint")), -EINVAL);
	assert_int_equal(receipt_commit(receipt_begin(log, "log-damaged")), -EINVAL);
	receipt_close(log);

	load(&lf);
	assert_int_equal(lf.count, 6);
	check_chain(&lf, 0, 6, 1, zeros);
	assert_int_equal(receipt_parse_checkpoint(lf.lines[5].p, lf.lines[5].len, &cp), 0);
	assert_int_equal(cp.n, 6);
	assert_int_equal(cp.records, 5);
	hash_line(&lf.lines[4], h);
	assert_memory_equal(cp.head, h, 32);
	assert_memory_equal(cp.prev, h, 32);
	key_id(id, log_pk);
	assert_memory_equal(cp.key, id, 8);
	assert_int_equal(memcmp(cp.time, lf.lines[5].p + 15, RECEIPT_TIME_LEN), 0);
	assert_int_equal(receipt_checkpoint_verify(&cp, log_pk), 0);
	assert_int_equal(receipt_checkpoint_verify(&cp, other_pk), -EKEYREJECTED);
	bad = cp;
	bad.sig[17] ^= 0x40;
	assert_int_equal(receipt_checkpoint_verify(&bad, log_pk), -EBADMSG);
	bad = cp;
	bad.time[22] ^= 1; /* the time is signed */
	assert_int_equal(receipt_checkpoint_verify(&bad, log_pk), -EBADMSG);
	bad = cp;
	bad.records = 4; /* must name the line before */
	assert_int_equal(receipt_checkpoint_verify(&bad, log_pk), -EINVAL);
	bad = cp;
	bad.head[0] ^= 1; /* head is prev */
	assert_int_equal(receipt_checkpoint_verify(&bad, log_pk), -EINVAL);
	assert_int_equal(verify_buf(lf.data, lf.size, log_pk, &covered), 0);
	assert_int_equal(covered, 6);
	assert_int_equal(verify_buf(lf.data, lf.size, other_pk, &covered), -1);
	free(lf.data);
}

/* The signed bytes, laid out by hand from the table in receipt.h. */
static void test_checkpoint_message(void **state)
{
	struct receipt_checkpoint cp = {.records = 0x0102030405060708ull};
	uint8_t msg[RECEIPT_CP_MSG_LEN], want[RECEIPT_CP_MSG_LEN];

	(void)state;
	for (int i = 0; i < 32; i++)
		cp.head[i] = (uint8_t)(0xa0 + i);
	memcpy(cp.time, "2026-11-23T09:14:02.137Z", 25);
	memcpy(cp.key, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	memset(cp.sig, 0xee, sizeof(cp.sig)); /* not part of the message */
	receipt_checkpoint_message(msg, &cp);

	memcpy(want, "sluice-receipt-checkpoint-v1", 29); /* and its NUL */
	memcpy(want + 29, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	memcpy(want + 37, cp.head, 32);
	memcpy(want + 69, "2026-11-23T09:14:02.137Z", 24);
	memcpy(want + 93, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	assert_memory_equal(msg, want, sizeof(want));
	assert_int_equal(want[28], 0);
}

static size_t count_checkpoints(const struct logfile *lf)
{
	size_t c = 0;

	for (size_t i = 0; i < lf->count; i++)
		c += receipt_parse_checkpoint(lf->lines[i].p, lf->lines[i].len, NULL) == 0;
	return c;
}

static void test_checkpoint_every(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256];
	uint64_t covered;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	receipt_set_checkpoint_policy(log, 3, 0, 0);
	some_records(log, 7);
	receipt_close(log);
	load(&lf);
	/* r r r C r r r C r: the checkpoint itself does not count */
	assert_int_equal(lf.count, 9);
	assert_int_equal(receipt_parse_checkpoint(lf.lines[3].p, lf.lines[3].len, NULL), 0);
	assert_int_equal(receipt_parse_checkpoint(lf.lines[7].p, lf.lines[7].len, NULL), 0);
	assert_int_equal(count_checkpoints(&lf), 2);
	assert_int_equal(verify_buf(lf.data, lf.size, log_pk, &covered), 0);
	assert_int_equal(covered, 8);
	free(lf.data);
}

#define S 1000000000ull

static void test_checkpoint_tick(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256];
	uint64_t t = 100 * S;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	receipt_set_checkpoint_policy(log, 0, 10 * S, 2 * S);
	assert_int_equal(receipt_tick(log, t), 0); /* nothing written yet */
	some_records(log, 1);
	assert_int_equal(receipt_tick(log, t), 0); /* first seen now */
	assert_int_equal(receipt_tick(log, t + S), 0);
	assert_int_equal(receipt_tick(log, t + 2 * S), 1); /* idle for 2 s */
	assert_int_equal(receipt_tick(log, t + 3 * S), 0);
	assert_int_equal(receipt_tick(log, t + 60 * S), 0); /* idle, nothing new */

	/* steady activity, never idle for 2 s: the 10 s interval fires */
	t = 200 * S;
	for (int i = 0; i < 9; i++) {
		some_records(log, 1);
		assert_int_equal(receipt_tick(log, t + (uint64_t)i * S), 0);
	}
	some_records(log, 1);
	assert_int_equal(receipt_tick(log, t + 10 * S), 1);
	/* the shutdown checkpoint covers what the ticks have not */
	some_records(log, 1);
	assert_int_equal(receipt_checkpoint(log), 1);
	assert_int_equal(receipt_tick(log, t + 100 * S), 0);
	receipt_close(log);

	load(&lf);
	assert_int_equal(count_checkpoints(&lf), 3);
	assert_int_equal(lf.count, 1 + 1 + 10 + 1 + 1 + 1);
	free(lf.data);
}

static void test_checkpoint_reopen(void **state)
{
	struct receipt_log *log;
	char err[256];

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	some_records(log, 2);
	assert_int_equal(receipt_checkpoint(log), 1);
	receipt_close(log);

	/* ends in a checkpoint: nothing is owed */
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	assert_int_equal(receipt_checkpoint(log), 0);
	some_records(log, 1);
	receipt_close(log); /* closed without a checkpoint, as after kill -9 */

	/* the next run's first checkpoint covers the last run's tail */
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	assert_int_equal(receipt_checkpoint(log), 1);
	receipt_close(log);
}

/* With a checkpoint, a torn tail is reported first and then covered. */
static void test_checkpoint_after_damage(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256], event[64];
	uint64_t n;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	some_records(log, 2);
	receipt_close(log);
	append_raw("{\"n\":3,\"ti", 10);
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	assert_int_equal(receipt_checkpoint(log), 1);
	receipt_close(log);
	load(&lf);
	assert_int_equal(lf.count, 5); /* r r torn log-damaged checkpoint */
	assert_int_equal(
	    receipt_parse_line(lf.lines[3].p, lf.lines[3].len, &n, event, sizeof(event), NULL), 0);
	assert_string_equal(event, "log-damaged");
	assert_int_equal(receipt_parse_checkpoint(lf.lines[4].p, lf.lines[4].len, NULL), 0);
	free(lf.data);
}

/* Rewrite the chain after line `from` the way an attacker without the log
 * key would: each prev (and a checkpoint's head) becomes the hash of the
 * line before as it now is. Lines keep their length (hex for hex). */
static void rechain(char *data, size_t size, size_t from)
{
	uint8_t h[32];
	size_t start = 0, line = 0, prev_start = 0, prev_len = 0;
	char hexh[65];

	for (size_t i = 0; i < size; i++) {
		char *l = data + start, *p;
		size_t len = i - start;

		if (data[i] != '\n')
			continue;
		if (line > from && len > 74) {
			crypto_generichash(h, 32, (const uint8_t *)data + prev_start, prev_len,
			                   NULL, 0);
			sodium_bin2hex(hexh, sizeof(hexh), h, 32);
			if (!memcmp(l + len - 74, "\"prev\":\"", 8))
				memcpy(l + len - 66, hexh, 64);
			p = memmem(l, len, "\"head\":\"", 8);
			if (p && p + 8 + 64 <= l + len)
				memcpy(p + 8, hexh, 64);
		}
		prev_start = start;
		prev_len = len;
		start = i + 1;
		line++;
	}
}

/* Detected: verification fails, or the changed line is no longer covered
 * by a verified checkpoint (changing "checkpoint" into another event makes
 * the log look cut off before it: the verifier then reports every record
 * as not covered, and only a copy of a later head kept elsewhere can tell
 * a cut log from a short one; docs/RECEIPTS.md). */
static bool detected(const char *data, size_t size, uint64_t line_n)
{
	uint64_t covered;

	return verify_buf(data, size, log_pk, &covered) != 0 || covered < line_n;
}

/* Change every byte of every checkpointed record, and of the checkpoint
 * itself, one at a time: each change must be detected, whether or not the
 * attacker also rewrites the chain after it. */
static void test_tamper_detected(void **state)
{
	struct receipt_log *log;
	struct logfile lf;
	char err[256], *copy;
	uint64_t covered;
	size_t tried = 0;

	(void)state;
	assert_int_equal(receipt_open(&log, path, err, sizeof(err)), 0);
	assert_int_equal(receipt_set_signing_key(log, log_sk, log_pk), 0);
	receipt_set_checkpoint_policy(log, 0, 0, 0);
	some_records(log, 3);
	assert_int_equal(receipt_checkpoint(log), 1);
	receipt_close(log);
	load(&lf);
	assert_int_equal(lf.count, 4);
	assert_int_equal(verify_buf(lf.data, lf.size, log_pk, &covered), 0);
	assert_int_equal(covered, 4);
	copy = malloc(lf.size);
	assert_non_null(copy);

	for (size_t ln = 0; ln < lf.count; ln++) {
		for (size_t k = 0; k < lf.lines[ln].len; k++) {
			size_t at = lf.lines[ln].off + k;
			const uint8_t flips[] = {0x01, 0x20};

			for (size_t f = 0; f < sizeof(flips); f++) {
				memcpy(copy, lf.data, lf.size);
				copy[at] = (char)(copy[at] ^ flips[f]);
				if (copy[at] == '\n')
					continue; /* that would split the line, a different test */
				/* records before the checkpoint: the chain alone */
				if (ln < 3 && verify_buf(copy, lf.size, log_pk, &covered) == 0)
					fail_msg("flip %02x at byte %zu (line %zu) not detected",
					         flips[f], at, ln + 1);
				rechain(copy, lf.size, ln);
				if (!detected(copy, lf.size, ln + 1))
					fail_msg("flip %02x at byte %zu (line %zu) + re-chain not "
					         "detected: %.*s",
					         flips[f], at, ln + 1, (int)lf.lines[ln].len,
					         copy + lf.lines[ln].off);
				tried++;
			}
		}
	}
	assert_true(tried > 500);

	/* removing any one line, or swapping two, is detected as well */
	for (size_t ln = 0; ln < lf.count; ln++) {
		size_t off = lf.lines[ln].off, len = lf.lines[ln].len + 1;

		memcpy(copy, lf.data, off);
		memcpy(copy + off, lf.data + off + len, lf.size - off - len);
		assert_int_equal(
		    verify_buf(copy, lf.size - len, log_pk, &covered) == 0 && covered == 4, 0);
		rechain(copy, lf.size - len, ln ? ln - 1 : 0);
		assert_true(detected(copy, lf.size - len, 4));
	}
	free(copy);
	free(lf.data);
}

/* ---- field getters ---------------------------------------------------------- */

static void test_get_fields(void **state)
{
	static const char line[] =
	    "{\"n\":9," T ",\"event\":\"published\",\"name\":\"a\\u0000b\\u00ff\\\"\","
	    "\"size\":18446744073709551615,\"pct\":1.5,\"neg\":-1,\"none\":null,"
	    "\"flag\":true,\"dup\":1,\"dup\":2," P "}";
	char out[16], small[3];
	uint64_t v;
	size_t len;

	(void)state;
	assert_int_equal(receipt_get_str(line, strlen(line), "name", out, sizeof(out), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(out, "a\0b\xff\"", 5);
	assert_int_equal(receipt_get_u64(line, strlen(line), "size", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(receipt_get_u64(line, strlen(line), "n", &v), 0);
	assert_int_equal(v, 9);
	assert_int_equal(receipt_get_str(line, strlen(line), "event", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "published");
	assert_int_equal(receipt_get_str(line, strlen(line), "time", out, sizeof(out), NULL),
	                 -E2BIG);
	assert_int_equal(receipt_get_str(line, strlen(line), "name", small, sizeof(small), NULL),
	                 -E2BIG);
	assert_int_equal(receipt_get_u64(line, strlen(line), "pct", &v), -EINVAL);
	assert_int_equal(receipt_get_u64(line, strlen(line), "neg", &v), -EINVAL);
	assert_int_equal(receipt_get_u64(line, strlen(line), "flag", &v), -EINVAL);
	assert_int_equal(receipt_get_u64(line, strlen(line), "name", &v), -EINVAL);
	assert_int_equal(receipt_get_str(line, strlen(line), "size", out, sizeof(out), NULL),
	                 -EINVAL);
	assert_int_equal(receipt_get_u64(line, strlen(line), "none", &v), -ENODATA);
	assert_int_equal(receipt_get_u64(line, strlen(line), "absent", &v), -ENOENT);
	assert_int_equal(receipt_get_u64(line, strlen(line), "dup", &v), -EINVAL);
	/* a line the strict parser refuses yields nothing */
	assert_int_equal(receipt_get_u64(line, strlen(line) - 1, "size", &v), -EINVAL);
	assert_int_equal(receipt_get_str("{}", 2, "n", out, sizeof(out), NULL), -EINVAL);
}

static void test_parse_checkpoint_rejects(void **state)
{
#define H64     "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define CP_HEAD "{\"n\":5," T ",\"event\":\"checkpoint\",\"records\":4,\"head\":\"" H64 "\""
#define KEY     ",\"key\":\"0011223344556677\""
#define SIG     ",\"sig\":\"" H64 H64 "\""
#define PREV    ",\"prev\":\"" H64 "\"}"
	static const char good[] = CP_HEAD KEY SIG PREV;
	static const char *bad[] = {
	    CP_HEAD SIG KEY PREV,                              /* order */
	    CP_HEAD KEY SIG ",\"x\":1" PREV,                   /* extra field */
	    CP_HEAD ",\"key\":\"001122334455667\"" SIG PREV,   /* short key */
	    CP_HEAD ",\"key\":\"00112233445566778\"" SIG PREV, /* long key */
	    CP_HEAD ",\"key\":\"001122334455667A\"" SIG PREV,  /* upper case */
	    CP_HEAD KEY ",\"sig\":\"" H64 "\"" PREV,           /* short sig */
	    CP_HEAD KEY ",\"sig\":null" PREV,
	    "{\"n\":5," T ",\"event\":\"checkpoint\",\"records\":04,\"head\":\"" H64
	    "\"" KEY SIG PREV,
	    "{\"n\":5," T ",\"event\":\"checkpoin\\u0074\",\"records\":4,\"head\":\"" H64
	    "\"" KEY SIG PREV, /* escaped: one spelling only */
	    CP_HEAD KEY SIG PREV " ",
	};
	struct receipt_checkpoint cp;

	(void)state;
	assert_int_equal(receipt_parse_checkpoint(good, strlen(good), &cp), 0);
	assert_int_equal(cp.n, 5);
	assert_int_equal(cp.records, 4);
	assert_int_equal(cp.key[7], 0x77);
	assert_int_equal(receipt_parse_line(good, strlen(good), NULL, NULL, 0, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (receipt_parse_checkpoint(bad[i], strlen(bad[i]), &cp) != -EINVAL)
			fail_msg("accepted bad checkpoint %zu: %s", i, bad[i]);
	for (size_t len = 0; len < sizeof(good) - 1; len++)
		assert_int_equal(receipt_parse_checkpoint(good, len, &cp), -EINVAL);
	assert_int_equal(receipt_parse_checkpoint(NULL, 0, &cp), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_writer_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash_partial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash_all_but_newline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_all_damaged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	    cmocka_unit_test(test_parse_accepts),
	    cmocka_unit_test(test_parse_rejects),
	    cmocka_unit_test_setup_teardown(test_checkpoint_signed, setup_key, teardown),
	    cmocka_unit_test(test_checkpoint_message),
	    cmocka_unit_test_setup_teardown(test_checkpoint_every, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_tick, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_reopen, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_after_damage, setup_key, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_detected, setup_key, teardown),
	    cmocka_unit_test(test_get_fields),
	    cmocka_unit_test(test_parse_checkpoint_rejects),
	};

	alarm(120); /* a hung test fails instead of blocking CI */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
