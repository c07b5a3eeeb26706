/* SPDX-License-Identifier: MIT */
/* Small shared helpers: option parsing of rates, percentages and addresses,
 * clocks, and full-length I/O. */
#ifndef SLUICE_COMMON_UTIL_H
#define SLUICE_COMMON_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* "500m", "1.5g", "800k", "1000000" (bits per second; suffixes k/m/g are
 * powers of 1000, optional "bit"/"bps" suffix). The number is plain
 * decimal, as in parse_decimal. Returns 0 or -EINVAL. */
__attribute__((warn_unused_result)) int parse_rate(const char *s, uint64_t *bps);
/* "10%", "10", "2.5%": 0 <= value <= 1000, plain decimal as in
 * parse_decimal. Returns 0 or -EINVAL. */
__attribute__((warn_unused_result)) int parse_percent(const char *s, double *pct);
/* A plain unsigned integer in base 10 or 8: digits only (no sign, space or
 * empty string, which strtoul would take as 0 or wrap round), at most max.
 * Returns 0 or -EINVAL. */
__attribute__((warn_unused_result)) int parse_uint(const char *s, int base, uint64_t max,
                                                   uint64_t *out);
/* A plain non-negative decimal number such as "3", "0.5" or ".25": digits
 * and a point only, finite. Returns 0 or -EINVAL. */
__attribute__((warn_unused_result)) int parse_decimal(const char *s, double *out);
/* "HOST:PORT", "[V6]:PORT". Resolves with getaddrinfo (numeric or name).
 * Returns 0, or -EINVAL with a user-facing message in err. */
__attribute__((warn_unused_result)) int parse_hostport(const char *s, int passive,
                                                       struct sockaddr_storage *ss, socklen_t *sl,
                                                       char *err, size_t errlen);
/* What to do about a failure to open or create a file or directory by
 * path, for the end of a user-facing message: "; create it first" and the
 * like, or "" when errno e has no obvious remedy. */
const char *path_hint(int e);
/* The same for a failed bind(2) of a listening UDP socket: another program
 * on the port, an address not this host's, a privileged port. */
const char *bind_hint(int e);
/* Human-readable byte count, e.g. "1.50 GiB". */
const char *fmt_bytes(char *buf, size_t len, double bytes);

uint64_t now_ns(void);                     /* CLOCK_MONOTONIC */
uint64_t wall_ns(void);                    /* CLOCK_REALTIME */
uint64_t thread_cpu_ns(void);              /* the calling thread's CPU time */
void sleep_until_ns(uint64_t deadline_ns); /* CLOCK_MONOTONIC absolute */
/* A timestamp t (<= now) moved on by ns, but never past now: a timer that
 * measures silence since t, paused for ns. */
static inline uint64_t later_by(uint64_t t, uint64_t ns, uint64_t now)
{
	return ns < now - t ? t + ns : now;
}

/* Loop over short reads/writes and EINTR; 0 or -errno (-EIO for EOF). */
__attribute__((warn_unused_result)) int pread_full(int fd, void *buf, size_t len, off_t off);
__attribute__((warn_unused_result)) int pwrite_full(int fd, const void *buf, size_t len, off_t off);
__attribute__((warn_unused_result)) int write_full(int fd, const void *buf, size_t len);

/* openat2(dirfd, path, flags, mode) resolved with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: the path cannot leave dirfd
 * nor pass through a symbolic link, whatever happened to the tree since it
 * was checked. O_CLOEXEC is added. Returns the fd or -errno (-ENOSYS on
 * kernels before 5.6: callers refuse rather than fall back). */
__attribute__((warn_unused_result)) int open_beneath(int dirfd, const char *path, int flags,
                                                     mode_t mode);

/* A token bucket: burst tokens, refilled at per_sec. */
struct tbucket {
	double tokens;
	uint64_t at; /* CLOCK_MONOTONIC ns of the last refill; 0: never used (full) */
};
/* Take one token: 1, or 0 when the bucket is empty. A now earlier than the
 * last call (callers read their clocks at different times) adds nothing. */
int tbucket_take(struct tbucket *b, uint64_t now, double burst, double per_sec);

/* A readdir stream over dir_fd's entries from the start, on a dup of it, so
 * dir_fd stays open after closedir. NULL with errno set on failure. */
DIR *dir_entries(int dir_fd);

/* Remove directory `name` in dir_fd and everything beneath it, never
 * following a symbolic link (a link is removed, not its target). 0 when it
 * is gone (or was never there), else -errno of the first failure. */
int remove_tree(int dir_fd, const char *name);

#endif
