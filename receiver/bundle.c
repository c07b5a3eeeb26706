/* SPDX-License-Identifier: MIT */
/* Directory bundles: entry-list policy, tree building, publication. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sodium.h>

#include "bundle.h"
#include "common/crashpoint.h"
#include "common/util.h"
#include "proto/bytes.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define COPY_BUF (1u << 20)

/* ---- entry-list policy ---------------------------------------------------- */

static int path_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

/* Offset of the entry whose path is exactly p[0..len), by binary search in
 * the sorted offsets; -1 if none. */
static long find_entry(const struct manifest *m, const uint32_t *offs, uint32_t n, const uint8_t *p,
                       size_t len)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const uint8_t *e = m->entries + offs[mid];
		int c = path_cmp(e + MANIFEST_ENTRY_FIXED, get_le16(e), p, len);
		if (c == 0)
			return (long)offs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const char *bundle_check(const struct manifest *m)
{
	struct manifest_entry e, prev = {0};
	uint32_t off = 0, n = 0, *offs;
	const char *why = NULL;
	int rc;

	/* proto_manifest_decode has bounded entry_count and checked every
	 * entry; this adds the order and parent rules. */
	offs = malloc((size_t)m->entry_count * sizeof(*offs));
	if (!offs)
		return "out of memory checking the bundle's entry list";
	for (;;) {
		uint32_t at = off;
		rc = proto_entry_next(m, &off, &e);
		if (rc != 1)
			break;
		if (n > 0 && path_cmp(prev.path, prev.path_len, e.path, e.path_len) >= 0) {
			why = "bundle entries are not in strictly ascending path order (a path "
			      "listed twice?)";
			break;
		}
		const uint8_t *slash = NULL;
		for (size_t i = e.path_len; i-- > 0;)
			if (e.path[i] == '/') {
				slash = e.path + i;
				break;
			}
		if (slash) {
			long p = find_entry(m, offs, n, e.path, (size_t)(slash - e.path));
			if (p < 0 || m->entries[p + 2] != ENTRY_DIR) {
				why = "a bundle entry's parent directory is not listed as a "
				      "directory";
				break;
			}
		}
		offs[n++] = at;
		prev = e;
	}
	if (!why && rc < 0)
		why = "bundle entry list is malformed";
	free(offs);
	return why;
}

/* ---- building ------------------------------------------------------------- */

struct builder {
	int stream; /* the verified stream file */
	int root;   /* the staging tree's top directory */
	uint64_t off;
	uint8_t *buf;
	mode_t file_mode, exec_mode;
	const atomic_int *cancel; /* non-zero: stop (NULL: never) */
	char *why;
	size_t whylen;
};

static void say(struct builder *b, const struct manifest_entry *e, const char *what)
{
	snprintf(b->why, b->whylen, "%s: %.*s", what, (int)(e->path_len > 200 ? 200 : e->path_len),
	         (const char *)e->path);
}

/* Make directory path (its parent exists: bundle_check) beneath root. */
static int make_dir(struct builder *b, const char *path)
{
	const char *slash = strrchr(path, '/');
	int parent = b->root, rc = 0;

	if (slash) {
		char *pp = strndup(path, (size_t)(slash - path));
		if (!pp)
			return -ENOMEM;
		parent = open_beneath(b->root, pp, O_PATH | O_DIRECTORY, 0);
		free(pp);
		if (parent < 0)
			return parent;
	}
	if (mkdirat(parent, slash ? slash + 1 : path, 0700) < 0) {
		rc = -errno;
	} else {
		/* The mode explicitly: mkdir's would be cut by the umask. */
		int fd = open_beneath(b->root, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fd < 0)
			rc = fd;
		else if (fchmod(fd, b->exec_mode) < 0)
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (parent != b->root)
		close(parent);
	return rc;
}

/* Copy the file's bytes from the stream, hashing as they go. */
static int make_file(struct builder *b, const struct manifest_entry *e, const char *path)
{
	crypto_generichash_state h;
	uint8_t got[PROTO_HASH_LEN];
	uint64_t left = e->size;
	int fd, rc = 0;

	fd = open_beneath(b->root, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	if (e->size > 0 && (rc = posix_fallocate(fd, 0, (off_t)e->size)) != 0 && rc != EOPNOTSUPP &&
	    rc != EINVAL) {
		close(fd);
		return -rc;
	}
	rc = 0;
	crypto_generichash_init(&h, NULL, 0, PROTO_HASH_LEN);
	while (left > 0 && rc == 0) {
		size_t n = left < COPY_BUF ? (size_t)left : COPY_BUF;
		if (b->cancel && atomic_load(b->cancel)) {
			rc = -ECANCELED;
			break;
		}
		rc = pread_full(b->stream, b->buf, n, (off_t)b->off);
		if (rc < 0)
			break;
		crypto_generichash_update(&h, b->buf, n);
		rc = write_full(fd, b->buf, n);
		b->off += n;
		left -= n;
	}
	crypto_generichash_final(&h, got, sizeof(got));
	if (rc == 0 && sodium_memcmp(got, e->hash, PROTO_HASH_LEN) != 0) {
		say(b, e, "a file in the bundle does not match its hash in the manifest");
		rc = -EBADMSG;
	}
	if (rc == 0) {
		struct timespec t[2] = {{.tv_nsec = UTIME_OMIT},
		                        {.tv_sec = (time_t)e->mtime, .tv_nsec = 0}};
		if (fchmod(fd, e->mode == ENTRY_EXEC ? b->exec_mode : b->file_mode) < 0)
			rc = -errno;
		else if (e->mtime <= INT64_MAX)
			(void)futimens(fd, t); /* cosmetic: a failure loses nothing */
	}
	close(fd);
	return rc;
}

static int build(struct builder *b, const struct manifest *m)
{
	struct manifest_entry e;
	uint32_t off = 0;
	char path[MANIFEST_MAX_PATH + 1];
	int rc;

	while ((rc = proto_entry_next(m, &off, &e)) == 1) {
		memcpy(path, e.path, e.path_len);
		path[e.path_len] = '\0';
		rc = e.mode == ENTRY_DIR ? make_dir(b, path) : make_file(b, &e, path);
		if (rc < 0) {
			if (rc != -EBADMSG && rc != -ECANCELED)
				say(b, &e,
				    rc == -ENOSPC ? "disk full while building the bundle"
				                  : "cannot create a bundle entry in staging");
			return rc;
		}
	}
	return rc < 0 ? -EBADMSG : 0;
}

/* The staging tree's name for stream file part ("X.part" -> "X.tree"). */
static int tree_name(char *tree, size_t len, const char *part)
{
	size_t plen = strlen(part);

	if (plen < 5 || plen + sizeof(BUNDLE_TREE_SUFFIX) > len)
		return -EINVAL;
	snprintf(tree, len, "%.*s%s", (int)(plen - 5), part, BUNDLE_TREE_SUFFIX);
	return 0;
}

int bundle_build(struct staging *st, int fd, const char *part, const struct manifest *m,
                 const atomic_int *cancel, char *why, size_t whylen)
{
	struct builder b = {
	    .stream = fd, .root = -1, .cancel = cancel, .why = why, .whylen = whylen};
	char tree[STAGING_NAME_MAX + 8];
	struct statvfs vfs;
	int rc;

	snprintf(why, whylen, "cannot build the bundle in staging");
	if (tree_name(tree, sizeof(tree), part) < 0)
		return -EINVAL;
	/* The tree is a second copy of the stream until the stream goes. */
	if (fstatvfs(st->dir_fd, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < m->object_size + st->reserve) {
		snprintf(why, whylen, "disk full: not enough space to build the bundle in staging");
		return -ENOSPC;
	}
	b.file_mode = st->file_mode & 0777;
	b.exec_mode = b.file_mode | ((b.file_mode & 0444) >> 2);
	b.buf = malloc(COPY_BUF);
	if (!b.buf)
		return -ENOMEM;
	(void)remove_tree(st->dir_fd, tree);
	if (mkdirat(st->dir_fd, tree, 0700) < 0 ||
	    (b.root = openat(st->dir_fd, tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
	        0) {
		rc = -errno;
	} else {
		rc = build(&b, m);
		/* Everything written above, files and directories, reaches the
		 * disk before the tree can become visible. */
		if (rc == 0 &&
		    (syncfs(b.root) < 0 || fchmod(b.root, b.exec_mode) < 0 || fsync(b.root) < 0))
			rc = -errno;
	}
	if (rc == 0)
		crashpoint("bundle-built");
	else
		remove_tree(st->dir_fd, tree);
	if (b.root >= 0)
		close(b.root);
	free(b.buf);
	return rc;
}

int bundle_commit(struct staging *st, const char *part, const char *name, char *why, size_t whylen)
{
	char tree[STAGING_NAME_MAX + 8];
	int rc = 0;

	if (tree_name(tree, sizeof(tree), part) < 0)
		return -EINVAL;
	if (syscall(SYS_renameat2, st->dir_fd, tree, st->inbox_fd, name, RENAME_NOREPLACE) < 0) {
		rc = -errno;
		if (rc == -EINVAL || rc == -ENOSYS)
			snprintf(why, whylen,
			         "the inbox filesystem cannot rename without replacing "
			         "(RENAME_NOREPLACE); bundles cannot be published on it");
		remove_tree(st->dir_fd, tree);
		return rc;
	}
	if (fsync(st->inbox_fd) < 0)
		rc = -errno;
	unlinkat(st->dir_fd, part, 0);
	fsync(st->dir_fd);
	return rc;
}

void bundle_discard(struct staging *st, const char *part)
{
	char tree[STAGING_NAME_MAX + 8];

	if (tree_name(tree, sizeof(tree), part) == 0)
		(void)remove_tree(st->dir_fd, tree);
}

int bundle_publish(struct staging *st, int fd, const char *part, const char *name,
                   const struct manifest *m, char *why, size_t whylen)
{
	int rc = bundle_build(st, fd, part, m, NULL, why, whylen);

	return rc < 0 ? rc : bundle_commit(st, part, name, why, whylen);
}
