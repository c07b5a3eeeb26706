/* SPDX-License-Identifier: MIT */
/* Privilege drop, no_new_privs, Landlock and seccomp for sluice-recv. */
#ifndef SLUICE_RECEIVER_SANDBOX_H
#define SLUICE_RECEIVER_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

#define SANDBOX_MAX_DIRS 8

struct sandbox_cfg {
	int have_user;
	uid_t uid;
	gid_t gid;
	int no_confine;             /* drop privileges and set no_new_privs only */
	int dirs[SANDBOX_MAX_DIRS]; /* O_PATH fds of the only writable trees */
	unsigned ndirs;
};

struct sandbox_result {
	int landlock_abi; /* 0: Landlock not available or not applied */
	int seccomp;
	uid_t uid;
};

/* 0 in sanitizer builds, where Landlock and seccomp are not applied. */
int sandbox_supported(void);

/* Look up --user before anything is locked down. */
__attribute__((warn_unused_result)) int sandbox_user(const char *name, uid_t *uid, gid_t *gid,
                                                     char *err, size_t errlen);
/* Apply everything; on failure the process must exit (it is half-confined). */
__attribute__((warn_unused_result)) int
sandbox_apply(const struct sandbox_cfg *c, struct sandbox_result *res, char *err, size_t errlen);
/* Try what the sandbox must forbid: read /etc/shadow, create a file in
 * probe_dir, open a socket, exec. 0 when all were refused. */
int sandbox_selftest(const char *probe_dir);

#endif
