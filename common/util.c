/* SPDX-License-Identifier: MIT */
/* Small shared helpers: option parsing, clocks and full-length I/O. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* The number at the start of s, plain decimal ("3", "0.5", ".25"): no
 * sign, space, exponent, hex, nan or inf, which strtod would also take.
 * *end points past it. 0 or -EINVAL. */
static int plain_decimal(const char *s, char **end, double *v)
{
	size_t n;

	if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
		return -EINVAL;
	n = strspn(s, "0123456789.");
	errno = 0;
	*v = strtod(s, end);
	if (errno || *end == s || (size_t)(*end - s) != n || !isfinite(*v))
		return -EINVAL;
	return 0;
}

int parse_rate(const char *s, uint64_t *bps)
{
	char *end;
	double v;

	if (plain_decimal(s, &end, &v) < 0 || !(v > 0))
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1e3, end++;
		break;
	case 'm':
	case 'M':
		v *= 1e6, end++;
		break;
	case 'g':
	case 'G':
		v *= 1e9, end++;
		break;
	default:
		break;
	}
	if (*end && strcasecmp(end, "bit") != 0 && strcasecmp(end, "bps") != 0 &&
	    strcasecmp(end, "bit/s") != 0)
		return -EINVAL;
	if (v < 1000 || v > 1e12)
		return -EINVAL;
	*bps = (uint64_t)v;
	return 0;
}

int parse_percent(const char *s, double *pct)
{
	char *end;
	double v;

	if (plain_decimal(s, &end, &v) < 0 || v > 1000)
		return -EINVAL;
	if (*end == '%')
		end++;
	if (*end)
		return -EINVAL;
	*pct = v;
	return 0;
}

int parse_uint(const char *s, int base, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!(s[0] >= '0' && s[0] <= '9'))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_decimal(const char *s, double *out)
{
	char *end;
	double v;

	if (plain_decimal(s, &end, &v) < 0 || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_hostport(const char *s, int passive, struct sockaddr_storage *ss, socklen_t *sl,
                   char *err, size_t errlen)
{
	char host[256];
	const char *port, *colon;
	struct addrinfo hints = {0}, *res = NULL;
	size_t hlen;
	int rc;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			goto bad;
		hlen = (size_t)(close - s - 1);
		memcpy(host, s + 1, hlen < sizeof(host) ? hlen : 0);
		port = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto bad;
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (hlen < sizeof(host))
			memcpy(host, s, hlen);
	}
	if (hlen == 0 || hlen >= sizeof(host) || !*port)
		goto bad;
	host[hlen] = '\0';
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	hints.ai_flags |= AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", s, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(err, errlen,
	         "'%s' is not an address: use HOST:PORT, e.g. 192.0.2.7:7000 or [::1]:7000", s);
	return -EINVAL;
}

const char *path_hint(int e)
{
	switch (e) {
	case ENOENT:
		return "; create it (or the directory it goes in) first, or correct the path";
	case EACCES:
	case EPERM:
		return "; this account may not use it: fix its owner or mode, or run as an account "
		       "that may";
	case ENOTDIR:
	case ELOOP:
		return "; it, or a directory on its path, is not a directory (a symbolic link is "
		       "not followed here: give the real path)";
	case EROFS:
		return "; it is on a read-only filesystem";
	case ENOSPC:
	case EDQUOT:
		return "; the filesystem (or this account's quota) is full: free some space";
	default:
		return "";
	}
}

const char *bind_hint(int e)
{
	switch (e) {
	case EADDRINUSE:
		return " (another program, perhaps another sluice-recv, listens on it: stop it or "
		       "choose another port)";
	case EADDRNOTAVAIL:
		return " (that address is not one of this host's; check --listen, or use 0.0.0.0)";
	case EACCES:
		return " (ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port)";
	default:
		return "";
	}
}

const char *fmt_bytes(char *buf, size_t len, double bytes)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;

	while (bytes >= 1024 && u < 4)
		bytes /= 1024, u++;
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", bytes, unit[u]);
	return buf;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

uint64_t thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

void sleep_until_ns(uint64_t deadline_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
	                      .tv_nsec = (long)(deadline_ns % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int pread_full(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n, len -= (size_t)n, off += n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n, len -= (size_t)n, off += n;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n, len -= (size_t)n;
	}
	return 0;
}

int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : (int)fd;
}

int tbucket_take(struct tbucket *b, uint64_t now, double burst, double per_sec)
{
	if (b->at == 0)
		b->tokens = burst;
	else if (now > b->at)
		b->tokens += (double)(now - b->at) / 1e9 * per_sec;
	else
		now = b->at;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at = now;
	if (b->tokens < 1.0)
		return 0;
	b->tokens -= 1.0;
	return 1;
}

DIR *dir_entries(int dir_fd)
{
	int fd = dup(dir_fd);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	rewinddir(d); /* a dup shares the offset of earlier readers */
	return d;
}

static int remove_contents(int dir)
{
	DIR *d = fdopendir(dir);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(dir);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = -errno;
			continue;
		}
		int sub =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 || remove_contents(sub) < 0 ||
		    unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0)
			rc = -errno;
	}
	closedir(d);
	return rc;
}

int remove_tree(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = remove_contents(fd);
	if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && rc == 0)
		rc = -errno;
	return rc;
}
