/* kafka.h: the exactly-once group consumer with a dead-letter queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kafka.h"
#include "common/log.h"
#include "common/xalloc.h"

#include "kafka_private.h"

struct kafka_consumer {
	rd_kafka_t *rk;
	struct db_conn *dbc;        /* borrowed */
	struct kafka_producer *dlq; /* borrowed */
	char *group;
	char *schema;
	char *dlq_topic;
	char *sql_dedupe;
	kafka_handler_fn handler;
	void *user;
	int max_attempts;
	int backoff_ms;
	bool closed;
	struct kafka_consumer_stats stats;
};

enum status kafka_consumer_ensure_schema(struct db_conn *dbc, const char *schema, struct err *e)
{
	return db_ensure_ddl(dbc, schema, KAFKA_APPLIED_EVENTS_DDL, e);
}

struct kafka_consumer *kafka_consumer_new(const struct kafka_consumer_opts *o, struct db_conn *dbc,
                                          struct kafka_producer *dlq, struct err *e)
{
	static const char *const defaults[] = { "session.timeout.ms",
		                                "6000",
		                                "heartbeat.interval.ms",
		                                "500",
		                                "auto.offset.reset",
		                                "earliest",
		                                "enable.auto.commit",
		                                "true",
		                                NULL };
	static const char *const fixed[] = { "enable.auto.offset.store", "false", NULL };
	rd_kafka_topic_partition_list_t *subs;
	struct kafka_consumer *c;
	rd_kafka_conf_t *conf;
	rd_kafka_resp_err_t kerr;
	char errstr[512];
	size_t ntopics = 0;

	if (o->group_id == NULL || o->topics == NULL || o->topics[0] == NULL ||
	    o->handler == NULL || dbc == NULL || dlq == NULL) {
		err_set(e, STATUS_INVALID, "consumer needs group_id, topics, handler, dbc, dlq");
		return NULL;
	}
	if (!db_ident_is_valid(o->schema)) {
		err_set(e, STATUS_INVALID, "consumer schema name is not a plain identifier");
		return NULL;
	}
	conf = kafka_conf_base();
	if (kafka_conf_apply_props(conf, defaults, e) != STATUS_OK ||
	    kafka_conf_apply_env(conf, NULL, e) != STATUS_OK ||
	    kafka_conf_apply_props(conf, o->props, e) != STATUS_OK ||
	    kafka_conf_apply_props(conf, fixed, e) != STATUS_OK ||
	    rd_kafka_conf_set(conf, "group.id", o->group_id, errstr, sizeof(errstr)) !=
	            RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (c->rk == NULL) {
		rd_kafka_conf_destroy(conf);
		free(c);
		err_set(e, STATUS_KAFKA, "cannot create consumer: %s", errstr);
		return NULL;
	}
	rd_kafka_poll_set_consumer(c->rk);
	c->dbc = dbc;
	c->dlq = dlq;
	c->group = xstrdup(o->group_id);
	c->schema = xstrdup(o->schema);
	c->dlq_topic = xstrdup(o->dlq_topic != NULL ? o->dlq_topic : KAFKA_DLQ_TOPIC);
	c->sql_dedupe = xasprintf("INSERT INTO %s.applied_events(consumer_group, event_id) "
	                          "VALUES ($1, $2) ON CONFLICT DO NOTHING",
	                          o->schema);
	c->handler = o->handler;
	c->user = o->user;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 5;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 100;

	while (o->topics[ntopics] != NULL)
		ntopics++;
	subs = rd_kafka_topic_partition_list_new((int)ntopics);
	for (size_t i = 0; i < ntopics; i++)
		rd_kafka_topic_partition_list_add(subs, o->topics[i], RD_KAFKA_PARTITION_UA);
	kerr = rd_kafka_subscribe(c->rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
		err_set(e, STATUS_KAFKA, "subscribe: %s", rd_kafka_err2str(kerr));
		kafka_consumer_free(c);
		return NULL;
	}
	return c;
}

void kafka_consumer_close(struct kafka_consumer *c)
{
	if (c == NULL || c->closed)
		return;
	c->closed = true;
	rd_kafka_consumer_close(c->rk);
}

void kafka_consumer_free(struct kafka_consumer *c)
{
	if (c == NULL)
		return;
	kafka_consumer_close(c);
	rd_kafka_destroy(c->rk);
	free(c->group);
	free(c->schema);
	free(c->dlq_topic);
	free(c->sql_dedupe);
	free(c);
}

rd_kafka_t *kafka_consumer_get_handle(struct kafka_consumer *c)
{
	return c->rk;
}

void kafka_consumer_get_stats(const struct kafka_consumer *c, struct kafka_consumer_stats *out)
{
	*out = c->stats;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static void store_offset(struct kafka_consumer *c, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
	        m->offset + 1;
	/* Fails only if the partition was revoked meanwhile; then the new owner re-reads the
	 * message and skips it as a duplicate. */
	(void)rd_kafka_offsets_store(c->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
}

/* Rewind the partition so that m is fetched again by a later poll. */
static void rewind_to(struct kafka_consumer *c, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_error_t *kerr;

	rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
	        m->offset;
	kerr = rd_kafka_seek_partitions(c->rk, l, 5000);
	if (kerr != NULL) {
		log_warn("rewind %s[%d] to %lld: %s", rd_kafka_topic_name(m->rkt),
		         (int)m->partition, (long long)m->offset, rd_kafka_error_string(kerr));
		rd_kafka_error_destroy(kerr);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* One attempt: BEGIN; dedupe insert; handler; COMMIT. *dup tells a skipped duplicate. */
static enum status apply_tx(struct kafka_consumer *c, const struct event *ev, bool *dup,
                            struct err *e)
{
	const char *params[2] = { c->group, ev->id };
	PGresult *res;
	enum status st;

	*dup = false;
	st = db_tx_begin(c->dbc, e);
	if (st != STATUS_OK)
		return st;
	st = db_query(c->dbc, c->sql_dedupe, 2, params, &res, e);
	if (st != STATUS_OK)
		goto out_rollback;
	*dup = strcmp(PQcmdTuples(res), "0") == 0;
	PQclear(res);
	if (!*dup) {
		st = c->handler(c->dbc, ev, c->user, e);
		if (st != STATUS_OK)
			goto out_rollback;
	}
	return db_tx_commit(c->dbc, e);

out_rollback:
	db_tx_rollback(c->dbc);
	return st;
}

static void hdr_ll(rd_kafka_headers_t *h, const char *name, long long v)
{
	char s[32];

	snprintf(s, sizeof(s), "%lld", v);
	rd_kafka_header_add(h, name, -1, s, -1);
}

/* Park m on the DLQ with the original key, value and headers plus dlq_* headers, and wait
 * for the broker's acknowledgement. */
static enum status send_dlq(struct kafka_consumer *c, rd_kafka_message_t *m, const char *reason,
                            struct err *e)
{
	rd_kafka_headers_t *orig = NULL, *h;
	struct kafka_delivery dr;
	enum status st;

	if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig != NULL)
		h = rd_kafka_headers_copy(orig);
	else
		h = rd_kafka_headers_new(6);
	rd_kafka_header_add(h, "dlq_reason", -1, reason, -1);
	rd_kafka_header_add(h, "dlq_topic", -1, rd_kafka_topic_name(m->rkt), -1);
	hdr_ll(h, "dlq_partition", (long long)m->partition);
	hdr_ll(h, "dlq_offset", (long long)m->offset);
	rd_kafka_header_add(h, "dlq_consumer_group", -1, c->group, -1);
	st = kafka_producer_send_raw(c->dlq, c->dlq_topic, m->key, m->key_len, m->payload, m->len,
	                             h, &dr, e);
	if (st != STATUS_OK)
		return st;
	st = kafka_delivery_wait(c->dlq, &dr, 30000, e);
	if (st == STATUS_TIMEOUT) {
		/* dr is on our stack: wait for the report whatever it says. */
		while (!kafka_delivery_is_done(&dr))
			rd_kafka_poll(kafka_producer_get_handle(c->dlq), 100);
		st = dr.err == RD_KAFKA_RESP_ERR_NO_ERROR ? STATUS_OK : STATUS_KAFKA;
	}
	return st;
}

static enum status dead_letter(struct kafka_consumer *c, rd_kafka_message_t *m,
                               const struct event *ev, const char *reason, struct err *e)
{
	struct log_ctx ctx = { .event_id = ev != NULL && ev->id[0] ? ev->id : NULL,
		               .topic = rd_kafka_topic_name(m->rkt),
		               .partition = m->partition,
		               .offset = m->offset };
	enum status st;

	st = send_dlq(c, m, reason, e);
	if (st != STATUS_OK) {
		rewind_to(c, m);
		return err_set(e, STATUS_KAFKA, "cannot park message on %s: %s", c->dlq_topic,
		               e != NULL ? e->msg : "");
	}
	log_ctx_warn(&ctx, "event parked on %s: %s", c->dlq_topic, reason);
	c->stats.dead++;
	store_offset(c, m);
	return STATUS_OK;
}

static enum status handle(struct kafka_consumer *c, rd_kafka_message_t *m, struct err *e)
{
	rd_kafka_headers_t *hdrs = NULL;
	struct event ev;
	struct err le;
	enum status st;
	long backoff = c->backoff_ms;
	char reason[300];
	bool dup = false;

	event_init(&ev);
	err_clear(&le);
	(void)rd_kafka_message_headers(m, &hdrs);
	st = event_decode(hdrs, m->payload, m->len, &ev, &le);
	if (st != STATUS_OK) {
		snprintf(reason, sizeof(reason), "decode: %s", le.msg);
		return dead_letter(c, m, NULL, reason, e);
	}
	for (int attempt = 1; attempt <= c->max_attempts; attempt++) {
		err_clear(&le);
		st = apply_tx(c, &ev, &dup, &le);
		if (st == STATUS_OK || !le.retriable || attempt == c->max_attempts)
			break;
		c->stats.retries++;
		sleep_ms(backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
	if (st == STATUS_OK) {
		if (dup)
			c->stats.duplicates++;
		else
			c->stats.applied++;
		store_offset(c, m);
	} else if (st == STATUS_UNAVAILABLE) {
		/* The database (or a dependency) is down, not the event: try it again later. */
		rewind_to(c, m);
		st = err_set(e, st, "event %s not applied, will retry: %s", ev.id, le.msg);
	} else {
		snprintf(reason, sizeof(reason), "handler: %s: %s", status_str(st), le.msg);
		st = dead_letter(c, m, &ev, reason, e);
	}
	event_cleanup(&ev);
	return st;
}

enum status kafka_consumer_poll_once(struct kafka_consumer *c, int timeout_ms, bool *processed,
                                     struct err *e)
{
	rd_kafka_message_t *m;
	enum status st = STATUS_OK;

	if (processed != NULL)
		*processed = false;
	if (c->closed)
		return err_set(e, STATUS_INVALID, "consumer is closed");
	m = rd_kafka_consumer_poll(c->rk, timeout_ms);
	if (m == NULL)
		return STATUS_OK;
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* Consumer errors are informational (the client retries); fatal ones are not. */
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->err == RD_KAFKA_RESP_ERR__FATAL)
				st = err_set(e, STATUS_KAFKA, "consumer fatal error: %s",
				             rd_kafka_message_errstr(m));
			else
				log_warn("consumer %s: %s", c->group, rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
		return st;
	}
	if (processed != NULL)
		*processed = true;
	st = handle(c, m, e);
	rd_kafka_message_destroy(m);
	return st;
}
