/* SPDX-License-Identifier: MIT */
/* Spool mode (sluice-send --watch OUTBOX): send every file or directory that
 * appears in OUTBOX, then move it to the sent directory or delete it.
 *
 * What counts as "appeared": a regular file closed after writing
 * (IN_CLOSE_WRITE) or anything moved in (IN_MOVED_TO); at start-up, and
 * after an inotify queue overflow, everything already there. Names starting
 * with '.' are ignored (editors' and rsync's temporary files), and so are
 * the name "sent" and the sent directory itself. A directory is sent as one bundle: build it
 * elsewhere and move it in. What failed stays in OUTBOX and is tried again
 * after the retry interval, and everything still in OUTBOX is sent again
 * after a restart: the spool lives on disk, not in memory. */
#ifndef SLUICE_SENDER_SPOOL_H
#define SLUICE_SENDER_SPOOL_H

#include <signal.h>
#include <stdint.h>

struct spool_opts {
	const char *outbox;
	const char *sent_dir; /* NULL: OUTBOX/sent */
	int delete_sent;      /* delete instead of moving */
	unsigned retry_s;     /* wait before trying a failed entry again */
	unsigned settle_s;    /* at a scan, leave entries changed this recently */
	uint64_t idle_ns;     /* call the idle function at least this often (0: 1 s) */
};

/* Send one entry; 0 when sent. path is OUTBOX/name. */
typedef int (*spool_send_fn)(void *ctx, const char *path, const char *name);
/* Called at least once a second while idle (beacons); its result is not
 * used. */
typedef int (*spool_idle_fn)(void *ctx);

/* Run until *stop is set (checked at least once a second, and between
 * sends). Returns 0, or -errno with a user-facing message in err when the
 * spool cannot be set up. */
__attribute__((warn_unused_result)) int spool_run(const struct spool_opts *o, spool_send_fn fn,
                                                  spool_idle_fn idle, void *ctx,
                                                  volatile sig_atomic_t *stop, char *err,
                                                  size_t errlen);

#endif
