/* SPDX-License-Identifier: MIT */
/* Key files: identify, write and strictly read back sluice keys (see keys.h
 * for the format). Reading is written for hostile files: a key file is
 * something an operator copies around on USB sticks, so every byte is checked
 * (size, header, base64, key id, key-pair consistency) before the key is
 * handed to the caller, and nothing of a secret outlives the call on the
 * stack. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"

#define KEYID_DOMAIN "sluice-keyid-v1"
/* Our files are under 150 bytes; anything much bigger is the wrong file. */
#define KEYFILE_MAX 4096
#define KEY_MAX_LEN 64
/* Base64 text of the largest key, without the NUL. */
#define B64_MAX (sodium_base64_ENCODED_LEN(KEY_MAX_LEN, sodium_base64_VARIANT_ORIGINAL) - 1)

static const char *const kind_names[] = {
    [KEY_SIGN_SECRET] = "sign-secret", [KEY_SIGN_PUBLIC] = "sign-public",
    [KEY_BOX_SECRET] = "box-secret",   [KEY_BOX_PUBLIC] = "box-public",
    [KEY_LOG_SECRET] = "log-secret",   [KEY_LOG_PUBLIC] = "log-public",
};
#define KIND_COUNT (sizeof(kind_names) / sizeof(kind_names[0]))

_Static_assert(crypto_sign_SECRETKEYBYTES == 64 && crypto_sign_PUBLICKEYBYTES == 32,
               "Ed25519 key sizes");
_Static_assert(crypto_scalarmult_BYTES == 32 && crypto_scalarmult_SCALARBYTES == 32,
               "X25519 key sizes");
_Static_assert(crypto_generichash_BYTES == 32, "BLAKE2b-256");

size_t key_len(enum key_kind kind)
{
	switch (kind) {
	case KEY_SIGN_SECRET:
	case KEY_BOX_SECRET:
	case KEY_LOG_SECRET:
		return 64;
	case KEY_SIGN_PUBLIC:
	case KEY_BOX_PUBLIC:
	case KEY_LOG_PUBLIC:
		return 32;
	case KEY_INVALID:
		break;
	}
	return 0;
}

const char *key_kind_name(enum key_kind kind)
{
	if ((size_t)kind < KIND_COUNT && kind_names[kind])
		return kind_names[kind];
	return "invalid";
}

int key_is_secret(enum key_kind kind)
{
	return kind == KEY_SIGN_SECRET || kind == KEY_BOX_SECRET || kind == KEY_LOG_SECRET;
}

static enum key_kind key_kind_parse(const char *name, size_t len)
{
	for (size_t k = 1; k < KIND_COUNT; k++)
		if (strlen(kind_names[k]) == len && memcmp(kind_names[k], name, len) == 0)
			return (enum key_kind)k;
	return KEY_INVALID;
}

void key_id(uint8_t out[static KEYID_LEN], const uint8_t pk[static 32])
{
	crypto_generichash_state st;
	uint8_t h[crypto_generichash_BYTES];

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)KEYID_DOMAIN, strlen(KEYID_DOMAIN));
	crypto_generichash_update(&st, pk, 32);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, h, KEYID_LEN);
}

void key_id_hex(char out[static 2 * KEYID_LEN + 1], const uint8_t id[static KEYID_LEN])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < KEYID_LEN; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[2 * KEYID_LEN] = '\0';
}

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt,
                                                         ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The public half a key of this kind vouches for, and whether the secret
 * material really produces it. An Ed25519 sk is seed||pk and an X25519 key
 * file is sk||pk: a tampered or mismatched pk half would make the key id
 * (and everything the peer trusts) name a key we cannot use, so rederive it
 * from the secret part and compare in constant time. Returns 0 or -EINVAL. */
static int check_pair(enum key_kind kind, const uint8_t *key, const uint8_t **pk)
{
	uint8_t derived_pk[32];
	uint8_t derived_sk[crypto_sign_SECRETKEYBYTES];
	int ret = 0;

	switch (kind) {
	case KEY_SIGN_PUBLIC:
	case KEY_BOX_PUBLIC:
	case KEY_LOG_PUBLIC:
		*pk = key;
		goto out;
	case KEY_SIGN_SECRET:
	case KEY_LOG_SECRET:
		*pk = key + 32;
		if (crypto_sign_seed_keypair(derived_pk, derived_sk, key) != 0)
			ret = -EINVAL;
		break;
	case KEY_BOX_SECRET:
		*pk = key + 32;
		if (crypto_scalarmult_base(derived_pk, key) != 0)
			ret = -EINVAL;
		break;
	case KEY_INVALID:
	default:
		return -EINVAL;
	}
	if (ret == 0 && sodium_memcmp(derived_pk, *pk, 32) != 0)
		ret = -EINVAL;
out:
	sodium_memzero(derived_pk, sizeof(derived_pk));
	sodium_memzero(derived_sk, sizeof(derived_sk));
	return ret;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int keyfile_write(const char *path, enum key_kind kind, const uint8_t *key,
                  const uint8_t id[static KEYID_LEN])
{
	/* Header (< 60 bytes) + base64 + newlines; holds the encoded secret. */
	char text[128 + B64_MAX];
	uint8_t want[KEYID_LEN];
	char idhex[2 * KEYID_LEN + 1];
	const uint8_t *pk;
	size_t len = key_len(kind), n;
	int fd, ret, created = 0;

	if (len == 0 || !key || !path) {
		ret = -EINVAL;
		goto out;
	}
	/* Never write a file that keyfile_read would refuse: the caller's id
	 * must name this key and a secret must match its public half. */
	ret = check_pair(kind, key, &pk);
	if (ret < 0)
		goto out;
	key_id(want, pk);
	if (sodium_memcmp(want, id, KEYID_LEN) != 0) {
		ret = -EINVAL;
		goto out;
	}
	key_id_hex(idhex, id);
	n = (size_t)snprintf(text, sizeof(text), "sluice %s v1 keyid=%s\n", key_kind_name(kind),
	                     idhex);
	sodium_bin2base64(text + n, sizeof(text) - n, key, len, sodium_base64_VARIANT_ORIGINAL);
	n += strlen(text + n);
	text[n++] = '\n';

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          key_is_secret(kind) ? 0600 : 0644);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	created = 1;
	ret = write_all(fd, text, n);
	if (ret == 0 && fsync(fd) != 0)
		ret = -errno;
	/* close() can report a delayed write error (NFS); it counts. */
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
out:
	if (ret < 0 && created)
		unlink(path);
	sodium_memzero(text, sizeof(text));
	return ret;
}

/* Open without following a final symlink and without blocking on a FIFO,
 * check that it is a regular file, and read it whole. Returns the byte count
 * (and the file's mode in *mode) or -errno with err set. */
static int slurp(const char *path, char *buf, size_t cap, mode_t *mode, char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ELOOP)
			seterr(err, errlen,
			       "%s is a symbolic link; key files are never read through symlinks, "
			       "give the path of the key file itself",
			       path);
		else if (ret == -ENOENT)
			seterr(err, errlen,
			       "key file %s does not exist; check the path, or create keys with "
			       "sluice-keygen",
			       path);
		else
			seterr(err, errlen, "cannot open key file %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) != 0) {
		ret = -errno;
		seterr(err, errlen, "cannot stat key file %s: %s", path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		seterr(err, errlen, "%s is not a regular file; give the path of a sluice key file",
		       path);
		goto out;
	}
	*mode = st.st_mode;
	/* Read to EOF rather than trusting st_size, which can change under us;
	 * one byte past the limit is enough to know the file is too big. */
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			seterr(err, errlen, "cannot read key file %s: %s", path, strerror(-ret));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			ret = -EFBIG;
			seterr(err, errlen,
			       "%s is larger than %d bytes, far too big for a sluice key file; "
			       "check that you gave the right file",
			       path, KEYFILE_MAX);
			goto out;
		}
	}
	ret = (int)n;
out:
	close(fd);
	return ret;
}

struct parsed {
	enum key_kind kind;
	uint8_t id[KEYID_LEN];
	const char *b64; /* second line, without its newline */
	size_t b64_len;
};

static int parse_fail(const char *path, char *err, size_t errlen, const char *what)
{
	seterr(err, errlen,
	       "%s is not a valid sluice key file (%s); restore it from a backup or create a new "
	       "key with sluice-keygen",
	       path, what);
	return -EINVAL;
}

/* Strict parse of "sluice <kind> v1 keyid=<16 hex>\n<base64>\n" with nothing
 * before, between or after: no CRs, no trailing blank lines, no NULs. A file
 * cut short anywhere (even just its final newline) is refused. */
static int parse_text(const char *path, const char *buf, size_t n, struct parsed *p, char *err,
                      size_t errlen)
{
	static const char magic[] = "sluice ", ver[] = " v1 keyid=";
	const char *nl1, *nl2, *sp, *q;
	size_t hexlen;

	if (n == 0)
		return parse_fail(path, err, errlen, "the file is empty");
	if (memchr(buf, '\0', n))
		return parse_fail(path, err, errlen, "it contains NUL bytes");
	if (n < sizeof(magic) - 1 || memcmp(buf, magic, sizeof(magic) - 1) != 0)
		return parse_fail(path, err, errlen, "it does not start with \"sluice \"");
	nl1 = memchr(buf, '\n', n);
	if (!nl1)
		return parse_fail(path, err, errlen, "the header line is incomplete");
	q = buf + sizeof(magic) - 1;
	sp = memchr(q, ' ', (size_t)(nl1 - q));
	if (!sp)
		return parse_fail(path, err, errlen, "the header line is incomplete");
	p->kind = key_kind_parse(q, (size_t)(sp - q));
	if (p->kind == KEY_INVALID)
		return parse_fail(path, err, errlen, "unknown key kind in the header");
	q = sp;
	if ((size_t)(nl1 - q) < sizeof(ver) - 1 || memcmp(q, ver, sizeof(ver) - 1) != 0)
		return parse_fail(path, err, errlen,
		                  "the header does not say \"v1 keyid=\"; is it from a newer "
		                  "sluice version?");
	q += sizeof(ver) - 1;
	hexlen = (size_t)(nl1 - q);
	if (hexlen != 2 * KEYID_LEN)
		return parse_fail(path, err, errlen,
		                  "the key id in the header is not 16 hex digits");
	for (size_t i = 0; i < hexlen; i++)
		if (!((q[i] >= '0' && q[i] <= '9') || (q[i] >= 'a' && q[i] <= 'f')))
			return parse_fail(
			    path, err, errlen,
			    "the key id in the header is not 16 lowercase hex digits");
	if (sodium_hex2bin(p->id, KEYID_LEN, q, hexlen, NULL, NULL, NULL) != 0)
		return parse_fail(path, err, errlen, "the key id in the header is not hex");

	p->b64 = nl1 + 1;
	nl2 = memchr(p->b64, '\n', (size_t)(buf + n - p->b64));
	if (!nl2)
		return parse_fail(path, err, errlen, "the key line is missing or cut short");
	if (nl2 + 1 != buf + n)
		return parse_fail(path, err, errlen, "there is extra text after the key line");
	p->b64_len = (size_t)(nl2 - p->b64);
	return 0;
}

int keyfile_kind(const char *path, enum key_kind *kind, char *err, size_t errlen)
{
	char buf[KEYFILE_MAX + 1];
	struct parsed p;
	mode_t mode;
	int ret;

	ret = slurp(path, buf, sizeof(buf), &mode, err, errlen);
	if (ret < 0)
		goto out;
	ret = parse_text(path, buf, (size_t)ret, &p, err, errlen);
	if (ret == 0)
		*kind = p.kind;
out:
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

int keyfile_read(const char *path, enum key_kind kind, uint8_t *out, uint8_t id[KEYID_LEN],
                 char *err, size_t errlen)
{
	char buf[KEYFILE_MAX + 1];
	uint8_t key[KEY_MAX_LEN];
	uint8_t want[KEYID_LEN];
	char got_hex[2 * KEYID_LEN + 1], want_hex[2 * KEYID_LEN + 1];
	const uint8_t *pk;
	const char *end;
	struct parsed p;
	size_t len = key_len(kind), bin_len;
	mode_t mode;
	int ret;

	if (len == 0 || !out || !path) {
		seterr(err, errlen, "internal error: invalid key kind or buffer for %s",
		       path ? path : "(null)");
		ret = -EINVAL;
		goto out;
	}
	ret = slurp(path, buf, sizeof(buf), &mode, err, errlen);
	if (ret < 0)
		goto out;
	ret = parse_text(path, buf, (size_t)ret, &p, err, errlen);
	if (ret < 0)
		goto out;
	/* Kind before mode: someone who passed a .pub where a secret is needed
	 * should be told so, not told to chmod the public file. */
	if (p.kind != kind) {
		ret = -EINVAL;
		seterr(err, errlen,
		       "%s is a %s key, but a %s key is needed here; check which file "
		       "you gave",
		       path, key_kind_name(p.kind), key_kind_name(kind));
		goto out;
	}
	/* Like ssh and signify: a secret others could have read is refused, so
	 * the operator notices, fixes the mode and considers the key exposed. */
	if (key_is_secret(kind) && (mode & 077) != 0) {
		ret = -EPERM;
		seterr(err, errlen,
		       "secret key file %s is accessible to group or others (mode %04o); "
		       "run: chmod 600 %s",
		       path, (unsigned)(mode & 07777), path);
		goto out;
	}
	/* Exact length first, so a short or long key line gets a clear message
	 * and the decoder is never asked to guess. */
	if (p.b64_len != sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) - 1) {
		ret = parse_fail(path, err, errlen, "the key line has the wrong length");
		goto out;
	}
	if (sodium_base642bin(key, sizeof(key), p.b64, p.b64_len, NULL, &bin_len, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != p.b64 + p.b64_len || bin_len != len) {
		ret = parse_fail(path, err, errlen, "the key line is not valid base64");
		goto out;
	}
	/* One spelling only: libsodium's decoder also takes some bytes that
	 * are not base64 (>= 0x80), so the line must be exactly what the
	 * writer would produce for these bytes. */
	{
		char canon[B64_MAX + 1];
		int differs;
		sodium_bin2base64(canon, sizeof(canon), key, len, sodium_base64_VARIANT_ORIGINAL);
		differs = memcmp(canon, p.b64, p.b64_len) != 0;
		sodium_memzero(canon, sizeof(canon)); /* the secret, spelt out */
		if (differs) {
			ret = parse_fail(path, err, errlen, "the key line is not valid base64");
			goto out;
		}
	}
	if (check_pair(kind, key, &pk) != 0) {
		ret = parse_fail(path, err, errlen,
		                 "its public half does not belong to its secret half");
		goto out;
	}
	key_id(want, pk);
	if (sodium_memcmp(want, p.id, KEYID_LEN) != 0) {
		key_id_hex(got_hex, p.id);
		key_id_hex(want_hex, want);
		ret = -EINVAL;
		seterr(err, errlen,
		       "%s: the key id in the header (%s) does not match the key (%s); the file "
		       "was damaged or edited, restore it from a backup or create a new key",
		       path, got_hex, want_hex);
		goto out;
	}
	/* Only a fully checked key reaches the caller's buffer. */
	memcpy(out, key, len);
	if (id)
		memcpy(id, want, KEYID_LEN);
	ret = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(key, sizeof(key));
	return ret;
}
