/* Unit tests for password hashing and policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#include "password.h"

#include <cmocka.h>

static void test_hash_and_verify(void **state)
{
	char *phc = NULL, *phc2 = NULL;
	struct err e;

	assert_int_equal(auth_password_hash("correct horse battery", &phc, &e), STATUS_OK);
	assert_non_null(phc);
	assert_non_null(strstr(phc, "$argon2id$v=19$m=19456,t=2,p=1$"));
	assert_true(auth_password_verify(phc, "correct horse battery"));
	assert_false(auth_password_verify(phc, "correct horse batterY"));
	assert_false(auth_password_verify(phc, ""));
	assert_false(auth_password_needs_rehash(phc));
	/* fresh salt each time */
	assert_int_equal(auth_password_hash("correct horse battery", &phc2, &e), STATUS_OK);
	assert_string_not_equal(phc, phc2);
	assert_true(auth_password_verify(phc2, "correct horse battery"));
	free(phc);
	free(phc2);
}

static void test_verify_rejects_garbage(void **state)
{
	const char *bad[] = {
		"",
		"plain",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		/* weak parameters are refused outright */
		"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		/* absurd parameters (DoS) */
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(auth_password_verify(bad[i], "whatever password"));
		assert_true(auth_password_needs_rehash(bad[i]));
	}
	assert_false(auth_password_verify(NULL, "x"));
	auth_password_verify_dummy("something");
}

static void test_weaker_hash_needs_rehash(void **state)
{
	/* a valid hash made with t=1 (weaker than today's t=2) still verifies but wants rehash */
	const char *t1 = "$argon2id$v=19$m=19456,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
	                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

	assert_true(auth_password_needs_rehash(t1));
}

static void test_policy(void **state)
{
	struct err e;
	struct {
		const char *user, *pw;
		enum status want;
		const char *msg;
	} cases[] = {
		{ "alice", "short", STATUS_INVALID, "at least 12" },
		{ "alice", "elevenchars", STATUS_INVALID, "at least 12" },
		{ "alice", "twelve chars", STATUS_OK, NULL },
		{ "alice", "my-ALICE-password", STATUS_INVALID, "username" },
		{ "alice", "alice", STATUS_INVALID, "at least 12" },
		{ "alicealice12", "alicealice12", STATUS_INVALID, "username" },
		{ NULL, "no user given here", STATUS_OK, NULL },
		{ "bob", "tab\tinside password", STATUS_INVALID, "control" },
		{ "bob", "bad utf8 \xc3\x28 here", STATUS_INVALID, "UTF-8" },
		{ "bob", "overlong \xc0\xaf slash", STATUS_INVALID, "UTF-8" },
		/* 12 code points of 2 bytes each = OK; 11 = too short */
		{ "bob",
		  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
		  "\xa9\xc3\xa9\xc3\xa9",
		  STATUS_OK, NULL },
		{ "bob",
		  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
		  "\xa9\xc3\xa9",
		  STATUS_INVALID, "at least 12" },
		{ "bob", NULL, STATUS_INVALID, "required" },
	};
	char big[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum status st = auth_password_check_policy(cases[i].user, cases[i].pw, &e);

		assert_int_equal(st, cases[i].want);
		if (cases[i].msg)
			assert_non_null(strstr(e.msg, cases[i].msg));
	}
	memset(big, 'x', 256);
	big[256] = '\0';
	assert_int_equal(auth_password_check_policy("bob", big, &e), STATUS_OK);
	memset(big, 'x', 257);
	big[257] = '\0';
	assert_int_equal(auth_password_check_policy("bob", big, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "at most 256"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_verify_rejects_garbage),
		cmocka_unit_test(test_weaker_hash_needs_rehash),
		cmocka_unit_test(test_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
