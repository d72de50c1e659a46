#include "common/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xalloc.h"

struct outbox_relay {
	char *uri;
	char *schema;
	char *channel;
	struct kafka_producer *kp; /* borrowed */
	struct outbox_relay_opts o;
	struct db_conn *dbc; /* owned by the thread while it runs */
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	_Atomic uint64_t sent;
	int wake[2]; /* self-pipe: [0] polled by the thread, [1] written by stop/kick */
};

enum status outbox_ensure_schema(struct db_conn *dbc, const char *schema, struct err *e)
{
	return db_ensure_ddl(dbc, schema, OUTBOX_DDL, e);
}

enum status outbox_add(struct db_conn *dbc, const char *schema, const struct event *ev,
                       const char *topic, const char *key, struct err *e)
{
	const char *params[9];
	char *sql, *data = NULL;
	enum status st;

	if (!db_tx_is_open(dbc))
		return err_set(e, STATUS_INVALID, "outbox_add needs an open transaction");
	if (!db_ident_is_valid(schema))
		return err_set(e, STATUS_INVALID, "bad outbox schema name");
	if (!event_id_is_valid(ev->id) || ev->type == NULL || ev->source == NULL || topic == NULL)
		return err_set(e, STATUS_INVALID, "outbox event needs id, type, source and topic");
	if (ev->data != NULL) {
		data = json_dumps(ev->data, JSON_COMPACT | JSON_ENCODE_ANY);
		if (data == NULL)
			return err_set(e, STATUS_INVALID, "event %s data cannot be serialised",
			               ev->id);
	}
	params[0] = ev->id;
	params[1] = topic;
	params[2] = key;
	params[3] = ev->type;
	params[4] = ev->source;
	params[5] = ev->subject;
	params[6] = ev->tenant_id;
	params[7] = data;
	params[8] = ev->time[0] != '\0' ? ev->time : NULL;
	/* One round trip: the insert and the NOTIFY (queued until COMMIT). */
	sql = xasprintf("WITH ins AS (INSERT INTO %s.outbox"
	                "(id, topic, key, type, source, subject, tenant_id, data, created_at) "
	                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, "
	                "coalesce($9::timestamptz, now())) RETURNING seq) "
	                "SELECT pg_notify('cairn_outbox_%s', '') FROM ins",
	                schema, schema);
	st = db_exec(dbc, sql, 9, params, e);
	free(sql);
	free(data);
	return st;
}

enum {
	COL_SEQ,
	COL_ID,
	COL_TOPIC,
	COL_KEY,
	COL_TYPE,
	COL_SOURCE,
	COL_SUBJECT,
	COL_TENANT,
	COL_DATA,
	COL_HEADERS,
	COL_TIME
};

static const char *val(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Encode one row as a CloudEvent and produce it asynchronously. */
static enum status produce_row(struct kafka_producer *kp, PGresult *res, int row,
                               struct kafka_delivery *dr, struct err *e)
{
	rd_kafka_headers_t *hdrs;
	const char *data = val(res, row, COL_DATA), *extra = val(res, row, COL_HEADERS);
	const char *key = val(res, row, COL_KEY);
	struct event ev;
	char *value;
	size_t len;
	enum status st;

	event_init(&ev);
	snprintf(ev.id, sizeof(ev.id), "%s", val(res, row, COL_ID));
	snprintf(ev.time, sizeof(ev.time), "%s", val(res, row, COL_TIME));
	ev.type = xstrdup(val(res, row, COL_TYPE));
	ev.source = xstrdup(val(res, row, COL_SOURCE));
	ev.subject = val(res, row, COL_SUBJECT) ? xstrdup(val(res, row, COL_SUBJECT)) : NULL;
	ev.tenant_id = val(res, row, COL_TENANT) ? xstrdup(val(res, row, COL_TENANT)) : NULL;
	ev.data = data != NULL ? json_loads(data, JSON_DECODE_ANY, NULL) : NULL;
	st = event_encode(&ev, &hdrs, &value, &len, e);
	event_cleanup(&ev);
	if (st != STATUS_OK)
		return st;
	if (extra != NULL) {
		json_t *h = json_loads(extra, 0, NULL);
		const char *k;
		json_t *v;

		json_object_foreach(h, k, v)
		{
			if (json_is_string(v))
				rd_kafka_header_add(hdrs, k, -1, json_string_value(v), -1);
		}
		json_decref(h);
	}
	st = kafka_producer_send_raw(kp, val(res, row, COL_TOPIC), key, key ? strlen(key) : 0,
	                             value, len, hdrs, dr, e);
	free(value);
	return st;
}

enum status outbox_publish_batch(struct db_conn *dbc, const char *schema, struct kafka_producer *kp,
                                 int batch_size, size_t *sent, struct err *e)
{
	struct kafka_delivery *drs = NULL;
	PGresult *res = NULL;
	char limit[16], *sql;
	const char *params[1];
	struct buf seqs;
	int n, queued = 0, ok = 0;
	enum status st;

	if (sent != NULL)
		*sent = 0;
	if (!db_ident_is_valid(schema))
		return err_set(e, STATUS_INVALID, "bad outbox schema name");
	snprintf(limit, sizeof(limit), "%d", batch_size > 0 ? batch_size : 500);
	params[0] = limit;
	sql = xasprintf("SELECT seq, id, topic, key, type, source, subject, tenant_id, "
	                "data::text, headers::text, "
	                "to_char(created_at AT TIME ZONE 'UTC', "
	                "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
	                "FROM %s.outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
	                schema);
	st = db_query(dbc, sql, 1, params, &res, e);
	free(sql);
	if (st != STATUS_OK)
		return st;
	n = PQntuples(res);
	if (n == 0)
		goto out_clear;

	drs = xcalloc((size_t)n, sizeof(*drs));
	for (queued = 0; queued < n; queued++) {
		st = produce_row(kp, res, queued, &drs[queued], e);
		if (st != STATUS_OK)
			break;
	}
	/* Every queued message gets a report within message.timeout.ms: wait for all of them,
	 * since drs must outlive the callbacks. */
	for (int i = 0; i < queued; i++)
		while (!kafka_delivery_is_done(&drs[i]))
			rd_kafka_poll(kafka_producer_get_handle(kp), 50);
	while (ok < queued && drs[ok].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		ok++;
	if (ok < queued && st == STATUS_OK)
		st = err_set(e, STATUS_KAFKA, "outbox %s seq %s: delivery failed: %s", schema,
		             PQgetvalue(res, ok, COL_SEQ), rd_kafka_err2str(drs[ok].err));
	if (ok > 0) {
		enum status mst;
		struct err me;

		buf_init(&seqs);
		buf_puts(&seqs, "{");
		for (int i = 0; i < ok; i++)
			buf_printf(&seqs, "%s%s", i ? "," : "", PQgetvalue(res, i, COL_SEQ));
		buf_puts(&seqs, "}");
		params[0] = seqs.data;
		sql = xasprintf(
		        "UPDATE %s.outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])",
		        schema);
		mst = db_exec(dbc, sql, 1, params, &me);
		free(sql);
		buf_cleanup(&seqs);
		if (mst != STATUS_OK) {
			/* Published but not marked: they go out again, consumers dedupe them. */
			st = err_set(e, mst, "outbox %s: mark sent: %s", schema, me.msg);
			if (e != NULL)
				e->retriable = me.retriable;
			ok = 0;
		}
	}
	if (sent != NULL)
		*sent = (size_t)ok;
	free(drs);
out_clear:
	PQclear(res);
	return st;
}

static void sleep_or_wake(struct outbox_relay *r, int ms)
{
	struct pollfd p = { .fd = r->wake[0], .events = POLLIN };
	char junk[64];

	if (poll(&p, 1, ms) > 0)
		while (read(r->wake[0], junk, sizeof(junk)) > 0)
			;
}

/* Connect, take the single-relay lock and LISTEN. Returns false on failure (logged). */
static bool relay_connect(struct outbox_relay *r)
{
	const char *params[1];
	char *key, *listen;
	PGresult *res;
	struct err e;
	bool locked = false;

	db_conn_free(r->dbc);
	r->dbc = db_conn_new(r->uri, &e);
	if (r->dbc == NULL) {
		log_warn("outbox relay %s: %s", r->schema, e.msg);
		return false;
	}
	key = xasprintf("cairn.outbox.%s", r->schema);
	params[0] = key;
	while (!atomic_load(&r->stop)) {
		if (db_query(r->dbc, "SELECT pg_try_advisory_lock(hashtext($1))", 1, params, &res,
		             &e) != STATUS_OK) {
			log_warn("outbox relay %s: lock: %s", r->schema, e.msg);
			break;
		}
		locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (locked)
			break;
		sleep_or_wake(r, r->o.retry_ms); /* another relay is active: stand by */
	}
	free(key);
	if (!locked)
		return false;
	listen = xasprintf("LISTEN %s", r->channel);
	if (db_exec(r->dbc, listen, 0, NULL, &e) != STATUS_OK) {
		log_warn("outbox relay %s: %s", r->schema, e.msg);
		locked = false;
	}
	free(listen);
	return locked;
}

/* Wait for a NOTIFY on our channel, a kick/stop, or poll_ms. */
static void wait_for_work(struct outbox_relay *r)
{
	PGconn *pg = db_conn_get_pg(r->dbc);
	struct pollfd p[2] = { { .fd = r->wake[0], .events = POLLIN },
		               { .fd = PQsocket(pg), .events = POLLIN } };
	PGnotify *nt;
	char junk[64];

	if (poll(p, 2, r->o.poll_ms) > 0 && (p[0].revents & POLLIN))
		while (read(r->wake[0], junk, sizeof(junk)) > 0)
			;
	PQconsumeInput(pg);
	while ((nt = PQnotifies(pg)) != NULL)
		PQfreemem(nt);
}

static void *relay_main(void *arg)
{
	struct outbox_relay *r = arg;
	bool connected = false;

	while (!atomic_load(&r->stop)) {
		struct err e;
		size_t sent = 0;
		enum status st;

		if (!connected) {
			connected = relay_connect(r);
			if (!connected) {
				sleep_or_wake(r, r->o.retry_ms);
				continue;
			}
		}
		do {
			st = outbox_publish_batch(r->dbc, r->schema, r->kp, r->o.batch_size, &sent,
			                          &e);
			atomic_fetch_add(&r->sent, sent);
		} while (st == STATUS_OK && sent == (size_t)r->o.batch_size &&
		         !atomic_load(&r->stop));
		if (st != STATUS_OK) {
			log_warn("outbox relay %s: %s", r->schema, e.msg);
			if (PQstatus(db_conn_get_pg(r->dbc)) != CONNECTION_OK)
				connected = false;
			sleep_or_wake(r, r->o.retry_ms);
			continue;
		}
		wait_for_work(r);
	}
	return NULL;
}

struct outbox_relay *outbox_relay_new(const char *uri, const char *schema,
                                      struct kafka_producer *kp, const struct outbox_relay_opts *o,
                                      struct err *e)
{
	struct outbox_relay *r;

	if (!db_ident_is_valid(schema)) {
		err_set(e, STATUS_INVALID, "bad outbox schema name");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->uri = xstrdup(uri);
	r->schema = xstrdup(schema);
	r->channel = xasprintf("cairn_outbox_%s", schema);
	r->kp = kp;
	r->o.batch_size = o != NULL && o->batch_size > 0 ? o->batch_size : 500;
	r->o.poll_ms = o != NULL && o->poll_ms > 0 ? o->poll_ms : 1000;
	r->o.retry_ms = o != NULL && o->retry_ms > 0 ? o->retry_ms : 1000;
	r->wake[0] = r->wake[1] = -1;
	if (pipe(r->wake) != 0) {
		err_set(e, STATUS_IO, "pipe: %s", strerror(errno));
		goto out_free;
	}
	fcntl(r->wake[0], F_SETFL, O_NONBLOCK);
	fcntl(r->wake[1], F_SETFL, O_NONBLOCK);
	/* Fail early on a bad URI; the thread opens its own connection, takes the lock and
	 * LISTENs (a standby relay may wait there for the lock). */
	r->dbc = db_conn_new(uri, e);
	if (r->dbc == NULL)
		goto out_free;
	db_conn_free(r->dbc);
	r->dbc = NULL;
	if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
		err_set(e, STATUS_INTERNAL, "pthread_create failed");
		goto out_free;
	}
	r->started = true;
	return r;

out_free:
	outbox_relay_free(r);
	return NULL;
}

uint64_t outbox_relay_sent_count(const struct outbox_relay *r)
{
	return atomic_load(&r->sent);
}

void outbox_relay_kick(struct outbox_relay *r)
{
	if (r->wake[1] >= 0)
		(void)!write(r->wake[1], "k", 1);
}

void outbox_relay_stop(struct outbox_relay *r)
{
	if (r == NULL || !r->started)
		return;
	atomic_store(&r->stop, true);
	outbox_relay_kick(r);
	pthread_join(r->thread, NULL);
	r->started = false;
}

void outbox_relay_free(struct outbox_relay *r)
{
	if (r == NULL)
		return;
	outbox_relay_stop(r);
	db_conn_free(r->dbc);
	if (r->wake[0] >= 0)
		close(r->wake[0]);
	if (r->wake[1] >= 0)
		close(r->wake[1]);
	free(r->uri);
	free(r->schema);
	free(r->channel);
	free(r);
}
