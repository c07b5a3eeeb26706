/* SPDX-License-Identifier: MIT */
/* Staging and atomic publication. Objects are assembled in a staging
 * directory on the inbox's filesystem and appear in the inbox only by one
 * renameat2(RENAME_NOREPLACE) after fsync: a reader of the inbox never sees
 * a partial file, and nothing already there is ever overwritten. */
#ifndef SLUICE_RECEIVER_STAGING_H
#define SLUICE_RECEIVER_STAGING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STAGING_NAME_MAX 64

struct staging {
	int inbox_fd;
	int dir_fd;   /* staging directory */
	int state_fd; /* the state directory holding it */
	mode_t file_mode;
	uint64_t reserve; /* bytes of free space always left on the filesystem */
};

/* Open the inbox and STATE_DIR/staging (created 0700), check both are on
 * one filesystem. 0 or -errno with a user-facing message in err. */
__attribute__((warn_unused_result)) int staging_open(struct staging *st, const char *inbox,
                                                     const char *state_dir, char *err,
                                                     size_t errlen);
void staging_close(struct staging *st);

/* Remove leftovers of a previous run (crash, kill -9): every *.part file.
 * Returns how many were removed, or -errno. */
int staging_clean(struct staging *st);

/* Create an empty staging file for a session and reserve size bytes for it
 * (fallocate), so a full disk is found up front. -ENOSPC when the space is
 * not there; -errno otherwise. part receives the staging name. */
__attribute__((warn_unused_result)) int staging_create(struct staging *st, uint64_t session_id,
                                                       uint64_t size, char part[STAGING_NAME_MAX],
                                                       int *fd_out);

/* fsync the file, set the receiver's mode, rename it into the inbox as name
 * without replacing anything, fsync the inbox. -EEXIST if the name is taken
 * (the staging file is left for staging_discard). */
__attribute__((warn_unused_result)) int staging_publish(struct staging *st, int fd,
                                                        const char *part, const char *name);
void staging_discard(struct staging *st, const char *part);

#endif
