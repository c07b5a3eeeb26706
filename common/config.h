/* SPDX-License-Identifier: MIT */
/* Configuration files: the long command-line options, one per line.
 *
 *     # sluice-recv.conf
 *     listen = 0.0.0.0:7000
 *     inbox  = /srv/inbox
 *     trust  = /etc/sluice/keys/feed.pub
 *     trust  = /etc/sluice/keys/mirror.pub
 *     quiet
 *
 * A line is blank, a comment ('#' first, after blanks), "name" for an
 * option without a value, or "name = value". Blanks around name and value
 * are dropped; the value runs to the end of the line (no quoting: a '#'
 * inside a value is part of it). Each line becomes "--name value" placed
 * before the real command line, so the command line wins for single
 * options and adds to repeatable ones. Names are checked against the
 * program's options, with the file and line in the message. */
#ifndef SLUICE_COMMON_CONFIG_H
#define SLUICE_COMMON_CONFIG_H

#include <getopt.h>
#include <stddef.h>

#define CONFIG_MAX_SIZE (64u * 1024)
#define CONFIG_MAX_LINE 4096

/* Parse text[0..len) (named `what` in messages) into arguments appended to
 * *args (count *nargs, both realloc'ed; strings malloc'ed). Returns 0, or
 * -EINVAL with "what:LINE: problem" in err. */
__attribute__((warn_unused_result)) int config_parse(const char *text, size_t len, const char *what,
                                                     const struct option *opts, char ***args,
                                                     int *nargs, char *err, size_t errlen);

/* If argv holds "--config FILE" (or --config=FILE), read FILE (a regular
 * file, not writable by group or others, at most CONFIG_MAX_SIZE) and
 * return a new argv: argv[0], the file's arguments, then the rest of argv
 * without the --config option. Otherwise *out_argv = argv. 0 or -errno
 * with a user-facing message in err. */
__attribute__((warn_unused_result)) int config_apply(int argc, char **argv,
                                                     const struct option *opts, int *out_argc,
                                                     char ***out_argv, char *err, size_t errlen);

#endif
