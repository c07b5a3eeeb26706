/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the key-file reader (common/keys.c), on arbitrary file
 * contents. Key files are copied around on removable media, so the reader
 * is written for hostile input; here it must never crash, and whatever it
 * accepts must be exactly what keyfile_write would have written for that
 * key (the format is strict: one canonical form per key). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/keys.h"

static char path[64], canon[80];
static int fd = -1;

static void cleanup(void)
{
	unlink(path);
	unlink(canon);
}

/* A run that crashed (that is the point of fuzzing) skipped atexit: remove
 * the files of fuzzer processes that are gone. */
static void remove_stale(void)
{
	DIR *d = opendir("/tmp");
	struct dirent *e;
	int pid;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (sscanf(e->d_name, "sluice-fuzz-keys.%d", &pid) == 1 && pid > 0 &&
		    kill(pid, 0) < 0 && errno == ESRCH) {
			char p[300];
			snprintf(p, sizeof(p), "/tmp/%s", e->d_name);
			unlink(p);
		}
	}
	closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	remove_stale();
	if (sodium_init() < 0)
		abort();
	snprintf(path, sizeof(path), "/tmp/sluice-fuzz-keys.%d", (int)getpid());
	snprintf(canon, sizeof(canon), "%s.canon", path);
	/* 0600: secret kinds are refused when group or others can read. */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static void check_canonical(enum key_kind kind, const uint8_t *key, const uint8_t *id,
                            const uint8_t *data, size_t size)
{
	uint8_t back[4200];
	int cfd;
	ssize_t n;

	unlink(canon);
	if (keyfile_write(canon, kind, key, id) != 0)
		__builtin_trap(); /* read accepted a key that write refuses */
	cfd = open(canon, O_RDONLY | O_CLOEXEC);
	if (cfd < 0)
		abort();
	n = read(cfd, back, sizeof(back));
	close(cfd);
	if (n < 0 || (size_t)n != size || memcmp(back, data, size) != 0)
		__builtin_trap(); /* accepted a non-canonical file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[64], id[KEYID_LEN], pkid[KEYID_LEN];
	char err[512];
	enum key_kind kind;

	if (size > 8192)
		return 0; /* the reader's limit is 4 KiB; longer adds nothing */
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	err[0] = '\0';
	if (keyfile_kind(path, &kind, err, sizeof(err)) != 0) {
		if (strnlen(err, sizeof(err)) == 0 || strnlen(err, sizeof(err)) == sizeof(err))
			__builtin_trap(); /* a failure must explain itself */
	}
	for (int k = KEY_SIGN_SECRET; k <= KEY_LOG_PUBLIC; k++) {
		memset(key, 0, sizeof(key));
		err[0] = '\0';
		if (keyfile_read(path, (enum key_kind)k, key, id, err, sizeof(err)) != 0) {
			if (strnlen(err, sizeof(err)) == 0 ||
			    strnlen(err, sizeof(err)) == sizeof(err))
				__builtin_trap();
			continue;
		}
		/* Accepted: the header's kind agrees, the id names the public
		 * half, and the bytes are the one canonical encoding. */
		if (keyfile_kind(path, &kind, err, sizeof(err)) != 0 || kind != (enum key_kind)k)
			__builtin_trap();
		key_id(pkid, key_is_secret((enum key_kind)k) ? key + 32 : key);
		if (memcmp(pkid, id, KEYID_LEN) != 0)
			__builtin_trap();
		check_canonical((enum key_kind)k, key, id, data, size);
	}
	sodium_memzero(key, sizeof(key));
	return 0;
}
