/* SPDX-License-Identifier: MIT */
/* Unit tests for common/keys.c: key ids (known answers), key file round
 * trips, and the forged, damaged and unsafe files the reader must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/keys.h"

static const enum key_kind all_kinds[] = {
    KEY_SIGN_SECRET, KEY_SIGN_PUBLIC, KEY_BOX_SECRET,
    KEY_BOX_PUBLIC,  KEY_LOG_SECRET,  KEY_LOG_PUBLIC,
};
#define N_KINDS (sizeof(all_kinds) / sizeof(all_kinds[0]))

struct fixture {
	char dir[64];
	char path[PATH_MAX]; /* scratch: a file inside dir */
	char err[512];
};

/* ---- helpers ---------------------------------------------------------- */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sluice-test-keys.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/k", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Key id recomputed here with one-shot crypto_generichash over the
 * concatenation, independently of keys.c's streaming implementation. */
static void ref_key_id(uint8_t id[KEYID_LEN], const uint8_t pk[32])
{
	uint8_t msg[15 + 32], h[32];

	memcpy(msg, "sluice-keyid-v1", 15);
	memcpy(msg + 15, pk, 32);
	assert_int_equal(crypto_generichash(h, sizeof(h), msg, sizeof(msg), NULL, 0), 0);
	memcpy(id, h, KEYID_LEN);
}

/* A fresh key of the given kind and the id of its public half. */
static void gen(enum key_kind kind, uint8_t key[64], uint8_t id[KEYID_LEN])
{
	uint8_t pk[32], sk[64];

	switch (kind) {
	case KEY_SIGN_SECRET:
	case KEY_LOG_SECRET:
		crypto_sign_keypair(pk, sk);
		memcpy(key, sk, 64);
		break;
	case KEY_SIGN_PUBLIC:
	case KEY_LOG_PUBLIC:
		crypto_sign_keypair(pk, sk);
		memcpy(key, pk, 32);
		break;
	case KEY_BOX_SECRET:
		crypto_box_keypair(pk, sk);
		memcpy(key, sk, 32);
		memcpy(key + 32, pk, 32);
		break;
	case KEY_BOX_PUBLIC:
		crypto_box_keypair(pk, sk);
		memcpy(key, pk, 32);
		break;
	default:
		fail();
	}
	ref_key_id(id, pk);
}

static void write_raw(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static size_t read_raw(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap - 1);
	assert_true(n >= 0);
	close(fd);
	buf[n] = '\0';
	return (size_t)n;
}

/* Build a key file's text by hand, so tests can forge every field. */
static size_t forge(char *out, size_t cap, const char *kind, const char *idhex, const uint8_t *key,
                    size_t len)
{
	int n = snprintf(out, cap, "sluice %s v1 keyid=%s\n", kind, idhex);

	assert_true(n > 0 && (size_t)n < cap);
	sodium_bin2base64(out + n, cap - (size_t)n, key, len, sodium_base64_VARIANT_ORIGINAL);
	strcat(out, "\n");
	return strlen(out);
}

/* Expect keyfile_read to refuse path with ret, leave out untouched and say
 * something containing needle (if given) and the path. */
static void expect_refused(struct fixture *f, const char *path, enum key_kind kind, int ret,
                           const char *needle)
{
	uint8_t out[64], id[KEYID_LEN];

	memset(out, 0xa5, sizeof(out));
	f->err[0] = '\0';
	assert_int_equal(keyfile_read(path, kind, out, id, f->err, sizeof(f->err)), ret);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xa5);
	assert_non_null(strstr(f->err, path));
	if (needle)
		assert_non_null(strstr(f->err, needle));
}

static void write_valid(struct fixture *f, enum key_kind kind, uint8_t key[64],
                        uint8_t id[KEYID_LEN])
{
	gen(kind, key, id);
	assert_int_equal(keyfile_write(f->path, kind, key, id), 0);
}

/* ---- key ids and names ------------------------------------------------ */

static void test_kinds(void **state)
{
	static const struct {
		enum key_kind kind;
		const char *name;
		size_t len;
		int secret;
	} t[] = {
	    {KEY_INVALID, "invalid", 0, 0},          {KEY_SIGN_SECRET, "sign-secret", 64, 1},
	    {KEY_SIGN_PUBLIC, "sign-public", 32, 0}, {KEY_BOX_SECRET, "box-secret", 64, 1},
	    {KEY_BOX_PUBLIC, "box-public", 32, 0},   {KEY_LOG_SECRET, "log-secret", 64, 1},
	    {KEY_LOG_PUBLIC, "log-public", 32, 0},   {(enum key_kind)99, "invalid", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_string_equal(key_kind_name(t[i].kind), t[i].name);
		assert_int_equal(key_len(t[i].kind), t[i].len);
		assert_int_equal(key_is_secret(t[i].kind), t[i].secret);
	}
}

static void test_keyid_known_answers(void **state)
{
	/* Pinned with Python's hashlib.blake2b(b"sluice-keyid-v1" + pk,
	 * digest_size=32).hexdigest()[:16], a third implementation: if the
	 * definition of the key id changes, every deployed trust list breaks,
	 * so this must fail loudly. */
	static const struct {
		uint8_t fill; /* 0..31 when 0xfe, else every byte = fill */
		const char *hex;
	} t[] = {
	    {0x00, "57e332834397757e"},
	    {0xfe, "4b32d2859f354753"},
	    {0xff, "2800b420c67762f4"},
	};
	uint8_t pk[32], id[KEYID_LEN], ref[KEYID_LEN];
	char hex[2 * KEYID_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (size_t j = 0; j < 32; j++)
			pk[j] = t[i].fill == 0xfe ? (uint8_t)j : t[i].fill;
		key_id(id, pk);
		key_id_hex(hex, id);
		assert_string_equal(hex, t[i].hex);
		ref_key_id(ref, pk);
		assert_memory_equal(id, ref, KEYID_LEN);
	}
	/* And for random keys, against the independent one-shot hash. */
	for (int i = 0; i < 64; i++) {
		randombytes_buf(pk, sizeof(pk));
		key_id(id, pk);
		ref_key_id(ref, pk);
		assert_memory_equal(id, ref, KEYID_LEN);
	}
}

static void test_keyid_hex(void **state)
{
	static const uint8_t id[KEYID_LEN] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
	char hex[2 * KEYID_LEN + 1];

	(void)state;
	memset(hex, 'x', sizeof(hex));
	key_id_hex(hex, id);
	assert_string_equal(hex, "0123456789abcdef");
}

/* ---- round trips ------------------------------------------------------ */

static void test_roundtrip_all_kinds(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < N_KINDS; i++) {
		enum key_kind kind = all_kinds[i], probed = KEY_INVALID;
		uint8_t key[64], id[KEYID_LEN], out[64], out_id[KEYID_LEN];
		char text[512], want[512], hex[2 * KEYID_LEN + 1];
		struct stat st;

		snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, key_kind_name(kind));
		write_valid(f, kind, key, id);

		/* The exact text format of keys.h. */
		key_id_hex(hex, id);
		forge(want, sizeof(want), key_kind_name(kind), hex, key, key_len(kind));
		read_raw(f->path, text, sizeof(text));
		assert_string_equal(text, want);

		assert_int_equal(lstat(f->path, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_mode & 07777, key_is_secret(kind) ? 0600 : 0644);

		memset(out, 0, sizeof(out));
		assert_int_equal(keyfile_read(f->path, kind, out, out_id, f->err, sizeof(f->err)),
		                 0);
		assert_memory_equal(out, key, key_len(kind));
		assert_memory_equal(out_id, id, KEYID_LEN);
		/* id is optional. */
		assert_int_equal(keyfile_read(f->path, kind, out, NULL, NULL, 0), 0);

		assert_int_equal(keyfile_kind(f->path, &probed, f->err, sizeof(f->err)), 0);
		assert_int_equal(probed, kind);
	}
}

static void test_roundtrip_sodium_malloc(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	uint8_t *out = sodium_malloc(64); /* guard page right after 64 bytes */

	assert_non_null(out);
	write_valid(f, KEY_SIGN_SECRET, key, id);
	assert_int_equal(keyfile_read(f->path, KEY_SIGN_SECRET, out, NULL, f->err, sizeof(f->err)),
	                 0);
	assert_memory_equal(out, key, 64);
	sodium_free(out);

	/* A 32-byte public key into exactly 32 bytes. */
	snprintf(f->path, sizeof(f->path), "%s/pub", f->dir);
	write_valid(f, KEY_BOX_PUBLIC, key, id);
	out = sodium_malloc(32);
	assert_non_null(out);
	assert_int_equal(keyfile_read(f->path, KEY_BOX_PUBLIC, out, NULL, f->err, sizeof(f->err)),
	                 0);
	assert_memory_equal(out, key, 32);
	sodium_free(out);
}

/* ---- writing ---------------------------------------------------------- */

static void test_secret_mode_0600_despite_umask(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	mode_t old = umask(0);
	struct stat st;

	write_valid(f, KEY_BOX_SECRET, key, id);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_no_overwrite(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN], key2[64], id2[KEYID_LEN];
	char before[512], after[512], target[PATH_MAX];

	write_valid(f, KEY_SIGN_SECRET, key, id);
	read_raw(f->path, before, sizeof(before));
	gen(KEY_SIGN_SECRET, key2, id2);
	assert_int_equal(keyfile_write(f->path, KEY_SIGN_SECRET, key2, id2), -EEXIST);
	read_raw(f->path, after, sizeof(after));
	assert_string_equal(before, after);

	/* A dangling symlink is not followed to create its target. */
	snprintf(target, sizeof(target), "%s/target", f->dir);
	snprintf(f->path, sizeof(f->path), "%s/link", f->dir);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(keyfile_write(f->path, KEY_SIGN_SECRET, key2, id2), -EEXIST);
	assert_int_equal(access(target, F_OK), -1);
}

/* A write that fails part-way (here: RLIMIT_FSIZE below the file size, so
 * write() returns EFBIG) must not leave a truncated key file behind. */
static void test_partial_write_removed(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	struct rlimit old, small;
	void (*old_handler)(int);

	gen(KEY_SIGN_SECRET, key, id);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 50;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	assert_int_equal(keyfile_write(f->path, KEY_SIGN_SECRET, key, id), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_write_refuses_inconsistent(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN], other[64], other_id[KEYID_LEN];

	/* Wrong id for the key. */
	gen(KEY_SIGN_PUBLIC, key, id);
	gen(KEY_SIGN_PUBLIC, other, other_id);
	assert_int_equal(keyfile_write(f->path, KEY_SIGN_PUBLIC, key, other_id), -EINVAL);
	assert_int_equal(access(f->path, F_OK), -1);

	/* Box secret whose pk half belongs to another key, with that key's id. */
	gen(KEY_BOX_SECRET, key, id);
	gen(KEY_BOX_SECRET, other, other_id);
	memcpy(key + 32, other + 32, 32);
	assert_int_equal(keyfile_write(f->path, KEY_BOX_SECRET, key, other_id), -EINVAL);
	assert_int_equal(access(f->path, F_OK), -1);

	assert_int_equal(keyfile_write(f->path, KEY_INVALID, key, id), -EINVAL);
	assert_int_equal(access(f->path, F_OK), -1);
}

/* ---- reading: unsafe files --------------------------------------------- */

static void test_group_readable_refused(void **state)
{
	struct fixture *f = *state;
	static const mode_t modes[] = {0640, 0604, 0620, 0602, 0610, 0601, 0644, 0666};
	static const enum key_kind secrets[] = {KEY_SIGN_SECRET, KEY_BOX_SECRET, KEY_LOG_SECRET};
	uint8_t key[64], id[KEYID_LEN];
	char mode_str[16];

	for (size_t k = 0; k < 3; k++) {
		snprintf(f->path, sizeof(f->path), "%s/%zu", f->dir, k);
		write_valid(f, secrets[k], key, id);
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			assert_int_equal(chmod(f->path, modes[m]), 0);
			expect_refused(f, f->path, secrets[k], -EPERM, "chmod 600");
			snprintf(mode_str, sizeof(mode_str), "mode %04o", (unsigned)modes[m]);
			assert_non_null(strstr(f->err, mode_str));
		}
		/* Stricter than 0600 is fine. */
		assert_int_equal(chmod(f->path, 0400), 0);
		assert_int_equal(keyfile_read(f->path, secrets[k], key, NULL, NULL, 0), 0);
	}
}

static void test_public_mode_not_checked(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];

	write_valid(f, KEY_LOG_PUBLIC, key, id);
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(keyfile_read(f->path, KEY_LOG_PUBLIC, key, NULL, NULL, 0), 0);
}

static void test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	char link[PATH_MAX];
	enum key_kind kind;

	write_valid(f, KEY_SIGN_SECRET, key, id);
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	expect_refused(f, link, KEY_SIGN_SECRET, -ELOOP, "symbolic link");
	assert_int_equal(keyfile_kind(link, &kind, f->err, sizeof(f->err)), -ELOOP);
}

static void test_not_regular_refused(void **state)
{
	struct fixture *f = *state;
	char fifo[PATH_MAX];

	/* A directory, and a FIFO (which must not block the open). */
	expect_refused(f, f->dir, KEY_SIGN_PUBLIC, -EINVAL, "not a regular file");
	snprintf(fifo, sizeof(fifo), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_refused(f, fifo, KEY_SIGN_SECRET, -EINVAL, "not a regular file");
}

static void test_missing_refused(void **state)
{
	struct fixture *f = *state;

	expect_refused(f, f->path, KEY_SIGN_PUBLIC, -ENOENT, "sluice-keygen");
}

static void test_too_large_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	char text[8192];
	size_t n;

	write_valid(f, KEY_SIGN_PUBLIC, key, id);
	n = read_raw(f->path, text, sizeof(text));
	memset(text + n, '\n', sizeof(text) - n);
	assert_int_equal(unlink(f->path), 0);
	write_raw(f->path, text, sizeof(text), 0644);
	expect_refused(f, f->path, KEY_SIGN_PUBLIC, -EFBIG, "too big");
}

/* ---- reading: wrong or damaged contents -------------------------------- */

static void test_wrong_kind_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	char want[128];

	for (size_t i = 0; i < N_KINDS; i++) {
		snprintf(f->path, sizeof(f->path), "%s/%zu", f->dir, i);
		write_valid(f, all_kinds[i], key, id);
		for (size_t j = 0; j < N_KINDS; j++) {
			if (i == j)
				continue;
			/* Even a public file where a secret is expected is
			 * reported as the wrong kind, not as a mode problem. */
			snprintf(want, sizeof(want), "is a %s key, but a %s key is needed",
			         key_kind_name(all_kinds[i]), key_kind_name(all_kinds[j]));
			expect_refused(f, f->path, all_kinds[j], -EINVAL, want);
		}
	}
}

static void test_corrupt_base64_refused(void **state)
{
	struct fixture *f = *state;
	/* (offset from the start of the key line, replacement byte) */
	static const struct {
		int pos;
		char c;
	} t[] = {
	    {0, '!'},  {5, '-'},  {10, '_'}, {20, ' '}, {30, '='},
	    {42, '*'}, {43, 'A'}, {43, '!'}, {1, '\t'},
	};
	uint8_t key[64], id[KEYID_LEN];
	char good[512], text[512];
	size_t n;
	char *line;

	write_valid(f, KEY_SIGN_PUBLIC, key, id);
	n = read_raw(f->path, good, sizeof(good));
	line = strchr(good, '\n') + 1;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memcpy(text, good, n);
		text[(line - good) + t[i].pos] = t[i].c;
		write_raw(f->path, text, n, 0644);
		expect_refused(f, f->path, KEY_SIGN_PUBLIC, -EINVAL, NULL);
	}

	/* Non-canonical base64: the 2 unused bits of the last digit set. A key
	 * must have exactly one spelling. */
	memcpy(text, good, n);
	{
		char *last = text + (line - good) + 42;
		const char *alpha =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		size_t v = (size_t)(strchr(alpha, *last) - alpha);

		*last = alpha[v ^ 1];
	}
	write_raw(f->path, text, n, 0644);
	expect_refused(f, f->path, KEY_SIGN_PUBLIC, -EINVAL, NULL);
}

static void test_wrong_length_refused(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum key_kind kind;
		size_t len;
	} t[] = {
	    {KEY_SIGN_PUBLIC, 31}, {KEY_SIGN_PUBLIC, 33}, {KEY_SIGN_PUBLIC, 64},
	    {KEY_SIGN_PUBLIC, 0},  {KEY_SIGN_SECRET, 63}, {KEY_SIGN_SECRET, 65},
	    {KEY_SIGN_SECRET, 32}, {KEY_BOX_SECRET, 63},  {KEY_BOX_PUBLIC, 30},
	};
	uint8_t key[96], id[KEYID_LEN];
	char hex[2 * KEYID_LEN + 1], text[512];
	size_t n;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		/* Random tail: some lengths run past the generated key. */
		randombytes_buf(key, sizeof(key));
		gen(t[i].kind, key, id);
		key_id_hex(hex, id);
		n = forge(text, sizeof(text), key_kind_name(t[i].kind), hex, key, t[i].len);
		write_raw(f->path, text, n, 0600);
		expect_refused(f, f->path, t[i].kind, -EINVAL, NULL);
	}
}

static void test_tampered_keyid_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	char good[512], text[512];
	size_t n, at;

	write_valid(f, KEY_SIGN_SECRET, key, id);
	n = read_raw(f->path, good, sizeof(good));
	at = (size_t)(strstr(good, "keyid=") - good) + 6;
	/* Each hex digit changed to another valid digit. */
	for (size_t i = 0; i < 2 * KEYID_LEN; i++) {
		memcpy(text, good, n);
		text[at + i] = text[at + i] == '0' ? '1' : '0';
		write_raw(f->path, text, n, 0600);
		expect_refused(f, f->path, KEY_SIGN_SECRET, -EINVAL, "does not match");
	}
	/* Uppercase hex is not the canonical spelling. */
	memcpy(text, good, n);
	for (size_t i = 0; i < 2 * KEYID_LEN; i++)
		if (text[at + i] >= 'a' && text[at + i] <= 'f')
			text[at + i] = (char)(text[at + i] - 'a' + 'A');
	if (memcmp(text, good, n) != 0) {
		write_raw(f->path, text, n, 0600);
		expect_refused(f, f->path, KEY_SIGN_SECRET, -EINVAL, NULL);
	}
}

static void test_header_variants_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	char hex[2 * KEYID_LEN + 1], b64[128], text[512];
	static const char *const headers[] = {
	    "sluice sign-public v2 keyid=%s\n",   "Sluice sign-public v1 keyid=%s\n",
	    "sluice  sign-public v1 keyid=%s\n",  "sluice sign-public v1 keyid=%s \n",
	    "sluice sign-public v1 keyid=%s\r\n", "sluice sign-public v1 keyid= %s\n",
	    "sluice sign-public v1 id=%s\n",      "sluice sign-publik v1 keyid=%s\n",
	    " sluice sign-public v1 keyid=%s\n",  "sluice sign-public v1 keyid=%s0\n",
	    "\nsluice sign-public v1 keyid=%s\n", "sluice sign-public keyid=%s\n",
	};

	gen(KEY_SIGN_PUBLIC, key, id);
	key_id_hex(hex, id);
	sodium_bin2base64(b64, sizeof(b64), key, 32, sodium_base64_VARIANT_ORIGINAL);
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		int n = snprintf(text, sizeof(text), headers[i], hex);

		snprintf(text + n, sizeof(text) - (size_t)n, "%s\n", b64);
		write_raw(f->path, text, strlen(text), 0644);
		expect_refused(f, f->path, KEY_SIGN_PUBLIC, -EINVAL, NULL);
	}
}

static void test_trailing_garbage_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const tails[] = {"\n", "x", "x\n", "\r", " ", "\0"};
	uint8_t key[64], id[KEYID_LEN];
	char good[512], text[512];
	size_t n;

	write_valid(f, KEY_BOX_PUBLIC, key, id);
	n = read_raw(f->path, good, sizeof(good));
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		size_t tl = tails[i][0] ? strlen(tails[i]) : 1;

		memcpy(text, good, n);
		memcpy(text + n, tails[i], tl);
		write_raw(f->path, text, n + tl, 0644);
		expect_refused(f, f->path, KEY_BOX_PUBLIC, -EINVAL, NULL);
	}
	/* CRLF line ends instead of LF. */
	memcpy(text, good, n);
	text[n - 1] = '\r';
	text[n] = '\n';
	write_raw(f->path, text, n + 1, 0644);
	expect_refused(f, f->path, KEY_BOX_PUBLIC, -EINVAL, NULL);
}

/* Cut the file at every length: none of the prefixes is a key file. */
static void test_truncated_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];
	char good[512];
	size_t n;

	for (size_t k = 0; k < N_KINDS; k++) {
		snprintf(f->path, sizeof(f->path), "%s/%zu", f->dir, k);
		write_valid(f, all_kinds[k], key, id);
		n = read_raw(f->path, good, sizeof(good));
		for (size_t len = 0; len < n; len++) {
			assert_int_equal(truncate(f->path, (off_t)len), 0);
			expect_refused(f, f->path, all_kinds[k], -EINVAL, NULL);
			write_raw(f->path, good, n, key_is_secret(all_kinds[k]) ? 0600 : 0644);
		}
	}
}

/* An X25519 secret whose pk half belongs to another key pair: the header
 * id is consistent with that pk, so only crypto_scalarmult_base catches it. */
static void test_box_secret_pk_mismatch_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN], other[64], other_id[KEYID_LEN];
	char hex[2 * KEYID_LEN + 1], text[512];
	size_t n;

	gen(KEY_BOX_SECRET, key, id);
	gen(KEY_BOX_SECRET, other, other_id);
	memcpy(key + 32, other + 32, 32);
	key_id_hex(hex, other_id);
	n = forge(text, sizeof(text), "box-secret", hex, key, 64);
	write_raw(f->path, text, n, 0600);
	expect_refused(f, f->path, KEY_BOX_SECRET, -EINVAL, "does not belong");
}

/* Same for Ed25519: sk is seed||pk, and a swapped pk half is caught. */
static void test_sign_secret_pk_mismatch_refused(void **state)
{
	struct fixture *f = *state;
	static const enum key_kind kinds[] = {KEY_SIGN_SECRET, KEY_LOG_SECRET};
	uint8_t key[64], id[KEYID_LEN], other[64], other_id[KEYID_LEN];
	char hex[2 * KEYID_LEN + 1], text[512];
	size_t n;

	for (size_t i = 0; i < 2; i++) {
		gen(kinds[i], key, id);
		gen(kinds[i], other, other_id);
		memcpy(key + 32, other + 32, 32);
		key_id_hex(hex, other_id);
		n = forge(text, sizeof(text), key_kind_name(kinds[i]), hex, key, 64);
		write_raw(f->path, text, n, 0600);
		expect_refused(f, f->path, kinds[i], -EINVAL, "does not belong");
	}
}

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	uint8_t key[64], id[KEYID_LEN];

	write_valid(f, KEY_SIGN_PUBLIC, key, id);
	assert_int_equal(keyfile_read(f->path, KEY_INVALID, key, id, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_int_equal(keyfile_read(f->path, KEY_SIGN_PUBLIC, NULL, id, f->err, sizeof(f->err)),
	                 -EINVAL);
	/* A tiny error buffer is truncated, not overrun. */
	f->err[0] = 'x';
	f->err[1] = 'y';
	assert_int_equal(keyfile_read(f->path, KEY_BOX_PUBLIC, key, id, f->err, 1), -EINVAL);
	assert_int_equal(f->err[0], '\0');
	assert_int_equal(f->err[1], 'y');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kinds),
	    cmocka_unit_test(test_keyid_known_answers),
	    cmocka_unit_test(test_keyid_hex),
	    cmocka_unit_test_setup_teardown(test_roundtrip_all_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roundtrip_sodium_malloc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_mode_0600_despite_umask, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_write_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_refuses_inconsistent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_readable_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_public_mode_not_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_regular_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_kind_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_base64_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_length_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampered_keyid_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_header_variants_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trailing_garbage_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_box_secret_pk_mismatch_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign_secret_pk_mismatch_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	/* The modes the tests expect for public files assume this umask. */
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
