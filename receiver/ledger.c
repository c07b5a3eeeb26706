/* SPDX-License-Identifier: MIT */
/* Durable per-sender sequence numbers and the set of published objects. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/util.h"
#include "ledger.h"
#include "proto/bytes.h"
#include "proto/manifest.h"

static int subdir(int at, const char *name)
{
	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int ledger_open(struct ledger *l, int state_fd)
{
	l->state_fd = state_fd; /* borrowed from staging, which closes it */
	l->journal_fd = -1;
	l->senders_fd = subdir(state_fd, "senders");
	l->objects_fd = subdir(state_fd, "objects");
	if (l->senders_fd < 0 || l->objects_fd < 0) {
		int rc = l->senders_fd < 0 ? l->senders_fd : l->objects_fd;
		ledger_close(l);
		return rc;
	}
	return 0;
}

void ledger_close(struct ledger *l)
{
	if (l->senders_fd >= 0)
		close(l->senders_fd);
	if (l->objects_fd >= 0)
		close(l->objects_fd);
	if (l->journal_fd >= 0)
		close(l->journal_fd);
	l->senders_fd = l->objects_fd = l->journal_fd = -1;
}

uint64_t ledger_sequence(const struct ledger *l, const uint8_t id[static PROTO_KEYID_LEN])
{
	char name[2 * PROTO_KEYID_LEN + 1], buf[32] = {0};
	int fd;
	ssize_t n;

	hex_encode(name, id, PROTO_KEYID_LEN);
	fd = openat(l->senders_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtoull(buf, NULL, 10) : 0;
}

int ledger_set_sequence(struct ledger *l, const uint8_t id[static PROTO_KEYID_LEN], uint64_t seq)
{
	char name[2 * PROTO_KEYID_LEN + 1], tmp[2 * PROTO_KEYID_LEN + 8], line[32];
	int fd, rc = 0;

	hex_encode(name, id, PROTO_KEYID_LEN);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	snprintf(line, sizeof(line), "%" PRIu64 "\n", seq);
	fd =
	    openat(l->senders_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = write_full(fd, line, strlen(line));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(l->senders_fd, tmp, l->senders_fd, name) < 0)
		rc = -errno;
	if (rc == 0 && fsync(l->senders_fd) < 0)
		rc = -errno;
	return rc;
}

int ledger_has_object(const struct ledger *l, const uint8_t oid[static PROTO_HASH_LEN])
{
	char name[2 * PROTO_HASH_LEN + 1];
	struct stat st;

	hex_encode(name, oid, PROTO_HASH_LEN);
	return fstatat(l->objects_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int ledger_add_object(struct ledger *l, const uint8_t oid[static PROTO_HASH_LEN])
{
	char name[2 * PROTO_HASH_LEN + 1];
	int fd;

	hex_encode(name, oid, PROTO_HASH_LEN);
	fd = openat(l->objects_fd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return fsync(l->objects_fd) < 0 ? -errno : 0;
}

/* Journal layout: object id (32) | content hash (32) | sender (8) |
 * sequence (8) | size (8) | session (8) | kind (1) | entries (4) |
 * name length (2) | name | BLAKE2b-256 of all before (32). */
#define INTENT_FIXED (32 + 32 + 8 + 8 + 8 + 8 + 1 + 4 + 2)
#define INTENT_NAME  "publishing"

#define INTENT_SLOT  INTENT_NAME ".slot"
#define INTENT_SPACE 4096

/* The journal's file, allocated once; after a crash it may be found under
 * either name. */
int ledger_intent_prepare(struct ledger *l)
{
	int fd;

	if (l->journal_fd >= 0)
		return 0;
	fd = openat(l->state_fd, INTENT_SLOT, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = posix_fallocate(fd, 0, INTENT_SPACE);
	if (rc != 0 && rc != EOPNOTSUPP) {
		close(fd);
		return -rc;
	}
	l->journal_fd = fd;
	return 0;
}

int ledger_intent_write(struct ledger *l, const struct ledger_intent *in)
{
	uint8_t buf[INTENT_SPACE] = {0}, *p = buf;
	size_t nlen = strnlen(in->name, 255);
	int rc = ledger_intent_prepare(l);

	if (rc < 0)
		return rc;
	memcpy(p, in->object_id, 32), p += 32;
	memcpy(p, in->content, 32), p += 32;
	memcpy(p, in->sender, 8), p += 8;
	put_le64(p, in->sequence), p += 8;
	put_le64(p, in->size), p += 8;
	put_le64(p, in->session), p += 8;
	*p++ = in->kind;
	put_le32(p, in->entries), p += 4;
	put_le16(p, (uint16_t)nlen), p += 2;
	memcpy(p, in->name, nlen), p += nlen;
	crypto_generichash(p, PROTO_HASH_LEN, buf, (size_t)(p - buf), NULL, 0);
	/* Overwrite the allocated space in place: no new blocks needed. */
	rc = pwrite_full(l->journal_fd, buf, sizeof(buf), 0);
	if (rc == 0 && fdatasync(l->journal_fd) < 0)
		rc = -errno;
	if (rc == 0 && renameat(l->state_fd, INTENT_SLOT, l->state_fd, INTENT_NAME) < 0)
		rc = -errno;
	if (rc == 0 && fsync(l->state_fd) < 0)
		rc = -errno;
	return rc;
}

int ledger_intent_read(struct ledger *l, struct ledger_intent *out)
{
	uint8_t buf[INTENT_SPACE], h[PROTO_HASH_LEN];
	const uint8_t *p = buf;
	ssize_t n;
	size_t nlen;
	int fd = openat(l->state_fd, INTENT_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < INTENT_FIXED + PROTO_HASH_LEN)
		goto damaged;
	nlen = get_le16(buf + INTENT_FIXED - 2);
	if (nlen > 255 || (size_t)n < INTENT_FIXED + nlen + PROTO_HASH_LEN)
		goto damaged;
	crypto_generichash(h, sizeof(h), buf, INTENT_FIXED + nlen, NULL, 0);
	if (sodium_memcmp(h, buf + INTENT_FIXED + nlen, PROTO_HASH_LEN) != 0)
		goto damaged;
	memset(out, 0, sizeof(*out));
	memcpy(out->object_id, p, 32), p += 32;
	memcpy(out->content, p, 32), p += 32;
	memcpy(out->sender, p, 8), p += 8;
	out->sequence = get_le64(p), p += 8;
	out->size = get_le64(p), p += 8;
	out->session = get_le64(p), p += 8;
	out->kind = *p++;
	out->entries = get_le32(p), p += 4;
	p += 2;
	memcpy(out->name, p, nlen);
	out->name[nlen] = '\0';
	if (!proto_name_valid((const uint8_t *)out->name, nlen))
		goto damaged;
	return 1;
damaged:
	ledger_intent_clear(l); /* torn by the crash: the rename never happened */
	return 0;
}

void ledger_intent_clear(struct ledger *l)
{
	/* Back to the slot, keeping its space for the next publication. */
	if (renameat(l->state_fd, INTENT_NAME, l->state_fd, INTENT_SLOT) == 0)
		fsync(l->state_fd);
}
