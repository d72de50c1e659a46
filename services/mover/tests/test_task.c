/* Unit tests for decoding backup tasks and the mover's event JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

#include <cmocka.h>

static const char good[] =
        "{\"task_id\":\"3f2504e0-4f89-41d3-9a0c-0305e82c3301\","
        "\"session_id\":\"6fa459ea-ee8a-4ca4-894e-db77e160355e\","
        "\"tenant_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\","
        "\"vm_id\":\"886313e1-3b8a-4372-9b90-0c9aee199e5d\","
        "\"repository_id\":\"16fd2706-8baf-433b-82eb-8c7fada847da\",\"mode\":\"incremental\","
        "\"options\":{\"index_files\":true,\"zstd_level\":3},\"future_field\":1}";

static void test_parse_good(void **state)
{
	json_t *j = json_loads(good, 0, NULL);
	struct mover_task t;
	struct err e;

	assert_int_equal(mover_task_parse(j, &t, &e), STATUS_OK);
	assert_string_equal(t.task_id, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
	assert_false(t.full);
	assert_true(t.index_files);
	assert_int_equal(t.zstd_level, 3);
	assert_string_equal(t.job_id, "");
	json_decref(j);
}

static void expect_bad(const char *field, json_t *value, const char *needle)
{
	json_t *j = json_loads(good, 0, NULL);
	struct mover_task t;
	struct err e;

	if (value)
		json_object_set_new(j, field, value);
	else
		json_object_del(j, field);
	assert_int_equal(mover_task_parse(j, &t, &e), STATUS_INVALID);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("'%s' does not mention '%s'", e.msg, needle);
	json_decref(j);
}

static void test_parse_bad(void **state)
{
	expect_bad("task_id", json_string("nope"), "task_id");
	expect_bad("task_id", NULL, "task_id");
	expect_bad("vm_id", json_integer(3), "vm_id");
	expect_bad("repository_id", NULL, "repository_id");
	expect_bad("mode", json_string("differential"), "mode");
	expect_bad("options", NULL, "options");
	expect_bad("options", json_pack("{s:i}", "zstd_level", 99), "zstd_level");
	expect_bad("options", json_pack("{s:i}", "zstd_level", 23), "zstd_level");
	expect_bad("options", json_pack("{s:i}", "zstd_level", 0), "zstd_level");
	expect_bad("options", json_pack("{s:s}", "index_files", "yes"), "index_files");
	expect_bad("tenant_id", json_string(""), "tenant_id");
}

/* zstd_level: the schema's whole range 1..22 is accepted; absent means the engine's fast
 * default (1), not zstd's own default (3). */
static void test_zstd_levels(void **state)
{
	const int levels[] = { 1, 19, 20, 22 };
	struct mover_task t;
	struct err e;
	json_t *j;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		j = json_loads(good, 0, NULL);
		json_object_set_new(json_object_get(j, "options"), "zstd_level",
		                    json_integer(levels[i]));
		assert_int_equal(mover_task_parse(j, &t, &e), STATUS_OK);
		assert_int_equal(t.zstd_level, levels[i]);
		json_decref(j);
	}
	j = json_loads(good, 0, NULL);
	json_object_del(json_object_get(j, "options"), "zstd_level");
	assert_int_equal(mover_task_parse(j, &t, &e), STATUS_OK);
	assert_int_equal(t.zstd_level, 1);
	json_decref(j);
}

/* Progress: phase, bytes, clamped percent, files so far. */
static void test_progress_json(void **state)
{
	json_t *j = json_loads(good, 0, NULL);
	struct mover_task t;
	struct err e;
	json_t *o;

	assert_int_equal(mover_task_parse(j, &t, &e), STATUS_OK);
	o = mover_progress_json(&t, "index", 10, 5, 20, 130.0, -1.0, 4096);
	assert_string_equal(json_string_value(json_object_get(o, "phase")), "index");
	assert_int_equal(json_integer_value(json_object_get(o, "files_indexed")), 4096);
	assert_true(json_real_value(json_object_get(o, "percent")) == 100.0);
	assert_true(json_real_value(json_object_get(o, "speed_bps")) == 0.0);
	assert_int_equal(json_integer_value(json_object_get(o, "bytes_read")), 10);
	json_decref(o);
	json_decref(j);
}

/* Figures carry the indexing rate when files were indexed. */
static void test_figures_json(void **state)
{
	struct mover_figures f = { .files_indexed = 5000,
		                   .index_ms = 250,
		                   .files_per_second = 20000,
		                   .duration_ms = 900 };
	json_t *o = mover_figures_json(&f);

	assert_int_equal(json_integer_value(json_object_get(o, "files_indexed")), 5000);
	assert_int_equal(json_integer_value(json_object_get(o, "index_ms")), 250);
	assert_int_equal(json_integer_value(json_object_get(o, "files_per_second")), 20000);
	json_decref(o);
	f.files_indexed = 0;
	f.index_ms = 0;
	o = mover_figures_json(&f);
	assert_null(json_object_get(o, "files_per_second"));
	json_decref(o);
}

static void test_finished_json(void **state)
{
	json_t *j = json_loads(good, 0, NULL);
	struct mover_task t;
	struct mover_figures f = { .bytes_read = 10, .bytes_stored = 5, .duration_ms = 7 };
	struct err e;
	json_t *ok, *failed;

	assert_int_equal(mover_task_parse(j, &t, &e), STATUS_OK);
	ok = mover_finished_json(&t, "success", &f, t.task_id, NULL, NULL, NULL,
	                         "2026-01-01T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(ok, "status")), "success");
	assert_string_equal(json_string_value(json_object_get(ok, "restore_point_id")), t.task_id);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(ok, "figures"), "bytes_read")),
	        10);
	assert_null(json_object_get(ok, "error"));
	failed = mover_finished_json(&t, "failed", &f, NULL, "not_found", "vm gone", NULL,
	                             "2026-01-01T00:00:00Z");
	assert_true(json_is_null(json_object_get(failed, "restore_point_id")));
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(failed, "error"), "code")),
	        "not_found");
	json_decref(ok);
	json_decref(failed);
	json_decref(j);
	assert_true(mover_state_is_terminal("stopped"));
	assert_false(mover_state_is_terminal("running"));
}

/* The examples of schemas/events/backup.task.requested.json decode (contract test). */
static void test_schema_examples_decode(void **state)
{
	char path[4096];
	const char *suffix = "services/mover/tests/test_task.c";
	size_t root = strlen(__FILE__) - strlen(suffix);
	json_t *schema, *ex;
	size_t i;

	snprintf(path, sizeof(path), "%.*sschemas/events/backup.task.requested.json", (int)root,
	         __FILE__);
	schema = json_load_file(path, 0, NULL);
	assert_non_null(schema);
	json_array_foreach(json_object_get(schema, "examples"), i, ex)
	{
		struct mover_task t;
		struct err e;

		if (mover_task_parse(ex, &t, &e) != STATUS_OK)
			fail_msg("example %zu: %s", i, e.msg);
	}
	assert_true(i > 0);
	json_decref(schema);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_zstd_levels),
		cmocka_unit_test(test_figures_json),
		cmocka_unit_test(test_progress_json),
		cmocka_unit_test(test_finished_json),
		cmocka_unit_test(test_schema_examples_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
