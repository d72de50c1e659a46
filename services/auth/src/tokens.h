/* tokens.h - signing keys (EC P-256), ES256 access tokens (libjwt), JWKS, key wrapping,
 * and opaque random tokens (API tokens, refresh tokens) stored only as SHA-256 hashes. */
#ifndef AUTH_TOKENS_H
#define AUTH_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define AUTH_ACCESS_TTL_S 900 /* 15 minutes */
#define AUTH_KID_LEN 22       /* base64url of 16 random bytes */
#define AUTH_UUID_LEN 36
#define AUTH_HASH_HEX_LEN 64
#define AUTH_KEK_LEN 32
#define AUTH_PREFIX_API "cairn_at_"
#define AUTH_PREFIX_REFRESH "cairn_rt_"

struct auth_key;

/** @brief Generate a new EC P-256 signing key with a random kid.
 *  @returns a new key (auth_key_free()), or NULL with e filled (STATUS_INTERNAL). */
struct auth_key *auth_key_generate(struct err *e);

/** @brief Load a key from its kid and PKCS#8 PEM private key (both borrowed, copied).
 *  @returns a new key, or NULL with e filled (STATUS_CORRUPT if the PEM is not a P-256 key). */
struct auth_key *auth_key_from_pem(const char *kid, const char *pem, struct err *e);

/** @brief Free a key; NULL is fine. */
void auth_key_free(struct auth_key *k);

/** @brief @returns the kid, borrowed from k. */
const char *auth_key_kid(const struct auth_key *k);

/** @brief @returns the PKCS#8 PEM private key, borrowed from k (secret: never log). */
const char *auth_key_pem(const struct auth_key *k);

/** @brief The JWKS document for `n` keys (the current key first, then older ones still
 *  accepted). @returns a new JSON string the caller frees. */
char *auth_jwks_json(struct auth_key *const *keys, size_t n);

/** @brief Parse a key-encryption key: base64url or standard base64 of 32 bytes.
 *  @returns STATUS_OK or STATUS_INVALID. */
enum status auth_kek_parse(const char *s, unsigned char kek[AUTH_KEK_LEN],
                           struct err *e) MUST_CHECK;

/** @brief Wrap (encrypt) `pem` with AES-256-GCM under `kek`, with the kid as associated data.
 *  @returns STATUS_OK and *out a new string "v1.<nonce>.<ciphertext+tag>" (base64url).
 *  With kek NULL, *out is "plain.<pem base64url>" (documented; logged as a warning by the
 *  caller). */
enum status auth_key_wrap(const unsigned char *kek, const char *kid, const char *pem, char **out,
                          struct err *e) MUST_CHECK;

/** @brief Reverse of auth_key_wrap(). @returns STATUS_OK and *pem a new string, or
 *  STATUS_CORRUPT (bad format, wrong kek, tampered, or "plain." while a kek is required). */
enum status auth_key_unwrap(const unsigned char *kek, const char *kid, const char *wrapped,
                            char **pem, struct err *e) MUST_CHECK;

/* Claims of an access token. Strings are borrowed. */
struct auth_claims {
	const char *iss, *aud;
	const char *sub; /* user id */
	const char *tid; /* tenant id; NULL for a provider-admin */
	const char *sid; /* session id (refresh family or API token id); may be NULL */
	unsigned roles;  /* enum authn_role bits */
	int64_t epoch, tepoch;
	int64_t iat; /* unix seconds; nbf = iat */
	int ttl_s;   /* 0 = AUTH_ACCESS_TTL_S */
};

/** @brief Sign an ES256 JWT with key k (header kid = k's kid) and a random jti.
 *  @returns STATUS_OK and *out a new string; STATUS_INVALID for bad claims;
 *  STATUS_INTERNAL if libjwt fails. Thread-safe. */
enum status auth_token_sign(const struct auth_key *k, const struct auth_claims *c, char **out,
                            struct err *e) MUST_CHECK;

/** @brief A new random opaque token: prefix + base64url(32 random bytes).
 *  @returns a new string (caller frees). Aborts if the RNG fails. */
char *auth_opaque_new(const char *prefix);

/** @brief SHA-256 of token as lowercase hex into out (65 bytes incl. NUL). */
void auth_opaque_hash(const char *token, char out[AUTH_HASH_HEX_LEN + 1]);

/** @brief True if token looks like prefix + 43 base64url characters. */
bool auth_opaque_is_wellformed(const char *token, const char *prefix);

/** @brief A random (version 4) UUID in canonical form into out (37 bytes incl. NUL). */
void auth_uuid_v4(char out[AUTH_UUID_LEN + 1]);

#endif
