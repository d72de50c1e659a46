/* authn.h - the one bearer-token verifier every cairn service uses.
 *
 * Access tokens are JWTs signed ES256 by the auth service (see docs/auth.md). The verifier:
 *  - pins the algorithm to ES256 (the token's "alg" header must be exactly "ES256"; "none",
 *    HS*, RS*, PS* and anything else are refused before any key is looked at, so the
 *    "HS256 signed with the public key as secret" confusion cannot happen);
 *  - checks the signature with OpenSSL against the key whose "kid" the header names, taken
 *    from a JWKS (set as a string, or fetched from auth's /api/v1/auth/jwks with libcurl,
 *    cached, refetched on an unknown kid at most once per min_refetch_ms);
 *  - checks iss, aud, exp, nbf, iat (with a small leeway), sub, jti, roles, epochs;
 *  - refuses tokens whose per-user epoch or per-tenant epoch is below the minimum learnt
 *    from `user.changed` / `tenant.changed` events, and tokens of revoked sessions
 *    (`session.revoked`);
 *  - FAILS CLOSED (STATUS_UNAVAILABLE -> 503) when require_fresh is set and the identity
 *    stream's newest heartbeat is older than stale_ms (see authn_listener_start()).
 *
 * Thread-safety: every function taking a struct authn_verifier is safe to call from any
 * number of threads at once (HTTP worker threads plus the listener thread).
 *
 * API tokens (cairn_at_...) are opaque and never reach other services: clients exchange
 * them at auth's POST /api/v1/auth/token for a short-lived JWT, which this verifier checks.
 */
#ifndef COMMON_AUTHN_H
#define COMMON_AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Roles, as a bitmask in struct authn_principal. */
enum authn_role {
	AUTHN_ROLE_PROVIDER_ADMIN = 1u << 0,
	AUTHN_ROLE_TENANT_ADMIN = 1u << 1,
	AUTHN_ROLE_BACKUP_OPERATOR = 1u << 2,
	AUTHN_ROLE_RESTORE_OPERATOR = 1u << 3,
	AUTHN_ROLE_VIEWER = 1u << 4,
};
#define AUTHN_ROLE__ALL 0x1fu
/* Convenience masks for route checks. */
#define AUTHN_ROLES_ANY AUTHN_ROLE__ALL
#define AUTHN_ROLES_ADMIN (AUTHN_ROLE_PROVIDER_ADMIN | AUTHN_ROLE_TENANT_ADMIN)

/* Event types on cairn.identity (ce_type). */
#define AUTHN_EVENT_USER_CHANGED "user.changed"
#define AUTHN_EVENT_TENANT_CHANGED "tenant.changed"
#define AUTHN_EVENT_SESSION_REVOKED "session.revoked"
#define AUTHN_EVENT_HEARTBEAT "identity.heartbeat"
#define AUTHN_TOPIC "cairn.identity"

#define AUTHN_ID_MAX 64 /* uuids are 36 chars */

/* Who is calling: filled by authn_verify(). Plain data, copy freely. */
struct authn_principal {
	char user_id[AUTHN_ID_MAX];    /* "sub" */
	char tenant_id[AUTHN_ID_MAX];  /* "tid"; "" for a provider-admin */
	char session_id[AUTHN_ID_MAX]; /* "sid"; "" when absent */
	char token_id[AUTHN_ID_MAX];   /* "jti" */
	unsigned roles;                /* enum authn_role bits */
	bool is_provider_admin;
	int64_t epoch, tenant_epoch;
	int64_t expires_at; /* "exp", unix seconds */
};

struct authn_config {
	const char *issuer;   /* required, e.g. "cairn-auth" */
	const char *audience; /* required, e.g. "cairn" */
	const char *jwks_url; /* NULL = only authn_verifier_set_jwks() */
	int leeway_s;         /* clock skew allowed on exp/nbf/iat; 0 = default 30 */
	int min_refetch_ms;   /* min interval between JWKS fetches; 0 = default 2000 */
	int fetch_timeout_ms; /* libcurl timeout; 0 = default 2000 */
	bool require_fresh;   /* fail closed when the identity stream is stale */
	int stale_ms;         /* 0 = default 3000 */
	int max_token_ttl_s;  /* epoch/session entries are kept this long; 0 = default 1200 */
};

struct authn_verifier;

/** @brief Create a verifier. Strings in cfg are copied.
 *  @returns a new verifier (free with authn_verifier_free()), or NULL with e filled
 *  (STATUS_INVALID for a missing issuer/audience). */
struct authn_verifier *authn_verifier_new(const struct authn_config *cfg, struct err *e);

/** @brief Free a verifier; NULL is fine. Stop its listener first. */
void authn_verifier_free(struct authn_verifier *v);

/** @brief Replace the key set with the JWKS JSON document `jwks` (borrowed).
 *  Only keys with kty EC, crv P-256, a kid, and alg ES256 (or no alg) and use sig (or no use)
 *  are kept; others are skipped.
 *  @returns STATUS_OK, or STATUS_INVALID if the document does not parse or has no usable key
 *  (the previous key set is then kept). Thread-safe. */
enum status authn_verifier_set_jwks(struct authn_verifier *v, const char *jwks,
                                    struct err *e) MUST_CHECK;

/** @brief Fetch the JWKS from cfg->jwks_url now (libcurl) and install it.
 *  @returns STATUS_OK, STATUS_UNAVAILABLE (fetch failed), STATUS_INVALID (bad document).
 *  Thread-safe; blocks up to fetch_timeout_ms. */
enum status authn_verifier_fetch_jwks(struct authn_verifier *v, struct err *e) MUST_CHECK;

/** @brief Verify a compact JWT (borrowed) at unix time `now_s` and fill *out.
 *  An unknown kid triggers one JWKS refetch (rate limited) when jwks_url is set.
 *  @returns STATUS_OK; STATUS_UNAUTHORIZED for any invalid, expired, revoked or
 *  unknown-key token (e->msg says why: for logs, never for the client);
 *  STATUS_UNAVAILABLE when require_fresh is set and the identity stream is stale.
 *  Thread-safe. */
enum status authn_verify(struct authn_verifier *v, const char *token, int64_t now_s,
                         struct authn_principal *out, struct err *e) MUST_CHECK;

/** @brief Like authn_verify() for an HTTP Authorization header value ("Bearer <jwt>",
 *  scheme case-insensitive). NULL or another scheme -> STATUS_UNAUTHORIZED. */
enum status authn_verify_header(struct authn_verifier *v, const char *authorization, int64_t now_s,
                                struct authn_principal *out, struct err *e) MUST_CHECK;

/** @brief True when p has at least one role of the mask `roles` (enum authn_role bits). */
bool authn_principal_has_role(const struct authn_principal *p, unsigned roles);

/** @brief The tenant a query must be scoped to: p->tenant_id, or NULL for a provider-admin
 *  (who may act on every tenant). @returns borrowed from p. */
const char *authn_principal_tenant(const struct authn_principal *p);

/** @brief "provider-admin" etc. for one role bit. @returns a static string, NULL if unknown. */
const char *authn_role_name(unsigned role);

/** @brief Parse a role name. @returns the bit, or 0 if the name is not a role. */
unsigned authn_role_parse(const char *name);

/* ---- the epoch table, fed by the identity stream ---- */

/** @brief Raise the minimum epoch of user `user_id` to `epoch` (never lowers it).
 *  `now_s` stamps the entry for expiry. Thread-safe. */
void authn_epoch_user_set(struct authn_verifier *v, const char *user_id, int64_t epoch,
                          int64_t now_s);

/** @brief Raise the minimum epoch of tenant `tenant_id` (never lowers it). Thread-safe. */
void authn_epoch_tenant_set(struct authn_verifier *v, const char *tenant_id, int64_t epoch,
                            int64_t now_s);

/** @brief Refuse tokens carrying sid `session_id` until unix time `until_s`. Thread-safe. */
void authn_session_revoke(struct authn_verifier *v, const char *session_id, int64_t until_s);

/** @brief Record that the identity stream was known complete up to `at_ms` (unix ms) for
 *  partition `partition` (0..255). Freshness is the oldest of the partitions registered with
 *  authn_verifier_set_partitions(). Thread-safe. */
void authn_heard(struct authn_verifier *v, int partition, int64_t at_ms);

/** @brief Declare how many partitions the identity topic has (1..256); resets freshness. */
void authn_verifier_set_partitions(struct authn_verifier *v, int n);

/** @brief Milliseconds since the identity stream was last known complete, at `now_ms`;
 *  INT64_MAX if never heard. Thread-safe. */
int64_t authn_staleness_ms(struct authn_verifier *v, int64_t now_ms);

/** @brief Apply one cairn.identity event: ce_type `type` (borrowed), JSON data `data` of
 *  `len` bytes, from Kafka partition `partition`, at unix time `now_s` (entry stamping).
 *  Unknown types are ignored (STATUS_OK).
 *  @returns STATUS_OK, or STATUS_INVALID if a known type has a malformed payload. */
enum status authn_apply_event(struct authn_verifier *v, const char *type, const char *data,
                              size_t len, int partition, int64_t now_s, struct err *e) MUST_CHECK;

/* ---- the identity listener (a Kafka consumer thread) ---- */

struct authn_listener;

/** @brief Start a thread that reads AUTHN_TOPIC from every partition, starting
 *  max_token_ttl_s + 60 s in the past (older revocations only concern expired tokens), and
 *  feeds each message to authn_apply_event(). It uses no consumer group and commits nothing.
 *  `bootstrap` is the broker list; `kafka_conf` is NULL or a NULL-terminated list of
 *  librdkafka key, value pairs (borrowed). v must outlive the listener.
 *  @returns a new listener (stop with authn_listener_stop()), or NULL with e filled. */
struct authn_listener *authn_listener_start(struct authn_verifier *v, const char *bootstrap,
                                            const char *const *kafka_conf, struct err *e);

/** @brief Stop and free the listener (joins its thread). NULL is fine. */
void authn_listener_stop(struct authn_listener *l);

/* ---- base64url (RFC 4648 section 5, no padding) ---- */

/** @brief Encode n bytes. @returns a new NUL-terminated string (caller frees). */
char *authn_b64url_encode(const void *p, size_t n);

/** @brief Decode strictly: alphabet A-Z a-z 0-9 - _ only, no padding, no whitespace,
 *  no non-zero trailing bits. @returns a new buffer (caller frees; NUL-terminated for
 *  convenience, *n excludes it), or NULL if s is not valid base64url. */
unsigned char *authn_b64url_decode(const char *s, size_t slen, size_t *n);

#endif
