/* SPDX-License-Identifier: MIT */
/* The sender's durable, per-key sequence counter. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "seqstate.h"

const char *seq_default_dir(char *buf, size_t len)
{
	const char *v;

	if ((v = getenv("SLUICE_STATE_DIR")) && *v)
		snprintf(buf, len, "%s", v);
	else if ((v = getenv("XDG_STATE_HOME")) && *v)
		snprintf(buf, len, "%s/sluice", v);
	else if ((v = getenv("HOME")) && *v)
		snprintf(buf, len, "%s/.local/state/sluice", v);
	else
		snprintf(buf, len, "/var/lib/sluice-send");
	return buf;
}

/* mkdir -p with mode 0700 for what we create. */
static int make_dirs(const char *dir)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static uint64_t read_last(int fd)
{
	char buf[32] = {0};
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	return n > 0 ? strtoull(buf, NULL, 10) : 0;
}

int seq_next(const char *dir, const char *keyid_hex, uint64_t *out, char *err, size_t errlen)
{
	char path[4200], tmp[4300], line[32];
	uint64_t last, next;
	int lock = -1, fd = -1, dfd = -1, rc;

	rc = make_dirs(dir);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create state directory %s: %s; set --state-dir", dir,
		         strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/sequence-%s", dir, keyid_hex);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX) < 0)
		goto fail;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	last = fd >= 0 ? read_last(fd) : 0;
	if (fd >= 0)
		close(fd);
	next = wall_ns() / 1000;
	if (next <= last)
		next = last + 1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	snprintf(line, sizeof(line), "%" PRIu64 "\n", next);
	if (write_full(fd, line, strlen(line)) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0 || fsync(lock) < 0)
		goto fail;
	close(lock);
	*out = next;
	return 0;
fail:
	rc = -errno;
	snprintf(err, errlen,
	         "cannot record the sequence number in %s: %s; set --state-dir to a "
	         "writable directory",
	         dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (lock >= 0)
		close(lock);
	return rc;
}
