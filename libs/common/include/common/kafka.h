/* kafka.h - librdkafka wrappers: KAFKA_* environment pass-through, an idempotent producer
 * with checked delivery reports, and a group consumer that applies each CloudEvent exactly
 * once in a PostgreSQL transaction and parks what it cannot apply on cairn.dlq.
 * See docs/kafka.md.
 */
#ifndef COMMON_KAFKA_H
#define COMMON_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "common/db.h"
#include "common/err.h"
#include "common/event.h"

#define KAFKA_DLQ_TOPIC "cairn.dlq"

/* ---- environment pass-through ---------------------------------------------------- */

/** @brief Turn an environment variable name into a librdkafka property:
 *  KAFKA_BOOTSTRAP_SERVERS -> bootstrap.servers (strip KAFKA_, lower-case, '_' -> '.').
 *  @returns false when name is not a KAFKA_ variable to pass through (no prefix, empty
 *  rest, JVM variables KAFKA_*_OPTS and KAFKA_HOME) or out (cap bytes) is too small. */
bool kafka_env_to_prop(const char *name, char *out, size_t cap);

/** @brief Apply every passed-through KAFKA_* variable of envp ("NAME=value" strings,
 *  NULL-terminated; NULL means the process environment) to conf with rd_kafka_conf_set.
 *  @returns STATUS_OK, or STATUS_INVALID naming the variable that librdkafka rejected. */
MUST_CHECK enum status kafka_conf_apply_env(rd_kafka_conf_t *conf, const char *const *envp,
                                            struct err *e);

/** @brief Apply "key", "value" pairs (NULL-terminated array; NULL means none) to conf.
 *  @returns STATUS_OK, or STATUS_INVALID naming the rejected property. */
MUST_CHECK enum status kafka_conf_apply_props(rd_kafka_conf_t *conf, const char *const *props,
                                              struct err *e);

/* ---- producer -------------------------------------------------------------------- */

struct kafka_producer;

/* Delivery state of one message, filled by the delivery-report callback. Caller-allocated;
 * must stay alive until kafka_delivery_is_done() or the producer is flushed/freed. */
struct kafka_delivery {
	_Atomic int state; /* 0 pending, 1 delivered, 2 failed */
	rd_kafka_resp_err_t err;
	int32_t partition;
	int64_t offset;
};

/** @brief Create an idempotent producer. Configuration, in order: our defaults (linger.ms=5),
 *  then KAFKA_* from the environment, then props ("key","value" pairs, NULL-terminated; may
 *  be NULL), then the fixed enable.idempotence=true and acks=all. librdkafka's log goes to
 *  common/log.h.
 *  @returns a new producer (kafka_producer_free) or NULL with e filled. Thread-safe: the
 *  send functions may be called from several threads. */
struct kafka_producer *kafka_producer_new(const char *const *props, struct err *e);

/** @brief Flush (up to 10 s) and free; accepts NULL. */
void kafka_producer_free(struct kafka_producer *kp);

/** @brief The librdkafka handle. @returns borrowed; valid until kafka_producer_free. */
rd_kafka_t *kafka_producer_get_handle(struct kafka_producer *kp);

/** @brief Produce raw bytes asynchronously (RD_KAFKA_MSG_F_COPY: key and value are copied).
 *  @param hdrs takes ownership (also on failure); may be NULL.
 *  @param dr   may be NULL; else initialised here and filled when the report arrives.
 *  @returns STATUS_OK when enqueued, STATUS_KAFKA (retriable when the queue is full). */
MUST_CHECK enum status kafka_producer_send_raw(struct kafka_producer *kp, const char *topic,
                                               const void *key, size_t keylen, const void *value,
                                               size_t len, rd_kafka_headers_t *hdrs,
                                               struct kafka_delivery *dr, struct err *e);

/** @brief Encode ev (event_encode) and produce it asynchronously; key = aggregate id (may
 *  be NULL). ev is borrowed for the call. @returns as kafka_producer_send_raw. */
MUST_CHECK enum status kafka_producer_send(struct kafka_producer *kp, const char *topic,
                                           const char *key, const struct event *ev,
                                           struct kafka_delivery *dr, struct err *e);

/** @brief Produce ev and wait for its delivery report (up to timeout_ms).
 *  @returns STATUS_OK once the broker acknowledged it (acks=all), STATUS_KAFKA with the
 *  broker/client error, or STATUS_TIMEOUT (retriable). */
MUST_CHECK enum status kafka_producer_send_sync(struct kafka_producer *kp, const char *topic,
                                                const char *key, const struct event *ev,
                                                int timeout_ms, struct err *e);

/** @brief Serve delivery reports until dr is done or timeout_ms passes.
 *  @returns STATUS_OK if delivered, STATUS_KAFKA if failed, STATUS_TIMEOUT if pending. */
MUST_CHECK enum status kafka_delivery_wait(struct kafka_producer *kp, struct kafka_delivery *dr,
                                           int timeout_ms, struct err *e);

/** @brief True once dr's delivery report arrived (delivered or failed). */
bool kafka_delivery_is_done(const struct kafka_delivery *dr);

/** @brief Wait until every queued message has its delivery report (up to timeout_ms).
 *  @returns STATUS_OK if all were delivered; STATUS_KAFKA if any delivery failed since the
 *  previous flush; STATUS_TIMEOUT if messages are still in flight. */
MUST_CHECK enum status kafka_producer_flush(struct kafka_producer *kp, int timeout_ms,
                                            struct err *e);

/* ---- topics (admin) ---------------------------------------------------------------- */

/** @brief Create a topic with the admin API (rd_kafka_CreateTopics) on kp's cluster; an
 *  existing topic is not an error. @returns STATUS_OK or STATUS_KAFKA. */
MUST_CHECK enum status kafka_topic_create(struct kafka_producer *kp, const char *topic,
                                          int partitions, int timeout_ms, struct err *e);

/* ---- consumer -------------------------------------------------------------------- */

/* Applies one event inside the consumer's open transaction on dbc. Return STATUS_OK to
 * commit; an error with e->retriable is retried, anything else goes to the DLQ. */
typedef enum status (*kafka_handler_fn)(struct db_conn *dbc, const struct event *ev, void *user,
                                        struct err *e);

struct kafka_consumer_opts {
	const char *group_id;      /* required */
	const char *const *topics; /* required, NULL-terminated */
	const char *schema;        /* required: where <schema>.applied_events lives */
	kafka_handler_fn handler;  /* required */
	void *user;                /* passed to handler */
	int max_attempts;          /* per event, default 5 */
	int backoff_ms;            /* first retry delay, doubles up to 5 s; default 100 */
	const char *dlq_topic;     /* default KAFKA_DLQ_TOPIC */
	const char *const *props;  /* extra "key","value" pairs, applied after the env */
};

struct kafka_consumer;

/** @brief Create a group consumer and subscribe. Config: enable.auto.commit=true,
 *  enable.auto.offset.store=false (fixed), session.timeout.ms=6000,
 *  heartbeat.interval.ms=500, auto.offset.reset=earliest (defaults), then KAFKA_* env, then
 *  o->props. Strings in o are copied.
 *  @param dbc borrowed: the consumer's own connection (not shared with other threads).
 *  @param dlq borrowed producer for dead letters; must outlive the consumer.
 *  @returns a new consumer or NULL with e filled. One thread at a time. */
struct kafka_consumer *kafka_consumer_new(const struct kafka_consumer_opts *o, struct db_conn *dbc,
                                          struct kafka_producer *dlq, struct err *e);

/** @brief Poll one message (up to timeout_ms) and apply it exactly once:
 *  BEGIN; INSERT INTO <schema>.applied_events ... ON CONFLICT DO NOTHING; if new, call the
 *  handler; COMMIT; then store the offset. Handler failures are retried (retriable ones, up
 *  to max_attempts, with backoff); then, or for non-retriable failures and undecodable
 *  messages, the message goes to the DLQ with headers dlq_reason, dlq_topic,
 *  dlq_partition, dlq_offset, dlq_consumer_group, and its offset is stored.
 *  If the database is unreachable (STATUS_UNAVAILABLE) or the DLQ produce fails, the
 *  offset is NOT stored and the partition is rewound to the message, so it is delivered
 *  again later; the error is returned (the caller logs it and keeps polling).
 *  @param processed receives true when a message was consumed (may be NULL).
 *  @returns STATUS_OK (also when no message arrived) or the infrastructure error. */
MUST_CHECK enum status kafka_consumer_poll_once(struct kafka_consumer *c, int timeout_ms,
                                                bool *processed, struct err *e);

/* Counters since creation. */
struct kafka_consumer_stats {
	uint64_t applied;    /* handler committed */
	uint64_t duplicates; /* skipped: event id already in applied_events */
	uint64_t retries;    /* handler attempts that failed and were retried */
	uint64_t dead;       /* sent to the DLQ */
};

/** @brief Copy the counters. Same thread as poll_once. */
void kafka_consumer_get_stats(const struct kafka_consumer *c, struct kafka_consumer_stats *out);

/** @brief The librdkafka handle. @returns borrowed; valid until kafka_consumer_free. */
rd_kafka_t *kafka_consumer_get_handle(struct kafka_consumer *c);

/** @brief Leave the group (rd_kafka_consumer_close: commits stored offsets). Idempotent. */
void kafka_consumer_close(struct kafka_consumer *c);

/** @brief Close if needed and free; accepts NULL. The borrowed dbc and producer are not
 *  touched. */
void kafka_consumer_free(struct kafka_consumer *c);

/** @brief Create <schema> and <schema>.applied_events if missing (idempotent, safe to
 *  run concurrently). Services may instead put KAFKA_APPLIED_EVENTS_DDL in a migration. */
MUST_CHECK enum status kafka_consumer_ensure_schema(struct db_conn *dbc, const char *schema,
                                                    struct err *e);

/* The applied_events DDL for a migration file (schema-relative: run with search_path set
 * to the service schema, as db_migrate does). */
#define KAFKA_APPLIED_EVENTS_DDL                                                                   \
	"CREATE TABLE IF NOT EXISTS applied_events (\n"                                            \
	"  consumer_group text NOT NULL,\n"                                                        \
	"  event_id uuid NOT NULL,\n"                                                              \
	"  applied_at timestamptz NOT NULL DEFAULT now(),\n"                                       \
	"  PRIMARY KEY (consumer_group, event_id));\n"

#endif
