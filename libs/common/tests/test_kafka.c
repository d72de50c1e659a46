/* Unit tests for kafka.h: KAFKA_* pass-through, and the producer's delivery reports
 * against librdkafka's built-in mock cluster (no network beyond loopback). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "common/kafka.h"

#include <cmocka.h>

static void test_env_to_prop(void **state)
{
	char p[64];

	assert_true(kafka_env_to_prop("KAFKA_BOOTSTRAP_SERVERS=x:1", p, sizeof(p)));
	assert_string_equal(p, "bootstrap.servers");
	assert_true(kafka_env_to_prop("KAFKA_SOCKET_TIMEOUT_MS", p, sizeof(p)));
	assert_string_equal(p, "socket.timeout.ms");
	assert_true(kafka_env_to_prop("KAFKA_DEBUG=all", p, sizeof(p)));
	assert_string_equal(p, "debug");
	assert_false(kafka_env_to_prop("KAFKA_=x", p, sizeof(p)));
	assert_false(kafka_env_to_prop("KAFKA_HEAP_OPTS=-Xmx1g", p, sizeof(p)));
	assert_false(kafka_env_to_prop("KAFKA_HOME=/opt", p, sizeof(p)));
	assert_false(kafka_env_to_prop("CAIRN_KAFKA_X=1", p, sizeof(p)));
	assert_false(kafka_env_to_prop("PATH=/bin", p, sizeof(p)));
	assert_false(kafka_env_to_prop("KAFKA_BOOTSTRAP_SERVERS", p, 8)); /* too small */
}

static void test_apply_env(void **state)
{
	const char *const good[] = { "PATH=/bin", "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9",
		                     "KAFKA_SOCKET_TIMEOUT_MS=1234", "KAFKA_HEAP_OPTS=-Xmx1g",
		                     NULL };
	const char *const bad[] = { "KAFKA_SOCKET_TIMEOUT_MS=abc", NULL };
	const char *const unknown[] = { "KAFKA_NO_SUCH_THING=1", NULL };
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char v[64];
	size_t n = sizeof(v);
	struct err e;

	assert_int_equal(kafka_conf_apply_env(conf, good, &e), STATUS_OK);
	assert_int_equal(rd_kafka_conf_get(conf, "bootstrap.servers", v, &n), RD_KAFKA_CONF_OK);
	assert_string_equal(v, "127.0.0.1:9");
	n = sizeof(v);
	assert_int_equal(rd_kafka_conf_get(conf, "socket.timeout.ms", v, &n), RD_KAFKA_CONF_OK);
	assert_string_equal(v, "1234");

	assert_int_equal(kafka_conf_apply_env(conf, bad, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "KAFKA_SOCKET_TIMEOUT_MS"));
	assert_int_equal(kafka_conf_apply_env(conf, unknown, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "KAFKA_NO_SUCH_THING"));
	rd_kafka_conf_destroy(conf);
}

static void test_apply_props(void **state)
{
	const char *const bad[] = { "acks", "bogus", NULL };
	const char *const odd[] = { "acks", NULL };
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct err e;

	assert_int_equal(kafka_conf_apply_props(conf, NULL, &e), STATUS_OK);
	assert_int_equal(kafka_conf_apply_props(conf, bad, &e), STATUS_INVALID);
	assert_non_null(strstr(e.msg, "acks"));
	assert_int_equal(kafka_conf_apply_props(conf, odd, &e), STATUS_INVALID);
	rd_kafka_conf_destroy(conf);
}

static struct kafka_producer *mock_producer(void)
{
	static const char *const props[] = { "test.mock.num.brokers",
		                             "1",
		                             "message.timeout.ms",
		                             "1500",
		                             "retry.backoff.ms",
		                             "50",
		                             NULL };
	struct err e;
	struct kafka_producer *kp = kafka_producer_new(props, &e);

	if (kp == NULL)
		fail_msg("producer: %s", e.msg);
	return kp;
}

static void test_producer_is_idempotent(void **state)
{
	struct kafka_producer *kp = mock_producer();
	const rd_kafka_conf_t *conf = rd_kafka_conf(kafka_producer_get_handle(kp));
	char v[16];
	size_t n = sizeof(v);

	assert_int_equal(rd_kafka_conf_get(conf, "enable.idempotence", v, &n), RD_KAFKA_CONF_OK);
	assert_string_equal(v, "true");
	n = sizeof(v);
	assert_int_equal(rd_kafka_conf_get(conf, "acks", v, &n), RD_KAFKA_CONF_OK);
	assert_string_equal(v, "-1");
	kafka_producer_free(kp);
}

static void test_send_sync_delivers(void **state)
{
	struct kafka_producer *kp = mock_producer();
	struct event ev;
	struct err e;

	event_init(&ev);
	assert_int_equal(event_make(&ev, "t", "/s", NULL, NULL, json_pack("{s:i}", "n", 1), &e),
	                 STATUS_OK);
	assert_int_equal(kafka_producer_send_sync(kp, "cairn.test", "k1", &ev, 10000, &e),
	                 STATUS_OK);
	assert_int_equal(kafka_producer_flush(kp, 5000, &e), STATUS_OK);
	event_cleanup(&ev);
	kafka_producer_free(kp);
}

static void test_failed_delivery_is_reported(void **state)
{
	struct kafka_producer *kp = mock_producer();
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kafka_producer_get_handle(kp));
	struct kafka_delivery dr;
	struct event ev;
	struct err e;

	assert_non_null(mc);
	event_init(&ev);
	assert_int_equal(event_make(&ev, "t", "/s", NULL, NULL, json_object(), &e), STATUS_OK);
	/* Warm up: topic metadata and producer id, so the failures below are the broker's. */
	assert_int_equal(kafka_producer_send_sync(kp, "cairn.test", "k", &ev, 10000, &e),
	                 STATUS_OK);

	/* A permanent broker error on Produce (ApiKey 0): the report says so. */
	rd_kafka_mock_push_request_errors(mc, 0, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	assert_int_equal(kafka_producer_send_sync(kp, "cairn.test", "k", &ev, 10000, &e),
	                 STATUS_KAFKA);
	assert_non_null(strstr(e.msg, "delivery failed"));

	/* Async send + flush reports the failure too. */
	rd_kafka_mock_push_request_errors(mc, 0, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	if (kafka_producer_send(kp, "cairn.test", "k", &ev, &dr, &e) != STATUS_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(kafka_producer_flush(kp, 10000, &e), STATUS_KAFKA);
	assert_true(kafka_delivery_is_done(&dr));
	assert_int_equal(dr.err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);

	/* And the producer still works afterwards. */
	assert_int_equal(kafka_producer_send_sync(kp, "cairn.test", "k", &ev, 10000, &e),
	                 STATUS_OK);
	event_cleanup(&ev);
	kafka_producer_free(kp);
}

static void test_broker_down_times_out(void **state)
{
	static const char *const props[] = { "test.mock.num.brokers", "1", "message.timeout.ms",
		                             "300", NULL };
	struct kafka_producer *kp = kafka_producer_new(props, NULL);
	rd_kafka_mock_cluster_t *mc;
	struct event ev;
	struct err e;

	assert_non_null(kp);
	mc = rd_kafka_handle_mock_cluster(kafka_producer_get_handle(kp));
	event_init(&ev);
	assert_int_equal(event_make(&ev, "t", "/s", NULL, NULL, json_object(), &e), STATUS_OK);
	assert_int_equal(rd_kafka_mock_broker_set_down(mc, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(kafka_producer_send_sync(kp, "cairn.test", "k", &ev, 10000, &e),
	                 STATUS_KAFKA);
	assert_non_null(strstr(e.msg, "timed out"));
	assert_int_equal(rd_kafka_mock_broker_set_up(mc, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
	event_cleanup(&ev);
	kafka_producer_free(kp);
}

static void test_new_rejects_bad_props(void **state)
{
	const char *const props[] = { "no.such.property", "1", NULL };
	struct err e;

	assert_null(kafka_producer_new(props, &e));
	assert_int_equal(e.code, STATUS_INVALID);
	assert_non_null(strstr(e.msg, "no.such.property"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_to_prop),
		cmocka_unit_test(test_apply_env),
		cmocka_unit_test(test_apply_props),
		cmocka_unit_test(test_producer_is_idempotent),
		cmocka_unit_test(test_send_sync_delivers),
		cmocka_unit_test(test_failed_delivery_is_reported),
		cmocka_unit_test(test_broker_down_times_out),
		cmocka_unit_test(test_new_rejects_bad_props),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
