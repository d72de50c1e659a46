/* svc.h - the runtime every cairn service is built on, so that each service's main.c
 * only describes itself and calls svc_main().
 *
 * svc_main() does, in order: load and validate the configuration (the common settings
 * below plus the service's own table), log it with secrets redacted, connect to
 * PostgreSQL, create the schema's applied_events (with topics) and outbox (with outbox)
 * tables from KAFKA_APPLIED_EVENTS_DDL and OUTBOX_DDL, apply the service's migrations
 * (schemas/sql/<sql_dir>/, which may grant on those tables), create
 * the Kafka producer, start the outbox relay, create the HTTP server with /livez, /readyz (503
 * until PostgreSQL and Kafka answer) and /metrics, call the service's setup() to register routes
 * and start its own workers, start serving, and run the Kafka consumer loop (or idle) on
 * the main thread until SIGTERM/SIGINT. Shutdown runs in reverse: stop HTTP (drain),
 * teardown(), close the consumer (commits stored offsets), stop the relay, flush the
 * producer, close the database.
 *
 * Common settings (CAIRN_<KEY> or CAIRN_<SVC>_<KEY>, see docs/configuration.md):
 *   database_url (required), http_port (CAIRN_<SVC>_HTTP_PORT only), http_addr, http_threads,
 * http_max_body, log_level, sql_dir, consumer_group, ready_timeout_ms, shutdown_timeout_ms,
 * identity_url, authn_require_fresh. KAFKA_* variables go to librdkafka (KAFKA_BOOTSTRAP_SERVERS is
 * required).
 */
#ifndef COMMON_SVC_H
#define COMMON_SVC_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cfg.h"
#include "common/db.h"
#include "common/err.h"
#include "common/http.h"
#include "common/kafka.h"
#include "common/metrics.h"

struct svc;

/* The settings every service shares. Owned by the runtime; read-only for services. */
struct svc_cfg {
	char *database_url;
	long long http_port;
	char *http_addr;
	long long http_threads;
	long long http_max_body;
	char *log_level;
	char *sql_dir;
	char *consumer_group;
	long long ready_timeout_ms;
	long long shutdown_timeout_ms;
	char *identity_url;
	bool require_runtime_role;
	bool authn_require_fresh;
};

/* What a service is. Everything is borrowed and must outlive svc_main(). */
struct svc_def {
	const char *name;            /* "mover": log name, config prefix CAIRN_MOVER_* */
	const char *schema;          /* its PostgreSQL schema, e.g. "catalog" */
	const char *sql_dir;         /* migrations under <sql_dir setting>/<this>; NULL = name */
	long long default_http_port; /* 8101.. */
	bool outbox;                 /* run an outbox relay for <schema>.outbox */
	/* false (every service but auth): the runtime verifies bearer tokens on every route
	 * not flagged HTTP_ROUTE_PUBLIC (JWKS from identity_url, epochs from cairn.identity),
	 * checks the route's roles (AUTHN_ROLE_* << HTTP_ROUTE_USER_SHIFT in its flags; none = any
	 * role) and attaches the struct authn_principal (http_req_ctx). true: the service
	 * installs its own before hook (auth). */
	bool own_authn;
	/* The database role the service works as after its migrations (SET ROLE on its
	 * connections): not an owner, not superuser, no BYPASSRLS, so the row-level security
	 * of its tenant tables binds it. The schema's grant_runtime_role() function (from its
	 * migrations) is called first. NULL = work as the connecting role. */
	const char *runtime_role;
	const char *const *topics;      /* consumed topics (NULL-terminated); NULL = no consumer */
	kafka_handler_fn handler;       /* applies one event (required with topics) */
	const struct cfg_key *cfg_keys; /* the service's own settings; may be NULL */
	size_t cfg_nkeys;
	void *cfg; /* zeroed struct the table fills; freed by the runtime */
	void *app; /* the service's context, given to the hooks below */
	/* After infrastructure is up and before HTTP serves: register routes, start workers.
	 * Return non-OK (with e filled) to abort start-up. */
	enum status (*setup)(struct svc *s, void *app, struct err *e);
	/* After HTTP has stopped and before the consumer closes: stop workers. May be NULL. */
	void (*teardown)(struct svc *s, void *app);
	/* Called on the main thread about every 200 ms while running (timers). May be NULL. */
	void (*tick)(struct svc *s, void *app);
};

/** @brief Run a service until SIGTERM/SIGINT.
 *  Recognises one optional argument: `migrate` (apply migrations and exit) and `--help`.
 *  Unknown arguments are an error. @returns the process exit code (0 on clean shutdown,
 *  2 on a configuration error, 1 on another start-up failure). */
int svc_main(const struct svc_def *def, int argc, char **argv);

/** @brief Bring a service schema up to date, as svc_main() does at start-up: create the
 *  applied_events (consumes) and outbox (outbox) tables from their one DDL, then apply the
 *  migrations in dir (db_migrate). For tools that work on a schema without running the
 *  service (e.g. `cairn-auth bootstrap`). All arguments are borrowed.
 *  @param applied receives how many migration files were applied; may be NULL. */
MUST_CHECK enum status svc_schema_prepare(struct db_conn *dbc, const char *schema, bool consumes,
                                          bool outbox, const char *dir, int *applied,
                                          struct err *e);

/** @brief The common settings. Borrowed; valid during svc_main(). */
const struct svc_cfg *svc_get_cfg(const struct svc *s);
/** @brief The token verifier (NULL when def.own_authn). Borrowed; thread-safe. */
struct authn_verifier *svc_get_verifier(struct svc *s);
/** @brief The HTTP server, to register routes in setup(). Borrowed. */
struct http_server *svc_get_http(struct svc *s);
/** @brief The registry behind /metrics. Borrowed; thread-safe. */
struct metrics *svc_get_metrics(struct svc *s);
/** @brief The shared idempotent producer. Borrowed; thread-safe. */
struct kafka_producer *svc_get_producer(struct svc *s);
/** @brief The database URI (as configured; connects as the owner). Workers use
 *  svc_db_conn_new() instead, which applies the runtime role. Borrowed. */
const char *svc_get_database_url(const struct svc *s);
/** @brief A new connection for a worker thread, already switched to def.runtime_role
 *  (when the runtime adopted it). @returns new (db_conn_free) or NULL with e filled. */
struct db_conn *svc_db_conn_new(struct svc *s, struct err *e);
/** @brief The main thread's connection, for setup()/tick() only (the consumer uses it
 *  between ticks, so never from another thread). Borrowed. */
struct db_conn *svc_get_db(struct svc *s);
/** @brief Wake the outbox relay after a commit that added rows (NOTIFY also wakes it; this
 *  saves the round trip). Thread-safe; no-op without a relay. */
void svc_kick_outbox(struct svc *s);
/** @brief True once shutdown has begun (workers poll it). Thread-safe. */
bool svc_is_stopping(const struct svc *s);
/** @brief Ask the service to shut down, as SIGTERM does. Thread-safe. */
void svc_request_stop(struct svc *s);

#endif
