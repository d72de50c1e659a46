/* kafka.h: environment pass-through, the idempotent producer and topic creation. */
#include "common/kafka.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/xalloc.h"

#include "kafka_private.h"

extern char **environ;

enum { DR_PENDING = 0, DR_DELIVERED = 1, DR_FAILED = 2 };

struct kafka_producer {
	rd_kafka_t *rk;
	_Atomic uint64_t failed; /* delivery failures since the last flush */
};

bool kafka_env_to_prop(const char *name, char *out, size_t cap)
{
	static const char prefix[] = "KAFKA_";
	size_t plen = sizeof(prefix) - 1, n, len;

	if (strncmp(name, prefix, plen) != 0)
		return false;
	n = strcspn(name, "=");
	len = n - plen;
	if (len == 0 || len + 1 > cap)
		return false;
	/* JVM/Kafka-script variables that are not client properties. */
	if ((len >= 5 && strncmp(name + n - 5, "_OPTS", 5) == 0) ||
	    (len == 4 && strncmp(name + plen, "HOME", 4) == 0))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[plen + i];

		if (c == '_')
			c = '.';
		else if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		out[i] = c;
	}
	out[len] = '\0';
	return true;
}

enum status kafka_conf_apply_env(rd_kafka_conf_t *conf, const char *const *envp, struct err *e)
{
	const char *const *env = envp != NULL ? envp : (const char *const *)environ;
	char prop[256], errstr[512];

	for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
		const char *eq = strchr(env[i], '=');

		if (eq == NULL || !kafka_env_to_prop(env[i], prop, sizeof(prop)))
			continue;
		if (rd_kafka_conf_set(conf, prop, eq + 1, errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK)
			return err_set(e, STATUS_INVALID, "%.*s: %s", (int)(eq - env[i]), env[i],
			               errstr);
	}
	return STATUS_OK;
}

enum status kafka_conf_apply_props(rd_kafka_conf_t *conf, const char *const *props, struct err *e)
{
	char errstr[512];

	for (size_t i = 0; props != NULL && props[i] != NULL; i += 2) {
		if (props[i + 1] == NULL)
			return err_set(e, STATUS_INVALID, "property %s has no value", props[i]);
		if (rd_kafka_conf_set(conf, props[i], props[i + 1], errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK)
			return err_set(e, STATUS_INVALID, "kafka property %s: %s", props[i],
			               errstr);
	}
	return STATUS_OK;
}

/* librdkafka logs syslog levels from its own threads; log_write is thread-safe. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum log_level l = level <= 3   ? LOGL_ERROR
	                   : level == 4 ? LOGL_WARN
	                   : level <= 6 ? LOGL_INFO
	                                : LOGL_DEBUG;

	log_write(l, NULL, "rdkafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;

	log_write(fatal ? LOGL_ERROR : LOGL_WARN, NULL, "rdkafka %s error %s: %s",
	          rd_kafka_name(rk), rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_producer *kp = opaque;
	struct kafka_delivery *dr = m->_private;

	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		atomic_fetch_add(&kp->failed, 1);
	if (dr == NULL)
		return;
	dr->err = m->err;
	dr->partition = m->partition;
	dr->offset = m->offset;
	atomic_store(&dr->state, m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? DR_DELIVERED : DR_FAILED);
}

rd_kafka_conf_t *kafka_conf_base(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	return conf;
}

struct kafka_producer *kafka_producer_new(const char *const *props, struct err *e)
{
	static const char *const defaults[] = { "linger.ms", "5", NULL };
	static const char *const fixed[] = { "enable.idempotence", "true", "acks", "all", NULL };
	struct kafka_producer *kp;
	rd_kafka_conf_t *conf;
	char errstr[512];

	conf = kafka_conf_base();
	if (kafka_conf_apply_props(conf, defaults, e) != STATUS_OK ||
	    kafka_conf_apply_env(conf, NULL, e) != STATUS_OK ||
	    kafka_conf_apply_props(conf, props, e) != STATUS_OK ||
	    kafka_conf_apply_props(conf, fixed, e) != STATUS_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	kp = xcalloc(1, sizeof(*kp));
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_opaque(conf, kp);
	kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (kp->rk == NULL) {
		rd_kafka_conf_destroy(conf); /* only consumed on success */
		free(kp);
		err_set(e, STATUS_KAFKA, "cannot create producer: %s", errstr);
		return NULL;
	}
	return kp;
}

void kafka_producer_free(struct kafka_producer *kp)
{
	if (kp == NULL)
		return;
	rd_kafka_flush(kp->rk, 10000);
	rd_kafka_destroy(kp->rk);
	free(kp);
}

rd_kafka_t *kafka_producer_get_handle(struct kafka_producer *kp)
{
	return kp->rk;
}

enum status kafka_producer_send_raw(struct kafka_producer *kp, const char *topic, const void *key,
                                    size_t keylen, const void *value, size_t len,
                                    rd_kafka_headers_t *hdrs, struct kafka_delivery *dr,
                                    struct err *e)
{
	rd_kafka_resp_err_t kerr;

	if (dr != NULL) {
		atomic_store(&dr->state, DR_PENDING);
		dr->err = RD_KAFKA_RESP_ERR_NO_ERROR;
		dr->partition = -1;
		dr->offset = -1;
	}
	/* RD_KAFKA_V_KEY/VALUE want `void *` (-Wwrite-strings); F_COPY means no write. */
	for (int tries = 0;; tries++) {
		kerr = rd_kafka_producev(
		        kp->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		        RD_KAFKA_V_KEY((void *)key, key ? keylen : 0),
		        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_HEADERS(hdrs),
		        RD_KAFKA_V_OPAQUE(dr), RD_KAFKA_V_END);
		if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 100)
			break;
		rd_kafka_poll(kp->rk, 100); /* serve reports to make room */
	}
	if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (hdrs != NULL)
			rd_kafka_headers_destroy(hdrs); /* producev takes them only on success */
		if (kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return err_set_retriable(e, STATUS_KAFKA, "produce to %s: %s", topic,
			                         rd_kafka_err2str(kerr));
		return err_set(e, STATUS_KAFKA, "produce to %s: %s", topic, rd_kafka_err2str(kerr));
	}
	rd_kafka_poll(kp->rk, 0);
	return STATUS_OK;
}

enum status kafka_producer_send(struct kafka_producer *kp, const char *topic, const char *key,
                                const struct event *ev, struct kafka_delivery *dr, struct err *e)
{
	rd_kafka_headers_t *hdrs;
	char *value;
	size_t len;
	enum status st;

	st = event_encode(ev, &hdrs, &value, &len, e);
	if (st != STATUS_OK)
		return st;
	st = kafka_producer_send_raw(kp, topic, key, key ? strlen(key) : 0, value, len, hdrs, dr,
	                             e);
	free(value);
	return st;
}

bool kafka_delivery_is_done(const struct kafka_delivery *dr)
{
	return atomic_load(&dr->state) != DR_PENDING;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

enum status kafka_delivery_wait(struct kafka_producer *kp, struct kafka_delivery *dr,
                                int timeout_ms, struct err *e)
{
	long deadline = now_ms() + timeout_ms;

	while (!kafka_delivery_is_done(dr)) {
		long left = deadline - now_ms();

		if (left <= 0)
			return err_set_retriable(e, STATUS_TIMEOUT,
			                         "no delivery report within %d ms", timeout_ms);
		rd_kafka_poll(kp->rk, left < 50 ? (int)left : 50);
	}
	if (atomic_load(&dr->state) == DR_FAILED)
		return err_set(e, STATUS_KAFKA, "delivery failed: %s", rd_kafka_err2str(dr->err));
	return STATUS_OK;
}

enum status kafka_producer_send_sync(struct kafka_producer *kp, const char *topic, const char *key,
                                     const struct event *ev, int timeout_ms, struct err *e)
{
	struct kafka_delivery dr;
	enum status st;

	st = kafka_producer_send(kp, topic, key, ev, &dr, e);
	if (st != STATUS_OK)
		return st;
	st = kafka_delivery_wait(kp, &dr, timeout_ms, e);
	if (st == STATUS_TIMEOUT) {
		/* dr lives on this stack: the report must not arrive after we return. */
		rd_kafka_resp_err_t kerr = rd_kafka_flush(kp->rk, 60000);

		if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR || !kafka_delivery_is_done(&dr))
			rd_kafka_purge(kp->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(kp->rk, 0);
		while (!kafka_delivery_is_done(&dr))
			rd_kafka_poll(kp->rk, 10);
		st = atomic_load(&dr.state) == DR_DELIVERED
		             ? STATUS_OK
		             : err_set_retriable(e, STATUS_TIMEOUT,
		                                 "no delivery report within %d ms", timeout_ms);
	}
	return st;
}

enum status kafka_producer_flush(struct kafka_producer *kp, int timeout_ms, struct err *e)
{
	rd_kafka_resp_err_t kerr = rd_kafka_flush(kp->rk, timeout_ms);
	uint64_t failed;

	if (kerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
		return err_set_retriable(e, STATUS_TIMEOUT,
		                         "%d messages still in flight after %d ms",
		                         rd_kafka_outq_len(kp->rk), timeout_ms);
	failed = atomic_exchange(&kp->failed, 0);
	if (failed > 0)
		return err_set(e, STATUS_KAFKA, "%llu deliveries failed",
		               (unsigned long long)failed);
	return STATUS_OK;
}

enum status kafka_topic_create(struct kafka_producer *kp, const char *topic, int partitions,
                               int timeout_ms, struct err *e)
{
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *rev;
	const rd_kafka_CreateTopics_result_t *res;
	const rd_kafka_topic_result_t **tres;
	size_t n = 0;
	char errstr[512];
	enum status st = STATUS_OK;

	nt = rd_kafka_NewTopic_new(topic, partitions, 1, errstr, sizeof(errstr));
	if (nt == NULL)
		return err_set(e, STATUS_INVALID, "topic %s: %s", topic, errstr);
	q = rd_kafka_queue_new(kp->rk);
	rd_kafka_CreateTopics(kp->rk, &nt, 1, NULL, q);
	rev = rd_kafka_queue_poll(q, timeout_ms);
	if (rev == NULL) {
		st = err_set_retriable(e, STATUS_TIMEOUT, "create topic %s: no answer", topic);
		goto out;
	}
	if (rd_kafka_event_error(rev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		st = err_set(e, STATUS_KAFKA, "create topic %s: %s", topic,
		             rd_kafka_event_error_string(rev));
		goto out_event;
	}
	res = rd_kafka_event_CreateTopics_result(rev);
	tres = res != NULL ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(tres[i]);

		if (terr != RD_KAFKA_RESP_ERR_NO_ERROR &&
		    terr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			st = err_set(e, STATUS_KAFKA, "create topic %s: %s", topic,
			             rd_kafka_topic_result_error_string(tres[i]));
	}
out_event:
	rd_kafka_event_destroy(rev);
out:
	rd_kafka_queue_destroy(q);
	rd_kafka_NewTopic_destroy(nt);
	return st;
}
