/* authn_listen.c - the identity listener: a group-less Kafka consumer of cairn.identity that
 * replays the last max_token_ttl + 60 s and then follows the topic, feeding the verifier. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "common/authn.h"
#include "common/kafka.h"
#include "common/xalloc.h"

#define REPLAY_EXTRA_S 60

struct authn_listener {
	struct authn_verifier *v;
	rd_kafka_t *rk;
	pthread_t thr;
	atomic_bool stop;
	int replay_s;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Assign every partition of the topic at the offsets of (now - replay). @returns true once
 * assigned. */
static bool assign_all(struct authn_listener *l)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt;
	rd_kafka_topic_partition_list_t *parts = NULL;
	int n = 0;
	bool ok = false;
	int64_t since = now_ms() - (int64_t)l->replay_s * 1000;

	rkt = rd_kafka_topic_new(l->rk, AUTHN_TOPIC, NULL);
	if (!rkt)
		return false;
	if (rd_kafka_metadata(l->rk, 0, rkt, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		goto out;
	if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
		goto out;
	n = md->topics[0].partition_cnt;
	parts = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(parts, AUTHN_TOPIC,
		                                  md->topics[0].partitions[i].id)
		        ->offset = since;
	if (rd_kafka_offsets_for_times(l->rk, parts, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		goto out;
	for (int i = 0; i < parts->cnt; i++)
		if (parts->elems[i].offset < 0) /* nothing newer than since */
			parts->elems[i].offset = RD_KAFKA_OFFSET_END;
	authn_verifier_set_partitions(l->v, n);
	ok = rd_kafka_assign(l->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR;
out:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return ok;
}

static void handle(struct authn_listener *l, rd_kafka_message_t *m)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *val = NULL;
	size_t vlen = 0;
	char type[128];
	struct err e;

	if (m->err)
		return;
	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (rd_kafka_header_get_last(hdrs, "ce_type", &val, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    vlen >= sizeof(type))
		return;
	memcpy(type, val, vlen);
	type[vlen] = '\0';
	/* A malformed identity event cannot be repaired here; it is skipped (auth's own
	 * producer tests guard the format). */
	if (authn_apply_event(l->v, type, m->payload, m->len, m->partition, (int64_t)time(NULL),
	                      &e) != STATUS_OK)
		e.code = STATUS_OK;
}

static void *run(void *arg)
{
	struct authn_listener *l = arg;
	bool assigned = false;

	while (!atomic_load(&l->stop)) {
		rd_kafka_message_t *m;

		if (!assigned) {
			assigned = assign_all(l);
			if (!assigned) {
				usleep(200 * 1000);
				continue;
			}
		}
		m = rd_kafka_consumer_poll(l->rk, 100);
		if (!m)
			continue;
		handle(l, m);
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

struct authn_listener *authn_listener_start(struct authn_verifier *v, const char *bootstrap,
                                            const char *const *kafka_conf, struct err *e)
{
	char errstr[512];
	char group[96];
	rd_kafka_conf_t *conf;
	struct authn_listener *l;
	struct timespec ts;

	if (!bootstrap || !*bootstrap) {
		err_set(e, STATUS_INVALID, "authn listener: no bootstrap servers");
		return NULL;
	}
	conf = rd_kafka_conf_new();
	/* KAFKA_* of the environment first (security settings etc.), ours on top. */
	if (kafka_conf_apply_env(conf, NULL, e) != STATUS_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	/* A unique group that never commits: every process reads the whole recent window. */
	snprintf(group, sizeof(group), "cairn-authn-%ld-%ld", (long)getpid(), (long)ts.tv_nsec);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", errstr, sizeof(errstr)))
		goto bad_conf;
	for (const char *const *kv = kafka_conf; kv && kv[0] && kv[1]; kv += 2) {
		/* Group settings of the caller do not apply to this group-less reader. */
		if (strcmp(kv[0], "group.id") == 0 || strncmp(kv[0], "enable.auto", 11) == 0)
			continue;
		if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof(errstr)))
			goto bad_conf;
	}
	l = xcalloc(1, sizeof(*l));
	l->v = v;
	l->replay_s = 1200 + REPLAY_EXTRA_S;
	l->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!l->rk) {
		free(l);
		goto bad_conf;
	}
	rd_kafka_poll_set_consumer(l->rk);
	atomic_init(&l->stop, false);
	if (pthread_create(&l->thr, NULL, run, l) != 0) {
		rd_kafka_destroy(l->rk);
		free(l);
		err_set(e, STATUS_INTERNAL, "authn listener: pthread_create failed");
		return NULL;
	}
	return l;
bad_conf:
	rd_kafka_conf_destroy(conf);
	err_set(e, STATUS_INVALID, "authn listener: %s", errstr);
	return NULL;
}

void authn_listener_stop(struct authn_listener *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, true);
	pthread_join(l->thr, NULL);
	rd_kafka_consumer_close(l->rk);
	rd_kafka_destroy(l->rk);
	free(l);
}
