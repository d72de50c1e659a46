/* store.c - the SQL of auth. PostgreSQL renders the JSON of rows (row_to_json), so the
 * column list of a resource is written once. */
#include "store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define USER_COLS                                                                                  \
	"id, tenant_id, username, display_name, email, enabled, role, created_at, updated_at, "    \
	"password_changed_at"
#define TENANT_COLS                                                                                \
	"id, name, display_name, enabled, lease_expires_at, contact_email, created_at, updated_at"

static void copy_field(char *dst, size_t cap, PGresult *res, int row, int col)
{
	snprintf(dst, cap, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static bool is_true(PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static int64_t get_i64(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Run a query whose one column is JSON text. single: exactly one row or NOT_FOUND. */
static enum status query_json(struct db_conn *dbc, const char *sql, int n, const char *const *p,
                              bool single, json_t **out, struct err *e)
{
	PGresult *res = NULL;
	json_error_t jerr;
	enum status st;

	*out = NULL;
	st = db_query(dbc, sql, n, p, &res, e);
	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return single ? err_set(e, STATUS_NOT_FOUND, "not found") : STATUS_OK;
	}
	*out = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
	PQclear(res);
	if (!*out)
		return err_set(e, STATUS_INTERNAL, "store: bad JSON from PostgreSQL: %s",
		               jerr.text);
	return STATUS_OK;
}

/* Run an UPDATE/DELETE ... RETURNING epoch; no row = NOT_FOUND. */
static enum status returning_epoch(struct db_conn *dbc, const char *sql, int n,
                                   const char *const *p, int64_t *epoch, struct err *e)
{
	PGresult *res = NULL;
	enum status st = db_query(dbc, sql, n, p, &res, e);

	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 0)
		st = err_set(e, STATUS_NOT_FOUND, "not found");
	else if (epoch)
		*epoch = get_i64(res, 0, 0);
	PQclear(res);
	return st;
}

void store_user_cleanup(struct store_user *u)
{
	if (!u)
		return;
	free(u->password_hash);
	u->password_hash = NULL;
}

int store_role_rank(unsigned roles)
{
	if (roles & AUTHN_ROLE_PROVIDER_ADMIN)
		return 5;
	if (roles & AUTHN_ROLE_TENANT_ADMIN)
		return 4;
	if (roles & AUTHN_ROLE_BACKUP_OPERATOR)
		return 3;
	if (roles & AUTHN_ROLE_RESTORE_OPERATOR)
		return 2;
	if (roles & AUTHN_ROLE_VIEWER)
		return 1;
	return 0;
}

bool store_username_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isalnum(c) || c == '.' || c == '_' || c == '@' || c == '-') || c >= 0x80)
			return false;
	}
	return true;
}

bool store_tenant_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)))
			return false;
	}
	return true;
}

enum status store_caller_check(struct db_conn *dbc, const struct authn_principal *p, struct err *e)
{
	char epoch[24], tepoch[24];
	const char *params[4];
	PGresult *res = NULL;
	enum status st;

	snprintf(epoch, sizeof(epoch), "%lld", (long long)p->epoch);
	snprintf(tepoch, sizeof(tepoch), "%lld", (long long)p->tenant_epoch);
	params[0] = p->user_id;
	params[1] = epoch;
	params[2] = tepoch;
	params[3] = p->session_id[0] ? p->session_id : NULL;
	st = db_query(dbc,
	              "SELECT u.enabled AND coalesce(t.enabled, true) "
	              "   AND (t.lease_expires_at IS NULL OR t.lease_expires_at > now()) "
	              "   AND u.epoch <= $2::bigint AND coalesce(t.epoch, 0) <= $3::bigint "
	              "   AND ($4::uuid IS NULL OR NOT EXISTS (SELECT 1 FROM refresh_sessions s "
	              "        WHERE s.family_id = $4::uuid AND s.revoked_at IS NOT NULL)) "
	              "   AND ($4::uuid IS NULL OR NOT EXISTS (SELECT 1 FROM api_tokens a "
	              "        WHERE a.id = $4::uuid AND (a.revoked_at IS NOT NULL "
	              "                                   OR a.expires_at <= now()))) "
	              "FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1",
	              4, params, &res, e);
	if (st != STATUS_OK)
		return st == STATUS_INVALID ? STATUS_UNAUTHORIZED : st;
	if (PQntuples(res) != 1 || !is_true(res, 0, 0))
		st = err_set(e, STATUS_UNAUTHORIZED, "caller revoked");
	PQclear(res);
	return st;
}

/* ---- users ---- */

#define USER_LOAD                                                                                  \
	"SELECT u.id, u.tenant_id, u.username, u.password_hash, u.role, u.enabled, "               \
	"       coalesce(t.enabled, true), "                                                       \
	"       (t.lease_expires_at IS NOT NULL AND t.lease_expires_at <= now()), "                \
	"       u.epoch, coalesce(t.epoch, 0) "                                                    \
	"FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id "

static void user_from_row(PGresult *res, struct store_user *u)
{
	memset(u, 0, sizeof(*u));
	copy_field(u->id, sizeof(u->id), res, 0, 0);
	copy_field(u->tenant_id, sizeof(u->tenant_id), res, 0, 1);
	copy_field(u->username, sizeof(u->username), res, 0, 2);
	u->password_hash = PQgetisnull(res, 0, 3) ? NULL : xstrdup(PQgetvalue(res, 0, 3));
	u->role = authn_role_parse(PQgetvalue(res, 0, 4));
	u->enabled = is_true(res, 0, 5);
	u->tenant_enabled = is_true(res, 0, 6);
	u->lease_expired = is_true(res, 0, 7);
	u->epoch = get_i64(res, 0, 8);
	u->tenant_epoch = get_i64(res, 0, 9);
}

enum status store_user_for_login(struct db_conn *dbc, const char *tenant, const char *username,
                                 struct store_user *u, bool *found, struct err *e)
{
	PGresult *res = NULL;
	enum status st;

	memset(u, 0, sizeof(*u));
	*found = false;
	if (tenant && *tenant) {
		const char *p[2] = { tenant, username };

		st = db_query(dbc, USER_LOAD "WHERE t.name = $1 AND lower(u.username) = lower($2)",
		              2, p, &res, e);
	} else {
		const char *p[1] = { username };

		st = db_query(dbc,
		              USER_LOAD
		              "WHERE u.tenant_id IS NULL AND lower(u.username) = lower($1)",
		              1, p, &res, e);
	}
	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 1) {
		user_from_row(res, u);
		*found = true;
	}
	PQclear(res);
	return STATUS_OK;
}

enum status store_user_by_id(struct db_conn *dbc, const char *id, struct store_user *u,
                             struct err *e)
{
	PGresult *res = NULL;
	const char *p[1] = { id };
	enum status st;

	memset(u, 0, sizeof(*u));
	st = db_query(dbc, USER_LOAD "WHERE u.id = $1", 1, p, &res, e);
	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 1)
		user_from_row(res, u);
	else
		st = err_set(e, STATUS_NOT_FOUND, "not found");
	PQclear(res);
	return st;
}

enum status store_user_json(struct db_conn *dbc, const char *id, json_t **out, struct err *e)
{
	const char *p[1] = { id };

	return query_json(dbc,
	                  "SELECT row_to_json(x)::text FROM (SELECT " USER_COLS
	                  " FROM users WHERE id = $1) x",
	                  1, p, true, out, e);
}

enum status store_user_list(struct db_conn *dbc, const char *tenant_id, json_t **out, struct err *e)
{
	const char *p[1] = { tenant_id };

	return query_json(dbc,
	                  "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY "
	                  "x.username), '[]'))::text FROM (SELECT " USER_COLS
	                  " FROM users WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid)) x",
	                  1, p, true, out, e);
}

enum status store_user_insert(struct db_conn *dbc, const struct store_new_user *nu, json_t **out,
                              struct err *e)
{
	const char *p[8] = { nu->id,
		             nu->tenant_id,
		             nu->username,
		             nu->display_name ? nu->display_name : "",
		             nu->email,
		             authn_role_name(nu->role),
		             nu->password_hash,
		             nu->enabled ? "true" : "false" };
	enum status st;

	st = query_json(
	        dbc,
	        "WITH x AS (INSERT INTO users (id, tenant_id, username, display_name, email, "
	        "role, password_hash, enabled, password_changed_at) VALUES ($1, $2, $3, $4, "
	        "$5, $6, $7, $8::boolean, now()) RETURNING " USER_COLS
	        ") SELECT row_to_json(x)::text FROM x",
	        8, p, true, out, e);
	if (st == STATUS_CONFLICT)
		return err_set(e, STATUS_CONFLICT, "a user with this username already exists");
	/* The tenant is not visible (another tenant's, or missing): like a missing id. */
	if (st == STATUS_INVALID || st == STATUS_FORBIDDEN)
		return err_set(e, STATUS_NOT_FOUND, "not found");
	return st;
}

enum status store_user_update(struct db_conn *dbc, const char *id, const char *display_name,
                              const char *email, bool set_email, unsigned new_role, int64_t *epoch,
                              struct err *e)
{
	const char *p[5] = { id, display_name, set_email ? "t" : "f", email,
		             new_role ? authn_role_name(new_role) : NULL };

	return returning_epoch(dbc,
	                       "UPDATE users SET display_name = coalesce($2, display_name), "
	                       "email = CASE WHEN $3::boolean THEN nullif($4, '') ELSE email END, "
	                       "role = coalesce($5, role), "
	                       "epoch = epoch + CASE WHEN $5 IS NOT NULL THEN 1 ELSE 0 END, "
	                       "updated_at = now() WHERE id = $1 RETURNING epoch",
	                       5, p, epoch, e);
}

enum status store_user_set_enabled(struct db_conn *dbc, const char *id, bool enabled,
                                   int64_t *epoch, struct err *e)
{
	const char *p[2] = { id, enabled ? "true" : "false" };

	return returning_epoch(dbc,
	                       "UPDATE users SET enabled = $2::boolean, "
	                       "epoch = epoch + CASE WHEN $2::boolean THEN 0 ELSE 1 END, "
	                       "updated_at = now() WHERE id = $1 RETURNING epoch",
	                       2, p, epoch, e);
}

enum status store_user_delete(struct db_conn *dbc, const char *id, int64_t *epoch, struct err *e)
{
	const char *p[1] = { id };

	return returning_epoch(dbc, "DELETE FROM users WHERE id = $1 RETURNING epoch + 1", 1, p,
	                       epoch, e);
}

enum status store_user_set_password(struct db_conn *dbc, const char *id, const char *phc,
                                    int64_t *epoch, struct err *e)
{
	const char *p[2] = { id, phc };

	return returning_epoch(
	        dbc,
	        "UPDATE users SET password_hash = $2, password_changed_at = now(), "
	        "epoch = epoch + 1, updated_at = now() WHERE id = $1 RETURNING epoch",
	        2, p, epoch, e);
}

/* ---- tenants ---- */

enum status store_tenant_insert(struct db_conn *dbc, const char *id, const struct store_tenant *t,
                                json_t **out, struct err *e)
{
	const char *p[5] = { id, t->name, t->display_name,
		             t->contact_email && *t->contact_email ? t->contact_email : NULL,
		             t->lease };
	enum status st;

	st = query_json(
	        dbc,
	        "WITH x AS (INSERT INTO tenants (id, name, display_name, contact_email, "
	        "lease_expires_at) VALUES ($1, $2, $3, $4, $5::timestamptz) RETURNING " TENANT_COLS
	        ") SELECT row_to_json(x)::text FROM x",
	        5, p, true, out, e);
	if (st == STATUS_CONFLICT)
		return err_set(e, STATUS_CONFLICT, "a tenant with this name already exists");
	return st;
}

enum status store_tenant_list(struct db_conn *dbc, json_t **out, struct err *e)
{
	return query_json(dbc,
	                  "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY x.name), "
	                  "'[]'))::text FROM (SELECT " TENANT_COLS " FROM tenants) x",
	                  0, NULL, true, out, e);
}

enum status store_tenant_json(struct db_conn *dbc, const char *id, json_t **out, struct err *e)
{
	const char *p[1] = { id };

	return query_json(dbc,
	                  "SELECT row_to_json(x)::text FROM (SELECT " TENANT_COLS
	                  " FROM tenants WHERE id = $1) x",
	                  1, p, true, out, e);
}

enum status store_tenant_update(struct db_conn *dbc, const char *id, const struct store_tenant *t,
                                int64_t *epoch, struct err *e)
{
	const char *p[6] = { id,
		             t->display_name,
		             t->set_contact ? "t" : "f",
		             t->contact_email,
		             t->set_lease ? "t" : "f",
		             t->lease };

	return returning_epoch(
	        dbc,
	        "UPDATE tenants SET display_name = coalesce($2, display_name), "
	        "contact_email = CASE WHEN $3::boolean THEN nullif($4, '') ELSE contact_email END, "
	        "lease_expires_at = CASE WHEN $5::boolean THEN $6::timestamptz "
	        "                   ELSE lease_expires_at END, "
	        "epoch = epoch + CASE WHEN $5::boolean THEN 1 ELSE 0 END, "
	        "updated_at = now() WHERE id = $1 RETURNING epoch",
	        6, p, epoch, e);
}

enum status store_tenant_set_enabled(struct db_conn *dbc, const char *id, bool enabled,
                                     int64_t *epoch, struct err *e)
{
	const char *p[2] = { id, enabled ? "true" : "false" };

	return returning_epoch(dbc,
	                       "UPDATE tenants SET enabled = $2::boolean, "
	                       "epoch = epoch + CASE WHEN $2::boolean THEN 0 ELSE 1 END, "
	                       "updated_at = now() WHERE id = $1 RETURNING epoch",
	                       2, p, epoch, e);
}

enum status store_tenant_delete(struct db_conn *dbc, const char *id, int64_t *epoch, struct err *e)
{
	const char *p[1] = { id };

	return returning_epoch(dbc, "DELETE FROM tenants WHERE id = $1 RETURNING epoch + 1", 1, p,
	                       epoch, e);
}

/* ---- refresh sessions ---- */

enum status store_refresh_insert(struct db_conn *dbc, const char *family,
                                 const struct store_user *u, const char *hash, long long ttl_s,
                                 const char *source, struct err *e)
{
	char ttl[24];
	const char *p[6] = {
		family, u->tenant_id[0] ? u->tenant_id : NULL, u->id, hash, ttl, source
	};

	snprintf(ttl, sizeof(ttl), "%lld", ttl_s);
	return db_exec(dbc,
	               "INSERT INTO refresh_sessions (family_id, tenant_id, user_id, token_hash, "
	               "expires_at, source_address) VALUES ($1, $2, $3, $4, now() + "
	               "make_interval(secs => $5::bigint), $6)",
	               6, p, e);
}

enum status store_refresh_find(struct db_conn *dbc, const char *hash, struct store_refresh *rs,
                               bool *found, struct err *e)
{
	const char *p[1] = { hash };
	PGresult *res = NULL;
	enum status st;

	memset(rs, 0, sizeof(*rs));
	*found = false;
	st = db_query(dbc,
	              "SELECT id, family_id, tenant_id, user_id, "
	              "       expires_at > now() AND revoked_at IS NULL "
	              "FROM refresh_sessions WHERE token_hash = $1",
	              1, p, &res, e);
	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 1) {
		copy_field(rs->id, sizeof(rs->id), res, 0, 0);
		copy_field(rs->family_id, sizeof(rs->family_id), res, 0, 1);
		copy_field(rs->tenant_id, sizeof(rs->tenant_id), res, 0, 2);
		copy_field(rs->user_id, sizeof(rs->user_id), res, 0, 3);
		rs->usable = is_true(res, 0, 4);
		*found = true;
	}
	PQclear(res);
	return STATUS_OK;
}

enum status store_refresh_use(struct db_conn *dbc, const char *id, bool *reused, struct err *e)
{
	const char *p[1] = { id };
	PGresult *res = NULL;
	enum status st;

	/* Atomic: of two concurrent uses exactly one wins; the other is a reuse. */
	st = db_query(dbc,
	              "UPDATE refresh_sessions SET used_at = now() WHERE id = $1 "
	              "AND used_at IS NULL AND revoked_at IS NULL RETURNING id",
	              1, p, &res, e);
	if (st != STATUS_OK)
		return st;
	*reused = PQntuples(res) == 0;
	PQclear(res);
	return STATUS_OK;
}

enum status store_refresh_revoke_family(struct db_conn *dbc, const char *family, struct err *e)
{
	const char *p[1] = { family };

	return db_exec(dbc,
	               "UPDATE refresh_sessions SET revoked_at = now() WHERE family_id = $1 "
	               "AND revoked_at IS NULL",
	               1, p, e);
}

/* ---- API tokens ---- */

#define TOKEN_COLS                                                                                 \
	"id, user_id, tenant_id, name, role, created_at, expires_at, last_used_at, revoked_at"

enum status store_apitoken_insert(struct db_conn *dbc, const char *id,
                                  const struct authn_principal *p, const char *name, unsigned role,
                                  const char *hash, int64_t days, json_t **out, struct err *e)
{
	char d[24];
	const char *params[7] = { id,
		                  p->user_id,
		                  p->is_provider_admin ? NULL : p->tenant_id,
		                  name,
		                  authn_role_name(role),
		                  hash,
		                  d };

	snprintf(d, sizeof(d), "%lld", (long long)days);
	return query_json(dbc,
	                  "WITH x AS (INSERT INTO api_tokens (id, user_id, tenant_id, name, role, "
	                  "token_hash, expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + "
	                  "make_interval(days => $7::int)) RETURNING " TOKEN_COLS
	                  ") SELECT row_to_json(x)::text FROM x",
	                  7, params, true, out, e);
}

enum status store_apitoken_find(struct db_conn *dbc, const char *hash, struct store_apitoken *at,
                                bool *found, struct err *e)
{
	const char *p[1] = { hash };
	PGresult *res = NULL;
	enum status st;

	memset(at, 0, sizeof(*at));
	*found = false;
	st = db_query(dbc,
	              "SELECT id, tenant_id, user_id, role, "
	              "       expires_at > now() AND revoked_at IS NULL "
	              "FROM api_tokens WHERE token_hash = $1",
	              1, p, &res, e);
	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 1) {
		copy_field(at->id, sizeof(at->id), res, 0, 0);
		copy_field(at->tenant_id, sizeof(at->tenant_id), res, 0, 1);
		copy_field(at->user_id, sizeof(at->user_id), res, 0, 2);
		at->role = authn_role_parse(PQgetvalue(res, 0, 3));
		at->usable = is_true(res, 0, 4);
		*found = true;
	}
	PQclear(res);
	return STATUS_OK;
}

enum status store_apitoken_touch(struct db_conn *dbc, const char *id, struct err *e)
{
	const char *p[1] = { id };

	return db_exec(dbc, "UPDATE api_tokens SET last_used_at = now() WHERE id = $1", 1, p, e);
}

enum status store_apitoken_list(struct db_conn *dbc, const struct authn_principal *p, json_t **out,
                                struct err *e)
{
	/* admins see the tokens of their scope (RLS); everyone else their own */
	const char *params[2] = { p->user_id, (p->roles & AUTHN_ROLES_ADMIN) ? "true" : "false" };

	return query_json(dbc,
	                  "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY "
	                  "x.created_at DESC), '[]'))::text FROM (SELECT " TOKEN_COLS
	                  " FROM api_tokens WHERE $2::boolean OR user_id = $1) x",
	                  2, params, true, out, e);
}

enum status store_apitoken_revoke(struct db_conn *dbc, const char *id,
                                  const struct authn_principal *p, struct err *e)
{
	const char *params[3] = { id, p->user_id,
		                  (p->roles & AUTHN_ROLES_ADMIN) ? "true" : "false" };
	PGresult *res = NULL;
	enum status st;

	st = db_query(dbc,
	              "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
	              "WHERE id = $1 AND ($3::boolean OR user_id = $2) RETURNING id",
	              3, params, &res, e);
	if (st != STATUS_OK)
		return st;
	if (PQntuples(res) == 0)
		st = err_set(e, STATUS_NOT_FOUND, "not found");
	PQclear(res);
	return st;
}

/* ---- audit ---- */

enum status store_audit_add(struct db_conn *dbc, const struct store_audit *au, const char *result,
                            struct err *e)
{
	const char *p[9] = { au->tenant_id, au->actor_id,    au->actor_name,
		             au->action,    au->object_type, au->object_id,
		             result,        au->source,      au->request_id };

	return db_exec(dbc,
	               "INSERT INTO audit_log (tenant_id, actor_id, actor_name, action, "
	               "object_type, object_id, result, source_address, request_id) VALUES "
	               "($1, $2, coalesce($3, (SELECT username FROM users WHERE id = $2)), $4, $5, "
	               "$6, $7, $8, $9)",
	               9, p, e);
}

#define AUDIT_SELECT                                                                               \
	"SELECT id, at, tenant_id, actor_id, actor_name, action, object_type, object_id, result, " \
	"source_address, request_id FROM audit_log "                                               \
	"WHERE ($1::text IS NULL OR action = $1) AND ($2::uuid IS NULL OR actor_id = $2::uuid) "   \
	"AND ($3::text IS NULL OR object_id = $3) AND ($4::text IS NULL OR result = $4) "          \
	"AND ($5::uuid IS NULL OR tenant_id = $5::uuid) "                                          \
	"AND ($6::timestamptz IS NULL OR at >= $6::timestamptz) "                                  \
	"AND ($7::timestamptz IS NULL OR at < $7::timestamptz) "                                   \
	"ORDER BY at DESC, id DESC LIMIT $8::int"

static void audit_params(const struct store_audit_query *q, char lim[16], const char *p[8])
{
	snprintf(lim, 16, "%d", q->limit > 0 ? q->limit : 100);
	p[0] = q->action;
	p[1] = q->actor_id;
	p[2] = q->object_id;
	p[3] = q->result;
	p[4] = q->tenant_id;
	p[5] = q->from;
	p[6] = q->to;
	p[7] = lim;
}

enum status store_audit_json(struct db_conn *dbc, const struct store_audit_query *q, json_t **out,
                             struct err *e)
{
	char lim[16];
	const char *p[8];

	audit_params(q, lim, p);
	return query_json(
	        dbc,
	        "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY x.at DESC, "
	        "x.id DESC), '[]'))::text FROM (" AUDIT_SELECT ") x",
	        8, p, true, out, e);
}

/* One CSV field (RFC 4180), with a leading quote on cells a spreadsheet would evaluate. */
static void csv_field(struct buf *b, const char *s)
{
	bool formula = s[0] != '\0' && strchr("=+-@\t", s[0]) != NULL;
	bool quote = formula || strpbrk(s, ",\"\r\n") != NULL;

	if (!quote) {
		buf_puts(b, s);
		return;
	}
	buf_puts(b, "\"");
	if (formula)
		buf_puts(b, "'");
	for (; *s; s++) {
		if (*s == '"')
			buf_puts(b, "\"\"");
		else
			buf_append(b, s, 1);
	}
	buf_puts(b, "\"");
}

enum status store_audit_csv(struct db_conn *dbc, const struct store_audit_query *q, struct buf *out,
                            struct err *e)
{
	char lim[16];
	const char *p[8];
	PGresult *res = NULL;
	enum status st;

	audit_params(q, lim, p);
	st = db_query(dbc, AUDIT_SELECT, 8, p, &res, e);
	if (st != STATUS_OK)
		return st;
	buf_puts(out, "id,at,tenant_id,actor_id,actor_name,action,object_type,object_id,result,"
	              "source_address,request_id\r\n");
	for (int r = 0; r < PQntuples(res); r++) {
		for (int c = 0; c < PQnfields(res); c++) {
			if (c)
				buf_puts(out, ",");
			csv_field(out, PQgetisnull(res, r, c) ? "" : PQgetvalue(res, r, c));
		}
		buf_puts(out, "\r\n");
	}
	PQclear(res);
	return STATUS_OK;
}
