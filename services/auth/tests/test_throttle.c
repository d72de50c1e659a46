/* Unit tests for login throttling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "throttle.h"

#include <cmocka.h>

static void test_account_window(void **state)
{
	struct auth_throttle *t = auth_throttle_new(NULL);
	int ra = 0;
	int64_t now = 1000000;

	for (int i = 0; i < 5; i++) {
		assert_true(auth_throttle_allow(t, "acme/alice", "10.0.0.1", now + i, &ra));
		auth_throttle_fail(t, "acme/alice", "10.0.0.1", now + i);
	}
	/* the 6th attempt is refused; retry after the first failure leaves the window */
	assert_false(auth_throttle_allow(t, "acme/alice", "10.0.0.9", now + 10, &ra));
	assert_int_equal(ra, 900 - 10);
	/* another account from the same address is fine */
	assert_true(auth_throttle_allow(t, "acme/bob", "10.0.0.1", now + 10, &ra));
	assert_int_equal(ra, 0);
	/* sliding: at now+900 the first failure has left, one attempt is allowed */
	assert_true(auth_throttle_allow(t, "acme/alice", "10.0.0.1", now + 900, &ra));
	auth_throttle_fail(t, "acme/alice", "10.0.0.1", now + 900);
	assert_false(auth_throttle_allow(t, "acme/alice", "10.0.0.1", now + 900, &ra));
	assert_int_equal(ra, 1);
	/* success clears the account */
	auth_throttle_success(t, "acme/alice");
	assert_true(auth_throttle_allow(t, "acme/alice", "10.0.0.1", now + 901, &ra));
	auth_throttle_free(t);
}

static void test_address_window(void **state)
{
	struct auth_throttle_cfg cfg = { .account_max = 5, .address_max = 20, .window_s = 900 };
	struct auth_throttle *t = auth_throttle_new(&cfg);
	char acct[32];
	int ra = 0;

	for (int i = 0; i < 20; i++) {
		snprintf(acct, sizeof(acct), "acme/u%d", i);
		assert_true(auth_throttle_allow(t, acct, "192.0.2.7", 5000, &ra));
		auth_throttle_fail(t, acct, "192.0.2.7", 5000);
	}
	assert_false(auth_throttle_allow(t, "acme/new", "192.0.2.7", 5001, &ra));
	assert_int_equal(ra, 899);
	/* success of one account does not reset the address */
	auth_throttle_success(t, "acme/u1");
	assert_false(auth_throttle_allow(t, "acme/u1", "192.0.2.7", 5001, &ra));
	assert_true(auth_throttle_allow(t, "acme/u1", "192.0.2.8", 5001, &ra));
	assert_true(auth_throttle_allow(t, "acme/new", "192.0.2.7", 5900, &ra));
	auth_throttle_free(t);
}

static void test_memory_bound(void **state)
{
	struct auth_throttle_cfg cfg = { .max_keys = 1000 };
	struct auth_throttle *t = auth_throttle_new(&cfg);
	char acct[32];
	int ra;

	for (int i = 0; i < 50000; i++) {
		snprintf(acct, sizeof(acct), "t/u%d", i);
		auth_throttle_fail(t, acct, NULL, 100 + i / 100);
	}
	/* old windows expire and are dropped; new ones are still tracked */
	for (int i = 0; i < 5; i++)
		auth_throttle_fail(t, "t/late", NULL, 100000);
	assert_false(auth_throttle_allow(t, "t/late", NULL, 100000, &ra));
	auth_throttle_free(t);
	auth_throttle_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_account_window),
		cmocka_unit_test(test_address_window),
		cmocka_unit_test(test_memory_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
