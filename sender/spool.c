/* SPDX-License-Identifier: MIT */
/* Spool mode: inotify on an outbox, a small queue of names, send, move. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "spool.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define NS 1000000000ull

struct item {
	char *name;
	uint64_t due; /* CLOCK_MONOTONIC ns */
};

struct spool {
	const struct spool_opts *o;
	int outfd, sentfd, ino;
	dev_t sent_dev; /* the sent directory, wherever it is */
	ino_t sent_ino;
	struct item *q;
	size_t n, cap;
};

/* Not dot-files, not "sent" (reserved in every mode, so switching to
 * --delete-sent never sends the old sent directory), not the sent
 * directory under another name. */
static int eligible(const struct spool *sp, const char *name)
{
	struct stat st;

	if (name[0] == '.' || strcmp(name, "sent") == 0)
		return 0;
	return sp->sentfd < 0 || fstatat(sp->outfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	       st.st_dev != sp->sent_dev || st.st_ino != sp->sent_ino;
}

/* Queue name to be sent at due; an entry already queued keeps the later
 * of the two times (it changed again: let it settle). */
static int enqueue(struct spool *sp, const char *name, uint64_t due)
{
	for (size_t i = 0; i < sp->n; i++) {
		if (strcmp(sp->q[i].name, name) == 0) {
			if (due > sp->q[i].due)
				sp->q[i].due = due;
			return 0;
		}
	}
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 16;
		struct item *q = realloc(sp->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		sp->q = q;
		sp->cap = cap;
	}
	sp->q[sp->n].name = strdup(name);
	if (!sp->q[sp->n].name)
		return -ENOMEM;
	sp->q[sp->n++].due = due;
	return 0;
}

static void dequeue(struct spool *sp, size_t i)
{
	free(sp->q[i].name);
	sp->q[i] = sp->q[--sp->n];
}

/* Everything already in OUTBOX; recently changed entries a little later. */
static int scan(struct spool *sp)
{
	DIR *d = dir_entries(sp->outfd);
	uint64_t now = now_ns();
	time_t wall = time(NULL);
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (!eligible(sp, e->d_name) ||
		    fstatat(sp->outfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			continue;
		uint64_t due = now;
		if (wall - st.st_mtime < (time_t)sp->o->settle_s)
			due += sp->o->settle_s * NS;
		if (enqueue(sp, e->d_name, due) < 0)
			break;
	}
	closedir(d);
	return 0;
}

static void read_events(struct spool *sp)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;

	while ((len = read(sp->ino, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_warn("too many outbox events at once; rescanning %s",
				         sp->o->outbox);
				scan(sp);
			} else if (ev->len && eligible(sp, ev->name)) {
				enqueue(sp, ev->name, now_ns());
			}
		}
	}
}

/* After a send: into the sent directory (never replacing what is there)
 * or gone. */
static void dispose(struct spool *sp, const char *name)
{
	char alt[NAME_MAX + 1];
	int rc;

	if (sp->o->delete_sent) {
		rc = unlinkat(sp->outfd, name, 0) == 0 ? 0 : -errno;
		if (rc == -EISDIR || rc == -EPERM)
			rc = remove_tree(sp->outfd, name);
		if (rc < 0)
			log_err("sent %s but cannot delete it: %s; remove it by hand or it is sent "
			        "again at the next start",
			        name, strerror(-rc));
		return;
	}
	snprintf(alt, sizeof(alt), "%s", name);
	for (unsigned i = 1; i < 1000; i++) {
		if (syscall(SYS_renameat2, sp->outfd, name, sp->sentfd, alt, RENAME_NOREPLACE) == 0)
			return;
		if (errno != EEXIST)
			break;
		/* a name sent before: keep both */
		snprintf(alt, sizeof(alt), "%.200s.%u", name, i);
	}
	log_err("sent %s but cannot move it to the sent directory: %s; move it by hand or it is "
	        "sent again at the next start",
	        name, strerror(errno));
}

/* Send the entry that is due first, if any. Returns the ns until the next
 * one is due (capped at 1 s). */
static uint64_t process_one(struct spool *sp, spool_send_fn fn, void *ctx)
{
	uint64_t now = now_ns(), next = sp->o->idle_ns ? sp->o->idle_ns : NS;
	size_t best = SIZE_MAX;
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < sp->n; i++) {
		if (sp->q[i].due <= now && (best == SIZE_MAX || sp->q[i].due < sp->q[best].due))
			best = i;
		else if (sp->q[i].due > now && sp->q[i].due - now < next)
			next = sp->q[i].due - now;
	}
	if (best == SIZE_MAX)
		return next;
	const char *name = sp->q[best].name;
	if (fstatat(sp->outfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		dequeue(sp, best); /* gone: taken back by whoever put it there */
		return 0;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		log_warn("not sending %s: only regular files and directories are sent", name);
		dequeue(sp, best);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s", sp->o->outbox, name);
	if (fn(ctx, path, name) == 0) {
		dispose(sp, name);
		dequeue(sp, best);
	} else {
		log_warn("%s stays in the outbox; trying again in %u s", name, sp->o->retry_s);
		sp->q[best].due = now_ns() + sp->o->retry_s * NS;
	}
	return 0;
}

static int setup(struct spool *sp, char *err, size_t errlen)
{
	const struct spool_opts *o = sp->o;
	struct stat a, b;
	char sent[PATH_MAX];

	sp->outfd = open(o->outbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->outfd < 0) {
		snprintf(err, errlen, "cannot open the outbox %s: %s", o->outbox, strerror(errno));
		return -errno;
	}
	if (!o->delete_sent) {
		snprintf(sent, sizeof(sent), "%s%s", o->sent_dir ? o->sent_dir : o->outbox,
		         o->sent_dir ? "" : "/sent");
		if (mkdir(sent, 0750) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create the sent directory %s: %s", sent,
			         strerror(errno));
			return -errno;
		}
		sp->sentfd = open(sent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sp->sentfd < 0 || fstat(sp->sentfd, &a) < 0 || fstat(sp->outfd, &b) < 0) {
			snprintf(err, errlen, "cannot open the sent directory %s: %s", sent,
			         strerror(errno));
			return -errno;
		}
		if (a.st_dev != b.st_dev) {
			snprintf(err, errlen,
			         "the sent directory %s is not on the outbox's filesystem; sent "
			         "entries are moved by rename, so choose one that is",
			         sent);
			return -EXDEV;
		}
		sp->sent_dev = a.st_dev;
		sp->sent_ino = a.st_ino;
	}
	sp->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sp->ino < 0 ||
	    inotify_add_watch(sp->ino, o->outbox, IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
		snprintf(err, errlen, "cannot watch %s with inotify: %s%s", o->outbox,
		         strerror(errno),
		         errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
		return -errno;
	}
	return 0;
}

int spool_run(const struct spool_opts *o, spool_send_fn fn, spool_idle_fn idle, void *ctx,
              volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct spool sp = {.o = o, .outfd = -1, .sentfd = -1, .ino = -1};
	int rc = setup(&sp, err, errlen);

	/* Watch first, then scan: nothing that arrives in between is missed
	 * (at worst it is queued twice, which enqueue merges). */
	if (rc == 0)
		rc = scan(&sp);
	if (rc == 0)
		log_info("watching %s", o->outbox);
	while (rc == 0 && !*stop) {
		if (idle)
			(void)idle(ctx);
		uint64_t wait = process_one(&sp, fn, ctx);
		if (wait == 0 || *stop)
			continue;
		struct pollfd p = {.fd = sp.ino, .events = POLLIN};
		if (poll(&p, 1, (int)(wait / 1000000u) + 1) > 0)
			read_events(&sp);
	}
	while (sp.n)
		dequeue(&sp, 0);
	free(sp.q);
	if (sp.ino >= 0)
		close(sp.ino);
	if (sp.sentfd >= 0)
		close(sp.sentfd);
	if (sp.outfd >= 0)
		close(sp.outfd);
	return rc;
}
