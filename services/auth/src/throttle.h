/* throttle.h - login throttling: sliding windows of failed attempts per account and per
 * source address, in memory.
 *
 * Trade-off (docs/auth.md): the windows live in the auth process. A restart forgets them
 * (an attacker gains at most one window per restart) and several auth replicas would each
 * count separately (N replicas = N times the budget). A single auth replica is the supported
 * deployment for now; moving the counters to identity.login_failures is the path to more. */
#ifndef AUTH_THROTTLE_H
#define AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct auth_throttle;

struct auth_throttle_cfg {
	int account_max; /* failures per account per window; default 5 */
	int address_max; /* failures per address per window; default 20 */
	int window_s;    /* default 900 */
	int max_keys;    /* memory bound: tracked keys per kind; default 100000 */
};

/** @brief New throttle (cfg may be NULL for defaults). @returns new; free with
 *  auth_throttle_free(). */
struct auth_throttle *auth_throttle_new(const struct auth_throttle_cfg *cfg);

/** @brief Free; NULL is fine. */
void auth_throttle_free(struct auth_throttle *t);

/** @brief May a login for `account` (e.g. "tenant/username", any string) from `address`
 *  be attempted at unix time `now`? When not, *retry_after_s is the number of seconds
 *  until the oldest failure leaves the window (>= 1). Thread-safe. */
bool auth_throttle_allow(struct auth_throttle *t, const char *account, const char *address,
                         int64_t now, int *retry_after_s);

/** @brief Record a failed login. Thread-safe. */
void auth_throttle_fail(struct auth_throttle *t, const char *account, const char *address,
                        int64_t now);

/** @brief Record a successful login: forget the account's failures (the address's stay).
 *  Thread-safe. */
void auth_throttle_success(struct auth_throttle *t, const char *account);

#endif
