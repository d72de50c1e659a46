/* spine_writer: plays one service for the exactly-once test. It owns <schema>.outbox,
 * writes N events through the outbox in transactions (K per transaction, keys vm-0..vm-15,
 * data {"k": key, "n": i}), and runs the outbox relay until every row is sent.
 *
 *   spine_writer TOPIC SCHEMA N [PER_TX]
 *
 * Needs CAIRN_DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS. Exit 0 when all N are sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/event.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/outbox.h"
#include "common/xalloc.h"

#include "spine_util.h"

#define NKEYS 16

int main(int argc, char **argv)
{
	const char *uri, *topic, *schema;
	struct kafka_producer *kp;
	struct outbox_relay *relay;
	struct db_conn *dbc;
	long n, per_tx, t0, t_written, unsent = -1;
	char *sql;
	struct err e;

	if (argc < 4)
		spine_die("usage: spine_writer TOPIC SCHEMA N [PER_TX]");
	uri = spine_require_env("CAIRN_DATABASE_URL");
	spine_require_env("KAFKA_BOOTSTRAP_SERVERS");
	topic = argv[1];
	schema = argv[2];
	n = strtol(argv[3], NULL, 10);
	per_tx = argc > 4 ? strtol(argv[4], NULL, 10) : 10;
	log_init("spine-writer", LOGL_WARN);

	dbc = db_conn_new(uri, &e);
	if (dbc == NULL)
		spine_die("%s", e.msg);
	if (outbox_ensure_schema(dbc, schema, &e) != STATUS_OK)
		spine_die("outbox schema: %s", e.msg);
	kp = kafka_producer_new(NULL, &e);
	if (kp == NULL)
		spine_die("%s", e.msg);
	if (kafka_topic_create(kp, topic, 3, 15000, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	relay = outbox_relay_new(uri, schema, kp, NULL, &e);
	if (relay == NULL)
		spine_die("relay: %s", e.msg);

	t0 = spine_now_ms();
	for (long i = 0; i < n;) {
		enum status st = db_tx_begin(dbc, &e);

		for (long j = 0; st == STATUS_OK && j < per_tx && i + j < n; j++) {
			char key[16];
			struct event ev;

			snprintf(key, sizeof(key), "vm-%ld", (i + j) % NKEYS);
			event_init(&ev);
			st = event_make(&ev, "cairn.spine.test", "/cairn/spine-writer", key, "t-1",
			                json_pack("{s:s, s:I}", "k", key, "n", (json_int_t)i + j),
			                &e);
			if (st == STATUS_OK)
				st = outbox_add(dbc, schema, &ev, topic, key, &e);
			event_cleanup(&ev);
		}
		if (st == STATUS_OK)
			st = db_tx_commit(dbc, &e);
		else
			db_tx_rollback(dbc);
		if (st != STATUS_OK)
			spine_die("write at %ld: %s", i, e.msg);
		i += per_tx;
	}
	t_written = spine_now_ms();
	printf("writer: %ld events written in %ld ms\n", n, t_written - t0);
	fflush(stdout);

	sql = xasprintf("SELECT count(*) FROM %s.outbox WHERE sent_at IS NULL", schema);
	for (long deadline = spine_now_ms() + 120000; spine_now_ms() < deadline;) {
		if (spine_query_long(dbc, sql, &unsent, &e) != STATUS_OK)
			spine_die("%s", e.msg);
		if (unsent == 0)
			break;
		spine_sleep_ms(100);
	}
	free(sql);
	if (unsent != 0)
		spine_die("%ld outbox rows still unsent after 120 s", unsent);
	printf("writer: all %ld published in %ld ms (relay sent %llu)\n", n, spine_now_ms() - t0,
	       (unsigned long long)outbox_relay_sent_count(relay));
	outbox_relay_free(relay);
	if (kafka_producer_flush(kp, 10000, &e) != STATUS_OK)
		spine_die("flush: %s", e.msg);
	kafka_producer_free(kp);
	db_conn_free(dbc);
	return 0;
}
