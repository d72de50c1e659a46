/* Unit tests for err, xalloc, buf and log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <cmocka.h>

static void test_err_set_returns_code(void **state)
{
	struct err e;

	assert_int_equal(err_set(&e, STATUS_NOT_FOUND, "job %d", 7), STATUS_NOT_FOUND);
	assert_string_equal(e.msg, "job 7");
	assert_false(e.retriable);
	assert_int_equal(err_set_retriable(&e, STATUS_DB, "x"), STATUS_DB);
	assert_true(e.retriable);
	assert_int_equal(err_set(NULL, STATUS_IO, "ignored"), STATUS_IO);
	err_clear(&e);
	assert_int_equal(e.code, STATUS_OK);
	assert_string_equal(status_str(STATUS_NOT_FOUND), "not_found");
	assert_string_equal(status_str((enum status)999), "unknown");
	for (int s = 0; s < STATUS__COUNT; s++)
		assert_non_null(status_str((enum status)s));
}

static void test_buf_grows(void **state)
{
	struct buf b;
	char *s;

	buf_init(&b);
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_int_equal(strlen(b.data), b.len);
	assert_memory_equal(b.data, "0,1,2,", 6);
	s = buf_take(&b);
	assert_null(b.data);
	free(s);
	buf_cleanup(&b);
}

static void test_xasprintf(void **state)
{
	char *s = xasprintf("%s-%d", "a", 42);

	assert_string_equal(s, "a-42");
	free(s);
}

static void test_log_is_json_line(void **state)
{
	int fds[2];
	char line[4096];
	ssize_t n;
	struct log_ctx ctx = { .request_id = "r1", .tenant_id = "t\"1", .partition = -1 };

	assert_int_equal(pipe(fds), 0);
	log_init("unit", LOGL_INFO);
	log_set_fd(fds[1]);
	log_debug("hidden");
	log_ctx_warn(&ctx, "hello \"%s\"\n", "world");
	log_set_fd(1);
	n = read(fds[0], line, sizeof(line) - 1);
	assert_true(n > 0);
	line[n] = '\0';
	assert_non_null(strstr(line, "\"level\":\"warn\""));
	assert_non_null(strstr(line, "\"service\":\"unit\""));
	assert_non_null(strstr(line, "\"msg\":\"hello \\\"world\\\"\\n\""));
	assert_non_null(strstr(line, "\"request_id\":\"r1\""));
	assert_non_null(strstr(line, "\"tenant_id\":\"t\\\"1\""));
	assert_null(strstr(line, "hidden"));
	assert_int_equal(line[n - 1], '\n');
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_set_returns_code),
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_xasprintf),
		cmocka_unit_test(test_log_is_json_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
