/* spine_util.h - shared bits of the spine integration test programs. */
#ifndef SPINE_UTIL_H
#define SPINE_UTIL_H

#include <stdbool.h>

#include "common/db.h"
#include "common/err.h"

/** @brief getenv(name) or exit(1) with a message saying the stack is needed: the
 *  integration tests FAIL (never skip) without CAIRN_DATABASE_URL/KAFKA_BOOTSTRAP_SERVERS.
 *  @returns borrowed environment string. */
const char *spine_require_env(const char *name);

/** @brief Monotonic milliseconds. */
long spine_now_ms(void);

/** @brief Sleep ms milliseconds. */
void spine_sleep_ms(long ms);

/** @brief Run a query returning one integer cell. @returns status; *out set on success. */
MUST_CHECK enum status spine_query_long(struct db_conn *dbc, const char *sql, long *out,
                                        struct err *e);

/** @brief Print "FAIL: <msg>" to stderr and exit(1). */
void spine_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** @brief Exit(1) with msg when cond is false; prints "ok: msg" otherwise. */
void spine_check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
