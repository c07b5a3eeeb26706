/* SPDX-License-Identifier: MIT */
/* Crash points: named places where a test can make the process die as if
 * from a power cut or kill -9. TEST-ONLY. Compiled into every build, but a
 * no-op unless the environment variable SLUICE_CRASH_AT names the point:
 *
 *     SLUICE_CRASH_AT=before-publish-rename sluice-recv ...
 *
 * Then the first crashpoint("before-publish-rename") raises SIGKILL on the
 * whole process: no atexit handlers, no signal handlers, no buffered output,
 * exactly what an abrupt stop leaves behind. tests/integration/test_crash.sh
 * uses this to check the recovery promises (never a partial file in the
 * inbox, stale staging cleaned at start). Never set SLUICE_CRASH_AT in
 * production: it is a deliberate denial of service switch. */
#ifndef SLUICE_COMMON_CRASHPOINT_H
#define SLUICE_COMMON_CRASHPOINT_H

/* Die with SIGKILL if SLUICE_CRASH_AT equals name. The variable is read once
 * (first call) and cached, so a cheap strcmp is all a disarmed point costs. */
void crashpoint(const char *name);

#endif
