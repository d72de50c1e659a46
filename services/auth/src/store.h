/* store.h - every SQL statement of auth (schema identity). All functions run inside the
 * caller's open transaction, whose RLS context (auth_tx_begin) decides what is visible:
 * a row of another tenant behaves exactly like a missing row (STATUS_NOT_FOUND). */
#ifndef AUTH_STORE_H
#define AUTH_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/authn.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/err.h"

#define STORE_ID 37

struct store_user {
	char id[STORE_ID];
	char tenant_id[STORE_ID]; /* "" for a provider user */
	char username[72];
	char *password_hash; /* owned */
	unsigned role;       /* one enum authn_role bit */
	bool enabled, tenant_enabled, lease_expired;
	int64_t epoch, tenant_epoch;
};

struct store_new_user {
	const char *id, *tenant_id, *username, *display_name, *email, *password, *password_hash;
	unsigned role;
	bool enabled;
};

struct store_tenant {
	const char *name, *display_name, *contact_email, *lease;
	bool set_contact, set_lease;
};

struct store_refresh {
	char id[STORE_ID], family_id[STORE_ID], tenant_id[STORE_ID], user_id[STORE_ID];
	bool usable; /* not expired, not revoked (used is decided by store_refresh_use) */
};

struct store_apitoken {
	char id[STORE_ID], tenant_id[STORE_ID], user_id[STORE_ID];
	unsigned role;
	bool usable; /* not expired, not revoked */
};

struct store_audit {
	const char *tenant_id, *actor_id, *actor_name, *action, *object_type, *object_id;
	const char *source, *request_id;
};

struct store_audit_query {
	const char *action, *actor_id, *object_id, *result, *tenant_id, *from, *to;
	int limit;
};

/** @brief Free what a store_user owns; the struct may be zeroed. */
void store_user_cleanup(struct store_user *u);
/** @brief Rank of the highest role in a mask: provider-admin 5 .. viewer 1, 0 for none. */
int store_role_rank(unsigned roles);
bool store_username_valid(const char *s);
bool store_tenant_name_valid(const char *s);

/** @brief Is the caller still enabled, its tenant enabled and in lease, its epochs current
 *  and its session not revoked? @returns STATUS_OK or STATUS_UNAUTHORIZED. */
enum status store_caller_check(struct db_conn *dbc, const struct authn_principal *p,
                               struct err *e) MUST_CHECK;

/* users */
enum status store_user_for_login(struct db_conn *dbc, const char *tenant, const char *username,
                                 struct store_user *u, bool *found, struct err *e) MUST_CHECK;
enum status store_user_by_id(struct db_conn *dbc, const char *id, struct store_user *u,
                             struct err *e) MUST_CHECK;
enum status store_user_json(struct db_conn *dbc, const char *id, json_t **out,
                            struct err *e) MUST_CHECK;
enum status store_user_list(struct db_conn *dbc, const char *tenant_id, json_t **out,
                            struct err *e) MUST_CHECK;
enum status store_user_insert(struct db_conn *dbc, const struct store_new_user *nu, json_t **out,
                              struct err *e) MUST_CHECK;
enum status store_user_update(struct db_conn *dbc, const char *id, const char *display_name,
                              const char *email, bool set_email, unsigned new_role, int64_t *epoch,
                              struct err *e) MUST_CHECK;
enum status store_user_set_enabled(struct db_conn *dbc, const char *id, bool enabled,
                                   int64_t *epoch, struct err *e) MUST_CHECK;
enum status store_user_delete(struct db_conn *dbc, const char *id, int64_t *epoch,
                              struct err *e) MUST_CHECK;
enum status store_user_set_password(struct db_conn *dbc, const char *id, const char *phc,
                                    int64_t *epoch, struct err *e) MUST_CHECK;

/* tenants */
enum status store_tenant_insert(struct db_conn *dbc, const char *id, const struct store_tenant *t,
                                json_t **out, struct err *e) MUST_CHECK;
enum status store_tenant_list(struct db_conn *dbc, json_t **out, struct err *e) MUST_CHECK;
enum status store_tenant_json(struct db_conn *dbc, const char *id, json_t **out,
                              struct err *e) MUST_CHECK;
enum status store_tenant_update(struct db_conn *dbc, const char *id, const struct store_tenant *t,
                                int64_t *epoch, struct err *e) MUST_CHECK;
enum status store_tenant_set_enabled(struct db_conn *dbc, const char *id, bool enabled,
                                     int64_t *epoch, struct err *e) MUST_CHECK;
enum status store_tenant_delete(struct db_conn *dbc, const char *id, int64_t *epoch,
                                struct err *e) MUST_CHECK;

/* refresh sessions */
enum status store_refresh_insert(struct db_conn *dbc, const char *family,
                                 const struct store_user *u, const char *hash, long long ttl_s,
                                 const char *source, struct err *e) MUST_CHECK;
enum status store_refresh_find(struct db_conn *dbc, const char *hash, struct store_refresh *rs,
                               bool *found, struct err *e) MUST_CHECK;
enum status store_refresh_use(struct db_conn *dbc, const char *id, bool *reused,
                              struct err *e) MUST_CHECK;
enum status store_refresh_revoke_family(struct db_conn *dbc, const char *family,
                                        struct err *e) MUST_CHECK;

/* API tokens */
enum status store_apitoken_insert(struct db_conn *dbc, const char *id,
                                  const struct authn_principal *p, const char *name, unsigned role,
                                  const char *hash, int64_t days, json_t **out,
                                  struct err *e) MUST_CHECK;
enum status store_apitoken_find(struct db_conn *dbc, const char *hash, struct store_apitoken *at,
                                bool *found, struct err *e) MUST_CHECK;
enum status store_apitoken_touch(struct db_conn *dbc, const char *id, struct err *e) MUST_CHECK;
enum status store_apitoken_list(struct db_conn *dbc, const struct authn_principal *p, json_t **out,
                                struct err *e) MUST_CHECK;
enum status store_apitoken_revoke(struct db_conn *dbc, const char *id,
                                  const struct authn_principal *p, struct err *e) MUST_CHECK;

/* audit */
enum status store_audit_add(struct db_conn *dbc, const struct store_audit *au, const char *result,
                            struct err *e) MUST_CHECK;
enum status store_audit_json(struct db_conn *dbc, const struct store_audit_query *q, json_t **out,
                             struct err *e) MUST_CHECK;
enum status store_audit_csv(struct db_conn *dbc, const struct store_audit_query *q, struct buf *out,
                            struct err *e) MUST_CHECK;

#endif
