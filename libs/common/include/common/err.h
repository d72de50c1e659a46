/* err.h - the project-wide status convention (STYLE.md 3.3).
 *
 * Commands return enum status (0 = OK). Constructors return a pointer or NULL and
 * fill a caller-supplied struct err. libs/common never logs an error it returns;
 * the boundary (REST handler, event handler, main) logs once.
 */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stdbool.h>

#define MUST_CHECK __attribute__((warn_unused_result))

enum status {
	STATUS_OK = 0,
	STATUS_NOMEM,
	STATUS_INVALID,
	STATUS_NOT_FOUND,
	STATUS_CONFLICT,
	STATUS_UNAUTHORIZED,
	STATUS_FORBIDDEN,
	STATUS_TOO_LARGE,
	STATUS_IO,
	STATUS_DB,
	STATUS_KAFKA,
	STATUS_TIMEOUT,
	STATUS_UNAVAILABLE,
	STATUS_CORRUPT,
	STATUS_INTERNAL,
	STATUS__COUNT
};

struct err {
	enum status code;
	bool retriable;
	char msg[256];
};

/** @brief Fill *e (may be NULL) with code and a printf-style message.
 *  @returns code, so callers can write `return err_set(e, STATUS_INVALID, "...")`. */
enum status err_set(struct err *e, enum status code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/** @brief Like err_set() but also marks the error retriable. */
enum status err_set_retriable(struct err *e, enum status code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/** @brief Reset *e to STATUS_OK with an empty message. e may be NULL. */
void err_clear(struct err *e);

/** @brief Stable lower-case name of a status ("not_found").
 *  @returns a static string; never NULL. */
const char *status_str(enum status s);

/* SQLite's ALWAYS()/NEVER(): assert in debug/sanitizer builds, recover in release. */
#ifdef NDEBUG
#define ALWAYS(x) (x)
#define NEVER(x) (x)
#else
#include <assert.h>
#define ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define NEVER(x) ((x) ? (assert(!#x), 1) : 0)
#endif

#endif
