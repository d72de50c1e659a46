/* spine_applier: plays another service for the exactly-once test. It owns SCHEMA (migrated
 * from schemas/sql/spine_test), joins consumer group GROUP on TOPIC and applies each event:
 * one row into SCHEMA.applied, counter + 1, and a per-key order check.
 *
 *   spine_applier run    MIGRATIONS_DIR TOPIC GROUP SCHEMA EXPECT [TIMEOUT_S]
 *       consume until SCHEMA.applied has EXPECT rows (exit 0) or TIMEOUT_S passes (exit 1)
 *   spine_applier count  SCHEMA          print the number of applied rows (0 if none yet)
 *   spine_applier verify SCHEMA GROUP EXPECT   exit 0 iff exactly-once holds
 *   spine_applier drop   SCHEMA...       drop the schemas
 *
 * Needs CAIRN_DATABASE_URL (and KAFKA_BOOTSTRAP_SERVERS for run). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/db.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/xalloc.h"

#include "spine_util.h"

struct applier {
	char *sql_prev;
	char *sql_insert;
	char *sql_violation;
	char *sql_count;
};

static enum status apply(struct db_conn *dbc, const struct event *ev, void *user, struct err *e)
{
	struct applier *a = user;
	json_t *k = json_object_get(ev->data, "k"), *n = json_object_get(ev->data, "n");
	const char *params[4];
	char nbuf[24];
	PGresult *res;
	enum status st;

	if (!json_is_string(k) || !json_is_integer(n))
		return err_set(e, STATUS_INVALID, "data needs k and n");
	snprintf(nbuf, sizeof(nbuf), "%lld", (long long)json_integer_value(n));
	params[0] = ev->id;
	params[1] = json_string_value(k);
	params[2] = nbuf;
	st = db_query(dbc, a->sql_prev, 1, &params[1], &res, e);
	if (st != STATUS_OK)
		return st;
	if (!PQgetisnull(res, 0, 0) &&
	    strtoll(PQgetvalue(res, 0, 0), NULL, 10) >= (long long)json_integer_value(n)) {
		params[3] = PQgetvalue(res, 0, 0);
		st = db_exec(dbc, a->sql_violation, 4, params, e);
	}
	PQclear(res);
	if (st != STATUS_OK)
		return st;
	st = db_exec(dbc, a->sql_insert, 3, params, e);
	if (st != STATUS_OK)
		return st;
	return db_exec(dbc, a->sql_count, 0, NULL, e);
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

static long count_applied(struct db_conn *dbc, const char *schema)
{
	char *sql = xasprintf("SELECT count(*) FROM %s.applied", schema);
	struct err e;
	long v = 0;

	if (spine_query_long(dbc, sql, &v, &e) != STATUS_OK)
		v = 0; /* not migrated yet */
	free(sql);
	return v;
}

static int cmd_run(int argc, char **argv)
{
	const char *uri, *dir, *topic, *group, *schema;
	const char *topics[2];
	struct kafka_consumer_opts o = { 0 };
	struct kafka_consumer_stats stats;
	struct kafka_producer *dlq;
	struct kafka_consumer *c;
	struct db_conn *dbc, *mon;
	struct applier a;
	long expect, timeout_s, deadline, last_check = 0, have = 0, t0;
	struct err e;
	int rc = 1;

	if (argc < 7)
		spine_die("usage: spine_applier run DIR TOPIC GROUP SCHEMA EXPECT [TIMEOUT_S]");
	uri = spine_require_env("CAIRN_DATABASE_URL");
	spine_require_env("KAFKA_BOOTSTRAP_SERVERS");
	dir = argv[2];
	topic = argv[3];
	group = argv[4];
	schema = argv[5];
	expect = strtol(argv[6], NULL, 10);
	timeout_s = argc > 7 ? strtol(argv[7], NULL, 10) : 120;
	log_init("spine-applier", LOGL_WARN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);

	dbc = db_conn_new(uri, &e);
	mon = dbc != NULL ? db_conn_new(uri, &e) : NULL;
	if (mon == NULL)
		spine_die("%s", e.msg);
	if (db_migrate(dbc, schema, dir, NULL, &e) != STATUS_OK)
		spine_die("migrate: %s", e.msg);
	a.sql_prev = xasprintf("SELECT max(n) FROM %s.applied WHERE k = $1", schema);
	a.sql_insert =
	        xasprintf("INSERT INTO %s.applied(event_id, k, n) VALUES ($1, $2, $3)", schema);
	a.sql_violation = xasprintf(
	        "INSERT INTO %s.order_violations(event_id, k, n, prev) VALUES ($1, $2, $3, $4)",
	        schema);
	a.sql_count = xasprintf("UPDATE %s.counter SET c = c + 1 WHERE id = 1", schema);

	dlq = kafka_producer_new(NULL, &e);
	if (dlq == NULL)
		spine_die("%s", e.msg);
	/* Whoever starts first creates the topic (idempotent): subscribing to a missing topic
	 * would only notice it at the next periodic metadata refresh. */
	if (kafka_topic_create(dlq, topic, 3, 15000, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	topics[0] = topic;
	topics[1] = NULL;
	o.group_id = group;
	o.topics = topics;
	o.schema = schema;
	o.handler = apply;
	o.user = &a;
	c = kafka_consumer_new(&o, dbc, dlq, &e);
	if (c == NULL)
		spine_die("%s", e.msg);

	t0 = spine_now_ms();
	deadline = t0 + timeout_s * 1000;
	while (!stop && spine_now_ms() < deadline) {
		if (kafka_consumer_poll_once(c, 100, NULL, &e) != STATUS_OK)
			fprintf(stderr, "applier: %s\n", e.msg);
		if (spine_now_ms() - last_check >= 200) {
			last_check = spine_now_ms();
			have = count_applied(mon, schema);
			if (have >= expect) {
				rc = 0;
				break;
			}
		}
	}
	kafka_consumer_get_stats(c, &stats);
	printf("applier[%d]: applied=%llu duplicates=%llu retries=%llu dead=%llu table=%ld "
	       "in %ld ms\n",
	       (int)getpid(), (unsigned long long)stats.applied,
	       (unsigned long long)stats.duplicates, (unsigned long long)stats.retries,
	       (unsigned long long)stats.dead, have, spine_now_ms() - t0);
	kafka_consumer_free(c);
	kafka_producer_free(dlq);
	db_conn_free(dbc);
	db_conn_free(mon);
	free(a.sql_prev);
	free(a.sql_insert);
	free(a.sql_violation);
	free(a.sql_count);
	return rc;
}

/* Runs sql (takes ownership) and returns its single integer. */
static long q(struct db_conn *dbc, char *sql)
{
	struct err e;
	long v;

	if (spine_query_long(dbc, sql, &v, &e) != STATUS_OK)
		spine_die("%s: %s", sql, e.msg);
	free(sql);
	return v;
}

static int cmd_verify(struct db_conn *dbc, const char *s, const char *group, long expect)
{
	long rows = q(dbc, xasprintf("SELECT count(*) FROM %s.applied", s));
	long distinct = q(dbc, xasprintf("SELECT count(DISTINCT event_id) FROM %s.applied", s));
	long ns = q(dbc, xasprintf("SELECT count(DISTINCT n) FROM %s.applied", s));
	long ded = q(dbc, xasprintf("SELECT count(*) FROM %s.applied_events "
	                            "WHERE consumer_group = '%s'",
	                            s, group));
	long counter = q(dbc, xasprintf("SELECT c FROM %s.counter WHERE id = 1", s));
	long viol = q(dbc, xasprintf("SELECT count(*) FROM %s.order_violations", s));

	spine_check(rows == expect, "side-effect table has exactly %ld rows (%ld)", expect, rows);
	spine_check(distinct == rows, "no duplicate event ids in the side-effect table (%ld)",
	            distinct);
	spine_check(ns == expect, "every n from 0..%ld applied (%ld distinct)", expect - 1, ns);
	spine_check(ded == expect, "applied_events has %ld rows for the group (%ld)", expect, ded);
	spine_check(counter == expect, "counter = %ld (%ld)", expect, counter);
	spine_check(viol == 0, "per-key order kept (%ld violations)", viol);
	return 0;
}

int main(int argc, char **argv)
{
	struct db_conn *dbc;
	struct err e;
	int rc = 0;

	if (argc < 2)
		spine_die("usage: spine_applier run|count|verify|drop ...");
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc, argv);
	dbc = db_conn_new(spine_require_env("CAIRN_DATABASE_URL"), &e);
	if (dbc == NULL)
		spine_die("%s", e.msg);
	if (strcmp(argv[1], "count") == 0 && argc == 3) {
		printf("%ld\n", count_applied(dbc, argv[2]));
	} else if (strcmp(argv[1], "verify") == 0 && argc == 5) {
		rc = cmd_verify(dbc, argv[2], argv[3], strtol(argv[4], NULL, 10));
	} else if (strcmp(argv[1], "drop") == 0) {
		for (int i = 2; i < argc; i++) {
			char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", argv[i]);

			if (!db_ident_is_valid(argv[i]) ||
			    db_exec(dbc, sql, 0, NULL, &e) != STATUS_OK)
				fprintf(stderr, "warning: drop %s failed\n", argv[i]);
			free(sql);
		}
	} else {
		spine_die("bad arguments");
	}
	db_conn_free(dbc);
	return rc;
}
