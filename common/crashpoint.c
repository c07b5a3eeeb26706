/* SPDX-License-Identifier: MIT */
/* Test-only crash points (see crashpoint.h): SIGKILL on demand. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashpoint.h"

#define CRASH_NAME_MAX 64

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char armed[CRASH_NAME_MAX]; /* empty: disarmed */

static void read_env(void)
{
	const char *v = getenv("SLUICE_CRASH_AT");

	/* Too long to be one of ours: stay disarmed rather than truncate to
	 * a name that might match a different point. */
	if (v && strlen(v) < sizeof(armed))
		memcpy(armed, v, strlen(v) + 1);
}

void crashpoint(const char *name)
{
	static const char msg[] = "crashpoint: SLUICE_CRASH_AT matched, raising SIGKILL\n";

	pthread_once(&once, read_env);
	if (armed[0] == '\0' || strcmp(armed, name) != 0)
		return;
	/* write(2) and tgkill(2) (raise) are both in the receiver's seccomp
	 * allow-list, so this works inside the sandbox too. */
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	raise(SIGKILL);
	/* Not reached: SIGKILL cannot be caught, blocked or ignored. Should
	 * raise ever fail (a seccomp filter that forbids tgkill), die anyway
	 * and without cleanup rather than carry on past the crash point. */
	_exit(137);
}
