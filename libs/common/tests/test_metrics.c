/* Unit tests for metrics: exact Prometheus text output, validation, thread-safety. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/metrics.h"

#include <cmocka.h>

static char *render(struct metrics *m)
{
	struct buf b;

	buf_init(&b);
	metrics_render(m, &b);
	return buf_take(&b);
}

static void test_counter_gauge_text(void **state)
{
	struct metrics *m = metrics_new();
	struct err e;
	struct metrics_counter *c =
	        metrics_counter_new(m, "jobs_total", "Jobs created.", "tenant,kind", &e);
	struct metrics_gauge *g = metrics_gauge_new(m, "queue_depth", "Queued tasks.", NULL, &e);
	char *s;

	assert_non_null(c);
	assert_non_null(g);
	metrics_counter_inc(c, (const char *const[]){ "t1", "full" });
	metrics_counter_add(c, (const char *const[]){ "t1", "full" }, 2);
	metrics_counter_add(c, (const char *const[]){ "t2", "incr" }, 0.5);
	metrics_counter_add(c, (const char *const[]){ "t2", "incr" }, -7); /* ignored */
	metrics_gauge_set(g, NULL, 10);
	metrics_gauge_add(g, NULL, -2.25);
	assert_true(metrics_counter_get(c, (const char *const[]){ "t1", "full" }) == 3);
	assert_true(metrics_counter_get(c, (const char *const[]){ "nope", "x" }) == 0);
	assert_true(metrics_gauge_get(g, NULL) == 7.75);

	s = render(m);
	assert_string_equal(s, "# HELP jobs_total Jobs created.\n"
	                       "# TYPE jobs_total counter\n"
	                       "jobs_total{tenant=\"t1\",kind=\"full\"} 3\n"
	                       "jobs_total{tenant=\"t2\",kind=\"incr\"} 0.5\n"
	                       "# HELP queue_depth Queued tasks.\n"
	                       "# TYPE queue_depth gauge\n"
	                       "queue_depth 7.75\n");
	free(s);
	metrics_free(m);
}

static void test_unlabelled_renders_zero_and_escapes(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_counter *c =
	        metrics_counter_new(m, "up_total", "Line1\nback\\slash", "", NULL);
	struct metrics_counter *l = metrics_counter_new(m, "odd", "x", "v", NULL);
	char *s;

	assert_non_null(c);
	metrics_counter_inc(l, (const char *const[]){ "a\"b\\c\nd" });
	metrics_counter_inc(l, (const char *const[]){ NULL });
	s = render(m);
	assert_string_equal(s, "# HELP up_total Line1\\nback\\\\slash\n"
	                       "# TYPE up_total counter\n"
	                       "up_total 0\n"
	                       "# HELP odd x\n"
	                       "# TYPE odd counter\n"
	                       "odd{v=\"a\\\"b\\\\c\\nd\"} 1\n"
	                       "odd{v=\"\"} 1\n");
	free(s);
	metrics_free(m);
}

static void test_histogram_text(void **state)
{
	struct metrics *m = metrics_new();
	struct err e;
	struct metrics_histogram *h = metrics_histogram_new(m, "req_seconds", "Latency.", "route",
	                                                    (const double[]){ 0.1, 0.5, 1 }, 3, &e);
	char *s;

	assert_non_null(h);
	metrics_histogram_observe(h, (const char *const[]){ "/a" }, 0.1); /* le is inclusive */
	metrics_histogram_observe(h, (const char *const[]){ "/a" }, 0.3);
	metrics_histogram_observe(h, (const char *const[]){ "/a" }, 2);
	metrics_histogram_observe(h, (const char *const[]){ "/a" }, NAN); /* ignored */
	assert_int_equal(metrics_histogram_count(h, (const char *const[]){ "/a" }), 3);
	s = render(m);
	assert_string_equal(s, "# HELP req_seconds Latency.\n"
	                       "# TYPE req_seconds histogram\n"
	                       "req_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\n"
	                       "req_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
	                       "req_seconds_bucket{route=\"/a\",le=\"1\"} 2\n"
	                       "req_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"
	                       "req_seconds_sum{route=\"/a\"} 2.4\n"
	                       "req_seconds_count{route=\"/a\"} 3\n");
	free(s);
	metrics_free(m);
}

static void test_histogram_unlabelled(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_histogram *h =
	        metrics_histogram_new(m, "h", "H.", NULL, (const double[]){ 1 }, 1, NULL);
	char *s = render(m);

	assert_non_null(h);
	assert_string_equal(s, "# HELP h H.\n# TYPE h histogram\n"
	                       "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\n"
	                       "h_sum 0\nh_count 0\n");
	free(s);
	metrics_free(m);
}

static void test_validation(void **state)
{
	struct metrics *m = metrics_new();
	struct err e;

	assert_null(metrics_counter_new(m, "9bad", "", NULL, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	assert_null(metrics_counter_new(m, "ok", "", "a,,b", &e));
	assert_int_equal(e.code, STATUS_INVALID);
	assert_null(metrics_counter_new(m, "ok", "", "a,a", &e));
	assert_int_equal(e.code, STATUS_INVALID);
	assert_null(metrics_counter_new(m, "ok", "", "__x", &e));
	assert_null(metrics_counter_new(m, "ok", "", "a,b,c,d,e,f,g", &e));
	assert_null(metrics_histogram_new(m, "h", "", "le", (const double[]){ 1 }, 1, &e));
	assert_null(metrics_histogram_new(m, "h", "", NULL, (const double[]){ 2, 1 }, 2, &e));
	assert_null(metrics_histogram_new(m, "h", "", NULL, NULL, 0, &e));
	assert_non_null(metrics_counter_new(m, "ns:ok_total", "", "a_1", &e));
	assert_null(metrics_gauge_new(m, "ns:ok_total", "", NULL, &e));
	assert_int_equal(e.code, STATUS_CONFLICT);
	metrics_free(m);
	metrics_free(NULL);
}

static void test_format_double(void **state)
{
	char s[40];

	metrics_format_double(s, sizeof(s), 0.1);
	assert_string_equal(s, "0.1");
	metrics_format_double(s, sizeof(s), 1e21);
	assert_string_equal(s, "1e+21");
	metrics_format_double(s, sizeof(s), INFINITY);
	assert_string_equal(s, "+Inf");
	metrics_format_double(s, sizeof(s), -INFINITY);
	assert_string_equal(s, "-Inf");
	metrics_format_double(s, sizeof(s), NAN);
	assert_string_equal(s, "NaN");
	metrics_format_double(s, sizeof(s), 12345678);
	assert_string_equal(s, "12345678");
}

struct worker {
	struct metrics_counter *c;
	struct metrics_histogram *h;
	struct metrics *m;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	const char *labels[4] = { "a", "b", "c", "d" };

	for (int i = 0; i < 20000; i++) {
		metrics_counter_inc(w->c, (const char *const[]){ labels[i % 4] });
		metrics_histogram_observe(w->h, NULL, (double)(i % 3));
		if (i % 5000 == 0) {
			struct buf b;

			buf_init(&b);
			metrics_render(w->m, &b);
			buf_cleanup(&b);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct metrics *m = metrics_new();
	struct worker w = { .m = m };
	pthread_t t[4];
	double sum = 0;

	w.c = metrics_counter_new(m, "c_total", "", "k", NULL);
	w.h = metrics_histogram_new(m, "h", "", NULL, (const double[]){ 1 }, 1, NULL);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, &w);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		sum += metrics_counter_get(
		        w.c, (const char *const[]){ (const char *[]){ "a", "b", "c", "d" }[i] });
	assert_true(sum == 80000);
	assert_int_equal(metrics_histogram_count(w.h, NULL), 80000);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_gauge_text),
		cmocka_unit_test(test_unlabelled_renders_zero_and_escapes),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_histogram_unlabelled),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_format_double),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
