/* SPDX-License-Identifier: MIT */
/* Directory bundles: the entry-list rules (order, duplicates, parents), the
 * receiver building and publishing a tree from a stream file (modes, hashes,
 * conflicts, nothing left behind on failure), and the sender's reader of a
 * file list noticing a file that changed since the scan. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/uring_read.h"
#include "common/util.h"
#include "proto/manifest.h"
#include "receiver/bundle.h"
#include "receiver/staging.h"

struct spec {
	const char *path;
	uint8_t mode;
	const char *content; /* files only */
};

struct built {
	struct manifest m;
	uint8_t entries[4096];
	uint8_t hashes[16][32];
	uint8_t stream[4096];
	size_t stream_len;
};

/* An entry list (not sorted or checked: the tests decide) and the stream. */
static void make(struct built *b, const struct spec *sp, size_t n)
{
	size_t off = 0;

	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < n; i++) {
		size_t len = sp[i].content ? strlen(sp[i].content) : 0;
		crypto_generichash(b->hashes[i], 32, (const uint8_t *)sp[i].content, len, NULL, 0);
		struct manifest_entry e = {.path = (const uint8_t *)sp[i].path,
		                           .path_len = (uint16_t)strlen(sp[i].path),
		                           .mode = sp[i].mode,
		                           .size = len,
		                           .mtime = 1700000000,
		                           .hash = b->hashes[i]};
		size_t w = proto_entry_encode(b->entries + off, sizeof(b->entries) - off, &e);
		assert_true(w > 0);
		off += w;
		memcpy(b->stream + b->stream_len, sp[i].content ? sp[i].content : "", len);
		b->stream_len += len;
	}
	b->m.kind = MANIFEST_KIND_BUNDLE;
	b->m.entries = b->entries;
	b->m.entries_len = (uint32_t)off;
	b->m.entry_count = (uint32_t)n;
	b->m.object_size = b->stream_len;
}

static const struct spec good[] = {
    {"bin", ENTRY_DIR, NULL},           {"bin/run.sh", ENTRY_EXEC, "#!/bin/sh\necho hi\n"},
    {"data", ENTRY_DIR, NULL},          {"data/a b.txt", ENTRY_FILE, "alpha\n"},
    {"data/empty", ENTRY_FILE, ""},     {"data/sub", ENTRY_DIR, NULL},
    {"data/sub/z", ENTRY_FILE, "zulu"}, {"readme", ENTRY_FILE, "hello"},
};
#define NGOOD (sizeof(good) / sizeof(good[0]))

static void check_accepts_sorted_tree(void **state)
{
	struct built b;

	(void)state;
	make(&b, good, NGOOD);
	assert_null(bundle_check(&b.m));
}

static void check_rejects(const struct spec *sp, size_t n, const char *needle)
{
	struct built b;
	const char *why;

	make(&b, sp, n);
	why = bundle_check(&b.m);
	assert_non_null(why);
	assert_non_null(strstr(why, needle));
}

static void check_rejects_bad_lists(void **state)
{
	(void)state;
	const struct spec unsorted[] = {{"b", ENTRY_FILE, "1"}, {"a", ENTRY_FILE, "2"}};
	const struct spec twice[] = {{"a", ENTRY_FILE, "1"}, {"a", ENTRY_FILE, "2"}};
	const struct spec dir_twice[] = {{"d", ENTRY_DIR, NULL}, {"d", ENTRY_FILE, "x"}};
	const struct spec orphan[] = {{"a/b", ENTRY_FILE, "1"}};
	const struct spec deep_orphan[] = {{"a", ENTRY_DIR, NULL}, {"a/b/c", ENTRY_FILE, "1"}};
	const struct spec file_parent[] = {{"a", ENTRY_FILE, "1"}, {"a/b", ENTRY_FILE, "2"}};

	check_rejects(unsorted, 2, "ascending");
	check_rejects(twice, 2, "ascending");
	check_rejects(dir_twice, 2, "ascending");
	check_rejects(orphan, 1, "parent");
	check_rejects(deep_orphan, 2, "parent");
	check_rejects(file_parent, 2, "parent");
}

/* A scratch inbox + state dir, and a stream file in staging. */
struct env {
	char dir[64];
	struct staging st;
	int fd;
	char part[STAGING_NAME_MAX];
};

static void env_open(struct env *e, const struct built *b)
{
	char inbox[96], state[96], err[256];

	strcpy(e->dir, "/tmp/sluice-test-bundle-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(inbox, sizeof(inbox), "%s/inbox", e->dir);
	snprintf(state, sizeof(state), "%s/inbox/.sluice", e->dir);
	assert_int_equal(mkdir(inbox, 0755), 0);
	assert_int_equal(staging_open(&e->st, inbox, state, err, sizeof(err)), 0);
	e->st.reserve = 0;
	assert_int_equal(staging_create(&e->st, 42, b->stream_len, e->part, &e->fd), 0);
	assert_int_equal(pwrite_full(e->fd, b->stream, b->stream_len, 0), 0);
}

static void env_close(struct env *e)
{
	char cmd[128];

	close(e->fd);
	staging_close(&e->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
}

static int staging_entries(struct env *e)
{
	char cmd[160];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s/inbox/.sluice/staging' | wc -l", e->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static mode_t mode_of(struct env *e, const char *rel)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/inbox/%s", e->dir, rel);
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static void publish_builds_tree_with_receiver_modes(void **state)
{
	struct built b;
	struct env e;
	char why[256], path[256], buf[64];
	int fd;

	(void)state;
	make(&b, good, NGOOD);
	env_open(&e, &b);
	e.st.file_mode = 0640;
	assert_int_equal(bundle_publish(&e.st, e.fd, e.part, "feed", &b.m, why, sizeof(why)), 0);
	assert_int_equal(mode_of(&e, "feed") & 07777, 0750);
	assert_true(S_ISDIR(mode_of(&e, "feed/data/sub")));
	assert_int_equal(mode_of(&e, "feed/data/sub") & 07777, 0750);
	assert_int_equal(mode_of(&e, "feed/bin/run.sh") & 07777, 0750);
	assert_int_equal(mode_of(&e, "feed/readme") & 07777, 0640);
	assert_true(S_ISREG(mode_of(&e, "feed/data/empty")));
	snprintf(path, sizeof(path), "%s/inbox/feed/data/a b.txt", e.dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "alpha\n", 6);
	close(fd);
	/* the stream file and the tree are gone from staging */
	assert_int_equal(staging_entries(&e), 0);
	env_close(&e);
}

static void publish_refuses_to_overwrite(void **state)
{
	struct built b;
	struct env e;
	char why[256], path[128];

	(void)state;
	make(&b, good, NGOOD);
	env_open(&e, &b);
	snprintf(path, sizeof(path), "%s/inbox/feed", e.dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(bundle_publish(&e.st, e.fd, e.part, "feed", &b.m, why, sizeof(why)),
	                 -EEXIST);
	assert_int_equal(mode_of(&e, "feed") & 07777, 0700); /* untouched */
	/* the tree was removed; the stream stays for the caller to discard */
	assert_int_equal(staging_entries(&e), 1);
	env_close(&e);
}

static void publish_rejects_file_with_wrong_hash(void **state)
{
	struct built b;
	struct env e;
	char why[256], path[128];

	(void)state;
	make(&b, good, NGOOD);
	b.stream[b.stream_len - 5 - 1] ^= 1; /* the last byte of data/sub/z, before "hello" */
	env_open(&e, &b);
	assert_int_equal(bundle_publish(&e.st, e.fd, e.part, "feed", &b.m, why, sizeof(why)),
	                 -EBADMSG);
	assert_non_null(strstr(why, "data/sub/z"));
	snprintf(path, sizeof(path), "%s/inbox/feed", e.dir);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(staging_entries(&e), 1);
	env_close(&e);
}

static void clean_removes_stale_tree(void **state)
{
	struct built b;
	struct env e;
	char path[160];

	(void)state;
	make(&b, good, NGOOD);
	env_open(&e, &b);
	snprintf(path, sizeof(path), "%s/inbox/.sluice/staging/0000000000000001.tree/x/y", e.dir);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && touch '%s/f' && ln -s / '%s/root'", path, path,
	         path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(staging_clean(&e.st), 2); /* the stream file and the tree */
	assert_int_equal(staging_entries(&e), 0);
	assert_int_equal(access("/etc/passwd", F_OK), 0); /* the symlink was not followed */
	env_close(&e);
}

static void reader_notices_changed_file(void **state)
{
	char dir[] = "/tmp/sluice-test-reader-XXXXXX", path[96];
	const char *paths[] = {"a", "b"};
	uint64_t sizes[] = {3, 5};
	struct ureader *r;
	const uint8_t *data;
	size_t len;
	uint64_t idx;
	int dfd, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, paths[i]);
		fd = open(path, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write_full(fd, i ? "BBBBB" : "AAA", sizes[i]), 0);
		close(fd);
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(ureader_open_files(&r, dfd, paths, sizes, 2, 4), 0);
	assert_int_equal(ureader_next(r, &data, &len, &idx), 1);
	assert_int_equal(len, 4);
	assert_memory_equal(data, "AAAB", 4);
	assert_int_equal(ureader_next(r, &data, &len, &idx), 1);
	assert_memory_equal(data, "BBBB", 4);
	assert_int_equal(ureader_next(r, &data, &len, &idx), 0);
	ureader_close(r);

	sizes[1] = 6; /* as if b shrank since the scan */
	assert_int_equal(ureader_open_files(&r, dfd, paths, sizes, 2, 4), 0);
	assert_int_equal(ureader_next(r, &data, &len, &idx), -EIO);
	assert_string_equal(ureader_failed_path(r), "b");
	ureader_close(r);

	sizes[1] = 5; /* b replaced by a symlink: refused, not followed */
	snprintf(path, sizeof(path), "%s/b", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("a", path), 0);
	assert_int_equal(ureader_open_files(&r, dfd, paths, sizes, 2, 4), 0);
	assert_int_equal(ureader_next(r, &data, &len, &idx), -EIO);
	ureader_close(r);
	close(dfd);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(check_accepts_sorted_tree),
	    cmocka_unit_test(check_rejects_bad_lists),
	    cmocka_unit_test(publish_builds_tree_with_receiver_modes),
	    cmocka_unit_test(publish_refuses_to_overwrite),
	    cmocka_unit_test(publish_rejects_file_with_wrong_hash),
	    cmocka_unit_test(clean_removes_stale_tree),
	    cmocka_unit_test(reader_notices_changed_file),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
