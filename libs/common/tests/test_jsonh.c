/* Unit tests for jsonh: field checks, typed getters, UUID, UTF-8, timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonh.h"

#include <cmocka.h>

static json_t *load(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);

	assert_non_null(j);
	return j;
}

static void test_check_fields(void **state)
{
	static const char *const allowed[] = { "name", "size", NULL };
	json_t *ok = load("{\"name\":\"a\",\"size\":1}");
	json_t *bad = load("{\"name\":\"a\",\"colour\":1}");
	json_t *arr = load("[1]");
	struct err e;

	assert_int_equal(jsonh_check_fields(ok, allowed, &e), STATUS_OK);
	assert_int_equal(jsonh_check_fields(bad, allowed, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "unknown field 'colour'");
	assert_int_equal(jsonh_check_fields(arr, allowed, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "request body must be a JSON object");
	json_decref(ok);
	json_decref(bad);
	json_decref(arr);
}

static void test_getters(void **state)
{
	json_t *j = load("{\"s\":\"x\",\"empty\":\"\",\"i\":42,\"r\":1.5,\"b\":true,\"n\":null,"
	                 "\"o\":{},\"a\":[],\"u\":\"123e4567-e89b-12d3-a456-426614174000\","
	                 "\"t\":\"2026-01-02T03:04:05.678Z\"}");
	struct err e;
	const char *s = NULL;
	int64_t i = 0;
	double d = 0;
	bool b = false;
	json_t *o = NULL;

	assert_int_equal(jsonh_get_str(j, "s", JSONH_REQUIRED, 0, &s, &e), STATUS_OK);
	assert_string_equal(s, "x");
	assert_int_equal(jsonh_get_str(j, "i", JSONH_REQUIRED, 0, &s, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'i' must be a string");
	assert_int_equal(jsonh_get_str(j, "empty", JSONH_NONEMPTY, 0, &s, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'empty' must not be empty");
	assert_int_equal(jsonh_get_str(j, "s", 0, 0, &s, &e), STATUS_OK);
	assert_int_equal(jsonh_get_str(j, "u", 0, 10, &s, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'u' is longer than 10 bytes");
	/* absent and null: fine when optional, an error when required */
	s = "untouched";
	assert_int_equal(jsonh_get_str(j, "missing", 0, 0, &s, &e), STATUS_OK);
	assert_int_equal(jsonh_get_str(j, "n", 0, 0, &s, &e), STATUS_OK);
	assert_string_equal(s, "untouched");
	assert_int_equal(jsonh_get_str(j, "missing", JSONH_REQUIRED, 0, &s, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'missing' is required");
	assert_int_equal(jsonh_get_str(j, "n", JSONH_REQUIRED, 0, &s, &e), STATUS_INVALID);

	assert_int_equal(jsonh_get_int(j, "i", JSONH_REQUIRED, 0, 100, &i, &e), STATUS_OK);
	assert_int_equal(i, 42);
	assert_int_equal(jsonh_get_int(j, "i", 0, 0, 10, &i, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'i' must be between 0 and 10");
	assert_int_equal(jsonh_get_int(j, "r", 0, 0, 10, &i, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'r' must be an integer");
	assert_int_equal(jsonh_get_num(j, "r", 0, &d, &e), STATUS_OK);
	assert_true(d == 1.5);
	assert_int_equal(jsonh_get_num(j, "i", 0, &d, &e), STATUS_OK);
	assert_true(d == 42);
	assert_int_equal(jsonh_get_num(j, "s", 0, &d, &e), STATUS_INVALID);
	assert_int_equal(jsonh_get_bool(j, "b", 0, &b, &e), STATUS_OK);
	assert_true(b);
	assert_int_equal(jsonh_get_bool(j, "i", 0, &b, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'i' must be true or false");
	assert_int_equal(jsonh_get_obj(j, "o", 0, &o, &e), STATUS_OK);
	assert_true(json_is_object(o));
	assert_int_equal(jsonh_get_obj(j, "a", 0, &o, &e), STATUS_INVALID);
	assert_int_equal(jsonh_get_arr(j, "a", 0, &o, &e), STATUS_OK);
	assert_true(json_is_array(o));
	assert_int_equal(jsonh_get_arr(j, "o", 0, &o, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 'o' must be an array");
	assert_int_equal(jsonh_get_uuid(j, "u", JSONH_REQUIRED, &s, &e), STATUS_OK);
	assert_string_equal(s, "123e4567-e89b-12d3-a456-426614174000");
	assert_int_equal(jsonh_get_uuid(j, "s", 0, &s, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "field 's' must be a UUID");
	assert_int_equal(jsonh_get_time(j, "t", 0, &i, &e), STATUS_OK);
	assert_int_equal(i, 1767323045678000LL);
	assert_int_equal(jsonh_get_time(j, "s", 0, &i, &e), STATUS_INVALID);
	/* a non-object container: required fields are missing */
	assert_int_equal(jsonh_get_str(o, "x", JSONH_REQUIRED, 0, &s, &e), STATUS_INVALID);
	json_decref(j);
}

static void test_uuid(void **state)
{
	assert_true(jsonh_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
	assert_true(jsonh_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
	assert_false(jsonh_uuid_valid("123e4567e89b12d3a456426614174000"));
	assert_false(jsonh_uuid_valid("123e4567-e89b-12d3-a456-42661417400"));
	assert_false(jsonh_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
	assert_false(jsonh_uuid_valid("g23e4567-e89b-12d3-a456-426614174000"));
	assert_false(jsonh_uuid_valid(""));
	assert_false(jsonh_uuid_valid(NULL));
}

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "plain ascii", true },
		{ "caf\xc3\xa9", true },
		{ "\xe2\x82\xac", true },      /* euro sign */
		{ "\xf0\x9f\x98\x80", true },  /* emoji */
		{ "\xf4\x8f\xbf\xbf", true },  /* U+10FFFF */
		{ "\xc3", false },             /* truncated */
		{ "\xc0\xaf", false },         /* overlong '/' */
		{ "\xe0\x80\xaf", false },     /* overlong 3-byte */
		{ "\xf0\x80\x80\xaf", false }, /* overlong 4-byte */
		{ "\xed\xa0\x80", false },     /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", false }, /* > U+10FFFF */
		{ "\x80", false },             /* lone continuation */
		{ "\xff", false },
		{ "a\xe2\x82", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = jsonh_utf8_valid(cases[i].s, strlen(cases[i].s));

		if (got != cases[i].ok)
			fail_msg("case %zu: expected %d", i, cases[i].ok);
	}
	assert_true(jsonh_utf8_valid("a\0b", 3));
	assert_true(jsonh_utf8_valid(NULL, 0));
}

static void test_time(void **state)
{
	char out[JSONH_TIME_LEN];
	struct timespec ts = { 0, 0 };
	struct err e;
	int64_t us;

	assert_string_equal(jsonh_time_format(&ts, out), "1970-01-01T00:00:00.000Z");
	ts.tv_sec = 1767323045;
	ts.tv_nsec = 678999999;
	assert_string_equal(jsonh_time_format(&ts, out), "2026-01-02T03:04:05.678Z");
	assert_string_equal(jsonh_time_format_us(951782400123456LL, out),
	                    "2000-02-29T00:00:00.123Z");
	assert_string_equal(jsonh_time_format_us(-1000, out), "1969-12-31T23:59:59.999Z");

	assert_int_equal(jsonh_time_parse("2026-01-02T03:04:05Z", &us, &e), STATUS_OK);
	assert_int_equal(us, 1767323045000000LL);
	assert_int_equal(jsonh_time_parse("2026-01-02T04:04:05.5+01:00", &us, &e), STATUS_OK);
	assert_int_equal(us, 1767323045500000LL);
	assert_int_equal(jsonh_time_parse("2026-01-02T02:04:05.123456789-01:00", &us, &e),
	                 STATUS_OK);
	assert_int_equal(us, 1767323045123456LL);
	assert_int_equal(jsonh_time_parse("2000-02-29T00:00:00Z", &us, &e), STATUS_OK);
	assert_int_equal(us, 951782400000000LL);
	assert_int_equal(jsonh_time_parse("2001-02-29T00:00:00Z", &us, &e), STATUS_INVALID);
	assert_int_equal(jsonh_time_parse("2026-13-01T00:00:00Z", &us, &e), STATUS_INVALID);
	assert_int_equal(jsonh_time_parse("2026-01-01T00:00:00", &us, &e), STATUS_INVALID);
	assert_int_equal(jsonh_time_parse("2026-01-01T00:00:00.Z", &us, &e), STATUS_INVALID);
	assert_int_equal(jsonh_time_parse("2026-01-01T00:00:00Zjunk", &us, &e), STATUS_INVALID);
	assert_int_equal(jsonh_time_parse("yesterday", &us, &e), STATUS_INVALID);
	assert_int_equal(jsonh_time_parse(NULL, &us, &e), STATUS_INVALID);
	/* round trip */
	assert_int_equal(jsonh_time_parse(jsonh_time_format_us(1767323045678000LL, out), &us, &e),
	                 STATUS_OK);
	assert_int_equal(us, 1767323045678000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_fields), cmocka_unit_test(test_getters),
		cmocka_unit_test(test_uuid),         cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
