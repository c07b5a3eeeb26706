/* SPDX-License-Identifier: MIT */
/* Directory bundles on the receiving side. The object's bytes (staged as one
 * stream file and verified block by block and as a whole) are the bundle's
 * regular files concatenated in entry order. Publication builds the tree in
 * staging beneath a fresh directory, with every path resolved by openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), checks each file against its hash
 * in the signed manifest, makes it durable, and moves the whole directory
 * into the inbox with one renameat2(RENAME_NOREPLACE). Modes are the
 * receiver's: files get --file-mode, executables and directories the same
 * with search/execute bits where it grants read; never setuid, setgid,
 * sticky, nor a sender-chosen owner. */
#ifndef SLUICE_RECEIVER_BUNDLE_H
#define SLUICE_RECEIVER_BUNDLE_H

#include <stdatomic.h>

#include "proto/manifest.h"
#include "staging.h"

/* What proto_manifest_decode does not check of an entry list: paths in
 * strictly ascending byte order (so none twice), and every path's parent is
 * itself listed, as a directory. NULL when acceptable, else the reason. */
const char *bundle_check(const struct manifest *m);

/* Build, verify and publish the bundle whose stream is the staging file
 * fd/part, as inbox/name. The stream file is removed on success. Returns 0;
 * -EEXIST when the name is taken; -EBADMSG when a file does not match its
 * manifest hash (why says which); -ENOSPC; other -errno. Nothing is left in
 * the inbox or staging tree on failure. */
__attribute__((warn_unused_result)) int bundle_publish(struct staging *st, int fd, const char *part,
                                                       const char *name, const struct manifest *m,
                                                       char *why, size_t whylen);

/* bundle_publish in two steps, so that the slow one (copying every file,
 * at the disk's speed) can run on a thread of its own. bundle_build builds,
 * verifies and syncs the tree in staging; it stops with -ECANCELED once
 * *cancel (may be NULL) is set. On failure nothing is left in staging;
 * on success the tree waits there for bundle_commit, which moves it into
 * the inbox and removes the stream file (the tree is removed if it
 * cannot), or bundle_discard, which removes it. */
__attribute__((warn_unused_result)) int bundle_build(struct staging *st, int fd, const char *part,
                                                     const struct manifest *m,
                                                     const atomic_int *cancel, char *why,
                                                     size_t whylen);
__attribute__((warn_unused_result)) int bundle_commit(struct staging *st, const char *part,
                                                      const char *name, char *why, size_t whylen);
void bundle_discard(struct staging *st, const char *part);

/* The staging tree name for a stream file name ("X.part" -> "X.tree"). */
#define BUNDLE_TREE_SUFFIX ".tree"

#endif
