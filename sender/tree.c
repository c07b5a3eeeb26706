/* SPDX-License-Identifier: MIT */
/* Directory bundles: walk, validate and sort the tree below a directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tree.h"

static int add(struct tree *t, const char *path, size_t len, uint8_t mode, const struct stat *st)
{
	struct tree_entry *e;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct tree_entry *ne = realloc(t->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		t->e = ne;
		t->cap = cap;
	}
	e = &t->e[t->n];
	memset(e, 0, sizeof(*e));
	e->path = strndup(path, len);
	if (!e->path)
		return -ENOMEM;
	e->path_len = (uint16_t)len;
	e->mode = mode;
	e->size = mode == ENTRY_DIR ? 0 : (uint64_t)st->st_size;
	e->mtim = st->st_mtim;
	t->n++;
	if (mode != ENTRY_DIR)
		t->total += e->size;
	return 0;
}

/* Walk dir (an open directory fd, consumed) whose path in the bundle is
 * prefix[0..plen). */
static int walk(struct tree *t, int dir, char *prefix, size_t plen, char *err, size_t errlen)
{
	DIR *d = fdopendir(dir);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(dir);
		return -errno;
	}
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t nlen = strlen(name), len;
		struct stat st;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		len = plen + (plen ? 1 : 0) + nlen;
		if (len > MANIFEST_MAX_PATH) {
			snprintf(err, errlen,
			         "a path in the bundle is longer than %d bytes: %.*s/%s...",
			         MANIFEST_MAX_PATH, (int)(plen > 60 ? 60 : plen), prefix, name);
			rc = -ENAMETOOLONG;
			break;
		}
		if (plen)
			prefix[plen] = '/';
		memcpy(prefix + plen + (plen ? 1 : 0), name, nlen);
		prefix[len] = '\0';
		if (!proto_path_valid((const uint8_t *)prefix, len)) {
			snprintf(err, errlen,
			         "'%s/%s' cannot be sent: bundle paths may not contain control "
			         "characters; rename it",
			         t->root, prefix);
			rc = -EINVAL;
			break;
		}
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot stat %s/%s: %s", t->root, prefix,
			         strerror(errno));
			break;
		}
		if (S_ISREG(st.st_mode)) {
			rc =
			    add(t, prefix, len, (st.st_mode & 0111) ? ENTRY_EXEC : ENTRY_FILE, &st);
		} else if (S_ISDIR(st.st_mode)) {
			int sub =
			    openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = -errno;
				snprintf(err, errlen, "cannot open directory %s/%s: %s", t->root,
				         prefix, strerror(errno));
				break;
			}
			rc = add(t, prefix, len, ENTRY_DIR, &st);
			if (rc == 0)
				rc = walk(t, sub, prefix, len, err, errlen);
			else
				close(sub);
		} else {
			snprintf(err, errlen,
			         "%s/%s is %s; a bundle carries only regular files and directories "
			         "(remove it or send its target instead)",
			         t->root, prefix,
			         S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file");
			rc = -EINVAL;
		}
		if (rc == 0 && t->n > MANIFEST_MAX_ENTRIES) {
			snprintf(err, errlen, "the bundle has more than %u entries; split it",
			         MANIFEST_MAX_ENTRIES);
			rc = -E2BIG;
		}
	}
	if (rc == 0 && errno != 0)
		rc = -errno;
	closedir(d);
	prefix[plen] = '\0';
	return rc;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct tree_entry *x = a, *y = b;
	size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
	int c = memcmp(x->path, y->path, n);

	return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

int tree_scan(struct tree *t, const char *path, char *err, size_t errlen)
{
	char *prefix;
	int dir, rc;

	memset(t, 0, sizeof(*t));
	t->root_fd = -1;
	t->root = path;
	dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open directory %s: %s", path, strerror(errno));
		return rc;
	}
	t->root_fd = dup(dir);
	prefix = malloc(MANIFEST_MAX_PATH + 2);
	if (t->root_fd < 0 || !prefix) {
		close(dir);
		free(prefix);
		snprintf(err, errlen, "out of memory or file descriptors");
		return -ENOMEM;
	}
	prefix[0] = '\0';
	err[0] = '\0';
	rc = walk(t, dir, prefix, 0, err, errlen);
	free(prefix);
	if (rc < 0) {
		if (!err[0])
			snprintf(err, errlen, "cannot read the directory %s: %s", path,
			         strerror(-rc));
		return rc;
	}
	if (t->n == 0) {
		snprintf(err, errlen, "%s is empty: there is nothing to send", path);
		return -ENODATA;
	}
	qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	return 0;
}

void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i].path);
	free(t->e);
	if (t->root_fd >= 0)
		close(t->root_fd);
	memset(t, 0, sizeof(*t));
	t->root_fd = -1;
}

size_t tree_files(const struct tree *t, const char **paths, uint64_t *sizes)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->e[i].mode == ENTRY_DIR)
			continue;
		paths[n] = t->e[i].path;
		sizes[n] = t->e[i].size;
		n++;
	}
	return n;
}

size_t tree_encode(const struct tree *t, uint8_t **out)
{
	size_t cap = 0, off = 0;
	uint8_t *buf;

	for (size_t i = 0; i < t->n; i++)
		cap += MANIFEST_ENTRY_FIXED + t->e[i].path_len;
	if (cap == 0 || cap > PROTO_MAX_MANIFEST)
		return 0;
	buf = malloc(cap);
	if (!buf)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tree_entry *te = &t->e[i];
		struct manifest_entry e = {.path = (const uint8_t *)te->path,
		                           .path_len = te->path_len,
		                           .mode = te->mode,
		                           .size = te->size,
		                           .mtime =
		                               te->mtim.tv_sec > 0 ? (uint64_t)te->mtim.tv_sec : 0,
		                           .hash = te->hash};
		size_t n = proto_entry_encode(buf + off, cap - off, &e);
		if (n == 0) {
			free(buf);
			return 0;
		}
		off += n;
	}
	*out = buf;
	return off;
}
