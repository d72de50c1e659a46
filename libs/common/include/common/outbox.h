/* outbox.h - the transactional outbox: events written in the caller's PostgreSQL
 * transaction, published to Kafka in order by a relay thread woken by LISTEN/NOTIFY.
 * See docs/outbox.md.
 */
#ifndef COMMON_OUTBOX_H
#define COMMON_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "common/db.h"
#include "common/err.h"
#include "common/event.h"
#include "common/kafka.h"

/* The outbox DDL for a migration file (schema-relative: db_migrate sets search_path). */
#define OUTBOX_DDL                                                                                 \
	"CREATE TABLE IF NOT EXISTS outbox (\n"                                                    \
	"  seq bigserial PRIMARY KEY,\n"                                                           \
	"  id uuid NOT NULL,\n"                                                                    \
	"  topic text NOT NULL,\n"                                                                 \
	"  key text,\n"                                                                            \
	"  type text NOT NULL,\n"                                                                  \
	"  source text NOT NULL,\n"                                                                \
	"  subject text,\n"                                                                        \
	"  tenant_id text,\n"                                                                      \
	"  data jsonb,\n"                                                                          \
	"  headers jsonb,\n"                                                                       \
	"  created_at timestamptz NOT NULL DEFAULT now(),\n"                                       \
	"  sent_at timestamptz);\n"                                                                \
	"CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;\n"

/** @brief Create <schema> and <schema>.outbox if missing (idempotent, concurrency-safe).
 *  Services may instead put OUTBOX_DDL in one of their migrations. */
MUST_CHECK enum status outbox_ensure_schema(struct db_conn *dbc, const char *schema, struct err *e);

/** @brief Write ev as an outbox row inside the caller's OPEN transaction on dbc and
 *  NOTIFY cairn_outbox_<schema> (delivered at COMMIT). ev->time becomes created_at, which
 *  the relay publishes as ce_time. key is the aggregate id (may be NULL). All arguments are
 *  borrowed. @returns STATUS_OK, STATUS_INVALID (no open transaction, bad schema name,
 *  event without id/type/source) or a mapped database error. */
MUST_CHECK enum status outbox_add(struct db_conn *dbc, const char *schema, const struct event *ev,
                                  const char *topic, const char *key, struct err *e);

/** @brief Publish one batch: up to batch_size unsent rows in seq order, wait for every
 *  delivery report, then mark the longest delivered prefix sent (sent_at = now()). Rows
 *  after a failed delivery stay unsent and are published again (same event id) next time.
 *  The caller must be the only relay of schema (outbox_relay holds an advisory lock).
 *  @param sent receives how many rows were marked sent; may be NULL.
 *  @returns STATUS_OK (also when nothing was pending), a database error, or STATUS_KAFKA
 *  if a delivery failed. */
MUST_CHECK enum status outbox_publish_batch(struct db_conn *dbc, const char *schema,
                                            struct kafka_producer *kp, int batch_size, size_t *sent,
                                            struct err *e);

struct outbox_relay_opts {
	int batch_size; /* rows per batch, default 500 */
	int poll_ms;    /* fallback wake-up without NOTIFY, default 1000 */
	int retry_ms;   /* delay after an error, default 1000 */
};

struct outbox_relay;

/** @brief Start a relay thread for <schema>.outbox with its own connection to uri. It
 *  takes pg_try_advisory_lock(hashtext('cairn.outbox.'||schema)) (a second relay of the
 *  same schema stands by until the first one goes), LISTENs on cairn_outbox_<schema>, and
 *  publishes batches when notified or every poll_ms. Errors are logged and retried with a
 *  fresh connection. kp is borrowed and must outlive the relay. o may be NULL.
 *  @returns a new relay (outbox_relay_free) or NULL when the first connection fails. */
struct outbox_relay *outbox_relay_new(const char *uri, const char *schema,
                                      struct kafka_producer *kp, const struct outbox_relay_opts *o,
                                      struct err *e);

/** @brief Number of rows this relay has marked sent. Thread-safe. */
uint64_t outbox_relay_sent_count(const struct outbox_relay *r);

/** @brief Wake the relay now (e.g. in tests or after a burst); thread-safe. */
void outbox_relay_kick(struct outbox_relay *r);

/** @brief Stop the thread (finishing the batch in progress) and join it. Idempotent. */
void outbox_relay_stop(struct outbox_relay *r);

/** @brief Stop, join, close the connection and free; accepts NULL. */
void outbox_relay_free(struct outbox_relay *r);

#endif
