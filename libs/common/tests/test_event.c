/* Unit tests for event.h: CloudEvents binary-mode encode/decode and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/event.h"

#include <cmocka.h>

static const char *hget(const rd_kafka_headers_t *h, const char *name, char *buf, size_t cap)
{
	const void *v;
	size_t n;

	if (rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

static void test_uuid_v4_format(void **state)
{
	char a[EVENT_ID_LEN], b[EVENT_ID_LEN];

	assert_int_equal(event_uuid_v4(a, NULL), STATUS_OK);
	assert_int_equal(event_uuid_v4(b, NULL), STATUS_OK);
	assert_int_equal(strlen(a), 36);
	assert_true(event_id_is_valid(a));
	assert_int_equal(a[14], '4');           /* version */
	assert_non_null(strchr("89ab", a[19])); /* variant */
	assert_string_not_equal(a, b);
	assert_false(event_id_is_valid("not-a-uuid"));
	assert_false(event_id_is_valid("0123456789abcdef0123456789abcdef0123"));
	assert_false(event_id_is_valid(NULL));
}

static void test_time_rfc3339(void **state)
{
	char t[EVENT_TIME_LEN];

	event_time_now(t);
	assert_int_equal(strlen(t), 24); /* 2024-05-01T12:00:00.123Z */
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[23], 'Z');
}

static void test_encode_decode_roundtrip(void **state)
{
	struct event ev, out;
	rd_kafka_headers_t *h;
	char *value, buf[64];
	size_t len;
	struct err e;

	event_init(&ev);
	event_init(&out);
	assert_int_equal(event_make(&ev, "cairn.job.requested", "/cairn/scheduler", "job-1",
	                            "tenant-7", json_pack("{s:i,s:s}", "n", 42, "k", "v"), &e),
	                 STATUS_OK);
	assert_int_equal(event_encode(&ev, &h, &value, &len, &e), STATUS_OK);
	assert_string_equal(hget(h, "ce_specversion", buf, sizeof(buf)), "1.0");
	assert_string_equal(hget(h, "ce_id", buf, sizeof(buf)), ev.id);
	assert_string_equal(hget(h, "ce_type", buf, sizeof(buf)), "cairn.job.requested");
	assert_string_equal(hget(h, "ce_tenantid", buf, sizeof(buf)), "tenant-7");
	assert_string_equal(hget(h, "content-type", buf, sizeof(buf)), "application/json");
	assert_int_equal(len, strlen(value));

	assert_int_equal(event_decode(h, value, len, &out, &e), STATUS_OK);
	assert_string_equal(out.id, ev.id);
	assert_string_equal(out.type, ev.type);
	assert_string_equal(out.source, ev.source);
	assert_string_equal(out.subject, "job-1");
	assert_string_equal(out.tenant_id, "tenant-7");
	assert_string_equal(out.time, ev.time);
	assert_true(json_equal(out.data, ev.data));

	rd_kafka_headers_destroy(h);
	free(value);
	event_cleanup(&ev);
	event_cleanup(&out);
}

static void test_optional_fields_absent(void **state)
{
	struct event ev, out;
	rd_kafka_headers_t *h;
	char *value, buf[8];
	size_t len;

	event_init(&ev);
	event_init(&out);
	assert_int_equal(event_make(&ev, "t", "/s", NULL, NULL, NULL, NULL), STATUS_OK);
	assert_int_equal(event_encode(&ev, &h, &value, &len, NULL), STATUS_OK);
	assert_null(hget(h, "ce_subject", buf, sizeof(buf)));
	assert_string_equal(value, "null");
	assert_int_equal(event_decode(h, value, len, &out, NULL), STATUS_OK);
	assert_null(out.subject);
	assert_null(out.tenant_id);
	assert_true(json_is_null(out.data));
	rd_kafka_headers_destroy(h);
	free(value);
	event_cleanup(&ev);
	event_cleanup(&out);
}

/* Builds valid headers, then drops or replaces one. */
static rd_kafka_headers_t *headers_without(const char *drop, const char *spec)
{
	static const char *const names[] = { "ce_id", "ce_type", "ce_source", "ce_specversion",
		                             "ce_time" };
	const char *vals[] = { "0b6f4c1e-7d1a-4c8e-9f00-1234567890ab", "t", "/s", spec,
		               "2024-05-01T12:00:00.000Z" };
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);

	for (size_t i = 0; i < 5; i++)
		if (drop == NULL || strcmp(names[i], drop) != 0)
			rd_kafka_header_add(h, names[i], -1, vals[i], -1);
	return h;
}

static void test_decode_rejects(void **state)
{
	static const struct {
		const char *drop;
		const char *spec;
		const char *value;
		const char *reason;
	} cases[] = {
		{ "ce_id", "1.0", "{}", "missing required header ce_id" },
		{ "ce_type", "1.0", "{}", "missing required header ce_type" },
		{ "ce_source", "1.0", "{}", "missing required header ce_source" },
		{ "ce_time", "1.0", "{}", "missing required header ce_time" },
		{ "ce_specversion", "1.0", "{}", "missing required header ce_specversion" },
		{ NULL, "0.3", "{}", "unsupported ce_specversion 0.3" },
		{ NULL, "1.0", "not json", "value is not JSON" },
		{ NULL, "1.0", "{\"a\":", "value is not JSON" },
		{ NULL, "1.0", "", "empty value" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rd_kafka_headers_t *h = headers_without(cases[i].drop, cases[i].spec);
		struct event out;
		struct err e;

		event_init(&out);
		assert_int_equal(event_decode(h, cases[i].value, strlen(cases[i].value), &out, &e),
		                 STATUS_INVALID);
		assert_non_null(strstr(e.msg, cases[i].reason));
		assert_null(out.type); /* nothing leaks out of a failed decode */
		rd_kafka_headers_destroy(h);
	}
	/* no headers at all */
	{
		struct event out;
		struct err e;

		event_init(&out);
		assert_int_equal(event_decode(NULL, "{}", 2, &out, &e), STATUS_INVALID);
		assert_non_null(strstr(e.msg, "ce_id"));
	}
	/* bad id */
	{
		rd_kafka_headers_t *h = headers_without("ce_id", "1.0");
		struct event out;
		struct err e;

		rd_kafka_header_add(h, "ce_id", -1, "42", -1);
		event_init(&out);
		assert_int_equal(event_decode(h, "{}", 2, &out, &e), STATUS_INVALID);
		assert_non_null(strstr(e.msg, "not a UUID"));
		rd_kafka_headers_destroy(h);
	}
}

static void test_make_and_encode_validate(void **state)
{
	struct event ev;
	rd_kafka_headers_t *h;
	char *value;
	size_t len;
	struct err e;

	event_init(&ev);
	assert_int_equal(event_make(&ev, "", "/s", NULL, NULL, json_object(), &e), STATUS_INVALID);
	assert_int_equal(event_encode(&ev, &h, &value, &len, &e), STATUS_INVALID);
	assert_null(h);
	assert_null(value);
	event_cleanup(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_v4_format),
		cmocka_unit_test(test_time_rfc3339),
		cmocka_unit_test(test_encode_decode_roundtrip),
		cmocka_unit_test(test_optional_fields_absent),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_make_and_encode_validate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
