/* auth.h - the auth service's context and its entry points for main.c. */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/authn.h"
#include "common/cfg.h"
#include "common/db.h"
#include "common/svc.h"

#include "throttle.h"
#include "tokens.h"

#define AUTH_SCHEMA "identity"
#define AUTH_SOURCE "/cairn/auth"
#define AUTH_POOL_MAX 16

/* The service's own settings (CAIRN_AUTH_<KEY>). */
struct auth_cfg {
	char *issuer;
	char *audience;
	char *kek;                  /* base64 of 32 bytes; empty = keys stored unwrapped */
	char *runtime_role;         /* SET LOCAL ROLE per transaction; empty = none */
	char *runtime_database_url; /* optional separate login for the runtime role */
	bool require_runtime_role;
	long long access_ttl_s;
	long long refresh_ttl_s;
	long long exchange_ttl_s; /* JWTs minted from API tokens */
	long long login_account_max;
	long long login_address_max;
	long long login_window_s;
	long long heartbeat_ms;
	long long key_check_s;
};

struct auth_app {
	struct auth_cfg cfg;
	struct svc *svc;
	unsigned char kek[AUTH_KEK_LEN];
	bool has_kek;
	struct auth_throttle *throttle;
	struct authn_verifier *verifier;
	const char *db_url; /* borrowed from the runtime's config */

	pthread_mutex_t mu; /* guards keys and pool */
	struct auth_key *cur, *prev;
	struct db_conn *pool[AUTH_POOL_MAX];
	int npool;

	long last_key_check; /* monotonic seconds; main thread only */

	pthread_t hb;
	bool hb_started;
	atomic_bool hb_stop;
	_Atomic unsigned long long heartbeats;
};

/** @brief The settings table of struct auth_cfg, for svc_def.cfg_keys. */
extern const struct cfg_key auth_cfg_keys[];
extern const size_t auth_cfg_nkeys;

/** @brief svc_def.setup: load or create the signing key, create the verifier, register
 *  the routes and the before hook, start the heartbeat thread. app is a zeroed
 *  struct auth_app whose cfg the runtime filled. */
enum status auth_setup(struct svc *s, void *app, struct err *e);

/** @brief svc_def.teardown: stop the heartbeat, free keys, verifier, pool. */
void auth_teardown(struct svc *s, void *app);

/** @brief svc_def.tick: every 30 s, pick up a key made by `cairn-auth rotate-key`. */
void auth_tick(struct svc *s, void *app);

/** @brief `cairn-auth rotate-key`: add a new signing key (wrapped with CAIRN_AUTH_KEK) and
 *  retire all but the two newest. @returns the process exit code. */
int auth_rotate_key_main(void);

/** @brief `cairn-auth bootstrap`: apply migrations and create the provider and the first
 *  provider-admin from CAIRN_BOOTSTRAP_USERNAME / CAIRN_BOOTSTRAP_PASSWORD or a prompt on
 *  the terminal (never argv). @returns the process exit code. */
int auth_bootstrap_main(int argc, char **argv);

/* ---- app.c helpers used by api.c ---- */

/** @brief A database connection for this thread's request (pooled). NULL with e filled. */
struct db_conn *auth_db_get(struct auth_app *a, struct err *e);
/** @brief Give a connection back (rolls back an open transaction). NULL is fine. */
void auth_db_put(struct auth_app *a, struct db_conn *dbc);

/** @brief BEGIN, SET LOCAL ROLE <runtime role> and the RLS context: p == NULL means the
 *  login phase (app.login = on); a provider-admin sets app.provider_admin = on; anyone
 *  else app.tenant_id. */
enum status auth_tx_begin(struct auth_app *a, struct db_conn *dbc, const struct authn_principal *p,
                          struct err *e) MUST_CHECK;

/** @brief Switch the open transaction's RLS context to tenant tid (NULL = provider level). */
enum status auth_tx_tenant(struct db_conn *dbc, const char *tid, struct err *e) MUST_CHECK;

/** @brief Sign an access token with the current key. */
enum status auth_sign(struct auth_app *a, const struct auth_claims *c, char **out,
                      struct err *e) MUST_CHECK;

/** @brief The JWKS document (current + previous key). @returns a new string. */
char *auth_jwks(struct auth_app *a);

/** @brief Register the REST routes and the before hook (api.c). */
enum status auth_api_register(struct auth_app *a, struct http_server *srv,
                              struct err *e) MUST_CHECK;

#endif
