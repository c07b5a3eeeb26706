/* SPDX-License-Identifier: MIT */
/* An LD_PRELOAD shim over pwrite(2) for the integration tests, built by
 * them with $CC. It does nothing unless told by the environment:
 *   SHIM_FAIL_AFTER=N SHIM_ERRNO=E  every call after the Nth fails with
 *                                   errno E (a disk that fills, a bad
 *                                   sector), saying so on stderr;
 *   SHIM_DELAY_US=U                 every call of 64 KiB or more waits U
 *                                   microseconds first (a slow disk);
 *   SHIM_WRITE_DELAY_US=U           the same for write(2), which the
 *                                   receiver's bundle builder copies with
 *                                   (it says so on stderr the first time).
 * A sanitizer runtime that intercepts pwrite itself can hide it: the
 * tests check that it took effect. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static ssize_t (*real)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static long calls, after = -1, delay_us, write_delay_us;
static int err;

__attribute__((constructor)) static void init(void)
{
	const char *a = getenv("SHIM_FAIL_AFTER"), *e = getenv("SHIM_ERRNO");
	const char *d = getenv("SHIM_DELAY_US"), *w = getenv("SHIM_WRITE_DELAY_US");

	real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (w)
		write_delay_us = atol(w);
	if (a && e)
		after = atol(a), err = atoi(e);
	if (d)
		delay_us = atol(d);
}

static ssize_t shim(int fd, const void *b, size_t n, off_t off)
{
	if (after >= 0 && ++calls > after) {
		static const char m[] = "shim: injected pwrite failure\n";
		(void)!write(2, m, sizeof(m) - 1);
		errno = err;
		return -1;
	}
	if (delay_us > 0 && n >= 65536)
		usleep((useconds_t)delay_us);
	return real(fd, b, n, off);
}

ssize_t pwrite(int fd, const void *b, size_t n, off_t off)
{
	return shim(fd, b, n, off);
}

ssize_t pwrite64(int fd, const void *b, size_t n, off_t off)
{
	return shim(fd, b, n, off);
}

ssize_t write(int fd, const void *b, size_t n)
{
	static int said;

	if (write_delay_us > 0 && n >= 65536) {
		if (!said) {
			static const char m[] = "shim: slowing large writes\n";
			said = 1;
			(void)!real_write(2, m, sizeof(m) - 1);
		}
		usleep((useconds_t)write_delay_us);
	}
	return real_write(fd, b, n);
}
