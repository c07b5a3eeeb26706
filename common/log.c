/* SPDX-License-Identifier: MIT */
/* Leveled messages to stderr, one line each, safe to call from threads. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static const char *prog = "sluice";
static enum log_level current = LOG_INFO;

void log_setup(const char *progname, enum log_level level)
{
	prog = progname;
	current = level;
}

enum log_level log_get_level(void)
{
	return current;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const tag[] = {"error: ", "warning: ", "", "debug: "};
	char line[1024];
	va_list ap;
	int n;

	if (level > current)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One fprintf per line: stdio locks the stream, so lines from
	 * different threads do not interleave. */
	fprintf(stderr, "%s: %s%s\n", prog, tag[level], line);
}
