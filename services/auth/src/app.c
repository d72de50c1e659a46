/* app.c - the auth service's wiring: settings, signing keys, connection pool, per-request
 * transactions with the RLS context, the identity heartbeat, and the bootstrap command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "common/event.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/outbox.h"
#include "common/xalloc.h"

#include "auth.h"
#include "password.h"

const struct cfg_key auth_cfg_keys[] = {
	CFG_STR("issuer", struct auth_cfg, issuer, "cairn-auth", false, "JWT iss"),
	CFG_STR("audience", struct auth_cfg, audience, "cairn", false, "JWT aud"),
	CFG_SECRET("kek", struct auth_cfg, kek, "", false,
	           "key-encryption key for signing keys: base64 of 32 bytes"),
	CFG_STR("runtime_role", struct auth_cfg, runtime_role, "cairn_auth_rt", false,
	        "database role of every request transaction (SET LOCAL ROLE)"),
	CFG_BOOL("require_runtime_role", struct auth_cfg, require_runtime_role, "false",
	         "refuse to start when the runtime role is missing (production)"),
	CFG_SECRET("runtime_database_url", struct auth_cfg, runtime_database_url, "", false,
	           "separate login for the runtime role (default: database_url)"),
	CFG_INT("access_ttl_s", struct auth_cfg, access_ttl_s, "900", 60, 1200,
	        "access token lifetime"),
	CFG_INT("refresh_ttl_s", struct auth_cfg, refresh_ttl_s, "2592000", 300, 31536000,
	        "refresh token lifetime"),
	CFG_INT("exchange_ttl_s", struct auth_cfg, exchange_ttl_s, "300", 30, 900,
	        "lifetime of access tokens minted from API tokens"),
	CFG_INT("login_account_max", struct auth_cfg, login_account_max, "5", 1, 1000,
	        "failed logins per account per window"),
	CFG_INT("login_address_max", struct auth_cfg, login_address_max, "20", 1, 100000,
	        "failed logins per source address per window"),
	CFG_INT("login_window_s", struct auth_cfg, login_window_s, "900", 1, 86400,
	        "login throttling window"),
	CFG_INT("key_check_s", struct auth_cfg, key_check_s, "30", 1, 3600,
	        "how often to look for a key made by `cairn-auth rotate-key`"),
	CFG_INT("heartbeat_ms", struct auth_cfg, heartbeat_ms, "1000", 100, 10000,
	        "identity heartbeat interval"),
};
const size_t auth_cfg_nkeys = sizeof(auth_cfg_keys) / sizeof(auth_cfg_keys[0]);

/* ---- pool and transactions ---- */

struct db_conn *auth_db_get(struct auth_app *a, struct err *e)
{
	struct db_conn *dbc = NULL;
	const char *url = a->cfg.runtime_database_url && *a->cfg.runtime_database_url
	                          ? a->cfg.runtime_database_url
	                          : a->db_url;

	pthread_mutex_lock(&a->mu);
	if (a->npool > 0)
		dbc = a->pool[--a->npool];
	pthread_mutex_unlock(&a->mu);
	if (dbc)
		return dbc;
	return db_conn_new(url, e);
}

void auth_db_put(struct auth_app *a, struct db_conn *dbc)
{
	if (!dbc)
		return;
	if (db_tx_is_open(dbc))
		db_tx_rollback(dbc);
	pthread_mutex_lock(&a->mu);
	if (a->npool < AUTH_POOL_MAX) {
		a->pool[a->npool++] = dbc;
		dbc = NULL;
	}
	pthread_mutex_unlock(&a->mu);
	db_conn_free(dbc);
}

enum status auth_tx_tenant(struct db_conn *dbc, const char *tid, struct err *e)
{
	enum status st;

	st = db_tx_set_local(dbc, "app.provider_admin", tid ? "off" : "on", e);
	if (st == STATUS_OK)
		st = db_tx_set_local(dbc, "app.tenant_id", tid ? tid : "", e);
	return st;
}

enum status auth_tx_begin(struct auth_app *a, struct db_conn *dbc, const struct authn_principal *p,
                          struct err *e)
{
	enum status st;
	char *sql;

	st = db_tx_begin(dbc, e);
	if (st != STATUS_OK)
		return st;
	if (a->cfg.runtime_role && *a->cfg.runtime_role) {
		/* The name was checked by db_ident_is_valid() at setup. */
		sql = xasprintf("SET LOCAL ROLE %s", a->cfg.runtime_role);
		st = db_exec(dbc, sql, 0, NULL, e);
		free(sql);
		if (st != STATUS_OK)
			goto fail;
	}
	st = db_exec(dbc,
	             "SELECT set_config('search_path', 'identity, public', true), "
	             "set_config('TimeZone', 'UTC', true)",
	             0, NULL, e);
	if (st != STATUS_OK)
		goto fail;
	if (!p)
		st = db_tx_set_local(dbc, "app.login", "on", e);
	else
		st = auth_tx_tenant(dbc, p->is_provider_admin ? NULL : p->tenant_id, e);
	if (st != STATUS_OK)
		goto fail;
	return STATUS_OK;
fail:
	db_tx_rollback(dbc);
	return st;
}

/* ---- signing keys ---- */

enum status auth_sign(struct auth_app *a, const struct auth_claims *c, char **out, struct err *e)
{
	enum status st;

	pthread_mutex_lock(&a->mu);
	st = auth_token_sign(a->cur, c, out, e);
	pthread_mutex_unlock(&a->mu);
	return st;
}

char *auth_jwks(struct auth_app *a)
{
	struct auth_key *keys[2];
	size_t n = 0;
	char *s;

	pthread_mutex_lock(&a->mu);
	keys[n++] = a->cur;
	if (a->prev)
		keys[n++] = a->prev;
	s = auth_jwks_json(keys, n);
	pthread_mutex_unlock(&a->mu);
	return s;
}

/* Make k0 current and k1 previous (both taken), freeing the old ones. */
static void keys_install(struct auth_app *a, struct auth_key *k0, struct auth_key *k1)
{
	struct auth_key *o0, *o1;

	pthread_mutex_lock(&a->mu);
	o0 = a->cur;
	o1 = a->prev;
	a->cur = k0;
	a->prev = k1;
	pthread_mutex_unlock(&a->mu);
	auth_key_free(o0);
	auth_key_free(o1);
}

/* Load the newest two unretired keys; create one when there is none. */
static enum status keys_load(struct auth_app *a, struct err *e)
{
	struct db_conn *dbc;
	PGresult *res = NULL;
	enum status st;
	struct auth_key *k = NULL;
	char *wrapped = NULL, *pem = NULL;
	const unsigned char *kek = a->has_kek ? a->kek : NULL;
	struct auth_key *loaded[2] = { NULL, NULL };

	dbc = auth_db_get(a, e);
	if (!dbc)
		return e->code;
	st = auth_tx_begin(a, dbc, NULL, e);
	if (st != STATUS_OK)
		goto out;
	st = db_query(dbc,
	              "SELECT kid, wrapped_key FROM signing_keys WHERE retired_at IS NULL "
	              "ORDER BY created_at DESC LIMIT 2",
	              0, NULL, &res, e);
	if (st != STATUS_OK)
		goto out;
	if (PQntuples(res) == 0) {
		const char *params[2];

		k = auth_key_generate(e);
		if (!k) {
			st = e->code;
			goto out;
		}
		st = auth_key_wrap(kek, auth_key_kid(k), auth_key_pem(k), &wrapped, e);
		if (st != STATUS_OK)
			goto out;
		params[0] = auth_key_kid(k);
		params[1] = wrapped;
		st = db_exec(dbc, "INSERT INTO signing_keys (kid, wrapped_key) VALUES ($1, $2)", 2,
		             params, e);
		if (st != STATUS_OK)
			goto out;
		st = db_tx_commit(dbc, e);
		if (st != STATUS_OK)
			goto out;
		log_info("signing key %s created%s", auth_key_kid(k),
		         kek ? "" : " (stored unwrapped: set CAIRN_AUTH_KEK)");
		keys_install(a, k, NULL);
		k = NULL;
		goto out;
	}
	for (int i = 0; i < PQntuples(res) && i < 2; i++) {
		const char *kid = PQgetvalue(res, i, 0);

		st = auth_key_unwrap(kek, kid, PQgetvalue(res, i, 1), &pem, e);
		if (st != STATUS_OK)
			goto out;
		k = auth_key_from_pem(kid, pem, e);
		free(pem);
		pem = NULL;
		if (!k) {
			st = e->code;
			goto out;
		}
		loaded[i] = k;
		k = NULL;
	}
	keys_install(a, loaded[0], loaded[1]);
	loaded[0] = loaded[1] = NULL;
	db_tx_rollback(dbc);
out:
	if (res)
		PQclear(res);
	free(wrapped);
	auth_key_free(k);
	auth_key_free(loaded[0]);
	auth_key_free(loaded[1]);
	auth_db_put(a, dbc);
	return st;
}

/* Check every 30 s whether another process (cairn-auth rotate-key) made a new key. */
void auth_tick(struct svc *s, void *app)
{
	struct auth_app *a = app;
	struct timespec ts;
	struct db_conn *dbc;
	PGresult *res = NULL;
	struct err e;
	bool changed = false;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec - a->last_key_check < a->cfg.key_check_s)
		return;
	a->last_key_check = ts.tv_sec;
	dbc = auth_db_get(a, &e);
	if (!dbc)
		return;
	if (auth_tx_begin(a, dbc, NULL, &e) == STATUS_OK &&
	    db_query(dbc,
	             "SELECT kid FROM signing_keys WHERE retired_at IS NULL "
	             "ORDER BY created_at DESC LIMIT 1",
	             0, NULL, &res, &e) == STATUS_OK) {
		pthread_mutex_lock(&a->mu);
		changed = PQntuples(res) == 1 &&
		          strcmp(PQgetvalue(res, 0, 0), auth_key_kid(a->cur)) != 0;
		pthread_mutex_unlock(&a->mu);
		PQclear(res);
	}
	auth_db_put(a, dbc);
	if (changed) {
		char *jwks;

		if (keys_load(a, &e) != STATUS_OK) {
			log_error("signing keys: reload failed: %s", e.msg);
			return;
		}
		jwks = auth_jwks(a);
		if (authn_verifier_set_jwks(a->verifier, jwks, &e) != STATUS_OK)
			log_error("signing keys: %s", e.msg);
		free(jwks);
		log_info("signing key rotated: now %s", auth_key_kid(a->cur));
	}
}

/* ---- heartbeat ---- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int identity_partitions(rd_kafka_t *rk)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, AUTHN_TOPIC, NULL);
	int n = 0;

	if (!rkt)
		return 0;
	if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

static void heartbeat_send(struct auth_app *a, rd_kafka_t *rk, int nparts, int64_t at)
{
	for (int p = 0; p < nparts; p++) {
		struct event ev;
		struct err e;
		rd_kafka_headers_t *hdrs = NULL;
		char *val = NULL;
		size_t len = 0;
		rd_kafka_resp_err_t rerr;

		event_init(&ev);
		if (event_make(&ev, AUTHN_EVENT_HEARTBEAT, AUTH_SOURCE, NULL, NULL,
		               json_pack("{s:I}", "at_ms", (json_int_t)at), &e) != STATUS_OK ||
		    event_encode(&ev, &hdrs, &val, &len, &e) != STATUS_OK) {
			event_cleanup(&ev);
			continue;
		}
		rerr = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(AUTHN_TOPIC), RD_KAFKA_V_PARTITION(p),
		                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                         RD_KAFKA_V_VALUE(val, len), RD_KAFKA_V_HEADERS(hdrs),
		                         RD_KAFKA_V_END);
		if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR)
			rd_kafka_headers_destroy(hdrs);
		else
			atomic_fetch_add(&a->heartbeats, 1);
		free(val);
		event_cleanup(&ev);
	}
}

/* Every heartbeat_ms: if identity.outbox has nothing unsent, tell every partition of
 * cairn.identity that it is complete up to `at` (taken before looking at the outbox). */
/* Is any identity event committed at or before at_ms still unpublished? A heartbeat for
 * at_ms promises the services that every change up to at_ms is on the topic ahead of it;
 * rows written after at_ms do not matter for it. */
static bool changes_pending(struct db_conn **dbc, const char *url, int64_t at_ms)
{
	char at[32];
	const char *p[] = { at };
	PGresult *res = NULL;
	struct err e;
	bool pending = true;

	if (*dbc == NULL)
		*dbc = db_conn_new(url, &e);
	if (*dbc == NULL)
		return true;
	snprintf(at, sizeof(at), "%lld", (long long)at_ms);
	if (db_query(*dbc,
	             "SELECT EXISTS (SELECT 1 FROM identity.outbox WHERE sent_at IS NULL "
	             "AND created_at <= to_timestamp($1::bigint / 1000.0))",
	             1, p, &res, &e) == STATUS_OK) {
		pending = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
	} else {
		db_conn_free(*dbc);
		*dbc = NULL;
	}
	return pending;
}

static void *heartbeat_run(void *arg)
{
	struct auth_app *a = arg;
	rd_kafka_t *rk = kafka_producer_get_handle(svc_get_producer(a->svc));
	struct db_conn *dbc = NULL;
	int nparts = 0;
	int64_t last_md = 0;

	while (!atomic_load(&a->hb_stop)) {
		int64_t at = wall_ms();
		long long waited = 0;
		bool pending;

		if (at - last_md > 10000 || nparts == 0) {
			nparts = identity_partitions(rk);
			last_md = at;
		}
		/* Wait (briefly) for the relay to publish the changes before `at` rather than
		 * skipping this beat: a skipped beat makes the services fail closed sooner. */
		pending = changes_pending(&dbc, a->db_url, at);
		while (pending && waited < a->cfg.heartbeat_ms && !atomic_load(&a->hb_stop)) {
			usleep(20 * 1000);
			waited += 20;
			pending = changes_pending(&dbc, a->db_url, at);
		}
		if (!pending && nparts > 0)
			heartbeat_send(a, rk, nparts, at);
		for (long long slept = waited;
		     slept < a->cfg.heartbeat_ms && !atomic_load(&a->hb_stop); slept += 50)
			usleep(50 * 1000);
	}
	db_conn_free(dbc);
	return NULL;
}

/* ---- setup / teardown ---- */

/* Is the runtime role there and may we SET ROLE to it? If not, either refuse to start
 * (require_runtime_role) or run requests as the connecting role: FORCE ROW LEVEL SECURITY
 * still binds the owner, but the owner could lift it, so this is logged as an error. */
static enum status runtime_role_check(struct auth_app *a, struct err *e)
{
	struct db_conn *dbc;
	PGresult *res = NULL;
	const char *p[1] = { a->cfg.runtime_role };
	bool ok = false;
	enum status st;

	/* As the owner: (re)apply the grants, in case the role was created after the
	 * migrations ran. Fails harmlessly when the connecting role is not the owner. */
	dbc = db_conn_new(a->db_url, e);
	if (!dbc)
		return e->code;
	if (db_exec(dbc, "SELECT identity.grant_runtime_role()", 0, NULL, e) != STATUS_OK)
		log_warn("identity.grant_runtime_role(): %s", e->msg);
	if (a->cfg.runtime_database_url && *a->cfg.runtime_database_url) {
		db_conn_free(dbc);
		dbc = db_conn_new(a->cfg.runtime_database_url, e);
		if (!dbc)
			return e->code;
	}
	st = db_query(dbc,
	              "SELECT pg_has_role(current_user, r.oid, 'MEMBER') AND NOT r.rolsuper "
	              "AND NOT r.rolbypassrls FROM pg_roles r WHERE r.rolname = $1",
	              1, p, &res, e);
	if (st == STATUS_OK) {
		ok = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
	}
	db_conn_free(dbc);
	if (st != STATUS_OK)
		return st;
	if (ok)
		return STATUS_OK;
	if (a->cfg.require_runtime_role)
		return err_set(e, STATUS_INVALID,
		               "CAIRN_AUTH_RUNTIME_ROLE: role %s is missing, privileged, or not "
		               "granted to the connecting role (see docs/auth.md)",
		               a->cfg.runtime_role);
	log_error("database role %s is missing or not granted to the connecting role: requests "
	          "run as the table owner (row-level security is forced, but the owner could "
	          "lift it). Create it: see docs/auth.md",
	          a->cfg.runtime_role);
	free(a->cfg.runtime_role);
	a->cfg.runtime_role = xstrdup("");
	return STATUS_OK;
}

enum status auth_setup(struct svc *s, void *app, struct err *e)
{
	struct auth_app *a = app;
	struct authn_config ac;
	char *jwks;
	enum status st;

	a->svc = s;
	a->db_url = svc_get_database_url(s);
	pthread_mutex_init(&a->mu, NULL);
	atomic_init(&a->hb_stop, false);
	if (a->cfg.runtime_role && *a->cfg.runtime_role && !db_ident_is_valid(a->cfg.runtime_role))
		return err_set(e, STATUS_INVALID, "CAIRN_AUTH_RUNTIME_ROLE: not a valid role name");
	if (!a->cfg.runtime_role || !*a->cfg.runtime_role)
		log_warn("CAIRN_AUTH_RUNTIME_ROLE is empty: requests run as the connecting role; "
		         "row-level security then relies on that role not owning the tables");
	if (a->cfg.runtime_role && *a->cfg.runtime_role) {
		st = runtime_role_check(a, e);
		if (st != STATUS_OK)
			return st;
	}
	if (a->cfg.kek && *a->cfg.kek) {
		st = auth_kek_parse(a->cfg.kek, a->kek, e);
		if (st != STATUS_OK)
			return err_set(e, st, "CAIRN_AUTH_KEK: %s", e->msg);
		a->has_kek = true;
	} else {
		log_warn("CAIRN_AUTH_KEK is not set: signing keys are stored unwrapped "
		         "(development only, see docs/auth.md)");
	}
	st = keys_load(a, e);
	if (st != STATUS_OK)
		return st;
	memset(&ac, 0, sizeof(ac));
	ac.issuer = a->cfg.issuer;
	ac.audience = a->cfg.audience;
	a->verifier = authn_verifier_new(&ac, e);
	if (!a->verifier)
		return e->code;
	jwks = auth_jwks(a);
	st = authn_verifier_set_jwks(a->verifier, jwks, e);
	free(jwks);
	if (st != STATUS_OK)
		return st;
	a->throttle = auth_throttle_new(&(struct auth_throttle_cfg){
	        .account_max = (int)a->cfg.login_account_max,
	        .address_max = (int)a->cfg.login_address_max,
	        .window_s = (int)a->cfg.login_window_s,
	});
	st = auth_api_register(a, svc_get_http(s), e);
	if (st != STATUS_OK)
		return st;
	if (pthread_create(&a->hb, NULL, heartbeat_run, a) != 0)
		return err_set(e, STATUS_INTERNAL, "heartbeat thread: pthread_create failed");
	a->hb_started = true;
	return STATUS_OK;
}

void auth_teardown(struct svc *s, void *app)
{
	struct auth_app *a = app;

	if (a->hb_started) {
		atomic_store(&a->hb_stop, true);
		pthread_join(a->hb, NULL);
		a->hb_started = false;
	}
	auth_throttle_free(a->throttle);
	a->throttle = NULL;
	authn_verifier_free(a->verifier);
	a->verifier = NULL;
	auth_key_free(a->cur);
	auth_key_free(a->prev);
	a->cur = a->prev = NULL;
	for (int i = 0; i < a->npool; i++)
		db_conn_free(a->pool[i]);
	a->npool = 0;
}

/* ---- rotate-key ---- */

int auth_rotate_key_main(void)
{
	const char *url = getenv("CAIRN_AUTH_DATABASE_URL");
	const char *kek_s = getenv("CAIRN_AUTH_KEK");
	unsigned char kek[AUTH_KEK_LEN];
	bool has_kek = false;
	struct auth_key *k = NULL;
	struct db_conn *dbc = NULL;
	char *wrapped = NULL;
	struct err e;
	int rc = 1;

	log_init("auth", LOGL_INFO);
	if (!url || !*url)
		url = getenv("CAIRN_DATABASE_URL");
	if (!url || !*url) {
		fprintf(stderr, "cairn-auth rotate-key: CAIRN_DATABASE_URL is not set\n");
		return 2;
	}
	if (kek_s && *kek_s) {
		if (auth_kek_parse(kek_s, kek, &e) != STATUS_OK) {
			fprintf(stderr, "cairn-auth rotate-key: CAIRN_AUTH_KEK: %s\n", e.msg);
			return 2;
		}
		has_kek = true;
	}
	k = auth_key_generate(&e);
	dbc = k ? db_conn_new(url, &e) : NULL;
	if (!dbc || auth_key_wrap(has_kek ? kek : NULL, auth_key_kid(k), auth_key_pem(k), &wrapped,
	                          &e) != STATUS_OK) {
		fprintf(stderr, "cairn-auth rotate-key: %s\n", e.msg);
		goto out;
	}
	{
		const char *p[2] = { auth_key_kid(k), wrapped };

		/* The newest key signs; the one before stays published until its tokens
		 * expired; older ones are retired. */
		if (db_tx_begin(dbc, &e) != STATUS_OK ||
		    db_exec(dbc,
		            "INSERT INTO identity.signing_keys (kid, wrapped_key) VALUES ($1, $2)",
		            2, p, &e) != STATUS_OK ||
		    db_exec(dbc,
		            "UPDATE identity.signing_keys SET retired_at = now() WHERE retired_at "
		            "IS "
		            "NULL AND kid NOT IN (SELECT kid FROM identity.signing_keys WHERE "
		            "retired_at IS NULL ORDER BY created_at DESC LIMIT 2)",
		            0, NULL, &e) != STATUS_OK ||
		    db_tx_commit(dbc, &e) != STATUS_OK) {
			fprintf(stderr, "cairn-auth rotate-key: %s\n", e.msg);
			goto out;
		}
	}
	printf("new signing key %s; running auth services switch to it within key_check_s (30 s)\n",
	       auth_key_kid(k));
	rc = 0;
out:
	if (dbc && db_tx_is_open(dbc))
		db_tx_rollback(dbc);
	db_conn_free(dbc);
	free(wrapped);
	auth_key_free(k);
	return rc;
}

/* ---- bootstrap ---- */

static char *prompt_secret(const char *what, bool echo)
{
	struct termios old, quiet;
	char line[1100];
	bool restore = false;
	size_t n;

	if (!isatty(STDIN_FILENO))
		return NULL;
	fprintf(stderr, "%s: ", what);
	fflush(stderr);
	if (!echo && tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	return xstrdup(line);
}

int auth_bootstrap_main(int argc, char **argv)
{
	const char *url = getenv("CAIRN_AUTH_DATABASE_URL");
	const char *sqldir = getenv("CAIRN_AUTH_SQL_DIR");
	char *user = NULL, *pw = NULL, *phc = NULL, *dir;
	const char *env_user = getenv("CAIRN_BOOTSTRAP_USERNAME");
	const char *env_pw = getenv("CAIRN_BOOTSTRAP_PASSWORD");
	struct auth_app a;
	struct db_conn *dbc = NULL;
	struct err e;
	PGresult *res = NULL;
	char role[64];
	int rc = 1;

	(void)argv;
	if (argc != 2) {
		fprintf(stderr,
		        "usage: cairn-auth bootstrap   (credentials from "
		        "CAIRN_BOOTSTRAP_USERNAME/CAIRN_BOOTSTRAP_PASSWORD or the terminal)\n");
		return 2;
	}
	log_init("auth", LOGL_INFO);
	if (!url || !*url)
		url = getenv("CAIRN_DATABASE_URL");
	if (!sqldir || !*sqldir)
		sqldir = getenv("CAIRN_SQL_DIR");
	if (!url || !*url) {
		fprintf(stderr, "cairn-auth bootstrap: CAIRN_DATABASE_URL is not set\n");
		return 2;
	}
	user = env_user && *env_user ? xstrdup(env_user) : prompt_secret("username", true);
	pw = env_pw && *env_pw ? xstrdup(env_pw) : prompt_secret("password", false);
	if (!user || !pw || !*user) {
		fprintf(stderr, "cairn-auth bootstrap: set CAIRN_BOOTSTRAP_USERNAME and "
		                "CAIRN_BOOTSTRAP_PASSWORD, or run on a terminal\n");
		rc = 2;
		goto out;
	}
	if (auth_password_check_policy(user, pw, &e) != STATUS_OK) {
		fprintf(stderr, "cairn-auth bootstrap: %s\n", e.msg);
		rc = 2;
		goto out;
	}
	dbc = db_conn_new(url, &e);
	if (!dbc) {
		fprintf(stderr, "cairn-auth bootstrap: database: %s\n", e.msg);
		goto out;
	}
	dir = xasprintf("%s/auth", sqldir && *sqldir ? sqldir : "schemas/sql");
	if (svc_schema_prepare(dbc, AUTH_SCHEMA, false, true, dir, NULL, &e) != STATUS_OK) {
		fprintf(stderr, "cairn-auth bootstrap: migrations: %s\n", e.msg);
		free(dir);
		goto out;
	}
	free(dir);
	if (auth_password_hash(pw, &phc, &e) != STATUS_OK) {
		fprintf(stderr, "cairn-auth bootstrap: %s\n", e.msg);
		goto out;
	}
	memset(&a, 0, sizeof(a));
	snprintf(role, sizeof(role), "%s",
	         getenv("CAIRN_AUTH_RUNTIME_ROLE") ? getenv("CAIRN_AUTH_RUNTIME_ROLE")
	                                           : "cairn_auth_rt");
	a.cfg.runtime_role = role;
	if (*a.cfg.runtime_role && !db_ident_is_valid(a.cfg.runtime_role)) {
		fprintf(stderr,
		        "cairn-auth bootstrap: CAIRN_AUTH_RUNTIME_ROLE is not a role name\n");
		goto out;
	}
	{
		struct authn_principal pa = { .is_provider_admin = true };
		const char *params[2] = { user, phc };

		if (auth_tx_begin(&a, dbc, &pa, &e) != STATUS_OK ||
		    db_exec(dbc,
		            "INSERT INTO providers (name, display_name) SELECT 'provider', "
		            "'Provider' WHERE NOT EXISTS (SELECT 1 FROM providers)",
		            0, NULL, &e) != STATUS_OK ||
		    db_query(dbc,
		             "INSERT INTO users (tenant_id, username, display_name, role, "
		             "password_hash, password_changed_at) VALUES (NULL, $1, $1, "
		             "'provider-admin', $2, now()) ON CONFLICT DO NOTHING RETURNING id",
		             2, params, &res, &e) != STATUS_OK) {
			fprintf(stderr, "cairn-auth bootstrap: %s\n", e.msg);
			goto out;
		}
		if (PQntuples(res) == 0) {
			fprintf(stderr, "cairn-auth bootstrap: provider user '%s' already exists\n",
			        user);
			rc = 3;
			goto out;
		}
		{
			const char *ap[2] = { PQgetvalue(res, 0, 0), user };

			if (db_exec(dbc,
			            "INSERT INTO audit_log (tenant_id, actor_id, actor_name, "
			            "action, "
			            "object_type, object_id, result, source_address) VALUES (NULL, "
			            "$1::uuid, $2, 'bootstrap', 'user', $1::text, 'ok', 'local')",
			            2, ap, &e) != STATUS_OK ||
			    db_tx_commit(dbc, &e) != STATUS_OK) {
				fprintf(stderr, "cairn-auth bootstrap: %s\n", e.msg);
				goto out;
			}
		}
		printf("provider-admin '%s' created (id %s)\n", user, PQgetvalue(res, 0, 0));
	}
	rc = 0;
out:
	if (res)
		PQclear(res);
	if (dbc && db_tx_is_open(dbc))
		db_tx_rollback(dbc);
	db_conn_free(dbc);
	free(user);
	if (pw) {
		memset(pw, 0, strlen(pw));
		free(pw);
	}
	free(phc);
	return rc;
}
