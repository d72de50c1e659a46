/* Integration test (c): dead letters. Between valid events on a fresh topic we produce a
 * non-JSON value, an event without ce_id, an event the handler rejects for good and one it
 * fails twice (retriable) before accepting. The three bad ones land on cairn.dlq with the
 * original value and headers plus dlq_* headers, and every good event behind them is
 * applied. Needs CAIRN_DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/db.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/xalloc.h"

#include "spine_util.h"

#define MAXP 64

struct ctx {
	char *sql_insert;
	int retry_failures; /* how many times the "retry" event has failed so far */
};

static enum status handler(struct db_conn *dbc, const struct event *ev, void *user, struct err *e)
{
	struct ctx *c = user;
	const char *fail = json_string_value(json_object_get(ev->data, "fail"));
	const char *params[3];
	char nbuf[24];

	if (fail != NULL && strcmp(fail, "permanent") == 0)
		return err_set(e, STATUS_INVALID, "event %s is not acceptable", ev->id);
	if (fail != NULL && strcmp(fail, "retry") == 0 && c->retry_failures < 2) {
		c->retry_failures++;
		return err_set_retriable(e, STATUS_CONFLICT, "transient failure %d",
		                         c->retry_failures);
	}
	snprintf(nbuf, sizeof(nbuf), "%lld",
	         (long long)json_integer_value(json_object_get(ev->data, "n")));
	params[0] = ev->id;
	params[1] = json_string_value(json_object_get(ev->data, "k"));
	params[2] = nbuf;
	return db_exec(dbc, c->sql_insert, 3, params, e);
}

static rd_kafka_headers_t *headers(const char *id, const char *spec)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	char t[EVENT_TIME_LEN];

	event_time_now(t);
	if (id != NULL)
		rd_kafka_header_add(h, "ce_id", -1, id, -1);
	rd_kafka_header_add(h, "ce_type", -1, "cairn.spine.test", -1);
	rd_kafka_header_add(h, "ce_source", -1, "/cairn/spine-dlq", -1);
	rd_kafka_header_add(h, "ce_specversion", -1, spec, -1);
	rd_kafka_header_add(h, "ce_time", -1, t, -1);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	return h;
}

static void send_raw(struct kafka_producer *kp, const char *topic, rd_kafka_headers_t *h,
                     const char *value)
{
	struct err e;

	if (kafka_producer_send_raw(kp, topic, "agg-1", 5, value, strlen(value), h, NULL, &e) !=
	    STATUS_OK)
		spine_die("produce: %s", e.msg);
}

static void send_event(struct kafka_producer *kp, const char *topic, json_t *data)
{
	struct event ev;
	struct err e;

	event_init(&ev);
	if (event_make(&ev, "cairn.spine.test", "/cairn/spine-dlq", "agg-1", NULL, data, &e) !=
	            STATUS_OK ||
	    kafka_producer_send(kp, topic, "agg-1", &ev, NULL, &e) != STATUS_OK)
		spine_die("produce: %s", e.msg);
	event_cleanup(&ev);
}

static char *hdr(const rd_kafka_message_t *m, const char *name)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return xstrdup("");
	return xstrndup(v, n);
}

/* A plain consumer positioned at the current end of every cairn.dlq partition. */
static rd_kafka_t *dlq_reader_at_end(void)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_topic_t *rkt;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];
	struct err e;
	rd_kafka_t *rk;

	if (kafka_conf_apply_env(conf, NULL, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	rd_kafka_conf_set(conf, "group.id", "spine-dlq-reader", errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		spine_die("%s", errstr);
	rkt = rd_kafka_topic_new(rk, KAFKA_DLQ_TOPIC, NULL);
	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    md->topic_cnt != 1 || md->topics[0].partition_cnt <= 0)
		spine_die("no metadata for %s", KAFKA_DLQ_TOPIC);
	l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int p = 0; p < md->topics[0].partition_cnt; p++) {
		int64_t lo, hi;

		if (rd_kafka_query_watermark_offsets(rk, KAFKA_DLQ_TOPIC, p, &lo, &hi, 10000) !=
		    RD_KAFKA_RESP_ERR_NO_ERROR)
			spine_die("watermarks of %s[%d]", KAFKA_DLQ_TOPIC, p);
		rd_kafka_topic_partition_list_add(l, KAFKA_DLQ_TOPIC, p)->offset = hi;
	}
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (rd_kafka_assign(rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR)
		spine_die("assign %s", KAFKA_DLQ_TOPIC);
	rd_kafka_topic_partition_list_destroy(l);
	return rk;
}

int main(void)
{
	const char *uri, *topics[2];
	char topic[96], group[96], schema[64], id[EVENT_ID_LEN];
	struct kafka_consumer_opts o = { 0 };
	struct kafka_consumer_stats stats = { 0 };
	struct kafka_producer *kp;
	struct kafka_consumer *c;
	struct db_conn *dbc;
	struct ctx cx = { 0 };
	char *reasons[3] = { NULL, NULL, NULL }, *sql;
	int found = 0;
	rd_kafka_t *reader;
	long n, t0, deadline;
	struct err e;

	uri = spine_require_env("CAIRN_DATABASE_URL");
	spine_require_env("KAFKA_BOOTSTRAP_SERVERS");
	log_init("spine-dlq", LOGL_ERROR);
	snprintf(topic, sizeof(topic), "spine.dlq.%ld_%d", (long)time(NULL), (int)getpid());
	snprintf(group, sizeof(group), "spine-dlq-%ld_%d", (long)time(NULL), (int)getpid());
	snprintf(schema, sizeof(schema), "spine_d_%ld_%d", (long)time(NULL), (int)getpid());

	dbc = db_conn_new(uri, &e);
	if (dbc == NULL)
		spine_die("%s", e.msg);
	if (db_migrate(dbc, schema, SPINE_MIGRATIONS_DIR, NULL, &e) != STATUS_OK)
		spine_die("migrate: %s", e.msg);
	cx.sql_insert =
	        xasprintf("INSERT INTO %s.applied(event_id, k, n) VALUES ($1, $2, $3)", schema);
	kp = kafka_producer_new(NULL, &e);
	if (kp == NULL)
		spine_die("%s", e.msg);
	if (kafka_topic_create(kp, topic, 1, 15000, &e) != STATUS_OK ||
	    kafka_topic_create(kp, KAFKA_DLQ_TOPIC, 1, 15000, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	reader = dlq_reader_at_end();

	/* offsets 0..7 of the fresh single-partition topic */
	send_event(kp, topic, json_pack("{s:s, s:i}", "k", "a", "n", 0));
	if (event_uuid_v4(id, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	send_raw(kp, topic, headers(id, "1.0"), "not json{"); /* 1: bad value */
	send_event(kp, topic, json_pack("{s:s, s:i}", "k", "a", "n", 1));
	send_raw(kp, topic, headers(NULL, "1.0"), "{\"k\":\"a\",\"n\":99}"); /* 3: no ce_id */
	send_event(kp, topic, json_pack("{s:s, s:i}", "k", "a", "n", 2));
	send_event(kp, topic, json_pack("{s:s}", "fail", "permanent")); /* 5: rejected */
	send_event(kp, topic, json_pack("{s:s, s:s, s:i}", "fail", "retry", "k", "a", "n", 3));
	send_event(kp, topic, json_pack("{s:s, s:i}", "k", "a", "n", 4));
	if (kafka_producer_flush(kp, 15000, &e) != STATUS_OK)
		spine_die("flush: %s", e.msg);

	topics[0] = topic;
	topics[1] = NULL;
	o.group_id = group;
	o.topics = topics;
	o.schema = schema;
	o.handler = handler;
	o.user = &cx;
	o.backoff_ms = 50;
	c = kafka_consumer_new(&o, dbc, kp, &e);
	if (c == NULL)
		spine_die("%s", e.msg);
	t0 = spine_now_ms();
	deadline = t0 + 60000;
	while (spine_now_ms() < deadline && (stats.applied < 5 || stats.dead < 3)) {
		if (kafka_consumer_poll_once(c, 200, NULL, &e) != STATUS_OK)
			fprintf(stderr, "consumer: %s\n", e.msg);
		kafka_consumer_get_stats(c, &stats);
	}
	printf("consumer: applied=%llu dead=%llu retries=%llu in %ld ms\n",
	       (unsigned long long)stats.applied, (unsigned long long)stats.dead,
	       (unsigned long long)stats.retries, spine_now_ms() - t0);
	spine_check(stats.applied == 5 && stats.dead == 3,
	            "5 good events applied and 3 bad ones dead-lettered");
	spine_check(stats.retries == 2, "the transient failure was retried twice");
	sql = xasprintf("SELECT count(*) FROM %s.applied", schema);
	if (spine_query_long(dbc, sql, &n, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	spine_check(n == 5, "events behind the bad ones were applied (%ld rows)", n);
	sql = xasprintf("SELECT count(*) FROM %s.applied WHERE n <> 99", schema);
	if (spine_query_long(dbc, sql, &n, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	spine_check(n == 5, "the event without ce_id was not applied");

	deadline = spine_now_ms() + 30000;
	while (found < 3 && spine_now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 500);
		char *t, *off, *grp, *reason, *type;
		long o_off;

		if (m == NULL)
			continue;
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_message_destroy(m);
			continue;
		}
		t = hdr(m, "dlq_topic");
		if (strcmp(t, topic) == 0) {
			off = hdr(m, "dlq_offset");
			grp = hdr(m, "dlq_consumer_group");
			reason = hdr(m, "dlq_reason");
			type = hdr(m, "ce_type");
			o_off = strtol(off, NULL, 10);
			printf("dlq: offset=%s reason=%s\n", off, reason);
			spine_check(strcmp(grp, group) == 0, "dlq_consumer_group is ours");
			spine_check(strcmp(type, "cairn.spine.test") == 0,
			            "original headers kept on the dead letter");
			spine_check(m->key_len == 5 && memcmp(m->key, "agg-1", 5) == 0,
			            "original key kept");
			if (o_off == 1) {
				spine_check(m->len == 9 && memcmp(m->payload, "not json{", 9) == 0,
				            "original value kept");
				reasons[0] = xstrdup(reason);
			} else if (o_off == 3) {
				reasons[1] = xstrdup(reason);
			} else if (o_off == 5) {
				reasons[2] = xstrdup(reason);
			} else {
				spine_die("unexpected dead letter at offset %ld", o_off);
			}
			found++;
			free(off);
			free(grp);
			free(reason);
			free(type);
		}
		free(t);
		rd_kafka_message_destroy(m);
	}
	spine_check(found == 3, "three dead letters on %s", KAFKA_DLQ_TOPIC);
	spine_check(reasons[0] != NULL && strstr(reasons[0], "not JSON") != NULL,
	            "reason for the non-JSON value");
	spine_check(reasons[1] != NULL && strstr(reasons[1], "ce_id") != NULL,
	            "reason for the missing ce_id");
	spine_check(reasons[2] != NULL && strstr(reasons[2], "handler: invalid") != NULL,
	            "reason for the rejected event");

	for (int i = 0; i < 3; i++)
		free(reasons[i]);
	rd_kafka_consumer_close(reader);
	rd_kafka_destroy(reader);
	kafka_consumer_free(c);
	kafka_producer_free(kp);
	sql = xasprintf("DROP SCHEMA %s CASCADE", schema);
	if (db_exec(dbc, sql, 0, NULL, &e) != STATUS_OK)
		fprintf(stderr, "warning: %s\n", e.msg);
	free(sql);
	free(cx.sql_insert);
	db_conn_free(dbc);
	printf("spine_dlq: passed\n");
	return 0;
}
