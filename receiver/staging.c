/* SPDX-License-Identifier: MIT */
/* Staging files and their atomic publication into the inbox. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bundle.h"
#include "common/crashpoint.h"
#include "common/util.h"
#include "staging.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static int open_dir(int at, const char *path, int create)
{
	if (create && mkdirat(at, path, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
}

int staging_open(struct staging *st, const char *inbox, const char *state_dir, char *err,
                 size_t errlen)
{
	struct stat a, b;
	int state_fd;

	st->inbox_fd = st->dir_fd = st->state_fd = -1;
	st->file_mode = 0644;
	st->reserve = 16u << 20;
	st->inbox_fd = open_dir(AT_FDCWD, inbox, 0);
	if (st->inbox_fd < 0) {
		snprintf(err, errlen, "cannot open the inbox directory %s: %s%s", inbox,
		         strerror(errno), path_hint(errno));
		return -errno;
	}
	state_fd = open_dir(AT_FDCWD, state_dir, 1);
	if (state_fd < 0) {
		snprintf(err, errlen, "cannot open the state directory %s: %s%s", state_dir,
		         strerror(errno), path_hint(errno));
		return -errno;
	}
	st->state_fd = state_fd;
	st->dir_fd = open_dir(state_fd, "staging", 1);
	if (st->dir_fd < 0) {
		snprintf(err, errlen, "cannot open %s/staging: %s%s", state_dir, strerror(errno),
		         path_hint(errno));
		return -errno;
	}
	if (fstat(st->inbox_fd, &a) < 0 || fstat(st->dir_fd, &b) < 0 || a.st_dev != b.st_dev) {
		snprintf(err, errlen,
		         "the state directory %s is not on the same filesystem as the inbox %s; "
		         "publication must be an atomic rename, so put --state on that filesystem",
		         state_dir, inbox);
		return -EXDEV;
	}
	return 0;
}

void staging_close(struct staging *st)
{
	if (st->inbox_fd >= 0)
		close(st->inbox_fd);
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	if (st->state_fd >= 0)
		close(st->state_fd);
	st->inbox_fd = st->dir_fd = st->state_fd = -1;
}

int staging_clean(struct staging *st)
{
	DIR *d = dir_entries(st->dir_fd);
	struct dirent *e;
	int removed = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 5 && strcmp(e->d_name + n - 5, ".part") == 0 &&
		    unlinkat(st->dir_fd, e->d_name, 0) == 0)
			removed++;
		else if (n > 5 && strcmp(e->d_name + n - 5, BUNDLE_TREE_SUFFIX) == 0 &&
		         remove_tree(st->dir_fd, e->d_name) == 0)
			removed++; /* a bundle being built when we stopped */
	}
	closedir(d);
	fsync(st->dir_fd);
	return removed;
}

int staging_create(struct staging *st, uint64_t session_id, uint64_t size,
                   char part[STAGING_NAME_MAX], int *fd_out)
{
	struct statvfs vfs;
	int fd, rc;

	if (fstatvfs(st->dir_fd, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < size + st->reserve)
		return -ENOSPC;
	snprintf(part, STAGING_NAME_MAX, "%016" PRIx64 ".part", session_id);
	fd = openat(st->dir_fd, part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (size > 0 && (rc = posix_fallocate(fd, 0, (off_t)size)) != 0 && rc != EOPNOTSUPP) {
		close(fd);
		unlinkat(st->dir_fd, part, 0);
		return -rc;
	}
	crashpoint("staging-created");
	*fd_out = fd;
	return 0;
}

int staging_publish(struct staging *st, int fd, const char *part, const char *name)
{
	if (fchmod(fd, st->file_mode) < 0 || fsync(fd) < 0)
		return -errno;
	crashpoint("before-publish-rename");
	if (syscall(SYS_renameat2, st->dir_fd, part, st->inbox_fd, name, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* Filesystem without RENAME_NOREPLACE: link() never replaces
		 * either; then drop the staging name. */
		if (linkat(st->dir_fd, part, st->inbox_fd, name, 0) < 0)
			return -errno;
		unlinkat(st->dir_fd, part, 0);
	}
	crashpoint("after-publish-rename");
	if (fsync(st->inbox_fd) < 0)
		return -errno;
	fsync(st->dir_fd);
	return 0;
}

void staging_discard(struct staging *st, const char *part)
{
	unlinkat(st->dir_fd, part, 0);
}
