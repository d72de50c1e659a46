/* keys.h - provider master key, per-tenant key material and the keystore interface.
 *
 * The provider's master key (32 bytes) is read from the file named by CAIRN_MASTER_KEY_FILE.
 * Each tenant has an id key (HMAC-SHA-256 key for chunk ids) and a data key (AES-256-GCM),
 * generated on first use and kept only WRAPPED by the master key (AES-256-GCM, tenant id as
 * AAD) in a keystore. The keystore is a pair of callbacks so the mover can back it with
 * PostgreSQL; engine_keystore_file_new() is the file-backed one used by the CLI. */
#ifndef ENGINE_KEYS_H
#define ENGINE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ENGINE_KEY_LEN 32
/* Size of a wrapped tenant key blob: magic 4 + nonce 12 + 2 keys 64 + tag 16. */
#define ENGINE_WRAPPED_LEN 96
#define ENGINE_MASTER_KEY_ENV "CAIRN_MASTER_KEY_FILE"

struct engine_master_key {
	uint8_t k[ENGINE_KEY_LEN];
};

struct engine_tenant_keys {
	uint8_t id_key[ENGINE_KEY_LEN];   /* HMAC key: chunk id = HMAC-SHA-256(id_key, plain) */
	uint8_t data_key[ENGINE_KEY_LEN]; /* AES-256-GCM key for chunks and manifests */
};

/** @brief Load the master key from a file: exactly 32 raw bytes, or 64 hex digits (optional
 *  trailing newline). @returns STATUS_OK, STATUS_NOT_FOUND, STATUS_INVALID (bad size/format)
 *  or STATUS_IO. The key is never put in e's message. Thread-safe. */
enum status engine_master_key_load(struct engine_master_key *mk, const char *path,
                                   struct err *e) MUST_CHECK;

/** @brief engine_master_key_load() on the file named by $CAIRN_MASTER_KEY_FILE.
 *  @returns STATUS_INVALID if the variable is unset. */
enum status engine_master_key_from_env(struct engine_master_key *mk, struct err *e) MUST_CHECK;

/** @brief Overwrite key material with zeros (not optimised away). */
void engine_key_wipe(void *p, size_t n);

/** @brief true if t is a valid tenant id: 1..64 of [A-Za-z0-9_.-], not starting with '.'. */
bool engine_tenant_id_valid(const char *t);

/* Keystore callbacks. Both may be called from any thread, one call at a time per keystore
 * unless the implementation says otherwise. */
struct engine_keystore_ops {
	/** load: on success *blob is new memory (freed by the engine with free()).
	 *  @returns STATUS_NOT_FOUND when the tenant has no keys yet. */
	enum status (*load)(void *ud, const char *tenant, uint8_t **blob, size_t *len,
	                    struct err *e);
	/** store: must not replace an existing blob; @returns STATUS_CONFLICT if one exists
	 *  (the engine then loads the winner's blob, so concurrent first use converges). */
	enum status (*store)(void *ud, const char *tenant, const uint8_t *blob, size_t len,
	                     struct err *e);
	/** free: release ud (may be NULL). */
	void (*free)(void *ud);
};

struct engine_keystore {
	const struct engine_keystore_ops *ops;
	void *ud;
};

/** @brief Wrap tenant keys under the master key (AES-256-GCM, random nonce, tenant id as
 *  AAD). out receives ENGINE_WRAPPED_LEN bytes. */
enum status engine_keys_wrap(const struct engine_master_key *mk, const char *tenant,
                             const struct engine_tenant_keys *tk, uint8_t out[ENGINE_WRAPPED_LEN],
                             struct err *e) MUST_CHECK;
/** @brief Unwrap; @returns STATUS_CORRUPT if the blob is damaged, was wrapped for another
 *  tenant or under another master key. */
enum status engine_keys_unwrap(const struct engine_master_key *mk, const char *tenant,
                               const uint8_t *blob, size_t len, struct engine_tenant_keys *tk,
                               struct err *e) MUST_CHECK;

/** @brief Get a tenant's keys, creating and storing them (wrapped) on first use when create
 *  is true. @returns STATUS_NOT_FOUND if absent and !create; errors of the keystore;
 *  STATUS_CORRUPT on unwrap failure. Thread-safe if the keystore is. */
enum status engine_tenant_keys_get(const struct engine_keystore *ks,
                                   const struct engine_master_key *mk, const char *tenant,
                                   bool create, struct engine_tenant_keys *out,
                                   struct err *e) MUST_CHECK;

/** @brief File-backed keystore: <dir>/<tenant>.key (mode 0600, dir 0700, created if missing).
 *  Refuses (STATUS_FORBIDDEN) a dir that is, or is inside, forbidden_root (the repository
 *  root; may be NULL). @returns a new keystore (free with engine_keystore_free) or NULL. */
struct engine_keystore *engine_keystore_file_new(const char *dir, const char *forbidden_root,
                                                 struct err *e);

/** @brief Free a keystore made by engine_keystore_file_new (calls ops->free). NULL ok. */
void engine_keystore_free(struct engine_keystore *ks);

/** @brief true if path equals or lies inside root after resolving symlinks (both must exist
 *  or have an existing parent). */
bool engine_path_is_inside(const char *path, const char *root);

#endif
