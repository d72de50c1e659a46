/* Unit tests for db.h that need no server: SQLSTATE mapping, identifiers, migration
 * file names and ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/db.h"
#include "common/xalloc.h"

#include <cmocka.h>

static void test_sqlstate_table(void **state)
{
	static const struct {
		const char *code;
		enum status st;
		bool retriable;
	} cases[] = {
		{ "23505", STATUS_CONFLICT, false },     { "23503", STATUS_INVALID, false },
		{ "23502", STATUS_INVALID, false },      { "22P02", STATUS_INVALID, false },
		{ "23514", STATUS_INVALID, false },      { "22001", STATUS_INVALID, false },
		{ "40001", STATUS_UNAVAILABLE, true },   { "40P01", STATUS_UNAVAILABLE, true },
		{ "08006", STATUS_UNAVAILABLE, true },   { "08001", STATUS_UNAVAILABLE, true },
		{ "57P01", STATUS_UNAVAILABLE, true },   { "53300", STATUS_UNAVAILABLE, true },
		{ "57014", STATUS_TIMEOUT, true },       { "42501", STATUS_FORBIDDEN, false },
		{ "28P01", STATUS_UNAUTHORIZED, false }, { "02000", STATUS_NOT_FOUND, false },
		{ "42P01", STATUS_DB, false },           { "42601", STATUS_DB, false },
		{ "XX000", STATUS_DB, false },           { "", STATUS_UNAVAILABLE, true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool r = !cases[i].retriable;

		assert_int_equal(db_status_from_sqlstate(cases[i].code, &r), cases[i].st);
		assert_int_equal(r, cases[i].retriable);
	}
	assert_int_equal(db_status_from_sqlstate(NULL, NULL), STATUS_UNAVAILABLE);
}

static void test_ident(void **state)
{
	assert_true(db_ident_is_valid("jobs"));
	assert_true(db_ident_is_valid("spine_w_123"));
	assert_true(db_ident_is_valid("_x"));
	assert_false(db_ident_is_valid(""));
	assert_false(db_ident_is_valid(NULL));
	assert_false(db_ident_is_valid("1abc"));
	assert_false(db_ident_is_valid("Jobs"));
	assert_false(db_ident_is_valid("a;drop"));
	assert_false(db_ident_is_valid("a\"b"));
	assert_false(db_ident_is_valid(
	        "a234567890123456789012345678901234567890123456789012345678901234"));
}

static void test_migration_names(void **state)
{
	static const struct {
		const char *name;
		enum status st;
		long version;
	} cases[] = {
		{ "0001_init.sql", STATUS_OK, 1 },      { "0042_add-index_2.sql", STATUS_OK, 42 },
		{ "12345_big.sql", STATUS_OK, 12345 },  { "001_short.sql", STATUS_INVALID, 0 },
		{ "init.sql", STATUS_INVALID, 0 },      { "0001init.sql", STATUS_INVALID, 0 },
		{ "0001_.sql", STATUS_INVALID, 0 },     { "0001_Init.sql", STATUS_INVALID, 0 },
		{ "0001_init.txt", STATUS_INVALID, 0 }, { "0001_in it.sql", STATUS_INVALID, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long v = -1;
		struct err e;

		assert_int_equal(db_migration_parse_name(cases[i].name, &v, &e), cases[i].st);
		if (cases[i].st == STATUS_OK)
			assert_int_equal(v, cases[i].version);
		else
			assert_non_null(strstr(e.msg, cases[i].name));
	}
}

static char *make_dir(void)
{
	char tmpl[] = "/tmp/cairn-test-migr-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void touch(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs("SELECT 1;\n", f);
	fclose(f);
	free(p);
}

static void rm_dir(char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
}

static void test_migration_list_order(void **state)
{
	struct db_migration *m;
	size_t n;
	struct err e;
	char *dir = make_dir();

	touch(dir, "0010_ten.sql");
	touch(dir, "0002_two.sql");
	touch(dir, "0001_one.sql");
	touch(dir, "0100_hundred.sql");
	touch(dir, "README.md");
	touch(dir, ".0003_hidden.sql");
	assert_int_equal(db_migration_list(dir, &m, &n, &e), STATUS_OK);
	assert_int_equal(n, 4);
	assert_int_equal(m[0].version, 1);
	assert_int_equal(m[1].version, 2);
	assert_int_equal(m[2].version, 10);
	assert_int_equal(m[3].version, 100);
	assert_string_equal(m[3].name, "0100_hundred.sql");
	assert_non_null(strstr(m[0].path, "/0001_one.sql"));
	db_migration_list_free(m, n);

	touch(dir, "bad.sql");
	assert_int_equal(db_migration_list(dir, &m, &n, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "bad.sql"));
	assert_null(m);
	rm_dir(dir);

	dir = make_dir();
	touch(dir, "0001_a.sql");
	touch(dir, "0001_b.sql");
	assert_int_equal(db_migration_list(dir, &m, &n, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "share version 1"));
	rm_dir(dir);

	assert_int_equal(db_migration_list("/nonexistent/cairn", &m, &n, &e), STATUS_IO);
}

static void test_conn_refused_is_unavailable(void **state)
{
	struct err e;
	/* Port 1 on loopback: refused at once, no network needed. */
	struct db_conn *dbc = db_conn_new("postgresql://127.0.0.1:1/x?connect_timeout=2", &e);

	assert_null(dbc);
	assert_int_equal(e.code, STATUS_UNAVAILABLE);
	assert_true(e.retriable);
	assert_null(db_conn_new("", &e));
	assert_int_equal(e.code, STATUS_INVALID);
	db_conn_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sqlstate_table),
		cmocka_unit_test(test_ident),
		cmocka_unit_test(test_migration_names),
		cmocka_unit_test(test_migration_list_order),
		cmocka_unit_test(test_conn_refused_is_unavailable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
