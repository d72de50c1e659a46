/* jsonh.h - small jansson helpers shared by the services: strict request-body decoding
 * with errors that name the field, UUID and UTF-8 validation, ISO-8601 timestamps.
 *
 * Every getter returns STATUS_OK or STATUS_INVALID with a client-facing message naming the
 * field ("field 'name' must be a string"), suitable for http_reply_status() (400).
 * Pointers returned through `out` are borrowed from the json_t passed in and stay valid
 * while the caller holds its reference and does not modify that member.
 * Thread-safety: all functions are reentrant; a json_t must not be shared between threads
 * while one of them modifies it.
 */
#ifndef COMMON_JSONH_H
#define COMMON_JSONH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

/* Flags of the getters. Without JSONH_REQUIRED a missing member or JSON null leaves *out
 * untouched and returns STATUS_OK. */
enum jsonh_flags {
	JSONH_OPTIONAL = 0,
	JSONH_REQUIRED = 1u << 0, /* missing or null is an error */
	JSONH_NONEMPTY = 1u << 1, /* strings: "" is an error */
};

/* Length of an ISO-8601 UTC timestamp with milliseconds, plus NUL:
 * "2026-01-02T03:04:05.678Z". */
#define JSONH_TIME_LEN 25

/** @brief Check that obj is a JSON object whose keys all appear in allowed.
 *  @param allowed NULL-terminated list of accepted member names (borrowed).
 *  @returns STATUS_OK, or STATUS_INVALID "request body must be a JSON object" /
 *  "unknown field 'x'" in *e. */
MUST_CHECK enum status jsonh_check_fields(const json_t *obj, const char *const allowed[],
                                          struct err *e);

/** @brief Get a string member. *out is borrowed from obj. With max_len > 0, strings longer
 *  than max_len bytes are rejected. @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_str(const json_t *obj, const char *key, unsigned flags,
                                     size_t max_len, const char **out, struct err *e);

/** @brief Get an integer member (JSON integers only, not 1.0) within [min, max].
 *  @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_int(const json_t *obj, const char *key, unsigned flags,
                                     int64_t min, int64_t max, int64_t *out, struct err *e);

/** @brief Get a number member (integer or real). @returns STATUS_OK or STATUS_INVALID. */
MUST_CHECK enum status jsonh_get_num(const json_t *obj, const char *key, unsigned flags,
                                     double *out, struct err *e);

/** @brief Get a boolean member. @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_bool(const json_t *obj, const char *key, unsigned flags, bool *out,
                                      struct err *e);

/** @brief Get an object member. *out is borrowed from obj.
 *  @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_obj(const json_t *obj, const char *key, unsigned flags,
                                     json_t **out, struct err *e);

/** @brief Get an array member. *out is borrowed from obj.
 *  @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_arr(const json_t *obj, const char *key, unsigned flags,
                                     json_t **out, struct err *e);

/** @brief Get a string member that must be a UUID (see jsonh_uuid_valid()).
 *  *out is borrowed from obj. @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_uuid(const json_t *obj, const char *key, unsigned flags,
                                      const char **out, struct err *e);

/** @brief Is s a UUID in the canonical 8-4-4-4-12 hex form (either case)? NULL is not. */
bool jsonh_uuid_valid(const char *s);

/** @brief Is p[0..n) well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF)?
 *  NUL bytes are valid UTF-8. */
bool jsonh_utf8_valid(const void *p, size_t n);

/** @brief Format a UTC time as ISO-8601 with milliseconds ("2026-01-02T03:04:05.678Z").
 *  @param out at least JSONH_TIME_LEN bytes. @returns out. */
char *jsonh_time_format(const struct timespec *ts, char *out);

/** @brief Format unix microseconds (PostgreSQL's resolution) like jsonh_time_format(). */
char *jsonh_time_format_us(int64_t unix_us, char *out);

/** @brief Parse an RFC 3339 timestamp ("2026-01-02T03:04:05Z", optional fraction up to
 *  9 digits, 'Z' or +hh:mm/-hh:mm offset) into unix microseconds.
 *  @returns STATUS_OK or STATUS_INVALID in *e. */
MUST_CHECK enum status jsonh_time_parse(const char *s, int64_t *unix_us, struct err *e);

/** @brief Get a string member holding an RFC 3339 timestamp as unix microseconds.
 *  @returns STATUS_OK or STATUS_INVALID naming key. */
MUST_CHECK enum status jsonh_get_time(const json_t *obj, const char *key, unsigned flags,
                                      int64_t *unix_us, struct err *e);

#endif
