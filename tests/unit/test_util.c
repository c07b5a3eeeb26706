/* SPDX-License-Identifier: MIT */
/* The command-line number parsers of common/util.c: what they take, and
 * what strtod or strtoul would have quietly turned into something else (a
 * sign, a space, hex, an exponent, nan, inf, an empty string). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"

static void test_rate(void **state)
{
	static const char *const bad[] = {"",    " 5m", "+5m", "-5m", "0x10m", "1e9",   "nan",
	                                  "inf", "5q",  "5mm", "0",   "999",   "1001g", ".m"};
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_rate("500m", &v), 0);
	assert_int_equal(v, 500000000u);
	assert_int_equal(parse_rate("1.5G", &v), 0);
	assert_int_equal(v, 1500000000u);
	assert_int_equal(parse_rate("800kbit", &v), 0);
	assert_int_equal(v, 800000u);
	assert_int_equal(parse_rate("1000000", &v), 0);
	assert_int_equal(v, 1000000u);
	assert_int_equal(parse_rate(".5gbps", &v), 0);
	assert_int_equal(v, 500000000u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		assert_int_equal(parse_rate(bad[i], &v), -EINVAL);
		assert_int_equal(v, 7); /* untouched */
	}
}

static void test_percent(void **state)
{
	static const char *const bad[] = {"",    " 10",  "+10",  "-1",     "0x10", "1e1",
	                                  "nan", "10%%", "10 %", "1000.5", "%"};
	double v = 0;

	(void)state;
	assert_int_equal(parse_percent("10%", &v), 0);
	assert_true(v == 10.0);
	assert_int_equal(parse_percent("2.5", &v), 0);
	assert_true(v == 2.5);
	assert_int_equal(parse_percent("0", &v), 0);
	assert_true(v == 0.0);
	assert_int_equal(parse_percent("1000%", &v), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_percent(bad[i], &v), -EINVAL);
}

static void test_decimal(void **state)
{
	static const char *const bad[] = {"",    " 1",  "+1",   "-1", "1e3", "0x5",
	                                  "nan", "inf", "1.5s", "1 ", "."};
	double v = 0;

	(void)state;
	assert_int_equal(parse_decimal("3", &v), 0);
	assert_true(v == 3.0);
	assert_int_equal(parse_decimal(".25", &v), 0);
	assert_true(v == 0.25);
	assert_int_equal(parse_decimal("0.5", &v), 0);
	assert_true(v == 0.5);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_decimal(bad[i], &v), -EINVAL);
}

static void test_uint(void **state)
{
	static const char *const bad[] = {"", " 5", "+5", "-1", "0x5", "5 ", "11"};
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_uint("10", 10, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_uint("0644", 8, 0777, &v), 0);
	assert_int_equal(v, 0644);
	assert_int_equal(parse_uint("18446744073709551615", 10, UINT64_MAX, &v), 0);
	assert_int_equal(parse_uint("18446744073709551616", 10, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(parse_uint("8", 8, 0777, &v), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_uint(bad[i], 10, 10, &v), -EINVAL);
}

/* Each common path failure has a remedy; others have none rather than a
 * wrong one. */
static void test_path_hint(void **state)
{
	(void)state;
	assert_non_null(strstr(path_hint(ENOENT), "create it"));
	assert_non_null(strstr(path_hint(EACCES), "owner or mode"));
	assert_non_null(strstr(path_hint(EPERM), "owner or mode"));
	assert_non_null(strstr(path_hint(ENOTDIR), "symbolic link"));
	assert_non_null(strstr(path_hint(ELOOP), "symbolic link"));
	assert_non_null(strstr(path_hint(EROFS), "read-only"));
	assert_non_null(strstr(path_hint(ENOSPC), "full"));
	assert_non_null(strstr(path_hint(EDQUOT), "quota"));
	assert_string_equal(path_hint(EIO), "");
	assert_string_equal(path_hint(0), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate),      cmocka_unit_test(test_percent),
	    cmocka_unit_test(test_decimal),   cmocka_unit_test(test_uint),
	    cmocka_unit_test(test_path_hint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
