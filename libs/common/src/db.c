#include "common/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/xalloc.h"

struct db_conn {
	PGconn *pg;
	bool in_tx;
	char sqlstate[6];
};

/* SQLSTATE -> status. Exact five-character codes first, then two-character classes.
 * Order matters: the first match wins. */
struct sqlstate_map {
	const char *code;
	enum status status;
	bool retriable;
};

// clang-format off
static const struct sqlstate_map sqlstate_table[] = {
	{ "23505", STATUS_CONFLICT,    false }, /* unique_violation */
	{ "23P01", STATUS_CONFLICT,    false }, /* exclusion_violation */
	{ "23503", STATUS_INVALID,     false }, /* foreign_key_violation */
	{ "23502", STATUS_INVALID,     false }, /* not_null_violation */
	{ "23514", STATUS_INVALID,     false }, /* check_violation */
	{ "22P02", STATUS_INVALID,     false }, /* invalid_text_representation */
	{ "P0001", STATUS_INVALID,     false }, /* raise_exception (trigger checks) */
	{ "02000", STATUS_NOT_FOUND,   false }, /* no_data */
	{ "40001", STATUS_UNAVAILABLE, true  }, /* serialization_failure */
	{ "40P01", STATUS_UNAVAILABLE, true  }, /* deadlock_detected */
	{ "55P03", STATUS_CONFLICT,    true  }, /* lock_not_available (NOWAIT) */
	{ "57014", STATUS_TIMEOUT,     true  }, /* query_canceled (statement_timeout) */
	{ "57P01", STATUS_UNAVAILABLE, true  }, /* admin_shutdown */
	{ "57P02", STATUS_UNAVAILABLE, true  }, /* crash_shutdown */
	{ "57P03", STATUS_UNAVAILABLE, true  }, /* cannot_connect_now */
	{ "42501", STATUS_FORBIDDEN,   false }, /* insufficient_privilege (incl. RLS) */
	{ "28",    STATUS_UNAUTHORIZED, false }, /* invalid_authorization_specification */
	{ "08",    STATUS_UNAVAILABLE, true  }, /* connection_exception */
	{ "53",    STATUS_UNAVAILABLE, true  }, /* insufficient_resources */
	{ "22",    STATUS_INVALID,     false }, /* data_exception */
	{ "23",    STATUS_INVALID,     false }, /* integrity_constraint_violation */
	{ "40",    STATUS_UNAVAILABLE, true  }, /* transaction_rollback */
};
// clang-format on

enum status db_status_from_sqlstate(const char *sqlstate, bool *retriable)
{
	bool r = false;
	enum status st = STATUS_DB;

	if (sqlstate == NULL || sqlstate[0] == '\0') {
		st = STATUS_UNAVAILABLE;
		r = true;
		goto out;
	}
	for (size_t i = 0; i < sizeof(sqlstate_table) / sizeof(sqlstate_table[0]); i++) {
		const struct sqlstate_map *m = &sqlstate_table[i];

		if (strncmp(sqlstate, m->code, strlen(m->code)) == 0) {
			st = m->status;
			r = m->retriable;
			break;
		}
	}
out:
	if (retriable != NULL)
		*retriable = r;
	return st;
}

static void notice_to_log(void *arg, const char *message)
{
	size_t n = strlen(message);

	if (n > 0 && message[n - 1] == '\n')
		n--;
	log_debug("postgres: %.*s", (int)n, message);
}

struct db_conn *db_conn_new(const char *uri, struct err *e)
{
	struct db_conn *dbc;
	PGconn *pg;

	if (uri == NULL || uri[0] == '\0') {
		err_set(e, STATUS_INVALID, "empty database URI");
		return NULL;
	}
	pg = PQconnectdb(uri);
	if (pg == NULL) {
		err_set(e, STATUS_NOMEM, "PQconnectdb returned NULL");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		/* The message never contains the password; trim libpq's trailing newline. */
		const char *msg = PQerrorMessage(pg);
		size_t n = strlen(msg);

		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			n--;
		err_set_retriable(e, STATUS_UNAVAILABLE, "cannot connect to PostgreSQL: %.*s",
		                  (int)n, msg);
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeProcessor(pg, notice_to_log, NULL);
	dbc = xcalloc(1, sizeof(*dbc));
	dbc->pg = pg;
	return dbc;
}

void db_conn_free(struct db_conn *dbc)
{
	if (dbc == NULL)
		return;
	PQfinish(dbc->pg);
	free(dbc);
}

PGconn *db_conn_get_pg(struct db_conn *dbc)
{
	return dbc->pg;
}

bool db_tx_is_open(const struct db_conn *dbc)
{
	return dbc->in_tx;
}

const char *db_conn_last_sqlstate(const struct db_conn *dbc)
{
	return dbc->sqlstate;
}

/* Turn a failed PGresult (or none) into a status; takes ownership of res. */
static enum status fail_from_result(struct db_conn *dbc, PGresult *res, const char *sql,
                                    struct err *e)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	bool retriable;
	enum status st;

	if (msg == NULL)
		msg = PQerrorMessage(dbc->pg);
	if (PQstatus(dbc->pg) != CONNECTION_OK)
		state = NULL; /* whatever the result says, the connection is gone */
	snprintf(dbc->sqlstate, sizeof(dbc->sqlstate), "%s", state != NULL ? state : "");
	st = db_status_from_sqlstate(state, &retriable);
	if (retriable)
		err_set_retriable(e, st, "SQLSTATE %s: %.180s", state != NULL ? state : "none",
		                  msg);
	else
		err_set(e, st, "SQLSTATE %s: %.180s", state != NULL ? state : "none", msg);
	(void)sql;
	PQclear(res);
	return st;
}

enum status db_query(struct db_conn *dbc, const char *sql, int nparams, const char *const *params,
                     PGresult **out, struct err *e)
{
	PGresult *res;
	ExecStatusType rs;

	*out = NULL;
	res = PQexecParams(dbc->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	rs = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK)
		return fail_from_result(dbc, res, sql, e);
	dbc->sqlstate[0] = '\0';
	*out = res;
	return STATUS_OK;
}

enum status db_exec(struct db_conn *dbc, const char *sql, int nparams, const char *const *params,
                    struct err *e)
{
	PGresult *res;
	enum status st;

	st = db_query(dbc, sql, nparams, params, &res, e);
	if (st == STATUS_OK)
		PQclear(res);
	return st;
}

enum status db_exec_script(struct db_conn *dbc, const char *sql, struct err *e)
{
	PGresult *res;
	ExecStatusType rs;

	res = PQexec(dbc->pg, sql);
	rs = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK && rs != PGRES_EMPTY_QUERY)
		return fail_from_result(dbc, res, sql, e);
	PQclear(res);
	dbc->sqlstate[0] = '\0';
	return STATUS_OK;
}

enum status db_ping(struct db_conn *dbc, struct err *e)
{
	if (PQstatus(dbc->pg) != CONNECTION_OK) {
		PQreset(dbc->pg);
		dbc->in_tx = false;
		if (PQstatus(dbc->pg) != CONNECTION_OK)
			return err_set_retriable(e, STATUS_UNAVAILABLE,
			                         "PostgreSQL connection lost and reset failed");
	}
	return db_exec(dbc, "SELECT 1", 0, NULL, e);
}

enum status db_tx_begin(struct db_conn *dbc, struct err *e)
{
	enum status st;

	if (dbc->in_tx)
		return err_set(e, STATUS_INVALID, "transaction already open");
	if (PQstatus(dbc->pg) != CONNECTION_OK) {
		/* A previous failure broke the connection: reconnect before starting afresh. */
		PQreset(dbc->pg);
		if (PQstatus(dbc->pg) != CONNECTION_OK)
			return err_set_retriable(e, STATUS_UNAVAILABLE,
			                         "PostgreSQL connection lost and reset failed");
	}
	st = db_exec(dbc, "BEGIN", 0, NULL, e);
	if (st == STATUS_OK)
		dbc->in_tx = true;
	return st;
}

enum status db_tx_commit(struct db_conn *dbc, struct err *e)
{
	PGresult *res;
	enum status st;

	if (!dbc->in_tx)
		return err_set(e, STATUS_INVALID, "no transaction open");
	dbc->in_tx = false;
	st = db_query(dbc, "COMMIT", 0, NULL, &res, e);
	if (st != STATUS_OK)
		return st;
	/* COMMIT of a failed transaction answers ROLLBACK, not an error. */
	if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		PQclear(res);
		return err_set(e, STATUS_DB, "transaction was aborted; COMMIT rolled back");
	}
	PQclear(res);
	return STATUS_OK;
}

void db_tx_rollback(struct db_conn *dbc)
{
	PGresult *res;

	dbc->in_tx = false;
	if (PQstatus(dbc->pg) != CONNECTION_OK)
		return;
	res = PQexec(dbc->pg, "ROLLBACK");
	PQclear(res);
}

enum status db_tx_set_local(struct db_conn *dbc, const char *name, const char *value, struct err *e)
{
	const char *params[2] = { name, value };

	if (!dbc->in_tx)
		return err_set(e, STATUS_INVALID, "set_local %s outside a transaction", name);
	return db_exec(dbc, "SELECT set_config($1, $2, true)", 2, params, e);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

enum status db_tx_run(struct db_conn *dbc, db_tx_fn fn, void *user, int max_attempts, struct err *e)
{
	long backoff = 10;
	enum status st = STATUS_INTERNAL;

	if (max_attempts <= 0)
		max_attempts = 5;
	for (int attempt = 1; attempt <= max_attempts; attempt++) {
		struct err le;

		err_clear(&le);
		st = db_tx_begin(dbc, &le);
		if (st == STATUS_OK) {
			st = fn(dbc, user, &le);
			if (st == STATUS_OK)
				st = db_tx_commit(dbc, &le);
			else
				db_tx_rollback(dbc);
		}
		if (st == STATUS_OK)
			return STATUS_OK;
		if (e != NULL)
			*e = le;
		if (!le.retriable || attempt == max_attempts)
			break;
		sleep_ms(backoff);
		backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
	}
	return st;
}

bool db_ident_is_valid(const char *s)
{
	size_t n;

	if (s == NULL || s[0] == '\0')
		return false;
	n = strlen(s);
	if (n > 63 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

enum status db_ensure_ddl(struct db_conn *dbc, const char *schema, const char *ddl, struct err *e)
{
	char *sql;
	enum status st;

	if (!db_ident_is_valid(schema))
		return err_set(e, STATUS_INVALID, "bad schema name");
	sql = xasprintf("BEGIN;"
	                "SELECT pg_advisory_xact_lock(hashtext('cairn.ddl.%s'));"
	                "CREATE SCHEMA IF NOT EXISTS %s;"
	                "SET LOCAL search_path TO %s;%sCOMMIT;",
	                schema, schema, schema, ddl);
	st = db_exec_script(dbc, sql, e);
	free(sql);
	if (st != STATUS_OK)
		db_tx_rollback(dbc);
	return st;
}
