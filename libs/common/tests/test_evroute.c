/* Unit tests for event routing by type and the outbox relay's start-up errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/evroute.h"
#include "common/outbox.h"

#include <cmocka.h>

static int calls_a, calls_any;

static enum status on_a(struct db_conn *dbc, const struct event *ev, void *user, struct err *e)
{
	calls_a++;
	return STATUS_OK;
}

static enum status on_any(struct db_conn *dbc, const struct event *ev, void *user, struct err *e)
{
	calls_any++;
	return err_set(e, STATUS_INVALID, "rejected %s", ev->type);
}

static void test_dispatch(void **state)
{
	static const struct evroute with_any[] = { { "*", on_any }, { "a.happened", on_a } };
	static const struct evroute only_a[] = { { "a.happened", on_a } };
	struct event ev;
	struct err e;

	event_init(&ev);
	ev.type = (char *)"a.happened";
	calls_a = calls_any = 0;
	/* an exact type wins over "*", wherever "*" stands */
	assert_int_equal(evroute_dispatch(with_any, 2, NULL, &ev, NULL, &e), STATUS_OK);
	assert_int_equal(calls_a, 1);
	assert_int_equal(calls_any, 0);
	ev.type = (char *)"b.happened";
	assert_int_equal(evroute_dispatch(with_any, 2, NULL, &ev, NULL, &e), STATUS_INVALID);
	assert_string_equal(e.msg, "rejected b.happened");
	/* a type nobody handles is acknowledged and ignored */
	assert_int_equal(evroute_dispatch(only_a, 1, NULL, &ev, NULL, &e), STATUS_OK);
	assert_int_equal(evroute_dispatch(NULL, 0, NULL, &ev, NULL, &e), STATUS_OK);
	assert_int_equal(calls_a, 1);
}

static void test_relay_refuses_bad_input(void **state)
{
	struct err e;

	/* nothing listens on port 1: the first connection fails and says so */
	assert_null(outbox_relay_new("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
	                             "jobs", NULL, NULL, &e));
	assert_true(strlen(e.msg) > 0);
	assert_null(outbox_relay_new("postgresql://nobody@127.0.0.1:1/none", "bad-schema;", NULL,
	                             NULL, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	outbox_relay_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_relay_refuses_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
