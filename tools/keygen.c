/* SPDX-License-Identifier: MIT */
/* sluice-keygen: create the sender's and the receiver's key files, and show
 * the id and kind of any key file.
 *
 *   sender DIR    random Ed25519 pair  → DIR/sender.key   DIR/sender.pub
 *   receiver DIR  random X25519 pair   → DIR/receiver.key DIR/receiver.pub
 *                 random Ed25519 pair  → DIR/log.key      DIR/log.pub
 *   id FILE       key file → verify → "<keyid> <kind>"
 *
 * Keys are never overwritten, and a run either writes every file of its set
 * or none: a failure part-way removes the files this run created.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/keys.h"
#include "common/util.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define MAX_FILES    4

static const char *prog = "sluice-keygen";

/* One file to create: its path, kind and bytes (secrets in sodium_malloc). */
struct keyfile {
	char path[PATH_MAX];
	enum key_kind kind;
	const uint8_t *key;
	const uint8_t *id;
};

/* A key pair as written: secret in guarded, locked memory. */
struct pair {
	uint8_t *sk; /* sodium_malloc'd, 64 bytes */
	uint8_t pk[32];
	uint8_t id[KEYID_LEN];
	char idhex[2 * KEYID_LEN + 1];
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s sender DIR     write DIR/sender.key and DIR/sender.pub\n"
	    "       %s receiver DIR   write DIR/receiver.{key,pub} and DIR/log.{key,pub}\n"
	    "       %s id FILE        print the key id and kind of a key file\n"
	    "Existing key files are never overwritten. DIR is created (mode 0700) if missing.\n",
	    prog, prog, prog);
}

static int make_sign_pair(struct pair *p)
{
	p->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!p->sk)
		return -ENOMEM;
	if (crypto_sign_keypair(p->pk, p->sk) != 0)
		return -EIO;
	key_id(p->id, p->pk);
	key_id_hex(p->idhex, p->id);
	return 0;
}

/* Box secret file layout is sk||pk (see keys.h). */
static int make_box_pair(struct pair *p)
{
	p->sk = sodium_malloc(crypto_box_SECRETKEYBYTES + crypto_box_PUBLICKEYBYTES);
	if (!p->sk)
		return -ENOMEM;
	if (crypto_box_keypair(p->pk, p->sk) != 0)
		return -EIO;
	memcpy(p->sk + crypto_box_SECRETKEYBYTES, p->pk, crypto_box_PUBLICKEYBYTES);
	key_id(p->id, p->pk);
	key_id_hex(p->idhex, p->id);
	return 0;
}

static void free_pair(struct pair *p)
{
	sodium_free(p->sk); /* wipes before freeing; NULL is fine */
	p->sk = NULL;
}

/* DIR exists as a directory, or is created private: the secrets go there. */
static int ensure_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		fprintf(stderr, "%s: cannot create directory %s: %s%s\n", prog, dir,
		        strerror(errno),
		        errno == ENOENT ? " (only the last directory is created; create its "
		                          "parent first)"
		                        : "");
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s exists and is not a directory; choose another DIR\n", prog,
		        dir);
		return -1;
	}
	/* Whoever may rename entries in DIR can swap a key for one of their
	 * own: only its owner (or root), or a sticky directory like /tmp. */
	if (((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		fprintf(stderr,
		        "%s: directory %s can be changed by other users (mode %04o, owner uid %u), "
		        "who could replace the keys in it; use a directory only you can write to "
		        "(chmod go-w %s)\n",
		        prog, dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, dir);
		return -1;
	}
	return 0;
}

static int set_path(struct keyfile *f, const char *dir, const char *name)
{
	int n = snprintf(f->path, sizeof(f->path), "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= sizeof(f->path)) {
		fprintf(stderr, "%s: directory name %s is too long\n", prog, dir);
		return -1;
	}
	return 0;
}

/* Durability of the new names, not just their contents. Best effort: the
 * files are complete either way, so a failure here is only a warning. */
static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) != 0)
		fprintf(stderr, "%s: warning: cannot sync directory %s: %s\n", prog, dir,
		        strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Create every file or none. Existing files are reported before anything
 * is written; O_EXCL in keyfile_write still guards against a race. */
static int write_set(const char *dir, struct keyfile *files, size_t count)
{
	size_t done;
	int ret = 0;

	for (size_t i = 0; i < count; i++) {
		struct stat st;

		/* lstat: a dangling symlink in the way counts as existing. */
		if (lstat(files[i].path, &st) == 0) {
			fprintf(stderr,
			        "%s: %s already exists; %s never overwrites keys: move the old "
			        "files away or choose another directory\n",
			        prog, files[i].path, prog);
			return -1;
		}
		if (errno != ENOENT) {
			fprintf(stderr, "%s: cannot check %s: %s\n", prog, files[i].path,
			        strerror(errno));
			return -1;
		}
	}
	for (done = 0; done < count; done++) {
		ret = keyfile_write(files[done].path, files[done].kind, files[done].key,
		                    files[done].id);
		if (ret < 0)
			break;
	}
	if (ret == 0) {
		sync_dir(dir);
		return 0;
	}
	if (ret == -EEXIST)
		fprintf(stderr,
		        "%s: %s already exists (created while we ran?); nothing was overwritten\n",
		        prog, files[done].path);
	else
		fprintf(stderr, "%s: cannot write %s: %s%s\n", prog, files[done].path,
		        strerror(-ret), path_hint(-ret));
	while (done-- > 0) {
		if (unlink(files[done].path) != 0)
			fprintf(stderr, "%s: could not remove partial output %s: %s\n", prog,
			        files[done].path, strerror(errno));
	}
	fprintf(stderr, "%s: no keys were created\n", prog);
	return -1;
}

static int cmd_sender(const char *dir)
{
	struct pair s = {0};
	struct keyfile f[2] = {0};
	int ret = EXIT_RUNTIME;

	if (ensure_dir(dir) != 0)
		goto out;
	if (make_sign_pair(&s) != 0) {
		fprintf(stderr, "%s: cannot generate a key pair (out of memory?)\n", prog);
		goto out;
	}
	f[0] = (struct keyfile){.kind = KEY_SIGN_SECRET, .key = s.sk, .id = s.id};
	f[1] = (struct keyfile){.kind = KEY_SIGN_PUBLIC, .key = s.pk, .id = s.id};
	if (set_path(&f[0], dir, "sender.key") != 0 || set_path(&f[1], dir, "sender.pub") != 0)
		goto out;
	if (write_set(dir, f, 2) != 0)
		goto out;
	printf("sender key %s: wrote %s (secret, keep on the low side) and %s (copy to the "
	       "receiver's trusted keys)\n",
	       s.idhex, f[0].path, f[1].path);
	ret = 0;
out:
	free_pair(&s);
	return ret;
}

static int cmd_receiver(const char *dir)
{
	struct pair box = {0}, log = {0};
	struct keyfile f[MAX_FILES] = {0};
	int ret = EXIT_RUNTIME;

	if (ensure_dir(dir) != 0)
		goto out;
	if (make_box_pair(&box) != 0 || make_sign_pair(&log) != 0) {
		fprintf(stderr, "%s: cannot generate a key pair (out of memory?)\n", prog);
		goto out;
	}
	f[0] = (struct keyfile){.kind = KEY_BOX_SECRET, .key = box.sk, .id = box.id};
	f[1] = (struct keyfile){.kind = KEY_BOX_PUBLIC, .key = box.pk, .id = box.id};
	f[2] = (struct keyfile){.kind = KEY_LOG_SECRET, .key = log.sk, .id = log.id};
	f[3] = (struct keyfile){.kind = KEY_LOG_PUBLIC, .key = log.pk, .id = log.id};
	if (set_path(&f[0], dir, "receiver.key") != 0 ||
	    set_path(&f[1], dir, "receiver.pub") != 0 || set_path(&f[2], dir, "log.key") != 0 ||
	    set_path(&f[3], dir, "log.pub") != 0)
		goto out;
	if (write_set(dir, f, MAX_FILES) != 0)
		goto out;
	printf("receiver key %s: wrote %s (secret, keep on the high side) and %s (copy to the "
	       "sender)\n",
	       box.idhex, f[0].path, f[1].path);
	printf("receipt-log key %s: wrote %s (secret, keep on the high side) and %s (give to "
	       "whoever verifies the receipt log)\n",
	       log.idhex, f[2].path, f[3].path);
	ret = 0;
out:
	free_pair(&box);
	free_pair(&log);
	return ret;
}

/* Load the key fully (which checks the header id against the key and, for
 * secrets, file mode and key-pair consistency) before printing its id. */
static int cmd_id(const char *path)
{
	char err[512], idhex[2 * KEYID_LEN + 1];
	uint8_t id[KEYID_LEN];
	enum key_kind kind;
	uint8_t *key = NULL;
	int ret = EXIT_RUNTIME;

	if (keyfile_kind(path, &kind, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	key = sodium_malloc(key_len(kind));
	if (!key) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out;
	}
	if (keyfile_read(path, kind, key, id, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	key_id_hex(idhex, id);
	printf("%s %s\n", idhex, key_kind_name(kind));
	ret = 0;
out:
	sodium_free(key);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd, *arg;
	int c;

	if (sodium_init() < 0) {
		fprintf(stderr, "%s: cannot initialise libsodium\n", prog);
		return EXIT_RUNTIME;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	arg = argv[optind + 1];
	if (arg[0] == '\0') {
		fprintf(stderr, "%s: empty path\n", prog);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "sender") != 0 && strcmp(cmd, "receiver") != 0 && strcmp(cmd, "id") != 0) {
		fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "sender") == 0)
		return cmd_sender(arg);
	if (strcmp(cmd, "receiver") == 0)
		return cmd_receiver(arg);
	return cmd_id(arg);
}
