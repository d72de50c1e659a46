/* password.h - argon2id password hashing and the password policy (pure, no I/O). */
#ifndef AUTH_PASSWORD_H
#define AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* OWASP minimum for argon2id: m = 19 MiB, t = 2, p = 1. */
#define AUTH_PW_M_KIB 19456u
#define AUTH_PW_T 2u
#define AUTH_PW_P 1u
#define AUTH_PW_SALT_LEN 16u
#define AUTH_PW_HASH_LEN 32u
#define AUTH_PW_MIN_CHARS 12u  /* Unicode code points */
#define AUTH_PW_MAX_CHARS 256u /* Unicode code points */
#define AUTH_PW_MAX_BYTES 1024u

/** @brief Hash `password` with argon2id (fresh random salt, the parameters above).
 *  @returns STATUS_OK and *out_phc a new PHC string ("$argon2id$v=19$m=...") the caller
 *  frees; STATUS_INTERNAL if argon2 or the RNG fails. Thread-safe. */
enum status auth_password_hash(const char *password, char **out_phc, struct err *e) MUST_CHECK;

/** @brief Check `password` against the PHC string `phc` (both borrowed). The hash is
 *  recomputed with the salt and parameters of `phc` and compared with CRYPTO_memcmp.
 *  Parameters below m=8 MiB, t=1 or above m=1 GiB, t=16, p=8 are refused as corrupt.
 *  @returns true on a match. Thread-safe. */
bool auth_password_verify(const char *phc, const char *password);

/** @brief Spend the time of one verification without a stored hash, so that an unknown
 *  user costs as much as a wrong password. Thread-safe. */
void auth_password_verify_dummy(const char *password);

/** @brief True when `phc` was made with parameters weaker than the current ones. */
bool auth_password_needs_rehash(const char *phc);

/** @brief Apply the policy: valid UTF-8, no control characters, 12..256 code points,
 *  at most 1024 bytes, not equal to and not containing the username (ASCII
 *  case-insensitive). `username` may be NULL.
 *  @returns STATUS_OK or STATUS_INVALID with a message for the client. */
enum status auth_password_check_policy(const char *username, const char *password,
                                       struct err *e) MUST_CHECK;

#endif
