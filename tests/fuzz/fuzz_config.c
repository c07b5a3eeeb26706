/* SPDX-License-Identifier: MIT */
/* libFuzzer target: configuration file parser. Whatever it accepts must be
 * a well-formed argument list: "--NAME" for a known option, followed by a
 * non-empty value exactly when that option takes one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

static const struct option opts[] = {
    {"listen", required_argument, NULL, 'l'}, {"trust", required_argument, NULL, 't'},
    {"once", no_argument, NULL, '1'},         {"quiet", no_argument, NULL, 'q'},
    {"config", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **args = NULL, err[256];
	int n = 0, rc;

	rc = config_parse((const char *)data, size, "fuzz", opts, &args, &n, err, sizeof(err));
	for (int i = 0; rc == 0 && i < n; i++) {
		const struct option *o = NULL;
		if (strncmp(args[i], "--", 2) != 0)
			abort();
		for (const struct option *p = opts; p->name; p++)
			if (strcmp(p->name, args[i] + 2) == 0)
				o = p;
		if (!o || strcmp(o->name, "config") == 0)
			abort();
		if (o->has_arg == required_argument && (++i >= n || args[i][0] == '\0'))
			abort();
	}
	if (rc == 0 && args && args[n] != NULL)
		abort();
	for (int i = 0; i < n; i++)
		free(args[i]);
	free(args);
	return 0;
}
