/* api.c - the REST API of auth: parse and check the request, run it in one transaction
 * under the caller's RLS context, audit it, publish identity events through the outbox,
 * map the status to a response. SQL lives in store.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/authn.h"
#include "common/event.h"
#include "common/http.h"
#include "common/jsonh.h"
#include "common/log.h"
#include "common/outbox.h"
#include "common/xalloc.h"

#include "auth.h"
#include "password.h"
#include "store.h"

#define ROLES(m) ((unsigned)(m) << HTTP_ROUTE_USER_SHIFT)
/* Route flag: the route names a user ({id}); a caller whose role does not allow the route
 * learns nothing about the object: another tenant's or a missing id answers 404 (the same
 * bytes), and only an object of the caller's own tenant answers 403. */
#define OBJ_USER (1u << 24)
/* The same for a route that names a tenant ({id}): a tenant user's own tenant answers 403,
 * any other id 404 (tenant users never see other tenants). */
#define OBJ_TENANT (1u << 25)
#define GENERIC_LOGIN_FAILURE "invalid tenant, username or password"

/* ---- request context ---- */

struct rq {
	struct auth_app *a;
	struct http_req *req;
	struct db_conn *dbc;
	const struct authn_principal *p; /* NULL in the login phase */
	struct err e;
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void reply_not_found(struct http_req *req)
{
	/* One body for "missing" and "another tenant's": never a hint. */
	http_reply_error(req, 404, "not_found", "not found");
}

static void reply_status(struct rq *r, enum status st)
{
	if (st == STATUS_NOT_FOUND) {
		reply_not_found(r->req);
		return;
	}
	if (st == STATUS_UNAUTHORIZED) {
		http_reply_header(r->req, "WWW-Authenticate", "Bearer");
		http_reply_error(r->req, 401, "unauthorized", "authentication required");
		return;
	}
	if (st == STATUS_FORBIDDEN) {
		http_reply_error(r->req, 403, "forbidden", "not allowed for your role");
		return;
	}
	http_reply_status(r->req, st, &r->e);
}

static const char *result_of(enum status st)
{
	if (st == STATUS_OK)
		return "ok";
	if (st == STATUS_FORBIDDEN || st == STATUS_UNAUTHORIZED || st == STATUS_NOT_FOUND)
		return "denied";
	return "failed";
}

static struct store_audit audit_of(struct rq *r, const char *action, const char *otype,
                                   const char *oid, const char *tenant)
{
	struct store_audit au = {
		.tenant_id = tenant,
		.actor_id = r->p ? r->p->user_id : NULL,
		.action = action,
		.object_type = otype,
		.object_id = oid,
		.source = http_req_remote(r->req),
		.request_id = http_req_id(r->req),
	};

	return au;
}

/* Open the request's transaction under the caller's context and check that the caller
 * is still enabled with the epoch of the token (PostgreSQL is authoritative here). */
static bool rq_open(struct rq *r, struct http_req *req, void *ud, bool login_phase)
{
	enum status st;

	memset(r, 0, sizeof(*r));
	r->a = ud;
	r->req = req;
	r->p = login_phase ? NULL : http_req_ctx(req);
	if (!login_phase && !r->p) {
		reply_status(r, STATUS_UNAUTHORIZED);
		return false;
	}
	r->dbc = auth_db_get(r->a, &r->e);
	if (!r->dbc) {
		http_reply_status(req, STATUS_UNAVAILABLE, &r->e);
		return false;
	}
	st = auth_tx_begin(r->a, r->dbc, r->p, &r->e);
	if (st == STATUS_OK && r->p)
		st = store_caller_check(r->dbc, r->p, &r->e);
	if (st != STATUS_OK) {
		db_tx_rollback(r->dbc);
		reply_status(r, st);
		auth_db_put(r->a, r->dbc);
		return false;
	}
	return true;
}

/* Finish: commit and reply with body (owned), or roll back, audit the failure in a fresh
 * transaction (when action is given) and reply with the error. */
static void rq_done(struct rq *r, enum status st, unsigned code, json_t *body,
                    const struct store_audit *au)
{
	if (st == STATUS_OK) {
		if (au)
			st = store_audit_add(r->dbc, au, "ok", &r->e);
		if (st == STATUS_OK)
			st = db_tx_commit(r->dbc, &r->e);
		if (st == STATUS_OK) {
			if (au)
				svc_kick_outbox(r->a->svc);
			if (body)
				http_reply_json(r->req, code, body);
			else
				http_reply_raw(r->req, code, HTTP_CT_JSON, NULL, 0);
			auth_db_put(r->a, r->dbc);
			return;
		}
	}
	json_decref(body);
	db_tx_rollback(r->dbc);
	if (au) {
		struct err e2;

		if (auth_tx_begin(r->a, r->dbc, r->p, &e2) == STATUS_OK &&
		    store_audit_add(r->dbc, au, result_of(st), &e2) == STATUS_OK &&
		    db_tx_commit(r->dbc, &e2) == STATUS_OK)
			e2.code = STATUS_OK;
		else
			db_tx_rollback(r->dbc);
	}
	reply_status(r, st);
	auth_db_put(r->a, r->dbc);
}

/* Parse the body as an object with only `allowed` members. */
static enum status body_of(struct rq *r, const char *const *allowed, json_t **out)
{
	enum status st = http_req_json(r->req, out, &r->e);

	if (st != STATUS_OK)
		return st;
	st = jsonh_check_fields(*out, allowed, &r->e);
	if (st != STATUS_OK) {
		json_decref(*out);
		*out = NULL;
	}
	return st;
}

/* Path id: must be a uuid; anything else is "not found" like a missing id. */
static const char *path_id(struct rq *r)
{
	const char *id = http_req_param(r->req, "id");

	return jsonh_uuid_valid(id) ? id : NULL;
}

static enum status emit(struct rq *r, const char *type, const char *key, const char *tenant,
                        json_t *data)
{
	struct event ev;
	enum status st;

	event_init(&ev);
	st = event_make(&ev, type, AUTH_SOURCE, key, tenant, data, &r->e);
	if (st == STATUS_OK)
		st = outbox_add(r->dbc, AUTH_SCHEMA, &ev, AUTHN_TOPIC, key, &r->e);
	event_cleanup(&ev);
	return st;
}

static enum status emit_user(struct rq *r, const char *uid, const char *tid, int64_t epoch,
                             const char *change, const char *role)
{
	json_t *d = json_pack("{s:s, s:s?, s:I, s:s}", "user_id", uid, "tenant_id", tid, "epoch",
	                      (json_int_t)epoch, "change", change);

	if (tid == NULL)
		json_object_set_new(d, "tenant_id", json_null());
	if (role)
		json_object_set_new(d, "role", json_string(role));
	return emit(r, AUTHN_EVENT_USER_CHANGED, uid, tid, d);
}

static enum status emit_tenant(struct rq *r, const char *tid, int64_t epoch, const char *change,
                               const char *name)
{
	json_t *d = json_pack("{s:s, s:I, s:s}", "tenant_id", tid, "epoch", (json_int_t)epoch,
	                      "change", change);

	if (name)
		json_object_set_new(d, "name", json_string(name));
	return emit(r, AUTHN_EVENT_TENANT_CHANGED, tid, tid, d);
}

static enum status emit_session_revoked(struct rq *r, const char *sid, const char *tid)
{
	json_t *d = json_pack("{s:s, s:I}", "session_id", sid, "until",
	                      (json_int_t)(now_s() + r->a->cfg.access_ttl_s + 60));

	return emit(r, AUTHN_EVENT_SESSION_REVOKED, sid, tid, d);
}

/* ---- the before hook: bearer token + role of the route ---- */

static void principal_free(void *p)
{
	free(p);
}

static int before(struct http_req *req, void *ud)
{
	struct auth_app *a = ud;
	struct authn_principal *p = xmalloc(sizeof(*p));
	unsigned flags = http_req_route_flags(req);
	unsigned need = (flags >> HTTP_ROUTE_USER_SHIFT) & AUTHN_ROLE__ALL;
	struct err e;
	enum status st;

	st = authn_verify_header(a->verifier, http_req_header(req, "Authorization"), now_s(), p,
	                         &e);
	if (st != STATUS_OK) {
		free(p);
		log_debug("auth: %s", e.msg);
		if (st == STATUS_UNAVAILABLE) {
			http_reply_error(req, 503, "unavailable", "identity state unavailable");
			return 1;
		}
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "unauthorized", "authentication required");
		return 1;
	}
	if (need && !authn_principal_has_role(p, need) && (flags & OBJ_USER)) {
		const char *id = http_req_param(req, "id");
		struct store_user u;
		struct rq r;

		http_req_set_ctx(req, p, principal_free);
		if (!rq_open(&r, req, ud, false))
			return 1;
		/* RLS shows only the caller's tenant: anything else is "missing". */
		st = id ? store_user_by_id(r.dbc, id, &u, &r.e) : STATUS_NOT_FOUND;
		if (st == STATUS_OK) {
			if (!r.p->is_provider_admin && strcmp(u.tenant_id, r.p->tenant_id) != 0)
				st = STATUS_NOT_FOUND;
			store_user_cleanup(&u);
		}
		db_tx_rollback(r.dbc);
		auth_db_put(r.a, r.dbc);
		if (st == STATUS_OK)
			http_reply_error(req, 403, "forbidden", "not allowed for your role");
		else
			reply_status(&r, st);
		return 1;
	}
	if (need && !authn_principal_has_role(p, need) && (flags & OBJ_TENANT)) {
		const char *id = http_req_param(req, "id");
		bool own = id && p->tenant_id[0] && strcmp(id, p->tenant_id) == 0;

		free(p);
		if (own)
			http_reply_error(req, 403, "forbidden", "not allowed for your role");
		else
			reply_not_found(req);
		return 1;
	}
	if (need && !authn_principal_has_role(p, need)) {
		free(p);
		http_reply_error(req, 403, "forbidden", "not allowed for your role");
		return 1;
	}
	http_req_set_ctx(req, p, principal_free);
	return 0;
}

/* ---- login, refresh, logout, token exchange ---- */

static enum status issue_tokens(struct rq *r, const struct store_user *u, const char *family,
                                json_t **out)
{
	char *access = NULL, *refresh = auth_opaque_new(AUTH_PREFIX_REFRESH);
	char hash[AUTH_HASH_HEX_LEN + 1];
	struct auth_claims c = {
		.iss = r->a->cfg.issuer,
		.aud = r->a->cfg.audience,
		.sub = u->id,
		.tid = u->tenant_id[0] ? u->tenant_id : NULL,
		.sid = family,
		.roles = u->role,
		.epoch = u->epoch,
		.tepoch = u->tenant_epoch,
		.iat = now_s(),
		.ttl_s = (int)r->a->cfg.access_ttl_s,
	};
	enum status st;

	auth_opaque_hash(refresh, hash);
	st = store_refresh_insert(r->dbc, family, u, hash, r->a->cfg.refresh_ttl_s,
	                          http_req_remote(r->req), &r->e);
	if (st == STATUS_OK)
		st = auth_sign(r->a, &c, &access, &r->e);
	if (st == STATUS_OK)
		*out = json_pack("{s:s, s:s, s:I, s:s}", "access_token", access, "token_type",
		                 "Bearer", "expires_in", (json_int_t)r->a->cfg.access_ttl_s,
		                 "refresh_token", refresh);
	free(access);
	free(refresh);
	return st;
}

static void h_login(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "tenant", "username", "password", NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	const char *tenant = NULL, *username = NULL, *password = NULL;
	char account[400];
	struct store_user u;
	struct store_audit au;
	int retry = 0;
	bool found = false, ok;
	enum status st;

	if (!rq_open(&r, req, ud, true))
		return;
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "tenant", JSONH_OPTIONAL, 63, &tenant, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "username", JSONH_REQUIRED | JSONH_NONEMPTY, 64, &username,
		                   &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "password", JSONH_REQUIRED | JSONH_NONEMPTY,
		                   AUTH_PW_MAX_BYTES, &password, &r.e);
	if (st != STATUS_OK) {
		rq_done(&r, st, 0, NULL, NULL);
		json_decref(body);
		return;
	}
	snprintf(account, sizeof(account), "%s/%s", tenant ? tenant : "", username);
	for (char *c = account; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (!auth_throttle_allow(r.a->throttle, account, http_req_remote(req), now_s(), &retry)) {
		char ra[16];

		db_tx_rollback(r.dbc);
		auth_db_put(r.a, r.dbc);
		snprintf(ra, sizeof(ra), "%d", retry);
		http_reply_header(req, "Retry-After", ra);
		http_reply_error(req, 429, "rate_limited",
		                 "too many failed logins; retry after %d seconds", retry);
		json_decref(body);
		return;
	}
	st = store_user_for_login(r.dbc, tenant, username, &u, &found, &r.e);
	if (st != STATUS_OK) {
		rq_done(&r, st, 0, NULL, NULL);
		json_decref(body);
		return;
	}
	/* The same work and the same answer for a wrong tenant, user or password. */
	ok = found ? auth_password_verify(u.password_hash, password)
	           : (auth_password_verify_dummy(password), false);
	ok = ok && u.enabled && u.tenant_enabled && !u.lease_expired;
	au = audit_of(&r, "auth.login", "user", found ? u.id : NULL,
	              found && u.tenant_id[0] ? u.tenant_id : NULL);
	au.actor_id = found ? u.id : NULL;
	au.actor_name = username;
	if (!ok) {
		auth_throttle_fail(r.a->throttle, account, http_req_remote(req), now_s());
		st = store_audit_add(r.dbc, &au, "denied", &r.e);
		if (st == STATUS_OK)
			st = db_tx_commit(r.dbc, &r.e);
		if (st != STATUS_OK)
			db_tx_rollback(r.dbc);
		auth_db_put(r.a, r.dbc);
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "unauthorized", GENERIC_LOGIN_FAILURE);
		store_user_cleanup(&u);
		json_decref(body);
		return;
	}
	auth_throttle_success(r.a->throttle, account);
	st = auth_tx_tenant(r.dbc, u.tenant_id[0] ? u.tenant_id : NULL, &r.e);
	if (st == STATUS_OK) {
		char family[AUTH_UUID_LEN + 1];

		auth_uuid_v4(family);
		st = issue_tokens(&r, &u, family, &out);
	}
	rq_done(&r, st, 200, out, &au);
	store_user_cleanup(&u);
	json_decref(body);
}

static void h_refresh(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "refresh_token", NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	const char *tok = NULL;
	char hash[AUTH_HASH_HEX_LEN + 1];
	struct store_refresh rs;
	struct store_user u;
	struct store_audit au;
	bool found = false, reused = false;
	enum status st;

	memset(&u, 0, sizeof(u));
	if (!rq_open(&r, req, ud, true))
		return;
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "refresh_token", JSONH_REQUIRED, 128, &tok, &r.e);
	if (st != STATUS_OK) {
		rq_done(&r, st, 0, NULL, NULL);
		json_decref(body);
		return;
	}
	if (!auth_opaque_is_wellformed(tok, AUTH_PREFIX_REFRESH)) {
		rq_done(&r, STATUS_UNAUTHORIZED, 0, NULL, NULL);
		json_decref(body);
		return;
	}
	auth_opaque_hash(tok, hash);
	st = store_refresh_find(r.dbc, hash, &rs, &found, &r.e);
	if (st == STATUS_OK && !found)
		st = STATUS_UNAUTHORIZED;
	if (st != STATUS_OK) {
		rq_done(&r, st, 0, NULL, NULL);
		json_decref(body);
		return;
	}
	au = audit_of(&r, "auth.refresh", "session", rs.family_id,
	              rs.tenant_id[0] ? rs.tenant_id : NULL);
	au.actor_id = rs.user_id;
	st = auth_tx_tenant(r.dbc, rs.tenant_id[0] ? rs.tenant_id : NULL, &r.e);
	if (st == STATUS_OK && !rs.usable) {
		st = STATUS_UNAUTHORIZED;
	} else if (st == STATUS_OK) {
		st = store_refresh_use(r.dbc, rs.id, &reused, &r.e);
		if (st == STATUS_OK && reused) {
			/* A used token came back: someone holds a copy. End the whole family. */
			st = store_refresh_revoke_family(r.dbc, rs.family_id, &r.e);
			if (st == STATUS_OK)
				st = emit_session_revoked(&r, rs.family_id,
				                          rs.tenant_id[0] ? rs.tenant_id : NULL);
			au.action = "auth.refresh.reuse";
			if (st == STATUS_OK)
				st = store_audit_add(r.dbc, &au, "denied", &r.e);
			if (st == STATUS_OK)
				st = db_tx_commit(r.dbc, &r.e);
			if (st == STATUS_OK)
				svc_kick_outbox(r.a->svc);
			rq_done(&r, st == STATUS_OK ? STATUS_UNAUTHORIZED : st, 0, NULL, NULL);
			json_decref(body);
			return;
		}
	}
	if (st == STATUS_OK)
		st = store_user_by_id(r.dbc, rs.user_id, &u, &r.e);
	if (st == STATUS_OK && !(u.enabled && u.tenant_enabled && !u.lease_expired))
		st = STATUS_UNAUTHORIZED;
	if (st == STATUS_OK)
		st = issue_tokens(&r, &u, rs.family_id, &out);
	rq_done(&r, st, 200, out, st == STATUS_OK ? &au : NULL);
	store_user_cleanup(&u);
	json_decref(body);
}

static void h_logout(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "refresh_token", NULL };
	struct rq r;
	json_t *body = NULL;
	const char *tok = NULL;
	char hash[AUTH_HASH_HEX_LEN + 1];
	struct store_refresh rs;
	struct store_audit au;
	bool found = false;
	enum status st;

	if (!rq_open(&r, req, ud, true))
		return;
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "refresh_token", JSONH_REQUIRED, 128, &tok, &r.e);
	if (st == STATUS_OK && auth_opaque_is_wellformed(tok, AUTH_PREFIX_REFRESH)) {
		auth_opaque_hash(tok, hash);
		st = store_refresh_find(r.dbc, hash, &rs, &found, &r.e);
	}
	if (st != STATUS_OK || !found) {
		/* Logging out an unknown token is not an error (idempotent, no oracle). */
		rq_done(&r, st, 204, NULL, NULL);
		json_decref(body);
		return;
	}
	au = audit_of(&r, "auth.logout", "session", rs.family_id,
	              rs.tenant_id[0] ? rs.tenant_id : NULL);
	au.actor_id = rs.user_id;
	st = auth_tx_tenant(r.dbc, rs.tenant_id[0] ? rs.tenant_id : NULL, &r.e);
	if (st == STATUS_OK)
		st = store_refresh_revoke_family(r.dbc, rs.family_id, &r.e);
	if (st == STATUS_OK)
		st = emit_session_revoked(&r, rs.family_id, rs.tenant_id[0] ? rs.tenant_id : NULL);
	rq_done(&r, st, 204, NULL, &au);
	json_decref(body);
}

static void h_token_exchange(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "api_token", NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	const char *tok = NULL;
	char hash[AUTH_HASH_HEX_LEN + 1];
	struct store_apitoken at;
	struct store_user u;
	bool found = false;
	char *access = NULL;
	enum status st;

	memset(&u, 0, sizeof(u));
	if (!rq_open(&r, req, ud, true))
		return;
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "api_token", JSONH_REQUIRED, 128, &tok, &r.e);
	if (st == STATUS_OK && !auth_opaque_is_wellformed(tok, AUTH_PREFIX_API))
		st = STATUS_UNAUTHORIZED;
	if (st == STATUS_OK) {
		auth_opaque_hash(tok, hash);
		st = store_apitoken_find(r.dbc, hash, &at, &found, &r.e);
		if (st == STATUS_OK && (!found || !at.usable))
			st = STATUS_UNAUTHORIZED;
	}
	if (st == STATUS_OK)
		st = auth_tx_tenant(r.dbc, at.tenant_id[0] ? at.tenant_id : NULL, &r.e);
	if (st == STATUS_OK)
		st = store_user_by_id(r.dbc, at.user_id, &u, &r.e);
	if (st == STATUS_OK && !(u.enabled && u.tenant_enabled && !u.lease_expired))
		st = STATUS_UNAUTHORIZED;
	if (st == STATUS_OK)
		st = store_apitoken_touch(r.dbc, at.id, &r.e);
	if (st == STATUS_OK) {
		struct auth_claims c = {
			.iss = r.a->cfg.issuer,
			.aud = r.a->cfg.audience,
			.sub = u.id,
			.tid = u.tenant_id[0] ? u.tenant_id : NULL,
			.sid = at.id,
			/* never more than the owner has today */
			.roles = store_role_rank(at.role) <= store_role_rank(u.role) ? at.role
			                                                             : u.role,
			.epoch = u.epoch,
			.tepoch = u.tenant_epoch,
			.iat = now_s(),
			.ttl_s = (int)r.a->cfg.exchange_ttl_s,
		};

		st = auth_sign(r.a, &c, &access, &r.e);
	}
	if (st == STATUS_OK)
		out = json_pack("{s:s, s:s, s:I}", "access_token", access, "token_type", "Bearer",
		                "expires_in", (json_int_t)r.a->cfg.exchange_ttl_s);
	rq_done(&r, st, 200, out, NULL);
	free(access);
	store_user_cleanup(&u);
	json_decref(body);
}

static void h_jwks(struct http_req *req, void *ud)
{
	char *s = auth_jwks(ud);

	http_reply_header(req, "Cache-Control", "max-age=60");
	http_reply_raw(req, 200, HTTP_CT_JSON, s, strlen(s));
	free(s);
}

static void h_me(struct http_req *req, void *ud)
{
	struct rq r;
	json_t *out = NULL;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	st = store_user_json(r.dbc, r.p->user_id, &out, &r.e);
	rq_done(&r, st, 200, out, NULL);
}

static void h_password_change(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "current_password", "new_password", NULL };
	struct rq r;
	json_t *body = NULL;
	const char *cur = NULL, *pw = NULL;
	struct store_user u;
	struct store_audit au;
	char *phc = NULL;
	int64_t epoch = 0;
	enum status st;

	memset(&u, 0, sizeof(u));
	if (!rq_open(&r, req, ud, false))
		return;
	au = audit_of(&r, "user.password.change", "user", r.p->user_id,
	              authn_principal_tenant(r.p));
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "current_password", JSONH_REQUIRED, AUTH_PW_MAX_BYTES,
		                   &cur, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "new_password", JSONH_REQUIRED, AUTH_PW_MAX_BYTES, &pw,
		                   &r.e);
	if (st == STATUS_OK)
		st = store_user_by_id(r.dbc, r.p->user_id, &u, &r.e);
	if (st == STATUS_OK && !auth_password_verify(u.password_hash, cur))
		st = err_set(&r.e, STATUS_INVALID, "current_password is wrong");
	if (st == STATUS_OK)
		st = auth_password_check_policy(u.username, pw, &r.e);
	if (st == STATUS_OK)
		st = auth_password_hash(pw, &phc, &r.e);
	if (st == STATUS_OK)
		st = store_user_set_password(r.dbc, u.id, phc, &epoch, &r.e);
	if (st == STATUS_OK)
		st = emit_user(&r, u.id, u.tenant_id[0] ? u.tenant_id : NULL, epoch, "password",
		               NULL);
	rq_done(&r, st, 204, NULL, &au);
	free(phc);
	store_user_cleanup(&u);
	json_decref(body);
}

/* ---- API tokens ---- */

static void h_tokens_create(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "name", "role", "expires_in_days", NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	const char *name = NULL, *role_s = NULL;
	int64_t days = 90;
	unsigned role;
	char *tok = NULL;
	char hash[AUTH_HASH_HEX_LEN + 1], id[AUTH_UUID_LEN + 1];
	struct store_audit au;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	au = audit_of(&r, "apitoken.create", "apitoken", NULL, authn_principal_tenant(r.p));
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "name", JSONH_REQUIRED | JSONH_NONEMPTY, 100, &name, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "role", JSONH_REQUIRED, 32, &role_s, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_int(body, "expires_in_days", JSONH_OPTIONAL, 1, 365, &days, &r.e);
	role = st == STATUS_OK ? authn_role_parse(role_s) : 0;
	if (st == STATUS_OK && !role)
		st = err_set(&r.e, STATUS_INVALID, "field 'role' is not a role");
	if (st == STATUS_OK && store_role_rank(role) > store_role_rank(r.p->roles))
		st = STATUS_FORBIDDEN;
	if (st == STATUS_OK) {
		tok = auth_opaque_new(AUTH_PREFIX_API);
		auth_opaque_hash(tok, hash);
		auth_uuid_v4(id);
		au.object_id = id;
		st = store_apitoken_insert(r.dbc, id, r.p, name, role, hash, days, &out, &r.e);
	}
	if (st == STATUS_OK)
		json_object_set_new(out, "token", json_string(tok));
	rq_done(&r, st, 201, out, &au);
	free(tok);
	json_decref(body);
}

static void h_tokens_list(struct http_req *req, void *ud)
{
	struct rq r;
	json_t *out = NULL;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	st = store_apitoken_list(r.dbc, r.p, &out, &r.e);
	rq_done(&r, st, 200, out, NULL);
}

static void h_tokens_revoke(struct http_req *req, void *ud)
{
	struct rq r;
	const char *id;
	struct store_audit au;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	au = audit_of(&r, "apitoken.revoke", "apitoken", id, authn_principal_tenant(r.p));
	st = id ? store_apitoken_revoke(r.dbc, id, r.p, &r.e) : STATUS_NOT_FOUND;
	if (st == STATUS_OK)
		st = emit_session_revoked(&r, id, authn_principal_tenant(r.p));
	rq_done(&r, st, 204, NULL, &au);
}

/* ---- tenants (provider-admin) ---- */

static enum status tenant_fields(struct rq *r, json_t *body, bool create, struct store_tenant *t)
{
	enum status st = STATUS_OK;
	json_t *lease = json_object_get(body, "lease_expires_at");

	memset(t, 0, sizeof(*t));
	if (create)
		st = jsonh_get_str(body, "name", JSONH_REQUIRED | JSONH_NONEMPTY, 63, &t->name,
		                   &r->e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "display_name",
		                   create ? JSONH_REQUIRED | JSONH_NONEMPTY : JSONH_NONEMPTY, 200,
		                   &t->display_name, &r->e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "contact_email", JSONH_OPTIONAL, 254, &t->contact_email,
		                   &r->e);
	t->set_contact = json_object_get(body, "contact_email") != NULL;
	if (st == STATUS_OK && lease && !json_is_null(lease)) {
		int64_t us;

		st = jsonh_get_time(body, "lease_expires_at", JSONH_OPTIONAL, &us, &r->e);
		t->lease = json_string_value(lease);
	}
	t->set_lease = lease != NULL;
	if (st == STATUS_OK && t->name && !store_tenant_name_valid(t->name))
		st = err_set(&r->e, STATUS_INVALID,
		             "field 'name' must be 1-63 of a-z, 0-9 and '-', starting with a "
		             "letter or digit");
	if (st == STATUS_OK && t->contact_email && *t->contact_email &&
	    !strchr(t->contact_email, '@'))
		st = err_set(&r->e, STATUS_INVALID,
		             "field 'contact_email' is not an e-mail address");
	return st;
}

static void h_tenants_create(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "name", "display_name", "contact_email",
		                               "lease_expires_at", NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	struct store_tenant t;
	struct store_audit au;
	char id[AUTH_UUID_LEN + 1];
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	auth_uuid_v4(id);
	au = audit_of(&r, "tenant.create", "tenant", id, id);
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = tenant_fields(&r, body, true, &t);
	if (st == STATUS_OK)
		st = store_tenant_insert(r.dbc, id, &t, &out, &r.e);
	if (st == STATUS_OK)
		st = emit_tenant(&r, id, 1, "created", t.name);
	rq_done(&r, st, 201, out, &au);
	json_decref(body);
}

static void h_tenants_list(struct http_req *req, void *ud)
{
	struct rq r;
	json_t *out = NULL;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	st = store_tenant_list(r.dbc, &out, &r.e);
	rq_done(&r, st, 200, out, NULL);
}

static void h_tenants_get(struct http_req *req, void *ud)
{
	struct rq r;
	json_t *out = NULL;
	const char *id;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	st = id ? store_tenant_json(r.dbc, id, &out, &r.e) : STATUS_NOT_FOUND;
	rq_done(&r, st, 200, out, NULL);
}

static void h_tenants_patch(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "display_name", "contact_email", "lease_expires_at",
		                               NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	struct store_tenant t;
	struct store_audit au;
	const char *id;
	int64_t epoch = 0;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	au = audit_of(&r, "tenant.update", "tenant", id, id);
	st = id ? body_of(&r, allowed, &body) : STATUS_NOT_FOUND;
	if (st == STATUS_OK)
		st = tenant_fields(&r, body, false, &t);
	if (st == STATUS_OK)
		st = store_tenant_update(r.dbc, id, &t, &epoch, &r.e);
	/* A changed lease can end access: treat it as a revocation. */
	if (st == STATUS_OK)
		st = emit_tenant(&r, id, epoch, "updated", NULL);
	if (st == STATUS_OK)
		st = store_tenant_json(r.dbc, id, &out, &r.e);
	rq_done(&r, st, 200, out, &au);
	json_decref(body);
}

static void tenant_state(struct http_req *req, void *ud, const char *what)
{
	struct rq r;
	json_t *out = NULL;
	struct store_audit au;
	const char *id;
	int64_t epoch = 0;
	char action[32];
	bool deleting = strcmp(what, "deleted") == 0;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	snprintf(action, sizeof(action), "tenant.%s",
	         deleting                       ? "delete"
	         : strcmp(what, "enabled") == 0 ? "enable"
	                                        : "disable");
	au = audit_of(&r, action, "tenant", id, id);
	if (!id)
		st = STATUS_NOT_FOUND;
	else if (deleting)
		st = store_tenant_delete(r.dbc, id, &epoch, &r.e);
	else
		st = store_tenant_set_enabled(r.dbc, id, strcmp(what, "enabled") == 0, &epoch,
		                              &r.e);
	if (st == STATUS_OK)
		st = emit_tenant(&r, id, epoch, what, NULL);
	if (st == STATUS_OK && !deleting)
		st = store_tenant_json(r.dbc, id, &out, &r.e);
	if (deleting)
		au.tenant_id = NULL; /* the tenant's own audit rows go with it */
	rq_done(&r, st, deleting ? 204 : 200, out, &au);
}

static void h_tenants_enable(struct http_req *req, void *ud)
{
	tenant_state(req, ud, "enabled");
}

static void h_tenants_disable(struct http_req *req, void *ud)
{
	tenant_state(req, ud, "disabled");
}

static void h_tenants_delete(struct http_req *req, void *ud)
{
	tenant_state(req, ud, "deleted");
}

/* ---- users (tenant-admin in its tenant, provider-admin everywhere) ---- */

static void h_users_create(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "tenant_id", "username", "display_name", "email",
		                               "role",      "password", "enabled",      NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	struct store_new_user nu;
	const char *role_s = NULL;
	struct store_audit au;
	char id[AUTH_UUID_LEN + 1];
	char *phc = NULL;
	enum status st;

	memset(&nu, 0, sizeof(nu));
	nu.enabled = true;
	if (!rq_open(&r, req, ud, false))
		return;
	auth_uuid_v4(id);
	nu.id = id;
	au = audit_of(&r, "user.create", "user", id, authn_principal_tenant(r.p));
	st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_uuid(body, "tenant_id", JSONH_OPTIONAL, &nu.tenant_id, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "username", JSONH_REQUIRED | JSONH_NONEMPTY, 64,
		                   &nu.username, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "display_name", JSONH_OPTIONAL, 200, &nu.display_name,
		                   &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "email", JSONH_OPTIONAL, 254, &nu.email, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "role", JSONH_REQUIRED, 32, &role_s, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "password", JSONH_REQUIRED, AUTH_PW_MAX_BYTES,
		                   &nu.password, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_bool(body, "enabled", JSONH_OPTIONAL, &nu.enabled, &r.e);
	nu.role = st == STATUS_OK ? authn_role_parse(role_s) : 0;
	if (st == STATUS_OK && !nu.role)
		st = err_set(&r.e, STATUS_INVALID, "field 'role' is not a role");
	if (st == STATUS_OK && !store_username_valid(nu.username))
		st = err_set(&r.e, STATUS_INVALID,
		             "field 'username' must be 1-64 of letters, digits and . _ @ -");
	if (st == STATUS_OK && nu.email && *nu.email && !strchr(nu.email, '@'))
		st = err_set(&r.e, STATUS_INVALID, "field 'email' is not an e-mail address");
	if (st == STATUS_OK) {
		if (!r.p->is_provider_admin) {
			/* a tenant-admin creates users of its own tenant only */
			if (nu.tenant_id && strcmp(nu.tenant_id, r.p->tenant_id) != 0)
				st = STATUS_NOT_FOUND;
			else if (nu.role == AUTHN_ROLE_PROVIDER_ADMIN)
				st = STATUS_FORBIDDEN;
			nu.tenant_id = r.p->tenant_id;
		} else if ((nu.role == AUTHN_ROLE_PROVIDER_ADMIN) != (nu.tenant_id == NULL)) {
			st = err_set(
			        &r.e, STATUS_INVALID,
			        "a provider-admin has no tenant_id; every other role needs one");
		}
	}
	au.tenant_id = nu.tenant_id;
	if (st == STATUS_OK)
		st = auth_password_check_policy(nu.username, nu.password, &r.e);
	if (st == STATUS_OK)
		st = auth_password_hash(nu.password, &phc, &r.e);
	if (st == STATUS_OK) {
		nu.password_hash = phc;
		st = store_user_insert(r.dbc, &nu, &out, &r.e);
	}
	rq_done(&r, st, 201, out, &au);
	free(phc);
	json_decref(body);
}

static void h_users_list(struct http_req *req, void *ud)
{
	struct rq r;
	json_t *out = NULL;
	const char *tid;
	enum status st = STATUS_OK;

	if (!rq_open(&r, req, ud, false))
		return;
	tid = http_req_query(req, "tenant_id");
	if (tid && !jsonh_uuid_valid(tid))
		st = err_set(&r.e, STATUS_INVALID, "query 'tenant_id' must be a uuid");
	if (st == STATUS_OK)
		st = store_user_list(r.dbc, tid, &out, &r.e);
	rq_done(&r, st, 200, out, NULL);
}

static void h_users_get(struct http_req *req, void *ud)
{
	struct rq r;
	json_t *out = NULL;
	const char *id;
	enum status st;

	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	st = id ? store_user_json(r.dbc, id, &out, &r.e) : STATUS_NOT_FOUND;
	rq_done(&r, st, 200, out, NULL);
}

/* Load the target user (visible under RLS) and check the caller may manage it. */
static enum status target_user(struct rq *r, const char *id, struct store_user *u)
{
	enum status st;

	if (!id)
		return STATUS_NOT_FOUND;
	st = store_user_by_id(r->dbc, id, u, &r->e);
	if (st != STATUS_OK)
		return st;
	/* provider users are invisible to tenant-admins (RLS); double-check anyway */
	if (!r->p->is_provider_admin && strcmp(u->tenant_id, r->p->tenant_id) != 0)
		return STATUS_NOT_FOUND;
	return STATUS_OK;
}

static void h_users_patch(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "display_name", "email", "role", NULL };
	struct rq r;
	json_t *body = NULL, *out = NULL;
	struct store_user u;
	struct store_audit au;
	const char *id, *dn = NULL, *email = NULL, *role_s = NULL;
	unsigned role = 0;
	int64_t epoch = 0;
	enum status st;

	memset(&u, 0, sizeof(u));
	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	au = audit_of(&r, "user.update", "user", id, authn_principal_tenant(r.p));
	st = target_user(&r, id, &u);
	if (st == STATUS_OK)
		au.tenant_id = u.tenant_id[0] ? u.tenant_id : NULL;
	if (st == STATUS_OK)
		st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "display_name", JSONH_OPTIONAL, 200, &dn, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "email", JSONH_OPTIONAL, 254, &email, &r.e);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "role", JSONH_OPTIONAL, 32, &role_s, &r.e);
	if (st == STATUS_OK && role_s) {
		role = authn_role_parse(role_s);
		if (!role)
			st = err_set(&r.e, STATUS_INVALID, "field 'role' is not a role");
		else if ((role == AUTHN_ROLE_PROVIDER_ADMIN) != (u.tenant_id[0] == '\0'))
			st = err_set(&r.e, STATUS_INVALID,
			             "provider-admin is only for provider users, and only them");
	}
	if (st == STATUS_OK && email && *email && !strchr(email, '@'))
		st = err_set(&r.e, STATUS_INVALID, "field 'email' is not an e-mail address");
	if (st == STATUS_OK)
		st = store_user_update(r.dbc, id, dn, email, json_object_get(body, "email") != NULL,
		                       role != u.role ? role : 0, &epoch, &r.e);
	if (st == STATUS_OK && role && role != u.role)
		st = emit_user(&r, id, u.tenant_id[0] ? u.tenant_id : NULL, epoch, "role", role_s);
	if (st == STATUS_OK)
		st = store_user_json(r.dbc, id, &out, &r.e);
	rq_done(&r, st, 200, out, &au);
	store_user_cleanup(&u);
	json_decref(body);
}

static void user_state(struct http_req *req, void *ud, const char *what)
{
	struct rq r;
	json_t *out = NULL;
	struct store_user u;
	struct store_audit au;
	const char *id;
	char action[32];
	int64_t epoch = 0;
	bool deleting = strcmp(what, "deleted") == 0;
	enum status st;

	memset(&u, 0, sizeof(u));
	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	snprintf(action, sizeof(action), "user.%s",
	         deleting                       ? "delete"
	         : strcmp(what, "enabled") == 0 ? "enable"
	                                        : "disable");
	au = audit_of(&r, action, "user", id, authn_principal_tenant(r.p));
	st = target_user(&r, id, &u);
	if (st == STATUS_OK) {
		au.tenant_id = u.tenant_id[0] ? u.tenant_id : NULL;
		if (strcmp(u.id, r.p->user_id) == 0 && strcmp(what, "enabled") != 0)
			st = err_set(&r.e, STATUS_CONFLICT,
			             "you cannot disable or delete yourself");
	}
	if (st == STATUS_OK)
		st = deleting ? store_user_delete(r.dbc, id, &epoch, &r.e)
		              : store_user_set_enabled(r.dbc, id, strcmp(what, "enabled") == 0,
		                                       &epoch, &r.e);
	if (st == STATUS_OK)
		st = emit_user(&r, id, u.tenant_id[0] ? u.tenant_id : NULL, epoch, what, NULL);
	if (st == STATUS_OK && !deleting)
		st = store_user_json(r.dbc, id, &out, &r.e);
	rq_done(&r, st, deleting ? 204 : 200, out, &au);
	store_user_cleanup(&u);
}

static void h_users_enable(struct http_req *req, void *ud)
{
	user_state(req, ud, "enabled");
}

static void h_users_disable(struct http_req *req, void *ud)
{
	user_state(req, ud, "disabled");
}

static void h_users_delete(struct http_req *req, void *ud)
{
	user_state(req, ud, "deleted");
}

static void h_users_password(struct http_req *req, void *ud)
{
	static const char *const allowed[] = { "password", NULL };
	struct rq r;
	json_t *body = NULL;
	struct store_user u;
	struct store_audit au;
	const char *id, *pw = NULL;
	char *phc = NULL;
	int64_t epoch = 0;
	enum status st;

	memset(&u, 0, sizeof(u));
	if (!rq_open(&r, req, ud, false))
		return;
	id = path_id(&r);
	au = audit_of(&r, "user.password.reset", "user", id, authn_principal_tenant(r.p));
	st = target_user(&r, id, &u);
	if (st == STATUS_OK)
		au.tenant_id = u.tenant_id[0] ? u.tenant_id : NULL;
	if (st == STATUS_OK)
		st = body_of(&r, allowed, &body);
	if (st == STATUS_OK)
		st = jsonh_get_str(body, "password", JSONH_REQUIRED, AUTH_PW_MAX_BYTES, &pw, &r.e);
	if (st == STATUS_OK)
		st = auth_password_check_policy(u.username, pw, &r.e);
	if (st == STATUS_OK)
		st = auth_password_hash(pw, &phc, &r.e);
	if (st == STATUS_OK)
		st = store_user_set_password(r.dbc, id, phc, &epoch, &r.e);
	if (st == STATUS_OK)
		st = emit_user(&r, id, u.tenant_id[0] ? u.tenant_id : NULL, epoch, "password",
		               NULL);
	rq_done(&r, st, 204, NULL, &au);
	free(phc);
	store_user_cleanup(&u);
	json_decref(body);
}

/* ---- audit ---- */

static void h_audit(struct http_req *req, void *ud)
{
	struct rq r;
	struct store_audit_query q;
	const char *fmt = http_req_query(req, "format");
	const char *lim = http_req_query(req, "limit");
	json_t *out = NULL;
	struct buf csv;
	long long limit = 100;
	int64_t us;
	enum status st = STATUS_OK;

	if (!rq_open(&r, req, ud, false))
		return;
	memset(&q, 0, sizeof(q));
	q.action = http_req_query(req, "action");
	q.actor_id = http_req_query(req, "actor_id");
	q.object_id = http_req_query(req, "object_id");
	q.result = http_req_query(req, "result");
	q.tenant_id = http_req_query(req, "tenant_id");
	q.from = http_req_query(req, "from");
	q.to = http_req_query(req, "to");
	if (lim && cfg_parse_int(lim, 1, 10000, &limit) != STATUS_OK)
		st = err_set(&r.e, STATUS_INVALID, "query 'limit' must be 1..10000");
	if (st == STATUS_OK && q.from && jsonh_time_parse(q.from, &us, &r.e) != STATUS_OK)
		st = err_set(&r.e, STATUS_INVALID, "query 'from' must be an RFC 3339 time");
	if (st == STATUS_OK && q.to && jsonh_time_parse(q.to, &us, &r.e) != STATUS_OK)
		st = err_set(&r.e, STATUS_INVALID, "query 'to' must be an RFC 3339 time");
	if (st == STATUS_OK && ((q.actor_id && !jsonh_uuid_valid(q.actor_id)) ||
	                        (q.tenant_id && !jsonh_uuid_valid(q.tenant_id))))
		st = err_set(&r.e, STATUS_INVALID, "query 'actor_id'/'tenant_id' must be a uuid");
	if (st == STATUS_OK && q.result && strcmp(q.result, "ok") != 0 &&
	    strcmp(q.result, "denied") != 0 && strcmp(q.result, "failed") != 0)
		st = err_set(&r.e, STATUS_INVALID, "query 'result' must be ok, denied or failed");
	if (st == STATUS_OK && fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0)
		st = err_set(&r.e, STATUS_INVALID, "query 'format' must be json or csv");
	q.limit = (int)limit;
	if (st == STATUS_OK && fmt && strcmp(fmt, "csv") == 0) {
		buf_init(&csv);
		st = store_audit_csv(r.dbc, &q, &csv, &r.e);
		if (st == STATUS_OK)
			st = db_tx_commit(r.dbc, &r.e);
		if (st == STATUS_OK) {
			http_reply_header(req, "Content-Disposition",
			                  "attachment; filename=\"audit.csv\"");
			http_reply_buf(req, 200, "text/csv; charset=utf-8", &csv);
			auth_db_put(r.a, r.dbc);
			buf_cleanup(&csv);
			return;
		}
		buf_cleanup(&csv);
		rq_done(&r, st, 0, NULL, NULL);
		return;
	}
	if (st == STATUS_OK)
		st = store_audit_json(r.dbc, &q, &out, &r.e);
	rq_done(&r, st, 200, out, NULL);
}

/* ---- routes ---- */

struct route {
	const char *method, *pattern;
	http_handler_fn fn;
	unsigned flags;
};

enum status auth_api_register(struct auth_app *a, struct http_server *srv, struct err *e)
{
	const unsigned any = 0, pa = ROLES(AUTHN_ROLE_PROVIDER_ADMIN),
	               adm = ROLES(AUTHN_ROLES_ADMIN);
	const struct route routes[] = {
		{ "POST", "/api/v1/auth/login", h_login, HTTP_ROUTE_PUBLIC },
		{ "POST", "/api/v1/auth/refresh", h_refresh, HTTP_ROUTE_PUBLIC },
		{ "POST", "/api/v1/auth/logout", h_logout, HTTP_ROUTE_PUBLIC },
		{ "POST", "/api/v1/auth/token", h_token_exchange, HTTP_ROUTE_PUBLIC },
		{ "GET", "/api/v1/auth/jwks", h_jwks, HTTP_ROUTE_PUBLIC },
		{ "GET", "/api/v1/auth/me", h_me, any },
		{ "POST", "/api/v1/auth/password", h_password_change, any },
		{ "GET", "/api/v1/auth/tokens", h_tokens_list, any },
		{ "POST", "/api/v1/auth/tokens", h_tokens_create, any },
		{ "DELETE", "/api/v1/auth/tokens/{id}", h_tokens_revoke, any },
		{ "GET", "/api/v1/auth/audit", h_audit, adm },
		{ "GET", "/api/v1/tenants", h_tenants_list, pa },
		{ "POST", "/api/v1/tenants", h_tenants_create, pa },
		{ "GET", "/api/v1/tenants/{id}", h_tenants_get, pa | OBJ_TENANT },
		{ "PATCH", "/api/v1/tenants/{id}", h_tenants_patch, pa | OBJ_TENANT },
		{ "DELETE", "/api/v1/tenants/{id}", h_tenants_delete, pa | OBJ_TENANT },
		{ "POST", "/api/v1/tenants/{id}/enable", h_tenants_enable, pa | OBJ_TENANT },
		{ "POST", "/api/v1/tenants/{id}/disable", h_tenants_disable, pa | OBJ_TENANT },
		{ "GET", "/api/v1/users", h_users_list, adm },
		{ "POST", "/api/v1/users", h_users_create, adm },
		{ "GET", "/api/v1/users/{id}", h_users_get, adm | OBJ_USER },
		{ "PATCH", "/api/v1/users/{id}", h_users_patch, adm | OBJ_USER },
		{ "DELETE", "/api/v1/users/{id}", h_users_delete, adm | OBJ_USER },
		{ "POST", "/api/v1/users/{id}/enable", h_users_enable, adm | OBJ_USER },
		{ "POST", "/api/v1/users/{id}/disable", h_users_disable, adm | OBJ_USER },
		{ "POST", "/api/v1/users/{id}/password", h_users_password, adm | OBJ_USER },
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		enum status st = http_server_route(srv, routes[i].method, routes[i].pattern,
		                                   routes[i].fn, a, routes[i].flags, e);

		if (st != STATUS_OK)
			return st;
	}
	http_server_set_before(srv, before, a);
	return STATUS_OK;
}
