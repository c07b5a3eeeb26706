/* SPDX-License-Identifier: MIT */
/* Configuration files as long options. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* The argv built by config_apply lives as long as the process. */
static char **kept_argv;

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static const struct option *find(const struct option *opts, const char *name, size_t len)
{
	for (; opts->name; opts++)
		if (strlen(opts->name) == len && memcmp(opts->name, name, len) == 0)
			return opts;
	return NULL;
}

static int push(char ***args, int *nargs, const char *s, size_t len)
{
	char **a = realloc(*args, (size_t)(*nargs + 2) * sizeof(*a));

	if (!a)
		return -ENOMEM;
	*args = a;
	a[*nargs] = strndup(s, len);
	if (!a[*nargs])
		return -ENOMEM;
	a[++*nargs] = NULL;
	return 0;
}

int config_parse(const char *text, size_t len, const char *what, const struct option *opts,
                 char ***args, int *nargs, char *err, size_t errlen)
{
	size_t pos = 0;
	unsigned line = 0;

	while (pos < len) {
		const char *p = text + pos, *end = memchr(p, '\n', len - pos);
		size_t n = end ? (size_t)(end - p) : len - pos;
		const char *name, *value = NULL, *q = p, *stop = p + n;
		size_t nlen, vlen = 0;
		const struct option *o;
		char opt[CONFIG_MAX_LINE + 3];

		pos += n + 1;
		line++;
		if (n > CONFIG_MAX_LINE) {
			snprintf(err, errlen, "%s:%u: line longer than %u bytes", what, line,
			         CONFIG_MAX_LINE);
			return -EINVAL;
		}
		for (const char *c = p; c < stop; c++) {
			if ((unsigned char)*c < 0x20 && *c != '\t' && *c != '\r') {
				snprintf(err, errlen, "%s:%u: control character in the line", what,
				         line);
				return -EINVAL;
			}
		}
		while (q < stop && is_blank(*q))
			q++;
		while (stop > q && is_blank(stop[-1]))
			stop--;
		if (q == stop || *q == '#')
			continue;
		name = q;
		while (q < stop &&
		       (*q == '-' || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')))
			q++;
		nlen = (size_t)(q - name);
		while (q < stop && is_blank(*q))
			q++;
		if (q < stop) {
			if (*q != '=') {
				snprintf(err, errlen,
				         "%s:%u: expected 'name = value' or 'name', not '%.*s'",
				         what, line, (int)(stop - name > 60 ? 60 : stop - name),
				         name);
				return -EINVAL;
			}
			q++;
			while (q < stop && is_blank(*q))
				q++;
			value = q;
			vlen = (size_t)(stop - q);
		}
		o = nlen ? find(opts, name, nlen) : NULL;
		if (!o || strcmp(o->name, "config") == 0 || strcmp(o->name, "help") == 0) {
			snprintf(err, errlen, "%s:%u: unknown setting '%.*s'", what, line,
			         (int)(nlen ? (nlen > 60 ? 60 : nlen) : 1), nlen ? name : "=");
			return -EINVAL;
		}
		if (o->has_arg == required_argument && (!value || vlen == 0)) {
			snprintf(err, errlen, "%s:%u: '%s' needs a value: %s = ...", what, line,
			         o->name, o->name);
			return -EINVAL;
		}
		if (o->has_arg == no_argument && value) {
			snprintf(err, errlen, "%s:%u: '%s' takes no value; write just '%s'", what,
			         line, o->name, o->name);
			return -EINVAL;
		}
		snprintf(opt, sizeof(opt), "--%s", o->name);
		if (push(args, nargs, opt, strlen(opt)) < 0 ||
		    (value && push(args, nargs, value, vlen) < 0)) {
			snprintf(err, errlen, "out of memory reading %s", what);
			return -ENOMEM;
		}
	}
	return 0;
}

static int read_config(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open the configuration file %s: %s", path,
		         strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_SIZE) {
		snprintf(err, errlen, "%s is not a regular file of at most %u KiB", path,
		         CONFIG_MAX_SIZE >> 10);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 022) {
		snprintf(err, errlen,
		         "%s is writable by group or others, who could then choose the keys and "
		         "directories; run: chmod go-w %s",
		         path, path);
		close(fd);
		return -EPERM;
	}
	*text = malloc((size_t)st.st_size + 1);
	n = *text ? read(fd, *text, (size_t)st.st_size + 1) : -1;
	close(fd);
	if (n < 0 || n > st.st_size) {
		snprintf(err, errlen, "cannot read %s", path);
		free(*text);
		return -EIO;
	}
	*len = (size_t)n;
	return 0;
}

int config_apply(int argc, char **argv, const struct option *opts, int *out_argc, char ***out_argv,
                 char *err, size_t errlen)
{
	const char *path = NULL;
	char **args = NULL, *text = NULL;
	int nargs = 0, at = -1, skip = 0, rc;
	size_t len = 0;

	*out_argc = argc;
	*out_argv = argv;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			path = argv[i + 1];
			at = i;
			skip = 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
			at = i;
			skip = 1;
		}
	}
	if (!path)
		return 0;
	rc = read_config(path, &text, &len, err, errlen);
	if (rc < 0)
		return rc;
	rc = push(&args, &nargs, argv[0], strlen(argv[0]));
	if (rc == 0)
		rc = config_parse(text, len, path, opts, &args, &nargs, err, errlen);
	free(text);
	for (int i = 1; rc == 0 && i < argc; i++) {
		if (i >= at && i < at + skip)
			continue;
		rc = push(&args, &nargs, argv[i], strlen(argv[i]));
	}
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory reading %s", path);
		for (int i = 0; i < nargs; i++)
			free(args[i]);
		free(args);
		return rc;
	}
	kept_argv = args;
	*out_argc = nargs;
	*out_argv = kept_argv;
	return 0;
}
