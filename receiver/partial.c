/* SPDX-License-Identifier: MIT */
/* Partial objects kept between sends. State file layout (little-endian):
 *
 *   0 "SLPT"  4 version 1  5 zero (3)  8 block count (4)  12 object size (8)
 *  20 done bitmap (blocks / 8 + 1)  .. k per block (blocks)
 *  .. BLAKE2b-256 of everything before it (32)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/crypto.h"
#include "common/util.h"
#include "partial.h"
#include "proto/bytes.h"

#define STATE_FIXED 20
#define COPY_BUF    (1u << 20)

static size_t state_len(uint32_t blocks)
{
	return STATE_FIXED + (size_t)blocks / 8 + 1 + blocks + PROTO_HASH_LEN;
}

static int open_partial_dir(struct staging *st, int create)
{
	if (create && mkdirat(st->state_fd, "partial", 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(st->state_fd, "partial", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void names(const uint8_t id[PROTO_HASH_LEN], char part[80], char state[80], char tmp[80])
{
	char hex[2 * PROTO_HASH_LEN + 1];

	hex_encode(hex, id, PROTO_HASH_LEN);
	snprintf(part, 80, "%s.part", hex);
	snprintf(state, 80, "%s.state", hex);
	if (tmp)
		snprintf(tmp, 80, "%s.state.tmp", hex);
}

int partial_save(struct staging *st, int fd, char *part, const uint8_t object_id[PROTO_HASH_LEN],
                 uint32_t blocks, const uint8_t *done, const uint8_t *kb)
{
	char pname[80], sname[80], tname[80];
	size_t len = state_len(blocks), bm = (size_t)blocks / 8 + 1;
	uint8_t *buf = calloc(1, len);
	int dir = -1, sfd = -1, rc = 0;
	struct stat sb;

	if (!buf)
		return -ENOMEM;
	names(object_id, pname, sname, tname);
	memcpy(buf, "SLPT", 4);
	buf[4] = 1;
	put_le32(buf + 8, blocks);
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		goto out;
	}
	put_le64(buf + 12, (uint64_t)sb.st_size);
	memcpy(buf + STATE_FIXED, done, bm);
	memcpy(buf + STATE_FIXED + bm, kb, blocks);
	crypto_generichash(buf + len - PROTO_HASH_LEN, PROTO_HASH_LEN, buf, len - PROTO_HASH_LEN,
	                   NULL, 0);
	if (fdatasync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	dir = open_partial_dir(st, 1);
	if (dir < 0) {
		rc = dir;
		dir = -1;
		goto out;
	}
	sfd = openat(dir, tname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (sfd < 0 || (rc = write_full(sfd, buf, len)) < 0 || fsync(sfd) < 0) {
		rc = rc < 0 ? rc : -errno;
		goto out;
	}
	/* A state file must never describe another file than its own: the
	 * old one goes first, the new one comes last. */
	if ((unlinkat(dir, sname, 0) < 0 && errno != ENOENT) ||
	    renameat(st->dir_fd, part, dir, pname) < 0 || renameat(dir, tname, dir, sname) < 0 ||
	    fsync(dir) < 0) {
		rc = -errno;
		goto out;
	}
	fsync(st->dir_fd);
	part[0] = '\0';
out:
	if (sfd >= 0)
		close(sfd);
	if (rc < 0 && dir >= 0)
		unlinkat(dir, tname, 0);
	if (dir >= 0)
		close(dir);
	free(buf);
	return rc;
}

/* Read and check the state file; NULL when missing or not acceptable. */
static uint8_t *load_state(int dir, const char *sname, uint32_t blocks, uint64_t size)
{
	size_t len = state_len(blocks);
	uint8_t *buf = malloc(len + 1), h[PROTO_HASH_LEN];
	int fd = openat(dir, sname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0 && buf)
		n = read(fd, buf, len + 1); /* one more: a longer file is wrong */
	if (fd >= 0)
		close(fd);
	if (!buf || n != (ssize_t)len)
		goto bad;
	crypto_generichash(h, sizeof(h), buf, len - PROTO_HASH_LEN, NULL, 0);
	if (memcmp(buf, "SLPT", 4) != 0 || buf[4] != 1 || get_le32(buf + 8) != blocks ||
	    get_le64(buf + 12) != size || sodium_memcmp(h, buf + len - PROTO_HASH_LEN, sizeof(h)))
		goto bad;
	return buf;
bad:
	free(buf);
	return NULL;
}

static int copy_range(int from, int to, uint64_t off, size_t len, uint8_t **buf)
{
	while (len > 0) {
		loff_t a = (loff_t)off, b = (loff_t)off;
		ssize_t n = copy_file_range(from, &a, to, &b, len, 0);
		if (n > 0) {
			off += (uint64_t)n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EIO;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -errno;
		/* No in-kernel copy here: through a buffer. */
		if (!*buf && !(*buf = malloc(COPY_BUF)))
			return -ENOMEM;
		while (len > 0) {
			size_t m = len < COPY_BUF ? len : COPY_BUF;
			int rc = pread_full(from, *buf, m, (off_t)off);
			if (rc == 0)
				rc = pwrite_full(to, *buf, m, (off_t)off);
			if (rc < 0)
				return rc;
			off += m;
			len -= m;
		}
	}
	return 0;
}

long partial_take(struct staging *st, const char *part, int fd, int keep_fd,
                  const uint8_t object_id[PROTO_HASH_LEN], uint64_t object_size, uint32_t chunk,
                  uint32_t blocks, uint8_t *done, uint8_t *kb, int *fd_out)
{
	char pname[80], sname[80];
	size_t bm = (size_t)blocks / 8 + 1;
	uint8_t *state, *copybuf = NULL;
	int dir, pfd = -1;
	long taken = 0;
	struct stat sb;

	*fd_out = fd;
	dir = open_partial_dir(st, 0);
	if (dir < 0)
		return dir == -ENOENT ? 0 : dir;
	names(object_id, pname, sname, NULL);
	state = load_state(dir, sname, blocks, object_size);
	if (state)
		pfd = openat(dir, pname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	/* Whatever happens next, this partial is used at most once. */
	unlinkat(dir, sname, 0);
	if (!state || pfd < 0 || fstat(pfd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != object_size) {
		unlinkat(dir, pname, 0);
		goto out;
	}
	if (!keep_fd) {
		if (renameat(dir, pname, st->dir_fd, part) < 0) {
			taken = -errno;
			goto out;
		}
		*fd_out = pfd;
		pfd = -1;
	}
	for (uint32_t b = 0; b < blocks; b++) {
		const uint8_t *sd = state + STATE_FIXED;
		if (!(sd[b / 8] & (1u << (b % 8))) || (done[b / 8] & (1u << (b % 8))))
			continue;
		if (keep_fd) {
			uint64_t off = (uint64_t)b * chunk;
			size_t len =
			    (size_t)(object_size - off < chunk ? object_size - off : chunk);
			int rc = copy_range(pfd, fd, off, len, &copybuf);
			if (rc < 0) {
				taken = rc;
				break;
			}
		}
		done[b / 8] |= (uint8_t)(1u << (b % 8));
		kb[b] = state[STATE_FIXED + bm + b];
		taken++;
	}
	if (keep_fd)
		unlinkat(dir, pname, 0);
out:
	if (pfd >= 0)
		close(pfd);
	fsync(dir);
	close(dir);
	free(state);
	free(copybuf);
	return taken;
}

int partial_expire(struct staging *st, uint64_t max_age_s)
{
	int dir = open_partial_dir(st, 0), removed = 0;
	time_t now = time(NULL);
	struct dirent *e;
	DIR *d;

	if (dir < 0)
		return 0;
	d = fdopendir(dir);
	if (!d) {
		close(dir);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		struct stat sb;
		char other[256];
		if (n < 5 || n >= sizeof(other) ||
		    fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
			unlinkat(dirfd(d), e->d_name, 0); /* an interrupted save */
			continue;
		}
		if (strcmp(e->d_name + n - 5, ".part") != 0)
			continue;
		/* Age from the state file, written when the partial was saved. */
		struct stat ss;
		snprintf(other, sizeof(other), "%.*s.state", (int)(n - 5), e->d_name);
		int orphan = fstatat(dirfd(d), other, &ss, AT_SYMLINK_NOFOLLOW) < 0;
		if (orphan || now - ss.st_mtime > (time_t)max_age_s) {
			unlinkat(dirfd(d), other, 0);
			if (unlinkat(dirfd(d), e->d_name, 0) == 0)
				removed++;
		}
	}
	closedir(d);
	return removed;
}
