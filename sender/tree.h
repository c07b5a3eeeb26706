/* SPDX-License-Identifier: MIT */
/* A directory bundle on the sending side: the tree below a directory, as the
 * sorted entry list the manifest carries. The object's bytes are the
 * contents of its regular files concatenated in entry order. */
#ifndef SLUICE_SENDER_TREE_H
#define SLUICE_SENDER_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/manifest.h"

struct tree_entry {
	char *path; /* relative to the bundle root, '/'-separated */
	uint16_t path_len;
	uint8_t mode; /* enum entry_mode */
	uint64_t size;
	struct timespec mtim;         /* as scanned: the manifest has its seconds; a write
	                               * during the send changes it */
	uint8_t hash[PROTO_HASH_LEN]; /* BLAKE2b-256 of the file; zero for dirs */
};

struct tree {
	int root_fd;      /* the bundle directory, O_DIRECTORY */
	const char *root; /* its path as given, for messages */
	struct tree_entry *e;
	size_t n, cap;
	uint64_t total; /* sum of the file sizes: the object size */
};

/* Walk the directory at path. Only regular files and directories are
 * accepted: a symlink, device, FIFO or socket anywhere in the tree is an
 * error naming it (a bundle never silently differs from its source). Names
 * must be valid bundle paths (proto_path_valid). Entries come out in
 * strictly ascending byte order of their paths, which puts every directory
 * before what it contains. 0 or -errno with a user-facing message in err. */
__attribute__((warn_unused_result)) int tree_scan(struct tree *t, const char *path, char *err,
                                                  size_t errlen);
void tree_free(struct tree *t);

/* The regular files in entry order, for the reader. */
size_t tree_files(const struct tree *t, const char **paths, uint64_t *sizes);

/* Encode the entry list into a malloc'ed buffer. Returns its length, 0 on
 * failure (out of memory or over the manifest's limits). */
size_t tree_encode(const struct tree *t, uint8_t **out);

#endif
