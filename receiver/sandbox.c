/* SPDX-License-Identifier: MIT */
/* Narrow what sluice-recv can do once its socket, directories, keys and log
 * are open: drop to an unprivileged user, forbid regaining privileges,
 * confine the filesystem to the inbox and state directories (Landlock, best
 * effort by ABI), and allow only the system calls the receive path uses
 * (seccomp via libseccomp). A compromise of a parser then cannot read
 * /etc/shadow, write outside the inbox, or run a program. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

int sandbox_supported(void)
{
	/* LeakSanitizer's exit-time check ptraces the process and reads /proc,
	 * which the sandbox forbids (it hangs). Sanitizer builds test the
	 * parsers; the release build tests the sandbox. */
	return !SANITIZED;
}

/* Filesystem rights up to Landlock ABI 3; older ABIs get the subset they
 * know (the kernel rejects unknown bits). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#define FS_ABI1 ((1ULL << 13) - 1)

static uint64_t fs_rights(int abi)
{
	uint64_t r = FS_ABI1;

	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return r;
}

int sandbox_user(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(name);

	if (!pw) {
		snprintf(err, errlen,
		         "no such user '%s' for --user; create a system user for "
		         "sluice-recv (e.g. useradd --system sluice)",
		         name);
		return -ENOENT;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

static int drop_privileges(const struct sandbox_cfg *c, char *err, size_t errlen)
{
	if (!c->have_user)
		return 0;
	if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0) {
		snprintf(err, errlen, "cannot switch to the --user account: %s", strerror(errno));
		return -errno;
	}
	if (setuid(0) == 0) { /* must be irreversible */
		snprintf(err, errlen, "privileges could be regained after dropping them");
		return -EPERM;
	}
	return 0;
}

static int landlock(const struct sandbox_cfg *c, int *applied, char *err, size_t errlen)
{
	int abi =
	    (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	struct landlock_ruleset_attr attr = {0};
	int rs, rc = 0;

	*applied = 0;
	if (abi < 1)
		return 0; /* not in this kernel: best effort, seccomp still applies */
	attr.handled_access_fs = fs_rights(abi);
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0) {
		snprintf(err, errlen, "cannot create a Landlock ruleset: %s", strerror(errno));
		return -errno;
	}
	for (unsigned i = 0; i < c->ndirs && rc == 0; i++) {
		struct landlock_path_beneath_attr pb = {.allowed_access = attr.handled_access_fs,
		                                        .parent_fd = c->dirs[i]};
		if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
			snprintf(err, errlen, "cannot add a Landlock rule: %s", strerror(errno));
			rc = -errno;
		}
	}
	if (rc == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0) {
		snprintf(err, errlen, "cannot apply Landlock: %s", strerror(errno));
		rc = -errno;
	}
	close(rs);
	*applied = rc == 0 ? abi : 0;
	return rc;
}

/* Everything the receive, decode, publish and log paths call, and nothing
 * that starts programs, opens sockets or changes identity. */
static const int allowed[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(lseek),
    SCMP_SYS(close),
    SCMP_SYS(openat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(fstat),
    SCMP_SYS(statx),
    SCMP_SYS(fstatfs),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fadvise64),
    SCMP_SYS(syncfs),
    SCMP_SYS(sync_file_range),
    SCMP_SYS(fallocate),
    SCMP_SYS(ftruncate),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
    SCMP_SYS(linkat),
    SCMP_SYS(unlinkat),
    SCMP_SYS(mkdirat),
    SCMP_SYS(fchmod),
    SCMP_SYS(utimensat),
    SCMP_SYS(getdents64),
    SCMP_SYS(flock),
    SCMP_SYS(fcntl),
    SCMP_SYS(dup),
    SCMP_SYS(copy_file_range),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(mprotect),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    SCMP_SYS(futex),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(recvmmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(recvfrom),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(getrandom),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(tgkill),
    SCMP_SYS(clone),
    SCMP_SYS(clone3),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(openat2),
    SCMP_SYS(fchmodat),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(rename),
    SCMP_SYS(unlink),
    SCMP_SYS(mkdir),
    SCMP_SYS(open),
    SCMP_SYS(stat),
    SCMP_SYS(lstat),
};

static int seccomp(char *err, size_t errlen)
{
	/* Unlisted calls fail with EPERM rather than killing the daemon: a
	 * missed call in a rare error path degrades, it does not take the
	 * enclave's door down. The allow-list is what confines. */
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int rc = ctx ? 0 : -ENOMEM;

	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	if (rc == 0)
		rc = seccomp_load(ctx);
	if (rc < 0)
		snprintf(err, errlen, "cannot install the seccomp filter: %s", strerror(-rc));
	seccomp_release(ctx);
	return rc;
}

int sandbox_apply(const struct sandbox_cfg *c, struct sandbox_result *res, char *err, size_t errlen)
{
	int rc;

	memset(res, 0, sizeof(*res));
	rc = drop_privileges(c, err, errlen);
	if (rc < 0)
		return rc;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return -errno;
	}
	res->uid = getuid();
	if (c->no_confine || !sandbox_supported())
		return 0;
	rc = landlock(c, &res->landlock_abi, err, errlen);
	if (rc < 0)
		return rc;
	rc = seccomp(err, errlen);
	if (rc < 0)
		return rc;
	res->seccomp = 1;
	return 0;
}

int sandbox_selftest(const char *probe_dir)
{
	char path[4096];
	int fails = 0, fd;

	fd = open("/etc/shadow", O_RDONLY | O_CLOEXEC);
	fprintf(stderr, "selftest: open /etc/shadow: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/sluice-sandbox-probe", probe_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	fprintf(stderr, "selftest: create %s: %s\n", path, fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	fprintf(stderr, "selftest: new socket: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	/* /bin/false: if exec were allowed, the exit status would be 1. */
	execl("/bin/false", "false", (char *)NULL);
	fprintf(stderr, "selftest: exec /bin/false: %s\n", strerror(errno));
	return fails ? 1 : 0;
}
