#include "common/svc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/authn.h"
#include "common/log.h"
#include "common/outbox.h"
#include "common/xalloc.h"

struct svc {
	const struct svc_def *def;
	struct svc_cfg cfg;
	struct db_conn *dbc;       /* main thread: migrations, consumer, setup, tick */
	struct db_conn *ready_dbc; /* /readyz only, under ready_lock */
	bool use_runtime_role;     /* SET ROLE def->runtime_role on every connection */
	pthread_mutex_t ready_lock;
	struct kafka_producer *producer;
	struct kafka_consumer *consumer;
	struct outbox_relay *relay;
	struct http_server *http;
	struct authn_verifier *verifier;
	struct authn_listener *listener;
	struct metrics_counter *m_events;
	struct kafka_consumer_stats last_stats;
	sigset_t stop_signals;
	atomic_bool stopping;
};

static const struct cfg_key common_keys[] = {
	CFG_STR("database_url", struct svc_cfg, database_url, NULL, true,
	        "libpq URI of the cairn database, e.g. postgresql://cairn@127.0.0.1:55432/cairn"),
	CFG_INT_SVC("http_port", struct svc_cfg, http_port, NULL, 0, 65535,
	            "TCP port of the service's HTTP API (0 = ephemeral)"),
	CFG_STR("http_addr", struct svc_cfg, http_addr, "127.0.0.1", false,
	        "address the HTTP API binds to (0.0.0.0 in containers)"),
	CFG_INT("http_threads", struct svc_cfg, http_threads, "4", 1, 256, "HTTP worker threads"),
	CFG_INT("http_max_body", struct svc_cfg, http_max_body, "1048576", 1024, 1073741824,
	        "largest accepted request body in bytes (413 beyond)"),
	CFG_STR("log_level", struct svc_cfg, log_level, "info", false,
	        "debug, info, warn or error"),
	CFG_STR("sql_dir", struct svc_cfg, sql_dir, "schemas/sql", false,
	        "directory holding <service>/NNNN_*.sql migrations"),
	CFG_STR("consumer_group", struct svc_cfg, consumer_group, NULL, false,
	        "Kafka consumer group (default cairn-<service>)"),
	CFG_INT("ready_timeout_ms", struct svc_cfg, ready_timeout_ms, "2000", 100, 60000,
	        "how long /readyz waits for Kafka metadata"),
	CFG_INT("shutdown_timeout_ms", struct svc_cfg, shutdown_timeout_ms, "10000", 100, 600000,
	        "how long shutdown waits to drain HTTP and flush Kafka"),
	CFG_STR("identity_url", struct svc_cfg, identity_url, "http://127.0.0.1:8101", false,
	        "base URL of the auth service, for its JWKS (token signing keys)"),
	CFG_BOOL("authn_require_fresh", struct svc_cfg, authn_require_fresh, "true",
	         "refuse tokens (503) while the identity event stream is stale"),
	CFG_BOOL("require_runtime_role", struct svc_cfg, require_runtime_role, "false",
	         "refuse to start when the service's runtime database role is missing"),
};
#define NCOMMON (sizeof(common_keys) / sizeof(common_keys[0]))

const struct svc_cfg *svc_get_cfg(const struct svc *s)
{
	return &s->cfg;
}

struct http_server *svc_get_http(struct svc *s)
{
	return s->http;
}

struct authn_verifier *svc_get_verifier(struct svc *s)
{
	return s->verifier;
}

struct metrics *svc_get_metrics(struct svc *s)
{
	return http_server_metrics(s->http);
}

struct kafka_producer *svc_get_producer(struct svc *s)
{
	return s->producer;
}

const char *svc_get_database_url(const struct svc *s)
{
	return s->cfg.database_url;
}

struct db_conn *svc_get_db(struct svc *s)
{
	return s->dbc;
}

void svc_kick_outbox(struct svc *s)
{
	if (s->relay)
		outbox_relay_kick(s->relay);
}

bool svc_is_stopping(const struct svc *s)
{
	return atomic_load(&s->stopping);
}

void svc_request_stop(struct svc *s)
{
	atomic_store(&s->stopping, true);
}

/* The database URL with extra connection settings: libpq URI ("postgresql://..?a=b") or
 * keyword/value ("host=.. dbname=.."). Settings given at connection start survive the
 * PQreset() that db.c does after a lost connection, unlike a SET. Returns new memory. */
static char *url_with(const char *url, const char *key, const char *uri_value, const char *kw_value)
{
	if (strstr(url, "://") != NULL)
		return xasprintf("%s%c%s=%s", url, strchr(url, '?') ? '&' : '?', key, uri_value);
	return xasprintf("%s %s='%s'", url, key, kw_value);
}

static enum status ready_db(void *ud, struct err *e)
{
	struct svc *s = ud;
	enum status st;

	pthread_mutex_lock(&s->ready_lock);
	if (s->ready_dbc == NULL) {
		/* A black-holed server must not hold /readyz (and its HTTP thread) for minutes. */
		char *url = url_with(s->cfg.database_url, "connect_timeout", "2", "2");

		s->ready_dbc = db_conn_new(url, e);
		free(url);
	}
	st = s->ready_dbc ? db_ping(s->ready_dbc, e) : STATUS_UNAVAILABLE;
	if (st != STATUS_OK) {
		db_conn_free(s->ready_dbc);
		s->ready_dbc = NULL;
	}
	pthread_mutex_unlock(&s->ready_lock);
	return st;
}

static enum status ready_kafka(void *ud, struct err *e)
{
	struct svc *s = ud;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t kerr;

	kerr = rd_kafka_metadata(kafka_producer_get_handle(s->producer), 0, NULL, &md,
	                         (int)s->cfg.ready_timeout_ms);
	if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR)
		return err_set(e, STATUS_UNAVAILABLE, "kafka metadata: %s", rd_kafka_err2str(kerr));
	if (md->broker_cnt < 1) {
		rd_kafka_metadata_destroy(md);
		return err_set(e, STATUS_UNAVAILABLE, "kafka: no broker in metadata");
	}
	rd_kafka_metadata_destroy(md);
	return STATUS_OK;
}

static void usage(const struct svc_def *def)
{
	printf("usage: cairn-%s [migrate]\n\n"
	       "Runs the cairn %s service until SIGTERM. `migrate` applies the database\n"
	       "migrations and exits. Configuration comes from the environment (CAIRN_*,\n"
	       "CAIRN_%s_*, KAFKA_*), see docs/configuration.md. Settings:\n",
	       def->name, def->name, def->name);
	for (size_t i = 0; i < NCOMMON; i++)
		printf("  %-22s %s\n", common_keys[i].name, common_keys[i].help);
	for (size_t i = 0; i < def->cfg_nkeys; i++)
		printf("  %-22s %s\n", def->cfg_keys[i].name, def->cfg_keys[i].help);
}

static enum status load_config(struct svc *s, struct err *e)
{
	const struct svc_def *def = s->def;
	struct cfg_section sec[2] = { { common_keys, NCOMMON, &s->cfg },
		                      { def->cfg_keys, def->cfg_nkeys, def->cfg } };
	enum log_level lvl;
	enum status st;

	s->cfg.http_port = def->default_http_port;
	st = cfg_load_sections(sec, def->cfg_keys ? 2 : 1, def->name, NULL, e);
	if (st != STATUS_OK)
		return st;
	if (log_level_parse(s->cfg.log_level, &lvl) != 0) {
		char name[96];

		return err_set(e, STATUS_INVALID,
		               "%s: invalid value '%s': expected debug, info, warn or error",
		               cfg_var_name(name, sizeof(name), def->name, "log_level"),
		               s->cfg.log_level);
	}
	log_init(def->name, lvl);
	if (s->cfg.consumer_group == NULL || s->cfg.consumer_group[0] == '\0') {
		free(s->cfg.consumer_group);
		s->cfg.consumer_group = xasprintf("cairn-%s", def->name);
	}
	if (getenv("KAFKA_BOOTSTRAP_SERVERS") == NULL)
		return err_set(e, STATUS_INVALID,
		               "KAFKA_BOOTSTRAP_SERVERS: required setting is missing (Kafka "
		               "brokers, e.g. 127.0.0.1:59092)");
	return STATUS_OK;
}

enum status svc_schema_prepare(struct db_conn *dbc, const char *schema, bool consumes, bool outbox,
                               const char *dir, int *applied, struct err *e)
{
	/* The event plumbing (consumer dedupe, outbox) comes from the one DDL in kafka.h /
	 * outbox.h; the service's own migrations may then grant on it. */
	enum status st = consumes ? kafka_consumer_ensure_schema(dbc, schema, e) : STATUS_OK;

	if (st == STATUS_OK && outbox)
		st = outbox_ensure_schema(dbc, schema, e);
	if (st == STATUS_OK)
		st = db_migrate(dbc, schema, dir, applied, e);
	return st;
}

static enum status migrate(struct svc *s, struct err *e)
{
	char *dir = xasprintf("%s/%s", s->cfg.sql_dir,
	                      s->def->sql_dir ? s->def->sql_dir : s->def->name);
	int applied = 0;
	enum status st;

	st = svc_schema_prepare(s->dbc, s->def->schema, s->def->topics != NULL, s->def->outbox, dir,
	                        &applied, e);
	if (st == STATUS_OK)
		log_info("migrations of schema %s from %s: %d applied", s->def->schema, dir,
		         applied);
	free(dir);
	return st;
}

/* The before hook of every non-public route: a valid bearer token whose epochs are current,
 * with a role the route allows (route flags >> HTTP_ROUTE_USER_SHIFT; 0 = any role). */
static int authn_before(struct http_req *req, void *ud)
{
	struct svc *s = ud;
	struct authn_principal *p = xcalloc(1, sizeof(*p));
	unsigned need = http_req_route_flags(req) >> HTTP_ROUTE_USER_SHIFT;
	struct err e;
	enum status st;

	err_clear(&e);
	st = authn_verify_header(s->verifier, http_req_header(req, "Authorization"),
	                         (int64_t)time(NULL), p, &e);
	if (st != STATUS_OK) {
		free(p);
		if (st == STATUS_UNAVAILABLE) {
			http_reply_header(req, "Retry-After", "1");
			http_reply_error(req, 503, "unavailable",
			                 "identity information is not current; retry shortly");
			return 1;
		}
		http_reply_header(req, "WWW-Authenticate", "Bearer realm=\"cairn\"");
		http_reply_error(req, 401, "unauthorized", "a valid bearer token is required");
		return 1;
	}
	if (need != 0 && !authn_principal_has_role(p, need)) {
		free(p);
		http_reply_error(req, 403, "forbidden", "your role does not allow this operation");
		return 1;
	}
	http_req_set_ctx(req, p, free);
	return 0;
}

/* GET /whoami: the caller as the token says (through nginx:
 * /api/v1/services/<svc>/whoami). Lets operators and tests check a token everywhere. */
static void whoami(struct http_req *req, void *ud)
{
	const struct authn_principal *p = http_req_ctx(req);
	json_t *roles = json_array();

	for (unsigned bit = 1; bit <= AUTHN_ROLE__ALL; bit <<= 1) {
		if (p->roles & bit)
			json_array_append_new(roles, json_string(authn_role_name(bit)));
	}
	http_reply_json(req, 200,
	                json_pack("{s:s, s:s?, s:o, s:b}", "user_id", p->user_id, "tenant_id",
	                          p->tenant_id[0] ? p->tenant_id : NULL, "roles", roles,
	                          "provider_admin", p->is_provider_admin));
}

static enum status start_authn(struct svc *s, struct err *e)
{
	char *jwks = xasprintf("%s/api/v1/auth/jwks", s->cfg.identity_url);
	struct authn_config ac = {
		.issuer = "cairn-auth",
		.audience = "cairn",
		.jwks_url = jwks,
		.require_fresh = s->cfg.authn_require_fresh,
	};
	struct err fe;

	s->verifier = authn_verifier_new(&ac, e);
	free(jwks);
	if (s->verifier == NULL)
		return e->code;
	/* Best effort: auth may start after us; the verifier refetches on an unknown kid. */
	if (authn_verifier_fetch_jwks(s->verifier, &fe) != STATUS_OK)
		log_info("JWKS not fetched yet (%s); will fetch on the first token", fe.msg);
	s->listener = authn_listener_start(s->verifier, getenv("KAFKA_BOOTSTRAP_SERVERS"), NULL, e);
	if (s->listener == NULL)
		return e->code;
	http_server_set_before(s->http, authn_before, s);
	return http_server_route(s->http, "GET", "/whoami", whoami, s, 0, e);
}

struct db_conn *svc_db_conn_new(struct svc *s, struct err *e)
{
	struct db_conn *dbc;
	char *url, *uv, *kv;

	if (!s->use_runtime_role)
		return db_conn_new(s->cfg.database_url, e);
	/* options=-c role=<role>: the session starts as the runtime role (membership checked
	 * by the server), and keeps it across reconnects. */
	uv = xasprintf("-c%%20role%%3D%s", s->def->runtime_role);
	kv = xasprintf("-c role=%s", s->def->runtime_role);
	url = url_with(s->cfg.database_url, "options", uv, kv);
	dbc = db_conn_new(url, e);
	free(url);
	free(uv);
	free(kv);
	return dbc;
}

/* After the migrations (run as the owner): re-apply the runtime role's grants, check that we
 * may switch to it, and do so on the main connection. */
static enum status adopt_runtime_role(struct svc *s, struct err *e)
{
	const char *role = s->def->runtime_role;
	const char *p[] = { role };
	char *grant;
	PGresult *res = NULL;
	bool ok = false;
	enum status st;

	if (role == NULL)
		return STATUS_OK;
	if (!db_ident_is_valid(role))
		return err_set(e, STATUS_INVALID, "runtime role '%s' is not a valid name", role);
	grant = xasprintf("SELECT %s.grant_runtime_role()", s->def->schema);
	if (db_exec(s->dbc, grant, 0, NULL, e) != STATUS_OK)
		log_warn("%s: %s", grant, e->msg);
	free(grant);
	st = db_query(s->dbc,
	              "SELECT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = $1 AND NOT "
	              "r.rolsuper AND NOT r.rolbypassrls) AND pg_has_role(current_user, $1, "
	              "'MEMBER')",
	              1, p, &res, e);
	if (st != STATUS_OK)
		return st;
	ok = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!ok) {
		if (s->cfg.require_runtime_role)
			return err_set(e, STATUS_INVALID,
			               "CAIRN_REQUIRE_RUNTIME_ROLE: role %s is missing, privileged "
			               "or not granted to the service's login",
			               role);
		log_error("runtime role %s unavailable: working as the schema owner (row-level "
		          "security is forced, but an owner could lift it); create it as in "
		          "deploy/compose/postgres-init.sh",
		          role);
		return STATUS_OK;
	}
	/* Replace the migration (owner) connection by one that starts as the runtime role. */
	s->use_runtime_role = true;
	{
		struct db_conn *rt = svc_db_conn_new(s, e);

		if (rt == NULL)
			return e->code;
		db_conn_free(s->dbc);
		s->dbc = rt;
	}
	log_info("working as database role %s under row-level security", role);
	return STATUS_OK;
}

static enum status start_http(struct svc *s, struct err *e)
{
	struct http_config hc = {
		.bind_addr = s->cfg.http_addr,
		.port = (uint16_t)s->cfg.http_port,
		.threads = (unsigned)s->cfg.http_threads,
		.max_body = (size_t)s->cfg.http_max_body,
		.drain_ms = (unsigned)s->cfg.shutdown_timeout_ms / 2,
		.trust_proxy = true,
	};

	s->http = http_server_new(&hc, e);
	if (s->http == NULL)
		return e->code;
	http_server_add_ready_check(s->http, "postgresql", ready_db, s);
	http_server_add_ready_check(s->http, "kafka", ready_kafka, s);
	s->m_events = metrics_counter_new(svc_get_metrics(s), "cairn_events_total",
	                                  "Kafka events handled by this service, by outcome",
	                                  "outcome", e);
	if (s->m_events == NULL)
		return e->code;
	return STATUS_OK;
}

static void publish_consumer_stats(struct svc *s)
{
	struct kafka_consumer_stats now;
	const char *applied[] = { "applied" }, *dup[] = { "duplicate" }, *retry[] = { "retried" },
	           *dead[] = { "dead_lettered" };

	if (s->consumer == NULL)
		return;
	kafka_consumer_get_stats(s->consumer, &now);
	metrics_counter_add(s->m_events, applied, (double)(now.applied - s->last_stats.applied));
	metrics_counter_add(s->m_events, dup, (double)(now.duplicates - s->last_stats.duplicates));
	metrics_counter_add(s->m_events, retry, (double)(now.retries - s->last_stats.retries));
	metrics_counter_add(s->m_events, dead, (double)(now.dead - s->last_stats.dead));
	s->last_stats = now;
}

static bool signalled(struct svc *s)
{
	struct timespec zero = { 0, 0 };
	int sig = sigtimedwait(&s->stop_signals, NULL, &zero);

	if (sig > 0) {
		log_info("received signal %d, shutting down", sig);
		atomic_store(&s->stopping, true);
	}
	return atomic_load(&s->stopping);
}

static void run_loop(struct svc *s)
{
	struct timespec last_tick = { 0, 0 };
	struct err e;

	while (!signalled(s)) {
		struct timespec now;
		long elapsed_ms;

		if (s->consumer) {
			enum status st = kafka_consumer_poll_once(s->consumer, 100, NULL, &e);

			if (st != STATUS_OK) {
				log_warn("consumer: %s (will retry)", e.msg);
				nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
			}
		} else {
			nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed_ms = (now.tv_sec - last_tick.tv_sec) * 1000 +
		             (now.tv_nsec - last_tick.tv_nsec) / 1000000;
		if (elapsed_ms >= 200) {
			last_tick = now;
			publish_consumer_stats(s);
			if (s->def->tick)
				s->def->tick(s, s->def->app);
		}
	}
}

static void shutdown_all(struct svc *s, bool setup_done)
{
	struct err e;

	if (s->http)
		http_server_stop(s->http);
	if (setup_done && s->def->teardown)
		s->def->teardown(s, s->def->app);
	if (s->consumer) {
		kafka_consumer_close(s->consumer);
		kafka_consumer_free(s->consumer);
		s->consumer = NULL;
	}
	outbox_relay_free(s->relay);
	s->relay = NULL;
	if (s->producer &&
	    kafka_producer_flush(s->producer, (int)s->cfg.shutdown_timeout_ms, &e) != STATUS_OK)
		log_warn("producer flush at shutdown: %s", e.msg);
	kafka_producer_free(s->producer);
	s->producer = NULL;
	http_server_free(s->http);
	s->http = NULL;
	authn_listener_stop(s->listener);
	s->listener = NULL;
	authn_verifier_free(s->verifier);
	s->verifier = NULL;
	db_conn_free(s->ready_dbc);
	db_conn_free(s->dbc);
}

int svc_main(const struct svc_def *def, int argc, char **argv)
{
	struct svc s;
	struct err e;
	bool migrate_only = false;
	bool setup_done = false;
	int rc = 1;

	memset(&s, 0, sizeof(s));
	s.def = def;
	atomic_init(&s.stopping, false);
	pthread_mutex_init(&s.ready_lock, NULL);
	err_clear(&e);
	log_init(def->name, LOGL_INFO);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(def);
			return 0;
		}
		if (strcmp(argv[i], "migrate") == 0) {
			migrate_only = true;
			continue;
		}
		fprintf(stderr, "cairn-%s: unknown argument '%s' (try --help)\n", def->name,
		        argv[i]);
		return 2;
	}
	/* Block the stop signals in every thread (threads inherit the mask) and collect
	 * them synchronously in the main loop: no handler, no global flag. */
	sigemptyset(&s.stop_signals);
	sigaddset(&s.stop_signals, SIGTERM);
	sigaddset(&s.stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &s.stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (load_config(&s, &e) != STATUS_OK) {
		log_error("configuration error: %s", e.msg);
		fprintf(stderr, "cairn-%s: configuration error: %s\n", def->name, e.msg);
		rc = 2;
		goto out_cfg;
	}
	cfg_log(common_keys, NCOMMON, def->name, &s.cfg);
	if (def->cfg_keys)
		cfg_log(def->cfg_keys, def->cfg_nkeys, def->name, def->cfg);

	s.dbc = db_conn_new(s.cfg.database_url, &e);
	if (s.dbc == NULL) {
		log_error("database: %s", e.msg);
		goto out_cfg;
	}
	if (migrate(&s, &e) != STATUS_OK) {
		log_error("migrations: %s", e.msg);
		goto out;
	}
	if (migrate_only) {
		rc = 0;
		goto out;
	}
	if (adopt_runtime_role(&s, &e) != STATUS_OK) {
		log_error("database role: %s", e.msg);
		rc = e.code == STATUS_INVALID ? 2 : 1;
		goto out;
	}
	s.producer = kafka_producer_new(NULL, &e);
	if (s.producer == NULL) {
		log_error("kafka producer: %s", e.msg);
		rc = e.code == STATUS_INVALID ? 2 : 1;
		goto out;
	}
	if (def->outbox) {
		s.relay = outbox_relay_new(s.cfg.database_url, def->schema, s.producer, NULL, &e);
		if (s.relay == NULL) {
			log_error("outbox relay: %s", e.msg);
			goto out;
		}
	}
	if (start_http(&s, &e) != STATUS_OK) {
		log_error("http: %s", e.msg);
		goto out;
	}
	if (!def->own_authn && start_authn(&s, &e) != STATUS_OK) {
		log_error("token verifier: %s", e.msg);
		goto out;
	}
	if (def->setup && def->setup(&s, def->app, &e) != STATUS_OK) {
		log_error("setup: %s", e.msg);
		goto out;
	}
	setup_done = true;
	if (def->topics) {
		struct kafka_consumer_opts o = {
			.group_id = s.cfg.consumer_group,
			.topics = def->topics,
			.schema = def->schema,
			.handler = def->handler,
			.user = def->app,
		};

		s.consumer = kafka_consumer_new(&o, s.dbc, s.producer, &e);
		if (s.consumer == NULL) {
			log_error("kafka consumer: %s", e.msg);
			rc = e.code == STATUS_INVALID ? 2 : 1;
			goto out;
		}
	}
	if (http_server_start(s.http, &e) != STATUS_OK) {
		log_error("http: %s", e.msg);
		goto out;
	}
	log_info("%s ready to serve on %s:%u (schema %s, consumer group %s)", def->name,
	         s.cfg.http_addr, (unsigned)http_server_port(s.http), def->schema,
	         def->topics ? s.cfg.consumer_group : "-");
	run_loop(&s);
	rc = 0;
out:
	shutdown_all(&s, setup_done);
	if (rc == 0)
		log_info("%s stopped cleanly", def->name);
out_cfg:
	if (def->cfg_keys)
		cfg_cleanup(def->cfg_keys, def->cfg_nkeys, def->cfg);
	cfg_cleanup(common_keys, NCOMMON, &s.cfg);
	pthread_mutex_destroy(&s.ready_lock);
	return rc;
}
