/* SPDX-License-Identifier: MIT */
/* Configuration files: accepted lines become long options in order, every
 * malformed line is refused with its file and line number, and --config
 * puts the file's options before the command line's. */
#include <errno.h>
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

#include "common/config.h"

static const struct option opts[] = {
    {"listen", required_argument, NULL, 'l'}, {"trust", required_argument, NULL, 't'},
    {"once", no_argument, NULL, '1'},         {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};

static void free_args(char **a, int n)
{
	for (int i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

static void parses_lines_in_order(void **state)
{
	const char *text = "# a comment\n"
	                   "\n"
	                   "  listen = 0.0.0.0:7000  \n"
	                   "trust=/etc/a b.pub\n"
	                   "\ttrust = /x#not-a-comment\r\n"
	                   "once\n"
	                   "  # indented comment";
	const char *want[] = {"--listen", "0.0.0.0:7000",     "--trust", "/etc/a b.pub",
	                      "--trust",  "/x#not-a-comment", "--once"};
	char **a = NULL, err[200];
	int n = 0;

	(void)state;
	assert_int_equal(config_parse(text, strlen(text), "t.conf", opts, &a, &n, err, sizeof(err)),
	                 0);
	assert_int_equal(n, 7);
	for (int i = 0; i < n; i++)
		assert_string_equal(a[i], want[i]);
	assert_null(a[n]);
	free_args(a, n);
}

static void refuses_n(const char *text, size_t len, const char *needle)
{
	char **a = NULL, err[200] = "";
	int n = 0;

	assert_int_equal(config_parse(text, len, "t.conf", opts, &a, &n, err, sizeof(err)),
	                 -EINVAL);
	if (!strstr(err, needle))
		fail_msg("'%s': message '%s' lacks '%s'", text, err, needle);
	free_args(a, n);
}

static void refuses(const char *text, const char *needle)
{
	refuses_n(text, strlen(text), needle);
}

static void refuses_bad_lines(void **state)
{
	(void)state;
	refuses("listen = x\nbogus = 1\n", "t.conf:2: unknown setting 'bogus'");
	refuses("listen\n", "t.conf:1: 'listen' needs a value");
	refuses("listen =   \n", "t.conf:1: 'listen' needs a value");
	refuses("once = yes\n", "t.conf:1: 'once' takes no value");
	refuses("help\n", "unknown setting 'help'");
	refuses("config = /etc/other\n", "unknown setting 'config'");
	refuses("listen x\n", "t.conf:1: expected 'name = value'");
	refuses("= value\n", "t.conf:1: unknown setting");
	refuses("Listen = x\n", "expected 'name = value'");
	refuses("listen = a\x01b\n", "t.conf:1: control character");
	static const char nul[] = "\n\nlisten = a\0b\n";
	refuses_n(nul, sizeof(nul) - 1, "t.conf:3: control character");
	char *long_line = malloc(CONFIG_MAX_LINE + 20);
	assert_non_null(long_line);
	memset(long_line, 'a', CONFIG_MAX_LINE + 10);
	memcpy(long_line, "listen = ", 9);
	long_line[CONFIG_MAX_LINE + 10] = '\0';
	refuses(long_line, "longer than");
	free(long_line);
}

static void apply_puts_file_first_and_checks_permissions(void **state)
{
	char path[] = "/tmp/sluice-test-config-XXXXXX", err[300];
	char *argv[] = {"prog", "--once", "--config", path, "--listen", "cmdline", NULL};
	char **out;
	int fd, argc;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "listen = file\n", 14), 14);
	close(fd);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(config_apply(6, argv, opts, &argc, &out, err, sizeof(err)), 0);
	assert_int_equal(argc, 6);
	assert_string_equal(out[0], "prog");
	assert_string_equal(out[1], "--listen");
	assert_string_equal(out[2], "file");
	assert_string_equal(out[3], "--once");
	assert_string_equal(out[4], "--listen");
	assert_string_equal(out[5], "cmdline"); /* the command line comes last: it wins */
	assert_null(out[6]);

	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(config_apply(6, argv, opts, &argc, &out, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod go-w"));
	unlink(path);
	assert_true(config_apply(6, argv, opts, &argc, &out, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot open the configuration file"));

	char *plain[] = {"prog", "--once", NULL};
	assert_int_equal(config_apply(2, plain, opts, &argc, &out, err, sizeof(err)), 0);
	assert_ptr_equal(out, plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_lines_in_order),
	    cmocka_unit_test(refuses_bad_lines),
	    cmocka_unit_test(apply_puts_file_first_and_checks_permissions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
