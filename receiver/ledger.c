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

#include "common/crypto.h"
#include "common/util.h"
#include "ledger.h"

static int subdir(int at, const char *name)
{
	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int ledger_open(struct ledger *l, int state_fd)
{
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
	l->senders_fd = l->objects_fd = -1;
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
