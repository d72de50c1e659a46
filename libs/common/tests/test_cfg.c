/* Unit tests for the table-driven config loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/log.h"

#include <cmocka.h>

struct tcfg {
	long long http_port;
	long long shared;
	bool debug;
	char *database_url;
	char *token;
};

static const struct cfg_key keys[] = {
	CFG_INT_SVC("http_port", struct tcfg, http_port, "8101", 1, 65535, "HTTP port"),
	CFG_INT("workers_shared", struct tcfg, shared, "1", 1, 9, "shared int"),
	CFG_BOOL("debug", struct tcfg, debug, "false", "debug mode"),
	CFG_STR("database_url", struct tcfg, database_url, NULL, true, "libpq URI"),
	CFG_SECRET("token", struct tcfg, token, "", false, "a secret"),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void test_defaults_and_precedence(void **state)
{
	const char *env[] = { "CAIRN_DATABASE_URL=postgresql://a@h/db", "CAIRN_HTTP_PORT=9000",
		              "CAIRN_MOVER_HTTP_PORT=9001", "CAIRN_AUTH_HTTP_PORT=9999", NULL };
	struct tcfg c = { 0 };
	struct err e;

	assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_OK);
	assert_int_equal(c.http_port, 9001);
	assert_int_equal(c.shared, 1);
	assert_false(c.debug);
	assert_string_equal(c.database_url, "postgresql://a@h/db");
	cfg_cleanup(keys, NKEYS, &c);
	assert_null(c.database_url);
}

static void expect_invalid(const char **env, const char *needle)
{
	struct tcfg c = { 0 };
	struct err e;

	assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_INVALID);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", e.msg, needle);
	cfg_cleanup(keys, NKEYS, &c);
}

static void test_errors_name_the_variable(void **state)
{
	const char *missing[] = { NULL };
	const char *badint[] = { "CAIRN_DATABASE_URL=x", "CAIRN_MOVER_HTTP_PORT=80a", NULL };
	const char *range[] = { "CAIRN_DATABASE_URL=x", "CAIRN_WORKERS_SHARED=10", NULL };
	const char *badbool[] = { "CAIRN_DATABASE_URL=x", "CAIRN_MOVER_DEBUG=maybe", NULL };
	const char *unknown[] = { "CAIRN_DATABASE_URL=x", "CAIRN_MOVER_HTTP_PROT=1", NULL };
	const char *empty[] = { "CAIRN_DATABASE_URL=", NULL };

	expect_invalid(missing, "CAIRN_MOVER_DATABASE_URL");
	expect_invalid(badint, "CAIRN_MOVER_HTTP_PORT");
	expect_invalid(range, "CAIRN_WORKERS_SHARED");
	expect_invalid(badbool, "CAIRN_MOVER_DEBUG");
	expect_invalid(unknown, "CAIRN_MOVER_HTTP_PROT");
	expect_invalid(empty, "CAIRN_MOVER_DATABASE_URL");
}

static void test_file_then_env(void **state)
{
	char path[] = "/tmp/cairn-cfg-XXXXXX";
	int fd = mkstemp(path);
	char fileenv[64];
	struct tcfg c = { 0 };
	struct err e;
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f, "# comment\nworkers_shared = 7\ndebug = yes\ndatabase_url = file-url\n");
	fclose(f);
	snprintf(fileenv, sizeof(fileenv), "CAIRN_CONFIG_FILE=%s", path);
	{
		const char *env[] = { fileenv, "CAIRN_DEBUG=off", NULL };

		assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_OK);
		assert_int_equal(c.shared, 7);
		assert_false(c.debug);
		assert_string_equal(c.database_url, "file-url");
		cfg_cleanup(keys, NKEYS, &c);
	}
	/* a per-service key (a port) cannot come from a file every service reads */
	f = fopen(path, "w");
	fprintf(f, "http_port = 7000\n");
	fclose(f);
	{
		const char *env[] = { fileenv, NULL };

		assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_INVALID);
		assert_non_null(strstr(e.msg, "http_port"));
		cfg_cleanup(keys, NKEYS, &c);
	}
	f = fopen(path, "w");
	fprintf(f, "nosuch = 1\n");
	fclose(f);
	{
		const char *env[] = { fileenv, NULL };

		assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_INVALID);
		assert_non_null(strstr(e.msg, "nosuch"));
		cfg_cleanup(keys, NKEYS, &c);
	}
	unlink(path);
}

static void test_log_redacts_secrets(void **state)
{
	const char *env[] = { "CAIRN_DATABASE_URL=postgresql://u:hunter2@h/db",
		              "CAIRN_TOKEN=s3cr3t", NULL };
	struct tcfg c = { 0 };
	struct err e;
	int fds[2];
	char line[4096];
	ssize_t n;

	assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_OK);
	assert_int_equal(pipe(fds), 0);
	log_init("unit", LOGL_INFO);
	log_set_fd(fds[1]);
	cfg_log(keys, NKEYS, "mover", &c);
	log_set_fd(1);
	n = read(fds[0], line, sizeof(line) - 1);
	assert_true(n > 0);
	line[n] = '\0';
	assert_null(strstr(line, "hunter2"));
	assert_null(strstr(line, "s3cr3t"));
	assert_non_null(strstr(line, "u:***@h/db"));
	assert_non_null(strstr(line, "token=***"));
	close(fds[0]);
	close(fds[1]);
	cfg_cleanup(keys, NKEYS, &c);
}

struct extra {
	long long workers;
};

static const struct cfg_key extra_keys[] = {
	CFG_INT("workers", struct extra, workers, "2", 1, 64, "worker threads"),
};

static void test_sections_share_the_unknown_check(void **state)
{
	const char *env[] = { "CAIRN_DATABASE_URL=x", "CAIRN_MOVER_WORKERS=8", NULL };
	struct tcfg c = { 0 };
	struct extra x = { 0 };
	struct cfg_section sec[] = { { keys, NKEYS, &c }, { extra_keys, 1, &x } };
	struct err e;

	assert_int_equal(cfg_load_sections(sec, 2, "mover", env, &e), STATUS_OK);
	assert_int_equal(x.workers, 8);
	assert_int_equal(c.http_port, 8101);
	cfg_cleanup(keys, NKEYS, &c);
	/* the same variable is unknown to a service that has only the first table */
	assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "CAIRN_MOVER_WORKERS"));
	cfg_cleanup(keys, NKEYS, &c);
}

static void test_redacts_password_forms(void **state)
{
	const char *forms[] = { "postgresql://h/db?sslmode=require&password=pw1x&x=1",
		                "host=h dbname=db password=pw2x user=u" };

	for (size_t i = 0; i < 2; i++) {
		char env0[256];
		const char *env[] = { env0, NULL };
		struct tcfg c = { 0 };
		struct err e;
		int fds[2];
		char line[4096];
		ssize_t n;

		snprintf(env0, sizeof(env0), "CAIRN_DATABASE_URL=%s", forms[i]);
		assert_int_equal(cfg_load(keys, NKEYS, "mover", env, &c, &e), STATUS_OK);
		assert_int_equal(pipe(fds), 0);
		log_set_fd(fds[1]);
		cfg_log(keys, NKEYS, "mover", &c);
		log_set_fd(1);
		n = read(fds[0], line, sizeof(line) - 1);
		assert_true(n > 0);
		line[n] = '\0';
		assert_null(strstr(line, "pw1x"));
		assert_null(strstr(line, "pw2x"));
		assert_non_null(strstr(line, "password=***"));
		close(fds[0]);
		close(fds[1]);
		cfg_cleanup(keys, NKEYS, &c);
	}
}

static void test_var_name(void **state)
{
	char b[64];

	assert_string_equal(cfg_var_name(b, sizeof(b), "mover", "http_port"),
	                    "CAIRN_MOVER_HTTP_PORT");
	assert_string_equal(cfg_var_name(b, sizeof(b), NULL, "http_port"), "CAIRN_HTTP_PORT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_precedence),
		cmocka_unit_test(test_errors_name_the_variable),
		cmocka_unit_test(test_file_then_env),
		cmocka_unit_test(test_log_redacts_secrets),
		cmocka_unit_test(test_sections_share_the_unknown_check),
		cmocka_unit_test(test_redacts_password_forms),
		cmocka_unit_test(test_var_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
